//! `mip install`: packages from micropython-lib's index (or a URL), fetched
//! by the host and installed through the session, so a board without
//! internet of its own gets them too. What the files are is `index`'s
//! business; here they reach the board as `cp` sends files: unchanged
//! ones (by hash) skipped, the rest in pipelined batches, compressed where
//! the board inflates. Given a path in a mount, the files go through the
//! mount (its cache and journal see them).

mod index;

pub use index::{DEFAULT_INDEX, Spec, rewrite_url};

use crate::board::packages::{FACTS, Facts};
use crate::board::{self, Base, Board, Upload, Written};
use crate::connection::Conn;
use crate::error::{Error, Result};
use crate::terminal::sidecar;
use bytes::Bytes;
use index::{Fetch, File, Resolver};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What an install is asked to do.
#[derive(Debug, Clone)]
pub struct Install {
    pub packages: Vec<String>,
    pub index: String,
    pub target: Option<String>,
    /// `.py` files even where the index has `.mpy` for the board.
    pub no_mpy: bool,
    /// Send every file, also those the board already has.
    pub force: bool,
}

/// Bytes of file contents one upload batch holds, as `cp`.
const BATCH_BYTES: usize = 4 << 20;
/// An index that stops answering: the whole of one request.
const HTTP_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn install(board: &str, how: Install, conn: &Conn) -> Result<()> {
    let specs: Vec<Spec> = how
        .packages
        .iter()
        .map(|p| Spec::parse(p))
        .collect::<Result<_>>()?;
    if !how.index.starts_with("http://") && !how.index.starts_with("https://") {
        return Err(Error::Usage(crate::error::Usage::IndexUrl {
            index: how.index.clone(),
        }));
    }
    match crate::commands::mounted(board)? {
        Some(mp) => {
            let facts = mount_facts(&mp).await?;
            let files = resolve(&how, &specs, &facts).await?;
            let (sent, bytes, same) = write_through_mount(&mp, files, how.force)?;
            say_done(sent, bytes, same);
            Ok(())
        }
        None => {
            let b = conn.connect(board).await?;
            let r = async {
                let facts = b.package_facts().await?;
                let files = resolve(&how, &specs, &facts).await?;
                send(&b, files, how.force).await
            }
            .await;
            b.session().close().await;
            let (sent, bytes, same) = r?;
            say_done(sent, bytes, same);
            Ok(())
        }
    }
}

fn say_done(sent: usize, bytes: u64, same: usize) {
    let mut line = format!("installed {sent} file(s), {bytes} B");
    if same > 0 {
        line.push_str(&format!("; {same} unchanged (already on the board)"));
    }
    eprintln!("{line}");
}

/// Where the packages go, and every file of them, fetched and checked.
async fn resolve(how: &Install, specs: &[Spec], facts: &Facts) -> Result<Vec<File>> {
    let target = match (&how.target, &facts.lib) {
        (Some(t), _) => board::normalize(t)?,
        (None, Some(lib)) => board::normalize(lib)?,
        (None, None) => {
            return Err(Error::Answer(crate::error::Unexpected::NoLib));
        }
    };
    let mpy = facts.mpy.filter(|_| !how.no_mpy);
    let (index, specs) = (how.index.clone(), specs.to_vec());
    let (files, said) = tokio::task::spawn_blocking(move || {
        let http = Http::new();
        let mut r = Resolver::new(&http, &index, &target, mpy);
        for s in &specs {
            r.add(s)?;
        }
        Ok::<_, Error>((r.files, r.said))
    })
    .await
    .map_err(|e| {
        Error::Bug(crate::error::Bug::Task {
            task: "fetching the packages".into(),
            why: e.to_string(),
        })
    })??;
    let mut err = std::io::stderr().lock();
    for line in said {
        let _ = writeln!(err, "installing {line}");
    }
    Ok(files)
}

/// The host's HTTP client: proxies from the environment, as curl.
struct Http(ureq::Agent);

impl Http {
    fn new() -> Http {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(HTTP_TIMEOUT))
            .http_status_as_error(false)
            .user_agent(concat!("webrepl-mount/", env!("CARGO_PKG_VERSION")))
            .build();
        Http(ureq::Agent::new_with_config(config))
    }
}

impl Fetch for Http {
    fn get(&self, url: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        // A URL made from a bad argument never left the host: say so.
        let unreachable = |e: ureq::Error| match e {
            ureq::Error::BadUri(_) | ureq::Error::Http(_) => {
                Error::Usage(crate::error::Usage::Url {
                    url: url.to_string(),
                    why: e.to_string(),
                })
            }
            e => Error::unreachable(url, e),
        };
        let resp = self.0.get(url).call().map_err(unreachable)?;
        let status = resp.status().as_u16();
        if status == 404 {
            return Ok(None);
        }
        if !(200..300).contains(&status) {
            return Err(Error::unreachable(
                url,
                format!("the server answered {}", resp.status()),
            ));
        }
        tracing::debug!("fetched {url}");
        resp.into_body()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map(Some)
            .map_err(unreachable)
    }
}

/// To the board, as `cp` sends: directories first, files whose hash the
/// board already has skipped, the rest pipelined in batches.
async fn send(b: &Board, files: Vec<File>, force: bool) -> Result<(usize, u64, usize)> {
    let mut dirs: Vec<&str> = files.iter().map(|f| board::parent(&f.path)).collect();
    dirs.sort();
    dirs.dedup();
    dirs.retain(|d| *d != "/");
    if !dirs.is_empty() {
        b.mkdirs_all(&dirs).await?;
    }
    let mut same = 0;
    let todo: Vec<File> = if force || files.is_empty() {
        files
    } else {
        let query: Vec<(&str, u64)> = files
            .iter()
            .map(|f| (f.path.as_str(), f.data.len() as u64))
            .collect();
        let (algorithm, digests) = b.digests(&query).await?;
        let mut todo = Vec::new();
        for (f, d) in files.into_iter().zip(digests) {
            if d.is_some_and(|d| d == board::digest(&algorithm, &f.data)) {
                same += 1;
            } else {
                todo.push(f);
            }
        }
        todo
    };
    let (mut sent, mut bytes) = (0, 0u64);
    let mut pending = todo.into_iter().peekable();
    while pending.peek().is_some() {
        let mut batch = Vec::new();
        let mut held = 0;
        while let Some(f) = pending.next_if(|_| held < BATCH_BYTES) {
            held += f.data.len();
            batch.push(Upload::new(&f.path, Bytes::from(f.data), Base::Any));
        }
        let results = b.put_many(batch.clone(), false).await?;
        for (up, r) in batch.iter().zip(results) {
            match r? {
                Written::Target(_) => {}
                Written::Beside { name, .. } => {
                    return Err(Error::Conflict {
                        path: up.path.clone(),
                        beside: name,
                    });
                }
            }
            sent += 1;
            bytes += up.data.len() as u64;
        }
    }
    Ok((sent, bytes, same))
}

/// What the mounted board says, asked through the mount's daemon.
async fn mount_facts(mp: &Path) -> Result<Facts> {
    let hex: String = FACTS.bytes().map(|b| format!("{b:02x}")).collect();
    let (mut out, mut err, mut answer) = (String::new(), String::new(), Vec::new());
    sidecar::ask_each(mp, &format!("exec {hex}"), |line| {
        if let Some(h) = line.strip_prefix("part ") {
            out.push_str(&board::snippets::unhex(h).unwrap_or_default());
        } else if let Some(h) = line.strip_prefix("out ") {
            out.push_str(&board::snippets::unhex(h).unwrap_or_default());
        } else if let Some(h) = line.strip_prefix("err ") {
            err = board::snippets::unhex(h).unwrap_or_default();
        } else {
            answer.push(line.to_string());
        }
        Ok(())
    })
    .await?;
    if let Some(e) = answer.iter().find_map(|l| l.strip_prefix("error ")) {
        return Err(Error::from_wire(e));
    }
    if !err.is_empty() {
        return Err(Error::Traceback(err.trim().to_string()));
    }
    Facts::parse(out.as_bytes())
}

/// Into the mount's files: what already holds the same bytes is left.
fn write_through_mount(mp: &Path, files: Vec<File>, force: bool) -> Result<(usize, u64, usize)> {
    let (mut sent, mut bytes, mut same) = (0, 0u64, 0);
    for f in files {
        // `index` made each part of the path one checked name.
        let local: PathBuf = mp.join(f.path.trim_start_matches('/'));
        let fail = |e: std::io::Error| Error::local(&local, e);
        if !force && std::fs::read(&local).is_ok_and(|d| d == f.data) {
            same += 1;
            continue;
        }
        if let Some(dir) = local.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let mut out = std::fs::File::create(&local).map_err(fail)?;
        out.write_all(&f.data).map_err(fail)?;
        // The mount uploads on close; fsync waits for the board and says
        // how it went.
        out.sync_all().map_err(fail)?;
        sent += 1;
        bytes += f.data.len() as u64;
    }
    Ok((sent, bytes, same))
}
