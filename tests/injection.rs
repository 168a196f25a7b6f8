//! Names that look like code are data, end to end: through the mount, `cp`
//! and `exec`. Names the board cannot hold are refused, never garbled.

mod common;

use common::{Mount, TestBoard};
use std::os::unix::ffi::OsStrExt;
use std::process::Command;

const NAMES: &[&str] = &[
    "it's.py",
    "say \"hi\".py",
    "back\\slash.py",
    "new\nline.py",
    "$(touch PWNED).py",
    "`touch PWNED2`.py",
    "');import os;os.remove('main.py');print('.py",
    "\\x27;raise SystemExit#.py",
];

#[test]
fn hostile_names_travel_as_data_through_the_mount_cp_and_exec() {
    let tb = TestBoard::start();
    std::fs::write(tb.path("/main.py"), "keep\n").unwrap();
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let mp = m.path().to_path_buf();
    for (i, name) in NAMES.iter().enumerate() {
        let body = format!("{i}\n");
        std::fs::write(mp.join(name), &body).unwrap();
        // Closes in a burst return once journaled; the board follows.
        common::eventually(10, &format!("{name:?} on the board"), || {
            std::fs::read(tb.path(&format!("/{name}"))).is_ok_and(|b| b == body.as_bytes())
        });
        let renamed = format!("r {name}");
        std::fs::rename(mp.join(name), mp.join(&renamed)).unwrap();
        assert!(tb.path(&format!("/{renamed}")).exists(), "{renamed:?}");
        let listed: Vec<String> = std::fs::read_dir(&mp)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert!(listed.contains(&renamed), "{renamed:?} not listed");
    }
    // A name that is not UTF-8 cannot be a board name: EINVAL, nothing made.
    let bad = std::ffi::OsStr::from_bytes(b"bad\xff.py");
    let err = std::fs::write(mp.join(bad), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
    // exec through the daemon lists them back exactly.
    let out = m
        .cmd()
        .arg("exec")
        .arg(&mp)
        .arg("import os\nfor n in sorted(os.listdir('/')): print(repr(n))")
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        listing.contains("\"r it's.py\"") && listing.contains("'r new\\nline.py'"),
        "{listing}"
    );
    assert!(m.unmount().status.success());

    // cp, both ways, with the same names.
    let local = tempfile::tempdir().unwrap();
    for name in NAMES {
        std::fs::write(local.path().join(name), name.as_bytes()).unwrap();
    }
    let cp = |args: &[&std::ffi::OsStr]| {
        Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
            .arg("cp")
            .args(args)
            .env("WEBREPL_PASSWORD", &tb.password)
            .output()
            .unwrap()
    };
    let up = cp(&[
        local.path().as_os_str(),
        std::ffi::OsStr::new(&format!("{}:/up", tb.addr())),
        std::ffi::OsStr::new("-r"),
    ]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let back = tempfile::tempdir().unwrap();
    let down = cp(&[
        std::ffi::OsStr::new(&format!("{}:/up", tb.addr())),
        back.path().join("d").as_os_str(),
        std::ffi::OsStr::new("-r"),
    ]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    for name in NAMES {
        assert_eq!(
            std::fs::read(back.path().join("d").join(name)).unwrap(),
            name.as_bytes(),
            "{name:?}"
        );
    }
    assert_eq!(std::fs::read(tb.path("/main.py")).unwrap(), b"keep\n");
    for pwned in ["PWNED", "PWNED2"] {
        assert!(!tb.path(pwned).exists() && !std::path::Path::new(pwned).exists());
    }
}
