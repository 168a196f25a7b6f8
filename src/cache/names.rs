//! Operations on names: mkdir, unlink, rmdir, rename. They reach the board
//! at once (a rename or removal is not deferred), except for names that stay
//! local and files the board has not had yet. One that concerns a file
//! being uploaded waits for that upload: the rename that finishes it must
//! not race ours.

use super::*;

impl Core {
    pub async fn mkdir(&self, parent: Ino, name: &std::ffi::OsStr, mode: u32) -> Result<Attr> {
        let name = self.check_name(name)?;
        let (path, local) = {
            let st = self.lock();
            if st.tree.lookup(parent, name).is_some() {
                return Err(Error::Os {
                    errno: libc::EEXIST,
                    what: name.into(),
                });
            }
            let local =
                self.is_local_only(name) || st.tree.get(parent).is_some_and(|p| p.local_only);
            (st.tree.child_path(parent, name), local)
        };
        if !local {
            self.guard.check(&self.board).await?;
            self.board.mkdir(&path).await?;
        }
        let mut st = self.lock();
        st.namespace += 1;
        let mut n = Node::new(parent, name, EntryKind::Dir);
        n.on_board = !local;
        n.local_only = local;
        n.mode = Some(mode & 0o7777);
        n.mtime = Some(SystemTime::now());
        n.listed = Some(Instant::now());
        let ino = st.tree.insert(n);
        self.save_attrs(&st);
        self.attr(&st, ino)
    }

    pub async fn unlink(&self, parent: Ino, name: &std::ffi::OsStr) -> Result<()> {
        let name = utf8(name)?;
        let ino = self.named(parent, name)?;
        let _moving = self.quiesce(&[ino]).await;
        let on_board = {
            let st = self.lock();
            let n = node(&st, ino)?;
            if n.kind == EntryKind::Dir {
                return Err(Error::Os {
                    errno: libc::EISDIR,
                    what: name.into(),
                });
            }
            (n.on_board && !n.local_only).then(|| st.tree.path(ino))
        };
        if let Some(path) = on_board {
            self.guard.check(&self.board).await?;
            match self.board.remove(&path).await {
                Ok(()) | Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let mut st = self.lock();
        st.namespace += 1;
        if let Some(j) = self.journal() {
            j.remove(&st.tree.path(ino));
        }
        forget(&mut st, ino);
        st.tree.remove(ino);
        self.save_attrs(&st);
        Ok(())
    }

    pub async fn rmdir(&self, parent: Ino, name: &std::ffi::OsStr) -> Result<()> {
        let name = utf8(name)?;
        self.fresh(parent).await;
        let ino = self.named(parent, name)?;
        self.fresh(ino).await;
        let on_board = {
            let st = self.lock();
            let n = node(&st, ino)?;
            if n.kind != EntryKind::Dir {
                return Err(Error::Os {
                    errno: libc::ENOTDIR,
                    what: name.into(),
                });
            }
            if !n.children.is_empty() {
                return Err(Error::Os {
                    errno: libc::ENOTEMPTY,
                    what: name.into(),
                });
            }
            (n.on_board && !n.local_only).then(|| st.tree.path(ino))
        };
        if let Some(path) = on_board {
            self.guard.check(&self.board).await?;
            self.board.rmdir(&path).await?;
        }
        let mut st = self.lock();
        st.namespace += 1;
        st.tree.remove(ino);
        self.save_attrs(&st);
        Ok(())
    }

    fn named(&self, parent: Ino, name: &str) -> Result<Ino> {
        self.lock()
            .tree
            .lookup(parent, name)
            .ok_or_else(|| Error::NotFound(name.into()))
    }

    /// rename(2), replacing a target like POSIX. `noreplace`: fail with
    /// EEXIST instead (what `mv` asks for first).
    pub async fn rename(
        &self,
        parent: Ino,
        name: &std::ffi::OsStr,
        newparent: Ino,
        newname: &std::ffi::OsStr,
        noreplace: bool,
    ) -> Result<()> {
        let name = utf8(name)?;
        let newname = self.check_name(newname)?;
        let ino = self.named(parent, name)?;
        let target = self.lock().tree.lookup(newparent, newname);
        let moving = self
            .quiesce(
                &[Some(ino), target]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>(),
            )
            .await;
        let plan = {
            let st = self.lock();
            let src = node(&st, ino)?.clone();
            let target = st.tree.lookup(newparent, newname);
            if target == Some(ino) {
                return Ok(());
            }
            if let Some(t) = target {
                if noreplace {
                    return Err(Error::Os {
                        errno: libc::EEXIST,
                        what: newname.into(),
                    });
                }
                let t = node(&st, t)?;
                let errno = match (src.kind, t.kind) {
                    (EntryKind::File, EntryKind::Dir) => Some(libc::EISDIR),
                    (EntryKind::Dir, EntryKind::File) => Some(libc::ENOTDIR),
                    (EntryKind::Dir, EntryKind::Dir) if !t.children.is_empty() => {
                        Some(libc::ENOTEMPTY)
                    }
                    _ => None,
                };
                if let Some(errno) = errno {
                    return Err(Error::Os {
                        errno,
                        what: newname.into(),
                    });
                }
            }
            let to_local =
                self.is_local_only(newname) || st.tree.get(newparent).is_some_and(|p| p.local_only);
            let target_on_board = target
                .and_then(|t| st.tree.get(t))
                .is_some_and(|t| t.on_board && !t.local_only);
            // What the board has under the new name: a file it has not had
            // yet replaces that, not nothing (rsync's temporary files).
            let replaces = target.filter(|_| target_on_board).and_then(|t| {
                match st.file.of(t).base.as_ref() {
                    Some(b @ Base::Was(..)) => Some(*b),
                    _ => st
                        .file
                        .of(t)
                        .seen
                        .or_else(|| st.tree.get(t).map(|n| (n.size, n.board_mtime)))
                        .map(|(s, m)| Base::Was(s, m)),
                }
            });
            let replaces_copy = target
                .filter(|_| replaces.is_some())
                .and_then(|t| held::board_copy(&st, t));
            Plan {
                target,
                replaces_copy,
                from: st.tree.path(ino),
                to: st.tree.child_path(newparent, newname),
                src_on_board: src.on_board && !src.local_only,
                src_local: src.local_only,
                is_dir: src.kind == EntryKind::Dir,
                to_local,
                target_on_board,
                replaces,
            }
        };
        let saved_from_scratch = plan.src_local && !plan.to_local && !plan.is_dir;
        match (plan.src_on_board, plan.to_local) {
            (true, true) => {
                // An editor's backup (vim: f -> f~): the board keeps the file
                // under its name until the new version replaces it.
                self.loaded(ino).await?;
                let mut st = self.lock();
                let copy = held::board_copy(&st, ino);
                st.contents.edit(ino);
                st.file.edit(ino, |f| f.edits += 1);
                let board_had = st
                    .file
                    .of(ino)
                    .seen
                    .or_else(|| st.tree.get(ino).map(|n| (n.size, n.board_mtime)));
                if let Some(had) = board_had {
                    st.shadowed.insert((parent, name.to_string()), (had, copy));
                }
                if let Some(n) = st.tree.get_mut(ino) {
                    n.local_only = true;
                    n.on_board = false;
                }
            }
            (true, false) => {
                self.guard.check(&self.board).await?;
                if plan.is_dir && plan.target_on_board {
                    self.board.rmdir(&plan.to).await?;
                }
                match (plan.replaces, plan.target) {
                    // A file written under another name and renamed over
                    // one the mount read (sed -i): the board's copy, if it
                    // changed since, is kept.
                    (Some(Base::Was(size, mtime)), Some(t)) if !plan.is_dir => {
                        let written = self
                            .board
                            .rename_onto(&plan.from, &plan.to, (size, mtime))
                            .await?;
                        if let crate::board::Written::Beside {
                            name: beside,
                            mtime,
                            target: now,
                        } = written
                        {
                            return Err(self.renamed_beside(t, ino, &plan.to, beside, mtime, now));
                        }
                    }
                    _ => self.board.rename(&plan.from, &plan.to).await?,
                }
            }
            // Not on the board yet, or staying local: nothing to tell it
            // now. A scratch file (gedit's) saved under a real name is sent
            // as a closed file is, below.
            _ => {
                let mut st = self.lock();
                if saved_from_scratch {
                    // Even empty: it replaces what the board has.
                    st.contents.edit(ino);
                    st.file.edit(ino, |f| f.edits += 1);
                }
                if !plan.to_local
                    && let Some(n) = st.tree.get_mut(ino)
                {
                    n.local_only = false;
                }
                if !plan.to_local
                    && !plan.is_dir
                    && let Some(b) = plan.replaces
                {
                    st.file.edit(ino, |f| f.base = Some(b));
                    match plan.replaces_copy {
                        Some(c) => st.file.edit(ino, |f| f.was = Some(c)),
                        None => st.file.edit(ino, |f| f.was = None),
                    }
                }
            }
        }
        let queued = {
            let mut st = self.lock();
            st.namespace += 1;
            let mut moved: Vec<Ino> = st.tree.descendants(ino);
            moved.push(ino);
            moved.retain(|&i| st.contents.is_dirty(i));
            let before: Vec<String> = moved.iter().map(|&i| st.tree.path(i)).collect();
            if let Some(old) = st.tree.lookup(newparent, newname)
                && old != ino
            {
                forget(&mut st, old);
            }
            st.tree.rename(ino, newparent, newname);
            if let Some(j) = self.journal() {
                for (&i, old) in moved.iter().zip(before) {
                    j.rename(&old, &st.tree.path(i));
                }
                if plan.replaces.is_some() && moved.contains(&ino) {
                    // Journaled as new: now it replaces what the board has.
                    self.keep(&st, ino)?;
                }
            }
            self.save_attrs(&st);
            if !saved_from_scratch {
                return Ok(());
            }
            // Like a close: journaled, queued, and waited for up to the close
            // wait; a conflict or an error the board gives in that time is the
            // rename's.
            self.queue(&mut st, ino)?
        };
        // Uploads of the renamed file wait for the rename's end.
        drop(moving);
        let Some(outcome) = queued else {
            return self.upload(ino).await;
        };
        match tokio::time::timeout(self.opts.close_wait, outcome).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) | Err(_) => Ok(()),
        }
    }
}

impl Core {
    /// A rename that would have replaced `target`, changed on the board
    /// behind the mount: the board put `ino` beside it instead.
    fn renamed_beside(
        &self,
        target: Ino,
        ino: Ino,
        to: &str,
        beside: String,
        mtime: i64,
        now: (u64, i64),
    ) -> Error {
        let mut st = self.lock();
        st.namespace += 1;
        let name = super::files::conflict_noted(&mut st, to, &beside);
        if let Some(parent) = st.tree.get(target).map(|n| n.parent) {
            if let Some(old) = st.tree.lookup(parent, &name)
                && old != ino
            {
                forget(&mut st, old);
                st.tree.remove(old);
            }
            st.tree.rename(ino, parent, &name);
        }
        if let Some(n) = st.tree.get_mut(ino) {
            n.board_mtime = mtime;
        }
        self.board_kept(&mut st, target, to, now);
        self.changed(&st, target);
        self.save_attrs(&st);
        Error::Conflict {
            path: to.to_string(),
            beside,
        }
    }
}

struct Plan {
    /// What the rename replaces in the mount, if anything.
    target: Option<Ino>,
    from: String,
    to: String,
    src_on_board: bool,
    src_local: bool,
    is_dir: bool,
    to_local: bool,
    target_on_board: bool,
    replaces: Option<Base>,
    /// The board's copy of what it replaces, if the mount holds it.
    replaces_copy: Option<bytes::Bytes>,
}

/// Drops what the cache holds for a file that is gone.
fn forget(st: &mut State, ino: Ino) {
    st.contents.forget(ino);
    st.file.forget(ino);
}
