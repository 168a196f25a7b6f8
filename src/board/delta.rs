//! Saves that send only the change: when the board's file is a base we
//! hold (same size and CRC-32, checked on the board before it is used),
//! the new version goes as ranges of that file plus the bytes that differ,
//! and `d` (helpers.py) builds the new part file from them (checked by size and
//! CRC-32, then finished like any upload). A base the board no longer has
//! is never used: the file then goes whole.

use super::upload::Sending;
use super::*;
use bytes::Bytes;
use std::collections::HashMap;

/// Bytes of base a match starts from.
const BLOCK: usize = 32;
/// A delta must be at most this share of the file (in tenths) to be sent.
const WORTH: usize = 8;
/// A delta from a file beside the target (`Upload::was_at`) must be at
/// most this share of the file (in tenths): only a near copy is one.
const NEAR_WORTH: usize = 2;

/// One step of building the new file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `len` bytes of the base from `at`.
    Copy { at: usize, len: usize },
    /// These bytes.
    Insert(Vec<u8>),
}

/// How to build `new` from `base`: the base's blocks found in `new`
/// (anywhere, each extended both ways as far as the bytes agree), and the
/// bytes between them.
pub fn diff(base: &[u8], new: &[u8]) -> Vec<Op> {
    let mut index: HashMap<&[u8], usize> = HashMap::new();
    for (k, block) in base.chunks_exact(BLOCK).enumerate() {
        index.entry(block).or_insert(k * BLOCK);
    }
    let mut ops = Vec::new();
    let (mut i, mut lit) = (0, 0);
    while i + BLOCK <= new.len() {
        let Some(&at) = index.get(&new[i..i + BLOCK]) else {
            i += 1;
            continue;
        };
        // Back over the literal bytes as far as they agree with the base.
        let mut back = 0;
        while i - back > lit && at > back && new[i - back - 1] == base[at - back - 1] {
            back += 1;
        }
        let (start, from) = (i - back, at - back);
        let mut len = BLOCK + back;
        while start + len < new.len()
            && from + len < base.len()
            && new[start + len] == base[from + len]
        {
            len += 1;
        }
        if start > lit {
            ops.push(Op::Insert(new[lit..start].to_vec()));
        }
        ops.push(Op::Copy { at: from, len });
        i = start + len;
        lit = i;
    }
    if lit < new.len() {
        ops.push(Op::Insert(new[lit..].to_vec()));
    }
    ops
}

/// The delta as `d` (helpers.py) reads it: per op a byte (`C` or `I`), two
/// little-endian u32 (offset and length; length and 0), then an insert's
/// bytes.
pub fn encode(ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    for op in ops {
        let (kind, a, b, data): (u8, usize, usize, &[u8]) = match op {
            Op::Copy { at, len } => (b'C', *at, *len, &[]),
            Op::Insert(d) => (b'I', d.len(), 0, d),
        };
        out.push(kind);
        out.extend_from_slice(&(a as u32).to_le_bytes());
        out.extend_from_slice(&(b as u32).to_le_bytes());
        out.extend_from_slice(data);
    }
    out
}

/// `encode`'s delta applied to `base`, as the board does it; None when it
/// is not a delta of that base.
pub fn apply(base: &[u8], delta: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = delta;
    while !rest.is_empty() {
        let head = rest.get(..9)?;
        let a = u32::from_le_bytes(head[1..5].try_into().ok()?) as usize;
        let b = u32::from_le_bytes(head[5..9].try_into().ok()?) as usize;
        rest = &rest[9..];
        match head[0] {
            b'C' => out.extend_from_slice(base.get(a..a.checked_add(b)?)?),
            b'I' => {
                out.extend_from_slice(rest.get(..a)?);
                rest = &rest[a..];
            }
            _ => return None,
        }
    }
    Some(out)
}

impl Board {
    /// Sends the files of `ups` that have a base (`Upload::was`) and whose
    /// delta pays as deltas, and builds each on the board: the part file
    /// that now holds it, checked, to be finished; None: send it whole.
    pub(super) async fn send_deltas(
        &self,
        ups: &[Upload],
        skip: &[bool],
        slice: usize,
    ) -> Vec<Option<String>> {
        let mut ready = vec![None; ups.len()];
        if self.no_crc.load(std::sync::atomic::Ordering::Relaxed) {
            return ready;
        }
        let (mut which, mut dups) = (Vec::new(), Vec::new());
        for (i, u) in ups.iter().enumerate() {
            if skip[i] {
                continue;
            }
            let (delta, base_size, base_crc) = match (&u.was, &u.sums) {
                (Some(base), _) => (
                    encode(&diff(base, &u.data)),
                    base.len() as u64,
                    crc32fast::hash(base),
                ),
                (None, Some(s)) => (encode(&s.diff(&u.data)), s.size, s.crc),
                (None, None) => continue,
            };
            let worth = if u.was_at.is_some() {
                NEAR_WORTH
            } else {
                WORTH
            };
            // A large delta is raw bytes: the file compressed may be less.
            let packs_smaller = || {
                self.compress
                    && delta.len() * 4 > u.data.len()
                    && super::pack::compress(&u.data, super::pack::WBITS).len() <= delta.len()
            };
            if delta.len() * 10 > u.data.len() * worth || packs_smaller() {
                debug!(
                    "{}: sent whole (a delta of {} bytes would not pay)",
                    shown(&u.path),
                    delta.len()
                );
                continue;
            }
            info!(
                "{}: {} bytes sent as a delta of {} from the board's copy{}",
                shown(&u.path),
                u.data.len(),
                delta.len(),
                u.was_at
                    .as_deref()
                    .map_or(String::new(), |p| format!(" of {}", shown(p)))
            );
            which.push((i, base_size, base_crc));
            dups.push(Upload {
                path: u.path.clone(),
                data: Bytes::from(delta),
                base: Base::Any,
                progress: None,
                was: None,
                was_at: None,
                sums: None,
            });
        }
        if dups.is_empty() {
            return ready;
        }
        let jobs: Vec<Sending> = dups
            .iter()
            .enumerate()
            .map(|(k, u)| Sending::whole(k, self.part_for(&u.path), u.data.len(), slice))
            .collect();
        let sent = self.send_parts(&dups, &jobs).await;
        let (mut calls, mut of) = (Vec::new(), Vec::new());
        for ((job, r), &(i, base_size, base_crc)) in jobs.iter().zip(sent).zip(&which) {
            // Marked stale only once they failed: another upload's cleanup
            // runs while this one builds, and must not remove its files.
            if r.is_err() {
                self.stale_all(job, &dups);
                continue;
            }
            let part = self.part_for(&ups[i].path);
            let (up, d) = (&ups[i], &dups[job.i].data);
            calls.push(sn::Rebuilding {
                delta: job.part.clone(),
                delta_size: d.len() as u64,
                pieces: job.pieces(),
                slice: job.slice as u64,
                target: up.was_at.clone().unwrap_or_else(|| up.path.clone()),
                base_size,
                base_crc,
                part: part.clone(),
                size: up.data.len() as u64,
                crc: crc32fast::hash(&up.data),
            });
            of.push((i, job, part));
        }
        if calls.is_empty() {
            return ready;
        }
        let out = match self.helper(sn::rebuild_uploads(&calls)).await {
            Ok(out) => out,
            Err(e) => {
                warn!("building files from deltas on the board failed ({e}); sending them whole");
                Vec::new()
            }
        };
        let lines: Vec<&str> = sn::lines(&out).collect();
        for (k, (i, job, part)) in of.into_iter().enumerate() {
            let line = lines.get(k).copied().unwrap_or("");
            match Answer::parse(line) {
                Answer::Ok => ready[i] = Some(part),
                _ if line.is_empty() => {
                    self.stale_all(job, &dups);
                    self.stale_mark(&part, true);
                }
                Answer::Os { errno: 95, .. } => {
                    self.stale_all(job, &dups);
                    self.stale_mark(&part, true);
                    if !self.no_crc.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        info!(
                            "the board has no binascii.crc32 to check a file built from a delta: saves go whole"
                        );
                    }
                }
                a => {
                    self.stale_all(job, &dups);
                    self.stale_mark(&part, true);
                    info!(
                        "{}: the board's copy is not the base ({a:?}); sending it whole",
                        shown(&ups[i].path)
                    )
                }
            }
        }
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_line_edit_is_a_few_bytes() {
        let base: Vec<u8> = (0..3000)
            .flat_map(|i| format!("line {i} = {}\n", i * 7).into_bytes())
            .collect();
        let mut new = base.clone();
        new.splice(50_000..50_004, b"EDITED".iter().copied());
        let d = encode(&diff(&base, &new));
        assert!(d.len() < 100, "{}", d.len());
        assert_eq!(apply(&base, &d).unwrap(), new);
        assert_eq!(apply(&base, &encode(&diff(&base, b""))).unwrap(), b"");
        assert_eq!(apply(b"", &encode(&diff(b"", &new))).unwrap(), new);
    }
}
