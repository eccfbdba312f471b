//! AF_XDP sockets over raw syscalls (there is no maintained `af_xdp` crate; libxdp is C).
//!
//! - [`Umem`]: the frame memory of one worker and who owns each frame (free, userspace,
//!   kernel), with bounds-checked access to a frame's bytes by address.
//! - [`XskSocket`]: one socket bound to (interface, queue), with its RX and TX rings and its
//!   own fill and completion rings. The first socket on a UMEM registers it; later sockets on
//!   other interfaces or queues share it (`XDP_SHARED_UMEM`), so a frame received on one port
//!   can be sent on another without a copy. Binding tries zero-copy first and falls back to copy
//!   mode ([`BindMode::Auto`]); [`XskSocket::mode`] says which was chosen.
//! - `ring`: the ring protocol (cached indices, reserve/submit, peek/release, need-wakeup),
//!   shared by all four rings, so the RX path runs the same code the TX test exercises.
//!
//! Frames only reach the kernel through `&mut Umem` methods of the socket, which check and
//! record ownership (per socket); that is what keeps the byte accessors safe (see [`umem`]).
//! [`XskSocket::close`] takes back the frames a copy-mode socket still had on its rings.
//!
//! Kernel behaviour worth knowing (Linux 6.18): a socket bound with `XDP_SHARED_UMEM` may pass
//! no other bind flag and inherits the registering socket's mode; the kernel releases a closed
//! socket's queue in deferred work, so binding the same queue right after `close` can still
//! fail with EBUSY for a few milliseconds.
//!
//! Every operation is a batch and nothing allocates per packet. Wakeups follow
//! `XDP_USE_NEED_WAKEUP`: [`XskSocket::flush_tx`] calls `sendto` only when the TX ring asks (in
//! copy mode it always does: `sendto` is what transmits), [`XskSocket::wake_rx_if_needed`]
//! calls `recvfrom` only when the fill ring asks.
//!
//! Why the fill and completion rings belong to the socket and not to the UMEM: for a UMEM
//! shared across interfaces or queues the kernel requires one pair per socket, so every socket
//! having its own pair keeps a single code path (the first socket's pair is the one set up on
//! the registering descriptor).

// This module is one of the few that talk to the kernel: mapped rings shared with it, the UMEM,
// and socket options that take pointers. Every unsafe block says why it is sound, including the
// memory ordering of the ring indices.
#![allow(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod ring;
mod socket;
pub mod umem;

use std::fmt;
use std::io;

pub use socket::{PollSet, SocketConfig, XskSocket, XskStats};
pub use umem::{FrameOwner, Umem, UmemConfig};

/// An RX or TX descriptor, laid out as the kernel's `struct xdp_desc`: a frame address in the
/// UMEM (possibly with an offset inside the frame), a length, and option bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Desc {
    pub addr: u64,
    pub len: u32,
    pub options: u32,
}

const _: () = assert!(std::mem::size_of::<Desc>() == std::mem::size_of::<libc::xdp_desc>());
const _: () = assert!(std::mem::size_of::<Desc>() == 16);

/// This process's RLIMIT_MEMLOCK as `/proc/self/limits` shows it, for the locked-memory error:
/// "RLIMIT_MEMLOCK is 8 MiB", or "RLIMIT_MEMLOCK unknown" if the file cannot be read.
pub(crate) fn memlock_limit() -> String {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max locked memory"))
        .and_then(|rest| rest.split_whitespace().next().map(str::to_owned));
    match soft.as_deref() {
        Some("unlimited") => "RLIMIT_MEMLOCK is unlimited".to_owned(),
        Some(v) => match v.parse::<u64>() {
            Ok(b) if b % (1 << 20) == 0 => format!("RLIMIT_MEMLOCK is {} MiB", b >> 20),
            Ok(b) => format!("RLIMIT_MEMLOCK is {} KiB", b >> 10),
            Err(_) => format!("RLIMIT_MEMLOCK is {v}"),
        },
        None => "RLIMIT_MEMLOCK unknown".to_owned(),
    }
}

/// What the caller asks of `bind`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BindMode {
    /// Zero-copy if the driver supports it, else copy mode.
    #[default]
    Auto,
    /// Zero-copy or fail.
    ZeroCopyOnly,
    /// Copy mode (works on any driver, veth included).
    CopyOnly,
}

/// What `bind` achieved. Its `Display` ("zero-copy" / "copy") is what the engine logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    ZeroCopy,
    Copy,
}

impl fmt::Display for XdpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XdpMode::ZeroCopy => "zero-copy",
            XdpMode::Copy => "copy",
        })
    }
}

/// Why an AF_XDP operation failed, worded so that the one-line message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    #[error("invalid AF_XDP configuration: {0}")]
    Config(String),
    #[error("interface {0:?} not found in this network namespace")]
    NoSuchInterface(String),
    #[error("AF_XDP sockets are not available ({0}): the kernel needs CONFIG_XDP_SOCKETS")]
    Unsupported(io::Error),
    #[error(
        "{op}: permission denied ({source}): AF_XDP sockets need CAP_NET_RAW; run as root or \
         grant it (AmbientCapabilities= in deploy/systemd/xroute-engine.service)"
    )]
    Permission { op: &'static str, source: io::Error },
    /// The kernel pins the UMEM and counts it against RLIMIT_MEMLOCK, summed over every process
    /// of the same user, unless the process has CAP_IPC_LOCK.
    #[error(
        "registering a UMEM of {} MiB failed ({source}): not enough locked memory ({limit}, \
         counted per user); raise it (LimitMEMLOCK=infinity in the systemd unit, ulimit -l), \
         grant CAP_IPC_LOCK, or use fewer frames (--frames, --ring-size)",
        bytes.div_ceil(1 << 20)
    )]
    LockedMemory {
        bytes: u64,
        limit: String,
        source: io::Error,
    },
    #[error(
        "{ifname} queue {queue}: zero-copy AF_XDP is not supported by this driver ({source}); \
         use copy or auto mode"
    )]
    ZeroCopyUnsupported {
        ifname: String,
        queue: u32,
        source: io::Error,
    },
    #[error(
        "{ifname} queue {queue}: busy ({source}): another AF_XDP socket (or a zero-copy user) is \
         bound to this queue; stop it or use another queue"
    )]
    QueueBusy {
        ifname: String,
        queue: u32,
        source: io::Error,
    },
    #[error(
        "{ifname} queue {queue}: bind refused ({source}): the queue does not exist (see `ethtool \
         -l {ifname}`; create veths with numrxqueues/numtxqueues), or this UMEM already has a \
         socket on it"
    )]
    InvalidQueue {
        ifname: String,
        queue: u32,
        source: io::Error,
    },
    #[error("{ifname}: interface is down ({source}); bring it up")]
    InterfaceDown { ifname: String, source: io::Error },
    #[error("{op} failed: {source}")]
    Sys { op: &'static str, source: io::Error },
    #[error("frame {addr:#x}: {why}")]
    Frame { addr: u64, why: &'static str },
    #[error("this socket was created on another UMEM")]
    WrongUmem,
}
