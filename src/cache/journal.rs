//! Changed files not yet on the board, kept on local disk (fsynced) so
//! that a killed daemon or a lost laptop battery loses no edit: the next
//! mount of the same board sends them first.
//!
//! Each entry records what the board had when the file was last seen there
//! (size and mtime), so a file changed on the board meanwhile is not
//! silently overwritten; and the versions of ours that may have replaced
//! it (an upload in flight or whose answer was lost when the daemon died):
//! a version we put there ourselves is never a conflict for a later one.

use crate::board::{Base, Board, Written, digest};
use std::io::Write;
use std::path::PathBuf;
use tracing::{info, warn};

#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub path: String,
    /// The board's size and mtime when the edit began; None: a new file.
    pub base: Option<(u64, i64)>,
    /// Versions of ours the board may have instead of the base.
    pub ours: Vec<Version>,
    pub data: Vec<u8>,
}

/// A version of a file we sent, as the board's digests tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub size: u64,
    pub crc32: String,
    pub sha256: String,
}

impl Version {
    pub fn of(data: &[u8]) -> Version {
        Version {
            size: data.len() as u64,
            crc32: digest("crc32", data),
            sha256: digest("sha256", data),
        }
    }

    fn is(&self, algorithm: &str, d: &str) -> bool {
        if algorithm == "sha256" {
            self.sha256 == d
        } else {
            self.crc32 == d
        }
    }
}

fn key(path: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in path.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

impl Journal {
    pub fn new(dir: PathBuf) -> Journal {
        Journal { dir }
    }

    /// Records `data` for `path`, durably, before returning.
    pub fn write(
        &self,
        path: &str,
        base: Option<(u64, i64)>,
        ours: &[Version],
        data: &[u8],
    ) -> std::io::Result<()> {
        // Unsent file contents: readable by us alone.
        crate::private::dir(&self.dir).map_err(std::io::Error::other)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        let hex: String = path.bytes().map(|b| format!("{b:02x}")).collect();
        let mut base = base.map_or("-".to_string(), |(s, m)| format!("{s} {m}"));
        for v in ours {
            base.push_str(&format!(" ours={}:{}:{}", v.size, v.crc32, v.sha256));
        }
        tmp.write_all(format!("{hex}\n{base}\n").as_bytes())?;
        tmp.write_all(data)?;
        tmp.as_file().sync_all()?;
        tmp.persist(self.dir.join(key(path))).map_err(|e| e.error)?;
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// The board this journal was written for (see [`super::identity`]).
    pub fn board_id(&self) -> Option<String> {
        let id = std::fs::read_to_string(self.dir.join("board-id")).ok()?;
        Some(id.trim().to_string()).filter(|i| !i.is_empty())
    }

    pub fn set_board_id(&self, id: &str) -> std::io::Result<()> {
        crate::private::dir(&self.dir).map_err(std::io::Error::other)?;
        // As the journal's entries: 0600 (tempfile's mode), put in place whole.
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        tmp.write_all(format!("{id}\n").as_bytes())?;
        tmp.persist(self.dir.join("board-id"))
            .map(|_| ())
            .map_err(|e| e.error)
    }

    pub fn remove(&self, path: &str) {
        let _ = std::fs::remove_file(self.dir.join(key(path)));
    }

    pub fn rename(&self, from: &str, to: &str) {
        if let Some(e) = self.read(&self.dir.join(key(from)))
            && self.write(to, e.base, &e.ours, &e.data).is_ok()
        {
            self.remove(from);
        }
    }

    fn read(&self, file: &std::path::Path) -> Option<Entry> {
        let raw = std::fs::read(file).ok()?;
        let nl1 = raw.iter().position(|&b| b == b'\n')?;
        let nl2 = nl1 + 1 + raw[nl1 + 1..].iter().position(|&b| b == b'\n')?;
        let path = crate::board::snippets::unhex(std::str::from_utf8(&raw[..nl1]).ok()?)?;
        let line = std::str::from_utf8(&raw[nl1 + 1..nl2]).ok()?;
        let (mut base, mut ours, mut words) = (None, Vec::new(), line.split(' '));
        match words.next()? {
            "-" => {}
            s => base = Some((s.parse().ok()?, words.next()?.parse().ok()?)),
        }
        for w in words {
            let mut f = w.strip_prefix("ours=")?.split(':');
            let (size, crc32, sha256) = (f.next()?, f.next()?, f.next()?);
            ours.push(Version {
                size: size.parse().ok()?,
                crc32: crc32.to_string(),
                sha256: sha256.to_string(),
            });
        }
        Some(Entry {
            path,
            base,
            ours,
            data: raw[nl2 + 1..].to_vec(),
        })
    }

    pub fn entries(&self) -> Vec<Entry> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok())
            .filter(|e| e.file_name().len() == 16)
            .filter_map(|e| self.read(&e.path()))
            .collect()
    }
}

/// Sends what a previous mount left in the journal, before the tree is
/// read, saying what it sends. A file the board changed meanwhile is kept:
/// the journaled copy goes beside it, under a name that says what it is.
/// Returns the conflicts met, and where each kept the local version.
pub(super) async fn recover(board: &Board, journal: &Journal) -> Vec<(String, String)> {
    let entries = journal.entries();
    let mut conflicts = Vec::new();
    if entries.is_empty() {
        return conflicts;
    }
    let bytes: usize = entries.iter().map(|e| e.data.len()).sum();
    eprintln!(
        "webrepl-mount: sending {} change(s) ({} KB) left by an earlier mount that did not finish",
        entries.len(),
        bytes.div_ceil(1000)
    );
    let started = std::time::Instant::now();
    let mut sent = 0;
    let mut left = bytes;
    // What the board has of each, against our versions: one program.
    let candidates: Vec<Vec<Version>> = entries
        .iter()
        .map(|e| {
            let mut v = e.ours.clone();
            v.push(Version::of(&e.data));
            v
        })
        .collect();
    let found = ours_on_board(
        board,
        &entries
            .iter()
            .zip(&candidates)
            .map(|(e, c)| (e.path.as_str(), c.as_slice()))
            .collect::<Vec<_>>(),
    )
    .await;
    for (i, (e, found)) in entries.into_iter().zip(found).enumerate() {
        if i == 1 && left > 0 {
            // The first file tells the link's pace: say how long the rest takes.
            let rate = (bytes - left) as f64 / started.elapsed().as_secs_f64().max(0.001);
            eprintln!(
                "webrepl-mount:   about {:.0} s more at {:.1} KB/s",
                (left as f64 / rate).ceil(),
                rate / 1000.0
            );
        }
        left -= e.data.len();
        let mut base = e.base.map_or(Base::Absent, |(s, m)| Base::Was(s, m));
        match found {
            Some(Found { last: true, .. }) => {
                // It landed before the daemon died; only the answer was lost.
                eprintln!(
                    "webrepl-mount:   {} (already on the board)",
                    crate::board::shown(&e.path)
                );
                journal.remove(&e.path);
                sent += 1;
                continue;
            }
            Some(Found { now, .. }) => base = Base::Was(now.0, now.1),
            None => {}
        }
        match board.put(&e.path, &e.data, true, base).await {
            Ok(w) => {
                if let Written::Beside { name: beside, .. } = w {
                    let msg = format!(
                        "{} changed on the board since it was edited here; the local version is saved as {}",
                        crate::board::shown(&e.path),
                        crate::board::shown(&beside)
                    );
                    eprintln!("webrepl-mount: {msg}");
                    warn!("{msg}");
                    conflicts.push((msg, beside));
                } else {
                    eprintln!(
                        "webrepl-mount:   {} ({} B)",
                        crate::board::shown(&e.path),
                        e.data.len()
                    );
                }
                journal.remove(&e.path);
                sent += 1;
            }
            Err(err) => warn!(
                "journal: cannot send {}: {err}; kept for the next mount",
                e.path
            ),
        }
    }
    if sent > 0 {
        eprintln!(
            "webrepl-mount: sent {sent} change(s) left by an earlier mount in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        info!("recovered {sent} journaled file(s)");
    }
    conflicts
}

/// A file on the board that is one of our versions: which, and its size
/// and mtime there.
#[derive(Debug, Clone, Copy)]
pub(super) struct Found {
    /// The last of the versions given (the one about to be sent).
    pub last: bool,
    pub now: (u64, i64),
}

/// For each file, whether the board has one of our versions of it (a
/// version we put there ourselves is never a conflict for a later one of
/// ours). One digest program for all; what cannot be told is None (the
/// upload's own check against its base then decides).
pub(super) async fn ours_on_board(
    board: &Board,
    files: &[(&str, &[Version])],
) -> Vec<Option<Found>> {
    let mut query: Vec<(&str, u64)> = Vec::new();
    let mut whose = Vec::new();
    for (k, (path, versions)) in files.iter().enumerate() {
        let mut sizes: Vec<u64> = versions.iter().map(|v| v.size).collect();
        sizes.sort_unstable();
        sizes.dedup();
        for size in sizes {
            query.push((path, size));
            whose.push(k);
        }
    }
    let mut out = vec![None; files.len()];
    if query.is_empty() {
        return out;
    }
    let (algorithm, got) = match board.digests(&query).await {
        Ok(d) => d,
        Err(e) => {
            warn!("cannot check the board's copies against ours: {e}");
            return out;
        }
    };
    for ((k, (path, size)), d) in whose.into_iter().zip(&query).zip(got) {
        let Some(d) = d else { continue };
        let versions = files[k].1;
        let Some(i) = versions
            .iter()
            .rposition(|v| v.size == *size && v.is(&algorithm, &d))
        else {
            continue;
        };
        if let Ok(Some(st)) = board.stat(path).await {
            info!("{path}: the board has a version we sent; ours follows it");
            out[k] = Some(Found {
                last: i + 1 == versions.len(),
                now: (st.size, st.mtime),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_and_move() {
        let d = tempfile::tempdir().unwrap();
        let j = Journal::new(d.path().join("j"));
        let v = Version::of(b"old");
        j.write("/a b\n.py", Some((3, 99)), &[], b"new").unwrap();
        j.write("/n.py", None, std::slice::from_ref(&v), b"")
            .unwrap();
        j.rename("/n.py", "/m.py");
        let mut e = j.entries();
        e.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(
            e[0],
            Entry {
                path: "/a b\n.py".into(),
                base: Some((3, 99)),
                ours: Vec::new(),
                data: b"new".to_vec()
            }
        );
        assert_eq!((e[1].path.as_str(), e[1].base), ("/m.py", None));
        assert_eq!(e[1].ours, vec![v]);
        j.remove("/a b\n.py");
        assert_eq!(j.entries().len(), 1);
    }
}
