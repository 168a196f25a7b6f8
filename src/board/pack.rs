//! Compressed uploads: the link is the limit, and Python source shrinks
//! 2.7× with a 1 KB deflate window, which every current port inflates
//! (`deflate.DeflateIO`; `zlib`/`uzlib.DecompIO` before 1.21).
//!
//! A file that compresses goes to a part file of its own as a zlib stream
//! (sliced like any upload); `_wrm.z` inflates it into a second part file
//! and checks size and CRC-32 of what came out; then that part file is
//! finished (checked again, renamed) like a raw upload. Nothing touches the
//! target before that rename, so a failure anywhere leaves the old file;
//! a file whose inflating failed is sent raw.

use super::upload::Sending;
use super::*;
use bytes::Bytes;
use tokio::sync::watch;

/// Window bits of the streams sent to a board with little heap: 1 KB of
/// window, inflated in about 2^10 + 1.3 KB of the board's heap.
pub const WBITS: u8 = 10;
/// The largest window sent: 100 KB of Python source goes as 0.35 of its
/// size at 10 bits, 0.32 at 11, 0.29 at 12 (0.26 at 15, not worth 32 KB
/// of an ESP32's heap).
const WBITS_MAX: u8 = 12;
/// Free heap a board needs beyond the window to be sent streams.
const HEAP_MARGIN: u64 = 4096;
/// What a board inflates (and writes to flash) per second, until one has
/// been timed: about an ESP32's.
const INFLATE_FIRST: f64 = 100_000.0;
/// A stream must save this many bytes, and a tenth of the file at least.
const MIN_SAVED: usize = 64;
/// Files inflated by one program.
const INFLATE_BATCH: usize = 16;
/// While a person types, a file goes compressed only if the board
/// inflates it in this long (its keys wait meanwhile).
const INFLATE_TYPING: f64 = 0.3;
/// Sends of a stream that gained nothing ([`Sending::tries`]) before its
/// file is sent raw.
const PACK_TRIES: u32 = 3;
/// Larger files go raw: compressing them would hold up the daemon, and
/// none that size is source.
const PACK_MAX: usize = 8 << 20;

/// What the board inflates with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Inflater {
    /// 2: `deflate`, 1: `zlib`/`uzlib`, 0: nothing.
    kind: u8,
    free: u64,
}

/// A compressed upload that went: its part file, checked, to be finished
/// as any upload; or already on its target (a copy that checks no base),
/// with the board's mtime; or finished with its inflating.
#[derive(Debug, Clone)]
pub(super) enum Packed {
    Part(String),
    Landed(i64),
    /// Inflated and finished by one program (a file alone): where it went.
    Written(Written),
}

/// Per board: what the probe of the current connection found, and how
/// fast the board has inflated.
#[derive(Debug, Default)]
pub(super) struct Packing {
    /// The connection probed (the session's reconnect count), and its answer.
    probe: Option<(u64, Inflater)>,
    /// Bytes per second, as last timed by the board.
    rate: Option<f64>,
}

/// `data` as a zlib stream whose window is `2^wbits` bytes (9 to 15).
pub fn compress(data: &[u8], wbits: u8) -> Vec<u8> {
    use flate2::{Compress, Compression, write::ZlibEncoder};
    use std::io::Write;
    let how = Compress::new_with_window_bits(Compression::best(), true, wbits.clamp(9, 15));
    let mut e = ZlibEncoder::new_with_compress(Vec::with_capacity(data.len() / 2), how);
    // Writing into a Vec does not fail; an empty stream is never sent.
    if e.write_all(data).is_err() {
        return Vec::new();
    }
    e.finish().unwrap_or_default()
}

/// Whether the start of `data` shrinks enough at the largest window to be
/// worth a stream: noise, images and archives do not, and for them the
/// board is not asked what it can inflate (a program of 413 bytes, 59 ms
/// of every `cp` of one at 20 KB/s).
pub fn compressible(data: &[u8]) -> bool {
    const SAMPLE: usize = 32 << 10;
    let sample = &data[..data.len().min(SAMPLE)];
    let packed = compress(sample, WBITS_MAX);
    !packed.is_empty() && packed.len() * 10 <= sample.len() * 9
}

/// Window bits for a board with `free` bytes of heap: the window takes at
/// most an eighth of what is free beyond the margin (the heap of a board
/// running a program is fragmented), and 2^10 at least.
pub fn wbits_for(free: u64) -> u8 {
    (WBITS..=WBITS_MAX)
        .rev()
        .find(|&w| (1u64 << w) * 8 + HEAP_MARGIN <= free)
        .unwrap_or(WBITS)
}

/// Whether `n` bytes go faster as `packed` bytes inflated on the board:
/// the link at `link` bytes/s (unknown: slow enough), the board inflating
/// at `inflate`.
pub fn pays(n: usize, packed: usize, link: Option<f64>, inflate: f64) -> bool {
    if packed == 0 || packed + MIN_SAVED > n || packed * 10 > n * 9 {
        return false;
    }
    match link {
        Some(rate) if rate > 0.0 => {
            let (n, packed) = (n as f64, packed as f64);
            packed / rate + n / inflate.max(1.0) < n / rate
        }
        _ => true,
    }
}

impl Board {
    /// What the board inflates with, probed once per connection.
    async fn inflater(&self) -> Option<Inflater> {
        let link = self.session.status().await.ok()?.totals.reconnects;
        if let Some((l, i)) = self.packing().probe
            && l == link
        {
            return Some(i);
        }
        // A person's program holds the REPL: no waiting for it, the data
        // goes raw now (the binary channel is free of it), not compressed
        // after the program's end (80 KB landed 3.2 s after it).
        let how = Run {
            patience: Some(Duration::ZERO),
            ..Run::QUERY
        };
        // Once the helpers are defined, a short call of them (the
        // program took three raw-paste windows, a round trip each).
        let out = if self.helpers_seen.load(std::sync::atomic::Ordering::SeqCst) {
            self.with_helpers(sn::helper_call::<&str>("inf", &[]), how)
                .await
        } else {
            self.run_ours(sn::inflater(), how).await.and_then(answer)
        };
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                debug!("uploads go raw: no answer about inflating ({e})");
                return None;
            }
        };
        let found = sn::lines(&out).find_map(|l| match Answer::parse(l) {
            Answer::Inflater { kind, free } => Some(Inflater { kind, free }),
            _ => None,
        })?;
        debug!("the board inflates with {found:?}");
        self.packing().probe = Some((link, found));
        Some(found)
    }

    fn packing(&self) -> std::sync::MutexGuard<'_, Packing> {
        self.packing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends the files of `ups` (but those `skip` names) that compress
    /// well enough to pay, and inflates them on the board: for each, the
    /// part file that now holds it, checked, to be finished; None: send it
    /// raw.
    pub(super) async fn send_packed(
        &self,
        ups: &[Upload],
        skip: &[bool],
        slice: usize,
    ) -> Vec<Option<Packed>> {
        let mut ready = vec![None; ups.len()];
        let worth = |u: &Upload| (MIN_SAVED * 2..=PACK_MAX).contains(&u.data.len());
        // Small files of a copy go in bundles, worth it or not alone.
        let bundled = |u: &Upload| matches!(u.base, Base::Any);
        // Nothing to ask the board about (a program of 413 bytes, four
        // round trips of the raw-paste window) unless a file could go
        // compressed: one worth it alone, or two that make a bundle.
        let left = ups.iter().zip(skip).filter(|(_, s)| !**s);
        let alone = left.clone().any(|(u, _)| worth(u) && compressible(&u.data));
        if !self.compress || !alone && left.filter(|(u, _)| bundled(u)).count() < 2 {
            return ready;
        }
        let Some(inf) = self.inflater().await else {
            return ready;
        };
        if inf.kind == 0 || inf.free < (1 << WBITS) + HEAP_MARGIN {
            info!(
                "uploads sent raw: the board cannot inflate ({} bytes of heap free{})",
                inf.free,
                if inf.kind == 0 {
                    ", no deflate or zlib module"
                } else {
                    ""
                }
            );
            return ready;
        }
        let wbits = wbits_for(inf.free);
        // The end-to-end pace too: a first PUT (the helpers') that the
        // link's buffers took at once read a 20 KB/s link as 75 KB/s and
        // over, and 250 KB of source went raw (12.5 s where 3.5 s do).
        let status = self.session.status().await.ok();
        let link = status.as_ref().and_then(|s| s.upload_rate);
        let inflate = self.packing().rate.unwrap_or(INFLATE_FIRST);
        let typing = status.is_some_and(|s| s.typing);
        let mut skip = skip.to_vec();
        let (mut bytes, mut ms) = self
            .send_bundled(
                ups,
                &mut skip,
                &mut ready,
                super::bundle::Deflating {
                    wbits,
                    link,
                    inflate,
                },
                slice,
            )
            .await;
        // Files still to go on their own (not bundled, not unchanged).
        let alone = skip.iter().filter(|s| !**s).count();
        let (mut which, mut zups) = (Vec::new(), Vec::new());
        let (mut raw_bytes, mut all_bytes) = (0, 0);
        for (i, u) in ups.iter().enumerate() {
            if skip[i] || !worth(u) {
                continue;
            }
            // Inflated by one program, which holds the REPL: a person's
            // keys would wait for it (1.3 s near the end of a 240 KB
            // stream; an ESP32 inflates about 100 KB/s). Raw, it goes in
            // slices that their keys pass between.
            let holds = u.data.len() as f64 / inflate.max(1.0);
            if typing && holds > INFLATE_TYPING {
                debug!(
                    "{}: sent raw: a person types, and inflating it would hold the REPL {holds:.1} s",
                    shown(&u.path)
                );
                continue;
            }
            let packed = compress(&u.data, wbits);
            if !pays(u.data.len(), packed.len(), link, inflate) {
                debug!(
                    "{}: sent raw ({} bytes would be {})",
                    shown(&u.path),
                    u.data.len(),
                    packed.len()
                );
                continue;
            }
            raw_bytes += u.data.len();
            all_bytes += packed.len();
            which.push(i);
            zups.push(Upload {
                path: u.path.clone(),
                base: Base::Any,
                progress: scaled(&u.progress, u.data.len(), packed.len()),
                data: Bytes::from(packed),
                was: None,
                was_at: None,
                sums: None,
            });
        }
        if zups.is_empty() {
            if bytes == 0 {
                info!("uploads sent raw: compressing would not pay");
            }
            return self.timed(ready, bytes, ms);
        }
        info!(
            "{} of {} file(s) compressed: {raw_bytes} bytes sent as {all_bytes} ({:.2}×, a {} B window), inflated on the board",
            zups.len(),
            alone,
            raw_bytes as f64 / all_bytes.max(1) as f64,
            1u32 << wbits
        );

        // Streams still to go. One the board got short (a byte lost on
        // the way: see PROTOCOL.md, PUT) goes again, compressed, while
        // that gains: sent raw it would cost three times the bytes. Only its
        // short slices go again: the rest are on the board's flash,
        // checked (a mend could lose a byte too: one in the suite did).
        let whole =
            |k: usize| Sending::whole(k, self.part_for(&zups[k].path), zups[k].data.len(), slice);
        let mut pending: Vec<Sending> = (0..zups.len()).map(whole).collect();
        for attempt in 1.. {
            let jobs = std::mem::take(&mut pending);
            // A stream alone in one PUT (a mount's close, `cp` of one
            // file): the program that inflates it goes right behind the
            // PUT's last byte (it checks the stream's size and CRC first),
            // and finishes it too (checks the target's base, renames): one
            // program, no round trip of its own.
            let alone = match jobs.as_slice() {
                [job] => self.begin_alone(&zups, job),
                _ => None,
            };
            let mut calls = Vec::new();
            let mut of = Vec::new();
            // The finishing answer of the one file, from the same program.
            let mut went: Option<String> = None;
            let mut out = Vec::new();
            if let (Some((ticket, put)), [job]) = (alone, jobs.as_slice()) {
                let i = which[job.i];
                let part = self.part_for(&ups[i].path);
                let call = inflating(&ups[i], &zups[job.i].data, job, &part, wbits);
                let up = &ups[i];
                let finishing = call.target.is_none().then(|| {
                    sn::Finishing::new(&part, &up.path, &up.data, up.base, 0, up.data.len().max(1))
                });
                let mut code = sn::inflate_uploads(std::slice::from_ref(&call));
                if let Some(f) = &finishing {
                    code.push_str(&sn::finish_uploads(std::slice::from_ref(f)));
                }
                let (sent, ran) = tokio::join!(put, self.helper_after(code, ticket));
                if let Err(e) = sent {
                    // The program found the stream short or missing, and
                    // left the target as it was.
                    self.stale_all(job, &zups);
                    self.stale_mark(&part, true);
                    debug!("{}: the stream did not go ({e}); raw", shown(&up.path));
                    break;
                }
                match (ran, &finishing) {
                    (Ok(o), _) => {
                        let mut lines = sn::lines(&o);
                        if let Some(z) = lines.next() {
                            out.extend_from_slice(z.as_bytes());
                            out.push(b'\n');
                        }
                        went = lines.next().map(str::to_string);
                    }
                    (Err(e @ (Error::LinkLost(_) | Error::LowMemory { .. })), Some(f)) => {
                        // Whether it inflated and renamed is found out as
                        // after a finishing program's lost answer.
                        debug!("{e} while inflating an upload; checking");
                        let done = Sending::ready(i, part.clone(), up.data.len());
                        let found = self
                            .finished_unseen(
                                ups,
                                &[0],
                                std::slice::from_ref(&done),
                                std::slice::from_ref(f),
                            )
                            .await;
                        // Landed: as if answered. Else the stream and the
                        // part are left for the cleanup, and the file goes
                        // raw.
                        if let Some(l) = found.ok().as_deref().and_then(|o| sn::lines(o).next())
                            && matches!(Answer::parse(l), Answer::Done(_) | Answer::Beside { .. })
                        {
                            out.extend_from_slice(b"K 0\n");
                            went = Some(l.to_string());
                        }
                    }
                    (Err(e), _) => {
                        info!("inflating uploads on the board failed ({e}); sending them raw")
                    }
                }
                calls.push(call);
                of.push((i, job, part));
            } else {
                let sent = self.send_parts(&zups, &jobs).await;
                for (job, r) in jobs.iter().zip(sent) {
                    let i = which[job.i];
                    // Marked stale only once they failed: another upload's
                    // cleanup runs while this one inflates, and must not
                    // remove its files.
                    if let Err(e) = r {
                        self.stale_all(job, &zups);
                        debug!("{}: the stream did not go ({e}); raw", shown(&ups[i].path));
                        continue;
                    }
                    let part = self.part_for(&ups[i].path);
                    calls.push(inflating(&ups[i], &zups[job.i].data, job, &part, wbits));
                    of.push((i, job, part));
                }
                if calls.is_empty() {
                    break;
                }
                // A few files per program: its argument literal is compiled in
                // the board's heap.
                for chunk in calls.chunks(INFLATE_BATCH) {
                    match self.helper(sn::inflate_uploads(chunk)).await {
                        Ok(o) => out.extend_from_slice(&o),
                        Err(e) => {
                            info!("inflating uploads on the board failed ({e}); sending them raw");
                            break;
                        }
                    }
                }
            }
            let lines: Vec<&str> = sn::lines(&out).collect();
            let mut again = Vec::new();
            let files: Vec<usize> = of.iter().map(|(i, _, _)| *i).collect();
            for (k, (i, job, part)) in of.into_iter().enumerate() {
                let line = lines.get(k).copied().unwrap_or("");
                let mend = match Answer::parse(line) {
                    Answer::Slices { short, .. } => Some(job.mend(short)),
                    _ => None,
                };
                let mended = mend.as_ref().is_some_and(|m| m.tries <= PACK_TRIES);
                if mended {
                    // Its stream's slices stay for the mend.
                    self.stale_mark(&part, true);
                } else if !matches!(Answer::parse(line), Answer::Done(_) | Answer::Landed { .. }) {
                    // Whatever the inflate left is for the next cleanup.
                    self.stale_all(job, &zups);
                    self.stale_mark(&part, true);
                }
                match Answer::parse(line) {
                    Answer::Done(t) => {
                        bytes += ups[i].data.len() as u64;
                        ms += t.max(0) as u64;
                        ready[i] = Some(Packed::Part(part));
                    }
                    Answer::Landed { mtime, ms: t } => {
                        bytes += ups[i].data.len() as u64;
                        ms += t.max(0) as u64;
                        ready[i] = Some(Packed::Landed(mtime));
                    }
                    Answer::Os { errno: 12, .. } => {
                        // The free heap is in pieces (a person's program,
                        // our own earlier work): a window of half the size
                        // from now on, raw below the smallest. Said once a
                        // batch.
                        let smaller =
                            (wbits > WBITS).then(|| (1u64 << (wbits - 1)) * 8 + HEAP_MARGIN);
                        if let Some((_, inf)) = &mut self.packing().probe
                            && inf.free > smaller.unwrap_or(0)
                        {
                            inf.free = smaller.unwrap_or(0);
                            match smaller {
                                Some(_) => info!(
                                    "the board ran out of memory inflating with a {} B window; {} B from now on",
                                    1u32 << wbits,
                                    1u32 << (wbits - 1)
                                ),
                                None => warn!(
                                    "the board ran out of memory inflating; raw uploads on this connection"
                                ),
                            }
                        }
                    }
                    // Its batch failed, which was said once.
                    _ if line.is_empty() => {
                        debug!("{}: not inflated; sending it raw", shown(&ups[i].path))
                    }
                    Answer::Os { errno: 5, .. } if job.tries < PACK_TRIES => {
                        info!(
                            "{}: the board got its stream short or garbled (attempt {attempt}); sending it again",
                            shown(&ups[i].path)
                        );
                        again.push(job.again(self.part_for(&zups[job.i].path), slice));
                    }
                    Answer::Slices { short, .. } if mended => {
                        info!(
                            "{}: the board kept slices {short:?} of its stream short (attempt {attempt}); sending those again",
                            shown(&ups[i].path)
                        );
                        again.extend(mend);
                    }
                    a => info!(
                        "{}: inflating on the board failed ({a:?}); sending it raw",
                        shown(&ups[i].path)
                    ),
                }
            }
            if let (Some(go), [i]) = (went, files.as_slice()) {
                let (i, up) = (*i, &ups[*i]);
                if let Some(Packed::Part(part)) = &ready[i] {
                    let part = part.clone();
                    ready[i] = match Answer::parse(&go) {
                        Answer::Done(mtime) => Some(Packed::Written(Written::Target(mtime))),
                        Answer::Beside {
                            mtime,
                            size,
                            target_mtime,
                        } => Some(Packed::Written(Written::Beside {
                            name: super::upload::conflict_name(&up.path),
                            mtime,
                            target: (size, target_mtime),
                        })),
                        // Short, garbled, an error: sent raw, which says
                        // why if it fails again.
                        a => {
                            debug!("{}: finishing it failed ({a:?}); raw", shown(&up.path));
                            self.stale_mark(&part, true);
                            None
                        }
                    };
                }
            }
            if again.is_empty() {
                break;
            }
            pending = again;
        }
        self.timed(ready, bytes, ms)
    }

    /// Keeps how fast the board inflated `bytes` (in `ms` of its clock).
    fn timed(&self, ready: Vec<Option<Packed>>, bytes: u64, ms: u64) -> Vec<Option<Packed>> {
        if bytes > 0 {
            // A board's clock ticks in ms: a fast one takes 0.
            let rate = bytes as f64 / (ms.max(1) as f64 / 1000.0);
            debug!("the board inflated {bytes} bytes at {rate:.0} B/s");
            self.packing().rate = Some(rate);
        }
        ready
    }
}

/// The inflating of `up`, sent as the stream `z` by `job`, into `part`:
/// onto its target at once for a copy that checks no base.
fn inflating(up: &Upload, z: &[u8], job: &Sending, part: &str, wbits: u8) -> sn::Inflating {
    sn::Inflating {
        packed: job.part.clone(),
        packed_size: z.len() as u64,
        pieces: job.pieces(),
        slice: job.slice as u64,
        packed_crc: crc32fast::hash(z),
        part: part.to_string(),
        size: up.data.len() as u64,
        crc: crc32fast::hash(&up.data),
        wbits,
        target: matches!(up.base, Base::Any).then(|| up.path.clone()),
    }
}

/// A progress of the stream's bytes, told to `whole` as the file's.
fn scaled(
    whole: &Option<watch::Sender<u64>>,
    n: usize,
    packed: usize,
) -> Option<watch::Sender<u64>> {
    let whole = whole.clone()?;
    let (tx, mut rx) = watch::channel(0u64);
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let done = *rx.borrow();
            let _ = whole.send(done.saturating_mul(n as u64) / packed.max(1) as u64);
        }
    });
    Some(tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_pays_on_a_slow_link_and_noise_never() {
        let src = "def f(x):\n    return x + 1\n".repeat(200);
        let z = compress(src.as_bytes(), WBITS);
        assert!(z.len() * 3 < src.len());
        assert!(pays(src.len(), z.len(), Some(20_000.0), INFLATE_FIRST));
        assert!(pays(src.len(), z.len(), None, INFLATE_FIRST));
        // A fast link to a slow inflater: raw.
        assert!(!pays(src.len(), z.len(), Some(2_000_000.0), INFLATE_FIRST));
        let mut x = 88172645463325252u64;
        let noise: Vec<u8> = (0..5000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let z = compress(&noise, WBITS);
        assert!(!pays(noise.len(), z.len(), None, INFLATE_FIRST));
        // Told apart before the board is asked anything.
        assert!(compressible(src.as_bytes()));
        assert!(!compressible(&noise));
    }

    #[test]
    fn the_window_grows_with_the_free_heap() {
        assert_eq!(wbits_for((1 << WBITS) + HEAP_MARGIN), WBITS);
        assert_eq!(wbits_for(21_000), 11);
        assert_eq!(wbits_for(36 << 10), WBITS_MAX);
        assert_eq!(wbits_for(1 << 30), WBITS_MAX);
    }
}
