//! ROUTE-REFRESH (RFC 2918, subtypes of RFC 7313 enhanced route refresh).
//!
//! ```text
//! 0       7      15      23      31
//! +-------+-------+-------+-------+
//! |      AFI      | Subtyp|  SAFI |
//! +-------+-------+-------+-------+
//! ```

use super::super::types::Family;
use super::{
    be16, begin_message, error_code, finish_message, header_subcode, message_type, route_refresh_subcode,
    Notification, HEADER_LEN,
};

/// A ROUTE-REFRESH message. AFI and SAFI stay numbers: a request for a family that was not
/// negotiated is the session's to ignore, not a decoding error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RouteRefresh {
    pub afi: u16,
    /// 0 a plain request (RFC 2918, where it is a reserved octet), 1 beginning and 2 end of a
    /// route refresh (RFC 7313); other values are to be ignored by the receiver.
    pub subtype: u8,
    pub safi: u8,
}

impl RouteRefresh {
    pub const REQUEST: u8 = 0;
    pub const BEGIN: u8 = 1;
    pub const END: u8 = 2;

    /// A plain request to re-send `family`.
    pub fn request(family: Family) -> Self {
        Self {
            afi: family.afi(),
            subtype: Self::REQUEST,
            safi: family.safi(),
        }
    }

    /// The family asked for, if it is one we speak.
    pub fn family(&self) -> Option<Family> {
        Family::from_afi_safi(self.afi, self.safi)
    }

    /// Decodes the whole message (frame_len has checked it is at least 23 bytes). A longer one
    /// is an RFC 7313 5 error with the whole message as data for the enhanced subtypes, and a
    /// bad length otherwise.
    pub(super) fn decode(msg: &[u8]) -> Result<Self, Notification> {
        let body = &msg[HEADER_LEN..];
        let subtype = body[2];
        if body.len() != 4 {
            return Err(match subtype {
                Self::BEGIN | Self::END => Notification::new(
                    error_code::ROUTE_REFRESH_MESSAGE,
                    route_refresh_subcode::INVALID_MESSAGE_LENGTH,
                    msg.to_vec(),
                ),
                _ => Notification::new(
                    error_code::MESSAGE_HEADER,
                    header_subcode::BAD_MESSAGE_LENGTH,
                    msg[16..18].to_vec(),
                ),
            });
        }
        Ok(Self {
            afi: be16(body),
            subtype,
            safi: body[3],
        })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = begin_message(out, message_type::ROUTE_REFRESH);
        out.extend_from_slice(&self.afi.to_be_bytes());
        out.push(self.subtype);
        out.push(self.safi);
        // 23 bytes: cannot be too long.
        let _ = finish_message(out, start, "ROUTE-REFRESH");
    }
}

#[cfg(test)]
mod tests {
    use super::super::{decode, DecodeContext, FamilySet, Message};
    use super::*;

    const WIRE: [u8; 23] = [
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00,
        0x17, 0x05, 0x00, 0x02, 0x00, 0x01,
    ];

    fn ctx() -> DecodeContext {
        DecodeContext::new(true, true, FamilySet::all())
    }

    #[test]
    fn ipv6_request_both_ways() {
        let rr = RouteRefresh::request(Family::Ipv6Unicast);
        assert_eq!(decode(&WIRE, &ctx()), Ok(Message::RouteRefresh(rr)));
        assert_eq!(rr.family(), Some(Family::Ipv6Unicast));
        let mut out = Vec::new();
        rr.encode(&mut out);
        assert_eq!(out, WIRE);
        // Unknown families decode; the session decides.
        let rr = RouteRefresh {
            afi: 1,
            subtype: 0,
            safi: 128,
        };
        assert_eq!(rr.family(), None);
    }

    #[test]
    fn a_long_route_refresh_is_an_error_of_the_right_kind() {
        let mut m = WIRE.to_vec();
        m.push(0);
        m[17] = 24;
        let n = decode(&m, &ctx()).unwrap_err();
        assert_eq!((n.code, n.subcode, n.data), (1, 2, vec![0, 24]));
        m[21] = RouteRefresh::BEGIN;
        let n = decode(&m, &ctx()).unwrap_err();
        assert_eq!((n.code, n.subcode), (7, 1));
        assert_eq!(n.data, m);
    }
}
