//! The text lane: the board's REPL, shared by the people at its terminal and
//! the programs the tools run at the raw prompt. They take turns; the
//! person's turn is the default.
//!
//! A program needs the raw prompt. At an empty friendly prompt, Ctrl-A gets
//! it. With a line half typed (and a terminal attached), Ctrl-C clears the
//! line, the programs run, Ctrl-B brings the friendly prompt back and the
//! line is typed back with the cursor where it was, the board's echo of all
//! this hidden: the person sees their prompt as they left it. A program the
//! person started keeps the board: programs wait for it (or interrupt it
//! when the user said so). Keys typed meanwhile are held and delivered, in
//! order, when the person's turn comes back.
//!
//! In parts: whose turn it is and how long programs wait for it in
//! `turns`; the REPL changing hands (raw REPL in, friendly prompt out) in
//! `handover`; a person's keys paced by the echo in `super::keys`, their
//! line typed back in `super::restore`. Here: the lane's state, the
//! board's text, and running a program.

mod handover;
mod turns;

use super::keys::Keys;
use super::restore::{Restore, Saved};
use super::shared::{Event, OpId, Out, Outcome, Why};
use super::timer::{Timer, TimerTable};
use crate::error::{Error, Held, Lost};
use crate::protocol::line::Screen;
use crate::protocol::raw::{Holdback, NoticeFilter, Output, Program, Step, WaitFor};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tracing::debug;

/// Without raw-paste, the board's input buffer takes 256 bytes per 10 ms.
const PACE: Duration = Duration::from_millis(10);
/// Programs of ours up to this long go in raw mode while the raw-paste
/// window is unknown (see `Program::raw`).
const RAW_SHORT: usize = 200;
/// A board writes a rejection notice whole: text held as its possible
/// start goes on when no more came this soon.
const NOTICE_WAIT: Duration = Duration::from_millis(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Code run at the raw prompt.
    Program,
    /// Ctrl-D at an empty raw prompt: a soft reset.
    Reset,
    /// Hand the friendly prompt to the person now.
    Friendly,
}

#[derive(Debug)]
pub struct QueuedProgram {
    pub op: OpId,
    pub job: Job,
    pub code: Vec<u8>,
    /// The board's silence may last at most the session's time-out.
    pub bounded: bool,
    /// Safe to run again on a new link.
    pub idempotent: bool,
    /// A person's program (exec): no time limit, their keys reach it, and
    /// it may change the board's files.
    pub user: bool,
    /// How long it may wait for a REPL a person's program holds.
    pub patience: Duration,
    pub queued_at: Instant,
    /// A streaming program of ours: its stdout goes out as it arrives
    /// ([`Event::Chunk`]) and it reads credits from its input
    /// ([`TextLane::credit`]).
    pub stream: bool,
    /// Not before this upload's last data byte has gone to the socket
    /// (then at once, without waiting for the board's answer to it): a
    /// program that finishes what that PUT carries, which checks what it
    /// finds (size, CRC), so a PUT that failed costs nothing.
    pub after: Option<OpId>,
}

#[derive(Debug)]
enum Mode {
    /// The person's REPL.
    Terminal,
    /// Ctrl-C sent to clear a half-typed line; waiting for the fresh prompt.
    Clearing {
        prompt: WaitFor,
        /// Ctrl-A and the sync went with the Ctrl-C: the sync's answer.
        sync: Option<Vec<u8>>,
    },
    /// Ctrl-A sent; waiting for the raw banner.
    Entering {
        seen: Vec<u8>,
        polite: bool,
        /// The polite wait went by in silence (or in the raw REPL's
        /// framing): waiting on for a tool's program to end.
        waited_on: bool,
        /// The sync went with the Ctrl-A: its answer.
        sync: Option<Vec<u8>>,
    },
    /// The sync program sent; waiting for its answer.
    Syncing { answer: WaitFor },
    /// At the raw prompt, ours; idle for `HAND_BACK` (`Timer::HandBack`),
    /// it goes back to a person at the terminal.
    Raw,
    Running {
        job: Box<QueuedProgram>,
        prog: Box<Program>,
        started: Instant,
        last: Instant,
    },
    /// Ctrl-D sent at the raw prompt; the board reboots (given until
    /// `Timer::Reset`).
    Resetting { op: OpId },
    /// Ctrl-B sent; waiting for the friendly prompt. `banner`: the
    /// person asked for it (their Ctrl-B held meanwhile, or the one after
    /// a soft reset), so the board's banner and prompt are shown.
    Leaving { prompt: WaitFor, banner: bool },
    /// Typing a person's line back; the board's echo of it is hidden
    /// (until `Timer::Restore`).
    Restoring { restore: Restore },
}

pub struct TextLane {
    queue: VecDeque<QueuedProgram>,
    mode: Mode,
    /// The person's view of the REPL.
    screen: Screen,
    /// Whether `screen` can be trusted: a new connection's greeting shows a
    /// prompt whatever the board is doing.
    known: bool,
    /// A polite Ctrl-A went unanswered: it waits in the board's input and
    /// enters the raw REPL once the person's program ends. Its banner is
    /// watched for (and kept from the terminal).
    stray_ctrl_a: Option<Holdback>,
    /// A person's keys on their way.
    keys: Keys,
    /// The person's half-typed line while a program of ours has the REPL,
    /// to be typed back (only with a terminal attached).
    saved: Option<Saved>,
    /// The person pressed Enter: code may be running that changes files.
    ran_code: bool,
    /// The link went with the person's code (Ctrl-D's soft reset ends the
    /// connection before the board prints its banner, as does code that
    /// resets the board): the next link shows them the banner and a
    /// prompt, as a serial terminal would.
    banner_due: bool,
    paste_window: Option<usize>,
    /// One of our programs was cut off: only Ctrl-C gets the board out of
    /// it, and stopping what is ours interrupts nobody.
    ours_unfinished: bool,
    notices: NoticeFilter,
    pub interrupt: bool,
    pub timeout: Duration,
    /// Why programs wait, for `status`.
    waiting: Option<(Instant, String)>,
    /// A streaming program was stopped with credits maybe still unread in
    /// the board's input: the raw prompt is synced (a raw-mode program,
    /// which stray line ends cannot spoil) before the next program.
    stray_credits: bool,
    /// Text of ours waits for an upload's last data frame: the lane makes
    /// no new text and its clocks stop (see [`TextLane::thaw`]).
    pub frozen: bool,
    /// Uploads whose last data byte has not gone to the socket yet (set by
    /// the machine): a program queued `after` one of them waits, and the
    /// programs behind it with it.
    pub unsent: Vec<OpId>,
    /// Keys sent since the board was last heard from: when the first
    /// went, and how many (cleared by the machine at any frame).
    pub unheard: Option<(Instant, usize)>,
    /// What the lane waits for ([`TimerTable`]).
    pub timers: TimerTable,
    /// The program a new link runs before the person's keys go (a share's
    /// mount: a line typed after a soft reset must find /remote).
    first_on_link: Option<OpId>,
    /// Its code for a second try, if it raises.
    first_again: Option<Vec<u8>>,
    /// Until when the person's keys wait after their Ctrl-D at the
    /// friendly prompt (see [`RESET_WAIT`]); the board's `soft reboot`
    /// makes it the time-out: they go on the next link.
    reset_wait: Option<Instant>,
    /// The board said `soft reboot` after the person's Ctrl-D: the link
    /// it then ends is a reset, no trouble.
    pub rebooting: bool,
}

impl TextLane {
    pub fn new(interrupt: bool, timeout: Duration) -> TextLane {
        TextLane {
            queue: VecDeque::new(),
            mode: Mode::Terminal,
            screen: Screen::at_prompt(),
            known: false,
            stray_ctrl_a: None,
            keys: Keys::default(),
            saved: None,
            ran_code: false,
            banner_due: false,
            paste_window: None,
            ours_unfinished: false,
            stray_credits: false,
            first_on_link: None,
            first_again: None,
            reset_wait: None,
            rebooting: false,
            notices: NoticeFilter::default(),
            unheard: None,
            interrupt,
            timeout,
            waiting: None,
            frozen: false,
            unsent: Vec::new(),
            timers: TimerTable::default(),
        }
    }

    /// Whether the next program waits for an upload's last byte to go
    /// ([`QueuedProgram::after`]).
    pub fn front_waits(&self) -> bool {
        self.queue
            .front()
            .and_then(|q| q.after)
            .is_some_and(|op| self.unsent.contains(&op))
    }

    /// Fails the queued programs that were to follow an upload which
    /// ended before its last byte went (`handed`: whether it went): what
    /// they would finish is not there, and the board may not be the one
    /// the upload was for.
    pub fn fail_orphans(&mut self, handed: impl Fn(OpId) -> bool, out: &mut Out) {
        let unsent = &self.unsent;
        let orphan = |q: &QueuedProgram| {
            q.after
                .is_some_and(|op| !unsent.contains(&op) && !handed(op))
        };
        if !self.queue.iter().any(orphan) {
            return;
        }
        let (gone, kept): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(orphan);
        self.queue = kept;
        for q in gone {
            debug!("a program not sent: the upload it was to follow failed");
            out.done(q.op, Err(Error::LinkLost(Lost::UploadFailed)));
        }
    }

    /// Whether a queued program may start now.
    fn startable(&self) -> bool {
        !self.queue.is_empty() && !self.front_waits()
    }

    /// The held text is on the wire after waiting `d`: every clock that
    /// started with it (an answer awaited, a paste's echo, a program's
    /// silence, a person's line settling) starts `d` later, as the board
    /// saw none of it before.
    pub fn thaw(&mut self, d: Duration) {
        self.frozen = false;
        self.timers.shift(d);
        self.keys.thaw(d);
        match &mut self.mode {
            Mode::Running { last, .. } => *last += d,
            Mode::Terminal
            | Mode::Raw
            | Mode::Resetting { .. }
            | Mode::Clearing { .. }
            | Mode::Entering { .. }
            | Mode::Syncing { .. }
            | Mode::Leaving { .. }
            | Mode::Restoring { .. } => {}
        }
    }

    /// `n` credits for the streaming program `op`, if it still runs: each
    /// lets it print one more piece. A line end, read by the program's
    /// `input()`; never anything that could reach the raw prompt as code
    /// (the program reads every credit it is owed before it ends).
    pub fn credit(&mut self, op: OpId, n: usize, out: &mut Out) {
        if let Mode::Running { job, .. } = &self.mode
            && job.op == op
            && job.stream
            && n > 0
        {
            out.text(vec![b'\r'; n]);
        }
    }

    /// A line the streaming program `op` reads (a word of letters, that
    /// it waits for): as a credit, never left for the raw prompt.
    pub fn answer(&mut self, op: OpId, word: &'static str, out: &mut Out) {
        if let Mode::Running { job, .. } = &self.mode
            && job.op == op
            && job.stream
            && word.bytes().all(|b| b.is_ascii_alphabetic())
        {
            out.text(format!("{word}\r").into_bytes());
        }
    }

    /// Whether the lane is in the middle of an exchange that sends text
    /// again as soon as the board answers (taking the REPL, pasting a
    /// program, a person's paste): an upload started now would hold each
    /// of those sends for its whole length.
    pub fn wants_wire(&self) -> bool {
        if !self.keys.is_empty() && self.theirs() {
            return true;
        }
        match &self.mode {
            Mode::Clearing { .. }
            | Mode::Entering { .. }
            | Mode::Syncing { .. }
            | Mode::Leaving { .. }
            | Mode::Restoring { .. } => true,
            // A program waiting for an upload's last byte must not hold
            // that upload back.
            Mode::Raw => self.startable(),
            Mode::Running { prog, .. } => prog.sending(),
            // A program waits for the person's line to settle: an upload
            // slice started now would hold it a slice longer. The line may
            // show no prompt while it settles: the board writes a Ctrl-C's
            // line break and its fresh prompt in two frames, and a slice
            // started between them held a read for two slices (0.48 s).
            Mode::Terminal => {
                self.startable()
                    && self.known
                    && (self.screen.typed().is_some() || self.timers.get(Timer::Settle).is_some())
                    && !self.first_queued()
            }
            Mode::Resetting { .. } => false,
        }
    }

    /// Whether a program of ours goes back and forth with the board now
    /// (taking the REPL, syncing it, a bounded program and its answer):
    /// each answer is a round trip that nothing should queue ahead of. Not
    /// a person's program, nor a stream of ours (both may run for long,
    /// and a GET goes on beside them).
    pub fn exchanging(&self) -> bool {
        match &self.mode {
            Mode::Clearing { .. } | Mode::Entering { .. } | Mode::Syncing { .. } => true,
            Mode::Raw => self.startable(),
            Mode::Running { job, .. } => !job.user && !job.stream,
            _ => false,
        }
    }

    pub fn is_resetting(&self) -> bool {
        matches!(self.mode, Mode::Resetting { .. })
            || self.queue.front().is_some_and(|q| q.job == Job::Reset)
    }

    /// The line a person at the terminal sees now (see `Screen::redraw`);
    /// `None` until the board has said where its REPL is.
    pub fn screen_line(&self) -> Option<Vec<u8>> {
        self.known.then(|| self.screen.redraw())
    }

    /// A new connection: the REPL's state is unknown until it says.
    pub fn link_up(&mut self, now: Instant) {
        self.keys.link_changed();
        self.reset_wait = None;
        self.rebooting = false;
        self.mode = Mode::Terminal;
        self.timers.clear();
        self.saved = None;
        self.screen = Screen::at_prompt();
        self.known = false;
        self.stray_ctrl_a = None;
        self.paste_window = None;
        self.notices = NoticeFilter::default();
        if std::mem::take(&mut self.banner_due) {
            // The board said "MPY: soft reboot" (or nothing) and closed:
            // Ctrl-B at the friendly prompt prints the banner and a prompt,
            // before the keys typed meanwhile. Until then the person's
            // screen line is empty.
            self.screen = Screen::default();
            self.keys.hold(now, &[]);
            self.keys.unsend(&[0x02]);
        }
    }

    /// The link is gone: what was running is requeued if it only read, or
    /// fails.
    pub fn link_down(&mut self, why: &Error, retry: bool, out: &mut Out) {
        let mode = std::mem::replace(&mut self.mode, Mode::Terminal);
        self.timers.clear();
        self.saved = None;
        self.reset_wait = None;
        self.banner_due = matches!(mode, Mode::Terminal) && self.ran_code;
        match mode {
            Mode::Running { job, .. } => {
                self.ours_unfinished = !job.user;
                if job.idempotent && retry {
                    self.queue.push_front(*job);
                } else {
                    out.done(
                        job.op,
                        Err(Error::LinkLost(Lost::MidProgram {
                            user: job.user,
                            last: Box::new(why.clone()),
                        })),
                    );
                }
            }
            Mode::Resetting { op, .. } => {
                // The board rebooted (boot.py and main.py ran).
                out.done(op, Ok(Outcome::Done));
                out.event(Event::BoardChanged);
            }
            Mode::Entering { .. } | Mode::Syncing { .. } | Mode::Clearing { .. } => {
                self.ours_unfinished = true;
            }
            _ => {}
        }
        if let Mode::Terminal = self.mode {
            // Whatever the person had typed is gone with the board's state.
            self.screen = Screen::at_prompt();
        }
        self.known = false;
    }

    /// Text from the board.
    pub fn feed(&mut self, now: Instant, text: &[u8], out: &mut Out) -> Result<(), Why> {
        self.keys.echoed(now, text.len());
        match &mut self.mode {
            Mode::Terminal => {
                let was_prompted = self.screen.prompt().is_some();
                let mut text = text.to_vec();
                if let Some(h) = &mut self.stray_ctrl_a {
                    let (pass, entered) = h.feed(&text);
                    if entered.is_some() {
                        // The person's program ended and our old Ctrl-A took
                        // effect: the raw prompt is ours; sync it, carry on.
                        self.stray_ctrl_a = None;
                        self.show(&pass, out);
                        self.start_sync(now, out);
                        return Ok(());
                    }
                    text = pass;
                }
                if self.reset_wait.is_some() && line_find(&text, b"soft reboot").is_some() {
                    // It is one: the keys wait for the next link.
                    self.rebooting = true;
                    self.reset_wait = Some(now + self.timeout);
                    self.timers.set(Timer::Reset, now + self.timeout);
                } else if line_find(&text, b"soft reboot").is_some() {
                    // A reset the person's program asked for
                    // (machine.soft_reset()): no trouble either.
                    self.rebooting = true;
                }
                self.show(&text, out);
                if !was_prompted && self.screen.prompt().is_some() && self.ran_code {
                    // Back at a prompt after the person's code ran.
                    self.ran_code = false;
                    out.event(Event::BoardChanged);
                }
            }
            Mode::Clearing { prompt, sync, .. } => {
                let mut rest = Vec::new();
                if prompt.feed(text, &mut rest) {
                    match sync.take() {
                        Some(answer) => {
                            self.mode = Mode::Entering {
                                seen: Vec::new(),
                                polite: false,
                                waited_on: false,
                                sync: Some(answer),
                            };
                            self.timers.set(Timer::Reply, now + self.timeout);
                            self.feed_entering(now, &rest, out);
                        }
                        None => self.send_ctrl_a(now, false, out),
                    }
                }
            }
            Mode::Entering { .. } => self.feed_entering(now, text, out),
            Mode::Syncing { .. } => self.feed_syncing(now, text),
            Mode::Raw => {
                // Nothing of ours runs: a background task's output.
                let (t, notices) = self.notices.feed(text);
                for n in notices {
                    out.event(Event::Terminal(n));
                }
                if !t.is_empty() {
                    out.event(Event::Terminal(t));
                }
                self.hold_notice(now, true);
            }
            Mode::Running {
                prog, last, job, ..
            } => {
                *last = now;
                let (t, notices) = self.notices.feed(text);
                for n in notices {
                    out.event(Event::Terminal(n));
                }
                prog.feed(&t).map_err(|e| Why::Protocol(e.into()))?;
                if job.stream {
                    let got = prog.take_stdout();
                    if !got.is_empty() {
                        out.event(Event::Chunk(job.op, got));
                    }
                }
                let shown = job.user && job.stream;
                self.hold_notice(now, shown);
            }
            Mode::Resetting { .. } => {}
            Mode::Leaving { prompt, banner, .. } => {
                let (banner, back) = (*banner, prompt.feed(text, &mut Vec::new()));
                if banner {
                    self.show(text, out);
                }
                if back {
                    match self.saved.take() {
                        Some(s) if !s.typed.is_empty() => self.start_restore(now, s, out),
                        _ => self.back_to_terminal(now, out),
                    }
                }
            }
            Mode::Restoring { restore, .. } => {
                if restore.feed(text) {
                    let Mode::Restoring { restore, .. } =
                        std::mem::replace(&mut self.mode, Mode::Terminal)
                    else {
                        return Ok(());
                    };
                    self.screen = restore.done(&mut self.timers);
                    self.back_to_terminal(now, out);
                }
            }
        }
        Ok(())
    }

    /// Output for the people at the terminal, and for our view of it.
    fn show(&mut self, text: &[u8], out: &mut Out) {
        if text.is_empty() {
            return;
        }
        self.screen.feed(text);
        self.known = true;
        out.event(Event::Terminal(text.to_vec()));
    }

    /// Starts what can start, hands the REPL back, checks time-outs.
    pub fn drive(
        &mut self,
        now: Instant,
        terminals: usize,
        binary_idle: bool,
        out: &mut Out,
    ) -> Result<(), Why> {
        if self.frozen {
            return Ok(());
        }
        // A program that just ended leaves the raw prompt with the next one
        // queued: start it now, not when a timer next wakes the lane (300 ms
        // later, the hand-back time).
        for _ in 0..4 {
            let before = std::mem::discriminant(&self.mode);
            self.drive_once(now, terminals, binary_idle, out)?;
            if std::mem::discriminant(&self.mode) == before {
                break;
            }
        }
        if !matches!(self.mode, Mode::Raw) {
            self.timers.stop(Timer::HandBack);
        }
        // A program of ours answers within the time-out of its last word.
        // A person's program too, until the board has taken it whole: a
        // board that took the paste and never answered its end kept `exec`
        // waiting for ever, without a word.
        match &self.mode {
            Mode::Running {
                job, last, prog, ..
            } if job.bounded || !prog.taken() => {
                self.timers.set(Timer::Silence, *last + self.timeout)
            }
            _ => self.timers.stop(Timer::Silence),
        }
        Ok(())
    }

    fn drive_once(
        &mut self,
        now: Instant,
        terminals: usize,
        binary_idle: bool,
        out: &mut Out,
    ) -> Result<(), Why> {
        self.check_silence(now)?;
        match &mut self.mode {
            Mode::Terminal => return self.terminal_turn(now, terminals, out),
            Mode::Raw => self.raw_turn(now, terminals, binary_idle, out),
            Mode::Running { job, .. } => {
                if job.user {
                    // The rest of a paste into the person's program.
                    self.send_held(now, out);
                    self.refuse_impatient(Held::Exec, out);
                }
                self.poll_program(now, out)
            }
            _ => {}
        }
        Ok(())
    }

    fn start(&mut self, now: Instant, job: QueuedProgram, out: &mut Out) {
        match job.job {
            Job::Reset => {
                out.text(b"\x04".to_vec());
                self.mode = Mode::Resetting { op: job.op };
                self.timers
                    .set(Timer::Reset, now + Duration::from_millis(500));
            }
            Job::Friendly => {
                out.done(job.op, Ok(Outcome::Done));
                self.leave(now, out);
            }
            Job::Program => {
                self.ours_unfinished = !job.user;
                let prog = match self.paste_window {
                    Some(w) => Program::with_window(job.code.clone(), w),
                    // Ours, short: no negotiation (a round trip of every
                    // `cp`'s first program).
                    None if !job.user && !job.stream && job.code.len() <= RAW_SHORT => {
                        Program::raw(job.code.clone())
                    }
                    None => Program::new(job.code.clone()),
                };
                self.mode = Mode::Running {
                    job: Box::new(job),
                    prog: Box::new(prog),
                    started: now,
                    last: now,
                };
                // Its pieces go at once (until it is paced).
                self.timers.stop(Timer::Pace);
                // Held keys reach a person's program as its input.
                if let Mode::Running { job, .. } = &self.mode
                    && job.user
                {
                    self.send_held(now, out);
                }
                self.poll_program(now, out);
            }
        }
    }

    fn poll_program(&mut self, now: Instant, out: &mut Out) {
        let Mode::Running { prog, .. } = &mut self.mode else {
            return;
        };
        // A paced piece went: the next waits for `Timer::Pace`.
        if self.timers.get(Timer::Pace).is_some() {
            return;
        }
        loop {
            match prog.poll() {
                Step::Send(b) => out.text(b),
                Step::SendPaced(b) => {
                    out.text(b);
                    self.timers.set(Timer::Pace, now + PACE);
                    return;
                }
                Step::Wait => return,
                Step::Done(o) => {
                    self.finish(now, o, out);
                    return;
                }
            }
        }
    }

    fn finish(&mut self, now: Instant, o: Output, out: &mut Out) {
        let Mode::Running {
            job, prog, started, ..
        } = std::mem::replace(&mut self.mode, Mode::Terminal)
        else {
            return;
        };
        debug!(
            "program of {} bytes ran in {:.0?}",
            job.code.len(),
            now.saturating_duration_since(started)
        );
        if prog.pasting() {
            self.paste_window = Some(prog.window());
        }
        self.ours_unfinished = false;
        out.count_program();
        if !o.stderr.is_empty()
            && self.first_on_link == Some(job.op)
            && let Some(code) = self.first_again.take()
        {
            // Still before anything else on the link (the keys held).
            debug!("the link's first program raised: once more");
            self.queue.push_front(QueuedProgram {
                code,
                queued_at: now,
                ..*job
            });
            self.at_raw_prompt(now);
            return;
        }
        if job.user {
            out.event(Event::BoardChanged);
        }
        out.done(job.op, Ok(Outcome::Output(o)));
        self.at_raw_prompt(now);
        if std::mem::take(&mut self.stray_credits) {
            self.start_sync(now, out);
        }
    }

    /// A program of ours answers within the time-out of its last word (see
    /// `Timer::Silence`).
    fn check_silence(&self, now: Instant) -> Result<(), Why> {
        match &self.mode {
            Mode::Running { job, last, .. } if job.bounded && now >= *last + self.timeout => {
                Err(Why::Silent("a program of ours stopped answering"))
            }
            Mode::Running { last, prog, .. } if !prog.taken() && now >= *last + self.timeout => {
                Err(Why::Silent("the board stopped taking the program"))
            }
            _ => Ok(()),
        }
    }

    /// `Timer::HandBack` with no terminal to hand the REPL to: it stays,
    /// and wakes nobody (an idle session after a program waits for
    /// nothing) until a terminal attaches.
    fn held_timer(terminals: usize) -> Option<Timer> {
        (terminals == 0).then_some(Timer::HandBack)
    }

    /// The lane's earliest timer that may wake the session.
    pub fn next_timer(&self, terminals: usize) -> Option<(Timer, Instant)> {
        self.timers.next_but(Self::held_timer(terminals))
    }

    /// Stops the lane's timers due at `now` (see [`TextLane::next_timer`]).
    pub fn expire(&mut self, now: Instant, terminals: usize) -> Vec<(Timer, Instant)> {
        self.timers.expire_but(now, Self::held_timer(terminals))
    }

    /// Acts on the lane's timers that expired at `now` (each with when it
    /// was due), before the lane acts on its state ([`TextLane::drive`]).
    /// Output a person watches (a person's `exec`, a background task's
    /// at the raw prompt) is not held back long as the possible start of
    /// a rejection notice: held, the end of each line waited for the next
    /// line (`print('connecting')` before a long call showed nothing).
    /// Ours waits for the next text, however long: a notice in a file's
    /// lines would corrupt them.
    fn hold_notice(&mut self, now: Instant, shown: bool) {
        if shown && self.notices.holding() {
            self.timers.set(Timer::Notice, now + NOTICE_WAIT);
        } else {
            self.timers.stop(Timer::Notice);
        }
    }

    /// The end of `hold_notice`'s wait: what was held goes on.
    fn notice_wait_over(&mut self, out: &mut Out) -> Result<(), Why> {
        if !matches!(self.mode, Mode::Raw | Mode::Running { .. }) {
            return Ok(());
        }
        let held = self.notices.flush();
        match &mut self.mode {
            Mode::Raw if !held.is_empty() => out.event(Event::Terminal(held)),
            Mode::Running { prog, job, .. } => {
                prog.feed(&held).map_err(|e| Why::Protocol(e.into()))?;
                if job.stream {
                    let got = prog.take_stdout();
                    if !got.is_empty() {
                        out.event(Event::Chunk(job.op, got));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    pub fn handle_timeout(
        &mut self,
        now: Instant,
        expired: &[(Timer, Instant)],
        out: &mut Out,
    ) -> Result<(), Why> {
        for &(timer, at) in expired {
            match timer {
                Timer::Notice => self.notice_wait_over(out)?,
                Timer::Reply => self.no_reply(now, at, out)?,
                Timer::Restore if matches!(self.mode, Mode::Restoring { .. }) => {
                    // The board did not redraw the line in time.
                    if let Mode::Restoring { restore } =
                        std::mem::replace(&mut self.mode, Mode::Terminal)
                    {
                        self.screen = restore.give_up();
                    }
                    self.back_to_terminal(now, out);
                }
                Timer::Reset => {
                    if let Mode::Resetting { op } = self.mode {
                        out.done(op, Ok(Outcome::Done));
                        out.event(Event::BoardChanged);
                        self.mode = Mode::Terminal;
                        // The board reboots: a fresh link starts clean.
                        return Err(Why::Reset);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn line_find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    crate::protocol::login::find(hay, needle)
}

pub fn clone_err(e: &Error) -> Error {
    e.clone()
}
