//! ICMP error messages about a packet the pipeline refused (slow path: called per
//! [`super::forward::Verdict::Icmp`], after the caller's rate limiter). Writes into a buffer the
//! caller provides; allocates nothing.

use super::forward::{
    v4_kernel_destination, v4_martian_source, v6_kernel_destination, v6_martian_source, IcmpKind,
};
use super::wire::{
    checksum, ethertype, icmp_field, ipv4_field, ipv6_field, protocol, EthernetFrame, IcmpPacket, Ipv4Packet,
    Ipv6Packet,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// TTL / hop limit of the errors we originate (RFC 1700's default TTL, what Linux uses).
pub const ERROR_TTL: u8 = 64;
/// DSCP of the errors we originate: CS6, i.e. IP precedence 6 "internetwork control" (RFC 1812
/// section 4.3.2.5; RFC 2474 maps precedence to class selectors).
pub const ERROR_DSCP: u8 = 48;
/// An ICMPv6 error must not make the packet exceed the IPv6 minimum MTU (RFC 4443 section 2.4(c)).
pub const IPV6_MIN_MTU: usize = 1280;

/// ICMPv4 message types (RFC 792).
pub mod icmpv4 {
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const SOURCE_QUENCH: u8 = 4;
    pub const REDIRECT: u8 = 5;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAMETER_PROBLEM: u8 = 12;
    pub const CODE_NET_UNREACHABLE: u8 = 0;
    pub const CODE_HOST_UNREACHABLE: u8 = 1;
    /// Fragmentation needed and DF set (RFC 792; next-hop MTU per RFC 1191 section 4).
    pub const CODE_FRAG_NEEDED: u8 = 4;
    /// TTL exceeded in transit.
    pub const CODE_TTL_EXCEEDED: u8 = 0;

    /// Error messages (RFC 1812 section 4.3.2.7: never answered with another error).
    pub const fn is_error(t: u8) -> bool {
        matches!(
            t,
            DEST_UNREACHABLE | SOURCE_QUENCH | REDIRECT | TIME_EXCEEDED | PARAMETER_PROBLEM
        )
    }
}

/// ICMPv6 message types (RFC 4443 section 2.1).
pub mod icmpv6 {
    pub const DEST_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const CODE_NO_ROUTE: u8 = 0;
    pub const CODE_ADDRESS_UNREACHABLE: u8 = 3;
    pub const CODE_HOP_LIMIT_EXCEEDED: u8 = 0;

    /// Types below 128 are errors (RFC 4443 section 2.1).
    pub const fn is_error(t: u8) -> bool {
        t < 128
    }
}

/// Writes the IP packet of an ICMP error of `kind` about `frame` (the Ethernet frame as
/// received, unchanged by the pipeline) into `out`, from `router` (the egress address the
/// caller picked; same family as the frame) to the frame's source. Returns the IP packet's
/// length, or `None` when no error may or can be sent:
/// - the frame does not parse as a valid IPv4/IPv6 packet, or `router` is of the other family;
/// - the packet is itself an ICMP error (RFC 1812 4.3.2.7, RFC 4443 2.4(e)), or a non-first
///   IPv4 fragment (RFC 1812 4.3.2.7);
/// - its source is not a unicast address that could be answered, or (IPv4) its destination is
///   broadcast or multicast (RFC 1812 4.3.2.7, RFC 4443 2.4(e));
/// - `out` is too small.
///
/// The quote is the original IP header plus the first 8 bytes of its payload for IPv4 (RFC 792;
/// RFC 1812 4.3.2.3 permits more), and as much of the packet as keeps the error within 1280
/// bytes for IPv6 (RFC 4443 section 2.4(c)). The link-layer header is the caller's: pass `out`
/// starting past the room left for it.
pub fn build_icmp_error(frame: &[u8], kind: IcmpKind, router: IpAddr, out: &mut [u8]) -> Option<usize> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    match (eth.payload_ethertype(), router) {
        (ethertype::IPV4, IpAddr::V4(r)) => build_v4(eth.payload(), kind, r, out),
        (ethertype::IPV6, IpAddr::V6(r)) => build_v6(eth.payload(), kind, r, out),
        _ => None,
    }
}

fn build_v4(packet: &[u8], kind: IcmpKind, router: Ipv4Addr, out: &mut [u8]) -> Option<usize> {
    let ip = Ipv4Packet::new_checked(packet).ok()?;
    if !ip.verify_checksum() || ip.frag_offset() != 0 {
        return None;
    }
    if ip.protocol() == protocol::ICMP && ip.payload().first().is_none_or(|&t| icmpv4::is_error(t)) {
        return None;
    }
    let src = ip.src_addr();
    if v4_martian_source(u32::from(src)) || v4_kernel_destination(u32::from(ip.dst_addr())) {
        return None;
    }
    let (ty, code, rest) = match kind {
        IcmpKind::NetUnreachable => (icmpv4::DEST_UNREACHABLE, icmpv4::CODE_NET_UNREACHABLE, 0),
        IcmpKind::HostUnreachable => (icmpv4::DEST_UNREACHABLE, icmpv4::CODE_HOST_UNREACHABLE, 0),
        IcmpKind::TimeExceeded => (icmpv4::TIME_EXCEEDED, icmpv4::CODE_TTL_EXCEEDED, 0),
        IcmpKind::TooBig { mtu } => (icmpv4::DEST_UNREACHABLE, icmpv4::CODE_FRAG_NEEDED, u32::from(mtu)),
    };
    let quote_len = (ip.header_len() + 8).min(usize::from(ip.total_len()));
    let quote = packet.get(..quote_len)?;
    let icmp_len = icmp_field::HEADER_LEN + quote_len;
    let total = ipv4_field::HEADER_LEN + icmp_len;
    let out = out.get_mut(..total)?;
    let (hdr, msg) = out.split_at_mut(ipv4_field::HEADER_LEN);

    let mut icmp = IcmpPacket::new_checked(&mut *msg).ok()?;
    icmp.set_msg_type(ty);
    icmp.set_code(code);
    icmp.set_checksum(0);
    icmp.set_rest(rest);
    icmp.body_mut().copy_from_slice(quote);
    let c = checksum::checksum(msg);
    IcmpPacket::new_checked(&mut *msg).ok()?.set_checksum(c);

    let mut h = Ipv4Packet::new_unchecked(hdr);
    h.set_header_len(ipv4_field::HEADER_LEN);
    h.set_dscp_ecn(ERROR_DSCP, 0);
    h.set_total_len(total as u16);
    h.set_ident(0);
    h.set_frag(false, false, 0);
    h.set_ttl(ERROR_TTL);
    h.set_protocol(protocol::ICMP);
    h.set_src_addr(router);
    h.set_dst_addr(src);
    h.fill_checksum();
    Some(total)
}

fn build_v6(packet: &[u8], kind: IcmpKind, router: Ipv6Addr, out: &mut [u8]) -> Option<usize> {
    let ip = Ipv6Packet::new_checked(packet).ok()?;
    if ip.next_header() == protocol::ICMPV6 && ip.payload().first().is_none_or(|&t| icmpv6::is_error(t)) {
        return None;
    }
    let src = ip.src_addr();
    // RFC 4443 2.4(e) allows Packet Too Big about multicast; the pipeline never routes
    // multicast, so every error about it is refused here.
    if v6_martian_source(u128::from(src)) || v6_kernel_destination(u128::from(ip.dst_addr())) {
        return None;
    }
    let (ty, code, rest) = match kind {
        IcmpKind::NetUnreachable => (icmpv6::DEST_UNREACHABLE, icmpv6::CODE_NO_ROUTE, 0),
        IcmpKind::HostUnreachable => (icmpv6::DEST_UNREACHABLE, icmpv6::CODE_ADDRESS_UNREACHABLE, 0),
        IcmpKind::TimeExceeded => (icmpv6::TIME_EXCEEDED, icmpv6::CODE_HOP_LIMIT_EXCEEDED, 0),
        IcmpKind::TooBig { mtu } => (icmpv6::PACKET_TOO_BIG, 0, u32::from(mtu)),
    };
    let room = IPV6_MIN_MTU - ipv6_field::HEADER_LEN - icmp_field::HEADER_LEN;
    let quote_len = ip.total_len().min(room);
    let quote = packet.get(..quote_len)?;
    let icmp_len = icmp_field::HEADER_LEN + quote_len;
    let total = ipv6_field::HEADER_LEN + icmp_len;
    let out = out.get_mut(..total)?;
    let (hdr, msg) = out.split_at_mut(ipv6_field::HEADER_LEN);

    let mut icmp = IcmpPacket::new_checked(&mut *msg).ok()?;
    icmp.set_msg_type(ty);
    icmp.set_code(code);
    icmp.set_checksum(0);
    icmp.set_rest(rest);
    icmp.body_mut().copy_from_slice(quote);
    let sum =
        checksum::pseudo_header_v6(&router, &src, icmp_len as u32, protocol::ICMPV6) + checksum::sum(msg);
    IcmpPacket::new_checked(&mut *msg)
        .ok()?
        .set_checksum(!checksum::fold(sum));

    let mut h = Ipv6Packet::new_unchecked(hdr);
    h.set_version_tc_flow(ERROR_DSCP << 2, 0);
    h.set_payload_len(icmp_len as u16);
    h.set_next_header(protocol::ICMPV6);
    h.set_hop_limit(ERROR_TTL);
    h.set_src_addr(router);
    h.set_dst_addr(src);
    Some(total)
}
