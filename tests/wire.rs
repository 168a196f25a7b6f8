//! Faster than the wire, on the real test board: uploads that compress go
//! as zlib streams the board inflates (exact files, raw on firmware
//! without `deflate`, the old file left by a link cut anywhere).

mod common;

use common::{LinkEmu, Mount, SMALL_HEAP_KB, TestBoard, eventually, sh, wm, write_and_close};
use std::process::Output;
use webrepl_mount::board::{Base, Board, Transfer};
use webrepl_mount::session::Session;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// About `n` bytes of Python source, different for each `seed`.
fn source(n: usize, seed: u64) -> Vec<u8> {
    let mut out = String::new();
    let mut i = seed;
    while out.len() < n {
        i = i
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let k = (i >> 33) % 1000;
        out.push_str(&format!(
            "def handler_{k}(request, value={k}):\n    \"\"\"Answers request {k}.\"\"\"\n    if request.path == '/item/{k}':\n        return value * {}\n    return None\n\n",
            i >> 50
        ));
    }
    out.truncate(n);
    out.into_bytes()
}

#[test]
fn source_goes_compressed_and_lands_exact() {
    let tb = TestBoard::start();
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("big.py");
    std::fs::write(&file, source(100_000, 1)).unwrap();
    let dst = format!("{}:/big.py", tb.addr());
    let o = wm(&tb.password, &["cp", "-vv", file.to_str().unwrap(), &dst]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("1 of 1 file(s) compressed"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read(tb.path("/big.py")).unwrap(),
        std::fs::read(&file).unwrap()
    );
    // A tree, and small files among big ones.
    let src = local.path().join("src");
    std::fs::create_dir_all(src.join("lib")).unwrap();
    for i in 0..12 {
        std::fs::write(
            src.join(format!("lib/m{i}.py")),
            source(300 + i * 700, i as u64),
        )
        .unwrap();
    }
    std::fs::write(src.join("tiny.py"), b"x = 1\n").unwrap();
    std::fs::write(src.join("noise.bin"), common::random_bytes(5000, 3)).unwrap();
    // Over a bundle's bound: goes on its own, compressed.
    std::fs::write(src.join("lib/big.py"), source(40_000, 99)).unwrap();
    let s = format!("{}/.", src.display());
    let o = wm(
        &tb.password,
        &["cp", "-vv", "-r", &s, &format!("{}:/app", tb.addr())],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("1 of 1 file(s) compressed")
            && stderr(&o).contains("14 file(s) in 1 bundle(s)"),
        "{}",
        stderr(&o)
    );
    sh(&format!(
        "diff -r '{}' '{}'",
        src.display(),
        tb.path("/app").display()
    ));
    assert!(tb.parts("/app/lib").is_empty());
    // --no-compress: as they are.
    std::fs::write(&file, source(50_000, 2)).unwrap();
    let o = wm(
        &tb.password,
        &["cp", "-vv", "--no-compress", file.to_str().unwrap(), &dst],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("compressed"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(tb.path("/big.py")).unwrap(),
        std::fs::read(&file).unwrap()
    );
}

#[test]
fn a_board_without_deflate_gets_raw_uploads() {
    let tb = TestBoard::without_deflate();
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("big.py");
    std::fs::write(&file, source(30_000, 4)).unwrap();
    let o = wm(
        &tb.password,
        &[
            "cp",
            "-vv",
            file.to_str().unwrap(),
            &format!("{}:/big.py", tb.addr()),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot inflate"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("file(s) compressed"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(tb.path("/big.py")).unwrap(),
        std::fs::read(&file).unwrap()
    );
    // Saves of one-line edits through a mount: without binascii.crc32 a
    // file built from a delta cannot be checked there, so they go whole,
    // and the log says why once (not that the board's copy changed).
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    let mut edited = source(30_000, 4);
    for k in 0..3 {
        edited[100] = b'a' + k;
        write_and_close(&m.path().join("big.py"), &edited).unwrap();
        assert_eq!(std::fs::read(tb.path("/big.py")).unwrap(), edited);
    }
    let log = m.log();
    assert_eq!(log.matches("no binascii.crc32").count(), 1, "{log}");
    assert!(!log.contains("not the base"), "{log}");
    assert!(m.unmount().status.success());
}

/// Downloads from firmware without `deflate` (no `binascii.crc32`):
/// a `cp` of one file (its stat a call of the helpers, its digest asked
/// beside the end of its transfer) and of a small one come exact.
#[test]
fn a_board_without_deflate_gives_exact_downloads() {
    let tb = TestBoard::without_deflate();
    let big = source(60_000, 8);
    std::fs::write(tb.path("/big.py"), &big).unwrap();
    std::fs::write(tb.path("/s.py"), b"x=1\n").unwrap();
    let local = tempfile::tempdir().unwrap();
    for (name, data) in [("big.py", &big[..]), ("s.py", &b"x=1\n"[..])] {
        let to = local.path().join(name);
        let o = wm(
            &tb.password,
            &[
                "cp",
                &format!("{}:/{name}", tb.addr()),
                to.to_str().unwrap(),
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(std::fs::read(&to).unwrap(), data);
    }
}

/// The link cut (and the board unreachable after) at points from the
/// stream's PUT through the inflating and finishing programs: each time
/// the target is the old file or the new one whole, never anything else;
/// the next upload lands it exact and leaves no part file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_link_while_inflating_leaves_the_old_file() {
    let tb = TestBoard::start();
    let mut emu = LinkEmu::start(tb.port, 0.5);
    let mut cfg = tb.config_via(emu.port);
    cfg.timeout = std::time::Duration::from_secs(1);
    let session = Session::connect(cfg).await.unwrap();
    let board = Board::new(session.clone(), Transfer::Auto);
    let (old, new) = (source(20_000, 5), source(20_000, 6));
    // Helpers defined, the board probed; how many bytes one upload sends.
    board.put("/warm.py", &old, false, Base::Any).await.unwrap();
    let sent = || async { session.status().await.unwrap().totals.bytes_out };
    let before = sent().await;
    board
        .put("/warm.py", &source(20_000, 7), false, Base::Any)
        .await
        .unwrap();
    let span = sent().await - before;
    let packed = webrepl_mount::board::compress(&new, webrepl_mount::board::WBITS).len() as u64;
    assert!(packed < span, "{packed} {span}");
    let (mut olds, mut failed) = (0, 0);
    for step in 0..6 {
        let at = packed + (span - packed) * step / 6;
        std::fs::write(tb.path("/main.py"), &old).unwrap();
        emu.command("refuse on");
        emu.command(&format!("cut-up {at}"));
        let r = board.put("/main.py", &new, false, Base::Any).await;
        let got = std::fs::read(tb.path("/main.py")).unwrap();
        if got == old {
            olds += 1;
        } else {
            assert!(
                got == new,
                "cut at {at}: neither old nor new ({} bytes, {r:?})",
                got.len()
            );
        }
        failed += r.is_err() as usize;
        emu.command("cut-up 1000000000");
        emu.command("refuse off");
    }
    assert!(olds > 0 && failed > 0, "{olds} old, {failed} failed");
    board.put("/main.py", &new, false, Base::Any).await.unwrap();
    assert_eq!(std::fs::read(tb.path("/main.py")).unwrap(), new);
    board
        .put("/other.py", &old, false, Base::Any)
        .await
        .unwrap();
    assert!(tb.parts("/").is_empty(), "{:?}", tb.parts("/"));
}

/// A save of a file whose board copy we hold sends only the change; a
/// copy changed on the board (by a program) is never used as the base;
/// a change as big as the file goes whole. Each lands exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_sends_only_the_change_and_never_onto_a_changed_base() {
    let tb = TestBoard::start();
    let session = tb.session().await;
    let board = Board::new(session.clone(), Transfer::Auto);
    let sent = || async { session.status().await.unwrap().totals.bytes_out };
    let old = common::random_bytes(100_000, 8);
    board.put("/main.py", &old, false, Base::Any).await.unwrap();
    let mut new = old.clone();
    new.splice(50_000..50_010, b"# an edited line\n".iter().copied());
    let before = sent().await;
    board
        .put_changed(
            "/main.py",
            new.clone().into(),
            old.clone().into(),
            Base::Any,
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read(tb.path("/main.py")).unwrap(), new);
    let delta_bytes = sent().await - before;
    assert!(
        delta_bytes < 3_000,
        "{delta_bytes} bytes sent for a one-line edit"
    );
    // Changed on the board: same size, one byte other.
    let out = board
        .exec("f=open('/main.py','r+b')\nf.seek(7)\nf.write(b'Q')\nf.close()")
        .await
        .unwrap();
    assert!(out.stderr.is_empty(), "{out:?}");
    let mut newer = new.clone();
    newer[90_000] ^= 1;
    let before = sent().await;
    board
        .put_changed(
            "/main.py",
            newer.clone().into(),
            new.clone().into(),
            Base::Any,
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read(tb.path("/main.py")).unwrap(), newer);
    assert!(sent().await - before > 100_000, "the changed base was used");
    // Nothing in common: whole.
    let other = common::random_bytes(100_000, 9);
    board
        .put_changed("/main.py", other.clone().into(), newer.into(), Base::Any)
        .await
        .unwrap();
    assert_eq!(std::fs::read(tb.path("/main.py")).unwrap(), other);
    assert!(tb.parts("/").is_empty(), "{:?}", tb.parts("/"));
}

/// The link cut (the board unreachable after) while a delta is sent and
/// the file built from it: the old file or the new one, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_link_while_building_from_a_delta_leaves_the_old_file() {
    let tb = TestBoard::start();
    let mut emu = LinkEmu::start(tb.port, 0.5);
    let mut cfg = tb.config_via(emu.port);
    cfg.timeout = std::time::Duration::from_secs(1);
    let session = Session::connect(cfg).await.unwrap();
    let board = Board::new(session.clone(), Transfer::Auto);
    let old = common::random_bytes(50_000, 10);
    let mut new = old.clone();
    new.splice(20_000..20_001, b"an edit".iter().copied());
    board.put("/main.py", &old, false, Base::Any).await.unwrap();
    let sent = || async { session.status().await.unwrap().totals.bytes_out };
    let before = sent().await;
    board
        .put_changed(
            "/main.py",
            new.clone().into(),
            old.clone().into(),
            Base::Any,
        )
        .await
        .unwrap();
    let span = sent().await - before;
    let (mut olds, mut failed) = (0, 0);
    for step in 0..5 {
        let at = span * step / 5;
        std::fs::write(tb.path("/main.py"), &old).unwrap();
        emu.command("refuse on");
        emu.command(&format!("cut-up {at}"));
        let r = board
            .put_changed(
                "/main.py",
                new.clone().into(),
                old.clone().into(),
                Base::Any,
            )
            .await;
        let got = std::fs::read(tb.path("/main.py")).unwrap();
        if got == old {
            olds += 1;
        } else {
            assert!(
                got == new,
                "cut at {at}: neither old nor new ({} bytes, {r:?})",
                got.len()
            );
        }
        failed += r.is_err() as usize;
        emu.command("cut-up 1000000000");
        emu.command("refuse off");
    }
    assert!(olds > 0 && failed > 0, "{olds} old, {failed} failed");
    std::fs::write(tb.path("/main.py"), &old).unwrap();
    board
        .put_changed("/main.py", new.clone().into(), old.into(), Base::Any)
        .await
        .unwrap();
    assert_eq!(std::fs::read(tb.path("/main.py")).unwrap(), new);
    board
        .put("/other.py", &new, false, Base::Any)
        .await
        .unwrap();
    assert!(tb.parts("/").is_empty(), "{:?}", tb.parts("/"));
}

/// The link of an ESP32 on Wi-Fi: 20 KB/s, 10 ms round trip, TCP
/// segments of 1460 bytes.
fn esp32_link(tb: &TestBoard) -> LinkEmu {
    LinkEmu::with(tb.port, 5.0, &["--rate", "20000", "--segment", "1460"])
}

/// Bytes the mount has sent to the board, from its `status`.
fn sent_by(m: &common::Mount) -> u64 {
    let s = m.status();
    s.lines()
        .find_map(|l| l.strip_prefix("traffic: ")?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no traffic in the status: {s}"))
}

/// Saves through the mount of a file it holds the board's copy of send
/// only the change, by sed -i (a new file renamed over the old), in place,
/// as vim saves (the file moved to a backup, written anew) and as gedit
/// does (a local scratch file renamed over it): each sends far fewer
/// bytes than the file, even compressed, and lands exact.
#[test]
fn saves_through_the_mount_send_only_the_change() {
    let tb = TestBoard::start();
    let text = common::hex_source(40_000, 5);
    let text = &text[..100_000];
    std::fs::write(tb.path("/edit.py"), text).unwrap();
    let m = common::Mount::start(&tb, &tb.addr(), &[]);
    let f = m.path().join("edit.py");
    let fs = f.to_str().unwrap();
    assert_eq!(std::fs::read_to_string(&f).unwrap(), text);
    let local = tempfile::tempdir().unwrap();
    let want = local.path().join("want.py");
    std::fs::write(&want, text).unwrap();
    let wants = want.to_str().unwrap();
    let landed = |what: &str| {
        let want = std::fs::read(&want).unwrap();
        common::eventually(30, what, || {
            std::fs::read(tb.path("/edit.py")).is_ok_and(|b| b == want)
        });
    };

    let before = sent_by(&m);
    sh(&format!("sed -i '100s/$/  # edited/' '{fs}' '{wants}'"));
    landed("the sed -i save on the board");
    let sed = sent_by(&m) - before;

    let before = sent_by(&m);
    sh(&format!(
        "printf X | dd of='{fs}' bs=1 seek=5000 conv=notrunc status=none; \
         printf X | dd of='{wants}' bs=1 seek=5000 conv=notrunc status=none"
    ));
    landed("the in-place save on the board");
    let in_place = sent_by(&m) - before;

    let before = sent_by(&m);
    sh(&format!(
        "sed '2000s/^/# vim /' '{wants}' > '{wants}.new' && mv '{wants}.new' '{wants}' && \
         mv '{fs}' '{fs}~' && cat '{wants}' > '{fs}' && rm '{fs}~'"
    ));
    landed("the vim-like save on the board");
    let vim = sent_by(&m) - before;

    // gedit: a scratch name that stays local, renamed over the file.
    let before = sent_by(&m);
    let scratch = m.path().join(".goutputstream-ABC123");
    sh(&format!(
        "sed '3000s/^/# gedit /' '{wants}' > '{wants}.new' && mv '{wants}.new' '{wants}' && \
         cat '{wants}' > '{}' && mv '{}' '{fs}'",
        scratch.display(),
        scratch.display()
    ));
    landed("the gedit-like save on the board");
    let gedit = sent_by(&m) - before;

    // The file compressed is about 50 KB; a delta and its programs a few.
    for (how, n) in [
        ("sed -i", sed),
        ("in place", in_place),
        ("vim", vim),
        ("gedit", gedit),
    ] {
        assert!(n < 12_000, "{how}: {n} bytes sent for a one-line edit");
    }
    assert!(m.log().contains("as a delta"), "{}", m.log());
    assert!(tb.parts("/").is_empty(), "{:?}", tb.parts("/"));
    assert!(!tb.path("/edit.py~").exists());
}

/// Free bytes of the board's flash (a tmpfs of the test's size).
fn free_on(tb: &TestBoard) -> u64 {
    let path = std::ffi::CString::new(tb.path("/").to_str().unwrap()).unwrap();
    // SAFETY: a plain statvfs into a zeroed struct we own.
    let mut v: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(path.as_ptr(), &mut v) }, 0);
    v.f_bavail * v.f_frsize
}

/// The helpers' file on the board first (a copy of a tiny file), so that
/// a filler leaves what a test measures.
fn helpers_on(tb: &TestBoard, local: &std::path::Path) {
    let tiny = local.join("t.txt");
    std::fs::write(&tiny, "t").unwrap();
    let to = format!("{}:/t.txt", tb.addr());
    let o = wm(&tb.password, &["cp", tiny.to_str().unwrap(), &to]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Fills the board's flash but its last page.
fn fill_but_a_page(tb: &TestBoard) {
    let filler = free_on(tb).saturating_sub(4096);
    std::fs::write(tb.path("/filler.bin"), vec![7u8; filler as usize]).unwrap();
}

/// A board whose flash cannot take the helpers' file gets them pasted, a
/// piece each: pasted whole, compiling them took more than 90 KB, and a
/// board with 64 KB answered MemoryError to every read.
#[test]
fn a_full_flash_and_a_small_heap_still_read_through_pasted_helpers() {
    let tb = TestBoard::with_flash_and_heap_kb(64, SMALL_HEAP_KB);
    std::fs::write(tb.path("/a.py"), "print('kept')\n").unwrap();
    fill_but_a_page(&tb);
    let o = wm(&tb.password, &["cat", &format!("{}:/a.py", tb.addr())]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "print('kept')\n");
    assert!(!tb.path("/.webrepl-mount-helpers").exists());
}

#[test]
fn a_small_file_that_fits_lands_on_a_nearly_full_flash_compressed_or_not() {
    let tb = TestBoard::with_flash_kb(64);
    let local = tempfile::tempdir().unwrap();
    helpers_on(&tb, local.path());
    // One page free: the compressed stream takes it, and the file can
    // still go raw once the stream is gone.
    fill_but_a_page(&tb);
    let file = local.path().join("c2.py");
    std::fs::write(&file, source(2_000, 3)).unwrap();
    let dst = format!("{}:/c2.py", tb.addr());
    let o = wm(&tb.password, &["cp", "-vv", file.to_str().unwrap(), &dst]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(tb.path("/c2.py")).unwrap(),
        std::fs::read(&file).unwrap()
    );
}

/// Bytes `cp -vv` says it sent on the wire (its log; -v is coreutils' lines).
fn wire_bytes(o: &Output) -> u64 {
    let e = stderr(o);
    e.lines()
        .find_map(|l| {
            let (n, _) = l.split_once(" B sent on the wire")?;
            n.rsplit(' ').next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no wire bytes in: {e}"))
}

/// A `cp` of one small file asks the board nothing about compression (a
/// program of 413 bytes, four round trips of the raw-paste window, on
/// every connection): nothing of it could go compressed, alone or in a
/// bundle. 1,016 B on the wire with the question, 599 B without.
#[test]
fn a_copy_of_one_small_file_sends_no_compression_probe() {
    let tb = TestBoard::start();
    let local = tempfile::tempdir().unwrap();
    helpers_on(&tb, local.path());
    let file = local.path().join("s.txt");
    std::fs::write(&file, "abc").unwrap();
    let dst = format!("{}:/s.txt", tb.addr());
    let o = wm(&tb.password, &["cp", "-vv", file.to_str().unwrap(), &dst]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(tb.path("/s.txt")).unwrap(), b"abc");
    let sent = wire_bytes(&o);
    assert!(sent < 800, "{sent} B on the wire: {}", stderr(&o));
}

/// A `cp` of incompressible data is as cheap on the wire as
/// webrepl_cli.py's one PUT: no question about compression (the start of
/// the file does not shrink), and one PUT, not slices (nobody else waits
/// on the command's own link). 101,511 B for 100,000 B of noise in 16 KB
/// slices with the question; 100,603 B without both.
#[test]
fn a_copy_of_noise_goes_in_one_put_and_asks_nothing_about_compression() {
    let tb = TestBoard::start();
    let local = tempfile::tempdir().unwrap();
    helpers_on(&tb, local.path());
    let noise = common::random_bytes(100_000, 7);
    let file = local.path().join("noise.bin");
    std::fs::write(&file, &noise).unwrap();
    let dst = format!("{}:/noise.bin", tb.addr());
    let o = wm(&tb.password, &["cp", "-vv", file.to_str().unwrap(), &dst]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(tb.path("/noise.bin")).unwrap(), noise);
    let e = stderr(&o);
    let puts = e.lines().filter(|l| l.contains(" PUT /")).count();
    assert_eq!(puts, 1, "{e}");
    let sent = wire_bytes(&o);
    assert!(sent < 100_000 + 1_000, "{sent} B on the wire: {e}");
}

/// A `cp` onto a board file we hold no copy of sends only the change: the
/// board's copy by block sums (rsync's way) is the base. Lands exact.
#[test]
fn a_cp_onto_a_file_the_board_has_sends_only_the_change() {
    // An ESP32's input ring: the programs' windows are its size.
    let tb = TestBoard::with_ring(Some(260));
    let text = common::hex_source(20_000, 11);
    let text = &text[..40_000];
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("app.py");
    std::fs::write(&file, text).unwrap();
    let dst = format!("{}:/app.py", tb.addr());
    let o = wm(&tb.password, &["cp", "-vv", file.to_str().unwrap(), &dst]);
    assert!(o.status.success(), "{}", stderr(&o));
    let whole = wire_bytes(&o);
    // One line longer, in the middle.
    let edited = text.replacen("v_900 = ", "v_900 = 1 + ", 1);
    std::fs::write(&file, &edited).unwrap();
    let o = wm(&tb.password, &["cp", "-vv", file.to_str().unwrap(), &dst]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(tb.path("/app.py")).unwrap(), edited);
    let second = wire_bytes(&o);
    eprintln!("cp of 40 KB: {whole} B on the wire; again, one line changed: {second} B");
    assert!(
        second < 8_000 && second * 3 < whole,
        "the second cp sent {second} bytes (the first {whole})"
    );
    assert!(tb.parts("/").is_empty(), "{:?}", tb.parts("/"));
}

/// The first call of the helpers on a board: with them in its RAM, one
/// short program; just booted with their file on flash, one program too,
/// which defines them from the loader in their file and makes the call;
/// on fresh flash, that program, which fails having done nothing, one PUT
/// of the file and the program again. Never the loader pasted (800 B,
/// eight round trips of the raw-paste window, twice on fresh flash).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_contact_defines_the_helpers_in_the_program_that_needs_them() {
    let mut tb = TestBoard::with_ring(Some(260));
    std::fs::write(tb.path("/a.txt"), b"abc").unwrap();
    // Programs run and bytes sent by one call of the helpers on a new
    // session; and that the call answered right.
    async fn first_call(tb: &TestBoard) -> (u64, u64) {
        let session = tb.session().await;
        let before = session.status().await.unwrap().totals;
        let board = Board::new(session.clone(), Transfer::Auto);
        let (_, d) = board.digests(&[("/a.txt", 3)]).await.unwrap();
        assert_eq!(d, [Some(webrepl_mount::board::digest("sha256", b"abc"))]);
        let after = session.status().await.unwrap().totals;
        session.close().await;
        (
            after.programs - before.programs,
            after.bytes_out - before.bytes_out,
        )
    }
    let fresh = first_call(&tb).await;
    let helpers = std::fs::metadata(tb.path("/.webrepl-mount-helpers"))
        .unwrap()
        .len();
    let in_ram = first_call(&tb).await;
    tb.restart();
    let on_flash = first_call(&tb).await;
    eprintln!("programs, bytes: fresh {fresh:?}, on flash {on_flash:?}, in RAM {in_ram:?}");
    assert_eq!(in_ram.0, 1, "{in_ram:?}");
    assert!(in_ram.1 < 255, "{in_ram:?}");
    // Within the raw-paste window's first grant (255 B): one round trip.
    assert_eq!(on_flash.0, 1, "{on_flash:?}");
    assert!(on_flash.1 < 300, "{on_flash:?}");
    assert_eq!(fresh.0, 2, "{fresh:?}");
    assert!(fresh.1 < helpers + 600, "{fresh:?}");
    // Their file as another version of ours left it, or cut short (a
    // PUT the link cut), just booted: replaced, as on fresh flash.
    let file = tb.path("/.webrepl-mount-helpers");
    let ours = webrepl_mount::board::snippets::helpers_file();
    for other in ["#00000000\n# x 30 1\nclass _wrm:\n V=0\n", &ours[..2000]] {
        std::fs::write(&file, other).unwrap();
        tb.restart();
        let replaced = first_call(&tb).await;
        assert_eq!(replaced.0, 2, "{replaced:?}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), ours);
    }
    // Removed by the person while the helpers are in RAM: sent again.
    std::fs::remove_file(&file).unwrap();
    let removed = first_call(&tb).await;
    assert_eq!(removed.0, 2, "{removed:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), ours);
    // Gone from RAM under a session that had them (a soft reset): the
    // failed call, then the call with them defined again.
    let session = tb.session().await;
    let board = Board::new(session.clone(), Transfer::Auto);
    board.digests(&[("/a.txt", 3)]).await.unwrap();
    let out = board.exec("del _wrm").await.unwrap();
    assert!(out.stderr.is_empty(), "{out:?}");
    let before = session.status().await.unwrap().totals.programs;
    let (_, d) = board.digests(&[("/a.txt", 3)]).await.unwrap();
    assert!(d[0].is_some());
    let again = session.status().await.unwrap().totals.programs - before;
    assert_eq!(again, 2);
}

/// The mount's tree listing is compact: a directory's path once, then
/// each entry by its name (in hex only if it needs to be), so that 214
/// files in a tree cost about a tenth of a KB each, not whole paths in
/// hex; odd names come through exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tree_listing_sends_each_name_once() {
    let tb = TestBoard::start();
    let mut want = Vec::new();
    for d in 0..14 {
        let dir = format!("lib/package_{d}/submodule");
        std::fs::create_dir_all(tb.path(&format!("/{dir}"))).unwrap();
        for f in 0..15 {
            let p = format!("/{dir}/module_number_{f}.py");
            std::fs::write(tb.path(&p), vec![b'x'; f * 10]).unwrap();
            want.push(p);
        }
    }
    for odd in ["/with space", "/%percent", "/new\nline", "/caf\u{e9}"] {
        std::fs::write(tb.path(odd), b"o").unwrap();
        want.push(odd.to_string());
    }
    let session = tb.session().await;
    let board = Board::new(session.clone(), Transfer::Auto);
    let before = session.status().await.unwrap().totals.bytes_in;
    let list = board.list("/", true).await.unwrap();
    let got_bytes = session.status().await.unwrap().totals.bytes_in - before;
    let mut files: Vec<String> = list
        .iter()
        .filter(|e| e.kind == webrepl_mount::board::EntryKind::File)
        .map(|e| e.path.clone())
        .collect();
    files.sort();
    want.sort();
    assert_eq!(files, want);
    let size = |p: &str| list.iter().find(|e| e.path == p).map(|e| e.size);
    assert_eq!(
        size("/lib/package_3/submodule/module_number_7.py"),
        Some(70)
    );
    eprintln!(
        "listing of {} entries: {got_bytes} B ({} B each)",
        list.len(),
        got_bytes / list.len() as u64
    );
    // Lines of names relative to a numbered directory, mtimes as
    // differences, written ~500 B at a time: 26 B each (37 B as a print
    // per line, full mtimes and whole directory paths).
    assert!(
        got_bytes < 30 * list.len() as u64,
        "{got_bytes} B for {} entries",
        list.len()
    );
}

#[test]
fn an_edit_sent_as_a_delta_lands_on_a_nearly_full_flash() {
    let tb = TestBoard::with_flash_kb(64);
    let old = source(2_000, 5);
    std::fs::write(tb.path("/c1.py"), &old).unwrap();
    let m = Mount::start(&tb, &tb.addr(), &["--close-wait", "20"]);
    let file = m.path().join("c1.py");
    // Read through the mount: it holds the board's copy, so the edit goes
    // as a delta.
    assert_eq!(std::fs::read(&file).unwrap(), old);
    // One page free: the delta takes it, and building the file from it
    // needs another; the file can still go whole once the delta is gone.
    fill_but_a_page(&tb);
    let mut new = old.clone();
    new[..5].copy_from_slice(b"# Y\n#");
    write_and_close(&file, &new).unwrap();
    assert_eq!(std::fs::read(tb.path("/c1.py")).unwrap(), new);
    assert!(tb.parts("/").is_empty(), "{:?}", tb.parts("/"));
}

#[test]
fn the_first_mount_of_a_nearly_full_flash_leaves_its_last_page_to_the_person() {
    let tb = TestBoard::with_flash_kb(64);
    let local = tempfile::tempdir().unwrap();
    helpers_on(&tb, local.path());
    fill_but_a_page(&tb);
    let mut m = Mount::start(&tb, &tb.addr(), &["--close-wait", "20"]);
    assert!(!tb.path("/.webrepl-mount-id").exists());
    assert!(m.log().contains("no id written"), "{}", m.log());
    m.status_until(10, |s| {
        s.contains("no id: the board's flash is nearly full")
    });
    // The last page is the person's: a small save lands.
    let new = source(2_000, 7);
    write_and_close(&m.path().join("s.py"), &new).unwrap();
    assert_eq!(std::fs::read(tb.path("/s.py")).unwrap(), new);
    assert!(m.unmount().status.success());
}

/// A tree of small files goes up in bundles (one zlib stream, one upload
/// and one program for many files) and lands exact: an empty file, a
/// UTF-8 name and files in several directories; no part file is left.
/// Sent one by one, each cost a PUT header, its names in a program and a
/// cold deflate window. Behind an ESP32's link: on a link faster than the
/// board inflates, they go raw.
#[test]
fn a_tree_of_small_files_goes_in_bundles_and_lands_exact() {
    let tb = TestBoard::with_ring(Some(260));
    let emu = esp32_link(&tb);
    let local = tempfile::tempdir().unwrap();
    let top = local.path().join("app");
    let mut files = Vec::new();
    for k in 0..40u64 {
        let dir = top.join(format!("pkg{}", k % 4));
        std::fs::create_dir_all(&dir).unwrap();
        let data = source(300 + 97 * k as usize, k);
        std::fs::write(dir.join(format!("m{k}.py")), &data).unwrap();
        files.push((format!("/app/pkg{}/m{k}.py", k % 4), data));
    }
    std::fs::write(top.join("empty.py"), b"").unwrap();
    files.push(("/app/empty.py".into(), Vec::new()));
    std::fs::write(top.join("café.py"), b"x = 1\n").unwrap();
    files.push(("/app/café.py".into(), b"x = 1\n".to_vec()));
    let raw: usize = files.iter().map(|(_, d)| d.len()).sum();
    let o = wm(
        &tb.password,
        &[
            "cp",
            "-vv",
            "-r",
            top.to_str().unwrap(),
            &format!("127.0.0.1:{}:/", emu.port),
        ],
    );
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert!(e.contains("bundle(s)"), "{e}");
    for (path, data) in &files {
        assert_eq!(&std::fs::read(tb.path(path)).unwrap(), data, "{path}");
    }
    let sent = wire_bytes(&o);
    eprintln!("{} files, {raw} B: {sent} B on the wire", files.len());
    assert!((sent as usize) * 2 < raw, "{sent} B sent for {raw}");
    for d in ["/app", "/app/pkg0", "/app/pkg3"] {
        assert!(tb.parts(d).is_empty(), "{d}: {:?}", tb.parts(d));
    }
}

/// On fresh flash, the first call of the helpers that goes with a list
/// file (a `cp -r` comparing its files with the board's) waits for no
/// PUT's answer: the call goes right behind the list's last byte, and
/// the call again right behind the helpers' file. Behind a 200 ms round
/// trip, from a session that has pasted a program: the list, the call
/// (failing), the helpers' file and the call again in two round trips
/// and a bit (four when each PUT's answer was waited for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_contact_with_a_list_waits_for_no_put_answer() {
    let tb = TestBoard::start();
    let names: Vec<String> = (0..6).map(|k| format!("/f{k}.py")).collect();
    for n in &names {
        std::fs::write(tb.path(n), b"abc").unwrap();
    }
    let emu = LinkEmu::start(tb.port, 100.0);
    let session = Session::connect(tb.config_via(emu.port)).await.unwrap();
    let board = Board::new(session.clone(), Transfer::Auto);
    // The raw-paste window is known from here on.
    board.stat("/").await.unwrap();
    let files: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 3)).collect();
    let t = std::time::Instant::now();
    let (_, d) = board.digests(&files).await.unwrap();
    let took = t.elapsed();
    session.close().await;
    let sha = webrepl_mount::board::digest("sha256", b"abc");
    assert!(
        d.iter().all(|d| d.as_deref() == Some(sha.as_str())),
        "{d:?}"
    );
    eprintln!("first call with a list on fresh flash: {took:.2?}");
    assert!(took.as_secs_f64() < 0.55, "{took:?}: 200 ms round trips");
    assert!(tb.parts("/").is_empty(), "{:?}", tb.parts("/"));
}

/// The bundles of a copy land by one program, however many there are:
/// a program each cost a round trip each. 60 files of 2.7 KB go in three
/// bundles; besides the landing, one program asks what the board
/// inflates with. Behind an ESP32's link, where compressing pays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bundles_of_a_copy_land_by_one_program() {
    let tb = TestBoard::start();
    let emu = esp32_link(&tb);
    let session = Session::connect(tb.config_via(emu.port)).await.unwrap();
    let board = Board::new(session.clone(), Transfer::Auto);
    // The helpers defined: their first call is not counted.
    board.stat("/").await.unwrap();
    board.digests(&[("/x", 1)]).await.unwrap();
    let ups: Vec<webrepl_mount::board::Upload> = (0..60u64)
        .map(|k| {
            let dir = if k % 5 == 0 { "/lib" } else { "" };
            webrepl_mount::board::Upload::new(
                &format!("{dir}/m{k}.py"),
                source(2_700, k),
                Base::Any,
            )
        })
        .collect();
    let before = session.status().await.unwrap().totals.programs;
    let results = board.put_many(ups.clone(), true).await.unwrap();
    let programs = session.status().await.unwrap().totals.programs - before;
    session.close().await;
    for (u, r) in ups.iter().zip(results) {
        r.unwrap();
        assert_eq!(
            std::fs::read(tb.path(&u.path)).unwrap(),
            u.data,
            "{}",
            u.path
        );
    }
    eprintln!("60 files in bundles: {programs} program(s)");
    // mkdir of /lib, the inflater's probe, the landing.
    assert!(programs <= 3, "{programs} programs");
    assert!(tb.parts("/").is_empty(), "{:?}", tb.parts("/"));
    assert!(tb.parts("/lib").is_empty(), "{:?}", tb.parts("/lib"));
}

/// With the helpers defined, a copy's `mkdir -p` and its question of what
/// the board inflates with are short calls of them, a round trip each
/// (pasted, those programs took four and three raw-paste windows, a round
/// trip each). Behind a 200 ms round trip: ten files into a new
/// directory, in one bundle, in about five round trips.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_makes_its_directories_and_asks_for_the_inflater_in_short_calls() {
    let tb = TestBoard::start();
    let emu = LinkEmu::start(tb.port, 100.0);
    let session = Session::connect(tb.config_via(emu.port)).await.unwrap();
    let board = Board::new(session.clone(), Transfer::Auto);
    board.digests(&[("/x", 1)]).await.unwrap();
    let ups: Vec<webrepl_mount::board::Upload> = (0..10u64)
        .map(|k| {
            webrepl_mount::board::Upload::new(
                &format!("/app/lib/m{k}.py"),
                source(1_000, k),
                Base::Any,
            )
        })
        .collect();
    let t = std::time::Instant::now();
    let results = board.put_many(ups.clone(), true).await.unwrap();
    let took = t.elapsed();
    session.close().await;
    for (u, r) in ups.iter().zip(results) {
        r.unwrap();
        assert_eq!(
            std::fs::read(tb.path(&u.path)).unwrap(),
            u.data,
            "{}",
            u.path
        );
    }
    eprintln!("ten files into a new directory: {took:.2?}");
    assert!(took.as_secs_f64() < 1.4, "{took:?}: 200 ms round trips");
    assert!(
        tb.parts("/app/lib").is_empty(),
        "{:?}",
        tb.parts("/app/lib")
    );
}

/// The first save into a fresh mount of a board behind a 20 KB/s link
/// goes compressed: the helpers' 11 KB PUT before it went into the link's
/// buffers at once, and the rate read from how fast they drained (over
/// 75 KB/s) made inflating look slower than sending: 250 KB of source
/// went raw, 12.5 s where 3.5 s do.
#[test]
fn the_first_save_of_a_fresh_mount_behind_a_slow_link_goes_compressed() {
    let tb = TestBoard::start();
    let emu = esp32_link(&tb);
    let m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    let data = source(250_000, 5);
    let before = sent_by(&m);
    write_and_close(&m.path().join("big.py"), &data).unwrap();
    eventually(60, "the file is on the board", || {
        std::fs::read(tb.path("/big.py")).is_ok_and(|d| d == data)
    });
    let sent = sent_by(&m) - before;
    assert!(
        (sent as usize) * 2 < data.len(),
        "{sent} B sent for {} B of source",
        data.len()
    );
}
