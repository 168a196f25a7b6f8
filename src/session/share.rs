//! The host's side of the board's `/remote` (`webrepl-mount share`), as
//! bytes: the board's VFS class (src/board/share.py) writes each request to
//! its stdout after an escape, and reads our answer from its stdin. Both are
//! the REPL's text channel, so the requests are spotted here in the board's
//! text and kept from the terminal, and the answers go out as text frames
//! no faster than the board's input ring takes them (about 256 bytes on an
//! ESP board; what does not fit is dropped without a word): after a first
//! grant that fits the ring, the board grants one more window each time it
//! has read one.
//!
//! Wire format (all little-endian):
//! - request, board to host: `ESC 'S'`, seq u8, cmd u8, len u16, `len`
//!   bytes of arguments;
//! - credit, board to host: `ESC 'K'` (one more [`WINDOW`]);
//! - direct request: `ESC 'T'`, then as a request. The board has taken the
//!   WebREPL stream from the REPL (`os.dupterm(None, 0)`) and reads the
//!   answer from the socket itself, so the ring is not in the way: the
//!   whole answer goes as one text frame, with no credits (TCP paces it);
//!   one frame, so no binary frame falls inside it (the board's big reads
//!   would eat it). Once read, and its skipped keys given back, the board
//!   says so with a credit: only then may keys go (they would arrive behind
//!   an answer still on the wire, ahead of the keys given back);
//! - answer, host to board: `ESC 'A'`, seq u8, status u8 (0, or an errno),
//!   len u32, `len` bytes, [`TRAILER`].
//!
//! The board drops whatever it reads before `ESC 'A' seq` (keys that were
//! on their way when it asked), and takes a wrong trailer as EIO: that is
//! how an answer cut by a lost link ends (see [`Share::link_up`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tracing::warn;

pub const ESC: u8 = 0x18;
pub const ASK: u8 = b'S';
pub const ASK_DIRECT: u8 = b'T';
pub const CREDIT: u8 = b'K';
pub const ANSWER: u8 = b'A';
pub const TRAILER: u8 = b'Z';
/// A request's command that needs no answer: the keys the board skipped
/// while it waited for an answer (typed ahead, or sent between two
/// requests), given back to be sent again.
pub const KEYS_BACK: u8 = b'k';
/// A request's command that needs no answer: the board stopped waiting
/// for the answer to request `seq` (15 s without a byte): sent now, it
/// would reach the REPL as keys.
pub const GAVE_UP: u8 = b'g';
/// What the board reads between two credits.
pub const WINDOW: usize = 64;
/// What may be sent before the first credit: within ESP8266's 255-byte
/// ring, with room for a few keys that were already on their way.
pub const FIRST_GRANT: usize = 224;
/// The longest request's arguments: a path, or a piece of a file written
/// by the board (the board writes in pieces of at most 4 KB).
pub const MAX_ARGS: usize = 4096 + 512;
/// The longest answer's data (the board reads in pieces of at most 4 KB;
/// a directory listing comes in pages of 2 KB).
pub const MAX_ANSWER: usize = 16 * 1024;
/// After an answer the board's stdin stays the share's this long: a
/// program reading a file asks again within a round trip, and keys sent
/// in between would be skipped by the board as it waits for the answer.
pub const GRACE: Duration = Duration::from_millis(150);
/// The most a direct answer holds the text lane waiting for the board to
/// say it has read it (a board that never says is not waited for long).
pub const READ_WAIT: Duration = Duration::from_secs(10);
/// The status that makes the board raise KeyboardInterrupt: a person's
/// Ctrl-C, carried by the answer (a Ctrl-C key would be read as data).
pub const INTERRUPTED: u8 = 255;
/// An answer's bytes besides its data.
const FRAMING: usize = 2 + 1 + 1 + 4 + 1;

/// An answer this long after its request is dropped: the board gives a
/// request 15 s (share.py) from before the host has read it whole.
pub const LATE: Duration = Duration::from_secs(12);

/// A request from the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    pub seq: u8,
    pub cmd: u8,
    pub args: Vec<u8>,
}

/// Where the board's text is, as the spotter reads it.
#[derive(Debug)]
enum Spot {
    Plain,
    /// An escape, its second byte still to come.
    Esc,
    /// A request's header (seq, cmd, len) coming; whether it is direct.
    Head(Vec<u8>, bool),
    Args {
        seq: u8,
        cmd: u8,
        len: usize,
        args: Vec<u8>,
        direct: bool,
    },
}

/// An answer on its way to the board.
#[derive(Debug)]
struct Answer {
    seq: u8,
    bytes: Vec<u8>,
    sent: usize,
    /// How far the board's credits let us send.
    allowed: usize,
    direct: bool,
}

#[derive(Debug)]
pub struct Share {
    spot: Spot,
    /// Requests taken (and whether direct, when, and whether the board
    /// has said anything since), not yet answered by the server, oldest
    /// first.
    asked: VecDeque<(u8, bool, Instant, bool)>,
    answer: Option<Answer>,
    /// A link was lost in the middle of an answer: the board may be
    /// reading it still. Each credit it sends gets a window of zeros,
    /// which ends its read with a wrong trailer (EIO), not a hang.
    flushing: bool,
    /// Bytes of padding owed to the board (see `flushing`).
    pad: usize,
    /// Until when the stdin stays the share's after an answer.
    quiet_until: Option<Instant>,
    /// A direct answer is all sent; the board has not said it read it.
    read_owed: bool,
    /// Requests seen, for `status`.
    pub served: u64,
}

impl Default for Share {
    fn default() -> Self {
        Share::new()
    }
}

impl Share {
    pub fn new() -> Share {
        Share {
            spot: Spot::Plain,
            asked: VecDeque::new(),
            answer: None,
            flushing: false,
            pad: 0,
            quiet_until: None,
            read_owed: false,
            served: 0,
        }
    }

    /// Text from the board: what is not ours goes on to the REPL's reader
    /// (returned), requests come out in `asks`.
    pub fn feed(&mut self, now: Instant, text: &[u8], asks: &mut Vec<Ask>) -> Vec<u8> {
        let mut plain = Vec::with_capacity(text.len());
        for &b in text {
            let before = plain.len();
            self.byte(now, b, &mut plain, asks);
            if plain.len() > before {
                self.board_spoke();
            }
        }
        plain
    }

    /// The board printed something of its own: it prints nothing while it
    /// waits for an answer, so it waits no more (it gave up, or was reset).
    /// Whatever of an answer is still to send would be read by the REPL as
    /// keys: it is dropped, and so are the answers still to come.
    fn board_spoke(&mut self) {
        for a in self.asked.iter_mut() {
            a.3 = true;
        }
        if self.answer.take().is_some() {
            warn!("share: the board stopped reading an answer; the rest is dropped");
        }
    }

    fn byte(&mut self, now: Instant, b: u8, plain: &mut Vec<u8>, asks: &mut Vec<Ask>) {
        match &mut self.spot {
            Spot::Plain if b == ESC => self.spot = Spot::Esc,
            Spot::Plain => plain.push(b),
            Spot::Esc => match b {
                ASK => self.spot = Spot::Head(Vec::with_capacity(4), false),
                ASK_DIRECT => self.spot = Spot::Head(Vec::with_capacity(4), true),
                CREDIT => {
                    self.spot = Spot::Plain;
                    self.credit(now);
                }
                ESC => plain.push(ESC),
                _ => {
                    self.spot = Spot::Plain;
                    plain.extend_from_slice(&[ESC, b]);
                }
            },
            Spot::Head(h, direct) => {
                h.push(b);
                if h.len() == 4 {
                    let (seq, cmd) = (h[0], h[1]);
                    let len = usize::from(u16::from_le_bytes([h[2], h[3]]));
                    if len > MAX_ARGS {
                        // Not ours after all: the bytes were the board's.
                        let mut all = vec![ESC, if *direct { ASK_DIRECT } else { ASK }];
                        all.extend_from_slice(h);
                        plain.extend_from_slice(&all);
                        self.spot = Spot::Plain;
                    } else {
                        self.spot = Spot::Args {
                            seq,
                            cmd,
                            len,
                            args: Vec::with_capacity(len),
                            direct: *direct,
                        };
                        self.finish_ask(now, asks);
                    }
                }
            }
            Spot::Args { args, .. } => {
                args.push(b);
                self.finish_ask(now, asks);
            }
        }
    }

    fn finish_ask(&mut self, now: Instant, asks: &mut Vec<Ask>) {
        let Spot::Args {
            seq,
            cmd,
            len,
            args,
            direct,
        } = &mut self.spot
        else {
            return;
        };
        if args.len() < *len {
            return;
        }
        let direct = *direct;
        let ask = Ask {
            seq: *seq,
            cmd: *cmd,
            args: std::mem::take(args),
        };
        self.spot = Spot::Plain;
        if ask.cmd == KEYS_BACK {
            asks.push(ask);
            return;
        }
        if ask.cmd == GAVE_UP {
            // Its answer, if it comes, is dropped; one on its way stops.
            for a in self.asked.iter_mut().filter(|a| a.0 == ask.seq) {
                a.3 = true;
            }
            if self.answer.as_ref().is_some_and(|a| a.seq == ask.seq) {
                self.answer = None;
            }
            self.flushing = false;
            self.pad = 0;
            self.quiet_until = None;
            self.read_owed = false;
            return;
        }
        // A new request: whatever the board was reading before is over.
        self.flushing = false;
        self.pad = 0;
        self.answer = None;
        self.read_owed = false;
        self.served += 1;
        self.asked.push_back((ask.seq, direct, now, false));
        asks.push(ask);
    }

    fn credit(&mut self, now: Instant) {
        if let Some(a) = &mut self.answer {
            a.allowed = (a.allowed + WINDOW).min(a.bytes.len());
        } else if self.flushing {
            self.pad += WINDOW;
        } else if self.read_owed {
            self.read_owed = false;
            self.quiet_until = Some(now + GRACE);
        }
    }

    /// The server's answer to request `seq`: `status` 0 with `data`, or an
    /// errno. Data beyond [`MAX_ANSWER`] is cut (the board asks for less).
    pub fn answer(&mut self, now: Instant, seq: u8, status: u8, data: &[u8]) {
        let Some(i) = self.asked.iter().position(|&(s, ..)| s == seq) else {
            // Its request went with a lost link.
            return;
        };
        let Some((_, direct, at, gone)) = self.asked.remove(i) else {
            return;
        };
        if gone {
            // The board has stopped waiting (it said so, or printed since
            // it asked): by the board's clock, which a host stopped for a
            // while (SIGSTOP, a suspended laptop) does not see.
            warn!("share: an answer the board no longer waits for is dropped");
            return;
        }
        if now.saturating_duration_since(at) >= LATE {
            // The board has stopped reading for it (share.py gives a
            // request 15 s): sent now, it would reach the REPL as keys.
            warn!("share: an answer {:.0?} late is dropped", now - at);
            return;
        }
        let data = &data[..data.len().min(MAX_ANSWER)];
        let mut bytes = Vec::with_capacity(data.len() + FRAMING);
        bytes.extend_from_slice(&[ESC, ANSWER, seq, status]);
        bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
        bytes.extend_from_slice(data);
        bytes.push(TRAILER);
        let allowed = if direct {
            bytes.len()
        } else {
            bytes.len().min(FIRST_GRANT)
        };
        self.answer = Some(Answer {
            seq,
            bytes,
            sent: 0,
            allowed,
            direct,
        });
    }

    /// Whether the board's stdin is ours: a request is being read, waits
    /// for its answer, or its answer is not all sent. Nothing else may go
    /// on the text channel meanwhile (it would be read as the answer).
    pub fn busy(&self, now: Instant) -> bool {
        self.quiet_until.is_some_and(|t| now < t)
            || !matches!(self.spot, Spot::Plain)
            || !self.asked.is_empty()
            || self.answer.as_ref().is_some_and(|a| a.sent < a.bytes.len())
            || self.pad > 0
    }

    /// When the grace after the last answer ends, if it has not.
    pub fn grace(&self, now: Instant) -> Option<Instant> {
        self.quiet_until.filter(|t| now < *t)
    }

    /// The next piece of an answer the board has room for.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.pad > 0 {
            let n = std::mem::take(&mut self.pad);
            return Some(vec![0; n]);
        }
        let a = self.answer.as_mut()?;
        if a.sent >= a.allowed {
            return None;
        }
        let piece = a.bytes[a.sent..a.allowed].to_vec();
        a.sent = a.allowed;
        if a.sent == a.bytes.len() {
            self.read_owed = a.direct;
            let quiet = if a.direct { READ_WAIT } else { GRACE };
            self.answer = None;
            self.quiet_until = Some(now + quiet);
        }
        Some(piece)
    }

    /// The link is gone: requests in flight go with it (the board's read
    /// of them fails once the link is back, see [`Share::link_up`]).
    pub fn link_down(&mut self) {
        // A direct read ends with the old socket: only the ring's reader
        // needs its answer padded out (zeros on a new link would be keys).
        let cut = self.asked.iter().any(|&(_, d, ..)| !d)
            || self.answer.as_ref().is_some_and(|a| !a.direct);
        self.spot = Spot::Plain;
        self.asked.clear();
        self.answer = None;
        self.pad = 0;
        self.quiet_until = None;
        self.read_owed = false;
        self.flushing = cut;
    }

    /// A new link: a board that was reading an answer when the last one
    /// went gets a first grant of zeros, then a window per credit, until
    /// its read ends (with a wrong trailer: EIO) and it asks again.
    pub fn link_up(&mut self) {
        if self.flushing {
            self.pad = FIRST_GRANT;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Instant {
        Instant::now()
    }

    fn ask_bytes(seq: u8, cmd: u8, args: &[u8]) -> Vec<u8> {
        let mut b = vec![ESC, ASK, seq, cmd];
        b.extend_from_slice(&(args.len() as u16).to_le_bytes());
        b.extend_from_slice(args);
        b
    }

    #[test]
    fn a_request_split_across_frames_is_taken_and_hidden() {
        let mut s = Share::new();
        let mut text = b"hello ".to_vec();
        text.extend(ask_bytes(7, b's', b"/x.py"));
        text.extend_from_slice(b" world");
        let mut asks = Vec::new();
        let mut plain = Vec::new();
        for piece in text.chunks(3) {
            plain.extend(s.feed(t0(), piece, &mut asks));
        }
        assert_eq!(plain, b"hello  world");
        assert_eq!(
            asks,
            vec![Ask {
                seq: 7,
                cmd: b's',
                args: b"/x.py".to_vec()
            }]
        );
        assert!(s.busy(t0()));
    }

    #[test]
    fn a_lone_escape_byte_is_the_boards_text() {
        let mut s = Share::new();
        let mut asks = Vec::new();
        assert_eq!(s.feed(t0(), b"a\x18b\x18", &mut asks), b"a\x18b");
        assert_eq!(s.feed(t0(), b"\x18c", &mut asks), b"\x18\x18c");
        assert!(asks.is_empty());
        // An oversized length is no request of ours.
        let mut big = vec![ESC, ASK, 1, b'r'];
        big.extend_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(s.feed(t0(), &big, &mut asks), big);
        assert!(!s.busy(t0()));
    }

    /// The board stops waiting for an answer after 15 s: one the server
    /// gives later is dropped (sent, it reached the REPL as keys), and the
    /// board's stdin is the person's again.
    #[test]
    fn an_answer_after_the_board_gave_up_is_dropped() {
        let mut s = Share::new();
        let mut asks = Vec::new();
        s.feed(t0(), &ask_bytes(1, b'r', b"x"), &mut asks);
        s.feed(t0(), &ask_bytes(2, b'r', b"y"), &mut asks);
        let late = t0() + LATE;
        s.answer(late, 1, 0, b"too late");
        assert_eq!(s.poll_transmit(late), None);
        s.answer(t0() + LATE / 2, 2, 0, b"in time");
        assert!(s.poll_transmit(t0() + LATE / 2).is_some());
    }

    /// A host stopped (SIGSTOP) past the board's 15 s finds, on resuming,
    /// the request and what the board did after giving up: its give-up
    /// note, its error output and prompt. The answer, on time by the
    /// host's clock, is dropped: sent, the REPL took it as keys.
    #[test]
    fn an_answer_the_board_stopped_waiting_for_is_dropped() {
        let mut s = Share::new();
        let mut asks = Vec::new();
        // The board printed after asking (its ERR, a prompt).
        s.feed(t0(), &ask_bytes(1, b'l', b"/remote"), &mut asks);
        assert_eq!(
            s.feed(t0(), b"ERR [Errno 19] ENODEV\r\n>>> ", &mut asks),
            b"ERR [Errno 19] ENODEV\r\n>>> "
        );
        s.answer(t0(), 1, 0, b"d\x01a");
        assert_eq!(s.poll_transmit(t0()), None);
        assert!(!s.busy(t0()));
        // The board said it gave up, and printed nothing (a program that
        // swallows the error).
        s.feed(t0(), &ask_bytes(2, b'l', b"/remote"), &mut asks);
        assert!(
            s.feed(t0(), &ask_bytes(2, GAVE_UP, b""), &mut asks)
                .is_empty()
        );
        assert_eq!(asks.len(), 2, "the give-up needs no answer");
        s.answer(t0(), 2, 0, b"d\x01a");
        assert_eq!(s.poll_transmit(t0()), None);
        assert!(!s.busy(t0()));
        // An answer the board stops reading halfway: the rest stays here.
        s.feed(t0(), &ask_bytes(3, b'r', b"x"), &mut asks);
        s.answer(t0(), 3, 0, &[1; 1000]);
        assert!(s.poll_transmit(t0()).is_some());
        s.feed(t0(), &ask_bytes(3, GAVE_UP, b""), &mut asks);
        s.feed(t0(), &[ESC, CREDIT], &mut asks);
        assert_eq!(s.poll_transmit(t0()), None);
        // A request answered with nothing printed in between goes out.
        s.feed(t0(), &ask_bytes(4, b's', b"y"), &mut asks);
        s.answer(t0(), 4, 2, b"");
        assert!(s.poll_transmit(t0()).is_some());
    }

    #[test]
    fn an_answer_goes_out_as_the_boards_credits_allow() {
        let mut s = Share::new();
        let mut asks = Vec::new();
        s.feed(t0(), &ask_bytes(1, b'r', b"x"), &mut asks);
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        s.answer(t0(), 1, 0, &data);
        let first = s.poll_transmit(t0()).expect("first grant");
        assert_eq!(first.len(), FIRST_GRANT);
        assert_eq!(&first[..4], &[ESC, ANSWER, 1, 0]);
        assert_eq!(s.poll_transmit(t0()), None, "nothing more without a credit");
        let mut all = first;
        while all.len() < data.len() + FRAMING {
            s.feed(t0(), &[ESC, CREDIT], &mut asks);
            let p = s.poll_transmit(t0()).expect("a window per credit");
            assert!(p.len() <= WINDOW);
            all.extend(p);
        }
        assert_eq!(all.len(), data.len() + FRAMING);
        assert_eq!(&all[8..8 + data.len()], &data[..]);
        assert_eq!(all.last(), Some(&TRAILER));
        // A stray credit afterwards sends nothing.
        s.feed(t0(), &[ESC, CREDIT], &mut asks);
        assert_eq!(s.poll_transmit(t0()), None);
    }

    #[test]
    fn an_answer_cut_by_a_lost_link_is_padded_to_its_end() {
        let mut s = Share::new();
        let mut asks = Vec::new();
        s.feed(t0(), &ask_bytes(2, b'r', b"x"), &mut asks);
        s.answer(t0(), 2, 0, &[1; 2000]);
        assert!(s.poll_transmit(t0()).is_some());
        s.link_down();
        assert!(!s.busy(t0()));
        s.link_up();
        assert_eq!(s.poll_transmit(t0()), Some(vec![0; FIRST_GRANT]));
        s.feed(t0(), &[ESC, CREDIT], &mut asks);
        assert_eq!(s.poll_transmit(t0()), Some(vec![0; WINDOW]));
        // The board asks again: the padding stops.
        s.feed(t0(), &ask_bytes(3, b's', b"y"), &mut asks);
        s.feed(t0(), &[ESC, CREDIT], &mut asks);
        assert_eq!(s.poll_transmit(t0()), None);
        // The answer to a request the link took is dropped.
        s.answer(t0(), 2, 0, b"late");
        assert_eq!(s.poll_transmit(t0()), None);
        s.answer(t0(), 3, 2, b"");
        assert_eq!(
            s.poll_transmit(t0()),
            Some(vec![ESC, ANSWER, 3, 2, 0, 0, 0, 0, TRAILER])
        );
        // The stdin stays the share's a moment, for the next request.
        let now = t0();
        assert!(s.busy(now));
        assert!(!s.busy(now + GRACE));
    }

    #[test]
    fn a_direct_request_gets_its_whole_answer_in_one_frame() {
        let mut s = Share::new();
        let mut asks = Vec::new();
        let mut ask = ask_bytes(4, b'r', b"x");
        ask[1] = ASK_DIRECT;
        assert!(s.feed(t0(), &ask, &mut asks).is_empty());
        assert_eq!(asks[0].seq, 4);
        let data = vec![7; 10_000];
        s.answer(t0(), 4, 0, &data);
        let all = s.poll_transmit(t0()).expect("the answer");
        assert_eq!(all.len(), data.len() + FRAMING, "no credit needed");
        assert_eq!(&all[..4], &[ESC, ANSWER, 4, 0]);
        assert_eq!(all.last(), Some(&TRAILER));
        // Keys wait until the board says it has read it (they would come
        // behind it, ahead of the keys it gives back), or for so long.
        let sent = t0();
        assert!(s.busy(sent + GRACE * 2));
        assert!(!s.busy(sent + READ_WAIT));
        let read = t0();
        s.feed(read, &[ESC, CREDIT], &mut asks);
        assert!(s.busy(read));
        assert!(!s.busy(read + GRACE));
        // A link lost while the board reads directly needs no padding: its
        // read ends with the old socket, and zeros would be keys on the new.
        s.feed(t0(), &ask, &mut asks);
        s.answer(t0(), 4, 0, &data);
        s.link_down();
        s.link_up();
        assert_eq!(s.poll_transmit(t0()), None);
    }

    #[test]
    fn keys_given_back_by_the_board_need_no_answer() {
        let mut s = Share::new();
        let mut asks = Vec::new();
        let plain = s.feed(t0(), &ask_bytes(0, KEYS_BACK, b"print(1)\r"), &mut asks);
        assert!(plain.is_empty());
        assert_eq!(asks.len(), 1);
        assert_eq!(asks[0].args, b"print(1)\r");
        assert!(!s.busy(t0()), "no answer is owed for given-back keys");
    }
}
