//! The REPL changing hands: taking the raw REPL for our programs (from
//! the person's prompt, clearing a half-typed line; politely from a
//! board in an unknown state, or interrupting it), syncing it, and giving
//! the friendly prompt back (typing the person's line back). Each step
//! waits for the board's answer until `Timer::Reply`; a polite Ctrl-A
//! that goes unanswered means a program runs, a tool's or a person's.

use super::{Mode, TextLane, line_find};
use crate::error::Held;
use crate::protocol::line::{self, Screen};
use crate::protocol::raw::{self, Holdback, WaitFor};
use crate::session::restore::{Restore, Saved};
use crate::session::shared::{Out, Why};
use crate::session::timer::Timer;
use std::time::{Duration, Instant};
use tracing::debug;

/// A board that does not answer a polite Ctrl-A in this time runs a program.
const POLITE: Duration = Duration::from_millis(1500);
/// Ends a raw paste left unfinished: a blank, Ctrl-D, Ctrl-A again.
const END_PASTE: &[u8] = b" \x04\x01";
/// Text kept while waiting for the raw banner.
const ENTERING_KEEP: usize = 4096;

impl TextLane {
    pub(super) fn feed_entering(&mut self, now: Instant, text: &[u8], out: &mut Out) {
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

    pub(super) fn feed_syncing(&mut self, now: Instant, text: &[u8]) {
        if let Mode::Syncing { answer, .. } = &mut self.mode
            && answer.feed(text, &mut Vec::new())
        {
            self.at_raw_prompt(now);
            self.timers.stop(Timer::Reply);
            self.ours_unfinished = false;
            self.known = true;
        }
    }

    pub(super) fn start_sync(&mut self, now: Instant, out: &mut Out) {
        let (code, answer) = raw::sync(rand::random());
        out.text(code);
        self.mode = Mode::Syncing {
            answer: WaitFor::new(answer),
        };
        self.timers.set(Timer::Reply, now + self.timeout);
    }

    pub(super) fn send_ctrl_a(&mut self, now: Instant, polite: bool, out: &mut Out) {
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
    pub(super) fn enter_from_prompt(&mut self, now: Instant, clear: bool, out: &mut Out) {
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
                sync: Some(answer),
            }
        } else {
            Mode::Entering {
                seen: Vec::new(),
                polite: false,
                waited_on: false,
                sync: Some(answer),
            }
        };
        self.timers.set(Timer::Reply, deadline);
    }

    pub(super) fn leave(&mut self, now: Instant, out: &mut Out) {
        out.text(raw::LEAVE.to_vec());
        // A person's Ctrl-B held meanwhile (term's on attach, the lane's
        // after a soft reset) asks for the banner and a fresh prompt: this
        // Ctrl-B prints them, shown (but over a line to be typed back).
        let asked = self.keys.drop_leading(0x02);
        let banner = asked && self.saved.as_ref().is_none_or(|s| s.typed.is_empty());
        self.mode = Mode::Leaving {
            prompt: WaitFor::new(line::PRIMARY),
            banner,
        };
        self.timers.set(Timer::Reply, now + self.timeout);
    }

    pub(super) fn back_to_terminal(&mut self, now: Instant, out: &mut Out) {
        self.mode = Mode::Terminal;
        self.timers.stop(Timer::Reply);
        // Ctrl-B reprints the banner: one just went by, hidden; a person's
        // Ctrl-B held meanwhile (term sends one on attach) asks for a fresh
        // prompt, which they get.
        self.send_held(now, out);
    }

    pub(super) fn start_restore(&mut self, now: Instant, saved: Saved, out: &mut Out) {
        self.timers.stop(Timer::Reply);
        let restore = Restore::start(now, saved, &mut self.timers, out);
        self.mode = Mode::Restoring { restore };
    }

    /// The board did not answer what the lane sent by `Timer::Reply`,
    /// which was due `at`.
    pub(super) fn no_reply(&mut self, now: Instant, at: Instant, out: &mut Out) -> Result<(), Why> {
        let Mode::Entering {
            polite,
            seen,
            waited_on,
            ..
        } = &mut self.mode
        else {
            return match self.mode {
                Mode::Clearing { .. } | Mode::Syncing { .. } | Mode::Leaving { .. } => {
                    Err(Why::Silent("the board's REPL stopped answering"))
                }
                _ => Ok(()),
            };
        };
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
            self.timers.set(Timer::Reply, at + (self.timeout - POLITE));
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
        let why = Held::Program;
        self.waiting = Some((now, why.to_string()));
        self.refuse_impatient(why, out);
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
