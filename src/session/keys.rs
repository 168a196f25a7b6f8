//! A person's keys on their way to the board: held while a program of ours
//! has the REPL, and a paste paced by the board's echo so that it does not
//! overflow the board's input buffer (about 256 bytes) and lose its middle.

use super::timer::{Timer, TimerTable};
use std::time::{Duration, Instant};

/// How long after a person's last key the REPL is left to them, so that a
/// key still in flight (and its echo) is not mistaken for a settled line.
pub const SETTLE: Duration = Duration::from_millis(150);
/// A paste goes out this many keys at a time, the next once the board has
/// echoed as many (it echoes what it has taken), or after `ECHO_WAIT`
/// without an echo (a program reading without echo).
const KEY_CHUNK: usize = 128;
const ECHO_WAIT: Duration = Duration::from_millis(50);
/// Keys sent are on their way until the board has said as much back (its
/// echo, or what Enter printed): a line is not settled before, as what is
/// on the person's screen is not yet what the board has. Keys that echo
/// nothing (an arrow at the line's end) settle after this long.
const ECHO_LATE: Duration = Duration::from_secs(2);
/// Printable keys typed at a settled line (or Ctrl-C at a prompt) settle
/// once the board has echoed them and been quiet this long (an insertion's
/// echo, a fresh prompt, come in a write or two): their echo is all they
/// do, so nothing more is on its way. A read beside an upload waited the
/// whole `SETTLE` after each key.
const ECHO_GAP: Duration = Duration::from_millis(20);

#[derive(Debug, Default)]
pub struct Keys {
    held: Vec<u8>,
    last: Option<Instant>,
    /// Keys of a paste sent but not yet echoed, and until when to wait
    /// for their echo.
    unechoed: usize,
    echo_until: Option<Instant>,
    /// Keys sent whose echo has not come back yet, and when the last went.
    in_flight: usize,
    sent_at: Option<Instant>,
    /// When the board last said something.
    heard_at: Option<Instant>,
    /// Every key sent since the line last settled is printable (see
    /// `ECHO_GAP`).
    plain: bool,
    /// The line had settled when the keys now held were typed.
    settled_before: bool,
}

impl Keys {
    pub fn hold(&mut self, now: Instant, keys: &[u8]) {
        if self.held.is_empty() && !keys.is_empty() {
            // The person's own keys, not what the board said since (our
            // programs' answers, the banner of our Ctrl-B).
            let quiet = |t: Option<Instant>| t.is_none_or(|t| now >= t + SETTLE);
            self.settled_before = self.in_flight == 0 && quiet(self.sent_at) && quiet(self.last);
        }
        self.held.extend_from_slice(keys);
        self.last = Some(now);
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Drops every held key (the board is unreachable: keys must not run
    /// later, when nobody expects them to); says how many.
    pub fn drop_all(&mut self) -> usize {
        let n = self.held.len();
        self.held.clear();
        self.unechoed = 0;
        self.echo_until = None;
        self.link_changed();
        n
    }

    /// A new link (or none): nothing sent is on its way any more.
    pub fn link_changed(&mut self) {
        self.plain = false;
        self.in_flight = 0;
        self.sent_at = None;
        self.heard_at = None;
    }

    /// Drops a held `key` at the front (a Ctrl-B the lane's own makes
    /// pointless); says whether there was one.
    pub fn drop_leading(&mut self, key: u8) -> bool {
        let there = self.held.first() == Some(&key);
        if there {
            self.held.remove(0);
        }
        there
    }

    /// Drops the held keys up to and including the first `key`, if held.
    pub fn take_through(&mut self, key: u8) -> bool {
        match self.held.iter().position(|&k| k == key) {
            Some(i) => {
                self.held.drain(..=i);
                true
            }
            None => false,
        }
    }

    /// Keys sent that the board did not take: first in line again.
    pub fn unsend(&mut self, keys: &[u8]) {
        self.held.splice(0..0, keys.iter().copied());
        self.unechoed = 0;
        self.echo_until = None;
    }

    /// Text from the board: as much of a paste echoed.
    pub fn echoed(&mut self, now: Instant, n: usize) {
        self.unechoed = self.unechoed.saturating_sub(n);
        self.in_flight = self.in_flight.saturating_sub(n);
        if n > 0 {
            self.heard_at = Some(now);
        }
    }

    /// When the person's line counts as settled, if it is not yet at `now`:
    /// a while after their last key, and once the board has echoed as many
    /// bytes as were sent and then been quiet a while (the echo of one
    /// frame of keys comes in pieces: Enter's output, then the next key),
    /// or the echo is very late. Records the `Settle` timer for it (and
    /// says whether the line is still settling).
    pub fn settling(&self, now: Instant, timers: &mut TimerTable) -> bool {
        match self.settles_at(now) {
            Some(t) => {
                timers.set(Timer::Settle, t);
                true
            }
            None => false,
        }
    }

    fn settles_at(&self, now: Instant) -> Option<Instant> {
        if self.plain
            && self.in_flight == 0
            && let (Some(sent), Some(heard)) = (self.sent_at, self.heard_at)
            && heard >= sent
        {
            return Some(heard + ECHO_GAP).filter(|t| now < *t);
        }
        self.settling_slowly(now)
    }

    /// `settles_at` for keys that may do more than echo (Enter, a control key).
    fn settling_slowly(&self, now: Instant) -> Option<Instant> {
        let typed = self.last.map(|t| t + SETTLE);
        let echo = self.sent_at.map(|sent| {
            let late = sent + ECHO_LATE;
            match self.heard_at {
                _ if self.in_flight > 0 => late,
                Some(h) if h >= sent => (h + SETTLE).min(late),
                _ => sent,
            }
        });
        typed.into_iter().chain(echo).filter(|t| now < *t).max()
    }

    /// The clocks stood still for `d` (the keys waited for an upload).
    pub fn thaw(&mut self, d: Duration) {
        for t in [&mut self.echo_until, &mut self.last, &mut self.sent_at]
            .into_iter()
            .flatten()
        {
            *t += d;
        }
    }

    /// The next keys to send, unless the echo of the last chunk of a paste
    /// is still awaited (then the echo, or its timer, sends them).
    /// `at_prompt`: the board's REPL is at a prompt, where a lone Ctrl-C
    /// only clears the line (it prints a fresh prompt, nothing more).
    pub fn next_chunk(
        &mut self,
        now: Instant,
        at_prompt: bool,
        timers: &mut TimerTable,
    ) -> Option<Vec<u8>> {
        let echo_awaited = self.unechoed > 0 && self.echo_until.is_some_and(|t| now < t);
        if self.held.is_empty() || echo_awaited {
            return None;
        }
        let n = self.held.len().min(KEY_CHUNK);
        let keys: Vec<u8> = self.held.drain(..n).collect();
        let printable =
            keys.iter().all(|k| (0x20..0x7f).contains(k)) || (at_prompt && keys == [0x03]);
        self.plain = printable && (self.plain || self.settled_before);
        self.settled_before = false;
        self.in_flight += n;
        self.sent_at = Some(now);
        // Keys held while a program had the REPL are typed now, as far as
        // the board knows: the line is not settled until they are echoed.
        self.last = Some(self.last.map_or(now, |t| t.max(now)));
        let paced = n == KEY_CHUNK;
        self.unechoed = if paced { n } else { 0 };
        self.echo_until = paced.then_some(now + ECHO_WAIT);
        if paced {
            timers.set(Timer::KeyEcho, now + ECHO_WAIT);
        }
        Some(keys)
    }
}
