//! The board's terminal on the user's tty: raw mode in, raw bytes out.

use crate::error::Result;

pub mod sidecar;
use crate::session::Session;
use std::io::{Read, Write};
use tokio::sync::mpsc;

/// Ctrl-], as in telnet: leaves the terminal, never reaches the board.
pub const DETACH: u8 = 0x1d;

/// Puts the tty in raw mode and restores it when dropped, whichever way the
/// terminal ends (return, error, panic unwinding).
pub struct RawMode {
    saved: Option<libc::termios>,
}

impl RawMode {
    pub fn enter() -> RawMode {
        // SAFETY: tcgetattr/tcsetattr only read and write the struct we own.
        unsafe {
            if libc::isatty(0) != 1 {
                return RawMode { saved: None };
            }
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return RawMode { saved: None };
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(0, libc::TCSANOW, &t);
            RawMode { saved: Some(saved) }
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = self.saved {
            // SAFETY: restores the attributes saved in `enter`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &t);
            }
        }
    }
}

/// Reads stdin on a thread (tokio's stdin cannot be cancelled) and forwards
/// keystrokes until Ctrl-] or end of input.
fn keystrokes() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 1024];
        loop {
            let n = match stdin.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            let (keys, detach) = match chunk.iter().position(|&b| b == DETACH) {
                Some(i) => (&chunk[..i], true),
                None => (chunk, false),
            };
            if !keys.is_empty() && tx.blocking_send(keys.to_vec()).is_err() {
                return;
            }
            if detach {
                return;
            }
        }
    });
    rx
}

/// The person's side of a terminal: the tty in raw mode (restored when
/// dropped), their keystrokes, and the signals that end it.
struct Screen {
    _raw: RawMode,
    out: std::io::Stdout,
    keys: mpsc::Receiver<Vec<u8>>,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Screen {
    fn open(greeting: &str) -> Result<Screen> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut s = Screen {
            _raw: RawMode::enter(),
            out: std::io::stdout(),
            keys: keystrokes(),
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        };
        s.show(format!("{greeting}\r\n").as_bytes());
        Ok(s)
    }

    fn show(&mut self, bytes: &[u8]) {
        let _ = self.out.write_all(bytes);
        let _ = self.out.flush();
    }
}

/// Runs an interactive terminal on `session` until Ctrl-], end of input, a
/// signal, or the board going away.
pub async fn run(session: &Session, greeting: &str) -> Result<()> {
    let mut output = session.subscribe();
    let mut screen = Screen::open(greeting)?;
    // Ctrl-B at the friendly prompt reprints the banner and a fresh prompt.
    session.keys(b"\x02".to_vec()).await?;
    loop {
        tokio::select! {
            k = screen.keys.recv() => match k {
                Some(k) => session.keys(k).await?,
                None => break,
            },
            o = output.recv() => match o {
                Ok(bytes) => screen.show(&bytes),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    screen.show(format!("\r\n[{n} pieces of output dropped]\r\n").as_bytes());
                }
                Err(_) => break,
            },
            _ = screen.term.recv() => break,
            _ = screen.hup.recv() => break,
        }
    }
    screen.show(b"\r\n");
    Ok(())
}

/// `term`: the same terminal, through a mount daemon's socket.
pub async fn run_attached(stream: tokio::net::UnixStream, greeting: &str) -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut rd, mut wr) = stream.into_split();
    wr.write_all(b"term\n").await?;
    let mut screen = Screen::open(greeting)?;
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            k = screen.keys.recv() => match k {
                Some(k) => wr.write_all(&k).await?,
                None => break,
            },
            n = rd.read(&mut buf) => match n {
                Ok(0) | Err(_) => {
                    screen.show(b"\r\n[the mount has ended]");
                    break;
                }
                Ok(n) => screen.show(&buf[..n]),
            },
            _ = screen.term.recv() => break,
            _ = screen.hup.recv() => break,
        }
    }
    screen.show(b"\r\n");
    Ok(())
}
