//! Keeping the snapshot true to the board: a directory listed again when
//! its listing is older than the TTL, and the whole tree checked (one walk:
//! names, sizes, mtimes) after something may have changed the board behind
//! the mount: code run at its terminal, `exec`, a reset, a lost link.
//!
//! A check never holds the mount up: when the board cannot run it (a
//! person's program has the REPL), the snapshot answers as it is and the
//! check is tried again a moment later.

use super::*;
use crate::board::Entry;
use std::collections::HashSet;
use tracing::{debug, warn};

/// How soon a check that could not run is tried again.
const RECHECK: Duration = Duration::from_secs(1);

impl Core {
    /// Whether the link is down for want of the board (refused, cut),
    /// not closed while idle.
    async fn link_lost(&self) -> bool {
        self.board
            .session()
            .status()
            .await
            .is_ok_and(|s| !s.link_up && !s.idle_closed)
    }

    /// The snapshot checked if the board may have changed, and `dir`
    /// listed again if its listing is older than the TTL.
    pub(super) async fn fresh(&self, dir: Ino) {
        self.validate().await;
        let (path, namespace) = {
            let st = self.lock();
            let Some(n) = st.tree.get(dir) else { return };
            let fresh = n.listed.is_some_and(|t| t.elapsed() < self.opts.dir_ttl);
            if fresh || !n.on_board || n.local_only || n.kind != EntryKind::Dir {
                return;
            }
            (st.tree.path(dir), st.namespace)
        };
        // Another board at this address: its names are not the mount's.
        if self.link_lost().await || self.guard.check(&self.board).await.is_err() {
            return;
        }
        match self.board.impatient().list(&path, false).await {
            Ok(listing) => {
                let mut st = self.lock();
                if st.namespace == namespace {
                    self.merge(&mut st, dir, &listing);
                    if let Some(n) = st.tree.get_mut(dir) {
                        n.listed = Some(Instant::now());
                    }
                }
            }
            Err(e) => debug!("keeping the snapshot of {path}: {e}"),
        }
    }

    /// Checks the whole snapshot against the board if code may have changed
    /// it since the last check (or the link was lost meanwhile).
    pub(super) async fn validate(&self) {
        let session = self.board.session();
        let want = (session.generation(), session.changes());
        let due = |st: &State| {
            (st.generation, st.changes) != want
                && st.check_failed.is_none_or(|t| t.elapsed() >= RECHECK)
        };
        if !due(&self.lock()) {
            return;
        }
        let _one = self.checking.lock().await;
        let namespace = {
            let st = self.lock();
            if !due(&st) {
                return;
            }
            st.namespace
        };
        // A lost link (not one closed while idle, which reopens when
        // used): the check would wait for it up to the time-out, and every
        // cached read and save with it; the snapshot answers as it is.
        if self.link_lost().await {
            debug!("snapshot kept: the link is down");
            self.lock().check_failed = Some(Instant::now());
            return;
        }
        // Another board at this address (see `identity`): the snapshot
        // stays the mount's board's, and is checked again a moment later.
        if let Err(e) = self.guard.check(&self.board).await {
            debug!("snapshot kept: {e}");
            self.lock().check_failed = Some(Instant::now());
            return;
        }
        let started = Instant::now();
        match self.board.impatient().list("/", true).await {
            Ok(entries) => {
                let mut st = self.lock();
                if st.namespace != namespace {
                    // Our own change raced the walk: what it saw may be
                    // older than the snapshot. The next operation checks.
                    return;
                }
                self.merge_deep(&mut st, entries);
                (st.generation, st.changes) = want;
                st.check_failed = None;
                debug!("snapshot checked in {:.0?}", started.elapsed());
            }
            Err(e) => {
                let first = self.lock().check_failed.replace(Instant::now()).is_none();
                // Out of the board's memory the view may stay old for long
                // (a person's program holds the heap): said in the log, once
                // until a check runs again.
                if first && matches!(e, Error::LowMemory { .. }) {
                    warn!("the mount's view of the board may be out of date: {e}");
                } else {
                    debug!("snapshot not checked now: {e}");
                }
            }
        }
    }

    /// Forces a check of the whole tree at the next operation, keeping
    /// what is cached: a person asked for the board's tree now (code
    /// running on the board, a `_thread`, may have written since the last
    /// check without a line typed at the REPL to say so).
    pub fn recheck(&self) {
        let mut st = self.lock();
        st.changes = u64::MAX;
        st.check_failed = None;
    }

    /// Forces a check (after a soft reset, boot.py and main.py ran), and
    /// forgets unchanged contents.
    pub fn invalidate(&self) {
        let mut st = self.lock();
        st.changes = u64::MAX;
        st.check_failed = None;
        let mut all = st.tree.descendants(ROOT);
        all.push(ROOT);
        for ino in all {
            if !st.contents.is_dirty(ino) {
                st.contents.forget(ino);
            }
        }
        st.statvfs = None;
    }

    /// A walk of the whole tree: every directory's children as the board
    /// has them.
    fn merge_deep(&self, st: &mut State, mut entries: Vec<Entry>) {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let mut by_dir: HashMap<String, Vec<Entry>> = HashMap::new();
        for e in entries {
            by_dir
                .entry(crate::board::parent(&e.path).to_string())
                .or_default()
                .push(e);
        }
        // Parents first, so that a new directory exists before its children.
        let mut dirs = vec![ROOT];
        let now = Instant::now();
        while let Some(dir) = dirs.pop() {
            let path = st.tree.path(dir);
            let listing = by_dir.remove(&path).unwrap_or_default();
            self.merge(st, dir, &listing);
            if let Some(n) = st.tree.get_mut(dir) {
                n.listed = Some(now);
            }
            if let Some(n) = st.tree.get(dir) {
                dirs.extend(
                    n.children
                        .values()
                        .filter(|&&i| {
                            st.tree.get(i).is_some_and(|c| {
                                c.kind == EntryKind::Dir && c.on_board && !c.local_only
                            })
                        })
                        .copied(),
                );
            }
        }
    }

    /// One directory's listing into the snapshot. A file the board changed
    /// is dropped from the cache if unchanged here; one changed here too is
    /// kept (its upload puts it beside the board's, as a conflict).
    pub(super) fn merge(&self, st: &mut State, dir: Ino, listing: &[Entry]) {
        let mut seen = HashSet::new();
        for e in listing {
            let name = e.path.rsplit('/').next().unwrap_or("").to_string();
            if name.is_empty() || super::identity::hidden(&name) {
                continue;
            }
            seen.insert(name.clone());
            let existing = st.tree.lookup(dir, &name);
            let busy = |st: &State, i: Ino| {
                st.contents.is_dirty(i)
                    || st.file.of(i).uploading.is_some()
                    || st.file.of(i).load.is_some()
            };
            match existing {
                Some(ino) if st.tree.get(ino).is_some_and(|n| n.kind == e.kind) => {
                    let dirty = busy(st, ino);
                    let Some(n) = st.tree.get_mut(ino) else {
                        continue;
                    };
                    n.on_board = true;
                    let changed =
                        n.kind == EntryKind::File && (n.size != e.size || n.board_mtime != e.mtime);
                    if changed && !dirty {
                        debug!("{} changed on the board", e.path);
                        n.size = e.size;
                        n.board_mtime = e.mtime;
                        n.mode = None;
                        n.mtime = None;
                        st.contents.forget(ino);
                        self.changed(st, ino);
                    }
                }
                Some(ino) if busy(st, ino) => {}
                _ => {
                    let mut n = Node::new(dir, &name, e.kind);
                    n.size = if e.kind == EntryKind::File { e.size } else { 0 };
                    n.board_mtime = e.mtime;
                    n.on_board = true;
                    let ino = st.tree.insert(n);
                    st.contents.forget(ino);
                }
            }
        }
        let gone: Vec<Ino> = st
            .tree
            .get(dir)
            .map(|n| {
                n.children
                    .iter()
                    .filter(|(name, _)| !seen.contains(*name))
                    .map(|(_, i)| *i)
                    .collect()
            })
            .unwrap_or_default();
        for ino in gone {
            let keep = st
                .tree
                .get(ino)
                .is_some_and(|n| !n.on_board || n.local_only)
                || st.contents.is_dirty(ino)
                || st.file.of(ino).uploading.is_some();
            if !keep {
                if let Some(n) = st.tree.get(ino) {
                    self.tell(Notice::Gone(dir, n.name.clone()));
                }
                st.contents.forget(ino);
                st.tree.remove(ino);
            }
        }
    }
}
