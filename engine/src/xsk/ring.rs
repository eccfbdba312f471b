//! The four AF_XDP rings (fill, completion, RX, TX) share one layout and one protocol: a
//! power-of-two array of descriptors plus a `producer`, a `consumer` and a `flags` word, all in
//! memory mapped from the socket. One side only ever writes `producer`, the other only
//! `consumer`; both are free-running `u32` counters (wrapping), and an entry's slot is
//! `index & (size - 1)`.
//!
//! The index arithmetic lives in [`ProdCursor`] and [`ConsCursor`], apart from the memory, so
//! that it is unit-tested (including wrap-around at `u32::MAX`); [`ProducerRing`] and
//! [`ConsumerRing`] add the mapping, the atomics and the descriptor slots. Both keep cached
//! copies of the other side's index and re-read the shared word only when the cache says the
//! batch cannot be served (libxdp does the same): every re-read pulls a cache line the kernel is
//! writing, which is what costs throughput when a ring is polled too eagerly.
//!
//! Memory ordering, the kernel's side being `net/xdp/xsk_queue.h`:
//! - producer: write descriptors, then store `producer` with `Release`, so the kernel, which
//!   reads `producer` and then issues a read barrier, never sees an index ahead of the slots;
//!   the `consumer` index is loaded with `Acquire`, so our writes into slots the kernel has just
//!   released cannot be reordered before the load (the kernel has finished reading them).
//! - consumer: load `producer` with `Acquire` before reading the slots it covers; store
//!   `consumer` with `Release` after reading them, so the kernel cannot overwrite a slot we are
//!   still reading.
//! - `flags` (`XDP_RING_NEED_WAKEUP`) is advisory and read `Relaxed`, as libxdp does: a flag
//!   seen late only delays a wakeup to the next batch, and the worker checks it every batch.

use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use memmap2::{MmapOptions, MmapRaw};

use super::XskError;

/// Producer-side index arithmetic. `cached_cons` is the consumer index plus the ring size, so
/// that `cached_cons - cached_prod` is the number of free slots (libxdp's trick).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProdCursor {
    size: u32,
    /// Reserved up to here (the next slot to hand out).
    cached_prod: u32,
    /// Last consumer index seen, plus `size`.
    cached_cons: u32,
    /// Published (stored to the shared `producer`) up to here.
    published: u32,
}

impl ProdCursor {
    /// A cursor for a ring whose shared indices currently read `producer` and `consumer`.
    pub(crate) fn new(size: u32, producer: u32, consumer: u32) -> Self {
        Self {
            size,
            cached_prod: producer,
            cached_cons: consumer.wrapping_add(size),
            published: producer,
        }
    }

    /// Free slots as far as the cache knows, refreshed through `load_consumer` only when fewer
    /// than `want` are known to be free.
    pub(crate) fn free(&mut self, want: u32, load_consumer: impl FnOnce() -> u32) -> u32 {
        let free = self.cached_cons.wrapping_sub(self.cached_prod);
        if free >= want {
            return free;
        }
        self.cached_cons = load_consumer().wrapping_add(self.size);
        self.cached_cons.wrapping_sub(self.cached_prod)
    }

    /// Reserves up to `want` slots: returns the first index and how many (possibly 0).
    pub(crate) fn reserve(&mut self, want: u32, load_consumer: impl FnOnce() -> u32) -> (u32, u32) {
        let n = self.free(want, load_consumer).min(want);
        let start = self.cached_prod;
        self.cached_prod = start.wrapping_add(n);
        (start, n)
    }

    /// Gives back the last `n` reserved, unsubmitted slots (at most what is reserved).
    pub(crate) fn cancel(&mut self, n: u32) {
        let n = n.min(self.reserved());
        self.cached_prod = self.cached_prod.wrapping_sub(n);
    }

    /// Reserved and not yet submitted.
    pub(crate) fn reserved(&self) -> u32 {
        self.cached_prod.wrapping_sub(self.published)
    }

    /// Marks `n` reserved slots (at most what is reserved) as submitted; returns the new
    /// producer index to publish.
    pub(crate) fn submit(&mut self, n: u32) -> u32 {
        let n = n.min(self.reserved());
        self.published = self.published.wrapping_add(n);
        self.published
    }
}

/// Consumer-side index arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConsCursor {
    /// Last producer index seen.
    cached_prod: u32,
    /// Peeked up to here (the next entry to hand out).
    cached_cons: u32,
    /// Released (stored to the shared `consumer`) up to here.
    released: u32,
}

impl ConsCursor {
    pub(crate) fn new(producer: u32, consumer: u32) -> Self {
        Self {
            cached_prod: producer,
            cached_cons: consumer,
            released: consumer,
        }
    }

    /// Entries ready as far as the cache knows, refreshed through `load_producer` only when
    /// the cache holds none.
    pub(crate) fn available(&mut self, load_producer: impl FnOnce() -> u32) -> u32 {
        let ready = self.cached_prod.wrapping_sub(self.cached_cons);
        if ready > 0 {
            return ready;
        }
        self.cached_prod = load_producer();
        self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// Takes up to `want` ready entries: returns the first index and how many (possibly 0).
    pub(crate) fn peek(&mut self, want: u32, load_producer: impl FnOnce() -> u32) -> (u32, u32) {
        let n = self.available(load_producer).min(want);
        let start = self.cached_cons;
        self.cached_cons = start.wrapping_add(n);
        (start, n)
    }

    /// Peeked and not yet released.
    pub(crate) fn peeked(&self) -> u32 {
        self.cached_cons.wrapping_sub(self.released)
    }

    /// Releases `n` peeked entries (at most what is peeked); returns the new consumer index to
    /// publish.
    pub(crate) fn release(&mut self, n: u32) -> u32 {
        let n = n.min(self.peeked());
        self.released = self.released.wrapping_add(n);
        self.released
    }
}

/// One mapped ring: the words and the descriptor array inside a mapping of the socket.
#[derive(Debug)]
pub(crate) struct RingMem<T> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    descs: NonNull<T>,
    mask: u32,
    /// Owns the mapping (held only for its drop, which unmaps it; the pointers above die with
    /// it).
    _map: MmapRaw,
    _desc: PhantomData<T>,
}

// SAFETY: the pointers point into `map`, which this value owns; userspace touches the ring only
// through `&mut self` (indices are atomics shared with the kernel, not with other threads), so
// moving the value to another thread (the worker that owns the queue) is sound.
unsafe impl<T: Send> Send for RingMem<T> {}

impl<T: Copy> RingMem<T> {
    /// Maps a ring of `size` entries at page offset `pgoff` of `fd`, with the layout the kernel
    /// reported in `off` (`getsockopt(XDP_MMAP_OFFSETS)`).
    pub(crate) fn map(
        fd: &OwnedFd,
        pgoff: u64,
        size: u32,
        off: &libc::xdp_ring_offset,
        what: &'static str,
    ) -> Result<Self, XskError> {
        let bad = |why: &str| XskError::Config(format!("{what} ring: {why}"));
        if !size.is_power_of_two() {
            return Err(bad("size must be a power of two"));
        }
        let desc_off = usize::try_from(off.desc).map_err(|_| bad("descriptor offset"))?;
        let len = (size as usize)
            .checked_mul(size_of::<T>())
            .and_then(|b| b.checked_add(desc_off))
            .ok_or_else(|| bad("too large"))?;
        let word = |o: u64| -> Result<usize, XskError> {
            let o = usize::try_from(o).map_err(|_| bad("offset"))?;
            if o % align_of::<AtomicU32>() != 0 || o + size_of::<u32>() > len {
                return Err(bad("kernel reported a misaligned or out-of-range index offset"));
            }
            Ok(o)
        };
        let (p, c, f) = (word(off.producer)?, word(off.consumer)?, word(off.flags)?);
        if desc_off % align_of::<T>() != 0 {
            return Err(bad("kernel reported a misaligned descriptor offset"));
        }
        let map = MmapOptions::new()
            .offset(pgoff)
            .len(len)
            .populate()
            .map_raw(fd.as_raw_fd())
            .map_err(|source| XskError::Sys {
                op: "mmap of an AF_XDP ring",
                source,
            })?;
        let base = map.as_mut_ptr();
        let at = |o: usize| {
            // SAFETY: `o < len` was checked above and `base` is the start of a `len`-byte
            // mapping, so the result stays inside it (and is non-null).
            let p = unsafe { base.add(o) };
            NonNull::new(p).ok_or_else(|| bad("null mapping"))
        };
        Ok(Self {
            producer: at(p)?.cast(),
            consumer: at(c)?.cast(),
            flags: at(f)?.cast(),
            descs: at(desc_off)?.cast(),
            mask: size - 1,
            _map: map,
            _desc: PhantomData,
        })
    }

    fn word(&self, w: NonNull<AtomicU32>) -> &AtomicU32 {
        // SAFETY: `w` is one of the three index words, 4-byte aligned and inside the mapping
        // (checked in `map`), which lives as long as `self`. The kernel accesses the same word
        // atomically (READ_ONCE/WRITE_ONCE, smp_load_acquire/smp_store_release), so viewing it
        // as an `AtomicU32` is the right model of that shared memory.
        unsafe { w.as_ref() }
    }

    fn load_producer(&self) -> u32 {
        self.word(self.producer).load(Ordering::Acquire)
    }

    fn load_consumer(&self) -> u32 {
        self.word(self.consumer).load(Ordering::Acquire)
    }

    fn needs_wakeup(&self) -> bool {
        self.word(self.flags).load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    fn slot(&self, index: u32) -> *mut T {
        // SAFETY: `index & mask < size`, and the mapping holds `size` descriptors from
        // `descs` (its length was computed that way in `map`).
        unsafe { self.descs.as_ptr().add((index & self.mask) as usize) }
    }
}

/// A ring userspace produces into (fill, TX).
#[derive(Debug)]
pub(crate) struct ProducerRing<T> {
    mem: RingMem<T>,
    cur: ProdCursor,
}

impl<T: Copy> ProducerRing<T> {
    pub(crate) fn new(mem: RingMem<T>) -> Self {
        // Relaxed is enough here: the socket is not bound yet, so the kernel is not using
        // the ring.
        let p = mem.word(mem.producer).load(Ordering::Relaxed);
        let c = mem.word(mem.consumer).load(Ordering::Relaxed);
        let cur = ProdCursor::new(mem.mask + 1, p, c);
        Self { mem, cur }
    }

    /// Reserves up to `want` slots: `(first index, count)`.
    pub(crate) fn reserve(&mut self, want: u32) -> (u32, u32) {
        let mem = &self.mem;
        self.cur.reserve(want, || mem.load_consumer())
    }

    /// Writes a descriptor into a reserved slot.
    pub(crate) fn write(&mut self, index: u32, value: T) {
        debug_assert!(index.wrapping_sub(self.cur.published) < self.cur.reserved());
        // SAFETY: `slot` is inside the mapping and aligned for `T`. The slot was reserved
        // (index between the published producer and `cached_prod`), so the kernel does not
        // read it until we publish the producer index (Release, in `submit`).
        unsafe { self.mem.slot(index).write(value) }
    }

    /// Gives back the last `n` reserved, unwritten slots.
    pub(crate) fn cancel(&mut self, n: u32) {
        self.cur.cancel(n);
    }

    /// Publishes `n` written slots to the kernel.
    pub(crate) fn submit(&mut self, n: u32) {
        let p = self.cur.submit(n);
        // Release: the descriptor writes above happen before the kernel can see the index.
        self.mem.word(self.mem.producer).store(p, Ordering::Release);
    }

    /// Free slots (refreshing the consumer index if fewer than `want` are known free).
    pub(crate) fn free(&mut self, want: u32) -> u32 {
        let mem = &self.mem;
        self.cur.free(want, || mem.load_consumer())
    }

    pub(crate) fn needs_wakeup(&self) -> bool {
        self.mem.needs_wakeup()
    }

    pub(crate) fn size(&self) -> u32 {
        self.mem.mask + 1
    }
}

/// A ring userspace consumes from (completion, RX).
#[derive(Debug)]
pub(crate) struct ConsumerRing<T> {
    mem: RingMem<T>,
    cur: ConsCursor,
}

impl<T: Copy> ConsumerRing<T> {
    pub(crate) fn new(mem: RingMem<T>) -> Self {
        // Relaxed is enough: not bound yet, the kernel is not using the ring.
        let p = mem.word(mem.producer).load(Ordering::Relaxed);
        let c = mem.word(mem.consumer).load(Ordering::Relaxed);
        Self {
            cur: ConsCursor::new(p, c),
            mem,
        }
    }

    /// Takes up to `want` ready entries: `(first index, count)`.
    pub(crate) fn peek(&mut self, want: u32) -> (u32, u32) {
        let mem = &self.mem;
        self.cur.peek(want, || mem.load_producer())
    }

    /// Reads a peeked entry.
    pub(crate) fn read(&self, index: u32) -> T {
        debug_assert!(index.wrapping_sub(self.cur.released) < self.cur.peeked());
        // SAFETY: `slot` is inside the mapping and aligned for `T`. The entry was peeked:
        // the producer index covering it was loaded with Acquire (so the kernel's write of the
        // slot is visible), and the kernel does not reuse the slot until we release it.
        unsafe { self.mem.slot(index).read() }
    }

    /// Hands `n` peeked entries back to the kernel.
    pub(crate) fn release(&mut self, n: u32) {
        let c = self.cur.release(n);
        // Release: our reads of the slots happen before the kernel may overwrite them.
        self.mem.word(self.mem.consumer).store(c, Ordering::Release);
    }

    pub(crate) fn size(&self) -> u32 {
        self.mem.mask + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulated peer: the consumer index the kernel would publish.
    #[test]
    fn producer_reserve_limits_and_refresh() {
        let mut c = ProdCursor::new(8, 0, 0);
        assert_eq!(c.reserve(5, || unreachable!("cache has room")), (0, 5));
        // 3 free known, want 5: refresh; the kernel consumed nothing yet.
        assert_eq!(c.reserve(5, || 0), (5, 3));
        assert_eq!(c.reserve(1, || 0), (8, 0));
        assert_eq!(c.reserved(), 8);
        assert_eq!(c.submit(8), 8);
        // Kernel consumed 6: 6 free.
        assert_eq!(c.reserve(10, || 6), (8, 6));
        c.cancel(2);
        assert_eq!(c.reserved(), 4);
        assert_eq!(c.submit(100), 12, "submit is clamped to what was reserved");
        assert_eq!(c.reserved(), 0);
        c.cancel(5);
        assert_eq!(c.reserved(), 0, "cancel is clamped too");
    }

    #[test]
    fn producer_wraps_at_u32() {
        let start = u32::MAX - 2;
        let mut c = ProdCursor::new(4, start, start);
        let (first, n) = c.reserve(4, || unreachable!());
        assert_eq!((first, n), (start, 4));
        assert_eq!(first.wrapping_add(n), 1, "indices wrap through u32::MAX");
        assert_eq!(c.submit(4), 1);
        assert_eq!(c.reserve(1, || start), (1, 0), "full: consumer has not moved");
        assert_eq!(c.reserve(3, || start.wrapping_add(3)), (1, 3));
        // Slots as the ring would compute them: wrap in the same order.
        let slots: Vec<u32> = (0..4).map(|i| start.wrapping_add(i) & 3).collect();
        assert_eq!(slots, vec![1, 2, 3, 0]);
    }

    #[test]
    fn consumer_peek_limits_and_release() {
        let mut c = ConsCursor::new(0, 0);
        assert_eq!(c.peek(4, || 0), (0, 0));
        assert_eq!(c.peek(4, || 10), (0, 4));
        // 6 still cached: no reload (the closure would panic).
        assert_eq!(c.peek(4, || unreachable!("cached entries first")), (4, 4));
        assert_eq!(c.peeked(), 8);
        assert_eq!(c.release(3), 3);
        assert_eq!(c.peek(8, || unreachable!()), (8, 2));
        assert_eq!(c.release(100), 10, "release is clamped to what was peeked");
        assert_eq!(c.peek(1, || 10), (10, 0));
    }

    #[test]
    fn consumer_wraps_at_u32() {
        let start = u32::MAX - 1;
        let mut c = ConsCursor::new(start, start);
        assert_eq!(c.peek(8, || start.wrapping_add(5)), (start, 5));
        assert_eq!(c.release(5), 3);
        assert_eq!(c.peek(8, || 3), (3, 0));
        assert_eq!(c.peek(8, || 4), (3, 1));
    }

    /// A producer and a consumer cursor over one simulated ring, many times round u32.
    #[test]
    fn producer_consumer_agree_across_wrap() {
        let size = 16u32;
        let start = u32::MAX - 100;
        let mut slots = [0u64; 16];
        let (mut prod_word, mut cons_word) = (start, start);
        let mut p = ProdCursor::new(size, prod_word, cons_word);
        let mut c = ConsCursor::new(prod_word, cons_word);
        let (mut next_out, mut next_in) = (0u64, 0u64);
        for round in 0..1000u32 {
            let (first, n) = p.reserve(1 + round % 7, || cons_word);
            for i in 0..n {
                slots[(first.wrapping_add(i) & (size - 1)) as usize] = next_out;
                next_out += 1;
            }
            prod_word = p.submit(n);
            let (first, n) = c.peek(1 + round % 5, || prod_word);
            for i in 0..n {
                assert_eq!(slots[(first.wrapping_add(i) & (size - 1)) as usize], next_in);
                next_in += 1;
            }
            cons_word = c.release(n);
            assert!(prod_word.wrapping_sub(cons_word) <= size);
        }
        assert!(next_in > 1000 && next_out - next_in <= u64::from(size));
    }
}
