//! The management protocol between `xroutectl` and `xroute-control`: one JSON request per line,
//! one JSON reply per line, on `<run-dir>/<instance>/control.sock` (mode 0600). Scripts may
//! speak it directly; `xroutectl --json` prints the `data` of the replies.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use xroute_common::query::LookupResult;

/// A request to the control daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// Add or replace a runtime static route (`ip route` syntax, see `routetext`).
    RouteAdd {
        route: String,
    },
    /// Delete runtime static routes for a prefix (one distance, or all).
    RouteDel {
        prefix: String,
        distance: Option<u8>,
    },
    /// Routes, filtered.
    RouteShow {
        prefix: Option<String>,
        /// With `prefix`: also every more specific route inside it.
        #[serde(default)]
        longer: bool,
        protocol: Option<String>,
        /// Also the candidates that lost best-path selection or do not resolve.
        #[serde(default)]
        all: bool,
        /// Continue after this prefix (the `next` of the previous page).
        #[serde(default)]
        after: Option<String>,
        /// Prefixes per page (default and maximum [`ROUTE_PAGE`]).
        #[serde(default)]
        limit: Option<u32>,
    },
    /// Many runtime static routes at once; `lines` are route lines as in `route add`.
    RouteImport {
        lines: Vec<String>,
    },
    /// The engine's answer for each address, beside the RIB's.
    FibLookup {
        addrs: Vec<IpAddr>,
    },
    FibStats,
    Interfaces,
    Neighbors,
    Counters,
    /// Re-read the configuration file; a bad file leaves the running configuration alone.
    ConfigReload,
    /// BGP: the speaker and one line per neighbour.
    BgpSummary,
    /// BGP: one neighbour in detail.
    BgpNeighbor {
        address: IpAddr,
    },
    /// BGP: every path of a prefix (or of every prefix, up to `limit`), the best first.
    BgpRoutes {
        prefix: Option<String>,
        #[serde(default)]
        limit: Option<u32>,
    },
    /// BGP: close the session with a neighbour (Cease, administrative reset) and start again.
    BgpReset {
        address: IpAddr,
    },
}

/// Prefixes per `route show` page: a full table is listed in about a hundred requests, never
/// built as one reply.
pub const ROUTE_PAGE: u32 = 10_000;

/// A reply: `ok` with `data`, or an `error` line for the user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Reply {
    pub fn ok(data: impl Serialize) -> Self {
        Self {
            ok: true,
            error: None,
            data: serde_json::to_value(data).unwrap_or(serde_json::Value::Null),
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: Some(message.into()),
            data: serde_json::Value::Null,
        }
    }
}

/// A next hop as shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HopView {
    pub via: Option<IpAddr>,
    pub dev: Option<String>,
    pub weight: u32,
}

/// One route (candidate) as shown by `route show`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteEntry {
    pub prefix: String,
    pub protocol: String,
    pub distance: u8,
    pub metric: u32,
    /// unicast, blackhole, unreachable or local.
    #[serde(rename = "type")]
    pub kind: String,
    /// Resolved next hops (empty when unresolved or not unicast).
    pub nexthops: Vec<HopView>,
    /// Won best-path selection.
    pub selected: bool,
    /// offload (the engine has applied it), pending (queued or not yet applied), or
    /// inactive (not selected).
    pub fib: String,
    /// The delta sequence number that programmed it.
    pub fib_seq: Option<u64>,
    /// Where it came from: "config" or "runtime" for static routes.
    pub origin: Option<String>,
}

/// One page of `route show`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutePage {
    pub routes: Vec<RouteEntry>,
    /// Ask again with `after` set to this for the next page; `None` at the end.
    pub next: Option<String>,
}

/// `route add|del|import` results.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeResult {
    pub added: u64,
    pub replaced: u64,
    pub removed: u64,
}

/// `fib lookup`: the engine's answer and the RIB's for each address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FibLookupEntry {
    pub engine: LookupResult,
    /// The route the RIB has selected for this address, if any.
    pub rib_prefix: Option<String>,
    pub agrees: bool,
}

/// `fib stats`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FibStats {
    pub engine_attached: bool,
    pub engine_pid: u64,
    pub engine_state: String,
    pub routes_v4: u64,
    pub routes_v6: u64,
    pub memory_bytes: u64,
    pub groups: u64,
    pub adjacencies: u64,
    /// Sequence number of the last delta the engine applied.
    pub applied_seq: u64,
    /// Sequence number of the last delta written to the channel.
    pub produced_seq: u64,
    /// Deltas computed but waiting for room in the ring.
    pub queued: u64,
    pub rejected: u64,
    pub resyncs_done: u64,
    pub resyncs_sent: u64,
    pub last_resync_swept: u64,
    pub rib_routes_v4: u64,
    pub rib_routes_v6: u64,
    pub rib_candidates: u64,
    pub rib_unresolved: u64,
    pub channel: String,
    pub ring_capacity: u64,
}

/// `interfaces`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceEntry {
    pub port: u16,
    pub name: String,
    pub ifindex: u32,
    /// up, down or absent (no such interface in this network namespace).
    pub state: String,
    pub mtu: u32,
    pub mac: String,
    pub addresses: Vec<String>,
}

/// `neighbors`: the neighbours the engine resolved (gateways and directly connected hosts it
/// forwarded to) and the gateways it still waits for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighborEntry {
    pub address: IpAddr,
    pub dev: Option<String>,
    pub port: u16,
    pub mac: Option<String>,
    /// reachable (MAC known) or incomplete (a gateway not resolved yet).
    pub state: String,
    /// The FIB adjacency of a gateway; none for a connected host.
    pub adjacency: Option<u32>,
}

/// `counters`, one port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortCountersEntry {
    pub port: u16,
    pub name: String,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub to_kernel: u64,
    /// Every drop reason with its count, in layout order.
    pub drops: Vec<(String, u64)>,
}

/// `counters`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountersReport {
    pub ports: Vec<PortCountersEntry>,
    /// Channel counters: deltas produced, applied, rejected.
    pub deltas_produced: u64,
    pub deltas_applied: u64,
    pub deltas_rejected: u64,
}

/// `config reload`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadResult {
    pub file: String,
    pub interfaces: usize,
    pub static_routes: usize,
    pub routes_added: u64,
    pub routes_removed: u64,
}
