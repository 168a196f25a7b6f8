//! The binary lane: file transfers, one protocol exchange at a time in
//! protocol order, beside the text lane.
//!
//! Small before big: of the transfers not yet started, the smallest goes
//! first, unless one has waited long. Uploads pipeline: the next PUT's
//! header and data follow the previous PUT's data at once, and the board's
//! replies are matched in order. GET acks are kept to the window the link
//! needs ([`Window`]); PUT data enters the socket only while its backlog is
//! short, so that keys and programs are not queued behind seconds of file.
//! Progress is what the board takes, not what it answers: bytes it has
//! acknowledged at TCP level count, so a long upload never times out while
//! it moves.

use super::shared::{Event, OpId, Out, Outcome, Why};
use super::timer::{Timer, TimerTable};
use super::window::Window;
use crate::error::{Error, Lost, Waited};
use crate::protocol::ProtocolError;
use crate::protocol::transfer::{self, Get, GetOutcome, Op, PUT_FRAME, Put, PutStep};
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// A transfer that has waited this long goes next, whatever its size: a
/// stream of small ones cannot starve a big one for ever. (Long: on a slow
/// link one file can take many seconds.)
const AGING: Duration = Duration::from_secs(30);
/// Tries of one transfer over links that keep breaking under it.
const ATTEMPTS: u32 = 3;
/// The socket backlog aimed at: this much of the link's time.
const BACKLOG_TIME: f64 = 0.05;
const BACKLOG_MIN: u64 = 2 * PUT_FRAME as u64;
const BACKLOG_MAX: u64 = 256 * 1024;
const BACKLOG_START: u64 = 16 * 1024;
/// PUTs this big or bigger measure the link's rate end to end: from the
/// time the link began on them to the board's answer after their last
/// byte. Smaller ones are mostly round trip.
const PUT_RATE_MIN: u64 = 4096;
/// GET acks in flight while a program of ours goes back and forth with the
/// board: each of its answers (the raw banner, the sync, the program's)
/// queues behind the chunks already asked for. A program beside a
/// 20 KB/s download took 208 ms where 51 ms without (sim); one chunk in
/// flight, not none: the GET still moves (its silence is a dead board),
/// and a long program of ours (a listing) does not stop it.
const EXCHANGE_ACKS: u64 = 1;
/// Bytes a paced GET's reader may leave untaken, those asked for
/// included: past it no ack goes, and the board waits (it waits for an
/// ack as long as it takes).
pub const PACE_AHEAD: u64 = 256 * 1024;

#[derive(Debug, Clone)]
pub enum BinaryOp {
    Get {
        path: Vec<u8>,
        size: u64,
    },
    /// `link`: only on this link of the session (the board the caller
    /// checked it reaches), else it fails with `Lost::Resync` unsent.
    Put {
        path: Vec<u8>,
        data: Bytes,
        link: Option<u64>,
    },
    Version,
}

impl BinaryOp {
    fn size(&self) -> u64 {
        match self {
            BinaryOp::Get { size, .. } => *size,
            BinaryOp::Put { data, .. } => data.len() as u64,
            BinaryOp::Version => 0,
        }
    }

    pub fn path(&self) -> &[u8] {
        match self {
            BinaryOp::Get { path, .. } | BinaryOp::Put { path, .. } => path,
            BinaryOp::Version => b"",
        }
    }
}

#[derive(Debug)]
pub struct QueuedTransfer {
    pub op: OpId,
    pub what: BinaryOp,
    pub queued_at: Instant,
    attempts: u32,
    seq: u64,
}

enum Active {
    Get {
        q: QueuedTransfer,
        get: Get,
        acks_at: VecDeque<Instant>,
        replies: Vec<u8>,
        delivered: u64,
        started: Instant,
    },
    Put {
        q: QueuedTransfer,
        put: Put,
        handed: usize,
        /// `written` when its first data byte went to the socket.
        start: u64,
        reported: u64,
        started: Instant,
    },
    Version {
        q: QueuedTransfer,
    },
}

impl Active {
    fn queued(&self) -> &QueuedTransfer {
        match self {
            Active::Get { q, .. } | Active::Put { q, .. } | Active::Version { q } => q,
        }
    }

    fn into_queued(self) -> QueuedTransfer {
        match self {
            Active::Get { q, .. } | Active::Put { q, .. } | Active::Version { q } => q,
        }
    }
}

/// One transfer as `status` shows it.
#[derive(Debug, Clone)]
pub struct Moving {
    pub path: String,
    pub upload: bool,
    pub done: u64,
    pub total: u64,
    pub secs: f64,
}

pub struct BinaryLane {
    queue: Vec<QueuedTransfer>,
    active: VecDeque<Active>,
    window: Window,
    max_window: u64,
    seq: u64,
    /// Bytes of frames given to the socket on this link, and how many of
    /// them the board has acknowledged.
    written: u64,
    acked: u64,
    backlog: u64,
    rate: Option<f64>,
    sample: Option<(Instant, u64)>,
    /// The rate big PUTs delivered end to end ([`PUT_RATE_MIN`]), and when
    /// the last PUT was answered (a pipelined PUT's time on the link
    /// starts there, not at its header).
    put_rate: Option<f64>,
    put_answered: Option<Instant>,
    /// What the lane waits for ([`TimerTable`]): `Timer::Transfer`, the
    /// board's progress with the transfers under way, set anew by each.
    pub timers: TimerTable,
    pub timeout: Duration,
    /// Transfers refused before they started (a name the protocol cannot
    /// carry), answered at the next check.
    failed: Vec<(OpId, transfer::TransferError)>,
    /// A person types at a terminal: uploads do not pipeline.
    pub typing: bool,
    /// A program of ours is in an exchange of round trips with the board
    /// (see `TextLane::exchanging`): GETs keep [`EXCHANGE_ACKS`] in flight.
    pub exchanging: bool,
    /// Nobody else waits on this link (see `Config::alone`): the first
    /// GET starts with its whole window in flight.
    pub alone: bool,
    /// Paced GETs (their reader said so with a credit): bytes handed on
    /// and not yet taken.
    untaken: std::collections::HashMap<OpId, u64>,
    /// The last uploads whose last data byte went to the socket (a program
    /// queued behind one that failed before it does not run).
    handed_whole: VecDeque<OpId>,
}

/// Uploads remembered in `handed_whole`.
const HANDED_KEPT: usize = 256;

impl BinaryLane {
    pub fn new(max_window: u64, timeout: Duration) -> BinaryLane {
        BinaryLane {
            queue: Vec::new(),
            active: VecDeque::new(),
            window: Window::new(max_window),
            max_window,
            seq: 0,
            written: 0,
            acked: 0,
            backlog: 0,
            rate: None,
            sample: None,
            put_rate: None,
            put_answered: None,
            timers: TimerTable::default(),
            timeout,
            failed: Vec::new(),
            typing: false,
            exchanging: false,
            alone: false,
            untaken: std::collections::HashMap::new(),
            handed_whole: VecDeque::new(),
        }
    }

    pub fn submit(&mut self, now: Instant, op: OpId, what: BinaryOp) {
        self.seq += 1;
        self.queue.push(QueuedTransfer {
            op,
            what,
            queued_at: now,
            attempts: 0,
            seq: self.seq,
        });
    }

    pub fn is_idle(&self) -> bool {
        self.active.is_empty()
    }

    /// Whether the wire is in the middle of an upload: its header has gone
    /// and some of its data has not. No text frame may go now. In the
    /// middle of a PUT the board's firmware (extmod/modwebrepl.c, every
    /// port) reads a byte and then up to 511 more without looking at the
    /// frame type: if that byte ended a binary frame, the next frame is
    /// taken as file data, text or not. The file keeps its size with a
    /// program's or a person's keys in it, and they never reach the REPL.
    pub fn mid_put(&self) -> bool {
        matches!(self.active.back(), Some(Active::Put { q, handed, .. }) if *handed < q.what.size() as usize)
    }

    fn handed(&mut self, op: OpId) {
        if self.handed_whole.len() >= HANDED_KEPT {
            self.handed_whole.pop_front();
        }
        self.handed_whole.push_back(op);
    }

    /// Whether the upload `op`'s last data byte went to the socket (on this
    /// link or an earlier one).
    pub fn was_handed(&self, op: OpId) -> bool {
        self.handed_whole.contains(&op)
    }

    /// Uploads whose last data byte has not been handed to the socket yet
    /// (queued, or under way); not those that ended or failed.
    pub fn unsent(&self) -> Vec<OpId> {
        let queued = self
            .queue
            .iter()
            .filter(|q| matches!(q.what, BinaryOp::Put { .. }))
            .map(|q| q.op);
        let active = self.active.iter().filter_map(|a| match a {
            Active::Put { q, handed, .. } if *handed < q.what.size() as usize => Some(q.op),
            _ => None,
        });
        queued.chain(active).collect()
    }

    /// The link's measured rate in bytes per second, once known: how fast
    /// the socket's backlog drains.
    pub fn rate(&self) -> Option<f64> {
        self.rate
    }

    /// The rate to size uploads' slices and backlog by: the lower of
    /// [`Self::rate`] and what big PUTs delivered end to end. The backlog
    /// runs ahead while the board's TCP window and any relay's buffers
    /// fill (9 KB into a 20 KB/s link's buffers read as 72 KB/s, and a
    /// person's keys then waited behind slices three times too big).
    pub fn upload_rate(&self) -> Option<f64> {
        match (self.rate, self.put_rate) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When the longest-waiting queued transfer was queued.
    pub fn oldest(&self) -> Option<Instant> {
        self.queue.iter().map(|q| q.queued_at).min()
    }

    pub fn has_work(&self) -> bool {
        !self.queue.is_empty() || !self.active.is_empty()
    }

    /// The next one to start: the oldest of those that waited long, else
    /// the smallest.
    fn pick(&mut self, now: Instant, upload_only: bool, puts_wait: bool) -> Option<QueuedTransfer> {
        let key = |q: &QueuedTransfer| {
            let aged = now.saturating_duration_since(q.queued_at) >= AGING;
            (!aged, if aged { 0 } else { q.what.size() }, q.seq)
        };
        let i = self
            .queue
            .iter()
            .enumerate()
            // Pipelined only on a first try: after a link broke, each goes
            // alone, so that one the board cannot open (it drops the link)
            // fails by itself.
            .filter(|(_, q)| {
                !upload_only || (matches!(q.what, BinaryOp::Put { .. }) && q.attempts == 0)
            })
            .min_by_key(|(_, q)| key(q))
            .map(|(i, _)| i)?;
        // An upload that must wait for the text lane is waited for: nothing
        // else goes in its place (a big download would hold it for long).
        if puts_wait && matches!(self.queue[i].what, BinaryOp::Put { .. }) {
            return None;
        }
        // Uploads pipeline only behind uploads, and only in the order the
        // smallest-first rule would pick anyway.
        if upload_only {
            let best = self.queue.iter().min_by_key(|q| key(q))?;
            if !matches!(best.what, BinaryOp::Put { .. }) {
                return None;
            }
        }
        Some(self.queue.remove(i))
    }

    /// Upload bytes handed to the socket whose PUT the board has not
    /// answered yet.
    fn unanswered(&self) -> u64 {
        self.active
            .iter()
            .map(|a| match a {
                Active::Put { handed, .. } => *handed as u64,
                _ => 0,
            })
            .sum()
    }

    fn backlog_limit(&self) -> u64 {
        self.upload_rate()
            .map(|r| (r * BACKLOG_TIME) as u64)
            .unwrap_or(BACKLOG_START)
            .clamp(BACKLOG_MIN, BACKLOG_MAX)
    }

    /// The next binary frame to send, if any may go now. `blocked`: no new
    /// transfer may start (a soft reset waits for the lane); `puts_wait`:
    /// no upload may start (the text lane is about to send, and no text may
    /// go in an upload's middle; downloads may).
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        blocked: bool,
        puts_wait: bool,
    ) -> Option<Vec<u8>> {
        let limit = self.backlog_limit();
        let unanswered = self.unanswered();
        match self.active.back_mut() {
            Some(Active::Get {
                q, get, acks_at, ..
            }) => {
                let mut window = self.window.acks();
                if self.exchanging {
                    window = window.min(EXCHANGE_ACKS);
                }
                if let Some(untaken) = self.untaken.get(&q.op) {
                    let room = PACE_AHEAD.saturating_sub(*untaken) / transfer::GET_CHUNK;
                    if room <= acks_at.len() as u64 {
                        return None;
                    }
                    window = window.min(room);
                }
                get.set_window(window);
                let n = get.acks_to_send();
                if n == 0 {
                    return None;
                }
                acks_at.extend(std::iter::repeat_n(now, n));
                return Some(vec![0u8; n]);
            }
            Some(Active::Put {
                q, handed, start, ..
            }) => {
                if let BinaryOp::Put { data, .. } = &q.what
                    && *handed < data.len()
                {
                    let n = PUT_FRAME.min(data.len() - *handed);
                    if self.backlog + n as u64 > limit {
                        return None;
                    }
                    // The socket's backlog misses what the board's TCP
                    // window (or a relay's buffer) took and has not passed
                    // on: kilobytes that a key typed now waits behind. Only
                    // the board's answer to a PUT says its bytes have
                    // crossed: unanswered uploads may hold at most this one
                    // and the backlog aimed at.
                    let size = data.len() as u64;
                    if unanswered + n as u64 > size + limit {
                        return None;
                    }
                    if *handed == 0 {
                        *start = self.written;
                    }
                    let frame = data[*handed..*handed + n].to_vec();
                    *handed += n;
                    if *handed == data.len() {
                        let op = q.op;
                        self.handed(op);
                    }
                    return Some(frame);
                }
            }
            Some(Active::Version { .. }) => return None,
            None => {}
        }
        if blocked {
            return None;
        }
        let upload_only = !self.active.is_empty();
        // A person typing: one upload at a time, so that a key waits for
        // the rest of one slice, not for the next one queued behind it too
        // (each slice then costs a round trip of idle link).
        if upload_only && self.typing {
            return None;
        }
        let q = self.pick(now, upload_only, puts_wait)?;
        let (op, size) = match &q.what {
            BinaryOp::Get { path, size } => (Op::Get, (path, *size)),
            BinaryOp::Put { path, data, .. } => (Op::Put, (path, data.len() as u64)),
            BinaryOp::Version => (Op::GetVersion, (&Vec::new(), 0)),
        };
        let header = match transfer::header(op, size.0, if op == Op::Put { size.1 } else { 0 }) {
            Ok(h) => h,
            Err(e) => {
                // A name the protocol cannot carry: the board layer should
                // have sent it another way.
                self.failed.push((q.op, e));
                return None;
            }
        };
        if self.active.is_empty() {
            self.progress(now);
        }
        if self.alone && matches!(q.what, BinaryOp::Get { .. }) {
            self.window.open_fully();
        }
        let a = match &q.what {
            BinaryOp::Get { size, .. } => Active::Get {
                get: Get::new(*size, self.window.acks()),
                acks_at: VecDeque::new(),
                replies: Vec::new(),
                delivered: 0,
                started: now,
                q,
            },
            BinaryOp::Put { data, .. } if data.is_empty() => {
                self.handed(q.op);
                Active::Put {
                    put: Put::new(0),
                    handed: 0,
                    start: 0,
                    reported: 0,
                    started: now,
                    q,
                }
            }
            BinaryOp::Put { data, .. } => Active::Put {
                put: Put::new(data.len() as u64),
                handed: 0,
                start: 0,
                reported: 0,
                started: now,
                q,
            },
            BinaryOp::Version => Active::Version { q },
        };
        self.active.push_back(a);
        self.arm(now);
        Some(header.to_vec())
    }

    /// Every frame given to the socket, text or binary.
    pub fn on_written(&mut self, n: usize) {
        self.written += n as u64;
        self.backlog += n as u64;
    }

    /// The socket's unacknowledged bytes, read just now.
    pub fn on_backlog(&mut self, now: Instant, backlog: u64, out: &mut Out) {
        let acked = self.written.saturating_sub(backlog).max(self.acked);
        if acked > self.acked {
            self.progress(now);
            self.acked = acked;
        }
        match self.sample {
            Some((t0, a0)) if now.duration_since(t0) >= Duration::from_millis(100) => {
                // The link's rate, from intervals in which the socket was
                // never empty (else it measures our own pauses).
                if self.backlog > 0 && backlog > 0 {
                    let r = (acked - a0) as f64 / now.duration_since(t0).as_secs_f64();
                    self.rate = Some(match self.rate {
                        Some(old) => 0.7 * old + 0.3 * r,
                        None => r,
                    });
                }
                self.sample = Some((now, acked));
            }
            None => self.sample = Some((now, acked)),
            _ => {}
        }
        self.backlog = backlog;
        for a in &mut self.active {
            if let Active::Put {
                q,
                start,
                reported,
                handed,
                ..
            } = a
                && *handed > 0
            {
                let total = q.what.size();
                let done = acked.saturating_sub(*start).min(total);
                if done >= *reported + 4096 || (done == total && done > *reported) {
                    *reported = done;
                    out.event(Event::Progress(q.op, done));
                }
            }
        }
    }

    /// Whether the socket's backlog should be read again soon: an upload
    /// waits for room, or its progress is being followed.
    pub fn wants_backlog(&self) -> bool {
        self.active.iter().any(|a| match a {
            Active::Put {
                q, handed, start, ..
            } => *handed < q.what.size() as usize || self.acked < *start + q.what.size(),
            _ => false,
        })
    }

    /// A binary frame from the board.
    pub fn feed(&mut self, now: Instant, payload: &[u8], out: &mut Out) -> Result<(), Why> {
        self.progress(now);
        let Some(front) = self.active.front_mut() else {
            warn!(
                "ignoring {} stray binary bytes from the board",
                payload.len()
            );
            return Ok(());
        };
        let r = match front {
            Active::Get {
                q,
                get,
                acks_at,
                replies,
                delivered,
                ..
            } => {
                let before = get.answered();
                let r = get.feed(payload, replies);
                for i in before..get.answered() {
                    if let Some(t) = acks_at.pop_front()
                        && i > 0
                    {
                        // The first chunk also waited for the file to open.
                        self.window.on_chunk(now.saturating_duration_since(t));
                    }
                }
                let data = get.take_data();
                if !data.is_empty() {
                    *delivered += data.len() as u64;
                    if let Some(u) = self.untaken.get_mut(&q.op) {
                        *u += data.len() as u64;
                    }
                    out.event(Event::Chunk(q.op, data));
                }
                match r {
                    Ok(GetOutcome::Pending) => Ok(None),
                    Ok(GetOutcome::Done { surplus }) => Ok(Some(surplus)),
                    Err(e) => Err(e),
                }
            }
            Active::Put { put, .. } => match put.feed(payload) {
                Ok(PutStep::SendData) => put.data_sent().map(|s| (s == PutStep::Done).then_some(0)),
                Ok(PutStep::Done) => Ok(Some(0)),
                Ok(_) => Ok(None),
                Err(e) => Err(e),
            },
            Active::Version { .. } => transfer::parse_version(payload).map(|_| Some(0)),
        };
        match r {
            Ok(None) => Ok(()),
            Ok(Some(surplus)) => {
                let Some(done) = self.active.pop_front() else {
                    return Ok(());
                };
                self.finish(now, done, payload, out);
                if surplus > 0 {
                    // The board took our extra acks as the start of the next
                    // header: only a new connection is in step again.
                    warn!("a file shrank during GET; reconnecting to resynchronise");
                    return Err(Why::Resync);
                }
                Ok(())
            }
            Err(e) => {
                // Out of step with the board: this transfer fails (a board
                // that answers badly would answer badly again), the link is
                // renewed, and what followed it is sent again.
                if let Some(a) = self.active.pop_front() {
                    let q = a.into_queued();
                    out.done(
                        q.op,
                        Err(Error::Protocol(ProtocolError::Transfer(e.clone()))),
                    );
                }
                Err(Why::Protocol(ProtocolError::Transfer(e)))
            }
        }
    }

    fn finish(&mut self, now: Instant, done: Active, payload: &[u8], out: &mut Out) {
        match done {
            Active::Get {
                q,
                delivered,
                started,
                ..
            } => {
                log_transfer("GET", &q.what, delivered, started);
                out.done(q.op, Ok(Outcome::Got(delivered)));
            }
            Active::Put { q, started, .. } => {
                log_transfer("PUT", &q.what, q.what.size(), started);
                let size = q.what.size();
                let from = self.put_answered.map_or(started, |t| t.max(started));
                let secs = now.saturating_duration_since(from).as_secs_f64();
                if size >= PUT_RATE_MIN && secs > 0.0 {
                    let r = size as f64 / secs;
                    self.put_rate = Some(self.put_rate.map_or(r, |old| 0.5 * old + 0.5 * r));
                }
                self.put_answered = Some(now);
                out.done(q.op, Ok(Outcome::Put));
            }
            Active::Version { q } => {
                let v = transfer::parse_version(payload).unwrap_or((0, 0, 0));
                out.done(q.op, Ok(Outcome::Version(v.0, v.1, v.2)));
            }
        }
    }

    /// After every step: transfers refused before they started are
    /// answered, and `Timer::Transfer` runs if it should.
    pub fn check(&mut self, now: Instant, out: &mut Out) {
        for (op, e) in self.failed.drain(..) {
            out.done(op, Err(Error::Protocol(ProtocolError::Transfer(e))));
        }
        let (queue, active) = (&self.queue, &self.active);
        self.untaken.retain(|op, _| {
            queue.iter().any(|q| q.op == *op) || active.iter().any(|a| a.queued().op == *op)
        });
        self.arm(now);
    }

    /// The board took or answered something: the transfers under way wait
    /// the time-out from now.
    fn progress(&mut self, now: Instant) {
        self.timers.set(Timer::Transfer, now + self.timeout);
    }

    /// `Timer::Transfer` runs while a transfer is under way, from when it
    /// started or the board last made progress; not while nothing is, nor
    /// while a paced GET waits for its reader (no silence of the board's):
    /// it starts again when the reader takes more.
    fn arm(&mut self, now: Instant) {
        if self.active.is_empty() || self.held() {
            self.timers.stop(Timer::Transfer);
        } else {
            self.timers.keep(Timer::Transfer, now + self.timeout);
        }
    }

    /// Acts on the lane's timers that expired: no reply and no byte taken
    /// by the board for the time-out, the link is dead, whatever TCP says.
    pub fn handle_timeout(
        &mut self,
        expired: &[(Timer, Instant)],
        out: &mut Out,
    ) -> Result<(), Why> {
        if expired.iter().any(|(t, _)| *t == Timer::Transfer) && !self.active.is_empty() {
            const WHAT: &str = "a file transfer made no progress";
            // They have waited their time-out: they fail now, not on the
            // next link after as long again (a read failed after 20 s of
            // `--timeout 10`). The link goes: the board is not answering.
            while let Some(a) = self.active.pop_front() {
                let e = Error::Timeout {
                    what: Waited::Progress { what: WHAT },
                    after: self.timeout,
                };
                out.done(a.into_queued().op, Err(e));
            }
            return Err(Why::Silent(WHAT));
        }
        Ok(())
    }

    /// A paced GET whose reader has all it may leave untaken, with no ack
    /// in flight: it goes on with the reader's next credit.
    fn held(&self) -> bool {
        matches!(self.active.back(), Some(Active::Get { q, acks_at, .. })
            if acks_at.is_empty()
                && self.untaken.get(&q.op).is_some_and(|u| PACE_AHEAD.saturating_sub(*u) < transfer::GET_CHUNK))
    }

    /// The reader of GET `op` took `n` more bytes; its first credit (0
    /// will do) makes the GET paced.
    pub fn credit(&mut self, now: Instant, op: OpId, n: usize) {
        let was_held = self.held();
        let u = self.untaken.entry(op).or_insert(0);
        *u = u.saturating_sub(n as u64);
        if was_held && !self.held() {
            self.progress(now);
        }
    }

    /// A new connection: counters start again.
    pub fn link_up(&mut self) {
        self.window = Window::new(self.max_window);
        self.written = 0;
        self.acked = 0;
        self.backlog = 0;
        self.sample = None;
        self.timers.clear();
    }

    /// The link broke: what was in flight starts again on the next one,
    /// unless it has failed too often.
    pub fn link_down(&mut self, why: &Error, retry: bool, out: &mut Out) {
        self.timers.clear();
        while let Some(a) = self.active.pop_back() {
            let delivered = matches!(&a, Active::Get { delivered, .. } if *delivered > 0);
            let mut q = a.into_queued();
            q.attempts += 1;
            if !retry {
                out.done(q.op, Err(why.clone()));
                continue;
            }
            if q.attempts >= ATTEMPTS {
                out.done(
                    q.op,
                    Err(Error::LinkLost(Lost::Repeatedly {
                        attempts: ATTEMPTS,
                        last: Box::new(why.clone()),
                    })),
                );
                continue;
            }
            if delivered {
                out.event(Event::Restart(q.op));
            }
            info!(
                "{} starts again on the next link",
                String::from_utf8_lossy(q.what.path())
            );
            self.queue.push(q);
        }
    }

    /// A queued transfer its caller gave up on goes (its caller is told);
    /// one under way cannot be stopped and runs to its end.
    pub fn cancel(&mut self, op: OpId, out: &mut Out) {
        if let Some(i) = self.queue.iter().position(|q| q.op == op) {
            let q = self.queue.remove(i);
            out.done(
                q.op,
                Err(Error::Invalid(format!(
                    "{}: transfer dropped before it began",
                    String::from_utf8_lossy(q.what.path())
                ))),
            );
        }
    }

    /// Fails queued transfers that cannot wait any longer for a link.
    pub fn fail_waiting(
        &mut self,
        now: Instant,
        deadline: impl Fn(Instant) -> Instant,
        err: impl Fn() -> Error,
        out: &mut Out,
    ) {
        let mut kept = Vec::new();
        for q in self.queue.drain(..) {
            if now >= deadline(q.queued_at) {
                out.done(q.op, Err(err()));
            } else {
                kept.push(q);
            }
        }
        self.queue = kept;
    }

    /// Fails the queued uploads tied to a link other than `link`: a new
    /// link may reach another board at the same address, which must not
    /// get even the part file of what was meant for the board checked on
    /// the old one. Their callers check the new link and send again.
    pub fn drop_tied(&mut self, link: u64, out: &mut Out) {
        let (gone, kept): (Vec<_>, Vec<_>) = self
            .queue
            .drain(..)
            .partition(|q| matches!(q.what, BinaryOp::Put { link: Some(l), .. } if l != link));
        self.queue = kept;
        for q in gone {
            info!(
                "{}: not sent on a new link (its board is checked again first)",
                String::from_utf8_lossy(q.what.path())
            );
            out.done(q.op, Err(Error::LinkLost(Lost::Resync)));
        }
    }

    pub fn fail_all(&mut self, err: &Error, out: &mut Out) {
        for q in self.queue.drain(..) {
            out.done(q.op, Err(err.clone()));
        }
    }

    pub fn moving(&self, now: Instant) -> Vec<Moving> {
        self.active
            .iter()
            .map(|a| {
                let q = a.queued();
                let (done, started) = match a {
                    Active::Get {
                        delivered, started, ..
                    } => (*delivered, *started),
                    Active::Put {
                        start,
                        handed,
                        started,
                        ..
                    } => (
                        if *handed > 0 {
                            self.acked.saturating_sub(*start).min(q.what.size())
                        } else {
                            0
                        },
                        *started,
                    ),
                    Active::Version { .. } => (0, now),
                };
                Moving {
                    path: String::from_utf8_lossy(q.what.path()).into_owned(),
                    upload: matches!(q.what, BinaryOp::Put { .. }),
                    done,
                    total: q.what.size(),
                    secs: now.saturating_duration_since(started).as_secs_f64(),
                }
            })
            .collect()
    }

    pub fn waiting(&self) -> Vec<Moving> {
        self.queue
            .iter()
            .map(|q| Moving {
                path: String::from_utf8_lossy(q.what.path()).into_owned(),
                upload: matches!(q.what, BinaryOp::Put { .. }),
                done: 0,
                total: q.what.size(),
                secs: 0.0,
            })
            .collect()
    }
}

fn log_transfer(what: &str, t: &BinaryOp, len: u64, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    info!(
        "{what} {} {len} B in {secs:.3} s ({:.1} KB/s)",
        String::from_utf8_lossy(t.path()),
        len as f64 / 1000.0 / secs.max(1e-6)
    );
    debug!("{what} done");
}
