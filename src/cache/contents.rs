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
}

impl Contents {
    pub fn new(budget: usize) -> Self {
        Contents {
            clean: LruCache::unbounded(),
            clean_bytes: 0,
            budget,
            dirty: HashMap::new(),
            open: HashMap::new(),
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
        if !self.dirty.contains_key(&ino) {
            let data = self.clean.pop(&ino).unwrap_or_default();
            self.clean_bytes -= data.len();
            self.dirty.insert(ino, data);
        }
        self.dirty.entry(ino).or_default()
    }

    pub fn insert_clean(&mut self, ino: Ino, data: Vec<u8>) {
        self.forget(ino);
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
}
