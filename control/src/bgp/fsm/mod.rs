//! The BGP session state machine (RFC 4271 8): its vocabulary first, NOTIFICATION codes, the
//! session configuration and the OPEN checks.

mod config;
mod notification;
mod open;

pub use config::{
    Backoff, ConfigError, SessionConfig, DEFAULT_CONNECT_RETRY, DEFAULT_HOLD_TIME, OPEN_HOLD_TIME,
};
pub use notification::{code, fsm_subcode, open_subcode, Cease, Notification, MAX_SHUTDOWN_TEXT};
pub use open::{check_open, LocalOpen, Negotiated, PeerOpen, BGP_VERSION};
