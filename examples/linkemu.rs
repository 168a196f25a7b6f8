//! Link emulator for tests and benchmarks: a loopback TCP relay that adds
//! latency and a bandwidth limit in each direction, can make the board as
//! slow per transfer chunk as an ESP8266, and cuts or splits traffic on
//! command.
//!
//! linkemu --to 127.0.0.1:PORT [--delay-ms D] [--rate BYTES_PER_S]
//!         [--chunk-delay-ms C] [--segment N] [--listen ADDR]
//!
//! `--rate` limits each direction like a slow Wi-Fi link or board: the relay
//! reads only as fast as the link carries, and its sockets keep small
//! buffers, so a sender sees its unacknowledged bytes fall at that rate (as
//! it would with an ESP32's small TCP window) instead of all at once.
//! `--chunk-delay-ms` adds the board's pause after every file-transfer chunk
//! (ESP8266 firmware sleeps 20 ms): after each binary frame the board sends,
//! and after each 512 bytes of binary payload it receives.
//!
//! Under `--rate` the board gets what the link carries in pieces of 5 ms
//! (100 bytes at 20 KB/s), each drained by the board before the next. A
//! piece that ends one byte into a binary frame's payload loses that byte
//! on the board (modwebrepl.c reads 1 byte, then up to 511 more without
//! blocking, and drops the first when the second read finds nothing): an
//! upload then comes up short on the board and is sent again, far more
//! often than on a real link, whose TCP segments carry about 1460 bytes.
//! `--segment N` hands the board N-byte pieces instead (1460: a Wi-Fi
//! link's segments; the link's rate stays the same).
//!
//! Prints `listening PORT`, then reads commands on stdin, one per line:
//!   cut             reset every open connection now
//!   cut-up N        reset once N more bytes have gone client -> board
//!   cut-down N      reset once N more bytes have gone board -> client
//!   split N         deliver client -> board data in N-byte pieces, 2 ms apart
//!   refuse on|off   reset new connections at once (a board that is gone)
//!   silent on|off   take new connections and never answer them (a board
//!                   that is off: each attempt lasts the client's time-out)
//!   rate N          change the bandwidth limit (bytes/s each way; 0: none)
//!   stall on|off    hold what open connections carry, both ways, until off
//!                   (Wi-Fi out of range): held bytes the client resets its
//!                   connection behind are dropped, as its own unacknowledged
//!                   ones would be, and the board's side is reset

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep, sleep_until};

struct Control {
    delay: Duration,
    /// Bytes per second each way; 0 is unlimited.
    rate: AtomicU64,
    chunk_delay: Duration,
    /// Bytes per piece handed to the other side under a rate limit; 0: 5 ms
    /// of the link.
    segment: usize,
    cut: watch::Sender<u64>,
    cut_after: [AtomicI64; 2],
    split: AtomicUsize,
    refuse: AtomicBool,
    silent: AtomicBool,
    stall: watch::Sender<bool>,
}

const UP: usize = 0;
const DOWN: usize = 1;
/// Socket buffers of a relay that must pass back-pressure on: about what an
/// ESP32's lwIP keeps (its TCP window is 5744 bytes).
const SMALL_BUFFER: u32 = 8 * 1024;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn ms(args: &[String], name: &str) -> Duration {
    let v: f64 = arg(args, name).and_then(|d| d.parse().ok()).unwrap_or(0.0);
    Duration::from_secs_f64(v.max(0.0) / 1000.0)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(to) = arg(&args, "--to") else {
        eprintln!(
            "usage: linkemu --to HOST:PORT [--delay-ms D] [--rate B/S] [--chunk-delay-ms C] [--segment N] [--listen ADDR]"
        );
        std::process::exit(2);
    };
    let rate: u64 = arg(&args, "--rate")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let listen = arg(&args, "--listen").unwrap_or_else(|| "127.0.0.1:0".into());
    let ctl = Arc::new(Control {
        delay: ms(&args, "--delay-ms"),
        rate: AtomicU64::new(rate),
        chunk_delay: ms(&args, "--chunk-delay-ms"),
        segment: arg(&args, "--segment")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        cut: watch::channel(0).0,
        cut_after: [AtomicI64::new(-1), AtomicI64::new(-1)],
        split: AtomicUsize::new(0),
        refuse: AtomicBool::new(false),
        silent: AtomicBool::new(false),
        stall: watch::channel(false).0,
    });
    let listener = bind(&listen, rate > 0)?;
    println!("listening {}", listener.local_addr()?.port());
    tokio::spawn(commands(ctl.clone()));
    loop {
        let (client, _) = listener.accept().await?;
        if ctl.refuse.load(Ordering::SeqCst) {
            reset(&client);
            continue;
        }
        if ctl.silent.load(Ordering::SeqCst) {
            tokio::spawn(async move {
                sleep(Duration::from_secs(600)).await;
                drop(client);
            });
            continue;
        }
        let ctl = ctl.clone();
        let to = to.clone();
        tokio::spawn(async move {
            if let Ok(board) = connect(&to, ctl.rate.load(Ordering::SeqCst) > 0).await {
                relay(client, board, ctl).await;
            }
        });
    }
}

/// A listener whose accepted sockets keep small receive buffers when the
/// link is limited (the buffer size is fixed at the handshake).
fn bind(addr: &str, small: bool) -> std::io::Result<TcpListener> {
    let addr: std::net::SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::other(format!("{addr}: {e}")))?;
    let s = TcpSocket::new_v4()?;
    s.set_reuseaddr(true)?;
    if small {
        s.set_recv_buffer_size(SMALL_BUFFER)?;
    }
    s.bind(addr)?;
    s.listen(16)
}

async fn connect(to: &str, small: bool) -> std::io::Result<TcpStream> {
    let addr = tokio::net::lookup_host(to)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let s = TcpSocket::new_v4()?;
    if small {
        s.set_recv_buffer_size(SMALL_BUFFER)?;
        s.set_send_buffer_size(SMALL_BUFFER)?;
    }
    s.connect(addr).await
}

async fn commands(ctl: Arc<Control>) {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let f: Vec<&str> = line.split_whitespace().collect();
        let n = |i: usize| f.get(i).and_then(|x| x.parse::<i64>().ok()).unwrap_or(0);
        match f.as_slice() {
            ["cut"] => {
                ctl.cut.send_modify(|g| *g += 1);
            }
            ["cut-up", _] => ctl.cut_after[UP].store(n(1), Ordering::SeqCst),
            ["cut-down", _] => ctl.cut_after[DOWN].store(n(1), Ordering::SeqCst),
            ["split", _] => ctl.split.store(n(1) as usize, Ordering::SeqCst),
            ["refuse", "on"] => ctl.refuse.store(true, Ordering::SeqCst),
            ["refuse", "off"] => ctl.refuse.store(false, Ordering::SeqCst),
            ["silent", "on"] => ctl.silent.store(true, Ordering::SeqCst),
            ["silent", "off"] => ctl.silent.store(false, Ordering::SeqCst),
            ["rate", _] => ctl.rate.store(n(1).max(0) as u64, Ordering::SeqCst),
            ["stall", "on"] => {
                ctl.stall.send_replace(true);
            }
            ["stall", "off"] => {
                ctl.stall.send_replace(false);
            }
            _ => eprintln!("linkemu: unknown command {line:?}"),
        }
        println!("ok");
    }
}

/// Closes with RST, as a dropped link looks to the side that sends next.
fn reset(s: &TcpStream) {
    let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
}

async fn relay(client: TcpStream, board: TcpStream, ctl: Arc<Control>) {
    let _ = client.set_nodelay(true);
    let _ = board.set_nodelay(true);
    let mut cut = ctl.cut.subscribe();
    let (cr, cw) = client.into_split();
    let (br, bw) = board.into_split();
    let (done_tx, mut done_rx) = mpsc::channel::<bool>(2);
    let up = tokio::spawn(pump(cr, bw, ctl.clone(), UP, done_tx.clone()));
    let down = tokio::spawn(pump(br, cw, ctl.clone(), DOWN, done_tx));
    let mut ended = 0;
    let mut abort = false;
    loop {
        tokio::select! {
            _ = cut.changed() => { abort = true; break; }
            r = done_rx.recv() => match r {
                Some(true) => { abort = true; break; }
                Some(false) => { ended += 1; if ended == 2 { break; } }
                None => break,
            },
        }
    }
    if abort {
        // The tasks own the sockets, set to linger 0: dropping them resets.
        up.abort();
        down.abort();
    }
}

/// The relay is a TCP endpoint that a real network path does not have: its
/// delayed ACKs would stall a board that writes with Nagle on, so it ACKs at
/// once (Linux clears this after a while, hence after every read).
fn quickack(rd: &tokio::net::tcp::OwnedReadHalf) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: setsockopt on a socket this task owns.
    unsafe {
        libc::setsockopt(
            rd.as_ref().as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Follows the WebSocket frames in one direction to count the board's
/// transfer chunks: after the HTTP upgrade, frame headers (masked from the
/// client, plain from the board) and how much binary payload went by.
#[derive(Default)]
struct Frames {
    http_done: bool,
    tail: Vec<u8>,
    header: Vec<u8>,
    payload_left: u64,
    binary: bool,
    /// Binary payload bytes counted towards the next 512-byte piece.
    piece: u64,
}

impl Frames {
    /// Chunks completed by `bytes`: binary frames going down, 512-byte
    /// pieces of binary payload going up.
    fn chunks(&mut self, bytes: &[u8], dir: usize) -> u32 {
        let mut n = 0;
        let mut i = 0;
        while i < bytes.len() {
            if !self.http_done {
                self.tail.push(bytes[i]);
                i += 1;
                if self.tail.ends_with(b"\r\n\r\n") {
                    self.http_done = true;
                    self.tail.clear();
                }
                continue;
            }
            if self.payload_left > 0 {
                let take = (self.payload_left as usize).min(bytes.len() - i);
                self.payload_left -= take as u64;
                i += take;
                if self.binary {
                    self.piece += take as u64;
                    if dir == UP {
                        n += (self.piece / 512) as u32;
                        self.piece %= 512;
                    } else if self.payload_left == 0 {
                        n += 1;
                    }
                }
                continue;
            }
            self.header.push(bytes[i]);
            i += 1;
            if let Some(len) = self.header_done() {
                self.binary = self.header[0] & 0x0f == 0x2;
                self.payload_left = len;
                self.header.clear();
                if len == 0 && self.binary && dir == DOWN {
                    n += 1;
                }
            }
        }
        n
    }

    fn header_done(&self) -> Option<u64> {
        let h = &self.header;
        if h.len() < 2 {
            return None;
        }
        let mask = if h[1] & 0x80 != 0 { 4 } else { 0 };
        let (len, ext) = match h[1] & 0x7f {
            126 => (
                h.get(2..4).map(|b| u16::from_be_bytes([b[0], b[1]]) as u64),
                2,
            ),
            127 => (
                h.get(2..10)
                    .map(|b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8]))),
                8,
            ),
            l => (Some(l as u64), 0),
        };
        if h.len() < 2 + ext + mask {
            return None;
        }
        len
    }
}

async fn pump(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    ctl: Arc<Control>,
    dir: usize,
    done: mpsc::Sender<bool>,
) {
    let _ = socket2::SockRef::from(wr.as_ref()).set_linger(Some(Duration::ZERO));
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let delay = ctl.delay;
    let limits = ctl.clone();
    // The sender reset its connection (what it had not seen acknowledged
    // it drops).
    let reset = Arc::new(AtomicBool::new(false));
    let reset_seen = reset.clone();
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut frames = Frames::default();
        // When the link is free again: the serialisation of what it carries.
        let mut free_at = Instant::now();
        loop {
            let rate = limits.rate.load(Ordering::SeqCst);
            let mut want = buf.len();
            if rate > 0 {
                // Read no faster than the link carries, in slices of about
                // 5 ms, so that back-pressure reaches the sender.
                let ahead = free_at.saturating_duration_since(Instant::now());
                if ahead > Duration::from_millis(2) {
                    sleep(ahead - Duration::from_millis(2)).await;
                }
                let piece = match limits.segment {
                    0 => ((rate / 200) as usize).max(64),
                    n => n,
                };
                want = want.min(piece);
            }
            match rd.read(&mut buf[..want]).await {
                Ok(0) => break,
                Err(_) => {
                    reset_seen.store(true, Ordering::SeqCst);
                    break;
                }
                Ok(n) => {
                    quickack(&rd);
                    let now = Instant::now();
                    free_at = free_at.max(now);
                    if rate > 0 {
                        free_at += Duration::from_secs_f64(n as f64 / rate as f64);
                    }
                    let due = free_at + delay;
                    if !limits.chunk_delay.is_zero() {
                        // The board pauses after each chunk: what follows
                        // waits behind that pause.
                        free_at += limits.chunk_delay * frames.chunks(&buf[..n], dir);
                    }
                    if tx.send((due, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    };
    let writer = async {
        let mut stall = ctl.stall.subscribe();
        while let Some((due, mut data)) = rx.recv().await {
            sleep_until(due).await;
            if *stall.borrow() {
                while *stall.borrow_and_update() {
                    if stall.changed().await.is_err() {
                        break;
                    }
                }
                // Held through the stall: a sender that reset meanwhile
                // never had them acknowledged.
                if reset.load(Ordering::SeqCst) {
                    return true;
                }
            }
            let limit = ctl.cut_after[dir].load(Ordering::SeqCst);
            let mut cut_now = false;
            if limit >= 0 {
                if data.len() as i64 >= limit {
                    data.truncate(limit as usize);
                    ctl.cut_after[dir].store(-1, Ordering::SeqCst);
                    cut_now = true;
                } else {
                    ctl.cut_after[dir].fetch_sub(data.len() as i64, Ordering::SeqCst);
                }
            }
            let split = if dir == UP {
                ctl.split.load(Ordering::SeqCst)
            } else {
                0
            };
            let ok = if split > 0 {
                let mut ok = true;
                for piece in data.chunks(split) {
                    ok &= wr.write_all(piece).await.is_ok();
                    sleep(Duration::from_millis(2)).await;
                }
                ok
            } else {
                wr.write_all(&data).await.is_ok()
            };
            if cut_now {
                ctl.cut.send_modify(|g| *g += 1);
                return true;
            }
            if !ok {
                return false;
            }
        }
        let _ = wr.shutdown().await;
        false
    };
    let (_, aborted) = tokio::join!(reader, writer);
    let _ = done.send(aborted).await;
}
