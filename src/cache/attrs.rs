//! Modes and times the user set, kept on local disk per board: the board
//! cannot store them, and without them `rsync -a` would copy everything
//! again on every run and after every remount.
//!
//! Each line is keyed by the board's own size and mtime of the file, so a
//! file that someone else changed on the board loses what was set for it.

use super::tree::{Ino, ROOT, Tree};
use crate::board::EntryKind;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::warn;

#[derive(Debug, Clone, PartialEq)]
struct Saved {
    kind: EntryKind,
    size: u64,
    board_mtime: i64,
    mode: Option<u32>,
    mtime: Option<SystemTime>,
}

/// Where a board's attributes live: `$XDG_STATE_HOME/webrepl-mount/` (or
/// `~/.local/state/webrepl-mount/`), one file per board address.
pub fn state_file(board: &str) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    let key: String = board
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Some(base.join("webrepl-mount").join(format!("{key}.attrs")))
}

/// Applies what was saved to a freshly loaded tree.
pub fn apply(file: &PathBuf, tree: &mut Tree) {
    let Ok(text) = std::fs::read_to_string(file) else {
        return;
    };
    let saved: HashMap<String, Saved> = text.lines().filter_map(parse).collect();
    for ino in tree.descendants(ROOT) {
        let path = tree.path(ino);
        let Some(s) = saved.get(&path) else { continue };
        let Some(n) = tree.get_mut(ino) else { continue };
        let same = n.kind == s.kind
            && (n.kind == EntryKind::Dir || (n.size == s.size && n.board_mtime == s.board_mtime));
        if same {
            n.mode = s.mode;
            n.mtime = s.mtime;
        }
    }
}

/// Writes what the tree knows, atomically.
pub fn save(file: &PathBuf, tree: &Tree) {
    let mut out = String::new();
    for ino in tree.descendants(ROOT) {
        if let Some(line) = line_for(tree, ino) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    let write = || -> std::io::Result<()> {
        let dir = file
            .parent()
            .ok_or_else(|| std::io::Error::other("no directory"))?;
        crate::private::dir(dir).map_err(std::io::Error::other)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(out.as_bytes())?;
        tmp.persist(file).map_err(|e| e.error)?;
        Ok(())
    };
    if let Err(e) = write() {
        warn!("cannot save modes and times to {}: {e}", file.display());
    }
}

fn line_for(tree: &Tree, ino: Ino) -> Option<String> {
    let n = tree.get(ino)?;
    if !n.on_board || n.local_only || (n.mode.is_none() && n.mtime.is_none()) {
        return None;
    }
    let mode = n.mode.map_or("-".to_string(), |m| format!("{m:o}"));
    let mtime = n
        .mtime
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or("-".to_string(), |d| {
            format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
        });
    let kind = if n.kind == EntryKind::Dir { 'd' } else { 'f' };
    let hex: String = tree.path(ino).bytes().map(|b| format!("{b:02x}")).collect();
    Some(format!(
        "{hex} {kind} {} {} {mode} {mtime}",
        n.size, n.board_mtime
    ))
}

fn parse(line: &str) -> Option<(String, Saved)> {
    let f: Vec<&str> = line.split(' ').collect();
    let [hex, kind, size, board_mtime, mode, mtime] = f.as_slice() else {
        return None;
    };
    let path = crate::board::snippets::unhex(hex)?;
    let mtime = match *mtime {
        "-" => None,
        t => {
            let (s, ns) = t.split_once('.')?;
            Some(UNIX_EPOCH + Duration::new(s.parse().ok()?, ns.parse().ok()?))
        }
    };
    Some((
        path,
        Saved {
            kind: if *kind == "d" {
                EntryKind::Dir
            } else {
                EntryKind::File
            },
            size: size.parse().ok()?,
            board_mtime: board_mtime.parse().ok()?,
            mode: if *mode == "-" {
                None
            } else {
                Some(u32::from_str_radix(mode, 8).ok()?)
            },
            mtime,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::Entry;

    fn tree(size: u64, mtime: i64) -> Tree {
        let mut t = Tree::default();
        t.load(
            ROOT,
            vec![
                Entry {
                    path: "/d".into(),
                    kind: EntryKind::Dir,
                    size: 0,
                    mtime: 1,
                },
                Entry {
                    path: "/d/f y".into(),
                    kind: EntryKind::File,
                    size,
                    mtime,
                },
            ],
            &|_| false,
        );
        t
    }

    #[test]
    fn saved_modes_and_times_come_back_only_for_unchanged_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("b.attrs");
        let mut t = tree(10, 100);
        let when = UNIX_EPOCH + Duration::new(1_700_000_000, 123);
        for p in ["/d", "/d/f y"] {
            let i = t.resolve(p).unwrap();
            let n = t.get_mut(i).unwrap();
            n.mode = Some(0o640);
            n.mtime = Some(when);
        }
        save(&file, &t);
        let mut same = tree(10, 100);
        apply(&file, &mut same);
        let f = same.get(same.resolve("/d/f y").unwrap()).unwrap();
        assert_eq!((f.mode, f.mtime), (Some(0o640), Some(when)));
        let mut changed = tree(10, 101);
        apply(&file, &mut changed);
        let f = changed.get(changed.resolve("/d/f y").unwrap()).unwrap();
        assert_eq!((f.mode, f.mtime), (None, None));
        let d = changed.get(changed.resolve("/d").unwrap()).unwrap();
        assert_eq!(d.mode, Some(0o640), "directories are matched by kind");
    }
}
