//! A board argument's grammar: `HOST[:PORT][:PATH]`, `NAME:PATH`,
//! `URL:PATH`, as webrepl_cli.py writes it.

use crate::error::{Error, Result};
use std::path::Path;

/// A board argument with an optional path: `HOST[:PORT][:PATH]`, `NAME`,
/// a URL; no path is the root.
pub fn board_and_path(target: &str) -> Result<(String, String)> {
    if split_remote(target).is_none() {
        return Ok((target.to_string(), "/".into()));
    }
    remote_arg(target)
}

/// A board named with the separator a path would follow (`kb:`, `kb/`,
/// `HOST:PORT:`) is the board: a trailing `:` or `/` never changes what a
/// command talks to. A URL keeps its own.
pub fn bare_board(s: &str) -> &str {
    if s.contains("://") {
        return s;
    }
    match s.trim_end_matches([':', '/']) {
        "" => s,
        b => b,
    }
}

/// mpremote's `:PATH` (`cp main.py :`, `cat :boot.py`): PATH on the
/// default board `board`, or in the mount at `board` when `mount`. A
/// relative PATH is from the root, as mpremote's (`kb:/123`, never the
/// port 123).
pub fn on_default(path: &str, board: &str, mount: bool) -> String {
    let rel = path.trim_start_matches('/');
    match (mount, rel) {
        (true, "") => board.to_string(),
        (true, rel) => format!("{}/{rel}", board.trim_end_matches('/')),
        (false, rel) => format!("{}:/{rel}", bare_board(board)),
    }
}

/// `HOST[:PORT]:PATH` → (`HOST[:PORT]`, `PATH`), the webrepl_cli.py syntax;
/// `URL:PATH` likewise.
/// Paths that start with `/` or `.` are local, as is anything without `:`.
pub fn split_remote(s: &str) -> Option<(String, String)> {
    if s.starts_with('/') || s.starts_with('.') || Path::new(s).exists() {
        return None;
    }
    // A URL's board path follows the first ':' after its own path starts
    // (`wss://proxy/webrepl/:/lib/x.py`); without one it names the board.
    if let Some(i) = s.find("://") {
        let start = i + 3 + s[i + 3..].find('/').unwrap_or(s.len() - i - 3);
        return Some(match s[start..].find(':') {
            Some(c) => {
                let path = &s[start + c + 1..];
                let path = if path.is_empty() { "/" } else { path };
                (s[..start + c].to_string(), path.to_string())
            }
            None => (s.to_string(), "/".to_string()),
        });
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let after = after.strip_prefix(':')?;
        if is_port(after) {
            return Some((s.to_string(), "/".into()));
        }
        return Some(match after.split_once(':') {
            Some((port, path)) if port.parse::<u16>().is_ok() => {
                (format!("[{host}]:{port}"), path.to_string())
            }
            _ => (format!("[{host}]"), after.to_string()),
        });
    }
    let (host, rest) = s.split_once(':')?;
    if host.is_empty() {
        return None;
    }
    // `HOST:PORT` is a port for every command, as `exec` and `repl` take
    // it; a board path of digits is written `HOST:/123`.
    if is_port(rest) {
        return Some((s.to_string(), "/".into()));
    }
    // `HOST:PORT/` too: a trailing slash names the board, not a file.
    if is_port(rest.trim_end_matches('/')) {
        return Some((s.trim_end_matches('/').to_string(), "/".into()));
    }
    Some(match rest.split_once(':') {
        Some((port, path)) if is_port(port) => (format!("{host}:{port}"), path.to_string()),
        _ => (host.to_string(), rest.to_string()),
    })
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The board and path a `HOST[:PORT]:PATH` argument names, or an error
/// naming both readings when digits could be a port or a file.
pub fn remote_arg(s: &str) -> Result<(String, String)> {
    if let Some((_, rest)) = s.split_once(':')
        && is_port(rest)
        && rest.parse::<u16>().ok().filter(|p| *p > 0).is_none()
    {
        let host = &s[..s.len() - rest.len() - 1];
        return Err(Error::Path(crate::error::BadPath::NoPort {
            arg: s.to_string(),
            host: host.to_string(),
            rest: rest.to_string(),
        }));
    }
    split_remote(s)
        .ok_or_else(|| Error::Path(crate::error::BadPath::NotRemote { arg: s.to_string() }))
}

/// `HOST:123`, where a board path may go, is read as a port; when nothing
/// answers there, the other reading (the board file 123) is named too.
/// `arg` is the argument as typed: one with a path (`HOST:123:/x`) or
/// where only a board goes (`exec HOST:123`) has one reading, and no hint.
pub fn other_reading(arg: &str, e: Error) -> Error {
    let Error::Unreachable {
        target,
        why,
        waited,
    } = e
    else {
        return e;
    };
    let why = match arg.trim_end_matches('/').rsplit_once(':') {
        Some((host, port))
            if !host.is_empty()
                && !host.contains(['/', ':'])
                && !port.is_empty()
                && port != "8266"
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            format!("{why} (for the board file {port} write {host}:/{port})")
        }
        _ => why,
    };
    Error::Unreachable {
        target,
        why,
        waited,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_specs() {
        let r = split_remote;
        assert_eq!(
            r("192.168.4.1:/main.py"),
            Some(("192.168.4.1".into(), "/main.py".into()))
        );
        assert_eq!(
            r("192.168.4.1:8266:/main.py"),
            Some(("192.168.4.1:8266".into(), "/main.py".into()))
        );
        assert_eq!(r("board:main.py"), Some(("board".into(), "main.py".into())));
        assert_eq!(r("[::1]:8266:/x"), Some(("[::1]:8266".into(), "/x".into())));
        assert_eq!(
            r("wss://proxy.example/webrepl/:/lib/up.bin"),
            Some(("wss://proxy.example/webrepl/".into(), "/lib/up.bin".into()))
        );
        assert_eq!(
            r("wss://proxy.example:8443/:main.py"),
            Some(("wss://proxy.example:8443/".into(), "main.py".into()))
        );
        assert_eq!(
            r("ws://board.local:8266/"),
            Some(("ws://board.local:8266/".into(), "/".into()))
        );
        assert_eq!(
            r("wss://proxy.example/webrepl/:"),
            Some(("wss://proxy.example/webrepl/".into(), "/".into()))
        );
        assert_eq!(r("./a:b"), None);
        assert_eq!(
            r("127.0.0.1:19112"),
            Some(("127.0.0.1:19112".into(), "/".into()))
        );
        assert_eq!(r("/tmp/x"), None);
        assert_eq!(r("plain"), None);
    }

    #[test]
    fn a_port_nothing_answers_names_the_file_reading_too() {
        let e = |board: &str| {
            other_reading(board, Error::unreachable("ws://x/", "refused")).to_string()
        };
        assert_eq!(
            e("127.0.0.1:123"),
            "cannot reach ws://x/: refused (for the board file 123 write 127.0.0.1:/123)"
        );
        assert_eq!(
            e("kb:18724"),
            "cannot reach ws://x/: refused (for the board file 18724 write kb:/18724)"
        );
        for plain in [
            "127.0.0.1:8266",
            "127.0.0.1",
            "ws://h:123/",
            "[::1]:123",
            "kb",
        ] {
            assert_eq!(e(plain), "cannot reach ws://x/: refused", "{plain}");
        }
    }

    #[test]
    fn colon_path_is_on_the_default_board() {
        let table = [
            (":", "kb", false, "kb:/"),
            (":main.py", "kb", false, "kb:/main.py"),
            (":123", "kb", false, "kb:/123"),
            (":/lib/", "127.0.0.1:8266", false, "127.0.0.1:8266:/lib/"),
            (":x", "kb:", false, "kb:/x"),
            (":x", "ws://h:80/", false, "ws://h:80/:/x"),
            (":", "/mnt/b", true, "/mnt/b"),
            (":lib/a.py", "/mnt/b/", true, "/mnt/b/lib/a.py"),
        ];
        for (arg, board, mount, want) in table {
            let path = &arg[1..];
            assert_eq!(on_default(path, board, mount), want, "{arg} {board}");
            let (b, p) = board_and_path(want).unwrap();
            if !mount {
                assert_eq!(
                    p.trim_start_matches('/'),
                    path.trim_start_matches('/'),
                    "{want}: {b}"
                );
            }
        }
    }

    /// One grammar for a board argument, whatever the command.
    #[test]
    fn board_argument_grammar() {
        let table: &[(&str, Option<(&str, &str)>)] = &[
            ("127.0.0.1:19112", Some(("127.0.0.1:19112", "/"))),
            ("127.0.0.1:19112:", Some(("127.0.0.1:19112", ""))),
            ("127.0.0.1:19112/", Some(("127.0.0.1:19112", "/"))),
            ("127.0.0.1:19112:/x.py", Some(("127.0.0.1:19112", "/x.py"))),
            ("127.0.0.1:/x.py", Some(("127.0.0.1", "/x.py"))),
            ("127.0.0.1:x.py", Some(("127.0.0.1", "x.py"))),
            ("127.0.0.1:/123", Some(("127.0.0.1", "/123"))),
            ("esp:lib/a.py", Some(("esp", "lib/a.py"))),
            ("[::1]:8266", Some(("[::1]:8266", "/"))),
            ("[::1]:/x", Some(("[::1]", "/x"))),
            ("ws://h:8266/:/a", Some(("ws://h:8266/", "/a"))),
            ("/tmp/m/a", None),
            ("plain", None),
        ];
        for (arg, want) in table {
            let got = split_remote(arg);
            let want = want.map(|(b, p)| (b.to_string(), p.to_string()));
            assert_eq!(got, want, "{arg}");
        }
        let e = remote_arg("host:99999").unwrap_err().to_string();
        assert!(e.contains("no port") && e.contains("host:/99999"), "{e}");
        assert!(remote_arg("host:8266").is_ok());
    }
}
