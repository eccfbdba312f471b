//! One AF_XDP socket: creation, UMEM registration or sharing, ring set-up, bind with the
//! zero-copy/copy decision, and the batch operations a worker runs on it.

use std::ffi::CString;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use memmap2::MmapRaw;

use super::ring::{ConsumerRing, ProducerRing, RingMem};
use super::umem::{Registration, Umem, MAX_SOCKETS, USER};
use super::{BindMode, Desc, XdpMode, XskError};

/// `XDP_MAX_TX_SKB_BUDGET` (linux/if_xdp.h, 6.16+): descriptors one copy-mode `sendto` may
/// transmit (default 32). Not in libc yet.
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;

/// Ring sizes and the bind mode of one socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketConfig {
    pub mode: BindMode,
    /// Entries of each ring; powers of two.
    pub rx_size: u32,
    pub tx_size: u32,
    pub fill_size: u32,
    pub comp_size: u32,
    /// `XDP_MAX_TX_SKB_BUDGET` to ask for (best effort; older kernels refuse it).
    pub tx_skb_budget: Option<u32>,
}

impl Default for SocketConfig {
    fn default() -> Self {
        Self {
            mode: BindMode::Auto,
            rx_size: 2048,
            tx_size: 2048,
            fill_size: 2048,
            comp_size: 2048,
            tx_skb_budget: Some(256),
        }
    }
}

impl SocketConfig {
    fn check(&self) -> Result<(), XskError> {
        for (what, n) in [
            ("rx", self.rx_size),
            ("tx", self.tx_size),
            ("fill", self.fill_size),
            ("completion", self.comp_size),
        ] {
            if !n.is_power_of_two() {
                return Err(XskError::Config(format!(
                    "{what} ring size {n} is not a power of two"
                )));
            }
        }
        Ok(())
    }
}

/// The kernel's per-socket counters (`XDP_STATISTICS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XskStats {
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    pub rx_ring_full: u64,
    pub rx_fill_ring_empty_descs: u64,
    pub tx_ring_empty_descs: u64,
}

/// An AF_XDP socket bound to one queue of one interface.
///
/// Dropping it unmaps its rings, then closes the descriptor (which unbinds the queue), then
/// releases its hold on the UMEM memory, which is unmapped once the [`Umem`] and every socket
/// on it are gone. (Fields drop in declaration order.) Frames still on its rings stay marked as
/// the kernel's in the UMEM (lost, never unsafe); [`XskSocket::close`] gets them back.
#[derive(Debug)]
pub struct XskSocket {
    rx: ConsumerRing<Desc>,
    tx: ProducerRing<Desc>,
    fill: ProducerRing<u64>,
    comp: ConsumerRing<u64>,
    fd: Arc<OwnedFd>,
    area: Arc<MmapRaw>,
    ifname: String,
    ifindex: u32,
    queue: u32,
    mode: XdpMode,
    shared: bool,
    fallback: Option<String>,
    tx_budget_set: bool,
    /// Owner byte of frames the kernel has through this socket.
    tag: u8,
    tx_in_flight: u32,
    anomalies: u64,
}

/// One way to bind, in the order tried.
#[derive(Debug)]
enum Plan {
    /// `XDP_SHARED_UMEM` with the socket that registered the UMEM; the kernel gives this
    /// socket that socket's mode (flags are not allowed with `XDP_SHARED_UMEM`).
    Shared(Arc<OwnedFd>, XdpMode),
    /// Register the UMEM on this socket and bind in this mode.
    Own(XdpMode),
}

impl Plan {
    fn mode(&self) -> XdpMode {
        match self {
            Plan::Shared(_, m) | Plan::Own(m) => *m,
        }
    }
}

/// A failed attempt: the error, and whether the next plan may still work.
struct Failed {
    error: XskError,
    retry: bool,
}

impl From<XskError> for Failed {
    fn from(error: XskError) -> Self {
        Self { error, retry: false }
    }
}

struct Parts {
    rx: ConsumerRing<Desc>,
    tx: ProducerRing<Desc>,
    fill: ProducerRing<u64>,
    comp: ConsumerRing<u64>,
    fd: OwnedFd,
}

impl XskSocket {
    /// Opens a socket on queue `queue` of interface `ifname` (in the calling thread's network
    /// namespace) using `umem`: registers the UMEM if no live socket has, else shares it.
    /// With [`BindMode::Auto`] zero-copy is tried first; [`XskSocket::fallback`] says why it
    /// was not used.
    pub fn new(umem: &mut Umem, ifname: &str, queue: u32, cfg: &SocketConfig) -> Result<Self, XskError> {
        cfg.check()?;
        let ifindex = if_index(ifname)?;
        let Some(tag) = umem.attach() else {
            return Err(XskError::Config(format!(
                "a UMEM serves at most {MAX_SOCKETS} sockets"
            )));
        };
        let made = Self::bind_any(umem, ifname, ifindex, queue, cfg, tag);
        if made.is_err() {
            umem.detach(tag);
        }
        made
    }

    fn bind_any(
        umem: &mut Umem,
        ifname: &str,
        ifindex: u32,
        queue: u32,
        cfg: &SocketConfig,
        tag: u8,
    ) -> Result<Self, XskError> {
        let live = umem
            .registration
            .as_ref()
            .and_then(|r| r.fd.upgrade().map(|fd| (fd, r.mode)));
        let registered = live.is_some();
        let mut plans = Vec::with_capacity(3);
        if let Some((fd, m)) = live {
            let fits = match cfg.mode {
                BindMode::Auto => true,
                BindMode::ZeroCopyOnly => m == XdpMode::ZeroCopy,
                BindMode::CopyOnly => m == XdpMode::Copy,
            };
            if fits {
                plans.push(Plan::Shared(fd, m));
            }
        }
        match cfg.mode {
            BindMode::Auto => {
                plans.push(Plan::Own(XdpMode::ZeroCopy));
                plans.push(Plan::Own(XdpMode::Copy));
            }
            BindMode::ZeroCopyOnly => plans.push(Plan::Own(XdpMode::ZeroCopy)),
            BindMode::CopyOnly => plans.push(Plan::Own(XdpMode::Copy)),
        }

        let mut fallback: Option<String> = None;
        let last = plans.len().saturating_sub(1);
        for (i, plan) in plans.iter().enumerate() {
            let parts = match attempt(umem, ifname, ifindex, queue, cfg, plan) {
                Ok(p) => p,
                Err(f) if f.retry && i < last => {
                    let note = f.error.to_string();
                    fallback = Some(match fallback {
                        Some(prev) => format!("{prev}; {note}"),
                        None => note,
                    });
                    continue;
                }
                Err(f) => return Err(f.error),
            };
            let fd = Arc::new(parts.fd);
            let mode = confirm_mode(&fd).unwrap_or(plan.mode());
            let shared = matches!(plan, Plan::Shared(..));
            if !shared && !registered {
                umem.registration = Some(Registration {
                    fd: Arc::downgrade(&fd),
                    mode,
                });
            }
            let tx_budget_set = cfg.tx_skb_budget.is_some_and(|b| {
                let b = i32::try_from(b).unwrap_or(i32::MAX);
                setsockopt(&fd, XDP_MAX_TX_SKB_BUDGET, &b).is_ok()
            });
            return Ok(Self {
                rx: parts.rx,
                tx: parts.tx,
                fill: parts.fill,
                comp: parts.comp,
                fd,
                area: Arc::clone(&umem.area),
                ifname: ifname.to_string(),
                ifindex,
                queue,
                mode,
                shared,
                fallback,
                tx_budget_set,
                tag,
                tx_in_flight: 0,
                anomalies: 0,
            });
        }
        Err(XskError::Config("no bind plan".into()))
    }

    /// Zero-copy or copy, as the kernel reports it after bind.
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// Why a preferred mode (or sharing the UMEM) was given up, for the log; `None` if the
    /// first choice worked.
    pub fn fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// True if bound with `XDP_SHARED_UMEM` to the socket that registered the UMEM.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// True if the kernel accepted `SocketConfig::tx_skb_budget`.
    pub fn tx_budget_set(&self) -> bool {
        self.tx_budget_set
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// TX descriptors submitted and not yet seen on the completion ring.
    pub fn tx_in_flight(&self) -> u32 {
        self.tx_in_flight
    }

    /// Descriptors the kernel returned for frames it did not own (should stay 0); they are
    /// ignored.
    pub fn anomalies(&self) -> u64 {
        self.anomalies
    }

    pub fn rx_size(&self) -> u32 {
        self.rx.size()
    }

    pub fn tx_size(&self) -> u32 {
        self.tx.size()
    }

    pub fn fill_size(&self) -> u32 {
        self.fill.size()
    }

    pub fn comp_size(&self) -> u32 {
        self.comp.size()
    }

    fn check(&self, umem: &Umem) -> Result<(), XskError> {
        if umem.is_area(&self.area) {
            Ok(())
        } else {
            Err(XskError::WrongUmem)
        }
    }

    /// Moves up to `max` frames from the UMEM's free stack to this socket's fill ring, for the
    /// kernel to receive into. Returns how many.
    pub fn fill(&mut self, umem: &mut Umem, max: usize) -> Result<usize, XskError> {
        self.check(umem)?;
        let want = u32::try_from(max.min(umem.free_frames())).unwrap_or(u32::MAX);
        let (start, n) = self.fill.reserve(want);
        let mut done = 0u32;
        while done < n {
            let Some(addr) = umem.pop_for_kernel(self.tag) else {
                break;
            };
            self.fill.write(start.wrapping_add(done), addr);
            done += 1;
        }
        self.fill.cancel(n - done);
        self.fill.submit(done);
        Ok(done as usize)
    }

    /// Free slots in the fill ring (re-reading the kernel's index if fewer than `want` are
    /// known free).
    pub fn fill_free(&mut self, want: u32) -> u32 {
        self.fill.free(want)
    }

    /// Takes up to `out.len()` received descriptors; their frames become userspace's.
    pub fn recv(&mut self, umem: &mut Umem, out: &mut [Desc]) -> Result<usize, XskError> {
        self.check(umem)?;
        let (start, n) = self.rx.peek(u32::try_from(out.len()).unwrap_or(u32::MAX));
        let mut got = 0;
        for i in 0..n {
            let d = self.rx.read(start.wrapping_add(i));
            let ok = umem.transfer(d.addr, d.len as usize, self.tag, USER);
            match out.get_mut(got) {
                Some(slot) if ok => {
                    *slot = d;
                    got += 1;
                }
                _ => self.anomalies += 1,
            }
        }
        self.rx.release(n);
        Ok(got)
    }

    /// Puts as many of `descs` on the TX ring as fit (in order) and returns how many; their
    /// frames become the kernel's until they come back on the completion ring. Every frame
    /// must be userspace's, non-empty, and inside one frame: otherwise nothing is queued and
    /// the first offender is reported. Call [`XskSocket::flush_tx`] after the batch.
    pub fn send(&mut self, umem: &mut Umem, descs: &[Desc]) -> Result<usize, XskError> {
        self.check(umem)?;
        let (start, n) = self.tx.reserve(u32::try_from(descs.len()).unwrap_or(u32::MAX));
        for (i, d) in descs.iter().take(n as usize).enumerate() {
            if d.len == 0 || !umem.transfer(d.addr, d.len as usize, USER, self.tag) {
                for e in descs.iter().take(i) {
                    umem.transfer(e.addr, e.len as usize, self.tag, USER);
                }
                self.tx.cancel(n);
                return Err(XskError::Frame {
                    addr: d.addr,
                    why: "cannot be sent: empty, crossing a frame boundary, or not held by userspace",
                });
            }
            self.tx.write(start.wrapping_add(i as u32), *d);
        }
        self.tx.submit(n);
        self.tx_in_flight = self.tx_in_flight.wrapping_add(n);
        Ok(n as usize)
    }

    /// Wakes the kernel to transmit if the TX ring asks for it (`XDP_RING_NEED_WAKEUP`; in copy
    /// mode always, since `sendto` is what transmits, up to the TX budget per call). Returns
    /// true if `sendto` was called and accepted; a busy kernel (EAGAIN, EBUSY, ENOBUFS) is
    /// "try again", reported as false: reap completions and flush again.
    pub fn flush_tx(&mut self) -> Result<bool, XskError> {
        if !self.tx.needs_wakeup() {
            return Ok(false);
        }
        // SAFETY: AF_XDP's sendmsg takes no data: a null buffer of length 0 and no address
        // are what it expects; the kernel reads nothing through these pointers.
        let r = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        if r >= 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::EINTR) => Ok(false),
            Some(libc::ENETDOWN | libc::ENXIO) => Err(XskError::InterfaceDown {
                ifname: self.ifname.clone(),
                source: e,
            }),
            _ => Err(XskError::Sys {
                op: "sendto (AF_XDP TX wakeup)",
                source: e,
            }),
        }
    }

    /// Takes up to `out.len()` completed TX addresses; their frames become userspace's again
    /// (to reuse for TX, or to give back with [`Umem::free`]).
    pub fn complete(&mut self, umem: &mut Umem, out: &mut [u64]) -> Result<usize, XskError> {
        self.check(umem)?;
        let (start, n) = self.comp.peek(u32::try_from(out.len()).unwrap_or(u32::MAX));
        let mut got = 0;
        for i in 0..n {
            let addr = self.comp.read(start.wrapping_add(i));
            let ok = umem.transfer(addr, 0, self.tag, USER);
            match out.get_mut(got) {
                Some(slot) if ok => {
                    *slot = addr;
                    got += 1;
                }
                _ => self.anomalies += 1,
            }
        }
        self.comp.release(n);
        self.tx_in_flight = self.tx_in_flight.saturating_sub(n);
        Ok(got)
    }

    /// Takes up to `max` completed TX frames straight back onto the UMEM's free stack.
    pub fn recycle(&mut self, umem: &mut Umem, max: usize) -> Result<usize, XskError> {
        self.check(umem)?;
        let (start, n) = self.comp.peek(u32::try_from(max).unwrap_or(u32::MAX));
        let mut got = 0;
        for i in 0..n {
            if umem.free_from_kernel(self.comp.read(start.wrapping_add(i)), self.tag) {
                got += 1;
            } else {
                self.anomalies += 1;
            }
        }
        self.comp.release(n);
        self.tx_in_flight = self.tx_in_flight.saturating_sub(n);
        Ok(got)
    }

    /// Closes the socket (rings unmapped, descriptor closed, queue unbound) and, in copy mode,
    /// puts every frame the kernel still had through it (fill ring, TX ring, in between) back on
    /// the UMEM's free stack. Returns how many frames came back.
    ///
    /// In zero-copy mode the frames stay the kernel's (lost until the UMEM is dropped): the
    /// kernel detaches the buffer pool from the driver in deferred work after `close` returns,
    /// so the NIC may still write into them for a moment. The same deferral keeps the queue
    /// busy (EBUSY on bind) for a few milliseconds after close, in both modes.
    pub fn close(self, umem: &mut Umem) -> Result<usize, XskError> {
        self.check(umem)?;
        let Self {
            rx,
            tx,
            fill,
            comp,
            fd,
            tag,
            mode,
            ..
        } = self;
        drop((rx, tx, fill, comp));
        // Only this socket holds a strong reference after construction (the UMEM keeps a weak
        // one), so this closes the descriptor. In copy mode the kernel touches frames only in
        // the socket's own receive and transmit paths, and release unbinds the socket and waits
        // for them (synchronize_net) before close returns.
        let closed = Arc::strong_count(&fd) == 1;
        drop(fd);
        Ok(if closed && mode == XdpMode::Copy {
            umem.detach(tag)
        } else {
            0
        })
    }

    /// True if the kernel waits for a wakeup before it takes more frames from the fill ring.
    pub fn fill_needs_wakeup(&self) -> bool {
        self.fill.needs_wakeup()
    }

    /// True if the kernel waits for `sendto` before it transmits.
    pub fn tx_needs_wakeup(&self) -> bool {
        self.tx.needs_wakeup()
    }

    /// Wakes the receive side (`recvfrom`, non-blocking) if the fill ring asks for it; call
    /// when a receive burst came back empty. Returns true if a wakeup was sent.
    pub fn wake_rx_if_needed(&self) -> Result<bool, XskError> {
        if !self.fill.needs_wakeup() {
            return Ok(false);
        }
        // SAFETY: AF_XDP's recvmsg copies no data: a null buffer of length 0 and no address
        // buffer; the kernel only wakes the driver's receive path.
        let r = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if r >= 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::EINTR) => Ok(true),
            Some(libc::ENETDOWN | libc::ENXIO) => Err(XskError::InterfaceDown {
                ifname: self.ifname.clone(),
                source: e,
            }),
            _ => Err(XskError::Sys {
                op: "recvfrom (AF_XDP RX wakeup)",
                source: e,
            }),
        }
    }

    /// Waits up to `timeout_ms` (-1: forever) for received descriptors; true if some are ready.
    pub fn poll_rx(&self, timeout_ms: i32) -> Result<bool, XskError> {
        let mut p = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid, initialised pollfd and a count of 1; poll writes only `revents`.
        let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                return Ok(false);
            }
            return Err(XskError::Sys {
                op: "poll (AF_XDP RX)",
                source: e,
            });
        }
        Ok(r > 0 && p.revents & libc::POLLIN != 0)
    }

    /// The socket's descriptor, for [`PollSet`].
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The kernel's counters for this socket.
    pub fn stats(&self) -> Result<XskStats, XskError> {
        let zero = libc::xdp_statistics {
            rx_dropped: 0,
            rx_invalid_descs: 0,
            tx_invalid_descs: 0,
            rx_ring_full: 0,
            rx_fill_ring_empty_descs: 0,
            tx_ring_empty_descs: 0,
        };
        let (s, _) = getsockopt(&self.fd, libc::XDP_STATISTICS, zero).map_err(|source| XskError::Sys {
            op: "getsockopt(XDP_STATISTICS)",
            source,
        })?;
        Ok(XskStats {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: s.tx_ring_empty_descs,
        })
    }
}

impl AsRawFd for XskSocket {
    /// The descriptor to put in the XSKMAP for this queue.
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for XskSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// One complete try: a new descriptor, UMEM registration (unless shared), the four rings, bind.
/// On failure everything made here is dropped (rings unmapped, descriptor closed).
fn attempt(
    umem: &Umem,
    ifname: &str,
    ifindex: u32,
    queue: u32,
    cfg: &SocketConfig,
    plan: &Plan,
) -> Result<Parts, Failed> {
    let fd = xdp_socket()?;
    if let Plan::Own(_) = plan {
        register(&fd, umem)?;
    }
    let ring_size = |name, n: u32, what: &'static str| {
        setsockopt(&fd, name, &n).map_err(|source| XskError::Sys { op: what, source })
    };
    ring_size(
        libc::XDP_UMEM_FILL_RING,
        cfg.fill_size,
        "setsockopt(XDP_UMEM_FILL_RING)",
    )?;
    ring_size(
        libc::XDP_UMEM_COMPLETION_RING,
        cfg.comp_size,
        "setsockopt(XDP_UMEM_COMPLETION_RING)",
    )?;
    ring_size(libc::XDP_RX_RING, cfg.rx_size, "setsockopt(XDP_RX_RING)")?;
    ring_size(libc::XDP_TX_RING, cfg.tx_size, "setsockopt(XDP_TX_RING)")?;
    let off = mmap_offsets(&fd)?;
    let pg = |o: i64| o as u64;
    let rx = ConsumerRing::new(RingMem::map(
        &fd,
        pg(libc::XDP_PGOFF_RX_RING),
        cfg.rx_size,
        &off.rx,
        "rx",
    )?);
    let tx = ProducerRing::new(RingMem::map(
        &fd,
        pg(libc::XDP_PGOFF_TX_RING),
        cfg.tx_size,
        &off.tx,
        "tx",
    )?);
    let fill = ProducerRing::new(RingMem::map(
        &fd,
        libc::XDP_UMEM_PGOFF_FILL_RING,
        cfg.fill_size,
        &off.fr,
        "fill",
    )?);
    let comp = ConsumerRing::new(RingMem::map(
        &fd,
        libc::XDP_UMEM_PGOFF_COMPLETION_RING,
        cfg.comp_size,
        &off.cr,
        "completion",
    )?);
    bind(&fd, ifname, ifindex, queue, plan)?;
    Ok(Parts {
        rx,
        tx,
        fill,
        comp,
        fd,
    })
}

fn if_index(name: &str) -> Result<u32, XskError> {
    let missing = || XskError::NoSuchInterface(name.to_string());
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(missing());
    }
    let c = CString::new(name).map_err(|_| missing())?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call; the function only reads it.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        Err(missing())
    } else {
        Ok(i)
    }
}

fn xdp_socket() -> Result<OwnedFd, XskError> {
    // SAFETY: socket(2) with integer arguments; no memory is passed.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => XskError::Permission {
                op: "socket(AF_XDP)",
                source: e,
            },
            Some(libc::EAFNOSUPPORT) => XskError::Unsupported(e),
            _ => XskError::Sys {
                op: "socket(AF_XDP)",
                source: e,
            },
        });
    }
    // SAFETY: `fd` was just returned by socket(2): open, and owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `XDP_UMEM_REG`: the kernel pins the area's pages and will read and write frames in it for
/// as long as any socket using this registration is open. Sound because every such socket
/// holds a clone of `umem.area` (the mapping outlives the sockets) and the kernel only touches
/// frames userspace has handed over (tracked by the UMEM).
fn register(fd: &OwnedFd, umem: &Umem) -> Result<(), XskError> {
    let bytes = umem.len() as u64;
    let reg = libc::xdp_umem_reg {
        addr: umem.area.as_mut_ptr() as u64,
        len: bytes,
        chunk_size: umem.frame_size(),
        headroom: 0,
        flags: 0,
        tx_metadata_len: 0,
    };
    setsockopt(fd, libc::XDP_UMEM_REG, &reg).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOMEM | libc::ENOBUFS) => XskError::LockedMemory {
            bytes,
            limit: super::memlock_limit(),
            source: e,
        },
        Some(libc::EPERM) => XskError::Permission {
            op: "setsockopt(XDP_UMEM_REG)",
            source: e,
        },
        _ => XskError::Sys {
            op: "setsockopt(XDP_UMEM_REG)",
            source: e,
        },
    })
}

fn mmap_offsets(fd: &OwnedFd) -> Result<libc::xdp_mmap_offsets, XskError> {
    let z = libc::xdp_ring_offset {
        producer: 0,
        consumer: 0,
        desc: 0,
        flags: 0,
    };
    let zero = libc::xdp_mmap_offsets {
        rx: z,
        tx: z,
        fr: z,
        cr: z,
    };
    let (off, len) = getsockopt(fd, libc::XDP_MMAP_OFFSETS, zero).map_err(|source| XskError::Sys {
        op: "getsockopt(XDP_MMAP_OFFSETS)",
        source,
    })?;
    if len < size_of::<libc::xdp_mmap_offsets>() {
        return Err(XskError::Unsupported(io::Error::other(
            "the kernel's rings have no flags word (XDP_USE_NEED_WAKEUP needs Linux 5.4 or later)",
        )));
    }
    Ok(off)
}

fn bind(fd: &OwnedFd, ifname: &str, ifindex: u32, queue: u32, plan: &Plan) -> Result<(), Failed> {
    let (flags, shared_fd) = match plan {
        // No other flag is allowed with XDP_SHARED_UMEM: the mode and need-wakeup come from
        // the registering socket.
        Plan::Shared(reg, _) => (libc::XDP_SHARED_UMEM, reg.as_raw_fd() as u32),
        Plan::Own(XdpMode::ZeroCopy) => (libc::XDP_ZEROCOPY | libc::XDP_USE_NEED_WAKEUP, 0),
        Plan::Own(XdpMode::Copy) => (libc::XDP_COPY | libc::XDP_USE_NEED_WAKEUP, 0),
    };
    let sa = libc::sockaddr_xdp {
        sxdp_family: libc::AF_XDP as u16,
        sxdp_flags: flags,
        sxdp_ifindex: ifindex,
        sxdp_queue_id: queue,
        sxdp_shared_umem_fd: shared_fd,
    };
    // SAFETY: `sa` is an initialised sockaddr_xdp and the length passed is its size; the
    // kernel copies it and keeps no pointer.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sa).cast::<libc::sockaddr>(),
            size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    let (ifname, zc) = (ifname.to_string(), plan.mode() == XdpMode::ZeroCopy);
    let (error, retry) = match e.raw_os_error() {
        Some(libc::EOPNOTSUPP) if zc => (
            XskError::ZeroCopyUnsupported {
                ifname,
                queue,
                source: e,
            },
            true,
        ),
        Some(libc::EINVAL) => (
            XskError::InvalidQueue {
                ifname,
                queue,
                source: e,
            },
            true,
        ),
        Some(libc::EBUSY) => (
            XskError::QueueBusy {
                ifname,
                queue,
                source: e,
            },
            false,
        ),
        Some(libc::ENODEV) => (XskError::NoSuchInterface(ifname), false),
        Some(libc::EPERM | libc::EACCES) => (
            XskError::Permission {
                op: "bind(AF_XDP)",
                source: e,
            },
            false,
        ),
        // A shared bind refused for another reason: registering our own UMEM may still work.
        _ if matches!(plan, Plan::Shared(..)) => (
            XskError::Sys {
                op: "bind(AF_XDP)",
                source: e,
            },
            true,
        ),
        _ => (
            XskError::Sys {
                op: "bind(AF_XDP)",
                source: e,
            },
            false,
        ),
    };
    Err(Failed { error, retry })
}

/// The mode the kernel actually chose (`XDP_OPTIONS`), if it says.
fn confirm_mode(fd: &OwnedFd) -> Option<XdpMode> {
    let (o, _) = getsockopt(fd, libc::XDP_OPTIONS, libc::xdp_options { flags: 0 }).ok()?;
    Some(if o.flags & libc::XDP_OPTIONS_ZEROCOPY != 0 {
        XdpMode::ZeroCopy
    } else {
        XdpMode::Copy
    })
}

/// Socket option values: integers only, so any bytes the kernel writes are a valid value.
trait Pod: Copy {}
impl Pod for u32 {}
impl Pod for i32 {}
impl Pod for libc::xdp_umem_reg {}
impl Pod for libc::xdp_mmap_offsets {}
impl Pod for libc::xdp_statistics {}
impl Pod for libc::xdp_options {}

fn setsockopt<T: Pod>(fd: &OwnedFd, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to an initialised `T` of exactly the length passed; the kernel
    // copies it in and keeps no pointer.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads an option into `init`; returns it and the length the kernel wrote.
fn getsockopt<T: Pod>(fd: &OwnedFd, name: libc::c_int, init: T) -> io::Result<(T, usize)> {
    let mut v = init;
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `v` is a live `T` of `len` bytes; the kernel writes at most `len` bytes into it
    // and stores the written length in `len`. `T` is integers only (`Pod`), so any bytes
    // written form a valid value.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            name,
            (&raw mut v).cast(),
            &raw mut len,
        )
    };
    if r == 0 {
        Ok((v, len as usize))
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Waits on several sockets at once (a worker going idle), plus any other descriptors the
/// caller adds. Built once; [`PollSet::wait`] allocates nothing.
#[derive(Debug, Default)]
pub struct PollSet {
    fds: Vec<libc::pollfd>,
}

impl PollSet {
    /// Adds a descriptor to wait on for input.
    pub fn add(&mut self, fd: RawFd) {
        self.fds.push(libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
    }

    /// Waits up to `timeout_ms` for input on any descriptor; true if some is ready.
    pub fn wait(&mut self, timeout_ms: i32) -> Result<bool, XskError> {
        let n = libc::nfds_t::try_from(self.fds.len()).unwrap_or(libc::nfds_t::MAX);
        // SAFETY: `fds` is a valid, initialised array of `n` pollfd structures that lives across
        // the call; poll writes only their `revents` fields.
        let r = unsafe { libc::poll(self.fds.as_mut_ptr(), n, timeout_ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                return Ok(false);
            }
            return Err(XskError::Sys {
                op: "poll (AF_XDP sockets)",
                source: e,
            });
        }
        Ok(r > 0)
    }
}
