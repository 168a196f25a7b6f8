//! Reading files from the board: each file once, whatever its readers (a
//! load belongs to the file: a reader that gives up ends nothing), handed
//! over once checked whole (ranges meanwhile by the range program, which
//! checks its own), and small files of a directory together.

use super::*;
use crate::board::Stat;
use crate::session::Piece;
use tokio::sync::watch;
use tracing::debug;

/// Files this small travel together with their small neighbours.
const SMALL: u64 = 4096;
/// A read that failed for want of the link fails again at once for this
/// long (see `find`).
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// A batch: at most this many files and bytes (the board's answer is all
/// printed by one program).
const BATCH_FILES: usize = 64;
const BATCH_BYTES: u64 = 48 * 1024;
/// A batch holds what the link moves in this long: the reader that asked
/// waits for the whole batch (48 KB took 2.1-2.65 s at 20 KB/s). Beside a
/// transfer, half: the reader waits for a slice of it first (a small read
/// beside an upload took 0.22 s of slice and 0.25 s of batch).
const BATCH_SECS: f64 = 0.2;
const BATCH_SECS_BESIDE: f64 = 0.1;
/// The link's rate until a transfer has measured it: an ESP32's, the
/// slowest common one (a faster link then gets smaller batches, each
/// quick).
const RATE_UNMEASURED: f64 = 20_000.0;
/// File bytes per byte of a batch's answer (base64, line ends).
const BATCH_YIELD: f64 = 0.74;
/// Files bigger than this are read by ranges until a reader goes on
/// reading them from start to end.
const PEEK_FILE: u64 = 16 * 1024;
/// A range read: the range asked for, widened to whole blocks of this...
const PEEK_BLOCK: usize = 1024;
/// ...or, for a read shorter than a block, to whole pieces of this...
const PEEK_ALIGN: usize = 256;
/// ...and at most this much (a bigger read waits for the whole file's
/// transfer: a short read would end the file for the page cache).
const PEEK_MAX: usize = 8192;

/// A file on its way from the board.
pub(super) struct Load {
    id: u64,
    data: Vec<u8>,
    /// Bytes so far, and whether the transfer has ended.
    tx: watch::Sender<(usize, bool)>,
    error: Option<Error>,
    /// When it failed.
    failed_at: Option<Instant>,
    /// Set when the file's last reader has closed: a transfer that has not
    /// begun is dropped (one under way cannot be stopped).
    unwanted: watch::Sender<bool>,
}

impl Load {
    pub(super) fn unwanted(&self) {
        self.unwanted.send_replace(true);
    }
}

/// What a reader asks for: the range, and the handle it reads through
/// (None: we read, to edit).
#[derive(Clone, Copy)]
struct Want {
    fh: Option<u64>,
    start: usize,
    end: usize,
}

/// What a reader found.
enum Found {
    Data(Vec<u8>),
    /// Wait for the end of the load with this id, or (Some) until it
    /// holds this many bytes.
    Wait(u64, watch::Receiver<(usize, bool)>, Option<usize>),
    /// Read `[start, start + len)` of the file at the board's path, which
    /// has this version.
    Peek {
        path: String,
        version: (u64, i64),
        start: usize,
        len: usize,
    },
}

impl Core {
    pub async fn read(&self, ino: Ino, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        let start = offset as usize;
        let end = start.saturating_add(size as usize);
        // Whole, up to the file's end, whatever the file's way here: the
        // kernel takes a short read for the end of the file. Direct I/O
        // passes one to a read(2) as it is, but sendfile and mmap read
        // through the page cache, which then ends the file there
        // (`shutil.copyfile` of 100 KB, and `webrepl-mount cp` out of a
        // mount, wrote the first 1,024 bytes and succeeded).
        let data = self.read_range(ino, Some(fh), start, end).await?;
        // Where this reader goes on from, if it reads on in order.
        self.lock().reading.insert(fh, start + data.len());
        Ok(data)
    }

    /// `[start, end)` of a file (up to its end).
    async fn read_range(
        &self,
        ino: Ino,
        fh: Option<u64>,
        start: usize,
        end: usize,
    ) -> Result<Vec<u8>> {
        let want = Want { fh, start, end };
        // What must come from the board comes only from the mount's board
        // (see `identity`); what is here is served whatever answers.
        if self.lock().contents.get(ino).is_none() {
            self.guard.check(&self.board).await?;
        }
        let mut waited = None;
        let mut peeked = false;
        // The range read was refused for a person's program: the whole
        // file's GET will not be checked either (the check is a program),
        // so its bytes are served as they come (`head -c 100` of 300 KB
        // beside a program waited 16.5 s for the whole).
        let mut early = false;
        loop {
            let found = {
                let mut st = self.lock();
                self.find(&mut st, ino, want, waited, peeked, early)?
            };
            match found {
                Found::Data(d) => return Ok(d),
                Found::Peek {
                    path,
                    version,
                    start,
                    len,
                } => {
                    peeked = true;
                    // Through a program, beside whatever the binary channel
                    // carries; a REPL held by a person's program (or any
                    // failure) leaves it to the whole file's transfer.
                    match self
                        .board
                        .impatient()
                        .read_range(&path, start as u64, len as u64)
                        .await
                    {
                        Ok(r) if (r.size, r.mtime) == version => {
                            debug!("{path}: {} B at {start} by a range read", r.data.len());
                            self.lock()
                                .contents
                                .insert_piece(ino, version, start, r.data);
                        }
                        Ok(r) => debug!(
                            "{path}: {} B, mtime {} on the board now: read whole",
                            r.size, r.mtime
                        ),
                        // No link: the whole file would wait for it as long
                        // again.
                        Err(e) if e.is_no_link() => return Err(e),
                        Err(e) => {
                            early = matches!(e, Error::Running { .. });
                            debug!("{path}: range read failed ({e}): read whole");
                        }
                    }
                }
                Found::Wait(id, mut rx, until) => {
                    waited = Some(id);
                    // Its bytes are served once checked, at its end (or,
                    // early, once `until` are here). An error means the
                    // load ended (and was removed).
                    let _ = rx
                        .wait_for(|&(n, done)| done || until.is_some_and(|u| n >= u))
                        .await;
                }
            }
        }
    }

    /// The range if it is here; else the load to wait for (started if
    /// none runs), or the range to read first. `waited`: the load this
    /// reader waited for, whose failure is its failure; `peeked`: a range
    /// read was tried for this read.
    fn find(
        &self,
        st: &mut State,
        ino: Ino,
        want: Want,
        waited: Option<u64>,
        peeked: bool,
        early: bool,
    ) -> Result<Found> {
        let Want { fh, start, end, .. } = want;
        let version = node(st, ino).map(|n| (n.size, n.board_mtime))?;
        if !st.contents.is_dirty(ino) && st.contents.has(ino) {
            saw(st, ino, fh, version);
        }
        if let Some(d) = st.contents.get(ino) {
            return Ok(Found::Data(range(d, start, end)));
        }
        let n = node(st, ino)?;
        if !n.on_board || n.local_only {
            return Ok(Found::Data(Vec::new()));
        }
        if let Some(l) = st.file.of(ino).load.as_ref() {
            if let Some(e) = &l.error {
                if Some(l.id) == waited {
                    return Err(e.clone());
                }
                // Failed for want of the link a moment ago: the kernel's
                // second try of a failed read-ahead (sendfile, as
                // `webrepl-mount cat` copies) would wait as long again.
                if e.is_no_link() && l.failed_at.is_some_and(|t| t.elapsed() < RETRY_AFTER) {
                    return Err(e.clone());
                }
                // An old failure: this reader tries again.
                st.file.edit(ino, |f| f.load = None);
            } else {
                // What has arrived is not checked until the whole has
                // (a reader that stops midway would never learn it was
                // damaged): meanwhile a big file's range is read by the
                // range program, which checks its own. Unless no check
                // will come (`early`).
                let until = early.then(|| want.end.min(version.0 as usize));
                if let Some(u) = until
                    && l.data.len() >= u
                {
                    return Ok(Found::Data(range(&l.data, want.start, want.end)));
                }
                let wait = Found::Wait(l.id, l.tx.subscribe(), until);
                return Ok(peek(st, ino, want, peeked, true)?.unwrap_or(wait));
            }
        }
        if let Some(found) = peek(st, ino, want, peeked, false)? {
            return Ok(found);
        }
        let (id, rx) = self.start_load(st, ino)?;
        // A reader going on in order started the whole file's download; its
        // own range comes meanwhile as any other reader's does, not after
        // the whole file (`head -c 5000` of 200 KB waited 10 s for it).
        let until = early.then(|| want.end.min(version.0 as usize));
        let wait = Found::Wait(id, rx, until);
        Ok(peek(st, ino, want, peeked, true)?.unwrap_or(wait))
    }

    /// Starts reading a file from the board; a small one brings its small
    /// neighbours along (one program, one round trip, through the REPL: it
    /// does not wait behind a big transfer either).
    fn start_load(
        &self,
        st: &mut State,
        ino: Ino,
    ) -> Result<(u64, watch::Receiver<(usize, bool)>)> {
        // Held whole in memory: a board's 20 GB sparse file (or one that
        // claims 2^40 bytes) grew the daemon until it ran out.
        let size = node(st, ino)?.size;
        if size > super::files::MAX_FILE {
            return Err(Error::Os {
                errno: libc::EFBIG,
                what: format!(
                    "{}: {size} bytes on the board, more than the {} MiB webrepl-mount holds",
                    st.tree.path(ino),
                    super::files::MAX_FILE >> 20
                ),
            });
        }
        let small = |st: &State, i: Ino| {
            st.tree.get(i).is_some_and(|n| {
                n.kind == EntryKind::File
                    && n.on_board
                    && !n.local_only
                    && n.size <= SMALL
                    && !st.contents.has(i)
                    && st.file.of(i).load.is_none()
            })
        };
        let mut batch = vec![ino];
        // A small file alone goes by program too while a transfer holds
        // the binary channel: its GET would wait for the whole of a
        // download (a 1 KB read beside a 200 KB one took 6-8 s).
        let by_program = small(st, ino) && self.board.transferring();
        if small(st, ino) {
            let parent = node(st, ino)?.parent;
            let siblings: Vec<Ino> = st
                .tree
                .get(parent)
                .map(|p| p.children.values().copied().collect())
                .unwrap_or_default();
            let mut bytes = node(st, ino)?.size;
            let most = batch_bytes(self.board.download_rate(), self.board.transferring());
            for i in siblings {
                if batch.len() >= BATCH_FILES || i == ino || !small(st, i) {
                    continue;
                }
                let size = node(st, i)?.size;
                if bytes + size > most {
                    continue;
                }
                bytes += size;
                batch.push(i);
            }
        }
        let mut jobs = Vec::new();
        let mut first = None;
        for &i in &batch {
            let n = node(st, i)?;
            let stat = Stat {
                kind: EntryKind::File,
                size: n.size,
                mtime: n.board_mtime,
            };
            let path = st.tree.path(i);
            st.next_fh += 1;
            let id = st.next_fh;
            let (tx, rx) = watch::channel((0, false));
            st.file.edit(i, |f| {
                f.load = Some(Load {
                    id,
                    data: Vec::with_capacity(stat.size.min(1 << 24) as usize),
                    tx,
                    error: None,
                    failed_at: None,
                    unwanted: watch::channel(false).0,
                })
            });
            if first.is_none() {
                first = Some((id, rx));
            }
            jobs.push(Job {
                ino: i,
                id,
                path,
                stat,
            });
        }
        // The transfer belongs to the file, not to a reader: one that gives
        // up does not end it for the others.
        let (state, board) = (self.state.clone(), self.board.clone());
        if jobs.len() > 1 || by_program {
            tokio::spawn(load_batch(state, board, jobs));
        } else if let Some(job) = jobs.pop() {
            tokio::spawn(load_file(state, board, job));
        }
        first.ok_or_else(|| Error::NotFound(format!("inode {ino}")))
    }

    /// Waits until the whole file is here (a write in its middle needs it).
    pub(super) async fn loaded(&self, ino: Ino) -> Result<()> {
        self.read_range(ino, None, usize::MAX / 2, usize::MAX / 2 + 1)
            .await
            .map(drop)
    }
}

/// The bytes of small files one batch brings, for a link of `rate`
/// bytes/s from the board (None: not measured yet).
fn batch_bytes(rate: Option<f64>, beside: bool) -> u64 {
    let rate = rate.unwrap_or(RATE_UNMEASURED);
    let secs = if beside {
        BATCH_SECS_BESIDE
    } else {
        BATCH_SECS
    };
    // The file asked for goes whatever its size.
    ((rate * secs * BATCH_YIELD) as u64).min(BATCH_BYTES)
}

/// A read of a big file the mount does not hold, by a reader that has not
/// gone on reading it in order: answered from ranges read before, or by
/// reading the range (not the whole file: `head -c 100`, a file manager's
/// peek at a header; `loading`: or any reader, while the whole file is on
/// its way and not yet checked). None: the whole file is read.
fn peek(
    st: &mut State,
    ino: Ino,
    want: Want,
    peeked: bool,
    loading: bool,
) -> Result<Option<Found>> {
    let Want { fh, start, end } = want;
    let Some(fh) = fh else { return Ok(None) };
    let n = node(st, ino)?;
    let version = (n.size, n.board_mtime);
    let size = n.size as usize;
    if n.size <= PEEK_FILE || start >= size || end.min(size) - start > PEEK_MAX {
        return Ok(None);
    }
    if let Some(d) = st.contents.piece(ino, version, start, end) {
        let data = range(d, 0, end - start);
        saw(st, ino, Some(fh), version);
        return Ok(Some(Found::Data(data)));
    }
    let in_order = start > 0 && st.reading.get(&fh) == Some(&start);
    if peeked || in_order && !loading {
        return Ok(None);
    }
    let from = start / PEEK_BLOCK * PEEK_BLOCK;
    // Widened to what the reader must have, not to the kernel's read-ahead:
    // beside a download the range's answer shares the board's side of the
    // link (each KB of it, in base64, about 0.07 s at 20 KB/s and more
    // beside a download).
    // A short read (`head -c 100`) gets what it asked for, not a whole
    // block: each KB less is as much sooner.
    let to = end
        .max(from + 1)
        .div_ceil(PEEK_ALIGN)
        .saturating_mul(PEEK_ALIGN)
        .min(from + PEEK_MAX)
        .min(size);
    Ok(Some(Found::Peek {
        path: st.tree.path(ino),
        version,
        start: from,
        len: to - from,
    }))
}

/// A reader was handed the board's `version` of a file.
fn saw(st: &mut State, ino: Ino, fh: Option<u64>, version: (u64, i64)) {
    st.file.edit(ino, |f| f.seen = Some(version));
    if let Some(fh) = fh {
        st.seen_by.insert(fh, (ino, version));
    }
}

fn range(d: &[u8], start: usize, end: usize) -> Vec<u8> {
    let s = start.min(d.len());
    let e = end.min(d.len());
    d[s..e].to_vec()
}

/// A file to read, and the load it fills.
struct Job {
    ino: Ino,
    id: u64,
    path: String,
    stat: Stat,
}

pub(super) type Shared = Arc<Mutex<State>>;

pub(super) fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The data of the load `id` of `ino`, if it still runs.
pub(super) fn data_of(st: &State, ino: Ino, id: u64) -> Option<&[u8]> {
    st.file
        .of(ino)
        .load
        .as_ref()
        .filter(|l| l.id == id)
        .map(|l| l.data.as_slice())
}

/// One file by GET, handed to its readers once checked.
async fn load_file(state: Shared, board: Board, job: Job) {
    let Job {
        ino,
        id,
        path,
        stat,
    } = job;
    let mut sink = |p: Piece| {
        let mut st = lock(&state);
        if let Some(l) = st.file.load_mut(ino)
            && l.id == id
        {
            match p {
                Piece::Data(d) => l.data.extend_from_slice(&d),
                Piece::Restart => l.data.clear(),
            }
            let len = l.data.len();
            let _ = l.tx.send((len, false));
        }
    };
    let unwanted = lock(&state)
        .file
        .of(ino)
        .load
        .as_ref()
        .filter(|l| l.id == id)
        .map(|l| l.unwanted.subscribe());
    let mut r = Ok(());
    for attempt in 1..=super::verify::TRIES {
        let len = match board
            .get_into_unless(&path, stat, &mut sink, unwanted.clone())
            .await
        {
            Ok(n) => n,
            Err(e) => {
                r = Err(e);
                break;
            }
        };
        let why = match super::verify::check(&state, &board, ino, id, &path, len).await {
            Ok(super::verify::Verdict::Whole) => break,
            Ok(super::verify::Verdict::Damaged(why)) => why,
            Err(e) => {
                r = Err(e);
                break;
            }
        };
        // No reader has had any of it: read again.
        let again = {
            let mut st = lock(&state);
            match st.file.load_mut(ino).filter(|l| l.id == id) {
                Some(l) if attempt < super::verify::TRIES => {
                    l.data.clear();
                    true
                }
                _ => false,
            }
        };
        if let Some(e) = super::verify::damaged(&path, &why, attempt, again) {
            r = Err(e);
            break;
        }
    }
    finish(&state, ino, id, &path, r, None);
}

/// Small files in one program; if the REPL cannot be had now (a person's
/// program holds it), one by one through the binary protocol instead.
async fn load_batch(state: Shared, board: Board, jobs: Vec<Job>) {
    let paths: Vec<&str> = jobs.iter().map(|j| j.path.as_str()).collect();
    match board.impatient().read_many(&paths).await {
        Ok(files) if files.len() == jobs.len() => {
            debug!("read {} small files in one program", jobs.len());
            for (job, r) in jobs.iter().zip(files) {
                match r {
                    Ok(data) => finish(&state, job.ino, job.id, &job.path, Ok(()), Some(data)),
                    Err(e) => finish(&state, job.ino, job.id, &job.path, Err(e), None),
                }
            }
        }
        Err(e) if e.is_no_link() => {
            for job in &jobs {
                finish(&state, job.ino, job.id, &job.path, Err(e.clone()), None);
            }
        }
        other => {
            if let Err(e) = other {
                debug!("small files one by one ({e})");
            }
            for job in jobs {
                load_file(state.clone(), board.clone(), job).await;
            }
        }
    }
}

/// A load's end: the contents into the cache (unless the file was
/// rewritten meanwhile), or the error for those who wait.
fn finish(state: &Shared, ino: Ino, id: u64, path: &str, r: Result<()>, whole: Option<Vec<u8>>) {
    let mut st = lock(state);
    let Some(l) = st.file.load_mut(ino).filter(|l| l.id == id) else {
        return;
    };
    if let Some(d) = whole {
        l.data = d;
    }
    match r {
        Ok(()) => {
            let Some(l) = st.file.edit(ino, |f| f.load.take()) else {
                return;
            };
            let len = l.data.len();
            if !st.contents.is_dirty(ino) {
                if let Some(n) = st.tree.get_mut(ino) {
                    n.size = len as u64;
                }
                st.contents.insert_clean(ino, l.data);
            }
            let _ = l.tx.send((len, true));
        }
        Err(e) => {
            debug!("reading {path}: {e}");
            l.error = Some(e);
            l.failed_at = Some(Instant::now());
            let len = l.data.len();
            let _ = l.tx.send((len, true));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_of_small_files_is_what_the_link_moves_in_a_fifth_of_a_second() {
        // Its answer (base64) on the wire, in seconds.
        let secs = |bytes: u64, rate: f64| bytes as f64 / BATCH_YIELD / rate;
        for rate in [12_000.0, 20_000.0, 50_000.0] {
            let b = batch_bytes(Some(rate), false);
            assert!(secs(b, rate) <= BATCH_SECS + 0.01, "{rate}: {b}");
            assert!(secs(b, rate) >= BATCH_SECS / 2.0, "{rate}: {b}");
            // Beside a transfer, a tenth.
            let b = batch_bytes(Some(rate), true);
            assert!(secs(b, rate) <= BATCH_SECS_BESIDE + 0.01, "{rate}: {b}");
        }
        assert!(secs(batch_bytes(None, false), 20_000.0) <= BATCH_SECS + 0.01);
        // A fast link takes the largest batch a program prints.
        assert_eq!(batch_bytes(Some(10e6), false), BATCH_BYTES);
        assert_eq!(batch_bytes(Some(f64::MAX), false), BATCH_BYTES);
    }
}
