#!/usr/bin/env bash
# xroute's main job as far as it goes today: the control process loads the full Internet table
# (../shared/data/fib/prefixes.txt.gz) as static routes and programs the engine's FIB over shared
# memory; xroutectl shows routes and the engine's own answers; the engine is killed and gets the
# whole table back; everything is torn down, also on Ctrl-C or failure.
#
# Runs in a network namespace it creates (root needed). Without root it falls back to building
# the FIB alone (`xroute-engine load-table`). No packet is sent: forwarding arrives with the data
# plane.
#
# Usage: scripts/demo.sh [--keep]   (--keep: leave it running for exploration until Enter)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked -q -p xroute-engine -p xroute-control
BIN=$PWD/target/release
SHARED=${XROUTE_SHARED:-$PWD/../shared}
TABLE=$SHARED/data/fib/prefixes.txt.gz
KEEP=${1:-}

if [[ $EUID -ne 0 ]]; then
    echo "demo: not root, so no network namespace: building the FIB alone instead" >&2
    exec "$BIN/xroute-engine" load-table --lookup 192.0.2.1 --lookup 1.1.1.1 --lookup 2001:db8::1
fi
[[ -f $TABLE ]] || { echo "demo: no table at $TABLE (set XROUTE_SHARED)" >&2; exit 1; }

ROOT=$PWD
NS=xrdemo$$
PORT=xd0
DIR=$(mktemp -d /dev/shm/xroute-demo.XXXXXX)
source "$ROOT/scripts/lib/router-ns.sh"
trap router_cleanup EXIT INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

say "topology: namespace $NS, router port xd0 (veth), 198.18.0.1/24 and 2001:db8:ff::1/64"
router_ns_up
cat > "$DIR/xroute.toml" <<EOF
[router]
run-dir = "$DIR/run"
shm-dir = "$DIR"

[[interface]]
name = "xd0"
address = ["198.18.0.1/24", "2001:db8:ff::1/64"]

# The full Internet table as static routes, via neighbours on xd0.
[[route-file]]
path = "$TABLE"
via = ["198.18.0.2", "2001:db8:ff::2"]

[[route]]
prefix = "203.0.113.0/24"
next-hop = [{ via = "198.18.0.3" }, { via = "198.18.0.4", weight = 3 }]

[[route]]
prefix = "192.0.2.0/24"
blackhole = true
EOF
export XROUTE_SOCKET=$DIR/run/default/control.sock
CTL=$BIN/xroutectl

progress() {  # $1: when the work started (date +%s.%N)
    python3 - "$CTL" "$1" <<'EOF'
import json, subprocess, sys, time
ctl = sys.argv[1]
t0 = float(sys.argv[2])
while True:
    s = json.loads(subprocess.run([ctl, "--json", "fib", "stats"], capture_output=True, check=True).stdout)
    n = s["routes_v4"] + s["routes_v6"]
    want = s["rib_routes_v4"] + s["rib_routes_v6"]
    dt = time.time() - t0
    sys.stdout.write(f"\r  {dt:5.2f} s  RIB {want:>8} routes   FIB {n:>8} routes   engine {s['engine_state']:<16}")
    sys.stdout.flush()
    if s["engine_state"] == "in-sync" and s["queued"] == 0 and s["applied_seq"] >= s["produced_seq"] and want > 0:
        print(f"\n  programmed {n} routes in {dt:.2f} s ({n / max(dt, 1e-9) / 1e6:.2f} M routes/s)")
        break
    if dt > 120:
        sys.exit("demo: the engine did not catch up within 120 s")
    time.sleep(0.1)
EOF
}

say "start xroute-engine (FIB writer; no AF_XDP ports yet) and xroute-control (reads the table)"
start_engine
T0=$(date +%s.%N)
start_control
progress "$T0"

say "what is programmed"
run "$CTL" fib stats
run "$CTL" interfaces
run "$CTL" route show --protocol connected
run "$CTL" route show 203.0.113.0/24
run "$CTL" route show 1.1.1.0/24

say "the engine's own answers (prefix, next hop, port, MAC: resolved by ARP/ND once the data plane runs)"
run "$CTL" fib lookup 1.1.1.1 8.8.8.8 2a00:1450:4001::1 203.0.113.7 192.0.2.1 198.18.0.9 240.0.0.1

say "a runtime static route, then gone again"
run "$CTL" route add 198.51.100.0/24 via 198.18.0.5
run "$CTL" fib wait >/dev/null
run "$CTL" fib lookup 198.51.100.1
run "$CTL" route del 198.51.100.0/24

say "kill -9 the engine and start a new one: the control process replays the whole table"
kill -9 "$ENGINE_PID"; wait "$ENGINE_PID" 2>/dev/null || true
T0=$(date +%s.%N)
start_engine
progress "$T0"

if [[ $KEEP == --keep ]]; then
    say "running: try  XROUTE_SOCKET=$XROUTE_SOCKET $CTL route show --help ; press Enter to stop"
    read -r _
fi
say "stop (SIGTERM): both exit cleanly, the namespace and files are removed"
