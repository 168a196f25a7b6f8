//! What the board holds of the files being saved, as far as the mount
//! knows: a save sends only the change against it (checked on the board
//! by size and CRC-32 before it is used, so a copy that is no longer the
//! board's costs a whole upload, never a wrong file).

use super::*;
use crate::board::{diff, encode_delta};
use bytes::Bytes;

/// Files larger than this keep no copy of the board's version.
const HELD_MAX: usize = 8 << 20;
/// New files of these sizes look for a file beside them to be a delta of:
/// smaller ones save little; larger ones would cost the daemon a diff
/// against each (and a board's files are rarely that large).
pub(super) const NEAR: std::ops::RangeInclusive<usize> = 2048..=(1 << 20);
/// Files beside a new one tried as its base.
const NEAR_TRIED: usize = 3;

/// The board's copy of `ino` as the mount holds it: what an edit under
/// way began from, else the clean contents if they are the board's size.
pub(super) fn board_copy(st: &State, ino: Ino) -> Option<Bytes> {
    if let Some(b) = st.file.of(ino).was.as_ref() {
        return Some(b.clone());
    }
    let n = st.tree.get(ino)?;
    if st.contents.is_dirty(ino) || !n.on_board || n.local_only {
        return None;
    }
    let data = st.contents.get_clean_or_dirty(ino)?;
    (data.len() as u64 == n.size && data.len() <= HELD_MAX).then(|| Bytes::copy_from_slice(data))
}

/// Files beside a new one whose board copy the mount holds, of about its
/// size, closest first: a save through a temporary name (sed -i) is a
/// near copy of the file it will be renamed over.
pub(super) fn beside(st: &State, ino: Ino, len: usize) -> Vec<(String, Bytes)> {
    let Some(parent) = st.tree.get(ino).and_then(|n| st.tree.get(n.parent)) else {
        return Vec::new();
    };
    let mut near: Vec<(u64, Ino)> = parent
        .children
        .values()
        .filter(|&&c| c != ino)
        .filter_map(|&c| st.tree.get(c).map(|n| (c, n)))
        .filter(|(_, n)| n.kind == EntryKind::File && n.on_board && !n.local_only)
        .filter(|(_, n)| (len as u64 / 2..=len as u64 * 2).contains(&n.size))
        .map(|(c, n)| (n.size.abs_diff(len as u64), c))
        .collect();
    near.sort_unstable();
    near.into_iter()
        .filter_map(|(_, c)| board_copy(st, c).map(|b| (st.tree.path(c), b)))
        .take(NEAR_TRIED)
        .collect()
}

/// The one of `near` that `new` differs least from.
pub(super) fn closest(near: Vec<(String, Bytes)>, new: &[u8]) -> Option<(String, Bytes)> {
    near.into_iter()
        .map(|(p, b)| (encode_delta(&diff(&b, new)).len(), p, b))
        .min_by_key(|(n, ..)| *n)
        .map(|(_, p, b)| (p, b))
}
