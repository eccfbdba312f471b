#!/usr/bin/env bash
# Control-plane benchmark: the full real table (1.06M routes) from xroute-control into the
# engine's FIB, end to end, with the Linux kernel's own FIB as the baseline in the same run.
#
#   sudo bash scripts/bench-control.sh            # RUNS=5 by default
#   RUNS=9 BASELINE_RUNS=3 sudo -E bash scripts/bench-control.sh
#
# Everything runs in a network namespace this script creates and always removes; no packet is
# sent. Per run it measures:
#   load      `xroutectl route import TABLE --wait`: file read, RIB, deltas, engine applied
#   change    the same import with another gateway: 1.06M route replacements (delta rate)
#   replay    kill -9 the engine, restart it, until the control process has replayed the table
#   rss       resident memory of xroute-control with the table in its RIB
#   sweep     stop xroute-control, start it with no routes: the engine removes 1.06M routes
#   startup   start xroute-control with the table in a [[route-file]]: until the engine applied it
#   rss       (also) resident and peak memory of xroute-control after that start
# and for the baseline: `ip -batch` adding the same routes to a namespace's kernel FIB.
set -euo pipefail

RUNS=${RUNS:-5}
BASELINE_RUNS=${BASELINE_RUNS:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${XROUTE_SHARED:-$ROOT/../shared}
TABLE=${TABLE:-$SHARED/data/fib/prefixes.txt.gz}

if [[ $EUID -ne 0 ]]; then
    echo "bench-control: needs root (it creates a network namespace)" >&2
    exit 1
fi
[[ -f $TABLE ]] || { echo "bench-control: no table at $TABLE (set TABLE or XROUTE_SHARED)" >&2; exit 1; }

cd "$ROOT"
cargo build --release --locked -q -p xroute-control -p xroute-engine
BIN=$ROOT/target/release

NS=xrbench$$
PORT=xb0
DIR=$(mktemp -d /dev/shm/xroute-bench.XXXXXX)
source "$ROOT/scripts/lib/router-ns.sh"
trap 'router_cleanup; ip netns del "${NS}k" 2>/dev/null || true' EXIT INT TERM

router_ns_up
cat > "$DIR/xroute.toml" <<EOF
[router]
run-dir = "$DIR/run"
shm-dir = "$DIR"

[[interface]]
name = "xb0"
address = ["198.18.0.1/24", "2001:db8:ff::1/64"]
EOF
cp "$DIR/xroute.toml" "$DIR/xroute-table.toml"
printf '\n[[route-file]]\npath = "%s"\nvia = ["198.18.0.2", "2001:db8:ff::2"]\n' "$TABLE" >>"$DIR/xroute-table.toml"
export XROUTE_SOCKET=$DIR/run/default/control.sock
CTL="$BIN/xroutectl"

now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.4f}')" "$1" "$2"; }
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }

ROUTES=$(zcat -f "$TABLE" | grep -c .)
RESULTS=$DIR/results.txt
: > "$RESULTS"
start_engine
start_control
$CTL fib wait --timeout 60 >/dev/null

for run in $(seq 1 "$RUNS"); do
    load=$($CTL --json route import "$TABLE" --via 198.18.0.2 --via 2001:db8:ff::2 --wait --timeout 120 | json_field applied_seconds)
    change=$($CTL --json route import "$TABLE" --via 198.18.0.3 --via 2001:db8:ff::3 --wait --timeout 120 | json_field applied_seconds)
    rss_kib=$(awk '/^VmRSS/ {print $2}' "/proc/$CONTROL_PID/status")
    kill -9 "$ENGINE_PID"; wait "$ENGINE_PID" 2>/dev/null || true
    t0=$(now)
    start_engine
    $CTL fib wait --timeout 120 >/dev/null
    replay=$(elapsed "$t0" "$(now)")
    kill -TERM "$CONTROL_PID"; wait "$CONTROL_PID" 2>/dev/null || true
    t0=$(now)
    start_control
    $CTL fib wait --timeout 120 >/dev/null
    sweep=$(elapsed "$t0" "$(now)")
    left=$($CTL --json fib stats | python3 -c "import json,sys; s=json.load(sys.stdin); print(s['routes_v4']+s['routes_v6'])")
    kill -TERM "$CONTROL_PID"; wait "$CONTROL_PID" 2>/dev/null || true
    t0=$(now)
    CONFIG=$DIR/xroute-table.toml start_control
    $CTL fib wait --timeout 120 >/dev/null
    startup=$(elapsed "$t0" "$(now)")
    rss2_kib=$(awk '/^VmRSS/ {print $2}' "/proc/$CONTROL_PID/status")
    hwm_kib=$(awk '/^VmHWM/ {print $2}' "/proc/$CONTROL_PID/status")
    kill -TERM "$CONTROL_PID"; wait "$CONTROL_PID" 2>/dev/null || true
    start_control
    $CTL fib wait --timeout 120 >/dev/null
    echo "run $run: load ${load}s change ${change}s replay ${replay}s sweep ${sweep}s (routes left: $left) startup ${startup}s rss ${rss_kib}/${rss2_kib}KiB peak ${hwm_kib}KiB" >&2
    echo "load $load" >>"$RESULTS"
    echo "change $change" >>"$RESULTS"
    echo "replay $replay" >>"$RESULTS"
    echo "sweep $sweep" >>"$RESULTS"
    echo "rss $rss_kib" >>"$RESULTS"
    echo "startup $startup" >>"$RESULTS"
    echo "rss_config $rss2_kib" >>"$RESULTS"
    echo "hwm_config $hwm_kib" >>"$RESULTS"
done

# Baseline: the kernel's FIB, same routes, same namespace set-up, `ip -batch` (netlink).
zcat -f "$TABLE" | tr -d '\r' | awk 'NF { if (index($1, ":")) print "route add " $1 " via 2001:db8:ff::2"; else print "route add " $1 " via 198.18.0.2" }' >"$DIR/kernel.batch"
for run in $(seq 1 "$BASELINE_RUNS"); do
    ip netns add "${NS}k"
    ip -n "${NS}k" link set lo up
    ip -n "${NS}k" link add kb0 type veth peer name kb0p
    ip -n "${NS}k" addr add 198.18.0.1/24 dev kb0
    ip -n "${NS}k" addr add 2001:db8:ff::1/64 dev kb0 nodad
    ip -n "${NS}k" link set kb0 up
    ip -n "${NS}k" link set kb0p up
    t0=$(now)
    ip -n "${NS}k" -batch "$DIR/kernel.batch"
    kernel=$(elapsed "$t0" "$(now)")
    echo "baseline run $run: kernel ${kernel}s" >&2
    echo "kernel $kernel" >>"$RESULTS"
    ip netns del "${NS}k"
done

python3 - "$RESULTS" "$ROUTES" "$RUNS" "$BASELINE_RUNS" <<'EOF'
import statistics, sys
path, routes, runs, bruns = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
vals = {}
for line in open(path):
    k, v = line.split()
    vals.setdefault(k, []).append(float(v))
def row(name, key, unit, scale=1.0, rate=False):
    xs = vals.get(key)
    if not xs:
        return
    xs = [x * scale for x in xs]
    med, lo, hi = statistics.median(xs), min(xs), max(xs)
    cell = f"{med:.2f} [{lo:.2f}-{hi:.2f}] {unit}"
    r = f"{routes / med / 1e6:.2f} [{routes / hi / 1e6:.2f}-{routes / lo / 1e6:.2f}] M routes/s" if rate else ""
    print(f"| {name} | {cell} | {r} |")
print(f"\n{routes} routes, xroute runs: {runs}, kernel baseline runs: {bruns}; median [min-max]\n")
print("| measurement | time | rate |")
print("|---|---|---|")
row("full table import, CLI to engine applied (`route import --wait`)", "load", "s", rate=True)
row("full table re-import with new gateways (1.06M replacements)", "change", "s", rate=True)
row("engine kill -9 and restart: full replay until applied", "replay", "s", rate=True)
row("control restart with no routes: engine sweeps the table", "sweep", "s", rate=True)
row("xroute-control start with the table in a route file, until applied", "startup", "s", rate=True)
row("xroute-control resident memory, table imported through the CLI", "rss", "MiB", scale=1 / 1024)
row("xroute-control resident memory, table from the route file", "rss_config", "MiB", scale=1 / 1024)
row("xroute-control peak resident memory, start with the route file", "hwm_config", "MiB", scale=1 / 1024)
row("baseline: Linux kernel FIB, `ip -batch route add` (same namespace set-up)", "kernel", "s", rate=True)
EOF
