//! The control process and the engine together, as an operator runs them: the full real table
//! as static routes (a route file), `xroutectl fib lookup` against an independent longest-match
//! computation, kill -9 of either process and what must survive it, a changed configuration,
//! and hostile input on the management socket. Needs root for its network namespace.

use serde_json::Value;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use rand::{Rng, SeedableRng};
use xroute_common::query::{EngineReply, EngineRequest};
use xroute_common::shm::ChannelFile;
use xroute_tests::harness::{bin, root_or_skip, wait_for, NetNs, Proc, TempDir};

/// One router: a namespace with a veth pair, the two daemons, their files.
struct Router {
    ns: NetNs,
    dir: TempDir,
    engine: Option<Proc>,
    control: Option<Proc>,
}

impl Router {
    fn new() -> Self {
        let ns = NetNs::new();
        ns.veth_pair("xr0", "xr0p");
        let dir = TempDir::new("/dev/shm");
        std::fs::create_dir_all(dir.path().join("run")).unwrap();
        Self {
            ns,
            dir,
            engine: None,
            control: None,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn socket(&self) -> PathBuf {
        self.path("run/default/control.sock")
    }

    fn write_config(&self, name: &str, route_file: &Path, with_static: bool) -> PathBuf {
        let mut text = format!(
            "[router]\nrun-dir = \"{}\"\nshm-dir = \"{}\"\n\n\
             [[interface]]\nname = \"xr0\"\naddress = [\"198.18.0.1/24\", \"2001:db8:ff::1/64\"]\nmtu = 1500\n\n\
             [[route-file]]\npath = \"{}\"\nvia = [\"198.18.0.2\", \"2001:db8:ff::2\"]\n\n\
             [[route]]\nprefix = \"192.0.2.0/24\"\nblackhole = true\n",
            self.path("run").display(),
            self.dir.path().display(),
            route_file.display()
        );
        if with_static {
            text.push_str("\n[[route]]\nprefix = \"203.0.113.0/24\"\nvia = \"198.18.0.3\"\n");
        }
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn start_engine(&mut self) {
        let mut cmd = self.ns.command(&bin("xroute-engine"));
        cmd.args(["run", "--instance", "default", "--shm-dir"])
            .arg(self.dir.path())
            .arg("--run-dir")
            .arg(self.path("run"));
        let p = Proc::spawn("xroute-engine", cmd, self.path("engine.log"));
        let sock = self.path("run/default/engine.sock");
        wait_for("the engine socket", Duration::from_secs(20), || {
            UnixStream::connect(&sock).ok().map(|_| ())
        });
        self.engine = Some(p);
    }

    fn start_control(&mut self, config: &Path) {
        let mut cmd = self.ns.command(&bin("xroute-control"));
        cmd.arg("--config").arg(config);
        let p = Proc::spawn("xroute-control", cmd, self.path("control.log"));
        let sock = self.socket();
        let started = Instant::now();
        loop {
            if UnixStream::connect(&sock).is_ok() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "xroute-control did not start: {}",
                p.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.control = Some(p);
    }

    fn ctl_raw(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(bin("xroutectl"));
        cmd.arg("--socket").arg(self.socket()).args(args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(text) = stdin {
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// xroutectl --json ARGS, parsed; panics with stderr on failure.
    fn ctl(&self, args: &[&str]) -> Value {
        self.ctl_stdin(args, None)
    }

    fn ctl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.ctl_raw(&a, stdin);
        assert!(
            out.status.success(),
            "xroutectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn wait_applied(&self) -> Value {
        self.ctl(&["fib", "wait", "--timeout", "120"])
    }

    fn fib_routes(&self) -> u64 {
        let s = self.ctl(&["fib", "stats"]);
        s["routes_v4"].as_u64().unwrap() + s["routes_v6"].as_u64().unwrap()
    }

    /// The engine's answer, straight from its socket (works with the control process dead).
    fn engine_lookup(&self, addrs: &[IpAddr]) -> Vec<Option<String>> {
        let s = UnixStream::connect(self.path("run/default/engine.sock")).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut line = serde_json::to_string(&EngineRequest::Lookup {
            addrs: addrs.to_vec(),
        })
        .unwrap();
        line.push('\n');
        w.write_all(line.as_bytes()).unwrap();
        let mut reply = String::new();
        BufReader::new(s).read_line(&mut reply).unwrap();
        match serde_json::from_str(&reply).unwrap() {
            EngineReply::Lookup { results } => results.into_iter().map(|r| r.prefix).collect(),
            other => panic!("unexpected {other:?}"),
        }
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        for p in [self.control.as_mut(), self.engine.as_mut()]
            .into_iter()
            .flatten()
        {
            p.stop(Duration::from_secs(5));
        }
    }
}

/// Longest match over a set of prefixes, the slow obvious way.
fn lpm(set: &HashSet<IpNet>, addr: IpAddr) -> Option<IpNet> {
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (0..=max)
        .rev()
        .map(|len| IpNet::new(addr, len).unwrap().trunc())
        .find(|p| set.contains(p))
}

fn random_inside(rng: &mut impl Rng, p: IpNet) -> IpAddr {
    match p {
        IpNet::V4(n) => {
            let host = if n.prefix_len() == 32 {
                0
            } else {
                rng.gen::<u32>() >> n.prefix_len()
            };
            IpAddr::V4((u32::from(n.network()) | host).into())
        }
        IpNet::V6(n) => {
            let host = if n.prefix_len() == 128 {
                0
            } else {
                rng.gen::<u128>() >> n.prefix_len()
            };
            IpAddr::V6((u128::from(n.network()) | host).into())
        }
    }
}

fn read_table(path: &Path) -> Vec<IpNet> {
    let reader = xroute_control::routefile::open_text(path).unwrap();
    reader
        .lines()
        .map(|l| l.unwrap().trim().to_string())
        .filter(|l| !l.is_empty())
        .map(|l| l.parse().unwrap())
        .collect()
}

/// Checks `fib lookup` for `addrs` against the independent longest match over `expected`.
fn check_lookups(r: &Router, expected: &HashSet<IpNet>, addrs: &[IpAddr]) {
    let stdin: String = addrs.iter().map(|a| format!("{a}\n")).collect();
    let v = r.ctl_stdin(&["fib", "lookup"], Some(&stdin));
    let entries = v.as_array().unwrap();
    assert_eq!(entries.len(), addrs.len());
    let mut mismatches = Vec::new();
    for (e, addr) in entries.iter().zip(addrs) {
        let engine = e["engine"]["prefix"].as_str().map(str::to_string);
        let want = lpm(expected, *addr).map(|p| p.to_string());
        if engine != want || !e["agrees"].as_bool().unwrap() {
            mismatches.push(format!(
                "{addr}: engine {engine:?}, rib {:?}, expected {want:?}",
                e["rib_prefix"]
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} lookups wrong, e.g. {:?}",
        mismatches.len(),
        addrs.len(),
        &mismatches[..mismatches.len().min(5)]
    );
}

#[test]
fn full_table_survives_restarts_of_either_process() {
    if !root_or_skip("full_table_survives_restarts_of_either_process") {
        return;
    }
    let Some(table_path) = xroute_tests::real_table() else {
        return;
    };
    let table = read_table(&table_path);
    let mut r = Router::new();
    let config = r.write_config("xroute.toml", &table_path, true);

    // What the FIB must hold: the table, the connected and local routes, the static routes.
    let mut expected: HashSet<IpNet> = table.iter().copied().collect();
    for p in [
        "198.18.0.0/24",
        "198.18.0.1/32",
        "2001:db8:ff::/64",
        "2001:db8:ff::1/128",
        "192.0.2.0/24",
        "203.0.113.0/24",
    ] {
        expected.insert(p.parse().unwrap());
    }

    r.start_engine();
    r.start_control(&config);
    r.wait_applied();
    assert_eq!(r.fib_routes(), expected.len() as u64);

    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let mut sample: Vec<IpAddr> = (0..3000)
        .map(|_| {
            let p = table[rng.gen_range(0..table.len())];
            random_inside(&mut rng, p)
        })
        .collect();
    sample.extend((0..500).map(|_| IpAddr::V4(rng.gen::<u32>().into())));
    sample.extend(
        [
            "203.0.113.9",
            "192.0.2.1",
            "198.18.0.1",
            "198.18.0.77",
            "2001:db8:ff::1",
            "2001:db8:ff::9",
        ]
        .map(|a| a.parse::<IpAddr>().unwrap()),
    );
    check_lookups(&r, &expected, &sample);

    // The engine dies: the control process notices and replays everything.
    let stats_before = r.ctl(&["fib", "stats"]);
    r.engine.as_mut().unwrap().kill9();
    r.start_engine();
    let after = r.wait_applied();
    assert_eq!(
        r.fib_routes(),
        expected.len() as u64,
        "full replay after an engine restart"
    );
    assert!(after["resyncs_sent"].as_u64() > stats_before["resyncs_sent"].as_u64());
    check_lookups(&r, &expected, &sample);

    // The control process dies: the engine keeps its FIB and keeps answering.
    r.control.as_mut().unwrap().kill9();
    let answers = r.engine_lookup(&sample[..200]);
    for (a, addr) in answers.iter().zip(&sample) {
        assert_eq!(
            a,
            &lpm(&expected, *addr).map(|p| p.to_string()),
            "{addr} with control down"
        );
    }
    let header = ChannelFile::open(&r.dir.path().join("xroute-default"), 64)
        .unwrap()
        .snapshot();
    assert_eq!(header.fib_routes_v4 + header.fib_routes_v6, expected.len() as u64);

    // It comes back with a changed configuration: every 97th table prefix and one static route
    // are gone. Exactly those disappear from the FIB; nothing else moves.
    let removed: Vec<IpNet> = table.iter().step_by(97).copied().collect();
    let removed_set: HashSet<IpNet> = removed.iter().copied().collect();
    let smaller: String = table
        .iter()
        .filter(|p| !removed_set.contains(p))
        .map(|p| format!("{p}\n"))
        .collect();
    let smaller_path = r.path("smaller.txt");
    std::fs::write(&smaller_path, smaller).unwrap();
    let config2 = r.write_config("xroute2.toml", &smaller_path, false);
    r.start_control(&config2);
    let s = r.wait_applied();
    for p in &removed {
        expected.remove(p);
    }
    expected.remove(&"203.0.113.0/24".parse().unwrap());
    assert_eq!(r.fib_routes(), expected.len() as u64);
    assert_eq!(
        s["last_resync_swept"].as_u64().unwrap(),
        removed.len() as u64 + 1,
        "the sweep removed exactly the routes no longer configured"
    );
    let mut probe: Vec<IpAddr> = removed
        .iter()
        .take(2000)
        .map(|p| random_inside(&mut rng, *p))
        .collect();
    probe.extend_from_slice(&sample);
    check_lookups(&r, &expected, &probe);

    // Clean stop: both exit 0 and remove their sockets.
    assert!(
        r.control.as_mut().unwrap().stop(Duration::from_secs(10)),
        "{}",
        r.control.as_ref().unwrap().log_text()
    );
    assert!(
        r.engine.as_mut().unwrap().stop(Duration::from_secs(10)),
        "{}",
        r.engine.as_ref().unwrap().log_text()
    );
    assert!(!r.socket().exists());
    assert!(!r.path("run/default/engine.sock").exists());
}

#[test]
fn operator_commands_and_hostile_input() {
    if !root_or_skip("operator_commands_and_hostile_input") {
        return;
    }
    let mut r = Router::new();
    let empty = r.path("empty.txt");
    std::fs::write(&empty, "# nothing\n").unwrap();
    let config = r.write_config("xroute.toml", &empty, true);
    r.start_control(&config);
    r.start_engine();
    r.wait_applied();

    // route add/show/del, ECMP, recursion through the connected subnet.
    let out = r.ctl_raw(
        &[
            "route",
            "add",
            "198.51.100.0/24",
            "nexthop",
            "via",
            "198.18.0.5",
            "nexthop",
            "via",
            "198.18.0.6",
            "weight",
            "3",
        ],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    r.wait_applied();
    let routes = r.ctl(&["route", "show", "198.51.100.0/24"]);
    let route = &routes[0];
    assert_eq!(route["nexthops"].as_array().unwrap().len(), 2);
    assert_eq!(route["fib"], "offload");
    assert_eq!(route["origin"], "runtime");
    let text = String::from_utf8(
        r.ctl_raw(&["route", "show", "--protocol", "connected"], None)
            .stdout,
    )
    .unwrap();
    assert!(
        text.contains("198.18.0.0/24 dev xr0 proto connected scope link"),
        "{text}"
    );
    let v = r.ctl(&["fib", "lookup", "198.51.100.7"]);
    let members = v[0]["engine"]["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(members[0]["port_name"], "xr0");
    let weights: Vec<u64> = members.iter().map(|m| m["weight"].as_u64().unwrap()).collect();
    assert!(weights.contains(&3), "{weights:?}");
    let n = r.ctl(&["neighbors"]);
    let addrs: Vec<&str> = n
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["address"].as_str())
        .collect();
    assert!(
        addrs.contains(&"198.18.0.5") && addrs.contains(&"198.18.0.6"),
        "{addrs:?}"
    );
    let out = r.ctl_raw(&["route", "del", "198.51.100.0/24"], None);
    assert!(out.status.success());
    r.wait_applied();
    assert_eq!(
        r.ctl(&["fib", "lookup", "198.51.100.7"])[0]["engine"]["prefix"],
        Value::Null
    );

    // Interfaces and counters read from the kernel and the stats segment.
    let i = r.ctl(&["interfaces"]);
    assert_eq!(i[0]["name"], "xr0");
    assert_eq!(i[0]["state"], "up");
    // Counters come from the engine's stats segment, summed over cores: write two cores' slots
    // as the workers would and read them back through the CLI.
    {
        use std::sync::atomic::Ordering::Relaxed;
        use xroute_common::stats::{counter, slot_offset, DropReason};
        let f = ChannelFile::open(&r.dir.path().join("xroute-default"), 64).unwrap();
        let w = f.stats_words();
        w[slot_offset(0, 0) + counter::RX_PACKETS].store(7, Relaxed);
        w[slot_offset(1, 0) + counter::RX_PACKETS].store(3, Relaxed);
        w[slot_offset(1, 0) + counter::DROPS + DropReason::NoRoute as usize].store(5, Relaxed);
    }
    let c = r.ctl(&["counters"]);
    assert_eq!(
        c["ports"][0]["drops"].as_array().unwrap().len(),
        xroute_common::stats::DropReason::ALL.len()
    );
    assert_eq!(c["ports"][0]["rx_packets"], 10);
    let no_route = c["ports"][0]["drops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d[0] == "no_route")
        .unwrap()[1]
        .clone();
    assert_eq!(no_route, 5);
    assert!(c["deltas_applied"].as_u64().unwrap() > 0);
    let text = String::from_utf8(r.ctl_raw(&["counters"], None).stdout).unwrap();
    assert!(
        text.contains("port 0 xr0: rx 10 pkts") && text.contains("drops: no_route 5"),
        "{text}"
    );

    // Bad CLI input: one line, non-zero exit, daemon unharmed.
    for args in [
        vec!["route", "add", "198.51.100.1/24", "via", "198.18.0.5"],
        vec![
            "route",
            "add",
            "198.51.100.0/24",
            "via",
            "198.18.0.5",
            "dev",
            "nosuch",
        ],
        vec!["route", "del", "203.0.113.0/24"],
        vec!["route", "show", "--protocol", "bogus"],
    ] {
        let out = r.ctl_raw(&args, None);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("error: ") && err.trim_end().lines().count() == 1,
            "{args:?}: {err}"
        );
    }
    let err =
        String::from_utf8_lossy(&r.ctl_raw(&["route", "del", "203.0.113.0/24"], None).stderr).to_string();
    assert!(err.contains("comes from the configuration"), "{err}");

    // Hostile bytes on the socket: an error reply, and the daemon keeps serving.
    let s = UnixStream::connect(r.socket()).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut rd = BufReader::new(s);
    for junk in [
        "not json\n",
        "{\"op\":\"route-add\"}\n",
        "{\"op\":\"self-destruct\"}\n",
        "\u{0}\u{1}\u{2}\n",
        "[1,2,3]\n",
    ] {
        w.write_all(junk.as_bytes()).unwrap();
        let mut reply = String::new();
        rd.read_line(&mut reply).unwrap();
        let v: Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(v["ok"], false, "{junk:?} -> {reply}");
    }
    drop(w);
    drop(rd);

    // A bad configuration on reload is refused with file, line and field; the running one stays.
    let before = r.fib_routes();
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("198.18.0.3", "198.18.0.300"),
    )
    .unwrap();
    let out = r.ctl_raw(&["config", "reload"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("xroute.toml:") && err.contains("route[1].via"),
        "{err}"
    );
    assert_eq!(r.fib_routes(), before);
    // A good change applies: drop the static route.
    let text = std::fs::read_to_string(&config).unwrap();
    let cut = text.find("\n[[route]]\nprefix = \"203.0.113.0/24\"").unwrap();
    std::fs::write(&config, &text[..cut]).unwrap();
    let v = r.ctl(&["config", "reload"]);
    assert_eq!(v["routes_removed"], 1);
    r.wait_applied();
    assert_eq!(r.fib_routes(), before - 1);
    assert!(r.control.as_mut().unwrap().is_running());
}

#[test]
fn start_up_refuses_foreign_files_and_second_instances() {
    let dir = TempDir::new("/dev/shm");
    let run = |program: &str, args: &[&str]| {
        let mut c = Command::new(bin(program));
        c.args(args).stdin(Stdio::null());
        let child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let shm = dir.path().to_str().unwrap().to_string();
    let run_dir = format!("{shm}/run");
    // Someone else's file where the channel should be: a clear error, exit 1, file untouched.
    let channel = dir.path().join("xroute-default");
    std::fs::write(&channel, vec![0x5a; 8192]).unwrap();
    std::fs::set_permissions(&channel, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (code, err) = run(
        "xroute-engine",
        &["run", "--shm-dir", &shm, "--run-dir", &run_dir],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("not an xroute channel file"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert_eq!(std::fs::read(&channel).unwrap(), vec![0x5a; 8192]);
    std::fs::remove_file(&channel).unwrap();

    // A second engine for the same instance is refused while the first runs.
    let mut first = Command::new(bin("xroute-engine"));
    first.args(["run", "--shm-dir", &shm, "--run-dir", &run_dir]);
    let mut first = Proc::spawn("xroute-engine", first, dir.path().join("engine.log"));
    let sock = dir.path().join("run/default/engine.sock");
    wait_for("the engine socket", Duration::from_secs(20), || {
        UnixStream::connect(&sock).ok().map(|_| ())
    });
    let (code, err) = run(
        "xroute-engine",
        &["run", "--shm-dir", &shm, "--run-dir", &run_dir],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("another xroute-engine is already attached"), "{err}");
    assert!(first.is_running(), "the first engine is unharmed");
    assert!(first.stop(Duration::from_secs(5)));
    assert!(!sock.exists(), "a stopped engine removes its socket");
}
