//! The MicroPython programs the board runs for us, and their answers.
//!
//! Every snippet is small (it crosses a slow link and is compiled in a few
//! KB of RAM), streams its answer a line at a time, and never raises: an
//! OSError comes back as a line `E <errno>`. Paths travel as escaped byte
//! literals and come back hex-encoded, so no name is ever spliced into code
//! and a name with a newline in it cannot break a line.

use super::answer::Answer;
use crate::error::{Error, Result};
use crate::protocol::ProtocolError;

/// `path` as a Python expression: `b'\x2f...'.decode()`. Only characters
/// that cannot end or escape the literal are left as they are.
pub fn lit(path: &str) -> String {
    format!("{}.decode()", bytes_lit(path))
}

/// `text` as a Python bytes literal, escaped as [`lit`] does.
pub fn bytes_lit(text: &str) -> String {
    let mut s = String::from("b'");
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || b"._/- ".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s.push('\'');
    s
}

/// The fields of one call as ONE Python bytes literal, ended by NUL,
/// padded past 10 bytes: MicroPython interns a short literal of compiled
/// code as a qstr, never freed, so a name or size that differs each time
/// must not be one (see `helpers.py`).
pub fn args<S: AsRef<str>>(fields: &[S]) -> String {
    let mut s = String::from("b'");
    let mut len = 0;
    let mut out: Vec<u8> = Vec::new();
    for f in fields {
        out.extend_from_slice(f.as_ref().as_bytes());
        out.push(0);
    }
    while out.len() <= 10 {
        out.push(0);
    }
    for (i, &b) in out.iter().enumerate() {
        len += 1;
        if b == 0 {
            // `\0` then a digit would be one octal escape.
            let digit = out.get(i + 1).is_some_and(|n| (b'0'..=b'7').contains(n));
            s.push_str(if digit { "\\x00" } else { "\\0" });
        } else if b.is_ascii_alphanumeric() || b"._/- ".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    debug_assert!(len > 10);
    s.push('\'');
    s
}

/// `text` of a `.py` file as it goes on the wire: no comments, no blank
/// lines, one space per level of indentation (the files use four), no
/// spaces but between words, and the names both sides use filled in.
pub fn compact(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let body = line.trim_start();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let depth = (line.len() - body.len()) / 4;
        out.push_str(&" ".repeat(depth));
        let body = body
            .trim_end()
            .replace("PART_PREFIX", &format!("'{}'", super::PART_PREFIX))
            .replace("CONFLICT_SUFFIX", &format!("'{}'", super::CONFLICT_SUFFIX))
            .replace("HELPERS_FILE", &format!("'{HELPERS_FILE}'"));
        out.push_str(&squeeze(&body));
        out.push('\n');
    }
    out
}

/// A line of Python without the spaces that only separate a word from
/// punctuation; string literals are kept as they are.
fn squeeze(line: &str) -> String {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let mut out = String::new();
    let mut quote: Option<char> = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == '\\' {
                    out.extend(chars.next());
                } else if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == ' ' => {
                if word(out.chars().last()) && word(chars.peek().copied()) {
                    out.push(' ');
                }
            }
            None => out.push(c),
        }
    }
    out
}

/// The helpers' source (see `helpers.py`).
pub const HELPERS_PY: &str = include_str!("helpers.py");
/// The loader of the helpers, kept in their file (see `loader.py`).
pub const LOADER_PY: &str = include_str!("loader.py");
/// The one-off programs' source (see `programs.py`).
pub const PROGRAMS_PY: &str = include_str!("programs.py");

/// The helpers as their file holds them: the class `_wrm`, then, at the
/// top level, the functions marked "On flash" (see `helpers.py`), which
/// the loader leaves out and `_wrm.l` reads when one is called.
pub fn helpers() -> &'static str {
    static TEXT: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| compact(&on_flash_last(HELPERS_PY)));
    &TEXT
}

/// The comment that marks a helper kept on flash, right above its `def`.
const ON_FLASH: &str = "# On flash (`_wrm.l`).";

/// `source` (helpers.py) with the class's methods marked [`ON_FLASH`]
/// moved out of it, after it, one level less indented.
fn on_flash_last(source: &str) -> String {
    let (mut class, mut flash) = (String::new(), String::new());
    let (mut marked, mut moving) = (false, false);
    for line in source.lines() {
        let body = line.trim_start();
        let depth = line.len() - body.len();
        if body == ON_FLASH {
            marked = true;
            continue;
        }
        if depth == 4 && body.starts_with("def ") {
            moving = std::mem::take(&mut marked);
        } else if depth <= 4 && !body.is_empty() && !body.starts_with('#') {
            moving = false;
        }
        if moving {
            flash.push_str(line.get(4..).unwrap_or(""));
            flash.push('\n');
        } else {
            class.push_str(line);
            class.push('\n');
        }
    }
    class + &flash
}

/// The helpers as pasted where their file cannot be written, a program
/// each: the class with `_wrm.l` calling into it, then each function kept
/// on flash put into the class. Pasted whole, compiling them took more
/// than 90 KB of heap (a module's parse tree is built whole), more than
/// many boards have free; piece by piece, the largest piece's.
pub fn helpers_pasted() -> &'static [String] {
    static PIECES: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        let text = helpers();
        let mut parts = text.split("\ndef ");
        let mut pieces = vec![format!(
            "{}\n_wrm.l=lambda n,*a:getattr(_wrm,n)(*a)\n",
            parts.next().unwrap_or("")
        )];
        for f in parts {
            let name = f.split('(').next().unwrap_or("");
            let body = f.trim_end_matches('\n');
            pieces.push(format!("def {body}\n_wrm.{name}={name}\ndel {name}\n"));
        }
        pieces
    });
    &PIECES
}

/// [`helpers_pasted`] in the order they are pasted: the class, then the
/// functions largest first. Each compile asks for blocks in one piece
/// about the size of its program, and every piece left resident breaks
/// up the heap further: on a 64 KB board (43 KB free) the later large
/// pieces failed to compile for 1,792 or 2,048 bytes, about one paste in
/// eight, as the link's input garbage fell.
pub fn helpers_pasted_largest_first() -> Vec<&'static str> {
    let all = helpers_pasted();
    let mut pieces: Vec<&str> = all.iter().skip(1).map(String::as_str).collect();
    pieces.sort_by_key(|p| std::cmp::Reverse(p.len()));
    all.iter()
        .take(1)
        .map(String::as_str)
        .chain(pieces)
        .collect()
}

/// The names of the helpers kept on flash.
fn on_flash() -> &'static [String] {
    static NAMES: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        helpers()
            .lines()
            .filter_map(|l| l.strip_prefix("def "))
            .filter_map(|l| l.split_once('(').map(|(n, _)| n.to_string()))
            .collect()
    });
    &NAMES
}

/// Where the helpers live on the board's flash, between boots: hidden in
/// the mount, as the id marker is.
pub const HELPERS_FILE: &str = "/.webrepl-mount-helpers";

/// A one-byte file of ours whose GET measures a board's binary chunks
/// where the board has no small file of its own (one chunk shows the
/// board's sleep; our helpers' file took 37, 0.77 s on a throttled
/// board). Hidden in the mount.
pub const PROBE_FILE: &str = "/.webrepl-mount-probe";

/// Where `share` keeps its class on the board's flash (the `share` command),
/// hidden in the mount as the helpers' file is.
pub const SHARE_FILE: &str = "/.webrepl-mount-share";

/// The helpers' file as it goes to the board: a first line `#<crc of the
/// text>`, so that a file another version of ours left is told apart, a
/// second with where each function kept on flash is in the file, then
/// the loader (`loader.py`), then the text. One binary PUT carries it,
/// where pasting it took a round trip per 128 bytes of the raw-paste
/// window.
pub fn helpers_file() -> &'static str {
    &helpers_layout().0
}

/// The helpers' file, and how many bytes after its version the program
/// of a first contact reads and runs (the index line and the loader).
fn helpers_layout() -> &'static (String, usize) {
    static FILE: std::sync::LazyLock<(String, usize)> = std::sync::LazyLock::new(|| {
        let text = helpers();
        let loader = compact(LOADER_PY);
        let version = format!(
            "#{:08x}\n",
            crc32fast::hash(format!("{loader}{text}").as_bytes())
        );
        let loader = loader.replace("HELPERS_VERSION", &format!("'{}'", version.trim_end()));
        // The offsets count the index line itself: computed again until
        // its length, and so every offset, stays (a digit more at most).
        let head = version.len() + loader.len();
        let mut index = on_flash_index(text, head);
        loop {
            let next = on_flash_index(text, head + index.len());
            if next.len() == index.len() {
                let read = 1 + next.len() + loader.len();
                break (format!("{version}{next}{loader}{text}"), read);
            }
            index = next;
        }
    });
    &FILE
}

/// `# name offset length ...\n`: where each function kept on flash is in
/// the helpers' file, the text starting at byte `start`. `_wrm.l` seeks
/// there and reads that one function alone: reading the file a line at a
/// time to find it made 51 KB of garbage per call, more than a small
/// board's whole free heap.
fn on_flash_index(text: &str, start: usize) -> String {
    let mut starts: Vec<(&str, usize)> = Vec::new();
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if let Some(name) = line.strip_prefix("def ").and_then(|l| l.split_once('(')) {
            starts.push((name.0, at));
        }
        at += line.len();
    }
    let mut index = String::from("#");
    for (i, (name, from)) in starts.iter().enumerate() {
        let to = starts.get(i + 1).map_or(text.len(), |n| n.1);
        index.push_str(&format!(" {name} {} {}", start + from, to - from));
    }
    index.push('\n');
    index
}

/// A program that defines the helpers from their file on flash, if
/// this version of them is not defined, and does nothing else: `M <free
/// before>`, `M <free after>` (see `loader.py`).
pub fn load_helpers() -> String {
    first("")
}

/// The helpers' version as their file's first line says it (`#<crc>`);
/// the loader sets `_wrm.V` to it.
fn helpers_version() -> &'static str {
    helpers_file().lines().next().unwrap_or("")
}

/// `code` (which calls the helpers) after lines that define this version
/// of the helpers from their file on flash unless it is defined already:
/// the loader there is read and run, so that this program stays within
/// the raw-paste window's first grant (the loader pasted took eight
/// windows, a round trip each). The loader's `M <free heap>` lines come
/// before `code`'s output. No file (OSError), another version's
/// (ZeroDivisionError) or one cut short (OSError, or a SyntaxError from
/// its loader): `code` fails, having done nothing, and the file is sent.
pub fn first(code: &str) -> String {
    let v = helpers_version();
    format!(
        "try:_wrm.V=='{v}'or 1/0\nexcept:\n _wrm=open('{HELPERS_FILE}')\n \
         if _wrm.read({})!='{v}':_wrm.close();1/0\n exec(_wrm.read({}),globals(),{{}})\n{code}",
        v.len(),
        helpers_layout().1
    )
}

/// The function `name` of `programs.py`, as sent (named `_wrm_t`).
fn function(name: &str) -> &'static str {
    static FUNCS: std::sync::LazyLock<Vec<(String, String)>> = std::sync::LazyLock::new(|| {
        let mut funcs: Vec<(String, String)> = Vec::new();
        for line in compact(PROGRAMS_PY).lines() {
            if let Some(rest) = line.strip_prefix("def ") {
                let (name, tail) = rest.split_once('(').unwrap_or((rest, ""));
                funcs.push((name.to_string(), format!("def _wrm_t({tail}\n")));
            } else if let Some((_, body)) = funcs.last_mut() {
                body.push_str(line);
                body.push('\n');
            }
        }
        funcs
    });
    FUNCS
        .iter()
        .find(|(n, _)| n == name)
        .map_or("", |(_, body)| body.as_str())
}

/// The program `name` of `programs.py` called with `fields`: defined,
/// called and deleted, then a collection, so that it leaves nothing.
pub fn program<S: AsRef<str>>(name: &str, fields: &[S]) -> String {
    format!(
        "{}try:_wrm_t([f.decode() for f in {}.split(b'\\0') if f])\nfinally:del _wrm_t;__import__('gc').collect()\n",
        function(name),
        args(fields)
    )
}

/// A call of the helper `name` (see `helpers.py`) with `fields`; one kept
/// on flash through `_wrm.l`.
pub fn helper_call<S: AsRef<str>>(name: &str, fields: &[S]) -> String {
    if on_flash().iter().any(|n| n == name) {
        format!("_wrm.l('{name}',{})\n", args(fields))
    } else {
        format!("_wrm.{name}({})\n", args(fields))
    }
}

/// `os.mkdir` or `os.remove` of `path`: `K`.
pub fn call(func: &str, path: &str) -> String {
    program("call", &[func, path])
}

/// The smallest file at the root of 1 to `most` bytes (the helper `p`):
/// `F <size> 0 <hex name>`, then `K`; after [`stat`]'s answer for `stat`
/// when given. A call of the helpers (which the first program of a
/// connection defines): within the raw-paste window's first grant,
/// where the program it was took four windows.
pub fn probe(most: u64, stat: Option<&str>) -> String {
    let most = most.to_string();
    let mut fields = vec![most.as_str()];
    fields.extend(stat);
    helper_call("p", &fields)
}

pub fn stat(path: &str) -> String {
    program("stat", &[path])
}

/// Prints `most` pieces of the file `path` from piece `first` on the text
/// channel (`send` in programs.py).
pub fn send(path: &str, piece: usize, window: usize, first: u64, most: u64) -> String {
    program(
        "send",
        &[
            path,
            &piece.to_string(),
            &window.to_string(),
            &first.to_string(),
            &most.to_string(),
        ],
    )
}

/// Where `send` stays between the slices of one download, under the
/// helpers' class: the next slice's program is then one short call, not
/// ~800 bytes pasted again with the link idle meanwhile.
const SEND_KEPT: &str = "_wrm.sd";

fn send_fields(path: &str, piece: usize, window: usize, first: u64, most: u64) -> String {
    args(&[
        path,
        &piece.to_string(),
        &window.to_string(),
        &first.to_string(),
        &most.to_string(),
    ])
}

/// [`send`], its function kept as `_wrm.sd` for the next slices (where the
/// helpers are defined; elsewhere as `send`) until the file is done.
pub fn send_keep(path: &str, piece: usize, window: usize, first: u64, most: u64) -> String {
    format!(
        "{}try:\n try:{SEND_KEPT}=_wrm_t\n except NameError:pass\n if _wrm_t([f.decode() for f in {}.split(b'\\0') if f]):\n  try:del {SEND_KEPT}\n  except:pass\nfinally:del _wrm_t;__import__('gc').collect()\n",
        function("send"),
        send_fields(path, piece, window, first, most)
    )
}

/// A slice by the `send` [`send_keep`] left, removed once the file is
/// done. Where it is gone (a soft reset), a NameError or AttributeError,
/// before any output.
pub fn send_kept(path: &str, piece: usize, window: usize, first: u64, most: u64) -> String {
    format!(
        "if {SEND_KEPT}([f.decode() for f in {}.split(b'\\0') if f]):del {SEND_KEPT};__import__('gc').collect()\n",
        send_fields(path, piece, window, first, most)
    )
}

/// Removes what [`send_keep`] left, if anything (a download that ended
/// early).
pub fn send_forget() -> String {
    format!("try:del {SEND_KEPT}\nexcept:pass\n__import__('gc').collect()\n")
}

/// Lists `top` (and below it, if `deep`).
pub fn walk(top: &str, deep: bool) -> String {
    program("tree", &[top, if deep { "1" } else { "0" }])
}

/// Lists the whole tree below `top`, then the statvfs figures of its
/// filesystem (a mount's first listing: `find` asks them next).
pub fn walk_and_space(top: &str) -> String {
    program("tree", &[top, "1", "v"])
}

/// `mkdir -p` of each directory, refusing to walk through a file. Answers
/// `K`, or `E <errno> <hex of the directory>` for the first that fails.
pub fn mkdirs(paths: &[&str]) -> String {
    program("mkdirs", paths)
}

/// Each file's state against what we have (see `_wrm.h`).
pub fn hashes(files: &[(&str, u64)]) -> String {
    let sizes: Vec<String> = files.iter().map(|f| f.1.to_string()).collect();
    let fields: Vec<&str> = files
        .iter()
        .zip(&sizes)
        .flat_map(|(f, n)| [f.0, n.as_str()])
        .collect();
    helper_call("hs", &fields)
}

/// Records for `_wrm.hl`: a line `<hex path> <size>` each, which the board
/// reads a line at a time. The list goes to the board as a file, by binary
/// PUT: a batch's program is then one short line, not kilobytes of code
/// that the raw-paste window lets through 128 bytes per round trip.
pub fn records(files: &[(&str, u64)]) -> Vec<u8> {
    let mut out = String::new();
    for (p, n) in files {
        for b in p.as_bytes() {
            out.push_str(&format!("{b:02x}"));
        }
        out.push_str(&format!(" {n}\n"));
    }
    out.into_bytes()
}

/// One upload to finish: its part file, target, size, what the target
/// must still be, its CRC-32, and how many slices follow the first.
#[derive(Debug, Clone)]
pub struct Finishing {
    pub part: String,
    pub target: String,
    pub size: u64,
    pub base: super::Base,
    pub crc: u32,
    pub pieces: usize,
    /// The size of each slice but the last.
    pub slice: u64,
}

impl Finishing {
    /// The upload of `data` from `part` onto `target`.
    pub fn new(
        part: &str,
        target: &str,
        data: &[u8],
        base: super::Base,
        pieces: usize,
        slice: usize,
    ) -> Self {
        Finishing {
            part: part.to_string(),
            target: target.to_string(),
            size: data.len() as u64,
            base,
            crc: crc32fast::hash(data),
            pieces,
            slice: slice as u64,
        }
    }
}

/// The `_wrm.go` call (see `helpers.py`) that finishes a batch of
/// uploads, one answer line each. The program travels through the
/// raw-paste window (128 bytes a round trip), so it is kept short: a part
/// beside its target goes by its id, and one CRC covers the whole batch.
pub fn finish_uploads(calls: &[Finishing]) -> String {
    let mut fields = vec![combined_crc(calls).to_string()];
    for f in calls {
        let dir = &f.target[..f.target.rfind('/').map_or(0, |i| i + 1)];
        let id = f
            .part
            .strip_prefix(dir)
            .and_then(|p| p.strip_prefix(super::PART_PREFIX))
            .filter(|id| !id.is_empty() && !id.contains('/'));
        fields.push(f.target.clone());
        fields.push(id.unwrap_or(&f.part).to_string());
        let mut nums = format!("{} {} {}", f.size, f.pieces, f.slice);
        match f.base {
            super::Base::Any => {}
            super::Base::Absent => nums.push_str(" -1"),
            super::Base::Was(size, mtime) => nums.push_str(&format!(" {size} {mtime}")),
        }
        fields.push(nums);
    }
    helper_call("go", &fields)
}

/// The CRC-32 of the calls' files end to end, as `_wrm.go` takes it.
fn combined_crc(calls: &[Finishing]) -> u32 {
    let mut all = crc32fast::Hasher::new();
    for f in calls {
        all.combine(&crc32fast::Hasher::new_with_initial_len(f.crc, f.size));
    }
    all.finalize()
}

/// What the board can inflate uploads with, and its free heap:
/// `I <kind> <bytes>`.
pub fn inflater() -> String {
    program::<&str>("inflater", &[])
}

/// One compressed upload to inflate on the board (see `_wrm.z`).
#[derive(Debug, Clone)]
pub struct Inflating {
    /// The zlib stream's part file, its size, slices after the first,
    /// slice size and CRC-32.
    pub packed: String,
    pub packed_size: u64,
    pub pieces: usize,
    pub slice: u64,
    pub packed_crc: u32,
    /// The part file it inflates into, and what that must hold.
    pub part: String,
    pub size: u64,
    pub crc: u32,
    pub wbits: u8,
    /// Where the part lands once checked, for a copy that checks no base
    /// (None: `go` finishes it, as any upload).
    pub target: Option<String>,
}

/// The `_wrm.z` call that inflates a batch of compressed uploads, one
/// answer line each.
pub fn inflate_uploads(calls: &[Inflating]) -> String {
    let mut fields = Vec::with_capacity(calls.len() * 4);
    for c in calls {
        // Names in the stream's directory go without it: the program
        // crosses the raw-paste window 128 bytes a round trip.
        let dir = &c.packed[..c.packed.rfind('/').map_or(0, |i| i + 1)];
        let id = c
            .part
            .strip_prefix(dir)
            .and_then(|p| p.strip_prefix(super::PART_PREFIX))
            .filter(|id| !id.is_empty() && !id.contains('/'));
        let target = match &c.target {
            None => "/",
            Some(t) => t
                .strip_prefix(dir)
                .filter(|n| !n.is_empty() && !n.contains('/'))
                .unwrap_or(t),
        };
        fields.push(c.packed.clone());
        fields.push(id.unwrap_or(&c.part).to_string());
        fields.push(target.to_string());
        fields.push(format!(
            "{} {} {} {} {} {} {}",
            c.packed_size, c.pieces, c.slice, c.packed_crc, c.size, c.crc, c.wbits
        ));
    }
    helper_call("z", &fields)
}

/// One file to build on the board from a delta (see `d` in helpers.py).
#[derive(Debug, Clone)]
pub struct Rebuilding {
    /// The delta's part file, its size, slices after the first, slice size.
    pub delta: String,
    pub delta_size: u64,
    pub pieces: usize,
    pub slice: u64,
    /// Where the base is read from (the target, or the file a new one
    /// will replace), which must still be it: size and CRC-32.
    pub target: String,
    pub base_size: u64,
    pub base_crc: u32,
    /// The part file to build, and what it must hold.
    pub part: String,
    pub size: u64,
    pub crc: u32,
}

/// The call of `d` (helpers.py, on flash) that builds a batch of files from deltas, one
/// answer line each.
pub fn rebuild_uploads(calls: &[Rebuilding]) -> String {
    let mut fields = Vec::with_capacity(calls.len() * 4);
    for c in calls {
        fields.push(c.delta.clone());
        fields.push(c.target.clone());
        fields.push(c.part.clone());
        fields.push(format!(
            "{} {} {} {} {} {} {}",
            c.delta_size, c.pieces, c.slice, c.base_size, c.base_crc, c.size, c.crc
        ));
    }
    helper_call("d", &fields)
}

/// Removes the files named, whether or not they exist.
pub fn remove_all(paths: &[&str]) -> String {
    program("remove_all", paths)
}

/// `rmdir` of a directory that may hold nothing but our part files.
pub fn rmdir(path: &str) -> String {
    program("rmdir", &[path])
}

/// `os.rename`, replacing an existing target on filesystems whose rename
/// refuses to.
pub fn rename(from: &str, to: &str) -> String {
    program("rename", &[from, to])
}

/// `rename` of `from` onto `to` if `to` is still `(size, mtime)` or gone,
/// else beside it (`onto` in programs.py).
pub fn onto(from: &str, to: &str, (size, mtime): (u64, i64)) -> String {
    program("onto", &[from, to, &size.to_string(), &mtime.to_string()])
}

/// The year of the board's epoch: 2000 on ESP ports, 1970 on others.
pub fn epoch() -> String {
    program::<&str>("epoch", &[])
}

/// The board's free heap after a collection: `M <bytes>`.
pub fn mem() -> String {
    program::<&str>("mem", &[])
}

pub fn ram() -> String {
    program::<&str>("ram", &[])
}

pub fn statvfs(path: &str) -> String {
    program("statvfs", &[path])
}

/// Streams files of `dir` as base64 through `_wrm.r`: `F`, its lines, `.`
/// (or `E <errno>`), then `K`.
pub fn read_files(dir: &str, names: &[&str]) -> String {
    let dir = format!("{}/", dir.trim_end_matches('/'));
    let mut fields = vec![dir.as_str()];
    fields.extend_from_slice(names);
    helper_call("r", &fields)
}

/// One piece of a base64 upload; the first piece truncates.
pub fn write_base64(path: &str, first: bool, data: &[u8]) -> String {
    use base64::Engine;
    let mut fields = vec![
        path.to_string(),
        if first { "wb" } else { "ab" }.to_string(),
    ];
    for piece in data.chunks(57 * 8) {
        fields.push(base64::engine::general_purpose::STANDARD.encode(piece));
    }
    program("write", &fields)
}

/// The answer lines of a snippet, `\r` trimmed (boards end lines `\r\n`).
pub fn lines(stdout: &[u8]) -> impl Iterator<Item = &str> {
    stdout
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
        .map(|l| std::str::from_utf8(l).unwrap_or(""))
}

/// An `E <errno>` line as an error about `what`.
pub fn os_error(line: &str, what: &str) -> Option<Error> {
    match Answer::parse(line) {
        Answer::Os { errno, .. } => Some(errno_error(errno, what)),
        _ => None,
    }
}

/// An OSError of the board about `what`.
pub fn errno_error(errno: i32, what: &str) -> Error {
    if errno == libc::ENOENT {
        Error::NotFound(what.to_string())
    } else {
        Error::Os {
            errno,
            what: what.to_string(),
        }
    }
}

/// The one-line answer of `call`, `mkdirs` and the upload snippets.
pub fn expect_ok(stdout: &[u8], what: &str) -> Result<()> {
    for l in lines(stdout) {
        match Answer::parse(l) {
            Answer::Ok => return Ok(()),
            Answer::Os { errno, .. } => return Err(errno_error(errno, what)),
            _ => {}
        }
    }
    Err(unexpected(stdout, what))
}

pub fn unexpected(stdout: &[u8], what: &str) -> Error {
    Error::Protocol(ProtocolError::Answer {
        what: what.to_string(),
        answer: String::from_utf8_lossy(&stdout[..stdout.len().min(200)]).into_owned(),
    })
}

/// A name of a compact listing (`tree` in programs.py): as it is, or
/// `%` and its bytes in hex (a name with a space, a control character,
/// a byte that is not ASCII, or a leading `%`).
pub fn name_bytes(s: &str) -> Option<Vec<u8>> {
    match s.strip_prefix('%') {
        Some(hex) => unhex_bytes(hex),
        None => Some(s.as_bytes().to_vec()),
    }
}

pub fn unhex(s: &str) -> Option<String> {
    String::from_utf8(unhex_bytes(s)?).ok()
}

/// A hex field as bytes: a board's names need not be UTF-8.
pub fn unhex_bytes(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_everything_that_could_be_code() {
        let l = lit("/a b/x'y\"z\\\n$(rm).py");
        assert_eq!(
            l,
            "b'/a b/x\\x27y\\x22z\\x5c\\x0a\\x24\\x28rm\\x29.py'.decode()"
        );
        assert_eq!(lit("/ä"), "b'/\\xc3\\xa4'.decode()");
    }

    #[test]
    fn answers_parse_with_either_line_ending() {
        assert!(expect_ok(b"K\r\n", "x").is_ok());
        assert!(matches!(expect_ok(b"E 2\n", "x"), Err(Error::NotFound(_))));
        assert!(matches!(
            expect_ok(b"E 28\n", "x"),
            Err(Error::Os { errno: 28, .. })
        ));
        assert!(matches!(expect_ok(b"junk\n", "x"), Err(Error::Protocol(_))));
    }

    #[test]
    fn unhex_round_trips_names_with_newlines() {
        assert_eq!(unhex("2f610a62").as_deref(), Some("/a\nb"));
        assert_eq!(unhex("2f6"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn finishing_a_batch_names_parts_beside_their_target_by_id() {
        use super::super::Base;
        let call = |p: &str, t: &str, data: &[u8], base, pieces| {
            Finishing::new(p, t, data, base, pieces, usize::from(pieces > 0))
        };
        let code = finish_uploads(&[
            call("/lib/.wrm-00000a", "/lib/a.py", b"abc", Base::Any, 0),
            call("/lib/.wrm-00000b", "/lib/it's.py", b"de", Base::Absent, 0),
            call("/.wrm-00000e", "/big.bin", b"fgh", Base::Was(3, 7), 2),
            call("/x/.wrm-00000d", "/y/z.py", b"ij", Base::Any, 0),
        ]);
        assert_eq!(
            code,
            format!(
                "_wrm.go(b'{}\\0/lib/a.py\\x0000000a\\x003 0 0\\0/lib/it\\x27s.py\\x0000000b\\x002 0 0 -1\\0\
                 /big.bin\\x0000000e\\x003 2 1 3 7\\0/y/z.py\\0/x/.wrm-00000d\\x002 0 0\\0')\n",
                crc32fast::hash(b"abcdefghij")
            )
        );
    }

    #[test]
    fn the_helpers_file_starts_with_its_version_and_is_ascii() {
        let f = helpers_file();
        let (first, rest) = f.split_once('\n').unwrap();
        assert_eq!(first.len(), 9, "{first}");
        assert!(first.starts_with('#'));
        let (index, rest) = rest.split_once('\n').unwrap();
        assert!(index.starts_with("# "), "{index}");
        let (loader, text) = rest.split_at(rest.len() - helpers().len());
        assert_eq!(text, helpers());
        assert!(loader.starts_with("def L(f):\n") && loader.ends_with("\nL(_wrm)\n"));
        assert!(loader.contains(&format!("_wrm.V='{first}'")), "{loader}");
        // The board reads it as text: its length in characters is where
        // the class starts.
        assert!(f.is_ascii());
        assert_eq!(
            helpers_layout().1,
            "\n".len() + index.len() + "\n".len() + loader.len()
        );
    }

    /// The program of a first contact, but for its call, goes in the
    /// raw-paste window's first grant (two windows of 128 bytes) with room
    /// for the call of a small copy.
    #[test]
    fn the_first_program_is_short_and_runs_only_this_versions_file() {
        let p = first("");
        assert!(p.len() <= 180, "{} bytes:\n{p}", p.len());
        let v = helpers_version();
        assert_eq!(p.matches(&format!("'{v}'")).count(), 2, "{p}");
        assert!(p.contains(&format!(
            "exec(_wrm.read({}),globals(),{{}})",
            helpers_layout().1
        )));
    }

    /// A `cp` from the board's stat (with the small file its first GET
    /// measures the binary channel with) is its first program: it goes
    /// in the raw-paste window's first grant for a path of 40 bytes, one
    /// round trip, where the program it was took four windows.
    #[test]
    fn a_downloads_stat_and_probe_go_in_the_first_raw_paste_grant() {
        let path = format!("/{}", "d".repeat(39));
        let p = first(&probe(8 << 10, Some(&path)));
        assert!(p.len() <= 255, "{} bytes:\n{p}", p.len());
        assert!(p.contains(&path));
    }

    #[test]
    fn helpers_on_flash_are_called_only_through_the_loader() {
        assert!(
            ["z", "j", "h", "r"]
                .iter()
                .all(|n| on_flash().iter().any(|f| f == n))
        );
        for n in on_flash() {
            for src in [HELPERS_PY, PROGRAMS_PY] {
                assert!(
                    !src.contains(&format!("_wrm.{n}(")),
                    "`{n}` is on flash: call it as `_wrm.l(\"{n}\", ...)`"
                );
            }
        }
        assert!(helper_call("z", &["/a"]).starts_with("_wrm.l('z',b'/a"));
        assert!(helper_call("go", &["/a"]).starts_with("_wrm.go(b'/a"));
        assert!(
            !helpers()
                .split("\ndef ")
                .next()
                .unwrap_or("")
                .contains("def z(")
        );
        let pasted = helpers_pasted();
        assert_eq!(pasted.len(), on_flash().len() + 1);
        assert!(
            pasted
                .iter()
                .any(|p| p.starts_with("def z(x):\n") && p.ends_with("\n_wrm.z=z\ndel z\n"))
        );
        assert!(pasted[0].starts_with("class _wrm:") && !pasted[0].contains("\ndef "));
    }

    #[test]
    fn pasted_helpers_go_class_first_then_largest_first() {
        let order = helpers_pasted_largest_first();
        let all = helpers_pasted();
        assert_eq!(order.len(), all.len());
        assert_eq!(order[0], all[0]);
        assert!(order[1..].windows(2).all(|w| w[0].len() >= w[1].len()));
        assert!(all.iter().all(|p| order.contains(&p.as_str())));
    }

    #[test]
    fn the_index_line_says_where_each_function_on_flash_is() {
        let file = helpers_file();
        let index = file.lines().nth(1).unwrap_or("");
        let fields: Vec<&str> = index.split(' ').skip(1).collect();
        assert_eq!(fields.len(), on_flash().len() * 3, "{index}");
        for f in fields.chunks(3) {
            let (at, len): (usize, usize) = (f[1].parse().unwrap(), f[2].parse().unwrap());
            let text = &file[at..at + len];
            assert!(text.starts_with(&format!("def {}(", f[0])), "{text}");
            assert!(
                text.ends_with('\n') && !text[1..].contains("\ndef "),
                "{text}"
            );
        }
        assert!(file.ends_with(&file[file.rfind("\ndef ").unwrap_or(0) + 1..]));
    }

    #[test]
    fn arguments_are_never_short_enough_to_be_interned() {
        assert_eq!(args(&["a"]), "b'a\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0'");
        assert_eq!(args(&["0123456789a"]), "b'0123456789a\\0'");
        assert_eq!(args(&["x", "1"]), "b'x\\x001\\0\\0\\0\\0\\0\\0\\0\\0'");
    }

    #[test]
    fn python_goes_on_the_wire_compact_with_shared_names_filled_in() {
        let h = helpers();
        assert!(
            h.starts_with("class _wrm:\n B=512\n def a(x):\n  return list(filter(None,x.decode().split(\"\\0\")))\n"),
            "{h}"
        );
        assert!(!h.contains('#') && !h.contains("\n\n") && !h.contains("PART_PREFIX"));
        assert!(h.contains("'.wrm-'") && h.contains("'.webrepl-mount-conflict'"));
        assert!(!h.contains('\0'), "a raw NUL would go to the board");
        let p = stat("/a");
        assert!(p.starts_with("def _wrm_t(a):\n import os\n"), "{p}");
        assert!(p.ends_with("finally:del _wrm_t;__import__('gc').collect()\n"));
    }

    #[test]
    fn an_inflate_call_names_its_parts_and_target_in_the_streams_directory() {
        let call = |part: &str, target: Option<&str>| Inflating {
            packed: "/lib/.wrm-00000a".into(),
            packed_size: 5,
            pieces: 0,
            slice: 5,
            packed_crc: 1,
            part: part.into(),
            size: 9,
            crc: 2,
            wbits: 10,
            target: target.map(Into::into),
        };
        let code = inflate_uploads(&[
            call("/lib/.wrm-00000b", Some("/lib/a.py")),
            call("/x/.wrm-00000c", Some("/y/b.py")),
            call("/lib/.wrm-00000d", None),
        ]);
        let fields = r"/lib/.wrm-00000a\x0000000b\0a.py\x005 0 5 1 9 2 10\0/lib/.wrm-00000a\0/x/.wrm-00000c\0/y/b.py\x005 0 5 1 9 2 10\0/lib/.wrm-00000a\x0000000d\0/\x005 0 5 1 9 2 10";
        assert!(code.contains(fields), "{code}");
    }
}
