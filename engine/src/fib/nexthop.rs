//! Next-hop indirection: a route's leaf names a *group*; a group spreads flows over *buckets*,
//! each naming an *adjacency* (egress port, MAC addresses, MTU). A neighbour changing its MAC or
//! a port going down rewrites one adjacency; a group losing a member rewrites one group entry.
//! Neither touches the trie.

use super::alloc::{BlockAllocator, MAX_BLOCK};
use super::published::Published;
use super::{AdjacencyId, FibError, GroupId};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// Most buckets (and so members) in one group.
pub const MAX_BUCKETS: usize = MAX_BLOCK;

/// What the data plane does with packets using an adjacency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AdjacencyKind {
    /// Rewrite MACs and send on `port`.
    Forward = 0,
    /// Discard silently (a blackhole route).
    Blackhole = 1,
    /// Discard and answer ICMP destination unreachable.
    Unreachable = 2,
    /// Hand to the local stack (the router's own addresses).
    Local = 3,
}

impl AdjacencyKind {
    fn from_bits(b: u64) -> Self {
        match b & 3 {
            0 => Self::Forward,
            1 => Self::Blackhole,
            2 => Self::Unreachable,
            _ => Self::Local,
        }
    }
}

/// Where and how to send a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Adjacency {
    pub kind: AdjacencyKind,
    /// Egress port number.
    pub port: u16,
    /// Egress MTU (layer 3 bytes).
    pub mtu: u16,
    /// The neighbour to resolve; `None` on a connected route, where the packet's destination is
    /// the neighbour.
    pub next_hop: Option<IpAddr>,
    /// The neighbour's MAC once resolved.
    pub dst_mac: Option<[u8; 6]>,
    /// The egress port's MAC.
    pub src_mac: [u8; 6],
}

impl Adjacency {
    /// A forwarding adjacency.
    pub fn forward(port: u16, mtu: u16, next_hop: Option<IpAddr>, src_mac: [u8; 6]) -> Self {
        Self {
            kind: AdjacencyKind::Forward,
            port,
            mtu,
            next_hop,
            dst_mac: None,
            src_mac,
        }
    }

    /// A discard adjacency of the given kind.
    pub fn discard(kind: AdjacencyKind) -> Self {
        Self {
            kind,
            port: 0,
            mtu: 0,
            next_hop: None,
            dst_mac: None,
            src_mac: [0; 6],
        }
    }

    const VALID: u64 = 1 << 40;
    const RESOLVED: u64 = 1 << 41;
    const NH_V4: u64 = 1 << 42;
    const NH_V6: u64 = 1 << 43;

    fn encode(&self) -> [u64; 5] {
        let mut w0 =
            u64::from(self.port) | (u64::from(self.mtu) << 16) | ((self.kind as u64) << 32) | Self::VALID;
        let mac = |m: [u8; 6]| m.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b));
        let dst = match self.dst_mac {
            Some(m) => {
                w0 |= Self::RESOLVED;
                mac(m)
            }
            None => 0,
        };
        let nh: u128 = match self.next_hop {
            Some(IpAddr::V4(a)) => {
                w0 |= Self::NH_V4;
                u128::from(u32::from(a))
            }
            Some(IpAddr::V6(a)) => {
                w0 |= Self::NH_V6;
                u128::from(a)
            }
            None => 0,
        };
        [w0, dst, mac(self.src_mac), (nh >> 64) as u64, nh as u64]
    }

    fn decode(w: [u64; 5]) -> Option<Self> {
        let [w0, dst, src, hi, lo] = w;
        if w0 & Self::VALID == 0 {
            return None;
        }
        let mac = |v: u64| {
            let b = v.to_be_bytes();
            [b[2], b[3], b[4], b[5], b[6], b[7]]
        };
        let nh = (u128::from(hi) << 64) | u128::from(lo);
        Some(Self {
            kind: AdjacencyKind::from_bits(w0 >> 32),
            port: w0 as u16,
            mtu: (w0 >> 16) as u16,
            next_hop: if w0 & Self::NH_V4 != 0 {
                Some(IpAddr::V4(Ipv4Addr::from(nh as u32)))
            } else if w0 & Self::NH_V6 != 0 {
                Some(IpAddr::V6(Ipv6Addr::from(nh)))
            } else {
                None
            },
            dst_mac: (w0 & Self::RESOLVED != 0).then(|| mac(dst)),
            src_mac: mac(src),
        })
    }
}

/// One adjacency under a sequence lock: the writer makes the counter odd, writes, makes it even;
/// a reader retries if the counter was odd or moved. Cache-line sized so neighbours don't share.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct AdjSlot {
    seq: AtomicU64,
    words: [AtomicU64; 5],
}

impl AdjSlot {
    pub fn read(&self) -> Option<Adjacency> {
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 0 {
                let w = self.words.each_ref().map(|a| a.load(Ordering::Relaxed));
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == s1 {
                    return Adjacency::decode(w);
                }
            }
            std::hint::spin_loop();
        }
    }

    fn write(&self, w: [u64; 5]) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        for (a, v) in self.words.iter().zip(w) {
            a.store(v, Ordering::Relaxed);
        }
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }
}

/// A group member as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NextHop {
    pub adjacency: AdjacencyId,
    /// Relative share of flows, 1 or more.
    pub weight: u32,
}

/// Group entries (bucket block start in the low half, bucket count above; 0 = undefined) and
/// the bucket pool.
#[derive(Debug)]
pub struct GroupTables {
    entries: Box<[AtomicU64]>,
    buckets: Box<[AtomicU32]>,
}

impl GroupTables {
    /// The adjacency that flow `hash` uses in `group`.
    #[inline]
    pub fn select(&self, group: GroupId, hash: u32) -> Option<AdjacencyId> {
        let e = self.entries.get(group.get() as usize)?.load(Ordering::Acquire);
        if e == 0 {
            return None;
        }
        let count = (e >> 32) & 0xff;
        // Lemire's multiply-shift maps the hash onto 0..count without a division.
        let i = (e as u32 as u64) + ((u64::from(hash) * count) >> 32);
        Some(AdjacencyId(self.buckets.get(i as usize)?.load(Ordering::Relaxed)))
    }

    pub fn bytes(&self) -> usize {
        self.entries.len() * 8 + self.buckets.len() * 4
    }
}

/// Spreads members over at most [`MAX_BUCKETS`] buckets in proportion to their weights
/// (largest-remainder rounding, every member keeps at least one bucket).
pub fn expand_buckets(members: &[NextHop]) -> Result<Vec<AdjacencyId>, FibError> {
    if members.is_empty() || members.len() > MAX_BUCKETS {
        return Err(FibError::GroupSize {
            members: members.len(),
            max: MAX_BUCKETS,
        });
    }
    if let Some(m) = members.iter().find(|m| m.weight == 0) {
        return Err(FibError::ZeroWeight(m.adjacency));
    }
    let total: u64 = members.iter().map(|m| u64::from(m.weight)).sum();
    let shares: Vec<u64> = if total <= MAX_BUCKETS as u64 {
        members.iter().map(|m| u64::from(m.weight)).collect()
    } else {
        let n = MAX_BUCKETS as u64;
        let mut s: Vec<u64> = members
            .iter()
            .map(|m| (u64::from(m.weight) * n / total).max(1))
            .collect();
        let mut used: u64 = s.iter().sum();
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse((u64::from(members[i].weight) * n) % total));
        let mut k = 0;
        while used < n {
            s[order[k % order.len()]] += 1;
            used += 1;
            k += 1;
        }
        while used > n {
            // Rounding members up to one bucket overshot: take from the largest.
            if let Some(i) = (0..s.len()).max_by_key(|&i| s[i]) {
                s[i] -= 1;
            }
            used -= 1;
        }
        s
    };
    Ok(members
        .iter()
        .zip(shares)
        .flat_map(|(m, n)| std::iter::repeat_n(m.adjacency, n as usize))
        .collect())
}

/// Writer side of the group table.
#[derive(Debug)]
pub struct GroupWriter {
    cell: Arc<Published<GroupTables>>,
    tables: Arc<GroupTables>,
    alloc: BlockAllocator,
    defs: Vec<Option<Vec<NextHop>>>,
    /// Routes pointing at each group.
    pub(super) route_refs: Vec<u32>,
}

impl GroupWriter {
    pub fn new(max_groups: u32) -> (Self, Arc<Published<GroupTables>>) {
        let n = max_groups as usize + 1;
        let tables = Arc::new(GroupTables {
            entries: (0..n).map(|_| AtomicU64::new(0)).collect(),
            buckets: (0..1024).map(|_| AtomicU32::new(0)).collect(),
        });
        let cell = Arc::new(Published::new(GroupTables {
            entries: Box::new([]),
            buckets: Box::new([]),
        }));
        cell.publish(tables.clone());
        let w = Self {
            cell: cell.clone(),
            tables,
            alloc: BlockAllocator::new(0),
            defs: vec![None; n],
            route_refs: vec![0; n],
        };
        (w, cell)
    }

    pub fn get(&self, id: GroupId) -> Option<&[NextHop]> {
        self.defs.get(id.get() as usize)?.as_deref()
    }

    pub fn exists(&self, id: GroupId) -> bool {
        self.get(id).is_some()
    }

    pub fn check_id(&self, id: GroupId) -> Result<(), FibError> {
        if (id.get() as usize) < self.defs.len() {
            Ok(())
        } else {
            Err(FibError::GroupIdOutOfRange {
                id: id.get(),
                max: self.defs.len() as u32 - 1,
            })
        }
    }

    /// Defines or redefines `id`; returns the previous members. The caller checked adjacencies.
    pub fn set(
        &mut self,
        id: GroupId,
        members: &[NextHop],
        epoch: u64,
    ) -> Result<Option<Vec<NextHop>>, FibError> {
        self.check_id(id)?;
        let buckets = expand_buckets(members)?;
        let start = self.alloc.alloc(buckets.len());
        self.ensure_capacity();
        for (i, a) in buckets.iter().enumerate() {
            if let Some(b) = self.tables.buckets.get(start as usize + i) {
                b.store(a.0, Ordering::Relaxed);
            }
        }
        let word = u64::from(start) | ((buckets.len() as u64) << 32);
        if let Some(e) = self.tables.entries.get(id.get() as usize) {
            let old = e.swap(word, Ordering::AcqRel);
            if old != 0 {
                self.alloc
                    .retire(old as u32, ((old >> 32) & 0xff) as usize, epoch);
            }
        }
        let prev = self
            .defs
            .get_mut(id.get() as usize)
            .and_then(|d| d.replace(members.to_vec()));
        Ok(prev)
    }

    /// Removes `id`; returns its members. The caller checked that no route uses it.
    pub fn remove(&mut self, id: GroupId, epoch: u64) -> Option<Vec<NextHop>> {
        let prev = self.defs.get_mut(id.get() as usize)?.take()?;
        if let Some(e) = self.tables.entries.get(id.get() as usize) {
            let old = e.swap(0, Ordering::AcqRel);
            if old != 0 {
                self.alloc
                    .retire(old as u32, ((old >> 32) & 0xff) as usize, epoch);
            }
        }
        Some(prev)
    }

    fn ensure_capacity(&mut self) {
        let need = self.alloc.high_water() as usize;
        if need <= self.tables.buckets.len() {
            return;
        }
        let cap = need.max(self.tables.buckets.len() * 2);
        let copy = |s: &[AtomicU32]| -> Vec<AtomicU32> {
            s.iter()
                .map(|a| AtomicU32::new(a.load(Ordering::Relaxed)))
                .collect()
        };
        let mut buckets = copy(&self.tables.buckets);
        buckets.resize_with(cap, || AtomicU32::new(0));
        let next = Arc::new(GroupTables {
            entries: self
                .tables
                .entries
                .iter()
                .map(|a| AtomicU64::new(a.load(Ordering::Relaxed)))
                .collect(),
            buckets: buckets.into_boxed_slice(),
        });
        self.cell.publish(next.clone());
        self.tables = next;
    }

    pub fn reclaim(&mut self, safe_epoch: u64) {
        self.alloc.reclaim(safe_epoch);
    }

    pub fn tables(&self) -> &GroupTables {
        &self.tables
    }

    pub fn bytes(&self) -> usize {
        self.tables.bytes()
    }
}

/// The adjacency array: fixed size, updated in place under per-slot sequence locks.
pub fn new_adjacencies(n: u32) -> Box<[AdjSlot]> {
    (0..n).map(|_| AdjSlot::default()).collect()
}

/// Writes (or clears, with `None`) one adjacency slot.
pub fn write_adjacency(slot: &AdjSlot, adj: Option<&Adjacency>) {
    slot.write(adj.map_or([0; 5], Adjacency::encode));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nh(a: u32, w: u32) -> NextHop {
        NextHop {
            adjacency: AdjacencyId(a),
            weight: w,
        }
    }

    #[test]
    fn adjacency_round_trips_through_the_slot() {
        let slot = AdjSlot::default();
        assert_eq!(slot.read(), None);
        let mut a = Adjacency::forward(3, 1500, Some("192.0.2.1".parse().unwrap()), [2, 0, 0, 0, 0, 1]);
        write_adjacency(&slot, Some(&a));
        assert_eq!(slot.read(), Some(a));
        a.dst_mac = Some([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
        a.next_hop = Some("2001:db8::1".parse().unwrap());
        write_adjacency(&slot, Some(&a));
        assert_eq!(slot.read(), Some(a));
        let b = Adjacency::discard(AdjacencyKind::Unreachable);
        write_adjacency(&slot, Some(&b));
        assert_eq!(slot.read(), Some(b));
        write_adjacency(&slot, None);
        assert_eq!(slot.read(), None);
    }

    #[test]
    fn buckets_follow_weights() {
        let b = expand_buckets(&[nh(1, 1), nh(2, 3)]).unwrap();
        assert_eq!(b.iter().filter(|a| a.0 == 1).count(), 1);
        assert_eq!(b.iter().filter(|a| a.0 == 2).count(), 3);
        // Large weights are scaled onto 64 buckets, keeping proportions and every member.
        let b = expand_buckets(&[nh(1, 1000), nh(2, 3000), nh(3, 1)]).unwrap();
        assert_eq!(b.len(), 64);
        let c = |x| b.iter().filter(|a| a.0 == x).count();
        assert!(c(3) >= 1);
        assert!((15..=16).contains(&c(1)), "{}", c(1));
        assert!((47..=48).contains(&c(2)), "{}", c(2));
        assert!(matches!(expand_buckets(&[]), Err(FibError::GroupSize { .. })));
        assert!(matches!(
            expand_buckets(&[nh(1, 0)]),
            Err(FibError::ZeroWeight(_))
        ));
        let many: Vec<_> = (0..65).map(|i| nh(i, 1)).collect();
        assert!(matches!(expand_buckets(&many), Err(FibError::GroupSize { .. })));
    }

    #[test]
    fn select_spreads_hashes_over_members() {
        let (mut w, _cell) = GroupWriter::new(16);
        let g = GroupId::new(5).unwrap();
        w.set(g, &[nh(7, 1), nh(9, 1)], 1).unwrap();
        let t = w.tables();
        let mut seen = [0usize; 2];
        for h in 0..1000u32 {
            let a = t.select(g, h.wrapping_mul(0x9e37_79b9)).unwrap();
            seen[usize::from(a.0 == 9)] += 1;
        }
        assert!(seen[0] > 400 && seen[1] > 400, "{seen:?}");
        assert_eq!(t.select(GroupId::new(6).unwrap(), 1), None);
        assert!(w.set(GroupId::new(17).unwrap(), &[nh(1, 1)], 1).is_err());
    }
}
