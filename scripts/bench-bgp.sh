#!/usr/bin/env bash
# BGP full-table benchmark: one BIRD 2 sender announces the real table (../shared/data/fib,
# 902k IPv4 + 160k IPv6 prefixes) over one session; in the same run, three receivers take it in
# turn, each measured from the moment the session is up (Established at the sender, polled every
# 10 ms) until the last route is where that receiver puts it (polled every 50 ms):
#
#   xroute   xroute-control + xroute-engine (FIB writer, no ports): until the engine's FIB holds
#            every route and has applied every delta (xroutectl fib stats)
#   bird     BIRD 2 without a kernel protocol: until its tables hold every route
#   frr      FRR bgpd + zebra: until zebra reports every route installed in the kernel FIB of the
#            receiver's namespace (show ip[v6] route summary: "fib" counts)
#
#   sudo bash scripts/bench-bgp.sh               # RUNS=3
#   RUNS=5 sudo -E bash scripts/bench-bgp.sh --json
#   RECEIVERS="xroute bird" sudo -E bash scripts/bench-bgp.sh     # a subset
#
# Two namespaces (xrbgp<pid>s, xrbgp<pid>r) joined by one veth pair, always deleted on exit with
# every daemon the script started (by pid). No packet other than BGP's is sent. Reports the
# median [min-max] time and rate per receiver and the resident memory of xroute-control and of
# the BIRD receiver after the table is in.
set -euo pipefail

RUNS=${RUNS:-3}
TIMEOUT=${TIMEOUT:-300}
RECEIVERS=${RECEIVERS:-xroute bird frr}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${XROUTE_SHARED:-$ROOT/../shared}
TABLE=${TABLE:-$SHARED/data/fib/prefixes.txt.gz}
OUT=${OUT:-${CARGO_TARGET_DIR:-$ROOT/target}/bench-bgp}
JSON=0
[[ ${1:-} == --json ]] && JSON=1

log() { printf 'bench-bgp: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
[[ $EUID -eq 0 ]] || die "needs root (it creates network namespaces)"
[[ -f $TABLE ]] || die "no table at $TABLE (set TABLE or XROUTE_SHARED)"
for b in bird birdc /usr/lib/frr/bgpd /usr/lib/frr/zebra vtysh; do
    command -v "$b" >/dev/null || [[ -x $b ]] || die "$b missing: run scripts/install-deps.sh"
done

cd "$ROOT"
bash scripts/install-deps.sh >/dev/null
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked -q -p xroute-control -p xroute-engine
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release

S=xrbgp$$s
R=xrbgp$$r
DIR=$(mktemp -d /dev/shm/xroute-bench-bgp.XXXXXX)
chmod 711 "$DIR"  # zebra runs as the frr user and keeps its files below
PIDS=()
mkdir -p "$OUT"
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    ip netns del "$S" 2>/dev/null || true
    ip netns del "$R" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

ip netns add "$S"
ip netns add "$R"
ip link add s0 netns "$S" type veth peer name r0 netns "$R"
for ns in "$S" "$R"; do ip -n "$ns" link set lo up; done
ip -n "$S" addr add 192.0.2.2/24 dev s0
ip -n "$S" addr add 2001:db8:1::2/64 dev s0 nodad
ip -n "$R" addr add 192.0.2.1/24 dev r0
ip -n "$R" addr add 2001:db8:1::1/64 dev r0 nodad
ip -n "$S" link set s0 up
ip -n "$R" link set r0 up

V4=$(zcat -f "$TABLE" | tr -d '\r' | grep -c '\.' || true)
V6=$(zcat -f "$TABLE" | tr -d '\r' | grep -c ':' || true)
TOTAL=$((V4 + V6))
log "table: $V4 IPv4 + $V6 IPv6 prefixes; $RUNS run(s) per receiver"

# --- the sender: BIRD with the table as static routes, its session disabled until a run ----
mkdir -p "$DIR/snd"
{
    echo "router id 192.0.2.2;"
    echo "timeformat protocol iso long ms;"
    echo "log \"$DIR/snd/bird.log\" { warning, error, fatal };"
    echo "protocol device {}"
    echo "protocol static t4 { ipv4; "
    zcat -f "$TABLE" | tr -d '\r' | grep '\.' | sed 's/.*/route & blackhole;/'
    echo "}"
    echo "protocol static t6 { ipv6; "
    zcat -f "$TABLE" | tr -d '\r' | grep ':' | sed 's/.*/route & blackhole;/'
    echo "}"
    cat <<EOF
protocol bgp feed {
  disabled;
  local 192.0.2.2 as 64501; neighbor 192.0.2.1 as 64500;
  hold time 240; connect retry time 1;
  ipv4 { import none; export all; next hop self; };
  ipv6 { import none; export all; next hop address 2001:db8:1::2; };
}
EOF
} >"$DIR/snd/bird.conf"
ip netns exec "$S" bird -f -c "$DIR/snd/bird.conf" -s "$DIR/snd/ctl" -P "$DIR/snd/pid" >"$DIR/snd/out" 2>&1 &
PIDS+=($!)
SND=(birdc -s "$DIR/snd/ctl")
for _ in $(seq 1 600); do
    "${SND[@]}" show route count 2>/dev/null | grep -q "$TOTAL of $TOTAL" && break
    sleep 0.2
done
"${SND[@]}" show route count | grep -q "$TOTAL of $TOTAL" || die "the sender did not load the table: $(tail -3 "$DIR/snd/out")"
log "sender ready: $("${SND[@]}" show route count | tail -1)"

# Clock and pause without a fork (bash 5's EPOCHREALTIME; read -t on a pipe nobody writes to).
now() { printf '%s\n' "${EPOCHREALTIME/,/.}"; }
exec {NAPFD}<> <(:)
nap() { read -r -t "$1" -u "$NAPFD" _ || true; }
# Seconds from $1 to $2 (both from now()). Everything that runs while a receiver takes the table
# is a bash builtin or awk, never python and no needless fork: the receivers share the machine's
# two cores with this script, and a python start (160 ms through pyenv's shim here) or a fork per
# poll would take CPU from the one being measured.
since() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", b - a }'; }
RESULTS=$DIR/results.jsonl
: >"$RESULTS"
record() {  # receiver run seconds rss_kib cpu_seconds
    printf '{"receiver": "%s", "run": %s, "seconds": %s, "rss_kib": %s, "cpu_seconds": %s}\n' "$1" "$2" "$3" "${4:-null}" "${5:-null}" >>"$RESULTS"
    log "$1 run $2: $3 s$([[ -n ${4:-} ]] && echo ", RSS $(( $4 / 1024 )) MiB")$([[ -n ${5:-} ]] && echo ", CPU $5 s")"
}
# User + system CPU seconds of the given processes so far.
cpu_of() {
    local t=0 p
    for p in "$@"; do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    awk -v t="$t" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f\n", t / hz }'
}
# Polls "$@" every 50 ms until it prints "done", or TIMEOUT; prints the time it took since $T0.
until_done() {
    local deadline=$(( EPOCHSECONDS + TIMEOUT ))
    while (( EPOCHSECONDS < deadline )); do
        if [[ $("$@" 2>/dev/null) == done ]]; then
            since "$T0" "$(now)"
            return 0
        fi
        nap 0.05
    done
    return 1
}
# The clock starts when the sender's session is up (BIRD waits its "connect delay" first): the
# time the sender itself recorded for Established (its "since", in ms), not when its CLI answered
# (a busy sender answers late; the lag is logged).
feed_on() {
    "${SND[@]}" enable feed >/dev/null
    local deadline=$(( EPOCHSECONDS + 60 )) line
    until line=$("${SND[@]}" show protocols feed | grep Established); do
        (( EPOCHSECONDS < deadline )) || die "the sender's session did not come up: $("${SND[@]}" show protocols feed | tail -1)"
        nap 0.01
    done
    local seen
    seen=$(now)
    local up
    up=$(grep -oE '[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]+' <<<"$line") \
        || die "no time in the sender's session line: $line"
    T0=$(date -d "$up" +%s.%N) || die "cannot read when the sender's session came up: $up"
    T0=$(awk -v a="$T0" -v b="$seen" 'BEGIN { printf "%.6f\n", (a < b ? a : b) }')
    log "session up; the sender's CLI said so $(since "$T0" "$seen") s later"
    # BIRD 2.0.12 as a sender leaves its last UPDATE and End-of-RIB queued while its I/O loop
    # sleeps in poll() for up to 3 s (strace: poll(..., 3000) times out, then the last 87-byte
    # UPDATE is written); anything arriving on one of its sockets wakes it. A CLI request every
    # 50 ms keeps it awake for every receiver alike, so that the figures are the receivers'.
    ( while :; do "${SND[@]}" show status >/dev/null 2>&1; nap 0.05; done ) &
    WAKER=$!
    PIDS+=("$WAKER")
}
feed_off() {
    kill "$WAKER" 2>/dev/null || true
    wait "$WAKER" 2>/dev/null || true
    "${SND[@]}" disable feed >/dev/null
    sleep 1
}

# --- xroute ---------------------------------------------------------------------------------
mkdir -p "$DIR/xr/run"
cat >"$DIR/xr/xroute.toml" <<EOF
[router]
instance = "bench"
run-dir = "$DIR/xr/run"
shm-dir = "$DIR/xr"

[[interface]]
name = "r0"
address = ["192.0.2.1/24", "2001:db8:1::1/64"]

[bgp]
enabled = true
local-as = 64500
connect-retry = 1

[[bgp.neighbor]]
address = "192.0.2.2"
remote-as = 64501
passive = true
import = "all"
families = ["ipv4-unicast", "ipv6-unicast"]
EOF
XCTL=("$BIN/xroutectl" --socket "$DIR/xr/run/bench/control.sock")
# Done when the engine's FIB holds every prefix (plus the 4 connected and local routes of r0,
# the only other routes it can have) with every delta applied. One xroutectl call per poll, as
# BIRD's check makes one birdc call: the checks run 20 times a second on the same two cores as
# the receiver, so each costs it CPU (and a python start, 160 ms through pyenv's shim here,
# would take most of a core).
xroute_done() {
    local fib
    fib=$("${XCTL[@]}" --json fib stats) || return 1
    printf '%s\n' "$fib" | awk -v total="$TOTAL" '
        { v = $2; gsub(/[^0-9]/, "", v) }
        $1 == "\"routes_v4\":" || $1 == "\"routes_v6\":" { routes += v }
        $1 == "\"queued\":" { queued = v }
        $1 == "\"applied_seq\":" { applied = v }
        $1 == "\"produced_seq\":" { produced = v }
        END {
            if (routes >= total + 4 && queued + 0 == 0 && applied + 0 >= produced + 0) print "done"
            else print routes + 0 " in the FIB"
        }'
}
run_xroute() {
    local run=$1
    ip netns exec "$R" "$BIN/xroute-engine" run --instance bench --shm-dir "$DIR/xr" --run-dir "$DIR/xr/run" >"$DIR/xr/engine.log" 2>&1 &
    EPID=$!
    PIDS+=("$EPID")
    ip netns exec "$R" "$BIN/xroute-control" --config "$DIR/xr/xroute.toml" >"$DIR/xr/control.log" 2>&1 &
    CPID=$!
    PIDS+=("$CPID")
    for _ in $(seq 1 200); do [[ -S $DIR/xr/run/bench/control.sock ]] && break; sleep 0.05; done
    for _ in $(seq 1 400); do
        "${XCTL[@]}" --json fib stats 2>/dev/null | grep -q '"engine_attached": true' && break
        sleep 0.05
    done
    "${XCTL[@]}" fib wait --timeout 30 >/dev/null || die "the engine did not start: $(tail -3 "$DIR/xr/engine.log")"
    cpu0=$(cpu_of "$CPID" "$EPID")
    feed_on
    secs=$(until_done xroute_done) || die "xroute did not get the table in ${TIMEOUT}s: $(xroute_done)"
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$CPID/status")
    cpu=$(awk -v a="$cpu0" -v b="$(cpu_of "$CPID" "$EPID")" 'BEGIN { printf "%.2f\n", b - a }')
    record xroute "$run" "$secs" "$rss" "$cpu"
    feed_off
    kill -TERM "$CPID" "$EPID"; wait "$CPID" "$EPID" 2>/dev/null || true
}

# --- BIRD receiving, no kernel protocol ------------------------------------------------------
mkdir -p "$DIR/rb"
cat >"$DIR/rb/bird.conf" <<EOF
router id 192.0.2.1;
log "$DIR/rb/bird.log" { warning, error, fatal };
protocol device {}
protocol bgp feed {
  local 192.0.2.1 as 64500; neighbor 192.0.2.2 as 64501; passive;
  hold time 240;
  ipv4 { import all; export none; };
  ipv6 { import all; export none; };
}
EOF
RCV=(birdc -s "$DIR/rb/ctl")
# Only the "Total:" line: the per-table lines above it count the same routes again.
bird_done() {
    "${RCV[@]}" show route count | awk -v total="$TOTAL" '
        $1 == "Total:" { n = $2 }
        END { print (n + 0 >= total ? "done" : n + 0) }'
}
run_bird() {
    local run=$1
    ip netns exec "$R" bird -f -c "$DIR/rb/bird.conf" -s "$DIR/rb/ctl" -P "$DIR/rb/pid" >"$DIR/rb/out" 2>&1 &
    BPID=$!
    PIDS+=("$BPID")
    for _ in $(seq 1 200); do "${RCV[@]}" show status >/dev/null 2>&1 && break; sleep 0.05; done
    cpu0=$(cpu_of "$BPID")
    feed_on
    secs=$(until_done bird_done) || die "BIRD did not get the table in ${TIMEOUT}s: $(bird_done)"
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$BPID/status")
    cpu=$(awk -v a="$cpu0" -v b="$(cpu_of "$BPID")" 'BEGIN { printf "%.2f\n", b - a }')
    record bird "$run" "$secs" "$rss" "$cpu"
    feed_off
    kill -TERM "$BPID"; wait "$BPID" 2>/dev/null || true
}

# --- FRR: bgpd + zebra into the namespace's kernel -------------------------------------------
mkdir -p "$DIR/frr"
chmod 777 "$DIR/frr"
cat >"$DIR/frr/frr.conf" <<EOF
frr defaults traditional
hostname bench
log file $DIR/frr/frr.log warnings
!
router bgp 64500
 bgp router-id 192.0.2.1
 no bgp ebgp-requires-policy
 neighbor 192.0.2.2 remote-as 64501
 neighbor 192.0.2.2 passive
 address-family ipv4 unicast
  neighbor 192.0.2.2 activate
 exit-address-family
 address-family ipv6 unicast
  neighbor 192.0.2.2 activate
 exit-address-family
!
EOF
VTY=(ip netns exec "$R" vtysh --vty_socket "$DIR/frr")
# One route type per JSON object: flattened, one object per line, the fib counts of the BGP
# ones summed.
frr_done() {
    local v4 v6
    v4=$("${VTY[@]}" -c "show ip route summary json" 2>/dev/null)
    v6=$("${VTY[@]}" -c "show ipv6 route summary json" 2>/dev/null)
    printf '%s\n%s\n' "$v4" "$v6" | tr -d ' \t\n' | tr '}' '\n' | awk -v total="$TOTAL" '
        /"type":"(ebgp|bgp)"/ && match($0, /"fib":[0-9]+/) { n += substr($0, RSTART + 6, RLENGTH - 6) }
        END { print (n + 0 >= total ? "done" : n + 0) }'
}
run_frr() {
    local run=$1
    ip netns exec "$R" ip route flush proto bgp 2>/dev/null || true
    ip netns exec "$R" ip -6 route flush proto bgp 2>/dev/null || true
    ip netns exec "$R" /usr/lib/frr/zebra -f /dev/null -i "$DIR/frr/zebra.pid" -z "$DIR/frr/zserv" \
        --vty_socket "$DIR/frr" -u frr -g frr >"$DIR/frr/zebra.out" 2>&1 &
    ZPID=$!
    PIDS+=("$ZPID")
    for _ in $(seq 1 200); do [[ -S $DIR/frr/zserv ]] && break; sleep 0.05; done
    kill -0 "$ZPID" 2>/dev/null || die "zebra exited: $(head -3 "$DIR/frr/zebra.out")"
    ip netns exec "$R" /usr/lib/frr/bgpd -f "$DIR/frr/frr.conf" -i "$DIR/frr/bgpd.pid" -z "$DIR/frr/zserv" \
        --vty_socket "$DIR/frr" -u root -g root -S >"$DIR/frr/bgpd.out" 2>&1 &
    GPID=$!
    PIDS+=("$GPID")
    sleep 0.5
    kill -0 "$GPID" 2>/dev/null || die "bgpd exited: $(head -3 "$DIR/frr/bgpd.out")"
    for _ in $(seq 1 200); do "${VTY[@]}" -c "show bgp summary" >/dev/null 2>&1 && break; sleep 0.05; done
    cpu0=$(cpu_of "$GPID" "$ZPID")
    feed_on
    secs=$(until_done frr_done) || die "FRR did not get the table into the kernel in ${TIMEOUT}s: $(frr_done)"
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$GPID/status")
    cpu=$(awk -v a="$cpu0" -v b="$(cpu_of "$GPID" "$ZPID")" 'BEGIN { printf "%.2f\n", b - a }')
    record frr "$run" "$secs" "$rss" "$cpu"
    feed_off
    kill -TERM "$GPID" "$ZPID"; wait "$GPID" "$ZPID" 2>/dev/null || true
}

# Interleaved (xroute, BIRD, FRR, xroute, ...): this machine's speed drifts by tens of percent
# over minutes, and a drift must hit every receiver alike, not the one whose runs came first.
for run in $(seq 1 "$RUNS"); do
    for r in $RECEIVERS; do
        case $r in
            xroute | bird | frr) "run_$r" "$run" ;;
            *) die "unknown receiver $r (xroute, bird, frr)" ;;
        esac
    done
done

cp "$RESULTS" "$OUT/runs.jsonl"
python3 - "$RESULTS" "$TOTAL" "$JSON" "$OUT" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
total, as_json, out = int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
summary = {}
for rcv in ("xroute", "bird", "frr"):
    t = sorted(r["seconds"] for r in rows if r["receiver"] == rcv)
    m = sorted(r["rss_kib"] for r in rows if r["receiver"] == rcv and r["rss_kib"])
    if t:
        summary[rcv] = {"seconds": {"median": statistics.median(t), "min": t[0], "max": t[-1]},
                        "routes_per_second": total / statistics.median(t),
                        "rss_mib": statistics.median(m) / 1024 if m else None, "runs": len(t),
                        "cpu_seconds": statistics.median(c) if (c := [r["cpu_seconds"] for r in rows if r["receiver"] == rcv and r["cpu_seconds"] is not None]) else None}
doc = {"routes": total, "receivers": summary}
json.dump(doc, open(f"{out}/bench-bgp.json", "w"), indent=2)
lines = [f"Full table ({total:,} routes) from one BIRD 2 sender, time from session up to the last route in place; median [min-max] of {max(s['runs'] for s in summary.values())} run(s)", "",
         "| receiver | until | time (s) | routes/s | CPU (s) | resident memory |", "|---|---|---:|---:|---:|---:|"]
where = {"xroute": "in the engine's FIB", "bird": "in BIRD's tables (no FIB)", "frr": "in the kernel FIB (bgpd + zebra)"}
for rcv, s in summary.items():
    t = s["seconds"]
    rss = f"{s['rss_mib']:.0f} MiB" if s["rss_mib"] else "-"
    cpu = f"{s['cpu_seconds']:.2f}" if s["cpu_seconds"] is not None else "-"
    lines.append(f"| {rcv} | {where[rcv]} | {t['median']:.2f} [{t['min']:.2f}-{t['max']:.2f}] | {s['routes_per_second'] / 1e6:.2f} M | {cpu} | {rss} |")
x = summary["xroute"]["seconds"]["median"] if "xroute" in summary else None
lines.append("")
if x and "frr" in summary:
    lines.append(f"xroute vs FRR into the kernel: {summary['frr']['seconds']['median'] / x:.1f}x faster (target >= 2x)")
if x and "bird" in summary:
    lines.append(f"xroute vs BIRD without a FIB: {summary['bird']['seconds']['median'] / x:.2f}x (target >= 1.0x)")
    # Runs are interleaved, so run n of each receiver saw the same state of the machine.
    per = {r["run"]: {} for r in rows}
    for r in rows:
        per[r["run"]][r["receiver"]] = r["seconds"]
    ratios = sorted(p["bird"] / p["xroute"] for p in per.values() if "bird" in p and "xroute" in p)
    if ratios:
        doc["bird_over_xroute_paired"] = {"median": statistics.median(ratios), "min": ratios[0], "max": ratios[-1]}
        json.dump(doc, open(f"{out}/bench-bgp.json", "w"), indent=2)
        lines.append(f"  run by run (BIRD's time / xroute's, same round): {statistics.median(ratios):.2f}x [{ratios[0]:.2f}-{ratios[-1]:.2f}]")
open(f"{out}/bench-bgp.md", "w").write("\n".join(lines) + "\n")
print(json.dumps(doc, indent=2) if as_json else "\n".join(lines))
EOF
log "results in $OUT (bench-bgp.md, bench-bgp.json, runs.jsonl)"
