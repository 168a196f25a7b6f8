//! Uploads: atomic, verified, careful of the board's own changes, and
//! pipelined when there are many.
//!
//! Each file goes to a part file of its own in the target's directory (so
//! concurrent uploads to one directory never collide), a big one in slices
//! (no text may go in the middle of a PUT, so one PUT must not hold the
//! terminal long). The part files of a batch follow each other on the wire
//! without waiting for replies; then one program joins slices, checks each
//! part's size (firmware loses PUT bytes and hides write errors) and the
//! batch's CRC (firmware can take other bytes as file data), checks that
//! its target is still what the edit began from, and renames it onto the
//! target. A cut link never leaves a truncated target:
//! every file of a batch is either old or new; a part file a failed upload
//! leaves is removed by the next upload.

use super::*;
use bytes::Bytes;
use std::sync::atomic::Ordering;
use tokio::sync::watch;

/// Bytes of file per raw-paste upload program (about 5.5 KB of code), at
/// most: less on a board with little heap.
const PASTE_PIECE: usize = 4096;
/// Part names kept for [`Board::remove_own_parts`]: far more than one
/// batch has in flight.
const NAMED_KEPT: usize = 1024;
/// How long [`Board::remove_own_parts`] waits for the transfers on the
/// wire to end.
const PARTS_SETTLE: Duration = Duration::from_secs(30);
/// Uploads the board kept short (lost bytes) are sent again until this
/// many sends gained nothing (a mend that left fewer slices short gained).
const PUT_TRIES: u32 = 3;
/// Files checked and renamed by one program.
const FINISH_BATCH: usize = 32;
/// A slice of a big upload takes about this long on the link (a key typed
/// meanwhile waits for it), and is this big at least and at most; before
/// the link's rate is known, `SLICE_FIRST`.
const SLICE_TIME: f64 = 0.4;
/// While a person types at a terminal: their keys wait at most about this
/// for a slice (each slice costs a PUT's round trips and a part file to
/// join, so not less; `SLICE_MIN` holds at slow rates).
const SLICE_TIME_TYPING: f64 = 0.15;
const SLICE_MIN: usize = 4096;
const SLICE_MAX: usize = 4 << 20;
const SLICE_FIRST: usize = 16 * 1024;
/// On a link nobody else waits on (`Status::alone`), slices leave no gaps
/// for anyone: each is a PUT header and a part to join on the board
/// (100 KB of noise at 20 KB/s: 5.31 s in 8 KB slices, webrepl_cli.py's one
/// PUT 5.19 s). Not the whole file: a byte the board loses costs its
/// slice again.
const SLICE_ALONE: usize = 256 * 1024;
/// A flash stores a file in whole blocks (4 KB on littlefs and FAT on
/// ESP boards): slices are whole blocks, or the parts of a file near the
/// flash's size take more room than the file (40 slices of 8,335 B took
/// 491 KB of 4 KB blocks for a 340 KB file on a flash with 389 KB free).
const FLASH_BLOCK: usize = 4096;
/// A finishing program's join of a big upload's slices holds the REPL:
/// an ESP32 rewrites 300 KB of littlefs in about 6 s. Beyond this many
/// bytes to join, the slices are joined ahead of it in steps of about
/// `JOIN_STEP_MS` on the board (`JOIN_STEP_MS_TYPING` while a person
/// types), and a person's keys (or a listing) go between steps. Each step
/// costs a program's round trips.
const JOIN_AHEAD: usize = 32 * 1024;
const JOIN_STEP_MS: u32 = 600;
const JOIN_STEP_MS_TYPING: u32 = 150;

/// The room a file has on a flash with `free` bytes after its join came
/// up short at `kept` bytes: the slices it left (all but the whole ones
/// the part held) are removed before the next send.
fn room(free: u64, kept: u64, job: &Sending) -> u64 {
    let slice = job.slice.max(1) as u64;
    match job.pieces() {
        0 => free,
        _ => free + (job.len as u64).saturating_sub(kept / slice * slice),
    }
}

/// Slices that a flash with `free` bytes can join into a file of `len`:
/// the join holds the file and one slice at once. Half the spare room, in
/// whole 4 KB blocks (a flash stores a file in blocks); None if under
/// `SLICE_MIN`.
fn join_room(free: u64, len: usize) -> Option<usize> {
    let spare = usize::try_from(free)
        .unwrap_or(usize::MAX)
        .saturating_sub(len);
    let slice = spare / 2 / FLASH_BLOCK * FLASH_BLOCK;
    (slice >= SLICE_MIN).then_some(slice)
}

/// What the target must still be for the upload to replace it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// Whatever is there (a copy the user asked for).
    Any,
    /// Nothing: the file is new.
    Absent,
    /// What the board had when the edit began: size and mtime. A target
    /// that is gone is written again.
    Was(u64, i64),
}

/// Where an upload landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// On the target; the board's mtime of it.
    Target(i64),
    /// The target had changed: the data is beside it under this name (with
    /// its mtime), and the target is as the board has it: size and mtime.
    Beside {
        name: String,
        mtime: i64,
        target: (u64, i64),
    },
}

/// One file of a batch.
#[derive(Debug, Clone)]
pub struct Upload {
    pub path: String,
    pub data: Bytes,
    pub base: Base,
    /// Bytes the board has taken, as they go.
    pub progress: Option<watch::Sender<u64>>,
    /// What the board's file holds, as far as we know: if it still does
    /// (size and CRC-32, checked on the board), only the change is sent.
    pub was: Option<Bytes>,
    /// Where the board holds `was`, if not at `path`: a new file saved as
    /// a near copy of the one beside it that it will replace (sed -i).
    pub was_at: Option<String>,
    /// The board's copy at `path` by blocks, when we do not hold it (a
    /// `cp` onto a file the board has): only the change is sent.
    pub sums: Option<std::sync::Arc<super::sums::BlockSums>>,
}

impl Upload {
    /// The whole file goes again: its count starts over, as the bytes do.
    fn restart_progress(&self) {
        if let Some(p) = &self.progress {
            p.send_replace(0);
        }
    }

    pub fn new(path: &str, data: impl Into<Bytes>, base: Base) -> Upload {
        Upload {
            path: path.to_string(),
            data: data.into(),
            base,
            progress: None,
            was: None,
            was_at: None,
            sums: None,
        }
    }
}

pub fn conflict_name(path: &str) -> String {
    format!("{path}{CONFLICT_SUFFIX}")
}

impl Board {
    /// A part file name no other upload of this mount uses.
    pub(super) fn part_for(&self, path: &str) -> String {
        let n = self.next_part.fetch_add(1, Ordering::SeqCst) & 0xff_ffff;
        let part = join(parent(path), &format!("{PART_PREFIX}{n:06x}"));
        let mut named = self.named_parts.lock().unwrap_or_else(|e| e.into_inner());
        if named.len() >= NAMED_KEPT {
            named.pop_front();
        }
        named.push_back(part.clone());
        part
    }

    /// Removes the part files (and their slices) this connection's
    /// uploads left: an upload stopped in its middle (`cp` on Ctrl-C)
    /// never marked them stale. One listing per directory, one program;
    /// a file a finished upload renamed is no longer there.
    pub async fn remove_own_parts(&self) -> Result<()> {
        let named: Vec<String> = {
            let mut n = self.named_parts.lock().unwrap_or_else(|e| e.into_inner());
            n.drain(..).collect()
        };
        // A PUT on the wire still lands (the board takes it whole), and
        // its slice after the listing would stay: the transfers end first,
        // waited for a while at most.
        let until = Instant::now() + PARTS_SETTLE;
        while Instant::now() < until {
            let st = self.session.status().await?;
            if st.moving.is_empty() && st.queued.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut dirs: Vec<&str> = named.iter().map(|p| parent(p)).collect();
        dirs.sort_unstable();
        dirs.dedup();
        let mut gone = Vec::new();
        for dir in dirs {
            for e in self.list(dir, false).await? {
                let ours = named.iter().any(|p| {
                    e.path
                        .strip_prefix(p.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
                });
                if ours {
                    gone.push(e.path);
                }
            }
        }
        if gone.is_empty() {
            return Ok(());
        }
        debug!("removing {} part file(s) of a stopped upload", gone.len());
        let refs: Vec<&str> = gone.iter().map(String::as_str).collect();
        sn::expect_ok(&self.snippet(sn::remove_all(&refs)).await?, "part files")
    }

    /// Writes a whole file atomically (see the module's comment).
    /// `parents`: create missing parent directories first (a PUT into a
    /// missing directory makes the board drop the connection).
    pub async fn put(&self, path: &str, data: &[u8], parents: bool, base: Base) -> Result<Written> {
        let up = Upload::new(path, Bytes::copy_from_slice(data), base);
        self.put_one(up, parents).await
    }

    /// `put`, telling how many bytes the board has taken as it goes.
    pub async fn put_progress(
        &self,
        path: &str,
        data: Bytes,
        parents: bool,
        base: Base,
        progress: watch::Sender<u64>,
    ) -> Result<Written> {
        let mut up = Upload::new(path, data, base);
        up.progress = Some(progress);
        self.put_one(up, parents).await
    }

    /// `put` of a new version of a file the board holds as `was` (if it
    /// still does: then only the change goes).
    pub async fn put_changed(
        &self,
        path: &str,
        data: Bytes,
        was: Bytes,
        base: Base,
    ) -> Result<Written> {
        let mut up = Upload::new(path, data, base);
        up.was = Some(was);
        self.put_one(up, false).await
    }

    async fn put_one(&self, up: Upload, parents: bool) -> Result<Written> {
        self.put_many(vec![up], parents)
            .await?
            .pop()
            .unwrap_or(Err(Error::Bug(crate::error::Bug::Missing {
                what: "an upload",
            })))
    }

    /// Several files at once, each atomic: the result of each, in order. An
    /// error of the whole batch (the link, the REPL) is the outer one.
    pub async fn put_many(
        &self,
        mut ups: Vec<Upload>,
        parents: bool,
    ) -> Result<Vec<Result<Written>>> {
        // One count per file for all its tries: a slice the board kept
        // short and sent again adds to what `status` and the page showed,
        // instead of a new count from 0 (the bar went back to 7 KB).
        for up in &mut ups {
            up.progress.get_or_insert_with(|| watch::channel(0).0);
        }
        let mut results: Vec<Option<Result<Written>>> = (0..ups.len()).map(|_| None).collect();
        self.same_link()?;
        if parents {
            let mut dirs: Vec<&str> = ups.iter().map(|u| parent(&u.path)).collect();
            dirs.sort();
            dirs.dedup();
            dirs.retain(|d| *d != "/");
            if !dirs.is_empty()
                && let Err(e) = self.mkdirs_all(&dirs).await
            {
                if !matches!(e, Error::Os { .. } | Error::NotFound(_)) {
                    return Err(e);
                }
                // A file in the way of one: the files below the others
                // still go.
                for d in dirs {
                    if let Err(e) = self.mkdirs(d).await {
                        for (r, u) in results.iter_mut().zip(&ups) {
                            if parent(&u.path) == d {
                                *r = Some(Err(e.clone()));
                            }
                        }
                    }
                }
            }
        }
        // A board too low on memory to remove what a failed try left gets
        // no new part files: each try of a mount's retries left a whole
        // copy on its flash (25 files, 51 KB in 30 s in review).
        if let Err(e @ Error::LowMemory { .. }) = self.cleanup().await {
            return Ok(results
                .into_iter()
                .map(|r| r.unwrap_or_else(|| Err(e.clone())))
                .collect());
        }
        let slice = self.slice().await;
        let failed: Vec<bool> = results.iter().map(Option::is_some).collect();
        let mut deltas = self.send_deltas(&ups, &failed, slice).await;
        let done: Vec<bool> = failed
            .iter()
            .zip(&deltas)
            .map(|(f, d)| *f || d.is_some())
            .collect();
        let mut packed = self.send_packed(&ups, &done, slice).await;
        for (r, p) in results.iter_mut().zip(packed.iter_mut()) {
            match p.take() {
                Some(super::pack::Packed::Landed(mtime)) => *r = Some(Ok(Written::Target(mtime))),
                Some(super::pack::Packed::Written(w)) => *r = Some(Ok(w)),
                other => *p = other,
            }
        }
        let mut todo: Vec<Sending> = (0..ups.len())
            .filter(|&i| results[i].is_none())
            .map(|i| {
                let part = packed[i].take().and_then(|p| match p {
                    super::pack::Packed::Part(part) => Some(part),
                    super::pack::Packed::Landed(_) | super::pack::Packed::Written(_) => None,
                });
                (i, deltas[i].take().or(part))
            })
            .map(|(i, part)| match part {
                Some(part) => Sending::ready(i, part, ups[i].data.len()),
                None => Sending::whole(i, self.part_for(&ups[i].path), ups[i].data.len(), slice),
            })
            .collect();
        for attempt in 1.. {
            // A file alone in one PUT (a mount's close, `cp` of one file):
            // its finishing program goes right behind the PUT's last byte.
            let mut alone = match todo.as_slice() {
                [job] => self.begin_alone(&ups, job),
                _ => None,
            };
            let sent = match alone {
                Some(_) => vec![Ok(())],
                None => self.send_parts(&ups, &todo).await,
            };
            let mut checking = Vec::new();
            for (job, r) in todo.into_iter().zip(sent) {
                match r {
                    Ok(()) => checking.push(job),
                    Err(e) => {
                        // Part files may be left: removed by the next upload.
                        self.stale_all(&job, &ups);
                        results[job.i] = Some(Err(e));
                    }
                }
            }
            self.join_ahead(&checking).await;
            let mut again = Vec::new();
            for chunk in checking.chunks(FINISH_BATCH) {
                let finished = match self.same_link() {
                    Ok(()) => self.finish(&ups, chunk, alone.take()).await,
                    Err(e) => Err(e),
                };
                let finished = match finished {
                    Ok(f) => f,
                    Err(e) => {
                        for job in chunk {
                            self.stale_all(job, &ups);
                            results[job.i] = Some(Err(e.clone()));
                        }
                        continue;
                    }
                };
                for (job, f) in chunk.iter().zip(finished) {
                    let up = &ups[job.i];
                    if job.pieces() > 0
                        && !matches!(f, Ok(Finish::Done(_)) | Ok(Finish::Slices { .. }))
                    {
                        // Slices a join that failed (a full flash) left.
                        self.stale_all(job, &ups);
                    }
                    let lost = || Error::Os {
                        errno: libc::EIO,
                        what: format!("{}: the board kept losing bytes", up.path),
                    };
                    let next = |going: bool| match going {
                        true => "sending again",
                        false => "no more tries",
                    };
                    results[job.i] = Some(match f {
                        Ok(Finish::Done(w)) => Ok(w),
                        // The slices a failed join left (at least the
                        // bytes it did not keep) go before the next send.
                        Ok(Finish::Short { free, kept })
                            if room(free, kept, job) < up.data.len() as u64 =>
                        {
                            Err(Error::Os {
                                errno: libc::ENOSPC,
                                what: up.path.clone(),
                            })
                        }
                        // Joining slices takes a slice's room beside the
                        // file it makes: on a flash without it, the file
                        // goes again in slices that leave room, or is too
                        // big (320 KB onto 336 KB free, in a 256 KB and a
                        // 56 KB slice, "kept losing bytes" three times).
                        Ok(Finish::Short { free, kept })
                            if job.pieces() > 0
                                && room(free, kept, job) < (up.data.len() + job.slice) as u64 =>
                        {
                            let fits = join_room(room(free, kept, job), up.data.len());
                            if let Some(smaller) = fits.filter(|&s| s < job.slice)
                                && job.tries < PUT_TRIES
                            {
                                warn!(
                                    "{}: no room on the board to join {} B slices; sending again in {smaller} B slices",
                                    up.path, job.slice
                                );
                                up.restart_progress();
                                again.push(job.again(self.part_for(&up.path), smaller));
                            }
                            Err(Error::Os {
                                errno: libc::ENOSPC,
                                what: up.path.clone(),
                            })
                        }
                        Ok(Finish::Garbled) => {
                            warn!(
                                "{}: the board holds other bytes than were sent (attempt {attempt}); {}",
                                up.path,
                                next(job.tries < PUT_TRIES)
                            );
                            self.stale_mark(&job.part, true);
                            up.restart_progress();
                            if job.tries < PUT_TRIES {
                                again.push(job.again(self.part_for(&up.path), slice));
                            }
                            Err(Error::Os {
                                errno: libc::EIO,
                                what: format!("{}: the board kept garbling it", up.path),
                            })
                        }
                        Ok(Finish::Short { kept, .. }) => {
                            warn!(
                                "{}: board kept {kept} of {} bytes (attempt {attempt}); {}",
                                up.path,
                                up.data.len(),
                                next(job.tries < PUT_TRIES)
                            );
                            up.restart_progress();
                            if job.tries < PUT_TRIES {
                                again.push(job.again(self.part_for(&up.path), slice));
                            }
                            Err(lost())
                        }
                        Ok(Finish::Slices { short, free })
                            if free < (short.len() * job.slice) as u64 =>
                        {
                            self.stale_all(job, &ups);
                            Err(Error::Os {
                                errno: libc::ENOSPC,
                                what: up.path.clone(),
                            })
                        }
                        Ok(Finish::Slices { short, .. }) => {
                            // A lost byte costs its slice, not the file.
                            let mend = job.mend(short);
                            let going = mend.tries <= PUT_TRIES;
                            warn!(
                                "{}: the board lacks slices {:?} of {} (short, or in a join cut short; attempt {attempt}); {}",
                                up.path,
                                mend.only.as_deref().unwrap_or_default(),
                                job.pieces() + 1,
                                next(going)
                            );
                            match going {
                                true => again.push(mend),
                                false => self.stale_all(job, &ups),
                            }
                            Err(lost())
                        }
                        Err(e) => Err(e),
                    });
                }
            }
            if again.is_empty() {
                break;
            }
            // What a failed join left takes room the next send needs.
            let _ = self.cleanup().await;
            todo = again;
        }
        // Leftovers of failed uploads go after ours, which never wait; not
        // with the board out of reach, which the next upload's cleanup
        // finds: the program would wait the time-out again (`cp` with the
        // board gone took twice `--timeout` to say so).
        if !results
            .iter()
            .any(|r| matches!(r, Some(Err(e)) if e.is_no_link()))
        {
            let _ = self.cleanup().await;
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or(Err(Error::Bug(crate::error::Bug::Missing {
                    what: "an upload",
                })))
            })
            .collect())
    }

    /// How big one PUT of a file may be: no text may go in the middle of
    /// an upload ([`crate::session`]'s `mid_put`), so a key typed or a
    /// listing asked for meanwhile waits for the PUT on the wire. A big file
    /// goes up in slices of about `SLICE_TIME` of the link each, which the
    /// finishing program joins.
    async fn slice(&self) -> usize {
        let (rate, typing, alone) = match self.session.status().await {
            Ok(s) => (s.upload_rate.unwrap_or(0.0), s.typing, s.alone),
            Err(_) => (0.0, false, false),
        };
        let slice = if alone {
            SLICE_ALONE
        } else {
            slice_for(rate, typing)
        };
        debug!("slices of {slice} B (the link's rate {rate:.0} B/s, typing: {typing})");
        slice
    }

    /// The data of each file into its part file (and the slices after the
    /// first into `PART.1`, `PART.2`...), or only the slices named. Binary
    /// PUTs are all handed to the session at once: it sends them back to
    /// back.
    pub(super) async fn send_parts(&self, ups: &[Upload], todo: &[Sending]) -> Vec<Result<()>> {
        let mut pending = Vec::new();
        for job in todo {
            let up = &ups[job.i];
            let names = piece_names(&job.part, up.data.len(), job.slice);
            if job.ready {
                if let Some(p) = &up.progress {
                    let _ = p.send(up.data.len() as u64);
                }
                pending.push(Pending::Ready);
            } else if names.iter().all(|n| self.binary_ok(n)) {
                let progress = up.progress.clone().unwrap_or_else(|| watch::channel(0).0);
                let shown = self.going(&up.path, up.data.len() as u64, progress.subscribe());
                let mut puts = Vec::new();
                for (k, name) in names.into_iter().enumerate() {
                    if job.only.as_ref().is_some_and(|o| !o.contains(&k)) {
                        continue;
                    }
                    let from = k * job.slice;
                    let data = up.data.slice(from..up.data.len().min(from + job.slice));
                    let (session, whole) = (self.session.clone(), progress.clone());
                    let link = self.link;
                    puts.push(tokio::spawn(async move {
                        let (tx, mut rx) = watch::channel(0u64);
                        // The file's progress is the sum of its slices'.
                        let follow = async {
                            let mut last = 0;
                            while rx.changed().await.is_ok() {
                                let done = *rx.borrow();
                                whole.send_if_modified(|v| {
                                    *v += done.saturating_sub(last);
                                    done > last
                                });
                                last = last.max(done);
                            }
                        };
                        let put = session.put_on(link, name.into_bytes(), data, tx);
                        let (r, ()) = tokio::join!(put, follow);
                        r
                    }));
                }
                pending.push(Pending::Put(puts, shown));
            } else {
                pending.push(Pending::Paste(job.i, job.part.clone()));
            }
        }
        let mut out = Vec::with_capacity(pending.len());
        for p in pending {
            out.push(match p {
                Pending::Put(puts, _shown) => {
                    let mut r = Ok(());
                    for h in puts {
                        let one = h.await.unwrap_or_else(|e| {
                            Err(Error::Bug(crate::error::Bug::Task {
                                task: "upload task".into(),
                                why: e.to_string(),
                            }))
                        });
                        if let (Ok(()), Err(e)) = (&r, one) {
                            r = Err(e);
                        }
                    }
                    r
                }
                Pending::Ready => Ok(()),
                Pending::Paste(i, part) => {
                    let r = self.put_pasted(&part, &ups[i].data).await;
                    if let Some(p) = &ups[i].progress {
                        let _ = p.send(ups[i].data.len() as u64);
                    }
                    r
                }
            });
        }
        out
    }

    /// Joins the slices of each big upload of `jobs` onto its part in
    /// steps (helper `js`), each a program of its own, so that the
    /// finishing program has nothing long left to do. Not on a link
    /// nobody else waits on. What a step could not join (a slice short, a
    /// link lost) is the finishing program's to find.
    async fn join_ahead(&self, jobs: &[Sending]) {
        let big = |job: &&Sending| job.pieces() > 0 && job.len - job.slice >= JOIN_AHEAD;
        for job in jobs.iter().filter(big) {
            let k = job.pieces();
            let mut next = 0;
            loop {
                let step = match self.session.status().await {
                    Ok(s) if s.alone => return,
                    Ok(s) if s.typing => JOIN_STEP_MS_TYPING,
                    _ => JOIN_STEP_MS,
                };
                let code = sn::helper_call(
                    "js",
                    &[
                        job.part.clone(),
                        k.to_string(),
                        job.slice.to_string(),
                        job.len.to_string(),
                        step.to_string(),
                    ],
                );
                let now = match self.helper(code).await {
                    Ok(out) => match sn::lines(&out).next().map(Answer::parse) {
                        Some(Answer::Joined(n)) => n as usize,
                        _ => break,
                    },
                    // The link, most likely: the next job's step would
                    // wait for it as long again.
                    Err(e) => {
                        debug!("{}: joining ahead stopped: {e}", shown(&job.part));
                        return;
                    }
                };
                if now <= next || now > k {
                    debug!(
                        "{}: {} of {k} slices joined ahead",
                        shown(&job.part),
                        now.saturating_sub(1)
                    );
                    break;
                }
                next = now;
            }
        }
    }

    /// The PUT of an upload that goes in one piece, begun now, for a
    /// program to follow right behind its last byte ([`Alone`]); None if
    /// it goes another way (slices, a paste, only some slices).
    pub(super) fn begin_alone(&self, ups: &[Upload], job: &Sending) -> Option<Alone> {
        let up = &ups[job.i];
        if job.ready || job.only.is_some() || job.pieces() > 0 || !self.binary_ok(&job.part) {
            return None;
        }
        let progress = up.progress.clone().unwrap_or_else(|| watch::channel(0).0);
        let shown = self.going(&up.path, up.data.len() as u64, progress.subscribe());
        let (ticket, put) = self
            .session
            .put_begin(
                self.link,
                job.part.clone().into_bytes(),
                up.data.clone(),
                progress,
            )
            .ok()?;
        Some((
            ticket,
            Box::pin(async move {
                let r = put.await;
                drop(shown);
                r
            }),
        ))
    }

    /// Every name an upload may have left on the board, to be removed.
    pub(super) fn stale_all(&self, job: &Sending, ups: &[Upload]) {
        for name in piece_names(&job.part, ups[job.i].data.len(), job.slice) {
            self.stale_mark(&name, true);
        }
    }

    /// One program checks and renames a batch of part files. If the link
    /// breaks under it, whether it ran is found out on the next link: a
    /// part file still there did not move.
    ///
    /// `alone`: the batch's one file is still on its way in this PUT; the
    /// program goes right behind its last byte, and a failed PUT is the
    /// batch's error (the program then finds the part short or missing,
    /// and leaves the target as it was).
    async fn finish(
        &self,
        ups: &[Upload],
        batch: &[Sending],
        mut alone: Option<Alone>,
    ) -> Result<Vec<Result<Finish>>> {
        let mut results: Vec<Option<Result<Finish>>> = batch.iter().map(|_| None).collect();
        let mut todo: Vec<usize> = (0..batch.len()).collect();
        // A second pass finishes the files a garbled neighbour held back.
        for pass in 0..2 {
            let calls: Vec<sn::Finishing> = todo
                .iter()
                .map(|&k| {
                    let job = &batch[k];
                    let up = &ups[job.i];
                    let pieces = if pass == 0 { job.pieces() } else { 0 };
                    sn::Finishing::new(&job.part, &up.path, &up.data, up.base, pieces, job.slice)
                })
                .collect();
            debug!("finishing {} upload(s) in one program", calls.len());
            let run = match alone.take() {
                Some((ticket, put)) => {
                    let code = sn::finish_uploads(&calls);
                    let (put, out) = tokio::join!(put, self.helper_after(code, ticket));
                    put?;
                    out
                }
                None => self.finish_listed(&calls).await,
            };
            let out = match run {
                Err(Error::LinkLost(why)) => {
                    debug!("link lost while finishing uploads ({why}); checking");
                    self.finished_unseen(ups, &todo, batch, &calls).await?
                }
                // It may have stopped half-way: what moved is found out as
                // after a lost link.
                Err(e @ Error::LowMemory { .. }) => {
                    debug!("{e} while finishing uploads; checking");
                    self.finished_unseen(ups, &todo, batch, &calls).await?
                }
                r => r?,
            };
            let lines: Vec<&str> = sn::lines(&out).collect();
            debug!("finishing answered {lines:?}");
            if lines.len() < calls.len() {
                return Err(sn::unexpected(&out, &ups[batch[todo[0]].i].path));
            }
            let mut held = Vec::new();
            for ((&k, call), line) in todo.iter().zip(&calls).zip(lines) {
                let path = &ups[batch[k].i].path;
                results[k] = Some(match Answer::parse(line) {
                    Answer::Crc(crc) if crc == call.crc && pass == 0 => {
                        held.push(k);
                        continue;
                    }
                    Answer::Crc(_) => Ok(Finish::Garbled),
                    a => parse_finish(a, path, &out),
                });
            }
            if held.is_empty() {
                break;
            }
            todo = held;
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or(Err(Error::Bug(crate::error::Bug::Missing {
                    what: "a finish",
                })))
            })
            .collect())
    }

    /// `_wrm.go` of the calls, in one program. Not a list sent as a file:
    /// the test board dies now and then when a link is cut while such a
    /// list is read and removed, and no finishing is worth that risk.
    async fn finish_listed(&self, calls: &[sn::Finishing]) -> Result<Vec<u8>> {
        self.helper(sn::finish_uploads(calls)).await
    }

    /// Puts a list file and runs `helper` on it. The helper removes the
    /// list; if the link breaks first, the next cleanup does.
    pub(super) async fn run_listed(
        &self,
        list: &str,
        records: Vec<u8>,
        helper: &str,
    ) -> Result<Vec<u8>> {
        self.stale_mark(list, true);
        let n = records.len();
        // The call goes right behind the list's last byte, not a round
        // trip later: the helper checks the list's size before it reads
        // it, and a PUT that failed sends no call.
        let (ticket, put) = self.session.put_begin(
            None,
            list.as_bytes().to_vec(),
            Bytes::from(records),
            watch::channel(0).0,
        )?;
        let code = sn::helper_call(helper, &[list, &n.to_string()]);
        let (put, out) = tokio::join!(put, self.helper_after(code, ticket));
        put?;
        let out = out?;
        self.stale_mark(list, false);
        Ok(out)
    }

    /// A list file's name: a part file's, so that listings hide it and
    /// cleanups remove it.
    pub(super) fn list_name(&self) -> String {
        let n = self.next_part.fetch_add(1, Ordering::SeqCst) & 0xff_ffff;
        format!("/{PART_PREFIX}{n:06x}")
    }

    /// The answers of a finishing program whose answer the link lost. A
    /// part file still there did not move: it is finished now. One gone
    /// moved, or was removed as short: the board's digest of the target
    /// (or of the conflict name) tells which; a file that is in neither
    /// place is sent again.
    pub(super) async fn finished_unseen(
        &self,
        ups: &[Upload],
        todo: &[usize],
        batch: &[Sending],
        calls: &[sn::Finishing],
    ) -> Result<Vec<u8>> {
        let mut lines = vec![String::new(); calls.len()];
        let (mut left, mut gone) = (Vec::new(), Vec::new());
        for (k, call) in calls.iter().enumerate() {
            match self.stat(&call.part).await? {
                Some(_) => left.push(k),
                None => gone.push(k),
            }
        }
        if !left.is_empty() {
            let again: Vec<_> = left.iter().map(|&k| calls[k].clone()).collect();
            let out = self.helper(sn::finish_uploads(&again)).await?;
            for (&k, l) in left.iter().zip(sn::lines(&out)) {
                lines[k] = l.to_string();
            }
        }
        let holds = |k: usize| &ups[batch[todo[k]].i];
        let query: Vec<(&str, u64)> = gone
            .iter()
            .map(|&k| (holds(k).path.as_str(), calls[k].size))
            .collect();
        let (algo, got) = if gone.is_empty() {
            (String::new(), Vec::new())
        } else {
            self.digests(&query).await?
        };
        let mut beside = Vec::new();
        for (&k, d) in gone.iter().zip(got) {
            let up = holds(k);
            if d.is_some_and(|d| d == digest(&algo, &up.data))
                && let Some(st) = self.stat(&up.path).await?
            {
                lines[k] = format!("K {}", st.mtime);
                continue;
            }
            beside.push(k);
        }
        let names: Vec<String> = beside
            .iter()
            .map(|&k| conflict_name(&holds(k).path))
            .collect();
        let query: Vec<(&str, u64)> = beside
            .iter()
            .zip(&names)
            .map(|(&k, n)| (n.as_str(), calls[k].size))
            .collect();
        let got = if beside.is_empty() {
            Vec::new()
        } else {
            self.digests(&query).await?.1
        };
        for ((&k, name), d) in beside.iter().zip(&names).zip(got) {
            let up = holds(k);
            let (c, t) = (self.stat(name).await?, self.stat(&up.path).await?);
            lines[k] = match (d.is_some_and(|d| d == digest(&algo, &up.data)), c) {
                (true, Some(c)) => {
                    let (size, mtime) = t.map_or((0, 0), |t| (t.size, t.mtime));
                    format!("C {} {size} {mtime}", c.mtime)
                }
                // Neither: removed as short, or never renamed. Again.
                _ => format!("Z 0 {}", u64::MAX),
            };
        }
        let mut out = lines.join("\n").into_bytes();
        out.push(b'\n');
        Ok(out)
    }

    pub(super) fn stale_mark(&self, part: &str, left: bool) {
        let mut s = self.stale.lock().unwrap_or_else(|e| e.into_inner());
        if left {
            s.insert(part.to_string());
        } else {
            s.remove(part);
        }
    }

    /// Part files of failed uploads, as found in listings, to remove.
    pub fn forget_parts(&self, parts: impl IntoIterator<Item = String>) {
        let mut s = self.stale.lock().unwrap_or_else(|e| e.into_inner());
        s.extend(parts);
    }

    /// Removes part files that failed uploads left (one program); failures
    /// leave them for the next time, and say why.
    pub async fn cleanup(&self) -> Result<()> {
        let parts: Vec<String> = {
            let s = self.stale.lock().unwrap_or_else(|e| e.into_inner());
            s.iter().cloned().collect()
        };
        if parts.is_empty() {
            return Ok(());
        }
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        match self.snippet(sn::remove_all(&refs)).await {
            Ok(out) => match sn::expect_ok(&out, "part files") {
                Ok(()) => {
                    debug!("removed {} stale part file(s)", parts.len());
                    let mut s = self.stale.lock().unwrap_or_else(|e| e.into_inner());
                    for p in &parts {
                        s.remove(p);
                    }
                    Ok(())
                }
                Err(e) => {
                    debug!("stale part files kept for later ({e})");
                    Err(e)
                }
            },
            Err(e) => {
                debug!("stale part files kept for later ({e})");
                Err(e)
            }
        }
    }

    async fn put_pasted(&self, path: &str, data: &[u8]) -> Result<()> {
        // The program holds its piece several times over while compiled.
        let piece = (self.ram().buffer * 4).clamp(512, PASTE_PIECE);
        let mut pieces = data.chunks(piece).peekable();
        if pieces.peek().is_none() {
            return sn::expect_ok(
                &self.snippet(sn::write_base64(path, true, &[])).await?,
                path,
            );
        }
        for (i, piece) in pieces.enumerate() {
            sn::expect_ok(
                &self.snippet(sn::write_base64(path, i == 0, piece)).await?,
                path,
            )?;
        }
        Ok(())
    }
}

/// The slice size for a link of `rate` bytes/s (0: not known yet).
fn slice_for(rate: f64, typing: bool) -> usize {
    if rate <= 0.0 {
        return if typing { SLICE_MIN } else { SLICE_FIRST };
    }
    let time = if typing {
        SLICE_TIME_TYPING
    } else {
        SLICE_TIME
    };
    let bytes = (rate * time) as usize + FLASH_BLOCK / 2;
    (bytes / FLASH_BLOCK * FLASH_BLOCK).clamp(SLICE_MIN, SLICE_MAX)
}

/// One upload to send: which file, to which part name, in slices of
/// what size, and (mending) only which slices.
#[derive(Debug, Clone)]
pub(super) struct Sending {
    pub(super) i: usize,
    pub(super) part: String,
    pub(super) len: usize,
    pub(super) slice: usize,
    only: Option<Vec<usize>>,
    /// Sends of the file that gained nothing: the first, each whole one
    /// again, and each mend that left as many slices short as it sent (a
    /// byte lost now and then must not cost a whole file, but a board
    /// that keeps losing one must end).
    pub(super) tries: u32,
    /// Already on the board, whole, in `part` (inflated there): only
    /// to be finished.
    ready: bool,
}

impl Sending {
    pub(super) fn whole(i: usize, part: String, len: usize, slice: usize) -> Sending {
        Sending {
            i,
            part,
            len,
            slice,
            only: None,
            tries: 1,
            ready: false,
        }
    }

    /// The same upload again, but only the slices `short`.
    pub(super) fn mend(&self, short: Vec<usize>) -> Sending {
        let sent = self.only.as_ref().map_or(self.pieces() + 1, Vec::len);
        Sending {
            tries: self.tries + u32::from(short.len() >= sent),
            only: Some(short),
            ..self.clone()
        }
    }

    /// The whole file again, to a new part file.
    pub(super) fn again(&self, part: String, slice: usize) -> Sending {
        Sending {
            tries: self.tries + 1,
            ..Sending::whole(self.i, part, self.len, slice)
        }
    }

    /// A file the board holds whole in `part` already: one slice.
    pub(super) fn ready(i: usize, part: String, len: usize) -> Sending {
        Sending {
            ready: true,
            ..Sending::whole(i, part, len, len.max(1))
        }
    }

    /// How many slices follow the first.
    pub(super) fn pieces(&self) -> usize {
        self.len.div_ceil(self.slice.max(1)).saturating_sub(1)
    }
}

/// An upload's one PUT under way ([`Board::begin_alone`]): its ticket, for
/// a program to follow it, and its end.
pub(super) type Alone = (
    crate::session::PutTicket,
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>,
);

enum Pending {
    /// One PUT per slice.
    Put(Vec<tokio::task::JoinHandle<Result<()>>>, outgoing::Going),
    Paste(usize, String),
    /// On the board already.
    Ready,
}

/// The names a file's slices go to: the part file, then `PART.1`...
pub(super) fn piece_names(part: &str, len: usize, slice: usize) -> Vec<String> {
    let n = len.div_ceil(slice.max(1)).max(1);
    (0..n)
        .map(|k| {
            if k == 0 {
                part.to_string()
            } else {
                format!("{part}.{k}")
            }
        })
        .collect()
}

enum Finish {
    Done(Written),
    /// The board's bytes are not those sent (same size, other CRC).
    Garbled,
    /// These slices came up short (lost bytes, or a full flash): nothing
    /// was joined.
    Slices {
        short: Vec<usize>,
        free: u64,
    },
    /// The part file was short: lost bytes, or a full flash.
    Short {
        kept: u64,
        free: u64,
    },
}

fn parse_finish(line: Answer, path: &str, out: &[u8]) -> Result<Finish> {
    Ok(match line {
        Answer::Done(mtime) => Finish::Done(Written::Target(mtime)),
        Answer::Beside {
            mtime,
            size,
            target_mtime,
        } => Finish::Done(Written::Beside {
            name: conflict_name(path),
            mtime,
            target: (size, target_mtime),
        }),
        Answer::Slices { free, short } => Finish::Slices { short, free },
        Answer::Short { kept, free } => Finish::Short { kept, free },
        Answer::Os { errno, .. } => return Err(sn::errno_error(errno, path)),
        _ => return Err(sn::unexpected(out, path)),
    })
}

/// [`digest`] of data that arrives in pieces and is not kept: both
/// algorithms run, since which one the board has is known only when it is
/// asked, after the data.
#[derive(Default, Clone)]
pub struct Digests {
    crc: crc32fast::Hasher,
    sha: sha2::Sha256,
}

impl Digests {
    pub fn update(&mut self, data: &[u8]) {
        use sha2::Digest;
        self.crc.update(data);
        self.sha.update(data);
    }

    pub fn finish(&self, algorithm: &str) -> String {
        use sha2::Digest;
        if algorithm == "sha256" {
            self.sha
                .clone()
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        } else {
            format!("{:08x}", self.crc.clone().finalize())
        }
    }
}

/// The digest the board gives for `data` ([`Board::digests`]).
pub fn digest(algorithm: &str, data: &[u8]) -> String {
    use sha2::Digest;
    if algorithm == "sha256" {
        sha2::Sha256::digest(data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    } else {
        format!("{:08x}", crc32fast::hash(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_are_whole_flash_blocks() {
        for rate in [1_000.0, 20_000.0, 20_837.0, 46_700.0, 1e6, 1e9] {
            for typing in [false, true] {
                let s = slice_for(rate, typing);
                assert_eq!(s % FLASH_BLOCK, 0, "{rate} B/s, typing {typing}: {s}");
            }
        }
        assert_eq!(slice_for(20_837.0, false), 8192);
    }

    #[test]
    fn slices_are_joined_in_the_room_a_flash_has_beside_the_file() {
        // 344 KB free for 320 KB: 12 KB slices leave room to join them.
        assert_eq!(join_room(344 * 1024, 320_000), Some(12 * 1024));
        // Room for no slice worth sending.
        assert_eq!(join_room(327_000, 320_000), None);
        assert_eq!(join_room(330_000, 320_000), Some(4096));
        assert_eq!(join_room(100, 320_000), None);
    }
}
