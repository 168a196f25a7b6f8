//! Errors as users meet them: one clear line each. What they become (an
//! exit code, an errno) is decided where they leave the program: `cli` and
//! `fs`.

use crate::protocol::ProtocolError;
use thiserror::Error;

/// Clone: one failure may end several operations (those waiting for a
/// link that did not come back), each told the same.
#[derive(Debug, Clone, Error)]
pub enum Error {
    #[error("wrong password for {0} (the board said \"Access denied\")")]
    WrongPassword(String),
    /// The board (or a file on it) is held: who holds it says what to do.
    #[error("{what} is busy: {holder}")]
    Busy { what: String, holder: Holder },
    #[error("{0}")]
    NotWebRepl(String),
    #[error("timed out {0}")]
    Timeout(String),
    #[error("no such file or directory on the board: {0}")]
    NotFound(String),
    #[error("cannot reach {target}: {why}{}", match .waited {
        Some(t) => format!(" (waited {t:.0?} for the board to come back)"),
        None => String::new(),
    })]
    Unreachable {
        target: String,
        why: String,
        /// How long the session tried before giving up, if it did.
        waited: Option<std::time::Duration>,
    },
    #[error("connection to the board lost {0}")]
    LinkLost(Lost),
    /// A program holds the REPL and is not to be stopped: why.
    #[error("{0}")]
    Running(String),
    /// A program on the board raised: its traceback.
    #[error("{0}")]
    Traceback(String),
    /// A program of ours ran out of the board's heap (a person's program
    /// may hold most of it): the free heap after a collection, if known.
    #[error("the board is low on memory ({})", match .free {
        Some(n) => format!("{n} bytes free"),
        None => "free heap unknown".to_string(),
    })]
    LowMemory { free: Option<u64> },
    /// An OSError on the board, e.g. ENOSPC, ENOTEMPTY.
    #[error("{what}: {}", errno_name(*.errno))]
    Os { errno: i32, what: String },
    /// The board's copy changed since the edit began: ours went beside it.
    #[error(
        "{path} changed on the board since it was read here; the board's version is kept and yours is saved as {beside}"
    )]
    Conflict { path: String, beside: String },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{0}")]
    Protocol(#[source] ProtocolError),
    #[error("{0}")]
    Invalid(String),
    /// Shared, so that the error can be cloned.
    #[error(transparent)]
    Io(std::sync::Arc<std::io::Error>),
    /// An error that crossed the mount daemon's socket: its kind and words.
    #[error("{1}")]
    Remote(Kind, String),
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(std::sync::Arc::new(e))
    }
}

/// What an error is, apart from its words: what an exit code, an errno or
/// the daemon's socket carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    WrongPassword,
    Busy,
    NotWebRepl,
    Timeout,
    NotFound,
    Unreachable,
    LinkLost,
    Running,
    Traceback,
    LowMemory,
    Os(i32),
    Conflict,
    Tls,
    Protocol,
    Invalid,
    Io,
}

pub type Result<T> = std::result::Result<T, Error>;

/// Who holds a busy board, with the way out for each.
#[derive(Debug, Clone, Error)]
pub enum Holder {
    #[error("another WebREPL client is connected (close the browser tab or other tool)")]
    OtherClient,
    #[error(
        "it closed the connection before the WebSocket upgrade (another WebREPL client is connected: close the browser tab or other tool; or the board is restarting)"
    )]
    ClosedEarly,
    /// For a command that could go through the mount instead.
    #[error(
        "your mount at {0} holds it (a board takes one WebREPL client); go through the mount instead: cp to or from {0}/..., or webrepl-mount exec|status|term {0}"
    )]
    YourMountServes(String),
    /// For a second mount of the same board.
    #[error(
        "your mount at {0} holds it (a board takes one WebREPL client); use that mount, or unmount it first"
    )]
    YourMount(String),
    #[error("the board is running a program")]
    Program,
}

/// Why a link to the board (or to the mount's daemon) went: what callers
/// match on to decide whether trying again can help, and the words after
/// "connection to the board lost".
#[derive(Debug, Clone, Error)]
pub enum Lost {
    #[error("(the board closed it)")]
    BoardClosed,
    /// A read or write on the socket failed: the system's words.
    #[error("({0})")]
    Socket(String),
    #[error("(the board reset)")]
    BoardReset,
    #[error("(resynchronising with the board)")]
    Resync,
    #[error("(the session ended)")]
    SessionEnded,
    #[error("(not connected)")]
    NotConnected,
    /// The link went and did not come back within the time-out.
    #[error("and not back within {within:.0?} ({last})")]
    NotBack {
        within: std::time::Duration,
        last: Box<Error>,
    },
    /// The last reason the link went, as it was told then.
    #[error("({0})")]
    Earlier(String),
    /// One transfer met a broken link too many times.
    #[error("{attempts} times during one transfer ({last})")]
    Repeatedly { attempts: u32, last: Box<Error> },
    /// A program's fate is unknown: the link went while it ran.
    #[error(
        "while {} ran on the board (it may or may not have finished): {last}",
        if *.user { "the program" } else { "an operation" }
    )]
    MidProgram { user: bool, last: Box<Error> },
    /// The mount's daemon went quiet or sent nothing useful.
    #[error("(the mount daemon gave no answer)")]
    DaemonSilent,
    #[error("(the mount gave no address)")]
    NoAddress,
    /// A reset was refused: the mount holds changes the board lacks.
    #[error("(not resetting a board that lacks changes from the mount)")]
    Unflushed,
    /// A text download's slices disagree: it starts over.
    #[error("({path} changed on the board during its text download{})", match .got {
        Some((got, of)) => format!(": {got} of {of} bytes"),
        None => String::new(),
    })]
    Changed {
        path: String,
        got: Option<(u64, u64)>,
    },
    /// A write through the mount could not reach the board yet.
    #[error(
        "while writing {path} (the board could not be reached; the mount sends it when it can)"
    )]
    Unsent { path: String },
}

impl Kind {
    pub fn name(self) -> String {
        match self {
            Kind::WrongPassword => "password".into(),
            Kind::Busy => "busy".into(),
            Kind::NotWebRepl => "not-webrepl".into(),
            Kind::Timeout => "timeout".into(),
            Kind::NotFound => "not-found".into(),
            Kind::Unreachable => "unreachable".into(),
            Kind::LinkLost => "link-lost".into(),
            Kind::Running => "running".into(),
            Kind::Traceback => "traceback".into(),
            Kind::LowMemory => "low-memory".into(),
            Kind::Os(e) => format!("os-{e}"),
            Kind::Conflict => "conflict".into(),
            Kind::Tls => "tls".into(),
            Kind::Protocol => "protocol".into(),
            Kind::Invalid => "invalid".into(),
            Kind::Io => "io".into(),
        }
    }

    pub fn parse(s: &str) -> Kind {
        match s {
            "password" => Kind::WrongPassword,
            "busy" => Kind::Busy,
            "not-webrepl" => Kind::NotWebRepl,
            "timeout" => Kind::Timeout,
            "not-found" => Kind::NotFound,
            "unreachable" => Kind::Unreachable,
            "link-lost" => Kind::LinkLost,
            "running" => Kind::Running,
            "traceback" => Kind::Traceback,
            "low-memory" => Kind::LowMemory,
            "conflict" => Kind::Conflict,
            "tls" => Kind::Tls,
            "invalid" => Kind::Invalid,
            "io" => Kind::Io,
            other => match other.strip_prefix("os-").and_then(|n| n.parse().ok()) {
                Some(e) => Kind::Os(e),
                None => Kind::Protocol,
            },
        }
    }
}

impl Error {
    /// A board busy with a client we know nothing of.
    pub fn busy(target: impl std::fmt::Display) -> Error {
        Error::Busy {
            what: target.to_string(),
            holder: Holder::OtherClient,
        }
    }

    pub fn unreachable(target: impl std::fmt::Display, why: impl std::fmt::Display) -> Error {
        Error::Unreachable {
            target: target.to_string(),
            why: why.to_string(),
            waited: None,
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Error::WrongPassword(_) => Kind::WrongPassword,
            Error::Busy { .. } => Kind::Busy,
            Error::NotWebRepl(_) => Kind::NotWebRepl,
            Error::Timeout(_) => Kind::Timeout,
            Error::NotFound(_) => Kind::NotFound,
            Error::Unreachable { .. } => Kind::Unreachable,
            Error::LinkLost(_) => Kind::LinkLost,
            Error::Running(_) => Kind::Running,
            Error::Traceback(_) => Kind::Traceback,
            Error::LowMemory { .. } => Kind::LowMemory,
            Error::Os { errno, .. } => Kind::Os(*errno),
            Error::Conflict { .. } => Kind::Conflict,
            Error::Tls(_) => Kind::Tls,
            Error::Protocol(_) => Kind::Protocol,
            Error::Invalid(_) => Kind::Invalid,
            Error::Io(_) => Kind::Io,
            Error::Remote(k, _) => *k,
        }
    }

    /// One line for the daemon's socket: `error KIND MESSAGE`.
    pub fn to_wire(&self) -> String {
        let msg = self.to_string().replace('\n', " / ");
        format!("error {} {msg}", self.kind().name())
    }

    /// The error a `to_wire` line stands for.
    pub fn from_wire(rest: &str) -> Error {
        let (kind, msg) = rest.split_once(' ').unwrap_or((rest, ""));
        Error::Remote(Kind::parse(kind), msg.replace(" / ", "\n"))
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Error::Protocol(e)
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
        libc::EPERM => "not permitted (EPERM)",
        libc::EBUSY => "in use (EBUSY)",
        _ => return format!("OSError {errno}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_cross_the_socket_with_their_kind_and_words() {
        for e in [
            Error::Running("a program started at the terminal is running".into()),
            Error::Os {
                errno: libc::ENOSPC,
                what: "/main.py".into(),
            },
            Error::Traceback("Traceback:\n  ZeroDivisionError".into()),
        ] {
            let wire = e.to_wire();
            let rest = wire.strip_prefix("error ").expect("prefix");
            let back = Error::from_wire(rest);
            assert_eq!(back.kind(), e.kind());
            assert_eq!(back.to_string(), e.to_string());
        }
    }
}
