//! Test support: a real MicroPython WebREPL board (scripts/build-board.sh)
//! per test, and the link emulator (examples/linkemu.rs).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;
use webrepl_mount::session::{Config, Session, Target};

pub mod browser;
pub mod piped;
pub mod proxy;

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn board_binary() -> &'static Path {
    board_binary_for(Variant::Esp32)
}

/// Which firmware the test board models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The ESP32-like board: binary transfers as fast as the link.
    Esp32,
    /// The same board built as the ESP8266 port is, sleeping 20 ms after
    /// every binary transfer chunk (`MICROPY_PY_WEBREPL_DELAY`).
    Esp8266,
    /// The ESP32-like board without the `deflate` module: uploads go raw.
    NoDeflate,
}

pub fn board_binary_for(variant: Variant) -> &'static Path {
    static ESP32: OnceLock<PathBuf> = OnceLock::new();
    static ESP8266: OnceLock<PathBuf> = OnceLock::new();
    static NO_DEFLATE: OnceLock<PathBuf> = OnceLock::new();
    let (cell, name) = match variant {
        Variant::Esp32 => (&ESP32, "esp32"),
        Variant::Esp8266 => (&ESP8266, "esp8266"),
        Variant::NoDeflate => (&NO_DEFLATE, "nodeflate"),
    };
    cell.get_or_init(|| {
        let out = Command::new(repo().join("scripts/build-board.sh"))
            .arg(name)
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/build-board.sh");
        assert!(out.status.success(), "building the test board failed");
        let path = String::from_utf8(out.stdout).expect("utf-8 path");
        PathBuf::from(path.lines().last().expect("board path").trim())
    })
}

/// mpy-cross as scripts/build-board.sh builds it beside the port.
pub fn mpy_cross() -> PathBuf {
    board_binary();
    let cache = std::env::var_os("BOARD_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/board-cache"));
    std::fs::read_dir(&cache)
        .expect("the board cache")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("mpy-cross/build/mpy-cross"))
        .find(|p| p.is_file())
        .expect("mpy-cross in the board cache")
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// One MicroPython process playing one board, on a fresh root directory.
pub struct TestBoard {
    child: Child,
    pub port: u16,
    pub root: tempfile::TempDir,
    pub password: String,
    log: tempfile::NamedTempFile,
    /// What the board's listener logs (connections, rejected clients).
    errors: tempfile::NamedTempFile,
    ring: Option<usize>,
    tmpfs: bool,
    heap_kb: usize,
    linger_ms: u32,
    variant: Variant,
    /// Bytes a second its flash writes (0: as fast as the host's disk).
    flash_write: u32,
}

/// The test board's Python heap: an ESP32's with Wi-Fi up has about
/// 100-110 KB free (this 64-bit port's objects are bigger, so 128K leaves
/// a little less room than an ESP32 has). `TEST_BOARD_HEAP_KB=64` runs any
/// test on a small board (scripts/test.sh runs the deploy and mount tests
/// so).
pub const HEAP_KB: usize = 128;

fn heap_kb() -> usize {
    std::env::var("TEST_BOARD_HEAP_KB")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(HEAP_KB)
}
/// A board short of RAM (an ESP8266-class board, or one whose program
/// holds much of the heap).
pub const SMALL_HEAP_KB: usize = 64;

/// Logs of the library on stderr when RUST_LOG asks for them.
fn logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_writer(std::io::stderr)
                .try_init();
        }
    });
}

impl TestBoard {
    pub fn start() -> TestBoard {
        Self::with_ring(None)
    }

    /// `ring`: the board's input buffer in bytes (an ESP32 keeps about 260).
    pub fn with_ring(ring: Option<usize>) -> TestBoard {
        let root = tempfile::tempdir().expect("tempdir");
        Self::on(root, ring, None, heap_kb(), 0)
    }

    /// An ESP8266-like board: binary transfers throttled as that port's.
    pub fn esp8266() -> TestBoard {
        let root = tempfile::tempdir().expect("tempdir");
        Self::on_variant(root, None, None, heap_kb(), 0, Variant::Esp8266, 0)
    }

    /// A board with a Python heap of `kb` KB.
    pub fn with_heap_kb(kb: usize) -> TestBoard {
        let root = tempfile::tempdir().expect("tempdir");
        Self::on(root, None, None, kb, 0)
    }

    /// A board whose firmware has no `deflate` module.
    pub fn without_deflate() -> TestBoard {
        let root = tempfile::tempdir().expect("tempdir");
        Self::on_variant(root, None, None, heap_kb(), 0, Variant::NoDeflate, 0)
    }

    /// A board that, like a real one, takes `ms` to notice that its client
    /// has gone, refusing the next one meanwhile.
    pub fn lingering(ms: u32) -> TestBoard {
        let root = tempfile::tempdir().expect("tempdir");
        Self::on(root, None, None, heap_kb(), ms)
    }

    /// A board whose flash writes `rate` bytes a second, as an ESP32's
    /// littlefs does (tens of KB/s), not at the host disk's speed.
    pub fn with_flash_write(rate: u32) -> TestBoard {
        let root = tempfile::tempdir().expect("tempdir");
        Self::on_variant(root, None, None, heap_kb(), 0, Variant::Esp32, rate)
    }

    /// A board whose flash holds only `kb` KB (a tmpfs as its root).
    pub fn with_flash_kb(kb: usize) -> TestBoard {
        Self::with_flash_and_heap_kb(kb, heap_kb())
    }

    /// A board whose flash holds only `kb` KB and whose heap `heap` KB.
    pub fn with_flash_and_heap_kb(kb: usize, heap: usize) -> TestBoard {
        let root = tempfile::tempdir().expect("tempdir");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kb}k"), "tmpfs"])
            .arg(root.path())
            .status()
            .expect("mount tmpfs");
        assert!(ok.success(), "mounting a tmpfs needs root");
        let mut b = Self::on(root, None, None, heap, 0);
        b.tmpfs = true;
        b
    }

    fn on(
        root: tempfile::TempDir,
        ring: Option<usize>,
        port: Option<u16>,
        heap_kb: usize,
        linger_ms: u32,
    ) -> TestBoard {
        Self::on_variant(root, ring, port, heap_kb, linger_ms, Variant::Esp32, 0)
    }

    fn on_variant(
        root: tempfile::TempDir,
        ring: Option<usize>,
        port: Option<u16>,
        heap_kb: usize,
        linger_ms: u32,
        variant: Variant,
        flash_write: u32,
    ) -> TestBoard {
        logs();
        let password = format!("pw{}", std::process::id() % 10000);
        for _ in 0..5 {
            let port = port.unwrap_or_else(free_port);
            let mut cmd = Command::new(board_binary_for(variant));
            cmd.arg("-X")
                .arg(format!("heapsize={heap_kb}K"))
                .arg(repo().join("scripts/board/listener.py"))
                .arg(port.to_string())
                .arg(&password)
                .arg(root.path())
                .env("WEBREPL_BOARD_LINGER_MS", linger_ms.to_string())
                .env("WEBREPL_BOARD_FLASH_WRITE", flash_write.to_string());
            if let Some(r) = ring {
                cmd.arg(r.to_string());
            }
            let errors = tempfile::NamedTempFile::new().expect("log file");
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(errors.reopen().expect("log file"))
                .spawn()
                .expect("start board");
            let stdout = child.stdout.take().expect("stdout");
            let mut lines = BufReader::new(stdout);
            let mut first = String::new();
            let _ = lines.read_line(&mut first);
            if first.starts_with("board ready") {
                // Keep what the board prints (its REPL's view), for failures.
                let log = tempfile::NamedTempFile::new().expect("log file");
                let mut sink = log.reopen().expect("log file");
                std::thread::spawn(move || std::io::copy(&mut lines, &mut sink));
                return TestBoard {
                    child,
                    port,
                    root,
                    password,
                    log,
                    errors,
                    ring,
                    tmpfs: false,
                    heap_kb,
                    linger_ms,
                    variant,
                    flash_write,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            eprint!(
                "{}",
                std::fs::read_to_string(errors.path()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the test board did not start");
    }

    /// The board restarts (power cycle): same port, same flash.
    pub fn restart(&mut self) {
        let root = std::mem::replace(&mut self.root, tempfile::tempdir().expect("tempdir"));
        let tmpfs = std::mem::take(&mut self.tmpfs);
        self.replace(root).close().ok();
        self.tmpfs = tmpfs;
    }

    /// Another board on the same port (every ESP in access-point mode is
    /// 192.168.4.1): one with the flash `root`. Returns the flash of the
    /// board it replaces.
    pub fn swap_board(&mut self, root: tempfile::TempDir) -> tempfile::TempDir {
        self.replace(root)
    }

    /// A new board process on this port, with the flash `root`; returns
    /// the old flash (a tmpfs stays mounted: the caller's to keep or drop).
    fn replace(&mut self, root: tempfile::TempDir) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut fresh = Self::on_variant(
            root,
            self.ring,
            Some(self.port),
            self.heap_kb,
            self.linger_ms,
            self.variant,
            self.flash_write,
        );
        std::mem::swap(self, &mut fresh);
        // `fresh` is now the old board: its flash goes back to the caller.
        let old = std::mem::replace(&mut fresh.root, tempfile::tempdir().expect("tempdir"));
        fresh.tmpfs = false;
        old
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Files the board's process holds open now (its PUT's file while
    /// the data comes in), as host paths.
    pub fn open_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| {
                d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A file or directory of the board, seen from the host.
    pub fn path(&self, board_path: &str) -> PathBuf {
        self.root.path().join(board_path.trim_start_matches('/'))
    }

    /// The part files (and slices) in a directory of the board.
    pub fn parts(&self, dir: &str) -> Vec<String> {
        std::fs::read_dir(self.path(dir))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".wrm-"))
            .collect()
    }

    pub fn config(&self) -> Config {
        self.config_via(self.port)
    }

    /// What the board's REPL has printed so far, on every connection
    /// (its echo of what was typed too).
    pub fn terminal_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.log.path()).unwrap_or_default()).into_owned()
    }

    /// What the board's listener has logged (on its stderr) so far.
    pub fn listener_log(&self) -> String {
        std::fs::read_to_string(self.errors.path()).unwrap_or_default()
    }

    pub fn config_via(&self, port: u16) -> Config {
        let target = Target::parse(&format!("127.0.0.1:{port}")).expect("target");
        let mut c = Config::new(target, self.password.clone());
        c.timeout = Duration::from_secs(5);
        c
    }

    pub async fn session(&self) -> Session {
        Session::connect(self.config())
            .await
            .expect("connect to the test board")
    }
}

impl Drop for TestBoard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.tmpfs {
            // Lazily: a mount or a shell of the failed test may still be
            // in it. The root's TempDir then removes the bare directory.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.root.path())
                .status();
        }
        if std::thread::panicking() {
            let log = std::fs::read(self.log.path()).unwrap_or_default();
            eprintln!(
                "--- the board's terminal:\n{}\n--- its listener:\n{}---",
                String::from_utf8_lossy(&log),
                self.listener_log()
            );
        }
    }
}

/// `cargo test` compiles examples but does not leave them runnable, so the
/// emulator is built here, once per test binary.
fn linkemu_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = option_env!("CARGO").unwrap_or("cargo");
        let ok = Command::new(cargo)
            .args(["build", "--quiet", "--example", "linkemu"])
            .current_dir(repo())
            .status()
            .expect("run cargo build --example linkemu");
        assert!(ok.success(), "building the link emulator failed");
        let exe = std::env::current_exe().expect("test exe");
        exe.parent()
            .and_then(|d| d.parent())
            .expect("target dir")
            .join("examples/linkemu")
    })
}

/// The link emulator between a client and a board.
pub struct LinkEmu {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub port: u16,
}

/// An ESP32 over Wi-Fi: 20 KB/s each way, 10 ms round trip.
pub const ESP32_RATE: u64 = 20_000;

impl LinkEmu {
    pub fn start(to_port: u16, delay_ms_each_way: f64) -> LinkEmu {
        Self::with(to_port, delay_ms_each_way, &[])
    }

    /// The link of a board as slow as an ESP32.
    pub fn slow(to_port: u16) -> LinkEmu {
        Self::with(to_port, 5.0, &["--rate", &ESP32_RATE.to_string()])
    }

    pub fn with(to_port: u16, delay_ms_each_way: f64, extra: &[&str]) -> LinkEmu {
        let bin = linkemu_binary();
        let mut child = Command::new(bin)
            .args([
                "--to",
                &format!("127.0.0.1:{to_port}"),
                "--delay-ms",
                &delay_ms_each_way.to_string(),
            ])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("linkemu port");
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .expect("linkemu port");
        LinkEmu {
            child,
            stdin,
            stdout,
            port,
        }
    }

    pub fn command(&mut self, cmd: &str) {
        writeln!(self.stdin, "{cmd}").expect("linkemu command");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("linkemu answer");
        assert_eq!(line.trim(), "ok", "linkemu refused {cmd:?}");
    }
}

impl Drop for LinkEmu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Python source with random names in it (a line per 10 random bytes):
/// compresses about 2x, not 10x as repeated text would.
pub fn hex_source(noise: usize, seed: u64) -> String {
    random_bytes(noise, seed)
        .chunks(10)
        .enumerate()
        .map(|(i, c)| {
            let hex: String = c.iter().map(|b| format!("{b:02x}")).collect();
            format!("v_{i} = \"{hex}\"\n")
        })
        .collect()
}

pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// `webrepl-mount HOST MOUNTPOINT` in the foreground, with its own state
/// and runtime directories.
pub struct Mount {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub state: tempfile::TempDir,
    pub runtime: tempfile::TempDir,
    board: String,
    password: String,
}

/// Where the mount daemon's stderr goes.
pub fn mount_log(m: &Mount) -> std::path::PathBuf {
    m.state.path().join("mount.log")
}

pub fn mounted(path: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let p = path.to_string_lossy().to_string();
    mounts
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(p.as_str()))
}

impl Mount {
    /// Mounts `board` (HOST:PORT) with `tb`'s password.
    pub fn start(tb: &TestBoard, board: &str, extra: &[&str]) -> Mount {
        Mount::unmounted(tb, board).remount(extra)
    }

    /// Mounts on a directory of the test's own.
    pub fn start_on(tb: &TestBoard, board: &str, dir: tempfile::TempDir, extra: &[&str]) -> Mount {
        let mut m = Mount::unmounted(tb, board);
        m.dir = dir;
        m.remount(extra)
    }

    fn unmounted(tb: &TestBoard, board: &str) -> Mount {
        Mount {
            child: None,
            dir: tempfile::tempdir().expect("mountpoint"),
            state: tempfile::tempdir().expect("state dir"),
            runtime: tempfile::tempdir().expect("runtime dir"),
            board: board.to_string(),
            password: tb.password.clone(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_webrepl-mount"));
        c.env("WEBREPL_PASSWORD", &self.password)
            .env("XDG_STATE_HOME", self.state.path())
            .env("XDG_RUNTIME_DIR", self.runtime.path())
            .env("RUST_LOG", "webrepl_mount=debug");
        c
    }

    /// `webrepl-mount exec MOUNTPOINT CODE`: code run on the mount's board.
    pub fn exec(&self, code: &str) -> std::process::Output {
        self.cmd()
            .arg("exec")
            .arg(self.path())
            .arg(code)
            .output()
            .expect("exec")
    }

    /// Mounts again (after `unmount`), keeping the state directory.
    pub fn remount(mut self, extra: &[&str]) -> Mount {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(mount_log(&self))
            .expect("log");
        let child = self
            .cmd()
            .arg(&self.board)
            .arg(self.dir.path())
            .args(extra)
            .stdin(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start webrepl-mount");
        self.child = Some(child);
        for _ in 0..200 {
            // Mounted, and alive: a dead mount is listed too, but any
            // access to it fails.
            if mounted(self.dir.path()) && std::fs::metadata(self.dir.path()).is_ok() {
                return self;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                let log = std::fs::read_to_string(mount_log(&self)).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                panic!(
                    "webrepl-mount exited before mounting: {status}\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("not mounted after 10 s");
    }

    /// `webrepl-mount unmount`, then the daemon's exit.
    pub fn unmount(&mut self) -> std::process::Output {
        let out = self
            .cmd()
            .arg("unmount")
            .arg(self.dir.path())
            .output()
            .expect("run unmount");
        if out.status.success()
            && let Some(mut c) = self.child.take()
        {
            let status = c.wait().expect("daemon exit");
            assert!(status.success(), "the daemon exited with {status}");
            assert!(!mounted(self.dir.path()), "still mounted after unmount");
        }
        out
    }

    /// Mounts with --daemon: returns the parent's result once it has exited.
    pub fn daemon(tb: &TestBoard, board: &str, extra: &[&str]) -> (Mount, std::process::Output) {
        let m = Mount::unmounted(tb, board);
        let out = m
            .cmd()
            .arg("--daemon")
            .arg(board)
            .arg(m.dir.path())
            .args(extra)
            .output()
            .expect("run");
        (m, out)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Waits for `what` to be true of the mount's status, up to `secs`.
    pub fn status_until(&self, secs: u64, what: impl Fn(&str) -> bool) -> String {
        eventually_with(secs, || {
            let s = self.status();
            if what(&s) {
                Ok(s)
            } else {
                Err(format!("status never got there: {s}"))
            }
        })
    }

    /// Waits for the daemon to exit by itself.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.take().expect("running").wait().expect("wait")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(mount_log(self)).unwrap_or_default()
    }

    pub fn status(&self) -> String {
        let out = self
            .cmd()
            .arg("status")
            .arg(self.dir.path())
            .output()
            .expect("status");
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // A --daemon mount has no child here but is mounted all the same;
        // its daemon ends when the lazily detached mount goes.
        if mounted(self.dir.path()) {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A child process that is killed and reaped when the test ends, however
/// it ends (`std::process::Child` is left running when dropped).
pub struct Reaped(pub Child);

impl std::ops::Deref for Reaped {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A mountpoint unmounted (lazily) when the test ends, however it ends: for
/// mounts made without [`Mount`] (a bare child, `mount -T`).
pub struct Unmounted(pub PathBuf);

impl Drop for Unmounted {
    fn drop(&mut self) {
        if mounted(&self.0) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Waits for `ok`, up to `secs`.
pub fn eventually(secs: u64, what: &str, mut ok: impl FnMut() -> bool) {
    eventually_with(secs, || {
        ok().then_some(()).ok_or(format!("{what} never happened"))
    });
}

/// Waits until `check` gives Ok, up to `secs`, and returns what it gave;
/// fails with its last Err: what it saw instead (a log, a terminal's
/// text, a status). The one polling loop of the tests.
pub fn eventually_with<T>(secs: u64, mut check: impl FnMut() -> Result<T, String>) -> T {
    let mut got = None;
    let mut saw = String::new();
    within(secs, || match check() {
        Ok(t) => {
            got = Some(t);
            true
        }
        Err(s) => {
            saw = s;
            false
        }
    });
    got.unwrap_or_else(|| panic!("{saw}"))
}

/// Whether `ok` comes true within `secs`, asked every 20 ms: the one
/// polling loop of the tests, for those whose message when it never does
/// costs too much to make at every try (a mount's status).
pub fn within(secs: u64, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !ok() {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// [`eventually`] for async tests: the runtime runs on while it waits.
pub async fn eventually_async(secs: u64, what: &str, ok: impl AsyncFnMut() -> bool) {
    assert!(within_async(secs, ok).await, "{what} never happened");
}

/// Whether `ok` comes true within `secs`, asked every 50 ms (a browser's
/// page is asked over WebDriver): the async polling loop, for tests whose
/// message when it never does needs awaiting too.
pub async fn within_async(secs: u64, mut ok: impl AsyncFnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !ok().await {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// Runs a shell command line; panics with its output if it fails.
pub fn sh(line: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(line).output().expect("sh");
    assert!(
        out.status.success(),
        "`{line}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Writes a file and closes it, returning what close(2) says: Rust's
/// `File` drops close errors, and the mount reports uploads there.
pub fn write_and_close(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(data)?;
    close(f)
}

/// close(2) of `f`, with what it says.
pub fn close(f: std::fs::File) -> std::io::Result<()> {
    use std::os::fd::IntoRawFd;
    let fd = f.into_raw_fd();
    // SAFETY: closing the descriptor we own, once.
    if unsafe { libc::close(fd) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The tool run to its end with `password` in its environment.
pub fn wm(password: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
        .args(args)
        .env("WEBREPL_PASSWORD", password)
        .output()
        .expect("run webrepl-mount")
}
