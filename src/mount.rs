//! `webrepl-mount HOST MOUNTPOINT`: the mount daemon from connect to the
//! last flush.

use crate::board::{Board, Transfer};
use crate::cache::{self, Core};
use crate::error::{Error, Result};
use crate::fs::Fs;
use crate::session::{Config, Session};
use crate::terminal::sidecar;
use std::io::{IsTerminal, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tracing::{info, warn};

#[derive(Debug, Clone)]
pub struct MountOptions {
    pub board: String,
    pub mountpoint: PathBuf,
    pub password: String,
    pub session: Config,
    pub transfer: Transfer,
    pub cache: cache::Options,
    pub attr_ttl: Duration,
    pub allow_other: bool,
    /// Some(true): stop a running program without asking; Some(false):
    /// never; None: ask if there is a terminal.
    pub interrupt: Option<bool>,
    pub foreground: bool,
}

/// Where a daemonised mount tells its parent that it is ready (or why not).
pub struct Ready(std::fs::File);

impl Ready {
    pub fn new(file: std::fs::File) -> Ready {
        Ready(file)
    }

    fn ok(mut self) {
        let _ = self.0.write_all(b"ok\n");
    }

    fn fail(mut self, e: &Error) {
        let _ = writeln!(self.0, "{} {e}", e.exit_code());
    }
}

pub async fn run(o: MountOptions, ready: Option<Ready>) -> Result<()> {
    match mount(&o).await {
        Ok(mounted) => {
            if let Some(r) = ready {
                r.ok();
            }
            serve(o, mounted).await
        }
        Err(e) => {
            if let Some(r) = ready {
                r.fail(&e);
            }
            Err(e)
        }
    }
}

struct Mounted {
    core: Arc<Core>,
    session: Session,
    listener: tokio::net::UnixListener,
    socket: PathBuf,
    fuse_ended: tokio::sync::oneshot::Receiver<()>,
}

fn ask_to_interrupt() -> bool {
    if !std::io::stdin().is_terminal() {
        return false;
    }
    eprint!("The board is running a program. Stop it (Ctrl-C) to mount? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok() && answer.trim().eq_ignore_ascii_case("y")
}

/// Whole files come and go in large buffers. glibc raises its mmap
/// threshold after such a buffer is freed, after which the next ones come
/// from the heap and are never given back: a fixed threshold keeps the
/// daemon's memory near its cache budget.
fn bound_memory() {
    // SAFETY: mallopt only changes allocator tuning.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

async fn mount(o: &MountOptions) -> Result<Mounted> {
    bound_memory();
    if !o.mountpoint.is_dir() {
        return Err(Error::Invalid(format!(
            "{}: not a directory",
            o.mountpoint.display()
        )));
    }
    let mut cfg = o.session.clone();
    // The tree walk needs the raw REPL; get it politely first.
    cfg.interrupt = false;
    let session = Session::connect(cfg).await?;
    let board = Board::new(session.clone(), o.transfer);
    let core = match Core::load(board.clone(), o.cache.clone()).await {
        Err(Error::Running) => {
            let allow = o.interrupt.unwrap_or_else(ask_to_interrupt);
            if !allow {
                session.close().await;
                return Err(Error::Running);
            }
            session.set_interrupt(true).await?;
            Core::load(board, o.cache.clone()).await?
        }
        r => r?,
    };
    // From now on a program the user starts is theirs, unless --interrupt.
    session.set_interrupt(o.interrupt == Some(true)).await?;
    let core = Arc::new(core);
    let (listener, socket) = sidecar::listen(&o.mountpoint).await?;
    let mut fc = fuser::Config::default();
    fc.mount_options = vec![
        fuser::MountOption::FSName(format!("webrepl:{}", o.board)),
        fuser::MountOption::Subtype("webrepl".into()),
        fuser::MountOption::NoAtime,
    ];
    if o.allow_other {
        fc.acl = fuser::SessionACL::All;
    }
    let bg = match fuser::spawn_mount(Fs::new(core.clone(), o.attr_ttl), &o.mountpoint, &fc) {
        Ok(bg) => bg,
        Err(e) => {
            let _ = std::fs::remove_file(&socket);
            session.close().await;
            return Err(Error::Invalid(format!(
                "cannot mount on {}: {e}",
                o.mountpoint.display()
            )));
        }
    };
    // The session ends when the kernel unmounts: fusermount3 -u, umount, us.
    let (tx, fuse_ended) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = bg.join();
        let _ = tx.send(());
    });
    info!("mounted {} on {}", o.board, o.mountpoint.display());
    Ok(Mounted {
        core,
        session,
        listener,
        socket,
        fuse_ended,
    })
}

enum End {
    Signal(&'static str),
    Unmounted,
    Requested(UnixStream),
}

async fn flush_all(core: &Arc<Core>) -> cache::Unflushed {
    let c = core.clone();
    tokio::task::spawn_blocking(move || c.flush_all())
        .await
        .unwrap_or_default()
}

async fn serve(o: MountOptions, mut m: Mounted) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    if o.foreground {
        eprintln!(
            "webrepl-mount: {} mounted on {} (to unmount: webrepl-mount unmount {1}, or Ctrl-C)",
            o.board,
            o.mountpoint.display()
        );
    }
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    // Unsent files are retried with a growing pause while the board stays
    // out of reach (each try may wait for a connection).
    let mut retry_delay = Duration::from_secs(2);
    let mut retry_at = tokio::time::Instant::now() + retry_delay;
    let end = loop {
        tokio::select! {
            _ = tick.tick() => {
                if tokio::time::Instant::now() < retry_at && o.cache.writeback.is_none() {
                    continue;
                }
                let c = m.core.clone();
                let failed = tokio::task::spawn_blocking(move || {
                    if c.has_unsent() { c.retry_unsent() } else { Vec::new() }
                })
                .await
                .unwrap_or_default();
                if failed.is_empty() {
                    retry_delay = Duration::from_secs(2);
                } else {
                    Core::warn_unflushed(&failed);
                    retry_delay = (retry_delay * 2).min(Duration::from_secs(60));
                }
                retry_at = tokio::time::Instant::now() + retry_delay;
            }
            _ = int.recv() => break End::Signal("SIGINT"),
            _ = term.recv() => break End::Signal("SIGTERM"),
            _ = &mut m.fuse_ended => break End::Unmounted,
            c = m.listener.accept() => {
                let Ok((stream, _)) = c else { continue };
                if let Some(s) = command(&m, &o, stream).await {
                    break End::Requested(s);
                }
            }
        }
    };
    let why = match &end {
        End::Signal(s) => format!("{s} received"),
        End::Unmounted => "unmounted".to_string(),
        End::Requested(_) => "unmount requested".to_string(),
    };
    // Whatever is dirty goes to the board before anything else ends.
    let dirty = m.core.dirty_paths();
    let failed = flush_all(&m.core).await;
    if !matches!(end, End::Unmounted) {
        if let Err(e) = unmount(&o.mountpoint) {
            warn!("unmounting {}: {e}", o.mountpoint.display());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut m.fuse_ended).await;
    }
    let _ = std::fs::remove_file(&m.socket);
    m.session.close().await;
    let flushed = dirty.len() - failed.len();
    if failed.is_empty() {
        if o.foreground || flushed > 0 {
            eprintln!(
                "webrepl-mount: {why}; flushed {flushed} file(s) to the board; {} unmounted",
                o.mountpoint.display()
            );
        }
        // An `unmount` client waits for this connection to close: we are done.
        if let End::Requested(mut client) = end {
            let _ = client.shutdown().await;
        }
        Ok(())
    } else {
        Core::warn_unflushed(&failed);
        eprintln!(
            "webrepl-mount: {why}; {} file(s) NOT flushed to the board:",
            failed.len()
        );
        for (p, e) in &failed {
            eprintln!("  {p}: {e}");
        }
        if let End::Requested(mut client) = end {
            let _ = client.shutdown().await;
        }
        Err(Error::LinkLost(format!(
            "before {} file(s) were flushed",
            failed.len()
        )))
    }
}

/// Serves one sidecar command; returns the stream of an `unmount` that is
/// to be answered by our exit.
async fn command(m: &Mounted, o: &MountOptions, stream: UnixStream) -> Option<UnixStream> {
    let mut s = BufReader::new(stream);
    let cmd = sidecar::read_command(&mut s).await?;
    let (verb, arg) = cmd.split_once(' ').unwrap_or((cmd.as_str(), ""));
    let mut out = String::new();
    match verb {
        "term" => {
            // Keystrokes may already be buffered behind the command line.
            let early = s.buffer().to_vec();
            tokio::spawn(terminal(m.session.clone(), s.into_inner(), early));
            return None;
        }
        "exec" => {
            let code = crate::board::snippets::unhex(arg).unwrap_or_default();
            let board = m.core.board().clone();
            let mut stream = s.into_inner();
            tokio::spawn(async move {
                let answer = match board.exec(&code).await {
                    Ok(r) => format!("out {}\nerr {}\nok\n", hex(&r.stdout), hex(&r.stderr)),
                    Err(e) => format!("error {} {e}\n", e.exit_code()),
                };
                let _ = stream.write_all(answer.as_bytes()).await;
            });
            return None;
        }
        "flush" | "unmount" => {
            let failed = flush_all(&m.core).await;
            for (p, e) in &failed {
                out.push_str(&format!("not flushed: {p}: {e}\n"));
            }
            if verb == "unmount" && failed.is_empty() {
                let mut stream = s.into_inner();
                let _ = stream.write_all(b"ok\n").await;
                return Some(stream);
            }
            out.push_str(if failed.is_empty() {
                "ok\n"
            } else {
                "failed\n"
            });
        }
        "reset" => {
            let failed = flush_all(&m.core).await;
            if failed.is_empty() {
                match m.session.reset().await {
                    Ok(()) => {
                        m.core.invalidate();
                        out.push_str("ok\n");
                    }
                    Err(e) => out.push_str(&format!("error {} {e}\n", e.exit_code())),
                }
            } else {
                for (p, e) in &failed {
                    out.push_str(&format!("not flushed: {p}: {e}\n"));
                }
                out.push_str("error 9 not resetting a board that lacks changes from the mount\n");
            }
        }
        "status" => {
            let (clean, dirty) = m.core.cache_use();
            let t = m.session.totals().await.unwrap_or_default();
            let version =
                match tokio::time::timeout(Duration::from_secs(3), m.session.version()).await {
                    Ok(Ok((a, b, c))) => format!("MicroPython {a}.{b}.{c}, link up"),
                    Ok(Err(e)) => format!("unknown (link: {e})"),
                    Err(_) => "unknown (the board is busy)".to_string(),
                };
            out.push_str(&format!(
                "board: {} on {}\nfirmware: {version}\ncache: {clean} B clean, {dirty} B dirty\n\
                 traffic: {} B to the board, {} B from it, {} programs, {} reconnects\n",
                o.board,
                o.mountpoint.display(),
                t.bytes_out,
                t.bytes_in,
                t.programs,
                t.reconnects
            ));
            for p in m.core.dirty_paths() {
                out.push_str(&format!("dirty: {p}\n"));
            }
            out.push_str("ok\n");
        }
        other => out.push_str(&format!("unknown command {other:?}\nfailed\n")),
    }
    let _ = s.get_mut().write_all(out.as_bytes()).await;
    None
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One attached terminal: the board's output to it, its keys to the board
/// (queued behind file operations by the session). Ctrl-] is handled by
/// the client and never arrives here.
async fn terminal(session: Session, stream: UnixStream, early: Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut output = session.subscribe();
    let (mut rd, mut wr) = stream.into_split();
    if !early.is_empty() && session.keys(early).await.is_err() {
        return;
    }
    let mut buf = [0u8; 1024];
    loop {
        tokio::select! {
            n = rd.read(&mut buf) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if session.keys(buf[..n].to_vec()).await.is_err() {
                        return;
                    }
                }
            },
            o = output.recv() => match o {
                Ok(bytes) => {
                    if wr.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            },
        }
    }
}

/// Unmounts as root directly, else through fusermount3; a busy mount is
/// detached (it goes once the last file is closed).
pub fn unmount(path: &Path) -> std::io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOENT) => Ok(()),
        // SAFETY: as above.
        Some(libc::EBUSY) if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 => Ok(()),
        Some(libc::EPERM) => {
            let ok = std::process::Command::new("fusermount3")
                .arg("-u")
                .arg(path)
                .status()?
                .success();
            if ok {
                Ok(())
            } else {
                Err(std::io::Error::other("fusermount3 -u failed"))
            }
        }
        _ => Err(err),
    }
}

/// `webrepl-mount unmount MOUNTPOINT`: flush, unmount, and wait for the
/// daemon to be gone.
pub async fn unmount_command(mountpoint: &Path) -> Result<()> {
    let answer = sidecar::ask(mountpoint, "unmount").await?;
    if answer.iter().any(|l| l == "ok") {
        return Ok(());
    }
    for l in answer.iter().filter(|l| *l != "failed") {
        eprintln!("{l}");
    }
    Err(Error::LinkLost(format!(
        "with changes not on the board; {} is still mounted",
        mountpoint.display()
    )))
}
