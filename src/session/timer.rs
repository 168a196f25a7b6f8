//! The session's timers as data, as quinn-proto keeps them: a lane that
//! decides to wait records what it waits for and until when; the core's
//! `poll_timeout` reads the earliest entry and `handle_timeout` stops every
//! entry that is due before the lanes act. A timer therefore fires once: a
//! lane that still wants to wait must decide so again, for a later time.
//! Deadlines are never recomputed from state (that is how an idle session
//! once reported a deadline already past, and spun).

use std::time::{Duration, Instant};

/// What a timer is for; the log says which one woke the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// The board's answer to what the text lane sent (a prompt, the raw
    /// banner, the sync answer, a line typed back).
    Reply,
    /// A person's line typed back.
    Restore,
    /// An idle raw prompt goes back to the person at the terminal.
    HandBack,
    /// A person's line settles after their last key.
    Settle,
    /// A queued program stops waiting for a person's program.
    Patience,
    /// A program's next piece, paced for a board without raw-paste.
    Pace,
    /// A program of ours that stopped answering.
    Silence,
    /// A soft reset's reboot.
    Reset,
    /// The echo of a chunk of a person's paste.
    KeyEcho,
    /// A file transfer that made no progress.
    Transfer,
    /// The socket's backlog is read again (an upload waits for room).
    Backlog,
    /// The next connection attempt.
    Reconnect,
    /// A queued operation stops waiting for the link.
    LinkWait,
    /// The board's stdin is left to the share a moment after an answer.
    ShareGrace,
    /// Output held back as the possible start of a rejection notice is
    /// passed on (a line's end must not wait for the next line).
    Notice,
    /// Keys went and the board has said nothing since: asked whether it
    /// is there, then given up on.
    Unheard,
}

const KINDS: [Timer; 16] = [
    Timer::Reply,
    Timer::Restore,
    Timer::HandBack,
    Timer::Settle,
    Timer::Patience,
    Timer::Pace,
    Timer::Silence,
    Timer::Reset,
    Timer::KeyEcho,
    Timer::Transfer,
    Timer::Backlog,
    Timer::Reconnect,
    Timer::LinkWait,
    Timer::ShareGrace,
    Timer::Notice,
    Timer::Unheard,
];

#[derive(Debug, Default, Clone)]
pub struct TimerTable {
    at: [Option<Instant>; KINDS.len()],
}

impl TimerTable {
    pub fn set(&mut self, t: Timer, at: Instant) {
        self.at[t as usize] = Some(at);
    }

    /// Sets `t` unless it is already set (a cadence, not pushed back by
    /// every input).
    pub fn keep(&mut self, t: Timer, at: Instant) {
        self.at[t as usize].get_or_insert(at);
    }

    pub fn stop(&mut self, t: Timer) {
        self.at[t as usize] = None;
    }

    pub fn get(&self, t: Timer) -> Option<Instant> {
        self.at[t as usize]
    }

    pub fn clear(&mut self) {
        self.at = Default::default();
    }

    /// The earliest timer.
    pub fn next(&self) -> Option<(Timer, Instant)> {
        self.next_but(None)
    }

    /// The earliest timer other than `held` (one kept, due or not, that
    /// wakes nobody for now).
    pub fn next_but(&self, held: Option<Timer>) -> Option<(Timer, Instant)> {
        KINDS
            .iter()
            .filter(|&&k| Some(k) != held)
            .filter_map(|&k| self.get(k).map(|at| (k, at)))
            .min_by_key(|(_, at)| *at)
    }

    /// Stops the timers due at `now` and says which they were, and when
    /// each was due.
    pub fn expire(&mut self, now: Instant) -> Vec<(Timer, Instant)> {
        self.expire_but(now, None)
    }

    /// As [`TimerTable::expire`], but `held` stays (see
    /// [`TimerTable::next_but`]).
    pub fn expire_but(&mut self, now: Instant, held: Option<Timer>) -> Vec<(Timer, Instant)> {
        let mut due = Vec::new();
        for k in KINDS.into_iter().filter(|&k| Some(k) != held) {
            if let Some(at) = self.get(k).filter(|at| *at <= now) {
                self.stop(k);
                due.push((k, at));
            }
        }
        due
    }

    /// Every timer `d` later (the clocks they belong to stood still).
    pub fn shift(&mut self, d: Duration) {
        for at in self.at.iter_mut().flatten() {
            *at += d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timer_fires_once_and_the_earliest_is_next() {
        let now = Instant::now();
        let mut t = TimerTable::default();
        t.set(Timer::HandBack, now + Duration::from_millis(300));
        t.set(Timer::Reply, now + Duration::from_millis(100));
        t.keep(Timer::Reply, now + Duration::from_secs(9));
        assert_eq!(
            t.next(),
            Some((Timer::Reply, now + Duration::from_millis(100)))
        );
        assert_eq!(
            t.expire(now + Duration::from_millis(100)),
            [(Timer::Reply, now + Duration::from_millis(100))]
        );
        assert!(t.expire(now + Duration::from_millis(100)).is_empty());
        assert_eq!(t.next().map(|(k, _)| k), Some(Timer::HandBack));
        t.shift(Duration::from_secs(1));
        assert!(t.expire(now + Duration::from_millis(400)).is_empty());
        // A held timer wakes nobody and stays, due, until it is not held.
        let later = now + Duration::from_secs(2);
        assert_eq!(t.next_but(Some(Timer::HandBack)), None);
        assert!(t.expire_but(later, Some(Timer::HandBack)).is_empty());
        assert_eq!(t.expire(later).len(), 1);
    }
}
