//! File commands on a board, as mpremote users know them: `rm`, `mkdir`,
//! `rmdir`, `mv`, `cat`, `df`, `touch`, `sha256sum`, `tree`. An argument is
//! `HOST[:PORT]:PATH` (`NAME:PATH`, `URL:PATH`), as for `cp`, or a path in
//! a mount: there the mount's files are used, as `cp` does, so the mount's
//! cache and journal see the change.

use super::{human, mounted};
use crate::board::{self, Base, Board, EntryKind};
use crate::connection::Conn;
use crate::error::{Error, Kind, Result};
use crate::remote::{board_and_path, other_reading, remote_arg, split_remote};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where an argument points.
enum Place {
    /// A board (as the command line named it) and a normalized path on it.
    Board(String, String),
    /// A path in a mount.
    Local(PathBuf),
}

fn place(arg: &str) -> Result<Place> {
    if split_remote(arg).is_some() {
        let (b, p) = remote_arg(arg)?;
        return Ok(Place::Board(b, board::normalize(&p)?));
    }
    // A relative name with no `:` is a file here when here is in a mount
    // (`cd mnt; webrepl-mount cat nosuch`), existing or not.
    let here_mounted = || {
        std::env::current_dir()
            .ok()
            .and_then(|d| mounted(&d.to_string_lossy()).ok().flatten())
            .is_some()
    };
    // The path acted on is the one resolved lexically, checked to be in
    // the mount: `MNT/../x` or `../x` from the mountpoint is no board's.
    match super::mount_path(arg)? {
        Some((_, here)) => Ok(Place::Local(here)),
        None if !arg.contains(':') && here_mounted() => {
            let abs = std::path::absolute(arg).map_err(|e| Error::local(arg, e))?;
            Ok(Place::Local(super::in_mount(arg, &abs)?.1))
        }
        // `NAME/`: the board boards.toml names, as for every command.
        None if arg.strip_suffix('/').is_some_and(|n| {
            !n.contains(['/', ':']) && matches!(crate::boards::find(n), Ok(Some(_)))
        }) =>
        {
            Ok(Place::Board(
                arg.trim_end_matches('/').to_string(),
                "/".to_string(),
            ))
        }
        None => Err(Error::Path(crate::error::BadPath::NoBoardPath {
            arg: arg.to_string(),
        })),
    }
}

/// The sessions a command opened, one per board, closed at the end.
pub(super) struct Boards<'a> {
    conn: &'a Conn,
    open: Vec<(String, Board)>,
}

impl<'a> Boards<'a> {
    pub(super) fn new(conn: &'a Conn) -> Self {
        Boards {
            conn,
            open: Vec::new(),
        }
    }

    pub(super) async fn get(&mut self, name: &str) -> Result<Board> {
        if let Some((_, b)) = self.open.iter().find(|(n, _)| n == name) {
            return Ok(b.clone());
        }
        let b = self.conn.connect(name).await?;
        self.open.push((name.to_string(), b.clone()));
        Ok(b)
    }

    pub(super) async fn close<T>(self, r: Result<T>) -> Result<T> {
        for (_, b) in &self.open {
            b.session().close().await;
        }
        r
    }
}

/// Runs `each` on every argument in turn, with the boards they name. As
/// coreutils do, an operand's error is said and the next one goes ahead;
/// the command then exits 1, as coreutils' does on a mount path. Trouble
/// with the board itself (unreachable, password, link lost, a closed
/// stdout) ends it with that trouble's code.
async fn for_each<F>(args: &[String], conn: &Conn, each: F) -> Result<()>
where
    F: AsyncFnMut(&mut Boards<'_>, &str, Place) -> Result<()>,
{
    for_each_with(args, conn, not_dir, false, each).await
}

/// `for_each`, where `slash_file` says what `FILE/` is to this command
/// (ENOTDIR to most; "File exists" to mkdir, as coreutils says it), and
/// `no_match_ok` whether a pattern that matches nothing is no error (rm -f).
async fn for_each_with<F>(
    args: &[String],
    conn: &Conn,
    slash_file: fn(&str) -> Error,
    no_match_ok: bool,
    mut each: F,
) -> Result<()>
where
    F: AsyncFnMut(&mut Boards<'_>, &str, Place) -> Result<()>,
{
    let mut boards = Boards::new(conn);
    let mut failed = Failed::default();
    'args: for arg in args {
        let place = place(arg);
        let local_glob = match &place {
            Ok(Place::Local(p)) => local_matching(p, arg),
            _ => None,
        };
        let r = match place {
            Ok(Place::Local(_)) if local_glob.is_some() => match local_glob {
                Some(Ok(found)) => {
                    for (shown, p) in found {
                        let r = match each(&mut boards, &shown, Place::Local(p)).await {
                            Err(e) => Err(super::explained(e, &shown).await),
                            r => r,
                        };
                        if !failed.note(r) {
                            break 'args;
                        }
                    }
                    Ok(())
                }
                Some(Err(Error::NotFound(_))) if no_match_ok => Ok(()),
                Some(Err(e)) => Err(super::explained(e, arg).await),
                None => Ok(()),
            },
            Ok(Place::Board(name, path)) if is_glob(&path) => {
                match expand(&mut boards, arg, &name, &path).await {
                    Ok(paths) => {
                        for p in paths {
                            let shown = format!("{name}:{p}");
                            let r = each(&mut boards, &shown, Place::Board(name.clone(), p)).await;
                            if !failed.note(r) {
                                break 'args;
                            }
                        }
                        Ok(())
                    }
                    Err(Error::NotFound(_)) if no_match_ok => Ok(()),
                    Err(e) => Err(e),
                }
            }
            // `kb:/x/` is a directory, as the kernel takes `x/`.
            Ok(Place::Board(name, path)) if arg.ends_with('/') && path != "/" => {
                match boards.get(&name).await {
                    Ok(b) => match b.stat(&path).await {
                        Ok(Some(st)) if st.kind == EntryKind::File => Err(slash_file(arg)),
                        Ok(_) => each(&mut boards, arg, Place::Board(name, path)).await,
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                }
            }
            // `MNT/x/` is a directory too: the kernel would say so, had
            // the path kept its slash.
            Ok(Place::Local(p))
                if arg.ends_with('/') && std::fs::metadata(&p).is_ok_and(|m| !m.is_dir()) =>
            {
                Err(slash_file(arg))
            }
            Ok(p) => {
                let here = matches!(p, Place::Local(_));
                match each(&mut boards, arg, p).await {
                    Err(e) if here => Err(super::explained(e, arg).await),
                    r => r,
                }
            }
            Err(e) => Err(e),
        };
        if !failed.note(r.map_err(|e| other_reading(arg, e))) {
            break;
        }
    }
    boards.close(failed.result()).await
}

/// The errors of a command with several operands.
#[derive(Default)]
pub(crate) struct Failed {
    /// Whether an operand's error was said.
    any: bool,
    /// An error that ends the command, not yet said.
    fatal: Option<Error>,
}

impl Failed {
    /// False when the command must stop.
    pub(crate) fn note(&mut self, r: Result<()>) -> bool {
        let Err(e) = r else { return true };
        // No password and none to be asked, a bad password file: the
        // command's trouble, not an operand's (exit 2 for every command).
        if !matches!(e.kind(), Kind::NotFound | Kind::Os(_) | Kind::Invalid)
            || matches!(e, Error::Setup(_))
        {
            self.fatal = Some(e);
            return false;
        }
        // One line: a board's name in it must not make more, nor reach the
        // terminal as an escape sequence.
        let _ = writeln!(
            std::io::stderr(),
            "webrepl-mount: {}",
            board::shown(&e.to_string())
        );
        self.any = true;
        true
    }

    /// Whether nothing failed yet.
    pub(crate) fn clean(&self) -> bool {
        !self.any && self.fatal.is_none()
    }

    /// The command's outcome: the fatal error (said by main), or exit 1
    /// with no words (each was said already), as coreutils end.
    pub(crate) fn result(self) -> Result<()> {
        match (self.fatal, self.any) {
            (Some(e), _) => Err(e),
            (None, true) => Err(Error::Remote(Kind::Io, String::new())),
            (None, false) => Ok(()),
        }
    }
}

/// A quoted pattern in the last part of a board path (`'HOST:/lib/*.py'`),
/// matched on the board's listing as the shell would match local names.
pub(crate) fn is_glob(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|l| l.contains(['*', '?', '[']))
}

/// A quoted pattern in the last part of a path in a mount (`'MNT/*.py'`,
/// or a mounted board's `'HOST:/*.py'` made the mount's), matched on the
/// mount's names as on the board's: each match with the argument it is
/// shown as, sorted. `None` when `arg` is no pattern, or names a file
/// that is there as written (that file is meant).
pub(crate) fn local_matching(p: &Path, arg: &str) -> Option<Result<Vec<(String, PathBuf)>>> {
    if !is_glob(arg) || std::fs::symlink_metadata(p).is_ok() {
        return None;
    }
    let (head, pattern) = match arg.rsplit_once('/') {
        Some((h, l)) => (format!("{h}/"), l),
        None => (String::new(), arg),
    };
    Some((|| {
        if head.contains(['*', '?', '[']) {
            return Err(Error::Path(crate::error::BadPath::PatternInDir {
                arg: arg.to_string(),
            }));
        }
        let dir = p.parent().unwrap_or(p);
        let read = std::fs::read_dir(dir).map_err(|e| local_error(e, arg))?;
        let mut found = Vec::new();
        for e in read {
            let e = e.map_err(|e| local_error(e, arg))?;
            let name = e.file_name();
            let Some(leaf) = name.to_str() else { continue };
            // As the shell: a leading dot is matched only by a dot.
            if (!leaf.starts_with('.') || pattern.starts_with('.'))
                && crate::cache::patterns::matches(pattern, leaf)
            {
                found.push((format!("{head}{leaf}"), e.path()));
            }
        }
        found.sort();
        if found.is_empty() {
            return Err(Error::NotFound(format!("{arg} (no match)")));
        }
        Ok(found)
    })())
}

async fn expand(boards: &mut Boards<'_>, arg: &str, name: &str, path: &str) -> Result<Vec<String>> {
    let b = boards.get(name).await?;
    matching(&b, arg, path).await
}

/// The board paths a pattern `path` (the argument `arg`) matches, sorted;
/// none is an error, as a shell with failglob says it.
pub(crate) async fn matching(b: &Board, arg: &str, path: &str) -> Result<Vec<String>> {
    let (dir, pattern) = (board::parent(path), path.rsplit('/').next().unwrap_or(path));
    if is_glob(dir) || dir.contains(['*', '?', '[']) {
        return Err(Error::Path(crate::error::BadPath::PatternInDir {
            arg: arg.to_string(),
        }));
    }
    let mut found: Vec<String> = b
        .list(dir, false)
        .await?
        .into_iter()
        .map(|e| e.path)
        .filter(|p| {
            let leaf = p.rsplit('/').next().unwrap_or(p);
            // As the shell: a leading dot is matched only by a dot. Our
            // own files at the root are never matched: named only.
            (!leaf.starts_with('.') || pattern.starts_with('.'))
                && !(dir == "/" && crate::cache::identity::hidden(leaf))
                && crate::cache::patterns::matches(pattern, leaf)
        })
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(Error::NotFound(format!("{arg} (no match)")));
    }
    Ok(found)
}

async fn must_stat(b: &Board, path: &str) -> Result<board::Stat> {
    b.stat(path)
        .await?
        .ok_or_else(|| Error::NotFound(path.to_string()))
}

/// `verbose` (`-v`) prints coreutils' `removed 'x'` for each one removed.
pub async fn rm(
    args: &[String],
    recursive: bool,
    force: bool,
    verbose: bool,
    conn: &Conn,
) -> Result<()> {
    let said = |what: &str, shown: &str| -> Result<()> {
        if verbose {
            writeln!(
                std::io::stdout().lock(),
                "removed {what}'{}'",
                board::shown(shown)
            )?;
        }
        Ok(())
    };
    // As coreutils' rm -r: `.` and `..` are refused before anything in
    // them is touched (it would empty the directory, then fail).
    let mut failed = Failed::default();
    let mut rest = Vec::new();
    for arg in args {
        if recursive && dot_or_dotdot(arg) {
            failed.note(Err(Error::Refused(crate::error::Refused::DotOrDotDot {
                arg: arg.clone(),
            })));
        } else {
            rest.push(arg.clone());
        }
    }
    // -f: a pattern that matches nothing is as a missing name, silent.
    let r = for_each_with(
        &rest,
        conn,
        not_dir,
        force,
        async |boards, arg, place| match place {
            Place::Board(_, path) if path == "/" => Err(root(arg)),
            Place::Local(p) if is_mountpoint(&p) => Err(root(arg)),
            Place::Local(p) => {
                let r = match std::fs::symlink_metadata(&p) {
                    Ok(m) if m.is_dir() && !recursive => return Err(is_dir(arg)),
                    Ok(m) if m.is_dir() => return remove_tree_here(&p, arg, &said),
                    Ok(_) => std::fs::remove_file(&p),
                    Err(e) => Err(e),
                };
                match r {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && force => Ok(()),
                    r => {
                        r.map_err(|e| local_error(e, arg))?;
                        said("", arg)
                    }
                }
            }
            Place::Board(name, path) => {
                let b = boards.get(&name).await?;
                let Some(st) = b.stat(&path).await? else {
                    return if force {
                        Ok(())
                    } else {
                        Err(Error::NotFound(path))
                    };
                };
                if st.kind == EntryKind::File {
                    b.remove(&path).await?;
                    return said("", arg);
                }
                if !recursive {
                    return Err(is_dir(arg));
                }
                b.remove_tree(&path, |p, dir| {
                    said(if dir { "directory " } else { "" }, &format!("{name}:{p}"))
                })
                .await?;
                said("directory ", arg)
            }
        },
    )
    .await;
    r?;
    failed.result()
}

/// Whether an argument's last part, local or on a board, is `.` or `..`.
fn dot_or_dotdot(arg: &str) -> bool {
    let path = split_remote(arg).map_or_else(|| arg.to_string(), |(_, p)| p);
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    last == "." || last == ".."
}

/// A directory in a mount with what it holds, each said as it goes.
fn remove_tree_here(
    dir: &Path,
    shown: &str,
    said: &dyn Fn(&str, &str) -> Result<()>,
) -> Result<()> {
    let read = std::fs::read_dir(dir).map_err(|e| local_error(e, shown))?;
    for e in read {
        let e = e.map_err(|e| local_error(e, shown))?;
        let inner = format!(
            "{}/{}",
            shown.trim_end_matches('/'),
            e.file_name().to_string_lossy()
        );
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree_here(&e.path(), &inner, said)?;
        } else {
            std::fs::remove_file(e.path()).map_err(|e| local_error(e, &inner))?;
            said("", &inner)?;
        }
    }
    std::fs::remove_dir(dir).map_err(|e| local_error(e, shown))?;
    said("directory ", shown)
}

/// As coreutils' rm refuses `/`: the whole board, our id marker with it,
/// is one typo away (`rm -r kb:`).
fn root(arg: &str) -> Error {
    Error::Refused(crate::error::Refused::RemoveRoot {
        arg: arg.to_string(),
    })
}

fn is_mountpoint(p: &Path) -> bool {
    let Ok(abs) = std::fs::canonicalize(p) else {
        return false;
    };
    matches!(mounted(&abs.to_string_lossy()), Ok(Some(mp)) if std::fs::canonicalize(&mp).is_ok_and(|m| m == abs))
}

fn not_dir(arg: &str) -> Error {
    Error::Os {
        errno: libc::ENOTDIR,
        what: arg.to_string(),
    }
}

fn is_dir(arg: &str) -> Error {
    Error::Invalid(format!(
        "{arg} is a directory (rm -r removes it with what it holds; rmdir an empty one)"
    ))
}

/// coreutils' line for `-v` (stdout), as `mkdir -v` and `rmdir -v` word it.
fn said(verbose: bool, line: std::fmt::Arguments) -> Result<()> {
    if verbose {
        writeln!(std::io::stdout().lock(), "{line}")?;
    }
    Ok(())
}

/// `verbose` (`-v`) says each directory made, as coreutils' mkdir -v.
pub async fn mkdir(args: &[String], parents: bool, verbose: bool, conn: &Conn) -> Result<()> {
    let made = |shown: &str| {
        said(
            verbose,
            format_args!("mkdir: created directory '{}'", board::shown(shown)),
        )
    };
    let local = |r: std::io::Result<()>, arg: &str| match r.map_err(|e| (e.raw_os_error(), e)) {
        Err((Some(errno), _)) if [libc::EEXIST, libc::ENOTDIR, libc::ENOENT].contains(&errno) => {
            Err(cannot_mkdir(arg, errno))
        }
        r => r.map_err(|(_, e)| local_error(e, arg)),
    };
    for_each_with(
        args,
        conn,
        exists,
        false,
        async |boards, arg, place| match place {
            Place::Local(p) if parents => {
                // Each missing one, outermost first, for -v.
                let missing = p
                    .ancestors()
                    .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
                    .count();
                local(std::fs::create_dir_all(&p), arg)?;
                let shown = arg.trim_end_matches('/');
                for up in (0..missing).rev() {
                    made(&shown_up(shown, up))?;
                }
                Ok(())
            }
            Place::Local(p) => {
                local(std::fs::create_dir(p), arg)?;
                made(arg.trim_end_matches('/'))
            }
            Place::Board(name, path) => {
                let b = boards.get(&name).await?;
                // With -v, the parents missing now are said once made.
                let mut missing = Vec::new();
                if verbose && parents {
                    let mut at = path.clone();
                    while at != "/" && matches!(b.stat(&at).await, Ok(None)) {
                        missing.push(at.clone());
                        at = board::parent(&at).to_string();
                    }
                } else if verbose {
                    missing.push(path.clone());
                }
                let r = if parents {
                    b.mkdirs(&path).await
                } else {
                    match b.stat(&path).await {
                        Ok(Some(_)) => return Err(exists(arg)),
                        Ok(None) => b.mkdir(&path).await,
                        Err(e) => Err(e),
                    }
                };
                // The board's -p names the path asked for, whichever part was
                // a file: the path itself is "File exists", a file above it is
                // in the way. Without -p the path was not there.
                match r {
                    Err(Error::Os { errno, .. })
                        if parents
                            && [libc::EEXIST, libc::ENOTDIR].contains(&errno)
                            && matches!(b.stat(&path).await, Ok(Some(_))) =>
                    {
                        Err(exists(arg))
                    }
                    Err(Error::Os { errno, .. })
                        if [libc::EEXIST, libc::ENOTDIR].contains(&errno) =>
                    {
                        Err(cannot_mkdir(arg, libc::ENOTDIR))
                    }
                    Err(Error::Os { errno, .. }) if errno == libc::ENOENT => {
                        Err(cannot_mkdir(arg, libc::ENOENT))
                    }
                    Err(Error::NotFound(_)) => Err(cannot_mkdir(arg, libc::ENOENT)),
                    Err(e) => Err(e),
                    Ok(()) => {
                        let shown = arg.trim_end_matches('/');
                        for (up, _) in missing.iter().enumerate().rev() {
                            made(&shown_up(shown, up))?;
                        }
                        Ok(())
                    }
                }
            }
        },
    )
    .await
}

/// `arg` less its last `up` parts (`kb:/a/b/c`, 1 → `kb:/a/b`), as -v
/// names a parent made on the way.
fn shown_up(arg: &str, up: usize) -> String {
    let mut s = arg;
    for _ in 0..up {
        s = s.rsplit_once('/').map_or(s, |(head, _)| head);
    }
    s.to_string()
}

/// As coreutils' mkdir says it, whether `x` or `x/`.
fn exists(arg: &str) -> Error {
    cannot_mkdir(arg, libc::EEXIST)
}

fn cannot_mkdir(arg: &str, errno: i32) -> Error {
    let why = match errno {
        libc::EEXIST => "File exists",
        libc::ENOTDIR => "Not a directory",
        _ => "No such file or directory",
    };
    Error::Invalid(format!("cannot create directory '{arg}': {why}"))
}

/// `verbose` (`-v`) says each one, as coreutils' rmdir -v.
pub async fn rmdir(args: &[String], verbose: bool, conn: &Conn) -> Result<()> {
    let gone = |arg: &str| {
        said(
            verbose,
            format_args!("rmdir: removing directory, '{}'", board::shown(arg)),
        )
    };
    for_each(args, conn, async |boards, arg, place| match place {
        Place::Local(p) => {
            gone(arg)?;
            std::fs::remove_dir(p).map_err(|e| local_error(e, arg))
        }
        Place::Board(name, path) => {
            if board::normalize(&path)? == "/" {
                return Err(Error::Invalid(format!(
                    "{arg}: the board's root '/' cannot be removed"
                )));
            }
            let b = boards.get(&name).await?;
            if must_stat(&b, &path).await?.kind != EntryKind::Dir {
                return Err(not_dir(arg));
            }
            gone(arg)?;
            b.rmdir(&path).await
        }
    })
    .await
}

/// A mount path's error as the same error on a board path would be
/// (ENOTEMPTY, ENOTDIR: exit 12; an existing name: 2).
pub(super) fn local_error(e: std::io::Error, arg: &str) -> Error {
    match (e.kind(), e.raw_os_error()) {
        (std::io::ErrorKind::NotFound, _) => Error::NotFound(arg.to_string()),
        (_, Some(libc::EEXIST)) => Error::Refused(crate::error::Refused::Exists {
            arg: arg.to_string(),
        }),
        (_, Some(errno)) => Error::Os {
            errno,
            what: arg.to_string(),
        },
        _ => Error::local(arg, e),
    }
}

/// `mv SRC... DST`, within one board (or one mount); into DST when it is a
/// directory, as several sources must be. As coreutils' mv, a source that
/// fails is said and the others are moved.
/// `verbose` (`-v`) says each one moved, as coreutils' mv -v.
pub async fn mv(srcs: &[String], dst: &str, verbose: bool, conn: &Conn) -> Result<()> {
    let renamed = |from: &str, to: &str| {
        said(
            verbose,
            format_args!("renamed '{}' -> '{}'", board::shown(from), board::shown(to)),
        )
    };
    let mut failed = Failed::default();
    let elsewhere = |src: &str| {
        Error::Invalid(format!(
            "mv moves within one board: {src} and {dst} are on different ones (cp, then rm)"
        ))
    };
    // As coreutils' mv words it, and exits 1.
    let not_a_target = |there: bool| {
        Error::Refused(crate::error::Refused::NotADirectoryTarget {
            target: dst.to_string(),
            exists: there,
        })
    };
    match place(dst)? {
        Place::Local(d) => {
            let into = d.is_dir();
            // Quoted patterns, matched on the mount's names.
            let mut sources = Vec::new();
            for src in srcs {
                let p = place(src);
                match &p {
                    Ok(Place::Local(s)) => match local_matching(s, src) {
                        Some(Ok(found)) => {
                            sources
                                .extend(found.into_iter().map(|(a, s)| (a, Ok(Place::Local(s)))));
                        }
                        Some(Err(e)) => {
                            if !failed.note(Err(e)) {
                                return failed.result();
                            }
                        }
                        None => sources.push((src.clone(), p)),
                    },
                    _ => sources.push((src.clone(), p)),
                }
            }
            if sources.len() > 1 && !into {
                failed.note(Err(not_a_target(d.exists())));
                return failed.result();
            }
            for (src, place) in sources {
                let src = &src;
                let r = match place {
                    // `DST/` must be a directory, `SRC/` one too: never a
                    // file's new name, nor a file.
                    Ok(Place::Local(s))
                        if (src.ends_with('/') || (dst.ends_with('/') && !into))
                            && std::fs::metadata(&s).is_ok_and(|m| !m.is_dir()) =>
                    {
                        Err(not_dir(if src.ends_with('/') { src } else { dst }))
                    }
                    Ok(Place::Local(s)) => {
                        let to = match (into, s.file_name()) {
                            (true, Some(n)) => d.join(n),
                            _ => d.clone(),
                        };
                        match std::fs::rename(&s, &to) {
                            Ok(()) => renamed(src, &to.to_string_lossy()),
                            Err(e) => Err(super::explained(local_error(e, src), src).await),
                        }
                    }
                    Ok(Place::Board(..)) => Err(elsewhere(src)),
                    Err(e) => Err(e),
                };
                if !failed.note(r) {
                    break;
                }
            }
        }
        Place::Board(bd, d) => {
            let mut boards = Boards::new(conn);
            let r = async {
                let b = boards.get(&bd).await?;
                let d = match target_pattern(&b, dst, &d).await {
                    Ok(d) => d,
                    Err(e) => {
                        failed.note(Err(e));
                        return Ok(());
                    }
                };
                let target = b.stat(&d).await?;
                let into = matches!(target, Some(st) if st.kind == EntryKind::Dir);
                let mut sources = Vec::new();
                for src in srcs {
                    let r = match place(src) {
                        Ok(Place::Board(bs, s)) if bs == bd && is_glob(&s) => {
                            expand(&mut boards, src, &bs, &s).await.map(|found| {
                                sources.extend(found.into_iter().map(|p| (format!("{bs}:{p}"), p)));
                            })
                        }
                        Ok(Place::Board(bs, s)) if bs == bd => {
                            sources.push((src.clone(), s));
                            Ok(())
                        }
                        Ok(_) => Err(elsewhere(src)),
                        Err(e) => Err(e),
                    };
                    if !failed.note(r) {
                        return Ok(());
                    }
                }
                if sources.len() > 1 && !into {
                    failed.note(Err(not_a_target(target.is_some())));
                    return Ok(());
                }
                for (shown, s) in &sources {
                    let r = async {
                        if must_stat(&b, s).await?.kind == EntryKind::File && shown.ends_with('/') {
                            return Err(not_dir(shown));
                        }
                        let to = if into {
                            board::join(&d, s.rsplit('/').next().unwrap_or(s))
                        } else if dst.ends_with('/') {
                            // `DST/` must be a directory: never a new file's name.
                            return Err(not_dir(dst));
                        } else {
                            d.clone()
                        };
                        b.rename(s, &to).await?;
                        renamed(shown, &format!("{bd}:{to}"))
                    }
                    .await;
                    if !failed.note(r) {
                        break;
                    }
                }
                Ok(())
            }
            .await;
            boards.close(r).await.map_err(|e| other_reading(dst, e))?;
        }
    }
    failed.result()
}

/// A quoted pattern as a target (`'kb:/*.txt'`) is the one directory it
/// matches, as the shell would expand it; anything else would make a file
/// named by the pattern itself.
pub(crate) async fn target_pattern(b: &Board, arg: &str, path: &str) -> Result<String> {
    if !is_glob(path) {
        return Ok(path.to_string());
    }
    let found = match matching(b, arg, path).await {
        Ok(found) => found,
        Err(Error::NotFound(_)) => Vec::new(),
        Err(e) => return Err(e),
    };
    if let [one] = &found[..]
        && matches!(b.stat(one).await?, Some(st) if st.kind == EntryKind::Dir)
    {
        return Ok(one.clone());
    }
    Err(Error::Refused(crate::error::Refused::PatternTarget {
        arg: arg.to_string(),
        matches: found.len(),
    }))
}

pub async fn cat(args: &[String], conn: &Conn) -> Result<()> {
    for_each(args, conn, async |boards, arg, place| match place {
        Place::Local(p) => {
            let mut f = std::fs::File::open(&p).map_err(|e| local_error(e, arg))?;
            // Opened, a directory fails at its first read: said as a
            // board's is, and the next operand goes ahead.
            if f.metadata().is_ok_and(|m| m.is_dir()) {
                return Err(Error::Refused(crate::error::Refused::IsADirectory {
                    arg: arg.to_string(),
                }));
            }
            std::io::copy(&mut f, &mut std::io::stdout().lock())?;
            Ok(())
        }
        Place::Board(name, path) => {
            let b = boards.get(&name).await?;
            let st = must_stat(&b, &path).await?;
            if st.kind == EntryKind::Dir {
                return Err(Error::Refused(crate::error::Refused::IsADirectory {
                    arg: arg.to_string(),
                }));
            }
            cat_board(&b, &path, st).await
        }
    })
    .await
}

/// Prints a board's file as it comes (the first bytes at once) and checks
/// it at its end against the board's digest, as curl and scp do: a check
/// that fails says so and fails the command, what was printed stays. A
/// reader that stalls blocks the write, and the paced GET waits with it:
/// memory stays bounded whatever the file's size.
async fn cat_board(b: &Board, path: &str, st: board::Stat) -> Result<()> {
    // Bytes printed, and those to drop after a restart: printed already.
    let mut taken = 0u64;
    let mut skip = 0u64;
    let mut digests = board::Digests::default();
    let mut failed: Option<std::io::Error> = None;
    let broken = tokio::sync::Notify::new();
    {
        let mut sink = |p: crate::session::Piece| {
            if failed.is_some() {
                return;
            }
            let d = match p {
                crate::session::Piece::Data(d) => d,
                crate::session::Piece::Restart => {
                    skip = taken;
                    return;
                }
            };
            let cut = (skip.min(d.len() as u64)) as usize;
            skip -= cut as u64;
            let d = &d[cut..];
            digests.update(d);
            taken += d.len() as u64;
            // The write may block for as long as the reader likes: off
            // the runtime's own threads.
            let r = tokio::task::block_in_place(|| {
                let mut out = std::io::stdout().lock();
                out.write_all(d).and_then(|()| out.flush())
            });
            if let Err(e) = r {
                failed = Some(e);
                broken.notify_one();
            }
        };
        tokio::select! {
            r = b.get_into(path, st, &mut sink) => { r?; }
            () = broken.notified() => {}
        }
    }
    if let Some(e) = failed {
        return Err(e.into());
    }
    let (algorithm, theirs) = b.digests(&[(path, taken)]).await?;
    let ours = digests.finish(&algorithm);
    let why = match theirs.into_iter().next().flatten() {
        Some(d) if d == ours => return Ok(()),
        Some(d) => format!("{algorithm} mismatch (board {d}, received {ours})"),
        None => "the board's copy changed size while it was read".into(),
    };
    Err(Error::Os {
        errno: libc::EIO,
        what: format!(
            "{path}: what was printed is not the board's file: {why} (damaged in transit)"
        ),
    })
}

/// An existing file is left as it is (the board keeps no time worth a
/// flash write); a missing one is made empty.
pub async fn touch(args: &[String], conn: &Conn) -> Result<()> {
    for_each(args, conn, async |boards, arg, place| match place {
        // `x/` names a directory: touch makes none, as on a board.
        Place::Local(p) if arg.ends_with('/') && std::fs::symlink_metadata(&p).is_err() => {
            Err(Error::NotFound(arg.to_string()))
        }
        Place::Local(p) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
                .map_err(|e| local_error(e, arg))?;
            Ok(f.set_modified(std::time::SystemTime::now())?)
        }
        Place::Board(name, path) => {
            let b = boards.get(&name).await?;
            let st = match b.stat(&path).await {
                Err(Error::Os { errno, .. }) if errno == libc::ENOTDIR => {
                    return Err(cannot_touch(arg, "Not a directory"));
                }
                r => r?,
            };
            if st.is_none() {
                // `x/` names a directory: touch makes none.
                if arg.ends_with('/') {
                    return Err(Error::NotFound(arg.to_string()));
                }
                // A PUT into a missing directory drops the board's
                // connection (PROTOCOL.md): the parent is looked at first,
                // as the kernel resolves it for a mount.
                match b.stat(board::parent(&path)).await? {
                    None => return Err(cannot_touch(arg, "No such file or directory")),
                    Some(st) if st.kind == EntryKind::File => {
                        return Err(cannot_touch(arg, "Not a directory"));
                    }
                    Some(_) => {}
                }
                b.put(&path, b"", false, Base::Absent).await?;
            }
            Ok(())
        }
    })
    .await
}

/// As coreutils' touch says it.
fn cannot_touch(arg: &str, why: &str) -> Error {
    Error::Refused(crate::error::Refused::Touch {
        arg: arg.to_string(),
        why: why.to_string(),
    })
}

/// Hashed on the board where its firmware has hashlib, else here.
pub async fn sha256sum(args: &[String], conn: &Conn) -> Result<()> {
    for_each(args, conn, async |boards, arg, place| {
        let digest = match place {
            Place::Local(p) => board::digest(
                "sha256",
                &std::fs::read(p).map_err(|e| local_error(e, arg))?,
            ),
            Place::Board(name, path) => {
                let b = boards.get(&name).await?;
                let st = must_stat(&b, &path).await?;
                if st.kind == EntryKind::Dir {
                    return Err(Error::Refused(crate::error::Refused::IsADirectory {
                        arg: arg.to_string(),
                    }));
                }
                match b.digests(&[(&path, st.size)]).await? {
                    (algo, d) if algo == "sha256" && d.first().is_some_and(Option::is_some) => {
                        d.into_iter().flatten().next().unwrap_or_default()
                    }
                    _ => sha256_streamed(&b, &path, st).await?,
                }
            }
        };
        // A pattern's matches are the board's names: escaped, as ls does.
        let shown = board::shown(arg);
        Ok(writeln!(std::io::stdout().lock(), "{digest}  {shown}")?)
    })
    .await
}

/// SHA-256 of a board's file hashed here as it comes (a firmware without
/// hashlib), checked against the board's CRC-32 of it; nothing is held.
async fn sha256_streamed(b: &Board, path: &str, st: board::Stat) -> Result<String> {
    const TRIES: u32 = 3;
    let mut why = String::new();
    for _ in 0..TRIES {
        let mut digests = board::Digests::default();
        let mut n = 0u64;
        b.get_into(path, st, &mut |p| match p {
            crate::session::Piece::Data(d) => {
                n += d.len() as u64;
                digests.update(&d);
            }
            crate::session::Piece::Restart => {
                n = 0;
                digests = board::Digests::default();
            }
        })
        .await?;
        let (algorithm, theirs) = b.digests(&[(path, n)]).await?;
        let ours = digests.finish(&algorithm);
        match theirs.into_iter().next().flatten() {
            Some(d) if d == ours => return Ok(digests.finish("sha256")),
            Some(d) => why = format!("{algorithm} mismatch (board {d}, received {ours})"),
            None => why = "the board's copy changed size while it was read".into(),
        }
        tracing::warn!("{}: {why}; reading it again", board::shown(path));
    }
    Err(Error::Os {
        errno: libc::EIO,
        what: format!("{path}: damaged in transit {TRIES} times ({why})"),
    })
}

pub async fn df(target: &str, conn: &Conn) -> Result<()> {
    let (total, avail) = if let Some(mp) = mounted(target)? {
        match local_statvfs(&mp) {
            Ok(v) => v,
            Err(e) => return Err(super::explained(e, &mp.to_string_lossy()).await),
        }
    } else {
        let (name, path) = board_and_path(target)?;
        let mut boards = Boards::new(conn);
        let r = async {
            let b = boards.get(&name).await?;
            b.statvfs(&board::normalize(&path)?).await
        }
        .await;
        let v = boards
            .close(r)
            .await
            .map_err(|e| other_reading(target, e))?;
        let block = v.frsize.max(v.bsize);
        (
            v.blocks.saturating_mul(block),
            v.bavail.saturating_mul(block),
        )
    };
    let used = total.saturating_sub(avail);
    let pct = (used as f64 * 100.0 / total.max(1) as f64).round();
    writeln!(
        std::io::stdout().lock(),
        "{}: {} used, {} free of {} ({pct:.0}% used)",
        target.strip_suffix(':').unwrap_or(target),
        human(used),
        human(avail),
        human(total)
    )?;
    Ok(())
}

/// `tree` of a directory in a mount, as `tree` of the board's prints it.
/// One entry of `tree`, indented by its depth: the same for a board's
/// listing and a mount's.
fn tree_line(out: &mut impl Write, depth: usize, rel: &str, is_dir: bool) -> Result<()> {
    let leaf = rel.rsplit('/').next().unwrap_or(rel);
    let slash = if is_dir { "/" } else { "" };
    writeln!(
        out,
        "{}{}{slash}",
        "    ".repeat(depth + 1),
        board::shown(leaf)
    )?;
    Ok(())
}

fn local_tree(dir: &Path, arg: &str) -> Result<()> {
    if !std::fs::metadata(dir)
        .map_err(|e| local_error(e, arg))?
        .is_dir()
    {
        return Err(Error::Os {
            errno: libc::ENOTDIR,
            what: arg.to_string(),
        });
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{arg}")?;
    for (depth, rel, is_dir) in super::local_walk(dir, arg, true)? {
        tree_line(&mut out, depth, &rel, is_dir)?;
    }
    Ok(())
}

fn local_statvfs(p: &Path) -> Result<(u64, u64)> {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| {
        Error::Path(crate::error::BadPath::LocalNul {
            path: p.to_path_buf(),
        })
    })?;
    // SAFETY: a valid C string and a zeroed struct for statvfs to fill.
    let v = unsafe {
        let mut v: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut v) != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        v
    };
    let block = v.f_frsize.max(v.f_bsize);
    Ok((
        v.f_blocks.saturating_mul(block),
        v.f_bavail.saturating_mul(block),
    ))
}

/// The tree below a board path, indented by depth, directories with `/`.
/// A path that is missing or no directory is said and exits 1, as `ls`
/// and the other file commands end (it was 7, or 2 for a board's file).
pub async fn tree(target: &str, conn: &Conn) -> Result<()> {
    match tree_one(target, conn).await {
        Err(e) if matches!(e.kind(), Kind::NotFound | Kind::Os(_)) => {
            let mut failed = Failed::default();
            failed.note(Err(e));
            failed.result()
        }
        r => r,
    }
}

async fn tree_one(target: &str, conn: &Conn) -> Result<()> {
    let (name, path) = match super::mount_path(target)? {
        Some((_, here)) => {
            return match local_tree(&here, target) {
                Err(e) => Err(super::explained(e, target).await),
                r => r,
            };
        }
        None => board_and_path(target)?,
    };
    let path = board::normalize(&path)?;
    let mut boards = Boards::new(conn);
    let r = async {
        let b = boards.get(&name).await?;
        let st = b
            .stat(&path)
            .await?
            .ok_or_else(|| Error::NotFound(target.to_string()))?;
        if st.kind != EntryKind::Dir {
            return Err(not_dir(target));
        }
        b.listing(&path, true).await
    }
    .await;
    let listing = boards
        .close(r)
        .await
        .map_err(|e| other_reading(target, e))?;
    let mut entries = super::ours_hidden(listing.entries);
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", board::shown(&path))?;
    for e in entries {
        let rel = e
            .path
            .strip_prefix(&path)
            .unwrap_or(&e.path)
            .trim_start_matches('/');
        tree_line(
            &mut out,
            rel.matches('/').count(),
            rel,
            e.kind == EntryKind::Dir,
        )?;
    }
    if !listing.skipped.is_empty() {
        return Err(crate::protocol::ProtocolError::BadNames(listing.skipped).into());
    }
    Ok(())
}
