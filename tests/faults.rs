//! Faults, each checked on the board's own directory afterwards: a link cut
//! during a read, a program and a rename; the board restarting during a
//! flush; a full flash. Nothing lost, nothing truncated.

mod common;

use common::{LinkEmu, Mount, TestBoard, random_bytes};
use std::time::{Duration, Instant};

fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "{what} never happened");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_read_cut_in_the_middle_is_read_again_whole() {
    let tb = TestBoard::start();
    let data = random_bytes(200_000, 1);
    std::fs::write(tb.path("/big.bin"), &data).unwrap();
    let mut emu = LinkEmu::start(tb.port, 1.0);
    let mut m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    emu.command("cut-down 60000");
    assert_eq!(std::fs::read(m.path().join("big.bin")).unwrap(), data);
    assert!(m.status().contains("1 reconnects"), "{}", m.status());
    assert!(m.unmount().status.success());
    assert_eq!(std::fs::read(tb.path("/big.bin")).unwrap(), data);
}

#[test]
fn a_rename_cut_short_leaves_board_and_mount_agreeing() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/a.py"), "a = 1\n").unwrap();
    let mut emu = LinkEmu::start(tb.port, 0.0);
    let mut m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    // The link drops inside the rename program.
    emu.command("cut-up 40");
    let r = std::fs::rename(m.path().join("a.py"), m.path().join("b.py"));
    let on_board = |n: &str| tb.path(n).exists();
    match r {
        Err(e) => {
            assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
            assert!(on_board("/a.py") && !on_board("/b.py"));
        }
        Ok(()) => assert!(!on_board("/a.py") && on_board("/b.py")),
    }
    // After the reconnect the mount shows what the board has.
    let listed: Vec<String> = std::fs::read_dir(m.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    let board: Vec<String> = std::fs::read_dir(tb.root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n != ".wrm-part")
        .collect();
    assert_eq!(listed, board);
    let survivor = &board[0];
    assert_eq!(std::fs::read(tb.path(survivor)).unwrap(), b"a = 1\n");
    std::fs::rename(m.path().join(survivor), m.path().join("c.py")).unwrap();
    assert_eq!(std::fs::read(tb.path("/c.py")).unwrap(), b"a = 1\n");
    assert!(m.unmount().status.success());
}

#[test]
fn a_board_that_restarts_during_a_flush_gets_the_file_once_it_is_back() {
    use std::io::Write;
    let mut tb = TestBoard::start();
    std::fs::write(tb.path("/main.py"), "old\n").unwrap();
    let emu = LinkEmu::start(tb.port, 5.0);
    let mut m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &["--timeout", "2"]);
    let data = random_bytes(300_000, 2);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(m.path().join("main.py"))
        .unwrap();
    f.write_all(&data).unwrap();
    let closer = std::thread::spawn(move || f.sync_all().map_err(|e| e.raw_os_error()));
    std::thread::sleep(Duration::from_millis(30));
    tb.restart();
    let synced = closer.join().unwrap();
    // Whatever close/fsync said, the board never holds a truncated main.py.
    let now = std::fs::read(tb.path("/main.py")).unwrap();
    assert!(
        now == b"old\n" || now == data,
        "main.py is {} bytes",
        now.len()
    );
    if synced.is_err() {
        assert_eq!(synced, Err(Some(libc::EIO)));
    }
    eventually("the new main.py on the board", || {
        std::fs::read(tb.path("/main.py")).unwrap() == data
    });
    assert!(m.unmount().status.success());
}

#[test]
fn a_full_flash_is_enospc_and_the_target_stays_whole() {
    let tb = TestBoard::with_flash_kb(128);
    std::fs::write(tb.path("/main.py"), "small\n").unwrap();
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let err =
        common::write_and_close(&m.path().join("main.py"), &random_bytes(400_000, 3)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    assert_eq!(
        std::fs::read(tb.path("/main.py")).unwrap(),
        b"small\n",
        "the target was touched"
    );
    assert!(
        !tb.path("/.wrm-part").exists(),
        "the partial upload was left behind"
    );
    // Unmount refuses to drop the change, and says which file.
    let u = m.unmount();
    assert!(!u.status.success());
    assert!(
        String::from_utf8_lossy(&u.stderr).contains("/main.py"),
        "{}",
        String::from_utf8_lossy(&u.stderr)
    );
    assert!(common::mounted(m.path()));
    // Smaller, it fits.
    std::fs::write(m.path().join("main.py"), "print('fits')\n").unwrap();
    assert!(m.unmount().status.success());
    assert_eq!(
        std::fs::read(tb.path("/main.py")).unwrap(),
        b"print('fits')\n"
    );
}
