//! The FIB writer's CPU time per single update on the full real table, read from the writer
//! thread's own scheduler statistics (`/proc/thread-self/schedstat`), so that a busy machine
//! (another build, a noisy neighbour) changes the figure far less than it changes wall-clock
//! rates. Meant for A/B comparisons of writer changes; the criterion benchmark
//! (`update/with_reader/*` in `benches/fib.rs`) stays the reference for the target.
//!
//!   cargo run --release -p xroute-benches --example fib_update_cpu              # regroup /24s
//!   MODE=25 cargo run --release -p xroute-benches --example fib_update_cpu      # add/remove /25s
//!   cargo run --release -p xroute-benches --example fib_update_cpu -- reader    # a reader thread too
//!   ROUNDS=9 WIDE=1 ...   # more rounds; the reader looks up the whole table, not the updated /24s
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use xroute_benches::{build_xroute, env_count, Table};
use xroute_engine::fib::{GroupId, Ipv4Net};

/// CPU time this thread has run, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .expect("/proc/thread-self/schedstat")
}

fn main() {
    let t = Table::load();
    let mut fib = build_xroute(&t.routes, 64);
    let mut v24: Vec<Ipv4Net> = t.v4.iter().copied().filter(|p| p.len() == 24).collect();
    // A fixed shuffle (xorshift), so that runs compare the same updates.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..v24.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v24.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v24.truncate(65_536);
    let add_25s = std::env::var("MODE").as_deref() == Ok("25");
    let rounds = env_count("ROUNDS", 7).max(1);

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let reader = (std::env::args().nth(1).as_deref() == Some("reader")).then(|| {
        let mut r = fib.handle().reader().expect("a FIB reader");
        let addrs: Vec<u32> = if std::env::var("WIDE").is_ok() {
            // One address inside every table prefix.
            t.v4.iter()
                .map(|p| {
                    p.bits() | ((p.bits().wrapping_mul(2_654_435_761) >> 8) & (u32::MAX >> p.len().min(31)))
                })
                .collect()
        } else {
            v24.iter().map(|p| p.bits() | 7).collect()
        };
        let (stop, done) = (stop.clone(), done.clone());
        std::thread::spawn(move || {
            let mut out = vec![None; 256];
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for c in addrs.chunks(256) {
                    r.view().lookup_v4_batch(c, &mut out[..c.len()]);
                    n += c.len() as u64;
                    done.store(n, Ordering::Relaxed);
                }
            }
        })
    });

    // MODE=25: a sliding window over the lower /25s of the /24s, half of them present.
    let v25: Vec<Ipv4Net> = v24
        .iter()
        .map(|p| Ipv4Net::from_bits(p.bits(), 25).expect("a /25"))
        .filter(|p| fib.get(*p).is_none())
        .collect();
    let half = v25.len() / 2;
    if add_25s {
        for p in &v25[half..] {
            fib.insert(*p, GroupId::new(5).expect("group")).expect("prefill");
        }
    }
    let (mut k, mut g) = (0usize, 1u32);
    let mut cpu = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let (t0, c0) = (Instant::now(), thread_cpu_ns());
        let n = if add_25s {
            for _ in 0..half {
                let p = v25[k % v25.len()];
                assert!(fib
                    .insert(p, GroupId::new(7).expect("group"))
                    .expect("insert")
                    .is_none());
                let q = v25[(k + half) % v25.len()];
                assert!(fib.remove(q).expect("remove").is_some());
                k += 1;
            }
            2 * half
        } else {
            for p in &v24 {
                g = g % 63 + 1;
                fib.insert(*p, GroupId::new(g).expect("group")).expect("regroup");
            }
            v24.len()
        };
        let ns = (thread_cpu_ns() - c0) as f64 / n as f64;
        eprintln!(
            "round: writer CPU {ns:.0} ns, wall {:.0} ns per update",
            t0.elapsed().as_nanos() as f64 / n as f64
        );
        cpu.push(ns);
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(h) = reader {
        h.join().expect("the reader thread panicked");
        eprintln!("reader: {} lookups", done.load(Ordering::Relaxed));
    }
    cpu.sort_by(f64::total_cmp);
    println!(
        "{}: writer CPU per update min {:.0} ns, median {:.0} ns ({rounds} rounds)",
        if add_25s {
            "add/remove /25s"
        } else {
            "regroup /24s"
        },
        cpu[0],
        cpu[cpu.len() / 2]
    );
}
