//! Idle is idle: a mount nobody uses wakes only for real events.

mod common;

use common::{Mount, TestBoard};
use std::time::Duration;

/// utime + stime of a process, in clock ticks (/proc/PID/stat fields 14
/// and 15, counted after the command name, which may hold spaces).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after_name = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // After the name, field 3 (state) is index 0: utime is 14, stime 15.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

#[test]
fn an_idle_mount_uses_no_cpu_after_a_file_is_copied_in() {
    let tb = TestBoard::start();
    let m = Mount::start(&tb, &tb.addr(), &[]);
    // A copy runs programs of ours, which leave the raw prompt ours with
    // no terminal to hand it to: the state that once spun.
    common::write_and_close(&m.path().join("idle.py"), b"x = 1\n").expect("write");
    common::eventually(20, "the file on the board", || {
        std::fs::read(tb.path("/idle.py")).is_ok_and(|d| d == b"x = 1\n")
    });
    std::thread::sleep(Duration::from_secs(1));
    let before = cpu_ticks(m.pid());
    std::thread::sleep(Duration::from_secs(5));
    let used = cpu_ticks(m.pid()) - before;
    eprintln!("idle mount: {used} ticks of CPU in 5 s");
    // 100 ticks a second: 0.1 s of CPU in 5 s.
    assert!(used < 10, "the idle mount used {used} ticks of CPU in 5 s");
}
