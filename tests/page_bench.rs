//! The page's figures and its README screenshot, run by scripts/bench-page.sh
//! and scripts/screenshot.sh (ignored in the test suite: they print numbers
//! and write an image, they do not judge).

mod common;
#[path = "page_bench/cpu.rs"]
mod cpu;

use common::browser::{Browser, page_of};
use common::piped::Piped;
use common::{LinkEmu, Mount, TestBoard, eventually, random_bytes};
use std::time::{Duration, Instant};

/// Milliseconds from typing `probe` in the page to its echo there.
async fn page_echo(b: &Browser, probe: &str) -> f64 {
    let script = r#"
        const [probe, done] = arguments;
        const ws = window.webreplMount.ws();
        let seen = '';
        const t0 = performance.now();
        const listen = (e) => {
            seen += new TextDecoder().decode(e.data);
            if (seen.includes(probe)) { ws.removeEventListener('message', listen); done(performance.now() - t0); }
        };
        ws.addEventListener('message', listen);
        ws.send(new TextEncoder().encode(probe));
    "#;
    b.client
        .execute_async(script, vec![serde_json::json!(probe)])
        .await
        .expect("probe")
        .as_f64()
        .expect("ms")
}

/// Fresh page loads measured for "page ready".
const RUNS: usize = 7;

/// The mount's traffic so far: (programs run on the board, bytes sent to it).
fn traffic(m: &Mount) -> (u64, u64) {
    let o = m
        .cmd()
        .arg("status")
        .arg(m.path())
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&o.stdout);
    // "traffic: X B to the board, Y B from it, N programs, R reconnects"
    let line = text
        .lines()
        .find(|l| l.starts_with("traffic:"))
        .unwrap_or("");
    let n: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|x| x.parse().ok())
        .collect();
    (
        n.get(2).copied().unwrap_or(0),
        n.first().copied().unwrap_or(0),
    )
}

/// One page load in a new browser (nothing cached), as a person opening the
/// printed address: ready is the board's prompt in the terminal and the
/// file list shown. Times in ms from the navigation's start.
struct Load {
    ws: f64,
    prompt: f64,
    tree: f64,
    ready: f64,
    /// The browser's CPU from the navigation's start to ready.
    cpu: cpu::Sample,
    /// Requests that went to the server before ready (the document's
    /// included), and the bytes parsed (decoded, from the cache too).
    requests: usize,
    kb: f64,
    /// The board's programs and bytes sent to it while the page loaded.
    programs: u64,
    to_board: u64,
    /// The requests before ready: name start-end.
    timeline: String,
}

/// Page loads in one new browser: the first (nothing cached), then as many
/// later visits (the page opened again from the address: its assets come
/// from the browser's cache).
async fn loads(url: &str, m: &Mount, visits: usize) -> Vec<Load> {
    let b = Browser::start().await;
    let sampler = cpu::Sampler::start(b.driver_pid());
    // A browser already running, as a person's is: its start-up work
    // (processes, caches) done before the page is opened.
    let settled = Instant::now();
    let mut quiet = 0;
    while quiet < 3 && settled.elapsed() < Duration::from_secs(5) {
        let t = cpu::now_ms();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let used = sampler.between(t, cpu::now_ms()).all;
        quiet = if used < 20.0 { quiet + 1 } else { 0 };
    }
    let mut all = Vec::new();
    for i in 0..visits {
        if i > 0 {
            b.client.goto("about:blank").await.expect("leave");
        }
        all.push(load(&b, &sampler, url, m).await);
    }
    b.close().await;
    all
}

async fn load(b: &Browser, sampler: &cpu::Sampler, url: &str, m: &Mount) -> Load {
    let before = traffic(m);
    b.client.goto(url).await.expect("open");
    b.until(10, "!!(window.promptAt && window.treeAt)").await;
    let v = b
        .eval(
            r#"(() => {
            const nav = performance.getEntriesByType('navigation')[0];
            const res = performance.getEntriesByType('resource').map((r) => ({
                name: new URL(r.name).pathname, start: r.startTime, end: r.responseEnd, size: r.decodedBodySize, net: r.transferSize > 0 }));
            return { origin: performance.timeOrigin, ws: window.termReadyAt, prompt: window.promptAt,
                tree: window.treeAt, html: nav.responseEnd, htmlSize: nav.decodedBodySize,
                dcl: nav.domContentLoadedEventEnd, res };
        })()"#,
        )
        .await;
    let after = traffic(m);
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let (ws, prompt, tree) = (f("ws"), f("prompt"), f("tree"));
    let ready = prompt.max(tree);
    let origin = f("origin");
    let cpu = sampler.between(origin, origin + ready);
    let mut requests = 1;
    let mut kb = f("htmlSize") / 1024.0;
    let mut timeline = format!("/ 0-{:.0} dcl {:.0}", f("html"), f("dcl"));
    for r in v["res"].as_array().into_iter().flatten() {
        let start = r["start"].as_f64().unwrap_or(0.0);
        if start > ready {
            continue;
        }
        let net = r["net"] == serde_json::json!(true);
        requests += usize::from(net);
        kb += r["size"].as_f64().unwrap_or(0.0) / 1024.0;
        timeline.push_str(&format!(
            ", {} {start:.0}-{:.0}{}",
            r["name"].as_str().unwrap_or("?"),
            r["end"].as_f64().unwrap_or(0.0),
            if net { "" } else { " (cache)" }
        ));
    }
    Load {
        ws,
        prompt,
        tree,
        ready,
        cpu,
        requests,
        kb,
        programs: after.0 - before.0,
        to_board: after.1 - before.1,
        timeline,
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark: scripts/bench-page.sh"]
async fn page_figures() {
    let tb = TestBoard::start();
    // Wi-Fi: 10 ms round trip; files at an ESP32's 20 KB/s.
    let emu = LinkEmu::slow(tb.port);
    let board = format!("127.0.0.1:{}", emu.port);
    let data = random_bytes(100_000, 5);
    // A 20 KB program for the editor, on the board before the mount.
    let program: String = (0..20_000 / 25)
        .map(|i| format!("print('line {i:>8}')  #\n"))
        .collect();
    std::fs::write(tb.path("/prog.py"), &program).expect("seed prog.py");
    // The same for the mount's own first read, for comparison.
    std::fs::write(tb.path("/prog2.py"), &program).expect("seed prog2.py");
    let local = tempfile::tempdir().expect("local");
    let src = local.path().join("big.bin");
    std::fs::write(&src, &data).expect("write");

    // webrepl-mount cp of 100 KB, no mount.
    let t = Instant::now();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
        .args([
            "cp",
            &src.display().to_string(),
            &format!("{board}:/cp.bin"),
        ])
        .env("WEBREPL_PASSWORD", &tb.password)
        .output()
        .expect("cp");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cp = t.elapsed().as_secs_f64();

    let mut m = Mount::start(&tb, &board, &[]);
    let url = page_of(&m);
    // Page ready, each in a new browser (nothing cached), and two later
    // visits in it.
    let (mut loads, mut later) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let mut v = self::loads(&url, &m, 3).await;
        later.push(v.pop().expect("third visit"));
        loads.push(v.remove(0));
    }
    let b = Browser::start().await;
    b.client.goto(&url).await.expect("open");
    b.until(10, "document.body.dataset.term === 'connected'")
        .await;

    // Echo of a typed line: the page, then term, on the same link.
    let mut c = m.cmd();
    c.arg("term").arg(m.path());
    let mut term = Piped::spawn(c);
    eventually(10, "term attached", || term.text().contains("Ctrl-]"));
    let (mut page_ms, mut term_ms) = (Vec::new(), Vec::new());
    for i in 0..10 {
        page_ms.push(page_echo(&b, &format!("p{i}x")).await);
        let probe = format!("t{i}y");
        let t = Instant::now();
        term.type_keys(probe.as_bytes());
        // Polled finely: this loop is the measurement, with a deadline.
        while !term.text().contains(&probe) {
            assert!(t.elapsed() < Duration::from_secs(10), "no echo in term");
            std::thread::sleep(Duration::from_micros(200));
        }
        term_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    // Leave a clean line behind.
    term.type_keys(b"\x03");
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };

    // 100 KB through the page, as its upload sends it.
    let page_up = b
        .client
        .execute_async(
            r#"
            const [n, done] = arguments;
            const body = new Uint8Array(n).map((_, i) => (i * 7919) & 255);
            const t0 = performance.now();
            const headers = { 'X-Webrepl-Token': sessionStorage.getItem('webrepl-mount-token') };
            fetch('/api/file?path=/page.bin', { method: 'PUT', body, headers })
                .then((r) => done(r.ok ? performance.now() - t0 : -r.status));
            "#,
            vec![serde_json::json!(data.len())],
        )
        .await
        .expect("upload")
        .as_f64()
        .expect("ms")
        / 1000.0;
    assert!(page_up > 0.0, "the page's upload failed");

    // The editor: a 20 KB file opened from the panel, first from the board
    // (the mount has not read it), then again (the mount has it).
    let open_ms = async || {
        b.client
            .execute_async(
                r##"
                const done = arguments[0];
                const ed = window.webreplMount.editor;
                const name = document.querySelector("#tree li[data-path='/prog.py'] .name");
                const t0 = performance.now();
                name.click();
                const wait = () => ed.tabs().some((t) => t.path === '/prog.py' && t.text.length > 19000)
                    ? done(performance.now() - t0) : setTimeout(wait, 2);
                wait();
                "##,
                vec![],
            )
            .await
            .expect("open prog.py")
            .as_f64()
            .expect("ms")
    };
    b.until(
        10,
        "!!document.querySelector(\"#tree li[data-path='/prog.py']\")",
    )
    .await;
    let uncached = open_ms().await;
    let t = Instant::now();
    let read = std::fs::read(m.path().join("prog2.py")).expect("read prog2.py");
    assert_eq!(read.len(), program.len());
    let mount_read = t.elapsed().as_secs_f64() * 1000.0;
    // Close the tab (nothing changed: no question), open it again.
    b.eval("(document.querySelector('#tabs .tab .close').click(), true)")
        .await;
    let cached = open_ms().await;
    // Ctrl-S of a one-line change, until the tab says saved.
    let save_ms = b
        .client
        .execute_async(
            r#"
            const done = arguments[0];
            const ed = window.webreplMount.editor;
            ed.view.dispatch({ changes: { from: 0, insert: 'x = 1\n' } });
            const t0 = performance.now();
            document.dispatchEvent(new KeyboardEvent('keydown', { key: 's', ctrlKey: true, bubbles: true }));
            const wait = () => {
                const t = ed.tabs().find((t) => t.path === '/prog.py');
                if (t.status === 'saved') done(performance.now() - t0);
                else if (t.status === 'failed' || t.status === 'conflict') done(-1);
                else setTimeout(wait, 2);
            };
            wait();
            "#,
            vec![],
        )
        .await
        .expect("save prog.py")
        .as_f64()
        .expect("ms");
    assert!(save_ms > 0.0, "the editor's save failed");
    // The same one-line change saved through the mount by a program.
    let t = Instant::now();
    {
        use std::io::Write;
        let mut f = std::fs::File::create(m.path().join("prog.py")).expect("open");
        f.write_all(format!("y = 2\n{program}").as_bytes())
            .expect("write");
        f.sync_all().expect("fsync");
    }
    let mount_save = t.elapsed().as_secs_f64() * 1000.0;
    for l in loads.iter().chain(&later) {
        println!(
            "page run: ready {:.0} ms (terminal connected {:.0}, prompt {:.0}, file list {:.0}); renderer main thread ran {:.0} ms, waited for a core {:.0} ms, all Chromium {:.0} ms; {} requests, {:.0} KB; board: {} programs, {} B sent; {}",
            l.ready,
            l.ws,
            l.prompt,
            l.tree,
            l.cpu.main_run,
            l.cpu.main_wait,
            l.cpu.all,
            l.requests,
            l.kb,
            l.programs,
            l.to_board,
            l.timeline
        );
    }
    let of = |f: fn(&Load) -> f64| median(&mut loads.iter().map(f).collect());
    println!(
        "page ready (prompt and file list shown): median {:.0} ms after the URL was opened ({} ms, {RUNS} new browsers); terminal connected median {:.0} ms",
        of(|l| l.ready),
        loads
            .iter()
            .map(|l| format!("{:.0}", l.ready))
            .collect::<Vec<_>>()
            .join(", "),
        of(|l| l.ws),
    );
    println!(
        "page ready, the browser's cost to ready (medians): renderer main thread ran {:.0} ms and waited for a core {:.0} ms; all Chromium processes {:.0} ms of CPU; {:.0} requests, {:.0} KB; the board: {:.0} programs, {:.0} B sent",
        of(|l| l.cpu.main_run),
        of(|l| l.cpu.main_wait),
        of(|l| l.cpu.all),
        of(|l| l.requests as f64),
        of(|l| l.kb),
        of(|l| l.programs as f64),
        of(|l| l.to_board as f64),
    );
    let of_later = |f: fn(&Load) -> f64| median(&mut later.iter().map(f).collect());
    println!(
        "page ready on a later visit (the third in the same browser: assets cached): median {:.0} ms ({} ms); renderer main thread ran {:.0} ms, waited {:.0} ms; {:.0} requests",
        of_later(|l| l.ready),
        later
            .iter()
            .map(|l| format!("{:.0}", l.ready))
            .collect::<Vec<_>>()
            .join(", "),
        of_later(|l| l.cpu.main_run),
        of_later(|l| l.cpu.main_wait),
        of_later(|l| l.requests as f64),
    );
    println!(
        "echo of a typed line, median of 10: page {:.1} ms, term {:.1} ms (10 ms RTT)",
        median(&mut page_ms),
        median(&mut term_ms)
    );
    println!(
        "upload of 100 KB at 20 KB/s: page {page_up:.2} s, webrepl-mount cp {cp:.2} s ({:+.0}%)",
        (page_up / cp - 1.0) * 100.0
    );
    println!(
        "editor open of a 20 KB file from the panel: {uncached:.0} ms from the board (20 KB/s), {cached:.0} ms cached; the mount's own first read of the same: {mount_read:.0} ms"
    );
    println!(
        "editor save (Ctrl-S) of a one-line change to 20 KB, until the tab says saved: {save_ms:.0} ms; the mount's own save of it (write + fsync): {mount_save:.0} ms"
    );
    drop(term);
    b.close().await;
    assert!(m.unmount().status.success());
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "writes docs/page.png: scripts/screenshot.sh"]
async fn screenshot() {
    let tb = TestBoard::start();
    for (p, text) in [
        ("/boot.py", "# boot.py\n"),
        ("/main.py", "import blink\nblink.run()\n"),
        ("/lib/blink.py", "from machine import Pin\n"),
        ("/config.json", "{}\n"),
    ] {
        if let Some(dir) = tb.path(p).parent() {
            std::fs::create_dir_all(dir).expect("dir");
        }
        std::fs::write(tb.path(p), text).expect("seed");
    }
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let b = Browser::start().await;
    b.client.goto(&page_of(&m)).await.expect("open");
    b.until(10, "document.body.dataset.term === 'connected'")
        .await;
    b.until(
        10,
        "!!document.querySelector(\"#tree li[data-path='/main.py']\")",
    )
    .await;
    b.type_keys("\n").await;
    b.type_keys("import os; os.listdir()\n").await;
    b.until(
        10,
        "document.querySelector('.xterm-rows').innerText.includes('main.py')",
    )
    .await;
    b.type_keys("print(6*7)\n").await;
    b.until(
        10,
        "document.querySelector('.xterm-rows').innerText.includes('\\n42')",
    )
    .await;
    b.until(
        10,
        "document.getElementById('status').textContent.includes('free')",
    )
    .await;
    let png = b.client.screenshot().await.expect("screenshot");
    let out = common::repo().join("docs/page.png");
    std::fs::create_dir_all(out.parent().expect("docs")).expect("docs dir");
    std::fs::write(&out, png).expect("write docs/page.png");
    println!("wrote {}", out.display());
    b.close().await;
    assert!(m.unmount().status.success());
}
