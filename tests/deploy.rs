//! Deploying a tree: pipelined uploads, unchanged files skipped by hash,
//! several boards at once, and failures in the middle of a batch that leave
//! every file either old or new, on the real test board.

mod common;

use common::{LinkEmu, Mount, TestBoard, eventually, random_bytes, sh, wm};
use std::path::Path;
use std::process::{Command, Output};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A project: `n` files of about 2.7 KB, a fifth of them in `lib/`.
fn project(dir: &Path, n: usize, seed: u64) {
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    for i in 0..n {
        let sub = if i % 5 == 0 { "lib/" } else { "" };
        let body = random_bytes(2700 + i, seed + i as u64);
        std::fs::write(dir.join(format!("{sub}m{i:02}.py")), body).unwrap();
    }
}

/// Every file under the board's `root` is either `old`'s or `new`'s
/// version of it, and no part file is left.
fn each_old_or_new(board: &Path, old: &Path, new: &Path) -> (usize, usize) {
    let (mut olds, mut news) = (0, 0);
    let listing = sh(&format!(
        "cd '{}' && find . -type f ! -name .webrepl-mount-helpers | sort",
        board.display()
    ));
    for f in listing.lines() {
        assert!(!f.contains(".wrm-"), "part file left: {f}");
        let got = std::fs::read(board.join(f)).unwrap();
        if std::fs::read(old.join(f)).is_ok_and(|o| o == got) {
            olds += 1;
        } else if std::fs::read(new.join(f)).is_ok_and(|n| n == got) {
            news += 1;
        } else {
            panic!("{f} is neither old nor new ({} bytes)", got.len());
        }
    }
    (olds, news)
}

#[test]
fn a_second_cp_sends_nothing_and_force_sends_all() {
    let tb = TestBoard::start();
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("src");
    project(&src, 20, 1);
    std::fs::create_dir(tb.path("/app")).unwrap();
    let dst = format!("{}:/app", tb.addr());
    let s = &format!("{}/.", src.display());
    let o = wm(&tb.password, &["cp", "-r", s, &dst]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("sent 20 file(s)"), "{}", stderr(&o));
    sh(&format!("diff -r '{s}' '{}'", tb.path("/app").display()));
    // Nothing written the second time: the board's files keep an old mtime.
    sh(&format!(
        "find '{}' -type f -exec touch -d 2020-01-01 {{}} +",
        tb.path("/app").display()
    ));
    let o = wm(&tb.password, &["cp", "-v", "-r", s, &dst]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("sent 0 file(s), 0 B"), "{e}");
    assert!(e.contains("skipped 20 unchanged (sha256"), "{e}");
    let old = sh(&format!(
        "find '{}' -type f -newermt 2021-01-01",
        tb.path("/app").display()
    ));
    assert_eq!(old.trim(), "", "files rewritten");
    // One changed (same size, other bytes) and one new: those two go.
    std::fs::write(src.join("m01.py"), random_bytes(2701, 99)).unwrap();
    std::fs::write(src.join("lib/new.py"), b"x = 1\n").unwrap();
    let o = wm(&tb.password, &["cp", "-r", s, &dst]);
    assert!(stderr(&o).contains("sent 2 file(s)"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("skipped 19 unchanged"),
        "{}",
        stderr(&o)
    );
    sh(&format!("diff -r '{s}' '{}'", tb.path("/app").display()));
    let o = wm(&tb.password, &["cp", "-r", "--force", s, &dst]);
    assert!(stderr(&o).contains("sent 21 file(s)"), "{}", stderr(&o));
    // Firmware without hashlib: a CRC, and -v says so.
    let o = wm(
        &tb.password,
        &[
            "exec",
            &tb.addr(),
            "import sys\nclass M: pass\nsys.modules['hashlib']=M",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = wm(&tb.password, &["cp", "-v", "-r", s, &dst]);
    let e = stderr(&o);
    assert!(e.contains("skipped 21 unchanged (crc32"), "{e}");
    // One file to a board path skips the same way.
    let one = src.join("m02.py");
    let o = wm(
        &tb.password,
        &["cp", one.to_str().unwrap(), &format!("{dst}/m02.py")],
    );
    assert!(stderr(&o).contains("skipped 1 unchanged"), "{}", stderr(&o));
}

#[test]
fn several_boards_at_once_and_one_unreachable_stops_none() {
    let boards = [TestBoard::start(), TestBoard::start()];
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("src");
    project(&src, 10, 2);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let mut args = vec!["cp".to_string(), "-r".into(), src.to_str().unwrap().into()];
    args.push(format!("{}:/", boards[0].addr()));
    args.push(format!("127.0.0.1:{dead_port}:/"));
    args.push(format!("{}:/", boards[1].addr()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = wm(&boards[0].password, &refs);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(8), "{e}");
    assert!(e.contains(&format!("127.0.0.1:{dead_port}: FAILED")), "{e}");
    assert!(e.contains("1 of 3 boards failed"), "{e}");
    for b in &boards {
        assert!(e.contains(&format!("{}: sent 10 file(s)", b.addr())), "{e}");
        sh(&format!(
            "diff -r '{}' '{}'",
            src.display(),
            b.path("/src").display()
        ));
    }
}

#[test]
fn a_full_flash_in_the_middle_of_a_batch_leaves_each_file_old_or_new() {
    let tb = TestBoard::with_flash_kb(160);
    let local = tempfile::tempdir().unwrap();
    let (old, new) = (local.path().join("old"), local.path().join("new"));
    project(&old, 20, 3);
    // The new version: bigger files, more than the flash holds.
    std::fs::create_dir_all(new.join("lib")).unwrap();
    for i in 0..20 {
        let sub = if i % 5 == 0 { "lib/" } else { "" };
        std::fs::write(
            new.join(format!("{sub}m{i:02}.py")),
            random_bytes(9000 + i, 50 + i as u64),
        )
        .unwrap();
    }
    let dst = format!("{}:/", tb.addr());
    let o = wm(
        &tb.password,
        &["cp", "-r", &format!("{}/.", old.display()), &dst],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = wm(
        &tb.password,
        &["cp", "-r", &format!("{}/.", new.display()), &dst],
    );
    let e = stderr(&o);
    assert!(!o.status.success(), "the flash was too small: {e}");
    assert!(
        e.contains("no space") && e.contains("m") && e.contains(".py"),
        "the error names the file and the cause: {e}"
    );
    let (olds, news) = each_old_or_new(&tb.root.path().join("."), &old, &new);
    assert_eq!(olds + news, 20);
    assert!(news > 0 && olds > 0, "{news} new, {olds} old");
}

#[test]
fn a_file_in_the_way_and_a_cut_link_in_the_middle_of_a_batch() {
    let mut tb = TestBoard::start();
    let local = tempfile::tempdir().unwrap();
    let (old, new) = (local.path().join("old"), local.path().join("new"));
    project(&old, 30, 4);
    project(&new, 30, 5);
    // A file where a directory is wanted: the error names it.
    std::fs::write(tb.path("/lib"), b"not a dir").unwrap();
    let o = wm(
        &tb.password,
        &[
            "cp",
            "-r",
            &format!("{}/.", new.display()),
            &format!("{}:/", tb.addr()),
        ],
    );
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(12), "{e}");
    assert!(e.contains("/lib") && e.contains("ot a directory"), "{e}");
    assert!(
        !tb.path("/m01.py").exists(),
        "nothing sent before the check"
    );
    std::fs::remove_file(tb.path("/lib")).unwrap();
    // The old tree, then the new one over a slow link cut half-way: the
    // client reconnects and sends what was not confirmed. Cut while the
    // data goes, then (new over old again) while the parts are renamed.
    let dst = format!("{}:/", tb.addr());
    let o = wm(
        &tb.password,
        &["cp", "-r", &format!("{}/.", old.display()), &dst],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let parts = |tb: &TestBoard| {
        sh(&format!(
            "find '{}' -name '.wrm-*'",
            tb.root.path().display()
        ))
    };
    cut_while(&mut tb, &new, "part files on the board", &mut |tb| {
        !parts(tb).trim().is_empty()
    });
    assert_eq!(each_old_or_new(tb.root.path(), &old, &new), (0, 30));
    cut_while(&mut tb, &old, "a first file renamed", &mut |tb| {
        each_old_or_new_quiet(tb, &new, &old).1 > 0
    });
    assert_eq!(each_old_or_new(tb.root.path(), &new, &old), (0, 30));
}

/// `cp -r --force tree/. board:/` over a slow link, cut once `when`.
fn cut_while(
    tb: &mut TestBoard,
    tree: &Path,
    what: &str,
    when: &mut dyn FnMut(&TestBoard) -> bool,
) {
    let mut emu = LinkEmu::slow(tb.port);
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
        .args(["cp", "-vvv", "-r", "--force"])
        .arg(format!("{}/.", tree.display()))
        .arg(format!("127.0.0.1:{}:/", emu.port))
        .env("WEBREPL_PASSWORD", &tb.password)
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    // Until `when`; a copy that ended first says why.
    eventually(60, what, || {
        if let Some(status) = child.try_wait().unwrap() {
            let log = std::fs::read_to_string(log.path()).unwrap_or_default();
            panic!("the copy ended ({status}) before {what}:\n{log}");
        }
        when(tb)
    });
    emu.command("cut");
    let status = child.wait().unwrap();
    let e = std::fs::read_to_string(log.path()).unwrap();
    if !status.success() {
        // Whether the board itself still answers tells our failure from
        // the board's.
        let direct = wm(&tb.password, &["exec", &tb.addr(), "print(6*7)"]);
        panic!(
            "{e}\n--- the board directly: {:?} {}",
            String::from_utf8_lossy(&direct.stdout),
            stderr(&direct)
        );
    }
    assert!(e.contains("sent 30 file(s)"), "{e}");
}

/// Like [`each_old_or_new`] but while the board is still writing: files
/// in the middle of a write are neither yet.
fn each_old_or_new_quiet(tb: &TestBoard, old: &Path, new: &Path) -> (usize, usize) {
    let (mut olds, mut news) = (0, 0);
    for sub in ["", "lib/"] {
        for i in 0..30 {
            let f = format!("{sub}m{i:02}.py");
            let Ok(got) = std::fs::read(tb.path(&f)) else {
                continue;
            };
            if std::fs::read(old.join(&f)).is_ok_and(|o| o == got) {
                olds += 1;
            } else if std::fs::read(new.join(&f)).is_ok_and(|n| n == got) {
                news += 1;
            }
        }
    }
    (olds, news)
}

#[test]
fn a_tree_copied_into_the_mount_is_on_the_board_at_unmount() {
    let tb = TestBoard::start();
    let emu = LinkEmu::start(tb.port, 5.0);
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("src");
    project(&src, 50, 6);
    let mut m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    sh(&format!(
        "cp -a '{}' '{}'",
        src.display(),
        m.path().display()
    ));
    // The mount shows it at once; rsync finds nothing to send.
    sh(&format!(
        "diff -r '{}' '{}/src'",
        src.display(),
        m.path().display()
    ));
    let out = sh(&format!(
        "rsync -a --stats '{}/' '{}/src/'",
        src.display(),
        m.path().display()
    ));
    assert!(
        out.contains("Number of regular files transferred: 0"),
        "{out}"
    );
    let u = m.unmount();
    assert!(u.status.success(), "{}", String::from_utf8_lossy(&u.stderr));
    sh(&format!(
        "diff -r '{}' '{}'",
        src.display(),
        tb.path("/src").display()
    ));
}

/// Commands run back to back (a deploy script, a shell loop) each find the
/// board free: the one before closed so that the board noticed at once.
#[test]
fn commands_back_to_back_find_the_board_free() {
    let tb = TestBoard::lingering(20);
    // A link's delay makes the board see a client's end later.
    let emu = LinkEmu::start(tb.port, 5.0);
    let board = format!("127.0.0.1:{}", emu.port);
    let local = tempfile::tempdir().unwrap();
    let f = local.path().join("f.txt");
    std::fs::write(&f, "abc").unwrap();
    for i in 0..6 {
        let o = wm(
            &tb.password,
            &["cp", f.to_str().unwrap(), &format!("{board}:/f{i}.txt")],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let o = wm(&tb.password, &["exec", &board, "print(1)"]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let log = tb.listener_log();
    assert!(!log.contains("rejected"), "a command was refused:\n{log}");
}

/// A board another client holds for 2 s: the command waits for it, quietly,
/// and gets through once it is free.
#[test]
fn a_command_gets_through_once_the_board_is_free() {
    let tb = TestBoard::start();
    let holder = common::Reaped(
        Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
            .args([
                "exec",
                &tb.addr(),
                "open('/held','w').close()\nimport time\ntime.sleep(2)",
            ])
            .env("WEBREPL_PASSWORD", &tb.password)
            .spawn()
            .unwrap(),
    );
    eventually(10, "the holder running", || tb.path("/held").exists());
    let o = wm(&tb.password, &["exec", &tb.addr(), "print(6*7)"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, b"42\n");
    assert_eq!(stderr(&o), "", "printed while waiting");
    assert!(
        tb.listener_log().contains("rejected"),
        "the board was never busy"
    );
    drop(holder);
}
