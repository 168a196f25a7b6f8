//! The command line as a user meets it: output, exit codes, one-line errors.

mod common;

use common::{TestBoard, random_bytes};
use std::process::{Command, Output};

fn wm(tb: &TestBoard, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
        .args(args)
        .env("WEBREPL_PASSWORD", &tb.password)
        .output()
        .expect("run webrepl-mount")
}

/// The last line of stderr: the error, after any log lines.
fn last_line(o: &Output) -> String {
    err_line(o).lines().last().unwrap_or("").to_string()
}

fn err_line(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_string()
}

#[test]
fn ls_exec_and_their_errors() {
    let tb = TestBoard::start();
    std::fs::create_dir(tb.path("/lib")).unwrap();
    std::fs::write(tb.path("/main.py"), "print(1)\n").unwrap();
    let o = wm(&tb, &["ls", "-l", &format!("{}:/", tb.addr())]);
    assert!(o.status.success(), "{}", err_line(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "d         0 lib/\n-         9 main.py\n".replace(
            "d         0",
            &format!("d {:>9}", std::fs::metadata(tb.path("/lib")).unwrap().len())
        )
    );
    let o = wm(&tb, &["exec", &tb.addr(), "print('hi', 6*7)"]);
    assert_eq!(o.stdout, b"hi 42\n");
    let o = wm(&tb, &["exec", &tb.addr(), "1/0"]);
    assert_eq!(o.status.code(), Some(11));
    assert!(
        err_line(&o).contains("ZeroDivisionError"),
        "{}",
        err_line(&o)
    );
    // As coreutils' ls: a missing operand is said, exit 1.
    let o = wm(&tb, &["ls", &format!("{}:/nope", tb.addr())]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn cp_of_files_and_trees_both_ways() {
    let tb = TestBoard::start();
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("src");
    std::fs::create_dir_all(src.join("lib/sub")).unwrap();
    std::fs::create_dir_all(src.join("empty")).unwrap();
    std::fs::write(src.join("main.py"), "print('main')\n").unwrap();
    std::fs::write(src.join("lib/sub/big.bin"), random_bytes(70_000, 9)).unwrap();
    let to = format!("{}:/app", tb.addr());
    let o = wm(&tb, &["cp", "-r", src.to_str().unwrap(), &to]);
    assert!(o.status.success(), "{}", err_line(&o));
    assert_eq!(
        std::fs::read(tb.path("/app/main.py")).unwrap(),
        b"print('main')\n"
    );
    assert_eq!(
        std::fs::read(tb.path("/app/lib/sub/big.bin")).unwrap(),
        random_bytes(70_000, 9)
    );
    assert!(tb.path("/app/empty").is_dir());
    let back = local.path().join("back");
    let o = wm(
        &tb,
        &[
            "cp",
            "-r",
            &format!("{}:/app", tb.addr()),
            back.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", err_line(&o));
    assert_eq!(
        std::fs::read(back.join("lib/sub/big.bin")).unwrap(),
        random_bytes(70_000, 9)
    );
    // One file into a directory, and one to a new name.
    let o = wm(
        &tb,
        &[
            "cp",
            src.join("main.py").to_str().unwrap(),
            &format!("{}:/", tb.addr()),
        ],
    );
    assert!(o.status.success(), "{}", err_line(&o));
    assert!(tb.path("/main.py").is_file());
    let one = local.path().join("one.py");
    let o = wm(
        &tb,
        &[
            "cp",
            &format!("{}:/main.py", tb.addr()),
            one.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", err_line(&o));
    assert_eq!(std::fs::read(one).unwrap(), b"print('main')\n");
    let o = wm(
        &tb,
        &[
            "cp",
            &format!("{}:/app", tb.addr()),
            local.path().to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "a directory without -r");
    let o = wm(
        &tb,
        &[
            "cp",
            &format!("{}:/nope.py", tb.addr()),
            local.path().to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(err_line(&o).contains("/nope.py"));
}

#[test]
fn connection_errors_have_their_own_exit_codes_and_one_line() {
    let tb = TestBoard::start();
    let target = format!("{}:/", tb.addr());
    let o = Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
        .args(["ls", &target, "--password", "wrongpw"])
        .env_remove("WEBREPL_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", err_line(&o));
    assert!(err_line(&o).contains("wrong password"));
    assert!(
        !err_line(&o).contains("wrongpw"),
        "the password is never printed"
    );
    assert_eq!(err_line(&o).lines().count(), 1);

    // A password file; and a second client while one holds the board.
    let pw = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pw.path(), format!("{}\n", tb.password)).unwrap();
    let mut holder = common::Reaped(
        Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
            .args([
                "exec",
                &tb.addr(),
                // Held until the test lets go (bounded at 60 s): no race
                // between the program's end and the second client's retries.
                "import os,time\nopen('/held','w').close()\nfor i in range(1200):\n try:\n  os.stat('/release')\n  break\n except OSError:\n  time.sleep(0.05)\n",
                "--password-file",
                pw.path().to_str().unwrap(),
            ])
            .env_remove("WEBREPL_PASSWORD")
            .spawn()
            .unwrap(),
    );
    common::eventually(10, "/held to appear", || tb.path("/held").exists());
    let o = wm(&tb, &["ls", &target]);
    assert_eq!(o.status.code(), Some(4), "{}", err_line(&o));
    assert!(err_line(&o).contains("busy"));
    std::fs::write(tb.path("/release"), "").unwrap();
    assert!(holder.wait().unwrap().success());

    // Something that is not a WebREPL endpoint: a web page.
    let page = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = page.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        if let Ok((mut s, _)) = page.accept() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\n<html>hello</html>");
        }
    });
    let o = wm(&tb, &["ls", &format!("127.0.0.1:{port}:/")]);
    assert_eq!(o.status.code(), Some(5), "{}", err_line(&o));
    assert!(err_line(&o).contains("not a WebREPL endpoint"));

    // Nothing listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = wm(&tb, &["ls", &format!("127.0.0.1:{closed}:/")]);
    assert_eq!(o.status.code(), Some(8), "{}", err_line(&o));
    let o = wm(&tb, &["ls", "https://192.0.2.1/"]);
    assert_eq!(o.status.code(), Some(2), "{}", err_line(&o));
}

#[test]
fn the_password_never_shows_in_logs_or_status() {
    let tb = TestBoard::start();
    let o = Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
        .args(["-vv", "exec", &tb.addr(), "print(1)"])
        .env("WEBREPL_PASSWORD", &tb.password)
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert!(o.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(all.contains("program of"), "trace logs were written: {all}");
    assert!(!all.contains(&tb.password), "the password leaked: {all}");
    let s = wm(&tb, &["status", &tb.addr()]);
    assert!(String::from_utf8_lossy(&s.stdout).contains("MicroPython 1.25.0"));
    assert!(!String::from_utf8_lossy(&s.stdout).contains(&tb.password));
}

#[test]
fn a_password_given_with_p_is_not_in_the_command_line() {
    let tb = TestBoard::start();
    let child = Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
        .args([
            "exec",
            &tb.addr(),
            "open('/started','w').close()\nimport time\ntime.sleep(1.5)\nprint('done')",
            "--password",
            &tb.password,
        ])
        .env_remove("WEBREPL_PASSWORD")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Logged in and running: the password has long been used.
    common::eventually(10, "/started to appear", || tb.path("/started").exists());
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.id())).unwrap();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("exec"),
        "the same process runs"
    );
    assert!(
        !String::from_utf8_lossy(&cmdline).contains(&tb.password),
        "{:?}",
        String::from_utf8_lossy(&cmdline)
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.stdout, b"done\n");
}

#[test]
fn messages_name_the_real_cause_and_the_command_that_fixes_it() {
    let tb = TestBoard::start();
    let mut m = common::Mount::start(&tb, &tb.addr(), &[]);
    let mp = m.path().display().to_string();
    // A board this user has mounted: its file commands go through the
    // mount (the board answers one client).
    std::fs::write(m.path().join("seen.py"), "x = 1\n").unwrap();
    let board = |path: &str| format!("{}:{path}", tb.addr());
    let run = |args: &[&str]| {
        let o = m.cmd().args(args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", err_line(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(run(&["ls", &board("/")]).contains("seen.py"));
    assert_eq!(run(&["cat", &board("/seen.py")]), "x = 1\n");
    assert_eq!(run(&["exec", &tb.addr(), "print(6 * 7)"]), "42\n");
    run(&["cp", &board("/seen.py"), &board("/copy.py")]);
    run(&["rm", &board("/copy.py")]);
    assert!(!m.path().join("copy.py").exists());
    // What cannot go through the mount is refused in words: the board's
    // root for rm. The terminal of the board is the mount's (it was
    // refused, naming `term MOUNTPOINT`).
    let o = m.cmd().args(["rm", "-r", &board("/")]).output().unwrap();
    assert!(!o.status.success());
    assert!(m.path().join("seen.py").exists());
    let o = m.cmd().args(["repl", &tb.addr()]).output().unwrap();
    assert!(o.status.success(), "{}", err_line(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains(&format!("The REPL of the board mounted on {mp}.")),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // A path inside the mount, at any depth, is the mount.
    std::fs::create_dir(m.path().join("sub")).unwrap();
    let o = m
        .cmd()
        .args(["status", "."])
        .current_dir(m.path().join("sub"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err_line(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("cache:"));
    // A directory that is not a mount is never taken for a host name.
    let plain = tempfile::tempdir().unwrap();
    for cmd in ["status", "term"] {
        let o = m.cmd().arg(cmd).arg(plain.path()).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{cmd}: {}", err_line(&o));
        assert_eq!(
            last_line(&o),
            format!(
                "webrepl-mount: {} is not in a mounted board (mount one with: webrepl-mount HOST MOUNTPOINT)",
                plain.path().display()
            )
        );
    }
    assert!(m.unmount().status.success());
    // Options before the command mean what they mean after it.
    let pw = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pw.path(), format!("{}\n", tb.password)).unwrap();
    for args in [
        vec![
            "--password-file",
            pw.path().to_str().unwrap(),
            "exec",
            &tb.addr(),
            "print(5)",
        ],
        vec![
            "exec",
            &tb.addr(),
            "print(5)",
            "--password-file",
            pw.path().to_str().unwrap(),
        ],
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
            .args(&args)
            .env_remove("WEBREPL_PASSWORD")
            .output()
            .unwrap();
        assert_eq!(o.stdout, b"5\n", "{args:?}: {}", err_line(&o));
    }
}

/// No password and no terminal to ask one on: exit 2 with the same words
/// for every command (the file commands took it as an operand's error,
/// exit 1).
#[test]
fn no_password_and_no_terminal_is_exit_2_for_every_command() {
    use std::os::unix::process::CommandExt;
    let tb = TestBoard::start();
    let at = |p: &str| format!("{}:{p}", tb.addr());
    let file = tempfile::NamedTempFile::new().unwrap();
    let local = file.path().to_str().unwrap().to_string();
    for args in [
        vec!["cat".to_string(), at("/x.py")],
        vec!["rm".to_string(), at("/x.py")],
        vec!["touch".to_string(), at("/x.py")],
        vec!["sha256sum".to_string(), at("/x.py")],
        vec!["mkdir".to_string(), at("/d")],
        vec!["ls".to_string(), at("/")],
        vec!["tree".to_string(), at("/")],
        vec!["df".to_string(), tb.addr()],
        vec!["cp".to_string(), local.clone(), at("/x.py")],
        vec!["exec".to_string(), tb.addr(), "print(1)".to_string()],
    ] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_webrepl-mount"));
        c.args(&args)
            .env_remove("WEBREPL_PASSWORD")
            .stdin(std::process::Stdio::null());
        // SAFETY: setsid in the child before exec: no controlling terminal.
        unsafe {
            c.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let o = c.output().unwrap();
        let said = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {said}");
        assert!(
            said.trim()
                .starts_with("webrepl-mount: no password given and cannot prompt (")
                && said.trim().lines().count() == 1,
            "{args:?}: {said}"
        );
    }
}
