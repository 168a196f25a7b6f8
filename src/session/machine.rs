//! The session's decisions, without I/O: what to send next, what a frame
//! from the board means, when to connect, when to give up. Time is an input
//! (`now`), so that the simulated board in the tests can drive it through
//! hours of slow links in microseconds.
//!
//! Two lanes share the one connection, as the board routes by frame type:
//! the text lane ([`TextLane`], the REPL: the person's keys and our
//! programs, taking turns) and the binary lane ([`BinaryLane`], file
//! transfers). Text frames always go first; binary ones fill the link.

use super::binary::{BinaryLane, BinaryOp, Moving};
use super::share::Share;
use super::shared::{Event, OpId, Order, Out, Outcome, Why};
use super::text::{Job, QueuedProgram, TextLane};
use super::timer::{Timer, TimerTable};
use crate::error::{Error, Lost, Waited};
use crate::protocol::frame::{Frame, FrameKind};
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// Pauses between connection attempts: from the first, doubling, to the last.
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LAST_PAUSE: Duration = Duration::from_secs(2);
/// After a refusal that trying again cannot fix (wrong password).
const FATAL_PAUSE: Duration = Duration::from_secs(10);
/// A link that dies sooner than this after it came up was no link: a board
/// that logs us in and then breaks every connection (endless fragments,
/// garbage) must not be reconnected at once forever, and the operations
/// waiting for it must still end within the time-out.
const STEADY: Duration = Duration::from_secs(2);
/// While an upload waits for room in the socket, its backlog is read this
/// often.
const BACKLOG_POLL: Duration = Duration::from_millis(5);
/// Keys that the board has said nothing about this long: it is asked
/// whether it is there (an echo comes within a round trip or two).
const UNHEARD_ASK: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct Config {
    /// How long the board may make no progress, and how long an operation
    /// waits for a lost link to come back.
    pub timeout: Duration,
    /// May programs that need the raw REPL stop a running program?
    pub interrupt: bool,
    /// The most GET acks in flight.
    pub get_window: u64,
    /// See [`crate::session::Config::alone`].
    pub alone: bool,
}

#[derive(Debug)]
pub enum Request {
    /// Code for the raw REPL.
    Program {
        code: Vec<u8>,
        /// Subject to the time-out (our snippets); a person's program may run
        /// as long as it likes.
        bounded: bool,
        /// Only reads: run again if the link breaks under it.
        idempotent: bool,
        /// A person's program: their keys reach it; it may change files.
        user: bool,
        /// How long it may wait for a REPL that a person's program holds.
        patience: Duration,
    },
    /// A streaming program of ours: its stdout comes as [`Event::Chunk`]s
    /// and it takes credits ([`Machine::credit`]); bounded, not run again.
    Stream {
        code: Vec<u8>,
        patience: Duration,
        /// A person's program (`exec`): no time limit, their keys reach it.
        user: bool,
    },
    Get {
        path: Vec<u8>,
        size: u64,
    },
    Put {
        path: Vec<u8>,
        data: Bytes,
        /// Only on this link (see [`BinaryOp::Put`]).
        link: Option<u64>,
    },
    Version,
    /// Soft reset (Ctrl-D at the raw prompt); the link ends with it.
    Reset,
    /// The friendly prompt for the person, now.
    Friendly,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub programs: u64,
    pub reconnects: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkState {
    Up,
    /// Down since `since`; the next attempt at `Timer::Reconnect`, with
    /// `pause` before the one after.
    Down {
        since: Instant,
        pause: Duration,
    },
    /// A connection attempt runs; the link has been down since `since`.
    Connecting {
        since: Instant,
        pause: Duration,
    },
}

/// What `status` shows of the session.
#[derive(Debug, Clone)]
pub struct Status {
    pub link_up: bool,
    /// Down, but only because it closed while idle (reopens when used).
    pub idle_closed: bool,
    /// Down: for how long, and the last error (none if it went without
    /// one).
    pub down: Option<(Duration, Option<Error>)>,
    pub moving: Vec<Moving>,
    pub queued: Vec<Moving>,
    pub programs: usize,
    /// Why programs wait for the REPL, and for how long.
    pub waiting: Option<(Duration, String)>,
    pub totals: Totals,
    /// The link's measured rate to the board, bytes/s.
    pub rate: Option<f64>,
    /// The rate uploads' slices are sized by: never above what big PUTs
    /// delivered end to end.
    pub upload_rate: Option<f64>,
    /// A person at a terminal typed lately: an upload starting now goes in
    /// shorter slices, so their keys wait less for the wire.
    pub typing: bool,
    /// Nobody else waits on the link (`Config::alone`, no terminal on
    /// it): an upload need not leave gaps for anyone.
    pub alone: bool,
}

/// Keys typed this recently make a person "typing" (see `Status::typing`).
const TYPING_LATELY: Duration = Duration::from_secs(20);
/// How long a link's first program waits for a REPL a person's program
/// holds (after a soft reset, main.py may run for ever).
const LINK_PROGRAM_PATIENCE: Duration = Duration::from_secs(10);

/// What every new link runs first ([`Machine::set_link_program`]).
#[derive(Debug, Clone)]
pub struct LinkProgram {
    pub code: Vec<u8>,
    /// What a failure means to the person, in a few words.
    pub what: &'static str,
}

/// The last line of a traceback, printable and short: what a person is
/// told of a failure.
fn last_line(traceback: &[u8]) -> String {
    let text = String::from_utf8_lossy(traceback);
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    line.chars()
        .filter(|c| !c.is_control())
        .take(160)
        .collect::<String>()
        .trim()
        .to_string()
}

pub struct Machine {
    cfg: Config,
    link: LinkState,
    text: TextLane,
    binary: BinaryLane,
    out: Out,
    /// What the shell must do to the link (see [`Order`]).
    orders: VecDeque<Order>,
    next_op: OpId,
    terminals: usize,
    generation: u64,
    totals: Totals,
    /// Why the link last went, or the last connection attempt failed.
    last_error: Option<Error>,
    /// The link was lost with nothing in flight and nobody at a terminal: a
    /// proxy's idle time-out, most likely; not a fault until it is needed.
    idle_close: bool,
    /// `last_error` is why the last connection attempt failed: what
    /// operations that gave up waiting report.
    connect_failed: bool,
    /// Since when text has waited for an upload's last data frame.
    text_held: Option<Instant>,
    /// The link's timers and the backlog's cadence (the lanes keep their
    /// own: the text lane's stop while it is frozen, and both only run
    /// while the link is up).
    timers: TimerTable,
    /// Keys dropped since the board became unreachable.
    keys_dropped: usize,
    /// The board was asked whether it is there (GET_VER) since keys went
    /// unheard.
    unheard_asked: bool,
    /// Run on every new link before the person's keys ([`Machine::set_link_program`]).
    link_program: Option<LinkProgram>,
    /// This link's run of it.
    link_run: Option<OpId>,
    /// When the current link came up, and the last drop's start and pause
    /// (carried over while links keep dying young: see `STEADY`).
    up_at: Instant,
    last_down: Option<(Instant, Duration)>,
    /// When a person last typed a key.
    last_key: Option<Instant>,
    /// The board's `/remote`: its requests, our answers.
    share: Share,
    /// Since when text has waited for the board's stdin to be free of a
    /// share request.
    share_held: Option<Instant>,
}

impl Machine {
    /// A core for a session whose first link is already up (the first
    /// connection is made before, so that its errors reach the caller).
    pub fn new(cfg: Config, now: Instant) -> Machine {
        Machine {
            text: TextLane::new(cfg.interrupt, cfg.timeout),
            binary: BinaryLane::new(cfg.get_window, cfg.timeout),
            cfg,
            link: LinkState::Up,
            out: Out::default(),
            orders: VecDeque::new(),
            next_op: 1,
            terminals: 0,
            generation: 0,
            totals: Totals::default(),
            last_error: None,
            idle_close: false,
            connect_failed: false,
            text_held: None,
            timers: TimerTable::default(),
            keys_dropped: 0,
            unheard_asked: false,
            link_program: None,
            link_run: None,
            up_at: now,
            last_down: None,
            last_key: None,
            share: Share::new(),
            share_held: None,
        }
    }

    pub fn submit(&mut self, now: Instant, req: Request) -> OpId {
        self.submit_after(now, req, None)
    }

    /// `submit`; a program with an `after` starts only once that upload's
    /// last data byte has gone to the socket, and then at once, without
    /// waiting for the board's answer to it (the board takes frames in
    /// order). An upload unknown or ended (failed too) holds nothing back:
    /// such a program must check what it finds. Not for other requests.
    pub fn submit_after(&mut self, now: Instant, req: Request, after: Option<OpId>) -> OpId {
        let op = self.next_op;
        self.next_op += 1;
        let job = |job, code, bounded, idempotent, user, patience| QueuedProgram {
            op,
            job,
            code,
            bounded,
            idempotent,
            user,
            patience,
            queued_at: now,
            stream: false,
            after,
        };
        match req {
            Request::Program {
                code,
                bounded,
                idempotent,
                user,
                patience,
            } => self
                .text
                .submit(job(Job::Program, code, bounded, idempotent, user, patience)),
            Request::Stream {
                code,
                patience,
                user,
            } => {
                let mut q = job(Job::Program, code, !user, false, user, patience);
                q.stream = true;
                self.text.submit(q)
            }
            Request::Reset => {
                let t = self.cfg.timeout;
                self.text
                    .submit(job(Job::Reset, Vec::new(), true, false, false, t))
            }
            Request::Friendly => {
                let t = self.cfg.timeout;
                self.text
                    .submit(job(Job::Friendly, Vec::new(), true, true, false, t))
            }
            Request::Get { path, size } => {
                self.binary.submit(now, op, BinaryOp::Get { path, size })
            }
            Request::Put { path, data, link } => {
                self.binary
                    .submit(now, op, BinaryOp::Put { path, data, link });
                if self.link == LinkState::Up {
                    self.binary.drop_tied(self.generation, &mut self.out);
                }
            }
            Request::Version => self.binary.submit(now, op, BinaryOp::Version),
        }
        self.step(now);
        op
    }

    /// A program every new link runs first, before keys typed meanwhile
    /// (a soft reset forgets what it set up); None: no more.
    pub fn set_link_program(&mut self, program: Option<LinkProgram>) {
        self.link_program = program;
        self.link_run = None;
    }

    /// The link's first program, before anything else on it; if it
    /// raises, once more after a collection (a MemoryError in a fragmented
    /// heap may pass once the first try's garbage is gone).
    fn run_link_program(&mut self, now: Instant) {
        let Some(program) = &self.link_program else {
            self.link_run = None;
            return;
        };
        let code = program.code.clone();
        // Not `import gc`: the person's names are theirs.
        let again = [&b"__import__('gc').collect()\n"[..], &code].concat();
        let op = self.next_op;
        self.next_op += 1;
        let job = QueuedProgram {
            op,
            job: Job::Program,
            code,
            bounded: true,
            idempotent: true,
            user: false,
            patience: LINK_PROGRAM_PATIENCE,
            queued_at: now,
            stream: false,
            after: None,
        };
        self.text.submit_first(job, again);
        self.link_run = Some(op);
    }

    /// How the link's first program ended (nobody else waits for it): a
    /// failure (its second) is told in the terminal and the log. Untold,
    /// the person met it later as a NameError, or an import that did not
    /// find the share.
    fn check_link_program(&mut self) {
        let Some(op) = self.link_run else {
            return;
        };
        let Some(i) = self
            .out
            .events
            .iter()
            .position(|e| matches!(e, Event::Done(o, _) if *o == op))
        else {
            return;
        };
        let Some(Event::Done(_, r)) = self.out.events.remove(i) else {
            return;
        };
        self.link_run = None;
        let why = match r {
            Ok(Outcome::Output(o)) if !o.stderr.is_empty() => last_line(&o.stderr),
            Ok(_) => return,
            Err(e) => e.to_string(),
        };
        let what = self.link_program.as_ref().map_or("", |p| p.what);
        warn!("{what}: {why}");
        self.out.event(Event::Terminal(
            format!("\r\x1b[K[webrepl-mount: {what}: {why}]\r\n").into_bytes(),
        ));
        if let Some(line) = self.text.screen_line() {
            self.out.event(Event::Terminal(line));
        }
    }

    pub fn keys(&mut self, now: Instant, keys: &[u8]) {
        if !keys.is_empty() {
            self.last_key = Some(now);
        }
        if self.link != LinkState::Up {
            if self.connect_failed {
                // Unreachable: keys held now would run whenever the board
                // is back (a `machine.reset()` minutes later), unseen.
                self.drop_keys(keys.len());
            } else {
                // The link just broke: held (not queued as text for
                // whatever link comes next) until it is back, or dropped
                // with the rest when an attempt fails.
                self.text.hold_keys(now, keys);
            }
            self.step(now);
            return;
        }
        self.text.keys(now, keys, &mut self.out);
        self.step(now);
    }

    /// Credits for the streaming program `op` (see [`TextLane::credit`]),
    /// or bytes the reader of GET `op` took ([`BinaryLane::credit`]).
    pub fn credit(&mut self, now: Instant, op: OpId, n: usize) {
        self.text.credit(op, n, &mut self.out);
        self.binary.credit(now, op, n);
        self.step(now);
    }

    /// A line for the streaming program `op` (see [`TextLane::answer`]).
    pub fn answer(&mut self, now: Instant, op: OpId, word: &'static str) {
        self.text.answer(op, word, &mut self.out);
        self.step(now);
    }

    /// Says so, in one line rewritten as keys are dropped.
    fn drop_keys(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.keys_dropped += n;
        let k = self.keys_dropped;
        let s = if k == 1 { "" } else { "s" };
        self.out.event(Event::Terminal(
            format!("\r\x1b[K[webrepl-mount: board unreachable, {k} key{s} dropped]").into_bytes(),
        ));
    }

    /// The caller no longer waits for `op`: a queued one is dropped, a
    /// person's running program gets Ctrl-C; the rest finishes anyway.
    pub fn cancel(&mut self, now: Instant, op: OpId) {
        self.text.cancel(op, &mut self.out);
        self.binary.cancel(op, &mut self.out);
        self.step(now);
    }

    pub fn set_terminals(&mut self, now: Instant, n: usize) {
        if n != self.terminals {
            self.terminals = n;
            self.step(now);
        }
    }

    pub fn set_interrupt(&mut self, allow: bool) {
        self.cfg.interrupt = allow;
        self.text.interrupt = allow;
    }

    /// Connections made after the first: a change means the board may have
    /// changed (or reset) while we were away.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn totals(&self) -> Totals {
        let mut t = self.totals;
        t.programs += self.out.programs;
        t
    }

    pub fn is_up(&self) -> bool {
        self.link == LinkState::Up
    }

    /// A file transfer is under way or queued.
    pub fn transferring(&self) -> bool {
        self.binary.has_work()
    }

    pub fn on_frame(&mut self, now: Instant, f: Frame) {
        self.totals.bytes_in += f.payload.len() as u64;
        self.text.unheard = None;
        self.unheard_asked = false;
        let r = match f.kind {
            FrameKind::Text => {
                let mut asks = Vec::new();
                let plain = self.share.feed(now, &f.payload, &mut asks);
                for a in asks {
                    if a.cmd == super::share::KEYS_BACK {
                        self.text.keys_back(&a.args);
                    } else {
                        self.out.event(Event::Share(a));
                    }
                }
                self.hold_for_share(now);
                if plain.is_empty() {
                    Ok(())
                } else {
                    self.text.feed(now, &plain, &mut self.out)
                }
            }
            FrameKind::Binary => self.binary.feed(now, &f.payload, &mut self.out),
            _ => Ok(()),
        };
        if let Err(why) = r {
            self.lose(now, why);
        }
        self.step(now);
    }

    /// The share's server answers request `seq` (see [`Share::answer`]).
    pub fn share_answer(&mut self, now: Instant, seq: u8, status: u8, data: &[u8]) {
        if self.text.take_interrupt() {
            // The person's Ctrl-C, held while the board's stdin is the
            // share's: the answer carries it.
            self.share.answer(now, seq, super::share::INTERRUPTED, &[]);
        } else {
            self.share.answer(now, seq, status, data);
        }
        self.step(now);
    }

    /// Requests the board's `/remote` has made.
    pub fn share_served(&self) -> u64 {
        self.share.served
    }

    /// While a share request has the board's stdin, the text lane makes no
    /// text (it would be read as the answer) and its clocks stop.
    /// True if the lane was thawed (and has text to make, maybe).
    fn hold_for_share(&mut self, now: Instant) -> bool {
        if self.share.busy(now) {
            if self.share_held.is_none() {
                self.share_held = Some(now);
                self.text.frozen = true;
            }
            match self.share.grace(now) {
                Some(t) => self.timers.set(Timer::ShareGrace, t),
                None => self.timers.stop(Timer::ShareGrace),
            }
        } else if let Some(since) = self.share_held.take()
            && self.text_held.is_none()
        {
            self.text.thaw(now.saturating_duration_since(since));
            return true;
        }
        false
    }

    pub fn on_backlog(&mut self, now: Instant, bytes: u64) {
        self.binary.on_backlog(now, bytes, &mut self.out);
        self.step(now);
    }

    /// Reading or writing the socket failed: the link is gone.
    pub fn on_link_lost(&mut self, now: Instant, err: Error) {
        // The close that follows a person's soft reset is the reset.
        let err = if std::mem::take(&mut self.text.rebooting) {
            Error::LinkLost(Lost::BoardReset)
        } else {
            err
        };
        if self.link == LinkState::Up {
            self.idle_close =
                !self.text.has_work() && !self.binary.has_work() && self.terminals == 0;
            self.down(now, err);
        }
        self.step(now);
    }

    /// What the shell must do to the link next, in order.
    pub fn poll_order(&mut self) -> Option<Order> {
        self.orders.pop_front()
    }

    /// A link that is down, wanted, and past its pause is tried again:
    /// decided here, as part of a step, so that asking never changes state.
    fn connect_if_due(&mut self, now: Instant) {
        let LinkState::Down { since, pause } = self.link else {
            return;
        };
        let pausing = self.timers.get(Timer::Reconnect).is_some_and(|t| now < t);
        if !self.wanted() || pausing {
            return;
        }
        self.timers.stop(Timer::Reconnect);
        self.link = LinkState::Connecting { since, pause };
        self.orders.push_back(Order::Connect);
    }

    pub fn on_connected(&mut self, now: Instant) {
        self.link = LinkState::Up;
        self.timers.stop(Timer::Reconnect);
        self.up_at = now;
        self.generation += 1;
        self.totals.reconnects += 1;
        self.last_error = None;
        self.connect_failed = false;
        // Text made for the link that broke (keys, a program's middle)
        // means nothing to a new one: the lanes start over on it.
        self.out.text.clear();
        if std::mem::take(&mut self.keys_dropped) > 0 {
            // The notice's line ends; the board's output goes below it.
            self.out.event(Event::Terminal(b"\r\n".to_vec()));
        }
        self.text.link_up(now);
        self.run_link_program(now);
        self.binary.drop_tied(self.generation, &mut self.out);
        self.binary.link_up();
        self.share.link_up();
        self.out.event(Event::Link(true));
        self.step(now);
    }

    pub fn on_connect_failed(&mut self, now: Instant, err: Error) {
        let LinkState::Connecting { pause, .. } = self.link else {
            return;
        };
        let since = self.down_since(now);
        self.idle_close = false;
        self.last_error = Some(err.clone());
        self.connect_failed = true;
        let held = self.text.drop_keys();
        self.drop_keys(held);
        if matches!(
            err,
            Error::WrongPassword(_) | Error::NotWebRepl { .. } | Error::Invalid(_)
        ) {
            // Trying again cannot help: every operation hears why at once.
            self.text.fail_all(&err, &mut self.out);
            self.binary.fail_all(&err, &mut self.out);
            self.go_down(since, now + FATAL_PAUSE, FIRST_PAUSE);
            self.arm_link_timers();
            return;
        }
        self.go_down(since, now + pause, (pause * 2).min(LAST_PAUSE));
        self.fail_overdue(now, &err);
        self.step(now);
    }

    /// The link is down since `since`: the next attempt at `next_try`
    /// (`Timer::Reconnect`, which wakes the session only while the link is
    /// wanted: see [`Machine::held_timer`]), `pause` before the one after.
    fn go_down(&mut self, since: Instant, next_try: Instant, pause: Duration) {
        self.link = LinkState::Down { since, pause };
        self.timers.set(Timer::Reconnect, next_try);
    }

    /// Something needs the link: work for a lane, or a person at a
    /// terminal.
    fn wanted(&self) -> bool {
        self.text.has_work() || self.binary.has_work() || self.terminals > 0
    }

    /// `Timer::Reconnect` with nothing that needs the link: it stays, due
    /// or not, and wakes nobody; the link is tried again once it is
    /// wanted (at once if the pause is over).
    fn held_timer(&self) -> Option<Timer> {
        (!self.wanted()).then_some(Timer::Reconnect)
    }

    fn down_since(&self, now: Instant) -> Instant {
        match self.link {
            LinkState::Down { since, .. } => since,
            LinkState::Connecting { since, .. } => since,
            LinkState::Up => now,
        }
    }

    /// Operations that have waited for a link as long as the time-out.
    fn fail_overdue(&mut self, now: Instant, err: &Error) {
        let (LinkState::Down { since, .. } | LinkState::Connecting { since, .. }) = self.link
        else {
            return;
        };
        let t = self.cfg.timeout;
        let deadline = move |queued: Instant| queued.max(since) + t;
        let what = || match err {
            Error::Unreachable { target, why, .. } => Error::Unreachable {
                target: target.clone(),
                why: why.clone(),
                waited: Some(t),
            },
            Error::Busy { .. } | Error::Timeout { .. } => err.clone(),
            _ => Error::LinkLost(Lost::NotBack {
                within: t,
                last: Box::new(err.clone()),
            }),
        };
        self.text
            .fail_waiting(now, |q| deadline(q.queued_at), what, &mut self.out);
        self.binary.fail_waiting(now, deadline, what, &mut self.out);
    }

    fn down(&mut self, now: Instant, err: Error) {
        self.last_error = Some(err.clone());
        self.connect_failed = false;
        // Keys that went unheard die with the link (it is reset): said,
        // whatever took it down (a stalled download's time-out first).
        if let Some((_, n)) = self.text.unheard.take() {
            self.drop_keys(n);
        }
        // A board that sent garbage would send it again: what was in flight
        // fails. A link that merely broke is tried again.
        let retry = !matches!(err, Error::Protocol(_));
        self.text.link_down(&err, retry, &mut self.out);
        self.binary.link_down(&err, retry, &mut self.out);
        let young = now.saturating_duration_since(self.up_at) < STEADY;
        match self.last_down {
            Some((since, pause)) if young => {
                debug!(
                    "the link died {:.0?} after it came up: next try in {pause:.0?}",
                    now - self.up_at
                );
                self.go_down(since, now + pause, (pause * 2).min(LAST_PAUSE));
            }
            _ => self.go_down(now, now, FIRST_PAUSE),
        }
        if let LinkState::Down { since, pause, .. } = self.link {
            self.last_down = Some((since, pause));
        }
        self.share.link_down();
        self.unheard_asked = false;
        if self.text_held.take().is_some() | self.share_held.take().is_some() {
            self.text.frozen = false;
        }
        self.orders.push_back(Order::DropLink);
        self.out.event(Event::Link(false));
    }

    /// The link must go (the board is out of step, silent, or reset).
    fn lose(&mut self, now: Instant, why: Why) {
        let err = match why {
            Why::Protocol(e) => Error::Protocol(e),
            Why::Silent(what) => Error::Timeout {
                what: Waited::Progress { what },
                after: self.cfg.timeout,
            },
            Why::Reset => Error::LinkLost(Lost::BoardReset),
            Why::Resync => Error::LinkLost(Lost::Resync),
        };
        if self.link == LinkState::Up {
            let silent = matches!(err, Error::Timeout { .. });
            let overdue = silent.then(|| err.clone());
            if matches!(err, Error::LinkLost(Lost::BoardReset)) {
                // A soft reset: nothing wrong, and nothing for a person's
                // terminal to say.
                info!("dropping the link to the board: {err}");
            } else {
                warn!("dropping the link to the board: {err}");
            }
            self.down(now, err);
            if let Some(err) = overdue {
                self.text
                    .give_up_overdue(now, self.cfg.timeout, &err, &mut self.out);
            }
        }
    }

    /// Runs the lanes until nothing changes.
    fn step(&mut self, now: Instant) {
        self.step_after(now, &[]);
    }

    /// A step after the binary lane's timers in `binary_due` expired.
    fn step_after(&mut self, now: Instant, binary_due: &[(Timer, Instant)]) {
        self.sync_unsent();
        if self.link != LinkState::Up {
            // While an attempt runs too: one to a board that is off takes
            // the whole time-out to fail.
            let err = match &self.last_error {
                Some(e) if self.connect_failed => e.clone(),
                Some(e) => Error::LinkLost(Lost::Earlier(Box::new(e.clone()))),
                None => Error::LinkLost(Lost::NotConnected),
            };
            self.fail_overdue(now, &err);
            if let LinkState::Down { .. } = self.link {
                self.connect_if_due(now);
            }
            self.arm_link_timers();
            return;
        }
        let r = self
            .text
            .drive(now, self.terminals, self.binary.is_idle(), &mut self.out)
            .and_then(|()| self.binary.handle_timeout(binary_due, &mut self.out))
            .map(|()| self.binary.check(now, &mut self.out));
        if let Err(why) = r {
            self.lose(now, why);
            self.connect_if_due(now);
            self.arm_link_timers();
            return;
        }
        self.check_link_program();
        if let Err(why) = self.check_unheard(now) {
            self.lose(now, why);
            self.connect_if_due(now);
        }
        self.arm_link_timers();
        self.arm_transfer_timers(now);
    }

    /// Keys typed into a link that went quiet (Wi-Fi out of range: no
    /// error, the socket takes them) must not run when it wakes, minutes
    /// later: a board that says nothing for `UNHEARD_ASK` after a key is
    /// asked whether it is there (GET_VER, which it answers whatever runs:
    /// a program may read keys without echo), and one still silent a
    /// time-out after the key is a lost link, reset so that the keys die
    /// with it.
    fn check_unheard(&mut self, now: Instant) -> Result<(), Why> {
        let Some((since, _)) = self.text.unheard else {
            self.timers.stop(Timer::Unheard);
            return Ok(());
        };
        // The link goes, and `down` says the keys were dropped.
        if now >= since + self.cfg.timeout {
            return Err(Why::Silent("the board stopped taking the keys typed"));
        }
        if !self.unheard_asked && now >= since + UNHEARD_ASK && self.binary.is_idle() {
            self.unheard_asked = true;
            let op = self.next_op;
            self.next_op += 1;
            self.binary.submit(now, op, BinaryOp::Version);
        }
        // Past the time to ask (not asked: a transfer holds the binary
        // lane, and its own progress tells), the time-out is next.
        let next = if self.unheard_asked || now >= since + UNHEARD_ASK {
            since + self.cfg.timeout
        } else {
            since + UNHEARD_ASK
        };
        self.timers.set(Timer::Unheard, next);
        Ok(())
    }

    /// Tells the text lane which uploads have not handed their last byte
    /// to the socket yet; programs that were to follow one that failed
    /// before it fail too.
    fn sync_unsent(&mut self) {
        self.text.unsent = self.binary.unsent();
        let binary = &self.binary;
        self.text
            .fail_orphans(|op| binary.was_handed(op), &mut self.out);
    }

    /// The socket's backlog is read again soon while an upload wants it:
    /// called wherever that changes (a step, and a transfer started by
    /// `poll_transmit`).
    fn arm_transfer_timers(&mut self, now: Instant) {
        if self.binary.wants_backlog() {
            self.timers.keep(Timer::Backlog, now + BACKLOG_POLL);
        } else {
            self.timers.stop(Timer::Backlog);
        }
    }

    /// The link's timer worked out from the queues: the first operation's
    /// end of waiting, while the link is down and wanted (the next
    /// connection attempt is recorded when the link goes down).
    fn arm_link_timers(&mut self) {
        self.timers.stop(Timer::LinkWait);
        let since = match self.link {
            LinkState::Down { since, .. } | LinkState::Connecting { since, .. } => since,
            LinkState::Up => return,
        };
        self.timers.stop(Timer::Backlog);
        if !self.wanted() {
            return;
        }
        if let Some(q) = [self.text.oldest(), self.binary.oldest()]
            .into_iter()
            .flatten()
            .min()
        {
            self.timers
                .set(Timer::LinkWait, q.max(since) + self.cfg.timeout);
        }
    }

    /// The next frame to send: text first (keys, programs), then binary;
    /// but never text in the middle of an upload ([`BinaryLane::mid_put`]).
    /// Text that waits for one freezes the text lane until it goes.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<(FrameKind, Vec<u8>)> {
        if self.link != LinkState::Up {
            return None;
        }
        // A program that waited for an upload's last byte, which went with
        // the last frame: it goes now, before any other binary frame (the
        // next upload's header would hold it for that upload's length).
        let waited = self.text.front_waits();
        self.sync_unsent();
        if waited && !self.text.front_waits() {
            self.step(now);
            if self.link != LinkState::Up {
                return None;
            }
        }
        let mid_put = self.binary.mid_put();
        if !mid_put {
            // The board's stdin belongs to a share request: its answer
            // first, no other text until it is all sent.
            if let Some(piece) = self.share.poll_transmit(now) {
                self.binary.on_written(piece.len());
                self.totals.bytes_out += piece.len() as u64;
                return Some((FrameKind::Text, piece));
            }
            if self.hold_for_share(now) {
                self.step(now);
                if self.link != LinkState::Up {
                    return None;
                }
            }
        }
        if !mid_put
            && self.share_held.is_none()
            && let Some(since) = self.text_held.take()
        {
            self.text.thaw(now.saturating_duration_since(since));
            self.step(now);
            if self.link != LinkState::Up {
                return None;
            }
        }
        let text = if self.share_held.is_some() {
            None
        } else if mid_put {
            if !self.out.text.is_empty() && self.text_held.is_none() {
                self.text_held = Some(now);
                self.text.frozen = true;
            }
            None
        } else {
            self.out.text.pop_front()
        };
        let (kind, payload) = match text {
            Some(t) => (FrameKind::Text, t),
            None => {
                self.binary.typing = self.typing(now);
                // Alone, our program's answer may wait behind the chunks:
                // nobody else waits for it, and the GET goes on at its pace.
                self.binary.alone = self.alone();
                self.binary.exchanging = self.text.exchanging() && !self.binary.alone;
                let sent = self.binary.poll_transmit(
                    now,
                    self.text.is_resetting(),
                    self.text.wants_wire(),
                );
                self.arm_transfer_timers(now);
                (FrameKind::Binary, sent?)
            }
        };
        self.binary.on_written(payload.len());
        self.totals.bytes_out += payload.len() as u64;
        Some((kind, payload))
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.out.events.pop_front()
    }

    /// When the core wants `handle_timeout`: the earliest timer a lane
    /// recorded (read, never worked out again from the state).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_timer().map(|(_, at)| at)
    }

    fn next_timer(&self) -> Option<(Timer, Instant)> {
        let up = self.link == LinkState::Up;
        let text = (up && !self.text.frozen)
            .then(|| self.text.next_timer(self.terminals))
            .flatten();
        let binary = up.then(|| self.binary.timers.next()).flatten();
        [self.timers.next_but(self.held_timer()), text, binary]
            .into_iter()
            .flatten()
            .min_by_key(|(_, at)| *at)
    }

    /// Stops the timers that are due, then lets the lanes act on them.
    pub fn handle_timeout(&mut self, now: Instant) {
        let held = self.held_timer();
        let mut due: Vec<Timer> = self
            .timers
            .expire_but(now, held)
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        let text = if self.link == LinkState::Up && !self.text.frozen {
            self.text.expire(now, self.terminals)
        } else {
            Vec::new()
        };
        let binary = if self.link == LinkState::Up {
            self.binary.timers.expire(now)
        } else {
            Vec::new()
        };
        due.extend(text.iter().chain(&binary).map(|(t, _)| *t));
        debug!("woken by {due:?}");
        // The text lane acts on its timers that expired, then every lane
        // on its state, the binary lane on its timers after the text lane
        // on its state.
        if let Err(why) = self.text.handle_timeout(now, &text, &mut self.out) {
            self.lose(now, why);
            self.connect_if_due(now);
            self.arm_link_timers();
            return;
        }
        self.step_after(now, &binary);
    }

    /// Whether the shell should read the socket's backlog again soon.
    pub fn wants_backlog(&self) -> bool {
        self.link == LinkState::Up && self.binary.wants_backlog()
    }

    /// The REPL's line as a terminal shows it now (see `TextLane::screen_line`).
    pub fn screen_line(&self) -> Option<Vec<u8>> {
        self.text.screen_line()
    }

    pub fn status(&self, now: Instant) -> Status {
        Status {
            link_up: self.link == LinkState::Up,
            idle_closed: self.idle_close && self.link != LinkState::Up,
            down: match self.link {
                LinkState::Up => None,
                LinkState::Down { since, .. } | LinkState::Connecting { since, .. } => Some((
                    now.saturating_duration_since(since),
                    self.last_error.clone(),
                )),
            },
            moving: self.binary.moving(now),
            queued: self.binary.waiting(),
            programs: self.text.queued(),
            waiting: self
                .text
                .waiting()
                .map(|(since, why)| (now.saturating_duration_since(*since), why.clone())),
            totals: self.totals(),
            rate: self.binary.rate(),
            upload_rate: self.binary.upload_rate(),
            typing: self.typing(now),
            alone: self.alone(),
        }
    }

    /// Nobody else waits on the link: a command's own (`Config::alone`),
    /// with no terminal on it.
    fn alone(&self) -> bool {
        self.cfg.alone && self.terminals == 0
    }

    fn typing(&self, now: Instant) -> bool {
        self.terminals > 0
            && self
                .last_key
                .is_some_and(|k| now.saturating_duration_since(k) < TYPING_LATELY)
    }
}
