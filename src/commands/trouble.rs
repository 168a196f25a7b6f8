//! Why a path in a mount failed with EIO or ENOTCONN: the kernel's words
//! ("Input/output error", "Transport endpoint is not connected") say
//! nothing of the cause, which the mount's daemon knows (or, gone, is).

use super::mounted;
use crate::error::Error;
use crate::terminal::sidecar;
use std::time::Duration;

/// How long the daemon may take to tell its link's state.
const ASK: Duration = Duration::from_secs(3);

/// `e`, from a path `arg` in a mount, with its cause when the mount or its
/// board is the trouble: then it ends the command (the other operands
/// would meet the same), as a board that cannot be reached does.
pub(crate) async fn explained(e: Error, arg: &str) -> Error {
    let errno = match &e {
        Error::Os { errno, .. } => Some(*errno),
        Error::Io(io) => io.raw_os_error(),
        Error::Local { error, .. } => error.raw_os_error(),
        _ => None,
    };
    if !matches!(errno, Some(libc::EIO | libc::ENOTCONN)) {
        return e;
    }
    let Ok(Some(mp)) = mounted(arg) else {
        return e;
    };
    let shown = mp.display();
    let mount = format!("the mount at {shown}");
    if errno == Some(libc::ENOTCONN) || sidecar::stale(&mp) {
        return Error::unreachable(
            mount,
            format_args!(
                "its webrepl-mount daemon is gone (killed?); clean up with: webrepl-mount unmount {shown}"
            ),
        );
    }
    let Ok(Ok(status)) = tokio::time::timeout(ASK, sidecar::ask(&mp, "status")).await else {
        return Error::unreachable(
            mount,
            format_args!(
                "its webrepl-mount daemon is not answering (see its log; webrepl-mount unmount {shown} ends it)"
            ),
        );
    };
    match link_down(&status) {
        Some((board, link)) => {
            Error::unreachable(format_args!("the board of {mount} ({board})"), link)
        }
        None => e,
    }
}

/// After `cp` or `touch` wrote through mounts (`paths`, in them or not):
/// a mount whose board cannot be reached keeps what was written in its
/// journal, to go when the board is back. As `cp` to an unreachable board,
/// that is exit 8, and the message says where the files are: a script
/// learns they are not on the board yet, and nothing is lost.
pub(crate) async fn kept_in_journal(paths: &[String]) -> crate::error::Result<()> {
    let mut mounts = Vec::new();
    for p in paths {
        if let Ok(Some(mp)) = mounted(p)
            && !mounts.contains(&mp)
        {
            mounts.push(mp);
        }
    }
    for mp in mounts {
        let Ok(Ok(status)) = tokio::time::timeout(ASK, sidecar::ask(&mp, "status")).await else {
            continue;
        };
        let unsent = status.iter().any(|l| l.starts_with("dirty: "));
        if let Some((board, link)) = link_down(&status).filter(|_| unsent) {
            return Err(Error::unreachable(
                format_args!("the board of the mount at {} ({board})", mp.display()),
                format_args!(
                    "{link}; what was written is kept in the mount's journal and goes to the board when it is back (webrepl-mount status {} shows it)",
                    mp.display()
                ),
            ));
        }
    }
    Ok(())
}

/// The board and the state of its link, from a mount's status, when the
/// link is not up.
fn link_down(status: &[String]) -> Option<(String, String)> {
    let board = status
        .iter()
        .find_map(|l| l.strip_prefix("board: "))?
        .rsplit_once(" on ")?
        .0
        .to_string();
    let link = status
        .iter()
        .find_map(|l| l.strip_prefix("firmware: "))?
        .split_once(", ")?
        .1;
    (!link.starts_with("link up")).then(|| (board, link.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mounts_status_tells_a_link_that_is_down() {
        let status = |link: &str| {
            vec![
                "board: ws://10.0.0.9:8266/ on /mnt/b".to_string(),
                format!("firmware: MicroPython 1.25.0, {link}"),
                "ok".to_string(),
            ]
        };
        assert_eq!(
            link_down(&status("link DOWN for 12 s (connection refused)")),
            Some((
                "ws://10.0.0.9:8266/".to_string(),
                "link DOWN for 12 s (connection refused)".to_string()
            ))
        );
        assert_eq!(link_down(&status("link up")), None);
    }
}
