//! Recovery a person can count on: a hang-up flushes, a short drop of the
//! link does not fail a save, a mount never hides files or shows 1970, and
//! Emacs' droppings never reach the board.

mod common;

use common::{LinkEmu, Mount, TestBoard, write_and_close};
use std::time::{Duration, SystemTime};

#[test]
fn sighup_flushes_a_delayed_write_like_sigterm() {
    let tb = TestBoard::start();
    let mut m = Mount::start(&tb, &tb.addr(), &["--writeback-delay", "600"]);
    std::fs::write(m.path().join("late.py"), "late = 1\n").unwrap();
    assert!(!tb.path("/late.py").exists(), "sent despite the delay");
    // The terminal of a foreground mount closes.
    unsafe { libc::kill(m.pid() as i32, libc::SIGHUP) };
    assert!(m.wait().success());
    assert_eq!(std::fs::read(tb.path("/late.py")).unwrap(), b"late = 1\n");
    assert!(
        m.log().contains("SIGHUP received; flushed 1 file"),
        "{}",
        m.log()
    );
    assert!(!common::mounted(m.path()));
}

#[test]
fn a_save_during_a_two_second_drop_of_the_link_succeeds() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/main.py"), "old\n").unwrap();
    let mut emu = LinkEmu::start(tb.port, 5.0);
    // close() waits for the upload itself, whatever it takes.
    let mut m = Mount::start(
        &tb,
        &format!("127.0.0.1:{}", emu.port),
        &["--close-wait", "60"],
    );
    let data = common::random_bytes(150_000, 4);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(m.path().join("main.py"))
        .unwrap();
    std::io::Write::write_all(&mut f, &data).unwrap();
    // The link drops 40 KB into the upload close() starts, and the board is
    // out of reach for two seconds (the fault being tested, not a wait).
    emu.command("refuse on");
    emu.command("cut-up 40000");
    let back = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        emu.command("refuse off");
        emu
    });
    use std::os::fd::IntoRawFd;
    let fd = f.into_raw_fd();
    // SAFETY: closing the descriptor we own; close(2) reports the upload.
    let rc = unsafe { libc::close(fd) };
    let err = std::io::Error::last_os_error();
    assert_eq!(
        rc, 0,
        "close failed although the board came back in time: {err}"
    );
    // The cut landed in the upload: the link was lost and made again
    // before close() returned (a cut that missed would come later, or
    // never).
    let status = m.status();
    let _emu = back.join().unwrap();
    assert!(
        status.contains("programs, 1 reconnects"),
        "close() returned without a lost link: {status}"
    );
    assert_eq!(std::fs::read(tb.path("/main.py")).unwrap(), data);
    assert!(m.unmount().status.success());
}

#[test]
fn a_mountpoint_with_files_is_refused_unless_nonempty_is_given() {
    let tb = TestBoard::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mine.txt"), "mine\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
        .arg(tb.addr())
        .arg(dir.path())
        .env("WEBREPL_PASSWORD", &tb.password)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!(
            "webrepl-mount: {} is not empty: its files would be hidden by the mount (mount on an empty directory, or use -o nonempty)",
            dir.path().display()
        )
    );
    assert!(!common::mounted(dir.path()));
    let mut n = Mount::start_on(&tb, &tb.addr(), dir, &["-o", "nonempty"]);
    assert!(common::mounted(n.path()));
    assert!(n.unmount().status.success());
    assert_eq!(std::fs::read(n.path().join("mine.txt")).unwrap(), b"mine\n");
}

#[test]
fn directories_show_the_boards_time_or_the_mounts_never_1970() {
    let tb = TestBoard::start();
    std::fs::create_dir(tb.path("/lib")).unwrap();
    let before = SystemTime::now() - Duration::from_secs(2);
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let year_2001 = SystemTime::UNIX_EPOCH + Duration::from_secs(978_307_200);
    for p in [m.path().to_path_buf(), m.path().join("lib")] {
        let t = std::fs::metadata(&p).unwrap().modified().unwrap();
        assert!(t > year_2001, "{}: {t:?}", p.display());
    }
    std::fs::create_dir(m.path().join("new")).unwrap();
    let t = std::fs::metadata(m.path().join("new"))
        .unwrap()
        .modified()
        .unwrap();
    assert!(t >= before, "a new directory: {t:?}");
    assert!(m.unmount().status.success());
}

#[test]
fn emacs_auto_saves_and_lock_files_stay_in_the_mount() {
    let tb = TestBoard::start();
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    write_and_close(&m.path().join("#main.py#"), b"auto-saved").unwrap();
    write_and_close(&m.path().join(".#main.py"), b"lock").unwrap();
    write_and_close(&m.path().join("main.py"), b"print(1)\n").unwrap();
    assert!(m.path().join("#main.py#").exists());
    assert!(m.unmount().status.success());
    let on_board: Vec<String> = std::fs::read_dir(tb.root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        // The board's id, written by the first mount, and our helpers'
        // file (README).
        .filter(|n| n != ".webrepl-mount-id" && n != ".webrepl-mount-helpers")
        .collect();
    assert_eq!(on_board, vec!["main.py"]);
}
