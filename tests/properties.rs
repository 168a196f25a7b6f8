//! Property tests: every parser and state machine takes arbitrary bytes from
//! the board, split anywhere, without panicking, and round trips hold.
//! `PROPTEST_CASES=100000 cargo test --test properties` runs them longer.

use proptest::prelude::*;
use webrepl_mount::board::snippets;
use webrepl_mount::protocol::frame::{self, Decoder, FrameKind};
use webrepl_mount::protocol::raw::{NoticeFilter, Program, Step};
use webrepl_mount::protocol::transfer::{Get, Op, Put, header};
use webrepl_mount::protocol::{handshake, login::Login};

fn splits(data: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    at.sort();
    let mut out = Vec::new();
    let mut prev = 0;
    for c in at.into_iter().chain([data.len()]) {
        out.push(data[prev..c.max(prev)].to_vec());
        prev = c.max(prev);
    }
    out
}

proptest! {
    #[test]
    fn the_frame_decoder_survives_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let mut d = Decoder::default();
        d.push(&data);
        for _ in 0..64 {
            match d.next_frame() {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }

    #[test]
    fn frames_round_trip_through_any_split(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..70_000), 1..4),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut wire = Vec::new();
        for p in &payloads {
            let p = &p[..p.len().min(frame::MAX_PAYLOAD)];
            // Unmasked, as a board sends: decode what a client would encode.
            let mut f = frame::encode(FrameKind::Binary, p, [0; 4]);
            f[1] &= 0x7f;
            let hdr = if p.len() < 126 { 2 } else { 4 };
            f.drain(hdr..hdr + 4);
            wire.extend(f);
        }
        let mut d = Decoder::default();
        let mut got = Vec::new();
        for piece in splits(&wire, &cuts) {
            d.push(&piece);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f.payload);
            }
        }
        let want: Vec<Vec<u8>> = payloads.iter().map(|p| p[..p.len().min(frame::MAX_PAYLOAD)].to_vec()).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn get_and_put_take_any_reply_without_panicking(
        size in 0u64..5000,
        replies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..20),
    ) {
        let mut g = Get::new(size, 8);
        let mut pending = Vec::new();
        let mut p = Put::new(size);
        for r in &replies {
            let _ = g.acks_to_send();
            if g.feed(r, &mut pending).is_err() { break; }
        }
        for r in &replies {
            if p.feed(r).is_err() { break; }
        }
    }

    #[test]
    fn a_get_never_has_more_acks_out_than_the_file_needs(size in 0u64..20_000, window in 1u64..100) {
        let mut g = Get::new(size, window);
        let mut pending = Vec::new();
        g.feed(b"WB\0\0", &mut pending).unwrap();
        let sent = g.acks_to_send() as u64;
        prop_assert!(sent <= size.div_ceil(256) + 1);
        prop_assert!(sent <= window);
    }

    #[test]
    fn headers_take_any_short_name(name in proptest::collection::vec(1u8..=255, 0..=63), size in any::<u32>()) {
        let h = header(Op::Put, &name, size as u64).unwrap();
        prop_assert_eq!(&h[18..18 + name.len()], &name[..]);
        prop_assert_eq!(h[18 + name.len()..].iter().all(|&b| b == 0), true);
    }

    #[test]
    fn the_raw_repl_machine_takes_any_answer(
        code in proptest::collection::vec(any::<u8>(), 0..2000),
        answers in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..30),
        known in prop_oneof![Just(0usize), 1usize..300],
    ) {
        let mut p = if known == 0 { Program::new(code) } else { Program::with_window(code, known) };
        let mut answers = answers.into_iter();
        for _ in 0..500 {
            match p.poll() {
                Step::Done(_) => break,
                Step::Wait => match answers.next() {
                    Some(a) => { if p.feed(&a).is_err() { break; } }
                    None => break,
                },
                Step::Send(_) | Step::SendPaced(_) => {}
            }
        }
    }

    #[test]
    fn notices_come_out_whole_wherever_the_text_is_cut(
        before in "[a-z\n]{0,40}", after in "[a-z\n]{0,40}", cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        let notice = "\nConcurrent WebREPL connection from ('10.0.0.2', 51234) rejected\n";
        let text = format!("{before}{notice}{after}");
        let mut f = NoticeFilter::default();
        let mut out = Vec::new();
        let mut notices = 0;
        for piece in splits(text.as_bytes(), &cuts) {
            let (o, n) = f.feed(&piece);
            out.extend(o);
            notices += n.len();
        }
        out.extend(f.feed(b"!").0);
        prop_assert_eq!(notices, 1);
        prop_assert_eq!(String::from_utf8(out).unwrap(), format!("{before}{after}!"));
    }

    #[test]
    fn handshake_and_login_parsers_take_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = handshake::parse_response(&data, "dGhlIHNhbXBsZSBub25jZQ==");
        let mut l = Login::default();
        let _ = l.feed(&data);
        let _ = l.feed(&data);
    }

    #[test]
    fn snippet_answers_parse_or_fail_cleanly(text in proptest::collection::vec(any::<u8>(), 0..2000)) {
        for line in snippets::lines(&text) {
            let _ = snippets::os_error(line, "x");
            if let Some(hex) = line.split(' ').nth(3) { let _ = snippets::unhex(hex); }
        }
        let _ = snippets::expect_ok(&text, "x");
    }

    #[test]
    fn paths_become_literals_that_hide_every_byte_of_code(path in "\\PC{0,60}") {
        let l = snippets::lit(&path);
        prop_assert!(l.starts_with("b'") && l.ends_with("'.decode()"));
        let inner = &l[2..l.len() - "'.decode()".len()];
        // Read back as Python reads it: the same bytes, and no character
        // that could end the literal or start code.
        prop_assert_eq!(python_bytes(inner), Some(path.as_bytes().to_vec()), "{}", l);
    }
}

proptest! {
    /// What the board is sent inflates with a window of 2^wbits bytes (a
    /// stream that needs more fails to inflate in one so small), to exactly
    /// the bytes compressed.
    #[test]
    fn a_compressed_upload_inflates_in_its_small_window(
        words in proptest::collection::vec("[a-z_]{1,12}|[ (),:=\n]{1,3}", 0..3000),
        noise in proptest::collection::vec(any::<u8>(), 0..2000),
        wbits in 9u8..=10,
    ) {
        let mut data = words.concat().into_bytes();
        data.extend_from_slice(&noise);
        let z = webrepl_mount::board::compress(&data, wbits);
        let mut d = flate2::Decompress::new_with_window_bits(true, wbits);
        let mut out = Vec::with_capacity(data.len() + 1);
        let st = d.decompress_vec(&z, &mut out, flate2::FlushDecompress::Finish);
        prop_assert_eq!(st.ok(), Some(flate2::Status::StreamEnd));
        prop_assert_eq!(out, data);
    }
}

proptest! {
    /// A delta rebuilds the new version from the base exactly, for any
    /// edits of any base; one small edit of a big file is a small delta.
    #[test]
    fn a_delta_rebuilds_the_new_version_exactly(
        base in proptest::collection::vec(any::<u8>(), 0..6000),
        edits in proptest::collection::vec((any::<u16>(), 0usize..300, proptest::collection::vec(any::<u8>(), 0..300)), 0..6),
    ) {
        use webrepl_mount::board::{apply_delta, diff, encode_delta};
        let mut new = base.clone();
        for (at, cut, put) in edits {
            let at = at as usize % (new.len() + 1);
            let end = (at + cut).min(new.len());
            new.splice(at..end, put);
        }
        let d = encode_delta(&diff(&base, &new));
        prop_assert_eq!(apply_delta(&base, &d), Some(new.clone()));
        if base.len() > 4000 && new.len() == base.len() && new.iter().zip(&base).filter(|(a, b)| a != b).count() <= 1 {
            prop_assert!(d.len() < 120, "{}", d.len());
        }
    }
}

/// A Python bytes literal's body, decoded as Python does for the escapes
/// `lit` writes (`\xNN`) and the characters it leaves plain; None for
/// anything else.
fn python_bytes(inner: &str) -> Option<Vec<u8>> {
    let b = inner.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if b.get(i + 1) != Some(&b'x') {
                return None;
            }
            out.push(u8::from_str_radix(inner.get(i + 2..i + 4)?, 16).ok()?);
            i += 4;
        } else if b[i].is_ascii_alphanumeric() || b"._/- ".contains(&b[i]) {
            out.push(b[i]);
            i += 1;
        } else {
            return None;
        }
    }
    Some(out)
}
