//! A server that logs the client in like a board, then answers badly. Each
//! bad answer is an error on the operation in flight, never a crash, and
//! the session goes on (it connects again).

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
        assert!(s.version().await.is_err(), "{what}: accepted");
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
    use std::sync::atomic::Ordering;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let conns = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = conns.clone();
    let answer = std::sync::Arc::new(answer);
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut s) = conn else { return };
            counted.fetch_add(1, Ordering::SeqCst);
            let answer = answer.clone();
            std::thread::spawn(move || {
                if !log_in(&mut s) {
                    return;
                }
                // 0: friendly, 1: raw, 2: raw-paste.
                let (mut mode, mut code) = (0, Vec::new());
                while let Some(p) = read_frame(&mut s) {
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
                                    Some(i) => {
                                        format!("wrm-sync-{}", &text[i + 12..i + 20]).into_bytes()
                                    }
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
        if code.contains("ilistdir") {
            let top = code
                .split("t=[b'")
                .nth(1)
                .and_then(|r| r.split('\'').next())
                .unwrap_or("/")
                .to_string();
            let top = if top == "/" { "" } else { &top };
            format!("{}K\r\n", listing(top)).into_bytes()
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
