//! Faults, each checked on the board's own directory afterwards: a link cut
//! during a read, a program and a rename; the board restarting during a
//! flush; a full flash. Nothing lost, nothing truncated.

mod common;

use common::{LinkEmu, Mount, TestBoard, eventually, random_bytes};
use std::time::{Duration, Instant};

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
fn a_rename_whose_program_never_reached_the_board_fails_and_changes_nothing() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/a.py"), "a = 1\n").unwrap();
    let mut emu = LinkEmu::start(tb.port, 0.0);
    let mut m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    // The link drops 40 bytes into the rename program: the board never
    // has it whole, so it never runs. A rename is not repeated blindly.
    emu.command("cut-up 40");
    let err = std::fs::rename(m.path().join("a.py"), m.path().join("b.py")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert!(tb.path("/a.py").exists() && !tb.path("/b.py").exists());
    // After the reconnect the mount shows what the board has.
    let listed: Vec<String> = std::fs::read_dir(m.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(listed, vec!["a.py".to_string()]);
    std::fs::rename(m.path().join("a.py"), m.path().join("c.py")).unwrap();
    assert_eq!(std::fs::read(tb.path("/c.py")).unwrap(), b"a = 1\n");
    assert!(m.unmount().status.success());
}

#[test]
fn a_board_that_restarts_during_a_flush_gets_the_file_when_it_is_back() {
    let mut tb = TestBoard::start();
    std::fs::write(tb.path("/main.py"), "old\n").unwrap();
    // A link slow enough that the upload lasts seconds: on an unlimited
    // one it was over (part file written, renamed) within a few hundred
    // ms, and a test thread starved by a loaded machine never saw its
    // part file ("the upload to start never happened", the file whole on
    // the board). In Wi-Fi-sized pieces: the emulator's default 5 ms ones
    // make the board drop bytes of most slices (13 of 17, then 11, then
    // the upload's tries ran out), which is not what this test is about.
    let emu = LinkEmu::with(tb.port, 5.0, &["--rate", "50000", "--segment", "1460"]);
    let mut m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    let data = random_bytes(300_000, 2);
    let src = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(src.path(), &data).unwrap();
    // Written and fsynced by another process: this one must hold nothing
    // open on the mount when it starts the board again (a forked child
    // closes what it inherits, and each close flushes).
    let mut dd = std::process::Command::new("dd")
        .arg(format!("if={}", src.path().display()))
        .arg(format!("of={}", m.path().join("main.py").display()))
        .args(["bs=64k", "conv=fsync", "status=none"])
        .spawn()
        .unwrap();
    // The upload is under way (its part file exists on the board).
    common::eventually(20, "the upload to start", || {
        std::fs::read_dir(tb.root.path()).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".wrm-")
        })
    });
    assert_eq!(
        std::fs::read(tb.path("/main.py")).unwrap(),
        b"old\n",
        "the target was touched before the upload finished: {}",
        m.log()
    );
    tb.restart();
    // The board was back within the time-out: fsync waited and succeeded.
    assert!(dd.wait().unwrap().success(), "{}", m.log());
    assert_eq!(std::fs::read(tb.path("/main.py")).unwrap(), data);
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
    // Neither the part file nor a slice of it is left to fill the flash.
    let left = tb.parts("/");
    assert!(
        left.is_empty(),
        "the partial upload was left behind: {left:?}"
    );
    // Unmount refuses to drop the change, and says which file.
    let u = m.unmount();
    // ENOSPC's exit code, not a lost link's.
    assert_eq!(u.status.code(), Some(12), "{u:?}");
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

/// A test that fails leaves no mount behind: the board's small flash (a
/// tmpfs, held busy by an open file) and the FUSE mount on it are gone
/// once the panicking test has unwound. The failing test runs in a child
/// process: this binary again, told so by the environment.
#[test]
fn a_failing_test_of_a_small_flash_board_leaves_no_mount() {
    const SCENARIO: &str = "WEBREPL_TEST_FAILING_SCENARIO";
    let name = "a_failing_test_of_a_small_flash_board_leaves_no_mount";
    if std::env::var_os(SCENARIO).is_some() {
        let tb = TestBoard::with_flash_kb(64);
        let m = Mount::start(&tb, &tb.addr(), &[]);
        let _busy = std::fs::File::create(tb.path("/open.txt")).unwrap();
        println!("\nleft-behind? {}", tb.root.path().display());
        println!("\nleft-behind? {}", m.path().display());
        panic!("failing on purpose");
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads", "1"])
        .env(SCENARIO, "1")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!out.status.success(), "the scenario did not fail: {said}");
    let paths: Vec<&str> = said
        .lines()
        .filter_map(|l| l.strip_prefix("left-behind? "))
        .collect();
    assert_eq!(paths.len(), 2, "{said}");
    for p in paths {
        let p = std::path::Path::new(p);
        assert!(!common::mounted(p), "{} is still mounted", p.display());
        assert!(!p.exists(), "{} is still there", p.display());
    }
}

/// A board that is off (each connection attempt lasts the time-out): a
/// read of an uncached file fails after `--timeout`, not after a second
/// wait by another way (small files: the batch, then the GET; big ones:
/// the range, then the whole file).
#[test]
fn reads_the_board_cannot_answer_fail_after_the_timeout() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/a.txt"), "a").unwrap();
    std::fs::write(tb.path("/b.txt"), "b").unwrap();
    std::fs::write(tb.path("/big.bin"), random_bytes(100_000, 31)).unwrap();
    let mut emu = LinkEmu::start(tb.port, 1.0);
    let m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &["--timeout", "3"]);
    emu.command("silent on");
    emu.command("cut");
    for f in ["a.txt", "big.bin"] {
        let t = Instant::now();
        let r = std::fs::read(m.path().join(f));
        let took = t.elapsed();
        assert!(r.is_err(), "{f} read with the board off");
        assert!(
            took < Duration::from_millis(4500),
            "{f} failed after {took:?} with --timeout 3"
        );
    }
}

/// A board switched off while the mount is idle: `status` says the board
/// does not answer, not that a proxy closed an idle link.
#[test]
fn status_with_the_board_off_says_the_board_does_not_answer() {
    let tb = TestBoard::start();
    let mut emu = LinkEmu::start(tb.port, 1.0);
    let m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    // Idle first: the same traffic on three status calls in a row (a
    // loaded machine may still be finishing the mount's first programs).
    let seen = std::cell::RefCell::new(Vec::new());
    m.status_until(20, |s| {
        let traffic = s.lines().find(|l| l.starts_with("traffic:"));
        let mut seen = seen.borrow_mut();
        seen.push(traffic.unwrap_or_default().to_string());
        let n = seen.len();
        s.contains("link up") && n >= 3 && seen[n - 3..].iter().all(|t| *t == seen[n - 1])
    });
    emu.command("silent on");
    emu.command("cut");
    let s = m.status_until(10, |s| !s.contains("link up"));
    assert!(s.contains("the board does not answer"), "{s}");
    assert!(!s.contains("proxy"), "{s}");
    // Back on: status reopens the link and says it had closed.
    emu.command("silent off");
    let s = m.status_until(30, |s| s.contains("link up"));
    assert!(s.contains("reopened"), "{s}");
}

/// The log says why each reconnect happened (`status` counts them).
#[test]
fn the_log_says_why_the_link_was_reopened() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/a.txt"), "a").unwrap();
    let mut emu = LinkEmu::start(tb.port, 1.0);
    let m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    emu.command("cut");
    m.status_until(10, |s| s.contains("1 reconnects"));
    assert_eq!(std::fs::read(m.path().join("a.txt")).unwrap(), b"a");
    eventually(10, "the reconnect in the log", || {
        m.log()
            .lines()
            .any(|l| l.contains("reconnected to") && l.contains("last error:"))
    });
}

/// `webrepl-mount cat` of a file in a mount whose board is gone fails
/// after `--timeout`, as a read does. It copies with sendfile, whose
/// failed read-ahead the kernel tries again as a read of its own: each
/// waited the whole time-out (8 s for `--timeout 4`).
#[test]
fn a_copy_out_of_a_mount_whose_board_is_gone_fails_after_one_timeout() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/a.txt"), "hello\n").unwrap();
    let mut emu = LinkEmu::start(tb.port, 5.0);
    let m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &["--timeout", "3"]);
    assert!(m.path().join("a.txt").exists());
    emu.command("refuse on");
    emu.command("cut");
    eventually(15, "the link down", || m.status().contains("link DOWN"));
    // Into a file, as `> out` does: sendfile.
    let out = tempfile::NamedTempFile::new().unwrap();
    let asked = Instant::now();
    let o = m
        .cmd()
        .arg("cat")
        .arg(m.path().join("a.txt"))
        .stdout(out.reopen().unwrap())
        .output()
        .unwrap();
    let took = asked.elapsed();
    assert!(!o.status.success());
    assert!(
        took < Duration::from_millis(4500),
        "{took:?} with --timeout 3: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `cp` of a file to a board that goes out of reach in the middle of it
/// (Wi-Fi gone: connections refused) fails after one `--timeout`: the
/// cleanup of the part file it left waited the time-out again (23 s with
/// `--timeout 10`). The board keeps its old file.
#[test]
fn an_upload_to_a_board_gone_mid_copy_fails_after_one_timeout() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/big.bin"), "old").unwrap();
    let mut emu = LinkEmu::with(tb.port, 5.0, &["--rate", "20000"]);
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("big.bin");
    std::fs::write(&file, random_bytes(200_000, 41)).unwrap();
    let mut cp = std::process::Command::new(env!("CARGO_BIN_EXE_webrepl-mount"));
    cp.args([
        "--timeout",
        "3",
        "cp",
        file.to_str().unwrap(),
        &format!("127.0.0.1:{}:/big.bin", emu.port),
    ])
    .env("WEBREPL_PASSWORD", &tb.password)
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let cp = cp.spawn().unwrap();
    // Under way: its part file on the board grows.
    eventually(30, "the upload under way", || {
        tb.parts("/")
            .iter()
            .any(|p| std::fs::metadata(tb.path(&format!("/{p}"))).is_ok_and(|m| m.len() > 10_000))
    });
    emu.command("refuse on");
    emu.command("cut");
    let gone = Instant::now();
    let o = cp.wait_with_output().unwrap();
    let took = gone.elapsed();
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{said}");
    assert!(
        took < Duration::from_millis(5500),
        "{took:?} with --timeout 3: {said}"
    );
    assert_eq!(std::fs::read(tb.path("/big.bin")).unwrap(), b"old");
}

/// A copy that fits the flash only in smaller slices: joining a 256 KB
/// and a 56 KB slice needs 56 KB beside the 320 KB file, which a flash
/// with 344 KB free has not. It goes again in slices that leave room
/// (before: "the board kept losing bytes", three sends, EIO). One too big
/// for the flash at all is ENOSPC, and the target stays whole.
#[test]
fn a_copy_that_fits_only_in_smaller_slices_goes_again_in_them() {
    let tb = TestBoard::with_flash_kb(400);
    let old = random_bytes(50_000, 7);
    std::fs::write(tb.path("/target.bin"), &old).unwrap();
    let local = tempfile::tempdir().unwrap();
    let cp = |data: &[u8]| {
        let src = local.path().join("up.bin");
        std::fs::write(&src, data).unwrap();
        let dst = format!("{}:/target.bin", tb.addr());
        common::wm(&tb.password, &["cp", src.to_str().unwrap(), &dst])
    };
    let fits = random_bytes(320_000, 8);
    let o = cp(&fits);
    let said = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{said}");
    assert!(said.contains("no room on the board to join"), "{said}");
    assert_eq!(std::fs::read(tb.path("/target.bin")).unwrap(), fits);
    assert!(tb.parts("/").is_empty(), "{:?}", tb.parts("/"));
    let o = cp(&random_bytes(390_000, 9));
    let said = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(12), "{said}");
    assert!(said.contains("ENOSPC"), "{said}");
    assert_eq!(std::fs::read(tb.path("/target.bin")).unwrap(), fits);
    assert!(tb.parts("/").is_empty(), "{:?}", tb.parts("/"));
}

/// A save near the flash's size lands: its slices are whole 4 KB flash
/// blocks. Sized by the link's rate (0.4 s of it: 6-8 KB at 16-20 KB/s),
/// each slice took a block more than its bytes, and 340 KB did not fit
/// into 360 KB free (a fresh-eye tester's 8,335 B slices took 3 blocks
/// each: 492 KB, ENOSPC on every try).
#[test]
fn a_save_near_the_flashs_size_goes_in_slices_of_whole_blocks() {
    let tb = TestBoard::with_flash_kb(376);
    let emu = LinkEmu::slow(tb.port);
    let m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    // A first upload measures the link's rate, which sizes the slices.
    let first = random_bytes(60_000, 11);
    common::write_and_close(&m.path().join("first.bin"), &first).unwrap();
    eventually(30, "first.bin on the board", || {
        std::fs::read(tb.path("/first.bin")).is_ok_and(|d| d == first)
    });
    std::fs::remove_file(m.path().join("first.bin")).unwrap();
    let data = random_bytes(340_000, 12);
    let _ = common::write_and_close(&m.path().join("big.bin"), &data);
    eventually(90, "big.bin on the board", || {
        std::fs::read(tb.path("/big.bin")).is_ok_and(|d| d == data)
    });
    assert!(tb.parts("/").is_empty(), "{:?}", tb.parts("/"));
    let log = m.log();
    assert!(!log.contains("ENOSPC"), "{log}");
}
