//! A deliberately naive longest-prefix match (one hash map per prefix length) that the trie is
//! checked against in tests and benchmarks. Obviously correct, slow.

use super::key::Key;
use std::collections::HashMap;

/// Routes of one family keyed by (network, length).
#[derive(Debug, Clone, Default)]
pub struct Reference<K: Key> {
    by_len: Vec<HashMap<K, u32>>,
}

impl<K: Key> Reference<K> {
    pub fn new() -> Self {
        Self {
            by_len: (0..=K::BITS).map(|_| HashMap::new()).collect(),
        }
    }

    /// Adds or replaces `bits/len` (host bits are cleared).
    pub fn insert(&mut self, bits: K, len: u32, value: u32) -> Option<u32> {
        self.by_len.get_mut(len as usize)?.insert(bits.masked(len), value)
    }

    pub fn remove(&mut self, bits: K, len: u32) -> Option<u32> {
        self.by_len.get_mut(len as usize)?.remove(&bits.masked(len))
    }

    /// The value of the longest prefix containing `addr`, trying every length from the longest.
    pub fn lookup(&self, addr: K) -> Option<u32> {
        (0..=K::BITS)
            .rev()
            .find_map(|l| self.by_len.get(l as usize)?.get(&addr.masked(l)).copied())
    }

    pub fn len(&self) -> usize {
        self.by_len.iter().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every route as (network, length, value).
    pub fn routes(&self) -> Vec<(K, u32, u32)> {
        let mut v: Vec<_> = self
            .by_len
            .iter()
            .enumerate()
            .flat_map(|(l, m)| m.iter().map(move |(k, v)| (*k, l as u32, *v)))
            .collect();
        v.sort_unstable();
        v
    }
}
