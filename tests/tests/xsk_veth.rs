//! The AF_XDP socket layer on a real veth pair (needs root for its network namespace):
//! mode selection and its errors, then 1000 distinct frames through the TX ring of a socket on
//! `xa`, every frame address back exactly once on the completion ring, and every frame
//! received intact on `xb` by an AF_PACKET socket; then a second socket on `xb` sharing the
//! UMEM (`XDP_SHARED_UMEM`) sends the other way.
//!
//! Not covered here: the RX ring carrying packets. The kernel fills an AF_XDP RX ring only
//! when an XDP program redirects into an XSKMAP, and that program is another module (bpf/).
//! The RX ring runs the same consumer-ring code as the completion ring exercised here; this
//! test checks only that the fill ring takes frames and that an empty RX ring yields nothing.

// The AF_PACKET receiver needs a few raw socket calls (there is no AF_PACKET in std); each
// unsafe block says why it is sound.
#![allow(unsafe_code)]

use std::collections::HashSet;
use std::io;
use std::ops::Range;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use xroute_engine::packet::wire::checksum;
use xroute_engine::xsk::{
    BindMode, Desc, FrameOwner, SocketConfig, Umem, UmemConfig, XdpMode, XskError, XskSocket,
};
use xroute_tests::harness::{root_or_skip, NetNs};

const XA_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const XB_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
const MAGIC: &[u8; 4] = b"XRTX";
const FRAME_LEN: usize = 64;
const BATCH: usize = 64;
const DEADLINE: Duration = Duration::from_secs(10);

/// A 64-byte Ethernet + IPv4 + UDP frame from 198.18.0.1 to 198.18.0.2 carrying `seq`.
fn frame(seq: u32, src: [u8; 6], dst: [u8; 6]) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((FRAME_LEN - 14) as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&(seq as u16).to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[198, 18, 0, 1]);
    ip[16..20].copy_from_slice(&[198, 18, 0, 2]);
    let c = checksum::checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    udp[2..4].copy_from_slice(&9u16.to_be_bytes());
    udp[4..6].copy_from_slice(&((FRAME_LEN - 34) as u16).to_be_bytes());
    f[42..46].copy_from_slice(MAGIC);
    f[46..50].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in f[50..].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_mul(7).wrapping_add(i as u8);
    }
    f
}

/// An AF_PACKET socket receiving every frame arriving on one interface.
struct PacketSocket(OwnedFd);

impl PacketSocket {
    fn open(ifname: &str) -> Self {
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: socket(2) with integer arguments.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(proto),
            )
        };
        assert!(fd >= 0, "socket(AF_PACKET): {}", io::Error::last_os_error());
        // SAFETY: `fd` was just returned by socket(2) and is owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let name = std::ffi::CString::new(ifname).unwrap();
        // SAFETY: `name` is a NUL-terminated string that outlives the call.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert_ne!(ifindex, 0, "{ifname}: {}", io::Error::last_os_error());
        // Room for every test frame even if this thread reads late (root may exceed rmem_max).
        let rcvbuf: libc::c_int = 8 << 20;
        setsockopt(&fd, libc::SO_RCVBUFFORCE, &rcvbuf);
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        setsockopt(&fd, libc::SO_RCVTIMEO, &timeout);
        let sa = libc::sockaddr_ll {
            sll_family: libc::AF_PACKET as u16,
            sll_protocol: proto,
            sll_ifindex: ifindex as i32,
            sll_hatype: 0,
            sll_pkttype: 0,
            sll_halen: 0,
            sll_addr: [0; 8],
        };
        // SAFETY: `sa` is an initialised sockaddr_ll and the length is its size.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sa).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0, "bind(AF_PACKET, {ifname}): {}", io::Error::last_os_error());
        Self(fd)
    }

    /// One frame, or `None` after the 100 ms receive timeout.
    fn recv(&self, buf: &mut [u8]) -> Option<usize> {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the duration of the call.
        let n = unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            assert!(
                matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)),
                "recv(AF_PACKET): {e}"
            );
            return None;
        }
        Some(n as usize)
    }
}

fn setsockopt<T>(fd: &OwnedFd, name: libc::c_int, value: &T) {
    // SAFETY: `value` is an initialised `T` and the length passed is its size.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "setsockopt({name}): {}", io::Error::last_os_error());
}

/// Sends one frame per sequence number through `sock`'s TX ring in batches, kicking only when
/// the ring asks, and reaps the completion ring until every frame address came back exactly
/// once. Returns the number of `sendto` kicks.
fn transmit(umem: &mut Umem, sock: &mut XskSocket, seqs: Range<u32>, src: [u8; 6], dst: [u8; 6]) -> usize {
    let mut descs = Vec::new();
    for seq in seqs {
        let addr = umem.alloc().expect("a free frame per test packet");
        umem.frame_mut(addr, FRAME_LEN)
            .unwrap()
            .copy_from_slice(&frame(seq, src, dst));
        descs.push(Desc {
            addr,
            len: FRAME_LEN as u32,
            options: 0,
        });
    }
    let sent: HashSet<u64> = descs.iter().map(|d| d.addr).collect();
    assert_eq!(sent.len(), descs.len(), "distinct frames");
    let mut back = HashSet::new();
    let mut next = 0;
    let mut kicks = 0;
    let mut completed = [0u64; BATCH];
    let deadline = Instant::now() + DEADLINE;
    while back.len() < descs.len() {
        assert!(
            Instant::now() < deadline,
            "{} of {} frames completed after {DEADLINE:?} ({} queued, stats {:?})",
            back.len(),
            descs.len(),
            next,
            sock.stats()
        );
        if next < descs.len() {
            let end = (next + BATCH).min(descs.len());
            next += sock.send(umem, &descs[next..end]).unwrap();
        }
        if sock.flush_tx().unwrap() {
            kicks += 1;
        }
        let n = sock.complete(umem, &mut completed).unwrap();
        for &addr in &completed[..n] {
            assert!(
                sent.contains(&addr),
                "completion of a frame never sent: {addr:#x}"
            );
            assert!(back.insert(addr), "frame {addr:#x} completed twice");
            umem.free(addr).unwrap();
        }
        if n == 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    assert_eq!(sock.tx_in_flight(), 0);
    assert_eq!(
        sock.complete(umem, &mut completed).unwrap(),
        0,
        "nothing after the last"
    );
    kicks
}

/// Receives until every sequence number in `seqs` arrived once, byte for byte as sent.
fn receive(pkt: &PacketSocket, seqs: Range<u32>, src: [u8; 6], dst: [u8; 6]) {
    let mut seen = vec![false; seqs.len()];
    let mut count = 0;
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + DEADLINE;
    while count < seen.len() && Instant::now() < deadline {
        let Some(n) = pkt.recv(&mut buf) else { continue };
        let f = &buf[..n];
        // Skip what the kernel sends on its own (IPv6 router solicitations, MLD...).
        if n < 50 || f[12..14] != [0x08, 0x00] || &f[42..46] != MAGIC {
            continue;
        }
        let seq = u32::from_be_bytes([f[46], f[47], f[48], f[49]]);
        assert!(seqs.contains(&seq), "unexpected sequence number {seq}");
        assert_eq!(f, &frame(seq, src, dst)[..], "frame {seq} changed in flight");
        let i = (seq - seqs.start) as usize;
        assert!(!seen[i], "frame {seq} received twice");
        seen[i] = true;
        count += 1;
    }
    let missing: Vec<u32> = seqs
        .clone()
        .filter(|s| !seen[(s - seqs.start) as usize])
        .take(10)
        .collect();
    assert_eq!(
        count,
        seen.len(),
        "frames missing after {DEADLINE:?}, first: {missing:?}"
    );
}

fn config(mode: BindMode) -> SocketConfig {
    SocketConfig {
        mode,
        // Smaller than the 1000 frames, so the indices wrap round the rings several times.
        rx_size: 256,
        tx_size: 256,
        fill_size: 256,
        comp_size: 256,
        tx_skb_budget: Some(256),
    }
}

#[test]
fn xsk_on_veth() {
    if !root_or_skip("xsk_on_veth") {
        return;
    }
    let ns = NetNs::new();
    ns.veth_pair_single_queue("xa", "02:00:00:00:00:0a", "xb", "02:00:00:00:00:0b");
    ns.run_in(|| {
        let mut umem = Umem::new(UmemConfig {
            frame_count: 2048,
            frame_size: 2048,
        })
        .unwrap();

        // veth has no zero-copy: forcing it fails, and says so.
        let err = XskSocket::new(&mut umem, "xa", 0, &config(BindMode::ZeroCopyOnly)).unwrap_err();
        eprintln!("forced zero-copy: {err}");
        assert!(matches!(err, XskError::ZeroCopyUnsupported { .. }), "{err:?}");
        assert!(err.to_string().contains("xa queue 0: zero-copy"), "{err}");

        let err = XskSocket::new(&mut umem, "nosuch0", 0, &config(BindMode::Auto)).unwrap_err();
        assert!(matches!(err, XskError::NoSuchInterface(_)), "{err:?}");
        let err = XskSocket::new(&mut umem, "xa", 7, &config(BindMode::CopyOnly)).unwrap_err();
        eprintln!("missing queue: {err}");
        assert!(matches!(err, XskError::InvalidQueue { queue: 7, .. }), "{err:?}");

        // Auto: copy mode, with the reason.
        let mut xa = XskSocket::new(&mut umem, "xa", 0, &config(BindMode::Auto)).unwrap();
        assert_eq!(xa.mode(), XdpMode::Copy);
        assert_eq!(xa.mode().to_string(), "copy");
        assert!(!xa.is_shared());
        let why = xa.fallback().expect("auto mode says why zero-copy was not used");
        assert!(why.contains("zero-copy"), "{why}");
        eprintln!(
            "xa queue 0: AF_XDP in {} mode ({why}); TX budget raised: {}; fd {}",
            xa.mode(),
            xa.tx_budget_set(),
            xa.as_raw_fd()
        );

        let err = XskSocket::new(&mut umem, "xa", 0, &config(BindMode::CopyOnly)).unwrap_err();
        eprintln!("second socket on the queue: {err}");
        assert!(matches!(err, XskError::QueueBusy { .. }), "{err:?}");

        // RX side as far as it goes without an XDP program: the fill ring takes frames, and the
        // RX ring is empty.
        assert_eq!(xa.fill(&mut umem, 64).unwrap(), 64);
        assert_eq!(umem.free_frames(), 2048 - 64);
        let mut rx = [Desc::default(); 16];
        assert_eq!(xa.recv(&mut umem, &mut rx).unwrap(), 0);
        xa.wake_rx_if_needed().unwrap();

        // Frames handed to the kernel can be neither read nor sent again.
        let first = umem.alloc().unwrap();
        let d = Desc {
            addr: first,
            len: 64,
            options: 0,
        };
        assert_eq!(xa.send(&mut umem, &[d]).unwrap(), 1);
        assert!(umem.frame(first, 64).is_none());
        assert!(matches!(xa.send(&mut umem, &[d]), Err(XskError::Frame { .. })));
        let mut back = [0u64; 4];
        let deadline = Instant::now() + DEADLINE;
        while xa.tx_in_flight() > 0 {
            assert!(Instant::now() < deadline, "the single frame never completed");
            xa.flush_tx().unwrap();
            if xa.complete(&mut umem, &mut back).unwrap() == 1 {
                assert_eq!(back[0], first);
            }
        }
        assert_eq!(umem.owner(first), Some(FrameOwner::User));
        umem.free(first).unwrap();

        // 1000 frames xa -> xb.
        let pkt_b = PacketSocket::open("xb");
        let start = Instant::now();
        let kicks = transmit(&mut umem, &mut xa, 0..1000, XA_MAC, XB_MAC);
        receive(&pkt_b, 0..1000, XA_MAC, XB_MAC);
        eprintln!(
            "1000 frames xa -> xb in {:?} with {kicks} sendto kicks",
            start.elapsed()
        );

        // A socket on xb sharing the UMEM sends 200 frames back to xa.
        let mut xb = XskSocket::new(&mut umem, "xb", 0, &config(BindMode::Auto)).unwrap();
        assert!(xb.is_shared(), "{:?}", xb.fallback());
        assert_eq!(xb.mode(), XdpMode::Copy);
        let pkt_a = PacketSocket::open("xa");
        transmit(&mut umem, &mut xb, 5000..5200, XB_MAC, XA_MAC);
        receive(&pkt_a, 5000..5200, XB_MAC, XA_MAC);

        // The wrong UMEM is refused.
        let mut other = Umem::new(UmemConfig {
            frame_count: 16,
            frame_size: 2048,
        })
        .unwrap();
        assert!(matches!(xb.recv(&mut other, &mut rx), Err(XskError::WrongUmem)));

        for s in [&xa, &xb] {
            let st = s.stats().unwrap();
            assert_eq!(st.tx_invalid_descs, 0, "{st:?}");
            assert_eq!(s.anomalies(), 0);
        }
        assert_eq!(
            umem.free_frames(),
            2048 - 64,
            "every TX frame back; 64 on xa's fill ring"
        );
        // Closing gives back what the kernel still had (xa's fill ring) and frees the queues.
        assert_eq!(xa.close(&mut umem).unwrap(), 64);
        assert_eq!(xb.close(&mut umem).unwrap(), 0);
        assert_eq!(umem.free_frames(), 2048);
        // The kernel frees the queue in deferred work after close returns: retry while busy.
        let closed = Instant::now();
        let again = loop {
            match XskSocket::new(&mut umem, "xa", 0, &config(BindMode::CopyOnly)) {
                Err(XskError::QueueBusy { .. }) if closed.elapsed() < Duration::from_secs(5) => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                other => break other.unwrap(),
            }
        };
        eprintln!("xa queue 0 bindable again {:?} after close", closed.elapsed());
        assert!(!again.is_shared(), "the first registration died with xa");
        drop(again);
    });
}
