//! The mount daemon's local socket: `unmount`, `flush` and `status` from
//! other processes of the same user. Mode 0600 in a 0700 directory that
//! `private` checks is ours (a directory another user made first in /tmp
//! would let them put their own socket there), named from the mountpoint so
//! that a command given the mountpoint finds it. A client checks the same
//! directory and that the daemon answering runs as us (or root), so it
//! never sends keys to, or believes answers from, another user's process.

use crate::error::{Error, Result};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// `$XDG_RUNTIME_DIR/webrepl-mount`, else `webrepl-mount-UID` in
/// `$TMPDIR` or /tmp, where another user may have made it first: used only
/// once `private` has checked it. If another user holds that name, the
/// private directory [`make_dir`] made in its place (recorded in this
/// user's state directory, where the clients find it).
pub fn dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) => PathBuf::from(d).join("webrepl-mount"),
        None => {
            let fixed = fixed_tmp();
            if taken(&fixed)
                && let Some(d) = recorded()
            {
                return d;
            }
            fixed
        }
    }
}

/// `page-PORT.html` in the runtime directory: a 0600 page that redirects
/// to the page's address with its token (`web --open` hands the browser
/// this file, never the token on a command line). Whoever serves the page
/// removes it when the page ends.
pub fn page_redirect_file(url: &str) -> PathBuf {
    let port: String = url
        .split('/')
        .nth(2)
        .and_then(|h| h.rsplit(':').next())
        .unwrap_or("page")
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    dir().join(format!("page-{port}.html"))
}

/// Writes [`page_redirect_file`] for `url`, replaced atomically.
pub fn page_redirect(url: &str) -> Result<PathBuf> {
    use std::io::Write;
    let dir = make_dir()?;
    let quoted = url
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;");
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
    write!(
        tmp,
        "<!DOCTYPE html>\n<meta charset=\"utf-8\">\n<meta http-equiv=\"refresh\" content=\"0;url={quoted}\">\n\
         <title>webrepl-mount</title>\n<p><a href=\"{quoted}\">Open the board's page</a></p>\n"
    )?;
    let path = page_redirect_file(url);
    tmp.persist(&path).map_err(|e| Error::from(e.error))?;
    Ok(path)
}

fn fixed_tmp() -> PathBuf {
    // SAFETY: getuid cannot fail.
    std::env::temp_dir().join(format!("webrepl-mount-{}", unsafe { libc::getuid() }))
}

/// Made by someone else (or otherwise not ours to trust).
fn taken(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok() && crate::private::check(path, false).is_err()
}

/// Where the name of a runtime directory made in place of a taken one is
/// kept: `$XDG_STATE_HOME/webrepl-mount/runtime-dir` (or under
/// `~/.local/state`), in a directory only this user can write.
fn record_file() -> Option<PathBuf> {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .map(|b| b.join("webrepl-mount").join("runtime-dir"))
}

/// The recorded directory, if it is still a private directory of ours.
fn recorded() -> Option<PathBuf> {
    let file = record_file()?;
    crate::private::check(file.parent()?, false).ok()?;
    let d = PathBuf::from(std::fs::read_to_string(&file).ok()?.trim_end());
    let m = std::fs::symlink_metadata(&d).ok()?;
    (crate::private::check(&d, false).is_ok() && m.mode() & 0o777 == 0o700).then_some(d)
}

/// The runtime directory made (or found) and checked, for a daemon about
/// to listen in it. When another user made `/tmp/webrepl-mount-UID` first,
/// a fresh private directory beside it (mkdtemp, as ssh-agent does) takes
/// its place, and its name is recorded for the clients.
pub fn make_dir() -> Result<PathBuf> {
    let d = dir();
    if std::env::var_os("XDG_RUNTIME_DIR").is_some() || !taken(&d) {
        crate::private::dir(&d)?;
        return Ok(d);
    }
    let refused = crate::private::dir(&d).err();
    let made = (|| {
        let file = record_file()?;
        crate::private::dir(file.parent()?).ok()?;
        let fresh = tempfile::Builder::new()
            .prefix(&format!("{}.", d.file_name()?.to_string_lossy()))
            .tempdir_in(d.parent()?)
            .ok()?
            .keep();
        crate::private::dir(&fresh).ok()?;
        let tmp = file.with_extension("new");
        let _ = std::fs::remove_file(&tmp);
        let mut f = crate::private::append(&tmp).ok()?;
        std::io::Write::write_all(&mut f, fresh.as_os_str().as_encoded_bytes()).ok()?;
        std::fs::rename(&tmp, &file).ok()?;
        Some(fresh)
    })();
    match made {
        Some(fresh) => {
            tracing::warn!(
                "{} belongs to another user: using {} instead (recorded in {})",
                d.display(),
                fresh.display(),
                record_file()
                    .map(|f| f.display().to_string())
                    .unwrap_or_default()
            );
            Ok(fresh)
        }
        None => Err(refused.unwrap_or_else(|| {
            Error::Setup(crate::error::Setup::NoPrivateDir {
                path: d.to_path_buf(),
            })
        })),
    }
}

/// The mountpoint as it names its socket: its directory resolved, itself
/// not (a mount whose daemon died cannot be resolved: "Transport endpoint
/// is not connected").
fn key(mountpoint: &Path) -> PathBuf {
    let abs = std::path::absolute(mountpoint).unwrap_or_else(|_| mountpoint.to_path_buf());
    match (abs.parent().map(Path::canonicalize), abs.file_name()) {
        (Some(Ok(dir)), Some(name)) => dir.join(name),
        _ => abs,
    }
}

/// The socket's name for the mount at `mountpoint`.
fn socket_name(mountpoint: &Path) -> String {
    let canonical = key(mountpoint);
    // FNV-1a: a stable short name (socket paths are limited to 107 bytes).
    let mut h: u64 = 0xcbf29ce484222325;
    for b in canonical.as_os_str().as_encoded_bytes() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}.sock")
}

/// The socket of the mount at `mountpoint`: in this environment's runtime
/// directory, or, if none is there, where the daemon recorded it (a
/// daemon started with another XDG_RUNTIME_DIR, a desktop session's mount
/// seen from an ssh login).
pub fn socket_path(mountpoint: &Path) -> PathBuf {
    let name = socket_name(mountpoint);
    let own = dir().join(&name);
    // A socket a killed daemon left here must not hide the live one that
    // a mount from another login recorded: the one that answers wins.
    // Another user's directory is never knocked at: its socket is
    // returned as before, for the client's owner check to refuse.
    let answers = |p: &Path| std::os::unix::net::UnixStream::connect(p).is_ok();
    let ours = own
        .parent()
        .is_some_and(|d| crate::private::check(d, false).is_ok());
    if own.exists() && (!ours || answers(&own)) {
        return own;
    }
    match recorded_socket(&name) {
        Some(r) if r != own && (answers(&r) || !own.exists()) => r,
        _ => own,
    }
}

/// Where daemons record their sockets: a file per socket name holding its
/// path, beside [`record_file`], in a directory only this user can write.
fn sockets_record_dir() -> Option<PathBuf> {
    Some(record_file()?.parent()?.join("sockets"))
}

/// The recorded socket `name`, if it is there, in a private directory of
/// ours (the daemon's peer is checked again on connecting).
fn recorded_socket(name: &str) -> Option<PathBuf> {
    let records = sockets_record_dir()?;
    crate::private::check(&records, false).ok()?;
    let p = PathBuf::from(std::fs::read_to_string(records.join(name)).ok()?.trim_end());
    let d = p.parent()?;
    let m = std::fs::symlink_metadata(d).ok()?;
    let ok = p.file_name()? == name
        && crate::private::check(d, false).is_ok()
        && m.mode() & 0o777 == 0o700
        && std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_socket());
    ok.then_some(p)
}

/// Records where the socket `path` is, for clients whose runtime
/// directory is another.
fn record_socket(path: &Path) -> Option<()> {
    let records = sockets_record_dir()?;
    crate::private::dir(&records).ok()?;
    let file = records.join(path.file_name()?);
    let tmp = file.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    let mut f = crate::private::append(&tmp).ok()?;
    std::io::Write::write_all(&mut f, path.as_os_str().as_encoded_bytes()).ok()?;
    std::fs::rename(&tmp, &file).ok()
}

/// Listens for the mount at `mountpoint`, replacing a stale socket left by
/// a daemon that died; refuses if a live daemon answers there.
pub async fn listen(mountpoint: &Path) -> Result<(UnixListener, PathBuf)> {
    let path = make_dir()?.join(socket_name(mountpoint));
    if path.exists() {
        if UnixStream::connect(&path).await.is_ok() {
            return Err(Error::Mountpoint(
                crate::error::Mountpoint::AlreadyMounted {
                    at: mountpoint.to_path_buf(),
                },
            ));
        }
        std::fs::remove_file(&path)?;
    }
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    if record_socket(&path).is_none() {
        tracing::debug!("{}: not recorded for other environments", path.display());
    }
    Ok((listener, path))
}

/// Connects to the daemon of the mount at `mountpoint`, saying why not in
/// words that lead to the fix.
pub async fn connect(mountpoint: &Path) -> Result<UnixStream> {
    let path = socket_path(mountpoint);
    let dir = path.parent().map_or_else(dir, Path::to_path_buf);
    if let Err(e) = crate::private::check(&dir, true)
        && std::fs::symlink_metadata(&dir).is_ok()
    {
        return Err(e);
    }
    let at = mountpoint.to_path_buf();
    let s = UnixStream::connect(&path).await.map_err(|e| {
        use crate::error::Mountpoint as M;
        Error::Mountpoint(match e.kind() {
            std::io::ErrorKind::PermissionDenied => M::OtherUsers {
                at: at.clone(),
                socket: path.clone(),
            },
            std::io::ErrorKind::ConnectionRefused if stale(mountpoint) => {
                M::DaemonGone { at: at.clone() }
            }
            _ if stale(mountpoint) => M::Dead { at: at.clone() },
            _ => M::NotMounted { at: at.clone() },
        })
    })?;
    let peer = s.peer_cred()?.uid();
    // SAFETY: getuid cannot fail.
    if peer != unsafe { libc::getuid() } && peer != 0 {
        return Err(Error::Mountpoint(crate::error::Mountpoint::ServedBy {
            at,
            socket: path,
            uid: peer,
        }));
    }
    Ok(s)
}

/// A mount left by a daemon that died: the kernel still has it, and any
/// access fails with ENOTCONN.
pub fn stale(mountpoint: &Path) -> bool {
    let dead = |e: &std::io::Error| e.raw_os_error() == Some(libc::ENOTCONN);
    match std::fs::metadata(mountpoint) {
        Err(e) => dead(&e),
        // The kernel answers stat from its attribute cache for a while
        // after the daemon died (`unmount /tmp/m` failed where a moment
        // later it worked); opening the directory always asks the daemon.
        Ok(m) if m.is_dir() => std::fs::read_dir(mountpoint).is_err_and(|e| dead(&e)),
        Ok(_) => false,
    }
}

/// Sends one command to the daemon at `mountpoint` and returns its answer
/// lines, read until the daemon closes the connection.
pub async fn ask(mountpoint: &Path, command: &str) -> Result<Vec<String>> {
    let mut s = connect(mountpoint).await?;
    s.write_all(format!("{command}\n").as_bytes()).await?;
    let mut lines = BufReader::new(s).lines();
    let mut out = Vec::new();
    while let Some(l) = lines.next_line().await? {
        out.push(l);
    }
    Ok(out)
}

/// `ask`, with each line handed to `each` as it comes (a streaming
/// answer: a program's output while it runs).
pub async fn ask_each(
    mountpoint: &Path,
    command: &str,
    mut each: impl FnMut(&str) -> Result<()>,
) -> Result<()> {
    let mut s = connect(mountpoint).await?;
    s.write_all(format!("{command}\n").as_bytes()).await?;
    let mut lines = BufReader::new(s).lines();
    while let Some(l) = lines.next_line().await? {
        each(&l)?;
    }
    Ok(())
}

/// Reads the command line a client sent.
pub async fn read_command(s: &mut BufReader<UnixStream>) -> Option<String> {
    let mut line = String::new();
    s.read_line(&mut line).await.ok()?;
    Some(line.trim().to_string())
}
