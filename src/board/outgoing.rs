//! Uploads as a person knows them, for `status` and the page: one entry per
//! file, named after it, with the bytes the board has taken of all its
//! slices. The session sees only PUTs to part files (`.wrm-…`, `.wrm-….1`),
//! each slice from 0 to its own size: summed per file here, they only rise.

use super::*;
use tokio::sync::watch;

#[derive(Debug)]
pub(super) struct Outgoing {
    id: u64,
    path: String,
    total: u64,
    done: watch::Receiver<u64>,
    since: Instant,
}

/// A file's entry, while its PUTs last.
pub(super) struct Going {
    all: Arc<Mutex<Vec<Outgoing>>>,
    id: u64,
}

impl Drop for Going {
    fn drop(&mut self) {
        let mut all = self.all.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|o| o.id != self.id);
    }
}

impl Board {
    /// Uploads under way by the user's file names, as `status` shows
    /// transfers.
    pub fn uploads_moving(&self) -> Vec<crate::session::Moving> {
        let all = self.outgoing.lock().unwrap_or_else(|e| e.into_inner());
        all.iter()
            .map(|o| crate::session::Moving {
                path: o.path.clone(),
                upload: true,
                // A slice sent again (the board kept it short) counts twice.
                done: (*o.done.borrow()).min(o.total),
                total: o.total,
                secs: o.since.elapsed().as_secs_f64(),
            })
            .collect()
    }

    /// `path`'s upload of `total` bytes, whose progress `done` tells.
    pub(super) fn going(&self, path: &str, total: u64, done: watch::Receiver<u64>) -> Going {
        static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.outgoing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Outgoing {
                id,
                path: path.to_string(),
                total,
                done,
                since: Instant::now(),
            });
        Going {
            all: self.outgoing.clone(),
            id,
        }
    }
}
