//! BGP against real routing daemons, with the engine forwarding: host A - router - host B.
//! BIRD 2 on B speaks eBGP to the router over IPv4 and over IPv6 (AS 64502) and, from a second
//! address to the router's address on the other side (BIRD tells its sessions apart by the
//! neighbour's address), iBGP (AS 64500, the router's own); on A, one FRR bgpd speaks iBGP over IPv4 and a
//! second one (AS 64501, not listening) eBGP over IPv6. Routes learnt reach the
//! engine's FIB and traffic follows them; withdrawals, policy changes, peer restarts and
//! resets do what an operator expects. Needs root, `bird` and FRR (`scripts/install-deps.sh`
//! installs both); every daemon is stopped by pid and the namespaces removed at the end.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use xroute_tests::harness::{root_or_skip, wait_for, Proc};
use xroute_tests::router::{ping, text, Topology};

const BIRD: &str = "/usr/sbin/bird";
const BIRDC: &str = "/usr/sbin/birdc";
const BGPD: &str = "/usr/lib/frr/bgpd";
const VTYSH: &str = "/usr/bin/vtysh";
const WAIT: Duration = Duration::from_secs(40);

/// The router's BGP section; `import4` is the IPv4 eBGP neighbour's import setting.
fn bgp_config(import4: &str) -> String {
    format!(
        r#"[bgp]
enabled = true
local-as = 64500
hold-time = 9
connect-retry = 1
network = ["192.0.2.0/24", "2001:db8:1::/64"]

[[bgp.prefix-list]]
name = "test-net-3"
entry = [{{ prefix = "203.0.113.0/24", le = 32 }}]

[[bgp.policy]]
name = "no-test-net-3"
default = "accept"
term = [{{ name = "drop", match = {{ prefix-list = "test-net-3" }}, then = {{ action = "reject" }} }}]

[[bgp.neighbor]]
address = "198.51.100.2"
remote-as = 64502
description = "bird v4"
import = "{import4}"
export = "all"

[[bgp.neighbor]]
address = "2001:db8:2::2"
remote-as = 64502
description = "bird v6"
import = "all"
export = "all"
families = ["ipv6-unicast"]

[[bgp.neighbor]]
address = "192.0.2.2"
remote-as = 64500
description = "frr v4"

[[bgp.neighbor]]
address = "198.51.100.3"
remote-as = 64500
description = "bird ibgp"
passive = true

[[bgp.neighbor]]
address = "2001:db8:1::2"
remote-as = 64501
description = "frr v6 (ebgp)"
passive = true
import = "all"
export = "all"
families = ["ipv6-unicast"]
"#
    )
}

fn bird_config(dir: &std::path::Path) -> String {
    format!(
        r#"router id 198.51.100.2;
log "{dir}/bird.log" all;
protocol device {{}}
protocol static s4 {{ ipv4; route 203.0.113.0/24 blackhole {{ bgp_community.add((64502,7)); }}; }}
protocol static s6 {{ ipv6; route 2001:db8:3::/48 blackhole; }}
protocol bgp v4 {{
  local 198.51.100.2 as 64502; neighbor 198.51.100.1 as 64500;
  hold time 9; connect retry time 1; error wait time 1, 4;
  ipv4 {{ import all; export where proto = "s4"; }};
}}
protocol static s4i {{ ipv4; route 198.18.9.0/24 blackhole; }}
protocol bgp ib4 {{
  local 198.51.100.3 as 64500; neighbor 192.0.2.1 as 64500; multihop;
  hold time 9; connect retry time 1; error wait time 1, 4;
  ipv4 {{ import all; export filter {{ if proto = "s4i" then accept; reject; }}; next hop self; }};
}}
protocol bgp v6 {{
  local 2001:db8:2::2 as 64502; neighbor 2001:db8:2::1 as 64500;
  hold time 9; connect retry time 1; error wait time 1, 4;
  ipv6 {{ import all; export all; }};
}}
"#,
        dir = dir.display()
    )
}

/// FRR on A, two bgpd instances: "ibgp" (AS 64500, IPv4, listening on port 179) and "ebgp"
/// (AS 64501, IPv6, not listening: it connects to us, and we are passive toward it).
fn frr_config(dir: &std::path::Path, which: &str) -> String {
    let head = format!(
        "frr defaults traditional\nhostname frr-{which}\nlog file {}/bgpd.log\n!\n",
        dir.display()
    );
    let body = if which == "ibgp" {
        "router bgp 64500\n bgp router-id 192.0.2.2\n no bgp network import-check\n\
         neighbor 192.0.2.1 remote-as 64500\n neighbor 192.0.2.1 timers 3 9\n neighbor 192.0.2.1 timers connect 1\n\
         address-family ipv4 unicast\n  network 198.18.5.0/24\n  neighbor 192.0.2.1 activate\n exit-address-family\n!\n"
    } else {
        "router bgp 64501\n bgp router-id 192.0.2.12\n no bgp ebgp-requires-policy\n no bgp network import-check\n\
         neighbor 2001:db8:1::1 remote-as 64500\n neighbor 2001:db8:1::1 timers 3 9\n neighbor 2001:db8:1::1 timers connect 1\n\
         address-family ipv4 unicast\n  no neighbor 2001:db8:1::1 activate\n exit-address-family\n\
         address-family ipv6 unicast\n  network 2001:db8:5::/48\n  neighbor 2001:db8:1::1 activate\n exit-address-family\n!\n"
    };
    head + body
}

fn start_bird(t: &Topology) -> Proc {
    let dir = t.path("bird");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bird.conf"), bird_config(&dir)).unwrap();
    let mut cmd = t.b.command(&PathBuf::from(BIRD));
    cmd.arg("-f")
        .arg("-c")
        .arg(dir.join("bird.conf"))
        .arg("-s")
        .arg(dir.join("bird.ctl"))
        .arg("-P")
        .arg(dir.join("bird.pid"));
    Proc::spawn("bird", cmd, dir.join("bird.out"))
}

fn birdc(t: &Topology, args: &[&str]) -> String {
    let out = Command::new(BIRDC)
        .arg("-s")
        .arg(t.path("bird/bird.ctl"))
        .args(args)
        .output()
        .unwrap();
    text(&out)
}

fn start_frr(t: &Topology, which: &str) -> Proc {
    let dir = t.path(&format!("frr-{which}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bgpd.conf"), frr_config(&dir, which)).unwrap();
    let mut cmd = t.a.command(&PathBuf::from(BGPD));
    cmd.arg("-f")
        .arg(dir.join("bgpd.conf"))
        .arg("-i")
        .arg(dir.join("bgpd.pid"))
        .args(["-Z", "-n", "-S", "-u", "root", "-g", "root", "--vty_socket"])
        .arg(&dir);
    if which != "ibgp" {
        cmd.args(["-p", "0"]);
    }
    Proc::spawn("bgpd", cmd, dir.join("bgpd.out"))
}

fn vtysh(t: &Topology, which: &str, cmd: &str) -> String {
    let out =
        t.a.command(&PathBuf::from(VTYSH))
            .arg("--vty_socket")
            .arg(t.path(&format!("frr-{which}")))
            .args(["-c", cmd])
            .output()
            .unwrap();
    text(&out)
}

/// `bgp summary`'s row for a neighbour.
fn neighbor(t: &Topology, addr: &str) -> Value {
    let s = t.ctl(&["bgp", "summary"]);
    s["neighbors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["address"] == addr)
        .cloned()
        .unwrap_or_else(|| panic!("no neighbor {addr} in {s}"))
}

fn established(t: &Topology, addr: &str) -> bool {
    neighbor(t, addr)["state"] == "Established"
}

/// The selected route's protocol and first next hop for `prefix`, if any.
fn route(t: &Topology, prefix: &str) -> Option<(String, String)> {
    let v = t.ctl(&["route", "show", prefix]);
    let r = v.as_array()?.first()?.clone();
    Some((
        r["protocol"].as_str().unwrap_or("").to_owned(),
        r["nexthops"][0]["via"].as_str().unwrap_or("").to_owned(),
    ))
}

fn wait_route(t: &Topology, prefix: &str, want: Option<(&str, &str)>) {
    wait_for(&format!("{prefix} to be {want:?}\n{}", t.logs()), WAIT, || {
        let got = route(t, prefix);
        let ok = match want {
            Some((p, via)) => got.as_ref().is_some_and(|(gp, gv)| gp == p && gv == via),
            None => got.is_none(),
        };
        ok.then_some(())
    });
    // The RIB has it; traffic follows once the engine has applied it too (within a burst of
    // changes the engine publishes them together, tens of ms later).
    t.ctl(&["fib", "wait", "--timeout", "30"]);
}

fn wait_established(t: &Topology, addrs: &[&str]) {
    let deadline = std::time::Instant::now() + WAIT;
    while !addrs.iter().all(|a| established(t, a)) {
        assert!(
            std::time::Instant::now() < deadline,
            "sessions with {addrs:?} did not come up: {:#}\n{}\n--- BIRD:\n{}",
            t.ctl(&["bgp", "summary"]),
            t.logs(),
            std::fs::read_to_string(t.path("bird/bird.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bgp_with_bird_and_frr() {
    if !root_or_skip("bgp_with_bird_and_frr") {
        return;
    }
    for p in [BIRD, BIRDC, BGPD, VTYSH] {
        assert!(
            std::path::Path::new(p).exists(),
            "{p} is missing: run scripts/install-deps.sh (installs bird2 and frr)"
        );
    }
    let mut t = Topology::new(1);
    // B answers for the prefixes BIRD announces; A for FRR's.
    for c in [
        "ip addr add 198.51.100.3/24 dev b0",
        "ip addr add 198.18.9.1/32 dev lo",
    ] {
        t.b.exec(&c.split(' ').collect::<Vec<_>>());
    }
    for c in [
        "ip addr add 198.18.5.1/32 dev lo",
        "ip -6 addr add 2001:db8:5::1/128 dev lo",
    ] {
        t.a.exec(&c.split(' ').collect::<Vec<_>>());
    }
    let mut bird = start_bird(&t);
    let mut frr = start_frr(&t, "ibgp");
    let mut frr6 = start_frr(&t, "ebgp");
    t.start_with("0", &bgp_config("all"));
    let all = [
        "198.51.100.2",
        "2001:db8:2::2",
        "198.51.100.3",
        "192.0.2.2",
        "2001:db8:1::2",
    ];
    wait_established(&t, &all);

    // Routes learnt reach the FIB, with the right protocol and next hop; traffic follows.
    wait_route(&t, "203.0.113.0/24", Some(("ebgp", "198.51.100.2")));
    wait_route(&t, "2001:db8:3::/48", Some(("ebgp", "2001:db8:2::2")));
    wait_route(&t, "198.18.5.0/24", Some(("ibgp", "192.0.2.2")));
    wait_route(&t, "2001:db8:5::/48", Some(("ebgp", "2001:db8:1::2")));
    wait_route(&t, "198.18.9.0/24", Some(("ibgp", "198.51.100.3")));
    t.ctl(&["fib", "wait", "--timeout", "30"]);
    for (from, to) in [
        (&t.a, "203.0.113.1"),
        (&t.a, "2001:db8:3::1"),
        (&t.a, "198.18.9.1"),
        (&t.b, "198.18.5.1"),
        (&t.b, "2001:db8:5::1"),
    ] {
        let o = ping(from, &["-c", "2", "-i", "0.2", "-W", "2", to]);
        assert!(o.status.success(), "ping {to}: {}\n{}", text(&o), t.logs());
    }
    let paths = t.ctl(&["bgp", "routes", "203.0.113.0/24"]);
    assert_eq!(paths[0]["as_path"], "64502", "{paths}");
    assert_eq!(paths[0]["communities"][0], "64502:7", "{paths}");
    assert_eq!(paths[0]["best"], true);

    // What the peers learnt from us: BIRD (eBGP) gets our networks and FRR's iBGP routes with
    // our AS in front; FRR (iBGP) gets BIRD's eBGP routes with BIRD's next hop unchanged.
    wait_for(
        "BIRD to learn 192.0.2.0/24 and 198.18.5.0/24 from us",
        WAIT,
        || {
            let r = birdc(&t, &["show", "route", "all", "protocol", "v4"]);
            (r.contains("192.0.2.0/24") && r.contains("198.18.5.0/24") && r.contains("BGP.as_path: 64500"))
                .then_some(())
        },
    );
    // BIRD's iBGP session gets our network and eBGP-learnt routes, but not FRR's iBGP route
    // (no route reflection).
    wait_for("BIRD's iBGP session to learn 192.0.2.0/24 from us", WAIT, || {
        let r = birdc(&t, &["show", "route", "protocol", "ib4"]);
        r.contains("192.0.2.0/24").then_some(())
    });
    let r = birdc(&t, &["show", "route", "protocol", "ib4"]);
    assert!(
        !r.contains("198.18.5.0/24"),
        "an iBGP route went to another iBGP peer:\n{r}"
    );
    // FRR's eBGP (IPv6) instance gets BIRD's IPv6 route with our AS in front.
    wait_for("FRR to learn 2001:db8:3::/48 with path 64500 64502", WAIT, || {
        let r = vtysh(&t, "ebgp", "show bgp ipv6 unicast 2001:db8:3::/48");
        r.contains("64500 64502").then_some(())
    });
    wait_for("FRR to learn 203.0.113.0/24 via BIRD's address", WAIT, || {
        let r = vtysh(&t, "ibgp", "show bgp ipv4 unicast 203.0.113.0/24");
        (r.contains("198.51.100.2") && r.contains("64502")).then_some(())
    });

    // A withdrawal removes the route; ping gets no answer through the router.
    birdc(&t, &["disable", "s4"]);
    wait_route(&t, "203.0.113.0/24", None);
    let o = ping(&t.a, &["-c", "1", "-W", "1", "203.0.113.1"]);
    assert!(
        !o.status.success(),
        "203.0.113.1 still reachable after the withdrawal"
    );
    birdc(&t, &["enable", "s4"]);
    wait_route(&t, "203.0.113.0/24", Some(("ebgp", "198.51.100.2")));

    // A reset of one peer leaves the others' routes alone, all along.
    let frr_up = neighbor(&t, "192.0.2.2")["state_seconds"].as_u64().unwrap();
    t.ctl(&["bgp", "reset", "198.51.100.2"]);
    for _ in 0..10 {
        assert!(
            route(&t, "198.18.5.0/24").is_some(),
            "FRR's route went away during BIRD's reset"
        );
        assert!(
            route(&t, "2001:db8:3::/48").is_some(),
            "BIRD's IPv6 session's route went away"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(neighbor(&t, "192.0.2.2")["state_seconds"].as_u64().unwrap() >= frr_up);
    wait_established(&t, &["198.51.100.2"]);
    wait_route(&t, "203.0.113.0/24", Some(("ebgp", "198.51.100.2")));

    // Policy: an import policy that drops 203.0.113.0/24, by configuration reload. Only
    // policies change, so it applies to what BIRD already sent, without resetting the session.
    let flaps = t.ctl(&["bgp", "neighbor", "198.51.100.2"])["established_transitions"].as_u64();
    std::fs::write(t.path("xroute.toml"), t.config(&bgp_config("no-test-net-3"))).unwrap();
    t.ctl(&["config", "reload"]);
    wait_route(&t, "203.0.113.0/24", None);
    assert!(route(&t, "2001:db8:3::/48").is_some());
    let n = t.ctl(&["bgp", "neighbor", "198.51.100.2"]);
    assert_eq!(n["import"], "no-test-net-3", "{n}");
    assert_eq!(n["summary"]["state"], "Established", "{n}");
    assert_eq!(
        n["established_transitions"].as_u64(),
        flaps,
        "the session was reset: {n}"
    );
    assert_eq!(
        (
            n["summary"]["received"].as_u64(),
            n["summary"]["accepted"].as_u64()
        ),
        (Some(1), Some(0)),
        "{n}"
    );
    std::fs::write(t.path("xroute.toml"), t.config(&bgp_config("all"))).unwrap();
    t.ctl(&["config", "reload"]);
    wait_route(&t, "203.0.113.0/24", Some(("ebgp", "198.51.100.2")));
    let o = ping(&t.a, &["-c", "1", "-W", "2", "203.0.113.1"]);
    assert!(o.status.success(), "after the policy was lifted: {}", text(&o));

    // A peer that restarts: BIRD stops (Cease), its routes go; it starts again, they return.
    assert!(bird.stop(Duration::from_secs(10)), "BIRD did not stop cleanly");
    wait_route(&t, "203.0.113.0/24", None);
    wait_route(&t, "2001:db8:3::/48", None);
    assert!(route(&t, "198.18.5.0/24").is_some(), "FRR's route went with BIRD");
    let mut bird = start_bird(&t);
    wait_established(&t, &["198.51.100.2", "2001:db8:2::2"]);
    wait_route(&t, "203.0.113.0/24", Some(("ebgp", "198.51.100.2")));
    let o = ping(&t.a, &["-c", "1", "-W", "2", "203.0.113.1"]);
    assert!(o.status.success(), "after BIRD's restart: {}", text(&o));

    // Stopping xroute-control says goodbye (Cease) to every peer.
    if let Some(c) = t.control.as_mut() {
        assert!(
            c.stop(Duration::from_secs(10)),
            "xroute-control did not stop cleanly"
        );
    }
    wait_for("BIRD to see the session closed", WAIT, || {
        let r = birdc(&t, &["show", "protocols", "v4"]);
        (!r.contains("Established")).then_some(())
    });
    assert!(bird.stop(Duration::from_secs(10)));
    assert!(
        frr.stop(Duration::from_secs(10)),
        "FRR (iBGP) did not stop cleanly"
    );
    assert!(
        frr6.stop(Duration::from_secs(10)),
        "FRR (eBGP) did not stop cleanly"
    );
}
