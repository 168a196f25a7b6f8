//! The mount's view of a board: a snapshot of the tree, whole-file contents
//! with dirty tracking, and the operations a filesystem needs. Knows nothing
//! of FUSE.
//!
//! Every operation decides under the state's lock and releases it before it
//! talks to the board; it locks again to apply what the board said. So
//! whatever the snapshot and the cache can answer is answered at once,
//! whatever transfer runs meanwhile.

pub mod attrs;
mod batch;
pub mod contents;
mod files;
mod follow;
mod held;
pub mod identity;
pub mod journal;
mod loads;
mod names;
pub mod patterns;
mod replace;
mod snapshot;
pub mod tree;
mod verify;

use crate::board::{Base, Board, EntryKind, Listing, StatVfs, is_part};
use crate::error::{BadPath, Error, Reserved, Result};
use contents::Contents;
use identity::hidden;
pub use replace::Replaced;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::{info, warn};
pub use tree::{Ino, ROOT};
use tree::{Node, Tree};

#[derive(Debug, Clone)]
pub struct Options {
    /// Bytes of clean file contents kept (dirty ones are never dropped).
    pub cache_bytes: usize,
    /// How long a directory listing is trusted before the board is asked again.
    pub dir_ttl: Duration,
    /// Name patterns that live only in the mount.
    pub local_only: Vec<String>,
    /// Where modes and times set by the user are kept.
    pub state_file: Option<PathBuf>,
    pub uid: u32,
    pub gid: u32,
    /// Upload this long after the last write instead of on close.
    pub writeback: Option<Duration>,
    /// Where changed files wait, durably, until they reach the board.
    pub journal: Option<PathBuf>,
    /// How long close() waits for its file's upload before it returns with
    /// the file in the journal (the upload goes on in the background).
    pub close_wait: Duration,
    /// Send the journal kept for another board at this address to this one.
    pub adopt_journal: bool,
}

/// What `stat` shows of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    pub kind: EntryKind,
    pub size: u64,
    pub perm: u16,
    pub mtime: SystemTime,
    pub uid: u32,
    pub gid: u32,
}

/// What one flush could not upload, with why.
pub type Unflushed = Vec<(String, Error)>;

/// What the kernel's caches must forget: the board changed it.
#[derive(Debug)]
pub enum Notice {
    /// A file's size, times or contents: the file, its directory and name
    /// (the kernel learns a new size only by looking the name up again).
    Changed(Ino, Ino, String),
    /// A name gone from a directory.
    Gone(Ino, String),
    /// Answered once the notices before it are applied.
    Barrier(tokio::sync::oneshot::Sender<()>),
}

/// The board's space before it could be asked.
const UNKNOWN_SPACE: StatVfs = StatVfs {
    bsize: 4096,
    frsize: 4096,
    blocks: 0,
    bfree: 0,
    bavail: 0,
    namemax: 255,
};

/// Pauses between retries of a file that did not reach the board.
const FIRST_RETRY: Duration = Duration::from_secs(2);
const LAST_RETRY: Duration = Duration::from_secs(60);
/// The longest pause while the board is busy or away: the file goes soon
/// after it is back.
const SOON_RETRY: Duration = Duration::from_secs(1);

pub struct Core {
    board: Board,
    opts: Options,
    /// Seconds from the Unix epoch to the board's.
    epoch: i64,
    /// Shown for what the board keeps no time for.
    started: SystemTime,
    state: Arc<Mutex<State>>,
    /// One snapshot check at a time; the others wait for its answer.
    checking: tokio::sync::Mutex<()>,
    notices: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Notice>>,
    /// Wakes the batcher; set once it runs (closes are queued only then).
    batch_wake: tokio::sync::Notify,
    batcher_on: std::sync::atomic::AtomicBool,
    /// Counts renames and removals that began: an upload waiting for a
    /// lost link gives way to them ([`Core::quiesce`]).
    moves: tokio::sync::watch::Sender<u64>,
    /// Each new link's board is checked before anything is written to it.
    guard: identity::Guard,
    /// Journals of other boards set aside when mounting: what was said.
    aside: Vec<String>,
    /// Why no id was written to the board, when its user should know.
    unmarked: Option<String>,
}

/// A board file under a local-only name: its size and mtime, and its bytes
/// if the mount held them.
type Shadow = ((u64, i64), Option<bytes::Bytes>);

/// A close waiting for its file's upload: the edit it closed at, and where
/// the outcome goes.
type Waiter = (u64, tokio::sync::oneshot::Sender<Result<()>>);

struct State {
    tree: Tree,
    contents: Contents,
    statvfs: Option<(Instant, StatVfs)>,
    next_fh: u64,
    /// Handles opened for writing: only their close uploads.
    writers: std::collections::HashSet<u64>,
    /// Where each handle's last read ended: a read from there goes on in
    /// order (a big file is then read whole, not by ranges).
    reading: HashMap<u64, usize>,
    /// The session's connection and board-change counts the snapshot was
    /// last checked at.
    generation: u64,
    changes: u64,
    /// A check that could not run (a person's program has the REPL): when.
    check_failed: Option<Instant>,
    /// The same, per open handle: what that descriptor read (an editor's).
    seen_by: HashMap<u64, (Ino, (u64, i64))>,
    /// Bumped by every change of ours to names on the board: a walk that
    /// ran meanwhile may be older than the snapshot.
    namespace: u64,
    /// Board files renamed to a local-only name (vim's `f` -> `f~`): the
    /// board still has them, with this size and mtime, until replaced.
    /// and the board's copy of them if the mount held it.
    shadowed: HashMap<(Ino, String), Shadow>,
    /// Conflicts met, for `status`: what was said, and the board path of
    /// the copy kept beside.
    conflicts: Vec<(String, String)>,
    /// Closed files journaled and waiting for the batcher to upload them.
    batch: Vec<Ino>,
    /// What the cache keeps per file beside the tree and the contents.
    file: PerFile,
}

/// What the cache keeps per file beside the tree and the contents: one
/// record per inode, so that forgetting a file cannot miss a part of it. A
/// record that holds nothing is dropped ([`PerFile::edit`] is the only way
/// to change one).
#[derive(Default)]
struct PerFile(HashMap<Ino, FileState>);

/// One file's record (see [`PerFile`]); all defaults is no record.
#[derive(Default)]
struct FileState {
    /// Being read from the board, shared by all its readers.
    load: Option<loads::Load>,
    /// Flushed while empty: uploaded at its last close instead.
    deferred: bool,
    /// When the dirty file was last written (for --writeback-delay).
    written: Option<Instant>,
    /// Bumped by every change to the contents: an upload that started at
    /// an older count leaves the file dirty.
    edits: u64,
    /// What the board had when a dirty file's edit began.
    base: Option<Base>,
    /// Those bytes, when the mount held them: the save sends only the
    /// change (see held.rs).
    was: Option<bytes::Bytes>,
    /// The board's version (size, mtime) of what was last handed to a
    /// reader or sent by us: an edit that replaces the file is based on
    /// what its writer saw, not on a change the mount noticed since.
    seen: Option<(u64, i64)>,
    /// An upload in flight: a receiver that ends with the upload.
    uploading: Option<tokio::sync::watch::Receiver<()>>,
    /// Being renamed or removed: no upload starts at or below it until
    /// that ends (it would land under a name that is going).
    moving: Vec<tokio::sync::watch::Receiver<()>>,
    /// Failed to upload: when to try again, and the pause.
    retry: Option<(Instant, Duration)>,
    /// Versions we sent whose outcome is unknown (the answer was lost with
    /// the link): the board may have one of them in place of the base,
    /// which is then no conflict for a later version.
    sent: Vec<bytes::Bytes>,
    /// Closes waiting for the file's upload (each for its own version).
    waiters: Vec<Waiter>,
    /// Why the dirty file is not on the board yet, for `status`.
    unsent: Option<String>,
    /// When the file, open for reading, was last compared with the board's.
    followed: Option<Instant>,
}

/// A name the tool keeps for itself on the board.
fn reserved(name: &str, by: Reserved) -> Error {
    Error::Path(BadPath::Reserved {
        name: name.to_string(),
        by,
    })
}

/// The record of a file the cache keeps nothing for.
const NOTHING: &FileState = &FileState {
    load: None,
    deferred: false,
    written: None,
    edits: 0,
    base: None,
    was: None,
    seen: None,
    uploading: None,
    moving: Vec::new(),
    retry: None,
    sent: Vec::new(),
    waiters: Vec::new(),
    unsent: None,
    followed: None,
};

impl FileState {
    /// Names every field: one added must be decided here.
    fn is_empty(&self) -> bool {
        let FileState {
            load,
            deferred,
            written,
            edits,
            base,
            was,
            seen,
            uploading,
            moving,
            retry,
            sent,
            waiters,
            unsent,
            followed,
        } = self;
        load.is_none()
            && !deferred
            && written.is_none()
            && *edits == 0
            && base.is_none()
            && was.is_none()
            && seen.is_none()
            && uploading.is_none()
            && moving.is_empty()
            && retry.is_none()
            && sent.is_empty()
            && waiters.is_empty()
            && unsent.is_none()
            && followed.is_none()
    }
}

impl PerFile {
    /// What is kept for `ino` (an empty record if nothing).
    fn of(&self, ino: Ino) -> &FileState {
        self.0.get(&ino).unwrap_or(NOTHING)
    }

    /// Changes the record of `ino`; one left empty goes.
    fn edit<R>(&mut self, ino: Ino, f: impl FnOnce(&mut FileState) -> R) -> R {
        let record = self.0.entry(ino).or_default();
        let r = f(record);
        if record.is_empty() {
            self.0.remove(&ino);
        }
        r
    }

    /// The load of `ino` under way, to feed or finish.
    fn load_mut(&mut self, ino: Ino) -> Option<&mut loads::Load> {
        self.0.get_mut(&ino)?.load.as_mut()
    }

    /// Every file's record.
    fn iter(&self) -> impl Iterator<Item = (Ino, &FileState)> {
        self.0.iter().map(|(i, f)| (*i, f))
    }

    /// Changes every record; those left empty go.
    fn edit_all(&mut self, mut f: impl FnMut(Ino, &mut FileState)) {
        self.0.retain(|i, record| {
            f(*i, record);
            !record.is_empty()
        });
    }

    /// Drops what is kept for a file that is gone. What is in flight stays:
    /// each ends with its own operation, which holds the mark and answers
    /// its waiters.
    fn forget(&mut self, ino: Ino) {
        self.edit(ino, |f| {
            *f = FileState {
                uploading: f.uploading.take(),
                moving: std::mem::take(&mut f.moving),
                waiters: std::mem::take(&mut f.waiters),
                ..FileState::default()
            }
        });
    }
}

impl Core {
    /// Reads the whole tree in one program and builds the snapshot. What an
    /// earlier mount left in the journal is sent first.
    pub async fn load(board: Board, opts: Options) -> Result<Core> {
        // A program running on the board is reported at once (the mount
        // asks whether to stop it), not waited for.
        let first = board.impatient();
        let epoch = first.epoch_offset().await?;
        let (conflicts, guard, aside, unmarked) = match &opts.journal {
            Some(dir) => {
                let link = board.session().generation();
                let (id, unmarked) = identity::board_id(&first).await;
                let seen = (board.session().generation() == link).then_some(link);
                let aside = identity::claim(dir, id.as_deref(), opts.adopt_journal);
                let conflicts = journal::recover(&board, &journal::Journal::new(dir.clone())).await;
                (conflicts, identity::Guard::new(id, seen), aside, unmarked)
            }
            None => (
                Vec::new(),
                identity::Guard::new(None, None),
                Vec::new(),
                None,
            ),
        };
        let started = Instant::now();
        let Listing { entries, space, .. } = first.tree_and_space("/").await?;
        info!(
            "read the board's tree: {} entries in {:.2?}",
            entries.len(),
            started.elapsed()
        );
        // Part files left by uploads that never finished: nothing of ours
        // is in flight yet, so all of them are stale.
        board.forget_parts(
            entries
                .iter()
                .filter(|e| e.path.rsplit('/').next().is_some_and(is_part))
                .map(|e| e.path.clone()),
        );
        let _ = first.cleanup().await;
        let mut tree = Tree::default();
        tree.load(ROOT, entries, &hidden);
        if let Some(f) = &opts.state_file {
            attrs::apply(f, &mut tree);
        }
        let session = board.session();
        let state = State {
            tree,
            contents: Contents::new(opts.cache_bytes),
            statvfs: space.map(|v| (Instant::now(), v)),
            next_fh: 1,
            writers: Default::default(),
            reading: Default::default(),
            generation: session.generation(),
            changes: session.changes(),
            check_failed: None,
            seen_by: HashMap::new(),
            namespace: 0,
            shadowed: HashMap::new(),
            conflicts,
            batch: Vec::new(),
            file: PerFile::default(),
        };
        Ok(Core {
            board,
            opts,
            epoch,
            started: SystemTime::now(),
            state: Arc::new(Mutex::new(state)),
            checking: tokio::sync::Mutex::new(()),
            notices: std::sync::OnceLock::new(),
            batch_wake: tokio::sync::Notify::new(),
            moves: tokio::sync::watch::Sender::new(0),
            batcher_on: std::sync::atomic::AtomicBool::new(false),
            guard,
            aside,
            unmarked,
        })
    }

    pub fn board(&self) -> &Board {
        &self.board
    }

    /// Where the cache says what the kernel must forget (once).
    pub fn notices(&self) -> tokio::sync::mpsc::UnboundedReceiver<Notice> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let _ = self.notices.set(tx);
        rx
    }

    /// Tells the kernel a file changed on the board.
    fn changed(&self, st: &State, ino: Ino) {
        if let Some(n) = st.tree.get(ino) {
            self.tell(Notice::Changed(ino, n.parent, n.name.clone()));
        }
    }

    fn tell(&self, n: Notice) {
        if let Some(tx) = self.notices.get() {
            let _ = tx.send(n);
        }
    }

    /// Waits until the kernel has applied what it was told. Only where no
    /// directory lock is held on our behalf (close, fsync): the kernel takes
    /// the directory's lock to forget a name.
    async fn settled(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tell(Notice::Barrier(tx));
        if self.notices.get().is_some() {
            let _ = rx.await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_local_only(&self, name: &str) -> bool {
        self.opts
            .local_only
            .iter()
            .any(|p| patterns::matches(p, name))
    }

    fn attr(&self, st: &State, ino: Ino) -> Result<Attr> {
        let n = node(st, ino)?;
        let default = if n.kind == EntryKind::Dir {
            0o755
        } else {
            0o644
        };
        // A board that keeps no time (or a directory never stat'ed) shows
        // the mount's start, never 1970.
        let board_time = if n.board_mtime == 0 {
            self.started
        } else {
            UNIX_EPOCH + Duration::from_secs((n.board_mtime + self.epoch).max(0) as u64)
        };
        Ok(Attr {
            ino,
            kind: n.kind,
            size: if n.kind == EntryKind::File { n.size } else { 0 },
            perm: (n.mode.unwrap_or(default) & 0o7777) as u16,
            mtime: n.mtime.unwrap_or(board_time),
            uid: self.opts.uid,
            gid: self.opts.gid,
        })
    }

    fn journal(&self) -> Option<journal::Journal> {
        self.opts.journal.clone().map(journal::Journal::new)
    }

    fn save_attrs(&self, st: &State) {
        if let Some(f) = &self.opts.state_file {
            attrs::save(f, &st.tree);
        }
    }

    fn check_name<'a>(&self, name: &'a std::ffi::OsStr) -> Result<&'a str> {
        let name = name.to_str().ok_or(Error::Path(BadPath::NotUtf8))?;
        if name.len() > 255 {
            return Err(Error::Os {
                errno: libc::ENAMETOOLONG,
                what: name.into(),
            });
        }
        if is_part(name) {
            return Err(reserved(name, Reserved::Upload));
        }
        if name == identity::MARKER {
            return Err(reserved(name, Reserved::Id));
        }
        if name == identity::helpers_name() {
            return Err(reserved(name, Reserved::Helpers));
        }
        Ok(name)
    }

    pub async fn lookup(&self, parent: Ino, name: &std::ffi::OsStr) -> Result<Attr> {
        let name = utf8(name)?;
        self.fresh(parent).await;
        let st = self.lock();
        let ino = st
            .tree
            .lookup(parent, name)
            .ok_or_else(|| Error::NotFound(name.to_string()))?;
        self.attr(&st, ino)
    }

    pub async fn getattr(&self, ino: Ino) -> Result<Attr> {
        self.validate().await;
        self.follow(ino).await;
        let st = self.lock();
        self.attr(&st, ino)
    }

    /// Entries of a directory: name, inode, kind.
    pub async fn readdir(&self, ino: Ino) -> Result<Vec<(String, Ino, EntryKind)>> {
        {
            let st = self.lock();
            if node(&st, ino)?.kind != EntryKind::Dir {
                return Err(Error::Os {
                    errno: libc::ENOTDIR,
                    what: st.tree.path(ino),
                });
            }
        }
        self.fresh(ino).await;
        let st = self.lock();
        let n = node(&st, ino)?;
        Ok(n.children
            .iter()
            .filter_map(|(name, &i)| Some((name.clone(), i, st.tree.get(i)?.kind)))
            .collect())
    }

    pub async fn statfs(&self) -> Result<StatVfs> {
        let last = self.lock().statvfs;
        // Figures a few seconds old stand while the link does (`find` asks
        // at every directory); with the link down, `df` hears why.
        if let Some((t, v)) = last
            && t.elapsed() < Duration::from_secs(5)
            && *self.board.session().link_state().borrow()
        {
            return Ok(v);
        }
        let v = match self.board.impatient().statvfs("/").await {
            Ok(v) => v,
            // A person's program holds the REPL: the last figures (none
            // known: nothing free), not a wait for its end (`tail -f`
            // asks before it follows a file).
            Err(Error::Running { .. }) => {
                return Ok(last.map_or(UNKNOWN_SPACE, |(_, v)| v));
            }
            Err(e) => return Err(e),
        };
        self.lock().statvfs = Some((Instant::now(), v));
        Ok(v)
    }

    /// Paths of files whose changes have not reached the board.
    pub fn dirty_paths(&self) -> Vec<String> {
        let st = self.lock();
        let mut v: Vec<String> = st
            .contents
            .dirty_inos()
            .into_iter()
            .filter(|&i| st.tree.get(i).is_some_and(|n| !n.local_only))
            .map(|i| st.tree.path(i))
            .collect();
        v.sort();
        v
    }

    /// Bytes of clean and dirty contents held.
    pub fn cache_use(&self) -> (usize, usize) {
        let st = self.lock();
        (st.contents.clean_bytes(), st.contents.dirty_bytes())
    }

    /// Files not on the board yet, each with why its last try failed.
    pub fn unsent(&self) -> Vec<(String, String)> {
        let st = self.lock();
        let mut v: Vec<_> = st
            .file
            .iter()
            .filter_map(|(i, f)| Some((i, f.unsent.as_ref()?)))
            .filter(|(i, _)| st.contents.is_dirty(*i))
            .filter_map(|(i, why)| Some((st.tree.get(i).map(|_| st.tree.path(i))?, why.clone())))
            .collect();
        v.sort();
        v
    }

    /// Why nothing is written to the board on the link (it is not the
    /// mount's board), if so.
    pub fn held(&self) -> Option<String> {
        self.guard.held()
    }

    /// What was said of journals set aside for other boards at mount.
    pub fn set_aside(&self) -> &[String] {
        &self.aside
    }

    /// Why the board got no id at mount (its flash nearly full), if so.
    pub fn unmarked(&self) -> Option<&str> {
        self.unmarked.as_deref()
    }

    /// Conflicts met so far (the board's copy changed under an edit) whose
    /// copy beside is still there: one deleted or renamed has been dealt
    /// with.
    pub fn conflicts(&self) -> Vec<String> {
        let st = self.lock();
        st.conflicts
            .iter()
            .filter(|(_, beside)| st.tree.resolve(beside).is_some())
            .map(|(msg, _)| msg.clone())
            .collect()
    }

    /// Logs what is still dirty; for shutdown.
    pub fn warn_unflushed(failed: &Unflushed) {
        for (path, e) in failed {
            warn!("not flushed: {path}: {e}");
        }
    }
}

fn node(st: &State, ino: Ino) -> Result<&Node> {
    st.tree
        .get(ino)
        .ok_or_else(|| Error::NotFound(format!("inode {ino}")))
}

/// A name from the kernel: the board has only UTF-8 names, so any other
/// cannot exist there.
fn utf8(name: &std::ffi::OsStr) -> Result<&str> {
    name.to_str()
        .ok_or_else(|| Error::NotFound("a non-UTF-8 name".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record left empty goes; forgetting a file keeps only what is in
    /// flight, whose operation ends it.
    #[test]
    fn a_files_record_goes_when_empty_and_forgetting_keeps_only_what_is_in_flight() {
        let mut files = PerFile::default();
        files.edit(7, |f| {
            f.edits += 1;
            f.base = Some(Base::Absent);
            f.was = Some(bytes::Bytes::from_static(b"x"));
            f.sent.push(bytes::Bytes::from_static(b"y"));
            f.unsent = Some("away".into());
            f.deferred = true;
        });
        files.forget(7);
        assert!(files.0.is_empty(), "a forgotten file left its record");

        let (tx, rx) = tokio::sync::watch::channel(());
        files.edit(7, |f| {
            f.edits += 1;
            f.uploading = Some(rx);
        });
        files.forget(7);
        assert!(
            files.of(7).uploading.is_some(),
            "an upload in flight lost its mark"
        );
        assert_eq!(files.of(7).edits, 0);
        // Its operation ends: the record goes with it.
        files.edit(7, |f| f.uploading = None);
        assert!(files.0.is_empty());
        drop(tx);

        // Reading a file the cache keeps nothing for makes no record.
        assert_eq!(files.of(9).edits, 0);
        files.edit(9, |f| f.followed.take());
        assert!(files.0.is_empty());
    }
}
