//! Zero-copy views of the headers the forwarding path reads and rewrites, in the style of
//! smoltcp's `wire` module: a view wraps any `T: AsRef<[u8]>` (setters need `T: AsMut<[u8]>`),
//! field positions are named ranges in a `field` module, and `new_checked` verifies once that
//! every accessor stays within the buffer, so that no accessor can panic afterwards.
//!
//! `new_checked` answers with the [`DropReason`] the data plane counts, so the pipeline turns a
//! malformed header into a verdict with one `match`, without error types in between.
//!
//! Addresses are returned as `Ipv4Addr`/`Ipv6Addr` (`u32::from`/`u128::from` on them is free).

// Every accessor indexes at offsets that `new_checked` (or the constructor's documented
// precondition, for `new_unchecked`) has verified to lie inside the buffer.
#![expect(
    clippy::indexing_slicing,
    reason = "views index fixed header fields that new_checked has bounds-checked"
)]

use std::net::{Ipv4Addr, Ipv6Addr};
use xroute_common::stats::DropReason;

/// A header field: a byte range.
pub type Field = core::ops::Range<usize>;

/// EtherType values (IEEE 802 numbers, <https://www.iana.org/assignments/ieee-802-numbers>).
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    /// IEEE 802.1Q customer VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// IEEE 802.1ad service VLAN tag (QinQ); not parsed, handed to the kernel.
    pub const QINQ: u16 = 0x88a8;
    pub const IPV6: u16 = 0x86dd;
}

/// IP protocol / IPv6 next-header numbers (RFC 790 and the IANA registry).
pub mod protocol {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;
    pub const UDPLITE: u8 = 136;

    /// Transport protocols whose header begins with 16-bit source and destination ports.
    #[inline]
    pub const fn has_ports(p: u8) -> bool {
        matches!(p, TCP | UDP | SCTP | UDPLITE)
    }
}

/// The Internet checksum: RFC 1071 ones' complement sum, RFC 1624 incremental update.
pub mod checksum {
    use std::net::Ipv6Addr;

    /// Partial ones' complement sum of `data` as big-endian 16-bit words (an odd final byte is
    /// padded with zero, RFC 1071 section 4.1). Unfolded: combine partial sums with `+` (as long
    /// as fewer than 2^32 of them are added) and [`fold`] at the end. Summing 32-bit words is the
    /// same as summing their two halves because 2^16 = 1 modulo 2^16 - 1 (RFC 1071 section 2(B)).
    #[inline]
    pub fn sum(data: &[u8]) -> u64 {
        let mut acc = 0u64;
        let mut words = data.chunks_exact(4);
        for w in &mut words {
            if let Ok(w) = <[u8; 4]>::try_from(w) {
                acc += u64::from(u32::from_be_bytes(w));
            }
        }
        let mut rest = words.remainder().chunks_exact(2);
        for w in &mut rest {
            if let Ok(w) = <[u8; 2]>::try_from(w) {
                acc += u64::from(u16::from_be_bytes(w));
            }
        }
        if let Some(&b) = rest.remainder().first() {
            acc += u64::from(b) << 8;
        }
        acc
    }

    /// Folds a partial sum to 16 bits with end-around carries, in four fixed steps (no
    /// data-dependent loop, so no branch to mispredict): 64 -> 33 -> 32 bits, then 32 -> 17 ->
    /// 16 bits. Each second step cannot carry again: when the first left a carry, its low part
    /// is at most all ones minus one.
    #[inline]
    pub fn fold(acc: u64) -> u16 {
        let a = (acc & 0xffff_ffff) + (acc >> 32);
        let a = (a & 0xffff_ffff) + (a >> 32);
        let a = (a & 0xffff) + (a >> 16);
        let a = (a & 0xffff) + (a >> 16);
        a as u16
    }

    /// [`sum`] of a fixed-size block (an option-less IPv4 header), fully unrolled.
    #[inline(always)]
    pub fn sum_array<const N: usize>(data: &[u8; N]) -> u64 {
        sum(data.as_slice())
    }

    /// The checksum field value for `data` whose own checksum field is zero: the ones'
    /// complement of the ones' complement sum.
    #[inline]
    pub fn checksum(data: &[u8]) -> u16 {
        !fold(sum(data))
    }

    /// True when `data`, checksum field included, sums to all ones (RFC 1071 section 1(3)).
    #[inline]
    pub fn verify(data: &[u8]) -> bool {
        fold(sum(data)) == 0xffff
    }

    /// RFC 1624 equation 3: the new checksum after one 16-bit word of the covered data changes
    /// from `old` to `new`, `HC' = ~(~HC + ~m + m')`. Unlike equation 2 it never produces the
    /// 0x0000 / 0xffff confusion for a header whose sum is non-zero, so it equals a full
    /// recomputation (checked for every TTL by a property test).
    #[inline]
    pub fn update(hc: u16, old: u16, new: u16) -> u16 {
        !fold(u64::from(!hc) + u64::from(!old) + u64::from(new))
    }

    /// Partial sum of the IPv6 pseudo-header (RFC 8200 section 8.1): source, destination,
    /// upper-layer packet length (32 bits), three zero bytes and the next header.
    #[inline]
    pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, length: u32, next_header: u8) -> u64 {
        sum(&src.octets()) + sum(&dst.octets()) + u64::from(length) + u64::from(next_header)
    }
}

/// An Ethernet II frame (IEEE 802.3 clause 3.2.6 with the EtherType interpretation of the
/// length/type field), optionally with one IEEE 802.1Q tag after the source address:
///
/// ```text
///  0               6              12      14      16      18
/// +---------------+---------------+-------+-------+-------+----------
/// |  destination  |    source     | type  |  TCI  | type  | payload     (type = 0x8100)
/// +---------------+---------------+-------+-------+-------+----------
/// |  destination  |    source     | type  | payload                     (otherwise)
/// ```
///
/// The frame check sequence is not part of the buffer (NICs strip it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

/// Ethernet field positions.
pub mod eth_field {
    use super::Field;
    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    /// 802.1Q tag control information (PCP, DEI, VLAN id), when the outer type is 0x8100.
    pub const VLAN_TCI: Field = 14..16;
    /// The type after the 802.1Q tag.
    pub const INNER_ETHERTYPE: Field = 16..18;
    pub const HEADER_LEN: usize = 14;
    pub const VLAN_HEADER_LEN: usize = 18;
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps a buffer known to hold the whole header (and the tag when the type says 0x8100).
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after checking that the header (with its tag, if any) fits.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        let f = Self::new_unchecked(buffer);
        let len = f.buffer.as_ref().len();
        // `||` short-circuits: the type field is read only when the untagged header fits.
        if len < eth_field::HEADER_LEN
            || (f.ethertype() == ethertype::VLAN && len < eth_field::VLAN_HEADER_LEN)
        {
            return Err(DropReason::Truncated);
        }
        Ok(f)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn dst_addr(&self) -> [u8; 6] {
        let b = self.buffer.as_ref();
        [b[0], b[1], b[2], b[3], b[4], b[5]]
    }

    #[inline]
    pub fn src_addr(&self) -> [u8; 6] {
        let b = self.buffer.as_ref();
        [b[6], b[7], b[8], b[9], b[10], b[11]]
    }

    /// The outer type field (0x8100 for a tagged frame).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[12], b[13]])
    }

    /// True when one 802.1Q tag follows the source address.
    #[inline]
    pub fn is_vlan(&self) -> bool {
        self.ethertype() == ethertype::VLAN
    }

    /// The 802.1Q tag control information, if tagged.
    #[inline]
    pub fn vlan_tci(&self) -> Option<u16> {
        let b = self.buffer.as_ref();
        self.is_vlan().then(|| u16::from_be_bytes([b[14], b[15]]))
    }

    /// The VLAN id (low 12 bits of the TCI), if tagged.
    #[inline]
    pub fn vlan_id(&self) -> Option<u16> {
        self.vlan_tci().map(|t| t & 0x0fff)
    }

    /// The type of the payload: the inner type of a tagged frame.
    #[inline]
    pub fn payload_ethertype(&self) -> u16 {
        let b = self.buffer.as_ref();
        if self.is_vlan() {
            u16::from_be_bytes([b[16], b[17]])
        } else {
            self.ethertype()
        }
    }

    /// 14, or 18 with a tag.
    #[inline]
    pub fn header_len(&self) -> usize {
        if self.is_vlan() {
            eth_field::VLAN_HEADER_LEN
        } else {
            eth_field::HEADER_LEN
        }
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    #[inline]
    pub fn set_dst_addr(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[eth_field::DESTINATION].copy_from_slice(&mac);
    }

    #[inline]
    pub fn set_src_addr(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[eth_field::SOURCE].copy_from_slice(&mac);
    }

    /// Writes an untagged type field. The buffer must hold 14 bytes.
    pub fn set_ethertype(&mut self, ty: u16) {
        self.buffer.as_mut()[eth_field::ETHERTYPE].copy_from_slice(&ty.to_be_bytes());
    }

    /// Writes an 802.1Q tag (outer type 0x8100, `tci`, then `inner`). The buffer must hold 18
    /// bytes.
    pub fn set_vlan(&mut self, tci: u16, inner: u16) {
        let b = self.buffer.as_mut();
        b[eth_field::ETHERTYPE].copy_from_slice(&ethertype::VLAN.to_be_bytes());
        b[eth_field::VLAN_TCI].copy_from_slice(&tci.to_be_bytes());
        b[eth_field::INNER_ETHERTYPE].copy_from_slice(&inner.to_be_bytes());
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        &mut self.buffer.as_mut()[h..]
    }
}

/// An IPv4 header and its payload (RFC 791 section 3.1):
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |Version|  IHL  |   DSCP    |ECN|          Total Length         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |         Identification        |Flags|      Fragment Offset    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  Time to Live |    Protocol   |         Header Checksum       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                       Source Address                          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                    Destination Address                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                    Options (IHL > 5)                          |
/// ```
///
/// The buffer may be longer than Total Length (Ethernet padding); [`Self::payload`] stops at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

/// IPv4 field positions (RFC 791 section 3.1).
pub mod ipv4_field {
    use super::Field;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
    /// Header without options.
    pub const HEADER_LEN: usize = 20;
    /// Don't Fragment and More Fragments bits of the flags/offset word.
    pub const FLAG_DF: u16 = 0x4000;
    pub const FLAG_MF: u16 = 0x2000;
    pub const OFFSET_MASK: u16 = 0x1fff;
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps a buffer that holds at least 20 bytes and the whole header (IHL * 4 bytes).
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Checks what RFC 1812 section 5.2.2 asks of a router before it forwards: the buffer holds
    /// a minimal header (else `Truncated`), the version is 4 (`BadVersion`), IHL is at least 5
    /// and the header fits (`BadHeaderLength`), and Total Length covers the header and fits in
    /// the buffer (`BadLength`). The header checksum is checked separately
    /// ([`Self::verify_checksum`]).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        let p = Self::new_unchecked(buffer);
        let len = p.buffer.as_ref().len();
        if len < ipv4_field::HEADER_LEN {
            return Err(DropReason::Truncated);
        }
        if p.version() != 4 {
            return Err(DropReason::BadVersion);
        }
        let hl = p.header_len();
        if hl < ipv4_field::HEADER_LEN || hl > len {
            return Err(DropReason::BadHeaderLength);
        }
        let total = usize::from(p.total_len());
        if total < hl || total > len {
            return Err(DropReason::BadLength);
        }
        Ok(p)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[ipv4_field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[ipv4_field::VER_IHL] & 0x0f) * 4
    }

    /// Differentiated services code point (RFC 2474).
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[ipv4_field::DSCP_ECN] >> 2
    }

    /// Explicit congestion notification bits (RFC 3168).
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[ipv4_field::DSCP_ECN] & 3
    }

    #[inline]
    pub fn total_len(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[2], b[3]])
    }

    #[inline]
    pub fn ident(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[4], b[5]])
    }

    #[inline]
    fn flags_offset(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[6], b[7]])
    }

    /// Don't Fragment.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.flags_offset() & ipv4_field::FLAG_DF != 0
    }

    /// More Fragments.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.flags_offset() & ipv4_field::FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (self.flags_offset() & ipv4_field::OFFSET_MASK) << 3
    }

    /// True for any fragment of a fragmented datagram (MF set or a non-zero offset).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flags_offset() & (ipv4_field::FLAG_MF | ipv4_field::OFFSET_MASK) != 0
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[ipv4_field::TTL]
    }

    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[ipv4_field::PROTOCOL]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[10], b[11]])
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[12], b[13], b[14], b[15])
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[16], b[17], b[18], b[19])
    }

    /// The header, options included.
    #[inline]
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// Options (empty when IHL is 5).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[ipv4_field::HEADER_LEN..self.header_len()]
    }

    /// True when the header checksum is right (RFC 791 section 3.1, RFC 1071).
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        // The common option-less header as a fixed-size array, so the sum unrolls.
        match <&[u8; ipv4_field::HEADER_LEN]>::try_from(self.header()) {
            Ok(h) => checksum::fold(checksum::sum_array(h)) == 0xffff,
            Err(_) => checksum::verify(self.header()),
        }
    }

    /// From the end of the header to Total Length (`new_checked` made `header_len <= total_len
    /// <= buffer length`).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets version 4 and the header length in bytes (a multiple of 4, 20 ..= 60).
    pub fn set_header_len(&mut self, len: usize) {
        self.buffer.as_mut()[ipv4_field::VER_IHL] = 0x40 | ((len / 4) as u8 & 0x0f);
    }

    pub fn set_dscp_ecn(&mut self, dscp: u8, ecn: u8) {
        self.buffer.as_mut()[ipv4_field::DSCP_ECN] = (dscp << 2) | (ecn & 3);
    }

    pub fn set_total_len(&mut self, len: u16) {
        self.buffer.as_mut()[ipv4_field::LENGTH].copy_from_slice(&len.to_be_bytes());
    }

    pub fn set_ident(&mut self, id: u16) {
        self.buffer.as_mut()[ipv4_field::IDENT].copy_from_slice(&id.to_be_bytes());
    }

    /// Flags and fragment offset (in bytes, a multiple of 8).
    pub fn set_frag(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let mut w = (offset >> 3) & ipv4_field::OFFSET_MASK;
        if dont_frag {
            w |= ipv4_field::FLAG_DF;
        }
        if more_frags {
            w |= ipv4_field::FLAG_MF;
        }
        self.buffer.as_mut()[ipv4_field::FLG_OFF].copy_from_slice(&w.to_be_bytes());
    }

    /// Sets the TTL without touching the checksum.
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[ipv4_field::TTL] = ttl;
    }

    pub fn set_protocol(&mut self, p: u8) {
        self.buffer.as_mut()[ipv4_field::PROTOCOL] = p;
    }

    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        self.buffer.as_mut()[ipv4_field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }

    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[ipv4_field::SRC_ADDR].copy_from_slice(&a.octets());
    }

    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[ipv4_field::DST_ADDR].copy_from_slice(&a.octets());
    }

    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.header());
        self.set_checksum(c);
    }

    /// Decrements the TTL (which must be at least 1) and updates the checksum incrementally
    /// (RFC 1624 equation 3 on the TTL/protocol word; RFC 1812 section 5.3.1 allows it).
    #[inline]
    pub fn decrement_ttl(&mut self) {
        let ttl = self.ttl();
        let proto = self.protocol();
        let old = u16::from_be_bytes([ttl, proto]);
        let new = u16::from_be_bytes([ttl.wrapping_sub(1), proto]);
        let c = checksum::update(self.checksum(), old, new);
        self.set_ttl(ttl.wrapping_sub(1));
        self.set_checksum(c);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (h, t) = (self.header_len(), usize::from(self.total_len()));
        &mut self.buffer.as_mut()[h..t]
    }
}

/// An IPv6 fixed header and its payload (RFC 8200 section 3):
///
/// ```text
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |Version| Traffic Class |           Flow Label                  |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |         Payload Length        |  Next Header  |   Hop Limit   |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                  Source Address (128 bits)                    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |               Destination Address (128 bits)                  |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// Extension headers are payload here: a router forwards them untouched (RFC 8200 section 4).
/// Jumbograms (RFC 2675, Payload Length 0) are not supported: such a packet has no payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

/// IPv6 field positions (RFC 8200 section 3).
pub mod ipv6_field {
    use super::Field;
    pub const VER_TC_FLOW: Field = 0..4;
    pub const PAYLOAD_LEN: Field = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
    pub const HEADER_LEN: usize = 40;
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps a buffer that holds at least 40 bytes.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Checks that the fixed header fits (`Truncated`), the version is 6 (`BadVersion`) and
    /// the payload fits in the buffer (`BadLength`).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        let p = Self::new_unchecked(buffer);
        let len = p.buffer.as_ref().len();
        if len < ipv6_field::HEADER_LEN {
            return Err(DropReason::Truncated);
        }
        if p.version() != 6 {
            return Err(DropReason::BadVersion);
        }
        if ipv6_field::HEADER_LEN + usize::from(p.payload_len()) > len {
            return Err(DropReason::BadLength);
        }
        Ok(p)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn word0(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.word0() >> 20) as u8
    }

    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.word0() & 0x000f_ffff
    }

    #[inline]
    pub fn payload_len(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[4], b[5]])
    }

    /// Header plus payload length.
    #[inline]
    pub fn total_len(&self) -> usize {
        ipv6_field::HEADER_LEN + usize::from(self.payload_len())
    }

    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[ipv6_field::NEXT_HEADER]
    }

    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[ipv6_field::HOP_LIMIT]
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[ipv6_field::SRC_ADDR]);
        Ipv6Addr::from(a)
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[ipv6_field::DST_ADDR]);
        Ipv6Addr::from(a)
    }

    /// The payload (extension headers included), Payload Length bytes.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[ipv6_field::HEADER_LEN..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Writes version 6, the traffic class and the flow label.
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let w = (6u32 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        self.buffer.as_mut()[ipv6_field::VER_TC_FLOW].copy_from_slice(&w.to_be_bytes());
    }

    pub fn set_payload_len(&mut self, len: u16) {
        self.buffer.as_mut()[ipv6_field::PAYLOAD_LEN].copy_from_slice(&len.to_be_bytes());
    }

    pub fn set_next_header(&mut self, nh: u8) {
        self.buffer.as_mut()[ipv6_field::NEXT_HEADER] = nh;
    }

    #[inline]
    pub fn set_hop_limit(&mut self, h: u8) {
        self.buffer.as_mut()[ipv6_field::HOP_LIMIT] = h;
    }

    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[ipv6_field::SRC_ADDR].copy_from_slice(&a.octets());
    }

    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[ipv6_field::DST_ADDR].copy_from_slice(&a.octets());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let t = self.total_len();
        &mut self.buffer.as_mut()[ipv6_field::HEADER_LEN..t]
    }
}

/// The first four bytes of a TCP (RFC 9293 section 3.1), UDP (RFC 768), SCTP (RFC 9260 section
/// 3.1) or UDP-Lite (RFC 3828) header: source and destination port, all the flow hash needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ports<T: AsRef<[u8]>> {
    buffer: T,
}

/// Port field positions, shared by TCP, UDP, SCTP and UDP-Lite.
pub mod ports_field {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LEN: usize = 4;
}

impl<T: AsRef<[u8]>> Ports<T> {
    /// `None` when fewer than four bytes are present.
    #[inline]
    pub fn new_checked(buffer: T) -> Option<Self> {
        (buffer.as_ref().len() >= ports_field::LEN).then_some(Self { buffer })
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[0], b[1]])
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[2], b[3]])
    }
}

/// A UDP header (RFC 768):
///
/// ```text
/// +--------+--------+--------+--------+
/// |   Source Port   | Destination Port|
/// +--------+--------+--------+--------+
/// |     Length      |    Checksum     |
/// +--------+--------+--------+--------+
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

/// UDP field positions (RFC 768).
pub mod udp_field {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
    pub const HEADER_LEN: usize = 8;
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// `Truncated` when the 8-byte header does not fit.
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        if buffer.as_ref().len() < udp_field::HEADER_LEN {
            return Err(DropReason::Truncated);
        }
        Ok(Self { buffer })
    }

    pub fn src_port(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[0], b[1]])
    }

    pub fn dst_port(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[2], b[3]])
    }

    pub fn len(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[4], b[5]])
    }

    /// True when the Length field is 0 (which RFC 768 does not allow).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn checksum(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[6], b[7]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    pub fn set_src_port(&mut self, p: u16) {
        self.buffer.as_mut()[udp_field::SRC_PORT].copy_from_slice(&p.to_be_bytes());
    }

    pub fn set_dst_port(&mut self, p: u16) {
        self.buffer.as_mut()[udp_field::DST_PORT].copy_from_slice(&p.to_be_bytes());
    }

    pub fn set_len(&mut self, l: u16) {
        self.buffer.as_mut()[udp_field::LENGTH].copy_from_slice(&l.to_be_bytes());
    }

    pub fn set_checksum(&mut self, c: u16) {
        self.buffer.as_mut()[udp_field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }
}

/// The common ICMP header of ICMPv4 (RFC 792) and ICMPv6 (RFC 4443 section 2.1): type, code,
/// checksum and four type-specific bytes (unused, or the MTU of "fragmentation needed" (RFC
/// 1191 section 4) and "packet too big" (RFC 4443 section 3.2)), then the body.
///
/// ```text
/// +--------+--------+--------+--------+
/// |  Type  |  Code  |    Checksum     |
/// +--------+--------+--------+--------+
/// |      type-specific (4 bytes)      |
/// +--------+--------+--------+--------+
/// |  body (for errors: the invoking packet) ...
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

/// ICMP field positions.
pub mod icmp_field {
    use super::Field;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const REST: Field = 4..8;
    pub const HEADER_LEN: usize = 8;
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// `Truncated` when the 8-byte header does not fit.
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        if buffer.as_ref().len() < icmp_field::HEADER_LEN {
            return Err(DropReason::Truncated);
        }
        Ok(Self { buffer })
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[icmp_field::TYPE]
    }

    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[icmp_field::CODE]
    }

    pub fn checksum(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[2], b[3]])
    }

    /// The four type-specific bytes as one word.
    pub fn rest(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[4], b[5], b[6], b[7]])
    }

    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[icmp_field::HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    pub fn set_msg_type(&mut self, t: u8) {
        self.buffer.as_mut()[icmp_field::TYPE] = t;
    }

    pub fn set_code(&mut self, c: u8) {
        self.buffer.as_mut()[icmp_field::CODE] = c;
    }

    pub fn set_checksum(&mut self, c: u16) {
        self.buffer.as_mut()[icmp_field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }

    pub fn set_rest(&mut self, r: u32) {
        self.buffer.as_mut()[icmp_field::REST].copy_from_slice(&r.to_be_bytes());
    }

    pub fn body_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[icmp_field::HEADER_LEN..]
    }
}
