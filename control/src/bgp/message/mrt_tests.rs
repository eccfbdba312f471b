//! Real path attributes in bulk: the RIPE RIS table dump of 2002 in `shared/data/mrt` (MRT
//! TABLE_DUMP, RFC 6396 4.2; 2-octet AS numbers, as sessions without the 4-octet capability
//! carry them). Each entry's attributes and prefix are put in an UPDATE, decoded on a 2-octet
//! eBGP session, checked, and encoded back to the same bytes.

use super::super::types::{AsPath, AsSegment, Community, Family, Origin};
use super::fixture_tests::{nets, update};
use super::*;
use ipnet::{IpNet, Ipv4Net};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};

const TABLE_DUMP: u16 = 12;
const AFI_IPV4: u16 = 1;

struct Entry {
    prefix: IpNet,
    attrs: Vec<u8>,
}

/// The IPv4 entries of an MRT TABLE_DUMP file: after the 12-byte MRT header, view and sequence
/// numbers, prefix, prefix length, status, originated time, peer address and AS, and the
/// attribute block with its length.
fn read_table_dump(data: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 12 {
        let ty = u16::from_be_bytes([rest[4], rest[5]]);
        let subtype = u16::from_be_bytes([rest[6], rest[7]]);
        let len = u32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]) as usize;
        let body = &rest[12..12 + len];
        rest = &rest[12 + len..];
        assert_eq!((ty, subtype), (TABLE_DUMP, AFI_IPV4));
        let addr = Ipv4Addr::new(body[4], body[5], body[6], body[7]);
        let prefix = IpNet::V4(Ipv4Net::new(addr, body[8]).unwrap());
        let attrs_len = usize::from(u16::from_be_bytes([body[20], body[21]]));
        out.push(Entry {
            prefix,
            attrs: body[22..22 + attrs_len].to_vec(),
        });
    }
    out
}

#[test]
fn a_real_table_decodes_cleanly_and_encodes_back_to_the_same_bytes() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/mrt/bview.20020722.2337.gz"
    );
    let Ok(file) = std::fs::File::open(path) else {
        eprintln!("skipped: {path} is not there");
        return;
    };
    let mut data = Vec::new();
    flate2::read::GzDecoder::new(file).read_to_end(&mut data).unwrap();
    let entries = read_table_dump(&data);
    assert_eq!(entries.len(), 115_521);

    let ctx = DecodeContext::new(false, true, [Family::Ipv4Unicast].into_iter().collect());
    let enc = EncodeContext { four_octet_as: false };
    let (mut aggregators, mut atomic, mut communities, mut meds, mut sets) = (0, 0, 0, 0, 0);
    let mut aggregators_as0 = 0;
    let mut decoded = Vec::with_capacity(entries.len());
    let mut nlri = Vec::new();
    for e in &entries {
        nlri.clear();
        nlri.push(e.prefix.prefix_len());
        let octets = usize::from(e.prefix.prefix_len()).div_ceil(8);
        if let IpAddr::V4(a) = e.prefix.addr() {
            nlri.extend_from_slice(&a.octets()[..octets]);
        }
        let wire = update(&[], &e.attrs, &nlri);
        let Ok(Message::Update(u)) = decode(&wire, &ctx) else {
            panic!("{}: not decoded", e.prefix);
        };
        // 2002 was before RFC 7607: a few aggregators say AS 0, and are discarded.
        let aggregator_as0 = [UpdateIssue {
            action: Action::AttributeDiscard,
            type_code: Some(attr_type::AGGREGATOR),
            problem: AttrProblem::ZeroAs,
        }];
        match u.issues.as_slice() {
            [] => {}
            issues if issues == aggregator_as0 => aggregators_as0 += 1,
            issues => panic!("{}: {issues:?}", e.prefix),
        }
        let [a] = u.announced.as_slice() else {
            panic!("{}: {u:?}", e.prefix);
        };
        assert_eq!(a.prefixes, vec![e.prefix]);
        let attrs = &a.attrs;
        aggregators += usize::from(attrs.aggregator.is_some());
        atomic += usize::from(attrs.atomic_aggregate);
        communities += usize::from(!attrs.communities.is_empty());
        meds += usize::from(attrs.med.is_some());
        sets += attrs
            .as_path
            .segments
            .iter()
            .filter(|s| matches!(s, AsSegment::Set(_)))
            .count();

        let mut again = Vec::new();
        assert_eq!(encode_announce(attrs, &a.prefixes, &enc, &mut again), Ok(1));
        if u.issues.is_empty() {
            assert_eq!(again, wire, "{}", e.prefix);
        } else {
            let Ok(Message::Update(back)) = decode(&again, &ctx) else {
                panic!("{}: re-encoding not decoded", e.prefix);
            };
            assert_eq!(back.announced, u.announced);
        }
        decoded.push(u);
    }
    // What an independent reading of the dump counts.
    assert_eq!(
        (aggregators + aggregators_as0, atomic, communities, meds, sets),
        (7271, 6152, 1991, 1867, 160)
    );
    assert_eq!(aggregators_as0, 8);
    assert_eq!(decoded[70092].issues.len(), 1);

    // A few entries checked field by field.
    let first = &decoded[0].announced[0];
    assert_eq!(first.prefixes, nets(&["3.0.0.0/8"]));
    assert_eq!(first.attrs.origin, Origin::Igp);
    assert_eq!(first.attrs.as_path, AsPath::sequence([1853, 1239, 80]));
    assert_eq!(
        first.attrs.next_hop.addr,
        IpAddr::V4(Ipv4Addr::new(193, 203, 0, 1))
    );

    let agg = &decoded[20].announced[0];
    assert_eq!(agg.prefixes, nets(&["12.2.41.0/24"]));
    assert!(agg.attrs.atomic_aggregate);
    assert_eq!(agg.attrs.aggregator, Some((13606, Ipv4Addr::new(12, 2, 41, 25))));

    let set = &decoded[2541].announced[0];
    assert_eq!(set.prefixes, nets(&["24.223.0.0/18"]));
    assert_eq!(
        set.attrs.as_path.segments,
        vec![
            AsSegment::Sequence(vec![1853, 1239, 13659]),
            AsSegment::Set(vec![13659, 701]),
        ]
    );
    assert_eq!(set.attrs.as_path.length(), 4);

    let med = &decoded[3075].announced[0];
    assert_eq!(med.prefixes, nets(&["53.244.0.0/19"]));
    assert_eq!(med.attrs.med, Some(5000));

    let comm = &decoded[4239].announced[0];
    assert_eq!(comm.prefixes, nets(&["62.10.0.0/15"]));
    assert_eq!((comm.attrs.med, comm.attrs.as_path.length()), (Some(320), 2));
    assert_eq!(
        comm.attrs.communities,
        vec![Community::new(3257, 4000), Community::new(3257, 5039)]
    );
}
