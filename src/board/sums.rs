//! A `cp` onto a file the board has, whose content we do not hold: the
//! board sends the CRC-32 of each block of its copy (`sums` in
//! programs.py), we find those blocks in the new version with a rolling
//! CRC-32 (as rsync does with its weak sum), and the new file goes as a
//! delta of the board's copy (delta.rs builds and checks it on the board:
//! a block that only matched by its CRC makes the whole file's CRC wrong,
//! and the file then goes whole).

use super::delta::Op;
use super::*;
use std::collections::HashMap;

/// Files smaller than this go whole: the sums' round trip costs more.
pub const SUMS_MIN: u64 = 4096;
/// Block sizes: about sqrt(4 x size) (the sums' bytes against a changed
/// block's), a power of two in these bounds.
const BLOCK_MIN: u64 = 256;
const BLOCK_MAX: u64 = 64 * 1024;
/// Hex sums per `B` line (`sums` prints 64).
const LINE_SUMS: usize = 64;

/// What the board's copy of one file is, by blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSums {
    pub block: usize,
    /// The file's size and CRC-32, which `d` (helpers.py) checks before
    /// it uses the file.
    pub size: u64,
    pub crc: u32,
    /// Of each block (the last one may be short).
    pub sums: Vec<u32>,
}

/// The block size for a file of `size` bytes.
pub fn block_for(size: u64) -> usize {
    let b = (4 * size).isqrt().clamp(BLOCK_MIN, BLOCK_MAX);
    1 << b.ilog2()
}

/// The answer of `sums` for files of these (local) sizes: per file its
/// block sums, None where the board had none (missing, unreadable) or its
/// answer does not hold together.
pub fn parse(out: &[u8], block: &[usize], local: &[u64]) -> Option<Vec<Option<BlockSums>>> {
    let mut got = Vec::with_capacity(block.len());
    let mut hex = String::new();
    for l in sn::lines(out) {
        let i = got.len();
        match Answer::parse(l) {
            Answer::Sums(h) if i < block.len() && h.len() <= 8 * LINE_SUMS => {
                // Bounded by the local file's blocks: a board's file much
                // larger than ours is no base anyway.
                if hex.len() + h.len() > 8 * (local[i] as usize / block[i] + 2) {
                    hex.clear();
                    hex.push('!');
                } else if !hex.starts_with('!') {
                    hex.push_str(h);
                }
            }
            Answer::Whole { size, crc } if i < block.len() => {
                let sums = std::mem::take(&mut hex);
                got.push(whole(size, crc, &sums, block[i]));
            }
            Answer::Os { .. } if i < block.len() => {
                hex.clear();
                got.push(None);
            }
            Answer::Ok if i == block.len() => return Some(got),
            _ => {}
        }
    }
    None
}

fn whole(size: u64, crc: u32, hex: &str, block: usize) -> Option<BlockSums> {
    if !hex.len().is_multiple_of(8) || !hex.is_ascii() {
        return None;
    }
    let sums = (0..hex.len() / 8)
        .map(|k| u32::from_str_radix(&hex[8 * k..8 * k + 8], 16).ok())
        .collect::<Option<Vec<u32>>>()?;
    (sums.len() as u64 == size.div_ceil(block as u64)).then_some(BlockSums {
        block,
        size,
        crc,
        sums,
    })
}

/// CRC-32 (the zlib one) a byte at a time, on the register (no final
/// inversion), so that a window can roll.
struct Crc {
    table: [u32; 256],
    /// What the byte leaving a window of `block` bytes took part in.
    out: [u32; 256],
}

impl Crc {
    fn new(block: usize) -> Crc {
        let mut table = [0u32; 256];
        for (n, t) in table.iter_mut().enumerate() {
            let mut c = n as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *t = c;
        }
        let mut crc = Crc {
            table,
            out: [0; 256],
        };
        // A register is affine in its bytes: the first byte of a window's
        // part in it is that of `b, 0...` less that of `0...`.
        let zeros = crc.run(!0, &vec![0; block]);
        for b in 0..256 {
            let r = crc.run(crc.step(!0, b as u8), &vec![0; block]);
            crc.out[b] = r ^ zeros;
        }
        crc
    }

    fn step(&self, reg: u32, b: u8) -> u32 {
        (reg >> 8) ^ self.table[((reg ^ b as u32) & 0xff) as usize]
    }

    fn run(&self, reg: u32, data: &[u8]) -> u32 {
        data.iter().fold(reg, |r, &b| self.step(r, b))
    }
}

impl BlockSums {
    /// How to build `new` from the board's copy: its blocks found in
    /// `new` at any offset, and the bytes between them.
    pub fn diff(&self, new: &[u8]) -> Vec<Op> {
        let k = self.block;
        let mut ops: Vec<Op> = Vec::new();
        let copy = |ops: &mut Vec<Op>, at: usize, len: usize| match ops.last_mut() {
            Some(Op::Copy { at: a, len: l }) if *a + *l == at => *l += len,
            _ => ops.push(Op::Copy { at, len }),
        };
        let literal = |ops: &mut Vec<Op>, bytes: &[u8]| {
            if !bytes.is_empty() {
                ops.push(Op::Insert(bytes.to_vec()));
            }
        };
        let mut index: HashMap<u32, Vec<usize>> = HashMap::new();
        let full = (self.size as usize / k).min(self.sums.len());
        for (j, s) in self.sums[..full].iter().enumerate() {
            index.entry(*s).or_default().push(j);
        }
        let crc = Crc::new(k);
        let (mut i, mut lit, mut next) = (0, 0, 0usize);
        let mut reg = None;
        while i + k <= new.len() {
            let r = match reg {
                Some(r) => r,
                None => crc.run(!0, &new[i..i + k]),
            };
            // The block after the last one matched first: a file's blocks
            // mostly come in order.
            let hit = index.get(&!r).and_then(|js| {
                js.iter()
                    .find(|&&j| j == next)
                    .or_else(|| js.first())
                    .copied()
            });
            if let Some(j) = hit {
                literal(&mut ops, &new[lit..i]);
                copy(&mut ops, j * k, k);
                (i, lit, next, reg) = (i + k, i + k, j + 1, None);
                continue;
            }
            reg = (i + k < new.len()).then(|| crc.step(r, new[i + k]) ^ crc.out[new[i] as usize]);
            i += 1;
        }
        // The short last block of the board's copy, at the end of the new.
        let tail = self.size as usize % k;
        if tail > 0
            && new.len() - lit >= tail
            && self.sums.len() > full
            && crc32fast::hash(&new[new.len() - tail..]) == self.sums[full]
        {
            literal(&mut ops, &new[lit..new.len() - tail]);
            copy(&mut ops, full * k, tail);
        } else {
            literal(&mut ops, &new[lit..]);
        }
        ops
    }
}

impl Board {
    /// The block sums of the board's copies of `files` (path, size of the
    /// version we will send): None for each the board has no copy of.
    pub async fn block_sums(&self, files: &[(&str, u64)]) -> Result<Vec<Option<BlockSums>>> {
        let mut out = Vec::with_capacity(files.len());
        // One program per block size (a field each would cost more).
        let mut by_block: Vec<(usize, Vec<usize>)> = Vec::new();
        for (i, (_, n)) in files.iter().enumerate() {
            let k = block_for(*n);
            match by_block.iter_mut().find(|(b, _)| *b == k) {
                Some((_, v)) => v.push(i),
                None => by_block.push((k, vec![i])),
            }
            out.push(None);
        }
        for (k, which) in by_block {
            let mut fields = vec![k.to_string()];
            fields.extend(which.iter().map(|&i| files[i].0.to_string()));
            let got = self
                .with_helpers(sn::program("sums", &fields), Run::QUERY)
                .await?;
            let blocks = vec![k; which.len()];
            let local: Vec<u64> = which.iter().map(|&i| files[i].1).collect();
            let sums =
                parse(&got, &blocks, &local).ok_or_else(|| sn::unexpected(&got, "block sums"))?;
            for (i, s) in which.into_iter().zip(sums) {
                out[i] = s;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::delta::{apply, encode};
    use super::*;

    fn sums_of(base: &[u8], block: usize) -> BlockSums {
        BlockSums {
            block,
            size: base.len() as u64,
            crc: crc32fast::hash(base),
            sums: base.chunks(block).map(crc32fast::hash).collect(),
        }
    }

    #[test]
    fn the_rolling_crc_is_the_crc_of_each_window() {
        let data: Vec<u8> = (0..2000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let k = 256;
        let crc = Crc::new(k);
        let mut r = crc.run(!0, &data[..k]);
        for i in 0..data.len() - k {
            assert_eq!(!r, crc32fast::hash(&data[i..i + k]), "at {i}");
            r = crc.step(r, data[i + k]) ^ crc.out[data[i] as usize];
        }
    }

    #[test]
    fn a_one_line_edit_goes_as_a_block_or_two() {
        let base: Vec<u8> = (0..3000)
            .flat_map(|i| format!("line {i} = {}\n", i * 7).into_bytes())
            .collect();
        let s = sums_of(&base, block_for(base.len() as u64));
        for (at, cut, put) in [
            (20_000, 4, &b"EDITED LINE"[..]),
            (0, 0, b"# new first\n"),
            (base.len(), 0, b"# new last\n"),
            (100, 30_000, b""),
        ] {
            let mut new = base.clone();
            new.splice(at..at + cut, put.iter().copied());
            let d = encode(&s.diff(&new));
            assert!(d.len() < 2 * s.block + 100, "{at}: {}", d.len());
            assert_eq!(apply(&base, &d).unwrap(), new);
        }
        assert_eq!(apply(&base, &encode(&s.diff(b""))).unwrap(), b"");
    }

    #[test]
    fn the_answer_is_checked_against_what_was_asked() {
        let base = vec![5u8; 1000];
        let s = sums_of(&base, 256);
        let hex: String = s.sums.iter().map(|c| format!("{c:08x}")).collect();
        let ok = format!("B {hex}\nW 1000 {}\nE 2\nK\n", s.crc);
        assert_eq!(
            parse(ok.as_bytes(), &[256, 256], &[1000, 10]),
            Some(vec![Some(s.clone()), None])
        );
        // Blocks that do not make the size, or more than bounded.
        let short = format!("B {}\nW 1000 1\nK\n", &hex[..8]);
        assert_eq!(parse(short.as_bytes(), &[256], &[1000]), Some(vec![None]));
        let many = format!("B {hex}\nB {hex}\nB {hex}\nW 3000 1\nK\n");
        assert_eq!(parse(many.as_bytes(), &[256], &[10]), Some(vec![None]));
        assert_eq!(parse(b"W 1 1\n", &[256], &[1]), None);
    }
}
