//! A global allocator that counts live heap bytes, so that the benchmark can report how much
//! memory a structure really holds (including the `prefix-trie` maps, which only offer their own
//! estimate). Install it in a binary with
//! `#[global_allocator] static A: CountingAlloc = CountingAlloc;`; without that, [`live_bytes`]
//! stays 0.
//!
//! This is the only place in the workspace's benchmarks that needs `unsafe`: `GlobalAlloc` is an
//! unsafe trait. Every method forwards to the system allocator unchanged and only adjusts a
//! counter afterwards.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Heap bytes currently allocated through [`CountingAlloc`] (requested sizes, not what the
/// system allocator rounds them up to).
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// The system allocator plus a relaxed atomic counter of live bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

// SAFETY: every method calls the matching `System` method with exactly the arguments it was
// given, so each inherits `System`'s guarantees (and the caller's obligations pass through
// unchanged); the counter updates touch no memory the allocator hands out.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract (non-zero size), which is
        // `System.alloc`'s contract too.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`; forwarded so large zeroed arrays keep using calloc.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was returned by this allocator, i.e. by `System`, with this `layout`
        // (the caller's obligation), so `System.dealloc` may free it.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr`/`layout` come from this allocator (that is, from `System`) and
        // `new_size` is valid for `layout`'s alignment: the caller's obligations, forwarded.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}
