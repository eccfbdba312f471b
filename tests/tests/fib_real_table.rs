//! The FIB on the real tier-1 table (902k IPv4 + 160k IPv6 prefixes) against the naive reference:
//! every prefix's first and last address and the addresses just outside it, plus a million random
//! addresses per family, before and after withdrawing half the table.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use xroute_engine::fib::reference::Reference;
use xroute_engine::fib::{FibReader, GroupId, Prefix, RouteChange};
use xroute_engine::table::{self, fib_with_synthetic_groups, synthetic_group};

const GROUPS: u32 = 64;

struct Refs {
    v4: Reference<u32>,
    v6: Reference<u128>,
}

impl Refs {
    fn apply(&mut self, c: &RouteChange) {
        match *c {
            RouteChange::Set(Prefix::V4(n), g) => {
                self.v4.insert(n.bits(), n.len(), g.get());
            }
            RouteChange::Set(Prefix::V6(n), g) => {
                self.v6.insert(n.bits(), n.len(), g.get());
            }
            RouteChange::Remove(Prefix::V4(n)) => {
                self.v4.remove(n.bits(), n.len());
            }
            RouteChange::Remove(Prefix::V6(n)) => {
                self.v6.remove(n.bits(), n.len());
            }
        }
    }
}

/// Edge addresses of every prefix plus `randoms` random ones; returns the number checked.
fn check_all(
    reader: &mut FibReader,
    refs: &Refs,
    prefixes: &[Prefix],
    rng: &mut SmallRng,
    randoms: usize,
) -> usize {
    let view = reader.view();
    let mut checked = 0usize;
    let mut bad = Vec::new();
    for p in prefixes {
        match p {
            Prefix::V4(n) => {
                let (f, l) = (n.first() as u32, n.last() as u32);
                for a in [f, l, f.wrapping_sub(1), l.wrapping_add(1)] {
                    checked += 1;
                    if view.lookup_v4(a).map(GroupId::get) != refs.v4.lookup(a) && bad.len() < 10 {
                        bad.push(format!(
                            "{p}: {a:#010x} -> {:?}, want {:?}",
                            view.lookup_v4(a),
                            refs.v4.lookup(a)
                        ));
                    }
                }
            }
            Prefix::V6(n) => {
                let (f, l) = (n.first(), n.last());
                for a in [f, l, f.wrapping_sub(1), l.wrapping_add(1)] {
                    checked += 1;
                    if view.lookup_v6(a).map(GroupId::get) != refs.v6.lookup(a) && bad.len() < 10 {
                        bad.push(format!(
                            "{p}: {a:#x} -> {:?}, want {:?}",
                            view.lookup_v6(a),
                            refs.v6.lookup(a)
                        ));
                    }
                }
            }
        }
    }
    // The same first addresses batched: nearly every lane continues below the direct array.
    let edges4: Vec<u32> = prefixes
        .iter()
        .filter_map(|p| match p {
            Prefix::V4(n) => Some(n.first() as u32),
            Prefix::V6(_) => None,
        })
        .collect();
    let mut out = vec![None; edges4.len()];
    view.lookup_v4_batch(&edges4, &mut out);
    for (a, o) in edges4.iter().zip(&out) {
        checked += 1;
        if o.map(GroupId::get) != refs.v4.lookup(*a) && bad.len() < 10 {
            bad.push(format!(
                "batched edge {a:#010x} -> {o:?}, want {:?}",
                refs.v4.lookup(*a)
            ));
        }
    }
    // Random addresses, single and batched; IPv6 also inside random table prefixes, since
    // uniformly random IPv6 addresses almost never hit a route.
    let v4: Vec<u32> = (0..randoms).map(|_| rng.gen()).collect();
    let mut out = vec![None; randoms];
    view.lookup_v4_batch(&v4, &mut out);
    for (a, o) in v4.iter().zip(&out) {
        checked += 1;
        let want = refs.v4.lookup(*a);
        if (o.map(GroupId::get) != want || view.lookup_v4(*a).map(GroupId::get) != want) && bad.len() < 10 {
            bad.push(format!("random {a:#010x} -> {o:?}, want {want:?}"));
        }
    }
    let v6p: Vec<&Prefix> = prefixes.iter().filter(|p| matches!(p, Prefix::V6(_))).collect();
    let v6: Vec<u128> = (0..randoms)
        .map(|i| {
            let r: u128 = rng.gen();
            match (i % 2, v6p.get(rng.gen_range(0..v6p.len().max(1)))) {
                (0, Some(Prefix::V6(n))) => n.first() | (r & (n.last() - n.first())),
                _ => r,
            }
        })
        .collect();
    let mut out6 = vec![None; randoms];
    view.lookup_v6_batch(&v6, &mut out6);
    for (a, o) in v6.iter().zip(&out6) {
        checked += 1;
        let want = refs.v6.lookup(*a);
        if (o.map(GroupId::get) != want || view.lookup_v6(*a).map(GroupId::get) != want) && bad.len() < 10 {
            bad.push(format!("random {a:#x} -> {o:?}, want {want:?}"));
        }
    }
    assert!(
        bad.is_empty(),
        "FIB disagrees with the reference:\n{}",
        bad.join("\n")
    );
    checked
}

#[test]
fn full_table_agrees_with_reference_before_and_after_withdrawing_half() {
    let Some(path) = xroute_tests::real_table() else {
        return;
    };
    let prefixes = table::read_prefixes(&path).expect("read the table");
    let v4 = prefixes.iter().filter(|p| matches!(p, Prefix::V4(_))).count();
    assert!(
        v4 > 900_000 && prefixes.len() - v4 > 160_000,
        "unexpected table: {v4} IPv4 of {}",
        prefixes.len()
    );

    let mut fib = fib_with_synthetic_groups(GROUPS).expect("groups");
    let mut refs = Refs {
        v4: Reference::new(),
        v6: Reference::new(),
    };
    let changes: Vec<RouteChange> = prefixes
        .iter()
        .map(|p| RouteChange::Set(*p, synthetic_group(p, GROUPS)))
        .collect();
    for c in &changes {
        refs.apply(c);
    }
    assert_eq!(fib.apply(changes).expect("load"), prefixes.len());
    assert_eq!(fib.len(), refs.v4.len() + refs.v6.len());
    assert_eq!(fib.len(), prefixes.len(), "the table has no duplicates");

    let mut reader = fib.reader().expect("reader");
    let mut rng = SmallRng::seed_from_u64(0x5eed);
    let n = check_all(&mut reader, &refs, &prefixes, &mut rng, 1_000_000);
    eprintln!("full table: {n} addresses agree");

    // Withdraw a random half in one batch and re-point a quarter of the rest to other groups.
    let mut withdraw = Vec::new();
    let mut repoint = Vec::new();
    for p in &prefixes {
        match rng.gen_range(0..4) {
            0 | 1 => withdraw.push(RouteChange::Remove(*p)),
            2 => {
                let g = GroupId::new(rng.gen_range(1..=GROUPS)).expect("group");
                repoint.push(RouteChange::Set(*p, g));
            }
            _ => {}
        }
    }
    for c in withdraw.iter().chain(&repoint) {
        refs.apply(c);
    }
    fib.apply(withdraw.iter().chain(&repoint).copied())
        .expect("churn");
    assert_eq!(fib.len(), refs.v4.len() + refs.v6.len());
    let n = check_all(&mut reader, &refs, &prefixes, &mut rng, 1_000_000);
    eprintln!("after withdrawing half: {n} addresses agree");

    // Withdraw everything one route at a time: the tables return to empty, nothing leaks.
    let rest: Vec<Prefix> = fib.routes().into_iter().map(|(p, _)| p).collect();
    for p in &rest {
        fib.remove(*p).expect("remove");
    }
    drop(reader);
    fib.reclaim();
    let m = fib.memory();
    assert!(fib.is_empty());
    assert_eq!(
        (m.v4.nodes, m.v4.leaves, m.v6.nodes, m.v6.leaves),
        (0, 0, 0, 0),
        "{m:?}"
    );
}
