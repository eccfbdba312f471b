use super::*;
use proptest::prelude::*;

/// RTM_NEWNEIGH event, IPv4 192.0.2.2 on ifindex 3, REACHABLE, lladdr 5e:f2:61:3e:b2:90, with
/// NDA_PROBES and NDA_CACHEINFO (captured from Linux 6.18 after `resolve`).
const V4_REACHABLE: [u8; 76] = [
    0x4c, 0x00, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, // nlmsghdr
    0x02, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x01, // ndmsg
    0x08, 0x00, 0x01, 0x00, 0xc0, 0x00, 0x02, 0x02, // NDA_DST
    0x0a, 0x00, 0x02, 0x00, 0x5e, 0xf2, 0x61, 0x3e, 0xb2, 0x90, 0x00, 0x00, // NDA_LLADDR
    0x08, 0x00, 0x04, 0x00, 0x04, 0x00, 0x00, 0x00, // NDA_PROBES
    0x14, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,
    0x00, 0x00, 0x00, // NDA_CACHEINFO
];
const V4_MAC: [u8; 6] = [0x5e, 0xf2, 0x61, 0x3e, 0xb2, 0x90];

/// RTM_NEWNEIGH event, IPv6 2001:db8:1::2 on ifindex 3, STALE, lladdr 02:00:5e:00:53:02 (after
/// `ip neigh replace ... nud stale`; nlmsg_seq/pid are those of the `ip` request).
const V6_STALE: [u8; 88] = [
    0x58, 0x00, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x90, 0x6f, 0x00,
    0x00, // nlmsghdr
    0x0a, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x01, // ndmsg
    0x14, 0x00, 0x01, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x02, // NDA_DST
    0x0a, 0x00, 0x02, 0x00, 0x02, 0x00, 0x5e, 0x00, 0x53, 0x02, 0x00, 0x00, // NDA_LLADDR
    0x08, 0x00, 0x04, 0x00, 0x04, 0x00, 0x00, 0x00, // NDA_PROBES
    0x14, 0x00, 0x03, 0x00, 0x70, 0x17, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x00, 0x00, 0x00, // NDA_CACHEINFO
];
const V6_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x53, 0x02];

/// RTM_NEWNEIGH event, IPv4 192.0.2.99 on ifindex 3, FAILED, no lladdr (nobody answered).
const V4_FAILED: [u8; 64] = [
    0x40, 0x00, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, // nlmsghdr
    0x02, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x01, // ndmsg
    0x08, 0x00, 0x01, 0x00, 0xc0, 0x00, 0x02, 0x63, // NDA_DST
    0x08, 0x00, 0x04, 0x00, 0x06, 0x00, 0x00, 0x00, // NDA_PROBES
    0x14, 0x00, 0x03, 0x00, 0xa2, 0x18, 0x00, 0x00, 0x32, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x00, 0x00, 0x00, // NDA_CACHEINFO
];

/// RTM_DELNEIGH event, IPv4 192.0.2.2 on ifindex 3 (after `ip neigh del`; the kernel reports
/// the entry as FAILED first, then deleted).
const V4_DELETED: [u8; 64] = [
    0x40, 0x00, 0x00, 0x00, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, // nlmsghdr
    0x02, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x01, // ndmsg
    0x08, 0x00, 0x01, 0x00, 0xc0, 0x00, 0x02, 0x02, // NDA_DST
    0x08, 0x00, 0x04, 0x00, 0x04, 0x00, 0x00, 0x00, // NDA_PROBES
    0x14, 0x00, 0x03, 0x00, 0x01, 0x02, 0x00, 0x00, 0xce, 0x01, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, // NDA_CACHEINFO
];

fn v4(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A message with this header and payload (no padding after it).
fn msg(kind: u16, flags: u16, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&[0; 8]);
    m.extend_from_slice(payload);
    m
}

/// An error message (or a dump end) with this code and the echoed request header.
fn error_msg(kind: u16, code: i32) -> Vec<u8> {
    let mut p = code.to_ne_bytes().to_vec();
    p.extend_from_slice(&[0; NLMSG_HDRLEN]);
    msg(kind, 0, &p)
}

/// An ndmsg payload with these attributes.
fn neigh_payload(family: u8, ifindex: i32, state: u16, flags: u8, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut p = ndmsg(family, ifindex, state, flags).to_vec();
    for &(k, v) in attrs {
        push_attr(&mut p, k, v);
    }
    p
}

fn parse(buf: &[u8]) -> (Vec<NeighborEvent>, Result<(), ParseError>) {
    let mut out = Vec::new();
    let r = parse_messages(buf, &mut out);
    (out, r)
}

fn parse_ok(buf: &[u8]) -> Vec<NeighborEvent> {
    let (out, r) = parse(buf);
    assert_eq!(r, Ok(()));
    out
}

fn update(ev: &NeighborEvent) -> NeighborUpdate {
    match ev {
        NeighborEvent::Neighbor(u) => *u,
        other => panic!("not a neighbour: {other:?}"),
    }
}

#[test]
fn ipv4_reachable_with_lladdr() {
    let ev = parse_ok(&V4_REACHABLE);
    assert_eq!(
        ev,
        [NeighborEvent::Neighbor(NeighborUpdate {
            ifindex: 3,
            addr: v4("192.0.2.2"),
            mac: Some(V4_MAC),
            state: KernelNudState::Reachable,
            deleted: false,
        })]
    );
    assert_eq!(update(&ev[0]).usable_mac(), Some(V4_MAC));
}

#[test]
fn ipv6_stale_is_still_usable() {
    let ev = parse_ok(&V6_STALE);
    let u = update(&ev[0]);
    assert_eq!(ev.len(), 1);
    assert_eq!(u.addr, v4("2001:db8:1::2"));
    assert_eq!(
        (u.ifindex, u.state, u.mac, u.deleted),
        (3, KernelNudState::Stale, Some(V6_MAC), false)
    );
    assert_eq!(u.usable_mac(), Some(V6_MAC));
}

#[test]
fn failed_without_lladdr_has_no_mac() {
    let ev = parse_ok(&V4_FAILED);
    let u = update(&ev[0]);
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (u.addr, u.state, u.mac),
        (v4("192.0.2.99"), KernelNudState::Failed, None)
    );
    assert_eq!(u.usable_mac(), None);
}

#[test]
fn delneigh_is_a_deletion_without_usable_mac() {
    let ev = parse_ok(&V4_DELETED);
    let u = update(&ev[0]);
    assert_eq!(ev.len(), 1);
    assert!(u.deleted);
    assert_eq!((u.addr, u.ifindex), (v4("192.0.2.2"), 3));
    // Even a deletion that carried a MAC in a usable state gives none.
    let del = NeighborUpdate {
        mac: Some(V4_MAC),
        state: KernelNudState::Reachable,
        ..u
    };
    assert_eq!(del.usable_mac(), None);
}

#[test]
fn usable_states() {
    let all = [
        (libc::NUD_NONE, KernelNudState::None, false),
        (libc::NUD_INCOMPLETE, KernelNudState::Incomplete, false),
        (libc::NUD_REACHABLE, KernelNudState::Reachable, true),
        (libc::NUD_STALE, KernelNudState::Stale, true),
        (libc::NUD_DELAY, KernelNudState::Delay, true),
        (libc::NUD_PROBE, KernelNudState::Probe, true),
        (libc::NUD_FAILED, KernelNudState::Failed, false),
        (libc::NUD_NOARP, KernelNudState::NoArp, true),
        (libc::NUD_PERMANENT, KernelNudState::Permanent, true),
        // Not one state: nothing to trust.
        (libc::NUD_REACHABLE | libc::NUD_STALE, KernelNudState::None, false),
        (0x100, KernelNudState::None, false),
    ];
    for (bits, state, usable) in all {
        assert_eq!(KernelNudState::from_bits(bits), state, "{bits:#x}");
        assert_eq!(state.is_usable(), usable, "{state:?}");
        let u = NeighborUpdate {
            ifindex: 1,
            addr: v4("192.0.2.1"),
            mac: Some(V4_MAC),
            state,
            deleted: false,
        };
        assert_eq!(u.usable_mac().is_some(), usable, "{state:?}");
        assert_eq!(NeighborUpdate { mac: None, ..u }.usable_mac(), None);
    }
}

#[test]
fn errors_and_acks() {
    assert_eq!(
        parse_ok(&error_msg(NLMSG_ERROR, -libc::ENODEV)),
        [NeighborEvent::Error(libc::ENODEV)]
    );
    assert_eq!(parse_ok(&error_msg(NLMSG_ERROR, 0)), []);
    // With NETLINK_CAP_ACK the kernel may send the code alone.
    assert_eq!(
        parse_ok(&msg(NLMSG_ERROR, 0, &(-libc::EINVAL).to_ne_bytes())),
        [NeighborEvent::Error(libc::EINVAL)]
    );
    // The most negative code does not overflow.
    assert_eq!(
        parse_ok(&error_msg(NLMSG_ERROR, i32::MIN)),
        [NeighborEvent::Error(i32::MAX)]
    );
    // No code at all is malformed.
    assert_eq!(
        parse(&msg(NLMSG_ERROR, 0, &[0xff, 0xff])).1,
        Err(ParseError::ShortPayload {
            kind: NLMSG_ERROR,
            len: 2
        })
    );
}

#[test]
fn dump_done() {
    assert_eq!(parse_ok(&error_msg(NLMSG_DONE, 0)), [NeighborEvent::DumpDone]);
    assert_eq!(parse_ok(&msg(NLMSG_DONE, 0, &[])), [NeighborEvent::DumpDone]);
    let mut intr = msg(
        NLMSG_DONE,
        NLM_F_DUMP_INTR | libc::NLM_F_MULTI as u16,
        &0i32.to_ne_bytes(),
    );
    assert_eq!(parse_ok(&intr), [NeighborEvent::Overrun, NeighborEvent::DumpDone]);
    intr = msg(NLMSG_DONE, 0, &(-libc::EINTR).to_ne_bytes());
    assert_eq!(
        parse_ok(&intr),
        [NeighborEvent::Error(libc::EINTR), NeighborEvent::DumpDone]
    );
    assert_eq!(parse_ok(&msg(NLMSG_OVERRUN, 0, &[])), [NeighborEvent::Overrun]);
}

/// A dump datagram: several entries, a message whose length is not a multiple of 4 (padding
/// before the next one), an ignored message type and a no-op, then the end of the dump.
fn multi() -> Vec<u8> {
    let mut buf = Vec::new();
    buf.extend_from_slice(&V4_REACHABLE);
    buf.extend_from_slice(&V6_STALE);
    // NDA_LLADDR last and unpadded inside the message: nlmsg_len = 16 + 12 + 8 + 10 = 46.
    let odd = msg(
        libc::RTM_NEWNEIGH,
        libc::NLM_F_MULTI as u16,
        &[
            neigh_payload(
                AF_INET,
                7,
                libc::NUD_PERMANENT,
                0,
                &[(libc::NDA_DST, &[198, 51, 100, 1])],
            ),
            vec![10, 0, 2, 0, 2, 0, 0, 0, 0, 1],
        ]
        .concat(),
    );
    assert_eq!(odd.len(), 46);
    buf.extend_from_slice(&odd);
    buf.resize(align4(buf.len()), 0);
    buf.extend_from_slice(&msg(libc::RTM_NEWLINK, 0, &[0; 16]));
    buf.extend_from_slice(&msg(NLMSG_NOOP, 0, &[]));
    buf.extend_from_slice(&V4_FAILED);
    buf.extend_from_slice(&error_msg(NLMSG_DONE, 0));
    buf
}

#[test]
fn multi_message_buffer() {
    let ev = parse_ok(&multi());
    assert_eq!(ev.len(), 5, "{ev:?}");
    assert_eq!(update(&ev[0]).addr, v4("192.0.2.2"));
    assert_eq!(update(&ev[1]).addr, v4("2001:db8:1::2"));
    let odd = update(&ev[2]);
    assert_eq!(
        odd,
        NeighborUpdate {
            ifindex: 7,
            addr: v4("198.51.100.1"),
            mac: Some([2, 0, 0, 0, 0, 1]),
            state: KernelNudState::Permanent,
            deleted: false,
        }
    );
    assert_eq!(update(&ev[3]).state, KernelNudState::Failed);
    assert_eq!(ev[4], NeighborEvent::DumpDone);
    // The last message may end without padding in the datagram.
    let mut short = V4_REACHABLE.to_vec();
    short.extend_from_slice(&msg(
        libc::RTM_NEWNEIGH,
        0,
        &[
            neigh_payload(
                AF_INET,
                7,
                libc::NUD_STALE,
                0,
                &[(libc::NDA_DST, &[198, 51, 100, 1])],
            ),
            vec![10, 0, 2, 0, 2, 0, 0, 0, 0, 1],
        ]
        .concat(),
    ));
    assert_eq!(short.len() % 4, 2);
    assert_eq!(parse_ok(&short).len(), 2);
}

#[test]
fn skipped_entries() {
    let dst: &[u8] = &[192, 0, 2, 2];
    let mac: &[u8] = &V4_MAC;
    let skipped = [
        // Bridge FDB entry.
        neigh_payload(
            libc::AF_BRIDGE as u8,
            3,
            libc::NUD_NOARP,
            0x02,
            &[(libc::NDA_LLADDR, mac)],
        ),
        // Proxy ARP entry.
        neigh_payload(
            AF_INET,
            3,
            libc::NUD_NONE,
            libc::NTF_PROXY,
            &[(libc::NDA_DST, dst)],
        ),
        // A link-layer address that is not Ethernet's (a 4-byte tunnel endpoint, none on a
        // device without link-layer addresses).
        neigh_payload(
            AF_INET,
            3,
            libc::NUD_REACHABLE,
            0,
            &[(libc::NDA_DST, dst), (libc::NDA_LLADDR, dst)],
        ),
        neigh_payload(
            AF_INET,
            3,
            libc::NUD_NOARP,
            0,
            &[(libc::NDA_DST, dst), (libc::NDA_LLADDR, &[])],
        ),
    ];
    for p in skipped {
        assert_eq!(parse_ok(&msg(libc::RTM_NEWNEIGH, 0, &p)), [], "{p:02x?}");
    }
    // Unknown attributes, duplicates (the last wins) and the nested bit are tolerated.
    let p = neigh_payload(
        AF_INET,
        3,
        libc::NUD_REACHABLE,
        0,
        &[
            (0x7fff, &[1, 2, 3]),
            (libc::NDA_DST, &[192, 0, 2, 1]),
            (libc::NDA_DST | libc::NLA_F_NESTED as u16, dst),
            (libc::NDA_LLADDR, mac),
        ],
    );
    let ev = parse_ok(&msg(libc::RTM_NEWNEIGH, 0, &p));
    assert_eq!(update(&ev[0]).addr, v4("192.0.2.2"));
}

#[test]
fn hostile_lengths_are_errors() {
    let with_len = |len: u32| {
        let mut m = V4_REACHABLE.to_vec();
        m[..4].copy_from_slice(&len.to_ne_bytes());
        m
    };
    // nlmsg_len smaller than the header, and larger than the buffer.
    for len in [0, 1, 15, 77, u32::MAX] {
        assert!(
            matches!(parse(&with_len(len)).1, Err(ParseError::BadMessageLength { .. })),
            "{len}"
        );
    }
    // Fewer bytes than a header.
    assert_eq!(
        parse(&V4_REACHABLE[..7]).1,
        Err(ParseError::ShortHeader { available: 7 })
    );
    // A payload shorter than ndmsg.
    assert!(matches!(
        parse(&msg(libc::RTM_NEWNEIGH, 0, &[2, 0, 0, 0, 3, 0])).1,
        Err(ParseError::ShortPayload { len: 6, .. })
    ));
    // Attribute lengths 0 and 3 (less than its own header), and one past the message end.
    for alen in [0u16, 3, 0x31, 0xffff] {
        let mut m = V4_REACHABLE.to_vec();
        m[28..30].copy_from_slice(&alen.to_ne_bytes()); // NDA_DST's length
        assert!(
            matches!(parse(&m).1, Err(ParseError::BadAttributeLength { .. })),
            "{alen}"
        );
    }
    // A length inside the message that cuts the value: the address is wrong.
    let mut m = V4_REACHABLE.to_vec();
    m[28..30].copy_from_slice(&9u16.to_ne_bytes());
    assert_eq!(
        parse(&m).1,
        Err(ParseError::BadAddress {
            family: AF_INET,
            len: 5
        })
    );
    let mut m = V4_REACHABLE.to_vec();
    m[56..58].copy_from_slice(&0x15u16.to_ne_bytes()); // NDA_CACHEINFO one byte too long
    assert!(matches!(
        parse(&m).1,
        Err(ParseError::BadAttributeLength { len: 0x15, .. })
    ));
    // Fewer bytes than an attribute header at the end of a message.
    let mut p = neigh_payload(AF_INET, 3, 0, 0, &[(libc::NDA_DST, &[192, 0, 2, 2])]);
    p.extend_from_slice(&[8, 0]);
    assert!(matches!(
        parse(&msg(libc::RTM_NEWNEIGH, 0, &p)).1,
        Err(ParseError::BadAttributeLength { .. })
    ));
}

#[test]
fn hostile_contents_are_errors() {
    let cases: [(Vec<u8>, ParseError); 4] = [
        (
            neigh_payload(AF_INET, 3, 0, 0, &[(libc::NDA_DST, &[192, 0, 2, 2, 0])]),
            ParseError::BadAddress {
                family: AF_INET,
                len: 5,
            },
        ),
        (
            neigh_payload(AF_INET6, 3, 0, 0, &[(libc::NDA_DST, &[192, 0, 2, 2])]),
            ParseError::BadAddress {
                family: AF_INET6,
                len: 4,
            },
        ),
        (
            neigh_payload(AF_INET, 3, 0, 0, &[(libc::NDA_LLADDR, &V4_MAC)]),
            ParseError::MissingAddress,
        ),
        (
            neigh_payload(AF_INET, -1, 0, 0, &[(libc::NDA_DST, &[192, 0, 2, 2])]),
            ParseError::BadIfindex(-1),
        ),
    ];
    for (p, err) in cases {
        assert_eq!(parse(&msg(libc::RTM_DELNEIGH, 0, &p)).1, Err(err));
    }
}

#[test]
fn events_before_an_error_are_kept() {
    let mut buf = V4_REACHABLE.to_vec();
    buf.extend_from_slice(&V6_STALE[..40]);
    let (ev, r) = parse(&buf);
    assert!(matches!(
        r,
        Err(ParseError::BadMessageLength {
            len: 88,
            available: 40
        })
    ));
    assert_eq!(ev.len(), 1);
}

#[test]
fn every_truncation_is_an_error_or_a_shorter_parse() {
    let buf = multi();
    for n in 0..=buf.len() {
        let (ev, _) = parse(&buf[..n]);
        assert!(ev.len() <= 5);
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&buf);
        let _ = parse_address_messages(&buf, &mut Vec::new());
    }

    #[test]
    fn mutated_fixtures_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut buf = multi();
        for (i, b) in edits {
            let i = i.index(buf.len());
            buf[i] = b;
        }
        let _ = parse(&buf);
        let _ = parse_address_messages(&buf, &mut Vec::new());
    }
}

#[test]
fn resolve_request_ipv4_bytes() {
    let m = encode_resolve(0x4d, 3, v4("192.0.2.2")).unwrap();
    #[rustfmt::skip]
    let expected: [u8; 36] = [
        0x24, 0x00, 0x00, 0x00, // nlmsg_len 36
        0x1c, 0x00,             // RTM_NEWNEIGH
        0x01, 0x04,             // NLM_F_REQUEST | NLM_F_CREATE
        0x4d, 0x00, 0x00, 0x00, // seq
        0x00, 0x00, 0x00, 0x00, // port id
        0x02, 0x00, 0x00, 0x00, // AF_INET, padding
        0x03, 0x00, 0x00, 0x00, // ifindex
        0x00, 0x00,             // NUD_NONE
        0x01,                   // NTF_USE
        0x00,                   // ndm_type
        0x08, 0x00, 0x01, 0x00, // NDA_DST, 8 bytes
        0xc0, 0x00, 0x02, 0x02, // 192.0.2.2
    ];
    assert_eq!(m, expected);
}

#[test]
fn resolve_request_ipv6_bytes() {
    let m = encode_resolve(0x0102_0304, 0x0a0b, v4("2001:db8:1::2")).unwrap();
    #[rustfmt::skip]
    let expected: [u8; 48] = [
        0x30, 0x00, 0x00, 0x00, 0x1c, 0x00, 0x01, 0x04, 0x04, 0x03, 0x02, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x0a, 0x00, 0x00, 0x00, // AF_INET6, padding
        0x0b, 0x0a, 0x00, 0x00, // ifindex
        0x00, 0x00, 0x01, 0x00,
        0x14, 0x00, 0x01, 0x00, // NDA_DST, 20 bytes
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
    ];
    assert_eq!(m, expected);
}

#[test]
fn resolve_request_parses_back() {
    for addr in [v4("198.51.100.9"), v4("2001:db8::9")] {
        let m = encode_resolve(1, 42, addr).unwrap();
        let ev = parse_ok(&m);
        assert_eq!(
            ev,
            [NeighborEvent::Neighbor(NeighborUpdate {
                ifindex: 42,
                addr,
                mac: None,
                state: KernelNudState::None,
                deleted: false,
            })]
        );
    }
    let e = encode_resolve(1, u32::MAX, v4("192.0.2.1")).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn neighbor_dump_request_bytes() {
    let m = request(
        libc::RTM_GETNEIGH,
        NLM_F_DUMP,
        9,
        &ndmsg(libc::AF_UNSPEC as u8, 0, 0, 0),
        &[],
    );
    #[rustfmt::skip]
    let expected: [u8; 28] = [
        0x1c, 0x00, 0x00, 0x00, 0x1e, 0x00, 0x01, 0x03, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    assert_eq!(m, expected);
}

/// An ifaddrmsg payload with these attributes.
fn addr_payload(family: u8, prefix: u8, flags: u8, ifindex: u32, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut p = vec![family, prefix, flags, 0];
    p.extend_from_slice(&ifindex.to_ne_bytes());
    for &(k, v) in attrs {
        push_attr(&mut p, k, v);
    }
    p
}

#[test]
fn address_dump() {
    let v6: [u8; 16] = "2001:db8:1::1".parse::<Ipv6Addr>().unwrap().octets();
    let tentative = (libc::IFA_F_TENTATIVE | libc::IFA_F_PERMANENT).to_ne_bytes();
    let mut buf = Vec::new();
    // Point-to-point IPv4: IFA_LOCAL is ours, IFA_ADDRESS the peer.
    buf.extend_from_slice(&msg(
        libc::RTM_NEWADDR,
        0,
        &addr_payload(
            AF_INET,
            32,
            0x80,
            4,
            &[
                (libc::IFA_ADDRESS, &[192, 0, 2, 9]),
                (libc::IFA_LOCAL, &[192, 0, 2, 1]),
                (libc::IFA_LABEL, b"tun0\0"),
            ],
        ),
    ));
    // IPv6: IFA_ADDRESS only, IFA_FLAGS beyond the 8 bits of ifa_flags.
    buf.extend_from_slice(&msg(
        libc::RTM_NEWADDR,
        0,
        &addr_payload(
            AF_INET6,
            64,
            0,
            5,
            &[(libc::IFA_ADDRESS, &v6), (libc::IFA_FLAGS, &tentative)],
        ),
    ));
    // Another family: skipped.
    buf.extend_from_slice(&msg(
        libc::RTM_NEWADDR,
        0,
        &addr_payload(libc::AF_PACKET as u8, 0, 0, 5, &[]),
    ));
    let mut out = Vec::new();
    assert_eq!(parse_address_messages(&buf, &mut out), Ok(DumpProgress::More));
    assert_eq!(
        out,
        [
            InterfaceAddress {
                ifindex: 4,
                addr: v4("192.0.2.1"),
                prefix_len: 32,
                flags: libc::IFA_F_PERMANENT,
            },
            InterfaceAddress {
                ifindex: 5,
                addr: v4("2001:db8:1::1"),
                prefix_len: 64,
                flags: libc::IFA_F_TENTATIVE | libc::IFA_F_PERMANENT,
            },
        ]
    );
    assert!(!out[0].is_tentative());
    assert!(out[1].is_tentative());

    let done = |flags: u16, code: i32| {
        let mut out = Vec::new();
        parse_address_messages(&msg(NLMSG_DONE, flags, &code.to_ne_bytes()), &mut out)
    };
    assert_eq!(done(0, 0), Ok(DumpProgress::Done { interrupted: false }));
    assert_eq!(
        done(NLM_F_DUMP_INTR, 0),
        Ok(DumpProgress::Done { interrupted: true })
    );
    assert_eq!(done(0, -libc::EBUSY), Ok(DumpProgress::Failed(libc::EBUSY)));
    assert_eq!(
        parse_address_messages(&error_msg(NLMSG_ERROR, -libc::EPERM), &mut Vec::new()),
        Ok(DumpProgress::Failed(libc::EPERM))
    );

    // Malformed: no address, a short address, a short header.
    for p in [
        addr_payload(AF_INET, 24, 0, 1, &[]),
        addr_payload(AF_INET, 24, 0, 1, &[(libc::IFA_LOCAL, &[192, 0, 2])]),
        vec![AF_INET, 24, 0, 0, 1],
    ] {
        let r = parse_address_messages(&msg(libc::RTM_NEWADDR, 0, &p), &mut Vec::new());
        assert!(r.is_err(), "{p:?}: {r:?}");
    }
}
