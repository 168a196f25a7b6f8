//! The board's heap as the tool sees it: buffers halved in a low-memory
//! episode grow back once the heap allows, and `status` of a board
//! without a mount reads it.

use super::*;

/// How long after a low-memory episode (or a step back up) the free heap
/// is read again: each read is a program, and a person's program that
/// held the heap may hold it still.
pub(super) const GROW_AFTER: Duration = Duration::from_secs(2);

/// The buffer after `buffer` on a board with `free` bytes free: doubled,
/// up to what that heap allows (`buffer_for`); None once it is there. A
/// step at a time: a heap that just had room may have it only just.
pub(super) fn regrown(buffer: usize, free: u64) -> Option<usize> {
    let most = buffer_for(free);
    (buffer < most).then(|| (buffer * 2).min(most))
}

/// The board's heap now, as `status` shows it without a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heap {
    /// Free bytes after a collection.
    pub free: u64,
    /// What our helpers keep and their buffer, if they are defined (they
    /// stay until a reset).
    pub helpers: Option<(u64, usize)>,
}

impl Board {
    /// After a helper call that went through: buffers a low-memory
    /// episode halved grow a step if the free heap allows, at most once
    /// every [`GROW_AFTER`] (a program each time), until they are back.
    pub(super) async fn regrow(&self) {
        {
            let mut at = self.grow_at.lock().unwrap_or_else(|e| e.into_inner());
            match *at {
                Some(t) if Instant::now() >= t => *at = None,
                _ => return,
            }
        }
        let again = || {
            *self.grow_at.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(Instant::now() + GROW_AFTER);
        };
        let Some(free) = self.free_heap().await else {
            return again();
        };
        let Some(buffer) = regrown(self.ram().buffer, free) else {
            return;
        };
        let set = self
            .session
            .run(
                format!("try:_wrm.B={buffer}\nexcept NameError:pass\n"),
                self.how(Run::QUERY),
            )
            .await;
        if set.is_ok_and(|o| o.stderr.is_empty()) {
            self.ram.lock().unwrap_or_else(|e| e.into_inner()).buffer = buffer;
            debug!("buffers back to {buffer} bytes ({free} bytes free)");
        }
        again();
    }

    /// Due at the next helper call (a board whose buffers an earlier
    /// connection left small).
    pub(super) fn regrow_soon(&self) {
        *self.grow_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// The free heap and, if our helpers are defined, what they keep: one
    /// program that defines nothing.
    pub async fn heap(&self) -> Result<Heap> {
        let out = self.query(sn::ram()).await?;
        let mem: Vec<u64> = sn::lines(&out)
            .filter_map(|l| match Answer::parse(l) {
                Answer::Mem(n) => Some(n),
                _ => None,
            })
            .collect();
        match mem[..] {
            [free] => Ok(Heap {
                free,
                helpers: None,
            }),
            // An older version's `R` held the free heap too, above
            // what is kept (14 bits).
            [free, kept, buffer] => Ok(Heap {
                free,
                helpers: Some((kept & 16383, usize::try_from(buffer).unwrap_or(BUFFER_MAX))),
            }),
            _ => Err(sn::unexpected(&out, "the board's heap")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_grow_back_a_doubling_at_a_time_up_to_what_the_heap_allows() {
        // An ESP32's heap after the episode: 128 -> 256 -> 512 -> 1024.
        let mut b = BUFFER_MIN;
        let mut steps = Vec::new();
        while let Some(n) = regrown(b, 100_000) {
            steps.push(n);
            b = n;
        }
        assert_eq!(steps, [256, 512, 1024]);
        // The heap still held: no growth.
        assert_eq!(regrown(128, 5_000), None);
        // Room for 512 only: one step, no further.
        assert_eq!(regrown(256, 16_500), Some(512));
        assert_eq!(regrown(512, 16_500), None);
        // Never past the most (a buffer the heap no longer allows stays
        // until the next episode halves it).
        assert_eq!(regrown(BUFFER_MAX, u64::MAX), None);
        assert_eq!(regrown(1024, 8_000), None);
    }
}
