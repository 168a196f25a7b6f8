//! The command line: clap definitions and the glue to the layers below.

use crate::board::{self, Board, Entry, Kind, Transfer};
use crate::error::{Error, Result};
use crate::session::{Config, Session, Target};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "webrepl-mount",
    version,
    about = "A MicroPython board's files and REPL over WebREPL"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More log output (-v: transfers, -vv: everything); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

#[derive(Subcommand, Debug)]
pub enum Command {
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
    /// The WebREPL password. Visible to other users in `ps`: prefer
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
    fn password(&self) -> Result<String> {
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

    pub(crate) async fn connect(&self, board: &str) -> Result<Board> {
        let target = Target::parse(board)?;
        let mut cfg = Config::new(target, self.password()?);
        cfg.interrupt = !self.no_interrupt;
        cfg.timeout = Duration::from_secs_f64(self.timeout.max(0.1));
        cfg.get_window = self.get_window;
        let transfer = match self.transfer {
            TransferArg::Auto => Transfer::Auto,
            TransferArg::Paste => Transfer::Paste,
        };
        Ok(Board::new(Session::connect(cfg).await?, transfer))
    }
}

pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
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
            let b = conn.connect(&board).await?;
            let r = b.exec(&code).await;
            b.session().close().await;
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
