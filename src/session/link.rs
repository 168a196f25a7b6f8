//! One WebSocket connection to a board: connect, upgrade, log in, frames.

use super::tls::{Trust, Verifier};
use crate::error::{Answered, Error, Holder, Lost, Result, TlsFailure, Waited};
use crate::protocol::frame::{self, Decoder, Frame, FrameKind};
use crate::protocol::handshake;
use crate::protocol::login::{Login, LoginEvent, password_line};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Where a board is: `HOST[:PORT]`, `ws://HOST[:PORT][/PATH]` or `wss://...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Target {
    pub fn parse(s: &str) -> Result<Target> {
        let (tls, rest) = if let Some(r) = s.strip_prefix("wss://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("ws://") {
            (false, r)
        } else if s.starts_with("http://") || s.starts_with("https://") {
            return Err(Error::Usage(crate::error::Usage::WebPage {
                arg: s.to_string(),
            }));
        } else {
            (false, s)
        };
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        let bad_port = || Error::Usage(crate::error::Usage::Port { arg: s.to_string() });
        // A URL means what it means in a browser (a TLS proxy on 443); a
        // bare host is the board itself, on WebREPL's port.
        let default = match (rest.len() < s.len(), tls) {
            (true, true) => 443,
            (true, false) => 80,
            (false, _) => 8266,
        };
        let (host, port) = if let Some(r) = hostport.strip_prefix('[') {
            let (h, after) = r.split_once(']').ok_or_else(bad_port)?;
            match after.strip_prefix(':') {
                Some(p) => (h, p.parse().map_err(|_| bad_port())?),
                None if after.is_empty() => (h, default),
                None => return Err(bad_port()),
            }
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, p.parse().map_err(|_| bad_port())?),
                None => (hostport, default),
            }
        };
        let host = host.to_string();
        if host.is_empty() {
            return Err(Error::Usage(crate::error::Usage::NoHost {
                arg: s.to_string(),
            }));
        }
        Ok(Target {
            tls,
            host,
            port,
            path,
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "wss" } else { "ws" };
        write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.path)
    }
}

/// A connection closed before the upgrade's answer.
fn refused(target: &Target) -> Error {
    Error::Busy {
        what: target.to_string(),
        holder: Holder::ClosedEarly,
    }
}

/// An HTTP answer instead of an upgrade, and what it means.
fn not_upgraded(target: &Target, code: u16, via: Option<String>) -> Error {
    let answer = match (via, code) {
        (None, _) => Answered::Http {
            code,
            tls: target.tls,
        },
        // The board's own page, passed on: it saw no upgrade it understands.
        (Some(proxy), 200) => Answered::BoardPage { proxy },
        (Some(proxy), 502..=504) => {
            return Error::unreachable(
                target,
                format!("the proxy ({proxy}) cannot reach the board (HTTP {code})"),
            );
        }
        (Some(proxy), 404) => Answered::NothingAt {
            proxy,
            path: target.path.clone(),
        },
        (Some(proxy), _) => Answered::ProxyHttp { proxy, code },
    };
    Error::NotWebRepl {
        target: target.to_string(),
        answer,
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub struct Link {
    io: Box<dyn Io>,
    /// The TCP socket under `io`, for TCP_QUICKACK.
    fd: std::os::fd::RawFd,
    decoder: Decoder,
    buf: Box<[u8]>,
}

impl Link {
    /// Connects and logs in. A board that upgrades and then closes before
    /// asking for the password is serving another client: `Error::Busy`.
    pub async fn open(
        target: &Target,
        password: &str,
        limit: Duration,
        trust: &Trust,
    ) -> Result<Link> {
        let line = password_line(password).map_err(|e| Error::Invalid(e.to_string()))?;
        let addr = format!("{}:{}", target.host, target.port);
        let tcp = match timeout(limit, TcpStream::connect(&addr)).await {
            Err(_) => {
                return Err(Error::Timeout {
                    what: Waited::Connect {
                        target: target.to_string(),
                    },
                    after: limit,
                });
            }
            Ok(Err(e)) => return Err(Error::unreachable(target, e)),
            Ok(Ok(t)) => t,
        };
        // Both sides write small frames: without this a stop-and-wait
        // exchange stalls on Nagle and delayed ACKs.
        tcp.set_nodelay(true)?;
        // Boards have no ping; keepalive notices a board that vanished.
        let ka = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(10))
            .with_interval(Duration::from_secs(5));
        socket2::SockRef::from(&tcp).set_tcp_keepalive(&ka)?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&tcp);
        let io: Box<dyn Io> = if target.tls {
            Box::new(tls(target, tcp, limit, trust).await?)
        } else {
            Box::new(tcp)
        };
        let mut link = Link {
            io,
            fd,
            decoder: Decoder::default(),
            buf: vec![0u8; 64 * 1024].into(),
        };
        timeout(limit, link.upgrade(target))
            .await
            .map_err(|_| Error::Timeout {
                what: Waited::Upgrade {
                    target: target.to_string(),
                },
                after: limit,
            })??;
        let mut login = Login::default();
        timeout(limit, link.login(target, &line, &mut login))
            .await
            .map_err(|_| {
                // Silence is not proof of another client: say what we saw.
                let target = target.to_string();
                Error::Timeout {
                    what: if login.prompted() {
                        Waited::Password { target }
                    } else {
                        Waited::Prompt { target }
                    },
                    after: limit,
                }
            })??;
        Ok(link)
    }

    async fn upgrade(&mut self, target: &Target) -> Result<()> {
        let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
        let host = format!("{}:{}", target.host, target.port);
        self.io
            .write_all(&handshake::request(&host, &target.path, &key))
            .await?;
        let mut got = Vec::new();
        loop {
            let n = match self.io.read(&mut self.buf).await {
                // Closed before a word of answer: how a board refuses a
                // client while it holds another (or has not yet noticed
                // the last one go).
                Ok(0) if got.is_empty() => return Err(refused(target)),
                Err(e) if got.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Err(refused(target));
                }
                r => r?,
            };
            if n == 0 {
                // A board that is restarting, or a proxy whose board is
                // away: worth trying again, unlike an HTTP answer.
                return Err(Error::unreachable(
                    target,
                    "the connection closed during the WebSocket upgrade",
                ));
            }
            got.extend_from_slice(&self.buf[..n]);
            match handshake::parse_response(&got, &key) {
                Ok(None) if got.len() < 16 * 1024 => continue,
                Ok(None) => {
                    return Err(Error::NotWebRepl {
                        target: target.to_string(),
                        answer: Answered::Endless,
                    });
                }
                Ok(Some(used)) => {
                    self.decoder.push(&got[used..]);
                    return Ok(());
                }
                Err(handshake::HandshakeError::NotWebSocket { code, via }) => {
                    return Err(not_upgraded(target, code, via));
                }
                Err(e) => {
                    return Err(Error::NotWebRepl {
                        target: target.to_string(),
                        answer: Answered::Handshake(e.to_string()),
                    });
                }
            }
        }
    }

    async fn login(&mut self, target: &Target, line: &[u8], login: &mut Login) -> Result<()> {
        loop {
            let f = match self.next_frame().await {
                Ok(f) => f,
                // Upgraded, then closed before the prompt: another client
                // holds the board (or it has not yet noticed our last one go).
                Err(Error::LinkLost(_)) => return Err(Error::busy(target)),
                Err(e) => return Err(e),
            };
            if f.kind != FrameKind::Text {
                continue;
            }
            match login.feed(&f.payload) {
                LoginEvent::Prompt => self.send(FrameKind::Text, line).await?,
                LoginEvent::Connected => return Ok(()),
                LoginEvent::Denied => return Err(Error::WrongPassword(target.to_string())),
                LoginEvent::Pending => {}
            }
        }
    }

    /// Splits the link: frames are read in the session's loop while a
    /// writer task sends, so that a write never holds up reading (a board
    /// blocked writing to us reads nothing from us).
    pub fn split(self) -> (Reader, Writer) {
        let (rd, wr) = tokio::io::split(self.io);
        (
            Reader {
                rd,
                fd: self.fd,
                decoder: self.decoder,
                buf: self.buf,
            },
            Writer { wr, fd: self.fd },
        )
    }

    async fn next_frame(&mut self) -> Result<Frame> {
        next_frame(&mut self.io, self.fd, &mut self.decoder, &mut self.buf).await
    }

    async fn send(&mut self, kind: FrameKind, payload: &[u8]) -> Result<()> {
        send(&mut self.io, kind, payload).await
    }
}

pub struct Reader {
    rd: tokio::io::ReadHalf<Box<dyn Io>>,
    fd: std::os::fd::RawFd,
    decoder: Decoder,
    buf: Box<[u8]>,
}

impl Reader {
    /// The next data frame (cancel-safe).
    pub async fn next_frame(&mut self) -> Result<Frame> {
        next_frame(&mut self.rd, self.fd, &mut self.decoder, &mut self.buf).await
    }

    /// The kernel's smoothed round-trip time of the socket (to the proxy,
    /// behind one).
    pub fn rtt(&self) -> Option<Duration> {
        // SAFETY: TCP_INFO fills at most `len` bytes of a tcp_info we own.
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let rc = unsafe {
            libc::getsockopt(
                self.fd,
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut libc::tcp_info).cast(),
                &mut len,
            )
        };
        (rc == 0 && info.tcpi_rtt > 0).then(|| Duration::from_micros(info.tcpi_rtt.into()))
    }

    /// Reads (and drops) what comes until the board closes its end: it
    /// answers our close frame before it lets the connection go.
    pub async fn until_closed(&mut self) {
        while let Ok(n) = self.rd.read(&mut self.buf).await
            && n > 0
        {}
    }

    /// The socket is to close with a reset: what it still holds for the
    /// board (keys typed into a link gone quiet) is dropped, never
    /// delivered when the link wakes.
    pub fn reset_on_close(&self) {
        // SAFETY: the socket is ours and open for as long as `self` is.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.fd) };
        let _ = socket2::SockRef::from(&fd).set_linger(Some(Duration::ZERO));
    }

    /// Bytes written to the socket that the board has not acknowledged yet.
    pub fn backlog(&self) -> u64 {
        let mut n: libc::c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int for a socket we own.
        let rc = unsafe { libc::ioctl(self.fd, libc::TIOCOUTQ, &mut n) };
        if rc == 0 { n.max(0) as u64 } else { 0 }
    }
}

pub struct Writer {
    wr: tokio::io::WriteHalf<Box<dyn Io>>,
    #[allow(dead_code)]
    fd: std::os::fd::RawFd,
}

impl Writer {
    pub async fn send(&mut self, kind: FrameKind, payload: &[u8]) -> Result<()> {
        send(&mut self.wr, kind, payload).await
    }

    /// Closes the link. With `frame`, an empty close frame first: a board
    /// answers it and closes at once (one with a status code it answers but
    /// keeps the connection open). Without, only TCP's FIN: for a link
    /// whose board may still be reading a file's bytes, which the frame
    /// would become.
    pub async fn shutdown(mut self, frame: bool) {
        if frame {
            let _ = self.send(FrameKind::Close, &[]).await;
        }
        let _ = self.wr.shutdown().await;
    }
}

/// The next data frame. Pings from the board are ignored: answering with a
/// payload would corrupt the board's file-transfer header.
async fn next_frame<R: AsyncRead + Unpin>(
    io: &mut R,
    fd: std::os::fd::RawFd,
    decoder: &mut Decoder,
    buf: &mut [u8],
) -> Result<Frame> {
    loop {
        match decoder.next_frame() {
            Ok(Some(f)) => match f.kind {
                FrameKind::Text | FrameKind::Binary => return Ok(f),
                FrameKind::Close => return Err(Error::LinkLost(Lost::BoardClosed)),
                FrameKind::Ping | FrameKind::Pong => continue,
            },
            Ok(None) => {}
            Err(e) => return Err(Error::Protocol(e.into())),
        }
        // Cancel-safe: nothing changes until a read has completed.
        let n = io
            .read(buf)
            .await
            .map_err(|e| Error::LinkLost(Lost::Socket(std::sync::Arc::new(e))))?;
        if n == 0 {
            return Err(Error::LinkLost(Lost::BoardClosed));
        }
        decoder.push(&buf[..n]);
        quickack(fd);
    }
}

/// Boards write a frame's header and payload in two writes with Nagle on,
/// so the payload waits for our ACK of the header; a delayed ACK costs 40 ms
/// per frame. Linux clears quick-ack mode by itself, so it is set again
/// after every read.
fn quickack(fd: std::os::fd::RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: a plain setsockopt on a socket the link owns; failure is harmless.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Sends one frame in one write: the board's PUT code loses bytes of frames
/// that reach it in pieces. Text longer than a frame may hold (a board may
/// announce a large raw-paste window) goes in several.
async fn send<W: AsyncWrite + Unpin>(io: &mut W, kind: FrameKind, payload: &[u8]) -> Result<()> {
    for piece in payload
        .chunks(frame::MAX_PAYLOAD)
        .chain(payload.is_empty().then_some(&[][..]))
    {
        let bytes = frame::encode(kind, piece, rand::random());
        io.write_all(&bytes)
            .await
            .map_err(|e| Error::LinkLost(Lost::Socket(std::sync::Arc::new(e))))?;
    }
    Ok(())
}

async fn tls(
    target: &Target,
    tcp: TcpStream,
    limit: Duration,
    trust: &Trust,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Verifier::new(trust, provider.clone())?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls {
            host: target.host.clone(),
            failure: TlsFailure::Setup(e.to_string()),
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(target.host.clone())
        .map_err(|e| Error::Invalid(format!("{}: {e}", target.host)))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    match timeout(limit, connector.connect(name, tcp)).await {
        Err(_) => Err(Error::Timeout {
            what: Waited::TlsHandshake {
                target: target.to_string(),
            },
            after: limit,
        }),
        Ok(Err(e)) => Err(verifier.explain(&target.to_string(), &e)),
        Ok(Ok(s)) => Ok(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        let t = Target::parse("192.168.4.1").unwrap();
        assert_eq!(
            (t.tls, t.host.as_str(), t.port, t.path.as_str()),
            (false, "192.168.4.1", 8266, "/")
        );
        let t = Target::parse("board.local:9000").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("board.local", 9000));
        let t = Target::parse("wss://proxy.example/webrepl").unwrap();
        assert_eq!((t.tls, t.port, t.path.as_str()), (true, 443, "/webrepl"));
        let t = Target::parse("ws://board.local/").unwrap();
        assert_eq!((t.tls, t.port), (false, 80));
        let t = Target::parse("ws://board.local:8266").unwrap();
        assert_eq!((t.port, t.path.as_str()), (8266, "/"));
        let t = Target::parse("[::1]:8266").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 8266));
        assert!(Target::parse("http://192.168.4.1/").is_err());
        assert!(Target::parse("host:notaport").is_err());
        assert!(Target::parse(":8266").is_err());
    }
}
