//! Link emulator for tests and benchmarks: a loopback TCP relay that adds
//! latency in each direction and cuts or splits traffic on command.
//!
//! linkemu --to 127.0.0.1:PORT [--delay-ms D] [--listen ADDR]
//! Prints `listening PORT`, then reads commands on stdin, one per line:
//!   cut             reset every open connection now
//!   cut-up N        reset once N more bytes have gone client -> board
//!   cut-down N      reset once N more bytes have gone board -> client
//!   split N         deliver client -> board data in N-byte pieces, 2 ms apart
//!   refuse on|off   reset new connections at once (a board that is gone)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep, sleep_until};

struct Control {
    delay: Duration,
    cut: watch::Sender<u64>,
    cut_after: [AtomicI64; 2],
    split: AtomicUsize,
    refuse: AtomicBool,
}

const UP: usize = 0;
const DOWN: usize = 1;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(to) = arg(&args, "--to") else {
        eprintln!("usage: linkemu --to HOST:PORT [--delay-ms D] [--listen ADDR]");
        std::process::exit(2);
    };
    let delay_ms: f64 = arg(&args, "--delay-ms")
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    let listen = arg(&args, "--listen").unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = TcpListener::bind(&listen).await?;
    println!("listening {}", listener.local_addr()?.port());
    let ctl = Arc::new(Control {
        delay: Duration::from_secs_f64(delay_ms / 1000.0),
        cut: watch::channel(0).0,
        cut_after: [AtomicI64::new(-1), AtomicI64::new(-1)],
        split: AtomicUsize::new(0),
        refuse: AtomicBool::new(false),
    });
    tokio::spawn(commands(ctl.clone()));
    loop {
        let (client, _) = listener.accept().await?;
        if ctl.refuse.load(Ordering::SeqCst) {
            reset(&client);
            continue;
        }
        let ctl = ctl.clone();
        let to = to.clone();
        tokio::spawn(async move {
            if let Ok(board) = TcpStream::connect(&to).await {
                relay(client, board, ctl).await;
            }
        });
    }
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
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    quickack(&rd);
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    };
    let writer = async {
        while let Some((due, mut data)) = rx.recv().await {
            sleep_until(due).await;
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
