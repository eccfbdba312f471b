#!/usr/bin/env bash
# xroute's main job: a router learning the full Internet table over BGP and forwarding packets.
#
# Four network namespaces, joined by veth pairs (the machine's own interfaces are never touched):
#
#   [src a0] ===== [xd0  router  xd1] ===== [b0 sink: a bridge br0 ] ===== [p0 peer: BIRD 2]
#   192.0.2.2      192.0.2.1  198.18.0.1    198.18.0.2 (+ test hosts)      198.18.0.3, AS 64496
#
# The router runs xroute-engine (XDP + AF_XDP on xd0 and xd1; its kernel does not forward) and
# xroute-control (RIB, BGP). The peer, BIRD 2, announces the real table from
# ../shared/data/fib (about 1.06M prefixes) plus the test prefixes, with the sink as next hop
# (third-party next hop on the shared LAN, as a route server does). The demo shows the table
# arriving (routes received, accepted, programmed, rate), ping and traceroute through the
# router, a bounded burst of UDP from src to the sink with live per-port rates and drop reasons
# (one packet in 16 has TTL 1, one in 16 goes to a blackhole route, to show drops being
# counted), a summary, and the engine being killed and given the whole table again. Everything
# is torn down at the end, also on Ctrl-C or failure. Packets only ever go to test ranges.
#
# Needs root for the namespaces. Without root it falls back to building the FIB alone
# (`xroute-engine load-table`).
#
# Usage: scripts/demo.sh [--duration S] [--rate PPS] [--size BYTES] [--ipv6] [--keep]
#   --duration S    seconds of traffic in the burst (default 5, at most 60)
#   --rate PPS      offered packets per second (default 100000, at most 2000000)
#   --size BYTES    Ethernet frame size including the FCS, 64 to 1518 (default 64; IPv6 >= 66)
#   --ipv6          send the burst over IPv6 instead of IPv4
#   --keep          leave everything running for exploration with xroutectl until Enter
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '/^# Usage:/,/^# *--keep/p' "$0" | sed 's/^# \{0,1\}//'; }
DURATION=5 RATE=100000 SIZE=64 FAMILY=4 KEEP=0
while (($#)); do
    case $1 in
        --duration) DURATION=${2:-}; shift 2 ;;
        --rate) RATE=${2:-}; shift 2 ;;
        --size) SIZE=${2:-}; shift 2 ;;
        --ipv6) FAMILY=6; shift ;;
        --keep) KEEP=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "demo: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
int_in() {  # name value min max
    [[ $2 =~ ^[0-9]+$ ]] && (($2 >= $3 && $2 <= $4)) || { echo "demo: --$1 must be an integer from $3 to $4, not '$2'" >&2; exit 2; }
}
int_in duration "$DURATION" 1 60
int_in rate "$RATE" 1 2000000
int_in size "$SIZE" 64 1518
((FAMILY == 4 || SIZE >= 66)) || SIZE=66

bash scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked -q -p xroute-engine -p xroute-control
BIN=$PWD/target/release
SHARED=${XROUTE_SHARED:-$PWD/../shared}
TABLE=$SHARED/data/fib/prefixes.txt.gz

if [[ $EUID -ne 0 ]]; then
    echo "demo: not root, so no network namespace: building the FIB alone instead" >&2
    exec "$BIN/xroute-engine" load-table --lookup 192.0.2.1 --lookup 1.1.1.1 --lookup 2001:db8::1
fi
[[ -f $TABLE ]] || { echo "demo: no table at $TABLE (set XROUTE_SHARED)" >&2; exit 1; }
for tool in bird birdc trafgen traceroute python3; do
    command -v "$tool" >/dev/null || { echo "demo: $tool missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done

ROOT=$PWD
NS=xrdemo$$
SRC=xrdemo$$src
SINK=xrdemo$$sink
PEER=xrdemo$$peer
EXTRA_NS="$SRC $SINK $PEER"
PORT=xd0
DIR=$(mktemp -d /dev/shm/xroute-demo.XXXXXX)
ENGINE_ARGS="--port xd0 --port xd1 --cores $(($(nproc) - 1))"
BIRD_PID=
TG_PID=
source "$ROOT/scripts/lib/router-ns.sh"

# Stops a process and every descendant by pid (trafgen forks a worker per CPU).
stop_tree() {
    local pid=$1 kids c
    [[ -n $pid ]] || return 0
    kids=$(pgrep -P "$pid" 2>/dev/null || true)
    for c in $kids; do stop_tree "$c"; done
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if ((rc != 0)) && [[ -d $DIR ]]; then
        for f in engine.log control.log bird/out trafgen.log; do
            [[ -s $DIR/$f ]] && { echo "--- last lines of $f:"; tail -5 "$DIR/$f"; } >&2
        done
    fi
    stop_tree "$TG_PID"
    stop_tree "$BIRD_PID"
    router_cleanup
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
in_ns() { local ns=$1; shift; printf '%s$ %s\n' "${ns#xrdemo"$$"}" "$*"; ip netns exec "$ns" "$@"; }
ns_stat() { ip netns exec "$1" cat "/sys/class/net/$2/statistics/$3"; }

say "topology: src [a0] -- [xd0] router [xd1] -- [b0] sink (bridge) [bp] -- [p0] BGP peer (BIRD 2)"
# A veth pair between namespaces: $1 ns, $2 its end, $3 other ns, $4 its end.
veth() {
    ip -n "$1" link add "$2" numtxqueues 1 numrxqueues 1 type veth peer name "$4" numtxqueues 1 numrxqueues 1
    ip -n "$1" link set "$4" netns "$3"
    ip -n "$1" link set "$2" up
    ip -n "$3" link set "$4" up
}
for ns in "$NS" "$SRC" "$SINK" "$PEER"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
done
mkdir -p "$DIR/run" "$DIR/bird"
veth "$NS" xd0 "$SRC" a0
veth "$NS" xd1 "$SINK" b0
veth "$SINK" bp "$PEER" p0
# Finished checksums on the hosts' side, as on a real wire (see README, Deploying on real NICs).
for pair in "$SRC a0" "$SINK b0" "$PEER p0"; do
    # shellcheck disable=SC2086 # "ns dev"
    ip netns exec ${pair% *} ethtool -K ${pair#* } tx off >/dev/null
done
ip -n "$SINK" link add br0 type bridge
ip -n "$SINK" link set b0 master br0
ip -n "$SINK" link set bp master br0
ip -n "$SINK" link set br0 up
ip netns exec "$NS" sysctl -qw net.ipv4.ip_forward=0 # the router's kernel does not forward
ip -n "$NS" addr add 192.0.2.1/24 dev xd0
ip -n "$NS" -6 addr add 2001:db8:1::1/64 dev xd0 nodad
ip -n "$NS" addr add 198.18.0.1/24 dev xd1
ip -n "$NS" -6 addr add 2001:db8:ff::1/64 dev xd1 nodad
ip -n "$SRC" addr add 192.0.2.2/24 dev a0
ip -n "$SRC" -6 addr add 2001:db8:1::2/64 dev a0 nodad
ip -n "$SRC" route add default via 192.0.2.1
ip -n "$SRC" -6 route add default via 2001:db8:1::1
ip -n "$SINK" addr add 198.18.0.2/24 dev br0
ip -n "$SINK" -6 addr add 2001:db8:ff::2/64 dev br0 nodad
ip -n "$SINK" addr add 198.51.100.1/32 dev lo
ip -n "$SINK" -6 addr add 2001:db8:100::1/128 dev lo
ip -n "$SINK" route add default via 198.18.0.1
ip -n "$SINK" -6 route add default via 2001:db8:ff::1
# The burst's destinations end here, silently (no ICMP back into the router).
ip -n "$SINK" route add blackhole 198.19.0.0/16
ip -n "$SINK" -6 route add blackhole 2001:db8:ffff::/48
ip -n "$PEER" addr add 198.18.0.3/24 dev p0
ip -n "$PEER" -6 addr add 2001:db8:ff::3/64 dev p0 nodad

say "the BGP peer (BIRD 2, AS 64496) loads the table: $TABLE"
{
    echo "router id 198.18.0.3;"
    echo "log \"$DIR/bird/bird.log\" { warning, error, fatal };"
    echo "protocol device {}"
    echo "protocol static t4 { ipv4;"
    echo "  route 198.51.100.0/24 blackhole; route 198.19.0.0/16 blackhole;"
    zcat -f "$TABLE" | tr -d '\r' | grep '\.' | sed 's/.*/  route & blackhole;/'
    echo "}"
    echo "protocol static t6 { ipv6;"
    echo "  route 2001:db8:100::/48 blackhole; route 2001:db8:ffff::/48 blackhole;"
    zcat -f "$TABLE" | tr -d '\r' | grep ':' | sed 's/.*/  route & blackhole;/'
    echo "}"
    cat <<EOF
# Toward the router: the sink is the next hop of everything (a third-party next hop on the LAN).
protocol bgp uplink {
  disabled;
  local 198.18.0.3 as 64496; neighbor 198.18.0.1 as 64500;
  hold time 90; connect retry time 1;
  ipv4 { import none; export all; next hop address 198.18.0.2; };
  ipv6 { import none; export all; next hop address 2001:db8:ff::2; };
}
EOF
} >"$DIR/bird/bird.conf"
ip netns exec "$PEER" bird -f -c "$DIR/bird/bird.conf" -s "$DIR/bird/ctl" -P "$DIR/bird/pid" >"$DIR/bird/out" 2>&1 &
BIRD_PID=$!
BIRDC=(birdc -s "$DIR/bird/ctl")

cat >"$DIR/xroute.toml" <<EOF
[router]
run-dir = "$DIR/run"
shm-dir = "$DIR"

[[interface]]
name = "xd0"
address = ["192.0.2.1/24", "2001:db8:1::1/64"]

[[interface]]
name = "xd1"
address = ["198.18.0.1/24", "2001:db8:ff::1/64"]

# Static routes beside BGP's: they drop what the burst sends to them.
[[route]]
prefix = "203.0.113.0/24"
blackhole = true

[[route]]
prefix = "2001:db8:0:1113::/64"
blackhole = true

[bgp]
enabled = true
local-as = 64500
connect-retry = 1

[[bgp.neighbor]]
address = "198.18.0.3"
remote-as = 64496
description = "upstream (BIRD)"
import = "all"        # eBGP needs an explicit policy (RFC 8212)
export = "none"
families = ["ipv4-unicast", "ipv6-unicast"]
EOF
export XROUTE_SOCKET=$DIR/run/default/control.sock
CTL=$BIN/xroutectl

say "start xroute-engine (XDP + AF_XDP on xd0 and xd1) and xroute-control (RIB, BGP)"
start_engine
for _ in $(seq 1 200); do grep -q 'forwarding on' "$DIR/engine.log" && break; sleep 0.1; done
grep -q 'forwarding on' "$DIR/engine.log" || { echo "demo: the engine did not start forwarding" >&2; exit 1; }
start_control
grep 'AF_XDP' "$DIR/engine.log" | sed 's/^/  /' || true
run "$CTL" bgp summary

printf '  waiting for BIRD to load the table'
for _ in $(seq 1 600); do
    "${BIRDC[@]}" show protocols t6 2>/dev/null | grep -q ' up ' &&
        "${BIRDC[@]}" show protocols t4 2>/dev/null | grep -q ' up ' && break
    kill -0 "$BIRD_PID" 2>/dev/null || { echo; echo "demo: BIRD exited: $(tail -3 "$DIR/bird/out")" >&2; exit 1; }
    printf '.'
    sleep 0.5
done
EXPECTED=$("${BIRDC[@]}" show route count | awk '/routes for/ {n += $1} END {print n + 0}')
echo " $EXPECTED routes"
((EXPECTED > 0)) || { echo "demo: BIRD has no routes: $(tail -3 "$DIR/bird/out")" >&2; exit 1; }

# Polls the control process until BGP accepted $1 routes and the engine's FIB holds them all,
# with a live line: session state, routes received / accepted / in the FIB, rate.
table_progress() {
    python3 - "$CTL" "$1" <<'PYEOF'
import json, subprocess, sys, time
ctl, expected = sys.argv[1], int(sys.argv[2])
def ask(*args):
    return json.loads(subprocess.run([ctl, "--json", *args], capture_output=True, check=True).stdout)
t0 = time.time()
up_at = None
last = (t0, 0)
rate = 0.0
while True:
    b, f = ask("bgp", "summary"), ask("fib", "stats")
    n = b["neighbors"][0]
    now = time.time()
    fib = f["routes_v4"] + f["routes_v6"]
    if n["state"] == "Established" and up_at is None:
        up_at = now
    if now - last[0] >= 0.5:
        rate = (fib - last[1]) / (now - last[0])
        last = (now, fib)
    sys.stdout.write(f"\r  {now - t0:5.1f} s  {n['state']:<11}  received {n['received']:>9,}  "
                     f"accepted {n['accepted']:>9,}  FIB {fib:>9,} routes  {rate / 1e3:7.0f} k/s ")
    sys.stdout.flush()
    synced = f["engine_state"] == "in-sync" and f["queued"] == 0 and f["applied_seq"] >= f["produced_seq"]
    if n["accepted"] >= expected and synced and f["rib_routes_v4"] + f["rib_routes_v6"] <= fib:
        t = now - (up_at or t0)
        print(f"\n  table learnt and programmed: {n['accepted']:,} BGP routes, {fib:,} in the FIB, "
              f"{t:.2f} s after the session came up ({n['accepted'] / max(t, 1e-9) / 1e6:.2f} M routes/s)")
        break
    if now - t0 > 300:
        sys.exit("\ndemo: the table was not learnt within 300 s")
    time.sleep(0.2)
PYEOF
}

say "the peer opens the session and sends the table; xroute learns it and programs the engine"
"${BIRDC[@]}" enable uplink >/dev/null
table_progress "$EXPECTED"

say "what is programmed"
run "$CTL" bgp summary
run "$CTL" bgp routes 1.1.1.0/24
run "$CTL" fib stats
run "$CTL" fib lookup 1.1.1.1 2a00:1450:4001::1 198.19.7.7 203.0.113.7 240.0.0.1

say "packets through the router: src pings and traceroutes the sink's test addresses"
in_ns "$SRC" ping -c 3 -i 0.2 -W 2 198.51.100.1
in_ns "$SRC" ping -c 3 -i 0.2 -W 2 2001:db8:100::1
in_ns "$SRC" traceroute -n -q 1 -w 2 -m 4 198.51.100.1
in_ns "$SRC" traceroute -6 -n -q 1 -w 2 -m 4 2001:db8:100::1
in_ns "$SRC" ping -c 1 -W 2 -t 1 198.51.100.1 || true
run "$CTL" neighbors

# ---- the burst ------------------------------------------------------------------------------
mac_of() { ip netns exec "$1" cat "/sys/class/net/$2/address"; }
hexmac() { local m; m=$(mac_of "$1" "$2"); echo "0x${m//:/, 0x}"; }
RTR_MAC=$(hexmac "$NS" xd0)
SRC_MAC=$(hexmac "$SRC" a0)
LEN=$((SIZE - 4)) # trafgen writes the frame without its FCS
pad() { (($1 > 0)) && echo "fill(0x00, $1)" || true; }
# One trafgen packet: $1 TTL / hop limit, $2 destination kind (burst, blackhole).
packet4() {
    local dst
    case $2 in
        burst) dst="198, 19, drnd(), drnd()" ;;
        blackhole) dst="203, 0, 113, drnd()" ;;
    esac
    cat <<EOF
{
  $RTR_MAC, $SRC_MAC, c16(0x0800),
  0x45, 0x00, c16($((LEN - 14))), c16(0), c16(0x4000), $1, 17, csumip(14, 33),
  192, 0, 2, 2,
  $dst,
  drnd(2), c16(9), c16($((LEN - 34))), c16(0),
  $(pad $((LEN - 42)))
}
EOF
}
packet6() {
    local dst
    case $2 in
        burst) dst="0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, fill(0x00, 6), drnd(4)" ;;
        blackhole) dst="0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x11, 0x13, fill(0x00, 7), drnd()" ;;
    esac
    cat <<EOF
{
  $RTR_MAC, $SRC_MAC, c16(0x86dd),
  0x60, 0x00, 0x00, 0x00, c16($((LEN - 54))), 17, $1,
  0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, fill(0x00, 9), 0x02,
  $dst,
  drnd(2), c16(9), c16($((LEN - 54))), csumudp6(14, 54),
  $(pad $((LEN - 62)))
}
EOF
}
{
    for _ in $(seq 1 14); do "packet$FAMILY" 64 burst; done
    "packet$FAMILY" 1 burst
    "packet$FAMILY" 64 blackhole
} >"$DIR/trafgen.cfg"
COUNT=$((RATE * DURATION))

say "a burst: $COUNT UDP packets of $SIZE bytes (IPv$FAMILY) at $RATE packets/s from src to the sink"
echo "  15 in 16 to random addresses in $( ((FAMILY == 4)) && echo 198.19.0.0/16 || echo 2001:db8:ffff::/48) (learnt over BGP),"
echo "  1 in 16 with TTL 1 (time exceeded), 1 in 16 to a blackhole route"
"$CTL" --json counters >"$DIR/counters.before"
SENT0=$(ns_stat "$SRC" a0 tx_packets)
VETH0=$(ns_stat "$SRC" a0 tx_dropped)
GOT0=$(ns_stat "$SINK" b0 rx_packets)
T_BURST=$(date +%s.%N)
# --no-sock-mem and -Q: trafgen must not touch the machine's sysctls or IRQ affinities.
(
    ip netns exec "$SRC" timeout $((DURATION + 20)) trafgen --conf "$DIR/trafgen.cfg" --dev a0 \
        --no-sock-mem -Q -C -P 1 --num "$COUNT" -b "${RATE}pps" >"$DIR/trafgen.log" 2>&1
    rc=$?
    date +%s.%N >"$DIR/trafgen.end"
    exit $rc
) &
TG_PID=$!
python3 - "$CTL" "$TG_PID" $((DURATION + 25)) <<'PYEOF'
import json, os, subprocess, sys, time
ctl, pid, bound = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
def snap():
    c = json.loads(subprocess.run([ctl, "--json", "counters"], capture_output=True, check=True).stdout)
    return time.time(), {p["name"]: p for p in c["ports"]}
def alive():
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False
def k(x):
    return f"{x / 1e3:7.1f}k"
t0, prev = snap()
start = t0
tail = 2  # lines after the sender stopped, so the last packets are seen through
while tail > 0 and time.time() - start < bound:
    time.sleep(1.0)
    t, cur = snap()
    dt = t - t0
    cols = []
    drops = {}
    for name, p in cur.items():
        q = prev[name]
        cols.append(f"{name} rx {k((p['rx_packets'] - q['rx_packets']) / dt)} tx {k((p['tx_packets'] - q['tx_packets']) / dt)} pps")
        for (reason, n), (_, m) in zip(p["drops"], q["drops"]):
            if n > m:
                drops[reason] = drops.get(reason, 0) + (n - m) / dt
    d = ", ".join(f"{r} {v:,.0f}/s" for r, v in sorted(drops.items())) or "none"
    print(f"  {t - start:4.0f} s  " + "   ".join(cols) + f"   drops: {d}", flush=True)
    t0, prev = t, cur
    if not alive():
        tail -= 1
PYEOF
wait "$TG_PID" || { echo "demo: trafgen failed: $(tail -3 "$DIR/trafgen.log")" >&2; exit 1; }
TG_PID=
BURST_SECS=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$T_BURST" "$(cat "$DIR/trafgen.end")")
sleep 0.3
SENT=$(($(ns_stat "$SRC" a0 tx_packets) - SENT0))
GOT=$(($(ns_stat "$SINK" b0 rx_packets) - GOT0))
VETH=$(($(ns_stat "$SRC" a0 tx_dropped) - VETH0))
"$CTL" --json counters >"$DIR/counters.after"
"$CTL" --json fib stats >"$DIR/fib.json"
"$CTL" --json bgp summary >"$DIR/bgp.json"
run "$CTL" counters

say "summary"
python3 - "$DIR" "$SENT" "$GOT" "$BURST_SECS" "$VETH" <<'PYEOF'
import json, sys
d, sent, got, secs, veth = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
before = {p["name"]: p for p in json.load(open(f"{d}/counters.before"))["ports"]}
after = {p["name"]: p for p in json.load(open(f"{d}/counters.after"))["ports"]}
fib, bgp = json.load(open(f"{d}/fib.json")), json.load(open(f"{d}/bgp.json"))
delta = lambda port, key: after[port][key] - before[port][key]
fwd = delta("xd1", "tx_packets")
drops = {}
for port in after:
    for (reason, n), (_, m) in zip(after[port]["drops"], before[port]["drops"]):
        if n > m:
            drops[reason] = drops.get(reason, 0) + n - m
print(f"  routes        {fib['routes_v4']:,} IPv4 + {fib['routes_v6']:,} IPv6 in the FIB "
      f"({sum(n['accepted'] for n in bgp['neighbors']):,} from BGP), {fib['groups']} next-hop groups")
print(f"  FIB memory    {fib['memory_bytes'] / 2**20:.1f} MiB")
print(f"  burst         {sent:,} packets sent by src in {secs:.1f} s ({sent / secs / 1e3:.0f}k packets/s)" + (
      f"; {veth:,} lost on the veth link before the router's port (its ring was full)" if veth else ""))
print(f"  router        {delta('xd0', 'rx_packets'):,} received on xd0, {fwd:,} forwarded out of xd1 "
      f"({fwd / max(sent, 1):.1%} of what was sent; 14 in 16 at most: the rest is dropped on purpose)")
print(f"  sink          {got:,} frames arrived at the sink's port")
print("  drops         " + (", ".join(f"{r} {n:,}" for r, n in sorted(drops.items())) or "none"))
PYEOF

say "the Prometheus endpoint of xroute-control (127.0.0.1:9842 in the router's namespace)"
printf '%s$ curl -s http://127.0.0.1:9842/metrics | grep ...\n' router
ip netns exec "$NS" curl -s --max-time 5 http://127.0.0.1:9842/metrics |
    grep -E '^xroute_(fib_routes|fib_memory_bytes|bgp_session_up|bgp_prefixes_accepted|port_(rx|tx)_packets_total|deltas_applied_total)' ||
    echo "demo: the metrics endpoint did not answer" >&2

say "kill -9 the engine and start a new one: the control process replays the whole table"
kill -9 "$ENGINE_PID"
wait "$ENGINE_PID" 2>/dev/null || true
T0=$(date +%s.%N)
start_engine
"$CTL" fib wait --timeout 120 >/dev/null
python3 -c "import sys, time; print(f'  the new engine holds the table again after {time.time() - float(sys.argv[1]):.2f} s')" "$T0"
run "$CTL" fib stats
in_ns "$SRC" ping -c 2 -i 0.2 -W 2 198.51.100.1

if ((KEEP)); then
    say "running: try  XROUTE_SOCKET=$XROUTE_SOCKET $CTL --help ; ip netns exec $SRC ping 198.51.100.1 ; Enter stops"
    read -r _
fi
say "stop: SIGTERM to every process by pid, namespaces and files removed"
