//! BGP-4 (RFC 4271) in the control process: 4-octet AS numbers (RFC 6793), multiprotocol
//! IPv4/IPv6 unicast (RFC 4760), route refresh (RFC 2918), communities (RFC 1997) and revised
//! error handling (RFC 7606).
//!
//! Like every protocol here, the parts that decide are pure and driven by typed events, so that
//! tests need no sockets: `types` (the shared vocabulary), `message` (the wire codec),
//! `fsm` (the session state machine), `decision` (best-path selection), `policy` (import and
//! export filters); a thin I/O layer binds them to the kernel's TCP sockets.

pub mod decision;
pub mod fsm;
pub mod io;
pub mod message;
pub mod policy;
pub mod service;
pub mod speaker;
pub mod types;
