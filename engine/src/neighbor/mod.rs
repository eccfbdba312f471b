//! Neighbour resolution (ARP, RFC 826; IPv6 Neighbor Discovery, RFC 4861) as pure logic, with
//! no I/O and a caller-provided clock in milliseconds:
//!
//! - [`table`]: the [`NeighborTable`] of (port, address) entries with their states, bounded
//!   hold queues of frame handles and timers ([`NeighborTable::poll`]).
//! - [`wire`]: parsing ARP and NS/NA frames and building requests and answers for the router's
//!   own addresses.
//!
//! The slow path drives it: a [`Verdict::Resolve`](crate::packet::Verdict::Resolve) frame goes
//! to [`NeighborTable::hold`], received ARP/NA frames to [`wire::parse`] then
//! [`NeighborTable::learn`], which releases the held frames and says when the adjacency's
//! `dst_mac` must change.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod cache;
pub mod hold;
pub mod table;
pub mod wire;

pub use table::{
    Advert, HoldOutcome, LearnOutcome, NeighborConfig, NeighborCounters, NeighborInfo, NeighborState,
    NeighborTable, PollOutput, Request, HOLD_LEN,
};
pub use wire::{parse, NeighborMessage, ParseError};

#[cfg(test)]
mod tests;
