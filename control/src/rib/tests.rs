use super::*;
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Instant;
use xroute_common::delta::{GroupAssembler, Member};

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn iface(name: &str, up: bool, addrs: &[&str]) -> Interface {
    Interface {
        name: name.into(),
        ifindex: 10,
        up,
        mtu: 1500,
        mac: [2, 0, 0, 0, 0, 1],
        addresses: addrs.iter().map(|a| net(a)).collect(),
    }
}

fn hop(via: Option<&str>, port: Option<u16>, weight: u32) -> NextHopSpec {
    NextHopSpec {
        via: via.map(ip),
        port,
        weight,
    }
}

fn route(protocol: Protocol, id: u32, distance: u8, metric: u32, target: Target) -> Route {
    Route {
        protocol,
        id,
        distance,
        metric,
        target,
    }
}

fn via(addr: &str) -> Target {
    Target::hops(vec![hop(Some(addr), None, 1)])
}

fn stat(id: u32, distance: u8, target: Target) -> Route {
    route(Protocol::Static, id, distance, 0, target)
}

/// A RIB with eth0 192.0.2.1/24 on port 1 and eth1 198.51.100.1/24 on port 2.
fn two_ports() -> Rib {
    let mut rib = Rib::new();
    rib.set_interface(1, iface("eth0", true, &["192.0.2.1/24", "2001:db8::1/64"]))
        .unwrap();
    rib.set_interface(2, iface("eth1", true, &["198.51.100.1/24"]))
        .unwrap();
    rib
}

fn drain(rib: &mut Rib) -> Vec<Delta> {
    let mut out = Vec::new();
    rib.drain(1, &mut out);
    out
}

fn selected(rib: &Rib, prefix: &str) -> Option<RouteView> {
    rib.routes(&RouteFilter {
        prefix: Some(net(prefix)),
        selected_only: true,
        ..RouteFilter::default()
    })
    .into_iter()
    .next()
}

fn hops(v: &RouteView) -> Vec<Hop> {
    v.resolved.iter().map(|h| (h.via, h.port, h.weight)).collect()
}

/// (next hop, port, weight) of a forwarding member.
type Hop = (Option<IpAddr>, u16, u32);

/// The engine's side, reduced to maps: refuses references to undefined objects and deletes of
/// objects in use, as the real engine must never see them.
#[derive(Default, Debug)]
struct Model {
    ports: HashMap<u32, PortSpec>,
    adjs: HashMap<u32, AdjacencySpec>,
    groups: HashMap<u32, Vec<Member>>,
    routes: HashMap<IpNet, u32>,
    asm: GroupAssembler,
    seq: u64,
}

impl Model {
    fn apply_all(&mut self, out: &[Delta]) -> Result<(), String> {
        out.iter().try_for_each(|d| self.apply(d))
    }

    fn apply(&mut self, d: &Delta) -> Result<(), String> {
        self.seq += 1;
        match *d {
            Delta::PortSet { port, spec } => {
                self.ports.insert(port, spec);
            }
            Delta::PortDelete { port } => {
                if self.ports.remove(&port).is_none() {
                    return Err(format!("delete of unknown port {port}"));
                }
                if self
                    .adjs
                    .values()
                    .any(|a| a.action == AdjacencyAction::Forward && u32::from(a.port) == port)
                {
                    return Err(format!("port {port} deleted while adjacencies use it"));
                }
            }
            Delta::AdjacencySet { id, adjacency } => {
                if id >= ADJACENCY_LIMIT {
                    return Err(format!("adjacency id {id} out of range"));
                }
                if adjacency.action == AdjacencyAction::Forward
                    && !self.ports.contains_key(&u32::from(adjacency.port))
                {
                    return Err(format!("adjacency {id} on unknown port {}", adjacency.port));
                }
                self.adjs.insert(id, adjacency);
            }
            Delta::AdjacencyDelete { id } => {
                if self.adjs.remove(&id).is_none() {
                    return Err(format!("delete of unknown adjacency {id}"));
                }
                if self.groups.values().flatten().any(|m| m.adjacency == id) {
                    return Err(format!("adjacency {id} deleted while in use"));
                }
            }
            Delta::GroupMembers {
                group,
                chunk,
                total,
                members,
                count,
            } => {
                if group == 0 || group > GROUP_LIMIT {
                    return Err(format!("group id {group} out of range"));
                }
                let done = self
                    .asm
                    .push(group, chunk, total, &members[..usize::from(count)])
                    .map_err(|e| e.to_string())?;
                if let Some(all) = done {
                    let all = all.to_vec();
                    if self.groups.contains_key(&group) {
                        return Err(format!("group {group} redefined while it exists"));
                    }
                    if all.is_empty() || all.len() > MAX_GROUP_MEMBERS {
                        return Err(format!("group {group} has {} members", all.len()));
                    }
                    for m in &all {
                        if m.weight == 0 || !self.adjs.contains_key(&m.adjacency) {
                            return Err(format!("group {group} has bad member {m:?}"));
                        }
                    }
                    self.groups.insert(group, all);
                }
            }
            Delta::GroupDelete { group } => {
                if self.groups.remove(&group).is_none() {
                    return Err(format!("delete of unknown group {group}"));
                }
                if self.routes.values().any(|&g| g == group) {
                    return Err(format!("group {group} deleted while in use"));
                }
            }
            Delta::RouteSet { prefix, group } => {
                if !self.groups.contains_key(&group) {
                    return Err(format!("route {prefix} to unknown group {group}"));
                }
                self.routes.insert(prefix, group);
            }
            Delta::RouteDelete { prefix } => {
                if self.routes.remove(&prefix).is_none() {
                    return Err(format!("delete of unknown route {prefix}"));
                }
            }
            Delta::ResyncBegin { .. } | Delta::ResyncEnd { .. } | Delta::Commit => {
                return Err("the RIB must not emit resync markers or commits".into())
            }
        }
        Ok(())
    }

    /// What the model forwards a prefix to: action and (port, next hop, weight) members.
    fn forwarding(&self, prefix: &IpNet) -> Option<(AdjacencyAction, Vec<Hop>)> {
        let g = &self.groups[self.routes.get(prefix)?];
        let action = self.adjs[&g[0].adjacency].action;
        let mut hops: Vec<_> = g
            .iter()
            .filter(|m| self.adjs[&m.adjacency].action == AdjacencyAction::Forward)
            .map(|m| {
                let a = &self.adjs[&m.adjacency];
                (a.next_hop, a.port, m.weight)
            })
            .collect();
        hops.sort();
        Some((action, hops))
    }

    fn lookup(&self, addr: IpAddr) -> Option<IpNet> {
        self.routes
            .keys()
            .filter(|p| p.contains(&addr))
            .max_by_key(|p| p.prefix_len())
            .copied()
    }
}

/// The model holds exactly the RIB's installed routes, with the same next hops.
fn assert_model_matches(rib: &Rib, model: &Model) {
    let installed: Vec<RouteView> = rib
        .routes(&RouteFilter {
            selected_only: true,
            ..RouteFilter::default()
        })
        .into_iter()
        .filter(|v| v.group.is_some())
        .collect();
    assert_eq!(
        installed.len(),
        model.routes.len(),
        "route count differs: {installed:#?} vs {model:#?}"
    );
    for v in &installed {
        let (action, mut want) = (v.action.unwrap(), hops(v));
        want.sort();
        assert_eq!(model.forwarding(&v.prefix), Some((action, want)), "{}", v.prefix);
        assert_eq!(model.routes[&v.prefix], v.group.unwrap());
        let adjs: Vec<u32> = v.resolved.iter().map(|h| h.adjacency.unwrap()).collect();
        for (a, h) in adjs.iter().zip(&v.resolved) {
            let spec = model.adjs[a];
            assert_eq!((spec.port, spec.next_hop), (h.port, h.via));
        }
    }
    let stats = rib.stats();
    assert_eq!(stats.groups, model.groups.len(), "groups in use");
    assert_eq!(stats.adjacencies, model.adjs.len(), "adjacencies in use");
}

#[test]
fn protocol_names_round_trip() {
    for p in Protocol::ALL {
        assert_eq!(p.to_string().parse::<Protocol>(), Ok(p));
    }
    assert_eq!(Protocol::Ospf.to_string(), "ospf");
    assert_eq!(Protocol::Ebgp.default_distance(), 20);
    assert_eq!(Protocol::Ibgp.default_distance(), 200);
    assert!("isis".parse::<Protocol>().is_err());
}

#[test]
fn bad_routes_are_refused() {
    let mut rib = two_ports();
    let st = |t| stat(0, 1, t);
    assert_eq!(
        rib.upsert(net("10.0.0.1/8"), st(via("192.0.2.2"))),
        Err(RibError::HostBits(net("10.0.0.1/8")))
    );
    assert_eq!(
        rib.upsert(net("10.0.0.0/8"), st(Target::hops(vec![]))),
        Err(RibError::NoNextHops)
    );
    assert_eq!(
        rib.upsert(
            net("10.0.0.0/8"),
            st(Target::hops(vec![hop(Some("192.0.2.2"), None, 0)]))
        ),
        Err(RibError::ZeroWeight)
    );
    assert_eq!(
        rib.upsert(net("10.0.0.0/8"), st(Target::hops(vec![hop(None, Some(9), 1)]))),
        Err(RibError::UnknownPort(9))
    );
    let many = (0..65).map(|i| hop(None, Some(1), i + 1)).collect();
    assert_eq!(
        rib.upsert(net("10.0.0.0/8"), st(Target::hops(many))),
        Err(RibError::TooManyNextHops(65))
    );
    assert_eq!(
        rib.upsert(
            net("10.0.0.0/8"),
            route(Protocol::Connected, 0, 0, 0, Target::Blackhole)
        ),
        Err(RibError::Derived(Protocol::Connected))
    );
    assert!(rib
        .set_interface(3, iface("a-name-longer-than-16", true, &[]))
        .is_err());
    assert_eq!(rib.stats().candidates, 6, "only the interface routes exist");
}

#[test]
fn selection_by_distance_then_metric() {
    let mut rib = two_ports();
    let p = net("10.0.0.0/8");
    rib.upsert(p, route(Protocol::Rip, 0, 120, 1, via("192.0.2.2")))
        .unwrap();
    rib.upsert(p, route(Protocol::Ospf, 0, 110, 50, via("198.51.100.2")))
        .unwrap();
    drain(&mut rib);
    assert_eq!(
        selected(&rib, "10.0.0.0/8").unwrap().protocol,
        Protocol::Ospf,
        "distance first"
    );

    rib.upsert(p, route(Protocol::Ospf, 1, 110, 20, via("192.0.2.3")))
        .unwrap();
    drain(&mut rib);
    let v = selected(&rib, "10.0.0.0/8").unwrap();
    assert_eq!((v.protocol, v.id), (Protocol::Ospf, 1), "then metric");
    assert_eq!(hops(&v), vec![(Some(ip("192.0.2.3")), 1, 1)]);

    rib.upsert(p, route(Protocol::Ospf, 2, 110, 20, via("192.0.2.4")))
        .unwrap();
    drain(&mut rib);
    assert_eq!(selected(&rib, "10.0.0.0/8").unwrap().id, 1, "then (protocol, id)");
    assert_eq!(
        rib.routes(&RouteFilter::default())
            .iter()
            .filter(|v| v.prefix == p)
            .count(),
        4
    );
}

#[test]
fn floating_static_takes_over_and_gives_back() {
    let mut rib = two_ports();
    let mut model = Model::default();
    let p = net("203.0.113.0/24");
    rib.upsert(p, stat(0, 1, via("192.0.2.2"))).unwrap();
    rib.upsert(p, stat(1, 200, via("198.51.100.2"))).unwrap();
    model.apply_all(&drain(&mut rib)).unwrap();
    assert_eq!(selected(&rib, "203.0.113.0/24").unwrap().id, 0);

    // The primary's gateway becomes unreachable: eth0 goes down.
    rib.set_interface(1, iface("eth0", false, &["192.0.2.1/24"]))
        .unwrap();
    model.apply_all(&drain(&mut rib)).unwrap();
    let v = selected(&rib, "203.0.113.0/24").unwrap();
    assert_eq!(v.id, 1, "floating static takes over");
    assert_eq!(hops(&v), vec![(Some(ip("198.51.100.2")), 2, 1)]);
    assert_model_matches(&rib, &model);

    rib.set_interface(1, iface("eth0", true, &["192.0.2.1/24"]))
        .unwrap();
    model.apply_all(&drain(&mut rib)).unwrap();
    let v = selected(&rib, "203.0.113.0/24").unwrap();
    assert_eq!(v.id, 0, "primary is back");
    assert_eq!(hops(&v), vec![(Some(ip("192.0.2.2")), 1, 1)]);
    assert_model_matches(&rib, &model);
}

#[test]
fn recursion_through_static_and_connected() {
    let mut rib = two_ports();
    // 10.9.9.9 is reached through 10.0.0.0/8, whose gateway 192.0.2.2 is connected.
    rib.upsert(net("10.0.0.0/8"), stat(0, 1, via("192.0.2.2")))
        .unwrap();
    rib.upsert(net("172.16.0.0/12"), stat(0, 1, via("10.9.9.9")))
        .unwrap();
    rib.upsert(net("100.64.0.0/10"), stat(0, 1, via("172.16.1.1")))
        .unwrap();
    drain(&mut rib);
    for p in ["172.16.0.0/12", "100.64.0.0/10"] {
        let v = selected(&rib, p).unwrap();
        assert_eq!(hops(&v), vec![(Some(ip("192.0.2.2")), 1, 1)], "{p}");
        assert_eq!(v.resolved[0].interface, "eth0");
    }
    // Moving the middle route moves the whole chain.
    rib.upsert(net("10.0.0.0/8"), stat(0, 1, via("198.51.100.7")))
        .unwrap();
    drain(&mut rib);
    let v = selected(&rib, "100.64.0.0/10").unwrap();
    assert_eq!(hops(&v), vec![(Some(ip("198.51.100.7")), 2, 1)]);
    // A gateway resolving through a discard route takes its action.
    rib.upsert(net("10.0.0.0/8"), stat(0, 1, Target::Unreachable))
        .unwrap();
    drain(&mut rib);
    let v = selected(&rib, "172.16.0.0/12").unwrap();
    assert_eq!(
        (v.action, v.resolved.len()),
        (Some(AdjacencyAction::Unreachable), 0)
    );
    // A local route resolves nothing.
    rib.upsert(net("10.0.0.0/8"), stat(0, 1, via("192.0.2.1")))
        .unwrap();
    drain(&mut rib);
    assert!(selected(&rib, "10.0.0.0/8").is_none());
    assert!(selected(&rib, "172.16.0.0/12").is_none());
    assert_eq!(rib.stats().unresolved, 3);
}

#[test]
fn gateway_inside_its_own_prefix_resolves_through_a_shorter_one() {
    let mut rib = two_ports();
    rib.upsert(net("0.0.0.0/0"), stat(0, 1, via("192.0.2.254")))
        .unwrap();
    rib.upsert(net("192.0.2.0/25"), stat(0, 1, via("192.0.2.9")))
        .unwrap();
    drain(&mut rib);
    let v = selected(&rib, "0.0.0.0/0").unwrap();
    assert_eq!(hops(&v), vec![(Some(ip("192.0.2.254")), 1, 1)]);
    let v = selected(&rib, "192.0.2.0/25").unwrap();
    assert_eq!(
        hops(&v),
        vec![(Some(ip("192.0.2.9")), 1, 1)],
        "not through itself"
    );
    assert_eq!(rib.lookup(ip("8.8.8.8")).unwrap().0, net("0.0.0.0/0"));
}

#[test]
fn recursion_cycle_is_unresolved_and_terminates() {
    let mut rib = two_ports();
    let mut model = Model::default();
    rib.upsert(net("10.0.0.0/8"), stat(0, 1, via("20.0.0.1")))
        .unwrap();
    rib.upsert(net("20.0.0.0/8"), stat(0, 1, via("10.0.0.1")))
        .unwrap();
    model.apply_all(&drain(&mut rib)).unwrap();
    assert!(selected(&rib, "10.0.0.0/8").is_none());
    assert!(selected(&rib, "20.0.0.0/8").is_none());

    // Grounded through a more specific route, the cycle resolves; without it, it must not
    // keep itself alive on stale state.
    rib.upsert(net("20.0.0.0/16"), stat(0, 1, via("192.0.2.2")))
        .unwrap();
    model.apply_all(&drain(&mut rib)).unwrap();
    assert_eq!(
        hops(&selected(&rib, "20.0.0.0/8").unwrap()),
        vec![(Some(ip("192.0.2.2")), 1, 1)]
    );
    assert!(rib.remove(net("20.0.0.0/16"), Protocol::Static, 0));
    model.apply_all(&drain(&mut rib)).unwrap();
    assert!(selected(&rib, "10.0.0.0/8").is_none());
    assert!(selected(&rib, "20.0.0.0/8").is_none());
    assert_eq!(rib.stats().unresolved, 2);
    assert_model_matches(&rib, &model);
}

#[test]
fn ecmp_groups_are_shared_and_adjacencies_deduplicated() {
    let mut rib = two_ports();
    let mut model = Model::default();
    let ab = || {
        Target::hops(vec![
            hop(Some("192.0.2.2"), Some(1), 1),
            hop(Some("198.51.100.2"), Some(2), 3),
        ])
    };
    // Same set in another order: same group.
    let ba = Target::hops(vec![
        hop(Some("198.51.100.2"), Some(2), 3),
        hop(Some("192.0.2.2"), Some(1), 1),
    ]);
    rib.upsert(net("10.1.0.0/16"), stat(0, 1, ab())).unwrap();
    rib.upsert(net("10.2.0.0/16"), stat(0, 1, ba)).unwrap();
    // Recursive hops resolving to the same neighbours: still the same group.
    rib.upsert(
        net("10.3.0.0/16"),
        stat(
            0,
            1,
            Target::hops(vec![
                hop(Some("192.0.2.2"), None, 1),
                hop(Some("198.51.100.2"), None, 3),
            ]),
        ),
    )
    .unwrap();
    rib.upsert(net("10.4.0.0/16"), stat(0, 1, via("192.0.2.2")))
        .unwrap();
    model.apply_all(&drain(&mut rib)).unwrap();
    let g = |p| selected(&rib, p).unwrap().group.unwrap();
    assert_eq!(g("10.1.0.0/16"), g("10.2.0.0/16"));
    assert_eq!(g("10.1.0.0/16"), g("10.3.0.0/16"));
    assert_ne!(g("10.1.0.0/16"), g("10.4.0.0/16"));
    let v = selected(&rib, "10.1.0.0/16").unwrap();
    assert_eq!(
        hops(&v),
        vec![(Some(ip("192.0.2.2")), 1, 1), (Some(ip("198.51.100.2")), 2, 3)]
    );
    assert_eq!(
        v.resolved[0].adjacency,
        selected(&rib, "10.4.0.0/16").unwrap().resolved[0].adjacency
    );
    // Two gateway adjacencies in all (the others are the connected and local ones), the
    // group has weights 1 and 3.
    assert_eq!(model.adjs.values().filter(|a| a.next_hop.is_some()).count(), 2);
    let mut w: Vec<u32> = model.groups[&g("10.1.0.0/16")].iter().map(|m| m.weight).collect();
    w.sort();
    assert_eq!(w, vec![1, 3]);
    assert_model_matches(&rib, &model);
}

#[test]
fn coalescing_keeps_only_the_final_state() {
    let mut rib = two_ports();
    drain(&mut rib);
    let p = net("10.0.0.0/8");
    rib.upsert(p, stat(0, 1, via("192.0.2.2"))).unwrap();
    assert!(rib.remove(p, Protocol::Static, 0));
    assert_eq!(drain(&mut rib), vec![], "add then delete in one burst");

    rib.upsert(p, stat(0, 1, via("192.0.2.2"))).unwrap();
    rib.upsert(p, stat(0, 1, via("192.0.2.3"))).unwrap();
    rib.upsert(p, stat(0, 1, via("198.51.100.4"))).unwrap();
    let out = drain(&mut rib);
    let routes: Vec<&Delta> = out
        .iter()
        .filter(|d| matches!(d, Delta::RouteSet { .. } | Delta::RouteDelete { .. }))
        .collect();
    assert_eq!(routes.len(), 1, "{out:?}");
    let group = selected(&rib, "10.0.0.0/8").unwrap().group.unwrap();
    assert_eq!(routes[0], &Delta::RouteSet { prefix: p, group });
    let adjs: Vec<&Delta> = out
        .iter()
        .filter(|d| matches!(d, Delta::AdjacencySet { .. }))
        .collect();
    assert_eq!(adjs.len(), 1, "only the final adjacency is sent: {out:?}");

    // Changing and changing back: nothing at all.
    rib.upsert(p, stat(0, 1, via("192.0.2.3"))).unwrap();
    rib.upsert(p, stat(0, 1, via("198.51.100.4"))).unwrap();
    assert_eq!(drain(&mut rib), vec![]);
}

#[test]
fn deltas_are_ordered_definitions_first_deletes_last() {
    let mut rib = Rib::new();
    rib.set_interface(1, iface("eth0", true, &["192.0.2.1/24"]))
        .unwrap();
    rib.upsert(net("10.0.0.0/8"), stat(0, 1, via("192.0.2.2")))
        .unwrap();
    let out = drain(&mut rib);
    let pos = |f: &dyn Fn(&Delta) -> bool| out.iter().position(f).unwrap();
    let port = pos(&|d| matches!(d, Delta::PortSet { .. }));
    let adj = pos(
        &|d| matches!(d, Delta::AdjacencySet { adjacency, .. } if adjacency.next_hop == Some(ip("192.0.2.2"))),
    );
    let route_group = out
        .iter()
        .find_map(|d| match d {
            Delta::RouteSet { prefix, group } if *prefix == net("10.0.0.0/8") => Some(*group),
            _ => None,
        })
        .unwrap();
    let group = pos(&|d| matches!(d, Delta::GroupMembers { group, .. } if *group == route_group));
    let route = pos(&|d| matches!(d, Delta::RouteSet { prefix, .. } if *prefix == net("10.0.0.0/8")));
    assert!(port < adj && adj < group && group < route, "{out:?}");
    let spec = match out[adj] {
        Delta::AdjacencySet { adjacency, .. } => adjacency,
        _ => unreachable!(),
    };
    assert_eq!((spec.port, spec.mtu, spec.src_mac), (1, 1500, [2, 0, 0, 0, 0, 1]));

    rib.remove_interface(1);
    let out = drain(&mut rib);
    let kinds: Vec<u8> = out
        .iter()
        .map(|d| match d {
            Delta::RouteDelete { .. } => 1,
            Delta::GroupDelete { .. } => 2,
            Delta::AdjacencyDelete { .. } => 3,
            Delta::PortDelete { .. } => 4,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert!(kinds.windows(2).all(|w| w[0] <= w[1]), "{out:?}");
    assert_eq!(
        kinds.iter().filter(|&&k| k == 1).count(),
        3,
        "connected, local and the static"
    );
    assert_eq!(*kinds.last().unwrap(), 4);
}

#[test]
fn interface_down_removes_derived_routes_and_dependents_follow() {
    let mut rib = two_ports();
    let mut model = Model::default();
    rib.upsert(net("10.0.0.0/8"), stat(0, 1, via("192.0.2.2")))
        .unwrap();
    rib.upsert(
        net("10.1.0.0/16"),
        stat(0, 1, Target::hops(vec![hop(None, Some(1), 1)])),
    )
    .unwrap();
    rib.upsert(
        net("10.2.0.0/16"),
        stat(
            0,
            1,
            Target::hops(vec![
                hop(Some("192.0.2.2"), None, 1),
                hop(Some("198.51.100.2"), None, 1),
            ]),
        ),
    )
    .unwrap();
    model.apply_all(&drain(&mut rib)).unwrap();
    assert!(rib
        .lookup(ip("192.0.2.1"))
        .is_some_and(|(p, v)| p == net("192.0.2.1/32") && v.action == Some(AdjacencyAction::Local)));
    assert_eq!(hops(&selected(&rib, "10.2.0.0/16").unwrap()).len(), 2);

    rib.set_interface(1, iface("eth0", false, &["192.0.2.1/24", "2001:db8::1/64"]))
        .unwrap();
    model.apply_all(&drain(&mut rib)).unwrap();
    assert!(
        selected(&rib, "192.0.2.0/24").is_none(),
        "connected route of a down interface"
    );
    assert!(
        selected(&rib, "192.0.2.1/32").is_none(),
        "local route of a down interface"
    );
    assert!(selected(&rib, "10.0.0.0/8").is_none());
    assert!(selected(&rib, "10.1.0.0/16").is_none(), "next hop on a down port");
    assert_eq!(
        hops(&selected(&rib, "10.2.0.0/16").unwrap()),
        vec![(Some(ip("198.51.100.2")), 2, 1)],
        "ECMP keeps the rest"
    );
    assert_eq!(rib.lookup(ip("10.0.0.1")), None);
    assert!(model.ports.get(&1).is_some_and(|p| !p.up));
    assert_model_matches(&rib, &model);
    let s = rib.stats();
    assert_eq!((s.unresolved, s.selected_v6), (2, 0));
}

#[test]
fn mtu_change_updates_adjacencies_in_place() {
    let mut rib = two_ports();
    let mut model = Model::default();
    rib.upsert(net("10.0.0.0/8"), stat(0, 1, via("192.0.2.2")))
        .unwrap();
    model.apply_all(&drain(&mut rib)).unwrap();
    let mut i = iface("eth0", true, &["192.0.2.1/24", "2001:db8::1/64"]);
    i.mtu = 100_000;
    rib.set_interface(1, i).unwrap();
    let out = drain(&mut rib);
    assert!(
        out.iter()
            .all(|d| matches!(d, Delta::PortSet { .. } | Delta::AdjacencySet { .. })),
        "{out:?}"
    );
    model.apply_all(&out).unwrap();
    assert!(model
        .adjs
        .values()
        .filter(|a| a.port == 1 && a.action == AdjacencyAction::Forward)
        .all(|a| a.mtu == u16::MAX));
    assert_model_matches(&rib, &model);
}

#[test]
fn fib_seq_is_the_sequence_of_the_programming_record() {
    let mut rib = two_ports();
    rib.upsert(net("10.0.0.0/8"), stat(0, 1, via("192.0.2.2")))
        .unwrap();
    let mut out = vec![Delta::GroupDelete { group: 0 }]; // earlier content is not counted
    rib.drain(1000, &mut out);
    for (k, d) in out[1..].iter().enumerate() {
        if let Delta::RouteSet { prefix, .. } = d {
            let v = rib.routes(&RouteFilter {
                prefix: Some(*prefix),
                selected_only: true,
                ..RouteFilter::default()
            });
            assert_eq!(v[0].fib_seq, Some(1000 + k as u64), "{prefix}");
        }
    }
    // A later change of one prefix moves only its fib_seq.
    let other = selected(&rib, "192.0.2.0/24").unwrap().fib_seq;
    rib.upsert(net("10.0.0.0/8"), stat(0, 1, via("192.0.2.3")))
        .unwrap();
    let out = {
        let mut o = Vec::new();
        rib.drain(5000, &mut o);
        o
    };
    let k = out
        .iter()
        .position(|d| matches!(d, Delta::RouteSet { .. }))
        .unwrap();
    assert_eq!(
        selected(&rib, "10.0.0.0/8").unwrap().fib_seq,
        Some(5000 + k as u64)
    );
    assert_eq!(selected(&rib, "192.0.2.0/24").unwrap().fib_seq, other);
    // Snapshots renumber everything.
    let mut snap = Vec::new();
    rib.snapshot(9000, &mut snap);
    let k = snap
        .iter()
        .position(|d| matches!(d, Delta::RouteSet { prefix, .. } if *prefix == net("10.0.0.0/8")))
        .unwrap();
    assert_eq!(
        selected(&rib, "10.0.0.0/8").unwrap().fib_seq,
        Some(9000 + k as u64)
    );
    assert_eq!(
        rib.lookup(ip("10.1.1.1")).unwrap().1.fib_seq,
        Some(9000 + k as u64)
    );
}

#[test]
fn snapshot_rebuilds_the_same_fib() {
    let mut rib = two_ports();
    let mut model = Model::default();
    rib.upsert(net("10.0.0.0/8"), stat(0, 1, via("192.0.2.2")))
        .unwrap();
    rib.upsert(net("0.0.0.0/0"), stat(0, 1, Target::Blackhole))
        .unwrap();
    rib.upsert(net("2001:db8:1::/48"), stat(0, 1, via("2001:db8::2")))
        .unwrap();
    model.apply_all(&drain(&mut rib)).unwrap();
    // Pending changes are folded into the snapshot.
    rib.upsert(net("172.16.0.0/12"), stat(0, 1, via("10.0.0.1")))
        .unwrap();
    let mut snap = Vec::new();
    rib.snapshot(1, &mut snap);
    let mut fresh = Model::default();
    fresh.apply_all(&snap).unwrap();
    assert_model_matches(&rib, &fresh);
    assert_eq!(fresh.routes.len(), 10, "6 interface routes and 4 statics");
    assert_eq!(
        fresh.forwarding(&net("172.16.0.0/12")).unwrap().1,
        vec![(Some(ip("192.0.2.2")), 1, 1)]
    );
    assert_eq!(
        fresh.forwarding(&net("0.0.0.0/0")).unwrap().0,
        AdjacencyAction::Blackhole
    );
    // And the incremental stream continues from that state.
    rib.remove(net("10.0.0.0/8"), Protocol::Static, 0);
    fresh.apply_all(&drain(&mut rib)).unwrap();
    assert_model_matches(&rib, &fresh);
    // 172.16/12's gateway now resolves through the default route and takes its action.
    assert_eq!(
        fresh.forwarding(&net("172.16.0.0/12")),
        Some((AdjacencyAction::Blackhole, vec![]))
    );
}

#[test]
fn id_exhaustion_leaves_routes_unprogrammed_then_recovers() {
    let mut rib = Rib::with_limits(ADJACENCY_LIMIT, 2);
    let mut model = Model::default();
    rib.set_interface(1, iface("eth0", true, &["192.0.2.1/24"]))
        .unwrap();
    // Connected and local take the two group ids.
    rib.upsert(net("10.0.0.0/8"), stat(0, 1, via("192.0.2.2")))
        .unwrap();
    model.apply_all(&drain(&mut rib)).unwrap();
    let v = selected(&rib, "10.0.0.0/8").unwrap();
    assert_eq!((v.group, v.fib_seq), (None, None));
    assert_eq!(rib.stats().unprogrammed, 1);
    assert_eq!(rib.lookup(ip("10.0.0.1")), None);
    assert_model_matches(&rib, &model);

    rib.set_interface(1, iface("eth0", true, &["192.0.2.1/32"]))
        .unwrap();
    model.apply_all(&drain(&mut rib)).unwrap();
    model.apply_all(&drain(&mut rib)).unwrap();
    // The connected route is gone, so 10/8 is unresolved rather than unprogrammed.
    assert_eq!(rib.stats().unprogrammed, 0);
    rib.upsert(net("10.0.0.0/8"), stat(0, 1, Target::Blackhole))
        .unwrap();
    model.apply_all(&drain(&mut rib)).unwrap();
    assert!(selected(&rib, "10.0.0.0/8").unwrap().group.is_some());
    assert_model_matches(&rib, &model);
}

#[test]
fn retain_drops_what_the_new_config_lacks() {
    let mut rib = two_ports();
    for i in 0..10u8 {
        rib.upsert(
            IpNet::V4(Ipv4Net::new(Ipv4Addr::new(10, i, 0, 0), 16).unwrap()),
            stat(0, 1, via("192.0.2.2")),
        )
        .unwrap();
    }
    rib.upsert(
        net("10.0.0.0/16"),
        route(Protocol::Ospf, 0, 110, 1, via("192.0.2.3")),
    )
    .unwrap();
    let removed = rib.retain(
        Protocol::Static,
        |p, _| matches!(p.addr(), IpAddr::V4(a) if a.octets()[1] < 5),
    );
    assert_eq!(removed, 5);
    assert_eq!(rib.retain(Protocol::Connected, |_, _| false), 0);
    drain(&mut rib);
    assert_eq!(rib.stats().per_protocol[Protocol::Static as usize], 5);
    assert_eq!(selected(&rib, "10.0.0.0/16").unwrap().protocol, Protocol::Static);
    assert_eq!(selected(&rib, "10.7.0.0/16"), None);
    let longer = rib.routes(&RouteFilter {
        prefix: Some(net("10.0.0.0/8")),
        longer: true,
        ..RouteFilter::default()
    });
    let names: Vec<String> = longer
        .iter()
        .map(|v| format!("{} {}", v.prefix, v.protocol))
        .collect();
    assert_eq!(
        names[..3],
        ["10.0.0.0/16 static", "10.0.0.0/16 ospf", "10.1.0.0/16 static"]
    );
}

#[derive(Clone, Debug)]
enum Op {
    Upsert {
        prefix: u8,
        id: u32,
        distance: u8,
        target: u8,
    },
    Remove {
        prefix: u8,
        id: u32,
    },
    Port {
        port: u16,
        up: bool,
        addr: u8,
    },
    Drop {
        port: u16,
    },
    Drain,
}

const PREFIXES: [&str; 10] = [
    "0.0.0.0/0",
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.1.0/24",
    "20.0.0.0/8",
    "192.0.2.0/25",
    "198.51.100.128/25",
    "2001:db8:1::/48",
    "::/0",
    "10.1.1.1/32",
];

fn target(i: u8) -> Target {
    let t = |v: &[NextHopSpec]| Target::hops(v.to_vec());
    match i % 10 {
        0 => Target::Blackhole,
        1 => Target::Unreachable,
        2 => t(&[hop(Some("10.1.1.1"), None, 1)]),
        3 => t(&[hop(Some("20.0.0.1"), None, 1), hop(Some("192.0.2.5"), None, 2)]),
        4 => t(&[
            hop(Some("192.0.2.9"), Some(1), 1),
            hop(Some("198.51.100.9"), Some(2), 1),
        ]),
        5 => t(&[hop(None, Some(2), 1)]),
        6 => t(&[hop(Some("10.200.0.1"), None, 1)]),
        7 => t(&[hop(Some("2001:db8::5"), None, 1)]),
        8 => t(&[hop(Some("198.51.100.200"), None, 1)]),
        _ => t(&[hop(Some("10.1.1.1"), None, 1), hop(Some("20.1.1.1"), None, 1)]),
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u8..10, 0u32..3, 1u8..4, 0u8..10).prop_map(|(prefix, id, distance, target)| Op::Upsert { prefix, id, distance, target }),
        2 => (0u8..10, 0u32..3).prop_map(|(prefix, id)| Op::Remove { prefix, id }),
        2 => (1u16..3, any::<bool>(), 0u8..3).prop_map(|(port, up, addr)| Op::Port { port, up, addr }),
        1 => (1u16..3).prop_map(|port| Op::Drop { port }),
        2 => Just(Op::Drain),
    ]
}

fn run_ops(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut rib = two_ports();
    let mut model = Model::default();
    let mut seq = 1;
    let mut step = |rib: &mut Rib, model: &mut Model| -> Result<(), TestCaseError> {
        let mut out = Vec::new();
        rib.drain(seq, &mut out);
        seq += out.len() as u64;
        model.apply_all(&out).map_err(TestCaseError::fail)?;
        Ok(())
    };
    for op in ops {
        match *op {
            Op::Upsert {
                prefix,
                id,
                distance,
                target: t,
            } => {
                // Unknown ports are refused, which is fine.
                let _ = rib.upsert(net(PREFIXES[usize::from(prefix)]), stat(id, distance, target(t)));
            }
            Op::Remove { prefix, id } => {
                rib.remove(net(PREFIXES[usize::from(prefix)]), Protocol::Static, id);
            }
            Op::Port { port, up, addr } => {
                let addrs: &[&str] = match (port, addr) {
                    (1, 0) => &["192.0.2.1/24", "2001:db8::1/64"],
                    (1, _) => &["192.0.2.1/25"],
                    (_, 0) => &["198.51.100.1/24"],
                    (_, 1) => &["198.51.100.1/24", "10.200.0.2/16"],
                    _ => &[],
                };
                rib.set_interface(port, iface(if port == 1 { "eth0" } else { "eth1" }, up, addrs))
                    .unwrap();
            }
            Op::Drop { port } => rib.remove_interface(port),
            Op::Drain => step(&mut rib, &mut model)?,
        }
    }
    step(&mut rib, &mut model)?;
    // A second drain has nothing left to say.
    let mut out = Vec::new();
    rib.drain(seq, &mut out);
    prop_assert!(out.is_empty(), "second drain: {:?}", out);
    assert_model_matches(&rib, &model);
    for a in [
        "10.1.1.1",
        "10.1.1.7",
        "10.9.0.1",
        "20.0.0.1",
        "192.0.2.3",
        "192.0.2.200",
        "198.51.100.130",
        "8.8.8.8",
        "2001:db8:1::1",
        "2001:db8::5",
        "3000::1",
    ] {
        let a = ip(a);
        prop_assert_eq!(rib.lookup(a).map(|(p, _)| p), model.lookup(a), "lookup {}", a);
    }
    // A snapshot into an empty engine gives the same FIB.
    let mut snap = Vec::new();
    rib.snapshot(seq, &mut snap);
    let mut fresh = Model::default();
    fresh.apply_all(&snap).map_err(TestCaseError::fail)?;
    assert_model_matches(&rib, &fresh);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn random_changes_keep_the_engine_in_step(ops in proptest::collection::vec(op(), 1..60)) {
        run_ops(&ops)?;
    }
}

#[test]
fn hundred_thousand_routes_stay_linear() {
    let mut rib = two_ports();
    let t = Instant::now();
    let gws = ["192.0.2.2", "192.0.2.3", "198.51.100.2"];
    for i in 0..90_000u32 {
        let p = IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x2000_0000 + (i << 8)), 24).unwrap());
        rib.upsert(p, stat(0, 1, via(gws[i as usize % 3]))).unwrap();
    }
    for i in 0..10_000u32 {
        let p = IpNet::V6(
            Ipv6Net::new(Ipv6Addr::from((0x2001_0db8_8000u128 + u128::from(i)) << 80), 48).unwrap(),
        );
        rib.upsert(p, stat(0, 1, via("2001:db8::2"))).unwrap();
    }
    let mut out = Vec::new();
    rib.drain(1, &mut out);
    let s = rib.stats();
    assert_eq!((s.selected_v4, s.selected_v6), (90_000 + 4, 10_000 + 2));
    // Connected (one per port, shared by both families), local, and one per gateway.
    assert_eq!(s.groups, 2 + 1 + 3 + 1);
    // Moving one gateway touches only its third of the routes.
    rib.upsert(net("192.0.2.2/32"), stat(0, 1, via("198.51.100.3")))
        .unwrap();
    out.clear();
    rib.drain(1, &mut out);
    assert_eq!(
        out.iter().filter(|d| matches!(d, Delta::RouteSet { .. })).count(),
        30_001
    );
    let elapsed = t.elapsed();
    assert!(elapsed.as_secs_f64() < 2.0, "took {elapsed:?}");
}

#[test]
fn self_resolving_fallback_settles_instead_of_flapping() {
    // 0/0 prefers a route via 10.1.1.1, which resolves (through 10.1.1.1/32) only while 0/0
    // is the blackhole fallback: no stable state exists. It must settle within one drain.
    let mut rib = two_ports();
    let mut model = Model::default();
    rib.upsert(net("0.0.0.0/0"), stat(0, 1, via("10.1.1.1"))).unwrap();
    rib.upsert(net("0.0.0.0/0"), stat(1, 1, Target::Blackhole))
        .unwrap();
    rib.upsert(
        net("10.1.1.1/32"),
        stat(
            0,
            1,
            Target::hops(vec![
                hop(Some("10.1.1.1"), None, 1),
                hop(Some("20.1.1.1"), None, 1),
            ]),
        ),
    )
    .unwrap();
    rib.upsert(net("20.0.0.0/8"), stat(0, 2, Target::Blackhole))
        .unwrap();
    rib.upsert(net("20.0.0.0/8"), stat(1, 1, via("10.1.1.1")))
        .unwrap();
    model.apply_all(&drain(&mut rib)).unwrap();
    assert_eq!(drain(&mut rib), vec![], "settled");
    assert_model_matches(&rib, &model);
}

/// Resident set size in MiB (Linux), for the scale test.
fn rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? / 1024)
}

/// The full-table target: 902k IPv4 + 160k IPv6 statics via a few gateways, one drain.
/// Run with `cargo test --release -p xroute-control --lib full_table -- --ignored --nocapture`.
#[test]
#[ignore = "scale test: run in release mode"]
fn full_table_fits_time_and_memory() {
    let before = rss_mib().unwrap_or(0);
    let t = Instant::now();
    let mut rib = two_ports();
    let gws = ["192.0.2.2", "192.0.2.3", "198.51.100.2", "198.51.100.3"];
    for i in 0..902_000u32 {
        let p = IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0100_0000 + (i << 8)), 24).unwrap());
        rib.upsert(p, stat(0, 1, via(gws[i as usize % 4]))).unwrap();
    }
    for i in 0..160_000u32 {
        let p = IpNet::V6(
            Ipv6Net::new(Ipv6Addr::from((0x2400_0000_0000u128 + u128::from(i)) << 80), 48).unwrap(),
        );
        rib.upsert(p, stat(0, 1, via(["2001:db8::2", "2001:db8::3"][i as usize % 2])))
            .unwrap();
    }
    let inserted = t.elapsed();
    let mut out = Vec::new();
    rib.drain(1, &mut out);
    let total = t.elapsed();
    let records = out.len();
    drop(out);
    let rss = rss_mib().unwrap_or(0);
    eprintln!(
        "insert {inserted:?}, insert+drain {total:?}, {records} records, RSS {rss} MiB (was {before} MiB)"
    );
    assert_eq!(rib.stats().selected_v4 + rib.stats().selected_v6, 1_062_000 + 6);
    assert!(rss < 300, "RSS {rss} MiB");
    if !cfg!(debug_assertions) {
        assert!(total.as_secs_f64() < 1.0, "took {total:?}");
    }
}

#[test]
fn pages_concatenate_to_the_full_listing() {
    let mut rib = two_ports();
    for i in 0..500u32 {
        let p = IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 | (i * 7919 % 4096) << 12), 20).unwrap());
        rib.upsert(p, stat(1, 1, via("192.0.2.2"))).unwrap();
        if i % 3 == 0 {
            rib.upsert(p, stat(2, 5, via("198.51.100.2"))).unwrap();
        }
        let p6 = IpNet::V6(
            Ipv6Net::new(Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(i) << 64), 64).unwrap(),
        );
        rib.upsert(p6, stat(1, 1, Target::Blackhole)).unwrap();
    }
    drain(&mut rib);
    for filter in [
        RouteFilter::default(),
        RouteFilter {
            selected_only: true,
            ..RouteFilter::default()
        },
        RouteFilter {
            prefix: Some(net("10.0.0.0/12")),
            longer: true,
            ..RouteFilter::default()
        },
    ] {
        let all = rib.routes(&filter);
        let mut paged = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let (page, next) = rib.routes_page(&filter, after.as_ref(), 7);
            paged.extend(page);
            pages += 1;
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(paged, all, "{filter:?}");
        assert!(pages > 1);
    }
}

#[test]
fn dependents_turn_into_a_bitmap_when_many_and_keep_every_slot() {
    let mut d = Dependents::default();
    let mut want = std::collections::BTreeSet::new();
    // Few: a set; then past the threshold a bitmap with the same contents.
    for s in (0..(Dependents::FEW as u32 + 100)).map(|i| i * 3) {
        d.insert(s);
        want.insert(s);
    }
    assert!(matches!(d, Dependents::Many { .. }));
    for s in [3, 9, 4000, 7] {
        d.remove(s);
        want.remove(&s);
    }
    // Inserting twice and removing what is absent change nothing.
    d.insert(6);
    d.remove(1);
    d.insert(1_000_000);
    want.insert(1_000_000);
    let mut got = d.slots();
    got.sort_unstable();
    assert_eq!(got, want.iter().copied().collect::<Vec<_>>());
    let Dependents::Many { len, .. } = d else {
        unreachable!("a bitmap above")
    };
    assert_eq!(len, want.len());
}

#[test]
fn a_gateway_change_reaches_every_route_of_a_large_shared_next_hop_set() {
    let mut rib = two_ports();
    let mut model = Model::default();
    // More routes through one shared next-hop list than a set of dependents holds.
    let n = Dependents::FEW as u32 + 500;
    let target = via("192.0.2.2");
    let prefixes: Vec<IpNet> = (0..n)
        .map(|i| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap()))
        .collect();
    for p in &prefixes {
        rib.upsert(*p, stat(0, 1, target.clone())).unwrap();
    }
    rib.remove(prefixes[7], Protocol::Static, 0);
    model.apply_all(&drain(&mut rib)).unwrap();
    assert_eq!(rib.stats().selected_v4 as u32, n - 1 + 4);
    // The gateway's interface goes down: every route through it goes, then comes back.
    rib.set_interface(1, iface("eth0", false, &["192.0.2.1/24", "2001:db8::1/64"]))
        .unwrap();
    model.apply_all(&drain(&mut rib)).unwrap();
    assert!(prefixes.iter().all(|p| selected(&rib, &p.to_string()).is_none()));
    rib.set_interface(1, iface("eth0", true, &["192.0.2.1/24", "2001:db8::1/64"]))
        .unwrap();
    model.apply_all(&drain(&mut rib)).unwrap();
    for (i, p) in prefixes.iter().enumerate() {
        assert_eq!(selected(&rib, &p.to_string()).is_some(), i != 7, "{p}");
    }
    assert_model_matches(&rib, &model);
}

#[test]
fn the_prefix_index_matches_longest_first_over_the_lengths_in_use() {
    let mut idx = PrefixIndex::default();
    let nets = [
        "0.0.0.0/0",
        "10.0.0.0/8",
        "10.1.0.0/16",
        "10.1.2.3/32",
        "::/0",
        "2001:db8::/32",
        "2001:db8::1/128",
    ];
    for (i, n) in nets.iter().enumerate() {
        assert_eq!(idx.get_or_insert_with(net(n), || i as u32), i as u32);
    }
    // Present already: the closure is not called.
    assert_eq!(idx.get_or_insert_with(net("10.0.0.0/8"), || unreachable!()), 1);
    let cover = |idx: &PrefixIndex, a: &str| {
        idx.covering(ip(a))
            .map(|(p, s)| (p.to_string(), s))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        cover(&idx, "10.1.2.3"),
        [
            ("10.1.2.3/32".into(), 3),
            ("10.1.0.0/16".into(), 2),
            ("10.0.0.0/8".into(), 1),
            ("0.0.0.0/0".into(), 0)
        ]
    );
    assert_eq!(cover(&idx, "192.0.2.1"), [("0.0.0.0/0".to_string(), 0)]);
    assert_eq!(
        cover(&idx, "2001:db8::1"),
        [
            ("2001:db8::1/128".into(), 6),
            ("2001:db8::/32".into(), 5),
            ("::/0".into(), 4)
        ]
    );
    // Removing the last prefix of a length stops the probes at it; others stay.
    idx.remove(&net("10.1.0.0/16"));
    idx.remove(&net("10.1.0.0/16"));
    idx.remove(&net("::/0"));
    assert_eq!(idx.lens_v4.down_from(32).collect::<Vec<_>>(), [32, 8, 0]);
    assert_eq!(idx.lens_v6.down_from(128).collect::<Vec<_>>(), [128, 32]);
    assert_eq!(
        cover(&idx, "10.1.9.9"),
        [("10.0.0.0/8".into(), 1), ("0.0.0.0/0".into(), 0)]
    );
    assert_eq!(cover(&idx, "2001:db9::1"), Vec::<(String, u32)>::new());
    assert_eq!(idx.get(&net("10.1.2.3/32")), Some(3));
    assert_eq!(idx.get(&net("10.1.0.0/16")), None);
    let mut all: Vec<u32> = idx.slots().collect();
    all.sort_unstable();
    assert_eq!(all, [0, 1, 3, 5, 6]);
}

proptest! {
    /// The inlined containment test answers as ipnet's, for both families, across families, for
    /// /0 and host routes, and for addresses that differ from the prefix in one bit only.
    #[test]
    fn covers_agrees_with_ipnet(a in any::<u32>(), l4 in 0u8..=32, b in any::<u128>(), l6 in 0u8..=128, flip in 0u32..128, near in any::<bool>()) {
        let p4 = IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(a), l4).unwrap().trunc());
        let p6 = IpNet::V6(ipnet::Ipv6Net::new(Ipv6Addr::from(b), l6).unwrap().trunc());
        let x4 = if near { a ^ (1 << (flip % 32)) } else { a.rotate_left(flip) };
        let x6 = if near { b ^ (1 << flip) } else { b.rotate_left(flip) };
        for p in [p4, p6] {
            for addr in [IpAddr::V4(Ipv4Addr::from(x4)), IpAddr::V6(Ipv6Addr::from(x6)), IpAddr::V4(Ipv4Addr::from(a)), IpAddr::V6(Ipv6Addr::from(b))] {
                prop_assert_eq!(covers(&p, &addr), p.contains(&addr), "{} {}", p, addr);
            }
        }
    }
}

/// What a prefix costs the RIB: a full table holds a million of these, and the bytes per entry
/// are most of the control process's memory and page faults while it takes the table in.
#[test]
fn entries_stay_small() {
    assert_eq!(std::mem::size_of::<Cands>(), 16);
    assert_eq!(std::mem::size_of::<Entry>(), 56);
}
