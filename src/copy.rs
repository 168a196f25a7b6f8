//! `cp`: files and trees to and from a board over one connection.

use crate::board::{self, Board, Kind, Stat};
use crate::cli::Conn;
use crate::commands::split_remote;
use crate::error::{Error, Result};
use crate::session::Piece;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

pub async fn run(mut paths: Vec<String>, recursive: bool, conn: &Conn) -> Result<()> {
    let dst = paths
        .pop()
        .ok_or_else(|| Error::Invalid("cp needs a source and a destination".into()))?;
    let srcs = paths;
    match split_remote(&dst) {
        Some((host, dir)) => {
            if let Some(s) = srcs.iter().find(|s| split_remote(s).is_some()) {
                return Err(Error::Invalid(format!(
                    "{s}: copying from board to board is not supported"
                )));
            }
            let b = conn.connect(&host).await?;
            let r = upload(&b, &srcs, &dir, recursive).await;
            b.session().close().await;
            r
        }
        None => {
            let mut host = None;
            let mut remote = Vec::new();
            for s in &srcs {
                let (h, p) = split_remote(s).ok_or_else(|| {
                    Error::Invalid(format!("{s}: one side of cp must be HOST[:PORT]:PATH"))
                })?;
                if host.as_ref().is_some_and(|x| x != &h) {
                    return Err(Error::Invalid(
                        "all sources must be on the same board".into(),
                    ));
                }
                host = Some(h);
                remote.push(p);
            }
            let host = host.ok_or_else(|| Error::Invalid("nothing to copy".into()))?;
            let b = conn.connect(&host).await?;
            let r = download(&b, &remote, Path::new(&dst), recursive).await;
            b.session().close().await;
            r
        }
    }
}

fn progress(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {bytes_per_sec} {wide_msg}")
    {
        bar.set_style(style);
    }
    bar
}

/// Local files under `src` (itself if a file), with their board paths.
fn plan_upload(
    src: &Path,
    to: &str,
    recursive: bool,
    out: &mut Vec<(PathBuf, String)>,
) -> Result<()> {
    let meta =
        std::fs::metadata(src).map_err(|e| Error::Invalid(format!("{}: {e}", src.display())))?;
    if meta.is_dir() {
        if !recursive {
            return Err(Error::Invalid(format!(
                "{} is a directory (use -r)",
                src.display()
            )));
        }
        let mut names: Vec<_> = std::fs::read_dir(src)?.collect::<std::io::Result<_>>()?;
        names.sort_by_key(|e| e.file_name());
        if names.is_empty() {
            out.push((src.to_path_buf(), format!("{to}/")));
        }
        for e in names {
            let name = e.file_name().into_string().map_err(|n| {
                Error::Invalid(format!(
                    "{}: board names must be UTF-8",
                    Path::new(&n).display()
                ))
            })?;
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

async fn upload(b: &Board, srcs: &[String], dst: &str, recursive: bool) -> Result<()> {
    let dst_path = board::normalize(dst)?;
    let into_dir = dst.ends_with('/')
        || srcs.len() > 1
        || matches!(b.stat(&dst_path).await?, Some(s) if s.kind == Kind::Dir);
    let mut plan = Vec::new();
    for s in srcs {
        let to = if into_dir {
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
    let total = plan
        .iter()
        .map(|(p, _)| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    let bar = progress(total);
    let mut sent = 0u64;
    for (local, remote) in plan {
        if let Some(dir) = remote.strip_suffix('/') {
            b.mkdirs(dir).await?;
            continue;
        }
        let remote = board::normalize(&remote)?;
        let data = std::fs::read(&local)
            .map_err(|e| Error::Invalid(format!("{}: {e}", local.display())))?;
        bar.set_message(remote.clone());
        // The bar follows the bytes the board has taken.
        let (tx, mut rx) = tokio::sync::watch::channel(0u64);
        let follow = {
            let bar = bar.clone();
            tokio::spawn(async move {
                while rx.changed().await.is_ok() {
                    bar.set_position(sent + *rx.borrow());
                }
            })
        };
        let r = b
            .put_progress(&remote, data.clone().into(), true, board::Base::Any, tx)
            .await;
        follow.abort();
        r?;
        sent += data.len() as u64;
        bar.set_position(sent);
    }
    bar.finish_and_clear();
    Ok(())
}

async fn download(b: &Board, srcs: &[String], dst: &Path, recursive: bool) -> Result<()> {
    let into_dir = dst.is_dir() || srcs.len() > 1;
    let mut plan: Vec<(String, PathBuf, u64)> = Vec::new();
    let mut dirs = Vec::new();
    for s in srcs {
        let path = board::normalize(s)?;
        let st = b
            .stat(&path)
            .await?
            .ok_or_else(|| Error::NotFound(path.clone()))?;
        let local = if into_dir {
            dst.join(base_name(&path))
        } else {
            dst.to_path_buf()
        };
        if st.kind == Kind::File {
            plan.push((path, local, st.size));
            continue;
        }
        if !recursive {
            return Err(Error::Invalid(format!(
                "{path} is a directory on the board (use -r)"
            )));
        }
        dirs.push(local.clone());
        for e in b.list(&path, true).await? {
            let rel = e
                .path
                .strip_prefix(&path)
                .unwrap_or(&e.path)
                .trim_start_matches('/');
            let to = local.join(rel);
            match e.kind {
                Kind::Dir => dirs.push(to),
                Kind::File => plan.push((e.path, to, e.size)),
            }
        }
    }
    for d in dirs {
        std::fs::create_dir_all(&d).map_err(|e| Error::Invalid(format!("{}: {e}", d.display())))?;
    }
    let bar = progress(plan.iter().map(|p| p.2).sum());
    for (remote, local, size) in plan {
        bar.set_message(remote.clone());
        let mut data = Vec::with_capacity(size as usize);
        let at = bar.position();
        let stat = Stat {
            kind: Kind::File,
            size,
            mtime: 0,
        };
        b.get_into(&remote, stat, &mut |p| {
            match p {
                Piece::Data(d) => data.extend_from_slice(&d),
                Piece::Restart => data.clear(),
            }
            bar.set_position(at + data.len() as u64);
        })
        .await?;
        std::fs::write(&local, &data)
            .map_err(|e| Error::Invalid(format!("{}: {e}", local.display())))?;
    }
    bar.finish_and_clear();
    Ok(())
}
