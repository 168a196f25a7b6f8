//! `mip install` (issue 24) against a package index this test serves on
//! loopback, laid out as micropython.org/pi/v2 is (`package/{mpy}/NAME/
//! latest.json`, files under `file/{hash[:2]}/{hash}`), and the real test
//! board: the host fetches, the board only gets files.

mod common;

use common::{Mount, TestBoard, eventually, mpy_cross, wm};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A static HTTP server over a directory, one request per connection.
struct Index {
    root: tempfile::TempDir,
    url: String,
    /// Requests answered so far.
    served: Arc<AtomicUsize>,
}

impl Index {
    fn start() -> Index {
        let root = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let served = Arc::new(AtomicUsize::new(0));
        let (dir, count) = (root.path().to_path_buf(), served.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut lines = BufReader::new(conn.try_clone().unwrap());
                let mut first = String::new();
                let _ = lines.read_line(&mut first);
                loop {
                    let mut l = String::new();
                    if lines.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
                        break;
                    }
                }
                let path = first.split(' ').nth(1).unwrap_or("/");
                let file = (!path.contains(".."))
                    .then(|| dir.join(path.trim_start_matches('/')))
                    .and_then(|f| std::fs::read(f).ok());
                count.fetch_add(1, Ordering::SeqCst);
                let _ = match file {
                    Some(body) => conn
                        .write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                body.len()
                            )
                            .as_bytes(),
                        )
                        .and_then(|()| conn.write_all(&body)),
                    None => conn.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    ),
                };
            }
        });
        Index { root, url, served }
    }

    /// Stores a file as the index does; its short hash.
    fn file(&self, data: &[u8]) -> String {
        let short: String = Sha256::digest(data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()[..8]
            .to_string();
        self.put(&format!("file/{}/{short}", &short[..2]), data);
        short
    }

    fn package(&self, mpy: &str, name: &str, json: &str) {
        self.put(
            &format!("package/{mpy}/{name}/latest.json"),
            json.as_bytes(),
        );
    }

    fn put(&self, rel: &str, data: &[u8]) {
        let p = self.root.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_string()
}

/// What `code` prints on the board, through the tool's `exec`.
fn board_says(tb: &TestBoard, code: &str) -> String {
    let o = wm(&tb.password, &["exec", &tb.addr(), code]);
    assert!(o.status.success(), "exec {code}: {}", err(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn compiled(source: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let py: PathBuf = dir.path().join("shout.py");
    std::fs::write(&py, source).unwrap();
    let ok = Command::new(mpy_cross()).arg(&py).status().unwrap();
    assert!(ok.success(), "mpy-cross");
    std::fs::read(py.with_extension("mpy")).unwrap()
}

/// `greet` (a package directory) needs `shout`, which the index has as
/// `.py` and, for the board's mpy version, as `.mpy`.
fn greet_index(tb: &TestBoard) -> Index {
    let index = Index::start();
    let mpy = board_says(tb, "import sys; print(sys.implementation._mpy & 255)");
    let greet = index.file(b"from shout import loud\n\ndef hello():\n    return loud('hello')\n");
    let shout_src = "def loud(s):\n    return s.upper() + '!'\n";
    let shout_py = index.file(shout_src.as_bytes());
    let shout_mpy = index.file(&compiled(shout_src));
    for dir in ["py", &mpy] {
        index.package(
            dir,
            "greet",
            &format!(
                r#"{{"hashes":[["greet/__init__.py","{greet}"]],"deps":[["shout","latest"]],"version":"1.0"}}"#
            ),
        );
    }
    index.package(
        "py",
        "shout",
        &format!(r#"{{"hashes":[["shout.py","{shout_py}"]],"deps":[],"version":"0.1"}}"#),
    );
    index.package(
        &mpy,
        "shout",
        &format!(r#"{{"hashes":[["shout.mpy","{shout_mpy}"]],"deps":[],"version":"0.1"}}"#),
    );
    index
}

fn install(tb: &TestBoard, index: &Index, args: &[&str]) -> Output {
    let addr = tb.addr();
    let mut all = vec!["mip", "install", addr.as_str()];
    all.extend(args);
    all.extend(["--index", index.url.as_str()]);
    wm(&tb.password, &all)
}

#[test]
fn a_package_and_its_dependency_install_and_import_then_nothing_is_sent_again() {
    let tb = TestBoard::start();
    let index = greet_index(&tb);
    let o = install(&tb, &index, &["greet"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        err(&o).contains(&format!(
            "installing greet (latest) from {}/package/",
            index.url
        )),
        "{}",
        err(&o)
    );
    assert!(err(&o).contains("\ninstalled 2 file(s), "), "{}", err(&o));
    // The board's mpy version had `.mpy` files: those went.
    assert!(tb.path("/lib/shout.mpy").is_file());
    assert!(!tb.path("/lib/shout.py").exists());
    assert_eq!(
        board_says(&tb, "import greet; print(greet.hello())"),
        "HELLO!"
    );

    let before = index.served.load(Ordering::SeqCst);
    let written = |p: &str| std::fs::metadata(tb.path(p)).unwrap().modified().unwrap();
    let was = (written("/lib/shout.mpy"), written("/lib/greet/__init__.py"));
    let o = install(&tb, &index, &["greet"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        err(&o).ends_with("installed 0 file(s), 0 B; 2 unchanged (already on the board)"),
        "{}",
        err(&o)
    );
    // Fetched again (the index may have changed), but not sent.
    assert!(index.served.load(Ordering::SeqCst) > before);
    assert!(tb.parts("/lib").is_empty());
    assert_eq!(
        (written("/lib/shout.mpy"), written("/lib/greet/__init__.py")),
        was
    );
}

#[test]
fn sources_when_asked_and_into_another_directory() {
    let tb = TestBoard::start();
    let index = greet_index(&tb);
    let o = install(&tb, &index, &["greet", "--no-mpy", "--target", "/pkgs"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(tb.path("/pkgs/shout.py").is_file());
    assert!(tb.path("/pkgs/greet/__init__.py").is_file());
    assert!(!tb.path("/lib").exists());
    assert_eq!(
        board_says(
            &tb,
            "import sys; sys.path.append('/pkgs'); import greet; print(greet.hello())"
        ),
        "HELLO!"
    );
}

#[test]
fn a_bad_hash_installs_nothing_and_an_unknown_package_names_the_index() {
    let tb = TestBoard::start();
    let index = Index::start();
    let good = index.file(b"A = 1\n");
    let claimed = index.file(b"B = 2\n");
    // The index's file is not what its name says.
    std::fs::write(
        index
            .root
            .path()
            .join(format!("file/{}/{claimed}", &claimed[..2])),
        b"B = 666\n",
    )
    .unwrap();
    index.package(
        "py",
        "broken",
        &format!(r#"{{"hashes":[["broken_a.py","{good}"],["broken_b.py","{claimed}"]]}}"#),
    );
    let o = install(&tb, &index, &["broken", "--no-mpy"]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    let shown = format!("{}/file/{}/{claimed}", index.url, &claimed[..2]);
    assert!(
        err(&o).starts_with(&format!("webrepl-mount: {shown}: its SHA-256 is ")),
        "{}",
        err(&o)
    );
    assert!(
        err(&o).ends_with(&format!(
            "not the {claimed}... the index gives for broken_b.py: refused (nothing was installed)"
        )),
        "{}",
        err(&o)
    );
    assert!(!tb.path("/lib/broken_a.py").exists());
    assert!(!tb.path("/lib").exists() || tb.parts("/lib").is_empty());

    // An index that is not there: said, with the URL, before the board
    // gets anything.
    let gone = Index {
        url: format!("http://127.0.0.1:{}", common::free_port()),
        ..Index::start()
    };
    let o = install(&tb, &gone, &["broken"]);
    assert_eq!(o.status.code(), Some(8), "{}", err(&o));
    let mpy = board_says(&tb, "import sys; print(sys.implementation._mpy & 255)");
    assert!(
        err(&o).starts_with(&format!(
            "webrepl-mount: cannot reach {}/package/{mpy}/broken/latest.json: ",
            gone.url
        )),
        "{}",
        err(&o)
    );

    // A URL that cannot be one is a bad argument, not an unreachable host.
    let o = install(&tb, &index, &["http://127.0.0.1/re po/x.py"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(
        err(&o).starts_with("webrepl-mount: http://127.0.0.1/re po/x.py is no valid URL ("),
        "{}",
        err(&o)
    );

    let o = install(&tb, &index, &["nosuch@2.0"]);
    assert_eq!(o.status.code(), Some(7), "{}", err(&o));
    assert_eq!(
        err(&o),
        format!(
            "webrepl-mount: package nosuch (2.0) not found: the index has no \
             {0}/package/{mpy}/nosuch/2.0.json nor {0}/package/py/nosuch/2.0.json",
            index.url
        )
    );
}

#[test]
fn urls_of_a_package_json_and_of_a_file_install_through_a_mount() {
    let tb = TestBoard::start();
    let index = greet_index(&tb);
    // A package.json at a URL, its file beside it (as on GitHub), and a
    // lone .py file.
    index.put(
        "gh/tool/package.json",
        br#"{"urls":[["tool.py","tool.py"]],"deps":[["shout","latest"]]}"#,
    );
    index.put(
        "gh/tool/tool.py",
        b"from shout import loud\nNAME = loud('tool')\n",
    );
    index.put("single/one.py", b"ONE = 1\n");
    let m = Mount::start(&tb, &tb.addr(), &[]);
    let o = m
        .cmd()
        .arg("mip")
        .arg("install")
        .arg(m.path())
        .arg(format!("{}/gh/tool", index.url))
        .arg(format!("{}/single/one.py", index.url))
        .args(["--index", &index.url])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("\ninstalled 3 file(s), "), "{}", err(&o));
    for f in ["lib/tool.py", "lib/shout.mpy", "lib/one.py"] {
        assert!(m.path().join(f).is_file(), "{f} in the mount");
        eventually(10, &format!("{f} on the board"), || {
            tb.path(&format!("/{f}")).is_file()
        });
    }
    let o = m.exec("import tool, one; print(tool.NAME, one.ONE)");
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "TOOL! 1");
}
