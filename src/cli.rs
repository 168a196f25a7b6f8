//! The command line: clap definitions and the glue to the layers below.

use crate::board::{self, Board, Entry, Kind, Transfer};
use crate::cache::{self, patterns};
use crate::error::{Error, Result};
use crate::mount::{MountOptions, Ready};
use crate::session::{Config, Session, Target};
use crate::terminal::sidecar;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "webrepl-mount",
    version,
    about = "A MicroPython board's files and REPL over WebREPL",
    override_usage = "webrepl-mount [OPTIONS] HOST[:PORT] MOUNTPOINT\n       webrepl-mount <COMMAND> ...",
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub mount: MountArgs,
    /// More log output (-v: transfers, -vv: everything); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

/// Mounting: `webrepl-mount HOST[:PORT] MOUNTPOINT`.
#[derive(Args, Debug)]
pub struct MountArgs {
    /// The board: HOST[:PORT], ws://HOST[:PORT]/ or wss://...
    #[arg(required = true)]
    pub board: Option<String>,
    /// An empty directory to mount the board's filesystem on.
    #[arg(required = true)]
    pub mountpoint: Option<PathBuf>,
    /// Return once mounted and run in the background.
    #[arg(long)]
    pub daemon: bool,
    /// Megabytes of unchanged file contents kept in memory.
    #[arg(long, default_value_t = 64)]
    pub cache_size: usize,
    /// Seconds the kernel may trust attributes.
    #[arg(long, default_value_t = 1.0)]
    pub attr_timeout: f64,
    /// Seconds a directory listing is trusted before the board is asked again.
    #[arg(long, default_value_t = 300.0)]
    pub dir_cache_time: f64,
    /// Upload a changed file this many seconds after its last write instead
    /// of when it is closed (close then cannot report upload errors).
    #[arg(long, value_name = "SECONDS")]
    pub writeback_delay: Option<f64>,
    /// Names that live only in the mount, never on the board (shell
    /// patterns; repeat for several; replaces the default list of editor
    /// droppings: .*.swp .*.swx 4913 *~ .goutputstream-*).
    #[arg(long, value_name = "PATTERN")]
    pub local_only: Vec<String>,
    /// Mount options; only allow_other (other users may use the mount).
    #[arg(short = 'o', value_name = "OPTION")]
    pub options: Vec<String>,
    /// Stop a running program (Ctrl-C) whenever the raw REPL is needed.
    #[arg(long, conflicts_with = "no_interrupt")]
    pub interrupt: bool,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Flush every change to the board, unmount, and wait for the daemon to exit.
    Unmount { mountpoint: PathBuf },
    /// What a mount is doing (cache use, files not yet on the board,
    /// traffic), or a board's firmware and free space.
    Status {
        /// A mountpoint, or HOST[:PORT] when nothing is mounted.
        target: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// The REPL of a mounted board (Ctrl-] detaches, the mount goes on), or
    /// of HOST[:PORT] like `repl`.
    Term {
        target: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Soft-reset the board (a mount flushes first and re-reads the tree).
    Reset {
        target: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// The board's REPL in this terminal (Ctrl-] to exit).
    Repl {
        /// HOST[:PORT], ws://HOST[:PORT]/ or wss://...
        board: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Copy files to or from a board: one side is HOST[:PORT]:PATH.
    Cp {
        /// Sources, then the destination.
        #[arg(required = true, num_args = 2..)]
        paths: Vec<String>,
        /// Copy directories recursively.
        #[arg(short, long)]
        recursive: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// List a directory on a board: HOST[:PORT]:PATH (PATH defaults to /).
    Ls {
        target: String,
        /// Sizes and types.
        #[arg(short, long)]
        long: bool,
        /// The whole tree below PATH.
        #[arg(short = 'R', long)]
        recursive: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Run CODE on a board and print its output ("-" reads CODE from stdin).
    Exec {
        board: String,
        code: String,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// The WebREPL password. It lands in shell history (and in `ps` for the
    /// instant before it is moved to the environment): prefer
    /// WEBREPL_PASSWORD or --password-file.
    #[arg(short, long, env = "WEBREPL_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Read the password from the first line of this file.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Never stop a running program with Ctrl-C; fail instead.
    #[arg(long)]
    pub no_interrupt: bool,
    /// Seconds the board may stay silent during an operation.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// GET acks in flight, each pulling 256 bytes (1: stop-and-wait, like
    /// webrepl_cli.py).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub get_window: u64,
    /// How file contents travel.
    #[arg(long, value_enum, default_value_t = TransferArg::Auto)]
    pub transfer: TransferArg,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum TransferArg {
    /// The binary file protocol; raw-paste for paths over 63 bytes.
    Auto,
    /// Raw-paste programs with base64 (firmware without file transfer, ESP8266).
    Paste,
}

impl Conn {
    pub fn password(&self) -> Result<String> {
        if let Some(f) = &self.password_file {
            let text = std::fs::read_to_string(f).map_err(|e| {
                Error::Invalid(format!("cannot read password file {}: {e}", f.display()))
            })?;
            return Ok(text.lines().next().unwrap_or("").to_string());
        }
        if let Some(p) = &self.password {
            return Ok(p.clone());
        }
        rpassword::prompt_password("WebREPL password: ").map_err(|e| {
            Error::Invalid(format!(
                "no password given and cannot prompt ({e}): use WEBREPL_PASSWORD, --password-file or -p"
            ))
        })
    }

    fn config(&self, board: &str, password: String) -> Result<Config> {
        let mut cfg = Config::new(Target::parse(board)?, password);
        cfg.interrupt = !self.no_interrupt;
        cfg.timeout = Duration::from_secs_f64(self.timeout.max(0.1));
        cfg.get_window = self.get_window;
        Ok(cfg)
    }

    fn transfer(&self) -> Transfer {
        match self.transfer {
            TransferArg::Auto => Transfer::Auto,
            TransferArg::Paste => Transfer::Paste,
        }
    }

    pub(crate) async fn connect(&self, board: &str) -> Result<Board> {
        let cfg = self.config(board, self.password()?)?;
        Ok(Board::new(Session::connect(cfg).await?, self.transfer()))
    }
}

impl MountArgs {
    /// Everything the mount needs; the password is asked for here, before
    /// a daemon loses its terminal.
    pub fn options(&self) -> Result<MountOptions> {
        let (Some(board), Some(mountpoint)) = (&self.board, &self.mountpoint) else {
            return Err(Error::Invalid(
                "usage: webrepl-mount HOST[:PORT] MOUNTPOINT".into(),
            ));
        };
        let password = self.conn.password()?;
        let local_only = if self.local_only.is_empty() {
            patterns::DEFAULT_LOCAL_ONLY
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            self.local_only
                .iter()
                .filter(|p| !p.is_empty())
                .cloned()
                .collect()
        };
        let mut allow_other = false;
        for o in self.options.iter().flat_map(|o| o.split(',')) {
            match o {
                "allow_other" => allow_other = true,
                other => {
                    return Err(Error::Invalid(format!(
                        "unsupported mount option {other:?}"
                    )));
                }
            }
        }
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        Ok(MountOptions {
            board: board.clone(),
            mountpoint: mountpoint.clone(),
            session: self.conn.config(board, password)?,
            transfer: self.conn.transfer(),
            cache: cache::Options {
                cache_bytes: self.cache_size << 20,
                dir_ttl: Duration::from_secs_f64(self.dir_cache_time.max(0.0)),
                local_only,
                state_file: cache::attrs::state_file(board),
                uid,
                gid,
                writeback: self
                    .writeback_delay
                    .map(|s| Duration::from_secs_f64(s.max(0.0))),
                journal: cache::attrs::state_file(board).map(|f| f.with_extension("journal")),
            },
            attr_ttl: Duration::from_secs_f64(self.attr_timeout.max(0.0)),
            allow_other,
            interrupt: if self.interrupt {
                Some(true)
            } else if self.conn.no_interrupt {
                Some(false)
            } else {
                None
            },
            foreground: !self.daemon,
            log: self
                .daemon
                .then(|| cache::attrs::state_file(board).map(|f| f.with_extension("log")))
                .flatten(),
        })
    }
}

pub async fn run(cli: Cli, ready: Option<Ready>) -> Result<()> {
    let Some(command) = cli.command else {
        return crate::mount::run(cli.mount.options()?, ready).await;
    };
    match command {
        Command::Unmount { mountpoint } => crate::mount::unmount_command(&mountpoint).await,
        Command::Status { target, conn } => {
            if let Some(mp) = mounted(&target)? {
                for line in sidecar::ask(&mp, "status").await? {
                    if line != "ok" {
                        println!("{line}");
                    }
                }
                return Ok(());
            }
            let b = conn.connect(&target).await?;
            let (x, y, z) = b.session().version().await?;
            let v = b.statvfs("/").await;
            b.session().close().await;
            println!(
                "board: {}\nfirmware: MicroPython {x}.{y}.{z}",
                Target::parse(&target)?
            );
            let v = v?;
            println!(
                "flash: {} KB free of {} KB",
                v.bavail * v.frsize.max(v.bsize) / 1024,
                v.blocks * v.frsize.max(v.bsize) / 1024
            );
            Ok(())
        }
        Command::Term { target, conn } => {
            if let Some(mp) = mounted(&target)? {
                let stream = sidecar::connect(&mp).await?;
                let greeting = format!(
                    "The REPL of the board mounted on {}. Ctrl-] detaches; Enter for a prompt.",
                    mp.display()
                );
                return crate::terminal::run_attached(stream, &greeting).await;
            }
            let b = conn.connect(&target).await?;
            let greeting = format!("Connected to {}. Ctrl-] leaves.", Target::parse(&target)?);
            let r = crate::terminal::run(b.session(), &greeting).await;
            b.session().close().await;
            r
        }
        Command::Reset { target, conn } => {
            if let Some(mp) = mounted(&target)? {
                return sidecar_result(sidecar::ask(&mp, "reset").await?);
            }
            let b = conn.connect(&target).await?;
            b.session().reset().await
        }
        Command::Repl { board, conn } => {
            let b = conn.connect(&board).await?;
            let greeting = format!("Connected to {}. Ctrl-] leaves.", Target::parse(&board)?);
            let r = crate::terminal::run(b.session(), &greeting).await;
            b.session().close().await;
            r
        }
        Command::Exec { board, code, conn } => {
            let code = if code == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                code
            };
            if let Some(mp) = mounted(&board)? {
                let hex: String = code.bytes().map(|b| format!("{b:02x}")).collect();
                let answer = sidecar::ask(&mp, &format!("exec {hex}")).await?;
                let mut stderr = Vec::new();
                for line in &answer {
                    if let Some(h) = line.strip_prefix("out ") {
                        std::io::stdout().write_all(&unhex_bytes(h))?;
                    } else if let Some(h) = line.strip_prefix("err ") {
                        stderr = unhex_bytes(h);
                    }
                }
                sidecar_result(answer)?;
                if !stderr.is_empty() {
                    let tb = String::from_utf8_lossy(&stderr).trim_end().to_string();
                    return Err(Error::Traceback(tb));
                }
                return Ok(());
            }
            let b = conn.connect(&board).await?;
            // Ctrl-C here stops the program on the board too (the session
            // sends Ctrl-C when its caller stops waiting).
            let r = tokio::select! {
                r = b.exec(&code) => Some(r),
                _ = tokio::signal::ctrl_c() => None,
            };
            b.session().close().await;
            let Some(r) = r else {
                return Err(Error::Running("stopped with Ctrl-C".into()));
            };
            let out = r?;
            std::io::stdout().write_all(&out.stdout)?;
            if !out.stderr.is_empty() {
                return Err(Error::Traceback(
                    String::from_utf8_lossy(&out.stderr).trim_end().to_string(),
                ));
            }
            Ok(())
        }
        Command::Ls {
            target,
            long,
            recursive,
            conn,
        } => {
            let (board, path) = split_remote(&target).unwrap_or((target.clone(), "/".into()));
            let b = conn.connect(&board).await?;
            let r = ls(&b, &path, long, recursive).await;
            b.session().close().await;
            r
        }
        Command::Cp {
            paths,
            recursive,
            conn,
        } => crate::copy::run(paths, recursive, conn).await,
    }
}

/// The mount a local path is in (any depth), if `target` names a local
/// path at all: a path is never taken for a host name.
fn mounted(target: &str) -> Result<Option<PathBuf>> {
    let p = Path::new(target);
    let local = p.exists() || sidecar::stale(p) || target.starts_with(['/', '.', '~']);
    if !local {
        return Ok(None);
    }
    let abs = std::path::absolute(p).map_err(|e| Error::Invalid(format!("{target}: {e}")))?;
    for dir in abs.ancestors() {
        if sidecar::socket_path(dir).exists() || sidecar::stale(dir) {
            return Ok(Some(dir.to_path_buf()));
        }
    }
    Err(Error::Invalid(format!(
        "{target} is not in a mounted board (mount one with: webrepl-mount HOST MOUNTPOINT)"
    )))
}

/// A daemon's answer: `ok`, or `error KIND MESSAGE`.
fn sidecar_result(answer: Vec<String>) -> Result<()> {
    for line in &answer {
        if line == "ok" {
            return Ok(());
        }
        if let Some(rest) = line.strip_prefix("error ") {
            return Err(Error::from_wire(rest));
        }
        if line.starts_with("not flushed") {
            eprintln!("{line}");
        }
    }
    Err(Error::LinkLost("(the mount daemon gave no answer)".into()))
}

/// The exit code for an error: one per kind of trouble a script may want
/// to tell apart.
pub fn exit_code(e: &Error) -> i32 {
    use crate::error::Kind;
    match e.kind() {
        Kind::Invalid => 2,
        Kind::WrongPassword => 3,
        Kind::Busy => 4,
        Kind::NotWebRepl => 5,
        Kind::Timeout => 6,
        Kind::NotFound => 7,
        Kind::Unreachable => 8,
        Kind::LinkLost => 9,
        Kind::Running => 10,
        Kind::Traceback => 11,
        Kind::Os(_) | Kind::Conflict => 12,
        Kind::Tls => 13,
        Kind::Protocol | Kind::Io => 1,
    }
}

fn unhex_bytes(h: &str) -> Vec<u8> {
    (0..h.len() / 2)
        .filter_map(|i| u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

async fn ls(b: &Board, path: &str, long: bool, recursive: bool) -> Result<()> {
    let path = board::normalize(path)?;
    let st = b
        .stat(&path)
        .await?
        .ok_or_else(|| Error::NotFound(path.clone()))?;
    let entries = if st.kind == Kind::File {
        vec![Entry {
            path: path.clone(),
            kind: Kind::File,
            size: st.size,
            mtime: st.mtime,
        }]
    } else {
        let mut e = b.list(&path, recursive).await?;
        e.sort_by(|a, b| a.path.cmp(&b.path));
        e
    };
    let mut out = std::io::stdout().lock();
    for e in entries {
        let shown = if st.kind == Kind::Dir {
            e.path
                .strip_prefix(&path)
                .unwrap_or(&e.path)
                .trim_start_matches('/')
                .to_string()
        } else {
            e.path.clone()
        };
        let shown = if e.kind == Kind::Dir {
            format!("{shown}/")
        } else {
            shown
        };
        if long {
            writeln!(
                out,
                "{} {:>9} {}",
                if e.kind == Kind::Dir { 'd' } else { '-' },
                e.size,
                shown
            )?;
        } else {
            writeln!(out, "{shown}")?;
        }
    }
    Ok(())
}

/// `HOST[:PORT]:PATH` → (`HOST[:PORT]`, `PATH`), the webrepl_cli.py syntax.
/// Paths that start with `/` or `.` are local, as is anything without `:`.
pub fn split_remote(s: &str) -> Option<(String, String)> {
    if s.starts_with('/') || s.starts_with('.') || Path::new(s).exists() {
        return None;
    }
    // A URL names the board alone (ws://, wss://, or a mistaken http://).
    if s.contains("://") {
        return Some((s.to_string(), "/".to_string()));
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let after = after.strip_prefix(':')?;
        return Some(match after.split_once(':') {
            Some((port, path)) if port.parse::<u16>().is_ok() => {
                (format!("[{host}]:{port}"), path.to_string())
            }
            _ => (format!("[{host}]"), after.to_string()),
        });
    }
    let (host, rest) = s.split_once(':')?;
    if host.is_empty() {
        return None;
    }
    Some(match rest.split_once(':') {
        Some((port, path)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            (format!("{host}:{port}"), path.to_string())
        }
        _ => (host.to_string(), rest.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_specs() {
        let r = split_remote;
        assert_eq!(
            r("192.168.4.1:/main.py"),
            Some(("192.168.4.1".into(), "/main.py".into()))
        );
        assert_eq!(
            r("192.168.4.1:8266:/main.py"),
            Some(("192.168.4.1:8266".into(), "/main.py".into()))
        );
        assert_eq!(r("board:main.py"), Some(("board".into(), "main.py".into())));
        assert_eq!(r("[::1]:8266:/x"), Some(("[::1]:8266".into(), "/x".into())));
        assert_eq!(r("./a:b"), None);
        assert_eq!(r("/tmp/x"), None);
        assert_eq!(r("plain"), None);
    }
}
