//! A value the writer replaces wholesale (a grown array set) and readers pick up at their next view.

use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The current version of `T` plus a generation counter readers compare against their cached copy,
/// so that the common case (nothing replaced) costs one load per view.
#[derive(Debug)]
pub struct Published<T> {
    current: ArcSwap<T>,
    generation: AtomicU64,
}

impl<T> Published<T> {
    pub fn new(value: T) -> Self {
        Self {
            current: ArcSwap::from_pointee(value),
            generation: AtomicU64::new(0),
        }
    }

    /// Makes `value` the version every later view uses. The previous version stays alive for as
    /// long as some reader still holds it (it is frozen: the writer no longer writes to it).
    pub fn publish(&self, value: Arc<T>) {
        self.current.store(value);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The current version.
    pub fn load(&self) -> Arc<T> {
        self.current.load_full()
    }

    /// Changes whenever [`Self::publish`] is called.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}
