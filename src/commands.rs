//! What the commands other than the mount and `cp` do: `status`, `term`,
//! `reset`, `repl`, `exec`, `ls`. A command given a path inside a mount
//! talks to that mount's daemon; given HOST[:PORT], to the board.

mod files;
mod trouble;
pub(crate) use files::{Failed, is_glob, matching, target_pattern};
pub use files::{cat, df, mkdir, mv, rm, rmdir, sha256sum, touch, tree};
pub(crate) use trouble::{explained, kept_in_journal};

use crate::board::{self, Board, Entry, EntryKind};
use crate::connection::Conn;
use crate::error::{Error, Held, Lost, Result, Stopped};
use crate::remote::board_and_path;
use crate::session::Target;
use crate::terminal::sidecar;
use std::io::Write;
use std::path::{Path, PathBuf};

pub async fn status(target: &str, conn: &Conn) -> Result<()> {
    if let Some(mp) = mounted(target)? {
        for line in sidecar::ask(&mp, "status").await? {
            if line != "ok" {
                println!("{line}");
            }
        }
        return Ok(());
    }
    let (address, _, _) = conn.for_board(target)?;
    // The board answers one client: its mount's daemon knows, link down or up.
    if let Some(mp) = crate::mount::mounted_board(&address) {
        println!("mounted at {mp}");
        return Box::pin(status(&mp, conn)).await;
    }
    let b = conn.connect(target).await?;
    let (x, y, z) = b.session().version().await?;
    let v = b.statvfs("/").await;
    let heap = b.heap().await;
    b.session().close().await;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "board: {}\nfirmware: MicroPython {x}.{y}.{z}",
        Target::parse(&address)?
    )?;
    let v = v?;
    let block = v.frsize.max(v.bsize);
    writeln!(
        out,
        "flash: {} free of {}",
        human(v.bavail.saturating_mul(block)),
        human(v.blocks.saturating_mul(block))
    )?;
    match heap? {
        crate::board::Heap {
            free,
            helpers: Some((kept, buffer)),
        } => writeln!(
            out,
            "board RAM: {free} B free now, our helpers keep {kept} B (until a reset), buffers {buffer} B"
        )?,
        crate::board::Heap { free, .. } => writeln!(
            out,
            "board RAM: {free} B free now (our helpers are not defined since the last reset)"
        )?,
    }
    Ok(())
}

/// Bytes as people read them: `64.0 MB`, `1.2 KB`, `512 B` (powers of 1024,
/// as df -h).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KB", "MB", "GB", "TB", "PB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

pub async fn term(target: &str, conn: &Conn) -> Result<()> {
    // A board this user has mounted, by name or address: its mount's.
    let target = &through_mount(target, conn, true);
    if let Some(mp) = mounted(target)? {
        let stream = sidecar::connect(&mp).await?;
        let greeting = format!(
            "The REPL of the board mounted on {}. Ctrl-] detaches; Enter for a prompt.",
            mp.display()
        );
        return crate::terminal::run_attached(stream, &greeting).await;
    }
    Box::pin(repl(target, conn)).await
}

/// The page: served by the mount's daemon for a mountpoint (it goes on
/// after this returns), or here for a board until Ctrl-C.
pub async fn web(target: &str, listen: &str, open: bool, conn: &Conn) -> Result<()> {
    let addr = crate::web::parse_listen(listen)?;
    if let Some(mp) = mounted(target)? {
        let answer = sidecar::ask(&mp, &format!("web {addr}")).await?;
        let url = answer
            .iter()
            .find_map(|l| l.strip_prefix("url "))
            .map(str::to_string);
        sidecar_result(answer)?;
        let url = url.ok_or(Error::LinkLost(Lost::NoAddress))?;
        println!("{url}");
        browse(&url, open);
        return Ok(());
    }
    let b = conn.connect(target).await?;
    let name = b.session().target().to_string();
    let served = crate::web::start(
        addr,
        b.session().clone(),
        crate::web::Files::Board(b.clone()),
        name,
    )
    .await?;
    println!("{}", served.url);
    eprintln!("webrepl-mount: serving the page of {target}; Ctrl-C stops it");
    let redirect = browse(&served.url, open);
    let _ = tokio::signal::ctrl_c().await;
    served.task.abort();
    // It holds the token: gone with the server it opened.
    if let Some(f) = redirect {
        let _ = std::fs::remove_file(f);
    }
    b.session().close().await;
    Ok(())
}

/// Opens the page through a 0600 file in our private runtime directory
/// that redirects to the address (as Jupyter does): on xdg-open's command
/// line, which `ps` shows every user, the token would be anyone's.
/// The browser outlives us and can be dumped: it gets no password either.
fn browse(url: &str, open: bool) -> Option<PathBuf> {
    if !open {
        return None;
    }
    let file = match sidecar::page_redirect(url) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("webrepl-mount: cannot start a browser ({e}); open the address above");
            return None;
        }
    };
    if let Err(e) = std::process::Command::new("xdg-open")
        .arg(&file)
        .env_remove("WEBREPL_PASSWORD")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        eprintln!("webrepl-mount: cannot start a browser (xdg-open: {e}); open the address above");
    }
    Some(file)
}

pub async fn reset(target: &str, conn: &Conn) -> Result<()> {
    let target = &through_mount(target, conn, true);
    if let Some(mp) = mounted(target)? {
        return sidecar_result(sidecar::ask(&mp, "reset").await?);
    }
    let b = conn.connect(target).await?;
    b.session().reset().await
}

/// A mountpoint, or a board this user has mounted (by name or address):
/// the mount holds the board's one connection, and its REPL is the
/// mount's (`term`).
pub async fn repl(board: &str, conn: &Conn) -> Result<()> {
    if mounted(&through_mount(board, conn, true))?.is_some() {
        return term(board, conn).await;
    }
    let b = conn.connect(board).await?;
    let greeting = format!("Connected to {}. Ctrl-] leaves.", b.session().target());
    let r = crate::terminal::run(b.session(), &greeting).await;
    b.session().close().await;
    r
}

/// `share DIR BOARD`: DIR is the board's /remote (and its current
/// directory) while the board's REPL is on this terminal; mounted again
/// after a soft reset or a new link, taken away when the terminal ends.
pub async fn share(dir: &Path, board: &str, read_only: bool, conn: &Conn) -> Result<()> {
    use crate::share;
    let root = share::Root::new(dir, read_only)?;
    if let Some(mp) = mounted(board)? {
        let Some(dir) = root.dir().to_str() else {
            return Err(Error::Usage(crate::error::Usage::ShareDirName {
                dir: root.dir().to_path_buf(),
            }));
        };
        let hex: String = dir.bytes().map(|b| format!("{b:02x}")).collect();
        let command = format!("share {} {hex}", u8::from(read_only));
        sidecar_result(sidecar::ask(&mp, &command).await?)?;
        println!(
            "{dir} is the board's /remote and current directory (webrepl-mount share --stop {} ends it)",
            mp.display()
        );
        return Ok(());
    }
    let b = conn.connect(board).await?;
    let s = b.session().clone();
    let server = tokio::spawn(share::serve(s.clone(), root.clone()));
    let r = async {
        let on_flash = share::mount_on_board(&s, read_only).await?;
        let keeper = tokio::spawn(share::keep_mounted(s.clone(), read_only, on_flash));
        let greeting = format!(
            "{} is the board's /remote and current directory. Ctrl-] ends the share.",
            root.dir().display()
        );
        let r = crate::terminal::run(&s, &greeting).await;
        keeper.abort();
        r
    }
    .await;
    let _ = share::unmount_on_board(&s).await;
    server.abort();
    s.close().await;
    r
}

/// `share --stop MOUNTPOINT`: the mount's daemon stops sharing.
pub async fn unshare(target: &str) -> Result<()> {
    let Some(mp) = mounted(target)? else {
        return Err(Error::Mountpoint(crate::error::Mountpoint::NoShare {
            at: target.into(),
        }));
    };
    sidecar_result(sidecar::ask(&mp, "unshare").await?)
}

/// Runs code; a traceback is an error (exit code 11) with the traceback.
pub async fn exec(board: &str, code: &str, conn: &Conn) -> Result<()> {
    let code = if code == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        if !code.contains('\n') && Path::new(code).is_file() {
            return Err(Error::Invalid(format!(
                "{code} is a local file, and exec runs CODE: did you mean `webrepl-mount run {board} {code}`?"
            )));
        }
        if looks_like_a_path(code) {
            return Err(Error::Invalid(format!(
                "{code} looks like a file's path, and exec runs CODE: did you mean `webrepl-mount run {board} {code}`?"
            )));
        }
        code.to_string()
    };
    run_code(board, &code, conn).await
}

/// Whether `exec`'s one argument names a board rather than being code: a
/// mountpoint (or a path in a mount), a board of boards.toml, a URL, or
/// an IP address with or without its port. As code it would only come
/// back as a NameError or SyntaxError.
pub fn names_a_board(arg: &str) -> bool {
    let word = arg.trim();
    if word.is_empty() || word.contains(char::is_whitespace) {
        return false;
    }
    if word.starts_with("ws://") || word.starts_with("wss://") {
        return true;
    }
    if word.parse::<std::net::IpAddr>().is_ok() || word.parse::<std::net::SocketAddr>().is_ok() {
        return true;
    }
    let named =
        !word.contains(['/', ':', '.', '(']) && matches!(crate::boards::find(word), Ok(Some(_)));
    named || (Path::new(word).is_dir() && matches!(mounted(word), Ok(Some(_))))
}

/// One word that names a file rather than being code: it would only
/// come back as a SyntaxError or NameError from the board.
fn looks_like_a_path(code: &str) -> bool {
    let word = code.trim();
    let pathy = word
        .chars()
        .all(|c| c.is_alphanumeric() || "/._-~".contains(c));
    pathy
        && !word.is_empty()
        && (word.ends_with(".py") || word.ends_with(".mpy") || word.contains('/'))
        && word.chars().any(char::is_alphabetic)
}

/// `run BOARD FILE`: the file's text run on the board, its output
/// printed as it comes (as with exec; Ctrl-C stops it on the board).
pub async fn run(file: &Path, board: &str, conn: &Conn) -> Result<()> {
    let code = std::fs::read_to_string(file).map_err(|e| Error::local(file, e))?;
    run_code(board, &code, conn).await
}

async fn run_code(board: &str, code: &str, conn: &Conn) -> Result<()> {
    // Output is written as it comes: a program that prints for ever is
    // followed, not held (and a closed stdout stops it on the board).
    let (stdout, stderr) = match mounted(board)? {
        Some(mp) => {
            let hex: String = code.bytes().map(|b| format!("{b:02x}")).collect();
            let mut out = (Vec::new(), Vec::new());
            let mut answer = Vec::new();
            let command = format!("exec {hex}");
            let printer = Printer::new();
            let asked = sidecar::ask_each(&mp, &command, |line| {
                if let Some(h) = line.strip_prefix("part ") {
                    printer.print(unhex_bytes(h))?;
                } else if let Some(h) = line.strip_prefix("note ") {
                    // A saved file the program runs without.
                    eprintln!(
                        "webrepl-mount: {}",
                        String::from_utf8_lossy(&unhex_bytes(h))
                    );
                } else if let Some(h) = line.strip_prefix("out ") {
                    out.0 = unhex_bytes(h);
                } else if let Some(h) = line.strip_prefix("err ") {
                    out.1 = unhex_bytes(h);
                } else {
                    answer.push(line.to_string());
                }
                Ok(())
            });
            tokio::select! {
                r = asked => r?,
                _ = tokio::signal::ctrl_c() => {
                    return Err(Error::Interrupted(Stopped::BoardProgram));
                }
            }
            printer.finish()?;
            sidecar_result(answer)?;
            out
        }
        None => {
            let b = conn.connect(board).await?;
            let r = stream_exec(&b, code).await;
            b.session().close().await;
            r?
        }
    };
    std::io::stdout().write_all(&stdout)?;
    if !stderr.is_empty() {
        return Err(Error::Traceback(
            String::from_utf8_lossy(&stderr).trim_end().to_string(),
        ));
    }
    Ok(())
}

/// How `ls` lists.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListHow {
    /// Types and sizes (`-l`).
    pub long: bool,
    /// Sizes in human units (`-h`).
    pub human_sizes: bool,
    /// The whole tree below (`-R`).
    pub recursive: bool,
    /// Names that start with a dot too (`-a`); our own files stay hidden.
    pub all: bool,
}

/// `ls TARGET...`, as coreutils' ls: a directory among several is headed
/// by its name, a target that fails is said and the others are listed,
/// and the command then exits 1.
pub async fn ls(targets: &[String], how: ListHow, conn: &Conn) -> Result<()> {
    let mut failed = files::Failed::default();
    let mut boards = files::Boards::new(conn);
    let mut out = Heads {
        several: targets.len() > 1,
        printed: false,
    };
    for target in targets {
        let r = ls_one(&mut boards, target, how, &mut out).await;
        // An argument that names no board is the command line's fault
        // (exit 2), not a listing's.
        if let Err(e) = &r
            && e.kind() == crate::error::Kind::Invalid
        {
            return boards.close(r).await;
        }
        if !failed.note(r.map_err(|e| crate::remote::other_reading(target, e))) {
            break;
        }
    }
    boards.close(failed.result()).await
}

/// The headers of a listing of several targets.
struct Heads {
    several: bool,
    /// Whether anything was listed yet (a blank line goes between).
    printed: bool,
}

impl Heads {
    /// Before what `target` lists: `TARGET:` for a directory among several.
    fn start(&mut self, out: &mut impl Write, target: &str, dir: bool) -> Result<()> {
        if self.several && dir {
            if self.printed {
                writeln!(out)?;
            }
            writeln!(out, "{}:", board::shown(target))?;
        }
        self.printed = true;
        Ok(())
    }
}

async fn ls_one(
    boards: &mut files::Boards<'_>,
    target: &str,
    how: ListHow,
    heads: &mut Heads,
) -> Result<()> {
    let size = |n: u64| {
        if how.human_sizes {
            human(n)
        } else {
            n.to_string()
        }
    };
    if let Some((_, here)) = mount_path(target)? {
        // A quoted pattern: each match listed, as the shell's expansion.
        let found = match files::local_matching(&here, target) {
            Some(found) => found?,
            None => vec![(target.to_string(), here)],
        };
        heads.several |= found.len() > 1;
        for (shown, p) in found {
            if let Err(e) = local_list(&p, &shown, how, &size, heads) {
                return Err(explained(e, &shown).await);
            }
        }
        return Ok(());
    }
    let (board, path) = board_and_path(target)?;
    let b = boards.get(&board).await?;
    let normal = board::normalize(&path)?;
    if is_glob(&normal) {
        let found = matching(&b, target, &normal).await?;
        heads.several |= found.len() > 1;
        for p in found {
            list(&b, &format!("{board}:{p}"), &p, how, &size, heads).await?;
        }
        return Ok(());
    }
    list(&b, target, &path, how, &size, heads).await
}

/// A name `ls` shows without `-a`: none of its parts (below the listed
/// directory) starts with a dot.
fn shown_without_a(rel: &str) -> bool {
    !rel.split('/').any(|c| c.starts_with('.'))
}

/// `ls` of a path in a mount, as `ls` of the board's path prints it.
fn local_list(
    p: &Path,
    arg: &str,
    how: ListHow,
    size_of: &dyn Fn(u64) -> String,
    heads: &mut Heads,
) -> Result<()> {
    let meta = std::fs::metadata(p).map_err(|e| files::local_error(e, arg))?;
    let entries: Vec<(String, bool)> = if meta.is_dir() {
        local_walk(p, arg, how.recursive)?
            .into_iter()
            .map(|(_, rel, is_dir)| (rel, is_dir))
            .filter(|(rel, _)| how.all || shown_without_a(rel))
            .collect()
    } else {
        vec![(arg.to_string(), false)]
    };
    let mut out = std::io::stdout().lock();
    heads.start(&mut out, arg, meta.is_dir())?;
    for (rel, is_dir) in entries {
        let shown = board::shown(&rel);
        let shown = if is_dir { format!("{shown}/") } else { shown };
        if how.long {
            let size = std::fs::symlink_metadata(if meta.is_dir() {
                p.join(&rel)
            } else {
                p.to_path_buf()
            })
            .map(|m| m.len())
            .unwrap_or(0);
            let kind = if is_dir { 'd' } else { '-' };
            writeln!(out, "{kind} {:>9} {shown}", size_of(size))?;
        } else {
            writeln!(out, "{shown}")?;
        }
    }
    Ok(())
}

/// The entries below a local directory (its whole tree when `recursive`),
/// sorted by path: (depth, path relative to `dir`, whether a directory).
fn local_walk(dir: &Path, arg: &str, recursive: bool) -> Result<Vec<(usize, String, bool)>> {
    let mut found = Vec::new();
    let mut todo = vec![(0usize, String::new())];
    while let Some((depth, rel)) = todo.pop() {
        let here = if rel.is_empty() {
            dir.to_path_buf()
        } else {
            dir.join(&rel)
        };
        let read = std::fs::read_dir(&here).map_err(|e| files::local_error(e, arg))?;
        for e in read {
            let e = e.map_err(|e| files::local_error(e, arg))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            if is_dir && recursive {
                todo.push((depth + 1, path.clone()));
            }
            found.push((depth, path, is_dir));
        }
    }
    found.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(found)
}

/// `HOST:PATH` (or a named board) that this user has mounted, as the path
/// in the mount: the board answers one client, its mount, so a command
/// given the board goes through the mount as `status` does (it was
/// refused as busy). The board's root stays a board path for the commands
/// that remove (`root` false): they refuse it in words.
pub fn through_mount(arg: &str, conn: &Conn, root: bool) -> String {
    let routed = || -> Option<String> {
        let (board, path) = match crate::remote::split_remote(arg) {
            Some(bp) => bp,
            // A bare board (no path): its root.
            None if !Path::new(arg).exists() && !arg.starts_with(['/', '.', '~']) => {
                (arg.to_string(), "/".to_string())
            }
            None => return None,
        };
        let path = board::normalize(if path.is_empty() { "/" } else { &path }).ok()?;
        if path == "/" && !root {
            return None;
        }
        let (address, _, _) = conn.for_board(&board).ok()?;
        let mp = crate::mount::mounted_board(&address)?;
        // `HOST:/x/` stays a directory's name in the mount.
        let slash = if arg.ends_with('/') && path != "/" {
            "/"
        } else {
            ""
        };
        Some(format!(
            "{mp}{}{slash}",
            if path == "/" { "" } else { &path }
        ))
    };
    routed().unwrap_or_else(|| arg.to_string())
}

/// The board `:PATH` and a board-less `exec CODE` or `run FILE` go to:
/// `--board` (WEBREPL_BOARD), else this user's one mount; with whether it
/// is a mount. `what` is the argument that needed it.
pub fn default_board(given: Option<&str>, what: &str) -> Result<(String, bool)> {
    if let Some(b) = given {
        return Ok((b.to_string(), mounted(b)?.is_some()));
    }
    let give = "give --board BOARD (or WEBREPL_BOARD=BOARD)";
    match crate::mount::live_mounts().as_slice() {
        [one] => Ok((one.display().to_string(), true)),
        [] => Err(Error::Invalid(format!(
            "{what} is on the default board, and there is none: {give}, \
             or name the board (HOST:PATH, NAME:PATH, or a path in a mount)"
        ))),
        several => Err(Error::Invalid(format!(
            "{what} is on the default board, and {} boards are mounted ({}): {give}, \
             or write a path in one of them",
            several.len(),
            several
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// mpremote's `:PATH` arguments (`cp main.py :`) as paths on the default
/// board (a local file so named stays itself).
pub fn colon_paths(args: Vec<String>, given: Option<&str>) -> Result<Vec<String>> {
    let mut default = None;
    let mut out = Vec::new();
    for a in args {
        let Some(path) = a.strip_prefix(':').filter(|_| !Path::new(&a).exists()) else {
            out.push(a);
            continue;
        };
        let (board, mount) = match &default {
            Some(d) => d,
            None => default.insert(default_board(given, &a)?),
        };
        out.push(crate::remote::on_default(path, board, *mount));
    }
    Ok(out)
}

/// `NAME/` where a board path may go, NAME a board of boards.toml: that
/// board's root (`cp main.py kit/`), as the file commands take it; one
/// that is a local directory too is refused with both readings.
pub fn named_root(arg: String) -> Result<String> {
    let Some(name) = arg.strip_suffix('/') else {
        return Ok(arg);
    };
    if name.is_empty() || name.contains(['/', ':']) || name.starts_with(['.', '~']) {
        return Ok(arg);
    }
    if !matches!(crate::boards::find(name), Ok(Some(_))) {
        return Ok(arg);
    }
    if Path::new(name).exists() {
        return Err(Error::Invalid(format!(
            "{arg} is both the board {name} (boards.toml) and a directory here: \
             write {name}: for the board, ./{arg} for the directory"
        )));
    }
    Ok(format!("{name}:/"))
}

/// `run [BOARD] FILE` (as `exec [BOARD] CODE`); the older `run FILE
/// BOARD` where only FILE is a local file (or looks like one).
pub fn run_args(mut args: Vec<String>, given: Option<&str>) -> Result<(String, String)> {
    if args.len() < 2 {
        let file = args.pop().unwrap_or_default();
        return Ok((default_board(given, "run FILE")?.0, file));
    }
    let (x, y) = (args.remove(0), args.remove(0));
    let file = |a: &str| Path::new(a).is_file();
    match (file(&x), file(&y)) {
        (true, true) => Err(Error::Invalid(format!(
            "run {x} {y}: both are local files: write run BOARD FILE"
        ))),
        (true, false) => Ok((y, x)),
        (false, false) if looks_like_a_path(&x) && !looks_like_a_path(&y) => Ok((y, x)),
        _ => Ok((x, y)),
    }
}

/// `mv` between here and a board path (as written, before a mounted
/// board's paths become the mount's): a copy, then the sources removed.
/// Within one board, or one mount, it is a rename; between a mount and
/// here, the system's mv does it (and a path that leaves a mount with
/// `..` is refused, never a host file).
pub fn crosses(paths: &[String]) -> bool {
    let board = |p: &String| crate::remote::split_remote(p).is_some();
    paths.iter().any(board) && !paths.iter().all(board)
}

/// `mv` from one board to another (each argument a board path, not all
/// on one board): through this machine, then the sources removed.
pub fn across_boards(paths: &[String], conn: &Conn) -> bool {
    let mut boards = paths.iter().map(|p| {
        crate::remote::split_remote(p)
            .and_then(|(b, _)| conn.for_board(&b).ok())
            .map(|(address, _, _)| address)
    });
    let Some(Some(first)) = boards.next() else {
        return false;
    };
    let rest: Option<Vec<String>> = boards.collect();
    rest.is_some_and(|r| r.iter().any(|b| *b != first))
}

/// [`through_mount`] of each argument.
pub fn through_mounts(args: Vec<String>, conn: &Conn, root: bool) -> Vec<String> {
    args.into_iter()
        .map(|a| through_mount(&a, conn, root))
        .collect()
}

/// The mount a local path is in (any depth), if `target` names a local
/// path at all: a path is never taken for a host name.
pub(crate) fn mounted(target: &str) -> Result<Option<PathBuf>> {
    Ok(mount_path(target)?.map(|(mp, _)| mp))
}

/// The mount a local path is in and the path itself, `.` and `..` taken
/// away lexically first (as `realpath -s`): `MNT/../x` is a file beside
/// the mount, never the mount's, and is refused as any path outside one.
pub(crate) fn mount_path(target: &str) -> Result<Option<(PathBuf, PathBuf)>> {
    let p = Path::new(target);
    // `mnt/new/file`: a path whose first directories are here is here
    // too, existing or not (a board path has a `:`).
    let local = p.exists()
        || sidecar::stale(p)
        || target.starts_with(['/', '.', '~'])
        || (!target.contains(':')
            && p.ancestors()
                .skip(1)
                .any(|a| !a.as_os_str().is_empty() && a.is_dir()));
    if !local {
        return Ok(None);
    }
    let abs = std::path::absolute(p).map_err(|e| Error::local(target, e))?;
    in_mount(target, &abs).map(Some)
}

/// The mount `abs` (absolute) is in, after `.` and `..` are resolved
/// lexically, and that resolved path.
pub(crate) fn in_mount(target: &str, abs: &Path) -> Result<(PathBuf, PathBuf)> {
    let abs = lexical(abs);
    for dir in abs.ancestors() {
        if sidecar::socket_path(dir).exists() {
            return Ok((dir.to_path_buf(), abs.clone()));
        }
        if sidecar::stale(dir) {
            // Every directory in a dead mount is stale: the mountpoint is
            // the last of them going up.
            let mut mp = dir;
            while let Some(up) = mp.parent().filter(|u| sidecar::stale(u)) {
                mp = up;
            }
            return Ok((mp.to_path_buf(), abs.clone()));
        }
    }
    Err(Error::Mountpoint(crate::error::Mountpoint::NotInAMount {
        at: target.into(),
    }))
}

/// An absolute path without `.` and `..`, symbolic links not followed.
fn lexical(abs: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// A daemon's answer: `ok`, or `error KIND MESSAGE`.
fn sidecar_result(answer: Vec<String>) -> Result<()> {
    for line in &answer {
        if line == "ok" {
            return Ok(());
        }
        if let Some(rest) = line.strip_prefix("error ") {
            return Err(Error::from_wire(rest));
        }
        if line.starts_with("not flushed") {
            eprintln!("{line}");
        }
    }
    Err(Error::LinkLost(Lost::DaemonSilent))
}

/// A person's program on `b`, its output written as it comes; Ctrl-C here,
/// or a stdout that is closed, stops it on the board (the stream, dropped,
/// sends Ctrl-C). Returns what came after the last piece, and the traceback.
async fn stream_exec(b: &Board, code: &str) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut s = b.exec_stream(code)?;
    let printer = Printer::new();
    loop {
        tokio::select! {
            p = s.pieces.recv() => match p {
                Some(crate::session::Piece::Data(d)) => printer.print(d)?,
                Some(crate::session::Piece::Restart) => {}
                None => break,
            },
            _ = tokio::signal::ctrl_c() => {
                return Err(Error::Interrupted(Stopped::BoardProgram));
            }
        }
    }
    printer.finish()?;
    let o = s.finish().await?;
    Ok((o.stdout, o.stderr))
}

/// Output a program sends while it runs that stdout has not taken yet, at
/// most: past it (a pager paused, `| sleep`), the program is stopped
/// rather than held in memory.
const MAX_UNREAD: usize = 8 << 20;

/// Standard output written by a thread of its own: a reader that stalls
/// blocks that thread, not the program's stream, so Ctrl-C is still heard
/// and what waits is counted.
struct Printer {
    tx: std::sync::mpsc::Sender<Vec<u8>>,
    unread: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    failed: std::sync::Arc<std::sync::Mutex<Option<std::io::Error>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Printer {
    fn new() -> Printer {
        use std::sync::atomic::Ordering;
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let unread = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let failed = std::sync::Arc::new(std::sync::Mutex::new(None));
        let thread = {
            let (unread, failed) = (unread.clone(), failed.clone());
            std::thread::spawn(move || {
                let mut o = std::io::stdout();
                for d in rx {
                    if let Err(e) = o.write_all(&d).and_then(|()| o.flush()) {
                        *failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                        return;
                    }
                    unread.fetch_sub(d.len(), Ordering::SeqCst);
                }
            })
        };
        Printer {
            tx,
            unread,
            failed,
            thread,
        }
    }

    fn check(&self) -> Result<()> {
        match self.failed.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    fn print(&self, d: Vec<u8>) -> Result<()> {
        self.check()?;
        let n = self
            .unread
            .fetch_add(d.len(), std::sync::atomic::Ordering::SeqCst)
            + d.len();
        if n > MAX_UNREAD {
            return Err(Error::running(Held::Unread {
                mib: MAX_UNREAD >> 20,
            }));
        }
        // The thread ends only after a write failed: said by `check`.
        let _ = self.tx.send(d);
        Ok(())
    }

    /// Waits until what was printed is written.
    fn finish(self) -> Result<()> {
        drop(self.tx);
        let _ = self.thread.join();
        match self.failed.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

fn unhex_bytes(h: &str) -> Vec<u8> {
    (0..h.len() / 2)
        .filter_map(|i| u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

async fn list(
    b: &Board,
    arg: &str,
    path: &str,
    how: ListHow,
    size_of: &dyn Fn(u64) -> String,
    heads: &mut Heads,
) -> Result<()> {
    let path = board::normalize(path)?;
    let st = b
        .stat(&path)
        .await?
        .ok_or_else(|| Error::NotFound(path.clone()))?;
    let mut skipped = Vec::new();
    let entries = if st.kind == EntryKind::File {
        vec![Entry {
            path: path.clone(),
            kind: EntryKind::File,
            size: st.size,
            mtime: st.mtime,
        }]
    } else {
        let listing = b.listing(&path, how.recursive).await?;
        skipped = listing.skipped;
        let mut e = ours_hidden(listing.entries);
        e.sort_by(|a, b| a.path.cmp(&b.path));
        e
    };
    let mut out = std::io::stdout().lock();
    heads.start(&mut out, arg, st.kind == EntryKind::Dir)?;
    for e in entries {
        let shown = if st.kind == EntryKind::Dir {
            let rel = e
                .path
                .strip_prefix(&path)
                .unwrap_or(&e.path)
                .trim_start_matches('/');
            if !how.all && !shown_without_a(rel) {
                continue;
            }
            rel.to_string()
        } else {
            e.path.clone()
        };
        // A board's newline or escape sequence must not reach the terminal.
        let shown = board::shown(&shown);
        let shown = if e.kind == EntryKind::Dir {
            format!("{shown}/")
        } else {
            shown
        };
        if how.long {
            writeln!(
                out,
                "{} {:>9} {}",
                if e.kind == EntryKind::Dir { 'd' } else { '-' },
                size_of(e.size),
                shown
            )?;
        } else {
            writeln!(out, "{shown}")?;
        }
    }
    if !skipped.is_empty() {
        return Err(crate::protocol::ProtocolError::BadNames(skipped).into());
    }
    Ok(())
}

/// A listing without our own files at the board's root, as the mount
/// shows it (a pattern never matches them either; named, they are shown).
pub(crate) fn ours_hidden(mut entries: Vec<Entry>) -> Vec<Entry> {
    entries.retain(|e| {
        let leaf = e.path.rsplit('/').next().unwrap_or(&e.path);
        !(board::parent(&e.path) == "/" && crate::cache::identity::hidden(leaf))
    });
    entries
}
