//! Bundles: the small files of a copy go up together, as one zlib stream
//! in one upload, and land in one call of `b` (helpers.py, on flash). Sent one
//! by one, each cost a PUT header (82 bytes), a part name and its numbers
//! in a program that crosses the raw-paste window 128 bytes a round trip,
//! and a cold deflate window: a tree of 67 small files in 74 directories
//! took 0.75 × bytes ÷ bandwidth on an ESP32's link.
//!
//! Only for copies that check no base (`Base::Any`): `b` renames each file
//! onto its target as soon as it is checked, as a finishing program would.
//! A bundle the board got short (a lost byte: see PROTOCOL.md, PUT) has
//! its short slices sent again, once; a file that still did not land goes
//! raw, as any upload.

use super::pack::{Packed, compress, pays};
use super::upload::Sending;
use super::*;
use bytes::Bytes;
use tokio::sync::watch;

/// Files up to this size go in bundles; bigger ones pay their own way.
const FILE_MAX: usize = 16 * 1024;
/// What one bundle holds at most: its files' bytes, and files (the
/// header is read whole into the board's heap).
const BYTES_MAX: usize = 64 * 1024;
const FILES_MAX: usize = 32;
/// A bundle goes up in slices of this size at most: a lost byte costs one.
const SLICE: usize = 4096;
/// Sends of a bundle that gained nothing ([`Sending::tries`]) before its
/// files go raw.
const TRIES: u32 = 2;

/// How streams are made for this board: the window's bits, the link's
/// rate (if measured) and how fast the board inflates.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deflating {
    pub wbits: u8,
    pub link: Option<f64>,
    pub inflate: f64,
}

/// One bundle: which files (indices into the uploads), and its bytes.
struct Bundle {
    files: Vec<usize>,
    data: Bytes,
}

/// The bytes of a bundle of `files`: the header's length on a line, the
/// header (per file: target, `size CRC`), the files compressed end to end.
fn encode(ups: &[Upload], files: &[usize], wbits: u8) -> Vec<u8> {
    let mut header = String::new();
    let mut all = Vec::new();
    for &i in files {
        let u = &ups[i];
        header.push_str(&format!(
            "{}\0{} {}\0",
            u.path,
            u.data.len(),
            crc32fast::hash(&u.data)
        ));
        all.extend_from_slice(&u.data);
    }
    let mut out = format!("{}\n{header}", header.len()).into_bytes();
    out.extend_from_slice(&compress(&all, wbits));
    out
}

/// Splits the candidates into bundles of at most `BYTES_MAX` and
/// `FILES_MAX`; a bundle of one file is none.
fn group(ups: &[Upload], candidates: &[usize]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut held = 0;
    for &i in candidates {
        let n = ups[i].data.len();
        match out.last_mut() {
            Some(b) if b.len() < FILES_MAX && held + n <= BYTES_MAX => {
                b.push(i);
                held += n;
            }
            _ => {
                out.push(vec![i]);
                held = n;
            }
        }
    }
    out.retain(|b| b.len() > 1);
    out
}

/// The part a file of a bundle is inflated into: beside its target.
fn part_of(bundle_part: &str, target: &str, k: usize) -> String {
    let id = bundle_part
        .rsplit('/')
        .next()
        .and_then(|n| n.strip_prefix(PART_PREFIX))
        .unwrap_or("");
    join(parent(target), &format!("{PART_PREFIX}{id}z{k}"))
}

/// The bundle's progress (bytes of its stream the board took), told to
/// its files in order, scaled to their sizes.
fn fan_out(ups: &[Upload], files: &[usize], packed: usize) -> Option<watch::Sender<u64>> {
    let senders: Vec<(watch::Sender<u64>, u64)> = files
        .iter()
        .filter_map(|&i| Some((ups[i].progress.clone()?, ups[i].data.len() as u64)))
        .collect();
    if senders.is_empty() {
        return None;
    }
    let raw: u64 = senders.iter().map(|(_, n)| n).sum();
    let (tx, mut rx) = watch::channel(0u64);
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let mut left = (*rx.borrow()).saturating_mul(raw) / packed.max(1) as u64;
            for (s, n) in &senders {
                let mine = left.min(*n);
                s.send_if_modified(|v| {
                    let more = mine > *v;
                    *v = (*v).max(mine);
                    more
                });
                left -= mine;
            }
        }
    });
    Some(tx)
}

/// The answers of a program of `b` calls, one list of lines per call
/// (each ended by an empty line).
fn answers(out: &[u8]) -> Vec<Vec<&str>> {
    let mut all = vec![Vec::new()];
    for l in out.split(|&c| c == b'\n') {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        match std::str::from_utf8(l) {
            Ok("") => all.push(Vec::new()),
            Ok(l) => all.last_mut().into_iter().for_each(|a| a.push(l)),
            Err(_) => {}
        }
    }
    all
}

impl Board {
    /// Sends the small files of `ups` that copy onto no base (but those
    /// `skip` names) in bundles, and lands them. Each file it took is
    /// marked in `skip`; those that landed get `Packed::Landed` in `ready`.
    /// Returns the bytes inflated and the board's milliseconds for them.
    pub(super) async fn send_bundled(
        &self,
        ups: &[Upload],
        skip: &mut [bool],
        ready: &mut [Option<Packed>],
        how: Deflating,
        slice: usize,
    ) -> (u64, u64) {
        let Deflating {
            wbits,
            link,
            inflate,
        } = how;
        let candidates: Vec<usize> = (0..ups.len())
            .filter(|&i| {
                !skip[i] && matches!(ups[i].base, Base::Any) && ups[i].data.len() <= FILE_MAX
            })
            .collect();
        let mut bundles = Vec::new();
        for files in group(ups, &candidates) {
            let raw: usize = files.iter().map(|&i| ups[i].data.len()).sum();
            let data = encode(ups, &files, wbits);
            if !pays(raw, data.len(), link, inflate) {
                continue;
            }
            for &i in &files {
                skip[i] = true;
            }
            bundles.push(Bundle {
                files,
                data: Bytes::from(data),
            });
        }
        if bundles.is_empty() {
            return (0, 0);
        }
        let (raw, sent): (usize, usize) = bundles.iter().fold((0, 0), |(r, s), b| {
            let raw: usize = b.files.iter().map(|&i| ups[i].data.len()).sum();
            (r + raw, s + b.data.len())
        });
        info!(
            "{} file(s) in {} bundle(s): {raw} bytes sent as {sent} ({:.2}×, a {} B window), landed on the board",
            bundles.iter().map(|b| b.files.len()).sum::<usize>(),
            bundles.len(),
            raw as f64 / sent.max(1) as f64,
            1u32 << wbits
        );
        let slice = slice.min(SLICE);
        let uploads: Vec<Upload> = bundles
            .iter()
            .map(|b| {
                let first = &ups[b.files[0]];
                let mut u = Upload::new(&first.path, b.data.clone(), Base::Any);
                u.progress = fan_out(ups, &b.files, b.data.len());
                u
            })
            .collect();
        let (mut bytes, mut ms) = (0u64, 0u64);
        let mut todo: Vec<Sending> = uploads
            .iter()
            .enumerate()
            .map(|(k, u)| Sending::whole(k, self.part_for(&u.path), u.data.len(), slice))
            .collect();
        for attempt in 1.. {
            let results = self.send_parts(&uploads, &todo).await;
            let forget = |job: &Sending| {
                self.stale_all(job, &uploads);
                for (k, &i) in bundles[job.i].files.iter().enumerate() {
                    self.stale_mark(&part_of(&job.part, &ups[i].path, k), true);
                }
            };
            let mut landing = Vec::new();
            for (job, r) in todo.iter().zip(results) {
                match r {
                    Ok(()) => landing.push(job),
                    Err(e) => {
                        debug!("a bundle did not go ({e}); its files go raw");
                        forget(job);
                    }
                }
            }
            if landing.is_empty() {
                break;
            }
            // All of them landed by one program, each call's answer
            // ended by an empty line: a program each cost a round trip
            // each.
            let calls: Vec<String> = landing
                .iter()
                .map(|job| {
                    let b = &bundles[job.i];
                    sn::helper_call(
                        "b",
                        &[
                            job.part.clone(),
                            format!(
                                "{} {} {} {} {wbits}",
                                b.data.len(),
                                job.pieces(),
                                job.slice,
                                crc32fast::hash(&b.data)
                            ),
                        ],
                    )
                })
                .collect();
            let out = match self.helper(calls.join("print()\n")).await {
                Ok(out) => out,
                Err(e) => {
                    info!(
                        "landing {} bundle(s) failed ({e}); their files go raw",
                        landing.len()
                    );
                    landing.into_iter().for_each(forget);
                    break;
                }
            };
            let answers = answers(&out);
            let mut again = Vec::new();
            for (n, job) in landing.into_iter().enumerate() {
                let b = &bundles[job.i];
                let lines: &[&str] = answers.get(n).map(Vec::as_slice).unwrap_or_default();
                if let Some(Answer::Slices { short, free }) =
                    lines.first().map(|l| Answer::parse(l))
                {
                    let enough = free >= (short.len() * job.slice) as u64;
                    let mend = job.mend(short.clone());
                    if mend.tries <= TRIES && enough {
                        info!(
                            "a bundle of {} file(s): the board kept slices {short:?} short (attempt {attempt}); sending those again",
                            b.files.len()
                        );
                        again.push(mend);
                    } else {
                        debug!("a bundle's slices {short:?} came short again; its files go raw");
                        forget(job);
                    }
                    continue;
                }
                for (k, &i) in b.files.iter().enumerate() {
                    match lines.get(k).map(|l| Answer::parse(l)) {
                        Some(Answer::Landed { mtime, ms: t }) => {
                            bytes += ups[i].data.len() as u64;
                            ms += t.max(0) as u64;
                            ready[i] = Some(Packed::Landed(mtime));
                        }
                        a => {
                            debug!(
                                "{}: not landed from its bundle ({a:?}); raw",
                                shown(&ups[i].path)
                            );
                            self.stale_mark(&part_of(&job.part, &ups[i].path, k), true);
                        }
                    }
                }
            }
            if again.is_empty() {
                break;
            }
            todo = again;
        }
        (bytes, ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_holds_its_header_then_the_files_compressed_end_to_end() {
        let ups = vec![
            Upload::new("/a/x.py", &b"print(1)\n"[..], Base::Any),
            Upload::new("/b.py", &b""[..], Base::Any),
        ];
        let data = encode(&ups, &[0, 1], 10);
        let nl = data.iter().position(|&c| c == b'\n').unwrap();
        let n: usize = std::str::from_utf8(&data[..nl]).unwrap().parse().unwrap();
        let header = std::str::from_utf8(&data[nl + 1..nl + 1 + n]).unwrap();
        let crc = crc32fast::hash(b"print(1)\n");
        assert_eq!(header, format!("/a/x.py\x009 {crc}\x00/b.py\x000 0\x00"));
        let mut z = flate2::read::ZlibDecoder::new(&data[nl + 1 + n..]);
        let mut all = Vec::new();
        std::io::Read::read_to_end(&mut z, &mut all).unwrap();
        assert_eq!(all, b"print(1)\n");
    }

    #[test]
    fn bundles_are_bounded_and_never_of_one_file() {
        let ups: Vec<Upload> = (0..70)
            .map(|k| Upload::new(&format!("/f{k}"), vec![b'x'; 3000], Base::Any))
            .collect();
        let all: Vec<usize> = (0..70).collect();
        let groups = group(&ups, &all);
        assert!(groups.iter().all(|g| g.len() > 1 && g.len() <= FILES_MAX));
        assert!(groups.iter().all(|g| g.len() * 3000 <= BYTES_MAX));
        assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), 70);
        assert_eq!(part_of("/a/.wrm-00002a", "/b/c.py", 3), "/b/.wrm-00002az3");
    }
}
