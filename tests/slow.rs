//! A board as slow as an ESP32 (the link emulator at 20 KB/s each way, 10 ms
//! round trip): nothing a person does waits behind a transfer, long uploads
//! do not time out, and transfers never step on each other. Order is
//! asserted, not times.

mod common;

use common::{LinkEmu, Mount, TestBoard, eventually, eventually_with, random_bytes, sh};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[test]
fn a_300_kb_upload_with_the_default_timeout_succeeds_and_leaves_no_part_file() {
    let tb = TestBoard::start();
    let emu = LinkEmu::slow(tb.port);
    let data = random_bytes(300_000, 1);
    let src = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(src.path(), &data).unwrap();
    // 15 s at 20 KB/s, with the board silent until the end: longer than the
    // 10 s time-out, which counts only a standstill.
    let out = Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
        .args(["cp", src.path().to_str().unwrap()])
        .arg(format!("127.0.0.1:{}:/big.bin", emu.port))
        .env("WEBREPL_PASSWORD", &tb.password)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(tb.path("/big.bin")).unwrap(), data);
    assert!(tb.parts("/").is_empty());
}

/// Reads a file in a thread; the flag says when it is done.
fn reader(path: std::path::PathBuf) -> (Arc<AtomicBool>, std::thread::JoinHandle<Vec<u8>>) {
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let t = std::thread::spawn(move || {
        let d = std::fs::read(path).unwrap();
        flag.store(true, Ordering::SeqCst);
        d
    });
    (done, t)
}

#[test]
fn while_a_big_file_is_read_listings_stats_cached_reads_and_its_start_come_first() {
    let tb = TestBoard::start();
    let big = random_bytes(200_000, 2);
    std::fs::write(tb.path("/big.bin"), &big).unwrap();
    std::fs::write(tb.path("/small.txt"), "cached\n").unwrap();
    std::fs::create_dir(tb.path("/lib")).unwrap();
    for i in 0..10 {
        std::fs::write(tb.path(&format!("/lib/m{i}.py")), format!("x = {i}\n")).unwrap();
    }
    let emu = LinkEmu::slow(tb.port);
    let mut m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    assert_eq!(
        std::fs::read(m.path().join("small.txt")).unwrap(),
        b"cached\n"
    );
    let (done, t) = reader(m.path().join("big.bin"));
    m.status_until(10, |s| s.contains("moving: down /big.bin"));
    // The snapshot and the cache answer meanwhile.
    let names = std::fs::read_dir(m.path().join("lib")).unwrap().count();
    assert_eq!(names, 10);
    let md = std::fs::metadata(m.path().join("lib/m3.py")).unwrap();
    assert_eq!(md.len(), 6);
    assert_eq!(
        std::fs::read(m.path().join("small.txt")).unwrap(),
        b"cached\n"
    );
    // A second reader shares the one transfer and gets its start at once;
    // it gives up (killed) without breaking the transfer for the first.
    let mut head = Command::new("head")
        .args(["-c", "100"])
        .arg(m.path().join("big.bin"))
        .output()
        .unwrap();
    assert_eq!(head.stdout, &big[..100]);
    let mut cat = Command::new("cat")
        .arg(m.path().join("big.bin"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = m.status();
    assert_eq!(status.matches("moving:").count(), 1, "{status}");
    assert!(!status.contains("queued:"), "a second GET: {status}");
    assert!(
        !done.load(Ordering::SeqCst),
        "the read ended before the others answered"
    );
    // Killed, `cat` goes once its read is answered: with the rest of the
    // file (a short answer would end the file for the page cache).
    cat.kill().unwrap();
    cat.wait().unwrap();
    assert_eq!(t.join().unwrap(), big);
    head.stdout.clear();
    assert!(m.unmount().status.success());
}

#[test]
fn concurrent_saves_into_one_directory_each_use_their_own_part_file() {
    let tb = TestBoard::start();
    std::fs::create_dir(tb.path("/app")).unwrap();
    let emu = LinkEmu::slow(tb.port);
    // Each close waits for its own upload (the link takes 6 s for all three).
    let mut m = Mount::start(
        &tb,
        &format!("127.0.0.1:{}", emu.port),
        &["--close-wait", "60"],
    );
    let saves: Vec<_> = (0..3)
        .map(|i| {
            let p = m.path().join(format!("app/f{i}.bin"));
            std::thread::spawn(move || {
                common::write_and_close(&p, &random_bytes(40_000, 10 + i))
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    // While they upload, their part files are there side by side.
    eventually(20, "two uploads in flight at once", || {
        tb.parts("/app").len() >= 2
    });
    for s in saves {
        s.join().unwrap().unwrap();
    }
    for i in 0..3 {
        assert_eq!(
            std::fs::read(tb.path(&format!("/app/f{i}.bin"))).unwrap(),
            random_bytes(40_000, 10 + i)
        );
    }
    assert!(tb.parts("/app").is_empty());
    assert!(m.unmount().status.success());
}

#[test]
fn part_files_left_by_an_earlier_mount_are_removed_when_mounting() {
    let tb = TestBoard::start();
    std::fs::create_dir(tb.path("/lib")).unwrap();
    std::fs::write(tb.path("/.wrm-00abcd"), random_bytes(5000, 3)).unwrap();
    std::fs::write(tb.path("/lib/.wrm-part"), random_bytes(5000, 4)).unwrap();
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    eventually(10, "stale part files removed", || {
        tb.parts("/").is_empty() && tb.parts("/lib").is_empty()
    });
    assert!(!std::fs::read_dir(m.path()).unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".wrm-")
    }));
    assert!(m.unmount().status.success());
}

#[test]
fn an_endless_exec_through_the_daemon_is_stopped_by_its_caller_and_the_mount_answers() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/main.py"), "print(1)\n").unwrap();
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let mut exec = m
        .cmd()
        .arg("exec")
        .arg(m.path())
        .arg("open('/spinning','w').close()\nwhile True: pass")
        .spawn()
        .unwrap();
    eventually(10, "the program to run", || tb.path("/spinning").exists());
    // Snapshot answers go on meanwhile.
    let names: Vec<_> = std::fs::read_dir(m.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["main.py"]);
    // Ctrl-C at the caller: it dies, the daemon stops the program.
    unsafe { libc::kill(exec.id() as i32, libc::SIGINT) };
    exec.wait().unwrap();
    std::fs::create_dir(m.path().join("after")).unwrap();
    assert!(tb.path("/after").is_dir());
    let status = m.status();
    assert!(!status.contains("waiting:"), "{status}");
    assert!(m.unmount().status.success());
}

#[test]
fn a_small_uncached_file_read_during_a_big_upload_is_read_before_the_upload_lands() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/small.txt"), b"abc").unwrap();
    let big = random_bytes(300_000, 8);
    let emu = LinkEmu::slow(tb.port);
    let m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    let writer = {
        let (p, big) = (m.path().join("up.bin"), big.clone());
        std::thread::spawn(move || common::write_and_close(&p, &big))
    };
    // 15 s of file at 20 KB/s; the read goes between two of its slices.
    // `status` names the file, not the part files its slices go to.
    let status = m.status_until(20, |s| s.contains("moving: up"));
    assert!(
        status.contains("moving: up /up.bin ") && !status.contains(".wrm-"),
        "{status}"
    );
    let asked = std::time::Instant::now();
    assert_eq!(std::fs::read(m.path().join("small.txt")).unwrap(), b"abc");
    eprintln!(
        "a 3-byte uncached read during the upload: {:?}",
        asked.elapsed()
    );
    assert!(
        std::fs::read(tb.path("/up.bin")).is_err(),
        "the 300 KB upload landed before a 3-byte read"
    );
    writer.join().unwrap().unwrap();
    eventually(60, "the upload reaches the board", || {
        std::fs::read(tb.path("/up.bin")).is_ok_and(|d| d == big)
    });
}

/// Bytes the mount has had from the board so far (its `status`).
fn bytes_in(m: &Mount) -> u64 {
    let s = m.status();
    s.lines()
        .find_map(|l| l.strip_prefix("traffic: "))
        .and_then(|l| l.split(" B from it").next())
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no traffic in status: {s}"))
}

/// A person's program through the mount's `exec`, running 40 s (it
/// sleeps: a program that holds the REPL and says nothing), once its
/// first line says it runs.
fn persons_program(m: &Mount) -> std::process::Child {
    let mut exec = m
        .cmd()
        .arg("exec")
        .arg(m.path())
        .arg("import time\nprint('on')\nfor i in range(40):\n time.sleep(1)")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut on = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(exec.stdout.take().unwrap()),
        &mut on,
    )
    .unwrap();
    assert_eq!(on, "on\n");
    exec
}

fn head(path: &std::path::Path, n: usize) -> Vec<u8> {
    let out = Command::new("head")
        .args(["-c", &n.to_string()])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

#[test]
fn the_head_of_an_uncached_big_file_is_read_as_a_range_and_a_reader_going_on_reads_it_whole() {
    let tb = TestBoard::start();
    let big = random_bytes(300_000, 21);
    std::fs::write(tb.path("/big.bin"), &big).unwrap();
    let emu = LinkEmu::slow(tb.port);
    let mut m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    let before = bytes_in(&m);
    assert_eq!(head(&m.path().join("big.bin"), 100), &big[..100]);
    // Its end too, as a file manager looking for a trailer reads it.
    let out = Command::new("tail")
        .args(["-c", "100"])
        .arg(m.path().join("big.bin"))
        .output()
        .unwrap();
    assert_eq!(out.stdout, &big[big.len() - 100..]);
    let moved = bytes_in(&m) - before;
    eprintln!("head -c 100 and tail -c 100 of an uncached 300 KB file: {moved} B from the board");
    assert!(moved <= 2 * 16 * 1024, "{moved} B moved for two peeks");
    let status = m.status();
    assert!(!status.contains("moving:"), "{status}");
    // A reader that goes on reading gets the whole file, by a transfer.
    assert_eq!(std::fs::read(m.path().join("big.bin")).unwrap(), big);
    assert!(bytes_in(&m) - before > 300_000);
    assert!(m.unmount().status.success());
}

#[test]
fn the_first_small_read_in_a_directory_brings_only_the_siblings_the_link_moves_quickly() {
    let tb = TestBoard::start();
    std::fs::create_dir(tb.path("/lib")).unwrap();
    let files: Vec<Vec<u8>> = (0..60).map(|i| random_bytes(400, 100 + i)).collect();
    for (i, d) in files.iter().enumerate() {
        std::fs::write(tb.path(&format!("/lib/s{i:02}.bin")), d).unwrap();
    }
    // A GET of one chunk before: its pace is no measure of the link (it
    // made the batch the 48 KB cap, 32 KB moved).
    std::fs::write(tb.path("/one.txt"), "7 bytes").unwrap();
    let emu = LinkEmu::slow(tb.port);
    let mut m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    assert_eq!(std::fs::read(m.path().join("one.txt")).unwrap(), b"7 bytes");
    let before = bytes_in(&m);
    assert_eq!(
        std::fs::read(m.path().join("lib/s07.bin")).unwrap(),
        files[7]
    );
    // 24 KB of siblings came along (2.1-2.65 s at 20 KB/s, the reader
    // waiting for all of it); a fifth of a second's worth is about 3 KB,
    // 4 KB in base64.
    let moved = bytes_in(&m) - before;
    eprintln!("first small read of 60 in a directory: {moved} B from the board");
    assert!(moved < 10_000, "{moved} B moved for one 400-byte file");
    // The others are read as they are asked for.
    for (i, d) in files.iter().enumerate() {
        assert_eq!(
            std::fs::read(m.path().join(format!("lib/s{i:02}.bin"))).unwrap(),
            *d
        );
    }
    assert!(m.unmount().status.success());
}

#[test]
fn during_a_download_the_head_of_another_uncached_big_file_comes_before_the_download_ends() {
    let tb = TestBoard::start();
    let (big, big2) = (random_bytes(200_000, 22), random_bytes(200_000, 23));
    std::fs::write(tb.path("/big.bin"), &big).unwrap();
    std::fs::write(tb.path("/big2.bin"), &big2).unwrap();
    let emu = LinkEmu::slow(tb.port);
    let mut m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    let (done, t) = reader(m.path().join("big.bin"));
    m.status_until(10, |s| s.contains("moving: down /big.bin"));
    let asked = std::time::Instant::now();
    assert_eq!(head(&m.path().join("big2.bin"), 100), &big2[..100]);
    eprintln!("head -c 100 during a download: {:?}", asked.elapsed());
    assert!(
        !done.load(Ordering::SeqCst),
        "the 200 KB download ended before the head of another file"
    );
    let status = m.status();
    assert!(
        !status.contains("big2"),
        "big2.bin is transferred: {status}"
    );
    assert_eq!(t.join().unwrap(), big);
    assert!(m.unmount().status.success());
}

/// While a person's program holds the REPL (no range read by program),
/// `head -c 100` of an uncached big file gets its bytes from the whole
/// file's GET as they come: that GET is not checked by a program either.
/// It waited for the whole file (16.5 s for 300 KB at 20 KB/s).
#[test]
fn beside_a_persons_program_the_head_of_an_uncached_big_file_comes_before_its_download_ends() {
    let tb = TestBoard::start();
    let big = random_bytes(200_000, 26);
    std::fs::write(tb.path("/big.bin"), &big).unwrap();
    let emu = LinkEmu::slow(tb.port);
    let mut m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    let mut exec = persons_program(&m);
    assert_eq!(head(&m.path().join("big.bin"), 100), &big[..100]);
    let status = m.status();
    assert!(
        status.contains("moving: down /big.bin"),
        "the download is not under way after the head came: {status}\n{}",
        m.log()
    );
    // The rest comes whole, and a reader of all of it gets it exact.
    assert_eq!(std::fs::read(m.path().join("big.bin")).unwrap(), big);
    unsafe { libc::kill(exec.id() as i32, libc::SIGINT) };
    exec.wait().unwrap();
    assert!(m.unmount().status.success());
}

/// The same after a download on a link of 15 KB/s, where a GET's chunks
/// come about as slowly as a throttled board's: the read waited for a
/// probe of the link's rate, a program, until the person's program ended.
#[test]
fn beside_a_persons_program_after_a_slow_download_the_head_of_another_file_comes_at_once() {
    let tb = TestBoard::start();
    let (one, two) = (random_bytes(60_000, 27), random_bytes(60_000, 28));
    std::fs::write(tb.path("/one.bin"), &one).unwrap();
    std::fs::write(tb.path("/two.bin"), &two).unwrap();
    let emu = LinkEmu::with(tb.port, 5.0, &["--rate", "15000", "--segment", "1460"]);
    let mut m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    assert_eq!(std::fs::read(m.path().join("one.bin")).unwrap(), one);
    let mut exec = persons_program(&m);
    assert_eq!(head(&m.path().join("two.bin"), 100), &two[..100]);
    assert!(
        exec.try_wait().unwrap().is_none(),
        "the head came only once the person's program had ended"
    );
    unsafe { libc::kill(exec.id() as i32, libc::SIGINT) };
    exec.wait().unwrap();
    assert!(m.unmount().status.success());
}

/// Reads of a cached file held open a moment (an editor's, `tail`'s)
/// beside an upload run no program: the look at the file's size on the
/// board waited for a slice of the upload to end, and the read with it
/// (0.4-0.75 s each).
#[test]
fn beside_an_upload_reads_of_a_cached_file_run_no_program() {
    use std::io::Read;
    let tb = TestBoard::start();
    std::fs::write(tb.path("/cached.txt"), "cached\n").unwrap();
    let emu = LinkEmu::with(tb.port, 5.0, &["--rate", "20000", "--segment", "1460"]);
    let m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    let cached = m.path().join("cached.txt");
    assert_eq!(std::fs::read(&cached).unwrap(), b"cached\n");
    let writer = {
        let p = m.path().join("up.bin");
        std::thread::spawn(move || common::write_and_close(&p, &random_bytes(300_000, 29)))
    };
    m.status_until(20, |s| s.contains("moving: up"));
    let programs = || {
        let s = m.status();
        s.lines()
            .find_map(|l| {
                let l = l.strip_prefix("traffic: ")?;
                l.split(", ")
                    .find_map(|f| f.strip_suffix(" programs")?.parse::<u64>().ok())
            })
            .unwrap_or_else(|| panic!("no programs in the status: {s}"))
    };
    let before = programs();
    // An editor's reads for 3.6 s, past the attribute time-out (1 s) and
    // the least time between two looks (1 s) several times: each holds
    // the file open a moment (the hold is what makes the mount look).
    let reading = std::time::Instant::now();
    while reading.elapsed() < std::time::Duration::from_millis(3600) {
        let mut f = std::fs::File::open(&cached).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let mut d = Vec::new();
        f.read_to_end(&mut d).unwrap();
        assert_eq!(d, b"cached\n");
    }
    let status = m.status();
    assert!(
        status.contains("moving: up"),
        "the upload ended first: {status}"
    );
    assert_eq!(programs(), before, "{status}");
    writer.join().unwrap().unwrap();
}

/// A small file alone in its directory (no neighbours to bring along),
/// read during a big download: by program, beside the GET, not after it
/// (it waited 6-8 s for the whole download).
#[test]
fn during_a_download_a_small_file_alone_in_its_directory_is_read_before_the_download_ends() {
    let tb = TestBoard::start();
    let big = random_bytes(200_000, 25);
    std::fs::write(tb.path("/big.bin"), &big).unwrap();
    std::fs::create_dir(tb.path("/conf")).unwrap();
    std::fs::write(tb.path("/conf/wifi.json"), "{\"ssid\": \"lab\"}\n").unwrap();
    let emu = LinkEmu::slow(tb.port);
    let mut m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    let (done, t) = reader(m.path().join("big.bin"));
    m.status_until(10, |s| s.contains("moving: down /big.bin"));
    let asked = std::time::Instant::now();
    assert_eq!(
        std::fs::read(m.path().join("conf/wifi.json")).unwrap(),
        b"{\"ssid\": \"lab\"}\n"
    );
    eprintln!(
        "a small file alone during a download: {:?}",
        asked.elapsed()
    );
    assert!(
        !done.load(Ordering::SeqCst),
        "the 200 KB download ended before the small file was read"
    );
    assert_eq!(t.join().unwrap(), big);
    assert!(m.unmount().status.success());
}

/// A save, then `exec` through the mount at once (an editor's save, then
/// a run): the program runs the saved file. The upload outlasts the close
/// wait at 20 KB/s, and the program ran the board's old copy.
#[test]
fn exec_through_a_mount_runs_after_the_saves_before_it_have_landed() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/main.py"), "VERSION = 1\n").unwrap();
    let emu = LinkEmu::slow(tb.port);
    let m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    assert_eq!(
        std::fs::read(m.path().join("main.py")).unwrap(),
        b"VERSION = 1\n"
    );
    // 100 KB of text that compresses as little as minified code: about
    // 4 s on the link, twice the close wait.
    let noise: String = random_bytes(75_000, 26)
        .chunks(57)
        .map(|c| {
            use base64::Engine;
            format!(
                "# {}\n",
                base64::engine::general_purpose::STANDARD.encode(c)
            )
        })
        .collect();
    let body = format!("VERSION = 2\n{noise}");
    common::write_and_close(&m.path().join("main.py"), body.as_bytes()).unwrap();
    let out = m.exec("print(open('/main.py').readline().strip())");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "VERSION = 2");
    assert_eq!(std::fs::read(tb.path("/main.py")).unwrap(), body.as_bytes());
}

#[test]
fn tail_f_follows_a_file_that_a_running_program_appends_to() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/log.txt"), "line 0\n").unwrap();
    let emu = LinkEmu::slow(tb.port);
    let mut m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    // A data logger: a line a second, for as long as it runs.
    let mut exec = m
        .cmd()
        .arg("exec")
        .arg(m.path())
        .arg(
            "import time\nfor i in range(1, 120):\n f=open('/log.txt','a')\n \
             f.write('line %d\\n' % i)\n f.close()\n time.sleep(1)",
        )
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    eventually(20, "the program to run", || {
        std::fs::read_to_string(tb.path("/log.txt")).is_ok_and(|t| t.contains("line 1"))
    });
    // Polling, as on any FUSE mount (inotify never hears of the board).
    let mut tail = Command::new("tail")
        .args(["---disable-inotify", "-f"])
        .arg(m.path().join("log.txt"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let seen = lines_until(&mut tail, "line 6", 30);
    let _ = tail.kill();
    let _ = tail.wait();
    unsafe { libc::kill(exec.id() as i32, libc::SIGINT) };
    exec.wait().unwrap();
    let seen = seen.expect("tail -f showed no line the running program wrote after it started");
    let board = std::fs::read_to_string(tb.path("/log.txt")).unwrap();
    assert!(
        board.starts_with(&(seen.join("\n") + "\n")),
        "{seen:?} of {board:?}"
    );
    assert!(m.unmount().status.success());
}

#[test]
fn tail_f_follows_a_file_over_64_kb_a_running_program_appends_to_on_a_fast_link() {
    // A GET beside the program fetches the whole file each look: bounded
    // by its time on the link as measured (a few seconds), not by 64 KB
    // whatever the link (the file was followed only once the program ended).
    let tb = TestBoard::start();
    let mut start = "# a long log\n".repeat(8_000);
    start.push_str("line 0\n");
    std::fs::write(tb.path("/log.txt"), &start).unwrap();
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    // Read once: the link's rate is measured, the file held whole.
    assert_eq!(
        std::fs::read_to_string(m.path().join("log.txt")).unwrap(),
        start
    );
    let mut exec = m
        .cmd()
        .arg("exec")
        .arg(m.path())
        .arg(
            "import time\nfor i in range(1, 120):\n f=open('/log.txt','a')\n \
             f.write('line %d\\n' % i)\n f.close()\n time.sleep(1)",
        )
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    eventually(20, "the program to run", || {
        std::fs::read_to_string(tb.path("/log.txt")).is_ok_and(|t| t.contains("line 1"))
    });
    let mut tail = Command::new("tail")
        .args(["---disable-inotify", "-n", "1", "-f"])
        .arg(m.path().join("log.txt"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let seen = lines_until(&mut tail, "line 6", 30);
    let _ = tail.kill();
    let _ = tail.wait();
    unsafe { libc::kill(exec.id() as i32, libc::SIGINT) };
    exec.wait().unwrap();
    let seen = seen.expect("tail -f showed no line the running program wrote after it started");
    assert!(seen.len() > 1, "{seen:?}");
    assert!(m.unmount().status.success());
}

/// Reads `child`'s stdout line by line until a line is `want`; the lines
/// seen, or None if the stream ended first or the deadline passed.
fn lines_until(child: &mut std::process::Child, want: &str, secs: u64) -> Option<Vec<String>> {
    use std::io::BufRead;
    let out = child.stdout.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut seen = Vec::new();
    loop {
        let left = deadline.checked_duration_since(std::time::Instant::now())?;
        let l = rx.recv_timeout(left).ok()?;
        let done = l == want;
        seen.push(l);
        if done {
            // Dropping `rx` closes the pipe on the next line the child writes.
            return Some(seen);
        }
    }
}

/// An endless program's output comes while it runs; closing the pipe
/// stops it on the board, which then answers the next program.
fn endless_exec_is_followed_then_stopped(cmd: impl Fn() -> std::process::Command, target: &str) {
    let endless =
        "import time\nn = 0\nwhile True:\n    print('tick', n)\n    n += 1\n    time.sleep(0.02)\n";
    let mut exec = cmd()
        .args(["exec", target, endless])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Held until the program's end, it would never come.
    let seen = lines_until(&mut exec, "tick 20", 20);
    assert!(seen.is_some(), "{target}: no output while the program ran");
    let status = exec.wait().unwrap();
    assert!(!status.success(), "{target}: {status:?}");
    let o = cmd().args(["exec", target, "print(6*7)"]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "42\n",
        "{target}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn an_endless_exec_streams_its_output_and_a_closed_pipe_stops_it_on_the_board() {
    let tb = TestBoard::start();
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    endless_exec_is_followed_then_stopped(|| m.cmd(), &m.path().display().to_string());
    assert!(m.unmount().status.success());
    endless_exec_is_followed_then_stopped(
        || {
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_webrepl-mount"));
            c.env("WEBREPL_PASSWORD", &tb.password);
            c
        },
        &tb.addr(),
    );
}

#[test]
fn an_exec_whose_output_nobody_reads_is_stopped_not_held() {
    let tb = TestBoard::start();
    // stdout a pipe nobody reads: a program that prints faster than anyone
    // reads is stopped with a reason, not held in memory. (The board is not
    // asked again: the test board's Python listener can die when the
    // Ctrl-C lands inside its terminal write, which a real board's C
    // dupterm does not.)
    let mut fast = std::process::Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
        .env("WEBREPL_PASSWORD", &tb.password)
        .args([
            "exec",
            &tb.addr(),
            "s = 'x' * 1000\nwhile True:\n    print(s)\n",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Failing, the exec is left to end with the board (dropped after it).
    let status = eventually_with(120, || {
        let ended = fast.try_wait().unwrap();
        ended.ok_or_else(|| "still held: the exec has not ended".to_string())
    });
    assert!(!status.success(), "{status:?}");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut fast.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("more than was read"), "{err}");
}

/// sed -i while another file's upload holds the wire: its temporary file
/// waits in the queue past the close wait, and is renamed over the target
/// there. The save still goes, under the target's name, once the wire is
/// free (it stayed dirty, unsent, until unmount).
#[test]
fn a_sed_i_saved_while_an_upload_holds_the_wire_reaches_the_board_after_it() {
    let tb = TestBoard::start();
    let lines: String = (1..=3000).map(|i| format!("{i}\n")).collect();
    std::fs::write(tb.path("/x.py"), &lines).unwrap();
    let big = random_bytes(200_000, 9);
    let emu = LinkEmu::slow(tb.port);
    let m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    // A peek at the file first, as an editor's or file manager's.
    assert_eq!(sh(&format!("head -1 {}/x.py", m.path().display())), "1\n");
    let writer = {
        let (p, big) = (m.path().join("up.bin"), big.clone());
        std::thread::spawn(move || common::write_and_close(&p, &big))
    };
    m.status_until(20, |s| s.contains("moving: up"));
    let sed = std::process::Command::new("sed")
        .args(["-i", "s/^1$/M/"])
        .arg(m.path().join("x.py"))
        .output()
        .unwrap();
    assert!(
        sed.status.success(),
        "{}",
        String::from_utf8_lossy(&sed.stderr)
    );
    writer.join().unwrap().unwrap();
    let want = lines.replacen("1\n", "M\n", 1);
    eventually(60, "the edit reaches the board", || {
        std::fs::read(tb.path("/x.py")).is_ok_and(|d| d == want.as_bytes())
    });
    eventually(60, "the upload is on the board", || {
        std::fs::read(tb.path("/up.bin")).is_ok_and(|d| d == big)
    });
    m.status_until(10, |s| !s.contains("dirty:"));
}

/// `cp FILE HOST:/` of a mounted board goes through the mount; on a slow
/// link it exited 0 after the mount's 2 s close wait with the file still
/// queued (`cp && exec` ran the old version). It returns once the file is
/// on the board, exact.
#[test]
fn cp_to_a_mounted_board_returns_once_the_file_is_on_the_board() {
    let tb = TestBoard::start();
    let emu = LinkEmu::slow(tb.port);
    let board = format!("127.0.0.1:{}", emu.port);
    let mut m = Mount::start(&tb, &board, &[]);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("r.bin");
    let data = random_bytes(100_000, 21);
    std::fs::write(&src, &data).unwrap();
    let o = m
        .cmd()
        .args(["cp", src.to_str().unwrap(), &format!("{board}:/")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // No waiting: on the board when cp returns.
    let there = std::fs::read(tb.path("/r.bin")).ok();
    assert!(
        there.as_ref() == Some(&data),
        "not on the board when cp returned: {:?} B",
        there.map(|d| d.len())
    );
    assert!(tb.parts("/").is_empty());
    assert!(m.unmount().status.success());
}

#[test]
fn a_reader_going_on_gets_its_bytes_before_the_whole_file_and_full_reads_at_any_offset() {
    use std::io::{Read, Seek, SeekFrom};
    let tb = TestBoard::start();
    let big = random_bytes(200_000, 23);
    std::fs::write(tb.path("/big.bin"), &big).unwrap();
    let emu = LinkEmu::slow(tb.port);
    let mut m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    let before = bytes_in(&m);
    // Two reads in order: the second starts the whole file's download and
    // is answered by a range, not after the whole file (it waited 10 s).
    let mut f = std::fs::File::open(m.path().join("big.bin")).unwrap();
    let mut got = vec![0; 5000];
    f.read_exact(&mut got[..1000]).unwrap();
    f.read_exact(&mut got[1000..]).unwrap();
    assert_eq!(got, &big[..5000]);
    let moved = bytes_in(&m) - before;
    let status = m.status();
    eprintln!("5000 B in two reads: {moved} B from the board; {status}");
    assert!(moved < 100_000, "{moved} B moved for 5000 B");
    // A read at an offset (`dd skip=100`) gets all it asked for, not a
    // short piece (2352 B of 3000 came).
    let mut g = std::fs::File::open(m.path().join("big.bin")).unwrap();
    g.seek(SeekFrom::Start(100_000)).unwrap();
    for i in 0..3 {
        let mut buf = vec![0; 1000];
        let n = g.read(&mut buf).unwrap();
        assert_eq!(n, 1000, "read {i} at {} came short", 100_000 + i * 1000);
        let at = 100_000 + i * 1000;
        assert_eq!(buf, &big[at..at + 1000]);
    }
    drop((f, g));
    assert!(m.unmount().status.success());
}

/// On a board whose flash writes as slowly as an ESP32's (50 KB/s), the
/// slices of a big save are joined in steps, and a key typed while they
/// are joined echoes before the join ends. Joined by the finishing
/// program in one go, 156 KB of slices held the REPL (and the key) for
/// about 3 s; on a real ESP32 a 300 KB file held it for 6.
#[test]
fn a_key_typed_while_a_big_saves_slices_are_joined_echoes_before_the_join_ends() {
    let tb = TestBoard::with_flash_write(50_000);
    let emu = LinkEmu::with(tb.port, 5.0, &["--rate", "20000", "--segment", "1460"]);
    let m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    let mut c = m.cmd();
    c.arg("term").arg(m.path());
    let mut term = common::piped::Piped::spawn(c);
    term.type_keys(b"\r");
    eventually(20, "the prompt", || term.text().contains(">>> "));
    // A person at the terminal: slices shrink to 4 KB, 40 of them.
    term.type_keys(b"1");
    eventually(20, "the echo of 1", || term.text().contains(">>> 1"));
    let data = random_bytes(160_000, 31);
    let writer = {
        let (p, data) = (m.path().join("big.bin"), data.clone());
        std::thread::spawn(move || common::write_and_close(&p, &data))
    };
    let slices = || tb.parts("/").iter().filter(|p| p.contains('.')).count();
    // Every slice landed, then the first few were joined.
    let most = std::cell::Cell::new(0);
    eventually(60, "the join under way", || {
        let n = slices();
        most.set(most.get().max(n));
        most.get() >= 20 && n + 3 <= most.get() && n >= 10
    });
    term.type_keys(b"2");
    eventually(20, "the echo of 2", || term.text().contains(">>> 12"));
    let left = slices();
    assert!(
        left > 0 && !tb.path("/big.bin").exists(),
        "the key waited for the whole join ({left} slices left)"
    );
    eventually(60, "big.bin on the board", || {
        std::fs::read(tb.path("/big.bin")).is_ok_and(|d| d == data)
    });
    writer.join().unwrap().unwrap();
    assert!(tb.parts("/").is_empty(), "{:?}", tb.parts("/"));
    term.type_keys(b"\x03");
}

/// A reader of a big uncached file stopped by Ctrl-C ends at once, not
/// when the whole file has come: the kernel waits for a read it sent us
/// until it is answered, and fuser does not pass its INTERRUPT on. `cat`
/// has no handler for SIGINT (the signal kills it); Python has one (its
/// read must end with EINTR for KeyboardInterrupt to be raised). The next
/// reader gets the whole file.
#[test]
fn a_reader_stopped_by_ctrl_c_while_a_big_file_comes_ends_before_the_download() {
    let tb = TestBoard::start();
    let bigs: Vec<Vec<u8>> = (0..2).map(|i| random_bytes(300_000, 41 + i)).collect();
    for (i, big) in bigs.iter().enumerate() {
        std::fs::write(tb.path(&format!("/big{i}.bin")), big).unwrap();
    }
    let emu = LinkEmu::slow(tb.port);
    let mut m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    let python = "import sys\nopen(sys.argv[1], 'rb').read()";
    for (i, reader) in [vec!["cat"], vec!["/usr/bin/python3", "-c", python]]
        .into_iter()
        .enumerate()
    {
        let (big, name) = (&bigs[i], format!("big{i}.bin"));
        let before = bytes_in(&m);
        let mut r = common::Reaped(
            Command::new(reader[0])
                .args(&reader[1..])
                .arg(m.path().join(&name))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        m.status_until(20, |s| s.contains(&format!("moving: down /{name}")));
        // SAFETY: kill(2) of our own child, which has not been reaped.
        assert_eq!(unsafe { libc::kill(r.id() as i32, libc::SIGINT) }, 0);
        let status = eventually_with(30, || {
            r.try_wait()
                .unwrap()
                .ok_or_else(|| format!("{} still runs", reader[0]))
        });
        let moved = bytes_in(&m) - before;
        assert!(!status.success(), "{}", reader[0]);
        assert!(
            moved < 300_000,
            "{} ended after the whole file came ({moved} B in)",
            reader[0]
        );
        assert_eq!(&std::fs::read(m.path().join(&name)).unwrap(), big);
    }
    assert!(m.unmount().status.success());
}
