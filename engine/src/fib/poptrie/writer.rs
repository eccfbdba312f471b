//! The single writer of one family's trie: a shadow trie of every route (per 6-bit stride: the
//! routes ending in it, its children, the live form last built), staging of changes, and the
//! rebuild that writes changed nodes and leaves into fresh blocks and publishes them with one
//! release store per direct entry. See the parent module for the live layout.

use super::{
    compact_words, upto, LiveNode, NodeRecord, TrieMemory, TrieTables, COMPACT_FLAG, LEAF_FLAG, NO_ROUTE,
    SLOTS,
};
use crate::fib::alloc::BlockAllocator;
use crate::fib::key::{Key, STRIDE};
use crate::fib::published::Published;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A node's live form: collapsed into a leaf value (its 64 slots agree and it has no node
/// children), or a node record stored in its parent's child block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Live {
    Leaf(u32),
    Node(NodeRecord),
    /// A root with no node children, stored compactly (see the module docs).
    Compact {
        leafvec: u64,
        start: u32,
    },
}

/// A route ending inside a node's stride: `len` bits (1..=6) of the stride with value `bits`,
/// and its 16-bit leaf value, packed in 32 bits (`len` 3 bits, `bits` 6 bits, value 16 bits)
/// so that a node's routes take half the cache lines: a random update misses on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StrideRoute(u32);

impl StrideRoute {
    fn new(len: u8, bits: u8, value: u32) -> Self {
        debug_assert!(len <= 6 && bits < 64 && value <= 0xffff);
        Self(u32::from(len) << 22 | u32::from(bits) << 16 | (value & 0xffff))
    }

    /// Sort key: routes are ordered by (len, bits).
    fn key(self) -> u32 {
        self.0 >> 16
    }

    fn len(self) -> u8 {
        (self.0 >> 22) as u8
    }

    fn bits(self) -> u8 {
        ((self.0 >> 16) & 0x3f) as u8
    }

    fn value(self) -> u32 {
        self.0 & 0xffff
    }
}

/// Writer-side node: the routes that end in this stride, the children, and what was last built.
#[derive(Debug)]
struct ShadowNode {
    /// Sorted by (len, bits): painting in this order lets longer routes win.
    routes: Vec<StrideRoute>,
    child_map: u64,
    /// Children in slot order (popcount-indexed by `child_map`).
    children: Vec<ShadowNode>,
    /// Something in or below this node changed since the last build.
    dirty: bool,
    /// Children with a change below them since the last build.
    dirty_children: u64,
    /// Slots whose painted value a route change here may have altered since the last build.
    changed_slots: u64,
    /// The inherited value the live form was built with.
    default: u32,
    /// [`leaf_fingerprint`] of the live form's leaves (node or compact root). A rebuild whose
    /// leaves have another fingerprint knows they changed without reading the old block, a
    /// cache miss on every update to a random part of the table.
    leaf_sum: u32,
    live: Live,
}

/// A cheap hash of a leaf sequence: different fingerprints mean different leaves (equal ones
/// are confirmed by comparing the blocks). The products are independent, so it costs about
/// one cycle per leaf.
fn leaf_fingerprint(leaves: &[u32]) -> u32 {
    let h = leaves.iter().enumerate().fold(0u64, |h, (i, &v)| {
        h.wrapping_add((u64::from(v) | (i as u64) << 32).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    });
    (h >> 32) as u32 ^ h as u32
}

/// Slots whose value differs from the slot before (slot 0 always starts a run): the leaf
/// bitmap of a node without children. Branch-free, so it costs a few cycles per slot.
fn run_starts(vals: &[u32; SLOTS]) -> u64 {
    let mut starts = 1u64;
    for (j, pair) in vals.windows(2).enumerate() {
        starts |= u64::from(pair[0] != pair[1]) << (j + 1);
    }
    starts
}

/// The leaf bitmap of a node with children (`vector`): the non-child slots whose value differs
/// from the previous non-child slot.
fn run_starts_between_children(vals: &[u32; SLOTS], vector: u64) -> u64 {
    let mut starts = 0u64;
    let mut prev: Option<u32> = None;
    for (j, &v) in vals.iter().enumerate() {
        if vector & (1 << j) == 0 && prev != Some(v) {
            starts |= 1 << j;
            prev = Some(v);
        }
    }
    starts
}

impl ShadowNode {
    fn new_dirty() -> Self {
        Self {
            routes: Vec::new(),
            child_map: 0,
            children: Vec::new(),
            dirty: true,
            dirty_children: 0,
            // A new node has never been built: every slot must be computed.
            changed_slots: u64::MAX,
            default: NO_ROUTE,
            leaf_sum: 0,
            live: Live::Leaf(NO_ROUTE),
        }
    }

    fn is_empty(&self) -> bool {
        self.routes.is_empty() && self.children.is_empty()
    }

    fn rank(&self, slot: usize) -> usize {
        (self.child_map & (upto(slot) >> 1)).count_ones() as usize
    }

    fn child(&self, slot: usize) -> Option<&ShadowNode> {
        if self.child_map & (1 << slot) == 0 {
            return None;
        }
        self.children.get(self.rank(slot))
    }

    fn child_or_insert(&mut self, slot: usize) -> &mut ShadowNode {
        let rank = self.rank(slot);
        if self.child_map & (1 << slot) == 0 {
            self.child_map |= 1 << slot;
            self.children.insert(rank, ShadowNode::new_dirty());
        }
        &mut self.children[rank]
    }

    /// The slots a route of `len` stride bits with value `bits` covers.
    fn route_slots(len: u8, bits: u8) -> u64 {
        let span = STRIDE - u32::from(len);
        let count = 1u32 << span;
        let run = if count >= 64 {
            u64::MAX
        } else {
            (1u64 << count) - 1
        };
        run << (u32::from(bits) << span)
    }

    fn find_route(&self, len: u8, bits: u8) -> Result<usize, usize> {
        self.routes
            .binary_search_by_key(&(u32::from(len) << 6 | u32::from(bits)), |r| r.key())
    }

    /// The 64 slot values this node's own routes give on top of `default`.
    fn paint(&self, default: u32) -> [u32; SLOTS] {
        let mut slots = [default; SLOTS];
        for r in &self.routes {
            let span = STRIDE - u32::from(r.len());
            let start = usize::from(r.bits()) << span;
            if let Some(s) = slots.get_mut(start..start + (1 << span)) {
                s.fill(r.value());
            }
        }
        slots
    }
}

/// Owns the allocators and the current tables; writes blocks and grows the arrays.
#[derive(Debug)]
struct Builder {
    cell: Arc<Published<TrieTables>>,
    tables: Arc<TrieTables>,
    nodes: BlockAllocator,
    leaves: BlockAllocator,
    compact: BlockAllocator,
    /// Tag for blocks retired during the current update.
    epoch: u64,
}

impl Builder {
    fn alloc_nodes(&mut self, n: usize) -> u32 {
        let s = self.nodes.alloc(n);
        self.ensure_capacity();
        s
    }

    fn alloc_leaves(&mut self, n: usize) -> u32 {
        let s = self.leaves.alloc(n);
        self.ensure_capacity();
        s
    }

    fn alloc_compact(&mut self, words: usize) -> u32 {
        let s = self.compact.alloc(words);
        self.ensure_capacity();
        s
    }

    /// Leaf `i` of the compact root at `start`.
    fn read_compact_leaf(&self, start: u32, i: usize) -> u32 {
        self.tables
            .compact
            .get(start as usize + 1 + i / 4)
            .map_or(NO_ROUTE, |w| {
                ((w.load(Ordering::Relaxed) >> (16 * (i % 4))) & 0xffff) as u32
            })
    }

    /// Writes a compact root: the leaf bitmap, then the leaves four to a word.
    fn write_compact(&self, start: u32, leafvec: u64, leaves: &[u32]) {
        let c = &self.tables.compact;
        if let Some(w) = c.get(start as usize) {
            w.store(leafvec, Ordering::Relaxed);
        }
        for (k, chunk) in leaves.chunks(4).enumerate() {
            let word = chunk
                .iter()
                .enumerate()
                .fold(0u64, |acc, (q, v)| acc | (u64::from(*v & 0xffff) << (16 * q)));
            if let Some(w) = c.get(start as usize + 1 + k) {
                w.store(word, Ordering::Relaxed);
            }
        }
    }

    /// Grows (by copying and republishing) when an allocation went past the arrays' end.
    fn ensure_capacity(&mut self) {
        let need_n = self.nodes.high_water() as usize;
        let need_l = self.leaves.high_water() as usize;
        let need_c = self.compact.high_water() as usize;
        let t = &self.tables;
        if need_n <= t.nodes.len() && need_l <= t.leaves.len() && need_c <= t.compact.len() {
            return;
        }
        let grow = |have: usize, need: usize| {
            if need <= have {
                have
            } else {
                need.max(have * 2).max(1024)
            }
        };
        let next = Arc::new(t.grown(
            grow(t.nodes.len(), need_n),
            grow(t.leaves.len(), need_l),
            grow(t.compact.len(), need_c),
        ));
        self.cell.publish(next.clone());
        self.tables = next;
    }

    fn read_node(&self, idx: u32) -> NodeRecord {
        self.tables
            .nodes
            .get(idx as usize)
            .map_or_else(NodeRecord::default, LiveNode::load)
    }

    fn read_leaf(&self, idx: u32) -> u32 {
        self.tables
            .leaves
            .get(idx as usize)
            .map_or(NO_ROUTE, |l| u32::from(l.load(Ordering::Relaxed)))
    }

    fn write_node(&self, idx: u32, r: NodeRecord) {
        if let Some(n) = self.tables.nodes.get(idx as usize) {
            n.store(r);
        }
    }

    fn leaf_block_equals(&self, base: u32, values: &[u32]) -> bool {
        values.iter().enumerate().all(|(i, v)| {
            self.tables
                .leaves
                .get(base as usize + i)
                .map(|l| u32::from(l.load(Ordering::Relaxed)))
                == Some(*v)
        })
    }

    /// Retires the blocks a live form owns (for a node, not the record's own slot).
    fn release(&mut self, live: Live) {
        match live {
            Live::Node(r) => {
                self.leaves
                    .retire(r.base0, r.leafvec.count_ones() as usize, self.epoch);
                self.nodes
                    .retire(r.base1, r.vector.count_ones() as usize, self.epoch);
            }
            Live::Compact { leafvec, start } => {
                self.compact
                    .retire(start, compact_words(leafvec.count_ones() as usize), self.epoch);
            }
            Live::Leaf(_) => {}
        }
    }

    /// Recomputes `node`'s live form for inherited value `default`. Starts from the node's old
    /// live blocks (contiguous, so cheap to read) and recomputes only the slots a route change
    /// or a new default can have altered, descending only into children that are dirty or whose
    /// inherited value may have changed; siblings' shadow nodes are not touched. Reuses every
    /// block whose content is unchanged and retires the blocks it replaces.
    fn rebuild(&mut self, node: &mut ShadowNode, default: u32, root: bool) -> Live {
        let affected = if node.default != default {
            u64::MAX
        } else {
            node.changed_slots
        };
        let visit = (node.dirty_children | affected) & node.child_map;
        // Slots without a child hold their painted value; the rest are filled below.
        let mut vals = node.paint(default);
        let painted = vals;
        let old = node.live;
        let mut vector = match old {
            Live::Node(r) => r.vector,
            Live::Leaf(_) | Live::Compact { .. } => 0,
        };
        // Children that need it are rebuilt; the rest keep their old form (a collapsed child's
        // value is read back from the old leaf block, a node child's record stays in the old
        // child block and is copied from there if the block has to be rewritten).
        let mut children_changed = false;
        let mut emptied = 0u64;
        let mut bits = node.child_map;
        while bits != 0 {
            let j = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if visit & (1 << j) == 0 {
                if vector & (1 << j) == 0 {
                    vals[j] = match old {
                        Live::Node(r) => {
                            let li = r
                                .base0
                                .wrapping_add((r.leafvec & upto(j)).count_ones())
                                .wrapping_sub(1);
                            self.read_leaf(li)
                        }
                        Live::Leaf(v) => v,
                        Live::Compact { leafvec, start } => self.read_compact_leaf(
                            start,
                            ((leafvec & upto(j)).count_ones() as usize).wrapping_sub(1),
                        ),
                    };
                }
                continue;
            }
            let rank = node.rank(j);
            let Some(child) = node.children.get_mut(rank) else {
                continue;
            };
            let inherited = painted[j];
            if child.dirty || child.default != inherited {
                let before = child.live;
                child.live = self.rebuild(child, inherited, false);
                children_changed |= before != child.live;
            }
            vector &= !(1 << j);
            if child.is_empty() {
                emptied |= 1 << j;
                continue;
            }
            match child.live {
                Live::Leaf(v) => vals[j] = v,
                Live::Node(_) => vector |= 1 << j,
                // Only roots are built compact (`root` is false for children).
                Live::Compact { .. } => debug_assert!(false, "a child built as a compact root"),
            }
        }
        while emptied != 0 {
            let j = 63 - emptied.leading_zeros() as usize;
            emptied &= !(1 << j);
            let rank = node.rank(j);
            node.children.remove(rank);
            node.child_map &= !(1 << j);
        }
        node.dirty = false;
        node.dirty_children = 0;
        node.changed_slots = 0;
        node.default = default;
        let old_live = old;
        let old = match old {
            Live::Node(r) => Some(r),
            Live::Leaf(_) | Live::Compact { .. } => None,
        };

        // Leaves, compressed: one entry per run of equal values among the non-child slots.
        let leafvec = if vector == 0 {
            let starts = run_starts(&vals);
            if starts == 1 {
                self.release(node.live);
                return Live::Leaf(vals[0]);
            }
            starts
        } else {
            run_starts_between_children(&vals, vector)
        };
        let mut leaves = [0u32; SLOTS];
        let mut n = 0usize;
        let mut bits = leafvec;
        while bits != 0 {
            let j = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if let (Some(l), Some(v)) = (leaves.get_mut(n), vals.get(j)) {
                *l = *v;
            }
            n += 1;
        }
        let leaves = leaves.get(..n).unwrap_or(&[]);
        let old_sum = node.leaf_sum;
        let sum = leaf_fingerprint(leaves);
        node.leaf_sum = sum;
        if root && vector == 0 {
            // A childless root goes into one compact block named by the direct entry.
            if let Live::Compact { leafvec: lv, start } = old_live {
                if lv == leafvec
                    && old_sum == sum
                    && leaves
                        .iter()
                        .enumerate()
                        .all(|(i, v)| self.read_compact_leaf(start, i) == *v)
                {
                    return old_live;
                }
            }
            self.release(old_live);
            let start = self.alloc_compact(compact_words(n));
            self.write_compact(start, leafvec, leaves);
            return Live::Compact { leafvec, start };
        }
        if let Live::Compact { .. } = old_live {
            self.release(old_live);
        }
        let base0 = match old {
            Some(r) if r.leafvec == leafvec && old_sum == sum && self.leaf_block_equals(r.base0, leaves) => {
                r.base0
            }
            _ => {
                if let Some(r) = old {
                    self.leaves
                        .retire(r.base0, r.leafvec.count_ones() as usize, self.epoch);
                }
                if n == 0 {
                    0
                } else {
                    let b = self.alloc_leaves(n);
                    for (i, v) in leaves.iter().enumerate() {
                        if let Some(l) = self.tables.leaves.get(b as usize + i) {
                            l.store(*v as u16, Ordering::Relaxed);
                        }
                    }
                    b
                }
            }
        };

        let base1 = match old {
            Some(r) if r.vector == vector && !children_changed => r.base1,
            _ => {
                if let Some(r) = old {
                    self.nodes
                        .retire(r.base1, r.vector.count_ones() as usize, self.epoch);
                }
                if vector == 0 {
                    0
                } else {
                    let b = self.alloc_nodes(vector.count_ones() as usize);
                    let mut i = b;
                    let mut bits = vector;
                    while bits != 0 {
                        let j = bits.trailing_zeros() as usize;
                        bits &= bits - 1;
                        let rec = match (visit & (1 << j) != 0, old) {
                            // Rebuilt children carry their new record.
                            (true, _) | (false, None) => match node.child(j).map(|c| c.live) {
                                Some(Live::Node(rec)) => rec,
                                _ => NodeRecord::default(),
                            },
                            // The others are copied from the old child block.
                            (false, Some(r)) => self.read_node(
                                r.base1
                                    .wrapping_add((r.vector & upto(j)).count_ones())
                                    .wrapping_sub(1),
                            ),
                        };
                        self.write_node(i, rec);
                        i += 1;
                    }
                    b
                }
            }
        };
        Live::Node(NodeRecord {
            vector,
            leafvec,
            base0,
            base1,
        })
    }
}

/// The writer's state for one direct-array entry, kept together (16 bytes) because an update
/// to a random part of the table misses the cache on every separate array it touches.
#[derive(Debug)]
struct Entry {
    /// Shadow subtree below the entry.
    root: Option<Box<ShadowNode>>,
    /// The value of the longest top route covering the entry: what its subtree inherits ...
    top_val: u32,
    /// ... and 1 + that route's length (0: none).
    top_len: u8,
    /// Queued in `dirty` for the next commit.
    queued: bool,
}

/// The single writer of one family's trie.
#[derive(Debug)]
pub struct TrieWriter<K: Key> {
    build: Builder,
    entries: Vec<Entry>,
    /// Routes no longer than `DIRECT_BITS`, by (network, length).
    top_routes: HashMap<(K, u8), u32>,
    routes: usize,
    /// Entries changed since the last commit.
    dirty: Vec<u32>,
    _key: PhantomData<K>,
}

impl<K: Key> TrieWriter<K> {
    /// An empty trie and the cell its readers load from.
    pub fn new() -> (Self, Arc<Published<TrieTables>>) {
        let entries = 1usize << K::DIRECT_BITS;
        let tables = Arc::new(TrieTables::new(K::DIRECT_BITS, 1024, 1024));
        let cell = Arc::new(Published::new(TrieTables::new(0, 0, 0)));
        cell.publish(tables.clone());
        let w = Self {
            build: Builder {
                cell: cell.clone(),
                tables,
                nodes: BlockAllocator::new(0),
                leaves: BlockAllocator::new(0),
                compact: BlockAllocator::new(0),
                epoch: 0,
            },
            entries: (0..entries)
                .map(|_| Entry {
                    root: None,
                    top_val: NO_ROUTE,
                    top_len: 0,
                    queued: false,
                })
                .collect(),
            top_routes: HashMap::new(),
            routes: 0,
            dirty: Vec::new(),
            _key: PhantomData,
        };
        (w, cell)
    }

    /// The tables as the writer last built them.
    pub fn tables(&self) -> &TrieTables {
        &self.build.tables
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes
    }

    /// True when there are no routes.
    pub fn is_empty(&self) -> bool {
        self.routes == 0
    }

    /// The value of exactly this prefix, if present.
    pub fn get(&self, bits: K, len: u32) -> Option<u32> {
        if len <= K::DIRECT_BITS {
            return self.top_routes.get(&(bits, len as u8)).copied();
        }
        let mut node = self.entries.get(bits.top())?.root.as_deref()?;
        let mut off = K::DIRECT_BITS;
        loop {
            if len <= off + STRIDE {
                let sl = (len - off) as u8;
                let sb = (bits.chunk(off) >> (STRIDE - u32::from(sl))) as u8;
                return node
                    .find_route(sl, sb)
                    .ok()
                    .and_then(|i| node.routes.get(i))
                    .map(|r| r.value());
            }
            node = node.child(bits.chunk(off))?;
            off += STRIDE;
        }
    }

    fn mark(&mut self, e: usize) {
        if let Some(entry) = self.entries.get_mut(e) {
            if !entry.queued {
                entry.queued = true;
                self.dirty.push(e as u32);
            }
        }
    }

    /// Stages `bits/len -> value` (the caller checked the prefix and that value is a group
    /// number, 1..=65535); nothing is visible to readers before [`Self::commit`]. Returns the previous value.
    pub fn stage_insert(&mut self, bits: K, len: u32, value: u32) -> Option<u32> {
        let prev = self.get(bits, len);
        if prev == Some(value) {
            return prev;
        }
        if prev.is_none() {
            self.routes += 1;
        }
        if len <= K::DIRECT_BITS {
            self.top_routes.insert((bits, len as u8), value);
            let start = bits.top();
            let count = 1usize << (K::DIRECT_BITS - len);
            for e in start..start + count {
                if let Some(entry) = self.entries.get_mut(e) {
                    if u32::from(entry.top_len) <= len + 1 {
                        entry.top_len = (len + 1) as u8;
                        entry.top_val = value;
                        self.mark(e);
                    }
                }
            }
            return prev;
        }
        let e = bits.top();
        let Some(entry) = self.entries.get_mut(e) else {
            return prev;
        };
        let mut node: &mut ShadowNode = entry
            .root
            .get_or_insert_with(|| Box::new(ShadowNode::new_dirty()));
        let mut off = K::DIRECT_BITS;
        loop {
            node.dirty = true;
            if len <= off + STRIDE {
                let sl = (len - off) as u8;
                let sb = (bits.chunk(off) >> (STRIDE - u32::from(sl))) as u8;
                let r = StrideRoute::new(sl, sb, value);
                match node.find_route(sl, sb) {
                    Ok(i) => node.routes[i] = r,
                    Err(i) => node.routes.insert(i, r),
                }
                node.changed_slots |= ShadowNode::route_slots(sl, sb);
                break;
            }
            let j = bits.chunk(off);
            node.dirty_children |= 1 << j;
            node = node.child_or_insert(j);
            off += STRIDE;
        }
        self.mark(e);
        prev
    }

    /// Stages the removal of exactly `bits/len`; returns its value if it existed.
    pub fn stage_remove(&mut self, bits: K, len: u32) -> Option<u32> {
        let prev = self.get(bits, len)?;
        self.routes -= 1;
        if len <= K::DIRECT_BITS {
            self.top_routes.remove(&(bits, len as u8));
            // The fallback for the whole range is the longest shorter top route covering it.
            let (flen, fval) = (0..len)
                .rev()
                .find_map(|l| {
                    self.top_routes
                        .get(&(bits.masked(l), l as u8))
                        .map(|v| ((l + 1) as u8, *v))
                })
                .unwrap_or((0, NO_ROUTE));
            let start = bits.top();
            let count = 1usize << (K::DIRECT_BITS - len);
            for e in start..start + count {
                if let Some(entry) = self.entries.get_mut(e) {
                    if u32::from(entry.top_len) == len + 1 {
                        entry.top_len = flen;
                        entry.top_val = fval;
                        self.mark(e);
                    }
                }
            }
            return Some(prev);
        }
        let e = bits.top();
        let Some(Entry { root: Some(root), .. }) = self.entries.get_mut(e) else {
            return Some(prev);
        };
        let mut node: &mut ShadowNode = root;
        let mut off = K::DIRECT_BITS;
        loop {
            node.dirty = true;
            if len <= off + STRIDE {
                let sl = (len - off) as u8;
                let sb = (bits.chunk(off) >> (STRIDE - u32::from(sl))) as u8;
                if let Ok(i) = node.find_route(sl, sb) {
                    node.routes.remove(i);
                }
                node.changed_slots |= ShadowNode::route_slots(sl, sb);
                break;
            }
            let j = bits.chunk(off);
            if node.child_map & (1 << j) == 0 {
                break;
            }
            node.dirty_children |= 1 << j;
            node = node.child_or_insert(j);
            off += STRIDE;
        }
        self.mark(e);
        Some(prev)
    }

    /// Builds and publishes everything staged since the last commit, one direct entry at a time.
    /// `epoch` tags the blocks this unlinks. Returns the number of direct entries rebuilt.
    pub fn commit(&mut self, epoch: u64) -> usize {
        self.build.epoch = epoch;
        let dirty = std::mem::take(&mut self.dirty);
        for &e in &dirty {
            self.publish_entry(e as usize);
            if let Some(entry) = self.entries.get_mut(e as usize) {
                entry.queued = false;
            }
        }
        let n = dirty.len();
        self.dirty = dirty;
        self.dirty.clear();
        n
    }

    fn publish_entry(&mut self, e: usize) {
        let Some(Entry {
            root: slot, top_val, ..
        }) = self.entries.get_mut(e)
        else {
            return;
        };
        let default = *top_val;
        // What the direct entry was built from: a node entry holds exactly this record, so
        // comparing with it spares reading the old record back (a cache miss).
        let mut before = Live::Leaf(NO_ROUTE);
        let live = match slot.as_deref_mut() {
            None => Live::Leaf(default),
            Some(root) => {
                before = root.live;
                if root.dirty || root.default != default {
                    root.live = self.build.rebuild(root, default, true);
                }
                root.live
            }
        };
        if slot.as_deref().is_some_and(ShadowNode::is_empty) {
            *slot = None;
        }
        let Some(entry) = self.build.tables.direct.get(e) else {
            return;
        };
        let old = entry.load(Ordering::Relaxed);
        let old_is_node = old & (LEAF_FLAG | COMPACT_FLAG) == 0;
        let new = match live {
            Live::Leaf(v) => LEAF_FLAG | v,
            Live::Compact { start, .. } => COMPACT_FLAG | start,
            Live::Node(rec) => {
                debug_assert!(
                    !(old_is_node && before == live) || self.build.read_node(old) == rec,
                    "a node direct entry differs from the root it was built from"
                );
                if old_is_node && before == live {
                    old
                } else {
                    let i = self.build.alloc_nodes(1);
                    self.build.write_node(i, rec);
                    i
                }
            }
        };
        debug_assert!(
            match live {
                Live::Leaf(_) => true,
                Live::Compact { start, .. } => start & (LEAF_FLAG | COMPACT_FLAG) == 0,
                Live::Node(_) => new & (LEAF_FLAG | COMPACT_FLAG) == 0,
            },
            "a node index or compact start reached bit 30"
        );
        if new != old {
            // Re-fetch: allocating may have grown (replaced) the tables.
            if let Some(entry) = self.build.tables.direct.get(e) {
                entry.store(new, Ordering::Release);
            }
            // A compact root's block was retired by the rebuild that replaced it.
            if old_is_node {
                self.build.nodes.retire(old, 1, self.build.epoch);
            }
        }
    }

    /// Returns retired blocks older than `safe_epoch` to the free lists.
    pub fn reclaim(&mut self, safe_epoch: u64) {
        self.build.nodes.reclaim(safe_epoch);
        self.build.leaves.reclaim(safe_epoch);
        self.build.compact.reclaim(safe_epoch);
    }

    /// Blocks waiting for a grace period.
    pub fn pending_blocks(&self) -> usize {
        self.build.nodes.pending_blocks()
            + self.build.leaves.pending_blocks()
            + self.build.compact.pending_blocks()
    }

    /// Memory accounting.
    pub fn memory(&self) -> TrieMemory {
        TrieMemory {
            direct_bytes: self.build.tables.direct.len() * 4,
            node_bytes: self.build.nodes.in_use() as usize * std::mem::size_of::<LiveNode>(),
            leaf_bytes: self.build.leaves.in_use() as usize * 2,
            compact_bytes: self.build.compact.in_use() as usize * 8,
            nodes: self.build.nodes.in_use() as usize,
            leaves: self.build.leaves.in_use() as usize,
            allocated_bytes: self.build.tables.capacity_bytes(),
        }
    }

    /// Calls `f(network bits, length, value)` for every route: the short ones first, then by
    /// direct entry.
    pub fn for_each_route(&self, mut f: impl FnMut(K, u32, u32)) {
        let mut top: Vec<_> = self.top_routes.iter().map(|(&(k, l), &v)| (k, l, v)).collect();
        top.sort_unstable();
        for (k, l, v) in top {
            f(k, u32::from(l), v);
        }
        for (e, entry) in self.entries.iter().enumerate() {
            if let Some(root) = &entry.root {
                visit(root, K::from_top(e), K::DIRECT_BITS, &mut f);
            }
        }
    }
}

fn visit<K: Key>(node: &ShadowNode, key: K, off: u32, f: &mut impl FnMut(K, u32, u32)) {
    for r in &node.routes {
        let len = off + u32::from(r.len());
        let k = key.with_chunk(off, usize::from(r.bits()) << (STRIDE - u32::from(r.len())));
        f(k.masked(len), len, r.value());
    }
    let mut bits = node.child_map;
    for child in &node.children {
        let j = bits.trailing_zeros() as usize;
        bits &= bits.wrapping_sub(1);
        visit(child, key.with_chunk(off, j), off + STRIDE, f);
    }
}
