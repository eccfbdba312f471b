//! IPv4 fragmentation for [`Verdict::Fragment`](super::Verdict::Fragment) frames (RFC 791
//! section 3.2 "Fragmentation and reassembly", RFC 1812 sections 4.2.2.7 and 5.2.6).
//!
//! [`Fragmenter::new`] checks the frame once and works out the cut; each fragment is then
//! computed from its index alone, so the worker writes fragment `i` straight into a fresh UMEM
//! frame with [`Fragmenter::write`] and needs no buffer of its own. Nothing allocates.
//!
//! # Decisions
//! - The first fragment carries the header as received (all options); later fragments carry
//!   only the options whose copied flag is set, in their order, padded with End of Option List
//!   to a multiple of 4 bytes (RFC 791 section 3.1, option "copied" flag). No-operation options
//!   are not copied (their copied flag is 0). So later fragments may have a shorter header than
//!   the first, and carry more data.
//! - Every fragment but the last carries a multiple of 8 data bytes, as much as the MTU allows;
//!   the last one carries the rest (up to the MTU), as Linux's `ip_do_fragment` does.
//! - A packet that is itself a fragment keeps its offset as the base of the new offsets, and
//!   only its last piece keeps its More Fragments flag (the OFO and OMF of RFC 791 section
//!   3.2's fragmentation procedure).
//! - The reserved flag bit is written as zero (RFC 791 section 3.1: "must be zero").
//! - The header checksum is verified before anything is written, so a corrupted header is
//!   dropped rather than given fresh, valid checksums in every fragment.
//! - Options are checked for well-formedness (every option but EOL and NOP has a length of at
//!   least 2 that stays inside the header), because copying needs to walk them.

use super::wire::{ethertype, ipv4_field, EthernetFrame, Ipv4Packet};
use xroute_common::stats::DropReason;

/// The smallest MTU an IPv4 link may have: a 60-byte header (the longest IHL allows) and 8
/// bytes of data (RFC 791 section 3.2, "every internet module must be able to forward a
/// datagram of 68 octets without further fragmentation").
pub const MIN_MTU: u16 = 68;

/// The most option bytes an IPv4 header holds (IHL 15).
const MAX_OPTIONS: usize = 40;

/// Option types (RFC 791 section 3.1).
mod option {
    /// End of Option List: the rest of the header is padding.
    pub const EOL: u8 = 0;
    /// No Operation: one byte, not copied into fragments.
    pub const NOP: u8 = 1;
    /// The copied flag: the option goes into every fragment.
    pub const COPIED: u8 = 0x80;
}

/// Why a frame cannot be fragmented. [`Self::drop_reason`] gives the counter to bump.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum FragmentError {
    /// Don't Fragment is set: the caller owes an ICMP "fragmentation needed" instead.
    #[error("don't fragment is set")]
    DontFragment,
    /// The MTU is below [`MIN_MTU`]. With 68 or more, every header (at most 60 bytes) leaves
    /// room for the 8 data bytes a fragment needs, so no other "header too long" case exists.
    #[error("MTU {0} is below the IPv4 minimum of 68")]
    MtuTooSmall(u16),
    /// An option with a length below 2 or past the end of the header.
    #[error("malformed IPv4 options")]
    BadOptions,
    /// Not an IPv4 packet that fits its frame (the reason comes from the header checks), a
    /// wrong header checksum, or a fragment whose offset plus data passes 65535 bytes.
    #[error("malformed packet: {}", .0.name())]
    Malformed(DropReason),
}

impl FragmentError {
    /// The drop counter for this error: `TooBig` for DF and the MTU, `BadHeaderLength` for the
    /// options, the header check's own reason otherwise.
    pub const fn drop_reason(self) -> DropReason {
        match self {
            Self::DontFragment | Self::MtuTooSmall(_) => DropReason::TooBig,
            Self::BadOptions => DropReason::BadHeaderLength,
            Self::Malformed(r) => r,
        }
    }
}

/// The fragments of one frame, computed on demand. Borrows the frame; copy each fragment out
/// with [`Self::write`] before the frame is reused.
#[derive(Clone, Debug)]
pub struct Fragmenter<'a> {
    /// The Ethernet header (14 or 18 bytes), copied into every fragment.
    l2: &'a [u8],
    /// The IPv4 header with all its options: the first fragment's header.
    header: &'a [u8],
    /// The data, from the end of the header to Total Length (never the frame's padding).
    payload: &'a [u8],
    /// The copied options of later fragments, padded with EOL; `later_opts_len` bytes used.
    later_opts: [u8; MAX_OPTIONS],
    later_opts_len: usize,
    /// Data bytes in the first fragment when it is not the only one (a multiple of 8).
    first_chunk: usize,
    /// Data bytes in each later fragment but the last (a multiple of 8).
    chunk: usize,
    count: usize,
    /// The input's own fragment offset in bytes.
    base: usize,
    /// The input's More Fragments flag, kept by the last fragment.
    more: bool,
}

impl<'a> Fragmenter<'a> {
    /// `frame`: an Ethernet header (14 bytes, or 18 with one 802.1Q tag, as
    /// [`EthernetFrame::header_len`] says) and an IPv4 packet, possibly followed by padding.
    /// `mtu`: the egress MTU in IP bytes. A packet no longer than `mtu` gives one fragment equal
    /// to the packet.
    pub fn new(frame: &'a [u8], mtu: u16) -> Result<Self, FragmentError> {
        let eth = EthernetFrame::new_checked(frame).map_err(FragmentError::Malformed)?;
        if eth.payload_ethertype() != ethertype::IPV4 {
            return Err(FragmentError::Malformed(DropReason::BadVersion));
        }
        let (l2, l3) = frame
            .split_at_checked(eth.header_len())
            .ok_or(FragmentError::Malformed(DropReason::Truncated))?;
        let ip = Ipv4Packet::new_checked(l3).map_err(FragmentError::Malformed)?;
        if !ip.verify_checksum() {
            return Err(FragmentError::Malformed(DropReason::BadChecksum));
        }
        if ip.dont_frag() {
            return Err(FragmentError::DontFragment);
        }
        if mtu < MIN_MTU {
            return Err(FragmentError::MtuTooSmall(mtu));
        }
        let hl = ip.header_len();
        let total = usize::from(ip.total_len());
        let malformed = FragmentError::Malformed(DropReason::BadLength);
        let header = l3.get(..hl).ok_or(malformed)?;
        let payload = l3.get(hl..total).ok_or(malformed)?;
        let (later_opts, later_opts_len) = copied_options(ip.options())?;
        let base = usize::from(ip.frag_offset());
        // Keeps every new offset within the 13-bit field; such a datagram could never be
        // reassembled anyway.
        if base + payload.len() > usize::from(u16::MAX) {
            return Err(malformed);
        }

        // mtu >= 68 and hl, later header <= 60: each capacity is at least 8.
        let mtu = usize::from(mtu);
        let first_cap = mtu - hl;
        let later_cap = mtu - ipv4_field::HEADER_LEN - later_opts_len;
        let first_chunk = first_cap & !7;
        let chunk = later_cap & !7;
        let count = if payload.len() <= first_cap {
            1
        } else {
            let rest = payload.len() - first_chunk;
            let later = if rest <= later_cap {
                1
            } else {
                1 + (rest - later_cap).div_ceil(chunk)
            };
            1 + later
        };
        Ok(Self {
            l2,
            header,
            payload,
            later_opts,
            later_opts_len,
            first_chunk,
            chunk,
            count,
            base,
            more: ip.more_frags(),
        })
    }

    /// The number of fragments (at least 1).
    pub fn count(&self) -> usize {
        self.count
    }

    /// Fragment `i`'s IPv4 header length, data offset (within this packet's data) and data
    /// length; `None` past the last fragment.
    fn piece(&self, i: usize) -> Option<(usize, usize, usize)> {
        if i >= self.count {
            return None;
        }
        let (hl, start) = if i == 0 {
            (self.header.len(), 0)
        } else {
            (
                ipv4_field::HEADER_LEN + self.later_opts_len,
                self.first_chunk + (i - 1) * self.chunk,
            )
        };
        let len = if i + 1 == self.count {
            self.payload.len() - start
        } else if i == 0 {
            self.first_chunk
        } else {
            self.chunk
        };
        Some((hl, start, len))
    }

    /// Bytes of fragment `i` with its Ethernet header; 0 past the last fragment.
    pub fn frame_len(&self, i: usize) -> usize {
        self.piece(i).map_or(0, |(hl, _, len)| self.l2.len() + hl + len)
    }

    /// Writes fragment `i` (the input's Ethernet header, its IPv4 header, its data) at the
    /// start of `out` and returns its length; `None` when `i` is past the last fragment or
    /// `out` is shorter than [`Self::frame_len`].
    pub fn write(&self, i: usize, out: &mut [u8]) -> Option<usize> {
        let (hl, start, len) = self.piece(i)?;
        let frame_len = self.l2.len() + hl + len;
        let (l2, rest) = out.get_mut(..frame_len)?.split_at_mut_checked(self.l2.len())?;
        l2.copy_from_slice(self.l2);
        let (header, data) = rest.split_at_mut_checked(hl)?;
        if i == 0 {
            header.copy_from_slice(self.header);
        } else {
            let (fixed, opts) = header.split_at_mut_checked(ipv4_field::HEADER_LEN)?;
            fixed.copy_from_slice(self.header.get(..ipv4_field::HEADER_LEN)?);
            opts.copy_from_slice(self.later_opts.get(..self.later_opts_len)?);
        }
        data.copy_from_slice(self.payload.get(start..start + len)?);

        // `header` holds at least 20 bytes and `hl` of them, as new_unchecked asks.
        let mut ip = Ipv4Packet::new_unchecked(header);
        ip.set_header_len(hl);
        ip.set_total_len((hl + len) as u16);
        let more = i + 1 < self.count || self.more;
        // new() made base + data length <= 65535, so the offset fits.
        ip.set_frag(false, more, (self.base + start) as u16);
        ip.fill_checksum();
        Some(frame_len)
    }
}

/// The options later fragments carry: those with the copied flag, in order, then EOL padding to
/// a multiple of 4. Checks every option's length on the way.
fn copied_options(opts: &[u8]) -> Result<([u8; MAX_OPTIONS], usize), FragmentError> {
    let mut out = [option::EOL; MAX_OPTIONS];
    let mut n = 0;
    let mut i = 0;
    while let Some(&ty) = opts.get(i) {
        match ty {
            option::EOL => break,
            option::NOP => i += 1,
            _ => {
                let len = usize::from(*opts.get(i + 1).ok_or(FragmentError::BadOptions)?);
                if len < 2 {
                    return Err(FragmentError::BadOptions);
                }
                let opt = opts.get(i..i + len).ok_or(FragmentError::BadOptions)?;
                if ty & option::COPIED != 0 {
                    // n + len <= i + len <= opts.len() <= 40: always in range.
                    out.get_mut(n..n + len)
                        .ok_or(FragmentError::BadOptions)?
                        .copy_from_slice(opt);
                    n += len;
                }
                i += len;
            }
        }
    }
    Ok((out, n.next_multiple_of(4)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::wire::{checksum, protocol};
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    const DST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

    /// Record route (type 7, not copied) with room for two addresses, pointer at the first.
    const RECORD_ROUTE: [u8; 11] = [7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0];
    /// A copied option (type 0x82, RFC 1108's basic security option, length 11).
    const SECURITY: [u8; 11] = [0x82, 11, 0xab, 0xcd, 1, 2, 3, 4, 5, 6, 7];

    /// The input packet's shape.
    #[derive(Clone, Debug)]
    struct Spec {
        vlan: bool,
        /// Options, padded by `build` with EOL to a multiple of 4.
        options: Vec<u8>,
        /// IP data bytes (a UDP header then a pattern).
        data: usize,
        mf: bool,
        offset: u16,
        df: bool,
        /// Bytes of Ethernet padding after the packet.
        padding: usize,
    }

    impl Spec {
        fn udp(data: usize) -> Self {
            Self {
                vlan: false,
                options: Vec::new(),
                data,
                mf: false,
                offset: 0,
                df: false,
                padding: 0,
            }
        }
    }

    fn build(s: &Spec) -> Vec<u8> {
        let l2 = if s.vlan { 18 } else { 14 };
        let mut opts = s.options.clone();
        opts.resize(opts.len().next_multiple_of(4), 0);
        let hl = 20 + opts.len();
        let mut f = vec![0u8; l2 + hl + s.data + s.padding];
        let mut e = EthernetFrame::new_unchecked(&mut f[..]);
        e.set_dst_addr(DST);
        e.set_src_addr(SRC);
        if s.vlan {
            e.set_vlan(0x2064, ethertype::IPV4);
        } else {
            e.set_ethertype(ethertype::IPV4);
        }
        for (k, b) in f[l2 + hl..l2 + hl + s.data].iter_mut().enumerate() {
            *b = (k * 7 + k / 251) as u8;
        }
        for b in &mut f[l2 + hl + s.data..] {
            *b = 0xee;
        }
        f[l2 + 20..l2 + hl].copy_from_slice(&opts);
        let mut ip = Ipv4Packet::new_unchecked(&mut f[l2..]);
        ip.set_header_len(hl);
        ip.set_dscp_ecn(10, 2);
        ip.set_total_len((hl + s.data) as u16);
        ip.set_ident(0xbeef);
        ip.set_frag(s.df, s.mf, s.offset);
        ip.set_ttl(63);
        ip.set_protocol(protocol::UDP);
        ip.set_src_addr(Ipv4Addr::new(198, 51, 100, 7));
        ip.set_dst_addr(Ipv4Addr::new(203, 0, 113, 9));
        ip.fill_checksum();
        f
    }

    fn fragments(frame: &[u8], mtu: u16) -> Vec<Vec<u8>> {
        let f = Fragmenter::new(frame, mtu).unwrap();
        (0..f.count())
            .map(|i| {
                let mut out = vec![0u8; 9300];
                let n = f.write(i, &mut out).unwrap();
                assert_eq!(n, f.frame_len(i));
                out.truncate(n);
                out
            })
            .collect()
    }

    /// Checks every fragment against the original frame and the rules of RFC 791 section 3.2,
    /// then reassembles the data keyed on the offsets (each byte exactly once) and returns it.
    fn reassemble(orig: &[u8], frags: &[Vec<u8>], mtu: u16) -> Vec<u8> {
        let eth = EthernetFrame::new_checked(orig).unwrap();
        let l2 = eth.header_len();
        let o = Ipv4Packet::new_checked(&orig[l2..]).unwrap();
        let base = usize::from(o.frag_offset());
        let mut data = vec![0u8; o.payload().len()];
        let mut seen = vec![false; data.len()];
        for (k, f) in frags.iter().enumerate() {
            let last = k + 1 == frags.len();
            assert_eq!(&f[..l2], &orig[..l2], "Ethernet header (and VLAN tag) copied");
            let p = Ipv4Packet::new_checked(&f[l2..]).unwrap();
            assert!(checksum::verify(p.header()), "fragment {k}: header checksum");
            assert!(p.verify_checksum());
            assert_eq!(f.len(), l2 + usize::from(p.total_len()), "no padding copied");
            assert!(p.total_len() <= mtu, "fragment {k} is {} > {mtu}", p.total_len());
            assert_eq!(p.header()[1..2], o.header()[1..2], "DSCP/ECN");
            assert_eq!(p.header()[4..6], o.header()[4..6], "identification");
            assert_eq!(p.header()[8..10], o.header()[8..10], "TTL, protocol");
            assert_eq!(p.header()[12..20], o.header()[12..20], "addresses");
            assert!(!p.dont_frag());
            assert_eq!(p.header()[6] & 0x80, 0, "reserved flag");
            let off = usize::from(p.frag_offset());
            assert_eq!(off % 8, 0);
            assert!(off >= base);
            if last {
                assert_eq!(p.more_frags(), o.more_frags(), "the last piece keeps MF");
            } else {
                assert!(p.more_frags(), "fragment {k} has MF");
                assert_eq!(p.payload().len() % 8, 0, "fragment {k} carries a multiple of 8");
            }
            if k == 0 {
                assert_eq!(off, base);
                assert_eq!(p.options(), o.options(), "the first fragment has every option");
            }
            for (j, &b) in p.payload().iter().enumerate() {
                assert!(!seen[off - base + j], "byte {} twice", off - base + j);
                seen[off - base + j] = true;
                data[off - base + j] = b;
            }
        }
        assert!(seen.iter().all(|&s| s), "gaps in the reassembled data");
        assert_eq!(data, o.payload());
        data
    }

    #[test]
    fn a_1500_byte_udp_packet_for_mtus_1400_576_68() {
        let frame = build(&Spec::udp(1480));
        for (mtu, count) in [(1400, 2), (576, 3), (68, 31)] {
            let frags = fragments(&frame, mtu);
            assert_eq!(frags.len(), count, "MTU {mtu}");
            reassemble(&frame, &frags, mtu);
        }
        // MTU 576: 552 + 552 + 376, as Linux cuts it.
        let sizes: Vec<usize> = fragments(&frame, 576).iter().map(|f| f.len() - 14 - 20).collect();
        assert_eq!(sizes, [552, 552, 376]);
    }

    #[test]
    fn fits_the_mtu_gives_the_packet_itself() {
        let frame = build(&Spec {
            padding: 7,
            ..Spec::udp(1480)
        });
        for mtu in [1500, 9000] {
            let frags = fragments(&frame, mtu);
            assert_eq!(frags, [frame[..frame.len() - 7].to_vec()]);
        }
    }

    #[test]
    fn the_last_fragment_may_fill_the_mtu_without_a_multiple_of_8() {
        // 1376 data bytes in the first fragment; the 1380 left fit the second exactly (20 + 1380
        // = 1400) although 1380 is not a multiple of 8, so there is no third.
        let frame = build(&Spec::udp(1376 + 1380));
        let frags = fragments(&frame, 1400);
        assert_eq!(frags.len(), 2);
        assert_eq!(frags[1].len(), 14 + 1400);
        reassemble(&frame, &frags, 1400);
    }

    #[test]
    fn ethernet_padding_is_not_copied() {
        let frame = build(&Spec {
            padding: 10,
            ..Spec::udp(80)
        });
        let frags = fragments(&frame, 68);
        assert_eq!(frags.len(), 2);
        let data: usize = frags.iter().map(|f| f.len() - 14 - 20).sum();
        assert_eq!(data, 80, "the 10 padding bytes are not data");
        reassemble(&frame, &frags, 68);
    }

    #[test]
    fn copied_options_go_into_every_fragment_the_others_only_into_the_first() {
        // Record route (not copied), a NOP, the security option (copied), EOL padding: 24 bytes.
        let mut options = RECORD_ROUTE.to_vec();
        options.push(1);
        options.extend_from_slice(&SECURITY);
        let frame = build(&Spec {
            options,
            ..Spec::udp(1480)
        });
        let frags = fragments(&frame, 576);
        reassemble(&frame, &frags, 576);
        let first = Ipv4Packet::new_checked(&frags[0][14..]).unwrap();
        assert_eq!(first.header_len(), 44);
        assert_eq!(first.options(), &frame[34..58]);
        assert_eq!(first.payload().len(), 528);
        for f in &frags[1..] {
            let p = Ipv4Packet::new_checked(&f[14..]).unwrap();
            assert_eq!(p.header_len(), 32, "20 + 11 padded to 12");
            assert_eq!(&p.options()[..11], &SECURITY);
            assert_eq!(p.options()[11], 0, "EOL padding");
        }
        // Later fragments have the shorter header, so they carry more: 528, 544, 408.
        let sizes: Vec<usize> = frags
            .iter()
            .map(|f| Ipv4Packet::new_checked(&f[14..]).unwrap().payload().len())
            .collect();
        assert_eq!(sizes, [528, 544, 408]);
    }

    #[test]
    fn without_copied_options_later_headers_are_20_bytes() {
        let frame = build(&Spec {
            options: RECORD_ROUTE.to_vec(),
            ..Spec::udp(600)
        });
        let frags = fragments(&frame, 300);
        reassemble(&frame, &frags, 300);
        assert_eq!(Ipv4Packet::new_checked(&frags[0][14..]).unwrap().header_len(), 32);
        for f in &frags[1..] {
            assert_eq!(Ipv4Packet::new_checked(&f[14..]).unwrap().header_len(), 20);
        }
    }

    #[test]
    fn mtu_68_with_a_60_byte_header_carries_8_bytes() {
        // 40 bytes of copied options: every fragment has IHL 15 and 8 data bytes.
        let mut options = Vec::new();
        for k in 0..4 {
            options.extend_from_slice(&[0x80 | 20, 10, k, 0, 0, 0, 0, 0, 0, 0]);
        }
        let frame = build(&Spec {
            options,
            ..Spec::udp(100)
        });
        let frags = fragments(&frame, 68);
        assert_eq!(frags.len(), 13);
        for f in &frags {
            assert_eq!(Ipv4Packet::new_checked(&f[14..]).unwrap().header_len(), 60);
        }
        reassemble(&frame, &frags, 68);
    }

    #[test]
    fn a_vlan_tagged_frame_keeps_its_tag_in_every_fragment() {
        let frame = build(&Spec {
            vlan: true,
            ..Spec::udp(1480)
        });
        let frags = fragments(&frame, 576);
        assert_eq!(frags.len(), 3);
        for f in &frags {
            let e = EthernetFrame::new_checked(&f[..]).unwrap();
            assert_eq!(e.vlan_tci(), Some(0x2064));
            assert_eq!(e.payload_ethertype(), ethertype::IPV4);
        }
        reassemble(&frame, &frags, 576);
    }

    #[test]
    fn a_fragment_keeps_its_offset_base_and_mf() {
        for mf in [true, false] {
            let frame = build(&Spec {
                mf,
                offset: 2960,
                ..Spec::udp(1480)
            });
            let frags = fragments(&frame, 576);
            reassemble(&frame, &frags, 576);
            let offsets: Vec<(u16, bool)> = frags
                .iter()
                .map(|f| {
                    let p = Ipv4Packet::new_checked(&f[14..]).unwrap();
                    (p.frag_offset(), p.more_frags())
                })
                .collect();
            assert_eq!(offsets, [(2960, true), (3512, true), (4064, mf)]);
        }
    }

    #[test]
    fn errors() {
        let good = build(&Spec::udp(1480));
        let err = |f: &[u8], mtu| Fragmenter::new(f, mtu).unwrap_err();

        let df = build(&Spec {
            df: true,
            ..Spec::udp(1480)
        });
        assert_eq!(err(&df, 576), FragmentError::DontFragment);
        assert_eq!(err(&good, 67), FragmentError::MtuTooSmall(67));
        assert_eq!(err(&good, 0), FragmentError::MtuTooSmall(0));
        assert_eq!(err(&good, 67).drop_reason(), DropReason::TooBig);

        // Frame shorter than Total Length, than the header, than Ethernet.
        let m = |r| FragmentError::Malformed(r);
        assert_eq!(err(&good[..1000], 576), m(DropReason::BadLength));
        assert_eq!(err(&good[..30], 576), m(DropReason::Truncated));
        assert_eq!(err(&good[..10], 576), m(DropReason::Truncated));
        // IHL 4, IHL past the frame, Total Length below IHL.
        let mut f = good.clone();
        f[14] = 0x44;
        assert_eq!(err(&f, 576), m(DropReason::BadHeaderLength));
        let mut f = good[..40].to_vec();
        f[14] = 0x4f;
        assert_eq!(err(&f, 576), m(DropReason::BadHeaderLength));
        let mut f = good.clone();
        f[16..18].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(err(&f, 576), m(DropReason::BadLength));
        // Version 6 in an IPv4 EtherType; an IPv6 EtherType.
        let mut f = good.clone();
        f[14] = 0x65;
        assert_eq!(err(&f, 576), m(DropReason::BadVersion));
        let mut f = good.clone();
        f[12..14].copy_from_slice(&ethertype::IPV6.to_be_bytes());
        assert_eq!(err(&f, 576), m(DropReason::BadVersion));
        // A header checksum that does not verify.
        let mut f = good.clone();
        f[22] ^= 1;
        assert_eq!(err(&f, 576), m(DropReason::BadChecksum));
        // An offset that would push the data past 65535 bytes.
        let far = build(&Spec {
            offset: 65528,
            ..Spec::udp(16)
        });
        assert_eq!(err(&far, 68), m(DropReason::BadLength));
        assert_eq!(err(&far, 68).drop_reason(), DropReason::BadLength);

        // Options: length 1, length 0, length past the header, type without a length byte.
        for opts in [
            &[0x82, 1, 0, 0][..],
            &[7, 0, 0, 0],
            &[7, 9, 0, 0],
            &[1, 1, 1, 0x82],
        ] {
            let f = build(&Spec {
                options: opts.to_vec(),
                ..Spec::udp(200)
            });
            assert_eq!(err(&f, 68), FragmentError::BadOptions, "{opts:?}");
            assert_eq!(err(&f, 68).drop_reason(), DropReason::BadHeaderLength);
        }
        // Anything after EOL is padding and not parsed.
        let f = build(&Spec {
            options: vec![0, 0x82, 1, 7],
            ..Spec::udp(200)
        });
        reassemble(&f, &fragments(&f, 68), 68);

        // write: index past the end, short buffer.
        let fr = Fragmenter::new(&good, 576).unwrap();
        let mut out = [0u8; 600];
        assert_eq!(fr.write(3, &mut out), None);
        assert_eq!(fr.frame_len(3), 0);
        assert_eq!(fr.write(0, &mut out[..fr.frame_len(0) - 1]), None);
        assert_eq!(fr.write(0, &mut out), Some(14 + 20 + 552));
    }

    /// Up to 40 bytes of options: whole NOPs, record routes, security options and other copied
    /// or uncopied options, in any order.
    fn arb_options() -> impl Strategy<Value = Vec<u8>> {
        let one = prop_oneof![
            Just(vec![1u8]),
            Just(RECORD_ROUTE.to_vec()),
            Just(SECURITY.to_vec()),
            (any::<bool>(), 2u8..12).prop_map(|(copied, len)| {
                let mut o = vec![if copied { 0x99 } else { 0x44 }, len];
                o.resize(usize::from(len), 0x5a);
                o
            }),
        ];
        proptest::collection::vec(one, 0..6).prop_map(|v| {
            let mut o = Vec::new();
            for opt in v.into_iter().filter(|opt| opt.len() <= 40) {
                if o.len() + opt.len() <= 40 {
                    o.extend_from_slice(&opt);
                }
            }
            o
        })
    }

    fn arb_spec() -> impl Strategy<Value = Spec> {
        (
            any::<bool>(),
            arb_options(),
            0usize..9000,
            any::<bool>(),
            0u16..2000,
            0usize..20,
        )
            .prop_map(|(vlan, options, data, mf, offset8, padding)| Spec {
                vlan,
                options,
                data,
                mf,
                offset: offset8 * 8,
                df: false,
                padding,
            })
    }

    /// Random bytes behind an IPv4 EtherType, with a valid header checksum when the IHL fits,
    /// so that most inputs get past the first checks.
    fn arb_frame() -> impl Strategy<Value = Vec<u8>> {
        (proptest::collection::vec(any::<u8>(), 14..300), any::<bool>()).prop_map(|(mut b, vlan)| {
            let l2 = if vlan && b.len() >= 18 {
                b[12..14].copy_from_slice(&ethertype::VLAN.to_be_bytes());
                b[16..18].copy_from_slice(&ethertype::IPV4.to_be_bytes());
                18
            } else {
                b[12..14].copy_from_slice(&ethertype::IPV4.to_be_bytes());
                14
            };
            if let Some(v) = b.get_mut(l2) {
                *v = 0x40 | (*v & 0x0f);
            }
            if let Some(h) = b.get(l2).map(|v| usize::from(v & 0x0f) * 4) {
                if h >= 20 && l2 + h <= b.len() {
                    // A Total Length within the frame, and DF clear, most of the time.
                    let room = b.len() - l2;
                    let total = usize::from(u16::from_be_bytes([b[l2 + 2], b[l2 + 3]])) % (room + 4);
                    b[l2 + 2..l2 + 4].copy_from_slice(&(total as u16).to_be_bytes());
                    b[l2 + 6] &= !0x40;
                    Ipv4Packet::new_unchecked(&mut b[l2..]).fill_checksum();
                }
            }
            b
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn any_packet_and_mtu_reassembles(s in arb_spec(), mtu in 68u16..9100) {
            let frame = build(&s);
            let frags = fragments(&frame, mtu);
            let hl = 20 + s.options.len().next_multiple_of(4);
            if hl + s.data <= usize::from(mtu) {
                prop_assert_eq!(frags.len(), 1);
            }
            reassemble(&frame, &frags, mtu);
        }

        #[test]
        fn arbitrary_frames_never_panic(b in arb_frame(), mtu in any::<u16>(), room in 0usize..400) {
            if let Ok(f) = Fragmenter::new(&b, mtu) {
                let mut out = vec![0u8; room];
                for i in 0..=f.count() {
                    let n = f.write(i, &mut out);
                    prop_assert_eq!(n.is_some(), i < f.count() && f.frame_len(i) <= room);
                }
            }
        }
    }
}
