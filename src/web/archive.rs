//! A folder (or files ticked in the panel) as one zip download, streamed:
//! each file is read from the board, then sent, so the page's server holds
//! one file at a time, never the archive.

use super::files::{Entry, Files, hidden};
use crate::error::{Error, Result};
use bytes::Bytes;
use std::io::Write;
use std::sync::{Arc, Mutex};
use zip::write::SimpleFileOptions;

/// At most this many files and bytes in one archive: a board holds a few
/// MB; more than this is a request to refuse, not to stream for an hour.
pub const MAX_FILES: usize = 4096;
pub const MAX_BYTES: u64 = 64 << 20;

/// One archive entry: the board's path, and its name in the zip.
pub struct Planned {
    pub board: String,
    pub name: String,
    pub dir: bool,
}

/// What `paths` (files and folders) put in the archive, named from the
/// folder each was ticked in: /lib ticked gives lib/, lib/a.py, ...
pub fn plan(tree: &[Entry], paths: &[String]) -> Result<Vec<Planned>> {
    let mut out: Vec<Planned> = Vec::new();
    let mut bytes = 0u64;
    for p in paths {
        let p = crate::board::normalize(p)?;
        let parent = p[..p.rfind('/').unwrap_or(0)].len() + 1;
        let Some(top) = tree.iter().find(|e| e.path == p) else {
            return Err(Error::NotFound(p));
        };
        let under = format!("{p}/");
        let all = std::iter::once(top).chain(
            tree.iter()
                .filter(|e| top.dir && e.path.starts_with(&under)),
        );
        for e in all {
            if e.path.rsplit('/').next().is_some_and(hidden) {
                continue;
            }
            if out.iter().any(|o| o.board == e.path) {
                continue;
            }
            bytes += e.size;
            let name = e.path.get(parent..).unwrap_or("").to_string();
            out.push(Planned {
                board: e.path.clone(),
                name: if e.dir { format!("{name}/") } else { name },
                dir: e.dir,
            });
        }
        if out.len() > MAX_FILES || bytes > MAX_BYTES {
            return Err(Error::Limit(crate::error::Limit::Zip {
                files: out.len(),
                bytes,
                most_files: MAX_FILES,
                most_bytes: MAX_BYTES,
            }));
        }
    }
    Ok(out)
}

/// The zip's bytes as they are made, handed on after each file.
#[derive(Clone, Default)]
struct Pending(Arc<Mutex<Vec<u8>>>);

impl Write for Pending {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Pending {
    fn take(&self) -> Bytes {
        Bytes::from(std::mem::take(
            &mut *self.0.lock().unwrap_or_else(|p| p.into_inner()),
        ))
    }
}

/// Streams the archive into `tx`; an error ends the stream (the browser
/// then shows the download as failed, not as a short zip).
pub async fn stream(
    files: Files,
    plan: Vec<Planned>,
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
) {
    let out = Pending::default();
    let mut zip = zip::ZipWriter::new_stream(out.clone());
    let opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(false);
    for p in plan {
        let r: Result<()> = async {
            if p.dir {
                zip.add_directory(p.name.as_str(), opts)
                    .map_err(|e| Error::Invalid(format!("zip: {e}")))?;
            } else {
                let data = files.read(&p.board).await?;
                zip.start_file(p.name.as_str(), opts)
                    .map_err(|e| Error::Invalid(format!("zip: {e}")))?;
                zip.write_all(&data)?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = r {
            let _ = tx
                .send(Err(std::io::Error::other(format!("{}: {e}", p.board))))
                .await;
            return;
        }
        let chunk = out.take();
        if !chunk.is_empty() && tx.send(Ok(chunk)).await.is_err() {
            return; // the browser went away
        }
    }
    match zip.finish() {
        Ok(_) => {
            let _ = tx.send(Ok(out.take())).await;
        }
        Err(e) => {
            let _ = tx
                .send(Err(std::io::Error::other(format!("zip: {e}"))))
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(path: &str, dir: bool, size: u64) -> Entry {
        Entry {
            path: path.into(),
            dir,
            size,
        }
    }

    #[test]
    fn a_folder_is_named_from_where_it_was_ticked_without_scratch_names() {
        let tree = [
            e("/lib", true, 0),
            e("/lib/a.py", false, 3),
            e("/lib/.wrm-00000a", false, 3),
            e("/lib/x", true, 0),
            e("/lib/x/b.py", false, 4),
            e("/libx.py", false, 1),
        ];
        let names: Vec<String> = plan(&tree, &["/lib".into(), "/lib/a.py".into()])
            .expect("plan")
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["lib/", "lib/a.py", "lib/x/", "lib/x/b.py"]);
        let big = [e("/big", false, MAX_BYTES + 1)];
        assert!(plan(&big, &["/big".into()]).is_err());
        assert!(plan(&tree, &["/nope".into()]).is_err());
    }
}
