//! A whole new version of a file, or a new file, put on the board at once
//! (the page's editor saves this way): one atomic upload that sends only the change
//! against the board's copy the mount holds, with no local dirty state. A
//! save through the mountpoint would leave a changed file behind when the
//! board refuses it, sent again later after the editor said "failed"; a
//! scratch file renamed over the target costs a second program on the board.

use super::*;
use crate::board::Written;
use bytes::Bytes;
use tokio::sync::watch;

/// What [`Core::replace`] did.
pub enum Replaced {
    /// On the board, and the cache's copy.
    Done,
    /// The board's file had changed: it stays, `data` is beside it as `kept`.
    Beside { kept: String },
    /// Someone writes the file through the mount, or it is not on the
    /// board: nothing was sent; save it another way.
    NotHere,
}

/// Ends the upload mark, however the upload ends.
struct Mark<'a> {
    core: &'a Core,
    ino: Ino,
    _tx: watch::Sender<()>,
}

impl Drop for Mark<'_> {
    fn drop(&mut self) {
        self.core.lock().file.edit(self.ino, |f| f.uploading = None);
    }
}

impl Core {
    /// The board for an editor's save: tied to this link, and impatient:
    /// while a person's program holds the REPL, the save fails at once
    /// (`Error::Running`; the editor keeps the text) rather than after the
    /// board's patience, 10 s and more of "saving…".
    fn editors_board(&self) -> crate::board::Board {
        self.board
            .impatient()
            .on_link(self.board.session().generation())
    }

    /// A whole file, for a reader that wants all of it (the page's editor
    /// and downloads): its transfer starts at once. Read through a handle,
    /// a first read at offset 0 of a file over PEEK_FILE was a range read
    /// by a program, in series before the whole transfer (0.3 s of a
    /// 20 KB file's 1.7 s at 20 KB/s). None: the cache does not keep it
    /// whole (larger than its budget); read it in pieces.
    pub async fn whole(&self, ino: Ino) -> Result<Option<Vec<u8>>> {
        self.validate().await;
        if node(&self.lock(), ino)?.kind == EntryKind::Dir {
            return Err(Error::Os {
                errno: libc::EISDIR,
                what: self.lock().tree.path(ino),
            });
        }
        self.loaded(ino).await?;
        let mut st = self.lock();
        let Some(n) = st.tree.get(ino) else {
            return Err(Error::NotFound(format!("inode {ino}")));
        };
        let version = (n.size, n.board_mtime);
        let data = st.contents.get(ino).cloned();
        if data.is_some() && !st.contents.is_dirty(ino) {
            st.file.edit(ino, |f| f.seen = Some(version));
        }
        Ok(data)
    }

    /// The inode of a board path, from the snapshot when it has the name
    /// (checked against the board only if code may have changed it, as
    /// every operation is): a lookup re-lists a directory listed longer
    /// ago than the TTL, a program on the board before a page's read of a
    /// file its panel has just listed. A name not in the snapshot is
    /// looked up (and its directory listed) as a lookup does.
    pub async fn resolve(&self, path: &str) -> Result<Ino> {
        self.validate().await;
        let mut ino = ROOT;
        for name in path.split('/').filter(|n| !n.is_empty()) {
            let known = self.lock().tree.lookup(ino, name);
            ino = match known {
                Some(i) => i,
                None => self.lookup(ino, std::ffi::OsStr::new(name)).await?.ino,
            };
        }
        Ok(ino)
    }

    /// Replaces the board's file at `path` with `data`, atomically and only
    /// if the board still has the version the mount knows (else the board's
    /// stays and `data` goes beside it). The cache changes only when the
    /// board answers, so nothing is left to be sent later: an error means
    /// the board kept its file (or, the answer lost, may have either).
    pub async fn replace(&self, path: &str, data: Bytes) -> Result<Replaced> {
        let ino = match self.resolve(path).await {
            Ok(ino) => ino,
            Err(Error::NotFound(_)) => return self.put_new(path, data).await,
            Err(e) => return Err(e),
        };
        let (base, was, edit, _mark) = {
            let mut st = self.lock();
            let Some(n) = st.tree.get(ino) else {
                return Ok(Replaced::NotHere);
            };
            let busy = st.contents.is_dirty(ino)
                || st.file.of(ino).base.is_some()
                || st.file.of(ino).uploading.is_some()
                || st.file.iter().any(|(_, f)| !f.moving.is_empty());
            if n.kind != EntryKind::File || !n.on_board || n.local_only || busy {
                return Ok(Replaced::NotHere);
            }
            let (size, mtime) = st.file.of(ino).seen.unwrap_or((n.size, n.board_mtime));
            let was = held::board_copy(&st, ino).filter(|c| c.len() as u64 == size);
            let (tx, rx) = watch::channel(());
            st.file.edit(ino, |f| f.uploading = Some(rx));
            let edit = st.file.of(ino).edits;
            let mark = Mark {
                core: self,
                ino,
                _tx: tx,
            };
            (Base::Was(size, mtime), was, edit, mark)
        };
        // Never to another board at this address (see `identity`): checked
        // on this link, and the upload tied to it.
        let r = match self.guard.check(&self.board).await {
            Err(e) => Err(e),
            Ok(()) => {
                let board = self.editors_board();
                match was {
                    Some(was) => board.put_changed(path, data.clone(), was, base).await,
                    None => board.put(path, &data, false, base).await,
                }
            }
        };
        let mut st = self.lock();
        st.namespace += 1;
        let untouched = st.file.of(ino).edits == edit && !st.contents.is_dirty(ino);
        match r {
            Ok(Written::Target(mtime)) => {
                let now = (data.len() as u64, mtime);
                if let Some(n) = st.tree.get_mut(ino) {
                    (n.size, n.board_mtime) = now;
                }
                if untouched {
                    st.file.edit(ino, |f| f.seen = Some(now));
                    st.contents.insert_clean(ino, data.to_vec());
                }
                Ok(Replaced::Done)
            }
            Ok(Written::Beside {
                name,
                mtime,
                target,
            }) => {
                // The board's version is the file's from now on.
                if untouched {
                    st.contents.forget(ino);
                    st.file.edit(ino, |f| f.seen = Some(target));
                }
                if let Some(n) = st.tree.get_mut(ino) {
                    (n.size, n.board_mtime) = target;
                }
                let short = name.rsplit('/').next().unwrap_or(&name).to_string();
                if let Some(parent) = st.tree.get(ino).map(|n| n.parent) {
                    if let Some(old) = st.tree.lookup(parent, &short) {
                        st.contents.forget(old);
                        st.tree.remove(old);
                    }
                    let mut n = Node::new(parent, &short, EntryKind::File);
                    n.size = data.len() as u64;
                    n.board_mtime = mtime;
                    n.on_board = true;
                    let c = st.tree.insert(n);
                    st.contents.insert_clean(c, data.to_vec());
                }
                Ok(Replaced::Beside { kept: name })
            }
            Err(e) => {
                // The answer may be lost after the board took it: read its
                // file again rather than trust the copy here.
                if untouched {
                    st.contents.forget(ino);
                }
                Err(e)
            }
        }
    }

    /// A file the board does not have, put there at once, atomically and
    /// only while it still has none (else `data` goes beside what appeared):
    /// as a save through the mountpoint, it went up under a scratch name
    /// and was renamed, a second program on the board.
    async fn put_new(&self, path: &str, data: Bytes) -> Result<Replaced> {
        let dir = crate::board::parent(path);
        let name = path.rsplit('/').next().unwrap_or("").to_string();
        let parent = match self.resolve(dir).await {
            Ok(ino) => ino,
            Err(Error::NotFound(_)) => return Ok(Replaced::NotHere),
            Err(e) => return Err(e),
        };
        if self.check_name(std::ffi::OsStr::new(&name)).is_err() || self.is_local_only(&name) {
            return Ok(Replaced::NotHere);
        }
        {
            let st = self.lock();
            let Some(p) = st.tree.get(parent) else {
                return Ok(Replaced::NotHere);
            };
            // Anything the mount itself holds of that name (a file being
            // written, one an editor moved aside) goes its own way.
            if p.kind != EntryKind::Dir
                || p.local_only
                || st.tree.lookup(parent, &name).is_some()
                || st.shadowed.contains_key(&(parent, name.clone()))
                || st.file.iter().any(|(_, f)| !f.moving.is_empty())
            {
                return Ok(Replaced::NotHere);
            }
        }
        self.guard.check(&self.board).await?;
        let board = self.editors_board();
        let r = board.put(path, &data, false, Base::Absent).await;
        let mut st = self.lock();
        st.namespace += 1;
        match r? {
            Written::Target(mtime) => {
                if st.tree.lookup(parent, &name).is_none() {
                    let mut n = Node::new(parent, &name, EntryKind::File);
                    n.size = data.len() as u64;
                    n.board_mtime = mtime;
                    n.on_board = true;
                    let ino = st.tree.insert(n);
                    st.file
                        .edit(ino, |f| f.seen = Some((data.len() as u64, mtime)));
                    st.contents.insert_clean(ino, data.to_vec());
                }
                Ok(Replaced::Done)
            }
            Written::Beside { name: kept, .. } => {
                // Another writer made it meanwhile: the board's listing
                // has both names now; the next look reads it.
                st.changes = u64::MAX;
                Ok(Replaced::Beside { kept })
            }
        }
    }
}
