//! Turns at the REPL: the person's (the default) and our programs'. A
//! program waits for the person's line to settle (`Keys::settling`) and
//! takes the REPL from their prompt; it waits for a program the person
//! started as long as its patience lasts, and fails after; an idle raw
//! prompt goes back to the person at the terminal. Keys typed meanwhile
//! are held, and go when the person's turn comes back.

use super::{Job, Mode, QueuedProgram, TextLane, clone_err};
use crate::error::{Error, Held};
use crate::protocol::line::Prompt;
use crate::protocol::raw;
use crate::session::restore::Saved;
use crate::session::shared::{OpId, Out, Outcome, Why};
use crate::session::timer::Timer;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// An idle raw prompt goes back to the person after this long.
const HAND_BACK: Duration = Duration::from_millis(300);
/// After a person's Ctrl-D at the friendly prompt, how long the keys
/// typed after it wait for a sign of the soft reset it may be (the board
/// says `soft reboot`, then ends the link): sent on the old link, they
/// would be lost with it, or run before what a new link sets up first.
const RESET_WAIT: Duration = Duration::from_secs(2);

impl TextLane {
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

    pub(super) fn first_queued(&self) -> bool {
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
    pub(super) fn theirs(&self) -> bool {
        match &self.mode {
            Mode::Terminal => !self.first_queued(),
            Mode::Running { job, .. } => job.user,
            _ => false,
        }
    }

    pub(super) fn send_held(&mut self, now: Instant, out: &mut Out) {
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
        self.unheard.get_or_insert((now, 0)).1 += keys.len();
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

    /// Why programs are waiting, and since when.
    pub fn waiting(&self) -> Option<&(Instant, String)> {
        self.waiting.as_ref()
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

    /// The raw prompt is ours from `now`: it goes back to a person at the
    /// terminal when `Timer::HandBack` is due with nothing to run (with no
    /// terminal the timer stays, due, until one attaches: see
    /// [`TextLane::next_timer`]).
    pub(super) fn at_raw_prompt(&mut self, now: Instant) {
        self.mode = Mode::Raw;
        self.timers.set(Timer::HandBack, now + HAND_BACK);
    }

    /// At the raw prompt, ours: the next program, or the REPL back to the
    /// person.
    pub(super) fn raw_turn(
        &mut self,
        now: Instant,
        terminals: usize,
        binary_idle: bool,
        out: &mut Out,
    ) {
        if terminals == 0 {
            // Nobody to hand a line back to.
            self.saved = None;
        }
        let reset_waits = self.queue.front().is_some_and(|q| q.job == Job::Reset) && !binary_idle;
        if self.startable() && !reset_waits {
            if let Some(job) = self.queue.pop_front() {
                self.start(now, job, out);
            }
        } else if self.queue.is_empty() && !self.keys.is_empty() {
            self.leave(now, out);
        } else if self.queue.is_empty()
            && terminals > 0
            && self.timers.get(Timer::HandBack).is_none_or(|at| at <= now)
        {
            self.timers.stop(Timer::HandBack);
            self.leave(now, out);
        }
        // Else the raw prompt stays ours: `Timer::HandBack` runs, or it
        // waits for nothing by time (a program queued, the transfers' end
        // for a reset, a terminal to hand it to).
    }

    pub(super) fn terminal_turn(
        &mut self,
        now: Instant,
        terminals: usize,
        out: &mut Out,
    ) -> Result<(), Why> {
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
        if self.keys.settling(now, &mut self.timers) {
            return Ok(());
        }
        let interrupt = self.interrupt || self.ours_unfinished;
        if !self.known {
            if interrupt {
                self.enter_interrupting(now, out);
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
                self.enter_interrupting(now, out);
            }
            None => {
                let why = if self.screen.prompt() == Some(Prompt::Paste) {
                    Held::Pasting
                } else {
                    Held::TerminalProgram
                };
                if self.waiting.is_none() {
                    self.waiting = Some((now, why.to_string()));
                }
                self.expire_patience(now, why, out);
            }
        }
        Ok(())
    }

    /// A program not ours to stop holds the REPL (`why`): queued programs
    /// whose patience has run out fail; those left wait for it, or until
    /// their patience ends.
    pub(super) fn expire_patience(&mut self, now: Instant, why: Held, out: &mut Out) {
        let mut kept = VecDeque::new();
        while let Some(q) = self.queue.pop_front() {
            if now >= q.queued_at + q.patience {
                let waited = now.saturating_duration_since(q.queued_at);
                let waited = (!waited.is_zero()).then_some(waited);
                let e = Error::Running {
                    why,
                    waited,
                    kept: None,
                };
                out.done(q.op, Err(e));
            } else {
                kept.push_back(q);
            }
        }
        self.queue = kept;
        match self.queue.iter().map(|q| q.queued_at + q.patience).min() {
            Some(t) => self.timers.set(Timer::Patience, t),
            None => self.timers.stop(Timer::Patience),
        }
    }

    /// Into the raw REPL whatever runs: Ctrl-C first (what the board runs
    /// is ours to stop, or the user said so). The sync goes in the same
    /// frame: nothing the board might still run takes it (it is stopped),
    /// and each new connection saves a round trip.
    fn enter_interrupting(&mut self, now: Instant, out: &mut Out) {
        let (code, answer) = raw::sync(rand::random());
        let mut text = raw::ENTER_INTERRUPTING.to_vec();
        text.extend_from_slice(&code);
        out.text(text);
        self.mode = Mode::Entering {
            seen: Vec::new(),
            polite: false,
            waited_on: false,
            sync: Some(answer),
        };
        self.timers.set(Timer::Reply, now + self.timeout);
    }

    /// A program holds the REPL that is not ours to take (one a person
    /// started by `exec`, or at the terminal): what may not wait for it
    /// fails now, `why` (a check of the snapshot once waited out a whole
    /// data logger's run).
    pub(super) fn refuse_impatient(&mut self, why: Held, out: &mut Out) {
        if !self.queue.iter().any(|q| q.patience.is_zero()) {
            return;
        }
        let (refused, kept) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition::<VecDeque<_>, _>(|q| q.patience.is_zero());
        self.queue = kept;
        for q in refused {
            out.done(q.op, Err(Error::running(why)));
        }
    }
}
