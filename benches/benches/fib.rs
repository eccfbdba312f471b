//! xroute's FIB against the `prefix-trie` crate on the real Internet table, in one run.
//!
//! Groups (ids chosen to make a clean table; `scripts/fib-bench-report.py` turns the results
//! into one):
//! - `lookup_v4/{xroute_single,xroute_batch,prefix_trie}/{random,inside}` and `lookup_v6/...`:
//!   lookups per second over 2^20 addresses, either uniformly random or inside a uniformly random
//!   table prefix. Both implementations see exactly the same addresses, and the setup checks that
//!   they give the same answer for every one of them before anything is timed.
//! - `build/{xroute,prefix_trie}/full_table`: loading every route of both families.
//! - `update/with_reader/*`: single route updates per second on the full table while one reader
//!   thread does batched lookups without pause.
//!
//! The memory table is printed once when the setup is built and saved, with the cross-check
//! statistics, to `target/criterion/xroute-fib-setup.json`.
//!
//! Run: `cargo bench -p xroute-benches --bench fib` (a filter such as `-- lookup_v4` works).

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::cell::{OnceCell, RefCell};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use xroute_benches::alloc::CountingAlloc;
use xroute_benches::{build_pt, build_xroute, pt_lookup_v4, pt_lookup_v6, Setup, GROUPS, SEED};
use xroute_engine::fib::{FibReader, FibView, FibWriter, GroupId, Ipv4Net, Prefix};
use xroute_engine::table::synthetic_group;

/// Counts live heap bytes for the memory table. Costs one relaxed atomic add per allocation,
/// which both implementations' build benchmarks pay alike; lookups do not allocate.
#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Lazily built setup (only when a benchmark that needs it is selected).
struct Ctx {
    setup: OnceCell<Setup>,
    /// (variant, updates, reader lookups, seconds) of each update benchmark.
    reader_stats: RefCell<Vec<(String, u64, u64, f64)>>,
}

impl Ctx {
    fn setup(&self) -> &Setup {
        self.setup.get_or_init(|| {
            let s = Setup::load();
            println!(
                "\nFIB memory on the real table. Lookup bytes: xroute direct array + live nodes + leaves, \
                 prefix-trie its mem_size(). Heap: live bytes loading the family added (xroute: includes \
                 the writer's shadow trie for incremental updates).\n"
            );
            println!("{}", s.memory_table());
            if let Some(h) = s.xroute_heap_bytes {
                println!(
                    "xroute heap added by the 64-group build (both families, incl. writer-side state and array headroom): {h} bytes\n"
                );
            }
            write_target_file("xroute-fib-setup.json", &s.extra_json());
            s
        })
    }
}

/// `target/criterion/<name>` next to criterion's own results (the bench binary runs from
/// `target/<profile>/deps/`, or `$CARGO_TARGET_DIR` if set).
fn target_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return Some(PathBuf::from(d));
    }
    let exe = std::env::current_exe().ok()?;
    exe.ancestors().nth(3).map(PathBuf::from)
}

fn write_target_file(name: &str, text: &str) {
    let Some(dir) = target_dir().map(|d| d.join("criterion")) else {
        return;
    };
    let path = dir.join(name);
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, text)) {
        eprintln!("could not write {}: {e}", path.display());
    }
}

fn acc_group(acc: u32, g: Option<GroupId>) -> u32 {
    acc.wrapping_add(g.map_or(0, GroupId::get))
}

/// What differs between the IPv4 (`u32`) and IPv6 (`u128`) lookup benchmarks. A trait rather
/// than function pointers so that every lookup is inlined, as in the data plane.
trait Family: Copy + Send + Sync + 'static {
    const GROUP: &'static str;
    fn set<'a>(s: &'a Setup, set: &str) -> &'a [Self];
    fn single(v: &FibView<'_>, a: Self) -> Option<GroupId>;
    fn batch(v: &FibView<'_>, a: &[Self], out: &mut [Option<GroupId>]);
    fn prefix_trie(s: &Setup, a: Self) -> Option<u32>;
}

impl Family for u32 {
    const GROUP: &'static str = "lookup_v4";
    fn set<'a>(s: &'a Setup, set: &str) -> &'a [u32] {
        if set == "random" {
            &s.addrs.v4_random
        } else {
            &s.addrs.v4_inside
        }
    }
    #[inline(always)]
    fn single(v: &FibView<'_>, a: u32) -> Option<GroupId> {
        v.lookup_v4(a)
    }
    #[inline(always)]
    fn batch(v: &FibView<'_>, a: &[u32], out: &mut [Option<GroupId>]) {
        v.lookup_v4_batch(a, out);
    }
    #[inline(always)]
    fn prefix_trie(s: &Setup, a: u32) -> Option<u32> {
        pt_lookup_v4(&s.pt.v4, a)
    }
}

impl Family for u128 {
    const GROUP: &'static str = "lookup_v6";
    fn set<'a>(s: &'a Setup, set: &str) -> &'a [u128] {
        if set == "random" {
            &s.addrs.v6_random
        } else {
            &s.addrs.v6_inside
        }
    }
    #[inline(always)]
    fn single(v: &FibView<'_>, a: u128) -> Option<GroupId> {
        v.lookup_v6(a)
    }
    #[inline(always)]
    fn batch(v: &FibView<'_>, a: &[u128], out: &mut [Option<GroupId>]) {
        v.lookup_v6_batch(a, out);
    }
    #[inline(always)]
    fn prefix_trie(s: &Setup, a: u128) -> Option<u32> {
        pt_lookup_v6(&s.pt.v6, a)
    }
}

fn lookup<A: Family>(c: &mut Criterion, ctx: &Ctx) {
    let mut g = c.benchmark_group(A::GROUP);
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(xroute_benches::ADDRS as u64));
    for set in ["random", "inside"] {
        g.bench_function(BenchmarkId::new("xroute_single", set), |b| {
            let s = ctx.setup();
            let a = A::set(s, set);
            let mut reader = s.fib.reader().expect("reader");
            b.iter(|| {
                let view = reader.view();
                let mut acc = 0u32;
                for &x in a {
                    acc = acc_group(acc, A::single(&view, x));
                }
                black_box(acc)
            });
        });
        g.bench_function(BenchmarkId::new("xroute_batch", set), |b| {
            let s = ctx.setup();
            let a = A::set(s, set);
            let mut reader = s.fib.reader().expect("reader");
            let mut out = vec![None; a.len()];
            b.iter(|| {
                let view = reader.view();
                A::batch(&view, a, &mut out);
                black_box(&mut out);
            });
        });
        // prefix-trie has no batched lookup: one `get_lpm` per address.
        g.bench_function(BenchmarkId::new("prefix_trie", set), |b| {
            let s = ctx.setup();
            let a = A::set(s, set);
            b.iter(|| {
                let mut acc = 0u32;
                for &x in a {
                    acc = acc.wrapping_add(A::prefix_trie(s, x).unwrap_or(0));
                }
                black_box(acc)
            });
        });
    }
    g.finish();
}

fn build(c: &mut Criterion, ctx: &Ctx) {
    let mut g = c.benchmark_group("build");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .sampling_mode(SamplingMode::Flat);
    g.bench_function(BenchmarkId::new("xroute", "full_table"), |b| {
        let r = &ctx.setup().table.routes;
        // The group definitions and the one `apply` of every route (both families); dropping
        // the FIB is not timed.
        b.iter_with_large_drop(|| build_xroute(r, GROUPS));
    });
    g.bench_function(BenchmarkId::new("prefix_trie", "full_table"), |b| {
        let r = &ctx.setup().table.routes;
        b.iter_with_large_drop(|| build_pt(r));
    });
    g.finish();
}

/// Reader thread for the update benchmarks: batches of this many addresses per view, about
/// what a forwarding worker takes from a NIC queue at a time.
const READER_BATCH: usize = 256;

/// Batched lookups of `addrs` over and over, one view per batch, until `stop`; publishes the
/// running count of lookups in `done`.
fn reader_loop(mut reader: FibReader, addrs: &[u32], stop: &AtomicBool, done: &AtomicU64) -> u32 {
    let mut out = [None; READER_BATCH];
    let mut acc = 0u32;
    let mut n = 0u64;
    'outer: loop {
        for chunk in addrs.chunks(READER_BATCH) {
            if stop.load(Ordering::Relaxed) {
                break 'outer;
            }
            let view = reader.view();
            let out = &mut out[..chunk.len()];
            view.lookup_v4_batch(chunk, out);
            acc = out.iter().fold(acc, |a, g| acc_group(a, *g));
            n += chunk.len() as u64;
            done.store(n, Ordering::Relaxed);
        }
    }
    acc
}

/// The update benchmarks' own full-table FIB (the lookup benchmarks' one stays untouched),
/// their update candidates (chosen before anything changes), and the reader thread, which runs
/// from creation until [`UpdateEnv::stop`].
struct UpdateEnv {
    fib: RefCell<FibWriter>,
    /// /24s inside 198.18.0.0/15 (the benchmarking range, absent from the table).
    new_24: Vec<Ipv4Net>,
    /// The lower /25 of random table /24s that have no such /25.
    new_25: Vec<Ipv4Net>,
    /// Random table /24s, whose group is changed; none of them is one of `new_25`'s /24s,
    /// whose leftover /25s would otherwise turn this into `replace_nested`.
    replace: Vec<Ipv4Net>,
    /// Random table /24s, each given its lower /25 before timing, whose group is changed: a
    /// re-pointed /24 with a more-specific below it, so its root has a node child.
    replace_nested: Vec<Ipv4Net>,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    reader: RefCell<Option<JoinHandle<u32>>>,
}

impl UpdateEnv {
    fn new(s: &Setup) -> Self {
        let fib = build_xroute(&s.table.routes, GROUPS);
        let mut rng = SmallRng::seed_from_u64(SEED ^ 0x0bd7);
        let mut v4_24: Vec<Ipv4Net> = s.table.v4.iter().copied().filter(|p| p.len() == 24).collect();
        v4_24.shuffle(&mut rng);
        let absent = |p: &Ipv4Net| fib.get(*p).is_none();
        let new_24: Vec<Ipv4Net> = (0..512u32)
            .map(|i| Ipv4Net::from_bits(0xc612_0000 | (i << 8), 24).expect("a /24"))
            .filter(absent)
            .collect();
        let new_25: Vec<Ipv4Net> = v4_24
            .iter()
            .map(|p| Ipv4Net::from_bits(p.bits(), 25).expect("a /25"))
            .filter(absent)
            .take(65_536)
            .collect();
        // Disjoint slices of the shuffled /24s: new_25 takes its /24s from the front, the
        // regroup variants from the back.
        let back = v4_24.len().saturating_sub(2 * 65_536);
        let replace: Vec<Ipv4Net> = v4_24[back..].iter().copied().take(65_536).collect();
        let replace_nested: Vec<Ipv4Net> = v4_24[back..].iter().copied().skip(65_536).collect();
        let under_new_25: std::collections::HashSet<u32> = new_25.iter().map(|p| p.bits()).collect();
        assert!(
            replace
                .iter()
                .chain(&replace_nested)
                .all(|p| !under_new_25.contains(&p.bits())),
            "too few table /24s for disjoint update candidates"
        );
        eprintln!(
            "update: {} new /24s in 198.18.0.0/15, {} new /25s inside table /24s, {} table /24s to regroup, \
             {} more with a /25 below; 1 reader thread doing batched lookups ({READER_BATCH} per view) of the \
             v4-inside addresses",
            new_24.len(),
            new_25.len(),
            replace.len(),
            replace_nested.len()
        );
        assert!(
            new_24.len() >= 2 && new_25.len() >= 2 && !replace.is_empty() && !replace_nested.is_empty(),
            "too few update candidates"
        );

        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let reader = fib.handle().reader().expect("a FIB reader");
        let addrs = Arc::new(s.addrs.v4_inside.clone());
        let handle = {
            let (stop, done) = (stop.clone(), done.clone());
            std::thread::spawn(move || reader_loop(reader, &addrs, &stop, &done))
        };
        // Let the reader get going before the first timing.
        while done.load(Ordering::Relaxed) == 0 && !handle.is_finished() {
            std::thread::yield_now();
        }
        Self {
            fib: RefCell::new(fib),
            new_24,
            new_25,
            replace,
            replace_nested,
            stop,
            done,
            reader: RefCell::new(Some(handle)),
        }
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.reader.borrow_mut().take() {
            black_box(h.join().expect("the reader thread panicked"));
        }
    }
}

/// One update benchmark, `update/with_reader/<name>`: each criterion iteration is one single
/// update, `op(fib, step)` with `step` counting up across all of criterion's calls (so each call
/// continues where the last stopped). `make` builds `op` (and may prepare the FIB) on first use.
fn bench_updates<F: FnMut(&mut FibWriter, u64)>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    ctx: &Ctx,
    env: &OnceCell<UpdateEnv>,
    name: &str,
    make: impl FnOnce(&UpdateEnv) -> F,
) {
    let mut make = Some(make);
    let mut op: Option<F> = None;
    let mut started: Option<(u64, Instant)> = None;
    let mut step = 0u64;
    g.bench_function(BenchmarkId::new("with_reader", name), |b| {
        let e = env.get_or_init(|| UpdateEnv::new(ctx.setup()));
        if let Some(m) = make.take() {
            op = Some(m(e));
            started = Some((e.done.load(Ordering::Relaxed), Instant::now()));
        }
        let Some(op) = op.as_mut() else {
            return;
        };
        let mut fib = e.fib.borrow_mut();
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                op(&mut fib, step);
                step += 1;
            }
            start.elapsed()
        });
    });
    if let (Some(e), Some((before, t))) = (env.get(), started) {
        let lookups = e.done.load(Ordering::Relaxed) - before;
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "update/with_reader/{name}: {step} updates; meanwhile the reader thread did {lookups} lookups \
             ({:.1} M/s over {secs:.1} s)",
            lookups as f64 / secs / 1e6
        );
        ctx.reader_stats
            .borrow_mut()
            .push((name.to_string(), step, lookups, secs));
    }
}

/// New prefixes put in and taken out through a sliding window: update `2k` inserts
/// `cands[k % n]`, update `2k + 1` removes the one inserted `n / 2` pairs earlier (the window
/// is filled here, before timing), so inserts and removes alternate and each one changes the
/// FIB (asserted).
fn insert_remove(e: &UpdateEnv, cands: &[Ipv4Net]) -> impl FnMut(&mut FibWriter, u64) {
    let cands = cands.to_vec();
    let n = cands.len() as u64;
    let w = n / 2;
    let mut fib = e.fib.borrow_mut();
    for p in &cands[(n - w) as usize..] {
        fib.insert(*p, synthetic_group(&Prefix::V4(*p), GROUPS))
            .expect("prefill");
    }
    move |fib: &mut FibWriter, step: u64| {
        let k = step / 2;
        if step % 2 == 0 {
            let p = cands[(k % n) as usize];
            let prev = fib
                .insert(p, synthetic_group(&Prefix::V4(p), GROUPS))
                .expect("insert");
            assert!(prev.is_none(), "{p} was already there");
        } else {
            let p = cands[((k + n - w) % n) as usize];
            let prev = fib.remove(p).expect("remove");
            assert!(prev.is_some(), "{p} was not there");
        }
    }
}

/// Existing routes moved to another group: update `i` sets `replace[i % n]` to the next group.
/// With `nested`, the /24s of `replace_nested`, each first given its lower /25 (untimed).
fn regroup(e: &UpdateEnv, nested: bool) -> impl FnMut(&mut FibWriter, u64) {
    let replace = if nested {
        e.replace_nested.clone()
    } else {
        e.replace.clone()
    };
    if nested {
        let mut fib = e.fib.borrow_mut();
        for p in &replace {
            let lower = Ipv4Net::from_bits(p.bits(), 25).expect("a /25");
            if fib.get(lower).is_none() {
                fib.insert(lower, synthetic_group(&Prefix::V4(lower), GROUPS))
                    .expect("prefill");
            }
        }
    }
    let mut groups: Vec<GroupId> = replace
        .iter()
        .map(|p| synthetic_group(&Prefix::V4(*p), GROUPS))
        .collect();
    let n = replace.len() as u64;
    move |fib: &mut FibWriter, step: u64| {
        let i = (step % n) as usize;
        let next = GroupId::new(groups[i].get() % GROUPS + 1).expect("a group in range");
        let prev = fib.insert(replace[i], next).expect("regroup");
        assert_eq!(prev, Some(groups[i]), "{} had another group", replace[i]);
        groups[i] = next;
    }
}

fn update(c: &mut Criterion, ctx: &Ctx) {
    let mut g = c.benchmark_group("update");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(1));
    let env = OnceCell::new();
    bench_updates(&mut g, ctx, &env, "new_24", |e| insert_remove(e, &e.new_24));
    bench_updates(&mut g, ctx, &env, "new_25", |e| insert_remove(e, &e.new_25));
    bench_updates(&mut g, ctx, &env, "replace_group_24", |e| regroup(e, false));
    bench_updates(&mut g, ctx, &env, "replace_group_24_nested", |e| regroup(e, true));
    g.finish();
    if let Some(e) = env.get() {
        e.stop();
        let rows: Vec<String> = ctx
            .reader_stats
            .borrow()
            .iter()
            .map(|(n, u, l, s)| {
                format!("{{\"variant\": \"{n}\", \"updates\": {u}, \"reader_lookups\": {l}, \"seconds\": {s:.3}}}")
            })
            .collect();
        write_target_file(
            "xroute-fib-update-readers.json",
            &format!("[\n  {}\n]\n", rows.join(",\n  ")),
        );
    }
}

fn main() {
    let ctx = Ctx {
        setup: OnceCell::new(),
        reader_stats: RefCell::new(Vec::new()),
    };
    let mut c = Criterion::default().configure_from_args();
    lookup::<u32>(&mut c, &ctx);
    lookup::<u128>(&mut c, &ctx);
    build(&mut c, &ctx);
    update(&mut c, &ctx);
    c.final_summary();
}
