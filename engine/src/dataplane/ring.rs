//! A bounded single-producer single-consumer ring of small fixed-size records, made of atomic
//! words only (no `unsafe`): the hand-off from a forwarding worker to the engine's slow path.
//!
//! The producer writes a record's words with relaxed stores, then publishes the new tail with a
//! release store; the consumer reads the tail with acquire, the words with relaxed loads, then
//! publishes the new head with release, which the producer reads with acquire before reusing
//! the slot. So a record is never read before it is complete, nor overwritten before it is read.
//! A full ring refuses the record (the caller counts it) instead of waiting.

use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Debug)]
struct Inner<const W: usize> {
    head: CachePadded<AtomicUsize>,
    tail: CachePadded<AtomicUsize>,
    slots: Box<[[AtomicU64; W]]>,
    mask: usize,
}

/// The writing end (one thread).
#[derive(Debug)]
pub struct Producer<const W: usize> {
    inner: Arc<Inner<W>>,
    /// Last head seen; the ring has at least `capacity - (tail - head_cache)` free slots.
    head_cache: usize,
    tail: usize,
}

/// The reading end (one thread).
#[derive(Debug)]
pub struct Consumer<const W: usize> {
    inner: Arc<Inner<W>>,
    head: usize,
}

/// A ring of `capacity` (rounded up to a power of two, at least 2) records of `W` words.
pub fn channel<const W: usize>(capacity: usize) -> (Producer<W>, Consumer<W>) {
    let cap = capacity.max(2).next_power_of_two();
    let inner = Arc::new(Inner {
        head: CachePadded::new(AtomicUsize::new(0)),
        tail: CachePadded::new(AtomicUsize::new(0)),
        slots: (0..cap)
            .map(|_| std::array::from_fn(|_| AtomicU64::new(0)))
            .collect(),
        mask: cap - 1,
    });
    (
        Producer {
            inner: Arc::clone(&inner),
            head_cache: 0,
            tail: 0,
        },
        Consumer { inner, head: 0 },
    )
}

impl<const W: usize> Producer<W> {
    /// Appends a record; false if the ring is full.
    pub fn push(&mut self, record: [u64; W]) -> bool {
        let cap = self.inner.mask + 1;
        if self.tail.wrapping_sub(self.head_cache) >= cap {
            self.head_cache = self.inner.head.load(Ordering::Acquire);
            if self.tail.wrapping_sub(self.head_cache) >= cap {
                return false;
            }
        }
        if let Some(slot) = self.inner.slots.get(self.tail & self.inner.mask) {
            for (w, v) in slot.iter().zip(record) {
                w.store(v, Ordering::Relaxed);
            }
        }
        self.tail = self.tail.wrapping_add(1);
        self.inner.tail.store(self.tail, Ordering::Release);
        true
    }
}

impl<const W: usize> Consumer<W> {
    /// Takes the oldest record, if any.
    pub fn pop(&mut self) -> Option<[u64; W]> {
        let tail = self.inner.tail.load(Ordering::Acquire);
        if tail == self.head {
            return None;
        }
        let slot = self.inner.slots.get(self.head & self.inner.mask)?;
        let record = std::array::from_fn(|i| slot.get(i).map_or(0, |w| w.load(Ordering::Relaxed)));
        self.head = self.head.wrapping_add(1);
        self.inner.head.store(self.head, Ordering::Release);
        Some(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_and_full() {
        let (mut p, mut c) = channel::<3>(4);
        for i in 0..4u64 {
            assert!(p.push([i, i * 10, i * 100]));
        }
        assert!(!p.push([9, 9, 9]), "a full ring refuses");
        assert_eq!(c.pop(), Some([0, 0, 0]));
        assert!(p.push([4, 40, 400]), "room again after a pop");
        for i in 1..5u64 {
            assert_eq!(c.pop(), Some([i, i * 10, i * 100]));
        }
        assert_eq!(c.pop(), None);
    }

    #[test]
    fn records_cross_threads_whole_and_in_order() {
        let (mut p, mut c) = channel::<2>(64);
        const N: u64 = 200_000;
        let t = std::thread::spawn(move || {
            let mut i = 0;
            while i < N {
                if p.push([i, !i]) {
                    i += 1;
                } else {
                    std::hint::spin_loop();
                }
            }
        });
        let mut next = 0;
        while next < N {
            if let Some([a, b]) = c.pop() {
                assert_eq!((a, b), (next, !next), "torn or reordered record");
                next += 1;
            }
        }
        t.join().unwrap();
        assert_eq!(c.pop(), None);
    }
}
