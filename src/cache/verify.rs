//! A file read through the mount is checked against the board's digest of
//! it (CRC-32 or sha256, as `cp` checks its downloads) before it enters the
//! cache or a reader sees its end: bytes altered on the way (a man in the
//! middle, text the firmware took for file data) are read again, a bounded
//! number of times, and never served as the file.

use super::loads::Shared;
use super::tree::Ino;
use crate::board::{self, Board};
use crate::error::{Error, Result};
use tracing::{debug, warn};

/// Reads of a file that arrived damaged before the read fails with EIO.
pub(super) const TRIES: usize = 3;

/// What the board's digest says of the data a load holds.
pub(super) enum Verdict {
    Whole,
    /// Not what the board holds: why, for the log and the error.
    Damaged(String),
}

/// Compares the load `id` of `ino` (`len` bytes) with the board's digest.
/// The digest is a program at the REPL: one that a person's program holds
/// cannot be had now, and the file is then served unchecked, as the GET
/// delivered it (saying so), rather than wait for their program to end.
pub(super) async fn check(
    state: &Shared,
    board: &Board,
    ino: Ino,
    id: u64,
    path: &str,
    len: u64,
) -> Result<Verdict> {
    let (algorithm, digests) = match board.impatient().digests(&[(path, len)]).await {
        Ok(d) => d,
        Err(Error::Running { why, .. }) => {
            debug!("{path}: not checked against the board's digest ({why})");
            return Ok(Verdict::Whole);
        }
        Err(e) => return Err(e),
    };
    let theirs = match digests.into_iter().next() {
        Some(Some(d)) => d,
        Some(None) => {
            return Ok(Verdict::Damaged(format!(
                "{len} bytes received, the board's copy is another size now"
            )));
        }
        None => {
            return Err(Error::Answer(crate::error::Unexpected::NoDigest {
                path: path.to_string(),
            }));
        }
    };
    let st = super::loads::lock(state);
    let Some(data) = super::loads::data_of(&st, ino, id) else {
        // Superseded (the file was rewritten meanwhile): nothing to serve.
        return Ok(Verdict::Whole);
    };
    let ours = board::digest(&algorithm, data);
    Ok(if ours == theirs {
        Verdict::Whole
    } else {
        Verdict::Damaged(format!(
            "{algorithm} mismatch (board {theirs}, received {ours}): damaged in transit"
        ))
    })
}

/// Says what happens to a damaged read: `attempt` of [`TRIES`].
pub(super) fn damaged(path: &str, why: &str, attempt: usize, again: bool) -> Option<Error> {
    if again {
        warn!("{path}: {why}; reading it again (attempt {attempt} of {TRIES})");
        None
    } else {
        warn!("{path}: {why}; not served (attempt {attempt} of {TRIES})");
        Some(Error::Os {
            errno: libc::EIO,
            what: format!("{path}: {why}"),
        })
    }
}
