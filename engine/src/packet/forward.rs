//! The per-batch forwarding decision (RFC 1812 section 5 for IPv4, RFC 8200 for IPv6), on
//! frames in memory. No I/O, no allocation, no locks, no logging: the worker hands in a batch of
//! received frames and gets one [`Verdict`] per frame back; it owns the rings, the counters,
//! the neighbour hold queues and the slow path.
//!
//! A batch goes through three passes, so that the FIB lookups run back to back and their cache
//! misses overlap (the IPv6 trie advances several lookups level by level):
//! 1. parse and validate each frame, sort out what is not routed (to the kernel, martians,
//!    malformed), compute the flow hash while the header is in cache, and queue the destination
//!    in the IPv4 or IPv6 lane;
//! 2. one batched lookup per lane;
//! 3. per routed packet: next-hop group member, adjacency, TTL, MTU, then the rewrite (TTL or
//!    hop limit decrement with an RFC 1624 checksum update, MAC addresses).
//!
//! # Decisions
//! - A frame with a [`Verdict::Icmp`] verdict is left exactly as received, so that
//!   [`super::icmp::build_icmp_error`] quotes the packet the sender sent. Frames with
//!   [`Verdict::Fragment`] or [`Verdict::Resolve`] have their TTL/hop limit already decremented
//!   (the IP header is forwarded); what remains is the slow path's fragmentation or the MAC
//!   rewrite once the neighbour is known.
//! - Link-local *destinations*: IPv6 fe80::/10 goes to the kernel (it can only be for the router
//!   itself: neighbour discovery, OSPFv3, BGP over link-local peering, and the kernel drops the
//!   rest); IPv4 169.254/16 is a martian (RFC 3927 section 2.7: never forwarded, and routers do
//!   not use it for their own addresses in practice). Link-local *sources* are martians in both
//!   families unless the destination already sent the packet to the kernel (RFC 3927 2.7, RFC
//!   4291 section 2.5.6). Destination checks come first, so that DHCP (0.0.0.0 to
//!   255.255.255.255) and IPv6 DAD (:: to a solicited-node group) reach the kernel.
//! - IPv4 options are forwarded untouched (not processed); IPv6 extension headers likewise
//!   (RFC 8200 section 4). Source-routed packets are therefore not honoured, only carried.
//! - A VLAN-tagged frame keeps its tag; the egress port's configuration decides tagging.
//! - ECMP hashes source, destination, protocol and, when the packet is not a fragment and the
//!   transport header follows the IP header directly, the ports. Every fragment of a datagram
//!   (the first one included) hashes without ports, so all fragments take the same path.

use super::wire::{ethertype, protocol, EthernetFrame, Ipv4Packet, Ipv6Packet, Ports};
use crate::fib::{AdjacencyId, AdjacencyKind, FibView, GroupId};
use std::net::IpAddr;
use xroute_common::stats::DropReason;

/// Frames per pass. Longer batches are processed in chunks of this size.
pub const MAX_BATCH: usize = 64;

/// Which ICMP error to answer with (the family comes from the packet).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IcmpKind {
    /// No route: ICMPv4 type 3 code 0 (net unreachable), ICMPv6 type 1 code 0 (no route to
    /// destination).
    NetUnreachable,
    /// An unreachable route: ICMPv4 type 3 code 1 (host unreachable), ICMPv6 type 1 code 3
    /// (address unreachable).
    HostUnreachable,
    /// TTL or hop limit exhausted in transit: ICMPv4 type 11 code 0, ICMPv6 type 3 code 0.
    TimeExceeded,
    /// Larger than the egress MTU: ICMPv4 type 3 code 4 with the next-hop MTU (RFC 1191),
    /// ICMPv6 type 2 (packet too big, RFC 4443 section 3.2).
    TooBig { mtu: u16 },
}

/// What to do with one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Rewritten (TTL/hop limit and MACs); send on `port`.
    Tx { port: u16 },
    /// Not for forwarding: ARP, other EtherTypes, multicast, broadcast, link-local IPv6,
    /// routes to the router's own addresses. Pass it to the kernel unchanged.
    ToKernel,
    /// Discard and count `reason`.
    Drop(DropReason),
    /// Discard, count `reason`, and (rate limit permitting) answer with
    /// [`super::icmp::build_icmp_error`] of `kind`. The frame is unchanged.
    Icmp { kind: IcmpKind, reason: DropReason },
    /// IPv4 without DF, larger than the egress `mtu`: cut it with
    /// [`Fragmenter`](super::Fragmenter), then write the MACs into each fragment. TTL already
    /// decremented; MACs not written.
    Fragment {
        port: u16,
        mtu: u16,
        adjacency: AdjacencyId,
    },
    /// The adjacency has no MAC for the neighbour `next_hop` on `port`: take it from the
    /// [`NeighborCacheReader`](crate::neighbor::NeighborCacheReader), or hold the frame
    /// ([`HoldQueues`](crate::neighbor::HoldQueues)) while the kernel resolves it (ARP or ND).
    /// TTL/hop limit already decremented; the source and destination MACs are written when the
    /// neighbour is known.
    Resolve {
        port: u16,
        next_hop: IpAddr,
        adjacency: AdjacencyId,
    },
}

impl Verdict {
    /// The drop counter this verdict bumps, if any.
    #[inline]
    pub fn drop_reason(&self) -> Option<DropReason> {
        match *self {
            Verdict::Drop(r) | Verdict::Icmp { reason: r, .. } => Some(r),
            _ => None,
        }
    }
}

/// What the address check says about a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressClass {
    /// Look it up and forward it.
    Route,
    /// The router's own kind of traffic (multicast, broadcast, IPv6 link-local).
    ToKernel,
    /// Never forwarded (RFC 1812 section 5.3.7, RFC 3927 2.7, RFC 4291 2.5.6).
    Martian,
}

/// 0/8 ("this network", RFC 791/1122), 127/8 (loopback), 240/4 (reserved, which includes
/// 255.255.255.255).
#[inline(always)]
const fn v4_reserved(a: u32) -> bool {
    let top = a >> 24;
    top == 0 || top == 127 || top >= 240
}

#[inline(always)]
const fn v4_multicast(a: u32) -> bool {
    a >> 28 == 0xe
}

#[inline(always)]
const fn v4_link_local(a: u32) -> bool {
    a >> 16 == 0xa9fe
}

/// A source a packet must never be forwarded from (or answered to).
#[inline(always)]
pub(super) const fn v4_martian_source(a: u32) -> bool {
    v4_reserved(a) || v4_multicast(a) || v4_link_local(a)
}

/// A destination that only the router itself may receive: limited broadcast, multicast.
#[inline(always)]
pub(super) const fn v4_kernel_destination(a: u32) -> bool {
    a == u32::MAX || v4_multicast(a)
}

/// Classifies an IPv4 packet by its addresses (host order). See the module docs for the order.
#[inline]
pub const fn classify_v4(src: u32, dst: u32) -> AddressClass {
    if v4_kernel_destination(dst) {
        return AddressClass::ToKernel;
    }
    if v4_reserved(dst) || v4_link_local(dst) || v4_martian_source(src) {
        return AddressClass::Martian;
    }
    AddressClass::Route
}

/// ::, ::1 and IPv4-mapped ::ffff:0:0/96 (RFC 4291 sections 2.5.2, 2.5.3, 2.5.5.2: never on
/// the wire as a forwarded address).
#[inline(always)]
const fn v6_reserved(a: u128) -> bool {
    a <= 1 || a >> 32 == 0xffff
}

#[inline(always)]
const fn v6_multicast(a: u128) -> bool {
    a >> 120 == 0xff
}

#[inline(always)]
const fn v6_link_local(a: u128) -> bool {
    a >> 118 == 0xfe80 >> 6
}

/// A source a packet must never be forwarded from (or answered to).
#[inline(always)]
pub(super) const fn v6_martian_source(a: u128) -> bool {
    v6_reserved(a) || v6_multicast(a) || v6_link_local(a)
}

/// A destination that only the router itself may receive: multicast, link-local.
#[inline(always)]
pub(super) const fn v6_kernel_destination(a: u128) -> bool {
    v6_multicast(a) || v6_link_local(a)
}

/// Classifies an IPv6 packet by its addresses (host order).
#[inline]
pub const fn classify_v6(src: u128, dst: u128) -> AddressClass {
    if v6_kernel_destination(dst) {
        return AddressClass::ToKernel;
    }
    if v6_reserved(dst) || v6_martian_source(src) {
        return AddressClass::Martian;
    }
    AddressClass::Route
}

// Flow hash: wyhash's multiply-fold (the 128-bit product of two 64-bit words, high half XOR low
// half) over the packed 5-tuple, then one more fold so that every input bit reaches the top
// bits, which the group's multiply-shift bucket choice uses. Two or three multiplications, no
// table, no branches; the seed keeps routers in a chain from choosing alike (hash polarisation).
const K0: u64 = 0xa076_1d64_78bd_642f;
const K1: u64 = 0xe703_7ed1_a0b4_28db;
const K2: u64 = 0x8ebc_6af0_9c88_c6e3;
const K3: u64 = 0x5899_65cc_7537_4cc3;

#[inline(always)]
fn mum(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

/// The ECMP flow hash of an IPv4 packet; `ports` is `src << 16 | dst`, or 0 without ports.
#[inline]
pub fn flow_hash_v4(seed: u64, src: u32, dst: u32, proto: u8, ports: u32) -> u32 {
    let a = (u64::from(src) << 32) | u64::from(dst);
    let b = (u64::from(proto) << 32) | u64::from(ports);
    let h = mum(a ^ seed ^ K0, b ^ K1);
    (mum(h ^ K2, K3) >> 32) as u32
}

/// The ECMP flow hash of an IPv6 packet; `ports` as for [`flow_hash_v4`].
#[inline]
pub fn flow_hash_v6(seed: u64, src: u128, dst: u128, proto: u8, ports: u32) -> u32 {
    let b = (u64::from(proto) << 32) | u64::from(ports);
    let hs = mum((src >> 64) as u64 ^ seed ^ K0, src as u64 ^ K1);
    let hd = mum((dst >> 64) as u64 ^ K2, dst as u64 ^ K3);
    (mum(hs ^ b ^ K2, hd ^ K1) >> 32) as u32
}

#[inline(always)]
fn ports_word(proto: u8, transport: &[u8]) -> u32 {
    if !protocol::has_ports(proto) {
        return 0;
    }
    Ports::new_checked(transport).map_or(0, |p| (u32::from(p.src_port()) << 16) | u32::from(p.dst_port()))
}

/// Per-packet state between the passes.
#[derive(Clone, Copy, Debug, Default)]
struct Meta {
    /// Offset of the IP header in the frame (14 or 18).
    l3: u8,
    hash: u32,
}

/// One family's lookups: which packet, which address, which group.
#[derive(Debug)]
struct Lane<A> {
    len: usize,
    packet: [u8; MAX_BATCH],
    addr: [A; MAX_BATCH],
    group: [Option<GroupId>; MAX_BATCH],
}

impl<A: Copy + Default> Lane<A> {
    fn new() -> Self {
        Self {
            len: 0,
            packet: [0; MAX_BATCH],
            addr: [A::default(); MAX_BATCH],
            group: [None; MAX_BATCH],
        }
    }

    #[inline(always)]
    fn push(&mut self, packet: usize, addr: A) {
        if let (Some(p), Some(a)) = (self.packet.get_mut(self.len), self.addr.get_mut(self.len)) {
            *p = packet as u8;
            *a = addr;
            self.len += 1;
        }
    }
}

/// Working memory for [`forward_batch`], allocated once per worker (about 2.5 KiB; box it or
/// keep it in the worker's state) and reused for every batch.
#[derive(Debug)]
pub struct Scratch {
    seed: u64,
    meta: [Meta; MAX_BATCH],
    v4: Lane<u32>,
    v6: Lane<u128>,
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new(0)
    }
}

impl Scratch {
    /// Scratch space whose flow hash uses `seed` (choose one per router, e.g. from its router
    /// id, so that routers in series spread flows independently).
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            meta: [Meta::default(); MAX_BATCH],
            v4: Lane::new(),
            v6: Lane::new(),
        }
    }

    /// The flow hash seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }
}

/// Outcome of the first pass for one frame.
enum Parsed {
    Done(Verdict),
    V4 { l3: u8, dst: u32, hash: u32 },
    V6 { l3: u8, dst: u128, hash: u32 },
}

/// Pass 1 for one frame: Ethernet, IP validation, address classes, flow hash.
#[inline(always)]
fn parse(frame: &[u8], seed: u64) -> Parsed {
    let eth = match EthernetFrame::new_checked(frame) {
        Ok(e) => e,
        Err(r) => return Parsed::Done(Verdict::Drop(r)),
    };
    let l3 = eth.header_len();
    let payload = eth.payload();
    match eth.payload_ethertype() {
        ethertype::IPV4 => {
            let ip = match Ipv4Packet::new_checked(payload) {
                Ok(ip) => ip,
                Err(r) => return Parsed::Done(Verdict::Drop(r)),
            };
            if !ip.verify_checksum() {
                return Parsed::Done(Verdict::Drop(DropReason::BadChecksum));
            }
            let (src, dst) = (u32::from(ip.src_addr()), u32::from(ip.dst_addr()));
            match classify_v4(src, dst) {
                AddressClass::Route => {}
                AddressClass::ToKernel => return Parsed::Done(Verdict::ToKernel),
                AddressClass::Martian => return Parsed::Done(Verdict::Drop(DropReason::Martian)),
            }
            let proto = ip.protocol();
            let ports = if ip.is_fragment() {
                0
            } else {
                ports_word(proto, ip.payload())
            };
            Parsed::V4 {
                l3: l3 as u8,
                dst,
                hash: flow_hash_v4(seed, src, dst, proto, ports),
            }
        }
        ethertype::IPV6 => {
            let ip = match Ipv6Packet::new_checked(payload) {
                Ok(ip) => ip,
                Err(r) => return Parsed::Done(Verdict::Drop(r)),
            };
            let (src, dst) = (u128::from(ip.src_addr()), u128::from(ip.dst_addr()));
            match classify_v6(src, dst) {
                AddressClass::Route => {}
                AddressClass::ToKernel => return Parsed::Done(Verdict::ToKernel),
                AddressClass::Martian => return Parsed::Done(Verdict::Drop(DropReason::Martian)),
            }
            let proto = ip.next_header();
            Parsed::V6 {
                l3: l3 as u8,
                dst,
                hash: flow_hash_v6(seed, src, dst, proto, ports_word(proto, ip.payload())),
            }
        }
        _ => Parsed::Done(Verdict::ToKernel),
    }
}

const NO_ROUTE: Verdict = Verdict::Icmp {
    kind: IcmpKind::NetUnreachable,
    reason: DropReason::NoRoute,
};

/// Pass 3 for one routed packet.
#[inline(always)]
fn finish<const V6: bool>(
    frame: &mut [u8],
    meta: Meta,
    group: Option<GroupId>,
    view: &FibView<'_>,
) -> Verdict {
    let Some(group) = group else {
        return NO_ROUTE;
    };
    // A group removed since the lookup (the writer raced us) answers like a missing route.
    let Some(adj_id) = view.select(group, meta.hash) else {
        return NO_ROUTE;
    };
    let Some(adj) = view.adjacency(adj_id) else {
        return Verdict::Drop(DropReason::PortDown);
    };
    match adj.kind {
        AdjacencyKind::Forward => {}
        AdjacencyKind::Local => return Verdict::ToKernel,
        AdjacencyKind::Blackhole => return Verdict::Drop(DropReason::Blackhole),
        AdjacencyKind::Unreachable => {
            return Verdict::Icmp {
                kind: IcmpKind::HostUnreachable,
                reason: DropReason::Unreachable,
            }
        }
    }
    let Some((l2, l3)) = frame.split_at_mut_checked(usize::from(meta.l3)) else {
        return Verdict::Drop(DropReason::Truncated);
    };
    // Pass 1 checked this very buffer with `new_checked` and nothing has written to it since, so
    // the unchecked views below stay in bounds.
    let next_hop_default = if V6 {
        let mut ip = Ipv6Packet::new_unchecked(l3);
        let hops = ip.hop_limit();
        if hops <= 1 {
            return time_exceeded();
        }
        if ip.total_len() > usize::from(adj.mtu) {
            return too_big(adj.mtu);
        }
        ip.set_hop_limit(hops - 1);
        IpAddr::V6(ip.dst_addr())
    } else {
        let mut ip = Ipv4Packet::new_unchecked(l3);
        if ip.ttl() <= 1 {
            return time_exceeded();
        }
        if ip.total_len() > adj.mtu {
            if ip.dont_frag() {
                return too_big(adj.mtu);
            }
            ip.decrement_ttl();
            return Verdict::Fragment {
                port: adj.port,
                mtu: adj.mtu,
                adjacency: adj_id,
            };
        }
        ip.decrement_ttl();
        IpAddr::V4(ip.dst_addr())
    };
    match adj.dst_mac {
        Some(mac) => {
            let mut eth = EthernetFrame::new_unchecked(l2);
            eth.set_dst_addr(mac);
            eth.set_src_addr(adj.src_mac);
            Verdict::Tx { port: adj.port }
        }
        None => Verdict::Resolve {
            port: adj.port,
            next_hop: adj.next_hop.unwrap_or(next_hop_default),
            adjacency: adj_id,
        },
    }
}

#[inline(always)]
fn time_exceeded() -> Verdict {
    Verdict::Icmp {
        kind: IcmpKind::TimeExceeded,
        reason: DropReason::TtlExceeded,
    }
}

#[inline(always)]
fn too_big(mtu: u16) -> Verdict {
    Verdict::Icmp {
        kind: IcmpKind::TooBig { mtu },
        reason: DropReason::TooBig,
    }
}

/// Forwards a batch: `out[i]` is the verdict on `frames[i]`, and frames with [`Verdict::Tx`]
/// are rewritten in place and ready to send. Each frame is exactly the received bytes (for
/// AF_XDP: the UMEM chunk sliced to the descriptor's length). Processes
/// `min(frames.len(), out.len())` frames, in chunks of [`MAX_BATCH`], and returns that count.
///
/// `view` is the worker's FIB view for this batch ([`crate::fib::FibReader::view`]).
pub fn forward_batch<F: AsMut<[u8]>>(
    frames: &mut [F],
    view: &FibView<'_>,
    out: &mut [Verdict],
    scratch: &mut Scratch,
) -> usize {
    let n = frames.len().min(out.len());
    let (Some(frames), Some(out)) = (frames.get_mut(..n), out.get_mut(..n)) else {
        return 0;
    };
    for (f, o) in frames.chunks_mut(MAX_BATCH).zip(out.chunks_mut(MAX_BATCH)) {
        forward_chunk(f, view, o, scratch);
    }
    n
}

/// One chunk of at most [`MAX_BATCH`] frames.
fn forward_chunk<F: AsMut<[u8]>>(frames: &mut [F], view: &FibView<'_>, out: &mut [Verdict], s: &mut Scratch) {
    // Pass 1: parse, validate, classify, hash; queue lookups.
    s.v4.len = 0;
    s.v6.len = 0;
    for (i, ((frame, verdict), meta)) in frames
        .iter_mut()
        .zip(out.iter_mut())
        .zip(s.meta.iter_mut())
        .enumerate()
    {
        match parse(frame.as_mut(), s.seed) {
            Parsed::Done(v) => *verdict = v,
            Parsed::V4 { l3, dst, hash } => {
                *meta = Meta { l3, hash };
                s.v4.push(i, dst);
            }
            Parsed::V6 { l3, dst, hash } => {
                *meta = Meta { l3, hash };
                s.v6.push(i, dst);
            }
        }
    }

    // Pass 2: batched lookups, one family at a time.
    if let (Some(a), Some(g)) = (s.v4.addr.get(..s.v4.len), s.v4.group.get_mut(..s.v4.len)) {
        view.lookup_v4_batch(a, g);
    }
    if let (Some(a), Some(g)) = (s.v6.addr.get(..s.v6.len), s.v6.group.get_mut(..s.v6.len)) {
        view.lookup_v6_batch(a, g);
    }

    // Pass 3: adjacency, TTL, MTU, rewrite.
    for (&i, &group) in s.v4.packet.iter().zip(&s.v4.group).take(s.v4.len) {
        let i = usize::from(i);
        if let (Some(frame), Some(verdict), Some(&meta)) = (frames.get_mut(i), out.get_mut(i), s.meta.get(i))
        {
            *verdict = finish::<false>(frame.as_mut(), meta, group, view);
        }
    }
    for (&i, &group) in s.v6.packet.iter().zip(&s.v6.group).take(s.v6.len) {
        let i = usize::from(i);
        if let (Some(frame), Some(verdict), Some(&meta)) = (frames.get_mut(i), out.get_mut(i), s.meta.get(i))
        {
            *verdict = finish::<true>(frame.as_mut(), meta, group, view);
        }
    }
}
