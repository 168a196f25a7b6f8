//! Sans-I/O: bytes in, bytes and events out. No sockets, no time.

pub mod frame;
pub mod handshake;
pub mod line;
pub mod login;
pub mod raw;
pub mod transfer;

use thiserror::Error;

/// The board said something the protocol does not allow.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("bad frame from the board: {0}")]
    Frame(#[source] frame::FrameError),
    #[error("file transfer: {0}")]
    Transfer(#[source] transfer::TransferError),
    #[error("raw REPL: {0}")]
    Raw(#[source] raw::RawError),
    #[error("WebSocket upgrade: {0}")]
    Handshake(#[source] handshake::HandshakeError),
    /// A snippet's answer that is none of those it can give.
    #[error("unexpected answer from the board for {what}: {answer:?}")]
    Answer { what: String, answer: String },
    #[error("bad base64 from the board: {0}")]
    Base64(String),
    /// Names a board listed that no local path may hold, already escaped.
    #[error("skipped {} name(s) the board listed that cannot be local file names: {}", .0.len(), .0.join(", "))]
    BadNames(Vec<String>),
    /// Downloads whose digest is not the board's: each described.
    #[error("not written, the copy differs from the board's: {}", .0.join("; "))]
    Damaged(Vec<String>),
}

impl From<raw::RawError> for ProtocolError {
    fn from(e: raw::RawError) -> Self {
        ProtocolError::Raw(e)
    }
}

impl From<transfer::TransferError> for ProtocolError {
    fn from(e: transfer::TransferError) -> Self {
        ProtocolError::Transfer(e)
    }
}

impl From<frame::FrameError> for ProtocolError {
    fn from(e: frame::FrameError) -> Self {
        ProtocolError::Frame(e)
    }
}
