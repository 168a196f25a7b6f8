//! Operations on names: mkdir, unlink, rmdir, rename. They reach the board
//! at once (a rename or removal is not deferred), except for names that stay
//! local and files the board has not had yet.

use super::*;

impl Core {
    pub fn mkdir(&self, parent: Ino, name: &std::ffi::OsStr, mode: u32) -> Result<Attr> {
        let name = self.check_name(name)?;
        let mut st = self.lock();
        if st.tree.lookup(parent, name).is_some() {
            return Err(Error::Os {
                errno: libc::EEXIST,
                what: name.into(),
            });
        }
        let path = st.tree.child_path(parent, name);
        let local = self.is_local_only(name) || st.tree.get(parent).is_some_and(|p| p.local_only);
        if !local {
            self.block(self.board.mkdir(&path))?;
        }
        let mut n = Node::new(parent, name, Kind::Dir);
        n.on_board = !local;
        n.local_only = local;
        n.mode = Some(mode & 0o7777);
        n.listed = Some(Instant::now());
        let ino = st.tree.insert(n);
        self.save_attrs(&st);
        self.attr(&st, ino)
    }

    pub fn unlink(&self, parent: Ino, name: &std::ffi::OsStr) -> Result<()> {
        let name = utf8(name)?;
        let mut st = self.lock();
        let ino = st
            .tree
            .lookup(parent, name)
            .ok_or_else(|| Error::NotFound(name.into()))?;
        let n = self.node(&st, ino)?;
        if n.kind == Kind::Dir {
            return Err(Error::Os {
                errno: libc::EISDIR,
                what: name.into(),
            });
        }
        if n.on_board && !n.local_only {
            let path = st.tree.path(ino);
            match self.block(self.board.remove(&path)) {
                Ok(()) | Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(j) = self.journal() {
            j.remove(&st.tree.path(ino));
        }
        st.contents.forget(ino);
        st.bases.remove(&ino);
        st.tree.remove(ino);
        self.save_attrs(&st);
        Ok(())
    }

    pub fn rmdir(&self, parent: Ino, name: &std::ffi::OsStr) -> Result<()> {
        let name = utf8(name)?;
        let mut st = self.lock();
        let ino = self.child(&mut st, parent, name)?;
        self.refresh(&mut st, ino);
        let n = self.node(&st, ino)?;
        if n.kind != Kind::Dir {
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
        if n.on_board && !n.local_only {
            self.block(self.board.rmdir(&st.tree.path(ino)))?;
        }
        st.tree.remove(ino);
        self.save_attrs(&st);
        Ok(())
    }

    /// rename(2), replacing a target like POSIX. `noreplace`: fail with
    /// EEXIST instead (what `mv` asks for first).
    pub fn rename(
        &self,
        parent: Ino,
        name: &std::ffi::OsStr,
        newparent: Ino,
        newname: &std::ffi::OsStr,
        noreplace: bool,
    ) -> Result<()> {
        let name = utf8(name)?;
        let newname = self.check_name(newname)?;
        let mut st = self.lock();
        let ino = st
            .tree
            .lookup(parent, name)
            .ok_or_else(|| Error::NotFound(name.into()))?;
        let src = self.node(&st, ino)?.clone();
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
            let t = self.node(&st, t)?;
            match (src.kind, t.kind) {
                (Kind::File, Kind::Dir) => {
                    return Err(Error::Os {
                        errno: libc::EISDIR,
                        what: newname.into(),
                    });
                }
                (Kind::Dir, Kind::File) => {
                    return Err(Error::Os {
                        errno: libc::ENOTDIR,
                        what: newname.into(),
                    });
                }
                (Kind::Dir, Kind::Dir) if !t.children.is_empty() => {
                    return Err(Error::Os {
                        errno: libc::ENOTEMPTY,
                        what: newname.into(),
                    });
                }
                _ => {}
            }
        }
        let from = st.tree.path(ino);
        let to = st.tree.child_path(newparent, newname);
        let to_local =
            self.is_local_only(newname) || st.tree.get(newparent).is_some_and(|p| p.local_only);
        let target_on_board = target
            .and_then(|t| st.tree.get(t))
            .is_some_and(|t| t.on_board && !t.local_only);
        let src_on_board = src.on_board && !src.local_only;
        match (src_on_board, to_local) {
            (true, true) => {
                // An editor's backup (vim: f -> f~): the board keeps the file
                // under its name until the new version replaces it.
                self.load_contents(&mut st, ino)?;
                st.contents.edit(ino);
                if let Some(n) = st.tree.get_mut(ino) {
                    n.local_only = true;
                    n.on_board = false;
                }
            }
            (true, false) => {
                if src.kind == Kind::Dir && target_on_board {
                    self.block(self.board.rmdir(&to))?;
                }
                self.block(self.board.rename(&from, &to))?;
            }
            (false, false) if src.local_only && src.kind == Kind::File => {
                // Saved through a scratch name (gedit): the file reaches the
                // board under its real name now, atomically.
                self.load_contents(&mut st, ino)?;
                let data = st.contents.get(ino).cloned().unwrap_or_default();
                let parent_on_board = st.tree.get(newparent).is_some_and(|p| p.on_board);
                let mtime = self.block(self.board.put(&to, &data, !parent_on_board))?;
                st.contents.mark_clean(ino);
                if let Some(n) = st.tree.get_mut(ino) {
                    n.local_only = false;
                    n.on_board = true;
                    n.board_mtime = mtime;
                }
            }
            // Not on the board yet, or staying local: nothing to tell it.
            _ => {
                if !to_local && let Some(n) = st.tree.get_mut(ino) {
                    n.local_only = false;
                }
            }
        }
        let mut moved: Vec<Ino> = st.tree.descendants(ino);
        moved.push(ino);
        moved.retain(|&i| st.contents.is_dirty(i));
        let before: Vec<String> = moved.iter().map(|&i| st.tree.path(i)).collect();
        st.tree.rename(ino, newparent, newname);
        if let Some(j) = self.journal() {
            for (&i, old) in moved.iter().zip(before) {
                j.rename(&old, &st.tree.path(i));
            }
        }
        self.save_attrs(&st);
        Ok(())
    }
}
