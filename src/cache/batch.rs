//! Uploads of many files at once. Every close puts its file in the journal
//! (durable on local disk) and in the batcher's queue; what queues while a
//! batch is on the wire goes next as one pipelined batch (cp -r, rsync, git
//! checkout): the data of each follows the one before without waiting, and
//! one program checks and renames them all. Each close waits for the
//! outcome of its own file's upload, up to the close wait, so an error the
//! board gives in that time (ENOSPC, a conflict) reaches the program that
//! caused it; past it, the upload goes on in the background.

use super::*;
use crate::board::{Upload, Written};
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::{oneshot, watch};
use tracing::debug;

/// Removes an upload's mark when it ends, however it ends.
struct Uploading<'a> {
    core: &'a Core,
    ino: Ino,
    _tx: watch::Sender<()>,
}

impl Drop for Uploading<'_> {
    fn drop(&mut self) {
        self.core.lock().file.edit(self.ino, |f| f.uploading = None);
    }
}

/// A rename or removal under way at or above `ino`.
fn moving(st: &State, mut ino: Ino) -> Option<&watch::Receiver<()>> {
    loop {
        if let Some(rx) = st.file.of(ino).moving.first() {
            return Some(rx);
        }
        let parent = st.tree.get(ino)?.parent;
        if parent == ino {
            return None;
        }
        ino = parent;
    }
}

/// One file taken for upload: what is sent and what it answers to.
struct Taken {
    ino: Ino,
    path: String,
    data: Bytes,
    edit: u64,
    base: Base,
    /// Earlier versions sent whose outcome is unknown.
    ours: Vec<Bytes>,
    /// The board's copy it replaces, if held: only the change goes.
    was: Option<Bytes>,
    /// A new file: files beside it it may be a near copy of.
    near: Vec<(String, Bytes)>,
}

/// Versions of a file kept while their outcome is unknown.
const KEPT_VERSIONS: usize = 3;

impl Core {
    /// Uploads closed files in bursts; runs for the mount's life.
    pub async fn batcher(self: Arc<Core>) {
        self.batcher_on.store(true, Ordering::SeqCst);
        loop {
            self.batch_wake.notified().await;
            loop {
                // What queued while the last batch was on the wire goes
                // next, as one batch.
                let results = self
                    .upload_batch_with(|st| std::mem::take(&mut st.batch))
                    .await;
                if results.is_empty() {
                    break;
                }
                let n = results.len();
                let failed: Vec<_> = results
                    .into_iter()
                    .filter_map(|(ino, r)| r.err().map(|e| (ino, e)))
                    .collect();
                debug!("batch of {n} closed file(s): {} failed", failed.len());
                if !failed.is_empty() {
                    let st = self.lock();
                    for (ino, e) in failed {
                        warn!(
                            "{}: {e} (kept in the journal, tried again)",
                            st.tree.path(ino)
                        );
                    }
                }
            }
        }
    }

    /// Puts a closed file in the journal and in the batcher's queue. The
    /// receiver hears how the upload of this version (or a later one)
    /// ended. None: no batcher runs; the caller uploads.
    pub(super) fn queue(
        &self,
        st: &mut State,
        ino: Ino,
    ) -> Result<Option<oneshot::Receiver<Result<()>>>> {
        if !self.batcher_on.load(Ordering::SeqCst) {
            return Ok(None);
        }
        self.keep(st, ino)?;
        let edit = st.file.of(ino).edits;
        let (tx, rx) = oneshot::channel();
        st.file.edit(ino, |f| f.waiters.push((edit, tx)));
        st.batch.push(ino);
        self.batch_wake.notify_one();
        Ok(Some(rx))
    }

    /// Sends dirty files to the board, pipelined; one upload per file at a
    /// time (a file in flight already is waited for, then sent again if it
    /// changed meanwhile). Each file's outcome, in no particular order.
    pub(super) async fn upload_batch(&self, inos: Vec<Ino>) -> Vec<(Ino, Result<()>)> {
        self.upload_batch_with(|_| inos).await
    }

    /// [`Self::upload_batch`] of what `first` picks under the lock that
    /// marks them as uploading: nothing can rename or remove them between.
    async fn upload_batch_with(
        &self,
        first: impl FnOnce(&mut State) -> Vec<Ino>,
    ) -> Vec<(Ino, Result<()>)> {
        let mut out = Vec::new();
        let mut first = Some(first);
        let mut todo = Vec::new();
        loop {
            let mut busy = Vec::new();
            let mut taken = Vec::new();
            let mut guards = Vec::new();
            let mut parents = false;
            {
                let mut st = self.lock();
                if let Some(f) = first.take() {
                    todo = f(&mut st);
                }
                todo.sort_unstable();
                todo.dedup();
                if todo.is_empty() {
                    break;
                }
                for ino in todo.drain(..) {
                    let Some(n) = st.tree.get(ino) else {
                        answer(&mut st, ino, u64::MAX, &Ok(()));
                        out.push((ino, Ok(())));
                        continue;
                    };
                    if !st.contents.is_dirty(ino) || n.local_only {
                        // Sent already, or never to be: nothing to wait for.
                        answer(&mut st, ino, u64::MAX, &Ok(()));
                        out.push((ino, Ok(())));
                        continue;
                    }
                    if let Some(rx) = st
                        .file
                        .of(ino)
                        .uploading
                        .as_ref()
                        .or_else(|| moving(&st, ino))
                    {
                        busy.push((ino, rx.clone()));
                        continue;
                    }
                    parents |= !st.tree.get(n.parent).is_some_and(|p| p.on_board);
                    let data =
                        Bytes::copy_from_slice(st.contents.get_clean_or_dirty(ino).unwrap_or(&[]));
                    // Until its answer comes, this version may be the
                    // board's: a journal written meanwhile says so.
                    let ours = st.file.edit(ino, |f| {
                        let ours = f.sent.clone();
                        f.sent.push(data.clone());
                        if f.sent.len() > KEPT_VERSIONS {
                            f.sent.remove(0);
                        }
                        ours
                    });
                    let base = st.file.of(ino).base.unwrap_or(Base::Any);
                    let was = match base {
                        Base::Was(..) => st.file.of(ino).was.clone(),
                        _ => None,
                    };
                    let near = if base == Base::Absent && held::NEAR.contains(&data.len()) {
                        held::beside(&st, ino, data.len())
                    } else {
                        Vec::new()
                    };
                    taken.push(Taken {
                        ino,
                        path: st.tree.path(ino),
                        data,
                        edit: st.file.of(ino).edits,
                        base,
                        ours,
                        was,
                        near,
                    });
                    let (tx, rx) = watch::channel(());
                    st.file.edit(ino, |f| f.uploading = Some(rx));
                    guards.push(Uploading {
                        core: self,
                        ino,
                        _tx: tx,
                    });
                }
            }
            if !taken.is_empty() {
                let started = Instant::now();
                let (done, yielded) = self.send_checked(taken, parents).await;
                let mut conflicted = false;
                for (t, r) in done {
                    conflicted |= matches!(r, Ok(Written::Beside { .. }));
                    let r = self.apply_upload(t.ino, &t.path, t.data, t.edit, started, r);
                    out.push((t.ino, r));
                }
                if !yielded.is_empty() {
                    // Never sent: no longer a version the board may have.
                    // Each goes again once the rename that wanted it is
                    // over (under its new name), its closes still waiting.
                    let mut st = self.lock();
                    for t in yielded {
                        st.file.edit(t.ino, |f| {
                            if f.sent.last() == Some(&t.data) {
                                f.sent.pop();
                            }
                        });
                        todo.push(t.ino);
                    }
                }
                drop(guards);
                if conflicted {
                    // The caller sees the board's version from the moment
                    // it hears of the conflict.
                    self.settled().await;
                }
            }
            for (ino, mut rx) in busy {
                // Ends (Err) when the upload in flight does.
                let _ = rx.changed().await;
                todo.push(ino);
            }
        }
        out
    }

    /// Sends files to the board on the current link once it is known to
    /// be the mount's board (another board may answer at this address
    /// since the last link: nothing of this mount's goes to it). Each
    /// upload is tied to that link: one the link changed under (a board
    /// that restarted) is checked and sent again on the new one, up to
    /// `TRIES` times. With the link lost, they wait for it here, and give
    /// way to a rename or removal of one of them (the second list: not
    /// sent).
    async fn send_checked(
        &self,
        mut pending: Vec<Taken>,
        parents: bool,
    ) -> (Vec<(Taken, Result<Written>)>, Vec<Taken>) {
        const TRIES: usize = 3;
        let mut done = Vec::new();
        for attempt in 1..=TRIES {
            // Only what was never sent gives way: a try the link changed
            // under may have landed under its old name.
            match self.link_back(&pending, attempt == 1).await {
                Ok(false) => {}
                Ok(true) => return (done, pending),
                Err(e) => {
                    done.extend(pending.into_iter().map(|t| (t, Err(e.clone()))));
                    break;
                }
            }
            let held = self.guard.check(&self.board).await.err();
            if held.is_none() {
                self.rebase(&mut pending).await;
            }
            let ups = pending
                .iter()
                .map(|t| {
                    let mut up = Upload::new(&t.path, t.data.clone(), t.base);
                    up.was = t.was.clone();
                    if let Some((at, b)) = held::closest(t.near.clone(), &t.data) {
                        up.was = Some(b);
                        up.was_at = Some(at);
                    }
                    up
                })
                .collect();
            let link = self.board.session().generation();
            let sent = match held {
                Some(e) => Err(e),
                None => self.board.on_link(link).put_many(ups, parents).await,
            };
            let results = match sent {
                Ok(r) => r,
                Err(e) => pending.iter().map(|_| Err(e.clone())).collect(),
            };
            let moved = self.board.session().generation() != link;
            let mut again = Vec::new();
            for (mut t, r) in pending.into_iter().zip(results) {
                if moved && attempt < TRIES && matches!(r, Err(Error::LinkLost(_))) {
                    // It may have landed before the link went: the next
                    // try's rebase finds out.
                    t.ours.push(t.data.clone());
                    again.push(t);
                } else {
                    done.push((t, r));
                }
            }
            if again.is_empty() {
                break;
            }
            debug!(
                "{} upload(s) met a new link; checking it and sending again",
                again.len()
            );
            pending = again;
        }
        (done, Vec::new())
    }

    /// With the link down for want of the board (refused, cut), waits for
    /// it here, before anything is sent, up to the time-out as the session
    /// would: Ok(true) as soon as a rename or removal wants one of
    /// `pending`, if it may `give_way` (sed's or an IDE's save renames its
    /// temporary file over the file: it waited for this upload's
    /// time-outs, 20-50 s); Err when the link is not back in time.
    async fn link_back(&self, pending: &[Taken], give_way: bool) -> Result<bool> {
        let session = self.board.session();
        let down = |s: crate::session::Status| !s.link_up && !s.idle_closed;
        if !session.status().await.is_ok_and(down) {
            return Ok(false);
        }
        let mut moves = self.moves.subscribe();
        // The session tries the link again only while something wants it:
        // a probe of no cost to the board, that ends when the link is back
        // (or with the time-out's error).
        let back = session.version();
        tokio::pin!(back);
        loop {
            moves.borrow_and_update();
            if give_way {
                let st = self.lock();
                if pending.iter().any(|t| moving(&st, t.ino).is_some()) {
                    debug!("an upload waiting for the link gives way to a rename");
                    return Ok(true);
                }
            }
            tokio::select! {
                r = &mut back => {
                    return match r {
                        Err(e) if session.status().await.is_ok_and(down) => Err(e),
                        _ => Ok(false),
                    };
                }
                _ = moves.changed() => {}
            }
        }
    }

    /// An upload whose earlier try lost its answer: if the board has that
    /// version of ours, the new one is based on it, not on what the board
    /// had before it (which would make our own version a conflict).
    async fn rebase(&self, taken: &mut [Taken]) {
        let unknown: Vec<(usize, Vec<journal::Version>)> = taken
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.ours.is_empty() && t.base != Base::Any)
            .map(|(k, t)| (k, t.ours.iter().map(|d| journal::Version::of(d)).collect()))
            .collect();
        if unknown.is_empty() {
            return;
        }
        let files: Vec<(&str, &[journal::Version])> = unknown
            .iter()
            .map(|(k, v)| (taken[*k].path.as_str(), v.as_slice()))
            .collect();
        let found = journal::ours_on_board(&self.board, &files).await;
        for ((k, _), f) in unknown.iter().zip(found) {
            if let Some(f) = f {
                taken[*k].base = Base::Was(f.now.0, f.now.1);
                // Which of our versions it has is not known here: the
                // board's check would refuse a wrong copy anyway.
                taken[*k].was = None;
            }
        }
    }

    /// Sends one dirty file to the board.
    pub(super) async fn upload(&self, ino: Ino) -> Result<()> {
        self.upload_batch(vec![ino])
            .await
            .into_iter()
            .find(|(i, _)| *i == ino)
            .map_or(Ok(()), |(_, r)| r)
    }

    /// Uploads files, pipelined; what failed, with why.
    pub(super) async fn upload_each(&self, inos: Vec<Ino>) -> Unflushed {
        let results = self.upload_batch(inos).await;
        let st = self.lock();
        results
            .into_iter()
            .filter_map(|(ino, r)| r.err().map(|e| (st.tree.path(ino), e)))
            .collect()
    }
}

/// Tells the closes waiting for `ino` how an upload of its edit `edit`
/// ended: a success answers those that closed at that edit or before (a
/// later one waits for its own version), a failure all of them.
pub(super) fn answer(st: &mut State, ino: Ino, edit: u64, r: &Result<()>) {
    let waiting = st.file.edit(ino, |f| std::mem::take(&mut f.waiters));
    let (done, left): (Vec<_>, Vec<_>) = waiting
        .into_iter()
        .partition(|(at, _)| r.is_err() || *at <= edit);
    for (_, tx) in done {
        let _ = tx.send(match r {
            Ok(()) => Ok(()),
            Err(e) => Err(e.clone()),
        });
    }
    if !left.is_empty() {
        st.file.edit(ino, |f| f.waiters = left);
    }
}
