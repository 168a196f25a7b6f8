//! The command line without surprises (issue 24): one grammar for a board
//! argument, mistyped commands, cp's short options, pipes, and messages
//! that name the real cause; then the file commands.

mod common;

use common::{Mount, TestBoard};
use std::path::Path;
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
         (a board named so goes in boards.toml)\n\
         For more information, try '--help'."
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
            "webrepl-mount: {f} is a local file, and exec runs CODE: did you mean `webrepl-mount run {} {f}`?",
            tb.addr()
        )
    );
    let o = wm(&tb, &["run", &tb.addr(), f]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "hi 42\n");
}

/// `run FILE` (a board or a mountpoint): what the program prints comes as
/// it runs, not when it ends; Ctrl-C at the caller stops it on the board,
/// which answers the next program; a file that raises exits 11 with its
/// traceback.
#[test]
fn run_streams_the_files_output_and_ctrl_c_stops_it_on_the_board() {
    let tb = TestBoard::start();
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    run_is_followed_then_stopped(|| m.cmd(), &m.path().display().to_string());
    assert!(m.unmount().status.success());
    // The board itself, once the mount has let go of its one connection.
    run_is_followed_then_stopped(
        || {
            let mut c = bin();
            c.env("WEBREPL_PASSWORD", &tb.password);
            c
        },
        &tb.addr(),
    );
}

fn run_is_followed_then_stopped(cmd: impl Fn() -> Command, target: &str) {
    let dir = tempfile::tempdir().unwrap();
    let endless = dir.path().join("endless.py");
    std::fs::write(
        &endless,
        "import time\nprint('started')\nwhile True:\n    print('tick')\n    time.sleep(0.05)\n",
    )
    .unwrap();
    let raising = dir.path().join("raising.py");
    std::fs::write(&raising, "print('before')\nraise ValueError('no')\n").unwrap();
    let mut c = cmd();
    c.args(["run", endless.to_str().unwrap(), target]);
    let mut run = common::piped::Piped::spawn(c);
    common::eventually(20, "the program's first lines while it runs", || {
        run.text().starts_with("started\ntick\ntick\n")
    });
    assert!(
        run.child.try_wait().unwrap().is_none(),
        "{target}: run ended"
    );
    // SAFETY: signals the child started above.
    unsafe { libc::kill(run.child.id() as i32, libc::SIGINT) };
    let status = run.child.wait().unwrap();
    // As a Python script interrupted exits.
    assert_eq!(status.code(), Some(130), "{target}: {status:?}");
    drop(run);
    let o = cmd().args(["exec", target, "print(6*7)"]).output().unwrap();
    assert_eq!(out(&o), "42\n", "{target}: {}", err(&o));
    let o = cmd()
        .args(["run", raising.to_str().unwrap(), target])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(11), "{target}: {}", err(&o));
    assert_eq!(out(&o), "before\n", "{target}");
    assert!(err(&o).contains("ValueError: no"), "{target}: {}", err(&o));
}

#[test]
fn dash_p_is_not_the_password() {
    // -p is cp's "preserve": `a`, missing, is said; no password is asked.
    let dir = tempfile::tempdir().unwrap();
    let o = bin()
        .args(["cp", "-rp", "a", "b:/"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        err(&o),
        "webrepl-mount: a: No such file or directory (os error 2)"
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
            "webrepl-mount: ws://{}/ is busy: your mount at {mp} holds it (a board takes one WebREPL client); \
             use that mount, or unmount it first",
            tb.addr()
        )
    );
    // `status MNT | head -1`: the mount's status into a closed pipe.
    let mut child = m
        .cmd()
        .args(["status", &mp])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(141), "{}", err(&o));
    assert_eq!(err(&o), "");
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

/// `mkdir x/` of a file `x` is "File exists", as coreutils says it (not
/// ENOTDIR): with or without the slash, with or without -p, exit 2.
#[test]
fn mkdir_of_a_file_says_file_exists_as_coreutils_does() {
    let tb = TestBoard::start();
    let a = tb.addr();
    std::fs::write(tb.path("/main.py"), "x = 1\n").unwrap();
    for args in [
        vec!["mkdir", "/main.py/"],
        vec!["mkdir", "/main.py"],
        vec!["mkdir", "-p", "/main.py/"],
        vec!["mkdir", "-p", "/main.py"],
    ] {
        let (opts, path) = args.split_at(args.len() - 1);
        let target = format!("{a}:{}", path[0]);
        let o = wm(&tb, &[opts, &[target.as_str()]].concat());
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", err(&o));
        assert_eq!(
            err(&o),
            format!("webrepl-mount: cannot create directory '{target}': File exists"),
            "{args:?}"
        );
    }
    assert_eq!(std::fs::read(tb.path("/main.py")).unwrap(), b"x = 1\n");
    // A file above it, or nothing, as coreutils say it, on a board and
    // in a mount alike; exit 1 as coreutils'.
    std::fs::create_dir(tb.path("/lib")).unwrap();
    let cases = [
        (vec!["mkdir", "-p", "/main.py/x"], "Not a directory"),
        (vec!["mkdir", "/main.py/x"], "Not a directory"),
        (vec!["mkdir", "/nodir/x"], "No such file or directory"),
    ];
    let check = |run: &dyn Fn(&[&str]) -> Output, at: &dyn Fn(&str) -> String| {
        for (args, why) in &cases {
            let (opts, path) = args.split_at(args.len() - 1);
            let target = at(path[0]);
            let o = run(&[opts, &[target.as_str()]].concat());
            assert_eq!(o.status.code(), Some(1), "{args:?}: {}", err(&o));
            assert_eq!(
                err(&o),
                format!("webrepl-mount: cannot create directory '{target}': {why}"),
                "{args:?}"
            );
        }
        // `cat` of a directory: the same words and code.
        let o = run(&["cat", &at("/lib"), &at("/main.py")]);
        assert_eq!(o.status.code(), Some(1), "{}", err(&o));
        assert_eq!(
            err(&o),
            format!("webrepl-mount: {} is a directory", at("/lib"))
        );
        assert_eq!(out(&o), "x = 1\n");
    };
    check(&|args| wm(&tb, args), &|p| format!("{a}:{p}"));
    let m = Mount::start(&tb, &a, &[]);
    check(&|args| m.cmd().args(args).output().unwrap(), &|p| {
        m.path().join(&p[1..]).display().to_string()
    });
}

#[test]
fn file_commands_on_a_board() {
    let tb = TestBoard::start();
    let a = tb.addr();
    let at = |p: &str| format!("{a}:{p}");
    std::fs::write(tb.path("/main.py"), "print('main')\n").unwrap();
    let o = wm(&tb, &["mkdir", "-p", &at("/lib/sub")]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(tb.path("/lib/sub").is_dir());
    let o = wm(&tb, &["mkdir", &at("/lib")]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        err(&o),
        format!("webrepl-mount: cannot create directory '{a}:/lib': File exists")
    );
    let o = wm(&tb, &["touch", &at("/lib/sub/empty.py")]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(std::fs::read(tb.path("/lib/sub/empty.py")).unwrap(), b"");
    let o = wm(&tb, &["cat", &at("/main.py")]);
    assert_eq!(out(&o), "print('main')\n");
    let o = wm(&tb, &["cat", &at("/nope.py")]);
    assert_eq!(o.status.code(), Some(1));
    let o = wm(&tb, &["sha256sum", &at("/main.py")]);
    assert_eq!(
        out(&o),
        format!("{}  {a}:/main.py\n", sha256_of(b"print('main')\n"))
    );
    let o = wm(&tb, &["mv", &at("/main.py"), &at("/lib")]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(tb.path("/lib/main.py").is_file() && !tb.path("/main.py").exists());
    let o = wm(&tb, &["tree", &a]);
    assert_eq!(
        out(&o),
        "/\n    lib/\n        main.py\n        sub/\n            empty.py\n"
    );
    let o = wm(&tb, &["rm", &at("/lib")]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        err(&o),
        format!(
            "webrepl-mount: {a}:/lib is a directory (rm -r removes it with what it holds; rmdir an empty one)"
        )
    );
    let o = wm(&tb, &["rm", &at("/lib/sub/empty.py")]);
    assert!(o.status.success(), "{}", err(&o));
    let o = wm(&tb, &["rmdir", &at("/lib/sub")]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(!tb.path("/lib/sub").exists());
    let o = wm(&tb, &["rm", "-r", &at("/lib")]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(!tb.path("/lib").exists());
    let o = wm(&tb, &["rm", &at("/lib")]);
    assert_eq!(o.status.code(), Some(1));
    let o = wm(&tb, &["rm", "-f", &at("/lib")]);
    assert!(o.status.success(), "{}", err(&o));
    // A quoted pattern is matched on the board.
    for f in ["/a.py", "/b.py", "/c.txt"] {
        std::fs::write(tb.path(f), f).unwrap();
    }
    let o = wm(&tb, &["cat", &at("/*.py")]);
    assert_eq!(out(&o), "/a.py/b.py");
    let o = wm(&tb, &["rm", &at("/*.py")]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(!tb.path("/a.py").exists() && !tb.path("/b.py").exists());
    assert!(tb.path("/c.txt").exists());
    let o = wm(&tb, &["rm", &at("/*.py")]);
    assert_eq!(o.status.code(), Some(1));
    // -f: no match is as no file, silent (coreutils' rm -f).
    let o = wm(&tb, &["rm", "-f", &at("/*.py")]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(err(&o), "");
    let o = wm(&tb, &["df", &a]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).starts_with(&format!("{a}: ")) && out(&o).contains(" free of "),
        "{}",
        out(&o)
    );
}

fn sha256_of(data: &[u8]) -> String {
    let o = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(data)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split(' ')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn file_commands_on_a_path_in_a_mount() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/main.py"), "print('main')\n").unwrap();
    let m = Mount::start(&tb, &tb.addr(), &[]);
    let at = |p: &str| m.path().join(p).display().to_string();
    let run = |args: &[&str]| m.cmd().args(args).output().unwrap();
    let o = run(&["mkdir", "-p", &at("lib/sub")]);
    assert!(o.status.success(), "{}", err(&o));
    let o = run(&["touch", &at("lib/sub/a.py")]);
    assert!(o.status.success(), "{}", err(&o));
    let o = run(&["mv", &at("main.py"), &at("lib")]);
    assert!(o.status.success(), "{}", err(&o));
    let o = run(&["cat", &at("lib/main.py")]);
    assert_eq!(out(&o), "print('main')\n");
    let o = run(&["sha256sum", &at("lib/main.py")]);
    assert_eq!(
        out(&o),
        format!("{}  {}\n", sha256_of(b"print('main')\n"), at("lib/main.py"))
    );
    let o = run(&["df", &m.path().display().to_string()]);
    assert!(out(&o).contains(" free of "), "{} {}", out(&o), err(&o));
    let o = run(&["rm", "-r", &at("lib/sub")]);
    assert!(o.status.success(), "{}", err(&o));
    let o = run(&["rmdir", &at("lib")]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    // Through the mount: on the board once the mount has sent it.
    common::eventually(10, "the board has the moved file", || {
        tb.path("/lib/main.py").is_file() && !tb.path("/lib/sub").exists()
    });
    let o = run(&["rm", "/tmp/not-in-a-mount-xyz"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        err(&o),
        "webrepl-mount: /tmp/not-in-a-mount-xyz is not in a mounted board (mount one with: webrepl-mount HOST MOUNTPOINT)"
    );
}

/// A config home naming two boards, kitchen and garden.
fn two_named_boards() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("webrepl-mount");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("boards.toml"),
        "[kitchen]\naddress = \"10.0.0.9\"\n[garden]\naddress = \"10.0.0.8\"\n",
    )
    .unwrap();
    home
}

#[test]
fn bash_completes_named_boards_and_mountpoints() {
    let tb = TestBoard::start();
    let home = two_named_boards();
    let script = home.path().join("webrepl-mount.bash");
    let o = bin().args(["completions", "bash"]).output().unwrap();
    std::fs::write(&script, &o.stdout).unwrap();
    let m = Mount::start(&tb, &tb.addr(), &[]);
    let complete = |word: &str| {
        let o = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}; COMP_WORDS=(webrepl-mount status {word}); COMP_CWORD=2; \
                 _webrepl_mount_with_names webrepl-mount {word} status; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                script.display()
            ))
            .env("XDG_CONFIG_HOME", home.path())
            .output()
            .unwrap();
        out(&o)
    };
    assert_eq!(complete("ki"), "kitchen:\n");
    let mp = m.path().display().to_string();
    assert!(
        complete(&mp[..mp.len() - 2]).lines().any(|l| l == mp),
        "{}",
        complete(&mp[..mp.len() - 2])
    );
}

/// The line an interactive bash (on a pseudo-terminal, driven by zsh's
/// zpty) holds after `webrepl-mount WORDS<Tab>`, written to a file by
/// editing it into an `echo` (Ctrl-A, Ctrl-E): a space after the
/// completion shows.
fn bash_typed(script: &Path, home: &Path, words: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let got = dir.path().join("line");
    let driver = format!(
        r#"zmodload zsh/zpty
zpty b 'PS1="> " TERM=dumb bash --norc --noprofile -i'
zpty -w b 'source {script}; echo READY$((1+1))'; zpty -r b chunk '*READY2*'
zpty -w -n b $'webrepl-mount {words}	echo "[]" > {got}; echo DONE$((2+1))
'; zpty -r b chunk '*DONE3*'
zpty -d b
"#,
        script = script.display(),
        got = got.display(),
    );
    let o = Command::new("timeout")
        .args(["60", "zsh", "-f", "-c", &driver])
        .env("XDG_CONFIG_HOME", home)
        .output()
        .expect("zsh is not installed: scripts/deps.sh installs it");
    assert!(o.status.success(), "{}", err(&o));
    std::fs::read_to_string(got).unwrap_or_default()
}

/// In a real bash: a subcommand's options complete (clap_complete's
/// script named a dashed binary's subcommands two ways, and none did),
/// and a named board completes as `NAME:` with no space, as scp's host.
#[test]
fn bash_completes_options_and_board_names_with_a_colon() {
    let home = two_named_boards();
    let script = home.path().join("webrepl-mount.bash");
    let o = bin().args(["completions", "bash"]).output().unwrap();
    std::fs::write(&script, &o.stdout).unwrap();
    let typed = |words: &str| bash_typed(&script, home.path(), words);
    assert_eq!(typed("cp --rec"), "[webrepl-mount cp --recursive ]\n");
    assert_eq!(
        typed("mip install --ind"),
        "[webrepl-mount mip install --index ]\n"
    );
    assert_eq!(typed("status ki"), "[webrepl-mount status kitchen:]\n");
    assert_eq!(typed("ls gar"), "[webrepl-mount ls garden:]\n");
}

/// zsh, for real: an interactive zsh on a pseudo-terminal (zpty) is sent
/// `webrepl-mount WORDS<Tab>`; what the completion system offered is what
/// its `compadd` calls took.
fn zsh_offers(script: &str, home: &Path, words: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("_webrepl-mount"), script).unwrap();
    let got = dir.path().join("offered");
    // Each step waits for the shell's answer (`READYn`, which the typed
    // line `READY$((n))` does not contain); Tab, still the completion
    // widget, says `MARK6` once it has completed.
    let driver = format!(
        r#"zmodload zsh/zpty
zpty z 'PS1="> " TERM=dumb zsh -f -i'
zpty -w z 'print READY$((1+1))'; zpty -r z chunk '*READY2*'
zpty -w z 'fpath=({dir} $fpath); autoload -U compinit; compinit -u -D; print READY$((2+1))'; zpty -r z chunk '*READY3*'
zpty -w z 'compadd() {{ local -a o; builtin compadd -O o "$@"; print -rl -- $o >> {got}; builtin compadd "$@" }}; print READY$((3+1))'; zpty -r z chunk '*READY4*'
zpty -w z 'tab-mark() {{ zle expand-or-complete; print -n MARK$((6)) }}; zle -N tab-mark; bindkey "^I" tab-mark; print READY$((4+1))'; zpty -r z chunk '*READY5*'
zpty -w -n z $'webrepl-mount {words}\t'; zpty -r z chunk '*MARK6*'
zpty -d z
"#,
        dir = dir.path().display(),
        got = got.display(),
    );
    let o = Command::new("timeout")
        .args(["60", "zsh", "-f", "-c", &driver])
        .env("XDG_CONFIG_HOME", home)
        .output()
        .expect("zsh is not installed: scripts/deps.sh installs it");
    assert!(o.status.success(), "{}", err(&o));
    // A compadd that took nothing prints an empty line.
    std::fs::read_to_string(got)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect()
}

/// fish, for real: `complete -C` prints what fish offers for a line.
fn fish_offers(script: &Path, home: &Path, words: &str) -> String {
    let o = Command::new("fish")
        .args([
            "--no-config",
            "-c",
            &format!(
                "source {}; complete -C 'webrepl-mount {words}'",
                script.display()
            ),
        ])
        .env("XDG_CONFIG_HOME", home)
        .output()
        .expect("fish is not installed: scripts/deps.sh installs it");
    assert!(o.status.success(), "{}", err(&o));
    // A candidate, then a tab and its description.
    out(&o)
        .lines()
        .map(|l| l.split('\t').next().unwrap_or(l).to_string() + "\n")
        .collect()
}

#[test]
fn zsh_and_fish_complete_named_boards_and_mountpoints() {
    let tb = TestBoard::start();
    let home = two_named_boards();
    let m = Mount::start(&tb, &tb.addr(), &[]);
    let mp = m.path().display().to_string();
    let zsh = out(&bin().args(["completions", "zsh"]).output().unwrap());
    assert_eq!(zsh_offers(&zsh, home.path(), "status ki"), "kitchen:\n");
    let offered = zsh_offers(&zsh, home.path(), &format!("term {}", &mp[..mp.len() - 2]));
    assert!(offered.lines().any(|l| l == mp), "{offered}");
    // clap's own completions are still there.
    let offered = zsh_offers(&zsh, home.path(), "status --tim");
    assert!(
        offered.lines().any(|l| l.starts_with("--timeout")),
        "{offered}"
    );
    let fish = home.path().join("webrepl-mount.fish");
    std::fs::write(
        &fish,
        bin().args(["completions", "fish"]).output().unwrap().stdout,
    )
    .unwrap();
    assert_eq!(fish_offers(&fish, home.path(), "status ki"), "kitchen:\n");
    let offered = fish_offers(&fish, home.path(), &format!("term {}", &mp[..mp.len() - 2]));
    assert!(offered.lines().any(|l| l == mp), "{offered}");
    let offered = fish_offers(&fish, home.path(), "sta");
    assert!(offered.lines().any(|l| l == "status"), "{offered}");
}

#[test]
fn right_after_kill_9_status_and_unmount_see_the_dead_mount_with_or_without_a_slash() {
    let tb = TestBoard::start();
    for slash in ["", "/"] {
        let mut m = Mount::start(&tb, &tb.addr(), &[]);
        let mp = format!("{}{slash}", m.path().display());
        // SAFETY: a plain kill of the daemon this test started.
        unsafe { libc::kill(m.pid() as i32, libc::SIGKILL) };
        m.wait();
        let o = m.cmd().args(["status", &mp]).output().unwrap();
        assert!(
            !err(&o).contains("is not a mounted board"),
            "{slash:?}: {}",
            err(&o)
        );
        let o = m.cmd().args(["unmount", &mp]).output().unwrap();
        assert!(o.status.success(), "{slash:?}: {}", err(&o));
        assert!(!common::mounted(m.path()));
    }
}

#[test]
fn a_dead_mount_of_the_same_address_holds_nothing_and_a_new_mount_goes_ahead() {
    let tb = TestBoard::start();
    let mut dead = Mount::start(&tb, &tb.addr(), &[]);
    // SAFETY: a plain kill of the daemon this test started.
    unsafe { libc::kill(dead.pid() as i32, libc::SIGKILL) };
    dead.wait();
    // The dead mount is still listed in /proc/mounts, its socket still in
    // this user's runtime directory: neither holds the board.
    let other = tempfile::tempdir().unwrap();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = common::Reaped(
        dead.cmd()
            .args([&tb.addr(), other.path().to_str().unwrap()])
            .stdin(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap(),
    );
    common::eventually(20, "the second mount", || {
        if let Ok(Some(s)) = child.0.try_wait() {
            panic!(
                "the mount exited with {s}: {}",
                std::fs::read_to_string(log.path()).unwrap_or_default()
            );
        }
        common::mounted(other.path()) && std::fs::metadata(other.path()).is_ok()
    });
    let _gone = common::Unmounted(other.path().to_path_buf());
    let o = dead
        .cmd()
        .args(["unmount", other.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert!(child.0.wait().unwrap().success());
}

#[test]
fn status_and_unmount_from_another_runtime_dir_find_the_live_mount() {
    let tb = TestBoard::start();
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    std::fs::write(m.path().join("kept.py"), b"print(2)\n").unwrap();
    // Another login of the same user: the same home, another runtime dir.
    let elsewhere = tempfile::tempdir().unwrap();
    let other = || {
        let mut c = m.cmd();
        c.env("XDG_RUNTIME_DIR", elsewhere.path());
        c
    };
    // And there, the socket of a daemon killed earlier: it must not hide
    // the live one.
    use std::os::unix::fs::PermissionsExt;
    let live = std::fs::read_dir(m.runtime.path().join("webrepl-mount"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .find(|n| n.to_string_lossy().ends_with(".sock"))
        .expect("the daemon's socket");
    let stale = elsewhere.path().join("webrepl-mount");
    std::fs::create_dir(&stale).unwrap();
    std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o700)).unwrap();
    drop(std::os::unix::net::UnixListener::bind(stale.join(&live)).unwrap());
    let o = other()
        .args(["status", m.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains(&tb.addr()), "{}", out(&o));
    let o = other()
        .args(["unmount", m.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert!(!err(&o).contains("dead mount"), "{}", err(&o));
    // The daemon itself ended, after flushing: not a live mount cut off.
    let status = m.wait();
    assert!(status.success(), "the daemon exited with {status}");
    assert!(!common::mounted(m.path()));
    assert_eq!(std::fs::read(tb.path("/kept.py")).unwrap(), b"print(2)\n");
}

#[test]
fn rm_r_refuses_the_boards_root_and_a_pattern_spares_our_files() {
    let tb = TestBoard::start();
    let a = tb.addr();
    std::fs::write(tb.path("/main.py"), "x = 1\n").unwrap();
    std::fs::write(tb.path("/.webrepl-mount-id"), "ab12\n").unwrap();
    std::fs::create_dir_all(tb.path("/lib")).unwrap();
    for arg in [format!("{a}:"), format!("{a}:/"), a.clone()] {
        let o = wm(&tb, &["rm", "-r", &arg]);
        assert_eq!(o.status.code(), Some(1), "{arg}");
        assert_eq!(
            err(&o),
            format!(
                "webrepl-mount: {arg}: refusing to remove the board's root '/' (to empty it: rm -r 'BOARD:/*')"
            )
        );
    }
    assert!(tb.path("/main.py").is_file() && tb.path("/lib").is_dir());
    // `NAME/`, a board boards.toml names, is that board's root too.
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("webrepl-mount")).unwrap();
    std::fs::write(
        home.path().join("webrepl-mount/boards.toml"),
        format!("[kit]\naddress = \"{a}\"\n"),
    )
    .unwrap();
    let o = bin()
        .args(["rm", "-r", "kit/"])
        .env("WEBREPL_PASSWORD", &tb.password)
        .env("XDG_CONFIG_HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        err(&o),
        "webrepl-mount: kit/: refusing to remove the board's root '/' (to empty it: rm -r 'BOARD:/*')"
    );
    {
        let m = Mount::start(&tb, &a, &[]);
        let mp = m.path().display().to_string();
        let o = m.cmd().args(["rm", "-r", &mp]).output().unwrap();
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(
            err(&o),
            format!(
                "webrepl-mount: {mp}: refusing to remove the board's root '/' (to empty it: rm -r 'BOARD:/*')"
            )
        );
        assert!(m.path().join("main.py").is_file());
    }
    assert!(tb.path("/main.py").is_file());
    let o = wm(&tb, &["rm", "-r", &format!("{a}:/*")]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(!tb.path("/main.py").exists() && !tb.path("/lib").exists());
    assert_eq!(
        std::fs::read_to_string(tb.path("/.webrepl-mount-id")).unwrap(),
        "ab12\n"
    );
}

/// `wm` for the board named `kb` in a boards.toml of its own.
fn wm_named(tb: &TestBoard, home: &tempfile::TempDir, args: &[&str]) -> Output {
    let dir = home.path().join("webrepl-mount");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("boards.toml"),
        format!("[kb]\naddress = \"{}\"\n", tb.addr()),
    )
    .unwrap();
    bin()
        .args(args)
        .env("WEBREPL_PASSWORD", &tb.password)
        .env("XDG_CONFIG_HOME", home.path())
        .output()
        .expect("run webrepl-mount")
}

#[test]
fn a_trailing_slash_or_colon_never_changes_the_meaning() {
    let tb = TestBoard::start();
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| wm_named(&tb, &home, args);
    std::fs::write(tb.path("/main.py"), "x = 1\n").unwrap();
    std::fs::create_dir_all(tb.path("/lib")).unwrap();
    // NAME/ and NAME: are the board, for every command.
    for board in ["kb/", "kb:"] {
        let o = run(&["df", board]);
        assert!(o.status.success(), "{board}: {}", err(&o));
        let o = run(&["exec", board, "print(6*7)"]);
        assert!(o.status.success(), "{board}: {}", err(&o));
        assert_eq!(out(&o), "42\n");
        let o = run(&["ls", board]);
        assert!(
            out(&o).lines().any(|l| l == "main.py"),
            "{board}: {}",
            err(&o)
        );
    }
    let o = run(&["ls", &format!("{}/", tb.addr())]);
    assert!(out(&o).lines().any(|l| l == "main.py"), "{}", err(&o));
    // PATH/ is a directory: never a file made, renamed to, or removed.
    let o = run(&["touch", "kb:/newdir/"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        err(&o),
        "webrepl-mount: no such file or directory on the board: kb:/newdir/"
    );
    assert!(!tb.path("/newdir").exists());
    let o = run(&["mv", "kb:/main.py", "kb:/nodir/"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        err(&o),
        "webrepl-mount: kb:/nodir/: not a directory (ENOTDIR)"
    );
    assert!(tb.path("/main.py").is_file() && !tb.path("/nodir").exists());
    for cmd in ["rm", "cat", "sha256sum"] {
        let o = run(&[cmd, "kb:/main.py/"]);
        assert_eq!(o.status.code(), Some(1), "{cmd}");
        assert_eq!(
            err(&o),
            "webrepl-mount: kb:/main.py/: not a directory (ENOTDIR)"
        );
        assert_eq!(out(&o), "");
    }
    assert!(tb.path("/main.py").is_file());
    let o = run(&["mv", "kb:/main.py", "kb:/lib/"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(tb.path("/lib/main.py").is_file());
    let o = run(&["rm", "-r", "kb:/lib/"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(!tb.path("/lib").exists());
}

#[test]
fn several_operands_each_error_said_and_the_rest_done() {
    let tb = TestBoard::start();
    let a = tb.addr();
    let at = |p: &str| format!("{a}:{p}");
    for f in ["/a.py", "/b.py", "/main.py"] {
        std::fs::write(tb.path(f), format!("{f}\n")).unwrap();
    }
    std::fs::create_dir_all(tb.path("/lib")).unwrap();
    let o = wm(&tb, &["rm", &at("/a.py"), &at("/nosuch"), &at("/b.py")]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        err(&o),
        "webrepl-mount: no such file or directory on the board: /nosuch"
    );
    assert!(!tb.path("/a.py").exists() && !tb.path("/b.py").exists());
    // Exit 1 as coreutils, every failure said, in order.
    let o = wm(&tb, &["cat", &at("/lib"), &at("/nosuch"), &at("/main.py")]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        err(&o),
        format!(
            "webrepl-mount: {a}:/lib is a directory\n\
             webrepl-mount: no such file or directory on the board: /nosuch"
        )
    );
    assert_eq!(out(&o), "/main.py\n");
}

#[test]
fn exec_of_a_path_that_is_no_file_says_run_and_code_still_runs() {
    let tb = TestBoard::start();
    let a = tb.addr();
    for path in ["/nonexistent/file.py", "lib/blink.mpy", "main.py", "~/x/y"] {
        let o = wm(&tb, &["exec", &a, path]);
        assert_eq!(o.status.code(), Some(2), "{path}: {}", err(&o));
        assert_eq!(
            err(&o),
            format!(
                "webrepl-mount: {path} looks like a file's path, and exec runs CODE: did you mean \
                 `webrepl-mount run {a} {path}`?"
            )
        );
    }
    let o = wm(&tb, &["exec", &a, "print(1/2)"]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "0.5\n");
}

#[test]
fn ls_tree_and_relative_names_in_a_mount() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/main.py"), "x = 1\n").unwrap();
    std::fs::create_dir_all(tb.path("/lib/sub")).unwrap();
    std::fs::write(tb.path("/lib/a.py"), "a = 1\n").unwrap();
    std::fs::write(tb.path("/lib/sub/b.py"), "b\n").unwrap();
    let m = Mount::start(&tb, &tb.addr(), &[]);
    let mp = m.path().display().to_string();
    let run = |args: &[&str]| m.cmd().args(args).output().unwrap();
    let o = run(&["ls", &mp]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "lib/\nmain.py\n");
    let o = run(&["ls", "-l", &format!("{mp}/lib")]);
    assert_eq!(
        out(&o),
        "-         6 a.py\nd         0 sub/\n",
        "{}",
        err(&o)
    );
    let o = run(&["tree", &format!("{mp}/lib")]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        out(&o),
        format!("{mp}/lib\n    a.py\n    sub/\n        b.py\n")
    );
    // Relative names, from inside the mount.
    let here = |args: &[&str]| m.cmd().args(args).current_dir(m.path()).output().unwrap();
    let o = here(&["cat", "nosuch", "main.py"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        err(&o),
        "webrepl-mount: no such file or directory on the board: nosuch"
    );
    assert_eq!(out(&o), "x = 1\n");
    let o = here(&["mkdir", "lib"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        err(&o),
        "webrepl-mount: cannot create directory 'lib': File exists"
    );
    let o = here(&["rmdir", "lib"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        err(&o),
        "webrepl-mount: lib: directory not empty (ENOTEMPTY)"
    );
    let o = here(&["touch", "new.py"]);
    assert!(o.status.success(), "{}", err(&o));
    common::eventually(10, "the board has the new file", || {
        tb.path("/new.py").is_file()
    });
    // Relative names that do not exist yet, from above the mount (two
    // levels: the mountpoint's own name starts with a dot).
    let (parent, mountpoint) = (m.path().parent().unwrap(), m.path().file_name().unwrap());
    let name = format!(
        "{}/{}",
        parent.file_name().unwrap().to_str().unwrap(),
        mountpoint.to_str().unwrap()
    );
    let above = |args: &[&str]| {
        let top = parent.parent().unwrap();
        m.cmd().args(args).current_dir(top).output().unwrap()
    };
    let o = above(&["mkdir", "-p", &format!("{name}/x/y")]);
    assert!(o.status.success(), "{}", err(&o));
    let o = above(&["touch", &format!("{name}/x/y/z.py")]);
    assert!(o.status.success(), "{}", err(&o));
    common::eventually(10, "the board has the new tree", || {
        tb.path("/x/y/z.py").is_file()
    });
    let o = above(&["rm", &format!("{name}/nosuch")]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
}

#[test]
fn a_mistyped_command_before_a_board_path_is_no_mount() {
    for (typed, near) in [("rn", Some("rm")), ("cta", Some("cat")), ("frob", None)] {
        let o = bin().args([typed, "kb:/main.py"]).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{typed}: {}", err(&o));
        let tip = near
            .map(|n| format!("  tip: a similar subcommand exists: '{n}'\n"))
            .unwrap_or_default();
        assert_eq!(
            err(&o),
            format!(
                "webrepl-mount: unrecognized subcommand '{typed}'\n{tip}\
                 (a board named so goes in boards.toml)\n\
                 For more information, try '--help'."
            )
        );
    }
}

#[test]
fn status_of_a_board_this_user_has_mounted_is_the_mounts_status() {
    let tb = TestBoard::start();
    let m = Mount::start(&tb, &tb.addr(), &[]);
    let o = m.cmd().args(["status", &tb.addr()]).output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let text = out(&o);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(format!("mounted at {}", m.path().display()).as_str()),
        "{text}"
    );
    assert!(lines.any(|l| l.contains(", link up")), "{text}");
}

#[test]
fn ls_r_is_ls_capital_r_df_names_the_board_once_and_rmdir_spares_the_root() {
    let tb = TestBoard::start();
    std::fs::create_dir_all(tb.path("/lib/sub")).unwrap();
    std::fs::write(tb.path("/lib/sub/a.py"), "a = 1\n").unwrap();
    let a = tb.addr();
    let small = wm(&tb, &["ls", "-r", &format!("{a}:/lib")]);
    let big = wm(&tb, &["ls", "-R", &format!("{a}:/lib")]);
    assert!(small.status.success(), "{}", err(&small));
    assert_eq!(out(&small), out(&big));
    assert!(out(&small).contains("a.py"), "{}", out(&small));
    let o = wm(&tb, &["df", &format!("{a}:")]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).starts_with(&format!("{a}: ")), "{}", out(&o));
    let o = wm(&tb, &["rmdir", &format!("{a}:/")]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert_eq!(
        err(&o).trim_end(),
        format!("webrepl-mount: {a}:/: the board's root '/' cannot be removed")
    );
}

#[test]
fn quoted_patterns_move_several_files_and_brackets_match() {
    let tb = TestBoard::start();
    let at = |p: &str| format!("{}:{p}", tb.addr());
    std::fs::create_dir_all(tb.path("/lib")).unwrap();
    std::fs::create_dir_all(tb.path("/old")).unwrap();
    for f in ["f1.py", "f2.py", "g.py"] {
        std::fs::write(tb.path(&format!("/lib/{f}")), f).unwrap();
    }
    // Several sources need a directory to go into.
    let o = wm(&tb, &["mv", &at("/lib/f*.py"), &at("/lib/new.py")]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(tb.path("/lib/f1.py").exists() && !tb.path("/lib/new.py").exists());
    let o = wm(&tb, &["mv", &at("/lib/f*.py"), &at("/old")]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(std::fs::read(tb.path("/old/f1.py")).unwrap(), b"f1.py");
    assert_eq!(std::fs::read(tb.path("/old/f2.py")).unwrap(), b"f2.py");
    assert!(tb.path("/lib/g.py").exists());
    let o = wm(&tb, &["rm", &at("/old/[!f]*"), &at("/lib/[fg]*")]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("(no match)"), "{}", err(&o));
    assert!(!tb.path("/lib/g.py").exists());
    assert!(tb.path("/old/f1.py").exists());
}

#[test]
fn sha256sum_of_a_pattern_prints_the_boards_names_escaped() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/g\x1b]0;pwned\x07\nFAKE LINE.py"), "q").unwrap();
    let o = wm(&tb, &["sha256sum", &format!("{}:/g*", tb.addr())]);
    assert!(o.status.success(), "{}", err(&o));
    let text = out(&o);
    assert_eq!(text.lines().count(), 1, "{text:?}");
    assert!(!text.contains(['\x1b', '\x07']), "{text:?}");
    assert!(text.contains("\\n"), "{text:?}");
    // An error naming a board's directory is one line too.
    std::fs::create_dir(tb.path("/gdir\x1b]0;pwned\x07\nwebrepl-mount: forged")).unwrap();
    let o = wm(&tb, &["sha256sum", &format!("{}:/gd*", tb.addr())]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert_eq!(err(&o).trim_end().lines().count(), 1, "{:?}", err(&o));
    assert!(!err(&o).contains(['\x1b', '\x07']), "{:?}", err(&o));
}

/// Quoted patterns in `cp`'s sources: on the board for a board path, here
/// for local ones (a leading dot only by a dot, brackets as the shell's);
/// several sources go into a directory only, and no match is an error.
#[test]
fn quoted_patterns_in_cp_sources_match_on_the_board_and_here() {
    let tb = TestBoard::start();
    let a = tb.addr();
    std::fs::create_dir_all(tb.path("/lib")).unwrap();
    for f in ["a.py", "b.py", "c.txt", ".h.py"] {
        std::fs::write(tb.path(&format!("/lib/{f}")), f).unwrap();
    }
    let here = tempfile::tempdir().unwrap();
    let dir = here.path().display().to_string();
    let o = wm(&tb, &["cp", &format!("{a}:/lib/*.py"), &format!("{dir}/")]);
    assert!(o.status.success(), "{}", err(&o));
    let mut got: Vec<_> = std::fs::read_dir(here.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, ["a.py", "b.py"]);
    assert_eq!(std::fs::read(here.path().join("b.py")).unwrap(), b"b.py");
    let o = wm(
        &tb,
        &["cp", &format!("{a}:/lib/*.py"), &format!("{dir}/no")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert_eq!(
        err(&o),
        format!("webrepl-mount: target '{dir}/no': No such file or directory")
    );
    let o = wm(
        &tb,
        &["cp", &format!("{a}:/lib/*.py"), &format!("{dir}/a.py")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert_eq!(
        err(&o),
        format!("webrepl-mount: target '{dir}/a.py' is not a directory")
    );
    let o = wm(&tb, &["cp", &format!("{a}:/lib/*.rs"), &dir]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert_eq!(
        err(&o),
        format!("webrepl-mount: no such file or directory on the board: {a}:/lib/*.rs (no match)")
    );
    // Local patterns, several into a board directory (there: cp needs it).
    std::fs::create_dir_all(tb.path("/up")).unwrap();
    let src = tempfile::tempdir().unwrap();
    for f in ["x1.py", "x2.py", "y.txt", ".z.py"] {
        std::fs::write(src.path().join(f), f).unwrap();
    }
    let s = src.path().display();
    let o = wm(&tb, &["cp", &format!("{s}/*.py"), &format!("{a}:/up/")]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(err(&o), "sent 2 file(s), 10 B");
    let o = wm(&tb, &["cp", &format!("{s}/[!x]*"), &format!("{a}:/up/")]);
    assert!(o.status.success(), "{}", err(&o));
    let mut got: Vec<_> = std::fs::read_dir(tb.path("/up"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, ["x1.py", "x2.py", "y.txt"]);
    let o = wm(&tb, &["cp", &format!("{s}/*.rs"), &format!("{a}:/up/")]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert_eq!(
        err(&o),
        format!("webrepl-mount: {s}/*.rs: no local file matches")
    );
}

/// `cat` writes as it receives: over a link as slow as an ESP32's, the
/// first bytes come while most of the file is still on its way (it used to
/// hold up to 1 MiB, so all of this file, until its check at the end).
#[test]
fn the_first_bytes_of_cat_come_before_its_download_ends() {
    let tb = TestBoard::start();
    let size = 200 * 1024;
    let text: String = (0..size).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    std::fs::write(tb.path("/big.txt"), &text).unwrap();
    let mut link = common::LinkEmu::slow(tb.port);
    let mut c = bin();
    c.args(["cat", &format!("127.0.0.1:{}:/big.txt", link.port)])
        .env("WEBREPL_PASSWORD", &tb.password);
    let mut cat = common::piped::Piped::spawn(c);
    common::eventually(60, "the first bytes of the file", || !cat.text().is_empty());
    let printed = cat.text().len();
    assert!(
        printed < size / 2,
        "{printed} of {size} bytes at once: held until the end"
    );
    assert!(cat.child.try_wait().unwrap().is_none(), "cat already ended");
    link.command("rate 0");
    common::eventually(60, "the whole file", || cat.text().len() == size);
    assert!(cat.child.wait().unwrap().success());
    assert_eq!(cat.text(), text);
}

/// `cp` of a 300 KB file over an ESP32's link while, once it is under
/// way, 1000 bytes at each of `at` change on the board: its output, and
/// the board's file after.
fn cp_while_the_board_writes(at: &[usize]) -> (Output, Vec<u8>, tempfile::TempDir) {
    use std::io::{Seek, Write};
    let tb = TestBoard::start();
    let old = common::random_bytes(300_000, 5);
    std::fs::write(tb.path("/log.bin"), &old).unwrap();
    let link = common::LinkEmu::slow(tb.port);
    let out = tempfile::tempdir().unwrap();
    let mut c = bin();
    c.args([
        "cp",
        &format!("127.0.0.1:{}:/log.bin", link.port),
        out.path().join("log.bin").to_str().unwrap(),
    ])
    .env("WEBREPL_PASSWORD", &tb.password)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let cp = c.spawn().unwrap();
    // Under way: its temporary file beside the destination grows.
    common::eventually(30, "the download under way", || {
        std::fs::read_dir(out.path())
            .unwrap()
            .any(|e| e.unwrap().metadata().is_ok_and(|m| m.len() > 20_000))
    });
    let mut new = old.clone();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(tb.path("/log.bin"))
        .unwrap();
    for &a in at {
        new[a..a + 1000].fill(0x5a);
        f.seek(std::io::SeekFrom::Start(a as u64)).unwrap();
        f.write_all(&new[a..a + 1000]).unwrap();
    }
    drop(f);
    (cp.wait_with_output().unwrap(), new, out)
}

/// A file a program changes on the board while `cp` downloads it, far
/// ahead of what the board has read (the link takes 20 KB/s, and it and
/// the sockets buffer far less than 250 KB): the board's digest, asked as
/// the transfer began, is the old file's, and what came is the new one
/// whole. `cp` asks again and writes it (it said "damaged in transit" and
/// wrote nothing).
#[test]
fn a_file_changed_on_the_board_during_its_download_is_copied_as_it_is_now() {
    let (o, new, out) = cp_while_the_board_writes(&[250_000]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read(out.path().join("log.bin")).unwrap() == new);
}

/// Changed behind the transfer and ahead of it, what came is neither
/// version: nothing is written, and `cp` says the file changed, not that
/// the link damaged it.
#[test]
fn a_file_changed_on_both_sides_of_its_download_is_refused_as_changed() {
    let (o, _, out) = cp_while_the_board_writes(&[5_000, 250_000]);
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{said}");
    assert!(
        said.contains("changed on the board while it was copied"),
        "{said}"
    );
    assert!(!out.path().join("log.bin").exists());
}

/// A reader that stops (a pager nobody scrolls) stops the download: the
/// paced GET waits for it, and our memory stays bounded (it used to take
/// the whole file in); once it reads again, the file comes whole.
#[test]
fn cat_into_a_stalled_pipe_holds_the_download_not_the_file() {
    let tb = TestBoard::start();
    let size: u64 = 64 << 20;
    std::fs::File::create(tb.path("/big.bin"))
        .unwrap()
        .set_len(size)
        .unwrap();
    let mut child = bin()
        .args(["cat", &format!("{}:/big.bin", tb.addr())])
        .env("WEBREPL_PASSWORD", &tb.password)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let proc_field = |file: &str, key: &str| -> u64 {
        std::fs::read_to_string(format!("/proc/{}/{file}", child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .unwrap_or(0)
    };
    // Nothing reads stdout: wait until the bytes it reads stop growing.
    let mut last = (0u64, std::time::Instant::now());
    common::eventually(120, "cat stops reading from the board", || {
        let now = proc_field("io", "rchar:");
        if now > last.0 + (64 << 10) {
            last = (now, std::time::Instant::now());
        }
        now > 0 && last.1.elapsed() > std::time::Duration::from_secs(2)
    });
    let peak = proc_field("status", "VmHWM:");
    assert!(
        peak < 40 << 10,
        "cat holds {peak} KB behind a stalled pipe ({} KB of a {size} B file read)",
        last.0 >> 10
    );
    // Read now: the rest comes, whole.
    let mut out = child.stdout.take().unwrap();
    let mut n = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    while let Ok(k @ 1..) = std::io::Read::read(&mut out, &mut buf) {
        assert!(buf[..k].iter().all(|b| *b == 0));
        n += k as u64;
    }
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(n, size);
}

/// A PUT into a missing directory drops the board's connection: `touch`
/// says ENOENT at once, as a mount does, and goes on with the same one.
#[test]
fn touch_in_a_missing_directory_says_so_and_keeps_the_connection() {
    let tb = TestBoard::start();
    let a = tb.addr();
    let at = |p: &str| format!("{a}:{p}");
    std::fs::write(tb.path("/main.py"), "x = 1\n").unwrap();
    let o = wm(
        &tb,
        &["touch", &at("/nodir/f"), &at("/main.py/f"), &at("/new.py")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert_eq!(
        err(&o),
        format!(
            "webrepl-mount: cannot touch '{a}:/nodir/f': No such file or directory\n\
             webrepl-mount: cannot touch '{a}:/main.py/f': Not a directory"
        )
    );
    assert_eq!(std::fs::read(tb.path("/new.py")).unwrap(), b"");
    assert!(!tb.path("/nodir").exists());
}

/// As coreutils' cp: a source that fails (missing, a directory
/// without -r) is said and skipped, the others are copied, exit 1.
#[test]
fn cp_skips_a_source_that_fails_and_copies_the_rest() {
    let tb = TestBoard::start();
    let a = tb.addr();
    std::fs::create_dir_all(tb.path("/lib")).unwrap();
    for f in ["/a.py", "/b.py", "/lib/c.py"] {
        std::fs::write(tb.path(f), f).unwrap();
    }
    let here = tempfile::tempdir().unwrap();
    let dir = here.path().display().to_string();
    let o = wm(
        &tb,
        &[
            "cp",
            &format!("{a}:/a.py"),
            &format!("{a}:/nosuch"),
            &format!("{a}:/b.py"),
            &dir,
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert_eq!(
        err(&o),
        format!("webrepl-mount: no such file or directory on the board: {a}:/nosuch")
    );
    assert_eq!(std::fs::read(here.path().join("b.py")).unwrap(), b"/b.py");
    std::fs::remove_file(here.path().join("b.py")).unwrap();
    let o = wm(&tb, &["cp", &format!("{a}:/*"), &dir]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert_eq!(
        err(&o),
        format!("webrepl-mount: -r not specified; omitting directory '{a}:/lib'")
    );
    let mut got: Vec<_> = std::fs::read_dir(here.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, ["a.py", "b.py"]);
    // And to a board: a local directory without -r, or a missing file.
    std::fs::create_dir(here.path().join("sub")).unwrap();
    std::fs::create_dir_all(tb.path("/up")).unwrap();
    let o = wm(
        &tb,
        &[
            "cp",
            &format!("{dir}/sub"),
            &format!("{dir}/nosuch.py"),
            &format!("{dir}/a.py"),
            &format!("{a}:/up/"),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert_eq!(
        err(&o),
        format!(
            "webrepl-mount: -r not specified; omitting directory '{dir}/sub'\n\
             webrepl-mount: {dir}/nosuch.py: No such file or directory (os error 2)\n\
             sent 1 file(s), 5 B"
        )
    );
    assert_eq!(std::fs::read(tb.path("/up/a.py")).unwrap(), b"/a.py");
}

/// `mv SRC... DIR` as coreutils' mv: on a board and in a mount, a source
/// that fails said and the others moved.
#[test]
fn mv_takes_several_sources_into_a_directory() {
    let tb = TestBoard::start();
    let a = tb.addr();
    let at = |p: &str| format!("{a}:{p}");
    std::fs::create_dir_all(tb.path("/lib")).unwrap();
    for f in ["/a.py", "/b.py", "/c.py", "/d.py"] {
        std::fs::write(tb.path(f), f).unwrap();
    }
    let o = wm(
        &tb,
        &[
            "mv",
            &at("/a.py"),
            &at("/nosuch"),
            &at("/b.py"),
            &at("/lib"),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert_eq!(
        err(&o),
        "webrepl-mount: no such file or directory on the board: /nosuch"
    );
    assert!(tb.path("/lib/a.py").is_file() && tb.path("/lib/b.py").is_file());
    let o = wm(&tb, &["mv", &at("/c.py"), &at("/d.py"), &at("/e.py")]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert_eq!(
        err(&o),
        format!("webrepl-mount: target '{a}:/e.py': No such file or directory")
    );
    assert!(tb.path("/c.py").is_file() && !tb.path("/e.py").exists());
    let m = Mount::start(&tb, &a, &[]);
    let inside = |p: &str| m.path().join(p).display().to_string();
    let o = m
        .cmd()
        .args(["mv", &inside("c.py"), &inside("d.py"), &inside("lib")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    common::eventually(10, "the board has the moved files", || {
        tb.path("/lib/c.py").is_file() && tb.path("/lib/d.py").is_file()
    });
}

/// `cp` with a path in a mount and no board path copies through the
/// mount, as the other file commands take a mount's paths.
#[test]
fn cp_takes_a_path_in_a_mount() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/main.py"), "x = 1\n").unwrap();
    let m = Mount::start(&tb, &tb.addr(), &[]);
    let inside = |p: &str| m.path().join(p).display().to_string();
    let here = tempfile::tempdir().unwrap();
    let src = here.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/a.py"), "a = 1\n").unwrap();
    std::fs::write(here.path().join("b.py"), "b = 2\n").unwrap();
    let run = |args: &[&str]| m.cmd().args(args).output().unwrap();
    let o = run(&[
        "cp",
        "-r",
        &src.display().to_string(),
        &here.path().join("b.py").display().to_string(),
        &inside(""),
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let o = run(&[
        "cp",
        &inside("main.py"),
        &here.path().join("back.py").display().to_string(),
    ]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        std::fs::read(here.path().join("back.py")).unwrap(),
        b"x = 1\n"
    );
    common::eventually(10, "the board has the copied files", || {
        std::fs::read(tb.path("/src/sub/a.py")).is_ok_and(|d| d == b"a = 1\n")
            && std::fs::read(tb.path("/b.py")).is_ok_and(|d| d == b"b = 2\n")
    });
}

/// `ls` and `tree` of a board hide our own files as the mount does; `rm
/// -v` says each one removed, as coreutils' rm -v.
#[test]
fn ls_hides_our_files_and_rm_v_says_what_it_removed() {
    let tb = TestBoard::start();
    let a = tb.addr();
    std::fs::write(tb.path("/.webrepl-mount-id"), "ab12\n").unwrap();
    std::fs::create_dir_all(tb.path("/lib/sub")).unwrap();
    std::fs::write(tb.path("/lib/sub/a.py"), "a").unwrap();
    std::fs::write(tb.path("/main.py"), "m").unwrap();
    let o = wm(&tb, &["ls", &a]);
    assert_eq!(out(&o), "lib/\nmain.py\n", "{}", err(&o));
    let o = wm(&tb, &["tree", &a]);
    assert_eq!(
        out(&o),
        "/\n    lib/\n        sub/\n            a.py\n    main.py\n"
    );
    let o = wm(&tb, &["rm", "-v", &format!("{a}:/main.py")]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), format!("removed '{a}:/main.py'\n"));
    let o = wm(&tb, &["rm", "-rv", &format!("{a}:/lib")]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        out(&o),
        format!(
            "removed '{a}:/lib/sub/a.py'\nremoved directory '{a}:/lib/sub'\nremoved directory '{a}:/lib'\n"
        )
    );
    assert!(!tb.path("/lib").exists());
    std::fs::create_dir_all(tb.path("/lib/sub")).unwrap();
    std::fs::write(tb.path("/lib/sub/a.py"), "a").unwrap();
    let m = Mount::start(&tb, &a, &[]);
    let lib = m.path().join("lib").display().to_string();
    let o = m.cmd().args(["rm", "-rv", &lib]).output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        out(&o),
        format!(
            "removed '{lib}/sub/a.py'\nremoved directory '{lib}/sub'\nremoved directory '{lib}'\n"
        )
    );
}

/// `exec ... | head -2`: exit 141 as coreutils', the program stopped on
/// the board, and the board still there for the next command (the test
/// board's listener used to drop its terminal when the Ctrl-C struck in
/// its Python write, as no board does).
#[test]
fn exec_into_a_closed_pipe_stops_the_program_and_the_board_goes_on() {
    let tb = TestBoard::start();
    let bin = env!("CARGO_BIN_EXE_webrepl-mount");
    let code = "for i in range(100000): print(i)\nopen('/done', 'w').close()";
    for round in 0..5 {
        let o = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "'{bin}' exec {} \"$CODE\" | head -2; echo \"exit ${{PIPESTATUS[0]}}\"",
                tb.addr()
            ))
            .env("CODE", code)
            .env("WEBREPL_PASSWORD", &tb.password)
            .output()
            .unwrap();
        assert_eq!(out(&o), "0\n1\nexit 141\n", "{round}: {}", err(&o));
        assert_eq!(err(&o), "", "{round}");
        let o = wm(&tb, &["exec", &tb.addr(), "print(6*7)"]);
        assert_eq!(out(&o), "42\n", "{round}: {}", err(&o));
    }
    assert!(!tb.path("/done").exists());
}

/// A path in a mount whose board went away, or whose daemon died, names
/// that cause (the kernel's "Input/output error" and "Transport endpoint
/// is not connected" say nothing of it), and ends the command: exit 8.
#[test]
fn a_dead_mount_or_a_gone_board_is_named_as_the_cause() {
    let tb = TestBoard::start();
    std::fs::create_dir(tb.path("/lib")).unwrap();
    std::fs::write(tb.path("/lib/a.py"), "a = 1\n").unwrap();
    std::fs::write(tb.path("/main.py"), "x = 1\n").unwrap();
    let board = tb.addr();
    let mut m = Mount::start(&tb, &board, &["--timeout", "2"]);
    let mp = m.path().display().to_string();
    let at = |p: &str| format!("{mp}/{p}");
    drop(tb);
    for args in [
        vec!["cat", &at("lib/a.py"), &at("main.py")],
        vec!["rm", &at("main.py")],
    ] {
        let o = m.cmd().args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(8), "{args:?}: {}", err(&o));
        let said = err(&o);
        assert!(
            said.starts_with(&format!(
                "webrepl-mount: cannot reach the board of the mount at {mp} ({board}): link DOWN for "
            )) && said.ends_with(&format!(
                "(cannot reach ws://{board}/: Connection refused (os error 111))"
            )) && said.lines().count() == 1,
            "{args:?}: {said}"
        );
    }
    // SAFETY: a plain kill of the daemon this test started.
    unsafe { libc::kill(m.pid() as i32, libc::SIGKILL) };
    m.wait();
    for args in [
        vec!["ls", &at("lib")],
        vec!["cat", &at("main.py")],
        vec!["touch", &at("new")],
        vec!["cp", &at("main.py"), "/tmp/"],
    ] {
        let o = m.cmd().args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(8), "{args:?}: {}", err(&o));
        assert_eq!(
            err(&o),
            format!(
                "webrepl-mount: cannot reach the mount at {mp}: its webrepl-mount daemon is gone (killed?); \
                 clean up with: webrepl-mount unmount {mp}"
            ),
            "{args:?}"
        );
    }
    assert!(
        m.cmd()
            .args(["unmount", &mp])
            .output()
            .unwrap()
            .status
            .success()
    );
}

/// `..` in a path given as a mount's resolves lexically first, as
/// `realpath -s`: what lands outside the mount is refused before anything
/// is done, never a host file beside the mount (issue 19).
#[test]
fn dot_dot_never_leaves_the_mount_for_host_files() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/keep.py"), "k\n").unwrap();
    let sandbox = tempfile::tempdir().unwrap();
    let canary = sandbox.path().join("canary.txt");
    std::fs::write(&canary, "host\n").unwrap();
    let dir = tempfile::tempdir_in(sandbox.path()).unwrap();
    let m = Mount::start_on(&tb, &tb.addr(), dir, &[]);
    let mp = m.path().display().to_string();
    let up = |rest: &str| format!("{mp}/../{rest}");
    let run = |args: &[&str]| m.cmd().args(args).output().unwrap();
    let here = |args: &[&str]| m.cmd().args(args).current_dir(m.path()).output().unwrap();
    let refused = |o: &Output, arg: &str| {
        assert!(!o.status.success(), "{arg}");
        assert_eq!(
            err(o),
            format!(
                "webrepl-mount: {arg} is not in a mounted board (mount one with: webrepl-mount HOST MOUNTPOINT)"
            )
        );
    };
    refused(&run(&["rm", &up("canary.txt")]), &up("canary.txt"));
    refused(&run(&["touch", &up("new.txt")]), &up("new.txt"));
    refused(&run(&["mkdir", &up("d")]), &up("d"));
    let o = run(&["mv", &format!("{mp}/keep.py"), &up("moved.py")]);
    assert!(!o.status.success());
    assert!(
        err(&o).ends_with(
            "moved.py is not in a mounted board (mount one with: webrepl-mount HOST MOUNTPOINT)"
        ),
        "{}",
        err(&o)
    );
    refused(&here(&["rm", "../canary.txt"]), "../canary.txt");
    let o = here(&["ls", ".."]);
    refused(&o, "..");
    assert_eq!(out(&o), "");
    // `rm -r MNT/..` is `..`: refused as coreutils' rm refuses it.
    let o = run(&["rm", "-r", &format!("{mp}/..")]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert_eq!(
        err(&o),
        format!("webrepl-mount: refusing to remove '.' or '..' directory: skipping '{mp}/..'")
    );
    assert!(canary.is_file());
    for gone in ["new.txt", "d", "moved.py"] {
        assert!(!sandbox.path().join(gone).exists(), "{gone}");
    }
    assert!(tb.path("/keep.py").is_file());
    assert!(m.path().join("keep.py").is_file());
}

/// `rm -r .` and `rm -r ..` (in a mount, or a board path's last part) are
/// refused as coreutils' rm refuses them: nothing removed, exit 1.
#[test]
fn rm_r_of_dot_or_dot_dot_removes_nothing() {
    let tb = TestBoard::start();
    std::fs::create_dir_all(tb.path("/k/sub")).unwrap();
    std::fs::write(tb.path("/k/a.py"), "a\n").unwrap();
    std::fs::write(tb.path("/k/sub/b.py"), "b\n").unwrap();
    let a = tb.addr();
    for arg in [
        format!("{a}:/k/."),
        format!("{a}:/k/sub/.."),
        format!("{a}:/k/./"),
    ] {
        let o = wm(&tb, &["rm", "-r", &arg]);
        assert_eq!(o.status.code(), Some(1), "{arg}: {}", err(&o));
        assert_eq!(
            err(&o),
            format!("webrepl-mount: refusing to remove '.' or '..' directory: skipping '{arg}'")
        );
    }
    assert!(tb.path("/k/a.py").is_file() && tb.path("/k/sub/b.py").is_file());
    let m = Mount::start(&tb, &a, &[]);
    let sub = m.path().join("k/sub");
    for arg in [".", ".."] {
        let o = m
            .cmd()
            .args(["rm", "-r", arg])
            .current_dir(&sub)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{arg}: {}", err(&o));
        assert_eq!(
            err(&o),
            format!("webrepl-mount: refusing to remove '.' or '..' directory: skipping '{arg}'")
        );
    }
    assert!(m.path().join("k/a.py").is_file() && sub.join("b.py").is_file());
    assert!(tb.path("/k/a.py").is_file() && tb.path("/k/sub/b.py").is_file());
}

/// Our own files (the board's id, part files) never leave a board in a
/// download nor reach one in an upload: a restore of one board's backup
/// onto another would clone its id and defeat the journal's board identity.
#[test]
fn cp_leaves_our_own_files_out_both_ways() {
    let tb = TestBoard::start();
    let other = TestBoard::start();
    std::fs::create_dir_all(tb.path("/lib")).unwrap();
    std::fs::write(tb.path("/main.py"), "m\n").unwrap();
    std::fs::write(tb.path("/lib/a.py"), "a\n").unwrap();
    std::fs::write(tb.path("/.webrepl-mount-id"), "board-a-id\n").unwrap();
    std::fs::write(tb.path("/lib/.wrm-1a2b3c"), "half\n").unwrap();
    let dl = tempfile::tempdir().unwrap();
    let all = dl.path().join("all");
    let o = wm(
        &tb,
        &[
            "cp",
            "-r",
            &format!("{}:/", tb.addr()),
            &all.display().to_string(),
        ],
    );
    assert!(o.status.success(), "{}", err(&o));
    assert!(all.join("main.py").is_file() && all.join("lib/a.py").is_file());
    assert!(!all.join(".webrepl-mount-id").exists());
    assert!(!all.join("lib/.wrm-1a2b3c").exists());
    // A backup that holds one anyway (made by hand, or by an older copy).
    std::fs::write(all.join(".webrepl-mount-id"), "board-a-id\n").unwrap();
    let src = format!("{}/.", all.display());
    let o = wm(&other, &["cp", "-r", &src, &format!("{}:/", other.addr())]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(
        err(&o).contains(&format!(
            "webrepl-mount: {}/./.webrepl-mount-id: not sent: /.webrepl-mount-id is a name webrepl-mount keeps for its own files (board id, helpers, uploads in progress)",
            all.display()
        )),
        "{}",
        err(&o)
    );
    assert!(other.path("/main.py").is_file() && other.path("/lib/a.py").is_file());
    assert_ne!(
        std::fs::read_to_string(other.path("/.webrepl-mount-id"))
            .ok()
            .as_deref(),
        Some("board-a-id\n")
    );
}

/// A trailing slash on an upload's target that is not there names the new
/// directory, as GNU cp takes it (and the download side did): a deploy
/// `cp -r src/ HOST:/app2/` lands in /app2, not /app2/src.
#[test]
fn a_trailing_slash_on_a_new_upload_target_is_its_name() {
    let tb = TestBoard::start();
    let a = tb.addr();
    let here = tempfile::tempdir().unwrap();
    let src = here.path().join("src");
    std::fs::create_dir_all(src.join("lib")).unwrap();
    std::fs::write(src.join("main.py"), "m\n").unwrap();
    std::fs::write(src.join("lib/x.py"), "x\n").unwrap();
    let s = format!("{}/", src.display());
    let o = wm(&tb, &["cp", "-r", &s, &format!("{a}:/app2/")]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(tb.path("/app2/main.py").is_file() && tb.path("/app2/lib/x.py").is_file());
    assert!(!tb.path("/app2/src").exists());
    // There now: into it, as cp does the second time.
    let o = wm(&tb, &["cp", "-r", &s, &format!("{a}:/app2/")]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(tb.path("/app2/src/main.py").is_file());
    // A file cannot be `DIR/`.
    let file = src.join("main.py").display().to_string();
    let o = wm(&tb, &["cp", &file, &format!("{a}:/newd/")]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert_eq!(
        err(&o),
        format!("webrepl-mount: cannot create regular file '{a}:/newd/': Not a directory")
    );
    assert!(!tb.path("/newd").exists());
}

/// Several sources go into a directory that is there, or nowhere: upload,
/// download and mv say it as coreutils' cp and mv, exit 1.
#[test]
fn several_sources_into_a_missing_directory_are_refused_alike() {
    let tb = TestBoard::start();
    let a = tb.addr();
    std::fs::write(tb.path("/x.py"), "x\n").unwrap();
    std::fs::write(tb.path("/y.py"), "y\n").unwrap();
    let here = tempfile::tempdir().unwrap();
    let (p, q) = (here.path().join("p.py"), here.path().join("q.py"));
    std::fs::write(&p, "p\n").unwrap();
    std::fs::write(&q, "q\n").unwrap();
    let (p, q) = (p.display().to_string(), q.display().to_string());
    let nodir = format!("{a}:/nodir");
    let o = wm(&tb, &["cp", &p, &q, &nodir]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert_eq!(
        err(&o),
        format!("webrepl-mount: target '{nodir}': No such file or directory")
    );
    assert!(!tb.path("/nodir").exists());
    let o = wm(&tb, &["cp", &p, &q, &format!("{a}:/x.py")]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert_eq!(
        err(&o),
        format!("webrepl-mount: target '{a}:/x.py' is not a directory")
    );
    assert_eq!(std::fs::read(tb.path("/x.py")).unwrap(), b"x\n");
    let local = here.path().join("nodir").display().to_string();
    let o = wm(
        &tb,
        &["cp", &format!("{a}:/x.py"), &format!("{a}:/y.py"), &local],
    );
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert_eq!(
        err(&o),
        format!("webrepl-mount: target '{local}': No such file or directory")
    );
    let o = wm(
        &tb,
        &["mv", &format!("{a}:/x.py"), &format!("{a}:/y.py"), &nodir],
    );
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert_eq!(
        err(&o),
        format!("webrepl-mount: target '{nodir}': No such file or directory")
    );
    assert!(tb.path("/x.py").is_file() && !tb.path("/nodir").exists());
    // The same through a mount.
    let m = Mount::start(&tb, &a, &[]);
    let at = |p: &str| m.path().join(p).display().to_string();
    for cmd in ["cp", "mv"] {
        let o = m
            .cmd()
            .args([cmd, &at("x.py"), &at("y.py"), &at("nodir")])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{cmd}: {}", err(&o));
        assert_eq!(
            err(&o),
            format!(
                "webrepl-mount: target '{}': No such file or directory",
                at("nodir")
            )
        );
    }
    assert!(m.path().join("x.py").is_file() && !m.path().join("nodir").exists());
}

/// `HOST:/app/.` is what /app holds, into DST each time, as GNU cp takes
/// `app/.`: a second download nested app/ in the copy.
#[test]
fn a_download_of_dir_dot_is_its_contents_every_time() {
    let tb = TestBoard::start();
    std::fs::create_dir_all(tb.path("/app/lib")).unwrap();
    std::fs::write(tb.path("/app/main.py"), "m\n").unwrap();
    std::fs::write(tb.path("/app/lib/x.py"), "x\n").unwrap();
    let dl = tempfile::tempdir().unwrap();
    let copy = dl.path().join("appcopy");
    let src = format!("{}:/app/.", tb.addr());
    for _ in 0..2 {
        let o = wm(&tb, &["cp", "-r", &src, &copy.display().to_string()]);
        assert!(o.status.success(), "{}", err(&o));
        let mut got: Vec<_> = std::fs::read_dir(&copy)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        got.sort();
        assert_eq!(got, ["lib", "main.py"]);
        assert!(copy.join("lib/x.py").is_file());
    }
}

/// `-h` is human sizes to df and ls, as coreutils have it (help stays
/// `--help`): it printed help and exited 0.
#[test]
fn dash_h_is_human_sizes_for_df_and_ls() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/big.bin"), vec![7u8; 3072]).unwrap();
    let a = tb.addr();
    let o = wm(&tb, &["ls", "-lh", &format!("{a}:/big.bin")]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "-    3.0 KB /big.bin\n");
    let o = wm(&tb, &["ls", "-l", &format!("{a}:/big.bin")]);
    assert_eq!(out(&o), "-      3072 /big.bin\n");
    let o = wm(&tb, &["df", "-h", &a]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).starts_with(&format!("{a}: ")) && out(&o).contains(" free of "));
    for cmd in ["ls", "df"] {
        let o = wm(&tb, &[cmd, "--help"]);
        assert!(o.status.success() && out(&o).contains("Usage: webrepl-mount"));
    }
}

/// A quoted pattern as mv's or cp's target is the one directory it
/// matches; else refused: `mv HOST:/x1.py 'HOST:/*.txt'` made a file
/// named `*.txt`.
#[test]
fn a_pattern_as_a_target_must_match_one_directory() {
    let tb = TestBoard::start();
    let a = tb.addr();
    std::fs::create_dir_all(tb.path("/lib")).unwrap();
    std::fs::write(tb.path("/x1.py"), "x\n").unwrap();
    std::fs::write(tb.path("/a.txt"), "a\n").unwrap();
    std::fs::write(tb.path("/b.txt"), "b\n").unwrap();
    let refused = |o: &Output, arg: &str, matches: &str| {
        assert_eq!(o.status.code(), Some(1), "{}", err(o));
        assert_eq!(
            err(o),
            format!(
                "webrepl-mount: target '{arg}': a pattern as a target must match one directory (it matches {matches})"
            )
        );
    };
    let x1 = format!("{a}:/x1.py");
    for (pattern, matches) in [
        ("/*.txt", "2 names"),
        ("/*.zz", "nothing"),
        ("/a.t?t", "a file"),
    ] {
        let t = format!("{a}:{pattern}");
        refused(&wm(&tb, &["mv", &x1, &t]), &t, matches);
        let here = tempfile::tempdir().unwrap();
        let f = here.path().join("f.py");
        std::fs::write(&f, "f\n").unwrap();
        refused(&wm(&tb, &["cp", &f.display().to_string(), &t]), &t, matches);
    }
    let names: Vec<_> = std::fs::read_dir(tb.path("/"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert!(!names.iter().any(|n| n.contains(['*', '?'])), "{names:?}");
    assert_eq!(std::fs::read(tb.path("/a.txt")).unwrap(), b"a\n");
    let o = wm(&tb, &["mv", &x1, &format!("{a}:/l?b")]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(tb.path("/lib/x1.py").is_file());
}

/// Every file below `dir`, as paths relative to it.
fn files_below(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                found.push(p.strip_prefix(dir).expect("below").display().to_string());
            }
        }
    }
    found
}

/// `cp` up, down and `-r` stopped by Ctrl-C once bytes move on a slow
/// link: exits 130 as `run` and `exec` do (it exited 10, or died by the
/// signal), with no temporary file here and no part file on the board.
#[test]
fn cp_stopped_by_ctrl_c_exits_130_and_leaves_no_part_file() {
    let tb = TestBoard::start();
    let link = common::LinkEmu::slow(tb.port);
    let board = format!("127.0.0.1:{}", link.port);
    let here = tempfile::tempdir().expect("dir");
    let big = common::random_bytes(150_000, 7);
    std::fs::write(here.path().join("big.bin"), &big).expect("seed");
    std::fs::create_dir(here.path().join("tree")).expect("tree");
    std::fs::write(here.path().join("tree/a.bin"), &big).expect("seed");
    std::fs::write(tb.root.path().join("down.bin"), &big).expect("seed");
    std::fs::create_dir(tb.root.path().join("downtree")).expect("seed");
    std::fs::write(tb.root.path().join("downtree/b.bin"), &big).expect("seed");
    // Our helpers' copy on flash comes with the first program.
    let ours = |f: &String| !f.starts_with(".webrepl-mount-");
    let board_files = || -> Vec<String> {
        let mut f: Vec<String> = files_below(tb.root.path())
            .into_iter()
            .filter(ours)
            .collect();
        f.sort();
        f
    };
    let on_board = board_files();
    let into = tempfile::tempdir().expect("dir");
    let stop = |args: &[&str], moving: &dyn Fn() -> bool| {
        let mut c = bin();
        c.args(args)
            .env("WEBREPL_PASSWORD", &tb.password)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = common::Reaped(c.spawn().expect("spawn"));
        common::eventually(30, &format!("bytes moving for {args:?}"), moving);
        // SAFETY: a plain signal to the process this test started.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let status = child.wait().expect("wait");
        assert_eq!(status.code(), Some(130), "{args:?}: {status:?}");
    };
    let part_moving = || {
        files_below(tb.root.path()).iter().any(|f| {
            f.rsplit('/').next().is_some_and(|n| n.starts_with(".wrm-"))
                && std::fs::metadata(tb.root.path().join(f)).is_ok_and(|m| m.len() > 0)
        })
    };
    let file = here.path().join("big.bin");
    let tree = here.path().join("tree");
    for (src, dst) in [
        (file.to_str().expect("utf-8"), format!("{board}:/big.bin")),
        (tree.to_str().expect("utf-8"), format!("{board}:/tree")),
    ] {
        stop(&["cp", "-r", src, &dst], &part_moving);
        assert_eq!(board_files(), on_board, "cp {src} {dst}");
    }
    let local_moving = || {
        files_below(into.path())
            .iter()
            .any(|f| std::fs::metadata(into.path().join(f)).is_ok_and(|m| m.len() > 0))
    };
    for src in ["/down.bin", "/downtree"] {
        let src = format!("{board}:{src}");
        stop(
            &["cp", "-r", &src, into.path().to_str().expect("utf-8")],
            &local_moving,
        );
        assert_eq!(files_below(into.path()), Vec::<String>::new(), "cp {src}");
    }
}

#[test]
fn ls_lists_several_targets_hides_dotfiles_without_a_and_exits_1_for_one_missing() {
    let tb = TestBoard::start();
    std::fs::create_dir_all(tb.path("/lib")).unwrap();
    std::fs::write(tb.path("/a.py"), "").unwrap();
    std::fs::write(tb.path("/.hidden"), "").unwrap();
    std::fs::write(tb.path("/.webrepl-mount-id"), "x").unwrap();
    std::fs::write(tb.path("/lib/x.py"), "").unwrap();
    let a = tb.addr();
    let at = |p: &str| format!("{a}:{p}");
    let o = wm(
        &tb,
        &["ls", &at("/a.py"), &at("/nope"), &at("/"), &at("/lib")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert_eq!(
        err(&o),
        "webrepl-mount: no such file or directory on the board: /nope"
    );
    assert_eq!(
        out(&o),
        format!("/a.py\n\n{a}:/:\na.py\nlib/\n\n{a}:/lib:\nx.py\n")
    );
    let o = wm(&tb, &["ls", "-a1", &at("/")]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), ".hidden\na.py\nlib/\n");
}

#[test]
fn a_port_nothing_answers_is_said_as_a_file_only_where_a_file_could_be_meant() {
    let tb = TestBoard::start();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hint = format!("(for the board file {closed} write 127.0.0.1:/{closed})");
    let bare = format!("127.0.0.1:{closed}");
    let o = wm(&tb, &["ls", &bare]);
    assert_eq!(o.status.code(), Some(8));
    assert!(err(&o).ends_with(&hint), "{}", err(&o));
    for args in [
        vec!["ls", &format!("{bare}:/x") as &str],
        vec!["cat", &format!("{bare}:/x")],
        vec!["exec", &bare, "print(1)"],
    ] {
        let o = wm(&tb, &args);
        assert_eq!(o.status.code(), Some(8), "{args:?}");
        assert_eq!(
            err(&o),
            format!("webrepl-mount: cannot reach ws://{bare}/: Connection refused (os error 111)"),
            "{args:?}"
        );
    }
}

#[test]
fn dash_v_is_coreutils_lines_on_stdout_for_every_file_command() {
    let tb = TestBoard::start();
    let a = tb.addr();
    let at = |p: &str| format!("{a}:{p}");
    let local = tempfile::tempdir().unwrap();
    let f = local.path().join("f.py");
    std::fs::write(&f, "x = 1\n").unwrap();
    let f = f.to_str().unwrap();
    let back = local.path().join("back");
    std::fs::create_dir(&back).unwrap();
    let back = back.to_str().unwrap();
    let steps: Vec<(Vec<String>, String)> = vec![
        (
            vec!["mkdir".into(), "-pv".into(), at("/a/b")],
            format!("mkdir: created directory '{a}:/a'\nmkdir: created directory '{a}:/a/b'\n"),
        ),
        (
            vec!["mkdir".into(), "-v".into(), at("/c")],
            format!("mkdir: created directory '{a}:/c'\n"),
        ),
        (
            vec!["cp".into(), "-v".into(), f.into(), at("/a/")],
            format!("'{f}' -> '{a}:/a/f.py'\n"),
        ),
        (
            vec!["cp".into(), "-v".into(), at("/a/f.py"), back.into()],
            format!("'{a}:/a/f.py' -> '{back}/f.py'\n"),
        ),
        (
            vec!["mv".into(), "-v".into(), at("/a/f.py"), at("/a/b")],
            format!("renamed '{a}:/a/f.py' -> '{a}:/a/b/f.py'\n"),
        ),
        (vec!["touch".into(), "-v".into(), at("/t")], String::new()),
        (
            vec!["rm".into(), "-v".into(), at("/a/b/f.py"), at("/t")],
            format!("removed '{a}:/a/b/f.py'\nremoved '{a}:/t'\n"),
        ),
        (
            vec!["rmdir".into(), "-v".into(), at("/a/b"), at("/c")],
            format!("rmdir: removing directory, '{a}:/a/b'\nrmdir: removing directory, '{a}:/c'\n"),
        ),
    ];
    for (args, want) in steps {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = wm(&tb, &args);
        assert!(o.status.success(), "{args:?}: {}", err(&o));
        assert_eq!(out(&o), want, "{args:?}");
        // No log lines: cp's own summary only.
        assert!(
            err(&o).lines().all(|l| l.starts_with("sent ")),
            "{args:?}: {}",
            err(&o)
        );
    }
    assert!(tb.path("/a").is_dir() && !tb.path("/a/b").exists());
}

#[test]
fn run_takes_the_board_first_as_exec_and_the_old_order_still_works() {
    let tb = TestBoard::start();
    let a = tb.addr();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hello.py");
    std::fs::write(&file, "print('hi', 6*7)\n").unwrap();
    let f = file.to_str().unwrap();
    for args in [["run", &a as &str, f], ["run", f, &a]] {
        let o = wm(&tb, &args);
        assert!(o.status.success(), "{args:?}: {}", err(&o));
        assert_eq!(out(&o), "hi 42\n", "{args:?}");
    }
    // No board: --board's (or WEBREPL_BOARD's), as mpremote's `run FILE`.
    let o = wm(&tb, &["--board", &a, "run", f]);
    assert_eq!(out(&o), "hi 42\n", "{}", err(&o));
    let o = bin()
        .args(["exec", "print(7)"])
        .env("WEBREPL_PASSWORD", &tb.password)
        .env("WEBREPL_BOARD", &a)
        .output()
        .unwrap();
    assert_eq!(out(&o), "7\n", "{}", err(&o));
    let other = dir.path().join("other.py");
    std::fs::write(&other, "").unwrap();
    let g = other.to_str().unwrap();
    let o = wm(&tb, &["run", f, g]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        err(&o),
        format!("webrepl-mount: run {f} {g}: both are local files: write run BOARD FILE")
    );
}

#[test]
fn colon_path_is_on_the_default_board_and_name_slash_is_a_named_boards_root() {
    let tb = TestBoard::start();
    let a = tb.addr();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("main.py");
    std::fs::write(&file, "x = 1\n").unwrap();
    let f = file.to_str().unwrap();
    let with_board = |args: &[&str]| {
        bin()
            .args(args)
            .env("WEBREPL_PASSWORD", &tb.password)
            .env("WEBREPL_BOARD", &a)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let o = with_board(&["cp", f, ":"]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(std::fs::read(tb.path("/main.py")).unwrap(), b"x = 1\n");
    let o = with_board(&["cat", ":main.py"]);
    assert_eq!(out(&o), "x = 1\n", "{}", err(&o));
    std::fs::remove_file(&file).unwrap();
    let o = with_board(&["cp", ":main.py", "."]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(std::fs::read(&file).unwrap(), b"x = 1\n");
    let o = with_board(&["ls", ":"]);
    assert!(out(&o).lines().any(|l| l == "main.py"), "{}", err(&o));

    // `kb/` is the board boards.toml names, as `kb:`.
    let home = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("up.py"), "y = 2\n").unwrap();
    let up = dir.path().join("up.py");
    let o = wm_named(&tb, &home, &["cp", up.to_str().unwrap(), "kb/"]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(std::fs::read(tb.path("/up.py")).unwrap(), b"y = 2\n");
    // A directory kb here too: both readings named.
    std::fs::create_dir(home.path().join("kb")).unwrap();
    let o = bin()
        .args(["cp", "up.py", "kb/"])
        .env("WEBREPL_PASSWORD", &tb.password)
        .env("XDG_CONFIG_HOME", home.path())
        .current_dir(home.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        err(&o),
        "webrepl-mount: kb/ is both the board kb (boards.toml) and a directory here: \
         write kb: for the board, ./kb/ for the directory"
    );
}

#[test]
fn cp_n_keeps_existing_files_u_copies_what_differs_a_p_accepted_i_refused() {
    let tb = TestBoard::start();
    let a = tb.addr();
    let at = |p: &str| format!("{a}:{p}");
    let dir = tempfile::tempdir().unwrap();
    let here = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    std::fs::write(tb.path("/a.py"), "board\n").unwrap();
    std::fs::write(here("a.py"), "local\n").unwrap();
    std::fs::write(here("b.py"), "new\n").unwrap();
    let o = wm(&tb, &["cp", "-n", &here("a.py"), &here("b.py"), &at("/")]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(err(&o), "sent 1 file(s), 4 B; kept 1 existing (-n)");
    assert_eq!(std::fs::read(tb.path("/a.py")).unwrap(), b"board\n");
    assert_eq!(std::fs::read(tb.path("/b.py")).unwrap(), b"new\n");
    // Back: -n keeps the local a.py; -u copies only what differs.
    let back = tempfile::tempdir().unwrap();
    let b = back.path().to_str().unwrap();
    std::fs::write(back.path().join("a.py"), "mine\n").unwrap();
    let o = wm(&tb, &["cp", "-nv", &at("/a.py"), &at("/b.py"), b]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), format!("'{a}:/b.py' -> '{b}/b.py'\n"));
    assert_eq!(std::fs::read(back.path().join("a.py")).unwrap(), b"mine\n");
    std::fs::write(tb.path("/b.py"), "changed\n").unwrap();
    std::fs::write(back.path().join("a.py"), "board\n").unwrap();
    let o = wm(&tb, &["cp", "-uv", &at("/a.py"), &at("/b.py"), b]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), format!("'{a}:/b.py' -> '{b}/b.py'\n"));
    assert_eq!(
        std::fs::read(back.path().join("b.py")).unwrap(),
        b"changed\n"
    );
    // -a is -r -p; -p is accepted (a board has no modes to keep).
    std::fs::create_dir_all(dir.path().join("t/sub")).unwrap();
    std::fs::write(dir.path().join("t/sub/x.py"), "x\n").unwrap();
    let o = wm(&tb, &["cp", "-a", &here("t"), &at("/t")]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(std::fs::read(tb.path("/t/sub/x.py")).unwrap(), b"x\n");
    let o = wm(&tb, &["cp", "-p", &here("b.py"), &at("/c.py")]);
    assert!(o.status.success(), "{}", err(&o));
    let o = wm(&tb, &["cp", "-i", &here("b.py"), &at("/c.py")]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        err(&o),
        "webrepl-mount: cp -i (ask before each overwrite) is not supported: -n keeps every \
         existing file, -u copies only the files that differ"
    );
}

#[test]
fn mv_between_here_and_a_board_removes_the_source_only_once_copied() {
    let tb = TestBoard::start();
    let a = tb.addr();
    let at = |p: &str| format!("{a}:{p}");
    std::fs::create_dir_all(tb.path("/lib")).unwrap();
    std::fs::write(tb.path("/file.txt"), "f").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("up.py");
    std::fs::write(&src, "up\n").unwrap();
    let s = src.to_str().unwrap();
    // Into a file's "directory": the upload fails, the source stays.
    let o = wm(&tb, &["mv", s, &at("/file.txt/x.py")]);
    assert!(!o.status.success(), "{}", out(&o));
    assert!(src.exists());
    let o = wm(&tb, &["mv", "-v", s, &at("/lib/")]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        out(&o),
        format!("copied '{s}' -> '{a}:/lib/up.py'\nremoved '{s}'\n")
    );
    assert!(!src.exists());
    assert_eq!(std::fs::read(tb.path("/lib/up.py")).unwrap(), b"up\n");
    // And back, a whole tree: the board's goes once here and checked.
    let back = dir.path().join("back");
    let o = wm(&tb, &["mv", &at("/lib"), back.to_str().unwrap()]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(std::fs::read(back.join("up.py")).unwrap(), b"up\n");
    assert!(!tb.path("/lib").exists());
}

#[test]
fn cp_from_board_to_board_goes_through_this_machine() {
    let (one, two) = (TestBoard::start(), TestBoard::start());
    std::fs::create_dir_all(one.path("/lib/sub")).unwrap();
    std::fs::write(one.path("/lib/a.py"), "a\n").unwrap();
    std::fs::write(one.path("/lib/sub/b.py"), "b\n").unwrap();
    std::fs::write(one.path("/main.py"), "m\n").unwrap();
    let (a, b) = (one.addr(), two.addr());
    let o = wm(&one, &["cp", &format!("{a}:/main.py"), &format!("{b}:/")]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(err(&o), "sent 1 file(s), 2 B");
    assert_eq!(std::fs::read(two.path("/main.py")).unwrap(), b"m\n");
    let o = wm(
        &one,
        &["cp", "-r", &format!("{a}:/lib"), &format!("{b}:/lib2")],
    );
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(std::fs::read(two.path("/lib2/a.py")).unwrap(), b"a\n");
    assert_eq!(std::fs::read(two.path("/lib2/sub/b.py")).unwrap(), b"b\n");
    // A missing source is said, the others go, exit 1.
    let o = wm(
        &one,
        &[
            "cp",
            &format!("{a}:/nope"),
            &format!("{a}:/lib/a.py"),
            &format!("{b}:/lib2/sub/"),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert_eq!(std::fs::read(two.path("/lib2/sub/a.py")).unwrap(), b"a\n");
}

#[test]
fn mv_from_board_to_board_removes_the_sources_once_all_arrived() {
    let (one, two) = (TestBoard::start(), TestBoard::start());
    std::fs::create_dir_all(one.path("/lib")).unwrap();
    std::fs::write(one.path("/lib/a.py"), "a\n").unwrap();
    std::fs::write(one.path("/main.py"), "m\n").unwrap();
    let (a, b) = (one.addr(), two.addr());
    // One source missing: the other is copied, nothing is removed.
    let o = wm(
        &one,
        &[
            "mv",
            &format!("{a}:/nope"),
            &format!("{a}:/main.py"),
            &format!("{b}:/"),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(one.path("/main.py").is_file());
    assert_eq!(std::fs::read(two.path("/main.py")).unwrap(), b"m\n");
    let o = wm(
        &one,
        &["mv", "-v", &format!("{a}:/lib"), &format!("{b}:/lib2")],
    );
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), format!("removed directory '{a}:/lib'\n"));
    assert_eq!(std::fs::read(two.path("/lib2/a.py")).unwrap(), b"a\n");
    assert!(!one.path("/lib").exists());
}

/// A quoted pattern in a path through a mount (a mounted board's
/// `HOST:PATH`, or the mount's own path) is matched on the mount's names,
/// as on an unmounted board: it was taken as a name ("no such file").
#[test]
fn quoted_patterns_through_a_mount_are_matched() {
    let tb = TestBoard::start();
    std::fs::create_dir(tb.path("/d")).unwrap();
    std::fs::create_dir(tb.path("/e")).unwrap();
    for (f, text) in [
        ("n1.txt", "one\n"),
        ("n2.txt", "two\n"),
        ("a.py", "a = 1\n"),
    ] {
        std::fs::write(tb.path(&format!("/{f}")), text).unwrap();
    }
    std::fs::write(tb.path("/e/x.py"), "x\n").unwrap();
    let m = Mount::start(&tb, &tb.addr(), &[]);
    let mp = m.path().display().to_string();
    let at = |p: &str| format!("{}:{p}", tb.addr());
    let run = |args: &[&str]| {
        let o = m.cmd().args(args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", err(&o));
        out(&o)
    };
    assert_eq!(run(&["cat", &at("/n*.txt")]), "one\ntwo\n");
    let ls = run(&["ls", &at("/*.py")]);
    assert!(ls.contains("a.py") && !ls.contains("n1"), "{ls}");
    let sums = run(&["sha256sum", &at("/n?.txt")]);
    assert_eq!(sums.lines().count(), 2, "{sums}");
    assert!(sums.contains("n2.txt"), "{sums}");
    run(&["mv", &at("/n*"), &at("/d/")]);
    assert!(m.path().join("d/n1.txt").is_file() && m.path().join("d/n2.txt").is_file());
    assert!(!m.path().join("n1.txt").exists());
    run(&["rm", "-r", &format!("{mp}/e/*")]);
    assert!(m.path().join("e").is_dir() && !m.path().join("e/x.py").exists());
    run(&["rm", &at("/d/*.txt")]);
    assert!(!m.path().join("d/n1.txt").exists());
    let o = m.cmd().args(["rm", &at("/zz*")]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("(no match)"), "{}", err(&o));
}

/// A trailing slash names a directory through a mount as on a board: no
/// file made (`touch M/x/`), renamed to (`mv M/a M/nodir/`), removed or
/// printed (`rm M/f/`, `cat HOST:/f/` of a mounted board); nor a file
/// downloaded by `cp HOST:/f/ DIR/` (GNU cp's "Not a directory").
#[test]
fn a_trailing_slash_is_a_directory_through_a_mount_too() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/main.py"), "x = 1\n").unwrap();
    std::fs::write(tb.path("/a.py"), "a = 1\n").unwrap();
    let here = tempfile::tempdir().unwrap();
    let dst = format!("{}/", here.path().display());
    let o = wm(&tb, &["cp", &format!("{}:/main.py/", tb.addr()), &dst]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert_eq!(
        err(&o),
        format!(
            "webrepl-mount: {}:/main.py/: not a directory (ENOTDIR)",
            tb.addr()
        )
    );
    assert!(!here.path().join("main.py").exists());
    let m = Mount::start(&tb, &tb.addr(), &[]);
    let mp = m.path().display().to_string();
    let via = |p: &str| format!("{}:{p}", tb.addr());
    let run = |args: &[&str]| m.cmd().args(args).output().unwrap();
    for arg in [format!("{mp}/newy/"), via("/newx/")] {
        let o = run(&["touch", &arg]);
        assert_eq!(o.status.code(), Some(1), "{arg}: {}", err(&o));
        assert!(
            err(&o).ends_with("newy/") || err(&o).ends_with("newx/"),
            "{}",
            err(&o)
        );
    }
    assert!(!m.path().join("newy").exists() && !m.path().join("newx").exists());
    let o = run(&["mv", &format!("{mp}/a.py"), &format!("{mp}/nodir/")]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert_eq!(
        err(&o),
        format!("webrepl-mount: {mp}/nodir/: not a directory (ENOTDIR)")
    );
    assert!(m.path().join("a.py").is_file() && !m.path().join("nodir").exists());
    for cmd in ["rm", "cat", "sha256sum"] {
        for arg in [format!("{mp}/main.py/"), via("/main.py/")] {
            let o = run(&[cmd, &arg]);
            assert_eq!(o.status.code(), Some(1), "{cmd} {arg}: {}", err(&o));
            assert!(
                err(&o).ends_with("/main.py/: not a directory (ENOTDIR)"),
                "{cmd} {arg}: {}",
                err(&o)
            );
            assert_eq!(out(&o), "");
        }
    }
    assert!(m.path().join("main.py").is_file());
}

/// A mount whose board is gone: `df` and `mv` name the cause (they said
/// "Input/output error", exit 1), and `touch` or `cp` into it, which the
/// mount keeps in its journal, say so and exit 8 (they said nothing and
/// exited 0, the files not on the board).
#[test]
fn a_gone_board_behind_a_mount_is_named_by_df_mv_touch_and_cp() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/a.py"), "a = 1\n").unwrap();
    let board = tb.addr();
    let m = Mount::start(&tb, &board, &["--timeout", "2"]);
    let mp = m.path().display().to_string();
    let at = |p: &str| format!("{mp}/{p}");
    let src = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(src.path(), "big\n").unwrap();
    let src = src.path().to_str().unwrap().to_string();
    drop(tb);
    let cause = format!(
        "webrepl-mount: cannot reach the board of the mount at {mp} ({board}): link DOWN for "
    );
    for args in [
        vec!["df", mp.as_str()],
        vec!["df", board.as_str()],
        vec!["mv", &at("a.py"), &at("b.py")],
    ] {
        let o = m.cmd().args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(8), "{args:?}: {}", err(&o));
        assert!(err(&o).starts_with(&cause), "{args:?}: {}", err(&o));
    }
    let dst = format!("{board}:/big3.txt");
    for args in [vec!["touch", &at("newt")], vec!["cp", "-v", &src, &dst]] {
        let o = m.cmd().args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(8), "{args:?}: {}", err(&o));
        let said = err(&o);
        assert!(
            said.starts_with(&cause)
                && said.contains("what was written is kept in the mount's journal and goes to the board when it is back"),
            "{args:?}: {said}"
        );
    }
}

/// `cp -r src/. A:/multi B:/multi` with B mounted: A gets the files as an
/// upload, B through its mount (it was "after the files to copy come only
/// boards", exit 2); `src/.` is src's contents both ways.
#[test]
fn a_deploy_to_several_boards_goes_through_the_one_that_is_mounted() {
    let plain = TestBoard::start();
    let tb = TestBoard::start();
    let m = Mount::start(&tb, &tb.addr(), &[]);
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir(src.path().join("lib")).unwrap();
    std::fs::write(src.path().join("main.py"), "x = 1\n").unwrap();
    std::fs::write(src.path().join("lib/a.py"), "a = 1\n").unwrap();
    let dot = format!("{}/.", src.path().display());
    for dests in [
        [
            format!("{}:/multi", plain.addr()),
            format!("{}:/multi", tb.addr()),
        ],
        [
            format!("{}:/multi", tb.addr()),
            format!("{}:/multi", plain.addr()),
        ],
    ] {
        let o = m
            .cmd()
            .args(["cp", "-r", &dot, &dests[0], &dests[1]])
            .env("WEBREPL_PASSWORD", &plain.password)
            .output()
            .unwrap();
        assert!(o.status.success(), "{dests:?}: {}", err(&o));
        assert_eq!(
            std::fs::read_to_string(plain.path("/multi/lib/a.py")).unwrap(),
            "a = 1\n"
        );
        assert_eq!(
            std::fs::read_to_string(m.path().join("multi/main.py")).unwrap(),
            "x = 1\n"
        );
        assert_eq!(
            std::fs::read_to_string(m.path().join("multi/lib/a.py")).unwrap(),
            "a = 1\n"
        );
        let name = src.path().file_name().unwrap().to_str().unwrap();
        assert!(!m.path().join("multi").join(name).exists());
        assert!(!plain.path(&format!("/multi/{name}")).exists());
    }
}

/// A mounted board named another way (`localhost:PORT` for a mount of
/// `127.0.0.1:PORT`) is still this user's mount: `ls` goes through it and
/// a second mount is refused naming it (both said "busy: another WebREPL
/// client", exit 4).
#[test]
fn a_mounted_board_under_another_spelling_is_still_the_mount() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/main.py"), "x = 1\n").unwrap();
    let m = Mount::start(&tb, &tb.addr(), &[]);
    let mp = m.path().display().to_string();
    let port = tb.addr().rsplit_once(':').unwrap().1.to_string();
    let other_name = format!("localhost:{port}");
    let o = m
        .cmd()
        .args(["ls", &format!("{other_name}:/")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).lines().any(|l| l == "main.py"), "{}", out(&o));
    let other = tempfile::tempdir().unwrap();
    let o = m
        .cmd()
        .args(["--daemon", &other_name, other.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", err(&o));
    assert_eq!(
        err(&o),
        format!(
            "webrepl-mount: ws://{other_name}/ is busy: your mount at {mp} holds it (a board takes one WebREPL client); \
             use that mount, or unmount it first"
        )
    );
    assert!(!common::mounted(other.path()));
}

/// The mount's `cmd` with a boards.toml naming its board `kit`.
fn named_mount_cmd(m: &Mount, tb: &TestBoard, home: &tempfile::TempDir) -> Command {
    let dir = home.path().join("webrepl-mount");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("boards.toml"),
        format!("[kit]\naddress = \"{}\"\n", tb.addr()),
    )
    .unwrap();
    let mut c = m.cmd();
    c.env("XDG_CONFIG_HOME", home.path()).stdin(Stdio::null());
    c
}

/// `repl MOUNTPOINT` (however written) is the mount's REPL, as `term`
/// (it said "cannot reach"); `exec` with only
/// a board or a mountpoint says the code is missing (it ran the word as
/// code: NameError, exit 11).
#[test]
fn repl_of_a_mount_is_its_term_and_exec_of_a_board_alone_wants_code() {
    let tb = TestBoard::start();
    let m = Mount::start(&tb, &tb.addr(), &[]);
    let home = tempfile::tempdir().unwrap();
    let mp = m.path().display().to_string();
    let parent = m.path().parent().unwrap();
    let name = m.path().file_name().unwrap().to_str().unwrap().to_string();
    let dot = format!("./{name}");
    for arg in [mp.as_str(), &name, &dot] {
        let o = named_mount_cmd(&m, &tb, &home)
            .args(["repl", arg])
            .current_dir(parent)
            .output()
            .unwrap();
        assert!(o.status.success(), "repl {arg}: {}", err(&o));
        assert!(
            out(&o).contains(&format!("The REPL of the board mounted on {mp}")),
            "repl {arg}: {}",
            out(&o)
        );
    }
    for arg in [mp.as_str(), &name, "kit"] {
        let o = named_mount_cmd(&m, &tb, &home)
            .args(["exec", arg])
            .current_dir(parent)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "exec {arg}: {}", err(&o));
        assert_eq!(
            err(&o),
            format!(
                "webrepl-mount: exec {arg}: the code to run is missing (webrepl-mount exec {arg} CODE; \
                 a file is webrepl-mount run {arg} FILE)"
            )
        );
    }
    let o = named_mount_cmd(&m, &tb, &home)
        .args(["exec", "print(6 * 7)"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "42\n");
}

/// `unmount kit`, kit a named board this user has mounted, unmounts that
/// board's mount (it said "not a mounted board").
#[test]
fn unmount_of_a_named_board_unmounts_its_mount() {
    let tb = TestBoard::start();
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let home = tempfile::tempdir().unwrap();
    let o = named_mount_cmd(&m, &tb, &home)
        .args(["unmount", "kit"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert!(m.wait().success());
    assert!(!common::mounted(m.path()));
}

/// `tree` of a missing path or of a file, on a board or in a mount, says
/// so and exits 1 as `ls` and the other file commands (it exited 7, or 2
/// for a board's file and 12 for a mount's).
#[test]
fn tree_of_a_missing_path_or_a_file_exits_1_as_ls() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/main.py"), "x = 1\n").unwrap();
    let a = tb.addr();
    for target in [format!("{a}:/nosuch"), format!("{a}:/main.py")] {
        for cmd in ["tree", "ls"] {
            let o = wm(&tb, &[cmd, &target]);
            let code = if cmd == "ls" && target.ends_with("main.py") {
                0
            } else {
                1
            };
            assert_eq!(o.status.code(), Some(code), "{cmd} {target}: {}", err(&o));
        }
    }
    let o = wm(&tb, &["tree", &format!("{a}:/main.py")]);
    assert_eq!(
        err(&o),
        format!("webrepl-mount: {a}:/main.py: not a directory (ENOTDIR)")
    );
    let m = Mount::start(&tb, &a, &[]);
    let mp = m.path().display().to_string();
    for target in [format!("{mp}/nosuch"), format!("{mp}/main.py")] {
        let o = m.cmd().args(["tree", &target]).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{target}: {}", err(&o));
        assert_eq!(out(&o), "");
    }
}
