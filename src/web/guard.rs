//! Who may drive the board through the page: a request with this start's
//! token (a cookie the page sets from the URL's fragment, or a header), a
//! Host that names this server (a DNS-rebinding page names its own), and no
//! Origin but this server's (another site's page in the same browser).

use axum::http::{HeaderMap, StatusCode, header};

#[derive(Clone)]
pub struct Guard {
    pub token: String,
    /// Host header values accepted; empty: any (listening on every
    /// address, where the token alone decides).
    pub hosts: Vec<String>,
    pub port: u16,
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
        Guard { token, hosts, port }
    }

    /// The cookie the page keeps the token in: one per port, as cookies
    /// are shared by every port of a host.
    pub fn cookie(&self) -> String {
        format!("webrepl_mount_{}", self.port)
    }

    /// Ok, or the status to refuse with and why.
    pub fn check(&self, path: &str, headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
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
        let given = headers
            .get("x-webrepl-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| self.token_in_cookies(value(header::COOKIE).unwrap_or("")));
        match given {
            Some(t) if same(t.as_bytes(), self.token.as_bytes()) => Ok(()),
            _ => Err((
                StatusCode::FORBIDDEN,
                "no token: open the address webrepl-mount printed".into(),
            )),
        }
    }

    fn token_in_cookies(&self, cookies: &str) -> Option<String> {
        let name = self.cookie();
        cookies
            .split(';')
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
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
        let ok = |p: &str, h: &[(&'static str, &str)]| g.check(p, &headers(h)).is_ok();
        assert!(ok("/", &[("host", "127.0.0.1:8000")]));
        assert!(!ok("/api/tree", &[("host", "127.0.0.1:8000")]));
        assert!(ok(
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
        assert!(ok(
            "/term",
            &[
                ("host", "127.0.0.1:8000"),
                ("origin", "http://127.0.0.1:8000"),
                ("cookie", "webrepl_mount_8000=abc123")
            ]
        ));
    }
}
