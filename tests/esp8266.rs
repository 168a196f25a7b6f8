//! The ESP8266-like test board sleeps 20 ms after every binary transfer
//! chunk, as that port does: downloads take the text channel there, exact
//! and safe; on the ESP32-like board they keep the binary GET.

mod common;

use common::{LinkEmu, Mount, TestBoard, random_bytes};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use webrepl_mount::board::{Board, Transfer};

/// A board's own `boot.py` (every ESP board keeps one): the small file
/// whose GET measures the binary channel.
fn boot_py(tb: &TestBoard) {
    let text = "# This file is executed on every boot (including wake-boot from deepsleep)\n\
                #import esp\n#esp.osdebug(None)\nimport gc\n#import webrepl\n#webrepl.start()\ngc.collect()\n";
    std::fs::write(tb.path("/boot.py"), text).unwrap();
}

/// Every byte value, then random ones: `n` bytes.
/// The board through the link emulator `emu`, choosing its channels.
async fn via(tb: &TestBoard, emu: &LinkEmu) -> Board {
    let session = webrepl_mount::session::Session::connect(tb.config_via(emu.port));
    Board::new(session.await.unwrap(), Transfer::Auto)
}

fn every_byte(n: usize, seed: u64) -> Vec<u8> {
    let mut d: Vec<u8> = (0..=255u8).collect();
    d.extend(random_bytes(n - 256, seed));
    d
}

#[tokio::test]
async fn the_throttled_board_sends_files_through_the_text_channel_exactly() {
    let tb = TestBoard::esp8266();
    boot_py(&tb);
    let big = every_byte(100_000, 1);
    // Not a whole number of pieces, nor of GET chunks.
    let odd = every_byte(512 * 7 + 1, 2);
    std::fs::write(tb.path("/big.bin"), &big).unwrap();
    std::fs::write(tb.path("/odd.bin"), &odd).unwrap();
    let board = Board::new(tb.session().await, Transfer::Auto);
    let before = board.session().totals().await.unwrap();
    assert_eq!(board.get("/big.bin").await.unwrap(), big);
    let why = board.downloads();
    assert!(why.starts_with("text channel"), "{why}");
    assert!(why.contains("throttled"), "{why}");
    assert_eq!(board.get("/odd.bin").await.unwrap(), odd);
    // The data came as program output: far more than the binary GETs
    // (only boot.py's) could have carried, with no second GET of it.
    let t = board.session().totals().await.unwrap();
    assert!(t.bytes_in - before.bytes_in > 130_000, "{t:?}");
    // The board's REPL is left clean: a program after it runs as ever.
    let out = board.exec("print(6*7)").await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
}

#[tokio::test]
async fn the_unthrottled_board_keeps_the_binary_get() {
    let tb = TestBoard::start();
    boot_py(&tb);
    let big = every_byte(100_000, 3);
    std::fs::write(tb.path("/big.bin"), &big).unwrap();
    let emu = LinkEmu::slow(tb.port);
    let board = via(&tb, &emu).await;
    assert_eq!(board.get("/big.bin").await.unwrap(), big);
    let why = board.downloads();
    assert!(why.starts_with("binary GET"), "{why}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_persons_ctrl_c_during_a_text_download_waits_for_its_end() {
    let tb = TestBoard::esp8266();
    boot_py(&tb);
    let big = every_byte(1_000_000, 4);
    std::fs::write(tb.path("/big.bin"), &big).unwrap();
    let board = Board::new(tb.session().await, Transfer::Auto);
    // A person's terminal: what it shows, and their keys.
    let mut screen = board.session().subscribe();
    let session = board.session().clone();
    let get = tokio::spawn({
        let board = board.clone();
        async move { board.get("/big.bin").await }
    });
    // Ctrl-C as the download's first pieces arrive.
    common::eventually(20, "the text download starts", || {
        board.downloads().starts_with("text channel")
    });
    session.keys(b"\x03".to_vec()).await.unwrap();
    assert!(!get.is_finished(), "the download ended before the key");
    assert_eq!(get.await.unwrap().unwrap(), big);
    session.keys(b"print(6*7)\r".to_vec()).await.unwrap();
    let mut shown = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !String::from_utf8_lossy(&shown).contains("\n42") {
        match tokio::time::timeout_at(deadline, screen.recv()).await {
            Ok(Ok(b)) => shown.extend(b),
            other => panic!(
                "the terminal showed {:?} ({other:?})",
                String::from_utf8_lossy(&shown)
            ),
        }
    }
    let shown = String::from_utf8_lossy(&shown);
    // Nothing of the download reached the person: no base64 line, no
    // traceback of an interrupted program.
    assert!(
        !shown.contains("KeyboardInterrupt") && shown.len() < 500,
        "{shown}"
    );
}

#[test]
fn a_link_cut_during_a_text_download_leaves_no_file() {
    let tb = TestBoard::esp8266();
    boot_py(&tb);
    let big = every_byte(400_000, 5);
    std::fs::write(tb.path("/big.bin"), &big).unwrap();
    std::fs::write(tb.path("/small.bin"), every_byte(20_000, 6)).unwrap();
    let mut emu = LinkEmu::start(tb.port, 5.0);
    let dest = tempfile::tempdir().unwrap();
    // The link breaks once 200 KB came from the board, and the board
    // stays unreachable: the download cannot start over.
    emu.command("cut-down 200000");
    let mut cp = Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
        .args(["cp", "-vv", "--timeout", "2"])
        .arg(format!("127.0.0.1:{}:/big.bin", emu.port))
        .arg(dest.path())
        .env("WEBREPL_PASSWORD", &tb.password)
        .stderr(Stdio::piped())
        .spawn()
        .expect("run webrepl-mount");
    let mut log = BufReader::new(cp.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("downloads: text channel") {
        assert!(log.read_line(&mut said).unwrap() > 0, "{said}");
    }
    emu.command("refuse on");
    log.read_to_string(&mut said).unwrap();
    let status = cp.wait().unwrap();
    assert!(!status.success(), "{said}");
    assert!(
        !dest.path().join("big.bin").exists(),
        "a partial file was left"
    );
    // The link is back: the board's download program, owed credits by a
    // reader that is gone, has ended by itself and the board takes the
    // next program (it waited in input() for good before).
    emu.command("refuse off");
    let mut answered = String::new();
    common::eventually(40, "the board to take a program again", || {
        let o = Command::new(env!("CARGO_BIN_EXE_webrepl-mount"))
            .args(["exec", &format!("127.0.0.1:{}", emu.port), "print(6*7)"])
            .env("WEBREPL_PASSWORD", &tb.password)
            .output()
            .expect("run webrepl-mount");
        answered = String::from_utf8_lossy(&o.stdout).into_owned();
        answered == "42\n"
    });
}

#[test]
fn reads_through_the_mount_take_the_text_channel_and_status_says_why() {
    let tb = TestBoard::esp8266();
    boot_py(&tb);
    let data = every_byte(50_000, 6);
    std::fs::write(tb.path("/data.bin"), &data).unwrap();
    let mut m = Mount::start(&tb, &tb.addr(), &[]);
    assert_eq!(std::fs::read(m.path().join("data.bin")).unwrap(), data);
    let st = m.status();
    assert!(
        st.contains("downloads: text channel: binary GETs take"),
        "{st}"
    );
    assert!(st.contains("uploads: binary PUT"), "{st}");
    assert!(m.unmount().status.success());
}

#[tokio::test]
async fn a_throttled_board_holding_only_a_big_file_is_measured_with_a_byte_of_ours() {
    // No boot.py, no small file at the root, and a fresh flash (a `cp`
    // from a board: no id marker to read either): the first download
    // went by GET, 8.9 s for 100 KB where the text channel takes 0.10 s;
    // then by a GET of our helpers' file, 37 throttled chunks (0.77 s).
    let tb = TestBoard::esp8266();
    let data = every_byte(100_000, 9);
    std::fs::write(tb.path("/only.bin"), &data).unwrap();
    let board = Board::new(tb.session().await, Transfer::Auto);
    assert_eq!(board.get("/only.bin").await.unwrap(), data);
    let why = board.downloads();
    assert!(why.starts_with("text channel"), "{why}");
    assert!(why.contains("throttled"), "{why}");
    // The file in base64 and little more: no 9 KB probe.
    let got = board.session().status().await.unwrap().totals.bytes_in;
    assert!(got < 100_000 * 4 / 3 + 6_000, "{got} B from the board");
    // Ours, never shown.
    let names: Vec<String> = board
        .list("/", false)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(names, ["/only.bin"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_text_download_given_up_midway_leaves_the_repl_clean() {
    let tb = TestBoard::esp8266();
    boot_py(&tb);
    std::fs::write(tb.path("/big.bin"), every_byte(1_000_000, 7)).unwrap();
    let board = Board::new(tb.session().await, Transfer::Auto);
    let get = tokio::spawn({
        let board = board.clone();
        async move { board.get("/big.bin").await }
    });
    common::eventually(20, "the text download starts", || {
        board.downloads().starts_with("text channel")
    });
    // Its reader goes (a `cat` killed): the program is stopped with
    // credits maybe still on their way to the board's input.
    get.abort();
    assert!(get.await.unwrap_err().is_cancelled());
    for _ in 0..3 {
        let out = board.exec("print(6*7)").await.unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42", "{out:?}");
    }
    let small = every_byte(30_000, 8);
    std::fs::write(tb.path("/small.bin"), &small).unwrap();
    assert_eq!(board.get("/small.bin").await.unwrap(), small);
}

/// Waits until the terminal has shown `what`, up to `secs`; what it showed.
async fn shown_until(
    screen: &mut tokio::sync::broadcast::Receiver<Vec<u8>>,
    shown: &mut Vec<u8>,
    secs: u64,
    what: &str,
) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !String::from_utf8_lossy(shown).contains(what) {
        match tokio::time::timeout_at(deadline, screen.recv()).await {
            Ok(Ok(b)) => shown.extend(b),
            other => panic!(
                "the terminal showed {:?}, not {what:?} ({other:?})",
                String::from_utf8_lossy(shown)
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_persons_keys_are_answered_during_a_long_text_download() {
    let tb = TestBoard::esp8266();
    // A boot.py of several GET chunks: on a slow link one chunk's pace
    // hides the board's sleep behind the chunk's own transfer.
    std::fs::write(tb.path("/boot.py"), "# boot\n".repeat(300)).unwrap();
    // About 7 s at 40 KB/s (at an ESP32's 20 KB/s the throttled GET is
    // as fast as text: the GET is kept there).
    let big = every_byte(200_000, 9);
    std::fs::write(tb.path("/big.bin"), &big).unwrap();
    let emu = LinkEmu::with(tb.port, 5.0, &["--rate", "40000"]);
    let board = via(&tb, &emu).await;
    let mut screen = board.session().subscribe();
    let session = board.session().clone();
    let get = tokio::spawn({
        let board = board.clone();
        async move { board.get("/big.bin").await }
    });
    common::eventually(30, "the text download starts", || {
        board.downloads().starts_with("text channel") && !board.text_moving().is_empty()
    });
    session.keys(b"print(6*7)\r".to_vec()).await.unwrap();
    let mut shown = Vec::new();
    shown_until(&mut screen, &mut shown, 30, "\n42").await;
    assert!(
        !get.is_finished(),
        "the key was answered only once the download had ended"
    );
    assert_eq!(get.await.unwrap().unwrap(), big);
    let shown = String::from_utf8_lossy(&shown);
    assert!(!shown.contains("Traceback") && shown.len() < 500, "{shown}");
}

#[test]
fn status_shows_a_text_download_moving() {
    let tb = TestBoard::esp8266();
    std::fs::write(tb.path("/boot.py"), "# boot\n".repeat(300)).unwrap();
    let data = every_byte(150_000, 10);
    std::fs::write(tb.path("/data.bin"), &data).unwrap();
    let emu = LinkEmu::with(tb.port, 5.0, &["--rate", "40000"]);
    let mut m = Mount::start(&tb, &format!("127.0.0.1:{}", emu.port), &[]);
    let read = {
        let p = m.path().join("data.bin");
        std::thread::spawn(move || std::fs::read(p))
    };
    let st = m.status_until(30, |s| {
        s.lines()
            .any(|l| l.starts_with("moving: down /data.bin") && l.contains("/150000 B"))
    });
    assert!(st.contains("downloads: text channel"), "{st}");
    assert_eq!(read.join().unwrap().unwrap(), data);
    assert!(m.unmount().status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_while_a_persons_program_runs_takes_the_binary_get() {
    let tb = TestBoard::esp8266();
    boot_py(&tb);
    let first = every_byte(20_000, 11);
    let data = every_byte(30_000, 12);
    std::fs::write(tb.path("/first.bin"), &first).unwrap();
    std::fs::write(tb.path("/data.bin"), &data).unwrap();
    // As a mount is by default: a person's program is not ours to stop.
    let mut cfg = tb.config();
    cfg.interrupt = false;
    let session = webrepl_mount::session::Session::connect(cfg).await.unwrap();
    let board = Board::new(session, Transfer::Auto);
    let _screen = board.session().subscribe();
    assert_eq!(board.get("/first.bin").await.unwrap(), first);
    let why = board.downloads();
    assert!(why.starts_with("text channel"), "{why}");
    // A person's program, typed at the terminal, holds the REPL far past
    // the time-out.
    board
        .session()
        .keys(
            b"import time; open('/started','w').close(); time.sleep(60); open('/ended','w').close()\r"
                .to_vec(),
        )
        .await
        .unwrap();
    common::eventually(20, "the person's program starts", || {
        tb.path("/started").exists()
    });
    // The download (its size known, as the mount knows it) takes the
    // binary GET, which their program leaves free: before, it waited for
    // the REPL and failed busy after the time-out.
    let st = webrepl_mount::board::Stat {
        kind: webrepl_mount::board::EntryKind::File,
        size: data.len() as u64,
        mtime: 0,
    };
    assert_eq!(board.get_sized("/data.bin", st).await.unwrap(), data);
    assert!(
        !tb.path("/ended").exists(),
        "the download waited for the person's program"
    );
}

#[tokio::test]
async fn an_unthrottled_board_on_a_link_slower_than_the_throttle_keeps_the_binary_get() {
    let tb = TestBoard::start();
    // A 3 KB boot.py: its GET's chunks come every 21 ms at 12 KB/s, as
    // slow as a throttled board's.
    std::fs::write(tb.path("/boot.py"), "# boot\n".repeat(440)).unwrap();
    let big = every_byte(30_000, 13);
    std::fs::write(tb.path("/big.bin"), &big).unwrap();
    let emu = LinkEmu::with(tb.port, 5.0, &["--rate", "12000"]);
    let board = via(&tb, &emu).await;
    assert_eq!(board.get("/big.bin").await.unwrap(), big);
    let why = board.downloads();
    assert!(why.starts_with("binary GET"), "{why}");
    assert!(why.contains("where the link carries"), "{why}");
}

#[tokio::test]
async fn a_board_without_boot_py_is_measured_with_another_small_file() {
    let tb = TestBoard::esp8266();
    // No boot.py; a mount's id marker, or any small file, serves.
    std::fs::write(tb.path("/.webrepl-mount-id"), "0123456789abcdef\n").unwrap();
    std::fs::write(tb.path("/main.py"), "print('hello')\n".repeat(100)).unwrap();
    let big = every_byte(100_000, 14);
    std::fs::write(tb.path("/big.bin"), &big).unwrap();
    let board = Board::new(tb.session().await, Transfer::Auto);
    assert_eq!(board.get("/big.bin").await.unwrap(), big);
    let why = board.downloads();
    assert!(why.starts_with("text channel"), "{why}");
}

#[tokio::test]
async fn a_text_downloads_slices_do_not_paste_their_program_again() {
    let tb = TestBoard::esp8266();
    boot_py(&tb);
    let big = every_byte(100_000, 15);
    std::fs::write(tb.path("/big.bin"), &big).unwrap();
    // 20 KB/s: slices of 0.4 s are about 6 KB, some 15 of them.
    let emu = LinkEmu::with(tb.port, 5.0, &["--rate", "20000"]);
    let board = Board::new(via(&tb, &emu).await.session().clone(), Transfer::Text);
    // The helpers' class, which keeps `send` between slices.
    board.read_many(&["/boot.py"]).await.unwrap();
    let before = board.session().totals().await.unwrap();
    assert_eq!(board.get("/big.bin").await.unwrap(), big);
    let t = board.session().totals().await.unwrap();
    // `send` is ~1 KB of program: pasted once, and the slices after it a
    // call each (or none, asked for with the last credit).
    let sent = t.bytes_out - before.bytes_out;
    assert!(sent < 2_500, "{sent} bytes to the board for one download");
    // And gone from the board once the file is done.
    let out = board
        .exec("print(hasattr(_wrm, 'sd'), 'sd' in dir(_wrm))")
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "False False",
        "{out:?}"
    );
}

#[tokio::test]
async fn a_board_whose_root_has_no_file_under_4_kb_is_measured() {
    let tb = TestBoard::esp8266();
    // No boot.py: a 5 KB main.py (as our helpers' file) is the smallest.
    std::fs::write(tb.path("/main.py"), "print('hello')\n".repeat(340)).unwrap();
    let big = every_byte(100_000, 16);
    std::fs::write(tb.path("/big.bin"), &big).unwrap();
    let board = Board::new(tb.session().await, Transfer::Auto);
    let before = board.session().totals().await.unwrap();
    assert_eq!(board.get("/big.bin").await.unwrap(), big);
    let why = board.downloads();
    assert!(why.starts_with("text channel"), "{why}");
    // The first download itself went by the text channel.
    let t = board.session().totals().await.unwrap();
    assert!(t.bytes_in - before.bytes_in > 130_000, "{t:?}");
}

#[tokio::test]
async fn a_link_that_slows_down_is_measured_again() {
    let tb = TestBoard::esp8266();
    boot_py(&tb);
    let data = every_byte(30_000, 17);
    for f in ["/a.bin", "/b.bin", "/c.bin"] {
        std::fs::write(tb.path(f), &data).unwrap();
    }
    let mut emu = LinkEmu::start(tb.port, 5.0);
    let board = via(&tb, &emu).await;
    assert_eq!(board.get("/a.bin").await.unwrap(), data);
    let why = board.downloads();
    assert!(why.starts_with("text channel"), "{why}");
    // Below the throttle's 12.8 KB/s the GET moves more file per byte of
    // link than base64 does.
    emu.command("rate 8000");
    assert_eq!(board.get("/b.bin").await.unwrap(), data);
    assert_eq!(board.get("/c.bin").await.unwrap(), data);
    let why = board.downloads();
    assert!(why.starts_with("binary GET"), "{why}");
}

/// A board keeps what the small file's GET showed of its binary channel
/// until it resets: the next connection's `cp` from it takes the same
/// channel without that GET (2.5 round trips of each `cp`), on the
/// throttled board and on the unthrottled one.
#[test]
fn the_next_connection_takes_the_channel_the_board_was_measured_for() {
    for (tb, channel) in [
        (TestBoard::esp8266(), "text channel"),
        (TestBoard::start(), "binary GET"),
    ] {
        boot_py(&tb);
        std::fs::write(tb.path("/big.bin"), every_byte(60_000, 11)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cp = || {
            let to = dir.path().join("big.bin");
            let o = common::wm(
                &tb.password,
                &[
                    "cp",
                    "-vv",
                    &format!("{}:/big.bin", tb.addr()),
                    to.to_str().unwrap(),
                ],
            );
            let said = String::from_utf8_lossy(&o.stderr).to_string();
            assert!(o.status.success(), "{said}");
            assert_eq!(std::fs::read(&to).unwrap(), every_byte(60_000, 11));
            assert!(said.contains(&format!("downloads: {channel}")), "{said}");
            said
        };
        let first = cp();
        assert!(first.contains("GET /boot.py"), "{first}");
        let next = cp();
        assert!(!next.contains("GET /boot.py"), "{next}");
    }
}

/// An ESP32-like board on a 15 KB/s link: its big GETs come at 17 ms a
/// chunk, the link's pace, about an ESP8266's sleep. Download after
/// download they keep the binary GET; averaged into the board's pause per
/// chunk, the third read as throttled and the rest took the text channel
/// (45% slower there).
#[tokio::test]
async fn downloads_after_downloads_on_a_15_kb_link_keep_the_binary_get() {
    let tb = TestBoard::start();
    boot_py(&tb);
    let files: Vec<Vec<u8>> = (0..4).map(|k| every_byte(40_000, 40 + k)).collect();
    for (k, f) in files.iter().enumerate() {
        std::fs::write(tb.path(&format!("/f{k}.bin")), f).unwrap();
    }
    let emu = LinkEmu::with(tb.port, 5.0, &["--rate", "15000", "--segment", "1460"]);
    let board = via(&tb, &emu).await;
    for (k, f) in files.iter().enumerate() {
        assert_eq!(&board.get(&format!("/f{k}.bin")).await.unwrap(), f);
        let why = board.downloads();
        assert!(why.starts_with("binary GET"), "download {k}: {why}");
    }
}
