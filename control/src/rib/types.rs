//! The RIB's public vocabulary: what protocols hand in (routes, interfaces) and what the
//! management side reads back (views, statistics).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use ipnet::IpNet;
use xroute_common::delta::AdjacencyAction;

/// Where a route comes from; the order of the variants is the last tie-break between equally
/// good candidates, so that selection never depends on insertion order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Protocol {
    /// The subnet of an interface address (derived from interfaces, not upserted).
    Connected = 0,
    /// The router's own addresses (derived from interfaces, not upserted).
    Local = 1,
    Static = 2,
    Rip = 3,
    Ospf = 4,
    Ebgp = 5,
    Ibgp = 6,
}

impl Protocol {
    /// Every protocol, in tie-break order (also the index into per-protocol counters).
    pub const ALL: [Protocol; 7] = [
        Self::Connected,
        Self::Local,
        Self::Static,
        Self::Rip,
        Self::Ospf,
        Self::Ebgp,
        Self::Ibgp,
    ];

    /// The administrative distance a route of this protocol gets unless configured otherwise
    /// (the values Cisco and FRR use, so that operators find what they expect).
    pub fn default_distance(self) -> u8 {
        match self {
            Self::Connected | Self::Local => 0,
            Self::Static => 1,
            Self::Ebgp => 20,
            Self::Ospf => 110,
            Self::Rip => 120,
            Self::Ibgp => 200,
        }
    }

    /// The name used in configuration, `xroutectl` output and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::Local => "local",
            Self::Static => "static",
            Self::Rip => "rip",
            Self::Ospf => "ospf",
            Self::Ebgp => "ebgp",
            Self::Ibgp => "ibgp",
        }
    }

    /// Connected and local routes follow the interfaces; nobody else may add or remove them.
    pub fn is_derived(self) -> bool {
        matches!(self, Self::Connected | Self::Local)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A protocol name that is none of ours.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol {0:?}")]
pub struct ParseProtocolError(pub String);

impl FromStr for Protocol {
    type Err = ParseProtocolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| ParseProtocolError(s.to_owned()))
    }
}

/// One next hop as a protocol or the configuration states it.
///
/// `via` + `port`: a gateway on that port (on-link). `via` only: a recursive next hop, resolved
/// through the RIB's selected routes. `port` only: an interface route, the destination itself is
/// on-link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NextHopSpec {
    pub via: Option<IpAddr>,
    pub port: Option<u16>,
    /// Relative share of flows (ECMP/UCMP), at least 1.
    pub weight: u32,
}

/// What a route does with matching packets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Forward through one or more next hops (ECMP when several). Shared, because a protocol
    /// hands the RIB a million routes over a handful of next-hop sets: cloning a route must not
    /// allocate.
    NextHops(Arc<[NextHopSpec]>),
    /// Discard silently (e.g. a null route for an aggregate).
    Blackhole,
    /// Discard and answer ICMP destination unreachable.
    Unreachable,
}

impl Target {
    /// Forward through these next hops.
    pub fn hops(hops: Vec<NextHopSpec>) -> Self {
        Self::NextHops(hops.into())
    }
}

/// A candidate route for one prefix, as a protocol submits it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub protocol: Protocol,
    /// Tells apart several routes of one protocol for one prefix (floating statics, BGP paths).
    pub id: u32,
    /// Administrative distance: lower wins across protocols.
    pub distance: u8,
    /// The protocol's own preference: lower wins between equal distances.
    pub metric: u32,
    pub target: Target,
}

/// An interface the router forwards on, as the control process learns it from the system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub ifindex: u32,
    pub up: bool,
    pub mtu: u32,
    pub mac: [u8; 6],
    /// Host address with prefix length, e.g. 192.0.2.1/24: gives a connected route for the
    /// subnet and a local route for the address.
    pub addresses: Vec<IpNet>,
}

/// One resolved next hop of a route: what the engine forwards to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedHop {
    /// The neighbour; `None` when the destination itself is on-link.
    pub via: Option<IpAddr>,
    pub port: u16,
    /// The port's interface name (empty if the interface is gone).
    pub interface: String,
    pub weight: u32,
    /// The adjacency id in the engine; `None` only for a candidate that is not installed and
    /// whose adjacency no installed route uses.
    pub adjacency: Option<u32>,
}

/// A candidate route with its selection and resolution state, for display and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteView {
    pub prefix: IpNet,
    pub protocol: Protocol,
    pub id: u32,
    pub distance: u8,
    pub metric: u32,
    /// Best usable candidate of its prefix.
    pub selected: bool,
    /// Forwarding next hops; empty when unresolved or when the action discards.
    pub resolved: Vec<ResolvedHop>,
    /// What the route does; `None` when it is unresolved (not usable).
    pub action: Option<AdjacencyAction>,
    /// Sequence number of the delta record that programmed the prefix's current FIB state
    /// (selected and installed routes only).
    pub fib_seq: Option<u64>,
    /// The next-hop group the FIB points the prefix to (selected and installed routes only).
    pub group: Option<u32>,
}

/// Which candidates [`crate::rib::Rib::routes`] returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteFilter {
    /// Only this prefix (or, with `longer`, every prefix it contains, itself included).
    pub prefix: Option<IpNet>,
    pub longer: bool,
    pub protocol: Option<Protocol>,
    /// Only the selected candidate of each prefix.
    pub selected_only: bool,
}

/// Counters for `xroutectl` and monitoring.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RibStats {
    /// Candidates per protocol, indexed like [`Protocol::ALL`].
    pub per_protocol: [usize; 7],
    /// All candidates.
    pub candidates: usize,
    pub selected_v4: usize,
    pub selected_v6: usize,
    /// Next-hop groups in use.
    pub groups: usize,
    /// Adjacencies in use.
    pub adjacencies: usize,
    /// Prefixes that have candidates but none usable (no next hop resolves).
    pub unresolved: usize,
    /// Selected routes left out of the FIB because no group or adjacency id was free.
    pub unprogrammed: usize,
    /// Gateways tracked for recursive resolution.
    pub gateways: usize,
}

/// Why the RIB refused a change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RibError {
    #[error("prefix {0} has host bits set")]
    HostBits(IpNet),
    #[error("{0} routes follow the interfaces and cannot be changed directly")]
    Derived(Protocol),
    #[error("route has no next hop")]
    NoNextHops,
    #[error("route has {0} next hops, at most 64 are supported")]
    TooManyNextHops(usize),
    #[error("next hop weight must be at least 1")]
    ZeroWeight,
    #[error("next hop has neither a gateway nor a port")]
    EmptyNextHop,
    #[error("unknown port {0}")]
    UnknownPort(u16),
    #[error("interface name {0:?} is longer than 16 bytes or contains NUL")]
    InterfaceName(String),
}
