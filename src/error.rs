//! Errors as users meet them: one clear line each, a distinct exit code each.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("wrong password for {0} (the board said \"Access denied\")")]
    WrongPassword(String),
    #[error(
        "{0} is busy: another WebREPL client is connected (close the browser tab or other tool)"
    )]
    Busy(String),
    #[error("{0}")]
    NotWebRepl(String),
    #[error("timed out {0}")]
    Timeout(String),
    #[error("no such file or directory on the board: {0}")]
    NotFound(String),
    #[error("cannot reach {0}")]
    Unreachable(String),
    #[error("connection to the board lost {0}")]
    LinkLost(String),
    #[error(
        "the board is running a program; not interrupting it (drop --no-interrupt to allow Ctrl-C)"
    )]
    Running,
    /// A program on the board raised: its traceback.
    #[error("{0}")]
    Traceback(String),
    /// An OSError on the board, e.g. ENOSPC, ENOTEMPTY.
    #[error("{what}: {}", errno_name(*.errno))]
    Os { errno: i32, what: String },
    #[error("{0}")]
    Protocol(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::WrongPassword(_) => 3,
            Error::Busy(_) => 4,
            Error::NotWebRepl(_) => 5,
            Error::Timeout(_) => 6,
            Error::NotFound(_) => 7,
            Error::Unreachable(_) => 8,
            Error::LinkLost(_) => 9,
            Error::Running => 10,
            Error::Traceback(_) => 11,
            Error::Os { .. } => 12,
            Error::Invalid(_) => 2,
            Error::Protocol(_) | Error::Io(_) => 1,
        }
    }

    /// Whether the link is unusable after this error (the session drops it).
    pub fn breaks_link(&self) -> bool {
        matches!(
            self,
            Error::LinkLost(_) | Error::Protocol(_) | Error::Timeout(_) | Error::Io(_)
        )
    }
}

/// Names for the errnos MicroPython reports (its numbers are Linux's).
pub fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::ENOENT => "no such file or directory (ENOENT)",
        libc::EEXIST => "already exists (EEXIST)",
        libc::ENOTEMPTY => "directory not empty (ENOTEMPTY)",
        libc::ENOSPC => "no space left on the board (ENOSPC)",
        libc::EISDIR => "is a directory (EISDIR)",
        libc::ENOTDIR => "not a directory (ENOTDIR)",
        libc::EACCES => "permission denied (EACCES)",
        libc::EINVAL => "invalid argument (EINVAL)",
        libc::EIO => "I/O error (EIO)",
        libc::ENOMEM => "out of memory on the board (ENOMEM)",
        _ => return format!("OSError {errno}"),
    };
    name.to_string()
}

impl Error {
    /// The errno a filesystem call reports for this error.
    pub fn errno(&self) -> i32 {
        match self {
            Error::NotFound(_) => libc::ENOENT,
            Error::Os { errno, .. } => *errno,
            Error::Running => libc::EBUSY,
            Error::Invalid(_) => libc::EINVAL,
            Error::WrongPassword(_) => libc::EACCES,
            _ => libc::EIO,
        }
    }
}
