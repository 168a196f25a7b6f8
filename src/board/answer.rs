//! The answer lines of our programs (`helpers.py`, `programs.py`), parsed
//! in one place. A line is a letter and fields separated by spaces; names
//! come hex-encoded. Numbers that do not parse make the line `Other`:
//! board chatter, or a program that went wrong.

/// One answer line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<'a> {
    /// `K`: done.
    Ok,
    /// `K <mtime>`: an upload is on its target.
    Done(i64),
    /// `K <mtime> <ms>`: an upload inflated in `ms` is on its target. (A
    /// text download ends with the same two numbers' line: `K <bytes>
    /// <crc>`, see stream.rs.)
    Landed { mtime: i64, ms: i64 },
    /// `E <errno> [<hex path>]`: an OSError (EIO when the number is bad).
    Os { errno: i32, hex: Option<&'a str> },
    /// `S <mode> <size> <mtime>`.
    Stat { mode: u32, size: u64, mtime: i64 },
    /// `D|F <size> <mtime> <hex path>`: a listing's entry.
    Entry {
        dir: bool,
        size: u64,
        mtime: i64,
        hex: &'a str,
    },
    /// `F`: a file's base64 lines follow, up to `.`.
    File,
    /// `.`: the end of a file's lines.
    End,
    /// `A <algorithm>`: the digests that follow.
    Algorithm(&'a str),
    /// `N`: no such file.
    Missing,
    /// `S`: the file has another size.
    OtherSize,
    /// `H <digest>`.
    Digest(&'a str),
    /// `Y <year>`: the board's epoch.
    Year(i32),
    /// `V <statvfs fields>`.
    Vfs(Vec<u64>),
    /// `V <crc>`: the part holds other bytes than were sent.
    Crc(u32),
    /// `C <mtime> <target size> <target mtime>`: the upload went beside
    /// its target, which had changed.
    Beside {
        mtime: i64,
        size: u64,
        target_mtime: i64,
    },
    /// `P <free> <index>...`: these slices came up short.
    Slices { free: u64, short: Vec<usize> },
    /// `Z <kept> <free>`: the part file was short.
    Short { kept: u64, free: u64 },
    /// `M <bytes>`: the board's free heap.
    Mem(u64),
    /// `G <µs>`: a GET chunk's pace on this board, as an earlier
    /// connection measured it (kept in the helpers' class).
    Paced(u64),
    /// `B <hex>`: block sums (8 hex digits each) of a file (`sums`).
    Sums(&'a str),
    /// `W <size> <crc>`: a file's size and CRC-32, after its block sums.
    Whole { size: u64, crc: u32 },
    /// `T <size> <pieces>`: a text download's announcement.
    Announced { size: u64, pieces: u64 },
    /// `I <kind> <bytes>`: what the board inflates with (2: `deflate`,
    /// 1: `zlib`/`uzlib`, 0: nothing), and its free heap.
    Inflater { kind: u8, free: u64 },
    /// `J <next>`: a step of a join (`js`) left slices from `next` on.
    Joined(u64),
    /// `R <size> <mtime> <hex>`: a range's end, with the file's size and
    /// mtime and the range's CRC-32 (8 hex digits) or SHA-256.
    Range {
        size: u64,
        mtime: i64,
        check: &'a str,
    },
    /// `> <number>`: the listing's entries that follow are in this
    /// directory (a compact listing's): 0 for the one listed, n for the
    /// directory of its n-th `d` line.
    InDir(usize),
    /// `d|f <size> <mtime> <name>`: a compact listing's entry, named in
    /// the directory of the last `InDir` (see `sn::name_bytes`), its
    /// mtime the difference from the previous entry's.
    Named {
        dir: bool,
        size: u64,
        mtime: i64,
        name: &'a str,
    },
    /// Anything else (base64 data, board chatter).
    Other(&'a str),
}

impl<'a> Answer<'a> {
    pub fn parse(line: &'a str) -> Answer<'a> {
        Self::fields(line).unwrap_or(Answer::Other(line))
    }

    fn fields(line: &'a str) -> Option<Answer<'a>> {
        fn n<T: std::str::FromStr>(s: &str) -> Option<T> {
            s.parse().ok()
        }
        let f: Vec<&str> = line.split(' ').collect();
        Some(match f.as_slice() {
            ["K"] => Answer::Ok,
            ["K", mtime] => Answer::Done(n(mtime)?),
            ["K", mtime, ms] => Answer::Landed {
                mtime: n(mtime)?,
                ms: n(ms)?,
            },
            ["E", errno] | ["E", errno, _] => Answer::Os {
                errno: n(errno).unwrap_or(libc::EIO),
                hex: f.get(2).copied(),
            },
            ["S", mode, size, mtime] => Answer::Stat {
                mode: n(mode)?,
                size: n(size)?,
                mtime: n(mtime)?,
            },
            [k @ ("D" | "F"), size, mtime, hex] => Answer::Entry {
                dir: *k == "D",
                size: n(size)?,
                mtime: n(mtime)?,
                hex,
            },
            ["F"] => Answer::File,
            ["."] => Answer::End,
            ["A", a] => Answer::Algorithm(a),
            ["N"] => Answer::Missing,
            ["S"] => Answer::OtherSize,
            ["H", h] => Answer::Digest(h),
            ["Y", y] => Answer::Year(n(y)?),
            ["G", us] => Answer::Paced(n(us)?),
            ["V", crc] => Answer::Crc(u32::from_str_radix(crc, 16).ok()?),
            ["V", rest @ ..] => Answer::Vfs(rest.iter().map(|v| n(v)).collect::<Option<_>>()?),
            ["C", mtime, size, tmtime] => Answer::Beside {
                mtime: n(mtime)?,
                size: n(size)?,
                target_mtime: n(tmtime)?,
            },
            ["P", free, short @ ..] => Answer::Slices {
                free: n(free)?,
                short: short.iter().map(|k| n(k)).collect::<Option<_>>()?,
            },
            ["Z", kept, free] => Answer::Short {
                kept: n(kept)?,
                free: n(free)?,
            },
            ["M", free] => Answer::Mem(n(free)?),
            ["B", hex] => Answer::Sums(hex),
            ["W", size, crc] => Answer::Whole {
                size: n(size)?,
                crc: n(crc)?,
            },
            ["T", size, pieces] => Answer::Announced {
                size: n(size)?,
                pieces: n(pieces)?,
            },
            ["J", next] => Answer::Joined(n(next)?),
            ["I", kind, free] => Answer::Inflater {
                kind: n(kind)?,
                free: n(free)?,
            },
            ["R", size, mtime, check] => Answer::Range {
                size: n(size)?,
                mtime: n(mtime)?,
                check,
            },
            [">", k] => Answer::InDir(n(k)?),
            [k @ ("d" | "f"), size, mtime, name] => Answer::Named {
                dir: *k == "d",
                size: n(size)?,
                mtime: n(mtime)?,
                name,
            },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_are_told_apart_by_their_fields() {
        assert_eq!(Answer::parse("K"), Answer::Ok);
        assert_eq!(Answer::parse("K 12"), Answer::Done(12));
        assert_eq!(Answer::parse("S"), Answer::OtherSize);
        assert_eq!(
            Answer::parse("S 16384 0 5"),
            Answer::Stat {
                mode: 16384,
                size: 0,
                mtime: 5
            }
        );
        assert_eq!(Answer::parse("V 0000abcd"), Answer::Crc(0xabcd));
        assert_eq!(Answer::parse("V 1 2 3"), Answer::Vfs(vec![1, 2, 3]));
        assert_eq!(
            Answer::parse("E x 2f"),
            Answer::Os {
                errno: libc::EIO,
                hex: Some("2f")
            }
        );
        assert_eq!(
            Answer::parse("P 100 1 3"),
            Answer::Slices {
                free: 100,
                short: vec![1, 3]
            }
        );
        assert_eq!(Answer::parse("Z 1 x"), Answer::Other("Z 1 x"));
        assert_eq!(Answer::parse("QUJD"), Answer::Other("QUJD"));
        assert_eq!(Answer::parse("> 12"), Answer::InDir(12));
        assert_eq!(Answer::parse("> /lib"), Answer::Other("> /lib"));
        assert_eq!(
            Answer::parse("f 3 -1 %0a"),
            Answer::Named {
                dir: false,
                size: 3,
                mtime: -1,
                name: "%0a"
            }
        );
        assert_eq!(Answer::parse("d 0 x a"), Answer::Other("d 0 x a"));
        assert_eq!(Answer::parse("B "), Answer::Sums(""));
        assert_eq!(
            Answer::parse("W 10 4294967295"),
            Answer::Whole {
                size: 10,
                crc: u32::MAX
            }
        );
        assert_eq!(
            Answer::parse("T 5000 3"),
            Answer::Announced {
                size: 5000,
                pieces: 3
            }
        );
        assert_eq!(Answer::parse("T 5000"), Answer::Other("T 5000"));
    }
}
