//! `webrepl-mount share DIR BOARD` on the real test board: the board
//! imports and writes the host's files through its REPL's own channel.

mod common;

use common::piped::Piped;
use common::{LinkEmu, Mount, SMALL_HEAP_KB, TestBoard, eventually, eventually_with};
use std::path::Path;
use std::process::Command;

/// The board's REPL with DIR shared, driven through a pipe.
fn share(tb: &TestBoard, dir: &Path, extra: &[&str]) -> Piped {
    let mut c = Command::new(env!("CARGO_BIN_EXE_webrepl-mount"));
    c.args(["--timeout", "5", "share"])
        .args(extra)
        .arg(dir)
        .arg(tb.addr())
        .env("WEBREPL_PASSWORD", &tb.password);
    let term = Piped::spawn(c);
    eventually(15, "the share's greeting", || {
        term.text().contains("Ctrl-] ends the share")
    });
    term
}

/// The share of `dir` through the link emulator at `port`, its stderr (the
/// person's terminal too) in `log`.
fn share_logged(tb: &TestBoard, dir: &Path, port: u16, log: &Path) -> Piped {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("exec \"$0\" --timeout 5 share \"$1\" \"$2\" 2>\"$3\"")
        .arg(env!("CARGO_BIN_EXE_webrepl-mount"))
        .arg(dir)
        .arg(format!("127.0.0.1:{port}"))
        .arg(log)
        .env("WEBREPL_PASSWORD", &tb.password);
    Piped::spawn(c)
}

/// Waits for `what` in the terminal after byte `from`; says what it shows
/// if it never comes.
fn wait_for(term: &Piped, from: usize, what: &str) {
    eventually_with(20, || {
        let text = term.text();
        if text[from..].contains(what) {
            Ok(())
        } else {
            Err(format!(
                "{what:?} never came; the terminal shows {:?}",
                &text[from..]
            ))
        }
    });
}

/// Types a line and waits for `answer` after it.
fn line(term: &mut Piped, code: &str, answer: &str) {
    let before = term.text().len();
    term.type_keys(format!("{code}\r").as_bytes());
    wait_for(term, before, answer);
}

fn assert_clean(term: &Piped) {
    let t = term.text();
    assert!(
        !t.contains('\u{18}'),
        "protocol bytes reached the terminal: {t:?}"
    );
}

#[test]
fn the_board_imports_and_writes_the_hosts_files_and_nothing_lands_on_flash() {
    let tb = TestBoard::with_ring(Some(256));
    let host = tempfile::tempdir().expect("host dir");
    std::fs::write(
        host.path().join("greet.py"),
        "def hi():\n    return 'hi ' * 2\n",
    )
    .expect("seed");
    let body: String = (0..300).map(|i| format!("V{i} = {i}\n")).collect();
    std::fs::write(host.path().join("many.py"), &body).expect("seed");
    std::fs::create_dir(host.path().join("sub")).expect("sub");
    let before: Vec<_> = std::fs::read_dir(tb.root.path())
        .expect("board root")
        .map(|e| e.expect("entry").file_name())
        .collect();
    let mut term = share(&tb, host.path(), &[]);
    line(&mut term, "import greet; print(greet.hi())", "hi hi");
    line(&mut term, "import many; print(many.V299 + 1)", "300");
    line(
        &mut term,
        "import os; print(os.getcwd(), sorted(os.listdir()))",
        "/remote ['greet.py', 'many.py', 'sub']",
    );
    // A program's output file lands on the host.
    line(
        &mut term,
        "f = open('sub/log.txt', 'w'); f.write('line\\n' * 1000); f.close(); print('done', 6 * 7)",
        "done 42",
    );
    assert_eq!(
        std::fs::read_to_string(host.path().join("sub/log.txt")).expect("on the host"),
        "line\n".repeat(1000)
    );
    // A `..` that stays inside DIR is the board's to use.
    line(
        &mut term,
        "print(open('sub/../sub/log.txt').read()[:4], len(open('sub/../greet.py').read()))",
        "line 31",
    );
    // A host edit is seen once the module is imported again.
    std::fs::write(
        host.path().join("greet.py"),
        "def hi():\n    return 'edited'\n",
    )
    .expect("edit");
    line(
        &mut term,
        "import sys; del sys.modules['greet']; import greet; print(greet.hi())",
        "edited",
    );
    // Nothing outside DIR.
    line(
        &mut term,
        "try:\n    open('../../etc/hostname')\nexcept OSError as e:\n    print('refused', e.args[0])\n\r",
        "refused 13",
    );
    std::os::unix::fs::symlink("/etc", host.path().join("out")).expect("symlink");
    line(
        &mut term,
        "try:\n    open('out/hostname')\nexcept OSError as e:\n    print('refused', e.args[0])\n\r",
        "refused 13",
    );
    assert_clean(&term);
    term.type_keys(b"\x1d");
    let status = term.child.wait().expect("exit");
    assert!(status.success(), "{status}");
    // The board's flash got nothing.
    let after: Vec<_> = std::fs::read_dir(tb.root.path())
        .expect("board root")
        .map(|e| e.expect("entry").file_name())
        .collect();
    // Our one file: the class's copy (share::SHARE_FILE), for new links.
    let after: Vec<_> = after
        .into_iter()
        .filter(|n| n != ".webrepl-mount-share")
        .collect();
    assert_eq!(before, after);
}

#[test]
fn a_read_only_share_refuses_the_boards_writes() {
    let tb = TestBoard::start();
    let host = tempfile::tempdir().expect("host dir");
    std::fs::write(host.path().join("a.txt"), "kept").expect("seed");
    let mut term = share(&tb, host.path(), &["--read-only"]);
    line(
        &mut term,
        "try:\n    open('a.txt', 'w')\nexcept OSError as e:\n    print('refused', e.args[0])\n\r",
        "refused 30",
    );
    line(&mut term, "print(open('a.txt').read())", "kept");
    assert_eq!(
        std::fs::read_to_string(host.path().join("a.txt")).expect("a"),
        "kept"
    );
}

#[test]
fn a_soft_reset_keeps_the_share_and_ctrl_c_in_a_shared_read_leaves_the_board_usable() {
    let tb = TestBoard::with_ring(Some(256));
    let host = tempfile::tempdir().expect("host dir");
    std::fs::write(host.path().join("m.py"), "X = 'from the host'\n").expect("seed");
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(host.path().join("big.bin"), &big).expect("seed");
    let mut term = share(&tb, host.path(), &[]);
    // The terminal shows the board's banner and one prompt, as `repl`
    // does, at the start and after a soft reset: nothing of ours (the
    // remount's way into the raw REPL drew three prompts, and its way out
    // hid the banner).
    wait_for(&term, 0, "\r\n>>> ");
    let start = term.text();
    let banner = start
        .split_once("Ctrl-] ends the share.\r\n\r\n")
        .and_then(|(_, b)| b.strip_suffix("\r\n>>> "))
        .unwrap_or_else(|| panic!("no banner and prompt: {start:?}"))
        .to_string();
    assert!(banner.starts_with("MicroPython "), "{start:?}");
    line(&mut term, "import m; print(m.X)", "from the host");
    // A real soft reset forgets the class (this board keeps its globals):
    // the new link defines it from its copy on flash, not sent again.
    line(&mut term, "del _WRFS; n0 = term.fed", ">>> ");
    // Ctrl-D, and a line typed at once: it must run once, after the share
    // is mounted again on the new link (the old class's /remote still
    // answers stat here, and its open fails with NameError: _WRFS).
    std::fs::write(host.path().join("fresh.py"), "Y = 'new module'\n").expect("seed");
    let before = term.text().len();
    term.type_keys(b"\x04import fresh, os; print(fresh.Y, os.getcwd())\r");
    wait_for(&term, before, "new module /remote\n>>> ");
    assert_eq!(
        term.text()[before..],
        format!(
            "\r\nMPY: soft reboot\r\n\r\n{banner}\r\n>>> \
             import fresh, os; print(fresh.Y, os.getcwd())\r\nnew module /remote\n>>> "
        )
    );
    line(&mut term, "print('after', 6 * 7)", "after 42");
    assert_eq!(
        term.text()[before..].matches("new module /remote").count(),
        1,
        "{:?}",
        &term.text()[before..]
    );
    line(&mut term, "import m; print(m.X)", "from the host");
    let before = term.text().len();
    term.type_keys(b"print('remount', 'took', term.fed - n0, 'bytes')\r");
    wait_for(&term, before, " bytes\n");
    let fed: usize = term.text()[before..]
        .split("remount took ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("the ring's count");
    // The class alone is 9 KB; what a new link sends is a few hundred bytes.
    assert!(fed < 2000, "{fed} bytes went to the board for the remount");
    // Ctrl-C in the middle of a long shared read: the board comes back
    // to a prompt and the share still works.
    let before = term.text().len();
    term.type_keys(
        b"f = open('big.bin', 'rb'); b = bytearray(4096); n = 0\r\
          while f.readinto(b):\r n += 1\r if n == 2: print('reading')\r\r",
    );
    wait_for(&term, before, "\nreading");
    term.type_keys(b"\x03");
    wait_for(&term, before, "KeyboardInterrupt");
    line(&mut term, "print('n', n < 245)", "n True");
    line(
        &mut term,
        "import sys; del sys.modules['m']; import m; print(m.X)",
        "from the host",
    );
    assert_clean(&term);
}

/// A remount that fails on the new link (here: the class's copy on flash
/// gone, as a MemoryError would) is tried once more, then told in one
/// line before the banner; the person's line still runs after it (they
/// met a NameError later, untold).
#[test]
fn a_remount_that_fails_after_a_soft_reset_is_told_in_the_terminal() {
    let tb = TestBoard::start();
    let host = tempfile::tempdir().expect("host dir");
    let mut term = share(&tb, host.path(), &[]);
    line(
        &mut term,
        "del _WRFS; import os; os.remove('/.webrepl-mount-share')",
        ">>> ",
    );
    let before = term.text().len();
    term.type_keys(b"\x04print('typed', 6 * 7)\r");
    wait_for(&term, before, "typed 42\n>>> ");
    let text = &term.text()[before..];
    let note = "[webrepl-mount: the share is not mounted again on the new link: OSError: [Errno 2] ENOENT]\r\n";
    assert_eq!(text.matches(note).count(), 1, "{text:?}");
    let (reboot, note_at) = (text.find("soft reboot"), text.find(note));
    assert!(
        reboot < note_at && note_at < text.find("MicroPython"),
        "{text:?}"
    );
    assert_clean(&term);
}

/// A cut link keeps the share: the new link mounts it again before the
/// next line runs, and the terminal shows nothing of that (the way back
/// into the raw REPL drew three prompts).
#[test]
fn a_cut_link_keeps_the_share_and_the_terminal_shows_nothing_of_the_remount() {
    let tb = TestBoard::start();
    let mut link = LinkEmu::start(tb.port, 5.0);
    let host = tempfile::tempdir().expect("host dir");
    std::fs::write(host.path().join("m.py"), "X = 'from the host'\n").expect("seed");
    let log = host.path().join("log");
    // Its log says when the new link is up (stderr: the terminal's own).
    let mut term = share_logged(&tb, host.path(), link.port, &log);
    wait_for(&term, 0, "\r\n>>> ");
    // The board forgets the class, as a real one would not: the new link
    // defines it again.
    line(
        &mut term,
        "import m; print(m.X); del _WRFS",
        "from the host\n>>> ",
    );
    // Everything the terminal shows from the cut on is compared: the
    // remount's prompts come a round trip after the log's line.
    let before = term.text().len();
    link.command("cut");
    eventually(15, "the new link", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("reconnected"))
    });
    std::fs::write(host.path().join("fresh.py"), "Y = 'new module'\n").expect("seed");
    term.type_keys(b"import fresh, os; print(fresh.Y, os.getcwd())\r");
    wait_for(&term, before, "new module /remote\n>>> ");
    assert_eq!(
        term.text()[before..],
        *"import fresh, os; print(fresh.Y, os.getcwd())\r\nnew module /remote\n>>> "
    );
    assert_clean(&term);
}

/// The same without a share, in plain `repl`: a line typed right after
/// Ctrl-D went on the link the soft reset ends, and was lost without a
/// word. It waits for the next link and runs after the banner.
#[test]
fn a_line_typed_right_after_ctrl_d_runs_after_the_soft_reboots_banner() {
    let tb = TestBoard::start();
    let mut c = Command::new(env!("CARGO_BIN_EXE_webrepl-mount"));
    c.args(["--timeout", "5", "repl", &tb.addr()])
        .env("WEBREPL_PASSWORD", &tb.password);
    let mut term = Piped::spawn(c);
    eventually(15, "the repl's greeting", || {
        term.text().contains("Ctrl-] leaves")
    });
    line(&mut term, "x = 1", ">>> ");
    let before = term.text().len();
    term.type_keys(b"\x04print('typed', 6 * 7)\r");
    wait_for(&term, before, "typed 42");
    let text = &term.text()[before..];
    let banner = text.find("MicroPython").expect("the banner");
    assert!(banner < text.find("typed 42").unwrap_or(0), "{text:?}");
    assert_eq!(text.matches("typed 42").count(), 1, "{text:?}");
}

/// The board reads the host's answers straight from the WebREPL stream
/// (taken off dupterm for the read), not through its REPL's input ring,
/// which takes 256 bytes at a time: a 50 KB read puts nothing in the ring,
/// and keys typed meanwhile come out in order after it.
#[test]
fn a_shared_read_bypasses_the_boards_input_ring_and_keys_typed_meanwhile_keep_their_order() {
    let tb = TestBoard::with_ring(Some(256));
    let host = tempfile::tempdir().expect("host dir");
    let big: Vec<u8> = (0..51_200u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(host.path().join("big.bin"), &big).expect("seed");
    let link = LinkEmu::slow(tb.port);
    let mut c = Command::new(env!("CARGO_BIN_EXE_webrepl-mount"));
    c.args(["--timeout", "5", "share"])
        .arg(host.path())
        .arg(format!("127.0.0.1:{}", link.port))
        .env("WEBREPL_PASSWORD", &tb.password);
    let mut term = Piped::spawn(c);
    eventually(15, "the share's greeting", || {
        term.text().contains("Ctrl-] ends the share")
    });
    // `term` is the test board's terminal (scripts/board/listener.py).
    line(
        &mut term,
        "f = open('big.bin', 'rb'); b = bytearray(4096); s = 0; n0 = term.fed",
        ">>> ",
    );
    let before = term.text().len();
    // Typed at once: the board reads while the next lines arrive.
    term.type_keys(b"while f.readinto(b): s += sum(b[:3])\r\r");
    term.type_keys(b"print('ring', term.fed - n0 < 512, s)\r");
    term.type_keys(b"print('then', 6 * 7)\r");
    wait_for(&term, before, "then 42");
    let text = &term.text()[before..];
    let expect: u64 = big
        .chunks(4096)
        .map(|c| c[..3].iter().map(|&b| u64::from(b)).sum::<u64>())
        .sum();
    assert!(
        text.contains(&format!("ring True {expect}")),
        "the board's terminal: {text:?}"
    );
    assert!(text.find("ring True") < text.find("then 42"), "{text:?}");
    assert_clean(&term);
}

/// /remote holds the host's files, not the board's: the mount, `ls` and
/// `tree` leave it out. Here a share whose process was killed left it
/// mounted on the board, with nobody to answer its requests (a listing
/// that looked into it waited 15 s per request).
#[test]
fn the_shares_mountpoint_is_left_out_of_the_boards_listings() {
    let tb = TestBoard::start();
    let host = tempfile::tempdir().expect("host dir");
    std::fs::write(host.path().join("on_host.py"), "X = 1\n").expect("seed");
    std::fs::write(tb.path("/on_board.txt"), "b").expect("seed");
    let mut term = share(&tb, host.path(), &[]);
    line(&mut term, "import on_host; print(on_host.X + 1)", "2");
    line(
        &mut term,
        "import os; os.chdir('/'); print('at', os.getcwd())",
        "at /\n",
    );
    term.child.kill().expect("kill the share");
    let _ = term.child.wait();
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let mp = m.path().display().to_string();
    let names: Vec<_> = std::fs::read_dir(m.path())
        .expect("the mount's root")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(names.iter().any(|n| n == "on_board.txt"), "{names:?}");
    assert!(!names.iter().any(|n| n == "remote"), "{names:?}");
    for cmd in ["ls", "tree"] {
        let o = m.cmd().args([cmd, &mp]).output().expect("webrepl-mount");
        let listed = String::from_utf8_lossy(&o.stdout);
        assert!(listed.contains("on_board.txt"), "{cmd}: {listed}");
        assert!(!listed.contains("remote"), "{cmd}: {listed}");
    }
    assert!(m.unmount().status.success());
}

/// A share killed (`kill -9`) leaves /remote mounted on the board and its
/// current directory there. The tool's next connection shares nothing
/// and answers the board's first request so (ENODEV): the board then
/// takes /remote away and goes back to `/`, its own again.
#[test]
fn after_a_killed_share_the_next_connection_leaves_the_board_its_own() {
    let tb = TestBoard::start();
    let host = tempfile::tempdir().expect("host dir");
    std::fs::write(host.path().join("m.py"), "X = 1\n").expect("seed");
    std::fs::create_dir(tb.path("/lib")).expect("lib");
    std::fs::write(tb.path("/lib/onboard.py"), "Z = 'from flash'\n").expect("seed");
    let mut term = share(&tb, host.path(), &[]);
    line(&mut term, "import m; print(m.X + 1)", "2");
    term.child.kill().expect("kill -9 the share");
    let _ = term.child.wait();
    let exec = |code: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
            .args(["--timeout", "5", "exec", &tb.addr(), code])
            .env("WEBREPL_PASSWORD", &tb.password)
            .output()
            .expect("webrepl-mount exec");
        assert!(
            o.status.success(),
            "{code}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // An import looks in the current directory first: /remote asks, and
    // hears at once that nobody shares (not after the 15 s bound).
    let asked = std::time::Instant::now();
    assert_eq!(exec("import onboard\nprint(onboard.Z)"), "from flash\n");
    let took = asked.elapsed();
    assert!(took.as_secs() < 10, "the import took {took:?}");
    assert_eq!(
        exec(
            "import os\ntry:\n    os.stat('/remote/m.py')\nexcept OSError as e:\n    print(os.getcwd(), e.args[0])"
        ),
        "/ 2\n"
    );
}

/// A share that stops answering (its process stopped, the host asleep)
/// is given up after the bound on one request, not waited for 15 s on
/// every one: /remote goes and the board's directory is `/` again.
#[test]
fn a_share_that_stops_answering_is_given_up_after_one_request() {
    let tb = TestBoard::start();
    let host = tempfile::tempdir().expect("host dir");
    std::fs::write(host.path().join("m.py"), "X = 1\n").expect("seed");
    let mut term = share(&tb, host.path(), &[]);
    line(&mut term, "import m; print(m.X + 1)", "2");
    // Runs on while the host is stopped; says where it ended on flash.
    line(
        &mut term,
        "exec(\"import time, os\\ntime.sleep(0.5)\\ntry:\\n import fresh\\nexcept ImportError:\\n pass\\nf = open('/where.txt', 'w'); f.write(os.getcwd()); f.close()\")",
        // The whole line and its Enter at the board (keys go paced by
        // their echo: its start came back while the rest was on its way).
        "f.close()\")\r\n",
    );
    let pid = term.child.id() as i32;
    // SAFETY: signals the child started above.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    eventually(40, "the board's program past the import", || {
        tb.path("/where.txt").exists()
    });
    let _ = term.child.kill();
    let _ = term.child.wait();
    assert_eq!(
        std::fs::read_to_string(tb.path("/where.txt")).expect("where"),
        "/"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
        .args([
            "--timeout",
            "5",
            "exec",
            &tb.addr(),
            "import os\nprint(os.getcwd(), 6 * 7)",
        ])
        .env("WEBREPL_PASSWORD", &tb.password)
        .output()
        .expect("webrepl-mount exec");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "/ 42\n");
}

/// A shared read the board has no room for: its answer is taken off the
/// stream all the same (left there, the file's bytes reached the REPL as
/// keys, and a 0x04 among them soft-reset the board) and the read fails
/// with ENOMEM; the board answers the next line.
#[test]
fn a_shared_read_without_room_on_the_board_fails_with_enomem_and_leaves_the_repl_clean() {
    let tb = TestBoard::with_ring(Some(256));
    let host = tempfile::tempdir().expect("host dir");
    // Every byte value, Ctrl-D and Ctrl-C among them.
    let big: Vec<u8> = (0..51_200u32).map(|i| (i % 256) as u8).collect();
    std::fs::write(host.path().join("big.bin"), &big).expect("seed");
    let mut term = share(&tb, host.path(), &[]);
    let before = term.text().len();
    line(
        &mut term,
        "exec(\"import gc\\nk = []\\ntry:\\n while True: k.append(bytearray(2048))\\nexcept MemoryError:\\n pass\\ntry:\\n open('big.bin', 'rb')\\n r = 'opened'\\nexcept OSError as e:\\n r = e.args[0]\\nk = None\\ngc.collect()\\nprint('errno', r)\")",
        "\n>>> ",
    );
    let said = term.text()[before..].to_string();
    assert!(said.contains("errno 12"), "{said:?}");
    line(&mut term, "print(1 + 1)", "\n2\n");
    // The share goes on (a piece: all 50 KB at once wants a third of the
    // heap in one block, which a heap just filled and freed may not have).
    line(
        &mut term,
        "print(len(open('big.bin', 'rb').read(4096)))",
        "4096",
    );
    let text = &term.text()[before..];
    assert!(!text.contains("soft reboot"), "{text:?}");
    assert_clean(&term);
}

/// `share DIR MOUNTPOINT`: the mount's daemon serves the share on its own
/// session and the command returns; the board imports from DIR and writes
/// into it while the mount works; `status` says so; `share --stop` takes
/// /remote away and the board's directory is its own again. On a board
/// short of RAM: the class is compiled a piece at a time (whole, beside
/// the mount's helpers, it failed with MemoryError).
#[test]
fn a_mounts_daemon_serves_a_share_until_stopped() {
    let tb = TestBoard::with_heap_kb(SMALL_HEAP_KB);
    let host = tempfile::tempdir().expect("host dir");
    std::fs::write(
        host.path().join("greet.py"),
        "def hi():\n    return 'hi from the host'\n",
    )
    .expect("seed");
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let mp = m.path().display().to_string();
    let wm = |args: &[&str]| {
        let o = m.cmd().args(args).output().expect("webrepl-mount");
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // A person's names in the REPL, which the share must leave alone.
    wm(&["exec", &mp, "import os\nf = 'mine'"]);
    let names = "print(f, 'os' in dir(), '_WRFS' in dir())";
    wm(&["share", host.path().to_str().expect("utf-8"), &mp]);
    assert_eq!(wm(&["exec", &mp, names]), "mine True True\n");
    assert_eq!(
        wm(&[
            "exec",
            &mp,
            "import greet\nprint(greet.hi())\nopen('log.txt', 'w').write('seen')"
        ]),
        "hi from the host\n"
    );
    assert_eq!(
        std::fs::read_to_string(host.path().join("log.txt")).expect("the board's write"),
        "seen"
    );
    assert!(!tb.path("/greet.py").exists() && !tb.path("/log.txt").exists());
    // The mount goes on meanwhile.
    std::fs::write(m.path().join("flash.txt"), "on flash").expect("write through the mount");
    eventually(20, "flash.txt on the board", || {
        std::fs::read_to_string(tb.path("/flash.txt")).is_ok_and(|t| t == "on flash")
    });
    let status = wm(&["status", &mp]);
    let shown = format!(
        "share: {} is the board's /remote",
        host.path().canonicalize().expect("dir").display()
    );
    assert!(status.contains(&shown), "{status}");

    wm(&["share", "--stop", &mp]);
    assert_eq!(
        wm(&[
            "exec",
            &mp,
            "import os\nprint(os.getcwd(), 'remote' in os.listdir('/'))"
        ]),
        "/ False\n"
    );
    // Nothing of the share stays in the REPL's names (nor its 9 KB).
    assert_eq!(wm(&["exec", &mp, names]), "mine True False\n");
    assert!(!wm(&["status", &mp]).contains("share:"));
    assert!(m.unmount().status.success());
}

/// A directory whose listing is far bigger than one answer comes whole,
/// in pages (ilistdir asks for the next as it goes): 400 files with long
/// names were cut to fit one 16 KB answer without a word (or failed with
/// ENOMEM on a small board, the listing asked for in one block).
#[test]
fn a_big_directory_is_listed_whole_in_pages() {
    let tb = TestBoard::start();
    let host = tempfile::tempdir().expect("host dir");
    let many = host.path().join("many");
    std::fs::create_dir(&many).expect("many");
    for i in 0..400 {
        std::fs::write(many.join(format!("{i:03}-{}", "x".repeat(60))), "").expect("seed");
    }
    let mut term = share(&tb, host.path(), &[]);
    // Counted as it comes: 400 names in one list want a block of 4 KB
    // that a heap full of 400 strings may not have (MemoryError).
    line(
        &mut term,
        "import os, gc; gc.collect(); n = 0\rfor e in os.ilistdir('many'): n += 1; z = e[0][:3]\r\rprint('it', n, z)",
        "it 400 399",
    );
    assert_clean(&term);
}

/// A file on /remote is a file as programs use one: iterated by line,
/// readlines, seek and tell, flush; text reads count characters, and a
/// read never splits a UTF-8 character (it raised UnicodeError).
#[test]
fn a_shared_file_reads_by_line_and_character_and_seeks() {
    let tb = TestBoard::with_heap_kb(SMALL_HEAP_KB);
    let host = tempfile::tempdir().expect("host dir");
    std::fs::write(host.path().join("t.txt"), "héllo\nwörld ✓\nend\n").expect("seed");
    let mut term = share(&tb, host.path(), &[]);
    line(
        &mut term,
        "print('|'.join(l.strip() for l in open('t.txt')), len(open('t.txt').readlines()))",
        "héllo|wörld ✓|end 3",
    );
    line(
        &mut term,
        "f = open('t.txt'); print(''.join([f.read(1) for i in range(9)]).replace('\\n', 'N'))",
        "hélloNwör",
    );
    line(
        &mut term,
        "f.seek(0); print('at', f.tell(), f.readline().strip(), f.tell(), f.read(7))",
        "at 0 héllo 7 wörld ✓",
    );
    line(
        &mut term,
        "f.seek(-4, 2); f.flush(); print('end', f.read().strip(), open('t.txt', 'rb').read(2))",
        "end end b'h\\xc3'",
    );
    line(
        &mut term,
        "g = open('w.txt', 'w'); g.write('abcdef'); g.seek(2); g.write('Z'); g.flush(); print('w', g.tell()); g.close()",
        "w 3",
    );
    assert_eq!(
        std::fs::read_to_string(host.path().join("w.txt")).expect("w.txt"),
        "abZdef"
    );
    // A log a program starts by appending, its appends at the end after
    // a seek; a file opened r+ written in place; readline(size).
    line(
        &mut term,
        "a = open('log.txt', 'a'); a.write('one\\n'); a.seek(0); a.write('two\\n'); a.close(); r = open('w.txt', 'r+'); r.write('Q'); r.close(); print('l', open('t.txt').readline(2), open('t.txt', 'rb').readline(2))",
        "l hé b'h\\xc3'",
    );
    assert_eq!(
        std::fs::read_to_string(host.path().join("log.txt")).expect("log.txt"),
        "one\ntwo\n"
    );
    assert_eq!(
        std::fs::read_to_string(host.path().join("w.txt")).expect("w.txt"),
        "QbZdef"
    );
    assert_clean(&term);
}

/// The foreground share is a person's terminal: the tool's log never
/// prints into it with colour codes and timestamps. A person's soft reset
/// says nothing at all; a cut link says so in one plain line.
#[test]
fn a_foreground_share_tells_a_reconnect_in_one_plain_line_and_a_soft_reset_not_at_all() {
    let tb = TestBoard::start();
    let mut link = LinkEmu::start(tb.port, 5.0);
    let host = tempfile::tempdir().expect("host dir");
    let log = host.path().join("log");
    // stderr is the person's terminal too.
    let mut term = share_logged(&tb, host.path(), link.port, &log);
    wait_for(&term, 0, "\r\n>>> ");
    let before = term.text().len();
    term.type_keys(b"\x04");
    wait_for(&term, before, "soft reboot");
    line(&mut term, "print('typed', 6 * 7)", "typed 42\n>>> ");
    line(&mut term, "print('again', 6 * 7)", "again 42\n>>> ");
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(said, "", "after a soft reset");
    link.command("cut");
    eventually(15, "the new link", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("reconnected"))
    });
    line(&mut term, "print('after', 6 * 7)", "after 42\n>>> ");
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(said.lines().count(), 1, "{said:?}");
    assert!(
        said.starts_with("webrepl-mount: ") && !said.contains('\u{1b}') && !said.contains("WARN"),
        "{said:?}"
    );
}

/// A share stopped (SIGSTOP) past the board's 15 s: the board gives up
/// (ENODEV) and, once the share runs again, its answer must not reach the
/// REPL as keys (they showed as `A^H...` and a NameError on the next line).
#[test]
fn a_share_resumed_after_the_board_gave_up_types_nothing_into_the_repl() {
    let tb = TestBoard::start();
    let host = tempfile::tempdir().expect("host dir");
    std::fs::create_dir(host.path().join("sub")).expect("sub");
    let mut term = share(&tb, host.path(), &[]);
    line(
        &mut term,
        "import time, os; print('ready', 6 * 7)",
        "ready 42",
    );
    let before = term.text().len();
    term.type_keys(
        b"exec(\"time.sleep(2)\\ntry:\\n print(os.listdir())\\nexcept Exception as e:\\n print('ERR', e)\")\r",
    );
    // The board has the line (its echo) and sleeps 2 s before it asks.
    wait_for(&term, before, "print('ERR', e)\")");
    let pid = term.child.id().to_string();
    let signal = |s: &str| {
        let st = Command::new("kill").args([s, &pid]).status().expect("kill");
        assert!(st.success());
    };
    signal("-STOP");
    // The stall under test: longer than the board's 15 s.
    std::thread::sleep(std::time::Duration::from_secs(22));
    signal("-CONT");
    // The board's output comes after its request on the link: by the
    // time it shows, the share has met the request, and an answer it sent
    // would be typed ahead of the next line.
    wait_for(&term, before, "ENODEV\n>>> ");
    line(&mut term, "print('next', 6 * 7)", "\n>>> ");
    let text = term.text()[before..].to_string();
    assert!(text.contains("ERR [Errno 19] ENODEV"), "{text:?}");
    assert!(text.contains("next 42"), "{text:?}");
    assert!(
        !text.contains("Error: name") && !text.contains("sub") && !text.contains('\u{8}'),
        "{text:?}"
    );
    assert_clean(&term);
}
