//! ARP (RFC 826) and IPv6 Neighbor Discovery (RFC 4861) messages: parsing received frames and
//! building requests and answers, as whole untagged Ethernet frames.
//!
//! Parsing goes through a bounds-checked [`Reader`] and never panics; every rejected frame has
//! a [`ParseError`]. Building writes through a bounds-checked writer and fails only when the
//! buffer is too small.

use super::table::Advert;
use crate::packet::wire::{checksum, ethertype, protocol, EthernetFrame};
use std::net::{Ipv4Addr, Ipv6Addr};

/// The Ethernet broadcast address.
pub const BROADCAST: [u8; 6] = [0xff; 6];

/// Shortest Ethernet frame without the FCS (IEEE 802.3 clause 4.2.3.3); ARP frames are padded
/// to it.
pub const MIN_FRAME: usize = 60;

/// Length of an Ethernet + ARP frame before padding.
pub const ARP_FRAME_LEN: usize = 14 + 28;

/// Length of an Ethernet + IPv6 + NS/NA frame with one link-layer address option.
pub const ND_FRAME_LEN: usize = 14 + 40 + 32;

/// ARP operation codes (RFC 826).
pub mod arp_op {
    pub const REQUEST: u16 = 1;
    pub const REPLY: u16 = 2;
}

/// ICMPv6 types of Neighbor Discovery (RFC 4861 section 4.3, 4.4).
pub mod nd_type {
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    pub const NEIGHBOR_ADVERT: u8 = 136;
}

/// Neighbor Discovery option types (RFC 4861 section 4.6.1).
pub mod nd_option {
    pub const SOURCE_LL_ADDR: u8 = 1;
    pub const TARGET_LL_ADDR: u8 = 2;
}

/// Neighbor Advertisement flags (RFC 4861 section 4.4), in the first byte after the checksum.
pub mod na_flag {
    pub const ROUTER: u8 = 0x80;
    pub const SOLICITED: u8 = 0x40;
    pub const OVERRIDE: u8 = 0x20;
}

/// The hop limit every ND message must carry (RFC 4861 section 7.1.1).
pub const ND_HOP_LIMIT: u8 = 255;

/// Why a frame was not accepted as an ARP or ND message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than its headers or than its length fields say.
    Truncated,
    /// Neither ARP nor IPv6 carrying ICMPv6 directly.
    NotNeighbor,
    /// ARP for another hardware or protocol type, or other address lengths.
    ArpUnsupported,
    /// An ARP operation other than request or reply.
    ArpBadOp,
    /// Not IPv6 version 6.
    BadVersion,
    /// ICMPv6 other than NS/NA, or a non-zero code.
    NotNd,
    /// Hop limit other than 255 (the message crossed a router).
    BadHopLimit,
    /// The ICMPv6 checksum does not verify.
    BadChecksum,
    /// A multicast target address.
    BadTarget,
    /// An option with length zero or running past the message.
    BadOption,
    /// NS from the unspecified address with a source link-layer option, or not to a
    /// solicited-node group; NA to a multicast address with the S flag.
    BadAddressing,
}

/// Why a message could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError {
    BufferTooSmall,
}

/// An ARP packet for Ethernet and IPv4 (RFC 826):
///
/// ```text
///  0       2       4   5   6       8            14          18           24          28
/// +-------+-------+---+---+-------+------------+-----------+------------+-----------+
/// | htype | ptype |hln|pln|  op   | sender MAC | sender IP | target MAC | target IP |
/// +-------+-------+---+---+-------+------------+-----------+------------+-----------+
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpRepr {
    pub op: u16,
    pub sender_mac: [u8; 6],
    pub sender_ip: Ipv4Addr,
    pub target_mac: [u8; 6],
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    /// The link-layer information for the neighbour table: replies answer our requests; a
    /// request (including gratuitous ARP) only refreshes an entry that exists.
    pub fn advert(&self) -> Advert {
        Advert {
            mac: self.sender_mac,
            solicited: self.op == arp_op::REPLY,
            override_flag: true,
        }
    }
}

/// A Neighbor Solicitation (RFC 4861 section 4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborSolicit {
    pub eth_src: [u8; 6],
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub target: Ipv6Addr,
    pub source_mac: Option<[u8; 6]>,
}

/// A Neighbor Advertisement (RFC 4861 section 4.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborAdvert {
    pub eth_src: [u8; 6],
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub target: Ipv6Addr,
    pub router: bool,
    pub solicited: bool,
    pub override_flag: bool,
    pub target_mac: Option<[u8; 6]>,
}

impl NeighborAdvert {
    /// The link-layer information for the neighbour table, when the advertisement carried a
    /// target link-layer address.
    pub fn advert(&self) -> Option<Advert> {
        self.target_mac.map(|mac| Advert {
            mac,
            solicited: self.solicited,
            override_flag: self.override_flag,
        })
    }
}

/// A received neighbour message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeighborMessage {
    Arp(ArpRepr),
    Solicit(NeighborSolicit),
    Advert(NeighborAdvert),
}

/// A bounds-checked cursor over received bytes.
#[derive(Debug)]
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ParseError> {
        if self.buf.len() < n {
            return Err(ParseError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ParseError> {
        <[u8; N]>::try_from(self.take(N)?).map_err(|_| ParseError::Truncated)
    }

    fn u8(&mut self) -> Result<u8, ParseError> {
        let [b] = self.array::<1>()?;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16, ParseError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
}

/// A bounds-checked cursor over a buffer being built.
#[derive(Debug)]
struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn put(&mut self, data: &[u8]) -> Result<(), BuildError> {
        let end = self
            .pos
            .checked_add(data.len())
            .ok_or(BuildError::BufferTooSmall)?;
        self.buf
            .get_mut(self.pos..end)
            .ok_or(BuildError::BufferTooSmall)?
            .copy_from_slice(data);
        self.pos = end;
        Ok(())
    }

    fn put_u16(&mut self, v: u16) -> Result<(), BuildError> {
        self.put(&v.to_be_bytes())
    }

    fn zeros(&mut self, n: usize) -> Result<(), BuildError> {
        let end = self.pos.checked_add(n).ok_or(BuildError::BufferTooSmall)?;
        self.buf
            .get_mut(self.pos..end)
            .ok_or(BuildError::BufferTooSmall)?
            .fill(0);
        self.pos = end;
        Ok(())
    }

    fn ethernet(&mut self, dst: [u8; 6], src: [u8; 6], ty: u16) -> Result<(), BuildError> {
        self.put(&dst)?;
        self.put(&src)?;
        self.put_u16(ty)
    }
}

/// Parses a received frame (untagged or with one 802.1Q tag) as ARP, NS or NA.
pub fn parse(frame: &[u8]) -> Result<NeighborMessage, ParseError> {
    let eth = EthernetFrame::new_checked(frame).map_err(|_| ParseError::Truncated)?;
    let eth_src = eth.src_addr();
    match eth.payload_ethertype() {
        ethertype::ARP => parse_arp(eth.payload()).map(NeighborMessage::Arp),
        ethertype::IPV6 => parse_nd(eth_src, eth.payload()),
        _ => Err(ParseError::NotNeighbor),
    }
}

/// Parses an ARP packet (the Ethernet payload; trailing padding ignored).
pub fn parse_arp(payload: &[u8]) -> Result<ArpRepr, ParseError> {
    let mut r = Reader { buf: payload };
    let htype = r.u16()?;
    let ptype = r.u16()?;
    let hlen = r.u8()?;
    let plen = r.u8()?;
    if htype != 1 || ptype != ethertype::IPV4 || hlen != 6 || plen != 4 {
        return Err(ParseError::ArpUnsupported);
    }
    let op = r.u16()?;
    if op != arp_op::REQUEST && op != arp_op::REPLY {
        return Err(ParseError::ArpBadOp);
    }
    Ok(ArpRepr {
        op,
        sender_mac: r.array()?,
        sender_ip: Ipv4Addr::from(r.array::<4>()?),
        target_mac: r.array()?,
        target_ip: Ipv4Addr::from(r.array::<4>()?),
    })
}

/// Parses and validates (RFC 4861 sections 7.1.1 and 7.1.2) an IPv6 packet as NS or NA.
fn parse_nd(eth_src: [u8; 6], packet: &[u8]) -> Result<NeighborMessage, ParseError> {
    let mut r = Reader { buf: packet };
    let [ver, ..] = r.array::<4>()?;
    if ver >> 4 != 6 {
        return Err(ParseError::BadVersion);
    }
    let payload_len = r.u16()?;
    let next_header = r.u8()?;
    let hop_limit = r.u8()?;
    let src = Ipv6Addr::from(r.array::<16>()?);
    let dst = Ipv6Addr::from(r.array::<16>()?);
    if next_header != protocol::ICMPV6 {
        return Err(ParseError::NotNeighbor);
    }
    let icmp = r.take(usize::from(payload_len))?;
    let mut r = Reader { buf: icmp };
    let ty = r.u8()?;
    let code = r.u8()?;
    if (ty != nd_type::NEIGHBOR_SOLICIT && ty != nd_type::NEIGHBOR_ADVERT) || code != 0 {
        return Err(ParseError::NotNd);
    }
    let _checksum = r.u16()?;
    let flags = r.u8()?;
    r.take(3)?;
    let target = Ipv6Addr::from(r.array::<16>()?);
    if hop_limit != ND_HOP_LIMIT {
        return Err(ParseError::BadHopLimit);
    }
    let pseudo = checksum::pseudo_header_v6(&src, &dst, u32::from(payload_len), protocol::ICMPV6);
    if checksum::fold(pseudo + checksum::sum(icmp)) != 0xffff {
        return Err(ParseError::BadChecksum);
    }
    if target.is_multicast() {
        return Err(ParseError::BadTarget);
    }
    let wanted = if ty == nd_type::NEIGHBOR_SOLICIT {
        nd_option::SOURCE_LL_ADDR
    } else {
        nd_option::TARGET_LL_ADDR
    };
    let mut ll = None;
    while !r.buf.is_empty() {
        let opt_type = r.u8()?;
        let units = r.u8()?;
        if units == 0 {
            return Err(ParseError::BadOption);
        }
        let body = r
            .take(usize::from(units) * 8 - 2)
            .map_err(|_| ParseError::BadOption)?;
        if opt_type == wanted && units == 1 {
            ll = <[u8; 6]>::try_from(body).ok();
        }
    }
    if ty == nd_type::NEIGHBOR_SOLICIT {
        if src.is_unspecified() && (ll.is_some() || solicited_node(target) != dst) {
            return Err(ParseError::BadAddressing);
        }
        Ok(NeighborMessage::Solicit(NeighborSolicit {
            eth_src,
            src,
            dst,
            target,
            source_mac: ll,
        }))
    } else {
        let solicited = flags & na_flag::SOLICITED != 0;
        if dst.is_multicast() && solicited {
            return Err(ParseError::BadAddressing);
        }
        Ok(NeighborMessage::Advert(NeighborAdvert {
            eth_src,
            src,
            dst,
            target,
            router: flags & na_flag::ROUTER != 0,
            solicited,
            override_flag: flags & na_flag::OVERRIDE != 0,
            target_mac: ll,
        }))
    }
}

/// The solicited-node multicast address of `addr`, ff02::1:ffXX:XXXX (RFC 4291 section
/// 2.7.1).
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let [.., a, b, c] = addr.octets();
    Ipv6Addr::from([
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(a),
        u16::from_be_bytes([b, c]),
    ])
}

/// The Ethernet address of an IPv6 multicast group, 33:33 and its low 32 bits (RFC 2464
/// section 7).
pub fn multicast_mac(group: Ipv6Addr) -> [u8; 6] {
    let [.., a, b, c, d] = group.octets();
    [0x33, 0x33, a, b, c, d]
}

/// Writes an ARP frame, padded to [`MIN_FRAME`]; returns its length.
pub fn build_arp(buf: &mut [u8], eth_dst: [u8; 6], arp: &ArpRepr) -> Result<usize, BuildError> {
    let mut w = Writer::new(buf);
    w.ethernet(eth_dst, arp.sender_mac, ethertype::ARP)?;
    w.put_u16(1)?;
    w.put_u16(ethertype::IPV4)?;
    w.put(&[6, 4])?;
    w.put_u16(arp.op)?;
    w.put(&arp.sender_mac)?;
    w.put(&arp.sender_ip.octets())?;
    w.put(&arp.target_mac)?;
    w.put(&arp.target_ip.octets())?;
    w.zeros(MIN_FRAME - ARP_FRAME_LEN)?;
    Ok(w.pos)
}

/// Writes an ARP request from `our_mac`/`our_ip` for `target`: broadcast, or unicast to
/// `unicast` when re-confirming a known neighbour.
pub fn build_arp_request(
    buf: &mut [u8],
    our_mac: [u8; 6],
    our_ip: Ipv4Addr,
    target: Ipv4Addr,
    unicast: Option<[u8; 6]>,
) -> Result<usize, BuildError> {
    let arp = ArpRepr {
        op: arp_op::REQUEST,
        sender_mac: our_mac,
        sender_ip: our_ip,
        target_mac: [0; 6],
        target_ip: target,
    };
    build_arp(buf, unicast.unwrap_or(BROADCAST), &arp)
}

/// Writes the ARP reply to `request` when it asks for `our_ip`; `Ok(None)` when it does not
/// (not a request, or for another address).
pub fn build_arp_reply(
    buf: &mut [u8],
    request: &ArpRepr,
    our_mac: [u8; 6],
    our_ip: Ipv4Addr,
) -> Result<Option<usize>, BuildError> {
    if request.op != arp_op::REQUEST || request.target_ip != our_ip {
        return Ok(None);
    }
    let reply = ArpRepr {
        op: arp_op::REPLY,
        sender_mac: our_mac,
        sender_ip: our_ip,
        target_mac: request.sender_mac,
        target_ip: request.sender_ip,
    };
    build_arp(buf, request.sender_mac, &reply).map(Some)
}

/// Writes an NS or NA with one link-layer address option and its checksum.
#[expect(clippy::too_many_arguments, reason = "one private builder for both NS and NA")]
fn build_nd(
    buf: &mut [u8],
    eth_dst: [u8; 6],
    our_mac: [u8; 6],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    ty: u8,
    flags: u8,
    target: Ipv6Addr,
    option: u8,
) -> Result<usize, BuildError> {
    const ICMP_LEN: u16 = 32;
    let mut w = Writer::new(buf);
    w.ethernet(eth_dst, our_mac, ethertype::IPV6)?;
    w.put(&[0x60, 0, 0, 0])?;
    w.put_u16(ICMP_LEN)?;
    w.put(&[protocol::ICMPV6, ND_HOP_LIMIT])?;
    w.put(&src.octets())?;
    w.put(&dst.octets())?;
    let icmp_start = w.pos;
    w.put(&[ty, 0, 0, 0, flags, 0, 0, 0])?;
    w.put(&target.octets())?;
    w.put(&[option, 1])?;
    w.put(&our_mac)?;
    let end = w.pos;
    let icmp = w.buf.get_mut(icmp_start..end).ok_or(BuildError::BufferTooSmall)?;
    let pseudo = checksum::pseudo_header_v6(&src, &dst, u32::from(ICMP_LEN), protocol::ICMPV6);
    let sum = !checksum::fold(pseudo + checksum::sum(icmp));
    icmp.get_mut(2..4)
        .ok_or(BuildError::BufferTooSmall)?
        .copy_from_slice(&sum.to_be_bytes());
    Ok(end)
}

/// Writes a Neighbor Solicitation for `target` from `src` (an address of ours on the link):
/// to the solicited-node group and its MAC, or to `target` itself at `unicast` when
/// re-confirming a known neighbour (RFC 4861 section 7.2.2); always with our source link-layer
/// address.
pub fn build_neighbor_solicit(
    buf: &mut [u8],
    our_mac: [u8; 6],
    src: Ipv6Addr,
    target: Ipv6Addr,
    unicast: Option<[u8; 6]>,
) -> Result<usize, BuildError> {
    let (dst, eth_dst) = match unicast {
        Some(mac) => (target, mac),
        None => {
            let group = solicited_node(target);
            (group, multicast_mac(group))
        }
    };
    build_nd(
        buf,
        eth_dst,
        our_mac,
        src,
        dst,
        nd_type::NEIGHBOR_SOLICIT,
        0,
        target,
        nd_option::SOURCE_LL_ADDR,
    )
}

/// Writes the Neighbor Advertisement answering `ns` when it asks for `our_ip` (RFC 4861
/// section 7.2.4): to the soliciting address with the S flag, or to all-nodes without it when
/// the solicitation came from the unspecified address (duplicate address detection); R (we
/// are a router) and O set, with our target link-layer address. `Ok(None)` when `ns` is for
/// another address.
pub fn build_neighbor_advert(
    buf: &mut [u8],
    ns: &NeighborSolicit,
    our_mac: [u8; 6],
    our_ip: Ipv6Addr,
) -> Result<Option<usize>, BuildError> {
    if ns.target != our_ip {
        return Ok(None);
    }
    let (dst, eth_dst, solicited) = if ns.src.is_unspecified() {
        let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
        (all_nodes, multicast_mac(all_nodes), 0)
    } else {
        (ns.src, ns.source_mac.unwrap_or(ns.eth_src), na_flag::SOLICITED)
    };
    build_nd(
        buf,
        eth_dst,
        our_mac,
        our_ip,
        dst,
        nd_type::NEIGHBOR_ADVERT,
        na_flag::ROUTER | na_flag::OVERRIDE | solicited,
        our_ip,
        nd_option::TARGET_LL_ADDR,
    )
    .map(Some)
}
