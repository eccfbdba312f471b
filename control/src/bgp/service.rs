//! The BGP service: one [`fsm::Session`] per configured neighbour, the codec between them and
//! the wire, and the [`Speaker`] holding the routes. Still free of sockets and clocks: the
//! daemon's I/O layer (`bgp::io`) reports connections, bytes and time, and carries out the
//! [`Io`] requests this returns, so that tests drive whole sessions with byte buffers.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::decision::DecisionConfig;
use super::fsm::{self, Action, ConnId, Event, Session, SessionConfig, State};
use super::message::{
    self, Capability, DecodeContext, EncodeContext, FamilySet, Message, Open, RouteRefresh, Update,
};
use super::policy::{self, PolicyContext};
use super::speaker::{Filter, PeerCounts, PeerIdx, PeerSpec, SessionInfo, Settings, Speaker};
use super::types::PathAttributes;
use crate::config::{BgpConfig, InterfaceConfig, NeighborConfig, PolicyRef};
use crate::rib::Rib;

/// Prefixes taken from a peer's pending exports per [`BgpService::tick`]: bounds the time the
/// daemon's lock is held and the bytes queued on a socket per round.
const EXPORT_BATCH: usize = 20_000;
/// Stop queueing exports on a connection while this many bytes wait to be written.
pub const MAX_BACKLOG: usize = 4 << 20;

/// Names a connection between the service and the I/O layer: the service's generation (a
/// reload builds a new service while the old one's connections are still closing), the
/// neighbour, and the session's own connection id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnKey(pub u64);

impl ConnKey {
    fn new(generation: u16, neighbor: usize, conn: ConnId) -> Self {
        Self(u64::from(generation) << 48 | (neighbor as u64 & 0xFFFF) << 32 | (conn.0 & 0xFFFF_FFFF))
    }
}

impl std::fmt::Display for ConnKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.0 >> 48,
            (self.0 >> 32) & 0xFFFF,
            self.0 & 0xFFFF_FFFF
        )
    }
}

/// What the I/O layer must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Io {
    /// Open a TCP connection to `remote` (from `local` if given) and report
    /// [`BgpService::connected`] or [`BgpService::connect_failed`].
    Connect {
        conn: ConnKey,
        remote: SocketAddr,
        local: Option<IpAddr>,
        timeout: Duration,
    },
    Send {
        conn: ConnKey,
        bytes: Vec<u8>,
    },
    /// Close after writing what was queued.
    Close {
        conn: ConnKey,
    },
}

/// One configured neighbour at run time.
#[derive(Debug)]
struct Neighbor {
    cfg: NeighborConfig,
    idx: PeerIdx,
    fsm: Session,
    /// Live connections and our address on each (known once connected).
    conns: HashMap<ConnId, Option<IpAddr>>,
    decode: DecodeContext,
    encode: EncodeContext,
    /// An UPDATE between `Event::Update` and `Action::DeliverUpdate`.
    update: Option<Update>,
    refresh: Option<RouteRefresh>,
    established: Option<ConnId>,
    /// RFC 7606 repairs of this peer's UPDATEs, and the last one.
    repaired: u64,
    last_repair: Option<String>,
    /// A session closed for too many prefixes restarts then (`max-prefixes-restart`).
    restart_at: Option<Instant>,
    /// Bytes waiting to be written on the established connection, as the I/O layer reports.
    backlog: usize,
}

/// `xroutectl bgp summary`, one row per neighbour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighborSummary {
    pub address: IpAddr,
    pub remote_as: u32,
    pub description: Option<String>,
    pub state: String,
    /// Seconds in the current state (Established: the uptime).
    pub state_seconds: Option<u64>,
    pub received: usize,
    pub accepted: usize,
    pub advertised: usize,
    pub messages_in: u64,
    pub messages_out: u64,
    pub last_error: Option<String>,
}

/// `xroutectl bgp neighbor ADDR`: the summary and the session's details.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighborDetail {
    pub summary: NeighborSummary,
    pub kind: String,
    pub passive: bool,
    pub shutdown: bool,
    pub local_address: Option<IpAddr>,
    pub peer_router_id: Option<Ipv4Addr>,
    pub hold_time: Option<u16>,
    pub keepalive: Option<u16>,
    pub four_octet_as: Option<bool>,
    pub route_refresh: Option<bool>,
    pub families: Vec<String>,
    pub import: String,
    pub export: String,
    pub max_prefixes: Option<u32>,
    pub updates_in: u64,
    pub updates_out: u64,
    pub notifications_in: u64,
    pub notifications_out: u64,
    pub established_transitions: u64,
    pub connect_attempts: u64,
    pub repaired_updates: u64,
    pub last_repair: Option<String>,
    pub connections: Vec<String>,
}

/// One path in `xroutectl bgp routes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathEntry {
    pub prefix: IpNet,
    /// `None`: originated here.
    pub peer: Option<IpAddr>,
    pub best: bool,
    pub multipath: bool,
    /// For the best path, what decided; for the others, the step they lost at.
    pub reason: Option<String>,
    pub next_hop: IpAddr,
    pub igp_cost: Option<u32>,
    pub as_path: String,
    pub origin: String,
    pub local_pref: Option<u32>,
    pub med: Option<u32>,
    pub communities: Vec<String>,
    pub atomic_aggregate: bool,
    pub aggregator: Option<String>,
}

/// `xroutectl bgp summary` as a whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub local_as: u32,
    pub router_id: Ipv4Addr,
    pub prefixes: usize,
    pub neighbors: Vec<NeighborSummary>,
}

/// The running BGP instance; see the module docs.
#[derive(Debug)]
pub struct BgpService {
    cfg: BgpConfig,
    router_id: Ipv4Addr,
    /// Every interface's addresses, to find our address of the other family on a session's
    /// interface (the IPv6 next hop over an IPv4 session and the reverse).
    interfaces: Vec<Vec<IpNet>>,
    speaker: Speaker,
    neighbors: Vec<Neighbor>,
    generation: u16,
    io: Vec<Io>,
    actions: Vec<Action>,
    /// A peer's End-of-RIB arrived: what it sent so far is its whole table, and the engine
    /// should publish it at once rather than when its burst of records ends.
    commit_requested: bool,
}

/// The router ID: configured, else the highest IPv4 interface address.
pub fn router_id(cfg: &BgpConfig, interfaces: &[InterfaceConfig]) -> Option<Ipv4Addr> {
    cfg.router_id.or_else(|| {
        interfaces
            .iter()
            .flat_map(|i| i.addresses.iter())
            .filter_map(|a| match a.addr() {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
            .max()
    })
}

/// What a neighbour's `import`/`export` setting becomes for the speaker.
pub type PolicyResolver<'a> = &'a dyn Fn(&PolicyRef) -> Result<Filter, String>;

/// The import/export filters of a configuration: `all`, `none`, and its compiled policies.
pub fn policy_filters(cfg: &BgpConfig) -> Result<impl Fn(&PolicyRef) -> Result<Filter, String>, String> {
    let compiled = policy::compile(&cfg.policy).map_err(|e| format!("bgp: {e}"))?;
    let ctx = PolicyContext {
        local_as: cfg.local_as,
    };
    Ok(move |p: &PolicyRef| match p {
        PolicyRef::All => Ok(Filter::All),
        PolicyRef::None => Ok(Filter::None),
        PolicyRef::Named(name) => {
            let pol = Arc::clone(
                compiled
                    .get(name)
                    .ok_or_else(|| format!("no policy named {name:?}"))?,
            );
            Ok(Filter::Policy(Arc::new(
                move |prefix: &IpNet, attrs: &Arc<PathAttributes>| pol.apply(prefix, attrs, &ctx),
            )))
        }
    })
}

impl BgpService {
    /// Starts every neighbour that is not shut down.
    /// Checks what [`BgpService::new`] would refuse, without side effects.
    pub fn check(
        cfg: &BgpConfig,
        interfaces: &[InterfaceConfig],
        policies: PolicyResolver<'_>,
    ) -> Result<(), String> {
        let router_id = router_id(cfg, interfaces).ok_or("bgp: no router ID (set bgp.router-id)")?;
        for n in &cfg.neighbors {
            Session::new(session_config(cfg, router_id, n))
                .map_err(|e| format!("bgp neighbor {}: {e}", n.address))?;
            Self::peer_spec(n, policies)?;
        }
        Ok(())
    }

    /// Starts every neighbour that is not shut down. `generation` tells this service's
    /// connections apart from an earlier one's.
    pub fn new(
        cfg: &BgpConfig,
        interfaces: &[InterfaceConfig],
        policies: PolicyResolver<'_>,
        rib: &mut Rib,
        now: Instant,
        generation: u16,
    ) -> Result<Self, String> {
        let router_id = router_id(cfg, interfaces).ok_or("bgp: no router ID (set bgp.router-id)")?;
        let speaker = Speaker::new(Settings {
            local_as: cfg.local_as,
            router_id,
            decision: DecisionConfig {
                multipath: cfg.multipath,
                max_paths: usize::from(cfg.max_paths),
                always_compare_med: cfg.always_compare_med,
                default_local_pref: cfg.default_local_pref,
            },
            ebgp_distance: cfg.ebgp_distance,
            ibgp_distance: cfg.ibgp_distance,
        });
        let mut svc = Self {
            cfg: cfg.clone(),
            router_id,
            interfaces: interfaces.iter().map(|i| i.addresses.clone()).collect(),
            speaker,
            neighbors: Vec::new(),
            generation,
            io: Vec::new(),
            actions: Vec::new(),
            commit_requested: false,
        };
        for n in &cfg.neighbors {
            svc.add_neighbor(n.clone(), policies, now)?;
        }
        svc.speaker.set_networks(rib, &cfg.networks);
        Ok(svc)
    }

    fn peer_spec(n: &NeighborConfig, policies: PolicyResolver<'_>) -> Result<PeerSpec, String> {
        let import = policies(&n.import).map_err(|e| format!("bgp neighbor {}: import: {e}", n.address))?;
        let export = policies(&n.export).map_err(|e| format!("bgp neighbor {}: export: {e}", n.address))?;
        Ok(PeerSpec {
            address: n.address,
            remote_as: n.remote_as,
            import,
            export,
            next_hop_self: n.next_hop_self,
            max_prefixes: n.max_prefixes,
        })
    }

    fn add_neighbor(
        &mut self,
        n: NeighborConfig,
        policies: PolicyResolver<'_>,
        now: Instant,
    ) -> Result<(), String> {
        let fsm = Session::new(session_config(&self.cfg, self.router_id, &n))
            .map_err(|e| format!("bgp neighbor {}: {e}", n.address))?;
        let idx = self.speaker.add_peer(Self::peer_spec(&n, policies)?);
        let ebgp = n.remote_as != self.cfg.local_as;
        let families: FamilySet = n.families.iter().copied().collect();
        self.neighbors.push(Neighbor {
            idx,
            fsm,
            conns: HashMap::new(),
            decode: DecodeContext::new(true, ebgp, families),
            encode: EncodeContext { four_octet_as: true },
            update: None,
            refresh: None,
            established: None,
            repaired: 0,
            last_repair: None,
            restart_at: None,
            backlog: 0,
            cfg: n,
        });
        let i = self.neighbors.len() - 1;
        if !self.neighbors[i].cfg.shutdown {
            self.event(i, now, Event::ManualStart, None);
        }
        Ok(())
    }

    /// Whether `new` differs from the running configuration only in policies (the lists and
    /// policy definitions, and neighbours' `import`/`export`): then
    /// [`BgpService::reconfigure_policies`] applies it without touching any session.
    pub fn policy_only_change(&self, new: &BgpConfig) -> bool {
        let strip = |c: &BgpConfig| {
            let mut c = c.clone();
            c.policy = Default::default();
            for n in &mut c.neighbors {
                n.import = PolicyRef::All;
                n.export = PolicyRef::All;
            }
            c
        };
        strip(&self.cfg) == strip(new)
    }

    /// Applies new policies in place (soft reconfiguration): every neighbour's import policy
    /// runs again over what it sent (kept before policy), its export policy over what it was
    /// told, and only the differences go to the RIB and to the peers. `new` must pass
    /// [`BgpService::policy_only_change`]; on error nothing changed.
    pub fn reconfigure_policies(
        &mut self,
        new: &BgpConfig,
        policies: PolicyResolver<'_>,
        rib: &mut Rib,
    ) -> Result<(), String> {
        if !self.policy_only_change(new) {
            return Err("bgp: more than policies changed".to_owned());
        }
        let specs = new
            .neighbors
            .iter()
            .map(|n| Self::peer_spec(n, policies))
            .collect::<Result<Vec<_>, _>>()?;
        for ((n, cfg), spec) in self.neighbors.iter_mut().zip(&new.neighbors).zip(specs) {
            n.cfg = cfg.clone();
            self.speaker.update_peer(rib, n.idx, spec);
        }
        self.cfg = new.clone();
        Ok(())
    }

    /// Whether the I/O layer should listen, and on which port.
    pub fn listen_port(&self) -> Option<u16> {
        self.cfg.listen.then_some(self.cfg.port)
    }

    pub fn config(&self) -> &BgpConfig {
        &self.cfg
    }

    /// What the I/O layer must do now.
    pub fn take_io(&mut self) -> Vec<Io> {
        std::mem::take(&mut self.io)
    }

    fn key(&self, i: usize, conn: ConnId) -> ConnKey {
        ConnKey::new(self.generation, i, conn)
    }

    /// The neighbour and session connection a key names, if it is one of this service's and
    /// the session still knows it.
    fn split(&self, key: ConnKey) -> Option<(usize, ConnId)> {
        if (key.0 >> 48) as u16 != self.generation {
            return None;
        }
        let i = ((key.0 >> 32) & 0xFFFF) as usize;
        let conn = ConnId(key.0 & 0xFFFF_FFFF);
        self.neighbors
            .get(i)?
            .conns
            .contains_key(&conn)
            .then_some((i, conn))
    }

    /// A connection arrived from `remote` on our address `local`. `None`: not from a
    /// configured neighbour (or one that is shut down): close it.
    pub fn accept(&mut self, now: Instant, remote: SocketAddr, local: SocketAddr) -> Option<ConnKey> {
        let from = remote.ip().to_canonical();
        let i = self.neighbors.iter().position(|n| n.cfg.address == from)?;
        if self.neighbors[i].cfg.shutdown || !self.neighbors[i].fsm.is_started() {
            return None;
        }
        let id = self.neighbors[i].fsm.new_conn_id();
        self.neighbors[i]
            .conns
            .insert(id, Some(local.ip().to_canonical()));
        self.event(i, now, Event::Accepted(id), None);
        Some(self.key(i, id))
    }

    pub fn connected(&mut self, now: Instant, key: ConnKey, local: SocketAddr) {
        if let Some((i, conn)) = self.split(key) {
            self.neighbors[i]
                .conns
                .insert(conn, Some(local.ip().to_canonical()));
            self.event(i, now, Event::Connected(conn), None);
        }
    }

    pub fn connect_failed(&mut self, now: Instant, key: ConnKey, error: String) {
        if let Some((i, conn)) = self.split(key) {
            self.event(i, now, Event::ConnectFailed(conn, error), None);
        }
    }

    /// The connection ended (`error`: `None` when the peer closed it).
    pub fn closed(&mut self, now: Instant, rib: &mut Rib, key: ConnKey, error: Option<String>) {
        if let Some((i, conn)) = self.split(key) {
            self.event(i, now, Event::Closed(conn, error), Some(rib));
        }
    }

    /// The I/O layer's count of bytes still to be written on `key`.
    pub fn set_backlog(&mut self, key: ConnKey, bytes: usize) {
        if let Some((i, conn)) = self.split(key) {
            if self.neighbors[i].established == Some(conn) {
                self.neighbors[i].backlog = bytes;
            }
        }
    }

    /// The stream is not BGP (bad marker, length or type): `notification` says why.
    pub fn framing_error(
        &mut self,
        now: Instant,
        rib: &mut Rib,
        key: ConnKey,
        notification: message::Notification,
    ) {
        if let Some((i, conn)) = self.split(key) {
            self.event(i, now, Event::DecodeError(conn, to_fsm(&notification)), Some(rib));
        }
    }

    /// One whole message (as `message::frame_len` delimited it) arrived.
    pub fn message(&mut self, now: Instant, rib: &mut Rib, key: ConnKey, bytes: &[u8]) {
        let Some((i, conn)) = self.split(key) else {
            return;
        };
        let event = match message::decode(bytes, &self.neighbors[i].decode) {
            Err(n) => Event::DecodeError(conn, to_fsm(&n)),
            Ok(Message::Open(o)) => Event::Open(conn, peer_open(&o)),
            Ok(Message::Keepalive) => Event::Keepalive(conn),
            Ok(Message::Notification(n)) => Event::Notification(conn, to_fsm(&n)),
            Ok(Message::Update(u)) => {
                self.neighbors[i].update = Some(u);
                Event::Update(conn)
            }
            Ok(Message::RouteRefresh(r)) => {
                self.neighbors[i].refresh = Some(r);
                Event::RouteRefresh(conn)
            }
        };
        self.event(i, now, event, Some(rib));
    }

    /// When [`BgpService::tick`] next has something to do (a timer), at the latest.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.neighbors
            .iter()
            .flat_map(|n| [n.fsm.next_deadline(), n.restart_at])
            .flatten()
            .min()
    }

    /// Whether exports wait to be sent (the I/O layer then ticks again soon).
    pub fn has_pending(&self) -> bool {
        self.neighbors
            .iter()
            .any(|n| n.established.is_some() && n.backlog < MAX_BACKLOG && self.speaker.has_pending(n.idx))
    }

    /// Timers, delayed restarts and pending exports.
    pub fn tick(&mut self, now: Instant, rib: &mut Rib) {
        for i in 0..self.neighbors.len() {
            if self.neighbors[i].restart_at.is_some_and(|t| t <= now) {
                self.neighbors[i].restart_at = None;
                self.event(i, now, Event::ManualStart, Some(rib));
            }
            if self.neighbors[i].fsm.next_deadline().is_some_and(|t| t <= now) {
                let mut actions = std::mem::take(&mut self.actions);
                self.neighbors[i].fsm.on_timer(now, &mut actions);
                self.run_actions(i, now, &mut actions, Some(rib));
                self.actions = actions;
            }
        }
        self.flush(now);
    }

    /// Next hops resolve differently after RIB changes: decide again where that matters.
    pub fn refresh_next_hops(&mut self, rib: &mut Rib) -> usize {
        self.speaker.refresh_next_hops(rib)
    }

    /// Encodes pending exports into UPDATEs for every established neighbour with room.
    fn flush(&mut self, now: Instant) {
        for i in 0..self.neighbors.len() {
            let n = &self.neighbors[i];
            let Some(conn) = n.established else { continue };
            if n.backlog >= MAX_BACKLOG || !self.speaker.has_pending(n.idx) {
                continue;
            }
            let out = self.speaker.take_outbound(n.idx, EXPORT_BATCH);
            let mut bytes = Vec::new();
            let mut updates = message::encode_withdraw(&out.withdrawn, &mut bytes);
            for (attrs, prefixes) in &out.announced {
                match message::encode_announce(attrs, prefixes, &n.encode, &mut bytes) {
                    Ok(k) => updates += k,
                    Err(e) => tracing::warn!(
                        "bgp neighbor {}: cannot announce {} prefixes: {e}",
                        n.cfg.address,
                        prefixes.len()
                    ),
                }
            }
            if bytes.is_empty() {
                continue;
            }
            self.neighbors[i].backlog += bytes.len();
            for _ in 0..updates {
                self.neighbors[i].fsm.on_sent_update(now);
            }
            let conn = self.key(i, conn);
            self.io.push(Io::Send { conn, bytes });
        }
    }

    fn event(&mut self, i: usize, now: Instant, event: Event, rib: Option<&mut Rib>) {
        let mut actions = std::mem::take(&mut self.actions);
        actions.clear();
        self.neighbors[i].fsm.handle(now, event, &mut actions);
        self.run_actions(i, now, &mut actions, rib);
        self.actions = actions;
    }

    fn run_actions(&mut self, i: usize, now: Instant, actions: &mut Vec<Action>, mut rib: Option<&mut Rib>) {
        for action in actions.drain(..) {
            match action {
                Action::Connect(conn) => {
                    let key = self.key(i, conn);
                    let n = &mut self.neighbors[i];
                    n.conns.insert(conn, None);
                    self.io.push(Io::Connect {
                        conn: key,
                        remote: SocketAddr::new(n.cfg.address, self.cfg.port),
                        local: n.cfg.local_address,
                        timeout: n.fsm.config().connect_retry,
                    });
                }
                Action::Close(conn) => {
                    let key = self.key(i, conn);
                    let n = &mut self.neighbors[i];
                    n.conns.remove(&conn);
                    if n.established == Some(conn) {
                        n.established = None;
                    }
                    self.io.push(Io::Close { conn: key });
                }
                Action::SendOpen(conn, lo) => {
                    let mut caps: Vec<Capability> = lo
                        .families
                        .iter()
                        .map(|f| Capability::Multiprotocol(*f))
                        .collect();
                    if lo.route_refresh {
                        caps.push(Capability::RouteRefresh);
                    }
                    if lo.four_octet_as {
                        caps.push(Capability::FourOctetAs(lo.asn));
                    }
                    let open = Message::Open(Open::new(lo.asn, lo.hold_time, lo.router_id, caps));
                    self.send(conn, &open, i);
                }
                Action::SendKeepalive(conn) => self.send(conn, &Message::Keepalive, i),
                Action::SendNotification(conn, n) => {
                    let note = message::Notification::new(n.code, n.subcode, n.data.clone());
                    tracing::warn!(
                        "bgp neighbor {}: sending notification: {n}",
                        self.neighbors[i].cfg.address
                    );
                    self.send(conn, &Message::Notification(note), i);
                }
                Action::Established(conn, neg) => {
                    let local = self.neighbors[i].conns.get(&conn).copied().flatten();
                    let (local_v4, local_v6) = self.local_addresses(&self.neighbors[i].cfg, local);
                    let n = &mut self.neighbors[i];
                    n.established = Some(conn);
                    n.backlog = 0;
                    n.decode = DecodeContext::new(
                        neg.four_octet_as,
                        n.cfg.remote_as != self.cfg.local_as,
                        neg.families.iter().copied().collect(),
                    );
                    n.encode = EncodeContext {
                        four_octet_as: neg.four_octet_as,
                    };
                    tracing::info!(
                        "bgp neighbor {} AS{}: established (hold {} s, families {:?})",
                        n.cfg.address,
                        neg.peer_as,
                        neg.hold_time,
                        neg.families
                    );
                    self.speaker.peer_up(
                        n.idx,
                        SessionInfo {
                            peer_id: neg.peer_router_id,
                            families: neg.families.clone(),
                            local_v4,
                            local_v6,
                        },
                    );
                }
                Action::Down { reason } => {
                    let n = &mut self.neighbors[i];
                    n.established = None;
                    n.update = None;
                    n.refresh = None;
                    tracing::warn!("bgp neighbor {}: session down: {reason}", n.cfg.address);
                    if let Some(rib) = rib.as_deref_mut() {
                        self.speaker.peer_down(n.idx, rib);
                    }
                }
                Action::DeliverUpdate(_) => {
                    if let (Some(update), Some(rib)) = (self.neighbors[i].update.take(), rib.as_deref_mut()) {
                        self.apply_update(i, now, rib, update);
                    }
                }
                Action::DeliverRouteRefresh(_) => {
                    if let Some(r) = self.neighbors[i].refresh.take() {
                        if r.subtype == RouteRefresh::REQUEST && r.family().is_some() {
                            self.speaker.resend_all(self.neighbors[i].idx);
                        }
                    }
                }
            }
        }
    }

    /// Our next-hop addresses toward a neighbour: the session's local address for its family,
    /// and for the other family an address of the interface that holds it.
    fn local_addresses(
        &self,
        n: &NeighborConfig,
        local: Option<IpAddr>,
    ) -> (Option<Ipv4Addr>, Option<Ipv6Addr>) {
        let local = n.local_address.or(local);
        let iface = local.and_then(|l| {
            self.interfaces
                .iter()
                .find(|addrs| addrs.iter().any(|a| a.addr() == l))
        });
        let mut v4 = None;
        let mut v6 = None;
        match local {
            Some(IpAddr::V4(a)) => v4 = Some(a),
            Some(IpAddr::V6(a)) => v6 = Some(a),
            None => {}
        }
        if let Some(addrs) = iface {
            for a in addrs {
                match a.addr() {
                    IpAddr::V4(x) if v4.is_none() => v4 = Some(x),
                    IpAddr::V6(x) if v6.is_none() && (x.segments()[0] & 0xffc0) != 0xfe80 => v6 = Some(x),
                    _ => {}
                }
            }
        }
        (v4, v6)
    }

    fn send(&mut self, conn: ConnId, msg: &Message, i: usize) {
        let conn = self.key(i, conn);
        match msg.to_bytes(&self.neighbors[i].encode) {
            Ok(bytes) => self.io.push(Io::Send { conn, bytes }),
            Err(e) => tracing::error!(
                "bgp neighbor {}: cannot encode {}: {e}",
                self.neighbors[i].cfg.address,
                msg.kind()
            ),
        }
    }

    fn apply_update(&mut self, i: usize, now: Instant, rib: &mut Rib, update: Update) {
        if let Some(family) = update.end_of_rib() {
            let n = &self.neighbors[i];
            let PeerCounts {
                received, accepted, ..
            } = self.speaker.counts(n.idx);
            tracing::info!(
                "bgp neighbor {}: End-of-RIB for {family}, {received} prefixes received, {accepted} accepted",
                n.cfg.address
            );
            self.commit_requested = true;
            return;
        }
        let n = &mut self.neighbors[i];
        if !update.issues.is_empty() {
            n.repaired += 1;
            let text = update
                .issues
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            // The first repair of a session is logged; the rest are counted.
            if n.last_repair.is_none() {
                tracing::warn!(
                    "bgp neighbor {}: malformed UPDATE repaired (RFC 7606): {text}",
                    n.cfg.address
                );
            }
            n.last_repair = Some(text);
        }
        let announced: Vec<(Arc<PathAttributes>, Vec<IpNet>)> = update
            .announced
            .into_iter()
            .map(|a| (Arc::new(a.attrs), a.prefixes))
            .collect();
        let idx = n.idx;
        if let Err(e) = self
            .speaker
            .receive_grouped(idx, rib, &update.withdrawn, &announced)
        {
            let n = &mut self.neighbors[i];
            tracing::warn!("bgp neighbor {}: {e}: closing the session", n.cfg.address);
            if let Some(secs) = n.cfg.max_prefixes_restart {
                n.restart_at = now.checked_add(Duration::from_secs(u64::from(secs)));
            }
            let mut data = Vec::with_capacity(7);
            data.extend_from_slice(&e.family.afi().to_be_bytes());
            data.push(e.family.safi());
            data.extend_from_slice(&e.limit.to_be_bytes());
            let mut note = fsm::Notification::cease(fsm::Cease::MaximumPrefixesReached, None);
            note.data = data;
            // ManualStop sends its own Cease; the data of RFC 4486 goes with a direct send.
            if let Some(conn) = n.established {
                let conn = ConnKey::new(self.generation, i, conn);
                self.io.push(Io::Send {
                    conn,
                    bytes: Message::Notification(message::Notification::new(
                        note.code,
                        note.subcode,
                        note.data,
                    ))
                    .to_bytes(&n.encode)
                    .unwrap_or_default(),
                });
            }
            self.event(
                i,
                now,
                Event::ManualStop {
                    cease: fsm::Cease::MaximumPrefixesReached,
                    text: None,
                },
                Some(rib),
            );
        }
    }

    /// `xroutectl bgp reset ADDR`: closes the session with Cease / administrative reset and
    /// starts it again (also one stopped for too many prefixes).
    pub fn reset(&mut self, now: Instant, rib: &mut Rib, addr: IpAddr) -> Result<(), String> {
        let i = self
            .neighbors
            .iter()
            .position(|n| n.cfg.address == addr)
            .ok_or_else(|| format!("no BGP neighbor {addr}"))?;
        if self.neighbors[i].cfg.shutdown {
            return Err(format!("BGP neighbor {addr} is shut down in the configuration"));
        }
        self.neighbors[i].restart_at = None;
        let cease = fsm::Cease::AdministrativeReset;
        if self.neighbors[i].fsm.is_started() {
            self.event(i, now, Event::Reset { cease, text: None }, Some(rib));
        } else {
            self.event(i, now, Event::ManualStart, Some(rib));
        }
        Ok(())
    }

    /// Stops every session (daemon shutdown): Cease / administrative shutdown.
    pub fn shutdown(&mut self, now: Instant, rib: &mut Rib) {
        for i in 0..self.neighbors.len() {
            let cease = fsm::Cease::AdministrativeShutdown;
            self.event(i, now, Event::ManualStop { cease, text: None }, Some(rib));
        }
        // The networks we originate, and anything a session left behind.
        self.speaker.release_all(rib);
    }

    /// Whether a peer ended its initial table (End-of-RIB) since the last call: the daemon
    /// then sends the engine a commit after the routes it drains next.
    pub fn take_commit(&mut self) -> bool {
        std::mem::take(&mut self.commit_requested)
    }

    pub fn summary(&self, now: Instant) -> Summary {
        Summary {
            local_as: self.cfg.local_as,
            router_id: self.router_id,
            prefixes: self.speaker.prefix_count(),
            neighbors: self
                .neighbors
                .iter()
                .map(|n| self.neighbor_summary(n, now))
                .collect(),
        }
    }

    fn neighbor_summary(&self, n: &Neighbor, now: Instant) -> NeighborSummary {
        let PeerCounts {
            received,
            accepted,
            advertised,
        } = self.speaker.counts(n.idx);
        let c = n.fsm.counters();
        let state = n.fsm.state();
        NeighborSummary {
            address: n.cfg.address,
            remote_as: n.cfg.remote_as,
            description: n.cfg.description.clone(),
            state: if n.cfg.shutdown {
                "Idle (shutdown)".to_owned()
            } else if state == State::Idle && n.restart_at.is_some() {
                "Idle (max prefixes)".to_owned()
            } else {
                state.as_str().to_owned()
            },
            state_seconds: n
                .fsm
                .state_since()
                .map(|t| now.saturating_duration_since(t).as_secs()),
            received,
            accepted,
            advertised,
            messages_in: c.received.total(),
            messages_out: c.sent.total(),
            last_error: n.fsm.last_error().map(|e| e.reason.to_string()),
        }
    }

    pub fn neighbor(&self, addr: IpAddr, now: Instant) -> Option<NeighborDetail> {
        let n = self.neighbors.iter().find(|n| n.cfg.address == addr)?;
        let neg = n.fsm.negotiated();
        let c = n.fsm.counters();
        Some(NeighborDetail {
            summary: self.neighbor_summary(n, now),
            kind: if n.cfg.remote_as == self.cfg.local_as {
                "iBGP"
            } else {
                "eBGP"
            }
            .to_owned(),
            passive: n.cfg.passive,
            shutdown: n.cfg.shutdown,
            local_address: n
                .established
                .and_then(|c| n.conns.get(&c).copied().flatten())
                .or(n.cfg.local_address),
            peer_router_id: neg.map(|x| x.peer_router_id),
            hold_time: neg.map(|x| x.hold_time),
            keepalive: neg.map(|x| x.keepalive),
            four_octet_as: neg.map(|x| x.four_octet_as),
            route_refresh: neg.map(|x| x.route_refresh),
            families: neg
                .map(|x| x.families.iter().map(|f| f.to_string()).collect())
                .unwrap_or_default(),
            import: n.cfg.import.as_str().to_owned(),
            export: n.cfg.export.as_str().to_owned(),
            max_prefixes: n.cfg.max_prefixes,
            updates_in: c.received.update,
            updates_out: c.sent.update,
            notifications_in: c.received.notification,
            notifications_out: c.sent.notification,
            established_transitions: c.established_transitions,
            connect_attempts: c.connect_attempts,
            repaired_updates: n.repaired,
            last_repair: n.last_repair.clone(),
            connections: n
                .fsm
                .connections()
                .iter()
                .map(|c| format!("{} {:?} {}", c.id, c.direction, c.state))
                .collect(),
        })
    }

    /// Every path of `prefix`, or of every prefix (up to `limit`) when `None`.
    pub fn routes(&mut self, rib: &Rib, prefix: Option<IpNet>, limit: usize) -> Vec<PathEntry> {
        let prefixes = match prefix {
            Some(p) => vec![p],
            None => self.speaker.prefixes(),
        };
        let mut out = Vec::new();
        for p in prefixes {
            if out.len() >= limit {
                break;
            }
            for v in self.speaker.paths(rib, &p) {
                let a = &v.attrs;
                out.push(PathEntry {
                    prefix: p,
                    peer: v.peer,
                    best: v.best,
                    multipath: v.multipath,
                    reason: v.step.map(|s| s.to_string()),
                    next_hop: a.next_hop.addr,
                    igp_cost: v.igp_cost,
                    as_path: a.as_path.to_string(),
                    origin: a.origin.to_string(),
                    local_pref: a.local_pref,
                    med: a.med,
                    communities: a.communities.iter().map(ToString::to_string).collect(),
                    atomic_aggregate: a.atomic_aggregate,
                    aggregator: a.aggregator.map(|(asn, id)| format!("AS{asn} {id}")),
                });
            }
        }
        out
    }
}

/// One neighbour's session settings: its own, else `[bgp]`'s.
fn session_config(cfg: &BgpConfig, router_id: Ipv4Addr, n: &NeighborConfig) -> SessionConfig {
    let mut s = SessionConfig::new(cfg.local_as, n.remote_as, router_id);
    s.hold_time = n.hold_time.unwrap_or(cfg.hold_time);
    s.keepalive = n.keepalive.or(cfg.keepalive);
    s.connect_retry = Duration::from_secs(u64::from(n.connect_retry.unwrap_or(cfg.connect_retry)));
    s.passive = n.passive;
    let mut families = n.families.clone();
    families.sort();
    s.families = families;
    s
}

/// The codec's NOTIFICATION as the state machine's.
fn to_fsm(n: &message::Notification) -> fsm::Notification {
    fsm::Notification::new(n.code, n.subcode, n.data.clone())
}

/// The codec's OPEN as the state machine checks it.
fn peer_open(o: &Open) -> fsm::PeerOpen {
    let any_mp = o.capabilities.iter().any(|c| {
        matches!(c, Capability::Multiprotocol(_)) || matches!(c, Capability::Unknown { code: 1, .. })
    });
    fsm::PeerOpen {
        version: o.version,
        my_as: o.my_as,
        as4: o.four_octet_as(),
        hold_time: o.hold_time,
        bgp_id: o.bgp_id,
        families: any_mp.then(|| o.families()),
        route_refresh: o.supports_route_refresh(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::rib::{Interface, Protocol, RouteFilter};

    /// One router: its configuration, RIB and BGP service.
    struct Router {
        rib: Rib,
        svc: BgpService,
    }

    fn router(text: &str, now: Instant) -> Router {
        let cfg = config::parse(text, "test").unwrap();
        let mut rib = Rib::new();
        let iface = &cfg.interfaces[0];
        rib.set_interface(
            0,
            Interface {
                name: iface.name.clone(),
                ifindex: 5,
                up: true,
                mtu: 1500,
                mac: [2, 0, 0, 0, 0, 5],
                addresses: iface.addresses.clone(),
            },
        )
        .unwrap();
        rib.drain(1, &mut Vec::new());
        let filters = policy_filters(&cfg.bgp).unwrap();
        let svc = BgpService::new(&cfg.bgp, &cfg.interfaces, &filters, &mut rib, now, 1).unwrap();
        Router { rib, svc }
    }

    const X: &str = r#"
[[interface]]
name = "eth0"
address = ["192.0.2.1/24"]
[bgp]
enabled = true
local-as = 64500
hold-time = 9
network = ["198.51.100.0/24"]
[[bgp.neighbor]]
address = "192.0.2.2"
remote-as = 64501
import = "all"
export = "all"
"#;

    const Y: &str = r#"
[[interface]]
name = "eth0"
address = ["192.0.2.2/24"]
[bgp]
enabled = true
local-as = 64501
hold-time = 30
network = ["203.0.113.0/24"]
[[bgp.neighbor]]
address = "192.0.2.1"
remote-as = 64500
passive = true
import = "all"
export = "all"
"#;

    /// X connects to Y (passive); `link` maps X's connection to Y's.
    struct Pair {
        x: Router,
        y: Router,
        link: Option<(ConnKey, ConnKey)>,
        /// NOTIFICATIONs seen on the wire, (from X?, code, subcode).
        notes: Vec<(bool, u8, u8)>,
    }

    impl Pair {
        fn new(now: Instant) -> Self {
            let mut p = Self {
                x: router(X, now),
                y: router(Y, now),
                link: None,
                notes: Vec::new(),
            };
            p.pump(now);
            p
        }

        /// A pair whose session has come up, and the instant it started from.
        fn established() -> (Instant, Self) {
            let t0 = Instant::now();
            let mut p = Self::new(t0);
            p.tick(t0);
            (t0, p)
        }

        /// Carries out both sides' I/O until nothing is left.
        fn pump(&mut self, now: Instant) {
            for _ in 0..1000 {
                let xio = self.x.svc.take_io();
                let yio = self.y.svc.take_io();
                if xio.is_empty() && yio.is_empty() {
                    return;
                }
                for io in xio {
                    match io {
                        Io::Connect { conn, remote, .. } => {
                            assert_eq!(remote, "192.0.2.2:179".parse().unwrap());
                            let local: SocketAddr = "192.0.2.1:40000".parse().unwrap();
                            let y = self.y.svc.accept(now, local, remote).expect("Y accepts X");
                            self.link = Some((conn, y));
                            self.x.svc.connected(now, conn, local);
                        }
                        Io::Send { conn, bytes } => {
                            let Some((xc, yc)) = self.link else { continue };
                            if xc == conn {
                                self.deliver(now, true, yc, &bytes);
                            }
                        }
                        Io::Close { conn } => {
                            if let Some((_, yc)) = self.link.filter(|(xc, _)| *xc == conn) {
                                self.link = None;
                                self.y.svc.closed(now, &mut self.y.rib, yc, None);
                            }
                        }
                    }
                }
                for io in yio {
                    match io {
                        Io::Connect { .. } => panic!("Y is passive"),
                        Io::Send { conn, bytes } => {
                            let Some((xc, yc)) = self.link else { continue };
                            if yc == conn {
                                self.deliver(now, false, xc, &bytes);
                            }
                        }
                        Io::Close { conn } => {
                            if let Some((xc, _)) = self.link.filter(|(_, yc)| *yc == conn) {
                                self.link = None;
                                self.x.svc.closed(now, &mut self.x.rib, xc, None);
                            }
                        }
                    }
                }
            }
            panic!("the two services never went quiet");
        }

        /// Splits `bytes` from one side into messages for the other.
        fn deliver(&mut self, now: Instant, from_x: bool, to: ConnKey, bytes: &[u8]) {
            let mut at = 0;
            while at < bytes.len() {
                let len = message::frame_len(&bytes[at..]).unwrap().unwrap();
                let msg = &bytes[at..at + len];
                if msg[18] == 3 {
                    self.notes.push((from_x, msg[19], msg[20]));
                }
                let dst = if from_x { &mut self.y } else { &mut self.x };
                dst.svc.message(now, &mut dst.rib, to, msg);
                at += len;
            }
        }

        fn tick(&mut self, now: Instant) {
            self.x.svc.tick(now, &mut self.x.rib);
            self.y.svc.tick(now, &mut self.y.rib);
            self.pump(now);
        }
    }

    fn bgp_route(rib: &mut Rib, prefix: &str) -> Option<Protocol> {
        rib.drain(2, &mut Vec::new());
        rib.routes(&RouteFilter {
            prefix: Some(prefix.parse().unwrap()),
            selected_only: true,
            ..RouteFilter::default()
        })
        .into_iter()
        .map(|v| v.protocol)
        .find(|p| matches!(p, Protocol::Ebgp | Protocol::Ibgp))
    }

    fn state(r: &Router) -> String {
        r.svc.summary(Instant::now()).neighbors[0].state.clone()
    }

    #[test]
    fn two_services_establish_and_exchange_routes() {
        let t0 = Instant::now();
        let mut p = Pair::new(t0);
        assert_eq!(
            (state(&p.x), state(&p.y)),
            ("Established".into(), "Established".into())
        );
        // Hold time: the smaller offer.
        let d = p.x.svc.neighbor("192.0.2.2".parse().unwrap(), t0).unwrap();
        assert_eq!(
            (d.hold_time, d.keepalive, d.four_octet_as),
            (Some(9), Some(3), Some(true))
        );
        p.tick(t0);
        assert_eq!(bgp_route(&mut p.x.rib, "203.0.113.0/24"), Some(Protocol::Ebgp));
        assert_eq!(bgp_route(&mut p.y.rib, "198.51.100.0/24"), Some(Protocol::Ebgp));
        let paths =
            p.y.svc
                .routes(&p.y.rib, Some("198.51.100.0/24".parse().unwrap()), 10);
        assert_eq!(paths.len(), 1);
        assert_eq!(
            (paths[0].as_path.as_str(), paths[0].next_hop),
            ("64500", "192.0.2.1".parse().unwrap())
        );
        let s = p.x.svc.summary(t0);
        assert_eq!((s.neighbors[0].received, s.neighbors[0].advertised), (1, 1));
        // Keepalives keep the session up well past the hold time.
        for k in 1..=10u64 {
            p.tick(t0 + Duration::from_secs(3 * k));
        }
        assert_eq!(state(&p.x), "Established");
        assert!(p.notes.is_empty(), "{:?}", p.notes);
    }

    #[test]
    fn a_peers_end_of_rib_asks_for_one_commit() {
        let (t0, mut p) = Pair::established();
        // Routes alone do not.
        assert!(bgp_route(&mut p.x.rib, "203.0.113.0/24").is_some());
        assert!(!p.x.svc.take_commit());
        let (xc, _) = p.link.expect("connected");
        for family in [
            crate::bgp::types::Family::Ipv4Unicast,
            crate::bgp::types::Family::Ipv6Unicast,
        ] {
            let mut eor = Vec::new();
            message::encode_end_of_rib(family, &mut eor);
            p.deliver(t0, false, xc, &eor);
            assert!(p.x.svc.take_commit(), "{family}");
            assert!(!p.x.svc.take_commit(), "{family}: taken once");
        }
        // The marker changed nothing else: the session and the route stay.
        assert_eq!(state(&p.x), "Established");
        assert!(bgp_route(&mut p.x.rib, "203.0.113.0/24").is_some());
        assert!(p.notes.is_empty(), "{:?}", p.notes);
    }

    #[test]
    fn reset_tells_the_peer_which_flushes_the_routes() {
        let (t0, mut p) = Pair::established();
        assert!(bgp_route(&mut p.y.rib, "198.51.100.0/24").is_some());
        p.x.svc
            .reset(t0, &mut p.x.rib, "192.0.2.2".parse().unwrap())
            .unwrap();
        p.pump(t0);
        assert!(
            p.notes.contains(&(true, 6, 4)),
            "Cease / administrative reset: {:?}",
            p.notes
        );
        assert_eq!(bgp_route(&mut p.y.rib, "198.51.100.0/24"), None);
        assert_eq!(bgp_route(&mut p.x.rib, "203.0.113.0/24"), None);
        // X comes back on its own.
        for k in 1..=20u64 {
            p.tick(t0 + Duration::from_secs(k));
        }
        assert_eq!(state(&p.x), "Established");
        assert!(bgp_route(&mut p.y.rib, "198.51.100.0/24").is_some());
        assert!(p
            .x
            .svc
            .reset(t0, &mut p.x.rib, "192.0.2.9".parse().unwrap())
            .is_err());
    }

    #[test]
    fn a_policy_change_applies_without_touching_the_session() {
        let (t0, mut p) = Pair::established();
        assert!(bgp_route(&mut p.y.rib, "198.51.100.0/24").is_some());
        let strict = Y.replace("import = \"all\"", "import = \"no-x\"")
            + "[[bgp.prefix-list]]\nname = \"x\"\nentry = [{ prefix = \"198.51.100.0/24\" }]\n\
               [[bgp.policy]]\nname = \"no-x\"\ndefault = \"accept\"\n\
               term = [{ name = \"t\", match = { prefix-list = \"x\" }, then = { action = \"reject\" } }]\n";
        let new = config::parse(&strict, "test").unwrap().bgp;
        assert!(p.y.svc.policy_only_change(&new));
        let filters = policy_filters(&new).unwrap();
        p.y.svc
            .reconfigure_policies(&new, &filters, &mut p.y.rib)
            .unwrap();
        p.pump(t0);
        assert_eq!(bgp_route(&mut p.y.rib, "198.51.100.0/24"), None);
        let d = p.y.svc.neighbor("192.0.2.1".parse().unwrap(), t0).unwrap();
        assert_eq!((d.summary.received, d.summary.accepted), (1, 0));
        assert_eq!(d.established_transitions, 1);
        assert!(p.notes.is_empty(), "{:?}", p.notes);
        // And back.
        let open = config::parse(Y, "test").unwrap().bgp;
        p.y.svc
            .reconfigure_policies(&open, &policy_filters(&open).unwrap(), &mut p.y.rib)
            .unwrap();
        assert!(bgp_route(&mut p.y.rib, "198.51.100.0/24").is_some());
        // Anything else is not a policy change.
        let other = config::parse(&Y.replace("hold-time = 30", "hold-time = 60"), "test")
            .unwrap()
            .bgp;
        assert!(!p.y.svc.policy_only_change(&other));
        assert!(p
            .y
            .svc
            .reconfigure_policies(&other, &policy_filters(&other).unwrap(), &mut p.y.rib)
            .is_err());
    }

    #[test]
    fn silence_expires_the_hold_timer() {
        let (t0, mut p) = Pair::established();
        // Y goes quiet: only X's timers run.
        let t = t0 + Duration::from_secs(10);
        p.x.svc.tick(t, &mut p.x.rib);
        let io = p.x.svc.take_io();
        assert!(
            io.iter()
                .any(|i| matches!(i, Io::Send { bytes, .. } if bytes.get(18) == Some(&3) && bytes[19] == 4)),
            "{io:?}"
        );
        assert!(io.iter().any(|i| matches!(i, Io::Close { .. })));
        assert_eq!(bgp_route(&mut p.x.rib, "203.0.113.0/24"), None);
        assert!(p.x.svc.summary(t).neighbors[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("hold timer"));
    }

    #[test]
    fn a_malformed_update_resets_only_when_it_must() {
        let (t0, mut p) = Pair::established();
        let (xc, _) = p.link.unwrap();
        // ORIGIN with value 7: treat-as-withdraw (RFC 7606 7.1). The session stays up.
        let bad_origin: Vec<u8> = [
            &[0xff; 16][..],
            &[0, 0, 2], // length patched below, type UPDATE
            &[0, 0],    // no withdrawn routes
            &[0, 20],   // path attributes length
            &[0x40, 1, 1, 7],
            &[0x40, 2, 6, 2, 1, 0, 0, 0xfb, 0xf5], // AS_SEQUENCE [64501]
            &[0x40, 3, 4, 192, 0, 2, 2],
            &[24, 203, 0, 113],
        ]
        .concat();
        let mut msg = bad_origin.clone();
        let len = msg.len() as u16;
        msg[16..18].copy_from_slice(&len.to_be_bytes());
        msg[18] = 2;
        p.x.svc.message(t0, &mut p.x.rib, xc, &msg);
        assert_eq!(state(&p.x), "Established");
        assert_eq!(
            bgp_route(&mut p.x.rib, "203.0.113.0/24"),
            None,
            "treated as a withdrawal"
        );
        let d = p.x.svc.neighbor("192.0.2.2".parse().unwrap(), t0).unwrap();
        assert_eq!(d.repaired_updates, 1);
        // A message that is not an UPDATE at all: bad type. The session resets.
        let mut junk = msg.clone();
        junk[18] = 9;
        p.x.svc.message(t0, &mut p.x.rib, xc, &junk);
        let io = p.x.svc.take_io();
        assert!(io.iter().any(|i| matches!(i, Io::Close { .. })), "{io:?}");
        assert_ne!(state(&p.x), "Established");
    }
}
