//! Interned adjacencies and next-hop groups, with the id allocation the engine's tables impose.
//!
//! Both are keyed by content so that a million routes through the same gateways share one
//! group; both count their users and die only at the end of a drain, after the routes that
//! used them have been repointed, so the engine never sees a dangling reference.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use xroute_common::delta::{AdjacencyAction, Member};

/// Lowest-free id allocation over `[first, end)`. Freed ids are reused lowest first, so that ids
/// stay dense and a long-running router does not drift towards the limit.
#[derive(Debug)]
pub(super) struct IdAlloc {
    free: BTreeSet<u32>,
    next: u32,
    end: u32,
}

impl IdAlloc {
    pub(super) fn new(first: u32, end: u32) -> Self {
        Self {
            free: BTreeSet::new(),
            next: first,
            end,
        }
    }

    pub(super) fn alloc(&mut self) -> Option<u32> {
        if let Some(id) = self.free.pop_first() {
            return Some(id);
        }
        (self.next < self.end).then(|| {
            self.next += 1;
            self.next - 1
        })
    }

    pub(super) fn release(&mut self, id: u32) {
        self.free.insert(id);
    }
}

/// What makes two adjacencies the same: the MTU and source MAC follow from the port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct AdjKey {
    pub action: AdjacencyAction,
    pub port: u16,
    pub next_hop: Option<IpAddr>,
}

impl AdjKey {
    /// The one shared adjacency of a discarding or local action.
    pub(super) fn action(action: AdjacencyAction) -> Self {
        Self {
            action,
            port: 0,
            next_hop: None,
        }
    }
}

#[derive(Debug)]
pub(super) struct Adjacency {
    pub key: AdjKey,
    /// Groups (interned, programmed or not) that have this adjacency as a member.
    pub refs: u32,
    /// What the engine was last told, `None` while it has never been sent.
    pub emitted: Option<xroute_common::delta::AdjacencySpec>,
}

#[derive(Debug)]
pub(super) struct Adjacencies {
    pub slots: Vec<Option<Adjacency>>,
    pub map: HashMap<AdjKey, u32>,
    pub ids: IdAlloc,
    /// Adjacencies whose count fell to zero during this drain; collected at its end.
    pub dead: Vec<u32>,
}

impl Adjacencies {
    pub(super) fn new(limit: u32) -> Self {
        Self {
            slots: Vec::new(),
            map: HashMap::new(),
            ids: IdAlloc::new(0, limit),
            dead: Vec::new(),
        }
    }

    pub(super) fn get(&self, id: u32) -> Option<&Adjacency> {
        self.slots.get(id as usize).and_then(Option::as_ref)
    }

    pub(super) fn get_mut(&mut self, id: u32) -> Option<&mut Adjacency> {
        self.slots.get_mut(id as usize).and_then(Option::as_mut)
    }

    /// Takes a reference on the adjacency for `key`, creating it; `None` when ids are exhausted.
    pub(super) fn acquire(&mut self, key: AdjKey) -> Option<u32> {
        if let Some(&id) = self.map.get(&key) {
            if let Some(a) = self.get_mut(id) {
                a.refs += 1;
            }
            return Some(id);
        }
        let id = self.ids.alloc()?;
        let idx = id as usize;
        if self.slots.len() <= idx {
            self.slots.resize_with(idx + 1, || None);
        }
        self.slots[idx] = Some(Adjacency {
            key,
            refs: 1,
            emitted: None,
        });
        self.map.insert(key, id);
        Some(id)
    }

    pub(super) fn release(&mut self, id: u32) {
        if let Some(a) = self.get_mut(id) {
            a.refs = a.refs.saturating_sub(1);
            if a.refs == 0 {
                self.dead.push(id);
            }
        }
    }

    /// Removes an adjacency nothing uses any more; returns whether the engine knew it.
    pub(super) fn collect(&mut self, id: u32) -> Option<bool> {
        let idx = id as usize;
        if self.slots.get(idx)?.as_ref()?.refs != 0 {
            return None;
        }
        let a = self.slots[idx].take()?;
        self.map.remove(&a.key);
        self.ids.release(id);
        Some(a.emitted.is_some())
    }
}

/// A group's identity: its resolved members, sorted by adjacency key, duplicates merged.
pub(super) type GroupKey = Box<[(AdjKey, u32)]>;

#[derive(Debug)]
pub(super) struct Group {
    pub key: GroupKey,
    /// The members as the engine sees them, sorted by (adjacency id, weight).
    pub members: Box<[Member]>,
    /// Prefixes whose wanted state is this group.
    pub refs: u32,
    /// Whether the engine has been sent this group.
    pub programmed: bool,
}

#[derive(Debug)]
pub(super) struct Groups {
    pub slots: Vec<Option<Group>>,
    pub map: HashMap<GroupKey, u32>,
    pub ids: IdAlloc,
    /// Groups whose count fell to zero (or that were created) during this drain.
    pub dead: Vec<u32>,
}

impl Groups {
    pub(super) fn new(limit: u32) -> Self {
        Self {
            slots: Vec::new(),
            map: HashMap::new(),
            ids: IdAlloc::new(1, limit.saturating_add(1)),
            dead: Vec::new(),
        }
    }

    pub(super) fn get(&self, id: u32) -> Option<&Group> {
        self.slots.get(id as usize).and_then(Option::as_ref)
    }

    pub(super) fn get_mut(&mut self, id: u32) -> Option<&mut Group> {
        self.slots.get_mut(id as usize).and_then(Option::as_mut)
    }

    /// The group for `key` (normalized by the caller), created with no users if new; `None`
    /// when group or adjacency ids are exhausted.
    pub(super) fn intern(&mut self, key: &[(AdjKey, u32)], adjs: &mut Adjacencies) -> Option<u32> {
        if let Some(&id) = self.map.get(key) {
            return Some(id);
        }
        let id = self.ids.alloc()?;
        let mut members = Vec::with_capacity(key.len());
        for &(k, weight) in key {
            match adjs.acquire(k) {
                Some(adjacency) => members.push(Member { adjacency, weight }),
                None => {
                    members.iter().for_each(|m| adjs.release(m.adjacency));
                    self.ids.release(id);
                    return None;
                }
            }
        }
        members.sort_unstable();
        let idx = id as usize;
        if self.slots.len() <= idx {
            self.slots.resize_with(idx + 1, || None);
        }
        let key: GroupKey = key.into();
        self.map.insert(key.clone(), id);
        self.slots[idx] = Some(Group {
            key,
            members: members.into_boxed_slice(),
            refs: 0,
            programmed: false,
        });
        self.dead.push(id);
        Some(id)
    }

    /// Removes a group nothing uses any more, releasing its adjacencies; returns whether the
    /// engine knew it.
    pub(super) fn collect(&mut self, id: u32, adjs: &mut Adjacencies) -> Option<bool> {
        let idx = id as usize;
        if self.slots.get(idx)?.as_ref()?.refs != 0 {
            return None;
        }
        let g = self.slots[idx].take()?;
        self.map.remove(&g.key);
        g.members.iter().for_each(|m| adjs.release(m.adjacency));
        self.ids.release(id);
        Some(g.programmed)
    }
}

/// Sorts members by key, merges duplicates (adding weights) and keeps at most `max`, so that
/// equal member sets always produce the same key.
pub(super) fn normalize_members(mut v: Vec<(AdjKey, u32)>, max: usize) -> Vec<(AdjKey, u32)> {
    v.sort_unstable();
    let mut out: Vec<(AdjKey, u32)> = Vec::with_capacity(v.len());
    for (k, w) in v {
        match out.last_mut() {
            Some(last) if last.0 == k => last.1 = last.1.saturating_add(w),
            _ => out.push((k, w)),
        }
    }
    out.truncate(max);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_lowest_free_and_bounded() {
        let mut ids = IdAlloc::new(1, 4);
        assert_eq!(
            (ids.alloc(), ids.alloc(), ids.alloc()),
            (Some(1), Some(2), Some(3))
        );
        assert_eq!(ids.alloc(), None);
        ids.release(2);
        ids.release(1);
        assert_eq!(ids.alloc(), Some(1));
        assert_eq!(ids.alloc(), Some(2));
    }

    #[test]
    fn members_merge_and_truncate() {
        let k = |p| AdjKey {
            action: AdjacencyAction::Forward,
            port: p,
            next_hop: None,
        };
        let v = normalize_members(vec![(k(2), 1), (k(1), 1), (k(2), 3)], 64);
        assert_eq!(v, vec![(k(1), 1), (k(2), 4)]);
        assert_eq!(
            normalize_members((0..70).map(|p| (k(p), 1)).collect(), 64).len(),
            64
        );
    }
}
