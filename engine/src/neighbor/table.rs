//! The neighbour cache: one entry per (port, IP address), its state machine (RFC 4861 section
//! 7.3.2, applied to ARP as well), the bounded hold queue of frames waiting for resolution, and
//! the timers, all driven by a caller-provided clock in milliseconds.
//!
//! # Decisions
//! - Entries are created only by [`NeighborTable::hold`] (the router needs the neighbour) and
//!   [`NeighborTable::learn`] only updates existing ones: an unsolicited ARP reply, gratuitous ARP
//!   or Neighbor Advertisement for an address the router never asked about is ignored, so a
//!   flood of forged messages cannot fill the table or poison it (RFC 4861 section 7.2.5 also
//!   discards advertisements with no entry).
//! - The entries live in a `BTreeMap`, so [`NeighborTable::poll`] visits them, and reports
//!   retransmissions and failures, in (port, address) order: deterministic in tests and across
//!   runs. It is slow-path state (only frames that missed a resolved adjacency reach it) and
//!   never holds more than [`NeighborConfig::max_entries`] entries.
//! - A full hold queue refuses the newest frame and keeps the older ones, which are released in
//!   arrival order (tail drop, like the kernel's `unres_qlen` accounting but without reordering).
//! - A reachable entry becomes stale when its reachable time runs out; a stale entry keeps its
//!   MAC (frames still go out) and is re-confirmed with unicast requests the next time it is
//!   used ([`NeighborTable::touch`] or [`NeighborTable::hold`]); failing that it fails, and the
//!   caller clears the adjacency's MAC.
//! - A failed entry stays for [`NeighborConfig::failed_ms`] so that traffic to a dead neighbour
//!   does not send a request per packet; frames meanwhile are refused as unreachable.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// Frames held per unresolved neighbour (RFC 4861 section 7.2.2 asks for at least one).
pub const HOLD_LEN: usize = 4;

/// Tunables; the defaults follow RFC 4861 section 10 where it gives one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborConfig {
    /// Most entries; further neighbours are refused (and counted).
    pub max_entries: usize,
    /// Requests sent before giving up (MAX_MULTICAST_SOLICIT / MAX_UNICAST_SOLICIT = 3).
    pub max_probes: u8,
    /// Time between requests (RETRANS_TIMER = 1 s).
    pub retrans_ms: u64,
    /// How long a confirmation keeps an entry reachable (REACHABLE_TIME = 30 s).
    pub reachable_ms: u64,
    /// A stale entry unused for this long is removed.
    pub gc_ms: u64,
    /// How long a failed entry refuses frames before resolution may start again.
    pub failed_ms: u64,
}

impl Default for NeighborConfig {
    fn default() -> Self {
        Self {
            max_entries: 4096,
            max_probes: 3,
            retrans_ms: 1_000,
            reachable_ms: 30_000,
            gc_ms: 600_000,
            failed_ms: 3_000,
        }
    }
}

/// Where an entry is in its life (RFC 4861 section 7.3.2; DELAY is folded into PROBE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeighborState {
    /// Requests sent, no answer yet; frames wait in the hold queue.
    Incomplete,
    /// MAC confirmed recently.
    Reachable,
    /// MAC still used but no longer confirmed.
    Stale,
    /// MAC still used and being re-confirmed with unicast requests.
    Probe,
    /// No answer to any request; frames are refused until the entry expires.
    Failed,
}

/// An entry as seen from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborInfo {
    pub state: NeighborState,
    pub mac: Option<[u8; 6]>,
}

/// A request (ARP request or Neighbor Solicitation) the caller must transmit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub port: u16,
    pub addr: IpAddr,
    /// Send unicast to this MAC (re-confirming a known neighbour); broadcast / solicited-node
    /// multicast when `None`.
    pub unicast: Option<[u8; 6]>,
}

/// What [`NeighborTable::hold`] did with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldOutcome<H> {
    /// Held, and this is a new resolution: transmit the request now (no retransmission is due
    /// from [`NeighborTable::poll`] before [`NeighborConfig::retrans_ms`]).
    SendRequest,
    /// Held; a request is already outstanding.
    Queued,
    /// The hold queue is full: this handle was not held (drop it, `NeighborHoldFull`).
    QueueFull(H),
    /// The table is full: this handle was not held and no entry was created.
    TableFull(H),
    /// The neighbour failed to answer recently: this handle was not held (drop it or answer
    /// ICMP host unreachable).
    Unreachable(H),
    /// The MAC is known: send the frame to `mac` now (not held). When `request` is set, the
    /// entry needs re-confirmation: also transmit this unicast request.
    Send { mac: [u8; 6], request: Option<Request> },
}

/// The link-layer information an ARP packet or Neighbor Advertisement carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Advert {
    pub mac: [u8; 6],
    /// An answer to our request (ARP reply to us, NA with the S flag).
    pub solicited: bool,
    /// May replace a different cached MAC (the NA O flag; always set for ARP, RFC 826).
    pub override_flag: bool,
}

/// What [`NeighborTable::learn`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LearnOutcome {
    /// No entry for this neighbour: ignored (no entries from unsolicited messages).
    Ignored,
    /// The entry's MAC is `mac`. When `changed` (new or different), write it to the
    /// adjacencies that use this neighbour.
    Resolved { mac: [u8; 6], changed: bool },
    /// A different MAC without the override flag: the cached one is kept, the entry is stale
    /// (RFC 4861 section 7.2.5).
    NotOverridden,
}

/// Reused output of [`NeighborTable::poll`]: cleared and refilled on every call, so the caller
/// keeps one and allocates only while its vectors grow to the working size.
#[derive(Debug)]
pub struct PollOutput<H> {
    /// Requests to transmit now, in (port, address) order.
    pub requests: Vec<Request>,
    /// Neighbours that stopped answering: clear the adjacencies' MAC.
    pub failed: Vec<(u16, IpAddr)>,
    /// Stale neighbours removed after [`NeighborConfig::gc_ms`] unused: clear the
    /// adjacencies' MAC.
    pub expired: Vec<(u16, IpAddr)>,
    /// Frames that were held for failed neighbours, oldest first: drop them.
    pub dropped: Vec<H>,
}

impl<H> Default for PollOutput<H> {
    fn default() -> Self {
        Self {
            requests: Vec::new(),
            failed: Vec::new(),
            expired: Vec::new(),
            dropped: Vec::new(),
        }
    }
}

impl<H> PollOutput<H> {
    fn clear(&mut self) {
        self.requests.clear();
        self.failed.clear();
        self.expired.clear();
        self.dropped.clear();
    }
}

/// Counters of the table's refusals and outcomes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NeighborCounters {
    /// New neighbours refused because the table was full.
    pub table_full: u64,
    /// Frames refused because a hold queue was full.
    pub hold_full: u64,
    /// Frames refused because the neighbour had failed.
    pub unreachable: u64,
    /// Frames dropped from hold queues when resolution failed.
    pub hold_dropped: u64,
    /// Resolutions that failed.
    pub failures: u64,
    /// Messages ignored because no entry existed.
    pub ignored: u64,
}

/// A fixed-capacity FIFO of frame handles.
#[derive(Clone, Copy, Debug)]
struct HoldQueue<H> {
    slots: [Option<H>; HOLD_LEN],
}

impl<H: Copy> HoldQueue<H> {
    const fn new() -> Self {
        Self {
            slots: [None; HOLD_LEN],
        }
    }

    /// Appends `h`, or gives it back when full.
    fn push(&mut self, h: H) -> Result<(), H> {
        match self.slots.iter_mut().find(|s| s.is_none()) {
            Some(slot) => {
                *slot = Some(h);
                Ok(())
            }
            None => Err(h),
        }
    }

    /// Moves every handle, oldest first, to `out`.
    fn drain_into(&mut self, out: &mut Vec<H>) -> usize {
        let mut n = 0;
        for slot in &mut self.slots {
            if let Some(h) = slot.take() {
                out.push(h);
                n += 1;
            }
        }
        n
    }
}

#[derive(Clone, Copy, Debug)]
enum State {
    Incomplete { probes: u8, next: u64 },
    Reachable { until: u64 },
    Stale,
    Probe { probes: u8, next: u64 },
    Failed { until: u64 },
}

#[derive(Clone, Copy, Debug)]
struct Entry<H> {
    state: State,
    mac: Option<[u8; 6]>,
    last_used: u64,
    held: HoldQueue<H>,
}

/// The neighbour cache of all ports, with frame handles of type `H` (for example UMEM frame
/// addresses). No I/O: the caller transmits the requests it is told to and feeds back what it
/// receives.
#[derive(Debug)]
pub struct NeighborTable<H> {
    config: NeighborConfig,
    entries: BTreeMap<(u16, IpAddr), Entry<H>>,
    counters: NeighborCounters,
}

impl<H: Copy> NeighborTable<H> {
    pub fn new(config: NeighborConfig) -> Self {
        Self {
            config,
            entries: BTreeMap::new(),
            counters: NeighborCounters::default(),
        }
    }

    pub fn config(&self) -> &NeighborConfig {
        &self.config
    }

    pub fn counters(&self) -> NeighborCounters {
        self.counters
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The state and MAC of the entry for `addr` on `port`.
    pub fn get(&self, port: u16, addr: IpAddr) -> Option<NeighborInfo> {
        self.entries.get(&(port, addr)).map(|e| NeighborInfo {
            state: match e.state {
                State::Incomplete { .. } => NeighborState::Incomplete,
                State::Reachable { .. } => NeighborState::Reachable,
                State::Stale => NeighborState::Stale,
                State::Probe { .. } => NeighborState::Probe,
                State::Failed { .. } => NeighborState::Failed,
            },
            mac: e.mac,
        })
    }

    /// Removes an entry (an interface going down, an operator command), returning its held
    /// frames to `dropped`.
    pub fn remove(&mut self, port: u16, addr: IpAddr, dropped: &mut Vec<H>) -> bool {
        match self.entries.remove(&(port, addr)) {
            Some(mut e) => {
                e.held.drain_into(dropped);
                true
            }
            None => false,
        }
    }

    /// A frame `handle` needs the MAC of `addr` on `port` (a [`Verdict::Resolve`]): hold it
    /// and start resolution when needed.
    ///
    /// [`Verdict::Resolve`]: crate::packet::Verdict::Resolve
    pub fn hold(&mut self, port: u16, addr: IpAddr, handle: H, now: u64) -> HoldOutcome<H> {
        let config = self.config;
        let Some(e) = self.entries.get_mut(&(port, addr)) else {
            if self.entries.len() >= config.max_entries {
                self.counters.table_full += 1;
                return HoldOutcome::TableFull(handle);
            }
            let mut held = HoldQueue::new();
            // A new queue has room for one handle.
            let _ = held.push(handle);
            self.entries.insert(
                (port, addr),
                Entry {
                    state: State::Incomplete {
                        probes: 1,
                        next: now.saturating_add(config.retrans_ms),
                    },
                    mac: None,
                    last_used: now,
                    held,
                },
            );
            return HoldOutcome::SendRequest;
        };
        e.last_used = now;
        match (e.state, e.mac) {
            (State::Failed { until }, _) if now < until => {
                self.counters.unreachable += 1;
                HoldOutcome::Unreachable(handle)
            }
            (State::Failed { .. }, _) => {
                restart(e, handle, now, &config);
                HoldOutcome::SendRequest
            }
            // Only an incomplete entry lacks a MAC outside FAILED.
            (State::Incomplete { .. }, _) | (_, None) => match e.held.push(handle) {
                Ok(()) => HoldOutcome::Queued,
                Err(h) => {
                    self.counters.hold_full += 1;
                    HoldOutcome::QueueFull(h)
                }
            },
            (State::Reachable { .. } | State::Probe { .. }, Some(mac)) => {
                HoldOutcome::Send { mac, request: None }
            }
            (State::Stale, Some(mac)) => HoldOutcome::Send {
                mac,
                request: Some(start_probe(e, port, addr, mac, now, &config)),
            },
        }
    }

    /// The MAC of `addr` on `port` was used to send frames (the forwarding path hit a resolved
    /// adjacency): keeps the entry from ageing out and, when it is stale, starts
    /// re-confirmation; returns the unicast request to transmit then.
    pub fn touch(&mut self, port: u16, addr: IpAddr, now: u64) -> Option<Request> {
        let config = self.config;
        let e = self.entries.get_mut(&(port, addr))?;
        e.last_used = now;
        match (e.state, e.mac) {
            (State::Stale, Some(mac)) => Some(start_probe(e, port, addr, mac, now, &config)),
            _ => None,
        }
    }

    /// An ARP packet or Neighbor Advertisement from `addr` on `port` carried `advert`.
    /// Updates only an existing entry; on resolution appends the frames that were held to
    /// `released`, oldest first (give it spare capacity of [`HOLD_LEN`] to avoid allocating).
    pub fn learn(
        &mut self,
        port: u16,
        addr: IpAddr,
        advert: Advert,
        now: u64,
        released: &mut Vec<H>,
    ) -> LearnOutcome {
        let config = self.config;
        let Some(e) = self.entries.get_mut(&(port, addr)) else {
            self.counters.ignored += 1;
            return LearnOutcome::Ignored;
        };
        let reachable = State::Reachable {
            until: now.saturating_add(config.reachable_ms),
        };
        match e.mac {
            // RFC 4861 section 7.2.5: an incomplete (or failed) entry takes any MAC; reachable
            // if solicited, stale otherwise.
            None => {
                e.mac = Some(advert.mac);
                e.state = if advert.solicited { reachable } else { State::Stale };
                e.held.drain_into(released);
                LearnOutcome::Resolved {
                    mac: advert.mac,
                    changed: true,
                }
            }
            Some(old) if old != advert.mac && !advert.override_flag => {
                if let State::Reachable { .. } = e.state {
                    e.state = State::Stale;
                }
                LearnOutcome::NotOverridden
            }
            Some(old) => {
                let changed = old != advert.mac;
                e.mac = Some(advert.mac);
                if advert.solicited {
                    e.state = reachable;
                } else if changed {
                    e.state = State::Stale;
                }
                LearnOutcome::Resolved {
                    mac: advert.mac,
                    changed,
                }
            }
        }
    }

    /// Runs the timers at `now`: retransmissions due, resolutions that failed (their held
    /// frames go to `out.dropped`), reachable entries turning stale, and removal of stale
    /// entries unused for [`NeighborConfig::gc_ms`] and of failed entries past
    /// [`NeighborConfig::failed_ms`]. Clears `out` first.
    pub fn poll(&mut self, now: u64, out: &mut PollOutput<H>) {
        out.clear();
        let config = self.config;
        let counters = &mut self.counters;
        self.entries.retain(|&(port, addr), e| match e.state {
            State::Incomplete { probes, next } | State::Probe { probes, next } if now >= next => {
                if probes < config.max_probes {
                    let next = now.saturating_add(config.retrans_ms);
                    let probes = probes.saturating_add(1);
                    e.state = match e.state {
                        State::Probe { .. } => State::Probe { probes, next },
                        _ => State::Incomplete { probes, next },
                    };
                    out.requests.push(Request {
                        port,
                        addr,
                        unicast: e.mac,
                    });
                } else {
                    e.state = State::Failed {
                        until: now.saturating_add(config.failed_ms),
                    };
                    e.mac = None;
                    let n = e.held.drain_into(&mut out.dropped);
                    counters.hold_dropped += n as u64;
                    counters.failures += 1;
                    out.failed.push((port, addr));
                }
                true
            }
            State::Reachable { until } if now >= until => {
                e.state = State::Stale;
                true
            }
            State::Stale if now.saturating_sub(e.last_used) >= config.gc_ms => {
                out.expired.push((port, addr));
                false
            }
            State::Failed { until } => now < until,
            _ => true,
        });
    }
}

/// Moves a stale entry to PROBE and returns the first unicast request.
fn start_probe<H>(
    e: &mut Entry<H>,
    port: u16,
    addr: IpAddr,
    mac: [u8; 6],
    now: u64,
    config: &NeighborConfig,
) -> Request {
    e.state = State::Probe {
        probes: 1,
        next: now.saturating_add(config.retrans_ms),
    };
    Request {
        port,
        addr,
        unicast: Some(mac),
    }
}

/// Starts a new resolution of an existing entry with `handle` as its first held frame.
fn restart<H: Copy>(e: &mut Entry<H>, handle: H, now: u64, config: &NeighborConfig) {
    e.mac = None;
    e.held = HoldQueue::new();
    let _ = e.held.push(handle);
    e.state = State::Incomplete {
        probes: 1,
        next: now.saturating_add(config.retrans_ms),
    };
}
