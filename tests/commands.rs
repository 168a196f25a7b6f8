//! The command line without surprises (issue 24): one grammar for a board
//! argument, mistyped commands, cp's short options, pipes, and messages
//! that name the real cause; then the file commands.

mod common;

use common::{Mount, TestBoard};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_webrepl-mount"));
    c.stdin(Stdio::null());
    c
}

fn wm(tb: &TestBoard, args: &[&str]) -> Output {
    bin()
        .args(args)
        .env("WEBREPL_PASSWORD", &tb.password)
        .output()
        .expect("run webrepl-mount")
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_string()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[test]
fn host_port_is_a_port_for_every_command() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/main.py"), "x = 1\n").unwrap();
    let o = wm(&tb, &["ls", &tb.addr()]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).lines().any(|l| l == "main.py"), "{}", out(&o));
    let o = wm(&tb, &["ls", "127.0.0.1:99999"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        err(&o),
        "webrepl-mount: 127.0.0.1:99999: 99999 is no port (1-65535); for the board file 99999 \
         write 127.0.0.1:/99999 (or 127.0.0.1:PORT:99999)"
    );
}

#[test]
fn a_mistyped_command_is_no_board_name() {
    let o = bin().args(["umount", "/tmp/x"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert_eq!(
        err(&o),
        "webrepl-mount: unrecognized subcommand 'umount'\n  \
         tip: a similar subcommand exists: 'unmount'\n\
         For more information, try '--help'.\n\
         (a board named so goes in boards.toml)"
    );
}

#[test]
fn exec_of_a_local_file_says_run_and_run_runs_it() {
    let tb = TestBoard::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hello.py");
    std::fs::write(&file, "print('hi', 6*7)\n").unwrap();
    let f = file.to_str().unwrap();
    let o = wm(&tb, &["exec", &tb.addr(), f]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        err(&o),
        format!(
            "webrepl-mount: {f} is a local file, and exec runs CODE: did you mean `webrepl-mount run {f} {}`?",
            tb.addr()
        )
    );
    let o = wm(&tb, &["run", f, &tb.addr()]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "hi 42\n");
}

#[test]
fn dash_p_is_not_the_password() {
    let o = bin().args(["cp", "-rp", "a", "b:/"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).starts_with("error: unexpected argument '-p' found"),
        "{}",
        err(&o)
    );
}

#[test]
fn status_into_a_closed_pipe_ends_quietly_and_sizes_are_human() {
    let tb = TestBoard::start();
    let mut child = bin()
        .args(["status", &tb.addr()])
        .env("WEBREPL_PASSWORD", &tb.password)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(141), "{}", err(&o));
    assert_eq!(err(&o), "");
    let o = wm(&tb, &["status", &tb.addr()]);
    assert!(o.status.success(), "{}", err(&o));
    let flash = out(&o)
        .lines()
        .find(|l| l.starts_with("flash: "))
        .unwrap_or_default()
        .to_string();
    let units = |s: &str| ["B", "KB", "MB", "GB", "TB"].contains(&s);
    let words: Vec<&str> = flash.split(' ').collect();
    assert!(
        words.len() == 7 && units(words[2]) && words[3..5] == ["free", "of"] && units(words[6]),
        "{flash}"
    );
}

#[test]
fn no_colour_codes_into_a_pipe() {
    let tb = TestBoard::start();
    let o = wm(&tb, &["-vv", "ls", &tb.addr()]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("DEBUG"), "{}", err(&o));
    assert!(!err(&o).contains('\x1b'), "{}", err(&o));
}

#[test]
fn a_password_file_others_can_read_is_used_with_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let tb = TestBoard::start();
    let dir = tempfile::tempdir().unwrap();
    let pass = dir.path().join("pass");
    std::fs::write(&pass, format!("{}\n", tb.password)).unwrap();
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let p = pass.to_str().unwrap();
    let o = bin()
        .args(["exec", &tb.addr(), "print(1)", "--password-file", p])
        .env_remove("WEBREPL_PASSWORD")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        err(&o),
        format!(
            "webrepl-mount: warning: the password file {p} can be read by others (mode 644); chmod 600 {p}"
        )
    );
}

#[test]
fn mount_refusals_name_the_real_cause() {
    let tb = TestBoard::start();
    let o = wm(&tb, &[&tb.addr(), "/nonexistent/mnt"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        err(&o),
        "webrepl-mount: /nonexistent/mnt does not exist (make it with: mkdir /nonexistent/mnt)"
    );
    let m = Mount::start(&tb, &tb.addr(), &[]);
    let mp = m.path().display().to_string();
    let o = m.cmd().args([&tb.addr(), &mp]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        err(&o),
        format!(
            "webrepl-mount: {mp} is already a mount point (unmount it first: webrepl-mount unmount {mp})"
        )
    );
    let other = tempfile::tempdir().unwrap();
    let o = m
        .cmd()
        .args([&tb.addr(), other.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(
        err(&o),
        format!(
            "webrepl-mount: {} is busy: your mount at {mp} holds it (a board takes one WebREPL client); \
             use that mount, or unmount it first",
            tb.addr()
        )
    );
}

#[test]
fn status_of_a_named_board_shows_its_address() {
    let tb = TestBoard::start();
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("webrepl-mount");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("boards.toml"),
        format!("[kitchen]\naddress = \"{}\"\n", tb.addr()),
    )
    .unwrap();
    let o = bin()
        .args(["status", "kitchen"])
        .env("WEBREPL_PASSWORD", &tb.password)
        .env("XDG_CONFIG_HOME", home.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        out(&o).lines().next(),
        Some(format!("board: ws://{}/", tb.addr()).as_str())
    );
}
