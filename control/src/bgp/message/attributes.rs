//! Path attributes one by one (RFC 4271 4.3 and 5.1, RFC 1997, RFC 6793): type codes, the flags
//! each must carry, AS_PATH both ways with 2- or 4-octet numbers, the AS4_PATH merge, and
//! encoding a [`PathAttributes`] into an attribute block.
//!
//! ```text
//! 0                   1
//! 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
//! +---------------+---------------+
//! |  Attr. Flags  |Attr. Type Code|   then a 1-octet length (2 with Extended Length)
//! +---------------+---------------+   and the value
//! ```

use super::super::types::{attr_flags, AsPath, AsSegment, Asn, PathAttributes, RawAttribute, AS_TRANS};
use super::update::AsPathError;
use super::{EncodeContext, EncodeError};
use std::net::IpAddr;

/// Path attribute type codes (IANA "BGP Path Attributes").
pub mod attr_type {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MULTI_EXIT_DISC: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const ORIGINATOR_ID: u8 = 9;
    pub const CLUSTER_LIST: u8 = 10;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
    pub const EXTENDED_COMMUNITIES: u8 = 16;
    pub const AS4_PATH: u8 = 17;
    pub const AS4_AGGREGATOR: u8 = 18;
    pub const IPV6_EXTENDED_COMMUNITIES: u8 = 25;
    pub const LARGE_COMMUNITIES: u8 = 32;
}

use attr_flags::{EXTENDED_LENGTH, OPTIONAL, PARTIAL, TRANSITIVE};
use attr_type as t;

/// The attribute's name, for logs.
pub fn attr_name(code: u8) -> Option<&'static str> {
    Some(match code {
        t::ORIGIN => "ORIGIN",
        t::AS_PATH => "AS_PATH",
        t::NEXT_HOP => "NEXT_HOP",
        t::MULTI_EXIT_DISC => "MULTI_EXIT_DISC",
        t::LOCAL_PREF => "LOCAL_PREF",
        t::ATOMIC_AGGREGATE => "ATOMIC_AGGREGATE",
        t::AGGREGATOR => "AGGREGATOR",
        t::COMMUNITIES => "COMMUNITIES",
        t::ORIGINATOR_ID => "ORIGINATOR_ID",
        t::CLUSTER_LIST => "CLUSTER_LIST",
        t::MP_REACH_NLRI => "MP_REACH_NLRI",
        t::MP_UNREACH_NLRI => "MP_UNREACH_NLRI",
        t::EXTENDED_COMMUNITIES => "EXTENDED_COMMUNITIES",
        t::AS4_PATH => "AS4_PATH",
        t::AS4_AGGREGATOR => "AS4_AGGREGATOR",
        t::IPV6_EXTENDED_COMMUNITIES => "IPV6_EXTENDED_COMMUNITIES",
        t::LARGE_COMMUNITIES => "LARGE_COMMUNITIES",
        _ => return None,
    })
}

/// The Optional and Transitive bits a recognized attribute must carry (RFC 4271 5, RFC 7606 3
/// c); `None` for attributes xroute does not recognize.
pub(super) fn expected_flags(code: u8) -> Option<u8> {
    match code {
        t::ORIGIN | t::AS_PATH | t::NEXT_HOP | t::LOCAL_PREF | t::ATOMIC_AGGREGATE => Some(TRANSITIVE),
        t::MULTI_EXIT_DISC | t::ORIGINATOR_ID | t::CLUSTER_LIST | t::MP_REACH_NLRI | t::MP_UNREACH_NLRI => {
            Some(OPTIONAL)
        }
        t::AGGREGATOR
        | t::COMMUNITIES
        | t::EXTENDED_COMMUNITIES
        | t::AS4_PATH
        | t::AS4_AGGREGATOR
        | t::IPV6_EXTENDED_COMMUNITIES
        | t::LARGE_COMMUNITIES => Some(OPTIONAL | TRANSITIVE),
        _ => None,
    }
}

/// Attributes whose value xroute checks but carries as raw bytes in
/// [`PathAttributes::unknown`]: they are recognized, so they keep the Partial bit they came
/// with instead of getting it set on the way out.
pub(super) fn is_validated_raw(code: u8) -> bool {
    matches!(
        code,
        t::EXTENDED_COMMUNITIES | t::IPV6_EXTENDED_COMMUNITIES | t::LARGE_COMMUNITIES
    )
}

/// Attributes the encoder writes from typed fields: a raw one with such a code is skipped
/// rather than sent twice.
fn is_modelled(code: u8) -> bool {
    matches!(
        code,
        t::ORIGIN
            | t::AS_PATH
            | t::NEXT_HOP
            | t::MULTI_EXIT_DISC
            | t::LOCAL_PREF
            | t::ATOMIC_AGGREGATE
            | t::AGGREGATOR
            | t::COMMUNITIES
            | t::ORIGINATOR_ID
            | t::CLUSTER_LIST
            | t::MP_REACH_NLRI
            | t::MP_UNREACH_NLRI
            | t::AS4_PATH
            | t::AS4_AGGREGATOR
    )
}

const SEG_SET: u8 = 1;
const SEG_SEQUENCE: u8 = 2;
const SEG_CONFED_SEQUENCE: u8 = 3;
const SEG_CONFED_SET: u8 = 4;

/// Decodes AS_PATH (or AS4_PATH with `four_octet`), refusing what RFC 7606 7.2 calls malformed:
/// an unknown segment type, a segment of length zero, a segment running past the attribute, a
/// lone trailing octet; and AS 0 (RFC 7607).
pub(super) fn decode_as_path(v: &[u8], four_octet: bool) -> Result<AsPath, AsPathError> {
    let width = if four_octet { 4 } else { 2 };
    let mut segments = Vec::new();
    let mut rest = v;
    while !rest.is_empty() {
        let [ty, count] = rest.get(..2).ok_or(AsPathError::Overrun)? else {
            return Err(AsPathError::Overrun);
        };
        let (ty, count) = (*ty, usize::from(*count));
        if !(SEG_SET..=SEG_CONFED_SET).contains(&ty) {
            return Err(AsPathError::SegmentType(ty));
        }
        if count == 0 {
            return Err(AsPathError::EmptySegment);
        }
        let body = rest.get(2..2 + count * width).ok_or(AsPathError::Overrun)?;
        let asns: Vec<Asn> = if four_octet {
            body.chunks_exact(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        } else {
            body.chunks_exact(2)
                .map(|c| Asn::from(u16::from_be_bytes([c[0], c[1]])))
                .collect()
        };
        if asns.contains(&0) {
            return Err(AsPathError::ZeroAs);
        }
        segments.push(match ty {
            SEG_SET => AsSegment::Set(asns),
            SEG_SEQUENCE => AsSegment::Sequence(asns),
            SEG_CONFED_SEQUENCE => AsSegment::ConfedSequence(asns),
            _ => AsSegment::ConfedSet(asns),
        });
        rest = &rest[2 + count * width..];
    }
    Ok(AsPath { segments })
}

fn is_confed(s: &AsSegment) -> bool {
    matches!(s, AsSegment::ConfedSequence(_) | AsSegment::ConfedSet(_))
}

pub(super) fn has_confed_segments(p: &AsPath) -> bool {
    p.segments.iter().any(is_confed)
}

/// Appends the AS_PATH value: segments of more than 255 numbers are split, empty ones left out;
/// with 2-octet numbers each AS above 65535 becomes AS_TRANS. `skip_confed` leaves the
/// confederation segments out (AS4_PATH must not carry them, RFC 6793 3).
fn encode_as_path(path: &AsPath, four_octet: bool, skip_confed: bool, out: &mut Vec<u8>) {
    for seg in &path.segments {
        if skip_confed && is_confed(seg) {
            continue;
        }
        let ty = match seg {
            AsSegment::Set(_) => SEG_SET,
            AsSegment::Sequence(_) => SEG_SEQUENCE,
            AsSegment::ConfedSequence(_) => SEG_CONFED_SEQUENCE,
            AsSegment::ConfedSet(_) => SEG_CONFED_SET,
        };
        for chunk in seg.asns().chunks(255) {
            out.push(ty);
            out.push(chunk.len() as u8);
            for &asn in chunk {
                if four_octet {
                    out.extend_from_slice(&asn.to_be_bytes());
                } else {
                    out.extend_from_slice(&two_octet(asn).to_be_bytes());
                }
            }
        }
    }
}

fn two_octet(asn: Asn) -> u16 {
    u16::try_from(asn).unwrap_or(AS_TRANS as u16)
}

/// Whether a 2-octet session needs AS4_PATH beside AS_PATH to carry `path` exactly.
fn needs_as4_path(path: &AsPath) -> bool {
    path.segments
        .iter()
        .filter(|s| !is_confed(s))
        .any(|s| s.asns().iter().any(|&a| a > 0xFFFF))
}

/// Rebuilds the real path from a 2-octet AS_PATH and the AS4_PATH beside it (RFC 6793 4.2.3):
/// when AS_PATH counts fewer numbers than AS4_PATH, AS4_PATH is ignored; otherwise the leading
/// part of AS_PATH that AS4_PATH lacks is put in front of AS4_PATH, together with leading
/// confederation segments and those adjacent to what is taken.
pub(super) fn merge_as4_path(as_path: AsPath, as4_path: AsPath) -> AsPath {
    let (len, len4) = (as_path.length(), as4_path.length());
    if len < len4 {
        return as_path;
    }
    let mut need = len - len4;
    let mut merged = Vec::with_capacity(as_path.segments.len() + as4_path.segments.len());
    for seg in as_path.segments {
        match seg {
            AsSegment::ConfedSequence(_) | AsSegment::ConfedSet(_) => merged.push(seg),
            _ if need == 0 => break,
            AsSegment::Set(_) => {
                merged.push(seg);
                need -= 1;
            }
            AsSegment::Sequence(mut v) => {
                if v.len() > need {
                    v.truncate(need);
                    merged.push(AsSegment::Sequence(v));
                    break;
                }
                need -= v.len();
                merged.push(AsSegment::Sequence(v));
            }
        }
    }
    let mut rest = as4_path.segments.into_iter();
    // Join a taken sequence and a leading AS4 sequence back into one segment when they fit.
    if let (Some(AsSegment::Sequence(head)), Some(AsSegment::Sequence(next))) =
        (merged.last_mut(), rest.as_slice().first())
    {
        if head.len() + next.len() <= 255 {
            head.extend_from_slice(next);
            rest.next();
        }
    }
    merged.extend(rest);
    AsPath { segments: merged }
}

/// Writes one attribute: flags (Extended Length set only when the value needs it), type,
/// length, and the value `value` appends.
fn put_attr(
    out: &mut Vec<u8>,
    flags: u8,
    code: u8,
    value: impl FnOnce(&mut Vec<u8>),
) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[flags & !EXTENDED_LENGTH, code, 0, 0]);
    value(out);
    let len = out.len() - start - 4;
    if len > 0xFFFF {
        out.truncate(start);
        return Err(EncodeError::AttributesTooLong(len));
    }
    if len > 0xFF {
        out[start] |= EXTENDED_LENGTH;
        out[start + 2..start + 4].copy_from_slice(&(len as u16).to_be_bytes());
    } else {
        out[start + 2] = len as u8;
        out.remove(start + 3);
    }
    Ok(())
}

/// Writes an attribute whose value is already bytes.
pub(super) fn put_raw_attr(out: &mut Vec<u8>, flags: u8, code: u8, value: &[u8]) {
    let flags = flags & !EXTENDED_LENGTH;
    match u8::try_from(value.len()) {
        Ok(len) => out.extend_from_slice(&[flags, code, len]),
        Err(_) => {
            out.extend_from_slice(&[flags | EXTENDED_LENGTH, code]);
            out.extend_from_slice(&(value.len().min(0xFFFF) as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(&value[..value.len().min(0xFFFF)]);
}

/// Appends every attribute of `attrs` except MP_REACH_NLRI / MP_UNREACH_NLRI (which the caller
/// puts first, RFC 7606 5.1), in type-code order: NEXT_HOP only when `with_next_hop` (IPv4
/// NLRI), LOCAL_PREF only when present (the speaker clears it toward eBGP peers), AS4_PATH and
/// AS4_AGGREGATOR on 2-octet sessions when a number needs them, and the unknown transitive
/// attributes with the Partial bit set.
pub(super) fn encode_attributes(
    attrs: &PathAttributes,
    ctx: &EncodeContext,
    with_next_hop: bool,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let four = ctx.four_octet_as;
    let mut unknown: Vec<&RawAttribute> = attrs
        .unknown
        .iter()
        .filter(|a| !is_modelled(a.type_code))
        .collect();
    unknown.sort_by_key(|a| a.type_code);
    let mut unknown = unknown.into_iter().peekable();
    // Writes the raw attributes whose code comes before `code`.
    let mut raw_before = |code: u16, out: &mut Vec<u8>| {
        while let Some(a) = unknown.next_if(|a| u16::from(a.type_code) < code) {
            let mut flags = (a.flags & 0xF0) | OPTIONAL | TRANSITIVE;
            if !is_validated_raw(a.type_code) {
                flags |= PARTIAL;
            }
            put_raw_attr(out, flags, a.type_code, &a.value);
        }
    };

    raw_before(u16::from(t::ORIGIN), out);
    put_attr(out, TRANSITIVE, t::ORIGIN, |o| o.push(attrs.origin as u8))?;
    put_attr(out, TRANSITIVE, t::AS_PATH, |o| {
        encode_as_path(&attrs.as_path, four, false, o)
    })?;
    if with_next_hop {
        if let IpAddr::V4(nh) = attrs.next_hop.addr {
            put_attr(out, TRANSITIVE, t::NEXT_HOP, |o| {
                o.extend_from_slice(&nh.octets())
            })?;
        }
    }
    raw_before(u16::from(t::MULTI_EXIT_DISC), out);
    if let Some(med) = attrs.med {
        put_attr(out, OPTIONAL, t::MULTI_EXIT_DISC, |o| {
            o.extend_from_slice(&med.to_be_bytes())
        })?;
    }
    if let Some(lp) = attrs.local_pref {
        put_attr(out, TRANSITIVE, t::LOCAL_PREF, |o| {
            o.extend_from_slice(&lp.to_be_bytes())
        })?;
    }
    if attrs.atomic_aggregate {
        put_attr(out, TRANSITIVE, t::ATOMIC_AGGREGATE, |_| {})?;
    }
    if let Some((asn, id)) = attrs.aggregator {
        put_attr(out, OPTIONAL | TRANSITIVE, t::AGGREGATOR, |o| {
            if four {
                o.extend_from_slice(&asn.to_be_bytes());
            } else {
                o.extend_from_slice(&two_octet(asn).to_be_bytes());
            }
            o.extend_from_slice(&id.octets());
        })?;
    }
    if !attrs.communities.is_empty() {
        put_attr(out, OPTIONAL | TRANSITIVE, t::COMMUNITIES, |o| {
            for c in &attrs.communities {
                o.extend_from_slice(&c.0.to_be_bytes());
            }
        })?;
    }
    if !four {
        raw_before(u16::from(t::AS4_PATH), out);
        if needs_as4_path(&attrs.as_path) {
            put_attr(out, OPTIONAL | TRANSITIVE, t::AS4_PATH, |o| {
                encode_as_path(&attrs.as_path, true, true, o)
            })?;
        }
        if let Some((asn, id)) = attrs.aggregator.filter(|(a, _)| *a > 0xFFFF) {
            put_attr(out, OPTIONAL | TRANSITIVE, t::AS4_AGGREGATOR, |o| {
                o.extend_from_slice(&asn.to_be_bytes());
                o.extend_from_slice(&id.octets());
            })?;
        }
    }
    raw_before(256, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(segs: &[(u8, &[Asn])]) -> AsPath {
        AsPath {
            segments: segs
                .iter()
                .map(|(ty, v)| match ty {
                    1 => AsSegment::Set(v.to_vec()),
                    2 => AsSegment::Sequence(v.to_vec()),
                    3 => AsSegment::ConfedSequence(v.to_vec()),
                    _ => AsSegment::ConfedSet(v.to_vec()),
                })
                .collect(),
        }
    }

    #[test]
    fn as_path_both_widths_both_ways() {
        let p = path(&[(2, &[64500, 70000]), (1, &[1, 2])]);
        let mut four = Vec::new();
        encode_as_path(&p, true, false, &mut four);
        assert_eq!(
            four,
            [2, 2, 0, 0, 0xFB, 0xF4, 0, 1, 0x11, 0x70, 1, 2, 0, 0, 0, 1, 0, 0, 0, 2]
        );
        assert_eq!(decode_as_path(&four, true), Ok(p.clone()));
        let mut two = Vec::new();
        encode_as_path(&p, false, false, &mut two);
        assert_eq!(two, [2, 2, 0xFB, 0xF4, 0x5B, 0xA0, 1, 2, 0, 1, 0, 2]);
        assert_eq!(
            decode_as_path(&two, false),
            Ok(path(&[(2, &[64500, 23456]), (1, &[1, 2])]))
        );
        assert!(needs_as4_path(&p));
        assert!(!needs_as4_path(&path(&[(2, &[65535]), (3, &[70000])])));
    }

    #[test]
    fn long_segments_are_split_at_255() {
        let p = AsPath::sequence(1..=300);
        let mut v = Vec::new();
        encode_as_path(&p, true, false, &mut v);
        let back = decode_as_path(&v, true).unwrap();
        assert_eq!(back.segments.len(), 2);
        assert_eq!(back.segments[0].asns().len(), 255);
        assert_eq!(back.asns().collect::<Vec<_>>(), (1..=300).collect::<Vec<_>>());
    }

    #[test]
    fn malformed_as_paths_are_refused() {
        assert_eq!(decode_as_path(&[2, 0], true), Err(AsPathError::EmptySegment));
        assert_eq!(
            decode_as_path(&[5, 1, 0, 1], false),
            Err(AsPathError::SegmentType(5))
        );
        assert_eq!(decode_as_path(&[2, 2, 0, 1], false), Err(AsPathError::Overrun));
        assert_eq!(decode_as_path(&[2, 1, 0, 1, 2], false), Err(AsPathError::Overrun));
        assert_eq!(decode_as_path(&[2, 1, 0, 0], false), Err(AsPathError::ZeroAs));
        assert_eq!(decode_as_path(&[], false), Ok(AsPath::default()));
    }

    #[test]
    fn as4_path_merge_follows_rfc6793() {
        // A 4-octet AS behind an old speaker: AS_PATH 100 23456 300, AS4_PATH 70000 300.
        let merged = merge_as4_path(path(&[(2, &[100, 23456, 300])]), path(&[(2, &[70000, 300])]));
        assert_eq!(merged, path(&[(2, &[100, 70000, 300])]));
        // AS4_PATH longer than AS_PATH: ignored.
        let as_path = path(&[(2, &[100])]);
        assert_eq!(merge_as4_path(as_path.clone(), path(&[(2, &[1, 2])])), as_path);
        // Leading confederation segments and sets are taken whole.
        let merged = merge_as4_path(
            path(&[(3, &[65001]), (1, &[10, 20]), (2, &[23456, 7])]),
            path(&[(2, &[80000, 7])]),
        );
        assert_eq!(merged, path(&[(3, &[65001]), (1, &[10, 20]), (2, &[80000, 7])]));
        // Equal lengths: the AS4_PATH, with the leading confederation segment kept.
        let merged = merge_as4_path(path(&[(3, &[65001]), (2, &[23456])]), path(&[(2, &[80000])]));
        assert_eq!(merged, path(&[(3, &[65001]), (2, &[80000])]));
    }

    #[test]
    fn extended_length_only_when_the_value_needs_it() {
        let mut out = Vec::new();
        put_attr(&mut out, OPTIONAL | TRANSITIVE, 99, |o| {
            o.extend_from_slice(&[7; 255])
        })
        .unwrap();
        assert_eq!(&out[..3], &[0xC0, 99, 255]);
        assert_eq!(out.len(), 258);
        let mut out = Vec::new();
        put_attr(&mut out, OPTIONAL | TRANSITIVE | EXTENDED_LENGTH, 99, |o| {
            o.extend_from_slice(&[7; 256])
        })
        .unwrap();
        assert_eq!(&out[..4], &[0xD0, 99, 1, 0]);
        assert_eq!(out.len(), 260);
        let mut out = Vec::new();
        put_raw_attr(&mut out, 0xF0, 99, &[1, 2]);
        assert_eq!(out, [0xE0, 99, 2, 1, 2]);
    }
}
