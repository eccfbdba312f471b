//! The engine's counters as they lie in the shared-memory stats segment: one slot per (core,
//! port), each slot a fixed run of 64-bit counters. Workers bump only their own slots (relaxed
//! stores, no sharing of cache lines); readers sum slots without stopping forwarding.

/// Why the data plane dropped a packet. The numbering is part of the layout: append only, and
/// bump [`crate::shm::LAYOUT_VERSION`] when the list changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum DropReason {
    /// Not IPv4/IPv6 or a version field that disagrees with the EtherType.
    BadVersion = 0,
    /// IPv4 IHL below 5 or beyond the packet.
    BadHeaderLength,
    /// Total/payload length disagrees with the frame.
    BadLength,
    /// IPv4 header checksum wrong.
    BadChecksum,
    /// Frame shorter than its headers.
    Truncated,
    /// Martian source or destination (RFC 1812 5.3.7).
    Martian,
    /// TTL or hop limit expired.
    TtlExceeded,
    /// No route to the destination.
    NoRoute,
    /// The route is a blackhole.
    Blackhole,
    /// The route is unreachable (ICMP sent).
    Unreachable,
    /// Too big for the egress MTU with DF set, or IPv6 (ICMP sent).
    TooBig,
    /// Next hop unresolved and its hold queue full.
    NeighborHoldFull,
    /// Transmit ring full.
    TxRingFull,
    /// Hand-off ring to another core or the slow path full.
    HandoffRingFull,
    /// ICMP error suppressed by the rate limiter.
    IcmpRateLimited,
    /// Egress port down or unknown.
    PortDown,
    /// The next hop did not answer ARP / neighbour solicitation (frames held for it, or sent to
    /// it while the kernel reports it failed).
    NeighborFailed,
    /// Traffic for the router itself that reached the engine instead of the kernel (the XDP
    /// program's address list lagged behind the interfaces); AF_XDP has no way into the
    /// kernel's stack.
    LocalMissed,
    /// No free UMEM frame for a generated packet (ICMP error, fragment, hand-off copy).
    NoFrame,
    /// The kernel found this worker's AF_XDP receive ring full: the worker fell behind (read
    /// from the socket's `XDP_STATISTICS`, so counted before the worker sees the frame).
    RxRingFull,
    /// The kernel had no free frame on the socket's fill ring for an arriving frame (or the
    /// frame was larger than a UMEM frame); also from `XDP_STATISTICS`.
    RxFillEmpty,
}

impl DropReason {
    /// Every reason, in layout order.
    pub const ALL: [DropReason; 21] = [
        Self::BadVersion,
        Self::BadHeaderLength,
        Self::BadLength,
        Self::BadChecksum,
        Self::Truncated,
        Self::Martian,
        Self::TtlExceeded,
        Self::NoRoute,
        Self::Blackhole,
        Self::Unreachable,
        Self::TooBig,
        Self::NeighborHoldFull,
        Self::TxRingFull,
        Self::HandoffRingFull,
        Self::IcmpRateLimited,
        Self::PortDown,
        Self::NeighborFailed,
        Self::LocalMissed,
        Self::NoFrame,
        Self::RxRingFull,
        Self::RxFillEmpty,
    ];

    /// The name operators see (CLI, metrics).
    pub const fn name(self) -> &'static str {
        match self {
            Self::BadVersion => "bad_version",
            Self::BadHeaderLength => "bad_header_length",
            Self::BadLength => "bad_length",
            Self::BadChecksum => "bad_checksum",
            Self::Truncated => "truncated",
            Self::Martian => "martian",
            Self::TtlExceeded => "ttl_exceeded",
            Self::NoRoute => "no_route",
            Self::Blackhole => "blackhole",
            Self::Unreachable => "unreachable",
            Self::TooBig => "too_big",
            Self::NeighborHoldFull => "neighbor_hold_full",
            Self::TxRingFull => "tx_ring_full",
            Self::HandoffRingFull => "handoff_ring_full",
            Self::IcmpRateLimited => "icmp_rate_limited",
            Self::PortDown => "port_down",
            Self::NeighborFailed => "neighbor_failed",
            Self::LocalMissed => "local_missed",
            Self::NoFrame => "no_frame",
            Self::RxRingFull => "rx_ring_full",
            Self::RxFillEmpty => "rx_fill_empty",
        }
    }
}

/// Counter indices inside a slot.
pub mod counter {
    pub const RX_PACKETS: usize = 0;
    pub const RX_BYTES: usize = 1;
    pub const TX_PACKETS: usize = 2;
    pub const TX_BYTES: usize = 3;
    /// Packets handed to the kernel (the router's own traffic).
    pub const TO_KERNEL: usize = 4;
    /// First drop counter; drop reason `r` is at `DROPS + r as usize`.
    pub const DROPS: usize = 5;
}

/// Counters per slot, rounded up to whole cache lines (4 lines of 8 words).
pub const SLOT_WORDS: usize = 32;
/// Most worker cores the segment has room for.
pub const MAX_CORES: usize = 32;
/// Most ports the segment has room for.
pub const MAX_PORTS: usize = 64;
/// Words in the stats segment.
pub const SEGMENT_WORDS: usize = MAX_CORES * MAX_PORTS * SLOT_WORDS;

const _: () = assert!(counter::DROPS + DropReason::ALL.len() <= SLOT_WORDS);

/// Word offset of a (core, port) slot inside the segment.
pub const fn slot_offset(core: usize, port: usize) -> usize {
    (core * MAX_PORTS + port) * SLOT_WORDS
}

/// Counters of one port, summed over cores (or of one slot).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub to_kernel: u64,
    /// Indexed by `DropReason as usize`.
    pub drops: [u64; DropReason::ALL.len()],
}

impl PortCounters {
    /// Builds from a slot's words.
    pub fn from_slot(words: &[u64]) -> Self {
        let get = |i: usize| words.get(i).copied().unwrap_or(0);
        let mut drops = [0; DropReason::ALL.len()];
        for (i, d) in drops.iter_mut().enumerate() {
            *d = get(counter::DROPS + i);
        }
        Self {
            rx_packets: get(counter::RX_PACKETS),
            rx_bytes: get(counter::RX_BYTES),
            tx_packets: get(counter::TX_PACKETS),
            tx_bytes: get(counter::TX_BYTES),
            to_kernel: get(counter::TO_KERNEL),
            drops,
        }
    }

    /// Adds another slot's counters.
    pub fn add(&mut self, other: &Self) {
        self.rx_packets += other.rx_packets;
        self.rx_bytes += other.rx_bytes;
        self.tx_packets += other.tx_packets;
        self.tx_bytes += other.tx_bytes;
        self.to_kernel += other.to_kernel;
        for (a, b) in self.drops.iter_mut().zip(other.drops) {
            *a += b;
        }
    }

    /// Total drops over every reason.
    pub fn dropped(&self) -> u64 {
        self.drops.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_numbering_matches_all() {
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::ALL.len());
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }

    #[test]
    fn slots_do_not_overlap_and_sum() {
        assert_eq!(slot_offset(0, 1), SLOT_WORDS);
        assert_eq!(slot_offset(1, 0), MAX_PORTS * SLOT_WORDS);
        let mut words = vec![0u64; SLOT_WORDS];
        words[counter::RX_PACKETS] = 5;
        words[counter::DROPS + DropReason::NoRoute as usize] = 2;
        let mut sum = PortCounters::from_slot(&words);
        sum.add(&PortCounters::from_slot(&words));
        assert_eq!(sum.rx_packets, 10);
        assert_eq!(sum.drops[DropReason::NoRoute as usize], 4);
        assert_eq!(sum.dropped(), 4);
    }
}
