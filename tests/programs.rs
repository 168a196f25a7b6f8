//! The board programs (`src/board/*.py`) on their own: each file compiles
//! with the test board's mpy-cross, and the programs, as the tool sends
//! them, run in the test board's unix port against a temporary directory
//! (no WebREPL, no FUSE) and give the answers the tool parses.

mod common;

use common::{HEAP_KB, SMALL_HEAP_KB, board_binary, mpy_cross, random_bytes, repo};
use std::path::Path;
use std::process::Command;
use webrepl_mount::board::answer::Answer;
use webrepl_mount::board::snippets as sn;
use webrepl_mount::board::{Base, CONFLICT_SUFFIX, PART_PREFIX};

/// Runs `code` (our programs) in the unix port with `root` as its `/`;
/// before and after, the names in `__main__` and the qstr count. Returns
/// stdout of the programs alone.
fn run(root: &Path, programs: &[String]) -> String {
    run_on(root, programs, HEAP_KB)
}

/// [`run`] on a heap of `heap_kb` KB.
fn run_on(root: &Path, programs: &[String], heap_kb: usize) -> String {
    let dir = tempfile::tempdir().unwrap();
    // The programs are read before the temporary directory becomes `/`.
    // Renames as the listener makes them (VfsPosix 1.25 garbles them).
    let mut script = String::from(
        "import vfs,os,boardrepl\nP=[]\nclass Fs:\n def __init__(s,r):s.r=r;s.fs=vfs.VfsPosix(r)\n \
         def __getattr__(s,n):return getattr(s.fs,n)\n def rename(s,a,b):boardrepl.rename(s.r+a,s.r+b)\n",
    );
    for (i, p) in programs.iter().enumerate() {
        let f = dir.path().join(format!("p{i}.py"));
        std::fs::write(&f, p).unwrap();
        script.push_str(&format!(
            "P.append(open({:?}).read())\n",
            f.to_str().unwrap()
        ));
    }
    script.push_str(&format!(
        "vfs.umount('/')\nvfs.mount(Fs({:?}),'/')\nos.chdir('/')\n",
        root.to_str().unwrap()
    ));
    for i in 0..programs.len() {
        script.push_str(&format!("exec(P[{i}])\nP[{i}]=None\nprint('---')\n"));
    }
    let main = dir.path().join("main.py");
    std::fs::write(&main, script).unwrap();
    let out = Command::new(board_binary())
        .arg("-X")
        .arg(format!("heapsize={heap_kb}K"))
        .arg(&main)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn every_python_file_compiles_with_mpy_cross() {
    let out = tempfile::tempdir().unwrap();
    for name in ["helpers.py", "programs.py", "share.py", "share_programs.py"] {
        let src = repo().join("src/board").join(name);
        let r = Command::new(mpy_cross())
            .arg("-o")
            .arg(out.path().join("x.mpy"))
            .arg(&src)
            .output()
            .unwrap();
        assert!(
            r.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
    }
}

/// The answers of one program run (between our `---` markers).
fn answers(out: &str, k: usize) -> Vec<Answer<'_>> {
    out.split("---\n")
        .nth(k)
        .unwrap_or("")
        .lines()
        .map(Answer::parse)
        .collect()
}

#[test]
fn the_programs_do_their_work_and_leave_only_our_one_name() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir(r.join("lib")).unwrap();
    std::fs::write(r.join("lib/a.py"), b"abc").unwrap();
    std::fs::write(r.join("it's.txt"), b"old").unwrap();
    let data = b"new data".to_vec();
    let part = format!("/lib/{PART_PREFIX}00abcd");
    std::fs::write(r.join(&part[1..]), &data).unwrap();
    std::fs::write(
        r.join(&sn::HELPERS_FILE[1..]),
        sn::helpers_file().as_bytes(),
    )
    .unwrap();
    for (name, data) in [("o1", "one"), ("o2", "two"), ("t2", "other")] {
        std::fs::write(r.join(name), data).unwrap();
    }
    let changed = format!("/{PART_PREFIX}00abce");
    std::fs::write(r.join(&changed[1..]), b"mine").unwrap();
    let names =
        "print(' '.join(sorted(k for k in globals() if k not in('__name__','__file__'))))\n";
    let out = run(
        r,
        &[
            names.to_string(),
            sn::load_helpers(),
            sn::stat("/lib/a.py"),
            sn::walk("/", true),
            sn::mkdirs(&["/x/y", "/lib/a.py/z"]),
            sn::finish_uploads(&[
                sn::Finishing::new(&part, "/lib/b.py", &data, Base::Absent, 0, 1),
                sn::Finishing::new(&changed, "/it's.txt", b"mine", Base::Was(9, 9), 0, 1),
            ]),
            sn::hashes(&[("/lib/b.py", 8), ("/nope", 1), ("/lib/a.py", 2)]),
            sn::read_files("/lib", &["a.py", "b.py", "c.py"]),
            sn::write_base64("/w.bin", true, b"hello"),
            sn::rename("/w.bin", "/v.bin"),
            sn::call("remove", "/lib/a.py"),
            sn::statvfs("/"),
            sn::epoch(),
            sn::mem(),
            sn::onto("/o1", "/t1", (3, 0)),
            sn::onto("/o2", "/t2", (5, 0)),
            names.to_string(),
        ],
    );
    let before = out.split("---\n").next().unwrap().trim();
    let after = out.split("---\n").nth(16).unwrap().trim();
    let mut expected: Vec<&str> = before.split(' ').collect();
    expected.push("_wrm");
    expected.sort();
    assert_eq!(after, expected.join(" "), "{out}");

    assert!(
        matches!(answers(&out, 2)[..], [Answer::Stat { size: 3, .. }]),
        "{out}"
    );
    let walked = answers(&out, 3);
    // Directories by number: 0 the root, n the n-th `d` line (all at the
    // root here).
    let mut numbered = vec![String::new()];
    let mut within = None;
    let found = walked.iter().any(|e| match e {
        Answer::InDir(k) => {
            within = numbered.get(*k).cloned();
            false
        }
        Answer::Named {
            dir: true, name, ..
        } => {
            numbered.push(format!("/{name}"));
            false
        }
        Answer::Named {
            dir: false,
            size: 3,
            name,
            ..
        } => within.as_deref() == Some("/lib") && *name == "a.py",
        _ => false,
    });
    assert!(found, "{out}");
    assert_eq!(walked.last(), Some(&Answer::Ok));
    assert!(r.join("x/y").is_dir());
    assert!(
        matches!(answers(&out, 4)[..], [Answer::Os { errno: 20, hex: Some(h) }] if sn::unhex(h).as_deref() == Some("/lib/a.py/z")),
        "{out}"
    );
    let fin = answers(&out, 5);
    assert!(matches!(fin[0], Answer::Done(_)), "{out}");
    assert!(matches!(fin[1], Answer::Beside { size: 3, .. }), "{out}");
    assert_eq!(std::fs::read(r.join("lib/b.py")).unwrap(), data);
    assert_eq!(
        std::fs::read(r.join(format!("it's.txt{CONFLICT_SUFFIX}"))).unwrap(),
        b"mine"
    );
    let sha = webrepl_mount::board::digest("sha256", &data);
    let crc = webrepl_mount::board::digest("crc32", &data);
    let hashes = answers(&out, 6);
    assert!(
        hashes
            == [
                Answer::Algorithm("sha256"),
                Answer::Digest(&sha),
                Answer::Missing,
                Answer::OtherSize,
                Answer::Ok
            ]
            || hashes
                == [
                    Answer::Algorithm("crc32"),
                    Answer::Digest(&crc),
                    Answer::Missing,
                    Answer::OtherSize,
                    Answer::Ok
                ],
        "{out}"
    );
    let read = answers(&out, 7);
    assert_eq!(read[0], Answer::File);
    assert_eq!(read[1], Answer::Other("YWJj"));
    assert_eq!(read[2], Answer::End);
    assert_eq!(read.last(), Some(&Answer::Ok));
    assert!(read.contains(&Answer::Os {
        errno: 2,
        hex: None
    }));
    assert_eq!(answers(&out, 8), [Answer::Ok]);
    assert_eq!(answers(&out, 9), [Answer::Ok]);
    assert_eq!(std::fs::read(r.join("v.bin")).unwrap(), b"hello");
    assert_eq!(answers(&out, 10), [Answer::Ok]);
    assert!(!r.join("lib/a.py").exists());
    assert!(matches!(&answers(&out, 11)[..], [Answer::Vfs(f)] if f.len() == 10));
    assert!(matches!(answers(&out, 12)[..], [Answer::Year(_)]));
    assert!(matches!(answers(&out, 13)[..], [Answer::Mem(n)] if n > 0));
    // A rename onto a target that is gone goes; onto one that changed, it
    // goes beside it.
    assert!(matches!(answers(&out, 14)[..], [Answer::Done(_)]), "{out}");
    assert_eq!(std::fs::read(r.join("t1")).unwrap(), b"one");
    assert!(
        matches!(answers(&out, 15)[..], [Answer::Beside { size: 5, .. }]),
        "{out}"
    );
    assert_eq!(std::fs::read(r.join("t2")).unwrap(), b"other");
    assert_eq!(
        std::fs::read(r.join(format!("t2{CONFLICT_SUFFIX}"))).unwrap(),
        b"two"
    );
}

#[test]
fn a_big_upload_in_many_slices_is_joined_on_a_small_fragmented_heap() {
    // 1 MB in 4 KB slices, as a loaded link sends it, finished on a 64K
    // board whose own program holds its heap down to 30 KB, in pieces.
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::write(
        r.join(&sn::HELPERS_FILE[1..]),
        sn::helpers_file().as_bytes(),
    )
    .unwrap();
    let (slice, data) = (4096, random_bytes(1 << 20, 7));
    let part = format!("/{PART_PREFIX}00abcd");
    for (k, piece) in data.chunks(slice).enumerate() {
        let name = if k == 0 {
            part.clone()
        } else {
            format!("{part}.{k}")
        };
        std::fs::write(r.join(&name[1..]), piece).unwrap();
    }
    let pieces = data.len() / slice - 1;
    let hog = "import gc\n_hog=[]\ngc.collect()\nwhile gc.mem_free()>31000:\n _hog.append(bytearray(1000))\n";
    let out = run_on(
        r,
        &[
            sn::load_helpers(),
            hog.to_string(),
            sn::finish_uploads(&[sn::Finishing::new(
                &part,
                "/big.bin",
                &data,
                Base::Any,
                pieces,
                slice,
            )]),
        ],
        SMALL_HEAP_KB,
    );
    assert!(matches!(answers(&out, 2)[..], [Answer::Done(_)]), "{out}");
    assert!(std::fs::read(r.join("big.bin")).unwrap() == data);
    assert!(!r.join(format!("{}.1", &part[1..])).exists());
}

/// A flash with the helpers' file and `a.py` ("abc").
fn flash_with_helpers() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(
        root.path().join(&sn::HELPERS_FILE[1..]),
        sn::helpers_file().as_bytes(),
    )
    .unwrap();
    std::fs::write(root.path().join("a.py"), b"abc").unwrap();
    root
}

/// What stays resident is the class: the functions used on every save
/// (`go`, `fin`, `a`) and the loader; 4.9 KB here when every helper
/// stayed. (The names in the file are interned before the loader's first
/// measure: see the next test.)
#[test]
fn the_helpers_keep_under_2_kb_and_load_the_rest_from_flash_per_call() {
    let root = flash_with_helpers();
    let r = root.path();
    // A file gone (or another version's) asks for the helpers anew.
    let gone = format!(
        "import os\nos.remove({:?})\ntry:\n exec({:?})\nexcept NameError:\n print('gone')\n",
        sn::HELPERS_FILE,
        sn::read_files("/", &["a.py"]),
    );
    let mut programs = vec![
        sn::load_helpers(),
        sn::read_files("/", &["a.py"]),
        sn::hashes(&[("/a.py", 3)]),
        "print(' '.join(k for k in dir(_wrm) if k[0]!='_'))\n".to_string(),
        gone,
        // Pasted where the file cannot be written: all in the class, a
        // program each (on a board that has none defined, as the tool
        // pastes them).
        "_wrm=0\nimport gc\ngc.collect()\ndel gc\n".to_string(),
    ];
    programs.extend(sn::helpers_pasted().iter().cloned());
    let read = programs.len();
    programs.push(sn::read_files("/", &["a.py"]));
    let out = run_on(r, &programs, SMALL_HEAP_KB);
    let mem = mems(&out, 0);
    let [before, after] = mem[..] else {
        panic!("{out}")
    };
    assert!(
        before - after <= 2048,
        "the helpers keep {} B",
        before - after
    );
    assert_eq!(answers(&out, 1)[1], Answer::Other("YWJj"), "{out}");
    assert_eq!(answers(&out, 2).last(), Some(&Answer::Ok), "{out}");
    let kept = out.split("---\n").nth(3).unwrap_or("");
    assert!(
        !kept.split_whitespace().any(|n| n == "z" || n == "r"),
        "{out}"
    );
    assert_eq!(answers(&out, 4), [Answer::Other("gone")], "{out}");
    assert_eq!(answers(&out, read)[1], Answer::Other("YWJj"), "{out}");
}

/// The free heap figures (`M` lines) program `i` printed.
fn mems(out: &str, i: usize) -> Vec<u64> {
    answers(out, i)
        .iter()
        .filter_map(|a| match a {
            Answer::Mem(n) => Some(*n),
            _ => None,
        })
        .collect()
}

/// What the helpers keep (`status`) is the same whatever the board
/// interned before: names go in tables that grow by doubling, so counting
/// the helpers' own names made the figure 1.9-5.4 KB as those before fell.
/// And the program of a first contact leaves no name of the loader.
#[test]
fn what_the_helpers_keep_does_not_depend_on_the_names_interned_before() {
    let root = flash_with_helpers();
    let mut kept = Vec::new();
    for names in [0, 20, 40, 80] {
        let before: String = (0..names).map(|i| format!("n{i}x={i}\n")).collect();
        let names_now =
            "print(' '.join(sorted(k for k in globals() if k not in('__name__','__file__'))))\n";
        let out = run_on(
            root.path(),
            &[
                before,
                names_now.to_string(),
                sn::first("print('called',_wrm.B)\n"),
                names_now.to_string(),
            ],
            SMALL_HEAP_KB,
        );
        let mem = mems(&out, 2);
        let [b, a] = mem[..] else { panic!("{out}") };
        assert!(out.contains("called 1024"), "{out}");
        let names: Vec<&str> = out.split("---\n").collect();
        let mut expected: Vec<&str> = names[1].split_whitespace().collect();
        expected.push("_wrm");
        expected.sort();
        assert_eq!(names[3].trim(), expected.join(" "), "{out}");
        kept.push(b - a);
    }
    assert!(kept.iter().all(|&k| k == kept[0]), "{kept:?}");
}

/// The names in the helpers kept on flash are interned when the class is
/// defined, not at each one's first call: a save that first inflates or
/// joins slices interns nothing (issue 29's qstr figure; `z` interned
/// `zlib`, `uzlib`, `DecompIO`, `I` at the first compressed upload).
#[test]
fn the_helpers_kept_on_flash_intern_nothing_when_called() {
    let root = flash_with_helpers();
    let r = root.path();
    let (slice, data) = (64, random_bytes(200, 9));
    let part = format!("/{PART_PREFIX}00abce");
    for (k, piece) in data.chunks(slice).enumerate() {
        let name = if k == 0 {
            part.clone()
        } else {
            format!("{part}.{k}")
        };
        std::fs::write(r.join(&name[1..]), piece).unwrap();
    }
    let qstrs = "import micropython\nmicropython.qstr_info()\n".to_string();
    let out = run_on(
        r,
        &[
            sn::load_helpers(),
            qstrs.clone(),
            qstrs.clone(),
            sn::read_files("/", &["a.py"]),
            sn::hashes(&[("/a.py", 3)]),
            sn::inflate_uploads(&[sn::Inflating {
                packed: "/nothing".into(),
                packed_size: 10,
                pieces: 0,
                slice: 10,
                packed_crc: 0,
                part: "/nothing.out".into(),
                size: 10,
                crc: 0,
                wbits: 10,
                target: None,
            }]),
            sn::finish_uploads(&[sn::Finishing::new(
                &part,
                "/b.bin",
                &data,
                Base::Any,
                data.len() / slice,
                slice,
            )]),
            qstrs,
        ],
        SMALL_HEAP_KB,
    );
    let count = |i: usize| -> u64 {
        let seg = out.split("---\n").nth(i).unwrap_or("");
        seg.split("n_qstr=")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no qstr count in {seg:?}"))
    };
    assert_eq!(std::fs::read(r.join("b.bin")).unwrap(), data, "{out}");
    assert_eq!(count(7), count(2), "{out}");
}

/// A big upload's slices joined ahead of its finishing program in steps
/// (`js`), and joins a board reset cut short: a step joins the whole
/// slices after what the part holds and stops at a short one; the
/// finishing program joins what is left, removes a slice joined but left
/// (a reset between its append and its removal), and sends back a part
/// torn mid-append, with every slice no longer whole, to go again. Exact
/// whenever it says done.
#[test]
fn slices_joined_in_steps_or_cut_mid_join_are_finished_exact_or_sent_again() {
    let (slice, data) = (4096, random_bytes(18_000, 12));
    let pieces = data.len() / slice;
    let part = format!("/{PART_PREFIX}00beef");
    let name = |k: usize| match k {
        0 => part[1..].to_string(),
        k => format!("{}.{k}", &part[1..]),
    };
    let step = sn::helper_call(
        "js",
        &[
            part.clone(),
            pieces.to_string(),
            slice.to_string(),
            data.len().to_string(),
            "150".to_string(),
        ],
    );
    let finish = sn::finish_uploads(&[sn::Finishing::new(
        &part,
        "/big.bin",
        &data,
        Base::Any,
        pieces,
        slice,
    )]);
    // (slices in P, slice files there, bytes of the next slice appended,
    // a slice file cut short, steps first): the board before the programs.
    for (joined, left, torn, short, steps) in [
        (0, 1..=pieces, 0, None, true),
        (0, 1..=pieces, 0, Some(2), true),
        (2, 2..=pieces, 0, None, false),
        (1, 2..=pieces, 1000, None, true),
    ] {
        let root = flash_with_helpers();
        let r = root.path();
        let mut p = data[..(joined + 1) * slice].to_vec();
        p.extend_from_slice(&data[(joined + 1) * slice..][..torn]);
        std::fs::write(r.join(name(0)), &p).unwrap();
        for k in left {
            let to = data.len().min((k + 1) * slice);
            let to = if short == Some(k) { to - 1 } else { to };
            std::fs::write(r.join(name(k)), &data[k * slice..to]).unwrap();
        }
        let mut programs = vec![sn::load_helpers()];
        if steps {
            programs.push(step.clone());
        }
        programs.push(finish.clone());
        let out = run(r, &programs);
        let last = programs.len() - 1;
        let ended = |what: &str| assert!(!r.join("big.bin").exists(), "{what}: {out}");
        match (torn, short) {
            (0, None) => {
                if steps {
                    // One step of 150 ms joins all four on this flash.
                    assert!(matches!(answers(&out, 1)[..], [Answer::Joined(5)]), "{out}");
                }
                assert!(
                    matches!(answers(&out, last)[..], [Answer::Done(_)]),
                    "{out}"
                );
                assert_eq!(std::fs::read(r.join("big.bin")).unwrap(), data);
                for k in 1..=pieces {
                    assert!(!r.join(name(k)).exists(), "slice {k} left");
                }
            }
            (0, Some(k)) => {
                // The step stops before the short slice, which goes again.
                assert!(matches!(answers(&out, 1)[..], [Answer::Joined(2)]), "{out}");
                assert!(
                    matches!(&answers(&out, last)[..], [Answer::Slices { short, .. }] if short == &[k]),
                    "{out}"
                );
                ended("short slice");
            }
            _ => {
                // Torn: a step joins nothing; slice 1 was joined and is
                // gone, so it goes again with P.
                assert!(matches!(answers(&out, 1)[..], [Answer::Joined(0)]), "{out}");
                assert!(
                    matches!(&answers(&out, last)[..], [Answer::Slices { short, .. }] if short == &[0, 1]),
                    "{out}"
                );
                ended("torn part");
            }
        }
    }
}
