//! BGP's shared vocabulary: address families, AS paths, communities and the path attributes a
//! route carries. The wire codec (`message`), the decision process (`decision`), policy
//! (`policy`) and the speaker all speak these types, so that a route decoded from a peer is
//! compared, filtered, stored and re-encoded without translation.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An autonomous system number (4-octet, RFC 6793).
pub type Asn = u32;

/// The 2-octet stand-in for a 4-octet AS number toward a speaker without the capability
/// (RFC 6793).
pub const AS_TRANS: Asn = 23456;

/// The address families xroute negotiates (AFI/SAFI, RFC 4760): unicast only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Ipv4Unicast,
    Ipv6Unicast,
}

impl Family {
    pub const ALL: [Family; 2] = [Self::Ipv4Unicast, Self::Ipv6Unicast];

    /// Address Family Identifier (IANA: 1 IPv4, 2 IPv6).
    pub fn afi(self) -> u16 {
        match self {
            Self::Ipv4Unicast => 1,
            Self::Ipv6Unicast => 2,
        }
    }

    /// Subsequent Address Family Identifier (1 unicast).
    pub fn safi(self) -> u8 {
        1
    }

    /// The family of an AFI/SAFI pair, if it is one we speak.
    pub fn from_afi_safi(afi: u16, safi: u8) -> Option<Self> {
        match (afi, safi) {
            (1, 1) => Some(Self::Ipv4Unicast),
            (2, 1) => Some(Self::Ipv6Unicast),
            _ => None,
        }
    }

    /// The family a prefix belongs to.
    pub fn of(prefix: &ipnet::IpNet) -> Self {
        match prefix {
            ipnet::IpNet::V4(_) => Self::Ipv4Unicast,
            ipnet::IpNet::V6(_) => Self::Ipv6Unicast,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ipv4Unicast => "ipv4-unicast",
            Self::Ipv6Unicast => "ipv6-unicast",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// ORIGIN (RFC 4271 5.1.1); the order is the decision process's (lower is better).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Origin {
    Igp = 0,
    Egp = 1,
    Incomplete = 2,
}

impl Origin {
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Igp),
            1 => Some(Self::Egp),
            2 => Some(Self::Incomplete),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Igp => "igp",
            Self::Egp => "egp",
            Self::Incomplete => "incomplete",
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One AS_PATH segment (RFC 4271 4.3; confederation segments RFC 5065, which only count
/// inside a confederation: xroute accepts and carries them, and they add nothing to the path
/// length).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AsSegment {
    Sequence(Vec<Asn>),
    Set(Vec<Asn>),
    ConfedSequence(Vec<Asn>),
    ConfedSet(Vec<Asn>),
}

impl AsSegment {
    pub fn asns(&self) -> &[Asn] {
        match self {
            Self::Sequence(v) | Self::Set(v) | Self::ConfedSequence(v) | Self::ConfedSet(v) => v,
        }
    }
}

/// AS_PATH, always held with 4-octet numbers (a 2-octet path from an old speaker is merged
/// with its AS4_PATH by the codec, RFC 6793 4.2.3).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AsPath {
    pub segments: Vec<AsSegment>,
}

impl AsPath {
    /// A path of one AS_SEQUENCE (empty sequence: the empty path).
    pub fn sequence(asns: impl IntoIterator<Item = Asn>) -> Self {
        let v: Vec<Asn> = asns.into_iter().collect();
        if v.is_empty() {
            Self::default()
        } else {
            Self {
                segments: vec![AsSegment::Sequence(v)],
            }
        }
    }

    /// The length the decision process compares (RFC 4271 9.1.2.2 a): each AS in a sequence
    /// counts one, a set counts one in all, confederation segments count nothing.
    pub fn length(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s {
                AsSegment::Sequence(v) => v.len(),
                AsSegment::Set(v) => usize::from(!v.is_empty()),
                AsSegment::ConfedSequence(_) | AsSegment::ConfedSet(_) => 0,
            })
            .sum()
    }

    /// Whether `asn` occurs anywhere in the path (loop detection, RFC 4271 9.1.2).
    pub fn contains(&self, asn: Asn) -> bool {
        self.segments.iter().any(|s| s.asns().contains(&asn))
    }

    /// The neighbouring AS: the first AS of a leading AS_SEQUENCE (MED comparison, RFC 4271
    /// 9.1.2.2 c). `None` for a locally originated (empty) path or one that starts with a set.
    pub fn neighbor_as(&self) -> Option<Asn> {
        match self.segments.first() {
            Some(AsSegment::Sequence(v)) => v.first().copied(),
            _ => None,
        }
    }

    /// The originating AS: the last AS of a trailing AS_SEQUENCE.
    pub fn origin_as(&self) -> Option<Asn> {
        match self.segments.last() {
            Some(AsSegment::Sequence(v)) => v.last().copied(),
            _ => None,
        }
    }

    /// Puts `asn` in front `times` times (eBGP export, RFC 4271 5.1.2; policy prepend).
    /// A leading sequence grows; a full one (255 ASes) or a leading set starts a new sequence.
    pub fn prepend(&mut self, asn: Asn, times: usize) {
        for _ in 0..times {
            match self.segments.first_mut() {
                Some(AsSegment::Sequence(v)) if v.len() < 255 => v.insert(0, asn),
                _ => self.segments.insert(0, AsSegment::Sequence(vec![asn])),
            }
        }
    }

    /// Every AS number in order of appearance (for matching).
    pub fn asns(&self) -> impl Iterator<Item = Asn> + '_ {
        self.segments.iter().flat_map(|s| s.asns().iter().copied())
    }
}

impl fmt::Display for AsPath {
    /// `64500 64501 {64502 64503} (64510)`: sets in braces, confederation segments in
    /// parentheses (brackets for confederation sets), as BIRD and FRR print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for seg in &self.segments {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            let (open, close) = match seg {
                AsSegment::Sequence(_) => ("", ""),
                AsSegment::Set(_) => ("{", "}"),
                AsSegment::ConfedSequence(_) => ("(", ")"),
                AsSegment::ConfedSet(_) => ("[", "]"),
            };
            f.write_str(open)?;
            for (i, a) in seg.asns().iter().enumerate() {
                if i > 0 {
                    f.write_str(" ")?;
                }
                write!(f, "{a}")?;
            }
            f.write_str(close)?;
        }
        Ok(())
    }
}

/// A standard community (RFC 1997): `asn:value`, each 16 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u32);

impl Community {
    pub const NO_EXPORT: Community = Community(0xFFFF_FF01);
    pub const NO_ADVERTISE: Community = Community(0xFFFF_FF02);
    pub const NO_EXPORT_SUBCONFED: Community = Community(0xFFFF_FF03);

    pub fn new(asn: u16, value: u16) -> Self {
        Self(u32::from(asn) << 16 | u32::from(value))
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NO_EXPORT => f.write_str("no-export"),
            Self::NO_ADVERTISE => f.write_str("no-advertise"),
            Self::NO_EXPORT_SUBCONFED => f.write_str("no-export-subconfed"),
            Self(v) => write!(f, "{}:{}", v >> 16, v & 0xFFFF),
        }
    }
}

/// A community that is neither `asn:value` (each 0-65535) nor a well-known name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad community {0:?} (expected ASN:VALUE, each 0-65535, or no-export, no-advertise, no-export-subconfed)"
)]
pub struct ParseCommunityError(pub String);

impl FromStr for Community {
    type Err = ParseCommunityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseCommunityError(s.to_owned());
        match s {
            "no-export" => return Ok(Self::NO_EXPORT),
            "no-advertise" => return Ok(Self::NO_ADVERTISE),
            "no-export-subconfed" => return Ok(Self::NO_EXPORT_SUBCONFED),
            _ => {}
        }
        let (a, v) = s.split_once(':').ok_or_else(bad)?;
        let a: u16 = a.parse().map_err(|_| bad())?;
        let v: u16 = v.parse().map_err(|_| bad())?;
        Ok(Self::new(a, v))
    }
}

/// The next hop of a path: IPv4 from NEXT_HOP, or from MP_REACH_NLRI (IPv6 global, plus the
/// link-local address a peer on a shared link may add, RFC 2545).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NextHop {
    pub addr: IpAddr,
    pub link_local: Option<Ipv6Addr>,
}

impl NextHop {
    pub fn new(addr: IpAddr) -> Self {
        Self {
            addr,
            link_local: None,
        }
    }
}

impl fmt::Display for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.link_local {
            Some(ll) => write!(f, "{} ({ll})", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

/// A path attribute xroute does not interpret, kept to pass on when it is optional transitive
/// (RFC 4271 5: with the Partial bit set when re-advertised).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RawAttribute {
    pub flags: u8,
    pub type_code: u8,
    pub value: Vec<u8>,
}

/// Attribute flag bits (RFC 4271 4.3).
pub mod attr_flags {
    pub const OPTIONAL: u8 = 0x80;
    pub const TRANSITIVE: u8 = 0x40;
    pub const PARTIAL: u8 = 0x20;
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

/// The attributes of one path, shared by every prefix announced with them (held in an `Arc`
/// by the speaker: a full table has about a million prefixes over a few hundred thousand
/// attribute sets).
///
/// The next hop is part of the attributes even though on the wire it comes from NEXT_HOP for
/// IPv4 and from MP_REACH_NLRI for IPv6: routes compare and print alike either way.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PathAttributes {
    pub origin: Origin,
    pub as_path: AsPath,
    pub next_hop: NextHop,
    /// MULTI_EXIT_DISC; absent compares as 0 (RFC 4271 9.1.2.2 c, as BIRD and FRR default).
    pub med: Option<u32>,
    /// LOCAL_PREF: sent only to iBGP peers; a path from an eBGP peer gets the configured
    /// default (100) on import.
    pub local_pref: Option<u32>,
    pub atomic_aggregate: bool,
    /// AGGREGATOR: the aggregating AS and router ID.
    pub aggregator: Option<(Asn, Ipv4Addr)>,
    /// COMMUNITIES, sorted and without duplicates.
    pub communities: Vec<Community>,
    /// Optional transitive attributes xroute does not interpret, passed on (sorted by type).
    pub unknown: Vec<RawAttribute>,
}

impl PathAttributes {
    /// Attributes for a route xroute originates itself (a configured network): origin IGP,
    /// empty AS path.
    pub fn local(next_hop: NextHop) -> Self {
        Self {
            origin: Origin::Igp,
            as_path: AsPath::default(),
            next_hop,
            med: None,
            local_pref: None,
            atomic_aggregate: false,
            aggregator: None,
            communities: Vec::new(),
            unknown: Vec::new(),
        }
    }

    /// Adds a community, keeping the list sorted and free of duplicates.
    pub fn add_community(&mut self, c: Community) {
        if let Err(i) = self.communities.binary_search(&c) {
            self.communities.insert(i, c);
        }
    }

    pub fn has_community(&self, c: Community) -> bool {
        self.communities.binary_search(&c).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_length_counts_sets_once_and_confederations_not_at_all() {
        let p = AsPath {
            segments: vec![
                AsSegment::ConfedSequence(vec![65001, 65002]),
                AsSegment::Sequence(vec![64500, 64501]),
                AsSegment::Set(vec![64502, 64503, 64504]),
            ],
        };
        assert_eq!(p.length(), 3);
        assert!(p.contains(64503));
        assert!(!p.contains(64505));
        assert_eq!(p.neighbor_as(), None);
        assert_eq!(p.to_string(), "(65001 65002) 64500 64501 {64502 64503 64504}");
        assert_eq!(AsPath::sequence([1, 2, 3]).neighbor_as(), Some(1));
        assert_eq!(AsPath::sequence([1, 2, 3]).origin_as(), Some(3));
        assert_eq!(AsPath::default().length(), 0);
    }

    #[test]
    fn prepend_grows_the_leading_sequence_and_splits_at_255() {
        let mut p = AsPath::sequence([64500]);
        p.prepend(64499, 2);
        assert_eq!(p, AsPath::sequence([64499, 64499, 64500]));
        let mut p = AsPath {
            segments: vec![AsSegment::Set(vec![1, 2])],
        };
        p.prepend(7, 1);
        assert_eq!(p.to_string(), "7 {1 2}");
        let mut p = AsPath::sequence(std::iter::repeat_n(9, 255));
        p.prepend(7, 1);
        assert_eq!(p.segments.len(), 2);
        assert_eq!(p.length(), 256);
    }

    #[test]
    fn communities_parse_print_and_stay_sorted() {
        assert_eq!(
            "64500:120".parse::<Community>().unwrap(),
            Community::new(64500, 120)
        );
        assert_eq!("no-export".parse::<Community>().unwrap(), Community::NO_EXPORT);
        assert_eq!(Community::new(1, 2).to_string(), "1:2");
        for bad in ["", "1", "1:", ":2", "65536:1", "1:65536", "a:b", "1:2:3"] {
            assert!(bad.parse::<Community>().is_err(), "{bad}");
        }
        let mut a = PathAttributes::local(NextHop::new("192.0.2.1".parse().unwrap()));
        a.add_community(Community::new(2, 0));
        a.add_community(Community::new(1, 0));
        a.add_community(Community::new(2, 0));
        assert_eq!(a.communities, vec![Community::new(1, 0), Community::new(2, 0)]);
        assert!(a.has_community(Community::new(1, 0)));
    }

    #[test]
    fn families_map_to_afi_safi_and_back() {
        for f in Family::ALL {
            assert_eq!(Family::from_afi_safi(f.afi(), f.safi()), Some(f));
        }
        assert_eq!(Family::from_afi_safi(1, 2), None);
        assert_eq!(Family::of(&"2001:db8::/32".parse().unwrap()), Family::Ipv6Unicast);
    }
}
