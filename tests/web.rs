//! The page in a real browser (headless Chromium over WebDriver) against the
//! real test board: terminal, files, status line, and who may use it.

mod common;

use common::browser::{Browser, page_of};
use common::piped::Piped;
use common::{LinkEmu, Mount, TestBoard, eventually, random_bytes};
use std::io::{Read, Write};
use std::process::Stdio;

/// `webrepl-mount term` of the mount, on pipes.
fn term_of(m: &Mount) -> Piped {
    let mut c = m.cmd();
    c.arg("term").arg(m.path());
    Piped::spawn(c)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_types_at_the_boards_repl_beside_term() {
    let tb = TestBoard::start();
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let url = page_of(&m);
    let b = Browser::start().await;
    b.client.goto(&url).await.expect("open the page");
    b.until(10, "document.body.dataset.term === 'connected'")
        .await;
    // The token moved from the address into this tab's sessionStorage,
    // not into a cookie, which the browser would send to every other
    // server on 127.0.0.1 (any local user's), HttpOnly or not.
    assert!(!b.eval("location.href").await.to_string().contains('#'));
    assert_eq!(b.eval("document.cookie").await, serde_json::json!(""));
    let cookies = b.client.get_all_cookies().await.expect("cookies");
    assert!(cookies.is_empty(), "{cookies:?}");
    b.type_keys("print(6*7)\n").await;
    b.until(
        10,
        "document.querySelector('.xterm-rows').innerText.includes('\\n42')",
    )
    .await;
    // term and the page at once: each sees what the other typed.
    let mut term = term_of(&m);
    eventually(10, "term attached", || term.text().contains("Ctrl-]"));
    term.type_keys(b"print('from' + ' term')\r");
    b.until(
        10,
        "document.querySelector('.xterm-rows').innerText.includes('from term')",
    )
    .await;
    b.type_keys("print('from' + ' page')\n").await;
    eventually(10, "the page's line in term", || {
        term.text().contains("from page")
    });
    drop(term);
    b.close().await;
    assert!(m.unmount().status.success());
}

/// The page opens on the line the board's terminal shows (here a
/// program's `input()` prompt), drawn by the server: nothing is typed to
/// the board to get a prompt, so the program still waits for its answer
/// (an Enter from the page once answered it with '').
#[tokio::test(flavor = "multi_thread")]
async fn the_page_opens_on_the_repls_line_without_typing_to_the_board() {
    let tb = TestBoard::start();
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let mut term = term_of(&m);
    eventually(10, "term attached", || term.text().contains("Ctrl-]"));
    term.type_keys(b"s = input('na' + 'me? '); print('got', repr(s))\r");
    eventually(10, "the program asks", || term.text().ends_with("name? "));
    let b = Browser::start().await;
    b.client.goto(&page_of(&m)).await.expect("open the page");
    b.until(
        10,
        "document.body.dataset.term === 'connected' && document.querySelector('.xterm-rows').innerText.includes('name? ')",
    )
    .await;
    b.type_keys("Ada\n").await;
    eventually(10, "the answer typed in the page", || {
        term.text().contains("got 'Ada'")
    });
    assert!(!term.text().contains("got ''"), "{}", term.text());
    drop(term);
    b.close().await;
    assert!(m.unmount().status.success());
}

/// A paste far longer than the board's 256-byte input buffer arrives whole.
#[tokio::test(flavor = "multi_thread")]
async fn a_long_paste_reaches_the_board_whole() {
    let tb = TestBoard::with_ring(Some(256));
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let b = Browser::start().await;
    b.client.goto(&page_of(&m)).await.expect("open the page");
    b.until(10, "document.body.dataset.term === 'connected'")
        .await;
    // As the browser pastes: a paste event on the terminal's input.
    let line: String = (0..3000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let text = format!("x = '{line}'\nprint(len(x), x[-3:])\n");
    b.client
        .execute(
            "const dt = new DataTransfer(); dt.setData('text/plain', arguments[0]);
             document.querySelector('.xterm-helper-textarea')
               .dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt, bubbles: true}));",
            vec![serde_json::json!(text)],
        )
        .await
        .expect("paste");
    let tail = &line[line.len() - 3..];
    b.until(
        30,
        &format!("document.querySelector('.xterm-rows').innerText.includes('3000 {tail}')"),
    )
    .await;
    b.close().await;
    assert!(m.unmount().status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_files_panel_uploads_downloads_renames_and_deletes() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/main.py"), "print('hello from main')\n").expect("seed");
    std::fs::write(tb.path("/config.json"), "{\"ssid\": \"home\"}\n").expect("seed");
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let url = page_of(&m);
    let b = Browser::start().await;
    b.client.goto(&url).await.expect("open the page");
    b.until(
        10,
        "!!document.querySelector(\"#tree li[data-path='/main.py']\")",
    )
    .await;
    // Upload with the picker: the bytes reach the board.
    let local = tempfile::tempdir().expect("local");
    let data = random_bytes(30_000, 11);
    let src = local.path().join("up.bin");
    std::fs::write(&src, &data).expect("write");
    b.pick(&src).await;
    eventually(20, "the upload on the board", || {
        std::fs::read(tb.path("/up.bin")).is_ok_and(|d| d == data)
    });
    // Drag and drop onto the panel: the files dropped reach the board.
    b.client
        .execute(
            "const dt = new DataTransfer();
             dt.items.add(new File(['dropped one\\n'], 'drop1.txt'));
             dt.items.add(new File(['dropped two\\n'], 'drop2.txt'));
             const panel = document.getElementById('files');
             panel.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true}));
             panel.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true}));",
            vec![],
        )
        .await
        .expect("drop");
    eventually(20, "the dropped files on the board", || {
        std::fs::read(tb.path("/drop1.txt")).is_ok_and(|d| d == b"dropped one\n")
            && std::fs::read(tb.path("/drop2.txt")).is_ok_and(|d| d == b"dropped two\n")
    });
    // Download: the browser saves the board's bytes. (Chromium holds a
    // .py back until the user confirms it, as it does on any site.)
    b.click_row("/config.json", "download").await;
    let saved = b.downloads.path().join("config.json");
    eventually(20, "the download", || {
        std::fs::read(&saved).is_ok_and(|d| d == b"{\"ssid\": \"home\"}\n")
    });
    // Run: its output is in the terminal.
    b.until(10, "document.body.dataset.term === 'connected'")
        .await;
    b.click_row("/main.py", "run").await;
    b.until(
        10,
        "document.querySelector('.xterm-rows').innerText.includes('hello from main')",
    )
    .await;
    // Rename, then delete, each answered in its dialog.
    b.click_row("/up.bin", "rename").await;
    b.answer_dialog(Some("/renamed.bin")).await;
    eventually(20, "the rename on the board", || {
        !tb.path("/up.bin").exists()
            && std::fs::read(tb.path("/renamed.bin")).is_ok_and(|d| d == data)
    });
    b.click_row("/renamed.bin", "delete").await;
    b.answer_dialog(None).await;
    eventually(20, "the delete on the board", || {
        !tb.path("/renamed.bin").exists()
    });
    b.until(
        10,
        "!document.querySelector(\"#tree li[data-path='/renamed.bin']\")",
    )
    .await;
    b.close().await;
    assert!(m.unmount().status.success());
}

/// An upload the board has no room for fails in words, and the board keeps
/// what it had.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_board_is_said_in_words() {
    let tb = TestBoard::with_flash_kb(64);
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let b = Browser::start().await;
    b.client.goto(&page_of(&m)).await.expect("open the page");
    b.until(10, "document.body.dataset.term === 'connected'")
        .await;
    let local = tempfile::tempdir().expect("local");
    let src = local.path().join("huge.bin");
    std::fs::write(&src, random_bytes(200_000, 3)).expect("write");
    b.pick(&src).await;
    b.until(
        60,
        "document.getElementById('message').textContent.includes('no space left on the board')",
    )
    .await;
    assert!(!tb.path("/huge.bin").exists());
    b.close().await;
    assert!(m.unmount().status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_line_turns_red_when_the_link_drops_and_green_when_it_returns() {
    let tb = TestBoard::start();
    let mut emu = LinkEmu::start(tb.port, 1.0);
    let mut m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    let url = page_of(&m);
    let b = Browser::start().await;
    b.client.goto(&url).await.expect("open the page");
    b.until(10, "document.getElementById('status').className === 'up'")
        .await;
    emu.command("refuse on");
    emu.command("cut");
    b.until(15, "document.getElementById('status').className === 'down'")
        .await;
    let red = b
        .eval("getComputedStyle(document.getElementById('status'), '::before').color")
        .await;
    assert_eq!(red, serde_json::json!("rgb(238, 51, 51)"));
    emu.command("refuse off");
    b.until(20, "document.getElementById('status').className === 'up'")
        .await;
    b.close().await;
    assert!(m.unmount().status.success());
}

/// The port and token of a page's address.
fn port_and_token(url: &str) -> (u16, String) {
    let (base, token) = url.trim().split_once("/#").expect("token");
    let port = base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    (port, token.to_string())
}

/// `GET path` with `extra` header lines; the whole answer.
fn http_get(port: u16, path: &str, extra: &str) -> String {
    http(port, "GET", path, extra)
}

/// `METHOD path` (no body) with `extra` header lines; the whole answer.
fn http(port: u16, method: &str, path: &str, extra: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("answer");
    answer
}

/// One raw HTTP request; the status code of the answer.
fn status_of(port: u16, request: &str) -> u16 {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(request.as_bytes()).expect("send");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    // The status line only: a WebSocket's answer never ends.
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n") && s.read(&mut byte).is_ok_and(|n| n == 1) {
        answer.push(byte[0]);
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

#[test]
fn the_page_refuses_requests_without_the_token_or_from_another_site() {
    let tb = TestBoard::start();
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let url = page_of(&m);
    let (port, token) = port_and_token(&url);
    let get = |path: &str, extra: &str| {
        status_of(
            port,
            &format!(
                "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}Connection: close\r\n\r\n"
            ),
        )
    };
    let cookie = format!("Cookie: webrepl_mount_{port}={token}\r\n");
    let header = format!("X-Webrepl-Token: {token}\r\n");
    // The WebSocket's ticket, asked for with the token.
    let ticket = || {
        let a = http(port, "POST", "/api/ticket", &header);
        let body = a.split("\r\n\r\n").nth(1).expect("body");
        let v: serde_json::Value = serde_json::from_str(body).expect("json");
        v["ticket"].as_str().expect("ticket").to_string()
    };
    assert_eq!(get("/", ""), 200, "the page's shell is public");
    // ... and holds nothing of the board, not even its address.
    let shell = http_get(port, "/", "");
    assert!(shell.contains("xterm.js"), "{shell}");
    assert!(
        !shell.contains(&tb.addr()),
        "the shell names the board: {shell}"
    );
    assert_eq!(get("/api/tree", ""), 403);
    assert_eq!(get("/api/file?path=/boot.py", ""), 403);
    assert_eq!(get("/api/tree", "Cookie: webrepl_mount_1=x\r\n"), 403);
    // A cookie is no token: the browser sends it to every port.
    assert_eq!(get("/api/tree", &cookie), 403);
    assert_eq!(
        get("/api/tree", &format!("X-Webrepl-Token: {token}\r\n")),
        200
    );
    // Another site's page in the same browser, even with the token.
    assert_eq!(
        get(
            "/api/tree",
            &format!("{header}Origin: http://evil.example\r\n")
        ),
        403
    );
    let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let t = ticket();
    assert_eq!(
        get(
            &format!("/term?ticket={t}"),
            &format!("{upgrade}Origin: http://evil.example\r\n")
        ),
        403
    );
    assert_eq!(get("/term", &format!("{cookie}{upgrade}")), 403);
    let t = ticket();
    let page = format!("{upgrade}Origin: http://127.0.0.1:{port}\r\n");
    assert_eq!(get(&format!("/term?ticket={t}"), &page), 101);
    assert_eq!(
        get(&format!("/term?ticket={t}"), &page),
        403,
        "a ticket twice"
    );
    // DNS rebinding: a page of another name resolved to 127.0.0.1.
    assert_eq!(
        status_of(
            port,
            &format!(
                "GET /api/tree HTTP/1.1\r\nHost: rebind.example:{port}\r\n{header}Connection: close\r\n\r\n"
            )
        ),
        403
    );
    assert!(m.unmount().status.success());
}

/// `web HOST` serves a board of its own; `--web` starts the page with a
/// mount, and `status` names it.
#[test]
fn the_page_of_an_unmounted_board_and_of_a_mount_started_with_web() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/boot.py"), "# boot\n").expect("seed");
    let mut web = common::Reaped(
        std::process::Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
            .args(["web", &tb.addr(), "--listen", "127.0.0.1:0"])
            .env("WEBREPL_PASSWORD", &tb.password)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("web"),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(web.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("the address");
    let (port, token) = port_and_token(&line);
    let answer = http_get(port, "/api/tree", &format!("X-Webrepl-Token: {token}\r\n"));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"path\":\"/boot.py\""), "{answer}");
    // SAFETY: signals our own child.
    unsafe { libc::kill(web.id() as i32, libc::SIGINT) };
    assert!(web.wait().expect("exit").success());

    let mut m = Mount::start(&tb, &tb.addr(), &["--web", "0"]);
    let status = m.status_until(10, |s| s.contains("page: http://127.0.0.1:"));
    let url = page_of(&m);
    assert!(status.contains(&format!("page: {url}")), "{status}");
    // Deleting the root is refused in words, not "busy" (the mountpoint's
    // EBUSY), and the mount goes on.
    let (port, token) = port_and_token(&url);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "POST /api/remove?path=/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Webrepl-Token: {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("cannot delete /"), "{answer}");
    assert!(m.unmount().status.success());
    // Mounted again, the board's page is at the same address: the browser
    // keeps a page's drafts per address (a free port each time lost them).
    let mut m = Mount::start(&tb, &tb.addr(), &["--web", "0"]);
    m.status_until(10, |s| s.contains("page: http://127.0.0.1:"));
    assert_eq!(port_and_token(&page_of(&m)).0, port);
    assert!(m.unmount().status.success());
}

/// The page's download of a file of the mount goes through the mount's
/// cache, not its mountpoint (served by the same daemon): an unmount while
/// it runs ends, and so does the daemon.
#[test]
fn an_unmount_while_the_page_downloads_a_file_of_the_mount_ends() {
    let tb = TestBoard::start();
    let big = random_bytes(400_000, 31);
    std::fs::write(tb.path("/big.bin"), &big).expect("seed");
    let emu = LinkEmu::slow(tb.port);
    let mut m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &["--web", "0"]);
    m.status_until(10, |s| s.contains("page: http://127.0.0.1:"));
    let (port, token) = port_and_token(&page_of(&m));
    // 20 s of file at 20 KB/s.
    let download = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        write!(
            s,
            "GET /api/file?path=/big.bin HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Webrepl-Token: {token}\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
    });
    m.status_until(20, |s| s.contains("moving: down /big.bin"));
    let mut unmount = common::Reaped(
        m.cmd()
            .arg("unmount")
            .arg(m.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unmount"),
    );
    let mut done = None;
    eventually(30, "the unmount to end", || {
        done = unmount.try_wait().expect("wait");
        done.is_some()
    });
    assert!(done.expect("ended").success());
    assert!(m.wait().success(), "the daemon");
    assert!(!common::mounted(m.path()));
    let _ = download.join();
}
