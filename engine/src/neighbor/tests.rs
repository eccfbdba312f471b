#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use super::table::*;
use super::wire::*;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
const MAC1: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC2: [u8; 6] = [2, 0, 0, 0, 0, 2];
const MAC3: [u8; 6] = [2, 0, 0, 0, 0, 3];

fn cfg() -> NeighborConfig {
    NeighborConfig {
        max_entries: 2,
        max_probes: 3,
        retrans_ms: 1_000,
        reachable_ms: 30_000,
        gc_ms: 600_000,
        failed_ms: 3_000,
    }
}

fn reply(mac: [u8; 6]) -> Advert {
    Advert {
        mac,
        solicited: true,
        override_flag: true,
    }
}

fn state(t: &NeighborTable<u64>) -> NeighborState {
    t.get(1, A).unwrap().state
}

#[test]
fn request_retry_fail() {
    let mut t = NeighborTable::<u64>::new(cfg());
    let mut out = PollOutput::default();
    assert_eq!(t.hold(1, A, 10, 0), HoldOutcome::SendRequest);
    assert_eq!(state(&t), NeighborState::Incomplete);
    t.poll(999, &mut out);
    assert!(out.requests.is_empty());
    t.poll(1_000, &mut out);
    assert_eq!(
        out.requests,
        vec![Request {
            port: 1,
            addr: A,
            unicast: None
        }]
    );
    t.poll(2_000, &mut out);
    assert_eq!(out.requests.len(), 1);
    t.hold(1, A, 11, 2_500);
    t.poll(3_000, &mut out);
    assert!(out.requests.is_empty());
    assert_eq!(out.failed, vec![(1, A)]);
    assert_eq!(out.dropped, vec![10, 11]);
    assert_eq!(state(&t), NeighborState::Failed);
    assert_eq!(t.hold(1, A, 12, 4_000), HoldOutcome::Unreachable(12));
    assert_eq!(t.counters().failures, 1);
    assert_eq!(t.counters().hold_dropped, 2);
    // After failed_ms resolution may start again.
    assert_eq!(t.hold(1, A, 13, 6_000), HoldOutcome::SendRequest);
    assert_eq!(state(&t), NeighborState::Incomplete);
    // Or the failed entry is removed by poll.
    let mut t = NeighborTable::<u64>::new(cfg());
    t.hold(1, A, 1, 0);
    for ms in [1_000, 2_000, 3_000] {
        t.poll(ms, &mut out);
    }
    t.poll(6_000, &mut out);
    assert!(t.is_empty());
}

#[test]
fn learn_releases_in_order_and_stales_and_reprobes() {
    let mut t = NeighborTable::<u64>::new(cfg());
    let mut out = PollOutput::default();
    let mut rel = Vec::with_capacity(HOLD_LEN);
    assert_eq!(t.hold(1, A, 1, 0), HoldOutcome::SendRequest);
    for h in 2..=4 {
        assert_eq!(t.hold(1, A, h, 0), HoldOutcome::Queued);
    }
    assert_eq!(t.hold(1, A, 5, 0), HoldOutcome::QueueFull(5));
    assert_eq!(t.counters().hold_full, 1);
    assert_eq!(
        t.learn(1, A, reply(MAC1), 500, &mut rel),
        LearnOutcome::Resolved {
            mac: MAC1,
            changed: true
        }
    );
    assert_eq!(rel, vec![1, 2, 3, 4]);
    assert_eq!(
        t.get(1, A),
        Some(NeighborInfo {
            state: NeighborState::Reachable,
            mac: Some(MAC1)
        })
    );
    assert_eq!(
        t.hold(1, A, 6, 600),
        HoldOutcome::Send {
            mac: MAC1,
            request: None
        }
    );
    // Same MAC again: not changed.
    rel.clear();
    assert_eq!(
        t.learn(1, A, reply(MAC1), 700, &mut rel),
        LearnOutcome::Resolved {
            mac: MAC1,
            changed: false
        }
    );
    assert!(rel.is_empty());
    t.poll(30_699, &mut out);
    assert_eq!(state(&t), NeighborState::Reachable);
    t.poll(30_700, &mut out);
    assert_eq!(state(&t), NeighborState::Stale);
    assert!(out.requests.is_empty());
    // Next use re-confirms with a unicast request.
    let probe = Request {
        port: 1,
        addr: A,
        unicast: Some(MAC1),
    };
    assert_eq!(t.touch(1, A, 31_000), Some(probe));
    assert_eq!(state(&t), NeighborState::Probe);
    assert_eq!(t.touch(1, A, 31_001), None);
    t.poll(32_000, &mut out);
    assert_eq!(out.requests, vec![probe]);
    assert_eq!(
        t.learn(1, A, reply(MAC1), 32_100, &mut rel),
        LearnOutcome::Resolved {
            mac: MAC1,
            changed: false
        }
    );
    assert_eq!(state(&t), NeighborState::Reachable);
    // Stale via hold: the frame goes out and a probe is requested; no answer: failed.
    t.poll(62_100, &mut out);
    assert_eq!(
        t.hold(1, A, 7, 62_200),
        HoldOutcome::Send {
            mac: MAC1,
            request: Some(probe)
        }
    );
    for ms in [63_200, 64_200] {
        t.poll(ms, &mut out);
        assert_eq!(out.requests, vec![probe]);
    }
    t.poll(65_200, &mut out);
    assert_eq!(out.failed, vec![(1, A)]);
    assert_eq!(t.get(1, A).unwrap().mac, None);
}

#[test]
fn ageing_out() {
    let mut t = NeighborTable::<u64>::new(cfg());
    let mut out = PollOutput::default();
    let mut rel = Vec::new();
    t.hold(1, A, 1, 0);
    t.learn(1, A, reply(MAC1), 0, &mut rel);
    t.poll(30_000, &mut out);
    assert_eq!(state(&t), NeighborState::Stale);
    t.poll(599_999, &mut out);
    assert!(out.expired.is_empty());
    t.poll(600_000, &mut out);
    assert_eq!(out.expired, vec![(1, A)]);
    assert!(t.is_empty());
}

#[test]
fn table_full_is_refused() {
    let mut t = NeighborTable::<u64>::new(cfg());
    let b = IpAddr::V6(Ipv6Addr::LOCALHOST);
    assert_eq!(t.hold(1, A, 1, 0), HoldOutcome::SendRequest);
    assert_eq!(t.hold(2, A, 2, 0), HoldOutcome::SendRequest);
    assert_eq!(t.hold(1, b, 3, 0), HoldOutcome::TableFull(3));
    assert_eq!(t.hold(1, A, 4, 0), HoldOutcome::Queued);
    assert_eq!(t.len(), 2);
    assert_eq!(t.counters().table_full, 1);
    let mut dropped = Vec::new();
    assert!(t.remove(1, A, &mut dropped));
    assert_eq!(dropped, vec![1, 4]);
    assert_eq!(t.hold(1, b, 3, 0), HoldOutcome::SendRequest);
}

#[test]
fn no_entries_from_unsolicited_messages_and_gratuitous_updates() {
    let mut t = NeighborTable::<u64>::new(cfg());
    let mut rel = Vec::new();
    assert_eq!(t.learn(1, A, reply(MAC1), 0, &mut rel), LearnOutcome::Ignored);
    assert!(t.is_empty());
    assert_eq!(t.counters().ignored, 1);
    t.hold(1, A, 1, 0);
    t.learn(1, A, reply(MAC1), 0, &mut rel);
    // Gratuitous ARP (a request) with a new MAC updates the entry, as stale.
    let garp = ArpRepr {
        op: arp_op::REQUEST,
        sender_mac: MAC2,
        sender_ip: Ipv4Addr::new(192, 0, 2, 2),
        target_mac: [0; 6],
        target_ip: Ipv4Addr::new(192, 0, 2, 2),
    };
    assert_eq!(
        t.learn(1, A, garp.advert(), 10, &mut rel),
        LearnOutcome::Resolved {
            mac: MAC2,
            changed: true
        }
    );
    assert_eq!(
        t.get(1, A),
        Some(NeighborInfo {
            state: NeighborState::Stale,
            mac: Some(MAC2)
        })
    );
    // NA without override and another MAC: kept (RFC 4861 7.2.5).
    t.learn(1, A, reply(MAC2), 20, &mut rel);
    let weak = Advert {
        mac: MAC3,
        solicited: true,
        override_flag: false,
    };
    assert_eq!(t.learn(1, A, weak, 30, &mut rel), LearnOutcome::NotOverridden);
    assert_eq!(
        t.get(1, A),
        Some(NeighborInfo {
            state: NeighborState::Stale,
            mac: Some(MAC2)
        })
    );
    // Unsolicited advert resolving an incomplete entry: stale.
    let b = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3));
    t.hold(1, b, 9, 0);
    let unsolicited = Advert {
        mac: MAC3,
        solicited: false,
        override_flag: true,
    };
    assert_eq!(
        t.learn(1, b, unsolicited, 0, &mut rel),
        LearnOutcome::Resolved {
            mac: MAC3,
            changed: true
        }
    );
    assert_eq!(t.get(1, b).unwrap().state, NeighborState::Stale);
}

const ARP_REQUEST: [u8; 60] = {
    let mut f = [0u8; 60];
    let h: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06, // Ethernet
        0, 1, 0x08, 0, 6, 4, 0, 1, // htype, ptype, hlen, plen, op
        2, 0, 0, 0, 0, 1, 192, 0, 2, 1, // sender
        0, 0, 0, 0, 0, 0, 192, 0, 2, 2, // target
    ];
    let mut i = 0;
    while i < 42 {
        f[i] = h[i];
        i += 1;
    }
    f
};

#[test]
fn arp_request_and_reply_fixtures() {
    let mut buf = [0xaa; 128];
    let n = build_arp_request(
        &mut buf,
        MAC1,
        Ipv4Addr::new(192, 0, 2, 1),
        Ipv4Addr::new(192, 0, 2, 2),
        None,
    )
    .unwrap();
    assert_eq!(&buf[..n], &ARP_REQUEST[..]);
    let NeighborMessage::Arp(req) = parse(&ARP_REQUEST).unwrap() else {
        panic!()
    };
    assert_eq!(req.op, arp_op::REQUEST);
    assert_eq!(req.sender_mac, MAC1);
    assert_eq!(req.target_ip, Ipv4Addr::new(192, 0, 2, 2));
    // Answered by 192.0.2.2.
    assert_eq!(
        build_arp_reply(&mut buf, &req, MAC2, Ipv4Addr::new(192, 0, 2, 9)),
        Ok(None)
    );
    let n = build_arp_reply(&mut buf, &req, MAC2, Ipv4Addr::new(192, 0, 2, 2))
        .unwrap()
        .unwrap();
    let expected: [u8; 42] = [
        2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2, 2, 0, 0, 0, 0, 2, 192, 0,
        2, 2, 2, 0, 0, 0, 0, 1, 192, 0, 2, 1,
    ];
    assert_eq!(n, 60);
    assert_eq!(&buf[..42], &expected[..]);
    assert!(buf[42..60].iter().all(|&b| b == 0));
    let NeighborMessage::Arp(rep) = parse(&buf[..n]).unwrap() else {
        panic!()
    };
    assert_eq!(
        rep.advert(),
        Advert {
            mac: MAC2,
            solicited: true,
            override_flag: true
        }
    );
    // Unicast probe.
    build_arp_request(
        &mut buf,
        MAC1,
        Ipv4Addr::new(192, 0, 2, 1),
        Ipv4Addr::new(192, 0, 2, 2),
        Some(MAC2),
    )
    .unwrap();
    assert_eq!(&buf[..6], &MAC2);
    assert_eq!(
        build_arp_request(
            &mut buf[..59],
            MAC1,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            None
        ),
        Err(BuildError::BufferTooSmall)
    );
    // Malformed.
    let mut bad = ARP_REQUEST;
    bad[21] = 3;
    assert_eq!(parse(&bad), Err(ParseError::ArpBadOp));
    bad[18] = 8;
    assert_eq!(parse(&bad), Err(ParseError::ArpUnsupported));
    assert_eq!(parse(&ARP_REQUEST[..41]), Err(ParseError::Truncated));
}

fn ll(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn ns_fixture() -> Vec<u8> {
    let mut f = vec![0x33, 0x33, 0xff, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];
    f.extend([0x60, 0, 0, 0, 0, 32, 58, 255]);
    f.extend(ll("fe80::1").octets());
    f.extend(ll("ff02::1:ff00:2").octets());
    f.extend([135, 0, 0x7a, 0x97, 0, 0, 0, 0]);
    f.extend(ll("fe80::2").octets());
    f.extend([1, 1, 2, 0, 0, 0, 0, 1]);
    f
}

fn na_fixture() -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd];
    f.extend([0x60, 0, 0, 0, 0, 32, 58, 255]);
    f.extend(ll("fe80::2").octets());
    f.extend(ll("fe80::1").octets());
    f.extend([136, 0, 0x18, 0x1a, 0x60, 0, 0, 0]);
    f.extend(ll("fe80::2").octets());
    f.extend([2, 1, 2, 0, 0, 0, 0, 2]);
    f
}

#[test]
fn neighbor_solicit_fixture() {
    let mut buf = [0u8; 128];
    let n = build_neighbor_solicit(&mut buf, MAC1, ll("fe80::1"), ll("fe80::2"), None).unwrap();
    assert_eq!(n, ND_FRAME_LEN);
    assert_eq!(&buf[..n], &ns_fixture()[..]);
    assert_eq!(
        parse(&ns_fixture()),
        Ok(NeighborMessage::Solicit(NeighborSolicit {
            eth_src: MAC1,
            src: ll("fe80::1"),
            dst: ll("ff02::1:ff00:2"),
            target: ll("fe80::2"),
            source_mac: Some(MAC1),
        }))
    );
    assert_eq!(solicited_node(ll("2001:db8::12:3456")), ll("ff02::1:ff12:3456"));
    // Unicast probe goes to the target itself and verifies.
    let n = build_neighbor_solicit(&mut buf, MAC1, ll("fe80::1"), ll("fe80::2"), Some(MAC2)).unwrap();
    assert_eq!(&buf[..6], &MAC2);
    let NeighborMessage::Solicit(ns) = parse(&buf[..n]).unwrap() else {
        panic!()
    };
    assert_eq!(ns.dst, ll("fe80::2"));
}

#[test]
fn neighbor_advert_fixture_and_answer() {
    let NeighborMessage::Advert(na) = parse(&na_fixture()).unwrap() else {
        panic!()
    };
    assert_eq!(na.target, ll("fe80::2"));
    assert!(na.solicited && na.override_flag && !na.router);
    assert_eq!(
        na.advert(),
        Some(Advert {
            mac: MAC2,
            solicited: true,
            override_flag: true
        })
    );
    // We (fe80::1, MAC1) answer the NS sent by fe80::2 for our address.
    let ns = NeighborSolicit {
        eth_src: MAC2,
        src: ll("fe80::2"),
        dst: ll("ff02::1:ff00:1"),
        target: ll("fe80::1"),
        source_mac: Some(MAC2),
    };
    let mut buf = [0u8; 128];
    assert_eq!(
        build_neighbor_advert(&mut buf, &ns, MAC1, ll("fe80::9")),
        Ok(None)
    );
    let n = build_neighbor_advert(&mut buf, &ns, MAC1, ll("fe80::1"))
        .unwrap()
        .unwrap();
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];
    f.extend([0x60, 0, 0, 0, 0, 32, 58, 255]);
    f.extend(ll("fe80::1").octets());
    f.extend(ll("fe80::2").octets());
    f.extend([136, 0, 0x98, 0x1b, 0xe0, 0, 0, 0]);
    f.extend(ll("fe80::1").octets());
    f.extend([2, 1, 2, 0, 0, 0, 0, 1]);
    assert_eq!(&buf[..n], &f[..]);
    // DAD: from ::, answered to all-nodes without S.
    let dad = NeighborSolicit {
        src: Ipv6Addr::UNSPECIFIED,
        source_mac: None,
        ..ns
    };
    let n = build_neighbor_advert(&mut buf, &dad, MAC1, ll("fe80::1"))
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..6], &[0x33, 0x33, 0, 0, 0, 1]);
    let NeighborMessage::Advert(na) = parse(&buf[..n]).unwrap() else {
        panic!()
    };
    assert!(!na.solicited && na.router && na.override_flag);
}

#[test]
fn nd_rejections() {
    let mut f = na_fixture();
    f[14 + 40 + 2] ^= 1;
    assert_eq!(parse(&f), Err(ParseError::BadChecksum));
    let mut f = na_fixture();
    f[14 + 7] = 64;
    assert_eq!(parse(&f), Err(ParseError::BadHopLimit));
    let mut f = na_fixture();
    f[14 + 40 + 1] = 1;
    assert_eq!(parse(&f), Err(ParseError::NotNd));
    let mut f = na_fixture();
    f[14 + 40 + 25] = 0;
    let c = crate::packet::wire::checksum::update(u16::from_be_bytes([f[56], f[57]]), 0x0201, 0x0200);
    f[56..58].copy_from_slice(&c.to_be_bytes());
    assert_eq!(parse(&f), Err(ParseError::BadOption));
    let f = na_fixture();
    assert_eq!(parse(&f[..f.len() - 1]), Err(ParseError::Truncated));
    let mut f = na_fixture();
    f[14 + 6] = 17;
    assert_eq!(parse(&f), Err(ParseError::NotNeighbor));
    let mut f = na_fixture();
    f[14] = 0x40;
    assert_eq!(parse(&f), Err(ParseError::BadVersion));
    let mut f = ns_fixture();
    f[12] = 0x08;
    f[13] = 0x00;
    assert_eq!(parse(&f), Err(ParseError::NotNeighbor));
}

proptest! {
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
        let _ = parse(&bytes);
    }

    #[test]
    fn mutated_fixtures_never_panic(i in 0usize..86, b in any::<u8>(), cut in 0usize..87) {
        for mut f in [ns_fixture(), na_fixture(), ARP_REQUEST.to_vec()] {
            if let Some(x) = f.get_mut(i) { *x = b; }
            f.truncate(cut);
            let _ = parse(&f);
        }
    }

    #[test]
    fn built_ns_round_trips(src in any::<[u8; 16]>(), target in any::<[u8; 16]>(), mac in any::<[u8; 6]>()) {
        let (src, target) = (Ipv6Addr::from(src), Ipv6Addr::from(target));
        prop_assume!(!src.is_unspecified() && !target.is_multicast());
        let mut buf = [0u8; 128];
        let n = build_neighbor_solicit(&mut buf, mac, src, target, None).unwrap();
        let NeighborMessage::Solicit(ns) = parse(&buf[..n]).unwrap() else { panic!() };
        prop_assert_eq!(ns.target, target);
        prop_assert_eq!(ns.source_mac, Some(mac));
    }

    #[test]
    fn hold_queue_bounded(ops in proptest::collection::vec((0u8..3, 0u64..5_000), 0..200)) {
        let mut t = NeighborTable::<u64>::new(cfg());
        let mut out = PollOutput::default();
        let mut rel = Vec::new();
        let mut now = 0;
        for (i, (op, dt)) in ops.into_iter().enumerate() {
            now += dt;
            match op {
                0 => { t.hold(1, A, i as u64, now); }
                1 => { rel.clear(); t.learn(1, A, reply(MAC1), now, &mut rel); prop_assert!(rel.len() <= HOLD_LEN); }
                _ => { t.poll(now, &mut out); prop_assert!(out.dropped.len() <= HOLD_LEN); }
            }
            prop_assert!(t.len() <= 1);
        }
    }
}
