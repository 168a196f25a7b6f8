//! The Linux toolbox around the mount: named boards, `-o` options as mount(8)
//! writes them, an /etc/fstab line mounted with `mount` and removed with
//! `umount`, completions and the man page.

mod common;

use common::piped::Piped;
use common::{TestBoard, eventually, mounted};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// A home of the test's own: boards.toml naming `tb` as `kitchen`, its
/// password in a file next to it.
fn config_with_kitchen(tb: &TestBoard, options: &str) -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("config home");
    let dir = home.path().join("webrepl-mount");
    std::fs::create_dir_all(&dir).expect("config dir");
    std::fs::write(dir.join("kitchen.pass"), format!("{}\n", tb.password)).expect("pass");
    std::fs::write(
        dir.join("boards.toml"),
        format!(
            "# the board on the fridge\n[kitchen]\naddress = \"{}\"\npassword_file = \"kitchen.pass\"\noptions = \"{options}\"\n",
            tb.addr()
        ),
    )
    .expect("boards.toml");
    home
}

/// webrepl-mount with no password of its own: only boards.toml has it.
fn wm(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
        .args(args)
        .env_remove("WEBREPL_PASSWORD")
        .env("XDG_CONFIG_HOME", config)
        .stdin(Stdio::null())
        .output()
        .expect("run webrepl-mount")
}

/// What a mount from `home`'s boards.toml needs: no password but the
/// file's, state and sockets of its own.
fn with_home<'a>(cmd: &'a mut Command, home: &Path, state: &Path) -> &'a mut Command {
    cmd.env_remove("WEBREPL_PASSWORD")
        .env("XDG_CONFIG_HOME", home)
        .env("XDG_STATE_HOME", state)
        .env("XDG_RUNTIME_DIR", state)
        .stdin(Stdio::null())
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_named_board_serves_cp_ls_exec_and_repl() {
    let tb = TestBoard::start();
    let home = config_with_kitchen(&tb, "");
    let local = tempfile::tempdir().expect("local");
    let main = local.path().join("main.py");
    std::fs::write(&main, "print('from the kitchen')\n").expect("write");
    ok(&wm(
        home.path(),
        &["cp", &main.display().to_string(), "kitchen:"],
    ));
    assert_eq!(
        std::fs::read(tb.path("/main.py")).expect("on the board"),
        b"print('from the kitchen')\n"
    );
    assert!(ok(&wm(home.path(), &["ls", "kitchen:"])).contains("main.py"));
    assert_eq!(
        ok(&wm(home.path(), &["exec", "kitchen", "print(6*7)"])),
        "42\n"
    );
    // The REPL by name, driven through a pipe; Ctrl-] leaves once the
    // answer is there.
    let mut c = Command::new(env!("CARGO_BIN_EXE_webrepl-mount"));
    c.args(["term", "kitchen"])
        .env_remove("WEBREPL_PASSWORD")
        .env("XDG_CONFIG_HOME", home.path());
    let mut term = Piped::spawn(c);
    term.type_keys(b"print(7*6)\r");
    eventually(10, "the answer 42 in the REPL", || {
        term.text().contains("\n42")
    });
    term.type_keys(b"\x1d");
    let status = term.child.wait().expect("term exit");
    assert!(status.success(), "term exited with {status}");
    // A name that is not in the file is a host name, as before.
    let o = wm(
        home.path(),
        &["--timeout", "2", "exec", "pantry.invalid", "1"],
    );
    assert!(!o.status.success());
    // A broken file is named, with the line.
    std::fs::write(
        home.path().join("webrepl-mount/boards.toml"),
        "[kitchen]\nadress = \"x\"\n",
    )
    .expect("rewrite");
    let o = wm(home.path(), &["exec", "kitchen", "1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("boards.toml") && err.contains("adress"),
        "{err}"
    );
}

#[test]
fn a_named_board_mounts_with_its_options_and_the_command_line_adds_its_own() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/boot.py"), "# boot\n").expect("seed");
    let home = config_with_kitchen(&tb, "ro");
    // The password from boards.toml, with the board's own options.
    let dir = tempfile::tempdir().expect("mountpoint");
    let state = tempfile::tempdir().expect("state");
    let mut child = common::Reaped(
        with_home(
            Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
                .args(["kitchen", &dir.path().display().to_string()])
                .args(["-o", "uid=4321,gid=4321"]),
            home.path(),
            state.path(),
        )
        .spawn()
        .expect("mount"),
    );
    let _gone = common::Unmounted(dir.path().to_path_buf());
    eventually(10, "the named mount", || {
        mounted(dir.path()) && dir.path().join("boot.py").exists()
    });
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(dir.path().join("boot.py")).expect("stat");
    assert_eq!((md.uid(), md.gid()), (4321, 4321));
    let e = std::fs::write(dir.path().join("new.py"), "x").expect_err("read-only");
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
    let line = mounts
        .lines()
        .find(|l| l.contains(&*dir.path().to_string_lossy()))
        .expect("listed");
    assert!(
        line.contains(&format!("webrepl:{} ", tb.addr())) && line.contains(" ro,"),
        "{line}"
    );
    ok(&wm(
        home.path(),
        &["unmount", &dir.path().display().to_string()],
    ));
    assert!(child.wait().expect("exit").success());
    // An option nobody knows is refused before anything connects.
    let o = wm(
        home.path(),
        &["kitchen", "/nonexistent", "-o", "rw,frobnicate"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("\"frobnicate\""), "{err}");
}

/// The fstab line a user writes, mounted by `mount` (through mount.fuse3)
/// and removed by `umount`, which flushes what the mount still held.
#[test]
fn an_fstab_line_mounts_with_mount_and_umount_flushes() {
    let tb = TestBoard::start();
    let home = config_with_kitchen(&tb, "");
    let dir = tempfile::tempdir().expect("mountpoint");
    let state = tempfile::tempdir().expect("state");
    let fstab = state.path().join("fstab");
    // `prog#source` with type fuse is the form that names the binary by
    // path; `fuse.webrepl-mount` runs the same command found in PATH.
    std::fs::write(
        &fstab,
        format!(
            "{}#kitchen {} fuse noauto,user,_netdev,nofail,writeback_delay=60,x-systemd.automount 0 0\n",
            env!("CARGO_BIN_EXE_webrepl-mount"),
            dir.path().display()
        ),
    )
    .expect("fstab");
    // mount waits for its helper: one that stayed in the foreground would
    // hang it.
    let o = with_home(
        Command::new("timeout")
            .args(["30", "mount", "-T"])
            .arg(&fstab)
            .arg(dir.path()),
        home.path(),
        state.path(),
    )
    .output()
    .expect("mount");
    assert!(
        o.status.success(),
        "mount: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let _gone = common::Unmounted(dir.path().to_path_buf());
    // mount returned: the mount is there already, in the background.
    assert!(mounted(dir.path()));
    let file = dir.path().join("late.py");
    common::write_and_close(&file, b"print('kept')\n").expect("write");
    // Held back by writeback_delay=60: not on the board yet.
    assert!(!tb.path("/late.py").exists());
    let o = Command::new("umount")
        .arg(dir.path())
        .output()
        .expect("umount");
    assert!(
        o.status.success(),
        "umount: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    eventually(10, "the flush after umount", || {
        std::fs::read(tb.path("/late.py")).is_ok_and(|d| d == b"print('kept')\n")
    });
    assert!(!mounted(dir.path()));
}

#[test]
fn completions_and_the_man_page() {
    let none = Path::new("/nonexistent");
    let bash = ok(&wm(none, &["completions", "bash"]));
    assert!(
        bash.contains("webrepl-mount") && bash.contains("--cache-size"),
        "{bash}"
    );
    let man = ok(&wm(none, &["man"]));
    assert!(man.starts_with(".ie") || man.contains(".TH"), "{man}");
    assert!(man.contains("webrepl\\-mount"), "{man}");
}
