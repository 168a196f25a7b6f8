//! Which board this is, whatever its address: every ESP in access-point
//! mode is 192.168.4.1, so a journal kept per address could send one
//! board's unsent files to another. The mount writes a random id to a
//! marker file on the board at its first mount (hidden in the mount), and
//! a journal names the board it was written for.

use super::journal::Journal;
use crate::board::{Base, Board};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tracing::{info, warn};

/// Free blocks the flash must have for the marker to be written (one for
/// it, the rest left for the person's files).
const ROOM_FOR_ID: u64 = 4;

/// The marker file, at the board's root.
pub const MARKER: &str = ".webrepl-mount-id";

/// Where the page's Run puts an editor's text to run it (one file, written
/// again by each Run): ours, so never shown.
pub const RUN_SCRATCH: &str = "/.webrepl-mount-run.py";

/// Names the mount never shows: uploads in progress, the marker, and our
/// helpers', share's and Run's files.
pub fn hidden(name: &str) -> bool {
    crate::board::is_part(name)
        || name == MARKER
        || name == RUN_SCRATCH.trim_start_matches('/')
        || name == helpers_name()
        || name == crate::board::snippets::SHARE_FILE.trim_start_matches('/')
        || name == crate::board::snippets::PROBE_FILE.trim_start_matches('/')
}

/// The name of the helpers' file (at the board's root).
pub fn helpers_name() -> &'static str {
    crate::board::snippets::HELPERS_FILE.trim_start_matches('/')
}

/// The board's id: read from the marker, else made and written there.
/// None if the board could not tell or take it (the journal then follows
/// the address, as before); with it, what the mount's user is told.
pub async fn board_id(board: &Board) -> (Option<String>, Option<String>) {
    match marked(board).await {
        Ok(id) => (Some(id), None),
        Err(why) => (None, why),
    }
}

/// The id, or why there is none: a sentence for the mount's user when a
/// full flash kept the marker off (the rest is in the log alone).
async fn marked(board: &Board) -> std::result::Result<String, Option<String>> {
    let path = format!("/{MARKER}");
    match read_marker(board).await {
        Ok(b) => {
            if let Some(id) = parse(&b) {
                return Ok(id);
            }
            warn!("{path} on the board holds no id; writing a new one");
        }
        Err(Error::NotFound(_)) => {}
        Err(e) => {
            warn!("cannot read the board's id ({e}); the journal follows its address");
            return Err(None);
        }
    }
    // The marker takes a block of the flash: never one of the last few,
    // which the person's next save needs more.
    match board.statvfs("/").await {
        Ok(v) if v.bavail < ROOM_FOR_ID => {
            let msg = format!(
                "the board's flash is nearly full ({} B free): no id written to {path}; its unsent changes follow its address until a mount can write one",
                v.bavail * v.frsize.max(1)
            );
            warn!("{msg}");
            return Err(Some(msg));
        }
        Ok(_) => {}
        Err(e) => {
            warn!("cannot tell the board's free space ({e}); the journal follows its address");
            return Err(None);
        }
    }
    let id = format!("{:016x}", rand::random::<u64>());
    match board
        .put(&path, format!("{id}\n").as_bytes(), false, Base::Any)
        .await
    {
        Ok(_) => {
            info!("this board's id is now {id} (in {path})");
            Ok(id)
        }
        Err(e) => {
            warn!("cannot write the board's id ({e}); the journal follows its address");
            Err(None)
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
/// this one after all. Returns what a journal set aside says (for a
/// daemon's user, whose stderr is the log).
pub fn claim(dir: &Path, id: Option<&str>, adopt: bool) -> Vec<String> {
    let mut said = Vec::new();
    let j = Journal::new(dir.to_path_buf());
    let theirs = j.board_id().filter(|_| !j.entries().is_empty() && !adopt);
    let Some(id) = id else {
        // A board whose id cannot be read may be any board: what was
        // written for a known one waits for it.
        if let Some(theirs) = theirs {
            said.extend(set_aside(
                dir,
                &j,
                &theirs,
                "the board at this address cannot tell its id",
            ));
        }
        return said;
    };
    if let Some(theirs) = theirs.filter(|t| t != id) {
        said.extend(set_aside(
            dir,
            &j,
            &theirs,
            &format!("the board at this address is board {id}"),
        ));
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
    said
}

/// Moves board `theirs`'s journal aside, saying why it is not sent here.
fn set_aside(dir: &Path, j: &Journal, theirs: &str, why: &str) -> Option<String> {
    let aside = parked(dir, theirs);
    let n = j.entries().len();
    if std::fs::rename(dir, &aside).is_err() {
        warn!("cannot move aside the journal of board {theirs}");
        return None;
    }
    let msg = format!(
        "{n} unsent change(s) in the journal belong to board {theirs}, but {why}: not sending them here. They are kept in {} and sent when board {theirs} is mounted again (--adopt-journal sends them to this board instead; removing that directory discards them)",
        aside.display()
    );
    eprintln!("webrepl-mount: {msg}");
    warn!("{msg}");
    Some(msg)
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

/// What the marker on a link's board says about the mount's board.
#[derive(Debug)]
pub enum Verdict {
    /// The mount's board: its changes may go.
    Same,
    /// Another board, or one that cannot tell: why.
    Other(String),
    /// Not known yet (the link went, the REPL is held): nothing goes now,
    /// the next try reads the marker again.
    Unsure(Error),
}

/// The marker is at most this long: a bigger file is no id of ours.
const MARKER_MAX: u64 = 128;

/// Decides from what reading the marker gave (sans-I/O): `mounted` is
/// the id the mount (and its journal) belongs to.
pub fn verdict(mounted: &str, read: Result<Vec<u8>>) -> Verdict {
    match read {
        Ok(b) => match parse(&b) {
            Some(id) if id == mounted => Verdict::Same,
            Some(id) => Verdict::Other(format!("the board at this address is board {id}")),
            None => Verdict::Other("the board at this address holds no id of ours".into()),
        },
        Err(
            e @ (Error::LinkLost(_)
            | Error::Timeout { .. }
            | Error::Busy { .. }
            | Error::Running { .. }
            | Error::Unreachable { .. }
            | Error::LowMemory { .. }),
        ) => Verdict::Unsure(e),
        Err(Error::NotFound(_)) => {
            Verdict::Other("the board at this address has no id (a board never mounted)".into())
        }
        Err(e) => Verdict::Other(format!(
            "the board at this address cannot tell its id ({e})"
        )),
    }
}

fn parse(b: &[u8]) -> Option<String> {
    let id = std::str::from_utf8(b).ok()?.trim();
    (!id.is_empty() && id.len() <= 64 && id.bytes().all(|c| c.is_ascii_hexdigit()))
        .then(|| id.to_string())
}

/// Watches that every link goes to the board the mount was made for: a
/// reconnect at the same address may reach another board (every ESP in
/// access-point mode is 192.168.4.1), which must never get this board's
/// changes.
pub struct Guard {
    /// The mount's board; None: it could not tell (changes follow the
    /// address, as without ids).
    id: Option<String>,
    /// 1 + the session's link generation last found to be the mount's
    /// board; 0: none yet.
    checked: AtomicU64,
    /// Why changes are held, while they are.
    held: Mutex<Option<String>>,
}

impl Guard {
    /// `seen`: the link generation the id was read on.
    pub fn new(id: Option<String>, seen: Option<u64>) -> Guard {
        Guard {
            id,
            checked: AtomicU64::new(seen.map_or(0, |g| g + 1)),
            held: Mutex::new(None),
        }
    }

    /// Why the mount's changes are held, if they are.
    pub fn held(&self) -> Option<String> {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Ok if the board on the current link is the mount's: read once per
    /// link. Else nothing may be written to it: the error says why.
    pub async fn check(&self, board: &Board) -> Result<()> {
        let Some(id) = &self.id else {
            return Ok(());
        };
        let session = board.session();
        // A read that met a new link (or made one) is read again on it.
        for _ in 0..3 {
            let link = session.generation();
            if self.checked.load(Ordering::SeqCst) == link + 1 {
                return Ok(());
            }
            let read = read_marker(board).await;
            if session.generation() != link {
                continue;
            }
            return match verdict(id, read) {
                Verdict::Same => {
                    self.checked.store(link + 1, Ordering::SeqCst);
                    let was = self.held.lock().unwrap_or_else(|e| e.into_inner()).take();
                    if was.is_some() {
                        let msg = format!("board {id} is back: its held changes go now");
                        eprintln!("webrepl-mount: {msg}");
                        info!("{msg}");
                    }
                    Ok(())
                }
                Verdict::Unsure(e) => Err(e),
                Verdict::Other(why) => {
                    let msg = format!(
                        "held: {why}, not board {id} that this mount is for: none of its changes go to it; they stay in the journal until board {id} is back at this address"
                    );
                    let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
                    if held.as_deref() != Some(msg.as_str()) {
                        eprintln!("webrepl-mount: {msg}");
                        warn!("{msg}");
                        *held = Some(msg.clone());
                    }
                    Err(Error::Os {
                        errno: libc::EIO,
                        what: msg,
                    })
                }
            };
        }
        Err(Error::LinkLost(crate::error::Lost::Resync))
    }
}

/// The marker's bytes, read only if small enough to be an id.
async fn read_marker(board: &Board) -> Result<Vec<u8>> {
    let path = format!("/{MARKER}");
    let st = board
        .stat(&path)
        .await?
        .ok_or_else(|| Error::NotFound(path.clone()))?;
    if st.kind != crate::board::EntryKind::File {
        return Err(Error::Os {
            errno: libc::EISDIR,
            what: path,
        });
    }
    if st.size > MARKER_MAX {
        return Ok(Vec::new());
    }
    board.get_sized(&path, st).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_mounts_own_board_gets_its_changes() {
        let a = "00112233aabbccdd";
        assert!(matches!(
            verdict(a, Ok(format!("{a}\n").into_bytes())),
            Verdict::Same
        ));
        let other = verdict(a, Ok(b"ffeeddcc00112233\n".to_vec()));
        assert!(
            matches!(&other, Verdict::Other(w) if w.contains("board ffeeddcc00112233")),
            "{other:?}"
        );
        for junk in [&b""[..], b"not an id", b"\xff\xfe", &[b'a'; 65]] {
            assert!(matches!(verdict(a, Ok(junk.to_vec())), Verdict::Other(_)));
        }
        // A board without a marker, or whose marker cannot be read, may be
        // any board.
        assert!(matches!(
            verdict(a, Err(Error::NotFound("/m".into()))),
            Verdict::Other(_)
        ));
        let eisdir = Error::Os {
            errno: libc::EISDIR,
            what: "/m".into(),
        };
        assert!(matches!(verdict(a, Err(eisdir)), Verdict::Other(_)));
        // A link that went mid-read decides nothing.
        let lost = Error::LinkLost(crate::error::Lost::NotConnected);
        assert!(matches!(verdict(a, Err(lost)), Verdict::Unsure(_)));
    }
}
