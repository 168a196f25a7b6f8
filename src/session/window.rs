//! How many GET acks to keep in flight. Each ack pulls a 256-byte chunk; the
//! chunks the board has queued for us are queued ahead of everything else it
//! says (a key's echo, a listing), so the window is kept just large enough
//! to fill the link: a LEDBAT-style controller (RFC 6817) aims for a small
//! queueing delay above the lowest ack-to-chunk delay seen on this link.
//! Slow start fills a fast link within a few round trips.

use std::collections::VecDeque;
use std::time::Duration;

/// The queueing delay a transfer may add to everything else on the link.
pub const TARGET: Duration = Duration::from_millis(25);
pub const MIN_WINDOW: f64 = 2.0;
/// Acks added per chunk in slow start: the window triples each round trip
/// (a GET of 100 KB on a 10 ms link took 11 round trips doubling, 7
/// tripling). A slow link leaves slow start at its first queued chunks
/// all the same.
const SLOW_START_GAIN: f64 = 2.0;

#[derive(Debug, Clone)]
pub struct Window {
    cwnd: f64,
    max: f64,
    slow_start: bool,
    /// Lowest delay of each of the last few periods of samples.
    base: VecDeque<Duration>,
    samples_in_period: u32,
    /// The last few delays, whose minimum filters out jitter.
    recent: VecDeque<Duration>,
}

const PERIOD: u32 = 200;
const PERIODS: usize = 10;

impl Window {
    pub fn new(max: u64) -> Window {
        Window {
            // Start small: the lowest delay is learnt at a small window.
            cwnd: MIN_WINDOW.min(max as f64).max(1.0),
            max: (max as f64).max(1.0),
            slow_start: true,
            base: VecDeque::new(),
            samples_in_period: 0,
            recent: VecDeque::new(),
        }
    }

    /// A link nobody else waits on starts its first transfer with the
    /// whole window in flight, not two: only the transfer's own reader
    /// waits behind the chunks it queues. (A board whose send buffer is
    /// full blocks writing them: `websocket(cl, True)` writes blocking.)
    /// The first chunk still comes at the link's own delay, so the base
    /// LEDBAT measures from is the true one.
    pub fn open_fully(&mut self) {
        if self.slow_start && self.base.is_empty() {
            self.cwnd = self.max;
        }
    }

    /// Acks to keep in flight now.
    pub fn acks(&self) -> u64 {
        self.cwnd.floor().max(1.0) as u64
    }

    /// One chunk arrived `delay` after its ack was sent.
    pub fn on_chunk(&mut self, delay: Duration) {
        self.samples_in_period += 1;
        match self.base.back_mut() {
            Some(b) if self.samples_in_period <= PERIOD => *b = (*b).min(delay),
            _ => {
                self.base.push_back(delay);
                self.samples_in_period = 1;
                if self.base.len() > PERIODS {
                    self.base.pop_front();
                }
            }
        }
        self.recent.push_back(delay);
        if self.recent.len() > 4 {
            self.recent.pop_front();
        }
        let base = self.base.iter().min().copied().unwrap_or(delay);
        let current = self.recent.iter().min().copied().unwrap_or(delay);
        let queued = current.saturating_sub(base);
        let floor = MIN_WINDOW.min(self.max);
        if self.slow_start {
            if queued < TARGET / 2 {
                self.cwnd = (self.cwnd + SLOW_START_GAIN).min(self.max);
                return;
            }
            self.slow_start = false;
        }
        let off = (TARGET.as_secs_f64() - queued.as_secs_f64()) / TARGET.as_secs_f64();
        let off = off.clamp(-1.0, 1.0);
        self.cwnd = (self.cwnd + off / self.cwnd).clamp(floor, self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link of `rate` bytes/s and `rtt`, and a board that needs `work`
    /// per chunk: the delay of each chunk with `w` acks in flight.
    fn run(rate: f64, rtt: Duration, work: Duration, chunks: usize) -> (Window, f64) {
        let mut win = Window::new(64);
        let per_chunk = Duration::from_secs_f64(258.0 / rate).max(work);
        let mut total = Duration::ZERO;
        for _ in 0..chunks {
            let w = win.acks() as u32;
            // A full link: each chunk waits behind the others in flight.
            let delay = (rtt + per_chunk).max(per_chunk * w);
            total += per_chunk.max((rtt + per_chunk) / w);
            win.on_chunk(delay);
        }
        let rate_got = chunks as f64 * 256.0 / total.as_secs_f64();
        (win, rate_got)
    }

    #[test]
    fn a_slow_link_gets_a_small_window_that_still_fills_it() {
        let (w, got) = run(20_000.0, Duration::from_millis(10), Duration::ZERO, 800);
        assert!(w.acks() <= 4, "window {} on a 20 KB/s link", w.acks());
        assert!(got > 0.9 * 20_000.0 * 256.0 / 258.0, "{got} B/s");
    }

    #[test]
    fn a_fast_link_opens_the_window_in_slow_start() {
        let mut w = Window::new(64);
        for _ in 0..80 {
            w.on_chunk(Duration::from_millis(10));
        }
        assert_eq!(w.acks(), 64);
    }

    #[test]
    fn a_fast_link_fills_a_window_of_128_in_five_round_trips() {
        // Each round trip, every chunk of the window comes back at the
        // link's delay.
        let mut w = Window::new(128);
        let mut rounds = 0;
        while w.acks() < 128 {
            for _ in 0..w.acks() {
                w.on_chunk(Duration::from_millis(10));
            }
            rounds += 1;
        }
        assert!(rounds <= 5, "{rounds} round trips");
    }

    #[test]
    fn a_board_that_sleeps_per_chunk_keeps_two_in_flight() {
        let (w, _) = run(
            1e9,
            Duration::from_millis(10),
            Duration::from_millis(20),
            400,
        );
        assert!((2..=4).contains(&w.acks()), "{}", w.acks());
    }

    #[test]
    fn a_window_of_one_stays_one() {
        let mut w = Window::new(1);
        for _ in 0..50 {
            w.on_chunk(Duration::from_millis(30));
        }
        assert_eq!(w.acks(), 1);
    }
}
