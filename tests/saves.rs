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
    // 24 KB: the helpers' file (about 5 KB) lives on the flash too.
    let tb = TestBoard::with_flash_kb(24);
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
    // A program run through the mount does not wait for another try of
    // it (each exec sent the 30 KB again first, and said it failed).
    let out = m.exec("print(6 * 7)");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
    assert!(!m.log().contains("exec: /b.py"), "{}", m.log());
}

/// A program run through the mount while a save is on its way waits for
/// it, and when the board refuses it (a full flash) says so on stderr: the
/// program ran without it (said only in the daemon's log).
#[test]
fn exec_says_which_saved_file_the_board_refused_before_the_program_ran() {
    let tb = TestBoard::with_flash_kb(24);
    let emu = LinkEmu::slow(tb.port);
    let m = Mount::start(
        &tb,
        &format!("127.0.0.1:{}", emu.port),
        &["--close-wait", "0"],
    );
    // 30 KB: 1.5 s on the link, and more than the flash holds.
    write_and_close(&m.path().join("big.py"), &random_bytes(30_000, 4)).unwrap();
    let out = m.exec("print(6 * 7)");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("/big.py is not on the board") && said.contains("no space left"),
        "{said}"
    );
    assert!(out.status.success(), "{said}");
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

/// The first save of a file worth compressing while a person's program
/// runs: its bytes go up beside the program (the binary channel is free
/// of it), so only the finishing program waits for its end. The question
/// whether the board can inflate waited for the program, and the whole
/// upload with it (80 KB landed 3.2 s after the program's end).
#[test]
fn a_first_save_beside_a_persons_program_goes_up_while_it_runs() {
    let tb = TestBoard::start();
    let emu = LinkEmu::slow(tb.port);
    let mut m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    let mut program = m
        .cmd()
        .arg("exec")
        .arg(m.path())
        .arg("import os, time\nwhile 'stop' not in os.listdir('/'):\n time.sleep_ms(100)\n")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    m.status_until(20, |s| s.contains("programs: 1"));
    // Python source: it compresses.
    let data: Vec<u8> = (0..600)
        .flat_map(|i| format!("def f{i}(x):\n    return x * {i} + {}\n", i * 7).into_bytes())
        .collect();
    write_and_close(&m.path().join("app.py"), &data).unwrap();
    let on_flash = || {
        tb.parts("/")
            .iter()
            .map(|p| std::fs::metadata(tb.path(&format!("/{p}"))).map_or(0, |m| m.len()))
            .sum::<u64>()
    };
    common::eventually_with(30, || {
        if on_flash() > 4096 {
            Ok(())
        } else {
            Err(format!(
                "the save's bytes never reached the board beside the program:\n{}",
                m.log()
            ))
        }
    });
    assert!(program.try_wait().unwrap().is_none(), "the program ended");
    assert!(!tb.path("/app.py").exists(), "landed during the program");
    std::fs::write(tb.path("/stop"), "").unwrap();
    assert!(program.wait().unwrap().success());
    let ended = Instant::now();
    eventually(20, "app.py on the board", || {
        std::fs::read(tb.path("/app.py")).is_ok_and(|d| d == data)
    });
    eprintln!("on the board {:?} after the program's end", ended.elapsed());
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

/// Code run on the board marks the snapshot for a check; with the link
/// then cut, that check waited for the link up to --timeout (10 s) before
/// a read of a cached file or a save could go on (the fresh-eye review:
/// open() 10.06 s, reads 10.00 s).
#[test]
fn with_the_link_cut_after_code_ran_cached_reads_and_saves_do_not_wait_for_it() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/c.py"), "c = 1\n").unwrap();
    let mut emu = LinkEmu::start(tb.port, 1.0);
    let mut m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    assert_eq!(std::fs::read(m.path().join("c.py")).unwrap(), b"c = 1\n");
    let o = m.exec("print(7)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    emu.command("refuse on");
    emu.command("cut");
    m.status_until(10, |s| s.contains("link DOWN"));
    let t = Instant::now();
    assert_eq!(std::fs::read(m.path().join("c.py")).unwrap(), b"c = 1\n");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "read took {:?}",
        t.elapsed()
    );
    let t = Instant::now();
    write_and_close(&m.path().join("s.py"), b"s = 2\n").unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "save took {:?}",
        t.elapsed()
    );
    // gedit's save: a scratch file renamed over the file. It returns as a
    // close does, and the file goes when the link is back (the rename
    // waited 20 s for the board, then failed).
    let scratch = m.path().join(".goutputstream-L1NK");
    write_and_close(&scratch, b"c = 3\n").unwrap();
    let t = Instant::now();
    std::fs::rename(&scratch, m.path().join("c.py")).unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "rename took {:?}",
        t.elapsed()
    );
    assert_eq!(std::fs::read(m.path().join("c.py")).unwrap(), b"c = 3\n");
    emu.command("refuse off");
    eventually(30, "s.py and c.py on the board", || {
        std::fs::read(tb.path("/s.py")).is_ok_and(|d| d == b"s = 2\n")
            && std::fs::read(tb.path("/c.py")).is_ok_and(|d| d == b"c = 3\n")
    });
    assert!(m.unmount().status.success());
}

/// Saves through a temporary file renamed over the file, with the link
/// cut: `sed -i` (its temporary `sedXXXXXX`) and an IDE's (VS Code:
/// `NAME.tmp`). Each returns about the close wait, as a plain save does,
/// and lands when the link is back (they took 40 s and 51 s: the rename
/// waited for the temporary file's upload, which only ended after the
/// link's time-outs).
#[test]
fn with_the_link_cut_saves_through_a_temporary_file_return_after_the_close_wait() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/x.py"), "a = 1\n").unwrap();
    std::fs::write(tb.path("/y.py"), "y = 1\n").unwrap();
    let mut emu = LinkEmu::start(tb.port, 1.0);
    let mut m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    assert_eq!(std::fs::read(m.path().join("x.py")).unwrap(), b"a = 1\n");
    assert_eq!(std::fs::read(m.path().join("y.py")).unwrap(), b"y = 1\n");
    emu.command("refuse on");
    emu.command("cut");
    m.status_until(10, |s| s.contains("link DOWN"));
    let t = Instant::now();
    let sed = Command::new("sed")
        .args(["-i", "s/a/b/"])
        .arg(m.path().join("x.py"))
        .output()
        .unwrap();
    let took = t.elapsed();
    assert!(
        sed.status.success(),
        "{}",
        String::from_utf8_lossy(&sed.stderr)
    );
    assert!(
        took < Duration::from_secs(5),
        "sed -i took {took:?}\n{}",
        m.log()
    );
    let tmp = m.path().join("y.py.tmp");
    let t = Instant::now();
    write_and_close(&tmp, b"y = 2\n").unwrap();
    std::fs::rename(&tmp, m.path().join("y.py")).unwrap();
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the .tmp save took {took:?}\n{}",
        m.log()
    );
    assert_eq!(std::fs::read(m.path().join("x.py")).unwrap(), b"b = 1\n");
    assert_eq!(std::fs::read(m.path().join("y.py")).unwrap(), b"y = 2\n");
    emu.command("refuse off");
    eventually(30, "x.py and y.py on the board", || {
        std::fs::read(tb.path("/x.py")).is_ok_and(|d| d == b"b = 1\n")
            && std::fs::read(tb.path("/y.py")).is_ok_and(|d| d == b"y = 2\n")
    });
    m.status_until(10, |s| !s.contains("dirty:"));
    // Nothing else: no temporary name reached the board.
    let mut names: Vec<_> = std::fs::read_dir(tb.path("/"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".webrepl-mount"))
        .collect();
    names.sort();
    assert_eq!(names, ["x.py", "y.py"]);
    assert!(m.unmount().status.success());
}

/// What writer `w` writes to its file `f` as version `v`: small files of
/// a few hundred bytes, the first line naming the version.
fn version_body(w: usize, f: usize, v: u64) -> Vec<u8> {
    let mut b = format!("# writer {w} file {f} version {v}\n").into_bytes();
    b.extend(std::iter::repeat_n(
        b'a' + (v % 26) as u8,
        100 + (v as usize * 37) % 700,
    ));
    b.push(b'\n');
    b
}

fn version_of(body: &[u8]) -> Option<u64> {
    let first = std::str::from_utf8(body).ok()?.lines().next()?;
    first.rsplit(' ').next()?.parse().ok()
}

/// Six writers save six files each, over and over, through the mount, until
/// `acked` closes have returned 0 in all (then `stop` is set by the caller's
/// `end`). Returns, per file, the last version whose close returned 0.
fn load(
    m: &Mount,
    round: u64,
    acked: usize,
    end: impl FnOnce(),
) -> std::collections::HashMap<String, u64> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let (mp, stop, count) = (m.path().to_path_buf(), stop.clone(), count.clone());
            let failed = failed.clone();
            std::thread::spawn(move || {
                let mut last = std::collections::HashMap::new();
                let mut v = round * 1_000_000;
                'writing: while !stop.load(Ordering::SeqCst) {
                    v += 1;
                    for f in 0..6 {
                        let name = format!("w{w}f{f}.py");
                        if let Err(e) = write_and_close(&mp.join(&name), &version_body(w, f, v)) {
                            // The daemon is gone: nothing more is acknowledged.
                            failed.lock().unwrap().push(format!("{name} v{v}: {e}"));
                            break 'writing;
                        }
                        last.insert(name, v);
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                }
                last
            })
        })
        .collect();
    eventually(120, &format!("{acked} saves acknowledged"), || {
        count.load(Ordering::SeqCst) >= acked || !failed.lock().unwrap().is_empty()
    });
    let early = failed.lock().unwrap().clone();
    assert!(early.is_empty(), "saves failed: {early:?}\n{}", m.log());
    end();
    stop.store(true, Ordering::SeqCst);
    writers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect()
}

/// The mount of a killed daemon is gone (the kernel may still answer a
/// stat of it from its cache, which would pass for the next mount).
fn gone(m: &mut Mount) {
    if common::mounted(m.path()) {
        // It may go by itself meanwhile: then this finds nothing to do.
        let _ = m.unmount();
    }
    eventually(10, "the dead mount gone", || !common::mounted(m.path()));
}

/// Every acknowledged save is on the board (or a later one the writer
/// made), and nothing is called a conflict.
fn check_board(tb: &TestBoard, acked: &std::collections::HashMap<String, u64>, log: &str) {
    for (name, v) in acked {
        let on_board = std::fs::read(tb.path(&format!("/{name}"))).unwrap();
        let got = version_of(&on_board).unwrap_or(0);
        assert!(
            got >= *v,
            "{name}: close() acknowledged version {v}, the board has {got}\n{log}"
        );
        let w: usize = name[1..2].parse().unwrap();
        let f: usize = name[3..4].parse().unwrap();
        assert_eq!(on_board, version_body(w, f, got), "{name}");
    }
    let conflicts: Vec<String> = std::fs::read_dir(tb.root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.contains("conflict"))
        .collect();
    assert!(
        conflicts.is_empty(),
        "false conflicts: {conflicts:?}\n{log}"
    );
}

#[test]
fn saves_under_load_and_a_kill_9_keep_every_acknowledged_version_without_conflicts() {
    let tb = TestBoard::start();
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    for round in 1..=3 {
        let pid = m.pid();
        let acked = load(&m, round, 150, || {
            // SAFETY: the daemon this test started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        });
        m.wait();
        // The dead mount goes first: the kernel may answer a stat of it
        // from its cache, which would pass for the new mount.
        gone(&mut m);
        m = m.remount(&[]);
        check_board(&tb, &acked, &m.log());
    }
    assert!(m.unmount().status.success());
}

#[test]
fn saves_under_load_make_no_conflicts() {
    let tb = TestBoard::start();
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let acked = load(&m, 1, 300, || {});
    assert!(m.unmount().status.success());
    check_board(&tb, &acked, &m.log());
    assert!(!m.log().contains("conflict"), "{}", m.log());
}

#[test]
fn unsent_changes_for_one_board_never_reach_another_at_the_same_address() {
    unsent_changes_stay_with_their_board(tempfile::tempdir().unwrap());
}

#[test]
fn unsent_changes_never_reach_a_board_whose_id_cannot_be_read() {
    let flash = tempfile::tempdir().unwrap();
    // Its marker is a directory: reading it fails (EISDIR).
    std::fs::create_dir(flash.path().join(".webrepl-mount-id")).unwrap();
    unsent_changes_stay_with_their_board(flash);
}

/// A mount held by another board at its address, with nothing to write:
/// once its own board is back, `status` says so without waiting for a
/// write or a listing (it kept a stale `held:` line before).
#[test]
fn status_drops_a_held_line_once_the_mounts_board_is_back() {
    let mut tb = TestBoard::start();
    std::fs::write(tb.path("/main.py"), b"print('A')\n").unwrap();
    let m = Mount::start(&tb, &tb.addr(), &[]);
    let flash_b = tempfile::tempdir().unwrap();
    std::fs::write(
        flash_b.path().join(".webrepl-mount-id"),
        b"00000000000000bb\n",
    )
    .unwrap();
    let flash_a = tb.swap_board(flash_b);
    // A listing meets board B and holds the mount.
    eventually(60, "a listing to meet board B", || {
        let _ = std::fs::read_dir(m.path().join("sub"));
        let _ = std::fs::read_dir(m.path()).map(|d| d.count());
        m.status().contains("held:")
    });
    tb.swap_board(flash_a);
    let mut m = m;
    m.status_until(60, |s| !s.contains("held:"));
    assert!(m.log().contains("is back"), "{}", m.log());
    assert!(m.unmount().status.success());
}

#[test]
fn a_live_mount_holds_its_changes_when_another_board_answers_at_its_address() {
    let mut tb = TestBoard::start();
    std::fs::write(tb.path("/main.py"), b"print('A')\n").unwrap();
    let mut emu = LinkEmu::start(tb.port, 1.0);
    let m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    let id_a = std::fs::read_to_string(tb.path("/.webrepl-mount-id")).unwrap();
    let id_a = id_a.trim().to_string();
    // Changes that do not reach board A before its link goes.
    emu.command("refuse on");
    emu.command("cut");
    write_and_close(&m.path().join("for_a.py"), b"only for A\n").unwrap();
    write_and_close(&m.path().join("main.py"), b"print('A, edited')\n").unwrap();
    // Board B, mounted elsewhere before, answers at the same address; the
    // mount reconnects by itself to send them.
    let flash_b = tempfile::tempdir().unwrap();
    std::fs::write(flash_b.path().join("main.py"), b"print('B')\n").unwrap();
    std::fs::write(flash_b.path().join("b_only.py"), b"B's own\n").unwrap();
    std::fs::write(
        flash_b.path().join(".webrepl-mount-id"),
        b"00000000000000bb\n",
    )
    .unwrap();
    let flash_a = tb.swap_board(flash_b);
    emu.command("refuse off");
    let status = m.status_until(60, |s| s.contains("held:"));
    assert!(
        status.contains("board 00000000000000bb") && status.contains(&id_a),
        "{status}"
    );
    assert!(status.contains("unsent: /for_a.py"), "{status}");
    // Retries and a forced sync write nothing to B.
    let _ = Command::new("sync")
        .arg(m.path().join("for_a.py"))
        .status()
        .unwrap();
    let status = m.status();
    assert!(status.contains("held:"), "{status}");
    assert!(!tb.path("/for_a.py").exists(), "board B got board A's file");
    assert_eq!(std::fs::read(tb.path("/main.py")).unwrap(), b"print('B')\n");
    let names: Vec<_> = std::fs::read_dir(tb.path("/"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // Nothing new there: not a part file of an upload queued for board A
    // (each is tied to the link its board was checked on), not even our
    // helpers.
    assert!(
        names
            .iter()
            .all(|n| ["main.py", "b_only.py", ".webrepl-mount-id"].contains(&n.as_str())),
        "{names:?}"
    );
    // What the mount holds stays readable; B's names never show (an edit
    // of one would carry B's file to A).
    assert_eq!(
        std::fs::read(m.path().join("for_a.py")).unwrap(),
        b"only for A\n"
    );
    let listed: Vec<_> = std::fs::read_dir(m.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!listed.iter().any(|n| n == "b_only.py"), "{listed:?}");
    assert!(!m.path().join("b_only.py").exists());
    assert!(
        m.log()
            .contains("held: the board at this address is board 00000000000000bb")
    );
    // Board A back: its changes go.
    tb.swap_board(flash_a);
    let _ = Command::new("sync")
        .arg(m.path().join("for_a.py"))
        .arg(m.path().join("main.py"))
        .status()
        .unwrap();
    let mut m = m;
    m.status_until(60, |s| !s.contains("held:") && !s.contains("dirty:"));
    assert_eq!(
        std::fs::read(tb.path("/for_a.py")).unwrap(),
        b"only for A\n"
    );
    assert_eq!(
        std::fs::read(tb.path("/main.py")).unwrap(),
        b"print('A, edited')\n"
    );
    assert!(!tb.path("/b_only.py").exists());
    assert!(m.unmount().status.success());
}

#[test]
fn a_daemon_mount_tells_its_user_of_a_journal_set_aside() {
    let mut tb = TestBoard::start();
    let mut emu = LinkEmu::start(tb.port, 1.0);
    let board = format!("127.0.0.1:{}", emu.port);
    let mut m = Mount::start(&tb, &board, &[]);
    let id_a = std::fs::read_to_string(tb.path("/.webrepl-mount-id")).unwrap();
    let id_a = id_a.trim().to_string();
    emu.command("refuse on");
    emu.command("cut");
    write_and_close(&m.path().join("for_a.py"), b"only for A\n").unwrap();
    // SAFETY: the daemon this test started.
    unsafe { libc::kill(m.pid() as i32, libc::SIGKILL) };
    m.wait();
    gone(&mut m);
    let _flash_a = tb.swap_board(tempfile::tempdir().unwrap());
    emu.command("refuse off");
    // A daemon's stderr is its log: the user hears of it before it goes.
    let out = m
        .cmd()
        .arg("--daemon")
        .arg(&board)
        .arg(m.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("belong to board {id_a}")) && err.contains("--adopt-journal"),
        "{err}"
    );
    let status = m.status();
    assert!(
        status.contains("set aside: ") && status.contains(&format!("belong to board {id_a}")),
        "{status}"
    );
    assert!(!tb.path("/for_a.py").exists(), "board B got board A's file");
    assert!(m.unmount().status.success());
}

/// A change written for board A, then board `flash_b` at A's address:
/// B never gets it; A does when it is back.
fn unsent_changes_stay_with_their_board(flash_b: tempfile::TempDir) {
    let mut tb = TestBoard::start();
    let mut emu = LinkEmu::start(tb.port, 1.0);
    let m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    let id_a = std::fs::read_to_string(tb.path("/.webrepl-mount-id")).unwrap();
    let id_a = id_a.trim().to_string();
    let listed: Vec<_> = std::fs::read_dir(m.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(listed.is_empty(), "the id marker shows: {listed:?}");
    // A change that never reaches board A: the link is cut, the daemon dies.
    emu.command("refuse on");
    emu.command("cut");
    write_and_close(&m.path().join("for_a.py"), b"only for A\n").unwrap();
    // SAFETY: the daemon this test started.
    unsafe { libc::kill(m.pid() as i32, libc::SIGKILL) };
    let mut m = m;
    m.wait();
    gone(&mut m);
    // Board B answers at the same address.
    let flash_a = tb.swap_board(flash_b);
    emu.command("refuse off");
    let mut m = m.remount(&[]);
    assert!(!tb.path("/for_a.py").exists(), "board B got board A's file");
    let log = m.log();
    assert!(
        log.contains(&format!("belong to board {id_a}")) && log.contains("--adopt-journal"),
        "{log}"
    );
    assert!(m.unmount().status.success());
    // Board A back: it gets its file at the next mount.
    tb.swap_board(flash_a);
    let mut m = m.remount(&[]);
    assert_eq!(
        std::fs::read(tb.path("/for_a.py")).unwrap(),
        b"only for A\n"
    );
    assert!(m.unmount().status.success());
}
