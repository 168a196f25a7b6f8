//! `webrepl-mount term` on a pseudo-terminal, attached to a running mount.

mod common;

use common::{LinkEmu, Mount, TestBoard, eventually, random_bytes};
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `term` running on a pty: what it shows, and a way to type.
struct Tty {
    child: Child,
    master: std::fs::File,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Tty {
    fn attach(m: &Mount) -> Tty {
        let (mut master, mut slave) = (0, 0);
        // SAFETY: openpty fills in two new descriptors.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty");
        // SAFETY: both descriptors are fresh and owned here.
        let (master, slave) = unsafe {
            (
                std::fs::File::from_raw_fd(master),
                OwnedFd::from_raw_fd(slave),
            )
        };
        let child = m
            .cmd()
            .arg("term")
            .arg(m.path())
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave))
            .spawn()
            .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().unwrap();
        let sink = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let t = Tty {
            child,
            master,
            seen,
        };
        t.wait_for("Ctrl-] detaches");
        t
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).to_string()
    }

    fn wait_for(&self, what: &str) {
        common::eventually_with(15, || {
            let text = self.text();
            text.contains(what)
                .then_some(())
                .ok_or_else(|| format!("{what:?} never appeared; the terminal shows {text:?}"))
        });
    }

    /// Forgets what was shown so far: the next `wait_for` sees only what
    /// comes after.
    fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }

    fn type_keys(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
    }

    /// Nothing of the mount's own traffic ever reaches a person.
    fn assert_clean(&self) {
        let t = self.text();
        for noise in [
            "raw REPL", "wrm-sync", "_wrm_fin", "\u{4}", "R\u{1}", "ilistdir",
        ] {
            assert!(!t.contains(noise), "{noise:?} reached the terminal: {t:?}");
        }
    }
}

impl Drop for Tty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_repl_answers_while_files_move_and_never_shows_tool_traffic() {
    let tb = TestBoard::start();
    let emu = LinkEmu::start(tb.port, 5.0);
    // Directories are listed from the board every time: listings are traffic.
    let mut m = Mount::start(
        &tb,
        &format!("127.0.0.1:{}", emu.port),
        &["--dir-cache-time", "0"],
    );
    let mut a = Tty::attach(&m);
    a.type_keys("\r");
    a.wait_for(">>> ");

    // A 100 KB copy into the mount, and a question to the REPL meanwhile.
    let data = random_bytes(100_000, 1);
    let src = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(src.path(), &data).unwrap();
    let dst = m.path().join("big.bin");
    let copy = {
        let (s, d) = (src.path().to_path_buf(), dst.clone());
        std::thread::spawn(move || {
            for _ in 0..3 {
                std::fs::copy(&s, &d).unwrap();
            }
        })
    };
    a.type_keys("print(6*7)\r");
    a.wait_for("42");
    copy.join().unwrap();
    assert_eq!(std::fs::read(tb.path("/big.bin")).unwrap(), data);

    // Keys typed while directories are being listed arrive intact.
    let lister = {
        let p = m.path().to_path_buf();
        std::thread::spawn(move || {
            for _ in 0..20 {
                std::fs::read_dir(&p).unwrap().for_each(drop);
            }
        })
    };
    for chunk in [
        "x = 'abcdefghij",
        "klmnopqrstuvwxyz'",
        " * 3\r",
        "print(len(x), x[-3:])\r",
    ] {
        a.type_keys(chunk);
        std::thread::sleep(Duration::from_millis(15));
    }
    a.wait_for("78 xyz");
    lister.join().unwrap();

    // A second terminal sees what the first one causes, and vice versa.
    let mut b = Tty::attach(&m);
    a.type_keys("print('from', 'a')\r");
    b.wait_for("from a");
    b.type_keys("print('from', 'b')\r");
    a.wait_for("from b");

    // Ctrl-] detaches; the mount goes on.
    a.type_keys("\u{1d}");
    let status = a.child.wait().unwrap();
    assert!(status.success());
    std::fs::write(m.path().join("after.py"), "ok\n").unwrap();
    assert_eq!(std::fs::read(tb.path("/after.py")).unwrap(), b"ok\n");
    b.type_keys("print(1+1)\r");
    b.wait_for("print(1+1)\r\n2\n");
    a.assert_clean();
    b.assert_clean();
    drop(b);
    assert!(m.unmount().status.success());
}

#[test]
fn a_program_started_at_the_terminal_keeps_the_board_and_file_operations_wait_for_it() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/keep.txt"), "cached\n").unwrap();
    let mut m = Mount::start(&tb, &tb.addr(), &["--dir-cache-time", "0"]);
    assert_eq!(
        std::fs::read(m.path().join("keep.txt")).unwrap(),
        b"cached\n"
    );
    let mut t = Tty::attach(&m);
    t.type_keys("import time\rfor i in range(30): print('tick', i); time.sleep_ms(100)\r\r");
    t.wait_for("tick 2");
    // Metadata needs the raw REPL: it waits for the program, which is not
    // interrupted, and then succeeds.
    let mkdir = {
        let p = m.path().join("newdir");
        std::thread::spawn(move || std::fs::create_dir(p))
    };
    // Cached files keep working meanwhile, and status says what waits.
    assert_eq!(
        std::fs::read(m.path().join("keep.txt")).unwrap(),
        b"cached\n"
    );
    let status = m.status_until(10, |s| s.contains("waiting: for the REPL"));
    assert!(
        status.contains("program started at its terminal"),
        "{status}"
    );
    mkdir.join().unwrap().unwrap();
    assert!(
        t.text().contains("tick 29"),
        "mkdir returned before the program ended: {:?}",
        t.text()
    );
    assert!(tb.path("/newdir").is_dir());
    assert!(!t.text().contains("KeyboardInterrupt"));
    t.assert_clean();
    drop(t);
    assert!(m.unmount().status.success());
}

#[test]
fn a_program_longer_than_the_timeout_makes_file_operations_busy() {
    let tb = TestBoard::start();
    let mut m = Mount::start(&tb, &tb.addr(), &["--timeout", "1"]);
    let mut t = Tty::attach(&m);
    t.type_keys("import time\rfor i in range(40): print('tick', i); time.sleep_ms(100)\r\r");
    t.wait_for("tick 2");
    let err = std::fs::create_dir(m.path().join("newdir")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBUSY), "{err}");
    assert!(
        !t.text().contains("tick 39"),
        "it waited for the whole program"
    );
    t.wait_for("tick 39");
    assert!(!t.text().contains("KeyboardInterrupt"));
    drop(t);
    assert!(m.unmount().status.success());
}

#[test]
fn exec_reset_and_status_go_through_the_daemon_and_the_socket_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let tb = TestBoard::start();
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let out = m
        .cmd()
        .args(["exec"])
        .arg(m.path())
        .arg("print(6*7)")
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"42\n");
    let out = m
        .cmd()
        .args(["exec"])
        .arg(m.path())
        .arg("1/0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(11));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ZeroDivisionError"));
    // A file written on the board behind the mount's back appears after a reset.
    std::fs::write(tb.path("/boot_made.py"), "b\n").unwrap();
    std::fs::write(m.path().join("pending.py"), "p\n").unwrap();
    let out = m.cmd().args(["reset"]).arg(m.path()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(m.path().join("boot_made.py")).unwrap(),
        b"b\n"
    );
    assert_eq!(std::fs::read(tb.path("/pending.py")).unwrap(), b"p\n");
    let status = m.status();
    assert!(
        status.contains("MicroPython 1.25.0") && status.contains("cache:"),
        "{status}"
    );
    // The socket: 0600 in a 0700 directory; another user cannot connect.
    let dir = m.runtime.path().join("webrepl-mount");
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let sock = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Another user, first kept out by the directory, then (the directories
    // opened up, as a careless setup might) by the socket's own mode.
    let other = |m: &Mount| {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_webrepl-mount"))
            .arg("status")
            .arg(m.path())
            .env("XDG_RUNTIME_DIR", m.runtime.path())
            .output()
            .unwrap()
    };
    let shut_out = |o: &std::process::Output| {
        !o.status.success() && !String::from_utf8_lossy(&o.stdout).contains("cache:")
    };
    assert!(shut_out(&other(&m)), "another user reached the daemon");
    let open = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(m.runtime.path(), open.clone()).unwrap();
    std::fs::set_permissions(&dir, open).unwrap();
    let o = other(&m);
    assert!(shut_out(&o), "the socket let another user in");
    // Refused by the socket's mode at connect(2), or before, by the
    // client's own check that the directory is private and ours.
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("ermission")
            || err.contains("not a safe private directory")
            || err.contains("not in a mounted board"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(m.unmount().status.success());
}

#[test]
fn on_a_slow_link_a_typed_line_echoes_and_answers_before_a_transfer_ends() {
    let tb = TestBoard::start();
    let big = random_bytes(200_000, 5);
    std::fs::write(tb.path("/big.bin"), &big).unwrap();
    let emu = LinkEmu::slow(tb.port);
    let mut m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    let mut t = Tty::attach(&m);
    t.type_keys("\r");
    t.wait_for(">>> ");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (p, done) = (m.path().join("big.bin"), done.clone());
        std::thread::spawn(move || {
            let d = std::fs::read(p).unwrap();
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            d
        })
    };
    m.status_until(10, |s| s.contains("moving: down /big.bin"));
    t.type_keys("print(7*7)");
    t.wait_for("print(7*7)");
    t.type_keys("\r");
    t.wait_for("49");
    assert!(
        !done.load(std::sync::atomic::Ordering::SeqCst),
        "the 200 KB read ended before the terminal answered"
    );
    assert_eq!(reader.join().unwrap(), big);
    t.assert_clean();
    drop(t);
    assert!(m.unmount().status.success());
}

#[test]
fn on_a_slow_link_a_typed_line_answers_while_a_big_upload_is_still_on_the_wire() {
    let tb = TestBoard::start();
    let big = random_bytes(200_000, 6);
    let emu = LinkEmu::slow(tb.port);
    let mut m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    let mut t = Tty::attach(&m);
    t.type_keys("\r");
    t.wait_for(">>> ");
    let writer = {
        let (p, big) = (m.path().join("up.bin"), big.clone());
        std::thread::spawn(move || common::write_and_close(&p, &big))
    };
    // 10 s of file at 20 KB/s. No text may go in the middle of a PUT (the
    // firmware would take it as file data), so the file goes up in slices
    // and the line gets in between two of them.
    m.status_until(20, |s| s.contains("moving: up"));
    t.type_keys("print(7*7)");
    t.wait_for("print(7*7)");
    t.type_keys("\r");
    t.wait_for("49");
    assert!(
        std::fs::read(tb.path("/up.bin")).is_err(),
        "the 200 KB upload ended before the terminal answered"
    );
    writer.join().unwrap().unwrap();
    eventually(60, "the upload reaches the board", || {
        std::fs::read(tb.path("/up.bin")).is_ok_and(|d| d == big)
    });
    t.assert_clean();
    drop(t);
    assert!(m.unmount().status.success());
    let parts = tb.parts("/");
    assert!(parts.is_empty(), "slices left on the board: {parts:?}");
}

#[test]
fn on_a_slow_link_keys_typed_one_by_one_all_echo_while_a_big_upload_is_on_the_wire() {
    let tb = TestBoard::start();
    let big = random_bytes(300_000, 7);
    let emu = LinkEmu::slow(tb.port);
    let mut m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    let mut t = Tty::attach(&m);
    t.type_keys("\r");
    t.wait_for(">>> ");
    let writer = {
        let (p, big) = (m.path().join("up.bin"), big.clone());
        std::thread::spawn(move || common::write_and_close(&p, &big))
    };
    // 15 s of file at 20 KB/s. A person is typing, so the upload goes in
    // short slices: each key waits for one of them (its echo time is
    // printed; scripts/bench-slow.sh has the figure).
    m.status_until(20, |s| s.contains("moving: up"));
    let mut line = String::from("x=");
    t.type_keys(&line.clone());
    t.wait_for(&line);
    let mut echoes = Vec::new();
    for i in 0..20 {
        let key = char::from(b'0' + ((i + 1) % 10) as u8);
        line.push(key);
        let typed = Instant::now();
        t.type_keys(&key.to_string());
        t.wait_for(&line);
        echoes.push(typed.elapsed());
    }
    assert!(
        std::fs::read(tb.path("/up.bin")).is_err(),
        "the 300 KB upload ended before the 20 keys echoed"
    );
    echoes.sort();
    eprintln!(
        "echo of a key during the upload: median {:?}, max {:?}",
        echoes[10], echoes[19]
    );
    t.type_keys("\rprint(len(str(x)))\r");
    t.wait_for(")\r\n20\n");
    writer.join().unwrap().unwrap();
    eventually(60, "the upload reaches the board", || {
        std::fs::read(tb.path("/up.bin")).is_ok_and(|d| d == big)
    });
    t.assert_clean();
    drop(t);
    assert!(m.unmount().status.success());
    let parts = tb.parts("/");
    assert!(parts.is_empty(), "slices left on the board: {parts:?}");
}

/// A file copied into the mount with `cp`, as a person would.
fn copy_in(m: &Mount, name: &str, data: &[u8]) {
    let src = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(src.path(), data).unwrap();
    let out = std::process::Command::new("cp")
        .arg(src.path())
        .arg(m.path().join(name))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cp failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_half_typed_line_never_fails_a_copy_and_is_kept_as_it_was() {
    let tb = TestBoard::start();
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let mut t = Tty::attach(&m);
    t.type_keys("\r");
    t.wait_for(">>> ");
    // A line half typed, the cursor one place back: the copy needs the
    // raw REPL (its size check and rename) and succeeds.
    t.type_keys("zz = 6\x1b[D");
    t.wait_for("zz = 6");
    copy_in(&m, "a.py", b"a = 1\n");
    assert_eq!(std::fs::read(tb.path("/a.py")).unwrap(), b"a = 1\n");
    // The line is as it was, cursor included: a digit typed now lands
    // before the 6.
    t.type_keys("1\r");
    t.type_keys("print('v', zz)\r");
    t.wait_for("v 16");
    // Backspace, Ctrl-L (readline ignores it) and history recall: the line
    // is what the terminal shows.
    t.type_keys("yy = 67\x7f\x0c");
    t.wait_for("yy = 6");
    copy_in(&m, "b.py", b"b = 2\n");
    t.type_keys("\rprint('w', yy * 2)\r");
    t.wait_for("w 12");
    t.type_keys("qq = 5\r");
    t.wait_for(">>> ");
    let before = t.text();
    t.clear();
    t.type_keys("\x1b[A");
    t.wait_for("qq = 5");
    copy_in(&m, "c.py", b"c = 3\n");
    t.type_keys("5\rprint('q', qq)\r");
    t.wait_for("q 55");
    let after = format!("{before}{}", t.text());
    // A close soon after another is part of a burst: journaled, then sent
    // with the batch, so the board may have it a moment after close.
    common::eventually(10, "c.py on the board", || {
        std::fs::read(tb.path("/c.py")).is_ok_and(|d| d == b"c = 3\n")
    });
    assert!(!after.contains("SyntaxError"), "{after:?}");
    t.assert_clean();
    // Detached with a line half typed: nobody's line to keep, and nothing
    // is refused.
    t.type_keys("ww = 1");
    t.wait_for("ww = 1");
    t.type_keys("\u{1d}");
    assert!(t.child.wait().unwrap().success());
    copy_in(&m, "d.py", b"d = 4\n");
    std::fs::create_dir(m.path().join("after")).unwrap();
    assert!(tb.path("/after").is_dir());
    let mut t = Tty::attach(&m);
    t.type_keys("\rprint('clean', 1)\r");
    t.wait_for("clean 1");
    assert!(!t.text().contains("SyntaxError"), "{:?}", t.text());
    drop(t);
    assert!(m.unmount().status.success());
}

#[test]
fn a_copy_during_a_program_at_the_terminal_waits_for_it_and_succeeds() {
    let tb = TestBoard::start();
    // close() waits for the upload, past the program (the default returns
    // after two seconds: tests/saves.rs).
    let mut m = Mount::start(&tb, &tb.addr(), &["--close-wait", "60"]);
    let mut t = Tty::attach(&m);
    // The last tick carries the board's clock (the host's, on the test
    // board), which the time the upload was renamed into place is compared
    // with: a terminal that shows it late under load changes nothing.
    t.type_keys(
        "\rimport time\rfor i in range(25): print('tick', i, time.time_ns() if i == 24 else ''); time.sleep_ms(100)\r\r",
    );
    t.wait_for("tick 2");
    let data = random_bytes(50_000, 9);
    let copy = {
        let (p, d) = (m.path().join("data.bin"), data.clone());
        std::thread::spawn(move || common::write_and_close(&p, &d).map_err(|e| e.to_string()))
    };
    // The data itself goes while the program runs (binary transfers do):
    // only its check and rename wait for the REPL.
    m.status_until(10, |s| s.contains("waiting: for the REPL"));
    copy.join().unwrap().unwrap();
    t.wait_for("tick 24 ");
    let last_tick: u128 = t
        .text()
        .rsplit("tick 24 ")
        .next()
        .and_then(|after| after.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .expect("the board's clock at the last tick");
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(tb.path("/data.bin")).unwrap();
    let renamed = md.ctime() as u128 * 1_000_000_000 + md.ctime_nsec() as u128;
    assert!(
        renamed > last_tick,
        "the upload was renamed into place {} ms before the program's last tick",
        (last_tick - renamed) / 1_000_000
    );
    assert_eq!(std::fs::read(tb.path("/data.bin")).unwrap(), data);
    assert!(!t.text().contains("KeyboardInterrupt"));
    drop(t);
    assert!(m.unmount().status.success());
}

#[test]
fn keys_typed_while_the_board_is_unreachable_never_run_and_the_terminal_says_so() {
    let tb = TestBoard::start();
    let mut emu = LinkEmu::start(tb.port, 5.0);
    let m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    let mut t = Tty::attach(&m);
    t.type_keys("\r");
    t.wait_for(">>> ");
    emu.command("refuse on");
    emu.command("cut");
    eventually(15, "the link down", || m.status().contains("link DOWN"));
    // Keys typed once a connection attempt has failed (the board is
    // away) are dropped, and the terminal says so.
    eventually(15, "keys dropped", || {
        t.type_keys("x");
        t.text().contains(" dropped]")
    });
    t.clear();
    t.type_keys("print(9)\r");
    t.wait_for(" keys dropped]");
    emu.command("refuse off");
    eventually(20, "the link back", || {
        m.status().contains("programs, 1 reconnects")
    });
    // What the terminal shows since the notice: print(8) ran, print(9)
    // never did.
    t.type_keys("print(8)\r");
    t.wait_for("\n8\n");
    assert!(
        !t.text().contains("\n9\n"),
        "dropped keys ran: {:?}",
        t.text()
    );
}

/// Keys typed into a link gone quiet (Wi-Fi out of range: no error, the
/// socket takes them) are dropped once the board has said nothing for the
/// time-out, and the terminal says so: the link is reset, and they never
/// run when it wakes (they sat in the socket and ran then).
#[test]
fn keys_typed_into_a_link_gone_quiet_never_run_when_it_wakes() {
    let tb = TestBoard::start();
    let mut emu = LinkEmu::start(tb.port, 5.0);
    let m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &["--timeout", "3"]);
    let mut t = Tty::attach(&m);
    t.type_keys("\r");
    t.wait_for(">>> ");
    emu.command("stall on");
    t.clear();
    t.type_keys("print(6*7+900)\r");
    t.wait_for(" keys dropped]");
    emu.command("stall off");
    eventually(30, "the link back", || m.status().contains("link up"));
    t.type_keys("print(6*7+800)\r");
    t.wait_for("842");
    let board = tb.terminal_text();
    assert!(board.contains("842"), "{board}");
    assert!(!board.contains("942"), "dropped keys ran: {board}");
}

#[test]
fn ctrl_d_at_the_terminal_shows_the_soft_reboot_banner_and_a_prompt() {
    let tb = TestBoard::start();
    let m = Mount::start(&tb, &tb.addr(), &[]);
    let mut t = Tty::attach(&m);
    t.type_keys("\r");
    t.wait_for(">>> ");
    t.clear();
    t.type_keys("\u{4}");
    // The board says "MPY: soft reboot" and closes the connection; the
    // banner and prompt come on the next.
    t.wait_for("MicroPython");
    t.wait_for(">>> ");
    assert_eq!(t.text().matches("soft reboot").count(), 1, "{:?}", t.text());
    t.clear();
    t.type_keys("print(6*7)\r");
    t.wait_for("42");
    t.assert_clean();
}

#[test]
fn keys_typed_one_by_one_during_a_slow_upload_then_enter_late_show_the_answer() {
    let tb = TestBoard::start();
    let big = random_bytes(300_000, 7);
    let emu = LinkEmu::slow(tb.port);
    let m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    let mut t = Tty::attach(&m);
    // The pattern that once left the terminal silent for good.
    t.type_keys("\u{3}");
    t.wait_for(">>> ");
    let writer = {
        let (p, big) = (m.path().join("big300.txt"), big.clone());
        std::thread::spawn(move || common::write_and_close(&p, &big))
    };
    m.status_until(20, |s| s.contains("moving: up"));
    for k in "print(222)".chars() {
        t.type_keys(&k.to_string());
        std::thread::sleep(Duration::from_millis(200));
    }
    writer.join().unwrap().unwrap();
    eventually(60, "the upload reaches the board", || {
        std::fs::read(tb.path("/big300.txt")).is_ok_and(|d| d == big)
    });
    let before = m.status();
    std::thread::sleep(Duration::from_secs(8));
    t.type_keys("\r");
    t.wait_for("222\n");
    let after = m.status();
    let reconnects = |s: &str| {
        s.split("programs, ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .map(str::to_string)
    };
    assert_eq!(reconnects(&before), reconnects(&after), "{after}");
    t.assert_clean();
}
