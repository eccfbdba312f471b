//! Index allocator for the contiguous blocks (1 to 64 entries) that trie nodes, leaves and
//! next-hop buckets live in.
//!
//! Blocks are recycled through per-size free lists; a released block first waits in a queue
//! tagged with the epoch of its release until the QSBR domain says no reader can still hold it.

use std::collections::VecDeque;

/// Largest block: a node's 64 children or 64 leaves.
pub const MAX_BLOCK: usize = 64;

#[derive(Debug)]
pub struct BlockAllocator {
    free: Vec<Vec<u32>>,
    pending: VecDeque<(u64, u32, u8)>,
    next: u32,
    in_use: u64,
    pending_entries: u64,
}

impl BlockAllocator {
    /// A new allocator whose first block starts at `first` (index 0 may be reserved by a caller).
    pub fn new(first: u32) -> Self {
        Self {
            free: vec![Vec::new(); MAX_BLOCK + 1],
            pending: VecDeque::new(),
            next: first,
            in_use: 0,
            pending_entries: 0,
        }
    }

    /// Start index of a block of `size` entries (1..=64). May return an index at or past the
    /// backing array's end: the caller grows the array to [`Self::high_water`] first.
    pub fn alloc(&mut self, size: usize) -> u32 {
        debug_assert!((1..=MAX_BLOCK).contains(&size));
        self.in_use += size as u64;
        if let Some(start) = self.free.get_mut(size).and_then(Vec::pop) {
            return start;
        }
        let start = self.next;
        self.next += size as u32;
        start
    }

    /// Hands a block back; it is reused only after [`Self::reclaim`] with a later safe epoch.
    pub fn retire(&mut self, start: u32, size: usize, epoch: u64) {
        if size == 0 {
            return;
        }
        debug_assert!(size <= MAX_BLOCK);
        self.in_use -= size as u64;
        self.pending_entries += size as u64;
        self.pending.push_back((epoch, start, size as u8));
    }

    /// Moves every block retired before `safe_epoch` to the free lists.
    pub fn reclaim(&mut self, safe_epoch: u64) {
        while let Some(&(epoch, start, size)) = self.pending.front() {
            if epoch >= safe_epoch {
                break;
            }
            self.pending.pop_front();
            self.pending_entries -= u64::from(size);
            if let Some(list) = self.free.get_mut(usize::from(size)) {
                list.push(start);
            }
        }
    }

    /// Entries that must exist in the backing array.
    pub fn high_water(&self) -> u32 {
        self.next
    }

    /// Entries held by live blocks.
    pub fn in_use(&self) -> u64 {
        self.in_use
    }

    /// Entries retired but not yet reclaimable.
    #[cfg(test)]
    pub fn pending(&self) -> u64 {
        self.pending_entries
    }

    /// Number of blocks waiting for a grace period.
    pub fn pending_blocks(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retired_blocks_wait_for_their_epoch() {
        let mut a = BlockAllocator::new(1);
        let x = a.alloc(4);
        assert_eq!(x, 1);
        let y = a.alloc(4);
        assert_eq!(y, 5);
        a.retire(x, 4, 10);
        assert_eq!(a.in_use(), 4);
        assert_eq!(a.pending(), 4);
        a.reclaim(10); // not yet: a reader may still be in epoch 10
        assert_eq!(a.alloc(4), 9);
        a.reclaim(11);
        assert_eq!(a.alloc(4), x, "reclaimed block is reused for the same size");
        assert_eq!(a.alloc(2), 13, "other sizes come from the bump pointer");
        assert_eq!(a.high_water(), 15);
    }
}
