//! Who may drive the board through the page: a request with this start's
//! token in a header, a Host that names this server (a DNS-rebinding page
//! names its own), and no Origin but this server's (another site's page in
//! the same browser).
//!
//! No cookie: cookies ignore ports, so every other server on 127.0.0.1 (any
//! local user's) would receive it whenever the browser visits that server,
//! HttpOnly or not. The page keeps the token in sessionStorage, which
//! belongs to this origin (port included) and this tab alone, and sends it
//! as `X-Webrepl-Token`. The requests a page cannot add a header to, the
//! terminal's WebSocket and a download link (a file, a zip), carry a ticket instead:
//! asked for with the token, good for one request within 30 s, so a
//! ticket seen anywhere afterwards is worth nothing.

use axum::http::{HeaderMap, StatusCode, Uri, header};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a ticket waits for its request.
const TICKET_LIFE: Duration = Duration::from_secs(30);
/// Tickets outstanding at most: a page asks one at a time.
const TICKETS: usize = 32;

#[derive(Clone)]
pub struct Guard {
    pub token: String,
    /// Host header values accepted; empty: any (listening on every
    /// address, where the token alone decides).
    pub hosts: Vec<String>,
    tickets: Arc<Mutex<Vec<(String, Instant)>>>,
}

/// The files any visitor may fetch: the page's shell, nothing of the board.
pub fn is_public(path: &str) -> bool {
    path == "/" || path.starts_with("/page/")
}

impl Guard {
    pub fn new(token: String, listen: std::net::SocketAddr) -> Guard {
        let port = listen.port();
        let ip = listen.ip();
        let hosts = if ip.is_unspecified() {
            Vec::new()
        } else if ip.is_loopback() {
            vec![
                format!("127.0.0.1:{port}"),
                format!("localhost:{port}"),
                format!("[::1]:{port}"),
            ]
        } else {
            vec![listen.to_string()]
        };
        Guard {
            token,
            hosts,
            tickets: Arc::default(),
        }
    }

    /// A new ticket for one WebSocket or download (the caller has shown
    /// the token).
    pub fn ticket(&self) -> String {
        let t = random_hex();
        let mut all = self.tickets.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|(_, at)| at.elapsed() < TICKET_LIFE);
        if all.len() >= TICKETS {
            all.remove(0);
        }
        all.push((t.clone(), Instant::now()));
        t
    }

    /// Whether `given` is a live ticket; it is used up either way.
    fn redeem(&self, given: &str) -> bool {
        let mut all = self.tickets.lock().unwrap_or_else(|p| p.into_inner());
        match all
            .iter()
            .position(|(t, _)| same(t.as_bytes(), given.as_bytes()))
        {
            Some(i) => all.remove(i).1.elapsed() < TICKET_LIFE,
            None => false,
        }
    }

    /// Ok, or the status to refuse with and why.
    pub fn check(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
        let path = uri.path();
        let value = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok());
        let host = value(header::HOST).unwrap_or("");
        if !self.hosts.is_empty() && !self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            return Err((
                StatusCode::FORBIDDEN,
                format!("Host {host:?} is not this server's"),
            ));
        }
        if let Some(origin) = value(header::ORIGIN)
            && !origin.eq_ignore_ascii_case(&format!("http://{host}"))
        {
            return Err((
                StatusCode::FORBIDDEN,
                format!("requests from {origin} may not drive the board"),
            ));
        }
        if is_public(path) {
            return Ok(());
        }
        let token = headers.get("x-webrepl-token").and_then(|v| v.to_str().ok());
        if token.is_some_and(|t| same(t.as_bytes(), self.token.as_bytes())) {
            return Ok(());
        }
        let ticket = (path == "/term" || path == "/api/file" || path == "/api/zip")
            .then(|| uri.query())
            .flatten()
            .and_then(|q| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix("ticket="))
                    .map(str::to_string)
            });
        if ticket.is_some_and(|t| self.redeem(&t)) {
            return Ok(());
        }
        Err((
            StatusCode::FORBIDDEN,
            "no token: open the address webrepl-mount printed".into(),
        ))
    }
}

/// 128 random bits, as hex.
pub fn random_hex() -> String {
    (0..16)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// Compares in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn token_host_and_origin() {
        let g = Guard::new("abc123".into(), "127.0.0.1:8000".parse().expect("addr"));
        let ok = |p: &str, h: &[(&'static str, &str)]| {
            g.check(&p.parse().expect("uri"), &headers(h)).is_ok()
        };
        assert!(ok("/", &[("host", "127.0.0.1:8000")]));
        assert!(!ok("/api/tree", &[("host", "127.0.0.1:8000")]));
        // A cookie is no token: every port of the host would get it.
        assert!(!ok(
            "/api/tree",
            &[
                ("host", "localhost:8000"),
                ("cookie", "a=b; webrepl_mount_8000=abc123")
            ]
        ));
        assert!(ok(
            "/api/tree",
            &[("host", "127.0.0.1:8000"), ("x-webrepl-token", "abc123")]
        ));
        assert!(!ok(
            "/api/tree",
            &[("host", "127.0.0.1:8000"), ("x-webrepl-token", "abc124")]
        ));
        // DNS rebinding: the right token would not even be known, but the
        // Host gives it away anyway.
        assert!(!ok("/", &[("host", "evil.example:8000")]));
        assert!(!ok(
            "/api/tree",
            &[
                ("host", "127.0.0.1:8000"),
                ("origin", "http://evil.example"),
                ("x-webrepl-token", "abc123")
            ]
        ));
        // A ticket: once, for the WebSocket or a download only.
        let page = [
            ("host", "127.0.0.1:8000"),
            ("origin", "http://127.0.0.1:8000"),
        ];
        let t = g.ticket();
        assert!(!ok(&format!("/api/tree?ticket={t}"), &page));
        assert!(ok(&format!("/term?ticket={t}"), &page));
        assert!(!ok(&format!("/term?ticket={t}"), &page), "used twice");
        let t = g.ticket();
        assert!(ok(&format!("/api/file?path=/a.py&ticket={t}"), &page));
        assert!(!ok("/term?ticket=", &page));
    }
}
