//! The `xroute-control` daemon: owns the configuration and the RIB, feeds the delta channel,
//! watches the interfaces, and serves the management socket.
//!
//! One tokio thread runs everything; the state sits behind a mutex that is never held across
//! an `.await`. The pump moves coalesced RIB changes into the ring as fast as the engine frees
//! room (a full ring is back-pressure: deltas wait in `pending`, in order, never dropped), and
//! answers the engine's requests for a full replay. The Prometheus endpoint (`metrics`) copies
//! a snapshot out of the state under the lock and formats it outside.

use crate::api::{
    ChangeResult, CountersReport, FibLookupEntry, FibStats, HopView, InterfaceEntry, NeighborEntry,
    PortCountersEntry, ReloadResult, Reply, Request, RouteEntry, RoutePage, ROUTE_PAGE,
};
use crate::bgp::io::{BgpHost, BgpIo};
use crate::bgp::service::{self as bgp_service, BgpService, Io as BgpIoAction};
use crate::config::{self, Config};
use crate::metrics::{self, http::Endpoint};
use crate::protocol::{Applied, Driver, Event};
use crate::rib::{Interface, Protocol, Rib, RouteFilter, RouteView};
use crate::routetext;
use crate::statics::{origin, text_to_route, StaticRoutes, TargetCache};
use anyhow::{Context, Result};
use std::collections::VecDeque;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use xroute_common::delta::{AdjacencyAction, Delta};
use xroute_common::query::{format_mac, EngineReply, EngineRequest};
use xroute_common::shm::{word, ChannelFile, EngineState, Producer, Role, DEFAULT_CAPACITY};
use xroute_common::stats::{self, DropReason, PortCounters};

/// Deltas' worth of queue kept allocated between bursts.
const SPARE_DELTAS: usize = 65_536;

/// Longest request line (a `route import` chunk of 50k lines is about 2 MB).
const MAX_REQUEST: u64 = 64 << 20;

/// How the daemon was started.
#[derive(Clone, Debug)]
pub struct Options {
    /// The configuration file; `None` runs on the embedded default.
    pub config_path: Option<PathBuf>,
    /// Ring slots if this process creates the channel file.
    pub ring_capacity: usize,
}

/// A port's state as read from the kernel.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
struct PortState {
    ifindex: u32,
    present: bool,
    up: bool,
    mtu: u32,
    mac: [u8; 6],
}

/// Everything the daemon owns.
#[derive(Debug)]
pub struct State {
    config: Config,
    config_path: Option<PathBuf>,
    rib: Rib,
    ports: Vec<PortState>,
    producer: Producer,
    pending: VecDeque<Delta>,
    scratch: Vec<Delta>,
    /// Sequence number the next delta appended to `pending` will carry.
    next_seq: u64,
    answered_request: u64,
    resyncs_sent: u64,
    /// The routing protocol instances (static routes first).
    driver: Driver,
    /// Next-hop sets of runtime static routes, shared between routes.
    targets: TargetCache,
    sysfs: PathBuf,
    /// The BGP speaker, when `[bgp] enabled`.
    bgp: Option<BgpService>,
    /// What a replaced or stopped BGP service still asked the sockets to do.
    bgp_orphans: Vec<BgpIoAction>,
    /// Tells each BGP service's connections apart from the previous one's.
    bgp_generation: u16,
    /// The Prometheus endpoint, once [`run`] has started it (never in unit tests).
    metrics: Option<Endpoint>,
}

impl BgpHost for State {
    fn bgp(&mut self) -> Option<(&mut BgpService, &mut Rib)> {
        let rib = &mut self.rib;
        self.bgp.as_mut().map(|b| (b, rib))
    }

    fn take_orphan_io(&mut self) -> Vec<BgpIoAction> {
        std::mem::take(&mut self.bgp_orphans)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads and validates the configuration the daemon starts with.
pub fn initial_config(path: Option<&Path>) -> Result<Config> {
    match path {
        Some(p) => Ok(config::load(p)?),
        None => Ok(config::parse(config::DEFAULT_CONFIG, "<default>")?),
    }
}

fn read_sys(dir: &Path, name: &str, what: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name).join(what))
        .ok()
        .map(|s| s.trim().to_string())
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

impl State {
    /// Attaches to the channel as its producer and loads the configuration into the RIB.
    pub fn new(cfg: Config, config_path: Option<PathBuf>, ring_capacity: usize) -> Result<Self> {
        Self::with_sysfs(cfg, config_path, ring_capacity, PathBuf::from("/sys/class/net"))
    }

    /// As [`State::new`], reading interface state below `sysfs` (tests use a fake one).
    fn with_sysfs(
        cfg: Config,
        config_path: Option<PathBuf>,
        ring_capacity: usize,
        sysfs: PathBuf,
    ) -> Result<Self> {
        let file = ChannelFile::open(&cfg.router.shm_path(), ring_capacity)?;
        let producer = Producer::attach(file)?;
        let next_seq = producer.next_seq();
        let mut state = Self {
            config: Config::default(),
            config_path,
            rib: Rib::new(),
            ports: Vec::new(),
            producer,
            pending: VecDeque::new(),
            scratch: Vec::new(),
            next_seq,
            answered_request: 0,
            resyncs_sent: 0,
            driver: {
                let mut d = Driver::new();
                d.add(Box::new(StaticRoutes::new()));
                d
            },
            targets: TargetCache::default(),
            sysfs,
            bgp: None,
            bgp_orphans: Vec::new(),
            bgp_generation: 0,
            metrics: None,
        };
        state.apply_config(cfg)?;
        // Whatever the engine holds (from an earlier control process, or nothing), replace it
        // with exactly our state: a full replay, mark and sweep on the engine's side.
        let request = state.producer.file().get(word::RESYNC_REQUEST);
        state.start_resync(request);
        Ok(state)
    }

    /// Replaces the running configuration with `cfg`: every protocol instance checks it first
    /// (route files are read then), and only if all agree do interfaces and routes change.
    fn apply_config(&mut self, cfg: Config) -> Result<ReloadResult> {
        self.driver.check_config(&cfg).map_err(anyhow::Error::msg)?;
        if cfg.bgp.enabled {
            let filters = bgp_service::policy_filters(&cfg.bgp).map_err(anyhow::Error::msg)?;
            BgpService::check(&cfg.bgp, &cfg.interfaces, &filters).map_err(anyhow::Error::msg)?;
        }
        // Last of the checks, as it binds the new address: one in use rejects the reload.
        let metrics_change = match &self.metrics {
            Some(endpoint) => endpoint.prepare(&cfg.metrics).map_err(anyhow::Error::msg)?,
            None => None,
        };
        if let (Some(endpoint), Some(change)) = (self.metrics.as_mut(), metrics_change) {
            endpoint.commit(change);
        }
        // Interfaces: ports are numbered in configuration order.
        for port in cfg.interfaces.len()..self.config.interfaces.len() {
            self.rib.remove_interface(port as u16);
        }
        self.config = cfg;
        self.ports = vec![PortState::default(); self.config.interfaces.len()];
        for port in 0..self.ports.len() {
            self.refresh_port(port, true);
        }
        let config = self.config.clone();
        let applied = self
            .driver
            .broadcast(&Event::Config(&config), &mut self.rib, Instant::now())
            .map_err(anyhow::Error::msg)?;
        self.report(&applied);
        self.apply_bgp();
        let statics = self.driver.get::<StaticRoutes>();
        let (added, removed) = statics.map_or((0, 0), StaticRoutes::last_change);
        Ok(ReloadResult {
            file: self.origin_name(),
            interfaces: self.config.interfaces.len(),
            static_routes: statics.map_or(0, StaticRoutes::len),
            routes_added: added,
            routes_removed: removed,
        })
    }

    /// Starts, restarts or stops the BGP service to match the configuration (checked before).
    /// A change of policies only is applied in place; any other change to `[bgp]` restarts
    /// it: every session is reset and learns again.
    fn apply_bgp(&mut self) {
        let want = self.config.bgp.enabled.then(|| self.config.bgp.clone());
        if self.bgp.as_ref().map(|b| b.config()) == want.as_ref() {
            return;
        }
        let Some(cfg) = want else {
            return self.stop_bgp();
        };
        let filters = match bgp_service::policy_filters(&cfg) {
            Ok(f) => f,
            Err(e) => {
                self.stop_bgp();
                return tracing::error!("bgp: not started: {e}");
            }
        };
        // Only policies changed: apply them to what the peers sent and were told, sessions up.
        if let Some(bgp) = self.bgp.as_mut().filter(|b| b.policy_only_change(&cfg)) {
            match bgp.reconfigure_policies(&cfg, &filters, &mut self.rib) {
                Ok(()) => return tracing::info!("bgp: policies applied again, sessions kept"),
                Err(e) => tracing::warn!("bgp: {e}; restarting BGP"),
            }
        }
        self.stop_bgp();
        match BgpService::new(
            &cfg,
            &self.config.interfaces,
            &filters,
            &mut self.rib,
            Instant::now(),
            self.bgp_generation,
        ) {
            Ok(svc) => {
                self.bgp_generation = self.bgp_generation.wrapping_add(1);
                tracing::info!(
                    "bgp: AS{} with {} neighbor(s), {} network(s)",
                    cfg.local_as,
                    cfg.neighbors.len(),
                    cfg.networks.len()
                );
                self.bgp = Some(svc);
            }
            Err(e) => tracing::error!("bgp: not started: {e}"),
        }
    }

    /// Stops the BGP service: Cease to every neighbour, its routes out of the RIB.
    fn stop_bgp(&mut self) {
        if let Some(mut old) = self.bgp.take() {
            old.shutdown(Instant::now(), &mut self.rib);
            self.bgp_orphans.extend(old.take_io());
        }
    }

    /// Logs what protocol instances asked that could not be done.
    fn report(&self, applied: &Applied) {
        if let Some(why) = &applied.first_refusal {
            tracing::warn!("{} route change(s) refused, first: {why}", applied.refused);
        }
        for (protocol, packet) in &applied.packets {
            // No protocol with a socket layer exists yet; the first one (RIP) binds it here.
            tracing::warn!(
                "{protocol}: no socket layer to send {} bytes to {}",
                packet.data.len(),
                packet.to
            );
        }
    }

    /// Delivers due protocol timers.
    fn fire_timers(&mut self) {
        let applied = self.driver.fire_timers(&mut self.rib, Instant::now());
        self.report(&applied);
    }

    fn origin_name(&self) -> String {
        self.config_path
            .as_ref()
            .map_or_else(|| "<default>".to_string(), |p| p.display().to_string())
    }

    /// Re-reads the kernel's view of one port and tells the RIB if it changed.
    fn refresh_port(&mut self, port: usize, force: bool) {
        let Some(ic) = self.config.interfaces.get(port) else {
            return;
        };
        let name = ic.name.clone();
        let ifindex = read_sys(&self.sysfs, &name, "ifindex").and_then(|s| s.parse().ok());
        let operstate = read_sys(&self.sysfs, &name, "operstate").unwrap_or_default();
        let now = PortState {
            ifindex: ifindex.unwrap_or(0),
            present: ifindex.is_some(),
            up: ifindex.is_some() && (operstate == "up" || operstate == "unknown"),
            mtu: ic.mtu.unwrap_or_else(|| {
                read_sys(&self.sysfs, &name, "mtu")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(1500)
            }),
            mac: read_sys(&self.sysfs, &name, "address")
                .and_then(|s| parse_mac(&s))
                .unwrap_or([0; 6]),
        };
        let changed = self.ports.get(port) != Some(&now);
        if changed || force {
            let result = self.rib.set_interface(
                port as u16,
                Interface {
                    name,
                    ifindex: now.ifindex,
                    up: now.up,
                    mtu: now.mtu,
                    mac: now.mac,
                    addresses: ic.addresses.clone(),
                },
            );
            if let Err(e) = result {
                tracing::error!("interface {}: {e}", ic.name);
            }
            if let Some(p) = self.ports.get_mut(port) {
                *p = now.clone();
            }
            if changed {
                let name = ic.name.clone();
                let event = Event::Interface {
                    port: port as u16,
                    name: &name,
                    up: now.up,
                };
                match self.driver.broadcast(&event, &mut self.rib, Instant::now()) {
                    Ok(applied) => self.report(&applied),
                    Err(e) => tracing::warn!("interface {name}: {e}"),
                }
            }
        }
    }

    fn refresh_ports(&mut self) {
        for port in 0..self.ports.len() {
            self.refresh_port(port, false);
        }
    }

    /// Queues a full replay answering the engine's request `tag`.
    fn start_resync(&mut self, tag: u64) {
        // Everything still queued is superseded by the snapshot, which is taken after draining
        // so that it reflects every change so far.
        self.pending.clear();
        self.next_seq = self.producer.next_seq();
        self.scratch.clear();
        self.rib.drain(self.next_seq, &mut self.scratch);
        self.scratch.clear();
        self.scratch.push(Delta::ResyncBegin { tag });
        self.rib.snapshot(self.next_seq + 1, &mut self.scratch);
        self.scratch.push(Delta::ResyncEnd { tag });
        self.next_seq += self.scratch.len() as u64;
        self.pending.extend(self.scratch.drain(..));
        self.answered_request = self.answered_request.max(tag);
        self.resyncs_sent += 1;
    }

    /// Moves RIB changes into the ring; returns true while deltas wait for room.
    pub fn pump(&mut self) -> bool {
        self.fire_timers();
        let request = self.producer.file().get(word::RESYNC_REQUEST);
        if request > self.answered_request {
            self.start_resync(request);
        }
        // Drain the RIB only when the ring has taken everything queued: while the engine lags,
        // changes wait in the RIB's dirty set, where a burst still coalesces to one delta per
        // prefix, instead of piling up here.
        self.push_pending();
        if self.pending.is_empty() {
            self.scratch.clear();
            self.rib.drain(self.next_seq, &mut self.scratch);
            // A BGP peer finished its table: everything it sent is in this drain or went
            // before, so the engine may publish at once after it.
            if self.bgp.as_mut().is_some_and(BgpService::take_commit) {
                self.scratch.push(Delta::Commit);
            }
            self.next_seq += self.scratch.len() as u64;
            self.pending.extend(self.scratch.drain(..));
            self.push_pending();
        }
        // A full table's worth of deltas passes through these once; don't keep the room.
        if self.pending.is_empty() && self.pending.capacity() > SPARE_DELTAS {
            self.pending.shrink_to(SPARE_DELTAS);
        }
        if self.scratch.capacity() > SPARE_DELTAS {
            self.scratch.shrink_to(SPARE_DELTAS);
        }
        self.producer.heartbeat();
        !self.pending.is_empty()
    }

    /// Moves queued deltas into the ring as far as it has room.
    fn push_pending(&mut self) {
        while !self.pending.is_empty() {
            let (front, _) = self.pending.as_slices();
            let n = self.producer.push(front);
            if n == 0 {
                break;
            }
            self.pending.drain(..n);
        }
    }

    fn engine_in_sync(&self) -> bool {
        let f = self.producer.file();
        f.attached(Role::Engine) && EngineState::from_word(f.get(word::ENGINE_STATE)) == EngineState::InSync
    }

    fn port_name(&self, port: u16) -> Option<String> {
        self.config
            .interfaces
            .get(usize::from(port))
            .map(|i| i.name.clone())
    }

    fn route_entry(&self, v: &RouteView, applied: u64, in_sync: bool) -> RouteEntry {
        let kind = match v.action {
            Some(AdjacencyAction::Blackhole) => "blackhole",
            Some(AdjacencyAction::Unreachable) => "unreachable",
            Some(AdjacencyAction::Local) => "local",
            _ => "unicast",
        };
        let fib = if !v.selected {
            "inactive"
        } else {
            match v.fib_seq {
                Some(seq) if in_sync && seq <= applied => "offload",
                Some(_) => "pending",
                None => "not-installed",
            }
        };
        RouteEntry {
            prefix: v.prefix.to_string(),
            protocol: v.protocol.to_string(),
            distance: v.distance,
            metric: v.metric,
            kind: kind.into(),
            nexthops: v
                .resolved
                .iter()
                .map(|h| HopView {
                    via: h.via,
                    dev: (!h.interface.is_empty()).then(|| h.interface.clone()),
                    weight: h.weight,
                })
                .collect(),
            selected: v.selected,
            fib: fib.into(),
            fib_seq: v.fib_seq,
            origin: (v.protocol == Protocol::Static).then(|| origin::name(v.id).to_string()),
        }
    }

    fn add_runtime(&mut self, line: &str) -> Result<()> {
        let text = routetext::parse_route(line).map_err(anyhow::Error::msg)?;
        let interfaces = &self.config.interfaces;
        let port_of = |name: &str| {
            interfaces
                .iter()
                .position(|i| i.name == name)
                .map(|p| p as u16)
                .with_context(|| format!("interface {name} is not configured"))
        };
        let route = text_to_route(&text, origin::RUNTIME, 1, &port_of, &mut self.targets)?;
        self.rib.upsert(text.prefix, route)?;
        Ok(())
    }

    /// Handles one request that needs no engine round trip.
    fn handle(&mut self, req: &Request) -> Reply {
        match self.handle_inner(req) {
            Ok(r) => r,
            Err(e) => Reply::error(format!("{e:#}")),
        }
    }

    fn handle_inner(&mut self, req: &Request) -> Result<Reply> {
        Ok(match req {
            Request::RouteAdd { route } => {
                self.add_runtime(route)?;
                Reply::ok(ChangeResult {
                    added: 1,
                    ..ChangeResult::default()
                })
            }
            Request::RouteImport { lines } => {
                let mut n = 0;
                for (i, line) in lines.iter().enumerate() {
                    let line = line.trim();
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    self.add_runtime(line)
                        .with_context(|| format!("line {} of this chunk ({line:?})", i + 1))?;
                    n += 1;
                }
                Reply::ok(ChangeResult {
                    added: n,
                    ..ChangeResult::default()
                })
            }
            Request::RouteDel { prefix, distance } => {
                let prefix = routetext::parse_prefix(prefix).map_err(anyhow::Error::msg)?;
                let mut removed = 0u64;
                for d in 1..=255u8 {
                    if distance.is_some_and(|x| x != d) {
                        continue;
                    }
                    if self
                        .rib
                        .remove(prefix, Protocol::Static, origin::RUNTIME | u32::from(d))
                    {
                        removed += 1;
                    }
                }
                if removed == 0 {
                    let configured = self
                        .driver
                        .get::<StaticRoutes>()
                        .is_some_and(|st| st.configured(prefix, *distance));
                    if configured {
                        anyhow::bail!(
                            "{prefix} comes from the configuration ({}): remove it there and run `xroutectl config reload`",
                            self.origin_name()
                        );
                    }
                    anyhow::bail!("no runtime static route for {prefix}");
                }
                Reply::ok(ChangeResult {
                    removed,
                    ..ChangeResult::default()
                })
            }
            Request::RouteShow {
                prefix,
                longer,
                protocol,
                all,
                after,
                limit,
            } => {
                let filter = RouteFilter {
                    prefix: prefix
                        .as_deref()
                        .map(routetext::parse_prefix)
                        .transpose()
                        .map_err(anyhow::Error::msg)?,
                    longer: *longer,
                    protocol: protocol
                        .as_deref()
                        .map(|p| p.parse::<Protocol>())
                        .transpose()
                        .map_err(|e| anyhow::anyhow!("{e}"))?,
                    selected_only: !*all,
                };
                let applied = self.producer.file().get(word::APPLIED_SEQ);
                let in_sync = self.engine_in_sync();
                let after = after
                    .as_deref()
                    .map(routetext::parse_prefix)
                    .transpose()
                    .map_err(anyhow::Error::msg)?;
                let limit = limit.unwrap_or(ROUTE_PAGE).clamp(1, ROUTE_PAGE) as usize;
                let (views, next) = self.rib.routes_page(&filter, after.as_ref(), limit);
                Reply::ok(RoutePage {
                    routes: views
                        .iter()
                        .map(|v| self.route_entry(v, applied, in_sync))
                        .collect(),
                    next: next.map(|p| p.to_string()),
                })
            }
            Request::FibStats => Reply::ok(self.fib_stats()),
            Request::Interfaces => Reply::ok(self.interfaces()),
            Request::Counters => Reply::ok(self.counters()),
            Request::ConfigReload => {
                let Some(path) = self.config_path.clone() else {
                    anyhow::bail!(
                        "running on the embedded default configuration: there is no file to reload"
                    );
                };
                let cfg = config::load(&path)?;
                if cfg.router != self.config.router {
                    anyhow::bail!(
                        "{}: the [router] section (instance, directories) cannot change on reload; restart xroute-control",
                        path.display()
                    );
                }
                Reply::ok(self.apply_config(cfg)?)
            }
            Request::BgpSummary => Reply::ok(self.bgp_ref()?.summary(Instant::now())),
            Request::BgpNeighbor { address } => {
                let d = self
                    .bgp_ref()?
                    .neighbor(*address, Instant::now())
                    .ok_or_else(|| anyhow::anyhow!("no BGP neighbor {address}"))?;
                Reply::ok(d)
            }
            Request::BgpRoutes { prefix, limit } => {
                let prefix = prefix
                    .as_deref()
                    .map(routetext::parse_prefix)
                    .transpose()
                    .map_err(anyhow::Error::msg)?;
                let limit = limit.unwrap_or(ROUTE_PAGE).clamp(1, ROUTE_PAGE) as usize;
                let bgp = self
                    .bgp
                    .as_mut()
                    .ok_or_else(|| anyhow::anyhow!("BGP is not enabled"))?;
                Reply::ok(bgp.routes(&self.rib, prefix, limit))
            }
            Request::BgpReset { address } => {
                let bgp = self
                    .bgp
                    .as_mut()
                    .ok_or_else(|| anyhow::anyhow!("BGP is not enabled"))?;
                bgp.reset(Instant::now(), &mut self.rib, *address)
                    .map_err(anyhow::Error::msg)?;
                Reply::ok(ChangeResult::default())
            }
            Request::FibLookup { .. } | Request::Neighbors => {
                Reply::error("internal: engine requests are handled asynchronously")
            }
        })
    }

    fn bgp_ref(&self) -> Result<&BgpService> {
        self.bgp
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("BGP is not enabled"))
    }

    fn fib_stats(&self) -> FibStats {
        let f = self.producer.file();
        let h = f.snapshot();
        let rib = self.rib.stats();
        FibStats {
            engine_attached: h.engine_attached,
            engine_pid: h.engine_pid,
            engine_state: if h.engine_attached {
                h.engine_state.name().to_string()
            } else {
                "not running".to_string()
            },
            routes_v4: h.fib_routes_v4,
            routes_v6: h.fib_routes_v6,
            memory_bytes: h.fib_memory_bytes,
            groups: h.fib_groups,
            adjacencies: h.fib_adjacencies,
            applied_seq: h.applied_seq,
            produced_seq: h.producer_pos,
            queued: self.pending.len() as u64,
            rejected: h.rejected,
            resyncs_done: h.resyncs_done,
            resyncs_sent: self.resyncs_sent,
            last_resync_swept: h.resync_swept,
            rib_routes_v4: rib.selected_v4 as u64,
            rib_routes_v6: rib.selected_v6 as u64,
            rib_candidates: rib.candidates as u64,
            rib_unresolved: rib.unresolved as u64,
            channel: f.path().display().to_string(),
            ring_capacity: h.capacity,
        }
    }

    fn interfaces(&self) -> Vec<InterfaceEntry> {
        self.config
            .interfaces
            .iter()
            .zip(&self.ports)
            .enumerate()
            .map(|(port, (ic, st))| InterfaceEntry {
                port: port as u16,
                name: ic.name.clone(),
                ifindex: st.ifindex,
                state: if !st.present {
                    "absent"
                } else if st.up {
                    "up"
                } else {
                    "down"
                }
                .into(),
                mtu: st.mtu,
                mac: format_mac(st.mac),
                addresses: ic.addresses.iter().map(ToString::to_string).collect(),
            })
            .collect()
    }

    fn counters(&self) -> CountersReport {
        let f = self.producer.file();
        let words = f.stats_words();
        let load = |i: usize| {
            words
                .get(i)
                .map_or(0, |w| w.load(std::sync::atomic::Ordering::Relaxed))
        };
        let ports = self
            .config
            .interfaces
            .iter()
            .enumerate()
            .take(stats::MAX_PORTS)
            .map(|(port, ic)| {
                let mut sum = PortCounters::default();
                for core in 0..stats::MAX_CORES {
                    let base = stats::slot_offset(core, port);
                    let slot: Vec<u64> = (base..base + stats::SLOT_WORDS).map(load).collect();
                    sum.add(&PortCounters::from_slot(&slot));
                }
                PortCountersEntry {
                    port: port as u16,
                    name: ic.name.clone(),
                    rx_packets: sum.rx_packets,
                    rx_bytes: sum.rx_bytes,
                    tx_packets: sum.tx_packets,
                    tx_bytes: sum.tx_bytes,
                    to_kernel: sum.to_kernel,
                    drops: DropReason::ALL
                        .iter()
                        .map(|r| {
                            (
                                r.name().to_string(),
                                sum.drops.get(*r as usize).copied().unwrap_or(0),
                            )
                        })
                        .collect(),
                }
            })
            .collect();
        let h = f.snapshot();
        CountersReport {
            ports,
            deltas_produced: h.producer_pos,
            deltas_applied: h.applied_seq,
            deltas_rejected: h.rejected,
        }
    }

    /// What a Prometheus scrape reports, copied out (see `metrics`).
    fn metrics_snapshot(&self) -> metrics::Snapshot {
        let f = self.producer.file();
        let h = f.snapshot();
        let words = f.stats_words();
        let load = |i: usize| {
            words
                .get(i)
                .map_or(0, |w| w.load(std::sync::atomic::Ordering::Relaxed))
        };
        let nports = self.config.interfaces.len().min(stats::MAX_PORTS);
        // What the XDP programs passed to the kernel is per port (the slow path copies it into
        // its own slot); the rest is per worker: worker 0 always (every engine has it, so its
        // series exist before the first packet), the others once they have counted anything.
        let mut to_kernel = vec![0u64; nports];
        let mut slots = Vec::new();
        for slot in 0..stats::MAX_CORES {
            let mut ports: Vec<PortCounters> = (0..nports)
                .map(|port| {
                    let base = stats::slot_offset(slot, port);
                    let words: Vec<u64> = (base..base + stats::SLOT_WORDS).map(load).collect();
                    PortCounters::from_slot(&words)
                })
                .collect();
            for (sum, c) in to_kernel.iter_mut().zip(&mut ports) {
                *sum += std::mem::take(&mut c.to_kernel);
            }
            if slot == 0 || ports.iter().any(|c| *c != PortCounters::default()) {
                slots.push(metrics::SlotSample {
                    worker: slot.to_string(),
                    ports,
                });
            }
        }
        let heartbeat_age = h
            .engine_attached
            .then(|| h.engine_heartbeat_age_ms as f64 / 1000.0);
        let rib = self.rib.stats();
        metrics::Snapshot {
            ports: self
                .config
                .interfaces
                .iter()
                .zip(&self.ports)
                .take(nports)
                .zip(&to_kernel)
                .map(|((ic, st), to_kernel)| metrics::PortSample {
                    name: ic.name.clone(),
                    up: st.present && st.up,
                    to_kernel: *to_kernel,
                })
                .collect(),
            slots,
            engine: metrics::EngineSample {
                attached: h.engine_attached,
                up: h.engine_attached && h.engine_heartbeat_age_ms < ENGINE_STALE_MS,
                state: h.engine_state,
                heartbeat_age_seconds: heartbeat_age,
                fib_routes_v4: h.fib_routes_v4,
                fib_routes_v6: h.fib_routes_v6,
                fib_memory_bytes: h.fib_memory_bytes,
                fib_groups: h.fib_groups,
                fib_adjacencies: h.fib_adjacencies,
                resyncs_done: h.resyncs_done,
            },
            deltas: metrics::DeltaSample {
                produced_seq: h.producer_pos,
                applied_seq: h.applied_seq,
                queued: self.pending.len() as u64,
                rejected: h.rejected,
                resyncs_sent: self.resyncs_sent,
                ring_capacity: h.capacity,
            },
            rib: metrics::RibSample {
                selected_v4: rib.selected_v4 as u64,
                selected_v6: rib.selected_v6 as u64,
                candidates: Protocol::ALL
                    .iter()
                    .zip(rib.per_protocol)
                    .map(|(p, n)| (p.as_str(), n as u64))
                    .collect(),
                unresolved: rib.unresolved as u64,
            },
            bgp: self.bgp.as_ref().map(bgp_sample),
        }
    }

    fn engine_socket(&self) -> PathBuf {
        self.config
            .router
            .run_dir
            .join(&self.config.router.instance)
            .join("engine.sock")
    }
}

/// An engine whose FIB writer has not beaten for this long counts as down (it beats every
/// 100 ms).
const ENGINE_STALE_MS: u64 = 5_000;

/// The BGP part of a metrics snapshot.
fn bgp_sample(bgp: &BgpService) -> metrics::BgpSample {
    let now = Instant::now();
    let summary = bgp.summary(now);
    let neighbors = summary
        .neighbors
        .iter()
        .filter_map(|n| bgp.neighbor(n.address, now))
        .map(|d| {
            let s = &d.summary;
            // "Idle (shutdown)" and "Idle (max prefixes)" are Idle with a reason.
            let word = s.state.split(' ').next().unwrap_or_default();
            let state = metrics::BGP_STATES
                .iter()
                .copied()
                .find(|st| st.eq_ignore_ascii_case(word))
                .unwrap_or("idle");
            metrics::NeighborSample {
                address: s.address,
                remote_as: s.remote_as,
                state,
                admin_shutdown: d.shutdown,
                state_seconds: s.state_seconds,
                received: s.received as u64,
                accepted: s.accepted as u64,
                advertised: s.advertised as u64,
                messages_in: s.messages_in,
                messages_out: s.messages_out,
                updates_in: d.updates_in,
                updates_out: d.updates_out,
                notifications_in: d.notifications_in,
                notifications_out: d.notifications_out,
                established_transitions: d.established_transitions,
                connect_attempts: d.connect_attempts,
            }
        })
        .collect();
    metrics::BgpSample {
        local_as: summary.local_as,
        prefixes: summary.prefixes as u64,
        neighbors,
    }
}

/// Sends one request to the engine's query socket.
async fn ask_engine(path: &Path, req: &EngineRequest) -> Result<EngineReply> {
    let io = async {
        let stream = UnixStream::connect(path)
            .await
            .with_context(|| format!("xroute-engine is not answering on {}", path.display()))?;
        let (r, mut w) = stream.into_split();
        let mut line = serde_json::to_string(req)?;
        line.push('\n');
        w.write_all(line.as_bytes()).await?;
        let mut reply = String::new();
        BufReader::new(r).take(MAX_REQUEST).read_line(&mut reply).await?;
        serde_json::from_str::<EngineReply>(&reply).context("bad reply from the engine")
    };
    tokio::time::timeout(Duration::from_secs(10), io)
        .await
        .context("xroute-engine did not answer within 10 s")?
}

async fn handle_request(state: &Mutex<State>, req: Request) -> Reply {
    match req {
        Request::FibLookup { addrs } => {
            let path = lock(state).engine_socket();
            let reply = match ask_engine(&path, &EngineRequest::Lookup { addrs }).await {
                Ok(EngineReply::Lookup { results }) => results,
                Ok(EngineReply::Error { message }) => return Reply::error(format!("engine: {message}")),
                Ok(_) => return Reply::error("engine: unexpected reply"),
                Err(e) => return Reply::error(format!("{e:#}")),
            };
            let s = lock(state);
            let entries: Vec<FibLookupEntry> = reply
                .into_iter()
                .map(|engine| {
                    let rib_prefix = s.rib.lookup(engine.addr).map(|(p, _)| p.to_string());
                    FibLookupEntry {
                        agrees: rib_prefix == engine.prefix,
                        rib_prefix,
                        engine,
                    }
                })
                .collect();
            Reply::ok(entries)
        }
        Request::Neighbors => {
            let path = lock(state).engine_socket();
            let adjacencies = ask_engine(&path, &EngineRequest::Adjacencies).await;
            let neighbors = ask_engine(&path, &EngineRequest::Neighbors).await;
            match (adjacencies, neighbors) {
                (Ok(EngineReply::Adjacencies { adjacencies }), Ok(EngineReply::Neighbors { neighbors })) => {
                    let s = lock(state);
                    let gateway = |port: u16, addr: std::net::IpAddr| {
                        adjacencies
                            .iter()
                            .find(|a| a.action == "forward" && a.port == port && a.next_hop == Some(addr))
                            .map(|a| a.adjacency)
                    };
                    let mut v: Vec<NeighborEntry> = neighbors
                        .iter()
                        .map(|n| NeighborEntry {
                            address: n.address,
                            dev: s.port_name(n.port),
                            port: n.port,
                            mac: Some(n.mac.clone()),
                            state: "reachable".into(),
                            adjacency: gateway(n.port, n.address),
                        })
                        .collect();
                    for a in &adjacencies {
                        let Some(nh) = a.next_hop else { continue };
                        if a.action != "forward" || v.iter().any(|e| e.port == a.port && e.address == nh) {
                            continue;
                        }
                        v.push(NeighborEntry {
                            address: nh,
                            dev: s.port_name(a.port),
                            port: a.port,
                            mac: None,
                            state: "incomplete".into(),
                            adjacency: Some(a.adjacency),
                        });
                    }
                    v.sort_by_key(|a| (a.port, a.address));
                    v.dedup_by_key(|a| (a.port, a.address));
                    Reply::ok(v)
                }
                (Ok(EngineReply::Error { message }), _) | (_, Ok(EngineReply::Error { message })) => {
                    Reply::error(format!("engine: {message}"))
                }
                (Err(e), _) | (_, Err(e)) => Reply::error(format!("{e:#}")),
                _ => Reply::error("engine: unexpected reply"),
            }
        }
        other => lock(state).handle(&other),
    }
}

async fn serve_client(stream: UnixStream, state: Arc<Mutex<State>>) {
    let (r, mut w) = stream.into_split();
    let mut reader = BufReader::new(r);
    let mut line = String::new();
    loop {
        line.clear();
        let n = match (&mut reader).take(MAX_REQUEST).read_line(&mut line).await {
            Ok(n) => n,
            Err(e) => {
                let _ = w
                    .write_all(format!("{}\n", json_error(&format!("unreadable request: {e}"))).as_bytes())
                    .await;
                return;
            }
        };
        if n == 0 {
            return;
        }
        if !line.ends_with('\n') && n as u64 >= MAX_REQUEST {
            let _ = w
                .write_all(format!("{}\n", json_error("request too long")).as_bytes())
                .await;
            return;
        }
        let reply = match serde_json::from_str::<Request>(&line) {
            Ok(req) => handle_request(&state, req).await,
            Err(e) => Reply::error(format!("malformed request: {e}")),
        };
        let mut text = serde_json::to_string(&reply).unwrap_or_else(|e| json_error(&e.to_string()));
        text.push('\n');
        if w.write_all(text.as_bytes()).await.is_err() {
            return;
        }
        // Let the pump see the change at once rather than at its next tick.
        let _ = lock(&state).pump();
    }
}

fn json_error(message: &str) -> String {
    serde_json::to_string(&Reply::error(message)).unwrap_or_default()
}

fn bind_private(path: &Path) -> Result<std::os::unix::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        anyhow::bail!(
            "{}: another xroute-control is serving this instance",
            path.display()
        );
    }
    let _ = std::fs::remove_file(path);
    let listener = std::os::unix::net::UnixListener::bind(path)
        .with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Runs the daemon until SIGTERM or SIGINT; SIGHUP reloads the configuration.
pub fn run(opts: Options) -> Result<()> {
    let cfg = initial_config(opts.config_path.as_deref())?;
    let socket = cfg.router.control_socket();
    let state = State::new(
        cfg,
        opts.config_path.clone(),
        opts.ring_capacity.max(DEFAULT_CAPACITY / 64),
    )?;
    tracing::info!(
        channel = %state.producer.file().path().display(),
        socket = %socket.display(),
        config = %state.origin_name(),
        interfaces = state.config.interfaces.len(),
        static_routes = state.driver.get::<StaticRoutes>().map_or(0, StaticRoutes::len),
        "xroute-control started"
    );
    let state = Arc::new(Mutex::new(state));
    let listener = bind_private(&socket)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let listener = UnixListener::from_std(listener)?;
        // The Prometheus endpoint: the snapshot is taken under the lock, formatted outside it.
        let scrape_state = Arc::clone(&state);
        let render: metrics::http::Render = Arc::new(move || {
            let snapshot = lock(&scrape_state).metrics_snapshot();
            metrics::render(&snapshot)
        });
        let metrics_config = lock(&state).config.metrics.clone();
        let endpoint = Endpoint::start(&metrics_config, render).map_err(anyhow::Error::msg)?;
        lock(&state).metrics = Some(endpoint);
        let accept_state = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        tokio::spawn(serve_client(stream, Arc::clone(&accept_state)));
                    }
                    Err(e) => {
                        tracing::warn!("accept on the control socket: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        let pump_state = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let busy = lock(&pump_state).pump();
                tokio::time::sleep(if busy {
                    Duration::from_micros(200)
                } else {
                    Duration::from_millis(5)
                })
                .await;
            }
        });
        let bgp_io = BgpIo::start(Arc::clone(&state));
        let port_state = Arc::clone(&state);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                lock(&port_state).refresh_ports();
            }
        });
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    let reply = lock(&state).handle(&Request::ConfigReload);
                    match reply.error {
                        None => tracing::info!("configuration reloaded (SIGHUP)"),
                        Some(e) => tracing::error!("configuration reload failed, keeping the running configuration: {e}"),
                    }
                }
            }
        }
        // Tell every BGP neighbour (Cease, administrative shutdown) and give the sockets a
        // moment to carry it.
        lock(&state).stop_bgp();
        bgp_io.flush_orphans();
        tokio::time::sleep(Duration::from_millis(200)).await;
        bgp_io.stop();
        Ok::<_, anyhow::Error>(())
    });
    let _ = std::fs::remove_file(&socket);
    tracing::info!("xroute-control stopped");
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use xroute_common::delta::RawRecord;
    use xroute_common::shm::Consumer;

    /// A scratch directory with a fake sysfs (one interface, up) and a configuration.
    fn setup(name: &str) -> (PathBuf, Config) {
        setup_with(name, "")
    }

    /// As [`setup`], with `extra` appended to the configuration.
    fn setup_with(name: &str, extra: &str) -> (PathBuf, Config) {
        let dir = std::env::temp_dir().join(format!("xroute-daemon-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ifdir = dir.join("sys/eth0");
        std::fs::create_dir_all(&ifdir).unwrap();
        for (f, v) in [
            ("ifindex", "7"),
            ("operstate", "up"),
            ("mtu", "1500"),
            ("address", "02:00:00:00:00:07"),
        ] {
            std::fs::write(ifdir.join(f), format!("{v}\n")).unwrap();
        }
        let text = format!(
            "[router]\nrun-dir = \"{0}/run\"\nshm-dir = \"{0}\"\n[[interface]]\nname = \"eth0\"\naddress = [\"198.18.0.1/24\"]\n{extra}",
            dir.display()
        );
        (dir, config::parse(&text, "test").unwrap())
    }

    /// Applies records to a model FIB: prefix -> group.
    fn model(fib: &mut HashMap<String, u32>, records: &[RawRecord]) {
        for r in records {
            match Delta::decode(r).unwrap().1 {
                Delta::RouteSet { prefix, group } => {
                    fib.insert(prefix.to_string(), group);
                }
                Delta::RouteDelete { prefix } => {
                    assert!(
                        fib.remove(&prefix.to_string()).is_some(),
                        "delete of absent {prefix}"
                    );
                }
                _ => {}
            }
        }
    }

    #[test]
    fn the_metrics_snapshot_reads_the_stats_segment_and_bgp() {
        let (dir, cfg) = setup_with(
            "metrics",
            "[bgp]\nenabled = true\nlocal-as = 64500\n\n\
             [[bgp.neighbor]]\naddress = \"198.18.0.2\"\nremote-as = 64501\npassive = true\n\n\
             [[bgp.neighbor]]\naddress = \"198.18.0.3\"\nremote-as = 64502\nshutdown = true\n",
        );
        let st = State::with_sysfs(cfg, None, 64, dir.join("sys")).unwrap();
        // Worker 2 forwarded on port 0 and dropped one packet; the slow path (last slot) saw
        // traffic for the kernel, as the engine's layout has it.
        let words = st.producer.file().stats_words();
        let set = |slot: usize, counter: usize, v: u64| {
            words[stats::slot_offset(slot, 0) + counter].store(v, std::sync::atomic::Ordering::Relaxed);
        };
        set(2, stats::counter::RX_PACKETS, 7);
        set(2, stats::counter::DROPS + DropReason::NoRoute as usize, 1);
        set(stats::MAX_CORES - 1, stats::counter::TO_KERNEL, 4);
        let snap = st.metrics_snapshot();
        assert_eq!(snap.ports.len(), 1);
        assert_eq!((snap.ports[0].name.as_str(), snap.ports[0].up), ("eth0", true));
        assert_eq!(snap.ports[0].to_kernel, 4);
        // Worker 0 always, worker 2 because it counted; not the slow path's slot, whose only
        // counter is per port.
        let workers: Vec<&str> = snap.slots.iter().map(|s| s.worker.as_str()).collect();
        assert_eq!(workers, ["0", "2"]);
        assert_eq!(snap.slots[1].ports[0].rx_packets, 7);
        assert_eq!(snap.slots[1].ports[0].drops[DropReason::NoRoute as usize], 1);
        assert!(!snap.engine.attached && !snap.engine.up);
        // The connected subnet and the local address.
        assert_eq!(snap.rib.selected_v4, 2);
        let bgp = snap.bgp.as_ref().expect("BGP is enabled");
        assert_eq!(bgp.local_as, 64500);
        let states: Vec<(String, &str, bool)> = bgp
            .neighbors
            .iter()
            .map(|n| (n.address.to_string(), n.state, n.admin_shutdown))
            .collect();
        assert_eq!(
            states,
            [
                ("198.18.0.2".to_string(), "active", false),
                ("198.18.0.3".to_string(), "idle", true),
            ]
        );
        let text = metrics::render(&snap);
        assert!(
            text.contains("xroute_port_drops_total{port=\"eth0\",worker=\"2\",reason=\"no_route\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("xroute_port_to_kernel_packets_total{port=\"eth0\"} 4\n"),
            "{text}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_full_ring_holds_changes_back_and_loses_none() {
        let (dir, cfg) = setup("backpressure");
        // The engine is there first, with the smallest ring.
        let file = ChannelFile::open(&cfg.router.shm_path(), 64).unwrap();
        let mut consumer = Consumer::attach(file).unwrap();
        let mut st = State::with_sysfs(cfg, None, 64, dir.join("sys")).unwrap();
        let lines: Vec<String> = (0..300)
            .map(|i| format!("10.{}.{}.0/24 via 198.18.0.2", i / 256, i % 256))
            .collect();
        assert!(st.handle(&Request::RouteImport { lines: lines.clone() }).ok);
        assert!(st.pump(), "more than a ring's worth is waiting");
        assert_eq!(st.producer.in_flight(), 64);
        // Change every route twice and remove half while the ring is full: these wait in the RIB.
        for l in &lines {
            assert!(
                st.handle(&Request::RouteAdd {
                    route: l.replace("198.18.0.2", "198.18.0.3")
                })
                .ok
            );
            assert!(
                st.handle(&Request::RouteAdd {
                    route: l.replace("198.18.0.2", "198.18.0.4")
                })
                .ok
            );
        }
        for l in lines.iter().step_by(2) {
            let prefix = l.split(' ').next().unwrap().to_string();
            assert!(
                st.handle(&Request::RouteDel {
                    prefix,
                    distance: None
                })
                .ok
            );
        }
        let queued_before = st.pending.len();
        st.pump();
        assert_eq!(
            st.pending.len(),
            queued_before,
            "nothing new is queued while the ring is full"
        );

        // The engine catches up slowly; the pump runs between its reads.
        let mut fib = HashMap::new();
        let mut records = 0;
        let mut batch = Vec::new();
        for _ in 0..10_000 {
            batch.clear();
            consumer.poll(&mut batch, 16);
            records += batch.len();
            model(&mut fib, &batch);
            consumer.commit(0);
            if !st.pump() && batch.is_empty() && st.producer.in_flight() == 0 {
                break;
            }
        }
        // Exactly the 150 remaining routes via the last gateway, plus connected and local.
        let mut rib_groups = HashMap::new();
        for v in st.rib.routes(&RouteFilter::default()) {
            rib_groups.insert(v.prefix.to_string(), v.group.unwrap());
        }
        assert_eq!(fib, rib_groups);
        assert_eq!(fib.len(), 150 + 2);
        let (_, v) = st.rib.lookup("10.0.1.9".parse().unwrap()).unwrap();
        assert_eq!(v.resolved[0].via, Some("198.18.0.4".parse().unwrap()));
        // 300 first adds, then one record per prefix for everything that happened while the ring
        // was full (150 re-pointed, 150 deleted), plus a few adjacency, group and replay
        // records. Without holding changes back: 300 + 600 + 150 route records.
        assert!(
            records <= 300 + 300 + 40,
            "{records} records: changes were not coalesced"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
