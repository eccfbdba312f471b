//! The BGP-4 wire codec: framing, the five messages, and UPDATE error handling.
//!
//! A session's reader calls [`frame_len`] on the bytes it has buffered to learn how long the
//! next message is (or that the header is already unacceptable), then [`decode`] on exactly one
//! whole message. Decoding never panics on any input: every malformation ends either in a
//! [`Notification`] to send before closing the session, or, for UPDATEs, in one of the gentler
//! outcomes of RFC 7606 recorded in [`Update::issues`].
//!
//! What lives where:
//! - this file: the 19-byte header (RFC 4271 4.1, 6.1), [`Message`], the decode and encode
//!   contexts;
//! - `open`: OPEN and capabilities (RFC 4271 4.2, RFC 5492, RFC 4760, RFC 6793, RFC 9072);
//! - `notification`: NOTIFICATION, every error code and subcode we know, shutdown
//!   communications (RFC 4271 4.5, RFC 4486, RFC 6608, RFC 7313, RFC 8538, RFC 9003);
//! - `update`: UPDATE decoding and the RFC 7606 classification of every malformation;
//! - `attributes`: path attributes one by one, both ways, and the AS4_PATH merge (RFC 6793);
//! - `route_refresh`: ROUTE-REFRESH (RFC 2918, RFC 7313);
//! - `nlri`: prefixes on the wire;
//! - `pack`: turning one set of attributes and many prefixes into as few UPDATEs as fit in
//!   4096 bytes, and End-of-RIB markers (RFC 4724).
//!
//! A decoded [`Update`] says what the message means rather than how it was laid out:
//! `withdrawn` gathers the Withdrawn Routes field and MP_UNREACH_NLRI, and `announced` holds one
//! [`Announcement`] (family, full [`PathAttributes`](super::types::PathAttributes) with its next
//! hop, prefixes) per next hop, since one UPDATE may carry IPv4 NLRI with NEXT_HOP and IPv6 in
//! MP_REACH_NLRI with another. A 2-octet session's AS4_PATH and AS4_AGGREGATOR are already
//! merged in. Encoding goes the other way: [`encode_announce`] and [`encode_withdraw`] pack many
//! prefixes into as few messages as fit.
//!
//! ```text
//! reader:   while let Some(n) = frame_len(&buf)? { if buf.len() < n { break }
//!               match decode(&buf[..n], &ctx)? { ... } ; buf.drain(..n); }
//! ctx:      DecodeContext::negotiated(&our_open, &their_open)
//! errors:   Err(notification) -> send it, close; Update::issues -> log, count
//! ```
//!
//! Decoding is allocation-light because a full table (about a million prefixes in a few hundred
//! thousand UPDATEs) arrives at session start: the only allocations are the output vectors
//! (prefixes, AS path segments, communities, unknown attributes).

mod attributes;
mod nlri;
mod notification;
mod open;
mod pack;
mod route_refresh;
mod update;

#[cfg(test)]
mod fixture_tests;
#[cfg(test)]
mod mrt_tests;
#[cfg(test)]
mod pcap_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod rfc7606_tests;

use super::types::Family;

pub use attributes::{attr_name, attr_type};
pub use notification::{
    cease_subcode, error_code, fsm_subcode, header_subcode, open_subcode, route_refresh_subcode,
    update_subcode, Notification,
};
pub use open::{Capability, Open};
pub use pack::{encode_announce, encode_end_of_rib, encode_withdraw};
pub use route_refresh::RouteRefresh;
pub use update::{Action, Announcement, AsPathError, AttrProblem, Update, UpdateIssue};

/// The all-ones marker that opens every message (RFC 4271 4.1).
pub const MARKER: [u8; 16] = [0xFF; 16];
/// Marker, length and type.
pub const HEADER_LEN: usize = 19;
/// The largest message RFC 4271 allows (no RFC 8654 extended messages).
pub const MAX_MESSAGE_LEN: usize = 4096;

/// Message type codes (RFC 4271 4.1, RFC 2918).
pub mod message_type {
    pub const OPEN: u8 = 1;
    pub const UPDATE: u8 = 2;
    pub const NOTIFICATION: u8 = 3;
    pub const KEEPALIVE: u8 = 4;
    pub const ROUTE_REFRESH: u8 = 5;
}

/// The smallest acceptable length of each message type (RFC 4271 6.1, RFC 2918 3).
fn min_len(ty: u8) -> Option<usize> {
    match ty {
        message_type::OPEN => Some(29),
        message_type::UPDATE => Some(23),
        message_type::NOTIFICATION => Some(21),
        message_type::KEEPALIVE => Some(19),
        message_type::ROUTE_REFRESH => Some(23),
        _ => None,
    }
}

/// The length of the message at the front of `buf`, once its 19-byte header is there
/// (`Ok(None)` before that): the caller waits until it has that many bytes, then [`decode`]s
/// them. The header is checked as RFC 4271 6.1 asks, so a hostile length or type ends the
/// session before anything is buffered for it.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, Notification> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    if header[..16] != MARKER {
        return Err(Notification::new(
            error_code::MESSAGE_HEADER,
            header_subcode::CONNECTION_NOT_SYNCHRONIZED,
            Vec::new(),
        ));
    }
    let len_field = [header[16], header[17]];
    let len = usize::from(u16::from_be_bytes(len_field));
    let ty = header[18];
    let bad_length = || {
        Notification::new(
            error_code::MESSAGE_HEADER,
            header_subcode::BAD_MESSAGE_LENGTH,
            len_field.to_vec(),
        )
    };
    if !(HEADER_LEN..=MAX_MESSAGE_LEN).contains(&len) {
        return Err(bad_length());
    }
    let Some(min) = min_len(ty) else {
        return Err(Notification::new(
            error_code::MESSAGE_HEADER,
            header_subcode::BAD_MESSAGE_TYPE,
            vec![ty],
        ));
    };
    // A KEEPALIVE is exactly its header.
    if len < min || (ty == message_type::KEEPALIVE && len != HEADER_LEN) {
        return Err(bad_length());
    }
    Ok(Some(len))
}

/// Address families as a small set: what a session negotiated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FamilySet(u8);

impl FamilySet {
    pub const EMPTY: FamilySet = FamilySet(0);

    fn bit(f: Family) -> u8 {
        match f {
            Family::Ipv4Unicast => 1,
            Family::Ipv6Unicast => 2,
        }
    }

    /// Every family xroute speaks.
    pub fn all() -> Self {
        Family::ALL.into_iter().collect()
    }

    pub fn contains(self, f: Family) -> bool {
        self.0 & Self::bit(f) != 0
    }

    pub fn insert(&mut self, f: Family) {
        self.0 |= Self::bit(f);
    }

    pub fn iter(self) -> impl Iterator<Item = Family> {
        Family::ALL.into_iter().filter(move |f| self.contains(*f))
    }
}

impl FromIterator<Family> for FamilySet {
    fn from_iter<I: IntoIterator<Item = Family>>(iter: I) -> Self {
        let mut s = FamilySet::EMPTY;
        for f in iter {
            s.insert(f);
        }
        s
    }
}

/// What decoding an UPDATE needs to know about the session (filled in by the caller from what
/// was negotiated in the OPENs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeContext {
    /// Both sides sent the 4-octet AS capability: AS_PATH and AGGREGATOR carry 4-octet
    /// numbers, and AS4_PATH / AS4_AGGREGATOR are not expected (RFC 6793).
    pub four_octet_as: bool,
    /// The peer is in another AS: LOCAL_PREF is discarded and confederation segments are a
    /// malformed AS_PATH (RFC 7606 7.5, RFC 5065 5).
    pub ebgp: bool,
    /// Families both sides announced; NLRI of any other family are ignored and reported.
    pub families: FamilySet,
}

impl DecodeContext {
    pub fn new(four_octet_as: bool, ebgp: bool, families: FamilySet) -> Self {
        Self {
            four_octet_as,
            ebgp,
            families,
        }
    }

    /// The context of a session whose OPENs were `ours` and `theirs`: 4-octet AS numbers when
    /// both sent the capability (RFC 6793 3), eBGP when the ASes differ (xroute has no
    /// confederations), the families both announced (RFC 4760 8).
    pub fn negotiated(ours: &Open, theirs: &Open) -> Self {
        let their_families = theirs.families();
        Self {
            four_octet_as: ours.four_octet_as().is_some() && theirs.four_octet_as().is_some(),
            ebgp: ours.asn() != theirs.asn(),
            families: ours
                .families()
                .into_iter()
                .filter(|f| their_families.contains(f))
                .collect(),
        }
    }
}

/// What encoding an UPDATE needs to know about the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeContext {
    /// Both sides sent the 4-octet AS capability; otherwise AS numbers above 65535 travel as
    /// AS_TRANS with AS4_PATH / AS4_AGGREGATOR beside them (RFC 6793 4.2.2).
    pub four_octet_as: bool,
}

impl EncodeContext {
    /// The context of a session whose OPENs were `ours` and `theirs`.
    pub fn negotiated(ours: &Open, theirs: &Open) -> Self {
        Self {
            four_octet_as: DecodeContext::negotiated(ours, theirs).four_octet_as,
        }
    }
}

/// Why a message could not be encoded. Only locally built content can cause these, never
/// anything a peer sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("{kind} message of {len} bytes exceeds the {MAX_MESSAGE_LEN}-byte limit")]
    TooLong { kind: &'static str, len: usize },
    #[error("path attributes of {0} bytes leave no room for a prefix in a {MAX_MESSAGE_LEN}-byte UPDATE")]
    AttributesTooLong(usize),
    #[error("next hop {next_hop} cannot carry {family} prefixes")]
    NextHopFamily {
        family: Family,
        next_hop: std::net::IpAddr,
    },
    #[error("prefixes of more than one family in one announcement")]
    MixedFamilies,
    #[error(
        "one UPDATE carries at most one IPv4 and one IPv6 group, with the same attributes apart from the next hop"
    )]
    NotOneUpdate,
    #[error("capability {code} of {len} bytes does not fit in an OPEN")]
    CapabilityTooLong { code: u8, len: usize },
}

/// One BGP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    RouteRefresh(RouteRefresh),
}

impl Message {
    /// The message's name, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Open(_) => "OPEN",
            Self::Update(_) => "UPDATE",
            Self::Notification(_) => "NOTIFICATION",
            Self::Keepalive => "KEEPALIVE",
            Self::RouteRefresh(_) => "ROUTE-REFRESH",
        }
    }

    /// Decodes one whole message, header included (see [`decode`]).
    pub fn decode(msg: &[u8], ctx: &DecodeContext) -> Result<Message, Notification> {
        decode(msg, ctx)
    }

    /// Appends the message to `out`. `ctx` matters for UPDATEs only.
    pub fn encode(&self, ctx: &EncodeContext, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Self::Open(o) => o.encode(out),
            Self::Update(u) => u.encode(ctx, out),
            Self::Notification(n) => {
                n.encode(out);
                Ok(())
            }
            Self::Keepalive => {
                let start = begin_message(out, message_type::KEEPALIVE);
                finish_message(out, start, "KEEPALIVE")
            }
            Self::RouteRefresh(r) => {
                r.encode(out);
                Ok(())
            }
        }
    }

    /// The message as a new buffer.
    pub fn to_bytes(&self, ctx: &EncodeContext) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode(ctx, &mut out)?;
        Ok(out)
    }
}

/// Decodes one whole message, header included: `msg` is exactly the bytes [`frame_len`]
/// announced. An error is the NOTIFICATION to send before closing the session.
pub fn decode(msg: &[u8], ctx: &DecodeContext) -> Result<Message, Notification> {
    let Some(len) = frame_len(msg)? else {
        return Err(Notification::new(
            error_code::MESSAGE_HEADER,
            header_subcode::BAD_MESSAGE_LENGTH,
            Vec::new(),
        ));
    };
    if msg.len() != len {
        return Err(Notification::new(
            error_code::MESSAGE_HEADER,
            header_subcode::BAD_MESSAGE_LENGTH,
            msg[16..18].to_vec(),
        ));
    }
    let body = &msg[HEADER_LEN..];
    match msg[18] {
        message_type::OPEN => Open::decode_body(body).map(Message::Open),
        message_type::UPDATE => update::decode_update(body, ctx).map(Message::Update),
        message_type::NOTIFICATION => Ok(Message::Notification(Notification::decode_body(body))),
        message_type::KEEPALIVE => Ok(Message::Keepalive),
        // frame_len accepts no other type.
        _ => RouteRefresh::decode(msg).map(Message::RouteRefresh),
    }
}

/// Starts a message of type `ty` in `out` (length filled in by [`finish_message`]); returns
/// where it starts.
fn begin_message(out: &mut Vec<u8>, ty: u8) -> usize {
    let start = out.len();
    out.extend_from_slice(&MARKER);
    out.extend_from_slice(&[0, 0, ty]);
    start
}

/// Writes the length of the message that starts at `start`, refusing more than 4096 bytes
/// (and then removing the partial message from `out`).
fn finish_message(out: &mut Vec<u8>, start: usize, kind: &'static str) -> Result<(), EncodeError> {
    let len = out.len() - start;
    if len > MAX_MESSAGE_LEN {
        out.truncate(start);
        return Err(EncodeError::TooLong { kind, len });
    }
    let field = (len as u16).to_be_bytes();
    out[start + 16] = field[0];
    out[start + 17] = field[1];
    Ok(())
}

/// Big-endian readers over slices whose length the caller has checked.
fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: u16, ty: u8) -> Vec<u8> {
        let mut v = MARKER.to_vec();
        v.extend_from_slice(&len.to_be_bytes());
        v.push(ty);
        v
    }

    #[test]
    fn frame_len_waits_for_a_whole_header() {
        let h = header(19, 4);
        for n in 0..HEADER_LEN {
            assert_eq!(frame_len(&h[..n]), Ok(None));
        }
        assert_eq!(frame_len(&h), Ok(Some(19)));
        // The body need not be there yet.
        assert_eq!(frame_len(&header(100, 2)), Ok(Some(100)));
    }

    #[test]
    fn frame_len_checks_marker_length_and_type() {
        let mut h = header(19, 4);
        h[3] = 0xFE;
        let n = frame_len(&h).unwrap_err();
        assert_eq!((n.code, n.subcode, n.data.as_slice()), (1, 1, &[][..]));

        for bad in [0u16, 18, 4097, 0xFFFF] {
            let n = frame_len(&header(bad, 2)).unwrap_err();
            assert_eq!((n.code, n.subcode), (1, 2), "{bad}");
            assert_eq!(n.data, bad.to_be_bytes().to_vec());
        }
        for ty in [0u8, 6, 255] {
            let n = frame_len(&header(19, ty)).unwrap_err();
            assert_eq!((n.code, n.subcode, n.data.clone()), (1, 3, vec![ty]));
        }
        // Per-type minimums; a KEEPALIVE is exactly 19 bytes.
        for (ty, min) in [(1u8, 29u16), (2, 23), (3, 21), (5, 23)] {
            assert!(frame_len(&header(min, ty)).is_ok());
            let n = frame_len(&header(min - 1, ty)).unwrap_err();
            assert_eq!((n.code, n.subcode), (1, 2));
            assert_eq!(n.data, (min - 1).to_be_bytes().to_vec());
        }
        let n = frame_len(&header(20, 4)).unwrap_err();
        assert_eq!((n.code, n.subcode, n.data.clone()), (1, 2, vec![0, 20]));
    }

    #[test]
    fn decode_refuses_a_buffer_of_another_length_than_announced() {
        let ctx = DecodeContext::new(true, true, FamilySet::all());
        let mut m = header(19, 4);
        m.push(0);
        let n = decode(&m, &ctx).unwrap_err();
        assert_eq!((n.code, n.subcode, n.data.clone()), (1, 2, vec![0, 19]));
        assert_eq!(decode(&m[..19], &ctx), Ok(Message::Keepalive));
    }

    #[test]
    fn contexts_follow_what_both_opens_say() {
        use std::net::Ipv4Addr;
        let id = Ipv4Addr::new(192, 0, 2, 1);
        let ours = Open::new(
            65001,
            90,
            id,
            vec![
                Capability::Multiprotocol(Family::Ipv4Unicast),
                Capability::Multiprotocol(Family::Ipv6Unicast),
                Capability::FourOctetAs(65001),
            ],
        );
        let v6_four = Open::new(
            4_200_000_000,
            90,
            id,
            vec![Capability::Multiprotocol(Family::Ipv6Unicast)],
        );
        let ctx = DecodeContext::negotiated(&ours, &v6_four);
        assert_eq!(
            ctx,
            DecodeContext::new(true, true, [Family::Ipv6Unicast].into_iter().collect())
        );
        // An old iBGP speaker without capabilities: 2-octet, IPv4 only.
        let old = Open::new(65001, 90, id, vec![]);
        let ctx = DecodeContext::negotiated(&ours, &old);
        assert_eq!(
            ctx,
            DecodeContext::new(false, false, [Family::Ipv4Unicast].into_iter().collect())
        );
        assert!(!EncodeContext::negotiated(&ours, &old).four_octet_as);
    }

    #[test]
    fn family_set_holds_what_was_inserted() {
        let mut s = FamilySet::EMPTY;
        assert!(!s.contains(Family::Ipv4Unicast));
        s.insert(Family::Ipv6Unicast);
        assert!(s.contains(Family::Ipv6Unicast) && !s.contains(Family::Ipv4Unicast));
        assert_eq!(FamilySet::all().iter().collect::<Vec<_>>(), Family::ALL.to_vec());
    }
}
