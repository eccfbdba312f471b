//! The XDP program on a veth port: the router's own traffic and ARP reach the kernel (ping to the
//! router works), transit traffic with no AF_XDP socket on the queue is counted and passed, and
//! dropping the loader detaches it. Needs root (network namespaces).

use std::os::fd::AsRawFd;
use std::process::Command;
use xroute_bpf::{Counter, XdpProgram};
use xroute_tests::harness::{root_or_skip, NetNs};

/// Moves the calling thread into the network namespace `name`.
#[allow(unsafe_code)]
fn enter_netns(name: &str) {
    let f = std::fs::File::open(format!("/run/netns/{name}")).unwrap();
    // SAFETY: setns on a valid namespace descriptor affects only the calling thread (a test
    // thread that ends after the test); the descriptor stays open for the call.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

fn ping(ns: &NetNs, addr: &str, count: &str) -> bool {
    Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "ping", "-c", count, "-i", "0.2", "-W", "1", addr,
        ])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn own_traffic_goes_to_the_kernel_and_the_program_detaches() {
    if !root_or_skip("own_traffic_goes_to_the_kernel_and_the_program_detaches") {
        return;
    }
    let router = NetNs::new();
    let host = NetNs::new();
    router.veth_to("xa", &host, "xb");
    router.exec(&["ip", "addr", "add", "198.18.0.1/24", "dev", "xa"]);
    host.exec(&["ip", "addr", "add", "198.18.0.2/24", "dev", "xb"]);
    host.exec(&["ip", "route", "add", "198.51.100.0/24", "via", "198.18.0.1"]);
    assert!(ping(&host, "198.18.0.1", "1"), "the topology works before XDP");

    let router_name = router.name.clone();
    let (host_ref, router_ref) = (&host, &router);
    std::thread::scope(|s| {
        s.spawn(move || {
            enter_netns(&router_name);
            let mut prog = XdpProgram::attach("xa").unwrap();
            prog.set_local_addresses(&["198.18.0.1".parse().unwrap()])
                .unwrap();
            let shown = String::from_utf8(router_ref.exec(&["ip", "link", "show", "xa"]).stdout).unwrap();
            assert!(shown.contains("xdp"), "{shown}");

            // Traffic for the router reaches the kernel, which answers.
            router_ref.exec(&["ip", "neigh", "flush", "dev", "xa"]);
            assert!(
                ping(host_ref, "198.18.0.1", "3"),
                "ping to the router through XDP"
            );
            let c = prog.counters().unwrap();
            assert!(c[Counter::ToKernel as usize] >= 3, "{c:?}");
            assert!(c[Counter::Rx as usize] >= c[Counter::ToKernel as usize], "{c:?}");

            // Transit with no AF_XDP socket on the queue: counted, passed to the kernel (which
            // does not forward here).
            let before = c[Counter::NoSocket as usize];
            assert!(!ping(host_ref, "198.51.100.7", "2"));
            let c = prog.counters().unwrap();
            assert!(c[Counter::NoSocket as usize] >= before + 2, "{c:?}");

            // Not a local address any more: the same ping is transit now.
            prog.set_local_addresses(&[]).unwrap();
            let before = prog.counters().unwrap()[Counter::NoSocket as usize];
            ping(host_ref, "198.18.0.1", "1");
            assert!(prog.counters().unwrap()[Counter::NoSocket as usize] > before);

            prog.detach();
            let shown = String::from_utf8(router_ref.exec(&["ip", "link", "show", "xa"]).stdout).unwrap();
            assert!(!shown.contains("xdp"), "detached: {shown}");
        })
        .join()
        .unwrap();
    });
    assert!(ping(&host, "198.18.0.1", "1"), "the port works after detaching");
}

#[test]
fn transit_frames_reach_the_af_xdp_socket_and_own_traffic_the_kernel() {
    use xroute_engine::xsk::{Desc, SocketConfig, Umem, UmemConfig, XskSocket};
    if !root_or_skip("transit_frames_reach_the_af_xdp_socket_and_own_traffic_the_kernel") {
        return;
    }
    let router = NetNs::new();
    let host = NetNs::new();
    router.veth_to("xa", &host, "xb");
    router.exec(&["ip", "addr", "add", "198.18.0.1/24", "dev", "xa"]);
    host.exec(&["ip", "addr", "add", "198.18.0.2/24", "dev", "xb"]);
    host.exec(&["ip", "route", "add", "198.51.100.0/24", "via", "198.18.0.1"]);

    let host_ref = &host;
    router.run_in(move || {
        let mut umem = Umem::new(UmemConfig {
            frame_count: 1024,
            frame_size: 2048,
        })
        .unwrap();
        let mut sock = XskSocket::new(&mut umem, "xa", 0, &SocketConfig::default()).unwrap();
        assert_eq!(sock.mode().to_string(), "copy", "veth has no zero-copy");
        assert!(sock.fill(&mut umem, 512).unwrap() > 0);
        let mut prog = XdpProgram::attach("xa").unwrap();
        prog.set_local_addresses(&["198.18.0.1".parse().unwrap()])
            .unwrap();
        prog.register_socket(0, std::os::fd::AsFd::as_fd(&sock)).unwrap();

        // The router's own address still answers through the kernel.
        assert!(ping(host_ref, "198.18.0.1", "2"), "own traffic to the kernel");
        // Transit: the echo requests land on the socket's RX ring, byte for byte.
        assert!(!ping(host_ref, "198.51.100.7", "4"), "nobody forwards yet");
        let mut descs = [Desc::default(); 64];
        let mut got = Vec::new();
        for _ in 0..20 {
            let n = sock.recv(&mut umem, &mut descs).unwrap();
            for d in descs.iter().take(n) {
                got.push(umem.frame(d.addr, d.len as usize).unwrap().to_vec());
                umem.free(d.addr).unwrap();
            }
            if got.len() >= 4 {
                break;
            }
            sock.poll_rx(50).unwrap();
        }
        assert!(got.len() >= 4, "{} frames on the RX ring", got.len());
        for f in &got {
            assert_eq!(&f[12..14], &[0x08, 0x00], "IPv4");
            assert_eq!(f[14 + 9], 1, "ICMP");
            assert_eq!(&f[14 + 16..14 + 20], &[198, 51, 100, 7], "to the transit address");
        }
        let c = prog.counters().unwrap();
        assert!(c[Counter::ToXsk as usize] >= got.len() as u64, "{c:?}");
        prog.unregister_socket(0).unwrap();
        prog.detach();
        sock.close(&mut umem).unwrap();
    });
}
