//! The systemd units in `deploy/systemd`, checked for real without systemd (PID 1 on the test
//! machines is not systemd, so they cannot be started as units; everything they grant is
//! reproduced with setpriv and prlimit instead).
//!
//! - `units_agree_with_each_other_and_the_examples` (no root): both units pass
//!   `systemd-analyze verify` (with ExecStart pointed at this build); they run as the same
//!   unprivileged user (the channel file must belong to the user of both processes), their
//!   bounding sets are their ambient sets, they share the run directory the example
//!   configuration names, neither takes the other down when it stops; `xroute-control --check`
//!   accepts `deploy/xroute.toml` and the engine's ports in `deploy/engine.env` are its
//!   interfaces.
//! - `the_units_grant_what_is_needed_and_nothing_more` (root): host A - router - host B in
//!   namespaces. The engine and the control process run in the router as an unprivileged uid with
//!   exactly their unit's ambient capabilities, bounding set, no-new-privs and locked-memory
//!   limit, under strace: pings cross the router (IPv4 and IPv6, connected and via a gateway),
//!   BGP listens on port 179, `xroutectl` works as that uid, every system call and socket
//!   family they used is inside the unit's SystemCallFilter and RestrictAddressFamilies, and
//!   none maps memory writable and executable (MemoryDenyWriteExecute=). Then
//!   the engine is started once per capability with that one taken away: each start fails with
//!   one line naming it and leaves no XDP attached; too little locked memory fails naming
//!   RLIMIT_MEMLOCK. Without CAP_NET_BIND_SERVICE the control process runs but says BGP cannot
//!   listen on port 179 and why (the one capability it has is for that optional feature). Any
//!   capability a unit grants that is not needed makes this test fail.
//!
//! The uid is an unused one rather than the units' `User=xroute`: setpriv needs no passwd entry,
//! so the machine's user database is left alone, and what the kernel sees is the same as with
//! `User=` of a system user: a non-zero uid and gid with no supplementary groups.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use xroute_tests::harness::{bin, root_or_skip, run, wait_for, NetNs, Proc, TempDir};
use xroute_tests::router::{ping, text, try_exec, Topology};

/// Capability numbers (linux/capability.h), for reading /proc/PID/status.
const CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

fn deploy(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("deploy")
        .join(name)
}

/// A unit file as `(section, key, value)` assignments in file order.
struct Unit {
    name: String,
    entries: Vec<(String, String, String)>,
}

impl Unit {
    fn load(name: &str) -> Self {
        let path = deploy(&format!("systemd/{name}"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut section = String::new();
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            assert!(
                !line.ends_with('\\'),
                "{name}:{}: no continuation lines here",
                n + 1
            );
            if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = s.to_string();
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("{name}:{}: not key=value: {line}", n + 1));
            entries.push((section.clone(), k.trim().to_string(), v.trim().to_string()));
        }
        Self {
            name: name.to_string(),
            entries,
        }
    }

    /// The last value of `key` in `section`.
    fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|(s, k, _)| s == section && k == key)
            .map(|(_, _, v)| v.as_str())
    }

    fn service(&self, key: &str) -> &str {
        self.get("Service", key)
            .unwrap_or_else(|| panic!("{}: no {key}= in [Service]", self.name))
    }

    /// Every word of every assignment of a list-valued key in `section` (systemd appends them).
    fn words(&self, section: &str, key: &str) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(s, k, _)| s == section && k == key)
            .flat_map(|(_, _, v)| v.split_whitespace().map(str::to_string))
            .collect()
    }

    /// The ambient capabilities, after checking that the bounding set is the same (so nothing
    /// more can ever be gained) and that every name is known.
    fn capabilities(&self) -> Vec<String> {
        let ambient: BTreeSet<String> = self.words("Service", "AmbientCapabilities").into_iter().collect();
        let bounding: BTreeSet<String> = self
            .words("Service", "CapabilityBoundingSet")
            .into_iter()
            .collect();
        assert_eq!(ambient, bounding, "{}: bounding set != ambient set", self.name);
        for c in &ambient {
            assert!(
                CAPS.contains(&c.as_str()),
                "{}: unknown capability {c}",
                self.name
            );
        }
        ambient.into_iter().collect()
    }
}

/// The process's memlock limit in bytes (None: unlimited): the soft or hard column of
/// /proc/self/limits.
fn memlock_now(hard: bool) -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max locked memory"))
        .expect("Max locked memory in /proc/self/limits");
    let v = line.split_whitespace().nth(usize::from(hard)).unwrap();
    (v != "unlimited").then(|| v.parse().unwrap())
}

/// A `LimitMEMLOCK=` value in bytes (None: infinity).
fn parse_limit(v: &str) -> Option<u64> {
    if v == "infinity" {
        return None;
    }
    let (digits, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let n: u64 = digits.parse().unwrap_or_else(|_| panic!("LimitMEMLOCK={v}"));
    Some(
        n * match unit {
            "" => 1,
            "K" => 1 << 10,
            "M" => 1 << 20,
            "G" => 1 << 30,
            _ => panic!("LimitMEMLOCK={v}: unit {unit}"),
        },
    )
}

/// What a unit grants, as this test reproduces it.
#[derive(Clone, Debug)]
struct Grant {
    uid: u32,
    caps: Vec<String>,
    /// RLIMIT_MEMLOCK (soft = hard) in bytes; None: unlimited; not set at all when the unit
    /// has no LimitMEMLOCK=.
    memlock: Option<Option<u64>>,
}

impl Grant {
    fn without(&self, cap: &str) -> Self {
        let mut g = self.clone();
        g.caps.retain(|c| c != cap);
        g
    }

    /// `program` in `ns` under this grant (and under strace writing to `trace`).
    fn command(&self, ns: &NetNs, trace: Option<&Path>, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &ns.name]);
        if let Some(t) = trace {
            c.args(["strace", "-f", "-qq", "-o"]).arg(t);
        }
        if let Some(limit) = self.memlock {
            let v = limit.map_or("unlimited".to_string(), |b| b.to_string());
            c.arg("prlimit").arg(format!("--memlock={v}:{v}"));
        }
        let caps: String = std::iter::once("-all".to_string())
            .chain(
                self.caps
                    .iter()
                    .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase())),
            )
            .collect::<Vec<_>>()
            .join(",");
        let id = self.uid.to_string();
        c.args([
            "setpriv",
            "--reuid",
            &id,
            "--regid",
            &id,
            "--clear-groups",
            "--no-new-privs",
        ])
        .arg(format!("--inh-caps={caps}"))
        .arg(format!("--ambient-caps={caps}"))
        .arg(format!("--bounding-set={caps}"))
        .arg(program);
        c
    }

    /// The bits of /proc/PID/status's Cap* lines this grant should give.
    fn mask(&self) -> u64 {
        self.caps
            .iter()
            .map(|c| 1u64 << CAPS.iter().position(|n| n == c).unwrap())
            .fold(0, |a, b| a | b)
    }
}

/// A uid (and gid) that no passwd or group entry and no process uses.
fn free_uid() -> u32 {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let taken = |id: u32| {
        let s = format!(":{id}:");
        passwd.contains(&s) || group.contains(&s)
    };
    let start = 61_000 + (std::process::id() % 2000) * 2;
    (start..start + 2000)
        .find(|&id| !taken(id) && !uid_in_use(id))
        .expect("a free uid")
}

fn uid_in_use(uid: u32) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| {
            std::fs::read_to_string(e.path().join("status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("Uid:"))
                        .map(|l| l.split_whitespace().nth(1) == Some(&uid.to_string()))
                })
                .unwrap_or(false)
        })
}

/// The pid of `parent`'s child that runs `program` (strace's tracee, once prlimit and setpriv
/// have exec'd it; strace also forks short-lived children of its own to probe ptrace).
fn child_running(parent: u32, program: &Path) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let ppid: u32 = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
            let exe = std::fs::read_link(e.path().join("exe")).ok()?;
            (ppid == parent && exe == program).then_some(pid)
        })
}

/// A daemon started under strace: the tracee is killed on drop too (strace 6.1 leaves it
/// running when strace itself is killed).
struct Traced {
    tracee: u32,
    proc: Proc,
}

impl Traced {
    fn spawn(name: &str, program: &Path, cmd: Command, log: PathBuf) -> Self {
        let proc = Proc::spawn(name, cmd, log);
        let tracee = wait_for(
            &format!("{name} to start under strace"),
            Duration::from_secs(10),
            || child_running(proc.pid(), program),
        );
        Self { tracee, proc }
    }

    fn kill_tracee(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, &self.tracee.to_string()])
            .status();
    }

    /// SIGTERM to the daemon itself (strace 6.1 does not pass it on); strace exits with the
    /// daemon's status. True if that was 0 within 15 s.
    fn stop(&mut self) -> bool {
        self.kill_tracee("-TERM");
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while let Some(c) = self.proc.child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                self.proc.child = None;
                return status.success();
            }
            if std::time::Instant::now() > deadline {
                self.kill_tracee("-KILL");
                self.proc.kill9();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        // While strace runs, its tracee is still the daemon (no pid reuse possible).
        if self.proc.is_running() {
            self.kill_tracee("-KILL");
        }
    }
}

/// The `Uid:` and `Cap*:` lines of a process, and whether no-new-privs is set.
fn privileges(pid: u32) -> (String, [u64; 5], bool) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
            .to_string()
    };
    let cap = |name: &str| u64::from_str_radix(&field(name), 16).unwrap();
    (
        field("Uid:"),
        [
            cap("CapInh:"),
            cap("CapPrm:"),
            cap("CapEff:"),
            cap("CapBnd:"),
            cap("CapAmb:"),
        ],
        field("NoNewPrivs:") == "1",
    )
}

/// What the traced program did after its own execve.
struct Traces {
    /// System call names.
    calls: BTreeSet<String>,
    /// Socket families of socket() and socketpair().
    families: BTreeSet<String>,
    /// Calls that MemoryDenyWriteExecute= refuses: mmap with PROT_WRITE and PROT_EXEC, mprotect
    /// or pkey_mprotect with PROT_EXEC.
    write_exec: Vec<String>,
}

fn traced_calls(trace: &Path, program: &Path) -> Traces {
    let text = std::fs::read_to_string(trace).unwrap();
    let exec = format!("execve(\"{}\"", program.display());
    let start = text
        .lines()
        .position(|l| l.contains(&exec) && l.trim_end().ends_with("= 0"))
        .unwrap_or_else(|| panic!("{}: no successful {exec}", trace.display()));
    let (mut calls, mut families, mut write_exec) = (BTreeSet::new(), BTreeSet::new(), Vec::new());
    for line in text.lines().skip(start + 1) {
        let rest = line.trim_start_matches(|c: char| c.is_ascii_digit()).trim_start();
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() || !rest[name.len()..].starts_with('(') {
            continue; // "<... resumed>", "+++ exited", "--- SIGTERM"
        }
        if name == "socket" || name == "socketpair" {
            let family: String = rest[name.len() + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            families.insert(family);
        }
        let exec = rest.contains("PROT_EXEC");
        if (name == "mmap" && exec && rest.contains("PROT_WRITE")) || (name.ends_with("mprotect") && exec) {
            write_exec.push(line.to_string());
        }
        calls.insert(name);
    }
    Traces {
        calls,
        families,
        write_exec,
    }
}

/// The system calls a `SystemCallFilter=` allow list admits, groups expanded by
/// `systemd-analyze syscall-filter`.
fn allowed_calls(filter: &[String]) -> BTreeSet<String> {
    let out = run(Command::new("systemd-analyze").arg("syscall-filter"));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut groups: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if line.starts_with('@') {
            current = t.to_string();
            groups.entry(current.clone()).or_default();
        } else if !t.is_empty() && !t.starts_with('#') && !current.is_empty() {
            groups.entry(current.clone()).or_default().push(t.to_string());
        }
    }
    fn expand(
        item: &str,
        groups: &std::collections::BTreeMap<String, Vec<String>>,
        out: &mut BTreeSet<String>,
    ) {
        if item.starts_with('@') {
            let members = groups.get(item).unwrap_or_else(|| panic!("unknown group {item}"));
            for m in members {
                expand(m, groups, out);
            }
        } else {
            out.insert(item.to_string());
        }
    }
    let mut allowed = BTreeSet::new();
    for item in filter {
        assert!(
            !item.starts_with('~'),
            "SystemCallFilter deny lists are not checked here"
        );
        expand(item, &groups, &mut allowed);
    }
    allowed
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// XROUTE_ENGINE_ARGS of `deploy/engine.env`, split as systemd splits `$VAR`.
fn example_engine_args() -> Vec<String> {
    let text = std::fs::read_to_string(deploy("engine.env")).unwrap();
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix("XROUTE_ENGINE_ARGS="))
        .expect("XROUTE_ENGINE_ARGS= in deploy/engine.env");
    value
        .trim_matches('"')
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn units_agree_with_each_other_and_the_examples() {
    let engine = Unit::load("xroute-engine.service");
    let control = Unit::load("xroute-control.service");
    for u in [&engine, &control] {
        let user = u.service("User");
        assert!(!matches!(user, "root" | "0"), "{}: runs as root", u.name);
        assert_eq!(u.service("NoNewPrivileges"), "yes", "{}", u.name);
        u.capabilities();
        for key in ["Requires", "BindsTo", "PartOf", "Requisite"] {
            assert!(
                u.words("Unit", key).iter().all(|w| !w.starts_with("xroute-")),
                "{}: {key}= would stop it with the other process; each survives the other's restart",
                u.name
            );
        }
    }
    // One user for both: the channel file must be owned by the user of each process.
    assert_eq!(engine.service("User"), control.service("User"));
    assert_eq!(engine.service("Group"), control.service("Group"));
    // One run directory, kept when either stops (the other's socket is in it).
    assert_eq!(
        engine.service("RuntimeDirectory"),
        control.service("RuntimeDirectory")
    );
    for u in [&engine, &control] {
        assert_eq!(u.service("RuntimeDirectoryPreserve"), "yes", "{}", u.name);
    }
    assert!(control
        .words("Unit", "After")
        .contains(&"xroute-engine.service".to_string()));
    assert!(control
        .words("Unit", "Wants")
        .contains(&"xroute-engine.service".to_string()));

    // ExecStart and the files they name.
    let exec = engine.words("Service", "ExecStart");
    assert_eq!(exec[..2], ["/usr/local/bin/xroute-engine", "run"]);
    assert!(exec.contains(&"$XROUTE_ENGINE_ARGS".to_string()), "{exec:?}");
    assert_eq!(engine.service("EnvironmentFile"), "/etc/xroute/engine.env");
    let exec = control.words("Service", "ExecStart");
    assert_eq!(
        exec,
        [
            "/usr/local/bin/xroute-control",
            "--config",
            "/etc/xroute/xroute.toml"
        ]
    );

    // The example configuration: valid, in the run directory the units create, and its
    // interfaces are the engine's ports.
    let check = run(Command::new(bin("xroute-control"))
        .arg("--check")
        .arg("--config")
        .arg(deploy("xroute.toml")));
    assert!(text(&check).contains("enp65s0f0"), "{}", text(&check));
    let cfg = xroute_control::config::load(&deploy("xroute.toml")).unwrap();
    assert_eq!(
        cfg.router.run_dir,
        Path::new("/run").join(engine.service("RuntimeDirectory"))
    );
    assert_eq!(
        cfg.router.instance, "default",
        "the units start the default instance"
    );
    let args = example_engine_args();
    let ports: Vec<&str> = args
        .windows(2)
        .filter(|w| w[0] == "--port")
        .map(|w| w[1].as_str())
        .collect();
    let interfaces: Vec<&str> = cfg.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        ports, interfaces,
        "engine.env --port names vs xroute.toml interfaces"
    );

    // systemd's own check, on copies that run this build.
    if !have("systemd-analyze") {
        eprintln!("SKIP systemd-analyze verify: systemd-analyze not installed (apt-get install systemd)");
        return;
    }
    let dir = TempDir::new(&std::env::temp_dir().to_string_lossy());
    let mut paths = Vec::new();
    for name in ["xroute-engine.service", "xroute-control.service"] {
        let unit = std::fs::read_to_string(deploy(&format!("systemd/{name}"))).unwrap();
        let build = bin("xroute-engine");
        let build_dir = build.parent().unwrap().to_string_lossy().into_owned();
        let p = dir.path().join(name);
        std::fs::write(&p, unit.replace("/usr/local/bin", &build_dir)).unwrap();
        paths.push(p);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&paths)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        text(&out)
    );
    // And it would notice a mistake (so the silence above means something).
    let bad = dir.path().join("bad.service");
    let unit = std::fs::read_to_string(&paths[0]).unwrap();
    std::fs::write(
        &bad,
        unit.replace("RestrictAddressFamilies=", "RestrictAdressFamilies="),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(text(&out).contains("RestrictAdressFamilies"), "{}", text(&out));
}

/// Lines of `err` that start with "error:" (libbpf and the verifier may print lines of their
/// own before it).
fn error_lines(err: &str) -> Vec<&str> {
    err.lines().filter(|l| l.starts_with("error:")).collect()
}

fn has_xdp(ns: &NetNs, port: &str) -> bool {
    text(&try_exec(ns, &["ip", "link", "show", port])).contains("xdp")
}

/// Runs the engine under `grant` until it fails or starts forwarding (then stops it); returns
/// its exit code and output.
fn engine_start(t: &Topology, grant: &Grant, instance: &str, extra: &[&str]) -> (Option<i32>, String) {
    let mut cmd = grant.command(&t.r, None, &bin("xroute-engine"));
    cmd.args([
        "run",
        "--instance",
        instance,
        "--port",
        "r0",
        "--port",
        "r1",
        "--shm-dir",
    ])
    .arg(t.dir.path())
    .arg("--run-dir")
    .arg(t.path("run"))
    .args(extra);
    let log = t.path(&format!("engine-{instance}.log"));
    let mut p = Proc::spawn("xroute-engine", cmd, log);
    // Some(0) also when it starts forwarding: it should not have.
    let code = wait_for("the engine to fail or forward", Duration::from_secs(30), || {
        if let Some(c) = p.child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                p.child = None; // reaped: never signal its pid again
                return Some(status.code());
            }
        }
        p.log_text().contains("forwarding on").then_some(Some(0))
    });
    p.stop(Duration::from_secs(10));
    (code, p.log_text())
}

/// `xroutectl --json ARGS` as `uid`, without capabilities, parsed.
fn ctl_as(t: &Topology, uid: u32, args: &[&str]) -> serde_json::Value {
    let id = uid.to_string();
    let out = Command::new("setpriv")
        .args(["--reuid", &id, "--regid", &id, "--clear-groups", "--no-new-privs"])
        .args(["--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all"])
        .arg(bin("xroutectl"))
        .arg("--socket")
        .arg(t.path("run/default/control.sock"))
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "xroutectl {args:?} as uid {uid}: {}",
        text(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn port_counter(v: &serde_json::Value, port: &str, name: &str) -> u64 {
    v["ports"]
        .as_array()
        .and_then(|ports| ports.iter().find(|p| p["name"] == port))
        .and_then(|p| p[name].as_u64())
        .unwrap_or_else(|| panic!("no {name} for {port} in {v}"))
}

#[test]
fn the_units_grant_what_is_needed_and_nothing_more() {
    if !root_or_skip("the_units_grant_what_is_needed_and_nothing_more") {
        return;
    }
    for tool in ["strace", "setpriv", "prlimit", "systemd-analyze"] {
        assert!(
            have(tool),
            "{tool} is missing (scripts/install-deps.sh installs strace, util-linux and systemd)"
        );
    }
    let engine_unit = Unit::load("xroute-engine.service");
    let control_unit = Unit::load("xroute-control.service");

    // The example engine flags parse: in an empty namespace the engine gets as far as checking
    // them against the machine (exit 1 with a one-line refusal, not clap's usage error 2).
    {
        let ns = NetNs::new();
        let dir = TempDir::new("/dev/shm");
        let out = Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(bin("xroute-engine"))
            .arg("run")
            .args(example_engine_args())
            .args(["--instance", "envcheck", "--shm-dir"])
            .arg(dir.path())
            .arg("--run-dir")
            .arg(dir.path().join("run"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("interface \"enp65s0f0\" not found") || err.contains("core 2 is not available"),
            "{err}"
        );
    }

    let t = Topology::new(1);
    let uid = free_uid();
    run(Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{uid}"))
        .arg(t.dir.path()));

    // The locked-memory limit the unit sets, as far as this machine lets root raise it (some
    // VMs fix the hard limit; root without CAP_SYS_RESOURCE cannot go above it). The UMEM is
    // kept small (--ring-size 128, about 3 MiB per worker) so that it fits even then.
    let hard = memlock_now(true);
    let unit_memlock = engine_unit.get("Service", "LimitMEMLOCK").map(parse_limit);
    let memlock = unit_memlock.map(|want| match (want, hard) {
        (None, h) => h,
        (Some(w), Some(h)) => Some(w.min(h)),
        (Some(w), None) => Some(w),
    });
    if memlock != unit_memlock {
        eprintln!(
            "note: the unit's LimitMEMLOCK is above this machine's hard limit ({hard:?} bytes); using that"
        );
    }
    let engine_grant = Grant {
        uid,
        caps: engine_unit.capabilities(),
        memlock,
    };
    let control_grant = Grant {
        uid,
        caps: control_unit.capabilities(),
        memlock: control_unit.get("Service", "LimitMEMLOCK").map(parse_limit),
    };
    let small_umem = ["--ring-size", "128"];

    // 1. Both daemons with exactly what their units grant, under strace.
    let engine_trace = t.path("engine.strace");
    let mut cmd = engine_grant.command(&t.r, Some(&engine_trace), &bin("xroute-engine"));
    cmd.args(["run", "--port", "r0", "--port", "r1", "--shm-dir"])
        .arg(t.dir.path())
        .arg("--run-dir")
        .arg(t.path("run"))
        .args(small_umem);
    let mut engine = Traced::spawn("xroute-engine", &bin("xroute-engine"), cmd, t.path("engine.log"));
    wait_for("the engine to start forwarding", Duration::from_secs(30), || {
        let log = engine.proc.log_text();
        assert!(!log.contains("error:"), "engine failed: {log}");
        log.contains("forwarding on").then_some(())
    });
    let (uids, caps, nnp) = privileges(engine.tracee);
    assert_eq!(uids, format!("{uid}\t{uid}\t{uid}\t{uid}"), "engine uids");
    assert_eq!(
        caps,
        [engine_grant.mask(); 5],
        "engine Cap{{Inh,Prm,Eff,Bnd,Amb}}"
    );
    assert!(nnp, "engine has no-new-privs");

    let config = t.config(
        "[[route]]\nprefix = \"203.0.113.0/24\"\nvia = \"198.51.100.2\"\n\n\
         [[route]]\nprefix = \"2001:db8:3::/48\"\nvia = \"2001:db8:2::2\"\n\n\
         [bgp]\nenabled = true\nlocal-as = 64500\n\n\
         [[bgp.neighbor]]\naddress = \"198.51.100.2\"\nremote-as = 64501\n\n\
         [[bgp.neighbor]]\naddress = \"2001:db8:2::2\"\nremote-as = 64501\n",
    );
    std::fs::write(t.path("xroute.toml"), config).unwrap();
    let control_trace = t.path("control.strace");
    let mut cmd = control_grant.command(&t.r, Some(&control_trace), &bin("xroute-control"));
    cmd.arg("--config").arg(t.path("xroute.toml"));
    let mut control = Traced::spawn(
        "xroute-control",
        &bin("xroute-control"),
        cmd,
        t.path("control.log"),
    );
    let sock = t.path("run/default/control.sock");
    wait_for("the control socket", Duration::from_secs(20), || {
        std::os::unix::net::UnixStream::connect(&sock).ok().map(|_| ())
    });
    let (uids, caps, nnp) = privileges(control.tracee);
    assert_eq!(uids, format!("{uid}\t{uid}\t{uid}\t{uid}"), "control uids");
    assert_eq!(
        caps,
        [control_grant.mask(); 5],
        "control Cap{{Inh,Prm,Eff,Bnd,Amb}}"
    );
    assert!(nnp, "control has no-new-privs");
    wait_for("BGP to listen", Duration::from_secs(10), || {
        control
            .proc
            .log_text()
            .contains("bgp: listening on TCP port 179")
            .then_some(())
    });
    ctl_as(&t, uid, &["fib", "wait", "--timeout", "30"]);

    for dst in ["198.51.100.2", "203.0.113.1", "2001:db8:2::2", "2001:db8:3::1"] {
        let o = ping(&t.a, &["-c", "3", dst]);
        assert!(
            o.status.success(),
            "ping {dst} through the unprivileged engine: {}\n{}\n{}",
            text(&o),
            engine.proc.log_text(),
            control.proc.log_text()
        );
    }
    let counters = ctl_as(&t, uid, &["counters"]);
    assert!(port_counter(&counters, "r0", "rx_packets") >= 12, "{counters}");
    assert!(port_counter(&counters, "r1", "rx_packets") >= 12, "{counters}");
    let lookup = ctl_as(&t, uid, &["fib", "lookup", "203.0.113.1"]);
    assert!(lookup.to_string().contains("198.51.100.2"), "{lookup}");
    ctl_as(&t, uid, &["config", "reload"]);
    ctl_as(&t, uid, &["bgp", "summary"]);

    assert!(
        control.stop(),
        "control stops cleanly: {}",
        control.proc.log_text()
    );
    assert!(engine.stop(), "engine stops cleanly: {}", engine.proc.log_text());
    assert!(!has_xdp(&t.r, "r0") && !has_xdp(&t.r, "r1"), "XDP detached");

    // 2. Everything they did is inside the units' filters.
    for (unit, trace, program) in [
        (&engine_unit, &engine_trace, bin("xroute-engine")),
        (&control_unit, &control_trace, bin("xroute-control")),
    ] {
        let Traces {
            calls,
            families,
            write_exec,
        } = traced_calls(trace, &program);
        if unit.get("Service", "MemoryDenyWriteExecute") == Some("yes") {
            assert!(
                write_exec.is_empty(),
                "{}: MemoryDenyWriteExecute=yes would refuse {write_exec:?}",
                unit.name
            );
        }
        assert!(
            calls.contains("socket"),
            "{}: the trace saw no socket()",
            unit.name
        );
        let allowed = allowed_calls(&unit.words("Service", "SystemCallFilter"));
        let outside: Vec<&String> = calls.difference(&allowed).collect();
        assert!(
            outside.is_empty(),
            "{}: system calls outside SystemCallFilter: {outside:?}",
            unit.name
        );
        let restrict: BTreeSet<String> = unit
            .words("Service", "RestrictAddressFamilies")
            .into_iter()
            .collect();
        let outside: Vec<&String> = families.difference(&restrict).collect();
        assert!(
            outside.is_empty(),
            "{}: socket families outside RestrictAddressFamilies: {outside:?} (used: {families:?})",
            unit.name
        );
        eprintln!(
            "{}: families {families:?}, {} system calls",
            unit.name,
            calls.len()
        );
    }

    // 3. Each of the engine's capabilities is needed: without it the engine refuses to start
    // with one line naming it, and leaves nothing attached.
    for cap in &engine_grant.caps {
        let (code, log) = engine_start(&t, &engine_grant.without(cap), "nocap", &small_umem);
        assert_ne!(
            code,
            Some(0),
            "the engine started without {cap}: the unit grants more than it needs\n{log}"
        );
        let errors = error_lines(&log);
        assert_eq!(errors.len(), 1, "without {cap}: one error line\n{log}");
        assert!(
            errors[0].contains(cap.as_str()),
            "without {cap}: the error should name it\n{log}"
        );
        assert!(
            !has_xdp(&t.r, "r0") && !has_xdp(&t.r, "r1"),
            "without {cap}: XDP left attached"
        );
    }
    // Too little locked memory (unless the unit grants CAP_IPC_LOCK, which ignores the limit).
    if !engine_grant.caps.iter().any(|c| c == "CAP_IPC_LOCK") {
        let mut tight = engine_grant.clone();
        tight.memlock = Some(Some(1 << 20));
        let (code, log) = engine_start(&t, &tight, "memlock", &small_umem);
        assert_eq!(code, Some(1), "{log}");
        let errors = error_lines(&log);
        assert_eq!(errors.len(), 1, "{log}");
        assert!(
            errors[0].contains("not enough locked memory (RLIMIT_MEMLOCK is 1 MiB")
                && errors[0].contains("LimitMEMLOCK"),
            "{log}"
        );
        assert!(
            !has_xdp(&t.r, "r0"),
            "XDP left attached after the memlock failure"
        );
    }

    // 4. The control process's capabilities: each is for an optional feature it names.
    for cap in &control_grant.caps {
        assert_eq!(
            cap, "CAP_NET_BIND_SERVICE",
            "no check proves that xroute-control needs {cap}: add one, or take it out of the unit"
        );
        let mut cmd = control_grant
            .without(cap)
            .command(&t.r, None, &bin("xroute-control"));
        cmd.arg("--config").arg(t.path("xroute.toml"));
        let mut c = Proc::spawn("xroute-control", cmd, t.path("control-nocap.log"));
        let line = wait_for("BGP's refusal", Duration::from_secs(10), || {
            c.log_text()
                .lines()
                .find(|l| l.contains("cannot listen on TCP port 179"))
                .map(str::to_string)
        });
        assert!(line.contains(cap.as_str()), "{line}");
        ctl_as(&t, uid, &["interfaces"]);
        assert!(c.stop(Duration::from_secs(10)), "{}", c.log_text());
    }
}
