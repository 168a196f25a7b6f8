//! Typed operations on a board's filesystem, built on the session.

pub mod answer;
mod bundle;
pub mod channel;
mod delta;
mod first;
mod outgoing;
mod pack;
pub mod packages;
mod ram;
mod range;
pub mod snippets;
pub mod stream;
pub mod sums;
mod upload;

pub use delta::{Op, apply as apply_delta, diff, encode as encode_delta};
pub use pack::{WBITS, compress, pays};

pub use ram::Heap;
pub use range::{RANGE_MAX, Range};
pub use upload::{Base, Digests, Upload, Written, digest};

use crate::error::{Error, Lost, Result};
use crate::protocol::ProtocolError;
use crate::protocol::raw::Output;
use crate::protocol::transfer::MAX_NAME;
use crate::session::{Piece, PutTicket, Run, Session};
use answer::Answer;
use snippets as sn;
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// How file contents cross the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transfer {
    /// Binary protocol where the path allows it, raw-paste otherwise.
    #[default]
    Auto,
    /// Always raw-paste programs with base64: for firmware without the
    /// binary protocol.
    Paste,
    /// As `Auto`, downloads always by binary GET.
    Get,
    /// As `Auto`, downloads over `channel::SMALL` by the text channel.
    Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub kind: EntryKind,
    pub size: u64,
    /// Seconds since the board's epoch (2000 on ESP boards, 1970 on others).
    pub mtime: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub kind: EntryKind,
    pub size: u64,
    pub mtime: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatVfs {
    pub bsize: u64,
    pub frsize: u64,
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub namemax: u64,
}

impl StatVfs {
    /// `os.statvfs`'s ten fields (or more), as the board printed them.
    fn from_fields(f: &[u64]) -> Option<StatVfs> {
        (f.len() >= 10).then(|| StatVfs {
            bsize: f[0],
            frsize: f[1],
            blocks: f[2],
            bfree: f[3],
            bavail: f[4],
            namemax: f[9],
        })
    }
}

/// Names of uploads in flight start with this: hidden in listings, removed
/// when found stale, refused as names for files of the user's.
pub const PART_PREFIX: &str = ".wrm-";

/// An upload whose target changed since the edit began goes beside it,
/// under the target's name and this.
pub const CONFLICT_SUFFIX: &str = ".webrepl-mount-conflict";

pub fn is_part(name: &str) -> bool {
    name.starts_with(PART_PREFIX)
}

#[derive(Clone)]
pub struct Board {
    session: Session,
    transfer: Transfer,
    /// How long an operation may wait for a REPL that a person's program
    /// holds (None: the session's time-out).
    patience: Option<Duration>,
    /// Part files a failed upload may have left on the board.
    stale: Arc<Mutex<HashSet<String>>>,
    next_part: Arc<std::sync::atomic::AtomicU32>,
    /// Part names handed out lately (see [`Board::remove_own_parts`]).
    named_parts: Arc<Mutex<VecDeque<String>>>,
    ram: Arc<Mutex<Ram>>,
    /// `ram` was asked of helpers another connection defined.
    ram_asked: Arc<std::sync::atomic::AtomicBool>,
    /// `status` states what the helpers keep (a mount): asked at the
    /// first call even when it found them defined.
    ram_wanted: bool,
    /// When buffers halved by a low-memory episode are next grown back
    /// (see `ram.rs`); None while they are as the heap allows.
    grow_at: Arc<Mutex<Option<Instant>>>,
    /// Uploads may go compressed (see `pack`).
    compress: bool,
    /// The board has no `binascii.crc32`, so a file built there from a
    /// delta cannot be checked: saves go whole (see `delta.rs`).
    no_crc: Arc<std::sync::atomic::AtomicBool>,
    packing: Arc<Mutex<pack::Packing>>,
    downloads: Arc<Mutex<Downloads>>,
    /// Text downloads under way, for `status` (the session sees only
    /// programs).
    text_moves: Arc<Mutex<Vec<TextMove>>>,
    /// Uploads under way, by file (see `outgoing`).
    outgoing: Arc<Mutex<Vec<outgoing::Outgoing>>>,
    /// This version of the helpers has been seen defined on the board
    /// (see `first.rs`).
    helpers_seen: Arc<std::sync::atomic::AtomicBool>,
    /// Uploads finish only on this link of the session (see [`Board::on_link`]).
    link: Option<u64>,
}

#[derive(Debug)]
struct TextMove {
    id: u64,
    path: String,
    done: u64,
    total: u64,
    since: Instant,
}

/// A text download's entry in `status`, while it lasts.
struct TextMoving {
    moves: Arc<Mutex<Vec<TextMove>>>,
    id: u64,
}

impl TextMoving {
    fn progress(&self, done: u64, total: u64) {
        let mut moves = self.moves.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = moves.iter_mut().find(|m| m.id == self.id) {
            (m.done, m.total) = (done, total);
        }
    }
}

impl Drop for TextMoving {
    fn drop(&mut self) {
        let mut moves = self.moves.lock().unwrap_or_else(|e| e.into_inner());
        moves.retain(|m| m.id != self.id);
    }
}

/// A text download's `send`, kept on the board between its slices (see
/// `snippets::send_keep`): removed by the last slice, or when the download
/// ends otherwise.
struct KeptSend {
    board: Option<Board>,
    /// Defined on the board, as far as we know.
    left: bool,
    /// The board could not keep it: each slice pastes it whole.
    refused: bool,
}

impl KeptSend {
    fn forget(&mut self) {
        self.left = false;
        let Some(board) = self.board.clone() else {
            return;
        };
        // Dropped mid-download (its reader gone): a task of its own runs
        // it once the REPL is free.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = board.snippet(sn::send_forget()).await {
                    debug!("removing the kept send: {e}");
                }
            });
        }
    }
}

impl Drop for KeptSend {
    fn drop(&mut self) {
        if self.left {
            self.forget();
        }
    }
}

/// What this connection's downloads showed, and the choice last made.
#[derive(Debug, Default)]
struct Downloads {
    /// The session's connection the figures are from: a new one may be
    /// another board.
    generation: u64,
    measured: channel::Measured,
    /// A small file's GET was tried for a first measure.
    probed: bool,
    /// The file for that GET, found by a download's stat (see
    /// [`Board::stat_probing`]; `Some(None)`: the root has none).
    hint: Option<Option<(String, u64)>>,
    /// The text channel failed in a way that will not change (firmware
    /// without `binascii.crc32`).
    no_text: bool,
    /// A small file's GET measured a chunk's pace (µs) that the board is
    /// still to keep for the next connections (see [`Board::stat_probing`]),
    /// told with the next call of the helpers.
    tell: Option<u64>,
    choice: Option<(channel::Channel, String)>,
    /// Times the figures were measured again because a download departed
    /// from what they foretold (the link changed), and when last.
    remeasured: u32,
    remeasured_at: Option<Instant>,
}

/// A listing's entries, and the names in it that were left out.
#[derive(Debug, Default)]
pub struct Listing {
    pub entries: Vec<Entry>,
    pub skipped: Vec<String>,
    /// The filesystem's figures, when asked for with the listing.
    pub space: Option<StatVfs>,
}

/// Bytes a GET's sink takes before they are credited to the session (far
/// below what a paced GET may leave untaken).
const CREDIT_BATCH: usize = 8 * 1024;
/// More entries than any board's flash holds.
const MAX_ENTRIES: usize = 1_000_000;
/// Directories nested deeper than this are a loop, not a tree.
const MAX_DEPTH: usize = 64;

/// Before the first download larger than this, a small file's GET
/// measures the binary channel (a larger one would cost seconds on a
/// throttled board).
const PROBE_AFTER: u64 = 8 << 10;
const PROBE_MAX: u64 = 8 << 10;
/// Text the board prints to measure the link's rate (see `link_rate`).
const LINK_PROBE: usize = 4000;
/// Figures measured again after a download departed from them: at most
/// this many times a connection, this often.
const REMEASURE_MAX: u32 = 8;
const REMEASURE_EVERY: Duration = Duration::from_secs(30);
/// How long a text download's slice waits for a REPL a person's program
/// holds before the download goes by binary GET.
const TEXT_PATIENCE: Duration = Duration::from_secs(1);
/// A text download cut by a lost link starts over this many times.
const TEXT_TRIES: u32 = 3;

/// Whether a name from a board can be one component of a local path (and of
/// a board path): not empty, not `.` or `..`, no `/`, no NUL. The mount and
/// `cp` both go through this before a name touches anything local.
pub fn component(name: &str) -> std::result::Result<&str, &'static str> {
    match name {
        "" => Err("an empty name"),
        "." | ".." => Err("a name that means a directory"),
        n if n.contains('/') => Err("a name containing '/'"),
        n if n.contains('\0') => Err("a name containing NUL"),
        n if n.len() > 255 => Err("a name longer than 255 bytes"),
        n => Ok(n),
    }
}

/// `shown` of a name that may not be UTF-8: each byte that is not, as
/// `\xNN`.
pub fn shown_bytes(name: &[u8]) -> String {
    let mut out = String::new();
    for c in name.utf8_chunks() {
        out.push_str(&shown(c.valid()));
        for b in c.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// A board's name or path as it may be printed: control characters (a
/// board's newlines, terminal escape sequences) escaped, the rest as is.
pub fn shown(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        // Bidirectional overrides and isolates too: `\u{202e}gnp.exe`
        // would show as `exe.png`.
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || bidi || c == '\\' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// What the tool knows of the board's heap, as `status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ram {
    /// Free heap (bytes, after a collection) at this connection's first
    /// contact, our helpers in.
    pub free: Option<u64>,
    /// What the helpers keep, measured as the free heap they took.
    pub resident: Option<u64>,
    /// The buffer our programs read and write files through.
    pub buffer: usize,
}

/// Buffers: a thirty-second of the free heap, a power of two in these
/// bounds (512 bytes on an ESP8266-class board moves data at the link's
/// speed; more only fragments the heap a person's program needs).
const BUFFER_MIN: usize = 128;
const BUFFER_MAX: usize = 1024;
const BUFFER_FIRST: usize = 512;

fn buffer_for(free: u64) -> usize {
    let b = (free / 32).clamp(BUFFER_MIN as u64, BUFFER_MAX as u64) as usize;
    1 << b.ilog2()
}

/// The most of a file read whole into memory (as the mount's cache holds).
pub const WHOLE_MAX: u64 = 64 << 20;

/// Tries of an idempotent program of ours that ran out of memory.
const LOW_MEMORY_TRIES: usize = 3;

/// Makes a user's path absolute and plain, or says why the board cannot
/// have it.
pub fn normalize(path: &str) -> Result<String> {
    if path.contains('\0') {
        return Err(Error::Path(crate::error::BadPath::Nul {
            path: path.into(),
        }));
    }
    let parts: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(Error::Path(crate::error::BadPath::DotDot {
            path: path.into(),
        }));
    }
    Ok(format!("/{}", parts.join("/")))
}

pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

pub fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

/// A snippet's answer; a traceback means a snippet bug or a board in
/// trouble (MemoryError), never a normal answer.
fn answer(out: Output) -> Result<Vec<u8>> {
    if out.stderr.is_empty() {
        Ok(out.stdout)
    } else {
        Err(Error::Traceback(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

impl Board {
    pub fn new(session: Session, transfer: Transfer) -> Self {
        Board {
            session,
            transfer,
            patience: None,
            stale: Arc::default(),
            next_part: Arc::new(std::sync::atomic::AtomicU32::new(
                rand::random::<u16>() as u32
            )),
            named_parts: Arc::default(),
            ram: Arc::new(Mutex::new(Ram {
                free: None,
                resident: None,
                buffer: BUFFER_FIRST,
            })),
            ram_asked: Arc::default(),
            no_crc: Arc::default(),
            ram_wanted: false,
            grow_at: Arc::default(),
            compress: true,
            packing: Arc::default(),
            downloads: Arc::default(),
            text_moves: Arc::default(),
            outgoing: Arc::default(),
            helpers_seen: Arc::default(),
            link: None,
        }
    }

    /// The same board whose uploads finish only on the session's link
    /// `link`: a new link may reach another board at the same address,
    /// which must not get what was meant for this one (an upload queued
    /// while the link was down would otherwise go to it).
    pub fn on_link(&self, link: u64) -> Board {
        let mut b = self.clone();
        b.link = Some(link);
        b
    }

    /// Err if the session's link is no longer the one uploads are tied to.
    fn same_link(&self) -> Result<()> {
        match self.link {
            Some(l) if l != self.session.generation() => Err(Error::LinkLost(Lost::Resync)),
            _ => Ok(()),
        }
    }

    /// The same board, for a mount: `status` states what the helpers keep
    /// from the first call (one program more, once).
    pub fn stating_ram(mut self) -> Board {
        self.ram_wanted = true;
        self
    }

    /// The same board, its uploads always sent as they are.
    pub fn uncompressed(mut self) -> Board {
        self.compress = false;
        self
    }

    /// The same board for operations that must not wait for a person's
    /// program (they fail at once with `Error::Running`).
    pub fn impatient(&self) -> Board {
        let mut b = self.clone();
        b.patience = Some(Duration::ZERO);
        b
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The board's heap as last measured.
    pub fn ram(&self) -> Ram {
        *self.ram.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn how(&self, mut r: Run) -> Run {
        // The shorter of the call's own and this handle's.
        r.patience = match (r.patience, self.patience) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        r
    }

    /// A snippet that only reads: the session may run it again on a new
    /// link if the link breaks under it.
    async fn query(&self, code: String) -> Result<Vec<u8>> {
        answer(self.run_ours(code, Run::QUERY).await?)
    }

    async fn snippet(&self, code: String) -> Result<Vec<u8>> {
        answer(self.run_ours(code, Run::SNIPPET).await?)
    }

    /// One of our snippets, which always compile: a SyntaxError means the
    /// board lost bytes of it on the way, and nothing of it ran, so it is
    /// sent again. (The cause seen, text taken as PUT data, the session no
    /// longer allows; a board that drops input could still do it.)
    async fn run_ours(&self, code: String, how: Run) -> Result<Output> {
        let (mut tries, mut low) = (1, 1);
        loop {
            let out = self.session.run(code.clone(), self.how(how)).await?;
            let tb = String::from_utf8_lossy(&out.stderr);
            if tb.contains("MemoryError") {
                // Without a traceback the program never ran: it could not
                // be compiled.
                let compiling = !tb.contains("Traceback");
                let free = self.low_memory().await;
                // One that never ran goes again once whatever it does: a
                // heap in pieces (a 64 KB board with helpers pasted had
                // 43 KB free) may not have had the block its compile
                // asked for beside the garbage of the link's input, which
                // the collection after it freed.
                let tries = match (how.idempotent, compiling) {
                    (true, _) => LOW_MEMORY_TRIES,
                    (false, true) => 2,
                    (false, false) => 1,
                };
                if low >= tries {
                    return Err(Error::LowMemory {
                        free,
                        compiling,
                        asked: asked(&tb),
                    });
                }
                if compiling {
                    warn!(
                        "a program of ours of {} bytes could not be compiled ({}); sending it again",
                        code.len(),
                        tb.trim()
                    );
                }
                low += 1;
                continue;
            }
            let mangled = String::from_utf8_lossy(&out.stderr).contains("SyntaxError");
            if !mangled || tries == 3 {
                return Ok(out);
            }
            warn!(
                "a program of {} bytes reached the board mangled (bytes lost on the link); sending it again",
                code.len()
            );
            debug!(
                "the board said {:?} of:\n{code}",
                String::from_utf8_lossy(&out.stderr)
            );
            tries += 1;
        }
    }

    /// Runs a snippet that calls the helpers (`helpers.py`), defining them first when
    /// the board does not have them (first use, after a soft reset, or left
    /// by an older version of ours).
    async fn helper(&self, code: String) -> Result<Vec<u8>> {
        self.with_helpers(code, Run::SNIPPET).await
    }

    /// `helper`, sent right behind the last byte of the upload `after`
    /// (not waiting for the board's answer to it): a program that checks
    /// what that upload left before it uses it.
    async fn helper_after(&self, code: String, after: PutTicket) -> Result<Vec<u8>> {
        let how = Run {
            after: Some(after),
            ..Run::SNIPPET
        };
        self.with_helpers(code, how).await
    }

    async fn with_helpers(&self, code: String, how: Run) -> Result<Vec<u8>> {
        let out = self.helpers_call(code, how).await?;
        self.regrow().await;
        Ok(out)
    }

    async fn helpers_call(&self, code: String, how: Run) -> Result<Vec<u8>> {
        use std::sync::atomic::Ordering;
        // A first call costs one program; what the helpers keep is asked
        // (once, see `recall_ram`) where `status` states it, else at a
        // later call.
        if !self.helpers_seen.load(Ordering::SeqCst) {
            if let Some(out) = self.define_with(&code, how).await? {
                if self.ram_wanted {
                    self.recall_ram().await;
                }
                return Ok(out);
            }
            return self.pasted_then(code, how).await;
        }
        // A pace measured here, for the next connections: a few bytes
        // on a call that goes anyway.
        let code = match self.downloads_mut().tell.take() {
            Some(us) => format!("_wrm.g={us}\n{code}"),
            None => code,
        };
        let out = self.run_ours(code.clone(), how).await?;
        if out.stderr.is_empty() {
            // Not after a call that only reads (a `cp` from the board's
            // digest check after its stat): what it would measure, one
            // program more, serves `status` and what is written.
            if self.ram_wanted || !how.idempotent {
                self.recall_ram().await;
            }
            return Ok(out.stdout);
        }
        let tb = String::from_utf8_lossy(&out.stderr);
        if !["NameError", "TypeError", "AttributeError"]
            .iter()
            .any(|e| tb.contains(e))
        {
            return Err(Error::Traceback(tb.trim().to_string()));
        }
        // Gone (a soft reset): defined again with the call, as at first.
        if let Some(out) = self.define_with(&code, how).await? {
            return Ok(out);
        }
        self.pasted_then(code, how).await
    }

    /// `code` run after the helpers are pasted (their file could not
    /// define them: a full flash); the next calls go plain.
    async fn pasted_then(&self, code: String, how: Run) -> Result<Vec<u8>> {
        self.define_helpers().await?;
        self.helpers_seen
            .store(true, std::sync::atomic::Ordering::SeqCst);
        answer(self.run_ours(code, how).await?)
    }

    /// Defines the helpers (`helpers.py`) on a board where their file
    /// could not define them (`define_with` tried, and sent it): pasted, a
    /// program each, with buffers sized from the free heap.
    async fn define_helpers(&self) -> Result<()> {
        let before = self.free_heap().await;
        warn!("the helpers' file cannot define the helpers; pasting them");
        self.paste_helpers(before.unwrap_or(0)).await
    }

    /// Defines the helpers by pasting them, on a board whose flash cannot
    /// take their file (full): slower, a round trip per raw-paste window.
    /// What a failed PUT left of the file goes.
    async fn paste_helpers(&self, before: u64) -> Result<()> {
        let buffer = buffer_for(before);
        for (i, piece) in sn::helpers_pasted_largest_first().iter().enumerate() {
            let code = match i {
                0 => format!("{piece}_wrm.B={buffer}\n"),
                _ => piece.to_string(),
            };
            self.snippet(code).await?;
        }
        self.snippet(sn::remove_all(&[sn::HELPERS_FILE])).await?;
        let after = self.free_heap().await;
        let ram = Ram {
            free: after.or(Some(before)),
            resident: after.map(|a| before.saturating_sub(a)),
            buffer,
        };
        *self.ram.lock().unwrap_or_else(|e| e.into_inner()) = ram;
        Ok(())
    }

    /// Writes the helpers' file: by binary PUT where the firmware has it,
    /// else by program.
    async fn send_helpers(&self) -> Result<()> {
        let file = sn::helpers_file().as_bytes();
        if self.binary_ok(sn::HELPERS_FILE) {
            return self
                .session
                .put(sn::HELPERS_FILE.as_bytes().to_vec(), file.to_vec())
                .await;
        }
        for (i, piece) in file.chunks(1024).enumerate() {
            let code = sn::write_base64(sn::HELPERS_FILE, i == 0, piece);
            sn::expect_ok(&self.snippet(code).await?, sn::HELPERS_FILE)?;
        }
        Ok(())
    }

    /// What the helpers keep, as measured when they were defined, and the
    /// free heap now, once per mount: helpers a `cp` or an earlier mount
    /// defined are found there, and `status` would otherwise not know.
    /// Buffers an earlier low-memory episode left small grow back.
    async fn recall_ram(&self) {
        use std::sync::atomic::Ordering;
        if self.ram().free.is_some() || self.ram_asked.swap(true, Ordering::Relaxed) {
            return;
        }
        let Ok(heap) = self.heap().await else {
            return;
        };
        let (resident, buffer) = match heap.helpers {
            Some((kept, buffer)) => (Some(kept), buffer.clamp(BUFFER_MIN, BUFFER_MAX)),
            None => (None, self.ram().buffer),
        };
        let ram = Ram {
            free: Some(heap.free),
            resident,
            buffer,
        };
        debug!("helpers found defined: {ram:?}");
        {
            let mut now = self.ram.lock().unwrap_or_else(|e| e.into_inner());
            if now.free.is_some() {
                return;
            }
            *now = ram;
        }
        if ram::regrown(buffer, heap.free).is_some() {
            self.regrow_soon();
        }
    }

    /// The board's free heap after a collection, if a program can still
    /// find out.
    async fn free_heap(&self) -> Option<u64> {
        let out = self
            .session
            .run(sn::mem(), self.how(Run::QUERY))
            .await
            .ok()?;
        sn::lines(&out.stdout).find_map(|l| match Answer::parse(l) {
            Answer::Mem(n) => Some(n),
            _ => None,
        })
    }

    /// After a MemoryError in a program of ours: the free heap, and the
    /// buffers halved for what follows.
    async fn low_memory(&self) -> Option<u64> {
        let free = self.free_heap().await;
        let buffer = {
            let mut ram = self.ram.lock().unwrap_or_else(|e| e.into_inner());
            ram.buffer = (ram.buffer / 2).max(BUFFER_MIN);
            ram.buffer
        };
        *self.grow_at.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Instant::now() + ram::GROW_AFTER);
        info!(
            "the board ran out of memory in a program of ours ({} bytes free); buffers now {buffer} bytes",
            free.map_or("?".to_string(), |n| n.to_string())
        );
        // Helpers not defined yet: they get the size when they are.
        let _ = self
            .session
            .run(
                format!("try:_wrm.B={buffer}\nexcept NameError:pass\n"),
                self.how(Run::QUERY),
            )
            .await;
        free
    }

    /// A person's program: output and traceback as the board gave them.
    /// Dropping the future stops it on the board (Ctrl-C).
    pub async fn exec(&self, code: &str) -> Result<Output> {
        self.session.exec(code.as_bytes().to_vec()).await
    }

    /// A person's program, its output handed over as it comes.
    pub fn exec_stream(&self, code: &str) -> Result<crate::session::ProgramStream> {
        self.session.exec_stream(code.as_bytes().to_vec())
    }

    pub async fn stat(&self, path: &str) -> Result<Option<Stat>> {
        parse_stat(&self.query(sn::stat(path)).await?, path)
    }

    /// [`Board::stat`] of a file about to be downloaded: where the first
    /// large download of this connection will measure the binary channel
    /// with a small file's GET first, the same program finds that file
    /// (the helper `p`), a round trip less for a `cp` from the board.
    pub async fn stat_probing(&self, path: &str) -> Result<Option<Stat>> {
        let wanted = {
            let d = self.downloads_mut();
            d.measured.chunk_secs.is_none()
                && !d.probed
                && d.hint.is_none()
                && self.transfer == Transfer::Auto
        };
        if !wanted {
            return self.stat(path).await;
        }
        let out = self
            .with_helpers(sn::probe(PROBE_MAX, Some(path)), Run::QUERY)
            .await?;
        let st = parse_stat(&out, path)?;
        self.pace_known(&out);
        self.downloads_mut().hint = Some(probe_answer(&out));
        Ok(st)
    }

    /// Takes an earlier connection's measure of a GET chunk's pace from
    /// the probe's answer, if the board kept one (it does until it
    /// resets): then the small file's GET (2.5 round trips) is not
    /// needed. Whether it did.
    fn pace_known(&self, out: &[u8]) -> bool {
        let Some(us) = sn::lines(out).find_map(|l| match Answer::parse(l) {
            Answer::Paced(us) => Some(us),
            _ => None,
        }) else {
            return false;
        };
        debug!("binary GETs take {us} µs a chunk on this board (measured before)");
        self.downloads_mut().measured.binary(&channel::Measured {
            chunk_secs: Some(us as f64 / 1e6),
            ..channel::Measured::default()
        });
        true
    }

    /// The entries of a directory, or of the whole tree below it; names no
    /// local path can hold are left out (with a warning).
    pub async fn list(&self, path: &str, deep: bool) -> Result<Vec<Entry>> {
        Ok(self.listing(path, deep).await?.entries)
    }

    /// A listing, checked: every entry is one good name in a directory the
    /// listing itself has shown (or `path`), so that a board cannot name a
    /// place outside the tree asked for (`..`, `a/b`, an empty name, NUL);
    /// the walk's depth and size are bounded, so a directory that contains
    /// itself ends. What was left out is in `skipped`, escaped.
    pub async fn listing(&self, path: &str, deep: bool) -> Result<Listing> {
        self.listing_of(path, sn::walk(path, deep), deep).await
    }

    /// The whole tree below `path` (a checked `listing`), and the statvfs
    /// figures of its filesystem, in one program.
    pub async fn tree_and_space(&self, path: &str) -> Result<Listing> {
        self.listing_of(path, sn::walk_and_space(path), true).await
    }

    async fn listing_of(&self, path: &str, program: String, deep: bool) -> Result<Listing> {
        let out = self.query(program).await?;
        let mut found = Listing::default();
        let mut dirs: HashSet<String> = HashSet::from([path.to_string()]);
        let skip = |found: &mut Listing, p: &str, why: &str| {
            let p = shown(p);
            warn!("skipped {p} in the board's listing of {path}: {why}");
            found.skipped.push(p);
        };
        // A name that is not UTF-8 cannot be a path here (every path
        // is a str, in the tool and in our board code): skipped, with one
        // warning per directory.
        let mut warned: HashSet<String> = HashSet::new();
        // `name`: None when the board could not give it (`U <hex dir>`).
        let mut not_utf8 = |found: &mut Listing, p: &[u8], name: Option<&[u8]>| {
            let dir = shown_bytes(p.strip_suffix(b"/").unwrap_or(p));
            let dir = if dir.is_empty() { "/".to_string() } else { dir };
            if warned.insert(dir.clone()) {
                warn!("skipped names in {dir} on the board that are not UTF-8");
            }
            found.skipped.push(match name {
                Some(n) => shown_bytes(&[p, n].concat()),
                None => format!("a name in {dir}"),
            });
        };
        // The directory of a compact listing's entries (`Answer::InDir`),
        // the directories it named so far by number (0: `path`; None for
        // a `d` line that was no good name), and the last entry's mtime
        // (each comes as the difference from it).
        let mut within: Option<Vec<u8>> = None;
        let mut numbered: Vec<Option<Vec<u8>>> = vec![Some(path.as_bytes().to_vec())];
        let mut last_mtime: i64 = 0;
        for l in sn::lines(&out) {
            if let Some(d) = l.strip_prefix("U ").and_then(sn::unhex_bytes) {
                not_utf8(&mut found, &d, None);
                continue;
            }
            let answer = Answer::parse(l);
            let entry = match answer {
                Answer::Entry {
                    dir,
                    size,
                    mtime,
                    hex,
                } => sn::unhex_bytes(hex).map(|p| (dir, size, mtime, p)),
                Answer::InDir(k) => {
                    within = numbered.get(k).cloned().flatten();
                    continue;
                }
                Answer::Named {
                    dir,
                    size,
                    mtime,
                    name,
                } => {
                    let mtime = last_mtime.saturating_add(mtime);
                    last_mtime = mtime;
                    let p = within.as_ref().zip(sn::name_bytes(name)).map(|(d, n)| {
                        let mut p = d.clone();
                        if p.last() != Some(&b'/') {
                            p.push(b'/');
                        }
                        p.extend_from_slice(&n);
                        p
                    });
                    if dir {
                        // Bounded as the entries are, below.
                        if numbered.len() > MAX_ENTRIES {
                            return Err(Error::Answer(crate::error::Unexpected::LongListing {
                                path: path.to_string(),
                                most: MAX_ENTRIES,
                            }));
                        }
                        numbered.push(p.clone());
                    }
                    p.map(|p| (dir, size, mtime, p))
                }
                _ => None,
            };
            match (entry, answer) {
                (Some((is_dir, size, mtime, p)), _) => {
                    let p = match String::from_utf8(p) {
                        Ok(p) => p,
                        Err(e) => {
                            let p = e.as_bytes();
                            let cut = p.iter().rposition(|&c| c == b'/').map_or(0, |i| i + 1);
                            not_utf8(&mut found, &p[..cut], Some(&p[cut..]));
                            continue;
                        }
                    };
                    let (dir, name) = match p.rsplit_once('/') {
                        Some(("", n)) => ("/", n),
                        Some((d, n)) => (d, n),
                        None => ("", p.as_str()),
                    };
                    if let Err(why) = component(name) {
                        skip(&mut found, &p, why);
                        continue;
                    }
                    // Ours, not the person's: no listing shows it.
                    if p == sn::HELPERS_FILE || p == sn::PROBE_FILE {
                        continue;
                    }
                    if !dirs.contains(dir) {
                        skip(&mut found, &p, "not in a directory the board listed");
                        continue;
                    }
                    if found.entries.len() >= MAX_ENTRIES {
                        return Err(Error::Answer(crate::error::Unexpected::LongListing {
                            path: path.to_string(),
                            most: MAX_ENTRIES,
                        }));
                    }
                    let kind = if is_dir {
                        EntryKind::Dir
                    } else {
                        EntryKind::File
                    };
                    if kind == EntryKind::Dir {
                        if p.matches('/').count() > MAX_DEPTH {
                            skip(&mut found, &p, "deeper than any real board's tree");
                            continue;
                        }
                        if deep {
                            dirs.insert(p.clone());
                        }
                    }
                    found.entries.push(Entry {
                        path: p,
                        kind,
                        size,
                        mtime,
                    });
                }
                (None, Answer::Os { errno, hex }) => {
                    let dir = hex.and_then(sn::unhex).unwrap_or_default();
                    if dir == path {
                        return Err(sn::errno_error(errno, path));
                    }
                    warn!("cannot list {} on the board: errno {errno}", shown(&dir));
                }
                (None, Answer::Vfs(f)) => found.space = StatVfs::from_fields(&f),
                (None, Answer::Ok) => return Ok(found),
                // Anything else is board chatter that landed in our answer.
                (None, _) => debug!("ignoring line from the board: {l:?}"),
            }
        }
        Err(sn::unexpected(&out, path))
    }

    pub async fn mkdir(&self, path: &str) -> Result<()> {
        sn::expect_ok(&self.snippet(sn::call("mkdir", path)).await?, path)
    }

    pub async fn mkdirs(&self, path: &str) -> Result<()> {
        self.mkdirs_all(&[path]).await
    }

    /// `mkdir -p` of several directories in one program; the error names
    /// the one that failed.
    pub async fn mkdirs_all(&self, paths: &[&str]) -> Result<()> {
        // Once the helpers are defined, a short call of them (the
        // program took four raw-paste windows, a round trip each).
        let out = if self.helpers_seen.load(std::sync::atomic::Ordering::SeqCst) {
            self.helper(sn::helper_call("mk", paths)).await?
        } else {
            self.snippet(sn::mkdirs(paths)).await?
        };
        for l in sn::lines(&out) {
            match Answer::parse(l) {
                Answer::Ok => return Ok(()),
                Answer::Os { errno, hex } => {
                    let dir = hex.and_then(sn::unhex).unwrap_or_default();
                    return Err(sn::errno_error(errno, &dir));
                }
                _ => {}
            }
        }
        Err(sn::unexpected(&out, paths.first().copied().unwrap_or("/")))
    }

    /// How the board's copies of `files` (path, local size) compare: for
    /// each, None if missing or of another size, else its digest; and the
    /// algorithm (`sha256`, or `crc32` on firmware without hashlib).
    pub async fn digests(&self, files: &[(&str, u64)]) -> Result<(String, Vec<Option<String>>)> {
        let (algorithm, seen) = self.compare(files).await?;
        let digests = seen
            .into_iter()
            .map(|s| match s {
                Seen::Digest(d) => Some(d),
                _ => None,
            })
            .collect();
        Ok((algorithm, digests))
    }

    /// `digests`, telling a missing file from one of another size.
    pub async fn compare(&self, files: &[(&str, u64)]) -> Result<(String, Vec<Seen>)> {
        let list = self.list_name();
        if files.len() >= 4 && self.binary_ok(&list) {
            let records = sn::records(files);
            let out = match self.run_listed(&list, records.clone(), "hl").await {
                // Only reads: on the next link, once more.
                Err(Error::LinkLost(_)) => self.run_listed(&self.list_name(), records, "hl").await,
                r => r,
            };
            match out.map(|o| parse_digests(&o, files.len())) {
                Ok(Some(d)) => return Ok(d),
                Err(e) if !matches!(e, Error::Os { .. }) => return Err(e),
                // The list did not arrive whole (a full flash): inline.
                _ => {}
            }
        }
        let out = self.with_helpers(sn::hashes(files), Run::QUERY).await?;
        parse_digests(&out, files.len()).ok_or_else(|| sn::unexpected(&out, "file digests"))
    }

    pub async fn remove(&self, path: &str) -> Result<()> {
        sn::expect_ok(&self.snippet(sn::call("remove", path)).await?, path)
    }

    /// Removes an empty directory; part files of ours in it go first (they
    /// are hidden, and would make it look full).
    pub async fn rmdir(&self, path: &str) -> Result<()> {
        sn::expect_ok(&self.snippet(sn::rmdir(path)).await?, path)
    }

    /// Removes the directory `path` and all below it, as `rm -r`: its
    /// files, then its directories deepest first, then itself; `removed`
    /// hears each path (and whether a directory) as it goes. A name the
    /// board listed that is not one path component removes nothing.
    pub async fn remove_tree(
        &self,
        path: &str,
        mut removed: impl FnMut(&str, bool) -> Result<()>,
    ) -> Result<()> {
        let listing = self.listing(path, true).await?;
        if !listing.skipped.is_empty() {
            return Err(crate::protocol::ProtocolError::BadNames(listing.skipped).into());
        }
        let (mut dirs, files): (Vec<_>, Vec<_>) = listing
            .entries
            .into_iter()
            .partition(|e| e.kind == EntryKind::Dir);
        for f in files {
            self.remove(&f.path).await?;
            removed(&f.path, false)?;
        }
        // Deepest first: a directory is empty when its turn comes.
        dirs.sort_by_key(|d| std::cmp::Reverse(d.path.matches('/').count()));
        for d in dirs {
            self.rmdir(&d.path).await?;
            removed(&d.path, true)?;
        }
        self.rmdir(path).await
    }

    /// Renames, replacing an existing target (file, or empty directory on
    /// filesystems that allow it).
    pub async fn rename(&self, from: &str, to: &str) -> Result<()> {
        sn::expect_ok(&self.snippet(sn::rename(from, to)).await?, from)
    }

    /// A rename that replaces a file the mount read: if the board's copy
    /// changed since (`was`: its size and mtime then), it stays, and `from`
    /// goes beside it.
    pub async fn rename_onto(&self, from: &str, to: &str, was: (u64, i64)) -> Result<Written> {
        let out = self.snippet(sn::onto(from, to, was)).await?;
        for l in sn::lines(&out) {
            match Answer::parse(l) {
                Answer::Done(mtime) => return Ok(Written::Target(mtime)),
                Answer::Beside {
                    mtime,
                    size,
                    target_mtime,
                } => {
                    return Ok(Written::Beside {
                        name: upload::conflict_name(to),
                        mtime,
                        target: (size, target_mtime),
                    });
                }
                Answer::Os { errno, .. } => return Err(sn::errno_error(errno, from)),
                _ => {}
            }
        }
        Err(sn::unexpected(&out, from))
    }

    pub async fn statvfs(&self, path: &str) -> Result<StatVfs> {
        let out = self.query(sn::statvfs(path)).await?;
        for l in sn::lines(&out) {
            match Answer::parse(l) {
                Answer::Vfs(f) if f.len() >= 10 => {
                    if let Some(v) = StatVfs::from_fields(&f) {
                        return Ok(v);
                    }
                }
                Answer::Os { errno, .. } => return Err(sn::errno_error(errno, path)),
                _ => {}
            }
        }
        Err(sn::unexpected(&out, path))
    }

    fn binary_ok(&self, path: &str) -> bool {
        self.transfer != Transfer::Paste && path.len() <= MAX_NAME
    }

    /// A whole file. Its size comes first: a GET of a missing file makes the
    /// board drop the connection, and the size is what lets acks pipeline.
    pub async fn get(&self, path: &str) -> Result<Vec<u8>> {
        let st = self
            .stat(path)
            .await?
            .ok_or_else(|| Error::NotFound(path.to_string()))?;
        self.get_sized(path, st).await
    }

    /// `get`, checked against the board's digest of the file (CRC-32 or
    /// sha256): a copy damaged in transit is read again, then refused,
    /// never handed on.
    pub async fn get_checked(&self, path: &str) -> Result<Vec<u8>> {
        const TRIES: u32 = 3;
        let mut why = String::new();
        for _ in 0..TRIES {
            let data = self.get(path).await?;
            let (algorithm, digests) = self.digests(&[(path, data.len() as u64)]).await?;
            let ours = digest(&algorithm, &data);
            match digests.into_iter().next().flatten() {
                Some(d) if d == ours => return Ok(data),
                Some(d) => {
                    why = format!("{algorithm} mismatch (board {d}, received {ours})");
                }
                None => why = "the board's copy changed size while it was read".into(),
            }
            warn!("{}: {why}; reading it again", shown(path));
        }
        Err(Error::Os {
            errno: libc::EIO,
            what: format!("{path}: damaged in transit {TRIES} times ({why})"),
        })
    }

    /// `get` of a file whose stat the caller already has (a listing).
    /// Whole in memory, so bounded as the mount's cache is: the size is
    /// the board's word (a hostile one claimed 400 MB, and the page's
    /// server held it all before answering).
    pub async fn get_sized(&self, path: &str, st: Stat) -> Result<Vec<u8>> {
        if st.size > WHOLE_MAX {
            return Err(Error::Os {
                errno: libc::EFBIG,
                what: format!(
                    "{}: {} MB, more than is read whole into memory ({} MB; `cp` copies it to a file)",
                    shown(path),
                    st.size >> 20,
                    WHOLE_MAX >> 20
                ),
            });
        }
        let mut data = Vec::with_capacity(st.size.min(1 << 24) as usize);
        self.get_into(path, st, &mut |p| match p {
            Piece::Data(d) => data.extend_from_slice(&d),
            Piece::Restart => data.clear(),
        })
        .await?;
        Ok(data)
    }

    /// A file handed over as it arrives (a reader needs the start of a file
    /// before its end comes). Returns its size.
    pub async fn get_into(
        &self,
        path: &str,
        st: Stat,
        sink: &mut (dyn FnMut(Piece) + Send),
    ) -> Result<u64> {
        self.get_into_unless(path, st, sink, None).await
    }

    /// `get_into`, dropped if `unwanted` turns true before the transfer
    /// has begun (once under way it runs to its end).
    pub async fn get_into_unless(
        &self,
        path: &str,
        st: Stat,
        sink: &mut (dyn FnMut(Piece) + Send),
        unwanted: Option<tokio::sync::watch::Receiver<bool>>,
    ) -> Result<u64> {
        if st.kind == EntryKind::Dir {
            return Err(Error::Os {
                errno: libc::EISDIR,
                what: path.to_string(),
            });
        }
        if !self.binary_ok(path) {
            let data = self.get_pasted(path).await?;
            let n = data.len() as u64;
            sink(Piece::Data(data));
            return Ok(n);
        }
        if self.download_channel(st.size).await? == channel::Channel::Text {
            match self.get_text(path, st.size, sink).await {
                Err(Error::Traceback(tb)) => {
                    warn!(
                        "downloads by the text channel fail on this board ({tb}); binary GETs from now on"
                    );
                    self.downloads_mut().no_text = true;
                    sink(Piece::Restart);
                }
                // A person's program holds the REPL: the binary channel
                // is free of it.
                Err(Error::Running { why, .. }) => {
                    info!("{path}: by binary GET: the text channel is busy ({why})");
                    sink(Piece::Restart);
                }
                r => return r,
            }
        }
        let n = self.get_binary(path, st.size, sink, unwanted).await?;
        if n != st.size {
            // Changed on the board while we read it: what we have is whole
            // as of the moment the transfer ran.
            debug!("{path}: size {} at stat, {n} read", st.size);
        }
        Ok(n)
    }

    /// A binary GET, its pace measured for [`channel::choose`]. (Bytes the
    /// sink took are credited in batches of [`CREDIT_BATCH`].)
    async fn get_binary(
        &self,
        path: &str,
        size: u64,
        sink: &mut (dyn FnMut(Piece) + Send),
        mut unwanted: Option<tokio::sync::watch::Receiver<bool>>,
    ) -> Result<u64> {
        let mut s = self.session.get_stream(path.as_bytes().to_vec(), size)?;
        // Paced: bytes are credited once the sink has them, so a sink that
        // blocks (a stalled pipe) holds the board's GET, not our memory.
        s.credit(0);
        let mut took = 0usize;
        let mut n = 0u64;
        // From the first chunk: each after it, and the end, came one pace
        // later (the board sleeps after the end's chunk too).
        let mut first: Option<Instant> = None;
        let mut chunks = 0u32;
        let mut whole = true;
        if let Some(u) = &mut unwanted {
            tokio::select! {
                w = u.wait_for(|&w| w) => if w.is_ok() {
                    self.session.drop_if_waiting(&s);
                },
                p = s.pieces.recv() => if let Some(p) = p {
                    if let Piece::Data(d) = &p {
                        n += d.len() as u64;
                        took += d.len();
                        first.get_or_insert_with(Instant::now);
                        chunks += 1;
                    }
                    sink(p);
                },
            }
        }
        while let Some(p) = s.pieces.recv().await {
            match &p {
                Piece::Data(d) => {
                    n += d.len() as u64;
                    took += d.len();
                    first.get_or_insert_with(Instant::now);
                    chunks += 1;
                }
                Piece::Restart => {
                    n = 0;
                    whole = false;
                }
            }
            sink(p);
            if took >= CREDIT_BATCH {
                s.credit(std::mem::take(&mut took));
            }
        }
        s.done
            .await
            .map_err(|_| Error::LinkLost(Lost::SessionEnded))??;
        if let Some(t) = first.filter(|_| whole && chunks > 0) {
            // From the first chunk: the time a queue held the GET is not
            // the channel's.
            let took = t.elapsed().as_secs_f64();
            let fresh = channel::Measured::get(took, chunks);
            self.observed(channel::Channel::Binary, n, took, &fresh);
        }
        Ok(n)
    }

    /// A download of `size` bytes by `channel` took `took` seconds; `fresh`
    /// are its figures alone. They join this connection's, or, when the
    /// download departed from what the figures foretold (the link changed
    /// since), replace them: the other channel is measured again at the
    /// next large download. Bounded: `REMEASURE_MAX` times, one per
    /// `REMEASURE_EVERY`.
    fn observed(&self, channel: channel::Channel, size: u64, took: f64, fresh: &channel::Measured) {
        let mut d = self.downloads_mut();
        let may = d.remeasured < REMEASURE_MAX
            && d.remeasured_at
                .is_none_or(|t| t.elapsed() >= REMEASURE_EVERY);
        let foretold = channel::foretold(&d.measured, channel, size);
        if let Some(e) =
            foretold.filter(|&e| may && size > PROBE_AFTER && channel::departs(e, took))
        {
            info!(
                "downloads: {size} B by {} took {took:.2} s where the figures foretold {e:.2} s: the link changed; measuring the channels again",
                match channel {
                    channel::Channel::Binary => "binary GET",
                    channel::Channel::Text => "the text channel",
                }
            );
            d.measured.remeasure(channel, fresh);
            d.probed = false;
            d.hint = None;
            d.remeasured += 1;
            d.remeasured_at = Some(Instant::now());
            return;
        }
        match (fresh.chunk_secs, fresh.text_rate, fresh.text_costs) {
            (Some(_), _, _) => d.measured.binary(fresh),
            (_, Some(r), Some((first, each))) => d.measured.text(r, first, Some(each)),
            _ => {}
        }
    }

    fn downloads_mut(&self) -> std::sync::MutexGuard<'_, Downloads> {
        let mut d = self.downloads.lock().unwrap_or_else(|e| e.into_inner());
        let generation = self.session.generation();
        if d.generation != generation {
            *d = Downloads {
                generation,
                ..Downloads::default()
            };
        }
        d
    }

    /// How a download of `size` bytes goes now. Before the first large one
    /// on a connection, a small file's GET (`boot.py`, which ESP boards
    /// keep) shows whether binary chunks are throttled.
    /// A board out of reach while it looks for a file to measure with is
    /// the download's failure: its GET would wait for the link as long
    /// again (a read with the board off failed after twice `--timeout`).
    async fn download_channel(&self, size: u64) -> Result<channel::Channel> {
        let probe = {
            let mut d = self.downloads_mut();
            let first = self.probe_due(&d, size);
            d.probed |= first;
            first
        };
        let found = match probe {
            true => self.probe_file().await.inspect_err(|_| {
                // Measured at the next download instead.
                self.downloads_mut().probed = false;
            })?,
            false => None,
        };
        if let Some((file, size)) = found {
            let r = self.get_binary(&file, size, &mut |_| {}, None).await;
            debug!(
                "measuring binary chunks with {file}: {:?}",
                r.as_ref().map(drop)
            );
            let mut d = self.downloads_mut();
            if r.is_ok() {
                d.tell = d.measured.chunk_secs.map(|c| (c * 1e6).round() as u64);
            }
        }
        let slow = channel::wants_link_rate(&self.downloads_mut().measured)
            && self.transfer == Transfer::Auto;
        if slow {
            let rate = self.link_rate().await;
            debug!("the link carries {rate:?} B/s from the board");
            self.downloads_mut().measured.link_rate = rate;
        }
        let mut d = self.downloads_mut();
        let (mut c, mut why) = match self.transfer {
            Transfer::Get => (
                channel::Channel::Binary,
                "binary GET (--transfer get)".into(),
            ),
            Transfer::Text if size > channel::SMALL => (
                channel::Channel::Text,
                "text channel (--transfer text)".into(),
            ),
            _ => channel::choose(&d.measured, size),
        };
        if d.no_text && c == channel::Channel::Text {
            c = channel::Channel::Binary;
            why = "binary GET: the board cannot run our text download".into();
        }
        if size > PROBE_AFTER {
            if d.choice.as_ref().map(|(c, _)| *c) != Some(c) {
                info!("downloads: {why}");
            }
            d.choice = Some((c, why));
        }
        Ok(c)
    }

    fn probe_due(&self, d: &Downloads, size: u64) -> bool {
        d.measured.chunk_secs.is_none()
            && !d.probed
            && size > PROBE_AFTER
            && self.transfer == Transfer::Auto
    }

    /// Whether a download of `size` bytes starts by measuring the binary
    /// channel, whose figures then go to the board with our next program.
    pub fn probes_before(&self, size: u64) -> bool {
        let d = self.downloads_mut();
        self.probe_due(&d, size)
    }

    /// A small file whose GET shows the binary channel's pace: the
    /// smallest at the root (up to `PROBE_MAX`: `boot.py` on ESP boards),
    /// else a byte of ours, so that a board without one is measured too. The
    /// smaller the cheaper: the board's sleep is per chunk, so one chunk
    /// shows it (its end comes a sleep after it), and `channel::choose`
    /// counts a throttled chunk at its many-chunk pace; the link's rate is
    /// measured apart. Without any, the first download by GET measures
    /// itself.
    /// The board out of reach is an error; any other failure, no file.
    async fn probe_file(&self) -> Result<Option<(String, u64)>> {
        let hint = self.downloads_mut().hint.take();
        let found = match hint {
            Some(h) => h,
            // One program: a stat of boot.py, a listing of the root and a
            // stat of our byte were three (0.15 s at 10 ms RTT, the
            // listing's program alone eight raw-paste windows).
            None => match self
                .impatient()
                .with_helpers(sn::probe(PROBE_MAX, None), Run::QUERY)
                .await
            {
                Ok(out) if self.pace_known(&out) => return Ok(None),
                Ok(out) => probe_answer(&out),
                Err(e) if e.is_no_link() => return Err(e),
                Err(e) => {
                    debug!("no file to measure binary chunks with: {e}");
                    return Ok(None);
                }
            },
        };
        if found.is_some() {
            return Ok(found);
        }
        // A byte of ours (hidden in listings), written once. Without a
        // file to measure with, the first download of a board holding
        // only big files went by GET: 8.9 s for 100 KB on a throttled
        // board, 0.10 s by text.
        match self
            .session
            .put(sn::PROBE_FILE.as_bytes().to_vec(), b"\n".to_vec())
            .await
        {
            Ok(()) => Ok(Some((sn::PROBE_FILE.to_string(), 1))),
            Err(e) if e.is_no_link() => Err(e),
            Err(e) => {
                debug!("no file to measure binary chunks with: {e}");
                Ok(None)
            }
        }
    }

    /// The link's rate: that of a few KB of text the board prints (not
    /// throttled anywhere), or the uploads' pace if faster. Not the
    /// uploads' alone: on a throttled board a PUT sleeps 20 ms per 512 B
    /// too, and its pace (a mount's first PUTs) is the board's, not the
    /// link's.
    async fn link_rate(&self) -> Option<f64> {
        // End to end: the helpers' PUT, with a program queued right behind
        // its last byte, went into a 12 KB/s link's buffers at 48 KB/s, and
        // an unthrottled board's GET looked throttled.
        let put = self.session.upload_rate().await;
        let printed = self.printed_rate().await;
        match (put, printed) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// The pace of a few KB of text the board prints.
    async fn printed_rate(&self) -> Option<f64> {
        // Lines: the session hands on output a line at a time.
        let code = format!("for i in range({}):print('x'*98)\n", LINK_PROBE / 100);
        // Not behind a person's program: a read waited for it, the whole
        // of a 30 s program (the download goes by GET meanwhile anyway).
        let mut s = self.session.stream(code, Some(Duration::ZERO)).ok()?;
        let mut first: Option<Instant> = None;
        let mut after = 0usize;
        while let Some(p) = s.pieces.recv().await {
            if let Piece::Data(t) = p {
                match first {
                    None => first = Some(Instant::now()),
                    Some(_) => after += t.len(),
                }
            }
        }
        let out = s.finish().await.ok()?;
        let secs = first?.elapsed().as_secs_f64();
        after += out.stdout.len();
        debug!("link probe: {after} B after the first piece in {secs:.3} s");
        // Most of it at once: faster than we can time.
        if after < LINK_PROBE / 2 || secs <= 0.0 {
            return Some(f64::MAX);
        }
        Some(after as f64 / secs)
    }

    /// Bytes/s the link carries from the board, once a transfer has shown
    /// it (see [`channel::from_board`]).
    pub fn download_rate(&self) -> Option<f64> {
        channel::from_board(&self.downloads_mut().measured)
    }

    /// Whether a file transfer is under way or queued on the session.
    pub fn transferring(&self) -> bool {
        self.session.transferring()
    }

    /// Which channel large downloads take on this connection, and why.
    pub fn downloads(&self) -> String {
        let d = self.downloads_mut();
        match &d.choice {
            Some((_, why)) => why.clone(),
            None => channel::choose(&d.measured, u64::MAX).1,
        }
    }

    /// Which channel uploads take, and why, for `status`.
    pub fn uploads(&self) -> String {
        match self.transfer {
            Transfer::Paste => "raw-paste programs with base64 (--transfer paste)".into(),
            // Measured on the throttled test board (scripts/bench-esp8266.sh):
            // a PUT's 20 ms per 512 B beat pasting base64.
            _ => "binary PUT, compressed where the board inflates and it pays (raw-paste for paths over 63 bytes)".into(),
        }
    }

    /// Text downloads under way, as `status` shows transfers.
    pub fn text_moving(&self) -> Vec<crate::session::Moving> {
        let moves = self.text_moves.lock().unwrap_or_else(|e| e.into_inner());
        moves
            .iter()
            .map(|m| crate::session::Moving {
                path: m.path.clone(),
                upload: false,
                done: m.done,
                total: m.total,
                secs: m.since.elapsed().as_secs_f64(),
            })
            .collect()
    }

    fn text_move(&self, path: &str, total: u64) -> TextMoving {
        static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.text_moves
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(TextMove {
                id,
                path: path.to_string(),
                done: 0,
                total,
                since: Instant::now(),
            });
        TextMoving {
            moves: self.text_moves.clone(),
            id,
        }
    }

    /// A file through a program on the text channel (see [`stream`]); a
    /// broken link starts it over, as it does a GET.
    async fn get_text(
        &self,
        path: &str,
        size: u64,
        sink: &mut (dyn FnMut(Piece) + Send),
    ) -> Result<u64> {
        // Whatever way the download ends (an error, its reader gone), the
        // `send` it kept on the board goes.
        let mut kept = KeptSend {
            board: Some(self.clone()),
            left: false,
            refused: false,
        };
        let mut tries = 1;
        loop {
            match self.get_text_once(path, size, sink, &mut kept).await {
                Err(Error::LinkLost(why)) if tries < TEXT_TRIES => {
                    debug!("{path}: the text download starts over ({why})");
                    sink(Piece::Restart);
                    tries += 1;
                }
                r => return r,
            }
        }
    }

    /// The file in slices, one program each (see [`stream::slice_pieces`]):
    /// between them the REPL is free for a person's keys and other
    /// requests. The first slice's program keeps `send` on the board, so
    /// that the next ones are a short call each. Every slice must announce
    /// the size the first did.
    async fn get_text_once(
        &self,
        path: &str,
        size: u64,
        sink: &mut (dyn FnMut(Piece) + Send),
        kept: &mut KeptSend,
    ) -> Result<u64> {
        let moving = self.text_move(path, size);
        let began = Instant::now();
        let mut rate = self.downloads_mut().measured.text_rate;
        let mut next = 0u64;
        let mut got = 0u64;
        let mut announced_size: Option<u64> = None;
        // File data over the time it took to come, of slices longer than
        // the program's first window; and the time each slice waited for
        // its first piece (its program, a round trip).
        let (mut data, mut secs) = (0u64, 0f64);
        let mut costs: Vec<f64> = Vec::new();
        loop {
            let typing = self.session.typing().await;
            let most = stream::slice_pieces(rate, typing);
            let pieces = announced_size
                .unwrap_or(size)
                .div_ceil(stream::PIECE as u64);
            let (piece, window) = (stream::PIECE, stream::WINDOW);
            let code = match (kept.left, next + most >= pieces || kept.refused) {
                (true, _) => sn::send_kept(path, piece, window, next, most),
                (false, true) => sn::send(path, piece, window, next, most),
                (false, false) => sn::send_keep(path, piece, window, next, most),
            };
            let mut slices = Vec::new();
            let r = self
                .text_slices(code, path, next, most, sink, &mut slices)
                .await;
            match r {
                // Gone from the board (a soft reset, or the helpers' class
                // never defined): this download pastes each slice whole.
                Err(Error::Traceback(tb))
                    if kept.left
                        && slices.is_empty()
                        && ["NameError", "AttributeError"]
                            .iter()
                            .any(|e| tb.contains(e)) =>
                {
                    debug!("{path}: the kept send is gone ({tb}); pasting each slice");
                    (kept.left, kept.refused) = (false, true);
                    continue;
                }
                r => r?,
            }
            let mut end = false;
            for sl in slices {
                let announced = sl.reader.announced();
                let n = sl.reader.finish()?;
                let Some((z, k)) = announced else {
                    return Err(Error::Answer(crate::error::Unexpected::NoAnnouncement {
                        path: path.to_string(),
                    }));
                };
                if announced_size.is_some_and(|s| s != z) {
                    return Err(Error::LinkLost(Lost::Changed {
                        path: path.to_string(),
                        got: None,
                    }));
                }
                announced_size = Some(z);
                got += n;
                next += k;
                moving.progress(got, z);
                if let Some(t) = sl.start.filter(|_| k > stream::WINDOW as u64) {
                    data += n;
                    secs += t.elapsed().as_secs_f64();
                    rate = Some(data as f64 / secs.max(1e-6));
                }
                if let Some(t) = sl.start {
                    costs.push(t.saturating_duration_since(sl.asked).as_secs_f64());
                }
                end = next >= z.div_ceil(stream::PIECE as u64) || k == 0;
            }
            // The program removes the kept `send` once the file is done.
            kept.left = !end && !kept.refused;
            if end {
                break;
            }
        }
        let z = announced_size.unwrap_or(0);
        if got != z {
            return Err(Error::LinkLost(Lost::Changed {
                path: path.to_string(),
                got: Some((got, z)),
            }));
        }
        if secs > 0.0 {
            let first = costs.first().copied().unwrap_or(0.0);
            let each = (costs.len() > 1)
                .then(|| costs[1..].iter().sum::<f64>() / (costs.len() - 1) as f64);
            let mut fresh = channel::Measured::default();
            fresh.text(data as f64 / secs.max(1e-6), first, each);
            let took = began.elapsed().as_secs_f64();
            info!(
                "text channel {path} {got} B in {took:.3} s ({:.1} KB/s; {} slices, the first waited {first:.3} s, the next {:.3} s each)",
                got as f64 / 1000.0 / took.max(1e-6),
                costs.len(),
                each.unwrap_or(0.0)
            );
            self.observed(channel::Channel::Text, got, took, &fresh);
        }
        Ok(got)
    }

    /// One program (`code`, a `send`): its slices, each ended, in `done`.
    /// Several when, at each slice's last credit, nobody else waited for
    /// the REPL: the next was asked for with it (see `send`), so the link
    /// does not idle between them.
    async fn text_slices(
        &self,
        code: String,
        path: &str,
        first: u64,
        most: u64,
        sink: &mut (dyn FnMut(Piece) + Send),
        done: &mut Vec<stream::Slice>,
    ) -> Result<()> {
        let patience = self.patience.unwrap_or(TEXT_PATIENCE).min(TEXT_PATIENCE);
        let mut s = self.session.stream(code, Some(patience))?;
        let mut cur = stream::Slice::new(path, first, most, Instant::now());
        while let Some(p) = s.pieces.recv().await {
            if let Piece::Data(text) = p {
                let mut text: &[u8] = &text;
                while !text.is_empty() {
                    // An error drops the stream: the program gets Ctrl-C.
                    let (used, credits, last) = cur.take(text, sink)?;
                    text = &text[used..];
                    if credits > 0 {
                        s.credit(credits);
                    }
                    if last {
                        let go = cur.more() && self.alone().await;
                        if go {
                            cur.reader.chain();
                        }
                        s.answer(if go { "c" } else { "e" });
                    }
                    if cur.reader.ended() && cur.chained() {
                        let next = cur.next(path, most);
                        done.push(std::mem::replace(&mut cur, next));
                    }
                }
            }
        }
        let out = s.finish().await?;
        cur.take(&out.stdout, sink)?;
        if !out.stderr.is_empty() {
            return Err(Error::Traceback(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        done.push(cur);
        Ok(())
    }

    /// Nobody else waits for the REPL: no person typing, no other program.
    async fn alone(&self) -> bool {
        self.session
            .status()
            .await
            .is_ok_and(|s| !s.typing && s.programs <= 1)
    }

    async fn get_pasted(&self, path: &str) -> Result<Vec<u8>> {
        self.read_many(&[path])
            .await?
            .pop()
            .unwrap_or_else(|| Err(sn::unexpected(b"", path)))
    }

    /// Several (small) files of one directory in one program, each whole
    /// or with why not.
    pub async fn read_many(&self, paths: &[&str]) -> Result<Vec<Result<Vec<u8>>>> {
        use base64::Engine;
        let dir = paths.first().map_or("/", |p| parent(p));
        let names: Vec<&str> = paths
            .iter()
            .map(|p| p.rsplit('/').next().unwrap_or(p))
            .collect();
        if paths.iter().any(|p| parent(p) != dir) {
            return Err(Error::Invalid("read_many reads one directory".into()));
        }
        let out = self
            .with_helpers(sn::read_files(dir, &names), Run::QUERY)
            .await?;
        let what = paths.first().copied().unwrap_or("files");
        let mut files = Vec::with_capacity(paths.len());
        let mut b64: Option<Vec<u8>> = None;
        for l in sn::lines(&out) {
            let at = paths.get(files.len()).copied().unwrap_or(what);
            match (Answer::parse(l), &mut b64) {
                (Answer::Ok, None) if files.len() == paths.len() => return Ok(files),
                (Answer::File, None) => b64 = Some(Vec::new()),
                (Answer::End, Some(_)) => {
                    let data = b64.take().unwrap_or_default();
                    files.push(
                        base64::engine::general_purpose::STANDARD
                            .decode(&data)
                            .map_err(|e| Error::Protocol(ProtocolError::Base64(e.to_string()))),
                    );
                }
                (_, Some(data)) => data.extend_from_slice(l.as_bytes()),
                (Answer::Os { errno, .. }, None) => files.push(Err(sn::errno_error(errno, at))),
                (_, None) => debug!("ignoring line from the board: {l:?}"),
            }
        }
        Err(sn::unexpected(&out, what))
    }

    /// Seconds to add to a board mtime for Unix time.
    pub async fn epoch_offset(&self) -> Result<i64> {
        let out = self.query(sn::epoch()).await?;
        for l in sn::lines(&out) {
            if let Answer::Year(y) = Answer::parse(l) {
                return Ok(if y == 2000 { 946_684_800 } else { 0 });
            }
        }
        Err(sn::unexpected(&out, "the board's epoch"))
    }
}

/// `A <algorithm>`, then `N`, `S` or `H <digest>` per file, then `K`.
/// How the board's copy of a file compares to ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Missing,
    OtherSize,
    /// Of our size, with this digest.
    Digest(String),
}

/// A `stat` answer (also the start of a `probe` one with a path).
fn parse_stat(out: &[u8], path: &str) -> Result<Option<Stat>> {
    for l in sn::lines(out) {
        match Answer::parse(l) {
            Answer::Stat { mode, size, mtime } => {
                return Ok(Some(Stat {
                    kind: if mode & 0x4000 != 0 {
                        EntryKind::Dir
                    } else {
                        EntryKind::File
                    },
                    size,
                    mtime,
                }));
            }
            Answer::Os { errno: 2, .. } => return Ok(None),
            Answer::Os { errno, .. } => return Err(sn::errno_error(errno, path)),
            _ => {}
        }
    }
    Err(sn::unexpected(out, path))
}

/// The file a `probe` answer names, if any: `/` and one good name.
fn probe_answer(out: &[u8]) -> Option<(String, u64)> {
    sn::lines(out).find_map(|l| match Answer::parse(l) {
        Answer::Entry {
            dir: false,
            size,
            hex,
            ..
        } if (1..=PROBE_MAX).contains(&size) => sn::unhex(hex)
            .filter(|n| component(n).is_ok() && n.len() < MAX_NAME)
            .map(|n| (format!("/{n}"), size)),
        _ => None,
    })
}

fn parse_digests(out: &[u8], n: usize) -> Option<(String, Vec<Seen>)> {
    let mut algo = String::new();
    let mut got = Vec::with_capacity(n);
    for l in sn::lines(out) {
        match Answer::parse(l) {
            Answer::Algorithm(a) => algo = a.to_string(),
            Answer::Missing => got.push(Seen::Missing),
            Answer::OtherSize => got.push(Seen::OtherSize),
            Answer::Digest(h) => got.push(Seen::Digest(h.to_string())),
            Answer::Ok if got.len() == n => return Some((algo, got)),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_answer_names_one_small_file_at_the_root_or_none() {
        let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
        let out = format!("S 32768 100000 0\nF 37 0 {}\nK\n", hex("boot.py"));
        let st = parse_stat(out.as_bytes(), "/x.bin").ok().flatten();
        assert_eq!(st.map(|s| s.size), Some(100_000));
        assert_eq!(
            probe_answer(out.as_bytes()),
            Some(("/boot.py".to_string(), 37))
        );
        assert_eq!(probe_answer(b"E 2\nK\n"), None);
        assert_eq!(parse_stat(b"E 2\nK\n", "/x").ok(), Some(None));
        // A name that is not one component, or too long for a GET.
        for bad in ["..", "a/b", "", &"n".repeat(63)] {
            let out = format!("F 1 0 {}\nK\n", hex(bad));
            assert_eq!(probe_answer(out.as_bytes()), None, "{bad:?}");
        }
        // Larger than a probe may be.
        let out = format!("F {} 0 {}\nK\n", PROBE_MAX + 1, hex("a"));
        assert_eq!(probe_answer(out.as_bytes()), None);
    }

    #[test]
    fn names_are_shown_without_what_a_terminal_would_act_on() {
        assert_eq!(shown("a\n\x1b[31m"), "a\\n\\u{1b}[31m");
        // Shown as `exe.png` if the override were printed as is.
        assert_eq!(shown("\u{202e}gnp.exe"), "\\u{202e}gnp.exe");
        assert_eq!(shown("ä.py"), "ä.py");
    }

    #[test]
    fn normalizes_paths() {
        assert_eq!(normalize("main.py").unwrap(), "/main.py");
        assert_eq!(normalize("//lib/./x/").unwrap(), "/lib/x");
        assert_eq!(normalize("").unwrap(), "/");
        assert!(normalize("../etc").is_err());
        assert!(normalize("a\0b").is_err());
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
        assert_eq!(join("/", "x"), "/x");
        assert!(is_part(".wrm-00a1f3") && is_part(".wrm-part") && !is_part("wrm-x"));
    }
}

/// The allocation a MemoryError says failed (`... allocating N bytes`).
fn asked(traceback: &str) -> Option<u64> {
    let (_, rest) = traceback.split_once("allocating ")?;
    rest.split(' ').next()?.parse().ok()
}

#[cfg(test)]
mod low_memory_tests {
    use super::*;

    #[test]
    fn a_small_allocation_failing_beside_much_free_heap_is_said_as_pieces() {
        let tb = "Traceback (most recent call last):\r\n  File \"<stdin>\", line 3, in <module>\r\nMemoryError: memory allocation failed, allocating 2048 bytes\r\n";
        assert_eq!(asked(tb), Some(2048));
        let e = Error::LowMemory {
            free: Some(32704),
            compiling: false,
            asked: asked(tb),
        };
        assert_eq!(
            e.to_string(),
            "the board is low on memory (32704 bytes free, too little of it in one piece for 2048 bytes)"
        );
        let e = Error::LowMemory {
            free: Some(6000),
            compiling: false,
            asked: Some(2048),
        };
        assert_eq!(
            e.to_string(),
            "the board is low on memory (6000 bytes free)"
        );
    }
}
