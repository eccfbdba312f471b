//! A worker's frames waiting for a next hop's MAC: one bounded FIFO of frame handles (UMEM
//! addresses in the worker) per unresolved (port, address), with the timers that ask the slow
//! path again and give up. All memory is allocated by [`HoldQueues::new`]; nothing after.
//!
//! # Decisions
//! - A full queue refuses the newest frame and keeps the older ones (tail drop), which are
//!   released oldest first, so a flow's packets leave in the order they came.
//! - A neighbour is forgotten as soon as its frames are released or expired; the next frame
//!   for it starts a new resolution (`first: true`). Failures are not remembered here: the
//!   kernel's neighbour state (FAILED, with its own hold-down) is what the slow path reports.
//! - The pending list is dense and searched linearly: it holds the few next hops being resolved
//!   at this moment, not the neighbour table.

use std::net::IpAddr;

/// How long frames wait for a MAC: the kernel's 3 probes one second apart (`mcast_solicit` and
/// `retrans_time_ms` defaults).
pub const DEFAULT_TIMEOUT_MS: u64 = 3_000;
/// How often a still unresolved neighbour is asked for again.
pub const DEFAULT_RETRY_MS: u64 = 1_000;

/// What [`HoldQueues::hold`] did with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hold<H> {
    /// Held. `first`: the neighbour was not pending, ask the slow path to resolve it now.
    Held { first: bool },
    /// The neighbour's queue is full: the frame was not held (count `NeighborHoldFull`).
    QueueFull(H),
    /// As many neighbours are pending as the queues allow: the frame was not held.
    TableFull(H),
}

/// A neighbour being resolved.
#[derive(Clone, Copy, Debug)]
struct Pending {
    port: u16,
    addr: IpAddr,
    /// When its first frame was held.
    since_ms: u64,
    /// When the slow path was last asked.
    asked_ms: u64,
    /// Handles held, at the front of its block.
    len: usize,
}

/// The hold queues of one worker. `H` is the frame handle (the worker's UMEM address).
#[derive(Debug)]
pub struct HoldQueues<H> {
    /// Dense: entry `k` owns `handles[k * per_neighbor..][..len]`.
    pending: Vec<Pending>,
    handles: Vec<Option<H>>,
    max_neighbors: usize,
    per_neighbor: usize,
    held: usize,
    timeout_ms: u64,
    retry_ms: u64,
}

impl<H: Copy> HoldQueues<H> {
    /// Room for `max_neighbors` pending neighbours with `per_neighbor` frames each (at least
    /// one); frames wait `timeout_ms` at most ([`DEFAULT_TIMEOUT_MS`]), and the slow path is
    /// asked again every `retry_ms` ([`DEFAULT_RETRY_MS`]).
    pub fn new(max_neighbors: usize, per_neighbor: usize, timeout_ms: u64, retry_ms: u64) -> Self {
        let per_neighbor = per_neighbor.max(1);
        Self {
            pending: Vec::with_capacity(max_neighbors),
            handles: vec![None; max_neighbors.saturating_mul(per_neighbor)],
            max_neighbors,
            per_neighbor,
            held: 0,
            timeout_ms,
            retry_ms,
        }
    }

    /// No frame is held.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// Frames held.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Neighbours pending.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Holds `handle` until the MAC of `addr` on `port` is known, or gives it back.
    pub fn hold(&mut self, port: u16, addr: IpAddr, handle: H, now_ms: u64) -> Hold<H> {
        let per = self.per_neighbor;
        if let Some(k) = self.pending.iter().position(|p| p.port == port && p.addr == addr) {
            let Some(p) = self.pending.get_mut(k) else {
                return Hold::QueueFull(handle);
            };
            let slot = match self.handles.get_mut(k * per + p.len) {
                Some(s) if p.len < per => s,
                _ => return Hold::QueueFull(handle),
            };
            *slot = Some(handle);
            p.len += 1;
            self.held += 1;
            return Hold::Held { first: false };
        }
        let k = self.pending.len();
        if k >= self.max_neighbors {
            return Hold::TableFull(handle);
        }
        let Some(slot) = self.handles.get_mut(k * per) else {
            return Hold::TableFull(handle);
        };
        *slot = Some(handle);
        // Within the capacity reserved by `new`: no allocation.
        self.pending.push(Pending {
            port,
            addr,
            since_ms: now_ms,
            asked_ms: now_ms,
            len: 1,
        });
        self.held += 1;
        Hold::Held { first: true }
    }

    /// Passes entry `k`'s handles, oldest first, to `f`.
    fn take_handles(&mut self, k: usize, mut f: impl FnMut(H)) {
        let per = self.per_neighbor;
        let len = self.pending.get(k).map_or(0, |p| p.len);
        for slot in self.handles.iter_mut().skip(k * per).take(len) {
            if let Some(h) = slot.take() {
                f(h);
            }
        }
        self.held -= len;
    }

    /// Drops entry `k` (its handles already taken): the last entry takes its place.
    fn forget(&mut self, k: usize) {
        let last = self.pending.len().saturating_sub(1);
        if k != last {
            let per = self.per_neighbor;
            let len = self.pending.get(last).map_or(0, |p| p.len);
            for j in 0..len {
                let h = self.handles.get_mut(last * per + j).and_then(Option::take);
                if let Some(slot) = self.handles.get_mut(k * per + j) {
                    *slot = h;
                }
            }
        }
        if k < self.pending.len() {
            self.pending.swap_remove(k);
        }
    }

    /// For every pending neighbour: if `lookup(port, addr)` gives a MAC, passes each held handle
    /// (oldest first) with it to `release` and forgets the neighbour; else, once it has waited
    /// the timeout, passes the handles to `expire` (count `NeighborFailed`; ICMP host
    /// unreachable may be answered) and forgets it; else, when the retry interval has passed
    /// since the last request, calls `retry(port, addr)` (ask the slow path again).
    pub fn poll(
        &mut self,
        now_ms: u64,
        mut lookup: impl FnMut(u16, IpAddr) -> Option<[u8; 6]>,
        mut release: impl FnMut(H, [u8; 6]),
        mut expire: impl FnMut(H),
        mut retry: impl FnMut(u16, IpAddr),
    ) {
        let mut k = 0;
        while let Some(&p) = self.pending.get(k) {
            if let Some(mac) = lookup(p.port, p.addr) {
                self.take_handles(k, |h| release(h, mac));
                self.forget(k);
                continue;
            }
            if now_ms.saturating_sub(p.since_ms) >= self.timeout_ms {
                self.take_handles(k, &mut expire);
                self.forget(k);
                continue;
            }
            if now_ms.saturating_sub(p.asked_ms) >= self.retry_ms {
                retry(p.port, p.addr);
                if let Some(p) = self.pending.get_mut(k) {
                    p.asked_ms = now_ms;
                }
            }
            k += 1;
        }
    }

    /// Gives every held handle to `f` and forgets every neighbour (shutdown: the worker frees
    /// the frames).
    pub fn drain(&mut self, mut f: impl FnMut(H)) {
        for k in 0..self.pending.len() {
            self.take_handles(k, &mut f);
        }
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];

    /// What one poll did.
    #[derive(Debug, Default, PartialEq)]
    struct Out {
        released: Vec<(u64, [u8; 6])>,
        expired: Vec<u64>,
        retried: Vec<(u16, IpAddr)>,
    }

    fn poll(q: &mut HoldQueues<u64>, now: u64, known: &[(u16, IpAddr)]) -> Out {
        let mut o = Out::default();
        q.poll(
            now,
            |p, a| known.contains(&(p, a)).then_some(MAC),
            |h, m| o.released.push((h, m)),
            |h| o.expired.push(h),
            |p, a| o.retried.push((p, a)),
        );
        o
    }

    #[test]
    fn hold_then_release_oldest_first() {
        let mut q = HoldQueues::new(4, 4, DEFAULT_TIMEOUT_MS, DEFAULT_RETRY_MS);
        assert!(q.is_empty());
        assert_eq!(q.hold(1, A, 10, 0), Hold::Held { first: true });
        assert_eq!(q.hold(1, A, 11, 1), Hold::Held { first: false });
        assert_eq!(q.hold(2, A, 20, 1), Hold::Held { first: true }, "another port");
        assert_eq!(q.hold(1, B, 30, 2), Hold::Held { first: true });
        assert_eq!(q.hold(1, A, 12, 3), Hold::Held { first: false });
        assert_eq!((q.held(), q.pending()), (5, 3));

        assert_eq!(
            poll(&mut q, 10, &[]),
            Out::default(),
            "nothing known, nothing due"
        );
        let o = poll(&mut q, 20, &[(1, A)]);
        assert_eq!(o.released, [(10, MAC), (11, MAC), (12, MAC)]);
        assert_eq!((q.held(), q.pending()), (2, 2));
        // The neighbours that moved in the dense list keep their frames.
        let o = poll(&mut q, 30, &[(2, A), (1, B)]);
        let mut r: Vec<u64> = o.released.iter().map(|x| x.0).collect();
        r.sort();
        assert_eq!(r, [20, 30]);
        assert!(q.is_empty() && q.pending() == 0);
        // Forgotten once released: the next frame starts a new resolution.
        assert_eq!(q.hold(1, A, 13, 40), Hold::Held { first: true });
    }

    #[test]
    fn a_full_queue_drops_the_newest() {
        let mut q = HoldQueues::new(4, 3, DEFAULT_TIMEOUT_MS, DEFAULT_RETRY_MS);
        for h in 0..3 {
            assert!(matches!(q.hold(0, A, h, 0), Hold::Held { .. }));
        }
        assert_eq!(q.hold(0, A, 3, 0), Hold::QueueFull(3));
        assert_eq!(q.hold(0, A, 4, 0), Hold::QueueFull(4));
        assert_eq!(
            q.hold(0, B, 5, 0),
            Hold::Held { first: true },
            "other neighbours unaffected"
        );
        let o = poll(&mut q, 1, &[(0, A)]);
        assert_eq!(o.released, [(0, MAC), (1, MAC), (2, MAC)]);
        // A zero per-neighbour size still holds one frame.
        let mut q = HoldQueues::new(1, 0, 1, 1);
        assert_eq!(q.hold(0, A, 1, 0), Hold::Held { first: true });
        assert_eq!(q.hold(0, A, 2, 0), Hold::QueueFull(2));
    }

    #[test]
    fn a_full_table_refuses_new_neighbours() {
        let mut q = HoldQueues::new(2, 2, DEFAULT_TIMEOUT_MS, DEFAULT_RETRY_MS);
        assert_eq!(q.hold(0, A, 1, 0), Hold::Held { first: true });
        assert_eq!(q.hold(1, A, 2, 0), Hold::Held { first: true });
        assert_eq!(q.hold(0, B, 3, 0), Hold::TableFull(3));
        assert_eq!(
            q.hold(0, A, 4, 0),
            Hold::Held { first: false },
            "pending ones still queue"
        );
        poll(&mut q, 1, &[(1, A)]);
        assert_eq!(q.hold(0, B, 5, 1), Hold::Held { first: true }, "room again");
        let mut q = HoldQueues::new(0, 4, 1, 1);
        assert_eq!(q.hold(0, A, 1, 0), Hold::TableFull(1));
    }

    #[test]
    fn timeout_expires_frames_and_retry_cadence() {
        let mut q = HoldQueues::new(4, 4, 3_000, 1_000);
        q.hold(0, A, 1, 100);
        q.hold(0, A, 2, 600);
        q.hold(0, B, 3, 900);
        assert_eq!(poll(&mut q, 1_099, &[]).retried, []);
        assert_eq!(poll(&mut q, 1_100, &[]).retried, [(0, A)]);
        assert_eq!(poll(&mut q, 1_500, &[]).retried, [], "just asked");
        assert_eq!(poll(&mut q, 1_900, &[]).retried, [(0, B)]);
        assert_eq!(poll(&mut q, 2_100, &[]).retried, [(0, A)]);
        // A's first frame came at 100: all of A's frames expire at 3100 (no retry for A), B is
        // asked again.
        let o = poll(&mut q, 3_100, &[]);
        assert_eq!(o.expired, [1, 2]);
        assert_eq!(o.retried, [(0, B)]);
        assert_eq!((q.held(), q.pending()), (1, 1));
        let o = poll(&mut q, 3_900, &[]);
        assert_eq!((o.expired, o.retried), (vec![3], vec![]));
        assert!(q.is_empty());
        // A MAC that arrives late still wins over the timeout.
        q.hold(0, A, 4, 10_000);
        assert_eq!(poll(&mut q, 20_000, &[(0, A)]).released, [(4, MAC)]);
        // A clock that goes backwards neither expires nor retries.
        q.hold(0, A, 5, 30_000);
        assert_eq!(poll(&mut q, 0, &[]), Out::default());
    }

    #[test]
    fn drain_gives_back_everything() {
        let mut q = HoldQueues::new(8, 4, DEFAULT_TIMEOUT_MS, DEFAULT_RETRY_MS);
        let mut want = Vec::new();
        for h in 0..20u64 {
            let addr = IpAddr::V4(Ipv4Addr::from(h as u32 % 6));
            if let Hold::Held { .. } = q.hold(0, addr, h, 0) {
                want.push(h);
            }
        }
        assert_eq!(q.held(), want.len());
        let mut got = Vec::new();
        q.drain(|h| got.push(h));
        got.sort();
        assert_eq!(got, want);
        assert!(q.is_empty() && q.pending() == 0);
        assert_eq!(poll(&mut q, 10_000, &[]), Out::default());
    }

    /// Random holds and polls: every handle comes out exactly once (held ones through release,
    /// expire or drain, refused ones at once), each neighbour's in one run, oldest first.
    #[test]
    fn every_handle_comes_out_once_in_order() {
        use rand::rngs::SmallRng;
        use rand::{Rng, SeedableRng};
        const N: u64 = 20_000;
        let mut rng = SmallRng::seed_from_u64(3);
        let mut q = HoldQueues::new(5, 3, 50, 10);
        let addr = |i: u32| IpAddr::V4(Ipv4Addr::from(i));
        let mut addr_of = Vec::new();
        let mut seen = vec![false; N as usize];
        let mut check = |batch: &[u64], addr_of: &[IpAddr]| {
            let mut runs: Vec<IpAddr> = Vec::new();
            for (k, &h) in batch.iter().enumerate() {
                assert!(!std::mem::replace(&mut seen[h as usize], true), "{h} twice");
                let a = addr_of[h as usize];
                match batch.get(k.wrapping_sub(1)) {
                    Some(&prev) if addr_of[prev as usize] == a => assert!(prev < h, "oldest first"),
                    _ => {
                        assert!(!runs.contains(&a), "one run per neighbour");
                        runs.push(a);
                    }
                }
            }
        };
        let mut now = 0;
        for h in 0..N {
            now += rng.gen_range(0..3);
            let a = addr(rng.gen_range(0..8));
            addr_of.push(a);
            match q.hold(0, a, h, now) {
                Hold::Held { .. } => {}
                Hold::QueueFull(x) | Hold::TableFull(x) => check(&[x], &addr_of),
            }
            if rng.gen_range(0..10) == 0 {
                let known: Vec<(u16, IpAddr)> = (0..8)
                    .filter(|_| rng.gen_bool(0.2))
                    .map(|i| (0, addr(i)))
                    .collect();
                let mut batch = Vec::new();
                let mut expired = Vec::new();
                q.poll(
                    now,
                    |p, a| known.contains(&(p, a)).then_some(MAC),
                    |h, _| batch.push(h),
                    |h| expired.push(h),
                    |_, _| {},
                );
                check(&batch, &addr_of);
                check(&expired, &addr_of);
            }
        }
        let mut drained = Vec::new();
        q.drain(|h| drained.push(h));
        check(&drained, &addr_of);
        assert!(seen.iter().all(|&s| s), "every handle came out");
    }
}
