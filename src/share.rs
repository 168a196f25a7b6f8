//! `webrepl-mount share DIR BOARD`: a host directory as the board's
//! `/remote` and current directory, so that `import x` on the board reads
//! `DIR/x.py` and a program's files land in DIR (mpremote's `mount`, over
//! WebREPL). The board's side is src/board/share.py; the wire format is in
//! session/share.rs. Everything the board names is checked here: one path
//! below DIR, no `..`, no symlink that leads out of it.

use crate::error::{Error, Result};
use crate::session::{Ask, LinkProgram, Run, Session};
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use tracing::{debug, warn};

/// The board's VFS class, pasted once per boot.
pub const SHARE_PY: &str = include_str!("board/share.py");
/// The programs that define, mount and unmount it (see [`share_program`]).
const PROGRAMS_PY: &str = include_str!("board/share_programs.py");

const EACCES: u8 = 13;
const EINVAL: u8 = 22;
const EROFS: u8 = 30;
const EIO: u8 = 5;
/// The session's answer when nothing shares on it (session/mod.rs).
const ENODEV: u8 = 19;
/// The most the board asks for in one read (its pieces are 4 KB).
const MOST_READ: u32 = 4096;
/// The most of a listing one answer holds: a small board takes a few of
/// these one after the other, not one block for a whole big directory.
const LIST_PAGE: usize = 2048;

/// DIR, as the board may see it.
#[derive(Debug, Clone)]
pub struct Root {
    dir: PathBuf,
    read_only: bool,
}

fn errno(e: &std::io::Error) -> u8 {
    e.raw_os_error()
        .and_then(|n| u8::try_from(n).ok())
        // ENODEV tells the board that nobody shares (it unmounts).
        .filter(|&n| n != 0 && n != ENODEV)
        .unwrap_or(EIO)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

impl Root {
    pub fn new(dir: &Path, read_only: bool) -> Result<Root> {
        let dir =
            fs::canonicalize(dir).map_err(|e| Error::Invalid(format!("{}: {e}", dir.display())))?;
        if !dir.is_dir() {
            return Err(Error::Invalid(format!(
                "{}: not a directory",
                dir.display()
            )));
        }
        Ok(Root { dir, read_only })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The host path for a board path. `new`: the last component may not
    /// exist yet (its parent must). A `..` goes up within the path, as the
    /// board's own paths do (`sub/../x.py` is `x.py`). Refused (EACCES): a
    /// `..` above DIR, anything that is not one clean path, and a symlink
    /// whose target is outside DIR.
    fn resolve(&self, path: &[u8], new: bool) -> std::result::Result<PathBuf, u8> {
        let path = std::str::from_utf8(path).map_err(|_| EINVAL)?;
        let mut rel = PathBuf::new();
        for c in path.split('/') {
            match c {
                "" | "." => {}
                ".." if rel.pop() => {}
                ".." => return Err(EACCES),
                c if c.contains('\0') || c.contains('\\') => return Err(EINVAL),
                c => rel.push(c),
            }
        }
        let full = self.dir.join(&rel);
        let inside = |p: &Path| -> std::result::Result<PathBuf, u8> {
            let real = fs::canonicalize(p).map_err(|e| errno(&e))?;
            if real.starts_with(&self.dir) {
                Ok(real)
            } else {
                Err(EACCES)
            }
        };
        if !new || fs::symlink_metadata(&full).is_ok() {
            return inside(&full);
        }
        let (Some(parent), Some(name)) = (full.parent(), full.file_name()) else {
            return Err(EACCES);
        };
        Ok(inside(parent)?.join(name))
    }

    /// The answer to one request: status (0 or an errno) and data.
    pub fn answer(&self, ask: &Ask) -> (u8, Vec<u8>) {
        match self.try_answer(ask) {
            Ok(data) => (0, data),
            Err(e) => (e, Vec::new()),
        }
    }

    fn try_answer(&self, ask: &Ask) -> std::result::Result<Vec<u8>, u8> {
        let a = &ask.args[..];
        let writes = matches!(ask.cmd, b'c' | b'w' | b'm' | b'x' | b'X' | b'n');
        if writes && self.read_only {
            return Err(EROFS);
        }
        let io = |e: std::io::Error| errno(&e);
        match ask.cmd {
            b's' => {
                let m = fs::metadata(self.resolve(a, false)?).map_err(io)?;
                let mode: u32 = if m.is_dir() { 0x4000 } else { 0x8000 };
                let size = u32::try_from(m.len()).unwrap_or(u32::MAX);
                let mtime = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
                let mut out = Vec::with_capacity(12);
                for v in [mode, size, mtime] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                Ok(out)
            }
            b'l' => {
                // A page of the listing: entries from index `from` on, as
                // many as fit [`LIST_PAGE`]; a first byte says whether more
                // follow (the board's ilistdir asks for the next page).
                let Some(from) = u32_at(a, 0) else {
                    return Err(EINVAL);
                };
                let dir = self.resolve(&a[4..], false)?;
                let mut names: Vec<(bool, Vec<u8>)> = Vec::new();
                for e in fs::read_dir(&dir).map_err(io)? {
                    let e = e.map_err(io)?;
                    let Some(name) = e.file_name().to_str().map(|s| s.as_bytes().to_vec()) else {
                        continue;
                    };
                    if name.len() > 255 {
                        continue;
                    }
                    // What a symlink leads to, if it stays inside.
                    let is_dir = fs::canonicalize(e.path())
                        .ok()
                        .filter(|p| p.starts_with(&self.dir))
                        .is_some_and(|p| p.is_dir());
                    names.push((is_dir, name));
                }
                names.sort();
                let mut out = vec![0];
                let from = usize::try_from(from).unwrap_or(usize::MAX);
                for (i, (is_dir, name)) in names.iter().enumerate().skip(from) {
                    if out.len() + 2 + name.len() > LIST_PAGE {
                        debug!("{}: listing goes on after entry {i}", dir.display());
                        out[0] = 1;
                        break;
                    }
                    out.push(if *is_dir { b'd' } else { b'f' });
                    out.push(name.len() as u8);
                    out.extend_from_slice(name);
                }
                Ok(out)
            }
            b'r' => {
                let (Some(at), Some(n)) = (u32_at(a, 0), u32_at(a, 4)) else {
                    return Err(EINVAL);
                };
                let path = self.resolve(&a[8..], false)?;
                let mut f = fs::File::open(path).map_err(io)?;
                f.seek(SeekFrom::Start(u64::from(at))).map_err(io)?;
                let mut out = Vec::new();
                f.take(u64::from(n.min(MOST_READ)))
                    .read_to_end(&mut out)
                    .map_err(io)?;
                Ok(out)
            }
            b'c' => {
                fs::File::create(self.resolve(a, true)?).map_err(io)?;
                Ok(Vec::new())
            }
            b'w' => {
                let Some(at) = u32_at(a, 0) else {
                    return Err(EINVAL);
                };
                let rest = &a[4..];
                let Some(nul) = rest.iter().position(|&b| b == 0) else {
                    return Err(EINVAL);
                };
                let path = self.resolve(&rest[..nul], true)?;
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path)
                    .map_err(io)?;
                f.seek(SeekFrom::Start(u64::from(at))).map_err(io)?;
                f.write_all(&rest[nul + 1..]).map_err(io)?;
                Ok(Vec::new())
            }
            b'm' => fs::create_dir(self.resolve(a, true)?)
                .map(|()| Vec::new())
                .map_err(io),
            b'x' => fs::remove_file(self.resolve(a, false)?)
                .map(|()| Vec::new())
                .map_err(io),
            b'X' => fs::remove_dir(self.resolve(a, false)?)
                .map(|()| Vec::new())
                .map_err(io),
            b'n' => {
                let Some(nul) = a.iter().position(|&b| b == 0) else {
                    return Err(EINVAL);
                };
                let from = self.resolve(&a[..nul], false)?;
                let to = self.resolve(&a[nul + 1..], true)?;
                fs::rename(from, to).map(|()| Vec::new()).map_err(io)
            }
            _ => Err(EINVAL),
        }
    }
}

/// Answers the board's requests from `root` until the session ends.
pub async fn serve(session: Session, root: Root) -> Result<()> {
    let mut asks = session.share_requests()?;
    while let Some(ask) = asks.recv().await {
        let (status, data) = root.answer(&ask);
        debug!(
            "share: {} {:?} -> {status}, {} bytes",
            ask.cmd as char,
            String::from_utf8_lossy(&ask.args[..ask.args.len().min(80)]),
            data.len()
        );
        session.share_answer(ask.seq, status, data)?;
    }
    Ok(())
}

/// The class's copy on the board's flash, written once per version: a new
/// link (after a soft reset the class is gone) defines it from there, not
/// from its 9 KB sent again.
pub use crate::board::snippets::SHARE_FILE;

/// The class as it is kept in [`SHARE_FILE`]: a first line `#<version>`,
/// then its pieces (see [`class_pieces`]), each after a [`PIECE_MARK`]
/// line but the first.
fn share_file_text() -> String {
    let version = share_py_version();
    format!("#{version:016x}\n{}", class_pieces().join(PIECE_MARK))
}

/// Between two pieces of the class in [`SHARE_FILE`].
const PIECE_MARK: &str = "#--\n";

/// Source bytes a piece of the class holds at most (one method may be
/// more): compiled alone, a piece needs a few times its size of heap;
/// the whole class at once (8 KB) needed more than 50 KB, and failed with
/// MemoryError beside a mount on a 128 KB board.
const PIECE_MAX: usize = 1500;

/// The class as programs compiled one after the other: the class with its
/// first member, then its other members put into it a few at a time, each
/// inside a function of ours so that nothing of a person's in the REPL's
/// namespace is touched; the last piece sets the version.
fn class_pieces() -> Vec<String> {
    let code = class_code();
    let mut lines = code.lines();
    let head = lines.next().unwrap_or("class _WRFS:");
    // Members of the class: each starts at one level in.
    let mut members: Vec<String> = Vec::new();
    for line in lines {
        let top = line.starts_with("    ") && !line.starts_with("     ");
        if top || members.is_empty() {
            members.push(String::new());
        }
        if let Some(m) = members.last_mut() {
            m.push_str(line);
            m.push('\n');
        }
    }
    let members: Vec<String> = members.into_iter().flat_map(nested_split).collect();
    let mut members = members.into_iter();
    let first = members.next().unwrap_or_else(|| "    pass\n".into());
    let mut pieces = vec![format!("{head}\n{first}")];
    let mut piece = String::new();
    for m in members {
        let name = def_name(&m);
        // A method of a nested class (see `nested_split`) goes into it.
        let member = match m.strip_prefix(NESTED) {
            Some(rest) => {
                let (class, method) = rest.split_once('\n').unwrap_or(("", rest));
                let name = def_name(method);
                format!("{method}    _WRFS.{class}.{name} = {name}\n")
            }
            None => format!("{m}    _WRFS.{name} = {name}\n"),
        };
        if !piece.is_empty() && piece.len() + member.len() > PIECE_MAX {
            pieces.push(wrapped(&piece));
            piece.clear();
        }
        piece.push_str(&member);
    }
    piece.push_str(&format!("    _WRFS.V = '{:016x}'\n", share_py_version()));
    pieces.push(wrapped(&piece));
    pieces
}

/// The name a member's `def NAME(` line defines.
fn def_name(member: &str) -> String {
    member
        .trim_start()
        .split_once(' ')
        .map(|(_, rest)| rest)
        .unwrap_or("")
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Marks a member that is a method of a nested class: `NESTED` +
/// class name + `\n` + the method one level in.
const NESTED: &str = "#nested ";

/// A member that is a nested class (the share's file class, 3 KB with
/// its methods: compiled whole it needed 1,168 B in one piece, which a
/// 64 KB board beside a mount did not always have) as the class with its
/// first method, then each other method on its own, put into it.
fn nested_split(member: String) -> Vec<String> {
    let Some(name) = member.strip_prefix("    class ") else {
        return vec![member];
    };
    let name: String = name
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    let (mut parts, mut defs) = (vec![String::new()], 0);
    for line in member.lines() {
        if line.starts_with("        def ") {
            defs += 1;
            if defs > 1 {
                parts.push(String::new());
            }
        }
        if let Some(p) = parts.last_mut() {
            p.push_str(line);
            p.push('\n');
        }
    }
    let mut out = Vec::new();
    let mut parts = parts.into_iter();
    if let Some(first) = parts.next() {
        out.push(first);
    }
    for p in parts {
        let dedented: String = p
            .lines()
            .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
            .collect();
        out.push(format!("{NESTED}{name}\n{dedented}"));
    }
    out
}

/// The class defined from its pieces sent in the program (where its copy
/// on flash could not be written): each compiled alone, as from flash.
fn define_pasted() -> String {
    let pieces: Vec<String> = class_pieces().iter().map(|p| py_str(p)).collect();
    share_program("pasted").replace("WRFS_PIECES", &pieces.join(","))
}

/// The program `name` of `share_programs.py` (the lines after its
/// `# == name` line up to the next, but comments) with the class's version
/// and the name of its copy on flash filled in.
fn share_program(name: &str) -> String {
    let head = format!("# == {name}");
    let mut code = String::new();
    let mut inside = false;
    for line in PROGRAMS_PY.lines() {
        if line.starts_with("# == ") {
            inside = line == head;
        } else if inside && !line.trim_start().starts_with('#') && !line.trim().is_empty() {
            code.push_str(line);
            code.push('\n');
        }
    }
    code.replace("WRFS_VERSION", &format!("{:016x}", share_py_version()))
        .replace("WRFS_FILE", SHARE_FILE)
}

/// `text` as a Python str literal: quotes, backslashes and control
/// characters escaped, the rest as it is (the class is ASCII source).
fn py_str(text: &str) -> String {
    let mut s = String::from("'");
    for c in text.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '\'' => s.push_str("\\'"),
            '\n' => s.push_str("\\n"),
            c if c.is_ascii_graphic() || c == ' ' => s.push(c),
            c => s.push_str(&format!("\\u{:04x}", u32::from(c))),
        }
    }
    s.push('\'');
    s
}

/// Members of the class (one level in) run inside a function of ours.
fn wrapped(body: &str) -> String {
    format!("def _wrfs_piece():\n{body}_wrfs_piece()\ndel _wrfs_piece\n")
}

/// Prints whether [`SHARE_FILE`] holds this version of the class.
fn flash_probe() -> String {
    share_program("probe")
}

/// Defines the class where this boot lacks it (or has another version's),
/// from [`SHARE_FILE`]: what a new link sends is a few lines.
fn define_from_flash() -> String {
    share_program("from_flash").replace("WRFS_MARK", &PIECE_MARK.escape_default().to_string())
}

/// Mounts the share on the board (`/remote`, made the current directory),
/// pasting the class first if this boot has not seen it, and keeping a
/// copy on flash for the next links: true if it is there (see
/// [`keep_mounted`]).
pub async fn mount_on_board(session: &Session, read_only: bool) -> Result<bool> {
    // The class a board has from an older webrepl-mount is replaced.
    let version = share_py_version();
    let probe = format!(
        "print(int(getattr(globals().get('_WRFS'), 'V', 0) == '{version:016x}'))\n{}",
        flash_probe()
    );
    let probe = session.run(probe, Run::QUERY).await?;
    let said = String::from_utf8_lossy(&probe.stdout).into_owned();
    let mut on_flash = said.contains("F True");
    if !on_flash {
        let text = share_file_text();
        match session
            .put(SHARE_FILE.as_bytes().to_vec(), text.into_bytes())
            .await
        {
            Ok(()) => on_flash = true,
            // Each new link then pastes the class whole, as before.
            Err(e) => warn!("share: the class's copy on flash: {e}"),
        }
    }
    let mut code = String::new();
    if !said.starts_with('1') {
        code.push_str(&if on_flash {
            define_from_flash()
        } else {
            define_pasted()
        });
    }
    code.push_str(&mount_code(read_only));
    let out = session.run(code, Run::SNIPPET).await?;
    if !out.stderr.is_empty() {
        return Err(Error::Traceback(
            String::from_utf8_lossy(&out.stderr).trim_end().to_string(),
        ));
    }
    Ok(on_flash)
}

/// The class without its comments and blank lines: what the board reads
/// and compiles at once after a soft reset (`exec` of the whole file
/// needs as much contiguous heap; 10 KB of it failed with MemoryError on a
/// 128 KB heap holding the old class still).
fn class_code() -> String {
    SHARE_PY
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !t.is_empty() && !t.starts_with('#')
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn share_py_version() -> u64 {
    SHARE_PY.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// `/remote` mounted (again) and made the current directory. Inside a
/// function of ours, as every program of the share: a person's `os` or
/// `f` in the REPL stays theirs.
fn mount_code(read_only: bool) -> String {
    let ro = if read_only { "True" } else { "False" };
    format!("\n{}", share_program("mount").replace("WRFS_RO", ro))
}

/// Takes `/remote` away again (the board's current directory back to `/`)
/// and the class with it: the board's RAM as it was before the share (the
/// next share defines it from its copy on flash).
pub async fn unmount_on_board(session: &Session) -> Result<()> {
    session.on_every_link(None)?;
    session.run(share_program("unmount"), Run::SNIPPET).await?;
    Ok(())
}

/// Keeps the share mounted: every new link (a soft reset ends the link
/// and forgets the mount) mounts it again first, before a line the person
/// typed meanwhile runs. Until `unmount_on_board`. `on_flash`: the class
/// is defined from its copy on flash ([`mount_on_board`] says), not sent.
pub async fn keep_mounted(session: Session, read_only: bool, on_flash: bool) {
    let mut code = if on_flash {
        define_from_flash()
    } else {
        define_pasted()
    };
    code.push_str(&mount_code(read_only));
    debug!("share: {} bytes run on every new link", code.len());
    let program = LinkProgram {
        code: code.into_bytes(),
        what: "the share is not mounted again on the new link",
    };
    if let Err(e) = session.on_every_link(Some(program)) {
        warn!("share: {e}");
    }
}

/// A share a mount's daemon serves on its session (`share DIR MOUNTPOINT`):
/// it lasts until `share --stop` or the unmount, not a terminal's life.
pub struct Shared {
    root: Root,
    server: tokio::task::JoinHandle<()>,
    keeper: tokio::task::JoinHandle<()>,
}

impl Shared {
    pub async fn start(session: &Session, root: Root) -> Result<Shared> {
        let server = tokio::spawn({
            let (session, root) = (session.clone(), root.clone());
            async move {
                if let Err(e) = serve(session, root).await {
                    warn!("share: {e}");
                }
            }
        });
        let on_flash = match mount_on_board(session, root.read_only).await {
            Ok(f) => f,
            Err(e) => {
                server.abort();
                return Err(e);
            }
        };
        let keeper = tokio::spawn(keep_mounted(session.clone(), root.read_only, on_flash));
        Ok(Shared {
            root,
            server,
            keeper,
        })
    }

    /// Takes `/remote` away on the board, then stops answering for it.
    pub async fn stop(self, session: &Session) -> Result<()> {
        self.keeper.abort();
        let r = unmount_on_board(session).await;
        self.server.abort();
        r
    }

    /// For `status`.
    pub fn describe(&self) -> String {
        let ro = if self.root.read_only {
            " (read-only)"
        } else {
            ""
        };
        format!("{} is the board's /remote{ro}", self.root.dir().display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each piece of the class compiles alone in a few times its size of
    /// heap: none may be much over `PIECE_MAX` (the file class whole was
    /// one piece of 3 KB, and failed to compile now and then on a 64 KB
    /// board beside a mount).
    #[test]
    fn no_piece_of_the_class_is_much_over_its_bound() {
        let pieces = class_pieces();
        let most = pieces.iter().map(String::len).max().unwrap_or(0);
        eprintln!("{} pieces, the biggest {most} B", pieces.len());
        assert!(most <= PIECE_MAX + 400, "{most} B");
        // The file class's methods went into it.
        assert!(
            pieces
                .iter()
                .any(|p| p.contains("_WRFS.F.readline = readline"))
        );
    }

    /// The programs as they were written in Rust strings before they
    /// moved to share_programs.py: the board gets the same bytes.
    #[test]
    fn the_share_programs_reach_the_board_as_they_were() {
        let v = share_py_version();
        assert_eq!(
            flash_probe(),
            format!(
                "def _wrfs_p():\n    try:\n        with open('{SHARE_FILE}') as f:\n            print('F', f.readline().strip() == '#{v:016x}')\n    except Exception:\n        print('F', False)\n_wrfs_p()\ndel _wrfs_p\n"
            )
        );
        assert_eq!(
            define_from_flash(),
            format!(
                "def _wrfs_load():\n    import gc\n    g = globals()\n    try:\n        _WRFS.V == '{v:016x}' or _WRFS.x\n        return\n    except Exception:\n        pass\n    gc.collect()\n    with open('{SHARE_FILE}') as f:\n        f.readline()\n        b = []\n        for l in f:\n            if l == '#--\\n':\n                exec(''.join(b), g)\n                b = []\n                gc.collect()\n            else:\n                b.append(l)\n        exec(''.join(b), g)\n    gc.collect()\n_wrfs_load()\ndel _wrfs_load\n"
            )
        );
        let pieces: Vec<String> = class_pieces().iter().map(|p| py_str(p)).collect();
        assert_eq!(
            define_pasted(),
            format!(
                "def _wrfs_load():\n    import gc\n    g = globals()\n    for p in ({},):\n        exec(p, g)\n        gc.collect()\n_wrfs_load()\ndel _wrfs_load\n",
                pieces.join(",")
            )
        );
        for (read_only, ro) in [(true, "True"), (false, "False")] {
            assert_eq!(
                mount_code(read_only),
                format!(
                    "\ndef _wrfs_m():\n    import os\n    try:\n        os.umount('/remote')\n    except OSError:\n        pass\n    os.mount(_WRFS({ro}), '/remote')\n    os.chdir('/remote')\n_wrfs_m()\ndel _wrfs_m\n"
                )
            );
        }
        assert_eq!(
            share_program("unmount"),
            "def _wrfs_u():\n    import os\n    try:\n        if os.getcwd().startswith('/remote'):\n            os.chdir('/')\n        os.umount('/remote')\n    except OSError:\n        pass\n_wrfs_u()\ndel _wrfs_u\ntry:\n    del _WRFS\nexcept NameError:\n    pass\n__import__('gc').collect()\n"
        );
    }

    #[test]
    fn a_dot_dot_goes_up_within_the_shared_directory_and_never_above_it() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir(dir.path().join("sub")).expect("sub");
        std::fs::write(dir.path().join("x.py"), "X = 1\n").expect("x");
        let root = Root::new(dir.path(), false).expect("root");
        let x = root.dir().join("x.py");
        assert_eq!(root.resolve(b"/sub/../x.py", false), Ok(x.clone()));
        assert_eq!(root.resolve(b"sub/./../sub/../x.py", false), Ok(x));
        assert_eq!(
            root.resolve(b"/sub/../new.py", true),
            Ok(root.dir().join("new.py"))
        );
        for out in [
            &b"/../x.py"[..],
            b"sub/../../x.py",
            b"/sub/../../etc/passwd",
        ] {
            assert_eq!(root.resolve(out, false), Err(EACCES), "{out:?}");
            assert_eq!(root.resolve(out, true), Err(EACCES), "{out:?}");
        }
    }
}
