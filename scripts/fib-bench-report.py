#!/usr/bin/env python3
"""Markdown report of the FIB benchmark (`cargo bench -p xroute-benches --bench fib`).

Reads criterion's results under target/criterion (`<id>/new/estimates.json` and
`benchmark.json`) plus the two JSON files the benchmark writes beside them
(xroute-fib-setup.json: memory and cross-check; xroute-fib-update-readers.json: what the reader
thread did during the update benchmarks) and prints:

- the CPU model and the compiler flags the build used;
- one table: median throughput (M lookups/s, M updates/s) or median time (ms, for builds),
  the 95% confidence interval of the median and the median absolute deviation in the same unit
  (criterion's MAD of the per-iteration times, which it scales by 1.4826 to estimate a standard
  deviation, converted around the median),
  the ratio to prefix-trie on the same address set, and the issue's target where it has one;
- the memory table.

Criterion stores times per iteration (ns); throughput = elements per iteration / time.
Standard library only. Usage: scripts/fib-bench-report.py [--criterion-dir DIR]
"""

import argparse
import json
import os
import platform
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Rows in report order: (group, function, parameter).
LOOKUP_IMPLS = ["xroute_single", "xroute_batch", "prefix_trie"]
ORDER = (
    [("lookup_v4", f, s) for s in ("random", "inside") for f in LOOKUP_IMPLS]
    + [("lookup_v6", f, s) for s in ("random", "inside") for f in LOOKUP_IMPLS]
    + [("build", "xroute", "full_table"), ("build", "prefix_trie", "full_table")]
    + [("update", "with_reader", v) for v in ("new_24", "new_25", "replace_group_24", "replace_group_24_nested")]
)

# The targets, for context: (kind, value) with kind "min_rate" (M/s) or "max_ms".
TARGETS = {
    ("lookup_v4", "xroute_batch", "random"): ("min_rate", 150.0),
    ("lookup_v4", "xroute_batch", "inside"): ("min_rate", 250.0),
    ("lookup_v6", "xroute_batch", "inside"): ("min_rate", 100.0),
    ("build", "xroute", "full_table"): ("max_ms", 500.0),
    ("update", "with_reader", "new_24"): ("min_rate", 1.0),
    ("update", "with_reader", "new_25"): ("min_rate", 1.0),
    ("update", "with_reader", "replace_group_24"): ("min_rate", 1.0),
    ("update", "with_reader", "replace_group_24_nested"): ("min_rate", 1.0),
}


def cpu_model():
    """'model name' from /proc/cpuinfo, with family/model/stepping (virtual machines often
    report a bare 'AMD EPYC')."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor is enough
                k, _, v = line.partition(":")
                fields[k.strip()] = v.strip()
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or "unknown"
    ids = [f"{k} {fields[k]}" for k in ("cpu family", "model", "stepping") if k in fields]
    if "hypervisor" in fields.get("flags", "").split():
        ids.append("virtual machine")
    return f"{name} ({', '.join(ids)})" if ids else name


def cpu_count():
    return os.cpu_count() or 0


def config_rustflags():
    """rustflags from .cargo/config.toml (any section), as written."""
    cfg = ROOT / ".cargo" / "config.toml"
    try:
        text = cfg.read_text()
    except OSError:
        return None
    m = re.search(r"^\s*rustflags\s*=\s*(\[[^\]]*\])", text, re.M)
    return m.group(1) if m else None


def load_results(crit):
    """{(group, function, parameter): {"elements": int|None, "estimates": dict}}."""
    out = {}
    for bench in crit.rglob("new/benchmark.json"):
        new = bench.parent
        est_path = new / "estimates.json"
        if not est_path.exists():
            continue
        b = json.loads(bench.read_text())
        key = (b.get("group_id"), b.get("function_id"), b.get("value_str"))
        thr = b.get("throughput") or {}
        elements = thr.get("Elements") if isinstance(thr, dict) else None
        out[key] = {"elements": elements, "estimates": json.loads(est_path.read_text())}
    return out


def fmt(v, digits=1):
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.{max(digits, 2)}f}"


def summarize(key, r):
    """(value, unit, ci_low, ci_high, mad) in display units; rates in M/s, builds in ms."""
    est = r["estimates"]
    med = est["median"]["point_estimate"]  # ns per iteration
    lo_t = est["median"]["confidence_interval"]["lower_bound"]
    hi_t = est["median"]["confidence_interval"]["upper_bound"]
    mad_t = est["median_abs_dev"]["point_estimate"]
    group = key[0]
    if group == "build" or not r["elements"]:
        ms = 1e-6
        return med * ms, "ms", lo_t * ms, hi_t * ms, mad_t * ms
    n = r["elements"]
    rate = lambda t: n / t * 1e3 if t > 0 else float("inf")  # M per second from ns
    unit = "M updates/s" if group == "update" else "M lookups/s"
    # A longer time is a lower rate: the interval's ends swap.
    mad_rate = (rate(med - mad_t) - rate(med + mad_t)) / 2 if med > mad_t else float("nan")
    return rate(med), unit, rate(hi_t), rate(lo_t), mad_rate


def target_text(key, value):
    t = TARGETS.get(key)
    if not t:
        return ""
    kind, goal = t
    if kind == "min_rate":
        return f">= {goal:g} M/s ({'met' if value >= goal else 'NOT met'})"
    return f"<= {goal:g} ms ({'met' if value <= goal else 'NOT met'})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    ap.add_argument("--criterion-dir", type=Path, default=target / "criterion")
    args = ap.parse_args()
    crit = args.criterion_dir
    if not crit.is_dir():
        sys.exit(f"{crit} not found: run `cargo bench -p xroute-benches --bench fib` first")
    results = load_results(crit)
    if not any(k in results for k in ORDER):
        sys.exit(f"no results of the fib benchmark under {crit}")

    print("# xroute FIB benchmark\n")
    print(f"- CPU: {cpu_model()}, {cpu_count()} logical CPUs")
    flags = config_rustflags()
    print(f"- rustflags from .cargo/config.toml: {flags or 'none'}"
          + (" (x86-64-v2: POPCNT, SSE4.2)" if flags and "x86-64-v2" in flags else ""))
    env = os.environ.get("RUSTFLAGS")
    if env is not None:
        print(f"- RUSTFLAGS is set in this shell ({env!r}); if it was set for the build too, it replaced the config's flags")
    else:
        print("- RUSTFLAGS not set in this shell (the config's flags apply if it was not set for the build either)")
    print("- profile: bench (fat LTO, codegen-units = 1); single-threaded lookups, so rates are per core")

    setup = crit / "xroute-fib-setup.json"
    setup_data = json.loads(setup.read_text()) if setup.exists() else None
    if setup_data:
        print(f"- table: {setup_data['table']}: {setup_data['ipv4_prefixes']:,} IPv4 + "
              f"{setup_data['ipv6_prefixes']:,} IPv6 prefixes, 64 synthetic next-hop groups")
        for c in setup_data.get("cross_check", []):
            print(f"- cross-check {c['set']}: xroute == prefix-trie on all {c['checked']:,} addresses; "
                  f"{c['routed']:,} ({100 * c['routed'] / max(c['checked'], 1):.1f}%) have a route")
    print()

    print("| benchmark | median | unit | 95% CI of median | MAD | xroute / prefix-trie | target |")
    print("|---|---:|---|---|---:|---:|---|")
    summary = {k: summarize(k, results[k]) for k in ORDER if k in results}
    for key in ORDER:
        if key not in summary:
            continue
        value, unit, lo, hi, mad = summary[key]
        ratio = ""
        group, func, param = key
        if group.startswith("lookup") and func != "prefix_trie":
            base = summary.get((group, "prefix_trie", param))
            if base:
                ratio = f"{value / base[0]:.2f}x"
        elif group == "build" and func == "xroute":
            base = summary.get(("build", "prefix_trie", param))
            if base:
                # Times: the ratio of speeds is prefix-trie's time over xroute's.
                ratio = f"{base[0] / value:.2f}x"
        print(f"| {'/'.join(key)} | {fmt(value)} | {unit} | [{fmt(lo)}, {fmt(hi)}] | {fmt(mad)} | {ratio} | "
              f"{target_text(key, value)} |")
    others = sorted(k for k in results if k not in summary and k[0] in {"lookup_v4", "lookup_v6", "build", "update"})
    for key in others:
        print(f"| {'/'.join(str(x) for x in key)} | (not in the report's list) | | | | | |")
    print()
    print("Ratios above 1 mean xroute is faster (for builds: prefix-trie's time / xroute's time). "
          "prefix-trie has no batched lookup: its rows are one `get_lpm` per address. "
          "MAD: criterion's median absolute deviation of the iteration times (x1.4826), in the row's unit.")

    readers = crit / "xroute-fib-update-readers.json"
    if readers.exists():
        rows = json.loads(readers.read_text())
        if rows:
            print("\nReader thread during the update benchmarks (batched lookups of the v4-inside set, 256 per view):\n")
            print("| variant | updates done | reader lookups | seconds | reader M lookups/s |")
            print("|---|---:|---:|---:|---:|")
            for r in rows:
                rate = r["reader_lookups"] / r["seconds"] / 1e6 if r["seconds"] else 0
                print(f"| {r['variant']} | {r['updates']:,} | {r['reader_lookups']:,} | {r['seconds']:.1f} | {rate:.1f} |")

    if setup_data and setup_data.get("memory"):
        print("\nMemory (lookup bytes: xroute direct array + live nodes + leaves, prefix-trie `mem_size()`; "
              "heap: live bytes the counting allocator saw loading that family, for xroute including the "
              "writer's shadow trie used for incremental updates):\n")
        print("| implementation | family | groups | routes | lookup bytes | bytes/route | allocated bytes | heap bytes | nodes | leaves |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        dash = lambda v: "-" if v is None else f"{v:,}"
        for m in setup_data["memory"]:
            print(f"| {m['implementation']} | {m['family']} | {m['groups']} | {m['routes']:,} | {m['bytes']:,} | "
                  f"{m['bytes'] / max(m['routes'], 1):.1f} | {m['allocated_bytes']:,} | {dash(m['heap_bytes'])} | "
                  f"{dash(m['nodes'])} | {dash(m['leaves'])} |")
        h = setup_data.get("xroute_heap_bytes_both_families")
        if h is not None:
            print(f"\nxroute heap for the whole 64-group FIB loaded in one apply (both families, groups, "
                  f"adjacencies, writer state): {h:,} bytes")


if __name__ == "__main__":
    main()
