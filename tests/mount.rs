//! A real FUSE mount of the test board, used by ordinary tools through the
//! link emulator at 10 ms round trip.

mod common;

use common::{LinkEmu, Mount, TestBoard, random_bytes, sh};
use std::path::Path;
use std::process::Command;

/// Runs `script` (with `$R` the root to work on) on a local mirror and on
/// the mount: at the end the board must hold what the mirror holds.
fn both(mirror: &Path, mount: &Path, script: &str) {
    sh(&format!("R='{}'; {script}", mirror.display()));
    sh(&format!("R='{}'; {script}", mount.display()));
}

fn vim() -> &'static str {
    if Path::new("/usr/bin/vim.tiny").exists() {
        "vim.tiny"
    } else {
        "vim"
    }
}

#[test]
fn everyday_tools_on_the_mount_leave_the_board_byte_for_byte_right() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/main.py"), "print('hello')\n").unwrap();
    std::fs::create_dir(tb.path("/lib")).unwrap();
    std::fs::write(tb.path("/lib/util.py"), "def f():\n    return 1\n").unwrap();
    let emu = LinkEmu::start(tb.port, 5.0);
    let mut m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    let mp = m.path().to_path_buf();
    let work = tempfile::tempdir().unwrap();
    let mirror = work.path().join("mirror");
    sh(&format!(
        "cp -r '{}' '{}'",
        tb.root.path().display(),
        mirror.display()
    ));

    // A local tree to deploy: nested, an empty file, a UTF-8 name, 1 MB.
    let src = work.path().join("src");
    std::fs::create_dir_all(src.join("pkg/sub")).unwrap();
    for i in 0..12 {
        std::fs::write(
            src.join(format!("pkg/m{i}.py")),
            format!("x = {i}\n").repeat(40),
        )
        .unwrap();
    }
    std::fs::write(src.join("pkg/sub/empty.py"), "").unwrap();
    std::fs::write(src.join("grüße.txt"), "hello ü\n").unwrap();
    std::fs::write(src.join("big.bin"), random_bytes(1 << 20, 1)).unwrap();
    let src = src.display();

    let listing = sh(&format!("ls -lR '{}'", mp.display()));
    assert!(
        listing.contains("main.py") && listing.contains("util.py"),
        "{listing}"
    );
    assert_eq!(
        std::fs::read(mp.join("main.py")).unwrap(),
        b"print('hello')\n"
    );

    both(&mirror, &mp, &format!("cp -r '{src}' \"$R/app\""));
    both(&mirror, &mp, "sed -i 's/hello/bye/' \"$R/main.py\"");
    both(
        &mirror,
        &mp,
        "printf 'new\\n' > \"$R/lib/.util.tmp\" && mv \"$R/lib/.util.tmp\" \"$R/lib/util.py\"",
    );
    both(
        &mirror,
        &mp,
        &format!(
            "{} -es -c '%s/new/edited by vim/' -c wq \"$R/lib/util.py\"",
            vim()
        ),
    );
    both(&mirror, &mp, "rm -r \"$R/app/pkg/sub\"");
    both(
        &mirror,
        &mp,
        "mkdir \"$R/dst\" && mv \"$R/app/pkg/m3.py\" \"$R/dst/\" && mv \"$R/app/grüße.txt\" \"$R/dst/ü.txt\"",
    );
    both(
        &mirror,
        &mp,
        "truncate -s 5 \"$R/app/pkg/m1.py\" && echo more >> \"$R/app/pkg/m2.py\"",
    );
    both(&mirror, &mp, ": > \"$R/empty\" && touch \"$R/touched\"");
    both(
        &mirror,
        &mp,
        "mkdir -p \"$R/gone/deep\" && rmdir \"$R/gone/deep\" \"$R/gone\"",
    );

    // rsync, twice: the second run finds nothing to send.
    both(&mirror, &mp, &format!("rsync -a '{src}/' \"$R/sync/\""));
    let second = sh(&format!(
        "rsync -a --stats '{src}/' '{}/sync/'",
        mp.display()
    ));
    assert!(
        second.contains("Number of regular files transferred: 0"),
        "{second}"
    );

    let df = sh(&format!("df -P '{}'", mp.display()));
    assert!(df.contains("webrepl"), "{df}");
    // Out again.
    let out = work.path().join("out");
    sh(&format!("cp -r '{}/app' '{}'", mp.display(), out.display()));
    sh(&format!(
        "diff -r '{}/app' '{}'",
        mirror.display(),
        out.display()
    ));

    let u = m.unmount();
    assert!(u.status.success(), "{}", String::from_utf8_lossy(&u.stderr));
    // Less the board's id, which the mount writes, and our helpers'
    // file (README).
    sh(&format!(
        "diff -r -x .webrepl-mount-id -x .webrepl-mount-helpers '{}' '{}'",
        mirror.display(),
        tb.root.path().display()
    ));
}

#[test]
fn rsync_sends_nothing_after_a_remount() {
    let tb = TestBoard::start();
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let src = tempfile::tempdir().unwrap();
    for i in 0..5 {
        std::fs::write(src.path().join(format!("f{i}.py")), format!("v = {i}\n")).unwrap();
    }
    std::fs::create_dir(src.path().join("d")).unwrap();
    std::fs::write(src.path().join("d/x.py"), "x\n").unwrap();
    let sync = |m: &Mount| {
        sh(&format!(
            "rsync -a --stats '{}/' '{}/s/'",
            src.path().display(),
            m.path().display()
        ))
    };
    assert!(sync(&m).contains("Number of regular files transferred: 6"));
    assert!(m.unmount().status.success());
    let mut m = m.remount(&[]);
    let again = sync(&m);
    assert!(
        again.contains("Number of regular files transferred: 0"),
        "{again}"
    );
    // A file changed on the board by someone else is sent again.
    std::fs::write(tb.path("/s/f1.py"), "v = 99\n").unwrap();
    assert!(m.unmount().status.success());
    let m = m.remount(&[]);
    let third = sync(&m);
    assert!(
        third.contains("Number of regular files transferred: 1"),
        "{third}"
    );
    assert_eq!(std::fs::read(tb.path("/s/f1.py")).unwrap(), b"v = 1\n");
}

#[test]
fn editors_saves_renames_of_open_files_and_droppings() {
    use std::io::Write;
    let tb = TestBoard::start();
    std::fs::write(tb.path("/doc.txt"), "old\n").unwrap();
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let mp = m.path().to_path_buf();
    // gedit: write a scratch file, rename it over the target while open.
    let mut f = std::fs::File::create(mp.join(".goutputstream-A1B2C3")).unwrap();
    f.write_all(b"saved by gedit\n").unwrap();
    std::fs::rename(mp.join(".goutputstream-A1B2C3"), mp.join("doc.txt")).unwrap();
    drop(f);
    assert_eq!(
        std::fs::read(tb.path("/doc.txt")).unwrap(),
        b"saved by gedit\n"
    );
    // vim's probe and swap file never reach the board.
    std::fs::write(mp.join("4913"), b"").unwrap();
    std::fs::remove_file(mp.join("4913")).unwrap();
    std::fs::write(mp.join(".doc.txt.swp"), random_bytes(4096, 2)).unwrap();
    assert!(mp.join(".doc.txt.swp").exists());
    // fsync puts a file on the board before it is closed.
    let mut g = std::fs::File::create(mp.join("synced.py")).unwrap();
    g.write_all(b"print(1)\n").unwrap();
    g.sync_all().unwrap();
    assert_eq!(std::fs::read(tb.path("/synced.py")).unwrap(), b"print(1)\n");
    drop(g);
    // Names the board cannot have.
    let long = mp.join("x".repeat(300));
    assert_eq!(
        std::fs::write(&long, b"").unwrap_err().raw_os_error(),
        Some(libc::ENAMETOOLONG)
    );
    for e in [
        std::os::unix::fs::symlink("doc.txt", mp.join("link")).unwrap_err(),
        std::fs::hard_link(mp.join("doc.txt"), mp.join("hard")).unwrap_err(),
    ] {
        assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");
    }
    assert!(m.unmount().status.success());
    let names: Vec<String> = std::fs::read_dir(tb.root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        // The board's id, written by the first mount, and our helpers'
        // file (README).
        .filter(|n| n != ".webrepl-mount-id" && n != ".webrepl-mount-helpers")
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, vec!["doc.txt", "synced.py"]);
}

fn fsx() -> std::path::PathBuf {
    let bin = common::repo().join("target/tools/bin/fsx");
    assert!(
        bin.exists(),
        "fsx is not installed: scripts/test.sh installs it (cargo install --root target/tools fsx)"
    );
    bin
}

#[test]
fn fsx_finds_no_mismatch_in_thousands_of_random_operations() {
    let tb = TestBoard::start();
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let artifacts = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(fsx())
        .args(["-N", "3000", "-S", "20261125", "-P"])
        .arg(artifacts.path())
        .arg(m.path().join("fsx.bin"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("A-OK"), "{text}");
    let last = std::fs::read(m.path().join("fsx.bin")).unwrap();
    assert!(m.unmount().status.success());
    assert_eq!(std::fs::read(tb.path("/fsx.bin")).unwrap(), last);
}

#[test]
fn a_link_down_past_the_timeout_fails_close_keeps_the_file_and_never_truncates_the_board() {
    use std::io::Write;
    use std::os::fd::IntoRawFd;
    let tb = TestBoard::start();
    std::fs::write(tb.path("/main.py"), "print('old')\n").unwrap();
    let mut emu = LinkEmu::start(tb.port, 0.0);
    // A close wait past the time-out: close() reports every upload error.
    let mut m = Mount::start(
        &tb,
        &format!("127.0.0.1:{}", emu.port),
        &["--timeout", "3", "--close-wait", "60"],
    );
    let data = random_bytes(200_000, 3);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(m.path().join("main.py"))
        .unwrap();
    f.write_all(&data).unwrap();
    // The link drops 50 KB into the upload that close() starts, and the
    // board stays out of reach longer than the time-out.
    emu.command("refuse on");
    emu.command("cut-up 50000");
    let fd = f.into_raw_fd();
    // SAFETY: closing the descriptor we own; close(2) reports the flush.
    let rc = unsafe { libc::close(fd) };
    let err = std::io::Error::last_os_error();
    assert_eq!(
        rc, -1,
        "close() reported success although the board was out of reach"
    );
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert_eq!(
        std::fs::read(tb.path("/main.py")).unwrap(),
        b"print('old')\n",
        "the target was touched"
    );
    assert!(m.status().contains("dirty: /main.py"), "{}", m.status());
    // What the mount shows is still the new file.
    assert_eq!(std::fs::read(m.path().join("main.py")).unwrap(), data);
    // The board comes back: the daemon sends it again by itself.
    emu.command("refuse off");
    common::eventually_with(20, || {
        (std::fs::read(tb.path("/main.py")).unwrap() == data)
            .then_some(())
            .ok_or_else(|| format!("never re-sent: {}", m.log()))
    });
    assert!(!m.status().contains("dirty: /main.py"));
    let u = m.unmount();
    assert!(u.status.success(), "{}", String::from_utf8_lossy(&u.stderr));
    assert_eq!(std::fs::read(tb.path("/main.py")).unwrap(), data);
    // The part file of the cut upload does not stay on the board's flash.
    let parts: Vec<_> = std::fs::read_dir(tb.root.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".wrm-"))
        .collect();
    assert!(parts.is_empty(), "left on the board: {parts:?}");
}

#[test]
fn daemon_mode_returns_once_mounted_or_with_the_error() {
    let tb = TestBoard::start();
    let (m, out) = Mount::daemon(&tb, &tb.addr(), &["--password", "nope"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong password"));
    assert!(!common::mounted(m.path()));
    let (mut m, out) = Mount::daemon(&tb, &tb.addr(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(common::mounted(m.path()), "mounted when --daemon returns");
    std::fs::write(m.path().join("d.py"), "d = 1\n").unwrap();
    let u = m.unmount();
    assert!(u.status.success(), "{}", String::from_utf8_lossy(&u.stderr));
    assert!(!common::mounted(m.path()));
    assert_eq!(std::fs::read(tb.path("/d.py")).unwrap(), b"d = 1\n");
}

#[test]
fn sigterm_a_plain_umount_and_the_writeback_delay_all_flush() {
    let tb = TestBoard::start();
    let mut m = Mount::start(&tb, &tb.addr(), &["--writeback-delay", "600"]);
    std::fs::write(m.path().join("a.py"), "a = 1\n").unwrap();
    assert!(
        !tb.path("/a.py").exists(),
        "uploaded on close despite the delay"
    );
    assert!(m.status().contains("dirty: /a.py"));
    // SIGTERM: flush, say so, unmount, exit.
    unsafe { libc::kill(m.pid() as i32, libc::SIGTERM) };
    assert!(m.wait().success());
    assert_eq!(std::fs::read(tb.path("/a.py")).unwrap(), b"a = 1\n");
    assert!(m.log().contains("flushed 1 file"), "{}", m.log());
    assert!(!common::mounted(m.path()));
    // A plain umount: the daemon still flushes before it exits.
    let mut m = m.remount(&["--writeback-delay", "600"]);
    std::fs::write(m.path().join("b.py"), "b = 2\n").unwrap();
    sh(&format!("umount '{}'", m.path().display()));
    assert!(m.wait().success());
    assert_eq!(std::fs::read(tb.path("/b.py")).unwrap(), b"b = 2\n");
    // A short delay uploads by itself.
    let mut m = m.remount(&["--writeback-delay", "0.3"]);
    std::fs::write(m.path().join("c.py"), "c = 3\n").unwrap();
    common::eventually_with(10, || {
        (std::fs::read(tb.path("/c.py")).ok().as_deref() == Some(b"c = 3\n"))
            .then_some(())
            .ok_or_else(|| format!("never uploaded: {}", m.log()))
    });
    assert!(m.unmount().status.success());
}

#[tokio::test]
async fn mounting_a_board_that_runs_a_program_follows_the_interrupt_policy() {
    let tb = TestBoard::start();
    let s = tb.session().await;
    // The program marks that it runs, so the test waits for that, not a guess.
    s.keys(b"import time\ropen('/running','w').close()\rwhile True: time.sleep_ms(5)\r\r".to_vec())
        .await
        .unwrap();
    common::eventually_async(10, "the program's start", async || {
        tb.path("/running").exists()
    })
    .await;
    s.close().await;
    for (flags, hint) in [
        (
            &["--no-interrupt"][..],
            "(drop --no-interrupt to allow Ctrl-C)",
        ),
        (&[][..], "(mount with --interrupt to stop it)"),
    ] {
        let (m, out) = Mount::daemon(&tb, &tb.addr(), flags);
        let said = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(10), "{flags:?}: {said}");
        assert_eq!(
            said.lines().last().unwrap_or(""),
            format!("webrepl-mount: the board is running a program; not interrupting it {hint}"),
            "{flags:?}"
        );
        assert!(!common::mounted(m.path()));
    }
    let (mut m, out) = Mount::daemon(&tb, &tb.addr(), &["--interrupt"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(m.unmount().status.success());
}

#[tokio::test]
async fn a_program_a_dead_client_left_in_the_raw_repl_does_not_stop_the_mount() {
    let tb = TestBoard::start();
    let s = tb.session().await;
    // One of our programs, in the raw REPL like all of them; its client goes
    // (as a daemon killed with -9 does) while it runs. Files mark where it is.
    let ran = s.clone();
    let program = tokio::spawn(async move {
        let code = "import time\nopen('/started','w').close()\ntime.sleep(4)\nopen('/ended','w').close()\n";
        let _ = ran.run(code, webrepl_mount::session::Run::SNIPPET).await;
    });
    common::eventually_async(10, "the program's start", async || {
        tb.path("/started").exists()
    })
    .await;
    s.close().await;
    program.abort();
    assert!(
        !tb.path("/ended").exists(),
        "it ended before the mount came"
    );
    // No --interrupt, no terminal to ask: the mount waits for it.
    let (mut m, out) = Mount::daemon(&tb, &tb.addr(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(tb.path("/ended").exists(), "the program was interrupted");
    assert!(m.unmount().status.success());
}

#[test]
fn kill_9_with_three_changed_files_loses_nothing_on_remount() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/keep.py"), "v1\n").unwrap();
    let m = Mount::start(&tb, &tb.addr(), &["--writeback-delay", "600"]);
    let mp = m.path().to_path_buf();
    std::fs::create_dir(mp.join("lib")).unwrap();
    std::fs::write(mp.join("a.py"), "a\n").unwrap();
    std::fs::write(mp.join("lib/b.py"), "b\n").unwrap();
    std::fs::write(mp.join("keep.py"), "edited here\n").unwrap();
    assert!(!tb.path("/a.py").exists(), "sent despite the delay");
    // The daemon dies with all three only in memory and in the journal.
    unsafe { libc::kill(m.pid() as i32, libc::SIGKILL) };
    let mut m = m;
    m.wait();
    // `unmount` cleans the dead mount and says what the next mount sends.
    let u = m.unmount();
    let said = String::from_utf8_lossy(&u.stderr).to_string();
    assert!(u.status.success(), "{said}");
    assert!(!common::mounted(&mp), "still mounted");
    assert!(said.contains("was a dead mount"), "{said}");
    assert!(
        said.contains("3 change(s) had not reached the board")
            && said.contains("/a.py")
            && said.contains("/lib/b.py")
            && said.contains("/keep.py")
            && said.contains("the next mount of"),
        "{said}"
    );
    // Meanwhile the board's own copy of one of them changes.
    std::fs::write(tb.path("/keep.py"), "changed on the board\n").unwrap();
    let mut m = m.remount(&[]);
    assert_eq!(std::fs::read(tb.path("/a.py")).unwrap(), b"a\n");
    assert_eq!(std::fs::read(tb.path("/lib/b.py")).unwrap(), b"b\n");
    assert_eq!(
        std::fs::read(tb.path("/keep.py")).unwrap(),
        b"changed on the board\n"
    );
    assert_eq!(
        std::fs::read(tb.path("/keep.py.webrepl-mount-conflict")).unwrap(),
        b"edited here\n"
    );
    let log = m.log();
    assert!(
        log.contains("sending 3 change(s)")
            && log.contains("sent 3 change(s)")
            && log.contains("keep.py changed on the board"),
        "{log}"
    );
    // Killed again, then mounted straight over the dead mountpoint.
    std::fs::write(mp.join("c.py"), "c\n").unwrap();
    let pid = m.pid();
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    m.wait();
    let mut m = m.remount(&[]);
    assert!(m.log().contains("was a dead mount"), "{}", m.log());
    assert_eq!(std::fs::read(tb.path("/c.py")).unwrap(), b"c\n");
    assert!(m.unmount().status.success());
}

/// `-o allow_other` lets other users in as the modes allow, not further.
#[test]
fn allow_other_lets_other_users_in_as_the_modes_allow() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/notes.txt"), "mine\n").unwrap();
    let mut m = Mount::start(&tb, &tb.addr(), &["-o", "allow_other"]);
    let file = m.path().join("notes.txt");
    let nobody = |line: &str| {
        Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .args(["sh", "-c", line])
            .output()
            .expect("setpriv")
    };
    let f = file.display();
    let o = nobody(&format!("cat '{f}'"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.stdout, b"mine\n");
    let o = nobody(&format!("echo theirs >> '{f}'"));
    assert!(
        !o.status.success(),
        "a 0644 file of another user was written"
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = nobody(&format!("touch '{}/theirs.txt'", m.path().display()));
    assert!(
        !o.status.success(),
        "a file made in a 0755 directory of another user"
    );
    // Their mode opened to all: now they may.
    sh(&format!("chmod 666 '{f}'"));
    let o = nobody(&format!("echo theirs >> '{f}'"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(m.unmount().status.success());
    assert_eq!(
        std::fs::read(tb.path("/notes.txt")).unwrap(),
        b"mine\ntheirs\n"
    );
}

/// A file not yet in the cache, copied out of the mount by tools that use
/// sendfile (Python's shutil, `webrepl-mount cp` of a mounted board) or
/// mmap, arrives whole: they read through the page cache, which took the
/// first read's short answer (1,024 bytes by a range read) as the file's
/// end, and they wrote 1,024 bytes and succeeded.
#[test]
fn uncached_files_copied_out_by_sendfile_or_mmap_arrive_whole() {
    let tb = TestBoard::start();
    let data = common::random_bytes(100_000, 17);
    for name in ["a.bin", "b.bin", "c.bin"] {
        std::fs::write(tb.path(&format!("/{name}")), &data).unwrap();
    }
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let out = tempfile::tempdir().unwrap();
    let o = m
        .cmd()
        .args([
            "cp",
            &format!("{}:/a.bin", tb.addr()),
            out.path().join("a.bin").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let py = format!(
        "import shutil, mmap\n\
         shutil.copyfile({b:?}, {to:?})\n\
         f = open({c:?}, 'rb')\n\
         open({to2:?}, 'wb').write(mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)[:])\n",
        b = m.path().join("b.bin"),
        to = out.path().join("b.bin"),
        c = m.path().join("c.bin"),
        to2 = out.path().join("c.bin"),
    );
    let o = std::process::Command::new("python3")
        .args(["-c", &py])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for name in ["a.bin", "b.bin", "c.bin"] {
        let got = std::fs::read(out.path().join(name)).unwrap();
        assert!(got == data, "{name}: {} of {} bytes", got.len(), data.len());
    }
    assert!(m.unmount().status.success());
}
