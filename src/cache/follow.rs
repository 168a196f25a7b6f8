//! A file that a person's program writes while it runs (a data logger
//! appending a line a second), followed by its readers: `tail -f` asks for
//! the file's attributes every second. The snapshot cannot be checked then
//! (the REPL is the program's), but a binary GET works beside the program,
//! so a file open for reading, held here and small, is fetched again, at
//! most once a second, once it has been open a second. With the REPL
//! free, the board's stat tells whether it changed; a changed file is then
//! read again as any uncached file is.

use super::*;
use crate::board::Stat;
use tracing::debug;

/// Files up to this are fetched whole again beside a running program
/// (about 3 s at 20 KB/s); a bigger one waits for the program's end, unless
/// the link's measured rate moves it in `FOLLOW_SECS`. A GET cannot fetch
/// only a file's new end (the protocol has no offset, and the range
/// program needs the REPL, which is the program's), so each look is the
/// whole file, and every other read beside the program (by GET too) waits
/// behind it: 200 KB at 20 KB/s would be 10 s a look.
const FOLLOW_MAX: u64 = 64 * 1024;
const FOLLOW_SECS: f64 = 3.2;
/// The least time between two looks at one file.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

impl Core {
    /// Brings `ino` up to date with the board if a reader holds it open
    /// and the board may have changed it.
    pub(super) async fn follow(&self, ino: Ino) {
        let (path, size, mtime) = {
            let mut guard = self.lock();
            let st = &mut *guard;
            // Closed files are forgotten here.
            st.file.edit_all(|i, f| {
                if !st.contents.is_open(i) {
                    f.followed = None;
                }
            });
            let Some(n) = st.tree.get(ino) else { return };
            let held = n.kind == EntryKind::File
                && n.on_board
                && !n.local_only
                && st.contents.is_open(ino)
                && st.contents.has(ino)
                && !st.contents.is_dirty(ino)
                && st.file.of(ino).load.is_none()
                && st.file.of(ino).uploading.is_none();
            // A reader that opens, reads and closes (`cat`, an editor
            // loading) asks once: only one still there a second later is
            // following the file.
            match st.file.of(ino).followed.as_ref() {
                _ if !held => return,
                None => {
                    st.file.edit(ino, |f| f.followed = Some(Instant::now()));
                    return;
                }
                Some(t) if t.elapsed() < FOLLOW_EVERY => return,
                Some(_) => {}
            }
            let (size, mtime) = (n.size, n.board_mtime);
            st.file.edit(ino, |f| f.followed = Some(Instant::now()));
            (st.tree.path(ino), size, mtime)
        };
        if !*self.board.session().link_state().borrow() {
            return;
        }
        // Beside an upload a program waits for its slice to end, and the
        // reader with it: a cached read held open took 0.4-0.75 s. The
        // look waits for the upload's end.
        if !self.board.uploads_moving().is_empty() {
            return;
        }
        match self.board.impatient().stat(&path).await {
            Ok(Some(s)) if (s.size, s.mtime) != (size, mtime) => {
                let mut st = self.lock();
                if st.contents.is_dirty(ino) || st.file.of(ino).load.is_some() {
                    return;
                }
                if let Some(n) = st.tree.get_mut(ino) {
                    (n.size, n.board_mtime) = (s.size, s.mtime);
                }
                debug!("{path}: {} B on the board now: read again", s.size);
                st.contents.forget(ino);
                self.changed(&st, ino);
            }
            Err(Error::Running { .. }) if size <= follow_max(self.board.download_rate()) => {
                self.fetch_again(ino, &path, size, mtime).await
            }
            Ok(_) => {}
            Err(e) => debug!("{path}: not followed ({e})"),
        }
    }

    /// `follow` beside a person's program: the file by GET. The board's
    /// mtime is not known until the program ends (the snapshot's check
    /// then reads the file again once).
    async fn fetch_again(&self, ino: Ino, path: &str, size: u64, mtime: i64) {
        let stat = Stat {
            kind: EntryKind::File,
            size,
            mtime,
        };
        let data = match self.board.get_sized(path, stat).await {
            Ok(d) => d,
            Err(e) => {
                debug!("{path}: not fetched again beside the running program ({e})");
                return;
            }
        };
        let mut st = self.lock();
        let same = st.contents.get(ino).is_some_and(|d| *d == data);
        if same || st.contents.is_dirty(ino) || st.file.of(ino).load.is_some() {
            return;
        }
        debug!("{path}: {} B by GET beside the running program", data.len());
        if let Some(n) = st.tree.get_mut(ino) {
            n.size = data.len() as u64;
        }
        st.contents.insert_clean(ino, data);
        self.changed(&st, ino);
    }
}

/// The largest file fetched whole again beside a running program, for a
/// link of `rate` bytes/s from the board (None: not measured yet).
fn follow_max(rate: Option<f64>) -> u64 {
    rate.filter(|r| r.is_finite())
        .map_or(FOLLOW_MAX, |r| ((r * FOLLOW_SECS) as u64).max(FOLLOW_MAX))
        .min(super::files::MAX_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_followed_beside_a_program_if_a_look_takes_a_few_seconds() {
        assert_eq!(follow_max(None), FOLLOW_MAX);
        assert_eq!(follow_max(Some(20_000.0)), FOLLOW_MAX);
        assert_eq!(follow_max(Some(1e6)), 3_200_000);
        assert_eq!(follow_max(Some(f64::MAX)), super::super::files::MAX_FILE);
        assert_eq!(follow_max(Some(f64::INFINITY)), FOLLOW_MAX);
    }
}
