//! The FUSE adapter: kernel requests in, `cache::Core` calls, replies out.
//!
//! fuser serves requests on one thread; a request that may need the board
//! is answered from a task on the runtime, so that thread never waits and
//! the next request (an `ls` answered from the snapshot) goes through while
//! a file is still on its way.

use crate::board::EntryKind;
use crate::cache::{Attr, Core};
use crate::error::{Error, Kind as ErrorKind};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr,
    Request, TimeOrNow, WriteFlags,
};
use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tracing::debug;

mod killed;

/// Size the kernel is told to write in: fewer, larger writes into the cache.
const BLOCK: u32 = 64 * 1024;

pub struct Fs {
    core: Arc<Core>,
    ttl: Duration,
    rt: tokio::runtime::Handle,
}

impl Fs {
    pub fn new(core: Arc<Core>, ttl: Duration, rt: tokio::runtime::Handle) -> Fs {
        Fs { core, ttl, rt }
    }

    /// Runs `f` on the runtime with the core; it replies when done.
    fn task<F>(&self, f: impl FnOnce(Arc<Core>) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.rt.spawn(f(self.core.clone()));
    }
}

/// The errno a filesystem call reports for an error.
pub fn errno(e: &Error) -> Errno {
    let n = match e.kind() {
        ErrorKind::NotFound => libc::ENOENT,
        ErrorKind::Os(errno) => errno,
        ErrorKind::Running => libc::EBUSY,
        ErrorKind::Invalid => libc::EINVAL,
        ErrorKind::WrongPassword => libc::EACCES,
        // The board's heap, not the host's: still the word that says
        // what ran out, where EIO said nothing.
        ErrorKind::LowMemory => libc::ENOMEM,
        _ => libc::EIO,
    };
    debug!("answering {n}: {e}");
    Errno::from_i32(n)
}

fn file_attr(a: &Attr) -> FileAttr {
    let kind = if a.kind == EntryKind::Dir {
        FileType::Directory
    } else {
        FileType::RegularFile
    };
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: a.mtime,
        mtime: a.mtime,
        ctime: a.mtime,
        crtime: a.mtime,
        kind,
        perm: a.perm,
        nlink: if a.kind == EntryKind::Dir { 2 } else { 1 },
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: BLOCK,
        flags: 0,
    }
}

fn time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

macro_rules! answer {
    ($reply:ident, $r:expr, |$v:pat_param| $ok:expr) => {
        match $r {
            Ok($v) => $ok,
            Err(e) => $reply.error(errno(&e)),
        }
    };
}

impl Filesystem for Fs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(1 << 20);
        // Lookups in one directory need not wait for each other.
        let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS);
        // Files still on their way are opened for direct I/O (see `open`);
        // programs may still map them.
        let _ = config.add_capabilities(InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP);
        let _ = config.set_max_background(64);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let (ttl, name) = (self.ttl, name.to_owned());
        self.task(|core| async move {
            answer!(reply, core.lookup(parent.0, &name).await, |a| reply.entry(
                &ttl,
                &file_attr(&a),
                Generation(0)
            ))
        });
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let ttl = self.ttl;
        self.task(|core| async move {
            answer!(reply, core.getattr(ino.0).await, |a| reply
                .attr(&ttl, &file_attr(&a)))
        });
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let ttl = self.ttl;
        let mtime = mtime.map(time);
        self.task(|core| async move {
            let r = core
                .setattr(ino.0, fh.map(|f| f.0), mode, size, mtime, fh.is_some())
                .await;
            answer!(reply, r, |a| reply.attr(&ttl, &file_attr(&a)))
        });
    }

    fn mknod(
        &self,
        _req: &Request,
        _p: INodeNo,
        _n: &OsStr,
        _m: u32,
        _u: u32,
        _r: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EPERM);
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let (ttl, name) = (self.ttl, name.to_owned());
        self.task(|core| async move {
            let r = core.mkdir(parent.0, &name, mode & !umask).await;
            answer!(reply, r, |a| reply.entry(
                &ttl,
                &file_attr(&a),
                Generation(0)
            ))
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.to_owned();
        self.task(|core| async move {
            answer!(reply, core.unlink(parent.0, &name).await, |()| reply.ok())
        });
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.to_owned();
        self.task(|core| async move {
            answer!(reply, core.rmdir(parent.0, &name).await, |()| reply.ok())
        });
    }

    fn symlink(&self, _req: &Request, _p: INodeNo, _n: &OsStr, _t: &Path, reply: ReplyEntry) {
        reply.error(Errno::EPERM);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            return reply.error(Errno::EINVAL);
        }
        let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        let (name, newname) = (name.to_owned(), newname.to_owned());
        self.task(|core| async move {
            let r = core
                .rename(parent.0, &name, newparent.0, &newname, noreplace)
                .await;
            answer!(reply, r, |()| reply.ok())
        });
    }

    fn link(&self, _req: &Request, _i: INodeNo, _p: INodeNo, _n: &OsStr, reply: ReplyEntry) {
        reply.error(Errno::EPERM);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let write = flags.0 & libc::O_ACCMODE != libc::O_RDONLY;
        self.task(|core| async move {
            // A file not yet here is read at the program's own read sizes
            // (direct I/O), where the page cache would ask for a whole
            // readahead window first: `head -c 100` reads a range.
            answer!(reply, core.open(ino.0, write).await, |(fh, streaming)| {
                let flags = if streaming {
                    FopenFlags::FOPEN_DIRECT_IO
                } else {
                    FopenFlags::empty()
                };
                reply.opened(FileHandle(fh), flags)
            })
        });
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let reader = req.pid();
        self.task(|core| async move {
            // A reader interrupted meanwhile is let go (see `killed`); the
            // file's download goes on for whoever reads it next.
            tokio::select! {
                r = core.read(ino.0, fh.0, offset, size) => answer!(reply, r, |d| reply.data(&d)),
                () = killed::killed(reader) => {
                    debug!("a reader of inode {} was interrupted while it waited", ino.0);
                    reply.error(Errno::EINTR)
                }
            }
        });
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _wflags: WriteFlags,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let data = data.to_vec();
        self.task(|core| async move {
            answer!(reply, core.write(ino.0, fh.0, offset, &data).await, |n| {
                reply.written(n)
            })
        });
    }

    /// close(2): the file goes to the board now, and its errors to close.
    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _lock: LockOwner,
        reply: ReplyEmpty,
    ) {
        self.task(
            |core| async move { answer!(reply, core.flush(ino.0, fh.0).await, |()| reply.ok()) },
        );
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.task(|core| async move {
            core.release(ino.0, fh.0).await;
            reply.ok();
        });
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.task(|core| async move { answer!(reply, core.sync(ino.0).await, |()| reply.ok()) });
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        self.task(|core| async move {
            let mut reply = reply;
            let entries = match core.readdir(ino.0).await {
                Ok(e) => e,
                Err(e) => return reply.error(errno(&e)),
            };
            let dots = [
                (".".to_string(), ino.0, EntryKind::Dir),
                ("..".to_string(), ino.0, EntryKind::Dir),
            ];
            for (i, (name, child, kind)) in dots
                .into_iter()
                .chain(entries)
                .enumerate()
                .skip(offset as usize)
            {
                let kind = if kind == EntryKind::Dir {
                    FileType::Directory
                } else {
                    FileType::RegularFile
                };
                if reply.add(INodeNo(child), i as u64 + 1, kind, &name) {
                    break;
                }
            }
            reply.ok();
        });
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.task(|core| async move {
            answer!(reply, core.statfs().await, |v| {
                let frsize = if v.frsize > 0 { v.frsize } else { v.bsize };
                reply.statfs(
                    v.blocks,
                    v.bfree,
                    v.bavail,
                    0,
                    0,
                    v.bsize as u32,
                    v.namemax.max(1) as u32,
                    frsize as u32,
                )
            })
        });
    }

    // The board keeps no extended attributes. ENOSYS makes the kernel stop
    // asking (it asks for security.capability before every write) and
    // report EOPNOTSUPP to programs, which `cp -p` accepts.
    fn setxattr(
        &self,
        _req: &Request,
        _i: INodeNo,
        _n: &OsStr,
        _v: &[u8],
        _f: i32,
        _p: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn getxattr(&self, _req: &Request, _i: INodeNo, _n: &OsStr, _s: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _i: INodeNo, _s: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn removexattr(&self, _req: &Request, _i: INodeNo, _n: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::ENOSYS);
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        match self.core.create(parent.0, name, mode & !umask) {
            Ok((a, fh)) => reply.created(
                &self.ttl,
                &file_attr(&a),
                Generation(0),
                FileHandle(fh),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(errno(&e)),
        }
    }
}
