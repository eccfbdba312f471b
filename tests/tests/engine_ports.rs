//! The engine's port configuration as an operator meets it: wrong flags refused with one line
//! that says what to do and nothing left attached, a port another engine already owns, a
//! `kill -9` that still detaches XDP, and two workers on multi-queue ports sharing the traffic.
//! Needs root (network namespaces).

use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;
use xroute_common::shm::ChannelFile;
use xroute_common::stats::{counter, slot_offset};
use xroute_tests::harness::{bin, root_or_skip, wait_for, NetNs, Proc, TempDir};
use xroute_tests::router::{ping, text, try_exec, Topology};

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn has_xdp(ns: &NetNs, port: &str) -> bool {
    text(&ns.exec(&["ip", "link", "show", port])).contains("xdp")
}

#[test]
fn bad_port_configurations_are_refused_clearly() {
    if !root_or_skip("bad_port_configurations_are_refused_clearly") {
        return;
    }
    let ns = NetNs::new();
    let peer = NetNs::new();
    ns.veth_to("p0", &peer, "q0");
    let dir = TempDir::new("/dev/shm");
    let engine = |extra: &[&str]| {
        let mut cmd = ns.command(std::path::Path::new("timeout"));
        cmd.arg("20")
            .arg(bin("xroute-engine"))
            .args(["run", "--instance", "bad", "--shm-dir"])
            .arg(dir.path())
            .arg("--run-dir")
            .arg(dir.path().join("run"))
            .args(extra);
        let o = cmd.output().unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let mut cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--port", "nope0"],
            "interface \"nope0\" not found in this network namespace",
        ),
        (vec!["--port", "p0", "--port", "p0"], "port \"p0\" is given twice"),
        (
            vec!["--port", "p0", "--cores", "999"],
            "core 999 is not available",
        ),
        (
            vec!["--port", "p0", "--queues", "4"],
            "p0: --queues 4 but the interface has 1 receive queue(s)",
        ),
        (
            vec!["--port", "p0", "--ring-size", "1000"],
            "ring size 1000 is not a power of two",
        ),
        (
            vec!["--port", "p0", "--frame-size", "1500"],
            "frame size 1500 is not 2048 or 4096",
        ),
        (
            vec!["--port", "p0", "--cores", "x"],
            "is not a CPU number or range",
        ),
    ];
    if cpus() >= 2 {
        cases.push((
            vec!["--port", "p0", "--cores", "0,1"],
            "p0 has 1 queue(s) for 2 workers",
        ));
    }
    for (args, want) in &cases {
        let (code, err) = engine(args);
        assert_ne!(code, Some(0), "{args:?} was accepted");
        assert!(err.contains(want), "{args:?}: wanted {want:?}, got:\n{err}");
        assert!(
            err.lines().count() <= 3,
            "{args:?}: one short message, got:\n{err}"
        );
        assert!(!has_xdp(&ns, "p0"), "{args:?} left XDP attached");
    }

    // A port another engine already forwards on: refused, and the first one keeps it.
    let mut first = ns.command(&bin("xroute-engine"));
    first
        .args([
            "run",
            "--instance",
            "first",
            "--port",
            "p0",
            "--cores",
            "0",
            "--shm-dir",
        ])
        .arg(dir.path())
        .arg("--run-dir")
        .arg(dir.path().join("run"));
    let mut first = Proc::spawn("xroute-engine", first, dir.path().join("first.log"));
    let log = dir.path().join("first.log");
    wait_for("the first engine", Duration::from_secs(20), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("forwarding on")
            .then_some(())
    });
    assert!(has_xdp(&ns, "p0"));
    let (code, err) = engine(&["--port", "p0", "--cores", "0"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("p0") && err.contains("XDP"), "{err}");
    assert!(first.is_running(), "the first engine is undisturbed");
    assert!(has_xdp(&ns, "p0"), "and keeps its program");

    // kill -9: the kernel closes the BPF link with the process, so the port is clean.
    first.kill9();
    wait_for("XDP to be detached after kill -9", Duration::from_secs(5), || {
        (!has_xdp(&ns, "p0")).then_some(())
    });
}

#[test]
fn two_workers_share_multi_queue_ports() {
    if !root_or_skip("two_workers_share_multi_queue_ports") {
        return;
    }
    if cpus() < 2 {
        eprintln!("SKIP two_workers_share_multi_queue_ports: needs 2 CPUs");
        return;
    }
    let mut t = Topology::new(2);
    t.start("0,1");
    let log = t.engine.as_ref().unwrap().log_text();
    for q in [
        "r0 queue 0: worker 0",
        "r0 queue 1: worker 1",
        "r1 queue 0: worker 0",
        "r1 queue 1: worker 1",
    ] {
        assert!(log.contains(q), "{q}: {log}");
    }
    for dst in ["198.51.100.2", "203.0.113.1"] {
        let o = ping(&t.a, &["-c", "2", dst]);
        assert!(o.status.success(), "ping {dst}: {}\n{}", text(&o), t.logs());
    }
    let o = ping(&t.a, &["-6", "-c", "2", "2001:db8:3::1"]);
    assert!(o.status.success(), "ping6: {}", text(&o));

    // Many flows (source ports) spread over A's two transmit queues, hence over R's two receive
    // queues and both workers; every datagram must arrive.
    let receiver = "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('0.0.0.0', 9001))\n\
         s.settimeout(3)\n\
         n = 0\n\
         try:\n\
         \x20   while n < 2560:\n\
         \x20       s.recv(100); n += 1\n\
         except socket.timeout:\n\
         \x20   pass\n\
         print(n)\n";
    let b_name = t.b.name.clone();
    let rx = move || {
        Command::new("ip")
            .args([
                "netns", "exec", &b_name, "timeout", "60", "python3", "-c", receiver,
            ])
            .output()
    };
    let sender = "import socket, time\n\
         socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(64)]\n\
         time.sleep(0.5)\n\
         for i in range(40):\n\
         \x20   for s in socks:\n\
         \x20       s.sendto(b'x' * 64, ('198.51.100.2', 9001))\n\
         \x20   time.sleep(0.01)\n";
    let (rx, tx) = std::thread::scope(|s| {
        let h = s.spawn(rx);
        std::thread::sleep(Duration::from_millis(200));
        let tx = try_exec(&t.a, &["timeout", "60", "python3", "-c", sender]);
        (h.join().unwrap().unwrap(), tx)
    });
    assert!(tx.status.success(), "{}", text(&tx));
    assert_eq!(text(&rx).trim(), "2560", "every datagram of 64 flows arrived");

    // Both workers received some of it: their own stats slots (core index 0 and 1, r0 is
    // control port 0).
    let file = ChannelFile::open(&t.dir.path().join("xroute-default"), 1 << 18).unwrap();
    let words = file.stats_words();
    let rx_of = |core: usize| {
        words[slot_offset(core, 0) + counter::RX_PACKETS].load(std::sync::atomic::Ordering::Relaxed)
    };
    assert!(
        rx_of(0) > 0 && rx_of(1) > 0,
        "both workers forwarded: core 0 {} core 1 {}",
        rx_of(0),
        rx_of(1)
    );
    assert!(UnixStream::connect(t.path("run/default/engine.sock")).is_ok());
}
