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
    /// Something other than a WebREPL board answered at `target`.
    #[error("{}", .answer.words(.target))]
    NotWebRepl { target: String, answer: Answered },
    /// What was waited for, and for how long.
    #[error("timed out {}", .what.words(*.after))]
    Timeout {
        what: Waited,
        after: std::time::Duration,
    },
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
    /// A program holds the REPL and is not to be stopped: whose, how long
    /// we waited for it to end, and why we did not stop it.
    #[error("{why}{}{}", match .waited {
        Some(t) => format!("; waited {:.0} s for it to end", t.as_secs_f64()),
        None => String::new(),
    }, match .kept {
        Some(hint) => format!("; not interrupting it ({hint})"),
        None => String::new(),
    })]
    Running {
        why: Held,
        waited: Option<std::time::Duration>,
        kept: Option<NotInterrupting>,
    },
    /// A program on the board raised: its traceback.
    #[error("{0}")]
    Traceback(String),
    /// The person stopped a program with Ctrl-C (exit 130, as a Python
    /// script interrupted): what was stopped.
    #[error("KeyboardInterrupt: {0}")]
    Interrupted(Stopped),
    /// A program of ours ran out of the board's heap (a person's program
    /// may hold most of it): the free heap after a collection, if known,
    /// and whether it failed before it ran, compiling (every compile
    /// takes a block of 1-2 KB in one piece, which a heap a program left
    /// in pieces may not have however much is free).
    /// `asked`: the allocation that failed, as the board said it; one
    /// far below what is free means the heap is in pieces.
    #[error("the board is low on memory ({}{})", match .free {
        Some(n) => format!("{n} bytes free"),
        None => "free heap unknown".to_string(),
    }, if *.compiling {
        ", too little of it in one piece to compile a program".to_string()
    } else {
        match (.free, .asked) {
            (Some(f), Some(a)) if *a * 4 <= *f => format!(", too little of it in one piece for {a} bytes"),
            _ => String::new(),
        }
    })]
    LowMemory {
        free: Option<u64>,
        compiling: bool,
        asked: Option<u64>,
    },
    /// An OSError on the board, e.g. ENOSPC, ENOTEMPTY.
    #[error("{what}: {}", errno_name(*.errno))]
    Os { errno: i32, what: String },
    /// The board's copy changed since the edit began: ours went beside it.
    #[error(
        "{path} changed on the board since it was read here; the board's version is kept and yours is saved as {beside}"
    )]
    Conflict { path: String, beside: String },
    /// A TLS failure with `host` (a proxy in front of the board; empty
    /// when our own set-up failed).
    #[error("TLS: {}", .failure.words(.host))]
    Tls { host: String, failure: TlsFailure },
    #[error("{0}")]
    Protocol(#[source] ProtocolError),
    /// The board answered, but not what was asked for.
    #[error("{0}")]
    Answer(Unexpected),
    /// A board path or name we refuse (exit 2).
    #[error("{0}")]
    Path(BadPath),
    /// A user's argument or option we cannot use (exit 2).
    #[error("{0}")]
    Usage(Usage),
    /// A file or setting of this machine's that stops us (exit 2).
    #[error("{0}")]
    Setup(Setup),
    /// A mountpoint we cannot mount on or reach the mount of (exit 2).
    #[error("{0}")]
    Mountpoint(Mountpoint),
    /// More than the tool takes at once (exit 2).
    #[error("{0}")]
    Limit(Limit),
    /// What a file command refuses or cannot do, in coreutils' words.
    #[error("{0}")]
    Refused(Refused),
    /// A failure of the tool's own, not of the board or the user (exit 2).
    #[error("{0}")]
    Bug(Bug),
    #[error("{0}")]
    Invalid(String),
    /// A local file or directory we could not use (exit 2, as a bad path).
    #[error("{}: {error}", .path.display())]
    Local {
        path: std::path::PathBuf,
        error: std::sync::Arc<std::io::Error>,
    },
    /// Shared, so that the error can be cloned.
    #[error(transparent)]
    Io(std::sync::Arc<std::io::Error>),
    /// An error that crossed the mount daemon's socket: its kind and words.
    #[error("{1}")]
    Remote(Kind, String),
}

impl Error {
    /// A program holds the REPL: `why`, said at once.
    pub fn running(why: Held) -> Error {
        Error::Running {
            why,
            waited: None,
            kept: None,
        }
    }

    /// The board could not be reached (or answered nothing in time):
    /// waiting for it again another way would only wait as long again.
    pub fn is_no_link(&self) -> bool {
        matches!(
            self,
            Error::Unreachable { .. }
                | Error::LinkLost(_)
                | Error::Timeout { .. }
                | Error::Busy { .. }
        )
    }
}

/// Why the REPL is not ours (`Error::Running`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Held {
    #[error("someone is pasting code at the terminal (paste mode)")]
    Pasting,
    #[error("the board is running a program started at its terminal")]
    TerminalProgram,
    #[error("the board is running a program")]
    Program,
    #[error("the board is running a person's program (exec)")]
    Exec,
    /// A program printed more than its reader took: stopped.
    #[error("stopped: the program printed {mib} MiB more than was read")]
    Unread { mib: usize },
    #[error("stopped by SIGTERM")]
    Terminated,
}

/// Why a program that holds the REPL was left running: the way to allow
/// stopping it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum NotInterrupting {
    #[error("drop --no-interrupt to allow Ctrl-C")]
    DropNoInterrupt,
    #[error("mount with --interrupt to stop it")]
    MountWithInterrupt,
}

/// What a person's Ctrl-C stopped (`Error::Interrupted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Stopped {
    #[error("the program on the board was stopped with Ctrl-C")]
    BoardProgram,
    /// A copy, in its middle.
    #[error("stopped with Ctrl-C")]
    Copy,
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
    Interrupted,
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
    /// A read or write on the socket failed: the system's error (shared,
    /// so that the error can be cloned).
    #[error("({0})")]
    Socket(std::sync::Arc<std::io::Error>),
    /// The task writing to the socket ended.
    #[error("(the writer ended)")]
    WriterEnded,
    #[error("(the board reset)")]
    BoardReset,
    #[error("(resynchronising with the board)")]
    Resync,
    /// A program that was to follow an upload's last byte: the upload
    /// failed before it, so the program was not sent.
    #[error("(the upload it was to follow did not go)")]
    UploadFailed,
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
    Earlier(Box<Error>),
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

/// A board's answer that is not what was asked for (`Error::Answer`):
/// what it lacked.
#[derive(Debug, Clone, Error)]
pub enum Unexpected {
    /// A listing longer than the mount keeps.
    #[error("the board's listing of {path} has more than {most} entries")]
    LongListing { path: String, most: usize },
    /// A text download's slice that never said what it holds.
    #[error("{path}: the text download announced nothing")]
    NoAnnouncement { path: String },
    /// The facts about a board's packages without the first of them.
    #[error("the board's answer {answer:?} has no mpy version")]
    NoMpyVersion { answer: String },
    #[error("{path}: the board answered no digest")]
    NoDigest { path: String },
    /// mip's target directory: no /lib in the board's sys.path.
    #[error("the board's sys.path has no entry ending in /lib: say where with --target DIR")]
    NoLib,
}

/// More than the tool takes at once (`Error::Limit`).
#[derive(Debug, Clone, Error)]
pub enum Limit {
    /// A package and its dependencies, counted or nested too far.
    #[error("{name}: more than {most} packages or {depth} levels of dependencies")]
    Packages {
        name: String,
        most: usize,
        depth: usize,
    },
    /// What packages may hold, all told.
    #[error(
        "the packages hold more than {} MB or {most_files} files: not a board's",
        .most_bytes >> 20
    )]
    PackageFiles { most_bytes: u64, most_files: usize },
    /// What the page's ticks would put in one zip, and the most it takes.
    #[error(
        "too much for one zip ({files} files, {:.1} MB; at most {most_files} files and {} MB): tick less",
        *.bytes as f64 / 1048576.0, .most_bytes >> 20
    )]
    Zip {
        files: usize,
        bytes: u64,
        most_files: usize,
        most_bytes: u64,
    },
    /// The number of files ticked for a zip is not in 1..=most.
    #[error("tick between 1 and {most} files")]
    Ticked { most: usize },
}

/// A failure of the tool's own (`Error::Bug`): which part, and its words.
#[derive(Debug, Clone, Error)]
pub enum Bug {
    /// A task of ours panicked or was cancelled.
    #[error("{task}: {why}")]
    Task { task: String, why: String },
    /// A result that was to come never came.
    #[error("{what} went missing")]
    Missing { what: &'static str },
    /// clap's zsh completion script, which ours is made from.
    #[error("clap's zsh script changed shape: names cannot be added")]
    ZshScript,
}

/// A board path or name we refuse (`Error::Path`): which, and why.
#[derive(Debug, Clone, Error)]
pub enum BadPath {
    #[error("{path:?}: a board path cannot contain NUL")]
    Nul { path: String },
    #[error("{path:?}: '..' is not supported in board paths")]
    DotDot { path: String },
    /// A name from this machine that is not UTF-8 (MicroPython's are).
    #[error("board names must be UTF-8")]
    NotUtf8,
    /// A name the tool keeps for itself on the board.
    #[error("{name}: {}", match .by {
        Reserved::Upload => "names starting with .wrm- are reserved for uploads in progress",
        Reserved::Id => "reserved for the board's id (see README)",
        Reserved::Helpers => "reserved for the tool's helpers on the board (see README)",
    })]
    Reserved { name: String, by: Reserved },
    /// `HOST:DIGITS` whose digits are no port.
    #[error(
        "{arg}: {rest} is no port (1-65535); for the board file {rest} write {host}:/{rest} (or {host}:PORT:{rest})"
    )]
    NoPort {
        arg: String,
        host: String,
        rest: String,
    },
    #[error("{arg}: not a board path (HOST[:PORT]:PATH, NAME:PATH or URL:PATH)")]
    NotRemote { arg: String },
    #[error("{arg} is no path on a board: write HOST[:PORT]:PATH, NAME:PATH, or a path in a mount")]
    NoBoardPath { arg: String },
    #[error("{arg}: a pattern goes in the last part of the path only")]
    PatternInDir { arg: String },
    /// A local path for the system that holds a NUL.
    #[error("{}: a NUL in the path", .path.display())]
    LocalNul { path: std::path::PathBuf },
    /// A local name that is not UTF-8, to go to the board.
    #[error("{}: board names must be UTF-8", .path.display())]
    LocalNotUtf8 { path: std::path::PathBuf },
    #[error("{pattern}: no local file matches")]
    NoMatch { pattern: String },
    /// What the page cannot do to the board's root: `verb` it.
    #[error("cannot {verb} / (the board's root directory)")]
    Root { verb: &'static str },
}

/// A user's argument or option we cannot use (`Error::Usage`).
#[derive(Debug, Clone, Error)]
pub enum Usage {
    #[error("mount option {option:?}: a number is needed")]
    NotANumber { option: String },
    #[error(
        "mount option password=: an fstab line is readable by every user; use password_file=FILE (mode 600)"
    )]
    PasswordOption,
    /// `ours`: the options of this tool's own, besides FUSE's.
    #[error(
        "unsupported mount option {option:?} (known: allow_other, allow_root, default_permissions, nonempty, ro, auto_unmount, uid=, gid=, [no]exec, [no]suid, [no]dev, sync, dirsync, and {})",
        .ours.iter().map(|k| format!("{k}=")).collect::<Vec<_>>().join(", ")
    )]
    UnknownMountOption {
        option: String,
        ours: &'static [&'static str],
    },
    #[error("mount options allow_other and allow_root exclude each other")]
    AllowOtherAndRoot,
    #[error("{arg:?}: give the page's address as PORT or ADDR:PORT")]
    PageAddress { arg: String },
    #[error("--index {index}: an http:// or https:// URL")]
    IndexUrl { index: String },
    #[error("{arg}: a package is NAME[@VERSION], github:ORG/REPO[/PATH][@BRANCH] or a URL")]
    Package { arg: String },
    #[error(
        "{name:?} is no package name (a URL starts with http://, https://, github: or gitlab:)"
    )]
    PackageName { name: String },
    #[error("{name}@{version}: {version:?} is no version")]
    PackageVersion { name: String, version: String },
    /// A board given as http(s)://.
    #[error(
        "{arg} is a web page address; WebREPL is at ws://HOST:8266/ (or wss:// behind a TLS proxy)"
    )]
    WebPage { arg: String },
    #[error("bad port in {arg:?}")]
    Port { arg: String },
    #[error("no host in {arg:?}")]
    NoHost { arg: String },
    /// The page's list of ticked paths, unreadable.
    #[error("paths: {why}")]
    PagePaths { why: String },
    /// A glob pattern that does not parse.
    #[error("{pattern}: {why}")]
    Pattern { pattern: String, why: String },
    #[error("usage: webrepl-mount HOST[:PORT] MOUNTPOINT")]
    MountUsage,
    #[error("share DIR TARGET, or share --stop MOUNTPOINT")]
    ShareUsage,
    /// A command we do not know: clap's lines and our tip.
    #[error("{}", .lines.join("\n"))]
    UnknownCommand { lines: Vec<String> },
    /// `-o key[=value]` of this tool's own options.
    #[error("mount option {key}{}: {why}", match .value {
        Some(v) => format!("={v}"),
        None => String::new(),
    })]
    OurMountOption {
        key: String,
        value: Option<String>,
        why: &'static str,
    },
    #[error("{}: a share's directory needs a UTF-8 name", .dir.display())]
    ShareDirName { dir: std::path::PathBuf },
    /// cp's destinations after its sources: boards only.
    #[error("{arg}: after the files to copy come only boards (HOST[:PORT]:PATH)")]
    DestinationNotBoard { arg: String },
    /// A URL that never left this machine.
    #[error("{url} is no valid URL ({why})")]
    Url { url: String, why: String },
    #[error(
        "bad fingerprint {arg:?}: give SHA256:<base64> as shown in the error, or the hex of openssl x509 -fingerprint -sha256"
    )]
    Fingerprint { arg: String },
}

/// A file or setting of this machine's that stops us (`Error::Setup`):
/// which, and the system's words.
#[derive(Debug, Clone, Error)]
pub enum Setup {
    /// boards.toml unreadable or not TOML.
    #[error("{}: {why}", .path.display())]
    BoardsFile {
        path: std::path::PathBuf,
        why: String,
    },
    #[error("cannot read password file {}: {why}", .path.display())]
    PasswordFile {
        path: std::path::PathBuf,
        why: String,
    },
    #[error(
        "no password given and cannot prompt ({why}): use WEBREPL_PASSWORD, --password-file or --password"
    )]
    NoPassword { why: String },
    #[error("cannot read --ca-file {}: {why}", .path.display())]
    CaFile {
        path: std::path::PathBuf,
        why: String,
    },
    /// A runtime directory another user could have made or may write in.
    #[error(
        "{} is not a safe private directory: {why}; another user may have made it to take over webrepl-mount's files. Have its owner or root remove it (in /tmp only they can), or set XDG_RUNTIME_DIR (or TMPDIR) to a directory of your own",
        .path.display()
    )]
    UnsafeDir {
        path: std::path::PathBuf,
        why: String,
    },
    #[error("{}: no private directory could be made", .path.display())]
    NoPrivateDir { path: std::path::PathBuf },
    /// The page's address could not be listened on.
    #[error("cannot serve the page on {addr}: {why}")]
    Listen { addr: String, why: String },
}

/// A mountpoint we cannot mount on or reach the mount of
/// (`Error::Mountpoint`); `at` is the mountpoint as given.
#[derive(Debug, Clone, Error)]
pub enum Mountpoint {
    #[error("{}: not a directory", .at.display())]
    NotADirectory { at: std::path::PathBuf },
    #[error(
        "{} is not empty: its files would be hidden by the mount (mount on an empty directory, or use -o nonempty)",
        .at.display()
    )]
    NotEmpty { at: std::path::PathBuf },
    /// FUSE refused: the system's words.
    #[error("cannot mount on {}: {why}", .at.display())]
    CannotMount { at: std::path::PathBuf, why: String },
    #[error("{at} does not exist (make it with: mkdir {at})", at = .at.display())]
    Missing { at: std::path::PathBuf },
    #[error(
        "{at} is already a mount point (unmount it first: webrepl-mount unmount {at})",
        at = .at.display()
    )]
    AlreadyAMountPoint { at: std::path::PathBuf },
    /// `share --stop` of something that is no mount.
    #[error(
        "{} is not a mountpoint: a share in the foreground ends with Ctrl-]",
        .at.display()
    )]
    NoShare { at: std::path::PathBuf },
    #[error(
        "{} is not in a mounted board (mount one with: webrepl-mount HOST MOUNTPOINT)",
        .at.display()
    )]
    NotInAMount { at: std::path::PathBuf },
    /// A live daemon answers at the mount's socket.
    #[error("{} is already mounted by webrepl-mount", .at.display())]
    AlreadyMounted { at: std::path::PathBuf },
    #[error(
        "{} is mounted by another user's webrepl-mount (its socket {}: permission denied)",
        .at.display(), .socket.display()
    )]
    OtherUsers {
        at: std::path::PathBuf,
        socket: std::path::PathBuf,
    },
    /// The kernel's mount is there, its daemon's socket refuses.
    #[error(
        "{at}: the webrepl-mount daemon of this mount is gone (killed?); clean up with: webrepl-mount unmount {at}",
        at = .at.display()
    )]
    DaemonGone { at: std::path::PathBuf },
    #[error(
        "{at} is a dead mount (its daemon is gone); clean up with: webrepl-mount unmount {at}",
        at = .at.display()
    )]
    Dead { at: std::path::PathBuf },
    #[error(
        "{at} is not a mounted board (mount one with: webrepl-mount HOST {at})",
        at = .at.display()
    )]
    NotMounted { at: std::path::PathBuf },
    /// The socket is served by another user than us (or root).
    #[error(
        "{}: the socket {} is served by uid {uid}, not by you: not talking to it",
        .at.display(), .socket.display()
    )]
    ServedBy {
        at: std::path::PathBuf,
        socket: std::path::PathBuf,
        uid: u32,
    },
}

/// What a file command refuses or cannot do (`Error::Refused`), in
/// coreutils' words.
#[derive(Debug, Clone, Error)]
pub enum Refused {
    #[error("refusing to remove '.' or '..' directory: skipping '{arg}'")]
    DotOrDotDot { arg: String },
    #[error("{arg}: refusing to remove the board's root '/' (to empty it: rm -r 'BOARD:/*')")]
    RemoveRoot { arg: String },
    #[error("{arg} exists already")]
    Exists { arg: String },
    /// A target that is to be a directory: a file, or nothing.
    #[error("target '{target}'{}", if *.exists { " is not a directory" } else { ": No such file or directory" })]
    NotADirectoryTarget { target: String, exists: bool },
    /// A pattern as a target, matching not one directory but `matches`
    /// names (one: a file).
    #[error("target '{arg}': a pattern as a target must match one directory (it matches {})", match .matches {
        0 => "nothing".to_string(),
        1 => "a file".to_string(),
        n => format!("{n} names"),
    })]
    PatternTarget { arg: String, matches: usize },
    #[error("{arg} is a directory")]
    IsADirectory { arg: String },
    #[error("{} is a directory (use -r)", .path.display())]
    IsADirectoryUseR { path: std::path::PathBuf },
    #[error("-r not specified; omitting directory '{arg}'")]
    OmittingDirectory { arg: String },
    #[error("cannot touch '{arg}': {why}")]
    Touch { arg: String, why: String },
    /// A file bigger than the board's free space.
    #[error("{}: not copied: the board's {remote} is {size} bytes, {free} bytes are free there", .local.display())]
    NoRoom {
        local: std::path::PathBuf,
        remote: String,
        size: u64,
        free: u64,
    },
}

/// What a reserved board name is kept for (`BadPath::Reserved`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserved {
    /// Part files of uploads in progress (`.wrm-…`).
    Upload,
    /// The board's id marker.
    Id,
    /// The tool's helpers file.
    Helpers,
}

/// What was waited for when time ran out (`Error::Timeout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waited {
    /// The TCP connection to a board.
    Connect { target: String },
    /// The answer to the WebSocket upgrade.
    Upgrade { target: String },
    /// The password prompt after the upgrade.
    Prompt { target: String },
    /// The board's answer to the password.
    Password { target: String },
    /// The TLS handshake with a proxy.
    TlsHandshake { target: String },
    /// A lane of the session that made no progress (`what` it was doing).
    Progress { what: &'static str },
    /// The mount's daemon answering a command.
    Answer { verb: String },
}

impl Waited {
    fn words(&self, after: std::time::Duration) -> String {
        match self {
            Waited::Connect { target } => format!("connecting to {target}"),
            Waited::Upgrade { target } => {
                format!("waiting for {target} to answer the WebSocket upgrade (busy?)")
            }
            Waited::Prompt { target } => format!(
                "{target} sent no password prompt within {after:.0?} of the WebSocket upgrade (not a WebREPL board, or one too busy to answer)"
            ),
            Waited::Password { target } => format!(
                "{target} did not answer the password within {after:.0?} (a busy or hung board)"
            ),
            Waited::TlsHandshake { target } => format!(
                "in the TLS handshake with {target} (a board itself speaks plain ws://; wss:// is for a TLS proxy in front of it)"
            ),
            Waited::Progress { what } => format!("{what}: no progress for {after:.0?}"),
            Waited::Answer { verb } => format!("answering {verb}"),
        }
    }
}

/// What answered instead of a WebREPL board (`Error::NotWebRepl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answered {
    /// An HTTP answer with no proxy named; `tls`: the URL was wss://.
    Http { code: u16, tls: bool },
    /// A proxy passed on the board's web page: the upgrade was mangled.
    BoardPage { proxy: String },
    /// A proxy with nothing at the URL's path.
    NothingAt { proxy: String, path: String },
    /// A proxy's other HTTP answer.
    ProxyHttp { proxy: String, code: u16 },
    /// An HTTP answer that never ended.
    Endless,
    /// An answer that was no WebSocket handshake: the reason.
    Handshake(String),
}

impl Answered {
    fn words(&self, target: &str) -> String {
        match self {
            Answered::Http { code, tls } => {
                let hint = if *tls {
                    ""
                } else {
                    " (is this the board's web page port? WebREPL listens on ws://HOST:8266/)"
                };
                format!("{target} is not a WebREPL endpoint: it answered HTTP {code}{hint}")
            }
            Answered::BoardPage { proxy } => {
                let fix = if proxy.starts_with("Caddy") {
                    "boards match `Sec-WebSocket-Key` case-sensitively and Caddy (Go) rewrites it as Sec-Websocket-Key; \
                     put nginx in front of the board instead"
                } else {
                    "the proxy must send `Connection: Upgrade` with a capital U (boards compare it case-sensitively); \
                     in nginx: proxy_set_header Connection \"Upgrade\";"
                };
                format!(
                    "{target}: the proxy ({proxy}) reached the board, but the board answered its web page instead of upgrading: \
                     {fix} (the README has a working configuration)"
                )
            }
            Answered::NothingAt { proxy, path } => format!(
                "{target}: the proxy ({proxy}) has nothing at {path} (HTTP 404): check the URL's path"
            ),
            Answered::ProxyHttp { proxy, code } => format!(
                "{target} is not a WebREPL endpoint: the proxy ({proxy}) answered HTTP {code}"
            ),
            Answered::Endless => format!("{target} sent an endless HTTP answer"),
            Answered::Handshake(why) => format!("{target}: {why}"),
        }
    }
}

/// The kind of a TLS failure (`Error::Tls`); fingerprints as `SHA256:...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    /// Our own TLS configuration could not be built.
    Setup(String),
    /// The handshake failed for another reason than the certificate.
    Handshake(String),
    /// Not the certificate --tls-fingerprint pins.
    NotPinned {
        want: String,
        got: String,
    },
    Expired,
    /// For other names than the one connected to.
    OtherNames {
        fingerprint: String,
    },
    /// Signed by no authority this machine trusts.
    Untrusted {
        fingerprint: String,
    },
    /// Refused, its fingerprint unseen: rustls's reason.
    Refused(String),
}

impl TlsFailure {
    fn words(&self, host: &str) -> String {
        let how_to = |fp: &str| {
            format!(
                "its certificate's fingerprint is {fp}; if that is your proxy's, connect with --tls-fingerprint {fp}, or trust the authority that signed it with --ca-file FILE"
            )
        };
        match self {
            TlsFailure::Setup(e) => format!("setting up: {e}"),
            TlsFailure::Handshake(e) => format!(
                "the TLS handshake with {host} failed: {e} (a board itself speaks plain ws://; wss:// is for a TLS proxy in front of it)"
            ),
            TlsFailure::NotPinned { want, got } => format!(
                "{host} presented a different certificate than --tls-fingerprint {want}: its fingerprint is {got} (if the proxy's certificate was replaced, pin the new one)"
            ),
            TlsFailure::Expired => format!("{host}'s certificate has expired"),
            TlsFailure::OtherNames { fingerprint } => {
                format!(
                    "{host}'s certificate is for other names; {}",
                    how_to(fingerprint)
                )
            }
            TlsFailure::Untrusted { fingerprint } => format!(
                "{host}'s certificate is not signed by an authority this machine trusts (self-signed, or a private CA); {}",
                how_to(fingerprint)
            ),
            TlsFailure::Refused(why) => format!("{host}'s certificate was refused: {why}"),
        }
    }
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
            Kind::Interrupted => "interrupted".into(),
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
            "interrupted" => Kind::Interrupted,
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

    /// `path` on this machine could not be used.
    pub fn local(path: impl Into<std::path::PathBuf>, error: std::io::Error) -> Error {
        Error::Local {
            path: path.into(),
            error: std::sync::Arc::new(error),
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
            Error::NotWebRepl { .. } => Kind::NotWebRepl,
            Error::Timeout { .. } => Kind::Timeout,
            Error::NotFound(_) => Kind::NotFound,
            Error::Unreachable { .. } => Kind::Unreachable,
            Error::LinkLost(_) => Kind::LinkLost,
            Error::Running { .. } => Kind::Running,
            Error::Traceback(_) => Kind::Traceback,
            Error::Interrupted(_) => Kind::Interrupted,
            Error::LowMemory { .. } => Kind::LowMemory,
            Error::Os { errno, .. } => Kind::Os(*errno),
            Error::Conflict { .. } => Kind::Conflict,
            Error::Tls { .. } => Kind::Tls,
            Error::Protocol(_) => Kind::Protocol,
            Error::Answer(_)
            | Error::Path(_)
            | Error::Usage(_)
            | Error::Setup(_)
            | Error::Mountpoint(_)
            | Error::Limit(_)
            | Error::Refused(_)
            | Error::Bug(_)
            | Error::Invalid(_)
            | Error::Local { .. } => Kind::Invalid,
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
    fn typed_errors_say_the_words_they_said_as_prose() {
        let cases = [
            (
                Error::Running {
                    why: Held::TerminalProgram,
                    waited: Some(std::time::Duration::from_millis(2600)),
                    kept: None,
                },
                "the board is running a program started at its terminal; waited 3 s for it to end",
            ),
            (
                Error::Running {
                    why: Held::Program,
                    waited: None,
                    kept: Some(NotInterrupting::MountWithInterrupt),
                },
                "the board is running a program; not interrupting it (mount with --interrupt to stop it)",
            ),
            (
                Error::running(Held::Unread { mib: 64 }),
                "stopped: the program printed 64 MiB more than was read",
            ),
            (
                Error::Interrupted(Stopped::BoardProgram),
                "KeyboardInterrupt: the program on the board was stopped with Ctrl-C",
            ),
            (
                Error::LinkLost(Lost::Socket(std::sync::Arc::new(std::io::Error::from(
                    std::io::ErrorKind::ConnectionReset,
                )))),
                "connection to the board lost (connection reset)",
            ),
            (
                Error::LinkLost(Lost::Earlier(Box::new(Error::LinkLost(Lost::BoardReset)))),
                "connection to the board lost (connection to the board lost (the board reset))",
            ),
        ];
        for (e, words) in cases {
            assert_eq!(e.to_string(), words);
        }
    }

    #[test]
    fn errors_cross_the_socket_with_their_kind_and_words() {
        for e in [
            Error::Running {
                why: Held::TerminalProgram,
                waited: Some(std::time::Duration::from_secs(3)),
                kept: Some(NotInterrupting::DropNoInterrupt),
            },
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

    /// The typed errors say what their prose said before they had fields.
    #[test]
    fn typed_timeouts_answers_and_tls_failures_keep_their_words() {
        use std::time::Duration;
        let t = "ws://10.0.0.9:8266/".to_string();
        let cases = [
            (
                Error::Timeout {
                    what: Waited::Prompt { target: t.clone() },
                    after: Duration::from_secs(10),
                },
                "timed out ws://10.0.0.9:8266/ sent no password prompt within 10s of the WebSocket upgrade (not a WebREPL board, or one too busy to answer)",
            ),
            (
                Error::Timeout {
                    what: Waited::Progress {
                        what: "a file transfer made no progress",
                    },
                    after: Duration::from_secs(5),
                },
                "timed out a file transfer made no progress: no progress for 5s",
            ),
            (
                Error::Timeout {
                    what: Waited::Connect { target: t.clone() },
                    after: Duration::from_secs(10),
                },
                "timed out connecting to ws://10.0.0.9:8266/",
            ),
            (
                Error::NotWebRepl {
                    target: t.clone(),
                    answer: Answered::Http {
                        code: 200,
                        tls: false,
                    },
                },
                "ws://10.0.0.9:8266/ is not a WebREPL endpoint: it answered HTTP 200 (is this the board's web page port? WebREPL listens on ws://HOST:8266/)",
            ),
            (
                Error::NotWebRepl {
                    target: t.clone(),
                    answer: Answered::NothingAt {
                        proxy: "nginx".into(),
                        path: "/x/".into(),
                    },
                },
                "ws://10.0.0.9:8266/: the proxy (nginx) has nothing at /x/ (HTTP 404): check the URL's path",
            ),
            (
                Error::Tls {
                    host: "proxy.lan".into(),
                    failure: TlsFailure::Expired,
                },
                "TLS: proxy.lan's certificate has expired",
            ),
            (
                Error::Tls {
                    host: "proxy.lan".into(),
                    failure: TlsFailure::NotPinned {
                        want: "SHA256:a".into(),
                        got: "SHA256:b".into(),
                    },
                },
                "TLS: proxy.lan presented a different certificate than --tls-fingerprint SHA256:a: its fingerprint is SHA256:b (if the proxy's certificate was replaced, pin the new one)",
            ),
        ];
        for (e, words) in cases {
            assert_eq!(e.to_string(), words);
        }
        // Board answers and paths: the words and exit code of the Invalid
        // they were.
        let typed = [
            (
                Error::Answer(Unexpected::LongListing {
                    path: "/lib".into(),
                    most: 50_000,
                }),
                "the board's listing of /lib has more than 50000 entries",
            ),
            (
                Error::Answer(Unexpected::NoMpyVersion {
                    answer: "x\n".into(),
                }),
                "the board's answer \"x\\n\" has no mpy version",
            ),
            (
                Error::Path(BadPath::DotDot {
                    path: "/a/../b".into(),
                }),
                "\"/a/../b\": '..' is not supported in board paths",
            ),
            (
                Error::Path(BadPath::Reserved {
                    name: ".wrm-1".into(),
                    by: Reserved::Upload,
                }),
                ".wrm-1: names starting with .wrm- are reserved for uploads in progress",
            ),
            (
                Error::Path(BadPath::NoPort {
                    arg: "esp:0".into(),
                    host: "esp".into(),
                    rest: "0".into(),
                }),
                "esp:0: 0 is no port (1-65535); for the board file 0 write esp:/0 (or esp:PORT:0)",
            ),
        ];
        let typed = typed.into_iter().chain([
            (
                Error::Usage(Usage::UnknownMountOption {
                    option: "x=1".into(),
                    ours: &["a", "b"],
                }),
                "unsupported mount option \"x=1\" (known: allow_other, allow_root, default_permissions, nonempty, ro, auto_unmount, uid=, gid=, [no]exec, [no]suid, [no]dev, sync, dirsync, and a=, b=)",
            ),
            (
                Error::Usage(Usage::PasswordOption),
                "mount option password=: an fstab line is readable by every user; use password_file=FILE (mode 600)",
            ),
            (
                Error::Usage(Usage::PackageVersion {
                    name: "aioble".into(),
                    version: "1 2".into(),
                }),
                "aioble@1 2: \"1 2\" is no version",
            ),
            (
                Error::Setup(Setup::UnsafeDir {
                    path: "/tmp/wm".into(),
                    why: "owned by uid 7".into(),
                }),
                "/tmp/wm is not a safe private directory: owned by uid 7; another user may have made it to take over webrepl-mount's files. Have its owner or root remove it (in /tmp only they can), or set XDG_RUNTIME_DIR (or TMPDIR) to a directory of your own",
            ),
            (
                Error::Setup(Setup::PasswordFile {
                    path: "/etc/pw".into(),
                    why: "denied".into(),
                }),
                "cannot read password file /etc/pw: denied",
            ),
            (
                Error::Limit(Limit::Zip {
                    files: 5000,
                    bytes: 1_572_864,
                    most_files: 4096,
                    most_bytes: 64 << 20,
                }),
                "too much for one zip (5000 files, 1.5 MB; at most 4096 files and 64 MB): tick less",
            ),
            (
                Error::Limit(Limit::PackageFiles {
                    most_bytes: 16 << 20,
                    most_files: 1000,
                }),
                "the packages hold more than 16 MB or 1000 files: not a board's",
            ),
            (
                Error::Limit(Limit::Ticked { most: 4096 }),
                "tick between 1 and 4096 files",
            ),
            (
                Error::Mountpoint(Mountpoint::DaemonGone { at: "/mnt/b".into() }),
                "/mnt/b: the webrepl-mount daemon of this mount is gone (killed?); clean up with: webrepl-mount unmount /mnt/b",
            ),
            (
                Error::Mountpoint(Mountpoint::ServedBy {
                    at: "/mnt/b".into(),
                    socket: "/run/x.sock".into(),
                    uid: 7,
                }),
                "/mnt/b: the socket /run/x.sock is served by uid 7, not by you: not talking to it",
            ),
            (
                Error::Mountpoint(Mountpoint::Missing { at: "/mnt/b".into() }),
                "/mnt/b does not exist (make it with: mkdir /mnt/b)",
            ),
            (
                Error::Mountpoint(Mountpoint::AlreadyAMountPoint { at: "/mnt/b".into() }),
                "/mnt/b is already a mount point (unmount it first: webrepl-mount unmount /mnt/b)",
            ),
            (
                Error::Usage(Usage::OurMountOption {
                    key: "timeout".into(),
                    value: Some("x".into()),
                    why: "not a number",
                }),
                "mount option timeout=x: not a number",
            ),
            (
                Error::Usage(Usage::OurMountOption {
                    key: "timeout".into(),
                    value: None,
                    why: "a value is needed",
                }),
                "mount option timeout: a value is needed",
            ),
            (
                Error::Usage(Usage::UnknownCommand {
                    lines: vec!["a".into(), "b".into()],
                }),
                "a\nb",
            ),
            (
                Error::Refused(Refused::NotADirectoryTarget {
                    target: "kb:/x".into(),
                    exists: true,
                }),
                "target 'kb:/x' is not a directory",
            ),
            (
                Error::Refused(Refused::NotADirectoryTarget {
                    target: "kb:/x".into(),
                    exists: false,
                }),
                "target 'kb:/x': No such file or directory",
            ),
            (
                Error::Refused(Refused::PatternTarget {
                    arg: "kb:/l*".into(),
                    matches: 0,
                }),
                "target 'kb:/l*': a pattern as a target must match one directory (it matches nothing)",
            ),
            (
                Error::Refused(Refused::PatternTarget {
                    arg: "kb:/l*".into(),
                    matches: 1,
                }),
                "target 'kb:/l*': a pattern as a target must match one directory (it matches a file)",
            ),
            (
                Error::Refused(Refused::PatternTarget {
                    arg: "kb:/l*".into(),
                    matches: 3,
                }),
                "target 'kb:/l*': a pattern as a target must match one directory (it matches 3 names)",
            ),
            (
                Error::Refused(Refused::NoRoom {
                    local: "/tmp/a".into(),
                    remote: "kb:/a".into(),
                    size: 10,
                    free: 4,
                }),
                "/tmp/a: not copied: the board's kb:/a is 10 bytes, 4 bytes are free there",
            ),
        ]);
        for (e, words) in typed {
            assert_eq!(e.to_string(), words);
            assert_eq!(e.kind(), Kind::Invalid);
        }
        // A local file's error: the words and exit code of the Invalid it was.
        let e = Error::local("/tmp/x.py", std::io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(
            e.to_string(),
            "/tmp/x.py: No such file or directory (os error 2)"
        );
        assert_eq!(e.kind(), Kind::Invalid);
    }
}
