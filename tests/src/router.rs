//! The three-namespace topology of the forwarding tests: host A - router R - host B, joined by
//! veth pairs, with the engine and the control process running in R. R's own kernel does not
//! forward (ip_forward=0), so whatever crosses R went through the engine.
//!
//! - A: a0 192.0.2.2/24, 2001:db8:1::2/64, default routes via R.
//! - R: r0 192.0.2.1/24, 2001:db8:1::1/64; r1 198.51.100.1/24, 2001:db8:2::1/64, MTU 1400.
//! - B: b0 198.51.100.2/24, 2001:db8:2::2/64, MTU 1400; 203.0.113.1 and 2001:db8:3::1 on lo,
//!   which R reaches through static routes via B.

use crate::harness::{bin, wait_for, NetNs, Proc, TempDir};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

/// stdout and stderr of a command, as text.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs a command in `ns` and returns its output whatever its exit status.
pub fn try_exec(ns: &NetNs, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .args(args)
        .output()
        .expect("ip netns exec")
}

/// `ping -n` with a short interval and timeout, bounded to 20 s, in `ns`.
pub fn ping(ns: &NetNs, args: &[&str]) -> Output {
    let mut a = vec!["timeout", "20", "ping", "-n", "-i", "0.2", "-W", "2"];
    a.extend_from_slice(args);
    try_exec(ns, &a)
}

/// The namespaces, the scratch directory and the daemons (killed on drop).
#[derive(Debug)]
pub struct Topology {
    pub a: NetNs,
    pub r: NetNs,
    pub b: NetNs,
    pub dir: TempDir,
    pub engine: Option<Proc>,
    pub control: Option<Proc>,
}

impl Topology {
    /// The namespaces and links, with `queues` receive and transmit queues on every veth.
    pub fn new(queues: u32) -> Self {
        let (a, r, b) = (NetNs::new(), NetNs::new(), NetNs::new());
        r.veth_to_queues("r0", &a, "a0", queues);
        r.veth_to_queues("r1", &b, "b0", queues);
        for (ns, cmds) in [
            (
                &a,
                vec![
                    // The hosts' kernels leave UDP/TCP checksums to "hardware" on veth
                    // (CHECKSUM_PARTIAL); a router that forwards the bytes, as AF_XDP does,
                    // would pass them on unfinished. Real NICs put finished checksums on the
                    // wire, so the hosts here do too.
                    "ethtool -K a0 tx off",
                    "ip addr add 192.0.2.2/24 dev a0",
                    "ip -6 addr add 2001:db8:1::2/64 dev a0 nodad",
                    "ip route add default via 192.0.2.1",
                    "ip -6 route add default via 2001:db8:1::1",
                ],
            ),
            (
                &r,
                vec![
                    "sysctl -qw net.ipv4.ip_forward=0",
                    "sysctl -qw net.ipv6.conf.all.forwarding=0",
                    "ip addr add 192.0.2.1/24 dev r0",
                    "ip -6 addr add 2001:db8:1::1/64 dev r0 nodad",
                    "ip link set r1 mtu 1400",
                    "ip addr add 198.51.100.1/24 dev r1",
                    "ip -6 addr add 2001:db8:2::1/64 dev r1 nodad",
                ],
            ),
            (
                &b,
                vec![
                    "ethtool -K b0 tx off",
                    // The B link's MTU (both ends: veth drops frames above the receiver's).
                    "ip link set b0 mtu 1400",
                    "ip addr add 198.51.100.2/24 dev b0",
                    "ip -6 addr add 2001:db8:2::2/64 dev b0 nodad",
                    "ip addr add 203.0.113.1/32 dev lo",
                    "ip -6 addr add 2001:db8:3::1/128 dev lo",
                    "ip route add default via 198.51.100.1",
                    "ip -6 route add default via 2001:db8:2::1",
                ],
            ),
        ] {
            for c in cmds {
                let args: Vec<&str> = c.split(' ').collect();
                let o = ns.exec(&args);
                assert!(o.status.success(), "{c}: {}", text(&o));
            }
        }
        let dir = TempDir::new("/dev/shm");
        std::fs::create_dir_all(dir.path().join("run")).unwrap();
        Self {
            a,
            r,
            b,
            dir,
            engine: None,
            control: None,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts the engine on r0 and r1 with workers on `cores` (a list like 0 or 0,1), then
    /// the control process, and waits until the FIB holds the configuration's routes.
    pub fn start(&mut self, cores: &str) {
        self.start_with(
            cores,
            "[[route]]\nprefix = \"203.0.113.0/24\"\nvia = \"198.51.100.2\"\n\n\
             [[route]]\nprefix = \"2001:db8:3::/48\"\nvia = \"2001:db8:2::2\"\n",
        );
    }

    /// The control configuration: the router and its two interfaces, then `extra` (routes,
    /// protocols).
    pub fn config(&self, extra: &str) -> String {
        format!(
            "[router]\nrun-dir = \"{run}\"\nshm-dir = \"{shm}\"\n\n\
             [[interface]]\nname = \"r0\"\naddress = [\"192.0.2.1/24\", \"2001:db8:1::1/64\"]\n\n\
             [[interface]]\nname = \"r1\"\naddress = [\"198.51.100.1/24\", \"2001:db8:2::1/64\"]\nmtu = 1400\n\n{extra}",
            run = self.path("run").display(),
            shm = self.dir.path().display(),
        )
    }

    /// As [`Topology::start`], with `extra` appended to the control configuration (written
    /// to `xroute.toml`, so that a test can rewrite it and `config reload`).
    pub fn start_with(&mut self, cores: &str, extra: &str) {
        let config = self.config(extra);
        std::fs::write(self.path("xroute.toml"), config).unwrap();
        let mut cmd = self.r.command(&bin("xroute-engine"));
        cmd.args([
            "run",
            "--port",
            "r0",
            "--port",
            "r1",
            "--cores",
            cores,
            "--shm-dir",
        ])
        .arg(self.dir.path())
        .arg("--run-dir")
        .arg(self.path("run"));
        let engine = Proc::spawn("xroute-engine", cmd, self.path("engine.log"));
        let log = self.path("engine.log");
        wait_for("the engine to start forwarding", Duration::from_secs(20), || {
            let t = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(!t.contains("error:"), "engine failed: {t}");
            t.contains("forwarding on").then_some(())
        });
        self.engine = Some(engine);
        let mut cmd = self.r.command(&bin("xroute-control"));
        cmd.arg("--config").arg(self.path("xroute.toml"));
        self.control = Some(Proc::spawn("xroute-control", cmd, self.path("control.log")));
        let sock = self.path("run/default/control.sock");
        wait_for("the control socket", Duration::from_secs(20), || {
            std::os::unix::net::UnixStream::connect(&sock).ok().map(|_| ())
        });
        let v = self.ctl(&["fib", "wait", "--timeout", "30"]);
        assert!(v.is_object(), "{v}");
    }

    /// `xroutectl --json ARGS`, parsed; panics with the output on failure.
    pub fn ctl(&self, args: &[&str]) -> Value {
        let out = Command::new(bin("xroutectl"))
            .arg("--socket")
            .arg(self.path("run/default/control.sock"))
            .arg("--json")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "xroutectl {args:?}: {}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// A port's counter from `xroutectl counters` (a drop reason or rx/tx field).
    pub fn counter(&self, port: &str, name: &str) -> u64 {
        let v = self.ctl(&["counters"]);
        let p = v["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == port)
            .unwrap_or_else(|| panic!("no port {port} in {v}"));
        p.get(name)
            .and_then(Value::as_u64)
            .or_else(|| p["drops"][name].as_u64())
            .or_else(|| {
                p["drops"]
                    .as_array()
                    .and_then(|d| d.iter().find(|e| e[0] == name).and_then(|e| e[1].as_u64()))
            })
            .unwrap_or_else(|| panic!("no counter {name} in {p}"))
    }

    /// Both daemons' logs, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for p in [&self.engine, &self.control].into_iter().flatten() {
            s.push_str(&format!("--- {}:\n{}\n", p.name, p.log_text()));
        }
        s
    }
}
