//! The workers' copy of the kernel's neighbour table: a fixed-capacity map from (port, IP
//! address) to MAC address with one writer (the slow-path thread that mirrors the kernel) and
//! any number of lock-free readers (the forwarding workers).
//!
//! # Layout
//! Open addressing with linear probing over a power-of-two array of cache-line slots, at most
//! half full (so probe runs stay short), with a random hash seed per cache (so that addresses
//! on an attached subnet cannot be chosen to collide). A key lives at most [`MAX_PROBE`] slots
//! from its home slot; an insert that would go further fails with [`CacheFull`], so every
//! lookup reads at most [`MAX_PROBE`] slots.
//!
//! Each slot holds a sequence counter, the key (three words), the MAC (one word) and a used
//! flag (one word). The writer changes a slot's key only under the slot's sequence lock (odd
//! while it writes); a reader takes a snapshot of key and MAC and retries the slot if the
//! counter was odd or moved, so a hit is never torn and never another key's MAC. A MAC change
//! for a key already in place is a single word store outside the lock: readers see the old or
//! the new MAC, both the key's.
//!
//! # Removal: backward shift, under a table-wide sequence counter
//! Removing a key moves later members of its probe run back into the hole (the standard
//! backward-shift deletion), so the table never holds tombstones and never degrades with churn:
//! without moves, tombstones would only ever lengthen runs, until inserts fail with the cache
//! half empty, and clearing them would need moves anyway.
//!
//! Moving a key is what a reader must not be fooled by: a reader looking for K may read the
//! hole before K is copied into it and reach K's old slot after it was emptied, and so miss K
//! although K was present throughout. Per-slot locks cannot see this (each slot read was
//! consistent), so removals also bump a table-wide counter, odd while the writer shifts. A
//! reader that misses checks that the counter was even when it started and has not moved since
//! (an acquire fence between its slot reads and the second counter load, as in a seqlock), and
//! otherwise probes again. That covers every way a present key could be missed:
//! - Inserts only turn empty slots into full ones, never the reverse, and never move a key;
//!   MAC updates do not touch keys. A key present throughout a probe stays in its slot and
//!   every slot between its home and it stays non-empty, so the probe reaches it.
//! - Only removals empty a slot or move a key, and a probe that overlaps one retries.
//!
//! A hit needs no such check (the slot lock proves the MAC is the key's), so the common case,
//! a hit, reads the counter once and never waits. A reader waits only on a miss while a
//! removal is under way (at most [`MAX_PROBE`] slot copies, no system call in between), or on
//! a hit on the very slot whose key is being written.
//!
//! # Used flag
//! [`NeighborCacheReader::get`] sets the slot's used flag, storing only when it is clear so
//! that readers do not keep pulling the line away from each other; the writer's refresh pass
//! reads and clears it ([`NeighborCacheWriter::take_used`]). A reader that sets the flag just
//! after the writer moved or replaced the slot's key marks the wrong entry or loses its mark:
//! at worst one entry is refreshed one round early or late, which is harmless.

use crossbeam_utils::CachePadded;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::Arc;

/// The most slots a lookup reads, and the farthest from its home slot a key is stored.
pub const MAX_PROBE: usize = 32;

/// The largest capacity [`NeighborCacheWriter::new`] accepts (16 M neighbours).
pub const MAX_CAPACITY: usize = 1 << 24;

/// [`NeighborCacheWriter::set`] found no room: the cache holds its capacity, or no slot is free
/// within [`MAX_PROBE`] of the key's home.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error("neighbour cache full")]
pub struct CacheFull;

/// A key packed into three words; `tag == 0` is an empty slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    /// [`FULL`], [`V6`] for IPv6, and the port in the low 16 bits.
    tag: u64,
    hi: u64,
    lo: u64,
}

const FULL: u64 = 1 << 32;
const V6: u64 = 1 << 33;
const EMPTY: Key = Key { tag: 0, hi: 0, lo: 0 };

impl Key {
    fn new(port: u16, addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(a) => Self {
                tag: FULL | u64::from(port),
                hi: 0,
                lo: u64::from(u32::from(a)),
            },
            IpAddr::V6(a) => {
                let a = u128::from(a);
                Self {
                    tag: FULL | V6 | u64::from(port),
                    hi: (a >> 64) as u64,
                    lo: a as u64,
                }
            }
        }
    }

    fn decode(self) -> (u16, IpAddr) {
        let addr = if self.tag & V6 != 0 {
            IpAddr::V6(Ipv6Addr::from((u128::from(self.hi) << 64) | u128::from(self.lo)))
        } else {
            IpAddr::V4(Ipv4Addr::from(self.lo as u32))
        };
        (self.tag as u16, addr)
    }
}

fn mac_word(mac: [u8; 6]) -> u64 {
    let [a, b, c, d, e, f] = mac;
    u64::from_be_bytes([0, 0, a, b, c, d, e, f])
}

fn mac_bytes(w: u64) -> [u8; 6] {
    let [_, _, a, b, c, d, e, f] = w.to_be_bytes();
    [a, b, c, d, e, f]
}

// wyhash's multiply-fold, as in the flow hash.
const K0: u64 = 0xa076_1d64_78bd_642f;
const K1: u64 = 0xe703_7ed1_a0b4_28db;
const K2: u64 = 0x8ebc_6af0_9c88_c6e3;

#[inline(always)]
fn mum(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

/// One entry under a sequence lock (the writer makes `seq` odd, writes, makes it even). A cache
/// line each, so that a reader setting `used` disturbs no other slot.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Slot {
    seq: AtomicU64,
    tag: AtomicU64,
    hi: AtomicU64,
    lo: AtomicU64,
    mac: AtomicU64,
    /// Non-zero once a reader used the entry since the writer last cleared it.
    used: AtomicU64,
}

impl Slot {
    /// A consistent snapshot of key and MAC.
    #[inline]
    fn read(&self) -> (Key, u64) {
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 0 {
                let key = Key {
                    tag: self.tag.load(Ordering::Relaxed),
                    hi: self.hi.load(Ordering::Relaxed),
                    lo: self.lo.load(Ordering::Relaxed),
                };
                let mac = self.mac.load(Ordering::Relaxed);
                // Orders the loads above before the check: if any of them saw a store the
                // writer made after its odd `seq` store and release fence, this load sees that
                // odd value or a later one.
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == s1 {
                    return (key, mac);
                }
            }
            std::hint::spin_loop();
        }
    }

    /// Writer only: replaces the whole entry.
    fn write(&self, key: Key, mac: u64, used: u64) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        // The odd counter is visible before any of the stores below (see `read`).
        fence(Ordering::Release);
        self.tag.store(key.tag, Ordering::Relaxed);
        self.hi.store(key.hi, Ordering::Relaxed);
        self.lo.store(key.lo, Ordering::Relaxed);
        self.mac.store(mac, Ordering::Relaxed);
        self.used.store(used, Ordering::Relaxed);
        // A reader that loads this even value sees every store above.
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// Writer only: the key, as the writer itself last wrote it.
    fn key(&self) -> Key {
        Key {
            tag: self.tag.load(Ordering::Relaxed),
            hi: self.hi.load(Ordering::Relaxed),
            lo: self.lo.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug)]
struct Table {
    slots: Box<[Slot]>,
    mask: usize,
    /// min(MAX_PROBE, slots).
    probe: usize,
    seed: u64,
    /// Odd while the writer shifts keys back after a removal.
    removals: CachePadded<AtomicU64>,
}

impl Table {
    fn new(slots: usize, seed: u64) -> Self {
        let slots = slots.max(2).next_power_of_two();
        Self {
            slots: (0..slots).map(|_| Slot::default()).collect(),
            mask: slots - 1,
            probe: MAX_PROBE.min(slots),
            seed,
            removals: CachePadded::new(AtomicU64::new(0)),
        }
    }

    #[inline]
    fn home(&self, k: &Key) -> usize {
        let h = mum(k.tag ^ self.seed ^ K0, k.hi ^ K1);
        (mum(h ^ k.lo, K2) as usize) & self.mask
    }

    #[inline]
    fn slot(&self, i: usize) -> Option<&Slot> {
        self.slots.get(i & self.mask)
    }

    /// The slot holding `key` and its MAC, reading at most `probe` slots from `home`.
    /// `after_read(d)` runs after slot `home + d` is read (a no-op outside tests, which use it
    /// to let the writer act between two reads).
    #[inline(always)]
    fn probe(&self, key: &Key, home: usize, after_read: &mut impl FnMut(usize)) -> Option<(&Slot, u64)> {
        for d in 0..self.probe {
            let slot = self.slot(home + d)?;
            let (k, mac) = slot.read();
            after_read(d);
            if k.tag == 0 {
                return None;
            }
            if k == *key {
                return Some((slot, mac));
            }
        }
        None
    }
}

/// The writer's side: the only one that changes entries. Not `Clone`: one writer per cache.
#[derive(Debug)]
pub struct NeighborCacheWriter {
    table: Arc<Table>,
    len: usize,
    capacity: usize,
}

/// A reader's side, one per worker (`Clone`, `Send`, `Sync`). Lookups never lock.
#[derive(Clone, Debug)]
pub struct NeighborCacheReader {
    table: Arc<Table>,
}

impl NeighborCacheWriter {
    /// A cache for up to `capacity` neighbours (at most [`MAX_CAPACITY`]), over twice as many
    /// slots rounded up to a power of two (64 bytes each), and a reader for it.
    pub fn new(capacity: usize) -> (Self, NeighborCacheReader) {
        let seed = std::collections::hash_map::RandomState::new().hash_one(0u64);
        Self::with_seed(capacity, seed)
    }

    /// [`Self::new`] with a chosen hash seed (tests).
    fn with_seed(capacity: usize, seed: u64) -> (Self, NeighborCacheReader) {
        let capacity = capacity.min(MAX_CAPACITY);
        Self::with_slots(capacity, capacity * 2, seed)
    }

    fn with_slots(capacity: usize, slots: usize, seed: u64) -> (Self, NeighborCacheReader) {
        let table = Arc::new(Table::new(slots, seed));
        let capacity = capacity.min(table.mask);
        let reader = NeighborCacheReader {
            table: Arc::clone(&table),
        };
        (
            Self {
                table,
                len: 0,
                capacity,
            },
            reader,
        )
    }

    /// Another reader of this cache.
    pub fn reader(&self) -> NeighborCacheReader {
        NeighborCacheReader {
            table: Arc::clone(&self.table),
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most entries the cache holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The index of `key`'s slot, or of the empty slot that ends its probe run (`Err`), or
    /// `Err(None)` when the run is longer than the probe limit.
    fn find(&self, key: &Key) -> Result<usize, Option<usize>> {
        let t = &*self.table;
        let home = t.home(key);
        for d in 0..t.probe {
            let i = (home + d) & t.mask;
            let k = t.slot(i).ok_or(None)?.key();
            if k.tag == 0 {
                return Err(Some(i));
            }
            if k == *key {
                return Ok(i);
            }
        }
        Err(None)
    }

    /// Sets the MAC of `addr` on `port`, adding the entry if needed (unused). A change of MAC
    /// keeps the used flag.
    pub fn set(&mut self, port: u16, addr: IpAddr, mac: [u8; 6]) -> Result<(), CacheFull> {
        let key = Key::new(port, addr);
        match self.find(&key) {
            Ok(i) => {
                // One word, and the key stays: readers see the old or the new MAC, no lock.
                if let Some(s) = self.table.slot(i) {
                    s.mac.store(mac_word(mac), Ordering::Relaxed);
                }
                Ok(())
            }
            Err(Some(i)) if self.len < self.capacity => {
                let s = self.table.slot(i).ok_or(CacheFull)?;
                s.write(key, mac_word(mac), 0);
                self.len += 1;
                Ok(())
            }
            Err(_) => Err(CacheFull),
        }
    }

    /// Removes the entry; false when there was none.
    pub fn remove(&mut self, port: u16, addr: IpAddr) -> bool {
        let Ok(mut hole) = self.find(&Key::new(port, addr)) else {
            return false;
        };
        let t = &*self.table;
        let r = t.removals.load(Ordering::Relaxed);
        t.removals.store(r.wrapping_add(1), Ordering::Relaxed);
        // Readers that see any slot change below see the odd counter after their fence.
        fence(Ordering::Release);
        // Backward shift: walk the rest of the run; a key whose home is not after the hole
        // (cyclically, up to its own slot) moves into the hole, and its slot becomes the hole.
        // At most half the slots are full, so the run ends at an empty slot.
        let mut j = hole;
        for _ in 0..t.mask {
            j = (j + 1) & t.mask;
            let Some(s) = t.slot(j) else { break };
            let k = s.key();
            if k.tag == 0 {
                break;
            }
            let home = t.home(&k);
            if j.wrapping_sub(home) & t.mask >= j.wrapping_sub(hole) & t.mask {
                let (mac, used) = (s.mac.load(Ordering::Relaxed), s.used.load(Ordering::Relaxed));
                if let Some(h) = t.slot(hole) {
                    h.write(k, mac, used);
                }
                hole = j;
            }
        }
        if let Some(h) = t.slot(hole) {
            h.write(EMPTY, 0, 0);
        }
        // Even again: a reader that loads it sees every move.
        t.removals.store(r.wrapping_add(2), Ordering::Release);
        self.len -= 1;
        true
    }

    /// Whether a reader found the entry since the last call (and clears the flag); false when
    /// there is no entry.
    pub fn take_used(&mut self, port: u16, addr: IpAddr) -> bool {
        match self.find(&Key::new(port, addr)) {
            Ok(i) => self
                .table
                .slot(i)
                .is_some_and(|s| s.used.swap(0, Ordering::Relaxed) != 0),
            Err(_) => false,
        }
    }

    /// The MAC of an entry, as the writer set it (marks nothing).
    pub fn get(&self, port: u16, addr: IpAddr) -> Option<[u8; 6]> {
        let i = self.find(&Key::new(port, addr)).ok()?;
        Some(mac_bytes(self.table.slot(i)?.mac.load(Ordering::Relaxed)))
    }

    /// Calls `f(port, address, mac)` for every entry, in slot order.
    pub fn for_each(&self, mut f: impl FnMut(u16, IpAddr, [u8; 6])) {
        for s in self.table.slots.iter() {
            let k = s.key();
            if k.tag != 0 {
                let (port, addr) = k.decode();
                f(port, addr, mac_bytes(s.mac.load(Ordering::Relaxed)));
            }
        }
    }

    /// The home slot of a key (tests build colliding keys with it).
    #[cfg(test)]
    fn home(&self, port: u16, addr: IpAddr) -> usize {
        self.table.home(&Key::new(port, addr))
    }
}

impl NeighborCacheReader {
    /// The MAC of `addr` on `port`, and marks the entry used. Never blocks on the writer in
    /// the common case (see the module docs for when it retries); a hit is always the MAC the
    /// writer last set for this very key, or the one before if the writer is changing it.
    #[inline]
    pub fn get(&self, port: u16, addr: IpAddr) -> Option<[u8; 6]> {
        self.lookup(port, addr, |_| {})
    }

    /// [`Self::get`], with a hook between slot reads (see [`Table::probe`]).
    #[inline(always)]
    fn lookup(&self, port: u16, addr: IpAddr, mut after_read: impl FnMut(usize)) -> Option<[u8; 6]> {
        let t = &*self.table;
        let key = Key::new(port, addr);
        let home = t.home(&key);
        loop {
            let r1 = t.removals.load(Ordering::Acquire);
            if let Some((slot, mac)) = t.probe(&key, home, &mut after_read) {
                if slot.used.load(Ordering::Relaxed) == 0 {
                    slot.used.store(1, Ordering::Relaxed);
                }
                return Some(mac_bytes(mac));
            }
            // A miss counts only if no removal overlapped the probe (module docs).
            fence(Ordering::Acquire);
            if r1 & 1 == 0 && t.removals.load(Ordering::Relaxed) == r1 {
                return None;
            }
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    use std::collections::HashMap;
    use std::sync::atomic::AtomicBool;

    fn v4(i: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0xc000_0200 + i))
    }

    fn v6(i: u32) -> IpAddr {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i as u16))
    }

    fn mac(i: u32) -> [u8; 6] {
        let [a, b, c, d] = i.to_be_bytes();
        [0x02, 0x11, a, b, c, d]
    }

    #[test]
    fn reader_and_writer_types() {
        fn send_sync_clone<T: Send + Sync + Clone>() {}
        fn send<T: Send>() {}
        send_sync_clone::<NeighborCacheReader>();
        send::<NeighborCacheWriter>();
    }

    #[test]
    fn set_get_update_remove() {
        let (mut w, r) = NeighborCacheWriter::new(16);
        assert_eq!(w.capacity(), 16);
        assert!(w.is_empty());
        assert_eq!(r.get(1, v4(1)), None);
        w.set(1, v4(1), mac(1)).unwrap();
        w.set(2, v4(1), mac(2)).unwrap();
        w.set(1, v6(1), mac(3)).unwrap();
        // IPv4 and the IPv4-mapped IPv6 address are different keys.
        let mapped = IpAddr::V6(Ipv4Addr::from(0xc000_0201u32).to_ipv6_mapped());
        w.set(1, mapped, mac(4)).unwrap();
        assert_eq!(w.len(), 4);
        assert_eq!(r.get(1, v4(1)), Some(mac(1)));
        assert_eq!(r.get(2, v4(1)), Some(mac(2)));
        assert_eq!(r.get(1, v6(1)), Some(mac(3)));
        assert_eq!(r.get(1, mapped), Some(mac(4)));
        assert_eq!(r.get(3, v4(1)), None);

        w.set(1, v4(1), mac(9)).unwrap();
        assert_eq!(w.len(), 4);
        assert_eq!(r.get(1, v4(1)), Some(mac(9)));
        assert_eq!(w.get(1, v4(1)), Some(mac(9)));

        assert!(w.remove(1, v4(1)));
        assert!(!w.remove(1, v4(1)));
        assert_eq!(r.get(1, v4(1)), None);
        assert_eq!(r.get(2, v4(1)), Some(mac(2)));
        assert_eq!(w.len(), 3);

        let mut all = Vec::new();
        w.for_each(|p, a, m| all.push((p, a, m)));
        all.sort();
        let mut want = vec![(2, v4(1), mac(2)), (1, v6(1), mac(3)), (1, mapped, mac(4))];
        want.sort();
        assert_eq!(all, want);
        assert_eq!(w.reader().get(1, v6(1)), Some(mac(3)));
    }

    #[test]
    fn used_flag() {
        let (mut w, r) = NeighborCacheWriter::new(16);
        w.set(0, v4(7), mac(7)).unwrap();
        assert!(!w.take_used(0, v4(7)), "a new entry is unused");
        assert!(
            w.get(0, v4(7)).is_some() && !w.take_used(0, v4(7)),
            "the writer's get marks nothing"
        );
        r.get(0, v4(7));
        r.get(0, v4(7));
        w.set(0, v4(7), mac(8)).unwrap();
        assert!(w.take_used(0, v4(7)), "kept across a MAC change");
        assert!(!w.take_used(0, v4(7)), "cleared by take_used");
        assert!(!w.take_used(0, v4(8)), "no entry");
        r.get(0, v4(7));
        assert!(w.remove(0, v4(7)));
        w.set(0, v4(7), mac(7)).unwrap();
        assert!(!w.take_used(0, v4(7)), "a re-added entry starts unused");
    }

    #[test]
    fn capacity_full() {
        let (mut w, r) = NeighborCacheWriter::new(8);
        for i in 0..8 {
            w.set(0, v4(i), mac(i)).unwrap();
        }
        assert_eq!(w.set(0, v4(8), mac(8)), Err(CacheFull));
        assert_eq!(w.len(), 8);
        // Updating an entry still works when full.
        w.set(0, v4(3), mac(33)).unwrap();
        assert_eq!(r.get(0, v4(3)), Some(mac(33)));
        assert!(w.remove(0, v4(0)));
        w.set(0, v4(8), mac(8)).unwrap();
        for i in 1..9 {
            assert!(r.get(0, v4(i)).is_some(), "{i}");
        }
        let (mut w, _) = NeighborCacheWriter::new(0);
        assert_eq!(w.set(0, v4(0), mac(0)), Err(CacheFull));
    }

    /// Keys whose home is `home`, found by search.
    fn colliding(w: &NeighborCacheWriter, home: usize, n: usize) -> Vec<IpAddr> {
        (0u32..)
            .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)))
            .filter(|&a| w.home(5, a) == home)
            .take(n)
            .collect()
    }

    #[test]
    fn probing_is_bounded() {
        let (mut w, r) = NeighborCacheWriter::with_seed(1024, 42);
        let last = w.table.mask;
        // Home in the last slot: the run wraps around to slot 0.
        let keys = colliding(&w, last, MAX_PROBE + 2);
        for (i, &a) in keys.iter().take(MAX_PROBE).enumerate() {
            w.set(5, a, mac(i as u32)).unwrap();
        }
        assert_eq!(w.set(5, keys[MAX_PROBE], mac(0)), Err(CacheFull));
        assert_eq!(w.len(), MAX_PROBE, "refused with the cache nearly empty");
        assert_eq!(
            r.get(5, keys[MAX_PROBE]),
            None,
            "a miss stops after MAX_PROBE slots"
        );
        for (i, &a) in keys.iter().take(MAX_PROBE).enumerate() {
            assert_eq!(r.get(5, a), Some(mac(i as u32)));
        }
        // Removing the first shifts the run back; the last key then fits.
        assert!(w.remove(5, keys[0]));
        w.set(5, keys[MAX_PROBE], mac(99)).unwrap();
        assert_eq!(r.get(5, keys[MAX_PROBE]), Some(mac(99)));
        for (i, &a) in keys.iter().enumerate().take(MAX_PROBE).skip(1) {
            assert_eq!(r.get(5, a), Some(mac(i as u32)));
        }
        // Another home's key still has room.
        let other = colliding(&w, 100, 1)[0];
        w.set(5, other, mac(1)).unwrap();
    }

    /// The race the table-wide counter exists for, played step by step: a reader looking for K
    /// reads slot h (X, K's predecessor in the run), then the writer removes X, which moves K
    /// from h + 1 back to h, then the reader reads h + 1 (now empty). Without the counter that
    /// is a miss of a key present all along; with it, the reader probes again and finds K.
    #[test]
    fn a_reader_overlapping_a_backward_shift_still_finds_the_key() {
        let (w, r) = NeighborCacheWriter::with_seed(64, 9);
        let home = 10;
        let keys = colliding(&w, home, 2);
        let (x, k) = (keys[0], keys[1]);
        let w = std::cell::RefCell::new(w);
        w.borrow_mut().set(5, x, mac(1)).unwrap();
        w.borrow_mut().set(5, k, mac(2)).unwrap();
        let mut reads = Vec::new();
        let got = r.lookup(5, k, |d| {
            reads.push(d);
            if reads.len() == 1 {
                assert!(w.borrow_mut().remove(5, x));
            }
        });
        assert_eq!(got, Some(mac(2)));
        assert_eq!(
            reads,
            [0, 1, 0],
            "slot h, slot h + 1 (empty: a miss), then again slot h"
        );
        // A removal elsewhere also makes a miss probe again, once.
        let mut reads = 0;
        let got = r.lookup(5, x, |_| {
            reads += 1;
            if reads == 1 {
                let other = colliding(&w.borrow(), 40, 1)[0];
                w.borrow_mut().set(5, other, mac(3)).unwrap();
                assert!(w.borrow_mut().remove(5, other));
            }
        });
        assert_eq!((got, reads), (None, 4), "K then empty, twice");
    }

    /// Random operations against a `HashMap` model, on small tables so that runs are long and
    /// removals shift.
    #[test]
    fn matches_a_hashmap_model() {
        for seed in 0..40u64 {
            let mut rng = SmallRng::seed_from_u64(seed);
            let (capacity, slots) = [(6, 8), (24, 32), (40, 64), (100, 256)][seed as usize % 4];
            let (mut w, r) = NeighborCacheWriter::with_slots(capacity, slots, seed);
            let mut model: HashMap<(u16, IpAddr), ([u8; 6], bool)> = HashMap::new();
            let keys: Vec<(u16, IpAddr)> = (0..capacity as u32 * 2)
                .map(|i| (i as u16 % 3, if i % 2 == 0 { v4(i) } else { v6(i) }))
                .collect();
            for step in 0..4000 {
                let (port, addr) = keys[rng.gen_range(0..keys.len())];
                match rng.gen_range(0..10) {
                    0..=3 => {
                        let m = mac(rng.gen());
                        let res = w.set(port, addr, m);
                        if let Some(e) = model.get_mut(&(port, addr)) {
                            assert_eq!(res, Ok(()));
                            e.0 = m;
                        } else if model.len() < capacity {
                            // Only the probe bound may refuse below capacity.
                            if res.is_ok() {
                                model.insert((port, addr), (m, false));
                            }
                        } else {
                            assert_eq!(res, Err(CacheFull));
                        }
                    }
                    4..=5 => assert_eq!(w.remove(port, addr), model.remove(&(port, addr)).is_some()),
                    6..=7 => {
                        let got = r.get(port, addr);
                        assert_eq!(
                            got,
                            model.get(&(port, addr)).map(|e| e.0),
                            "seed {seed} step {step}"
                        );
                        if let Some(e) = model.get_mut(&(port, addr)) {
                            e.1 = true;
                        }
                    }
                    _ => {
                        let want = model
                            .get_mut(&(port, addr))
                            .is_some_and(|e| std::mem::take(&mut e.1));
                        assert_eq!(w.take_used(port, addr), want);
                    }
                }
                assert_eq!(w.len(), model.len());
            }
            let mut all = HashMap::new();
            w.for_each(|p, a, m| {
                assert!(all.insert((p, a), m).is_none());
            });
            let want: HashMap<_, _> = model.iter().map(|(k, v)| (*k, v.0)).collect();
            assert_eq!(all, want);
            for (k, v) in &model {
                assert_eq!(r.get(k.0, k.1), Some(v.0));
            }
            // Every key within MAX_PROBE of its home.
            for (i, s) in w.table.slots.iter().enumerate() {
                let k = s.key();
                if k.tag != 0 {
                    assert!(i.wrapping_sub(w.table.home(&k)) & w.table.mask < MAX_PROBE);
                }
            }
        }
    }

    /// The writer churns keys (sets, MAC changes, removals) in a small, three-quarters full
    /// table so that removals keep shifting runs, while readers check every hit against the key
    /// it was asked for (each MAC encodes its key) and that keys never removed are always found.
    #[test]
    fn concurrent_readers_never_see_a_wrong_mac_or_miss_a_present_key() {
        const STABLE: u32 = 24;
        const CHURN: u32 = 48;
        let (mut w, r) = NeighborCacheWriter::with_slots(52, 64, 7);
        let key = |i: u32| -> (u16, IpAddr) { ((i % 4) as u16, if i % 3 == 0 { v6(i) } else { v4(i) }) };
        // MAC: the key's index, then a version.
        let mac_of = |i: u32, version: u16| -> [u8; 6] {
            let [a, b] = (i as u16).to_be_bytes();
            let [c, d] = version.to_be_bytes();
            [0x02, 0x22, a, b, c, d]
        };
        for i in 0..STABLE {
            let (p, a) = key(i);
            w.set(p, a, mac_of(i, 0)).unwrap();
        }
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            let readers: Vec<_> = (0..2)
                .map(|t| {
                    let r = r.clone();
                    let done = &done;
                    s.spawn(move || {
                        let mut rng = SmallRng::seed_from_u64(100 + t);
                        let (mut lookups, mut hits) = (0u64, 0u64);
                        while !done.load(Ordering::Relaxed) {
                            // Mostly stable keys: those must always be found.
                            let i = if rng.gen_bool(0.8) {
                                rng.gen_range(0..STABLE)
                            } else {
                                rng.gen_range(STABLE..STABLE + CHURN)
                            };
                            let (p, a) = key(i);
                            match r.get(p, a) {
                                Some(m) => {
                                    assert_eq!(m[2..4], (i as u16).to_be_bytes(), "MAC of another key");
                                    hits += 1;
                                }
                                None => assert!(i >= STABLE, "stable key {i} missed"),
                            }
                            lookups += 1;
                        }
                        (lookups, hits)
                    })
                })
                .collect();
            let mut rng = SmallRng::seed_from_u64(1);
            let mut removed = 0u64;
            let start = std::time::Instant::now();
            let mut version = 0u16;
            while version != 0 || start.elapsed() < std::time::Duration::from_millis(500) {
                version = version.wrapping_add(1);
                let i = rng.gen_range(0..STABLE + CHURN);
                let (p, a) = key(i);
                if i < STABLE || rng.gen_bool(0.5) {
                    let _ = w.set(p, a, mac_of(i, version));
                } else if w.remove(p, a) {
                    removed += 1;
                }
            }
            done.store(true, Ordering::Relaxed);
            assert!(removed > 10_000);
            for h in readers {
                let (lookups, hits) = h.join().unwrap();
                assert!(lookups > 1000 && hits > 100, "{lookups} lookups, {hits} hits");
            }
        });
    }
}
