//! `cp`: files and trees to and from boards. Uploads go as one pipelined
//! batch per board (the directories first, in one program; files already
//! on the board, by size and hash, skipped), to several boards at once.

use crate::board::sums::{self, BlockSums};
use crate::board::{self, Base, Board, EntryKind, Seen, Stat, Upload, Written};
use crate::commands::Failed;
use crate::connection::Conn;
use crate::error::{Error, Held, Kind, Result, Stopped};
use crate::protocol::ProtocolError;
use crate::remote::split_remote;
use crate::session::Piece;
use bytes::Bytes;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bytes of file contents one batch holds in memory at most.
const BATCH_BYTES: usize = 4 << 20;

/// How `cp` copies, beyond what it copies.
#[derive(Debug, Clone, Copy, Default)]
pub struct How {
    /// `-r`.
    pub recursive: bool,
    /// `-f`: send files the board already has too.
    pub force: bool,
    /// `-v`: each file copied, as coreutils' `'a' -> 'b'`, on stdout.
    pub verbose: bool,
    /// `-n`: an existing file is never written over, either way.
    pub no_clobber: bool,
    /// `-u`: a download skips a local file that is the board's already
    /// (same size and hash), as uploads always do.
    pub update: bool,
    /// `mv` between here and a board: each source is removed once all of
    /// them are copied and checked.
    pub remove_sources: bool,
}

/// `'from' -> 'to'`, as coreutils' cp -v says a file copied (mv -v to
/// another filesystem: `copied 'from' -> 'to'`).
fn said_copied(how: How, from: &str, to: &str) -> Result<()> {
    use std::io::Write;
    if how.verbose {
        writeln!(
            std::io::stdout().lock(),
            "{}'{}' -> '{}'",
            if how.remove_sources { "copied " } else { "" },
            board::shown(from),
            board::shown(to)
        )?;
    }
    Ok(())
}

/// mv -v's line for a source removed once copied.
fn said_removed(how: How, dir: bool, what: &str) -> Result<()> {
    use std::io::Write;
    if how.verbose {
        writeln!(
            std::io::stdout().lock(),
            "removed {}'{}'",
            if dir { "directory " } else { "" },
            board::shown(what)
        )?;
    }
    Ok(())
}

/// `mv` from here: a local source, removed once it is on the board.
fn remove_here(how: How, src: &str) -> Result<()> {
    let p = Path::new(src);
    let dir = std::fs::symlink_metadata(p)
        .map_err(|e| Error::local(p, e))?
        .is_dir();
    if dir {
        std::fs::remove_dir_all(p)
    } else {
        std::fs::remove_file(p)
    }
    .map_err(|e| Error::local(p, e))?;
    said_removed(how, dir, src)
}

/// `mv` from a board: a board path, removed once copied here and checked
/// (its tree deepest first, as rm -r).
async fn remove_on_board(b: &Board, how: How, shown: &str, path: &str) -> Result<()> {
    let Some(st) = b.stat(path).await? else {
        return Err(Error::NotFound(shown.to_string()));
    };
    if st.kind == EntryKind::File {
        b.remove(path).await?;
        return said_removed(how, false, shown);
    }
    if path == "/" {
        return Err(Error::Invalid(format!(
            "{shown}: the board's root is copied, not removed (rm -r 'BOARD:/*' empties it)"
        )));
    }
    b.remove_tree(path, |_, _| Ok(())).await?;
    said_removed(how, true, shown)
}

pub async fn run(mut paths: Vec<String>, how: How, conn: &Conn) -> Result<()> {
    let recursive = how.recursive;
    let remote = |p: &String| split_remote(p).is_some();
    if paths.len() < 2 {
        return Err(Error::Invalid("cp needs a source and a destination".into()));
    }
    let in_a_mount = |p: &String| matches!(crate::commands::mounted(p), Ok(Some(_)));
    if !paths.iter().any(remote) && paths.iter().any(in_a_mount) {
        let dst = paths.pop().unwrap_or_default();
        return copy_here(&expand_local(&paths)?, &dst, how).await;
    }
    let Some(first) = paths.iter().position(remote) else {
        return Err(Error::Invalid(
            "one side of cp must be on a board: HOST[:PORT]:PATH".into(),
        ));
    };
    if first > 0 {
        // Local sources, then one board or several.
        let dests = paths.split_off(first);
        if let Some(d) = dests.iter().find(|d| !remote(d)) {
            return Err(Error::Usage(crate::error::Usage::DestinationNotBoard {
                arg: d.to_string(),
            }));
        }
        // As coreutils' cp: a source that cannot go is said and left out,
        // the others are sent, and the command exits 1.
        let mut failed = Failed::default();
        let mut srcs = Vec::new();
        for s in expand_local(&paths)? {
            match std::fs::metadata(&s) {
                Ok(m) if m.is_dir() && !recursive => {
                    failed.note(Err(Error::Refused(
                        crate::error::Refused::OmittingDirectory { arg: s.to_string() },
                    )));
                }
                Err(e) => {
                    failed.note(Err(Error::local(&s, e)));
                }
                Ok(_) => srcs.push(s),
            }
        }
        if !srcs.is_empty() {
            if how.remove_sources && dests.len() > 1 {
                return Err(Error::Invalid(
                    "mv moves to one board: cp copies to several".into(),
                ));
            }
            upload_to_all(&srcs, &dests, how, conn).await?;
            // Every file is on the board (or was, unchanged): the sources go.
            if how.remove_sources {
                for s in &srcs {
                    if !failed.note(remove_here(how, s)) {
                        break;
                    }
                }
            }
        }
        return failed.result();
    }
    let dst = paths.pop().unwrap_or_default();
    if remote(&dst) {
        return board_to_board(&paths, &dst, how, conn).await;
    }
    download_from(&paths, &dst, how, conn).await
}

/// `cp A:/x B:/y`: through this machine, as `scp -3` does. The sources
/// come here as downloads do (each checked against the board's hash) into
/// a private temporary directory, then go to the other board as uploads
/// do (what it has already is skipped); the directory goes at the end.
async fn board_to_board(srcs: &[String], dst: &str, how: How, conn: &Conn) -> Result<()> {
    // 0700, ours: what a board holds is no other user's to read.
    let tmp = tempfile::Builder::new()
        .prefix("webrepl-mount-")
        .tempdir()
        .map_err(|e| Error::local(std::env::temp_dir(), e))?;
    let quiet = How {
        verbose: false,
        ..how
    };
    // `mv`: nothing goes from the source board on the way here; only once
    // the other board has it all (below).
    let fetch = How {
        remove_sources: false,
        ..quiet
    };
    let through = tmp.path().to_string_lossy().into_owned();
    let fetched = download_from(srcs, &through, fetch, conn).await;
    match &fetched {
        // Some sources failed, each said: the others still go.
        Err(Error::Remote(Kind::Io, said)) if said.is_empty() => {}
        Err(_) => return fetched,
        Ok(()) => {}
    }
    let raw = srcs.first().map_or("", |s| s.trim_end_matches('/'));
    let contents = srcs.len() == 1 && (raw.ends_with("/.") || raw.ends_with(":."));
    let here = if contents {
        vec![format!("{through}/.")]
    } else {
        let mut names: Vec<String> = std::fs::read_dir(tmp.path())
            .and_then(|d| d.collect::<std::io::Result<Vec<_>>>())
            .map_err(|e| Error::local(tmp.path(), e))?
            .into_iter()
            .map(|e| e.path().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    if !here.is_empty() {
        upload_to_all(&here, &[dst.to_string()], quiet, conn).await?;
    }
    // `mv`: every source came and went whole; only now do they go.
    if how.remove_sources && fetched.is_ok() {
        remove_board_sources(srcs, how, conn).await?;
    }
    fetched
}

/// `mv A:/x B:/y`'s sources, removed from A (patterns matched again).
async fn remove_board_sources(srcs: &[String], how: How, conn: &Conn) -> Result<()> {
    let Some((host, _)) = srcs.first().and_then(|s| split_remote(s)) else {
        return Ok(());
    };
    let b = conn.connect(&host).await?;
    let r = async {
        for s in srcs {
            let (_, p) = split_remote(s).unwrap_or_default();
            let p = board::normalize(if p.is_empty() { "/" } else { &p })?;
            let found = if crate::commands::is_glob(&p) {
                crate::commands::matching(&b, s, &p).await?
            } else {
                vec![p]
            };
            for f in found {
                remove_on_board(&b, how, &format!("{host}:{f}"), &f).await?;
            }
        }
        Ok(())
    }
    .await;
    b.session().close().await;
    r
}

/// `cp HOST:SRC... DST`: from one board to here.
async fn download_from(paths: &[String], dst: &str, how: How, conn: &Conn) -> Result<()> {
    let mut host = None;
    let mut sources: Vec<(&str, String)> = Vec::new();
    for s in paths {
        let (h, p) = split_remote(s)
            .ok_or_else(|| Error::Invalid(format!("{s}: all sources must be on the board")))?;
        if host.as_ref().is_some_and(|x| x != &h) {
            return Err(Error::Invalid(
                "all sources must be on the same board".into(),
            ));
        }
        host = Some(h);
        sources.push((s, p));
    }
    let host = host.ok_or_else(|| Error::Invalid("nothing to copy".into()))?;
    let b = conn
        .connect(&host)
        .await
        .map_err(|e| crate::remote::other_reading(sources[0].0, e))?;
    // As coreutils' cp: a source that fails is said and skipped, the
    // others are copied, and the command exits 1.
    let mut failed = Failed::default();
    let fetch_all = async {
        let sources = expand_board(&b, &host, &sources, &mut failed).await?;
        download(&b, &sources, Path::new(&dst), how, &host, &mut failed).await?;
        // Only once every file is here and checked do the sources go.
        if how.remove_sources && failed.clean() {
            for (shown, path) in &sources {
                if !failed.note(remove_on_board(&b, how, shown, path).await) {
                    break;
                }
            }
        }
        failed.result()
    };
    // Ctrl-C or SIGTERM (`timeout`, a service manager) ends the download
    // here, so that its temporary file goes.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let r = tokio::select! {
        r = fetch_all => r,
        _ = tokio::signal::ctrl_c() => Err(stopped(Stop::Interrupt)),
        _ = term.recv() => Err(stopped(Stop::Term)),
    };
    b.session().close().await;
    r
}

/// `cp` between paths here, one of them in a mount: through the mount's
/// files, as the other file commands go, and as coreutils' cp (a source
/// that fails is said, the others are copied, exit 1).
async fn copy_here(srcs: &[String], dst: &str, how: How) -> Result<()> {
    let d = Path::new(dst);
    let into = d.is_dir();
    let mut failed = Failed::default();
    if srcs.len() > 1 && !into {
        // As coreutils' cp says it, and exits 1.
        failed.note(Err(Error::Invalid(if d.exists() {
            format!("target '{dst}' is not a directory")
        } else {
            format!("target '{dst}': No such file or directory")
        })));
        return failed.result();
    }
    // Into a mount: each file is on the board before cp goes on (fsync,
    // which uploads now and waits), not left to the mount after its close
    // wait: `cp f.py HOST:/ && exec` must not run the old version.
    let to_board = matches!(crate::commands::mounted(dst), Ok(Some(_)));
    for s in srcs {
        let src = Path::new(s);
        // `SRC/.`: what is in it, into DST, every time (as GNU cp).
        let contents = s == "." || s.trim_end_matches('/').ends_with("/.");
        let to = match src.file_name() {
            Some(name) if into && !contents => d.join(name),
            _ => d.to_path_buf(),
        };
        let r = match copy_one_here(src, &to, how, to_board) {
            // A board that cannot be reached: the file waits in the
            // mount's journal, which the command says (exit 8).
            Err(e) if to_board => {
                match crate::commands::kept_in_journal(&[dst.to_string()]).await {
                    Err(kept) => Err(kept),
                    Ok(()) => Err(crate::commands::explained(e, dst).await),
                }
            }
            // The mount's trouble, not the file's: said with its cause.
            Err(e) => {
                let in_mount = match crate::commands::mounted(s) {
                    Ok(Some(_)) => s,
                    _ => dst,
                };
                Err(crate::commands::explained(e, in_mount).await)
            }
            Ok(()) if how.remove_sources => remove_here(how, s),
            r => r,
        };
        if !failed.note(r) {
            break;
        }
    }
    failed.result()
}

fn copy_one_here(src: &Path, to: &Path, how: How, to_board: bool) -> Result<()> {
    let meta = std::fs::metadata(src).map_err(|e| Error::local(src, e))?;
    if !meta.is_dir() {
        // -n: an existing file stays; -u: one that is the same too.
        let same = || {
            std::fs::metadata(to).is_ok_and(|m| m.len() == meta.len())
                && std::fs::read(src).ok() == std::fs::read(to).ok()
        };
        if (how.no_clobber && to.exists()) || (how.update && same()) {
            return Ok(());
        }
        std::fs::copy(src, to).map_err(|e| Error::local(to, e))?;
        if to_board {
            std::fs::File::open(to)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::local(to, e))?;
        }
        if how.verbose {
            said_copied(how, &src.to_string_lossy(), &to.to_string_lossy())?;
        }
        return Ok(());
    }
    if !how.recursive {
        return Err(Error::Invalid(format!(
            "-r not specified; omitting directory '{}'",
            src.display()
        )));
    }
    std::fs::create_dir_all(to).map_err(|e| Error::local(to, e))?;
    let mut names: Vec<_> = std::fs::read_dir(src)
        .and_then(|d| d.collect::<std::io::Result<Vec<_>>>())
        .map_err(|e| Error::local(src, e))?;
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let how = How {
            recursive: true,
            ..how
        };
        copy_one_here(&e.path(), &to.join(e.file_name()), how, to_board)?;
    }
    Ok(())
}

/// Quoted patterns among local sources (`cp 'src/*.py' HOST:/lib/`),
/// expanded here by the shell's rules (a leading dot only by a dot), in
/// order; a name that exists is itself, pattern characters or not.
fn expand_local(srcs: &[String]) -> Result<Vec<String>> {
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let mut out = Vec::new();
    for s in srcs {
        if !s.contains(['*', '?', '[']) || Path::new(s).exists() {
            out.push(s.clone());
            continue;
        }
        let found = glob::glob_with(s, options).map_err(|e| {
            Error::Usage(crate::error::Usage::Pattern {
                pattern: s.to_string(),
                why: e.to_string(),
            })
        })?;
        let mut names = Vec::new();
        for p in found {
            let p = p.map_err(|e| Error::local(e.path().to_path_buf(), std::io::Error::from(e)))?;
            names.push(p.into_os_string().into_string().map_err(|n| {
                Error::Path(crate::error::BadPath::LocalNotUtf8 { path: n.into() })
            })?);
        }
        if names.is_empty() {
            return Err(Error::Path(crate::error::BadPath::NoMatch {
                pattern: s.to_string(),
            }));
        }
        names.sort();
        out.append(&mut names);
    }
    Ok(out)
}

/// Board sources with their quoted patterns (`'HOST:/lib/*.py'`) matched
/// on the board, as the other file commands match them: (the name to show,
/// the board path). A pattern that matches nothing is said and skipped.
async fn expand_board(
    b: &Board,
    host: &str,
    sources: &[(&str, String)],
    failed: &mut Failed,
) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (arg, path) in sources {
        let path = match board::normalize(path) {
            Ok(p) => p,
            Err(e) => {
                failed.note(Err(e));
                continue;
            }
        };
        if crate::commands::is_glob(&path) {
            match crate::commands::matching(b, arg, &path).await {
                Ok(found) => out.extend(found.into_iter().map(|p| (format!("{host}:{p}"), p))),
                Err(e) => {
                    if !failed.note(Err(e.clone())) {
                        return Err(e);
                    }
                }
            }
        } else {
            out.push((arg.to_string(), path));
        }
    }
    Ok(out)
}

fn bar(multi: &MultiProgress, total: u64, prefix: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = multi.add(ProgressBar::new(total));
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {wide_msg}",
    ) {
        bar.set_style(style);
    }
    bar.set_prefix(prefix.to_string());
    bar
}

/// The same files to each board, all at once; one that cannot be reached
/// does not stop the others.
async fn upload_to_all(srcs: &[String], dests: &[String], how: How, conn: &Conn) -> Result<()> {
    let multi = MultiProgress::new();
    let mut tasks = Vec::new();
    // Ctrl-C or SIGTERM stops every upload where it is, and takes away
    // the part files it left on its board.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(None);
    let signals = tokio::spawn(async move {
        let stop = tokio::select! {
            _ = tokio::signal::ctrl_c() => Stop::Interrupt,
            _ = term.recv() => Stop::Term,
        };
        let _ = stop_tx.send(Some(stop));
    });
    for d in dests {
        let (host, _) = split_remote(d).unwrap_or_default();
        let (srcs, conn, multi, shown) = (srcs.to_vec(), conn.clone(), multi.clone(), d.clone());
        let mut stop = stop_rx.clone();
        let label = if dests.len() > 1 {
            host.clone()
        } else {
            String::new()
        };
        tasks.push((
            host.clone(),
            tokio::spawn(async move {
                let b = conn
                    .connect(&host)
                    .await
                    .map_err(|e| crate::remote::other_reading(&shown, e))?;
                let r = tokio::select! {
                    r = upload(&b, &srcs, &shown, how, &multi, &label) => r,
                    why = async { stop.wait_for(Option::is_some).await.ok().and_then(|s| *s) } => {
                        let why = why.unwrap_or(Stop::Interrupt);
                        if let Err(e) = b.remove_own_parts().await {
                            eprintln!("webrepl-mount: {host}: part files of the stopped upload left on the board: {e}");
                        }
                        Err(stopped(why))
                    }
                };
                b.session().close().await;
                r
            }),
        ));
    }
    let mut failed = Vec::new();
    let mut left_out = Failed::default();
    let joined = futures_join(tasks).await;
    signals.abort();
    for (host, t) in joined {
        let r = t.unwrap_or_else(|e| {
            Err(Error::Bug(crate::error::Bug::Task {
                task: host.to_string(),
                why: e.to_string(),
            }))
        });
        if let Ok(s) = &r {
            for why in &s.refused {
                let on = if dests.len() > 1 {
                    format!("{host}: ")
                } else {
                    String::new()
                };
                left_out.note(Err(Error::Invalid(format!("{on}{why}"))));
            }
        }
        match r {
            // Nothing was to go: the reason is said already.
            Ok(s) if s.files == 0 && s.skipped == 0 && !s.refused.is_empty() => {}
            Ok(s) => eprintln!(
                "{}{}",
                if dests.len() > 1 {
                    format!("{host}: ")
                } else {
                    String::new()
                },
                s.describe()
            ),
            Err(e) => {
                if dests.len() > 1 {
                    eprintln!("{host}: FAILED: {e}");
                }
                failed.push((host, e));
            }
        }
    }
    match failed.len() {
        0 => left_out.result(),
        1 if dests.len() == 1 => Err(failed.remove(0).1),
        n => {
            let (_, first) = failed.remove(0);
            let kind = first.kind();
            Err(Error::Remote(
                kind,
                format!("{n} of {} boards failed (the first: {first})", dests.len()),
            ))
        }
    }
}

/// What stops a copy in its middle.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Interrupt,
    Term,
}

/// Ctrl-C exits 130 as `run` and `exec` do (a shell's code for SIGINT).
fn stopped(why: Stop) -> Error {
    match why {
        Stop::Interrupt => Error::Interrupted(Stopped::Copy),
        Stop::Term => Error::running(Held::Terminated),
    }
}

/// Each task's outcome, in order, once all have ended.
async fn futures_join<T>(
    tasks: Vec<(String, tokio::task::JoinHandle<T>)>,
) -> Vec<(String, std::result::Result<T, tokio::task::JoinError>)> {
    let mut done = Vec::with_capacity(tasks.len());
    for (host, t) in tasks {
        done.push((host, t.await));
    }
    done
}

/// What one board got.
#[derive(Debug, Default)]
struct Sent {
    files: usize,
    bytes: u64,
    skipped: usize,
    /// Left as they were on the board (`-n`).
    kept: usize,
    algorithm: String,
    conflicts: Vec<String>,
    /// Sources left out, each said as an error (the command exits 1).
    refused: Vec<String>,
}

impl Sent {
    fn describe(&self) -> String {
        let mut s = format!("sent {} file(s), {} B", self.files, self.bytes);
        if self.skipped > 0 {
            s.push_str(&format!(
                "; skipped {} unchanged ({} on the board matched)",
                self.skipped, self.algorithm
            ));
        }
        if self.kept > 0 {
            s.push_str(&format!("; kept {} existing (-n)", self.kept));
        }
        for c in &self.conflicts {
            s.push_str(&format!("; {c}"));
        }
        s
    }
}

/// Local files under `src` (itself if a file), with their board paths;
/// directories end in `/`.
fn plan_upload(
    src: &Path,
    to: &str,
    recursive: bool,
    out: &mut Vec<(PathBuf, String)>,
) -> Result<()> {
    let meta = std::fs::metadata(src).map_err(|e| Error::local(src, e))?;
    if meta.is_dir() {
        if !recursive {
            return Err(Error::Refused(crate::error::Refused::IsADirectoryUseR {
                path: src.to_path_buf(),
            }));
        }
        let mut names: Vec<_> = std::fs::read_dir(src)?.collect::<std::io::Result<_>>()?;
        names.sort_by_key(|e| e.file_name());
        out.push((src.to_path_buf(), format!("{to}/")));
        for e in names {
            let name = e
                .file_name()
                .into_string()
                .map_err(|n| Error::Path(crate::error::BadPath::LocalNotUtf8 { path: n.into() }))?;
            plan_upload(
                &e.path(),
                &format!("{}/{name}", to.trim_end_matches('/')),
                true,
                out,
            )?;
        }
    } else {
        out.push((src.to_path_buf(), to.to_string()));
    }
    Ok(())
}

fn base_name(p: &str) -> &str {
    p.trim_end_matches('/').rsplit('/').next().unwrap_or(p)
}

fn read_local(p: &Path) -> Result<Vec<u8>> {
    std::fs::read(p).map_err(|e| Error::local(p, e))
}

async fn upload(
    b: &Board,
    srcs: &[String],
    shown: &str,
    how: How,
    multi: &MultiProgress,
    label: &str,
) -> Result<Sent> {
    let How {
        recursive, force, ..
    } = how;
    let (host, dst) = &split_remote(shown).unwrap_or_default();
    let dst_path = match crate::commands::target_pattern(b, shown, &board::normalize(dst)?).await {
        Ok(d) => d,
        Err(e @ (Error::Invalid(_) | Error::Path(_) | Error::Answer(_) | Error::Refused(_))) => {
            return Ok(Sent {
                refused: vec![e.to_string()],
                ..Sent::default()
            });
        }
        Err(e) => return Err(e),
    };
    let st = b.stat(&dst_path).await?;
    // As GNU cp: into DST only when it is a directory; a missing `DST/`
    // is the new name (of a tree; a file cannot be `DST/`), and several
    // sources need a directory that is there.
    let into_dir = dst.is_empty() || matches!(st, Some(s) if s.kind == EntryKind::Dir);
    let refuse = |why: String| {
        Ok(Sent {
            refused: vec![why],
            ..Sent::default()
        })
    };
    if !into_dir && srcs.len() > 1 {
        return refuse(match st {
            Some(_) => format!("target '{shown}' is not a directory"),
            None => format!("target '{shown}': No such file or directory"),
        });
    }
    if !into_dir && dst.ends_with('/') && srcs.iter().any(|s| !Path::new(s).is_dir()) {
        return refuse(format!(
            "cannot create regular file '{shown}': Not a directory"
        ));
    }
    let mut plan = Vec::new();
    for s in srcs {
        // `dir/.`: what is in it, as GNU cp does.
        let contents = s == "." || s.ends_with("/.");
        let to = if contents && into_dir {
            dst_path.clone()
        } else if into_dir {
            let name = Path::new(s)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or(base_name(s));
            format!("{}/{name}", dst_path.trim_end_matches('/'))
        } else {
            dst_path.clone()
        };
        plan_upload(Path::new(s), &to, recursive, &mut plan)?;
    }
    // A name kept for our own files is never written: the board's id
    // marker copied from another board would make this one that board.
    let mut refused = Vec::new();
    plan.retain(|(local, remote)| {
        let ours = remote.split('/').any(crate::cache::identity::hidden);
        if ours {
            refused.push(format!(
                "{}: not sent: {} is a name webrepl-mount keeps for its own files (board id, helpers, uploads in progress)",
                local.display(),
                remote.trim_end_matches('/')
            ));
        }
        !ours
    });
    let mut dirs: Vec<String> = plan
        .iter()
        .filter_map(|(_, r)| r.strip_suffix('/').map(board::normalize))
        .collect::<Result<_>>()?;
    let mut files: Vec<(PathBuf, String, u64)> = Vec::new();
    for (local, remote) in plan.iter().filter(|(_, r)| !r.ends_with('/')) {
        let remote = board::normalize(remote)?;
        let size = std::fs::metadata(local).map(|m| m.len()).unwrap_or(0);
        if let Some(d) = Some(board::parent(&remote)).filter(|d| *d != "/") {
            dirs.push(d.to_string());
        }
        files.push((local.clone(), remote, size));
    }
    dirs.sort();
    dirs.dedup();
    dirs.retain(|d| d != "/");
    let mut sent = Sent {
        refused,
        ..Sent::default()
    };
    // Files the board has another version of: sent as deltas of it. A
    // target that was not there holds none: asking would cost a list of
    // every name on the wire, for nothing.
    let mut onto = HashSet::new();
    if (!force || how.no_clobber) && st.is_some() && !files.is_empty() {
        let query: Vec<(&str, u64)> = files.iter().map(|(_, r, n)| (r.as_str(), *n)).collect();
        let (algorithm, seen) = b.compare(&query).await?;
        tracing::info!("comparing files with the board's {algorithm}");
        sent.algorithm = algorithm.clone();
        let mut keep = Vec::new();
        for (f, d) in files.into_iter().zip(seen) {
            if how.no_clobber && d != Seen::Missing {
                sent.kept += 1;
                continue;
            }
            let same = match &d {
                Seen::Digest(d) => !force && board::digest(&algorithm, &read_local(&f.0)?) == *d,
                _ => false,
            };
            if same {
                sent.skipped += 1;
            } else {
                if d != Seen::Missing && f.2 >= sums::SUMS_MIN {
                    onto.insert(f.1.clone());
                }
                keep.push(f);
            }
        }
        files = keep;
    }
    // After the comparison, which defines the helpers on first contact:
    // the directories then go by a short call of them.
    if !dirs.is_empty() {
        let refs: Vec<&str> = dirs.iter().map(String::as_str).collect();
        b.mkdirs_all(&refs).await?;
    }
    let bases = board_copies(b, &files, &onto).await;
    let total = files.iter().map(|f| f.2).sum();
    let bar = bar(multi, total, label);
    // In batches that bound the memory held, each pipelined.
    let mut done = 0u64;
    let mut batch: Vec<Upload> = Vec::new();
    // The local file each upload of the batch is, for -v.
    let mut locals: Vec<PathBuf> = Vec::new();
    let mut held = 0usize;
    let mut pending = files.into_iter().peekable();
    while pending.peek().is_some() || !batch.is_empty() {
        while let Some((local, remote, _)) = pending.peek() {
            if held >= BATCH_BYTES && !batch.is_empty() {
                break;
            }
            let data = read_local(local)?;
            held += data.len();
            let mut up = Upload::new(remote, Bytes::from(data), Base::Any);
            up.sums = bases.get(remote).cloned();
            let (tx, mut rx) = tokio::sync::watch::channel(0u64);
            up.progress = Some(tx);
            let (bar, at) = (
                bar.clone(),
                done + batch.iter().map(|u| u.data.len() as u64).sum::<u64>(),
            );
            tokio::spawn(async move {
                while rx.changed().await.is_ok() {
                    bar.set_position(at + *rx.borrow());
                }
            });
            batch.push(up);
            locals.push(local.clone());
            pending.next();
        }
        let ups = std::mem::take(&mut batch);
        let from = std::mem::take(&mut locals);
        held = 0;
        let results = b.put_many(ups.clone(), false).await?;
        for ((up, r), local) in ups.iter().zip(results).zip(from) {
            let written = r?;
            if how.verbose {
                said_copied(
                    how,
                    &local.to_string_lossy(),
                    &format!("{host}:{}", up.path),
                )?;
            }
            match written {
                Written::Target(_) => {}
                Written::Beside { name, .. } if how.remove_sources => sent.refused.push(format!(
                    "{}: the board's {} was kept (it changed), this went as {name}; not removed",
                    local.display(),
                    up.path
                )),
                Written::Beside { name, .. } => sent
                    .conflicts
                    .push(format!("{} kept, sent as {name}", up.path)),
            }
            sent.files += 1;
            sent.bytes += up.data.len() as u64;
            done += up.data.len() as u64;
        }
        bar.set_position(done);
    }
    bar.finish_and_clear();
    if let Ok(s) = b.session().status().await {
        tracing::info!(
            "{} B sent on the wire, {} B received",
            s.totals.bytes_out,
            s.totals.bytes_in
        );
    }
    Ok(sent)
}

/// The block sums of the board's copies of the files named in `onto`
/// (see board/sums.rs); none if the board cannot tell (the files then go
/// whole).
async fn board_copies(
    b: &Board,
    files: &[(PathBuf, String, u64)],
    onto: &HashSet<String>,
) -> HashMap<String, Arc<BlockSums>> {
    let query: Vec<(&str, u64)> = files
        .iter()
        .filter(|f| onto.contains(&f.1))
        .map(|f| (f.1.as_str(), f.2))
        .collect();
    if query.is_empty() {
        return HashMap::new();
    }
    match b.block_sums(&query).await {
        Ok(sums) => query
            .iter()
            .zip(sums)
            .filter_map(|((p, _), s)| Some((p.to_string(), Arc::new(s?))))
            .collect(),
        Err(e) => {
            tracing::info!("the board's copies' block sums: {e}; sending the files whole");
            HashMap::new()
        }
    }
}

async fn download(
    b: &Board,
    srcs: &[(String, String)],
    dst: &Path,
    how: How,
    host: &str,
    failed: &mut Failed,
) -> Result<()> {
    let recursive = how.recursive;
    let verbose = how.verbose.then_some((how, host));
    let into_dir = dst.is_dir();
    // Several go into a directory only, as cp(1) says it.
    if srcs.len() > 1 && !into_dir {
        let shown = dst.display();
        // Said, and exit 1, as cp(1) ends.
        failed.note(Err(Error::Invalid(if dst.exists() {
            format!("target '{shown}' is not a directory")
        } else {
            format!("target '{shown}': No such file or directory")
        })));
        return Ok(());
    }
    let mut plan: Vec<(String, PathBuf, u64)> = Vec::new();
    let mut dirs = Vec::new();
    let mut skipped = Vec::new();
    for (shown, path) in srcs {
        let path = path.clone();
        let Some(st) = b.stat_probing(&path).await? else {
            failed.note(Err(Error::NotFound(shown.clone())));
            continue;
        };
        // `HOST:/file/` names a directory, as to the kernel: GNU cp's
        // "Not a directory".
        if st.kind == EntryKind::File && shown.ends_with('/') {
            if !failed.note(Err(Error::Os {
                errno: libc::ENOTDIR,
                what: shown.clone(),
            })) {
                break;
            }
            continue;
        }
        // `DIR/.`: what is in it, into DST, every time (as GNU cp, and as
        // uploads take it); the path was normalized, the argument not.
        let raw = shown.trim_end_matches('/');
        let contents = raw.ends_with("/.") || raw.ends_with(":.");
        let local = if into_dir && !contents {
            dst.join(base_name(&path))
        } else {
            dst.to_path_buf()
        };
        if st.kind == EntryKind::File {
            plan.push((path, local, st.size));
            continue;
        }
        if !recursive {
            failed.note(Err(Error::Refused(
                crate::error::Refused::OmittingDirectory {
                    arg: board::shown(shown).to_string(),
                },
            )));
            continue;
        }
        dirs.push(local.clone());
        let listing = b.listing(&path, true).await?;
        skipped.extend(listing.skipped);
        for e in listing.entries {
            // `listing` vouches that each component is one checked name.
            let rel = e
                .path
                .strip_prefix(&path)
                .unwrap_or(&e.path)
                .split('/')
                .filter(|c| !c.is_empty());
            // Our own files (the board's id, the helpers, part files) stay
            // on their board, as the mount and ls hide them: a restore of
            // the copy onto another board would clone the id.
            if rel.clone().any(crate::cache::identity::hidden) {
                continue;
            }
            let mut to = local.clone();
            to.extend(rel);
            match e.kind {
                EntryKind::Dir => dirs.push(to),
                EntryKind::File => plan.push((e.path, to, e.size)),
            }
        }
    }
    for d in dirs {
        std::fs::create_dir_all(&d).map_err(|e| Error::local(&d, e))?;
    }
    if how.no_clobber {
        plan.retain(|(_, local, _)| std::fs::symlink_metadata(local).is_err());
    } else if how.update {
        plan = differing(b, plan).await?;
    }
    let multi = MultiProgress::new();
    let bar = bar(&multi, plan.iter().map(|p| p.2).sum(), "");
    // Each download goes to a temporary file beside its destination, as it
    // comes (a board's stat may claim any size: nothing is held in
    // memory), and is renamed into place only once the board's digest of
    // the batch confirms it (one short program per batch).
    let mut got: Vec<Fetched> = Vec::new();
    let mut held = 0u64;
    let mut damaged = Vec::new();
    let mut pending = plan.into_iter().peekable();
    while let Some((remote, local, size)) = pending.next() {
        bar.set_message(remote.clone());
        let at = bar.position();
        if got.is_empty() && (pending.peek().is_none() || size >= BATCH_BYTES as u64) {
            // A batch of this file alone (a `cp` of one file): the
            // board's digest of it is asked beside its transfer (the text
            // channel runs alongside a GET), a round trip less than after
            // it. This session is the command's own (`Config::alone`): the
            // GET keeps its window while the program runs, and the answer
            // waiting behind its chunks keeps nobody else waiting. A
            // download that first measures the binary channel has it
            // asked once its first bytes have come: what the probe
            // measured goes to the board with this program
            // (`Downloads::tell`). Another size by the end: asked again
            // after.
            let query = [(remote.as_str(), size)];
            let (begun, done) = (tokio::sync::Notify::new(), tokio::sync::Notify::new());
            let mut told = size == 0 || !b.probes_before(size);
            if told {
                begun.notify_one();
            }
            let mut progress = |n| {
                bar.set_position(at + n);
                if !told && n > 0 {
                    told = true;
                    begun.notify_one();
                }
            };
            let fetching = async {
                let r = fetch(b, remote.clone(), local, size, &mut progress).await;
                done.notify_one();
                r
            };
            let asking = async {
                tokio::select! {
                    biased;
                    () = begun.notified() => Some(b.digests(&query).await),
                    () = done.notified() => None,
                }
            };
            let (f, theirs) = tokio::join!(fetching, asking);
            let f = f?;
            // A digest that does not match what came is asked again before
            // the copy is called damaged: asked from the transfer's start,
            // it is the file as it was then, and one the board changed
            // meanwhile (a program writing it) came whole as it is now.
            // Two digests that differ, neither what came: the file changed
            // under the transfer, which holds some of each version.
            let matches = |algorithm: &str, digests: &[Option<String>]| {
                digests.first().cloned().flatten() == Some(f.digests.finish(algorithm))
            };
            let first = match &theirs {
                Some(Ok((_, d))) => d.first().cloned().flatten(),
                _ => None,
            };
            damaged.extend(match theirs {
                Some(Ok((algorithm, digests)))
                    if f.size == size && matches(&algorithm, &digests) =>
                {
                    write_verified(vec![f], &algorithm, digests, verbose)?
                }
                _ => {
                    let (algorithm, digests) = b.digests(&[(f.remote.as_str(), f.size)]).await?;
                    let now = digests.first().cloned().flatten();
                    if first.is_some()
                        && now.is_some()
                        && first != now
                        && !matches(&algorithm, &digests)
                    {
                        vec![format!(
                            "{}: changed on the board while it was copied; copy it again",
                            f.remote
                        )]
                    } else {
                        write_verified(vec![f], &algorithm, digests, verbose)?
                    }
                }
            });
            continue;
        }
        let f = fetch(b, remote, local, size, &mut |n| bar.set_position(at + n)).await?;
        held += f.size;
        got.push(f);
        if held >= BATCH_BYTES as u64 || pending.peek().is_none() {
            damaged.extend(verify_and_write(b, std::mem::take(&mut got), verbose).await?);
            held = 0;
        }
    }
    if !damaged.is_empty() {
        return Err(ProtocolError::Damaged(damaged).into());
    }
    bar.finish_and_clear();
    if !skipped.is_empty() {
        return Err(ProtocolError::BadNames(skipped).into());
    }
    Ok(())
}

/// The planned downloads less those whose local file is the board's
/// already (`-u`): same size, and the board's hash of it matches.
async fn differing(
    b: &Board,
    plan: Vec<(String, PathBuf, u64)>,
) -> Result<Vec<(String, PathBuf, u64)>> {
    let (same_size, mut out): (Vec<_>, Vec<_>) = plan.into_iter().partition(|(_, local, size)| {
        std::fs::metadata(local).is_ok_and(|m| m.is_file() && m.len() == *size)
    });
    if same_size.is_empty() {
        return Ok(out);
    }
    let query: Vec<(&str, u64)> = same_size.iter().map(|(r, _, n)| (r.as_str(), *n)).collect();
    let (algorithm, theirs) = b.digests(&query).await?;
    for (f, d) in same_size.into_iter().zip(theirs) {
        let ours = std::fs::read(&f.1).map(|data| board::digest(&algorithm, &data));
        if !matches!((ours, d), (Ok(o), Some(t)) if o == t) {
            out.push(f);
        }
    }
    Ok(out)
}

/// A download in a temporary file beside its destination, not yet checked.
struct Fetched {
    remote: String,
    local: PathBuf,
    tmp: tempfile::TempPath,
    size: u64,
    digests: board::Digests,
}

/// Bytes free to us on the filesystem that holds `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut v: libc::statvfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statvfs(c.as_ptr(), &mut v) } == 0)
        .then(|| (v.f_bavail as u64).saturating_mul(v.f_frsize as u64))
}

/// Downloads `remote` into a temporary file beside `local`, hashing it as
/// it comes; `progress` gets the bytes so far. A file the board says is
/// bigger than the space left there is refused before it begins; one that
/// fills the disk anyway (the board's size was wrong) ends at the first
/// failed write.
async fn fetch(
    b: &Board,
    remote: String,
    local: PathBuf,
    size: u64,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<Fetched> {
    use std::io::{Seek, Write};
    let dir = match local.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let local_error = |e: std::io::Error| Error::local(&local, e);
    if let Some(free) = free_bytes(&dir)
        && size > free
    {
        return Err(Error::Refused(crate::error::Refused::NoRoom {
            local: local.to_path_buf(),
            remote: board::shown(&remote).to_string(),
            size,
            free,
        }));
    }
    let mut file = tempfile::Builder::new()
        .prefix(".webrepl-mount-")
        .tempfile_in(&dir)
        .map_err(local_error)?;
    let mut digests = board::Digests::default();
    let mut n = 0u64;
    let mut failed: Option<std::io::Error> = None;
    let broken = tokio::sync::Notify::new();
    let stat = Stat {
        kind: EntryKind::File,
        size,
        mtime: 0,
    };
    {
        let mut sink = |p: Piece| {
            if failed.is_some() {
                return;
            }
            let r = match p {
                Piece::Data(d) => {
                    digests.update(&d);
                    n += d.len() as u64;
                    file.write_all(&d)
                }
                Piece::Restart => {
                    digests = board::Digests::default();
                    n = 0;
                    file.as_file().set_len(0).and_then(|()| file.rewind())
                }
            };
            if let Err(e) = r {
                failed = Some(e);
                broken.notify_one();
            }
            progress(n);
        };
        // A write that failed ends the transfer here (the board's end of
        // it is dropped with the session).
        tokio::select! {
            r = b.get_into(&remote, stat, &mut sink) => { r?; }
            () = broken.notified() => {}
        }
    }
    if let Some(e) = failed {
        return Err(local_error(e));
    }
    file.flush().map_err(local_error)?;
    Ok(Fetched {
        remote,
        local,
        tmp: file.into_temp_path(),
        size: n,
        digests,
    })
}

/// Checks downloaded files against the board's digest of them (CRC-32 or
/// sha256, whichever its firmware has) and renames those that match into
/// place; returns what did not, described (their temporary files go). A
/// file that changed size on the board since it was read counts as not
/// matching: what we have is not what it holds.
/// `host` (for -v): each file written is said as copied from it.
async fn verify_and_write(
    b: &Board,
    got: Vec<Fetched>,
    host: Option<(How, &str)>,
) -> Result<Vec<String>> {
    let query: Vec<(&str, u64)> = got.iter().map(|f| (f.remote.as_str(), f.size)).collect();
    let (algorithm, digests) = b.digests(&query).await?;
    write_verified(got, &algorithm, digests, host)
}

/// [`verify_and_write`] with the board's digests of `got` (each asked
/// for the size received) at hand.
fn write_verified(
    got: Vec<Fetched>,
    algorithm: &str,
    digests: Vec<Option<String>>,
    host: Option<(How, &str)>,
) -> Result<Vec<String>> {
    let mut damaged = Vec::new();
    for (f, theirs) in got.into_iter().zip(digests) {
        let ours = f.digests.finish(algorithm);
        let remote = &f.remote;
        match theirs {
            Some(d) if d == ours => {
                // An existing file keeps its mode, as writing over it did.
                let mode = std::fs::metadata(&f.local)
                    .map(|m| m.permissions())
                    .unwrap_or_else(|_| default_mode());
                std::fs::set_permissions(&f.tmp, mode)
                    .and_then(|()| f.tmp.persist(&f.local).map_err(|e| e.error))
                    .map_err(|e| Error::local(&f.local, e))?;
                if let Some((how, host)) = host {
                    said_copied(how, &format!("{host}:{remote}"), &f.local.to_string_lossy())?;
                }
            }
            Some(d) => damaged.push(format!(
                "{remote}: {algorithm} mismatch (board {d}, received {ours}): damaged in transit"
            )),
            None => damaged.push(format!(
                "{remote}: {} bytes received, the board's copy is another size now",
                f.size
            )),
        }
    }
    Ok(damaged)
}

/// The mode a new file gets: 0666 less the umask.
fn default_mode() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    // umask can only be read by setting it; set back at once.
    let mask = unsafe {
        let m = libc::umask(0o022);
        libc::umask(m);
        m
    };
    std::fs::Permissions::from_mode(0o666 & !mask)
}

/// `cp SRC... A:PATH B:PATH...` (a deploy to several boards) where some
/// of the boards are this user's mounts: the others get the files as
/// uploads, each mount through its files, as `cp SRC... MNT/PATH` (the
/// mount holds its board's one connection). `None` when that is not the
/// command. Every board is tried; the first error is the outcome.
pub async fn to_several_boards(paths: &[String], how: How, conn: &Conn) -> Option<Result<()>> {
    let remote = |p: &String| crate::remote::split_remote(p).is_some();
    let first = paths.iter().position(remote).filter(|&f| f > 0)?;
    let (srcs, dests) = paths.split_at(first);
    if dests.len() < 2 || !dests.iter().all(remote) {
        return None;
    }
    let (mut boards, mut mounts) = (Vec::new(), Vec::new());
    for d in dests {
        match crate::commands::through_mount(d, conn, true) {
            m if m == *d => boards.push(d.clone()),
            m => mounts.push(m),
        }
    }
    if mounts.is_empty() {
        return None;
    }
    let mut outcome = Ok(());
    let mut note = |r: Result<()>| {
        if let Err(e) = r {
            if outcome.is_ok() {
                outcome = Err(e);
            } else if !e.to_string().is_empty() {
                eprintln!("webrepl-mount: {}", crate::board::shown(&e.to_string()));
            }
        }
    };
    if !boards.is_empty() {
        note(run([srcs, &boards[..]].concat(), how, conn).await);
    }
    for m in &mounts {
        let mut args = srcs.to_vec();
        args.push(m.clone());
        let r = run(args, how, conn).await;
        let r = match r {
            Ok(()) => crate::commands::kept_in_journal(std::slice::from_ref(m)).await,
            r => r,
        };
        note(r);
    }
    Some(outcome)
}
