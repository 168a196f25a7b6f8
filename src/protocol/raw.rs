//! Raw REPL and raw-paste, as the firmware's `pyexec.c` speaks them.
//!
//! Entering: `\x01` at a prompt answers `raw REPL; CTRL-B to exit\r\n>`.
//! A program: raw-paste (`\x05A\x01`, flow-controlled by `\x01` credits) when
//! the board has it, else raw mode paced to the board's 256-byte input
//! buffer. Answer: stdout, `\x04`, traceback, `\x04`, `>`.

use super::login::find;
use thiserror::Error;

pub const RAW_BANNER: &[u8] = b"raw REPL; CTRL-B to exit\r\n>";
pub const FRIENDLY_PROMPT: &[u8] = b">>> ";
/// mpremote's start: end any line, interrupt twice, then raw mode.
pub const ENTER_INTERRUPTING: &[u8] = b"\r\x03\x03\x01";
/// Raw mode without stopping a running program: only a board sitting at a
/// prompt answers this.
pub const ENTER_POLITELY: &[u8] = b"\x01";
pub const LEAVE: &[u8] = b"\x02";
/// A raw-mode program (no raw-paste, so nothing can be misread as its
/// negotiation) that prints `nonce`, and what the board answers at its end.
/// Keystrokes queued on the board while a program ran (a refused polite
/// `\x01`, say) are consumed before it, so once its answer is seen the raw
/// REPL is in a known state.
pub fn sync(nonce: u32) -> (Vec<u8>, Vec<u8>) {
    let tag = format!("wrm-sync-{nonce:08x}");
    // The nonce padded past 10 characters: a shorter literal is interned
    // by the board's compiler, a name never freed, one per sync.
    let code = format!("print('wrm-sync-'+'{nonce:08x}   '.strip(),end='')\x04").into_bytes();
    let mut answer = tag.into_bytes();
    answer.extend_from_slice(b"\x04\x04>");
    (code, answer)
}

/// Without raw-paste, text sent faster than the REPL reads it is dropped.
pub const RAW_PACE_BYTES: usize = 256;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum RawError {
    #[error("unexpected byte {0:#04x} from the board during raw-paste")]
    PasteProtocol(u8),
    #[error("the board did not acknowledge the program (answered {0:?})")]
    NoOk(String),
    #[error("a program's answer went past {MAX_OUTPUT} bytes")]
    TooLong,
}

/// More than any of our programs prints (a 100k-entry listing is ~8 MB):
/// past it the board is not answering our program.
pub const MAX_OUTPUT: usize = 64 << 20;

/// Finds `pattern` in text that arrives in pieces.
#[derive(Debug)]
pub struct WaitFor {
    pattern: Vec<u8>,
    seen: Vec<u8>,
}

impl WaitFor {
    pub fn new(pattern: impl Into<Vec<u8>>) -> Self {
        WaitFor {
            pattern: pattern.into(),
            seen: Vec::new(),
        }
    }

    /// True once the pattern has arrived; `rest` gets what followed it.
    pub fn feed(&mut self, text: &[u8], rest: &mut Vec<u8>) -> bool {
        self.seen.extend_from_slice(text);
        match find(&self.seen, &self.pattern) {
            Some(i) => {
                rest.extend_from_slice(&self.seen[i + self.pattern.len()..]);
                true
            }
            None => {
                // Keep only what may still be the start of the pattern.
                let keep = self.pattern.len().saturating_sub(1);
                if self.seen.len() > keep {
                    self.seen.drain(..self.seen.len() - keep);
                }
                false
            }
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Output {
    pub stdout: Vec<u8>,
    /// The traceback of an uncaught exception; empty when the program ended.
    pub stderr: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Send(Vec<u8>),
    /// Send, then pause before sending more (raw mode without flow control).
    SendPaced(Vec<u8>),
    /// Read more text from the board and `feed` it.
    Wait,
    Done(Output),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Negotiate,
    Paste,
    /// Raw-paste refused: wait for the raw prompt, then use raw mode.
    AwaitPrompt,
    /// Firmware older than raw-paste echoed a fresh raw banner.
    AwaitBanner,
    Raw,
    AwaitOk,
    Stdout,
    Stderr,
    Ready,
    Done,
}

/// One program run at the raw prompt.
#[derive(Debug)]
pub struct Program {
    code: Vec<u8>,
    sent: usize,
    end_sent: bool,
    state: State,
    window: usize,
    credit: usize,
    buf: Vec<u8>,
    out: Output,
    banner: WaitFor,
    /// Raw-paste window known in advance (0: negotiate first).
    known: usize,
    /// The first `\x01` of the negotiation is counted in what went ahead.
    granted_ahead: bool,
    /// Bytes of the answer searched for its end markers.
    examined: u64,
}

impl Program {
    pub fn new(code: impl Into<Vec<u8>>) -> Self {
        Program {
            code: code.into(),
            sent: 0,
            end_sent: false,
            state: State::Start,
            window: 0,
            credit: 0,
            buf: Vec::new(),
            out: Output::default(),
            banner: WaitFor::new(RAW_BANNER),
            known: 0,
            granted_ahead: false,
            examined: 0,
        }
    }

    /// A program for a board whose raw-paste window is known from an earlier
    /// program on this connection: the first window goes out with the
    /// request. (Refused after all, the bytes sent count as raw input.)
    pub fn with_window(code: impl Into<Vec<u8>>, window: usize) -> Self {
        let mut p = Program::new(code);
        p.known = window;
        p
    }

    /// A short program in raw mode, for a board whose raw-paste window is
    /// not known yet: with its end it fits the board's input buffer whole
    /// (see [`RAW_PACE_BYTES`]), and its answer comes in one round trip,
    /// where raw-paste's negotiation costs one more.
    pub fn raw(code: impl Into<Vec<u8>>) -> Self {
        let mut p = Program::new(code);
        p.state = State::Raw;
        p
    }

    /// Whether raw-paste is being used (known once negotiated).
    pub fn pasting(&self) -> bool {
        self.window > 0
    }

    /// Whether some of the code (or its end) has yet to go out.
    pub fn sending(&self) -> bool {
        !self.end_sent
    }

    /// Whether the board has taken the whole program (it answered the end
    /// of the paste, or `OK`): from then on it runs as long as it likes;
    /// before, a board that goes quiet is a board that stopped taking it.
    pub fn taken(&self) -> bool {
        matches!(
            self.state,
            State::Stdout | State::Stderr | State::Ready | State::Done
        )
    }

    /// Bytes of the answer searched so far: the work the answer cost.
    pub fn examined(&self) -> u64 {
        self.examined
    }

    /// The raw-paste window the board announced (0: none).
    pub fn window(&self) -> usize {
        self.window
    }

    /// The stdout that has arrived so far, taken: a streaming program's
    /// answer is handed on as it comes, not kept.
    pub fn take_stdout(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out.stdout)
    }

    pub fn poll(&mut self) -> Step {
        match self.state {
            State::Start => {
                self.state = State::Negotiate;
                let mut first = b"\x05A\x01".to_vec();
                if self.known > 0 {
                    // The board will grant this much anyway: send it now
                    // and save the round trip of the negotiation.
                    // The board grants two windows at the start; the three
                    // request bytes share an ESP8266's 255-byte input ring.
                    let budget = (2 * self.known).saturating_sub(4);
                    let n = budget.min(self.code.len());
                    first.extend_from_slice(&self.code[..n]);
                    self.sent = n;
                    self.credit = budget - n;
                    self.granted_ahead = true;
                    if n == self.code.len() && n < budget {
                        // All of it fits: the end marker goes too, and the
                        // answer comes back in one round trip.
                        first.push(0x04);
                        self.end_sent = true;
                    }
                }
                Step::Send(first)
            }
            State::Paste if self.sent < self.code.len() && self.credit > 0 => {
                let n = self.credit.min(self.code.len() - self.sent);
                self.credit -= n;
                self.sent += n;
                Step::Send(self.code[self.sent - n..self.sent].to_vec())
            }
            State::Paste | State::Stdout if self.sent == self.code.len() && !self.end_sent => {
                self.end_sent = true;
                Step::Send(b"\x04".to_vec())
            }
            State::Raw if self.sent == 0 && self.code.len() < RAW_PACE_BYTES => {
                let mut all = self.code.clone();
                all.push(0x04);
                self.sent = self.code.len();
                self.end_sent = true;
                self.state = State::AwaitOk;
                Step::Send(all)
            }
            State::Raw if self.sent < self.code.len() => {
                let n = RAW_PACE_BYTES.min(self.code.len() - self.sent);
                self.sent += n;
                Step::SendPaced(self.code[self.sent - n..self.sent].to_vec())
            }
            State::Raw => {
                self.state = State::AwaitOk;
                if self.end_sent {
                    // Sent ahead with the request; a second one would run an
                    // empty program, which soft-resets the board.
                    return Step::Wait;
                }
                self.end_sent = true;
                Step::Send(b"\x04".to_vec())
            }
            State::Done => Step::Done(std::mem::take(&mut self.out)),
            _ => Step::Wait,
        }
    }

    pub fn feed(&mut self, text: &[u8]) -> Result<(), RawError> {
        self.buf.extend_from_slice(text);
        loop {
            let before = (self.state, self.buf.len());
            self.advance()?;
            if (self.state, self.buf.len()) == before || self.state == State::Done {
                return Ok(());
            }
        }
    }

    fn advance(&mut self) -> Result<(), RawError> {
        match self.state {
            State::Negotiate if self.buf.len() >= 2 => match &self.buf[..2] {
                b"R\x01" if self.buf.len() >= 4 => {
                    let window = u16::from_le_bytes([self.buf[2], self.buf[3]]) as usize;
                    self.window = window.max(1);
                    // The grant is two windows, but an ESP8266's input ring
                    // holds one byte less than that: stay a byte short.
                    if self.known == 0 {
                        self.credit = self.window - 1;
                    }
                    self.buf.drain(..4);
                    self.state = State::Paste;
                }
                b"R\x01" => {}
                b"R\x00" => {
                    self.buf.drain(..2);
                    self.state = State::AwaitPrompt;
                }
                _ => self.state = State::AwaitBanner,
            },
            State::AwaitPrompt => {
                if let Some(i) = self.buf.iter().position(|&b| b == b'>') {
                    self.buf.drain(..=i);
                    self.state = State::Raw;
                }
            }
            State::AwaitBanner => {
                let mut rest = Vec::new();
                if self.banner.feed(&std::mem::take(&mut self.buf), &mut rest) {
                    self.buf = rest;
                    self.state = State::Raw;
                }
            }
            State::Paste => {
                while let Some(&b) = self.buf.first() {
                    self.buf.remove(0);
                    match b {
                        // The board's first grant, already spent ahead.
                        0x01 if self.granted_ahead => self.granted_ahead = false,
                        0x01 => self.credit += self.window,
                        // The board has read all it will: either our end
                        // marker or it stopped early (then we still owe it
                        // one, which `poll` sends).
                        0x04 => {
                            self.sent = self.code.len();
                            self.state = State::Stdout;
                            break;
                        }
                        other => return Err(RawError::PasteProtocol(other)),
                    }
                }
            }
            State::AwaitOk if self.buf.len() >= 2 => {
                if &self.buf[..2] != b"OK" {
                    return Err(RawError::NoOk(
                        String::from_utf8_lossy(&self.buf).into_owned(),
                    ));
                }
                self.buf.drain(..2);
                self.state = State::Stdout;
            }
            State::Stdout | State::Stderr => {
                // Each byte is looked at once: what holds no end marker goes
                // to the output at once, so a long answer costs its length,
                // not its length times its frames.
                let end = self.buf.iter().position(|&b| b == 0x04);
                self.examined += end.map_or(self.buf.len(), |i| i + 1) as u64;
                let to = if self.state == State::Stdout {
                    &mut self.out.stdout
                } else {
                    &mut self.out.stderr
                };
                match end {
                    Some(i) => {
                        to.extend(self.buf.drain(..=i).take(i));
                        self.state = if self.state == State::Stdout {
                            State::Stderr
                        } else {
                            State::Ready
                        };
                    }
                    None => to.append(&mut self.buf),
                }
                if self.out.stdout.len() + self.out.stderr.len() > MAX_OUTPUT {
                    return Err(RawError::TooLong);
                }
            }
            State::Ready => {
                if let Some(i) = self.buf.iter().position(|&b| b == b'>') {
                    self.buf.drain(..=i);
                    self.state = State::Done;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Takes the board's notice of a rejected second client out of the text it
/// sends. The notice can arrive at any moment, in the middle of a raw-REPL
/// answer or a raw-paste negotiation, and a board may print it in several
/// writes: this works on the byte stream, holding back only a tail that may
/// still turn out to be the start of a notice.
#[derive(Debug, Default)]
pub struct NoticeFilter {
    held: Vec<u8>,
}

const NOTICE_START: &[u8] = b"\nConcurrent WebREPL connection from ";
const NOTICE_END: &[u8] = b" rejected\n";
/// A notice names an address and a port: longer, it is not one.
const MAX_NOTICE: usize = 256;

impl NoticeFilter {
    /// Returns the text that is not part of a notice, and the notices.
    pub fn feed(&mut self, text: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
        self.held.extend_from_slice(text);
        let mut out = Vec::new();
        let mut notices = Vec::new();
        loop {
            match find(&self.held, NOTICE_START) {
                Some(i) => match find(&self.held[i..], NOTICE_END) {
                    Some(j) => {
                        out.extend_from_slice(&self.held[..i]);
                        notices.push(self.held[i..i + j + NOTICE_END.len()].to_vec());
                        self.held.drain(..i + j + NOTICE_END.len());
                    }
                    None if self.held.len() - i > MAX_NOTICE => {
                        // Too long for a notice: text after all.
                        out.extend(self.held.drain(..=i));
                    }
                    None => {
                        // A notice has begun: wait for its end.
                        out.extend(self.held.drain(..i));
                        return (out, notices);
                    }
                },
                None => {
                    let keep = partial_start(&self.held);
                    out.extend(self.held.drain(..self.held.len() - keep));
                    return (out, notices);
                }
            }
        }
    }
}

impl NoticeFilter {
    /// Whether text is held back as the possible start of a notice.
    pub fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// What is held back, given up as text: no notice came on with it (a
    /// board writes one whole).
    pub fn flush(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }
}

/// How many bytes at the end of `buf` are a proper start of a notice.
fn partial_start(buf: &[u8]) -> usize {
    partial(buf, NOTICE_START)
}

/// How many bytes at the end of `buf` are a proper start of `pattern`.
fn partial(buf: &[u8], pattern: &[u8]) -> usize {
    (1..pattern.len().min(buf.len() + 1))
        .rev()
        .find(|&n| buf.ends_with(&pattern[..n]))
        .unwrap_or(0)
}

/// Passes text on, except a pattern that may arrive in pieces: what could
/// still be its start is held back until the next text tells.
#[derive(Debug)]
pub struct Holdback {
    pattern: &'static [u8],
    held: Vec<u8>,
}

impl Holdback {
    pub fn new(pattern: &'static [u8]) -> Holdback {
        Holdback {
            pattern,
            held: Vec::new(),
        }
    }

    /// The text to pass on, and, once the pattern has come, what followed it.
    pub fn feed(&mut self, text: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
        self.held.extend_from_slice(text);
        if let Some(i) = find(&self.held, self.pattern) {
            let rest = self.held.split_off(i + self.pattern.len());
            self.held.truncate(i);
            return (std::mem::take(&mut self.held), Some(rest));
        }
        let keep = partial(&self.held, self.pattern);
        let pass = self.held.drain(..self.held.len() - keep).collect();
        (pass, None)
    }
}

/// What the board prints when a Ctrl-A takes it from the friendly REPL.
pub const RAW_ENTERED: &[u8] = b"\r\nraw REPL; CTRL-B to exit\r\n>";

#[cfg(test)]
mod tests {
    use super::*;

    fn drive(p: &mut Program, board: &[&[u8]]) -> (Vec<Step>, Option<Output>) {
        let mut sent = Vec::new();
        let mut answers = board.iter();
        loop {
            match p.poll() {
                Step::Done(o) => return (sent, Some(o)),
                Step::Wait => match answers.next() {
                    Some(a) => p.feed(a).unwrap(),
                    None => return (sent, None),
                },
                s => sent.push(s),
            }
        }
    }

    #[test]
    fn a_long_answer_in_many_frames_is_searched_once() {
        // 100k listing lines, one frame each, as a board prints them.
        let line = b"F 1234 780000000 2f6469722f66696c652e7079\r\n";
        let mut p = Program::with_window(b"x".to_vec(), 128);
        let _ = p.poll();
        p.feed(b"R\x01\x80\x00\x04").unwrap();
        for _ in 0..100_000 {
            p.feed(line).unwrap();
        }
        p.feed(b"\x04\x04>").unwrap();
        let Step::Done(out) = p.poll() else {
            panic!("no answer")
        };
        assert_eq!(out.stdout.len(), 100_000 * line.len());
        // Linear: every byte once, plus the two end markers.
        assert_eq!(p.examined(), (100_000 * line.len() + 2) as u64);
    }

    #[test]
    fn an_answer_past_the_bound_is_an_error() {
        let mut p = Program::with_window(b"x".to_vec(), 128);
        let _ = p.poll();
        p.feed(b"R\x01\x80\x00\x04").unwrap();
        let junk = vec![b'j'; 1 << 20];
        let mut fed = 0;
        let err = loop {
            match p.feed(&junk) {
                Ok(()) => fed += junk.len(),
                Err(e) => break e,
            }
            assert!(fed <= MAX_OUTPUT, "no bound");
        };
        assert_eq!(err, RawError::TooLong);
    }

    #[test]
    fn a_notice_that_never_ends_is_passed_on_as_text() {
        let mut f = NoticeFilter::default();
        let (out, notices) = f.feed(NOTICE_START);
        assert!(out.is_empty() && notices.is_empty());
        let mut passed = out.len();
        for _ in 0..100 {
            passed += f.feed(&[b'x'; 100]).0.len();
        }
        assert!(passed >= NOTICE_START.len() + 100 * 100 - MAX_NOTICE - 100);
    }

    #[test]
    fn raw_paste_with_credits_and_a_late_credit() {
        let code = vec![b'x'; 300];
        let mut p = Program::new(code.clone());
        let (sent, out) = drive(
            &mut p,
            &[
                b"R\x01\x80\x00",
                b"\x01",
                b"\x01",
                b"\x01\x04",
                b"hi\n\x04",
                b"\x04>",
            ],
        );
        assert!(p.pasting());
        assert_eq!(sent[0], Step::Send(b"\x05A\x01".to_vec()));
        let data: Vec<u8> = sent[1..sent.len() - 1]
            .iter()
            .flat_map(|s| match s {
                Step::Send(b) => b.clone(),
                _ => panic!("paced send in paste mode"),
            })
            .collect();
        assert_eq!(data, code);
        // The first send stays inside the first window, one byte short.
        assert_eq!(sent[1], Step::Send(vec![b'x'; 127]));
        assert_eq!(sent.last(), Some(&Step::Send(b"\x04".to_vec())));
        assert_eq!(
            out.unwrap(),
            Output {
                stdout: b"hi\n".to_vec(),
                stderr: vec![]
            }
        );
    }

    #[test]
    fn a_known_window_sends_the_first_window_with_the_request() {
        let code = vec![b'k'; 400];
        let mut p = Program::with_window(code.clone(), 128);
        let first = match p.poll() {
            Step::Send(b) => b,
            s => panic!("{s:?}"),
        };
        assert_eq!(&first[..3], b"\x05A\x01");
        assert_eq!(first.len(), 255, "two windows, less the request, at most");
        assert_eq!(p.poll(), Step::Wait, "no more before the board answers");
        let (sent, out) = drive(
            &mut p,
            &[
                b"R\x01\x80\x00\x01",
                b"\x01",
                b"\x01",
                b"\x04",
                b"\x04\x04>",
            ],
        );
        let rest: Vec<u8> = sent
            .iter()
            .flat_map(|s| match s {
                Step::Send(b) if b != b"\x04" => b.clone(),
                _ => vec![],
            })
            .collect();
        assert_eq!(rest.len(), 400 - 252);
        assert!(out.is_some());
    }

    #[test]
    fn a_short_program_travels_whole_with_its_request() {
        let mut p = Program::with_window(b"print(1)".to_vec(), 128);
        assert_eq!(p.poll(), Step::Send(b"\x05A\x01print(1)\x04".to_vec()));
        let (sent, out) = drive(
            &mut p,
            &[b"R\x01\x80\x00\x01", b"\x01\x04", b"1\n\x04\x04>"],
        );
        assert!(sent.is_empty(), "nothing more to send: {sent:?}");
        assert_eq!(out.unwrap().stdout, b"1\n");
        // Refused after all: the board already has the program and its end
        // marker as raw input, and must not get a second one.
        let mut p = Program::with_window(b"print(1)".to_vec(), 128);
        p.poll();
        let (sent, out) = drive(&mut p, &[b"R\x00>", b"OK1\n\x04\x04>"]);
        assert!(sent.is_empty(), "{sent:?}");
        assert_eq!(out.unwrap().stdout, b"1\n");
    }

    #[test]
    fn never_more_in_flight_than_granted() {
        let mut p = Program::new(vec![b'y'; 1000]);
        p.poll();
        p.feed(b"R\x01\x80\x00\x01").unwrap();
        let mut in_flight = 0;
        while let Step::Send(b) = p.poll() {
            in_flight += b.len();
        }
        assert_eq!(in_flight, 255);
    }

    #[test]
    fn board_abort_during_paste_ends_sending_and_owes_an_end_marker() {
        let mut p = Program::new(vec![b'z'; 1000]);
        let (sent, out) = drive(
            &mut p,
            &[b"R\x01\x80\x00\x01", b"\x04", b"\x04Traceback\x04>"],
        );
        assert_eq!(sent.last(), Some(&Step::Send(b"\x04".to_vec())));
        let out = out.unwrap();
        assert_eq!(out.stderr, b"Traceback");
    }

    #[test]
    fn refused_paste_falls_back_to_paced_raw_mode() {
        let code = vec![b'a'; 600];
        let mut p = Program::new(code);
        let (sent, out) = drive(&mut p, &[b"R\x00>", b"OK", b"out\x04err\x04", b">"]);
        let paced: Vec<usize> = sent
            .iter()
            .filter_map(|s| match s {
                Step::SendPaced(b) => Some(b.len()),
                _ => None,
            })
            .collect();
        assert_eq!(paced, vec![256, 256, 88]);
        let out = out.unwrap();
        assert_eq!(
            (out.stdout.as_slice(), out.stderr.as_slice()),
            (&b"out"[..], &b"err"[..])
        );
    }

    #[test]
    fn old_firmware_answers_with_a_fresh_banner() {
        let mut p = Program::new(b"print(1)".to_vec());
        let (_, out) = drive(
            &mut p,
            &[b"raw REPL; CTRL-B", b" to exit\r\n>", b"OK1\r\n\x04\x04>"],
        );
        assert_eq!(out.unwrap().stdout, b"1\r\n");
    }

    #[test]
    fn bytes_split_anywhere_give_the_same_answer() {
        let board = b"R\x01\x80\x00\x01\x04ab\x04cd\x04>".to_vec();
        let mut p = Program::new(b"pass".to_vec());
        p.poll();
        let mut done = None;
        for b in &board {
            p.feed(&[*b]).unwrap();
            loop {
                match p.poll() {
                    Step::Send(_) => continue,
                    Step::Done(o) => done = Some(o),
                    _ => {}
                }
                break;
            }
        }
        let o = done.expect("program finished");
        assert_eq!((o.stdout, o.stderr), (b"ab".to_vec(), b"cd".to_vec()));
    }

    #[test]
    fn garbage_in_paste_and_missing_ok_are_errors() {
        let mut p = Program::new(b"x".to_vec());
        p.poll();
        assert_eq!(
            p.feed(b"R\x01\x80\x00Z"),
            Err(RawError::PasteProtocol(b'Z'))
        );
        let mut p = Program::new(b"x".to_vec());
        p.poll();
        p.feed(b"R\x00>").unwrap();
        while !matches!(p.poll(), Step::Wait) {}
        assert!(matches!(p.feed(b"NO"), Err(RawError::NoOk(_))));
    }

    #[test]
    fn waits_for_a_banner_split_across_frames() {
        let mut w = WaitFor::new(RAW_BANNER);
        let mut rest = Vec::new();
        assert!(!w.feed(b">>> \r\nraw REPL; CTRL", &mut rest));
        assert!(w.feed(b"-B to exit\r\n>", &mut rest));
        assert!(rest.is_empty());
    }

    #[test]
    fn sync_answer_is_not_in_its_own_code() {
        let (code, answer) = sync(0xdeadbeef);
        assert!(code.len() < RAW_PACE_BYTES);
        assert!(!code.windows(17).any(|w| w == &answer[..17]));
        assert!(answer.starts_with(b"wrm-sync-deadbeef"));
    }

    #[test]
    fn notices_are_taken_out_wherever_they_fall() {
        let wire =
            b"R\x01\nConcurrent WebREPL connection from ('1.2.3.4', 5) rejected\n\x80\x00ok\n\x04";
        for split in 0..wire.len() {
            let mut f = NoticeFilter::default();
            let (mut out, mut notices) = f.feed(&wire[..split]);
            let (o2, n2) = f.feed(&wire[split..]);
            out.extend(o2);
            notices.extend(n2);
            assert_eq!(out, b"R\x01\x80\x00ok\n\x04", "split at {split}");
            assert_eq!(notices.len(), 1);
        }
    }

    #[test]
    fn a_pattern_in_pieces_is_held_back_and_nothing_else() {
        let mut h = Holdback::new(RAW_ENTERED);
        assert_eq!(h.feed(b"done\r\n"), (b"done".to_vec(), None));
        assert_eq!(h.feed(b"raw REPL; CTRL"), (Vec::new(), None));
        assert_eq!(
            h.feed(b"-B to exit\r\n>x"),
            (Vec::new(), Some(b"x".to_vec()))
        );
        let mut h = Holdback::new(RAW_ENTERED);
        assert_eq!(h.feed(b"\r\n>>> ").0, b"\r\n>>> ");
    }

    #[test]
    fn a_newline_is_held_only_until_the_next_byte() {
        let mut f = NoticeFilter::default();
        assert_eq!(f.feed(b"K\n").0, b"K");
        assert_eq!(f.feed(b"\x04").0, b"\n\x04");
        assert_eq!(f.feed(b"\nConc").0, b"");
        assert_eq!(f.feed(b"rete").0, b"\nConcrete");
    }
}
