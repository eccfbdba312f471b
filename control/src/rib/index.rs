//! Prefix to slot: one open-addressing hash table per family, plus the prefix lengths in use.
//!
//! Why not `std`'s `HashMap`: a full table arrives in the sender's (random) order, so every
//! received prefix costs a probe that misses the cache and the TLB, and that probe was most
//! of the receive path's time (`perf` on `bgp_load`: 60%). An UPDATE names hundreds of prefixes
//! at once, so the caller knows the next keys in advance; this table exposes where a key's
//! probe starts ([`PrefixIndex::prefetch`]) so that the misses of the next few prefixes overlap
//! with the work on the current one. `HashMap` has no way to do that.
//!
//! The table is plain linear probing over 16-byte (IPv4) or 24-byte (IPv6) buckets with a
//! keyed hash (foldhash, seeded per process: prefixes come from peers, who must not choose
//! collisions), at most 3/4 full, with backward-shift deletion so that no tombstones build up
//! under churn.

use std::hash::BuildHasher;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// A bucket's value when the bucket is empty (slots are smaller: they index a `Vec`).
const EMPTY: u32 = u32::MAX;
/// Buckets of a new table; a power of two.
const MIN_BUCKETS: usize = 16;

/// A family's key packed for hashing and comparison.
trait PackedKey: Copy + Eq + std::hash::Hash + Default {}

/// An IPv4 prefix: address in the high 32 bits, length in the low 8.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct V4Key(u64);

impl PackedKey for V4Key {}

impl V4Key {
    fn of(n: &Ipv4Net) -> Self {
        Self((u64::from(u32::from(n.addr())) << 8) | u64::from(n.prefix_len()))
    }
}

/// An IPv6 prefix: the address as two words (8-byte alignment keeps a bucket at 24 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct V6Key {
    hi: u64,
    lo: u64,
    len: u8,
}

impl PackedKey for V6Key {}

impl V6Key {
    fn of(n: &Ipv6Net) -> Self {
        let a = u128::from(n.addr());
        Self {
            hi: (a >> 64) as u64,
            lo: a as u64,
            len: n.prefix_len(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Bucket<K> {
    key: K,
    value: u32,
}

/// Linear-probing map from a packed key to a slot number.
#[derive(Debug)]
struct OpenMap<K> {
    buckets: Box<[Bucket<K>]>,
    len: usize,
    /// `64 - log2(buckets)`: a key's home bucket is the hash's top bits.
    shift: u32,
    hasher: foldhash::fast::RandomState,
}

impl<K: PackedKey> Default for OpenMap<K> {
    fn default() -> Self {
        Self::with_buckets(MIN_BUCKETS)
    }
}

impl<K: PackedKey> OpenMap<K> {
    fn with_buckets(n: usize) -> Self {
        debug_assert!(n.is_power_of_two() && n >= MIN_BUCKETS);
        Self {
            buckets: vec![
                Bucket {
                    key: K::default(),
                    value: EMPTY
                };
                n
            ]
            .into_boxed_slice(),
            len: 0,
            shift: 64 - n.trailing_zeros(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn mask(&self) -> usize {
        self.buckets.len() - 1
    }

    fn home(&self, key: &K) -> usize {
        (self.hasher.hash_one(key) >> self.shift) as usize
    }

    /// The bucket holding `key`, or the empty bucket ending its probe sequence.
    fn find(&self, key: &K) -> (usize, bool) {
        let mask = self.mask();
        let mut i = self.home(key);
        loop {
            let b = &self.buckets[i];
            if b.value == EMPTY {
                return (i, false);
            }
            if b.key == *key {
                return (i, true);
            }
            i = (i + 1) & mask;
        }
    }

    fn get(&self, key: &K) -> Option<u32> {
        match self.find(key) {
            (i, true) => Some(self.buckets[i].value),
            _ => None,
        }
    }

    /// The value of `key`, inserting `new()` first if absent; whether it was inserted.
    fn get_or_insert_with(&mut self, key: K, new: impl FnOnce() -> u32) -> (u32, bool) {
        let (mut i, found) = self.find(&key);
        if found {
            return (self.buckets[i].value, false);
        }
        if (self.len + 1) * 4 > self.buckets.len() * 3 {
            self.grow();
            i = self.find(&key).0;
        }
        let value = new();
        debug_assert_ne!(value, EMPTY);
        self.buckets[i] = Bucket { key, value };
        self.len += 1;
        (value, true)
    }

    fn remove(&mut self, key: &K) -> Option<u32> {
        let (mut hole, found) = self.find(key);
        if !found {
            return None;
        }
        let value = self.buckets[hole].value;
        self.len -= 1;
        // Backward shift: pull later members of the probe run into the hole when the hole
        // lies on their way from their home bucket, so every run stays unbroken.
        let mask = self.mask();
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let b = self.buckets[j];
            if b.value == EMPTY {
                break;
            }
            let home = self.home(&b.key);
            // Distance from home to j, and from home to the hole, around the ring.
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.buckets[hole] = b;
                hole = j;
            }
        }
        self.buckets[hole].value = EMPTY;
        Some(value)
    }

    fn grow(&mut self) {
        let mut bigger = Self::with_buckets(self.buckets.len() * 2);
        bigger.hasher = self.hasher.clone();
        for b in self.buckets.iter().filter(|b| b.value != EMPTY) {
            let i = bigger.find(&b.key).0;
            bigger.buckets[i] = *b;
        }
        bigger.len = self.len;
        *self = bigger;
    }

    /// Asks the CPU to start loading the bucket where `key`'s probe starts.
    fn prefetch(&self, key: &K) {
        prefetch(&self.buckets[self.home(key)]);
    }

    fn values(&self) -> impl Iterator<Item = u32> + '_ {
        self.buckets.iter().filter(|b| b.value != EMPTY).map(|b| b.value)
    }
}

/// A hint to bring `r`'s cache line closer; no effect on results.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(unsafe_code)] // The control process's only `unsafe`: an instruction hint, reason below.
fn prefetch<T>(r: &T) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    // SAFETY: `_mm_prefetch` is `unsafe` only because it needs SSE, which every x86_64 CPU has
    // (it is part of the target's baseline). A prefetch reads nothing into the program and never
    // faults, and here the address comes from a live reference anyway.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(r).cast::<i8>()) }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn prefetch<T>(_: &T) {}

/// Prefix to slot, per family, with how many prefixes each length has so that a longest-
/// prefix match probes only the lengths present (about 25 for IPv4, 40 for IPv6 on the real
/// table), longest first.
#[derive(Debug, Default)]
pub(super) struct PrefixIndex {
    v4: OpenMap<V4Key>,
    v6: OpenMap<V6Key>,
    pub(super) lens_v4: LengthCounts<33>,
    pub(super) lens_v6: LengthCounts<129>,
}

/// Prefixes per length, and a bitmap of the lengths in use.
#[derive(Debug)]
pub(super) struct LengthCounts<const N: usize> {
    count: [u32; N],
    /// Bit `l` set: some prefix has length `l`.
    used: [u64; 3],
}

impl<const N: usize> Default for LengthCounts<N> {
    fn default() -> Self {
        Self {
            count: [0; N],
            used: [0; 3],
        }
    }
}

impl<const N: usize> LengthCounts<N> {
    fn add(&mut self, len: u8) {
        let l = usize::from(len);
        self.count[l] += 1;
        self.used[l / 64] |= 1 << (l % 64);
    }

    fn sub(&mut self, len: u8) {
        let l = usize::from(len);
        self.count[l] -= 1;
        if self.count[l] == 0 {
            self.used[l / 64] &= !(1 << (l % 64));
        }
    }

    /// The lengths in use up to `max`, longest first.
    pub(super) fn down_from(&self, max: u8) -> impl Iterator<Item = u8> + '_ {
        (0..=max)
            .rev()
            .filter(|&l| self.used[usize::from(l) / 64] & (1 << (l % 64)) != 0)
    }
}

impl PrefixIndex {
    pub(super) fn get(&self, prefix: &IpNet) -> Option<u32> {
        match prefix {
            IpNet::V4(n) => self.v4.get(&V4Key::of(n)),
            IpNet::V6(n) => self.v6.get(&V6Key::of(n)),
        }
    }

    pub(super) fn get_or_insert_with(&mut self, prefix: IpNet, new: impl FnOnce() -> u32) -> u32 {
        match prefix {
            IpNet::V4(n) => {
                let (v, inserted) = self.v4.get_or_insert_with(V4Key::of(&n), new);
                if inserted {
                    self.lens_v4.add(n.prefix_len());
                }
                v
            }
            IpNet::V6(n) => {
                let (v, inserted) = self.v6.get_or_insert_with(V6Key::of(&n), new);
                if inserted {
                    self.lens_v6.add(n.prefix_len());
                }
                v
            }
        }
    }

    pub(super) fn remove(&mut self, prefix: &IpNet) {
        match prefix {
            IpNet::V4(n) => {
                if self.v4.remove(&V4Key::of(n)).is_some() {
                    self.lens_v4.sub(n.prefix_len());
                }
            }
            IpNet::V6(n) => {
                if self.v6.remove(&V6Key::of(n)).is_some() {
                    self.lens_v6.sub(n.prefix_len());
                }
            }
        }
    }

    /// Starts loading where the probe for `prefix` begins, for a lookup or insert soon after.
    pub(super) fn prefetch(&self, prefix: &IpNet) {
        match prefix {
            IpNet::V4(n) => self.v4.prefetch(&V4Key::of(n)),
            IpNet::V6(n) => self.v6.prefetch(&V6Key::of(n)),
        }
    }

    /// The prefixes covering `addr` and their slots, longest first.
    pub(super) fn covering(&self, addr: IpAddr) -> Box<dyn Iterator<Item = (IpNet, u32)> + '_> {
        match addr {
            IpAddr::V4(a) => Box::new(self.lens_v4.down_from(32).filter_map(move |l| {
                let n = Ipv4Net::new(a, l).ok()?.trunc();
                self.v4.get(&V4Key::of(&n)).map(|s| (IpNet::V4(n), s))
            })),
            IpAddr::V6(a) => Box::new(self.lens_v6.down_from(128).filter_map(move |l| {
                let n = Ipv6Net::new(a, l).ok()?.trunc();
                self.v6.get(&V6Key::of(&n)).map(|s| (IpNet::V6(n), s))
            })),
        }
    }

    /// Every slot in use, in no particular order.
    pub(super) fn slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.v4.values().chain(self.v6.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(a: u32, len: u8) -> IpNet {
        IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), len).unwrap().trunc())
    }

    fn v6(a: u128, len: u8) -> IpNet {
        IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), len).unwrap().trunc())
    }

    #[test]
    fn keys_of_different_lengths_or_families_differ() {
        let mut idx = PrefixIndex::default();
        let nets = [
            v4(0, 0),
            v4(0, 1),
            v4(0, 32),
            v6(0, 0),
            v6(0, 128),
            v4(0x0a00_0000, 8),
        ];
        for (i, n) in nets.iter().enumerate() {
            assert_eq!(idx.get_or_insert_with(*n, || i as u32), i as u32);
        }
        for (i, n) in nets.iter().enumerate() {
            assert_eq!(idx.get(n), Some(i as u32), "{n}");
        }
        assert_eq!(idx.v4.len + idx.v6.len, nets.len());
    }

    #[test]
    fn growth_keeps_every_key_and_the_table_at_most_three_quarters_full() {
        let mut m: OpenMap<V4Key> = OpenMap::default();
        for i in 0..100_000u32 {
            let k = V4Key::of(&Ipv4Net::new(Ipv4Addr::from(i << 8), 24).unwrap());
            assert_eq!(m.get_or_insert_with(k, || i), (i, true));
            assert!(m.len * 4 <= m.buckets.len() * 3);
        }
        assert_eq!(m.buckets.len(), 1 << 18);
        for i in 0..100_000u32 {
            let k = V4Key::of(&Ipv4Net::new(Ipv4Addr::from(i << 8), 24).unwrap());
            assert_eq!(m.get(&k), Some(i));
        }
    }

    /// Every key hashes to bucket 0 of a 16-bucket table: the worst case for backward-shift
    /// deletion, which must keep every other key reachable, wrapping around the end.
    #[test]
    fn deletion_keeps_colliding_runs_reachable() {
        let mut m: OpenMap<V4Key> = OpenMap::default();
        // Keys whose home is the last bucket, so that their run wraps to the front.
        let keys: Vec<V4Key> = (0..u64::MAX)
            .map(V4Key)
            .filter(|k| m.home(k) == MIN_BUCKETS - 1)
            .take(8)
            .collect();
        let others: Vec<V4Key> = (1_000_000..u64::MAX)
            .map(V4Key)
            .filter(|k| m.home(k) == 1)
            .take(3)
            .collect();
        for (i, k) in keys.iter().chain(&others).enumerate() {
            m.get_or_insert_with(*k, || i as u32);
        }
        assert_eq!(m.buckets.len(), MIN_BUCKETS);
        for (gone, k) in keys.iter().enumerate().step_by(2) {
            assert_eq!(m.remove(k), Some(gone as u32));
            assert_eq!(m.remove(k), None);
            for (i, other) in keys.iter().chain(&others).enumerate() {
                let expect = (i >= keys.len() || i > gone || i % 2 == 1).then_some(i as u32);
                assert_eq!(m.get(other), expect, "after removing key {gone}: key {i}");
            }
        }
    }

    proptest! {
        /// Any sequence of inserts and removes agrees with `HashMap`, including lengths in use.
        #[test]
        fn agrees_with_a_hash_map(ops in proptest::collection::vec(
            (any::<bool>(), 0u32..64, 0u8..=32, any::<bool>()), 1..600))
        {
            let mut idx = PrefixIndex::default();
            let mut model: HashMap<IpNet, u32> = HashMap::new();
            let mut next = 0u32;
            for (insert, a, len, six) in ops {
                // Few distinct addresses, so that keys repeat and runs collide.
                let n = if six { v6(u128::from(a) << 100, len * 4) } else { v4(a << 26, len) };
                if insert {
                    let want = *model.entry(n).or_insert(next);
                    let got = idx.get_or_insert_with(n, || next);
                    prop_assert_eq!(got, want);
                    next += 1;
                } else {
                    model.remove(&n);
                    idx.remove(&n);
                }
                prop_assert_eq!(idx.v4.len + idx.v6.len, model.len());
            }
            for (n, v) in &model {
                prop_assert_eq!(idx.get(n), Some(*v));
            }
            let mut slots: Vec<u32> = idx.slots().collect();
            let mut want: Vec<u32> = model.values().copied().collect();
            slots.sort_unstable();
            want.sort_unstable();
            prop_assert_eq!(slots, want);
            let lens: Vec<u8> = idx.lens_v4.down_from(32).collect();
            let mut want_lens: Vec<u8> =
                model.keys().filter(|n| matches!(n, IpNet::V4(_))).map(IpNet::prefix_len).collect();
            want_lens.sort_unstable_by(|a, b| b.cmp(a));
            want_lens.dedup();
            prop_assert_eq!(lens, want_lens);
        }
    }
}
