//! Uploads: atomic, verified, and careful of the board's own changes.
//!
//! The data goes to a part file of its own in the target's directory (so
//! concurrent uploads to one directory never collide), one program then
//! checks its size (firmware loses PUT bytes and hides write errors), checks
//! that the target is still what the edit began from, and renames the part
//! onto it. A cut link never leaves a truncated target; a part file left by
//! one is removed by the next upload.

use super::*;
use bytes::Bytes;
use std::sync::atomic::Ordering;
use tokio::sync::watch;

/// Bytes of file per raw-paste upload program (about 5.5 KB of code).
const PASTE_PIECE: usize = 4096;
/// Uploads the board kept short (lost bytes) are sent again this often.
const PUT_TRIES: usize = 3;

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
        let (progress, _) = watch::channel(0);
        self.put_progress(path, Bytes::copy_from_slice(data), parents, base, progress)
            .await
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
        if parents {
            self.mkdirs(parent(path)).await?;
        }
        let part = self.part_for(path);
        for attempt in 1..=PUT_TRIES {
            let sent = if self.binary_ok(&part) {
                self.session
                    .put_progress(part.as_bytes().to_vec(), data.clone(), progress.clone())
                    .await
            } else {
                let r = self.put_pasted(&part, &data).await;
                let _ = progress.send(data.len() as u64);
                r
            };
            let finished = match sent {
                Ok(()) => self.finish(&part, path, data.len() as u64, base).await,
                Err(e) => Err(e),
            };
            let finished = match finished {
                Ok(f) => f,
                Err(e) => {
                    // A part file may be left: removed by the next upload.
                    self.stale_mark(&part, true);
                    return Err(e);
                }
            };
            match finished {
                Finish::Done(w) => {
                    // Leftovers of failed uploads go after ours, which
                    // never waits for them.
                    self.cleanup().await;
                    return Ok(w);
                }
                Finish::Short { kept, free } => {
                    if free < data.len() as u64 {
                        return Err(Error::Os {
                            errno: libc::ENOSPC,
                            what: path.to_string(),
                        });
                    }
                    warn!(
                        "{path}: board kept {kept} of {} bytes (attempt {attempt}); sending again",
                        data.len()
                    );
                }
            }
        }
        Err(Error::Os {
            errno: libc::EIO,
            what: format!("{path}: the board kept losing bytes"),
        })
    }

    /// The finishing program. If the link breaks under it, whether it ran is
    /// found out on the next link: a part file still there did not move.
    async fn finish(&self, part: &str, path: &str, size: u64, base: Base) -> Result<Finish> {
        let code = sn::finish_upload(part, path, size, base_arg(base));
        let out = match self.helper(code).await {
            Err(Error::LinkLost(why)) => {
                debug!("{path}: link lost while finishing ({why}); checking");
                match self.stat(part).await? {
                    Some(_) => {
                        self.helper(sn::finish_upload(part, path, size, base_arg(base)))
                            .await?
                    }
                    None => {
                        let st = self
                            .stat(path)
                            .await?
                            .ok_or_else(|| Error::NotFound(path.to_string()))?;
                        return Ok(Finish::Done(Written::Target(st.mtime)));
                    }
                }
            }
            r => r?,
        };
        let Some(line) = sn::lines(&out).next() else {
            return Err(sn::unexpected(&out, path));
        };
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
            _ => return Err(sn::os_error(line, path).unwrap_or_else(|| sn::unexpected(&out, path))),
        })
    }

    fn stale_mark(&self, part: &str, left: bool) {
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

enum Finish {
    Done(Written),
    /// The part file was short: lost bytes, or a full flash.
    Short {
        kept: u64,
        free: u64,
    },
}

/// The check `_wrm_fin` makes, as Python.
fn base_arg(base: Base) -> String {
    match base {
        Base::Any => "None".into(),
        Base::Absent => "()".into(),
        Base::Was(size, mtime) => format!("({size},{mtime})"),
    }
}
