//! Readers never see a torn trie while the writer churns: sentinel addresses whose answer must
//! not change, and toggled routes whose answer must be one of the two values they alternate
//! between, are looked up by reader threads during hundreds of thousands of updates, including
//! updates that share direct entries and nodes with the sentinels and ones that force the arrays
//! to grow (be copied and republished).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use xroute_engine::fib::{FibWriter, GroupId, Ipv4Net, Ipv6Net, Prefix, RouteChange};
use xroute_engine::table::fib_with_synthetic_groups;

fn g(n: u32) -> GroupId {
    GroupId::new(n).expect("group")
}

fn v4(a: u32, len: u32) -> Prefix {
    Prefix::V4(Ipv4Net::from_bits(a, len).expect("prefix"))
}

fn v6(a: u128, len: u32) -> Prefix {
    Prefix::V6(Ipv6Net::from_bits(a, len).expect("prefix"))
}

const BASE4: u32 = 0xc612_0000; // 198.18.0.0/15
const BASE6: u128 = 0x2001_0db8 << 96; // 2001:db8::/32

/// A probe and what it may answer: exactly one value, or either of two.
#[derive(Clone, Copy)]
enum Probe {
    V4(u32, u32, u32),
    V6(u128, u32, u32),
}

fn setup(fib: &mut FibWriter) -> Vec<Probe> {
    let mut probes = Vec::new();
    let mut routes = Vec::new();
    // Sentinels: every even /24 of 198.18.0.0/16 and every even /48 under 2001:db8::/32,
    // each with its own group; probes at both ends and the middle.
    for x in (0..256u32).step_by(2) {
        let net = BASE4 | (x << 8);
        let grp = x % 60 + 1;
        routes.push(RouteChange::Set(v4(net, 24), g(grp)));
        for off in [0, 77, 255] {
            probes.push(Probe::V4(net | off, grp, grp));
        }
        let net6 = BASE6 | (u128::from(x) << 80);
        routes.push(RouteChange::Set(v6(net6, 48), g(grp)));
        for off in [0u128, 0xdead_beef, (1 << 80) - 1] {
            probes.push(Probe::V6(net6 | off, grp, grp));
        }
    }
    // Toggled routes: odd /24s (and /48s) whose group flips between 61 and 62.
    for x in (1..256u32).step_by(34) {
        let net = BASE4 | (x << 8);
        routes.push(RouteChange::Set(v4(net, 24), g(61)));
        probes.push(Probe::V4(net | 9, 61, 62));
        let net6 = BASE6 | (u128::from(x) << 80);
        routes.push(RouteChange::Set(v6(net6, 48), g(61)));
        probes.push(Probe::V6(net6 | 9, 61, 62));
    }
    fib.apply(routes).expect("setup");
    probes
}

#[test]
fn readers_see_consistent_answers_during_churn() {
    let mut fib = fib_with_synthetic_groups(64).expect("groups");
    let probes = Arc::new(setup(&mut fib));
    let stop = Arc::new(AtomicBool::new(false));
    let wrong = Arc::new(AtomicU64::new(0));
    let rounds = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let mut reader = fib.reader().expect("reader");
            let (probes, stop, wrong, rounds) = (probes.clone(), stop.clone(), wrong.clone(), rounds.clone());
            thread::spawn(move || {
                let addrs4: Vec<u32> = probes
                    .iter()
                    .filter_map(|p| if let Probe::V4(a, ..) = p { Some(*a) } else { None })
                    .collect();
                let mut out = vec![None; addrs4.len()];
                while !stop.load(Ordering::Relaxed) {
                    let view = reader.view();
                    for p in probes.iter() {
                        let (got, a, b) = match *p {
                            Probe::V4(addr, a, b) => (view.lookup_v4(addr), a, b),
                            Probe::V6(addr, a, b) => (view.lookup_v6(addr), a, b),
                        };
                        let got = got.map_or(0, GroupId::get);
                        if got != a && got != b {
                            wrong.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    view.lookup_v4_batch(&addrs4, &mut out);
                    let expected = probes.iter().filter_map(|p| {
                        if let Probe::V4(_, a, b) = p {
                            Some((*a, *b))
                        } else {
                            None
                        }
                    });
                    for (o, (a, b)) in out.iter().zip(expected) {
                        let got = o.map_or(0, GroupId::get);
                        if got != a && got != b {
                            wrong.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    rounds.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let mut updates = 0u64;
    let mut x = 0x9e37_79b9u32;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let grown_before = fib.memory().v4.allocated_bytes;
    for round in 0..30u32 {
        // Flip the toggled routes.
        for t in (1..256u32).step_by(34) {
            let grp = g(61 + (round % 2 == 0) as u32);
            fib.insert(v4(BASE4 | (t << 8), 24), grp).expect("toggle");
            fib.insert(v6(BASE6 | (u128::from(t) << 80), 48), grp)
                .expect("toggle6");
            updates += 2;
        }
        // Churn that shares structure with the sentinels: covering routes (shorter than the
        // sentinels, so they never win), routes inside odd non-toggled /24s and /48s.
        for _ in 0..2000 {
            let r = rnd();
            let odd = (r % 128) * 2 + 1;
            let len = 25 + r % 8;
            let host = rnd() & ((1 << (32 - 24)) - 1);
            let p = v4((BASE4 | (odd << 8) | host) & !((1u32 << (32 - len)) - 1), len);
            if (1..256).step_by(34).any(|t| t == odd) {
                continue;
            }
            fib.insert(p, g(r % 60 + 1)).expect("churn");
            let p6 = v6(BASE6 | (u128::from(odd) << 80) | (u128::from(rnd()) << 40), 88);
            fib.insert(p6, g(r % 60 + 1)).expect("churn6");
            updates += 2;
        }
        for len in [0u32, 8, 15, 16, 17] {
            fib.insert(v4(BASE4 & !((1u64 << (32 - len)) - 1) as u32, len), g(63))
                .expect("cover");
            fib.insert(v6(BASE6 & !(u128::MAX >> len.max(1)), len), g(63))
                .expect("cover6");
            updates += 2;
        }
        // Force growth: a burst of routes elsewhere, then take them away again.
        let burst: Vec<RouteChange> = (0..20_000u32)
            .map(|i| RouteChange::Set(v4(0x0a00_0000 | (i << 8), 24), g(i % 60 + 1)))
            .collect();
        fib.apply(burst.iter().copied()).expect("burst");
        fib.apply(burst.iter().map(|c| match *c {
            RouteChange::Set(p, _) => RouteChange::Remove(p),
            other => other,
        }))
        .expect("unburst");
        updates += 40_000;
        // Remove the covering routes again (exercises fallback to shorter routes).
        for len in [17u32, 0] {
            fib.remove(v4(BASE4 & !((1u64 << (32 - len)) - 1) as u32, len))
                .expect("uncover");
            updates += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("reader thread");
    }
    let rounds = rounds.load(Ordering::Relaxed);
    eprintln!(
        "{updates} updates, {rounds} reader rounds, arrays {grown_before} -> {} bytes",
        fib.memory().v4.allocated_bytes
    );
    assert_eq!(
        wrong.load(Ordering::Relaxed),
        0,
        "readers saw answers outside the allowed set"
    );
    assert!(rounds >= 100, "readers must overlap the churn ({rounds} rounds)");
    assert!(updates > 1_000_000);
    assert!(
        fib.memory().v4.allocated_bytes > grown_before,
        "the churn was meant to grow the arrays"
    );
}
