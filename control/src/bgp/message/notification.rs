//! NOTIFICATION (RFC 4271 4.5): the error that ends a session, sent or received.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Error code    | Error subcode |   Data (variable)             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Codes and subcodes are kept as numbers (a peer may send ones we have never heard of) with
//! named constants for every one registered by RFC 4271, RFC 5492, RFC 6608, RFC 7313,
//! RFC 4486 / RFC 9003, RFC 8538 and RFC 9384, and a `Display` that reads as a sentence.

use super::{begin_message, finish_message, message_type, HEADER_LEN, MAX_MESSAGE_LEN};
use std::fmt;

/// Error codes (RFC 4271 4.5, RFC 6608, RFC 7313).
pub mod error_code {
    pub const MESSAGE_HEADER: u8 = 1;
    pub const OPEN_MESSAGE: u8 = 2;
    pub const UPDATE_MESSAGE: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM: u8 = 5;
    pub const CEASE: u8 = 6;
    pub const ROUTE_REFRESH_MESSAGE: u8 = 7;
}

/// Message Header Error subcodes (RFC 4271 6.1).
pub mod header_subcode {
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    pub const BAD_MESSAGE_TYPE: u8 = 3;
}

/// OPEN Message Error subcodes (RFC 4271 6.2, RFC 5492, RFC 9234).
pub mod open_subcode {
    pub const UNSPECIFIC: u8 = 0;
    pub const UNSUPPORTED_VERSION_NUMBER: u8 = 1;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    /// Deprecated (RFC 4271).
    pub const AUTHENTICATION_FAILURE: u8 = 5;
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
    pub const ROLE_MISMATCH: u8 = 11;
}

/// UPDATE Message Error subcodes (RFC 4271 6.3).
pub mod update_subcode {
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    pub const INVALID_ORIGIN_ATTRIBUTE: u8 = 6;
    /// Deprecated (RFC 4271).
    pub const AS_ROUTING_LOOP: u8 = 7;
    pub const INVALID_NEXT_HOP_ATTRIBUTE: u8 = 8;
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    pub const MALFORMED_AS_PATH: u8 = 11;
}

/// Finite State Machine Error subcodes (RFC 6608).
pub mod fsm_subcode {
    pub const UNSPECIFIED: u8 = 0;
    pub const UNEXPECTED_IN_OPEN_SENT: u8 = 1;
    pub const UNEXPECTED_IN_OPEN_CONFIRM: u8 = 2;
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
}

/// Cease subcodes (RFC 4486, RFC 9003, RFC 8538, RFC 9384).
pub mod cease_subcode {
    pub const MAXIMUM_PREFIXES_REACHED: u8 = 1;
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    pub const PEER_DECONFIGURED: u8 = 3;
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    pub const CONNECTION_REJECTED: u8 = 5;
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    pub const OUT_OF_RESOURCES: u8 = 8;
    pub const HARD_RESET: u8 = 9;
    pub const BFD_DOWN: u8 = 10;
}

/// ROUTE-REFRESH Message Error subcodes (RFC 7313).
pub mod route_refresh_subcode {
    pub const INVALID_MESSAGE_LENGTH: u8 = 1;
}

/// The longest shutdown communication (RFC 9003 2).
pub const MAX_SHUTDOWN_COMMUNICATION: usize = 255;

/// A NOTIFICATION message; also the error every decode path returns, since it is exactly what
/// must be sent before the session closes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

impl std::error::Error for Notification {}

impl Notification {
    pub fn new(code: u8, subcode: u8, data: Vec<u8>) -> Self {
        Self { code, subcode, data }
    }

    pub fn hold_timer_expired() -> Self {
        Self::new(error_code::HOLD_TIMER_EXPIRED, 0, Vec::new())
    }

    pub fn cease(subcode: u8) -> Self {
        Self::new(error_code::CEASE, subcode, Vec::new())
    }

    /// Cease / Administrative Shutdown with a shutdown communication (RFC 9003), cut to 255
    /// bytes on a character boundary. An empty text sends no communication.
    pub fn admin_shutdown(text: &str) -> Self {
        Self::with_communication(cease_subcode::ADMINISTRATIVE_SHUTDOWN, text)
    }

    /// Cease / Administrative Reset with a shutdown communication (RFC 9003).
    pub fn admin_reset(text: &str) -> Self {
        Self::with_communication(cease_subcode::ADMINISTRATIVE_RESET, text)
    }

    fn with_communication(subcode: u8, text: &str) -> Self {
        let mut end = text.len().min(MAX_SHUTDOWN_COMMUNICATION);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let text = &text[..end];
        let mut data = Vec::with_capacity(1 + text.len());
        if !text.is_empty() {
            data.push(text.len() as u8);
            data.extend_from_slice(text.as_bytes());
        }
        Self::new(error_code::CEASE, subcode, data)
    }

    /// The shutdown communication of a Cease / Administrative Shutdown or Reset (RFC 9003):
    /// a length octet and that much UTF-8. `None` when there is none or it is not valid
    /// (too long for the data, or not UTF-8), in which case the data is only worth a hex dump.
    pub fn shutdown_communication(&self) -> Option<&str> {
        if self.code != error_code::CEASE
            || !matches!(
                self.subcode,
                cease_subcode::ADMINISTRATIVE_SHUTDOWN | cease_subcode::ADMINISTRATIVE_RESET
            )
        {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        let text = rest.get(..usize::from(len))?;
        if text.is_empty() {
            return None;
        }
        std::str::from_utf8(text).ok()
    }

    pub(super) fn decode_body(body: &[u8]) -> Self {
        // frame_len guarantees the two octets.
        Self::new(body[0], body[1], body[2..].to_vec())
    }

    /// Appends the message. Data that would not fit in 4096 bytes is cut: a NOTIFICATION must
    /// always be sendable.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = begin_message(out, message_type::NOTIFICATION);
        out.push(self.code);
        out.push(self.subcode);
        let room = MAX_MESSAGE_LEN - HEADER_LEN - 2;
        out.extend_from_slice(&self.data[..self.data.len().min(room)]);
        // Cannot fail: the data was cut to fit.
        let _ = finish_message(out, start, "NOTIFICATION");
    }

    /// The error code as words.
    pub fn code_name(&self) -> Option<&'static str> {
        Some(match self.code {
            error_code::MESSAGE_HEADER => "message header error",
            error_code::OPEN_MESSAGE => "OPEN message error",
            error_code::UPDATE_MESSAGE => "UPDATE message error",
            error_code::HOLD_TIMER_EXPIRED => "hold timer expired",
            error_code::FSM => "finite state machine error",
            error_code::CEASE => "cease",
            error_code::ROUTE_REFRESH_MESSAGE => "ROUTE-REFRESH message error",
            _ => return None,
        })
    }

    /// The subcode as words, where the code defines it.
    pub fn subcode_name(&self) -> Option<&'static str> {
        use error_code as c;
        Some(match (self.code, self.subcode) {
            (c::MESSAGE_HEADER, 1) => "connection not synchronized",
            (c::MESSAGE_HEADER, 2) => "bad message length",
            (c::MESSAGE_HEADER, 3) => "bad message type",
            (c::OPEN_MESSAGE, 1) => "unsupported version number",
            (c::OPEN_MESSAGE, 2) => "bad peer AS",
            (c::OPEN_MESSAGE, 3) => "bad BGP identifier",
            (c::OPEN_MESSAGE, 4) => "unsupported optional parameter",
            (c::OPEN_MESSAGE, 5) => "authentication failure",
            (c::OPEN_MESSAGE, 6) => "unacceptable hold time",
            (c::OPEN_MESSAGE, 7) => "unsupported capability",
            (c::OPEN_MESSAGE, 11) => "role mismatch",
            (c::UPDATE_MESSAGE, 1) => "malformed attribute list",
            (c::UPDATE_MESSAGE, 2) => "unrecognized well-known attribute",
            (c::UPDATE_MESSAGE, 3) => "missing well-known attribute",
            (c::UPDATE_MESSAGE, 4) => "attribute flags error",
            (c::UPDATE_MESSAGE, 5) => "attribute length error",
            (c::UPDATE_MESSAGE, 6) => "invalid ORIGIN attribute",
            (c::UPDATE_MESSAGE, 7) => "AS routing loop",
            (c::UPDATE_MESSAGE, 8) => "invalid NEXT_HOP attribute",
            (c::UPDATE_MESSAGE, 9) => "optional attribute error",
            (c::UPDATE_MESSAGE, 10) => "invalid network field",
            (c::UPDATE_MESSAGE, 11) => "malformed AS_PATH",
            (c::FSM, 1) => "unexpected message in OpenSent state",
            (c::FSM, 2) => "unexpected message in OpenConfirm state",
            (c::FSM, 3) => "unexpected message in Established state",
            (c::CEASE, 1) => "maximum number of prefixes reached",
            (c::CEASE, 2) => "administrative shutdown",
            (c::CEASE, 3) => "peer de-configured",
            (c::CEASE, 4) => "administrative reset",
            (c::CEASE, 5) => "connection rejected",
            (c::CEASE, 6) => "other configuration change",
            (c::CEASE, 7) => "connection collision resolution",
            (c::CEASE, 8) => "out of resources",
            (c::CEASE, 9) => "hard reset",
            (c::CEASE, 10) => "BFD down",
            (c::ROUTE_REFRESH_MESSAGE, 1) => "invalid message length",
            _ => return None,
        })
    }
}

impl fmt::Display for Notification {
    /// `hold timer expired`, `cease: administrative reset: "maintenance"`,
    /// `UPDATE message error: malformed AS_PATH`, `error 9 subcode 1` for codes we do not know.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(code) = self.code_name() else {
            return write!(f, "error {} subcode {}", self.code, self.subcode);
        };
        f.write_str(code)?;
        match self.subcode_name() {
            Some(sub) => write!(f, ": {sub}")?,
            None if self.subcode != 0 => write!(f, ": subcode {}", self.subcode)?,
            None => {}
        }
        if let Some(text) = self.shutdown_communication() {
            write!(f, ": {text:?}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{decode, DecodeContext, FamilySet, Message};
    use super::*;

    #[test]
    fn display_reads_as_a_sentence() {
        assert_eq!(
            Notification::hold_timer_expired().to_string(),
            "hold timer expired"
        );
        assert_eq!(
            Notification::cease(cease_subcode::ADMINISTRATIVE_RESET).to_string(),
            "cease: administrative reset"
        );
        assert_eq!(
            Notification::new(3, 11, vec![]).to_string(),
            "UPDATE message error: malformed AS_PATH"
        );
        assert_eq!(
            Notification::new(5, 2, vec![]).to_string(),
            "finite state machine error: unexpected message in OpenConfirm state"
        );
        assert_eq!(
            Notification::new(7, 1, vec![]).to_string(),
            "ROUTE-REFRESH message error: invalid message length"
        );
        assert_eq!(Notification::new(2, 0, vec![]).to_string(), "OPEN message error");
        assert_eq!(
            Notification::new(2, 42, vec![]).to_string(),
            "OPEN message error: subcode 42"
        );
        assert_eq!(Notification::new(9, 1, vec![]).to_string(), "error 9 subcode 1");
        assert_eq!(
            Notification::admin_shutdown("moving to a new rack").to_string(),
            "cease: administrative shutdown: \"moving to a new rack\""
        );
    }

    #[test]
    fn shutdown_communication_round_trips_and_is_cut_at_255_bytes() {
        let n = Notification::admin_reset("maintenance");
        assert_eq!(n.data[0], 11);
        assert_eq!(n.shutdown_communication(), Some("maintenance"));
        // 200 two-byte characters: cut to 127 whole characters (254 bytes).
        let long = "é".repeat(200);
        let n = Notification::admin_shutdown(&long);
        assert_eq!(n.data[0], 254);
        assert_eq!(n.shutdown_communication().unwrap().chars().count(), 127);
        // Empty: no communication at all.
        assert!(Notification::admin_shutdown("").data.is_empty());
        // Invalid ones are not decoded.
        for data in [vec![5, b'a'], vec![2, 0xC3, 0x28], vec![0], vec![]] {
            let n = Notification::new(6, 2, data.clone());
            assert_eq!(n.shutdown_communication(), None, "{data:?}");
        }
        // Only for shutdown and reset.
        assert_eq!(
            Notification::new(6, 3, vec![1, b'a']).shutdown_communication(),
            None
        );
    }

    #[test]
    fn wire_bytes_both_ways() {
        // Cease / administrative shutdown, "bye".
        let wire = [
            0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
            0x00, 0x19, 0x03, 0x06, 0x02, 0x03, b'b', b'y', b'e',
        ];
        let ctx = DecodeContext::new(true, true, FamilySet::all());
        let Ok(Message::Notification(n)) = decode(&wire, &ctx) else {
            panic!("not a notification");
        };
        assert_eq!(n, Notification::admin_shutdown("bye"));
        let mut out = Vec::new();
        n.encode(&mut out);
        assert_eq!(out, wire);
    }

    #[test]
    fn oversized_data_is_cut_to_fit_one_message() {
        let n = Notification::new(3, 1, vec![7; 5000]);
        let mut out = vec![1, 2, 3];
        n.encode(&mut out);
        assert_eq!(out.len(), 3 + MAX_MESSAGE_LEN);
        assert_eq!(&out[3 + 16..3 + 18], &[0x10, 0x00]);
    }
}
