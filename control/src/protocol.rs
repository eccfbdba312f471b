//! How routing protocols plug into the control process.
//!
//! A protocol is a state machine with no I/O of its own: it is fed typed [`Event`]s (its
//! configuration, interface changes, its timers, packets that arrived for it) and answers with
//! [`Actions`] (route changes for the RIB, timers to set, packets to send). The [`Driver`] owns
//! the instances, applies their route changes to the RIB (each instance only ever touches routes
//! of its own protocol), keeps their timers, and hands outgoing packets back to the daemon, whose
//! socket layer for that protocol sends them. Tests drive a protocol with events and read its
//! actions, with no sockets and no clock.
//!
//! Static routes are the first instance ([`crate::statics::StaticRoutes`]); RIP, OSPF and BGP
//! plug in the same way without touching the RIB's internals.

use crate::config::Config;
use crate::rib::{Protocol, Rib, Route};
use ipnet::IpNet;
use std::any::Any;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Debug;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Something that happened, for one protocol instance.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// The configuration, at start-up and after each reload. Answering `Err` refuses it; the
    /// instance must then be exactly as before.
    Config(&'a Config),
    /// A port came up or went down (or changed).
    Interface { port: u16, name: &'a str, up: bool },
    /// A timer the instance set has expired.
    Timer(u64),
    /// A packet for this protocol arrived on `port` from `from`.
    Packet { port: u16, from: IpAddr, data: &'a [u8] },
}

/// A change to the instance's own routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteChange {
    /// Add or replace the route keyed by (prefix, protocol, `route.id`).
    Upsert(IpNet, Route),
    Remove {
        prefix: IpNet,
        id: u32,
    },
}

/// A packet the instance wants sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutPacket {
    pub port: u16,
    pub to: IpAddr,
    pub data: Vec<u8>,
}

/// What an instance wants done after an event.
#[derive(Debug, Default)]
pub struct Actions {
    pub routes: Vec<RouteChange>,
    /// (token, delay): deliver `Event::Timer(token)` after `delay`.
    pub timers: Vec<(u64, Duration)>,
    pub packets: Vec<OutPacket>,
}

/// A routing protocol instance.
pub trait RoutingProtocol: Debug + Send {
    /// The RIB source its routes carry.
    fn protocol(&self) -> Protocol;
    /// Checks a configuration before anything changes (the first phase of a reload); may keep
    /// what it computed for the `Event::Config` that follows when every instance agrees.
    fn check_config(&mut self, _config: &Config) -> Result<(), String> {
        Ok(())
    }
    /// Handles one event; on `Err` (only meaningful for `Config`), nothing may have changed.
    fn handle(&mut self, event: &Event<'_>, out: &mut Actions) -> Result<(), String>;
    /// For the daemon's read-only questions to a specific instance.
    fn as_any(&self) -> &dyn Any;
}

/// What applying an instance's actions did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub upserted: u64,
    pub removed: u64,
    /// Route changes the RIB refused (or that named another protocol), with the first reason.
    pub refused: u64,
    pub first_refusal: Option<String>,
    /// Packets for the daemon to send through the instance's socket layer.
    pub packets: Vec<(Protocol, OutPacket)>,
}

impl Applied {
    fn merge(&mut self, other: Applied) {
        self.upserted += other.upserted;
        self.removed += other.removed;
        self.refused += other.refused;
        if self.first_refusal.is_none() {
            self.first_refusal = other.first_refusal;
        }
        self.packets.extend(other.packets);
    }
}

/// Owns the protocol instances and carries out what they ask.
#[derive(Debug, Default)]
pub struct Driver {
    instances: Vec<Box<dyn RoutingProtocol>>,
    /// (due, instance, token), earliest first.
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
}

impl Driver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an instance; returns its index.
    pub fn add(&mut self, instance: Box<dyn RoutingProtocol>) -> usize {
        self.instances.push(instance);
        self.instances.len() - 1
    }

    /// The first instance of type `T`.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.instances.iter().find_map(|i| i.as_any().downcast_ref::<T>())
    }

    /// The first phase of a configuration change: every instance checks it, nothing changes.
    pub fn check_config(&mut self, config: &Config) -> Result<(), String> {
        self.instances.iter_mut().try_for_each(|i| i.check_config(config))
    }

    /// Delivers `event` to instance `index` and applies what it asks.
    pub fn dispatch(
        &mut self,
        index: usize,
        event: &Event<'_>,
        rib: &mut Rib,
        now: Instant,
    ) -> Result<Applied, String> {
        let Some(instance) = self.instances.get_mut(index) else {
            return Err(format!("no protocol instance {index}"));
        };
        let mut out = Actions::default();
        instance.handle(event, &mut out)?;
        let protocol = instance.protocol();
        for (token, delay) in out.timers.drain(..) {
            self.timers.push(Reverse((now + delay, index, token)));
        }
        Ok(apply(protocol, out, rib))
    }

    /// Delivers `event` to every instance in order. A refused configuration stops at the
    /// refusing instance and returns its reason (check configurations before, see
    /// [`crate::statics`]).
    pub fn broadcast(&mut self, event: &Event<'_>, rib: &mut Rib, now: Instant) -> Result<Applied, String> {
        let mut total = Applied::default();
        for i in 0..self.instances.len() {
            total.merge(self.dispatch(i, event, rib, now)?);
        }
        Ok(total)
    }

    /// Fires every timer due at `now`.
    pub fn fire_timers(&mut self, rib: &mut Rib, now: Instant) -> Applied {
        let mut total = Applied::default();
        while let Some(Reverse((due, index, token))) = self.timers.peek().copied() {
            if due > now {
                break;
            }
            self.timers.pop();
            match self.dispatch(index, &Event::Timer(token), rib, now) {
                Ok(a) => total.merge(a),
                Err(e) => {
                    total.refused += 1;
                    total.first_refusal.get_or_insert(e);
                }
            }
        }
        total
    }

    /// When the next timer is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((due, _, _))| *due)
    }
}

/// Applies one instance's actions: only routes of its own protocol, RIB refusals counted.
fn apply(protocol: Protocol, out: Actions, rib: &mut Rib) -> Applied {
    let mut result = Applied::default();
    let refuse = |result: &mut Applied, why: String| {
        result.refused += 1;
        result.first_refusal.get_or_insert(why);
    };
    for change in out.routes {
        match change {
            RouteChange::Upsert(prefix, route) => {
                if route.protocol != protocol {
                    refuse(
                        &mut result,
                        format!(
                            "{protocol} tried to install a {} route for {prefix}",
                            route.protocol
                        ),
                    );
                    continue;
                }
                match rib.upsert(prefix, route) {
                    Ok(()) => result.upserted += 1,
                    Err(e) => refuse(&mut result, format!("{prefix}: {e}")),
                }
            }
            RouteChange::Remove { prefix, id } => {
                if rib.remove(prefix, protocol, id) {
                    result.removed += 1;
                }
            }
        }
    }
    result.packets = out.packets.into_iter().map(|p| (protocol, p)).collect();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rib::{Interface, NextHopSpec, RouteFilter, Target};

    /// A toy protocol: on timer 1 it learns a route and asks to be woken again in 30 s; on a
    /// packet it answers with a packet; it also tries to sneak in a static route.
    #[derive(Debug, Default)]
    struct Toy {
        fired: u32,
    }

    fn via(addr: &str) -> Route {
        Route {
            protocol: Protocol::Rip,
            id: 0,
            distance: 120,
            metric: 2,
            target: Target::hops(vec![NextHopSpec {
                via: Some(addr.parse().unwrap()),
                port: None,
                weight: 1,
            }]),
        }
    }

    impl RoutingProtocol for Toy {
        fn protocol(&self) -> Protocol {
            Protocol::Rip
        }
        fn handle(&mut self, event: &Event<'_>, out: &mut Actions) -> Result<(), String> {
            match event {
                Event::Config(_) => out.timers.push((1, Duration::from_secs(5))),
                Event::Timer(1) => {
                    self.fired += 1;
                    out.routes.push(RouteChange::Upsert(
                        "198.51.100.0/24".parse().unwrap(),
                        via("192.0.2.2"),
                    ));
                    let mut sneaky = via("192.0.2.3");
                    sneaky.protocol = Protocol::Static;
                    out.routes
                        .push(RouteChange::Upsert("203.0.113.0/24".parse().unwrap(), sneaky));
                    out.timers.push((1, Duration::from_secs(30)));
                }
                Event::Packet { port, from, data } => out.packets.push(OutPacket {
                    port: *port,
                    to: *from,
                    data: data.iter().rev().copied().collect(),
                }),
                _ => {}
            }
            Ok(())
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
    }

    fn rib() -> Rib {
        let mut rib = Rib::new();
        rib.set_interface(
            0,
            Interface {
                name: "eth0".into(),
                ifindex: 2,
                up: true,
                mtu: 1500,
                mac: [2, 0, 0, 0, 0, 1],
                addresses: vec!["192.0.2.1/24".parse().unwrap()],
            },
        )
        .unwrap();
        rib
    }

    #[test]
    fn timers_fire_in_order_and_routes_reach_the_rib() {
        let mut rib = rib();
        let mut d = Driver::new();
        d.add(Box::new(Toy::default()));
        let t0 = Instant::now();
        d.broadcast(&Event::Config(&Config::default()), &mut rib, t0)
            .unwrap();
        assert_eq!(d.next_deadline(), Some(t0 + Duration::from_secs(5)));
        let early = d.fire_timers(&mut rib, t0 + Duration::from_secs(4));
        assert_eq!(early, Applied::default(), "nothing is due yet");
        let a = d.fire_timers(&mut rib, t0 + Duration::from_secs(5));
        assert_eq!(a.upserted, 1);
        assert_eq!(a.refused, 1, "a RIP instance may not install static routes");
        assert!(a.first_refusal.unwrap().contains("static"));
        assert_eq!(d.get::<Toy>().unwrap().fired, 1);
        assert_eq!(d.next_deadline(), Some(t0 + Duration::from_secs(35)));
        rib.drain(1, &mut Vec::new());
        let (p, v) = rib.lookup("198.51.100.9".parse().unwrap()).unwrap();
        assert_eq!(p.to_string(), "198.51.100.0/24");
        assert_eq!(v.protocol, Protocol::Rip);
        assert!(rib
            .routes(&RouteFilter {
                protocol: Some(Protocol::Static),
                ..RouteFilter::default()
            })
            .is_empty());
    }

    #[test]
    fn packets_come_back_tagged_with_their_protocol() {
        let mut rib = rib();
        let mut d = Driver::new();
        let i = d.add(Box::new(Toy::default()));
        let from: IpAddr = "192.0.2.9".parse().unwrap();
        let a = d
            .dispatch(
                i,
                &Event::Packet {
                    port: 0,
                    from,
                    data: &[1, 2, 3],
                },
                &mut rib,
                Instant::now(),
            )
            .unwrap();
        assert_eq!(
            a.packets,
            vec![(
                Protocol::Rip,
                OutPacket {
                    port: 0,
                    to: from,
                    data: vec![3, 2, 1]
                }
            )]
        );
        assert!(d.dispatch(7, &Event::Timer(1), &mut rib, Instant::now()).is_err());
    }
}
