//! Tests of the wire views, the checksum, the pipeline and the ICMP errors.

use super::forward::{classify_v4, classify_v6, AddressClass};
use super::icmp::{icmpv4, icmpv6};
use super::wire::*;
use super::*;
use crate::fib::{Adjacency, AdjacencyId, AdjacencyKind, FibWriter, GroupId, NextHop, Prefix};
use proptest::prelude::*;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use xroute_common::stats::DropReason;

// ---------------------------------------------------------------------------------------------
// Fixtures. Computed by an independent implementation (a short Python script using only
// `struct` and its own RFC 1071 sum, not this crate's code), then frozen here.
// ---------------------------------------------------------------------------------------------

/// Ethernet + IPv4 (198.51.100.7 -> 203.0.113.9, TTL 1, DF, id 0x1c46) + UDP 33434 -> 33435
/// with payload "abcd".
const ORIG_V4: [u8; 46] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00, 0x45, 0x00, 0x00,
    0x20, 0x1c, 0x46, 0x40, 0x00, 0x01, 0x11, 0xf7, 0x42, 0xc6, 0x33, 0x64, 0x07, 0xcb, 0x00, 0x71, 0x09,
    0x82, 0x9a, 0x82, 0x9b, 0x00, 0x0c, 0x00, 0x00, 0x61, 0x62, 0x63, 0x64,
];
/// The ICMPv4 time exceeded 192.0.2.1 sends about [`ORIG_V4`] (IP packet, no Ethernet).
const ICMPV4_TIME_EXCEEDED: [u8; 56] = [
    0x45, 0xc0, 0x00, 0x38, 0x00, 0x00, 0x00, 0x00, 0x40, 0x01, 0x8d, 0xc9, 0xc0, 0x00, 0x02, 0x01, 0xc6,
    0x33, 0x64, 0x07, 0x0b, 0x00, 0xef, 0xbd, 0x00, 0x00, 0x00, 0x00, 0x45, 0x00, 0x00, 0x20, 0x1c, 0x46,
    0x40, 0x00, 0x01, 0x11, 0xf7, 0x42, 0xc6, 0x33, 0x64, 0x07, 0xcb, 0x00, 0x71, 0x09, 0x82, 0x9a, 0x82,
    0x9b, 0x00, 0x0c, 0x00, 0x00,
];
/// Ethernet + IPv6 (2001:db8:1::7 -> 2001:db8:2::9, hop limit 1) + the same UDP datagram.
const ORIG_V6: [u8; 66] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x86, 0xdd, 0x60, 0x00, 0x00,
    0x00, 0x00, 0x0c, 0x11, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x07, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x09, 0x82, 0x9a, 0x82, 0x9b, 0x00, 0x0c, 0x00, 0x00, 0x61, 0x62, 0x63, 0x64,
];
/// The ICMPv6 time exceeded 2001:db8::1 sends about [`ORIG_V6`].
const ICMPV6_TIME_EXCEEDED: [u8; 100] = [
    0x6c, 0x00, 0x00, 0x00, 0x00, 0x3c, 0x3a, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x03, 0x00, 0x0a, 0x73, 0x00, 0x00, 0x00, 0x00, 0x60, 0x00, 0x00,
    0x00, 0x00, 0x0c, 0x11, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x07, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x09, 0x82, 0x9a, 0x82, 0x9b, 0x00, 0x0c, 0x00, 0x00, 0x61, 0x62, 0x63, 0x64,
];

/// The IPv4 header of Wikipedia's "IPv4 header checksum" worked example (checksum 0xb861).
const WIKI_V4_HEADER: [u8; 20] = [
    0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0,
    0xa8, 0x00, 0xc7,
];

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const PORT_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 0x01];
const NEIGH_MAC: [u8; 6] = [0x02, 0xbb, 0, 0, 0, 0x01];

// ---------------------------------------------------------------------------------------------
// Checksums.
// ---------------------------------------------------------------------------------------------

#[test]
fn rfc1071_example() {
    // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (checksum 220d).
    let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
    assert_eq!(checksum::fold(checksum::sum(&data)), 0xddf2);
    assert_eq!(checksum::checksum(&data), 0x220d);
    // Odd length: the last byte is padded with a zero byte.
    assert_eq!(checksum::fold(checksum::sum(&[0x01, 0x02, 0x03])), 0x0402);
    assert_eq!(checksum::checksum(&[]), 0xffff);
}

proptest! {
    #[test]
    fn fold_equals_the_carry_loop(acc in any::<u64>()) {
        let mut a = acc;
        while a > 0xffff {
            a = (a & 0xffff) + (a >> 16);
        }
        prop_assert_eq!(checksum::fold(acc), a as u16);
    }
}

#[test]
fn ipv4_header_checksum_vector() {
    let mut h = WIKI_V4_HEADER;
    assert!(checksum::verify(&h));
    h[10] = 0;
    h[11] = 0;
    assert_eq!(checksum::checksum(&h), 0xb861);
    let mut p = Ipv4Packet::new_unchecked(&mut h[..]);
    p.fill_checksum();
    assert_eq!(h, WIKI_V4_HEADER);
}

#[test]
fn rfc1624_update_vector() {
    // RFC 1624 section 4: HC = 0xdd2f, m = 0x5555 -> m' = 0x3285 gives HC' = 0x0000 (eq. 3),
    // where eq. 2 would give 0xffff.
    assert_eq!(checksum::update(0xdd2f, 0x5555, 0x3285), 0x0000);
}

fn arb_ipv4_header() -> impl Strategy<Value = [u8; 20]> {
    (any::<[u8; 20]>(), 1u8..=255).prop_map(|(mut h, ttl)| {
        h[0] = 0x45;
        h[8] = ttl;
        h[10] = 0;
        h[11] = 0;
        let c = checksum::checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    })
}

proptest! {
    #[test]
    fn incremental_ttl_update_equals_recomputation(h in arb_ipv4_header()) {
        let mut inc = h;
        Ipv4Packet::new_unchecked(&mut inc[..]).decrement_ttl();
        let mut full = h;
        full[8] -= 1;
        Ipv4Packet::new_unchecked(&mut full[..]).fill_checksum();
        prop_assert_eq!(inc, full);
        prop_assert!(checksum::verify(&inc));
    }
}

#[test]
fn incremental_ttl_update_for_every_ttl() {
    let mut h = WIKI_V4_HEADER;
    for ttl in 1..=255u8 {
        h[8] = ttl;
        Ipv4Packet::new_unchecked(&mut h[..]).fill_checksum();
        let mut inc = h;
        Ipv4Packet::new_unchecked(&mut inc[..]).decrement_ttl();
        let mut full = h;
        full[8] = ttl - 1;
        Ipv4Packet::new_unchecked(&mut full[..]).fill_checksum();
        assert_eq!(inc, full, "ttl {ttl}");
    }
}

// ---------------------------------------------------------------------------------------------
// Wire views, both ways.
// ---------------------------------------------------------------------------------------------

#[test]
fn ethernet_fixture_both_ways() {
    let f = EthernetFrame::new_checked(&ORIG_V4[..]).unwrap();
    assert_eq!(f.dst_addr(), MAC_A);
    assert_eq!(f.src_addr(), MAC_B);
    assert_eq!(f.ethertype(), ethertype::IPV4);
    assert_eq!(f.payload_ethertype(), ethertype::IPV4);
    assert_eq!(f.vlan_tci(), None);
    assert_eq!(f.header_len(), 14);
    assert_eq!(f.payload(), &ORIG_V4[14..]);

    let mut b = [0u8; 46];
    b[14..].copy_from_slice(&ORIG_V4[14..]);
    let mut e = EthernetFrame::new_unchecked(&mut b[..]);
    e.set_dst_addr(MAC_A);
    e.set_src_addr(MAC_B);
    e.set_ethertype(ethertype::IPV4);
    assert_eq!(b, ORIG_V4);
}

/// [`ORIG_V4`] with the 802.1Q tag PCP 5, VLAN 100 inserted.
fn tagged(frame: &[u8]) -> Vec<u8> {
    let mut v = frame[..12].to_vec();
    v.extend_from_slice(&[0x81, 0x00, 0xa0, 0x64]);
    v.extend_from_slice(&frame[12..]);
    v
}

#[test]
fn vlan_fixture_both_ways() {
    let t = tagged(&ORIG_V4);
    let f = EthernetFrame::new_checked(&t[..]).unwrap();
    assert!(f.is_vlan());
    assert_eq!(f.vlan_tci(), Some(0xa064));
    assert_eq!(f.vlan_id(), Some(100));
    assert_eq!(f.payload_ethertype(), ethertype::IPV4);
    assert_eq!(f.header_len(), 18);
    assert_eq!(f.payload(), &ORIG_V4[14..]);

    let mut b = vec![0u8; t.len()];
    b[18..].copy_from_slice(&ORIG_V4[14..]);
    let mut e = EthernetFrame::new_unchecked(&mut b[..]);
    e.set_dst_addr(MAC_A);
    e.set_src_addr(MAC_B);
    e.set_vlan(0xa064, ethertype::IPV4);
    assert_eq!(b, t);
    assert_eq!(
        EthernetFrame::new_checked(&t[..17]).unwrap_err(),
        DropReason::Truncated
    );
    assert_eq!(
        EthernetFrame::new_checked(&t[..13]).unwrap_err(),
        DropReason::Truncated
    );
}

#[test]
fn ipv4_fixture_both_ways() {
    let p = Ipv4Packet::new_checked(&ORIG_V4[14..]).unwrap();
    assert_eq!(p.version(), 4);
    assert_eq!(p.header_len(), 20);
    assert_eq!((p.dscp(), p.ecn()), (0, 0));
    assert_eq!(p.total_len(), 32);
    assert_eq!(p.ident(), 0x1c46);
    assert!(p.dont_frag());
    assert!(!p.more_frags());
    assert_eq!(p.frag_offset(), 0);
    assert!(!p.is_fragment());
    assert_eq!(p.ttl(), 1);
    assert_eq!(p.protocol(), protocol::UDP);
    assert_eq!(p.checksum(), 0xf742);
    assert!(p.verify_checksum());
    assert_eq!(p.src_addr(), Ipv4Addr::new(198, 51, 100, 7));
    assert_eq!(p.dst_addr(), Ipv4Addr::new(203, 0, 113, 9));
    assert!(p.options().is_empty());
    assert_eq!(p.payload(), &ORIG_V4[34..]);

    let mut b = [0u8; 32];
    b[20..].copy_from_slice(&ORIG_V4[34..]);
    let mut q = Ipv4Packet::new_unchecked(&mut b[..]);
    q.set_header_len(20);
    q.set_dscp_ecn(0, 0);
    q.set_total_len(32);
    q.set_ident(0x1c46);
    q.set_frag(true, false, 0);
    q.set_ttl(1);
    q.set_protocol(protocol::UDP);
    q.set_src_addr(Ipv4Addr::new(198, 51, 100, 7));
    q.set_dst_addr(Ipv4Addr::new(203, 0, 113, 9));
    q.fill_checksum();
    assert_eq!(&b[..], &ORIG_V4[14..]);
}

#[test]
fn ipv4_options_fragments_and_padding() {
    // IHL 6 with a 4-byte option (NOP x3 + EOL), MF set, offset 1480, DSCP 46 ECN 1, and two
    // bytes of Ethernet padding after Total Length.
    let mut b = [0u8; 30];
    let mut q = Ipv4Packet::new_unchecked(&mut b[..]);
    q.set_header_len(24);
    q.set_dscp_ecn(46, 1);
    q.set_total_len(28);
    q.set_frag(false, true, 1480);
    q.set_ttl(9);
    q.set_protocol(protocol::TCP);
    q.set_src_addr(Ipv4Addr::new(192, 0, 2, 1));
    q.set_dst_addr(Ipv4Addr::new(192, 0, 2, 2));
    b[20..24].copy_from_slice(&[1, 1, 1, 0]);
    Ipv4Packet::new_unchecked(&mut b[..]).fill_checksum();
    assert_eq!(
        &b[..10],
        &[0x46, 0xb9, 0x00, 0x1c, 0x00, 0x00, 0x20, 0xb9, 0x09, 0x06]
    );
    let p = Ipv4Packet::new_checked(&b[..]).unwrap();
    assert_eq!(p.header_len(), 24);
    assert_eq!((p.dscp(), p.ecn()), (46, 1));
    assert_eq!(p.options(), &[1, 1, 1, 0]);
    assert!(p.more_frags() && !p.dont_frag());
    assert_eq!(p.frag_offset(), 1480);
    assert!(p.is_fragment());
    assert!(p.verify_checksum());
    assert_eq!(p.payload().len(), 4);
}

#[test]
fn ipv4_new_checked_reasons() {
    let good = &ORIG_V4[14..];
    assert_eq!(
        Ipv4Packet::new_checked(&good[..19]).unwrap_err(),
        DropReason::Truncated
    );
    let mut b = good.to_vec();
    b[0] = 0x65;
    assert_eq!(
        Ipv4Packet::new_checked(&b[..]).unwrap_err(),
        DropReason::BadVersion
    );
    b[0] = 0x44;
    assert_eq!(
        Ipv4Packet::new_checked(&b[..]).unwrap_err(),
        DropReason::BadHeaderLength
    );
    b[0] = 0x4f; // 60 bytes of header in a 32-byte buffer
    assert_eq!(
        Ipv4Packet::new_checked(&b[..]).unwrap_err(),
        DropReason::BadHeaderLength
    );
    b[0] = 0x45;
    b[3] = 19; // total length below the header
    assert_eq!(
        Ipv4Packet::new_checked(&b[..]).unwrap_err(),
        DropReason::BadLength
    );
    b[3] = 33; // one byte beyond the buffer
    assert_eq!(
        Ipv4Packet::new_checked(&b[..]).unwrap_err(),
        DropReason::BadLength
    );
}

#[test]
fn ipv6_fixture_both_ways() {
    let p = Ipv6Packet::new_checked(&ORIG_V6[14..]).unwrap();
    assert_eq!(p.version(), 6);
    assert_eq!(p.traffic_class(), 0);
    assert_eq!(p.flow_label(), 0);
    assert_eq!(p.payload_len(), 12);
    assert_eq!(p.total_len(), 52);
    assert_eq!(p.next_header(), protocol::UDP);
    assert_eq!(p.hop_limit(), 1);
    assert_eq!(p.src_addr(), "2001:db8:1::7".parse::<Ipv6Addr>().unwrap());
    assert_eq!(p.dst_addr(), "2001:db8:2::9".parse::<Ipv6Addr>().unwrap());
    assert_eq!(p.payload(), &ORIG_V6[54..]);

    let mut b = [0u8; 52];
    b[40..].copy_from_slice(&ORIG_V6[54..]);
    let mut q = Ipv6Packet::new_unchecked(&mut b[..]);
    q.set_version_tc_flow(0, 0);
    q.set_payload_len(12);
    q.set_next_header(protocol::UDP);
    q.set_hop_limit(1);
    q.set_src_addr("2001:db8:1::7".parse().unwrap());
    q.set_dst_addr("2001:db8:2::9".parse().unwrap());
    assert_eq!(&b[..], &ORIG_V6[14..]);

    // Traffic class and flow label round trip.
    q = Ipv6Packet::new_unchecked(&mut b[..]);
    q.set_version_tc_flow(0xb8, 0xabcde);
    assert_eq!(&b[..4], &[0x6b, 0x8a, 0xbc, 0xde]);
    let p = Ipv6Packet::new_checked(&b[..]).unwrap();
    assert_eq!((p.traffic_class(), p.flow_label()), (0xb8, 0xabcde));
}

#[test]
fn ipv6_new_checked_reasons() {
    let good = &ORIG_V6[14..];
    assert_eq!(
        Ipv6Packet::new_checked(&good[..39]).unwrap_err(),
        DropReason::Truncated
    );
    let mut b = good.to_vec();
    b[0] = 0x40;
    assert_eq!(
        Ipv6Packet::new_checked(&b[..]).unwrap_err(),
        DropReason::BadVersion
    );
    b[0] = 0x60;
    b[5] = 13;
    assert_eq!(
        Ipv6Packet::new_checked(&b[..]).unwrap_err(),
        DropReason::BadLength
    );
}

#[test]
fn udp_ports_and_icmp_fixture_both_ways() {
    let udp = &ORIG_V4[34..];
    let u = UdpPacket::new_checked(udp).unwrap();
    assert_eq!(
        (u.src_port(), u.dst_port(), u.len(), u.checksum()),
        (33434, 33435, 12, 0)
    );
    assert!(!u.is_empty());
    let p = Ports::new_checked(udp).unwrap();
    assert_eq!((p.src_port(), p.dst_port()), (33434, 33435));
    assert!(Ports::new_checked(&udp[..3]).is_none());
    assert_eq!(
        UdpPacket::new_checked(&udp[..7]).unwrap_err(),
        DropReason::Truncated
    );
    let mut b = [0u8; 12];
    let mut w = UdpPacket::new_checked(&mut b[..]).unwrap();
    w.set_src_port(33434);
    w.set_dst_port(33435);
    w.set_len(12);
    w.set_checksum(0);
    b[8..].copy_from_slice(b"abcd");
    assert_eq!(&b[..], udp);

    let icmp = &ICMPV4_TIME_EXCEEDED[20..];
    let i = IcmpPacket::new_checked(icmp).unwrap();
    assert_eq!(
        (i.msg_type(), i.code(), i.checksum(), i.rest()),
        (11, 0, 0xefbd, 0)
    );
    assert_eq!(i.body(), &ORIG_V4[14..42]);
    let mut b = [0u8; 36];
    let mut w = IcmpPacket::new_checked(&mut b[..]).unwrap();
    w.set_msg_type(11);
    w.set_code(0);
    w.set_checksum(0xefbd);
    w.set_rest(0);
    w.body_mut().copy_from_slice(&ORIG_V4[14..42]);
    assert_eq!(&b[..], icmp);
}

// ---------------------------------------------------------------------------------------------
// Address classes.
// ---------------------------------------------------------------------------------------------

fn v4(s: &str) -> u32 {
    u32::from(s.parse::<Ipv4Addr>().unwrap())
}

fn v6(s: &str) -> u128 {
    u128::from(s.parse::<Ipv6Addr>().unwrap())
}

#[test]
fn martians_v4() {
    use AddressClass::*;
    let ok = "198.51.100.7";
    for dst in [
        "0.0.0.0",
        "0.1.2.3",
        "127.0.0.1",
        "127.255.255.254",
        "240.0.0.1",
        "254.1.1.1",
        "169.254.1.1",
    ] {
        assert_eq!(classify_v4(v4(ok), v4(dst)), Martian, "dst {dst}");
    }
    for src in [
        "0.0.0.0",
        "0.1.2.3",
        "127.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "224.0.0.5",
        "239.1.1.1",
        "169.254.9.9",
    ] {
        assert_eq!(classify_v4(v4(src), v4("203.0.113.9")), Martian, "src {src}");
    }
    for dst in ["255.255.255.255", "224.0.0.5", "239.255.255.250"] {
        assert_eq!(classify_v4(v4(ok), v4(dst)), ToKernel, "dst {dst}");
    }
    // DHCP discover: 0.0.0.0 -> 255.255.255.255 goes to the kernel, not to the martian counter.
    assert_eq!(classify_v4(0, u32::MAX), ToKernel);
    for dst in [
        "1.1.1.1",
        "10.0.0.1",
        "223.255.255.255",
        "128.0.0.1",
        "169.253.0.1",
    ] {
        assert_eq!(classify_v4(v4(ok), v4(dst)), Route, "dst {dst}");
    }
}

#[test]
fn martians_v6() {
    use AddressClass::*;
    let ok = "2001:db8:1::7";
    for dst in ["::", "::1", "::ffff:192.0.2.1"] {
        assert_eq!(classify_v6(v6(ok), v6(dst)), Martian, "dst {dst}");
    }
    for src in ["::", "::1", "ff02::1", "fe80::1", "febf::1", "::ffff:10.0.0.1"] {
        assert_eq!(classify_v6(v6(src), v6("2001:db8:2::9")), Martian, "src {src}");
    }
    for dst in ["ff02::1", "ff05::2", "fe80::1", "febf:ffff::1"] {
        assert_eq!(classify_v6(v6(ok), v6(dst)), ToKernel, "dst {dst}");
    }
    // Duplicate address detection: :: -> solicited-node multicast.
    assert_eq!(classify_v6(0, v6("ff02::1:ff00:7")), ToKernel);
    for dst in ["2001:db8::1", "fec0::1", "fc00::1", "::2", "64:ff9b::1"] {
        assert_eq!(classify_v6(v6(ok), v6(dst)), Route, "dst {dst}");
    }
}

// ---------------------------------------------------------------------------------------------
// The pipeline on a small FIB.
// ---------------------------------------------------------------------------------------------

/// Adjacencies: 0 resolved port 1; 1 unresolved via 10.0.0.1 on port 2; 2 local; 3 blackhole;
/// 4 unreachable; 5 resolved port 3 MTU 1280; 6..=9 resolved ports 10..=13 (ECMP); 10
/// connected (no next hop) unresolved on port 4; 11 unresolved via fe80::1 on port 5.
/// Group g = adjacency g - 1 except group 7 = adjacencies 6..=9 and groups 8, 9 = 10, 11.
struct Net {
    fib: FibWriter,
}

impl Net {
    fn new() -> Self {
        let mut fib = FibWriter::default();
        let resolved = |port, mtu| Adjacency {
            dst_mac: Some(NEIGH_MAC),
            ..Adjacency::forward(port, mtu, None, PORT_MAC)
        };
        let adjs = [
            resolved(1, 1500),
            Adjacency::forward(2, 1500, Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))), PORT_MAC),
            Adjacency::discard(AdjacencyKind::Local),
            Adjacency::discard(AdjacencyKind::Blackhole),
            Adjacency::discard(AdjacencyKind::Unreachable),
            resolved(3, 1280),
            resolved(10, 1500),
            resolved(11, 1500),
            resolved(12, 1500),
            resolved(13, 1500),
            Adjacency::forward(4, 1500, None, PORT_MAC),
            Adjacency::forward(5, 1500, Some(IpAddr::V6("fe80::1".parse().unwrap())), PORT_MAC),
        ];
        for (i, a) in adjs.into_iter().enumerate() {
            fib.set_adjacency(AdjacencyId(i as u32), a).unwrap();
        }
        let nh = |a: u32| NextHop {
            adjacency: AdjacencyId(a),
            weight: 1,
        };
        for g in 1..=6 {
            fib.set_group(GroupId::new(g).unwrap(), &[nh(g - 1)]).unwrap();
        }
        fib.set_group(GroupId::new(7).unwrap(), &[nh(6), nh(7), nh(8), nh(9)])
            .unwrap();
        fib.set_group(GroupId::new(8).unwrap(), &[nh(10)]).unwrap();
        fib.set_group(GroupId::new(9).unwrap(), &[nh(11)]).unwrap();
        let routes = [
            ("198.51.100.0/24", 1),
            ("203.0.113.0/24", 1),
            ("10.1.0.0/16", 2),
            ("10.2.0.0/16", 3),
            ("10.3.0.0/16", 4),
            ("10.4.0.0/16", 5),
            ("10.5.0.0/16", 6),
            ("10.6.0.0/16", 7),
            ("10.7.0.0/16", 8),
            ("2001:db8:1::/48", 1),
            ("2001:db8:2::/48", 1),
            ("2001:db8:3::/48", 3),
            ("2001:db8:4::/48", 4),
            ("2001:db8:5::/48", 6),
            ("2001:db8:6::/48", 7),
            ("2001:db8:7::/48", 8),
            ("2001:db8:8::/48", 9),
            ("2001:db8:9::/48", 5),
        ];
        for (p, g) in routes {
            fib.insert(p.parse::<Prefix>().unwrap(), GroupId::new(g).unwrap())
                .unwrap();
        }
        Self { fib }
    }

    fn run(&self, frames: &mut [Vec<u8>]) -> Vec<Verdict> {
        let mut reader = self.fib.reader().unwrap();
        let view = reader.view();
        let mut out = vec![Verdict::ToKernel; frames.len()];
        let mut scratch = Scratch::new(7);
        assert_eq!(forward_batch(frames, &view, &mut out, &mut scratch), frames.len());
        out
    }

    fn one(&self, frame: &mut Vec<u8>) -> Verdict {
        let mut f = [std::mem::take(frame)];
        let v = self.run(&mut f)[0];
        *frame = std::mem::take(&mut f[0]);
        v
    }
}

/// Packet parameters for the frame builders.
#[derive(Clone, Copy)]
struct Pkt {
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    /// IP total length (IPv4) or header + payload length (IPv6).
    len: usize,
    df: bool,
    mf: bool,
    frag_offset: u16,
    proto: u8,
    sport: u16,
    dport: u16,
}

fn pkt(src: &str, dst: &str) -> Pkt {
    Pkt {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        ttl: 64,
        len: 0,
        df: true,
        mf: false,
        frag_offset: 0,
        proto: protocol::UDP,
        sport: 1000,
        dport: 53,
    }
}

/// An Ethernet frame (MAC_A <- MAC_B) with the packet; the payload is a UDP-style header (ports
/// then zeros). Minimal length when `len` is 0.
fn frame(p: Pkt) -> Vec<u8> {
    match (p.src, p.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let len = if p.len == 0 { 28 } else { p.len };
            let mut f = vec![0u8; 14 + len];
            let mut e = EthernetFrame::new_unchecked(&mut f[..]);
            e.set_dst_addr(MAC_A);
            e.set_src_addr(MAC_B);
            e.set_ethertype(ethertype::IPV4);
            let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
            ip.set_header_len(20);
            ip.set_total_len(len as u16);
            ip.set_ident(0x1234);
            ip.set_frag(p.df, p.mf, p.frag_offset);
            ip.set_ttl(p.ttl);
            ip.set_protocol(p.proto);
            ip.set_src_addr(s);
            ip.set_dst_addr(d);
            ip.fill_checksum();
            f[34..36].copy_from_slice(&p.sport.to_be_bytes());
            f[36..38].copy_from_slice(&p.dport.to_be_bytes());
            f
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let len = if p.len == 0 { 48 } else { p.len };
            let mut f = vec![0u8; 14 + len];
            let mut e = EthernetFrame::new_unchecked(&mut f[..]);
            e.set_dst_addr(MAC_A);
            e.set_src_addr(MAC_B);
            e.set_ethertype(ethertype::IPV6);
            let mut ip = Ipv6Packet::new_unchecked(&mut f[14..]);
            ip.set_version_tc_flow(0, 0);
            ip.set_payload_len((len - 40) as u16);
            ip.set_next_header(p.proto);
            ip.set_hop_limit(p.ttl);
            ip.set_src_addr(s);
            ip.set_dst_addr(d);
            f[54..56].copy_from_slice(&p.sport.to_be_bytes());
            f[56..58].copy_from_slice(&p.dport.to_be_bytes());
            f
        }
        _ => unreachable!("mixed families"),
    }
}

fn drop_(r: DropReason) -> Verdict {
    Verdict::Drop(r)
}

fn icmp(kind: IcmpKind, reason: DropReason) -> Verdict {
    Verdict::Icmp { kind, reason }
}

#[test]
fn forwards_ipv4_and_rewrites_ttl_checksum_and_macs() {
    let net = Net::new();
    let orig = frame(pkt("198.51.100.7", "203.0.113.9"));
    let mut f = orig.clone();
    assert_eq!(net.one(&mut f), Verdict::Tx { port: 1 });
    let e = EthernetFrame::new_checked(&f[..]).unwrap();
    assert_eq!((e.dst_addr(), e.src_addr()), (NEIGH_MAC, PORT_MAC));
    let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
    assert_eq!(ip.ttl(), 63);
    assert!(ip.verify_checksum());
    // Nothing else changed.
    let mut expect = orig.clone();
    expect[..6].copy_from_slice(&NEIGH_MAC);
    expect[6..12].copy_from_slice(&PORT_MAC);
    expect[22] = 63;
    Ipv4Packet::new_unchecked(&mut expect[14..]).fill_checksum();
    assert_eq!(f, expect);
}

#[test]
fn forwards_ipv6_and_decrements_hop_limit() {
    let net = Net::new();
    let orig = frame(pkt("2001:db8:1::7", "2001:db8:2::9"));
    let mut f = orig.clone();
    assert_eq!(net.one(&mut f), Verdict::Tx { port: 1 });
    let mut expect = orig;
    expect[..6].copy_from_slice(&NEIGH_MAC);
    expect[6..12].copy_from_slice(&PORT_MAC);
    expect[21] = 63;
    assert_eq!(f, expect);
    let mut f = frame(Pkt {
        ttl: 2,
        ..pkt("2001:db8:1::7", "2001:db8:2::9")
    });
    assert_eq!(net.one(&mut f), Verdict::Tx { port: 1 });
    assert_eq!(Ipv6Packet::new_checked(&f[14..]).unwrap().hop_limit(), 1);
}

#[test]
fn vlan_tagged_frames_keep_their_tag() {
    let net = Net::new();
    let orig = tagged(&frame(pkt("198.51.100.7", "203.0.113.9")));
    let mut f = orig.clone();
    assert_eq!(net.one(&mut f), Verdict::Tx { port: 1 });
    assert_eq!(&f[12..16], &[0x81, 0x00, 0xa0, 0x64]);
    assert_eq!(&f[..6], &NEIGH_MAC);
    let ip = Ipv4Packet::new_checked(&f[18..]).unwrap();
    assert_eq!(ip.ttl(), 63);
    assert!(ip.verify_checksum());

    let mut f = tagged(&frame(pkt("2001:db8:1::7", "2001:db8:2::9")));
    assert_eq!(net.one(&mut f), Verdict::Tx { port: 1 });
    assert_eq!(Ipv6Packet::new_checked(&f[18..]).unwrap().hop_limit(), 63);
    // A tagged ARP frame and a QinQ frame go to the kernel.
    let mut arp = f.clone();
    arp[16..18].copy_from_slice(&ethertype::ARP.to_be_bytes());
    assert_eq!(net.one(&mut arp), Verdict::ToKernel);
    let mut qinq = f.clone();
    qinq[12..14].copy_from_slice(&ethertype::QINQ.to_be_bytes());
    assert_eq!(net.one(&mut qinq), Verdict::ToKernel);
}

#[test]
fn ttl_one_and_zero_are_time_exceeded_and_left_unchanged() {
    let net = Net::new();
    for ttl in [0, 1] {
        for (s, d) in [
            ("198.51.100.7", "203.0.113.9"),
            ("2001:db8:1::7", "2001:db8:2::9"),
        ] {
            let orig = frame(Pkt { ttl, ..pkt(s, d) });
            let mut f = orig.clone();
            assert_eq!(
                net.one(&mut f),
                icmp(IcmpKind::TimeExceeded, DropReason::TtlExceeded),
                "{d} ttl {ttl}"
            );
            assert_eq!(f, orig);
        }
    }
    // TTL 2 leaves with TTL 1.
    let mut f = frame(Pkt {
        ttl: 2,
        ..pkt("198.51.100.7", "203.0.113.9")
    });
    assert_eq!(net.one(&mut f), Verdict::Tx { port: 1 });
    assert_eq!(f[22], 1);
    // TTL 1 to the router itself is delivered, not expired.
    let mut f = frame(Pkt {
        ttl: 1,
        ..pkt("198.51.100.7", "10.2.0.1")
    });
    assert_eq!(net.one(&mut f), Verdict::ToKernel);
}

#[test]
fn every_parse_drop_reason() {
    let net = Net::new();
    let good = frame(pkt("198.51.100.7", "203.0.113.9"));
    let good6 = frame(pkt("2001:db8:1::7", "2001:db8:2::9"));
    let mut cases: Vec<(Vec<u8>, Verdict, &str)> = vec![
        (vec![], drop_(DropReason::Truncated), "empty frame"),
        (
            good[..13].to_vec(),
            drop_(DropReason::Truncated),
            "short Ethernet header",
        ),
        (
            good[..33].to_vec(),
            drop_(DropReason::Truncated),
            "short IPv4 header",
        ),
        (
            good6[..53].to_vec(),
            drop_(DropReason::Truncated),
            "short IPv6 header",
        ),
        (
            tagged(&good)[..16].to_vec(),
            drop_(DropReason::Truncated),
            "short VLAN tag",
        ),
    ];
    let mut edit = |base: &Vec<u8>, f: &dyn Fn(&mut Vec<u8>), v, what| {
        let mut b = base.clone();
        f(&mut b);
        cases.push((b, v, what));
    };
    let fix = |b: &mut Vec<u8>| Ipv4Packet::new_unchecked(&mut b[14..]).fill_checksum();
    edit(
        &good,
        &|b| b[14] = 0x65,
        drop_(DropReason::BadVersion),
        "IPv4 EtherType, version 6",
    );
    edit(
        &good6,
        &|b| b[14] = 0x40,
        drop_(DropReason::BadVersion),
        "IPv6 EtherType, version 4",
    );
    edit(
        &good,
        &|b| b[14] = 0x44,
        drop_(DropReason::BadHeaderLength),
        "IHL 4",
    );
    edit(
        &good,
        &|b| b[14] = 0x4f,
        drop_(DropReason::BadHeaderLength),
        "IHL beyond the frame",
    );
    edit(
        &good,
        &|b| {
            b[17] = 19;
            fix(b)
        },
        drop_(DropReason::BadLength),
        "total length < IHL",
    );
    edit(
        &good,
        &|b| {
            b[17] = 29;
            fix(b)
        },
        drop_(DropReason::BadLength),
        "total length > frame",
    );
    edit(
        &good6,
        &|b| b[19] = 9,
        drop_(DropReason::BadLength),
        "payload length > frame",
    );
    edit(
        &good,
        &|b| b[24] ^= 1,
        drop_(DropReason::BadChecksum),
        "bad checksum",
    );
    edit(
        &good,
        &|b| b[26] ^= 0x80,
        drop_(DropReason::BadChecksum),
        "source changed in flight",
    );
    for (mut f, v, what) in cases {
        assert_eq!(net.one(&mut f), v, "{what}");
    }
    // Ethernet padding after Total Length is fine.
    let mut padded = good.clone();
    padded.extend_from_slice(&[0; 18]);
    assert_eq!(net.one(&mut padded), Verdict::Tx { port: 1 });
}

#[test]
fn not_routed_traffic_goes_to_the_kernel() {
    let net = Net::new();
    let mut arp = frame(pkt("198.51.100.7", "203.0.113.9"));
    arp[12..14].copy_from_slice(&ethertype::ARP.to_be_bytes());
    let mut lldp = arp.clone();
    lldp[12..14].copy_from_slice(&0x88ccu16.to_be_bytes());
    let mut cases = vec![arp, lldp];
    for (s, d) in [
        ("198.51.100.7", "255.255.255.255"),
        ("0.0.0.0", "255.255.255.255"),
        ("198.51.100.7", "224.0.0.5"),
        ("198.51.100.7", "10.2.3.4"), // local route
        ("2001:db8:1::7", "ff02::5"),
        ("2001:db8:1::7", "fe80::1"),
        ("fe80::2", "fe80::1"),
        ("::", "ff02::1:ff00:1"),
        ("2001:db8:1::7", "2001:db8:3::1"), // local route
    ] {
        cases.push(frame(pkt(s, d)));
    }
    for mut f in cases {
        let orig = f.clone();
        assert_eq!(net.one(&mut f), Verdict::ToKernel, "{orig:02x?}");
        assert_eq!(f, orig);
    }
}

#[test]
fn martians_are_dropped() {
    let net = Net::new();
    for (s, d) in [
        ("198.51.100.7", "0.0.0.1"),
        ("198.51.100.7", "127.0.0.1"),
        ("198.51.100.7", "240.0.0.1"),
        ("198.51.100.7", "169.254.0.1"),
        ("0.0.0.0", "203.0.113.9"),
        ("127.0.0.1", "203.0.113.9"),
        ("224.0.0.1", "203.0.113.9"),
        ("255.255.255.255", "203.0.113.9"),
        ("169.254.3.3", "203.0.113.9"),
        ("2001:db8:1::7", "::1"),
        ("2001:db8:1::7", "::"),
        ("::", "2001:db8:2::9"),
        ("::1", "2001:db8:2::9"),
        ("ff02::1", "2001:db8:2::9"),
        ("fe80::1", "2001:db8:2::9"),
        ("::ffff:198.51.100.7", "2001:db8:2::9"),
    ] {
        let mut f = frame(pkt(s, d));
        assert_eq!(net.one(&mut f), drop_(DropReason::Martian), "{s} -> {d}");
    }
}

#[test]
fn route_outcomes() {
    let net = Net::new();
    let cases = [
        (
            "198.51.100.7",
            "192.0.2.1",
            icmp(IcmpKind::NetUnreachable, DropReason::NoRoute),
        ),
        (
            "2001:db8:1::7",
            "2001:db8:ff::1",
            icmp(IcmpKind::NetUnreachable, DropReason::NoRoute),
        ),
        ("198.51.100.7", "10.3.0.1", drop_(DropReason::Blackhole)),
        ("2001:db8:1::7", "2001:db8:4::1", drop_(DropReason::Blackhole)),
        (
            "198.51.100.7",
            "10.4.0.1",
            icmp(IcmpKind::HostUnreachable, DropReason::Unreachable),
        ),
        (
            "2001:db8:1::7",
            "2001:db8:9::1",
            icmp(IcmpKind::HostUnreachable, DropReason::Unreachable),
        ),
    ];
    for (s, d, v) in cases {
        let orig = frame(pkt(s, d));
        let mut f = orig.clone();
        assert_eq!(net.one(&mut f), v, "{d}");
        assert_eq!(f, orig, "{d}: dropped frames are left as received");
        assert!(v.drop_reason().is_some());
    }
}

#[test]
fn mtu_and_df() {
    let net = Net::new();
    let big = |s, d, len, df| frame(Pkt { len, df, ..pkt(s, d) });
    // Exactly the MTU passes.
    let mut f = big("198.51.100.7", "10.5.0.1", 1280, true);
    assert_eq!(net.one(&mut f), Verdict::Tx { port: 3 });
    let mut f = big("2001:db8:1::7", "2001:db8:5::1", 1280, false);
    assert_eq!(net.one(&mut f), Verdict::Tx { port: 3 });
    // One byte more: DF and IPv6 answer "too big" and stay unchanged.
    for (s, d, df) in [
        ("198.51.100.7", "10.5.0.1", true),
        ("2001:db8:1::7", "2001:db8:5::1", false),
    ] {
        let orig = big(s, d, 1281, df);
        let mut f = orig.clone();
        assert_eq!(
            net.one(&mut f),
            icmp(IcmpKind::TooBig { mtu: 1280 }, DropReason::TooBig),
            "{d}"
        );
        assert_eq!(f, orig);
    }
    // IPv4 without DF goes to fragmentation, TTL already decremented.
    let mut f = big("198.51.100.7", "10.5.0.1", 1281, false);
    assert_eq!(
        net.one(&mut f),
        Verdict::Fragment {
            port: 3,
            mtu: 1280,
            adjacency: AdjacencyId(5)
        }
    );
    let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
    assert_eq!(ip.ttl(), 63);
    assert!(ip.verify_checksum());
    assert_eq!(&f[..6], &MAC_A, "MACs are the slow path's");
    // TTL expiry wins over size.
    let mut f = frame(Pkt {
        ttl: 1,
        len: 1400,
        ..pkt("198.51.100.7", "10.5.0.1")
    });
    assert_eq!(
        net.one(&mut f),
        icmp(IcmpKind::TimeExceeded, DropReason::TtlExceeded)
    );
}

#[test]
fn unresolved_neighbours() {
    let net = Net::new();
    let mut f = frame(pkt("198.51.100.7", "10.1.2.3"));
    assert_eq!(
        net.one(&mut f),
        Verdict::Resolve {
            port: 2,
            next_hop: "10.0.0.1".parse().unwrap(),
            adjacency: AdjacencyId(1)
        }
    );
    let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
    assert_eq!(ip.ttl(), 63);
    assert!(ip.verify_checksum());
    assert_eq!(&f[..6], &MAC_A);
    // Connected route: the destination itself is the neighbour.
    let mut f = frame(pkt("198.51.100.7", "10.7.0.9"));
    assert_eq!(
        net.one(&mut f),
        Verdict::Resolve {
            port: 4,
            next_hop: "10.7.0.9".parse().unwrap(),
            adjacency: AdjacencyId(10)
        }
    );
    let mut f = frame(pkt("2001:db8:1::7", "2001:db8:7::9"));
    assert_eq!(
        net.one(&mut f),
        Verdict::Resolve {
            port: 4,
            next_hop: "2001:db8:7::9".parse().unwrap(),
            adjacency: AdjacencyId(10)
        }
    );
    assert_eq!(f[21], 63);
    let mut f = frame(pkt("2001:db8:1::7", "2001:db8:8::9"));
    assert_eq!(
        net.one(&mut f),
        Verdict::Resolve {
            port: 5,
            next_hop: "fe80::1".parse().unwrap(),
            adjacency: AdjacencyId(11)
        }
    );
}

fn ecmp_ports(net: &Net, frames: Vec<Vec<u8>>) -> Vec<u16> {
    let mut frames = frames;
    net.run(&mut frames)
        .into_iter()
        .map(|v| match v {
            Verdict::Tx { port } => port,
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn ecmp_spreads_flows_and_keeps_each_flow_on_one_member() {
    let net = Net::new();
    for (s, d) in [("198.51.100.7", "10.6.1.1"), ("2001:db8:1::7", "2001:db8:6::1")] {
        let flows: Vec<Vec<u8>> = (0..4000u16)
            .map(|i| {
                frame(Pkt {
                    sport: 1024 + i,
                    ..pkt(s, d)
                })
            })
            .collect();
        let first = ecmp_ports(&net, flows.clone());
        let mut count: HashMap<u16, usize> = HashMap::new();
        for p in &first {
            *count.entry(*p).or_default() += 1;
        }
        assert_eq!(count.len(), 4, "{d}: {count:?}");
        for (p, n) in &count {
            assert!((10..=13).contains(p));
            assert!(
                (800..=1200).contains(n),
                "{d}: member {p} got {n} of 4000 flows: {count:?}"
            );
        }
        // The same flows again (new batches, new TTLs) land on the same members.
        let again: Vec<Vec<u8>> = (0..4000u16)
            .map(|i| {
                frame(Pkt {
                    sport: 1024 + i,
                    ttl: 9,
                    ..pkt(s, d)
                })
            })
            .collect();
        assert_eq!(ecmp_ports(&net, again), first, "{d}");
    }
    // Flows that differ only in the source address spread too.
    let flows: Vec<Vec<u8>> = (0..400u32)
        .map(|i| {
            let src =
                Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 51, 100, 0)) + (i % 256) + ((i / 256) << 8));
            frame(pkt(&src.to_string(), "10.6.1.1"))
        })
        .collect();
    let ports = ecmp_ports(&net, flows);
    let distinct: std::collections::HashSet<_> = ports.iter().collect();
    assert_eq!(distinct.len(), 4);
}

#[test]
fn all_fragments_of_a_datagram_take_the_same_member() {
    let net = Net::new();
    for i in 0..64u16 {
        let base = Pkt {
            sport: 5000 + i,
            df: false,
            ..pkt("198.51.100.7", "10.6.1.1")
        };
        let first = frame(Pkt { mf: true, ..base });
        // A later fragment's "port" bytes are payload: make them differ.
        let later = frame(Pkt {
            frag_offset: 1480,
            sport: 7,
            dport: 9,
            ..base
        });
        let ports = ecmp_ports(&net, vec![first, later]);
        assert_eq!(ports[0], ports[1]);
    }
}

#[test]
fn large_batches_and_short_outputs() {
    let net = Net::new();
    let mut frames: Vec<Vec<u8>> = (0..150)
        .map(|i| {
            if i % 3 == 0 {
                frame(pkt("2001:db8:1::7", "2001:db8:2::9"))
            } else {
                frame(pkt("198.51.100.7", "192.0.2.1"))
            }
        })
        .collect();
    let out = net.run(&mut frames);
    for (i, v) in out.iter().enumerate() {
        let expect = if i % 3 == 0 {
            Verdict::Tx { port: 1 }
        } else {
            icmp(IcmpKind::NetUnreachable, DropReason::NoRoute)
        };
        assert_eq!(*v, expect, "frame {i}");
    }
    let mut reader = net.fib.reader().unwrap();
    let view = reader.view();
    let mut out = [Verdict::ToKernel; 5];
    assert_eq!(
        forward_batch(&mut frames, &view, &mut out, &mut Scratch::default()),
        5
    );
    // Fixed-size frames (as UMEM chunks would be sliced) work as well.
    let mut arr = [[0u8; 46]; 2];
    arr[0] = ORIG_V4;
    arr[0][22] = 64;
    Ipv4Packet::new_unchecked(&mut arr[0][14..]).fill_checksum();
    arr[1] = ORIG_V4;
    let mut out = [Verdict::ToKernel; 2];
    forward_batch(&mut arr, &view, &mut out, &mut Scratch::default());
    assert_eq!(
        out,
        [
            Verdict::Tx { port: 1 },
            icmp(IcmpKind::TimeExceeded, DropReason::TtlExceeded)
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// ICMP errors.
// ---------------------------------------------------------------------------------------------

/// Re-parses an ICMPv4 error and checks both checksums; returns (type, code, rest, quote).
fn parse_icmpv4(b: &[u8]) -> (u8, u8, u32, Vec<u8>) {
    let ip = Ipv4Packet::new_checked(b).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.protocol(), protocol::ICMP);
    assert_eq!(usize::from(ip.total_len()), b.len());
    assert!(checksum::verify(ip.payload()), "ICMPv4 checksum");
    let i = IcmpPacket::new_checked(ip.payload()).unwrap();
    (i.msg_type(), i.code(), i.rest(), i.body().to_vec())
}

/// The same for ICMPv6 (pseudo-header checksum).
fn parse_icmpv6(b: &[u8]) -> (u8, u8, u32, Vec<u8>) {
    let ip = Ipv6Packet::new_checked(b).unwrap();
    assert_eq!(ip.next_header(), protocol::ICMPV6);
    assert_eq!(ip.total_len(), b.len());
    let sum = checksum::pseudo_header_v6(&ip.src_addr(), &ip.dst_addr(), u32::from(ip.payload_len()), 58)
        + checksum::sum(ip.payload());
    assert_eq!(checksum::fold(sum), 0xffff, "ICMPv6 checksum");
    let i = IcmpPacket::new_checked(ip.payload()).unwrap();
    (i.msg_type(), i.code(), i.rest(), i.body().to_vec())
}

#[test]
fn icmp_errors_match_the_fixed_bytes() {
    let mut out = [0u8; 1500];
    let n = build_icmp_error(
        &ORIG_V4,
        IcmpKind::TimeExceeded,
        "192.0.2.1".parse().unwrap(),
        &mut out,
    )
    .unwrap();
    assert_eq!(&out[..n], &ICMPV4_TIME_EXCEEDED[..]);
    let n = build_icmp_error(
        &ORIG_V6,
        IcmpKind::TimeExceeded,
        "2001:db8::1".parse().unwrap(),
        &mut out,
    )
    .unwrap();
    assert_eq!(&out[..n], &ICMPV6_TIME_EXCEEDED[..]);
}

#[test]
fn icmpv4_errors_of_every_kind() {
    let mut out = [0u8; 1500];
    let r: IpAddr = "192.0.2.1".parse().unwrap();
    let big = frame(Pkt {
        len: 1400,
        ..pkt("198.51.100.7", "10.5.0.1")
    });
    for (kind, ty, code, rest) in [
        (IcmpKind::NetUnreachable, 3, 0, 0),
        (IcmpKind::HostUnreachable, 3, 1, 0),
        (IcmpKind::TimeExceeded, 11, 0, 0),
        (IcmpKind::TooBig { mtu: 1280 }, 3, 4, 1280),
    ] {
        let n = build_icmp_error(&big, kind, r, &mut out).unwrap();
        assert_eq!(n, 20 + 8 + 28, "{kind:?}: header + 8 bytes quoted");
        let (t, c, rs, quote) = parse_icmpv4(&out[..n]);
        assert_eq!((t, c, rs), (ty, code, rest), "{kind:?}");
        assert_eq!(quote, big[14..42].to_vec());
        let ip = Ipv4Packet::new_checked(&out[..n]).unwrap();
        assert_eq!(ip.src_addr(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(ip.dst_addr(), Ipv4Addr::new(198, 51, 100, 7));
        assert_eq!((ip.ttl(), ip.dscp()), (64, 48));
    }
    // A header with options is quoted whole, plus 8 bytes.
    let mut opt = vec![0u8; 14 + 24 + 20];
    opt[..14].copy_from_slice(&ORIG_V4[..14]);
    let mut ip = Ipv4Packet::new_unchecked(&mut opt[14..]);
    ip.set_header_len(24);
    ip.set_total_len(44);
    ip.set_ttl(1);
    ip.set_protocol(protocol::TCP);
    ip.set_src_addr(Ipv4Addr::new(198, 51, 100, 7));
    ip.set_dst_addr(Ipv4Addr::new(203, 0, 113, 9));
    ip.fill_checksum();
    let n = build_icmp_error(&opt, IcmpKind::TimeExceeded, r, &mut out).unwrap();
    assert_eq!(parse_icmpv4(&out[..n]).3, opt[14..14 + 32].to_vec());
}

#[test]
fn icmpv6_errors_of_every_kind_and_the_1280_limit() {
    let mut out = [0u8; 2000];
    let r: IpAddr = "2001:db8::1".parse().unwrap();
    let big = frame(Pkt {
        len: 1500,
        ..pkt("2001:db8:1::7", "2001:db8:5::1")
    });
    for (kind, ty, code, rest) in [
        (IcmpKind::NetUnreachable, 1, 0, 0),
        (IcmpKind::HostUnreachable, 1, 3, 0),
        (IcmpKind::TimeExceeded, 3, 0, 0),
        (IcmpKind::TooBig { mtu: 1280 }, 2, 0, 1280),
    ] {
        let n = build_icmp_error(&big, kind, r, &mut out).unwrap();
        assert_eq!(n, 1280, "{kind:?}: as much as fits in the minimum MTU");
        let (t, c, rs, quote) = parse_icmpv6(&out[..n]);
        assert_eq!((t, c, rs), (ty, code, rest), "{kind:?}");
        assert_eq!(quote, big[14..14 + 1232].to_vec());
    }
    // A small packet is quoted whole.
    let small = frame(pkt("2001:db8:1::7", "2001:db8:ff::1"));
    let n = build_icmp_error(&small, IcmpKind::NetUnreachable, r, &mut out).unwrap();
    assert_eq!(parse_icmpv6(&out[..n]).3, small[14..].to_vec());
}

#[test]
fn icmp_errors_that_must_not_be_sent() {
    let mut out = [0u8; 1500];
    let r4: IpAddr = "192.0.2.1".parse().unwrap();
    let r6: IpAddr = "2001:db8::1".parse().unwrap();
    let k = IcmpKind::TimeExceeded;
    // Wrong family of router address.
    assert_eq!(build_icmp_error(&ORIG_V4, k, r6, &mut out), None);
    assert_eq!(build_icmp_error(&ORIG_V6, k, r4, &mut out), None);
    // Output too small.
    assert_eq!(build_icmp_error(&ORIG_V4, k, r4, &mut out[..55]), None);
    assert_eq!(build_icmp_error(&ORIG_V6, k, r6, &mut out[..99]), None);
    // About an ICMP error; an echo request is fine.
    let mut f = frame(Pkt {
        proto: protocol::ICMP,
        ..pkt("198.51.100.7", "203.0.113.9")
    });
    f[34] = icmpv4::TIME_EXCEEDED;
    assert_eq!(build_icmp_error(&f, k, r4, &mut out), None);
    f[34] = 8;
    assert!(build_icmp_error(&f, k, r4, &mut out).is_some());
    let mut f = frame(Pkt {
        proto: protocol::ICMPV6,
        ..pkt("2001:db8:1::7", "2001:db8:2::9")
    });
    f[54] = icmpv6::PACKET_TOO_BIG;
    assert_eq!(build_icmp_error(&f, k, r6, &mut out), None);
    f[54] = 128;
    assert!(build_icmp_error(&f, k, r6, &mut out).is_some());
    // Non-first fragment.
    let f = frame(Pkt {
        frag_offset: 8,
        df: false,
        ..pkt("198.51.100.7", "203.0.113.9")
    });
    assert_eq!(build_icmp_error(&f, k, r4, &mut out), None);
    // Unanswerable sources and non-unicast destinations.
    for (s, d) in [
        ("0.0.0.0", "203.0.113.9"),
        ("224.0.0.1", "203.0.113.9"),
        ("198.51.100.7", "255.255.255.255"),
        ("198.51.100.7", "224.0.0.5"),
        ("::", "2001:db8:2::9"),
        ("ff02::1", "2001:db8:2::9"),
        ("2001:db8:1::7", "ff02::1"),
    ] {
        let f = frame(pkt(s, d));
        let r = if f[12] == 0x08 { r4 } else { r6 };
        assert_eq!(build_icmp_error(&f, k, r, &mut out), None, "{s} -> {d}");
    }
    // Corrupt original.
    let mut f = ORIG_V4;
    f[24] ^= 1;
    assert_eq!(build_icmp_error(&f, k, r4, &mut out), None);
}

// ---------------------------------------------------------------------------------------------
// Robustness: nothing panics on arbitrary input.
// ---------------------------------------------------------------------------------------------

/// Arbitrary bytes, and arbitrary bytes behind a plausible Ethernet (optionally tagged) and IP
/// first byte, so that deeper code is reached too.
fn arb_frame() -> impl Strategy<Value = Vec<u8>> {
    let raw = proptest::collection::vec(any::<u8>(), 0..200);
    let shaped = (
        proptest::collection::vec(any::<u8>(), 0..200),
        prop_oneof![Just(0x0800u16), Just(0x86dd), Just(0x0806)],
        any::<bool>(),
        prop_oneof![Just(0x45u8), Just(0x46), Just(0x60), any::<u8>()],
    )
        .prop_map(|(rest, ty, vlan, first)| {
            let mut f = vec![0u8; 12];
            if vlan {
                f.extend_from_slice(&[0x81, 0x00, 0, 5]);
            }
            f.extend_from_slice(&ty.to_be_bytes());
            f.push(first);
            f.extend_from_slice(&rest);
            f
        });
    // Valid packets with random bytes overwritten (checksum refreshed half of the time), so
    // the route, TTL, MTU and rewrite paths see odd values as well.
    let mutated = (
        prop_oneof![
            Just(frame(pkt("198.51.100.7", "10.6.1.1"))),
            Just(frame(pkt("198.51.100.7", "10.1.1.1"))),
            Just(frame(pkt("2001:db8:1::7", "2001:db8:6::1"))),
            Just(frame(Pkt {
                len: 1400,
                ..pkt("198.51.100.7", "10.5.0.1")
            })),
        ],
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        any::<bool>(),
        0usize..60,
    )
        .prop_map(|(mut f, edits, refresh, cut)| {
            for (i, b) in edits {
                let i = i.index(f.len());
                f[i] = b;
            }
            if refresh && f.len() >= 34 && f[12..14] == [0x08, 0x00] && (f[14] & 0x0f) == 5 {
                Ipv4Packet::new_unchecked(&mut f[14..34]).fill_checksum();
            }
            let keep = f.len().saturating_sub(cut);
            f.truncate(keep);
            f
        });
    prop_oneof![raw, shaped, mutated]
}

thread_local! {
    static NET: Net = Net::new();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_frames_never_panic(frames in proptest::collection::vec(arb_frame(), 1..80)) {
        let mut frames = frames;
        let originals = frames.clone();
        let out = NET.with(|net| net.run(&mut frames));
        let mut icmp_out = [0u8; 1500];
        for ((f, o), v) in frames.iter().zip(&originals).zip(&out) {
            prop_assert_eq!(f.len(), o.len());
            match *v {
                Verdict::Tx { .. } | Verdict::Fragment { .. } | Verdict::Resolve { .. } => {}
                Verdict::Icmp { kind, .. } => {
                    prop_assert_eq!(f, o);
                    let r: IpAddr = if f.len() > 13 && EthernetFrame::new_checked(&f[..]).unwrap().payload_ethertype() == ethertype::IPV6 {
                        "2001:db8::1".parse().unwrap()
                    } else {
                        "192.0.2.1".parse().unwrap()
                    };
                    if let Some(n) = build_icmp_error(f, kind, r, &mut icmp_out) {
                        if r.is_ipv4() { parse_icmpv4(&icmp_out[..n]); } else { parse_icmpv6(&icmp_out[..n]); }
                    }
                }
                Verdict::ToKernel | Verdict::Drop(_) => prop_assert_eq!(f, o),
            }
        }
    }

    #[test]
    fn arbitrary_frames_never_panic_the_icmp_builder(f in arb_frame(), small in 0usize..100) {
        let mut out = [0u8; 1500];
        for r in ["192.0.2.1", "2001:db8::1"] {
            let r: IpAddr = r.parse().unwrap();
            for kind in [IcmpKind::TimeExceeded, IcmpKind::TooBig { mtu: 1280 }] {
                let _ = build_icmp_error(&f, kind, r, &mut out);
                let _ = build_icmp_error(&f, kind, r, &mut out[..small]);
            }
        }
    }
}
