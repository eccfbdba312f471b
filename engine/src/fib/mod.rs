//! The forwarding information base: longest-prefix match for IPv4 and IPv6 with next-hop
//! indirection, one writer and any number of lock-free readers.
//!
//! Layers, from what a packet touches first:
//! - [`poptrie`]: a Poptrie-class compressed multiway trie per family (direct-pointing array,
//!   6-bit strides, popcount-indexed children and run-compressed leaves). A leaf holds a next-hop
//!   [`GroupId`].
//! - [`nexthop`]: groups (weighted ECMP buckets) and adjacencies (port, MACs, MTU), separate
//!   tables so that a neighbour change never rebuilds the trie.
//! - [`qsbr`]: when memory an update unlinked may be reused.
//!
//! # Why readers are safe
//! Every cell readers touch is an atomic, so there is no data race and no `unsafe` here at all.
//! What remains to show is that a lookup never sees a *torn* trie (half old, half new):
//! 1. The writer never modifies a block reachable from a published root. An update writes its
//!    new nodes and leaves into blocks no reader can reach, then makes them reachable with a
//!    single release store into one direct-array entry (an entry's subtree is self-contained).
//!    A reader's acquire load of that entry therefore sees either the old subtree, intact, or
//!    the new one, complete.
//! 2. Unlinked blocks are reused only after every registered reader has started a new view
//!    since the unlink was published (quiescent-state-based reclamation, argued in [`qsbr`]).
//!    A lookup runs within one view, so the blocks it walks cannot be rewritten under it.
//! 3. When an array is full the writer copies all of the family's arrays into larger ones and
//!    publishes the copy; the old copy is frozen (never written again) and freed when the last
//!    reader drops it (reference counting). Readers switch at their next view.
//! 4. Group entries follow rule 1 (bucket blocks published by one release store, reclaimed per
//!    rule 2); adjacencies are updated in place under a per-entry sequence lock.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod alloc;
pub mod key;
pub mod nexthop;
pub mod poptrie;
pub mod prefix;
mod published;
pub mod qsbr;
pub mod reference;

pub use key::Key;
pub use nexthop::{Adjacency, AdjacencyKind, NextHop};
pub use poptrie::TrieMemory;
pub use prefix::{Ipv4Net, Ipv6Net, Net, Prefix, PrefixError};

use nexthop::{AdjSlot, GroupTables, GroupWriter};
use poptrie::{TrieTables, TrieWriter};
use published::Published;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;

/// A next-hop group number, as stored in trie leaves (1 ..= [`GroupId::MAX`]). Leaves are 16 bits
/// wide as in Poptrie: it halves the largest array, and 65,535 distinct next-hop sets are far more
/// than a FIB holds in practice (each group is a set of adjacencies, not a route).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct GroupId(NonZeroU32);

impl GroupId {
    /// Largest number a leaf can hold.
    pub const MAX: u32 = u16::MAX as u32;
    /// Group 1.
    pub const MIN: GroupId = GroupId(NonZeroU32::MIN);

    /// `None` for 0 or anything above [`Self::MAX`].
    pub const fn new(id: u32) -> Option<Self> {
        if id > Self::MAX {
            return None;
        }
        match NonZeroU32::new(id) {
            Some(n) => Some(Self(n)),
            None => None,
        }
    }

    pub const fn get(self) -> u32 {
        self.0.get()
    }

    #[inline(always)]
    pub(crate) fn from_leaf(v: u32) -> Option<Self> {
        NonZeroU32::new(v).map(Self)
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "g{}", self.0)
    }
}

/// An adjacency number (0 ..< [`FibConfig::max_adjacencies`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct AdjacencyId(pub u32);

impl fmt::Display for AdjacencyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Why the FIB refused a change. Nothing was changed when one of these is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FibError {
    #[error(transparent)]
    Prefix(#[from] PrefixError),
    #[error("next-hop group {0} is not defined")]
    UnknownGroup(GroupId),
    #[error("next-hop group {id} is out of range (1..={max})")]
    GroupIdOutOfRange { id: u32, max: u32 },
    #[error("next-hop group {group} is still used by {routes} route(s)")]
    GroupInUse { group: GroupId, routes: u32 },
    #[error("a next-hop group needs 1 to {max} members, got {members}")]
    GroupSize { members: usize, max: usize },
    #[error("next hop via adjacency {0} has weight 0")]
    ZeroWeight(AdjacencyId),
    #[error("adjacency {0} is not defined")]
    UnknownAdjacency(AdjacencyId),
    #[error("adjacency {id} is out of range (0..{max})")]
    AdjacencyIdOutOfRange { id: u32, max: u32 },
    #[error("adjacency {adjacency} is still used by {groups} group(s)")]
    AdjacencyInUse { adjacency: AdjacencyId, groups: u32 },
    #[error("all {0} FIB reader slots are taken")]
    TooManyReaders(usize),
    #[error("route change {index} of the batch: {error}")]
    Batch { index: usize, error: Box<FibError> },
}

/// Sizes fixed at creation. The tries themselves grow as needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FibConfig {
    /// Highest group number.
    pub max_groups: u32,
    /// Number of adjacency slots.
    pub max_adjacencies: u32,
}

impl Default for FibConfig {
    fn default() -> Self {
        Self {
            max_groups: 65_535,
            max_adjacencies: 4096,
        }
    }
}

/// One route change, for [`FibWriter::apply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteChange {
    /// Add or replace.
    Set(Prefix, GroupId),
    Remove(Prefix),
}

#[derive(Debug)]
struct Shared {
    v4: Arc<Published<TrieTables>>,
    v6: Arc<Published<TrieTables>>,
    groups: Arc<Published<GroupTables>>,
    adjacencies: Box<[AdjSlot]>,
    qsbr: qsbr::Domain,
}

/// Memory the FIB uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FibMemory {
    pub v4: TrieMemory,
    pub v6: TrieMemory,
    /// Group entries, bucket pool and adjacency slots.
    pub nexthop_bytes: usize,
}

/// Reclaim at least this often (commits) so that free lists stay stocked.
const RECLAIM_EVERY: u32 = 64;

/// The single writer. Not `Clone`: there is exactly one per FIB.
#[derive(Debug)]
pub struct FibWriter {
    shared: Arc<Shared>,
    v4: TrieWriter<u32>,
    v6: TrieWriter<u128>,
    groups: GroupWriter,
    /// Which adjacencies are defined and how many groups use each.
    adj_defined: Vec<bool>,
    adj_refs: Vec<u32>,
    since_reclaim: u32,
}

/// A cheap, cloneable way to make readers from any thread.
#[derive(Clone, Debug)]
pub struct FibHandle(Arc<Shared>);

impl FibHandle {
    /// Registers a new reader (one per thread that looks up).
    pub fn reader(&self) -> Result<FibReader, FibError> {
        FibReader::new(self.0.clone())
    }
}

impl Default for FibWriter {
    fn default() -> Self {
        Self::new(FibConfig::default())
    }
}

impl FibWriter {
    /// An empty FIB.
    pub fn new(config: FibConfig) -> Self {
        let (v4, v4_cell) = TrieWriter::<u32>::new();
        let (v6, v6_cell) = TrieWriter::<u128>::new();
        let (groups, group_cell) = GroupWriter::new(config.max_groups.min(GroupId::MAX));
        let shared = Arc::new(Shared {
            v4: v4_cell,
            v6: v6_cell,
            groups: group_cell,
            adjacencies: nexthop::new_adjacencies(config.max_adjacencies),
            qsbr: qsbr::Domain::default(),
        });
        Self {
            shared,
            v4,
            v6,
            groups,
            adj_defined: vec![false; config.max_adjacencies as usize],
            adj_refs: vec![0; config.max_adjacencies as usize],
            since_reclaim: 0,
        }
    }

    /// A handle for creating readers elsewhere.
    pub fn handle(&self) -> FibHandle {
        FibHandle(self.shared.clone())
    }

    /// Registers a reader.
    pub fn reader(&self) -> Result<FibReader, FibError> {
        FibReader::new(self.shared.clone())
    }

    fn adj_slot(&self, id: AdjacencyId) -> Result<&AdjSlot, FibError> {
        self.shared
            .adjacencies
            .get(id.0 as usize)
            .ok_or(FibError::AdjacencyIdOutOfRange {
                id: id.0,
                max: self.shared.adjacencies.len() as u32,
            })
    }

    /// Defines or updates an adjacency; visible to readers at once.
    pub fn set_adjacency(&mut self, id: AdjacencyId, adj: Adjacency) -> Result<(), FibError> {
        nexthop::write_adjacency(self.adj_slot(id)?, Some(&adj));
        if let Some(d) = self.adj_defined.get_mut(id.0 as usize) {
            *d = true;
        }
        Ok(())
    }

    /// Removes an adjacency no group uses.
    pub fn remove_adjacency(&mut self, id: AdjacencyId) -> Result<(), FibError> {
        let slot = self.adj_slot(id)?;
        let refs = self.adj_refs.get(id.0 as usize).copied().unwrap_or(0);
        if refs > 0 {
            return Err(FibError::AdjacencyInUse {
                adjacency: id,
                groups: refs,
            });
        }
        if !self.adj_defined.get(id.0 as usize).copied().unwrap_or(false) {
            return Err(FibError::UnknownAdjacency(id));
        }
        nexthop::write_adjacency(slot, None);
        if let Some(d) = self.adj_defined.get_mut(id.0 as usize) {
            *d = false;
        }
        Ok(())
    }

    /// The adjacency as readers see it.
    pub fn adjacency(&self, id: AdjacencyId) -> Option<Adjacency> {
        self.shared.adjacencies.get(id.0 as usize)?.read()
    }

    /// Defines or redefines a next-hop group. Every member's adjacency must exist.
    pub fn set_group(&mut self, id: GroupId, members: &[NextHop]) -> Result<(), FibError> {
        self.groups.check_id(id)?;
        for m in members {
            self.adj_slot(m.adjacency)?;
            if !self
                .adj_defined
                .get(m.adjacency.0 as usize)
                .copied()
                .unwrap_or(false)
            {
                return Err(FibError::UnknownAdjacency(m.adjacency));
            }
        }
        let epoch = self.shared.qsbr.current();
        let prev = self.groups.set(id, members, epoch)?;
        for m in members {
            if let Some(r) = self.adj_refs.get_mut(m.adjacency.0 as usize) {
                *r += 1;
            }
        }
        for m in prev.iter().flatten() {
            if let Some(r) = self.adj_refs.get_mut(m.adjacency.0 as usize) {
                *r = r.saturating_sub(1);
            }
        }
        self.finish_update();
        Ok(())
    }

    /// Removes a group no route uses.
    pub fn remove_group(&mut self, id: GroupId) -> Result<(), FibError> {
        self.groups.check_id(id)?;
        let routes = self
            .groups
            .route_refs
            .get(id.get() as usize)
            .copied()
            .unwrap_or(0);
        if routes > 0 {
            return Err(FibError::GroupInUse { group: id, routes });
        }
        let epoch = self.shared.qsbr.current();
        let prev = self.groups.remove(id, epoch).ok_or(FibError::UnknownGroup(id))?;
        for m in prev {
            if let Some(r) = self.adj_refs.get_mut(m.adjacency.0 as usize) {
                *r = r.saturating_sub(1);
            }
        }
        self.finish_update();
        Ok(())
    }

    /// A group's members.
    pub fn group(&self, id: GroupId) -> Option<&[NextHop]> {
        self.groups.get(id)
    }

    /// Stages one change: readers see it only at the next [`FibWriter::publish_staged`] or
    /// other update. Returns the group the prefix had before.
    pub fn stage(&mut self, change: RouteChange) -> Result<Option<GroupId>, FibError> {
        let prev = match change {
            RouteChange::Set(prefix, group) => {
                if !self.groups.exists(group) {
                    return Err(FibError::UnknownGroup(group));
                }
                let prev = match prefix {
                    Prefix::V4(p) => self.v4.stage_insert(p.bits(), p.len(), group.get()),
                    Prefix::V6(p) => self.v6.stage_insert(p.bits(), p.len(), group.get()),
                };
                if let Some(r) = self.groups.route_refs.get_mut(group.get() as usize) {
                    *r += 1;
                }
                prev
            }
            RouteChange::Remove(prefix) => match prefix {
                Prefix::V4(p) => self.v4.stage_remove(p.bits(), p.len()),
                Prefix::V6(p) => self.v6.stage_remove(p.bits(), p.len()),
            },
        };
        if let Some(r) = prev.and_then(|p| self.groups.route_refs.get_mut(p as usize)) {
            *r = r.saturating_sub(1);
        }
        Ok(prev.and_then(GroupId::from_leaf))
    }

    fn commit(&mut self) {
        let epoch = self.shared.qsbr.current();
        self.v4.commit(epoch);
        self.v6.commit(epoch);
        self.finish_update();
    }

    /// Ends an update (readers already see it: it was published by its stores); reclaims
    /// memory now and then.
    fn finish_update(&mut self) {
        self.since_reclaim += 1;
        if self.since_reclaim >= RECLAIM_EVERY || self.v4.pending_blocks() + self.v6.pending_blocks() > 4096 {
            self.reclaim();
        }
    }

    /// Advances the epoch, then returns every block no reader can still hold to the free lists.
    /// The epoch only orders reclamation, so it advances here rather than after every update:
    /// blocks retired since the last advance share one tag and become reusable together once
    /// every reader has started a view after this advance (a later `reclaim`). Advancing per
    /// update made every reader's next view miss on the epoch's cache line, and the writer
    /// wait for it.
    pub fn reclaim(&mut self) {
        self.since_reclaim = 0;
        self.shared.qsbr.advance();
        let safe = self.shared.qsbr.safe_epoch();
        self.v4.reclaim(safe);
        self.v6.reclaim(safe);
        self.groups.reclaim(safe);
    }

    /// Adds or replaces a route; returns the group it had before.
    pub fn insert(&mut self, prefix: impl Into<Prefix>, group: GroupId) -> Result<Option<GroupId>, FibError> {
        let prev = self.stage(RouteChange::Set(prefix.into(), group))?;
        self.commit();
        Ok(prev)
    }

    /// Removes a route; returns its group, or `None` if it was not there.
    pub fn remove(&mut self, prefix: impl Into<Prefix>) -> Result<Option<GroupId>, FibError> {
        let prev = self.stage(RouteChange::Remove(prefix.into()))?;
        self.commit();
        Ok(prev)
    }

    /// Applies many changes and publishes them together, rebuilding each touched part of the
    /// trie once (a full table loads this way in one pass). Stops at the first invalid change;
    /// the changes before it are applied. Returns how many changes were applied.
    pub fn apply(&mut self, changes: impl IntoIterator<Item = RouteChange>) -> Result<usize, FibError> {
        let result = self.stage_all(changes);
        self.commit();
        result
    }

    /// As [`FibWriter::apply`], but nothing is published: readers see these changes (and any
    /// staged before) only at the next [`FibWriter::publish_staged`] or other update. Staging
    /// several batches before publishing rebuilds each touched part of the trie once for all.
    pub fn stage_all(&mut self, changes: impl IntoIterator<Item = RouteChange>) -> Result<usize, FibError> {
        let mut n = 0;
        for (index, c) in changes.into_iter().enumerate() {
            if let Err(e) = self.stage(c) {
                return Err(FibError::Batch {
                    index,
                    error: Box::new(e),
                });
            }
            n += 1;
        }
        Ok(n)
    }

    /// Builds and publishes the route changes staged by [`FibWriter::stage_all`].
    pub fn publish_staged(&mut self) {
        self.commit();
    }

    /// The group of exactly this prefix.
    pub fn get(&self, prefix: impl Into<Prefix>) -> Option<GroupId> {
        let v = match prefix.into() {
            Prefix::V4(p) => self.v4.get(p.bits(), p.len()),
            Prefix::V6(p) => self.v6.get(p.bits(), p.len()),
        };
        v.and_then(GroupId::from_leaf)
    }

    /// Longest-prefix match as the data plane would answer it now.
    pub fn lookup(&self, addr: IpAddr) -> Option<GroupId> {
        GroupId::from_leaf(match addr {
            IpAddr::V4(a) => self.v4.tables().lookup(u32::from(a)),
            IpAddr::V6(a) => self.v6.tables().lookup(u128::from(a)),
        })
    }

    /// Number of IPv4 routes.
    pub fn len_v4(&self) -> usize {
        self.v4.len()
    }

    /// Number of IPv6 routes.
    pub fn len_v6(&self) -> usize {
        self.v6.len()
    }

    /// Number of routes of both families.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// True when there are no routes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Memory in use.
    pub fn memory(&self) -> FibMemory {
        FibMemory {
            v4: self.v4.memory(),
            v6: self.v6.memory(),
            nexthop_bytes: self.groups.bytes()
                + self.shared.adjacencies.len() * std::mem::size_of::<AdjSlot>(),
        }
    }

    /// Registered readers.
    pub fn readers(&self) -> usize {
        self.shared.qsbr.readers()
    }

    /// Calls `f` for every installed route: IPv4 first, then IPv6.
    pub fn for_each_route(&self, mut f: impl FnMut(Prefix, GroupId)) {
        self.v4.for_each_route(|k, l, v| {
            if let (Ok(p), Some(g)) = (Ipv4Net::from_bits(k, l), GroupId::from_leaf(v)) {
                f(Prefix::V4(p), g);
            }
        });
        self.v6.for_each_route(|k, l, v| {
            if let (Ok(p), Some(g)) = (Ipv6Net::from_bits(k, l), GroupId::from_leaf(v)) {
                f(Prefix::V6(p), g);
            }
        });
    }

    /// Every installed route, collected (see [`Self::for_each_route`]).
    pub fn routes(&self) -> Vec<(Prefix, GroupId)> {
        let mut v = Vec::with_capacity(self.len());
        self.for_each_route(|p, g| v.push((p, g)));
        v
    }
}

/// One thread's lookup handle. `Send` (hand it to a worker) but used by one thread at a time.
#[derive(Debug)]
pub struct FibReader {
    shared: Arc<Shared>,
    slot: usize,
    v4: Arc<TrieTables>,
    v4_gen: u64,
    v6: Arc<TrieTables>,
    v6_gen: u64,
    groups: Arc<GroupTables>,
    groups_gen: u64,
}

impl FibReader {
    fn new(shared: Arc<Shared>) -> Result<Self, FibError> {
        let slot = shared
            .qsbr
            .register()
            .ok_or(FibError::TooManyReaders(qsbr::MAX_READERS))?;
        Ok(Self {
            v4_gen: shared.v4.generation(),
            v4: shared.v4.load(),
            v6_gen: shared.v6.generation(),
            v6: shared.v6.load(),
            groups_gen: shared.groups.generation(),
            groups: shared.groups.load(),
            shared,
            slot,
        })
    }

    /// Starts a read-side section: announces a quiescent point (nothing from earlier views is
    /// held any more) and picks up replaced arrays. Call it once per batch of packets; a reader
    /// that never calls it again holds back memory reuse, not correctness.
    #[inline]
    pub fn view(&mut self) -> FibView<'_> {
        let s = &self.shared;
        s.qsbr.announce(self.slot);
        if s.v4.generation() != self.v4_gen {
            self.v4_gen = s.v4.generation();
            self.v4 = s.v4.load();
        }
        if s.v6.generation() != self.v6_gen {
            self.v6_gen = s.v6.generation();
            self.v6 = s.v6.load();
        }
        if s.groups.generation() != self.groups_gen {
            self.groups_gen = s.groups.generation();
            self.groups = s.groups.load();
        }
        FibView {
            v4: &self.v4,
            v6: &self.v6,
            groups: &self.groups,
            adjacencies: &self.shared.adjacencies,
        }
    }
}

impl Drop for FibReader {
    fn drop(&mut self) {
        self.shared.qsbr.unregister(self.slot);
    }
}

/// Lookups within one read-side section.
#[derive(Debug, Clone, Copy)]
pub struct FibView<'a> {
    v4: &'a TrieTables,
    v6: &'a TrieTables,
    groups: &'a GroupTables,
    adjacencies: &'a [AdjSlot],
}

impl FibView<'_> {
    /// IPv4 longest-prefix match on an address in host order.
    #[inline]
    pub fn lookup_v4(&self, addr: u32) -> Option<GroupId> {
        GroupId::from_leaf(self.v4.lookup(addr))
    }

    /// IPv6 longest-prefix match on an address in host order.
    #[inline]
    pub fn lookup_v6(&self, addr: u128) -> Option<GroupId> {
        GroupId::from_leaf(self.v6.lookup(addr))
    }

    /// Longest-prefix match for either family.
    pub fn lookup(&self, addr: IpAddr) -> Option<GroupId> {
        match addr {
            IpAddr::V4(a) => self.lookup_v4(u32::from(a)),
            IpAddr::V6(a) => self.lookup_v6(u128::from(a)),
        }
    }

    /// Convenience for `lookup_v4`.
    pub fn lookup_ipv4(&self, addr: Ipv4Addr) -> Option<GroupId> {
        self.lookup_v4(u32::from(addr))
    }

    /// Convenience for `lookup_v6`.
    pub fn lookup_ipv6(&self, addr: Ipv6Addr) -> Option<GroupId> {
        self.lookup_v6(u128::from(addr))
    }

    /// Batched IPv4 lookup; `out[i]` answers `addrs[i]`. (IPv4 lookups mostly end at a compact
    /// root, a path the CPU overlaps well on its own: this is a plain loop; see docs/decisions.md.)
    #[inline]
    pub fn lookup_v4_batch(&self, addrs: &[u32], out: &mut [Option<GroupId>]) {
        self.v4.lookup_batch(addrs, out);
    }

    /// Batched IPv6 lookup; `out[i]` answers `addrs[i]`. Eight lookups advance level by level, so
    /// their cache misses overlap.
    #[inline]
    pub fn lookup_v6_batch(&self, addrs: &[u128], out: &mut [Option<GroupId>]) {
        self.v6.lookup_batch(addrs, out);
    }

    /// The member of `group` that flow `hash` uses.
    #[inline]
    pub fn select(&self, group: GroupId, hash: u32) -> Option<AdjacencyId> {
        self.groups.select(group, hash)
    }

    /// An adjacency's current contents.
    #[inline]
    pub fn adjacency(&self, id: AdjacencyId) -> Option<Adjacency> {
        self.adjacencies.get(id.0 as usize)?.read()
    }
}

#[cfg(test)]
mod tests;
