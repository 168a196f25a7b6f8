//! A reader interrupted while its read waits for the board. fuser answers
//! the kernel's INTERRUPT with ENOSYS, and the kernel then waits for the
//! read itself, however long: `cat` of a big uncached file on a slow link
//! did not die on Ctrl-C until the whole file had come. `/proc/<tid>/status`
//! shows what the kernel would have told: a fatal signal (Ctrl-C with no
//! handler, `kill -9`) leaves SIGKILL pending; a signal the reader handles
//! (Python's Ctrl-C) is pending, caught and not blocked. The read then ends
//! with EINTR, as a filesystem answering INTERRUPT ends it.

use std::time::Duration;

/// How often a waiting read looks at its reader.
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// Returns once the task `tid` has a signal pending that interrupts it
/// (or is gone).
/// Never, for tid 0 (the kernel's own requests).
pub async fn killed(tid: u32) {
    if tid == 0 {
        return std::future::pending().await;
    }
    let path = format!("/proc/{tid}/status");
    loop {
        tokio::time::sleep(LOOK_EVERY).await;
        match tokio::fs::read_to_string(&path).await {
            Ok(status) if !interrupted(&status) => {}
            _ => return,
        }
    }
}

/// Whether a `/proc/<tid>/status` text shows a signal pending, for the
/// thread (`SigPnd`) or its process (`ShdPnd`), that is SIGKILL or one the
/// reader catches and does not block.
fn interrupted(status: &str) -> bool {
    let mask = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .unwrap_or(0)
    };
    let pending = mask("SigPnd") | mask("ShdPnd");
    let kill = 1u64 << (libc::SIGKILL - 1);
    pending & kill != 0 || pending & mask("SigCgt") & !mask("SigBlk") != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_sigkill_or_caught_signal_interrupts_and_others_do_not() {
        let status = |pnd: &str, shd: &str, blk: &str, cgt: &str| {
            format!(
                "Name:\tcat\nState:\tD (disk sleep)\nSigPnd:\t{pnd}\nShdPnd:\t{shd}\n\
                 SigBlk:\t{blk}\nSigIgn:\t0000000000000000\nSigCgt:\t{cgt}\n"
            )
        };
        let zero = "0000000000000000";
        assert!(!interrupted(&status(zero, zero, zero, zero)));
        // Ctrl-C's SIGINT (bit 1) pending: Python catches it; a reader
        // that blocks it, or does not catch it (its SIGKILL then shows),
        // is not interrupted by it.
        let int = "0000000000000002";
        assert!(interrupted(&status(int, zero, zero, int)));
        assert!(interrupted(&status(zero, int, zero, int)));
        assert!(!interrupted(&status(int, zero, int, int)));
        assert!(!interrupted(&status(int, zero, zero, zero)));
        assert!(interrupted(&status("0000000000000100", zero, zero, zero)));
        assert!(interrupted(&status(zero, "0000000000000102", zero, zero)));
        assert!(!interrupted("SigPnd:\tzz\n"));
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
