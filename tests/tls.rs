//! wss:// through a real nginx in front of the test board: what is trusted,
//! what is refused and how it is said, paths behind a prefix, a proxy's
//! own mistakes, and a mount whose idle link the proxy closes.

mod common;

use common::proxy::Proxy;
use common::{Mount, TestBoard, random_bytes};
use std::process::{Command, Output};

fn wm(tb: &TestBoard, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_webrepl-mount"));
    c.args(args).env("WEBREPL_PASSWORD", &tb.password);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run webrepl-mount")
}

fn said(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .last()
        .unwrap_or("")
        .to_string()
}

/// The `SHA256:...` an error message shows.
fn fingerprint_in(msg: &str) -> String {
    let at = msg
        .find("SHA256:")
        .unwrap_or_else(|| panic!("no fingerprint in {msg:?}"));
    msg[at..]
        .split(|c: char| c.is_whitespace() || c == ';' || c == ',')
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn trusted_through_ca_file_system_store_or_fingerprint_and_refused_in_words_otherwise() {
    let tb = TestBoard::start();
    let px = Proxy::start(tb.port);
    let ca = px.ca_file.to_string_lossy().to_string();
    let exec = |url: &str, extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["exec", url, "print(6*7)"];
        args.extend_from_slice(extra);
        wm(&tb, &args, env)
    };
    let (url, own) = (px.url("/webrepl/"), px.self_signed_url("/webrepl/"));

    // A private CA: refused by default, with the fix in the words.
    let o = exec(&url, &[], &[]);
    assert_eq!(o.status.code(), Some(13), "{}", said(&o));
    let msg = said(&o);
    assert!(
        msg.contains("not signed by an authority this machine trusts")
            && msg.contains("--ca-file")
            && msg.contains("--tls-fingerprint SHA256:"),
        "{msg}"
    );
    let o = exec(&url, &["--ca-file", &ca], &[]);
    assert_eq!(
        (o.stdout.as_slice(), o.status.code()),
        (&b"42\n"[..], Some(0)),
        "{}",
        said(&o)
    );
    // The system's store: SSL_CERT_FILE is how a user (or update-ca-certificates) adds one.
    let o = exec(&url, &[], &[("SSL_CERT_FILE", &ca)]);
    assert_eq!(o.stdout, b"42\n", "{}", said(&o));

    // A self-signed certificate: pinned by the fingerprint the error showed.
    let o = exec(&own, &[], &[]);
    assert_eq!(o.status.code(), Some(13), "{}", said(&o));
    let fp = fingerprint_in(&said(&o));
    let o = exec(&own, &["--tls-fingerprint", &fp], &[]);
    assert_eq!(o.stdout, b"42\n", "{}", said(&o));
    // A pin is that certificate only, even if an authority vouches for another.
    let o = exec(&url, &["--tls-fingerprint", &fp, "--ca-file", &ca], &[]);
    assert_eq!(o.status.code(), Some(13), "{}", said(&o));
    assert!(
        said(&o).contains("different certificate than --tls-fingerprint"),
        "{}",
        said(&o)
    );
    let o = exec(&own, &["--tls-fingerprint", "SHA256:nonsense"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", said(&o));

    // TLS to the board's plain port: it waits for an HTTP request that never
    // comes, so the time-out says what was likely meant.
    let plain = format!("wss://localhost:{}/", tb.port);
    let o = exec(&plain, &["--timeout", "1"], &[]);
    assert_eq!(o.status.code(), Some(6), "{}", said(&o));
    assert!(said(&o).contains("plain ws://"), "{}", said(&o));
}

#[test]
fn cp_and_ls_reach_sub_paths_behind_a_path_prefix() {
    let tb = TestBoard::start();
    std::fs::create_dir(tb.path("/lib")).unwrap();
    let px = Proxy::start(tb.port);
    let ca = px.ca_file.to_string_lossy().to_string();
    let url = px.url("/webrepl/");
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(40_000, 7);
    std::fs::write(dir.path().join("up.bin"), &data).unwrap();
    let up = dir.path().join("up.bin").to_string_lossy().to_string();
    let o = wm(
        &tb,
        &["cp", &up, &format!("{url}:/lib/up.bin"), "--ca-file", &ca],
        &[],
    );
    assert!(o.status.success(), "{}", said(&o));
    assert_eq!(std::fs::read(tb.path("/lib/up.bin")).unwrap(), data);
    let back = dir.path().join("back.bin").to_string_lossy().to_string();
    let o = wm(
        &tb,
        &["cp", &format!("{url}:/lib/up.bin"), &back, "--ca-file", &ca],
        &[],
    );
    assert!(o.status.success(), "{}", said(&o));
    assert_eq!(std::fs::read(&back).unwrap(), data);
    let o = wm(&tb, &["ls", &format!("{url}:/lib"), "--ca-file", &ca], &[]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "up.bin\n",
        "{}",
        said(&o)
    );
}

#[test]
fn a_proxy_that_sends_lowercase_upgrade_gets_a_hint_naming_the_fix() {
    let tb = TestBoard::start();
    let px = Proxy::start(tb.port);
    let ca = px.ca_file.to_string_lossy().to_string();
    let o = wm(
        &tb,
        &["exec", &px.url("/lower/"), "1", "--ca-file", &ca],
        &[],
    );
    assert_eq!(o.status.code(), Some(5), "{}", said(&o));
    assert!(
        said(&o).contains("Connection: Upgrade` with a capital U")
            && said(&o).contains("proxy_set_header Connection \"Upgrade\""),
        "{}",
        said(&o)
    );
    let o = wm(
        &tb,
        &["exec", &px.url("/elsewhere/"), "1", "--ca-file", &ca],
        &[],
    );
    assert_eq!(o.status.code(), Some(5), "{}", said(&o));
    assert!(said(&o).contains("HTTP 404"), "{}", said(&o));
}

#[test]
fn a_mount_over_wss_outlives_a_proxy_that_closes_it_when_idle() {
    let tb = TestBoard::start();
    let px = Proxy::start(tb.port);
    let ca = px.ca_file.to_string_lossy().to_string();
    let mut m = Mount::start(&tb, &px.url("/idle/"), &["--ca-file", &ca]);
    std::fs::write(m.path().join("a.py"), "a = 1\n").unwrap();
    assert_eq!(std::fs::read(tb.path("/a.py")).unwrap(), b"a = 1\n");
    // The proxy closes the link after 2 s of silence; status says so, calmly.
    let s = m.status_until(10, |s| s.contains("closed while idle"));
    assert!(!s.contains("DOWN"), "{s}");
    // The next use reconnects without a word to the user.
    std::fs::write(m.path().join("b.py"), "b = 2\n").unwrap();
    assert_eq!(std::fs::read(tb.path("/b.py")).unwrap(), b"b = 2\n");
    let listing: Vec<String> = std::fs::read_dir(m.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(listing.contains(&"a.py".to_string()), "{listing:?}");
    assert!(m.unmount().status.success(), "{}", m.log());
}
