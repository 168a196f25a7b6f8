//! A person's half-typed line, kept while a program of ours has the REPL
//! and typed back afterwards with the cursor where it was; the board's echo
//! of it is hidden, as the person's terminal already shows the line.

use super::shared::Out;
use super::timer::{Timer, TimerTable};
use crate::protocol::line::{self, Screen, Typed};
use std::time::{Duration, Instant};

/// Typing a line back takes a round trip or two; past this, give up on it.
pub const RESTORE: Duration = Duration::from_secs(3);

/// What a person had typed when a program took the REPL, and what their
/// terminal shows (kept, to be theirs again afterwards).
#[derive(Debug, Clone)]
pub struct Saved {
    pub screen: Screen,
    pub typed: Typed,
}

/// The line being typed back.
#[derive(Debug)]
pub struct Restore {
    saved: Saved,
    /// The board's echo of it, as a terminal would show it.
    scratch: Screen,
}

impl Restore {
    pub fn start(now: Instant, saved: Saved, timers: &mut TimerTable, out: &mut Out) -> Restore {
        out.text(line::retype(&saved.typed));
        timers.set(Timer::Restore, now + RESTORE);
        Restore {
            saved,
            scratch: Screen::at_prompt(),
        }
    }

    /// The board's echo; done when it shows the line and cursor as they
    /// were.
    pub fn feed(&mut self, text: &[u8]) -> bool {
        self.scratch.feed(text);
        self.scratch.typed().as_ref() == Some(&self.saved.typed)
    }

    /// The person's screen, as it was.
    pub fn done(self, timers: &mut TimerTable) -> Screen {
        timers.stop(Timer::Restore);
        self.saved.screen
    }

    /// The board did not redraw the line as expected: what it shows is
    /// from now on the truth.
    pub fn give_up(self) -> Screen {
        self.scratch
    }
}
