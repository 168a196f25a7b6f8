//! Part of a file, read by a helper (`_wrm.rr`) on the text channel: a reader that
//! peeks at a big file's first bytes (a file manager, an IDE, `head`) needs
//! neither the whole file nor the binary channel, which may be busy with
//! another file's transfer for many seconds.

use super::*;

/// The most a range read moves (base64 makes it a third more on the wire).
pub const RANGE_MAX: u64 = 64 * 1024;

/// Bytes of a file, and the file's size and mtime when they were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub data: Vec<u8>,
    pub size: u64,
    pub mtime: i64,
}

impl Board {
    /// Bytes `[start, start + len)` of `path` (fewer at the file's end),
    /// checked against the board's CRC-32 (or SHA-256) of what it sent.
    pub async fn read_range(&self, path: &str, start: u64, len: u64) -> Result<Range> {
        let len = len.min(RANGE_MAX);
        let code = sn::helper_call("rr", &[path, &start.to_string(), &len.to_string()]);
        let out = self.with_helpers(code, Run::QUERY).await?;
        parse_range(&out, path, start, len)
    }
}

/// The answer of `_wrm.rr`: base64 lines between `F` and `.`, then
/// `R <size> <mtime> <check>` (or `E <errno>`).
fn parse_range(out: &[u8], path: &str, start: u64, len: u64) -> Result<Range> {
    use base64::Engine;
    let mut b64: Option<Vec<u8>> = None;
    let mut data = None;
    for l in sn::lines(out) {
        match (Answer::parse(l), &mut b64) {
            (Answer::File, None) if data.is_none() => b64 = Some(Vec::new()),
            (Answer::End, Some(b)) => {
                let d = base64::engine::general_purpose::STANDARD
                    .decode(&*b)
                    .map_err(|e| Error::Protocol(ProtocolError::Base64(e.to_string())))?;
                b64 = None;
                data = Some(d);
            }
            (_, Some(b)) => {
                // Base64 of at most `len` bytes: anything longer is not ours.
                if (b.len() + l.len()) as u64 > len.div_ceil(3) * 4 + 4 {
                    return Err(sn::unexpected(b"a range longer than asked", path));
                }
                b.extend_from_slice(l.as_bytes());
            }
            (Answer::Os { errno, .. }, None) => return Err(sn::errno_error(errno, path)),
            (Answer::Range { size, mtime, check }, None) => {
                let Some(data) = data.take() else { break };
                let expected = size.saturating_sub(start).min(len);
                if data.len() as u64 != expected || !checks(&data, check) {
                    return Err(Error::Protocol(ProtocolError::Damaged(vec![format!(
                        "{}: {} B of {start}..+{len} (check {check})",
                        shown(path),
                        data.len()
                    )])));
                }
                return Ok(Range { data, size, mtime });
            }
            _ => {}
        }
    }
    Err(sn::unexpected(out, path))
}

/// Whether `data` matches the board's check: 8 hex digits of CRC-32, or
/// 64 of SHA-256.
fn checks(data: &[u8], check: &str) -> bool {
    match check.len() {
        8 => u32::from_str_radix(check, 16).is_ok_and(|c| c == crc32fast::hash(data)),
        64 => digest("sha256", data).eq_ignore_ascii_case(check),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(data: &[u8], size: u64, check: &str) -> Vec<u8> {
        use base64::Engine;
        let b = base64::engine::general_purpose::STANDARD.encode(data);
        format!("F\r\n{b}\r\n.\r\nR {size} 7 {check}\r\n").into_bytes()
    }

    #[test]
    fn a_range_is_taken_only_whole_and_checked() {
        let d = b"hello, board";
        let crc = format!("{:08x}", crc32fast::hash(d));
        let r = parse_range(&answer(d, 1000, &crc), "/f", 0, 12).unwrap();
        assert_eq!((r.data.as_slice(), r.size, r.mtime), (&d[..], 1000, 7));
        let sha = digest("sha256", d);
        assert!(parse_range(&answer(d, 1000, &sha), "/f", 0, 12).is_ok());
        // A flipped byte, a short range, a range longer than asked.
        assert!(parse_range(&answer(b"hello, boarD", 1000, &crc), "/f", 0, 12).is_err());
        assert!(parse_range(&answer(&d[..11], 1000, &crc), "/f", 0, 12).is_err());
        assert!(parse_range(&answer(d, 1000, &crc), "/f", 0, 4).is_err());
        // At the file's end a range is shorter.
        assert!(parse_range(&answer(d, 112, &crc), "/f", 100, 50).is_ok());
        assert!(parse_range(b"E 2\r\n", "/f", 0, 12).is_err());
        assert!(parse_range(b"F\r\n", "/f", 0, 12).is_err());
    }
}
