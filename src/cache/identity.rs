//! Which board this is, whatever its address: every ESP in access-point
//! mode is 192.168.4.1, so a journal kept per address could send one
//! board's unsent files to another. The mount writes a random id to a
//! marker file on the board at its first mount (hidden in the mount), and
//! a journal names the board it was written for.

use super::journal::Journal;
use crate::board::{Base, Board};
use crate::error::Error;
use std::path::{Path, PathBuf};
use tracing::{info, warn};

/// The marker file, at the board's root.
pub const MARKER: &str = ".webrepl-mount-id";

/// Names the mount never shows: uploads in progress, the marker, and our
/// helpers' and share's files.
pub fn hidden(name: &str) -> bool {
    crate::board::is_part(name)
        || name == MARKER
        || name == helpers_name()
        || name == crate::board::snippets::SHARE_FILE.trim_start_matches('/')
}

/// The name of the helpers' file (at the board's root).
pub fn helpers_name() -> &'static str {
    crate::board::snippets::HELPERS_FILE.trim_start_matches('/')
}

/// The board's id: read from the marker, else made and written there.
/// None if the board could not tell or take it (the journal then follows
/// the address, as before).
pub async fn board_id(board: &Board) -> Option<String> {
    let path = format!("/{MARKER}");
    match board.get(&path).await {
        Ok(b) => {
            let id = String::from_utf8_lossy(&b).trim().to_string();
            if !id.is_empty() && id.len() <= 64 && id.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Some(id);
            }
            warn!("{path} on the board holds no id; writing a new one");
        }
        Err(Error::NotFound(_)) => {}
        Err(e) => {
            warn!("cannot read the board's id ({e}); the journal follows its address");
            return None;
        }
    }
    let id = format!("{:016x}", rand::random::<u64>());
    match board
        .put(&path, format!("{id}\n").as_bytes(), false, Base::Any)
        .await
    {
        Ok(_) => {
            info!("this board's id is now {id} (in {path})");
            Some(id)
        }
        Err(e) => {
            warn!("cannot write the board's id ({e}); the journal follows its address");
            None
        }
    }
}

/// Where a journal for another board is kept aside.
fn parked(dir: &Path, id: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(format!("-{id}"));
    dir.with_file_name(name)
}

/// Makes `dir` this board's journal before anything is replayed: a
/// journal written for another board at this address is moved aside, with
/// word of it, and never sent here; this board's own, kept aside by an
/// earlier mount, comes back. `adopt`: send another board's journal to
/// this one after all.
pub fn claim(dir: &Path, id: Option<&str>, adopt: bool) {
    let j = Journal::new(dir.to_path_buf());
    let theirs = j.board_id().filter(|_| !j.entries().is_empty() && !adopt);
    let Some(id) = id else {
        // A board whose id cannot be read may be any board: what was
        // written for a known one waits for it.
        if let Some(theirs) = theirs {
            set_aside(
                dir,
                &j,
                &theirs,
                "the board at this address cannot tell its id",
            );
        }
        return;
    };
    if let Some(theirs) = theirs.filter(|t| t != id) {
        set_aside(
            dir,
            &j,
            &theirs,
            &format!("the board at this address is board {id}"),
        );
    }
    let mine = parked(dir, id);
    if mine.is_dir() && Journal::new(dir.to_path_buf()).entries().is_empty() {
        let _ = std::fs::remove_dir_all(dir);
        if std::fs::rename(&mine, dir).is_ok() {
            eprintln!("webrepl-mount: board {id} is back: its kept journal is sent now");
        }
    }
    if adopt {
        adopt_all(dir);
    }
    if let Err(e) = Journal::new(dir.to_path_buf()).set_board_id(id) {
        warn!("journal: cannot note the board's id: {e}");
    }
}

/// Moves board `theirs`'s journal aside, saying why it is not sent here.
fn set_aside(dir: &Path, j: &Journal, theirs: &str, why: &str) {
    let aside = parked(dir, theirs);
    let n = j.entries().len();
    if std::fs::rename(dir, &aside).is_err() {
        warn!("cannot move aside the journal of board {theirs}");
        return;
    }
    let msg = format!(
        "{n} unsent change(s) in the journal belong to board {theirs}, but {why}: not sending them here. They are kept in {} and sent when board {theirs} is mounted again (--adopt-journal sends them to this board instead; removing that directory discards them)",
        aside.display()
    );
    eprintln!("webrepl-mount: {msg}");
    warn!("{msg}");
}

/// --adopt-journal: every journal kept aside for this address joins this
/// board's.
fn adopt_all(dir: &Path) {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return;
    };
    let prefix = format!("{}-", name.to_string_lossy());
    let Ok(list) = std::fs::read_dir(parent) else {
        return;
    };
    let j = Journal::new(dir.to_path_buf());
    for d in list.flatten() {
        if !d.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        let other = Journal::new(d.path());
        for e in other.entries() {
            if j.write(&e.path, e.base, &e.ours, &e.data).is_ok() {
                eprintln!(
                    "webrepl-mount: adopting {} from {}",
                    e.path,
                    d.path().display()
                );
            }
        }
        let _ = std::fs::remove_dir_all(d.path());
    }
}
