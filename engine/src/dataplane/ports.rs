//! What the workers need to know about ports, as one immutable snapshot the slow path
//! republishes when something changes (the control process announcing an interface, an
//! address added). Workers check a generation counter once per loop and reload the snapshot
//! only when it moved, so the common case costs one atomic load.
//!
//! Two numberings meet here: the engine's ports are the `--port` interfaces in command-line
//! order (its sockets and XDP programs); the control process numbers ports by its
//! configuration, and those numbers are what the FIB's adjacencies and the stats segment use.
//! The two are matched by interface name.

use arc_swap::ArcSwap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use xroute_common::stats::MAX_PORTS;

/// One engine port as the workers see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortView {
    pub name: String,
    pub ifindex: u32,
    /// The control process's number for this interface, once it announced it.
    pub control: Option<u16>,
    pub mac: [u8; 6],
    /// Source of ICMP errors sent out of this port (its first address of each family).
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

/// Every engine port, and the reverse map from control port numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortTable {
    pub ports: Vec<PortView>,
    /// Indexed by control port number (below [`MAX_PORTS`]): the engine port.
    pub by_control: Vec<Option<usize>>,
    /// Fallback ICMP sources when the ingress port has no address of the family (unnumbered
    /// links): any address of the router.
    pub any_v4: Option<Ipv4Addr>,
    pub any_v6: Option<Ipv6Addr>,
}

impl PortTable {
    /// A table of `ports` with the reverse map filled from their `control` numbers.
    pub fn new(ports: Vec<PortView>, any_v4: Option<Ipv4Addr>, any_v6: Option<Ipv6Addr>) -> Self {
        let mut by_control = vec![None; MAX_PORTS];
        for (i, p) in ports.iter().enumerate() {
            if let Some(slot) = p.control.and_then(|c| by_control.get_mut(usize::from(c))) {
                *slot = Some(i);
            }
        }
        Self {
            ports,
            by_control,
            any_v4,
            any_v6,
        }
    }

    /// The engine port behind a control port number.
    #[inline]
    pub fn engine_port(&self, control: u16) -> Option<usize> {
        self.by_control.get(usize::from(control)).copied().flatten()
    }
}

/// The published snapshot.
#[derive(Debug)]
pub struct SharedPorts {
    table: ArcSwap<PortTable>,
    generation: AtomicU64,
}

impl SharedPorts {
    pub fn new(table: PortTable) -> Self {
        Self {
            table: ArcSwap::from_pointee(table),
            generation: AtomicU64::new(0),
        }
    }

    /// Replaces the snapshot (slow path only).
    pub fn publish(&self, table: PortTable) {
        self.table.store(Arc::new(table));
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub fn load(&self) -> Arc<PortTable> {
        self.table.load_full()
    }

    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_numbers_map_back_to_engine_ports() {
        let port = |name: &str, control| PortView {
            name: name.into(),
            control,
            ..PortView::default()
        };
        let t = PortTable::new(
            vec![port("a", Some(3)), port("b", None), port("c", Some(0))],
            None,
            None,
        );
        assert_eq!(t.engine_port(3), Some(0));
        assert_eq!(t.engine_port(0), Some(2));
        assert_eq!(t.engine_port(1), None);
        assert_eq!(
            t.engine_port(u16::MAX),
            None,
            "out of range is no port, not a panic"
        );
        let shared = SharedPorts::new(PortTable::default());
        let g = shared.generation();
        shared.publish(t.clone());
        assert_ne!(shared.generation(), g);
        assert_eq!(*shared.load(), t);
    }
}
