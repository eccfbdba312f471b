//! OPEN (RFC 4271 4.2) and its capabilities (RFC 5492).
//!
//! ```text
//! +-+-+-+-+-+-+-+-+
//! |    Version    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     My Autonomous System      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           Hold Time           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         BGP Identifier                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Opt Parm Len  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |             Optional Parameters (variable)                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Only the structure is checked here (the parameters and capabilities must add up); whether
//! the version, AS, hold time and identifier are acceptable is the session's decision. The
//! only optional parameter BGP still defines is Capabilities (type 2); a speaker may spread its
//! capabilities over several of them, and this codec accepts that and sends one. When the
//! parameters exceed 255 bytes both directions use the RFC 9072 extended length.

use super::super::types::{Asn, Family, AS_TRANS};
use super::{
    be16, be32, begin_message, error_code, finish_message, message_type, open_subcode, EncodeError,
    Notification,
};
use std::net::Ipv4Addr;

const PARAM_CAPABILITIES: u8 = 2;
/// RFC 9072: Opt Parm Len and the first parameter type both 255 mean extended lengths.
const PARAM_EXTENDED: u8 = 255;

const CAP_MULTIPROTOCOL: u8 = 1;
const CAP_ROUTE_REFRESH: u8 = 2;
const CAP_FOUR_OCTET_AS: u8 = 65;

/// A capability (RFC 5492). Those xroute acts on are decoded; every other one (graceful restart
/// 64, enhanced route refresh 70, long-lived graceful restart 71, extended next hop 5, ADD-PATH
/// 69, an MP capability for a family we do not speak, ...) is kept as it came.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Multiprotocol extensions for a family we speak (RFC 4760 8, code 1).
    Multiprotocol(Family),
    /// Route refresh (RFC 2918, code 2).
    RouteRefresh,
    /// 4-octet AS numbers, with the speaker's AS (RFC 6793, code 65).
    FourOctetAs(Asn),
    Unknown {
        code: u8,
        value: Vec<u8>,
    },
}

impl Capability {
    pub fn code(&self) -> u8 {
        match self {
            Self::Multiprotocol(_) => CAP_MULTIPROTOCOL,
            Self::RouteRefresh => CAP_ROUTE_REFRESH,
            Self::FourOctetAs(_) => CAP_FOUR_OCTET_AS,
            Self::Unknown { code, .. } => *code,
        }
    }

    fn decode(code: u8, value: &[u8]) -> Result<Self, Notification> {
        let malformed = || Notification::new(error_code::OPEN_MESSAGE, open_subcode::UNSPECIFIC, Vec::new());
        Ok(match code {
            CAP_MULTIPROTOCOL => {
                let [a0, a1, _reserved, safi] = value else {
                    return Err(malformed());
                };
                match Family::from_afi_safi(u16::from_be_bytes([*a0, *a1]), *safi) {
                    Some(f) => Self::Multiprotocol(f),
                    None => Self::Unknown {
                        code,
                        value: value.to_vec(),
                    },
                }
            }
            CAP_ROUTE_REFRESH if value.is_empty() => Self::RouteRefresh,
            CAP_ROUTE_REFRESH => return Err(malformed()),
            CAP_FOUR_OCTET_AS if value.len() == 4 => Self::FourOctetAs(be32(value)),
            CAP_FOUR_OCTET_AS => return Err(malformed()),
            _ => Self::Unknown {
                code,
                value: value.to_vec(),
            },
        })
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Self::Multiprotocol(f) => {
                out.extend_from_slice(&[CAP_MULTIPROTOCOL, 4]);
                out.extend_from_slice(&f.afi().to_be_bytes());
                out.extend_from_slice(&[0, f.safi()]);
            }
            Self::RouteRefresh => out.extend_from_slice(&[CAP_ROUTE_REFRESH, 0]),
            Self::FourOctetAs(asn) => {
                out.extend_from_slice(&[CAP_FOUR_OCTET_AS, 4]);
                out.extend_from_slice(&asn.to_be_bytes());
            }
            Self::Unknown { code, value } => {
                let len = u8::try_from(value.len()).map_err(|_| EncodeError::CapabilityTooLong {
                    code: *code,
                    len: value.len(),
                })?;
                out.extend_from_slice(&[*code, len]);
                out.extend_from_slice(value);
            }
        }
        Ok(())
    }
}

/// An OPEN message as it is on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Open {
    pub version: u8,
    /// My Autonomous System: AS_TRANS when the speaker's AS needs 4 octets (see [`Open::asn`]).
    pub my_as: u16,
    pub hold_time: u16,
    pub bgp_id: Ipv4Addr,
    /// Every capability of every Capabilities parameter, in order.
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// A version 4 OPEN for `asn`. My AS is AS_TRANS above 65535, and then the 4-octet AS
    /// capability, without which the AS could not be told, is added if `capabilities` lacks it.
    /// Below 65536 the capability is sent only if `capabilities` holds it.
    pub fn new(asn: Asn, hold_time: u16, bgp_id: Ipv4Addr, capabilities: Vec<Capability>) -> Self {
        let mut capabilities = capabilities;
        let my_as = match u16::try_from(asn) {
            Ok(a) => a,
            Err(_) => {
                if !capabilities
                    .iter()
                    .any(|c| matches!(c, Capability::FourOctetAs(_)))
                {
                    capabilities.push(Capability::FourOctetAs(asn));
                }
                AS_TRANS as u16
            }
        };
        Self {
            version: 4,
            my_as,
            hold_time,
            bgp_id,
            capabilities,
        }
    }

    /// The speaker's AS: from the 4-octet AS capability if present, else My AS (RFC 6793 4.1).
    pub fn asn(&self) -> Asn {
        self.four_octet_as().unwrap_or(Asn::from(self.my_as))
    }

    /// The AS of the 4-octet AS capability, if the speaker sent one.
    pub fn four_octet_as(&self) -> Option<Asn> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::FourOctetAs(a) => Some(*a),
            _ => None,
        })
    }

    /// The families the speaker supports, in the order announced: its MP capabilities for
    /// families we speak, or IPv4 unicast alone when it sent no MP capability at all (RFC 4760
    /// 8). An MP capability only for families we do not speak leaves none.
    pub fn families(&self) -> Vec<Family> {
        let mut any_mp = false;
        let mut out = Vec::new();
        for c in &self.capabilities {
            match c {
                Capability::Multiprotocol(f) => {
                    any_mp = true;
                    if !out.contains(f) {
                        out.push(*f);
                    }
                }
                Capability::Unknown {
                    code: CAP_MULTIPROTOCOL,
                    ..
                } => any_mp = true,
                _ => {}
            }
        }
        if !any_mp {
            out.push(Family::Ipv4Unicast);
        }
        out
    }

    pub fn supports_route_refresh(&self) -> bool {
        self.capabilities.contains(&Capability::RouteRefresh)
    }

    /// Decodes the body (after the header); frame_len has checked it is at least 10 bytes.
    pub(super) fn decode_body(body: &[u8]) -> Result<Self, Notification> {
        let malformed = || Notification::new(error_code::OPEN_MESSAGE, open_subcode::UNSPECIFIC, Vec::new());
        let version = body[0];
        let my_as = be16(&body[1..]);
        let hold_time = be16(&body[3..]);
        let bgp_id = Ipv4Addr::from(be32(&body[5..]));
        let opt_len = usize::from(body[9]);
        let rest = &body[10..];
        // RFC 9072: a first parameter of type 255 after an Opt Parm Len of 255.
        let extended = opt_len == 255 && rest.first() == Some(&PARAM_EXTENDED);
        let (params, len_size) = if extended {
            let ext_len = rest.get(1..3).ok_or_else(malformed)?;
            let params = &rest[3..];
            if params.len() != usize::from(be16(ext_len)) {
                return Err(malformed());
            }
            (params, 2)
        } else {
            if rest.len() != opt_len {
                return Err(malformed());
            }
            (rest, 1)
        };
        let mut capabilities = Vec::new();
        let mut i = 0;
        while i < params.len() {
            let hdr = params.get(i..i + 1 + len_size).ok_or_else(malformed)?;
            let ty = hdr[0];
            let len = if len_size == 2 {
                usize::from(be16(&hdr[1..]))
            } else {
                usize::from(hdr[1])
            };
            let value_start = i + 1 + len_size;
            let value = params.get(value_start..value_start + len).ok_or_else(malformed)?;
            i = value_start + len;
            if ty != PARAM_CAPABILITIES {
                return Err(Notification::new(
                    error_code::OPEN_MESSAGE,
                    open_subcode::UNSUPPORTED_OPTIONAL_PARAMETER,
                    Vec::new(),
                ));
            }
            let mut j = 0;
            while j < value.len() {
                let [code, cap_len] = value.get(j..j + 2).ok_or_else(malformed)? else {
                    return Err(malformed());
                };
                let cap = value
                    .get(j + 2..j + 2 + usize::from(*cap_len))
                    .ok_or_else(malformed)?;
                capabilities.push(Capability::decode(*code, cap)?);
                j += 2 + cap.len();
            }
        }
        Ok(Self {
            version,
            my_as,
            hold_time,
            bgp_id,
            capabilities,
        })
    }

    /// Appends the message: all capabilities in one Capabilities parameter, or in as many as
    /// needed when they exceed 255 bytes, and the RFC 9072 extended format only when the
    /// parameters do not fit the one-octet Opt Parm Len.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let mut caps = Vec::with_capacity(64);
        let mut cap_ends = Vec::with_capacity(self.capabilities.len());
        for c in &self.capabilities {
            c.encode(&mut caps)?;
            cap_ends.push(caps.len());
        }
        // Split the capabilities into parameters of at most 255 bytes, whole capabilities each.
        let mut params: Vec<&[u8]> = Vec::new();
        let mut start = 0;
        let mut prev_end = 0;
        for &end in &cap_ends {
            if end - start > 255 {
                params.push(&caps[start..prev_end]);
                start = prev_end;
            }
            prev_end = end;
        }
        if prev_end > start {
            params.push(&caps[start..prev_end]);
        }
        let params_len: usize = params.iter().map(|p| 2 + p.len()).sum();

        let msg_start = begin_message(out, message_type::OPEN);
        out.push(self.version);
        out.extend_from_slice(&self.my_as.to_be_bytes());
        out.extend_from_slice(&self.hold_time.to_be_bytes());
        out.extend_from_slice(&self.bgp_id.octets());
        if params_len < 255 {
            out.push(params_len as u8);
            for p in &params {
                out.extend_from_slice(&[PARAM_CAPABILITIES, p.len() as u8]);
                out.extend_from_slice(p);
            }
        } else {
            // One parameter is enough with two-octet lengths.
            let ext_len = 3 + caps.len();
            out.extend_from_slice(&[255, PARAM_EXTENDED]);
            out.extend_from_slice(&(ext_len.min(0xFFFF) as u16).to_be_bytes());
            out.push(PARAM_CAPABILITIES);
            out.extend_from_slice(&(caps.len().min(0xFFFF) as u16).to_be_bytes());
            out.extend_from_slice(&caps);
        }
        finish_message(out, msg_start, "OPEN")
    }
}

#[cfg(test)]
mod tests {
    use super::super::{decode, DecodeContext, EncodeContext, FamilySet, Message};
    use super::*;

    fn ctx() -> DecodeContext {
        DecodeContext::new(true, true, FamilySet::all())
    }

    fn round_trip(open: &Open) -> Vec<u8> {
        let mut out = Vec::new();
        open.encode(&mut out).unwrap();
        assert_eq!(decode(&out, &ctx()), Ok(Message::Open(open.clone())));
        out
    }

    /// An OPEN with the given optional parameters (after the Opt Parm Len).
    fn open_with_params(opt_len: u8, params: &[u8]) -> Vec<u8> {
        let mut m = vec![0xFF; 16];
        m.extend_from_slice(&((29 + params.len()) as u16).to_be_bytes());
        m.extend_from_slice(&[1, 4, 0xFD, 0xE9, 0, 90, 192, 0, 2, 1, opt_len]);
        m.extend_from_slice(params);
        m
    }

    #[test]
    fn hand_written_open_both_ways() {
        // AS 65001, hold 90, 192.0.2.1; MP IPv4 + IPv6, route refresh, 4-octet AS 65001,
        // graceful restart (kept as unknown).
        let params = [
            2, 24, // Capabilities, 24 bytes
            1, 4, 0, 1, 0, 1, // MP IPv4 unicast
            1, 4, 0, 2, 0, 1, // MP IPv6 unicast
            2, 0, // route refresh
            65, 4, 0, 0, 0xFD, 0xE9, // 4-octet AS 65001
            64, 2, 0x00, 0x78, // graceful restart, 120 s
        ];
        let wire = open_with_params(params.len() as u8, &params);
        let Ok(Message::Open(open)) = decode(&wire, &ctx()) else {
            panic!("not an OPEN");
        };
        let expected = Open {
            version: 4,
            my_as: 65001,
            hold_time: 90,
            bgp_id: Ipv4Addr::new(192, 0, 2, 1),
            capabilities: vec![
                Capability::Multiprotocol(Family::Ipv4Unicast),
                Capability::Multiprotocol(Family::Ipv6Unicast),
                Capability::RouteRefresh,
                Capability::FourOctetAs(65001),
                Capability::Unknown {
                    code: 64,
                    value: vec![0, 120],
                },
            ],
        };
        assert_eq!(open, expected);
        assert_eq!(open.asn(), 65001);
        assert_eq!(open.families(), vec![Family::Ipv4Unicast, Family::Ipv6Unicast]);
        assert!(open.supports_route_refresh());
        assert_eq!(round_trip(&open), wire);
    }

    #[test]
    fn a_four_octet_as_travels_as_as_trans_plus_capability() {
        let open = Open::new(4_200_000_000, 180, Ipv4Addr::new(10, 0, 0, 1), vec![]);
        assert_eq!(open.my_as, 23456);
        assert_eq!(open.capabilities, vec![Capability::FourOctetAs(4_200_000_000)]);
        assert_eq!(open.asn(), 4_200_000_000);
        round_trip(&open);
        // Below 65536 the capability is sent only when asked for.
        let open = Open::new(64500, 180, Ipv4Addr::new(10, 0, 0, 1), vec![]);
        assert_eq!((open.my_as, open.four_octet_as()), (64500, None));
        let open = Open::new(
            64500,
            180,
            Ipv4Addr::new(10, 0, 0, 1),
            vec![Capability::FourOctetAs(64500)],
        );
        assert_eq!(open.capabilities, vec![Capability::FourOctetAs(64500)]);
    }

    #[test]
    fn capabilities_may_come_in_several_parameters() {
        let params = [2, 2, 2, 0, 2, 6, 1, 4, 0, 2, 0, 1, 2, 0];
        let Ok(Message::Open(open)) = decode(&open_with_params(14, &params), &ctx()) else {
            panic!("not an OPEN");
        };
        assert_eq!(
            open.capabilities,
            vec![
                Capability::RouteRefresh,
                Capability::Multiprotocol(Family::Ipv6Unicast)
            ]
        );
        assert_eq!(open.families(), vec![Family::Ipv6Unicast]);
    }

    #[test]
    fn no_mp_capability_means_ipv4_unicast_only() {
        let open = Open::new(1, 3, Ipv4Addr::new(1, 1, 1, 1), vec![Capability::RouteRefresh]);
        assert_eq!(open.families(), vec![Family::Ipv4Unicast]);
        // An MP capability for IPv4 multicast only: no family we speak.
        let open = Open::new(
            1,
            3,
            Ipv4Addr::new(1, 1, 1, 1),
            vec![Capability::Unknown {
                code: 1,
                value: vec![0, 1, 0, 2],
            }],
        );
        assert_eq!(open.families(), vec![]);
        assert!(!open.supports_route_refresh());
    }

    #[test]
    fn structural_errors_are_open_message_errors() {
        let cases: &[(u8, &[u8], u8)] = &[
            // Opt Parm Len beyond the message.
            (5, &[2, 2, 2, 0], 0),
            // Parameter length beyond the parameters.
            (4, &[2, 3, 2, 0], 0),
            // Capability length beyond its parameter.
            (4, &[2, 2, 2, 1], 0),
            // A lone octet where a capability header should be.
            (3, &[2, 1, 2], 0),
            // Malformed known capabilities.
            (5, &[2, 3, 2, 1, 0], 0),
            (7, &[2, 5, 1, 3, 0, 1, 0], 0),
            (5, &[2, 3, 65, 1, 0], 0),
            // The old authentication parameter, and any other type.
            (4, &[1, 2, 0, 0], 4),
            (2, &[3, 0], 4),
        ];
        for (opt_len, params, subcode) in cases {
            let n = decode(&open_with_params(*opt_len, params), &ctx()).unwrap_err();
            assert_eq!((n.code, n.subcode), (2, *subcode), "{params:?}");
        }
    }

    #[test]
    fn unknown_mp_families_are_kept_as_unknown() {
        let params = [2, 6, 1, 4, 0, 1, 0, 2];
        let Ok(Message::Open(open)) = decode(&open_with_params(8, &params), &ctx()) else {
            panic!("not an OPEN");
        };
        assert_eq!(
            open.capabilities,
            vec![Capability::Unknown {
                code: 1,
                value: vec![0, 1, 0, 2]
            }]
        );
    }

    #[test]
    fn more_than_255_bytes_of_capabilities_use_extended_parameters() {
        let caps: Vec<Capability> = (0..60)
            .map(|i| Capability::Unknown {
                code: 200,
                value: vec![i; 3],
            })
            .collect();
        let open = Open::new(65001, 90, Ipv4Addr::new(192, 0, 2, 1), caps);
        let wire = round_trip(&open);
        // Opt Parm Len 255, type 255, extended length 3 + 300.
        assert_eq!(&wire[28..32], &[255, 255, 0x01, 0x2F]);
        assert_eq!(wire.len(), 29 + 3 + 3 + 300);
        // A Message encodes the same bytes.
        let m = Message::Open(open).to_bytes(&EncodeContext { four_octet_as: true });
        assert_eq!(m.unwrap(), wire);
    }

    #[test]
    fn a_capability_over_255_bytes_is_refused() {
        let open = Open::new(
            1,
            3,
            Ipv4Addr::new(1, 1, 1, 1),
            vec![Capability::Unknown {
                code: 9,
                value: vec![0; 256],
            }],
        );
        assert_eq!(
            open.encode(&mut Vec::new()),
            Err(EncodeError::CapabilityTooLong { code: 9, len: 256 })
        );
    }
}
