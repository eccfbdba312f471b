//! One forwarding worker: pinned to its core, it owns a UMEM, a socket on one queue of every
//! port, its transmit batches, its hold queue and its counters, and runs
//! RX burst -> [`forward_batch`] -> per-verdict action -> batched TX, with nothing shared on
//! the per-packet path but the FIB's lock-free readers and the neighbour cache.
//!
//! Per verdict:
//! - `Tx`: the frame (already rewritten) goes on this worker's socket of the egress port;
//! - `Resolve`: the neighbour cache gives the MAC (connected hosts, or a gateway the FIB's
//!   adjacency has not caught up with) and the frame goes out, or it waits in the hold queue
//!   while the slow path asks the kernel to resolve the neighbour;
//! - `Fragment`: the packet is cut into fresh frames ([`Fragmenter`]);
//! - `Icmp`: within the rate limit the frame itself is rewritten into the ICMP error and sent
//!   back out of the port it came in on, to the MAC it came from;
//! - `Drop`, `ToKernel`: the frame is freed and counted.
//!
//! Counters live in the worker (plain integers) and are copied into the shared stats segment
//! every few milliseconds: only this worker writes its slots, so stores suffice.

use super::ports::{PortTable, SharedPorts};
use super::ring;
use crate::fib::{FibReader, FibView};
use crate::neighbor::{Hold, HoldQueues, NeighborCacheReader};
use crate::packet::wire::EthernetFrame;
use crate::packet::{build_icmp_error, forward_batch, Fragmenter, IcmpKind, Scratch, Verdict, MAX_BATCH};
use crate::xsk::{Desc, PollSet, Umem, XskSocket, XskStats};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use xroute_common::shm::ChannelFile;
use xroute_common::stats::{self, counter, DropReason, MAX_PORTS, SLOT_WORDS};

/// A resolve request to the slow path: `[port, family (4 or 6), address high, address low]`.
pub type RequestProducer = ring::Producer<4>;
pub type RequestConsumer = ring::Consumer<4>;

/// Encodes a resolve request.
pub fn encode_request(port: u16, addr: IpAddr) -> [u64; 4] {
    match addr {
        IpAddr::V4(a) => [u64::from(port), 4, 0, u64::from(u32::from(a))],
        IpAddr::V6(a) => {
            let v = u128::from(a);
            [u64::from(port), 6, (v >> 64) as u64, v as u64]
        }
    }
}

/// Decodes a resolve request (`None` for a malformed record).
pub fn decode_request(r: [u64; 4]) -> Option<(u16, IpAddr)> {
    let port = u16::try_from(r[0]).ok()?;
    match r[1] {
        4 => Some((port, IpAddr::from(u32::try_from(r[3]).ok()?.to_be_bytes()))),
        6 => Some((
            port,
            IpAddr::from(((u128::from(r[2]) << 64) | u128::from(r[3])).to_be_bytes()),
        )),
        _ => None,
    }
}

/// What the workers share with each other and the slow path.
#[derive(Debug)]
pub struct Shared {
    pub stop: AtomicBool,
    pub ports: SharedPorts,
    pub neighbors: NeighborCacheReader,
    pub stats: Arc<ChannelFile>,
    pub icmp_rate: u32,
    pub spin_rounds: u32,
    pub hash_seed: u64,
}

/// Everything a worker is built from (created on the main thread, moved to the worker's).
#[derive(Debug)]
pub struct WorkerParts {
    /// Stats slot (core) index.
    pub index: usize,
    pub cpu: Option<usize>,
    pub umem: Umem,
    pub sockets: Vec<XskSocket>,
    /// Engine port of each socket.
    pub socket_port: Vec<usize>,
    pub fib: FibReader,
    pub requests: RequestProducer,
}

/// A frame waiting for its next hop's MAC.
#[derive(Clone, Copy, Debug)]
struct Held {
    addr: u64,
    len: u32,
    /// Control port numbers: where it goes, where it came from (for the counters).
    egress: u16,
    ingress: Option<u16>,
    /// The socket it arrived on (where a host unreachable goes if resolution fails).
    socket: u16,
    /// Non-zero: fragment to this MTU once resolved.
    frag_mtu: u16,
}

/// ICMP errors allowed now: a token bucket refilled `rate` per second, holding at most a
/// tenth of a second's worth (at least 10), as RFC 1812 4.3.2.8 asks routers to limit.
#[derive(Debug)]
struct TokenBucket {
    rate: u64,
    burst: u64,
    tokens: u64,
    last_ms: u64,
}

impl TokenBucket {
    fn new(rate: u32) -> Self {
        let rate = u64::from(rate);
        let burst = (rate / 10).max(10);
        Self {
            rate,
            burst,
            tokens: burst,
            last_ms: 0,
        }
    }

    fn take(&mut self, now_ms: u64) -> bool {
        if self.rate == 0 {
            return false;
        }
        let elapsed = now_ms.saturating_sub(self.last_ms);
        let add = elapsed.saturating_mul(self.rate) / 1000;
        if add > 0 {
            self.tokens = (self.tokens + add).min(self.burst);
            self.last_ms = now_ms;
        }
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            false
        }
    }
}

/// This worker's counters, by control port number, in the stats layout.
#[derive(Debug)]
struct Counters {
    slots: Box<[[u64; SLOT_WORDS]]>,
    touched: u64,
}

impl Counters {
    fn new() -> Self {
        Self {
            slots: vec![[0; SLOT_WORDS]; MAX_PORTS].into_boxed_slice(),
            touched: 0,
        }
    }

    #[inline]
    fn add(&mut self, port: Option<u16>, word: usize, n: u64) {
        let Some(p) = port else { return };
        if let Some(w) = self.slots.get_mut(usize::from(p)).and_then(|s| s.get_mut(word)) {
            *w += n;
            self.touched |= 1u64 << (p & 63);
        }
    }

    #[inline]
    fn drop(&mut self, port: Option<u16>, reason: DropReason) {
        self.add(port, counter::DROPS + reason as usize, 1);
    }

    /// Copies the touched slots into the stats segment (only this worker writes them).
    fn publish(&mut self, core: usize, segment: &[std::sync::atomic::AtomicU64]) {
        let mut t = self.touched;
        while t != 0 {
            let p = t.trailing_zeros() as usize;
            t &= t - 1;
            let base = stats::slot_offset(core, p);
            if let (Some(slot), Some(words)) = (self.slots.get(p), segment.get(base..base + SLOT_WORDS)) {
                for (w, v) in words.iter().zip(slot) {
                    w.store(*v, Ordering::Relaxed);
                }
            }
        }
        self.touched = 0;
    }
}

/// Per-socket transmit batch.
#[derive(Debug)]
struct TxQueue {
    descs: Vec<Desc>,
    ports: Vec<u16>,
}

const TX_BATCH: usize = 256;
/// Unresolved neighbours a worker holds frames for, and frames per neighbour.
const HOLD_NEIGHBORS: usize = 256;
const HOLD_PER_NEIGHBOR: usize = 4;
/// Most fragments one packet becomes (a 9000-byte jumbo frame cut for the 68-byte minimum
/// MTU needs 186).
const MAX_FRAGMENTS: usize = 192;
/// Bytes of an untagged Ethernet header.
const ETH_HEADER: usize = 14;

/// Runs a worker until `shared.stop` is set. Consumes the parts; the sockets are closed on
/// return.
pub fn run(parts: WorkerParts, shared: Arc<Shared>) {
    if let Some(cpu) = parts.cpu {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
            eprintln!(
                "xroute-engine: worker {}: could not pin to CPU {cpu}",
                parts.index
            );
        }
    }
    let mut w = Worker::new(parts, shared);
    w.run();
    w.shutdown();
}

struct Worker {
    index: usize,
    umem: Umem,
    sockets: Vec<XskSocket>,
    socket_port: Vec<usize>,
    fib: FibReader,
    requests: RequestProducer,
    shared: Arc<Shared>,
    ports: Arc<PortTable>,
    ports_gen: u64,
    /// Per engine port: the socket this worker transmits on.
    tx_socket: Vec<Option<usize>>,
    txq: Vec<TxQueue>,
    scratch: Box<Scratch>,
    descs: [Desc; MAX_BATCH],
    verdicts: [Verdict; MAX_BATCH],
    hold: HoldQueues<Held>,
    /// What one poll of the hold queues gave back: the MAC, or `None` when it expired.
    released: Vec<(Held, Option<[u8; 6]>)>,
    icmp: TokenBucket,
    counters: Counters,
    /// A copy of a frame being turned into an ICMP error or fragments.
    copy: Box<[u8]>,
    poll: PollSet,
    started: Instant,
    now_ms: u64,
    /// Per socket: the kernel's drop counters (`XDP_STATISTICS`) as last counted.
    kernel_drops: Vec<KernelDrops>,
}

/// Frames the kernel dropped before they reached a socket's receive ring, cumulative.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct KernelDrops {
    ring_full: u64,
    fill_empty: u64,
}

impl KernelDrops {
    fn of(s: &XskStats) -> Self {
        Self {
            ring_full: s.rx_ring_full,
            fill_empty: s.rx_dropped,
        }
    }
}

/// How often (ms) a worker reads its sockets' kernel counters: one getsockopt per socket.
const KERNEL_DROPS_EVERY_MS: u64 = 64;

impl Worker {
    fn new(p: WorkerParts, shared: Arc<Shared>) -> Self {
        let ports = shared.ports.load();
        let ports_gen = shared.ports.generation();
        let n_ports = p.socket_port.iter().copied().max().map_or(0, |m| m + 1);
        let mut tx_socket = vec![None; n_ports];
        for (s, &port) in p.socket_port.iter().enumerate() {
            if let Some(slot) = tx_socket.get_mut(port) {
                slot.get_or_insert(s);
            }
        }
        let mut poll = PollSet::default();
        for s in &p.sockets {
            poll.add(s.raw_fd());
        }
        let txq = p
            .sockets
            .iter()
            .map(|_| TxQueue {
                descs: Vec::with_capacity(TX_BATCH),
                ports: Vec::with_capacity(TX_BATCH),
            })
            .collect();
        let frame_size = p.umem.frame_size() as usize;
        let p_sockets_len = p.sockets.len();
        Self {
            index: p.index,
            umem: p.umem,
            sockets: p.sockets,
            socket_port: p.socket_port,
            fib: p.fib,
            requests: p.requests,
            icmp: TokenBucket::new(shared.icmp_rate),
            scratch: Box::new(Scratch::new(shared.hash_seed)),
            shared,
            ports,
            ports_gen,
            tx_socket,
            txq,
            descs: [Desc::default(); MAX_BATCH],
            verdicts: [Verdict::ToKernel; MAX_BATCH],
            hold: HoldQueues::new(HOLD_NEIGHBORS, HOLD_PER_NEIGHBOR, 3_000, 1_000),
            released: Vec::with_capacity(HOLD_NEIGHBORS * HOLD_PER_NEIGHBOR),
            counters: Counters::new(),
            copy: vec![0u8; frame_size].into_boxed_slice(),
            kernel_drops: vec![KernelDrops::default(); p_sockets_len],
            poll,
            started: Instant::now(),
            now_ms: 0,
        }
    }

    fn run(&mut self) {
        let mut idle: u32 = 0;
        let mut last_housekeeping = 0u64;
        for s in 0..self.sockets.len() {
            self.refill(s);
        }
        while !self.shared.stop.load(Ordering::Relaxed) {
            let gen = self.shared.ports.generation();
            if gen != self.ports_gen {
                self.ports_gen = gen;
                self.ports = self.shared.ports.load();
            }
            let mut got = 0;
            for s in 0..self.sockets.len() {
                got += self.rx_burst(s);
                self.refill(s);
            }
            self.flush_tx();
            self.now_ms = self.started.elapsed().as_millis() as u64;
            if self.now_ms != last_housekeeping {
                last_housekeeping = self.now_ms;
                self.poll_held();
                if self.now_ms % KERNEL_DROPS_EVERY_MS == 0 {
                    self.count_kernel_drops();
                }
                if self.now_ms % 8 == 0 {
                    self.counters.publish(self.index, self.shared.stats.stats_words());
                }
            }
            if got > 0 {
                idle = 0;
                continue;
            }
            idle = idle.saturating_add(1);
            // Sleep until traffic arrives (or 1 ms, for the hold queue's timers), unless frames
            // are on their way out: spinning on a core the kernel's receive processing shares
            // would take time from it.
            if idle > self.shared.spin_rounds && self.tx_idle() {
                for s in &self.sockets {
                    let _ = s.wake_rx_if_needed();
                }
                self.counters.publish(self.index, self.shared.stats.stats_words());
                let _ = self.poll.wait(1);
            }
        }
    }

    /// Adds what the kernel dropped on each socket since the last look to the ingress port's
    /// counters, so that frames lost before the worker saw them are counted too.
    fn count_kernel_drops(&mut self) {
        for (s, sock) in self.sockets.iter().enumerate() {
            let Ok(now) = sock.stats() else { continue };
            let now = KernelDrops::of(&now);
            let Some(seen) = self.kernel_drops.get_mut(s) else {
                continue;
            };
            let port = self.socket_port.get(s).copied().unwrap_or(0);
            let control = self.ports.ports.get(port).and_then(|p| p.control);
            let reasons = [
                (
                    DropReason::RxRingFull,
                    now.ring_full.saturating_sub(seen.ring_full),
                ),
                (
                    DropReason::RxFillEmpty,
                    now.fill_empty.saturating_sub(seen.fill_empty),
                ),
            ];
            for (reason, n) in reasons {
                if n > 0 {
                    self.counters.add(control, counter::DROPS + reason as usize, n);
                }
            }
            *seen = now;
        }
    }

    fn tx_idle(&self) -> bool {
        self.sockets.iter().all(|s| s.tx_in_flight() == 0) && self.txq.iter().all(|q| q.descs.is_empty())
    }

    /// Keeps the socket's fill ring stocked from the free frames.
    fn refill(&mut self, s: usize) {
        if let Some(sock) = self.sockets.get_mut(s) {
            if sock.fill_free(MAX_BATCH as u32) >= MAX_BATCH as u32 {
                let free = sock.fill_free(sock.fill_size()) as usize;
                let _ = sock.fill(&mut self.umem, free);
            }
        }
    }

    /// One receive burst on socket `s`: returns the frames received.
    fn rx_burst(&mut self, s: usize) -> usize {
        let Some(sock) = self.sockets.get_mut(s) else {
            return 0;
        };
        let n = match sock.recv(&mut self.umem, &mut self.descs) {
            Ok(n) => n,
            Err(_) => return 0,
        };
        if n == 0 {
            return 0;
        }
        let ingress_port = self.socket_port.get(s).copied().unwrap_or(0);
        let ingress = self.ports.ports.get(ingress_port).and_then(|p| p.control);
        let bytes: u64 = self.descs.iter().take(n).map(|d| u64::from(d.len)).sum();
        self.counters.add(ingress, counter::RX_PACKETS, n as u64);
        self.counters.add(ingress, counter::RX_BYTES, bytes);

        let mapped = {
            let mut bufs: [&mut [u8]; MAX_BATCH] = std::array::from_fn(|_| <&mut [u8]>::default());
            let descs = self.descs.get(..n).unwrap_or_default();
            let m = self.umem.frames_mut(descs, &mut bufs);
            let view = self.fib.view();
            let frames = bufs.get_mut(..m).unwrap_or_default();
            forward_batch(frames, &view, &mut self.verdicts, &mut self.scratch)
        };
        let view = self.fib.view();
        for i in 0..n {
            let (Some(&d), Some(&v)) = (self.descs.get(i), self.verdicts.get(i)) else {
                break;
            };
            if i >= mapped {
                // Not lendable (cannot happen for frames just received): give it back.
                let _ = self.umem.free(d.addr);
                self.counters.drop(ingress, DropReason::Truncated);
                continue;
            }
            // Field by field, not `self.ctx()`: the FIB view borrows `self.fib` meanwhile.
            handle(
                Ctx {
                    umem: &mut self.umem,
                    txq: &mut self.txq,
                    tx_socket: &self.tx_socket,
                    ports: &self.ports,
                    counters: &mut self.counters,
                    hold: &mut self.hold,
                    requests: &mut self.requests,
                    neighbors: &self.shared.neighbors,
                    icmp: &mut self.icmp,
                    copy: &mut self.copy,
                    now_ms: self.now_ms,
                },
                &view,
                d,
                v,
                s,
                ingress_port,
                ingress,
            );
        }
        n
    }

    /// The per-frame context: everything a verdict's handling may touch, borrowed from the
    /// worker.
    fn ctx(&mut self) -> Ctx<'_> {
        Ctx {
            umem: &mut self.umem,
            txq: &mut self.txq,
            tx_socket: &self.tx_socket,
            ports: &self.ports,
            counters: &mut self.counters,
            hold: &mut self.hold,
            requests: &mut self.requests,
            neighbors: &self.shared.neighbors,
            icmp: &mut self.icmp,
            copy: &mut self.copy,
            now_ms: self.now_ms,
        }
    }

    /// Releases frames whose neighbour got resolved, expires the ones that waited too long,
    /// and re-asks for the ones still pending.
    fn poll_held(&mut self) {
        if self.hold.is_empty() {
            return;
        }
        let neighbors = &self.shared.neighbors;
        let requests = &mut self.requests;
        self.released.clear();
        let out = std::cell::RefCell::new(&mut self.released);
        self.hold.poll(
            self.now_ms,
            |port, addr| neighbors.get(port, addr),
            |h, mac| out.borrow_mut().push((h, Some(mac))),
            |h| out.borrow_mut().push((h, None)),
            |port, addr| {
                let _ = requests.push(encode_request(port, addr));
            },
        );
        let released = std::mem::take(&mut self.released);
        for &(h, mac) in &released {
            let d = Desc {
                addr: h.addr,
                len: h.len,
                options: 0,
            };
            let Some(mac) = mac else {
                // The next hop never answered: host unreachable to the sender (RFC 1812
                // 4.3.3.1 suggests it), within the ICMP rate limit.
                self.counters.drop(h.ingress, DropReason::NeighborFailed);
                let socket = usize::from(h.socket);
                let ingress_port = self.socket_port.get(socket).copied().unwrap_or(0);
                if self.icmp.take(self.now_ms) {
                    let mut ctx = self.ctx();
                    ctx.icmp_reply(d, IcmpKind::HostUnreachable, socket, ingress_port, h.ingress);
                } else {
                    let _ = self.umem.free(h.addr);
                }
                continue;
            };
            let mut ctx = self.ctx();
            let src = ctx
                .ports
                .engine_port(h.egress)
                .and_then(|p| ctx.ports.ports.get(p))
                .map_or([0; 6], |p| p.mac);
            if h.frag_mtu > 0 {
                ctx.fragment(d, h.frag_mtu, h.egress, h.ingress, mac, src);
            } else if ctx.set_macs(d, mac, src) {
                ctx.enqueue(d, h.egress, h.ingress);
            }
        }
        self.released = released;
    }

    /// Sends every queued batch, kicks the kernel, and takes back completed frames.
    fn flush_tx(&mut self) {
        for (s, q) in self.txq.iter_mut().enumerate() {
            let Some(sock) = self.sockets.get_mut(s) else {
                continue;
            };
            let _ = sock.recycle(&mut self.umem, 4 * TX_BATCH);
            if q.descs.is_empty() {
                continue;
            }
            let mut sent = sock.send(&mut self.umem, &q.descs).unwrap_or(0);
            if sent < q.descs.len() {
                // Ring full: let the kernel drain it once, then give up on the rest.
                let _ = sock.flush_tx();
                let _ = sock.recycle(&mut self.umem, 4 * TX_BATCH);
                if let Some(rest) = q.descs.get(sent..) {
                    sent += sock.send(&mut self.umem, rest).unwrap_or(0);
                }
            }
            for (i, (d, &port)) in q.descs.iter().zip(&q.ports).enumerate() {
                if i < sent {
                    self.counters.add(Some(port), counter::TX_PACKETS, 1);
                    self.counters.add(Some(port), counter::TX_BYTES, u64::from(d.len));
                } else {
                    let _ = self.umem.free(d.addr);
                    self.counters.drop(Some(port), DropReason::TxRingFull);
                }
            }
            q.descs.clear();
            q.ports.clear();
            let _ = sock.flush_tx();
        }
    }

    fn shutdown(mut self) {
        self.flush_tx();
        let umem = &mut self.umem;
        self.hold.drain(|h| {
            let _ = umem.free(h.addr);
        });
        self.counters.touched = u64::MAX;
        self.counters.publish(self.index, self.shared.stats.stats_words());
        for s in std::mem::take(&mut self.sockets) {
            let _ = s.close(&mut self.umem);
        }
    }
}

/// The parts of a worker one verdict needs (split from the FIB reader, whose view is live).
struct Ctx<'a> {
    umem: &'a mut Umem,
    txq: &'a mut [TxQueue],
    tx_socket: &'a [Option<usize>],
    ports: &'a PortTable,
    counters: &'a mut Counters,
    hold: &'a mut HoldQueues<Held>,
    requests: &'a mut RequestProducer,
    neighbors: &'a NeighborCacheReader,
    icmp: &'a mut TokenBucket,
    copy: &'a mut [u8],
    now_ms: u64,
}

#[allow(clippy::too_many_arguments)]
fn handle(
    mut c: Ctx<'_>,
    view: &FibView<'_>,
    d: Desc,
    v: Verdict,
    socket: usize,
    ingress_port: usize,
    ingress: Option<u16>,
) {
    match v {
        Verdict::Tx { port } => c.enqueue(d, port, ingress),
        Verdict::Drop(r) => c.discard(d, ingress, r),
        // The XDP program passes the router's own traffic to the kernel before it gets here;
        // what still arrives (its address list lagging) cannot be handed to the kernel.
        Verdict::ToKernel => c.discard(d, ingress, DropReason::LocalMissed),
        Verdict::Icmp { kind, reason } => {
            if !c.icmp.take(c.now_ms) {
                c.discard(d, ingress, DropReason::IcmpRateLimited);
                return;
            }
            c.counters.drop(ingress, reason);
            c.icmp_reply(d, kind, socket, ingress_port, ingress);
        }
        Verdict::Resolve {
            port,
            next_hop,
            adjacency,
        } => {
            let src = view.adjacency(adjacency).map(|a| a.src_mac);
            match (c.neighbors.get(port, next_hop), src) {
                (Some(mac), Some(src)) => {
                    if c.set_macs(d, mac, src) {
                        c.enqueue(d, port, ingress);
                    }
                }
                (None, Some(_)) => c.hold_frame(d, port, next_hop, (socket, ingress), 0),
                (_, None) => c.discard(d, ingress, DropReason::PortDown),
            }
        }
        Verdict::Fragment { port, mtu, adjacency } => {
            let Some(adj) = view.adjacency(adjacency) else {
                c.discard(d, ingress, DropReason::PortDown);
                return;
            };
            let next_hop = adj.next_hop.or_else(|| c.ipv4_destination(d));
            let mac = adj
                .dst_mac
                .or_else(|| next_hop.and_then(|nh| c.neighbors.get(port, nh)));
            match (mac, next_hop) {
                (Some(mac), _) => c.fragment(d, mtu, port, ingress, mac, adj.src_mac),
                (None, Some(nh)) => c.hold_frame(d, port, nh, (socket, ingress), mtu),
                (None, None) => c.discard(d, ingress, DropReason::Truncated),
            }
        }
    }
}

impl Ctx<'_> {
    #[inline]
    fn discard(&mut self, d: Desc, ingress: Option<u16>, reason: DropReason) {
        let _ = self.umem.free(d.addr);
        self.counters.drop(ingress, reason);
    }

    /// Queues a ready frame on this worker's socket of control port `port`.
    #[inline]
    fn enqueue(&mut self, d: Desc, port: u16, ingress: Option<u16>) {
        let socket = self
            .ports
            .engine_port(port)
            .and_then(|p| self.tx_socket.get(p).copied().flatten());
        match socket.and_then(|s| self.txq.get_mut(s)) {
            Some(q) if q.descs.len() < TX_BATCH * 4 => {
                q.descs.push(d);
                q.ports.push(port);
            }
            Some(_) => self.discard(d, ingress, DropReason::TxRingFull),
            // Not a port of this engine (the control process routes via an interface the
            // engine was not started on).
            None => self.discard(d, ingress, DropReason::PortDown),
        }
    }

    /// Writes the destination and source MACs; false (frame freed) if it cannot be read.
    fn set_macs(&mut self, d: Desc, dst: [u8; 6], src: [u8; 6]) -> bool {
        match self.umem.frame_mut(d.addr, d.len as usize) {
            Some(f) if f.len() >= ETH_HEADER => {
                let mut eth = EthernetFrame::new_unchecked(f);
                eth.set_dst_addr(dst);
                eth.set_src_addr(src);
                true
            }
            _ => {
                let _ = self.umem.free(d.addr);
                false
            }
        }
    }

    fn hold_frame(
        &mut self,
        d: Desc,
        port: u16,
        next_hop: IpAddr,
        from: (usize, Option<u16>),
        frag_mtu: u16,
    ) {
        let (socket, ingress) = from;
        let h = Held {
            addr: d.addr,
            len: d.len,
            egress: port,
            ingress,
            socket: socket as u16,
            frag_mtu,
        };
        match self.hold.hold(port, next_hop, h, self.now_ms) {
            Hold::Held { first } => {
                if first && !self.requests.push(encode_request(port, next_hop)) {
                    // The slow path is behind; the hold queue's retry asks again.
                    self.counters.drop(ingress, DropReason::HandoffRingFull);
                }
            }
            Hold::QueueFull(h) | Hold::TableFull(h) => {
                self.discard(
                    Desc {
                        addr: h.addr,
                        len: h.len,
                        options: 0,
                    },
                    ingress,
                    DropReason::NeighborHoldFull,
                );
            }
        }
    }

    /// The IPv4 destination of a frame (connected route: the packet's destination is the
    /// neighbour).
    fn ipv4_destination(&self, d: Desc) -> Option<IpAddr> {
        let f = self.umem.frame(d.addr, d.len as usize)?;
        let eth = EthernetFrame::new_checked(f).ok()?;
        let ip = crate::packet::wire::Ipv4Packet::new_checked(eth.payload()).ok()?;
        Some(IpAddr::V4(ip.dst_addr()))
    }

    /// Cuts an IPv4 packet into fragments for `mtu`, each in its own frame with the given MACs.
    fn fragment(&mut self, d: Desc, mtu: u16, port: u16, ingress: Option<u16>, dst: [u8; 6], src: [u8; 6]) {
        // The copy buffer is lent out of `self` while the fragments are written from it.
        let copy = std::mem::take(&mut self.copy);
        self.fragment_from(&mut *copy, d, mtu, port, ingress, (dst, src));
        self.copy = copy;
    }

    fn fragment_from(
        &mut self,
        copy: &'_ mut [u8],
        d: Desc,
        mtu: u16,
        port: u16,
        ingress: Option<u16>,
        (dst, src): ([u8; 6], [u8; 6]),
    ) {
        let len = d.len as usize;
        let copied = match (self.umem.frame(d.addr, len), copy.get_mut(..len)) {
            (Some(f), Some(c)) => {
                c.copy_from_slice(f);
                true
            }
            _ => false,
        };
        let _ = self.umem.free(d.addr);
        if !copied {
            self.counters.drop(ingress, DropReason::Truncated);
            return;
        }
        let original: &[u8] = copy.get(..len).unwrap_or_default();
        let frag = match Fragmenter::new(original, mtu) {
            Ok(f) => f,
            Err(e) => {
                self.counters.drop(ingress, e.drop_reason());
                return;
            }
        };
        // All frames first: a partial set of fragments is useless to the receiver.
        let n = frag.count();
        let mut addrs = [0u64; MAX_FRAGMENTS];
        let Some(addrs) = addrs.get_mut(..n) else {
            self.counters.drop(ingress, DropReason::TooBig);
            return;
        };
        let got = self.umem.alloc_batch(addrs);
        if got < n {
            for a in addrs.iter().take(got) {
                let _ = self.umem.free(*a);
            }
            self.counters.drop(ingress, DropReason::NoFrame);
            return;
        }
        let frame_size = self.umem.frame_size() as usize;
        for (i, &addr) in addrs.iter().enumerate() {
            let written = self
                .umem
                .frame_mut(addr, frame_size)
                .and_then(|buf| frag.write(i, buf));
            let Some(flen) = written else {
                let _ = self.umem.free(addr);
                self.counters.drop(ingress, DropReason::TooBig);
                continue;
            };
            let fd = Desc {
                addr,
                len: flen as u32,
                options: 0,
            };
            if self.set_macs(fd, dst, src) {
                self.enqueue(fd, port, ingress);
            }
        }
    }

    /// Rewrites the frame into the ICMP error `kind` about it and queues it back out of the
    /// port it arrived on, to the MAC it came from.
    fn icmp_reply(
        &mut self,
        d: Desc,
        kind: IcmpKind,
        socket: usize,
        ingress_port: usize,
        ingress: Option<u16>,
    ) {
        let len = d.len as usize;
        let Some(port) = self.ports.ports.get(ingress_port) else {
            let _ = self.umem.free(d.addr);
            return;
        };
        let Some(original) = self.umem.frame(d.addr, len) else {
            let _ = self.umem.free(d.addr);
            return;
        };
        let Ok(eth) = EthernetFrame::new_checked(original) else {
            let _ = self.umem.free(d.addr);
            return;
        };
        let l2 = eth.header_len();
        let v6 = eth.payload_ethertype() == crate::packet::wire::ethertype::IPV6;
        let router: Option<IpAddr> = if v6 {
            port.v6.or(self.ports.any_v6).map(IpAddr::V6)
        } else {
            port.v4.or(self.ports.any_v4).map(IpAddr::V4)
        };
        let (Some(router), Some(copy)) = (router, self.copy.get_mut(..len)) else {
            let _ = self.umem.free(d.addr);
            return;
        };
        copy.copy_from_slice(original);
        let room = self.umem.frame_size() as usize - (d.addr - self.umem.frame_base(d.addr)) as usize;
        let Some(out) = self.umem.frame_mut(d.addr, room) else {
            let _ = self.umem.free(d.addr);
            return;
        };
        let quoted = self.copy.get(..len).unwrap_or_default();
        let built = out
            .get_mut(l2..)
            .and_then(|ip| build_icmp_error(quoted, kind, router, ip));
        let Some(ip_len) = built else {
            // Not answerable (an ICMP error itself, a non-first fragment, a martian source).
            let _ = self.umem.free(d.addr);
            return;
        };
        // Same link-layer header (VLAN tag included), addresses swapped.
        if let (Some(hdr), Some(orig)) = (out.get_mut(..l2), quoted.get(..l2)) {
            hdr.copy_from_slice(orig);
            let mut e = EthernetFrame::new_unchecked(hdr);
            let from = EthernetFrame::new_unchecked(orig);
            e.set_dst_addr(from.src_addr());
            e.set_src_addr(port.mac);
        }
        let reply = Desc {
            addr: d.addr,
            len: (l2 + ip_len) as u32,
            options: 0,
        };
        match (ingress, self.txq.get_mut(socket)) {
            (Some(p), Some(q)) if q.descs.len() < TX_BATCH * 4 => {
                q.descs.push(reply);
                q.ports.push(p);
            }
            _ => {
                let _ = self.umem.free(d.addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        for addr in ["192.0.2.1", "2001:db8::1", "0.0.0.0", "ffff::ffff"] {
            let a: IpAddr = addr.parse().unwrap();
            assert_eq!(decode_request(encode_request(7, a)), Some((7, a)));
        }
        assert_eq!(decode_request([1, 5, 0, 0]), None);
        assert_eq!(decode_request([1 << 20, 4, 0, 1]), None);
        assert_eq!(decode_request([1, 4, 0, 1 << 40]), None);
    }

    #[test]
    fn icmp_bucket_limits_rate_and_burst() {
        let mut b = TokenBucket::new(100);
        let burst = (0..100).filter(|_| b.take(0)).count();
        assert_eq!(burst, 10, "a burst of a tenth of a second (at least 10)");
        assert!(!b.take(5), "5 ms earn nothing at 100/s");
        assert!(b.take(20), "20 ms earn two tokens");
        assert!(b.take(20));
        assert!(!b.take(20));
        let mut off = TokenBucket::new(0);
        assert!(!off.take(1000), "rate 0 disables ICMP errors");
    }

    #[test]
    fn counters_publish_only_into_this_workers_slots() {
        let mut c = Counters::new();
        c.add(Some(3), counter::RX_PACKETS, 5);
        c.drop(Some(3), DropReason::NoRoute);
        c.add(None, counter::RX_PACKETS, 100);
        let segment: Vec<std::sync::atomic::AtomicU64> = (0..stats::SEGMENT_WORDS)
            .map(|_| std::sync::atomic::AtomicU64::new(0))
            .collect();
        c.publish(2, &segment);
        let at = |core: usize, port: usize, w: usize| {
            segment[stats::slot_offset(core, port) + w].load(Ordering::Relaxed)
        };
        assert_eq!(at(2, 3, counter::RX_PACKETS), 5);
        assert_eq!(at(2, 3, counter::DROPS + DropReason::NoRoute as usize), 1);
        assert_eq!(at(0, 3, counter::RX_PACKETS), 0);
        let total: u64 = segment.iter().map(|w| w.load(Ordering::Relaxed)).sum();
        assert_eq!(total, 6);
    }
}
