//! File contents held by the mount: clean copies in an LRU with a byte
//! budget, dirty ones pinned until they reach the board.

use super::tree::Ino;
use lru::LruCache;
use std::collections::HashMap;

#[derive(Debug)]
pub struct Contents {
    clean: LruCache<Ino, Vec<u8>>,
    clean_bytes: usize,
    budget: usize,
    dirty: HashMap<Ino, Vec<u8>>,
    /// Open handles per inode: their contents are not evicted.
    open: HashMap<Ino, usize>,
    /// Ranges of files not held whole (read by `head`, a file manager's
    /// peek), each with the board's version (size, mtime) it was read at.
    pieces: HashMap<Ino, (Version, Ranges)>,
    pieces_bytes: usize,
}

/// A file's size and mtime on the board.
type Version = (u64, i64);
/// Ranges of a file: where each starts, and its bytes.
type Ranges = Vec<(usize, Vec<u8>)>;

/// Ranges held in all: past this, the older ones go.
const PIECES_MAX: usize = 1 << 20;

impl Contents {
    pub fn new(budget: usize) -> Self {
        Contents {
            clean: LruCache::unbounded(),
            clean_bytes: 0,
            budget,
            dirty: HashMap::new(),
            open: HashMap::new(),
            pieces: HashMap::new(),
            pieces_bytes: 0,
        }
    }

    pub fn get(&mut self, ino: Ino) -> Option<&Vec<u8>> {
        if self.dirty.contains_key(&ino) {
            return self.dirty.get(&ino);
        }
        self.clean.get(&ino)
    }

    /// The contents without touching the LRU order.
    pub fn get_clean_or_dirty(&self, ino: Ino) -> Option<&[u8]> {
        self.dirty
            .get(&ino)
            .or_else(|| self.clean.peek(&ino))
            .map(Vec::as_slice)
    }

    /// The file as it is on the board at `version` from `start` to the end
    /// of a range read earlier, if that range holds `[start, need)` (or
    /// all up to the file's end).
    pub fn piece(&self, ino: Ino, version: (u64, i64), start: usize, need: usize) -> Option<&[u8]> {
        let (v, ranges) = self.pieces.get(&ino)?;
        if *v != version {
            return None;
        }
        let need = need.min(version.0 as usize);
        ranges.iter().find_map(|(at, d)| {
            (*at <= start && start <= need && at + d.len() >= need).then(|| &d[start - at..])
        })
    }

    /// A range read from the board at `version`; ranges of another version
    /// go.
    pub fn insert_piece(&mut self, ino: Ino, version: (u64, i64), start: usize, data: Vec<u8>) {
        if self.pieces_bytes + data.len() > PIECES_MAX {
            self.pieces.clear();
            self.pieces_bytes = 0;
        }
        let e = self.pieces.entry(ino).or_insert((version, Vec::new()));
        if e.0 != version {
            self.pieces_bytes -= e.1.iter().map(|(_, d)| d.len()).sum::<usize>();
            *e = (version, Vec::new());
        }
        self.pieces_bytes += data.len();
        e.1.push((start, data));
    }

    fn forget_pieces(&mut self, ino: Ino) {
        if let Some((_, ranges)) = self.pieces.remove(&ino) {
            self.pieces_bytes -= ranges.iter().map(|(_, d)| d.len()).sum::<usize>();
        }
    }

    pub fn has(&self, ino: Ino) -> bool {
        self.dirty.contains_key(&ino) || self.clean.contains(&ino)
    }

    pub fn is_dirty(&self, ino: Ino) -> bool {
        self.dirty.contains_key(&ino)
    }

    pub fn dirty_inos(&self) -> Vec<Ino> {
        self.dirty.keys().copied().collect()
    }

    /// The contents to change; they are dirty from now on.
    pub fn edit(&mut self, ino: Ino) -> &mut Vec<u8> {
        self.forget_pieces(ino);
        if !self.dirty.contains_key(&ino) {
            let data = self.clean.pop(&ino).unwrap_or_default();
            self.clean_bytes -= data.len();
            self.dirty.insert(ino, data);
        }
        self.dirty.entry(ino).or_default()
    }

    pub fn insert_clean(&mut self, ino: Ino, data: Vec<u8>) {
        self.forget(ino);
        self.forget_pieces(ino);
        self.clean_bytes += data.len();
        self.clean.put(ino, data);
        self.evict();
    }

    /// The dirty copy reached the board.
    pub fn mark_clean(&mut self, ino: Ino) {
        if let Some(data) = self.dirty.remove(&ino) {
            self.insert_clean(ino, data);
        }
    }

    pub fn forget(&mut self, ino: Ino) {
        self.forget_pieces(ino);
        self.dirty.remove(&ino);
        if let Some(d) = self.clean.pop(&ino) {
            self.clean_bytes -= d.len();
        }
    }

    pub fn opened(&mut self, ino: Ino) {
        *self.open.entry(ino).or_default() += 1;
    }

    pub fn closed(&mut self, ino: Ino) {
        if let Some(n) = self.open.get_mut(&ino) {
            *n -= 1;
            if *n == 0 {
                self.open.remove(&ino);
            }
        }
        self.evict();
    }

    pub fn is_open(&self, ino: Ino) -> bool {
        self.open.contains_key(&ino)
    }

    pub fn clean_bytes(&self) -> usize {
        self.clean_bytes
    }

    /// The length of `ino`'s dirty copy (0 when it has none).
    pub fn dirty_len(&self, ino: Ino) -> usize {
        self.dirty.get(&ino).map_or(0, Vec::len)
    }

    pub fn dirty_bytes(&self) -> usize {
        self.dirty.values().map(Vec::len).sum()
    }

    fn evict(&mut self) {
        let mut pinned = Vec::new();
        while self.clean_bytes > self.budget {
            let Some((ino, data)) = self.clean.pop_lru() else {
                break;
            };
            if self.open.contains_key(&ino) {
                pinned.push((ino, data));
                continue;
            }
            self.clean_bytes -= data.len();
        }
        for (ino, data) in pinned {
            self.clean.put(ino, data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_clean_files_beyond_the_budget_but_never_dirty_or_open_ones() {
        let mut c = Contents::new(100);
        c.insert_clean(1, vec![0; 60]);
        c.opened(1);
        c.edit(2).extend_from_slice(&[1; 500]);
        c.insert_clean(3, vec![0; 60]);
        assert!(c.has(1), "open");
        assert!(c.has(2), "dirty");
        assert!(!c.has(3), "over budget and not open");
        c.closed(1);
        c.insert_clean(4, vec![0; 50]);
        assert!(!c.has(1));
        assert_eq!(c.clean_bytes(), 50);
        c.mark_clean(2);
        assert!(!c.is_dirty(2));
        assert!(!c.has(2), "500 bytes do not fit in 100");
    }

    #[test]
    fn ranges_answer_only_for_their_version_and_go_with_an_edit() {
        let mut c = Contents::new(100);
        let v = (10_000, 5);
        c.insert_piece(1, v, 4096, vec![7; 4096]);
        assert_eq!(c.piece(1, v, 4100, 4200), Some(&[7; 4092][..]));
        assert_eq!(c.piece(1, v, 100, 200), None, "not read");
        assert_eq!(c.piece(1, v, 8000, 8300), None, "only partly read");
        assert_eq!(c.piece(1, (10_000, 6), 4100, 4200), None, "changed");
        c.insert_piece(2, (5000, 1), 4096, vec![1; 904]);
        assert_eq!(
            c.piece(2, (5000, 1), 4900, 9000),
            Some(&[1; 100][..]),
            "to the end"
        );
        c.edit(1);
        c.forget(1);
        assert_eq!(c.piece(1, v, 4100, 4200), None);
        assert_eq!(c.pieces_bytes, 904);
    }
}
