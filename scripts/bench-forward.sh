#!/usr/bin/env bash
# End-to-end forwarding benchmark on veth: generator namespace -> router namespace -> sink
# namespace, 64-byte UDP to random addresses in 198.18.0.0/15, fixed duration. In one run, on
# one topology with one generator, it measures four routers:
#
#   linux-1route      the router namespace's kernel forwarding (ip_forward=1), one route
#   xroute-1route     xroute-engine + xroute-control (kernel forwarding off), the same route
#   linux-fulltable   kernel forwarding with the full real table as kernel routes (ip -batch)
#   xroute-fulltable  xroute with the same table in a [[route-file]]
#
# Linux and xroute runs alternate (ABBA) so that drift in the machine's load hits both alike.
#
#   sudo bash scripts/bench-forward.sh                  # RUNS=3 DURATION=10 by default
#   RUNS=5 DURATION=20 sudo -E bash scripts/bench-forward.sh --json
#   sudo bash scripts/bench-forward.sh --linux-only     # the two kernel baselines alone
#
# Options: --json (print the JSON document instead of the table), --linux-only.
# Environment: RUNS, DURATION (s), WARMUP (s before each window, default 2), ROUTER_CPU
# (default 1), NICE (priority of trafgen and xroute-engine, default -10), NAPI_FIFO (1: the
# NAPI threads run SCHED_FIFO, default), COALESCE_US (router port, default 50),
# SINK_COALESCE_US (default 100), OUT (results directory, default
# $CARGO_TARGET_DIR/bench-forward or target/bench-forward), TABLE, XROUTE_SHARED, ENGINE_ARGS
# (extra xroute-engine flags, e.g. "--spin-rounds 0").
#
# Topology (namespaces xrfw<pid>g, xrfw<pid>r, xrfw<pid>s, always deleted on exit):
#
#   [gen: trafgen -> gen0 =veth= gw0 (XDP: redirect to gw1) gw1] =veth= [rtr0 router rtr1]
#                                                                 =veth= [sink0 (tc: count, drop)]
#   gw1 192.0.2.2/24  rtr0 192.0.2.1/24  rtr1 198.51.100.1/24  sink0 198.51.100.2/24 (+ IPv6)
#
# The XDP "wire" (scripts/lib/bench-forward.bpf.c) makes the router receive frames that no
# socket owns, as from a NIC: sent straight into rtr0, trafgen's skbs would keep its socket's
# send buffer charged until the router's IP layer takes them, and trafgen aborts with EAGAIN as
# soon as the router falls behind (the buffer cannot be raised inside a namespace).
#
# CPUs: trafgen pins its one worker to CPU 0 itself, so CPU 0 is the generator's core; the
# wire's XDP runs there in trafgen's sendto, and the sink's NAPI thread is pinned there too.
# ROUTER_CPU (default 1) is the router's core: rtr0's receive NAPI runs as a threaded NAPI
# kthread pinned there, and xroute's one worker (--cores ROUTER_CPU) shares it with that
# kthread. The NAPI kthreads run SCHED_FIFO, as a NIC's softirq preempts tasks (without it, a
# worker polling on the same core delays the kthread until rtr0's ring overflows), and rtr0 and
# sink0 poll with interrupt moderation (napi_defer_hard_irqs + gro_flush_timeout), as NICs do,
# instead of one cross-CPU wake-up per frame. Nothing else of the benchmark runs on the router
# core, but other jobs on a shared machine may: the table shows how busy it was with them.
#
# Metrics per run (counters read before and after a DURATION-second window, after WARMUP s):
#   offered    frames trafgen put on gen0 per second (gen0 tx_packets)
#   forwarded  frames the sink received per second that were what the router should send (to
#              sink0's MAC, IPv4 UDP to 198.18.0.0/15, TTL 63): the sink's tc program drops
#              those before the IP layer and passes anything else to the sink's kernel, which
#              counts it (IPv4 InReceives) and drops it silently (blackhole route, forwarding
#              off: no ICMP goes back to the router). Unexpected frames are reported.
#   loss       (offered - forwarded) / offered; drops at rtr0's ring (router too slow) and at
#              sink0's ring (sink too slow, reported apart) are in the JSON
#   CPU/pkt    the router's CPU time over the window (sum_exec_runtime, /proc/PID/task/*/
#              schedstat) divided by forwarded frames. Linux: rtr0's NAPI kthread, which does
#              the whole forwarding path (GRO, IP receive, FIB lookup, neighbour output,
#              transmit into the sink's veth). xroute: every thread of xroute-engine plus rtr0's
#              NAPI kthread (the XDP program and the copy into the UMEM happen there, in the
#              kernel, before the worker sees the frame). Not counted for either: xroute-control
#              (idle while forwarding). The kernel has no IRQ time accounting here
#              (CONFIG_IRQ_TIME_ACCOUNTING off), so interrupts and softirqs count for whichever
#              task they interrupt: on the router core that is the router's own tasks, plus the
#              odd timer or RCU softirq.
#   An xroute worker polls: it sleeps in poll() only after --spin-rounds empty rounds (64 by
#   default), so below saturation its CPU time includes some polling of empty rings, while the
#   kthread runs only when there is work. At saturation both use the whole core.
#
# Limits: veth has AF_XDP copy mode only (every frame is copied into the UMEM on receive and
# into an skb on transmit, and each TX batch is a sendto() that runs the veth transmit path),
# so xroute is measured with work per frame that zero-copy NICs do not do. The generator and the
# sink share one core: when they cannot keep up, "offered" is below what the router could
# forward and the throughput ratio says little; CPU/pkt is then the comparison. The machine is
# shared: other builds may run on both cores, and the "other load" column shows how much.
set -euo pipefail

RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
JSON=0
XROUTE=1
for arg in "$@"; do
    case $arg in
        --json) JSON=1 ;;
        --linux-only) XROUTE=0 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-forward: unknown argument $arg (see --help)" >&2; exit 2 ;;
    esac
done

BENCH=bench-forward
# shellcheck source=scripts/lib/bench-topology.sh
source "$(dirname "$0")/lib/bench-topology.sh"
OUT=${OUT:-$TARGET/bench-forward}

[[ $RUNS =~ ^[1-9][0-9]?$ && $DURATION =~ ^[1-9][0-9]{0,2}$ && $WARMUP =~ ^[0-9]{1,2}$ ]] ||
    die "RUNS (1-99), DURATION (1-999 s) and WARMUP (0-99 s) must be small integers"
bench_check trafgen
if [[ $XROUTE -eq 1 ]]; then
    bench_build_xroute "run with --linux-only for the kernel baselines alone"
fi

bench_prepare "xrfw$$"
rm -rf "$OUT/logs"  # this run's logs only

ROUTES=$(zcat -f "$TABLE" | grep -c .)
PER_RUN=$((WARMUP + DURATION + 2))
EST=$(((2 + 2 * XROUTE) * RUNS * PER_RUN + XROUTE * 2 * RUNS * 3 + 40))
log "$((XROUTE ? 4 : 2)) configurations x $RUNS runs of ${DURATION}s (+${WARMUP}s warm-up); router on CPU $ROUTER_CPU, generator and sink on CPU $GEN_CPU"
log "estimated time: about $((EST / 60)) min $((EST % 60)) s, of which ~20-40 s install $ROUTES routes into the kernel"

# --- topology ------------------------------------------------------------------------------
bench_setup $((EST * 4 + 600))
bench_trafgen_config "$DIR/trafgen.cfg"

TG_BOUND=$((WARMUP + DURATION + 60))  # seconds: a loaded machine can stretch the window
TG_NUM=$((TG_BOUND * MAX_PPS))

# --- one measured run ------------------------------------------------------------------------
RESULTS=$DIR/results.jsonl
: >"$RESULTS"

measure() {  # $1: configuration, $2: run, $3: generator-side kthreads (comma-separated), $4...: the router's tasks
    local config=$1 run=$2 gen_tasks=$3
    shift 3
    local tglog=$DIR/logs/trafgen-$config-$run.log a b alive=1 p c
    timeout -s INT "$TG_BOUND" ip netns exec "$GEN" nice -n "$NICE" \
        trafgen --conf "$DIR/trafgen.cfg" --dev gen0 --no-sock-mem -Q -P 1 --num "$TG_NUM" >"$tglog" 2>&1 &
    GEN_PID=$!
    sleep "$WARMUP"
    sleep 0.5
    for p in $(pgrep -P "$GEN_PID" || true); do  # trafgen and its worker
        gen_tasks+=",$p"
        for c in $(pgrep -P "$p" || true); do gen_tasks+=",$c"; done
    done
    in_ns "$RTR" ethtool -S rtr0 >"$DIR/ethtool-a" 2>&1 || true
    a=$(snapshot "$gen_tasks" "$@")
    sleep "$DURATION"
    b=$(snapshot "$gen_tasks" "$@")
    in_ns "$RTR" ethtool -S rtr0 >"$DIR/ethtool-b" 2>&1 || true
    [[ -n $(pgrep -P "$GEN_PID" || true) ]] || alive=0
    stop_generator || die "cannot go on while a trafgen is still sending"
    python3 - "$config" "$run" "$alive" "$a" "$b" "$DIR/ethtool-a" "$DIR/ethtool-b" >>"$RESULTS" <<'EOF'
import json, sys
config, run, alive, a, b = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", json.loads(sys.argv[4]), json.loads(sys.argv[5])
def ethtool(path):
    out = {}
    for line in open(path):
        k, _, v = line.partition(":")
        if v.strip().isdigit():
            out[k.strip()] = int(v)
    return out
ea, eb = ethtool(sys.argv[6]), ethtool(sys.argv[7])
# rtr0's own counters (veth, ethtool -S): frames its NAPI took from the ring, redirected (xroute:
# to the AF_XDP socket) or dropped after XDP, and so on; ring overflows show only in rx_drop.
rtr0_stats = {k: eb[k] - ea.get(k, 0) for k in eb if k != "peer_ifindex" and eb[k] != ea.get(k, 0)}
dt = (b["t"] - a["t"]) / 1e9
def d(ns, dev, key):
    return b[ns][dev][key] - a[ns][dev][key]
def busy(cpu):
    total = b[cpu]["total"] - a[cpu]["total"]
    return (b[cpu]["busy"] - a[cpu]["busy"]) / total if total else 0.0
offered = d("gen", "gen0", "tx")
sink_rx = d("sink", "sink0", "rx")
# The sink's tc program drops the expected frames before the IP layer; IPv4 frames that reach
# it were not what the router should have sent (wrong MAC, TTL, header, destination).
ip_in = b["sink_ip_in"] - a["sink_ip_in"]
fwd = max(0, sink_rx - ip_in)
# CPU time per thread over the window (threads present at both ends), summed by thread name.
parts = {}
for k, v in b["router_threads"].items():
    if k in a["router_threads"]:
        name = k.split(" ", 1)[1]
        name = "napi/rtr0" if name.startswith("napi/rtr0-") else name
        parts[name] = parts.get(name, 0) + v - a["router_threads"][k]
router_ns = sum(parts.values())
gen_parts = {}
for k, v in b["gen_threads"].items():
    if k in a["gen_threads"]:
        name = k.split(" ", 1)[1]
        name = name.rsplit("-", 1)[0] if name.startswith("napi/") else name
        gen_parts[name] = gen_parts.get(name, 0) + v - a["gen_threads"][k]
router_share = router_ns / 1e9 / dt
rtr_busy = busy("rtr_cpu")
rtr_total = b["rtr_cpu"]["total"] - a["rtr_cpu"]["total"]
rtr_softirq = (b["rtr_cpu"]["softirq"] - a["rtr_cpu"]["softirq"]) / rtr_total if rtr_total else 0.0
r = {
    "config": config, "run": run, "seconds": round(dt, 3), "generator_alive": alive,
    "offered_pps": offered / dt, "forwarded_pps": fwd / dt,
    "loss": (offered - fwd) / offered if offered else None,
    "router_cpu_ns_per_packet": router_ns / fwd if fwd else None,
    "router_tasks_cpu": router_share,
    "router_core_busy": rtr_busy,
    "router_core_other_load": max(0.0, rtr_busy - router_share),
    "router_core_softirq": rtr_softirq,
    "generator_core_busy": busy("gen_cpu"),
    "generator_core_cpu_by_thread_percent": {k: round(100 * v / 1e9 / dt, 1) for k, v in sorted(gen_parts.items())},
    "rtr0_ring_drops": d("rtr", "rtr0", "rx_drop"),
    "rtr1_tx_drops": d("rtr", "rtr1", "tx_drop"),
    "sink_rx": sink_rx, "sink_unexpected_ipv4": ip_in,
    "router_cpu_by_thread_percent": {k: round(100 * v / 1e9 / dt, 1) for k, v in sorted(parts.items())},
    "rtr0_ethtool": rtr0_stats,
}
print(json.dumps(r))
ns = r["router_cpu_ns_per_packet"]
say = lambda m: print(f"bench-forward: {m}", file=sys.stderr)
say(f"{config:<16} run {run}: offered {offered / dt / 1e6:.3f} Mpps, forwarded {fwd / dt / 1e6:.3f} Mpps, "
    f"loss {100 * (r['loss'] or 0):.1f}%, router {f'{ns:.0f}' if ns else '-'} ns/packet "
    f"({100 * router_share:.0f}% of a core; other load on the router core {100 * r['router_core_other_load']:.0f}%)")
if fwd == 0:
    say("!!! WARNING: the sink received NOTHING in this run !!!")
if ip_in > 0.001 * sink_rx + 10:
    say(f"WARNING: {ip_in} of the {sink_rx} frames at the sink were not the expected ones (MAC, TTL 63, UDP to "
        "198.18.0.0/15) and are not counted as forwarded")
if fwd and gen_parts.get("napi/sink0", 0) < 0.01 * 1e9 * dt:
    say("WARNING: the sink's NAPI thread did no work: the sink ran somewhere else (the router's core?)")
if r["rtr1_tx_drops"] > 0.005 * max(fwd, 1):
    say(f"WARNING: {r['rtr1_tx_drops']} frames ({100 * r['rtr1_tx_drops'] / max(fwd, 1):.1f}%) dropped between the "
        "router and the sink (the sink's ring was full): part of the loss is the sink's")
if not alive:
    say("WARNING: trafgen ended before the window did; this run is left out")
EOF
}

run_linux() {  # $1: configuration, $2: run
    in_ns "$RTR" sysctl -qw net.ipv4.ip_forward=1
    measure "$1" "$2" "$(napi_pid sink0 "$GEN_CPU" 2),$(napi_pid gw0 "$GEN_CPU")" "$(napi_pid rtr0 "$ROUTER_CPU")"
    in_ns "$RTR" sysctl -qw net.ipv4.ip_forward=0
}

run_xroute() {  # $1: configuration, $2: run
    local elog=$DIR/logs/engine-$1-$2.log
    start_engine "$elog"
    measure "$1" "$2" "$(napi_pid sink0 "$GEN_CPU" 2),$(napi_pid gw0 "$GEN_CPU")" "$ENGINE_PID" "$(napi_pid rtr0 "$ROUTER_CPU")"
    CTL --json counters >"$DIR/logs/counters-$1-$2.json" 2>&1 || true
    CTL neighbors >"$DIR/logs/neighbors-$1-$2.txt" 2>&1 || true
    stop_engine
    grep -o 'AF_XDP [a-z-]* mode.*' "$elog" | sort -u | sed 's/^/bench-forward:   engine: /' >&2 || true
}

# One phase: the same table for both routers, runs alternating ABBA.
phase() {  # $1: linux configuration, $2: xroute configuration
    local run
    for run in $(seq 1 "$RUNS"); do
        if [[ $XROUTE -eq 0 ]]; then
            run_linux "$1" "$run"
        elif ((run % 2)); then
            run_linux "$1" "$run"
            run_xroute "$2" "$run"
        else
            run_xroute "$2" "$run"
            run_linux "$1" "$run"
        fi
    done
}

# --- phase 1: one route ----------------------------------------------------------------------
if [[ $XROUTE -eq 1 ]]; then
    write_config "$DIR/xroute-1route.toml"
    write_config "$DIR/xroute-fulltable.toml" full
    start_control "$DIR/xroute-1route.toml"
fi
phase linux-1route xroute-1route

# --- phase 2: the full table -----------------------------------------------------------------
bench_kernel_table
if [[ $XROUTE -eq 1 ]]; then
    stop_pid "$CONTROL_PID"
    start_control "$DIR/xroute-fulltable.toml"
fi
phase linux-fulltable xroute-fulltable

# --- report ----------------------------------------------------------------------------------
mkdir -p "$OUT"
cp "$RESULTS" "$OUT/runs.jsonl"
python3 - "$RESULTS" "$OUT" "$JSON" "$RUNS" "$DURATION" "$WARMUP" "$ROUTER_CPU" "$GEN_CPU" "$NICE" \
    "$ROUTES" "$KERNEL_INSTALL" "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)" \
    "$LOAD_BEFORE" <<'EOF'
import json, platform, statistics, sys, time
path, out, as_json, runs, duration, warmup, rtr_cpu, gen_cpu, nice, routes, kinstall, rev, load = sys.argv[1:]
rows = [json.loads(l) for l in open(path)]
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
order = ["linux-1route", "xroute-1route", "linux-fulltable", "xroute-fulltable"]
summary = {}
for c in order:
    rs = [r for r in rows if r["config"] == c and r["generator_alive"]]
    if not rs:
        continue
    def stats(key, scale=1.0):
        xs = [r[key] * scale for r in rs if r[key] is not None]
        return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)} if xs else None
    summary[c] = {"runs": len(rs), "offered_mpps": stats("offered_pps", 1e-6),
                  "forwarded_mpps": stats("forwarded_pps", 1e-6), "loss_percent": stats("loss", 100),
                  "router_ns_per_packet": stats("router_cpu_ns_per_packet"),
                  "router_cpu_percent": stats("router_tasks_cpu", 100),
                  "router_core_other_load_percent": stats("router_core_other_load", 100),
                  "generator_core_busy_percent": stats("generator_core_busy", 100)}
ratios = {}
for tbl in ("1route", "fulltable"):
    x, l = summary.get(f"xroute-{tbl}"), summary.get(f"linux-{tbl}")
    if x and l:
        ratios[tbl] = {
            "forwarded_xroute_over_linux": x["forwarded_mpps"]["median"] / l["forwarded_mpps"]["median"]
            if l["forwarded_mpps"]["median"] else None,
            "cpu_per_packet_linux_over_xroute": l["router_ns_per_packet"]["median"] / x["router_ns_per_packet"]["median"]
            if x["router_ns_per_packet"] and l["router_ns_per_packet"] else None,
        }
doc = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "machine": f"{model}, {platform.machine()}",
       "kernel": platform.release(), "revision": rev, "runs": int(runs), "duration_s": int(duration),
       "warmup_s": int(warmup), "router_cpu": int(rtr_cpu), "generator_cpu": int(gen_cpu), "nice": int(nice),
       "routes": int(routes), "kernel_install_s": float(kinstall), "load_before": load, "summary": summary, "ratios": ratios,
       "runs_detail": rows}
json.dump(doc, open(f"{out}/bench-forward.json", "w"), indent=1)

def cell(s, fmt="{:.3f}"):
    if not s:
        return "-"
    return f"{fmt.format(s['median'])} [{fmt.format(s['min'])}-{fmt.format(s['max'])}]"
lines = [f"{doc['date']}; {doc['machine']}; kernel {doc['kernel']}; xroute {rev}",
         f"64-byte UDP to 198.18.0.0/15, {runs} runs x {duration} s per configuration, median [min-max]; "
         f"router on CPU {rtr_cpu}, generator and sink on CPU {gen_cpu}; full table {int(routes):,} routes "
         f"(kernel install {float(kinstall):.1f} s); before the run: {load}", "",
         "| configuration | offered Mpps | forwarded Mpps | loss % | router CPU ns/packet | router CPU % | other load on router core % |",
         "|---|---:|---:|---:|---:|---:|---:|"]
for c in order:
    s = summary.get(c)
    if s:
        lines.append(f"| {c} | {s['offered_mpps']['median']:.3f} | {cell(s['forwarded_mpps'])} | {cell(s['loss_percent'], '{:.1f}')} "
                     f"| {cell(s['router_ns_per_packet'], '{:.0f}')} | {s['router_cpu_percent']['median']:.0f} "
                     f"| {s['router_core_other_load_percent']['median']:.0f} |")
lines.append("")
for tbl, r in ratios.items():
    f, c = r["forwarded_xroute_over_linux"], r["cpu_per_packet_linux_over_xroute"]
    line = f"xroute-{tbl} / linux-{tbl}: forwarded packets/s {f:.2f}x" if f else f"xroute-{tbl} / linux-{tbl}: forwarded -"
    if c:
        line += f"; packets per router CPU-second {c:.2f}x (CPU per packet: xroute {1 / c:.2f}x Linux's)"
    lines.append(line)
if "fulltable" in ratios and ratios["fulltable"]["forwarded_xroute_over_linux"]:
    f = ratios["fulltable"]["forwarded_xroute_over_linux"]
    l = summary["linux-fulltable"]["loss_percent"]["median"]
    x = summary["xroute-fulltable"]["loss_percent"]["median"]
    lines.append(f"target xroute >= 1.3x Linux with the full table: {'met' if f >= 1.3 else 'not met'} ({f:.2f}x)")
    if l < 1 and x < 1:
        lines.append("note: neither router lost more than 1%: the generator was the limit, so the forwarded "
                     "ratio says little; compare CPU per packet")
dead = [f"{r['config']} run {r['run']}" for r in rows if not r["generator_alive"]]
if dead:
    lines.append(f"left out (trafgen ended early): {', '.join(dead)}")
text = "\n".join(lines)
open(f"{out}/bench-forward.md", "w").write(text + "\n")
print(json.dumps(doc, indent=1) if as_json == "1" else text)
EOF
log "results in $OUT (bench-forward.md, bench-forward.json, runs.jsonl, logs/)"
