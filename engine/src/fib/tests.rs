//! Unit and property tests of the FIB against the naive reference.

use super::reference::Reference;
use super::*;
use proptest::prelude::*;

fn g(n: u32) -> GroupId {
    GroupId::new(n).unwrap()
}

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

/// A writer with groups 1..=n defined over one adjacency each.
fn writer_with_groups(n: u32) -> FibWriter {
    let mut w = FibWriter::new(FibConfig {
        max_groups: n.max(1),
        max_adjacencies: n.max(1),
    });
    for i in 1..=n {
        w.set_adjacency(
            AdjacencyId(i - 1),
            Adjacency::forward(i as u16, 1500, None, [2, 0, 0, 0, 0, i as u8]),
        )
        .unwrap();
        w.set_group(
            g(i),
            &[NextHop {
                adjacency: AdjacencyId(i - 1),
                weight: 1,
            }],
        )
        .unwrap();
    }
    w
}

fn v4(s: &str) -> u32 {
    u32::from(s.parse::<Ipv4Addr>().unwrap())
}

fn v6(s: &str) -> u128 {
    u128::from(s.parse::<Ipv6Addr>().unwrap())
}

#[test]
fn longest_match_wins_at_every_depth() {
    let mut w = writer_with_groups(8);
    w.insert(p("0.0.0.0/0"), g(1)).unwrap();
    w.insert(p("198.18.0.0/15"), g(2)).unwrap();
    w.insert(p("198.18.0.0/24"), g(3)).unwrap();
    w.insert(p("198.18.0.128/25"), g(4)).unwrap();
    w.insert(p("198.18.0.129/32"), g(5)).unwrap();
    w.insert(p("198.18.0.130/31"), g(6)).unwrap();
    let mut r = w.reader().unwrap();
    let view = r.view();
    assert_eq!(view.lookup_v4(v4("8.8.8.8")), Some(g(1)));
    assert_eq!(view.lookup_v4(v4("198.19.255.255")), Some(g(2)));
    assert_eq!(view.lookup_v4(v4("198.18.0.1")), Some(g(3)));
    assert_eq!(view.lookup_v4(v4("198.18.0.128")), Some(g(4)));
    assert_eq!(view.lookup_v4(v4("198.18.0.129")), Some(g(5)));
    assert_eq!(view.lookup_v4(v4("198.18.0.130")), Some(g(6)));
    assert_eq!(view.lookup_v4(v4("198.18.0.131")), Some(g(6)));
    assert_eq!(view.lookup_v4(v4("198.18.0.132")), Some(g(4)));
    assert_eq!(view.lookup_v4(v4("198.18.1.0")), Some(g(2)));
    assert_eq!(w.len_v4(), 6);
}

#[test]
fn ipv6_host_routes_and_defaults() {
    let mut w = writer_with_groups(4);
    w.insert(p("2001:db8::/32"), g(1)).unwrap();
    w.insert(p("2001:db8::1/128"), g(2)).unwrap();
    w.insert(p("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff/128"), g(3))
        .unwrap();
    let mut r = w.reader().unwrap();
    let view = r.view();
    assert_eq!(view.lookup_v6(v6("2001:db8::1")), Some(g(2)));
    assert_eq!(view.lookup_v6(v6("2001:db8::2")), Some(g(1)));
    assert_eq!(
        view.lookup_v6(v6("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")),
        Some(g(3))
    );
    assert_eq!(
        view.lookup_v6(v6("2001:db8:ffff:ffff:ffff:ffff:ffff:fffe")),
        Some(g(1))
    );
    assert_eq!(view.lookup_v6(v6("2001:db9::")), None);
    drop(r);
    w.insert(p("::/0"), g(4)).unwrap();
    let mut r = w.reader().unwrap();
    assert_eq!(r.view().lookup_v6(v6("2001:db9::")), Some(g(4)));
    assert_eq!(r.view().lookup_v6(u128::MAX), Some(g(4)));
    assert_eq!(r.view().lookup_v4(0), None, "families are separate");
}

#[test]
fn removal_restores_the_covering_route_and_frees_memory() {
    let mut w = writer_with_groups(4);
    let empty = w.memory();
    w.insert(p("10.0.0.0/8"), g(1)).unwrap();
    w.insert(p("10.1.0.0/16"), g(2)).unwrap();
    w.insert(p("10.1.2.0/24"), g(3)).unwrap();
    w.insert(p("10.1.2.3/32"), g(4)).unwrap();
    assert_eq!(w.lookup(IpAddr::V4("10.1.2.3".parse().unwrap())), Some(g(4)));
    assert_eq!(w.remove(p("10.1.2.3/32")).unwrap(), Some(g(4)));
    assert_eq!(w.lookup(IpAddr::V4("10.1.2.3".parse().unwrap())), Some(g(3)));
    assert_eq!(w.remove(p("10.1.0.0/16")).unwrap(), Some(g(2)));
    assert_eq!(w.lookup(IpAddr::V4("10.1.3.3".parse().unwrap())), Some(g(1)));
    assert_eq!(w.lookup(IpAddr::V4("10.1.2.3".parse().unwrap())), Some(g(3)));
    assert_eq!(
        w.remove(p("10.1.0.0/16")).unwrap(),
        None,
        "second removal is a no-op"
    );
    w.remove(p("10.0.0.0/8")).unwrap();
    w.remove(p("10.1.2.0/24")).unwrap();
    assert!(w.is_empty());
    let m = w.memory();
    assert_eq!(
        (m.v4.nodes, m.v4.leaves),
        (empty.v4.nodes, empty.v4.leaves),
        "no block leaks"
    );
    assert_eq!(w.lookup(IpAddr::V4("10.1.2.3".parse().unwrap())), None);
}

#[test]
fn replacing_a_route_returns_the_old_group() {
    let mut w = writer_with_groups(2);
    assert_eq!(w.insert(p("192.0.2.0/24"), g(1)).unwrap(), None);
    assert_eq!(w.insert(p("192.0.2.0/24"), g(2)).unwrap(), Some(g(1)));
    assert_eq!(w.get(p("192.0.2.0/24")), Some(g(2)));
    assert_eq!(w.len(), 1);
    // Group 1 is free again, group 2 is not.
    w.remove_group(g(1)).unwrap();
    assert_eq!(
        w.remove_group(g(2)),
        Err(FibError::GroupInUse {
            group: g(2),
            routes: 1
        })
    );
}

#[test]
fn bad_input_is_an_error_value() {
    let mut w = writer_with_groups(2);
    assert_eq!(
        w.insert(p("192.0.2.0/24"), g(9)),
        Err(FibError::UnknownGroup(g(9)))
    );
    assert!(w.is_empty(), "a refused insert changes nothing");
    assert!(matches!(
        w.set_group(g(1000), &[]),
        Err(FibError::GroupIdOutOfRange { .. })
    ));
    assert!(matches!(
        w.set_group(
            g(1),
            &[NextHop {
                adjacency: AdjacencyId(99),
                weight: 1
            }]
        ),
        Err(FibError::AdjacencyIdOutOfRange { .. })
    ));
    assert_eq!(
        w.remove_adjacency(AdjacencyId(0)),
        Err(FibError::AdjacencyInUse {
            adjacency: AdjacencyId(0),
            groups: 1
        })
    );
    assert!(GroupId::new(0).is_none());
    assert!(GroupId::new(GroupId::MAX + 1).is_none());
    let e = w
        .apply([
            RouteChange::Set(p("192.0.2.0/24"), g(1)),
            RouteChange::Set(p("198.51.100.0/24"), g(3)),
        ])
        .unwrap_err();
    assert!(matches!(e, FibError::Batch { index: 1, .. }), "{e}");
    assert_eq!(w.len(), 1, "changes before the bad one are applied");
}

#[test]
fn ecmp_groups_and_adjacency_updates_do_not_touch_the_trie() {
    let mut w = writer_with_groups(3);
    let nh = |a, weight| NextHop {
        adjacency: AdjacencyId(a),
        weight,
    };
    w.set_group(g(1), &[nh(0, 1), nh(1, 1), nh(2, 2)]).unwrap();
    w.insert(p("203.0.113.0/24"), g(1)).unwrap();
    let before = w.memory();
    let mut r = w.reader().unwrap();
    let mut hits = [0u32; 3];
    {
        let v = r.view();
        let grp = v.lookup_v4(v4("203.0.113.9")).unwrap();
        for h in 0..4000u32 {
            hits[v.select(grp, h.wrapping_mul(2_654_435_761)).unwrap().0 as usize] += 1;
        }
    }
    assert!(
        hits[2] > hits[0] + hits[1] / 2,
        "weight 2 member gets about half: {hits:?}"
    );
    let mut a = w.adjacency(AdjacencyId(2)).unwrap();
    a.dst_mac = Some([0x02, 0xaa, 0, 0, 0, 1]);
    w.set_adjacency(AdjacencyId(2), a).unwrap();
    assert_eq!(
        r.view().adjacency(AdjacencyId(2)).unwrap().dst_mac,
        Some([0x02, 0xaa, 0, 0, 0, 1])
    );
    assert_eq!(w.memory().v4, before.v4, "the trie is untouched");
}

#[test]
fn batched_lookup_matches_single_lookups() {
    let mut w = writer_with_groups(16);
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut changes = Vec::new();
    for _ in 0..5000 {
        let len = (next() % 33) as u32;
        let bits = (next() as u32).masked(len);
        changes.push(RouteChange::Set(
            Prefix::V4(Ipv4Net::from_bits(bits, len).unwrap()),
            g((next() % 16) as u32 + 1),
        ));
        let len6 = (next() % 129) as u32;
        let bits6 = ((u128::from(next()) << 64) | u128::from(next())).masked(len6);
        changes.push(RouteChange::Set(
            Prefix::V6(Ipv6Net::from_bits(bits6, len6).unwrap()),
            g(1),
        ));
    }
    w.apply(changes).unwrap();
    let mut r = w.reader().unwrap();
    let view = r.view();
    let addrs: Vec<u32> = (0..1003).map(|_| next() as u32).collect();
    let mut out = vec![None; addrs.len()];
    view.lookup_v4_batch(&addrs, &mut out);
    for (a, o) in addrs.iter().zip(&out) {
        assert_eq!(*o, view.lookup_v4(*a), "{a:#x}");
    }
    // Addresses inside inserted prefixes longer than the direct array: nearly every lane of a
    // batch reaches a compact root or a node, some of them deeper.
    let inside: Vec<(u32, u32)> = (0..4099)
        .map(|i| {
            let len = 19 + (i % 14) as u32;
            let base = (next() as u32).masked(len);
            (base, len)
        })
        .collect();
    let mut w2 = writer_with_groups(16);
    w2.apply(inside.iter().enumerate().map(|(i, (a, len))| {
        RouteChange::Set(
            Prefix::V4(Ipv4Net::from_bits(*a, *len).unwrap()),
            g(i as u32 % 16 + 1),
        )
    }))
    .unwrap();
    let probes: Vec<u32> = inside
        .iter()
        .map(|(a, len)| a | ((next() as u32) & u32::MAX.checked_shr(*len).unwrap_or(0)))
        .collect();
    let mut r2 = w2.reader().unwrap();
    let view2 = r2.view();
    let mut out2 = vec![None; probes.len()];
    view2.lookup_v4_batch(&probes, &mut out2);
    assert_eq!(
        out2.iter().filter(|o| o.is_some()).count(),
        probes.len(),
        "every probe is inside a route"
    );
    for (a, o) in probes.iter().zip(&out2) {
        assert_eq!(*o, view2.lookup_v4(*a), "dense {a:#x}");
    }
    let addrs6: Vec<u128> = (0..1003)
        .map(|_| (u128::from(next()) << 64) | u128::from(next()))
        .collect();
    let mut out6 = vec![None; addrs6.len()];
    view.lookup_v6_batch(&addrs6, &mut out6);
    for (a, o) in addrs6.iter().zip(&out6) {
        assert_eq!(*o, view.lookup_v6(*a), "{a:#x}");
    }
}

#[test]
fn route_iteration_returns_exactly_what_was_installed() {
    let mut w = writer_with_groups(3);
    let routes = [
        "0.0.0.0/0",
        "10.0.0.0/8",
        "10.255.255.254/31",
        "192.0.2.0/24",
        "::/0",
        "2001:db8::/48",
        "2001:db8::ff/128",
    ];
    for (i, r) in routes.iter().enumerate() {
        w.insert(p(r), g(i as u32 % 3 + 1)).unwrap();
    }
    let mut got: Vec<String> = w.routes().iter().map(|(p, g)| format!("{p} {g}")).collect();
    got.sort();
    let mut want: Vec<String> = routes
        .iter()
        .enumerate()
        .map(|(i, r)| format!("{} {}", p(r), i % 3 + 1))
        .collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn readers_past_a_quiescent_point_let_memory_be_reused() {
    let mut w = writer_with_groups(2);
    let mut r = w.reader().unwrap();
    for round in 0..200u32 {
        let pre = p(&format!("198.18.{}.0/24", round % 7));
        w.insert(pre, g(round % 2 + 1)).unwrap();
        r.view();
    }
    w.reclaim();
    let settled = w.memory().v4.allocated_bytes;
    for round in 0..2000u32 {
        let pre = p(&format!("198.18.{}.0/24", round % 7));
        w.insert(pre, g(round % 2 + 1)).unwrap();
        r.view();
    }
    assert_eq!(
        w.memory().v4.allocated_bytes,
        settled,
        "churn with an active reader does not grow the arrays"
    );
}

#[test]
fn too_many_readers_is_an_error() {
    let w = writer_with_groups(1);
    let readers: Vec<_> = (0..qsbr::MAX_READERS).map(|_| w.reader().unwrap()).collect();
    assert_eq!(
        w.reader().err(),
        Some(FibError::TooManyReaders(qsbr::MAX_READERS))
    );
    drop(readers);
    assert!(w.reader().is_ok());
}

/// Random prefixes drawn near a few anchors so that they nest and overlap.
fn prefix_strategy<K: Key>(anchors: Vec<u128>) -> impl Strategy<Value = (K, u32)> {
    (0..anchors.len(), any::<u128>(), 0..=K::BITS, 0u32..8).prop_map(move |(a, noise, len, spread)| {
        // Keep the anchor's top bits and randomise a few below the prefix length.
        let base = K::from_u128(anchors[a]);
        let keep = len.saturating_sub(spread);
        let mixed = K::from_u128((base.to_u128() & !K::from_u128(u128::MAX).masked(keep).to_u128()) ^ noise);
        let bits = K::from_u128(base.masked(keep).to_u128() | mixed.to_u128()).masked(len);
        (bits, len)
    })
}

#[derive(Clone, Debug)]
enum Op<K> {
    Insert(K, u32, u32),
    Remove(K, u32),
    /// Remove the n-th (modulo) route inserted so far, so that removals mostly hit.
    RemoveExisting(usize),
}

fn ops<K: Key>(anchors: Vec<u128>) -> impl Strategy<Value = Vec<Op<K>>> {
    let ins = (prefix_strategy::<K>(anchors.clone()), 1u32..6).prop_map(|((k, l), v)| Op::Insert(k, l, v));
    let del = prefix_strategy::<K>(anchors).prop_map(|(k, l)| Op::Remove(k, l));
    let hit = any::<usize>().prop_map(Op::RemoveExisting);
    prop::collection::vec(prop_oneof![6 => ins, 1 => del, 3 => hit], 1..150)
}

fn probes<K: Key>(reference: &Reference<K>, extra: &[K]) -> Vec<K> {
    let mut v: Vec<K> = extra.to_vec();
    for (k, l, _) in reference.routes() {
        let first = k.to_u128();
        let last = if l == K::BITS {
            first
        } else {
            first | (u128::MAX >> (128 - (K::BITS - l)))
        };
        for a in [first, last, first.wrapping_sub(1), last.wrapping_add(1)] {
            v.push(K::from_u128(a));
        }
    }
    v
}

fn check_family<K: Key>(
    ops: &[Op<K>],
    randoms: &[K],
    stage: impl Fn(&mut FibWriter, &Op<K>) -> Result<Option<GroupId>, FibError>,
    lookup: impl Fn(&FibView<'_>, K) -> Option<GroupId>,
    batch: impl Fn(&FibView<'_>, &[K], &mut [Option<GroupId>]),
) -> Result<(), TestCaseError> {
    let mut w = writer_with_groups(5);
    let mut reference = Reference::<K>::new();
    let mut reader = w.reader().map_err(|e| TestCaseError::fail(e.to_string()))?;
    for op in ops {
        let op = &match *op {
            Op::RemoveExisting(n) => {
                let routes = reference.routes();
                match routes.get(n % routes.len().max(1)) {
                    Some(&(k, l, _)) => Op::Remove(k, l),
                    None => continue,
                }
            }
            ref other => other.clone(),
        };
        let got = stage(&mut w, op).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let want = match *op {
            Op::Insert(k, l, v) => reference.insert(k, l, v),
            Op::Remove(k, l) => reference.remove(k, l),
            Op::RemoveExisting(_) => None,
        };
        prop_assert_eq!(got.map(GroupId::get), want, "previous value after {:?}", op);
        let view = reader.view();
        for a in probes(&reference, randoms) {
            prop_assert_eq!(
                lookup(&view, a).map(GroupId::get),
                reference.lookup(a),
                "addr {:?} after {:?}",
                a,
                op
            );
        }
    }
    let view = reader.view();
    let all = probes(&reference, randoms);
    let mut out = vec![None; all.len()];
    batch(&view, &all, &mut out);
    for (a, o) in all.iter().zip(&out) {
        prop_assert_eq!(o.map(GroupId::get), reference.lookup(*a), "batched addr {:?}", a);
    }
    let mut listed: Vec<(u128, u32, u32)> = Vec::new();
    w.for_each_route(|p, g| match p {
        Prefix::V4(n) => listed.push((n.first(), n.len(), g.get())),
        Prefix::V6(n) => listed.push((n.first(), n.len(), g.get())),
    });
    listed.sort_unstable();
    let want: Vec<(u128, u32, u32)> = reference
        .routes()
        .into_iter()
        .map(|(k, l, v)| (k.to_u128(), l, v))
        .collect();
    prop_assert_eq!(listed, want);
    prop_assert_eq!(w.len(), reference.len());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn ipv4_matches_reference(
        ops in ops::<u32>(vec![0xc612_0000, 0x0a00_0000, 0xffff_ffff, 0, 0xc000_0200]),
        randoms in prop::collection::vec(any::<u32>(), 32),
    ) {
        check_family::<u32>(
            &ops,
            &randoms,
            |w, op| match *op {
                Op::Insert(k, l, v) => w.insert(Ipv4Net::from_bits(k, l).unwrap(), g(v)),
                Op::Remove(k, l) => w.remove(Ipv4Net::from_bits(k, l).unwrap()),
                Op::RemoveExisting(_) => Ok(None),
            },
            |v, a| v.lookup_v4(a),
            |v, a, o| v.lookup_v4_batch(a, o),
        )?;
    }

    #[test]
    fn ipv6_matches_reference(
        ops in ops::<u128>(vec![0x2001_0db8u128 << 96, 0, u128::MAX, (0x2001_0db8u128 << 96) | 0xffff, 0x2a00u128 << 112]),
        randoms in prop::collection::vec(any::<u128>(), 32),
    ) {
        check_family::<u128>(
            &ops,
            &randoms,
            |w, op| match *op {
                Op::Insert(k, l, v) => w.insert(Ipv6Net::from_bits(k, l).unwrap(), g(v)),
                Op::Remove(k, l) => w.remove(Ipv6Net::from_bits(k, l).unwrap()),
                Op::RemoveExisting(_) => Ok(None),
            },
            |v, a| v.lookup_v6(a),
            |v, a, o| v.lookup_v6_batch(a, o),
        )?;
    }

    /// Staging a batch and publishing once gives the same table as one change at a time.
    #[test]
    fn batch_apply_equals_sequential(ops in ops::<u32>(vec![0xc612_0000, 0x0a00_0000, 0])) {
        let mut seq = writer_with_groups(5);
        let mut bat = writer_with_groups(5);
        let mut inserted = Vec::new();
        let changes: Vec<RouteChange> = ops.iter().filter_map(|op| Some(match *op {
            Op::Insert(k, l, v) => {
                let p = Prefix::V4(Ipv4Net::from_bits(k, l).unwrap());
                inserted.push(p);
                RouteChange::Set(p, g(v))
            }
            Op::Remove(k, l) => RouteChange::Remove(Prefix::V4(Ipv4Net::from_bits(k, l).unwrap())),
            Op::RemoveExisting(n) => RouteChange::Remove(*inserted.get(n % inserted.len().max(1))?),
        })).collect();
        for c in &changes {
            match *c {
                RouteChange::Set(p, gr) => { seq.insert(p, gr).unwrap(); }
                RouteChange::Remove(p) => { seq.remove(p).unwrap(); }
            }
        }
        bat.apply(changes).unwrap();
        prop_assert_eq!(seq.routes(), bat.routes());
        prop_assert_eq!(seq.memory().v4.nodes, bat.memory().v4.nodes);
        prop_assert_eq!(seq.memory().v4.leaves, bat.memory().v4.leaves);
        let mut ra = seq.reader().unwrap();
        let mut rb = bat.reader().unwrap();
        for a in (0..=u32::MAX).step_by(65_521) {
            prop_assert_eq!(ra.view().lookup_v4(a), rb.view().lookup_v4(a));
        }
    }
}
