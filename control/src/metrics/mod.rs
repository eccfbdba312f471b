//! The Prometheus endpoint of the control process: `GET /metrics` in the text exposition format
//! (version 0.0.4), on `[metrics] listen` (loopback by default).
//!
//! Two halves, kept apart so that each can be tested alone:
//!
//! - this module turns a [`Snapshot`] (plain numbers, copied out of the daemon's state under its
//!   lock in a few microseconds) into exposition text with [`render`]: pure, no I/O, no lock;
//! - [`http`] is a deliberately small HTTP/1.1 server on the daemon's tokio runtime: one request
//!   per connection, a bounded request head, a deadline for reading it, a bounded number of
//!   connections, and the listener moved on configuration reload.
//!
//! Everything a scrape reports is already in the control process: the engine's counters and FIB
//! figures live in the shared-memory channel (stats segment and header), which the engine keeps
//! current; the RIB and BGP are the daemon's own. A scrape therefore never waits for the engine,
//! and works (reporting `xroute_engine_up 0`) while the engine is down.
//!
//! Naming follows Prometheus practice: an `xroute_` prefix, counters end in `_total`, units in
//! the name (`_bytes`, `_seconds`), one `# HELP` and one `# TYPE` line per family, every sample of
//! a family together, and known label values always present (all drop reasons, all engine and
//! BGP session states with 0 or 1) so that `rate()` and alerts see a series before it moves.

pub mod http;

use std::fmt::Write;
use std::net::IpAddr;

use xroute_common::shm::EngineState;
use xroute_common::stats::{DropReason, PortCounters};

/// Everything one scrape reports, copied out of the daemon's state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// The configured ports, in port order.
    pub ports: Vec<PortSample>,
    /// The workers' stats slots: each has one [`PortCounters`] per entry of `ports`, same
    /// order (their `to_kernel` is not shown per worker: see [`PortSample::to_kernel`]).
    pub slots: Vec<SlotSample>,
    pub engine: EngineSample,
    pub deltas: DeltaSample,
    pub rib: RibSample,
    /// `None` when BGP is not enabled.
    pub bgp: Option<BgpSample>,
}

/// A configured port as the control process sees it in the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortSample {
    pub name: String,
    /// Present and operationally up.
    pub up: bool,
    /// Packets the port's XDP program passed to the kernel. The engine's slow path copies the
    /// XDP program's counter into a stats slot of its own, so this is per port, not per worker.
    pub to_kernel: u64,
}

/// One stats slot of the engine: a forwarding worker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotSample {
    /// The `worker` label: the worker's index (the order of the engine's `--cores`; worker 0
    /// runs on the first core listed).
    pub worker: String,
    /// Indexed like [`Snapshot::ports`].
    pub ports: Vec<PortCounters>,
}

/// The engine and its FIB, from the channel header.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineSample {
    /// An engine process holds the channel's engine lock.
    pub attached: bool,
    /// Attached and its FIB writer beat recently.
    pub up: bool,
    pub state: EngineState,
    /// Seconds since the engine's last heartbeat; `None` when no engine is attached.
    pub heartbeat_age_seconds: Option<f64>,
    pub fib_routes_v4: u64,
    pub fib_routes_v6: u64,
    pub fib_memory_bytes: u64,
    pub fib_groups: u64,
    pub fib_adjacencies: u64,
    pub resyncs_done: u64,
}

impl Default for EngineSample {
    fn default() -> Self {
        Self {
            attached: false,
            up: false,
            state: EngineState::None,
            heartbeat_age_seconds: None,
            fib_routes_v4: 0,
            fib_routes_v6: 0,
            fib_memory_bytes: 0,
            fib_groups: 0,
            fib_adjacencies: 0,
            resyncs_done: 0,
        }
    }
}

/// The delta channel between the control process and the engine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeltaSample {
    /// Sequence number of the last delta written to the ring.
    pub produced_seq: u64,
    /// Sequence number of the last delta the engine applied.
    pub applied_seq: u64,
    /// Deltas computed but waiting for room in the ring.
    pub queued: u64,
    pub rejected: u64,
    pub resyncs_sent: u64,
    pub ring_capacity: u64,
}

/// The RIB.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RibSample {
    pub selected_v4: u64,
    pub selected_v6: u64,
    /// Candidate routes per protocol, every protocol listed.
    pub candidates: Vec<(&'static str, u64)>,
    pub unresolved: u64,
}

/// The BGP speaker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BgpSample {
    pub local_as: u32,
    /// Prefixes in the speaker's Loc-RIB.
    pub prefixes: u64,
    pub neighbors: Vec<NeighborSample>,
}

/// RFC 4271 session states, as label values, in the order a session progresses.
pub const BGP_STATES: [&str; 6] = [
    "idle",
    "connect",
    "active",
    "opensent",
    "openconfirm",
    "established",
];

/// One configured BGP neighbour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighborSample {
    pub address: IpAddr,
    pub remote_as: u32,
    /// One of [`BGP_STATES`].
    pub state: &'static str,
    /// `shutdown = true` in the configuration.
    pub admin_shutdown: bool,
    /// Seconds in the current state.
    pub state_seconds: Option<u64>,
    pub received: u64,
    pub accepted: u64,
    pub advertised: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub updates_in: u64,
    pub updates_out: u64,
    pub notifications_in: u64,
    pub notifications_out: u64,
    pub established_transitions: u64,
    pub connect_attempts: u64,
}

/// What `# TYPE` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

/// A sample value: integers are written exactly (a byte counter passes 2^53 long before it
/// wraps), fractions as decimals.
#[derive(Clone, Copy, Debug)]
enum Value {
    Int(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(u64::from(v))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

/// Exposition text under construction.
struct Exposition {
    out: String,
}

/// One metric family being written: its samples follow its `# HELP` and `# TYPE` lines.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl Exposition {
    /// Starts a family. Each name is started once per scrape (the tests parse the text back to
    /// check it).
    fn family(&mut self, name: &'static str, kind: Kind, help: &str) -> Family<'_> {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        Family {
            out: &mut self.out,
            name,
        }
    }
}

impl Family<'_> {
    fn sample(&mut self, labels: &[(&str, &str)], value: impl Into<Value>) {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = match value.into() {
            Value::Int(v) => writeln!(self.out, " {v}"),
            Value::Float(v) if v.is_finite() => writeln!(self.out, " {v}"),
            Value::Float(v) if v.is_nan() => writeln!(self.out, " NaN"),
            Value::Float(v) if v > 0.0 => writeln!(self.out, " +Inf"),
            Value::Float(_) => writeln!(self.out, " -Inf"),
        };
    }
}

/// A label value: backslash, double quote and line feed escaped, as the format requires.
fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// `# HELP` text: backslash and line feed escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// The per-port, per-worker counter families: name, help, and which counter.
type PortCounter = (&'static str, &'static str, fn(&PortCounters) -> u64);
const PORT_COUNTERS: [PortCounter; 4] = [
    (
        "xroute_port_rx_packets_total",
        "Packets the engine received on the port (AF_XDP), by worker.",
        |c| c.rx_packets,
    ),
    (
        "xroute_port_rx_bytes_total",
        "Bytes the engine received on the port (AF_XDP), by worker.",
        |c| c.rx_bytes,
    ),
    (
        "xroute_port_tx_packets_total",
        "Packets the engine sent out of the port, by worker.",
        |c| c.tx_packets,
    ),
    (
        "xroute_port_tx_bytes_total",
        "Bytes the engine sent out of the port, by worker.",
        |c| c.tx_bytes,
    ),
];

/// The exposition text of one scrape.
pub fn render(s: &Snapshot) -> String {
    let mut x = Exposition {
        out: String::with_capacity(16 * 1024),
    };
    render_info(&mut x);
    render_ports(&mut x, s);
    render_engine(&mut x, &s.engine);
    render_deltas(&mut x, &s.deltas);
    render_rib(&mut x, &s.rib);
    render_bgp(&mut x, s.bgp.as_ref());
    x.out
}

fn render_info(x: &mut Exposition) {
    x.family(
        "xroute_build_info",
        Kind::Gauge,
        "Always 1; the version of xroute-control in a label.",
    )
    .sample(&[("version", env!("CARGO_PKG_VERSION"))], 1u64);
}

fn render_ports(x: &mut Exposition, s: &Snapshot) {
    let mut f = x.family(
        "xroute_port_up",
        Kind::Gauge,
        "1 if the configured port exists and is operationally up in the kernel, else 0.",
    );
    for p in &s.ports {
        f.sample(&[("port", &p.name)], p.up);
    }
    let mut f = x.family(
        "xroute_port_to_kernel_packets_total",
        Kind::Counter,
        "Packets the port's XDP program passed to the kernel (the router's own traffic, ARP, ND).",
    );
    for p in &s.ports {
        f.sample(&[("port", &p.name)], p.to_kernel);
    }
    for (name, help, get) in PORT_COUNTERS {
        let mut f = x.family(name, Kind::Counter, help);
        for slot in &s.slots {
            for (port, c) in s.ports.iter().zip(&slot.ports) {
                f.sample(&[("port", &port.name), ("worker", &slot.worker)], get(c));
            }
        }
    }
    let mut f = x.family(
        "xroute_port_drops_total",
        Kind::Counter,
        "Packets the engine dropped, by ingress port, worker and reason (every reason listed).",
    );
    for slot in &s.slots {
        for (port, c) in s.ports.iter().zip(&slot.ports) {
            for r in DropReason::ALL {
                let n = c.drops.get(r as usize).copied().unwrap_or(0);
                f.sample(
                    &[
                        ("port", &port.name),
                        ("worker", &slot.worker),
                        ("reason", r.name()),
                    ],
                    n,
                );
            }
        }
    }
}

/// Every engine state, in their numbering order.
const ENGINE_STATES: [EngineState; 4] = [
    EngineState::None,
    EngineState::AwaitingResync,
    EngineState::InSync,
    EngineState::Resyncing,
];

fn render_engine(x: &mut Exposition, e: &EngineSample) {
    x.family(
        "xroute_engine_up",
        Kind::Gauge,
        "1 if an engine is attached to the channel and its FIB writer beat within the last 5 seconds.",
    )
    .sample(&[], e.up);
    x.family(
        "xroute_engine_attached",
        Kind::Gauge,
        "1 if an engine process holds the channel's engine lock.",
    )
    .sample(&[], e.attached);
    let mut f = x.family(
        "xroute_engine_state",
        Kind::Gauge,
        "The engine's FIB state: 1 for the current state, 0 for the others (in-sync is the normal one).",
    );
    for st in ENGINE_STATES {
        f.sample(&[("state", st.name())], e.state == st);
    }
    if let Some(age) = e.heartbeat_age_seconds {
        x.family(
            "xroute_engine_heartbeat_age_seconds",
            Kind::Gauge,
            "Seconds since the engine's FIB writer last beat (every 100 ms when healthy).",
        )
        .sample(&[], age);
    }
    x.family(
        "xroute_engine_resyncs_total",
        Kind::Counter,
        "Full table replays the engine completed.",
    )
    .sample(&[], e.resyncs_done);
    let mut f = x.family(
        "xroute_fib_routes",
        Kind::Gauge,
        "Routes in the engine's FIB, by address family.",
    );
    f.sample(&[("family", "ipv4")], e.fib_routes_v4);
    f.sample(&[("family", "ipv6")], e.fib_routes_v6);
    x.family(
        "xroute_fib_memory_bytes",
        Kind::Gauge,
        "Memory of the engine's FIB: both tries and the next-hop tables.",
    )
    .sample(&[], e.fib_memory_bytes);
    x.family(
        "xroute_fib_nexthop_groups",
        Kind::Gauge,
        "Next-hop groups in the engine's FIB.",
    )
    .sample(&[], e.fib_groups);
    x.family(
        "xroute_fib_adjacencies",
        Kind::Gauge,
        "Adjacencies in the engine's FIB.",
    )
    .sample(&[], e.fib_adjacencies);
}

fn render_deltas(x: &mut Exposition, d: &DeltaSample) {
    x.family(
        "xroute_deltas_produced_total",
        Kind::Counter,
        "Sequence number of the last FIB delta the control process wrote to the channel.",
    )
    .sample(&[], d.produced_seq);
    x.family(
        "xroute_deltas_applied_total",
        Kind::Counter,
        "Sequence number of the last FIB delta the engine applied.",
    )
    .sample(&[], d.applied_seq);
    x.family(
        "xroute_deltas_rejected_total",
        Kind::Counter,
        "FIB deltas the engine refused (malformed or inconsistent).",
    )
    .sample(&[], d.rejected);
    x.family(
        "xroute_deltas_queued",
        Kind::Gauge,
        "FIB deltas computed but waiting for room in the channel's ring.",
    )
    .sample(&[], d.queued);
    x.family(
        "xroute_delta_resyncs_sent_total",
        Kind::Counter,
        "Full table replays this control process started.",
    )
    .sample(&[], d.resyncs_sent);
    x.family(
        "xroute_delta_ring_capacity",
        Kind::Gauge,
        "Records the channel's ring holds.",
    )
    .sample(&[], d.ring_capacity);
}

fn render_rib(x: &mut Exposition, r: &RibSample) {
    let mut f = x.family(
        "xroute_rib_routes",
        Kind::Gauge,
        "Prefixes with a selected route in the RIB, by address family.",
    );
    f.sample(&[("family", "ipv4")], r.selected_v4);
    f.sample(&[("family", "ipv6")], r.selected_v6);
    let mut f = x.family(
        "xroute_rib_candidates",
        Kind::Gauge,
        "Candidate routes in the RIB (selected or not), by protocol.",
    );
    for (protocol, n) in &r.candidates {
        f.sample(&[("protocol", protocol)], *n);
    }
    x.family(
        "xroute_rib_unresolved_prefixes",
        Kind::Gauge,
        "Prefixes whose candidates all have a next hop that does not resolve.",
    )
    .sample(&[], r.unresolved);
}

/// A per-neighbour BGP family: name, kind, help, and which value.
type NeighborValue = (&'static str, Kind, &'static str, fn(&NeighborSample) -> u64);
const NEIGHBOR_VALUES: [NeighborValue; 13] = [
    (
        "xroute_bgp_session_up",
        Kind::Gauge,
        "1 if the session is Established, else 0.",
        |n| u64::from(n.state == "established"),
    ),
    (
        "xroute_bgp_neighbor_admin_shutdown",
        Kind::Gauge,
        "1 if the neighbour is configured with shutdown = true.",
        |n| u64::from(n.admin_shutdown),
    ),
    (
        "xroute_bgp_prefixes_received",
        Kind::Gauge,
        "Prefixes the neighbour currently announces to us (before import policy).",
        |n| n.received,
    ),
    (
        "xroute_bgp_prefixes_accepted",
        Kind::Gauge,
        "Prefixes from the neighbour that passed import policy.",
        |n| n.accepted,
    ),
    (
        "xroute_bgp_prefixes_advertised",
        Kind::Gauge,
        "Prefixes we currently advertise to the neighbour.",
        |n| n.advertised,
    ),
    (
        "xroute_bgp_messages_received_total",
        Kind::Counter,
        "BGP messages received from the neighbour, all types.",
        |n| n.messages_in,
    ),
    (
        "xroute_bgp_messages_sent_total",
        Kind::Counter,
        "BGP messages sent to the neighbour, all types.",
        |n| n.messages_out,
    ),
    (
        "xroute_bgp_updates_received_total",
        Kind::Counter,
        "UPDATE messages received from the neighbour.",
        |n| n.updates_in,
    ),
    (
        "xroute_bgp_updates_sent_total",
        Kind::Counter,
        "UPDATE messages sent to the neighbour.",
        |n| n.updates_out,
    ),
    (
        "xroute_bgp_notifications_received_total",
        Kind::Counter,
        "NOTIFICATION messages received from the neighbour.",
        |n| n.notifications_in,
    ),
    (
        "xroute_bgp_notifications_sent_total",
        Kind::Counter,
        "NOTIFICATION messages sent to the neighbour.",
        |n| n.notifications_out,
    ),
    (
        "xroute_bgp_established_transitions_total",
        Kind::Counter,
        "Times the session entered Established (flaps are this minus one while up).",
        |n| n.established_transitions,
    ),
    (
        "xroute_bgp_connect_attempts_total",
        Kind::Counter,
        "Outbound TCP connections attempted to the neighbour.",
        |n| n.connect_attempts,
    ),
];

fn render_bgp(x: &mut Exposition, bgp: Option<&BgpSample>) {
    x.family(
        "xroute_bgp_enabled",
        Kind::Gauge,
        "1 if the BGP speaker runs ([bgp] enabled = true).",
    )
    .sample(&[], bgp.is_some());
    let Some(bgp) = bgp else { return };
    x.family(
        "xroute_bgp_loc_rib_prefixes",
        Kind::Gauge,
        "Prefixes in the BGP speaker's Loc-RIB (learnt and originated).",
    )
    .sample(&[], bgp.prefixes);
    let labels: Vec<(String, String)> = bgp
        .neighbors
        .iter()
        .map(|n| (n.address.to_string(), n.remote_as.to_string()))
        .collect();
    let mut f = x.family(
        "xroute_bgp_session_state",
        Kind::Gauge,
        "The session's RFC 4271 state: 1 for the current state, 0 for the others.",
    );
    for (n, (addr, asn)) in bgp.neighbors.iter().zip(&labels) {
        for st in BGP_STATES {
            f.sample(
                &[("neighbor", addr), ("remote_as", asn), ("state", st)],
                n.state == st,
            );
        }
    }
    let mut f = x.family(
        "xroute_bgp_session_state_seconds",
        Kind::Gauge,
        "Seconds the session has been in its current state (Established: the uptime).",
    );
    for (n, (addr, asn)) in bgp.neighbors.iter().zip(&labels) {
        if let Some(secs) = n.state_seconds {
            f.sample(&[("neighbor", addr), ("remote_as", asn)], secs);
        }
    }
    for (name, kind, help, get) in NEIGHBOR_VALUES {
        let mut f = x.family(name, kind, help);
        for (n, (addr, asn)) in bgp.neighbors.iter().zip(&labels) {
            f.sample(&[("neighbor", addr), ("remote_as", asn)], get(n));
        }
    }
}

#[cfg(test)]
mod tests;
