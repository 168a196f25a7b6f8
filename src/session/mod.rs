//! The session: one connection to a board, shared by everything that uses
//! it (the mount, terminals, the page). Its decisions live in [`machine`], a
//! state machine without I/O; this module is the thin async shell around it:
//! it owns the socket, feeds the core frames, backlog readings and time, and
//! carries out what the core asks (send, connect, drop the link).

mod binary;
mod keys;
mod link;
pub mod machine;
mod restore;
mod share;
mod shared;
mod text;
mod timer;
mod tls;
mod window;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

pub use binary::Moving;
pub use link::Target;
pub use machine::{LinkProgram, Status, Totals};
pub use share::{Ask, MAX_ANSWER as SHARE_MAX_ANSWER};
pub use shared::Outcome;
pub use tls::{Fingerprint, Trust};

use crate::error::{Error, Lost, Result};
use crate::protocol::frame::{Frame, FrameKind};
use crate::protocol::raw::Output;
use bytes::Bytes;
use link::{Link, Reader, Writer};
use machine::{Machine, Request};
use shared::{Event, OpId, Order};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{debug, info, trace, warn};

#[derive(Debug, Clone)]
pub struct Config {
    pub target: Target,
    pub password: String,
    /// May the session stop a running program (Ctrl-C) to get the raw REPL?
    pub interrupt: bool,
    /// How long the board may make no progress, and how long an operation
    /// waits for a lost link.
    pub timeout: Duration,
    /// The most GET acks in flight (each pulls a 256-byte chunk).
    pub get_window: u64,
    /// What a wss:// proxy's certificate is checked against.
    pub trust: Trust,
    /// Nobody else waits on this link: a command's own session (`cp`,
    /// `ls`), not a mount's, whose `ls` or keys may come at any moment.
    /// While no terminal is attached, GETs start with a wider window and
    /// keep it while our programs run beside them.
    pub alone: bool,
}

impl Config {
    pub fn new(target: Target, password: String) -> Self {
        Config {
            target,
            password,
            interrupt: true,
            timeout: Duration::from_secs(10),
            get_window: 128,
            trust: Trust::default(),
            alone: false,
        }
    }

    fn core(&self) -> machine::Config {
        machine::Config {
            timeout: self.timeout,
            interrupt: self.interrupt,
            get_window: self.get_window,
            alone: self.alone,
        }
    }
}

/// How a program runs at the raw REPL.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// Subject to the time-out.
    pub bounded: bool,
    /// Only reads: safe to run again on a new link.
    pub idempotent: bool,
    /// A person's program: their keys reach it, no time limit.
    pub user: bool,
    /// How long it may wait for a REPL that a person's program holds.
    pub patience: Option<Duration>,
    /// Not before this upload's last byte has gone to the socket, and then
    /// at once, without waiting for the board's answer to it (see
    /// [`Session::put_begin`]). For a program that checks what the upload
    /// left (size, CRC) before it uses it: the upload may have failed.
    pub after: Option<PutTicket>,
}

/// An upload handed to the session ([`Session::put_begin`]): a program may
/// be queued behind its last byte ([`Run::after`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutTicket(u64);

impl Run {
    /// A snippet of ours that changes something.
    pub const SNIPPET: Run = Run {
        bounded: true,
        idempotent: false,
        user: false,
        patience: None,
        after: None,
    };
    /// A snippet of ours that only reads.
    pub const QUERY: Run = Run {
        bounded: true,
        idempotent: true,
        user: false,
        patience: None,
        after: None,
    };
    /// A person's program.
    pub const USER: Run = Run {
        bounded: false,
        idempotent: false,
        user: true,
        patience: None,
        after: None,
    };
}

/// A downloading file, as it arrives.
#[derive(Debug)]
pub enum Piece {
    Data(Vec<u8>),
    /// The link broke and the transfer starts over: drop what came.
    Restart,
}

enum Reply {
    Once(oneshot::Sender<Result<Outcome>>),
    Stream(
        mpsc::UnboundedSender<Piece>,
        oneshot::Sender<Result<Outcome>>,
    ),
    Progress(watch::Sender<u64>, oneshot::Sender<Result<Outcome>>),
}

impl Reply {
    fn finish(self, r: Result<Outcome>) {
        let tx = match self {
            Reply::Once(tx) | Reply::Stream(_, tx) | Reply::Progress(_, tx) => tx,
        };
        let _ = tx.send(r);
    }
}

enum Cmd {
    Submit(u64, Request, Reply),
    /// A program to start only once the upload of the second ticket has
    /// handed its last byte to the socket ([`Machine::submit_after`]).
    SubmitAfter(u64, Request, Reply, u64),
    Keys(Vec<u8>),
    Credit(u64, usize),
    Answer(u64, &'static str),
    Cancel(u64),
    SetInterrupt(bool),
    Status(oneshot::Sender<Status>),
    Close(oneshot::Sender<()>),
    /// From now on the board's share requests go here.
    ShareServe(mpsc::UnboundedSender<Ask>),
    ShareAnswer(u8, u8, Vec<u8>),
    LinkProgram(Option<LinkProgram>),
    Attach(oneshot::Sender<Attached>),
}

/// The terminal's line as it stands, then what the board prints.
pub type Attached = (Option<Vec<u8>>, broadcast::Receiver<Vec<u8>>);

/// A cheap handle to the session task.
#[derive(Clone)]
pub struct Session {
    tx: mpsc::UnboundedSender<Cmd>,
    terminal: broadcast::Sender<Vec<u8>>,
    tickets: Arc<AtomicU64>,
    generation: Arc<AtomicU64>,
    changes: Arc<AtomicU64>,
    /// A file transfer is under way or queued (see [`Session::transferring`]).
    transferring: Arc<AtomicBool>,
    link: watch::Receiver<bool>,
    target: Target,
    /// How long an operation waits for a REPL a person's program holds.
    timeout: Duration,
}

fn ended() -> Error {
    Error::LinkLost(Lost::SessionEnded)
}

/// Sends Ctrl-C for a person's program whose caller went away.
struct CancelOnDrop<'a> {
    session: &'a Session,
    ticket: u64,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.session.tx.send(Cmd::Cancel(self.ticket));
        }
    }
}

impl Session {
    /// Connects now, so that a wrong password or a busy board is reported
    /// at once, then hands the link to the session task.
    pub async fn connect(cfg: Config) -> Result<Session> {
        let link = open_with_retry(&cfg).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (terminal, _) = broadcast::channel(4096);
        let (link_tx, link_rx) = watch::channel(true);
        let generation = Arc::new(AtomicU64::new(0));
        let changes = Arc::new(AtomicU64::new(0));
        let transferring = Arc::new(AtomicBool::new(false));
        let target = cfg.target.clone();
        let timeout = cfg.timeout;
        let shell = Shell {
            core: Machine::new(cfg.core(), Instant::now()),
            cfg,
            rx,
            terminal: terminal.clone(),
            waiters: HashMap::new(),
            tickets: HashMap::new(),
            generation: generation.clone(),
            changes: changes.clone(),
            transferring: transferring.clone(),
            link_state: link_tx,
            share: None,
        };
        tokio::spawn(shell.run(link));
        Ok(Session {
            tx,
            terminal,
            tickets: Arc::new(AtomicU64::new(1)),
            generation,
            changes,
            transferring,
            link: link_rx,
            target,
            timeout,
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    fn send(&self, req: Request, reply: Reply) -> Result<u64> {
        let ticket = self.tickets.fetch_add(1, Ordering::SeqCst);
        self.tx
            .send(Cmd::Submit(ticket, req, reply))
            .map_err(|_| ended())?;
        Ok(ticket)
    }

    async fn call(&self, req: Request) -> Result<Outcome> {
        let (tx, rx) = oneshot::channel();
        self.send(req, Reply::Once(tx))?;
        rx.await.map_err(|_| ended())?
    }

    /// Runs a program at the raw REPL. A person's program whose caller stops
    /// waiting (dropped, Ctrl-C) gets Ctrl-C on the board.
    pub async fn run(&self, code: impl Into<Vec<u8>>, how: Run) -> Result<Output> {
        let (tx, rx) = oneshot::channel();
        let req = Request::Program {
            code: code.into(),
            bounded: how.bounded,
            idempotent: how.idempotent,
            user: how.user,
            patience: how.patience.unwrap_or(self.timeout),
        };
        let ticket = match how.after {
            Some(after) => {
                let ticket = self.tickets.fetch_add(1, Ordering::SeqCst);
                self.tx
                    .send(Cmd::SubmitAfter(ticket, req, Reply::Once(tx), after.0))
                    .map_err(|_| ended())?;
                ticket
            }
            None => self.send(req, Reply::Once(tx))?,
        };
        let mut guard = CancelOnDrop {
            session: self,
            ticket,
            armed: how.user,
        };
        let r = rx.await.map_err(|_| ended());
        guard.armed = false;
        match r?? {
            Outcome::Output(o) => Ok(o),
            other => Err(unexpected(other)),
        }
    }

    /// A person's program with its output handed over as it comes (a
    /// program that never ends prints for as long as it is read; nothing
    /// piles up here). Dropping the stream stops it (Ctrl-C).
    pub fn exec_stream(&self, code: impl Into<Vec<u8>>) -> Result<ProgramStream> {
        self.stream_of(Request::Stream {
            code: code.into(),
            patience: self.timeout,
            user: true,
        })
    }

    /// A person's program, as `exec` runs it.
    pub async fn exec(&self, code: impl Into<Vec<u8>>) -> Result<Output> {
        self.run(code, Run::USER).await
    }

    /// Connections made after the first: a change means the board may have
    /// changed (or reset) behind a lost link.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Counts the times code ran that may have changed the board's files (a
    /// line entered at the terminal, `exec`, a reset).
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::SeqCst)
    }

    /// Whether a file transfer was under way or queued when the session
    /// last looked (a reader then waits for a slice of it too).
    pub fn transferring(&self) -> bool {
        self.transferring.load(Ordering::Relaxed)
    }

    /// Whether the link is up, as it changes.
    pub fn link_state(&self) -> watch::Receiver<bool> {
        self.link.clone()
    }

    /// A whole file by binary-protocol GET; its size (from `os.stat`) makes
    /// the pipelined acks safe.
    pub async fn get(&self, path: Vec<u8>, size: u64) -> Result<Vec<u8>> {
        let mut s = self.get_stream(path, size)?;
        let mut data = Vec::with_capacity(size.min(1 << 24) as usize);
        while let Some(p) = s.pieces.recv().await {
            match p {
                Piece::Data(d) => data.extend_from_slice(&d),
                Piece::Restart => data.clear(),
            }
        }
        s.done.await.map_err(|_| ended())??;
        Ok(data)
    }

    /// A GET whose data is handed over as it arrives.
    pub fn get_stream(&self, path: Vec<u8>, size: u64) -> Result<GetStream> {
        let (ptx, prx) = mpsc::unbounded_channel();
        let (tx, rx) = oneshot::channel();
        let ticket = self.send(Request::Get { path, size }, Reply::Stream(ptx, tx))?;
        Ok(GetStream {
            pieces: prx,
            done: rx,
            ticket,
            tx: self.tx.clone(),
        })
    }

    /// Drops a GET that has not begun (its `done` says so); one under way
    /// goes on to its end (the protocol cannot stop it).
    pub fn drop_if_waiting(&self, s: &GetStream) {
        let _ = self.tx.send(Cmd::Cancel(s.ticket));
    }

    /// A streaming program of ours: its stdout handed over as it arrives;
    /// it prints more as [`ProgramStream::credit`] allows. Dropping the
    /// stream before it ends stops the program (Ctrl-C).
    pub fn stream(
        &self,
        code: impl Into<Vec<u8>>,
        patience: Option<Duration>,
    ) -> Result<ProgramStream> {
        self.stream_of(Request::Stream {
            code: code.into(),
            patience: patience.unwrap_or(self.timeout),
            user: false,
        })
    }

    fn stream_of(&self, req: Request) -> Result<ProgramStream> {
        let (ptx, prx) = mpsc::unbounded_channel();
        let (tx, rx) = oneshot::channel();
        let ticket = self.send(req, Reply::Stream(ptx, tx))?;
        Ok(ProgramStream {
            tx: self.tx.clone(),
            ticket,
            pieces: prx,
            done: Some(rx),
        })
    }

    /// Binary-protocol PUT. The board's `WB` does not prove the bytes
    /// arrived: check the size afterwards.
    pub async fn put(&self, path: Vec<u8>, data: impl Into<Bytes>) -> Result<()> {
        let (progress, _) = watch::channel(0);
        self.put_progress(path, data.into(), progress).await
    }

    /// `put`, telling how many bytes the board has taken as it goes.
    pub async fn put_progress(
        &self,
        path: Vec<u8>,
        data: Bytes,
        progress: watch::Sender<u64>,
    ) -> Result<()> {
        self.put_on(None, path, data, progress).await
    }

    /// `put_progress` only on the session's link `link` (the caller has
    /// checked which board it reaches): on any other it fails with
    /// `Lost::Resync`, nothing of it sent.
    pub async fn put_on(
        &self,
        link: Option<u64>,
        path: Vec<u8>,
        data: Bytes,
        progress: watch::Sender<u64>,
    ) -> Result<()> {
        let (_, put) = self.put_begin(link, path, data, progress)?;
        put.await
    }

    /// `put_on`, queued now: its ticket (for a program to go behind its
    /// last byte, [`Run::after`]) and its end to wait for.
    pub fn put_begin(
        &self,
        link: Option<u64>,
        path: Vec<u8>,
        data: Bytes,
        progress: watch::Sender<u64>,
    ) -> Result<(
        PutTicket,
        impl std::future::Future<Output = Result<()>> + use<>,
    )> {
        let (tx, rx) = oneshot::channel();
        let ticket = self.send(
            Request::Put { path, data, link },
            Reply::Progress(progress, tx),
        )?;
        Ok((PutTicket(ticket), async move {
            rx.await.map_err(|_| ended())??;
            Ok(())
        }))
    }

    pub async fn version(&self) -> Result<(u8, u8, u8)> {
        match self.call(Request::Version).await? {
            Outcome::Version(a, b, c) => Ok((a, b, c)),
            other => Err(unexpected(other)),
        }
    }

    /// Keystrokes for the board's terminal.
    pub async fn keys(&self, bytes: Vec<u8>) -> Result<()> {
        self.tx.send(Cmd::Keys(bytes)).map_err(|_| ended())
    }

    /// Leaves the raw REPL so a person sees the friendly prompt.
    pub async fn friendly(&self) -> Result<()> {
        self.call(Request::Friendly).await.map(drop)
    }

    /// What the board prints to its terminal outside our own programs.
    pub fn subscribe(&self) -> broadcast::Receiver<Vec<u8>> {
        self.terminal.subscribe()
    }

    /// A new terminal: the line the others show now (`None` until the
    /// board has said where its REPL is), and what the board prints from
    /// then on, taken at one moment so that nothing is missed or shown
    /// twice. A terminal draws the line instead of typing Enter for a
    /// prompt, which would reach a running program's input, wait behind
    /// transfers, and make the mount check its whole tree after it.
    pub async fn attach(&self) -> Result<Attached> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Cmd::Attach(tx)).map_err(|_| ended())?;
        rx.await.map_err(|_| ended())
    }

    /// Soft-resets the board; the next operation connects afresh.
    pub async fn reset(&self) -> Result<()> {
        self.call(Request::Reset).await.map(drop)
    }

    /// Whether programs may be stopped with Ctrl-C from now on.
    pub async fn set_interrupt(&self, allow: bool) -> Result<()> {
        self.tx.send(Cmd::SetInterrupt(allow)).map_err(|_| ended())
    }

    pub async fn status(&self) -> Result<Status> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Cmd::Status(tx)).map_err(|_| ended())?;
        rx.await.map_err(|_| ended())
    }

    pub async fn totals(&self) -> Result<Totals> {
        Ok(self.status().await?.totals)
    }

    /// The link's measured rate to the board (bytes/s), once uploads have
    /// shown it.
    pub async fn rate(&self) -> Option<f64> {
        self.status().await.ok().and_then(|s| s.rate)
    }

    /// Uploads' pace, never above what big PUTs delivered end to end (see
    /// `Status::upload_rate`): buffers that take a first PUT at once do
    /// not make the link look fast.
    pub async fn upload_rate(&self) -> Option<f64> {
        self.status().await.ok().and_then(|s| s.upload_rate)
    }

    /// Whether a person at a terminal typed lately (see `Status::typing`).
    pub async fn typing(&self) -> bool {
        self.status().await.is_ok_and(|s| s.typing)
    }

    /// Leaves the board in the friendly REPL and closes the connection.
    /// The board's `/remote` requests, from now on (a second call takes
    /// them over). Each is answered with [`Session::share_answer`].
    pub fn share_requests(&self) -> Result<mpsc::UnboundedReceiver<Ask>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.tx.send(Cmd::ShareServe(tx)).map_err(|_| ended())?;
        Ok(rx)
    }

    /// Code every new link runs first, before keys typed meanwhile reach
    /// the board (a soft reset forgets what it set up); None: no more.
    /// Its failure, tried twice, is told as `what`.
    pub fn on_every_link(&self, program: Option<LinkProgram>) -> Result<()> {
        self.tx.send(Cmd::LinkProgram(program)).map_err(|_| ended())
    }

    /// The answer to share request `seq`: `status` 0 and `data`, or an errno.
    pub fn share_answer(&self, seq: u8, status: u8, data: Vec<u8>) -> Result<()> {
        self.tx
            .send(Cmd::ShareAnswer(seq, status, data))
            .map_err(|_| ended())
    }

    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// A streaming program's output as it arrives (see [`Session::stream`]).
pub struct ProgramStream {
    tx: mpsc::UnboundedSender<Cmd>,
    ticket: u64,
    pub pieces: mpsc::UnboundedReceiver<Piece>,
    done: Option<oneshot::Receiver<Result<Outcome>>>,
}

impl ProgramStream {
    /// Lets the program print `n` more pieces.
    pub fn credit(&self, n: usize) {
        let _ = self.tx.send(Cmd::Credit(self.ticket, n));
    }

    /// A line the program waits for: `word` (letters only), then a line end.
    pub fn answer(&self, word: &'static str) {
        let _ = self.tx.send(Cmd::Answer(self.ticket, word));
    }

    /// The program's end: what it printed after the last piece taken, and
    /// its traceback.
    pub async fn finish(mut self) -> Result<Output> {
        let rx = self.done.take().ok_or_else(ended)?;
        match rx.await.map_err(|_| ended())?? {
            Outcome::Output(o) => Ok(o),
            other => Err(unexpected(other)),
        }
    }
}

impl Drop for ProgramStream {
    fn drop(&mut self) {
        if self.done.is_some() {
            let _ = self.tx.send(Cmd::Cancel(self.ticket));
        }
    }
}

pub struct GetStream {
    pub pieces: mpsc::UnboundedReceiver<Piece>,
    pub done: oneshot::Receiver<Result<Outcome>>,
    ticket: u64,
    tx: mpsc::UnboundedSender<Cmd>,
}

impl GetStream {
    /// The reader took `n` more bytes. Its first call (0 will do) paces
    /// the GET: from then on at most 256 KiB wait for it, and a reader that
    /// stops holds the board's GET (not our memory).
    pub fn credit(&self, n: usize) {
        let _ = self.tx.send(Cmd::Credit(self.ticket, n));
    }
}

fn unexpected(o: Outcome) -> Error {
    Error::Invalid(format!("the session answered {o:?} to another question"))
}

/// A board that has not yet noticed the last client go (ours, a moment
/// ago) refuses the next one for a moment: retry "busy" quickly, the first
/// time after about a round trip (half a refused attempt: connect, then
/// the request and its close), doubling, for up to 3 s before reporting it.
async fn open_with_retry(cfg: &Config) -> Result<Link> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(3);
    let mut delay = None;
    loop {
        let attempt = Instant::now();
        match Link::open(&cfg.target, &cfg.password, cfg.timeout, &cfg.trust).await {
            Err(t @ Error::Busy { .. }) => {
                let d: Duration = delay.map_or_else(
                    || {
                        (attempt.elapsed() / 2)
                            .clamp(Duration::from_millis(2), Duration::from_millis(200))
                    },
                    |d: Duration| (d * 2).min(Duration::from_millis(500)),
                );
                if Instant::now() + d >= deadline {
                    return Err(t);
                }
                debug!("{t}; retrying in {d:?}");
                tokio::time::sleep(d).await;
                delay = Some(d);
            }
            other => return other,
        }
    }
}

struct Shell {
    core: Machine,
    cfg: Config,
    rx: mpsc::UnboundedReceiver<Cmd>,
    terminal: broadcast::Sender<Vec<u8>>,
    waiters: HashMap<OpId, Reply>,
    tickets: HashMap<u64, OpId>,
    generation: Arc<AtomicU64>,
    changes: Arc<AtomicU64>,
    transferring: Arc<AtomicBool>,
    link_state: watch::Sender<bool>,
    /// Where the board's share requests go.
    share: Option<mpsc::UnboundedSender<Ask>>,
}

/// The socket while the link is up: read here, written by a task.
struct Wire {
    reader: Reader,
    frames: mpsc::UnboundedSender<(FrameKind, Vec<u8>)>,
    /// Bytes handed to the writer, and written by it to the socket.
    handed: u64,
    written: Arc<AtomicU64>,
    writer: tokio::task::JoinHandle<Option<Writer>>,
    failed: oneshot::Receiver<Error>,
}

impl Wire {
    fn new(link: Link) -> Wire {
        let (reader, mut writer) = link.split();
        let (frames, mut rx) = mpsc::unbounded_channel::<(FrameKind, Vec<u8>)>();
        let written = Arc::new(AtomicU64::new(0));
        let (fail_tx, failed) = oneshot::channel();
        let count = written.clone();
        let writer = tokio::spawn(async move {
            while let Some((kind, payload)) = rx.recv().await {
                if let Err(e) = writer.send(kind, &payload).await {
                    let _ = fail_tx.send(e);
                    return None;
                }
                count.fetch_add(payload.len() as u64, Ordering::SeqCst);
            }
            Some(writer)
        });
        Wire {
            reader,
            frames,
            handed: 0,
            written,
            writer,
            failed,
        }
    }

    /// What the board has not taken yet: still with the writer, or in the
    /// socket unacknowledged.
    fn backlog(&self) -> u64 {
        let written = self.written.load(Ordering::SeqCst);
        self.handed.saturating_sub(written) + self.reader.backlog()
    }

    /// The next frame, or the writer's failure.
    async fn next(&mut self) -> Result<Frame> {
        tokio::select! {
            f = self.reader.next_frame() => f,
            e = &mut self.failed => Err(e.unwrap_or(Error::LinkLost(Lost::WriterEnded))),
        }
    }

    /// Sends what is queued, closes, then waits a few round trips for the
    /// board's close or EOF: a board that has seen us go takes the next
    /// client (a command run right after this one) at once. `clean`: the
    /// board is idle at its REPL, so a close frame is read as one.
    async fn close(self, clean: bool) {
        drop(self.frames);
        let Ok(Ok(Some(w))) = tokio::time::timeout(Duration::from_secs(2), self.writer).await
        else {
            return;
        };
        let mut reader = self.reader;
        let rtt = reader.rtt().unwrap_or(Duration::from_millis(20));
        w.shutdown(clean).await;
        // Some time besides the round trips: a board notices a client
        // gone when it next polls its socket.
        let wait = (rtt * 4 + Duration::from_millis(100)).min(Duration::from_secs(1));
        let _ = tokio::time::timeout(wait, reader.until_closed()).await;
    }
}

enum Input {
    Cmd(Option<Cmd>),
    Frame(Result<Frame>),
    Connected(Result<Link>),
    Timer,
}

impl Shell {
    async fn run(mut self, first: Link) {
        let mut wire = Some(Wire::new(first));
        let mut connecting: Option<tokio::task::JoinHandle<Result<Link>>> = None;
        // One sleep, moved only when the core's next deadline moves.
        let sleep = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        loop {
            let now = Instant::now();
            self.core.set_terminals(now, self.terminal.receiver_count());
            self.transferring
                .store(self.core.transferring(), Ordering::Relaxed);
            if let Some(w) = &mut wire {
                if self.core.wants_backlog() {
                    self.core.on_backlog(now, w.backlog());
                }
                while let Some((kind, payload)) = self.core.poll_transmit(now) {
                    w.handed += payload.len() as u64;
                    if kind == FrameKind::Text {
                        trace!("text out: {:?}", String::from_utf8_lossy(&payload));
                    }
                    let _ = w.frames.send((kind, payload));
                }
            }
            let dropped = self.obey(&mut wire, &mut connecting);
            // An answer made here goes now, not with the next input (the
            // board waits for it, and nothing else may wake us).
            let answered = self.dispatch();
            if dropped || answered {
                continue;
            }
            let timer = self.core.poll_timeout();
            if timer != armed {
                if let Some(t) = timer {
                    sleep.as_mut().reset(t.into());
                }
                armed = timer;
            }
            let input = tokio::select! {
                c = self.rx.recv() => Input::Cmd(c),
                f = async { wire.as_mut().expect("checked").next().await }, if wire.is_some() => Input::Frame(f),
                r = async { connecting.as_mut().expect("checked").await }, if connecting.is_some() => {
                    connecting = None;
                    Input::Connected(r.unwrap_or_else(|e| Err(Error::Invalid(format!("connecting: {e}")))))
                }
                _ = &mut sleep, if armed.is_some() => {
                    // Fired: set again even for the same deadline.
                    armed = None;
                    Input::Timer
                }
            };
            let now = Instant::now();
            debug!(
                "session input: {}",
                match &input {
                    Input::Cmd(_) => "command",
                    Input::Frame(Ok(_)) => "frame",
                    Input::Frame(Err(_)) => "read error",
                    Input::Connected(Ok(_)) => "connected",
                    Input::Connected(Err(_)) => "connect failed",
                    Input::Timer => "timer",
                }
            );
            match input {
                Input::Cmd(None) => break,
                Input::Cmd(Some(Cmd::Close(reply))) => {
                    self.close(&mut wire).await;
                    let _ = reply.send(());
                    break;
                }
                Input::Cmd(Some(c @ Cmd::ShareAnswer(..))) => {
                    // What the board said since it asked is read first: if
                    // it stopped waiting (a host resumed after a stop finds
                    // the request and the board's give-up queued together),
                    // the answer must not go out to be read as keys.
                    while let Some(w) = wire.as_mut() {
                        match futures_util::FutureExt::now_or_never(w.next()) {
                            Some(Ok(f)) => self.core.on_frame(now, f),
                            Some(Err(e)) => {
                                self.core.on_link_lost(now, e);
                                break;
                            }
                            None => break,
                        }
                    }
                    self.command(now, c)
                }
                Input::Cmd(Some(c)) => self.command(now, c),
                Input::Frame(Ok(f)) => {
                    if f.kind == FrameKind::Text {
                        trace!("text in: {:?}", String::from_utf8_lossy(&f.payload));
                    }
                    self.core.on_frame(now, f)
                }
                Input::Frame(Err(e)) => {
                    info!("link to {}: {e}", self.cfg.target);
                    self.core.on_link_lost(now, e);
                }
                Input::Connected(Ok(link)) => {
                    // Why, for whoever counts the reconnects in `status`:
                    // the daemon's log keeps warnings only.
                    match self.core.status(now).down {
                        // A person's soft reset ends the link: no warning
                        // in their terminal for what they asked for.
                        Some((_, Some(Error::LinkLost(Lost::BoardReset)))) => {
                            info!("reconnected to {} after a soft reset", self.cfg.target)
                        }
                        Some((d, Some(why))) => warn!(
                            "reconnected to {} after {:.1} s down (last error: {why})",
                            self.cfg.target,
                            d.as_secs_f64()
                        ),
                        _ => info!("reconnected to {}", self.cfg.target),
                    }
                    wire = Some(Wire::new(link));
                    self.core.on_connected(now);
                }
                Input::Connected(Err(e)) => {
                    warn!("{} unreachable: {e}", self.cfg.target);
                    self.core.on_connect_failed(now, e);
                }
                Input::Timer => self.core.handle_timeout(now),
            }
        }
        for (_, w) in self.waiters.drain() {
            w.finish(Err(ended()));
        }
    }

    fn command(&mut self, now: Instant, c: Cmd) {
        match c {
            Cmd::Submit(ticket, req, reply) => {
                let op = self.core.submit(now, req);
                self.tickets.insert(ticket, op);
                self.waiters.insert(op, reply);
            }
            Cmd::SubmitAfter(ticket, req, reply, after) => {
                // An upload already ended holds nothing back.
                let after = self.tickets.get(&after).copied();
                let op = self.core.submit_after(now, req, after);
                self.tickets.insert(ticket, op);
                self.waiters.insert(op, reply);
            }
            Cmd::Keys(k) => self.core.keys(now, &k),
            Cmd::Credit(ticket, n) => {
                if let Some(op) = self.tickets.get(&ticket) {
                    self.core.credit(now, *op, n);
                }
            }
            Cmd::Answer(ticket, word) => {
                if let Some(op) = self.tickets.get(&ticket) {
                    self.core.answer(now, *op, word);
                }
            }
            Cmd::Cancel(ticket) => {
                if let Some(op) = self.tickets.get(&ticket) {
                    self.core.cancel(now, *op);
                }
            }
            Cmd::SetInterrupt(allow) => self.core.set_interrupt(allow),
            Cmd::Status(reply) => {
                let _ = reply.send(self.core.status(now));
            }
            Cmd::Close(_) => {}
            Cmd::ShareServe(tx) => self.share = Some(tx),
            Cmd::LinkProgram(code) => self.core.set_link_program(code),
            Cmd::Attach(reply) => {
                let _ = reply.send((self.core.screen_line(), self.terminal.subscribe()));
            }
            Cmd::ShareAnswer(seq, status, data) => self.core.share_answer(now, seq, status, &data),
        }
    }

    /// Does to the link what the machine orders. True if the link was
    /// dropped (the loop starts over).
    fn obey(
        &mut self,
        wire: &mut Option<Wire>,
        connecting: &mut Option<tokio::task::JoinHandle<Result<Link>>>,
    ) -> bool {
        let mut dropped = false;
        while let Some(o) = self.core.poll_order() {
            match o {
                Order::DropLink => {
                    if let Some(w) = wire.take() {
                        // Given up on: nothing queued on it may reach the
                        // board later.
                        w.reader.reset_on_close();
                        w.writer.abort();
                    }
                    dropped = true;
                }
                Order::Connect => {
                    // The machine thinks the link down: one left open is stale.
                    if let Some(w) = wire.take() {
                        w.writer.abort();
                        dropped = true;
                    }
                    if connecting.is_none() {
                        let cfg = self.cfg.clone();
                        *connecting =
                            Some(tokio::spawn(async move { open_with_retry(&cfg).await }));
                    }
                }
            }
        }
        dropped
    }

    /// Hands the core's events to whoever waits for them; true if a share
    /// request was answered here (text to send).
    fn dispatch(&mut self) -> bool {
        let mut answered = false;
        while let Some(e) = self.core.poll_event() {
            match e {
                Event::Done(op, r) => {
                    self.tickets.retain(|_, o| *o != op);
                    if let Some(w) = self.waiters.remove(&op) {
                        w.finish(r);
                    }
                }
                Event::Chunk(op, data) => {
                    if let Some(Reply::Stream(tx, _)) = self.waiters.get(&op) {
                        let _ = tx.send(Piece::Data(data));
                    }
                }
                Event::Restart(op) => {
                    if let Some(Reply::Stream(tx, _)) = self.waiters.get(&op) {
                        let _ = tx.send(Piece::Restart);
                    }
                }
                Event::Progress(op, n) => {
                    if let Some(Reply::Progress(tx, _)) = self.waiters.get(&op) {
                        let _ = tx.send(n);
                    }
                }
                Event::Terminal(bytes) => {
                    // Nobody listening is fine: then nobody wants to see it.
                    let _ = self.terminal.send(bytes);
                }
                Event::BoardChanged => {
                    self.changes.fetch_add(1, Ordering::SeqCst);
                }
                Event::Link(up) => {
                    if up {
                        self.generation
                            .store(self.core.generation(), Ordering::SeqCst);
                    }
                    let _ = self.link_state.send(up);
                }
                Event::Share(ask) => {
                    let seq = ask.seq;
                    let sent = self.share.as_ref().is_some_and(|tx| tx.send(ask).is_ok());
                    if !sent {
                        // Nobody shares a directory: the board's /remote
                        // fails at once rather than waiting (ENODEV).
                        self.share = None;
                        self.core.share_answer(Instant::now(), seq, 19, &[]);
                        answered = true;
                    }
                }
            }
        }
        answered
    }

    async fn close(&mut self, wire: &mut Option<Wire>) {
        // The next client (a browser tab, webrepl_cli.py) expects the
        // friendly REPL; leave it there.
        let now = Instant::now();
        let mut clean = false;
        if wire.is_some() && self.core.is_up() {
            let op = self.core.submit(now, Request::Friendly);
            let deadline = now + Duration::from_secs(2);
            'wait: while Instant::now() < deadline {
                let now = Instant::now();
                if let Some(w) = wire.as_mut() {
                    while let Some((kind, payload)) = self.core.poll_transmit(now) {
                        w.handed += payload.len() as u64;
                        let _ = w.frames.send((kind, payload));
                    }
                }
                while let Some(e) = self.core.poll_event() {
                    if let Event::Done(done, r) = &e
                        && *done == op
                    {
                        clean = r.is_ok();
                        break 'wait;
                    }
                    if let Event::Terminal(b) = e {
                        let _ = self.terminal.send(b);
                    }
                }
                let Some(w) = wire.as_mut() else { break };
                match tokio::time::timeout(Duration::from_millis(200), w.reader.next_frame()).await
                {
                    Ok(Ok(f)) => self.core.on_frame(Instant::now(), f),
                    Ok(Err(_)) => break,
                    Err(_) => self.core.handle_timeout(Instant::now()),
                }
            }
            if let Some(w) = wire.as_mut() {
                while let Some((kind, payload)) = self.core.poll_transmit(Instant::now()) {
                    let _ = w.frames.send((kind, payload));
                }
            }
        }
        if let Some(w) = wire.take() {
            w.close(clean).await;
        }
    }
}
