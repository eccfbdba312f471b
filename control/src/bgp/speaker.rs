//! The speaker's routes: every peer's Adj-RIB-In, the candidates per prefix after import
//! policy, the decision process, the RIB, and each peer's Adj-RIB-Out with the changes still
//! to send (RFC 4271 3.2, 9). Pure: no sockets, no timers; the session layer feeds it what
//! peers announce and drains what to announce to them.
//!
//! Design choices:
//!
//! - **One map of destinations**, prefix to every peer's path, each as received (the
//!   Adj-RIB-In, so a changed import policy applies again without asking the peer to resend,
//!   and `bgp summary` counts received apart from accepted) and as the import policy left it.
//!   One hash lookup per received prefix, about 100 bytes per prefix with one path; attributes
//!   are shared (`Arc`) by every prefix of one UPDATE. Losing a session or changing a policy
//!   walks the map; UPDATEs never do. A prefix is decided again only when what one of its paths
//!   contributes changes, or the IGP cost of a next hop it uses does.
//! - **Next hops** resolve through the RIB's non-BGP routes ([`Rib::next_hop_cost`]); the cost
//!   of each distinct next hop is cached and refreshed by [`Speaker::refresh_next_hops`] after
//!   the RIB changed, so that a path whose next hop became unreachable stops being best.
//! - **The RIB** gets one route per prefix: the best path (and, with multipath, its equals) as
//!   recursive next hops, distance by eBGP/iBGP. Networks we originate are advertised but not
//!   installed: the route that covers them (connected, static) is already in the RIB.
//! - **Export** follows RFC 4271 9.1.3 and 5.1: nothing back to the peer a path came from, no
//!   iBGP-learnt path to another iBGP peer (no route reflection), NO_ADVERTISE / NO_EXPORT
//!   honoured; toward eBGP the next hop is ours, LOCAL_PREF is dropped, a MED learnt from
//!   another AS is dropped (5.1.4) and our AS is prepended after the export policy (so a policy
//!   prepend adds to it); toward iBGP LOCAL_PREF is set and the next hop kept unless
//!   `next-hop-self` or the path is ours. The Adj-RIB-Out remembers what each peer was told, so
//!   only real changes are sent; pending changes are kept per prefix (the latest wins).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;

use super::decision::{self, Candidate, DecisionConfig, PathKind, PathSource, Scratch, Step};
use super::types::{Asn, Community, Family, NextHop, PathAttributes};
use crate::rib::{NextHopSpec, Protocol, Rib, Route, Slot, Target};

/// Index of a peer in the speaker; [`LOCAL`] is the speaker itself (originated networks).
pub type PeerIdx = u16;
/// The pseudo-peer of the networks we originate.
pub const LOCAL: PeerIdx = 0;
/// The RIB's route id for BGP routes (one BGP route per prefix).
const RIB_ID: u32 = 0;
/// Export caches are dropped when they grow past this many entries (they only save work).
const CACHE_LIMIT: usize = 1 << 16;

/// Settings of the whole speaker.
#[derive(Clone, Debug)]
pub struct Settings {
    pub local_as: Asn,
    pub router_id: Ipv4Addr,
    pub decision: DecisionConfig,
    pub ebgp_distance: u8,
    pub ibgp_distance: u8,
}

/// A compiled policy as the speaker calls it: `None` = rejected, else the attributes to use.
pub type PolicyFn = Arc<dyn Fn(&IpNet, &Arc<PathAttributes>) -> Option<Arc<PathAttributes>> + Send + Sync>;

/// What a filter does with a path (import or export).
#[derive(Clone)]
pub enum Filter {
    All,
    None,
    /// A policy (see `policy`): `None` = rejected, else the attributes to use.
    Policy(PolicyFn),
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::All => "All",
            Self::None => "None",
            Self::Policy(_) => "Policy",
        })
    }
}

impl Filter {
    fn apply(&self, prefix: &IpNet, attrs: &Arc<PathAttributes>) -> Option<Arc<PathAttributes>> {
        match self {
            Self::All => Some(Arc::clone(attrs)),
            Self::None => None,
            Self::Policy(f) => f(prefix, attrs),
        }
    }
}

/// A configured peer, as the speaker needs it.
#[derive(Clone, Debug)]
pub struct PeerSpec {
    pub address: IpAddr,
    pub remote_as: Asn,
    pub import: Filter,
    pub export: Filter,
    pub next_hop_self: bool,
    pub max_prefixes: Option<u32>,
}

/// What the session negotiated and the addresses it runs over, given when it comes up.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    pub peer_id: Ipv4Addr,
    pub families: Vec<Family>,
    /// Our addresses toward the peer, the next hops we advertise per family (`None`: that
    /// family cannot be advertised with us as next hop).
    pub local_v4: Option<Ipv4Addr>,
    pub local_v6: Option<Ipv6Addr>,
}

/// The peer sent more prefixes than `max-prefixes` allows: close with Cease 1 (RFC 4486).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("maximum number of prefixes reached ({limit}, {family})")]
pub struct MaxPrefixes {
    pub family: Family,
    pub limit: u32,
}

/// Changes to send to one peer, grouped by attributes so that one UPDATE carries many prefixes.
#[derive(Debug, Default)]
pub struct Outbound {
    pub withdrawn: Vec<IpNet>,
    /// Per attribute set, the prefixes of one family announced with it.
    pub announced: Vec<(Arc<PathAttributes>, Vec<IpNet>)>,
}

impl Outbound {
    pub fn is_empty(&self) -> bool {
        self.withdrawn.is_empty() && self.announced.is_empty()
    }
}

/// Counters of one peer for `bgp summary`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerCounts {
    /// Prefixes in the Adj-RIB-In (before policy).
    pub received: usize,
    /// Of those, accepted by the import policy (and without an AS loop).
    pub accepted: usize,
    /// Prefixes in the Adj-RIB-Out (what the peer was told).
    pub advertised: usize,
}

/// A hash map with a fast keyed hasher (foldhash, seeded per process): the speaker's maps hold
/// a million prefixes, SipHash costs more than the rest of a lookup, and a key chosen per
/// process keeps a peer from forcing collisions.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

/// Prefixes whose RIB index entry is requested ahead of the one being processed: a full
/// table arrives in random order, so each index probe misses the cache, and with the next
/// few already on their way those misses overlap (docs/decisions.md, "RIB index").
const PREFETCH_AHEAD: usize = 8;

/// Runs `f` on each prefix in turn, prefetching the RIB index entry `PREFETCH_AHEAD` ahead.
fn prefetched(rib: &mut Rib, prefixes: &[IpNet], mut f: impl FnMut(&mut Rib, &IpNet)) {
    for n in prefixes.iter().take(PREFETCH_AHEAD) {
        rib.prefetch(n);
    }
    for (i, n) in prefixes.iter().enumerate() {
        if let Some(ahead) = prefixes.get(i + PREFETCH_AHEAD) {
            rib.prefetch(ahead);
        }
        f(rib, n);
    }
}

/// One peer's path for a prefix: as received (the Adj-RIB-In) and as the import policy left it.
#[derive(Clone, Debug)]
struct Path {
    peer: PeerIdx,
    received: Arc<PathAttributes>,
    /// `None`: rejected by policy or loop detection (kept for a policy change).
    accepted: Option<Arc<PathAttributes>>,
}

/// Everything about one prefix: every peer's path, and which BGP route the RIB has for it.
/// Unused (a free slot) while it has no path.
#[derive(Debug, Default)]
struct Dest {
    prefix: IpNet,
    paths: PathList,
    installed: Option<Protocol>,
}

/// A prefix's paths: most prefixes have one, kept inline (no allocation per prefix). Several
/// are a boxed slice, so that the list takes 24 bytes (the slice fits beside the niche of the
/// inline path's `Arc`; a `Vec` made it 32): a full table's destinations are 8 MiB smaller.
/// An empty slice (no allocation) is a free destination.
#[derive(Debug)]
enum PathList {
    One(Path),
    Many(Box<[Path]>),
}

impl Default for PathList {
    fn default() -> Self {
        Self::Many(Box::default())
    }
}

impl std::ops::Deref for PathList {
    type Target = [Path];
    fn deref(&self) -> &[Path] {
        match self {
            Self::One(p) => std::slice::from_ref(p),
            Self::Many(v) => v,
        }
    }
}

impl std::ops::DerefMut for PathList {
    fn deref_mut(&mut self) -> &mut [Path] {
        match self {
            Self::One(p) => std::slice::from_mut(p),
            Self::Many(v) => v,
        }
    }
}

impl PathList {
    fn push(&mut self, path: Path) {
        *self = match std::mem::take(self) {
            Self::One(first) => Self::Many(Box::new([first, path])),
            Self::Many(v) if v.is_empty() => Self::One(path),
            Self::Many(v) => {
                let mut v = v.into_vec();
                v.push(path);
                Self::Many(v.into_boxed_slice())
            }
        };
    }

    /// Removes path `i` (as `Vec::swap_remove`); a last remaining path goes back inline.
    fn swap_remove(&mut self, i: usize) -> Path {
        match std::mem::take(self) {
            Self::One(only) => only,
            Self::Many(v) => {
                let mut v = v.into_vec();
                let path = v.swap_remove(i);
                *self = match v.pop() {
                    Some(last) if v.is_empty() => Self::One(last),
                    Some(last) => {
                        v.push(last);
                        Self::Many(v.into_boxed_slice())
                    }
                    None => Self::default(),
                };
                path
            }
        }
    }
}

/// Every destination, at the RIB's slot for its prefix ([`Rib::pin`]): the RIB's index is the
/// only one, so a received prefix costs one lookup (the RIB's), and the RIB route of a
/// destination is changed through its slot without a second one. A destination pins its slot
/// while it has paths (also paths the import policy rejected, which the RIB never sees).
#[derive(Debug, Default)]
struct Dests {
    by_slot: Vec<Dest>,
    len: usize,
}

impl Dests {
    fn len(&self) -> usize {
        self.len
    }

    fn at(&self, slot: Slot) -> Option<&Dest> {
        self.by_slot.get(slot.index()).filter(|d| !d.paths.is_empty())
    }

    fn at_mut(&mut self, slot: Slot) -> Option<&mut Dest> {
        self.by_slot.get_mut(slot.index()).filter(|d| !d.paths.is_empty())
    }

    /// The slot and destination of `prefix`, if it has paths.
    fn get(&self, rib: &Rib, prefix: &IpNet) -> Option<(Slot, &Dest)> {
        let slot = rib.slot(prefix)?;
        self.at(slot).map(|d| (slot, d))
    }

    /// The slot of `prefix`, pinned, with its destination (empty if new, to be given a path at
    /// once). `None` for a prefix the RIB refuses (host bits set; the codec clears them).
    fn hold(&mut self, rib: &mut Rib, prefix: IpNet) -> Option<(Slot, &mut Dest)> {
        let slot = rib.pin(prefix).ok()?;
        let i = slot.index();
        if i >= self.by_slot.len() {
            self.by_slot.resize_with(i + 1, Dest::default);
        }
        let dest = &mut self.by_slot[i];
        if dest.paths.is_empty() {
            dest.prefix = prefix;
            dest.installed = None;
            self.len += 1;
        }
        Some((slot, dest))
    }

    /// Frees the destination at `slot` if it has no path left (after its RIB route is gone).
    fn release_if_empty(&mut self, rib: &mut Rib, slot: Slot) {
        if let Some(d) = self.by_slot.get_mut(slot.index()) {
            if d.paths.is_empty() {
                *d = Dest::default();
                self.len -= 1;
                rib.unpin(slot);
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = (Slot, &Dest)> {
        self.by_slot
            .iter()
            .enumerate()
            .filter(|(_, d)| !d.paths.is_empty())
            .map(|(i, d)| (Slot::from_index(i), d))
    }
}

/// The winner of a decision, cloned out of the destination.
#[derive(Clone, Debug)]
struct Best {
    peer: PeerIdx,
    attrs: Arc<PathAttributes>,
}

#[derive(Debug)]
struct Peer {
    spec: PeerSpec,
    ibgp: bool,
    session: Option<SessionInfo>,
    /// Prefixes in the Adj-RIB-In, and of those accepted.
    received: usize,
    accepted: usize,
    adj_out: FastMap<IpNet, Arc<PathAttributes>>,
    pending: FastSet<IpNet>,
    /// Export transformation before the policy (next hop, LOCAL_PREF, MED), by source
    /// attributes (pointer, kept alive by the value) and family (the next hop differs).
    export_base: FastMap<(usize, Family), (Arc<PathAttributes>, Arc<PathAttributes>)>,
    /// AS prepend after the policy, by policy output.
    export_prepend: FastMap<usize, (Arc<PathAttributes>, Arc<PathAttributes>)>,
}

/// A path as `bgp routes` shows it.
#[derive(Clone, Debug)]
pub struct PathView {
    /// `None`: originated here.
    pub peer: Option<IpAddr>,
    pub attrs: Arc<PathAttributes>,
    pub best: bool,
    /// Installed as an ECMP member beside the best.
    pub multipath: bool,
    /// Why it is not best (or, for the best, what decided it).
    pub step: Option<Step>,
    pub igp_cost: Option<u32>,
}

/// The BGP routes of the router; see the module docs.
#[derive(Debug)]
pub struct Speaker {
    settings: Settings,
    /// Index 0 is [`LOCAL`], the originated networks; its spec is unused.
    peers: Vec<Peer>,
    dests: Dests,
    networks: Vec<IpNet>,
    next_hops: FastMap<IpAddr, Option<u32>>,
    /// Next-hop sets handed to the RIB, shared so a million routes do not allocate a million:
    /// one next hop (the common case, looked up without allocating), and ECMP sets.
    targets: FastMap<IpAddr, Arc<[NextHopSpec]>>,
    ecmp_targets: FastMap<Vec<IpAddr>, Arc<[NextHopSpec]>>,
    scratch: Scratch,
}

impl Speaker {
    pub fn new(settings: Settings) -> Self {
        let local = Peer::new(
            PeerSpec {
                address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                remote_as: settings.local_as,
                import: Filter::All,
                export: Filter::None,
                next_hop_self: false,
                max_prefixes: None,
            },
            false,
        );
        Self {
            settings,
            peers: vec![local],
            dests: Dests::default(),
            networks: Vec::new(),
            next_hops: FastMap::default(),
            targets: FastMap::default(),
            ecmp_targets: FastMap::default(),
            scratch: Scratch::default(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Adds a configured peer (down until [`Speaker::peer_up`]).
    pub fn add_peer(&mut self, spec: PeerSpec) -> PeerIdx {
        let ibgp = spec.remote_as == self.settings.local_as;
        self.peers.push(Peer::new(spec, ibgp));
        PeerIdx::try_from(self.peers.len() - 1).unwrap_or(PeerIdx::MAX)
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len() - 1
    }

    pub fn counts(&self, p: PeerIdx) -> PeerCounts {
        let peer = &self.peers[usize::from(p)];
        PeerCounts {
            received: peer.received,
            accepted: peer.accepted,
            advertised: peer.adj_out.len(),
        }
    }

    /// Prefixes with at least one path.
    pub fn prefix_count(&self) -> usize {
        self.dests.len()
    }

    /// Sets the networks we originate (replacing the previous set).
    pub fn set_networks(&mut self, rib: &mut Rib, networks: &[IpNet]) {
        let attrs = Arc::new(PathAttributes::local(NextHop::new(IpAddr::V4(
            Ipv4Addr::UNSPECIFIED,
        ))));
        let old = std::mem::take(&mut self.networks);
        for prefix in &old {
            if !networks.contains(prefix) {
                self.receive_one(LOCAL, rib, *prefix, None);
            }
        }
        for prefix in networks {
            if !old.contains(prefix) {
                self.receive_one(LOCAL, rib, *prefix, Some(&attrs));
            }
        }
        self.networks = networks.to_vec();
    }

    /// The prefixes peer `p` has a path for (a walk over every destination: used on session
    /// loss and policy change, never per UPDATE).
    fn prefixes_of(&self, p: PeerIdx) -> Vec<IpNet> {
        self.dests
            .iter()
            .filter(|(_, d)| d.paths.iter().any(|x| x.peer == p))
            .map(|(_, d)| d.prefix)
            .collect()
    }

    /// Replaces a peer's filters and limits (configuration reload) and applies the import
    /// policy again to what it sent, and the export policy to what it was told.
    pub fn update_peer(&mut self, rib: &mut Rib, p: PeerIdx, spec: PeerSpec) {
        let peer = &mut self.peers[usize::from(p)];
        peer.spec = spec;
        peer.export_base.clear();
        peer.export_prepend.clear();
        for prefix in self.prefixes_of(p) {
            let received = self
                .dests
                .get(rib, &prefix)
                .and_then(|(_, d)| d.paths.iter().find(|x| x.peer == p))
                .map(|x| Arc::clone(&x.received));
            if let Some(r) = received {
                self.receive_one(p, rib, prefix, Some(&r));
            }
        }
        if self.peers[usize::from(p)].session.is_some() {
            self.export_all(p);
        }
    }

    /// The session with `p` is established: everything it should know is queued for it.
    pub fn peer_up(&mut self, p: PeerIdx, session: SessionInfo) {
        let peer = &mut self.peers[usize::from(p)];
        peer.session = Some(session);
        peer.adj_out.clear();
        peer.pending.clear();
        peer.export_base.clear();
        peer.export_prepend.clear();
        self.export_all(p);
    }

    /// The session with `p` went down: its paths are gone (RFC 4271 8.2.2, no graceful
    /// restart), and so is what it was told.
    pub fn peer_down(&mut self, p: PeerIdx, rib: &mut Rib) {
        let peer = &mut self.peers[usize::from(p)];
        peer.session = None;
        peer.adj_out = FastMap::default();
        peer.pending = FastSet::default();
        for prefix in self.prefixes_of(p) {
            self.receive_one(p, rib, prefix, None);
        }
        let peer = &mut self.peers[usize::from(p)];
        peer.received = 0;
        peer.accepted = 0;
    }

    /// The speaker stops (BGP disabled or restarted): every route it put in the RIB is removed
    /// and every RIB slot it pinned released, whatever state its sessions are in.
    pub fn release_all(&mut self, rib: &mut Rib) {
        for (i, d) in std::mem::take(&mut self.dests.by_slot).into_iter().enumerate() {
            if d.paths.is_empty() {
                continue;
            }
            let slot = Slot::from_index(i);
            if let Some(protocol) = d.installed {
                rib.remove_at(slot, protocol, RIB_ID);
            }
            rib.unpin(slot);
        }
        self.dests = Dests::default();
        self.networks.clear();
        for peer in &mut self.peers {
            peer.received = 0;
            peer.accepted = 0;
        }
    }

    pub fn is_up(&self, p: PeerIdx) -> bool {
        self.peers[usize::from(p)].session.is_some()
    }

    /// Applies what peer `p` sent in one UPDATE: `withdrawn`, then `announced` (each prefix with
    /// its attributes as decoded, LOCAL_PREF from eBGP already discarded by the codec).
    pub fn receive(
        &mut self,
        p: PeerIdx,
        rib: &mut Rib,
        withdrawn: &[IpNet],
        announced: &[(IpNet, Arc<PathAttributes>)],
    ) -> Result<(), MaxPrefixes> {
        self.receive_paths(p, rib, withdrawn, announced.iter().map(|(n, a)| (*n, a)))
    }

    /// As [`Speaker::receive`], with the announced prefixes grouped by attributes as an
    /// UPDATE carries them (no per-prefix copy of the attributes' `Arc`).
    pub fn receive_grouped(
        &mut self,
        p: PeerIdx,
        rib: &mut Rib,
        withdrawn: &[IpNet],
        announced: &[(Arc<PathAttributes>, Vec<IpNet>)],
    ) -> Result<(), MaxPrefixes> {
        prefetched(rib, withdrawn, |rib, prefix| {
            self.receive_one(p, rib, *prefix, None)
        });
        let mut family = None;
        for (attrs, prefixes) in announced {
            prefetched(rib, prefixes, |rib, prefix| {
                family.get_or_insert(Family::of(prefix));
                self.receive_one(p, rib, *prefix, Some(attrs));
            });
        }
        self.check_max_prefixes(p, family)
    }

    fn receive_paths<'a>(
        &mut self,
        p: PeerIdx,
        rib: &mut Rib,
        withdrawn: &[IpNet],
        announced: impl Iterator<Item = (IpNet, &'a Arc<PathAttributes>)>,
    ) -> Result<(), MaxPrefixes> {
        for prefix in withdrawn {
            self.receive_one(p, rib, *prefix, None);
        }
        let mut family = None;
        for (prefix, attrs) in announced {
            family.get_or_insert(Family::of(&prefix));
            self.receive_one(p, rib, prefix, Some(attrs));
        }
        self.check_max_prefixes(p, family)
    }

    fn check_max_prefixes(&self, p: PeerIdx, family: Option<Family>) -> Result<(), MaxPrefixes> {
        let peer = &self.peers[usize::from(p)];
        match peer.spec.max_prefixes {
            Some(limit) if peer.accepted > limit as usize => Err(MaxPrefixes {
                family: family.unwrap_or(Family::Ipv4Unicast),
                limit,
            }),
            _ => Ok(()),
        }
    }

    /// Import policy and loop detection for one received path.
    fn import(&self, p: PeerIdx, prefix: &IpNet, a: &Arc<PathAttributes>) -> Option<Arc<PathAttributes>> {
        if p == LOCAL {
            return Some(Arc::clone(a));
        }
        let peer = &self.peers[usize::from(p)];
        if a.as_path.contains(self.settings.local_as) {
            return None;
        }
        // An eBGP peer must put its own AS first (RFC 4271 6.3; RFC 7606 treats a path that
        // does not as withdrawn).
        if !peer.ibgp && a.as_path.neighbor_as() != Some(peer.spec.remote_as) {
            return None;
        }
        peer.spec.import.apply(prefix, a)
    }

    /// Peer `p`'s path for `prefix` is now `attrs` (`None`: withdrawn); decides again if what
    /// the import policy lets through changed.
    fn receive_one(&mut self, p: PeerIdx, rib: &mut Rib, prefix: IpNet, attrs: Option<&Arc<PathAttributes>>) {
        let accepted = attrs.and_then(|a| self.import(p, &prefix, a));
        let (slot, d_received, d_accepted, changed) = match attrs {
            Some(a) => {
                let Some((slot, dest)) = self.dests.hold(rib, prefix) else {
                    return;
                };
                match dest.paths.iter_mut().find(|x| x.peer == p) {
                    Some(path) => {
                        path.received = Arc::clone(a);
                        let same = match (&path.accepted, &accepted) {
                            (Some(x), Some(y)) => Arc::ptr_eq(x, y) || x == y,
                            (None, None) => true,
                            _ => false,
                        };
                        let d = isize::from(accepted.is_some()) - isize::from(path.accepted.is_some());
                        path.accepted = accepted;
                        (slot, 0, d, !same)
                    }
                    None => {
                        let d = isize::from(accepted.is_some());
                        dest.paths.push(Path {
                            peer: p,
                            received: Arc::clone(a),
                            accepted,
                        });
                        (slot, 1, d, d != 0)
                    }
                }
            }
            None => {
                let Some(slot) = rib.slot(&prefix) else {
                    return;
                };
                let Some(dest) = self.dests.at_mut(slot) else {
                    return;
                };
                let Some(i) = dest.paths.iter().position(|x| x.peer == p) else {
                    return;
                };
                let old = dest.paths.swap_remove(i);
                let d = -isize::from(old.accepted.is_some());
                (slot, -1, d, d != 0 || dest.paths.is_empty())
            }
        };
        let peer = &mut self.peers[usize::from(p)];
        peer.received = peer.received.saturating_add_signed(d_received);
        peer.accepted = peer.accepted.saturating_add_signed(d_accepted);
        if changed {
            self.decide(rib, slot);
        }
    }

    /// The IGP cost of a next hop, resolved once and cached.
    fn cost(next_hops: &mut FastMap<IpAddr, Option<u32>>, rib: &Rib, nh: IpAddr) -> Option<u32> {
        *next_hops.entry(nh).or_insert_with(|| rib.next_hop_cost(nh))
    }

    /// Runs the decision process for the destination at `slot`, updates the RIB and queues
    /// exports; frees the destination if it has no path left.
    fn decide(&mut self, rib: &mut Rib, slot: Slot) {
        /// The next hops of the best path (and its multipath equals).
        enum Hops {
            One(IpAddr),
            Many(Vec<IpAddr>),
        }
        let Self {
            settings,
            peers,
            dests,
            next_hops,
            targets,
            ecmp_targets,
            scratch,
            ..
        } = self;
        let Some(dest) = dests.by_slot.get_mut(slot.index()) else {
            return;
        };
        let prefix = dest.prefix;
        let mut eligible = dest.paths.iter().filter(|x| x.accepted.is_some());
        let mut chosen: Option<(Best, Hops)> = match (eligible.next(), eligible.next()) {
            (None, _) => None,
            // One path (the common case): no candidate list, no allocation.
            (Some(only), None) => {
                let attrs = only
                    .accepted
                    .as_ref()
                    .map(Arc::clone)
                    .unwrap_or_else(|| Arc::clone(&only.received));
                let nh = attrs.next_hop.addr;
                let reachable = only.peer == LOCAL || Self::cost(next_hops, rib, nh).is_some();
                let best = Best {
                    peer: only.peer,
                    attrs,
                };
                reachable.then_some((best, Hops::One(nh)))
            }
            _ => {
                let paths: Vec<&Path> = dest.paths.iter().filter(|x| x.accepted.is_some()).collect();
                let cands: Vec<Candidate<'_>> = paths
                    .iter()
                    .map(|path| {
                        let attrs = path.accepted.as_deref().unwrap_or(&path.received);
                        let cost = if path.peer == LOCAL {
                            Some(0)
                        } else {
                            Self::cost(next_hops, rib, attrs.next_hop.addr)
                        };
                        candidate(settings, peers, path, cost)
                    })
                    .collect();
                decision::select(&cands, &settings.decision, scratch).map(|sel| {
                    let b = paths[sel.best];
                    let mut hops: Vec<IpAddr> = Vec::with_capacity(sel.multipath.len());
                    for &i in sel.multipath {
                        let nh = cands[i].attrs.next_hop.addr;
                        if !hops.contains(&nh) {
                            hops.push(nh);
                        }
                    }
                    let attrs = b
                        .accepted
                        .as_ref()
                        .map(Arc::clone)
                        .unwrap_or_else(|| Arc::clone(&b.received));
                    let hops = match hops.as_slice() {
                        [one] => Hops::One(*one),
                        _ => Hops::Many(hops),
                    };
                    (Best { peer: b.peer, attrs }, hops)
                })
            }
        };
        // The RIB: one route for the best path unless it is ours, removed otherwise.
        let want = match &chosen {
            Some((b, _)) if b.peer != LOCAL => Some(if peers[usize::from(b.peer)].ibgp {
                Protocol::Ibgp
            } else {
                Protocol::Ebgp
            }),
            _ => None,
        };
        if let Some(old) = dest.installed.filter(|old| Some(*old) != want) {
            rib.remove_at(slot, old, RIB_ID);
        }
        if let (Some(protocol), Some((_, hops))) = (want, chosen.as_mut()) {
            let target = match hops {
                Hops::One(one) => Arc::clone(targets.entry(*one).or_insert_with(|| {
                    Arc::from([NextHopSpec {
                        via: Some(*one),
                        port: None,
                        weight: 1,
                    }])
                })),
                Hops::Many(hops) => Arc::clone(ecmp_targets.entry(std::mem::take(hops)).or_insert_with_key(
                    |hops| {
                        hops.iter()
                            .map(|&via| NextHopSpec {
                                via: Some(via),
                                port: None,
                                weight: 1,
                            })
                            .collect()
                    },
                )),
            };
            let distance = if protocol == Protocol::Ibgp {
                settings.ibgp_distance
            } else {
                settings.ebgp_distance
            };
            // A route the RIB refuses (a full id space) stays out of the FIB; the RIB counts
            // it, and BGP keeps the path for when room comes back.
            let _ = rib.upsert_at(
                slot,
                Route {
                    protocol,
                    id: RIB_ID,
                    distance,
                    metric: 0,
                    target: Target::NextHops(target),
                },
            );
        }
        dest.installed = want;
        dests.release_if_empty(rib, slot);
        let best = chosen.map(|(b, _)| b);
        self.export_prefix(prefix, best.as_ref());
    }

    /// Resolves every known next hop again (after the RIB changed) and decides again the
    /// prefixes whose paths use one whose cost changed. Returns how many prefixes that was.
    pub fn refresh_next_hops(&mut self, rib: &mut Rib) -> usize {
        let mut changed: FastSet<IpAddr> = FastSet::default();
        for (nh, cost) in &mut self.next_hops {
            let now = rib.next_hop_cost(*nh);
            if now != *cost {
                *cost = now;
                changed.insert(*nh);
            }
        }
        if changed.is_empty() {
            return 0;
        }
        let affected: Vec<Slot> = self
            .dests
            .iter()
            .filter(|(_, d)| {
                d.paths.iter().any(|p| {
                    p.accepted
                        .as_ref()
                        .is_some_and(|a| changed.contains(&a.next_hop.addr))
                })
            })
            .map(|(slot, _)| slot)
            .collect();
        for &slot in &affected {
            self.decide(rib, slot);
        }
        affected.len()
    }

    /// The peer asked for everything again (ROUTE-REFRESH, RFC 2918): all it should know is
    /// queued, whether or not it was sent before.
    pub fn resend_all(&mut self, p: PeerIdx) {
        self.peers[usize::from(p)].adj_out.clear();
        self.export_all(p);
    }

    /// Queues every best path for peer `p` (session up, or its export policy changed).
    fn export_all(&mut self, p: PeerIdx) {
        let dests: Vec<(Slot, IpNet)> = self.dests.iter().map(|(slot, d)| (slot, d.prefix)).collect();
        let mut advertised: FastSet<IpNet> = self.peers[usize::from(p)].adj_out.keys().copied().collect();
        for (slot, prefix) in dests {
            advertised.remove(&prefix);
            let best = self.best_of(slot);
            self.export_to(p, prefix, best.as_ref());
        }
        for prefix in advertised {
            self.export_to(p, prefix, None);
        }
    }

    /// The best path of a prefix, decided again from the cached next-hop costs.
    fn best_of(&mut self, slot: Slot) -> Option<Best> {
        let dest = self.dests.at(slot)?;
        let paths: Vec<&Path> = dest.paths.iter().filter(|x| x.accepted.is_some()).collect();
        let cands: Vec<Candidate<'_>> = paths
            .iter()
            .map(|path| cached_candidate(&self.settings, &self.peers, &self.next_hops, path))
            .collect();
        let sel = decision::select(&cands, &self.settings.decision, &mut self.scratch)?;
        let b = paths[sel.best];
        Some(Best {
            peer: b.peer,
            attrs: Arc::clone(b.accepted.as_ref()?),
        })
    }

    fn export_prefix(&mut self, prefix: IpNet, best: Option<&Best>) {
        for p in 1..self.peers.len() {
            if self.peers[p].session.is_some() {
                self.export_to(p as PeerIdx, prefix, best);
            }
        }
    }

    /// What peer `t` should be told about `prefix` given its best path; queues the change.
    fn export_to(&mut self, t: PeerIdx, prefix: IpNet, best: Option<&Best>) {
        let out = best.and_then(|b| self.export_attrs(t, &prefix, b));
        let peer = &mut self.peers[usize::from(t)];
        // Nothing to tell and nothing told (the peer the path came from, during a table).
        if out.is_none() && peer.adj_out.is_empty() {
            return;
        }
        let changed = match (&out, peer.adj_out.get(&prefix)) {
            (Some(new), Some(old)) => !(Arc::ptr_eq(new, old) || new == old),
            (None, None) => false,
            _ => true,
        };
        if !changed {
            return;
        }
        match out {
            Some(a) => {
                peer.adj_out.insert(prefix, a);
            }
            None => {
                peer.adj_out.remove(&prefix);
            }
        }
        peer.pending.insert(prefix);
    }

    /// The attributes to send peer `t` for `prefix` with best path `b`, or `None` when it
    /// must not be told (see the module docs for the rules).
    fn export_attrs(&mut self, t: PeerIdx, prefix: &IpNet, b: &Best) -> Option<Arc<PathAttributes>> {
        let local_as = self.settings.local_as;
        let default_lp = self.settings.decision.default_local_pref;
        let source_ibgp = b.peer != LOCAL && self.peers[usize::from(b.peer)].ibgp;
        let peer = &mut self.peers[usize::from(t)];
        let session = peer.session.as_ref()?;
        let family = Family::of(prefix);
        if b.peer == t || !session.families.contains(&family) {
            return None;
        }
        if source_ibgp && peer.ibgp {
            return None;
        }
        let a = &b.attrs;
        if a.has_community(Community::NO_ADVERTISE) {
            return None;
        }
        if !peer.ibgp
            && (a.has_community(Community::NO_EXPORT) || a.has_community(Community::NO_EXPORT_SUBCONFED))
        {
            return None;
        }
        let self_hop: Option<IpAddr> = match family {
            Family::Ipv4Unicast => session.local_v4.map(IpAddr::V4),
            Family::Ipv6Unicast => session.local_v6.map(IpAddr::V6),
        };
        let use_self = !peer.ibgp || peer.spec.next_hop_self || b.peer == LOCAL;
        if use_self && self_hop.is_none() {
            return None;
        }
        let key = (Arc::as_ptr(a) as usize, family);
        let base = match peer.export_base.get(&key) {
            Some((_, out)) => Arc::clone(out),
            None => {
                let mut x = PathAttributes::clone(a);
                if use_self {
                    if let Some(h) = self_hop {
                        x.next_hop = NextHop::new(h);
                    }
                }
                if peer.ibgp {
                    x.local_pref = Some(a.local_pref.unwrap_or(default_lp));
                } else {
                    x.local_pref = None;
                    if b.peer != LOCAL {
                        x.med = None;
                    }
                }
                let out = Arc::new(x);
                if peer.export_base.len() >= CACHE_LIMIT {
                    peer.export_base.clear();
                }
                peer.export_base.insert(key, (Arc::clone(a), Arc::clone(&out)));
                out
            }
        };
        let filtered = peer.spec.export.apply(prefix, &base)?;
        if peer.ibgp {
            return Some(filtered);
        }
        let key = Arc::as_ptr(&filtered) as usize;
        if let Some((_, out)) = peer.export_prepend.get(&key) {
            return Some(Arc::clone(out));
        }
        let mut x = PathAttributes::clone(&filtered);
        x.as_path.prepend(local_as, 1);
        let out = Arc::new(x);
        if peer.export_prepend.len() >= CACHE_LIMIT {
            peer.export_prepend.clear();
        }
        peer.export_prepend.insert(key, (filtered, Arc::clone(&out)));
        Some(out)
    }

    /// Takes up to `max` pending changes for peer `p`, grouped for packing into UPDATEs.
    pub fn take_outbound(&mut self, p: PeerIdx, max: usize) -> Outbound {
        let peer = &mut self.peers[usize::from(p)];
        let mut out = Outbound::default();
        if peer.pending.is_empty() {
            return out;
        }
        let take: Vec<IpNet> = peer.pending.iter().take(max).copied().collect();
        let mut groups: FastMap<(usize, Family), usize> = FastMap::default();
        for prefix in take {
            peer.pending.remove(&prefix);
            match peer.adj_out.get(&prefix) {
                None => out.withdrawn.push(prefix),
                Some(a) => {
                    let key = (Arc::as_ptr(a) as usize, Family::of(&prefix));
                    let i = *groups.entry(key).or_insert_with(|| {
                        out.announced.push((Arc::clone(a), Vec::new()));
                        out.announced.len() - 1
                    });
                    out.announced[i].1.push(prefix);
                }
            }
        }
        out
    }

    /// Whether peer `p` has changes waiting.
    pub fn has_pending(&self, p: PeerIdx) -> bool {
        !self.peers[usize::from(p)].pending.is_empty()
    }

    /// Every accepted path of `prefix` with the decision's verdict on it, best first.
    pub fn paths(&mut self, rib: &Rib, prefix: &IpNet) -> Vec<PathView> {
        let Some((_, dest)) = self.dests.get(rib, prefix) else {
            return Vec::new();
        };
        let paths: Vec<&Path> = dest.paths.iter().filter(|x| x.accepted.is_some()).collect();
        let cands: Vec<Candidate<'_>> = paths
            .iter()
            .map(|path| cached_candidate(&self.settings, &self.peers, &self.next_hops, path))
            .collect();
        let mut out: Vec<PathView> = paths
            .iter()
            .zip(&cands)
            .map(|(path, c)| PathView {
                peer: (path.peer != LOCAL).then(|| self.peers[usize::from(path.peer)].spec.address),
                attrs: Arc::clone(path.accepted.as_ref().unwrap_or(&path.received)),
                best: false,
                multipath: false,
                step: None,
                igp_cost: c.igp_cost,
            })
            .collect();
        if let Some(sel) = decision::select(&cands, &self.settings.decision, &mut self.scratch) {
            for (i, v) in out.iter_mut().enumerate() {
                v.best = i == sel.best;
                v.multipath = i != sel.best && sel.multipath.contains(&i);
                v.step = if v.best {
                    Some(sel.decided_by)
                } else {
                    sel.lost_at.get(i).copied().flatten()
                };
            }
        } else {
            for v in &mut out {
                v.step = Some(Step::NextHopUnreachable);
            }
        }
        out.sort_by_key(|v| (!v.best, !v.multipath, v.step));
        out
    }

    /// Prefixes with accepted paths, for `bgp routes` without a prefix (sorted, IPv4 first).
    pub fn prefixes(&self) -> Vec<IpNet> {
        let mut v: Vec<IpNet> = self
            .dests
            .iter()
            .filter(|(_, d)| d.paths.iter().any(|x| x.accepted.is_some()))
            .map(|(_, d)| d.prefix)
            .collect();
        v.sort();
        v
    }
}

/// A path as the decision process sees it, with its next hop's cost as last resolved.
fn cached_candidate<'a>(
    settings: &Settings,
    peers: &[Peer],
    next_hops: &FastMap<IpAddr, Option<u32>>,
    path: &'a Path,
) -> Candidate<'a> {
    let attrs = path.accepted.as_deref().unwrap_or(&path.received);
    let cost = if path.peer == LOCAL {
        Some(0)
    } else {
        next_hops.get(&attrs.next_hop.addr).copied().flatten()
    };
    candidate(settings, peers, path, cost)
}

/// A path as the decision process sees it (its accepted attributes).
fn candidate<'a>(
    settings: &Settings,
    peers: &[Peer],
    path: &'a Path,
    igp_cost: Option<u32>,
) -> Candidate<'a> {
    let source = if path.peer == LOCAL {
        PathSource::local(settings.router_id, settings.local_as)
    } else {
        let peer = &peers[usize::from(path.peer)];
        PathSource {
            kind: if peer.ibgp { PathKind::Ibgp } else { PathKind::Ebgp },
            peer_addr: peer.spec.address,
            peer_id: peer.session.as_ref().map_or(Ipv4Addr::UNSPECIFIED, |s| s.peer_id),
            peer_as: peer.spec.remote_as,
        }
    };
    Candidate {
        attrs: path.accepted.as_deref().unwrap_or(&path.received),
        source,
        igp_cost,
    }
}

impl Peer {
    fn new(spec: PeerSpec, ibgp: bool) -> Self {
        Self {
            spec,
            ibgp,
            session: None,
            received: 0,
            accepted: 0,
            adj_out: FastMap::default(),
            pending: FastSet::default(),
            export_base: FastMap::default(),
            export_prepend: FastMap::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::types::{AsPath, Origin};
    use crate::rib::{Interface, RouteFilter};

    const LOCAL_AS: Asn = 64500;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn drain(rib: &mut Rib) {
        let mut out = Vec::new();
        rib.drain(1, &mut out);
    }

    /// eth1 192.0.2.1/24 + 2001:db8:1::1/64 on port 1, programmed.
    fn rib() -> Rib {
        let mut rib = Rib::new();
        rib.set_interface(
            1,
            Interface {
                name: "eth1".into(),
                ifindex: 10,
                up: true,
                mtu: 1500,
                mac: [2, 0, 0, 0, 0, 1],
                addresses: vec![net("192.0.2.1/24"), net("2001:db8:1::1/64")],
            },
        )
        .unwrap();
        drain(&mut rib);
        rib
    }

    fn speaker() -> Speaker {
        Speaker::new(Settings {
            local_as: LOCAL_AS,
            router_id: "192.0.2.1".parse().unwrap(),
            decision: DecisionConfig::default(),
            ebgp_distance: 20,
            ibgp_distance: 200,
        })
    }

    fn spec(address: &str, remote_as: Asn) -> PeerSpec {
        PeerSpec {
            address: ip(address),
            remote_as,
            import: Filter::All,
            export: Filter::All,
            next_hop_self: false,
            max_prefixes: None,
        }
    }

    fn up(s: &mut Speaker, p: PeerIdx, id: &str) {
        s.peer_up(
            p,
            SessionInfo {
                peer_id: id.parse().unwrap(),
                families: vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
                local_v4: Some("192.0.2.1".parse().unwrap()),
                local_v6: Some("2001:db8:1::1".parse().unwrap()),
            },
        );
    }

    fn attrs(path: &[Asn], next_hop: &str) -> Arc<PathAttributes> {
        let mut a = PathAttributes::local(NextHop::new(ip(next_hop)));
        a.as_path = AsPath::sequence(path.iter().copied());
        Arc::new(a)
    }

    /// The BGP route the RIB selected for `prefix`: protocol and next hops.
    fn installed(rib: &mut Rib, prefix: &str) -> Option<(Protocol, Vec<IpAddr>)> {
        drain(rib);
        let views = rib.routes(&RouteFilter {
            prefix: Some(net(prefix)),
            selected_only: true,
            ..RouteFilter::default()
        });
        let v = views
            .into_iter()
            .find(|v| matches!(v.protocol, Protocol::Ebgp | Protocol::Ibgp))?;
        Some((v.protocol, v.resolved.iter().filter_map(|h| h.via).collect()))
    }

    /// Everything pending for `p`, as prefix -> attributes (None: withdrawn).
    fn sent(s: &mut Speaker, p: PeerIdx) -> HashMap<IpNet, Option<Arc<PathAttributes>>> {
        let out = s.take_outbound(p, usize::MAX);
        let mut m = HashMap::new();
        for w in out.withdrawn {
            m.insert(w, None);
        }
        for (a, prefixes) in out.announced {
            for n in prefixes {
                m.insert(n, Some(Arc::clone(&a)));
            }
        }
        m
    }

    /// Four peers: A and B eBGP (AS 64501, 64502), C and D iBGP, all up.
    fn four(s: &mut Speaker) -> [PeerIdx; 4] {
        let a = s.add_peer(spec("192.0.2.2", 64501));
        let b = s.add_peer(spec("192.0.2.3", 64502));
        let c = s.add_peer(spec("192.0.2.4", LOCAL_AS));
        let d = s.add_peer(spec("192.0.2.5", LOCAL_AS));
        for (p, id) in [(a, "10.0.0.2"), (b, "10.0.0.3"), (c, "10.0.0.4"), (d, "10.0.0.5")] {
            up(s, p, id);
        }
        [a, b, c, d]
    }

    #[test]
    fn ebgp_path_is_installed_and_exported_by_the_rules() {
        let (mut rib, mut s) = (rib(), speaker());
        let [a, b, c, _] = four(&mut s);
        let mut x = PathAttributes::clone(&attrs(&[64501, 64999], "192.0.2.2"));
        x.med = Some(50);
        s.receive(a, &mut rib, &[], &[(net("198.51.100.0/24"), Arc::new(x))])
            .unwrap();
        assert_eq!(
            installed(&mut rib, "198.51.100.0/24"),
            Some((Protocol::Ebgp, vec![ip("192.0.2.2")]))
        );
        // Not back to A.
        assert!(sent(&mut s, a).is_empty());
        // To eBGP B: our AS first, next hop self, no LOCAL_PREF, no MED from another AS.
        let to_b = sent(&mut s, b).remove(&net("198.51.100.0/24")).unwrap().unwrap();
        assert_eq!(to_b.as_path, AsPath::sequence([LOCAL_AS, 64501, 64999]));
        assert_eq!(to_b.next_hop.addr, ip("192.0.2.1"));
        assert_eq!((to_b.local_pref, to_b.med), (None, None));
        // To iBGP C: path and next hop unchanged, LOCAL_PREF set, MED kept.
        let to_c = sent(&mut s, c).remove(&net("198.51.100.0/24")).unwrap().unwrap();
        assert_eq!(to_c.as_path, AsPath::sequence([64501, 64999]));
        assert_eq!(to_c.next_hop.addr, ip("192.0.2.2"));
        assert_eq!((to_c.local_pref, to_c.med), (Some(100), Some(50)));
        assert_eq!(
            s.counts(a),
            PeerCounts {
                received: 1,
                accepted: 1,
                advertised: 0
            }
        );
        assert_eq!(s.counts(b).advertised, 1);
    }

    #[test]
    fn better_path_wins_and_withdrawals_fall_back() {
        let (mut rib, mut s) = (rib(), speaker());
        let [a, b, c, _] = four(&mut s);
        let p = net("198.51.100.0/24");
        s.receive(a, &mut rib, &[], &[(p, attrs(&[64501, 64999], "192.0.2.2"))])
            .unwrap();
        s.receive(b, &mut rib, &[], &[(p, attrs(&[64502], "192.0.2.3"))])
            .unwrap();
        assert_eq!(
            installed(&mut rib, "198.51.100.0/24"),
            Some((Protocol::Ebgp, vec![ip("192.0.2.3")]))
        );
        let paths = s.paths(&rib, &p);
        assert!(paths[0].best && paths[0].peer == Some(ip("192.0.2.3")));
        assert_eq!(paths[1].step, Some(Step::AsPathLength));
        // B is not told about its own best path; it hears about A's once it withdraws its own.
        let _ = sent(&mut s, b);
        s.receive(b, &mut rib, &[p], &[]).unwrap();
        assert_eq!(
            installed(&mut rib, "198.51.100.0/24"),
            Some((Protocol::Ebgp, vec![ip("192.0.2.2")]))
        );
        let to_b = sent(&mut s, b).remove(&p).unwrap().unwrap();
        assert_eq!(to_b.as_path, AsPath::sequence([LOCAL_AS, 64501, 64999]));
        // A's session goes down: the prefix is gone from the RIB and withdrawn from the others.
        let _ = sent(&mut s, c);
        s.peer_down(a, &mut rib);
        assert_eq!(installed(&mut rib, "198.51.100.0/24"), None);
        assert_eq!(sent(&mut s, c).remove(&p), Some(None));
        assert_eq!(s.prefix_count(), 0);
    }

    #[test]
    fn ibgp_paths_are_not_reflected_but_go_to_ebgp() {
        let (mut rib, mut s) = (rib(), speaker());
        let [a, _, c, d] = four(&mut s);
        let p = net("203.0.113.0/24");
        let mut x = PathAttributes::clone(&attrs(&[64999], "192.0.2.4"));
        x.local_pref = Some(300);
        s.receive(c, &mut rib, &[], &[(p, Arc::new(x))]).unwrap();
        assert_eq!(
            installed(&mut rib, "203.0.113.0/24"),
            Some((Protocol::Ibgp, vec![ip("192.0.2.4")]))
        );
        assert!(
            sent(&mut s, d).is_empty(),
            "an iBGP path must not go to another iBGP peer"
        );
        let to_a = sent(&mut s, a).remove(&p).unwrap().unwrap();
        assert_eq!(to_a.as_path, AsPath::sequence([LOCAL_AS, 64999]));
        assert_eq!(to_a.local_pref, None);
    }

    #[test]
    fn well_known_communities_limit_export() {
        let (mut rib, mut s) = (rib(), speaker());
        let [a, b, c, _] = four(&mut s);
        let mut x = PathAttributes::clone(&attrs(&[64501], "192.0.2.2"));
        x.add_community(Community::NO_EXPORT);
        let mut y = PathAttributes::clone(&attrs(&[64501], "192.0.2.2"));
        y.add_community(Community::NO_ADVERTISE);
        s.receive(
            a,
            &mut rib,
            &[],
            &[
                (net("203.0.113.0/25"), Arc::new(x)),
                (net("203.0.113.128/25"), Arc::new(y)),
            ],
        )
        .unwrap();
        let to_b = sent(&mut s, b);
        assert!(to_b.is_empty(), "{to_b:?}");
        let to_c = sent(&mut s, c);
        assert!(to_c.contains_key(&net("203.0.113.0/25")));
        assert!(!to_c.contains_key(&net("203.0.113.128/25")));
        // Both are still used for forwarding.
        assert!(installed(&mut rib, "203.0.113.128/25").is_some());
    }

    #[test]
    fn own_as_in_the_path_is_a_loop_and_is_not_accepted() {
        let (mut rib, mut s) = (rib(), speaker());
        let [a, ..] = four(&mut s);
        s.receive(
            a,
            &mut rib,
            &[],
            &[(net("203.0.113.0/24"), attrs(&[64501, LOCAL_AS, 7], "192.0.2.2"))],
        )
        .unwrap();
        assert_eq!(
            s.counts(a),
            PeerCounts {
                received: 1,
                accepted: 0,
                advertised: 0
            }
        );
        assert_eq!(installed(&mut rib, "203.0.113.0/24"), None);
    }

    #[test]
    fn an_ebgp_path_must_start_with_the_peers_as() {
        let (mut rib, mut s) = (rib(), speaker());
        let [a, ..] = four(&mut s);
        s.receive(
            a,
            &mut rib,
            &[],
            &[(net("203.0.113.0/24"), attrs(&[64999, 64501], "192.0.2.2"))],
        )
        .unwrap();
        assert_eq!(
            s.counts(a),
            PeerCounts {
                received: 1,
                accepted: 0,
                advertised: 0
            }
        );
        s.receive(
            a,
            &mut rib,
            &[],
            &[(net("203.0.113.0/24"), attrs(&[64501, 64999], "192.0.2.2"))],
        )
        .unwrap();
        assert_eq!(s.counts(a).accepted, 1);
    }

    #[test]
    fn import_policy_change_applies_to_what_was_received() {
        let (mut rib, mut s) = (rib(), speaker());
        let mut sp = spec("192.0.2.2", 64501);
        sp.import = Filter::None;
        let a = s.add_peer(sp.clone());
        up(&mut s, a, "10.0.0.2");
        s.receive(
            a,
            &mut rib,
            &[],
            &[(net("203.0.113.0/24"), attrs(&[64501], "192.0.2.2"))],
        )
        .unwrap();
        assert_eq!(
            s.counts(a),
            PeerCounts {
                received: 1,
                accepted: 0,
                advertised: 0
            }
        );
        assert_eq!(installed(&mut rib, "203.0.113.0/24"), None);
        sp.import = Filter::Policy(Arc::new(|_: &IpNet, a: &Arc<PathAttributes>| {
            let mut x = PathAttributes::clone(a);
            x.local_pref = Some(250);
            Some(Arc::new(x))
        }));
        s.update_peer(&mut rib, a, sp);
        assert_eq!(s.counts(a).accepted, 1);
        assert_eq!(
            installed(&mut rib, "203.0.113.0/24"),
            Some((Protocol::Ebgp, vec![ip("192.0.2.2")]))
        );
        assert_eq!(
            s.paths(&rib, &net("203.0.113.0/24"))[0].attrs.local_pref,
            Some(250)
        );
    }

    #[test]
    fn too_many_prefixes_is_an_error() {
        let (mut rib, mut s) = (rib(), speaker());
        let mut sp = spec("192.0.2.2", 64501);
        sp.max_prefixes = Some(2);
        let a = s.add_peer(sp);
        up(&mut s, a, "10.0.0.2");
        let at = attrs(&[64501], "192.0.2.2");
        let two: Vec<(IpNet, Arc<PathAttributes>)> = ["203.0.113.0/25", "203.0.113.128/25"]
            .iter()
            .map(|n| (net(n), Arc::clone(&at)))
            .collect();
        assert_eq!(s.receive(a, &mut rib, &[], &two), Ok(()));
        let err = s
            .receive(a, &mut rib, &[], &[(net("198.51.100.0/24"), at)])
            .unwrap_err();
        assert_eq!(
            err,
            MaxPrefixes {
                family: Family::Ipv4Unicast,
                limit: 2
            }
        );
    }

    #[test]
    fn unreachable_next_hop_is_not_used_until_it_resolves() {
        let (mut rib, mut s) = (rib(), speaker());
        let [a, _, c, _] = four(&mut s);
        let p = net("203.0.113.0/24");
        s.receive(c, &mut rib, &[], &[(p, attrs(&[64999], "198.18.0.9"))])
            .unwrap();
        assert_eq!(installed(&mut rib, "203.0.113.0/24"), None);
        assert!(sent(&mut s, a).is_empty());
        assert_eq!(s.paths(&rib, &p)[0].step, Some(Step::NextHopUnreachable));
        // An IGP (here static) route to the next hop appears.
        rib.upsert(
            net("198.18.0.0/15"),
            Route {
                protocol: Protocol::Static,
                id: 0,
                distance: 1,
                metric: 0,
                target: Target::hops(vec![NextHopSpec {
                    via: Some(ip("192.0.2.9")),
                    port: None,
                    weight: 1,
                }]),
            },
        )
        .unwrap();
        drain(&mut rib);
        assert_eq!(s.refresh_next_hops(&mut rib), 1);
        assert_eq!(
            installed(&mut rib, "203.0.113.0/24"),
            Some((Protocol::Ibgp, vec![ip("192.0.2.9")]))
        );
        assert!(sent(&mut s, a).contains_key(&p));
        // And goes away again.
        rib.remove(net("198.18.0.0/15"), Protocol::Static, 0);
        drain(&mut rib);
        assert_eq!(s.refresh_next_hops(&mut rib), 1);
        assert_eq!(installed(&mut rib, "203.0.113.0/24"), None);
        assert_eq!(sent(&mut s, a).remove(&p), Some(None));
    }

    #[test]
    fn originated_networks_are_advertised_not_installed() {
        let (mut rib, mut s) = (rib(), speaker());
        let [a, _, c, _] = four(&mut s);
        s.set_networks(&mut rib, &[net("192.0.2.0/24"), net("2001:db8:1::/64")]);
        assert_eq!(installed(&mut rib, "192.0.2.0/24"), None);
        let to_a = sent(&mut s, a);
        let v4 = to_a[&net("192.0.2.0/24")].clone().unwrap();
        assert_eq!(v4.as_path, AsPath::sequence([LOCAL_AS]));
        assert_eq!(v4.origin, Origin::Igp);
        assert_eq!(v4.next_hop.addr, ip("192.0.2.1"));
        let v6 = to_a[&net("2001:db8:1::/64")].clone().unwrap();
        assert_eq!(v6.next_hop.addr, ip("2001:db8:1::1"));
        let to_c = sent(&mut s, c);
        let v4 = to_c[&net("192.0.2.0/24")].clone().unwrap();
        assert_eq!((v4.as_path.length(), v4.local_pref), (0, Some(100)));
        assert_eq!(v4.next_hop.addr, ip("192.0.2.1"));
        s.set_networks(&mut rib, &[]);
        assert_eq!(sent(&mut s, a).remove(&net("192.0.2.0/24")), Some(None));
    }

    #[test]
    fn outbound_groups_prefixes_by_attributes_and_a_new_session_gets_everything() {
        let (mut rib, mut s) = (rib(), speaker());
        let a = s.add_peer(spec("192.0.2.2", 64501));
        let b = s.add_peer(spec("192.0.2.3", 64502));
        up(&mut s, a, "10.0.0.2");
        let at = attrs(&[64501], "192.0.2.2");
        let many: Vec<(IpNet, Arc<PathAttributes>)> = (0..200u32)
            .map(|i| {
                (
                    IpNet::new(IpAddr::V4(Ipv4Addr::from(0xC612_0000 + (i << 8))), 24).unwrap(),
                    Arc::clone(&at),
                )
            })
            .collect();
        s.receive(a, &mut rib, &[], &many).unwrap();
        up(&mut s, b, "10.0.0.3");
        let out = s.take_outbound(b, usize::MAX);
        assert!(out.withdrawn.is_empty());
        assert_eq!(out.announced.len(), 1, "one attribute set");
        assert_eq!(out.announced[0].1.len(), 200);
        assert!(!s.has_pending(b));
        // Taking in slices.
        s.peer_down(b, &mut rib);
        up(&mut s, b, "10.0.0.3");
        assert_eq!(s.take_outbound(b, 150).announced[0].1.len(), 150);
        assert!(s.has_pending(b));
        assert_eq!(s.take_outbound(b, 150).announced[0].1.len(), 50);
    }

    #[test]
    fn path_lists_and_destinations_keep_their_contents_through_changes() {
        assert_eq!(std::mem::size_of::<PathList>(), 24);
        let path = |peer: PeerIdx| Path {
            peer,
            received: attrs(&[64501], "192.0.2.2"),
            accepted: None,
        };
        let peers = |l: &PathList| l.iter().map(|p| p.peer).collect::<Vec<_>>();
        let mut l = PathList::default();
        assert!(l.is_empty());
        l.push(path(1));
        assert!(matches!(l, PathList::One(_)));
        l.push(path(2));
        l.push(path(3));
        assert_eq!(peers(&l), [1, 2, 3]);
        assert_eq!(l.swap_remove(0).peer, 1);
        assert_eq!(peers(&l), [3, 2]);
        l.iter_mut().for_each(|p| p.peer += 10);
        assert_eq!(l.swap_remove(1).peer, 12);
        assert!(matches!(l, PathList::One(_)));
        assert_eq!(l.swap_remove(0).peer, 13);
        assert!(l.is_empty());

        let mut rib = rib();
        let mut d = Dests::default();
        let (a, b) = (net("198.51.100.0/24"), net("2001:db8::/32"));
        let hold = |d: &mut Dests, rib: &mut Rib, n: IpNet| d.hold(rib, n).map(|(slot, _)| slot).unwrap();
        let sa = hold(&mut d, &mut rib, a);
        d.by_slot[sa.index()].paths.push(path(1));
        let sb = hold(&mut d, &mut rib, b);
        d.by_slot[sb.index()].paths.push(path(2));
        assert_eq!(hold(&mut d, &mut rib, a), sa);
        d.by_slot[sa.index()].paths.push(path(3));
        assert_eq!(d.len(), 2);
        assert_eq!(peers(&d.get(&rib, &a).unwrap().1.paths), [1, 3]);
        // The slot is the RIB's for the prefix, and the RIB keeps it through drains although
        // it has no route there.
        assert_eq!(rib.slot(&a), Some(sa));
        drain(&mut rib);
        assert_eq!(rib.prefix_at(sa), Some(a));
        // Emptied and released: the RIB frees the slot at its next drain.
        d.by_slot[sa.index()].paths = PathList::default();
        d.release_if_empty(&mut rib, sa);
        assert_eq!(d.len(), 1);
        assert!(d.get(&rib, &a).is_none() && d.at(sa).is_none());
        drain(&mut rib);
        assert_eq!(rib.slot(&a), None);
        // A new destination reuses the slot, empty.
        let c = net("203.0.113.0/24");
        let (sc, dc) = d.hold(&mut rib, c).unwrap();
        assert!(dc.paths.is_empty() && dc.prefix == c);
        assert_eq!(sc, sa);
        dc.paths.push(path(4));
        assert_eq!(peers(&d.get(&rib, &b).unwrap().1.paths), [2]);
        let mut keys: Vec<IpNet> = d.iter().map(|(_, x)| x.prefix).collect();
        keys.sort();
        assert_eq!(keys, [c, b]);
        // A prefix with host bits is refused (the codec never produces one).
        assert!(d.hold(&mut rib, net("203.0.113.1/24")).is_none());
        assert_eq!(d.len(), 2);
    }

    /// Whether the RIB still has a slot for `prefix` after a drain (a pin or a route keeps one).
    fn has_slot(rib: &mut Rib, prefix: &str) -> bool {
        drain(rib);
        rib.slot(&net(prefix)).is_some()
    }

    #[test]
    fn rib_slots_are_pinned_while_paths_exist_and_released_after() {
        let (mut rib, mut s) = (rib(), speaker());
        let [a, b, _, _] = four(&mut s);
        let mut sp = spec("192.0.2.3", 64502);
        sp.import = Filter::None;
        s.update_peer(&mut rib, b, sp);
        let (p, q, r) = (
            net("198.51.100.0/24"),
            net("203.0.113.0/24"),
            net("2001:db8:77::/48"),
        );
        s.receive(a, &mut rib, &[], &[(p, attrs(&[64501], "192.0.2.2"))])
            .unwrap();
        // Rejected by B's import policy: in the Adj-RIB-In only, its slot pinned all the same.
        s.receive(b, &mut rib, &[], &[(q, attrs(&[64502], "192.0.2.3"))])
            .unwrap();
        s.set_networks(&mut rib, &[r]);
        assert!(has_slot(&mut rib, "198.51.100.0/24") && has_slot(&mut rib, "203.0.113.0/24"));
        assert!(has_slot(&mut rib, "2001:db8:77::/48"));
        assert_eq!(installed(&mut rib, "203.0.113.0/24"), None);
        assert_eq!((s.counts(b).received, s.counts(b).accepted), (1, 0));
        assert_eq!(s.prefix_count(), 3);
        // Withdrawn, or its peer gone: slot freed.
        s.receive(a, &mut rib, &[p], &[]).unwrap();
        assert!(!has_slot(&mut rib, "198.51.100.0/24"));
        s.peer_down(b, &mut rib);
        assert!(!has_slot(&mut rib, "203.0.113.0/24"));
        // A prefix the RIB also has from another protocol keeps that route when BGP lets go.
        rib.upsert(
            p,
            Route {
                protocol: Protocol::Static,
                id: 1,
                distance: 1,
                metric: 0,
                target: Target::Blackhole,
            },
        )
        .unwrap();
        s.receive(a, &mut rib, &[], &[(p, attrs(&[64501], "192.0.2.2"))])
            .unwrap();
        assert_eq!(s.paths(&rib, &p).len(), 1);
        // Stopping the speaker removes its routes and releases every slot, networks included.
        s.release_all(&mut rib);
        assert_eq!(s.prefix_count(), 0);
        assert!(!has_slot(&mut rib, "2001:db8:77::/48"));
        assert!(has_slot(&mut rib, "198.51.100.0/24"));
        assert_eq!(installed(&mut rib, "198.51.100.0/24"), None);
        assert_eq!(rib.stats().per_protocol[Protocol::Ebgp as usize], 0);
        assert!(s.paths(&rib, &p).is_empty());
    }

    #[test]
    fn multipath_installs_equal_paths_from_the_same_neighbour_as() {
        let (mut rib, mut s) = (rib(), speaker());
        s.settings.decision.multipath = true;
        let a = s.add_peer(spec("192.0.2.2", 64501));
        let b = s.add_peer(spec("192.0.2.3", 64501));
        up(&mut s, a, "10.0.0.2");
        up(&mut s, b, "10.0.0.3");
        let p = net("203.0.113.0/24");
        s.receive(a, &mut rib, &[], &[(p, attrs(&[64501, 7], "192.0.2.2"))])
            .unwrap();
        s.receive(b, &mut rib, &[], &[(p, attrs(&[64501, 8], "192.0.2.3"))])
            .unwrap();
        let (proto, mut hops) = installed(&mut rib, "203.0.113.0/24").unwrap();
        hops.sort();
        assert_eq!(
            (proto, hops),
            (Protocol::Ebgp, vec![ip("192.0.2.2"), ip("192.0.2.3")])
        );
    }
}
