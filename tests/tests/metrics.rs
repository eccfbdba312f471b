//! The Prometheus endpoint of a running router: host A - router - host B, engine and control
//! process in the router's namespace, the endpoint on the namespace's loopback (the default
//! `127.0.0.1:9842`). Scraped before and after traffic: the per-port, per-worker packet and
//! drop counters move by what was sent, the FIB and RIB figures match the configuration, the
//! delta channel shows what was applied, a configured BGP neighbour that is down shows its
//! state. Then a reload moves the endpoint (to every address, reachable from A; back to
//! loopback on the same port; to an address in use, refused; off), and with the engine stopped
//! the scrape still answers, saying so. Needs root.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use xroute_tests::harness::{root_or_skip, wait_for, NetNs};
use xroute_tests::router::{ping, text, Topology};

/// The static routes of the topology plus a passive BGP neighbour on B that never connects.
const EXTRA: &str = "[[route]]\nprefix = \"203.0.113.0/24\"\nvia = \"198.51.100.2\"\n\n\
    [[route]]\nprefix = \"2001:db8:3::/48\"\nvia = \"2001:db8:2::2\"\n\n\
    [bgp]\nenabled = true\nlocal-as = 64500\n\n\
    [[bgp.neighbor]]\naddress = \"198.51.100.2\"\nremote-as = 64502\npassive = true\n";

/// A response: status, head, body.
#[derive(Debug)]
struct Response {
    status: u16,
    head: String,
    body: String,
}

/// `method path` over HTTP/1.1 to `addr`, from inside `ns`.
fn request(ns: &NetNs, addr: &str, method: &str, path: &str) -> std::io::Result<Response> {
    let addr: SocketAddr = addr.parse().unwrap();
    let line = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAccept-Encoding: identity\r\n\r\n");
    ns.run_in(move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(line.as_bytes())?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
        let status = head
            .strip_prefix("HTTP/1.1 ")
            .and_then(|r| r.get(..3))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok(Response {
            status,
            head: head.to_string(),
            body: body.to_string(),
        })
    })
}

/// The series of a scrape: (name, labels) -> value. Checks every line on the way.
type Series = BTreeMap<(String, BTreeMap<String, String>), f64>;

fn parse(body: &str) -> Series {
    let mut out = Series::new();
    for line in body.lines() {
        if line.starts_with('#') {
            assert!(
                line.starts_with("# HELP xroute_") || line.starts_with("# TYPE xroute_"),
                "{line}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                let labels = inner
                    .split(',')
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("{line}"));
                        (k.to_string(), v.trim_matches('"').to_string())
                    })
                    .collect();
                (name, labels)
            }
        };
        assert!(name.starts_with("xroute_"), "{line}");
        assert!(
            out.insert((name.to_string(), labels), value).is_none(),
            "series twice: {line}"
        );
    }
    out
}

/// The sum of every series of `name` whose labels include `with`.
fn sum(s: &Series, name: &str, with: &[(&str, &str)]) -> f64 {
    s.iter()
        .filter(|((n, labels), _)| {
            n == name
                && with
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| v)
        .sum()
}

/// The one series of `name` with exactly these labels.
fn value(s: &Series, name: &str, labels: &[(&str, &str)]) -> f64 {
    let key = (
        name.to_string(),
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    *s.get(&key).unwrap_or_else(|| panic!("no series {key:?}"))
}

const ENDPOINT: &str = "127.0.0.1:9842";

fn scrape(t: &Topology, addr: &str) -> Series {
    let r =
        request(&t.r, addr, "GET", "/metrics").unwrap_or_else(|e| panic!("scrape {addr}: {e}\n{}", t.logs()));
    assert_eq!(r.status, 200, "{}", r.head);
    parse(&r.body)
}

/// Rewrites the `[metrics]` section and reloads; returns xroutectl's output and success.
fn reload_with(t: &Topology, metrics: &str) -> (bool, String) {
    std::fs::write(t.path("xroute.toml"), t.config(&format!("{EXTRA}\n{metrics}"))).unwrap();
    let out = std::process::Command::new(xroute_tests::harness::bin("xroutectl"))
        .arg("--socket")
        .arg(t.path("run/default/control.sock"))
        .args(["config", "reload"])
        .output()
        .unwrap();
    (out.status.success(), text(&out))
}

#[test]
fn prometheus_endpoint_reports_the_router() {
    if !root_or_skip("prometheus_endpoint_reports_the_router") {
        return;
    }
    let mut t = Topology::new(1);
    t.start_with("0", EXTRA);

    // ---- the response itself ----
    let r = request(&t.r, ENDPOINT, "GET", "/metrics").unwrap();
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(
        r.head
            .contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{}",
        r.head
    );
    assert_eq!(request(&t.r, ENDPOINT, "GET", "/").unwrap().status, 404);
    assert_eq!(request(&t.r, ENDPOINT, "POST", "/metrics").unwrap().status, 405);
    // Loopback only: not reachable on the router's own addresses from inside the namespace.
    assert!(request(&t.r, "192.0.2.1:9842", "GET", "/metrics").is_err());

    // ---- FIB, RIB and the delta channel once the configuration is applied ----
    let before = scrape(&t, ENDPOINT);
    // Connected subnets, the router's own addresses and the static route, per family.
    for family in ["ipv4", "ipv6"] {
        let fib = value(&before, "xroute_fib_routes", &[("family", family)]);
        let rib = value(&before, "xroute_rib_routes", &[("family", family)]);
        assert_eq!(fib, 5.0, "{family}: 2 connected, 2 local, 1 static");
        assert_eq!(rib, fib, "{family}: every selected route is in the FIB");
    }
    let stats = t.ctl(&["fib", "stats"]);
    assert_eq!(
        value(&before, "xroute_fib_memory_bytes", &[]),
        stats["memory_bytes"].as_f64().unwrap()
    );
    assert!(value(&before, "xroute_fib_memory_bytes", &[]) > 0.0);
    assert_eq!(
        value(&before, "xroute_rib_candidates", &[("protocol", "static")]),
        2.0
    );
    let applied = value(&before, "xroute_deltas_applied_total", &[]);
    assert!(applied > 0.0, "deltas applied: {applied}");
    assert_eq!(
        applied,
        value(&before, "xroute_deltas_produced_total", &[]),
        "fib wait ran"
    );
    assert_eq!(value(&before, "xroute_deltas_rejected_total", &[]), 0.0);
    assert_eq!(value(&before, "xroute_engine_up", &[]), 1.0);
    assert_eq!(
        value(&before, "xroute_engine_state", &[("state", "in-sync")]),
        1.0
    );
    assert_eq!(value(&before, "xroute_port_up", &[("port", "r0")]), 1.0);

    // ---- BGP: the neighbour is configured, passive, and nobody connects ----
    let n = [("neighbor", "198.51.100.2"), ("remote_as", "64502")];
    assert_eq!(value(&before, "xroute_bgp_enabled", &[]), 1.0);
    assert_eq!(value(&before, "xroute_bgp_session_up", &n), 0.0);
    let state = |st| {
        let mut l = n.to_vec();
        l.push(("state", st));
        value(&before, "xroute_bgp_session_state", &l)
    };
    assert_eq!(state("active"), 1.0, "a passive neighbour waits in Active");
    assert_eq!(state("established") + state("idle") + state("connect"), 0.0);
    // Nothing received from a neighbour that never connected.
    assert_eq!(value(&before, "xroute_bgp_prefixes_received", &n), 0.0);

    // ---- traffic: per-port counters move by at least what was sent ----
    let rx = |s: &Series, port| sum(s, "xroute_port_rx_packets_total", &[("port", port)]);
    let tx = |s: &Series, port| sum(s, "xroute_port_tx_packets_total", &[("port", port)]);
    let drops = |s: &Series, reason| {
        sum(
            s,
            "xroute_port_drops_total",
            &[("port", "r0"), ("reason", reason)],
        )
    };
    const PINGS: f64 = 10.0;
    let o = ping(&t.a, &["-c", "10", "198.51.100.2"]);
    assert!(
        o.status.success(),
        "ping through the router: {}\n{}",
        text(&o),
        t.logs()
    );
    // Requests A -> r0 -> r1 -> B; replies B -> r1 -> r0 -> A.
    let after = wait_for("the counters to show the pings", Duration::from_secs(5), || {
        let s = scrape(&t, ENDPOINT);
        (rx(&s, "r0") >= rx(&before, "r0") + PINGS
            && tx(&s, "r1") >= tx(&before, "r1") + PINGS
            && rx(&s, "r1") >= rx(&before, "r1") + PINGS
            && tx(&s, "r0") >= tx(&before, "r0") + PINGS)
            .then_some(s)
    });
    assert!(
        sum(&after, "xroute_port_rx_bytes_total", &[("port", "r0")])
            >= sum(&before, "xroute_port_rx_bytes_total", &[("port", "r0")]) + PINGS * 98.0,
        "10 echo requests of 98 bytes each"
    );
    // Every drop reason of every (port, worker) is there, zero or not.
    assert_eq!(
        after
            .keys()
            .filter(|(n, l)| n == "xroute_port_drops_total" && l["port"] == "r1" && l["worker"] == "0")
            .count(),
        xroute_common::stats::DropReason::ALL.len()
    );

    // ---- provoked drops: TTL 1 and no route, counted on r0 under their reasons ----
    let o = ping(&t.a, &["-c", "2", "-t", "1", "198.51.100.2"]);
    assert!(text(&o).contains("Time to live exceeded"), "{}", text(&o));
    let o = ping(&t.a, &["-c", "1", "198.18.7.7"]);
    assert!(text(&o).contains("Unreachable"), "{}", text(&o));
    let provoked = wait_for("the drop counters", Duration::from_secs(5), || {
        let s = scrape(&t, ENDPOINT);
        // Two expired packets: each answered (ttl_exceeded) or, past the ICMP rate limit,
        // dropped silently (icmp_rate_limited); the first is always answered.
        let expired = drops(&s, "ttl_exceeded") + drops(&s, "icmp_rate_limited");
        let expired_before = drops(&after, "ttl_exceeded") + drops(&after, "icmp_rate_limited");
        (drops(&s, "ttl_exceeded") > drops(&after, "ttl_exceeded")
            && expired >= expired_before + 2.0
            && drops(&s, "no_route") >= drops(&after, "no_route") + 1.0)
            .then_some(s)
    });
    // The CLI sums the same counters over workers.
    assert_eq!(
        drops(&provoked, "ttl_exceeded"),
        t.counter("r0", "ttl_exceeded") as f64
    );
    // What the router's kernel got (ARP, pings to the router) is counted by the slow path.
    assert!(
        value(
            &provoked,
            "xroute_port_to_kernel_packets_total",
            &[("port", "r0")]
        ) > 0.0
    );
    eprintln!("--- a scrape after the pings ---\n{}", {
        let r = request(&t.r, ENDPOINT, "GET", "/metrics").unwrap();
        r.body
    });

    // ---- reload: to every address (reachable from A through the router's kernel) ----
    let (ok, out) = reload_with(&t, "[metrics]\nlisten = \"0.0.0.0:9900\"\n");
    assert!(ok, "{out}");
    wait_for("the endpoint on 0.0.0.0:9900", Duration::from_secs(5), || {
        request(&t.a, "192.0.2.1:9900", "GET", "/metrics")
            .ok()
            .filter(|r| r.status == 200)
    });
    wait_for("127.0.0.1:9842 to close", Duration::from_secs(5), || {
        request(&t.r, ENDPOINT, "GET", "/metrics").is_err().then_some(())
    });
    // Back to loopback on the same port: the old listener holds the port, so it is closed
    // first and the new address bound after.
    let (ok, out) = reload_with(&t, "[metrics]\nlisten = \"127.0.0.1:9900\"\n");
    assert!(ok, "{out}");
    wait_for("loopback only again", Duration::from_secs(5), || {
        request(&t.a, "192.0.2.1:9900", "GET", "/metrics")
            .is_err()
            .then_some(())
    });
    wait_for("127.0.0.1:9900", Duration::from_secs(5), || {
        request(&t.r, "127.0.0.1:9900", "GET", "/metrics")
            .ok()
            .filter(|r| r.status == 200)
    });
    // An address another process holds: the reload is refused, the endpoint stays.
    let squatter =
        t.r.run_in(|| std::net::TcpListener::bind("127.0.0.1:9950").unwrap());
    let (ok, out) = reload_with(&t, "[metrics]\nlisten = \"127.0.0.1:9950\"\n");
    assert!(!ok, "reload onto a port in use must fail: {out}");
    assert!(
        out.contains("metrics.listen: cannot listen on 127.0.0.1:9950") && out.contains("in use"),
        "{out}"
    );
    drop(squatter);
    assert!(!scrape(&t, "127.0.0.1:9900").is_empty());
    // Off.
    let (ok, out) = reload_with(&t, "[metrics]\nenabled = false\n");
    assert!(ok, "{out}");
    wait_for("the endpoint to close", Duration::from_secs(5), || {
        request(&t.r, "127.0.0.1:9900", "GET", "/metrics")
            .is_err()
            .then_some(())
    });
    // On again at the default.
    let (ok, out) = reload_with(&t, "");
    assert!(ok, "{out}");
    wait_for("the default endpoint", Duration::from_secs(5), || {
        request(&t.r, ENDPOINT, "GET", "/metrics").ok()
    });

    // ---- the engine stops: the scrape still answers, and says so ----
    let mut engine = t.engine.take().unwrap();
    assert!(engine.stop(Duration::from_secs(10)));
    let s = scrape(&t, ENDPOINT);
    assert_eq!(value(&s, "xroute_engine_up", &[]), 0.0);
    assert_eq!(value(&s, "xroute_engine_attached", &[]), 0.0);
    // The last figures the engine published stay visible.
    assert_eq!(value(&s, "xroute_fib_routes", &[("family", "ipv4")]), 5.0);
    assert!(t.control.as_mut().unwrap().is_running(), "{}", t.logs());
}
