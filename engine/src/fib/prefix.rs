//! IPv4 and IPv6 prefixes with their invariant checked once, at construction: the length fits the
//! family and no host bit is set.

use super::key::Key;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Why a prefix was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("prefix length /{len} is longer than the address ({max} bits)")]
    LengthOutOfRange { len: u32, max: u32 },
    #[error("{given} has host bits set (the network is {network})")]
    HostBitsSet { given: String, network: String },
    #[error("cannot parse {0:?} as a prefix: expected ADDRESS/LENGTH, e.g. 192.0.2.0/24 or 2001:db8::/32")]
    Syntax(String),
}

/// A network of one family: `K` is `u32` for IPv4 and `u128` for IPv6.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Net<K: Key> {
    bits: K,
    len: u8,
}

/// An IPv4 prefix.
pub type Ipv4Net = Net<u32>;
/// An IPv6 prefix.
pub type Ipv6Net = Net<u128>;

impl<K: Key> Net<K> {
    /// A prefix from its network bits and length; refuses host bits and over-long lengths.
    pub fn from_bits(bits: K, len: u32) -> Result<Self, PrefixError> {
        if len > K::BITS {
            return Err(PrefixError::LengthOutOfRange { len, max: K::BITS });
        }
        let net = bits.masked(len);
        if net != bits {
            return Err(PrefixError::HostBitsSet {
                given: format!("{}/{len}", show::<K>(bits)),
                network: format!("{}/{len}", show::<K>(net)),
            });
        }
        Ok(Self { bits, len: len as u8 })
    }

    /// The prefix covering `bits` with host bits cleared (never fails for `len <= BITS`).
    pub fn truncating(bits: K, len: u32) -> Result<Self, PrefixError> {
        if len > K::BITS {
            return Err(PrefixError::LengthOutOfRange { len, max: K::BITS });
        }
        Ok(Self {
            bits: bits.masked(len),
            len: len as u8,
        })
    }

    /// Network bits.
    pub fn bits(&self) -> K {
        self.bits
    }

    /// Prefix length.
    pub fn len(&self) -> u32 {
        u32::from(self.len)
    }

    /// True for the default route (`/0`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// First address of the prefix (as a wide integer).
    pub fn first(&self) -> u128 {
        self.bits.to_u128()
    }

    /// Last address of the prefix (as a wide integer).
    pub fn last(&self) -> u128 {
        let host = K::BITS - self.len();
        if host == 0 {
            self.first()
        } else {
            self.first() | (u128::MAX >> (128 - host))
        }
    }

    /// Whether `addr` lies inside the prefix.
    pub fn contains(&self, addr: K) -> bool {
        addr.masked(self.len()) == self.bits
    }
}

fn show<K: Key>(bits: K) -> String {
    if K::BITS == 32 {
        Ipv4Addr::from(bits.to_u128() as u32).to_string()
    } else {
        Ipv6Addr::from(bits.to_u128()).to_string()
    }
}

impl<K: Key> fmt::Display for Net<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", show::<K>(self.bits), self.len)
    }
}

impl<K: Key> fmt::Debug for Net<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Ipv4Net {
    /// An IPv4 prefix; host bits must be clear.
    pub fn new(addr: Ipv4Addr, len: u32) -> Result<Self, PrefixError> {
        Self::from_bits(u32::from(addr), len)
    }

    /// Network address.
    pub fn addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.bits)
    }
}

impl Ipv6Net {
    /// An IPv6 prefix; host bits must be clear.
    pub fn new(addr: Ipv6Addr, len: u32) -> Result<Self, PrefixError> {
        Self::from_bits(u128::from(addr), len)
    }

    /// Network address.
    pub fn addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.bits)
    }
}

/// A prefix of either family.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Prefix {
    V4(Ipv4Net),
    V6(Ipv6Net),
}

impl Prefix {
    /// A prefix from an address and length; host bits must be clear.
    pub fn new(addr: IpAddr, len: u32) -> Result<Self, PrefixError> {
        Ok(match addr {
            IpAddr::V4(a) => Prefix::V4(Ipv4Net::new(a, len)?),
            IpAddr::V6(a) => Prefix::V6(Ipv6Net::new(a, len)?),
        })
    }

    /// Prefix length.
    pub fn len(&self) -> u32 {
        match self {
            Prefix::V4(p) => p.len(),
            Prefix::V6(p) => p.len(),
        }
    }

    /// True for a default route.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Ipv4Net> for Prefix {
    fn from(p: Ipv4Net) -> Self {
        Prefix::V4(p)
    }
}

impl From<Ipv6Net> for Prefix {
    fn from(p: Ipv6Net) -> Self {
        Prefix::V6(p)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prefix::V4(p) => p.fmt(f),
            Prefix::V6(p) => p.fmt(f),
        }
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Prefix {
    type Err = PrefixError;

    /// Parses `ADDRESS/LENGTH`; a bare address is a host route (/32 or /128).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let syntax = || PrefixError::Syntax(s.to_string());
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => {
                let addr: IpAddr = a.parse().map_err(|_| syntax())?;
                let len: u32 = l.parse().map_err(|_| syntax())?;
                (addr, len)
            }
            None => {
                let addr: IpAddr = s.parse().map_err(|_| syntax())?;
                (addr, if addr.is_ipv4() { 32 } else { 128 })
            }
        };
        Prefix::new(addr, len)
    }
}

impl FromStr for Ipv4Net {
    type Err = PrefixError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.parse()? {
            Prefix::V4(p) => Ok(p),
            Prefix::V6(_) => Err(PrefixError::Syntax(s.to_string())),
        }
    }
}

impl FromStr for Ipv6Net {
    type Err = PrefixError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.parse()? {
            Prefix::V6(p) => Ok(p),
            Prefix::V4(_) => Err(PrefixError::Syntax(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any text either parses or is refused with an error; nothing panics.
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,60}") {
            let _ = s.parse::<Prefix>();
        }

        /// Text shaped like a prefix, with any numbers: parses only when valid, and then the
        /// prefix displays back to an equal prefix.
        #[test]
        fn prefix_shaped_text(a in any::<[u8; 4]>(), len in 0u32..40, v6 in any::<u128>(), len6 in 0u32..140) {
            let text = format!("{}.{}.{}.{}/{len}", a[0], a[1], a[2], a[3]);
            match text.parse::<Prefix>() {
                Ok(p) => {
                    prop_assert!(len <= 32);
                    prop_assert_eq!(p.to_string().parse::<Prefix>(), Ok(p));
                }
                Err(e) => prop_assert!(len > 32 || matches!(e, PrefixError::HostBitsSet { .. }), "refused {}: {}", text, e),
            }
            let text6 = format!("{}/{len6}", Ipv6Addr::from(v6));
            match text6.parse::<Prefix>() {
                Ok(p) => prop_assert_eq!(p.to_string().parse::<Prefix>(), Ok(p)),
                Err(e) => prop_assert!(len6 > 128 || matches!(e, PrefixError::HostBitsSet { .. }), "refused {}: {}", text6, e),
            }
        }

        /// Every valid prefix of either family survives display and parse unchanged.
        #[test]
        fn valid_prefixes_round_trip(bits in any::<u32>(), len in 0u32..=32, bits6 in any::<u128>(), len6 in 0u32..=128) {
            let p = Ipv4Net::truncating(bits, len).unwrap();
            prop_assert_eq!(p.to_string().parse::<Ipv4Net>(), Ok(p));
            let q = Ipv6Net::truncating(bits6, len6).unwrap();
            prop_assert_eq!(q.to_string().parse::<Ipv6Net>(), Ok(q));
        }
    }

    #[test]
    fn parses_and_displays_both_families() {
        let p: Prefix = "192.0.2.0/24".parse().unwrap();
        assert_eq!(p.to_string(), "192.0.2.0/24");
        let p: Prefix = "2001:db8::/32".parse().unwrap();
        assert_eq!(p.to_string(), "2001:db8::/32");
        let p: Prefix = "198.51.100.7".parse().unwrap();
        assert_eq!(p.len(), 32);
        let p: Prefix = "0.0.0.0/0".parse().unwrap();
        assert!(p.is_empty());
    }

    #[test]
    fn refuses_host_bits_and_long_lengths() {
        let e = "192.0.2.1/24".parse::<Prefix>().unwrap_err();
        assert_eq!(
            e,
            PrefixError::HostBitsSet {
                given: "192.0.2.1/24".into(),
                network: "192.0.2.0/24".into()
            }
        );
        assert!(e.to_string().contains("192.0.2.0/24"));
        assert_eq!(
            "192.0.2.0/33".parse::<Prefix>().unwrap_err(),
            PrefixError::LengthOutOfRange { len: 33, max: 32 }
        );
        assert_eq!(
            "2001:db8::/129".parse::<Prefix>().unwrap_err(),
            PrefixError::LengthOutOfRange { len: 129, max: 128 }
        );
        assert!(matches!(
            "banana/8".parse::<Prefix>(),
            Err(PrefixError::Syntax(_))
        ));
        assert!(matches!(
            "10.0.0.0/".parse::<Prefix>(),
            Err(PrefixError::Syntax(_))
        ));
        assert!(matches!(
            "10.0.0.0/-1".parse::<Prefix>(),
            Err(PrefixError::Syntax(_))
        ));
        assert!("10.0.0.0/8".parse::<Ipv6Net>().is_err());
    }

    #[test]
    fn first_last_contains() {
        let p: Ipv4Net = "198.18.0.0/15".parse().unwrap();
        assert_eq!(p.first(), 0xc612_0000);
        assert_eq!(p.last(), 0xc613_ffff);
        assert!(p.contains(0xc613_ffff));
        assert!(!p.contains(0xc614_0000));
        let d: Ipv6Net = "::/0".parse().unwrap();
        assert_eq!(d.last(), u128::MAX);
        let h: Ipv6Net = "2001:db8::1/128".parse().unwrap();
        assert_eq!(h.first(), h.last());
    }
}
