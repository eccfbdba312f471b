//! RFC 7606: every malformation gets its approach, checked on the outcome (the attribute gone
//! and the route kept, every announced prefix withdrawn, or the NOTIFICATION with its code,
//! subcode and data).

use super::super::types::{AsPath, Family, Origin};
use super::fixture_tests::{attr, ctx, decode_update, nets, update};
use super::*;
use std::net::{IpAddr, Ipv4Addr};

const ORIGIN: u8 = 1;
const AS_PATH: u8 = 2;
const NEXT_HOP: u8 = 3;

/// ORIGIN IGP, AS_PATH 65001 (4 octets), NEXT_HOP 192.0.2.1, in that order.
fn origin() -> Vec<u8> {
    attr(0x40, ORIGIN, &[0])
}
fn as_path() -> Vec<u8> {
    attr(0x40, AS_PATH, &[2, 1, 0, 0, 0xFD, 0xE9])
}
fn next_hop() -> Vec<u8> {
    attr(0x40, NEXT_HOP, &[192, 0, 2, 1])
}

fn good_attrs() -> Vec<u8> {
    [origin(), as_path(), next_hop()].concat()
}

const NLRI: [u8; 4] = [24, 198, 51, 100];

/// A 4-octet iBGP session with both families: the context under which nothing is special.
fn ibgp() -> DecodeContext {
    ctx(true, false)
}

fn reset(m: &[u8], ctx: &DecodeContext) -> Notification {
    match decode(m, ctx) {
        Err(n) => n,
        Ok(other) => panic!("expected a session reset, got {other:?}"),
    }
}

/// The message's routes are withdrawn and the reason names `code`.
fn assert_withdrawn(u: &Update, code: Option<u8>, problem: AttrProblem) {
    assert!(u.announced.is_empty(), "{u:?}");
    assert!(u.treated_as_withdraw());
    assert!(
        u.issues.contains(&UpdateIssue {
            action: Action::TreatAsWithdraw,
            type_code: code,
            problem,
        }),
        "{:?}",
        u.issues
    );
}

/// The route stands, without the attribute, and the discard is reported.
fn assert_discarded(u: &Update, code: u8, problem: AttrProblem) {
    assert!(!u.treated_as_withdraw(), "{:?}", u.issues);
    assert_eq!(u.announced.len(), 1, "{u:?}");
    assert_eq!(u.announced[0].prefixes, nets(&["198.51.100.0/24"]));
    assert!(
        u.issues.contains(&UpdateIssue {
            action: Action::AttributeDiscard,
            type_code: Some(code),
            problem,
        }),
        "{:?}",
        u.issues
    );
}

#[test]
fn a_clean_update_reports_nothing() {
    let u = decode_update(&update(&[], &good_attrs(), &NLRI), &ibgp());
    assert!(u.issues.is_empty());
    assert_eq!(u.announced[0].attrs.origin, Origin::Igp);
    assert_eq!(u.announced[0].attrs.as_path, AsPath::sequence([65001]));
}

#[test]
fn flags_conflicting_with_the_type_follow_the_attribute_s_own_approach() {
    // ORIGIN marked optional: treat-as-withdraw, with the withdrawn prefix.
    let attrs = [attr(0xC0, ORIGIN, &[0]), as_path(), next_hop()].concat();
    let u = decode_update(&update(&[], &attrs, &NLRI), &ibgp());
    assert_withdrawn(&u, Some(ORIGIN), AttrProblem::Flags(0xC0));
    assert_eq!(u.withdrawn, nets(&["198.51.100.0/24"]));
    // COMMUNITIES marked non-transitive: treat-as-withdraw.
    let attrs = [good_attrs(), attr(0x80, 8, &[0, 1, 0, 1])].concat();
    let u = decode_update(&update(&[], &attrs, &NLRI), &ibgp());
    assert_withdrawn(&u, Some(8), AttrProblem::Flags(0x80));
    // AGGREGATOR marked well-known: discarded, the route kept.
    let attrs = [good_attrs(), attr(0x40, 7, &[0, 0, 0, 1, 10, 0, 0, 1])].concat();
    let u = decode_update(&update(&[], &attrs, &NLRI), &ibgp());
    assert_discarded(&u, 7, AttrProblem::Flags(0x40));
    assert_eq!(u.announced[0].attrs.aggregator, None);
    // MP_REACH_NLRI marked transitive: session reset 3/4 with the attribute.
    let mp = attr(
        0xC0,
        14,
        &[
            0, 2, 1, 16, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0,
        ],
    );
    let n = reset(
        &update(&[], &[mp.clone(), origin(), as_path()].concat(), &[]),
        &ibgp(),
    );
    assert_eq!((n.code, n.subcode, n.data), (3, 4, mp));
}

#[test]
fn wrong_lengths_of_every_known_attribute() {
    use Action::{AttributeDiscard as Discard, TreatAsWithdraw as Withdraw};
    // (flags, code, value, approach); 4-octet iBGP session.
    let cases: &[(u8, u8, &[u8], Action)] = &[
        (0x40, 1, &[0, 0], Withdraw),
        (0x40, 1, &[], Withdraw),
        (0x40, 3, &[192, 0, 2, 1, 0], Withdraw),
        (0x40, 3, &[], Withdraw),
        (0x80, 4, &[0, 0, 1], Withdraw),
        (0x40, 5, &[0, 0, 0, 0, 1], Withdraw),
        (0x40, 6, &[1], Discard),
        (0xC0, 7, &[0, 1, 10, 0, 0, 1], Discard),
        (0xC0, 8, &[0, 1, 0, 1, 0], Withdraw),
        (0xC0, 8, &[], Withdraw),
        (0x80, 9, &[10, 0, 0], Withdraw),
        (0x80, 10, &[10, 0, 0, 1, 10], Withdraw),
        (0x80, 10, &[], Withdraw),
        (0xC0, 16, &[0; 7], Withdraw),
        (0xC0, 25, &[0; 19], Withdraw),
        (0xC0, 32, &[0; 11], Withdraw),
        (0xC0, 32, &[], Withdraw),
    ];
    for &(flags, code, value, action) in cases {
        let mut attrs = good_attrs();
        // Replace the well-known ones, add the others.
        if code <= 3 {
            attrs = [origin(), as_path(), next_hop()]
                .into_iter()
                .enumerate()
                .map(|(i, a)| {
                    if i + 1 == usize::from(code) {
                        attr(flags, code, value)
                    } else {
                        a
                    }
                })
                .collect::<Vec<_>>()
                .concat();
        } else {
            attrs.extend(attr(flags, code, value));
        }
        let u = decode_update(&update(&[], &attrs, &NLRI), &ibgp());
        let issue = UpdateIssue {
            action,
            type_code: Some(code),
            problem: AttrProblem::Length(value.len()),
        };
        assert!(u.issues.contains(&issue), "attribute {code}: {:?}", u.issues);
        assert_eq!(u.announced.is_empty(), action == Withdraw, "attribute {code}");
    }
    // On a 2-octet session AGGREGATOR has 6 octets, and AS4_AGGREGATOR always 8.
    let attrs = [
        origin(),
        attr(0x40, AS_PATH, &[2, 1, 0xFD, 0xE9]),
        next_hop(),
        attr(0xC0, 7, &[0, 0, 0, 1, 10, 0, 0, 1]),
        attr(0xC0, 18, &[0, 1, 10, 0, 0, 1]),
    ]
    .concat();
    let u = decode_update(&update(&[], &attrs, &NLRI), &ctx(false, true));
    assert_discarded(&u, 7, AttrProblem::Length(8));
    assert_discarded(&u, 18, AttrProblem::Length(6));
    assert_eq!(u.announced[0].attrs.aggregator, None);
    // MP attributes too short to hold their fixed fields: session reset 3/9.
    for (code, value) in [(14u8, &[0u8, 2, 1][..]), (15, &[0, 2][..])] {
        let a = attr(0x80, code, value);
        let n = reset(&update(&[], &[a.clone(), good_attrs()].concat(), &[]), &ibgp());
        assert_eq!((n.code, n.subcode, n.data), (3, 9, a));
    }
}

#[test]
fn an_undefined_origin_is_treat_as_withdraw() {
    let attrs = [attr(0x40, ORIGIN, &[3]), as_path(), next_hop()].concat();
    let u = decode_update(&update(&[], &attrs, &NLRI), &ibgp());
    assert_withdrawn(&u, Some(ORIGIN), AttrProblem::OriginValue(3));
}

#[test]
fn malformed_as_paths_are_treat_as_withdraw() {
    let cases: &[(&[u8], AsPathError)] = &[
        (&[2, 2, 0, 0, 0xFD, 0xE9], AsPathError::Overrun),
        (&[2, 1, 0, 0, 0xFD, 0xE9, 2], AsPathError::Overrun),
        (&[2, 0], AsPathError::EmptySegment),
        (&[7, 1, 0, 0, 0xFD, 0xE9], AsPathError::SegmentType(7)),
        (&[2, 1, 0, 0, 0, 0], AsPathError::ZeroAs),
    ];
    for &(value, err) in cases {
        let attrs = [origin(), attr(0x40, AS_PATH, value), next_hop()].concat();
        let u = decode_update(&update(&[], &attrs, &NLRI), &ibgp());
        assert_withdrawn(&u, Some(AS_PATH), AttrProblem::AsPath(err));
    }
    // Confederation segments: fine from an iBGP peer, malformed from an eBGP one.
    let confed = [3, 1, 0, 0, 0xFD, 0xEA, 2, 1, 0, 0, 0xFD, 0xE9];
    let attrs = [origin(), attr(0x40, AS_PATH, &confed), next_hop()].concat();
    let m = update(&[], &attrs, &NLRI);
    assert!(decode_update(&m, &ibgp()).issues.is_empty());
    let u = decode_update(&m, &ctx(true, true));
    assert_withdrawn(
        &u,
        Some(AS_PATH),
        AttrProblem::AsPath(AsPathError::ConfedFromEbgp),
    );
}

#[test]
fn unusable_next_hops_are_treat_as_withdraw() {
    for a in [
        [0, 0, 0, 0],
        [224, 0, 0, 1],
        [127, 0, 0, 1],
        [255, 255, 255, 255],
        [0, 1, 2, 3],
    ] {
        let attrs = [origin(), as_path(), attr(0x40, NEXT_HOP, &a)].concat();
        let u = decode_update(&update(&[], &attrs, &NLRI), &ibgp());
        assert_withdrawn(
            &u,
            Some(NEXT_HOP),
            AttrProblem::NextHop(IpAddr::V4(Ipv4Addr::from(a))),
        );
    }
    // In MP_REACH_NLRI too.
    let mut mp = vec![0, 2, 1, 16];
    mp.extend_from_slice(&[0; 16]);
    mp.extend_from_slice(&[0, 32, 0x20, 1, 0xd, 0xb8]);
    let attrs = [attr(0x80, 14, &mp), origin(), as_path()].concat();
    let u = decode_update(&update(&[], &attrs, &[]), &ibgp());
    assert_withdrawn(&u, Some(14), AttrProblem::NextHop("::".parse().unwrap()));
    assert_eq!(u.withdrawn, nets(&["2001:db8::/32"]));
}

#[test]
fn a_bad_next_hop_without_ipv4_nlri_is_only_ignored() {
    let mut mp = vec![0, 2, 1, 16];
    mp.extend_from_slice(&"2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
    mp.extend_from_slice(&[0, 32, 0x20, 1, 0xd, 0xb8]);
    let attrs = [
        attr(0x80, 14, &mp),
        origin(),
        as_path(),
        attr(0x40, NEXT_HOP, &[0, 0, 0, 0]),
    ]
    .concat();
    let u = decode_update(&update(&[], &attrs, &[]), &ibgp());
    assert!(!u.treated_as_withdraw());
    assert_eq!(u.announced[0].prefixes, nets(&["2001:db8::/32"]));
    assert_eq!(
        u.issues,
        vec![UpdateIssue {
            action: Action::AttributeDiscard,
            type_code: Some(NEXT_HOP),
            problem: AttrProblem::NextHop(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        }]
    );
}

#[test]
fn missing_well_known_mandatory_attributes_are_treat_as_withdraw() {
    for (attrs, missing) in [
        ([as_path(), next_hop()].concat(), ORIGIN),
        ([origin(), next_hop()].concat(), AS_PATH),
        ([origin(), as_path()].concat(), NEXT_HOP),
    ] {
        let u = decode_update(&update(&[], &attrs, &NLRI), &ibgp());
        assert_withdrawn(&u, Some(missing), AttrProblem::Missing);
        assert_eq!(u.withdrawn, nets(&["198.51.100.0/24"]));
    }
    // NEXT_HOP is not needed for MP_REACH_NLRI alone (RFC 4760).
    let mut mp = vec![0, 1, 1, 4, 192, 0, 2, 9, 0];
    mp.extend_from_slice(&NLRI);
    let attrs = [attr(0x80, 14, &mp), origin(), as_path()].concat();
    let u = decode_update(&update(&[], &attrs, &[]), &ibgp());
    assert!(u.issues.is_empty());
    assert_eq!(
        u.announced[0].attrs.next_hop.addr,
        "192.0.2.9".parse::<IpAddr>().unwrap()
    );
    // Nothing is mandatory without prefixes to announce.
    let u = decode_update(&update(&[8, 10], &attr(0x80, 4, &[0, 0, 0, 1]), &[]), &ibgp());
    assert!(u.issues.is_empty());
    assert_eq!(u.withdrawn, nets(&["10.0.0.0/8"]));
}

#[test]
fn duplicates_keep_the_first_except_mp_attributes_which_reset() {
    let attrs = [good_attrs(), attr(0x40, ORIGIN, &[2])].concat();
    let u = decode_update(&update(&[], &attrs, &NLRI), &ibgp());
    assert_discarded(&u, ORIGIN, AttrProblem::Duplicate);
    assert_eq!(u.announced[0].attrs.origin, Origin::Igp);
    // An unknown transitive attribute twice: the first is kept.
    let attrs = [good_attrs(), attr(0xC0, 99, &[1]), attr(0xC0, 99, &[2])].concat();
    let u = decode_update(&update(&[], &attrs, &NLRI), &ibgp());
    assert_discarded(&u, 99, AttrProblem::Duplicate);
    assert_eq!(u.announced[0].attrs.unknown[0].value, vec![1]);
    for mp in [
        attr(0x80, 15, &[0, 2, 1]),
        attr(0x80, 14, &[0, 1, 1, 4, 10, 0, 0, 1, 0]),
    ] {
        let n = reset(&update(&[], &[mp.clone(), mp].concat(), &[]), &ibgp());
        assert_eq!((n.code, n.subcode, n.data), (3, 1, vec![]));
    }
}

#[test]
fn local_pref_from_an_ebgp_peer_is_discarded() {
    let attrs = [good_attrs(), attr(0x40, 5, &[0, 0, 0, 200])].concat();
    let m = update(&[], &attrs, &NLRI);
    let u = decode_update(&m, &ctx(true, true));
    assert_discarded(&u, 5, AttrProblem::LocalPrefFromEbgp);
    assert_eq!(u.announced[0].attrs.local_pref, None);
    assert_eq!(
        decode_update(&m, &ibgp()).announced[0].attrs.local_pref,
        Some(200)
    );
}

#[test]
fn an_attribute_overrunning_the_attribute_block_is_treat_as_withdraw() {
    // The last attribute claims 9 bytes; the NLRI are still found by the total length.
    let mut attrs = good_attrs();
    attrs.extend_from_slice(&[0x80, 4, 9, 0, 0, 0, 1]);
    let u = decode_update(&update(&[], &attrs, &NLRI), &ibgp());
    assert_withdrawn(&u, Some(4), AttrProblem::AttributeListOverrun);
    assert_eq!(u.withdrawn, nets(&["198.51.100.0/24"]));
    // Fewer octets left than an attribute header.
    for tail in [&[0x40][..], &[0x40, 1][..], &[0x50, 1, 0][..]] {
        let attrs = [good_attrs(), tail.to_vec()].concat();
        let u = decode_update(&update(&[], &attrs, &NLRI), &ibgp());
        assert!(u.treated_as_withdraw(), "{tail:?}");
        assert_eq!(u.withdrawn, nets(&["198.51.100.0/24"]));
    }
}

#[test]
fn field_lengths_that_do_not_add_up_reset_with_malformed_attribute_list() {
    // Withdrawn Routes Length past the message.
    let mut m = update(&[8, 10], &[], &[]);
    m[HEADER_LEN + 1] = 9;
    let n = reset(&m, &ibgp());
    assert_eq!((n.code, n.subcode, n.data), (3, 1, vec![]));
    // Total Path Attribute Length past the message.
    let mut m = update(&[], &good_attrs(), &[]);
    m[HEADER_LEN + 3] += 1;
    let n = reset(&m, &ibgp());
    assert_eq!((n.code, n.subcode), (3, 1));
    // No room for the Total Path Attribute Length at all.
    let mut m = update(&[8, 10], &[], &[]);
    m[HEADER_LEN + 1] = 3;
    assert_eq!(reset(&m, &ibgp()).subcode, 1);
}

#[test]
fn syntactically_incorrect_nlri_fields_reset_the_session() {
    for (withdrawn, nlri) in [
        (&[][..], &[33, 1, 2, 3, 4, 5][..]),
        (&[][..], &[24, 10, 0][..]),
        (&[40, 0, 0, 0, 0, 0][..], &[][..]),
        (&[16, 10][..], &[][..]),
    ] {
        let n = reset(&update(withdrawn, &good_attrs(), nlri), &ibgp());
        assert_eq!((n.code, n.subcode, n.data), (3, 10, vec![]));
    }
    // In MP_REACH_NLRI / MP_UNREACH_NLRI: Optional Attribute Error with the attribute.
    let mut mp = vec![0, 2, 1, 16];
    mp.extend_from_slice(&"2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
    mp.extend_from_slice(&[0, 129]);
    let a = attr(0x80, 14, &mp);
    let n = reset(
        &update(&[], &[a.clone(), origin(), as_path()].concat(), &[]),
        &ibgp(),
    );
    assert_eq!((n.code, n.subcode, n.data), (3, 9, a));
    let a = attr(0x80, 15, &[0, 2, 1, 64, 0x20]);
    let n = reset(&update(&[], &a, &[]), &ibgp());
    assert_eq!((n.code, n.subcode, n.data), (3, 9, a));
    // A next hop length that does not fit the family.
    let a = attr(0x80, 14, &[0, 2, 1, 4, 10, 0, 0, 1, 0, 8, 10]);
    let n = reset(
        &update(&[], &[a.clone(), origin(), as_path()].concat(), &[]),
        &ibgp(),
    );
    assert_eq!((n.code, n.subcode, n.data), (3, 9, a));
    // A next hop running past the attribute.
    let a = attr(0x80, 14, &[0, 2, 1, 16, 10, 0, 0, 1]);
    let n = reset(&update(&[], &a, &[]), &ibgp());
    assert_eq!((n.code, n.subcode), (3, 9));
}

#[test]
fn trailing_bits_of_a_prefix_are_masked_not_refused() {
    let u = decode_update(&update(&[], &good_attrs(), &[20, 10, 1, 0xFF]), &ibgp());
    assert!(u.issues.is_empty());
    assert_eq!(u.announced[0].prefixes, nets(&["10.1.240.0/20"]));
}

#[test]
fn mp_reach_of_an_unnegotiated_or_unknown_family_is_ignored_and_reported() {
    let mut mp = vec![0, 2, 1, 16];
    mp.extend_from_slice(&"2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
    mp.extend_from_slice(&[0, 32, 0x20, 1, 0xd, 0xb8]);
    let attrs = [attr(0x80, 14, &mp), good_attrs()].concat();
    let v4_only = DecodeContext::new(true, false, [Family::Ipv4Unicast].into_iter().collect());
    let u = decode_update(&update(&[], &attrs, &NLRI), &v4_only);
    assert_eq!(u.announced.len(), 1);
    assert_eq!(u.announced[0].prefixes, nets(&["198.51.100.0/24"]));
    assert_eq!(
        u.issues,
        vec![UpdateIssue {
            action: Action::NlriIgnored,
            type_code: Some(14),
            problem: AttrProblem::UnnegotiatedFamily { afi: 2, safi: 1 },
        }]
    );
    // AFI 1 SAFI 128 (VPN): a family we do not speak, whatever its content.
    let attrs = [attr(0x80, 14, &[0, 1, 128, 3, 1, 2, 3, 0, 99, 99]), good_attrs()].concat();
    let u = decode_update(&update(&[], &attrs, &NLRI), &ibgp());
    assert_eq!(
        u.issues[0].problem,
        AttrProblem::UnnegotiatedFamily { afi: 1, safi: 128 }
    );
    assert_eq!(u.announced[0].prefixes, nets(&["198.51.100.0/24"]));
    // IPv4 NLRI on a session that negotiated IPv6 only.
    let v6_only = DecodeContext::new(true, false, [Family::Ipv6Unicast].into_iter().collect());
    let u = decode_update(&update(&[8, 10], &good_attrs(), &NLRI), &v6_only);
    assert!(u.announced.is_empty() && u.withdrawn.is_empty());
    assert_eq!(u.issues[0].action, Action::NlriIgnored);
}

#[test]
fn unknown_attributes_by_their_flags() {
    // Well-known: session reset 3/2 with the attribute.
    let a = attr(0x40, 99, &[1, 2]);
    let n = reset(&update(&[], &[good_attrs(), a.clone()].concat(), &NLRI), &ibgp());
    assert_eq!((n.code, n.subcode, n.data), (3, 2, a));
    // Optional non-transitive: dropped without a word.
    let attrs = [good_attrs(), attr(0x80, 99, &[1, 2])].concat();
    let u = decode_update(&update(&[], &attrs, &NLRI), &ibgp());
    assert!(u.issues.is_empty() && u.announced[0].attrs.unknown.is_empty());
    // Optional transitive: kept, extended length or not.
    let attrs = [good_attrs(), attr(0xD0, 99, &[1, 2])].concat();
    let u = decode_update(&update(&[], &attrs, &NLRI), &ibgp());
    assert!(u.issues.is_empty());
    let raw = &u.announced[0].attrs.unknown[0];
    assert_eq!(
        (raw.flags, raw.type_code, raw.value.as_slice()),
        (0xC0, 99, &[1, 2][..])
    );
}

#[test]
fn treat_as_withdraw_withdraws_ipv4_and_mp_reach_prefixes_together() {
    let mut mp = vec![0, 2, 1, 16];
    mp.extend_from_slice(&"2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
    mp.extend_from_slice(&[0, 32, 0x20, 1, 0xd, 0xb8]);
    let attrs = [
        attr(0x80, 14, &mp),
        attr(0x40, ORIGIN, &[9]),
        as_path(),
        next_hop(),
    ]
    .concat();
    let u = decode_update(&update(&[8, 10], &attrs, &NLRI), &ibgp());
    assert_withdrawn(&u, Some(ORIGIN), AttrProblem::OriginValue(9));
    assert_eq!(
        u.withdrawn,
        nets(&["10.0.0.0/8", "198.51.100.0/24", "2001:db8::/32"])
    );
}

#[test]
fn the_strongest_approach_wins() {
    // A discard and a treat-as-withdraw: withdraw, both reported.
    let attrs = [good_attrs(), attr(0x40, 6, &[1]), attr(0x80, 4, &[1])].concat();
    let u = decode_update(&update(&[], &attrs, &NLRI), &ibgp());
    assert!(u.treated_as_withdraw() && u.announced.is_empty());
    assert_eq!(u.issues.len(), 2);
    // A treat-as-withdraw and a session reset: reset.
    let attrs = [
        attr(0x40, ORIGIN, &[9]),
        as_path(),
        next_hop(),
        attr(0x40, 99, &[]),
    ]
    .concat();
    assert_eq!(reset(&update(&[], &attrs, &NLRI), &ibgp()).subcode, 2);
}

#[test]
fn as4_attributes_on_a_four_octet_session_are_discarded() {
    let attrs = [
        good_attrs(),
        attr(0xC0, 17, &[2, 1, 0, 1, 0, 0]),
        attr(0xC0, 18, &[0, 1, 0, 0, 10, 0, 0, 1]),
    ]
    .concat();
    let u = decode_update(&update(&[], &attrs, &NLRI), &ibgp());
    assert_discarded(&u, 17, AttrProblem::As4OnFourOctetSession);
    assert_discarded(&u, 18, AttrProblem::As4OnFourOctetSession);
    assert_eq!(u.announced[0].attrs.as_path, AsPath::sequence([65001]));
}

/// A 2-octet session: AS_PATH 65001 23456 and the given extra attributes.
fn two_octet_update(extra: &[Vec<u8>]) -> Update {
    let mut attrs = [
        origin(),
        attr(0x40, AS_PATH, &[2, 2, 0xFD, 0xE9, 0x5B, 0xA0]),
        next_hop(),
    ]
    .concat();
    for a in extra {
        attrs.extend_from_slice(a);
    }
    decode_update(&update(&[], &attrs, &NLRI), &ctx(false, true))
}

#[test]
fn malformed_as4_attributes_are_discarded_and_the_as_path_stands() {
    let u = two_octet_update(&[attr(0xC0, 17, &[2, 2, 0, 1, 0, 0])]);
    assert_discarded(&u, 17, AttrProblem::AsPath(AsPathError::Overrun));
    assert_eq!(u.announced[0].attrs.as_path, AsPath::sequence([65001, 23456]));
    let u = two_octet_update(&[attr(0xC0, 17, &[2, 1, 0, 0, 0, 0])]);
    assert_discarded(&u, 17, AttrProblem::AsPath(AsPathError::ZeroAs));
    let u = two_octet_update(&[attr(0x40, 17, &[2, 1, 0, 1, 0, 0])]);
    assert_discarded(&u, 17, AttrProblem::Flags(0x40));
    // Confederation segments are cut out of AS4_PATH, the rest used.
    let u = two_octet_update(&[attr(0xC0, 17, &[3, 1, 0, 0, 0xFD, 0xEA, 2, 1, 0, 1, 0, 0])]);
    assert_discarded(&u, 17, AttrProblem::ConfedInAs4Path);
    assert_eq!(u.announced[0].attrs.as_path, AsPath::sequence([65001, 65536]));
}

#[test]
fn an_aggregator_other_than_as_trans_voids_the_as4_attributes() {
    // RFC 6793 4.2.3: AGGREGATOR 64500 with AS4_AGGREGATOR: both AS4 attributes are ignored.
    let u = two_octet_update(&[
        attr(0xC0, 7, &[0xFB, 0xF4, 10, 0, 0, 1]),
        attr(0xC0, 17, &[2, 1, 0, 1, 0, 0]),
        attr(0xC0, 18, &[0, 1, 0, 0, 10, 0, 0, 2]),
    ]);
    let a = &u.announced[0].attrs;
    assert_eq!(a.aggregator, Some((64500, Ipv4Addr::new(10, 0, 0, 1))));
    assert_eq!(a.as_path, AsPath::sequence([65001, 23456]));
    // AGGREGATOR AS_TRANS: AS4_AGGREGATOR replaces it and AS4_PATH is merged.
    let u = two_octet_update(&[
        attr(0xC0, 7, &[0x5B, 0xA0, 10, 0, 0, 1]),
        attr(0xC0, 17, &[2, 1, 0, 1, 0, 0]),
        attr(0xC0, 18, &[0, 1, 0, 0, 10, 0, 0, 2]),
    ]);
    let a = &u.announced[0].attrs;
    assert_eq!(a.aggregator, Some((65536, Ipv4Addr::new(10, 0, 0, 2))));
    assert_eq!(a.as_path, AsPath::sequence([65001, 65536]));
    // An AGGREGATOR with AS 0 is discarded (RFC 7607).
    let u = two_octet_update(&[attr(0xC0, 7, &[0, 0, 10, 0, 0, 1])]);
    assert_discarded(&u, 7, AttrProblem::ZeroAs);
}

#[test]
fn issues_read_as_sentences() {
    let issue = UpdateIssue {
        action: Action::TreatAsWithdraw,
        type_code: Some(2),
        problem: AttrProblem::AsPath(AsPathError::EmptySegment),
    };
    assert_eq!(
        issue.to_string(),
        "treated as withdraw: AS_PATH: segment of length zero"
    );
    let issue = UpdateIssue {
        action: Action::NlriIgnored,
        type_code: Some(14),
        problem: AttrProblem::UnnegotiatedFamily { afi: 2, safi: 1 },
    };
    assert_eq!(
        issue.to_string(),
        "prefixes ignored: MP_REACH_NLRI: AFI 2 SAFI 1 not negotiated"
    );
}
