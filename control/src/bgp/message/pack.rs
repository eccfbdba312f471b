//! Encoding UPDATEs: as many prefixes per message as fit in 4096 bytes, so that a full table
//! goes out in as few messages as possible.
//!
//! IPv4 travels in the Withdrawn Routes and NLRI fields with NEXT_HOP; IPv6 in MP_UNREACH_NLRI
//! and MP_REACH_NLRI (next hop 16 bytes, or 32 with the link-local address, RFC 2545), put
//! before every other attribute (RFC 7606 5.1). A message never mixes withdrawals and
//! announcements (RFC 7606 5.1 again): the caller asks for one or the other.

use super::super::types::{Family, NextHop, PathAttributes};
use super::attributes::{attr_type, encode_attributes};
use super::nlri::{encode_prefix, wire_len};
use super::{begin_message, finish_message, message_type, EncodeContext, EncodeError, MAX_MESSAGE_LEN};
use crate::bgp::types::attr_flags;
use ipnet::IpNet;
use std::net::IpAddr;

/// Header, Withdrawn Routes Length and Total Path Attribute Length.
const UPDATE_FIXED: usize = 19 + 2 + 2;

/// The parts of one UPDATE message.
pub(super) struct UpdateParts<'a> {
    pub withdrawn_v4: &'a [IpNet],
    /// MP_UNREACH_NLRI: its family and prefixes (none for an End-of-RIB marker).
    pub mp_unreach: Option<(Family, &'a [IpNet])>,
    pub mp_reach: Option<(Family, NextHop, &'a [IpNet])>,
    /// Every other attribute, already encoded.
    pub attrs: &'a [u8],
    pub nlri_v4: &'a [IpNet],
}

/// The header size of an attribute with a value of `len` bytes.
fn attr_header(len: usize) -> usize {
    if len > 255 {
        4
    } else {
        3
    }
}

fn prefixes_len(p: &[IpNet]) -> usize {
    p.iter().map(wire_len).sum()
}

/// The next hop bytes MP_REACH_NLRI carries for `family`.
fn mp_next_hop_len(family: Family, nh: &NextHop) -> Result<usize, EncodeError> {
    match (family, nh.addr) {
        (Family::Ipv4Unicast, IpAddr::V4(_)) => Ok(4),
        (Family::Ipv6Unicast, IpAddr::V6(_)) => Ok(if nh.link_local.is_some() { 32 } else { 16 }),
        _ => Err(EncodeError::NextHopFamily {
            family,
            next_hop: nh.addr,
        }),
    }
}

/// Writes the attribute header and returns nothing; the value follows.
fn put_attr_header(out: &mut Vec<u8>, flags: u8, code: u8, len: usize) {
    if len > 255 {
        out.extend_from_slice(&[flags | attr_flags::EXTENDED_LENGTH, code]);
        out.extend_from_slice(&(len.min(0xFFFF) as u16).to_be_bytes());
    } else {
        out.extend_from_slice(&[flags, code, len as u8]);
    }
}

/// Appends one UPDATE made of `parts`.
pub(super) fn write_update(parts: &UpdateParts<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = begin_message(out, message_type::UPDATE);
    let withdrawn_len = prefixes_len(parts.withdrawn_v4);
    out.extend_from_slice(&(withdrawn_len.min(0xFFFF) as u16).to_be_bytes());
    for p in parts.withdrawn_v4 {
        encode_prefix(p, out);
    }
    let attrs_len_at = out.len();
    out.extend_from_slice(&[0, 0]);
    if let Some((family, nh, prefixes)) = parts.mp_reach {
        let nh_len = mp_next_hop_len(family, &nh).inspect_err(|_| out.truncate(start))?;
        let len = 5 + nh_len + prefixes_len(prefixes);
        put_attr_header(out, attr_flags::OPTIONAL, attr_type::MP_REACH_NLRI, len);
        out.extend_from_slice(&family.afi().to_be_bytes());
        out.extend_from_slice(&[family.safi(), nh_len as u8]);
        match nh.addr {
            IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
        }
        if let Some(ll) = nh.link_local.filter(|_| nh_len == 32) {
            out.extend_from_slice(&ll.octets());
        }
        out.push(0);
        for p in prefixes {
            encode_prefix(p, out);
        }
    }
    if let Some((family, prefixes)) = parts.mp_unreach {
        let len = 3 + prefixes_len(prefixes);
        put_attr_header(out, attr_flags::OPTIONAL, attr_type::MP_UNREACH_NLRI, len);
        out.extend_from_slice(&family.afi().to_be_bytes());
        out.push(family.safi());
        for p in prefixes {
            encode_prefix(p, out);
        }
    }
    out.extend_from_slice(parts.attrs);
    let attrs_len = out.len() - attrs_len_at - 2;
    out[attrs_len_at..attrs_len_at + 2].copy_from_slice(&(attrs_len.min(0xFFFF) as u16).to_be_bytes());
    for p in parts.nlri_v4 {
        encode_prefix(p, out);
    }
    finish_message(out, start, "UPDATE")
}

/// Splits `prefixes` into runs whose message size, `size(nlri bytes)`, stays within 4096, and
/// calls `emit` on each; returns how many messages that made.
fn pack(
    prefixes: &[IpNet],
    size: impl Fn(usize) -> usize,
    mut emit: impl FnMut(&[IpNet]) -> Result<(), EncodeError>,
) -> Result<usize, EncodeError> {
    let mut rest = prefixes;
    let mut messages = 0;
    while !rest.is_empty() {
        let mut bytes = 0;
        let mut n = 0;
        for p in rest {
            let l = wire_len(p);
            if size(bytes + l) > MAX_MESSAGE_LEN {
                break;
            }
            bytes += l;
            n += 1;
        }
        if n == 0 {
            return Err(EncodeError::AttributesTooLong(size(0)));
        }
        emit(&rest[..n])?;
        rest = &rest[n..];
        messages += 1;
    }
    Ok(messages)
}

/// Appends as few UPDATEs as possible announcing `prefixes`, all of one family, with `attrs`
/// (whose next hop must be of that family); returns how many. Nothing is appended on error.
pub fn encode_announce(
    attrs: &PathAttributes,
    prefixes: &[IpNet],
    ctx: &EncodeContext,
    out: &mut Vec<u8>,
) -> Result<usize, EncodeError> {
    let Some(first) = prefixes.first() else {
        return Ok(0);
    };
    let family = Family::of(first);
    if prefixes.iter().any(|p| Family::of(p) != family) {
        return Err(EncodeError::MixedFamilies);
    }
    let nh_len = mp_next_hop_len(family, &attrs.next_hop)?;
    let ipv4 = family == Family::Ipv4Unicast;
    let mut common = Vec::with_capacity(64);
    encode_attributes(attrs, ctx, ipv4, &mut common)?;
    let start = out.len();
    let result = if ipv4 {
        pack(
            prefixes,
            |nlri| UPDATE_FIXED + common.len() + nlri,
            |chunk| {
                let parts = UpdateParts {
                    withdrawn_v4: &[],
                    mp_unreach: None,
                    mp_reach: None,
                    attrs: &common,
                    nlri_v4: chunk,
                };
                write_update(&parts, out)
            },
        )
    } else {
        pack(
            prefixes,
            |nlri| {
                let mp = 5 + nh_len + nlri;
                UPDATE_FIXED + common.len() + attr_header(mp) + mp
            },
            |chunk| {
                let parts = UpdateParts {
                    withdrawn_v4: &[],
                    mp_unreach: None,
                    mp_reach: Some((family, attrs.next_hop, chunk)),
                    attrs: &common,
                    nlri_v4: &[],
                };
                write_update(&parts, out)
            },
        )
    };
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Appends as few UPDATEs as possible withdrawing `prefixes` (IPv4 ones in the Withdrawn
/// Routes field, IPv6 ones in MP_UNREACH_NLRI); returns how many.
pub fn encode_withdraw(prefixes: &[IpNet], out: &mut Vec<u8>) -> usize {
    let (v4, v6): (Vec<IpNet>, Vec<IpNet>) = prefixes.iter().partition(|p| matches!(p, IpNet::V4(_)));
    // A prefix takes at most 17 bytes, so every message has room for one: no errors.
    let v4_messages = pack(
        &v4,
        |wd| UPDATE_FIXED + wd,
        |chunk| {
            let parts = UpdateParts {
                withdrawn_v4: chunk,
                mp_unreach: None,
                mp_reach: None,
                attrs: &[],
                nlri_v4: &[],
            };
            write_update(&parts, out)
        },
    )
    .unwrap_or(0);
    let v6_messages = pack(
        &v6,
        |nlri| UPDATE_FIXED + attr_header(3 + nlri) + 3 + nlri,
        |chunk| {
            let parts = UpdateParts {
                withdrawn_v4: &[],
                mp_unreach: Some((Family::Ipv6Unicast, chunk)),
                mp_reach: None,
                attrs: &[],
                nlri_v4: &[],
            };
            write_update(&parts, out)
        },
    )
    .unwrap_or(0);
    v4_messages + v6_messages
}

/// Appends the End-of-RIB marker for `family` (RFC 4724 2).
pub fn encode_end_of_rib(family: Family, out: &mut Vec<u8>) {
    let parts = UpdateParts {
        withdrawn_v4: &[],
        mp_unreach: (family != Family::Ipv4Unicast).then_some((family, &[][..])),
        mp_reach: None,
        attrs: &[],
        nlri_v4: &[],
    };
    // 23 or 29 bytes: cannot fail.
    let _ = write_update(&parts, out);
}

#[cfg(test)]
mod tests {
    use super::super::super::types::{AsPath, Community, Origin};
    use super::super::{decode, frame_len, DecodeContext, FamilySet, Message, Update};
    use super::*;
    use ipnet::{Ipv4Net, Ipv6Net};
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// Cuts `bytes` into messages, checking each is at most 4096 bytes, and decodes them.
    fn decode_all(bytes: &[u8], four_octet_as: bool) -> Vec<Update> {
        let ctx = DecodeContext::new(four_octet_as, false, FamilySet::all());
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let len = frame_len(rest).unwrap().unwrap();
            assert!(len <= MAX_MESSAGE_LEN);
            match decode(&rest[..len], &ctx) {
                Ok(Message::Update(u)) => {
                    assert!(u.issues.is_empty(), "{:?}", u.issues);
                    out.push(u);
                }
                other => panic!("{other:?}"),
            }
            rest = &rest[len..];
        }
        out
    }

    fn announced(updates: &[Update], attrs: &PathAttributes) -> Vec<IpNet> {
        updates
            .iter()
            .flat_map(|u| {
                assert!(u.withdrawn.is_empty());
                assert_eq!(u.announced.len(), 1);
                assert_eq!(&u.announced[0].attrs, attrs);
                u.announced[0].prefixes.iter().copied()
            })
            .collect()
    }

    fn v4_prefixes(n: u32, len: u8) -> Vec<IpNet> {
        (0..n)
            .map(|i| {
                let addr = Ipv4Addr::from((10 << 24) | (i << (32 - len)));
                IpNet::V4(Ipv4Net::new(addr, len).unwrap())
            })
            .collect()
    }

    fn attrs(next_hop: &str) -> PathAttributes {
        let mut a = PathAttributes::local(NextHop::new(next_hop.parse().unwrap()));
        a.origin = Origin::Incomplete;
        a.as_path = AsPath::sequence([64500, 4_200_000_000, 65550]);
        a.med = Some(10);
        a.add_community(Community::new(64500, 7));
        a
    }

    #[test]
    fn ipv4_announcements_fill_each_message_and_come_back_exactly() {
        let a = attrs("192.0.2.1");
        let prefixes = v4_prefixes(10_000, 24);
        let mut out = Vec::new();
        let n = encode_announce(&a, &prefixes, &EncodeContext { four_octet_as: true }, &mut out).unwrap();
        let updates = decode_all(&out, true);
        assert_eq!(updates.len(), n);
        assert_eq!(announced(&updates, &a), prefixes);
        // As few messages as the room allows: each /24 takes 4 bytes.
        let mut common = Vec::new();
        encode_attributes(&a, &EncodeContext { four_octet_as: true }, true, &mut common).unwrap();
        let per_message = (MAX_MESSAGE_LEN - UPDATE_FIXED - common.len()) / 4;
        assert_eq!(n, 10_000usize.div_ceil(per_message));
        assert!(n > 5);
    }

    #[test]
    fn a_two_octet_session_gets_as4_path_and_the_same_path_back() {
        let a = attrs("192.0.2.1");
        let prefixes = v4_prefixes(2000, 22);
        let mut out = Vec::new();
        encode_announce(&a, &prefixes, &EncodeContext { four_octet_as: false }, &mut out).unwrap();
        let updates = decode_all(&out, false);
        assert_eq!(announced(&updates, &a), prefixes);
    }

    #[test]
    fn ipv6_announcements_use_mp_reach_with_extended_length() {
        let mut a = attrs("2001:db8::1");
        a.next_hop.link_local = Some("fe80::1".parse().unwrap());
        let prefixes: Vec<IpNet> = (0..5000u128)
            .map(|i| {
                let addr = Ipv6Addr::from((0x2001_0db8u128 << 96) | (i << 80));
                IpNet::V6(Ipv6Net::new(addr, 48).unwrap())
            })
            .collect();
        let mut out = Vec::new();
        let n = encode_announce(&a, &prefixes, &EncodeContext { four_octet_as: true }, &mut out).unwrap();
        let updates = decode_all(&out, true);
        assert_eq!(updates.len(), n);
        assert_eq!(announced(&updates, &a), prefixes);
        // 7 bytes a prefix; every message but the last nearly full.
        assert_eq!(n, 5000usize.div_ceil((MAX_MESSAGE_LEN - 100) / 7));
        // MP_REACH_NLRI comes first, with the Extended Length bit.
        let first = &out[HEADER_LEN_FOR_TESTS + 4..];
        assert_eq!(&first[..2], &[0x90, 14]);
    }

    const HEADER_LEN_FOR_TESTS: usize = 19;

    #[test]
    fn withdrawals_of_both_families_are_packed_and_come_back_exactly() {
        let mut prefixes = v4_prefixes(3000, 24);
        let v6: Vec<IpNet> = (0..3000u128)
            .map(|i| {
                let addr = Ipv6Addr::from((0x2001_0db8u128 << 96) | (i << 64));
                IpNet::V6(Ipv6Net::new(addr, 64).unwrap())
            })
            .collect();
        prefixes.extend(v6.iter().copied());
        // Interleave the families: the output groups them, each in its order.
        prefixes.rotate_left(1500);
        let mut out = Vec::new();
        let n = encode_withdraw(&prefixes, &mut out);
        let updates = decode_all(&out, true);
        assert_eq!(updates.len(), n);
        let back: Vec<IpNet> = updates
            .iter()
            .flat_map(|u| {
                assert!(u.announced.is_empty());
                u.withdrawn.iter().copied()
            })
            .collect();
        let (want_v4, want_v6): (Vec<IpNet>, Vec<IpNet>) =
            prefixes.iter().partition(|p| matches!(p, IpNet::V4(_)));
        assert_eq!(back, [want_v4, want_v6].concat());
        assert_eq!(
            n,
            3000usize.div_ceil(4073 / 4) + 3000usize.div_ceil((4096 - 23 - 7) / 9)
        );
    }

    #[test]
    fn what_cannot_be_encoded_is_refused_and_nothing_is_appended() {
        let ctx = EncodeContext { four_octet_as: true };
        let mut out = vec![1, 2, 3];
        let mut huge = attrs("192.0.2.1");
        for i in 0..1100 {
            huge.add_community(Community(i));
        }
        assert!(matches!(
            encode_announce(&huge, &v4_prefixes(1, 24), &ctx, &mut out),
            Err(EncodeError::AttributesTooLong(_))
        ));
        let mixed = [v4_prefixes(1, 24), vec!["2001:db8::/32".parse().unwrap()]].concat();
        assert_eq!(
            encode_announce(&attrs("192.0.2.1"), &mixed, &ctx, &mut out),
            Err(EncodeError::MixedFamilies)
        );
        assert!(matches!(
            encode_announce(&attrs("2001:db8::1"), &v4_prefixes(1, 24), &ctx, &mut out),
            Err(EncodeError::NextHopFamily { .. })
        ));
        assert_eq!(out, [1, 2, 3]);
        assert_eq!(encode_announce(&attrs("192.0.2.1"), &[], &ctx, &mut out), Ok(0));
        assert_eq!(encode_withdraw(&[], &mut out), 0);
        assert_eq!(out, [1, 2, 3]);
    }
}
