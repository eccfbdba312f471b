//! The running data plane: XDP programs on the ports, AF_XDP sockets on their queues, one
//! pinned forwarding worker per configured core, and the slow path on the FIB writer thread.
//!
//! - [`config`]: ports, queues, cores, AF_XDP mode and sizes, checked into a [`config::Plan`]
//!   with one-line errors.
//! - [`ports`]: the port snapshot the workers read (engine vs control port numbers, MACs,
//!   ICMP source addresses).
//! - [`worker`]: the forwarding loop.
//! - [`slowpath`]: neighbour resolution through the kernel, address mirroring, port mapping.
//! - [`ring`]: the SPSC hand-off from workers to the slow path.
//!
//! Start-up order matters for a clean failure: everything that can fail (interfaces, queues,
//! XDP attach, UMEM registration, socket binds) happens before any worker runs, and a failure
//! drops what was built so far (the XDP links detach with their descriptors). Shutdown
//! detaches XDP first (traffic falls back to the kernel), then stops and joins the workers,
//! which close their sockets.

pub mod config;
pub mod ports;
pub mod ring;
pub mod slowpath;
pub mod worker;

use crate::fib::FibHandle;
use crate::neighbor::NeighborCacheWriter;
use crate::netlink::Netlink;
use crate::xsk::{SocketConfig, Umem, UmemConfig, XskError, XskSocket};
pub use config::{ConfigError, DataplaneConfig};
use ports::{PortTable, SharedPorts};
pub use slowpath::SlowPath;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use worker::{Shared, WorkerParts};
use xroute_bpf::{XdpError, XdpProgram};
use xroute_common::shm::ChannelFile;

/// Neighbours the engine can track (connected hosts and gateways).
const NEIGHBOR_CAPACITY: usize = 16_384;
/// Pending resolve requests per worker.
const REQUEST_RING: usize = 1024;

/// Why the data plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Xdp(#[from] XdpError),
    #[error(transparent)]
    Xsk(#[from] XskError),
    #[error("rtnetlink socket: {0}")]
    Netlink(std::io::Error),
    #[error("FIB reader for a worker: {0}")]
    Fib(crate::fib::FibError),
    #[error("starting worker thread: {0}")]
    Thread(std::io::Error),
}

/// One socket as started, for the start-up report.
#[derive(Clone, Debug)]
pub struct SocketReport {
    pub worker: usize,
    pub cpu: usize,
    pub port: String,
    pub queue: u32,
    pub mode: crate::xsk::XdpMode,
    pub fallback: Option<String>,
}

/// The running workers. Stop with [`Dataplane::stop`] (after detaching the slow path's XDP
/// programs).
#[derive(Debug)]
pub struct Dataplane {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    pub sockets: Vec<SocketReport>,
}

/// The CPUs this process may run on.
pub fn allowed_cpus() -> Vec<usize> {
    core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect()
}

/// Opens a socket, retrying for a moment while the queue is busy: the kernel releases the
/// queue of a closed socket (a previous engine's, say after `kill -9`) in deferred work.
fn open_socket(umem: &mut Umem, name: &str, queue: u32, cfg: &SocketConfig) -> Result<XskSocket, XskError> {
    let mut tries = 0;
    loop {
        match XskSocket::new(umem, name, queue, cfg) {
            Err(XskError::QueueBusy { .. }) if tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

impl Dataplane {
    /// Checks `cfg`, attaches XDP, opens every socket and starts the workers. Returns the
    /// workers and the slow path to run on the FIB writer thread.
    pub fn start(
        cfg: &DataplaneConfig,
        fib: &FibHandle,
        stats: Arc<ChannelFile>,
    ) -> Result<(Dataplane, SlowPath), StartError> {
        let plan = cfg.plan(xroute_bpf::ifindex, config::rx_queues, &allowed_cpus())?;
        let netlink = Netlink::open().map_err(StartError::Netlink)?;
        let mut programs = Vec::with_capacity(cfg.ports.len());
        for p in &cfg.ports {
            programs.push(XdpProgram::attach(p)?);
        }
        let sock_cfg = SocketConfig {
            mode: cfg.mode,
            rx_size: cfg.ring_size,
            tx_size: cfg.ring_size,
            fill_size: cfg.ring_size,
            comp_size: cfg.ring_size,
            ..SocketConfig::default()
        };
        let (cache, neighbors) = NeighborCacheWriter::new(NEIGHBOR_CAPACITY);
        let mut parts = Vec::with_capacity(plan.workers.len());
        let mut consumers = Vec::with_capacity(plan.workers.len());
        let mut reports = Vec::new();
        for (index, w) in plan.workers.iter().enumerate() {
            let mut umem = Umem::new(UmemConfig {
                frame_count: w.frames,
                frame_size: cfg.frame_size,
            })?;
            let mut sockets = Vec::with_capacity(w.queues.len());
            let mut socket_port = Vec::with_capacity(w.queues.len());
            for &(port, queue) in &w.queues {
                let name = cfg.ports.get(port).map(String::as_str).unwrap_or_default();
                let sock = open_socket(&mut umem, name, queue, &sock_cfg)?;
                reports.push(SocketReport {
                    worker: index,
                    cpu: w.cpu,
                    port: name.to_string(),
                    queue,
                    mode: sock.mode(),
                    fallback: sock.fallback().map(str::to_string),
                });
                sockets.push(sock);
                socket_port.push(port);
            }
            let (requests, consumer) = ring::channel(REQUEST_RING);
            consumers.push(consumer);
            parts.push(WorkerParts {
                index,
                cpu: Some(w.cpu),
                umem,
                sockets,
                socket_port,
                fib: fib.reader().map_err(StartError::Fib)?,
                requests,
            });
        }
        // Stock the fill rings before the XDP programs steer anything to the sockets.
        for p in &mut parts {
            for s in &mut p.sockets {
                let n = s.fill_size() as usize;
                s.fill(&mut p.umem, n)?;
            }
        }
        for p in &parts {
            for (s, &port) in p.sockets.iter().zip(&p.socket_port) {
                if let Some(prog) = programs.get_mut(port) {
                    prog.register_socket(s.queue(), std::os::fd::AsFd::as_fd(s))?;
                }
            }
        }
        // Counters of a previous run of the engine are not this run's.
        for w in stats.stats_words() {
            w.store(0, Ordering::Relaxed);
        }
        let shared = Arc::new(Shared {
            stop: std::sync::atomic::AtomicBool::new(false),
            ports: SharedPorts::new(PortTable::default()),
            neighbors,
            stats,
            icmp_rate: cfg.icmp_rate,
            spin_rounds: cfg.spin_rounds,
            hash_seed: cfg.hash_seed,
        });
        let slow = SlowPath::new(
            Arc::clone(&shared),
            programs,
            cfg.ports.clone(),
            plan.ifindexes.clone(),
            netlink,
            cache,
            consumers,
        );
        let mut workers = Vec::with_capacity(parts.len());
        for p in parts {
            let s = Arc::clone(&shared);
            let name = format!("xroute-w{}", p.index);
            match std::thread::Builder::new()
                .name(name)
                .spawn(move || worker::run(p, s))
            {
                Ok(h) => workers.push(h),
                Err(e) => {
                    shared.stop.store(true, Ordering::Relaxed);
                    for h in workers {
                        let _ = h.join();
                    }
                    slow.detach();
                    return Err(StartError::Thread(e));
                }
            }
        }
        Ok((
            Dataplane {
                shared,
                workers,
                sockets: reports,
            },
            slow,
        ))
    }

    /// Stops the workers and waits for them (they close their sockets).
    pub fn stop(self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for h in self.workers {
            let _ = h.join();
        }
    }
}
