//! Frames the kernel drops before a worker sees them are counted too: with the engine stopped
//! (SIGSTOP), the router's kernel keeps steering A's packets into the AF_XDP socket until its
//! receive ring is full (or its fill ring empty); once the engine runs again, `xroutectl
//! counters` shows those frames under `rx_ring_full` / `rx_fill_empty`, and every frame that
//! reached the router's port is accounted for. Needs root.

use std::time::Duration;
use xroute_tests::harness::{root_or_skip, wait_for};
use xroute_tests::router::{ping, text, Topology};

/// Datagrams A sends while the engine is stopped: several times the socket's rings.
const SENT: u64 = 20_000;

#[test]
fn frames_dropped_by_the_kernel_are_counted() {
    if !root_or_skip("frames_dropped_by_the_kernel_are_counted") {
        return;
    }
    let mut t = Topology::new(1);
    t.start("0");
    let o = ping(&t.a, &["-c", "2", "-i", "0.2", "-W", "2", "203.0.113.1"]);
    assert!(o.status.success(), "ping: {}\n{}", text(&o), t.logs());

    let kernel_drops = |t: &Topology| t.counter("r0", "rx_ring_full") + t.counter("r0", "rx_fill_empty");
    let rx0 = t.counter("r0", "rx_packets");
    let drops0 = kernel_drops(&t);
    let a0_dropped = || -> u64 {
        let o = t.a.exec(&["cat", "/sys/class/net/a0/statistics/tx_dropped"]);
        text(&o).trim().parse().unwrap_or(0)
    };
    let lost_on_veth0 = a0_dropped();

    let engine = t.engine.as_ref().unwrap();
    engine.signal("STOP");
    let sender = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         for i in range({SENT}):\n\
         \x20   s.sendto(b'x' * 18, ('203.0.113.1', 9))\n"
    );
    let o = t.a.exec(&["timeout", "60", "python3", "-c", &sender]);
    engine.signal("CONT");
    assert!(o.status.success(), "sender: {}", text(&o));
    let lost_on_veth = a0_dropped() - lost_on_veth0;

    // The worker reads the sockets' kernel counters every 64 ms and publishes every 8 ms.
    let (rx, drops) = wait_for("the counters to settle", Duration::from_secs(10), || {
        let seen = (t.counter("r0", "rx_packets") - rx0, kernel_drops(&t) - drops0);
        std::thread::sleep(Duration::from_millis(300));
        let again = (t.counter("r0", "rx_packets") - rx0, kernel_drops(&t) - drops0);
        (seen == again && again.1 > 0).then_some(again)
    });
    eprintln!("sent {SENT}: engine rx {rx}, kernel drops {drops}, lost on veth {lost_on_veth}");
    assert!(drops > 0, "no kernel drop counted\n{}", t.logs());
    assert!(rx < SENT, "the engine was stopped, yet it saw every frame ({rx})");
    // Every datagram is either received by the engine, dropped by the kernel at the socket
    // (counted now), or dropped by veth before the router's port (the sender's tx_dropped).
    let accounted = rx + drops + lost_on_veth;
    assert!(
        accounted.abs_diff(SENT) <= 16,
        "sent {SENT}: engine rx {rx}, kernel drops {drops}, lost on veth {lost_on_veth}\n{}",
        t.logs()
    );
    // And forwarding goes on.
    let o = ping(&t.a, &["-c", "2", "-i", "0.2", "-W", "2", "203.0.113.1"]);
    assert!(o.status.success(), "ping after: {}\n{}", text(&o), t.logs());
}
