//! Applies the control process's deltas to the FIB, on the FIB writer thread.
//!
//! The control process names adjacencies and groups with its own ids; the engine translates
//! them to FIB ids. That indirection is what makes a control-process restart safe: during the
//! full replay that follows, the new control process may number things differently, so the
//! replay is built beside the running state (reusing any FIB object whose content is
//! unchanged, allocating fresh ids otherwise). Routes move one by one from old objects to new
//! ones, each move atomic for the forwarding workers, and at the end of the replay whatever was
//! not replayed is swept: routes first, then the groups and adjacencies no longer used. No route
//! is lost while the replay runs and none is left stale after it, and an identical replay
//! changes nothing in the FIB at all.
//!
//! A starting engine (empty FIB) ignores records until a replay begins: they are deltas
//! against a state it never had.

use crate::fib::{
    Adjacency, AdjacencyId, AdjacencyKind, FibConfig, FibError, FibWriter, GroupId, Ipv4Net, Ipv6Net, Key,
    NextHop, Prefix, RouteChange,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use xroute_common::delta::{
    AdjacencyAction, AdjacencySpec, DecodeError, Delta, GroupAssembler, Member, PortSpec, RawRecord,
    RouteRecord, MAX_ADJACENCIES, MAX_GROUPS,
};

/// The FIB sizes the engine uses: room for the old and the new objects during a replay.
pub fn fib_config() -> FibConfig {
    FibConfig {
        max_groups: GroupId::MAX.min(2 * MAX_GROUPS + 1),
        max_adjacencies: 2 * MAX_ADJACENCIES,
    }
}

/// Where the programmer stands with the control process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    AwaitingResync,
    InSync,
    Resyncing { tag: u64 },
}

/// Why a record was not applied. Counted, and the first ones logged; never fatal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    #[error("undecodable record: {0}")]
    Decode(#[from] DecodeError),
    #[error("sequence {got} where {expected} was expected")]
    Sequence { expected: u64, got: u64 },
    #[error("adjacency id {0} out of range")]
    AdjacencyRange(u32),
    #[error("group id {0} out of range")]
    GroupRange(u32),
    #[error("unknown adjacency {0}")]
    UnknownAdjacency(u32),
    #[error("unknown group {0}")]
    UnknownGroup(u32),
    #[error("no free FIB {0} id")]
    Exhausted(&'static str),
    #[error("resync end without a resync")]
    StrayResyncEnd,
    #[error("group chunk: {0}")]
    Chunk(DecodeError),
    #[error(transparent)]
    Fib(#[from] FibError),
}

/// Maps on the per-route path (the group of every route change, the prefixes a replay
/// marks): foldhash instead of SipHash, which cost about a tenth of the writer's time loading a
/// table. Keys come from the control process, seeded per process all the same.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

/// One replay in progress.
#[derive(Debug, Default)]
struct Replay {
    adj: FastMap<u32, AdjacencyId>,
    groups: FastMap<u32, GroupId>,
    claimed_adj: HashSet<AdjacencyId>,
    claimed_groups: HashSet<GroupId>,
    marked: FastSet<Prefix>,
    /// Whether the FIB held routes when the replay began. If not (a restarted engine), every
    /// route in it at the end came from the replay: nothing to mark, nothing to sweep.
    track: bool,
    ports: HashSet<u32>,
}

/// Counters the engine publishes about the channel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProgrammerStats {
    pub applied: u64,
    pub discarded: u64,
    pub rejected: u64,
    pub last_rejected_seq: u64,
    pub last_error: Option<String>,
    pub resyncs_done: u64,
    pub last_resync_tag: u64,
    pub last_swept: u64,
}

/// What a FIB lookup found, for the CLI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupAnswer {
    pub prefix: Prefix,
    pub group: GroupId,
    pub members: Vec<(AdjacencyId, u32, Adjacency)>,
}

/// The engine's side of the delta channel.
#[derive(Debug)]
pub struct Programmer {
    fib: FibWriter,
    mode: Mode,
    adj: FastMap<u32, AdjacencyId>,
    groups: FastMap<u32, GroupId>,
    adj_content: HashMap<AdjacencyId, AdjacencySpec>,
    adj_by_content: HashMap<AdjacencySpec, AdjacencyId>,
    group_by_content: HashMap<Vec<NextHop>, GroupId>,
    defined_groups: HashSet<GroupId>,
    next_adj: u32,
    next_group: u32,
    replay: Option<Replay>,
    ports: BTreeMap<u32, PortSpec>,
    assembler: GroupAssembler,
    /// Route changes queued since the last stage, in the order they came.
    routes: Vec<QueuedChange>,
    /// Scratch for [`order_by_entry`], kept between bursts.
    order: SortScratch,
    /// Route changes staged in the FIB but not yet published.
    staged: bool,
    last_seq: Option<u64>,
    stats: ProgrammerStats,
    /// Resolved neighbours (control port, address) -> MAC, from the data plane's neighbour
    /// service; written into every forwarding adjacency toward that next hop.
    neighbors: HashMap<(u16, IpAddr), [u8; 6]>,
}

/// A queued route change, packed into 24 bytes (a [`RouteChange`] takes 64, the alignment of
/// an IPv6 prefix's `u128`). Between two publishes of a full table's burst some 300k changes
/// wait here; as `RouteChange`s, with the ordered copy beside them, they were the engine's
/// largest allocation (about 70 MiB, some 18k fresh pages faulted in while the table came).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueuedChange {
    /// Network bits: an IPv4 prefix's in the low 32 bits of `lo`.
    hi: u64,
    lo: u64,
    /// The FIB group, 0 to remove the route.
    group: u32,
    len: u8,
    v6: bool,
}

impl QueuedChange {
    pub fn new(change: RouteChange) -> Self {
        let (prefix, group) = match change {
            RouteChange::Set(p, g) => (p, g.get()),
            RouteChange::Remove(p) => (p, 0),
        };
        let (hi, lo, v6) = match prefix {
            Prefix::V4(n) => (0, u64::from(n.bits()), false),
            Prefix::V6(n) => ((n.bits() >> 64) as u64, n.bits() as u64, true),
        };
        Self {
            hi,
            lo,
            group,
            len: prefix.len() as u8,
            v6,
        }
    }

    /// The change as the FIB takes it. Every field came from a valid change, so this cannot
    /// fail; a failure would be reported as the FIB's own refusal, never a panic.
    pub fn change(self) -> Result<RouteChange, FibError> {
        let len = u32::from(self.len);
        let prefix = if self.v6 {
            Prefix::V6(Ipv6Net::from_bits(
                u128::from(self.hi) << 64 | u128::from(self.lo),
                len,
            )?)
        } else {
            Prefix::V4(Ipv4Net::from_bits(self.lo as u32, len)?)
        };
        Ok(match GroupId::new(self.group) {
            Some(g) => RouteChange::Set(prefix, g),
            None => RouteChange::Remove(prefix),
        })
    }

    /// The direct-array entry the change falls under, IPv4's before IPv6's.
    fn entry(self) -> u64 {
        if self.v6 {
            let bits = u128::from(self.hi) << 64 | u128::from(self.lo);
            (1u64 << <u32 as Key>::DIRECT_BITS) + bits.top() as u64
        } else {
            (self.lo as u32).top() as u64
        }
    }
}

/// Buffers of [`order_by_entry`], kept between bursts.
#[derive(Debug, Default)]
pub struct SortScratch {
    keys: Vec<u64>,
    tmp: Vec<u64>,
}

/// Bits of the bucket a change falls in: its family and trie entry (IPv4 entries first, then
/// IPv6 ones), sorted in two passes of `RADIX_BITS`.
const RADIX_BITS: u32 = 11;

/// How many queued changes are copied out, in staging order, before they are staged (see
/// `stage_routes`).
const GATHER: usize = 256;

/// Bursts up to this many changes are ordered by a comparison sort (see [`order_by_entry`]).
const RADIX_MIN: usize = 256;

/// The order in which to stage `changes`: their positions (the low 32 bits of each returned
/// word) by the trie entry they fall under (the top bits of the prefix, IPv4 first), keeping
/// the order of changes within an entry, so two changes of one prefix stay in the order they
/// came. Staged in this order, consecutive changes touch the same writer state and the commit
/// rebuilds entries in array order; a burst arrives in the sender's order, random for the trie.
/// A full order by prefix is not needed. A large burst is ordered by a least-significant-digit
/// radix sort of the entry numbers with positions (two passes, stable by construction): with it
/// the engine's share of a full table (offline, `bgp_load`) went from 0.249 s [0.222-0.314] to
/// 0.228 s [0.207-0.278], median of 15 rounds each, against a comparison sort of the prefixes.
/// A small one, such as the single change of a route flap, takes a comparison sort of the
/// words instead: the radix passes' fixed cost (two 2048-entry tables) would dominate it. Only
/// positions move, never the changes themselves.
pub fn order_by_entry<'a>(changes: &[QueuedChange], scratch: &'a mut SortScratch) -> &'a [u64] {
    const _: () = assert!(
        (1u64 << <u32 as Key>::DIRECT_BITS) + (1u64 << <u128 as Key>::DIRECT_BITS) <= 1 << (2 * RADIX_BITS)
    );
    let SortScratch { keys, tmp } = scratch;
    keys.clear();
    keys.extend(
        changes
            .iter()
            .enumerate()
            .map(|(i, c)| c.entry() << 32 | i as u64),
    );
    if changes.len() <= RADIX_MIN {
        // Positions break ties: the same order as a stable sort by entry.
        keys.sort_unstable();
        return keys;
    }
    tmp.clear();
    tmp.resize(keys.len(), 0);
    let digits = 1usize << RADIX_BITS;
    for pass in 0..2 {
        let shift = 32 + pass * RADIX_BITS;
        let digit = |k: u64| ((k >> shift) as usize) & (digits - 1);
        let mut at = [0usize; 1 << RADIX_BITS];
        for &k in keys.iter() {
            at[digit(k)] += 1;
        }
        let mut sum = 0;
        for a in at.iter_mut() {
            (*a, sum) = (sum, sum + *a);
        }
        for &k in keys.iter() {
            let d = digit(k);
            tmp[at[d]] = k;
            at[d] += 1;
        }
        std::mem::swap(keys, tmp);
    }
    keys
}

fn to_prefix(net: ipnet::IpNet) -> Result<Prefix, FibError> {
    Ok(Prefix::new(net.network(), u32::from(net.prefix_len()))?)
}

fn to_adjacency(spec: &AdjacencySpec) -> Adjacency {
    match spec.action {
        AdjacencyAction::Forward => Adjacency::forward(spec.port, spec.mtu, spec.next_hop, spec.src_mac),
        AdjacencyAction::Blackhole => Adjacency::discard(AdjacencyKind::Blackhole),
        AdjacencyAction::Unreachable => Adjacency::discard(AdjacencyKind::Unreachable),
        AdjacencyAction::Local => Adjacency::discard(AdjacencyKind::Local),
    }
}

impl Programmer {
    pub fn new() -> Self {
        Self::with_fib(FibWriter::new(fib_config()))
    }

    /// Wraps an existing (empty) FIB writer, e.g. one whose readers the workers already hold.
    pub fn with_fib(fib: FibWriter) -> Self {
        Self {
            fib,
            mode: Mode::AwaitingResync,
            adj: FastMap::default(),
            groups: FastMap::default(),
            adj_content: HashMap::new(),
            adj_by_content: HashMap::new(),
            group_by_content: HashMap::new(),
            defined_groups: HashSet::new(),
            next_adj: 0,
            next_group: 1,
            replay: None,
            ports: BTreeMap::new(),
            assembler: GroupAssembler::default(),
            routes: Vec::with_capacity(4096),
            order: SortScratch::default(),
            staged: false,
            last_seq: None,
            stats: ProgrammerStats::default(),
            neighbors: HashMap::new(),
        }
    }

    pub fn fib(&self) -> &FibWriter {
        &self.fib
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn stats(&self) -> &ProgrammerStats {
        &self.stats
    }

    pub fn ports(&self) -> &BTreeMap<u32, PortSpec> {
        &self.ports
    }

    /// Groups and adjacencies defined in the FIB.
    pub fn object_counts(&self) -> (usize, usize) {
        (self.defined_groups.len(), self.adj_content.len())
    }

    /// Every adjacency in the FIB with the control process's view of it.
    pub fn adjacencies(&self) -> Vec<(AdjacencyId, AdjacencySpec, Option<Adjacency>)> {
        let mut v: Vec<_> = self
            .adj_content
            .iter()
            .map(|(id, spec)| (*id, *spec, self.fib.adjacency(*id)))
            .collect();
        v.sort_by_key(|(id, _, _)| *id);
        v
    }

    /// The MAC of a neighbour became known (`Some`) or stopped being usable (`None`): every
    /// forwarding adjacency whose next hop is `addr` on `port` gets it as its destination MAC,
    /// so that routes through it forward on the fast path (or go back to resolution). Returns
    /// how many adjacencies changed. Connected routes (no next hop) are resolved per packet
    /// by the workers instead.
    pub fn set_neighbor(&mut self, port: u16, addr: IpAddr, mac: Option<[u8; 6]>) -> usize {
        match mac {
            Some(m) => {
                if self.neighbors.insert((port, addr), m) == Some(m) {
                    return 0;
                }
            }
            None => {
                if self.neighbors.remove(&(port, addr)).is_none() {
                    return 0;
                }
            }
        }
        let targets: Vec<(AdjacencyId, AdjacencySpec)> = self
            .adj_content
            .iter()
            .filter(|(_, s)| {
                s.action == AdjacencyAction::Forward && s.port == port && s.next_hop == Some(addr)
            })
            .map(|(id, s)| (*id, *s))
            .collect();
        let mut changed = 0;
        for (id, spec) in targets {
            let mut adj = to_adjacency(&spec);
            adj.dst_mac = mac;
            if self.fib.set_adjacency(id, adj).is_ok() {
                changed += 1;
            }
        }
        changed
    }

    /// The resolved neighbours, sorted by (port, address).
    pub fn neighbors(&self) -> Vec<(u16, IpAddr, [u8; 6])> {
        let mut v: Vec<_> = self.neighbors.iter().map(|(&(p, a), &m)| (p, a, m)).collect();
        v.sort();
        v
    }

    /// True if some forwarding adjacency sends to `addr` on `port` (its neighbour must be kept
    /// confirmed even though the workers never look it up: the adjacency carries the MAC).
    pub fn neighbor_in_use(&self, port: u16, addr: IpAddr) -> bool {
        self.adj_content
            .values()
            .any(|s| s.action == AdjacencyAction::Forward && s.port == port && s.next_hop == Some(addr))
    }

    /// The destination MAC a new or changed adjacency starts with: the neighbour's, if known.
    fn with_neighbor(&self, mut adj: Adjacency) -> Adjacency {
        if adj.kind == AdjacencyKind::Forward {
            if let Some(nh) = adj.next_hop {
                adj.dst_mac = self.neighbors.get(&(adj.port, nh)).copied();
            }
        }
        adj
    }

    /// Applies records in order; returns the sequence number of the last one (applied,
    /// discarded or rejected). Route changes between other records are batched into one FIB
    /// commit, which is what makes a full table fast to load.
    pub fn apply(&mut self, records: &[RawRecord]) -> u64 {
        let last = self.apply_staged(records);
        self.commit_routes();
        last
    }

    /// As [`Programmer::apply`], except that the last run of route changes is only queued:
    /// readers see it after [`Programmer::commit_routes`] (or the next record that is not a
    /// route). The writer loop queues the batches of a burst and applies them together, in
    /// prefix order: the more changes sorted together, the fewer trie entries each touches.
    pub fn apply_staged(&mut self, records: &[RawRecord]) -> u64 {
        let mut last = self.last_seq.unwrap_or(0);
        for raw in records {
            let seq = raw[0];
            if let Some(prev) = self.last_seq {
                if seq != prev + 1 {
                    self.commit_routes();
                    self.reject(
                        seq,
                        RejectReason::Sequence {
                            expected: prev + 1,
                            got: seq,
                        },
                    );
                }
            }
            self.last_seq = Some(seq);
            last = seq;
            // The common case, a route outside a replay, is read in place (see `RouteRecord`).
            if self.mode == Mode::InSync && self.replay.is_none() {
                if let Some(route) = RouteRecord::decode(raw) {
                    match route
                        .map_err(RejectReason::from)
                        .and_then(|r| self.queue_route(r))
                    {
                        Ok(()) => self.stats.applied += 1,
                        Err(e) => {
                            self.commit_routes();
                            self.reject(seq, e);
                        }
                    }
                    continue;
                }
            }
            let delta = match Delta::decode(raw) {
                Ok((_, d)) => d,
                Err(e) => {
                    self.commit_routes();
                    self.reject(seq, e.into());
                    continue;
                }
            };
            if self.mode == Mode::AwaitingResync && !matches!(delta, Delta::ResyncBegin { .. }) {
                self.stats.discarded += 1;
                continue;
            }
            let is_route = matches!(delta, Delta::RouteSet { .. } | Delta::RouteDelete { .. });
            if !is_route {
                self.commit_routes();
            }
            match self.apply_one(delta) {
                Ok(()) => self.stats.applied += 1,
                Err(e) => {
                    self.commit_routes();
                    self.reject(seq, e);
                }
            }
        }
        last
    }

    /// Whether route changes are staged but not yet visible to readers.
    pub fn has_staged(&self) -> bool {
        self.staged || !self.routes.is_empty()
    }

    /// Stages the queued route changes and publishes everything staged.
    pub fn commit_routes(&mut self) {
        self.stage_routes();
        if self.staged {
            self.staged = false;
            self.fib.publish_staged();
        }
    }

    fn reject(&mut self, seq: u64, reason: RejectReason) {
        self.stats.rejected += 1;
        self.stats.last_rejected_seq = seq;
        if self.stats.rejected <= 10 || self.stats.rejected % 10_000 == 0 {
            eprintln!(
                "xroute-engine: delta {seq} rejected ({} so far): {reason}",
                self.stats.rejected
            );
        }
        self.stats.last_error = Some(format!("delta {seq}: {reason}"));
    }

    /// Stages the queued route changes (not yet visible to readers).
    fn stage_routes(&mut self) {
        if self.routes.is_empty() {
            return;
        }
        self.staged = true;
        // Staged by trie entry, consecutive changes fall under the same entries (a table comes
        // in the sender's order, random for the trie): several times faster to stage and build.
        let (mut routes, mut scratch) = (std::mem::take(&mut self.routes), std::mem::take(&mut self.order));
        // Gathered a few hundred at a time before staging: the gathering loads are independent
        // and the CPU overlaps their cache misses, which it cannot do while each one waits
        // behind the staging of the change before it (30-50% slower offline, `bgp_load`).
        let mut gathered = [None; GATHER];
        for keys in order_by_entry(&routes, &mut scratch).chunks(GATHER) {
            for (g, &k) in gathered.iter_mut().zip(keys) {
                *g = routes.get((k & 0xFFFF_FFFF) as usize).copied();
            }
            for queued in gathered.iter().take(keys.len()).flatten() {
                if let Err(e) = queued.change().and_then(|c| self.fib.stage(c)) {
                    // Validated when queued, so this is a FIB refusal we did not foresee:
                    // count it and go on with the rest.
                    self.stats.applied = self.stats.applied.saturating_sub(1);
                    self.reject(self.last_seq.unwrap_or(0), RejectReason::Fib(e));
                }
            }
        }
        routes.clear();
        (self.routes, self.order) = (routes, scratch);
    }

    fn group_map(&self) -> &FastMap<u32, GroupId> {
        self.replay.as_ref().map_or(&self.groups, |r| &r.groups)
    }

    fn adj_map(&self) -> &FastMap<u32, AdjacencyId> {
        self.replay.as_ref().map_or(&self.adj, |r| &r.adj)
    }

    /// Queues a route record read in place; the same checks and result as `apply_one` gives
    /// its `Delta` outside a replay.
    fn queue_route(&mut self, route: RouteRecord) -> Result<(), RejectReason> {
        let group = match route.group {
            Some(g) => self
                .group_map()
                .get(&g)
                .ok_or(RejectReason::UnknownGroup(g))?
                .get(),
            None => 0,
        };
        self.routes.push(QueuedChange {
            hi: (route.bits >> 64) as u64,
            lo: route.bits as u64,
            group,
            len: route.len,
            v6: route.v6,
        });
        Ok(())
    }

    fn apply_one(&mut self, delta: Delta) -> Result<(), RejectReason> {
        match delta {
            Delta::RouteSet { prefix, group } => {
                let gid = *self
                    .group_map()
                    .get(&group)
                    .ok_or(RejectReason::UnknownGroup(group))?;
                let prefix = to_prefix(prefix)?;
                if let Some(r) = self.replay.as_mut().filter(|r| r.track) {
                    r.marked.insert(prefix);
                }
                // A route that already has this group is left alone when staged.
                self.routes.push(QueuedChange::new(RouteChange::Set(prefix, gid)));
            }
            Delta::RouteDelete { prefix } => {
                let prefix = to_prefix(prefix)?;
                if let Some(r) = self.replay.as_mut() {
                    r.marked.remove(&prefix);
                }
                self.routes.push(QueuedChange::new(RouteChange::Remove(prefix)));
            }
            Delta::GroupMembers {
                group,
                chunk,
                total,
                members,
                count,
            } => {
                if group == 0 || group > MAX_GROUPS {
                    return Err(RejectReason::GroupRange(group));
                }
                let part = members.get(..usize::from(count)).unwrap_or_default();
                let all = match self.assembler.push(group, chunk, total, part) {
                    Ok(Some(all)) => all.to_vec(),
                    Ok(None) => return Ok(()),
                    Err(e) => return Err(RejectReason::Chunk(e)),
                };
                self.set_group(group, &all)?;
            }
            Delta::GroupDelete { group } => self.delete_group(group)?,
            Delta::AdjacencySet { id, adjacency } => self.set_adjacency(id, adjacency)?,
            Delta::AdjacencyDelete { id } => self.delete_adjacency(id)?,
            Delta::PortSet { port, spec } => {
                self.ports.insert(port, spec);
                if let Some(r) = self.replay.as_mut() {
                    r.ports.insert(port);
                }
            }
            Delta::PortDelete { port } => {
                self.ports.remove(&port);
                if let Some(r) = self.replay.as_mut() {
                    r.ports.remove(&port);
                }
            }
            Delta::ResyncBegin { tag } => {
                self.commit_routes();
                self.replay = Some(Replay {
                    track: !self.fib.is_empty(),
                    ..Replay::default()
                });
                self.mode = Mode::Resyncing { tag };
            }
            // Every record that is not a route change already published the routes staged
            // before it (see `apply_staged`); the writer loop publishes its counters too, since
            // nothing is left staged.
            Delta::Commit => {}
            Delta::ResyncEnd { tag } => {
                let Some(replay) = self.replay.take() else {
                    return Err(RejectReason::StrayResyncEnd);
                };
                // The replay is complete even if the sweep hit a refusal (counted): stay in
                // sync rather than wait for a replay that will not come.
                let swept = self.sweep(replay);
                self.mode = Mode::InSync;
                self.stats.resyncs_done += 1;
                self.stats.last_resync_tag = tag;
                swept?;
            }
        }
        Ok(())
    }

    fn translate(&self, members: &[Member]) -> Result<Vec<NextHop>, RejectReason> {
        let map = self.adj_map();
        let mut out: Vec<NextHop> = members
            .iter()
            .map(|m| {
                map.get(&m.adjacency)
                    .map(|&adjacency| NextHop {
                        adjacency,
                        weight: m.weight,
                    })
                    .ok_or(RejectReason::UnknownAdjacency(m.adjacency))
            })
            .collect::<Result<_, _>>()?;
        out.sort_by_key(|n| (n.adjacency, n.weight));
        Ok(out)
    }

    fn free_group_id(&mut self) -> Result<GroupId, RejectReason> {
        let max = fib_config().max_groups;
        for _ in 0..max {
            let id = self.next_group;
            self.next_group = if id >= max { 1 } else { id + 1 };
            if let Some(g) = GroupId::new(id) {
                if !self.defined_groups.contains(&g) {
                    return Ok(g);
                }
            }
        }
        Err(RejectReason::Exhausted("group"))
    }

    fn free_adjacency_id(&mut self) -> Result<AdjacencyId, RejectReason> {
        let max = fib_config().max_adjacencies;
        for _ in 0..max {
            let id = AdjacencyId(self.next_adj);
            self.next_adj = (self.next_adj + 1) % max;
            if !self.adj_content.contains_key(&id) {
                return Ok(id);
            }
        }
        Err(RejectReason::Exhausted("adjacency"))
    }

    fn set_group(&mut self, group: u32, members: &[Member]) -> Result<(), RejectReason> {
        let hops = self.translate(members)?;
        let existing = self.group_map().get(&group).copied();
        let gid = match existing {
            Some(g) => g,
            None => {
                let reuse = self.group_by_content.get(&hops).copied().filter(|g| {
                    self.replay
                        .as_ref()
                        .is_some_and(|r| !r.claimed_groups.contains(g))
                });
                match reuse {
                    Some(g) => g,
                    None => self.free_group_id()?,
                }
            }
        };
        if self.fib.group(gid) != Some(&hops[..]) {
            let old: Option<Vec<NextHop>> = self.fib.group(gid).map(<[NextHop]>::to_vec);
            self.fib.set_group(gid, &hops)?;
            if let Some(old) = old {
                if self.group_by_content.get(&old) == Some(&gid) {
                    self.group_by_content.remove(&old);
                }
            }
        }
        self.defined_groups.insert(gid);
        self.group_by_content.entry(hops).or_insert(gid);
        match self.replay.as_mut() {
            Some(r) => {
                r.groups.insert(group, gid);
                r.claimed_groups.insert(gid);
            }
            None => {
                self.groups.insert(group, gid);
            }
        }
        Ok(())
    }

    fn drop_group(&mut self, gid: GroupId) -> Result<(), RejectReason> {
        let content = self.fib.group(gid).map(<[NextHop]>::to_vec);
        self.fib.remove_group(gid)?;
        self.defined_groups.remove(&gid);
        if let Some(c) = content {
            if self.group_by_content.get(&c) == Some(&gid) {
                self.group_by_content.remove(&c);
            }
        }
        Ok(())
    }

    fn delete_group(&mut self, group: u32) -> Result<(), RejectReason> {
        if let Some(r) = self.replay.as_mut() {
            // Swept at the end of the replay if nothing uses it by then.
            let gid = r.groups.remove(&group).ok_or(RejectReason::UnknownGroup(group))?;
            r.claimed_groups.remove(&gid);
            return Ok(());
        }
        let gid = *self.groups.get(&group).ok_or(RejectReason::UnknownGroup(group))?;
        self.drop_group(gid)?;
        self.groups.remove(&group);
        Ok(())
    }

    fn set_adjacency(&mut self, id: u32, spec: AdjacencySpec) -> Result<(), RejectReason> {
        if id >= MAX_ADJACENCIES {
            return Err(RejectReason::AdjacencyRange(id));
        }
        let existing = self.adj_map().get(&id).copied();
        let aid = match existing {
            Some(a) => a,
            None => {
                let reuse = self
                    .adj_by_content
                    .get(&spec)
                    .copied()
                    .filter(|a| self.replay.as_ref().is_some_and(|r| !r.claimed_adj.contains(a)));
                match reuse {
                    Some(a) => a,
                    None => self.free_adjacency_id()?,
                }
            }
        };
        if self.adj_content.get(&aid) != Some(&spec) {
            self.fib
                .set_adjacency(aid, self.with_neighbor(to_adjacency(&spec)))?;
            if let Some(old) = self.adj_content.insert(aid, spec) {
                if self.adj_by_content.get(&old) == Some(&aid) {
                    self.adj_by_content.remove(&old);
                }
            }
        }
        self.adj_by_content.entry(spec).or_insert(aid);
        match self.replay.as_mut() {
            Some(r) => {
                r.adj.insert(id, aid);
                r.claimed_adj.insert(aid);
            }
            None => {
                self.adj.insert(id, aid);
            }
        }
        Ok(())
    }

    fn drop_adjacency(&mut self, aid: AdjacencyId) -> Result<(), RejectReason> {
        self.fib.remove_adjacency(aid)?;
        if let Some(old) = self.adj_content.remove(&aid) {
            if self.adj_by_content.get(&old) == Some(&aid) {
                self.adj_by_content.remove(&old);
            }
        }
        Ok(())
    }

    fn delete_adjacency(&mut self, id: u32) -> Result<(), RejectReason> {
        if let Some(r) = self.replay.as_mut() {
            let aid = r.adj.remove(&id).ok_or(RejectReason::UnknownAdjacency(id))?;
            r.claimed_adj.remove(&aid);
            return Ok(());
        }
        let aid = *self.adj.get(&id).ok_or(RejectReason::UnknownAdjacency(id))?;
        self.drop_adjacency(aid)?;
        self.adj.remove(&id);
        Ok(())
    }

    /// End of a replay: remove what it did not mention, then adopt its numbering.
    fn sweep(&mut self, replay: Replay) -> Result<(), RejectReason> {
        self.commit_routes();
        let mut stale = Vec::new();
        // Marked routes are all in the FIB (a delete unmarks), so equal counts mean no stale one.
        if replay.track && replay.marked.len() != self.fib.len() {
            self.fib.for_each_route(|p, _| {
                if !replay.marked.contains(&p) {
                    stale.push(RouteChange::Remove(p));
                }
            });
        }
        self.stats.last_swept = stale.len() as u64;
        self.fib.apply(stale)?;
        let mut groups: Vec<GroupId> = self
            .defined_groups
            .iter()
            .filter(|g| !replay.claimed_groups.contains(g))
            .copied()
            .collect();
        groups.sort_unstable();
        // Keep going on a refusal (it would be a bug): the numbering must be adopted anyway.
        let mut first_error = None;
        for g in groups {
            if let Err(e) = self.drop_group(g) {
                first_error.get_or_insert(e);
            }
        }
        let mut adjs: Vec<AdjacencyId> = self
            .adj_content
            .keys()
            .filter(|a| !replay.claimed_adj.contains(a))
            .copied()
            .collect();
        adjs.sort_unstable();
        for a in adjs {
            if let Err(e) = self.drop_adjacency(a) {
                first_error.get_or_insert(e);
            }
        }
        self.ports.retain(|p, _| replay.ports.contains(p));
        self.groups = replay.groups;
        self.adj = replay.adj;
        first_error.map_or(Ok(()), Err)
    }

    /// The route the FIB uses for `addr`, with its members: the longest exact match in the
    /// writer's table, cross-checked against what a reader sees (so commit what is staged
    /// first, as the query path does).
    pub fn lookup(&self, addr: IpAddr) -> Option<LookupAnswer> {
        let group = self.fib.lookup(addr)?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = (0..=max).rev().find_map(|len| {
            let p = match addr {
                IpAddr::V4(a) => {
                    let bits = u32::from(a)
                        .checked_shr(32 - len)
                        .unwrap_or(0)
                        .checked_shl(32 - len);
                    Prefix::new(IpAddr::V4(bits.unwrap_or(0).into()), len).ok()?
                }
                IpAddr::V6(a) => {
                    let bits = u128::from(a)
                        .checked_shr(128 - len)
                        .unwrap_or(0)
                        .checked_shl(128 - len);
                    Prefix::new(IpAddr::V6(bits.unwrap_or(0).into()), len).ok()?
                }
            };
            self.fib.get(p).map(|_| p)
        })?;
        let members = self
            .fib
            .group(group)
            .unwrap_or_default()
            .iter()
            .filter_map(|m| Some((m.adjacency, m.weight, self.fib.adjacency(m.adjacency)?)))
            .collect();
        Some(LookupAnswer {
            prefix,
            group,
            members,
        })
    }
}

impl Default for Programmer {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xroute_common::delta::AdjacencyAction;

    fn adj(port: u16, nh: &str) -> AdjacencySpec {
        AdjacencySpec {
            action: AdjacencyAction::Forward,
            port,
            mtu: 1500,
            next_hop: Some(nh.parse().unwrap()),
            src_mac: [2, 0, 0, 0, 0, 1],
        }
    }

    /// Encodes deltas with consecutive sequence numbers.
    struct Feed(u64);
    impl Feed {
        fn records(&mut self, deltas: &[Delta]) -> Vec<RawRecord> {
            deltas
                .iter()
                .map(|d| {
                    self.0 += 1;
                    d.encode(self.0)
                })
                .collect()
        }
    }

    fn group(id: u32, adjs: &[u32]) -> Vec<Delta> {
        let m: Vec<Member> = adjs
            .iter()
            .map(|&a| Member {
                adjacency: a,
                weight: 1,
            })
            .collect();
        Delta::group_chunks(id, &m).collect()
    }

    #[test]
    fn queued_changes_are_packed_and_give_back_what_was_queued() {
        assert_eq!(std::mem::size_of::<QueuedChange>(), 24);
        let net = |s: &str| to_prefix(s.parse().unwrap()).unwrap();
        let g = |i| GroupId::new(i).unwrap();
        for c in [
            RouteChange::Set(net("0.0.0.0/0"), g(1)),
            RouteChange::Set(net("255.255.255.255/32"), g(u32::from(u16::MAX))),
            RouteChange::Remove(net("198.18.0.0/15")),
            RouteChange::Set(net("::/0"), g(7)),
            RouteChange::Set(net("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff/128"), g(2)),
            RouteChange::Remove(net("2001:db8:8000::/33")),
        ] {
            assert_eq!(QueuedChange::new(c).change().unwrap(), c);
        }
    }

    #[test]
    fn changes_order_by_trie_entry_keeping_their_order_within_one() {
        let net = |s: &str| {
            let n: ipnet::IpNet = s.parse().unwrap();
            to_prefix(n).unwrap()
        };
        let g = |i| GroupId::new(i).unwrap();
        let changes = vec![
            RouteChange::Set(net("2001:db8::/32"), g(1)),
            RouteChange::Set(net("10.0.0.0/8"), g(1)),
            RouteChange::Remove(net("::/0")),
            RouteChange::Set(net("10.0.0.0/16"), g(2)),
            RouteChange::Remove(net("10.0.0.0/8")),
            RouteChange::Set(net("0.0.0.0/0"), g(3)),
            RouteChange::Set(net("255.255.255.255/32"), g(3)),
            RouteChange::Set(net("10.0.0.0/8"), g(4)),
            RouteChange::Set(net("2001:db8::/32"), g(2)),
            RouteChange::Set(net("2001:db8::/48"), g(2)),
            RouteChange::Set(net("::/0"), g(5)),
            RouteChange::Set(net("10.0.64.0/18"), g(6)),
        ];
        // A small burst (the comparison-sort path): what a stable sort by entry gives.
        assert!(changes.len() <= RADIX_MIN);
        let entry = |c: &RouteChange| QueuedChange::new(*c).entry();
        let ordered = |changes: &[RouteChange], scratch: &mut SortScratch| -> Vec<RouteChange> {
            let queued: Vec<QueuedChange> = changes.iter().map(|&c| QueuedChange::new(c)).collect();
            order_by_entry(&queued, scratch)
                .iter()
                .map(|&k| queued[(k & 0xFFFF_FFFF) as usize].change().unwrap())
                .collect()
        };
        let mut want = changes.clone();
        want.sort_by_key(entry);
        let mut scratch = SortScratch::default();
        let changes = ordered(&changes, &mut scratch);
        assert_eq!(changes, want);
        // IPv4 first, and within 10.0.0.0/18's entry the changes in the order they came,
        // the three of 10.0.0.0/8 among them.
        assert_eq!(
            changes[1..5],
            [
                RouteChange::Set(net("10.0.0.0/8"), g(1)),
                RouteChange::Set(net("10.0.0.0/16"), g(2)),
                RouteChange::Remove(net("10.0.0.0/8")),
                RouteChange::Set(net("10.0.0.0/8"), g(4)),
            ]
        );
        assert_eq!(changes[5], RouteChange::Set(net("10.0.64.0/18"), g(6)));
        assert_eq!(changes[6], RouteChange::Set(net("255.255.255.255/32"), g(3)));
        // A large burst (the radix path), entries far apart in both digits, one prefix changed
        // three times among them: still a stable sort by entry.
        let mut many: Vec<RouteChange> = (0..5000u32)
            .map(|i| {
                let a = i.wrapping_mul(2_654_435_761) & 0xffff_ff00;
                RouteChange::Set(net(&format!("{}/24", std::net::Ipv4Addr::from(a))), g(i % 60 + 1))
            })
            .chain((0..500u32).map(|i| {
                let a = u128::from(i.wrapping_mul(2_654_435_761)) << 96;
                RouteChange::Remove(net(&format!("{}/32", std::net::Ipv6Addr::from(a))))
            }))
            .collect();
        many.reverse();
        for (at, gi) in [(7, 11), (2500, 12), (5400, 13)] {
            many.insert(at, RouteChange::Set(net("10.0.0.0/8"), g(gi)));
        }
        assert!(many.len() > RADIX_MIN);
        let mut want = many.clone();
        want.sort_by_key(entry);
        let many = ordered(&many, &mut scratch);
        assert_eq!(many, want);
        let tens: Vec<&RouteChange> = many
            .iter()
            .filter(|c| matches!(c, RouteChange::Set(p, _) if *p == net("10.0.0.0/8")))
            .collect();
        assert_eq!(
            tens,
            [
                &RouteChange::Set(net("10.0.0.0/8"), g(11)),
                &RouteChange::Set(net("10.0.0.0/8"), g(12)),
                &RouteChange::Set(net("10.0.0.0/8"), g(13)),
            ]
        );
    }

    fn route(p: &str, g: u32) -> Delta {
        Delta::RouteSet {
            prefix: p.parse().unwrap(),
            group: g,
        }
    }

    fn base(tag: u64) -> Vec<Delta> {
        let mut d = vec![
            Delta::ResyncBegin { tag },
            Delta::AdjacencySet {
                id: 0,
                adjacency: adj(0, "192.0.2.2"),
            },
            Delta::AdjacencySet {
                id: 1,
                adjacency: adj(1, "198.51.100.2"),
            },
        ];
        d.extend(group(1, &[0]));
        d.extend(group(2, &[0, 1]));
        d.push(route("203.0.113.0/24", 1));
        d.push(route("198.18.0.0/15", 2));
        d.push(route("2001:db8::/32", 1));
        d.push(Delta::ResyncEnd { tag });
        d
    }

    fn next_hops(p: &Programmer, addr: &str) -> Vec<IpAddr> {
        let a = p.lookup(addr.parse().unwrap()).unwrap();
        let mut v: Vec<IpAddr> = a.members.iter().filter_map(|(_, _, adj)| adj.next_hop).collect();
        v.sort();
        v
    }

    #[test]
    fn staged_routes_are_published_together_and_in_order() {
        let mut p = Programmer::new();
        let mut f = Feed(0);
        p.apply(&f.records(&base(1)));
        // Two batches of one burst: staged, invisible until published.
        let last = p.apply_staged(&f.records(&[route("192.0.2.0/24", 1), route("198.51.100.0/24", 2)]));
        assert_eq!(last, f.0);
        let last = p.apply_staged(&f.records(&[
            route("192.0.2.0/24", 2),
            Delta::RouteDelete {
                prefix: "203.0.113.0/24".parse().unwrap(),
            },
        ]));
        assert_eq!(last, f.0);
        assert!(p.has_staged());
        assert!(p.fib().lookup("192.0.2.1".parse().unwrap()).is_none());
        assert!(p.fib().lookup("203.0.113.1".parse().unwrap()).is_some());
        p.commit_routes();
        assert!(!p.has_staged());
        // The later change of a prefix wins; the delete took effect.
        assert_eq!(
            next_hops(&p, "192.0.2.1"),
            vec![
                "192.0.2.2".parse::<IpAddr>().unwrap(),
                "198.51.100.2".parse().unwrap()
            ]
        );
        assert_eq!(next_hops(&p, "198.51.100.1").len(), 2);
        assert!(p.lookup("203.0.113.1".parse().unwrap()).is_none());
        // A record that is not a route publishes what was staged before it.
        p.apply_staged(&f.records(&[route("203.0.113.0/24", 1)]));
        p.apply_staged(&f.records(&group(3, &[1])));
        assert!(!p.has_staged());
        assert!(p.lookup("203.0.113.1".parse().unwrap()).is_some());
        // So does a commit, which changes nothing else.
        p.apply_staged(&f.records(&[Delta::RouteDelete {
            prefix: "203.0.113.0/24".parse().unwrap(),
        }]));
        assert!(p.has_staged());
        let applied = p.stats().applied;
        p.apply_staged(&f.records(&[Delta::Commit]));
        assert!(!p.has_staged());
        assert!(p.lookup("203.0.113.1".parse().unwrap()).is_none());
        assert_eq!(p.stats().applied, applied + 1);
        assert_eq!(p.stats().rejected, 0);
        // A burst of several gathers (the radix order), each /24 of 198.18.0.0/15 set, some
        // deleted and some set again later in the burst: the last change of each wins.
        let net = |i: u32| format!("{}/24", std::net::Ipv4Addr::from(0xC612_0000 + (i << 8)));
        let order = |i: u32| i.wrapping_mul(37) % 512;
        let mut burst: Vec<Delta> = (0..512).map(|i| route(&net(order(i)), 1)).collect();
        burst.extend((0..512).filter(|i| i % 3 == 0).map(|i| Delta::RouteDelete {
            prefix: net(order(i)).parse().unwrap(),
        }));
        burst.extend((0..512).filter(|i| i % 9 == 0).map(|i| route(&net(order(i)), 2)));
        assert!(burst.len() > 2 * GATHER);
        p.apply_staged(&f.records(&burst));
        p.commit_routes();
        for i in 0..512 {
            let prefix: Prefix = net(order(i)).parse().unwrap();
            let addr = net(order(i)).replace("0/24", "1");
            // Group 1 has one next hop, group 2 two; a deleted /24 falls back to the /15's
            // group 2.
            let (present, hops) = match (i % 9, i % 3) {
                (0, _) => (true, 2),
                (_, 0) => (false, 2),
                _ => (true, 1),
            };
            assert_eq!(p.fib().get(prefix).is_some(), present, "{prefix}");
            assert_eq!(next_hops(&p, &addr).len(), hops, "{addr}");
        }
        assert_eq!(p.stats().rejected, 0);
    }

    #[test]
    fn records_before_the_first_replay_are_ignored() {
        let mut p = Programmer::new();
        let mut f = Feed(0);
        p.apply(&f.records(&[route("203.0.113.0/24", 1)]));
        assert_eq!(p.stats().discarded, 1);
        assert_eq!(p.mode(), Mode::AwaitingResync);
        p.apply(&f.records(&base(7)));
        assert_eq!(p.mode(), Mode::InSync);
        assert_eq!(p.stats().rejected, 0, "{:?}", p.stats().last_error);
        assert_eq!(p.fib().len(), 3);
        assert_eq!(next_hops(&p, "198.19.1.1").len(), 2);
        let a = p.lookup("203.0.113.9".parse().unwrap()).unwrap();
        assert_eq!(a.prefix.to_string(), "203.0.113.0/24");
        assert_eq!(p.stats().last_resync_tag, 7);
    }

    #[test]
    fn resolved_neighbours_reach_the_adjacencies_toward_them() {
        let mut p = Programmer::new();
        let mut f = Feed(0);
        p.apply(&f.records(&base(1)));
        let macs = |p: &Programmer, addr: &str| -> Vec<Option<[u8; 6]>> {
            let a = p.lookup(addr.parse().unwrap()).unwrap();
            a.members.iter().map(|(_, _, adj)| adj.dst_mac).collect()
        };
        assert_eq!(macs(&p, "203.0.113.1"), vec![None], "unresolved at first");
        let gw: IpAddr = "192.0.2.2".parse().unwrap();
        let mac = [0x02, 0xaa, 0, 0, 0, 1];
        assert_eq!(p.set_neighbor(0, gw, Some(mac)), 1, "one adjacency toward it");
        assert_eq!(p.set_neighbor(0, gw, Some(mac)), 0, "no change, no write");
        assert_eq!(macs(&p, "203.0.113.1"), vec![Some(mac)]);
        assert!(p.neighbor_in_use(0, gw));
        assert!(
            !p.neighbor_in_use(1, gw),
            "same address on another port is another neighbour"
        );
        // An adjacency the control process (re)defines later starts resolved.
        p.apply(&f.records(&[Delta::AdjacencySet {
            id: 5,
            adjacency: AdjacencySpec {
                mtu: 9000,
                ..adj(0, "192.0.2.2")
            },
        }]));
        p.apply(&f.records(&group(3, &[5])));
        p.apply(&f.records(&[route("192.0.2.0/25", 3)]));
        assert_eq!(macs(&p, "192.0.2.1"), vec![Some(mac)]);
        assert_eq!(p.neighbors(), vec![(0, gw, mac)]);
        // Failed: every adjacency toward it goes back to resolution.
        assert_eq!(p.set_neighbor(0, gw, None), 2);
        assert_eq!(macs(&p, "203.0.113.1"), vec![None]);
        assert_eq!(macs(&p, "192.0.2.1"), vec![None]);
        assert!(p.neighbors().is_empty());
    }

    #[test]
    fn incremental_changes_and_bad_references() {
        let mut p = Programmer::new();
        let mut f = Feed(0);
        p.apply(&f.records(&base(1)));
        p.apply(&f.records(&[Delta::RouteDelete {
            prefix: "203.0.113.0/24".parse().unwrap(),
        }]));
        assert!(p.lookup("203.0.113.1".parse().unwrap()).is_none());
        // A group change re-points every route using it without touching them.
        p.apply(&f.records(&group(1, &[1])));
        assert_eq!(
            next_hops(&p, "2001:db8::1"),
            vec!["198.51.100.2".parse::<IpAddr>().unwrap()]
        );
        // References to undefined things are counted, not applied, and do not stop the stream.
        p.apply(&f.records(&[route("192.0.2.0/24", 99), route("192.0.2.128/25", 1)]));
        assert_eq!(p.stats().rejected, 1);
        assert!(p.lookup("192.0.2.200".parse().unwrap()).is_some());
        // Deleting a group still in use is refused.
        p.apply(&f.records(&[Delta::GroupDelete { group: 1 }]));
        assert_eq!(p.stats().rejected, 2);
        // Garbage is counted too.
        let mut junk = [0u64; 8];
        f.0 += 1;
        junk[0] = f.0;
        junk[1] = 250;
        p.apply(&[junk]);
        assert_eq!(p.stats().rejected, 3);
        assert!(p
            .stats()
            .last_error
            .as_deref()
            .unwrap()
            .contains("unknown record kind"));
    }

    #[test]
    fn a_replay_sweeps_exactly_what_it_did_not_mention() {
        let mut p = Programmer::new();
        let mut f = Feed(0);
        p.apply(&f.records(&base(1)));
        // The new control process numbers things differently and no longer has 198.18/15.
        let replay = vec![
            Delta::ResyncBegin { tag: 2 },
            Delta::AdjacencySet {
                id: 5,
                adjacency: adj(1, "198.51.100.2"),
            },
            Delta::AdjacencySet {
                id: 6,
                adjacency: adj(0, "192.0.2.2"),
            },
        ];
        let mut replay = replay;
        replay.extend(group(3, &[6]));
        replay.push(route("203.0.113.0/24", 3));
        replay.push(route("2001:db8::/32", 3));
        replay.push(route("192.0.2.0/25", 3));
        replay.push(Delta::ResyncEnd { tag: 2 });
        let before = p.lookup("203.0.113.1".parse().unwrap()).unwrap().group;
        p.apply(&f.records(&replay));
        assert_eq!(p.stats().rejected, 0, "{:?}", p.stats().last_error);
        assert_eq!(p.stats().last_swept, 1);
        assert!(
            p.lookup("198.18.0.1".parse().unwrap()).is_none(),
            "not replayed: swept"
        );
        assert!(
            p.lookup("192.0.2.1".parse().unwrap()).is_some(),
            "new in the replay"
        );
        let after = p.lookup("203.0.113.1".parse().unwrap()).unwrap().group;
        assert_eq!(before, after, "unchanged content keeps its FIB group: no churn");
        assert_eq!(p.object_counts(), (1, 2), "the two-member group is gone");
        // The new numbering is in force.
        p.apply(&f.records(&[route("198.51.100.0/24", 3)]));
        assert_eq!(p.stats().rejected, 0);
        assert_eq!(
            next_hops(&p, "198.51.100.1"),
            vec!["192.0.2.2".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn routes_keep_forwarding_during_a_replay_with_reused_ids() {
        let mut p = Programmer::new();
        let mut f = Feed(0);
        p.apply(&f.records(&base(1)));
        // Replay where control group 1 now means the other next hop: until the route is
        // replayed, it must keep its old next hop, not silently follow id 1.
        let mut replay = vec![
            Delta::ResyncBegin { tag: 2 },
            Delta::AdjacencySet {
                id: 0,
                adjacency: adj(1, "198.51.100.2"),
            },
        ];
        replay.extend(group(1, &[0]));
        p.apply(&f.records(&replay));
        assert_eq!(
            next_hops(&p, "203.0.113.1"),
            vec!["192.0.2.2".parse::<IpAddr>().unwrap()]
        );
        p.apply(&f.records(&[route("203.0.113.0/24", 1), Delta::ResyncEnd { tag: 2 }]));
        assert_eq!(
            next_hops(&p, "203.0.113.1"),
            vec!["198.51.100.2".parse::<IpAddr>().unwrap()]
        );
        assert!(p.lookup("198.18.0.1".parse().unwrap()).is_none());
        assert_eq!(p.fib().len(), 1);
    }

    #[test]
    fn an_interrupted_replay_is_superseded_by_the_next() {
        let mut p = Programmer::new();
        let mut f = Feed(0);
        p.apply(&f.records(&base(1)));
        let mut partial = vec![
            Delta::ResyncBegin { tag: 2 },
            Delta::AdjacencySet {
                id: 9,
                adjacency: adj(2, "203.0.113.254"),
            },
        ];
        partial.extend(group(4, &[9]));
        partial.push(route("203.0.113.0/24", 4));
        p.apply(&f.records(&partial));
        // The control process died here; its successor replays the original state.
        p.apply(&f.records(&base(3)));
        assert_eq!(p.stats().rejected, 0, "{:?}", p.stats().last_error);
        assert_eq!(p.fib().len(), 3);
        assert_eq!(
            next_hops(&p, "203.0.113.1"),
            vec!["192.0.2.2".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(p.object_counts(), (2, 2), "the half-replayed objects are gone");
    }

    #[test]
    fn sequence_gaps_are_reported() {
        let mut p = Programmer::new();
        let mut f = Feed(0);
        p.apply(&f.records(&base(1)));
        f.0 += 5;
        p.apply(&f.records(&[route("192.0.2.0/24", 1)]));
        assert_eq!(p.stats().rejected, 1);
        assert!(p.stats().last_error.as_deref().unwrap().contains("sequence"));
        assert!(
            p.lookup("192.0.2.1".parse().unwrap()).is_some(),
            "the record itself applies"
        );
    }
}
