//! The board's RAM is left as we found it: saves through the mount intern
//! no names (MicroPython's qstrs are never freed) and leak no heap, a
//! deploy leaves one name in the REPL, and a board whose own program holds
//! most of the heap gets a clear message and loses nothing.

mod common;

use common::{Mount, SMALL_HEAP_KB, TestBoard, random_bytes, wm};

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).to_string()
}

/// Free heap after a collection, and the qstr count, measured by a program
/// that interns nothing new after its first run and leaves no name.
const MEASURE: &str = "import gc,micropython\ngc.collect()\nprint('heap',gc.mem_free())\nmicropython.qstr_info()\ndel gc,micropython";

fn parse_measure(out: &str) -> (u64, u64) {
    let heap = out
        .lines()
        .find_map(|l| l.strip_prefix("heap "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no heap figure in {out:?}"));
    let qstrs = out
        .split("n_qstr=")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no qstr count in {out:?}"));
    (heap, qstrs)
}

fn measure(m: &Mount) -> (u64, u64) {
    let out = m.exec(MEASURE);
    assert!(out.status.success(), "{}", text(&out.stderr));
    parse_measure(&text(&out.stdout))
}

#[test]
fn saves_through_the_mount_intern_nothing_and_leak_no_heap_on_a_small_board() {
    let tb = TestBoard::with_heap_kb(SMALL_HEAP_KB);
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let dir = m.path().join("app");
    std::fs::create_dir(&dir).unwrap();
    let save = |i: usize| {
        let name = format!("m{}.py", i % 5);
        let data = random_bytes(100 + (i * 37) % 3000, i as u64);
        std::fs::write(dir.join(&name), &data).unwrap();
    };
    for i in 0..5 {
        save(i);
    }
    // Twice: the measuring program's own names are interned the first time.
    measure(&m);
    let (heap0, qstr0) = measure(&m);
    for i in 5..305 {
        save(i);
    }
    let (heap1, qstr1) = measure(&m);
    assert_eq!(qstr1, qstr0, "300 saves interned {} names", qstr1 - qstr0);
    assert!(
        heap1 + 512 >= heap0,
        "300 saves kept {} bytes of heap ({heap0} -> {heap1})",
        heap0 - heap1
    );
    assert_eq!(
        std::fs::read(tb.path("/app/m4.py")).unwrap(),
        random_bytes(100 + (304 * 37) % 3000, 304)
    );
    let status = m.status();
    // Issue 29's goal for what our helpers keep resident.
    let kept = status
        .split("our helpers keep ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse::<u64>().ok());
    assert!(kept.is_some_and(|n| n <= KEPT_MOST), "{status}");
    m.unmount();
}

/// What `status` may say the helpers keep: issue 29's 2 KB goal (they
/// measured 1,856-1,984 B on the test board, a 64-bit port: its pointers
/// are twice an ESP32's).
const KEPT_MOST: u64 = 2048;

/// `measure` over a connection of its own.
fn measure_at(tb: &TestBoard) -> (u64, u64) {
    let o = wm(&tb.password, &["exec", &tb.addr(), MEASURE]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    parse_measure(&text(&o.stdout))
}

#[test]
fn connections_and_copies_intern_nothing() {
    let tb = TestBoard::with_heap_kb(SMALL_HEAP_KB);
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("a.bin");
    let dst = format!("{}:/a.bin", tb.addr());
    let copy = |i: usize| {
        std::fs::write(&file, random_bytes(20_000 + i * 100, i as u64)).unwrap();
        let o = wm(&tb.password, &["cp", file.to_str().unwrap(), &dst]);
        assert!(o.status.success(), "{}", text(&o.stderr));
    };
    // The first copy defines the helpers, the second (onto the file the
    // board now has) runs the delta path's program once: what a code path
    // interns at its first use stays, as the issue's "after the first
    // save"; the measuring program's own names are interned at its first
    // run.
    copy(0);
    copy(100);
    measure_at(&tb);
    let (_, qstr0) = measure_at(&tb);
    for i in 1..6 {
        copy(i);
    }
    let (_, qstr1) = measure_at(&tb);
    assert_eq!(qstr1, qstr0, "5 copies interned {} names", qstr1 - qstr0);
}

/// `dir()` in the REPL: what the board's own program defined, and `_wrm`.
fn names(tb: &TestBoard) -> Vec<String> {
    let o = wm(
        &tb.password,
        &["exec", &tb.addr(), "print(' '.join(sorted(dir())))"],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    text(&o.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

#[test]
fn a_deploy_leaves_one_name_in_the_repl() {
    let tb = TestBoard::with_heap_kb(SMALL_HEAP_KB);
    let before = names(&tb);
    let local = tempfile::tempdir().unwrap();
    for i in 0..12 {
        let sub = if i % 3 == 0 { "lib/" } else { "" };
        std::fs::create_dir_all(local.path().join("lib")).unwrap();
        std::fs::write(
            local.path().join(format!("{sub}f{i}.py")),
            random_bytes(2000 + i * 100, i as u64),
        )
        .unwrap();
    }
    let src = format!("{}/.", local.path().display());
    let dst = format!("{}:/", tb.addr());
    for _ in 0..2 {
        let o = wm(&tb.password, &["cp", "-r", &src, &dst]);
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    let after = names(&tb);
    let new: Vec<&String> = after.iter().filter(|n| !before.contains(n)).collect();
    assert_eq!(new, ["_wrm"], "dir() before: {before:?}");
    assert!(before.iter().all(|n| after.contains(n)));
}

#[test]
fn a_board_low_on_memory_gets_a_clear_message_and_loses_nothing() {
    let tb = TestBoard::with_heap_kb(SMALL_HEAP_KB);
    std::fs::write(tb.path("/big.bin"), b"old").unwrap();
    // A person's program holds all but 8 KB of the heap, in small pieces
    // (with less, the test board's own listener, Python too, fails).
    let o = wm(
        &tb.password,
        &[
            "exec",
            &tb.addr(),
            "import gc\n_hog=None\ngc.collect()\ntry:\n while gc.mem_free()>9500:_hog=(bytearray(64),_hog)\nexcept MemoryError:pass\ndel gc",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("big.bin");
    let data = random_bytes(30_000, 3);
    std::fs::write(&file, &data).unwrap();
    let dst = format!("{}:/big.bin", tb.addr());
    let o = wm(&tb.password, &["cp", file.to_str().unwrap(), &dst]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(14), "{err}");
    assert!(err.contains("the board is low on memory ("), "{err}");
    assert!(err.contains("bytes free"), "{err}");
    assert_eq!(std::fs::read(tb.path("/big.bin")).unwrap(), b"old");
    // Once the program lets go, the same copy goes through.
    let o = wm(&tb.password, &["exec", &tb.addr(), "del _hog"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = wm(&tb.password, &["cp", file.to_str().unwrap(), &dst]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(std::fs::read(tb.path("/big.bin")).unwrap(), data);
    assert!(tb.parts("/").is_empty(), "{:?}", tb.parts("/"));
}

/// What `status` says the helpers keep, if it says.
fn kept(status: &str) -> Option<u64> {
    status
        .split("our helpers keep ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
}

#[test]
fn a_mount_states_what_helpers_defined_before_it_keep() {
    let tb = TestBoard::with_heap_kb(SMALL_HEAP_KB);
    // A copy defines the helpers: the mount finds them on the board.
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("a.py");
    std::fs::write(&file, b"x = 1\n").unwrap();
    let dst = format!("{}:/a.py", tb.addr());
    let o = wm(&tb.password, &["cp", file.to_str().unwrap(), &dst]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    for _ in 0..2 {
        let mut m = Mount::start(&tb, &tb.addr(), &[]);
        // A save calls the helpers.
        std::fs::write(m.path().join("b.py"), b"y = 2\n").unwrap();
        let status = m.status();
        assert!(
            kept(&status).is_some_and(|n| n > 0 && n <= KEPT_MOST),
            "{status}"
        );
        m.unmount();
    }
}

#[test]
fn buffers_halved_when_the_board_ran_out_of_memory_grow_back() {
    let tb = TestBoard::with_heap_kb(SMALL_HEAP_KB);
    let m = Mount::start(&tb, &tb.addr(), &[]);
    std::fs::write(m.path().join("a.py"), b"x = 1\n").unwrap();
    m.status_until(20, |s| s.contains("buffers 1024 B"));
    // A buffer no heap can give: the next program of ours that takes one
    // runs out of memory for real, and the tool halves its buffers.
    let o = m.exec("_wrm.B=1<<30");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let data = random_bytes(5000, 7);
    std::fs::write(m.path().join("b.bin"), &data).unwrap();
    m.status_until(20, |s| s.contains("buffers 512 B"));
    // The heap has room again: later saves bring them back.
    let mut i = 0;
    common::eventually(30, "buffers back to 1024 B", || {
        i += 1;
        std::fs::write(m.path().join(format!("c{}.py", i % 3)), b"y = 2\n").unwrap();
        m.status().contains("buffers 1024 B")
    });
    let o = m.exec("print(_wrm.B)");
    assert_eq!(text(&o.stdout).trim(), "1024", "{}", text(&o.stderr));
    common::eventually(20, "b.bin on the board", || {
        std::fs::read(tb.path("/b.bin")).is_ok_and(|d| d == data)
    });
}

/// `status` of a board: its `board RAM` line.
fn ram_line(tb: &TestBoard) -> String {
    let o = wm(&tb.password, &["status", &tb.addr()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    out.lines()
        .find(|l| l.starts_with("board RAM: "))
        .unwrap_or_else(|| panic!("no RAM line in {out:?}"))
        .to_string()
}

#[test]
fn status_of_a_board_without_a_mount_states_its_ram_as_measured_from_outside() {
    let tb = TestBoard::with_heap_kb(SMALL_HEAP_KB);
    let line = ram_line(&tb);
    assert!(line.contains("our helpers are not defined"), "{line}");
    measure_at(&tb);
    let (before, _) = measure_at(&tb);
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("a.py");
    std::fs::write(&file, b"x = 1\n").unwrap();
    let dst = format!("{}:/a.py", tb.addr());
    let o = wm(&tb.password, &["cp", file.to_str().unwrap(), &dst]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let (after, _) = measure_at(&tb);
    let line = ram_line(&tb);
    let free: u64 = line
        .strip_prefix("board RAM: ")
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    let kept = kept(&line).unwrap_or_else(|| panic!("{line}"));
    // What the first contact cost, seen from outside, is what the helpers
    // keep but for the names our other programs interned once (~200 B)
    // and the heap's layout.
    let cost = before - after;
    assert!(
        kept <= KEPT_MOST && kept + 400 >= cost,
        "{line}: {cost} B from outside"
    );
    // The free heap now, read by the status's own program.
    assert!(free.abs_diff(after) < 4096, "{line}: {after} B free");
}

#[test]
fn a_heap_left_in_pieces_is_named_as_such_and_nothing_is_written() {
    let tb = TestBoard::with_heap_kb(SMALL_HEAP_KB);
    // A person's program leaves about half the heap free, in pieces of
    // 700 bytes: a compile takes a block of 1-2 KB in one piece (the
    // parser's stack, a new block of interned names), which is not there.
    let o = wm(
        &tb.password,
        &[
            "exec",
            &tb.addr(),
            "import gc\n_hog=[]\ngc.collect()\ntry:\n while 1:_hog.append(bytearray(700))\nexcept MemoryError:pass\n_hog.pop()\nfor i in range(0,len(_hog),2):_hog[i]=None\ndel i,gc",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("big.bin");
    std::fs::write(&file, random_bytes(30_000, 5)).unwrap();
    let dst = format!("{}:/big.bin", tb.addr());
    // The test board's listener is Python in the same heap: now and then
    // it has no room to answer a connection (exit 6), which a board's
    // WebREPL, in C, would. And now and then our own first program (232
    // B) finds no piece to compile in either, and the free heap cannot be
    // asked: "free heap unknown" (1 run in 25). Four tries at most.
    let mut o = wm(&tb.password, &["cp", file.to_str().unwrap(), &dst]);
    for _ in 0..3 {
        let unknown = text(&o.stderr).contains("(free heap unknown)");
        if o.status.code() != Some(6) && !unknown {
            break;
        }
        o = wm(&tb.password, &["cp", file.to_str().unwrap(), &dst]);
    }
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(14), "{err}");
    // Our program compiles (it is short) and the loader it reads from
    // the helpers' file does not: "... for N bytes" then; or no program.
    assert!(
        err.contains("the board is low on memory (")
            && err.contains("too little of it in one piece"),
        "{err}"
    );
    assert!(!tb.path("/big.bin").exists());
    // Its slices may stay, hidden: the program that removes them needs
    // the same block to compile, which the heap has or not as the
    // listener's own allocations fell (2 of 6 runs on a loaded machine).
    // A later listing finds and removes them.
}

#[test]
fn a_copy_whose_program_ran_out_of_memory_goes_again_with_smaller_buffers() {
    let tb = TestBoard::with_heap_kb(SMALL_HEAP_KB);
    let local = tempfile::tempdir().unwrap();
    let first = local.path().join("a.py");
    std::fs::write(&first, b"x = 1\n").unwrap();
    let o = wm(
        &tb.password,
        &[
            "cp",
            first.to_str().unwrap(),
            &format!("{}:/a.py", tb.addr()),
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    // A buffer no heap can give: the next program of ours that takes one
    // runs out of memory for real.
    let o = wm(&tb.password, &["exec", &tb.addr(), "_wrm.B=1<<30"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let file = local.path().join("big.bin");
    let data = random_bytes(30_000, 9);
    std::fs::write(&file, &data).unwrap();
    let o = wm(
        &tb.password,
        &[
            "cp",
            file.to_str().unwrap(),
            &format!("{}:/big.bin", tb.addr()),
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(std::fs::read(tb.path("/big.bin")).unwrap(), data);
    assert!(tb.parts("/").is_empty(), "{:?}", tb.parts("/"));
    let o = wm(&tb.password, &["exec", &tb.addr(), "print(_wrm.B)"]);
    let b: u64 = text(&o.stdout).trim().parse().unwrap_or(0);
    assert!((128..=512).contains(&b), "buffers {b}");
}

/// A mount whose board stays too low on memory to remove what a failed
/// save left puts no new part files on its flash at each retry (each try
/// left a whole copy: 25 files, 51 KB in 30 s, in review).
#[test]
fn retries_on_a_board_low_on_memory_pile_up_no_part_files() {
    let tb = TestBoard::with_heap_kb(SMALL_HEAP_KB);
    let m = Mount::start(&tb, &tb.addr(), &[]);
    // A person's program leaves the heap in pieces no program compiles in.
    // Holes bigger than 600 B (the list's old arrays, freed as it grew)
    // are filled too. A short program of ours may still find a hole (the
    // heap's layout follows the timing of collections): then the save
    // lands, and the heap is taken again, for another file.
    let hog = "import gc\n_hog=[]\n_f=[None]*64\ngc.collect()\ntry:\n while 1:_hog.append(bytearray(400))\nexcept MemoryError:pass\n_hog[-4:]=[]\nfor i in range(0,len(_hog),3):_hog[i]=None\ngc.collect()\ntry:\n for i in range(64):_f[i]=bytearray(600)\nexcept MemoryError:pass\ndel i,gc";
    let tries = |log: &str| log.matches("stale part files kept for later").count();
    let mut name = None;
    for attempt in 0..4 {
        let out = m.exec(hog);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let file = format!("/big{attempt}.bin");
        // Kept in the journal whatever close() says.
        let _ = std::fs::write(m.path().join(&file[1..]), random_bytes(20_000, 9 + attempt));
        let failed = common::eventually_with(30, || {
            let log = m.log();
            if tries(&log) >= 1 {
                Ok(true)
            } else if tb.path(&file).exists() {
                Ok(false)
            } else {
                Err(format!("a first failed try never happened:\n{log}"))
            }
        });
        if failed {
            name = Some(file);
            break;
        }
        let out = m.exec("_hog=_f=None\nimport gc\ngc.collect()\ndel gc");
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let name = name.expect("every save found a hole in the heap and landed");
    let parts = tb.parts("/").len();
    let puts = m.log().matches("PUT /.wrm-").count();
    let seen = tries(&m.log());
    common::eventually(60, "two more tries", || tries(&m.log()) >= seen + 2);
    assert_eq!(m.log().matches("PUT /.wrm-").count(), puts, "{}", m.log());
    assert!(tb.parts("/").len() <= parts, "{:?}", tb.parts("/"));
    assert!(!tb.path(&name).exists());
}
