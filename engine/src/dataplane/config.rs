//! The data plane's configuration (from `xroute-engine run` flags) and the checks that turn a
//! wrong one into a one-line error saying what to do, before anything is attached.

use crate::xsk::BindMode;
use std::path::Path;
use xroute_common::stats::{MAX_CORES, MAX_PORTS};

/// Default empty rounds before a worker sleeps (a round costs well under a microsecond).
pub const DEFAULT_SPIN_ROUNDS: u32 = 64;

/// Workers the stats segment has slots for: the last core slot belongs to the slow path (it
/// publishes what the XDP programs passed to the kernel there).
pub const MAX_WORKERS: usize = MAX_CORES - 1;

/// Ports, queues, cores and AF_XDP sizing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataplaneConfig {
    /// Interfaces to forward between, by name; engine port numbers follow this order.
    pub ports: Vec<String>,
    /// Queues per port to serve (default: every receive queue the interface has).
    pub queues: Option<u32>,
    /// CPUs to run one worker each on.
    pub cores: Vec<usize>,
    pub mode: BindMode,
    /// UMEM frame size: 2048 or 4096.
    pub frame_size: u32,
    /// UMEM frames per worker (default: enough for every ring of its sockets).
    pub frames: Option<u32>,
    /// Entries of each AF_XDP ring (RX, TX, fill, completion).
    pub ring_size: u32,
    /// ICMP errors per second per worker (token bucket, burst of a tenth of a second).
    pub icmp_rate: u32,
    /// Empty polling rounds before a worker sleeps in `poll()` until traffic arrives.
    pub spin_rounds: u32,
    /// Flow hash seed (ECMP), so that routers in series spread flows differently.
    pub hash_seed: u64,
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        Self {
            ports: Vec::new(),
            queues: None,
            cores: Vec::new(),
            mode: BindMode::Auto,
            frame_size: 2048,
            frames: None,
            ring_size: 2048,
            icmp_rate: 1000,
            spin_rounds: DEFAULT_SPIN_ROUNDS,
            hash_seed: 0,
        }
    }
}

/// A configuration the data plane cannot run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("port {0:?} is given twice")]
    DuplicatePort(String),
    #[error("{0} ports given; the engine supports at most {MAX_PORTS}")]
    TooManyPorts(usize),
    #[error("interface {0:?} not found in this network namespace (see `ip link`)")]
    NoSuchInterface(String),
    #[error("no cores given for the workers")]
    NoCores,
    #[error("core {core} is given twice")]
    DuplicateCore { core: usize },
    #[error("core {core} is not available to this process (allowed CPUs: {allowed})")]
    NoSuchCore { core: usize, allowed: String },
    #[error("{0} cores given; the engine supports at most {MAX_WORKERS} workers")]
    TooManyCores(usize),
    #[error(
        "{port}: --queues {asked} but the interface has {available} receive queue(s) (see `ethtool \
         -l {port}`)"
    )]
    TooManyQueues {
        port: String,
        asked: u32,
        available: u32,
    },
    #[error(
        "{port} has {queues} queue(s) for {workers} workers: every worker needs a queue on every \
         port to transmit on it; use at most {queues} core(s) (--cores) or add queues (`ethtool -L \
         {port} combined {workers}`; veth: numrxqueues/numtxqueues at creation)"
    )]
    TooFewQueues {
        port: String,
        queues: u32,
        workers: usize,
    },
    #[error("ring size {0} is not a power of two between 64 and 32768")]
    RingSize(u32),
    #[error("frame size {0} is not 2048 or 4096")]
    FrameSize(u32),
    #[error("--frames {frames} is fewer than the {needed} the rings of one worker can hold")]
    TooFewFrames { frames: u32, needed: u32 },
}

/// One worker's share: which queue of which port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerPlan {
    pub cpu: usize,
    /// (engine port, queue).
    pub queues: Vec<(usize, u32)>,
    pub frames: u32,
}

/// The checked plan: interface indexes and each worker's queues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub ifindexes: Vec<u32>,
    pub workers: Vec<WorkerPlan>,
}

/// Receive queues of `ifname` as sysfs shows them (in this process's network namespace when
/// /sys was mounted for it, as `ip netns exec` does).
pub fn rx_queues(ifname: &str) -> Option<u32> {
    let dir = Path::new("/sys/class/net").join(ifname).join("queues");
    let n = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    u32::try_from(n).ok().filter(|&n| n > 0)
}

impl DataplaneConfig {
    /// Checks the configuration against the machine: `ifindex` and `queues` look interfaces
    /// up (injected for tests), `allowed` lists the CPUs the process may run on.
    pub fn plan(
        &self,
        ifindex: impl Fn(&str) -> Option<u32>,
        queues: impl Fn(&str) -> Option<u32>,
        allowed: &[usize],
    ) -> Result<Plan, ConfigError> {
        if self.ports.len() > MAX_PORTS {
            return Err(ConfigError::TooManyPorts(self.ports.len()));
        }
        for (i, p) in self.ports.iter().enumerate() {
            if self.ports.iter().take(i).any(|q| q == p) {
                return Err(ConfigError::DuplicatePort(p.clone()));
            }
        }
        if self.cores.is_empty() {
            return Err(ConfigError::NoCores);
        }
        if self.cores.len() > MAX_WORKERS {
            return Err(ConfigError::TooManyCores(self.cores.len()));
        }
        for (i, &c) in self.cores.iter().enumerate() {
            if self.cores.iter().take(i).any(|&d| d == c) {
                return Err(ConfigError::DuplicateCore { core: c });
            }
            if !allowed.contains(&c) {
                let allowed = allowed
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(",");
                return Err(ConfigError::NoSuchCore { core: c, allowed });
            }
        }
        if !(64..=32768).contains(&self.ring_size) || !self.ring_size.is_power_of_two() {
            return Err(ConfigError::RingSize(self.ring_size));
        }
        if self.frame_size != 2048 && self.frame_size != 4096 {
            return Err(ConfigError::FrameSize(self.frame_size));
        }
        let mut ifindexes = Vec::with_capacity(self.ports.len());
        let mut port_queues = Vec::with_capacity(self.ports.len());
        let workers = self.cores.len();
        for p in &self.ports {
            ifindexes.push(ifindex(p).ok_or_else(|| ConfigError::NoSuchInterface(p.clone()))?);
            let available = queues(p).unwrap_or(1);
            let n = match self.queues {
                Some(q) if q > available || q == 0 => {
                    return Err(ConfigError::TooManyQueues {
                        port: p.clone(),
                        asked: q,
                        available,
                    })
                }
                Some(q) => q,
                None => available,
            };
            if (n as usize) < workers {
                return Err(ConfigError::TooFewQueues {
                    port: p.clone(),
                    queues: n,
                    workers,
                });
            }
            port_queues.push(n);
        }
        // Queue q of every port goes to worker q mod workers: each worker then has a queue on
        // every port, so it transmits on its own sockets and never hands frames to another core.
        let mut plans: Vec<WorkerPlan> = self
            .cores
            .iter()
            .map(|&cpu| WorkerPlan {
                cpu,
                queues: Vec::new(),
                frames: 0,
            })
            .collect();
        for (port, &n) in port_queues.iter().enumerate() {
            for q in 0..n {
                if let Some(w) = plans.get_mut(q as usize % workers) {
                    w.queues.push((port, q));
                }
            }
        }
        for w in &mut plans {
            // Per socket: the fill ring and the RX ring full of received frames, the TX and
            // completion rings full of frames in flight; plus room for generated packets.
            let needed = (w.queues.len() as u32)
                .saturating_mul(self.ring_size.saturating_mul(4))
                .max(1);
            w.frames = match self.frames {
                Some(f) if f < needed / 2 => {
                    return Err(ConfigError::TooFewFrames {
                        frames: f,
                        needed: needed / 2,
                    })
                }
                Some(f) => f,
                None => needed.saturating_add(1024),
            };
        }
        Ok(Plan {
            ifindexes,
            workers: plans,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(ports: &[&str], cores: &[usize]) -> DataplaneConfig {
        DataplaneConfig {
            ports: ports.iter().map(|s| s.to_string()).collect(),
            cores: cores.to_vec(),
            ..DataplaneConfig::default()
        }
    }

    fn ifindex(name: &str) -> Option<u32> {
        match name {
            "a" => Some(10),
            "b" => Some(11),
            "one" => Some(12),
            _ => None,
        }
    }

    fn queues(name: &str) -> Option<u32> {
        Some(if name == "one" { 1 } else { 4 })
    }

    #[test]
    fn queues_are_spread_so_every_worker_has_every_port() {
        let plan = cfg(&["a", "b"], &[0, 1]).plan(ifindex, queues, &[0, 1]).unwrap();
        assert_eq!(plan.ifindexes, vec![10, 11]);
        assert_eq!(plan.workers[0].queues, vec![(0, 0), (0, 2), (1, 0), (1, 2)]);
        assert_eq!(plan.workers[1].queues, vec![(0, 1), (0, 3), (1, 1), (1, 3)]);
        assert_eq!(plan.workers[0].frames, 4 * 2048 * 4 + 1024);
        let mut c = cfg(&["a", "b"], &[1]);
        c.queues = Some(1);
        let plan = c.plan(ifindex, queues, &[0, 1]).unwrap();
        assert_eq!(plan.workers[0].queues, vec![(0, 0), (1, 0)]);
    }

    #[test]
    fn bad_configurations_say_what_is_wrong() {
        let e = |c: DataplaneConfig| c.plan(ifindex, queues, &[0, 1]).unwrap_err();
        assert_eq!(
            e(cfg(&["a", "nope"], &[0])),
            ConfigError::NoSuchInterface("nope".into())
        );
        assert_eq!(e(cfg(&["a", "a"], &[0])), ConfigError::DuplicatePort("a".into()));
        assert_eq!(e(cfg(&["a"], &[])), ConfigError::NoCores);
        assert_eq!(e(cfg(&["a"], &[0, 0])), ConfigError::DuplicateCore { core: 0 });
        let err = e(cfg(&["a"], &[7]));
        assert_eq!(
            err.to_string(),
            "core 7 is not available to this process (allowed CPUs: 0,1)"
        );
        let err = e(cfg(&["a", "one"], &[0, 1]));
        assert!(
            err.to_string().contains("one has 1 queue(s) for 2 workers"),
            "{err}"
        );
        let mut c = cfg(&["a"], &[0]);
        c.queues = Some(9);
        assert!(matches!(
            e(c),
            ConfigError::TooManyQueues {
                asked: 9,
                available: 4,
                ..
            }
        ));
        let mut c = cfg(&["a"], &[0]);
        c.ring_size = 1000;
        assert_eq!(e(c), ConfigError::RingSize(1000));
        let mut c = cfg(&["a"], &[0]);
        c.frame_size = 1500;
        assert_eq!(e(c), ConfigError::FrameSize(1500));
        let mut c = cfg(&["a"], &[0]);
        c.frames = Some(16);
        assert!(matches!(e(c), ConfigError::TooFewFrames { frames: 16, .. }));
    }
}
