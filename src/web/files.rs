//! The page's files panel, on whatever holds the board: a mount (its files
//! go through the mountpoint, so they take the mount's own atomic, verified
//! upload and its snapshot stays right) or a board of the page's own.

use crate::board::{self, Base, Board, EntryKind};
use crate::cache::Replaced;
use crate::error::{Error, Holder, Lost, Result};
use bytes::Bytes;
use serde::Serialize;
use std::path::PathBuf;

// One per page: a Board held inline costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Files {
    /// The mountpoint, and the mount's cache: reads go through the cache,
    /// not the mountpoint, as the daemon serving the page also serves the
    /// mountpoint: a download held open there kept an unmount waiting on
    /// the daemon's own request.
    Mount(PathBuf, std::sync::Arc<crate::cache::Core>),
    Board(Board),
}

#[derive(Debug, Serialize)]
pub struct Entry {
    pub path: String,
    pub dir: bool,
    pub size: u64,
}

/// What an editor's save did.
pub enum Saved {
    /// Written; the file's new version.
    Done(String),
    /// The board's file changed since the editor read it (now this
    /// version); the editor's text was written as `kept`.
    Conflict { now: String, kept: String },
}

/// A file's version as the editor knows it: its content's hash.
pub fn version(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Names the page never lists: uploads in flight (the mount's parts, the
/// page's own scratch) and the page's Run scratch.
pub fn hidden(name: &str) -> bool {
    board::is_part(name)
        || (name.starts_with('.') && name.ends_with(".webrepl-upload"))
        || name == RUN_SCRATCH.trim_start_matches('/')
}

/// The file a name of the page's own stands for, as a person knows it:
/// an upload's scratch `.NAME.webrepl-upload` is NAME.
pub fn user_name(path: &str) -> String {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    match name
        .strip_prefix('.')
        .and_then(|n| n.strip_suffix(".webrepl-upload"))
    {
        Some(n) if !n.is_empty() => format!("{dir}/{n}"),
        _ => path.to_string(),
    }
}

/// Where Run puts an editor's unsaved text to run it: hidden from the
/// mount (straight to the board, not through the mountpoint).
pub use crate::cache::identity::RUN_SCRATCH;

/// Free and total bytes of the board's flash.
pub type Space = (u64, u64);

impl Files {
    pub async fn tree(&self) -> Result<Vec<Entry>> {
        let mut all = match self {
            Files::Board(b) => b
                .list("/", true)
                .await?
                .into_iter()
                .map(|e| Entry {
                    path: e.path,
                    dir: e.kind == EntryKind::Dir,
                    size: e.size,
                })
                .collect(),
            Files::Mount(root, _) => {
                let root = root.clone();
                blocking("listing", move || walk(&root)).await??
            }
        };
        all.retain(|e| !e.path.rsplit('/').next().is_some_and(hidden));
        all.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(all)
    }

    /// The editor's save: written only if the board's file is still the
    /// version the editor opened (`base`, from [`version`]; "none": it did
    /// not exist). Else the board's file stays and the editor's text goes
    /// beside it as NAME.webrepl-mount-conflict, as the mount does for a
    /// stale save: neither is lost.
    pub async fn save(&self, path: &str, data: Bytes, base: &str) -> Result<Saved> {
        let path = board::normalize(path)?;
        let now = match self.read(&path).await {
            Ok(d) => version(&d),
            Err(Error::NotFound(_)) => "none".to_string(),
            Err(e) => return Err(e),
        };
        if now != base {
            let kept = format!("{path}{}", board::CONFLICT_SUFFIX);
            self.write(&kept, data).await?;
            return Ok(Saved::Conflict { now, kept });
        }
        let v = version(&data);
        if let Files::Mount(_, core) = self {
            // Straight to the board through the cache: only the change
            // goes, in one atomic upload, and a refusal leaves nothing
            // in the mount to be sent later.
            match core.replace(&path, data.clone()).await? {
                Replaced::Done => return Ok(Saved::Done(v)),
                Replaced::Beside { kept } => {
                    let now = version(&self.read(&path).await?);
                    return Ok(Saved::Conflict { now, kept });
                }
                Replaced::NotHere => {}
            }
        }
        self.write(&path, data).await?;
        Ok(Saved::Done(v))
    }

    pub async fn read(&self, path: &str) -> Result<Vec<u8>> {
        let path = board::normalize(path)?;
        match self {
            Files::Board(b) => b.get_checked(&path).await,
            Files::Mount(_, core) => read_cached(core, &path).await,
        }
    }

    /// Whole and verified, or not at all: the board keeps its old file if
    /// anything fails.
    pub async fn write(&self, path: &str, data: Bytes) -> Result<()> {
        let path = board::normalize(path)?;
        match self {
            Files::Board(b) => b.put(&path, &data, true, Base::Any).await.map(|_| ()),
            Files::Mount(..) => {
                let local = self.local(&path);
                let shown = path.clone();
                blocking("writing", move || upload_through_mount(&local, &data))
                    .await?
                    .map_err(|e| words(e, &shown))
            }
        }
    }

    /// Run's scratch, straight to the board: the mount hides the name, so
    /// it cannot go through the mountpoint (and needs no journal: it is
    /// run at once, and written again by the next Run).
    pub async fn put_run_scratch(&self, data: Bytes) -> Result<()> {
        let board = match self {
            Files::Board(b) => b,
            Files::Mount(_, core) => core.board(),
        };
        board
            .put(RUN_SCRATCH, &data, false, Base::Any)
            .await
            .map(|_| ())
    }

    pub async fn remove(&self, path: &str) -> Result<()> {
        let path = board::normalize(path)?;
        if path == "/" {
            // Else the mountpoint's EBUSY would read as a busy board.
            return Err(Error::Path(crate::error::BadPath::Root { verb: "delete" }));
        }
        match self {
            Files::Board(b) => b.remove(&path).await,
            Files::Mount(..) => {
                let local = self.local(&path);
                let r = match tokio::fs::symlink_metadata(&local).await {
                    Ok(m) if m.is_dir() => tokio::fs::remove_dir(&local).await,
                    Ok(_) => tokio::fs::remove_file(&local).await,
                    Err(e) => Err(e),
                };
                r.map_err(|e| words(e, &path))
            }
        }
    }

    pub async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (from, to) = (board::normalize(from)?, board::normalize(to)?);
        if from == "/" || to == "/" {
            return Err(Error::Path(crate::error::BadPath::Root { verb: "rename" }));
        }
        match self {
            Files::Board(b) => b.rename(&from, &to).await,
            Files::Mount(..) => tokio::fs::rename(self.local(&from), self.local(&to))
                .await
                .map_err(|e| words(e, &from)),
        }
    }

    pub async fn mkdir(&self, path: &str) -> Result<()> {
        let path = board::normalize(path)?;
        match self {
            Files::Board(b) => b.mkdirs(&path).await,
            Files::Mount(..) => tokio::fs::create_dir_all(self.local(&path))
                .await
                .map_err(|e| words(e, &path)),
        }
    }

    pub async fn space(&self) -> Result<Space> {
        let v = match self {
            Files::Board(b) => b.statvfs("/").await?,
            Files::Mount(root, _) => {
                let root = root.clone();
                return blocking("statvfs", move || statvfs(&root)).await?;
            }
        };
        let unit = v.frsize.max(v.bsize);
        Ok((v.bavail * unit, v.blocks * unit))
    }

    /// A board path (normalised, absolute) under the mountpoint.
    fn local(&self, path: &str) -> PathBuf {
        match self {
            Files::Mount(root, _) => root.join(path.trim_start_matches('/')),
            Files::Board(_) => PathBuf::from(path),
        }
    }
}

/// A file of the mount, read through its cache (and so its board), in
/// the pieces FUSE would ask for.
async fn read_cached(core: &crate::cache::Core, path: &str) -> Result<Vec<u8>> {
    const PIECE: u32 = 128 * 1024;
    let ino = core.resolve(path).await?;
    if let Some(data) = core.whole(ino).await? {
        return Ok(data);
    }
    let (fh, _) = core.open(ino, false).await?;
    let mut out = Vec::new();
    let r = loop {
        match core.read(ino, fh, out.len() as u64, PIECE).await {
            Ok(d) if d.is_empty() => break Ok(()),
            Ok(d) => out.extend_from_slice(&d),
            Err(e) => break Err(e),
        }
    };
    core.release(ino, fh).await;
    r.map(|()| out)
}

/// The mount's own files go through the kernel, which may wait on the
/// board: off the async threads.
async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        Error::Bug(crate::error::Bug::Task {
            task: what.to_string(),
            why: e.to_string(),
        })
    })
}

/// Into a name of its own first, then renamed over the target: a failed
/// upload (a full board) then leaves neither a changed file in the mount to
/// be sent again and again nor a touched target on the board.
fn upload_through_mount(target: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = target.parent().unwrap_or(std::path::Path::new("/"));
    std::fs::create_dir_all(dir)?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let part = dir.join(format!(".{name}.webrepl-upload"));
    let sent = (|| {
        let mut f = std::fs::File::create(&part)?;
        f.write_all(data)?;
        // The mount uploads on fsync and says there whether the board took
        // it; a plain close would drop that answer.
        f.sync_all()
    })();
    if let Err(e) = sent {
        // Never on the board: removing it costs nothing there.
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    std::fs::rename(&part, target)
}

fn walk(root: &std::path::Path) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            let md = e.metadata()?;
            let rel = e.path();
            let rel = rel.strip_prefix(root).unwrap_or(&rel);
            out.push(Entry {
                path: format!("/{}", rel.to_string_lossy()),
                dir: md.is_dir(),
                size: md.len(),
            });
            if md.is_dir() {
                todo.push(e.path());
            }
        }
    }
    Ok(out)
}

fn statvfs(root: &std::path::Path) -> Result<Space> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(root.as_os_str().as_bytes())
        .map_err(|e| Error::Invalid(e.to_string()))?;
    // SAFETY: a valid path and a zeroed struct for the kernel to fill.
    let mut v: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut v) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    let unit = v.f_frsize.max(v.f_bsize);
    Ok((v.f_bavail * unit, v.f_blocks * unit))
}

/// What the mount's errno meant, in the words the page shows.
fn words(e: std::io::Error, path: &str) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOENT) => Error::NotFound(path.to_string()),
        Some(libc::EBUSY) => Error::Busy {
            what: path.to_string(),
            holder: Holder::Program,
        },
        Some(libc::EIO) => Error::LinkLost(Lost::Unsent {
            path: path.to_string(),
        }),
        Some(errno) => Error::Os {
            errno,
            what: path.to_string(),
        },
        None => Error::Invalid(format!("{path}: {e}")),
    }
}
