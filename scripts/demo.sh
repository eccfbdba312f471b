#!/usr/bin/env bash
# xroute's main job as far as it goes today: a router namespace between two host namespaces;
# the control process loads the full Internet table (../shared/data/fib/prefixes.txt.gz) as
# static routes through host B and programs the engine's FIB over shared memory; the engine
# forwards between its two veth ports (XDP + AF_XDP); host A pings and traceroutes through it
# (test addresses only, on B); xroutectl shows routes, the engine's answers, neighbours and
# counters; the engine is killed and gets the whole table back; everything is torn down, also on
# Ctrl-C or failure.
#
# Needs root for the namespaces. Without root it falls back to building the FIB alone
# (`xroute-engine load-table`).
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
HOST_A=xrdemo$$a
HOST_B=xrdemo$$b
EXTRA_NS="$HOST_A $HOST_B"
PORT=xd0
DIR=$(mktemp -d /dev/shm/xroute-demo.XXXXXX)
ENGINE_ARGS="--port xd0 --port xd1 --cores $(( $(nproc) - 1 ))"
source "$ROOT/scripts/lib/router-ns.sh"
trap router_cleanup EXIT INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
in_ns() { local ns=$1; shift; printf '%s$ %s\n' "$ns" "$*"; ip netns exec "$ns" "$@"; }

say "topology: host A [a0] -- [xd0] router $NS [xd1] -- [b0] host B (the table's next hop)"
# A veth link between the router and a host namespace: $1 router port, $2 host ns, $3 host port.
link() {
    ip -n "$NS" link add "$1" numtxqueues 1 numrxqueues 1 type veth peer name "$3" numtxqueues 1 numrxqueues 1
    ip -n "$NS" link set "$3" netns "$2"
    ip -n "$NS" link set "$1" up
    ip -n "$2" link set "$3" up
    # Finished checksums on the host side, as on a real wire (see README, Deploying on real NICs).
    ip netns exec "$2" ethtool -K "$3" tx off >/dev/null
}
ip netns add "$NS"; ip netns add "$HOST_A"; ip netns add "$HOST_B"
for ns in "$NS" "$HOST_A" "$HOST_B"; do ip -n "$ns" link set lo up; done
mkdir -p "$DIR/run"
link xd0 "$HOST_A" a0
link xd1 "$HOST_B" b0
ip netns exec "$NS" sysctl -qw net.ipv4.ip_forward=0   # the router's kernel does not forward
ip -n "$NS" addr add 192.0.2.1/24 dev xd0
ip -n "$NS" -6 addr add 2001:db8:1::1/64 dev xd0 nodad
ip -n "$NS" addr add 198.18.0.1/24 dev xd1
ip -n "$NS" -6 addr add 2001:db8:ff::1/64 dev xd1 nodad
ip -n "$HOST_A" addr add 192.0.2.2/24 dev a0
ip -n "$HOST_A" -6 addr add 2001:db8:1::2/64 dev a0 nodad
ip -n "$HOST_A" route add default via 192.0.2.1
ip -n "$HOST_A" -6 route add default via 2001:db8:1::1
ip -n "$HOST_B" addr add 198.18.0.2/24 dev b0
ip -n "$HOST_B" -6 addr add 2001:db8:ff::2/64 dev b0 nodad
ip -n "$HOST_B" addr add 198.51.100.1/32 dev lo
ip -n "$HOST_B" -6 addr add 2001:db8:100::1/128 dev lo
ip -n "$HOST_B" route add default via 198.18.0.1
ip -n "$HOST_B" -6 route add default via 2001:db8:ff::1
cat > "$DIR/xroute.toml" <<EOF
[router]
run-dir = "$DIR/run"
shm-dir = "$DIR"

[[interface]]
name = "xd0"
address = ["192.0.2.1/24", "2001:db8:1::1/64"]

[[interface]]
name = "xd1"
address = ["198.18.0.1/24", "2001:db8:ff::1/64"]

# The full Internet table as static routes, via host B.
[[route-file]]
path = "$TABLE"
via = ["198.18.0.2", "2001:db8:ff::2"]

# Test prefixes on host B (the only destinations the demo sends packets to).
[[route]]
prefix = "198.51.100.0/24"
via = "198.18.0.2"

[[route]]
prefix = "2001:db8:100::/48"
via = "2001:db8:ff::2"

[[route]]
prefix = "203.0.113.0/24"
next-hop = [{ via = "198.18.0.3" }, { via = "198.18.0.4", weight = 3 }]

[[route]]
prefix = "203.0.113.128/25"
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

say "start xroute-engine (XDP + AF_XDP on xd0 and xd1) and xroute-control (reads the table)"
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

grep 'AF_XDP' "$DIR/engine.log" | sed 's/^/  /'

say "packets through the router: host A pings and traceroutes host B's test addresses"
in_ns "$HOST_A" ping -c 3 -i 0.2 -W 2 198.51.100.1
in_ns "$HOST_A" ping -c 3 -i 0.2 -W 2 2001:db8:100::1
in_ns "$HOST_A" traceroute -n -q 1 -w 2 -m 4 198.51.100.1
in_ns "$HOST_A" ping -c 1 -W 2 -t 1 198.51.100.1 || true

say "the engine's own answers (prefix, next hop, port, MAC learnt through the kernel's ARP/ND)"
run "$CTL" fib lookup 1.1.1.1 8.8.8.8 2a00:1450:4001::1 203.0.113.7 203.0.113.200 192.0.2.2 240.0.0.1
run "$CTL" neighbors
run "$CTL" counters

say "a runtime static route, then gone again"
run "$CTL" route add 198.51.100.128/25 via 198.18.0.5
run "$CTL" fib wait >/dev/null
run "$CTL" fib lookup 198.51.100.200
run "$CTL" route del 198.51.100.128/25

say "kill -9 the engine and start a new one: the control process replays the whole table"
kill -9 "$ENGINE_PID"; wait "$ENGINE_PID" 2>/dev/null || true
T0=$(date +%s.%N)
start_engine
progress "$T0"
in_ns "$HOST_A" ping -c 2 -i 0.2 -W 2 198.51.100.1

if [[ $KEEP == --keep ]]; then
    say "running: try  XROUTE_SOCKET=$XROUTE_SOCKET $CTL route show --help ; press Enter to stop"
    read -r _
fi
say "stop (SIGTERM): both exit cleanly, the namespace and files are removed"
