//! The engine forwarding for real: host A - router - host B, each in its own network namespace,
//! joined by veth pairs; the router runs `xroute-engine` on both ports and `xroute-control`
//! with connected and static routes. The router namespace's kernel does NOT forward
//! (ip_forward=0): whatever crosses it went through XDP, AF_XDP and the engine's workers.
//!
//! Checked, IPv4 and IPv6: ping through the router (connected and via a gateway), ping to the
//! router itself, traceroute showing the router's hop, TTL 1 -> time exceeded, no route ->
//! unreachable, DF over a small egress MTU -> fragmentation needed / packet too big, a large
//! packet without DF fragmented and reassembled at B, next-hop MACs learnt with no static
//! entry, a UDP stream complete and in order while malformed frames are thrown at the router
//! (each counted under its reason), and a clean stop (XDP detached). Needs root.

use std::process::{Command, Stdio};
use std::time::Duration;
use xroute_tests::harness::{root_or_skip, wait_for, NetNs, Proc};
use xroute_tests::router::{ping, text, try_exec, Topology};

/// Sends `count` numbered UDP datagrams from A to B at a bounded rate while B records them;
/// `during` runs while the stream flows. Returns what B received, in arrival order.
fn udp_stream(t: &Topology, dst: &str, count: u32, during: impl FnOnce()) -> Vec<u32> {
    let out = t.path("udp-received.txt");
    let family = if dst.contains(':') { "AF_INET6" } else { "AF_INET" };
    let bind = if dst.contains(':') { "::" } else { "0.0.0.0" };
    let receiver = format!(
        "import socket\n\
         s = socket.socket(socket.{family}, socket.SOCK_DGRAM)\n\
         s.bind(('{bind}', 9000))\n\
         s.settimeout(3)\n\
         got = []\n\
         try:\n\
         \x20   while len(got) < {count}:\n\
         \x20       got.append(s.recv(100).decode())\n\
         except socket.timeout:\n\
         \x20   pass\n\
         open('{out}', 'w').write('\\n'.join(got))\n",
        out = out.display()
    );
    let mut rx = t.b.command(std::path::Path::new("timeout"));
    rx.args(["60", "python3", "-c", &receiver]);
    let rx = Proc::spawn("udp-receiver", rx, t.path("udp-receiver.log"));
    std::thread::sleep(Duration::from_millis(500));
    let sender = format!(
        "import socket, time\n\
         s = socket.socket(socket.{family}, socket.SOCK_DGRAM)\n\
         for i in range({count}):\n\
         \x20   s.sendto(str(i).encode(), ('{dst}', 9000))\n\
         \x20   if i % 50 == 49: time.sleep(0.01)\n"
    );
    let mut tx = Command::new("ip");
    tx.args([
        "netns", "exec", &t.a.name, "timeout", "60", "python3", "-c", &sender,
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let tx = tx.spawn().unwrap();
    during();
    let o = tx.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "sender: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut rx = rx;
    wait_for("the UDP receiver to finish", Duration::from_secs(30), || {
        (!rx.is_running()).then_some(())
    });
    std::fs::read_to_string(&out)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect()
}

/// Throws malformed IPv4 frames at the router's r0 from A's a0 (raw AF_PACKET socket): a bad
/// header checksum, an IHL of 3, a frame cut short inside the header, a total length larger
/// than the frame. Five of each.
fn send_malformed(t: &Topology, router_mac: &str) {
    let script = format!(
        "import socket, struct\n\
         def csum(b):\n\
         \x20   s = sum(struct.unpack('!%dH' % (len(b)//2), b))\n\
         \x20   s = (s >> 16) + (s & 0xffff); s += s >> 16\n\
         \x20   return (~s) & 0xffff\n\
         def ip(ihl=5, total=48, good=True):\n\
         \x20   h = struct.pack('!BBHHHBBH4s4s', 0x40 | ihl, 0, total, 1, 0, 64, 17, 0,\n\
         \x20       socket.inet_aton('192.0.2.2'), socket.inet_aton('198.51.100.2'))\n\
         \x20   c = csum(h)\n\
         \x20   if not good: c ^= 0x5555\n\
         \x20   return h[:10] + struct.pack('!H', c) + h[12:]\n\
         dst = bytes.fromhex('{mac}'.replace(':', ''))\n\
         src = open('/sys/class/net/a0/address').read().strip()\n\
         eth = dst + bytes.fromhex(src.replace(':', '')) + b'\\x08\\x00'\n\
         udp = struct.pack('!HHHH', 1234, 9999, 28, 0) + b'x' * 20\n\
         frames = [eth + ip(good=False) + udp, eth + ip(ihl=3) + udp, eth + ip()[:12],\n\
         \x20         eth + ip(total=1400) + udp]\n\
         s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n\
         s.bind(('a0', 0))\n\
         for f in frames:\n\
         \x20   for _ in range(5): s.send(f)\n",
        mac = router_mac
    );
    let o = t.a.exec(&["timeout", "20", "python3", "-c", &script]);
    assert!(o.status.success(), "raw sender: {}", text(&o));
}

#[test]
fn forwards_between_hosts_like_a_router() {
    if !root_or_skip("forwards_between_hosts_like_a_router") {
        return;
    }
    let mut t = Topology::new(1);
    // Without the engine the router's kernel does not forward: the path is really the engine's.
    assert!(!ping(&t.a, &["-c", "1", "198.51.100.2"]).status.success());
    t.start("0");
    let r0_mac = text(&t.r.exec(&["cat", "/sys/class/net/r0/address"]))
        .trim()
        .to_string();
    let shown = text(&t.r.exec(&["ip", "link", "show", "r0"]));
    assert!(shown.contains("xdp"), "XDP attached: {shown}");

    // Ping through the router: connected destination and behind a gateway, both families.
    for (dst, v6) in [
        ("198.51.100.2", false),
        ("203.0.113.1", false),
        ("2001:db8:2::2", true),
        ("2001:db8:3::1", true),
    ] {
        let mut args = vec!["-c", "3"];
        if v6 {
            args.insert(0, "-6");
        }
        args.push(dst);
        let o = ping(&t.a, &args);
        assert!(
            o.status.success(),
            "ping {dst} through the router: {}\n{}",
            text(&o),
            t.logs()
        );
    }
    // And from B's side back to A.
    let o = ping(&t.b, &["-c", "2", "192.0.2.2"]);
    assert!(o.status.success(), "ping B -> A: {}", text(&o));

    // The router's own addresses answer (through the kernel).
    for dst in ["192.0.2.1", "198.51.100.1", "2001:db8:1::1"] {
        let o = ping(&t.a, &["-c", "2", dst]);
        assert!(o.status.success(), "ping the router at {dst}: {}", text(&o));
    }

    // What the XDP program passed to the kernel shows as the port's to_kernel counter.
    wait_for("r0's to_kernel counter", Duration::from_secs(5), || {
        (t.counter("r0", "to_kernel") >= 4).then_some(())
    });

    // Next hops were learnt dynamically: no static neighbour anywhere, yet the router knows B.
    let neigh = text(&t.r.exec(&["ip", "neigh", "show", "dev", "r1"]));
    let b_mac = text(&t.b.exec(&["cat", "/sys/class/net/b0/address"]))
        .trim()
        .to_string();
    assert!(
        neigh.contains("198.51.100.2") && neigh.contains(&b_mac) && !neigh.contains("PERMANENT"),
        "{neigh}"
    );
    let n = t.ctl(&["neighbors"]);
    let entry = n
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["address"] == "198.51.100.2")
        .unwrap_or_else(|| panic!("B among the engine's neighbours: {n}"));
    assert_eq!(entry["mac"], b_mac.as_str(), "{n}");
    assert_eq!(entry["dev"], "r1");
    assert_eq!(entry["state"], "reachable");
    assert!(
        !entry["adjacency"].is_null(),
        "B is also the gateway of 203.0.113.0/24: {n}"
    );
    assert!(
        n.as_array()
            .unwrap()
            .iter()
            .any(|e| e["address"] == "192.0.2.2" && e["dev"] == "r0"),
        "A, a connected host the engine forwarded to: {n}"
    );
    let lookup = t.ctl(&["fib", "lookup", "203.0.113.1"]);
    assert!(
        lookup.to_string().contains(&b_mac),
        "the gateway adjacency carries B's MAC: {lookup}"
    );

    // TTL 1: time exceeded from the router; traceroute shows the router as hop 1.
    let o = ping(&t.a, &["-c", "1", "-t", "1", "198.51.100.2"]);
    let s = text(&o);
    assert!(
        s.contains("From 192.0.2.1") && s.contains("Time to live exceeded"),
        "{s}"
    );
    let o = ping(&t.a, &["-6", "-c", "1", "-t", "1", "2001:db8:2::2"]);
    let s = text(&o);
    assert!(
        s.contains("From 2001:db8:1::1") && s.contains("Time exceeded"),
        "{s}"
    );
    for (dst, hop) in [("198.51.100.2", "192.0.2.1"), ("2001:db8:2::2", "2001:db8:1::1")] {
        let o = try_exec(
            &t.a,
            &[
                "timeout",
                "30",
                "traceroute",
                "-n",
                "-q",
                "1",
                "-w",
                "2",
                "-m",
                "3",
                dst,
            ],
        );
        let s = text(&o);
        let lines: Vec<&str> = s.lines().collect();
        assert!(
            lines
                .iter()
                .any(|l| l.trim_start().starts_with("1 ") && l.contains(hop)),
            "traceroute {dst}: hop 1 is the router\n{s}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.trim_start().starts_with("2 ") && l.contains(dst)),
            "traceroute {dst}: hop 2 is the destination\n{s}"
        );
    }

    // No route: destination unreachable from the router.
    let o = ping(&t.a, &["-c", "1", "198.18.7.7"]);
    let s = text(&o);
    assert!(s.contains("From 192.0.2.1") && s.contains("Unreachable"), "{s}");
    let o = ping(&t.a, &["-6", "-c", "1", "2001:db8:77::7"]);
    let s = text(&o);
    assert!(
        s.contains("From 2001:db8:1::1") && s.contains("nreachable"),
        "{s}"
    );
    assert!(t.counter("r0", "no_route") >= 2);

    // A connected host that does not exist: the kernel's ARP fails, the held packet is dropped
    // and the sender hears host unreachable from the router.
    let o = ping(&t.a, &["-c", "1", "-W", "6", "198.51.100.99"]);
    let s = text(&o);
    assert!(
        s.contains("From 192.0.2.1") && s.contains("Host Unreachable"),
        "{s}"
    );
    assert!(t.counter("r0", "neighbor_failed") >= 1);

    // DF over the 1400-byte egress MTU: fragmentation needed / packet too big, with the MTU.
    let o = ping(&t.a, &["-c", "2", "-M", "do", "-s", "1472", "198.51.100.2"]);
    let s = text(&o);
    assert!(s.contains("mtu = 1400") || s.contains("mtu=1400"), "{s}");
    let o = ping(
        &t.a,
        &["-6", "-c", "2", "-M", "do", "-s", "1452", "2001:db8:2::2"],
    );
    let s = text(&o);
    assert!(s.contains("mtu=1400") || s.contains("mtu = 1400"), "{s}");

    // Without DF: the router fragments, B reassembles and answers.
    let reasm = |ns: &NetNs| -> u64 {
        let s = text(&ns.exec(&["cat", "/proc/net/snmp"]));
        let lines: Vec<&str> = s.lines().filter(|l| l.starts_with("Ip:")).collect();
        let names: Vec<&str> = lines[0].split_whitespace().collect();
        let values: Vec<&str> = lines[1].split_whitespace().collect();
        let i = names.iter().position(|n| *n == "ReasmOKs").unwrap();
        values[i].parse().unwrap()
    };
    let before = reasm(&t.b);
    let o = ping(&t.a, &["-c", "3", "-M", "dont", "-s", "1472", "198.51.100.2"]);
    assert!(o.status.success(), "large ping without DF: {}", text(&o));
    assert!(reasm(&t.b) >= before + 3, "B reassembled the router's fragments");

    // A UDP stream arrives complete and in order while malformed frames hit the router.
    let drops_before: Vec<u64> = ["bad_checksum", "bad_header_length", "truncated", "bad_length"]
        .iter()
        .map(|n| t.counter("r0", n))
        .collect();
    let got = udp_stream(&t, "198.51.100.2", 3000, || send_malformed(&t, &r0_mac));
    assert_eq!(got.len(), 3000, "every datagram arrived");
    assert!(got.windows(2).all(|w| w[0] + 1 == w[1]), "in order");
    let got = udp_stream(&t, "2001:db8:2::2", 1000, || {});
    assert_eq!(got.len(), 1000);
    assert!(got.windows(2).all(|w| w[0] + 1 == w[1]));
    for (i, n) in ["bad_checksum", "bad_header_length", "truncated", "bad_length"]
        .iter()
        .enumerate()
    {
        let now = t.counter("r0", n);
        assert!(now >= drops_before[i] + 5, "{n}: {} -> {now}", drops_before[i]);
    }
    assert!(t.counter("r0", "rx_packets") >= 3000);
    assert!(t.counter("r1", "tx_packets") >= 4000);

    // Stop: XDP detached from both ports, the process gone, nothing left behind.
    let mut engine = t.engine.take().unwrap();
    assert!(engine.stop(Duration::from_secs(10)), "engine stops on SIGTERM");
    let log = engine.log_text();
    assert!(log.contains("XDP detached"), "{log}");
    for port in ["r0", "r1"] {
        let shown = text(&t.r.exec(&["ip", "link", "show", port]));
        assert!(!shown.contains("xdp"), "{port} still has XDP: {shown}");
    }
    assert!(
        !ping(&t.a, &["-c", "1", "198.51.100.2"]).status.success(),
        "nothing forwards once the engine is gone"
    );
    let o = ping(&t.a, &["-c", "1", "192.0.2.1"]);
    assert!(
        o.status.success(),
        "the router's kernel still answers: {}",
        text(&o)
    );
}
