//! The per-packet forwarding work of the AF_XDP workers, on frames in memory (no I/O):
//!
//! - [`wire`]: zero-copy header views (Ethernet with one 802.1Q tag, IPv4, IPv6, ports, UDP,
//!   ICMP) and the Internet checksum (RFC 1071, RFC 1624 incremental update).
//! - [`forward`]: [`forward_batch`] turns a batch of received frames into [`Verdict`]s (transmit
//!   on a port, to the kernel, drop with a [`DropReason`](xroute_common::stats::DropReason),
//!   answer with ICMP, fragment, resolve the neighbour), rewriting forwarded frames in place.
//! - [`icmp`]: [`build_icmp_error`] writes the ICMP error a verdict asks for (slow path).
//! - [`fragment`]: the [`Fragmenter`] cuts a [`Verdict::Fragment`] frame into IPv4 fragments,
//!   written one by one into the caller's buffers.
//!
//! Nothing here allocates, locks, logs or panics per packet: every failure is a verdict.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod forward;
pub mod fragment;
pub mod icmp;
pub mod wire;

pub use forward::{forward_batch, IcmpKind, Scratch, Verdict, MAX_BATCH};
pub use fragment::{FragmentError, Fragmenter};
pub use icmp::build_icmp_error;

#[cfg(test)]
mod tests;
