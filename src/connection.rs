//! Connection set-up, shared by every command that talks to a board:
//! the password, a boards.toml name, the session's settings, and the
//! refusal of a board this user's own mount holds. No clap here: the
//! command line fills a `Conn` in, and commands take one.

use crate::board::{Board, Transfer};
use crate::boards;
use crate::error::{Error, Holder, Result};
use crate::session::{Config, Fingerprint, Session, Target, Trust};
use std::path::PathBuf;
use std::time::Duration;

/// GET acks in flight at most in a mount: LEDBAT keeps fewer where fewer
/// fill the link, and this bounds what its slow start overshoots by, the
/// queue an `ls` or a key's echo waits behind on a fast link (32 KB).
pub const MOUNT_WINDOW: u64 = 128;
/// In a command's own session nobody else waits (`Config::alone`): a GET
/// of 100 KB is asked for in one round trip (10 ms RTT: 0.14 s at 128,
/// 0.10 s at 512).
pub const ALONE_WINDOW: u64 = 512;

/// How to reach a board, as the command line (or boards.toml) gives it.
#[derive(Debug, Clone)]
pub struct Conn {
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    /// Never stop a running program with Ctrl-C; fail instead.
    pub no_interrupt: bool,
    /// Seconds the board may make no progress.
    pub timeout: f64,
    /// GET acks in flight at most; `None`: [`MOUNT_WINDOW`] or
    /// [`ALONE_WINDOW`].
    pub get_window: Option<u64>,
    pub transfer: Transfer,
    /// Uploads go as they are, never compressed.
    pub no_compress: bool,
    pub ca_file: Option<PathBuf>,
    pub tls_fingerprint: Option<String>,
}

impl Conn {
    pub fn password(&self) -> Result<String> {
        if let Some(f) = &self.password_file {
            let text = std::fs::read_to_string(f).map_err(|e| {
                Error::Setup(crate::error::Setup::PasswordFile {
                    path: f.clone(),
                    why: e.to_string(),
                })
            })?;
            use std::os::unix::fs::PermissionsExt;
            if let Ok(m) = std::fs::metadata(f)
                && m.permissions().mode() & 0o077 != 0
            {
                eprintln!(
                    "webrepl-mount: warning: the password file {} can be read by others (mode {:o}); chmod 600 {}",
                    f.display(),
                    m.permissions().mode() & 0o777,
                    f.display()
                );
            }
            return Ok(text.lines().next().unwrap_or("").to_string());
        }
        if let Some(p) = &self.password {
            return Ok(p.clone());
        }
        rpassword::prompt_password("WebREPL password: ")
            .map_err(|e| Error::Setup(crate::error::Setup::NoPassword { why: e.to_string() }))
    }

    /// The address `board` stands for and how to reach it: a name from
    /// boards.toml brings its address, password file and TLS settings; what
    /// the command line (or WEBREPL_PASSWORD) gives wins over them.
    pub fn for_board(&self, board: &str) -> Result<(String, Conn, Option<boards::Named>)> {
        let board = crate::remote::bare_board(board);
        let Some(named) = boards::find(board)? else {
            return Ok((board.to_string(), self.clone(), None));
        };
        let mut conn = self.clone();
        if conn.password.is_none() && conn.password_file.is_none() {
            conn.password_file = named.password_file.clone();
        }
        conn.ca_file = conn.ca_file.or(named.ca_file.clone());
        conn.tls_fingerprint = conn.tls_fingerprint.or(named.tls_fingerprint.clone());
        Ok((named.address.clone(), conn, Some(named)))
    }

    pub fn config(&self, board: &str, password: String) -> Result<Config> {
        let mut cfg = Config::new(Target::parse(board)?, password);
        cfg.interrupt = !self.no_interrupt;
        cfg.timeout = Duration::from_secs_f64(self.timeout.max(0.1));
        cfg.get_window = self.get_window.unwrap_or(MOUNT_WINDOW);
        cfg.trust = Trust {
            ca_file: self.ca_file.clone(),
            pinned: self
                .tls_fingerprint
                .as_deref()
                .map(Fingerprint::parse)
                .transpose()?,
        };
        Ok(cfg)
    }

    /// A session with `board`; a board this user's own mount holds is
    /// named as such, with what to do instead. (A `HOST:123` that could
    /// have been a file is said by the command that had the argument:
    /// `remote::other_reading`.)
    pub async fn connect(&self, board: &str) -> Result<Board> {
        let (address, conn, _) = self.for_board(board)?;
        conn.connect_to(&address).await
    }

    async fn connect_to(&self, board: &str) -> Result<Board> {
        if let Some(mp) = crate::mount::mounted_board(board) {
            // It would be refused, and the refusal shown on the mount's
            // terminal.
            return Err(Error::Busy {
                what: Target::parse(board)
                    .map(|t| t.to_string())
                    .unwrap_or_else(|_| board.to_string()),
                holder: Holder::YourMountServes(mp),
            });
        }
        let mut cfg = self.config(board, self.password()?)?;
        cfg.alone = true;
        cfg.get_window = self.get_window.unwrap_or(ALONE_WINDOW);
        let mut b = Board::new(Session::connect(cfg).await?, self.transfer);
        if self.no_compress {
            b = b.uncompressed();
        }
        // Told not to stop a running program: say so at once, not after
        // waiting the time-out for it.
        Ok(if self.no_interrupt { b.impatient() } else { b })
    }
}
