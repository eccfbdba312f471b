//! The engine's rtnetlink client against the kernel (needs root for its network namespaces).
//! Two namespaces joined by a veth pair, `na` (192.0.2.1/24, 2001:db8:1::1/64) in the router's
//! and `nb` (.2, ::2) in the peer's:
//!
//! - `resolve` of the peer's IPv4 and IPv6 addresses brings REACHABLE events with the peer's
//!   MAC; a second `resolve` of a REACHABLE entry is silent; a dump returns both.
//! - `resolve` of an absent neighbour ends in FAILED with no usable MAC; a bad interface
//!   index comes back as an error event; without `NLM_F_CREATE` the kernel refuses a new
//!   entry (ENOENT), which is why the request carries it.
//! - `resolve` of a STALE entry re-probes it (DELAY, then REACHABLE again).
//! - entries added and deleted by others arrive as events; an overrun socket reports it and
//!   a dump afterwards has everything.
//! - `interface_addresses` lists the namespace's addresses on the right interfaces, with
//!   tentative IPv6 addresses marked.

// poll(2), a small receive buffer and a raw netlink socket for the NLM_F_CREATE check; each
// unsafe block says why it is sound.
#![allow(unsafe_code)]

use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use xroute_engine::netlink::{
    encode_resolve, interface_addresses, parse_messages, InterfaceAddress, KernelNudState, NeighborEvent,
    NeighborUpdate, Netlink,
};
use xroute_tests::harness::{root_or_skip, wait_for, NetNs, TempDir};

const TIMEOUT: Duration = Duration::from_secs(5);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The router's namespace, the peer's, `na`'s interface index and `nb`'s MAC.
struct Link {
    router: NetNs,
    /// Kept for its lifetime: the namespace goes with it.
    _peer: NetNs,
    ifindex: u32,
    peer_mac: [u8; 6],
}

impl Link {
    fn new() -> Self {
        let router = NetNs::new();
        let peer = NetNs::new();
        router.veth_to("na", &peer, "nb");
        router.exec(&["ip", "addr", "add", "192.0.2.1/24", "dev", "na"]);
        router.exec(&["ip", "addr", "add", "2001:db8:1::1/64", "dev", "na", "nodad"]);
        peer.exec(&["ip", "addr", "add", "192.0.2.2/24", "dev", "nb"]);
        peer.exec(&["ip", "addr", "add", "2001:db8:1::2/64", "dev", "nb", "nodad"]);
        // `ip netns exec` mounts the namespace's own /sys.
        let read = |ns: &NetNs, file: &str| String::from_utf8(ns.exec(&["cat", file]).stdout).unwrap();
        let ifindex = read(&router, "/sys/class/net/na/ifindex").trim().parse().unwrap();
        let mac = read(&peer, "/sys/class/net/nb/address");
        let peer_mac: Vec<u8> = mac
            .trim()
            .split(':')
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect();
        Self {
            router,
            _peer: peer,
            ifindex,
            peer_mac: peer_mac.try_into().unwrap(),
        }
    }

    /// The kernel sends a neighbour solicitation that has no packet behind it (NTF_USE) only
    /// from a link-local address that has finished DAD; until then it sends nothing. Waits for
    /// `na`'s (must run inside the router's namespace).
    fn wait_link_local(&self) {
        wait_for("na's link-local address out of DAD", TIMEOUT, || {
            interface_addresses()
                .unwrap()
                .iter()
                .any(|a| {
                    a.ifindex == self.ifindex
                        && matches!(a.addr, IpAddr::V6(v6) if v6.is_unicast_link_local())
                        && !a.is_tentative()
                })
                .then_some(())
        });
    }
}

/// Waits up to `timeout` for the socket to be readable.
fn poll_readable(fd: BorrowedFd<'_>, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one live pollfd, and the count says one.
    let n = unsafe { libc::poll(&mut p, 1, timeout.as_millis().try_into().unwrap()) };
    assert!(n >= 0, "poll: {}", std::io::Error::last_os_error());
    n > 0
}

/// Receives until `done` holds for everything received so far; panics after `timeout`.
fn collect_until(
    nl: &mut Netlink,
    timeout: Duration,
    what: &str,
    mut done: impl FnMut(&[NeighborEvent]) -> bool,
) -> Vec<NeighborEvent> {
    let deadline = Instant::now() + timeout;
    let mut events = Vec::new();
    loop {
        let n = nl.recv(&mut events).unwrap();
        assert!(n <= events.len());
        if done(&events) {
            return events;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out waiting for {what}; got {events:#?}");
        poll_readable(nl.as_fd(), left.min(Duration::from_millis(100)));
    }
}

/// Everything received during `time`.
fn collect_for(nl: &mut Netlink, time: Duration) -> Vec<NeighborEvent> {
    let deadline = Instant::now() + time;
    let mut events = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        poll_readable(nl.as_fd(), left);
        nl.recv(&mut events).unwrap();
    }
    events
}

fn updates_for(events: &[NeighborEvent], addr: IpAddr) -> Vec<NeighborUpdate> {
    events
        .iter()
        .filter_map(|e| match e {
            NeighborEvent::Neighbor(u) if u.addr == addr => Some(*u),
            _ => None,
        })
        .collect()
}

fn errors(events: &[NeighborEvent]) -> Vec<i32> {
    events
        .iter()
        .filter_map(|e| match e {
            NeighborEvent::Error(errno) => Some(*errno),
            _ => None,
        })
        .collect()
}

/// Requests a dump and returns the neighbours in it (events received meanwhile included).
fn dump(nl: &mut Netlink) -> Vec<NeighborEvent> {
    nl.request_neighbor_dump().unwrap();
    let events = collect_until(nl, TIMEOUT, "the end of the dump", |ev| {
        ev.contains(&NeighborEvent::DumpDone)
    });
    assert!(errors(&events).is_empty(), "{events:?}");
    events
}

#[test]
fn resolve_learns_the_peer_mac_and_a_dump_returns_it() {
    if !root_or_skip("resolve_learns_the_peer_mac_and_a_dump_returns_it") {
        return;
    }
    let link = Link::new();
    let (v4, v6) = (ip("192.0.2.2"), ip("2001:db8:1::2"));
    link.router.run_in(|| {
        link.wait_link_local();
        let mut nl = Netlink::open().unwrap();
        nl.resolve(link.ifindex, v4).unwrap();
        nl.resolve(link.ifindex, v6).unwrap();
        let learned = |ev: &[NeighborEvent], addr| {
            updates_for(ev, addr)
                .iter()
                .any(|u| u.usable_mac() == Some(link.peer_mac))
        };
        let events = collect_until(&mut nl, TIMEOUT, "the peer's MAC for both addresses", |ev| {
            learned(ev, v4) && learned(ev, v6)
        });
        assert!(errors(&events).is_empty(), "{events:?}");
        for addr in [v4, v6] {
            let ups = updates_for(&events, addr);
            // The request itself is silent: the first event is the answer.
            assert_eq!(
                ups,
                [NeighborUpdate {
                    ifindex: link.ifindex,
                    addr,
                    mac: Some(link.peer_mac),
                    state: KernelNudState::Reachable,
                    deleted: false,
                }],
                "{events:?}"
            );
        }

        // NTF_USE on a REACHABLE entry only marks it used: no probe, no event, no error.
        nl.resolve(link.ifindex, v4).unwrap();
        nl.resolve(link.ifindex, v6).unwrap();
        let quiet = collect_for(&mut nl, Duration::from_millis(500));
        assert_eq!(updates_for(&quiet, v4), [], "{quiet:?}");
        assert_eq!(updates_for(&quiet, v6), [], "{quiet:?}");
        assert!(errors(&quiet).is_empty(), "{quiet:?}");

        let dumped = dump(&mut nl);
        for addr in [v4, v6] {
            let ups = updates_for(&dumped, addr);
            assert_eq!(ups.len(), 1, "{dumped:?}");
            assert_eq!(
                (ups[0].ifindex, ups[0].usable_mac()),
                (link.ifindex, Some(link.peer_mac))
            );
            assert_eq!(ups[0].state, KernelNudState::Reachable);
        }
        assert_eq!(dumped.last(), Some(&NeighborEvent::DumpDone));
    });
}

#[test]
fn resolve_of_an_absent_neighbor_fails() {
    if !root_or_skip("resolve_of_an_absent_neighbor_fails") {
        return;
    }
    let link = Link::new();
    let (v4, v6) = (ip("192.0.2.99"), ip("2001:db8:1::99"));
    link.router.run_in(|| {
        link.wait_link_local();
        let mut nl = Netlink::open().unwrap();
        nl.resolve(link.ifindex, v4).unwrap();
        nl.resolve(link.ifindex, v6).unwrap();
        let failed = |ev: &[NeighborEvent], addr| {
            updates_for(ev, addr)
                .iter()
                .any(|u| u.state == KernelNudState::Failed)
        };
        // Three probes a second apart, then FAILED.
        let started = Instant::now();
        let events = collect_until(&mut nl, TIMEOUT + Duration::from_secs(1), "FAILED", |ev| {
            failed(ev, v4) && failed(ev, v6)
        });
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(2),
            "failed after {took:?}: {events:?}"
        );
        for addr in [v4, v6] {
            for u in updates_for(&events, addr) {
                assert_eq!(u.usable_mac(), None, "{u:?}");
                assert_eq!((u.ifindex, u.deleted), (link.ifindex, false));
            }
        }
        assert!(errors(&events).is_empty(), "{events:?}");

        // An interface that does not exist: the kernel's error comes back as an event.
        nl.resolve(9999, ip("192.0.2.2")).unwrap();
        let ev = collect_until(&mut nl, TIMEOUT, "an error", |ev| !errors(ev).is_empty());
        assert_eq!(errors(&ev), [libc::ENODEV]);

        // What NLM_F_CREATE is for: without it the kernel refuses to create the entry.
        let mut msg = encode_resolve(1, link.ifindex, ip("192.0.2.77")).unwrap();
        let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
        msg[6..8].copy_from_slice(&flags.to_ne_bytes());
        assert_eq!(raw_request(&msg), [NeighborEvent::Error(libc::ENOENT)]);
        // With it (and an ACK asked for), success, acknowledged with error 0, which the parser
        // drops.
        let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE) as u16;
        msg[6..8].copy_from_slice(&flags.to_ne_bytes());
        assert_eq!(raw_request(&msg), []);
    });
}

/// Sends one request on a fresh netlink socket and parses the answer.
fn raw_request(msg: &[u8]) -> Vec<NeighborEvent> {
    // SAFETY: socket(2) with integer arguments.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` was just returned by socket(2) and is owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `msg` is readable for its length; an unbound netlink socket sends to the kernel.
    let n = unsafe { libc::send(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
    assert_eq!(n, msg.len() as isize, "send: {}", std::io::Error::last_os_error());
    assert!(poll_readable(fd.as_fd(), TIMEOUT), "no answer");
    let mut buf = [0u8; 4096];
    // SAFETY: `buf` is writable for its length for the duration of the call.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    assert!(n > 0, "recv: {}", std::io::Error::last_os_error());
    let mut out = Vec::new();
    parse_messages(&buf[..n as usize], &mut out).unwrap();
    out
}

#[test]
fn resolve_of_a_stale_entry_probes_it_again() {
    if !root_or_skip("resolve_of_a_stale_entry_probes_it_again") {
        return;
    }
    let link = Link::new();
    let v4 = ip("192.0.2.2");
    // The first probe of a used STALE entry waits delay_first_probe_time (5 s by default);
    // shorten it on the test's own interface.
    link.router
        .exec(&["sysctl", "-qw", "net.ipv4.neigh.na.delay_first_probe_time=1"]);
    link.router.run_in(|| {
        let mut nl = Netlink::open().unwrap();
        nl.resolve(link.ifindex, v4).unwrap();
        collect_until(&mut nl, TIMEOUT, "REACHABLE", |ev| {
            updates_for(ev, v4)
                .iter()
                .any(|u| u.state == KernelNudState::Reachable)
        });
        link.router
            .exec(&["ip", "neigh", "change", "192.0.2.2", "dev", "na", "nud", "stale"]);
        let ev = collect_until(&mut nl, TIMEOUT, "STALE", |ev| {
            updates_for(ev, v4)
                .iter()
                .any(|u| u.state == KernelNudState::Stale)
        });
        // STALE still forwards with the old MAC.
        assert_eq!(updates_for(&ev, v4)[0].usable_mac(), Some(link.peer_mac));

        nl.resolve(link.ifindex, v4).unwrap();
        let shown = String::from_utf8(
            link.router
                .exec(&["ip", "neigh", "show", "192.0.2.2", "dev", "na"])
                .stdout,
        )
        .unwrap();
        assert!(
            shown.contains("DELAY"),
            "NTF_USE on a STALE entry starts DELAY: {shown}"
        );
        let ev = collect_until(&mut nl, TIMEOUT, "REACHABLE again", |ev| {
            updates_for(ev, v4)
                .iter()
                .any(|u| u.state == KernelNudState::Reachable)
        });
        let ups = updates_for(&ev, v4);
        assert!(
            ups.iter().all(|u| u.usable_mac() == Some(link.peer_mac)),
            "{ups:?}"
        );
        assert!(errors(&ev).is_empty(), "{ev:?}");
    });
}

#[test]
fn events_from_others_and_overruns() {
    if !root_or_skip("events_from_others_and_overruns") {
        return;
    }
    let link = Link::new();
    let other = ip("192.0.2.50");
    let mac = [0x02, 0x00, 0x5e, 0x00, 0x53, 0x50];
    link.router.run_in(|| {
        let mut nl = Netlink::open().unwrap();
        link.router.exec(&[
            "ip",
            "neigh",
            "add",
            "192.0.2.50",
            "lladdr",
            "02:00:5e:00:53:50",
            "dev",
            "na",
            "nud",
            "permanent",
        ]);
        let ev = collect_until(&mut nl, TIMEOUT, "the added entry", |ev| {
            !updates_for(ev, other).is_empty()
        });
        let u = updates_for(&ev, other)[0];
        assert_eq!(
            (u.state, u.usable_mac(), u.ifindex),
            (KernelNudState::Permanent, Some(mac), link.ifindex)
        );
        link.router
            .exec(&["ip", "neigh", "del", "192.0.2.50", "dev", "na"]);
        let ev = collect_until(&mut nl, TIMEOUT, "the deletion", |ev| {
            updates_for(ev, other).iter().any(|u| u.deleted)
        });
        assert!(
            updates_for(&ev, other).iter().all(|u| u.usable_mac().is_none()),
            "{ev:?}"
        );

        // A receive buffer far too small for a burst of events: the socket overruns.
        let small: libc::c_int = 4096;
        // SAFETY: the option value is a live c_int of the length passed.
        let rc = unsafe {
            libc::setsockopt(
                nl.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&raw const small).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
        const N: usize = 300;
        let dir = TempDir::new("/tmp");
        let batch = dir.path().join("neigh.batch");
        let lines: String = (0..N)
            .map(|i| {
                format!(
                    "neigh add 198.18.{}.{} lladdr 02:00:5e:00:53:01 dev na nud permanent\n",
                    i / 250,
                    i % 250 + 1
                )
            })
            .collect();
        std::fs::write(&batch, lines).unwrap();
        link.router.exec(&["ip", "-batch", batch.to_str().unwrap()]);
        let ev = collect_until(&mut nl, TIMEOUT, "an overrun", |ev| {
            ev.contains(&NeighborEvent::Overrun)
        });
        let seen = ev
            .iter()
            .filter(|e| matches!(e, NeighborEvent::Neighbor(_)))
            .count();
        assert!(seen < N, "{seen} events of {N} with an overrun");

        // The dump after an overrun has everything.
        let dumped = dump(&mut nl);
        let mut found = 0;
        for i in 0..N {
            let addr = ip(&format!("198.18.{}.{}", i / 250, i % 250 + 1));
            let ups = updates_for(&dumped, addr);
            if ups.iter().any(|u| {
                u.state == KernelNudState::Permanent && u.usable_mac() == Some([2, 0, 0x5e, 0, 0x53, 1])
            }) {
                found += 1;
            }
        }
        assert_eq!(found, N);
    });
}

#[test]
fn interface_addresses_lists_the_namespace_addresses() {
    if !root_or_skip("interface_addresses_lists_the_namespace_addresses") {
        return;
    }
    let link = Link::new();
    let addrs = link.router.run_in(|| interface_addresses().unwrap());
    let find = |addr: IpAddr| -> Vec<InterfaceAddress> {
        addrs.iter().filter(|a| a.addr == addr).copied().collect()
    };
    let v4 = find(ip("192.0.2.1"));
    assert_eq!(v4.len(), 1, "{addrs:?}");
    assert_eq!((v4[0].ifindex, v4[0].prefix_len), (link.ifindex, 24));
    assert!(!v4[0].is_tentative());
    let v6 = find(ip("2001:db8:1::1"));
    assert_eq!(v6.len(), 1, "{addrs:?}");
    assert_eq!((v6[0].ifindex, v6[0].prefix_len), (link.ifindex, 64));
    assert!(!v6[0].is_tentative(), "nodad: {:?}", v6[0]);
    assert_eq!(v6[0].flags & libc::IFA_F_NODAD, libc::IFA_F_NODAD);
    let lo = find(ip("127.0.0.1"));
    assert_eq!(
        (lo.len(), lo[0].ifindex, lo[0].prefix_len),
        (1, 1, 8),
        "{addrs:?}"
    );
    assert!(
        addrs
            .iter()
            .any(|a| a.ifindex == link.ifindex
                && matches!(a.addr, IpAddr::V6(v6) if v6.is_unicast_link_local())),
        "{addrs:?}"
    );
    // Only this namespace.
    assert!(
        find(ip("192.0.2.2")).is_empty() && find(ip("2001:db8:1::2")).is_empty(),
        "{addrs:?}"
    );
    assert!(
        addrs.iter().all(|a| a.ifindex == 1 || a.ifindex == link.ifindex),
        "{addrs:?}"
    );

    // An address under DAD is listed and marked tentative.
    link.router
        .exec(&["ip", "addr", "add", "2001:db8:2::1/64", "dev", "na"]);
    let addrs = link.router.run_in(|| interface_addresses().unwrap());
    let dad: Vec<_> = addrs.iter().filter(|a| a.addr == ip("2001:db8:2::1")).collect();
    assert_eq!(dad.len(), 1, "{addrs:?}");
    assert!(dad[0].is_tentative(), "{:?}", dad[0]);
}
