//! Prefixes on the wire (RFC 4271 4.3, RFC 4760 5): a length in bits, then the fewest octets
//! that hold that many bits. Bits past the length are ignored (masked off), as RFC 4271 says
//! of trailing bits; a length beyond the family's width, or octets running past the field, make
//! the whole field syntactically incorrect (RFC 7606 5.3), which the caller turns into the
//! right NOTIFICATION.

use super::super::types::Family;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{Ipv4Addr, Ipv6Addr};

/// The field is syntactically incorrect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct BadNlri;

/// Decodes every prefix of `field`, appending them to `out`.
pub(super) fn decode_prefixes(field: &[u8], family: Family, out: &mut Vec<IpNet>) -> Result<(), BadNlri> {
    // A prefix takes at least one octet: reserve for the likely count up front.
    out.reserve(field.len() / 4);
    let mut rest = field;
    while let Some((&bits, tail)) = rest.split_first() {
        let octets = usize::from(bits).div_ceil(8);
        let addr = tail.get(..octets).ok_or(BadNlri)?;
        let net = match family {
            Family::Ipv4Unicast => {
                if bits > 32 {
                    return Err(BadNlri);
                }
                let mut a = [0u8; 4];
                a[..octets].copy_from_slice(addr);
                let v = u32::from_be_bytes(a) & mask32(bits);
                IpNet::V4(Ipv4Net::new(Ipv4Addr::from(v), bits).map_err(|_| BadNlri)?)
            }
            Family::Ipv6Unicast => {
                if bits > 128 {
                    return Err(BadNlri);
                }
                let mut a = [0u8; 16];
                a[..octets].copy_from_slice(addr);
                let v = u128::from_be_bytes(a) & mask128(bits);
                IpNet::V6(Ipv6Net::new(Ipv6Addr::from(v), bits).map_err(|_| BadNlri)?)
            }
        };
        out.push(net);
        rest = &tail[octets..];
    }
    Ok(())
}

fn mask32(bits: u8) -> u32 {
    match bits {
        0 => 0,
        b => u32::MAX << (32 - u32::from(b.min(32))),
    }
}

fn mask128(bits: u8) -> u128 {
    match bits {
        0 => 0,
        b => u128::MAX << (128 - u32::from(b.min(128))),
    }
}

/// How many bytes `p` takes on the wire.
pub(super) fn wire_len(p: &IpNet) -> usize {
    1 + usize::from(p.prefix_len()).div_ceil(8)
}

/// Appends `p`, host bits cleared.
pub(super) fn encode_prefix(p: &IpNet, out: &mut Vec<u8>) {
    let bits = p.prefix_len();
    let octets = usize::from(bits).div_ceil(8);
    out.push(bits);
    match p {
        IpNet::V4(n) => {
            let v = u32::from(n.addr()) & mask32(bits);
            out.extend_from_slice(&v.to_be_bytes()[..octets]);
        }
        IpNet::V6(n) => {
            let v = u128::from(n.addr()) & mask128(bits);
            out.extend_from_slice(&v.to_be_bytes()[..octets]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(field: &[u8], family: Family) -> Result<Vec<IpNet>, BadNlri> {
        let mut out = Vec::new();
        decode_prefixes(field, family, &mut out).map(|()| out)
    }

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|p| p.parse().unwrap()).collect()
    }

    #[test]
    fn prefixes_take_the_fewest_octets() {
        let field = [0, 8, 10, 24, 198, 51, 100, 32, 192, 0, 2, 1, 17, 172, 16, 128];
        let want = nets(&[
            "0.0.0.0/0",
            "10.0.0.0/8",
            "198.51.100.0/24",
            "192.0.2.1/32",
            "172.16.128.0/17",
        ]);
        assert_eq!(decode(&field, Family::Ipv4Unicast), Ok(want.clone()));
        let mut out = Vec::new();
        for p in &want {
            encode_prefix(p, &mut out);
        }
        assert_eq!(out, field);
        assert_eq!(want.iter().map(wire_len).sum::<usize>(), field.len());

        let field = [
            32, 0x20, 0x01, 0x0d, 0xb8, 128, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        ];
        let want = nets(&["2001:db8::/32", "2001:db8::1/128"]);
        assert_eq!(decode(&field, Family::Ipv6Unicast), Ok(want));
    }

    #[test]
    fn trailing_bits_past_the_length_are_masked_not_refused() {
        assert_eq!(
            decode(&[20, 10, 1, 0xFF], Family::Ipv4Unicast),
            Ok(nets(&["10.1.240.0/20"]))
        );
        assert_eq!(decode(&[1, 0xFF], Family::Ipv6Unicast), Ok(nets(&["8000::/1"])));
        // And the encoder never sends host bits.
        let mut out = Vec::new();
        encode_prefix(&"10.1.255.255/20".parse().unwrap(), &mut out);
        assert_eq!(out, [20, 10, 1, 0xF0]);
    }

    #[test]
    fn overruns_and_impossible_lengths_are_syntax_errors() {
        assert_eq!(decode(&[24, 10, 0], Family::Ipv4Unicast), Err(BadNlri));
        assert_eq!(decode(&[33, 1, 2, 3, 4, 5], Family::Ipv4Unicast), Err(BadNlri));
        assert_eq!(decode(&[129; 18], Family::Ipv6Unicast), Err(BadNlri));
        assert_eq!(decode(&[8, 10, 8], Family::Ipv4Unicast), Err(BadNlri));
        assert_eq!(decode(&[], Family::Ipv4Unicast), Ok(vec![]));
    }
}
