//! The mount's view of a board: a snapshot of the tree, whole-file contents
//! with dirty tracking, and the operations a filesystem needs, reaching the
//! board only when the snapshot cannot answer. Knows nothing of FUSE.

pub mod attrs;
pub mod contents;
pub mod journal;
mod names;
pub mod patterns;
pub mod tree;

use crate::board::{Board, Kind, PART_NAME, Stat, StatVfs};
use crate::error::{Error, Result};
use contents::Contents;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::{debug, info, warn};
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
}

/// What `stat` shows of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    pub kind: Kind,
    pub size: u64,
    pub perm: u16,
    pub mtime: SystemTime,
    pub uid: u32,
    pub gid: u32,
}

/// What one `flush_all` could not upload.
pub type Unflushed = Vec<(String, Error)>;

pub struct Core {
    board: Board,
    rt: tokio::runtime::Handle,
    opts: Options,
    /// Seconds from the Unix epoch to the board's.
    epoch: i64,
    state: Mutex<State>,
}

struct State {
    tree: Tree,
    contents: Contents,
    statvfs: Option<(Instant, StatVfs)>,
    next_fh: u64,
    /// The session's connection count the snapshot was last checked at.
    generation: u64,
    /// When each dirty file was last written (for --writeback-delay).
    written: std::collections::HashMap<Ino, Instant>,
    /// What the board had (size, mtime) when a dirty file's edit began;
    /// None for a file that is new.
    bases: std::collections::HashMap<Ino, Option<(u64, i64)>>,
}

impl Core {
    /// Reads the whole tree in one program and builds the snapshot.
    pub async fn load(board: Board, opts: Options) -> Result<Core> {
        let epoch = board.epoch_offset().await?;
        if let Some(dir) = &opts.journal {
            journal::recover(&board, &journal::Journal::new(dir.clone())).await;
        }
        let started = Instant::now();
        let entries = board.list("/", true).await?;
        info!(
            "read the board's tree: {} entries in {:.2?}",
            entries.len(),
            started.elapsed()
        );
        let mut tree = Tree::default();
        tree.load(ROOT, entries, &|n| n == PART_NAME);
        if let Some(f) = &opts.state_file {
            attrs::apply(f, &mut tree);
        }
        let contents = Contents::new(opts.cache_bytes);
        let board_generation = board.session().generation();
        let rt = tokio::runtime::Handle::current();
        Ok(Core {
            board,
            rt,
            opts,
            epoch,
            state: Mutex::new(State {
                tree,
                contents,
                statvfs: None,
                next_fh: 1,
                generation: board_generation,
                written: Default::default(),
                bases: Default::default(),
            }),
        })
    }

    pub fn board(&self) -> &Board {
        &self.board
    }

    /// The state, with every listing marked stale if the session has had to
    /// connect again since: the board may have changed (or reset) meanwhile.
    fn lock(&self) -> MutexGuard<'_, State> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let generation = self.board.session().generation();
        if generation != st.generation {
            st.generation = generation;
            let mut all = st.tree.descendants(ROOT);
            all.push(ROOT);
            for ino in all {
                if let Some(n) = st.tree.get_mut(ino) {
                    n.listed = None;
                }
            }
        }
        st
    }

    /// Runs a board operation from a filesystem thread.
    fn block<T>(&self, f: impl Future<Output = Result<T>>) -> Result<T> {
        self.rt.block_on(f)
    }

    fn is_local_only(&self, name: &str) -> bool {
        self.opts
            .local_only
            .iter()
            .any(|p| patterns::matches(p, name))
    }

    fn attr(&self, st: &State, ino: Ino) -> Result<Attr> {
        let n = st
            .tree
            .get(ino)
            .ok_or_else(|| Error::NotFound(format!("inode {ino}")))?;
        let default = if n.kind == Kind::Dir { 0o755 } else { 0o644 };
        let board_time =
            UNIX_EPOCH + Duration::from_secs((n.board_mtime + self.epoch).max(0) as u64);
        Ok(Attr {
            ino,
            kind: n.kind,
            size: if n.kind == Kind::File { n.size } else { 0 },
            perm: (n.mode.unwrap_or(default) & 0o7777) as u16,
            mtime: n.mtime.unwrap_or(board_time),
            uid: self.opts.uid,
            gid: self.opts.gid,
        })
    }

    fn node<'a>(&self, st: &'a State, ino: Ino) -> Result<&'a Node> {
        st.tree
            .get(ino)
            .ok_or_else(|| Error::NotFound(format!("inode {ino}")))
    }

    fn journal(&self) -> Option<journal::Journal> {
        self.opts.journal.clone().map(journal::Journal::new)
    }

    /// Notes what the board had before the first change of an edit.
    fn begin_edit(&self, st: &mut State, ino: Ino) {
        if st.contents.is_dirty(ino) || st.bases.contains_key(&ino) {
            return;
        }
        let base = st
            .tree
            .get(ino)
            .filter(|n| n.on_board && !n.local_only)
            .map(|n| (n.size, n.board_mtime));
        st.bases.insert(ino, base);
    }

    /// Puts a dirty file's contents in the journal, durably.
    fn keep(&self, st: &State, ino: Ino) -> Result<()> {
        let (Some(j), Some(n)) = (self.journal(), st.tree.get(ino)) else {
            return Ok(());
        };
        if n.local_only || !st.contents.is_dirty(ino) {
            return Ok(());
        }
        let data = st.contents.get_clean_or_dirty(ino).unwrap_or(&[]);
        let base = st.bases.get(&ino).copied().flatten();
        j.write(&st.tree.path(ino), base, data)
            .map_err(|e| Error::Os {
                errno: libc::EIO,
                what: format!("journal {}: {e}", st.tree.path(ino)),
            })
    }

    fn save_attrs(&self, st: &State) {
        if let Some(f) = &self.opts.state_file {
            attrs::save(f, &st.tree);
        }
    }

    fn check_name<'a>(&self, name: &'a std::ffi::OsStr) -> Result<&'a str> {
        let name = name
            .to_str()
            .ok_or_else(|| Error::Invalid("board names must be UTF-8".into()))?;
        if name.len() > 255 {
            return Err(Error::Os {
                errno: libc::ENAMETOOLONG,
                what: name.into(),
            });
        }
        if name == PART_NAME {
            return Err(Error::Invalid(format!(
                "{PART_NAME} is reserved for uploads in progress"
            )));
        }
        Ok(name)
    }

    /// Lists a directory again if its listing is older than the TTL. A board
    /// that cannot answer (busy, unreachable) leaves the snapshot as it is.
    fn refresh(&self, st: &mut State, dir: Ino) {
        let Some(n) = st.tree.get(dir) else { return };
        let fresh = n.listed.is_some_and(|t| t.elapsed() < self.opts.dir_ttl);
        if fresh || !n.on_board || n.local_only || n.kind != Kind::Dir {
            return;
        }
        let path = st.tree.path(dir);
        let listing = match self.block(self.board.list(&path, false)) {
            Ok(l) => l,
            Err(e) => {
                debug!("keeping the snapshot of {path}: {e}");
                return;
            }
        };
        let mut seen = std::collections::HashSet::new();
        for e in listing {
            let name = e.path.rsplit('/').next().unwrap_or("").to_string();
            if name.is_empty() || name == PART_NAME {
                continue;
            }
            seen.insert(name.clone());
            match st.tree.lookup(dir, &name) {
                Some(ino) => {
                    let dirty = st.contents.is_dirty(ino);
                    let Some(n) = st.tree.get_mut(ino) else {
                        continue;
                    };
                    n.on_board = true;
                    let changed =
                        n.kind == Kind::File && (n.size != e.size || n.board_mtime != e.mtime);
                    if changed && !dirty {
                        // Changed on the board by someone else.
                        n.size = e.size;
                        n.board_mtime = e.mtime;
                        n.mode = None;
                        n.mtime = None;
                        st.contents.forget(ino);
                    }
                }
                None => {
                    let mut n = Node::new(dir, &name, e.kind);
                    n.size = e.size;
                    n.board_mtime = e.mtime;
                    n.on_board = true;
                    st.tree.insert(n);
                }
            }
        }
        let gone: Vec<Ino> = st
            .tree
            .get(dir)
            .map(|n| {
                n.children
                    .iter()
                    .filter(|(name, _)| !seen.contains(*name))
                    .map(|(_, i)| *i)
                    .collect()
            })
            .unwrap_or_default();
        for ino in gone {
            let keep = st
                .tree
                .get(ino)
                .is_some_and(|n| !n.on_board || n.local_only)
                || st.contents.is_dirty(ino);
            if !keep {
                st.contents.forget(ino);
                st.tree.remove(ino);
            }
        }
        if let Some(n) = st.tree.get_mut(dir) {
            n.listed = Some(Instant::now());
        }
    }

    /// `name` in `parent`, the listing checked against the board first if
    /// it is older than the TTL.
    fn child(&self, st: &mut State, parent: Ino, name: &str) -> Result<Ino> {
        self.refresh(st, parent);
        st.tree
            .lookup(parent, name)
            .ok_or_else(|| Error::NotFound(name.to_string()))
    }

    pub fn lookup(&self, parent: Ino, name: &std::ffi::OsStr) -> Result<Attr> {
        let name = utf8(name)?;
        let mut st = self.lock();
        let ino = self.child(&mut st, parent, name)?;
        self.attr(&st, ino)
    }

    pub fn getattr(&self, ino: Ino) -> Result<Attr> {
        let st = self.lock();
        self.attr(&st, ino)
    }

    /// Entries of a directory: name, inode, kind.
    pub fn readdir(&self, ino: Ino) -> Result<Vec<(String, Ino, Kind)>> {
        let mut st = self.lock();
        if self.node(&st, ino)?.kind != Kind::Dir {
            return Err(Error::Os {
                errno: libc::ENOTDIR,
                what: st.tree.path(ino),
            });
        }
        self.refresh(&mut st, ino);
        let n = self.node(&st, ino)?;
        Ok(n.children
            .iter()
            .filter_map(|(name, &i)| Some((name.clone(), i, st.tree.get(i)?.kind)))
            .collect())
    }

    /// A new empty file, open: it reaches the board when it is flushed.
    pub fn create(&self, parent: Ino, name: &std::ffi::OsStr, mode: u32) -> Result<(Attr, u64)> {
        let name = self.check_name(name)?;
        let mut st = self.lock();
        if let Some(old) = st.tree.lookup(parent, name) {
            // O_CREAT without O_EXCL on an existing file is an open.
            let fh = self.open_locked(&mut st, old)?;
            return Ok((self.attr(&st, old)?, fh));
        }
        let mut n = Node::new(parent, name, Kind::File);
        n.local_only =
            self.is_local_only(name) || st.tree.get(parent).is_some_and(|p| p.local_only);
        n.mode = Some(mode & 0o7777);
        n.mtime = Some(SystemTime::now());
        let ino = st.tree.insert(n);
        // Dirty from the start: `touch new` must create the file on the board.
        st.bases.insert(ino, None);
        st.contents.edit(ino);
        let fh = self.open_locked(&mut st, ino)?;
        Ok((self.attr(&st, ino)?, fh))
    }

    pub fn open(&self, ino: Ino) -> Result<u64> {
        let mut st = self.lock();
        self.open_locked(&mut st, ino)
    }

    fn open_locked(&self, st: &mut State, ino: Ino) -> Result<u64> {
        if self.node(st, ino)?.kind == Kind::Dir {
            return Err(Error::Os {
                errno: libc::EISDIR,
                what: st.tree.path(ino),
            });
        }
        st.contents.opened(ino);
        st.next_fh += 1;
        Ok(st.next_fh)
    }

    /// The last close of an open file. A new file that is still empty was
    /// left alone by `flush` (a shell's `> f` closes a duplicate descriptor
    /// before writing): it reaches the board now.
    pub fn release(&self, ino: Ino) {
        let mut st = self.lock();
        st.contents.closed(ino);
        let pending = self.opts.writeback.is_none()
            && st
                .tree
                .get(ino)
                .is_some_and(|n| !n.on_board && !n.local_only)
            && !st.contents.is_open(ino);
        if pending && let Err(e) = self.upload(&mut st, ino) {
            warn!("{}: {e}", st.tree.path(ino));
        }
    }

    /// Makes sure the contents are here; a GET (pipelined) if not.
    fn load_contents(&self, st: &mut State, ino: Ino) -> Result<()> {
        if st.contents.has(ino) {
            return Ok(());
        }
        let n = self.node(st, ino)?;
        if !n.on_board || n.local_only {
            st.contents.edit(ino);
            return Ok(());
        }
        let path = st.tree.path(ino);
        let data = self.block(self.board.get_sized(
            &path,
            Stat {
                kind: Kind::File,
                size: n.size,
                mtime: 0,
            },
        ))?;
        if let Some(n) = st.tree.get_mut(ino) {
            n.size = data.len() as u64;
        }
        st.contents.insert_clean(ino, data);
        Ok(())
    }

    pub fn read(&self, ino: Ino, offset: u64, size: u32) -> Result<Vec<u8>> {
        let mut st = self.lock();
        self.load_contents(&mut st, ino)?;
        let data = st.contents.get(ino).map(|d| d.as_slice()).unwrap_or(&[]);
        let start = (offset as usize).min(data.len());
        let end = start.saturating_add(size as usize).min(data.len());
        Ok(data[start..end].to_vec())
    }

    pub fn write(&self, ino: Ino, offset: u64, data: &[u8]) -> Result<u32> {
        let mut st = self.lock();
        let n = self.node(&st, ino)?;
        // A write that replaces the whole file needs nothing from the board.
        if !(offset == 0 && data.len() as u64 >= n.size) {
            self.load_contents(&mut st, ino)?;
        }
        self.begin_edit(&mut st, ino);
        let buf = st.contents.edit(ino);
        let end = offset as usize + data.len();
        if buf.len() < end {
            buf.resize(end, 0);
        }
        buf[offset as usize..end].copy_from_slice(data);
        let len = buf.len() as u64;
        st.written.insert(ino, Instant::now());
        if let Some(n) = st.tree.get_mut(ino) {
            n.size = len;
            n.mtime = Some(SystemTime::now());
        }
        Ok(data.len() as u32)
    }

    /// chmod, truncate, utimens (chown is accepted and ignored: the board
    /// has no owners). `open`: a handle is open on the file, so a truncate
    /// waits for its close to reach the board.
    pub fn setattr(
        &self,
        ino: Ino,
        mode: Option<u32>,
        size: Option<u64>,
        mtime: Option<SystemTime>,
        open: bool,
    ) -> Result<Attr> {
        let mut st = self.lock();
        if let Some(size) = size {
            if self.node(&st, ino)?.kind == Kind::Dir {
                return Err(Error::Os {
                    errno: libc::EISDIR,
                    what: st.tree.path(ino),
                });
            }
            if size > 0 {
                self.load_contents(&mut st, ino)?;
            }
            self.begin_edit(&mut st, ino);
            st.contents.edit(ino).resize(size as usize, 0);
            if let Some(n) = st.tree.get_mut(ino) {
                n.size = size;
                n.mtime = Some(SystemTime::now());
            }
            if !open && !st.contents.is_open(ino) {
                // truncate(2) on a closed file: no close will follow.
                self.upload(&mut st, ino)?;
            }
        }
        let n = st
            .tree
            .get_mut(ino)
            .ok_or_else(|| Error::NotFound(format!("inode {ino}")))?;
        if let Some(m) = mode {
            n.mode = Some(m & 0o7777);
        }
        if let Some(t) = mtime {
            n.mtime = Some(t);
        }
        if mode.is_some() || mtime.is_some() {
            self.save_attrs(&st);
        }
        self.attr(&st, ino)
    }

    /// close(2): sends a dirty file to the board (atomically), unless uploads
    /// are delayed. Errors leave it dirty.
    pub fn flush(&self, ino: Ino) -> Result<()> {
        if self.opts.writeback.is_some() {
            // Uploaded later: durable on local disk before close succeeds.
            let st = self.lock();
            return self.keep(&st, ino);
        }
        let mut st = self.lock();
        let untouched_new = st.tree.get(ino).is_some_and(|n| !n.on_board && n.size == 0);
        if untouched_new && st.contents.is_open(ino) {
            return Ok(());
        }
        self.upload(&mut st, ino)
    }

    /// fsync(2): to the board now, whatever the file's state.
    pub fn sync(&self, ino: Ino) -> Result<()> {
        let mut st = self.lock();
        self.upload(&mut st, ino)
    }

    fn upload(&self, st: &mut State, ino: Ino) -> Result<()> {
        let n = self.node(st, ino)?;
        if !st.contents.is_dirty(ino) || n.local_only {
            return Ok(());
        }
        let parent_on_board = st.tree.get(n.parent).is_some_and(|p| p.on_board);
        let path = st.tree.path(ino);
        let data = st.contents.get(ino).cloned().unwrap_or_default();
        let started = Instant::now();
        let board_mtime = match self.block(self.board.put(&path, &data, !parent_on_board)) {
            Ok(m) => m,
            Err(e) => {
                // Not on the board: on local disk, then, until it is.
                if let Err(j) = self.keep(st, ino) {
                    warn!("{j}");
                }
                return Err(e);
            }
        };
        if let Some(j) = self.journal() {
            j.remove(&path);
        }
        st.bases.remove(&ino);
        debug!(
            "flushed {path}: {} B in {:.0?}",
            data.len(),
            started.elapsed()
        );
        if let Some(n) = st.tree.get_mut(ino) {
            n.on_board = true;
            n.size = data.len() as u64;
            n.board_mtime = board_mtime;
        }
        st.contents.mark_clean(ino);
        self.save_attrs(st);
        Ok(())
    }

    /// --writeback-delay: uploads the files last written longer ago than
    /// the delay.
    pub fn flush_due(&self) -> Unflushed {
        let Some(delay) = self.opts.writeback else {
            return Vec::new();
        };
        let mut st = self.lock();
        let due: Vec<Ino> = st
            .written
            .iter()
            .filter(|(_, t)| t.elapsed() >= delay)
            .map(|(i, _)| *i)
            .collect();
        let mut failed = Vec::new();
        for ino in due {
            match self.upload(&mut st, ino) {
                Ok(()) => {
                    st.written.remove(&ino);
                }
                Err(e) => failed.push((st.tree.path(ino), e)),
            }
        }
        failed
    }

    /// Closed files whose upload failed (a dropped link, a full board), sent
    /// again; with --writeback-delay, the files that are due.
    pub fn retry_unsent(&self) -> Unflushed {
        if self.opts.writeback.is_some() {
            return self.flush_due();
        }
        let mut st = self.lock();
        let waiting: Vec<Ino> = st
            .contents
            .dirty_inos()
            .into_iter()
            .filter(|&i| !st.contents.is_open(i) && st.tree.get(i).is_some_and(|n| !n.local_only))
            .collect();
        let mut failed = Vec::new();
        for ino in waiting {
            match self.upload(&mut st, ino) {
                Ok(()) => info!("{} reached the board", st.tree.path(ino)),
                Err(e) => failed.push((st.tree.path(ino), e)),
            }
        }
        failed
    }

    pub fn has_unsent(&self) -> bool {
        let st = self.lock();
        st.contents
            .dirty_inos()
            .into_iter()
            .any(|i| !st.contents.is_open(i))
    }

    /// Every dirty file to the board; what failed, with why.
    pub fn flush_all(&self) -> Unflushed {
        let mut st = self.lock();
        let mut failed = Vec::new();
        for ino in st.contents.dirty_inos() {
            match self.upload(&mut st, ino) {
                Ok(()) => {
                    st.written.remove(&ino);
                }
                Err(e) => failed.push((st.tree.path(ino), e)),
            }
        }
        failed
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

    pub fn statfs(&self) -> Result<StatVfs> {
        let mut st = self.lock();
        if let Some((t, v)) = st.statvfs
            && t.elapsed() < Duration::from_secs(5)
        {
            return Ok(v);
        }
        let v = self.block(self.board.statvfs("/"))?;
        st.statvfs = Some((Instant::now(), v));
        Ok(v)
    }

    /// Forgets what the board may have changed (after a soft reset, boot.py
    /// and main.py run): every directory is listed again when next used, and
    /// unchanged contents are read again. Changed files stay as they are.
    pub fn invalidate(&self) {
        let mut st = self.lock();
        let mut all = st.tree.descendants(ROOT);
        all.push(ROOT);
        for ino in all {
            let dirty = st.contents.is_dirty(ino);
            if let Some(n) = st.tree.get_mut(ino) {
                n.listed = None;
                if !dirty {
                    st.contents.forget(ino);
                }
            }
        }
        st.statvfs = None;
    }

    /// Logs what is still dirty; for shutdown.
    pub fn warn_unflushed(failed: &Unflushed) {
        for (path, e) in failed {
            warn!("not flushed: {path}: {e}");
        }
    }
}

/// A name from the kernel: the board has only UTF-8 names, so any other
/// cannot exist there.
fn utf8(name: &std::ffi::OsStr) -> Result<&str> {
    name.to_str()
        .ok_or_else(|| Error::NotFound("a non-UTF-8 name".into()))
}
