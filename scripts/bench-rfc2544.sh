#!/usr/bin/env bash
# RFC 2544-style throughput search on veth: for each router under test, the highest offered
# rate at which it forwards all but LOSS_PCT percent (0.1%) of the frames, found by a bounded
# search of fixed-length trials. Same topology as scripts/bench-forward.sh (generator namespace
# -> router namespace -> sink namespace, scripts/lib/bench-topology.sh); routers:
#
#   xroute   xroute-engine + xroute-control with the full real table ([[route-file]])
#   linux    the router namespace's kernel forwarding (ip_forward=1) with the same table
#   xdp      the XDP baseline: an XDP program on rtr0 that decrements the TTL, rewrites the MACs
#            and redirects every IPv4 frame out of rtr1, with no lookup: the ceiling of what
#            XDP forwarding does on veth (scripts/lib/bench-rfc2544.bpf.c)
#
#   sudo bash scripts/bench-rfc2544.sh                      # trafgen, 64-byte frames, ~3-4 min
#   sudo bash scripts/bench-rfc2544.sh --generator both     # trafgen, then dpdk-testpmd
#   ROUTERS="linux xdp" FRAME_SIZES="64 512" TRIAL=5 sudo -E bash scripts/bench-rfc2544.sh --json
#
# Options: --generator trafgen|testpmd|both (default trafgen), --json (print the JSON document
# instead of the table).
# Environment: ROUTERS (default "xroute linux xdp"), FRAME_SIZES (bytes with the FCS, default
# 64), TRIAL (s per trial, default 3), SETTLE (s after a rate change before a trial's window,
# default 1), WARMUP (s of full rate before a search's first trial, default 2), MAX_TRIALS (per
# search, default 8), MAX_TIME (s, a bound on the whole run, default 900: searches still to run
# are skipped, a running one ends after its trial), LOSS_PCT (default 0.1), RESOLUTION_PCT (the
# search ends when the best pass and the lowest fail above it are this close, default 1),
# PACER_TOLERANCE_US (the pacer's burst tolerance, default 500), OUT (default $CARGO_TARGET_DIR/bench-rfc2544), and those of
# bench-forward.sh: ROUTER_CPU, NICE, NAPI_FIFO, COALESCE_US, SINK_COALESCE_US,
# WIRE_COALESCE_US, TABLE, XROUTE_SHARED, ENGINE_ARGS.
#
# What sets the offered rate: the generator always runs flat out and a pacer in the wire (XDP on
# gw0, a token bucket, scripts/lib/bench-rfc2544.bpf.c) lets the target rate through to the
# router and drops the rest. Its tolerance (PACER_TOLERANCE_US) covers the gaps between the
# wire's polls; on a busy machine it still passes a few percent less than its target, which is
# why the search steers by what was measured. Neither generator can pace itself here: trafgen's -b/--rate sends a
# second's worth of frames at full speed and then sleeps for the rest of the second (bursts at
# the generator's top speed, whatever the rate), and -t/--gap sleeps after every frame (about
# 30 kpps at most); dpdk-testpmd has no rate limit over net_af_xdp (txonly has none, and
# `set port ... rate` needs a driver that implements queue rate limits, which af_xdp does not).
# So with either generator, every trial's rate is set by the pacer, and what the search uses
# is the rate really offered to the router in that trial: the frames redirected into rtr0
# (gw1's tx counters, ring overflows included), not the target.
#
# Generators (in the generator namespace, on CPU 0 with the pacer and the sink):
#   trafgen  64-byte UDP from 192.0.2.2 to random addresses in 198.18.0.0/15 (as bench-forward.sh)
#   testpmd  dpdk-testpmd txonly over net_af_xdp on gen0 (AF_XDP copy mode: veth has no other),
#            --no-huge, one flow: UDP 192.0.2.2 -> 198.18.0.1. The script installs it when asked
#            for (scripts/install-deps.sh bench: Debian's dpdk-dev and librte-net-af-xdp23).
#
# The search (scripts/lib/rfc2544.py): a trial at full rate first (if the router loses nothing
# there, the generator is the limit and the table says ">= rate"), then at the rate the router
# forwarded under that overload, then steps and bisection between the best pass and the lowest
# fail above it, until they are within RESOLUTION_PCT or MAX_TRIALS trials were run. Each trial:
# set the pacer, SETTLE seconds, then TRIAL seconds counted: offered (into rtr0), forwarded
# (frames the sink received that the router should have sent, as in bench-forward.sh), loss.
#
# Limits: veth has AF_XDP copy mode only (see bench-forward.sh's header and docs/benchmarking.md):
# xroute pays a copy into the UMEM and an skb per frame on transmit that zero-copy NICs do not.
# The generator, the pacer and the sink share CPU 0; above roughly 0.5 Mpps (trafgen) the
# generator, not the router, is the limit. The machine may be shared: the header line says how
# busy both cores were before the run, and every trial records how busy the router's core was.
# Results go to $OUT: bench-rfc2544.md, bench-rfc2544.json (every trial), trials.jsonl, logs/.
set -euo pipefail

GENERATOR=trafgen
JSON=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --generator) GENERATOR=${2:-}; shift $(($# > 1 ? 2 : 1)) ;;
        --generator=*) GENERATOR=${1#*=}; shift ;;
        --json) JSON=1; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-rfc2544: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case $GENERATOR in
    trafgen | testpmd) GENERATORS=("$GENERATOR") ;;
    both) GENERATORS=(trafgen testpmd) ;;
    *) echo "bench-rfc2544: --generator must be trafgen, testpmd or both, not '$GENERATOR'" >&2; exit 2 ;;
esac

BENCH=bench-rfc2544
# shellcheck source=scripts/lib/bench-topology.sh
source "$(dirname "$0")/lib/bench-topology.sh"
OUT=${OUT:-$TARGET/bench-rfc2544}
SEARCH_PY=$ROOT/scripts/lib/rfc2544.py

ROUTERS=${ROUTERS:-xroute linux xdp}
FRAME_SIZES=${FRAME_SIZES:-64}
export TRIAL=${TRIAL:-3} SETTLE=${SETTLE:-1} WARMUP=${WARMUP:-2} MAX_TRIALS=${MAX_TRIALS:-8}
export MAX_TIME=${MAX_TIME:-900} LOSS_PCT=${LOSS_PCT:-0.1} RESOLUTION_PCT=${RESOLUTION_PCT:-1}
PACER_TOLERANCE_US=${PACER_TOLERANCE_US:-500}
[[ $TRIAL =~ ^[1-9][0-9]?$ && $SETTLE =~ ^[0-9]$ && $WARMUP =~ ^[0-9]{1,2}$ ]] ||
    die "TRIAL (1-99 s), SETTLE (0-9 s) and WARMUP (0-99 s) must be small integers"
[[ $MAX_TRIALS =~ ^[1-9][0-9]?$ && $MAX_TIME =~ ^[1-9][0-9]{1,4}$ && $PACER_TOLERANCE_US =~ ^[1-9][0-9]{0,5}$ ]] ||
    die "MAX_TRIALS (1-99), MAX_TIME (10-99999 s) and PACER_TOLERANCE_US (1-999999) must be integers"
python3 -c 'import sys; a, b = map(float, sys.argv[1:]); sys.exit(not (0 <= a <= 100 and 0 < b <= 50))' \
    "$LOSS_PCT" "$RESOLUTION_PCT" 2>/dev/null || die "LOSS_PCT (0-100) and RESOLUTION_PCT (0-50] must be numbers"
for r in $ROUTERS; do
    [[ $r == xroute || $r == linux || $r == xdp ]] || die "unknown router '$r' in ROUTERS (xroute, linux, xdp)"
done
[[ -n ${ROUTERS// /} ]] || die "ROUTERS is empty"
for s in $FRAME_SIZES; do
    [[ $s =~ ^[0-9]+$ && $s -ge 64 && $s -le 1518 ]] || die "frame size '$s' in FRAME_SIZES is not within 64-1518"
done

TOOLS=(trafgen)
if [[ " ${GENERATORS[*]} " == *" testpmd "* ]]; then
    # Idempotent: does nothing when dpdk-testpmd and its AF_XDP driver are there.
    bash "$ROOT/scripts/install-deps.sh" bench >&2 ||
        die "installing dpdk-testpmd failed (scripts/install-deps.sh bench); --generator trafgen needs none"
    TOOLS+=(dpdk-testpmd)
fi
bench_check "${TOOLS[@]}"
if [[ " $ROUTERS " == *" xroute "* ]]; then
    bench_build_xroute "set ROUTERS=\"linux xdp\" to measure without xroute"
fi

bench_prepare "xr25$$"
trap 'bench_cleanup; rm -rf "/var/run/dpdk/$NS"' EXIT
rm -rf "$OUT/logs"  # this run's logs only
TRIALS=$DIR/trials.jsonl
: >"$TRIALS"
SEARCHES=()  # "router generator frame end-reason", in order

N_SEARCH=$(($(wc -w <<<"$ROUTERS") * ${#GENERATORS[@]} * $(wc -w <<<"$FRAME_SIZES")))
PER_SEARCH=$((WARMUP + 2 + MAX_TRIALS * (SETTLE + TRIAL + 2)))
EST=$((N_SEARCH * PER_SEARCH + 60))
log "$N_SEARCH searches (routers: $ROUTERS; generators: ${GENERATORS[*]}; frames: $FRAME_SIZES) of at most $MAX_TRIALS trials of ${TRIAL}s"
log "at most about $(((EST < MAX_TIME ? EST : MAX_TIME) / 60)) min $(((EST < MAX_TIME ? EST : MAX_TIME) % 60)) s (MAX_TIME=$MAX_TIME s), plus ~20-40 s to install the table into the kernel"

# --- topology ------------------------------------------------------------------------------
bench_setup $((MAX_TIME * 2 + 600))

# The script's own work between trials (compiling the pacer, attaching it, the search's
# arithmetic) runs on the generator's core above the NAPI threads, as snapshot does: at normal
# priority, beside a generator running flat out and real-time NAPI threads, each step took
# seconds. None of it runs while a trial counts.
FAST=(taskset -c "$GEN_CPU" chrt -f 3)

RTR1_MAC=$(mac_of "$RTR" rtr1)
FWD_IFINDEX=$(ifindex_of "$RTR" rtr1)
# bench-rfc2544.bpf.c for this topology: the pacer at $1 frames/s and the XDP baseline, into $2.
compile_rfc2544_bpf() {
    local defs=("${SINK_MAC_DEFS[@]}") i
    for i in 0 1 2 3 4 5; do defs+=("-DRTR1_MAC$i=0x$(cut -d: -f$((i + 1)) <<<"$RTR1_MAC")"); done
    "${FAST[@]}" clang -O2 -g -Wall -target bpf -I"/usr/include/$(uname -m)-linux-gnu" -DWIRE_IFINDEX="$WIRE_IFINDEX" \
        -DPACER_RATE="$1" -DPACER_TOLERANCE_NS="$((PACER_TOLERANCE_US * 1000))ULL" -DFWD_IFINDEX="$FWD_IFINDEX" "${defs[@]}" \
        -c "$ROOT/scripts/lib/bench-rfc2544.bpf.c" -o "$2"
}
compile_rfc2544_bpf 1 "$DIR/fwd.o"

# Sets the wire to pass $1 frames/s (0: everything, bench_wire). The program is replaced in
# place: gw0 keeps its NAPI thread, with its CPU and priority (napi_pid in router_up).
set_rate() {
    if [[ $1 -eq 0 ]]; then
        "${FAST[@]}" ip -n "$GEN" -force link set dev gw0 xdpdrv obj "$DIR/bench.o" program bench_wire
    else
        compile_rfc2544_bpf "$1" "$DIR/pacer.o"
        "${FAST[@]}" ip -n "$GEN" -force link set dev gw0 xdpdrv obj "$DIR/pacer.o" program bench_pacer
    fi
}

# --- routers -------------------------------------------------------------------------------
if [[ " $ROUTERS " == *" linux "* ]]; then
    bench_kernel_table
else
    ROUTES=$(zcat -f "$TABLE" | grep -c .)
fi
write_config "$DIR/xroute.toml" full

router_up() {  # $1: router
    case $1 in
        linux) in_ns "$RTR" sysctl -qw net.ipv4.ip_forward=1 ;;
        xroute)
            start_control "$DIR/xroute.toml"
            start_engine "$DIR/logs/engine.log"
            grep -o 'AF_XDP [a-z-]* mode.*' "$DIR/logs/engine.log" | sort -u | sed 's/^/bench-rfc2544:   engine: /' >&2 || true
            ;;
        xdp) ip -n "$RTR" link set dev rtr0 xdpdrv obj "$DIR/fwd.o" program bench_xdp_fwd ;;
    esac
    # XDP attach and detach can re-create the NAPI threads: pin them after.
    napi_pid rtr0 "$ROUTER_CPU" >/dev/null
    napi_pid sink0 "$GEN_CPU" 2 >/dev/null
    napi_pid gw0 "$GEN_CPU" >/dev/null
}

router_down() {  # $1: router
    case $1 in
        linux) in_ns "$RTR" sysctl -qw net.ipv4.ip_forward=0 ;;
        xroute)
            CTL --json counters >"$DIR/logs/xroute-counters.json" 2>&1 || true
            stop_engine
            stop_pid "$CONTROL_PID"
            CONTROL_PID=
            ;;
        xdp) ip -n "$RTR" link set dev rtr0 xdp off ;;
    esac
}

# --- generators ----------------------------------------------------------------------------
gen0_tx() { in_ns "$GEN" cat /sys/class/net/gen0/statistics/tx_packets; }

# Starts $1 at full speed with frames of $2 bytes, bounded in time (and trafgen in frames), and
# checks that it sends: dpdk-testpmd over net_af_xdp was seen once to stop after its first
# burst. A generator that does not send gets two more chances.
start_generator() {  # $1: trafgen|testpmd, $2: frame size, $3: log file
    local bound=$((MAX_TIME + 60)) attempt before  # the run's own bound; stopped after its search
    for attempt in 1 2 3; do
        case $1 in
            trafgen)
                bench_trafgen_config "$DIR/trafgen.cfg" "$2"
                timeout -s INT "$bound" ip netns exec "$GEN" nice -n "$NICE" trafgen --conf "$DIR/trafgen.cfg" \
                    --dev gen0 --no-sock-mem -Q -P 1 --num $((bound * MAX_PPS)) >"$3" 2>&1 &
                ;;
            testpmd)
                # Two lcores (main and forwarding) on the generator's CPU; --no-huge: plain
                # memory; its own runtime directory under /var/run/dpdk, removed after.
                # --txpkts counts the frame without its FCS.
                timeout -s INT "$bound" ip netns exec "$GEN" nice -n "$NICE" dpdk-testpmd \
                    --lcores "(0,1)@$GEN_CPU" --no-huge -m 512 --no-pci --no-shconf --file-prefix "$NS" \
                    --vdev net_af_xdp0,iface=gen0 -- --forward-mode=txonly --txpkts=$(($2 - 4)) \
                    --tx-ip=192.0.2.2,198.18.0.1 --eth-peer="0,$(mac_of "$RTR" rtr0)" \
                    --total-num-mbufs=16384 --stats-period=1 >"$3" 2>&1 &
                ;;
        esac
        GEN_PID=$!
        # Sending within 5 s (dpdk-testpmd's start-up takes a second or two).
        for _ in $(seq 1 10); do
            before=$(gen0_tx)
            sleep 0.5
            [[ -n $(pgrep -P "$GEN_PID" || true) ]] || die "$1 did not start: $(tail -n 5 "$3")"
            (($(gen0_tx) - before > 1000)) && return 0
        done
        log "WARNING: $1 started but does not send (attempt $attempt of 3); restarting it"
        stop_search_generator
    done
    die "$1 does not send (log: $OUT/logs/$(basename "$3"))"
}

# Stops the generator; after dpdk-testpmd, removes what it may leave behind.
stop_search_generator() {
    stop_generator || die "cannot go on while a generator is still sending"
    rm -rf "/var/run/dpdk/$NS"
    # dpdk-testpmd stopped cleanly detaches its XDP program from gen0; make sure.
    if ip -n "$GEN" link show gen0 | grep -q 'prog/xdp'; then
        ip -n "$GEN" link set dev gen0 xdp off
    fi
}

# --- one search ----------------------------------------------------------------------------
search() {  # $1: router, $2: generator, $3: frame size
    local key="$1 $2 $3" n=0 next a b glog=$DIR/logs/$2-$1-$3.log
    log "$1 with $2, $3-byte frames"
    set_rate 0
    start_generator "$2" "$3" "$glog"
    sleep "$WARMUP"
    while :; do
        next=$("${FAST[@]}" python3 "$SEARCH_PY" next "$TRIALS" "$key")
        [[ $next != done* ]] || break
        if ((SECONDS + SETTLE + TRIAL + 5 > MAX_TIME)); then
            next="done cut short by MAX_TIME"
            break
        fi
        n=$((n + 1))
        set_rate "$next"
        sleep "$SETTLE"
        "${FAST[@]}" ip netns exec "$RTR" ethtool -S rtr0 >"$DIR/ethtool-a" 2>&1 || true
        a=$(snapshot "")
        sleep "$TRIAL"
        b=$(snapshot "")
        "${FAST[@]}" ip netns exec "$RTR" ethtool -S rtr0 >"$DIR/ethtool-b" 2>&1 || true
        if [[ -z $(pgrep -P "$GEN_PID" || true) ]]; then
            next="done the generator ended early (log: $OUT/logs/$(basename "$glog"))"
            log "WARNING: $2 ended during trial $n; the trial is left out"
            break
        fi
        "${FAST[@]}" python3 "$SEARCH_PY" trial "$key" "$n" "$next" "$a" "$b" "$DIR/ethtool-a" "$DIR/ethtool-b" >>"$TRIALS"
    done
    stop_search_generator
    set_rate 0
    SEARCHES+=("$key ${next#done }")
    log "  $1 with $2, $3 bytes: $(python3 "$SEARCH_PY" summary "$TRIALS" "$key") (${next#done })"
}

for router in $ROUTERS; do
    if ((SECONDS + 30 > MAX_TIME)); then
        for g in "${GENERATORS[@]}"; do
            for s in $FRAME_SIZES; do SEARCHES+=("$router $g $s skipped: MAX_TIME reached"); done
        done
        continue
    fi
    router_up "$router"
    for g in "${GENERATORS[@]}"; do
        for s in $FRAME_SIZES; do
            search "$router" "$g" "$s"
        done
    done
    router_down "$router"
done

# --- report ----------------------------------------------------------------------------------
mkdir -p "$OUT"
cp "$TRIALS" "$OUT/trials.jsonl"
META=$(python3 - "$TRIAL" "$ROUTER_CPU" "$GEN_CPU" "$ROUTES" "$LOAD_BEFORE" "$PACER_TOLERANCE_US" \
    "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)" "${SEARCHES[@]}" <<'EOF'
import json, platform, sys, time
trial, rtr_cpu, gen_cpu, routes, load, tolerance, rev, *searches = sys.argv[1:]
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(json.dumps({
    "date": time.strftime("%Y-%m-%d %H:%M %Z"), "machine": f"{model}, {platform.machine()}",
    "kernel": platform.release(), "revision": rev, "trial_s": int(trial), "router_cpu": int(rtr_cpu),
    "generator_cpu": int(gen_cpu), "routes": int(routes), "load_before": load, "pacer_tolerance_us": int(tolerance),
    "searches": [dict(zip(("router", "generator", "frame", "end"), s.split(" ", 3))) | {"frame": int(s.split()[2])}
                 for s in searches]}))
EOF
)
python3 "$SEARCH_PY" report "$TRIALS" "$OUT" "$JSON" "$META"
log "results in $OUT (bench-rfc2544.md, bench-rfc2544.json, trials.jsonl, logs/)"
