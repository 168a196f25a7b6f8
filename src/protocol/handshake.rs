//! The HTTP upgrade, spelled the way boards parse it: their parser is
//! case-sensitive on header names and knows only these three.

use thiserror::Error;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum HandshakeError {
    /// `via`: the `Server` or `Via` header, which a board never sends: a
    /// proxy answered or passed the answer on.
    #[error(
        "not a WebREPL endpoint: the server answered HTTP {code} instead of switching to WebSocket"
    )]
    NotWebSocket { code: u16, via: Option<String> },
    #[error("not a WebREPL endpoint: the answer is not HTTP")]
    NotHttp,
    #[error("the board's Sec-WebSocket-Accept does not match our key")]
    BadAccept,
}

pub fn request(host: &str, path: &str, key: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://{host}\r\n\r\n"
    )
    .into_bytes()
}

/// Parses the answer. `Ok(None)`: not complete yet. `Ok(Some(n))`: upgraded,
/// and the first `n` bytes were the HTTP part (what follows is frames).
pub fn parse_response(buf: &[u8], key: &str) -> Result<Option<usize>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let n = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(HandshakeError::NotHttp),
    };
    let code = resp.code.unwrap_or(0);
    if code != 101 {
        let via = resp
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("Server") || h.name.eq_ignore_ascii_case("Via"))
            .map(|h| String::from_utf8_lossy(h.value).into_owned());
        return Err(HandshakeError::NotWebSocket { code, via });
    }
    let expected = derive_accept_key(key.as_bytes());
    let ok = resp.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("Sec-WebSocket-Accept") && h.value == expected.as_bytes()
    });
    if ok {
        Ok(Some(n))
    } else {
        Err(HandshakeError::BadAccept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    #[test]
    fn request_spells_headers_as_boards_expect() {
        let r = String::from_utf8(request("b:8266", "/", KEY)).unwrap();
        assert!(r.starts_with("GET / HTTP/1.1\r\n"));
        for h in [
            "\r\nConnection: Upgrade\r\n",
            "\r\nUpgrade: websocket\r\n",
            "\r\nSec-WebSocket-Key: ",
        ] {
            assert!(r.contains(h), "{h:?} missing");
        }
        assert!(r.ends_with("\r\n\r\n"));
    }

    #[test]
    fn accepts_101_and_reports_where_frames_start() {
        let resp =
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x0aPassword: ";
        let n = parse_response(resp, KEY).unwrap().unwrap();
        assert_eq!(&resp[n..n + 2], b"\x81\x0a");
        assert_eq!(parse_response(&resp[..40], KEY), Ok(None));
    }

    #[test]
    fn the_boards_html_page_and_bad_keys_are_errors() {
        let page = b"HTTP/1.0 200 OK\r\n\r\n<html>";
        assert_eq!(
            parse_response(page, KEY),
            Err(HandshakeError::NotWebSocket {
                code: 200,
                via: None
            })
        );
        let proxied = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n\r\n<html>";
        assert_eq!(
            parse_response(proxied, KEY),
            Err(HandshakeError::NotWebSocket {
                code: 200,
                via: Some("nginx/1.22.1".into())
            })
        );
        let bad = b"HTTP/1.1 101 OK\r\nSec-WebSocket-Accept: nope\r\n\r\n";
        assert_eq!(parse_response(bad, KEY), Err(HandshakeError::BadAccept));
        assert_eq!(
            parse_response(b"SSH-2.0-OpenSSH\r\n\r\n", KEY),
            Err(HandshakeError::NotHttp)
        );
    }
}
