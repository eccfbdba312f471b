//! The data plane's slow path, run on the engine's FIB writer thread between delta batches:
//!
//! - neighbours: takes the workers' resolve requests, asks the kernel (rtnetlink `NTF_USE`),
//!   mirrors the kernel's answers into the workers' neighbour cache and into the FIB's
//!   adjacencies (so routes through a resolved gateway forward on the fast path), and keeps
//!   neighbours in use confirmed by asking again every refresh period;
//! - addresses: mirrors the namespace's interface addresses into the XDP programs (traffic for
//!   them goes to the kernel) and into the port table (the source of ICMP errors);
//! - ports: matches the control process's interfaces to the engine's ports by name.
//!
//! It runs on the writer thread because it writes the FIB (adjacency MACs), which has exactly
//! one writer.

use super::ports::{PortTable, PortView};
use super::worker::{decode_request, RequestConsumer, Shared};
use crate::neighbor::NeighborCacheWriter;
use crate::netlink::{self, NeighborEvent, Netlink};
use crate::programmer::Programmer;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xroute_bpf::XdpProgram;
use xroute_common::delta::PortSpec;

/// How often interface addresses are re-read.
const ADDRESS_PERIOD: Duration = Duration::from_secs(1);
/// How often neighbours in use are re-confirmed (the kernel's REACHABLE time is ~30 s; asking
/// within it keeps an entry from going stale and unprobed while only the engine uses it).
const REFRESH_PERIOD: Duration = Duration::from_secs(15);
/// Refresh periods a neighbour may go unused before the engine forgets it.
const UNUSED_PERIODS: u32 = 20;
/// How often the XDP programs' counters are copied into the stats segment.
const XDP_COUNTER_PERIOD: Duration = Duration::from_millis(500);
/// The stats slot (core index) the slow path writes: the one after the last worker's.
const SLOW_PATH_SLOT: usize = xroute_common::stats::MAX_CORES - 1;
/// The kernel is asked about one neighbour at most this often.
const ASK_INTERVAL: Duration = Duration::from_millis(500);

/// Counters of the slow path's own work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlowPathStats {
    pub requests: u64,
    pub kernel_asks: u64,
    pub resolved: u64,
    pub failed: u64,
    pub netlink_errors: u64,
    pub cache_full: u64,
}

/// See the module docs.
pub struct SlowPath {
    shared: Arc<Shared>,
    programs: Vec<XdpProgram>,
    names: Vec<String>,
    ifindexes: Vec<u32>,
    macs: Vec<[u8; 6]>,
    netlink: Netlink,
    events: Vec<NeighborEvent>,
    cache: NeighborCacheWriter,
    requests: Vec<RequestConsumer>,
    /// The kernel's usable neighbours on the engine's ports, by (ifindex, address), whatever
    /// the control process's port numbering: the kernel sends no event for a neighbour that is
    /// already reachable, so this is where such a neighbour's MAC is found when asked.
    kernel: HashMap<(u32, IpAddr), [u8; 6]>,
    asked: HashMap<(u16, IpAddr), Instant>,
    unused: HashMap<(u16, IpAddr), u32>,
    control_ports: BTreeMap<u32, PortSpec>,
    local: Vec<IpAddr>,
    port_addrs: Vec<(Option<Ipv4Addr>, Option<Ipv6Addr>)>,
    last_addresses: Option<Instant>,
    last_refresh: Instant,
    last_xdp_counters: Instant,
    stats: SlowPathStats,
}

impl std::fmt::Debug for SlowPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlowPath")
            .field("ports", &self.names)
            .field("stats", &self.stats)
            .finish()
    }
}

/// Reads the MAC address of an interface from sysfs.
pub fn interface_mac(name: &str) -> Option<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/address")).ok()?;
    let mut mac = [0u8; 6];
    let mut parts = text.trim().split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

impl SlowPath {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        shared: Arc<Shared>,
        programs: Vec<XdpProgram>,
        names: Vec<String>,
        ifindexes: Vec<u32>,
        netlink: Netlink,
        cache: NeighborCacheWriter,
        requests: Vec<RequestConsumer>,
    ) -> Self {
        let macs = names.iter().map(|n| interface_mac(n).unwrap_or([0; 6])).collect();
        let n = names.len();
        let mut s = Self {
            shared,
            programs,
            names,
            ifindexes,
            macs,
            netlink,
            events: Vec::with_capacity(256),
            cache,
            requests,
            kernel: HashMap::new(),
            asked: HashMap::new(),
            unused: HashMap::new(),
            control_ports: BTreeMap::new(),
            local: Vec::new(),
            port_addrs: vec![(None, None); n],
            last_addresses: None,
            last_refresh: Instant::now(),
            last_xdp_counters: Instant::now(),
            stats: SlowPathStats::default(),
        };
        let _ = s.netlink.request_neighbor_dump();
        s.sync_addresses();
        s.publish_ports();
        s
    }

    pub fn stats(&self) -> SlowPathStats {
        self.stats
    }

    /// The neighbours the engine knows, as (control port, address, MAC).
    pub fn neighbors(&self) -> Vec<(u16, IpAddr, [u8; 6])> {
        let mut v = Vec::new();
        self.cache.for_each(|port, addr, mac| v.push((port, addr, mac)));
        v.sort();
        v
    }

    /// One round of slow-path work; cheap when there is nothing to do.
    pub fn tick(&mut self, programmer: &mut Programmer) {
        if programmer.ports() != &self.control_ports {
            self.control_ports = programmer.ports().clone();
            self.publish_ports();
            self.resync_cache(programmer);
        }
        if self.last_addresses.is_none_or(|t| t.elapsed() >= ADDRESS_PERIOD) {
            self.sync_addresses();
        }
        self.kernel_events(programmer);
        if self.last_xdp_counters.elapsed() >= XDP_COUNTER_PERIOD {
            self.last_xdp_counters = Instant::now();
            self.publish_xdp_counters();
        }
        self.worker_requests(programmer);
        if self.last_refresh.elapsed() >= REFRESH_PERIOD {
            self.last_refresh = Instant::now();
            self.refresh(programmer);
        }
    }

    /// Control port number of the engine port with this ifindex.
    fn control_port_of_ifindex(&self, ifindex: u32) -> Option<u16> {
        let name = self
            .names
            .get(self.ifindexes.iter().position(|&i| i == ifindex)?)?;
        self.control_ports
            .iter()
            .find(|(_, s)| &s.name_str() == name)
            .and_then(|(p, _)| u16::try_from(*p).ok())
    }

    fn ifindex_of_control_port(&self, port: u16) -> Option<u32> {
        let spec = self.control_ports.get(&u32::from(port))?;
        let name = spec.name_str();
        let i = self.names.iter().position(|n| *n == name)?;
        self.ifindexes.get(i).copied()
    }

    fn publish_ports(&mut self) {
        let ports = self
            .names
            .iter()
            .enumerate()
            .map(|(i, name)| PortView {
                name: name.clone(),
                ifindex: self.ifindexes.get(i).copied().unwrap_or(0),
                control: self
                    .control_ports
                    .iter()
                    .find(|(_, s)| &s.name_str() == name)
                    .and_then(|(p, _)| u16::try_from(*p).ok()),
                mac: self.macs.get(i).copied().unwrap_or([0; 6]),
                v4: self.port_addrs.get(i).and_then(|a| a.0),
                v6: self.port_addrs.get(i).and_then(|a| a.1),
            })
            .collect();
        let any_v4 = self.local.iter().find_map(|a| match a {
            IpAddr::V4(v) if !v.is_loopback() => Some(*v),
            _ => None,
        });
        let any_v6 = self.local.iter().find_map(|a| match a {
            IpAddr::V6(v) if !v.is_loopback() && (v.segments()[0] & 0xffc0) != 0xfe80 => Some(*v),
            _ => None,
        });
        let table = PortTable::new(ports, any_v4, any_v6);
        if *self.shared.ports.load() != table {
            self.shared.ports.publish(table);
        }
    }

    /// Re-reads the namespace's addresses; on a change, updates the XDP programs and the
    /// ICMP sources.
    fn sync_addresses(&mut self) {
        self.last_addresses = Some(Instant::now());
        let Ok(addrs) = netlink::interface_addresses() else {
            self.stats.netlink_errors += 1;
            return;
        };
        let mut local: Vec<IpAddr> = addrs.iter().map(|a| a.addr).collect();
        local.sort();
        local.dedup();
        let port_addrs: Vec<_> = self
            .ifindexes
            .iter()
            .map(|&ifi| {
                let v4 = addrs.iter().find_map(|a| match a.addr {
                    IpAddr::V4(v) if a.ifindex == ifi => Some(v),
                    _ => None,
                });
                let v6 = addrs.iter().find_map(|a| match a.addr {
                    IpAddr::V6(v) if a.ifindex == ifi && (v.segments()[0] & 0xffc0) != 0xfe80 => Some(v),
                    _ => None,
                });
                (v4, v6)
            })
            .collect();
        if local != self.local {
            for p in &mut self.programs {
                if let Err(e) = p.set_local_addresses(&local) {
                    eprintln!("xroute-engine: {}: updating local addresses: {e}", p.interface());
                }
            }
            self.local = local;
        }
        if port_addrs != self.port_addrs {
            self.port_addrs = port_addrs;
            self.publish_ports();
        } else if self.shared.ports.load().any_v4.is_none() && self.shared.ports.load().any_v6.is_none() {
            self.publish_ports();
        }
    }

    fn kernel_events(&mut self, programmer: &mut Programmer) {
        loop {
            self.events.clear();
            match self.netlink.recv(&mut self.events) {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => {
                    self.stats.netlink_errors += 1;
                    break;
                }
            }
            let events = std::mem::take(&mut self.events);
            for e in &events {
                match e {
                    NeighborEvent::Neighbor(u) => {
                        // Multicast "neighbours" (the kernel's NOARP entries for groups it
                        // joined) are never a next hop.
                        if !self.ifindexes.contains(&u.ifindex) || u.addr.is_multicast() {
                            continue;
                        }
                        let mac = u.usable_mac();
                        match mac {
                            Some(m) => self.kernel.insert((u.ifindex, u.addr), m),
                            None => self.kernel.remove(&(u.ifindex, u.addr)),
                        };
                        if let Some(port) = self.control_port_of_ifindex(u.ifindex) {
                            self.learn(programmer, port, u.addr, mac);
                        }
                    }
                    NeighborEvent::Overrun => {
                        let _ = self.netlink.request_neighbor_dump();
                    }
                    NeighborEvent::Error(_) => self.stats.netlink_errors += 1,
                    NeighborEvent::DumpDone => {}
                }
            }
            self.events = events;
        }
    }

    /// A neighbour's MAC became known or changed (`Some`), or it stopped being usable.
    fn learn(&mut self, programmer: &mut Programmer, port: u16, addr: IpAddr, mac: Option<[u8; 6]>) {
        match mac {
            Some(mac) => {
                if self.cache.set(port, addr, mac).is_err() {
                    self.stats.cache_full += 1;
                    return;
                }
                self.stats.resolved += 1;
                self.asked.remove(&(port, addr));
                programmer.set_neighbor(port, addr, Some(mac));
            }
            None => {
                if self.cache.remove(port, addr) {
                    self.stats.failed += 1;
                }
                self.unused.remove(&(port, addr));
                programmer.set_neighbor(port, addr, None);
            }
        }
    }

    /// After the port numbering changed: the cache again holds exactly the kernel's usable
    /// neighbours under their current control port numbers.
    fn resync_cache(&mut self, programmer: &mut Programmer) {
        let mut stale = Vec::new();
        self.cache.for_each(|port, addr, _| stale.push((port, addr)));
        for (port, addr) in stale {
            let still = self
                .ifindex_of_control_port(port)
                .and_then(|ifi| self.kernel.get(&(ifi, addr)));
            if still.is_none() {
                self.learn(programmer, port, addr, None);
            }
        }
        let known: Vec<_> = self.kernel.iter().map(|(k, m)| (*k, *m)).collect();
        for ((ifindex, addr), mac) in known {
            if let Some(port) = self.control_port_of_ifindex(ifindex) {
                self.learn(programmer, port, addr, Some(mac));
            }
        }
    }

    fn worker_requests(&mut self, programmer: &mut Programmer) {
        let now = Instant::now();
        for i in 0..self.requests.len() {
            while let Some(r) = self.requests.get_mut(i).and_then(|c| c.pop()) {
                let Some((port, addr)) = decode_request(r) else {
                    continue;
                };
                self.stats.requests += 1;
                self.ask(programmer, port, addr, now);
            }
        }
        if self.asked.len() > 4096 {
            self.asked.retain(|_, t| now.duration_since(*t) < ASK_INTERVAL);
        }
    }

    fn ask(&mut self, programmer: &mut Programmer, port: u16, addr: IpAddr, now: Instant) {
        if self
            .asked
            .get(&(port, addr))
            .is_some_and(|t| now.duration_since(*t) < ASK_INTERVAL)
        {
            return;
        }
        let Some(ifindex) = self.ifindex_of_control_port(port) else {
            return;
        };
        self.asked.insert((port, addr), now);
        if let Some(&mac) = self.kernel.get(&(ifindex, addr)) {
            // Already known to the kernel (it will not send an event): serve it now, and
            // still ask so that a stale entry gets re-confirmed.
            self.learn(programmer, port, addr, Some(mac));
        }
        self.stats.kernel_asks += 1;
        if self.netlink.resolve(ifindex, addr).is_err() {
            self.stats.netlink_errors += 1;
        }
    }

    /// Asks the kernel again about every neighbour used since the last period (it re-probes
    /// stale ones); forgets neighbours unused for [`UNUSED_PERIODS`].
    fn refresh(&mut self, programmer: &mut Programmer) {
        let mut keys = Vec::new();
        self.cache.for_each(|port, addr, _| keys.push((port, addr)));
        let now = Instant::now();
        for (port, addr) in keys {
            if self.cache.take_used(port, addr) || programmer.neighbor_in_use(port, addr) {
                self.unused.remove(&(port, addr));
                self.asked.remove(&(port, addr));
                self.ask(programmer, port, addr, now);
            } else {
                let n = self.unused.entry((port, addr)).or_insert(0);
                *n += 1;
                if *n >= UNUSED_PERIODS {
                    self.unused.remove(&(port, addr));
                    self.cache.remove(port, addr);
                    programmer.set_neighbor(port, addr, None);
                }
            }
        }
    }

    /// Frames each port's XDP program passed to the kernel (the router's own traffic, ARP,
    /// ND, multicast; and transit on a queue without a socket) become the port's `to_kernel`
    /// counter, in the slow path's own stats slot.
    fn publish_xdp_counters(&mut self) {
        let words = self.shared.stats.stats_words();
        for (i, prog) in self.programs.iter().enumerate() {
            let Ok(c) = prog.counters() else { continue };
            let Some(port) = self
                .names
                .get(i)
                .and_then(|n| self.control_ports.iter().find(|(_, s)| &s.name_str() == n))
                .and_then(|(p, _)| usize::try_from(*p).ok())
            else {
                continue;
            };
            let to_kernel =
                c[xroute_bpf::Counter::ToKernel as usize] + c[xroute_bpf::Counter::NoSocket as usize];
            let at = xroute_common::stats::slot_offset(SLOW_PATH_SLOT, port)
                + xroute_common::stats::counter::TO_KERNEL;
            if let Some(w) = words.get(at) {
                w.store(to_kernel, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// Detaches the XDP programs (traffic goes to the kernel again).
    pub fn detach(self) {
        for p in self.programs {
            p.detach();
        }
    }
}
