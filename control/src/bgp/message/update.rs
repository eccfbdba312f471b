//! UPDATE decoding (RFC 4271 4.3, RFC 4760, RFC 6793) with the error handling of RFC 7606.
//!
//! ```text
//! +-----------------------------------------------------+
//! |   Withdrawn Routes Length (2 octets)                |
//! |   Withdrawn Routes (variable)                       |
//! |   Total Path Attribute Length (2 octets)            |
//! |   Path Attributes (variable)                        |
//! |   Network Layer Reachability Information (variable) |
//! +-----------------------------------------------------+
//! ```
//!
//! Every malformation gets the approach RFC 7606 gives it, the strongest one winning (3 g):
//! - session reset (`Err(Notification)`): the lengths of the three fields do not add up (3/1),
//!   a syntactically incorrect Withdrawn Routes or NLRI field (3/10, 5.3), MP_REACH_NLRI or
//!   MP_UNREACH_NLRI twice (3/1, 3 f), malformed (3/9 with the attribute, 7.11, RFC 4760 7) or
//!   with wrong flags (3/4 with the attribute), an unrecognized well-known attribute (3/2 with
//!   the attribute);
//! - treat-as-withdraw ([`Action::TreatAsWithdraw`]): every prefix the message announces, in
//!   the NLRI field and in MP_REACH_NLRI, is withdrawn instead. For a missing mandatory
//!   attribute (3 d), an attribute running past the attribute block (4), wrong flags (3 c) or
//!   length of ORIGIN, AS_PATH, NEXT_HOP, MULTI_EXIT_DISC, LOCAL_PREF (iBGP), COMMUNITIES,
//!   ORIGINATOR_ID, CLUSTER_LIST, the extended and large communities (7.1-7.10, 7.14, 7.15,
//!   RFC 8092 6), a bad ORIGIN value, a malformed AS_PATH or one with AS 0 (RFC 7607) or with
//!   confederation segments from an eBGP peer (RFC 5065 5), an unusable next hop;
//! - attribute discard ([`Action::AttributeDiscard`]): the attribute is dropped and the routes
//!   kept. For a duplicate attribute (3 f), LOCAL_PREF from an eBGP peer (7.5), a malformed
//!   ATOMIC_AGGREGATE or AGGREGATOR (7.6, 7.7), a malformed AS4_PATH or AS4_AGGREGATOR or
//!   either on a 4-octet session (RFC 6793 6, 4.1), confederation segments in AS4_PATH, a
//!   malformed NEXT_HOP in a message without IPv4 NLRI (RFC 4760 3: it is ignored there);
//! - NLRI ignored ([`Action::NlriIgnored`]): prefixes of a family that was not negotiated or
//!   that we do not speak.
//!
//! Unknown optional attributes are kept when transitive (passed on with the Partial bit) and
//! silently dropped when not. Nothing is reported for a clean message.

use super::super::types::{
    attr_flags, AsPath, AsSegment, Asn, Community, Family, NextHop, Origin, PathAttributes, RawAttribute,
    AS_TRANS,
};
use super::attributes::{
    attr_name, attr_type as t, decode_as_path, encode_attributes, expected_flags, has_confed_segments,
    merge_as4_path,
};
use super::nlri::decode_prefixes;
use super::pack::{write_update, UpdateParts};
use super::{
    be16, be32, error_code, update_subcode, DecodeContext, EncodeContext, EncodeError, Notification,
};
use ipnet::IpNet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What RFC 7606 made of a malformation the session survives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// The attribute was dropped; the routes stand.
    AttributeDiscard,
    /// Every prefix the message announced is withdrawn instead.
    TreatAsWithdraw,
    /// Prefixes of a family that was not negotiated were ignored.
    NlriIgnored,
}

/// Why an AS_PATH (or AS4_PATH) is malformed (RFC 7606 7.2, RFC 7607, RFC 5065 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AsPathError {
    SegmentType(u8),
    EmptySegment,
    /// A segment runs past the attribute, or a lone octet is left after the last one.
    Overrun,
    ZeroAs,
    ConfedFromEbgp,
}

impl fmt::Display for AsPathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SegmentType(ty) => write!(f, "unknown segment type {ty}"),
            Self::EmptySegment => f.write_str("segment of length zero"),
            Self::Overrun => f.write_str("segment runs past the attribute"),
            Self::ZeroAs => f.write_str("AS 0"),
            Self::ConfedFromEbgp => f.write_str("confederation segment from an eBGP peer"),
        }
    }
}

/// What was wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttrProblem {
    /// The Optional / Transitive bits conflict with the type.
    Flags(u8),
    Length(usize),
    OriginValue(u8),
    AsPath(AsPathError),
    NextHop(IpAddr),
    /// A well-known mandatory attribute is missing while prefixes are announced.
    Missing,
    /// The attribute came a second time; the first one is kept.
    Duplicate,
    LocalPrefFromEbgp,
    /// An attribute runs past the Total Path Attribute Length, or fewer octets than an
    /// attribute header are left (RFC 7606 4).
    AttributeListOverrun,
    UnnegotiatedFamily {
        afi: u16,
        safi: u8,
    },
    /// AS4_PATH / AS4_AGGREGATOR between two 4-octet speakers.
    As4OnFourOctetSession,
    ZeroAs,
    /// AS_CONFED segments in AS4_PATH were removed (RFC 6793 6).
    ConfedInAs4Path,
}

/// One malformation of an UPDATE that did not reset the session, for logs and counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UpdateIssue {
    pub action: Action,
    /// The attribute concerned, if one.
    pub type_code: Option<u8>,
    pub problem: AttrProblem,
}

impl fmt::Display for UpdateIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.action {
            Action::AttributeDiscard => "attribute discarded",
            Action::TreatAsWithdraw => "treated as withdraw",
            Action::NlriIgnored => "prefixes ignored",
        })?;
        if let Some(code) = self.type_code {
            match attr_name(code) {
                Some(name) => write!(f, ": {name}")?,
                None => write!(f, ": attribute {code}")?,
            }
        }
        match self.problem {
            AttrProblem::Flags(flags) => write!(f, ": flags {flags:#04x} conflict with the type"),
            AttrProblem::Length(len) => write!(f, ": bad length {len}"),
            AttrProblem::OriginValue(v) => write!(f, ": undefined value {v}"),
            AttrProblem::AsPath(e) => write!(f, ": {e}"),
            AttrProblem::NextHop(a) => write!(f, ": {a} is not a usable next hop"),
            AttrProblem::Missing => f.write_str(": missing"),
            AttrProblem::Duplicate => f.write_str(": duplicate"),
            AttrProblem::LocalPrefFromEbgp => f.write_str(": from an eBGP peer"),
            AttrProblem::AttributeListOverrun => {
                f.write_str(": attributes overrun the total path attribute length")
            }
            AttrProblem::UnnegotiatedFamily { afi, safi } => {
                write!(f, ": AFI {afi} SAFI {safi} not negotiated")
            }
            AttrProblem::As4OnFourOctetSession => f.write_str(": on a 4-octet AS session"),
            AttrProblem::ZeroAs => f.write_str(": AS 0"),
            AttrProblem::ConfedInAs4Path => f.write_str(": confederation segments removed"),
        }
    }
}

/// Prefixes announced with one set of path attributes (one per next hop: an UPDATE may carry
/// IPv4 NLRI with NEXT_HOP and IPv6 in MP_REACH_NLRI with its own next hop).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    pub family: Family,
    pub attrs: PathAttributes,
    pub prefixes: Vec<IpNet>,
}

/// A decoded UPDATE, or the content of one to encode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Update {
    /// Withdrawn prefixes of every family: the Withdrawn Routes field, MP_UNREACH_NLRI, and
    /// under treat-as-withdraw every prefix the message announced.
    pub withdrawn: Vec<IpNet>,
    pub announced: Vec<Announcement>,
    /// An End-of-RIB marker (RFC 4724 2): an empty UPDATE for IPv4, an UPDATE with only an
    /// empty MP_UNREACH_NLRI otherwise.
    pub eor: Option<Family>,
    /// What RFC 7606 handling did (empty for a clean message); ignored when encoding.
    pub issues: Vec<UpdateIssue>,
}

impl Update {
    /// The End-of-RIB marker for `family`.
    pub fn end_of_rib_marker(family: Family) -> Self {
        Self {
            eor: Some(family),
            ..Self::default()
        }
    }

    /// The family whose initial table this message ends, if it is an End-of-RIB marker.
    pub fn end_of_rib(&self) -> Option<Family> {
        self.eor
            .filter(|_| self.withdrawn.is_empty() && self.announced.is_empty())
    }

    /// Whether RFC 7606 turned the message's announcements into withdrawals.
    pub fn treated_as_withdraw(&self) -> bool {
        self.issues.iter().any(|i| i.action == Action::TreatAsWithdraw)
    }

    /// Encodes as exactly one UPDATE: IPv4 withdrawals in the Withdrawn Routes field, IPv6 ones
    /// in MP_UNREACH_NLRI, the IPv4 announcement with NEXT_HOP and the NLRI field, the IPv6 one
    /// in MP_REACH_NLRI (at most one of each, with the same attributes apart from the next
    /// hop). To announce many prefixes use [`super::encode_announce`], which splits them.
    pub fn encode(&self, ctx: &EncodeContext, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let (withdrawn_v4, withdrawn_v6): (Vec<IpNet>, Vec<IpNet>) =
            self.withdrawn.iter().partition(|p| matches!(p, IpNet::V4(_)));
        let mut v4 = None;
        let mut v6 = None;
        for a in &self.announced {
            if a.prefixes.iter().any(|p| Family::of(p) != a.family) {
                return Err(EncodeError::MixedFamilies);
            }
            let slot = match a.family {
                Family::Ipv4Unicast => &mut v4,
                Family::Ipv6Unicast => &mut v6,
            };
            if slot.replace(a).is_some() {
                return Err(EncodeError::NotOneUpdate);
            }
        }
        if let (Some(a), Some(b)) = (v4, v6) {
            let same = PathAttributes {
                next_hop: a.attrs.next_hop,
                ..b.attrs.clone()
            };
            if same != a.attrs {
                return Err(EncodeError::NotOneUpdate);
            }
        }
        if let Some(a) = v4 {
            if !a.attrs.next_hop.addr.is_ipv4() {
                return Err(EncodeError::NextHopFamily {
                    family: a.family,
                    next_hop: a.attrs.next_hop.addr,
                });
            }
        }
        let mut attrs = Vec::new();
        if let Some(a) = v4.or(v6) {
            encode_attributes(&a.attrs, ctx, v4.is_some(), &mut attrs)?;
        }
        let eor_v6 = self.end_of_rib() == Some(Family::Ipv6Unicast);
        let parts = UpdateParts {
            withdrawn_v4: &withdrawn_v4,
            mp_unreach: (!withdrawn_v6.is_empty() || eor_v6)
                .then_some((Family::Ipv6Unicast, withdrawn_v6.as_slice())),
            mp_reach: v6.map(|a| (a.family, a.attrs.next_hop, a.prefixes.as_slice())),
            attrs: &attrs,
            nlri_v4: v4.map_or(&[][..], |a| a.prefixes.as_slice()),
        };
        write_update(&parts, out)
    }
}

/// The session-reset NOTIFICATION for an attribute: UPDATE Message Error with `subcode` and
/// the whole attribute (flags, type, length, value) as data, as RFC 4271 6.3 asks.
fn attr_error(subcode: u8, raw: &[u8]) -> Notification {
    Notification::new(error_code::UPDATE_MESSAGE, subcode, raw.to_vec())
}

/// Whether `a` can be a next hop: not 0/8, loopback, multicast or the reserved 240/4
/// (RFC 4271 6.3 "a valid IP host address", RFC 7606 7.3).
fn usable_ipv4_next_hop(a: Ipv4Addr) -> bool {
    let first = a.octets()[0];
    first != 0 && first != 127 && first < 224
}

fn usable_ipv6_next_hop(a: Ipv6Addr) -> bool {
    !(a.is_unspecified() || a.is_loopback() || a.is_multicast())
}

/// The malformation approach of each recognized attribute (RFC 7606 7, RFC 6793 6).
fn malformed_action(code: u8) -> Action {
    match code {
        t::ATOMIC_AGGREGATE | t::AGGREGATOR | t::AS4_PATH | t::AS4_AGGREGATOR => Action::AttributeDiscard,
        _ => Action::TreatAsWithdraw,
    }
}

/// The MP_REACH_NLRI content of a family we speak and negotiated.
struct MpReach {
    family: Family,
    next_hop: NextHop,
    prefixes: Vec<IpNet>,
}

/// Attributes as they are found, before the checks that need all of them.
#[derive(Default)]
struct Found {
    seen: [u64; 4],
    count: usize,
    origin: Option<Origin>,
    as_path: Option<AsPath>,
    next_hop: Option<Ipv4Addr>,
    /// A malformed NEXT_HOP matters only if there are IPv4 NLRI (RFC 4760 3).
    next_hop_problem: Option<AttrProblem>,
    med: Option<u32>,
    local_pref: Option<u32>,
    atomic_aggregate: bool,
    aggregator: Option<(Asn, Ipv4Addr)>,
    as4_path: Option<AsPath>,
    as4_aggregator: Option<(Asn, Ipv4Addr)>,
    communities: Vec<Community>,
    unknown: Vec<RawAttribute>,
    mp_reach: Option<MpReach>,
    /// AFI/SAFI of MP_UNREACH_NLRI and whether it withdrew nothing (End-of-RIB candidate).
    mp_unreach_empty: Option<(u16, u8)>,
    mp_withdrawn: Vec<IpNet>,
    issues: Vec<UpdateIssue>,
}

impl Found {
    /// Marks `code` seen; false if it already was.
    fn first_time(&mut self, code: u8) -> bool {
        let (word, bit) = (usize::from(code / 64), code % 64);
        let fresh = self.seen[word] & (1 << bit) == 0;
        self.seen[word] |= 1 << bit;
        fresh
    }

    fn saw(&self, code: u8) -> bool {
        self.seen[usize::from(code / 64)] & (1 << (code % 64)) != 0
    }

    fn report(&mut self, action: Action, code: u8, problem: AttrProblem) {
        self.issues.push(UpdateIssue {
            action,
            type_code: Some(code),
            problem,
        });
    }

    fn malformed(&mut self, code: u8, problem: AttrProblem) {
        self.report(malformed_action(code), code, problem);
    }

    fn four_octet_value(v: &[u8]) -> Option<u32> {
        (v.len() == 4).then(|| be32(v))
    }

    /// One attribute; `Err` for those that reset the session.
    fn attribute(
        &mut self,
        flags: u8,
        code: u8,
        v: &[u8],
        raw: &[u8],
        ctx: &DecodeContext,
    ) -> Result<(), Notification> {
        self.count += 1;
        if !self.first_time(code) {
            if code == t::MP_REACH_NLRI || code == t::MP_UNREACH_NLRI {
                return Err(Notification::new(
                    error_code::UPDATE_MESSAGE,
                    update_subcode::MALFORMED_ATTRIBUTE_LIST,
                    Vec::new(),
                ));
            }
            self.report(Action::AttributeDiscard, code, AttrProblem::Duplicate);
            return Ok(());
        }
        let kind = flags & (attr_flags::OPTIONAL | attr_flags::TRANSITIVE);
        let Some(expected) = expected_flags(code) else {
            if flags & attr_flags::OPTIONAL == 0 {
                return Err(attr_error(update_subcode::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE, raw));
            }
            if flags & attr_flags::TRANSITIVE != 0 {
                self.unknown.push(RawAttribute {
                    flags: flags & 0xF0 & !attr_flags::EXTENDED_LENGTH,
                    type_code: code,
                    value: v.to_vec(),
                });
            }
            return Ok(());
        };
        if code == t::MP_REACH_NLRI || code == t::MP_UNREACH_NLRI {
            if kind != expected {
                return Err(attr_error(update_subcode::ATTRIBUTE_FLAGS_ERROR, raw));
            }
            return if code == t::MP_REACH_NLRI {
                self.mp_reach(v, raw, ctx)
            } else {
                self.mp_unreach(v, raw, ctx)
            };
        }
        if code == t::LOCAL_PREF && ctx.ebgp {
            self.report(Action::AttributeDiscard, code, AttrProblem::LocalPrefFromEbgp);
            return Ok(());
        }
        if (code == t::AS4_PATH || code == t::AS4_AGGREGATOR) && ctx.four_octet_as {
            self.report(Action::AttributeDiscard, code, AttrProblem::As4OnFourOctetSession);
            return Ok(());
        }
        if kind != expected {
            if code == t::NEXT_HOP {
                self.next_hop_problem = Some(AttrProblem::Flags(flags));
            } else {
                self.malformed(code, AttrProblem::Flags(flags));
            }
            return Ok(());
        }
        let bad_len = AttrProblem::Length(v.len());
        match code {
            t::ORIGIN => match v {
                [o] => match Origin::from_code(*o) {
                    Some(o) => self.origin = Some(o),
                    None => self.malformed(code, AttrProblem::OriginValue(*o)),
                },
                _ => self.malformed(code, bad_len),
            },
            t::AS_PATH => match decode_as_path(v, ctx.four_octet_as) {
                Ok(p) if ctx.ebgp && has_confed_segments(&p) => {
                    self.malformed(code, AttrProblem::AsPath(AsPathError::ConfedFromEbgp))
                }
                Ok(p) => self.as_path = Some(p),
                Err(e) => self.malformed(code, AttrProblem::AsPath(e)),
            },
            t::NEXT_HOP => match Self::four_octet_value(v).map(Ipv4Addr::from) {
                Some(a) if usable_ipv4_next_hop(a) => self.next_hop = Some(a),
                Some(a) => self.next_hop_problem = Some(AttrProblem::NextHop(IpAddr::V4(a))),
                None => self.next_hop_problem = Some(bad_len),
            },
            t::MULTI_EXIT_DISC => match Self::four_octet_value(v) {
                Some(m) => self.med = Some(m),
                None => self.malformed(code, bad_len),
            },
            t::LOCAL_PREF => match Self::four_octet_value(v) {
                Some(l) => self.local_pref = Some(l),
                None => self.malformed(code, bad_len),
            },
            t::ATOMIC_AGGREGATE => match v {
                [] => self.atomic_aggregate = true,
                _ => self.malformed(code, bad_len),
            },
            t::AGGREGATOR => {
                let (asn, id) = match (ctx.four_octet_as, v.len()) {
                    (true, 8) => (be32(v), be32(&v[4..])),
                    (false, 6) => (Asn::from(be16(v)), be32(&v[2..])),
                    _ => {
                        self.malformed(code, bad_len);
                        return Ok(());
                    }
                };
                if asn == 0 {
                    self.malformed(code, AttrProblem::ZeroAs);
                } else {
                    self.aggregator = Some((asn, Ipv4Addr::from(id)));
                }
            }
            t::AS4_AGGREGATOR => match v.len() {
                8 if be32(v) == 0 => self.malformed(code, AttrProblem::ZeroAs),
                8 => self.as4_aggregator = Some((be32(v), Ipv4Addr::from(be32(&v[4..])))),
                _ => self.malformed(code, bad_len),
            },
            t::COMMUNITIES => {
                if v.is_empty() || v.len() % 4 != 0 {
                    self.malformed(code, bad_len);
                } else {
                    let mut c: Vec<Community> = v.chunks_exact(4).map(|c| Community(be32(c))).collect();
                    c.sort_unstable();
                    c.dedup();
                    self.communities = c;
                }
            }
            t::AS4_PATH => match decode_as_path(v, true) {
                Ok(mut p) => {
                    if has_confed_segments(&p) {
                        p.segments
                            .retain(|s| !matches!(s, AsSegment::ConfedSequence(_) | AsSegment::ConfedSet(_)));
                        self.report(Action::AttributeDiscard, code, AttrProblem::ConfedInAs4Path);
                    }
                    self.as4_path = Some(p);
                }
                Err(e) => self.malformed(code, AttrProblem::AsPath(e)),
            },
            // Checked, then dropped: xroute is no route reflector, and both are
            // non-transitive.
            t::ORIGINATOR_ID if v.len() != 4 => self.malformed(code, bad_len),
            t::CLUSTER_LIST if v.is_empty() || v.len() % 4 != 0 => self.malformed(code, bad_len),
            t::ORIGINATOR_ID | t::CLUSTER_LIST => {}
            // Checked, then carried as they came.
            _ => {
                let unit = match code {
                    t::EXTENDED_COMMUNITIES => 8,
                    t::IPV6_EXTENDED_COMMUNITIES => 20,
                    _ => 12, // LARGE_COMMUNITIES
                };
                if v.is_empty() || v.len() % unit != 0 {
                    self.malformed(code, bad_len);
                } else {
                    self.unknown.push(RawAttribute {
                        flags: flags & 0xF0 & !attr_flags::EXTENDED_LENGTH,
                        type_code: code,
                        value: v.to_vec(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The family of an MP attribute's AFI/SAFI if we speak it and negotiated it; otherwise
    /// its prefixes are reported and ignored (when it has any).
    fn mp_family(
        &mut self,
        code: u8,
        afi: u16,
        safi: u8,
        has_nlri: bool,
        ctx: &DecodeContext,
    ) -> Option<Family> {
        let family = Family::from_afi_safi(afi, safi).filter(|f| ctx.families.contains(*f));
        if family.is_none() && has_nlri {
            self.report(
                Action::NlriIgnored,
                code,
                AttrProblem::UnnegotiatedFamily { afi, safi },
            );
        }
        family
    }

    /// MP_REACH_NLRI (RFC 4760 3): AFI, SAFI, next hop length and next hop, a reserved
    /// octet, NLRI.
    fn mp_reach(&mut self, v: &[u8], raw: &[u8], ctx: &DecodeContext) -> Result<(), Notification> {
        let bad = || attr_error(update_subcode::OPTIONAL_ATTRIBUTE_ERROR, raw);
        let [a0, a1, safi, nh_len, rest @ ..] = v else {
            return Err(bad());
        };
        let afi = u16::from_be_bytes([*a0, *a1]);
        let nh_len = usize::from(*nh_len);
        let nh = rest.get(..nh_len).ok_or_else(bad)?;
        // The reserved octet (once the SNPA count) must be there; its value is ignored.
        let nlri = rest.get(nh_len + 1..).ok_or_else(bad)?;
        let Some(family) = self.mp_family(t::MP_REACH_NLRI, afi, *safi, !nlri.is_empty(), ctx) else {
            return Ok(());
        };
        // A next hop of the wrong length leaves the NLRI unlocatable: session reset (7.11).
        let next_hop = match (family, nh_len) {
            (Family::Ipv4Unicast, 4) => NextHop::new(IpAddr::V4(Ipv4Addr::from(be32(nh)))),
            (Family::Ipv6Unicast, 16 | 32) => {
                let mut g = [0u8; 16];
                g.copy_from_slice(&nh[..16]);
                let link_local = nh.get(16..32).and_then(|ll| {
                    let mut b = [0u8; 16];
                    b.copy_from_slice(ll);
                    let a = Ipv6Addr::from(b);
                    (!a.is_unspecified()).then_some(a)
                });
                let global = Ipv6Addr::from(g);
                match link_local {
                    // A speaker without a global address (link-local peering) sends :: there:
                    // the link-local address is then the next hop.
                    Some(ll) if global.is_unspecified() => NextHop::new(IpAddr::V6(ll)),
                    _ => NextHop {
                        addr: IpAddr::V6(global),
                        link_local,
                    },
                }
            }
            _ => return Err(bad()),
        };
        let mut prefixes = Vec::new();
        decode_prefixes(nlri, family, &mut prefixes).map_err(|_| bad())?;
        let usable = match next_hop.addr {
            IpAddr::V4(a) => usable_ipv4_next_hop(a),
            IpAddr::V6(a) => usable_ipv6_next_hop(a),
        };
        if !usable {
            self.report(
                Action::TreatAsWithdraw,
                t::MP_REACH_NLRI,
                AttrProblem::NextHop(next_hop.addr),
            );
        }
        self.mp_reach = Some(MpReach {
            family,
            next_hop,
            prefixes,
        });
        Ok(())
    }

    /// MP_UNREACH_NLRI (RFC 4760 4): AFI, SAFI, withdrawn prefixes.
    fn mp_unreach(&mut self, v: &[u8], raw: &[u8], ctx: &DecodeContext) -> Result<(), Notification> {
        let [a0, a1, safi, nlri @ ..] = v else {
            return Err(attr_error(update_subcode::OPTIONAL_ATTRIBUTE_ERROR, raw));
        };
        let afi = u16::from_be_bytes([*a0, *a1]);
        if nlri.is_empty() {
            self.mp_unreach_empty = Some((afi, *safi));
        }
        let Some(family) = self.mp_family(t::MP_UNREACH_NLRI, afi, *safi, !nlri.is_empty(), ctx) else {
            return Ok(());
        };
        decode_prefixes(nlri, family, &mut self.mp_withdrawn)
            .map_err(|_| attr_error(update_subcode::OPTIONAL_ATTRIBUTE_ERROR, raw))
    }
}

/// Decodes an UPDATE body (after the header; frame_len has checked it has at least 4 bytes).
pub(super) fn decode_update(body: &[u8], ctx: &DecodeContext) -> Result<Update, Notification> {
    let malformed_list = || {
        Notification::new(
            error_code::UPDATE_MESSAGE,
            update_subcode::MALFORMED_ATTRIBUTE_LIST,
            Vec::new(),
        )
    };
    let invalid_network = |_| {
        Notification::new(
            error_code::UPDATE_MESSAGE,
            update_subcode::INVALID_NETWORK_FIELD,
            Vec::new(),
        )
    };
    // The three fields must add up to the message (RFC 4271 6.3: Malformed Attribute List).
    let withdrawn_len = usize::from(be16(body));
    let withdrawn_field = body.get(2..2 + withdrawn_len).ok_or_else(malformed_list)?;
    let attrs_len_at = 2 + withdrawn_len;
    let attrs_len = body
        .get(attrs_len_at..attrs_len_at + 2)
        .map(be16)
        .ok_or_else(malformed_list)?;
    let attrs_start = attrs_len_at + 2;
    let attrs_end = attrs_start + usize::from(attrs_len);
    let attrs_field = body.get(attrs_start..attrs_end).ok_or_else(malformed_list)?;
    let nlri_field = &body[attrs_end..];

    // Withdrawn Routes and NLRI must parse whole (RFC 7606 3 h, 5.3), whatever else is wrong.
    let mut withdrawn = Vec::new();
    decode_prefixes(withdrawn_field, Family::Ipv4Unicast, &mut withdrawn).map_err(invalid_network)?;
    let mut nlri = Vec::new();
    decode_prefixes(nlri_field, Family::Ipv4Unicast, &mut nlri).map_err(invalid_network)?;

    let mut found = Found::default();
    let any_ipv4 = !withdrawn.is_empty() || !nlri.is_empty();
    if any_ipv4 && !ctx.families.contains(Family::Ipv4Unicast) {
        found.issues.push(UpdateIssue {
            action: Action::NlriIgnored,
            type_code: None,
            problem: AttrProblem::UnnegotiatedFamily { afi: 1, safi: 1 },
        });
        withdrawn.clear();
        nlri.clear();
    }

    let mut rest = attrs_field;
    while !rest.is_empty() {
        let flags = rest[0];
        let header_len = if flags & attr_flags::EXTENDED_LENGTH != 0 {
            4
        } else {
            3
        };
        let value_len = match rest.get(..header_len) {
            Some(&[_, _, len]) => usize::from(len),
            Some(&[_, _, hi, lo]) => usize::from(u16::from_be_bytes([hi, lo])),
            // Not even a whole header: an overrun too.
            _ => usize::MAX,
        };
        let Some(raw) = rest.get(..header_len.saturating_add(value_len)) else {
            // RFC 7606 4: treat-as-withdraw, the NLRI field located by the total length.
            found.issues.push(UpdateIssue {
                action: Action::TreatAsWithdraw,
                type_code: rest.get(1).copied(),
                problem: AttrProblem::AttributeListOverrun,
            });
            break;
        };
        let code = raw[1];
        found.attribute(flags, code, &raw[header_len..], raw, ctx)?;
        rest = &rest[raw.len()..];
    }

    // End-of-RIB: nothing at all, or one empty MP_UNREACH_NLRI (RFC 4724 2).
    let mut eor = None;
    if withdrawn_field.is_empty() && nlri_field.is_empty() {
        if attrs_field.is_empty() {
            eor = Some(Family::Ipv4Unicast);
        } else if found.count == 1 {
            eor = found
                .mp_unreach_empty
                .and_then(|(afi, safi)| Family::from_afi_safi(afi, safi));
        }
    }

    // NEXT_HOP counts only with IPv4 NLRI (RFC 4760 3); without them a bad one is ignored.
    if let Some(problem) = found.next_hop_problem {
        let action = if nlri.is_empty() {
            Action::AttributeDiscard
        } else {
            Action::TreatAsWithdraw
        };
        found.report(action, t::NEXT_HOP, problem);
    }
    let mp_announces = found.mp_reach.as_ref().is_some_and(|m| !m.prefixes.is_empty());
    if !nlri.is_empty() || mp_announces {
        // Well-known mandatory attributes (RFC 4271 5.1, RFC 7606 3 d); NEXT_HOP only for
        // IPv4 NLRI (RFC 4760 3).
        let with_next_hop = if nlri.is_empty() { 2 } else { 3 };
        for code in [t::ORIGIN, t::AS_PATH, t::NEXT_HOP]
            .into_iter()
            .take(with_next_hop)
        {
            if !found.saw(code) {
                found.report(Action::TreatAsWithdraw, code, AttrProblem::Missing);
            }
        }
    }

    let mut update = Update {
        withdrawn,
        announced: Vec::new(),
        eor,
        issues: Vec::new(),
    };
    update.withdrawn.append(&mut found.mp_withdrawn);
    let mp_reach = found.mp_reach.take();
    let withdraw_all = found.issues.iter().any(|i| i.action == Action::TreatAsWithdraw);
    let (Some(origin), Some(mut as_path), false) = (found.origin, found.as_path.take(), withdraw_all) else {
        update.withdrawn.append(&mut nlri);
        if let Some(mut m) = mp_reach {
            update.withdrawn.append(&mut m.prefixes);
        }
        update.issues = found.issues;
        return Ok(update);
    };

    // A 2-octet session: rebuild 4-octet numbers from AS4_PATH and AS4_AGGREGATOR
    // (RFC 6793 4.2.3).
    let mut aggregator = found.aggregator;
    if !ctx.four_octet_as {
        let mut use_as4_path = true;
        if let (Some((agg_as, _)), Some(agg4)) = (aggregator, found.as4_aggregator) {
            if agg_as == AS_TRANS {
                aggregator = Some(agg4);
            } else {
                use_as4_path = false;
            }
        }
        if let Some(as4_path) = found.as4_path.take().filter(|_| use_as4_path) {
            as_path = merge_as4_path(as_path, as4_path);
        }
    }
    found.unknown.sort_by_key(|a| a.type_code);
    let attrs = PathAttributes {
        origin,
        as_path,
        next_hop: NextHop::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        med: found.med,
        local_pref: found.local_pref,
        atomic_aggregate: found.atomic_aggregate,
        aggregator,
        communities: found.communities,
        unknown: found.unknown,
    };
    let mp_reach = mp_reach.filter(|m| !m.prefixes.is_empty());
    match (found.next_hop.filter(|_| !nlri.is_empty()), mp_reach) {
        (Some(nh), Some(m)) => {
            update.announced.push(Announcement {
                family: Family::Ipv4Unicast,
                attrs: PathAttributes {
                    next_hop: NextHop::new(IpAddr::V4(nh)),
                    ..attrs.clone()
                },
                prefixes: nlri,
            });
            update.announced.push(Announcement {
                family: m.family,
                attrs: PathAttributes {
                    next_hop: m.next_hop,
                    ..attrs
                },
                prefixes: m.prefixes,
            });
        }
        (Some(nh), None) => update.announced.push(Announcement {
            family: Family::Ipv4Unicast,
            attrs: PathAttributes {
                next_hop: NextHop::new(IpAddr::V4(nh)),
                ..attrs
            },
            prefixes: nlri,
        }),
        (None, Some(m)) => update.announced.push(Announcement {
            family: m.family,
            attrs: PathAttributes {
                next_hop: m.next_hop,
                ..attrs
            },
            prefixes: m.prefixes,
        }),
        (None, None) => {}
    }
    update.issues = found.issues;
    Ok(update)
}
