//! Hand-written messages, decoded to the structs they mean and encoded back to the same bytes.

use super::super::types::{
    AsPath, AsSegment, Community, Family, NextHop, Origin, PathAttributes, RawAttribute,
};
use super::*;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A whole message of type `ty` around `body`.
pub(super) fn message(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut m = MARKER.to_vec();
    m.extend_from_slice(&((HEADER_LEN + body.len()) as u16).to_be_bytes());
    m.push(ty);
    m.extend_from_slice(body);
    m
}

/// An UPDATE from its three fields.
pub(super) fn update(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut body = (withdrawn.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(withdrawn);
    body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    body.extend_from_slice(attrs);
    body.extend_from_slice(nlri);
    message(message_type::UPDATE, &body)
}

/// One attribute (Extended Length when the flags ask for it).
pub(super) fn attr(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let mut a = vec![flags, code];
    if flags & 0x10 != 0 {
        a.extend_from_slice(&(value.len() as u16).to_be_bytes());
    } else {
        a.push(value.len() as u8);
    }
    a.extend_from_slice(value);
    a
}

pub(super) fn ctx(four_octet_as: bool, ebgp: bool) -> DecodeContext {
    DecodeContext::new(four_octet_as, ebgp, FamilySet::all())
}

pub(super) fn nets(s: &[&str]) -> Vec<IpNet> {
    s.iter().map(|p| p.parse().unwrap()).collect()
}

pub(super) fn decode_update(m: &[u8], ctx: &DecodeContext) -> Update {
    match decode(m, ctx) {
        Ok(Message::Update(u)) => u,
        other => panic!("not an UPDATE: {other:?}"),
    }
}

fn encode_update(u: &Update, four_octet_as: bool) -> Vec<u8> {
    Message::Update(u.clone())
        .to_bytes(&EncodeContext { four_octet_as })
        .unwrap()
}

/// ORIGIN IGP, AS_PATH, in 4 octets.
fn origin_igp() -> Vec<u8> {
    attr(0x40, 1, &[0])
}

#[test]
fn keepalive_both_ways() {
    let wire = message(message_type::KEEPALIVE, &[]);
    assert_eq!(wire.len(), 19);
    assert_eq!(decode(&wire, &ctx(true, true)), Ok(Message::Keepalive));
    let back = Message::Keepalive.to_bytes(&EncodeContext { four_octet_as: true });
    assert_eq!(back.unwrap(), wire);
}

#[test]
fn ipv4_update_with_every_attribute_both_ways() {
    let mut attrs = origin_igp();
    // AS_PATH: sequence 64500 4200000000, set {64510 64511}.
    attrs.extend(attr(
        0x40,
        2,
        &[
            2, 2, 0, 0, 0xFB, 0xF4, 0xFA, 0x56, 0xEA, 0x00, 1, 2, 0, 0, 0xFB, 0xFE, 0, 0, 0xFB, 0xFF,
        ],
    ));
    attrs.extend(attr(0x40, 3, &[192, 0, 2, 1]));
    attrs.extend(attr(0x80, 4, &[0, 0, 0, 50]));
    attrs.extend(attr(0x40, 5, &[0, 0, 0, 200]));
    attrs.extend(attr(0x40, 6, &[]));
    attrs.extend(attr(0xC0, 7, &[0, 0, 0xFB, 0xF4, 10, 0, 0, 1]));
    attrs.extend(attr(0xC0, 8, &[0xFB, 0xF4, 0, 1, 0xFF, 0xFF, 0xFF, 0x01]));
    // An unknown optional transitive attribute (OTC, RFC 9234), already marked Partial.
    attrs.extend(attr(0xE0, 35, &[0, 0, 0xFB, 0xF4]));
    let nlri = [24, 198, 51, 100, 16, 172, 16, 8, 10];
    let wire = update(&[], &attrs, &nlri);

    let u = decode_update(&wire, &ctx(true, false));
    let expected_attrs = PathAttributes {
        origin: Origin::Igp,
        as_path: AsPath {
            segments: vec![
                AsSegment::Sequence(vec![64500, 4_200_000_000]),
                AsSegment::Set(vec![64510, 64511]),
            ],
        },
        next_hop: NextHop::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
        med: Some(50),
        local_pref: Some(200),
        atomic_aggregate: true,
        aggregator: Some((64500, Ipv4Addr::new(10, 0, 0, 1))),
        communities: vec![Community::new(64500, 1), Community::NO_EXPORT],
        unknown: vec![RawAttribute {
            flags: 0xE0,
            type_code: 35,
            value: vec![0, 0, 0xFB, 0xF4],
        }],
    };
    assert_eq!(
        u,
        Update {
            withdrawn: vec![],
            announced: vec![Announcement {
                family: Family::Ipv4Unicast,
                attrs: expected_attrs,
                prefixes: nets(&["198.51.100.0/24", "172.16.0.0/16", "10.0.0.0/8"]),
            }],
            eor: None,
            issues: vec![],
        }
    );
    assert_eq!(encode_update(&u, true), wire);
}

#[test]
fn unknown_transitive_attributes_get_the_partial_bit_when_passed_on() {
    let mut attrs = origin_igp();
    attrs.extend(attr(0x40, 2, &[]));
    attrs.extend(attr(0x40, 3, &[192, 0, 2, 1]));
    attrs.extend(attr(0xC0, 35, &[1, 2, 3, 4]));
    let wire = update(&[], &attrs, &[8, 10]);
    let u = decode_update(&wire, &ctx(true, false));
    assert_eq!(u.announced[0].attrs.unknown[0].flags, 0xC0);
    let out = encode_update(&u, true);
    let mut expected = wire.clone();
    let at = expected.len() - 2 - 7;
    assert_eq!(&expected[at..at + 2], &[0xC0, 35]);
    expected[at] = 0xE0;
    assert_eq!(out, expected);
    // Large communities are recognized: their flags stay as they came.
    let mut attrs = origin_igp();
    attrs.extend(attr(0x40, 2, &[]));
    attrs.extend(attr(0x40, 3, &[192, 0, 2, 1]));
    attrs.extend(attr(0xC0, 32, &[0, 0, 0xFB, 0xF4, 0, 0, 0, 1, 0, 0, 0, 2]));
    let wire = update(&[], &attrs, &[8, 10]);
    let u = decode_update(&wire, &ctx(true, false));
    assert_eq!(encode_update(&u, true), wire);
}

#[test]
fn ipv4_withdrawal_both_ways() {
    let wire = update(&[24, 198, 51, 100, 32, 192, 0, 2, 1], &[], &[]);
    let u = decode_update(&wire, &ctx(true, true));
    assert_eq!(u.withdrawn, nets(&["198.51.100.0/24", "192.0.2.1/32"]));
    assert!(u.announced.is_empty() && u.issues.is_empty());
    assert_eq!(u.end_of_rib(), None);
    assert_eq!(encode_update(&u, true), wire);
}

fn ipv6_next_hop_value() -> Vec<u8> {
    let global: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let ll: Ipv6Addr = "fe80::1".parse().unwrap();
    let mut v = global.octets().to_vec();
    v.extend_from_slice(&ll.octets());
    v
}

#[test]
fn ipv6_mp_reach_with_link_local_next_hop_both_ways() {
    let mut mp = vec![0, 2, 1, 32];
    mp.extend(ipv6_next_hop_value());
    mp.push(0);
    mp.extend_from_slice(&[32, 0x20, 0x01, 0x0d, 0xb8, 48, 0x20, 0x01, 0x0d, 0xb8, 0, 1]);
    let mut attrs = attr(0x80, 14, &mp);
    attrs.extend(origin_igp());
    attrs.extend(attr(0x40, 2, &[2, 1, 0, 0, 0xFD, 0xE9]));
    let wire = update(&[], &attrs, &[]);

    let u = decode_update(&wire, &ctx(true, true));
    assert_eq!(u.announced.len(), 1);
    let a = &u.announced[0];
    assert_eq!(a.family, Family::Ipv6Unicast);
    assert_eq!(a.prefixes, nets(&["2001:db8::/32", "2001:db8:1::/48"]));
    assert_eq!(
        a.attrs.next_hop,
        NextHop {
            addr: "2001:db8::1".parse().unwrap(),
            link_local: Some("fe80::1".parse().unwrap()),
        }
    );
    assert_eq!(a.attrs.as_path, AsPath::sequence([65001]));
    assert!(u.issues.is_empty());
    assert_eq!(encode_update(&u, true), wire);
}

#[test]
fn a_link_local_next_hop_behind_an_unspecified_global_one_stands_alone() {
    let mut mp = vec![0, 2, 1, 32];
    mp.extend_from_slice(&[0; 16]);
    mp.extend_from_slice(&"fe80::2".parse::<Ipv6Addr>().unwrap().octets());
    mp.extend_from_slice(&[0, 32, 0x20, 0x01, 0x0d, 0xb8]);
    let attrs = [attr(0x80, 14, &mp), origin_igp(), attr(0x40, 2, &[])].concat();
    let u = decode_update(&update(&[], &attrs, &[]), &ctx(true, false));
    assert!(u.issues.is_empty(), "{:?}", u.issues);
    assert_eq!(
        u.announced[0].attrs.next_hop,
        NextHop::new("fe80::2".parse().unwrap())
    );
}

#[test]
fn ipv6_mp_unreach_both_ways() {
    let attrs = attr(0x80, 15, &[0, 2, 1, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 7]);
    let wire = update(&[], &attrs, &[]);
    let u = decode_update(&wire, &ctx(true, true));
    assert_eq!(u.withdrawn, nets(&["2001:db8:0:7::/64"]));
    assert_eq!(u.end_of_rib(), None);
    assert_eq!(encode_update(&u, true), wire);
}

#[test]
fn ipv4_nlri_and_ipv6_mp_reach_in_one_update_keep_their_own_next_hops() {
    let mut mp = vec![0, 2, 1, 16];
    mp.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
    mp.push(0);
    mp.extend_from_slice(&[32, 0x20, 0x01, 0x0d, 0xb8]);
    let mut attrs = attr(0x80, 14, &mp);
    attrs.extend(origin_igp());
    attrs.extend(attr(0x40, 2, &[2, 1, 0, 0, 0xFD, 0xE9]));
    attrs.extend(attr(0x40, 3, &[192, 0, 2, 1]));
    let wire = update(&[], &attrs, &[24, 198, 51, 100]);
    let u = decode_update(&wire, &ctx(true, true));
    assert_eq!(u.announced.len(), 2);
    let (v4, v6) = (&u.announced[0], &u.announced[1]);
    assert_eq!((v4.family, v6.family), (Family::Ipv4Unicast, Family::Ipv6Unicast));
    assert_eq!(v4.prefixes, nets(&["198.51.100.0/24"]));
    assert_eq!(v6.prefixes, nets(&["2001:db8::/32"]));
    assert_eq!(v4.attrs.next_hop.addr, "192.0.2.1".parse::<IpAddr>().unwrap());
    assert_eq!(v6.attrs.next_hop.addr, "2001:db8::1".parse::<IpAddr>().unwrap());
    assert_eq!(
        PathAttributes {
            next_hop: v4.attrs.next_hop,
            ..v6.attrs.clone()
        },
        v4.attrs
    );
    assert_eq!(encode_update(&u, true), wire);
}

#[test]
fn two_octet_session_with_as4_path_and_as4_aggregator_both_ways() {
    // The real path 64500 4200000000 65550, aggregated by 4200000000: an old speaker sees
    // 64500 23456 23456 and aggregator 23456, with AS4_PATH and AS4_AGGREGATOR beside them.
    let mut attrs = origin_igp();
    attrs.extend(attr(0x40, 2, &[2, 3, 0xFB, 0xF4, 0x5B, 0xA0, 0x5B, 0xA0]));
    attrs.extend(attr(0x40, 3, &[192, 0, 2, 1]));
    attrs.extend(attr(0xC0, 7, &[0x5B, 0xA0, 10, 0, 0, 1]));
    attrs.extend(attr(
        0xC0,
        17,
        &[2, 3, 0, 0, 0xFB, 0xF4, 0xFA, 0x56, 0xEA, 0x00, 0, 1, 0, 0x0E],
    ));
    attrs.extend(attr(0xC0, 18, &[0xFA, 0x56, 0xEA, 0x00, 10, 0, 0, 1]));
    let wire = update(&[], &attrs, &[24, 198, 51, 100]);
    let u = decode_update(&wire, &ctx(false, true));
    let a = &u.announced[0].attrs;
    assert_eq!(a.as_path, AsPath::sequence([64500, 4_200_000_000, 65550]));
    assert_eq!(a.aggregator, Some((4_200_000_000, Ipv4Addr::new(10, 0, 0, 1))));
    assert!(u.issues.is_empty(), "{:?}", u.issues);
    assert_eq!(encode_update(&u, false), wire);

    // The same route to a 4-octet peer: no AS4 attributes at all.
    let four = encode_update(&u, true);
    let back = decode_update(&four, &ctx(true, true));
    assert_eq!(back, u);
    assert!(four.len() < wire.len());
}

#[test]
fn end_of_rib_markers_both_ways() {
    let v4 = update(&[], &[], &[]);
    assert_eq!(v4.len(), 23);
    let v6 = update(&[], &attr(0x80, 15, &[0, 2, 1]), &[]);
    for (wire, family) in [(v4, Family::Ipv4Unicast), (v6, Family::Ipv6Unicast)] {
        let u = decode_update(&wire, &ctx(true, true));
        assert_eq!(u.end_of_rib(), Some(family));
        assert_eq!(u, Update::end_of_rib_marker(family));
        assert_eq!(encode_update(&u, true), wire);
        let mut out = Vec::new();
        encode_end_of_rib(family, &mut out);
        assert_eq!(out, wire);
    }
    // An empty MP_UNREACH beside another attribute is no marker.
    let mut attrs = attr(0x80, 15, &[0, 2, 1]);
    attrs.extend(origin_igp());
    assert_eq!(
        decode_update(&update(&[], &attrs, &[]), &ctx(true, true)).end_of_rib(),
        None
    );
}

#[test]
fn update_encode_refuses_what_one_message_cannot_say() {
    let attrs = PathAttributes::local(NextHop::new("192.0.2.1".parse().unwrap()));
    let ctx = EncodeContext { four_octet_as: true };
    let group = |family, prefixes: &[&str], attrs: &PathAttributes| Announcement {
        family,
        attrs: attrs.clone(),
        prefixes: nets(prefixes),
    };
    let two_v4 = Update {
        announced: vec![
            group(Family::Ipv4Unicast, &["10.0.0.0/8"], &attrs),
            group(Family::Ipv4Unicast, &["11.0.0.0/8"], &attrs),
        ],
        ..Update::default()
    };
    assert_eq!(
        two_v4.encode(&ctx, &mut Vec::new()),
        Err(EncodeError::NotOneUpdate)
    );
    let mixed = Update {
        announced: vec![group(Family::Ipv4Unicast, &["2001:db8::/32"], &attrs)],
        ..Update::default()
    };
    assert_eq!(
        mixed.encode(&ctx, &mut Vec::new()),
        Err(EncodeError::MixedFamilies)
    );
    let v6_attrs = PathAttributes {
        med: Some(1),
        ..PathAttributes::local(NextHop::new("2001:db8::1".parse().unwrap()))
    };
    let differing = Update {
        announced: vec![
            group(Family::Ipv4Unicast, &["10.0.0.0/8"], &attrs),
            group(Family::Ipv6Unicast, &["2001:db8::/32"], &v6_attrs),
        ],
        ..Update::default()
    };
    assert_eq!(
        differing.encode(&ctx, &mut Vec::new()),
        Err(EncodeError::NotOneUpdate)
    );
    let wrong_nh = Update {
        announced: vec![group(Family::Ipv6Unicast, &["2001:db8::/32"], &attrs)],
        ..Update::default()
    };
    assert!(matches!(
        wrong_nh.encode(&ctx, &mut Vec::new()),
        Err(EncodeError::NextHopFamily { .. })
    ));
}
