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
