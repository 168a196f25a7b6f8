//! File contents changed in memory and sent back whole and atomically on
//! close, fsync, or after --writeback-delay; each upload checked against
//! what its writer saw of the board's file. (Reading is in `loads`.)

use super::*;
use crate::board::Written;
use bytes::Bytes;
use tracing::debug;

/// The largest file the cache holds. Contents live in memory until they
/// reach the board, so without a bound one `truncate -s 100G` (any user,
/// with allow_other) aborted the daemon and lost every other file's
/// unsaved data. Far above any board's flash (ESP32: 4-16 MB).
pub const MAX_FILE: u64 = 64 << 20;

/// All unsent contents together, in memory and in the journal. A bound per
/// file alone let five 60 MB files take 600 MB of memory and fill the disk
/// with their journal while the board (20 KB/s: an hour for 64 MiB) lagged.
pub const MAX_UNSENT: u64 = 256 << 20;

/// EFBIG for a file that would end at `end`, ENOSPC when the unsent
/// changes of all files would pass `MAX_UNSENT`: before anything is
/// allocated.
fn bounded(st: &State, ino: Ino, end: Option<u64>) -> Result<()> {
    let Some(end) = end.filter(|&e| e <= MAX_FILE) else {
        return Err(Error::Os {
            errno: libc::EFBIG,
            what: format!(
                "{}: larger than {} MiB, the most webrepl-mount holds",
                st.tree.path(ino),
                MAX_FILE >> 20
            ),
        });
    };
    let mine = st.contents.dirty_len(ino) as u64;
    if end > mine {
        let others = st.contents.dirty_bytes() as u64 - mine;
        if others + end > MAX_UNSENT {
            return Err(Error::Os {
                errno: libc::ENOSPC,
                what: format!(
                    "{}: unsent changes would pass {} MiB; wait for those on their way to the board",
                    st.tree.path(ino),
                    MAX_UNSENT >> 20
                ),
            });
        }
    }
    Ok(())
}

impl Core {
    /// A new empty file, open: it reaches the board when it is flushed.
    pub fn create(&self, parent: Ino, name: &std::ffi::OsStr, mode: u32) -> Result<(Attr, u64)> {
        let name = self.check_name(name)?;
        let mut st = self.lock();
        if let Some(old) = st.tree.lookup(parent, name) {
            // O_CREAT without O_EXCL on an existing file is an open.
            let fh = open_locked(&mut st, old, true)?;
            return Ok((self.attr(&st, old)?, fh));
        }
        let mut n = Node::new(parent, name, EntryKind::File);
        n.local_only =
            self.is_local_only(name) || st.tree.get(parent).is_some_and(|p| p.local_only);
        n.mode = Some(mode & 0o7777);
        n.mtime = Some(SystemTime::now());
        let ino = st.tree.insert(n);
        // Dirty from the start: `touch new` must create the file on the board,
        // over the one an editor moved aside locally, if any.
        let base = match st.shadowed.remove(&(parent, name.to_string())) {
            Some(((size, mtime), copy)) => {
                if let Some(c) = copy.filter(|c| c.len() as u64 == size) {
                    st.file.edit(ino, |f| f.was = Some(c));
                }
                Base::Was(size, mtime)
            }
            None => Base::Absent,
        };
        st.file.edit(ino, |f| f.base = Some(base));
        st.contents.edit(ino);
        st.file.edit(ino, |f| f.edits += 1);
        let fh = open_locked(&mut st, ino, true)?;
        Ok((self.attr(&st, ino)?, fh))
    }

    /// `write`: opened for writing (only then does its close upload).
    /// Returns the handle, and whether it streams: the file is not here yet,
    /// so its reads come at the reader's own sizes, not as whole readahead
    /// windows (the adapter opens it for direct I/O).
    pub async fn open(&self, ino: Ino, write: bool) -> Result<(u64, bool)> {
        self.validate().await;
        let mut st = self.lock();
        let fh = open_locked(&mut st, ino, write)?;
        let n = node(&st, ino)?;
        let streaming = n.on_board && !n.local_only && !st.contents.has(ino);
        let version = (n.on_board && !n.local_only)
            .then(|| st.file.of(ino).seen.unwrap_or((n.size, n.board_mtime)));
        // What a writer opened against, even if the kernel's page cache
        // answers its reads and none reaches us.
        if let (true, Some(v)) = (write, version) {
            st.seen_by.insert(fh, (ino, v));
        }
        Ok((fh, streaming))
    }

    /// The last close of an open file. A file that was empty when flushed
    /// was left alone then (a shell's `> f`, or dd, closes a duplicate
    /// descriptor before writing): it reaches the board now.
    pub async fn release(&self, ino: Ino, fh: u64) {
        let pending = {
            let mut st = self.lock();
            st.writers.remove(&fh);
            st.reading.remove(&fh);
            st.seen_by.remove(&fh);
            st.contents.closed(ino);
            if !st.contents.is_open(ino)
                && let Some(l) = st.file.of(ino).load.as_ref()
            {
                l.unwanted();
            }
            let new = st
                .tree
                .get(ino)
                .is_some_and(|n| !n.on_board && !n.local_only);
            let deferred = st.file.edit(ino, |f| std::mem::take(&mut f.deferred));
            // A close in a burst left it to the batcher, which sends it.
            let queued = st.batch.contains(&ino) || st.file.of(ino).uploading.is_some();
            self.opts.writeback.is_none()
                && (new || deferred)
                && !queued
                && !st.contents.is_open(ino)
        };
        if pending && let Err(e) = self.upload(ino).await {
            warn!("{}: {e}", self.lock().tree.path(ino));
        }
    }

    pub async fn write(&self, ino: Ino, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        loop {
            {
                let mut st = self.lock();
                bounded(&st, ino, offset.checked_add(data.len() as u64))?;
                let n = node(&st, ino)?;
                // A write that replaces the whole file needs nothing from the board.
                let whole = offset == 0 && data.len() as u64 >= n.size;
                let needed = n.on_board && !n.local_only && !whole;
                if st.contents.has(ino) || !needed {
                    self.begin_edit(&mut st, ino, Some(fh));
                    let buf = st.contents.edit(ino);
                    let end = offset as usize + data.len();
                    if buf.len() < end {
                        buf.resize(end, 0);
                    }
                    buf[offset as usize..end].copy_from_slice(data);
                    let len = buf.len() as u64;
                    st.file.edit(ino, |f| f.edits += 1);
                    st.file.edit(ino, |f| f.written = Some(Instant::now()));
                    if let Some(n) = st.tree.get_mut(ino) {
                        n.size = len;
                        n.mtime = Some(SystemTime::now());
                    }
                    return Ok(data.len() as u32);
                }
            }
            self.loaded(ino).await?;
        }
    }

    /// Notes what the board had before the first change of an edit: what
    /// the writing descriptor read, else what was last read of the file,
    /// else what the snapshot says.
    fn begin_edit(&self, st: &mut State, ino: Ino, fh: Option<u64>) {
        if st.contents.is_dirty(ino) || st.file.of(ino).base.is_some() {
            return;
        }
        let base = match st.tree.get(ino) {
            Some(n) if n.on_board && !n.local_only => {
                let (size, mtime) = fh
                    .and_then(|fh| st.seen_by.get(&fh))
                    .filter(|(i, _)| *i == ino)
                    .map(|(_, v)| v)
                    .or_else(|| st.file.of(ino).seen.as_ref())
                    .copied()
                    .unwrap_or((n.size, n.board_mtime));
                if let Some(c) = held::board_copy(st, ino).filter(|c| c.len() as u64 == size) {
                    st.file.edit(ino, |f| f.was = Some(c));
                }
                Base::Was(size, mtime)
            }
            _ => Base::Absent,
        };
        st.file.edit(ino, |f| f.base = Some(base));
    }

    /// chmod, truncate, utimens (chown is accepted and ignored: the board
    /// has no owners). `open`: a handle is open on the file, so a truncate
    /// waits for its close to reach the board.
    pub async fn setattr(
        &self,
        ino: Ino,
        fh: Option<u64>,
        mode: Option<u32>,
        size: Option<u64>,
        mtime: Option<SystemTime>,
        open: bool,
    ) -> Result<Attr> {
        if let Some(size) = size {
            {
                let st = self.lock();
                if node(&st, ino)?.kind == EntryKind::Dir {
                    return Err(Error::Os {
                        errno: libc::EISDIR,
                        what: st.tree.path(ino),
                    });
                }
                bounded(&st, ino, Some(size))?;
            }
            if size > 0 {
                let needed = {
                    let st = self.lock();
                    let n = node(&st, ino)?;
                    n.on_board && !n.local_only && !st.contents.has(ino)
                };
                if needed {
                    self.loaded(ino).await?;
                }
            }
            let upload = {
                let mut st = self.lock();
                self.begin_edit(&mut st, ino, fh);
                st.contents.edit(ino).resize(size as usize, 0);
                st.file.edit(ino, |f| f.edits += 1);
                if let Some(n) = st.tree.get_mut(ino) {
                    n.size = size;
                    n.mtime = Some(SystemTime::now());
                }
                // truncate(2) on a closed file: no close will follow.
                !open && !st.contents.is_open(ino)
            };
            if upload {
                self.upload(ino).await?;
            }
        }
        let mut st = self.lock();
        let n = st
            .tree
            .get_mut(ino)
            .ok_or_else(|| Error::NotFound(format!("inode {ino}")))?;
        if let Some(m) = mode {
            n.mode = Some(m & 0o7777);
        }
        if let Some(t) = mtime {
            n.mtime = Some(t);
        }
        if mode.is_some() || mtime.is_some() {
            self.save_attrs(&st);
        }
        self.attr(&st, ino)
    }

    /// close(2): sends a dirty file to the board (atomically), unless uploads
    /// are delayed. Errors leave it dirty.
    pub async fn flush(&self, ino: Ino, fh: u64) -> Result<()> {
        if !self.lock().writers.contains(&fh) {
            // Closing what only read: nothing to send (a dirty file is
            // sent by the close of the descriptor that wrote it).
            return Ok(());
        }
        if self.opts.writeback.is_some() {
            // Uploaded later: durable on local disk before close succeeds.
            let st = self.lock();
            return self.keep(&st, ino);
        }
        let queued = {
            let mut st = self.lock();
            // Empty now, and more may come through another descriptor:
            // uploading it would empty the board's copy for nothing.
            if st.contents.is_dirty(ino) && st.tree.get(ino).is_some_and(|n| n.size == 0) {
                st.file.edit(ino, |f| f.deferred = true);
                return Ok(());
            }
            let local = st.tree.get(ino).is_none_or(|n| n.local_only);
            if local || !st.contents.is_dirty(ino) {
                return Ok(());
            }
            self.queue(&mut st, ino)?
        };
        let Some(outcome) = queued else {
            return self.upload(ino).await;
        };
        match tokio::time::timeout(self.opts.close_wait, outcome).await {
            Ok(Ok(r)) => r,
            // Dropped unanswered: nothing is waited for any more.
            Ok(Err(_)) => Ok(()),
            Err(_) => {
                let st = self.lock();
                let why = st
                    .file
                    .of(ino)
                    .unsent
                    .as_ref()
                    .map_or("its upload is under way or queued", String::as_str);
                // In the log at its default level: what waits, and why.
                warn!(
                    "{}: not on the board after the close wait ({:.1} s): {why}; kept in the journal, it goes when the board can take it",
                    st.tree.path(ino),
                    self.opts.close_wait.as_secs_f64()
                );
                Ok(())
            }
        }
    }

    /// fsync(2): to the board now, whatever the file's state.
    pub async fn sync(&self, ino: Ino) -> Result<()> {
        self.upload(ino).await
    }

    /// Puts a dirty file's contents in the journal, durably.
    pub(super) fn keep(&self, st: &State, ino: Ino) -> Result<()> {
        let (Some(j), Some(n)) = (self.journal(), st.tree.get(ino)) else {
            return Ok(());
        };
        if n.local_only || !st.contents.is_dirty(ino) {
            return Ok(());
        }
        let data = st.contents.get_clean_or_dirty(ino).unwrap_or(&[]);
        let base = match st.file.of(ino).base.as_ref() {
            Some(Base::Was(s, m)) => Some((*s, *m)),
            _ => None,
        };
        let ours: Vec<journal::Version> = st
            .file
            .of(ino)
            .sent
            .iter()
            .map(|d| journal::Version::of(d))
            .collect();
        j.write(&st.tree.path(ino), base, &ours, data)
            .map_err(|e| Error::Os {
                errno: libc::EIO,
                what: format!("journal {}: {e}", st.tree.path(ino)),
            })
    }

    /// What an upload's outcome changes in the cache.
    pub(super) fn apply_upload(
        &self,
        ino: Ino,
        path: &str,
        data: Bytes,
        edit: u64,
        started: Instant,
        r: Result<Written>,
    ) -> Result<()> {
        let path = path.to_string();
        let mut st = self.lock();
        st.namespace += 1;
        let out = {
            match r {
                Ok(Written::Target(mtime)) => {
                    debug!(
                        "flushed {path}: {} B in {:.0?}",
                        data.len(),
                        started.elapsed()
                    );
                    let same = st.file.of(ino).edits == edit;
                    if let Some(n) = st.tree.get_mut(ino) {
                        n.on_board = true;
                        n.board_mtime = mtime;
                        if same {
                            n.size = data.len() as u64;
                        }
                    }
                    // The board has what the mount had: every reader's view
                    // of the file is that version now.
                    let now = (data.len() as u64, mtime);
                    st.file.edit(ino, |f| f.seen = Some(now));
                    for (i, v) in st.seen_by.values_mut() {
                        if *i == ino {
                            *v = now;
                        }
                    }
                    if same {
                        st.contents.mark_clean(ino);
                        st.file.edit(ino, |f| {
                            f.base = None;
                            f.was = None;
                            f.written = None;
                        });
                        if let Some(j) = self.journal() {
                            j.remove(&path);
                        }
                    } else {
                        // Written to meanwhile: the board has the version
                        // before, which the next upload may replace.
                        st.file
                            .edit(ino, |f| f.base = Some(Base::Was(data.len() as u64, mtime)));
                        st.file.edit(ino, |f| f.was = Some(data.clone()));
                    }
                    st.file.edit(ino, |f| f.retry = None);
                    // The board's version is known again.
                    st.file.edit(ino, |f| f.sent.clear());
                    self.save_attrs(&st);
                    Ok(())
                }
                Ok(Written::Beside {
                    name,
                    mtime,
                    target,
                }) => Err(self.conflict(&mut st, ino, &path, (name, mtime), target, data, edit)),
                Err(e) => {
                    // Not on the board: on local disk, then, until it is.
                    if let Err(j) = self.keep(&st, ino) {
                        warn!("{j}");
                    }
                    // A program or a lost link ends of itself: the file
                    // goes soon after. Other errors (a full flash) last.
                    let last = match e {
                        Error::Running { .. }
                        | Error::Busy { .. }
                        | Error::LinkLost(_)
                        | Error::Unreachable { .. }
                        | Error::Timeout { .. } => SOON_RETRY,
                        _ => LAST_RETRY,
                    };
                    let pause = st
                        .file
                        .of(ino)
                        .retry
                        .as_ref()
                        .map_or(FIRST_RETRY.min(last), |(_, p)| (*p * 2).min(last));
                    st.file
                        .edit(ino, |f| f.retry = Some((Instant::now() + pause, pause)));
                    st.file.edit(ino, |f| f.unsent = Some(e.to_string()));
                    Err(e)
                }
            }
        };
        if out.is_ok() || matches!(out, Err(Error::Conflict { .. })) {
            st.file.edit(ino, |f| f.unsent = None);
        }
        super::batch::answer(&mut st, ino, edit, &out);
        out
    }

    /// The board's copy changed under an edit: its version stays, ours is
    /// on the board beside it and shown in the mount there too.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn conflict(
        &self,
        st: &mut State,
        ino: Ino,
        path: &str,
        (beside, mtime): (String, i64),
        target: (u64, i64),
        data: Bytes,
        edit: u64,
    ) -> Error {
        let name = conflict_noted(st, path, &beside);
        if let Some(parent) = st.tree.get(ino).map(|n| n.parent) {
            let mut n = Node::new(parent, &name, EntryKind::File);
            n.size = data.len() as u64;
            n.board_mtime = mtime;
            n.on_board = true;
            let c = st.tree.insert(n);
            st.contents.insert_clean(c, data.to_vec());
        }
        if st.file.of(ino).edits == edit {
            self.board_kept(st, ino, path, target);
        }
        st.file.edit(ino, |f| f.retry = None);
        st.file.edit(ino, |f| f.sent.clear());
        self.changed(st, ino);
        Error::Conflict {
            path: path.to_string(),
            beside,
        }
    }

    /// After a conflict, `ino` is the board's version (`target`: its size
    /// and mtime) from now on.
    pub(super) fn board_kept(&self, st: &mut State, ino: Ino, path: &str, target: (u64, i64)) {
        st.contents.forget(ino);
        st.file.edit(ino, |f| {
            f.base = None;
            f.was = None;
            f.written = None;
        });
        st.file.edit(ino, |f| f.seen = Some(target));
        if let Some(n) = st.tree.get_mut(ino) {
            (n.size, n.board_mtime) = target;
            n.mode = None;
            n.mtime = None;
            // A file saved from a scratch name had not been on the board.
            n.on_board = true;
        }
        if let Some(j) = self.journal() {
            j.remove(path);
        }
    }

    /// --writeback-delay: uploads the files last written longer ago than
    /// the delay.
    pub async fn flush_due(&self) -> Unflushed {
        let Some(delay) = self.opts.writeback else {
            return Vec::new();
        };
        let due: Vec<Ino> = {
            let st = self.lock();
            st.file
                .iter()
                .filter(|(i, f)| {
                    f.written.is_some_and(|t| t.elapsed() >= delay) && !st.contents.is_open(*i)
                })
                .map(|(i, _)| i)
                .filter(|i| {
                    st.file
                        .of(*i)
                        .retry
                        .as_ref()
                        .is_none_or(|(at, _)| Instant::now() >= *at)
                })
                .collect()
        };
        self.upload_each(due).await
    }

    /// Closed files whose upload failed (a dropped link, a full board), sent
    /// again once their pause is over; with --writeback-delay, the files
    /// that are due.
    pub async fn retry_unsent(&self) -> Unflushed {
        if self.opts.writeback.is_some() {
            return self.flush_due().await;
        }
        let waiting: Vec<Ino> = {
            let st = self.lock();
            let now = Instant::now();
            st.contents
                .dirty_inos()
                .into_iter()
                .filter(|&i| {
                    !st.contents.is_open(i) && st.tree.get(i).is_some_and(|n| !n.local_only)
                })
                .filter(|i| {
                    st.file
                        .of(*i)
                        .retry
                        .as_ref()
                        .is_some_and(|(at, _)| now >= *at)
                })
                .collect()
        };
        let failed = self.upload_each(waiting.clone()).await;
        for ino in waiting {
            let st = self.lock();
            if !st.contents.is_dirty(ino) && st.tree.get(ino).is_some() {
                info!("{} reached the board", st.tree.path(ino));
            }
        }
        failed
    }

    /// Whether a file waits for another try.
    pub fn has_unsent(&self) -> bool {
        let st = self.lock();
        st.contents
            .dirty_inos()
            .into_iter()
            .any(|i| !st.contents.is_open(i))
    }

    /// Every dirty file to the board; what failed, with why.
    pub async fn flush_all(&self) -> Unflushed {
        self.flush_where(|_, _| true).await
    }

    /// The files saved and not yet sent, to the board, as before a
    /// person's program runs: it runs what they saved, not the board's
    /// older copy. Not files still open (an editor's work in progress),
    /// nor those the board refused already (a full flash): they go on
    /// their own retries, and each program would wait for another try.
    pub async fn flush_saved(&self) -> Unflushed {
        self.flush_where(|st, i| !st.contents.is_open(i) && st.file.of(i).unsent.is_none())
            .await
    }

    /// The dirty files on the board's side that `take` picks, to the board.
    async fn flush_where(&self, take: impl Fn(&State, Ino) -> bool) -> Unflushed {
        let picked: Vec<Ino> = {
            let st = self.lock();
            st.contents
                .dirty_inos()
                .into_iter()
                .filter(|&i| st.tree.get(i).is_some_and(|n| !n.local_only) && take(&st, i))
                .collect()
        };
        self.upload_each(picked).await
    }

    /// Holds new uploads off `inos` and below until the guard drops, and
    /// waits until none is in flight there: a rename or removal must not
    /// race the rename that finishes an upload. One that waits for a lost
    /// link gives way (see `batch`'s `link_back`): it is sent later, under
    /// the new name.
    pub(super) async fn quiesce(&self, inos: &[Ino]) -> Moving<'_> {
        let (tx, rx) = tokio::sync::watch::channel(());
        let unqueued = {
            let mut st = self.lock();
            let unqueued: Vec<Ino> = inos
                .iter()
                .copied()
                .filter(|i| st.batch.contains(i))
                .collect();
            for &i in inos {
                st.file.edit(i, |f| f.moving.push(rx.clone()));
                st.batch.retain(|&b| b != i);
            }
            unqueued
        };
        let moving = Moving {
            core: self,
            inos: inos.to_vec(),
            unqueued,
            _tx: tx,
        };
        self.moves.send_modify(|n| *n += 1);
        loop {
            let rx = {
                let st = self.lock();
                let mut all: Vec<Ino> = inos.iter().flat_map(|&i| st.tree.descendants(i)).collect();
                all.extend_from_slice(inos);
                all.into_iter()
                    .find_map(|i| st.file.of(i).uploading.clone())
            };
            let Some(mut rx) = rx else {
                return moving;
            };
            let _ = rx.changed().await;
        }
    }
}

/// Holds uploads off names being renamed or removed; see [`Core::quiesce`].
pub(super) struct Moving<'a> {
    core: &'a Core,
    inos: Vec<Ino>,
    /// Taken out of the batcher's queue: what is still to send goes back
    /// in under its new name (a save through a temporary file renamed over
    /// its target while another upload held the wire).
    unqueued: Vec<Ino>,
    _tx: tokio::sync::watch::Sender<()>,
}

impl Drop for Moving<'_> {
    fn drop(&mut self) {
        let mine = self._tx.subscribe();
        let mut st = self.core.lock();
        for i in &self.inos {
            st.file
                .edit(*i, |f| f.moving.retain(|rx| !rx.same_channel(&mine)));
        }
        let mut requeued = false;
        for &i in &self.unqueued {
            let pending = st.tree.get(i).is_some_and(|n| !n.local_only) && st.contents.is_dirty(i);
            if pending && !st.batch.contains(&i) {
                st.batch.push(i);
                requeued = true;
            }
        }
        if requeued {
            self.core.batch_wake.notify_one();
        }
    }
}

fn open_locked(st: &mut State, ino: Ino, write: bool) -> Result<u64> {
    if node(st, ino)?.kind == EntryKind::Dir {
        return Err(Error::Os {
            errno: libc::EISDIR,
            what: st.tree.path(ino),
        });
    }
    st.contents.opened(ino);
    st.next_fh += 1;
    if write {
        st.writers.insert(st.next_fh);
    }
    Ok(st.next_fh)
}

/// Says and keeps, for `status`, that `path` changed on the board under an
/// edit and the edit went to `beside`; the name it has in its directory.
pub(super) fn conflict_noted(st: &mut State, path: &str, beside: &str) -> String {
    let msg = format!(
        "{path} changed on the board since it was read here; the board's version is kept, yours is saved as {beside}"
    );
    warn!("{msg}");
    st.conflicts.push((msg, beside.to_string()));
    beside.rsplit('/').next().unwrap_or(beside).to_string()
}
