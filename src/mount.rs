//! `webrepl-mount HOST MOUNTPOINT`: the mount daemon from connect to the
//! last flush.

use crate::board::{Board, Transfer};
use crate::cache::{self, Core};
use crate::error::{Error, Kind, Lost, NotInterrupting, Result, Waited};
use crate::fs::Fs;
use crate::session::{Config, Session, Target};
use crate::terminal::sidecar;
use std::io::{IsTerminal, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tracing::{info, warn};

#[derive(Debug, Clone)]
pub struct MountOptions {
    pub board: String,
    pub mountpoint: PathBuf,
    pub session: Config,
    pub transfer: Transfer,
    /// Uploads may go compressed (`--no-compress`: never).
    pub compress: bool,
    pub cache: cache::Options,
    pub attr_ttl: Duration,
    /// What `-o` asked of the FUSE mount.
    pub fuse: crate::options::Fuse,
    /// Some(true): stop a running program without asking; Some(false):
    /// never; None: ask if there is a terminal.
    pub interrupt: Option<bool>,
    pub foreground: bool,
    /// Where a daemon's log goes (shown by `status`).
    pub log: Option<PathBuf>,
    /// Serve the page (`--web`) on this address from the start.
    pub web: Option<std::net::SocketAddr>,
}

/// Where a daemonised mount tells its parent that it is ready (or why not).
pub struct Ready {
    pipe: std::fs::File,
    code: fn(&Error) -> i32,
}

impl Ready {
    pub fn new(pipe: std::fs::File, code: fn(&Error) -> i32) -> Ready {
        Ready { pipe, code }
    }

    /// Ready; `notes` first, for the parent to say (a daemon's stderr is
    /// its log).
    fn ok(mut self, notes: &[String]) {
        for n in notes {
            let _ = writeln!(self.pipe, "note {}", n.replace('\n', " "));
        }
        let _ = self.pipe.write_all(b"ok\n");
    }

    fn fail(mut self, e: &Error) {
        let _ = writeln!(self.pipe, "{} {e}", (self.code)(e));
    }
}

pub async fn run(o: MountOptions, ready: Option<Ready>) -> Result<()> {
    match mount(&o).await {
        Ok(mounted) => {
            if let Some(r) = ready {
                let mut notes = mounted.core.set_aside().to_vec();
                notes.extend(mounted.core.unmarked().map(str::to_string));
                r.ok(&notes);
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
    let mp = o.mountpoint.display();
    if dead_mount(&o.mountpoint) {
        // A daemon that died left the kernel's mount behind.
        unmount(&o.mountpoint)?;
        eprintln!("webrepl-mount: {mp} was a dead mount (its daemon had died); cleaned it up");
    }
    if !o.mountpoint.is_dir() {
        return Err(Error::Mountpoint(crate::error::Mountpoint::NotADirectory {
            at: o.mountpoint.clone(),
        }));
    }
    if !o.fuse.nonempty
        && std::fs::read_dir(&o.mountpoint)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    {
        return Err(Error::Mountpoint(crate::error::Mountpoint::NotEmpty {
            at: o.mountpoint.clone(),
        }));
    }
    // Before the board is touched: a socket directory another user made
    // first is refused (see `private`).
    sidecar::make_dir()?;
    let mut cfg = o.session.clone();
    // The tree walk needs the raw REPL; get it politely first.
    cfg.interrupt = false;
    let session = Session::connect(cfg).await?;
    let mut board = Board::new(session.clone(), o.transfer).stating_ram();
    if !o.compress {
        board = board.uncompressed();
    }
    let core = match Core::load(board.clone(), o.cache.clone()).await {
        Err(Error::Running { why, waited, .. }) => {
            let allow = o.interrupt.unwrap_or_else(ask_to_interrupt);
            if !allow {
                session.close().await;
                let hint = if o.interrupt == Some(false) {
                    NotInterrupting::DropNoInterrupt
                } else {
                    NotInterrupting::MountWithInterrupt
                };
                return Err(Error::Running {
                    why,
                    waited,
                    kept: Some(hint),
                });
            }
            session.set_interrupt(true).await?;
            Core::load(board, o.cache.clone()).await?
        }
        r => r?,
    };
    // From now on a program the user starts is theirs, unless --interrupt.
    session.set_interrupt(o.interrupt == Some(true)).await?;
    let core = Arc::new(core);
    tokio::spawn(core.clone().batcher());
    let (listener, socket) = sidecar::listen(&o.mountpoint).await?;
    let mut fc = fuser::Config::default();
    fc.mount_options = vec![
        // How `unmount`, `cp` and friends recognise our mounts.
        fuser::MountOption::FSName(format!("webrepl:{}", o.board)),
        // fuse.webrepl-mount where fusermount3 mounts, as an fstab line
        // names the type.
        fuser::MountOption::Subtype("webrepl-mount".into()),
        fuser::MountOption::NoAtime,
    ];
    fc.mount_options.extend(o.fuse.flags.iter().cloned());
    if o.fuse.read_only {
        fc.mount_options.push(fuser::MountOption::RO);
    }
    if o.fuse.auto_unmount {
        fc.mount_options.push(fuser::MountOption::AutoUnmount);
    }
    if o.fuse.allow_other || o.fuse.allow_root {
        // Other users through modes, as sshfs does: without the kernel's
        // checks every local user could write every file.
        fc.acl = if o.fuse.allow_other {
            fuser::SessionACL::All
        } else {
            fuser::SessionACL::RootAndOwner
        };
        fc.mount_options
            .push(fuser::MountOption::DefaultPermissions);
    }
    let fs = Fs::new(core.clone(), o.attr_ttl, tokio::runtime::Handle::current());
    let bg = match fuser::spawn_mount(fs, &o.mountpoint, &fc) {
        Ok(bg) => bg,
        Err(e) => {
            let _ = std::fs::remove_file(&socket);
            session.close().await;
            return Err(Error::Mountpoint(crate::error::Mountpoint::CannotMount {
                at: o.mountpoint.clone(),
                why: e.to_string(),
            }));
        }
    };
    // What the board changed behind the kernel's back, it forgets: sizes,
    // pages, names. On a thread of its own: the kernel may take locks that
    // requests in flight hold.
    let notifier = bg.notifier();
    let mut notices = core.notices();
    std::thread::spawn(move || {
        while let Some(n) = notices.blocking_recv() {
            let r = match &n {
                cache::Notice::Changed(ino, dir, name) => notifier
                    .inval_inode(fuser::INodeNo(*ino), 0, 0)
                    .and_then(|()| {
                        notifier.inval_entry(fuser::INodeNo(*dir), std::ffi::OsStr::new(name))
                    }),
                cache::Notice::Gone(dir, name) => {
                    notifier.inval_entry(fuser::INodeNo(*dir), std::ffi::OsStr::new(name))
                }
                cache::Notice::Barrier(_) => Ok(()),
            };
            if let cache::Notice::Barrier(done) = n {
                let _ = done.send(());
                continue;
            }
            if let Err(e) = r {
                tracing::debug!("telling the kernel about {n:?}: {e}");
            }
        }
    });
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

async fn serve(o: MountOptions, mut m: Mounted) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    if o.foreground {
        eprintln!(
            "webrepl-mount: {} mounted on {} (to unmount: webrepl-mount unmount {1}, or Ctrl-C)",
            o.board,
            o.mountpoint.display()
        );
    }
    // Files that did not reach the board are retried in the background,
    // each after its own growing pause; never two rounds at once.
    let retry = {
        let core = m.core.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                if core.has_unsent() {
                    let failed = core.retry_unsent().await;
                    Core::warn_unflushed(&failed);
                }
            }
        })
    };
    let (unmount_tx, mut unmount_rx) = mpsc::channel::<UnixStream>(1);
    // Asked once: a GET_VER later would wait behind any transfer.
    let firmware = match m.session.version().await {
        Ok((a, b, c)) => format!("MicroPython {a}.{b}.{c}"),
        Err(e) => format!("unknown ({e})"),
    };
    let daemon = Arc::new(Daemon {
        firmware,
        core: m.core.clone(),
        session: m.session.clone(),
        board: o.board.clone(),
        mountpoint: o.mountpoint.clone(),
        log: o.log.clone(),
        unmount: unmount_tx,
        page: tokio::sync::Mutex::new(None),
        share: tokio::sync::Mutex::new(None),
        closed: std::sync::Mutex::new(None),
    });
    if let Some(addr) = o.web {
        match daemon.page(addr).await {
            // A daemon's stderr is its log: the token stays out of it.
            Ok(url) if o.foreground => eprintln!("webrepl-mount: the board's page: {url}"),
            Ok(url) => eprintln!(
                "webrepl-mount: the board's page: {} (its address with the token: webrepl-mount web {})",
                url.split('#').next().unwrap_or(""),
                o.mountpoint.display()
            ),
            Err(e) => warn!("the page: {e}"),
        }
    }
    let end = loop {
        tokio::select! {
            _ = int.recv() => break End::Signal("SIGINT"),
            _ = term.recv() => break End::Signal("SIGTERM"),
            _ = hup.recv() => break End::Signal("SIGHUP"),
            _ = &mut m.fuse_ended => break End::Unmounted,
            s = unmount_rx.recv() => if let Some(s) = s { break End::Requested(s) },
            c = m.listener.accept() => {
                let Ok((stream, _)) = c else { continue };
                tokio::spawn(daemon.clone().command(stream));
            }
        }
    };
    retry.abort();
    // A share's /remote would answer EIO on the board once we are gone.
    if let Some(shared) = daemon.share.lock().await.take() {
        let stopped = tokio::time::timeout(STATUS_PROBE, shared.stop(&m.session)).await;
        if !matches!(stopped, Ok(Ok(()))) {
            warn!("the share's /remote may stay on the board until its next reset");
        }
    }
    let why = match &end {
        End::Signal(s) => format!("{s} received"),
        End::Unmounted => "unmounted".to_string(),
        End::Requested(_) => "unmount requested".to_string(),
    };
    // Whatever is dirty goes to the board before anything else ends.
    let dirty = m.core.dirty_paths();
    let failed = m.core.flush_all().await;
    if !matches!(end, End::Unmounted) {
        if let Err(e) = unmount(&o.mountpoint) {
            warn!("unmounting {}: {e}", o.mountpoint.display());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut m.fuse_ended).await;
    }
    let _ = std::fs::remove_file(&m.socket);
    // The page's redirect holds its token: gone with the page.
    if let Some(url) = daemon.page.lock().await.as_ref() {
        let _ = std::fs::remove_file(sidecar::page_redirect_file(url));
    }
    m.session.close().await;
    let flushed = dirty.len().saturating_sub(failed.len());
    let result = if failed.is_empty() {
        if o.foreground || flushed > 0 {
            eprintln!(
                "webrepl-mount: {why}; flushed {flushed} file(s) to the board; {} unmounted",
                o.mountpoint.display()
            );
        }
        Ok(())
    } else {
        Core::warn_unflushed(&failed);
        eprintln!(
            "webrepl-mount: {why}; {} file(s) NOT flushed to the board (kept in the journal; the next mount sends them):",
            failed.len()
        );
        for (p, e) in &failed {
            eprintln!("  {}: {e}", crate::board::shown(p));
        }
        let kind = failed.first().map_or(Kind::LinkLost, |(_, e)| e.kind());
        Err(Error::Remote(
            kind,
            format!("{} file(s) were not flushed to the board", failed.len()),
        ))
    };
    // An `unmount` client waits for this connection to close: we are done.
    if let End::Requested(mut client) = end {
        let _ = client.shutdown().await;
    }
    result
}

/// What sidecar commands share.
struct Daemon {
    firmware: String,
    core: Arc<Core>,
    session: Session,
    board: String,
    mountpoint: PathBuf,
    log: Option<PathBuf>,
    unmount: mpsc::Sender<UnixStream>,
    /// The page's address, once it is served.
    page: tokio::sync::Mutex<Option<String>>,
    /// A host directory shared as the board's /remote (`share DIR MOUNTPOINT`).
    share: tokio::sync::Mutex<Option<crate::share::Shared>>,
    /// The idle close the last `status` told of (how long it had been
    /// down, why): a probe of that status that timed out may reopen the
    /// link after it, and the next `status` still says so.
    closed: std::sync::Mutex<Option<(Duration, Option<Error>)>>,
}

/// Sidecar commands other than `term` and `exec` answer within this time.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);
/// How long `status` waits for a board whose link closed while idle.
const STATUS_PROBE: Duration = Duration::from_secs(2);

impl Daemon {
    /// Serves one sidecar connection, in its own task.
    async fn command(self: Arc<Self>, stream: UnixStream) {
        let mut s = BufReader::new(stream);
        let Some(cmd) = sidecar::read_command(&mut s).await else {
            return;
        };
        let (verb, arg) = cmd.split_once(' ').unwrap_or((cmd.as_str(), ""));
        match verb {
            "term" => {
                // Keystrokes may already be buffered behind the command line.
                let early = s.buffer().to_vec();
                return terminal(self.session.clone(), s.into_inner(), early).await;
            }
            "web" => {
                let out = match crate::web::parse_listen(arg) {
                    Ok(addr) => match self.page(addr).await {
                        Ok(url) => format!("url {url}\nok\n"),
                        Err(e) => format!("{}\n", e.to_wire()),
                    },
                    Err(e) => format!("{}\n", e.to_wire()),
                };
                let _ = s.get_mut().write_all(out.as_bytes()).await;
                return;
            }
            "exec" => {
                let code = crate::board::snippets::unhex(arg).unwrap_or_default();
                // A save, then `exec` at once: the program ran the board's
                // old file while the upload was still under way.
                let mut notes = String::new();
                for (path, e) in self.core.flush_saved().await {
                    let note =
                        format!("{path} is not on the board ({e}); the program runs without it");
                    warn!("exec: {note}");
                    let shown = crate::board::shown(&note);
                    notes.push_str(&format!("note {}\n", hex(shown.as_bytes())));
                }
                let _ = s.get_mut().write_all(notes.as_bytes()).await;
                return self.exec(code, s.into_inner()).await;
            }
            "share" | "unshare" => {
                let out = match tokio::time::timeout(COMMAND_LIMIT, self.share(verb, arg)).await {
                    Ok(Ok(())) => "ok\n".to_string(),
                    Ok(Err(e)) => format!("{}\n", e.to_wire()),
                    Err(_) => unanswered(verb),
                };
                let _ = s.get_mut().write_all(out.as_bytes()).await;
                return;
            }
            "unmount" => {
                let failed = self.core.flush_all().await;
                let mut stream = s.into_inner();
                if failed.is_empty() {
                    // The client waits for the daemon to close this.
                    let _ = stream.write_all(b"ok\n").await;
                    let _ = self.unmount.send(stream).await;
                    return;
                }
                let mut out = String::new();
                for (p, e) in &failed {
                    out.push_str(&format!("not flushed: {p}: {e}\n"));
                }
                // The first failure's kind, for the client's exit code (a
                // full flash is ENOSPC, not a lost link).
                let kind = failed.first().map_or(Kind::LinkLost, |(_, e)| e.kind());
                out.push_str(&format!("failed {}\n", kind.name()));
                let _ = stream.write_all(out.as_bytes()).await;
                return;
            }
            _ => {}
        }
        let out = match tokio::time::timeout(COMMAND_LIMIT, self.answer(verb)).await {
            Ok(out) => out,
            Err(_) => unanswered(verb),
        };
        let _ = s.get_mut().write_all(out.as_bytes()).await;
    }

    /// A person's program; it is stopped (Ctrl-C on the board) if the
    /// caller goes away first (Ctrl-C at the caller closes the socket).
    /// Its output goes to the caller as it comes (`part HEX` lines), so a
    /// program that never ends holds nothing here.
    async fn exec(&self, code: String, stream: UnixStream) {
        use tokio::io::AsyncReadExt;
        let (mut rd, mut wr) = stream.into_split();
        let board = self.core.board().clone();
        let mut gone = [0u8; 1];
        let mut s = match board.exec_stream(&code) {
            Ok(s) => s,
            Err(e) => {
                let _ = wr.write_all(format!("{}\n", e.to_wire()).as_bytes()).await;
                return;
            }
        };
        loop {
            tokio::select! {
                p = s.pieces.recv() => match p {
                    Some(crate::session::Piece::Data(d)) => {
                        if wr.write_all(format!("part {}\n", hex(&d)).as_bytes()).await.is_err() {
                            info!("exec: the caller went away; the program was stopped");
                            return;
                        }
                    }
                    Some(crate::session::Piece::Restart) => {}
                    None => break,
                },
                _ = rd.read(&mut gone) => {
                    info!("exec: the caller went away; the program was stopped");
                    return;
                }
            }
        }
        let answer = match s.finish().await {
            Ok(r) => format!("out {}\nerr {}\nok\n", hex(&r.stdout), hex(&r.stderr)),
            Err(e) => format!("{}\n", e.to_wire()),
        };
        let _ = wr.write_all(answer.as_bytes()).await;
    }

    /// The page for this mount: started once, on `addr`; later asks get
    /// the same page.
    async fn page(&self, addr: std::net::SocketAddr) -> Result<String> {
        let mut page = self.page.lock().await;
        if let Some(url) = page.as_ref() {
            return Ok(url.clone());
        }
        let files = crate::web::Files::Mount(self.mountpoint.clone(), self.core.clone());
        let served =
            crate::web::start(addr, self.session.clone(), files, self.board.clone()).await?;
        *page = Some(served.url.clone());
        Ok(served.url)
    }

    /// `share R HEXDIR` (R: 1 read-only) shares DIR in place of any share
    /// before; `unshare` ends it.
    async fn share(&self, verb: &str, arg: &str) -> Result<()> {
        let mut share = self.share.lock().await;
        if let Some(old) = share.take() {
            old.stop(&self.session).await?;
        }
        if verb == "unshare" {
            return Ok(());
        }
        let (ro, hex) = arg.split_once(' ').unwrap_or(("0", arg));
        let Some(dir) = crate::board::snippets::unhex(hex) else {
            return Err(Error::Invalid("share: a directory in hex".into()));
        };
        let root = crate::share::Root::new(Path::new(&dir), ro == "1")?;
        *share = Some(crate::share::Shared::start(&self.session, root).await?);
        info!("share: {dir} is the board's /remote");
        Ok(())
    }

    async fn answer(&self, verb: &str) -> String {
        let mut out = String::new();
        match verb {
            "flush" => {
                let failed = self.core.flush_all().await;
                for (p, e) in &failed {
                    out.push_str(&format!("not flushed: {p}: {e}\n"));
                }
                out.push_str(if failed.is_empty() {
                    "ok\n"
                } else {
                    "failed\n"
                });
            }
            "reset" => {
                let failed = self.core.flush_all().await;
                if failed.is_empty() {
                    match self.session.reset().await {
                        Ok(()) => {
                            self.core.invalidate();
                            out.push_str("ok\n");
                        }
                        Err(e) => out.push_str(&format!("{}\n", e.to_wire())),
                    }
                } else {
                    for (p, e) in &failed {
                        out.push_str(&format!("not flushed: {p}: {e}\n"));
                    }
                    let e = Error::LinkLost(Lost::Unflushed);
                    out.push_str(&format!("{}\n", e.to_wire()));
                }
            }
            "status" => {
                out = self.status().await;
                out.push_str("ok\n");
            }
            other => out.push_str(&format!("unknown command {other:?}\nfailed\n")),
        }
        out
    }

    async fn status(&self) -> String {
        let (clean, dirty) = self.core.cache_use();
        let mut st = self.session.status().await.ok();
        // A link that closed while idle says nothing of why (a board
        // switched off, restarted, a proxy's idle time-out): whether the
        // board answers now does.
        let mut silent = false;
        let mut closed = None;
        if let Some(s) = st.as_ref().filter(|s| s.idle_closed) {
            closed = s.down.clone();
            *self.closed.lock().unwrap_or_else(|e| e.into_inner()) = closed.clone();
            let probe = tokio::time::timeout(STATUS_PROBE, self.session.version()).await;
            silent = probe.is_err();
            st = self.session.status().await.ok();
            if st.as_ref().is_some_and(|s| s.link_up) {
                self.closed.lock().unwrap_or_else(|e| e.into_inner()).take();
            }
        } else if st.as_ref().is_some_and(|s| s.link_up) {
            closed = self.closed.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
        // The last error's words (none if the link went without one).
        let why = |e: &Option<Error>| e.as_ref().map(Error::to_string).unwrap_or_default();
        let link = match &st {
            Some(s) if s.link_up => match closed {
                Some((d, e)) => format!(
                    "link up (reopened: it had closed while idle {:.0} s before ({}))",
                    d.as_secs_f64(),
                    why(&e)
                ),
                None => "link up".to_string(),
            },
            Some(s) if s.idle_closed && silent => match &s.down {
                Some((d, e)) => format!(
                    "link closed {:.0} s ago ({}) and the board does not answer now: switched off, or out of reach?",
                    d.as_secs_f64(),
                    why(e)
                ),
                None => "link down, the board does not answer: switched off, or out of reach?"
                    .to_string(),
            },
            Some(s) if s.idle_closed => match &s.down {
                Some((d, e)) => format!(
                    "link closed while idle {:.0} s ago ({}), reopens when used",
                    d.as_secs_f64(),
                    why(e)
                ),
                None => "link closed while idle, reopens when used".to_string(),
            },
            Some(s) => match &s.down {
                Some((d, e)) => format!("link DOWN for {:.0} s ({})", d.as_secs_f64(), why(e)),
                None => "link down".to_string(),
            },
            None => "session ended".to_string(),
        };
        let version = format!("{}, {link}", self.firmware);
        let mut out = format!(
            "board: {} on {}\nfirmware: {version}\ncache: {clean} B clean, {dirty} B dirty\n",
            self.board,
            self.mountpoint.display(),
        );
        let ram = self.core.board().ram();
        if let Some(free) = ram.free {
            out.push_str(&format!(
                "board RAM: {free} B free at this mount's first contact (our helpers in), our helpers keep {} B, buffers {} B\n",
                ram.resident.map_or("?".to_string(), |n| n.to_string()),
                ram.buffer
            ));
        }
        out.push_str(&format!("downloads: {}\n", self.core.board().downloads()));
        out.push_str(&format!("uploads: {}\n", self.core.board().uploads()));
        if let Some(url) = self.page.lock().await.as_ref() {
            out.push_str(&format!("page: {url}\n"));
        }
        if let Some(shared) = self.share.lock().await.as_ref() {
            out.push_str(&format!("share: {}\n", shared.describe()));
        }
        if let Some(s) = &st {
            let t = s.totals;
            out.push_str(&format!(
                "traffic: {} B to the board, {} B from it, {} programs, {} reconnects\n",
                t.bytes_out, t.bytes_in, t.programs, t.reconnects
            ));
            // Uploads by the file's name, not the part files the session
            // sees (`.wrm-…`), summed over their slices.
            let part = |m: &crate::session::Moving| {
                m.upload && crate::board::is_part(m.path.rsplit('/').next().unwrap_or(""))
            };
            let (ups, queued_ups): (Vec<_>, Vec<_>) = self
                .core
                .board()
                .uploads_moving()
                .into_iter()
                .partition(|m| m.done > 0 || s.moving.iter().any(part));
            let text = self.core.board().text_moving();
            for m in s
                .moving
                .iter()
                .filter(|m| !part(m))
                .chain(&ups)
                .chain(&text)
            {
                let rate = m.done as f64 / m.secs.max(0.001) / 1000.0;
                out.push_str(&format!(
                    "moving: {} {} {}/{} B ({:.1} KB/s)\n",
                    if m.upload { "up" } else { "down" },
                    crate::board::shown(&m.path),
                    m.done,
                    m.total,
                    rate
                ));
            }
            for m in s.queued.iter().filter(|m| !part(m)).chain(&queued_ups) {
                // A download's size is known only once the board answers.
                let size = if m.upload || m.total > 0 {
                    format!(" {} B", m.total)
                } else {
                    String::new()
                };
                let path = if m.path.is_empty() {
                    "?".into()
                } else {
                    crate::board::shown(&m.path)
                };
                out.push_str(&format!(
                    "queued: {} {path}{size}\n",
                    if m.upload { "up" } else { "down" },
                ));
            }
            if s.programs > 0 {
                out.push_str(&format!("programs: {} queued or running\n", s.programs));
            }
            if let Some((d, why)) = &s.waiting {
                out.push_str(&format!(
                    "waiting: for the REPL for {:.0} s: {why}\n",
                    d.as_secs_f64()
                ));
            }
        }
        for note in self.core.set_aside() {
            out.push_str(&format!("set aside: {}\n", crate::board::shown(note)));
        }
        if let Some(why) = self.core.unmarked() {
            out.push_str(&format!("no id: {}\n", crate::board::shown(why)));
        }
        if let Some(why) = self.core.held() {
            out.push_str(&format!("{}\n", crate::board::shown(&why)));
        }
        for p in self.core.dirty_paths() {
            out.push_str(&format!("dirty: {}\n", crate::board::shown(&p)));
        }
        // Names are the board's: a newline would forge a line of this
        // answer, an escape sequence reach the person's terminal.
        for (p, why) in self.core.unsent() {
            out.push_str(&format!(
                "unsent: {}: {} (kept in the journal; tried again)\n",
                crate::board::shown(&p),
                crate::board::shown(&why.to_string())
            ));
        }
        for c in self.core.conflicts() {
            out.push_str(&format!(
                "conflict: {}\n",
                crate::board::shown(&c.to_string())
            ));
        }
        if let Some(log) = &self.log {
            out.push_str(&format!("log: {}\n", log.display()));
        }
        out
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One attached terminal: the board's output to it, its keys to the board
/// (held by the session while a program of ours runs). Ctrl-] is handled by
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

/// The mounts of this machine: (source, mountpoint) of ours, from
/// /proc/self/mounts (which escapes spaces and such as octal).
fn our_mounts() -> Vec<(String, PathBuf)> {
    let text = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let unescape = |s: &str| {
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
                let n = u8::from_str_radix(&s[i + 1..i + 4], 8).unwrap_or(b'?');
                out.push(n);
                i += 4;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let (source, point, kind) = (f.first()?, f.get(1)?, f.get(2)?);
            let board = source.strip_prefix("webrepl:")?;
            kind.starts_with("fuse")
                .then(|| (unescape(board), PathBuf::from(unescape(point))))
        })
        .collect()
}

/// A mount whose daemon is gone. The kernel answers ENOTCONN, or, for a
/// while, a stat from its cache: then no daemon listens on its socket.
fn dead_mount(mountpoint: &Path) -> bool {
    if sidecar::stale(mountpoint) {
        return true;
    }
    let abs = std::path::absolute(mountpoint).unwrap_or_else(|_| mountpoint.to_path_buf());
    if !our_mounts().iter().any(|(_, p)| *p == abs) {
        return false;
    }
    matches!(
        std::os::unix::net::UnixStream::connect(sidecar::socket_path(mountpoint)),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound)
    )
}

/// This user's mounts whose daemon answers (on this user's socket): the
/// default board of `:PATH` when there is one only.
pub fn live_mounts() -> Vec<PathBuf> {
    our_mounts()
        .into_iter()
        .map(|(_, p)| p)
        .filter(|p| std::os::unix::net::UnixStream::connect(sidecar::socket_path(p)).is_ok())
        .collect()
}

/// Where this user mounts `board`, if they do: a mount whose daemon
/// answers on this user's socket for it. /proc/mounts lists every user's
/// mounts and dead ones too; such a mount of the same address (a board
/// gone, its address now another's, a test's port reused) holds nothing.
/// The address written another way (`localhost:8266` for a mount of
/// `127.0.0.1:8266`) is the same board: resolved, both are compared.
pub fn mounted_board(board: &str) -> Option<String> {
    let want = Target::parse(board).ok()?;
    let mut wanted: Option<Vec<std::net::SocketAddr>> = None;
    our_mounts()
        .into_iter()
        .find(|(b, p)| {
            Target::parse(b).ok().is_some_and(|t| {
                t.port == want.port
                    && (t.host == want.host || {
                        let w = wanted.get_or_insert_with(|| resolved(&want.host, want.port));
                        resolved(&t.host, t.port).iter().any(|a| w.contains(a))
                    })
            }) && std::os::unix::net::UnixStream::connect(sidecar::socket_path(p)).is_ok()
        })
        .map(|(_, p)| p.display().to_string())
}

/// The socket addresses a host name stands for (none if it does not
/// resolve).
fn resolved(host: &str, port: u16) -> Vec<std::net::SocketAddr> {
    use std::net::ToSocketAddrs;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host, port)
        .to_socket_addrs()
        .map(|a| a.collect())
        .unwrap_or_default()
}

/// `webrepl-mount unmount MOUNTPOINT`: flush, unmount, and wait for the
/// daemon to be gone. A mount whose daemon died is cleaned up, saying what
/// its journal still holds for the next mount to send.
pub async fn unmount_command(mountpoint: &Path) -> Result<()> {
    let abs = std::path::absolute(mountpoint).unwrap_or_else(|_| mountpoint.to_path_buf());
    let dead = our_mounts().into_iter().find(|(_, p)| *p == abs);
    if let (Some((board, _)), true) = (&dead, dead_mount(mountpoint)) {
        unmount(mountpoint)?;
        let mp = mountpoint.display();
        eprintln!(
            "webrepl-mount: {mp} was a dead mount of {board} (its daemon had died); unmounted it"
        );
        let journal = crate::cache::attrs::state_file(board).map(|f| f.with_extension("journal"));
        let waiting = journal
            .map(|j| crate::cache::journal::Journal::new(j).entries())
            .unwrap_or_default();
        if !waiting.is_empty() {
            eprintln!(
                "webrepl-mount: {} change(s) had not reached the board; they are kept and the next mount of {board} sends them:",
                waiting.len()
            );
            for e in &waiting {
                eprintln!("  {}", crate::board::shown(&e.path));
            }
        }
        let _ = std::fs::remove_file(sidecar::socket_path(mountpoint));
        return Ok(());
    }
    let answer = sidecar::ask(mountpoint, "unmount").await?;
    if answer.iter().any(|l| l == "ok") {
        return Ok(());
    }
    let mut kind = Kind::LinkLost;
    for l in &answer {
        match l.strip_prefix("failed") {
            Some(k) if !k.trim().is_empty() => kind = Kind::parse(k.trim()),
            Some(_) => {}
            None => eprintln!("{l}"),
        }
    }
    Err(Error::Remote(
        kind,
        format!(
            "changes are not on the board; {} is still mounted",
            mountpoint.display()
        ),
    ))
}

/// The sidecar's answer to a command `verb` the daemon could not finish
/// within `COMMAND_LIMIT`.
fn unanswered(verb: &str) -> String {
    let e = Error::Timeout {
        what: Waited::Answer { verb: verb.into() },
        after: COMMAND_LIMIT,
    };
    format!("{}\n", e.to_wire())
}
