//! Uploads: atomic, verified, careful of the board's own changes, and
//! pipelined when there are many.
//!
//! Each file goes to a part file of its own in the target's directory (so
//! concurrent uploads to one directory never collide). The part files of a
//! batch follow each other on the wire without waiting for replies; then one
//! program checks each part's size (firmware loses PUT bytes and hides write
//! errors), checks that its target is still what the edit began from, and
//! renames it onto the target. A cut link never leaves a truncated target:
//! every file of a batch is either old or new; a part file a failed upload
//! leaves is removed by the next upload.

use super::*;
use bytes::Bytes;
use std::sync::atomic::Ordering;
use tokio::sync::watch;

/// Bytes of file per raw-paste upload program (about 5.5 KB of code).
const PASTE_PIECE: usize = 4096;
/// Uploads the board kept short (lost bytes) are sent again this often.
const PUT_TRIES: usize = 3;
/// Files checked and renamed by one program.
const FINISH_BATCH: usize = 32;

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
}

impl Upload {
    pub fn new(path: &str, data: impl Into<Bytes>, base: Base) -> Upload {
        Upload {
            path: path.to_string(),
            data: data.into(),
            base,
            progress: None,
        }
    }
}

pub fn conflict_name(path: &str) -> String {
    format!("{path}.webrepl-mount-conflict")
}

impl Board {
    /// A part file name no other upload of this mount uses.
    fn part_for(&self, path: &str) -> String {
        let n = self.next_part.fetch_add(1, Ordering::SeqCst) & 0xff_ffff;
        join(parent(path), &format!("{PART_PREFIX}{n:06x}"))
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

    async fn put_one(&self, up: Upload, parents: bool) -> Result<Written> {
        self.put_many(vec![up], parents)
            .await?
            .pop()
            .unwrap_or_else(|| Err(Error::Invalid("an upload went missing".into())))
    }

    /// Several files at once, each atomic: the result of each, in order. An
    /// error of the whole batch (the link, the REPL) is the outer one.
    pub async fn put_many(&self, ups: Vec<Upload>, parents: bool) -> Result<Vec<Result<Written>>> {
        let mut results: Vec<Option<Result<Written>>> = (0..ups.len()).map(|_| None).collect();
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
                                *r = Some(Err(e.duplicate()));
                            }
                        }
                    }
                }
            }
        }
        let mut todo: Vec<usize> = (0..ups.len()).filter(|&i| results[i].is_none()).collect();
        for attempt in 1..=PUT_TRIES {
            let parts: Vec<String> = todo.iter().map(|&i| self.part_for(&ups[i].path)).collect();
            let sent = self.send_parts(&ups, &todo, &parts).await;
            let mut checking = Vec::new();
            for ((&i, part), r) in todo.iter().zip(&parts).zip(sent) {
                match r {
                    Ok(()) => checking.push((i, part.clone())),
                    Err(e) => {
                        // A part file may be left: removed by the next upload.
                        self.stale_mark(part, true);
                        results[i] = Some(Err(e));
                    }
                }
            }
            let mut again = Vec::new();
            for chunk in checking.chunks(FINISH_BATCH) {
                let finished = match self.finish(&ups, chunk).await {
                    Ok(f) => f,
                    Err(e) => {
                        for (i, part) in chunk {
                            self.stale_mark(part, true);
                            results[*i] = Some(Err(e.duplicate()));
                        }
                        continue;
                    }
                };
                for ((i, _), f) in chunk.iter().zip(finished) {
                    let up = &ups[*i];
                    results[*i] = Some(match f {
                        Ok(Finish::Done(w)) => Ok(w),
                        Ok(Finish::Short { free, .. }) if free < up.data.len() as u64 => {
                            Err(Error::Os {
                                errno: libc::ENOSPC,
                                what: up.path.clone(),
                            })
                        }
                        Ok(Finish::Short { kept, .. }) => {
                            warn!(
                                "{}: board kept {kept} of {} bytes (attempt {attempt}); sending again",
                                up.path,
                                up.data.len()
                            );
                            again.push(*i);
                            Err(Error::Os {
                                errno: libc::EIO,
                                what: format!("{}: the board kept losing bytes", up.path),
                            })
                        }
                        Err(e) => Err(e),
                    });
                }
            }
            if again.is_empty() {
                break;
            }
            todo = again;
        }
        // Leftovers of failed uploads go after ours, which never wait.
        self.cleanup().await;
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::Invalid("an upload went missing".into()))))
            .collect())
    }

    /// The data of each file into its part file. Binary PUTs are all handed
    /// to the session at once: it sends them back to back.
    async fn send_parts(
        &self,
        ups: &[Upload],
        todo: &[usize],
        parts: &[String],
    ) -> Vec<Result<()>> {
        let mut pending = Vec::new();
        for (&i, part) in todo.iter().zip(parts) {
            let up = &ups[i];
            if self.binary_ok(part) {
                let (session, part, data) = (self.session.clone(), part.clone(), up.data.clone());
                let progress = up.progress.clone().unwrap_or_else(|| watch::channel(0).0);
                pending.push(Pending::Put(tokio::spawn(async move {
                    session
                        .put_progress(part.as_bytes().to_vec(), data, progress)
                        .await
                })));
            } else {
                pending.push(Pending::Paste(i, part.clone()));
            }
        }
        let mut out = Vec::with_capacity(pending.len());
        for p in pending {
            out.push(match p {
                Pending::Put(h) => h
                    .await
                    .unwrap_or_else(|e| Err(Error::Invalid(format!("upload task: {e}")))),
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

    /// One program checks and renames a batch of part files. If the link
    /// breaks under it, whether it ran is found out on the next link: a
    /// part file still there did not move.
    async fn finish(
        &self,
        ups: &[Upload],
        batch: &[(usize, String)],
    ) -> Result<Vec<Result<Finish>>> {
        let calls: Vec<(String, String, u64, String)> = batch
            .iter()
            .map(|(i, part)| {
                let up = &ups[*i];
                (
                    part.clone(),
                    up.path.clone(),
                    up.data.len() as u64,
                    base_arg(up.base),
                )
            })
            .collect();
        debug!("finishing {} upload(s) in one program", calls.len());
        let out = match self.finish_listed(&calls).await {
            Err(Error::LinkLost(why)) => {
                debug!("link lost while finishing uploads ({why}); checking");
                self.finished_unseen(ups, batch, &calls).await?
            }
            r => r?,
        };
        let lines: Vec<&str> = sn::lines(&out).collect();
        if lines.len() < batch.len() {
            return Err(sn::unexpected(&out, &ups[batch[0].0].path));
        }
        Ok(batch
            .iter()
            .zip(lines)
            .map(|((i, _), line)| parse_finish(line, &ups[*i].path, &out))
            .collect())
    }

    /// `_wrm_fin` of the calls, in one program. Not a list sent as a file:
    /// the test board dies now and then when a link is cut while such a
    /// list is read and removed, and no finishing is worth that risk.
    async fn finish_listed(&self, calls: &[(String, String, u64, String)]) -> Result<Vec<u8>> {
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
        self.session.put(list.as_bytes().to_vec(), records).await?;
        let out = self
            .helper(format!("{helper}({},{n})\n", sn::lit(list)))
            .await?;
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
    async fn finished_unseen(
        &self,
        ups: &[Upload],
        batch: &[(usize, String)],
        calls: &[(String, String, u64, String)],
    ) -> Result<Vec<u8>> {
        let mut lines = vec![String::new(); calls.len()];
        let (mut left, mut gone) = (Vec::new(), Vec::new());
        for (k, (part, ..)) in calls.iter().enumerate() {
            match self.stat(part).await? {
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
        let holds = |k: usize| &ups[batch[k].0];
        let query: Vec<(&str, u64)> = gone
            .iter()
            .map(|&k| (holds(k).path.as_str(), calls[k].2))
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
            .map(|(&k, n)| (n.as_str(), calls[k].2))
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
    /// leave them for the next time.
    pub async fn cleanup(&self) {
        let parts: Vec<String> = {
            let s = self.stale.lock().unwrap_or_else(|e| e.into_inner());
            s.iter().cloned().collect()
        };
        if parts.is_empty() {
            return;
        }
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        match self.snippet(sn::remove_all(&refs)).await {
            Ok(out) if sn::expect_ok(&out, "part files").is_ok() => {
                debug!("removed {} stale part file(s)", parts.len());
                let mut s = self.stale.lock().unwrap_or_else(|e| e.into_inner());
                for p in &parts {
                    s.remove(p);
                }
            }
            Ok(_) | Err(_) => debug!("stale part files kept for later"),
        }
    }

    async fn put_pasted(&self, path: &str, data: &[u8]) -> Result<()> {
        let mut pieces = data.chunks(PASTE_PIECE).peekable();
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

enum Pending {
    Put(tokio::task::JoinHandle<Result<()>>),
    Paste(usize, String),
}

enum Finish {
    Done(Written),
    /// The part file was short: lost bytes, or a full flash.
    Short {
        kept: u64,
        free: u64,
    },
}

fn parse_finish(line: &str, path: &str, out: &[u8]) -> Result<Finish> {
    let f: Vec<&str> = line.split(' ').collect();
    Ok(match f.as_slice() {
        ["K", mtime] => Finish::Done(Written::Target(mtime.parse().unwrap_or(0))),
        ["C", mtime, size, tmtime] => Finish::Done(Written::Beside {
            name: conflict_name(path),
            mtime: mtime.parse().unwrap_or(0),
            target: (size.parse().unwrap_or(0), tmtime.parse().unwrap_or(0)),
        }),
        ["Z", kept, free] => Finish::Short {
            kept: kept.parse().unwrap_or(0),
            free: free.parse().unwrap_or(u64::MAX),
        },
        _ => return Err(sn::os_error(line, path).unwrap_or_else(|| sn::unexpected(out, path))),
    })
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

/// The check `_wrm_fin` makes, as Python.
fn base_arg(base: Base) -> String {
    match base {
        Base::Any => "None".into(),
        Base::Absent => "()".into(),
        Base::Was(size, mtime) => format!("({size},{mtime})"),
    }
}
