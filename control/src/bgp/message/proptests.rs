//! Property tests: no input makes the decoder panic, and whatever the encoder writes decodes
//! back to what it was given, on 4-octet and 2-octet sessions alike.

use super::super::types::{
    AsPath, AsSegment, Asn, Community, Family, NextHop, Origin, PathAttributes, RawAttribute,
};
use super::fixture_tests::{attr, update};
use super::*;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn any_ctx() -> impl Strategy<Value = DecodeContext> {
    (any::<bool>(), any::<bool>(), 0u8..4).prop_map(|(four, ebgp, fam)| {
        let families = Family::ALL
            .into_iter()
            .enumerate()
            .filter(|(i, _)| fam & (1 << i) != 0)
            .map(|(_, f)| f)
            .collect();
        DecodeContext::new(four, ebgp, families)
    })
}

/// A header with the right marker and length around an arbitrary body.
fn framed() -> impl Strategy<Value = Vec<u8>> {
    (1u8..=5, proptest::collection::vec(any::<u8>(), 0..300)).prop_map(|(ty, body)| {
        let mut m = MARKER.to_vec();
        m.extend_from_slice(&((HEADER_LEN + body.len()) as u16).to_be_bytes());
        m.push(ty);
        m.extend_from_slice(&body);
        m
    })
}

/// A plausible UPDATE: attributes of known types with arbitrary flags and values, arbitrary
/// withdrawn and NLRI fields.
fn plausible_update() -> impl Strategy<Value = Vec<u8>> {
    let one_attr = (
        prop_oneof![
            Just(0x40u8),
            Just(0x80),
            Just(0xC0),
            Just(0xE0),
            Just(0x50),
            any::<u8>()
        ],
        prop_oneof![1u8..=18, Just(25), Just(32), any::<u8>()],
        proptest::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(flags, code, value)| attr(flags & !0x10, code, &value));
    (
        proptest::collection::vec(any::<u8>(), 0..20),
        proptest::collection::vec(one_attr, 0..8),
        proptest::collection::vec(any::<u8>(), 0..30),
    )
        .prop_map(|(withdrawn, attrs, nlri)| update(&withdrawn, &attrs.concat(), &nlri))
}

fn asn() -> impl Strategy<Value = Asn> {
    prop_oneof![1u32..=65535, 1u32..=u32::MAX]
}

/// Paths whose confederation segments come first and hold 2-octet numbers, as they do in
/// practice (and as the RFC 6793 merge needs to give them back).
fn as_path() -> impl Strategy<Value = AsPath> {
    let plain = prop_oneof![
        3 => proptest::collection::vec(asn(), 1..40).prop_map(AsSegment::Sequence),
        1 => proptest::collection::vec(asn(), 1..10).prop_map(AsSegment::Set),
    ];
    let confed = prop_oneof![
        proptest::collection::vec(1u32..=65535, 1..5).prop_map(AsSegment::ConfedSequence),
        proptest::collection::vec(1u32..=65535, 1..5).prop_map(AsSegment::ConfedSet),
    ];
    (
        proptest::collection::vec(confed, 0..2),
        proptest::collection::vec(plain, 0..4),
    )
        .prop_map(|(mut segments, plain)| {
            segments.extend(plain);
            AsPath { segments }
        })
}

fn ipv4_host() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>()
        .prop_map(Ipv4Addr::from)
        .prop_filter("a usable next hop", |a| {
            let o = a.octets()[0];
            o != 0 && o != 127 && o < 224
        })
}

fn ipv6_next_hop() -> impl Strategy<Value = NextHop> {
    (
        any::<u128>()
            .prop_map(Ipv6Addr::from)
            .prop_filter("unicast", |a| {
                !(a.is_unspecified() || a.is_loopback() || a.is_multicast())
            }),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(g, ll)| NextHop {
            addr: IpAddr::V6(g),
            link_local: ll.map(|id| Ipv6Addr::from((0xfe80u128 << 112) | u128::from(id) | 1)),
        })
}

fn unknown_attrs() -> impl Strategy<Value = Vec<RawAttribute>> {
    let code = prop_oneof![11u8..=13, 19u8..=24, 26u8..=31, 33u8..=255];
    let value = prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..20),
        1 => proptest::collection::vec(any::<u8>(), 250..300),
    ];
    proptest::collection::btree_map(code, value, 0..3).prop_map(|m| {
        m.into_iter()
            .map(|(type_code, value)| RawAttribute {
                flags: 0xE0,
                type_code,
                value,
            })
            .collect()
    })
}

fn path_attributes(next_hop: impl Strategy<Value = NextHop>) -> impl Strategy<Value = PathAttributes> {
    (
        (0u8..3, as_path(), next_hop),
        (
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
            any::<bool>(),
            proptest::option::of((asn(), any::<u32>())),
        ),
        proptest::collection::vec(any::<u32>(), 0..20),
        unknown_attrs(),
    )
        .prop_map(
            |((origin, as_path, next_hop), (med, local_pref, atomic, agg), comms, unknown)| {
                let mut communities: Vec<Community> = comms.into_iter().map(Community).collect();
                communities.sort_unstable();
                communities.dedup();
                PathAttributes {
                    origin: Origin::from_code(origin).unwrap(),
                    as_path,
                    next_hop,
                    med,
                    local_pref,
                    atomic_aggregate: atomic,
                    aggregator: agg.map(|(a, id)| (a, Ipv4Addr::from(id))),
                    communities,
                    unknown,
                }
            },
        )
}

fn v4_prefixes() -> impl Strategy<Value = Vec<IpNet>> {
    proptest::collection::vec((any::<u32>(), 0u8..=32), 1..400).prop_map(|v| {
        v.into_iter()
            .map(|(a, l)| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), l).unwrap().trunc()))
            .collect()
    })
}

fn v6_prefixes() -> impl Strategy<Value = Vec<IpNet>> {
    proptest::collection::vec((any::<u128>(), 0u8..=128), 1..300).prop_map(|v| {
        v.into_iter()
            .map(|(a, l)| IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), l).unwrap().trunc()))
            .collect()
    })
}

/// Announces, decodes every message, and checks the prefixes and attributes came back.
fn round_trip(attrs: &PathAttributes, prefixes: &[IpNet], four_octet_as: bool) -> Result<(), TestCaseError> {
    let mut out = Vec::new();
    let enc = EncodeContext { four_octet_as };
    let n = encode_announce(attrs, prefixes, &enc, &mut out).unwrap();
    let ctx = DecodeContext::new(four_octet_as, false, FamilySet::all());
    let mut back = Vec::new();
    let mut rest = out.as_slice();
    let mut messages = 0;
    while !rest.is_empty() {
        let len = frame_len(rest).unwrap().unwrap();
        prop_assert!(len <= MAX_MESSAGE_LEN);
        let Ok(Message::Update(u)) = decode(&rest[..len], &ctx) else {
            return Err(TestCaseError::fail("not an UPDATE"));
        };
        prop_assert!(u.issues.is_empty(), "{:?}", u.issues);
        prop_assert_eq!(u.announced.len(), 1);
        prop_assert_eq!(&u.announced[0].attrs, attrs);
        back.extend_from_slice(&u.announced[0].prefixes);
        rest = &rest[len..];
        messages += 1;
    }
    prop_assert_eq!(messages, n);
    prop_assert_eq!(back.as_slice(), prefixes);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn frame_len_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(Some(n)) = frame_len(&bytes) {
            prop_assert!((HEADER_LEN..=MAX_MESSAGE_LEN).contains(&n));
        }
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        ctx in any_ctx(),
    ) {
        let _ = decode(&bytes, &ctx);
    }

    #[test]
    fn decode_never_panics_on_framed_bodies(m in framed(), ctx in any_ctx()) {
        let _ = decode(&m, &ctx);
    }

    #[test]
    fn decode_never_panics_on_plausible_updates(m in plausible_update(), ctx in any_ctx()) {
        // And what it accepts, it can encode again (or refuses with an error, never a panic).
        if let Ok(Message::Update(u)) = decode(&m, &ctx) {
            let _ = u.encode(&EncodeContext { four_octet_as: ctx.four_octet_as }, &mut Vec::new());
        }
    }

    #[test]
    fn ipv4_announcements_round_trip(
        attrs in path_attributes(ipv4_host().prop_map(|a| NextHop::new(IpAddr::V4(a)))),
        prefixes in v4_prefixes(),
        four_octet_as in any::<bool>(),
    ) {
        round_trip(&attrs, &prefixes, four_octet_as)?;
    }

    #[test]
    fn ipv6_announcements_round_trip(
        attrs in path_attributes(ipv6_next_hop()),
        prefixes in v6_prefixes(),
        four_octet_as in any::<bool>(),
    ) {
        round_trip(&attrs, &prefixes, four_octet_as)?;
    }

    #[test]
    fn withdrawals_round_trip(v4 in v4_prefixes(), v6 in v6_prefixes()) {
        let mut out = Vec::new();
        let all = [v4.clone(), v6.clone()].concat();
        encode_withdraw(&all, &mut out);
        let ctx = DecodeContext::new(true, true, FamilySet::all());
        let mut back = Vec::new();
        let mut rest = out.as_slice();
        while !rest.is_empty() {
            let len = frame_len(rest).unwrap().unwrap();
            let Ok(Message::Update(u)) = decode(&rest[..len], &ctx) else {
                return Err(TestCaseError::fail("not an UPDATE"));
            };
            prop_assert!(u.announced.is_empty() && u.issues.is_empty());
            back.extend(u.withdrawn);
            rest = &rest[len..];
        }
        prop_assert_eq!(back, all);
    }

    #[test]
    fn opens_round_trip(
        asn in asn(),
        hold in any::<u16>(),
        id in any::<u32>(),
        caps in proptest::collection::vec(
            prop_oneof![
                prop_oneof![Just(Family::Ipv4Unicast), Just(Family::Ipv6Unicast)]
                    .prop_map(Capability::Multiprotocol),
                Just(Capability::RouteRefresh),
                any::<u32>().prop_map(Capability::FourOctetAs),
                (prop_oneof![3u8..=64, 66u8..=255], proptest::collection::vec(any::<u8>(), 0..40))
                    .prop_map(|(code, value)| Capability::Unknown { code, value }),
            ],
            0..20,
        ),
    ) {
        let open = Open::new(asn, hold, Ipv4Addr::from(id), caps);
        let m = Message::Open(open);
        let bytes = m.to_bytes(&EncodeContext { four_octet_as: true }).unwrap();
        prop_assert_eq!(decode(&bytes, &DecodeContext::new(true, true, FamilySet::all())), Ok(m));
    }
}
