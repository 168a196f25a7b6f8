//! Another local user (`nobody`, through setpriv) against a mount of ours:
//! our runtime directory taken first, our logs and state, the page's token.

mod common;

use common::{Mount, TestBoard, eventually};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};

const NOBODY: u32 = 65534;

fn as_nobody() -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
    c
}

/// A /tmp of the test's own: sticky and open to all, as /tmp is.
fn shared_tmp() -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tmp");
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    t
}

fn uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

/// Without XDG_RUNTIME_DIR the socket lives in TMP/webrepl-mount-UID; a
/// directory of that name that nobody made first is refused by the mount
/// and never used by a client (which would send keys to, and believe the
/// answers of, nobody's socket).
#[test]
fn a_runtime_directory_another_user_made_first_is_refused() {
    let tb = TestBoard::start();
    let tmp = shared_tmp();
    let taken = tmp.path().join(format!("webrepl-mount-{}", uid()));
    let o = as_nobody()
        .args(["mkdir", "-m", "0755"])
        .arg(&taken)
        .output()
        .expect("setpriv");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // The mount refuses, naming the directory and the fix.
    let mp = tempfile::tempdir().expect("mountpoint");
    let state = tempfile::tempdir().expect("state");
    let mut child = Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
        .env("WEBREPL_PASSWORD", &tb.password)
        .env("XDG_STATE_HOME", state.path())
        .env_remove("XDG_RUNTIME_DIR")
        .env("TMPDIR", tmp.path())
        .arg(tb.addr())
        .arg(mp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mount");
    let mut status = None;
    eventually(20, "the mount to give up", || {
        status = child.try_wait().expect("wait");
        status.is_some() || common::mounted(mp.path())
    });
    if common::mounted(mp.path()) {
        let _ = Command::new("fusermount3")
            .arg("-u")
            .arg(mp.path())
            .status();
        let _ = child.wait();
        panic!("mounted with its socket in a directory nobody owns");
    }
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("stderr");
    assert!(!status.expect("exited").success());
    assert!(
        err.contains(&taken.display().to_string()) && err.contains("belongs to uid 65534"),
        "{err}"
    );
    assert_eq!(
        std::fs::metadata(&taken).expect("still there").uid(),
        NOBODY
    );

    let m = Mount::start(&tb, &tb.addr(), &[]);
    // A client of our real mount, run where XDG_RUNTIME_DIR is not set,
    // finds nobody's socket under the mountpoint's name: it must not talk.
    let name = webrepl_mount::terminal::sidecar::socket_path(m.path());
    let sock = taken.join(name.file_name().expect("socket name"));
    let talked = tmp.path().join("talked");
    let mut fake = as_nobody()
        .arg("/usr/bin/python3")
        .arg("-c")
        .arg(
            "import socket,sys\n\
             s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(4)\n\
             print('ready', flush=True)\n\
             while True:\n\
             \x20   c,_=s.accept(); open(sys.argv[2],'a').write('x'); c.sendall(b'out 3432\\nerr \\nok\\n'); c.close()\n",
        )
        .arg(&sock)
        .arg(&talked)
        .stdout(Stdio::piped())
        .spawn()
        .expect("nobody's socket");
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(fake.stdout.take().expect("stdout")),
        &mut ready,
    )
    .expect("ready");
    std::fs::write(&talked, "").expect("talked");
    let client = |args: &[&str]| {
        m.cmd()
            .env_remove("XDG_RUNTIME_DIR")
            .env("TMPDIR", tmp.path())
            .args(args)
            .arg(m.path())
            .args(if args == ["exec"] {
                &["print(1)"][..]
            } else {
                &[][..]
            })
            .stdin(Stdio::null())
            .output()
            .expect("client")
    };
    for verb in [&["exec"][..], &["status"], &["unmount"]] {
        let o = client(verb);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{verb:?} believed nobody's socket");
        assert!(err.contains("belongs to uid 65534"), "{verb:?}: {err}");
    }
    let _ = fake.kill();
    let _ = fake.wait();
    assert_eq!(std::fs::read_to_string(&talked).expect("talked"), "");
    let mut m = m;
    assert!(common::mounted(m.path()), "unmounted by nobody");
    assert!(m.unmount().status.success());
}
