//! A simulated board and link for the session core's tests: time is
//! simulated, so minutes of a 20 KB/s link run in milliseconds, and every
//! run is the same.
//!
//! The board does what PROTOCOL.md says real ones do: the friendly REPL
//! echoes and edits a line, Ctrl-A/B/C/D/E as at a prompt, the raw REPL and
//! raw-paste with the firmware's framing, a 255-byte input ring that drops
//! what does not fit, the binary file protocol (a surplus GET ack is read as
//! the start of the next header; a GET of a missing file drops the link),
//! and optionally ESP8266's pause after every transfer chunk.

use super::machine::Machine;
use super::shared::{Event, OpId, Order, Outcome};
use crate::error::{Error, Lost};
use crate::protocol::frame::{Frame, FrameKind};
use crate::protocol::transfer::HEADER_LEN;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// One direction of the link: serialised at `rate` bytes/s, then `delay`.
#[derive(Debug)]
pub struct Pipe {
    pub rate: f64,
    pub delay: Duration,
    /// Bytes the receiver's TCP takes (and acknowledges) before they have
    /// crossed the link: an ESP32's window, a relay's buffer. The sender's
    /// backlog does not show them.
    pub window: u64,
    free_at: Instant,
    frames: VecDeque<(Instant, FrameKind, Vec<u8>)>,
}

impl Pipe {
    fn new(now: Instant, rate: f64, delay: Duration) -> Pipe {
        Pipe {
            rate,
            delay,
            window: 0,
            free_at: now,
            frames: VecDeque::new(),
        }
    }

    fn send(&mut self, now: Instant, kind: FrameKind, payload: Vec<u8>) {
        let start = self.free_at.max(now);
        // Frame overhead: a few header bytes.
        let bytes = payload.len() + 6;
        self.free_at = if self.rate > 0.0 {
            start + Duration::from_secs_f64(bytes as f64 / self.rate)
        } else {
            start
        };
        self.frames
            .push_back((self.free_at + self.delay, kind, payload));
    }

    fn arrived(&mut self, now: Instant) -> Option<(FrameKind, Vec<u8>)> {
        match self.frames.front() {
            Some((t, _, _)) if *t <= now => self.frames.pop_front().map(|(_, k, p)| (k, p)),
            _ => None,
        }
    }

    /// What the sender's socket has not had acknowledged.
    pub fn backlog(&self, now: Instant) -> u64 {
        let on_the_way: u64 = self
            .frames
            .iter()
            .filter(|(t, _, _)| *t > now)
            .map(|(_, _, p)| p.len() as u64)
            .sum();
        on_the_way.saturating_sub(self.window)
    }

    fn next(&self) -> Option<Instant> {
        self.frames.front().map(|(t, _, _)| *t)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Repl {
    Friendly,
    Raw,
    Paste { window: usize, since_credit: usize },
}

/// What a program prints, and how long it runs.
pub type Runner = fn(&[u8]) -> (Vec<u8>, Duration);

/// The default: our sync program prints its tag, `print(X)` prints X,
/// `#sleep N` runs N ms, anything else prints nothing.
pub fn run_code(code: &[u8]) -> (Vec<u8>, Duration) {
    let text = String::from_utf8_lossy(code);
    let mut out = Vec::new();
    let mut time = Duration::from_millis(1);
    if let Some(tag) = text.strip_prefix("print('wrm-sync-'+'") {
        let tag = tag.split('\'').next().unwrap_or("").trim();
        out.extend_from_slice(format!("wrm-sync-{tag}").as_bytes());
    } else {
        for line in text.lines() {
            if let Some(x) = line
                .strip_prefix("print(")
                .and_then(|l| l.strip_suffix(')'))
            {
                out.extend_from_slice(x.as_bytes());
                out.push(b'\n');
            }
            if let Some(ms) = line
                .strip_prefix("#sleep ")
                .and_then(|n| n.trim().parse().ok())
            {
                time = Duration::from_millis(ms);
            }
        }
    }
    (out, time)
}

#[derive(Debug)]
enum Xfer {
    Header(Vec<u8>),
    Get {
        data: Vec<u8>,
        pos: usize,
    },
    Put {
        path: Vec<u8>,
        left: usize,
        data: Vec<u8>,
    },
}

pub struct Board {
    repl: Repl,
    pub line: Vec<u8>,
    /// The lines entered so far of a compound statement (at "... ").
    pub block: Vec<Vec<u8>>,
    ring: VecDeque<u8>,
    pub ring_size: usize,
    code: Vec<u8>,
    /// A program runs until then, and prints this.
    running: Option<(Instant, Vec<u8>, Vec<u8>)>,
    pub files: HashMap<Vec<u8>, Vec<u8>>,
    xfer: Xfer,
    binary_in: VecDeque<u8>,
    busy_until: Instant,
    pub chunk_delay: Duration,
    pub runner: Runner,
    pub out: VecDeque<(FrameKind, Vec<u8>)>,
    /// The board dropped the connection (a failed file operation, a reset).
    pub dropped: bool,
    /// Everything the REPL read, for checks.
    pub typed: Vec<u8>,
    /// What a person at the board's terminal would see.
    pub screen: Vec<u8>,
    /// The binary stream as the firmware's reader sees it on arrival.
    wire: Wire,
    /// Bytes of text frames taken as file data.
    pub eaten: usize,
    /// Text bytes the full ring dropped.
    pub overflow: usize,
    /// The board's `/remote` reading an answer from its stdin.
    pub reader: Option<ShareReader>,
    /// A hostile board: it takes a raw paste and never answers its end.
    pub mute_paste_end: bool,
}

/// What the board's VFS class (src/board/share.py) does with its stdin
/// while it waits for an answer: skips to `ESC 'A' seq`, reads the rest
/// window by window, granting each with `ESC 'K'`, checks the trailer.
#[derive(Debug, Default)]
pub struct ShareReader {
    pub seq: u8,
    /// The answer's bytes from its escape on.
    got: Vec<u8>,
    /// Where the next credit is due, in answer bytes.
    next_credit: usize,
    /// Status and data, or why the read failed.
    pub result: Option<Result<(u8, Vec<u8>), &'static str>>,
}

impl ShareReader {
    fn byte(&mut self, b: u8, out: &mut VecDeque<(FrameKind, Vec<u8>)>) {
        use super::share::{ANSWER, ESC, TRAILER, WINDOW};
        let head = [ESC, ANSWER, self.seq];
        if self.got.len() < 3 {
            if b == head[self.got.len()] {
                self.got.push(b);
            } else {
                self.got.clear();
                if b == ESC {
                    self.got.push(b);
                }
            }
            if self.got.len() == 1 {
                self.next_credit = WINDOW;
            }
            return;
        }
        self.got.push(b);
        let total = match self.got.get(4..8) {
            Some(l) => 9 + u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize,
            None => return,
        };
        if self.got.len() == total {
            self.result = Some(if self.got[total - 1] == TRAILER {
                Ok((self.got[3], self.got[8..total - 1].to_vec()))
            } else {
                Err("EIO: a wrong trailer")
            });
        } else if self.got.len() == self.next_credit {
            self.next_credit += WINDOW;
            out.push_back((FrameKind::Text, vec![ESC, super::share::CREDIT]));
        }
    }
}

/// Where the incoming binary stream is: in a header, in an upload's data
/// (and whether any has come), or in a download's acks.
#[derive(Debug, Default)]
struct Wire {
    header: Vec<u8>,
    left: usize,
    started: bool,
    acks: bool,
}

impl Board {
    pub fn new(now: Instant) -> Board {
        Board {
            repl: Repl::Friendly,
            line: Vec::new(),
            block: Vec::new(),
            ring: VecDeque::new(),
            ring_size: 255,
            code: Vec::new(),
            running: None,
            files: HashMap::new(),
            xfer: Xfer::Header(Vec::new()),
            binary_in: VecDeque::new(),
            busy_until: now,
            chunk_delay: Duration::ZERO,
            runner: run_code,
            out: VecDeque::new(),
            dropped: false,
            typed: Vec::new(),
            screen: Vec::new(),
            wire: Wire::default(),
            eaten: 0,
            overflow: 0,
            reader: None,
            mute_paste_end: false,
        }
    }

    fn say(&mut self, text: &[u8]) {
        self.screen.extend_from_slice(text);
        self.out.push_back((FrameKind::Text, text.to_vec()));
    }

    /// A frame arrives. In the middle of an upload (data_to_recv > 0, some
    /// data read), modwebrepl reads one byte and then up to 511 more
    /// without looking at the frame type; when that byte ended a binary
    /// frame, the next frame's payload is file data, text or not. That is
    /// down to how the socket's reads fall, so on a real board it happens
    /// now and then; here always, the worst case.
    pub fn receive(&mut self, kind: FrameKind, payload: &[u8]) {
        match kind {
            FrameKind::Binary => {
                for &b in payload {
                    self.wire.feed(b);
                }
                self.binary_in.extend(payload);
            }
            FrameKind::Text if self.wire.left > 0 && self.wire.started && !payload.is_empty() => {
                let n = payload.len().min(511).min(self.wire.left);
                self.wire.left -= n;
                self.eaten += n;
                self.binary_in.extend(&payload[..n]);
                self.receive(FrameKind::Text, &payload[n..]);
            }
            _ => {
                for &b in payload {
                    if self.ring.len() < self.ring_size {
                        self.ring.push_back(b);
                    } else {
                        self.overflow += 1;
                    }
                }
            }
        }
    }

    /// A new connection: the file protocol starts over, the REPL does not.
    pub fn reconnect(&mut self) {
        self.xfer = Xfer::Header(Vec::new());
        self.binary_in.clear();
        self.wire = Wire::default();
        self.dropped = false;
        self.out.clear();
    }

    pub fn next(&self) -> Option<Instant> {
        let run = self.running.as_ref().map(|(t, _, _)| *t);
        let bin = (!self.binary_in.is_empty()).then_some(self.busy_until);
        run.into_iter().chain(bin).min()
    }

    /// The board's `/remote` asks the host (a program of the person's is
    /// running: the board reads its stdin for the answer).
    pub fn share_ask(&mut self, seq: u8, cmd: u8, args: &[u8]) {
        use super::share::{ASK, ESC};
        let mut b = vec![ESC, ASK, seq, cmd];
        b.extend_from_slice(&(args.len() as u16).to_le_bytes());
        b.extend_from_slice(args);
        self.out.push_back((FrameKind::Text, b));
        self.reader = Some(ShareReader {
            seq,
            ..ShareReader::default()
        });
    }

    pub fn step(&mut self, now: Instant) {
        self.step_binary(now);
        if let Some(r) = &mut self.reader
            && r.result.is_none()
        {
            while r.result.is_none() {
                let Some(b) = self.ring.pop_front() else {
                    return;
                };
                r.byte(b, &mut self.out);
            }
        }
        if let Some((until, _, _)) = &self.running {
            if now < *until {
                // Ctrl-C reaches a running program (as on ESP boards).
                if let Some(i) = self.ring.iter().position(|&b| b == 0x03) {
                    self.ring.drain(..=i);
                    self.finish(b"", b"Traceback\r\nKeyboardInterrupt: \r\n");
                }
                return;
            }
            if let Some((_, out, err)) = self.running.take() {
                self.finish(&out, &err);
            }
        }
        while self.running.is_none() {
            let Some(b) = self.ring.pop_front() else {
                break;
            };
            self.typed.push(b);
            self.byte(now, b);
        }
    }

    fn finish(&mut self, out: &[u8], err: &[u8]) {
        self.running = None;
        match self.repl {
            Repl::Friendly => {
                let mut t = out.to_vec();
                t.extend_from_slice(err);
                t.extend_from_slice(b">>> ");
                self.say(&t);
            }
            _ => {
                let mut t = out.to_vec();
                t.push(4);
                t.extend_from_slice(err);
                t.extend_from_slice(b"\x04>");
                self.repl = Repl::Raw;
                self.say(&t);
            }
        }
    }

    /// A program someone else started (before we connected) runs for `d`.
    pub fn busy_for(&mut self, now: Instant, d: Duration) {
        self.running = Some((now + d, b"done\r\n".to_vec(), Vec::new()));
    }

    /// A tool's program (a dead client's) runs in the raw REPL for `d`,
    /// silent until it prints `out` and its answer's framing.
    pub fn busy_raw_for(&mut self, now: Instant, d: Duration, out: &[u8]) {
        self.repl = Repl::Raw;
        self.running = Some((now + d, out.to_vec(), Vec::new()));
    }

    /// A tool's raw paste cut off (its daemon killed while it sent the
    /// program): the board waits for the rest, or for Ctrl-C or Ctrl-D.
    pub fn left_in_paste(&mut self, code: &[u8]) {
        self.repl = Repl::Paste {
            window: 128,
            since_credit: code.len() % 128,
        };
        self.code = code.to_vec();
    }

    fn run(&mut self, now: Instant, code: &[u8]) {
        let (mut out, time) = (self.runner)(code);
        // What a runner prints from a traceback on is what the program raised.
        let (out, err) = match out.windows(9).position(|w| w == b"Traceback") {
            Some(i) => (out[..i].to_vec(), out[i..].to_vec()),
            None => {
                // `#early`: printed at its start, then it runs (a program
                // that says what it does, then does it).
                if code.windows(7).any(|w| w == b"#early\n") {
                    self.say(&std::mem::take(&mut out));
                }
                (out, Vec::new())
            }
        };
        self.running = Some((now + time, out, err));
    }

    fn byte(&mut self, now: Instant, b: u8) {
        match self.repl.clone() {
            Repl::Friendly => match b {
                0x01 if self.line.is_empty() => {
                    self.repl = Repl::Raw;
                    self.say(b"\r\nraw REPL; CTRL-B to exit\r\n>");
                }
                0x02 if self.line.is_empty() => self.say(b"\r\nMicroPython sim board\r\n>>> "),
                0x04 if self.line.is_empty() => {
                    // Soft reset: this port ends the connection before
                    // its banner.
                    self.say(b"\r\nMPY: soft reboot\r\n");
                    self.dropped = true;
                }
                0x03 => {
                    // Two writes, as MicroPython's friendly REPL makes:
                    // the line break, then readline's fresh prompt.
                    self.line.clear();
                    self.block.clear();
                    self.say(b"\r\n");
                    self.say(b">>> ");
                }
                0x7f | 0x08 if !self.line.is_empty() => {
                    self.line.pop();
                    self.say(b"\x08\x1b[K");
                }
                b'\r' => {
                    self.say(b"\r\n");
                    let line = std::mem::take(&mut self.line);
                    let blank = line.iter().all(|&b| b == b' ');
                    if !self.block.is_empty() && blank {
                        // A blank line ends a compound statement.
                        let code = std::mem::take(&mut self.block).join(&b'\n');
                        self.run(now, &code);
                    } else if !self.block.is_empty() || line.ends_with(b":") {
                        // Continued, auto-indented as readline does.
                        self.block.push(line);
                        let indent = vec![b' '; crate::protocol::line::auto_indent(&self.block)];
                        self.say(b"... ");
                        self.say(&indent);
                        self.line = indent;
                    } else if line.is_empty() {
                        self.say(b">>> ");
                    } else {
                        self.run(now, &line);
                    }
                }
                0x20..=0x7e => {
                    self.line.push(b);
                    self.say(&[b]);
                }
                _ => {}
            },
            Repl::Raw => match b {
                // Ctrl-A after Ctrl-E `A` asks for raw-paste; alone it
                // resets the raw REPL.
                0x01 if self.code == b"\x05A" => {
                    self.code.clear();
                    self.repl = Repl::Paste {
                        window: 128,
                        since_credit: 0,
                    };
                    self.say(b"R\x01\x80\x00\x01");
                }
                0x01 => {
                    self.code.clear();
                    self.say(b"raw REPL; CTRL-B to exit\r\n>");
                }
                0x02 => {
                    self.repl = Repl::Friendly;
                    self.code.clear();
                    self.say(b"\r\nMicroPython sim board\r\n>>> ");
                }
                0x04 if self.code.is_empty() => {
                    // Soft reset: this port ends the connection.
                    self.dropped = true;
                    self.repl = Repl::Friendly;
                }
                0x04 => {
                    let code = std::mem::take(&mut self.code);
                    self.say(b"OK");
                    self.run(now, &code);
                }
                _ => self.code.push(b),
            },
            Repl::Paste {
                window,
                since_credit,
            } => {
                if b == 0x03 {
                    // The paste ends in a KeyboardInterrupt.
                    self.code.clear();
                    self.repl = Repl::Raw;
                    self.say(b"\x04\x04Traceback\r\nKeyboardInterrupt: \r\n\x04>");
                    return;
                }
                if b == 0x04 && self.mute_paste_end {
                    return;
                }
                if b == 0x04 {
                    // The board has all of it: compiled, run, answered as
                    // in raw mode (without `OK`).
                    let code = std::mem::take(&mut self.code);
                    self.say(b"\x04");
                    self.repl = Repl::Raw;
                    if code.iter().any(|&c| c < 0x09) {
                        // A control byte in code does not compile.
                        self.say(b"\x04Traceback\r\nSyntaxError: invalid syntax\r\n\x04>");
                        return;
                    }
                    self.run(now, &code);
                    return;
                }
                self.code.push(b);
                let n = since_credit + 1;
                if n >= window {
                    self.say(b"\x01");
                    self.repl = Repl::Paste {
                        window,
                        since_credit: 0,
                    };
                } else {
                    self.repl = Repl::Paste {
                        window,
                        since_credit: n,
                    };
                }
            }
        }
    }

    fn chunk_done(&mut self, now: Instant) {
        self.busy_until = now + self.chunk_delay;
    }

    fn step_binary(&mut self, now: Instant) {
        while now >= self.busy_until && !self.dropped {
            match &mut self.xfer {
                Xfer::Header(h) => {
                    let Some(b) = self.binary_in.pop_front() else {
                        return;
                    };
                    h.push(b);
                    if h.len() == HEADER_LEN {
                        let h = std::mem::take(h);
                        self.header(&h);
                    }
                }
                Xfer::Get { data, pos } => {
                    let Some(b) = self.binary_in.pop_front() else {
                        return;
                    };
                    if b != 0 {
                        // Not an ack: the board would assert; treat as garbage.
                        self.dropped = true;
                        return;
                    }
                    let n = (data.len() - *pos).min(256);
                    let mut chunk = (n as u16).to_le_bytes().to_vec();
                    chunk.extend_from_slice(&data[*pos..*pos + n]);
                    *pos += n;
                    self.out.push_back((FrameKind::Binary, chunk));
                    if n == 0 {
                        self.out.push_back((FrameKind::Binary, b"WB\0\0".to_vec()));
                        self.xfer = Xfer::Header(Vec::new());
                    }
                    self.chunk_done(now);
                }
                Xfer::Put { path, left, data } => {
                    if *left == 0 {
                        let (p, d) = (std::mem::take(path), std::mem::take(data));
                        self.files.insert(p, d);
                        self.out.push_back((FrameKind::Binary, b"WB\0\0".to_vec()));
                        self.xfer = Xfer::Header(Vec::new());
                        continue;
                    }
                    if self.binary_in.is_empty() {
                        return;
                    }
                    let n = (*left).min(512).min(self.binary_in.len());
                    data.extend(self.binary_in.drain(..n));
                    *left -= n;
                    self.chunk_done(now);
                }
            }
        }
    }

    fn header(&mut self, h: &[u8]) {
        if !h.starts_with(b"WA") {
            // File data read as a header: the board fails in its driver.
            self.dropped = true;
            return;
        }
        let size = u32::from_le_bytes([h[12], h[13], h[14], h[15]]) as usize;
        let name_end = h[18..].iter().position(|&b| b == 0).unwrap_or(64);
        let path = h[18..18 + name_end].to_vec();
        match h[2] {
            3 => self.out.push_back((FrameKind::Binary, vec![1, 25, 0])),
            2 => match self.files.get(&path) {
                Some(d) => {
                    self.out.push_back((FrameKind::Binary, b"WB\0\0".to_vec()));
                    self.xfer = Xfer::Get {
                        data: d.clone(),
                        pos: 0,
                    };
                }
                // A missing file raises in the terminal driver.
                None => self.dropped = true,
            },
            1 => {
                self.out.push_back((FrameKind::Binary, b"WB\0\0".to_vec()));
                self.xfer = Xfer::Put {
                    path,
                    left: size,
                    data: Vec::new(),
                };
            }
            _ => {}
        }
    }
}

impl Wire {
    fn feed(&mut self, b: u8) {
        if self.left > 0 {
            self.left -= 1;
            self.started = true;
            return;
        }
        if self.acks && b == 0 && self.header.is_empty() {
            return;
        }
        self.acks = false;
        self.header.push(b);
        if self.header.len() == HEADER_LEN {
            let h = std::mem::take(&mut self.header);
            match h[2] {
                1 => {
                    self.left = u32::from_le_bytes([h[12], h[13], h[14], h[15]]) as usize;
                    self.started = false;
                }
                2 => self.acks = true,
                _ => {}
            }
        }
    }
}

/// The core, a link and a board, driven through simulated time.
pub struct Pair {
    pub now: Instant,
    pub start: Instant,
    pub core: Machine,
    pub board: Board,
    pub up: Pipe,
    pub down: Pipe,
    pub linked: bool,
    /// Connections the board accepts from now on.
    pub reachable: bool,
    /// Nothing crosses the link either way, and nothing says so (Wi-Fi
    /// out of range): frames wait in the pipes (a dropped link's go).
    pub stalled: bool,
    /// How long a connection attempt to an unreachable board takes to fail
    /// (a board that is off answers no SYN: the attempt times out).
    pub connect_takes: Duration,
    /// The attempt under way fails at this time.
    failing: Option<Instant>,
    pub connects: u32,
    pub done: HashMap<OpId, (Instant, Result<Outcome, Error>)>,
    pub chunks: HashMap<OpId, Vec<u8>>,
    /// When each GET chunk arrived, by op.
    pub chunk_times: HashMap<OpId, Vec<Instant>>,
    /// What the terminals got, and when.
    pub terminal: Vec<(Instant, Vec<u8>)>,
    pub changes: u32,
    /// How often the core's timers woke it.
    pub wakeups: u64,
    /// The board's share requests, in order.
    pub asks: Vec<super::share::Ask>,
    /// Every frame the session handed to the link, and when.
    pub wire: Vec<(Instant, FrameKind, Vec<u8>)>,
}

/// Every scenario ends with a check that the pair goes idle.
impl Drop for Pair {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.assert_goes_idle(Duration::from_secs(60), 20);
        }
    }
}

impl Pair {
    /// `rate` bytes/s each way (0: unlimited), `rtt`.
    pub fn new(cfg: super::machine::Config, rate: f64, rtt: Duration) -> Pair {
        let now = Instant::now();
        Pair {
            now,
            start: now,
            core: Machine::new(cfg, now),
            board: Board::new(now),
            up: Pipe::new(now, rate, rtt / 2),
            down: Pipe::new(now, rate, rtt / 2),
            linked: true,
            reachable: true,
            stalled: false,
            connect_takes: Duration::ZERO,
            failing: None,
            connects: 0,
            done: HashMap::new(),
            chunks: HashMap::new(),
            chunk_times: HashMap::new(),
            terminal: Vec::new(),
            changes: 0,
            wakeups: 0,
            asks: Vec::new(),
            wire: Vec::new(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Runs everything that can happen now, until nothing moves.
    fn turn(&mut self) {
        for _ in 0..1000 {
            if !self.round() {
                return;
            }
        }
        panic!(
            "the session and the board keep talking at one instant ({:?}; wire: {:?})",
            self.elapsed(),
            self.wire
                .last()
                .map(|(t, k, p)| (*t - self.start, *k, p.len()))
        );
    }

    fn round(&mut self) -> bool {
        let now = self.now;
        // As the shell does: what the core said before is acted on first.
        let mut moved = self.orders();
        moved |= self.events();
        if self.core.poll_timeout().is_some_and(|t| t <= now) {
            // A timer still due after the last round would wake the shell
            // again at once: counted as movement, it ends in the panic of
            // `turn` (a pair that keeps waking at one instant).
            self.core.handle_timeout(now);
            self.wakeups += 1;
            moved = true;
        }
        if self.linked {
            while let Some((k, p)) = self.core.poll_transmit(now) {
                self.wire.push((now, k, p.clone()));
                self.up.send(now, k, p);
                moved = true;
            }
            while !self.stalled
                && let Some((k, p)) = self.up.arrived(now)
            {
                self.board.receive(k, &p);
                moved = true;
            }
            // Stalled, the board hears nothing new and what it says waits.
            if !self.stalled {
                self.board.step(now);
            }
            while let Some((k, p)) = self.board.out.pop_front() {
                self.down.send(now, k, p);
                moved = true;
            }
            while !self.stalled
                && let Some((kind, payload)) = self.down.arrived(now)
            {
                self.core.on_frame(now, Frame { kind, payload });
                moved = true;
            }
            if self.core.wants_backlog() {
                self.core.on_backlog(now, self.up.backlog(now));
            }
            if self.board.dropped {
                self.cut();
                moved = true;
            }
        } else if let Some(t) = self.failing
            && t <= now
        {
            self.failing = None;
            moved = true;
            self.core
                .on_connect_failed(now, Error::unreachable("sim", "the board is away"));
        }
        moved |= self.orders();
        moved |= self.events();
        moved
    }

    /// What the machine orders done to the link, done at once.
    fn orders(&mut self) -> bool {
        let now = self.now;
        let mut moved = false;
        while let Some(o) = self.core.poll_order() {
            match o {
                Order::DropLink => {
                    self.linked = false;
                    self.up.frames.clear();
                    self.down.frames.clear();
                }
                Order::Connect => {
                    self.connects += 1;
                    if !self.reachable && !self.connect_takes.is_zero() {
                        self.failing = Some(now + self.connect_takes);
                    } else if self.reachable {
                        self.board.reconnect();
                        self.linked = true;
                        self.up.frames.clear();
                        self.down.frames.clear();
                        self.core.on_connected(now);
                    } else {
                        self.core
                            .on_connect_failed(now, Error::unreachable("sim", "the board is away"));
                    }
                }
            }
            moved = true;
        }
        moved
    }

    fn events(&mut self) -> bool {
        let now = self.now;
        let mut moved = false;
        while let Some(e) = self.core.poll_event() {
            match e {
                Event::Done(op, r) => {
                    self.done.insert(op, (now, r));
                }
                Event::Chunk(op, d) => {
                    self.chunks.entry(op).or_default().extend(d);
                    self.chunk_times.entry(op).or_default().push(now);
                }
                Event::Restart(op) => {
                    self.chunks.remove(&op);
                }
                Event::Terminal(t) => self.terminal.push((now, t)),
                Event::BoardChanged => self.changes += 1,
                Event::Share(ask) => self.asks.push(ask),
                Event::Progress(..) | Event::Link(_) => {}
            }
            moved = true;
        }
        moved
    }

    /// The link breaks (both sides notice).
    pub fn cut(&mut self) {
        self.linked = false;
        self.up.frames.clear();
        self.down.frames.clear();
        self.core.on_link_lost(
            self.now,
            Error::LinkLost(Lost::Socket(std::sync::Arc::new(std::io::Error::other(
                "cut",
            )))),
        );
    }

    /// Runs until `until` says stop or `limit` of simulated time passes.
    pub fn run_until(&mut self, limit: Duration, mut until: impl FnMut(&Pair) -> bool) -> bool {
        let end = self.now + limit;
        loop {
            self.turn();
            if until(self) {
                return true;
            }
            // The core's deadlines are not filtered: one due after a step
            // would wake the shell at once, again and again.
            let timer = self.core.poll_timeout();
            assert!(
                timer.is_none_or(|t| t > self.now),
                "a deadline is due after a step at {:?}",
                self.elapsed()
            );
            let next = [
                self.up.next(),
                self.down.next(),
                self.board.next(),
                self.failing,
            ]
            .into_iter()
            .flatten()
            .filter(|t| *t > self.now)
            .chain(timer)
            .min()
            .unwrap_or(end);
            if next >= end {
                self.now = end;
                self.turn();
                return until(self);
            }
            self.now = next;
        }
    }

    pub fn run_for(&mut self, d: Duration) {
        self.run_until(d, |_| false);
    }

    /// Runs until `op` is done; returns its result.
    pub fn wait(&mut self, op: OpId, limit: Duration) -> Result<Outcome, Error> {
        assert!(
            self.run_until(limit, |p| p.done.contains_key(&op)),
            "op {op} not done after {limit:?} (at {:?})",
            self.elapsed()
        );
        self.done.remove(&op).map(|(_, r)| r).expect("done")
    }

    /// Fails if the pair does not go idle: after `settle` of whatever the
    /// test left running, the core's timers may wake it at most `most`
    /// times in the next 10 s (quinn's `drive_bounded`, in time).
    pub fn assert_goes_idle(&mut self, settle: Duration, most: u64) {
        self.run_for(settle);
        let before = self.wakeups;
        self.run_for(Duration::from_secs(10));
        let woken = self.wakeups - before;
        assert!(
            woken <= most,
            "woken {woken} times in 10 s of nothing to do (next: {:?})",
            self.core.poll_timeout().map(|t| t - self.now)
        );
    }

    /// What the terminals were shown, as text.
    pub fn shown(&self) -> String {
        let all: Vec<u8> = self.terminal.iter().flat_map(|(_, t)| t.clone()).collect();
        String::from_utf8_lossy(&all).into_owned()
    }
}
