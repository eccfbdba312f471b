//! Next-hop MAC addresses for the forwarding workers.
//!
//! The kernel is the router's only ARP (RFC 826) and IPv6 Neighbor Discovery (RFC 4861)
//! speaker: the XDP program passes ARP and ND frames to the kernel's stack, the engine's
//! slow-path thread asks the kernel to resolve a next hop over rtnetlink (a neighbour update
//! with `NTF_USE`) and mirrors the kernel's neighbour table into a [`cache`]; the workers only
//! read that copy. One neighbour state machine on the box rather than two that can disagree:
//! the router's own traffic (BGP sessions, pings from the router) and forwarded traffic use the
//! same MACs, and everything operators know keeps working (static entries with `ip neigh`,
//! proxy ARP, garbage collection and the `net.ipv{4,6}.neigh.*` settings, duplicate address
//! detection). The price is a netlink round trip on a miss, which only the first frames to a
//! new next hop pay.
//!
//! - [`cache`]: the fixed-capacity (port, address) -> MAC map, written by the slow-path thread
//!   only and read lock-free by every worker, with a used flag per entry for the refresh pass.
//! - [`hold`]: each worker's bounded queues of frames waiting for a MAC, with the timers that
//!   ask the slow path again and give up.
//!
//! The rtnetlink side (resolve requests, following the kernel's neighbour changes into the
//! [`NeighborCacheWriter`]) belongs to the slow path and is not part of this module.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod cache;
pub mod hold;

pub use cache::{CacheFull, NeighborCacheReader, NeighborCacheWriter, MAX_PROBE};
pub use hold::{Hold, HoldQueues, DEFAULT_RETRY_MS, DEFAULT_TIMEOUT_MS};
