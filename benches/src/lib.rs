//! Shared setup for the FIB benchmarks (`benches/fib.rs`): the real Internet table loaded into
//! xroute's FIB and into the `prefix-trie` crate's `PrefixMap` with the same prefix -> group
//! mapping, fixed-seed address sets, and a cross-check that both answer every address the same.
//!
//! Everything is deterministic: the table comes from `shared/data/fib/prefixes.txt.gz`, groups
//! from [`synthetic_group`] and addresses from a `SmallRng` with a fixed seed.

pub mod alloc;

/// A count from the environment (an example's knob, such as `ROUNDS`), or `default` when it is
/// unset or not a number.
pub fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

use ipnet::{Ipv4Net as PtV4, Ipv6Net as PtV6};
use prefix_trie::PrefixMap;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Instant;
use xroute_engine::fib::{FibView, FibWriter, GroupId, Prefix, RouteChange, TrieMemory};
use xroute_engine::table::{
    fib_with_synthetic_groups, read_prefixes, shared_path, synthetic_group, REAL_TABLE,
};

/// Next-hop groups the routes are spread over (worst case for leaf compression: neighbouring
/// prefixes get unrelated groups).
pub const GROUPS: u32 = 64;
/// Addresses per set.
pub const ADDRS: usize = 1 << 20;
/// Seed of every random choice in the benchmarks.
pub const SEED: u64 = 0x5eed_f1b0;

/// The table's prefixes and the routes built from them.
#[derive(Debug)]
pub struct Table {
    pub path: PathBuf,
    pub v4: Vec<xroute_engine::fib::Ipv4Net>,
    pub v6: Vec<xroute_engine::fib::Ipv6Net>,
    /// Every prefix (file order) with its synthetic group out of [`GROUPS`].
    pub routes: Vec<RouteChange>,
}

impl Table {
    /// Reads the real table; panics with a clear message if the shared data is missing.
    pub fn load() -> Self {
        let path = shared_path(REAL_TABLE).unwrap_or_else(|| {
            panic!("the real table {REAL_TABLE} was not found under shared/ (set XROUTE_SHARED to the folder that holds data/)")
        });
        let prefixes = read_prefixes(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut routes = Vec::with_capacity(prefixes.len());
        for p in prefixes {
            match p {
                Prefix::V4(n) => v4.push(n),
                Prefix::V6(n) => v6.push(n),
            }
            routes.push(RouteChange::Set(p, synthetic_group(&p, GROUPS)));
        }
        Self { path, v4, v6, routes }
    }
}

/// xroute's FIB with `groups` groups and every route of `routes` (whose groups must be in
/// `1..=groups`), loaded with one `apply`.
pub fn build_xroute(routes: &[RouteChange], groups: u32) -> FibWriter {
    let mut fib = fib_with_synthetic_groups(groups).expect("defining the synthetic groups");
    let n = fib.apply(routes.iter().copied()).expect("loading the table");
    assert_eq!(n, routes.len());
    fib
}

/// The same routes in the `prefix-trie` crate: one `PrefixMap` per family, value = group number.
#[derive(Debug, Default)]
pub struct PtMaps {
    pub v4: PrefixMap<PtV4, u32>,
    pub v6: PrefixMap<PtV6, u32>,
}

/// `prefix-trie`'s key for an xroute IPv4 prefix.
pub fn pt_v4(p: &xroute_engine::fib::Ipv4Net) -> PtV4 {
    PtV4::new(Ipv4Addr::from(p.bits()), p.len() as u8).expect("an IPv4 prefix length is at most 32")
}

/// `prefix-trie`'s key for an xroute IPv6 prefix.
pub fn pt_v6(p: &xroute_engine::fib::Ipv6Net) -> PtV6 {
    PtV6::new(Ipv6Addr::from(p.bits()), p.len() as u8).expect("an IPv6 prefix length is at most 128")
}

/// Builds the IPv4 map from `routes` (IPv6 routes skipped).
pub fn build_pt_v4(routes: &[RouteChange]) -> PrefixMap<PtV4, u32> {
    let mut m = PrefixMap::new();
    for r in routes {
        if let RouteChange::Set(Prefix::V4(p), g) = r {
            m.insert(pt_v4(p), g.get());
        }
    }
    m
}

/// Builds the IPv6 map from `routes` (IPv4 routes skipped).
pub fn build_pt_v6(routes: &[RouteChange]) -> PrefixMap<PtV6, u32> {
    let mut m = PrefixMap::new();
    for r in routes {
        if let RouteChange::Set(Prefix::V6(p), g) = r {
            m.insert(pt_v6(p), g.get());
        }
    }
    m
}

/// Both maps.
pub fn build_pt(routes: &[RouteChange]) -> PtMaps {
    PtMaps {
        v4: build_pt_v4(routes),
        v6: build_pt_v6(routes),
    }
}

/// `prefix-trie` longest-prefix match of one IPv4 address (as a /32 key).
#[inline]
pub fn pt_lookup_v4(m: &PrefixMap<PtV4, u32>, addr: u32) -> Option<u32> {
    m.get_lpm(&PtV4::from(Ipv4Addr::from(addr))).map(|(_, g)| *g)
}

/// `prefix-trie` longest-prefix match of one IPv6 address (as a /128 key).
#[inline]
pub fn pt_lookup_v6(m: &PrefixMap<PtV6, u32>, addr: u128) -> Option<u32> {
    m.get_lpm(&PtV6::from(Ipv6Addr::from(addr))).map(|(_, g)| *g)
}

/// The four address sets every lookup benchmark runs on.
#[derive(Debug)]
pub struct AddrSets {
    /// Uniformly random IPv4 addresses.
    pub v4_random: Vec<u32>,
    /// A uniformly random IPv4 table prefix each, host bits random.
    pub v4_inside: Vec<u32>,
    /// Uniformly random IPv6 addresses.
    pub v6_random: Vec<u128>,
    /// A uniformly random IPv6 table prefix each, host bits random.
    pub v6_inside: Vec<u128>,
}

fn host_mask_v4(len: u32) -> u32 {
    u32::MAX.checked_shr(len).unwrap_or(0)
}

fn host_mask_v6(len: u32) -> u128 {
    u128::MAX.checked_shr(len).unwrap_or(0)
}

impl AddrSets {
    /// `n` addresses per set from a fixed seed.
    pub fn new(table: &Table, n: usize) -> Self {
        let mut rng = SmallRng::seed_from_u64(SEED);
        let v4_random = (0..n).map(|_| rng.gen::<u32>()).collect();
        let v4_inside = (0..n)
            .map(|_| {
                let p = table.v4[rng.gen_range(0..table.v4.len())];
                p.bits() | (rng.gen::<u32>() & host_mask_v4(p.len()))
            })
            .collect();
        let v6_random = (0..n).map(|_| rng.gen::<u128>()).collect();
        let v6_inside = (0..n)
            .map(|_| {
                let p = table.v6[rng.gen_range(0..table.v6.len())];
                p.bits() | (rng.gen::<u128>() & host_mask_v6(p.len()))
            })
            .collect();
        Self {
            v4_random,
            v4_inside,
            v6_random,
            v6_inside,
        }
    }
}

/// How many addresses of a checked set have a route.
#[derive(Debug, Clone, Copy)]
pub struct CheckStats {
    pub checked: usize,
    pub routed: usize,
}

fn disagree(set: &str, addr: String, what: &str, x: Option<GroupId>, pt: Option<u32>) -> ! {
    panic!(
        "xroute and prefix-trie disagree on {set} address {addr} ({what}): xroute {x:?}, prefix-trie {pt:?}; \
         a comparison of two different answers would be worthless"
    )
}

/// Checks that xroute (single and batched) and `prefix-trie` give the same answer (route or not,
/// and the same group) for every address of `addrs`; panics on the first disagreement.
fn cross_check<A: Copy>(
    set: &str,
    addrs: &[A],
    single: impl Fn(A) -> Option<GroupId>,
    batched: impl Fn(&[A], &mut [Option<GroupId>]),
    prefix_trie: impl Fn(A) -> Option<u32>,
    show: impl Fn(A) -> String,
) -> CheckStats {
    let mut batch = vec![None; addrs.len()];
    batched(addrs, &mut batch);
    let mut routed = 0;
    for (&a, &b) in addrs.iter().zip(&batch) {
        let x = single(a);
        let p = prefix_trie(a);
        if x.map(GroupId::get) != p {
            disagree(set, show(a), "single lookup", x, p);
        }
        if b != x {
            disagree(set, show(a), "batched lookup", b, p);
        }
        routed += usize::from(x.is_some());
    }
    CheckStats {
        checked: addrs.len(),
        routed,
    }
}

/// [`cross_check`] for IPv4.
pub fn cross_check_v4(set: &str, view: &FibView<'_>, pt: &PrefixMap<PtV4, u32>, addrs: &[u32]) -> CheckStats {
    cross_check(
        set,
        addrs,
        |a| view.lookup_v4(a),
        |a, o| view.lookup_v4_batch(a, o),
        |a| pt_lookup_v4(pt, a),
        |a| Ipv4Addr::from(a).to_string(),
    )
}

/// [`cross_check`] for IPv6.
pub fn cross_check_v6(
    set: &str,
    view: &FibView<'_>,
    pt: &PrefixMap<PtV6, u32>,
    addrs: &[u128],
) -> CheckStats {
    cross_check(
        set,
        addrs,
        |a| view.lookup_v6(a),
        |a, o| view.lookup_v6_batch(a, o),
        |a| pt_lookup_v6(pt, a),
        |a| Ipv6Addr::from(a).to_string(),
    )
}

/// One row of the memory table.
#[derive(Debug, Clone)]
pub struct MemRow {
    pub implementation: &'static str,
    pub family: &'static str,
    pub groups: u32,
    pub routes: usize,
    /// The lookup structure's own figure: xroute `TrieMemory::total_bytes`, prefix-trie
    /// `PrefixMap::mem_size`.
    pub bytes: usize,
    /// The arrays as allocated (xroute `TrieMemory::allocated_bytes`: including free blocks and
    /// growth headroom; prefix-trie's `mem_size` already counts capacities, so the same figure).
    pub allocated_bytes: usize,
    pub nodes: Option<usize>,
    pub leaves: Option<usize>,
    /// Live heap bytes loading this family added, by the counting allocator (`None` when the
    /// allocator is not installed). For xroute this includes the writer's shadow trie (the
    /// control-plane copy that incremental updates work on), not only what lookups read.
    pub heap_bytes: Option<usize>,
}

/// Everything the lookup benchmarks share, built once.
#[derive(Debug)]
pub struct Setup {
    pub table: Table,
    pub fib: FibWriter,
    pub pt: PtMaps,
    pub addrs: AddrSets,
    pub memory: Vec<MemRow>,
    /// (set name, stats) of the cross-check.
    pub checks: Vec<(&'static str, CheckStats)>,
    /// Live heap bytes the xroute build added (both families, including writer-side state).
    pub xroute_heap_bytes: Option<usize>,
}

fn heap_delta(before: usize) -> Option<usize> {
    let now = alloc::live_bytes();
    (now > 0).then(|| now.saturating_sub(before))
}

/// Memory rows for xroute with `groups` groups: a FIB loaded family by family (one `apply` each)
/// so that the counting allocator can attribute heap bytes to each family.
fn xroute_memory_rows(routes: &[RouteChange], groups: u32) -> Vec<MemRow> {
    let family = |v4: bool| move |r: &&RouteChange| matches!(r, RouteChange::Set(Prefix::V4(_), _)) == v4;
    let mut fib = fib_with_synthetic_groups(groups).expect("defining the synthetic groups");
    let h = alloc::live_bytes();
    fib.apply(routes.iter().filter(family(true)).copied())
        .expect("loading IPv4");
    let heap_v4 = heap_delta(h);
    let h = alloc::live_bytes();
    fib.apply(routes.iter().filter(family(false)).copied())
        .expect("loading IPv6");
    let heap_v6 = heap_delta(h);
    let m = fib.memory();
    let row = |family, t: TrieMemory, routes, heap_bytes| MemRow {
        implementation: "xroute",
        family,
        groups,
        routes,
        bytes: t.total_bytes(),
        allocated_bytes: t.allocated_bytes,
        nodes: Some(t.nodes),
        leaves: Some(t.leaves),
        heap_bytes,
    };
    vec![
        row("IPv4", m.v4, fib.len_v4(), heap_v4),
        row("IPv6", m.v6, fib.len_v6(), heap_v6),
    ]
}

impl Setup {
    /// Loads the table, builds both implementations, makes the address sets and cross-checks
    /// them (panics on any disagreement).
    pub fn load() -> Self {
        let t0 = Instant::now();
        let table = Table::load();
        eprintln!(
            "setup: read {} IPv4 + {} IPv6 prefixes from {} in {:.2?}",
            table.v4.len(),
            table.v6.len(),
            table.path.display(),
            t0.elapsed()
        );

        let h = alloc::live_bytes();
        let t = Instant::now();
        let fib = build_xroute(&table.routes, GROUPS);
        let xroute_heap_bytes = heap_delta(h);
        eprintln!("setup: xroute FIB built in {:.2?}", t.elapsed());

        let mut memory = xroute_memory_rows(&table.routes, GROUPS);
        let m = fib.memory();
        if [m.v4.total_bytes(), m.v6.total_bytes()] != [memory[0].bytes, memory[1].bytes] {
            eprintln!(
                "setup: note: the FIB loaded in one apply uses {} + {} bytes, the one loaded family by family {} + {}",
                m.v4.total_bytes(),
                m.v6.total_bytes(),
                memory[0].bytes,
                memory[1].bytes
            );
        }
        // Best case for leaf compression: every route in one group.
        let one: Vec<RouteChange> = table
            .routes
            .iter()
            .map(|r| match *r {
                RouteChange::Set(p, _) => RouteChange::Set(p, GroupId::MIN),
                other => other,
            })
            .collect();
        memory.extend(xroute_memory_rows(&one, 1));

        let t = Instant::now();
        let h = alloc::live_bytes();
        let v4 = build_pt_v4(&table.routes);
        let heap_v4 = heap_delta(h);
        let h = alloc::live_bytes();
        let v6 = build_pt_v6(&table.routes);
        let heap_v6 = heap_delta(h);
        eprintln!("setup: prefix-trie maps built in {:.2?}", t.elapsed());
        memory.push(MemRow {
            implementation: "prefix-trie",
            family: "IPv4",
            groups: GROUPS,
            routes: v4.len(),
            bytes: v4.mem_size(),
            allocated_bytes: v4.mem_size(),
            nodes: None,
            leaves: None,
            heap_bytes: heap_v4,
        });
        memory.push(MemRow {
            implementation: "prefix-trie",
            family: "IPv6",
            groups: GROUPS,
            routes: v6.len(),
            bytes: v6.mem_size(),
            allocated_bytes: v6.mem_size(),
            nodes: None,
            leaves: None,
            heap_bytes: heap_v6,
        });
        let pt = PtMaps { v4, v6 };

        let addrs = AddrSets::new(&table, ADDRS);
        let t = Instant::now();
        let mut reader = fib.reader().expect("a FIB reader");
        let view = reader.view();
        let checks = vec![
            (
                "v4 random",
                cross_check_v4("v4 random", &view, &pt.v4, &addrs.v4_random),
            ),
            (
                "v4 inside",
                cross_check_v4("v4 inside", &view, &pt.v4, &addrs.v4_inside),
            ),
            (
                "v6 random",
                cross_check_v6("v6 random", &view, &pt.v6, &addrs.v6_random),
            ),
            (
                "v6 inside",
                cross_check_v6("v6 inside", &view, &pt.v6, &addrs.v6_inside),
            ),
        ];
        drop(reader);
        for (name, c) in &checks {
            eprintln!(
                "setup: cross-check {name}: xroute (single and batched) == prefix-trie on all {} addresses; {} ({:.1}%) have a route",
                c.checked,
                c.routed,
                100.0 * c.routed as f64 / c.checked as f64
            );
        }
        eprintln!(
            "setup: cross-check took {:.2?}; whole setup {:.2?}",
            t.elapsed(),
            t0.elapsed()
        );

        Self {
            table,
            fib,
            pt,
            addrs,
            memory,
            checks,
            xroute_heap_bytes,
        }
    }

    /// The memory table as Markdown.
    pub fn memory_table(&self) -> String {
        let mut s = String::from(
            "| implementation | family | groups | routes | lookup bytes | bytes/route | allocated bytes | nodes | leaves | heap bytes (counting allocator) |\n\
             |---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        let opt = |v: Option<usize>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
        for r in &self.memory {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {:.1} | {} | {} | {} | {} |\n",
                r.implementation,
                r.family,
                r.groups,
                r.routes,
                r.bytes,
                r.bytes as f64 / r.routes.max(1) as f64,
                r.allocated_bytes,
                opt(r.nodes),
                opt(r.leaves),
                opt(r.heap_bytes),
            ));
        }
        s
    }

    /// Memory rows and cross-check stats as JSON (for `scripts/fib-bench-report.py`).
    pub fn extra_json(&self) -> String {
        let opt = |v: Option<usize>| v.map_or_else(|| "null".to_string(), |v| v.to_string());
        let rows: Vec<String> = self
            .memory
            .iter()
            .map(|r| {
                format!(
                    "{{\"implementation\": \"{}\", \"family\": \"{}\", \"groups\": {}, \"routes\": {}, \"bytes\": {}, \
                     \"allocated_bytes\": {}, \"nodes\": {}, \"leaves\": {}, \"heap_bytes\": {}}}",
                    r.implementation,
                    r.family,
                    r.groups,
                    r.routes,
                    r.bytes,
                    r.allocated_bytes,
                    opt(r.nodes),
                    opt(r.leaves),
                    opt(r.heap_bytes)
                )
            })
            .collect();
        let checks: Vec<String> = self
            .checks
            .iter()
            .map(|(n, c)| {
                format!(
                    "{{\"set\": \"{n}\", \"checked\": {}, \"routed\": {}}}",
                    c.checked, c.routed
                )
            })
            .collect();
        format!(
            "{{\n  \"table\": \"{}\",\n  \"ipv4_prefixes\": {},\n  \"ipv6_prefixes\": {},\n  \"xroute_heap_bytes_both_families\": {},\n  \
             \"memory\": [\n    {}\n  ],\n  \"cross_check\": [\n    {}\n  ]\n}}\n",
            self.table.path.display(),
            self.table.v4.len(),
            self.table.v6.len(),
            opt(self.xroute_heap_bytes),
            rows.join(",\n    "),
            checks.join(",\n    ")
        )
    }
}
