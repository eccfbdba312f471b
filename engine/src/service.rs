//! The engine process's control side: attach to the instance's delta channel, apply deltas on
//! the FIB writer thread, publish progress in the channel header, and answer queries on the
//! engine socket. The forwarding workers (AF_XDP) read the same FIB through lock-free readers.

use crate::fib::{AdjacencyKind, FibReader};
use crate::programmer::{Mode, Programmer};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use xroute_common::delta::RawRecord;
use xroute_common::query::{
    format_mac, EngineReply, EngineRequest, LookupMember, LookupResult, NeighborInfo, PortInfo,
};
use xroute_common::shm::{word, ChannelFile, Consumer, EngineState, ShmError, DEFAULT_CAPACITY};

/// Where the engine finds its channel and puts its socket.
#[derive(Clone, Debug)]
pub struct ServiceOptions {
    pub instance: String,
    pub shm_dir: PathBuf,
    pub run_dir: PathBuf,
}

impl ServiceOptions {
    pub fn channel_path(&self) -> PathBuf {
        ChannelFile::path_for(&self.shm_dir, &self.instance)
    }

    pub fn socket_dir(&self) -> PathBuf {
        self.run_dir.join(&self.instance)
    }

    pub fn socket_path(&self) -> PathBuf {
        self.socket_dir().join("engine.sock")
    }
}

/// Why the engine could not start its service.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Channel(#[from] ShmError),
    #[error("{path}: {source}")]
    Socket { path: PathBuf, source: std::io::Error },
}

/// Records taken per poll; bounds how long the writer holds the programmer lock (a full batch
/// of a table's routes takes tens of ms to apply).
const BATCH: usize = 65_536;

/// A poll bringing fewer records than this, with nothing staged before it, is published at
/// once: only a table's worth of changes waits to be applied together. Once a burst stages,
/// its small polls wait with the rest (see [`Burst::publish_now`]).
const LARGE: usize = 1024;

/// Within a staging burst, route changes are published at least this often.
const PUBLISH_EVERY: Duration = Duration::from_millis(300);

/// A pause this long without records ends a burst: what is staged is published.
const BURST_GAP: Duration = Duration::from_millis(30);

/// When the writer loop publishes what it staged (see [`Service::run`]).
#[derive(Debug, Default)]
struct Burst {
    /// When the last records were done with (applied, staged or published). A pause that ends
    /// a burst is time the ring stayed empty, not time spent on what it held: publishing a
    /// large batch takes longer than [`BURST_GAP`], and the records that came meanwhile
    /// belong to the same burst (counting from the poll made every poll after a long publish
    /// look like a new burst, published at once: a table then went out in dozens of costly
    /// publishes instead of three).
    last_records: Option<Instant>,
    /// When the oldest unpublished change was taken.
    staged_since: Option<Instant>,
}

impl Burst {
    fn in_burst(&self, now: Instant) -> bool {
        self.last_records
            .is_some_and(|t| now.duration_since(t) < BURST_GAP)
    }

    /// A poll at `now` brought `n` records, now applied (`has_staged`: route changes wait to
    /// be published); true when they must be published at once.
    ///
    /// A small poll is published at once only when nothing was staged before it (a route
    /// flap, ordinary churn). In a table's burst a small poll is the sender or the control
    /// process falling behind for a moment, most often on a busy machine: publishing there
    /// rebuilt every trie entry the burst had touched so far (8-28 ms each in traced loads),
    /// and a contended load went out in up to twice as many publishes, taking CPU from the
    /// processes it shares cores with.
    fn publish_now(&mut self, now: Instant, n: usize, has_staged: bool) -> bool {
        let due = self
            .staged_since
            .is_some_and(|t| now.duration_since(t) >= PUBLISH_EVERY);
        let small = n < LARGE && self.staged_since.is_none();
        if !self.in_burst(now) || small || due || !has_staged {
            self.staged_since = None;
            true
        } else {
            self.staged_since.get_or_insert(now);
            false
        }
    }

    /// The records of the last poll are done with at `now`.
    fn done(&mut self, now: Instant) {
        self.last_records = Some(now);
    }

    /// A poll at `now` found nothing: true when what is staged must be published (the burst
    /// ended).
    fn idle_publish(&mut self, now: Instant) -> bool {
        if self.staged_since.is_some() && !self.in_burst(now) {
            self.staged_since = None;
            true
        } else {
            false
        }
    }
}

/// The running service. Dropping it does not stop it; call [`Service::run`] on the writer
/// thread until `stop` is set.
#[derive(Debug)]
pub struct Service {
    consumer: Consumer,
    programmer: Arc<Mutex<Programmer>>,
    socket_path: PathBuf,
}

impl Service {
    /// Attaches to the channel (creating it if the control process has not yet) and binds the
    /// engine socket.
    pub fn start(opts: &ServiceOptions) -> Result<Self, ServiceError> {
        let file = ChannelFile::open(&opts.channel_path(), DEFAULT_CAPACITY)?;
        let consumer = Consumer::attach(file)?;
        let programmer = Arc::new(Mutex::new(Programmer::new()));
        let socket_path = opts.socket_path();
        let listener = bind_private(&opts.socket_dir(), &socket_path)?;
        let p = Arc::clone(&programmer);
        std::thread::Builder::new()
            .name("engine-query".into())
            .spawn(move || serve(listener, p))
            .map_err(|source| ServiceError::Socket {
                path: socket_path.clone(),
                source,
            })?;
        Ok(Self {
            consumer,
            programmer,
            socket_path,
        })
    }

    /// A reader of the FIB for a forwarding worker.
    pub fn fib_reader(&self) -> Option<FibReader> {
        lock(&self.programmer).fib().reader().ok()
    }

    /// A handle to make FIB readers from (one per forwarding worker).
    pub fn fib_handle(&self) -> crate::fib::FibHandle {
        lock(&self.programmer).fib().handle()
    }

    /// The channel mapping (its stats segment is where the workers count).
    pub fn channel(&self) -> Arc<ChannelFile> {
        self.consumer.shared_file()
    }

    /// The writer loop: poll, apply, publish; returns when `stop` is set. `tick` runs on this
    /// thread with the programmer between batches, at least every 2 ms (the data plane's slow
    /// path).
    ///
    /// Records that arrive after a quiet spell, or a few at a time, are applied and published
    /// at once. A burst that brings a large poll (a table being loaded) queues its route
    /// changes, those of its later small polls too, and applies them together, in prefix
    /// order, every [`PUBLISH_EVERY`] and when the burst ends ([`BURST_GAP`] without records):
    /// far fewer trie entries touched and rebuilt per route (a full table in the sender's
    /// order: about half the writer's CPU).
    /// The applied sequence number is published with the routes, never before.
    pub fn run(&mut self, stop: &AtomicBool, mut tick: impl FnMut(&mut Programmer)) {
        let mut batch: Vec<RawRecord> = Vec::with_capacity(BATCH);
        let mut idle = Duration::from_micros(50);
        let mut last_beat = Instant::now();
        let mut burst = Burst::default();
        // The sequence number of the last record taken.
        let mut taken = 0u64;
        while !stop.load(Ordering::Relaxed) {
            batch.clear();
            let n = self.consumer.poll(&mut batch, BATCH);
            let now = Instant::now();
            if n > 0 {
                let mut p = lock(&self.programmer);
                taken = p.apply_staged(&batch);
                self.consumer.release();
                if burst.publish_now(now, n, p.has_staged()) {
                    p.commit_routes();
                    self.publish(&p);
                    self.consumer.commit(taken);
                }
                drop(p);
                burst.done(Instant::now());
                idle = Duration::from_micros(50);
                tick(&mut lock(&self.programmer));
            } else {
                if burst.idle_publish(now) {
                    let mut p = lock(&self.programmer);
                    p.commit_routes();
                    self.publish(&p);
                    self.consumer.commit(taken);
                }
                tick(&mut lock(&self.programmer));
                std::thread::sleep(idle);
                idle = (idle * 2).min(Duration::from_millis(2));
            }
            if last_beat.elapsed() > Duration::from_millis(100) {
                self.consumer.heartbeat();
                last_beat = Instant::now();
            }
        }
        let _ = std::fs::remove_file(&self.socket_path);
    }

    fn publish(&self, p: &Programmer) {
        let f = self.consumer.file();
        let fib = p.fib();
        let mem = fib.memory();
        let (groups, adjs) = p.object_counts();
        let s = p.stats();
        f.set(word::FIB_ROUTES_V4, fib.len_v4() as u64);
        f.set(word::FIB_ROUTES_V6, fib.len_v6() as u64);
        f.set(
            word::FIB_MEMORY_BYTES,
            (mem.v4.total_bytes() + mem.v6.total_bytes() + mem.nexthop_bytes) as u64,
        );
        f.set(word::FIB_GROUPS, groups as u64);
        f.set(word::FIB_ADJACENCIES, adjs as u64);
        f.set(word::REJECTED, s.rejected);
        f.set(word::LAST_REJECTED_SEQ, s.last_rejected_seq);
        f.set(word::RESYNCS_DONE, s.resyncs_done);
        f.set(word::RESYNC_TAG, s.last_resync_tag);
        f.set(word::RESYNC_SWEPT, s.last_swept);
        self.consumer.set_state(match p.mode() {
            Mode::AwaitingResync => EngineState::AwaitingResync,
            Mode::InSync => EngineState::InSync,
            Mode::Resyncing { .. } => EngineState::Resyncing,
        });
    }
}

fn lock(p: &Mutex<Programmer>) -> std::sync::MutexGuard<'_, Programmer> {
    // A panic while holding the lock would abort the process (panic = abort in release), so
    // a poisoned lock can only be seen in tests; the state is still the last applied one.
    p.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Binds a Unix socket only the owner can use, replacing a stale socket file.
pub fn bind_private(dir: &Path, path: &Path) -> Result<UnixListener, ServiceError> {
    let err = |source| ServiceError::Socket {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    if UnixStream::connect(path).is_ok() {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "another process is serving this socket",
        )));
    }
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    Ok(listener)
}

fn serve(listener: UnixListener, programmer: Arc<Mutex<Programmer>>) {
    for stream in listener.incoming().flatten() {
        let p = Arc::clone(&programmer);
        let _ = std::thread::Builder::new()
            .name("engine-client".into())
            .spawn(move || client(stream, &p));
    }
}

/// Longest request line accepted (a lookup of many addresses fits easily).
const MAX_LINE: usize = 4 << 20;

fn client(stream: UnixStream, programmer: &Mutex<Programmer>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        match (&mut reader).take(MAX_LINE as u64).read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let reply = match serde_json::from_str::<EngineRequest>(&line) {
            Ok(req) => answer(&req, programmer),
            Err(e) => EngineReply::Error {
                message: format!("bad request: {e}"),
            },
        };
        let Ok(mut text) = serde_json::to_string(&reply) else {
            return;
        };
        text.push('\n');
        if out.write_all(text.as_bytes()).is_err() {
            return;
        }
    }
}

fn kind_name(k: AdjacencyKind) -> &'static str {
    match k {
        AdjacencyKind::Forward => "forward",
        AdjacencyKind::Blackhole => "blackhole",
        AdjacencyKind::Unreachable => "unreachable",
        AdjacencyKind::Local => "local",
    }
}

/// Answers one request from the programmer's current state (what the writer loop staged is
/// published first: a lookup names the matching prefix from the writer's state).
pub fn answer(req: &EngineRequest, programmer: &Mutex<Programmer>) -> EngineReply {
    let mut p = lock(programmer);
    p.commit_routes();
    let p = p;
    let port_name = |port: u16| p.ports().get(&u32::from(port)).map(|s| s.name_str());
    let member = |id: u32, weight: u32, adj: &crate::fib::Adjacency| LookupMember {
        adjacency: id,
        weight,
        action: kind_name(adj.kind).into(),
        port: adj.port,
        port_name: (adj.kind == AdjacencyKind::Forward)
            .then(|| port_name(adj.port))
            .flatten(),
        next_hop: adj.next_hop,
        mac: adj.dst_mac.map(format_mac),
        mtu: adj.mtu,
    };
    match req {
        EngineRequest::Lookup { addrs } => EngineReply::Lookup {
            results: addrs
                .iter()
                .map(|&addr| match p.lookup(addr) {
                    Some(a) => LookupResult {
                        addr,
                        prefix: Some(a.prefix.to_string()),
                        group: Some(a.group.get()),
                        members: a
                            .members
                            .iter()
                            .map(|(id, w, adj)| member(id.0, *w, adj))
                            .collect(),
                    },
                    None => LookupResult {
                        addr,
                        prefix: None,
                        group: None,
                        members: Vec::new(),
                    },
                })
                .collect(),
        },
        EngineRequest::Adjacencies => EngineReply::Adjacencies {
            adjacencies: p
                .adjacencies()
                .iter()
                .filter_map(|(id, _, adj)| adj.as_ref().map(|a| member(id.0, 0, a)))
                .collect(),
        },
        EngineRequest::Neighbors => EngineReply::Neighbors {
            neighbors: p
                .neighbors()
                .into_iter()
                .map(|(port, address, mac)| NeighborInfo {
                    port,
                    address,
                    mac: format_mac(mac),
                })
                .collect(),
        },
        EngineRequest::Ports => EngineReply::Ports {
            ports: p
                .ports()
                .iter()
                .map(|(port, s)| PortInfo {
                    port: *port,
                    name: s.name_str(),
                    ifindex: s.ifindex,
                    mtu: s.mtu,
                    mac: format_mac(s.mac),
                    up: s.up,
                })
                .collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_published_every_period_and_at_its_end_not_after_each_long_publish() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut b = Burst::default();
        // The first poll of a burst is published at once.
        assert!(b.publish_now(ms(0), 4096, true));
        b.done(ms(1));
        // Large polls within the burst are staged.
        assert!(!b.publish_now(ms(2), 4096, true));
        b.done(ms(3));
        for t in (20..=280).step_by(20) {
            assert!(!b.publish_now(ms(t), 65_536, true), "staged at {t} ms");
            b.done(ms(t + 1));
        }
        // Due after PUBLISH_EVERY since the oldest staged change; the publish takes 250 ms.
        assert!(b.publish_now(ms(302), 65_536, true));
        b.done(ms(552));
        // The ring filled meanwhile: still the same burst, staged.
        assert!(!b.publish_now(ms(553), 65_536, true));
        b.done(ms(560));
        // A short pause does not end it; BURST_GAP without records does.
        assert!(!b.idle_publish(ms(570)));
        assert!(b.idle_publish(ms(591)));
        assert!(!b.idle_publish(ms(600)), "nothing staged is left");
        // After a pause, a poll is published at once, large or small.
        assert!(b.publish_now(ms(601), 65_536, true));
        b.done(ms(602));
        // A small poll with nothing staged before it (churn) is published at once even in a
        // burst, and so is one whose records had no route change to stage.
        assert!(b.publish_now(ms(603), LARGE - 1, true));
        b.done(ms(604));
        assert!(b.publish_now(ms(605), 65_536, false));
        b.done(ms(606));
        // Once a burst stages, its small polls wait with the rest until it is due or ends.
        assert!(!b.publish_now(ms(607), 65_536, true));
        b.done(ms(608));
        assert!(
            !b.publish_now(ms(610), LARGE - 1, true),
            "a small poll in a staging burst"
        );
        b.done(ms(611));
        assert!(!b.publish_now(ms(630), 1, true));
        b.done(ms(631));
        assert!(b.publish_now(ms(907), 1, true), "due after PUBLISH_EVERY");
        b.done(ms(908));
        assert!(
            b.publish_now(ms(909), 1, true),
            "nothing staged: published at once"
        );
    }
}
