//! NOTIFICATION contents as the session state machine sends and reports them: error codes and
//! subcodes (RFC 4271 4.5 and 6; RFC 4486 and RFC 8538 Cease subcodes; RFC 6608 FSM error
//! subcodes; RFC 5492 Unsupported Capability; RFC 9003 shutdown communication), with the
//! names the CLI prints. The wire codec turns a [`Notification`] into bytes and back; this
//! module never sees a socket.

use std::fmt;

/// Error codes (RFC 4271 4.5, RFC 6608 3, RFC 7313 5, RFC 9687 3).
pub mod code {
    pub const MESSAGE_HEADER: u8 = 1;
    pub const OPEN: u8 = 2;
    pub const UPDATE: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM: u8 = 5;
    pub const CEASE: u8 = 6;
    pub const ROUTE_REFRESH: u8 = 7;
    pub const SEND_HOLD_TIMER_EXPIRED: u8 = 8;
}

/// OPEN Message Error subcodes (RFC 4271 6.2, RFC 5492 5, RFC 9234 4.2).
pub mod open_subcode {
    pub const UNSUPPORTED_VERSION: u8 = 1;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
    pub const ROLE_MISMATCH: u8 = 11;
}

/// Finite State Machine Error subcodes (RFC 6608 3).
pub mod fsm_subcode {
    pub const UNSPECIFIED: u8 = 0;
    pub const UNEXPECTED_IN_OPEN_SENT: u8 = 1;
    pub const UNEXPECTED_IN_OPEN_CONFIRM: u8 = 2;
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
}

/// Cease subcodes (RFC 4486 4, RFC 8538 3, RFC 9384 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Cease {
    MaximumPrefixesReached = 1,
    AdministrativeShutdown = 2,
    PeerDeconfigured = 3,
    AdministrativeReset = 4,
    ConnectionRejected = 5,
    OtherConfigurationChange = 6,
    ConnectionCollisionResolution = 7,
    OutOfResources = 8,
    HardReset = 9,
    BfdDown = 10,
}

impl Cease {
    pub fn subcode(self) -> u8 {
        self as u8
    }

    pub fn from_subcode(subcode: u8) -> Option<Self> {
        Some(match subcode {
            1 => Self::MaximumPrefixesReached,
            2 => Self::AdministrativeShutdown,
            3 => Self::PeerDeconfigured,
            4 => Self::AdministrativeReset,
            5 => Self::ConnectionRejected,
            6 => Self::OtherConfigurationChange,
            7 => Self::ConnectionCollisionResolution,
            8 => Self::OutOfResources,
            9 => Self::HardReset,
            10 => Self::BfdDown,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::MaximumPrefixesReached => "maximum number of prefixes reached",
            Self::AdministrativeShutdown => "administrative shutdown",
            Self::PeerDeconfigured => "peer de-configured",
            Self::AdministrativeReset => "administrative reset",
            Self::ConnectionRejected => "connection rejected",
            Self::OtherConfigurationChange => "other configuration change",
            Self::ConnectionCollisionResolution => "connection collision resolution",
            Self::OutOfResources => "out of resources",
            Self::HardReset => "hard reset",
            Self::BfdDown => "BFD down",
        }
    }

    /// Whether a shutdown communication may ride along (RFC 9003 2: administrative shutdown
    /// and administrative reset only).
    pub fn carries_text(self) -> bool {
        matches!(self, Self::AdministrativeShutdown | Self::AdministrativeReset)
    }
}

impl fmt::Display for Cease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The longest shutdown communication, in octets (RFC 9003 2).
pub const MAX_SHUTDOWN_TEXT: usize = 255;

/// A NOTIFICATION: error code, subcode and data (RFC 4271 4.5).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

impl Notification {
    pub fn new(code: u8, subcode: u8, data: Vec<u8>) -> Self {
        Self { code, subcode, data }
    }

    /// A Cease; `text` becomes an RFC 9003 shutdown communication (length octet, then UTF-8
    /// cut at a character boundary to 255 octets) for the two subcodes that carry one, and is
    /// dropped for the others. An empty text sends no data at all, as FRR and BIRD do.
    pub fn cease(cease: Cease, text: Option<&str>) -> Self {
        let data = match text {
            Some(t) if cease.carries_text() && !t.is_empty() => {
                let t = truncate_utf8(t, MAX_SHUTDOWN_TEXT);
                let mut d = Vec::with_capacity(t.len() + 1);
                // Truncated to 255 octets just above, so the length fits.
                d.push(u8::try_from(t.len()).unwrap_or(u8::MAX));
                d.extend_from_slice(t.as_bytes());
                d
            }
            _ => Vec::new(),
        };
        Self::new(code::CEASE, cease.subcode(), data)
    }

    /// Hold Timer Expired (RFC 4271 6.5).
    pub fn hold_timer_expired() -> Self {
        Self::new(code::HOLD_TIMER_EXPIRED, 0, Vec::new())
    }

    /// The Cease subcode, if this is a Cease with a known one.
    pub fn cease_subcode(&self) -> Option<Cease> {
        if self.code == code::CEASE {
            Cease::from_subcode(self.subcode)
        } else {
            None
        }
    }

    /// The RFC 9003 shutdown communication of an administrative shutdown or reset, when the
    /// data holds a well-formed one (length octet, then that many octets of UTF-8).
    pub fn shutdown_text(&self) -> Option<&str> {
        if !self.cease_subcode().is_some_and(Cease::carries_text) {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        let text = rest.get(..usize::from(len))?;
        if text.is_empty() {
            return None;
        }
        std::str::from_utf8(text).ok()
    }

    /// The name of the error code ("cease"), or `None` for one RFC 4271 and its updates do
    /// not define.
    pub fn code_name(&self) -> Option<&'static str> {
        Some(match self.code {
            code::MESSAGE_HEADER => "message header error",
            code::OPEN => "open message error",
            code::UPDATE => "update message error",
            code::HOLD_TIMER_EXPIRED => "hold timer expired",
            code::FSM => "finite state machine error",
            code::CEASE => "cease",
            code::ROUTE_REFRESH => "route refresh message error",
            code::SEND_HOLD_TIMER_EXPIRED => "send hold timer expired",
            _ => return None,
        })
    }

    /// The name of the subcode ("administrative reset"), or `None` when the code has no
    /// subcodes (subcode 0) or the pair is not one we know.
    pub fn subcode_name(&self) -> Option<&'static str> {
        Some(match (self.code, self.subcode) {
            (code::MESSAGE_HEADER, 1) => "connection not synchronized",
            (code::MESSAGE_HEADER, 2) => "bad message length",
            (code::MESSAGE_HEADER, 3) => "bad message type",
            (code::OPEN, open_subcode::UNSUPPORTED_VERSION) => "unsupported version number",
            (code::OPEN, open_subcode::BAD_PEER_AS) => "bad peer AS",
            (code::OPEN, open_subcode::BAD_BGP_IDENTIFIER) => "bad BGP identifier",
            (code::OPEN, open_subcode::UNSUPPORTED_OPTIONAL_PARAMETER) => "unsupported optional parameter",
            (code::OPEN, open_subcode::UNACCEPTABLE_HOLD_TIME) => "unacceptable hold time",
            (code::OPEN, open_subcode::UNSUPPORTED_CAPABILITY) => "unsupported capability",
            (code::OPEN, open_subcode::ROLE_MISMATCH) => "role mismatch",
            (code::UPDATE, 1) => "malformed attribute list",
            (code::UPDATE, 2) => "unrecognized well-known attribute",
            (code::UPDATE, 3) => "missing well-known attribute",
            (code::UPDATE, 4) => "attribute flags error",
            (code::UPDATE, 5) => "attribute length error",
            (code::UPDATE, 6) => "invalid ORIGIN attribute",
            (code::UPDATE, 8) => "invalid NEXT_HOP attribute",
            (code::UPDATE, 9) => "optional attribute error",
            (code::UPDATE, 10) => "invalid network field",
            (code::UPDATE, 11) => "malformed AS_PATH",
            (code::FSM, fsm_subcode::UNEXPECTED_IN_OPEN_SENT) => "unexpected message in OpenSent state",
            (code::FSM, fsm_subcode::UNEXPECTED_IN_OPEN_CONFIRM) => "unexpected message in OpenConfirm state",
            (code::FSM, fsm_subcode::UNEXPECTED_IN_ESTABLISHED) => "unexpected message in Established state",
            (code::CEASE, s) => Cease::from_subcode(s)?.as_str(),
            (code::ROUTE_REFRESH, 1) => "invalid message length",
            _ => return None,
        })
    }
}

impl fmt::Display for Notification {
    /// `cease/administrative reset: "maintenance"`, `hold timer expired`, `error 42/7`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code_name(), self.subcode_name()) {
            (Some(c), Some(s)) => write!(f, "{c}/{s}")?,
            (Some(c), None) if self.subcode == 0 => f.write_str(c)?,
            (Some(c), None) => write!(f, "{c}/subcode {}", self.subcode)?,
            (None, _) => write!(f, "error {}/{}", self.code, self.subcode)?,
        }
        if let Some(text) = self.shutdown_text() {
            // Debug quoting escapes control characters: the text comes from the peer and
            // ends up on an operator's terminal.
            write!(f, ": {text:?}")?;
        }
        Ok(())
    }
}

/// The longest prefix of `s` of at most `max` octets that ends on a character boundary.
fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rfcs() {
        let n = Notification::cease(Cease::AdministrativeReset, None);
        assert_eq!(n.to_string(), "cease/administrative reset");
        assert_eq!(
            Notification::hold_timer_expired().to_string(),
            "hold timer expired"
        );
        assert_eq!(
            Notification::new(code::FSM, 2, vec![]).to_string(),
            "finite state machine error/unexpected message in OpenConfirm state"
        );
        assert_eq!(
            Notification::new(code::OPEN, 2, vec![]).to_string(),
            "open message error/bad peer AS"
        );
        assert_eq!(
            Notification::new(code::CEASE, 99, vec![]).to_string(),
            "cease/subcode 99"
        );
        assert_eq!(Notification::new(42, 7, vec![]).to_string(), "error 42/7");
        for s in 1..=10 {
            assert_eq!(Cease::from_subcode(s).map(Cease::subcode), Some(s));
        }
        assert_eq!(Cease::from_subcode(0), None);
    }

    #[test]
    fn shutdown_text_is_length_prefixed_utf8_for_shutdown_and_reset_only() {
        let n = Notification::cease(Cease::AdministrativeShutdown, Some("maintenance"));
        assert_eq!(n.data, b"\x0bmaintenance");
        assert_eq!(n.shutdown_text(), Some("maintenance"));
        assert_eq!(n.to_string(), "cease/administrative shutdown: \"maintenance\"");
        // Other Cease subcodes carry no text; an empty text sends no data.
        assert!(Notification::cease(Cease::PeerDeconfigured, Some("x"))
            .data
            .is_empty());
        assert!(Notification::cease(Cease::AdministrativeReset, Some(""))
            .data
            .is_empty());
        // Cut at 255 octets, on a character boundary (each 'é' is two octets).
        let long = "é".repeat(200);
        let n = Notification::cease(Cease::AdministrativeReset, Some(&long));
        assert_eq!(n.data.len(), 1 + 254);
        assert_eq!(n.data[0], 254);
        assert_eq!(n.shutdown_text().map(str::len), Some(254));
    }

    #[test]
    fn a_malformed_shutdown_text_from_a_peer_is_ignored_and_control_characters_escaped() {
        // Length beyond the data, invalid UTF-8, no data at all.
        for data in [&b"\x09short"[..], b"\x02\xff\xfe", b""] {
            let n = Notification::new(code::CEASE, 2, data.to_vec());
            assert_eq!(n.shutdown_text(), None);
            assert_eq!(n.to_string(), "cease/administrative shutdown");
        }
        let n = Notification::new(code::CEASE, 4, b"\x04a\nb\x1b".to_vec());
        assert_eq!(n.to_string(), "cease/administrative reset: \"a\\nb\\u{1b}\"");
    }
}
