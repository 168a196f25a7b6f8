//! A reader killed while its read waits for the board. fuser answers the
//! kernel's INTERRUPT with ENOSYS, and the kernel then waits for the read
//! itself, however long: `cat` of a big uncached file on a slow link did
//! not die on Ctrl-C until the whole file had come. The kernel marks a
//! task a fatal signal has reached (Ctrl-C with no handler, `kill -9`) with
//! a pending SIGKILL, which `/proc/<tid>/status` shows.

use std::time::Duration;

/// How often a waiting read looks at its reader.
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// Returns once the task `tid` has a fatal signal pending (or is gone).
/// Never, for tid 0 (the kernel's own requests).
pub async fn killed(tid: u32) {
    if tid == 0 {
        return std::future::pending().await;
    }
    let path = format!("/proc/{tid}/status");
    loop {
        tokio::time::sleep(LOOK_EVERY).await;
        match tokio::fs::read_to_string(&path).await {
            Ok(status) if !fatal_pending(&status) => {}
            _ => return,
        }
    }
}

/// Whether a `/proc/<tid>/status` text shows SIGKILL pending, for the
/// thread (`SigPnd`) or its process (`ShdPnd`).
fn fatal_pending(status: &str) -> bool {
    let kill = 1u64 << (libc::SIGKILL - 1);
    status.lines().any(|l| {
        let Some((key, mask)) = l.split_once(':') else {
            return false;
        };
        matches!(key, "SigPnd" | "ShdPnd")
            && u64::from_str_radix(mask.trim(), 16).is_ok_and(|m| m & kill != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_sigkill_is_fatal_and_other_signals_are_not() {
        let status = |sig: &str, shd: &str| {
            format!("Name:\tcat\nState:\tD (disk sleep)\nSigPnd:\t{sig}\nShdPnd:\t{shd}\n")
        };
        assert!(!fatal_pending(&status(
            "0000000000000000",
            "0000000000000000"
        )));
        // SIGINT (2) alone, as a reader with a handler for it has.
        assert!(!fatal_pending(&status(
            "0000000000000002",
            "0000000000000000"
        )));
        assert!(fatal_pending(&status(
            "0000000000000100",
            "0000000000000000"
        )));
        assert!(fatal_pending(&status(
            "0000000000000000",
            "0000000000000102"
        )));
        assert!(!fatal_pending("SigPnd:\tzz\n"));
    }

    #[tokio::test]
    async fn a_task_that_is_gone_counts_as_killed() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let tid = child.id();
        child.wait().unwrap();
        tokio::time::timeout(Duration::from_secs(5), killed(tid))
            .await
            .unwrap();
    }
}
