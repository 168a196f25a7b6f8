//! A server that logs the client in like a board, then answers badly. Each
//! bad answer is an error on the operation in flight, never a crash, and
//! the session goes on (it connects again).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use webrepl_mount::session::{Config, Session, Target};

fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![first];
    if payload.len() < 126 {
        v.push(payload.len() as u8);
    } else {
        v.push(126);
        v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    v.extend_from_slice(payload);
    v
}

/// Reads one masked client frame; returns its payload (None: the client
/// closed the connection).
fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).ok()?;
    let mut len = (h[1] & 0x7f) as usize;
    if len == 126 {
        let mut l = [0u8; 2];
        s.read_exact(&mut l).ok()?;
        len = u16::from_be_bytes(l) as usize;
    }
    let mut mask = [0u8; 4];
    s.read_exact(&mut mask).ok()?;
    let mut p = vec![0u8; len];
    s.read_exact(&mut p).ok()?;
    p.iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b ^= mask[i % 4]);
    Some(p)
}

/// Serves connections: a proper login, then `bad` as the answer to the
/// first binary request; later connections answer GET_VER properly.
fn fake_board(bad: Vec<u8>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for (n, conn) in l.incoming().enumerate() {
            let Ok(mut s) = conn else { return };
            let mut req = Vec::new();
            let mut b = [0u8; 1];
            while !req.ends_with(b"\r\n\r\n") {
                if s.read_exact(&mut b).is_err() {
                    break;
                }
                req.push(b[0]);
            }
            let req = String::from_utf8_lossy(&req).to_string();
            let key = req
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap_or("")
                .trim()
                .to_string();
            let accept = derive_accept_key(key.as_bytes());
            let _ = s.write_all(format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").as_bytes());
            let _ = s.write_all(&frame(0x81, b"Password: "));
            if read_frame(&mut s).is_none() {
                continue;
            }
            let _ = s.write_all(&frame(0x81, b"\r\nWebREPL connected\r\n>>> "));
            while let Some(p) = read_frame(&mut s) {
                if p.len() == 82 && p[2] == 3 {
                    if n == 0 {
                        let _ = s.write_all(&bad);
                        break; // then close: a board that goes away mid-reply
                    }
                    let _ = s.write_all(&frame(0x82, &[1, 25, 0]));
                }
            }
        }
    });
    port
}

#[tokio::test]
async fn bad_answers_are_errors_and_the_session_goes_on() {
    // Garbage is an error on the operation in flight; a board that only
    // went away mid-reply is asked again on a new connection (a read is
    // safe to repeat), which answers.
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        (
            "a WB reply where the version belongs",
            frame(0x82, b"WB\0\0"),
        ),
        ("a 64-bit length", vec![0x82, 127, 0, 0, 1, 0, 0, 0, 0, 0]),
        ("a reserved opcode", vec![0x83, 0]),
        ("a continuation with no start", vec![0x80, 1, 0]),
        ("a message in endless fragments", {
            let mut v = frame(0x02, &[7; 60_000]);
            for _ in 0..40 {
                v.extend(frame(0x00, &[7; 60_000]));
            }
            v
        }),
    ];
    let gone: Vec<(&str, Vec<u8>)> = vec![
        ("nothing, then a closed connection", vec![]),
        (
            "half a frame, then a closed connection",
            vec![0x82, 50, 1, 2],
        ),
    ];
    for (what, bad) in gone {
        let port = fake_board(bad);
        let mut cfg = Config::new(
            Target::parse(&format!("127.0.0.1:{port}")).unwrap(),
            "pw".into(),
        );
        cfg.timeout = Duration::from_secs(2);
        let s = Session::connect(cfg).await.unwrap();
        assert_eq!(
            s.version().await.unwrap(),
            (1, 25, 0),
            "{what}: not retried"
        );
        assert_eq!(s.totals().await.unwrap().reconnects, 1, "{what}");
    }
    for (what, bad) in garbage {
        let port = fake_board(bad);
        let mut cfg = Config::new(
            Target::parse(&format!("127.0.0.1:{port}")).unwrap(),
            "pw".into(),
        );
        cfg.timeout = Duration::from_secs(2);
        let s = Session::connect(cfg).await.unwrap();
        match s.version().await {
            Err(webrepl_mount::error::Error::Protocol(_)) => {}
            other => panic!("{what}: not a protocol error: {other:?}"),
        }
        assert_eq!(
            s.version().await.unwrap(),
            (1, 25, 0),
            "{what}: the session did not recover"
        );
    }
}

/// Upgrades and logs in a fresh connection like a board does.
fn log_in(s: &mut TcpStream) -> bool {
    let mut req = Vec::new();
    let mut b = [0u8; 1];
    while !req.ends_with(b"\r\n\r\n") {
        if s.read_exact(&mut b).is_err() {
            return false;
        }
        req.push(b[0]);
    }
    let req = String::from_utf8_lossy(&req).to_string();
    let key = req
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .unwrap_or("")
        .trim()
        .to_string();
    let accept = derive_accept_key(key.as_bytes());
    let _ = s.write_all(format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").as_bytes());
    let _ = s.write_all(&frame(0x81, b"Password: "));
    if read_frame(s).is_none() {
        return false;
    }
    let _ = s.write_all(&frame(0x81, b"\r\nWebREPL connected\r\n>>> "));
    true
}

/// A board whose REPL works and whose programs are answered by `answer`
/// (given the code, it returns what the program prints). Returns the port
/// and a count of connections.
fn repl_board(
    answer: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    logged_in_board(move |mut s| {
        // 0: friendly, 1: raw, 2: raw-paste.
        let (mut mode, mut code) = (0, Vec::new());
        while let Some(p) = read_frame(&mut s) {
            if p.len() == 82 && p.starts_with(b"WA") {
                continue; // a file transfer: this board has none
            }
            let mut say = Vec::new();
            for b in p {
                match (mode, b) {
                    (0, 0x01) | (1, 0x01) if code.is_empty() => {
                        mode = 1;
                        say.extend_from_slice(b"\r\nraw REPL; CTRL-B to exit\r\n>");
                    }
                    (0, _) => {}
                    (1, 0x01) if code == b"\x05A" => {
                        code.clear();
                        mode = 2;
                        say.extend_from_slice(b"R\x01\xff\xff\x01");
                    }
                    (1 | 2, 0x04) => {
                        let text = String::from_utf8_lossy(&code).to_string();
                        let out = match text.find("wrm-sync-'+'") {
                            Some(i) => format!("wrm-sync-{}", &text[i + 12..i + 20]).into_bytes(),
                            None => answer(&text),
                        };
                        say.extend_from_slice(if mode == 1 { b"OK" } else { b"\x04" });
                        say.extend_from_slice(&out);
                        say.extend_from_slice(b"\x04\x04>");
                        code.clear();
                        mode = 1;
                    }
                    (_, b) => code.push(b),
                }
            }
            for chunk in say.chunks(1000) {
                let _ = s.write_all(&frame(0x81, chunk));
            }
        }
    })
}

/// A board on a free port that logs each client in, then hands the
/// connection to `serve` (a thread each). Returns the port and a count of
/// connections.
fn logged_in_board(
    serve: impl Fn(TcpStream) + Send + Sync + 'static,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let conns = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = conns.clone();
    let serve = std::sync::Arc::new(serve);
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut s) = conn else { return };
            counted.fetch_add(1, Ordering::SeqCst);
            let serve = serve.clone();
            std::thread::spawn(move || {
                if log_in(&mut s) {
                    serve(s);
                }
            });
        }
    });
    (port, conns)
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn wm(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
        .args(args)
        .args(["--timeout", "2"])
        .env("WEBREPL_PASSWORD", "pw")
        .env("RUST_LOG", "warn")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run webrepl-mount")
}

/// Answers `os.stat` with a directory and a walk with `listing(top)`.
fn listing_board(listing: impl Fn(&str) -> String + Send + Sync + 'static) -> u16 {
    repl_board(move |code| {
        if code.contains("_wrm.l('p',") {
            // A download's stat with the probe for a small file (the
            // helper `p`): the stat, and no small file.
            let kind = if code.contains("big") {
                "S 32768 1099511627776 0"
            } else {
                "S 16384 0 0"
            };
            format!("{kind}\r\nK\r\n").into_bytes()
        } else if code.contains("ilistdir") {
            // The walk's first argument: `for f in b'/top\0...'`.
            let top = code
                .split("for f in b'")
                .nth(1)
                .and_then(|r| r.split(['\\', '\'']).next())
                .unwrap_or("/")
                .to_string();
            let top = if top == "/" { "" } else { &top };
            format!("{}K\r\n", listing(top)).into_bytes()
        } else if code.contains("os.stat(") && code.contains("big") {
            b"S 32768 1099511627776 0\r\n".to_vec()
        } else if code.contains("os.stat(") {
            b"S 16384 0 0\r\n".to_vec()
        } else {
            b"Y 2000\r\nK\r\n".to_vec()
        }
    })
    .0
}

#[test]
fn names_from_a_board_cannot_leave_the_destination_of_cp() {
    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("x.txt");
    let escape = format!("../../../../../../../../..{}", victim.display());
    let lines = move |top: &str| {
        let e = |k: &str, p: &str| format!("{k} 0 0 {}\r\n", hex(p));
        [
            e("D", &format!("{top}/{escape}")),
            e("F", &format!("{top}/..")),
            e("D", &format!("{top}/")),
            e("D", &format!("{top}/a\0b")),
            e("D", &format!("{top}/sub")),
            e("D", &format!("{top}/sub/a/b")),
            e("D", &format!("{top}/sub/\x1b[31mred")),
        ]
        .concat()
    };
    let port = listing_board(lines);
    let dest = tmp.path().join("backup");
    std::fs::create_dir(&dest).unwrap();
    let o = wm(&[
        "cp",
        "-r",
        &format!("127.0.0.1:{port}:/evil"),
        dest.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!victim.exists(), "a board's name escaped: {err}");
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("x.txt"),
        "the name is not in the warning: {err}"
    );
    assert!(err.contains("skipped 5 name(s)"), "{err}");
    assert!(
        !err.contains("\x1b[31mred"),
        "a board's escape sequence reached stderr: {err}"
    );
    assert!(dest.join("evil/sub").is_dir(), "good names were not copied");
    assert!(dest.join("evil/sub/\u{1b}[31mred").is_dir());
    // Everything made is below the destination.
    let made: Vec<_> = walkdir(tmp.path());
    assert!(
        made.iter().all(|p| p.starts_with(&dest)),
        "made outside: {made:?}"
    );
}

fn walkdir(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap().flatten() {
        out.push(e.path());
        if e.path().is_dir() {
            out.extend(walkdir(&e.path()));
        }
    }
    out
}

#[test]
fn ls_escapes_a_boards_control_characters() {
    let port =
        listing_board(|top| format!("F 1 0 {}\r\n", hex(&format!("{top}/a\n\x1b]0;pwned\x07"))));
    let o = wm(&["ls", &format!("127.0.0.1:{port}:/")]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(out, "a\\n\\u{1b}]0;pwned\\u{7}\n");
}

/// `webrepl-mount ARGS` with the real test board's password, warnings only.
fn wm_on(tb: &common::TestBoard, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
        .args(args)
        .env("WEBREPL_PASSWORD", &tb.password)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run webrepl-mount")
}

/// Runs the command, killing it if it has not ended within `secs` (then the
/// test fails: a retry loop did not end).
fn wm_within(secs: u64, args: &[&str]) -> std::process::Output {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
        .args(args)
        .env("WEBREPL_PASSWORD", "pw")
        .env(
            "RUST_LOG",
            std::env::var("WM_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run webrepl-mount");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(o) => o.expect("webrepl-mount's output"),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
            let o = rx.recv().ok().and_then(|o| o.ok());
            panic!(
                "{args:?} still running after {secs} s: {}",
                o.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                    .unwrap_or_default()
            );
        }
    }
}

#[test]
fn a_huge_size_from_the_board_is_not_allocated() {
    let port = listing_board(|_| String::new());
    let dest = tempfile::tempdir().unwrap();
    let o = wm_within(
        20,
        &[
            "cp",
            &format!("127.0.0.1:{port}:/big"),
            dest.path().to_str().unwrap(),
            "--timeout",
            "1",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    // The transfer never comes (this board has none): an error after a
    // bounded number of tries, not an abort for a terabyte's allocation.
    assert!(
        o.status.code().is_some_and(|c| c != 0 && c != 134),
        "{:?}: {err}",
        o.status
    );
    assert!(!err.contains("memory allocation"), "{err}");
    assert!(!dest.path().join("big").exists(), "a partial file was left");
}

/// The page of a board (`web HOST`, no mount) reads a file whole into
/// memory for the editor and downloads: a size past the mount's cache
/// bound is refused in words before anything is read (a hostile board's
/// 400 MB was held whole in the server's memory).
#[test]
fn the_page_of_a_board_reads_no_huge_file_whole() {
    use std::io::BufRead;
    let port = listing_board(|_| String::new());
    let mut web = common::Reaped(
        std::process::Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
            .args([
                "web",
                &format!("127.0.0.1:{port}"),
                "--listen",
                "127.0.0.1:0",
            ])
            .env("WEBREPL_PASSWORD", "pw")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("web"),
    );
    let mut line = String::new();
    std::io::BufReader::new(web.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the page's address");
    let (base, token) = line.trim().split_once("/#").expect("a token");
    let page: u16 = base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", page)).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .expect("timeout");
    write!(
        s,
        "GET /api/file?path=/big HTTP/1.1\r\nHost: 127.0.0.1:{page}\r\nX-Webrepl-Token: {token}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("an answer in time");
    assert!(answer.contains("more than is read whole"), "{answer}");
    // SAFETY: signals our own child.
    unsafe { libc::kill(web.id() as i32, libc::SIGINT) };
}

/// A board that logs in, then answers every frame with `answer(frame)`.
fn odd_board(
    answer: impl Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    logged_in_board(move |mut s| {
        while let Some(p) = read_frame(&mut s) {
            let say = answer(&p);
            if !say.is_empty() {
                let _ = s.write_all(&frame(0x81, &say));
            }
        }
    })
}

#[test]
fn a_board_that_logs_in_then_stays_silent_or_talks_junk_ends_exec() {
    use std::sync::atomic::Ordering;
    let boards: Vec<(&str, (u16, _))> = vec![
        ("silent", odd_board(|_| Vec::new())),
        ("junk", odd_board(|_| b"\x1b[2Jjunk \x07\r\n".to_vec())),
        (
            "junk after the banner",
            odd_board(|p| {
                if p.ends_with(b"\x01") {
                    b"\r\nraw REPL; CTRL-B to exit\r\n>".to_vec()
                } else {
                    b"XXjunk".to_vec()
                }
            }),
        ),
    ];
    for (what, (port, conns)) in boards {
        let o = wm_within(
            60,
            &[
                "exec",
                "--timeout",
                "2",
                &format!("127.0.0.1:{port}"),
                "print(1)",
            ],
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(6), "{what}: {err}");
        assert!(err.contains("no progress for 2s"), "{what}: {err}");
        // Why the link was dropped is said, and it is not tried forever.
        assert!(
            err.contains("dropping the link to the board"),
            "{what}: {err}"
        );
        let n = conns.load(Ordering::SeqCst);
        assert!(n <= 2, "{what}: {n} connections");
    }
}

#[test]
fn a_directory_that_contains_itself_ends_the_walk() {
    let port = listing_board(|top| {
        // A listing that loops: /loop/loop/... far past any real tree.
        let mut out = String::new();
        let mut p = top.to_string();
        for _ in 0..200 {
            p.push_str("/loop");
            out.push_str(&format!("D 0 0 {}\r\n", hex(&p)));
        }
        out
    });
    let o = wm_within(60, &["ls", "-R", &format!("127.0.0.1:{port}:/")]);
    let err = String::from_utf8_lossy(&o.stderr);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("deeper than any real board"), "{err}");
    assert_eq!(out.lines().count(), 64, "{out}");
    let dest = tempfile::tempdir().expect("dest");
    let o = wm_within(
        60,
        &[
            "cp",
            "-r",
            &format!("127.0.0.1:{port}:/loop"),
            dest.path().to_str().expect("utf-8"),
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("deeper than any real board"), "{err}");
}

#[test]
fn a_listing_of_100k_entries_completes() {
    let port = listing_board(|top| {
        (0..100_000)
            .map(|i| format!("F 10 0 {}\r\n", hex(&format!("{top}/f{i:06}.py"))))
            .collect()
    });
    let o = wm_within(120, &["ls", &format!("127.0.0.1:{port}:/")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.lines().count(), 100_000);
    assert_eq!(out.lines().last(), Some("f099999.py"));
}

#[test]
fn a_server_that_never_prompts_for_the_password_is_not_called_busy() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut s) = conn else { return };
            std::thread::spawn(move || {
                let mut req = Vec::new();
                let mut b = [0u8; 1];
                while !req.ends_with(b"\r\n\r\n") && s.read_exact(&mut b).is_ok() {
                    req.push(b[0]);
                }
                let req = String::from_utf8_lossy(&req).to_string();
                let key = req
                    .lines()
                    .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                    .unwrap_or("")
                    .trim()
                    .to_string();
                let accept = derive_accept_key(key.as_bytes());
                let _ = s.write_all(format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").as_bytes());
                while read_frame(&mut s).is_some() {}
            });
        }
    });
    let o = wm_within(
        60,
        &["exec", "--timeout", "1", &format!("127.0.0.1:{port}"), "1"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(6), "{err}");
    assert!(err.contains("sent no password prompt within"), "{err}");
    assert!(!err.contains("another WebREPL client"), "{err}");
}

/// A man in the middle: forwards a connection to `to`, and changes one byte
/// in the payload of the `nth` large binary frame the board sends.
fn flipping_proxy(to: u16, nth: usize) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut flipped = false;
        for conn in l.incoming() {
            let Ok(client) = conn else { return };
            let Ok(board) = TcpStream::connect(("127.0.0.1", to)) else {
                return;
            };
            let (mut c_in, mut b_out) = (client.try_clone().unwrap(), board.try_clone().unwrap());
            std::thread::spawn(move || std::io::copy(&mut c_in, &mut b_out));
            let (mut b_in, mut c_out) = (board, client);
            // The upgrade answer, then frames.
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if b_in.read_exact(&mut b).is_err() {
                    break;
                }
                head.push(b[0]);
            }
            let _ = c_out.write_all(&head);
            let mut seen = 0;
            loop {
                let mut h = [0u8; 2];
                if b_in.read_exact(&mut h).is_err() {
                    break;
                }
                let mut len = (h[1] & 0x7f) as usize;
                let mut ext = Vec::new();
                if len == 126 {
                    let mut l2 = [0u8; 2];
                    if b_in.read_exact(&mut l2).is_err() {
                        break;
                    }
                    ext.extend_from_slice(&l2);
                    len = u16::from_be_bytes(l2) as usize;
                }
                let mut p = vec![0u8; len];
                if b_in.read_exact(&mut p).is_err() {
                    break;
                }
                if h[0] & 0x0f == 2 && len >= 200 {
                    seen += 1;
                    if seen == nth && !flipped {
                        flipped = true;
                        p[len - 1] ^= 0x20;
                    }
                }
                let mut out = h.to_vec();
                out.extend(ext);
                out.extend(p);
                if c_out.write_all(&out).is_err() {
                    break;
                }
            }
        }
    });
    port
}

#[test]
fn a_download_altered_in_transit_is_refused_and_not_written() {
    let tb = common::TestBoard::start();
    let data = common::random_bytes(200_000, 19);
    std::fs::write(tb.path("/big.bin"), &data).unwrap();
    std::fs::write(tb.path("/small.py"), b"print(1)\n").unwrap();
    let port = flipping_proxy(tb.port, 20);
    let dest = tempfile::tempdir().unwrap();
    let run = |to: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
            .args([
                "cp",
                &format!("127.0.0.1:{port}:/big.bin"),
                &format!("127.0.0.1:{port}:/small.py"),
                to,
            ])
            .env("WEBREPL_PASSWORD", &tb.password)
            .output()
            .expect("run webrepl-mount")
    };
    let o = run(dest.path().to_str().unwrap());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("/big.bin: ") && err.contains(" mismatch"),
        "{err}"
    );
    assert!(
        !dest.path().join("big.bin").exists(),
        "a damaged copy was written"
    );
    // The file the proxy left alone is whole.
    assert_eq!(
        std::fs::read(dest.path().join("small.py")).unwrap(),
        b"print(1)\n"
    );
    // Once the man in the middle is done, the copy arrives whole.
    let o = run(dest.path().to_str().unwrap());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(dest.path().join("big.bin")).unwrap(), data);
}

/// A `cp` of one file has the board's digest of it asked beside the end
/// of its transfer, not after it: a copy altered in transit is still
/// refused, and once the man in the middle is done it arrives whole.
#[test]
fn a_single_download_altered_in_transit_is_refused_and_not_written() {
    let tb = common::TestBoard::start();
    let data = common::random_bytes(100_000, 29);
    std::fs::write(tb.path("/one.bin"), &data).unwrap();
    let port = flipping_proxy(tb.port, 20);
    let dest = tempfile::tempdir().unwrap();
    let to = dest.path().join("one.bin");
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
            .args([
                "cp",
                &format!("127.0.0.1:{port}:/one.bin"),
                to.to_str().unwrap(),
            ])
            .env("WEBREPL_PASSWORD", &tb.password)
            .output()
            .expect("run webrepl-mount")
    };
    let o = run();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("/one.bin: ") && err.contains(" mismatch"),
        "{err}"
    );
    assert!(!to.exists(), "a damaged copy was written");
    let o = run();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&to).unwrap(), data);
}

#[test]
fn a_read_through_the_mount_altered_in_transit_is_read_again_and_never_served() {
    let tb = common::TestBoard::start();
    let data = common::random_bytes(200_000, 23);
    std::fs::write(tb.path("/big.bin"), &data).unwrap();
    let port = flipping_proxy(tb.port, 20);
    let mut m = common::Mount::start(&tb, &format!("127.0.0.1:{port}"), &[]);
    // No reader has a byte of the damaged copy (ranges come checked by
    // the range program meanwhile): it is read again, and the reader gets
    // the board's file.
    assert_eq!(std::fs::read(m.path().join("big.bin")).unwrap(), data);
    let log = m.log();
    assert!(
        log.contains("/big.bin: crc32 mismatch") || log.contains("/big.bin: sha256 mismatch"),
        "{log}"
    );
    assert!(log.contains("reading it again"), "{log}");
    assert!(m.unmount().status.success());
}

#[test]
fn a_reader_that_stops_midway_through_a_damaged_download_got_only_checked_bytes() {
    use std::io::Read;
    let tb = common::TestBoard::start();
    let data = common::random_bytes(200_000, 31);
    std::fs::write(tb.path("/big.bin"), &data).unwrap();
    // The test board's GET sends 256-byte frames: this alters byte
    // 51,199, past the first range read.
    let port = flipping_proxy(tb.port, 200);
    let mut m = common::Mount::start(&tb, &format!("127.0.0.1:{port}"), &[]);
    // `head -c 150000`, 4 KB a read: reads in order (the first by a range,
    // the whole file's download starts at its second read, and is
    // damaged), then stops short of the end.
    let mut f = std::fs::File::open(m.path().join("big.bin")).unwrap();
    let mut got = vec![0u8; 150_000];
    let mut at = 0;
    while at < got.len() {
        let to = got.len().min(at + 4096);
        match f.read(&mut got[at..to]) {
            Ok(0) => break,
            Ok(n) => at += n,
            Err(e) => panic!("read at {at}: {e}"),
        }
    }
    drop(f);
    assert_eq!(at, got.len());
    let bad = got.iter().zip(&data).position(|(a, b)| a != b);
    assert_eq!(bad, None, "a damaged byte was handed to the reader");
    assert!(m.log().contains("by a range read"), "{}", m.log());
    // The proxy did damage the download.
    common::eventually(30, "the damaged download is found", || {
        m.log().contains("/big.bin: ") && m.log().contains(" mismatch")
    });
    assert!(m.unmount().status.success());
}

#[test]
fn a_mount_of_a_board_with_odd_names_and_a_loop_becomes_ready() {
    // An empty name and a NUL beside good files, and a directory that
    // contains itself: the mount skips what it cannot show and is ready.
    let port = listing_board(|top| {
        let e = |k: &str, p: &str| format!("{k} 0 0 {}\r\n", hex(p));
        let mut out = [
            e("D", &format!("{top}/d")),
            e("F", &format!("{top}/d/")),
            e("F", &format!("{top}/d/a\0b")),
            e("F", &format!("{top}/d/ok.py")),
        ]
        .concat();
        let mut p = top.to_string();
        for _ in 0..200 {
            p.push_str("/loop");
            out.push_str(&e("D", &p));
        }
        out
    });
    let (mp, state, runtime) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let cmd = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_webrepl-mount"));
        c.env("WEBREPL_PASSWORD", "pw")
            .env("XDG_STATE_HOME", state.path())
            .env("XDG_RUNTIME_DIR", runtime.path())
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    };
    let mut daemon = common::Reaped(
        cmd()
            .args([&format!("127.0.0.1:{port}"), mp.path().to_str().unwrap()])
            .args(["--timeout", "2"])
            .spawn()
            .unwrap(),
    );
    let _gone = common::Unmounted(mp.path().to_path_buf());
    common::eventually(30, "the mount is ready", || {
        assert!(daemon.try_wait().unwrap().is_none(), "the mount ended");
        common::mounted(mp.path()) && std::fs::metadata(mp.path()).is_ok()
    });
    let names: Vec<String> = std::fs::read_dir(mp.path().join("d"))
        .expect("the directory with odd names reads")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["ok.py"]);
    let mut depth = 0;
    let mut at = mp.path().to_path_buf();
    while at.join("loop").is_dir() && depth < 100 {
        at = at.join("loop");
        depth += 1;
    }
    assert!(depth <= 64, "{depth} levels of the loop");
    let _ = cmd()
        .args(["unmount", mp.path().to_str().unwrap()])
        .status();
    if daemon.try_wait().unwrap().is_none() {
        let _ = std::process::Command::new("fusermount3")
            .args(["-u", mp.path().to_str().unwrap()])
            .status();
        let _ = daemon.kill();
    }
    let _ = daemon.wait();
}

#[test]
fn names_that_are_not_utf8_are_skipped_with_a_warning_by_ls_cp_and_the_mount() {
    use std::os::unix::ffi::OsStrExt;
    let tb = common::TestBoard::start();
    let d = tb.path("/d");
    std::fs::create_dir_all(d.join(std::ffi::OsStr::from_bytes(b"sub\xfe"))).unwrap();
    std::fs::write(d.join(std::ffi::OsStr::from_bytes(b"\xff\xfe.py")), b"x").unwrap();
    std::fs::write(
        d.join(std::ffi::OsStr::from_bytes(b"sub\xfe/inner.py")),
        b"y",
    )
    .unwrap();
    std::fs::write(d.join("ok.py"), b"print(1)\n").unwrap();
    let board = format!("127.0.0.1:{}", tb.port);
    let run = |args: &[&str]| wm_on(&tb, args);
    let o = run(&["ls", &format!("{board}:/d")]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "ok.py\n", "{err}");
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("Traceback"), "{err}");
    assert!(err.contains("/d/\\xff\\xfe.py"), "{err}");
    assert_eq!(
        err.matches("not UTF-8").count(),
        1,
        "one warning for the directory: {err}"
    );

    let dest = tempfile::tempdir().unwrap();
    let o = run(&[
        "cp",
        "-r",
        &format!("{board}:/d"),
        dest.path().to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("in /d on the board that are not UTF-8"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dest.path().join("d/ok.py")).unwrap(),
        b"print(1)\n"
    );
    let copied: Vec<_> = std::fs::read_dir(dest.path().join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(copied, ["ok.py"]);

    let mut m = common::Mount::start(&tb, &board, &[]);
    let names: Vec<_> = std::fs::read_dir(m.path().join("d"))
        .expect("the directory reads through the mount")
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["ok.py"]);
    assert!(m.log().contains("not UTF-8"), "{}", m.log());
    assert!(m.unmount().status.success());
}

#[test]
fn a_quoted_pattern_skips_names_that_are_not_utf8_at_the_root() {
    use std::os::unix::ffi::OsStrExt;
    let tb = common::TestBoard::start();
    // The root's listing is str on MicroPython whatever is asked: such a
    // name raises there.
    std::fs::write(
        tb.path("/").join(std::ffi::OsStr::from_bytes(b"g\xff.py")),
        b"x",
    )
    .unwrap();
    std::fs::write(tb.path("/go.py"), b"print(1)\n").unwrap();
    std::fs::write(tb.path("/gone.py"), b"print(2)\n").unwrap();
    let board = format!("127.0.0.1:{}", tb.port);
    let run = |args: &[&str]| wm_on(&tb, args);
    let o = run(&["sha256sum", &format!("{board}:/go*")]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        !err.contains("Traceback") && !err.contains("UnicodeError"),
        "{err}"
    );
    assert_eq!(err.matches("not UTF-8").count(), 1, "{err}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(":/go.py") && out.contains(":/gone.py"),
        "{out}"
    );

    let o = run(&["rm", &format!("{board}:/g*")]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !err.contains("Traceback") && !err.contains("UnicodeError"),
        "{err}"
    );
    assert!(
        !tb.path("/go.py").exists() && !tb.path("/gone.py").exists(),
        "{err}"
    );
    assert!(
        tb.path("/")
            .join(std::ffi::OsStr::from_bytes(b"g\xff.py"))
            .exists(),
        "a name the tool cannot hold is never touched"
    );
    // The mount reads the whole tree from the root the same way.
    let mut m = common::Mount::start(&tb, &board, &[]);
    let names: Vec<_> = std::fs::read_dir(m.path())
        .expect("the root reads through the mount")
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(names.is_empty(), "{names:?}");
    assert!(m.log().contains("not UTF-8"), "{}", m.log());
    assert!(m.unmount().status.success());
}

/// Runs the tool, returning its output and its peak resident memory in
/// KB (VmHWM, read until it ends).
fn wm_peak_rss(args: &[&str], password: &str) -> (std::process::Output, u64) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
        .args(args)
        .env("WEBREPL_PASSWORD", password)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run webrepl-mount");
    let status = format!("/proc/{}/status", child.id());
    let mut out = child.stdout.take().unwrap();
    let counted = std::thread::spawn(move || {
        // What cat prints is counted, not kept: the test holds no copy.
        let mut n = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(k) = out.read(&mut buf) {
            if k == 0 {
                break;
            }
            n += k as u64;
        }
        n
    });
    let mut peak = 0;
    common::eventually(300, "the command ends", || {
        if let Some(kb) = std::fs::read_to_string(&status).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
        }) {
            peak = peak.max(kb);
        }
        // VmHWM is the kernel's high-water mark: no sample is missed
        // between `eventually`'s polls.
        child.try_wait().unwrap().is_some()
    });
    let printed = counted.join().unwrap();
    let mut o = child.wait_with_output().unwrap();
    o.stdout = printed.to_string().into_bytes();
    (o, peak)
}

#[test]
fn a_big_download_streams_to_disk_and_stdout_in_bounded_memory() {
    let tb = common::TestBoard::start();
    let size: u64 = 48 << 20;
    std::fs::File::create(tb.path("/big.bin"))
        .unwrap()
        .set_len(size)
        .unwrap();
    let board = format!("127.0.0.1:{}", tb.port);
    let dest = tempfile::tempdir().unwrap();
    let (o, peak) = wm_peak_rss(
        &[
            "cp",
            &format!("{board}:/big.bin"),
            dest.path().to_str().unwrap(),
        ],
        &tb.password,
    );
    eprintln!("cp of {size} B: peak RSS {peak} KB");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::metadata(dest.path().join("big.bin"))
            .unwrap()
            .len(),
        size
    );
    let names: Vec<_> = std::fs::read_dir(dest.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "a temporary file was left: {names:?}");
    assert!(peak < 32 << 10, "cp held {peak} KB for a {size} B file");

    let (o, peak) = wm_peak_rss(&["cat", &format!("{board}:/big.bin")], &tb.password);
    eprintln!("cat of {size} B: peak RSS {peak} KB");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.stdout, size.to_string().into_bytes());
    assert!(peak < 32 << 10, "cat held {peak} KB for a {size} B file");
}

#[test]
fn a_board_file_bigger_than_the_free_space_is_refused_before_it_fills_the_disk() {
    let tb = common::TestBoard::start();
    // Sparse: the board's stat says 1 TiB, as a hostile board's may.
    std::fs::File::create(tb.path("/huge.bin"))
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    let dest = tempfile::tempdir().unwrap();
    let o = wm_within(
        30,
        &[
            "cp",
            &format!("127.0.0.1:{}:/huge.bin", tb.port),
            dest.path().to_str().unwrap(),
            "--password",
            &tb.password,
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("1099511627776 bytes") && err.contains("free there"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 0);
}

#[test]
fn a_big_cat_damaged_after_output_began_says_so_and_fails() {
    let tb = common::TestBoard::start();
    let data = common::random_bytes(3 << 20, 29);
    std::fs::write(tb.path("/big.bin"), &data).unwrap();
    // A frame altered well after the first MiB was printed.
    let port = flipping_proxy(tb.port, 1500);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
        .args(["cat", &format!("127.0.0.1:{port}:/big.bin")])
        .env("WEBREPL_PASSWORD", &tb.password)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(o.stdout.len() > 1 << 20, "{} bytes printed", o.stdout.len());
    assert!(
        err.contains("what was printed is not the board's file"),
        "{err}"
    );
}

#[test]
fn ctrl_c_during_a_download_leaves_no_temporary_file() {
    let tb = common::TestBoard::start();
    std::fs::File::create(tb.path("/big.bin"))
        .unwrap()
        .set_len(48 << 20)
        .unwrap();
    let dest = tempfile::tempdir().unwrap();
    let mut child = common::Reaped(
        std::process::Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
            .args([
                "cp",
                &format!("127.0.0.1:{}:/big.bin", tb.port),
                dest.path().to_str().unwrap(),
            ])
            .env("WEBREPL_PASSWORD", &tb.password)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    common::eventually(30, "the download has begun", || {
        std::fs::read_dir(dest.path())
            .unwrap()
            .flatten()
            .any(|e| e.metadata().is_ok_and(|m| m.len() > 0))
    });
    // SAFETY: a plain signal to the process this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(!status.success());
    let left: Vec<_> = std::fs::read_dir(dest.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
