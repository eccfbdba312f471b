//! Quiescent-state-based reclamation for the FIB's block pools.
//!
//! The writer never overwrites memory a reader may be reading: a block it unlinks is *retired*
//! with the current epoch and only reused once every registered reader has announced a later
//! epoch, i.e. has started a new [`FibView`](super::FibView) since the unlink was published.
//!
//! Ordering argument (all memory is atomics, so there is no undefined behaviour even if this were
//! wrong; what it buys is that no lookup ever sees a half-updated trie):
//! - The writer publishes updates with release stores into the direct array (or group
//!   entries), then, before it next reclaims, [`Domain::advance`]s the epoch from `E` to
//!   `E + 1`; blocks unlinked by those updates were retired with tag `E`. (Several updates may
//!   share an epoch: the advance comes after all of their stores.)
//! - A reader starting a view loads the epoch (acquire) and stores it into its slot (release),
//!   then loads the direct array. If it read `E + 1` it synchronises with the advance, so it sees
//!   the new direct entries and cannot reach the unlinked blocks. If it read `E` or less, its slot
//!   says so and the writer waits. Its earlier views' loads happen before its slot store, which
//!   the writer reads with acquire before reusing anything.
//! - Registration is the one store-then-load race (a new reader's slot versus the writer's scan):
//!   both sides put a `SeqCst` fence between their store and their load, so either the writer
//!   sees the slot or the reader sees the published update.

use crossbeam_utils::CachePadded;
#[cfg(loom)]
use loom::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};

/// Most readers that can be registered at once (one per forwarding core plus a few control
/// threads is the expected use).
#[cfg(not(loom))]
pub const MAX_READERS: usize = 128;
/// Under the loom model checker every slot is one more object to explore: keep two.
#[cfg(loom)]
pub const MAX_READERS: usize = 2;

const FREE: u64 = u64::MAX;

/// The epoch counter and one announcement slot per registered reader.
#[derive(Debug)]
pub struct Domain {
    epoch: CachePadded<AtomicU64>,
    slots: Box<[CachePadded<AtomicU64>]>,
    /// One past the highest slot ever registered: the writer scans only that far.
    high: AtomicUsize,
}

impl Default for Domain {
    fn default() -> Self {
        Self {
            epoch: CachePadded::new(AtomicU64::new(1)),
            slots: (0..MAX_READERS)
                .map(|_| CachePadded::new(AtomicU64::new(FREE)))
                .collect(),
            high: AtomicUsize::new(0),
        }
    }
}

impl Domain {
    /// Claims a slot for a new reader, announcing the current epoch. `None` when all are taken.
    pub fn register(&self) -> Option<usize> {
        for (i, slot) in self.slots.iter().enumerate() {
            let now = self.epoch.load(Ordering::SeqCst);
            if slot
                .compare_exchange(FREE, now, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                self.high.fetch_max(i + 1, Ordering::SeqCst);
                fence(Ordering::SeqCst);
                return Some(i);
            }
        }
        None
    }

    /// Announces that the reader holds nothing from before the current epoch.
    #[inline]
    pub fn announce(&self, slot: usize) {
        let now = self.epoch.load(Ordering::Acquire);
        if let Some(s) = self.slots.get(slot) {
            s.store(now, Ordering::Release);
        }
    }

    /// Releases a reader's slot; it no longer holds anything.
    pub fn unregister(&self, slot: usize) {
        if let Some(s) = self.slots.get(slot) {
            s.store(FREE, Ordering::Release);
        }
    }

    /// The epoch the writer tags retired blocks with.
    #[inline]
    pub fn current(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// Ends an update: everything retired so far carries an older tag than any later view.
    #[inline]
    pub fn advance(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Blocks retired with a tag strictly below the returned epoch are unreachable by every reader.
    pub fn safe_epoch(&self) -> u64 {
        fence(Ordering::SeqCst);
        let mut min = self.epoch.load(Ordering::SeqCst);
        let high = self.high.load(Ordering::SeqCst);
        for slot in self.slots.iter().take(high) {
            let e = slot.load(Ordering::Acquire);
            if e != FREE && e < min {
                min = e;
            }
        }
        min
    }

    /// Number of registered readers (for statistics).
    pub fn readers(&self) -> usize {
        let high = self.high.load(Ordering::Relaxed);
        self.slots
            .iter()
            .take(high)
            .filter(|s| s.load(Ordering::Relaxed) != FREE)
            .count()
    }
}

/// Model checks of the protocol with loom: every interleaving and every weak-memory outcome loom
/// models, for one writer unlinking and reusing a block while a reader looks it up. Run with
/// `RUSTFLAGS="--cfg loom" cargo test -p xroute-engine --lib loom` (as `scripts/test.sh` does).
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::AtomicUsize;
    use loom::sync::Arc;
    use loom::thread;

    /// Two blocks and a direct entry naming one. The writer publishes block 1 (unlinking block 0),
    /// advances the epoch and, if the domain says no reader can hold block 0, reuses it. A reader
    /// that reached a block must read the value that block was published with.
    fn model(register_in_thread: bool) {
        loom::model(move || {
            let domain = Arc::new(Domain::default());
            let entry = Arc::new(AtomicUsize::new(0));
            let blocks = Arc::new([AtomicUsize::new(100), AtomicUsize::new(200)]);
            let early = if register_in_thread {
                None
            } else {
                domain.register()
            };
            let reader = {
                let (domain, entry, blocks) = (domain.clone(), entry.clone(), blocks.clone());
                thread::spawn(move || {
                    let slot = match early {
                        Some(s) => {
                            domain.announce(s);
                            s
                        }
                        None => domain.register().expect("slot"),
                    };
                    let b = entry.load(Ordering::Acquire);
                    let v = blocks[b].load(Ordering::Relaxed);
                    assert_eq!(v, (b + 1) * 100, "the reader saw block {b} after it was reused");
                    domain.unregister(slot);
                })
            };
            // Writer: publish, retire with the current tag, advance, reuse when safe.
            entry.store(1, Ordering::Release);
            let tag = domain.current();
            domain.advance();
            if tag < domain.safe_epoch() {
                blocks[0].store(999, Ordering::Relaxed);
            }
            reader.join().expect("reader");
        });
    }

    #[test]
    fn loom_registered_reader_never_sees_a_reused_block() {
        model(false);
    }

    #[test]
    fn loom_reader_registering_during_the_update_never_sees_a_reused_block() {
        model(true);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn safe_epoch_waits_for_the_slowest_reader() {
        let d = Domain::default();
        let a = d.register().unwrap();
        let b = d.register().unwrap();
        let start = d.current();
        d.advance();
        d.advance();
        // Both readers still announce the epoch they registered in.
        assert_eq!(d.safe_epoch(), start);
        d.announce(a);
        assert_eq!(d.safe_epoch(), start);
        d.announce(b);
        assert_eq!(d.safe_epoch(), start + 2);
        d.unregister(a);
        d.unregister(b);
        d.advance();
        assert_eq!(d.safe_epoch(), start + 3);
        assert_eq!(d.readers(), 0);
    }

    #[test]
    fn slots_run_out_cleanly_and_are_reused() {
        let d = Domain::default();
        let slots: Vec<_> = (0..MAX_READERS).map(|_| d.register().unwrap()).collect();
        assert_eq!(d.register(), None);
        d.unregister(slots[7]);
        assert_eq!(d.register(), Some(7));
    }
}
