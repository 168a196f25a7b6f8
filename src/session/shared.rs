//! The session's vocabulary, shared by the core and its lanes (as
//! quinn-proto's `shared.rs`): the lanes depend on it, the core on the
//! lanes, and nothing here on either.

use super::share::Ask;
use crate::error::Error;
use crate::protocol::ProtocolError;
use crate::protocol::raw::Output;
use std::collections::VecDeque;

pub type OpId = u64;

#[derive(Debug)]
pub enum Outcome {
    Output(Output),
    /// A GET ended; its data came as [`Event::Chunk`]s: this many bytes.
    Got(u64),
    Put,
    Version(u8, u8, u8),
    Done,
}

#[derive(Debug)]
pub enum Event {
    Done(OpId, Result<Outcome, Error>),
    /// GET data, or a streaming program's output, in order.
    Chunk(OpId, Vec<u8>),
    /// A GET starts over on a new link: the data so far is to be dropped.
    Restart(OpId),
    /// Bytes of a PUT the board has taken.
    Progress(OpId, u64),
    /// Output for the people at the terminal.
    Terminal(Vec<u8>),
    /// Code ran that may have changed the board's files.
    BoardChanged,
    /// The link is up (true) or lost (false).
    Link(bool),
    /// A request from the board's `/remote`, for the share's server
    /// (answered with [`super::machine::Machine::share_answer`]).
    Share(Ask),
}

/// What the shell must do to the link: a stream apart from the events
/// for the application, in the order the machine decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Open a link; report back with `on_connected` or `on_connect_failed`.
    Connect,
    /// Close the socket now.
    DropLink,
}

/// Why the link must go.
#[derive(Debug)]
pub enum Why {
    Protocol(ProtocolError),
    Silent(&'static str),
    /// A soft reset ends the connection.
    Reset,
    /// The board is out of step with us (surplus GET acks).
    Resync,
}

/// What the lanes produce while handling an input.
#[derive(Debug, Default)]
pub struct Out {
    pub(super) events: VecDeque<Event>,
    pub(super) text: VecDeque<Vec<u8>>,
    pub(super) programs: u64,
}

impl Out {
    pub fn text(&mut self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.text.push_back(bytes);
        }
    }

    pub fn event(&mut self, e: Event) {
        self.events.push_back(e);
    }

    pub fn done(&mut self, op: OpId, r: Result<Outcome, Error>) {
        self.events.push_back(Event::Done(op, r));
    }

    pub fn count_program(&mut self) {
        self.programs += 1;
    }
}
