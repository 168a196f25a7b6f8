//! The session core against the simulated board and link, in simulated
//! time: slow links, a small input ring, keys arriving mid-transfer, links
//! that break, boards that stop answering.

use super::machine::{Config, LinkProgram, Request};
use super::share;
use super::shared::{OpId, Outcome};
use super::sim::Pair;
use crate::error::{Error, Lost};
use bytes::Bytes;
use std::time::Duration;

const ESP32: f64 = 20_000.0;
const RTT: Duration = Duration::from_millis(10);

fn cfg(timeout_s: u64) -> Config {
    Config {
        timeout: Duration::from_secs(timeout_s),
        interrupt: false,
        get_window: 64,
        alone: false,
    }
}

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn program(code: &str) -> Request {
    Request::Program {
        code: code.as_bytes().to_vec(),
        bounded: true,
        idempotent: true,
        user: false,
        patience: Duration::from_secs(10),
    }
}

/// Uploads of `n` files of `size` bytes, `/{stem}{i}.bin`, submitted at once.
/// The terminal ends with `notice`; then the board is back: what was
/// typed to it from then on.
fn said_then_back(p: &mut Pair, notice: &str) -> Vec<u8> {
    assert!(p.shown().ends_with(notice), "{:?}", p.shown());
    let typed = p.board.typed.len();
    p.reachable = true;
    assert!(p.run_until(Duration::from_secs(10), |p| p.linked));
    p.run_for(Duration::from_secs(2));
    p.board.typed[typed..].to_vec()
}

fn put_files(p: &mut Pair, n: usize, size: usize, stem: &str) -> Vec<OpId> {
    (0..n)
        .map(|i| {
            p.core.submit(
                p.now,
                Request::Put {
                    path: format!("/{stem}{i}.bin").into_bytes(),
                    data: Bytes::from(data(size, i as u8)),
                    link: None,
                },
            )
        })
        .collect()
}

/// A GET of `path` (`size` bytes) submitted now.
fn submit_get(p: &mut Pair, path: &[u8], size: u64) -> OpId {
    p.core.submit(
        p.now,
        Request::Get {
            path: path.to_vec(),
            size,
        },
    )
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[test]
fn long_uploads_on_a_slow_link_never_time_out_and_fill_the_link() {
    for size in [300_000, 1_000_000] {
        let mut p = Pair::new(cfg(10), ESP32, RTT);
        let d = data(size, 1);
        let op = p.core.submit(
            p.now,
            Request::Put {
                path: b"/big.bin".to_vec(),
                data: Bytes::from(d.clone()),
                link: None,
            },
        );
        let r = p.wait(op, Duration::from_secs(120));
        assert!(matches!(r, Ok(Outcome::Put)), "{r:?}");
        assert_eq!(p.board.files.get(&b"/big.bin"[..]), Some(&d));
        let share = size as f64 / secs(p.elapsed()) / ESP32;
        assert!(share > 0.9, "{size} B at {:.0}% of the link", share * 100.0);
    }
}

#[test]
fn a_paste_longer_than_the_boards_input_buffer_arrives_whole() {
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    p.core.set_terminals(p.now, 1);
    assert!(p.run_until(Duration::from_secs(5), |p| p.core.is_up()));
    let line: Vec<u8> = (0..3000).map(|i| b'a' + (i % 26) as u8).collect();
    p.core.keys(p.now, &line);
    let whole = p.run_until(Duration::from_secs(20), |p| p.board.typed.ends_with(&line));
    let got = p.board.typed.len();
    assert!(
        whole,
        "{got} bytes reached the board's 255-byte ring of 3000"
    );
    // Paced by the board's echo, not by a fixed rate: well under a second.
    assert!(p.elapsed() < Duration::from_secs(2), "{:?}", p.elapsed());
}

#[test]
fn keys_typed_during_a_download_are_echoed_long_before_it_ends() {
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    p.board.files.insert(b"/big.bin".to_vec(), data(200_000, 2));
    p.core.set_terminals(p.now, 1);
    let get = submit_get(&mut p, b"/big.bin", 200_000);
    p.run_for(Duration::from_secs(2));
    let typed = p.now;
    p.core.keys(p.now, b"print(7*7)");
    assert!(p.run_until(Duration::from_secs(20), |p| {
        p.shown().contains("print(7*7)")
    }));
    let echo = p.now - typed;
    assert!(!p.done.contains_key(&get), "the download ended first");
    assert!(echo < Duration::from_millis(150), "echo after {echo:?}");
    let r = p.wait(get, Duration::from_secs(30));
    assert!(matches!(r, Ok(Outcome::Got(200_000))), "{r:?}");
    assert_eq!(p.chunks[&get], data(200_000, 2));
    // The download itself went at the link's speed.
    assert!(
        secs(p.elapsed()) < 200_000.0 / ESP32 * 1.15,
        "{:?}",
        p.elapsed()
    );
}

#[test]
fn a_queued_program_starts_as_soon_as_the_one_before_ends() {
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    let first = p.core.submit(p.now, program("print(1)"));
    assert!(p.wait(first, Duration::from_secs(10)).is_ok());
    // Two at once: the second waits for the first, then goes at once.
    let started = p.now;
    let a = p.core.submit(p.now, program("print(2)"));
    let b = p.core.submit(p.now, program("print(3)"));
    assert!(p.wait(a, Duration::from_secs(10)).is_ok());
    let between = p.now;
    match p.wait(b, Duration::from_secs(10)) {
        Ok(Outcome::Output(o)) => assert_eq!(o.stdout, b"3\n"),
        r => panic!("{r:?}"),
    }
    let second = p.now - between;
    assert!(
        second < RTT * 4,
        "the second program took {second:?} after the first ({:?} in all)",
        p.now - started
    );
}

#[test]
fn a_session_goes_idle_after_a_program_with_no_terminal_attached() {
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    let op = p.core.submit(p.now, program("print(1)"));
    assert!(p.wait(op, Duration::from_secs(10)).is_ok());
    // The raw prompt stays ours with nobody to hand it to: nothing is due.
    p.assert_goes_idle(Duration::ZERO, 0);
    assert_eq!(p.core.poll_timeout(), None);
    // A terminal attached later gets the friendly prompt, then all is quiet.
    p.core.set_terminals(p.now, 1);
    assert!(p.run_until(Duration::from_secs(2), |p| p.board.typed.ends_with(b"\x02")));
    p.assert_goes_idle(Duration::from_secs(1), 0);
}

#[test]
fn a_program_runs_while_a_download_is_in_flight() {
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    p.board.files.insert(b"/big.bin".to_vec(), data(200_000, 3));
    let get = submit_get(&mut p, b"/big.bin", 200_000);
    p.run_for(Duration::from_secs(1));
    let asked = p.now;
    let prog = p.core.submit(p.now, program("print(42)"));
    match p.wait(prog, Duration::from_secs(20)) {
        Ok(Outcome::Output(o)) => assert_eq!(o.stdout, b"42\n"),
        r => panic!("{r:?}"),
    }
    assert!(
        !p.done.contains_key(&get),
        "the program waited for the download"
    );
    assert!(
        p.now - asked < Duration::from_millis(500),
        "{:?}",
        p.now - asked
    );
    assert!(matches!(
        p.wait(get, Duration::from_secs(30)),
        Ok(Outcome::Got(_))
    ));
}

#[test]
fn small_transfers_go_before_big_ones_that_have_not_started() {
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    p.board.files.insert(b"/small.py".to_vec(), data(3000, 4));
    let first = p.core.submit(
        p.now,
        Request::Put {
            path: b"/a.bin".to_vec(),
            data: Bytes::from(data(50_000, 5)),
            link: None,
        },
    );
    // Under way: the ones after it are queued.
    p.run_for(Duration::from_millis(100));
    let big = p.core.submit(
        p.now,
        Request::Put {
            path: b"/b.bin".to_vec(),
            data: Bytes::from(data(1_000_000, 6)),
            link: None,
        },
    );
    let small = submit_get(&mut p, b"/small.py", 3000);
    assert!(p.run_until(Duration::from_secs(120), |p| p.done.len() == 3));
    let at = |op| p.done[&op].0;
    let t = |op| at(op) - p.start;
    assert!(
        at(first) < at(small) && at(small) < at(big),
        "first {:?} small {:?} big {:?}: {:?}",
        t(first),
        t(small),
        t(big),
        p.done
    );
    // It did not wait for the megabyte.
    assert!(secs(at(small) - p.start) < 5.0, "{:?}", at(small) - p.start);
    assert_eq!(p.chunks[&small], data(3000, 4));
}

#[test]
fn programs_get_through_a_255_byte_input_ring_with_raw_paste() {
    let mut p = Pair::new(cfg(10), 0.0, RTT);
    let mut code: String = (0..300).map(|i| format!("v{i}={i}\n")).collect();
    code.push_str("print(7)");
    assert!(code.len() > 2000);
    let op = p.core.submit(p.now, program(&code));
    match p.wait(op, Duration::from_secs(10)) {
        Ok(Outcome::Output(o)) => assert_eq!(o.stdout, b"7\n"),
        r => panic!("{r:?}"),
    }
    // The board read every byte of it, none lost to the ring.
    let typed = String::from_utf8_lossy(&p.board.typed).into_owned();
    assert!(typed.contains(&code), "the board lost bytes of the program");
    // A second program knows the window and travels with its request.
    let op = p.core.submit(p.now, program("print(8)"));
    assert!(matches!(
        p.wait(op, Duration::from_secs(10)),
        Ok(Outcome::Output(_))
    ));
}

#[test]
fn a_lost_link_is_waited_for_up_to_the_timeout_with_growing_pauses() {
    let mut p = Pair::new(cfg(3), 0.0, RTT);
    p.board.files.insert(b"/f".to_vec(), data(100, 7));
    p.reachable = false;
    p.cut();
    let op = submit_get(&mut p, b"/f", 100);
    let r = p.wait(op, Duration::from_secs(10));
    assert!(
        matches!(&r, Err(Error::Unreachable { waited: Some(t), .. }) if *t == Duration::from_secs(3)),
        "{r:?}"
    );
    let waited = p.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_millis(3100),
        "{waited:?}"
    );
    // 0, 0.1, 0.3, 0.7, 1.5 s: pauses that double, not a tight loop.
    assert!((4..=6).contains(&p.connects), "{} attempts", p.connects);
    // Nobody waits: no more attempts.
    let before = p.connects;
    p.run_for(Duration::from_secs(30));
    assert_eq!(p.connects, before);
    // Back again: the next operation connects.
    p.reachable = true;
    let op = submit_get(&mut p, b"/f", 100);
    assert!(matches!(
        p.wait(op, Duration::from_secs(5)),
        Ok(Outcome::Got(100))
    ));
}

/// A board that logs us in, then breaks every link at once (endless
/// fragments, garbage): reconnects back off as failed connects do, and
/// what waits ends within the time-out instead of looping for ever.
#[test]
fn links_that_die_young_back_off_and_end_within_the_timeout() {
    let mut p = Pair::new(cfg(3), 0.0, RTT);
    p.board.files.insert(b"/f".to_vec(), data(100, 7));
    p.cut();
    let op = p.core.submit(
        p.now,
        Request::Program {
            code: b"print(1)".to_vec(),
            bounded: true,
            idempotent: true,
            user: false,
            patience: Duration::from_secs(3),
        },
    );
    let start = p.now;
    let mut done = None;
    while p.now - start < Duration::from_secs(20) && done.is_none() {
        let before = p.core.generation();
        p.run_until(Duration::from_secs(1), |p| p.core.generation() > before);
        if p.core.generation() > before {
            p.cut();
        }
        done = p.done.remove(&op).map(|(_, r)| r);
    }
    let waited = p.now - start;
    assert!(matches!(done, Some(Err(_))), "{done:?} after {waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert!(p.connects <= 8, "{} connects in {waited:?}", p.connects);
}

#[test]
fn a_link_closed_while_idle_is_not_a_fault_until_it_is_needed() {
    let mut p = Pair::new(cfg(3), 0.0, RTT);
    p.board.files.insert(b"/f".to_vec(), data(100, 7));
    p.cut();
    let st = p.core.status(p.now);
    assert!(!st.link_up && st.idle_closed, "{st:?}");
    // Needed while the board is away: a fault again.
    p.reachable = false;
    let get = || Request::Get {
        path: b"/f".to_vec(),
        size: 100,
    };
    let op = p.core.submit(p.now, get());
    p.run_for(Duration::from_millis(500));
    assert!(!p.core.status(p.now).idle_closed);
    p.reachable = true;
    assert!(matches!(
        p.wait(op, Duration::from_secs(5)),
        Ok(Outcome::Got(100))
    ));
    // Cut in the middle of a transfer: a fault at once.
    let op = p.core.submit(p.now, get());
    p.cut();
    assert!(!p.core.status(p.now).idle_closed);
    assert!(matches!(
        p.wait(op, Duration::from_secs(5)),
        Ok(Outcome::Got(100))
    ));
}

#[test]
fn a_transfer_cut_off_starts_again_on_the_next_link() {
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    let d = data(100_000, 8);
    let op = p.core.submit(
        p.now,
        Request::Put {
            path: b"/up.bin".to_vec(),
            data: Bytes::from(d.clone()),
            link: None,
        },
    );
    p.run_for(Duration::from_secs(2));
    p.cut();
    assert!(matches!(
        p.wait(op, Duration::from_secs(30)),
        Ok(Outcome::Put)
    ));
    assert_eq!(p.board.files.get(&b"/up.bin"[..]), Some(&d));
    assert_eq!(p.core.generation(), 1);
}

/// An upload tied to the link its board was checked on never goes on
/// another: cut under way, or queued while the link is down, it fails
/// with `Resync` and nothing of it reaches the board on the new link (a
/// new link may reach another board at the same address).
#[test]
fn an_upload_tied_to_a_link_is_never_sent_on_another() {
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    let tied = |p: &mut Pair, name: &str, link| {
        p.core.submit(
            p.now,
            Request::Put {
                path: name.as_bytes().to_vec(),
                data: Bytes::from(data(100_000, 3)),
                link: Some(link),
            },
        )
    };
    let link = p.core.generation();
    let cut_under_way = tied(&mut p, "/a.bin", link);
    p.run_for(Duration::from_secs(2));
    p.cut();
    let queued_while_down = tied(&mut p, "/b.bin", link);
    for op in [cut_under_way, queued_while_down] {
        let r = p.wait(op, Duration::from_secs(30));
        assert!(matches!(r, Err(Error::LinkLost(Lost::Resync))), "{r:?}");
    }
    assert!(p.board.files.is_empty(), "{:?}", p.board.files.keys());
    // Tied to the link that is up: it goes.
    p.core.keys(p.now, b"");
    let now_link = p.core.generation();
    assert_ne!(now_link, link);
    let op = tied(&mut p, "/c.bin", now_link);
    assert!(matches!(
        p.wait(op, Duration::from_secs(30)),
        Ok(Outcome::Put)
    ));
}

#[test]
fn a_half_typed_line_is_cleared_for_a_program_and_typed_back_unseen() {
    let mut p = Pair::new(cfg(10), 0.0, RTT);
    p.core.set_terminals(p.now, 1);
    // The first key tells the session where the REPL stands.
    p.core.keys(p.now, b"\r");
    assert!(p.run_until(Duration::from_secs(2), |p| p.shown().ends_with(">>> ")));
    p.core.keys(p.now, b"zz = 6");
    assert!(p.run_until(Duration::from_secs(2), |p| p.shown().ends_with("zz = 6")));
    let shown_before = p.shown();
    let op = p.core.submit(p.now, program("print(5)"));
    assert!(matches!(
        p.wait(op, Duration::from_secs(5)),
        Ok(Outcome::Output(_))
    ));
    // Handed back with the line as it was; the person saw none of it.
    assert!(p.run_until(Duration::from_secs(5), |p| p.board.line == b"zz = 6"));
    p.run_for(Duration::from_millis(500));
    assert_eq!(p.shown(), shown_before, "the terminal saw the mount's work");
    // Enter runs the whole line.
    p.core.keys(p.now, b"\r");
    assert!(p.run_until(Duration::from_secs(2), |p| {
        p.board.typed.ends_with(b"zz = 6\r")
    }));
    assert!(p.run_until(Duration::from_secs(2), |p| p.changes == 1));
}

#[test]
fn a_persons_program_keeps_the_repl_and_programs_wait_for_it() {
    let mut p = Pair::new(cfg(10), 0.0, RTT);
    p.core.set_terminals(p.now, 1);
    p.core.keys(p.now, b"\r");
    assert!(p.run_until(Duration::from_secs(2), |p| p.shown().ends_with(">>> ")));
    p.core.keys(p.now, b"#sleep 2000\r");
    p.run_for(Duration::from_millis(300));
    let patient = p.core.submit(p.now, program("print(1)"));
    let hasty = p.core.submit(
        p.now,
        Request::Program {
            code: b"print(2)".to_vec(),
            bounded: true,
            idempotent: true,
            user: false,
            patience: Duration::from_millis(500),
        },
    );
    let r = p.wait(hasty, Duration::from_secs(5));
    assert!(matches!(r, Err(Error::Running { .. })), "{r:?}");
    assert!(p.core.status(p.now).waiting.is_some(), "status says why");
    let r = p.wait(patient, Duration::from_secs(5));
    assert!(matches!(r, Ok(Outcome::Output(_))), "{r:?}");
    // It ran after the person's program, which was not interrupted.
    assert!(secs(p.elapsed()) >= 2.0);
    assert!(!p.board.typed.contains(&0x03));
}

#[test]
fn a_board_that_goes_silent_is_a_dead_link_after_the_timeout() {
    let mut p = Pair::new(cfg(3), 0.0, RTT);
    p.board.runner = |code| {
        if code.starts_with(b"#hang") {
            (Vec::new(), Duration::from_secs(3600))
        } else {
            super::sim::run_code(code)
        }
    };
    // Raw mode first, so that the silence falls in our program.
    let op = p.core.submit(p.now, program("print(1)"));
    assert!(p.wait(op, Duration::from_secs(5)).is_ok());
    let start = p.now;
    let op = p.core.submit(
        p.now,
        Request::Program {
            code: b"#hang".to_vec(),
            bounded: true,
            idempotent: false,
            user: false,
            patience: Duration::from_secs(3),
        },
    );
    let r = p.wait(op, Duration::from_secs(20));
    assert!(matches!(r, Err(Error::LinkLost(_))), "{r:?}");
    let after = p.now - start;
    assert!(
        after >= Duration::from_secs(3) && after < Duration::from_secs(4),
        "{after:?}"
    );
}

/// A transfer starts in `poll_transmit`, not in a step: its no-progress
/// timer must be armed there too, or a board that stops answering leaves
/// the session asleep for good (a `cp --timeout 1` hung for minutes).
#[test]
fn a_board_that_stops_answering_a_get_fails_it_after_the_timeout() {
    let mut p = Pair::new(cfg(2), ESP32, RTT);
    p.board.files.insert(b"/f.bin".to_vec(), data(10_000, 3));
    // One chunk, then nothing more.
    p.board.chunk_delay = Duration::from_secs(3600);
    let start = p.now;
    let op = submit_get(&mut p, b"/f.bin", 10_000);
    let r = p.wait(op, Duration::from_secs(30));
    assert!(r.is_err(), "{r:?}");
    assert!(
        p.now - start < Duration::from_secs(15),
        "{:?}",
        p.now - start
    );
}

#[test]
fn a_file_that_shrank_during_a_get_resynchronises_the_link() {
    let mut p = Pair::new(cfg(10), 0.0, RTT);
    p.board.files.insert(b"/f".to_vec(), data(100, 9));
    // A first download opens the window: many acks in flight.
    p.board.files.insert(b"/big".to_vec(), data(100_000, 12));
    let op = submit_get(&mut p, b"/big", 100_000);
    assert!(matches!(
        p.wait(op, Duration::from_secs(5)),
        Ok(Outcome::Got(100_000))
    ));
    let op = submit_get(&mut p, b"/f", 20_000);
    assert!(matches!(
        p.wait(op, Duration::from_secs(5)),
        Ok(Outcome::Got(100))
    ));
    let d = data(5000, 10);
    let op = p.core.submit(
        p.now,
        Request::Put {
            path: b"/g".to_vec(),
            data: Bytes::from(d.clone()),
            link: None,
        },
    );
    assert!(matches!(
        p.wait(op, Duration::from_secs(5)),
        Ok(Outcome::Put)
    ));
    assert_eq!(p.board.files.get(&b"/g"[..]), Some(&d));
    assert_eq!(p.core.generation(), 1, "resynchronised on a new link");
}

#[test]
fn an_esp8266_pausing_per_chunk_still_echoes_keys_promptly() {
    let mut p = Pair::new(cfg(10), 0.0, RTT);
    p.board.chunk_delay = Duration::from_millis(20);
    p.board
        .files
        .insert(b"/big.bin".to_vec(), data(100_000, 11));
    p.core.set_terminals(p.now, 1);
    let get = submit_get(&mut p, b"/big.bin", 100_000);
    p.run_for(Duration::from_secs(2));
    let typed = p.now;
    p.core.keys(p.now, b"x");
    assert!(p.run_until(Duration::from_secs(20), |p| p.shown().contains('x')));
    assert!(
        p.now - typed < Duration::from_millis(150),
        "{:?}",
        p.now - typed
    );
    assert!(matches!(
        p.wait(get, Duration::from_secs(30)),
        Ok(Outcome::Got(100_000))
    ));
    // The board's pace: 256 bytes per 20 ms.
    let rate = 100_000.0 / secs(p.elapsed());
    assert!(rate > 0.9 * 12_800.0, "{rate:.0} B/s");
}

#[test]
fn pipelined_uploads_follow_each_other_without_waiting_for_replies() {
    let mut p = Pair::new(cfg(10), 0.0, Duration::from_millis(50));
    let ops = put_files(&mut p, 10, 2700, "m");
    assert!(p.run_until(Duration::from_secs(10), |p| {
        ops.iter().all(|o| p.done.contains_key(o))
    }));
    // Ten files in far less than ten round trips each.
    assert!(
        p.elapsed() < Duration::from_millis(300),
        "{:?}",
        p.elapsed()
    );
    for i in 0..10 {
        assert_eq!(
            p.board.files[format!("/m{i}.bin").as_bytes()],
            data(2700, i as u8)
        );
    }
}

#[test]
fn a_board_busy_when_we_connect_answers_our_ctrl_a_later_unseen() {
    let mut p = Pair::new(cfg(10), 0.0, RTT);
    p.core.set_terminals(p.now, 1);
    p.board.busy_for(p.now, Duration::from_secs(3));
    let op = p.core.submit(p.now, program("print(3)"));
    match p.wait(op, Duration::from_secs(8)) {
        Ok(Outcome::Output(o)) => assert_eq!(o.stdout, b"3\n"),
        r => panic!("{r:?}"),
    }
    assert!(secs(p.elapsed()) >= 3.0, "it did not wait for the program");
    assert!(
        !p.board.typed.contains(&0x03),
        "the program was interrupted"
    );
    // The person saw the program's output, not our raw REPL.
    p.run_for(Duration::from_secs(1));
    let shown = p.shown();
    assert!(
        shown.contains("done") && !shown.contains("raw REPL"),
        "{shown:?}"
    );
}

#[test]
fn a_compound_statement_half_typed_is_typed_back_line_by_line() {
    let mut p = Pair::new(cfg(10), 0.0, RTT);
    p.core.set_terminals(p.now, 1);
    p.core.keys(p.now, b"\r");
    assert!(p.run_until(Duration::from_secs(2), |p| p.shown().ends_with(">>> ")));
    // Two lines of a `for`: the board auto-indents the second.
    p.core.keys(p.now, b"for i in x:\rpri");
    assert!(p.run_until(Duration::from_secs(2), |p| p.shown().ends_with("pri")));
    let shown_before = p.shown();
    assert!(shown_before.ends_with("...     pri"), "{shown_before:?}");
    let op = p.core.submit(p.now, program("print(5)"));
    assert!(matches!(
        p.wait(op, Duration::from_secs(5)),
        Ok(Outcome::Output(_))
    ));
    // The session cleared the block for its program, then typed both
    // lines back; the person saw none of it.
    assert!(p.run_until(Duration::from_secs(5), |p| {
        p.board.block == [b"for i in x:".to_vec()] && p.board.line == b"    pri"
    }));
    p.run_for(Duration::from_millis(500));
    assert_eq!(p.shown(), shown_before, "the terminal saw the mount's work");
    assert!(p.board.typed.contains(&0x03), "the block was cleared");
}

#[test]
fn a_line_the_board_does_not_type_back_in_time_is_given_up_and_its_text_shown() {
    let mut p = Pair::new(cfg(10), 0.0, RTT);
    p.core.set_terminals(p.now, 1);
    p.core.keys(p.now, b"\r");
    assert!(p.run_until(Duration::from_secs(2), |p| p.shown().ends_with(">>> ")));
    p.core.keys(p.now, b"zz = 6");
    assert!(p.run_until(Duration::from_secs(2), |p| p.shown().ends_with("zz = 6")));
    let line_before = p.core.screen_line();
    let shown_before = p.shown();
    let op = p.core.submit(p.now, program("print(5)"));
    assert!(matches!(
        p.wait(op, Duration::from_secs(5)),
        Ok(Outcome::Output(_))
    ));
    // The board takes the Ctrl-B that gives the prompt back, then is busy
    // for 5 s: the line typed back waits in its input, unechoed.
    assert!(p.run_until(Duration::from_secs(2), |p| p.board.typed.ends_with(b"\x02")));
    p.board.busy_for(p.now, Duration::from_secs(5));
    p.run_for(Duration::from_millis(2500));
    assert_eq!(p.core.screen_line(), line_before, "still typing it back");
    // Past `RESTORE` (3 s): given up, the line is what the board shows
    // (an empty prompt: no echo yet), and what it prints is the person's.
    p.run_for(Duration::from_millis(1000));
    assert_ne!(p.core.screen_line(), line_before, "not given up");
    assert!(p.run_until(Duration::from_secs(5), |p| p.board.line == b"zz = 6"));
    p.run_for(Duration::from_millis(500));
    let after = &p.shown()[shown_before.len()..];
    assert!(
        after.contains("done") && after.ends_with("zz = 6"),
        "{after:?}"
    );
}

#[test]
fn keys_typed_while_our_program_runs_reach_the_board_after_it_in_order() {
    let mut p = Pair::new(cfg(10), 0.0, RTT);
    p.core.set_terminals(p.now, 1);
    p.core.keys(p.now, b"\r");
    assert!(p.run_until(Duration::from_secs(2), |p| p.shown().ends_with(">>> ")));
    let op = p.core.submit(p.now, program("#sleep 500\nprint(1)"));
    p.run_for(Duration::from_millis(200));
    p.core.keys(p.now, b"ab");
    p.run_for(Duration::from_millis(10));
    p.core.keys(p.now, b"c");
    assert!(p.wait(op, Duration::from_secs(3)).is_ok());
    assert!(p.run_until(Duration::from_secs(3), |p| p.shown().ends_with("abc")));
    assert_eq!(p.board.line, b"abc");
}

/// A person's program runs as long as it likes, but only once the board
/// has taken it: a board that takes the paste and never answers its end
/// fails the program within the time-out, in words (`exec` waited for
/// ever, silent).
#[test]
fn a_board_that_never_answers_a_pastes_end_fails_a_persons_program_in_time() {
    let mut p = Pair::new(cfg(3), 0.0, RTT);
    p.board.mute_paste_end = true;
    let op = p.core.submit(
        p.now,
        Request::Program {
            code: b"print(1)".to_vec(),
            bounded: false,
            idempotent: false,
            user: true,
            patience: Duration::from_secs(10),
        },
    );
    let r = p.wait(op, Duration::from_secs(10));
    assert!(r.is_err(), "{r:?}");
    assert!(p.elapsed() < Duration::from_secs(8), "{:?}", p.elapsed());
}

#[test]
fn a_persons_program_is_stopped_when_its_caller_gives_up() {
    let mut p = Pair::new(cfg(10), 0.0, RTT);
    let op = p.core.submit(
        p.now,
        Request::Program {
            code: b"#sleep 100000".to_vec(),
            bounded: false,
            idempotent: false,
            user: true,
            patience: Duration::from_secs(10),
        },
    );
    p.run_for(Duration::from_secs(2));
    assert!(!p.done.contains_key(&op));
    p.core.cancel(p.now, op);
    match p.wait(op, Duration::from_secs(2)) {
        Ok(Outcome::Output(o)) => {
            assert!(String::from_utf8_lossy(&o.stderr).contains("KeyboardInterrupt"))
        }
        r => panic!("{r:?}"),
    }
    // The REPL is ours again at once.
    let op = p.core.submit(p.now, program("print(9)"));
    assert!(p.wait(op, Duration::from_secs(2)).is_ok());
}

#[test]
fn beside_a_persons_exec_what_may_not_wait_fails_at_once_and_the_rest_waits() {
    let mut p = Pair::new(cfg(10), 0.0, RTT);
    let exec = p.core.submit(
        p.now,
        Request::Program {
            code: b"#sleep 30000".to_vec(),
            bounded: false,
            idempotent: false,
            user: true,
            patience: Duration::from_secs(10),
        },
    );
    p.run_for(Duration::from_secs(1));
    let hasty = p.core.submit(p.now, hasty("print(3)"));
    let patient = p.core.submit(p.now, program("print(4)"));
    let r = p.wait(hasty, Duration::from_secs(2));
    assert!(matches!(r, Err(Error::Running { .. })), "{r:?}");
    assert!(!p.done.contains_key(&exec) && !p.done.contains_key(&patient));
    assert!(
        !p.board.typed.contains(&0x03),
        "the person's program was interrupted"
    );
    match p.wait(patient, Duration::from_secs(40)) {
        Ok(Outcome::Output(o)) => assert_eq!(o.stdout, b"4\n"),
        r => panic!("{r:?}"),
    }
    assert!(p.done.contains_key(&exec));
}

#[test]
fn a_soft_reset_waits_for_transfers_and_ends_the_link() {
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    let put = p.core.submit(
        p.now,
        Request::Put {
            path: b"/main.py".to_vec(),
            data: Bytes::from(data(20_000, 13)),
            link: None,
        },
    );
    p.run_for(Duration::from_millis(100));
    let reset = p.core.submit(p.now, Request::Reset);
    assert!(matches!(
        p.wait(reset, Duration::from_secs(5)),
        Ok(Outcome::Done)
    ));
    assert!(p.done.contains_key(&put), "reset before the upload ended");
    assert!(p.board.files.contains_key(&b"/main.py"[..]));
    assert_eq!(p.changes, 1);
    let op = p.core.submit(p.now, program("print(4)"));
    assert!(p.wait(op, Duration::from_secs(5)).is_ok());
    assert_eq!(p.core.generation(), 1, "a new link after the reset");
}

#[test]
fn no_text_goes_in_the_middle_of_an_upload_where_the_board_would_take_it_as_data() {
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    p.core.set_terminals(p.now, 1);
    assert!(p.run_until(Duration::from_secs(5), |p| p.core.is_up()));
    let puts = put_files(&mut p, 6, 6000, "f");
    // Keys and programs arrive while the files are on the wire (once the
    // link's rate is known, so that the socket holds 50 ms of it).
    p.run_for(Duration::from_millis(700));
    let typed = p.now;
    p.core.keys(p.now, b"7*7");
    assert!(p.run_until(Duration::from_secs(5), |p| p.shown().contains("7*7")));
    assert!(!p.done.contains_key(&puts[5]), "the uploads ended first");
    let echo = p.now - typed;
    p.core.keys(p.now, b"\r");
    let progs: Vec<_> = (0..3)
        .map(|i| p.core.submit(p.now, program(&format!("print({})", 2 * i))))
        .collect();
    for (i, op) in progs.into_iter().enumerate() {
        match p.wait(op, Duration::from_secs(30)) {
            Ok(Outcome::Output(o)) => assert_eq!(o.stdout, format!("{}\n", 2 * i).as_bytes()),
            r => panic!("program {i}: {r:?}"),
        }
    }
    for (i, &op) in puts.iter().enumerate() {
        let r = p.wait(op, Duration::from_secs(30));
        assert!(matches!(r, Ok(Outcome::Put)), "{r:?}");
        assert_eq!(
            p.board.files[format!("/f{i}.bin").as_bytes()],
            data(6000, i as u8),
            "file {i}"
        );
    }
    assert_eq!(p.board.eaten, 0, "text the board took as file data");
    assert!(p.board.typed.windows(4).any(|w| w == b"7*7\r"));
    // A key waits for the file on the wire at most (6 KB at 20 KB/s).
    assert!(echo < Duration::from_millis(400), "echo after {echo:?}");
}

#[test]
fn a_program_queued_as_held_keys_go_out_waits_for_their_echo() {
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    p.core.set_terminals(p.now, 1);
    p.core.keys(p.now, b"\r");
    assert!(p.run_until(Duration::from_secs(2), |p| p.shown().ends_with(">>> ")));
    let first = p.core.submit(p.now, program("#sleep 500\nprint(1)"));
    p.run_for(Duration::from_millis(200));
    p.core.keys(p.now, b"abc");
    assert!(p.wait(first, Duration::from_secs(3)).is_ok());
    // The keys go out as the person's turn comes back; a program queued
    // meanwhile must not take them for a settled, empty line (a Ctrl-A
    // into "abc" only moves the cursor, and the raw REPL never comes).
    let second = p.core.submit(p.now, program("print(2)"));
    let started = p.now;
    match p.wait(second, Duration::from_secs(10)) {
        Ok(Outcome::Output(o)) => assert_eq!(o.stdout, b"2\n"),
        r => panic!("{r:?}"),
    }
    assert!(
        p.now - started < Duration::from_secs(1),
        "{:?}",
        p.now - started
    );
    assert!(p.run_until(Duration::from_secs(3), |p| p.board.line == b"abc"));
}

#[test]
fn keys_typed_while_the_board_is_unreachable_are_dropped_and_the_terminal_says_so() {
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    p.core.set_terminals(p.now, 1);
    p.core.keys(p.now, b"\r");
    assert!(p.run_until(Duration::from_secs(2), |p| p.shown().ends_with(">>> ")));
    p.reachable = false;
    p.cut();
    assert!(p.run_until(Duration::from_secs(2), |p| p.connects >= 1));
    p.core.keys(p.now, b"print(9)");
    p.run_for(Duration::from_millis(300));
    p.core.keys(p.now, b"\r");
    p.run_for(Duration::from_millis(10));
    let later = said_then_back(&mut p, "[webrepl-mount: board unreachable, 9 keys dropped]");
    assert!(
        !String::from_utf8_lossy(&later).contains("print(9)"),
        "dropped keys ran later"
    );
    assert!(p.shown().contains("dropped]\r\n"), "the notice's line ends");
}

#[test]
fn a_soft_reset_at_the_terminal_shows_the_boards_banner_and_prompt() {
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    p.core.set_terminals(p.now, 1);
    p.core.keys(p.now, b"\r");
    assert!(p.run_until(Duration::from_secs(2), |p| p.shown().ends_with(">>> ")));
    let before = p.shown().len();
    p.core.keys(p.now, b"\x04");
    assert!(p.run_until(Duration::from_secs(5), |p| p.connects >= 1
        && p.shown()[before..].ends_with(">>> ")));
    let after = &p.shown()[before..];
    // (The sim drops what the board said just before it closed.)
    assert!(after.matches("MPY: soft reboot").count() <= 1, "{after:?}");
    assert!(after.contains("MicroPython sim board"), "{after:?}");
    assert!(p.changes >= 1, "the board's state changed");
}

#[test]
fn keys_typed_during_an_upload_in_slices_then_enter_late_show_their_answer() {
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    p.core.set_terminals(p.now, 1);
    p.core.keys(p.now, b"\x03");
    assert!(p.run_until(Duration::from_secs(2), |p| p.shown().ends_with(">>> ")));
    // 300 KB in slices of about 0.4 s of the link, each followed by a
    // program of ours (as the board layer checks them).
    let mut puts = put_files(&mut p, 37, 8000, "s");
    let check = p.core.submit(p.now, program("print(1)"));
    puts.push(check);
    for &k in b"print(222)" {
        p.run_for(Duration::from_millis(200));
        p.core.keys(p.now, &[k]);
    }
    for &op in &puts {
        let r = p.wait(op, Duration::from_secs(60));
        assert!(r.is_ok(), "{r:?}");
    }
    p.run_for(Duration::from_secs(8));
    let connects = p.connects;
    p.core.keys(p.now, b"\r");
    assert!(
        p.run_until(Duration::from_secs(5), |p| p.shown().contains("222\n")),
        "the terminal shows {:?}",
        p.shown()
    );
    assert_eq!(p.connects, connects, "the link was lost");
}

/// A program of the mount's first load: it may not wait for a person's.
fn hasty(code: &str) -> Request {
    Request::Program {
        code: code.as_bytes().to_vec(),
        bounded: true,
        idempotent: true,
        user: false,
        patience: Duration::ZERO,
    }
}

#[test]
fn a_tools_program_left_running_in_the_raw_repl_is_waited_for_not_taken_for_a_persons() {
    // A daemon killed in the middle of a program: the board, still in the
    // raw REPL, finishes it silently over the next connection.
    let mut p = Pair::new(cfg(10), 0.0, RTT);
    p.board.busy_raw_for(p.now, Duration::from_secs(4), b"");
    let op = p.core.submit(p.now, hasty("print(3)"));
    match p.wait(op, Duration::from_secs(12)) {
        Ok(Outcome::Output(o)) => assert_eq!(o.stdout, b"3\n"),
        r => panic!("{r:?}"),
    }
    assert!(secs(p.elapsed()) >= 4.0, "it did not wait for the program");
    assert!(
        !p.board.typed.contains(&0x03),
        "the program was interrupted"
    );
}

#[test]
fn a_raw_paste_a_killed_daemon_left_unfinished_is_ended_not_taken_for_a_persons_program() {
    // The daemon died while it sent a long program: the board still waits
    // in the raw paste for the rest of it, silent, and our polite Ctrl-A
    // is only one more byte of code there.
    let mut p = Pair::new(cfg(10), 0.0, RTT);
    p.core.set_terminals(p.now, 1);
    p.board.left_in_paste(b"import os\nx=1\n");
    let op = p.core.submit(p.now, hasty("print(3)"));
    match p.wait(op, Duration::from_secs(5)) {
        Ok(Outcome::Output(o)) => assert_eq!(o.stdout, b"3\n"),
        r => panic!("{r:?}"),
    }
    assert!(
        !p.board.typed.contains(&0x03),
        "it interrupted what may be a person's program"
    );
    p.run_for(Duration::from_secs(1));
    let shown = p.shown();
    assert!(
        !shown.contains("SyntaxError") && !shown.contains('\x04'),
        "the paste's end reached the terminal: {shown:?}"
    );
}

#[test]
fn a_persons_program_printing_when_we_connect_is_theirs_at_once() {
    let mut p = Pair::new(cfg(10), 0.0, RTT);
    p.board.busy_for(p.now, Duration::from_secs(30));
    let op = p.core.submit(p.now, hasty("print(3)"));
    p.run_for(Duration::from_millis(200));
    p.board.out.push_back((
        crate::protocol::frame::FrameKind::Text,
        b"tick\r\n".to_vec(),
    ));
    let r = p.wait(op, Duration::from_secs(5));
    assert!(matches!(r, Err(Error::Running { .. })), "{r:?}");
    assert!(secs(p.elapsed()) < 3.0, "it waited on a person's program");
    assert!(!p.board.typed.contains(&0x03), "it was interrupted");
}

#[test]
fn a_persons_silent_program_longer_than_the_timeout_is_still_theirs() {
    let mut p = Pair::new(cfg(5), 0.0, RTT);
    p.board.busy_for(p.now, Duration::from_secs(60));
    let op = p.core.submit(p.now, hasty("print(3)"));
    let r = p.wait(op, Duration::from_secs(20));
    assert!(matches!(r, Err(Error::Running { .. })), "{r:?}");
    assert!(!p.board.typed.contains(&0x03), "it was interrupted");
}

#[test]
fn a_person_who_typed_lately_at_a_terminal_is_typing_and_idle_later() {
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    // Keys with nobody at a terminal (a piped command) are no person.
    p.core.keys(p.now, b"1");
    assert!(!p.core.status(p.now).typing);
    p.core.set_terminals(p.now, 1);
    assert!(p.core.status(p.now).typing, "keys typed a moment ago");
    p.run_for(Duration::from_secs(5));
    p.core.keys(p.now, b"+1");
    p.run_for(Duration::from_secs(15));
    assert!(p.core.status(p.now).typing, "typed 15 s ago");
    // Idle again: uploads go back to their longer slices.
    p.run_for(Duration::from_secs(10));
    assert!(!p.core.status(p.now).typing, "typed 25 s ago");
    p.core.set_terminals(p.now, 0);
    p.core.keys(p.now, b"\r");
    assert!(!p.core.status(p.now).typing);
}

#[test]
fn keys_typed_during_an_upload_in_slices_wait_for_one_slice_at_most() {
    keys_wait_for_one_slice_at_most(0);
}

/// The board's TCP window (or a relay's buffer) takes 8 KB that have not
/// crossed the link yet: the socket's backlog does not show them, but a
/// key still waits behind them.
#[test]
fn keys_typed_during_an_upload_wait_for_one_slice_behind_a_hidden_tcp_window() {
    keys_wait_for_one_slice_at_most(8192);
}

fn keys_wait_for_one_slice_at_most(window: u64) {
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    p.up.window = window;
    p.core.set_terminals(p.now, 1);
    // A 160 KB upload as the board layer sends it while a person types:
    // slices of 4 KB (0.2 s of the link), all handed at once.
    let slices = put_files(&mut p, 40, 4096, "s");
    p.run_for(Duration::from_secs(2));
    let mut line = String::from("x=");
    for k in 0..5 {
        let typed = p.now;
        let key = if k == 0 { line.clone() } else { k.to_string() };
        if k > 0 {
            line.push_str(&key);
        }
        p.core.keys(p.now, key.as_bytes());
        assert!(p.run_until(Duration::from_secs(20), |p| p.shown().contains(&line)));
        let echo = p.now - typed;
        let slice = Duration::from_secs_f64(4096.0 / ESP32);
        // Behind a hidden window, the uploads unanswered may hold one slice
        // and the backlog aimed at (two frames at this rate) more.
        let behind = if window > 0 { 2048.0 / ESP32 } else { 0.0 };
        let most = slice + Duration::from_secs_f64(behind) + RTT * 6;
        assert!(echo < most, "key {k} echoed after {echo:?}");
    }
    assert!(!p.done.contains_key(&slices[39]), "the upload ended first");
    for op in slices {
        assert!(matches!(
            p.wait(op, Duration::from_secs(30)),
            Ok(Outcome::Put)
        ));
    }
}

#[test]
fn keys_typed_before_the_first_attempt_fails_never_run_when_the_board_is_back() {
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    p.core.set_terminals(p.now, 1);
    p.core.keys(p.now, b"\r");
    assert!(p.run_until(Duration::from_secs(2), |p| p.shown().ends_with(">>> ")));
    p.reachable = false;
    p.cut();
    // Typed after the link broke, before an attempt has failed: held, not
    // queued for whatever link comes next.
    p.core.keys(p.now, b"x");
    assert!(p.run_until(Duration::from_secs(2), |p| p.connects >= 1));
    p.run_for(Duration::from_millis(300));
    let later = said_then_back(&mut p, "[webrepl-mount: board unreachable, 1 key dropped]");
    assert!(
        !later.contains(&b'x'),
        "a dropped key ran later: {:?}",
        String::from_utf8_lossy(&later)
    );
}

#[test]
fn keys_whose_echo_is_still_on_the_way_are_not_cleared_by_a_program_taking_the_repl() {
    // A link whose round trip (400 ms) is longer than a line takes to
    // settle: Enter and a key are on the board, their echo on its way,
    // when a program of ours wants the REPL. Judged by the screen as it
    // was, the line would be "x=1": cleared with Ctrl-C (hiding what
    // Enter printed) and typed back, the "y" typed after Enter gone.
    let mut p = Pair::new(cfg(10), ESP32, Duration::from_millis(400));
    p.core.set_terminals(p.now, 1);
    p.core.keys(p.now, b"\x03");
    assert!(p.run_until(Duration::from_secs(3), |p| p.shown().ends_with(">>> ")));
    p.core.keys(p.now, b"x=1");
    assert!(p.run_until(Duration::from_secs(3), |p| p.shown().ends_with("x=1")));
    p.core.keys(p.now, b"\ry");
    p.run_for(Duration::from_millis(200));
    let op = p.core.submit(p.now, program("print(1)"));
    assert!(p.wait(op, Duration::from_secs(10)).is_ok());
    p.run_for(Duration::from_secs(5));
    assert_eq!(
        String::from_utf8_lossy(&p.board.line),
        "y",
        "the terminal shows {:?}",
        p.shown()
    );
    assert!(p.shown().ends_with(">>> y"), "{:?}", p.shown());
}

/// The board's `/remote` reads `n` bytes (as its VFS class does, in one
/// request); the pair's server answers from `file`.
fn share_read(p: &mut Pair, seq: u8, file: &[u8], limit: Duration) -> Vec<u8> {
    p.board.share_ask(seq, b'r', b"/big.txt");
    assert!(
        p.run_until(limit, |p| !p.asks.is_empty()),
        "no request spotted"
    );
    let ask = p.asks.remove(0);
    assert_eq!(
        (ask.seq, ask.cmd, &ask.args[..]),
        (seq, b'r', &b"/big.txt"[..])
    );
    p.core.share_answer(p.now, seq, 0, file);
    assert!(
        p.run_until(limit, |p| p
            .board
            .reader
            .as_ref()
            .is_some_and(|r| r.result.is_some())),
        "the board's read did not end"
    );
    let r = p
        .board
        .reader
        .take()
        .and_then(|r| r.result)
        .expect("result");
    let (status, data) = r.expect("an answer");
    assert_eq!(status, 0);
    data
}

#[test]
fn a_share_read_fits_the_boards_ring_and_keeps_the_terminal_clean() {
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    p.core.set_terminals(p.now, 1);
    assert!(p.run_until(Duration::from_secs(5), |p| p.core.is_up()));
    p.run_for(Duration::from_secs(1));
    let file = data(share::MAX_ANSWER, 9);
    let start = p.now;
    let got = share_read(&mut p, 1, &file, Duration::from_secs(10));
    let took = p.now - start;
    assert_eq!(got, file);
    assert_eq!(p.board.overflow, 0, "the board's ring dropped bytes");
    let shown = p.shown();
    assert!(
        !shown.contains('\u{18}'),
        "protocol bytes on the terminal: {shown:?}"
    );
    // What the ring allows: a first grant per round trip and its time on
    // the wire (about 10 KB/s here), not a round trip per window.
    let rate = file.len() as f64 / secs(took);
    let ring_bound = share::FIRST_GRANT as f64 / (secs(RTT) + share::FIRST_GRANT as f64 / ESP32);
    assert!(rate > ring_bound * 0.6, "{rate:.0} B/s of {ring_bound:.0}");
}

#[test]
fn keys_typed_during_a_share_read_wait_for_its_answer() {
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    p.core.set_terminals(p.now, 1);
    assert!(p.run_until(Duration::from_secs(5), |p| p.core.is_up()));
    p.run_for(Duration::from_secs(1));
    p.board.share_ask(4, b'r', b"/big.txt");
    assert!(p.run_until(Duration::from_secs(1), |p| !p.asks.is_empty()));
    // A line while the board waits for the host: not read as the answer.
    p.core.keys(p.now, b"print(6*7)\r");
    p.run_for(Duration::from_millis(50));
    let file = data(3000, 3);
    p.core.share_answer(p.now, 4, 0, &file);
    assert!(p.run_until(Duration::from_secs(5), |p| {
        p.board.reader.as_ref().is_some_and(|r| r.result.is_some())
    }));
    let r = p
        .board
        .reader
        .take()
        .and_then(|r| r.result)
        .expect("result");
    assert_eq!(r, Ok((0, file)));
    // Then the keys reach the REPL.
    assert!(p.run_until(Duration::from_secs(5), |p| {
        p.board.typed.ends_with(b"print(6*7)\r")
    }));
}

#[test]
fn a_share_read_cut_by_a_lost_link_ends_in_an_error_on_the_board() {
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    p.core.set_terminals(p.now, 1);
    assert!(p.run_until(Duration::from_secs(5), |p| p.core.is_up()));
    p.board.share_ask(5, b'r', b"/big.txt");
    assert!(p.run_until(Duration::from_secs(1), |p| !p.asks.is_empty()));
    p.asks.clear();
    p.core
        .share_answer(p.now, 5, 0, &data(share::MAX_ANSWER, 1));
    p.run_for(Duration::from_millis(100));
    assert!(p.board.reader.as_ref().is_some_and(|r| r.result.is_none()));
    p.cut();
    // The link comes back (the board's /remote object survives it) and
    // the read ends, with an error, instead of waiting for ever.
    assert!(p.run_until(Duration::from_secs(10), |p| {
        p.board.reader.as_ref().is_some_and(|r| r.result.is_some())
    }));
    let r = p
        .board
        .reader
        .take()
        .and_then(|r| r.result)
        .expect("result");
    assert!(r.is_err(), "{r:?}");
    // And the next request is answered.
    p.run_for(Duration::from_millis(100));
    let got = share_read(&mut p, 6, b"again", Duration::from_secs(5));
    assert_eq!(got, b"again");
}

#[test]
fn a_ctrl_c_typed_during_share_reads_comes_in_the_next_answer() {
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    p.core.set_terminals(p.now, 1);
    assert!(p.run_until(Duration::from_secs(5), |p| p.core.is_up()));
    p.run_for(Duration::from_secs(1));
    let typed = p.board.typed.len();
    // A program reads a file in pieces; the person presses Ctrl-C in the
    // middle. A Ctrl-C key would reach the board between two requests and
    // be skipped as it waits for the next answer: the answer carries it.
    let mut interrupted = false;
    for seq in 1..=20u8 {
        p.board.share_ask(seq, b'r', b"/big.txt");
        assert!(p.run_until(Duration::from_secs(1), |p| !p.asks.is_empty()));
        p.asks.clear();
        if seq == 3 {
            p.core.keys(p.now, b"\x03");
        }
        p.core.share_answer(p.now, seq, 0, &data(4096, seq));
        assert!(p.run_until(Duration::from_secs(5), |p| {
            p.board.reader.as_ref().is_some_and(|r| r.result.is_some())
        }));
        let r = p
            .board
            .reader
            .take()
            .and_then(|r| r.result)
            .expect("result");
        if r == Ok((share::INTERRUPTED, Vec::new())) {
            interrupted = true;
            break;
        }
        assert_eq!(r, Ok((0, data(4096, seq))));
        // The board asks again at once (well within the grace).
        p.run_for(RTT);
    }
    assert!(interrupted, "the Ctrl-C never reached the board");
    assert_eq!(p.board.typed.len(), typed, "a key was read as the REPL's");
}

#[test]
fn a_get_whose_caller_gave_up_before_it_began_is_dropped_and_one_under_way_ends_whole() {
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    p.board.files.insert(b"/a.bin".to_vec(), data(40_000, 7));
    p.board.files.insert(b"/b.bin".to_vec(), data(40_000, 8));
    let first = submit_get(&mut p, b"/a.bin", 40_000);
    p.run_for(Duration::from_millis(100));
    let queued = submit_get(&mut p, b"/b.bin", 40_000);
    p.run_for(Duration::from_millis(100));
    p.core.cancel(p.now, first);
    p.core.cancel(p.now, queued);
    assert!(p.run_until(Duration::from_secs(30), |p| p.done.len() == 2));
    assert!(p.done[&queued].1.is_err(), "the queued GET was not dropped");
    assert!(p.done[&first].1.is_ok(), "the GET under way did not end");
    assert_eq!(p.chunks[&first], data(40_000, 7));
    assert!(p.done[&queued].0 < p.done[&first].0, "dropped at once");
    // The board's file protocol is still in step.
    let again = submit_get(&mut p, b"/b.bin", 40_000);
    assert!(p.wait(again, Duration::from_secs(30)).is_ok());
    assert_eq!(p.chunks[&again], data(40_000, 8));
}

/// A board that is off answers no SYN: each connection attempt takes the
/// time-out to fail. What waits fails once it has waited the time-out,
/// even while an attempt is under way (it waited two: 20 s for 10).
#[test]
fn with_attempts_as_long_as_the_timeout_what_waits_fails_after_the_timeout() {
    let mut p = Pair::new(cfg(10), 0.0, RTT);
    p.board.files.insert(b"/f".to_vec(), data(100, 7));
    p.reachable = false;
    p.connect_takes = Duration::from_secs(10);
    p.cut();
    // An attempt is under way when the operation comes.
    p.core.set_terminals(p.now, 1);
    p.run_for(Duration::from_secs(7));
    let asked = p.now;
    let op = submit_get(&mut p, b"/f", 100);
    assert!(p.run_until(Duration::from_secs(30), |p| p.done.contains_key(&op)));
    let waited = p.done[&op].0 - asked;
    assert!(p.done[&op].1.is_err());
    assert!(
        waited <= Duration::from_millis(10_100),
        "failed after {waited:?}"
    );
    p.core.set_terminals(p.now, 0);
    p.reachable = true;
}

#[test]
fn a_link_program_runs_before_keys_typed_while_the_link_was_down() {
    // A share mounts /remote again on every new link: a line typed while
    // the link was down (a soft reset) must find it, so it goes after.
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    p.core.set_terminals(p.now, 1);
    p.core.keys(p.now, b"\r");
    assert!(p.run_until(Duration::from_secs(2), |p| p.shown().ends_with(">>> ")));
    p.core.set_link_program(Some(LinkProgram {
        code: b"first_on_link = 1\n".to_vec(),
        what: "test",
    }));
    p.cut();
    p.core.keys(p.now, b"import m\r");
    let typed = p.board.typed.len();
    let at = |p: &Pair, what: &[u8]| {
        p.board.typed[typed..]
            .windows(what.len())
            .position(|w| w == what)
    };
    assert!(p.run_until(Duration::from_secs(10), |p| at(p, b"import m\r").is_some()));
    let program = at(&p, b"first_on_link = 1");
    assert!(
        program.is_some_and(|i| Some(i) < at(&p, b"import m\r")),
        "{:?}",
        String::from_utf8_lossy(&p.board.typed[typed..])
    );
}

#[test]
fn keys_typed_right_after_a_soft_reset_wait_for_the_new_links_program() {
    // Typed with the Ctrl-D, a line went on the link the reset ends: lost
    // (plain `repl`), or run before a share's remount.
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    p.core.set_terminals(p.now, 1);
    p.core.keys(p.now, b"\r");
    assert!(p.run_until(Duration::from_secs(2), |p| p.shown().ends_with(">>> ")));
    p.core.set_link_program(Some(LinkProgram {
        code: b"first_on_link = 1\n".to_vec(),
        what: "test",
    }));
    let typed = p.board.typed.len();
    p.core.keys(p.now, b"\x04import m\r");
    let at = |p: &Pair, what: &[u8]| {
        p.board.typed[typed..]
            .windows(what.len())
            .position(|w| w == what)
    };
    assert!(p.run_until(Duration::from_secs(10), |p| p.connects >= 1
        && at(p, b"import m\r").is_some()));
    let program = at(&p, b"first_on_link = 1");
    assert!(
        program.is_some_and(|i| Some(i) < at(&p, b"import m\r")),
        "{:?}",
        String::from_utf8_lossy(&p.board.typed[typed..])
    );
}

/// A new link's first program (a share's remount) that fails: once more
/// after a collection, and if that fails too the person is told in one
/// line, before their keys go (they met a NameError later, untold).
fn a_failing_link_program(fails_twice: bool) -> Pair {
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    p.board.runner = if fails_twice {
        |code| {
            if code.ends_with(b"remount()\n") {
                (
                    b"Traceback\r\nMemoryError: memory allocation failed\r\n".to_vec(),
                    Duration::from_millis(5),
                )
            } else {
                super::sim::run_code(code)
            }
        }
    } else {
        |code| {
            if code.starts_with(b"remount()") {
                (
                    b"Traceback\r\nMemoryError: memory allocation failed\r\n".to_vec(),
                    Duration::from_millis(5),
                )
            } else {
                super::sim::run_code(code)
            }
        }
    };
    p.core.set_terminals(p.now, 1);
    p.core.keys(p.now, b"\r");
    assert!(p.run_until(Duration::from_secs(2), |p| p.shown().ends_with(">>> ")));
    p.core.set_link_program(Some(LinkProgram {
        code: b"remount()\n".to_vec(),
        what: "the share is not mounted again",
    }));
    p.cut();
    p.core.keys(p.now, b"import m\r");
    let typed = p.board.typed.len();
    assert!(p.run_until(Duration::from_secs(10), |p| {
        p.board.typed[typed..].ends_with(b"import m\r")
    }));
    let typed = String::from_utf8_lossy(&p.board.typed[typed..]).into_owned();
    let again = typed.find("__import__('gc').collect()\nremount()");
    assert!(
        again.is_some_and(|i| i > typed.find("remount()").unwrap_or(usize::MAX)),
        "no second try after a collection: {typed:?}"
    );
    assert!(again < typed.find("import m\r"), "{typed:?}");
    assert_eq!(typed.matches("remount()").count(), 2, "{typed:?}");
    p
}

#[test]
fn a_link_program_that_fails_is_tried_again_after_a_collection() {
    let p = a_failing_link_program(false);
    assert!(!p.shown().contains("webrepl-mount:"), "{:?}", p.shown());
}

#[test]
fn a_link_program_that_fails_twice_is_told_in_the_terminal_before_the_keys_go() {
    let mut p = a_failing_link_program(true);
    p.run_for(Duration::from_secs(1));
    let shown = p.shown();
    assert_eq!(
        shown
            .matches("[webrepl-mount: the share is not mounted again: MemoryError: memory allocation failed]\r\n")
            .count(),
        1,
        "{shown:?}"
    );
    let note = shown.find("[webrepl-mount:").unwrap_or(usize::MAX);
    assert!(note < shown.rfind("import m").unwrap_or(0), "{shown:?}");
}

/// A paced GET whose reader takes nothing (a stalled pipe): the board is
/// asked for no more than the reader may leave untaken, no time-out fires
/// while it waits (longer than the time-out), and the reader's credits let
/// the rest come, whole.
#[test]
fn a_paced_get_waits_for_its_reader_without_timing_out() {
    use super::binary::PACE_AHEAD;
    let size = 800_000;
    let mut p = Pair::new(cfg(5), 200_000.0, RTT);
    p.board.files.insert(b"/big.bin".to_vec(), data(size, 4));
    let get = submit_get(&mut p, b"/big.bin", size as u64);
    p.core.credit(p.now, get, 0);
    p.run_for(Duration::from_secs(20));
    let got = p.chunks.get(&get).map_or(0, Vec::len);
    assert!(
        got as u64 <= PACE_AHEAD && got as u64 > PACE_AHEAD / 2,
        "{got} bytes handed on to a reader that took none"
    );
    assert!(!p.done.contains_key(&get), "{:?}", p.done.get(&get));
    let mut credited = 0;
    while !p.done.contains_key(&get) {
        let now = p.chunks.get(&get).map_or(0, Vec::len);
        p.core.credit(p.now, get, now - credited);
        credited = now;
        p.run_for(Duration::from_millis(200));
    }
    let r = p.wait(get, Duration::from_secs(1));
    assert!(
        matches!(r, Ok(Outcome::Got(n)) if n == size as u64),
        "{r:?}"
    );
    assert_eq!(p.chunks[&get], data(size, 4));
}

#[test]
fn a_terminal_opened_now_is_drawn_the_persons_line_without_a_key_to_the_board() {
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    p.core.set_terminals(p.now, 1);
    p.core.keys(p.now, b"x = 4");
    assert!(p.run_until(Duration::from_secs(5), |p| p.shown().ends_with("x = 4")));
    let typed = p.board.typed.len();
    let want: &[u8] = b"\r\x1b[K>>> x = 4";
    assert_eq!(p.core.screen_line().as_deref(), Some(want));
    // A program of ours has the REPL meanwhile: the line stays the
    // person's, as their terminal shows it.
    let op = p.core.submit(p.now, program("print(1)"));
    assert!(p.run_until(Duration::from_secs(5), |p| p.board.typed.len() > typed));
    assert_eq!(p.core.screen_line().as_deref(), Some(want));
    assert!(p.wait(op, Duration::from_secs(10)).is_ok());
    p.run_for(Duration::from_secs(1));
    assert_eq!(p.core.screen_line().as_deref(), Some(want));
}

#[test]
fn a_program_of_ours_beside_a_download_waits_behind_one_chunk_at_each_round_trip() {
    // From the person's prompt: Ctrl-A, the sync, the program, each a
    // round trip whose answer came behind the chunks the GET had asked
    // for (208 ms beside the download, 51 ms alone).
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    p.core.set_terminals(p.now, 1);
    p.board.files.insert(b"/big.bin".to_vec(), data(200_000, 3));
    let get = submit_get(&mut p, b"/big.bin", 200_000);
    p.run_for(Duration::from_secs(2));
    let asked = p.now;
    let prog = p.core.submit(p.now, program("print(42)"));
    match p.wait(prog, Duration::from_secs(20)) {
        Ok(Outcome::Output(o)) => assert_eq!(o.stdout, b"42\n"),
        r => panic!("{r:?}"),
    }
    let took = p.now - asked;
    assert!(took < Duration::from_millis(150), "{took:?}");
    assert!(!p.done.contains_key(&get), "the download ended first");
    let r = p.wait(get, Duration::from_secs(30));
    assert!(matches!(r, Ok(Outcome::Got(200_000))), "{r:?}");
    assert_eq!(p.chunks[&get], data(200_000, 3));
}

/// A person at the prompt with `line` typed and echoed: a program of ours
/// asked for right then; how long it took, and what the board's line is
/// once the person's turn is back.
fn program_right_after_an_echo(p: &mut Pair, line: &str) -> (Duration, String) {
    p.core.set_terminals(p.now, 1);
    p.core.keys(p.now, b"\x03");
    assert!(p.run_until(Duration::from_secs(2), |p| p.shown().ends_with(">>> ")));
    p.run_for(Duration::from_millis(300));
    p.core.keys(p.now, line.as_bytes());
    assert!(p.run_until(Duration::from_secs(2), |p| p.shown().ends_with(line)));
    let asked = p.now;
    let op = p.core.submit(p.now, program("print(42)"));
    match p.wait(op, Duration::from_secs(5)) {
        Ok(Outcome::Output(o)) => assert_eq!(o.stdout, b"42\n"),
        r => panic!("{r:?}"),
    }
    let took = p.now - asked;
    p.run_for(Duration::from_secs(1));
    (took, String::from_utf8_lossy(&p.board.line).into_owned())
}

#[test]
fn a_program_asked_for_once_printable_keys_are_echoed_does_not_wait_for_the_line_to_settle() {
    // Printable keys typed at a settled line do nothing but echo: once
    // echoed, the line is what the board has (a read beside an upload
    // waited 150 ms after each key, and then a slice more).
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    let (took, line) = program_right_after_an_echo(&mut p, "x=1");
    assert!(took < super::keys::SETTLE, "{took:?}");
    assert_eq!(line, "x=1");
    assert!(p.shown().ends_with(">>> x=1"), "{:?}", p.shown());
}

#[test]
fn a_program_asked_for_once_a_ctrl_c_at_the_prompt_is_answered_does_not_wait_either() {
    // A person clears their line with Ctrl-C: at a prompt it does
    // nothing more than print a fresh one.
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    program_right_after_an_echo(&mut p, "x=1");
    p.run_for(Duration::from_millis(300));
    let shown = p.shown().len();
    p.core.keys(p.now, b"\x03");
    assert!(p.run_until(Duration::from_secs(2), |p| {
        p.shown()[shown..].ends_with(">>> ")
    }));
    let asked = p.now;
    let op = p.core.submit(p.now, program("print(42)"));
    assert!(p.wait(op, Duration::from_secs(5)).is_ok());
    let took = p.now - asked;
    assert!(took < super::keys::SETTLE, "{took:?}");
    p.run_for(Duration::from_secs(1));
    assert_eq!(p.board.line, b"");
    assert!(p.shown().ends_with(">>> "), "{:?}", p.shown());
}

#[test]
fn ctrl_c_ctrl_a_and_the_sync_go_in_one_frame_from_a_settled_line() {
    // Clearing the person's line, entering the raw REPL and syncing it
    // went one round trip each; from a known prompt the board's answers
    // come in order, so all three go at once.
    let mut p = Pair::new(cfg(10), ESP32, Duration::from_millis(100));
    let (took, line) = program_right_after_an_echo(&mut p, "y=2");
    // That one, the raw-paste's handshake and the program's answer: three
    // round trips (five before), and the line typed back.
    assert!(took < Duration::from_millis(400), "{took:?}");
    assert_eq!(line, "y=2");
}

/// A person types a key every 0.2 s (after its echo), clearing the line
/// with Ctrl-C every 8 keys, beside an upload in slices; a program of ours
/// is asked for at `offsets` after a key: how long each took.
fn programs_beside_typing(p: &mut Pair, offsets: &[u64]) -> Vec<Duration> {
    p.core.set_terminals(p.now, 1);
    p.core.keys(p.now, b"\x03");
    assert!(p.run_until(Duration::from_secs(5), |p| p.shown().ends_with(">>> ")));
    p.run_for(Duration::from_millis(300));
    let mut took = Vec::new();
    for (n, &off) in offsets.iter().enumerate() {
        let shown = p.shown().len();
        p.core.keys(p.now, b"7");
        p.run_for(Duration::from_millis(off));
        let asked = p.now;
        let op = p.core.submit(p.now, program("print(42)"));
        match p.wait(op, Duration::from_secs(20)) {
            Ok(Outcome::Output(o)) => assert_eq!(o.stdout, b"42\n"),
            r => panic!("{r:?}"),
        }
        took.push(p.now - asked);
        assert!(p.run_until(Duration::from_secs(5), |p| p.shown()[shown..].contains('7')));
        p.run_for(Duration::from_millis(200));
        if n % 8 == 7 {
            p.core.keys(p.now, b"\x03");
            p.run_for(Duration::from_millis(200));
        }
    }
    took
}

#[test]
fn a_program_beside_an_upload_and_a_person_typing_waits_for_one_slice_at_most() {
    // The first small read beside an upload took 613-688 ms: the settle
    // after the person's key, the slice started meanwhile, then Ctrl-C,
    // Ctrl-A and the sync a round trip each.
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    let puts = put_files(&mut p, 60, 4096, "s");
    p.run_for(Duration::from_millis(500));
    let offsets: Vec<u64> = (0..20).map(|i| (i * 37) % 300).collect();
    let took = programs_beside_typing(&mut p, &offsets);
    let slice = Duration::from_secs_f64(4096.0 / ESP32);
    for (t, off) in took.iter().zip(&offsets) {
        assert!(*t < slice + RTT * 8, "asked {off} ms after a key: {t:?}");
    }
    assert!(!p.done.contains_key(&puts[59]), "the upload ended first");
    for op in puts {
        assert!(matches!(
            p.wait(op, Duration::from_secs(60)),
            Ok(Outcome::Put)
        ));
    }
}

#[test]
fn buffers_that_take_a_first_upload_at_once_do_not_make_the_link_look_fast() {
    // An ESP32's TCP window and a relay's buffers take the first KBs at
    // once: read from the socket's backlog alone, a 9 KB upload says
    // nothing of the link here, and on the test board behind the link
    // emulator it said 72 KB/s for 20 KB/s (a person's keys then waited
    // behind slices sized for that rate). The board's answer after the
    // last byte does not run ahead.
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    p.up.window = 9_000;
    assert!(p.run_until(Duration::from_secs(5), |p| p.core.is_up()));
    let puts = put_files(&mut p, 1, 9_400, "helpers");
    let r = p.wait(puts[0], Duration::from_secs(10));
    assert!(matches!(r, Ok(Outcome::Put)), "{r:?}");
    let rate = p.core.status(p.now).upload_rate.unwrap_or(0.0);
    assert!(
        rate > 0.5 * ESP32 && rate < 1.3 * ESP32,
        "{rate:.0} B/s on a {ESP32:.0} B/s link"
    );
}

/// Where each upload's header and last data byte went in `p.wire`, in
/// the order they went (one upload after another on the wire).
fn put_spans(p: &Pair, sizes: &[usize]) -> Vec<(usize, usize)> {
    use crate::protocol::frame::FrameKind;
    let mut spans = Vec::new();
    let mut left = 0;
    let mut header = 0;
    for (k, (_, kind, payload)) in p.wire.iter().enumerate() {
        if *kind != FrameKind::Binary {
            continue;
        }
        if left == 0 && payload.len() == 82 && payload.starts_with(b"WA") {
            let size = u32::from_le_bytes([payload[12], payload[13], payload[14], payload[15]]);
            left = size as usize;
            header = k;
            assert!(sizes.contains(&left), "an upload of {left} bytes");
            continue;
        }
        left -= payload.len();
        if left == 0 {
            spans.push((header, k));
        }
    }
    spans
}

#[test]
fn a_program_after_an_upload_goes_right_behind_its_last_byte_not_its_answer() {
    use crate::protocol::frame::FrameKind;
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    assert!(p.run_until(Duration::from_secs(5), |p| p.core.is_up()));
    // Two uploads queued, the smaller one first on the wire, and a program
    // that finishes the first: it goes after that one's last byte, before
    // the second's header, without waiting for the board's answer.
    let first = put_files(&mut p, 1, 6000, "a")[0];
    let second = put_files(&mut p, 1, 9000, "b")[0];
    let prog = p
        .core
        .submit_after(p.now, program("print(42)"), Some(first));
    assert!(p.run_until(Duration::from_secs(10), |p| {
        [first, second, prog].iter().all(|o| p.done.contains_key(o))
    }));
    let put_done = p.done[&first].0;
    match p.wait(prog, Duration::from_secs(10)) {
        Ok(Outcome::Output(o)) => assert_eq!(o.stdout, b"42\n"),
        r => panic!("{r:?}"),
    }
    for op in [first, second] {
        assert!(matches!(
            p.wait(op, Duration::from_secs(10)),
            Ok(Outcome::Put)
        ));
    }
    let spans = put_spans(&p, &[6000, 9000]);
    assert_eq!(spans.len(), 2, "{spans:?}");
    let ((h1, l1), (h2, l2)) = (spans[0], spans[1]);
    let text: Vec<usize> = (0..p.wire.len())
        .filter(|&k| p.wire[k].1 == FrameKind::Text)
        .collect();
    // Never in the middle of an upload.
    assert!(
        text.iter()
            .all(|&k| !(h1..l1).contains(&k) && !(h2..l2).contains(&k)),
        "text at {text:?}, uploads at {spans:?}"
    );
    // The program's first frame is the very next one after the first
    // upload's last byte, at that instant, long before its answer.
    let after = text.iter().copied().find(|&k| k > h1);
    assert_eq!(
        after,
        Some(l1 + 1),
        "text at {text:?}, uploads at {spans:?}"
    );
    assert!(h2 > l1 + 1, "the second upload went before the program");
    let went = p.wire[l1 + 1].0;
    assert_eq!(went, p.wire[l1].0);
    assert!(
        went + RTT / 2 < put_done,
        "{:?} {:?}",
        went - p.start,
        put_done - p.start
    );
    assert!(
        p.wire[l1 + 1..]
            .iter()
            .filter(|(_, k, _)| *k == FrameKind::Text)
            .any(|(_, _, t)| t.windows(9).any(|w| w == b"print(42)")),
        "the program never went"
    );
    assert_eq!(p.board.eaten, 0, "text the board took as file data");
    assert_eq!(p.board.files[&b"/a0.bin"[..]], data(6000, 0));
    assert_eq!(p.board.files[&b"/b0.bin"[..]], data(9000, 0));
}

#[test]
fn a_program_after_an_upload_that_failed_before_its_last_byte_is_not_sent() {
    // A name the protocol cannot carry: refused before it starts. What
    // the program behind it would finish is not there (nor, after a
    // link to another board, is that board the upload's).
    let mut p = Pair::new(cfg(10), 0.0, RTT);
    assert!(p.run_until(Duration::from_secs(5), |p| p.core.is_up()));
    let put = p.core.submit(
        p.now,
        Request::Put {
            path: vec![b'x'; 200],
            data: Bytes::from(data(100, 1)),
            link: None,
        },
    );
    let prog = p.core.submit_after(p.now, program("print(7)"), Some(put));
    let next = p.core.submit(p.now, program("print(8)"));
    assert!(p.wait(put, Duration::from_secs(5)).is_err());
    let r = p.wait(prog, Duration::from_secs(5));
    assert!(
        matches!(r, Err(Error::LinkLost(Lost::UploadFailed))),
        "{r:?}"
    );
    match p.wait(next, Duration::from_secs(5)) {
        Ok(Outcome::Output(o)) => assert_eq!(o.stdout, b"8\n"),
        r => panic!("{r:?}"),
    }
    assert!(!p.board.typed.windows(8).any(|w| w == b"print(7)"));
}

#[test]
fn a_program_asked_for_right_after_a_persons_ctrl_c_beside_an_upload_waits_for_one_slice_at_most() {
    // The board writes a Ctrl-C's line break and its fresh prompt in two
    // frames. A slice that started between them (no prompt on the line,
    // nothing typed to clear) held the program a slice more: a small
    // read beside a 300 KB upload took 0.45-0.51 s on the test board.
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    let puts = put_files(&mut p, 150, 4096, "s");
    p.run_for(Duration::from_millis(500));
    p.core.set_terminals(p.now, 1);
    p.core.keys(p.now, b"\x03");
    assert!(p.run_until(Duration::from_secs(5), |p| p.shown().ends_with(">>> ")));
    p.run_for(Duration::from_millis(300));
    let slice = Duration::from_secs_f64(4096.0 / ESP32);
    for n in 0..40u64 {
        // A key at every phase of a slice, then Ctrl-C once it shows, and
        // the program a few ms later.
        p.run_for(Duration::from_millis(n * 7 % 230));
        p.core.keys(p.now, b"7");
        assert!(p.run_until(Duration::from_secs(5), |p| p.shown().ends_with('7')));
        p.core.keys(p.now, b"\x03");
        p.run_for(Duration::from_millis(n * 3 % 20));
        let asked = p.now;
        let op = p.core.submit(p.now, program("print(42)"));
        match p.wait(op, Duration::from_secs(20)) {
            Ok(Outcome::Output(o)) => assert_eq!(o.stdout, b"42\n"),
            r => panic!("{r:?}"),
        }
        let took = p.now - asked;
        assert!(took < slice + RTT * 10, "try {n}: {took:?}");
    }
    assert!(!p.done.contains_key(&puts[149]), "the upload ended first");
    for op in puts {
        assert!(matches!(
            p.wait(op, Duration::from_secs(60)),
            Ok(Outcome::Put)
        ));
    }
}

/// A `cp` (which may stop what the board runs) on a new link: into the
/// raw REPL and synced in one frame, then the program, short, in raw mode.
/// The sync sent after the raw banner came cost a round trip more (53.6
/// ms here), and raw-paste's negotiation another (42.7 ms).
#[test]
fn the_first_interrupting_program_on_a_new_link_enters_and_syncs_at_once() {
    let mut c = cfg(10);
    c.interrupt = true;
    let mut p = Pair::new(c, ESP32, RTT);
    let started = p.now;
    let op = p.core.submit(p.now, program("print(1)"));
    match p.wait(op, Duration::from_secs(10)) {
        Ok(Outcome::Output(o)) => assert_eq!(o.stdout, b"1\n"),
        r => panic!("{r:?}"),
    }
    let took = p.now - started;
    assert!(took < RTT * 7 / 2, "{took:?} at {RTT:?} a round trip");
}

/// A person's program that prints a line, then works on: the line's end
/// comes with it, not with the next output (held as the possible start of
/// a second client's rejection notice, it waited for the program's end).
#[test]
fn a_line_a_persons_program_prints_comes_whole_before_it_goes_on() {
    let mut p = Pair::new(cfg(10), ESP32, RTT);
    let op = p.core.submit(
        p.now,
        Request::Stream {
            code: b"print(on)\n#early\n#sleep 5000".to_vec(),
            patience: Duration::from_secs(10),
            user: true,
        },
    );
    assert!(
        p.run_until(Duration::from_secs(2), |p| p
            .chunks
            .get(&op)
            .is_some_and(|c| c.ends_with(b"on\n"))),
        "{:?} after {:?}",
        p.chunks
            .get(&op)
            .map(|c| String::from_utf8_lossy(c).into_owned()),
        p.elapsed()
    );
    assert!(!p.done.contains_key(&op), "the program ended first");
}

/// Keys typed into a link gone quiet (no error: the socket takes them)
/// are dropped once the board has said nothing for the time-out (asked
/// whether it is there meanwhile), and the terminal says so: they never
/// run when the link wakes. They sat in the socket and ran minutes later.
#[test]
fn keys_typed_into_a_link_gone_quiet_never_run_when_it_wakes() {
    let mut p = Pair::new(cfg(3), ESP32, RTT);
    p.core.set_terminals(p.now, 1);
    p.core.keys(p.now, b"\r");
    assert!(p.run_until(Duration::from_secs(2), |p| p.shown().ends_with(">>> ")));
    p.stalled = true;
    p.reachable = false;
    let typed = p.board.typed.len();
    p.core.keys(p.now, b"print(9)\r");
    assert!(
        p.run_until(Duration::from_secs(5), |p| p
            .shown()
            .contains("9 keys dropped]")),
        "{:?}",
        p.shown()
    );
    assert!(!p.core.status(p.now).link_up);
    p.stalled = false;
    p.reachable = true;
    assert!(p.run_until(Duration::from_secs(10), |p| p.core.status(p.now).link_up));
    p.core.keys(p.now, b"print(8)\r");
    assert!(p.run_until(Duration::from_secs(10), |p| {
        String::from_utf8_lossy(&p.board.typed[typed..]).contains("print(8)\r")
    }));
    let later = String::from_utf8_lossy(&p.board.typed[typed..]).into_owned();
    assert!(!later.contains("print(9)"), "dropped keys ran: {later:?}");
}

/// A person's program that reads keys without echoing them, and says
/// nothing: the board answers the question whether it is there, and the
/// link stays.
#[test]
fn keys_a_silent_program_takes_without_echo_keep_the_link() {
    let mut p = Pair::new(cfg(3), ESP32, RTT);
    p.board.runner = |code| {
        if code.starts_with(b"#quiet") {
            (Vec::new(), Duration::from_secs(3600))
        } else {
            super::sim::run_code(code)
        }
    };
    p.core.set_terminals(p.now, 1);
    let op = p.core.submit(
        p.now,
        Request::Program {
            code: b"#quiet".to_vec(),
            bounded: false,
            idempotent: false,
            user: true,
            patience: Duration::from_secs(10),
        },
    );
    p.run_for(Duration::from_secs(1));
    p.core.keys(p.now, b"x");
    p.run_for(Duration::from_secs(8));
    assert!(p.core.status(p.now).link_up, "{:?}", p.shown());
    assert!(!p.done.contains_key(&op));
    assert!(!p.shown().contains("dropped"), "{:?}", p.shown());
}

/// A download whose link goes quiet fails after one time-out (it waited
/// for a new link as long again: 20 s of `--timeout 10`), and keys typed
/// meanwhile are said dropped, whichever time-out takes the link down
/// (the download's came first and said nothing).
#[test]
fn a_download_on_a_link_gone_quiet_fails_after_one_timeout_and_its_keys_are_said_dropped() {
    let mut p = Pair::new(cfg(3), ESP32, RTT);
    p.core.set_terminals(p.now, 1);
    p.core.keys(p.now, b"\r");
    assert!(p.run_until(Duration::from_secs(2), |p| p.shown().ends_with(">>> ")));
    p.board.files.insert(b"/f.bin".to_vec(), data(300_000, 5));
    let op = submit_get(&mut p, b"/f.bin", 300_000);
    p.run_for(Duration::from_secs(1));
    p.stalled = true;
    p.reachable = false;
    p.connect_takes = Duration::from_secs(3);
    let start = p.now;
    p.core.keys(p.now, b"print(9)\r");
    let r = p.wait(op, Duration::from_secs(30));
    assert!(r.is_err(), "{r:?}");
    let took = p.now - start;
    assert!(
        took < Duration::from_millis(3500),
        "{took:?} with a 3 s time-out"
    );
    assert!(
        p.run_until(Duration::from_secs(1), |p| p
            .shown()
            .contains("keys dropped]")),
        "{:?}",
        p.shown()
    );
}

/// The acks of each binary frame of nothing but acks, in order.
fn ack_frames(p: &Pair) -> Vec<usize> {
    p.wire
        .iter()
        .filter(|(_, k, b)| {
            *k == crate::protocol::frame::FrameKind::Binary && b.iter().all(|&x| x == 0)
        })
        .map(|(_, _, b)| b.len())
        .collect()
}

#[test]
fn a_commands_own_link_asks_for_a_whole_download_at_once_and_its_digest_beside() {
    // (alone, terminals): a command's own session asks for the whole
    // window in its first ack frame; a mount's, or one with a terminal on
    // it, starts slow and keeps one ack in flight while a program of ours
    // goes back and forth.
    let mut took = Vec::new();
    for (alone, terminals) in [(true, 0), (false, 0), (true, 1)] {
        let mut p = Pair::new(
            Config {
                get_window: 512,
                alone,
                ..cfg(10)
            },
            0.0,
            RTT,
        );
        p.board.files.insert(b"/f.bin".to_vec(), data(100_000, 9));
        p.core.set_terminals(p.now, terminals);
        let get = submit_get(&mut p, b"/f.bin", 100_000);
        let digest = p.core.submit(p.now, program("print(len('0123456789'))"));
        let r = p.wait(get, Duration::from_secs(10));
        assert!(matches!(r, Ok(Outcome::Got(100_000))), "{r:?}");
        assert_eq!(p.chunks[&get], data(100_000, 9));
        assert!(p.run_until(Duration::from_secs(2), |p| p.done.contains_key(&digest)));
        let acks = ack_frames(&p);
        if alone && terminals == 0 {
            // 391 chunks and the end.
            assert_eq!(acks.first(), Some(&392), "{acks:?}");
        } else {
            assert!(acks.first().is_some_and(|&n| n <= 2), "{acks:?}");
        }
        took.push(p.now - p.start);
    }
    // The mount's way takes round trips the command's does not.
    assert!(took[0] * 2 < took[1], "{took:?}");
    assert!(took[0] * 2 < took[2], "{took:?}");
}
