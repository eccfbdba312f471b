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
