//! The user's own directories (runtime sockets, state, journals, logs):
//! made 0700, and used only if they are a real directory (not a symlink)
//! owned by us and writable by nobody else, as tmux checks its socket
//! directory. A directory another user made first in /tmp would let them
//! replace our socket (forged answers, stolen keystrokes) or read our logs.

use crate::error::{Error, Result};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

fn uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

/// `path` made if missing (its parents as usual), then checked and
/// narrowed to 0700.
pub fn dir(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(unsafe_dir(path, &format!("cannot create it ({e})"))),
    }
    check(path, false)?;
    // Through a descriptor that cannot follow a symlink swapped in since.
    let d = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| unsafe_dir(path, &e.to_string()))?;
    let m = d.metadata()?;
    if m.uid() != uid() {
        return Err(unsafe_dir(path, &format!("it belongs to uid {}", m.uid())));
    }
    if m.mode() & 0o777 != 0o700 {
        d.set_permissions(std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Ok if `path` is a directory we may trust: ours (or, when only reading
/// from it, root's), not a symlink, and writable by no one else.
pub fn check(path: &Path, root_too: bool) -> Result<()> {
    let m = std::fs::symlink_metadata(path).map_err(|e| unsafe_dir(path, &e.to_string()))?;
    if m.file_type().is_symlink() || !m.is_dir() {
        return Err(unsafe_dir(path, "it is not a plain directory"));
    }
    if m.uid() != uid() && !(root_too && m.uid() == 0) {
        return Err(unsafe_dir(path, &format!("it belongs to uid {}", m.uid())));
    }
    if m.mode() & 0o022 != 0 {
        return Err(unsafe_dir(
            path,
            &format!("other users may write in it (mode {:o})", m.mode() & 0o7777),
        ));
    }
    Ok(())
}

fn unsafe_dir(path: &Path, why: &str) -> Error {
    Error::Setup(crate::error::Setup::UnsafeDir {
        path: path.to_path_buf(),
        why: why.to_string(),
    })
}

/// Opens `path` for appending, 0600 (narrowed if it was wider), never
/// through a symlink.
pub fn append(path: &Path) -> std::io::Result<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    if f.metadata()?.mode() & 0o077 != 0 {
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_directory_is_made_0700_and_a_foreign_or_open_one_refused() {
        let base = tempfile::tempdir().expect("tmp");
        let d = base.path().join("mine");
        dir(&d).expect("made");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").mode() & 0o777;
        assert_eq!(mode(&d), 0o700);
        // Ours but opened up by someone careless: narrowed.
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        dir(&d).expect("narrowed");
        assert_eq!(mode(&d), 0o700);
        // Writable by others: anything in it may be theirs.
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        assert!(dir(&d).is_err());
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&d, &link).expect("symlink");
        assert!(dir(&link).is_err());
        assert!(check(&link, true).is_err());
    }
}
