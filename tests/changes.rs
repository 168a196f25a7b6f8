//! What changes the board's files behind the mount is noticed: code run at
//! its REPL (`exec`, `term`), and edits made while the mount was away. A
//! save based on an older version never overwrites the board's: both are
//! kept and the save reports an error.

mod common;

use common::{Mount, TestBoard};
use std::io::{Read, Write};
use std::process::Output;

fn exec(m: &Mount, code: &str) -> Output {
    let out = m.exec(code);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// What close(2) says after writing `data` over what `f` holds.
fn rewrite_and_close(mut f: std::fs::File, data: &[u8]) -> std::io::Result<()> {
    use std::io::Seek;
    f.set_len(0)?;
    f.seek(std::io::SeekFrom::Start(0))?;
    f.write_all(data)?;
    common::close(f)
}

#[test]
fn code_run_on_the_board_is_seen_by_the_mount_and_a_stale_save_keeps_both_versions() {
    let tb = TestBoard::start();
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let data = m.path().join("data.txt");
    std::fs::write(&data, "v1\n").unwrap();
    assert_eq!(std::fs::read(&data).unwrap(), b"v1\n");
    // An editor reads the file and keeps it open.
    let mut editor = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&data)
        .unwrap();
    let mut seen = String::new();
    editor.read_to_string(&mut seen).unwrap();
    assert_eq!(seen, "v1\n");
    // Code on the board changes it and makes a new file.
    exec(
        &m,
        "f=open('data.txt','w');f.write('v2-from-board\\n');f.close()\nopen('new.txt','w').write('made on the board\\n')",
    );
    // One listing shows both.
    let names: Vec<String> = std::fs::read_dir(m.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(names.contains(&"new.txt".to_string()), "{names:?}");
    assert_eq!(std::fs::read(&data).unwrap(), b"v2-from-board\n");
    assert_eq!(
        std::fs::read(m.path().join("new.txt")).unwrap(),
        b"made on the board\n"
    );
    // The editor saves what it had: the board's version is kept, the
    // editor's goes beside it, and the save says so.
    let err = rewrite_and_close(editor, b"v1 edited\n").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert_eq!(
        std::fs::read(tb.path("/data.txt")).unwrap(),
        b"v2-from-board\n"
    );
    assert_eq!(
        std::fs::read(tb.path("/data.txt.webrepl-mount-conflict")).unwrap(),
        b"v1 edited\n"
    );
    assert_eq!(
        std::fs::read(m.path().join("data.txt.webrepl-mount-conflict")).unwrap(),
        b"v1 edited\n"
    );
    assert!(
        m.status()
            .contains("conflict: /data.txt changed on the board")
    );
    // An append reads what the board has now and adds to it: no conflict.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&data)
        .unwrap()
        .write_all(b"local\n")
        .unwrap();
    assert_eq!(
        std::fs::read(tb.path("/data.txt")).unwrap(),
        b"v2-from-board\nlocal\n"
    );
    assert!(m.unmount().status.success());
}

#[test]
fn a_daemon_reports_conflicts_in_status_and_its_log() {
    let tb = TestBoard::start();
    let (mut m, out) = Mount::daemon(&tb, &tb.addr(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = m.path().join("cfg.json");
    std::fs::write(&p, "{}\n").unwrap();
    let mut editor = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&p)
        .unwrap();
    let mut seen = String::new();
    editor.read_to_string(&mut seen).unwrap();
    exec(&m, "open('cfg.json','w').write('{\"board\": 1}\\n')");
    // The board's change is noticed (a listing) before the stale save.
    std::fs::read_dir(m.path()).unwrap().for_each(drop);
    assert!(rewrite_and_close(editor, b"{\"mount\": 2}\n").is_err());
    let status = m.status();
    assert!(status.contains("conflict: /cfg.json"), "{status}");
    let log = status
        .lines()
        .find_map(|l| l.strip_prefix("log: "))
        .unwrap_or_else(|| panic!("status names no log: {status}"));
    let text = std::fs::read_to_string(log).unwrap();
    assert!(text.contains("cfg.json changed on the board"), "{text}");
    assert!(m.unmount().status.success());
}

/// A save through another name and a rename (gedit's scratch file, sed -i,
/// VS Code's temp file) over a file that changed on the board since the
/// mount read it keeps both versions, as an in-place save does: the board's
/// stays, the save goes beside it, and the rename says so.
#[test]
fn a_rename_save_over_a_file_changed_on_the_board_keeps_both() {
    let tb = TestBoard::start();
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    for name in ["g.py", "s.py"] {
        std::fs::write(m.path().join(name), "v1\n").unwrap();
        assert_eq!(std::fs::read(m.path().join(name)).unwrap(), b"v1\n");
        // A program on the board rewrites it behind the mount.
        std::fs::write(tb.path(&format!("/{name}")), "v2 from the board\n").unwrap();
    }
    // gedit: a scratch name that stays local, then a rename over the file.
    let scratch = m.path().join(".goutputstream-T3ST");
    std::fs::write(&scratch, "v1 edited\n").unwrap();
    let err = std::fs::rename(&scratch, m.path().join("g.py")).expect_err(&m.log());
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    // sed -i: a temporary file of its own, written and renamed.
    let sed = std::process::Command::new("sed")
        .args(["-i", "s/v1/v1 edited/"])
        .arg(m.path().join("s.py"))
        .output()
        .unwrap();
    assert!(!sed.status.success(), "sed -i said nothing\n{}", m.log());
    for name in ["g.py", "s.py"] {
        assert_eq!(
            std::fs::read(tb.path(&format!("/{name}"))).unwrap(),
            b"v2 from the board\n",
            "{name}"
        );
        assert_eq!(
            std::fs::read(tb.path(&format!("/{name}.webrepl-mount-conflict"))).unwrap(),
            b"v1 edited\n",
            "{name}"
        );
        assert!(
            m.status()
                .contains(&format!("conflict: /{name} changed on the board")),
            "{}",
            m.status()
        );
        // The mount shows the same two files.
        assert_eq!(
            std::fs::read(m.path().join(name)).unwrap(),
            b"v2 from the board\n",
            "{name}"
        );
        assert_eq!(
            std::fs::read(m.path().join(format!("{name}.webrepl-mount-conflict"))).unwrap(),
            b"v1 edited\n",
            "{name}"
        );
    }
    // A conflict dealt with (its copy deleted) leaves `status`.
    std::fs::remove_file(m.path().join("g.py.webrepl-mount-conflict")).unwrap();
    let status = m.status();
    assert!(
        !status.contains("conflict: /g.py") && status.contains("conflict: /s.py"),
        "{status}"
    );
    // vim with a backup: the file is renamed to a local backup name, and a
    // new one is written under its name.
    let v = m.path().join("v.py");
    std::fs::write(&v, "v1\n").unwrap();
    assert_eq!(std::fs::read(&v).unwrap(), b"v1\n");
    std::fs::write(tb.path("/v.py"), "v2 from the board\n").unwrap();
    std::fs::rename(&v, m.path().join("v.py~")).unwrap();
    let err = common::write_and_close(&v, b"v1 edited\n").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert_eq!(
        std::fs::read(tb.path("/v.py")).unwrap(),
        b"v2 from the board\n"
    );
    assert_eq!(
        std::fs::read(tb.path("/v.py.webrepl-mount-conflict")).unwrap(),
        b"v1 edited\n"
    );
    // Over a file the board still has as read, sed -i just works.
    let u = m.path().join("u.py");
    std::fs::write(&u, "v1\n").unwrap();
    assert_eq!(std::fs::read(&u).unwrap(), b"v1\n");
    let sed = std::process::Command::new("sed")
        .args(["-i", "s/v1/v1 edited/"])
        .arg(&u)
        .output()
        .unwrap();
    assert!(sed.status.success(), "{}", m.log());
    assert_eq!(std::fs::read(tb.path("/u.py")).unwrap(), b"v1 edited\n");
    assert!(!tb.path("/u.py.webrepl-mount-conflict").exists());
    assert!(m.unmount().status.success());
}
