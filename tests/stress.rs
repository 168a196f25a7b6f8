//! Four processes at once on a board as slow as an ESP32: mixed writes,
//! reads, renames, removals and listings, then the board compared byte for
//! byte with a local mirror that ran the same scripts. No deadlock (every
//! process ends within a deadline), no lost byte.

mod common;

use common::{LinkEmu, Mount, TestBoard, random_bytes, sh};
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Instant;

/// A worker's script: deterministic from its seed, valid at every step (it
/// knows which files exist), touching only its own directory `w<k>`.
fn script(k: usize, ops: usize, data: &Path) -> String {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ (k as u64 + 1);
    let mut next = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    let mut files: Vec<String> = Vec::new();
    let mut dirs = vec![String::new()];
    let mut s = format!("set -e\nmkdir -p \"$R/w{k}\"\n");
    for i in 0..ops {
        let dir = dirs[next(dirs.len())].clone();
        match next(20) {
            0..=5 => {
                let name = if files.is_empty() || next(3) > 0 {
                    format!("{dir}f{i}.py")
                } else {
                    files[next(files.len())].clone()
                };
                let _ = writeln!(
                    s,
                    "cp '{}/d{k}_{}' \"$R/w{k}/{name}\"",
                    data.display(),
                    next(8)
                );
                if !files.contains(&name) {
                    files.push(name);
                }
            }
            6..=10 if !files.is_empty() => {
                let _ = writeln!(
                    s,
                    "cat \"$R/w{k}/{}\" > /dev/null",
                    files[next(files.len())]
                );
            }
            11..=13 if !files.is_empty() => {
                let from = files.remove(next(files.len()));
                let to = format!("{dir}r{i}.py");
                let _ = writeln!(s, "mv \"$R/w{k}/{from}\" \"$R/w{k}/{to}\"");
                files.push(to);
            }
            14..=16 => {
                let _ = writeln!(s, "ls -l \"$R/w{k}/{dir}\" > /dev/null");
            }
            17..=18 if !files.is_empty() => {
                let f = files.remove(next(files.len()));
                let _ = writeln!(s, "rm \"$R/w{k}/{f}\"");
            }
            _ => {
                let d = format!("sub{i}/");
                let _ = writeln!(s, "mkdir \"$R/w{k}/{d}\"");
                dirs.push(d);
            }
        }
    }
    s
}

fn run(script: &str, root: &Path) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("R", root)
        .spawn()
        .expect("sh")
}

#[test]
fn four_processes_on_a_slow_link_leave_the_board_byte_for_byte_as_the_mirror() {
    let tb = TestBoard::start();
    let emu = LinkEmu::slow(tb.port);
    let mut m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let mirror = work.path().join("mirror");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&mirror).unwrap();
    for k in 0..4 {
        for j in 0..8 {
            let size = 200 + (k * 8 + j) * 180;
            std::fs::write(
                data.join(format!("d{k}_{j}")),
                random_bytes(size, (k * 8 + j) as u64),
            )
            .unwrap();
        }
    }
    let scripts: Vec<String> = (0..4).map(|k| script(k, 80, &data)).collect();
    for s in &scripts {
        assert!(run(s, &mirror).wait().unwrap().success());
    }
    let started = Instant::now();
    let mut workers: Vec<Child> = scripts.iter().map(|s| run(s, m.path())).collect();
    let ended = common::within(300, || {
        workers.iter_mut().all(|w| w.try_wait().unwrap().is_some())
    });
    assert!(ended, "deadlock? {}", m.status());
    for w in &mut workers {
        assert!(w.wait().unwrap().success(), "a worker failed: {}", m.log());
    }
    eprintln!(
        "four workers done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // What the mount shows, and what the board holds after the last flush.
    sh(&format!(
        "diff -r '{}' '{}'",
        mirror.display(),
        m.path().display()
    ));
    let u = m.unmount();
    assert!(u.status.success(), "{}", String::from_utf8_lossy(&u.stderr));
    // Less the board's id, which the mount writes, and our helpers'
    // file (README).
    sh(&format!(
        "diff -r -x .webrepl-mount-id -x .webrepl-mount-helpers '{}' '{}'",
        mirror.display(),
        tb.root.path().display()
    ));
}
