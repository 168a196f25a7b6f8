//! Sans-I/O: bytes in, bytes and events out. No sockets, no time.

pub mod frame;
pub mod handshake;
pub mod login;
pub mod raw;
pub mod transfer;
