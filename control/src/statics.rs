//! Static routes as a protocol instance: the configuration's `[[route]]`s and `[[route-file]]`s
//! become RIB routes of `Protocol::Static`; a new configuration adds what is new and removes what
//! is gone. Routes added with `xroutectl route add` are static routes too but belong to the
//! operator, not the configuration: the route id's upper bits say which (see [`origin`]).

use crate::config::{Config, StaticTarget};
use crate::protocol::{Actions, Event, RouteChange, RoutingProtocol};
use crate::rib::{NextHopSpec, Protocol, Route, Target};
use crate::routefile;
use crate::routetext::{HopText, RouteKind, RouteText};
use anyhow::{Context, Result};
use ipnet::IpNet;
use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

/// Static route ids carry where the route came from in their upper bits (the distance is in
/// the low byte, so floating statics of one prefix coexist).
pub mod origin {
    pub const CONFIG: u32 = 0;
    pub const ROUTE_FILE: u32 = 1 << 16;
    pub const RUNTIME: u32 = 2 << 16;
    pub const MASK: u32 = 0xffff_0000;

    pub fn name(id: u32) -> &'static str {
        match id & MASK {
            CONFIG => "config",
            ROUTE_FILE => "route-file",
            _ => "runtime",
        }
    }
}

/// Shares next-hop sets between routes: a full table names a handful of them a million times.
#[derive(Debug, Default)]
pub struct TargetCache(HashMap<Vec<NextHopSpec>, Arc<[NextHopSpec]>>);

impl TargetCache {
    fn get(&mut self, hops: Vec<NextHopSpec>) -> Target {
        if let Some(t) = self.0.get(&hops) {
            return Target::NextHops(Arc::clone(t));
        }
        let shared: Arc<[NextHopSpec]> = hops.clone().into();
        self.0.insert(hops, Arc::clone(&shared));
        Target::NextHops(shared)
    }
}

/// A parsed route line as a RIB route; interface names become port numbers through `port_of`.
pub fn text_to_route(
    text: &RouteText,
    origin_bits: u32,
    default_distance: u8,
    port_of: &dyn Fn(&str) -> Result<u16>,
    cache: &mut TargetCache,
) -> Result<Route> {
    let distance = text.distance.unwrap_or(default_distance);
    let target = match &text.kind {
        RouteKind::Blackhole => Target::Blackhole,
        RouteKind::Unreachable => Target::Unreachable,
        RouteKind::NextHops(hops) => cache.get(
            hops.iter()
                .map(|h| {
                    Ok(NextHopSpec {
                        via: h.via,
                        port: h.dev.as_deref().map(port_of).transpose()?,
                        weight: h.weight,
                    })
                })
                .collect::<Result<_>>()?,
        ),
    };
    Ok(Route {
        protocol: Protocol::Static,
        id: origin_bits | u32::from(distance),
        distance,
        metric: text.metric.unwrap_or(0),
        target,
    })
}

/// Every static route of a configuration, route files streamed through `sink` line by line.
/// Pure: reads files, changes nothing.
pub fn for_each_configured_route(cfg: &Config, mut sink: impl FnMut(IpNet, Route)) -> Result<()> {
    let port_of = |name: &str| {
        cfg.interfaces
            .iter()
            .position(|i| i.name == name)
            .map(|p| p as u16)
            .with_context(|| format!("interface {name} is not configured"))
    };
    let mut cache = TargetCache::default();
    for r in &cfg.routes {
        // A configured route is the same thing as a route line with an explicit distance.
        let kind = match &r.target {
            StaticTarget::Blackhole => RouteKind::Blackhole,
            StaticTarget::Unreachable => RouteKind::Unreachable,
            StaticTarget::NextHops(hops) => RouteKind::NextHops(
                hops.iter()
                    .map(|h| HopText {
                        via: h.via,
                        dev: h.interface.clone(),
                        weight: h.weight,
                    })
                    .collect(),
            ),
        };
        let text = RouteText {
            prefix: r.prefix,
            kind,
            distance: Some(r.distance),
            metric: Some(r.metric),
        };
        sink(
            r.prefix,
            text_to_route(&text, origin::CONFIG, r.distance, &port_of, &mut cache)?,
        );
    }
    for f in &cfg.route_files {
        routefile::for_each(f, |prefix, text| {
            sink(
                prefix,
                text_to_route(&text, origin::ROUTE_FILE, f.distance, &port_of, &mut cache)?,
            );
            Ok(())
        })?;
    }
    Ok(())
}

/// Every static route of a configuration, collected.
pub fn configured_routes(cfg: &Config) -> Result<Vec<(IpNet, Route)>> {
    let mut out = Vec::new();
    for_each_configured_route(cfg, |p, r| out.push((p, r)))?;
    Ok(out)
}

/// A configuration's routes as upserts, and the (prefix, id) keys they cover.
type Computed = (Vec<RouteChange>, Vec<(IpNet, u32)>);

/// The configured static routes.
#[derive(Debug, Default)]
pub struct StaticRoutes {
    /// (prefix, route id) of every route announced to the RIB, sorted (a third of a hash set's
    /// memory for a full table, and the difference of two is one merge).
    announced: Vec<(IpNet, u32)>,
    /// Route changes computed by `check_config` (upserts, then the keys they cover), used by
    /// the `Config` event that follows.
    staged: Option<Computed>,
    /// (added, removed) by the last configuration.
    last_change: (u64, u64),
}

impl StaticRoutes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes this configuration gives.
    pub fn len(&self) -> usize {
        self.announced.len()
    }

    pub fn is_empty(&self) -> bool {
        self.announced.is_empty()
    }

    /// Whether the configuration has a route for `prefix` (with this distance, if given).
    pub fn configured(&self, prefix: IpNet, distance: Option<u8>) -> bool {
        (1..=255u8).filter(|d| distance.is_none_or(|x| x == *d)).any(|d| {
            [origin::CONFIG, origin::ROUTE_FILE]
                .iter()
                .any(|o| self.announced.binary_search(&(prefix, o | u32::from(d))).is_ok())
        })
    }

    /// (added, removed) by the last configuration.
    pub fn last_change(&self) -> (u64, u64) {
        self.last_change
    }
}

impl StaticRoutes {
    fn compute(config: &Config) -> Result<Computed, String> {
        let mut upserts = Vec::new();
        let mut keys = Vec::new();
        for_each_configured_route(config, |p, r| {
            keys.push((p, r.id));
            upserts.push(RouteChange::Upsert(p, r));
        })
        .map_err(|e| format!("{e:#}"))?;
        keys.sort_unstable();
        keys.dedup();
        Ok((upserts, keys))
    }
}

impl RoutingProtocol for StaticRoutes {
    fn protocol(&self) -> Protocol {
        Protocol::Static
    }

    fn check_config(&mut self, config: &Config) -> Result<(), String> {
        self.staged = None;
        self.staged = Some(Self::compute(config)?);
        Ok(())
    }

    fn handle(&mut self, event: &Event<'_>, out: &mut Actions) -> Result<(), String> {
        let Event::Config(config) = event else {
            return Ok(());
        };
        let (upserts, keys) = match self.staged.take() {
            Some(s) => s,
            None => Self::compute(config)?,
        };
        // Both lists are sorted: one merge finds what is new and what is gone.
        let (mut added, mut removed) = (0u64, 0u64);
        let (mut old, mut new) = (self.announced.iter().peekable(), keys.iter().peekable());
        loop {
            match (old.peek(), new.peek()) {
                (Some(o), Some(n)) if o == n => {
                    old.next();
                    new.next();
                }
                (Some(o), Some(n)) if o < n => {
                    out.routes.push(RouteChange::Remove { prefix: o.0, id: o.1 });
                    removed += 1;
                    old.next();
                }
                (Some(o), None) => {
                    out.routes.push(RouteChange::Remove { prefix: o.0, id: o.1 });
                    removed += 1;
                    old.next();
                }
                (_, Some(_)) => {
                    added += 1;
                    new.next();
                }
                (None, None) => break,
            }
        }
        if out.routes.is_empty() {
            out.routes = upserts;
        } else {
            out.routes.extend(upserts);
        }
        self.announced = keys;
        self.last_change = (added, removed);
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn cfg(routes: &str) -> Config {
        let text = format!("[[interface]]\nname = \"eth0\"\naddress = [\"192.0.2.1/24\"]\n{routes}");
        config::parse(&text, "test").unwrap()
    }

    #[test]
    fn a_new_configuration_adds_and_removes_exactly_the_difference() {
        let mut s = StaticRoutes::new();
        let a = cfg("[[route]]\nprefix = \"198.51.100.0/24\"\nvia = \"192.0.2.2\"\n\n[[route]]\nprefix = \"203.0.113.0/24\"\nblackhole = true\n");
        let mut out = Actions::default();
        s.handle(&Event::Config(&a), &mut out).unwrap();
        assert_eq!(out.routes.len(), 2);
        assert_eq!(s.last_change(), (2, 0));
        assert!(s.configured("203.0.113.0/24".parse().unwrap(), None));
        assert!(!s.configured("203.0.113.0/24".parse().unwrap(), Some(5)));

        let b = cfg("[[route]]\nprefix = \"198.51.100.0/24\"\nvia = \"192.0.2.2\"\ndistance = 5\n");
        s.check_config(&b).unwrap();
        let mut out = Actions::default();
        s.handle(&Event::Config(&b), &mut out).unwrap();
        let removes: Vec<_> = out
            .routes
            .iter()
            .filter_map(|c| match c {
                RouteChange::Remove { prefix, id } => Some((prefix.to_string(), *id)),
                _ => None,
            })
            .collect();
        let mut removes = removes;
        removes.sort();
        assert_eq!(
            removes,
            vec![
                ("198.51.100.0/24".to_string(), 1),
                ("203.0.113.0/24".to_string(), 1)
            ],
            "the distance-1 route is a different route from the distance-5 one"
        );
        assert_eq!(s.last_change(), (1, 2));
    }

    #[test]
    fn a_bad_route_file_is_refused_before_anything_changes() {
        let mut s = StaticRoutes::new();
        let bad = cfg("[[route-file]]\npath = \"/nonexistent/xroute-table.txt\"\n");
        let err = s.check_config(&bad).unwrap_err();
        assert!(err.contains("/nonexistent/xroute-table.txt"), "{err}");
        assert!(s.is_empty());
    }

    #[test]
    fn interface_names_become_ports() {
        let c = cfg("[[route]]\nprefix = \"198.51.100.0/24\"\nvia = \"192.0.2.2\"\ninterface = \"eth0\"\n");
        let routes = configured_routes(&c).unwrap();
        let Target::NextHops(h) = &routes[0].1.target else {
            panic!("not a next-hop route")
        };
        assert_eq!(h[0].port, Some(0));
        assert_eq!(routes[0].1.id, origin::CONFIG | 1);
    }
}
