//! Downloads through the text channel: a program (`send` in programs.py)
//! prints the file as base64 lines, a piece each, and prints more only as
//! we credit it, so the board never writes faster than we read (a board's
//! socket buffer is a few KB; what does not fit is lost). Faster than the
//! binary GET on boards that sleep after every binary chunk (ESP8266).
//!
//! [`Download`] reads the program's answer without I/O: it bounds every
//! line and count by what the board announced and we allow, and checks the
//! size and CRC-32 at the end.

use super::answer::Answer;
use crate::error::{Error, Result};
use crate::protocol::ProtocolError;
use crate::session::Piece;
use base64::Engine;
use std::time::Instant;

/// Bytes per piece (one base64 line of 684 characters).
pub const PIECE: usize = 512;
/// Pieces the program prints before it waits for credits: about 2.7 KB of
/// output in flight, which an ESP8266's socket buffer (2 × 1460) nearly
/// holds, and 200 KB/s at a 10 ms round trip.
pub const WINDOW: usize = 4;
/// The largest file fetched this way (as the cache's largest file).
pub const MAX_SIZE: u64 = 64 << 20;
/// A download goes in slices, one program each, so that a person's keys and
/// other requests wait at most one slice for the REPL: about this long at
/// the rate measured (less while a person types), in pieces.
const SLICE_TIME: f64 = 0.4;
const SLICE_TIME_TYPING: f64 = 0.15;
/// Before the rate is known: 16 KB, as uploads' first slice.
const SLICE_FIRST: u64 = 32;
/// Each slice costs pasting its program: not less than this.
const SLICE_MIN: u64 = 8;
const SLICE_MAX: u64 = 8192;

/// The pieces of the next slice for text arriving at `rate` bytes of file
/// data per second (None: not measured yet).
pub fn slice_pieces(rate: Option<f64>, typing: bool) -> u64 {
    let Some(rate) = rate.filter(|r| r.is_finite() && *r > 0.0) else {
        // 16 KB is 1.2 s on a 20 KB/s link: too long for a person typing.
        return if typing { SLICE_MIN } else { SLICE_FIRST };
    };
    let time = if typing {
        SLICE_TIME_TYPING
    } else {
        SLICE_TIME
    };
    ((rate * time / PIECE as f64) as u64).clamp(SLICE_MIN, SLICE_MAX)
}

/// One slice of a text download as it comes: its reader, and when it was
/// asked for and its first data came (the slice's cost, for the choice of
/// channel).
#[derive(Debug)]
pub struct Slice {
    pub reader: Download,
    pub first: u64,
    pub asked: Instant,
    pub start: Option<Instant>,
}

impl Slice {
    pub fn new(what: &str, first: u64, most: u64, asked: Instant) -> Slice {
        Slice {
            reader: Download::slice(what, first, most),
            first,
            asked,
            start: None,
        }
    }

    /// Feeds `text`, its file data to `sink`: bytes taken, credits due,
    /// and whether the last of them is among them.
    pub fn take(
        &mut self,
        text: &[u8],
        sink: &mut (dyn FnMut(Piece) + Send),
    ) -> Result<(usize, usize, bool)> {
        let fed = self.reader.feed(text)?;
        if !fed.data.is_empty() {
            self.start.get_or_insert_with(Instant::now);
            sink(Piece::Data(fed.data));
        }
        Ok((fed.used, fed.credits, fed.last))
    }

    /// Whether the file goes on past this slice, as announced.
    pub fn more(&self) -> bool {
        self.reader
            .announced()
            .is_some_and(|(z, k)| self.first + k < z.div_ceil(PIECE as u64))
    }

    pub fn chained(&self) -> bool {
        self.reader.chained()
    }

    /// The slice that follows this one in the same program, asked for now.
    pub fn next(&self, what: &str, most: u64) -> Slice {
        let k = self.reader.announced().map_or(0, |(_, k)| k);
        Slice::new(what, self.first + k, most, Instant::now())
    }
}

/// A line longer than a piece's base64 is not the program's.
const MAX_LINE: usize = PIECE.div_ceil(3) * 4 + 8;

/// What a part of the program's answer gave.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fed {
    /// The file's next bytes.
    pub data: Vec<u8>,
    /// Credits to send the program now.
    pub credits: usize,
    /// Among them, the slice's last: the one to send the next slice's
    /// request with (see `send` in programs.py).
    pub last: bool,
    /// Bytes of the text taken: the rest, after the slice's end, is the
    /// next slice's.
    pub used: usize,
}

/// The reader of one `send` program's answer.
#[derive(Debug)]
pub struct Download {
    what: String,
    line: Vec<u8>,
    /// The slice asked for: its first piece, and at most how many.
    first: u64,
    most: u64,
    /// Size and pieces the program announced.
    size: Option<(u64, u64)>,
    pieces: u64,
    bytes: u64,
    credited: u64,
    crc: crc32fast::Hasher,
    /// The program's end: `Ok` once size and CRC matched.
    end: Option<Result<u64>>,
    /// The next slice was asked for: text after the end is its.
    chained: bool,
}

impl Download {
    pub fn new(what: &str) -> Download {
        Download::slice(what, 0, u64::MAX)
    }

    /// The reader of a program sending at most `most` pieces from piece
    /// `first`.
    pub fn slice(what: &str, first: u64, most: u64) -> Download {
        Download {
            what: what.to_string(),
            line: Vec::new(),
            first,
            most,
            size: None,
            pieces: 0,
            bytes: 0,
            credited: 0,
            crc: crc32fast::Hasher::new(),
            end: None,
            chained: false,
        }
    }

    /// The next slice was asked for (with the last credit): the text
    /// after this one's end is left for its reader.
    pub fn chain(&mut self) {
        self.chained = true;
    }

    /// The whole file's size and the slice's pieces, as announced.
    pub fn announced(&self) -> Option<(u64, u64)> {
        self.size
    }

    /// Whether the program said its last line.
    pub fn ended(&self) -> bool {
        self.end.is_some()
    }

    /// Whether the next slice was asked for.
    pub fn chained(&self) -> bool {
        self.chained
    }

    fn bad(&self, why: impl std::fmt::Display) -> Error {
        Error::Protocol(ProtocolError::Base64(format!(
            "{}: the board's text download {why}",
            self.what
        )))
    }

    pub fn feed(&mut self, text: &[u8]) -> Result<Fed> {
        let mut fed = Fed::default();
        for &b in text {
            if self.end.is_some() && self.chained {
                break;
            }
            fed.used += 1;
            if b == b'\n' {
                let line = std::mem::take(&mut self.line);
                let line = line.strip_suffix(b"\r").unwrap_or(&line);
                self.line_in(line, &mut fed)?;
            } else if self.line.len() >= MAX_LINE {
                return Err(self.bad("sent a line too long"));
            } else {
                self.line.push(b);
            }
        }
        Ok(fed)
    }

    fn line_in(&mut self, line: &[u8], fed: &mut Fed) -> Result<()> {
        // The echo of a credit, read by the program's `input()`, and of
        // the reader's word after a slice (see `send` in programs.py).
        if line.is_empty()
            || (line == b"c" && self.size.is_none())
            || (line == b"e" && self.end.is_some())
        {
            return Ok(());
        }
        if self.end.is_some() {
            return Err(self.bad("went on after its end"));
        }
        let text = String::from_utf8_lossy(line);
        let Some((size, pieces)) = self.size else {
            return match Answer::parse(&text) {
                Answer::Announced { size: z, pieces: k } => {
                    let left = z.div_ceil(PIECE as u64).saturating_sub(self.first);
                    if z > MAX_SIZE || k != left.min(self.most) {
                        return Err(self.bad(format!("announced {z} bytes in {k} pieces")));
                    }
                    self.size = Some((z, k));
                    Ok(())
                }
                Answer::Os { errno, hex: None } => {
                    self.end = Some(Err(super::sn::errno_error(errno, &self.what)));
                    Ok(())
                }
                _ => Err(self.bad(format!("began with {text:?}"))),
            };
        };
        if self.pieces < pieces {
            let data = if line == b"-" {
                Vec::new()
            } else {
                base64::engine::general_purpose::STANDARD
                    .decode(line)
                    .map_err(|e| self.bad(format!("sent bad base64 ({e})")))?
            };
            let room = size.saturating_sub(self.first.saturating_mul(PIECE as u64));
            if data.len() > PIECE || self.bytes + data.len() as u64 > room {
                return Err(self.bad("sent more than it announced"));
            }
            self.pieces += 1;
            self.bytes += data.len() as u64;
            self.crc.update(&data);
            // One credit per piece received, until the program has all it
            // will read: `pieces - WINDOW`.
            if self.credited + (WINDOW as u64) < pieces {
                self.credited += 1;
                fed.credits += 1;
                fed.last |= self.credited + WINDOW as u64 == pieces;
            }
            fed.data.extend_from_slice(&data);
            return Ok(());
        }
        self.end = Some(match Answer::parse(&text) {
            // `K <bytes> <crc>`: Landed's two numbers.
            Answer::Landed { mtime: t, ms: c } => {
                let crc = self.crc.clone().finalize();
                if u64::try_from(t) == Ok(self.bytes) && u32::try_from(c) == Ok(crc) {
                    Ok(self.bytes)
                } else {
                    Err(self.bad(format!(
                        "ended with {text:?}: {} bytes with CRC-32 {crc} came",
                        self.bytes
                    )))
                }
            }
            Answer::Os { errno, hex: None } => Err(super::sn::errno_error(errno, &self.what)),
            _ => Err(self.bad(format!("ended with {text:?}"))),
        });
        Ok(())
    }

    /// The outcome once the program has ended: the file's size.
    pub fn finish(self) -> Result<u64> {
        match self.end {
            Some(r) => r,
            None => Err(self.bad("stopped before its end")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(data: &[u8], echo: bool) -> Vec<u8> {
        let mut out = format!("T {} {}\r\n", data.len(), data.len().div_ceil(PIECE)).into_bytes();
        for (i, p) in data.chunks(PIECE).enumerate() {
            if echo && i >= WINDOW {
                out.extend_from_slice(b"\r\n");
            }
            out.extend(base64::engine::general_purpose::STANDARD.encode(p).bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend(format!("K {} {}\r\n", data.len(), crc32fast::hash(data)).bytes());
        out
    }

    fn run(answer: &[u8], split: usize) -> (Result<u64>, Vec<u8>, usize) {
        let mut d = Download::new("/f");
        let (mut data, mut credits) = (Vec::new(), 0);
        for part in answer.chunks(split) {
            match d.feed(part) {
                Ok(f) => {
                    data.extend(f.data);
                    credits += f.credits;
                }
                Err(e) => return (Err(e), data, credits),
            }
        }
        (d.finish(), data, credits)
    }

    #[test]
    fn every_byte_value_arrives_with_one_credit_per_piece_past_the_window() {
        let data: Vec<u8> = (0..20 * PIECE + 7).map(|i| (i * 7 % 256) as u8).collect();
        for split in [1, 5, 700, 100_000] {
            let (r, got, credits) = run(&answer(&data, true), split);
            assert_eq!(r.unwrap(), data.len() as u64);
            assert_eq!(got, data);
            assert_eq!(credits, 21 - WINDOW);
        }
    }

    #[test]
    fn a_small_file_needs_no_credit_and_an_empty_one_no_piece() {
        let (r, got, credits) = run(&answer(b"abc", false), 3);
        assert_eq!((r.unwrap(), got.as_slice(), credits), (3, &b"abc"[..], 0));
        let (r, got, _) = run(b"T 0 0\r\nK 0 0\r\n", 4);
        assert_eq!((r.unwrap(), got.len()), (0, 0));
    }

    #[test]
    fn a_changed_byte_or_a_lost_line_is_an_error() {
        let data = vec![9u8; 3 * PIECE];
        let mut a = answer(&data, false);
        let i = a.iter().position(|&b| b == b'C').unwrap();
        a[i] = b'D';
        assert!(run(&a, 64).0.is_err(), "a changed byte passed");
        let a = answer(&data, false);
        let text = String::from_utf8(a).unwrap();
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let lost: String = [lines[0], lines[1], lines[3], lines[4]].concat();
        assert!(run(lost.as_bytes(), 64).0.is_err(), "a lost line passed");
    }

    #[test]
    fn what_the_board_says_is_bounded() {
        // A size past the bound, pieces that do not match it, a line
        // without end, more data than announced.
        assert!(run(b"T 99999999999 195312500\r\n", 100).0.is_err());
        assert!(run(b"T 10 7\r\n", 100).0.is_err());
        assert!(run(&vec![b'A'; 10 * MAX_LINE], 100).0.is_err());
        let long = base64::engine::general_purpose::STANDARD.encode(vec![1u8; 20]);
        assert!(
            run(format!("T 10 1\r\n{long}\r\n").as_bytes(), 100)
                .0
                .is_err()
        );
        // Cut short: no end line.
        let data = vec![1u8; 2 * PIECE];
        let a = answer(&data, false);
        assert!(run(&a[..a.len() - 10], 100).0.is_err());
    }

    #[test]
    fn a_slice_announces_the_whole_size_and_its_own_pieces() {
        let data = vec![3u8; 5 * PIECE + 9];
        // Pieces 2..4 of 6.
        let mut a = format!("T {} 2\r\n", data.len()).into_bytes();
        let part = &data[2 * PIECE..4 * PIECE];
        for p in part.chunks(PIECE) {
            a.extend(base64::engine::general_purpose::STANDARD.encode(p).bytes());
            a.extend_from_slice(b"\r\n");
        }
        a.extend(format!("K {} {}\r\n", part.len(), crc32fast::hash(part)).bytes());
        let mut d = Download::slice("/f", 2, 2);
        assert_eq!(d.feed(&a).unwrap().data, part);
        assert_eq!(d.announced(), Some((data.len() as u64, 2)));
        assert_eq!(d.finish().unwrap(), part.len() as u64);
        // A slice that announces more pieces than asked for is not ours.
        let mut d = Download::slice("/f", 2, 2);
        assert!(
            d.feed(format!("T {} 4\r\n", data.len()).as_bytes())
                .is_err()
        );
        assert_eq!(slice_pieces(None, false), SLICE_FIRST);
        assert_eq!(slice_pieces(None, true), SLICE_MIN);
        // 15 KB/s of file data: slices of 0.4 s, shorter while typing.
        assert_eq!(slice_pieces(Some(15_000.0), false), 11);
        assert_eq!(slice_pieces(Some(15_000.0), true), SLICE_MIN);
        assert_eq!(slice_pieces(Some(1e12), false), SLICE_MAX);
    }

    #[test]
    fn a_file_the_board_cannot_read_is_its_errno() {
        match run(b"E 2\r\n", 100).0 {
            Err(Error::NotFound(_)) | Err(Error::Os { errno: 2, .. }) => {}
            other => panic!("{other:?}"),
        }
    }
}
