//! The Poptrie (Asai and Ohara, SIGCOMM 2015): the live tables the data plane reads and the
//! lookups over them. The writer, which knows every route and rebuilds only what an update
//! changes, is in `writer`.
//!
//! Live layout, per family:
//! - `direct`: `2^DIRECT_BITS` entries. Bit 31 set: a leaf, the low bits are the next-hop group
//!   (0 = no route). Bit 30 set: the start of a compact root (below). Neither: the index of a
//!   node in `nodes`. (Indices stay below 2^30: that many nodes would take 24 GiB.)
//! - `nodes`: records of two 64-bit bitmaps and two bases. Slot `v` (the next 6 key bits) of a
//!   node is a child when `vector` bit `v` is set, at `nodes[base1 + popcount(vector & ones(v)) - 1]`;
//!   otherwise a leaf at `leaves[base0 + popcount(leafvec & ones(v)) - 1]`. `leafvec` marks only
//!   where the leaf value changes (Poptrie's leaf compression), so runs of equal leaves share one
//!   entry.
//! - `leaves`: next-hop group numbers, never pointers.
//! - `compact`: a root with no node children (almost every IPv4 root: the /19 to /24 routes of
//!   one /18) stored in one block of 64-bit words, its leaf bitmap then its leaves packed four
//!   to a word, named by a direct entry with bit 30 set. It takes 8 to 136 bytes instead of a
//!   24-byte record plus a leaf block elsewhere, and a lookup reads one block after the direct
//!   entry instead of a node and then a leaf.
//!
//! Sibling nodes and a node's leaves are contiguous blocks. An update never edits a reachable
//! block: it writes changed nodes and leaves into fresh blocks, copies the path of ancestors up
//! to the direct array, and publishes with one release store into the direct entry. The unlinked
//! blocks are retired and reused only after every reader has passed a quiescent point (see
//! `qsbr`). All cells are atomics, so readers need no `unsafe` and no locks.

mod writer;

pub use writer::TrieWriter;

use super::key::{Key, STRIDE};
use super::GroupId;
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};

/// Direct-array entry flag: the entry is a leaf, not a node index.
pub const LEAF_FLAG: u32 = 1 << 31;
/// Direct-array entry flag: the entry is the start of a compact root in `compact`.
pub const COMPACT_FLAG: u32 = 1 << 30;
/// Leaf value meaning "no route".
pub const NO_ROUTE: u32 = 0;

const SLOTS: usize = 1 << STRIDE;

/// Mask of slots `0..=v`.
#[inline(always)]
fn upto(v: usize) -> u64 {
    u64::MAX >> (63 - v)
}

/// One node as stored in the live array.
#[derive(Debug, Default)]
pub struct LiveNode {
    vector: AtomicU64,
    leafvec: AtomicU64,
    /// `base0` (leaves) in the low half, `base1` (children) in the high half.
    bases: AtomicU64,
}

/// A node's fields as plain values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeRecord {
    vector: u64,
    leafvec: u64,
    base0: u32,
    base1: u32,
}

impl LiveNode {
    fn load(&self) -> NodeRecord {
        let bases = self.bases.load(Ordering::Relaxed);
        NodeRecord {
            vector: self.vector.load(Ordering::Relaxed),
            leafvec: self.leafvec.load(Ordering::Relaxed),
            base0: bases as u32,
            base1: (bases >> 32) as u32,
        }
    }

    fn store(&self, r: NodeRecord) {
        self.vector.store(r.vector, Ordering::Relaxed);
        self.leafvec.store(r.leafvec, Ordering::Relaxed);
        self.bases
            .store(u64::from(r.base0) | (u64::from(r.base1) << 32), Ordering::Relaxed);
    }
}

/// The arrays of one family. Their sizes are fixed; the writer replaces the whole set (copying)
/// when it needs more room, and readers switch at their next view.
#[derive(Debug)]
pub struct TrieTables {
    direct: Box<[AtomicU32]>,
    nodes: Box<[LiveNode]>,
    /// Group numbers; 16 bits as in Poptrie, which halves the largest array.
    leaves: Box<[AtomicU16]>,
    /// Compact roots: `[leafvec, leaves 0-3, leaves 4-7, ...]`.
    compact: Box<[AtomicU64]>,
}

/// Words of a compact root with `n` leaves.
#[inline(always)]
fn compact_words(n: usize) -> usize {
    1 + n.div_ceil(4)
}

/// Where one lookup step leads.
enum Step {
    Child(u32),
    Leaf(u32),
}

/// Lookups interleaved level by level in a batched lookup of a deep family (IPv6).
const LANES: usize = 8;

impl TrieTables {
    fn new(direct_bits: u32, nodes: usize, leaves: usize) -> Self {
        Self {
            direct: (0..1usize << direct_bits)
                .map(|_| AtomicU32::new(LEAF_FLAG | NO_ROUTE))
                .collect(),
            nodes: (0..nodes).map(|_| LiveNode::default()).collect(),
            leaves: (0..leaves).map(|_| AtomicU16::new(0)).collect(),
            compact: (0..leaves).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// A copy with room for at least `nodes` nodes, `leaves` leaves and `compact` words.
    fn grown(&self, nodes: usize, leaves: usize, compact: usize) -> Self {
        let mut cv: Vec<AtomicU64> = self
            .compact
            .iter()
            .map(|a| AtomicU64::new(a.load(Ordering::Relaxed)))
            .collect();
        cv.resize_with(compact.max(self.compact.len()), || AtomicU64::new(0));
        let direct: Box<[AtomicU32]> = self
            .direct
            .iter()
            .map(|a| AtomicU32::new(a.load(Ordering::Relaxed)))
            .collect();
        let mut lv: Vec<AtomicU16> = self
            .leaves
            .iter()
            .map(|a| AtomicU16::new(a.load(Ordering::Relaxed)))
            .collect();
        lv.resize_with(leaves.max(self.leaves.len()), || AtomicU16::new(0));
        let mut nv: Vec<LiveNode> = self
            .nodes
            .iter()
            .map(|n| {
                let c = LiveNode::default();
                c.store(n.load());
                c
            })
            .collect();
        nv.resize_with(nodes.max(self.nodes.len()), LiveNode::default);
        Self {
            direct,
            nodes: nv.into_boxed_slice(),
            leaves: lv.into_boxed_slice(),
            compact: cv.into_boxed_slice(),
        }
    }

    /// The leaf for slot `v` of the compact root at `start`.
    #[inline(always)]
    fn compact_leaf(&self, start: u32, v: usize) -> u32 {
        let Some(lv) = self.compact.get(start as usize) else {
            return NO_ROUTE;
        };
        let leafvec = lv.load(Ordering::Relaxed);
        let i = ((leafvec & upto(v)).count_ones() as usize).wrapping_sub(1);
        self.compact
            .get(start as usize + 1 + i / 4)
            .map_or(NO_ROUTE, |w| {
                ((w.load(Ordering::Relaxed) >> (16 * (i % 4))) & 0xffff) as u32
            })
    }

    /// Longest-prefix match: the next-hop group, or [`NO_ROUTE`]. Never panics: an index out of
    /// range (impossible in a consistent trie) reads as no route.
    #[inline]
    pub fn lookup<K: Key>(&self, key: K) -> u32 {
        let Some(d) = self.direct.get(key.top()) else {
            return NO_ROUTE;
        };
        let d = d.load(Ordering::Acquire);
        if d & LEAF_FLAG != 0 {
            return d & !LEAF_FLAG;
        }
        if d & COMPACT_FLAG != 0 {
            return self.compact_leaf(d & !COMPACT_FLAG, key.chunk(K::DIRECT_BITS));
        }
        let mut idx = d;
        let mut off = K::DIRECT_BITS;
        loop {
            match self.step(key, off, idx) {
                Step::Leaf(v) => return v,
                Step::Child(n) => idx = n,
            }
            off += STRIDE;
            if off >= K::BITS {
                return NO_ROUTE;
            }
        }
    }

    #[inline(always)]
    fn step<K: Key>(&self, key: K, off: u32, idx: u32) -> Step {
        let Some(node) = self.nodes.get(idx as usize) else {
            return Step::Leaf(NO_ROUTE);
        };
        let v = key.chunk(off);
        let below = upto(v);
        let vector = node.vector.load(Ordering::Relaxed);
        let bases = node.bases.load(Ordering::Relaxed);
        if vector & (1 << v) != 0 {
            let base1 = (bases >> 32) as u32;
            Step::Child(base1.wrapping_add((vector & below).count_ones()).wrapping_sub(1))
        } else {
            let leafvec = node.leafvec.load(Ordering::Relaxed);
            let i = (bases as u32)
                .wrapping_add((leafvec & below).count_ones())
                .wrapping_sub(1);
            Step::Leaf(
                self.leaves
                    .get(i as usize)
                    .map_or(NO_ROUTE, |l| u32::from(l.load(Ordering::Relaxed))),
            )
        }
    }

    /// Looks up every key; `out` must be as long as `keys` (extra entries are left alone).
    pub fn lookup_batch<K: Key>(&self, keys: &[K], out: &mut [Option<GroupId>]) {
        if K::SHALLOW {
            // Nearly every IPv4 lookup is direct entry -> compact root -> leaf, a path whose
            // branches predict well, so the CPU overlaps consecutive scalar lookups by itself;
            // staging them in passes measured no faster (docs/decisions.md).
            for (k, o) in keys.iter().zip(out.iter_mut()) {
                *o = GroupId::from_leaf(self.lookup(*k));
            }
        } else {
            let mut kc = keys.chunks_exact(LANES);
            let mut oc = out.chunks_exact_mut(LANES);
            for (k, o) in (&mut kc).zip(&mut oc) {
                self.lookup_lanes(k, o);
            }
            for (k, o) in kc.remainder().iter().zip(oc.into_remainder()) {
                *o = GroupId::from_leaf(self.lookup(*k));
            }
        }
    }

    /// `LANES` lookups (deep families: IPv6) lookups advanced level by level, so their loads overlap instead of queueing.
    #[inline(always)]
    fn lookup_lanes<K: Key>(&self, keys: &[K], out: &mut [Option<GroupId>]) {
        let mut cur = [0u32; LANES];
        let mut pending: u32 = 0;
        for (i, ((k, c), o)) in keys.iter().zip(cur.iter_mut()).zip(out.iter_mut()).enumerate() {
            let d = self
                .direct
                .get(k.top())
                .map_or(LEAF_FLAG, |d| d.load(Ordering::Acquire));
            if d & LEAF_FLAG != 0 {
                *o = GroupId::from_leaf(d & !LEAF_FLAG);
            } else if d & COMPACT_FLAG != 0 {
                *o = GroupId::from_leaf(self.compact_leaf(d & !COMPACT_FLAG, k.chunk(K::DIRECT_BITS)));
            } else {
                *c = d;
                pending |= 1 << i;
            }
        }
        let mut off = K::DIRECT_BITS;
        while pending != 0 {
            if off >= K::BITS {
                for (i, o) in out.iter_mut().enumerate() {
                    if pending & (1 << i) != 0 {
                        *o = None;
                    }
                }
                return;
            }
            let mut p = pending;
            while p != 0 {
                let i = p.trailing_zeros() as usize;
                p &= p - 1;
                let (Some(c), Some(k), Some(o)) = (cur.get_mut(i), keys.get(i), out.get_mut(i)) else {
                    return;
                };
                match self.step(*k, off, *c) {
                    Step::Child(n) => *c = n,
                    Step::Leaf(v) => {
                        *o = GroupId::from_leaf(v);
                        pending &= !(1 << i);
                    }
                }
            }
            off += STRIDE;
        }
    }

    /// Bytes of the arrays as allocated.
    pub fn capacity_bytes(&self) -> usize {
        self.direct.len() * 4
            + self.nodes.len() * std::mem::size_of::<LiveNode>()
            + self.leaves.len() * 2
            + self.compact.len() * 8
    }
}

/// What a family's trie occupies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrieMemory {
    /// The direct-pointing array.
    pub direct_bytes: usize,
    /// Nodes in live blocks.
    pub node_bytes: usize,
    /// Leaves in live blocks.
    pub leaf_bytes: usize,
    /// Compact roots (leaf bitmap and packed leaves of childless roots).
    pub compact_bytes: usize,
    pub nodes: usize,
    pub leaves: usize,
    /// The arrays as allocated, including free and not-yet-reclaimed blocks and growth headroom.
    pub allocated_bytes: usize,
}

impl TrieMemory {
    /// Bytes the lookup structure needs: direct array plus live nodes and leaves.
    pub fn total_bytes(&self) -> usize {
        self.direct_bytes + self.node_bytes + self.leaf_bytes + self.compact_bytes
    }
}
