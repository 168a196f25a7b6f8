//! The session: one tokio task owns the WebSocket and serialises everything
//! that crosses it (REPL programs, file transfers, terminal bytes). It is
//! the only place that knows about time-outs, reconnects and retries.

mod link;

pub use link::Target;

use crate::error::{Error, Result};
use crate::protocol::frame::{Frame, Kind};
use crate::protocol::login::find;
use crate::protocol::raw::{self, Output, Program, Step, WaitFor};
use crate::protocol::transfer::{self, Get, GetOutcome, Op, PUT_FRAME, Put, PutStep};
use link::Link;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::{sleep, timeout};
use tracing::{debug, info, warn};

#[derive(Debug, Clone)]
pub struct Config {
    pub target: Target,
    pub password: String,
    /// May the session stop a running program (Ctrl-C) to get the raw REPL?
    pub interrupt: bool,
    /// How long the board may stay silent in the middle of an operation.
    pub timeout: Duration,
    /// GET acks in flight (each one pulls a 256-byte chunk).
    pub get_window: u64,
}

impl Config {
    pub fn new(target: Target, password: String) -> Self {
        Config {
            target,
            password,
            interrupt: true,
            timeout: Duration::from_secs(10),
            get_window: 64,
        }
    }
}

/// Totals for `status` and the logs.
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub programs: u64,
    pub reconnects: u64,
}

enum Request {
    Exec {
        code: Vec<u8>,
        limit: Option<Duration>,
        /// Safe to run again after a broken link (it only reads).
        idempotent: bool,
        reply: oneshot::Sender<Result<Output>>,
    },
    Get {
        path: Vec<u8>,
        size: u64,
        reply: oneshot::Sender<Result<Vec<u8>>>,
    },
    Put {
        path: Vec<u8>,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<()>>,
    },
    Version {
        reply: oneshot::Sender<Result<(u8, u8, u8)>>,
    },
    Keys(Vec<u8>),
    Friendly {
        reply: oneshot::Sender<Result<()>>,
    },
    SetInterrupt(bool),
    Reset {
        reply: oneshot::Sender<Result<()>>,
    },
    Totals {
        reply: oneshot::Sender<Totals>,
    },
    Close {
        reply: oneshot::Sender<()>,
    },
}

/// A cheap handle to the session task.
#[derive(Clone)]
pub struct Session {
    tx: mpsc::Sender<Request>,
    terminal: broadcast::Sender<Vec<u8>>,
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repl {
    /// As a new connection finds it: the greeting says `>>> ` whatever the
    /// mode really is, because boards keep the mode across connections.
    Unknown,
    Friendly,
    Raw,
}

struct Task {
    cfg: Config,
    link: Option<Link>,
    repl: Repl,
    terminal: broadcast::Sender<Vec<u8>>,
    totals: Totals,
    /// The raw-paste window, once a program on this link has learnt it.
    paste_window: Option<usize>,
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// One of our programs was cut off mid-way: the board may sit in the
    /// middle of it (raw-paste reading, say), and only Ctrl-C gets it out.
    /// Stopping what is ours is not interrupting anyone.
    ours_unfinished: bool,
    /// The board's last terminal output is a prompt (`>>> ` or `... `): it
    /// waits for a line, rather than running a program or holding a line
    /// someone is typing. Only then is Ctrl-A sent without interrupting.
    at_prompt: bool,
    /// The last bytes shown on the terminal, to tell that.
    tail: Vec<u8>,
}

impl Session {
    /// Connects now, so that a wrong password or a busy board is reported
    /// at once, then hands the link to the session task.
    pub async fn connect(cfg: Config) -> Result<Session> {
        let link = open_with_retry(&cfg).await?;
        let (tx, rx) = mpsc::channel(64);
        let (terminal, _) = broadcast::channel(1024);
        let generation = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let task = Task {
            cfg,
            link: Some(link),
            repl: Repl::Unknown,
            terminal: terminal.clone(),
            totals: Totals::default(),
            paste_window: None,
            generation: generation.clone(),
            ours_unfinished: false,
            // The greeting ends in a prompt (whatever the board is doing).
            at_prompt: true,
            tail: Vec::new(),
        };
        tokio::spawn(task.run(rx));
        Ok(Session {
            tx,
            terminal,
            generation,
        })
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| Error::LinkLost("(session ended)".into()))?;
        rx.await
            .map_err(|_| Error::LinkLost("(session ended)".into()))
    }

    /// Runs a program at the raw REPL. `limit` bounds the board's silence;
    /// `None` lets a user's program run as long as it likes.
    pub async fn exec(&self, code: impl Into<Vec<u8>>, limit: Option<Duration>) -> Result<Output> {
        let code = code.into();
        self.call(|reply| Request::Exec {
            code,
            limit,
            idempotent: false,
            reply,
        })
        .await?
    }

    /// `exec` of a program that only reads: run again on a fresh link if the
    /// link breaks under it.
    pub async fn query(&self, code: impl Into<Vec<u8>>, limit: Option<Duration>) -> Result<Output> {
        let code = code.into();
        self.call(|reply| Request::Exec {
            code,
            limit,
            idempotent: true,
            reply,
        })
        .await?
    }

    /// Counts the connections made so far: a change means the board may
    /// have changed behind a lost link (or reset), and snapshots are stale.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Binary-protocol GET of a file whose size is known (from `os.stat`).
    pub async fn get(&self, path: Vec<u8>, size: u64) -> Result<Vec<u8>> {
        self.call(|reply| Request::Get { path, size, reply })
            .await?
    }

    /// Binary-protocol PUT. The board's `WB` does not prove the bytes
    /// arrived: check the size afterwards.
    pub async fn put(&self, path: Vec<u8>, data: Vec<u8>) -> Result<()> {
        self.call(|reply| Request::Put { path, data, reply })
            .await?
    }

    pub async fn version(&self) -> Result<(u8, u8, u8)> {
        self.call(|reply| Request::Version { reply }).await?
    }

    /// Keystrokes for the board's terminal.
    pub async fn keys(&self, bytes: Vec<u8>) -> Result<()> {
        self.tx
            .send(Request::Keys(bytes))
            .await
            .map_err(|_| Error::LinkLost("(session ended)".into()))
    }

    /// Leaves the raw REPL so a person sees the friendly prompt.
    pub async fn friendly(&self) -> Result<()> {
        self.call(|reply| Request::Friendly { reply }).await?
    }

    /// What the board prints to its terminal outside our own programs.
    pub fn subscribe(&self) -> broadcast::Receiver<Vec<u8>> {
        self.terminal.subscribe()
    }

    /// Soft-resets the board; the next operation connects afresh.
    pub async fn reset(&self) -> Result<()> {
        self.call(|reply| Request::Reset { reply }).await?
    }

    /// Whether programs may be stopped with Ctrl-C from now on.
    pub async fn set_interrupt(&self, allow: bool) -> Result<()> {
        self.tx
            .send(Request::SetInterrupt(allow))
            .await
            .map_err(|_| Error::LinkLost("(session ended)".into()))
    }

    pub async fn totals(&self) -> Result<Totals> {
        self.call(|reply| Request::Totals { reply }).await
    }

    /// Leaves the board in the friendly REPL and closes the connection.
    pub async fn close(&self) {
        let _ = self.call(|reply| Request::Close { reply }).await;
    }
}

/// A board that has not yet noticed our previous connection close rejects
/// the next one for a moment: retry "busy" briefly before reporting it.
async fn open_with_retry(cfg: &Config) -> Result<Link> {
    let mut delay = Duration::from_millis(200);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match Link::open(&cfg.target, &cfg.password, cfg.timeout).await {
            Err(Error::Busy(t)) if Instant::now() + delay < deadline => {
                debug!("{t} busy, retrying in {delay:?}");
                sleep(delay).await;
                delay *= 2;
            }
            other => return other,
        }
    }
}

impl Request {
    /// Answers the request with an error it met before it could start.
    fn fail(self, e: Error, task: &Task) {
        let note = |e: &Error| task.notify(&format!("{e}"));
        match self {
            Request::Exec { reply, .. } => drop(reply.send(Err(e))),
            Request::Get { reply, .. } => drop(reply.send(Err(e))),
            Request::Put { reply, .. } => drop(reply.send(Err(e))),
            Request::Version { reply } => drop(reply.send(Err(e))),
            Request::Friendly { reply } => drop(reply.send(Err(e))),
            Request::Reset { reply } => drop(reply.send(Err(e))),
            Request::Keys(_) => note(&e),
            Request::Totals { reply } => drop(reply.send(task.totals)),
            Request::SetInterrupt(_) => {}
            Request::Close { reply } => drop(reply.send(())),
        }
    }
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        loop {
            // With a terminal attached, an idle board goes back to the
            // friendly prompt, where the person left it.
            let hand_back = self.repl == Repl::Raw && self.terminal.receiver_count() > 0;
            let req = match self.link.as_mut() {
                Some(link) => tokio::select! {
                    r = rx.recv() => r,
                    f = link.next_frame() => { self.idle_frame(f); continue; }
                    _ = sleep(Duration::from_millis(300)), if hand_back => {
                        if let Err(e) = self.leave_raw().await {
                            debug!("handing the REPL back: {e}");
                        }
                        continue;
                    }
                },
                None => rx.recv().await,
            };
            let Some(req) = req else { break };
            if let Request::Close { reply } = req {
                self.close().await;
                let _ = reply.send(());
                break;
            }
            self.handle(req).await;
        }
    }

    fn idle_frame(&mut self, f: Result<Frame>) {
        match f {
            Ok(f) if f.kind == Kind::Text => self.show(f.payload),
            Ok(f) => warn!(
                "ignoring {} stray binary bytes from the board",
                f.payload.len()
            ),
            Err(e) => {
                info!("link to {}: {e}", self.cfg.target);
                self.drop_link();
            }
        }
    }

    /// A message of ours to the terminals; not the board's output.
    fn notify(&self, msg: &str) {
        let _ = self
            .terminal
            .send(format!("\r\n[webrepl-mount: {msg}]\r\n").into_bytes());
    }

    fn show(&mut self, bytes: Vec<u8>) {
        self.tail.extend_from_slice(&bytes);
        let keep = self.tail.len().saturating_sub(4);
        self.tail.drain(..keep);
        self.at_prompt = self.tail == raw::FRIENDLY_PROMPT || self.tail == b"... ";
        // Nobody listening is fine: then nobody wants to see it.
        let _ = self.terminal.send(bytes);
    }

    fn drop_link(&mut self) {
        self.link = None;
        self.repl = Repl::Unknown;
        self.paste_window = None;
    }

    async fn handle(&mut self, req: Request) {
        // Bookkeeping that needs no link.
        match req {
            Request::SetInterrupt(allow) => {
                self.cfg.interrupt = allow;
                return;
            }
            Request::Totals { reply } => {
                let _ = reply.send(self.totals);
                return;
            }
            _ => {}
        }
        if let Err(e) = self.ensure_link().await {
            req.fail(e, self);
            return;
        }
        match req {
            Request::Exec {
                code,
                limit,
                idempotent,
                reply,
            } => {
                let mut r = self.exec(&code, limit).await;
                if idempotent && self.retry_after(&r).await {
                    r = self.exec(&code, limit).await;
                }
                let _ = reply.send(r);
            }
            Request::Get { path, size, reply } => {
                let mut r = self.get(&path, size).await;
                if self.retry_after(&r).await {
                    r = self.get(&path, size).await;
                }
                let _ = reply.send(r);
            }
            Request::Put { path, data, reply } => {
                let _ = reply.send(self.put(&path, &data).await);
            }
            Request::Version { reply } => {
                let _ = reply.send(self.get_version().await);
            }
            Request::Friendly { reply } => {
                let _ = reply.send(self.leave_raw().await);
            }
            Request::Reset { reply } => {
                let _ = reply.send(self.soft_reset().await);
            }
            Request::Keys(bytes) => {
                if let Err(e) = self.keys(&bytes).await {
                    self.notify(&e.to_string());
                }
            }
            Request::Totals { .. } | Request::SetInterrupt(_) | Request::Close { .. } => {}
        }
    }

    /// After an operation that only reads failed with a broken link: may it
    /// run once more, on a new link?
    async fn retry_after<T>(&mut self, r: &Result<T>) -> bool {
        match r {
            Err(e) if e.breaks_link() && self.link.is_none() => {
                info!("link lost ({e}); reconnecting to retry");
                self.ensure_link().await.is_ok()
            }
            _ => false,
        }
    }

    /// A new link after one was lost: retried with growing pauses for as
    /// long as the time-out allows (the caller, a file operation, waits),
    /// but a wrong password or a web page fails at once.
    async fn ensure_link(&mut self) -> Result<()> {
        if self.link.is_none() {
            let deadline = Instant::now() + self.cfg.timeout;
            let mut pause = Duration::from_millis(100);
            let link = loop {
                match open_with_retry(&self.cfg).await {
                    Ok(l) => break l,
                    Err(
                        e @ (Error::WrongPassword(_) | Error::NotWebRepl(_) | Error::Invalid(_)),
                    ) => return Err(e),
                    Err(e) if Instant::now() + pause >= deadline => return Err(e),
                    Err(e) => {
                        warn!(
                            "{} unreachable ({e}); retrying in {pause:?}",
                            self.cfg.target
                        );
                        sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(2));
                    }
                }
            };
            info!("reconnected to {}", self.cfg.target);
            self.totals.reconnects += 1;
            self.generation
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.link = Some(link);
            self.repl = Repl::Unknown;
            // A new connection starts at the greeting's prompt.
            self.at_prompt = true;
            self.tail.clear();
        }
        Ok(())
    }

    fn link(&mut self) -> Result<&mut Link> {
        self.link
            .as_mut()
            .ok_or_else(|| Error::LinkLost("(not connected)".into()))
    }

    /// Reads the next frame within `limit`; text that is not ours goes to
    /// the terminal, so program output printed mid-transfer is not lost.
    async fn frame(&mut self, limit: Option<Duration>) -> Result<Frame> {
        let link = self.link()?;
        let r = match limit {
            Some(l) => timeout(l, link.next_frame()).await.unwrap_or_else(|_| {
                Err(Error::Timeout(format!(
                    "after {:.0?} of silence from the board",
                    l
                )))
            }),
            None => link.next_frame().await,
        };
        if let Err(e) = &r
            && e.breaks_link()
        {
            self.drop_link();
        }
        if let Ok(f) = &r {
            self.totals.bytes_in += f.payload.len() as u64;
        }
        r
    }

    async fn send(&mut self, kind: Kind, payload: &[u8]) -> Result<()> {
        self.totals.bytes_out += payload.len() as u64;
        let r = self.link()?.send(kind, payload).await;
        if r.is_err() {
            self.drop_link();
        }
        r
    }

    async fn binary(&mut self) -> Result<Vec<u8>> {
        let limit = self.cfg.timeout;
        loop {
            let f = self.frame(Some(limit)).await?;
            match f.kind {
                Kind::Binary => return Ok(f.payload),
                _ => self.show(f.payload),
            }
        }
    }

    async fn text(&mut self, limit: Option<Duration>) -> Result<Vec<u8>> {
        loop {
            let f = self.frame(limit).await?;
            match f.kind {
                Kind::Text => return Ok(f.payload),
                _ => warn!(
                    "ignoring {} stray binary bytes from the board",
                    f.payload.len()
                ),
            }
        }
    }

    /// Gets the raw prompt. Politely (`\x01` alone) a board answers only when
    /// it sits at a prompt; interrupting (`\r\x03\x03\x01`) stops a program.
    async fn enter_raw(&mut self) -> Result<()> {
        if self.repl == Repl::Raw {
            return Ok(());
        }
        let interrupt = self.cfg.interrupt || self.ours_unfinished;
        if !self.at_prompt && !interrupt {
            // A program runs, or someone is typing a line (Ctrl-A would only
            // move their cursor): their REPL, their turn. Sending Ctrl-A
            // anyway would leave it queued, to switch the REPL to raw mode
            // under them once the program ends.
            return Err(Error::Running);
        }
        let (keys, limit) = if interrupt {
            (raw::ENTER_INTERRUPTING, self.cfg.timeout)
        } else {
            (
                raw::ENTER_POLITELY,
                Duration::from_millis(1500).min(self.cfg.timeout),
            )
        };
        self.send(Kind::Text, keys).await?;
        // What comes before the banner is the board's (a program's output, an
        // answer to the user's last line): the terminals see it, less the
        // line break the board prints on switching.
        let mut seen = Vec::new();
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // An outer time-out: a board that does not answer is busy, and
            // its link is fine.
            let t = match timeout(left, self.text(None)).await {
                Ok(r) => r,
                Err(_) => Err(Error::Timeout("entering the raw REPL".into())),
            };
            match t {
                Ok(t) => {
                    seen.extend_from_slice(&t);
                    if let Some(i) = find(&seen, raw::RAW_BANNER) {
                        let before = &seen[..i];
                        let before = before.strip_suffix(b"\r\n").unwrap_or(before);
                        if !before.is_empty() {
                            self.show(before.to_vec());
                        }
                        break;
                    }
                }
                Err(Error::Timeout(_)) if !interrupt => {
                    // The link is fine; the board is busy with a program. The
                    // \x01 we sent went to that program as input.
                    if !seen.is_empty() {
                        self.show(seen);
                    }
                    return Err(Error::Running);
                }
                Err(e) => return Err(e),
            }
        }
        self.at_prompt = false;
        let (code, answer) = raw::sync(rand::random());
        self.send(Kind::Text, &code).await?;
        let mut done = WaitFor::new(answer);
        let limit = self.cfg.timeout;
        while !done.feed(&self.text(Some(limit)).await?, &mut Vec::new()) {}
        self.repl = Repl::Raw;
        self.ours_unfinished = false;
        Ok(())
    }

    async fn leave_raw(&mut self) -> Result<()> {
        if self.repl != Repl::Raw {
            return Ok(());
        }
        self.send(Kind::Text, raw::LEAVE).await?;
        // Swallow the banner the board prints on leaving raw mode.
        let mut prompt = WaitFor::new(raw::FRIENDLY_PROMPT);
        let limit = self.cfg.timeout;
        while !prompt.feed(&self.text(Some(limit)).await?, &mut Vec::new()) {}
        self.repl = Repl::Friendly;
        self.at_prompt = true;
        Ok(())
    }

    async fn keys(&mut self, bytes: &[u8]) -> Result<()> {
        self.leave_raw().await?;
        self.at_prompt = false;
        self.send(Kind::Text, bytes).await
    }

    /// Soft reset (Ctrl-D at an empty raw prompt). Boards end the
    /// connection or print their banner; either way a fresh link follows.
    async fn soft_reset(&mut self) -> Result<()> {
        let allow = self.cfg.interrupt;
        self.cfg.interrupt = true;
        let entered = self.enter_raw().await;
        self.cfg.interrupt = allow;
        entered?;
        self.send(Kind::Text, b"\x04").await?;
        let _ = timeout(Duration::from_millis(500), async {
            while self.text(None).await.is_ok() {}
        })
        .await;
        self.drop_link();
        Ok(())
    }

    async fn exec(&mut self, code: &[u8], limit: Option<Duration>) -> Result<Output> {
        self.enter_raw().await?;
        let started = Instant::now();
        self.ours_unfinished = true;
        let mut notices = raw::NoticeFilter::default();
        let mut prog = match self.paste_window {
            Some(w) => Program::with_window(code.to_vec(), w),
            None => Program::new(code.to_vec()),
        };
        let protocol = |e: raw::RawError| Error::Protocol(e.to_string());
        let out = loop {
            match prog.poll() {
                Step::Send(b) => self.send(Kind::Text, &b).await?,
                Step::SendPaced(b) => {
                    self.send(Kind::Text, &b).await?;
                    sleep(Duration::from_millis(10)).await;
                }
                Step::Wait => {
                    let (t, notices) = notices.feed(&self.text(limit).await?);
                    for n in notices {
                        self.show(n);
                    }
                    if let Err(e) = prog.feed(&t) {
                        // Out of step with the board: start afresh next time.
                        self.drop_link();
                        return Err(protocol(e));
                    }
                }
                Step::Done(o) => break o,
            }
        };
        self.ours_unfinished = false;
        if prog.pasting() {
            self.paste_window = Some(prog.window());
        }
        self.totals.programs += 1;
        debug!(
            "program of {} bytes ran in {:.0?}",
            code.len(),
            started.elapsed()
        );
        Ok(out)
    }

    async fn get(&mut self, path: &[u8], size: u64) -> Result<Vec<u8>> {
        let protocol = |e: transfer::TransferError| Error::Protocol(e.to_string());
        let header = transfer::header(Op::Get, path, 0).map_err(protocol)?;
        let started = Instant::now();
        self.send(Kind::Binary, &header).await?;
        let mut get = Get::new(size, self.cfg.get_window);
        let mut pending = Vec::new();
        let surplus = loop {
            let acks = get.acks_to_send();
            if acks > 0 {
                self.send(Kind::Binary, &vec![0u8; acks]).await?;
            }
            let bytes = self.binary().await?;
            match get.feed(&bytes, &mut pending) {
                Ok(GetOutcome::Pending) => {}
                Ok(GetOutcome::Done { surplus }) => break surplus,
                Err(e) => {
                    self.drop_link();
                    return Err(protocol(e));
                }
            }
        };
        if surplus > 0 {
            // The board took our extra acks as the start of the next header.
            warn!("file shrank during GET; reconnecting to resynchronise");
            self.drop_link();
        }
        let data = get.into_data();
        log_transfer("GET", path, data.len(), started);
        Ok(data)
    }

    async fn put(&mut self, path: &[u8], data: &[u8]) -> Result<()> {
        let protocol = |e: transfer::TransferError| Error::Protocol(e.to_string());
        let header = transfer::header(Op::Put, path, data.len() as u64).map_err(protocol)?;
        let started = Instant::now();
        self.send(Kind::Binary, &header).await?;
        // The data follows at once instead of after the board's first `WB`:
        // it waits in the board's socket until the file is open, and a
        // round trip per file is saved.
        for chunk in data.chunks(PUT_FRAME) {
            self.send(Kind::Binary, chunk).await?;
        }
        let mut put = Put::new(data.len() as u64);
        let mut step = PutStep::Opening;
        while step != PutStep::Done {
            let bytes = self.binary().await?;
            step = match put.feed(&bytes) {
                Ok(PutStep::SendData) => put.data_sent(),
                other => other,
            }
            .map_err(|e| {
                self.drop_link();
                protocol(e)
            })?;
        }
        log_transfer("PUT", path, data.len(), started);
        Ok(())
    }

    async fn get_version(&mut self) -> Result<(u8, u8, u8)> {
        let header =
            transfer::header(Op::GetVersion, b"", 0).map_err(|e| Error::Protocol(e.to_string()))?;
        self.send(Kind::Binary, &header).await?;
        let reply = self.binary().await?;
        transfer::parse_version(&reply).map_err(|e| {
            self.drop_link();
            Error::Protocol(e.to_string())
        })
    }

    async fn close(&mut self) {
        if self.link.is_some()
            && self.repl == Repl::Raw
            && let Err(e) = self.leave_raw().await
        {
            debug!("leaving raw REPL on close: {e}");
        }
        if let Some(link) = self.link.take() {
            link.shutdown().await;
        }
    }
}

fn log_transfer(what: &str, path: &[u8], len: usize, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    info!(
        "{what} {} {len} B in {:.3} s ({:.1} KB/s)",
        String::from_utf8_lossy(path),
        secs,
        len as f64 / 1000.0 / secs.max(1e-6)
    );
}
