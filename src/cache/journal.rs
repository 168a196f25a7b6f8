//! Changed files not yet on the board, kept on local disk (fsynced) so
//! that a killed daemon or a lost laptop battery loses no edit: the next
//! mount of the same board sends them first.
//!
//! Each entry records what the board had when the file was last seen there
//! (size and mtime), so a file changed on the board meanwhile is not
//! silently overwritten.

use crate::board::{Base, Board, Written};
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
    pub data: Vec<u8>,
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
    pub fn write(&self, path: &str, base: Option<(u64, i64)>, data: &[u8]) -> std::io::Result<()> {
        // Unsent file contents: readable by us alone.
        crate::private::dir(&self.dir).map_err(std::io::Error::other)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        let hex: String = path.bytes().map(|b| format!("{b:02x}")).collect();
        let base = base.map_or("-".to_string(), |(s, m)| format!("{s} {m}"));
        tmp.write_all(format!("{hex}\n{base}\n").as_bytes())?;
        tmp.write_all(data)?;
        tmp.as_file().sync_all()?;
        tmp.persist(self.dir.join(key(path))).map_err(|e| e.error)?;
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    pub fn remove(&self, path: &str) {
        let _ = std::fs::remove_file(self.dir.join(key(path)));
    }

    pub fn rename(&self, from: &str, to: &str) {
        if let Some(e) = self.read(&self.dir.join(key(from)))
            && self.write(to, e.base, &e.data).is_ok()
        {
            self.remove(from);
        }
    }

    fn read(&self, file: &std::path::Path) -> Option<Entry> {
        let raw = std::fs::read(file).ok()?;
        let nl1 = raw.iter().position(|&b| b == b'\n')?;
        let nl2 = nl1 + 1 + raw[nl1 + 1..].iter().position(|&b| b == b'\n')?;
        let path = crate::board::snippets::unhex(std::str::from_utf8(&raw[..nl1]).ok()?)?;
        let base = std::str::from_utf8(&raw[nl1 + 1..nl2]).ok()?;
        let base = match base.split_once(' ') {
            Some((s, m)) => Some((s.parse().ok()?, m.parse().ok()?)),
            None => None,
        };
        Some(Entry {
            path,
            base,
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
/// Returns the conflicts met.
pub(super) async fn recover(board: &Board, journal: &Journal) -> Vec<String> {
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
    for (i, e) in entries.into_iter().enumerate() {
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
        let base = e.base.map_or(Base::Absent, |(s, m)| Base::Was(s, m));
        match board.put(&e.path, &e.data, true, base).await {
            Ok(w) => {
                if let Written::Beside { name: beside, .. } = w {
                    let msg = format!(
                        "{} changed on the board since it was edited here; the local version is saved as {beside}",
                        e.path
                    );
                    eprintln!("webrepl-mount: {msg}");
                    warn!("{msg}");
                    conflicts.push(msg);
                } else {
                    eprintln!("webrepl-mount:   {} ({} B)", e.path, e.data.len());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_and_move() {
        let d = tempfile::tempdir().unwrap();
        let j = Journal::new(d.path().join("j"));
        j.write("/a b\n.py", Some((3, 99)), b"new").unwrap();
        j.write("/n.py", None, b"").unwrap();
        j.rename("/n.py", "/m.py");
        let mut e = j.entries();
        e.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(
            e[0],
            Entry {
                path: "/a b\n.py".into(),
                base: Some((3, 99)),
                data: b"new".to_vec()
            }
        );
        assert_eq!((e[1].path.as_str(), e[1].base), ("/m.py", None));
        j.remove("/a b\n.py");
        assert_eq!(j.entries().len(), 1);
    }
}
