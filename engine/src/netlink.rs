//! A small rtnetlink client: the kernel's neighbour table and interface addresses, as the
//! engine mirrors them.
//!
//! Why the kernel is the ARP/ND speaker: a (MAC, IP) pair must have exactly one speaker. The XDP
//! program passes ARP and ND to the kernel, which answers for the router's own addresses; a
//! second speaker in userspace would answer every request twice, and it could not learn the
//! replies to the kernel's own requests (they reach the kernel, not the engine). So the engine
//! asks the kernel to resolve a next hop ([`Netlink::resolve`]: `RTM_NEWNEIGH` with `NTF_USE`,
//! what the kernel does itself when it has a packet for an unresolved neighbour) and mirrors the
//! kernel's table from `RTNLGRP_NEIGH` events and dumps. Ageing and re-probing stay with the
//! kernel's NUD state machine (REACHABLE, STALE, DELAY, PROBE: RFC 4861 section 7.3.2); the
//! engine only reads the states ([`KernelNudState`]) and the MACs they make usable.
//!
//! - [`parse_messages`]: the pure parser of a buffer of netlink messages into
//!   [`NeighborEvent`]s; no I/O, bounds-checked everywhere, so it can be tested with byte
//!   fixtures and fuzzed.
//! - [`Netlink`]: the non-blocking socket (for the engine's poll loop): neighbour dumps,
//!   resolve requests, and [`Netlink::recv`], which drains and parses everything pending.
//! - [`interface_addresses`]: a synchronous dump of the namespace's IPv4 and IPv6 addresses
//!   (what the XDP program must pass to the kernel).
//!
//! Kernel behaviour (Linux 6.18), checked by `tests/tests/netlink.rs`:
//! - `NTF_USE` on an address with no entry needs `NLM_F_CREATE` (without it: `ENOENT`). It
//!   creates the entry in INCOMPLETE and sends an ARP request or NS at once; `NLM_F_CREATE`
//!   without `NLM_F_REPLACE` never overrides an existing entry, and with `NTF_USE` the kernel
//!   does not touch the entry's state or address anyway (`neigh_event_send`).
//! - The request itself produces no event: the first event is the answer (REACHABLE) or, after
//!   the kernel's probes (3 by default, one per second), FAILED without a MAC. On a FAILED
//!   entry it probes again. On a REACHABLE entry it only marks the entry used: no probe, no
//!   event. On a STALE one it starts DELAY (no event), and after `delay_first_probe_time` (5 s
//!   by default) PROBE and REACHABLE events follow.
//! - IPv6: with no link-local address out of DAD on the interface the kernel silently sends no
//!   NS (it has no source for one), so right after an interface comes up resolution waits for
//!   link-local DAD (1 to 2 s), or fails if DAD outlasts the probes.
//! - Removing an entry (`ip neigh del`/`flush`) reports it FAILED without a MAC, then
//!   `RTM_DELNEIGH`. Dumps include NOARP entries for IPv6 multicast groups (33:33:... MACs); an
//!   unknown interface index gives `ENODEV`.
//!
//! Netlink is in host byte order; this module reads and writes it with `to_ne_bytes` /
//! `from_ne_bytes`.

// This module talks to the kernel through raw socket calls (socket, bind, setsockopt, sendto,
// recvfrom; there is no rtnetlink in std and the workspace takes no netlink crate). Every unsafe
// block says why it is sound; parsing is safe code over byte slices.
#![allow(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fmt;
use std::io;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

// linux/netlink.h, linux/rtnetlink.h, linux/neighbour.h, linux/if_addr.h. Message types and
// flags are u16 on the wire; libc declares some of them as c_int.
const NLMSG_NOOP: u16 = libc::NLMSG_NOOP as u16;
const NLMSG_ERROR: u16 = libc::NLMSG_ERROR as u16;
const NLMSG_DONE: u16 = libc::NLMSG_DONE as u16;
const NLMSG_OVERRUN: u16 = libc::NLMSG_OVERRUN as u16;
const NLM_F_REQUEST: u16 = libc::NLM_F_REQUEST as u16;
const NLM_F_DUMP: u16 = libc::NLM_F_DUMP as u16;
const NLM_F_CREATE: u16 = libc::NLM_F_CREATE as u16;
const NLM_F_DUMP_INTR: u16 = libc::NLM_F_DUMP_INTR as u16;
const NLA_TYPE_MASK: u16 = libc::NLA_TYPE_MASK as u16;
const AF_INET: u8 = libc::AF_INET as u8;
const AF_INET6: u8 = libc::AF_INET6 as u8;
/// `RTMGRP_NEIGH`: the bind-time bit of multicast group `RTNLGRP_NEIGH`.
const GROUP_NEIGH: u32 = 1 << (libc::RTNLGRP_NEIGH - 1);

/// `struct nlmsghdr`, every message's header (RFC 3549 section 2.3.2):
///
/// ```text
///  0               4       6       8               12              16
/// +---------------+-------+-------+---------------+---------------+
/// |  nlmsg_len    | type  | flags |  nlmsg_seq    |  nlmsg_pid    |  then the payload,
/// +---------------+-------+-------+---------------+---------------+  padded to 4 bytes
/// ```
///
/// `nlmsg_len` counts the header and the payload (not the padding after it).
const NLMSG_HDRLEN: usize = 16;
/// `struct ndmsg`: family (u8), 3 pad bytes, ifindex (i32), state (u16, `NUD_*`), flags (u8,
/// `NTF_*`), type (u8); then `NDA_*` attributes.
const NDMSG_LEN: usize = 12;
/// `struct ifaddrmsg`: family, prefix length, flags, scope (u8 each), ifindex (u32); then
/// `IFA_*` attributes.
const IFADDRMSG_LEN: usize = 8;
/// `struct rtattr` (= `struct nlattr`): length (u16, counting this header and the value, not
/// the padding), type (u16), value padded to 4 bytes.
const RTA_HDRLEN: usize = 4;

const _: () = assert!(size_of::<libc::nlmsghdr>() == NLMSG_HDRLEN);
const _: () = assert!(size_of::<libc::ifaddrmsg>() == IFADDRMSG_LEN);
const _: () = assert!(size_of::<SockaddrNl>() == size_of::<libc::sockaddr_nl>());

/// Receive buffer: more than the largest message a dump or event puts in one datagram (the
/// kernel caps dump datagrams at 32 KiB).
const RECV_BUF: usize = 64 * 1024;
/// Socket receive buffer asked for (the kernel caps it at `net.core.rmem_max`): room for bursts
/// of neighbour events before the socket overruns.
const SO_RCVBUF_BYTES: libc::c_int = 1 << 20;

/// Rounds up to the 4-byte alignment of messages and attributes (`NLMSG_ALIGN`, `NLA_ALIGN`).
const fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

/// Why a buffer of netlink messages could not be parsed. Messages before the bad one have
/// already been reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{available} bytes left, less than a message header")]
    ShortHeader { available: usize },
    #[error("message length {len} with {available} bytes left")]
    BadMessageLength { len: u32, available: usize },
    #[error("message type {kind}: {len}-byte payload is too short")]
    ShortPayload { kind: u16, len: usize },
    #[error("attribute length {len} with {available} bytes left")]
    BadAttributeLength { len: u16, available: usize },
    #[error("address of {len} bytes for family {family}")]
    BadAddress { family: u8, len: usize },
    #[error("message without its address attribute")]
    MissingAddress,
    #[error("negative interface index {0}")]
    BadIfindex(i32),
}

/// A neighbour's state in the kernel (the `NUD_*` value of `ndm_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelNudState {
    Incomplete,
    Reachable,
    Stale,
    Delay,
    Probe,
    Failed,
    NoArp,
    Permanent,
    /// `NUD_NONE`, and any value that is not one known state bit.
    None,
}

impl KernelNudState {
    pub fn from_bits(state: u16) -> Self {
        match state {
            libc::NUD_INCOMPLETE => Self::Incomplete,
            libc::NUD_REACHABLE => Self::Reachable,
            libc::NUD_STALE => Self::Stale,
            libc::NUD_DELAY => Self::Delay,
            libc::NUD_PROBE => Self::Probe,
            libc::NUD_FAILED => Self::Failed,
            libc::NUD_NOARP => Self::NoArp,
            libc::NUD_PERMANENT => Self::Permanent,
            _ => Self::None,
        }
    }

    /// True for the states in which the kernel itself sends to the neighbour's link-layer
    /// address (`NUD_VALID` without INCOMPLETE/FAILED): a STALE, DELAY or PROBE entry is still
    /// used while the kernel re-checks it (RFC 4861 section 7.3.3).
    pub fn is_usable(self) -> bool {
        matches!(
            self,
            Self::Reachable | Self::Stale | Self::Delay | Self::Probe | Self::Permanent | Self::NoArp
        )
    }
}

/// One neighbour entry as the kernel reported it (`RTM_NEWNEIGH` from a dump or an event, or
/// `RTM_DELNEIGH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborUpdate {
    pub ifindex: u32,
    pub addr: IpAddr,
    /// `NDA_LLADDR`; absent for INCOMPLETE and FAILED entries.
    pub mac: Option<[u8; 6]>,
    pub state: KernelNudState,
    /// `RTM_DELNEIGH`: the entry is gone.
    pub deleted: bool,
}

impl NeighborUpdate {
    /// The MAC to forward with: present, in a usable state, and not a deletion.
    pub fn usable_mac(&self) -> Option<[u8; 6]> {
        if self.deleted || !self.state.is_usable() {
            return None;
        }
        self.mac
    }
}

/// What [`Netlink::recv`] and [`parse_messages`] report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighborEvent {
    Neighbor(NeighborUpdate),
    /// A request failed (`NLMSG_ERROR` with a non-zero code, or a dump that ended with one):
    /// the positive errno.
    Error(i32),
    /// Events were lost (the socket overran, a dump was interrupted by a change, or a datagram
    /// could not be read or parsed): the caller must dump again to resynchronise.
    Overrun,
    /// The end of a dump.
    DumpDone,
}

/// One message: its header fields and its payload (without padding).
#[derive(Debug, Clone, Copy)]
struct Message<'a> {
    kind: u16,
    flags: u16,
    payload: &'a [u8],
}

/// The messages of one datagram. After an error it yields nothing more.
#[derive(Debug)]
struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Message<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let buf = self.rest;
        self.rest = &[];
        let short = ParseError::ShortHeader { available: buf.len() };
        if buf.len() < NLMSG_HDRLEN {
            return Some(Err(short));
        }
        let (Some(len), Some(kind), Some(flags)) = (u32_at(buf, 0), u16_at(buf, 4), u16_at(buf, 6)) else {
            return Some(Err(short));
        };
        let bad = ParseError::BadMessageLength {
            len,
            available: buf.len(),
        };
        let Ok(total) = usize::try_from(len) else {
            return Some(Err(bad));
        };
        if total < NLMSG_HDRLEN {
            return Some(Err(bad));
        }
        let Some(payload) = buf.get(NLMSG_HDRLEN..total) else {
            return Some(Err(bad));
        };
        // The last message of a datagram may end without its padding.
        self.rest = buf.get(align4(total).min(buf.len())..).unwrap_or(&[]);
        Some(Ok(Message { kind, flags, payload }))
    }
}

/// The attributes after a fixed family header. After an error it yields nothing more.
#[derive(Debug)]
struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Attrs<'a> {
    /// The attributes of `payload` after its `header`-byte family header (padded to 4).
    fn after(payload: &'a [u8], header: usize) -> Self {
        Self {
            rest: payload.get(align4(header)..).unwrap_or(&[]),
        }
    }
}

impl<'a> Iterator for Attrs<'a> {
    /// (type without the nested/byte-order bits, value).
    type Item = Result<(u16, &'a [u8]), ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let buf = self.rest;
        self.rest = &[];
        let (Some(len), Some(kind)) = (u16_at(buf, 0), u16_at(buf, 2)) else {
            return Some(Err(ParseError::BadAttributeLength {
                len: 0,
                available: buf.len(),
            }));
        };
        let total = usize::from(len);
        let value = if total >= RTA_HDRLEN {
            buf.get(RTA_HDRLEN..total)
        } else {
            None
        };
        let Some(value) = value else {
            return Some(Err(ParseError::BadAttributeLength {
                len,
                available: buf.len(),
            }));
        };
        self.rest = buf.get(align4(total).min(buf.len())..).unwrap_or(&[]);
        Some(Ok((kind & NLA_TYPE_MASK, value)))
    }
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(
        b.get(off..off.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn i32_at(b: &[u8], off: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// An IPv4 or IPv6 address attribute of `family`.
fn ip_from(family: u8, value: &[u8]) -> Result<IpAddr, ParseError> {
    let bad = ParseError::BadAddress {
        family,
        len: value.len(),
    };
    match family {
        AF_INET => <[u8; 4]>::try_from(value)
            .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
            .map_err(|_| bad),
        AF_INET6 => <[u8; 16]>::try_from(value)
            .map(|a| IpAddr::V6(Ipv6Addr::from(a)))
            .map_err(|_| bad),
        _ => Err(bad),
    }
}

/// Parses a buffer of netlink messages (one datagram), appending what the engine needs:
/// IPv4/IPv6 neighbours with a 6-byte or no link-layer address, non-zero errors, overruns and
/// dump ends. Other families (bridge FDB entries), proxy entries, other link-layer sizes and
/// other message types are skipped; acknowledgements (error 0) are ignored. A dump whose
/// `NLMSG_DONE` carries `NLM_F_DUMP_INTR` (the table changed while it ran) adds
/// [`NeighborEvent::Overrun`] before [`NeighborEvent::DumpDone`].
///
/// Errors stop parsing; the events of the messages before the bad one are already in `out`.
pub fn parse_messages(buf: &[u8], out: &mut Vec<NeighborEvent>) -> Result<(), ParseError> {
    for msg in (Messages { rest: buf }) {
        let msg = msg?;
        match msg.kind {
            NLMSG_ERROR => {
                let code = i32_at(msg.payload, 0).ok_or(ParseError::ShortPayload {
                    kind: msg.kind,
                    len: msg.payload.len(),
                })?;
                if code != 0 {
                    out.push(NeighborEvent::Error(code.saturating_abs()));
                }
            }
            NLMSG_DONE => {
                if msg.flags & NLM_F_DUMP_INTR != 0 {
                    out.push(NeighborEvent::Overrun);
                }
                // The dump's final status; old kernels may send no payload.
                if let Some(code) = i32_at(msg.payload, 0).filter(|&c| c != 0) {
                    out.push(NeighborEvent::Error(code.saturating_abs()));
                }
                out.push(NeighborEvent::DumpDone);
            }
            NLMSG_OVERRUN => out.push(NeighborEvent::Overrun),
            libc::RTM_NEWNEIGH | libc::RTM_DELNEIGH => {
                if let Some(u) = parse_neighbor(msg.kind, msg.payload)? {
                    out.push(NeighborEvent::Neighbor(u));
                }
            }
            NLMSG_NOOP => {}
            _ => {} // other rtnetlink types
        }
    }
    Ok(())
}

/// One `RTM_NEWNEIGH`/`RTM_DELNEIGH` payload; `None` for what the engine skips.
fn parse_neighbor(kind: u16, payload: &[u8]) -> Result<Option<NeighborUpdate>, ParseError> {
    let short = ParseError::ShortPayload {
        kind,
        len: payload.len(),
    };
    let hdr = payload.get(..NDMSG_LEN).ok_or(short)?;
    let (Some(&family), Some(ifindex), Some(state), Some(&flags)) =
        (hdr.first(), i32_at(hdr, 4), u16_at(hdr, 8), hdr.get(10))
    else {
        return Err(short);
    };
    if (family != AF_INET && family != AF_INET6) || flags & libc::NTF_PROXY != 0 {
        return Ok(None);
    }
    let ifindex = u32::try_from(ifindex).map_err(|_| ParseError::BadIfindex(ifindex))?;
    let mut addr = None;
    let mut lladdr = None;
    for attr in Attrs::after(payload, NDMSG_LEN) {
        match attr? {
            (libc::NDA_DST, v) => addr = Some(ip_from(family, v)?),
            (libc::NDA_LLADDR, v) => lladdr = Some(v),
            _ => {}
        }
    }
    let addr = addr.ok_or(ParseError::MissingAddress)?;
    let mac = match lladdr.map(<[u8; 6]>::try_from) {
        None => None,
        Some(Ok(mac)) => Some(mac),
        Some(Err(_)) => return Ok(None), // not an Ethernet-sized link-layer address
    };
    Ok(Some(NeighborUpdate {
        ifindex,
        addr,
        mac,
        state: KernelNudState::from_bits(state),
        deleted: kind == libc::RTM_DELNEIGH,
    }))
}

/// An address configured on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceAddress {
    pub ifindex: u32,
    pub addr: IpAddr,
    pub prefix_len: u8,
    /// `IFA_F_*` (`IFA_FLAGS`, or `ifa_flags` when the kernel sent no attribute).
    pub flags: u32,
}

impl InterfaceAddress {
    /// An IPv6 address still in duplicate address detection, or that failed it: configured,
    /// but the kernel does not accept traffic for it yet (or ever).
    pub fn is_tentative(&self) -> bool {
        self.flags & (libc::IFA_F_TENTATIVE | libc::IFA_F_DADFAILED) != 0
    }
}

/// Where an address dump stands after one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DumpProgress {
    More,
    Done { interrupted: bool },
    Failed(i32),
}

/// Parses one datagram of an `RTM_GETADDR` dump, appending the IPv4 and IPv6 addresses.
fn parse_address_messages(buf: &[u8], out: &mut Vec<InterfaceAddress>) -> Result<DumpProgress, ParseError> {
    for msg in (Messages { rest: buf }) {
        let msg = msg?;
        match msg.kind {
            NLMSG_ERROR | NLMSG_DONE => {
                let code = i32_at(msg.payload, 0).unwrap_or(0);
                if code != 0 {
                    return Ok(DumpProgress::Failed(code.saturating_abs()));
                }
                if msg.kind == NLMSG_DONE {
                    return Ok(DumpProgress::Done {
                        interrupted: msg.flags & NLM_F_DUMP_INTR != 0,
                    });
                }
            }
            libc::RTM_NEWADDR => {
                if let Some(a) = parse_address(msg.kind, msg.payload)? {
                    out.push(a);
                }
            }
            _ => {}
        }
    }
    Ok(DumpProgress::More)
}

/// One `RTM_NEWADDR` payload; `None` for other families.
fn parse_address(kind: u16, payload: &[u8]) -> Result<Option<InterfaceAddress>, ParseError> {
    let short = ParseError::ShortPayload {
        kind,
        len: payload.len(),
    };
    let hdr = payload.get(..IFADDRMSG_LEN).ok_or(short)?;
    let (Some(&family), Some(&prefix_len), Some(&flags), Some(ifindex)) =
        (hdr.first(), hdr.get(1), hdr.get(2), u32_at(hdr, 4))
    else {
        return Err(short);
    };
    if family != AF_INET && family != AF_INET6 {
        return Ok(None);
    }
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the same, or the peer on a
    // point-to-point link (IPv6 sends IFA_LOCAL only then).
    let (mut local, mut address, mut flags) = (None, None, u32::from(flags));
    for attr in Attrs::after(payload, IFADDRMSG_LEN) {
        match attr? {
            (libc::IFA_LOCAL, v) => local = Some(ip_from(family, v)?),
            (libc::IFA_ADDRESS, v) => address = Some(ip_from(family, v)?),
            (libc::IFA_FLAGS, v) => flags = u32_at(v, 0).unwrap_or(flags),
            _ => {}
        }
    }
    let addr = local.or(address).ok_or(ParseError::MissingAddress)?;
    Ok(Some(InterfaceAddress {
        ifindex,
        addr,
        prefix_len,
        flags,
    }))
}

/// Appends one attribute (header, value, padding).
fn push_attr(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = RTA_HDRLEN + value.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(align4(buf.len()), 0);
}

/// A request: header (with its final length) and the family header, then `attrs` appended.
fn request(kind: u16, flags: u16, seq: u32, family_header: &[u8], attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set below
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills in ours
    buf.extend_from_slice(family_header);
    buf.resize(align4(buf.len()), 0);
    for &(kind, value) in attrs {
        push_attr(&mut buf, kind, value);
    }
    let len = (buf.len() as u32).to_ne_bytes();
    if let Some(head) = buf.get_mut(..4) {
        head.copy_from_slice(&len);
    }
    buf
}

/// A `struct ndmsg`.
fn ndmsg(family: u8, ifindex: i32, state: u16, flags: u8) -> [u8; NDMSG_LEN] {
    let [i0, i1, i2, i3] = ifindex.to_ne_bytes();
    let [s0, s1] = state.to_ne_bytes();
    // family, 3 pad bytes, ifindex, state, flags, type (RTN_UNSPEC)
    [family, 0, 0, 0, i0, i1, i2, i3, s0, s1, flags, 0]
}

/// The request [`Netlink::resolve`] sends: `RTM_NEWNEIGH`, `NLM_F_REQUEST | NLM_F_CREATE` (no
/// `NLM_F_REPLACE`/`NLM_F_EXCL`, and no `NLM_F_ACK`: the kernel reports only failures),
/// `ndm_state = NUD_NONE`, `ndm_flags = NTF_USE`, one `NDA_DST`, no `NDA_LLADDR`.
/// `InvalidInput` for an interface index above `i32::MAX`.
pub fn encode_resolve(seq: u32, ifindex: u32, addr: IpAddr) -> io::Result<Vec<u8>> {
    let ifindex = i32::try_from(ifindex)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface index out of range"))?;
    let (family, v4, v6);
    let dst: &[u8] = match addr {
        IpAddr::V4(a) => {
            family = AF_INET;
            v4 = a.octets();
            &v4
        }
        IpAddr::V6(a) => {
            family = AF_INET6;
            v6 = a.octets();
            &v6
        }
    };
    Ok(request(
        libc::RTM_NEWNEIGH,
        NLM_F_CREATE,
        seq,
        &ndmsg(family, ifindex, libc::NUD_NONE, libc::NTF_USE),
        &[(libc::NDA_DST, dst)],
    ))
}

/// `struct sockaddr_nl`, declared here so it can be built without `unsafe` (libc's has a
/// private padding field).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct SockaddrNl {
    family: libc::sa_family_t,
    pad: u16,
    pid: u32,
    groups: u32,
}

impl SockaddrNl {
    fn new(groups: u32) -> Self {
        Self {
            family: libc::AF_NETLINK as libc::sa_family_t,
            pad: 0,
            pid: 0,
            groups,
        }
    }
}

/// A `NETLINK_ROUTE` socket bound to `groups` (close-on-exec; non-blocking if asked).
fn open_socket(groups: u32, nonblock: bool) -> io::Result<OwnedFd> {
    let mut ty = libc::SOCK_RAW | libc::SOCK_CLOEXEC;
    if nonblock {
        ty |= libc::SOCK_NONBLOCK;
    }
    // SAFETY: socket takes no pointers; a non-negative result is a new descriptor we own.
    let raw = unsafe { libc::socket(libc::AF_NETLINK, ty, libc::NETLINK_ROUTE) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` was just returned by socket and is owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let rcvbuf = SO_RCVBUF_BYTES;
    // SAFETY: the option value points to a live c_int of the length passed. Best effort: a
    // smaller buffer only means earlier overruns, which the caller handles.
    let _ = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw const rcvbuf).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    let sa = SockaddrNl::new(groups);
    // SAFETY: `sa` is a live sockaddr_nl (same layout as libc's, asserted above) of the length
    // passed; bind only reads it.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sa).cast(),
            size_of::<SockaddrNl>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Sends one request to the kernel.
fn send_to_kernel(fd: BorrowedFd<'_>, msg: &[u8]) -> io::Result<()> {
    let sa = SockaddrNl::new(0);
    loop {
        // SAFETY: `msg` and `sa` are live for the call with the lengths passed; sendto only
        // reads them.
        let n = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&raw const sa).cast(),
                size_of::<SockaddrNl>() as libc::socklen_t,
            )
        };
        if n >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// What one receive call gave.
enum Received {
    /// A datagram of this many bytes from the kernel.
    Kernel(usize),
    /// A datagram larger than the buffer: cut, lost.
    Truncated,
    /// A datagram from another socket than the kernel's: ignored.
    Foreign,
    /// Nothing pending (non-blocking sockets only).
    Empty,
    /// `ENOBUFS`: the socket's receive queue overflowed and messages were dropped.
    Overrun,
}

fn recv_from_kernel(fd: BorrowedFd<'_>, buf: &mut [u8], dontwait: bool) -> io::Result<Received> {
    let flags = libc::MSG_TRUNC | if dontwait { libc::MSG_DONTWAIT } else { 0 };
    loop {
        let mut sa = SockaddrNl::default();
        let mut sa_len = size_of::<SockaddrNl>() as libc::socklen_t;
        // SAFETY: `buf` is writable for `buf.len()` bytes and `sa`/`sa_len` are live and sized as
        // passed; with MSG_TRUNC the kernel still writes at most `buf.len()` bytes and returns
        // the datagram's real length.
        let n = unsafe {
            libc::recvfrom(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                flags,
                (&raw mut sa).cast(),
                &raw mut sa_len,
            )
        };
        if let Ok(n) = usize::try_from(n) {
            return Ok(if n > buf.len() {
                Received::Truncated
            } else if sa.pid != 0 {
                Received::Foreign
            } else {
                Received::Kernel(n)
            });
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return Ok(Received::Empty),
            Some(libc::ENOBUFS) => return Ok(Received::Overrun),
            _ => return Err(e),
        }
    }
}

/// The engine's rtnetlink socket: subscribed to neighbour events (`RTNLGRP_NEIGH`), non-blocking,
/// in the network namespace of the thread that opened it. Address changes are not subscribed:
/// [`interface_addresses`] is a snapshot.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl fmt::Debug for Netlink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Netlink")
            .field("fd", &self.fd)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl Netlink {
    /// Opens the socket in the calling thread's network namespace, subscribed to neighbour
    /// events.
    pub fn open() -> io::Result<Self> {
        Ok(Self {
            fd: open_socket(GROUP_NEIGH, true)?,
            seq: 0,
            buf: vec![0; RECV_BUF],
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Starts a dump of all IPv4 and IPv6 neighbours (`RTM_GETNEIGH`, `NLM_F_DUMP`,
    /// `AF_UNSPEC`); the entries arrive through [`Netlink::recv`], then
    /// [`NeighborEvent::DumpDone`]. Events may arrive interleaved with the dump. One dump at a
    /// time: a request while one runs gets [`NeighborEvent::Error`] (`EBUSY`).
    pub fn request_neighbor_dump(&mut self) -> io::Result<()> {
        let seq = self.next_seq();
        let msg = request(
            libc::RTM_GETNEIGH,
            NLM_F_DUMP,
            seq,
            &ndmsg(libc::AF_UNSPEC as u8, 0, 0, 0),
            &[],
        );
        send_to_kernel(self.fd.as_fd(), &msg)
    }

    /// Asks the kernel to resolve `addr` on `ifindex` now (see [`encode_resolve`]): for a new
    /// entry it sends an ARP request or NS, for a STALE one it starts DELAY/PROBE, a REACHABLE
    /// one is left as it is. Does not block; a failure arrives through [`Netlink::recv`] as
    /// [`NeighborEvent::Error`] (which does not say which request failed), the result as
    /// neighbour events.
    pub fn resolve(&mut self, ifindex: u32, addr: IpAddr) -> io::Result<()> {
        let seq = self.next_seq();
        let msg = encode_resolve(seq, ifindex, addr)?;
        send_to_kernel(self.fd.as_fd(), &msg)
    }

    /// Drains every pending datagram without blocking, appending the parsed events; returns how
    /// many were appended. A socket overrun (`ENOBUFS`), a cut datagram or one that does not
    /// parse becomes [`NeighborEvent::Overrun`] (dump again); datagrams from anything but the
    /// kernel are ignored. Errors are only those of the socket itself.
    pub fn recv(&mut self, out: &mut Vec<NeighborEvent>) -> io::Result<usize> {
        let before = out.len();
        loop {
            match recv_from_kernel(self.fd.as_fd(), &mut self.buf, true)? {
                Received::Empty => break,
                Received::Foreign => {}
                Received::Overrun | Received::Truncated => out.push(NeighborEvent::Overrun),
                Received::Kernel(n) => {
                    let datagram = self.buf.get(..n).unwrap_or(&[]);
                    if parse_messages(datagram, out).is_err() {
                        out.push(NeighborEvent::Overrun);
                    }
                }
            }
        }
        Ok(out.len() - before)
    }
}

impl AsFd for Netlink {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Netlink {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Every IPv4 and IPv6 address on any interface of the calling thread's network namespace, as
/// a synchronous dump (`RTM_GETADDR`) on a short-lived socket. IPv6 addresses still in
/// duplicate address detection or that failed it are included
/// ([`InterfaceAddress::is_tentative`] tells them apart); so are link-local addresses. A dump
/// the kernel flags as interrupted by a concurrent change is repeated (up to three times).
pub fn interface_addresses() -> io::Result<Vec<InterfaceAddress>> {
    let mut buf = vec![0u8; RECV_BUF];
    for _ in 0..3 {
        let fd = open_socket(0, false)?;
        let msg = request(libc::RTM_GETADDR, NLM_F_DUMP, 1, &[0u8; IFADDRMSG_LEN], &[]);
        send_to_kernel(fd.as_fd(), &msg)?;
        let mut out = Vec::new();
        loop {
            let n = match recv_from_kernel(fd.as_fd(), &mut buf, false)? {
                Received::Kernel(n) => n,
                Received::Foreign | Received::Empty => continue,
                Received::Overrun | Received::Truncated => {
                    return Err(io::Error::other("address dump: datagram lost"));
                }
            };
            let datagram = buf.get(..n).unwrap_or(&[]);
            match parse_address_messages(datagram, &mut out)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
            {
                DumpProgress::More => {}
                DumpProgress::Failed(errno) => return Err(io::Error::from_raw_os_error(errno)),
                DumpProgress::Done { interrupted: false } => return Ok(out),
                DumpProgress::Done { interrupted: true } => break,
            }
        }
    }
    Err(io::Error::other(
        "address dump interrupted by concurrent changes three times",
    ))
}

// The fixtures are datagrams captured from a little-endian kernel (netlink is host-endian).
#[cfg(test)]
#[cfg(target_endian = "little")]
mod tests;
