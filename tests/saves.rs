//! What close() reports: each close waits for its own file's upload, up to
//! the close wait, and says what the board said in that time (batched or
//! not); past it the file is safe in the journal, close() succeeds, and the
//! file goes when the board can take it: after a person's program, after
//! the link returns.

mod common;

use common::{LinkEmu, Mount, TestBoard, eventually, random_bytes, write_and_close};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_file_too_big_for_the_flash_fails_its_own_close_even_in_a_batch() {
    let tb = TestBoard::with_flash_kb(16);
    std::fs::write(tb.path("/old.bin"), random_bytes(4_000, 1)).unwrap();
    let m = Mount::start(&tb, &tb.addr(), &["--close-wait", "20"]);
    let src = tempfile::tempdir().unwrap();
    let small = random_bytes(2_000, 2);
    std::fs::write(src.path().join("a.py"), &small).unwrap();
    std::fs::write(src.path().join("b.py"), random_bytes(30_000, 3)).unwrap();
    // One cp: b.py's close comes while a.py's upload is on the wire, so
    // the two go in one queue.
    let out = Command::new("cp")
        .arg(src.path().join("a.py"))
        .arg(src.path().join("b.py"))
        .arg(m.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "cp succeeded: {said}");
    assert!(
        said.contains("b.py") && said.contains("No space left"),
        "{said}"
    );
    assert!(!said.contains("a.py"), "{said}");
    assert_eq!(std::fs::read(tb.path("/a.py")).unwrap(), small);
    assert!(!tb.path("/b.py").exists());
    // Still in the mount and dirty, waiting with why.
    let status = m.status();
    assert!(status.contains("dirty: /b.py"), "{status}");
    assert!(status.contains("unsent: /b.py"), "{status}");
}

#[test]
fn a_save_while_a_persons_program_runs_returns_after_the_close_wait_and_lands_after_it() {
    let tb = TestBoard::start();
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    // A person's program that never ends by itself, started with exec.
    let mut program = m
        .cmd()
        .arg("exec")
        .arg(m.path())
        .arg("import time\nwhile True:\n time.sleep_ms(100)\n")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    m.status_until(20, |s| s.contains("programs: 1"));
    let data = b"print('saved while it ran')\n";
    let started = Instant::now();
    write_and_close(&m.path().join("saved.py"), data).unwrap();
    let took = started.elapsed();
    // Order, not tight times: close() came back while the program still
    // ran, and the board does not have the file yet.
    assert!(program.try_wait().unwrap().is_none(), "the program ended");
    assert!(took < Duration::from_secs(15), "close() took {took:?}");
    assert!(!tb.path("/saved.py").exists(), "landed during the program");
    assert!(m.status().contains("dirty: /saved.py"), "{}", m.status());
    // Ctrl-C at the caller stops the program; the file follows.
    let _ = program.kill();
    let _ = program.wait();
    eventually(20, "saved.py on the board", || {
        std::fs::read(tb.path("/saved.py")).is_ok_and(|d| d == data)
    });
    m.status_until(10, |s| !s.contains("dirty:"));
    assert!(m.unmount().status.success());
}

#[test]
fn a_save_with_the_link_cut_returns_after_the_close_wait_and_lands_when_it_returns() {
    let tb = TestBoard::start();
    let mut emu = LinkEmu::start(tb.port, 1.0);
    let mut m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    std::fs::write(m.path().join("first.py"), "1\n").unwrap();
    eventually(10, "first.py on the board", || {
        tb.path("/first.py").exists()
    });
    emu.command("refuse on");
    emu.command("cut");
    let data = random_bytes(20_000, 5);
    let started = Instant::now();
    write_and_close(&m.path().join("cut.bin"), &data).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "close() took {:?}",
        started.elapsed()
    );
    assert!(!tb.path("/cut.bin").exists());
    assert!(m.status().contains("dirty: /cut.bin"), "{}", m.status());
    assert_eq!(std::fs::read(m.path().join("cut.bin")).unwrap(), data);
    emu.command("refuse off");
    eventually(30, "cut.bin on the board", || {
        std::fs::read(tb.path("/cut.bin")).is_ok_and(|d| d == data)
    });
    assert!(m.unmount().status.success());
}
