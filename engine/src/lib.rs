//! xroute's data plane.
//!
//! - [`fib`]: the forwarding table (Poptrie for IPv4 and IPv6, next-hop groups, adjacencies),
//!   written by one thread and read lock-free by the forwarding workers.
//! - [`cpu`]: start-up checks for the CPU features the build assumes.
//! - [`table`]: reading prefix lists (such as a full Internet table) from files.

pub mod cpu;
pub mod fib;
pub mod table;
