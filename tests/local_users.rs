//! Another local user (`nobody`, through setpriv) against a mount of ours:
//! our runtime directory taken first, our logs and state, the page's token.

mod common;

use common::{Mount, TestBoard, eventually};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::RwLock;

/// A process that forks (every other test here runs commands) gives its
/// children a copy of each open descriptor, and their close at exec is a
/// FUSE flush: a test holding files open mid-edit on a mount runs alone,
/// or a flush from another test's fork sends a file at whatever size it
/// has then (a 64 MiB version, minutes of upload, that other.py waited
/// behind in `a_huge_truncate_...`).
static FORKS: RwLock<()> = RwLock::new(());

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
/// directory of that name that nobody made first is never used: the mount
/// makes a private directory of its own beside it (as ssh-agent does) and
/// records its name in the user's state directory, where the clients find
/// it; a client that finds no such record never talks to nobody's socket.
#[test]
fn a_runtime_directory_another_user_made_first_is_never_used() {
    let _forks = FORKS.read().unwrap_or_else(|e| e.into_inner());
    let tb = TestBoard::start();
    let tmp = shared_tmp();
    let taken = tmp.path().join(format!("webrepl-mount-{}", uid()));
    let o = as_nobody()
        .args(["mkdir", "-m", "0755"])
        .arg(&taken)
        .output()
        .expect("setpriv");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // The mount goes ahead, its socket in a directory of its own.
    let mp = tempfile::tempdir().expect("mountpoint");
    let state = tempfile::tempdir().expect("state");
    let ours = |c: &mut Command| {
        c.env("WEBREPL_PASSWORD", &tb.password)
            .env("XDG_STATE_HOME", state.path())
            .env_remove("XDG_RUNTIME_DIR")
            .env("TMPDIR", tmp.path())
            .stdin(Stdio::null());
    };
    let mut mount = Command::new(env!("CARGO_BIN_EXE_webrepl-mount"));
    ours(&mut mount);
    let log = tempfile::NamedTempFile::new().expect("log");
    let mut child = common::Reaped(
        mount
            .arg(tb.addr())
            .arg(mp.path())
            .stdout(Stdio::null())
            .stderr(log.reopen().expect("log"))
            .spawn()
            .expect("mount"),
    );
    let _gone = common::Unmounted(mp.path().to_path_buf());
    eventually(20, "the mount", || {
        if let Ok(Some(s)) = child.try_wait() {
            panic!(
                "the mount exited with {s}: {}",
                std::fs::read_to_string(log.path()).unwrap_or_default()
            );
        }
        common::mounted(mp.path()) && std::fs::metadata(mp.path()).is_ok()
    });
    let record = state.path().join("webrepl-mount/runtime-dir");
    let fresh = std::path::PathBuf::from(std::fs::read_to_string(&record).expect("recorded"));
    assert_eq!(fresh.parent(), Some(tmp.path()), "{}", fresh.display());
    let m = std::fs::metadata(&fresh).expect("the fresh directory");
    assert_eq!((m.uid(), m.mode() & 0o777), (uid(), 0o700));
    assert_eq!(mode(&record), 0o600);
    assert!(
        std::fs::read_dir(&taken)
            .expect("nobody's")
            .next()
            .is_none(),
        "something of ours went into nobody's directory"
    );
    assert_eq!(
        std::fs::metadata(&taken).expect("still there").uid(),
        NOBODY
    );
    // The clients of the same user find it.
    let mut status = Command::new(env!("CARGO_BIN_EXE_webrepl-mount"));
    ours(&mut status);
    let o = status
        .arg("status")
        .arg(mp.path())
        .output()
        .expect("status");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut unmount = Command::new(env!("CARGO_BIN_EXE_webrepl-mount"));
    ours(&mut unmount);
    let o = unmount
        .arg("unmount")
        .arg(mp.path())
        .output()
        .expect("unmount");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(child.wait().expect("daemon").success());

    let m = Mount::start(&tb, &tb.addr(), &[]);
    // A client of our real mount, run where XDG_RUNTIME_DIR is not set,
    // finds nobody's socket under the mountpoint's name: it must not talk.
    let name = webrepl_mount::terminal::sidecar::socket_path(m.path());
    let sock = taken.join(name.file_name().expect("socket name"));
    let talked = tmp.path().join("talked");
    let fake = as_nobody()
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
    let mut fake = common::Reaped(fake);
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
    for verb in [&["exec"][..], &["status"], &["term"], &["unmount"]] {
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

/// `path`'s mode bits.
fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("meta").mode() & 0o7777
}

/// Every file under `dir`, itself included.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut all = vec![dir.to_path_buf()];
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        if e.file_type().expect("type").is_dir() {
            all.extend(walk(&e.path()));
        } else {
            all.push(e.path());
        }
    }
    all
}

/// A daemon's log and state are ours alone, and the page's token is in
/// neither, nor on xdg-open's command line (which `ps` shows everyone).
#[test]
fn logs_and_state_are_private_and_the_token_stays_off_logs_and_argv() {
    let _forks = FORKS.read().unwrap_or_else(|e| e.into_inner());
    let tb = TestBoard::start();
    let (mut m, out) = Mount::daemon(&tb, &tb.addr(), &["--web", "0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    m.status_until(10, |s| s.contains("page: http://127.0.0.1:"));
    std::fs::write(m.path().join("main.py"), "print(1)\n").expect("write");
    let web = m.cmd().arg("web").arg(m.path()).output().expect("web");
    let url = String::from_utf8_lossy(&web.stdout).trim().to_string();
    let (base, token) = url.split_once('#').expect("a token in what `web` prints");
    assert!(token.len() >= 32, "{url}");

    let state = m.state.path().join("webrepl-mount");
    let log = walk(&state)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "log"))
        .expect("the daemon's log");
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains(&format!("page: {base}")), "{text}");
    assert!(!text.contains(token), "the token is in the log: {text}");
    for p in walk(&state) {
        let want = if p.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&p) & 0o077, 0, "{} is {:o}", p.display(), mode(&p));
        assert_eq!(mode(&p) & want, want, "{}", p.display());
    }
    let o = as_nobody().arg("cat").arg(&log).output().expect("setpriv");
    assert!(!o.status.success(), "nobody read the log");

    // `web --open` through a fake xdg-open that records what it was given.
    let bin = tempfile::tempdir().expect("bin");
    let record = bin.path().join("argv");
    let fake = bin.path().join("xdg-open");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {}.tmp\nmv {0}.tmp {0}\n",
            record.display()
        ),
    )
    .expect("fake xdg-open");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = m
        .cmd()
        .env("PATH", path)
        .args(["web", "--open"])
        .arg(m.path())
        .output()
        .expect("web --open");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    eventually(10, "xdg-open to run", || record.exists());
    let argv = std::fs::read_to_string(&record).expect("argv");
    assert!(
        !argv.contains(token),
        "the token on xdg-open's command line: {argv}"
    );
    let opened = Path::new(argv.trim());
    let page = std::fs::read_to_string(opened).expect("the redirect file");
    assert!(page.contains(&format!("url={url}")), "{page}");
    assert_eq!(mode(opened), 0o600);
    assert_eq!(mode(opened.parent().expect("dir")), 0o700);
    assert!(m.unmount().status.success());
    // The page ended with the mount: its token does not outlive it on disk.
    assert!(!opened.exists(), "{} outlived the mount", opened.display());
}

/// A truncate or sparse write far past any board's flash is EFBIG, not an
/// allocation that aborts the daemon with another file's unsaved data.
#[test]
fn a_huge_truncate_is_efbig_and_the_daemon_keeps_other_unsaved_files() {
    let _forks = FORKS.write().unwrap_or_else(|e| e.into_inner());
    use std::io::Write;
    let tb = TestBoard::start();
    std::fs::write(tb.path("/main.py"), "print('main')\n").expect("seed");
    let mut m = Mount::start(&tb, &tb.addr(), &["-o", "allow_other"]);
    let mut other = std::fs::File::create(m.path().join("other.py")).expect("open");
    other.write_all(b"unsaved = 1\n").expect("write");

    let main = m.path().join("main.py");
    let o = Command::new("truncate")
        .args(["-s", "100G"])
        .arg(&main)
        .output()
        .expect("truncate");
    assert!(!o.status.success(), "a 100 GB file in the cache");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("File too large"), "{err}");
    // A sparse write: one byte at 100 GB.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&main)
        .expect("open");
    let e = std::os::unix::fs::FileExt::write_at(&f, b"x", 100 << 30).expect_err("written");
    assert_eq!(e.raw_os_error(), Some(libc::EFBIG), "{e}");
    drop(f);

    // Every file under the bound, all of them over the total: the fifth
    // 64 MiB file is ENOSPC, and nothing of it is allocated.
    let big: Vec<std::fs::File> = (0..5)
        .map(|i| std::fs::File::create(m.path().join(format!("big{i}.bin"))).expect("create"))
        .collect();
    for f in &big[..4] {
        f.set_len(64 << 20).expect("64 MiB unsent, four times");
    }
    let e = big[4].set_len(64 << 20).expect_err("a fifth 64 MiB held");
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    for f in &big {
        f.set_len(0).expect("emptied");
    }
    for f in big {
        common::close(f).expect("close");
    }

    other
        .write_all(b"more = 2\n")
        .expect("the mount still there");
    common::close(other).expect("close");
    // close() waits for its upload at most --close-wait: then it lands.
    eventually(20, "other.py on the board", || {
        std::fs::read(tb.path("/other.py")).is_ok_and(|d| d == b"unsaved = 1\nmore = 2\n")
    });
    assert_eq!(
        std::fs::read(tb.path("/main.py")).expect("main"),
        b"print('main')\n"
    );
    assert!(m.unmount().status.success());
}

/// No core dump or ptrace of a process that holds the password: it is not
/// dumpable, so its /proc files belong to root, not to its user.
#[test]
fn a_process_holding_the_password_is_not_dumpable() {
    let _forks = FORKS.read().unwrap_or_else(|e| e.into_inner());
    let tb = TestBoard::start();
    let home = shared_tmp();
    let web = as_nobody()
        .arg(env!("CARGO_BIN_EXE_webrepl-mount"))
        .args(["web", &tb.addr(), "--listen", "127.0.0.1:0"])
        .env("WEBREPL_PASSWORD", &tb.password)
        .env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("web");
    let mut web = common::Reaped(web);
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(web.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("the page's address");
    assert!(line.starts_with("http://"), "not logged in: {line:?}");
    let environ = format!("/proc/{}/environ", web.id());
    let owner = std::fs::metadata(&environ).expect("environ").uid();
    assert_eq!(owner, 0, "dumpable: {environ} belongs to uid {owner}");
    assert!(web.try_wait().expect("wait").is_none(), "web died");
    let o = as_nobody().arg("cat").arg(&environ).output().expect("cat");
    assert!(!o.status.success(), "its own user read its environment");
    // SAFETY: signals our own child.
    unsafe { libc::kill(web.id() as i32, libc::SIGINT) };
    let _ = web.wait();
}

/// Another user's 1100 half-sent requests to the page's port: the daemon
/// still answers `status` and `exec`, and the requests are dropped once
/// their headers are late.
#[test]
fn half_sent_requests_to_the_page_neither_starve_the_daemon_nor_stay() {
    let _forks = FORKS.read().unwrap_or_else(|e| e.into_inner());
    use std::io::{BufRead, BufReader, Read, Write};
    let tb = TestBoard::start();
    let m = Mount::start(&tb, &tb.addr(), &["--web", "0"]);
    let status = m.status_until(10, |s| s.contains("page: http://127.0.0.1:"));
    let port: u16 = status
        .split("page: http://127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("the page's port");
    let mut flood = as_nobody()
        .arg("/usr/bin/python3")
        .arg("-c")
        .arg(
            "import resource,select,socket,sys,time\n\
             s,h=resource.getrlimit(resource.RLIMIT_NOFILE); resource.setrlimit(resource.RLIMIT_NOFILE,(h,h))\n\
             socks=[]\n\
             for i in range(1100):\n\
             \x20   c=socket.create_connection(('127.0.0.1',int(sys.argv[1])))\n\
             \x20   try: c.sendall(b'GET / HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n')\n\
             \x20   except OSError: pass\n\
             \x20   socks.append(c)\n\
             print('sent',flush=True)\n\
             p=select.poll(); live={c.fileno():c for c in socks}\n\
             for f in live: p.register(f,select.POLLIN)\n\
             while live:\n\
             \x20   for f,_ in p.poll(1000):\n\
             \x20       try: d=live[f].recv(4096)\n\
             \x20       except OSError: d=b''\n\
             \x20       if not d: p.unregister(f); live.pop(f).close()\n\
             \x20   print('open',len(live),flush=True)\n\
             print('all closed',flush=True)\n",
        )
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("nobody's flood");
    let mut out = BufReader::new(flood.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("sent");
    assert_eq!(line.trim(), "sent");
    // Our own request, from the same 127.0.0.1, while nobody's are held:
    // they count against nobody, not against the address.
    let page_ok = || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        write!(
            s,
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer.starts_with("HTTP/1.1 200")
    };
    assert!(page_ok(), "nobody's flood locked us out of the page");

    // The daemon's own work goes on while they are held.
    for args in [&["status"][..], &["exec"]] {
        let mut c = m
            .cmd()
            .args(args)
            .arg(m.path())
            .args(if args == ["exec"] {
                &["print(6*7)"][..]
            } else {
                &[]
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("client");
        let mut done = None;
        eventually(15, &format!("{args:?} to answer"), || {
            done = c.try_wait().expect("wait");
            done.is_some()
        });
        let mut text = String::new();
        c.stdout
            .take()
            .expect("out")
            .read_to_string(&mut text)
            .expect("read");
        assert!(done.expect("exit").success(), "{args:?}: {text}");
        assert!(
            text.contains(if args == ["exec"] { "42" } else { "cache:" }),
            "{text}"
        );
    }
    // Their headers never come: every connection is closed within the
    // header time-out (10 s), none held until nobody gives up.
    let started = std::time::Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut l = String::new();
        while out.read_line(&mut l).is_ok_and(|n| n > 0) {
            let _ = tx.send(l.trim().to_string());
            l.clear();
        }
    });
    let mut last = String::new();
    while last != "all closed" {
        match rx.recv_timeout(std::time::Duration::from_secs(30)) {
            Ok(l) => last = l,
            Err(_) => break,
        }
        assert!(
            started.elapsed().as_secs() < 25,
            "nobody's connections still held: {last}"
        );
    }
    assert_eq!(last, "all closed");
    let _ = flood.wait();
    // And the page serves again.
    assert!(page_ok());
    let mut m = m;
    assert!(m.unmount().status.success());
}

/// A board file the cache could not hold (a sparse 20 GB file grew the
/// daemon's memory until it ran out): reading it is EFBIG at once, and
/// the daemon and its other files are untouched.
#[test]
fn a_board_file_larger_than_the_cache_holds_is_efbig_not_memory() {
    let _forks = FORKS.read().unwrap_or_else(|e| e.into_inner());
    let tb = TestBoard::start();
    std::fs::write(tb.path("/main.py"), "print('main')\n").expect("seed");
    let sparse = std::fs::File::create(tb.path("/sparse.bin")).expect("sparse");
    sparse.set_len(1 << 30).expect("a 1 GB hole");
    drop(sparse);
    let m = Mount::start(&tb, &tb.addr(), &[]);
    let e = std::fs::read(m.path().join("sparse.bin")).expect_err("a 1 GB read");
    assert_eq!(e.raw_os_error(), Some(libc::EFBIG), "{e}");
    assert_eq!(
        std::fs::read(m.path().join("main.py")).expect("main"),
        b"print('main')\n"
    );
}
