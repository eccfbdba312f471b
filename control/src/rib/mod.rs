//! The RIB: every candidate route, the best one per prefix, recursive next-hop resolution,
//! interned ECMP groups and adjacencies, and the coalesced stream of FIB deltas for the engine.
//!
//! Why it is built this way:
//!
//! - **Storage.** Prefix entries live in a slab (`Vec<Entry>`, 64 bytes each, the single
//!   candidate inline) and one hash table per family maps a prefix to its slot ([`PrefixIndex`],
//!   16 or 24 bytes per bucket, at most 3/4 full). Exact lookups, the work of every route
//!   change, cost one probe into it, which a caller holding the next prefixes (an UPDATE's)
//!   prefetches with [`Rib::prefetch`]; a full table arrives in random order, where a trie
//!   walk (tried before: a tree bitmap) costs a few cache misses per prefix, about twice the
//!   hash map's time. Longest-
//!   prefix match (recursive resolution, `lookup`, BGP next hops: per next hop, not per
//!   route) probes the prefix lengths present, longest first, as BIRD does over its hash of
//!   networks; "more specifics" for `routes` walk the map (a CLI query). Slots are `u32`, so
//!   dependency sets cost four bytes per route instead of an 18-byte `IpNet`. A protocol may
//!   pin a slot ([`Rib::pin`]) and keep its own per-prefix state in a side table indexed by
//!   it: BGP does, so a received prefix is looked up once, not in an index of its own too.
//! - **Interning.** A route's next hops are stored once per distinct set (a "target"); a route
//!   holds its index. Groups (sorted resolved member lists) and adjacencies are interned with
//!   reference counts. 1.06 million static routes via a few gateways thus cost one entry each
//!   plus a handful of shared objects.
//! - **Resolution.** Recursive next hops are tracked as gateways, keyed by address (and, when
//!   the gateway lies inside the route's own prefix, by that prefix, which the resolution must
//!   skip). A gateway is resolved from scratch by walking the selected routes with cycle
//!   detection and a depth limit, so a cycle can never keep itself alive on stale state. Each
//!   target caches its evaluation for the current generation, so a million routes on one
//!   target resolve once.
//! - **Dependencies.** Target -> prefixes and gateway -> targets let a gateway change touch only
//!   the routes that use it; a changed prefix re-resolves only the gateways it contains (found
//!   in a trie of gateway addresses).
//! - **Coalescing.** Changes only mark prefixes dirty. `drain` settles selection and resolution
//!   to a fixpoint (bounded), then compares each touched prefix's wanted group with what the
//!   engine has and emits at most one record per prefix, definitions before users and deletes
//!   after the last user is gone.
//!
//! Semantics worth knowing: a recursive next hop's weight multiplies the weights of the hops it
//! resolves to; duplicate members merge (weights add); groups keep the first 64 members by
//! (port, neighbour). A recursive next hop resolving through a discard route lends that action
//! to the route only if no other next hop forwards. A prefix whose outcome keeps changing
//! within one drain (it resolves through itself via a fallback, so no stable state exists) is
//! held unusable after `MAX_FLAPS` changes until something it depends on changes again.

mod index;
mod tables;
#[cfg(test)]
mod tests;
mod types;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;
use xroute_common::delta::{AdjacencyAction, AdjacencySpec, Delta, PortSpec, MAX_GROUP_MEMBERS};

use index::PrefixIndex;
use tables::{normalize_members, AdjKey, Adjacencies, Groups};
pub use types::{
    Interface, NextHopSpec, ParseProtocolError, Protocol, ResolvedHop, RibError, RibStats, Route,
    RouteFilter, RouteView, Target,
};

/// A prefix's place in the RIB, handed out by [`Rib::pin`] to a protocol that indexes its own
/// per-prefix state by it (the BGP speaker), so that a prefix is looked up once per change
/// instead of once in the protocol's index and again in the RIB's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot(u32);

impl Slot {
    /// A dense index (slots are reused after being freed), for a side table in a `Vec`.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The slot at a dense index, for a protocol walking its side table of pinned slots.
    pub(crate) fn from_index(i: usize) -> Self {
        Self(u32::try_from(i).unwrap_or(u32::MAX))
    }
}

/// Adjacency ids the engine accepts from the control process: `0..ADJACENCY_LIMIT`.
pub const ADJACENCY_LIMIT: u32 = xroute_common::delta::MAX_ADJACENCIES;
/// Group ids the engine accepts from the control process: `1..=GROUP_LIMIT`.
pub const GROUP_LIMIT: u32 = xroute_common::delta::MAX_GROUPS;

/// Longest chain of recursive next hops followed before giving up.
const MAX_DEPTH: usize = 8;
/// Gateway resolutions one top-level resolution may perform (bounds ECMP fan-out blowup).
const RESOLVE_BUDGET: u32 = 4096;
/// Selection/resolution rounds per drain; what is still dirty waits for the next drain.
const MAX_ROUNDS: usize = 64;
/// Outcome changes of one prefix within one drain after which it is held unusable: a route
/// whose next hop resolves through itself via a fallback candidate has no stable state.
const MAX_FLAPS: u8 = 6;

const SEL_NONE: u8 = u8::MAX;
const SEQ_NONE: u64 = u64::MAX;

const DIRTY: u8 = 1;
const TOUCHED: u8 = 2;
const FAILED: u8 = 4;
const UNRESOLVED: u8 = 8;
/// Held unusable for the rest of this drain (see `MAX_FLAPS`).
const HELD: u8 = 16;
/// Changed outcome once in this drain (further changes are counted in `flaps`).
const CHANGED: u8 = 32;
/// An index outside the RIB refers to this slot ([`Rib::pin`]): it is not freed, so that the
/// slot keeps naming its prefix.
const PINNED: u8 = 64;

const T_BLACKHOLE: u32 = 0;
const T_UNREACHABLE: u32 = 1;
const T_LOCAL: u32 = 2;
/// Targets below this index are the shared actions above; the others index `targets`.
const SPECIAL: u32 = 3;

/// Hashes slot numbers with one multiplication: slot sets are hit once per route on bulk loads,
/// and slots are not attacker-chosen, so SipHash's protection buys nothing there.
#[derive(Clone, Copy, Debug, Default)]
struct SlotHasher(u64);

impl Hasher for SlotHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0 ^ u64::from(n)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type SlotSet = HashSet<u32, BuildHasherDefault<SlotHasher>>;
type SlotMap<V> = HashMap<u32, V, BuildHasherDefault<SlotHasher>>;

/// The slots of the prefixes using one next-hop set: a hash set while few, a bitmap over
/// every slot once many (a protocol's table shares one set: a million entries, added in slot
/// order while a table loads, is then a sequential 128 kB instead of a random 8 MB).
#[derive(Debug)]
enum Dependents {
    Few(SlotSet),
    Many { bits: Vec<u64>, len: usize },
}

impl Default for Dependents {
    fn default() -> Self {
        Self::Few(SlotSet::default())
    }
}

impl Dependents {
    /// Past this many slots a set becomes a bitmap (which then stays one).
    const FEW: usize = 4096;

    fn insert(&mut self, slot: u32) {
        match self {
            Self::Few(set) => {
                set.insert(slot);
                if set.len() > Self::FEW {
                    let mut many = Self::Many {
                        bits: Vec::new(),
                        len: 0,
                    };
                    set.iter().for_each(|&s| many.insert(s));
                    *self = many;
                }
            }
            Self::Many { bits, len } => {
                let (word, bit) = (slot as usize / 64, 1u64 << (slot % 64));
                if word >= bits.len() {
                    bits.resize(word + 1, 0);
                }
                if bits[word] & bit == 0 {
                    bits[word] |= bit;
                    *len += 1;
                }
            }
        }
    }

    fn remove(&mut self, slot: u32) {
        match self {
            Self::Few(set) => {
                set.remove(&slot);
            }
            Self::Many { bits, len } => {
                let (word, bit) = (slot as usize / 64, 1u64 << (slot % 64));
                if let Some(w) = bits.get_mut(word) {
                    if *w & bit != 0 {
                        *w &= !bit;
                        *len -= 1;
                    }
                }
            }
        }
    }

    /// Every slot, in no particular order.
    fn slots(&self) -> Vec<u32> {
        match self {
            Self::Few(set) => set.iter().copied().collect(),
            Self::Many { bits, len } => {
                let mut out = Vec::with_capacity(*len);
                for (i, &w) in bits.iter().enumerate() {
                    let mut w = w;
                    while w != 0 {
                        out.push((i * 64) as u32 + w.trailing_zeros());
                        w &= w - 1;
                    }
                }
                out
            }
        }
    }
}

/// One candidate, 16 bytes; its next hops are the interned target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cand {
    protocol: Protocol,
    distance: u8,
    id: u32,
    metric: u32,
    target: u32,
}

impl Cand {
    fn rank(&self) -> (u8, u32, Protocol, u32) {
        (self.distance, self.metric, self.protocol, self.id)
    }
}

/// Candidates of a prefix: inline for the usual single one. 16 bytes: `None` and `Many` live in
/// the niche of the inline candidate's protocol, and `Many` is a thin pointer that fits beside
/// it (a boxed slice made the enum 24 bytes, and every RIB entry 64 instead of 56).
#[derive(Debug)]
enum Cands {
    None,
    One(Cand),
    /// Two or more (rarely more than two). The box is what keeps the enum small: a `Vec`
    /// inline would take 24 bytes.
    #[allow(clippy::box_collection)]
    Many(Box<Vec<Cand>>),
}

impl Cands {
    fn as_slice(&self) -> &[Cand] {
        match self {
            Self::None => &[],
            Self::One(c) => std::slice::from_ref(c),
            Self::Many(v) => v,
        }
    }

    /// Inserts or replaces the candidate with the same (protocol, id); returns the old one.
    fn upsert(&mut self, c: Cand) -> Option<Cand> {
        let same = |o: &Cand| o.protocol == c.protocol && o.id == c.id;
        match self {
            Self::None => {
                *self = Self::One(c);
                None
            }
            Self::One(o) if same(o) => Some(std::mem::replace(o, c)),
            Self::One(o) => {
                *self = Self::Many(Box::new(vec![*o, c]));
                None
            }
            Self::Many(v) => match v.iter_mut().find(|o| same(o)) {
                Some(o) => Some(std::mem::replace(o, c)),
                None => {
                    v.push(c);
                    None
                }
            },
        }
    }

    fn remove(&mut self, protocol: Protocol, id: u32) -> Option<Cand> {
        match self {
            Self::One(o) if o.protocol == protocol && o.id == id => {
                let o = *o;
                *self = Self::None;
                Some(o)
            }
            Self::Many(v) => {
                let i = v.iter().position(|o| o.protocol == protocol && o.id == id)?;
                let o = v.remove(i);
                if let [only] = v[..] {
                    *self = Self::One(only);
                }
                Some(o)
            }
            _ => None,
        }
    }
}

/// Everything the RIB knows about one prefix.
#[derive(Debug)]
struct Entry {
    prefix: IpNet,
    cands: Cands,
    /// Sequence number of the record that programmed `programmed`, `SEQ_NONE` if none.
    fib_seq: u64,
    /// The selected candidate's id; its protocol is `sel_proto` (`SEL_NONE`: nothing usable).
    sel_id: u32,
    /// Wanted group after the last evaluation (0: none), counted in the group's refs.
    group: u32,
    /// Group the engine has for this prefix (0: no route).
    programmed: u32,
    sel_proto: u8,
    flags: u8,
}

impl Entry {
    fn new(prefix: IpNet) -> Self {
        Self {
            prefix,
            cands: Cands::None,
            fib_seq: SEQ_NONE,
            sel_id: 0,
            group: 0,
            programmed: 0,
            sel_proto: SEL_NONE,
            flags: 0,
        }
    }

    fn selected(&self) -> Option<&Cand> {
        if self.sel_proto == SEL_NONE {
            return None;
        }
        self.cands
            .as_slice()
            .iter()
            .find(|c| c.protocol as u8 == self.sel_proto && c.id == self.sel_id)
    }
}

/// What a target evaluates to in one generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Eval {
    Unusable,
    Group(u32),
    /// Usable, but no group or adjacency id was free.
    Failed,
}

/// An interned next-hop set.
#[derive(Debug)]
struct NhSet {
    specs: Box<[NextHopSpec]>,
    /// Recursive (via-only) next hops with their gateway (no exclusion).
    rec: Box<[(IpAddr, u32)]>,
    /// Candidates using this set.
    refs: u32,
    /// Slots of prefixes with a candidate using this set.
    dependents: Dependents,
    cache_gen: u64,
    cache: Eval,
}

/// The resolution of a tracked gateway address.
#[derive(Clone, Debug, PartialEq, Eq)]
enum GwRes {
    Unresolved,
    Action(AdjacencyAction),
    /// (port, neighbour, weight), sorted, merged.
    Hops(Box<[(u16, IpAddr, u32)]>),
}

#[derive(Debug)]
struct Gateway {
    addr: IpAddr,
    /// A prefix the resolution must not use: the route being resolved itself.
    exclude: Option<IpNet>,
    refs: u32,
    state: GwRes,
    dirty: bool,
    /// Targets with this gateway as a recursive next hop (no exclusion).
    targets: Vec<u32>,
    /// Slots resolving through this gateway with exclusion, with a use count.
    slots: SlotMap<u32>,
}

#[derive(Debug)]
struct Port {
    iface: Interface,
    spec: PortSpec,
}

/// Result of resolving one candidate's target.
#[derive(Debug)]
enum Resolution {
    Unusable,
    Action(AdjacencyAction),
    Members(Vec<(AdjKey, u32)>),
}

/// The routing information base of the control process; see the module docs.
#[derive(Debug)]
pub struct Rib {
    entries: Vec<Entry>,
    entry_free: Vec<u32>,
    index: PrefixIndex,
    dirty: Vec<u32>,
    touched: Vec<u32>,
    /// Slots whose selected route could not get ids; retried when ids are freed.
    failed: BTreeSet<u32>,
    retry_failed: bool,
    /// Invalidates target caches; bumped per drain and per gateway change.
    generation: u64,
    /// Outcome changes per prefix in the current drain (only prefixes that changed).
    flaps: SlotMap<u8>,

    targets: Vec<Option<NhSet>>,
    target_map: HashMap<Box<[NextHopSpec]>, u32>,
    /// The next-hop list last interned and its target: a protocol hands one shared list to a
    /// table's worth of routes, which then skip normalizing and hashing it. Holding the `Arc`
    /// keeps its address from being reused; cleared when the target is freed or a port
    /// changes (normalizing checks the ports).
    last_target: Option<(Arc<[NextHopSpec]>, u32)>,
    target_free: Vec<u32>,
    special_cache: [(u64, Eval); SPECIAL as usize],

    gws: Vec<Option<Gateway>>,
    gw_free: Vec<u32>,
    gw_map: HashMap<(IpAddr, Option<IpNet>), u32>,
    gw_v4: PrefixMap<Ipv4Net, Vec<u32>>,
    gw_v6: PrefixMap<Ipv6Net, Vec<u32>>,
    dirty_gws: Vec<u32>,

    adjs: Adjacencies,
    groups: Groups,

    ports: BTreeMap<u16, Port>,
    ports_programmed: BTreeMap<u16, PortSpec>,
    ports_dirty: BTreeSet<u16>,
    adj_respec: bool,

    per_protocol: [usize; 7],
    selected_v4: usize,
    selected_v6: usize,
    unresolved: usize,
}

impl Default for Rib {
    fn default() -> Self {
        Self::new()
    }
}

impl Rib {
    /// An empty RIB with the engine's id limits.
    pub fn new() -> Self {
        Self::with_limits(ADJACENCY_LIMIT, GROUP_LIMIT)
    }

    /// An empty RIB with smaller id spaces (tests of exhaustion, smaller engines).
    pub fn with_limits(adjacencies: u32, groups: u32) -> Self {
        Self {
            entries: Vec::new(),
            entry_free: Vec::new(),
            index: PrefixIndex::default(),
            dirty: Vec::new(),
            touched: Vec::new(),
            failed: BTreeSet::new(),
            retry_failed: false,
            generation: 0,
            flaps: SlotMap::default(),
            targets: Vec::new(),
            target_map: HashMap::new(),
            last_target: None,
            target_free: Vec::new(),
            special_cache: [(u64::MAX, Eval::Unusable); SPECIAL as usize],
            gws: Vec::new(),
            gw_free: Vec::new(),
            gw_map: HashMap::new(),
            gw_v4: PrefixMap::new(),
            gw_v6: PrefixMap::new(),
            dirty_gws: Vec::new(),
            adjs: Adjacencies::new(adjacencies.min(ADJACENCY_LIMIT)),
            groups: Groups::new(groups.min(GROUP_LIMIT)),
            ports: BTreeMap::new(),
            ports_programmed: BTreeMap::new(),
            ports_dirty: BTreeSet::new(),
            adj_respec: false,
            per_protocol: [0; 7],
            selected_v4: 0,
            selected_v6: 0,
            unresolved: 0,
        }
    }

    // ---------------------------------------------------------------- interfaces

    /// Adds or changes the interface on `port`. While it is up, it contributes a connected
    /// route for each address's subnet and a local route for each address; routes through it
    /// re-resolve when it goes up or down.
    pub fn set_interface(&mut self, port: u16, iface: Interface) -> Result<(), RibError> {
        let name =
            PortSpec::encode_name(&iface.name).ok_or_else(|| RibError::InterfaceName(iface.name.clone()))?;
        let spec = PortSpec {
            ifindex: iface.ifindex,
            mtu: iface.mtu,
            mac: iface.mac,
            up: iface.up,
            name,
        };
        let new_derived = derived_routes(&iface);
        self.last_target = None;
        let old = self.ports.insert(port, Port { iface, spec });
        let old_derived = old.as_ref().map(|p| derived_routes(&p.iface)).unwrap_or_default();
        match &old {
            None => self.dirty_port(port),
            Some(o) => {
                if o.spec.up != spec.up {
                    self.dirty_port(port);
                }
                if o.spec.mtu != spec.mtu || o.spec.mac != spec.mac {
                    self.adj_respec = true;
                }
            }
        }
        self.ports_dirty.insert(port);
        self.sync_derived(port, &old_derived, &new_derived);
        Ok(())
    }

    /// Removes the interface on `port` with its connected and local routes; routes through it
    /// lose those next hops (they stay, unresolved, until the port comes back).
    pub fn remove_interface(&mut self, port: u16) {
        let Some(old) = self.ports.remove(&port) else {
            return;
        };
        self.last_target = None;
        self.sync_derived(port, &derived_routes(&old.iface), &BTreeSet::new());
        self.ports_dirty.insert(port);
        self.dirty_port(port);
    }

    fn sync_derived(
        &mut self,
        port: u16,
        old: &BTreeSet<(IpNet, Protocol)>,
        new: &BTreeSet<(IpNet, Protocol)>,
    ) {
        for &(prefix, protocol) in old.difference(new) {
            self.remove_cand(prefix, protocol, u32::from(port));
        }
        for &(prefix, protocol) in new.difference(old) {
            let target = if protocol == Protocol::Local {
                T_LOCAL
            } else {
                self.intern_target(vec![NextHopSpec {
                    via: None,
                    port: Some(port),
                    weight: 1,
                }])
            };
            let slot = self.slot_or_insert(prefix);
            self.put(
                slot,
                Cand {
                    protocol,
                    distance: protocol.default_distance(),
                    id: u32::from(port),
                    metric: 0,
                    target,
                },
            );
        }
    }

    fn port_up(&self, port: u16) -> bool {
        self.ports.get(&port).is_some_and(|p| p.spec.up)
    }

    /// Marks everything whose resolution may depend on `port` being usable.
    fn dirty_port(&mut self, port: u16) {
        let mut slots = Vec::new();
        for nh in self.targets.iter().flatten() {
            if nh.specs.iter().any(|s| s.port == Some(port)) {
                slots.extend(nh.dependents.slots());
            }
        }
        slots.into_iter().for_each(|s| self.mark(s));
        let gws: Vec<u32> = self
            .gws
            .iter()
            .enumerate()
            .filter_map(|(i, g)| {
                let g = g.as_ref()?;
                let uses = match &g.state {
                    GwRes::Hops(h) => h.iter().any(|&(p, _, _)| p == port),
                    _ => true,
                };
                uses.then_some(i as u32)
            })
            .collect();
        gws.into_iter().for_each(|g| self.mark_gw(g));
    }

    // ---------------------------------------------------------------- routes

    /// Adds or replaces the candidate (prefix, protocol, id).
    pub fn upsert(&mut self, prefix: IpNet, route: Route) -> Result<(), RibError> {
        if prefix.trunc() != prefix {
            return Err(RibError::HostBits(prefix));
        }
        let cand = self.cand(route)?;
        let slot = self.slot_or_insert(prefix);
        self.put(slot, cand);
        Ok(())
    }

    /// As [`Rib::upsert`] for the prefix of a slot from [`Rib::pin`] (no lookup).
    pub fn upsert_at(&mut self, slot: Slot, route: Route) -> Result<(), RibError> {
        let cand = self.cand(route)?;
        self.put(slot.0, cand);
        Ok(())
    }

    /// A route as a candidate, its next hops interned.
    fn cand(&mut self, route: Route) -> Result<Cand, RibError> {
        if route.protocol.is_derived() {
            return Err(RibError::Derived(route.protocol));
        }
        let target = match route.target {
            Target::Blackhole => T_BLACKHOLE,
            Target::Unreachable => T_UNREACHABLE,
            Target::NextHops(hops) => match &self.last_target {
                Some((last, t)) if Arc::ptr_eq(last, &hops) => *t,
                _ => {
                    let specs = self.normalize_hops(hops.to_vec())?;
                    let t = self.intern_target(specs);
                    self.last_target = Some((hops, t));
                    t
                }
            },
        };
        Ok(Cand {
            protocol: route.protocol,
            distance: route.distance,
            id: route.id,
            metric: route.metric,
            target,
        })
    }

    /// Removes the candidate (prefix, protocol, id); false if there was none. Connected and
    /// local routes follow the interfaces and are never removed here.
    pub fn remove(&mut self, prefix: IpNet, protocol: Protocol, id: u32) -> bool {
        !protocol.is_derived() && self.remove_cand(prefix, protocol, id)
    }

    /// As [`Rib::remove`] for the prefix of a slot from [`Rib::pin`] (no lookup).
    pub fn remove_at(&mut self, slot: Slot, protocol: Protocol, id: u32) -> bool {
        !protocol.is_derived() && self.remove_cand_at(slot.0, protocol, id)
    }

    /// The slot of `prefix` (created if the RIB has none), kept until [`Rib::unpin`] even
    /// while the prefix has no candidate: a protocol keeps its per-prefix state (BGP: every
    /// peer's paths, also those its policy rejected) in a side table indexed by the slot,
    /// instead of a second index of a million prefixes. A slot has one pin: one protocol per
    /// RIB may index by slots (BGP).
    pub fn pin(&mut self, prefix: IpNet) -> Result<Slot, RibError> {
        if prefix.trunc() != prefix {
            return Err(RibError::HostBits(prefix));
        }
        let slot = self.slot_or_insert(prefix);
        self.entries[slot as usize].flags |= PINNED;
        Ok(Slot(slot))
    }

    /// Ends [`Rib::pin`]: the slot is freed at the next drain if nothing else uses it, and may
    /// then name another prefix.
    pub fn unpin(&mut self, slot: Slot) {
        if let Some(e) = self.entries.get_mut(slot.index()) {
            e.flags &= !PINNED;
            // Through the drain, which frees unused slots among those it touched.
            self.mark(slot.0);
        }
    }

    /// Starts loading the index entry of `prefix` so that a [`Rib::pin`] or [`Rib::slot`] of it
    /// a little later does not wait for memory. Only a hint: it changes no result.
    pub fn prefetch(&self, prefix: &IpNet) {
        self.index.prefetch(prefix);
    }

    /// The slot of `prefix`, if the RIB has one.
    pub fn slot(&self, prefix: &IpNet) -> Option<Slot> {
        self.slot_of(prefix).map(Slot)
    }

    /// The prefix a slot names (`None` past the slots in use).
    pub fn prefix_at(&self, slot: Slot) -> Option<IpNet> {
        self.entries.get(slot.index()).map(|e| e.prefix)
    }

    /// Keeps only the routes of `protocol` for which `keep(prefix, id)` holds (configuration
    /// reload); returns how many were removed. Walks every prefix: meant for reloads, not for
    /// per-update work.
    pub fn retain(&mut self, protocol: Protocol, mut keep: impl FnMut(&IpNet, u32) -> bool) -> usize {
        if protocol.is_derived() {
            return 0;
        }
        let gone: Vec<(IpNet, u32)> = self
            .entries
            .iter()
            .flat_map(|e| {
                e.cands
                    .as_slice()
                    .iter()
                    .filter(|c| c.protocol == protocol)
                    .map(move |c| (e.prefix, c.id))
            })
            .filter(|(p, id)| !keep(p, *id))
            .collect();
        for &(prefix, id) in &gone {
            self.remove_cand(prefix, protocol, id);
        }
        gone.len()
    }

    fn normalize_hops(&self, mut hops: Vec<NextHopSpec>) -> Result<Vec<NextHopSpec>, RibError> {
        if hops.is_empty() {
            return Err(RibError::NoNextHops);
        }
        if hops.len() > MAX_GROUP_MEMBERS {
            return Err(RibError::TooManyNextHops(hops.len()));
        }
        for h in &hops {
            if h.weight == 0 {
                return Err(RibError::ZeroWeight);
            }
            match h.port {
                None if h.via.is_none() => return Err(RibError::EmptyNextHop),
                Some(p) if !self.ports.contains_key(&p) => return Err(RibError::UnknownPort(p)),
                _ => {}
            }
        }
        hops.sort_unstable_by_key(|h| (h.via, h.port));
        let mut out: Vec<NextHopSpec> = Vec::with_capacity(hops.len());
        for h in hops {
            match out.last_mut() {
                Some(l) if (l.via, l.port) == (h.via, h.port) => l.weight = l.weight.saturating_add(h.weight),
                _ => out.push(h),
            }
        }
        Ok(out)
    }

    fn slot_of(&self, prefix: &IpNet) -> Option<u32> {
        self.index.get(prefix)
    }

    /// The slot of `prefix`, a new one if it has none (one hash probe either way).
    fn slot_or_insert(&mut self, prefix: IpNet) -> u32 {
        let (entries, free) = (&mut self.entries, &mut self.entry_free);
        self.index.get_or_insert_with(prefix, || match free.pop() {
            Some(s) => {
                entries[s as usize] = Entry::new(prefix);
                s
            }
            None => {
                entries.push(Entry::new(prefix));
                (entries.len() - 1) as u32
            }
        })
    }

    fn put(&mut self, slot: u32, cand: Cand) {
        let old = self.entries[slot as usize].cands.upsert(cand);
        if old == Some(cand) {
            return;
        }
        self.attach(slot, cand.target);
        match old {
            Some(o) => self.detach(slot, o.target),
            None => self.per_protocol[cand.protocol as usize] += 1,
        }
        self.mark(slot);
    }

    fn remove_cand(&mut self, prefix: IpNet, protocol: Protocol, id: u32) -> bool {
        let Some(slot) = self.slot_of(&prefix) else {
            return false;
        };
        self.remove_cand_at(slot, protocol, id)
    }

    fn remove_cand_at(&mut self, slot: u32, protocol: Protocol, id: u32) -> bool {
        let Some(old) = self.entries[slot as usize].cands.remove(protocol, id) else {
            return false;
        };
        self.per_protocol[protocol as usize] -= 1;
        self.detach(slot, old.target);
        self.mark(slot);
        true
    }

    fn mark(&mut self, slot: u32) {
        let e = &mut self.entries[slot as usize];
        if e.flags & DIRTY == 0 {
            e.flags |= DIRTY;
            self.dirty.push(slot);
        }
    }

    // ---------------------------------------------------------------- targets and gateways

    fn nh(&self, t: u32) -> Option<&NhSet> {
        let i = t.checked_sub(SPECIAL)?;
        self.targets.get(i as usize)?.as_ref()
    }

    fn nh_mut(&mut self, t: u32) -> Option<&mut NhSet> {
        let i = t.checked_sub(SPECIAL)?;
        self.targets.get_mut(i as usize)?.as_mut()
    }

    /// The target for a normalized next-hop list, created (with no users) if new.
    fn intern_target(&mut self, specs: Vec<NextHopSpec>) -> u32 {
        if let Some(&t) = self.target_map.get(specs.as_slice()) {
            return t;
        }
        let idx = self.target_free.pop().unwrap_or_else(|| {
            self.targets.push(None);
            (self.targets.len() - 1) as u32
        });
        let t = idx + SPECIAL;
        let mut rec = Vec::new();
        for s in &specs {
            if let (Some(via), None) = (s.via, s.port) {
                let g = self.gw_acquire(via, None);
                if let Some(gw) = self.gws[g as usize].as_mut() {
                    gw.targets.push(t);
                }
                rec.push((via, g));
            }
        }
        let specs: Box<[NextHopSpec]> = specs.into();
        self.target_map.insert(specs.clone(), t);
        self.targets[idx as usize] = Some(NhSet {
            specs,
            rec: rec.into(),
            refs: 0,
            dependents: Dependents::default(),
            cache_gen: u64::MAX,
            cache: Eval::Unusable,
        });
        t
    }

    fn free_target(&mut self, t: u32) {
        let Some(nh) = t
            .checked_sub(SPECIAL)
            .and_then(|i| self.targets.get_mut(i as usize))
            .and_then(Option::take)
        else {
            return;
        };
        self.target_map.remove(&nh.specs);
        if self.last_target.as_ref().is_some_and(|(_, last)| *last == t) {
            self.last_target = None;
        }
        for &(_, g) in nh.rec.iter() {
            if let Some(gw) = self.gws[g as usize].as_mut() {
                gw.targets.retain(|&x| x != t);
            }
            self.gw_release(g);
        }
        self.target_free.push(t - SPECIAL);
    }

    /// Recursive next hops of `t` that lie inside `prefix` (they must not resolve through it).
    fn self_covered(&self, t: u32, prefix: &IpNet) -> Vec<IpAddr> {
        self.nh(t).map_or_else(Vec::new, |nh| {
            nh.rec.iter().map(|r| r.0).filter(|a| covers(prefix, a)).collect()
        })
    }

    fn attach(&mut self, slot: u32, t: u32) {
        let prefix = self.entries[slot as usize].prefix;
        let Some(nh) = self.nh_mut(t) else { return };
        nh.refs += 1;
        nh.dependents.insert(slot);
        for a in self.self_covered(t, &prefix) {
            let g = self.gw_acquire(a, Some(prefix));
            if let Some(gw) = self.gws[g as usize].as_mut() {
                *gw.slots.entry(slot).or_insert(0) += 1;
            }
        }
    }

    /// Drops one use of `t` by the prefix in `slot`; call after the candidate left the entry.
    fn detach(&mut self, slot: u32, t: u32) {
        let e = &self.entries[slot as usize];
        let prefix = e.prefix;
        let still = e.cands.as_slice().iter().any(|c| c.target == t);
        let Some(nh) = self.nh_mut(t) else { return };
        nh.refs -= 1;
        if !still {
            nh.dependents.remove(slot);
        }
        let refs = nh.refs;
        for a in self.self_covered(t, &prefix) {
            if let Some(&g) = self.gw_map.get(&(a, Some(prefix))) {
                if let Some(gw) = self.gws[g as usize].as_mut() {
                    if let Some(n) = gw.slots.get_mut(&slot) {
                        *n -= 1;
                        if *n == 0 {
                            gw.slots.remove(&slot);
                        }
                    }
                }
                self.gw_release(g);
            }
        }
        if refs == 0 {
            self.free_target(t);
        }
    }

    fn gw_acquire(&mut self, addr: IpAddr, exclude: Option<IpNet>) -> u32 {
        if let Some(&g) = self.gw_map.get(&(addr, exclude)) {
            if let Some(gw) = self.gws[g as usize].as_mut() {
                gw.refs += 1;
            }
            return g;
        }
        let g = self.gw_free.pop().unwrap_or_else(|| {
            self.gws.push(None);
            (self.gws.len() - 1) as u32
        });
        self.gws[g as usize] = Some(Gateway {
            addr,
            exclude,
            refs: 1,
            state: GwRes::Unresolved,
            dirty: false,
            targets: Vec::new(),
            slots: SlotMap::default(),
        });
        self.gw_map.insert((addr, exclude), g);
        match addr {
            IpAddr::V4(a) => self.gw_v4.entry(Ipv4Net::from(a)).or_default().push(g),
            IpAddr::V6(a) => self.gw_v6.entry(Ipv6Net::from(a)).or_default().push(g),
        }
        self.mark_gw(g);
        g
    }

    fn gw_release(&mut self, g: u32) {
        let Some(gw) = self.gws[g as usize].as_mut() else {
            return;
        };
        gw.refs -= 1;
        if gw.refs > 0 {
            return;
        }
        let (addr, exclude) = (gw.addr, gw.exclude);
        self.gws[g as usize] = None;
        self.gw_map.remove(&(addr, exclude));
        match addr {
            IpAddr::V4(a) => {
                let key = Ipv4Net::from(a);
                if let Some(v) = self.gw_v4.get_mut(&key) {
                    v.retain(|&x| x != g);
                    if v.is_empty() {
                        self.gw_v4.remove(&key);
                    }
                }
            }
            IpAddr::V6(a) => {
                let key = Ipv6Net::from(a);
                if let Some(v) = self.gw_v6.get_mut(&key) {
                    v.retain(|&x| x != g);
                    if v.is_empty() {
                        self.gw_v6.remove(&key);
                    }
                }
            }
        }
        self.gw_free.push(g);
    }

    fn mark_gw(&mut self, g: u32) {
        if let Some(gw) = self.gws[g as usize].as_mut() {
            if !gw.dirty {
                gw.dirty = true;
                self.dirty_gws.push(g);
            }
        }
    }

    /// Gateways whose address lies in `prefix`: their resolution may change with it.
    fn dirty_gateways_under(&mut self, prefix: IpNet) {
        let ids: Vec<u32> = match prefix {
            IpNet::V4(n) if !self.gw_v4.is_empty() => self
                .gw_v4
                .children(&n)
                .flat_map(|(_, v)| v.iter().copied())
                .collect(),
            IpNet::V6(n) if !self.gw_v6.is_empty() => self
                .gw_v6
                .children(&n)
                .flat_map(|(_, v)| v.iter().copied())
                .collect(),
            _ => return,
        };
        ids.into_iter().for_each(|g| self.mark_gw(g));
    }

    /// Longest selected prefix covering `addr`, other than `exclude`.
    fn lpm_selected(&self, addr: IpAddr, exclude: Option<IpNet>) -> Option<u32> {
        self.index
            .covering(addr)
            .find(|&(p, s)| Some(p) != exclude && self.entries[s as usize].selected().is_some())
            .map(|(_, s)| s)
    }

    /// Resolves a gateway from scratch through the selected routes. `stack` holds the gateways
    /// being resolved (cycle detection); each step spends `budget`.
    fn resolve_gw(
        &self,
        addr: IpAddr,
        exclude: Option<IpNet>,
        stack: &mut Vec<(IpAddr, Option<IpNet>)>,
        budget: &mut u32,
    ) -> GwRes {
        if *budget == 0 {
            return GwRes::Unresolved;
        }
        *budget -= 1;
        let Some(q) = self.lpm_selected(addr, exclude) else {
            return GwRes::Unresolved;
        };
        let e = &self.entries[q as usize];
        let Some(c) = e.selected() else {
            return GwRes::Unresolved;
        };
        let nh = match c.target {
            T_BLACKHOLE => return GwRes::Action(AdjacencyAction::Blackhole),
            T_UNREACHABLE => return GwRes::Action(AdjacencyAction::Unreachable),
            T_LOCAL => return GwRes::Unresolved,
            t => match self.nh(t) {
                Some(nh) => nh,
                None => return GwRes::Unresolved,
            },
        };
        let mut hops: Vec<(AdjKey, u32)> = Vec::new();
        let mut action = None;
        for s in nh.specs.iter() {
            match (s.via, s.port) {
                (via, Some(p)) => {
                    if self.port_up(p) {
                        hops.push((forward(p, Some(via.unwrap_or(addr))), s.weight));
                    }
                }
                (Some(g2), None) => {
                    let x2 = e.prefix.contains(&g2).then_some(e.prefix);
                    if stack.len() >= MAX_DEPTH || stack.contains(&(g2, x2)) {
                        continue;
                    }
                    stack.push((g2, x2));
                    let r = self.resolve_gw(g2, x2, stack, budget);
                    stack.pop();
                    match r {
                        GwRes::Hops(h) => hops.extend(
                            h.iter()
                                .map(|&(p, n, w)| (forward(p, Some(n)), w.saturating_mul(s.weight))),
                        ),
                        GwRes::Action(a) => action = action.or(Some(a)),
                        GwRes::Unresolved => {}
                    }
                }
                (None, None) => {}
            }
        }
        if hops.is_empty() {
            return action.map_or(GwRes::Unresolved, GwRes::Action);
        }
        GwRes::Hops(
            normalize_members(hops, MAX_GROUP_MEMBERS)
                .into_iter()
                .map(|(k, w)| (k.port, k.next_hop.unwrap_or(addr), w))
                .collect(),
        )
    }

    fn refresh_gateway(&mut self, g: u32) {
        let Some(gw) = self.gws[g as usize].as_mut() else {
            return;
        };
        gw.dirty = false;
        let (addr, exclude) = (gw.addr, gw.exclude);
        let mut budget = RESOLVE_BUDGET;
        let new = self.resolve_gw(addr, exclude, &mut vec![(addr, exclude)], &mut budget);
        let Some(gw) = self.gws[g as usize].as_mut() else {
            return;
        };
        if gw.state == new {
            return;
        }
        gw.state = new;
        self.generation += 1;
        let mut slots: Vec<u32> = gw.slots.keys().copied().collect();
        let targets = gw.targets.clone();
        for t in targets {
            if let Some(nh) = self.nh(t) {
                slots.extend(nh.dependents.slots());
            }
        }
        slots.into_iter().for_each(|s| self.mark(s));
    }

    /// Resolves target `t` for a route; `exclude` is the route's prefix when one of the
    /// target's gateways lies inside it. Read-only: views use it too.
    fn resolve_target(&self, t: u32, exclude: Option<IpNet>) -> Resolution {
        let nh = match t {
            T_BLACKHOLE => return Resolution::Action(AdjacencyAction::Blackhole),
            T_UNREACHABLE => return Resolution::Action(AdjacencyAction::Unreachable),
            T_LOCAL => return Resolution::Action(AdjacencyAction::Local),
            t => match self.nh(t) {
                Some(nh) => nh,
                None => return Resolution::Unusable,
            },
        };
        let mut members: Vec<(AdjKey, u32)> = Vec::new();
        let mut action = None;
        for s in nh.specs.iter() {
            match (s.via, s.port) {
                (via, Some(p)) => {
                    if self.port_up(p) {
                        members.push((forward(p, via), s.weight));
                    }
                }
                (Some(g), None) => {
                    let x = exclude.filter(|x| x.contains(&g));
                    let state = self
                        .gw_map
                        .get(&(g, x))
                        .and_then(|&id| self.gws[id as usize].as_ref())
                        .map(|gw| &gw.state);
                    match state {
                        Some(GwRes::Hops(h)) => members.extend(
                            h.iter()
                                .map(|&(p, n, w)| (forward(p, Some(n)), w.saturating_mul(s.weight))),
                        ),
                        Some(GwRes::Action(a)) => action = action.or(Some(*a)),
                        _ => {}
                    }
                }
                (None, None) => {}
            }
        }
        if members.is_empty() {
            return action.map_or(Resolution::Unusable, Resolution::Action);
        }
        Resolution::Members(normalize_members(members, MAX_GROUP_MEMBERS))
    }

    /// Evaluates target `t` for the prefix in `prefix`: resolution plus group interning, cached
    /// per generation unless the prefix needs its own exclusion.
    fn eval_target(&mut self, t: u32, prefix: &IpNet) -> Eval {
        let own = self
            .nh(t)
            .is_some_and(|nh| nh.rec.iter().any(|(a, _)| covers(prefix, a)));
        if !own {
            let cached = match self.nh(t) {
                Some(nh) => (nh.cache_gen, nh.cache),
                None => self
                    .special_cache
                    .get(t as usize)
                    .copied()
                    .unwrap_or((u64::MAX, Eval::Unusable)),
            };
            if cached.0 == self.generation {
                return cached.1;
            }
        }
        let ev = match self.resolve_target(t, own.then_some(*prefix)) {
            Resolution::Unusable => Eval::Unusable,
            Resolution::Action(a) => self.intern_group(&[(AdjKey::action(a), 1)]),
            Resolution::Members(m) => self.intern_group(&m),
        };
        if !own {
            let generation = self.generation;
            match self.nh_mut(t) {
                Some(nh) => (nh.cache_gen, nh.cache) = (generation, ev),
                None => {
                    if let Some(c) = self.special_cache.get_mut(t as usize) {
                        *c = (generation, ev);
                    }
                }
            }
        }
        ev
    }

    fn intern_group(&mut self, key: &[(AdjKey, u32)]) -> Eval {
        self.groups
            .intern(key, &mut self.adjs)
            .map_or(Eval::Failed, Eval::Group)
    }

    /// Re-selects the best usable candidate of a prefix; true if the outcome changed.
    fn evaluate(&mut self, slot: u32) -> bool {
        let prefix = self.entries[slot as usize].prefix;
        let held = self.entries[slot as usize].flags & HELD != 0;
        let (winner, ev) = match &self.entries[slot as usize].cands {
            _ if held => (None, Eval::Unusable),
            Cands::None => (None, Eval::Unusable),
            Cands::One(c) => {
                let c = *c;
                match self.eval_target(c.target, &prefix) {
                    Eval::Unusable => (None, Eval::Unusable),
                    ev => (Some(c), ev),
                }
            }
            Cands::Many(v) => {
                let mut order: Vec<Cand> = v.to_vec();
                order.sort_unstable_by_key(Cand::rank);
                order
                    .into_iter()
                    .find_map(|c| match self.eval_target(c.target, &prefix) {
                        Eval::Unusable => None,
                        ev => Some((Some(c), ev)),
                    })
                    .unwrap_or((None, Eval::Unusable))
            }
        };
        let new_group = match ev {
            Eval::Group(g) => g,
            _ => 0,
        };
        let new_failed = ev == Eval::Failed;
        let e = &mut self.entries[slot as usize];
        if e.flags & TOUCHED == 0 {
            e.flags |= TOUCHED;
            self.touched.push(slot);
        }
        let new_sel = winner.map_or((SEL_NONE, 0), |c| (c.protocol as u8, c.id));
        let new_unresolved = winner.is_none() && !matches!(e.cands, Cands::None);
        let old_sel = (e.sel_proto, e.sel_id);
        let old_group = e.group;
        let old_failed = e.flags & FAILED != 0;
        let old_unresolved = e.flags & UNRESOLVED != 0;
        let changed = old_sel != new_sel || old_group != new_group || old_failed != new_failed;
        (e.sel_proto, e.sel_id) = new_sel;
        e.group = new_group;
        e.flags &= !(FAILED | UNRESOLVED);
        e.flags |= if new_failed { FAILED } else { 0 } | if new_unresolved { UNRESOLVED } else { 0 };

        let was = old_sel.0 != SEL_NONE;
        let is = new_sel.0 != SEL_NONE;
        if was != is {
            let counter = match prefix {
                IpNet::V4(_) => &mut self.selected_v4,
                IpNet::V6(_) => &mut self.selected_v6,
            };
            if is {
                *counter += 1;
            } else {
                *counter -= 1;
            }
        }
        if old_unresolved != new_unresolved {
            if new_unresolved {
                self.unresolved += 1;
            } else {
                self.unresolved -= 1;
            }
        }
        if new_failed {
            self.failed.insert(slot);
        } else if old_failed {
            self.failed.remove(&slot);
        }
        if new_group != old_group {
            if let Some(g) = self.groups.get_mut(new_group) {
                g.refs += 1;
            }
            if let Some(g) = self.groups.get_mut(old_group) {
                g.refs -= 1;
                if g.refs == 0 {
                    self.groups.dead.push(old_group);
                }
            }
        }
        changed
    }

    /// Brings selection and resolution to a fixpoint (bounded by `MAX_ROUNDS`).
    fn settle(&mut self) {
        self.generation += 1;
        if std::mem::take(&mut self.retry_failed) {
            let failed: Vec<u32> = self.failed.iter().copied().collect();
            failed.into_iter().for_each(|s| self.mark(s));
        }
        for _ in 0..MAX_ROUNDS {
            if self.dirty.is_empty() && self.dirty_gws.is_empty() {
                return;
            }
            for g in std::mem::take(&mut self.dirty_gws) {
                self.refresh_gateway(g);
            }
            // Prefixes without recursive next hops first (connected routes, interface and
            // gateway-on-port routes), then the gateways they affect, then the recursive
            // ones: a burst of interfaces plus routes via their neighbours settles in one
            // round instead of evaluating every recursive route twice.
            let (direct, recursive): (Vec<u32>, Vec<u32>) = std::mem::take(&mut self.dirty)
                .into_iter()
                .partition(|&s| !self.is_recursive(s));
            for slot in direct {
                self.evaluate_dirty(slot);
            }
            for g in std::mem::take(&mut self.dirty_gws) {
                self.refresh_gateway(g);
            }
            for slot in recursive {
                self.evaluate_dirty(slot);
            }
        }
    }

    fn is_recursive(&self, slot: u32) -> bool {
        self.entries[slot as usize]
            .cands
            .as_slice()
            .iter()
            .any(|c| self.nh(c.target).is_some_and(|nh| !nh.rec.is_empty()))
    }

    /// Evaluates a dirty prefix; if its outcome changed, re-resolves the gateways it contains
    /// and holds it unusable once it has flapped `MAX_FLAPS` times in this drain.
    fn evaluate_dirty(&mut self, slot: u32) {
        self.entries[slot as usize].flags &= !DIRTY;
        if !self.evaluate(slot) {
            return;
        }
        let prefix = self.entries[slot as usize].prefix;
        self.dirty_gateways_under(prefix);
        let e = &mut self.entries[slot as usize];
        if e.flags & CHANGED == 0 {
            e.flags |= CHANGED;
            return;
        }
        let n = self.flaps.entry(slot).or_insert(1);
        *n += 1;
        if *n == MAX_FLAPS {
            e.flags |= HELD;
            self.mark(slot);
        }
    }

    // ---------------------------------------------------------------- deltas

    fn adjacency_spec(&self, key: &AdjKey) -> AdjacencySpec {
        let port = (key.action == AdjacencyAction::Forward)
            .then(|| self.ports.get(&key.port))
            .flatten();
        AdjacencySpec {
            action: key.action,
            port: key.port,
            mtu: port.map_or(0, |p| u16::try_from(p.spec.mtu).unwrap_or(u16::MAX)),
            next_hop: key.next_hop,
            src_mac: port.map_or([0; 6], |p| p.spec.mac),
        }
    }

    /// Sends group `g` (and the adjacencies it needs) if the engine does not have it yet.
    fn program_group(&mut self, g: u32, adj_out: &mut Vec<Delta>, group_out: &mut Vec<Delta>) {
        let Some(group) = self.groups.get(g) else {
            return;
        };
        if group.programmed {
            return;
        }
        let members = group.members.clone();
        for m in members.iter() {
            let Some(key) = self
                .adjs
                .get(m.adjacency)
                .filter(|a| a.emitted.is_none())
                .map(|a| a.key)
            else {
                continue;
            };
            let spec = self.adjacency_spec(&key);
            if let Some(a) = self.adjs.get_mut(m.adjacency) {
                a.emitted = Some(spec);
            }
            adj_out.push(Delta::AdjacencySet {
                id: m.adjacency,
                adjacency: spec,
            });
        }
        group_out.extend(Delta::group_chunks(g, &members));
        if let Some(group) = self.groups.get_mut(g) {
            group.programmed = true;
        }
    }

    /// Appends the coalesced deltas for every change since the last drain. Record `k` of the
    /// appended ones carries sequence number `next_seq + k`; routes remember theirs as
    /// `fib_seq`. Order: port sets, adjacency sets, group definitions, routes, group deletes,
    /// adjacency deletes, port deletes.
    pub fn drain(&mut self, next_seq: u64, out: &mut Vec<Delta>) {
        self.settle();
        let start = out.len();

        let mut port_deletes = Vec::new();
        for port in std::mem::take(&mut self.ports_dirty) {
            let current = self.ports.get(&port).map(|p| p.spec);
            match (current, self.ports_programmed.get(&port)) {
                (Some(spec), old) if old != Some(&spec) => {
                    out.push(Delta::PortSet {
                        port: u32::from(port),
                        spec,
                    });
                    self.ports_programmed.insert(port, spec);
                }
                (None, Some(_)) => port_deletes.push(port),
                _ => {}
            }
        }

        if std::mem::take(&mut self.adj_respec) {
            for id in 0..self.adjs.slots.len() as u32 {
                let Some((key, Some(old))) = self.adjs.get(id).map(|a| (a.key, a.emitted)) else {
                    continue;
                };
                let spec = self.adjacency_spec(&key);
                if spec != old {
                    out.push(Delta::AdjacencySet { id, adjacency: spec });
                    if let Some(a) = self.adjs.get_mut(id) {
                        a.emitted = Some(spec);
                    }
                }
            }
        }

        self.flaps.clear();
        let touched = std::mem::take(&mut self.touched);
        let mut adj_out = Vec::new();
        let mut group_out = Vec::new();
        let mut routes = Vec::new();
        for &slot in &touched {
            let e = &mut self.entries[slot as usize];
            e.flags &= !(TOUCHED | HELD | CHANGED);
            let (prefix, wanted, programmed) = (e.prefix, e.group, e.programmed);
            if wanted == programmed {
                continue;
            }
            if wanted != 0 {
                self.program_group(wanted, &mut adj_out, &mut group_out);
                routes.push((
                    slot,
                    Delta::RouteSet {
                        prefix,
                        group: wanted,
                    },
                ));
            } else {
                routes.push((slot, Delta::RouteDelete { prefix }));
            }
        }
        out.append(&mut adj_out);
        out.append(&mut group_out);
        for (slot, d) in routes {
            let seq = next_seq + (out.len() - start) as u64;
            let e = &mut self.entries[slot as usize];
            e.programmed = e.group;
            e.fib_seq = if e.group != 0 { seq } else { SEQ_NONE };
            out.push(d);
        }

        let mut freed = false;
        for g in std::mem::take(&mut self.groups.dead) {
            if let Some(programmed) = self.groups.collect(g, &mut self.adjs) {
                freed = true;
                if programmed {
                    out.push(Delta::GroupDelete { group: g });
                }
            }
        }
        for a in std::mem::take(&mut self.adjs.dead) {
            if let Some(emitted) = self.adjs.collect(a) {
                freed = true;
                if emitted {
                    out.push(Delta::AdjacencyDelete { id: a });
                }
            }
        }
        self.retry_failed |= freed && !self.failed.is_empty();

        for port in port_deletes {
            let in_use = self.adjs.slots.iter().flatten().any(|a| {
                a.emitted.is_some() && a.key.action == AdjacencyAction::Forward && a.key.port == port
            });
            if in_use {
                self.ports_dirty.insert(port);
            } else {
                out.push(Delta::PortDelete {
                    port: u32::from(port),
                });
                self.ports_programmed.remove(&port);
            }
        }

        for slot in touched {
            let e = &self.entries[slot as usize];
            if matches!(e.cands, Cands::None)
                && e.programmed == 0
                && e.flags & (DIRTY | TOUCHED | PINNED) == 0
            {
                self.index.remove(&e.prefix);
                self.entries[slot as usize] = Entry::new(e.prefix);
                self.entry_free.push(slot);
            }
        }
    }

    /// Appends the full programmed state (ports, adjacencies, groups, routes) for a resync,
    /// after folding in pending changes; record `k` carries `next_seq + k` and routes take it
    /// as their `fib_seq`. The caller wraps it in ResyncBegin/End.
    pub fn snapshot(&mut self, next_seq: u64, out: &mut Vec<Delta>) {
        self.drain(next_seq, &mut Vec::new());
        let start = out.len();
        for (&port, &spec) in &self.ports_programmed {
            out.push(Delta::PortSet {
                port: u32::from(port),
                spec,
            });
        }
        for (id, a) in self.adjs.slots.iter().enumerate() {
            if let Some(spec) = a.as_ref().and_then(|a| a.emitted) {
                out.push(Delta::AdjacencySet {
                    id: id as u32,
                    adjacency: spec,
                });
            }
        }
        for (id, g) in self.groups.slots.iter().enumerate() {
            if let Some(g) = g.as_ref().filter(|g| g.programmed) {
                out.extend(Delta::group_chunks(id as u32, &g.members));
            }
        }
        for e in &mut self.entries {
            if e.programmed != 0 {
                e.fib_seq = next_seq + (out.len() - start) as u64;
                out.push(Delta::RouteSet {
                    prefix: e.prefix,
                    group: e.programmed,
                });
            }
        }
    }

    // ---------------------------------------------------------------- queries

    /// Longest-prefix match over installed routes: what the FIB answers for `addr` once the
    /// last drain's deltas are applied.
    pub fn lookup(&self, addr: IpAddr) -> Option<(IpNet, RouteView)> {
        let installed = |s: u32| {
            let e = &self.entries[s as usize];
            e.programmed != 0 && e.selected().is_some()
        };
        let (_, slot) = self.index.covering(addr).find(|&(_, s)| installed(s))?;
        let e = &self.entries[slot as usize];
        let c = e.selected()?;
        Some((e.prefix, self.view(e, c)))
    }

    /// How a BGP next hop resolves: the metric of the most specific installed route covering
    /// `addr` that is not itself a BGP route and forwards; `None` when there is none (the next
    /// hop is unreachable, or it is one of the router's own addresses). BGP routes are skipped
    /// so that a BGP path never depends on another BGP path (no resolution loops).
    pub fn next_hop_cost(&self, addr: IpAddr) -> Option<u32> {
        for (_, slot) in self.index.covering(addr) {
            let e = &self.entries[slot as usize];
            if e.programmed == 0 {
                continue;
            }
            let Some(c) = e.selected() else { continue };
            let view = self.view(e, c);
            if matches!(view.protocol, Protocol::Ebgp | Protocol::Ibgp) {
                continue;
            }
            return match view.action {
                Some(AdjacencyAction::Forward) => Some(view.metric),
                _ => None,
            };
        }
        None
    }

    /// Candidates matching `filter`, sorted by prefix (IPv4 first, then address, then length),
    /// the selected candidate of a prefix first.
    pub fn routes(&self, filter: &RouteFilter) -> Vec<RouteView> {
        self.routes_page(filter, None, usize::MAX).0
    }

    /// One page of [`Rib::routes`]: the candidates of at most `limit` prefixes that come after
    /// `after` in the same order, and the cursor for the next page (`None` at the end). Each
    /// page costs one pass over the matching prefixes, not a sort of all of them, so a full
    /// table can be listed in pages without holding it all as views.
    pub fn routes_page(
        &self,
        filter: &RouteFilter,
        after: Option<&IpNet>,
        limit: usize,
    ) -> (Vec<RouteView>, Option<IpNet>) {
        let after = after.map(prefix_order);
        let keyed = |s: u32| (prefix_order(&self.entries[s as usize].prefix), s);
        let newer = |k: &((u8, u128, u8), u32)| after.is_none_or(|a| k.0 > a);
        let mut slots: Vec<((u8, u128, u8), u32)> = match filter.prefix {
            None => self.index.slots().map(keyed).filter(newer).collect(),
            Some(n) if filter.longer => self
                .index
                .slots()
                .filter(|&s| n.contains(&self.entries[s as usize].prefix))
                .map(keyed)
                .filter(newer)
                .collect(),
            Some(p) => self.slot_of(&p).into_iter().map(keyed).filter(newer).collect(),
        };
        let more = slots.len() > limit;
        if more {
            slots.select_nth_unstable(limit);
            slots.truncate(limit);
        }
        slots.sort_unstable();
        let mut out: Vec<RouteView> = Vec::new();
        for &(_, s) in &slots {
            let e = &self.entries[s as usize];
            let start = out.len();
            for c in e.cands.as_slice() {
                let selected = e.selected() == Some(c);
                if filter.protocol.is_some_and(|p| p != c.protocol) || (filter.selected_only && !selected) {
                    continue;
                }
                out.push(self.view(e, c));
            }
            out[start..].sort_by_key(|v| (!v.selected, v.protocol, v.id));
        }
        let next = if more {
            slots.last().map(|&(_, s)| self.entries[s as usize].prefix)
        } else {
            None
        };
        (out, next)
    }

    fn view(&self, e: &Entry, c: &Cand) -> RouteView {
        let selected = e.selected() == Some(c);
        let installed = selected.then(|| self.groups.get(e.programmed)).flatten();
        let members: Resolution = match installed {
            Some(g) => match g.key.first() {
                Some((k, _)) if k.action != AdjacencyAction::Forward => Resolution::Action(k.action),
                _ => Resolution::Members(g.key.to_vec()),
            },
            None => {
                let own = !self.self_covered(c.target, &e.prefix).is_empty();
                self.resolve_target(c.target, own.then_some(e.prefix))
            }
        };
        let (action, resolved) = match members {
            Resolution::Unusable => (None, Vec::new()),
            Resolution::Action(a) => (Some(a), Vec::new()),
            Resolution::Members(m) => (
                Some(AdjacencyAction::Forward),
                m.into_iter()
                    .map(|(k, weight)| ResolvedHop {
                        via: k.next_hop,
                        port: k.port,
                        interface: self
                            .ports
                            .get(&k.port)
                            .map(|p| p.iface.name.clone())
                            .unwrap_or_default(),
                        weight,
                        adjacency: self.adjs.map.get(&k).copied(),
                    })
                    .collect(),
            ),
        };
        RouteView {
            prefix: e.prefix,
            protocol: c.protocol,
            id: c.id,
            distance: c.distance,
            metric: c.metric,
            selected,
            resolved,
            action,
            fib_seq: (installed.is_some() && e.fib_seq != SEQ_NONE).then_some(e.fib_seq),
            group: installed.map(|_| e.programmed),
        }
    }

    /// Counters for monitoring; O(1) apart from summing seven numbers.
    pub fn stats(&self) -> RibStats {
        RibStats {
            per_protocol: self.per_protocol,
            candidates: self.per_protocol.iter().sum(),
            selected_v4: self.selected_v4,
            selected_v6: self.selected_v6,
            groups: self.groups.map.len(),
            adjacencies: self.adjs.map.len(),
            unresolved: self.unresolved,
            unprogrammed: self.failed.len(),
            gateways: self.gw_map.len(),
        }
    }
}

/// Whether `addr` lies in `prefix`: `IpNet::contains`, but inlined. It runs for every route a
/// protocol changes (a recursive next hop must not resolve through the prefix it serves), and
/// ipnet's out-of-line version was about a twentieth of the control process's time taking a
/// full table.
#[inline]
fn covers(prefix: &IpNet, addr: &IpAddr) -> bool {
    match (prefix, addr) {
        (IpNet::V4(n), IpAddr::V4(a)) => {
            let host = u32::MAX.checked_shr(u32::from(n.prefix_len())).unwrap_or(0);
            (u32::from(*a) ^ u32::from(n.addr())) & !host == 0
        }
        (IpNet::V6(n), IpAddr::V6(a)) => {
            let host = u128::MAX.checked_shr(u32::from(n.prefix_len())).unwrap_or(0);
            (u128::from(*a) ^ u128::from(n.addr())) & !host == 0
        }
        _ => false,
    }
}

fn forward(port: u16, next_hop: Option<IpAddr>) -> AdjKey {
    AdjKey {
        action: AdjacencyAction::Forward,
        port,
        next_hop,
    }
}

/// Sort key: IPv4 before IPv6, then address, then length.
fn prefix_order(p: &IpNet) -> (u8, u128, u8) {
    match p {
        IpNet::V4(n) => (4, u128::from(u32::from(n.addr())), n.prefix_len()),
        IpNet::V6(n) => (6, u128::from(n.addr()), n.prefix_len()),
    }
}

/// The connected and local routes an interface contributes while it is up.
fn derived_routes(iface: &Interface) -> BTreeSet<(IpNet, Protocol)> {
    let mut out = BTreeSet::new();
    if !iface.up {
        return out;
    }
    for a in &iface.addresses {
        out.insert((IpNet::from(a.addr()), Protocol::Local));
        if a.prefix_len() < a.max_prefix_len() {
            out.insert((a.trunc(), Protocol::Connected));
        }
    }
    out
}
