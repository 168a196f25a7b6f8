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

use super::keys::Keys;
use super::restore::{RESTORE, Restore, Saved};
use super::shared::{Event, OpId, Out, Outcome, Why};
use super::timer::{Timer, TimerTable};
use crate::error::{Error, Lost};
use crate::protocol::line::{self, Prompt, Screen};
use crate::protocol::raw::{self, Holdback, NoticeFilter, Output, Program, Step, WaitFor};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tracing::debug;

/// An idle raw prompt goes back to the person after this long.
const HAND_BACK: Duration = Duration::from_millis(300);
/// A board that does not answer a polite Ctrl-A in this time runs a program.
const POLITE: Duration = Duration::from_millis(1500);
/// Without raw-paste, the board's input buffer takes 256 bytes per 10 ms.
const PACE: Duration = Duration::from_millis(10);
/// Ends a raw paste left unfinished: a blank, Ctrl-D, Ctrl-A again.
const END_PASTE: &[u8] = b" \x04\x01";
/// Text kept while waiting for the raw banner.
const ENTERING_KEEP: usize = 4096;
/// After a person's Ctrl-D at the friendly prompt, how long the keys
/// typed after it wait for a sign of the soft reset it may be (the board
/// says `soft reboot`, then ends the link): sent on the old link, they
/// would be lost with it, or run before what a new link sets up first.
const RESET_WAIT: Duration = Duration::from_secs(2);

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
}

#[derive(Debug)]
enum Mode {
    /// The person's REPL.
    Terminal,
    /// Ctrl-C sent to clear a half-typed line; waiting for the fresh prompt.
    Clearing {
        prompt: WaitFor,
        deadline: Instant,
        /// Ctrl-A and the sync went with the Ctrl-C: the sync's answer.
        sync: Option<Vec<u8>>,
    },
    /// Ctrl-A sent; waiting for the raw banner.
    Entering {
        seen: Vec<u8>,
        deadline: Instant,
        polite: bool,
        /// The polite wait went by in silence (or in the raw REPL's
        /// framing): waiting on for a tool's program to end.
        waited_on: bool,
        /// The sync went with the Ctrl-A: its answer.
        sync: Option<Vec<u8>>,
    },
    /// The sync program sent; waiting for its answer.
    Syncing { answer: WaitFor, deadline: Instant },
    /// At the raw prompt, ours.
    Raw { since: Instant },
    Running {
        job: Box<QueuedProgram>,
        prog: Box<Program>,
        started: Instant,
        last: Instant,
        paced_until: Option<Instant>,
    },
    /// Ctrl-D sent at the raw prompt; the board reboots.
    Resetting { op: OpId, until: Instant },
    /// Ctrl-B sent; waiting for the friendly prompt. `banner`: the
    /// person asked for it (their Ctrl-B held meanwhile, or the one after
    /// a soft reset), so the board's banner and prompt are shown.
    Leaving {
        prompt: WaitFor,
        deadline: Instant,
        banner: bool,
    },
    /// Typing a person's line back; the board's echo of it is hidden.
    Restoring { restore: Restore, deadline: Instant },
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
            interrupt,
            timeout,
            waiting: None,
            frozen: false,
            timers: TimerTable::default(),
        }
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
            Mode::Clearing { deadline, .. }
            | Mode::Entering { deadline, .. }
            | Mode::Syncing { deadline, .. }
            | Mode::Leaving { deadline, .. }
            | Mode::Restoring { deadline, .. } => *deadline += d,
            Mode::Raw { since, .. } => *since += d,
            Mode::Running {
                last, paced_until, ..
            } => {
                *last += d;
                if let Some(t) = paced_until {
                    *t += d;
                }
            }
            Mode::Resetting { until, .. } => *until += d,
            Mode::Terminal => {}
        }
    }

    pub fn submit(&mut self, job: QueuedProgram) {
        self.queue.push_back(job);
    }

    /// A program that runs before anything else on this link, the
    /// person's held keys included; `again` runs in its place if it raises
    /// (its outcome is the second's).
    pub fn submit_first(&mut self, job: QueuedProgram, again: Vec<u8>) {
        self.first_on_link = Some(job.op);
        self.first_again = Some(again);
        self.queue.push_front(job);
    }

    fn first_queued(&self) -> bool {
        self.first_on_link
            .is_some_and(|op| self.queue.iter().any(|q| q.op == op))
    }

    /// Keys from a terminal: out now if it is the person's turn (or their
    /// program's), else held until it is.
    pub fn keys(&mut self, now: Instant, keys: &[u8], out: &mut Out) {
        self.keys.hold(now, keys);
        if self.theirs() {
            self.send_held(now, out);
        }
    }

    /// Keys held without being sent: the link is down.
    pub fn hold_keys(&mut self, now: Instant, keys: &[u8]) {
        self.keys.hold(now, keys);
    }

    /// Whether keys go to the board now: at the person's prompt or their
    /// program's input.
    fn theirs(&self) -> bool {
        match &self.mode {
            Mode::Terminal => !self.first_queued(),
            Mode::Running { job, .. } => job.user,
            _ => false,
        }
    }

    fn send_held(&mut self, now: Instant, out: &mut Out) {
        if self.frozen {
            return;
        }
        if let Some(until) = self.reset_wait {
            if now < until {
                self.timers.set(Timer::Reset, until);
                return;
            }
            // No soft reset after all (Ctrl-D on a typed line does nothing).
            self.reset_wait = None;
        }
        let at_prompt = matches!(self.mode, Mode::Terminal) && self.screen.typed().is_some();
        let Some(mut keys) = self.keys.next_chunk(now, at_prompt, &mut self.timers) else {
            return;
        };
        if matches!(self.mode, Mode::Terminal) && keys.iter().any(|&k| k == b'\r' || k == 0x04) {
            self.ran_code = true;
        }
        if matches!(self.mode, Mode::Terminal)
            && let Some(i) = keys.iter().position(|&k| k == 0x04)
            && (self.screen.prompt() == Some(Prompt::Primary) || keys[..i].contains(&b'\r'))
            && !keys[..i].contains(&0x05)
        {
            // A soft reset, maybe: what follows waits for its new link.
            self.keys.unsend(&keys[i + 1..]);
            keys.truncate(i + 1);
            self.reset_wait = Some(now + RESET_WAIT);
            self.timers.set(Timer::Reset, now + RESET_WAIT);
        }
        out.text(keys);
    }

    /// Takes a person's held Ctrl-C (and what was typed before it, which
    /// it would have cleared): the board's share delivers it.
    pub fn take_interrupt(&mut self) -> bool {
        self.keys.take_through(0x03)
    }

    /// Keys the board skipped while its share waited for an answer: sent
    /// again first.
    pub fn keys_back(&mut self, keys: &[u8]) {
        self.keys.unsend(keys);
    }

    pub fn cancel(&mut self, op: OpId, out: &mut Out) {
        if let Some(i) = self.queue.iter().position(|q| q.op == op) {
            self.queue.remove(i);
            return;
        }
        if let Mode::Running { job, .. } = &mut self.mode
            && job.op == op
            && (job.user || job.stream)
        {
            // Ctrl-C for the person's program: a KeyboardInterrupt ends it.
            // A stream of ours nobody reads any more stops the same way,
            // and gets no more credits.
            if job.stream {
                job.stream = false;
                self.stray_credits = true;
            }
            out.text(b"\x03".to_vec());
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
            Mode::Raw { .. } => !self.queue.is_empty(),
            Mode::Running { prog, .. } => prog.sending(),
            // A program waits for the person's line to settle: an upload
            // slice started now would hold it a slice longer.
            Mode::Terminal => {
                !self.queue.is_empty()
                    && self.known
                    && self.screen.typed().is_some()
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
            Mode::Raw { .. } => !self.queue.is_empty(),
            Mode::Running { job, .. } => !job.user && !job.stream,
            _ => false,
        }
    }

    pub fn is_resetting(&self) -> bool {
        matches!(self.mode, Mode::Resetting { .. })
            || self.queue.front().is_some_and(|q| q.job == Job::Reset)
    }

    /// When the longest-waiting queued program was queued.
    pub fn oldest(&self) -> Option<Instant> {
        self.queue.iter().map(|q| q.queued_at).min()
    }

    /// The board is unreachable: held keys are dropped; how many.
    pub fn drop_keys(&mut self) -> usize {
        self.keys.drop_all()
    }

    pub fn has_work(&self) -> bool {
        !self.queue.is_empty() || !self.keys.is_empty()
    }

    pub fn queued(&self) -> usize {
        self.queue.len() + usize::from(matches!(self.mode, Mode::Running { .. }))
    }

    /// The line a person at the terminal sees now (see `Screen::redraw`);
    /// `None` until the board has said where its REPL is.
    pub fn screen_line(&self) -> Option<Vec<u8>> {
        self.known.then(|| self.screen.redraw())
    }

    /// Why programs are waiting, and since when.
    pub fn waiting(&self) -> Option<&(Instant, String)> {
        self.waiting.as_ref()
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

    /// Fails queued programs that cannot wait any longer for the link.
    pub fn fail_waiting(
        &mut self,
        now: Instant,
        deadline_of: impl Fn(&QueuedProgram) -> Instant,
        err: impl Fn() -> Error,
        out: &mut Out,
    ) {
        let mut kept = VecDeque::new();
        while let Some(q) = self.queue.pop_front() {
            if now >= deadline_of(&q) {
                out.done(q.op, Err(err()));
            } else {
                kept.push_back(q);
            }
        }
        self.queue = kept;
    }

    /// After the link was dropped because the board stopped answering (or
    /// answered junk): programs that have already had their time-out, here
    /// and on the links before, end with `err` rather than start again on a
    /// board that behaves the same. The time-out bounds the whole wait.
    pub fn give_up_overdue(&mut self, now: Instant, timeout: Duration, err: &Error, out: &mut Out) {
        let mut kept = VecDeque::new();
        while let Some(q) = self.queue.pop_front() {
            if now >= q.queued_at + timeout {
                out.done(q.op, Err(clone_err(err)));
            } else {
                kept.push_back(q);
            }
        }
        self.queue = kept;
    }

    pub fn fail_all(&mut self, err: &Error, out: &mut Out) {
        while let Some(q) = self.queue.pop_front() {
            out.done(q.op, Err(clone_err(err)));
        }
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
                                deadline: now + self.timeout,
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
            Mode::Raw { .. } => {
                // Nothing of ours runs: a background task's output.
                let (t, notices) = self.notices.feed(text);
                for n in notices {
                    out.event(Event::Terminal(n));
                }
                if !t.is_empty() {
                    out.event(Event::Terminal(t));
                }
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

    fn feed_entering(&mut self, now: Instant, text: &[u8], out: &mut Out) {
        let Mode::Entering {
            seen,
            waited_on,
            sync,
            polite,
            ..
        } = &mut self.mode
        else {
            return;
        };
        let polite = *polite;
        seen.extend_from_slice(text);
        if let Some(i) = line_find(seen, raw::RAW_BANNER) {
            let before = seen[..i].to_vec();
            let rest = seen[i + raw::RAW_BANNER.len()..].to_vec();
            let sync = sync.take();
            // What came before the banner is the board's (a
            // program's last output), less the line break the board
            // prints on switching; a cleared line's echo is ours,
            // and so is the raw REPL's framing after a wait (a
            // tool's program, the end of a paste left unfinished).
            let tools = *waited_on && before.contains(&0x04);
            if tools {
                // Its answer may hold a file's bytes: not logged.
                debug!(
                    "a tool's program ended before our raw REPL ({} bytes of its answer not shown)",
                    before.len()
                );
            }
            if self.saved.is_none() && !tools {
                let before = before.strip_suffix(b"\r\n").unwrap_or(&before);
                let before = if polite {
                    before
                } else {
                    without_our_prompts(before)
                };
                self.show(before, out);
            }
            self.waiting = None;
            match sync {
                Some(answer) => {
                    self.mode = Mode::Syncing {
                        answer: WaitFor::new(answer),
                        deadline: now + self.timeout,
                    };
                    self.timers.set(Timer::Reply, now + self.timeout);
                    self.feed_syncing(now, &rest);
                }
                None => self.start_sync(now, out),
            }
        } else if seen.len() > ENTERING_KEEP {
            // A board that answers with anything but the banner
            // must not grow this (nor make each search longer).
            seen.drain(..seen.len() - raw::RAW_BANNER.len());
        }
    }

    fn feed_syncing(&mut self, now: Instant, text: &[u8]) {
        if let Mode::Syncing { answer, .. } = &mut self.mode
            && answer.feed(text, &mut Vec::new())
        {
            self.mode = Mode::Raw { since: now };
            self.timers.stop(Timer::Reply);
            self.ours_unfinished = false;
            self.known = true;
        }
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

    fn start_sync(&mut self, now: Instant, out: &mut Out) {
        let (code, answer) = raw::sync(rand::random());
        out.text(code);
        self.mode = Mode::Syncing {
            answer: WaitFor::new(answer),
            deadline: now + self.timeout,
        };
        self.timers.set(Timer::Reply, now + self.timeout);
    }

    fn send_ctrl_a(&mut self, now: Instant, polite: bool, out: &mut Out) {
        out.text(raw::ENTER_POLITELY.to_vec());
        self.stray_ctrl_a = None;
        let deadline = now
            + if polite {
                POLITE.min(self.timeout)
            } else {
                self.timeout
            };
        self.mode = Mode::Entering {
            seen: Vec::new(),
            deadline,
            polite,
            waited_on: false,
            sync: None,
        };
        self.timers.set(Timer::Reply, deadline);
    }

    /// The raw REPL from the person's prompt, known and settled: Ctrl-C
    /// to clear their line (`clear`), Ctrl-A and the sync all go in one
    /// frame, each answer awaited in turn. Sent one by one, each waited a
    /// round trip, beside an upload a slice as well.
    fn enter_from_prompt(&mut self, now: Instant, clear: bool, out: &mut Out) {
        let (code, answer) = raw::sync(rand::random());
        let mut text = if clear { b"\x03".to_vec() } else { Vec::new() };
        text.extend_from_slice(raw::ENTER_POLITELY);
        text.extend_from_slice(&code);
        out.text(text);
        self.stray_ctrl_a = None;
        let deadline = now + self.timeout;
        self.mode = if clear {
            Mode::Clearing {
                prompt: WaitFor::new(line::PRIMARY),
                deadline,
                sync: Some(answer),
            }
        } else {
            Mode::Entering {
                seen: Vec::new(),
                deadline,
                polite: false,
                waited_on: false,
                sync: Some(answer),
            }
        };
        self.timers.set(Timer::Reply, deadline);
    }

    fn back_to_terminal(&mut self, now: Instant, out: &mut Out) {
        self.mode = Mode::Terminal;
        self.timers.stop(Timer::Reply);
        // Ctrl-B reprints the banner: one just went by, hidden; a person's
        // Ctrl-B held meanwhile (term sends one on attach) asks for a fresh
        // prompt, which they get.
        self.send_held(now, out);
    }

    fn start_restore(&mut self, now: Instant, saved: Saved, out: &mut Out) {
        self.timers.stop(Timer::Reply);
        let restore = Restore::start(now, saved, &mut self.timers, out);
        self.mode = Mode::Restoring {
            restore,
            deadline: now + RESTORE,
        };
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
        self.check_deadlines(now, out)?;
        match &mut self.mode {
            Mode::Terminal => return self.terminal_turn(now, terminals, out),
            Mode::Raw { since } => {
                let since = *since;
                if terminals == 0 {
                    // Nobody to hand a line back to.
                    self.saved = None;
                }
                let reset_waits =
                    self.queue.front().is_some_and(|q| q.job == Job::Reset) && !binary_idle;
                if !self.queue.is_empty() && !reset_waits {
                    if let Some(job) = self.queue.pop_front() {
                        self.start(now, job, out);
                    }
                } else if self.queue.is_empty() && !self.keys.is_empty() {
                    self.leave(now, out);
                } else if self.queue.is_empty() && terminals > 0 {
                    if now >= since + HAND_BACK {
                        self.leave(now, out);
                    } else {
                        self.timers.set(Timer::HandBack, since + HAND_BACK);
                    }
                }
                // Else the raw prompt stays ours, waiting for nothing by
                // time: a program queued, the transfers' end (a reset),
                // or a terminal to hand it to.
            }
            Mode::Running { job, .. } => {
                if job.user {
                    // The rest of a paste into the person's program.
                    self.send_held(now, out);
                    self.refuse_impatient(out);
                }
                self.poll_program(now, out)
            }
            Mode::Resetting { op, until } if now >= *until => {
                let op = *op;
                out.done(op, Ok(Outcome::Done));
                out.event(Event::BoardChanged);
                self.mode = Mode::Terminal;
                // The board reboots: a fresh link starts clean.
                return Err(Why::Reset);
            }
            _ => {}
        }
        Ok(())
    }

    fn terminal_turn(&mut self, now: Instant, terminals: usize, out: &mut Out) -> Result<(), Why> {
        if !self.first_queued() {
            self.send_held(now, out);
            if !self.keys.is_empty() {
                // The rest of a paste first: no program starts in its middle.
                return Ok(());
            }
        }
        let Some(next) = self.queue.front() else {
            self.waiting = None;
            return Ok(());
        };
        if next.job == Job::Friendly {
            if let Some(q) = self.queue.pop_front() {
                out.done(q.op, Ok(Outcome::Done));
            }
            return Ok(());
        }
        if let Some(t) = self.keys.settling(now) {
            self.timers.set(Timer::Settle, t);
            return Ok(());
        }
        let interrupt = self.interrupt || self.ours_unfinished;
        if !self.known {
            if interrupt {
                out.text(raw::ENTER_INTERRUPTING.to_vec());
                self.mode = Mode::Entering {
                    seen: Vec::new(),
                    deadline: now + self.timeout,
                    polite: false,
                    waited_on: false,
                    sync: None,
                };
                self.timers.set(Timer::Reply, now + self.timeout);
            } else {
                self.send_ctrl_a(now, true, out);
            }
            return Ok(());
        }
        match self.screen.typed() {
            Some(t) if t.is_empty() => {
                self.waiting = None;
                self.enter_from_prompt(now, false, out);
            }
            Some(t) => {
                // Clear the line (Ctrl-C at a prompt only does that); keep
                // it to type back if someone is watching.
                self.waiting = None;
                self.saved = (terminals > 0).then(|| Saved {
                    screen: self.screen.clone(),
                    typed: t,
                });
                self.enter_from_prompt(now, true, out);
            }
            None if interrupt => {
                self.waiting = None;
                out.text(raw::ENTER_INTERRUPTING.to_vec());
                self.mode = Mode::Entering {
                    seen: Vec::new(),
                    deadline: now + self.timeout,
                    polite: false,
                    waited_on: false,
                    sync: None,
                };
                self.timers.set(Timer::Reply, now + self.timeout);
            }
            None => {
                let why = if self.screen.prompt() == Some(Prompt::Paste) {
                    "someone is pasting code at the terminal (paste mode)"
                } else {
                    "the board is running a program started at its terminal"
                };
                if self.waiting.is_none() {
                    self.waiting = Some((now, why.to_string()));
                }
                let mut kept = VecDeque::new();
                while let Some(q) = self.queue.pop_front() {
                    if now >= q.queued_at + q.patience {
                        let waited = now.saturating_duration_since(q.queued_at);
                        let msg = if waited.is_zero() {
                            why.to_string()
                        } else {
                            format!("{why}; waited {:.0} s for it to end", waited.as_secs_f64())
                        };
                        out.done(q.op, Err(Error::Running(msg)));
                    } else {
                        kept.push_back(q);
                    }
                }
                self.queue = kept;
                // Those left wait for the person's program, or until their
                // patience ends.
                if let Some(t) = self.queue.iter().map(|q| q.queued_at + q.patience).min() {
                    self.timers.set(Timer::Patience, t);
                }
            }
        }
        Ok(())
    }

    /// A person's program started by `exec` holds the REPL: what may not
    /// wait for it fails now, as beside one started at the terminal (a
    /// check of the snapshot waited out a whole data logger's run).
    fn refuse_impatient(&mut self, out: &mut Out) {
        if !self.queue.iter().any(|q| q.patience.is_zero()) {
            return;
        }
        let (refused, kept) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition::<VecDeque<_>, _>(|q| q.patience.is_zero());
        self.queue = kept;
        for q in refused {
            let why = "the board is running a person's program (exec)";
            out.done(q.op, Err(Error::Running(why.to_string())));
        }
    }

    fn start(&mut self, now: Instant, job: QueuedProgram, out: &mut Out) {
        match job.job {
            Job::Reset => {
                out.text(b"\x04".to_vec());
                let until = now + Duration::from_millis(500);
                self.mode = Mode::Resetting { op: job.op, until };
                self.timers.set(Timer::Reset, until);
            }
            Job::Friendly => {
                out.done(job.op, Ok(Outcome::Done));
                self.leave(now, out);
            }
            Job::Program => {
                self.ours_unfinished = !job.user;
                let prog = match self.paste_window {
                    Some(w) => Program::with_window(job.code.clone(), w),
                    None => Program::new(job.code.clone()),
                };
                self.mode = Mode::Running {
                    job: Box::new(job),
                    prog: Box::new(prog),
                    started: now,
                    last: now,
                    paced_until: None,
                };
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
        let Mode::Running {
            prog, paced_until, ..
        } = &mut self.mode
        else {
            return;
        };
        if paced_until.is_some_and(|t| now < t) {
            return;
        }
        *paced_until = None;
        loop {
            match prog.poll() {
                Step::Send(b) => out.text(b),
                Step::SendPaced(b) => {
                    out.text(b);
                    *paced_until = Some(now + PACE);
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
            self.mode = Mode::Raw { since: now };
            return;
        }
        if job.user {
            out.event(Event::BoardChanged);
        }
        out.done(job.op, Ok(Outcome::Output(o)));
        self.mode = Mode::Raw { since: now };
        if std::mem::take(&mut self.stray_credits) {
            self.start_sync(now, out);
        }
    }

    fn leave(&mut self, now: Instant, out: &mut Out) {
        out.text(raw::LEAVE.to_vec());
        // A person's Ctrl-B held meanwhile (term's on attach, the lane's
        // after a soft reset) asks for the banner and a fresh prompt: this
        // Ctrl-B prints them, shown (but over a line to be typed back).
        let asked = self.keys.drop_leading(0x02);
        let banner = asked && self.saved.as_ref().is_none_or(|s| s.typed.is_empty());
        self.mode = Mode::Leaving {
            prompt: WaitFor::new(line::PRIMARY),
            deadline: now + self.timeout,
            banner,
        };
        self.timers.set(Timer::Reply, now + self.timeout);
    }

    fn check_deadlines(&mut self, now: Instant, out: &mut Out) -> Result<(), Why> {
        match &mut self.mode {
            Mode::Clearing { deadline, .. }
            | Mode::Syncing { deadline, .. }
            | Mode::Leaving { deadline, .. }
                if now >= *deadline =>
            {
                return Err(Why::Silent("the board's REPL stopped answering"));
            }
            Mode::Entering {
                deadline,
                polite,
                seen,
                waited_on,
                ..
            } if now >= *deadline => {
                if !*polite {
                    return Err(Why::Silent("entering the raw REPL"));
                }
                if !*waited_on && tools_program(seen) && self.timeout > POLITE {
                    // The board may be in the raw REPL, running a program a
                    // tool left (ours, when a daemon died in its middle):
                    // such programs are bounded and end by themselves, and
                    // our Ctrl-A, waiting in the board's input, then brings
                    // the banner. A person's program past the time-out is
                    // still theirs (below).
                    *waited_on = true;
                    // Or a raw paste of ours cut off (a daemon killed
                    // while it sent a long program): the board waits
                    // there for the rest, and took our Ctrl-A as code.
                    // Ctrl-D ends it (the code with that Ctrl-A in it
                    // cannot compile), the second Ctrl-A then brings the
                    // banner. Anywhere else this is harmless: after a
                    // program it is a blank program (not an empty one,
                    // which would soft-reset) and a fresh raw prompt.
                    out.text(END_PASTE.to_vec());
                    *deadline += self.timeout - POLITE;
                    let deadline = *deadline;
                    self.timers.set(Timer::Reply, deadline);
                    self.waiting = Some((
                        now,
                        "the board runs a program (silent, or a tool's in the raw REPL: those end by themselves)".into(),
                    ));
                    return Ok(());
                }
                // The board runs a program: its REPL is not ours to take.
                let seen = std::mem::take(seen);
                self.stray_ctrl_a = Some(Holdback::new(raw::RAW_ENTERED));
                self.known = true;
                self.screen = Screen::default();
                self.mode = Mode::Terminal;
                self.timers.stop(Timer::Reply);
                self.show(&seen, out);
                let why = "the board is running a program";
                self.waiting = Some((now, why.to_string()));
                let mut kept = VecDeque::new();
                while let Some(q) = self.queue.pop_front() {
                    if q.patience.is_zero() {
                        out.done(q.op, Err(Error::Running(why.to_string())));
                    } else {
                        kept.push_back(q);
                    }
                }
                self.queue = kept;
            }
            Mode::Running { job, last, .. } if job.bounded && now >= *last + self.timeout => {
                return Err(Why::Silent("a program of ours stopped answering"));
            }
            Mode::Running { last, prog, .. } if !prog.taken() && now >= *last + self.timeout => {
                return Err(Why::Silent("the board stopped taking the program"));
            }
            Mode::Restoring { deadline, .. } if now >= *deadline => {
                if let Mode::Restoring { restore, .. } =
                    std::mem::replace(&mut self.mode, Mode::Terminal)
                {
                    self.screen = restore.give_up();
                }
                self.back_to_terminal(now, out);
            }
            _ => {}
        }
        Ok(())
    }
}

/// Whether what the board printed while our polite Ctrl-A went unanswered
/// may be a tool's program in the raw REPL rather than a person's at the
/// friendly one: nothing at all (a program that prints its answer at the
/// end), or the raw REPL's framing (`\x04` ends each part of an answer,
/// the friendly REPL never prints it). A person's program that prints
/// shows text without it.
fn tools_program(seen: &[u8]) -> bool {
    seen.is_empty() || seen.contains(&0x04)
}

/// What the board printed before the raw banner when we entered with
/// `\r` and two Ctrl-Cs, less the prompts those drew: the person sees one
/// prompt after a program's last output, and none at all when the board
/// was at its prompt already (after a soft reset, the banner comes next).
fn without_our_prompts(before: &[u8]) -> &[u8] {
    let mut end = before.len();
    let mut first = None;
    for _ in 0..raw::ENTER_INTERRUPTING.len() - 1 {
        let Some(rest) = before[..end].strip_suffix(line::PRIMARY) else {
            break;
        };
        first = Some(end);
        end = rest.strip_suffix(b"\r\n").unwrap_or(rest).len();
    }
    match first {
        Some(first) if end > 0 => &before[..first],
        Some(_) => &[],
        None => before,
    }
}

fn line_find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    crate::protocol::login::find(hay, needle)
}

pub fn clone_err(e: &Error) -> Error {
    e.clone()
}
