//! What the xroute processes must agree on, defined once: the delta channel's record layout
//! ([`delta`]), the shared-memory file with its header, ring and stats segment ([`shm`]), and the
//! counters the engine exports ([`stats`]); and how both print a fatal error ([`report`]).
//!
//! Everything here has explicit widths, a magic and a layout version; nothing relies on Rust's
//! struct layout, so the engine and the control process may be built separately.

pub mod delta;
pub mod query;
pub mod report;
pub mod shm;
pub mod stats;
