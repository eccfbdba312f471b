//! The shared-memory channel file: one per router instance, in /dev/shm, mode 0600, mapped by
//! the control process (producer) and the engine (consumer).
//!
//! ```text
//! bytes 0..4096        header: 64-bit words, see `word` (layout, producer line, consumer line)
//! 4096..4096+S         stats segment (crate::stats), written by the engine
//! 4096+S..             ring: `capacity` records of 64 bytes (crate::delta)
//! ```
//!
//! The ring is single-producer/single-consumer over monotonically increasing 64-bit positions:
//! the record at position `p` lives in slot `p % capacity` and carries sequence number `p + 1`.
//! The producer writes a record's words, then publishes its position with a release store; the
//! consumer reads up to the position it loaded with acquire, processes, then publishes its own
//! position with release, which is what allows the producer to reuse those slots. A full ring
//! means the producer waits: back-pressure, never a lost delta.
//!
//! Roles are held with open-file-description locks on single bytes of the file (byte 0: the
//! control process, byte 1: the engine, byte 2: whoever initialises the file). The kernel drops
//! them when a process dies, so a peer's liveness is one `F_OFD_GETLK` away and a second
//! control process or engine for the same instance is refused.
//!
//! This is one of the few modules that talk to the kernel directly, so it may use `unsafe`:
//! mapping the file, viewing the mapping as atomic words, and `fcntl` locks.

#![allow(unsafe_code)]

use crate::delta::{Delta, RawRecord, RECORD_BYTES, RECORD_WORDS};
use crate::stats;
use memmap2::{MmapMut, MmapOptions};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// "XRTCHAN1" read as a little-endian word.
pub const MAGIC: u64 = u64::from_le_bytes(*b"XRTCHAN1");
/// Bumped whenever the header, record or stats layout changes.
pub const LAYOUT_VERSION: u64 = 3;
/// Header size in bytes (one page).
pub const HEADER_BYTES: usize = 4096;
/// Ring slots when the creator does not ask for another size: 16 MiB of records.
pub const DEFAULT_CAPACITY: usize = 1 << 18;

/// Header word indices. Producer and consumer fields sit on separate cache lines.
pub mod word {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 1;
    pub const CAPACITY: usize = 2;
    pub const RECORD_BYTES: usize = 3;
    pub const STATS_OFFSET: usize = 4;
    pub const STATS_WORDS: usize = 5;
    pub const RING_OFFSET: usize = 6;
    /// Set when the file is initialised (nanoseconds since the epoch): names this incarnation.
    pub const GENERATION: usize = 7;
    pub const MAX_CORES: usize = 8;
    pub const MAX_PORTS: usize = 9;
    pub const SLOT_WORDS: usize = 10;
    pub const FILE_BYTES: usize = 11;

    // Written by the control process.
    pub const PRODUCER_POS: usize = 16;
    pub const CONTROL_EPOCH: usize = 17;
    pub const CONTROL_PID: usize = 18;
    pub const CONTROL_HEARTBEAT_MS: usize = 19;

    // Written by the engine.
    pub const CONSUMER_POS: usize = 32;
    /// Sequence number of the last record the engine has applied.
    pub const APPLIED_SEQ: usize = 33;
    pub const ENGINE_EPOCH: usize = 34;
    pub const ENGINE_PID: usize = 35;
    pub const ENGINE_HEARTBEAT_MS: usize = 36;
    /// One of [`super::EngineState`].
    pub const ENGINE_STATE: usize = 37;
    pub const FIB_ROUTES_V4: usize = 38;
    pub const FIB_ROUTES_V6: usize = 39;
    pub const FIB_MEMORY_BYTES: usize = 40;
    /// Records the engine could not decode or apply.
    pub const REJECTED: usize = 41;
    pub const RESYNCS_DONE: usize = 42;
    /// Tag of the last completed resync.
    pub const RESYNC_TAG: usize = 43;
    /// The engine epoch that asks for a full replay (equal to ENGINE_EPOCH after a start).
    pub const RESYNC_REQUEST: usize = 44;
    /// Sequence number of the last rejected record (0: none).
    pub const LAST_REJECTED_SEQ: usize = 45;
    pub const FIB_GROUPS: usize = 46;
    pub const FIB_ADJACENCIES: usize = 47;
    /// Routes removed by the sweep at the end of the last resync.
    pub const RESYNC_SWEPT: usize = 48;
}

/// What the engine is doing with the channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineState {
    /// No engine has attached since the file was created.
    None = 0,
    /// Started with an empty FIB: discarding records until a full replay begins.
    AwaitingResync = 1,
    /// Applying deltas as they come.
    InSync = 2,
    /// Inside a full replay: marking what is still valid.
    Resyncing = 3,
}

impl EngineState {
    pub fn from_word(w: u64) -> Self {
        match w {
            1 => Self::AwaitingResync,
            2 => Self::InSync,
            3 => Self::Resyncing,
            _ => Self::None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::AwaitingResync => "awaiting-resync",
            Self::InSync => "in-sync",
            Self::Resyncing => "resyncing",
        }
    }
}

/// Which process holds which role lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Control = 0,
    Engine = 1,
    Init = 2,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Self::Control => "xroute-control",
            Self::Engine => "xroute-engine",
            Self::Init => "initialiser",
        }
    }
}

/// Why the channel could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "{path}: not an xroute channel file (magic {found:#x}); remove it once no xroute process uses it"
    )]
    Magic { path: PathBuf, found: u64 },
    #[error(
        "{path}: layout version {found}, this build speaks {expected}: stop both processes, remove the file, restart them from the same release"
    )]
    Version {
        path: PathBuf,
        found: u64,
        expected: u64,
    },
    #[error("{path}: inconsistent header ({what}); remove it once no xroute process uses it")]
    Header { path: PathBuf, what: String },
    #[error("{path}: must be owned by uid {uid} with mode 0600 (found uid {found_uid}, mode {mode:o})")]
    Permissions {
        path: PathBuf,
        uid: u32,
        found_uid: u32,
        mode: u32,
    },
    #[error("{path}: another {role} is already attached (pid {pid})")]
    Busy {
        path: PathBuf,
        role: &'static str,
        pid: u64,
    },
}

/// The mapped channel file.
#[derive(Debug)]
pub struct ChannelFile {
    path: PathBuf,
    file: File,
    map: MmapMut,
    capacity: u64,
    ring_offset: usize,
    stats_offset: usize,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Total file size for a ring of `capacity` records.
pub fn file_bytes(capacity: usize) -> usize {
    HEADER_BYTES + stats::SEGMENT_WORDS * 8 + capacity * RECORD_BYTES
}

impl ChannelFile {
    /// The channel file's path for an instance.
    pub fn path_for(shm_dir: &Path, instance: &str) -> PathBuf {
        shm_dir.join(format!("xroute-{instance}"))
    }

    /// Opens the channel file, creating and initialising it if it does not exist. `capacity`
    /// (a power of two) only matters to the creator; an existing file keeps its own.
    pub fn open(path: &Path, capacity: usize) -> Result<Self, ShmError> {
        let io_err = |source| ShmError::Io {
            path: path.to_path_buf(),
            source,
        };
        let capacity = capacity.max(64).next_power_of_two();
        let created = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        let (file, fresh) = match created {
            Ok(f) => (f, true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(path)
                    .map_err(io_err)?;
                (f, false)
            }
            Err(e) => return Err(io_err(e)),
        };
        let meta = file.metadata().map_err(io_err)?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        if meta.uid() != uid || meta.mode() & 0o077 != 0 {
            return Err(ShmError::Permissions {
                path: path.to_path_buf(),
                uid,
                found_uid: meta.uid(),
                mode: meta.mode() & 0o7777,
            });
        }
        if fresh {
            file.set_len(file_bytes(capacity) as u64).map_err(io_err)?;
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let len = file.metadata().map_err(io_err)?.len() as usize;
            if len >= HEADER_BYTES {
                break;
            }
            if Instant::now() > deadline {
                return Err(ShmError::Header {
                    path: path.to_path_buf(),
                    what: format!("file is {len} bytes"),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // SAFETY: the file is a tmpfs file we own with mode 0600; other processes that map it
        // are xroute processes that follow the protocol in this module. We never create
        // references to plain (non-atomic) data inside the mapping: every access goes through
        // `AtomicU64` views (see `words`), so concurrent writes from the peer are not UB, and
        // the file is never truncated while mapped (only the creator sets its length, before
        // publishing the magic). Populated at once: the ring's pages are otherwise faulted in,
        // in both processes, during the first large burst (a full table passes the whole
        // ring), some 8k faults taken from the load itself.
        let map = unsafe { MmapOptions::new().populate().map_mut(&file) }.map_err(io_err)?;
        if map.as_ptr() as usize % 64 != 0 {
            return Err(ShmError::Header {
                path: path.to_path_buf(),
                what: "mapping not aligned".into(),
            });
        }
        let mut me = Self {
            path: path.to_path_buf(),
            file,
            map,
            capacity: capacity as u64,
            ring_offset: 0,
            stats_offset: 0,
        };
        if fresh {
            me.try_lock(Role::Init)?;
            me.initialise(capacity);
        } else {
            me.wait_initialised()?;
        }
        me.validate()?;
        Ok(me)
    }

    fn initialise(&self, capacity: usize) {
        let w = self.header_words();
        let set = |i: usize, v: u64| w[i].store(v, Ordering::Relaxed);
        set(word::VERSION, LAYOUT_VERSION);
        set(word::CAPACITY, capacity as u64);
        set(word::RECORD_BYTES, RECORD_BYTES as u64);
        set(word::STATS_OFFSET, HEADER_BYTES as u64);
        set(word::STATS_WORDS, stats::SEGMENT_WORDS as u64);
        set(
            word::RING_OFFSET,
            (HEADER_BYTES + stats::SEGMENT_WORDS * 8) as u64,
        );
        let generation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        set(word::GENERATION, generation);
        set(word::MAX_CORES, stats::MAX_CORES as u64);
        set(word::MAX_PORTS, stats::MAX_PORTS as u64);
        set(word::SLOT_WORDS, stats::SLOT_WORDS as u64);
        set(word::FILE_BYTES, file_bytes(capacity) as u64);
        // The magic goes last: whoever sees it sees the rest.
        w[word::MAGIC].store(MAGIC, Ordering::Release);
        self.unlock(Role::Init);
    }

    /// An attacher that finds no magic waits for the creator; if the creator died half-way
    /// (nobody holds the init lock), it initialises the file itself.
    fn wait_initialised(&self) -> Result<(), ShmError> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let magic = self.header_words()[word::MAGIC].load(Ordering::Acquire);
            if magic != 0 {
                return Ok(());
            }
            if self.holder(Role::Init).is_none() && self.try_lock(Role::Init).is_ok() {
                let capacity = (self
                    .map
                    .len()
                    .saturating_sub(HEADER_BYTES + stats::SEGMENT_WORDS * 8)
                    / RECORD_BYTES)
                    .max(64);
                let capacity = if capacity.is_power_of_two() {
                    capacity
                } else {
                    capacity.next_power_of_two() / 2
                };
                self.initialise(capacity);
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ShmError::Header {
                    path: self.path.clone(),
                    what: "never initialised".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn validate(&mut self) -> Result<(), ShmError> {
        let w = self.header_words();
        let get = |i: usize| w[i].load(Ordering::Acquire);
        let header = |what: String| ShmError::Header {
            path: self.path.clone(),
            what,
        };
        let magic = get(word::MAGIC);
        if magic != MAGIC {
            return Err(ShmError::Magic {
                path: self.path.clone(),
                found: magic,
            });
        }
        let version = get(word::VERSION);
        if version != LAYOUT_VERSION {
            return Err(ShmError::Version {
                path: self.path.clone(),
                found: version,
                expected: LAYOUT_VERSION,
            });
        }
        let capacity = get(word::CAPACITY);
        if !capacity.is_power_of_two() || capacity < 64 {
            return Err(header(format!("ring capacity {capacity}")));
        }
        let expect = [
            (word::RECORD_BYTES, RECORD_BYTES as u64, "record size"),
            (word::STATS_OFFSET, HEADER_BYTES as u64, "stats offset"),
            (word::STATS_WORDS, stats::SEGMENT_WORDS as u64, "stats size"),
            (
                word::RING_OFFSET,
                (HEADER_BYTES + stats::SEGMENT_WORDS * 8) as u64,
                "ring offset",
            ),
            (word::MAX_CORES, stats::MAX_CORES as u64, "stats cores"),
            (word::MAX_PORTS, stats::MAX_PORTS as u64, "stats ports"),
            (word::SLOT_WORDS, stats::SLOT_WORDS as u64, "stats slot size"),
            (
                word::FILE_BYTES,
                file_bytes(capacity as usize) as u64,
                "file size",
            ),
        ];
        for (i, want, what) in expect {
            let found = get(i);
            if found != want {
                return Err(header(format!("{what} is {found}, expected {want}")));
            }
        }
        if self.map.len() < file_bytes(capacity as usize) {
            return Err(header(format!("file is {} bytes", self.map.len())));
        }
        let producer = get(word::PRODUCER_POS);
        let consumer = get(word::CONSUMER_POS);
        if consumer > producer || producer - consumer > capacity {
            return Err(header(format!(
                "positions producer {producer} consumer {consumer}"
            )));
        }
        self.capacity = capacity;
        self.stats_offset = HEADER_BYTES;
        self.ring_offset = HEADER_BYTES + stats::SEGMENT_WORDS * 8;
        Ok(())
    }

    /// The whole mapping as atomic words.
    fn words(&self) -> &[AtomicU64] {
        let ptr = self.map.as_ptr().cast::<AtomicU64>();
        // SAFETY: the mapping is page aligned (checked to be at least 64-byte aligned in
        // `open`), `len / 8` words lie inside it, and it lives as long as `self`. AtomicU64 has
        // the size and alignment of u64 and every bit pattern is valid. All accesses to the
        // mapping in this crate go through these atomics, and the peer process does the same,
        // so no non-atomic access ever races with an atomic one. Ordering is chosen per access
        // by the callers (see the module docs).
        unsafe { std::slice::from_raw_parts(ptr, self.map.len() / 8) }
    }

    /// The header's words.
    pub fn header_words(&self) -> &[AtomicU64] {
        self.words().get(..HEADER_BYTES / 8).unwrap_or_default()
    }

    /// Reads one header word.
    pub fn get(&self, index: usize) -> u64 {
        self.header_words()
            .get(index)
            .map_or(0, |w| w.load(Ordering::Acquire))
    }

    /// Writes one header word (for the fields a role owns).
    pub fn set(&self, index: usize, value: u64) {
        if let Some(w) = self.header_words().get(index) {
            w.store(value, Ordering::Release);
        }
    }

    /// The stats segment's words (see [`crate::stats`]).
    pub fn stats_words(&self) -> &[AtomicU64] {
        let start = self.stats_offset / 8;
        self.words()
            .get(start..start + stats::SEGMENT_WORDS)
            .unwrap_or_default()
    }

    fn ring(&self) -> &[AtomicU64] {
        let start = self.ring_offset / 8;
        self.words()
            .get(start..start + self.capacity as usize * RECORD_WORDS)
            .unwrap_or_default()
    }

    /// Records the ring holds.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock_request(role: Role, kind: libc::c_int) -> libc::flock {
        libc::flock {
            l_type: kind as libc::c_short,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: role as libc::off_t,
            l_len: 1,
            l_pid: 0,
        }
    }

    fn try_lock(&self, role: Role) -> Result<(), ShmError> {
        let req = Self::lock_request(role, libc::F_WRLCK);
        // SAFETY: F_OFD_SETLK reads a valid, initialised `flock` that outlives the call; the
        // descriptor is ours and open.
        let rc = unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_OFD_SETLK, &req) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if matches!(err.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) {
            let pid = match role {
                Role::Control => self.get(word::CONTROL_PID),
                Role::Engine => self.get(word::ENGINE_PID),
                Role::Init => 0,
            };
            return Err(ShmError::Busy {
                path: self.path.clone(),
                role: role.name(),
                pid,
            });
        }
        Err(ShmError::Io {
            path: self.path.clone(),
            source: err,
        })
    }

    fn unlock(&self, role: Role) {
        let req = Self::lock_request(role, libc::F_UNLCK);
        // SAFETY: as in `try_lock`; unlocking a lock we may not hold is harmless.
        unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_OFD_SETLK, &req) };
    }

    /// `Some(())` if another open file description holds `role`'s lock: that process is alive.
    fn holder(&self, role: Role) -> Option<()> {
        let mut req = Self::lock_request(role, libc::F_WRLCK);
        // SAFETY: F_OFD_GETLK reads and writes the `flock` we pass, which is valid and ours.
        let rc = unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_OFD_GETLK, &mut req) };
        (rc == 0 && req.l_type != libc::F_UNLCK as libc::c_short).then_some(())
    }

    /// Is a process attached in this role (other than through this handle)?
    pub fn attached(&self, role: Role) -> bool {
        self.holder(role).is_some()
    }

    /// A consistent-enough copy of the header for display.
    pub fn snapshot(&self) -> HeaderSnapshot {
        HeaderSnapshot {
            generation: self.get(word::GENERATION),
            capacity: self.capacity,
            producer_pos: self.get(word::PRODUCER_POS),
            consumer_pos: self.get(word::CONSUMER_POS),
            applied_seq: self.get(word::APPLIED_SEQ),
            control_epoch: self.get(word::CONTROL_EPOCH),
            control_pid: self.get(word::CONTROL_PID),
            engine_epoch: self.get(word::ENGINE_EPOCH),
            engine_pid: self.get(word::ENGINE_PID),
            engine_state: EngineState::from_word(self.get(word::ENGINE_STATE)),
            engine_attached: self.attached(Role::Engine),
            engine_heartbeat_age_ms: now_ms().saturating_sub(self.get(word::ENGINE_HEARTBEAT_MS)),
            fib_routes_v4: self.get(word::FIB_ROUTES_V4),
            fib_routes_v6: self.get(word::FIB_ROUTES_V6),
            fib_memory_bytes: self.get(word::FIB_MEMORY_BYTES),
            fib_groups: self.get(word::FIB_GROUPS),
            fib_adjacencies: self.get(word::FIB_ADJACENCIES),
            rejected: self.get(word::REJECTED),
            last_rejected_seq: self.get(word::LAST_REJECTED_SEQ),
            resyncs_done: self.get(word::RESYNCS_DONE),
            resync_tag: self.get(word::RESYNC_TAG),
            resync_request: self.get(word::RESYNC_REQUEST),
            resync_swept: self.get(word::RESYNC_SWEPT),
        }
    }
}

/// The header's fields, read once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderSnapshot {
    pub generation: u64,
    pub capacity: u64,
    pub producer_pos: u64,
    pub consumer_pos: u64,
    pub applied_seq: u64,
    pub control_epoch: u64,
    pub control_pid: u64,
    pub engine_epoch: u64,
    pub engine_pid: u64,
    pub engine_state: EngineState,
    pub engine_attached: bool,
    pub engine_heartbeat_age_ms: u64,
    pub fib_routes_v4: u64,
    pub fib_routes_v6: u64,
    pub fib_memory_bytes: u64,
    pub fib_groups: u64,
    pub fib_adjacencies: u64,
    pub rejected: u64,
    pub last_rejected_seq: u64,
    pub resyncs_done: u64,
    pub resync_tag: u64,
    pub resync_request: u64,
    pub resync_swept: u64,
}

/// The control process's end: writes records.
#[derive(Debug)]
pub struct Producer {
    file: ChannelFile,
    pos: u64,
    consumer_cache: u64,
    epoch: u64,
}

impl Producer {
    /// Attaches as the (only) producer: takes the control role lock, bumps the control epoch.
    pub fn attach(file: ChannelFile) -> Result<Self, ShmError> {
        file.try_lock(Role::Control)?;
        let epoch = file.get(word::CONTROL_EPOCH) + 1;
        file.set(word::CONTROL_EPOCH, epoch);
        file.set(word::CONTROL_PID, u64::from(std::process::id()));
        file.set(word::CONTROL_HEARTBEAT_MS, now_ms());
        let pos = file.get(word::PRODUCER_POS);
        Ok(Self {
            consumer_cache: file.get(word::CONSUMER_POS),
            file,
            pos,
            epoch,
        })
    }

    /// The sequence number the next pushed record gets.
    pub fn next_seq(&self) -> u64 {
        self.pos + 1
    }

    /// This control process's epoch (1 for the first ever attached to the file).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Free slots right now.
    pub fn free(&mut self) -> u64 {
        self.consumer_cache = self.file.get(word::CONSUMER_POS);
        self.file.capacity - (self.pos - self.consumer_cache)
    }

    /// Writes as many of `deltas` as fit and publishes them; returns how many. Zero means the
    /// ring is full: wait for the engine (back-pressure) and push the rest later.
    pub fn push(&mut self, deltas: &[Delta]) -> usize {
        let mut free = self.file.capacity - (self.pos - self.consumer_cache);
        if free < deltas.len() as u64 {
            free = self.free();
        }
        let n = deltas.len().min(free as usize);
        let ring = self.file.ring();
        let mask = self.file.capacity - 1;
        for d in deltas.iter().take(n) {
            let slot = ((self.pos & mask) as usize) * RECORD_WORDS;
            let record = d.encode(self.pos + 1);
            if let Some(words) = ring.get(slot..slot + RECORD_WORDS) {
                for (w, v) in words.iter().zip(record) {
                    w.store(v, Ordering::Relaxed);
                }
            }
            self.pos += 1;
        }
        if n > 0 {
            // Release: the consumer that acquires this position sees the words written above.
            self.file.header_words()[word::PRODUCER_POS].store(self.pos, Ordering::Release);
        }
        n
    }

    /// Records written but not yet consumed.
    pub fn in_flight(&mut self) -> u64 {
        self.pos - self.file.get(word::CONSUMER_POS)
    }

    /// Says "still alive" to anyone reading the header.
    pub fn heartbeat(&self) {
        self.file.set(word::CONTROL_HEARTBEAT_MS, now_ms());
    }

    pub fn file(&self) -> &ChannelFile {
        &self.file
    }
}

/// The engine's end: reads records and reports progress.
#[derive(Debug)]
pub struct Consumer {
    file: std::sync::Arc<ChannelFile>,
    pos: u64,
    epoch: u64,
}

impl Consumer {
    /// Attaches as the (only) consumer: takes the engine role lock, bumps the engine epoch,
    /// and asks for a full replay (the FIB of a starting engine is empty).
    pub fn attach(file: ChannelFile) -> Result<Self, ShmError> {
        file.try_lock(Role::Engine)?;
        let epoch = file.get(word::ENGINE_EPOCH) + 1;
        file.set(word::ENGINE_PID, u64::from(std::process::id()));
        file.set(word::ENGINE_HEARTBEAT_MS, now_ms());
        file.set(word::ENGINE_STATE, EngineState::AwaitingResync as u64);
        for w in [
            word::FIB_ROUTES_V4,
            word::FIB_ROUTES_V6,
            word::FIB_MEMORY_BYTES,
            word::FIB_GROUPS,
            word::FIB_ADJACENCIES,
        ] {
            file.set(w, 0);
        }
        file.set(word::ENGINE_EPOCH, epoch);
        file.set(word::RESYNC_REQUEST, epoch);
        let pos = file.get(word::CONSUMER_POS);
        Ok(Self {
            file: std::sync::Arc::new(file),
            pos,
            epoch,
        })
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Copies up to `max` published records into `out` (appending); returns how many. They
    /// count as consumed only after [`Consumer::commit`].
    pub fn poll(&mut self, out: &mut Vec<RawRecord>, max: usize) -> usize {
        let published = self.file.get(word::PRODUCER_POS);
        let n = published.saturating_sub(self.pos).min(max as u64);
        let ring = self.file.ring();
        let mask = self.file.capacity - 1;
        for p in self.pos..self.pos + n {
            let slot = ((p & mask) as usize) * RECORD_WORDS;
            let mut record = [0u64; RECORD_WORDS];
            if let Some(words) = ring.get(slot..slot + RECORD_WORDS) {
                for (r, w) in record.iter_mut().zip(words) {
                    *r = w.load(Ordering::Relaxed);
                }
            }
            out.push(record);
        }
        self.pos += n;
        n as usize
    }

    /// Hands the slots of every polled record back to the producer and publishes the
    /// sequence number applied.
    pub fn commit(&mut self, applied_seq: u64) {
        self.file.set(word::APPLIED_SEQ, applied_seq);
        self.release();
    }

    /// Hands the slots of every polled record back to the producer, without publishing an
    /// applied sequence number (the records are copied out but not applied yet).
    pub fn release(&mut self) {
        // Release: our reads of the slots happen before the producer overwrites them.
        self.file.header_words()[word::CONSUMER_POS].store(self.pos, Ordering::Release);
    }

    /// The position of the next record to poll (its sequence number minus one).
    pub fn position(&self) -> u64 {
        self.pos
    }

    pub fn heartbeat(&self) {
        self.file.set(word::ENGINE_HEARTBEAT_MS, now_ms());
    }

    pub fn set_state(&self, state: EngineState) {
        self.file.set(word::ENGINE_STATE, state as u64);
    }

    pub fn file(&self) -> &ChannelFile {
        &self.file
    }

    /// The mapping, shared (the forwarding workers write their counters into its stats
    /// segment).
    pub fn shared_file(&self) -> std::sync::Arc<ChannelFile> {
        std::sync::Arc::clone(&self.file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::Delta;

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xroute-shm-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        dir
    }

    fn route(i: u32) -> Delta {
        Delta::RouteSet {
            prefix: ipnet::IpNet::V4(ipnet::Ipv4Net::new(std::net::Ipv4Addr::from(i << 8), 24).unwrap()),
            group: 1,
        }
    }

    #[test]
    fn records_flow_in_order_with_back_pressure() {
        let path = temp_path("flow");
        let mut p = Producer::attach(ChannelFile::open(&path, 64).unwrap()).unwrap();
        let mut c = Consumer::attach(ChannelFile::open(&path, 1 << 20).unwrap()).unwrap();
        assert_eq!(c.file().capacity(), 64, "the creator's size wins");
        let deltas: Vec<Delta> = (0..100).map(route).collect();
        assert_eq!(p.push(&deltas), 64, "a full ring takes no more");
        assert_eq!(p.push(&deltas[64..]), 0);
        let mut out = Vec::new();
        assert_eq!(c.poll(&mut out, 10), 10);
        assert_eq!(p.push(&deltas[64..]), 0, "slots come back only on commit");
        c.commit(10);
        assert_eq!(p.push(&deltas[64..]), 10);
        let mut sent = 74;
        while out.len() < deltas.len() {
            c.poll(&mut out, 16);
            c.commit(out.len() as u64);
            sent += p.push(&deltas[sent..]);
        }
        assert_eq!(c.file().snapshot().applied_seq, 100);
        let got: Vec<(u64, Delta)> = out.iter().map(|r| Delta::decode(r).unwrap()).collect();
        assert_eq!(got.len(), 100);
        for (i, (seq, d)) in got.iter().enumerate() {
            assert_eq!(*seq, i as u64 + 1);
            assert_eq!(*d, deltas[i]);
        }
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn producer_and_consumer_threads_agree_on_every_record() {
        let path = temp_path("threads");
        let mut p = Producer::attach(ChannelFile::open(&path, 256).unwrap()).unwrap();
        let mut c = Consumer::attach(ChannelFile::open(&path, 256).unwrap()).unwrap();
        const N: u32 = 200_000;
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            let mut next = 0u32;
            while next < N {
                out.clear();
                c.poll(&mut out, 100);
                for r in &out {
                    let (seq, d) = Delta::decode(r).unwrap();
                    assert_eq!(seq, u64::from(next) + 1);
                    assert_eq!(d, route(next));
                    next += 1;
                }
                c.commit(u64::from(next));
                if out.is_empty() {
                    std::thread::yield_now();
                }
            }
        });
        let batch: Vec<Delta> = (0..N).map(route).collect();
        let mut sent = 0;
        while sent < batch.len() {
            let n = p.push(&batch[sent..(sent + 37).min(batch.len())]);
            if n == 0 {
                std::thread::yield_now();
            }
            sent += n;
        }
        reader.join().unwrap();
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn roles_are_exclusive_and_liveness_is_visible() {
        let path = temp_path("roles");
        let p = Producer::attach(ChannelFile::open(&path, 64).unwrap()).unwrap();
        let again = Producer::attach(ChannelFile::open(&path, 64).unwrap());
        assert!(matches!(again, Err(ShmError::Busy { .. })), "{again:?}");
        let watcher = ChannelFile::open(&path, 64).unwrap();
        assert!(watcher.attached(Role::Control));
        assert!(!watcher.attached(Role::Engine));
        let c = Consumer::attach(ChannelFile::open(&path, 64).unwrap()).unwrap();
        assert!(watcher.attached(Role::Engine));
        assert_eq!(watcher.snapshot().engine_state, EngineState::AwaitingResync);
        assert_eq!(watcher.snapshot().resync_request, c.epoch());
        drop(c);
        assert!(
            !watcher.attached(Role::Engine),
            "the lock goes with the process (or handle)"
        );
        let c2 = Consumer::attach(ChannelFile::open(&path, 64).unwrap()).unwrap();
        assert_eq!(c2.epoch(), 2, "a restarted engine gets a new epoch");
        drop(p);
        let p2 = Producer::attach(ChannelFile::open(&path, 64).unwrap()).unwrap();
        assert_eq!(p2.epoch(), 2);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn sequence_numbers_survive_a_producer_restart() {
        let path = temp_path("restart");
        let mut p = Producer::attach(ChannelFile::open(&path, 64).unwrap()).unwrap();
        assert_eq!(p.push(&[route(1), route(2)]), 2);
        drop(p);
        let p = Producer::attach(ChannelFile::open(&path, 64).unwrap()).unwrap();
        assert_eq!(p.next_seq(), 3);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn foreign_or_stale_files_are_refused_clearly() {
        let path = temp_path("magic");
        std::fs::write(&path, vec![7u8; 8192]).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let err = ChannelFile::open(&path, 64).unwrap_err();
        assert!(matches!(err, ShmError::Magic { .. }), "{err}");
        let _ = std::fs::remove_file(&path);

        let f = ChannelFile::open(&path, 64).unwrap();
        f.set(word::VERSION, LAYOUT_VERSION + 1);
        drop(f);
        let err = ChannelFile::open(&path, 64).unwrap_err();
        assert!(matches!(err, ShmError::Version { .. }), "{err}");
        assert!(
            err.to_string()
                .contains(&format!("layout version {}", LAYOUT_VERSION + 1)),
            "{err}"
        );
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        let err = ChannelFile::open(&path, 64).unwrap_err();
        assert!(matches!(err, ShmError::Permissions { .. }), "{err}");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_new_file_is_private() {
        let path = temp_path("mode");
        let _f = ChannelFile::open(&path, 64).unwrap();
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let _ = std::fs::remove_file(&path);
    }
}
