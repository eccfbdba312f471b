# shellcheck shell=bash
# The veth forwarding topology of the end-to-end benchmarks, sourced (not run) by
# scripts/bench-forward.sh and scripts/bench-rfc2544.sh so that both measure the same thing:
#
#   [gen: generator -> gen0 =veth= gw0 (XDP: the wire) gw1] =veth= [rtr0 router rtr1]
#                                                            =veth= [sink0 (tc: count, drop)]
#   gw1 192.0.2.2/24  rtr0 192.0.2.1/24  rtr1 198.51.100.1/24  sink0 198.51.100.2/24 (+ IPv6)
#
# bench-forward.sh's header explains the choices (the wire, the sink, threaded NAPI pinned with
# real-time priority, interrupt moderation, the counters). This file holds the pieces: checks,
# the namespaces and their cleanup, the BPF helpers of scripts/lib/bench-forward.bpf.c, the NAPI
# threads, trafgen's packet, xroute's two daemons, the counter snapshot and the kernel's copy of
# the full table.
#
# The caller sets BENCH (its name, for messages) and OUT (its results directory) before
# sourcing, then calls bench_check, bench_prepare and bench_setup in that order. Environment (defaults below): ROUTER_CPU, NICE,
# NAPI_FIFO, COALESCE_US, SINK_COALESCE_US, WIRE_COALESCE_US, TABLE, XROUTE_SHARED, ENGINE_ARGS.

ROUTER_CPU=${ROUTER_CPU:-1}
NICE=${NICE:--10}
NAPI_FIFO=${NAPI_FIFO:-1}
COALESCE_US=${COALESCE_US:-50}
SINK_COALESCE_US=${SINK_COALESCE_US:-100}
WIRE_COALESCE_US=${WIRE_COALESCE_US:-50}
GEN_CPU=0
# shellcheck disable=SC2034 # used by the scripts that source this
MAX_PPS=20000000  # bound on trafgen's packet count: far above what one core sends into veth

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SHARED=${XROUTE_SHARED:-$ROOT/../shared}
TABLE=${TABLE:-$SHARED/data/fib/prefixes.txt.gz}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release

die() { echo "$BENCH: $*" >&2; exit 1; }
log() { echo "$BENCH: $*" >&2; }

# Root, the table, two CPUs, the tools (the generator's, $@, besides the common ones) and the lock.
bench_check() {
    [[ $EUID -eq 0 ]] || die "needs root (it creates network namespaces)"
    [[ -f $TABLE ]] || die "no table at $TABLE (set TABLE or XROUTE_SHARED)"
    NCPU=$(nproc)
    [[ $NCPU -ge 2 ]] || die "needs at least 2 CPUs (one for the generator and sink, one for the router)"
    [[ $ROUTER_CPU =~ ^[0-9]+$ && $ROUTER_CPU -ne $GEN_CPU && $ROUTER_CPU -lt $NCPU ]] ||
        die "ROUTER_CPU must be a CPU other than $GEN_CPU (trafgen's) below $NCPU"
    for tool in "$@" ethtool clang python3 flock taskset renice; do
        command -v "$tool" >/dev/null || die "$tool is missing (scripts/install-deps.sh installs it)"
    done

    # One benchmark at a time: two would share the cores, and NAPI threads are found by name.
    # bench-forward.sh and bench-rfc2544.sh take the same lock (same interface names).
    mkdir -p /run/lock
    exec 9>/run/lock/xroute-bench-forward.lock
    flock -n 9 || die "another bench-forward.sh or bench-rfc2544.sh is running"
}

# Builds xroute's daemons; $1: what to tell the user if that fails or the engine cannot forward.
bench_build_xroute() {
    (cd "$ROOT" && cargo build --release --locked -q -p xroute-engine -p xroute-control) ||
        die "building xroute failed ($1)"
    "$BIN/xroute-engine" run --help | grep -q -- '--port' ||
        die "this xroute-engine has no --port (no forwarding data plane yet); $1"
}

# Names, the scratch directory and the cleanup trap; $1: namespace prefix (unique per run).
bench_prepare() {
    NS=$1
    GEN=${NS}g
    RTR=${NS}r
    SINK=${NS}s
    DIR=$(mktemp -d /dev/shm/xroute-fwd.XXXXXX)
    SOCK=$DIR/run/bench/control.sock
    ENGINE_PID=
    CONTROL_PID=
    GEN_PID=  # the generator's timeout process (stop_generator)
    ANCHORS=()
    mkdir -p "$DIR/run" "$DIR/logs"
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# Stops a process by pid: SIGTERM, up to 5 s, then SIGKILL.
stop_pid() {
    local pid=$1
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# A generator runs as timeout -> command [-> workers] (trafgen forks a worker, which can outlive
# its parent): SIGINT to every process of the tree, up to 5 s to exit cleanly (dpdk-testpmd
# detaches its XDP program then), SIGKILL to what is left, each by its pid.
stop_generator() {
    [[ -n $GEN_PID ]] || return 0
    local pids=() p c
    for p in $(pgrep -P "$GEN_PID" 2>/dev/null || true); do
        pids+=("$p")
        for c in $(pgrep -P "$p" 2>/dev/null || true); do pids+=("$c"); done
    done
    for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    for _ in $(seq 1 50); do
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && { sleep 0.1; continue 2; }; done
        break
    done
    for p in "${pids[@]}" "$GEN_PID"; do kill -KILL "$p" 2>/dev/null || true; done
    wait "$GEN_PID" 2>/dev/null || true
    GEN_PID=
    # The next run must not start while this one's packets still flow.
    for _ in $(seq 1 50); do
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && { sleep 0.1; continue 2; }; done
        return 0
    done
    log "generator (${pids[*]}) still running 5 s after SIGKILL"
    return 1
}

bench_cleanup() {
    stop_generator || true
    stop_pid "$ENGINE_PID"
    stop_pid "$CONTROL_PID"
    for p in "${ANCHORS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for ns in "$GEN" "$RTR" "$SINK"; do ip netns del "$ns" 2>/dev/null || true; done
    if [[ -d $DIR/logs ]]; then
        { mkdir -p "$OUT/logs" && cp -r "$DIR/logs/." "$OUT/logs/"; } 2>/dev/null || true
    fi
    rm -rf "$DIR"
}

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
mac_of() { ip -n "$1" -j link show "$2" | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["address"])'; }
ifindex_of() { ip -n "$1" -j link show "$2" | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["ifindex"])'; }

# A veth pair with one queue each way (veth with XDP wants rx queues >= the peer's tx queues).
veth() {
    ip -n "$1" link add "$2" numtxqueues 1 numrxqueues 1 type veth \
        peer name "$4" netns "$3" numtxqueues 1 numrxqueues 1
}

# How busy the machine is before anything starts (other builds share these cores): LOAD_BEFORE.
bench_load_before() {
    LOAD_BEFORE=$(python3 - "$GEN_CPU" "$ROUTER_CPU" <<'EOF'
import sys, time
def stat():
    out = {}
    for line in open("/proc/stat"):
        if line.startswith("cpu") and line[3].isdigit():
            v = [int(x) for x in line.split()[1:]]
            out[line.split()[0]] = (sum(v) - v[3] - v[4], sum(v))
    return out
a = stat(); time.sleep(2); b = stat()
busy = {c: 100 * (b[c][0] - a[c][0]) / max(1, b[c][1] - a[c][1]) for c in b}
print(f"generator core {busy['cpu' + sys.argv[1]]:.0f}% busy, router core {busy['cpu' + sys.argv[2]]:.0f}% busy")
EOF
)
    log "before starting, other work keeps the $LOAD_BEFORE"
}

# The three namespaces, their veths, addresses and routes (forwarding off everywhere).
bench_topology_up() {
    for ns in "$GEN" "$RTR" "$SINK"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
    veth "$GEN" gen0 "$GEN" gw0
    veth "$GEN" gw1 "$RTR" rtr0
    veth "$RTR" rtr1 "$SINK" sink0
    ip -n "$GEN" addr add 192.0.2.2/24 dev gw1
    ip -n "$GEN" addr add 2001:db8:1::2/64 dev gw1 nodad
    ip -n "$RTR" addr add 192.0.2.1/24 dev rtr0
    ip -n "$RTR" addr add 2001:db8:1::1/64 dev rtr0 nodad
    ip -n "$RTR" addr add 198.51.100.1/24 dev rtr1
    ip -n "$RTR" addr add 2001:db8:2::1/64 dev rtr1 nodad
    ip -n "$SINK" addr add 198.51.100.2/24 dev sink0
    ip -n "$SINK" addr add 2001:db8:2::2/64 dev sink0 nodad
    for l in gen0 gw0 gw1; do ip -n "$GEN" link set "$l" up; done
    for l in rtr0 rtr1; do ip -n "$RTR" link set "$l" up; done
    ip -n "$SINK" link set sink0 up
    # Forwarding is switched on per Linux run, in the router namespace only.
    in_ns "$RTR" sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0
    in_ns "$SINK" sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0
    ip -n "$SINK" route add blackhole 198.18.0.0/15
    ip -n "$RTR" route add 198.18.0.0/15 via 198.51.100.2
    # NAPI. The router's port, the wire and the sink each get a NAPI instance (rtr0 and sink0 from
    # GRO on, gw0 from its XDP program), run as a kthread (threaded NAPI) that each run pins to its
    # core with a real-time priority (napi_pid below): rtr0's on the router's core, gw0's and
    # sink0's on the generator's. In softirq instead, the wire and the sink would run wherever the
    # sending CPU is (the sink on the router's core), and under load the generator core's softirqs
    # go to ksoftirqd, which trafgen starves; the wire's ring then holds trafgen's skbs until its
    # send buffer runs out and trafgen aborts with EAGAIN.
    in_ns "$RTR" ethtool -K rtr0 gro on >/dev/null
    in_ns "$SINK" ethtool -K sink0 gro on >/dev/null
    # veth hands a frame to the peer's NAPI only if the sender has no TSO (or the frame could be
    # aggregated); with TSO on rtr1 the sink's receive would run in the backlog of the router's core.
    in_ns "$RTR" ethtool -K rtr1 tso off >/dev/null
}

# The wire (bench_wire on gw0) and the sink's counter (tc on sink0), from bench-forward.bpf.c
# compiled for this topology into $DIR/bench.o. Sets WIRE_IFINDEX, SINK_MAC, SINK_MAC_DEFS.
bench_attach_programs() {
    WIRE_IFINDEX=$(ifindex_of "$GEN" gw1)
    SINK_MAC=$(mac_of "$SINK" sink0)
    SINK_MAC_DEFS=()
    for i in 0 1 2 3 4 5; do SINK_MAC_DEFS+=("-DSINK_MAC$i=0x$(cut -d: -f$((i + 1)) <<<"$SINK_MAC")"); done
    clang -O2 -g -Wall -target bpf -I"/usr/include/$(uname -m)-linux-gnu" -DWIRE_IFINDEX="$WIRE_IFINDEX" \
        "${SINK_MAC_DEFS[@]}" -c "$ROOT/scripts/lib/bench-forward.bpf.c" -o "$DIR/bench.o"
    ip -n "$GEN" link set dev gw0 xdpdrv obj "$DIR/bench.o" program bench_wire
    tc -n "$SINK" qdisc add dev sink0 clsact
    tc -n "$SINK" filter add dev sink0 ingress bpf direct-action obj "$DIR/bench.o" sec tc
}

# Interrupt moderation, as NICs do it: a NAPI instance that found work polls again after a
# delay instead of being woken by the next frame, so frames arrive in batches rather than with
# one wake-up (an IPI, in a VM a VM exit) each.
napi_setup() {  # $1: namespace, $2: interface, $3: microseconds between polls (0: none)
    in_ns "$1" sh -c "echo 1 > /sys/class/net/$2/threaded"
    [[ $3 -gt 0 ]] || return 0
    in_ns "$1" sh -c "echo 2 > /sys/class/net/$2/napi_defer_hard_irqs; echo $(($3 * 1000)) > /sys/class/net/$2/gro_flush_timeout"
}

# Threaded NAPI with interrupt moderation for the wire, the router's port and the sink, and a
# check that the router reaches both sides.
bench_napi_up() {
    napi_setup "$GEN" gw0 "$WIRE_COALESCE_US"
    napi_setup "$RTR" rtr0 "$COALESCE_US"
    napi_setup "$SINK" sink0 "$SINK_COALESCE_US"

    in_ns "$RTR" ping -q -c 1 -W 3 198.51.100.2 >/dev/null || die "the router cannot reach the sink"
    in_ns "$RTR" ping -q -c 1 -W 3 192.0.2.2 >/dev/null || die "the router cannot reach the generator side"
}

# Processes that only sleep in each namespace, so that one read of /proc/PID/net/* gives all
# of a namespace's counters at once (bounded: they end by themselves after the longest run).
bench_anchors() {  # $1: seconds they live (longer than the whole run)
    for ns in "$GEN" "$RTR" "$SINK"; do
        ip netns exec "$ns" sleep "$1" &
        ANCHORS+=("$!")
    done
    sleep 0.2
    for i in 0 1 2; do
        ns=$(echo "$GEN $RTR $SINK" | cut -d' ' -f$((i + 1)))
        [[ $(stat -L -c %i "/proc/${ANCHORS[$i]}/ns/net") == $(stat -L -c %i "/run/netns/$ns") ]] ||
            die "the counter reader for $ns is not inside it"
    done
}

# The machine's load, then the whole topology: namespaces, programs, NAPI threads, anchors.
bench_setup() {  # $1: seconds the anchors live (longer than the whole run)
    bench_load_before
    bench_topology_up
    bench_attach_programs
    bench_napi_up
    bench_anchors "$1"
}

hexmac() { echo "0x${1//:/, 0x}"; }

# trafgen's packet into $1: UDP over IPv4 from 192.0.2.2 to the router's MAC, frames of $2 bytes
# with the FCS (default 64: 60 bytes + FCS, 18 bytes of payload). Ethernet, IPv4 (DF, TTL 64,
# checksum filled in per packet), UDP without checksum, zero payload. Destination: 198.18 or
# .19 alternating, last two bytes random. Sets RTR_MAC and GW_MAC.
bench_trafgen_config() {
    local size=${2:-64}
    [[ $size =~ ^[0-9]+$ && $size -ge 64 && $size -le 1518 ]] || die "frame size $size is not within 64-1518"
    RTR_MAC=$(mac_of "$RTR" rtr0)
    GW_MAC=$(mac_of "$GEN" gw1)
    cat >"$1" <<EOF
{
  $(hexmac "$RTR_MAC"), $(hexmac "$GW_MAC"), c16(0x0800),
  0x45, 0x00, c16($((size - 18))), c16(0), c16(0x4000), 64, 17, csumip(14, 33),
  192, 0, 2, 2,
  198, dinc(18, 19), drnd(), drnd(),
  c16(4096), c16(9), c16($((size - 38))), c16(0),
  fill(0x00, $((size - 46)))
}
EOF
}

# The NAPI kthread of $1, pinned to CPU $2 with the real-time priority a NIC's softirq would
# have over tasks ($3, default 1; NAPI_FIFO=0: NICE instead). XDP attach and detach can re-create
# it, so it is looked up before every run.
napi_pid() {  # $1: interface, $2: CPU, $3: SCHED_FIFO priority
    local pids
    pids=$(pgrep "^napi/$1-[0-9]+\$" || true)
    [[ -n $pids ]] || die "no NAPI thread for $1 (is threaded NAPI supported?)"
    [[ $(wc -w <<<"$pids") -eq 1 ]] || die "several napi/$1-* threads ($pids): another veth named $1 with threaded NAPI?"
    taskset -pc "$2" "$pids" >/dev/null
    if [[ $NAPI_FIFO -eq 1 ]]; then
        chrt -f -p "${3:-1}" "$pids"
    else
        renice -n "$NICE" -p "$pids" >/dev/null
    fi
    echo "$pids"
}

# --- xroute ----------------------------------------------------------------------------------
write_config() {  # $1: file, $2: "full" for the [[route-file]]
    cat >"$1" <<EOF
[router]
instance = "bench"
run-dir = "$DIR/run"
shm-dir = "$DIR"

[[interface]]
name = "rtr0"
address = ["192.0.2.1/24", "2001:db8:1::1/64"]

[[interface]]
name = "rtr1"
address = ["198.51.100.1/24", "2001:db8:2::1/64"]

[[route]]
prefix = "198.18.0.0/15"
via = "198.51.100.2"
EOF
    if [[ ${2:-} == full ]]; then
        printf '\n[[route-file]]\npath = "%s"\nvia = ["198.51.100.2", "2001:db8:2::2"]\n' "$TABLE" >>"$1"
    fi
}

CTL() { "$BIN/xroutectl" --socket "$SOCK" "$@"; }

start_control() {  # $1: config
    rm -f "$SOCK"
    ip netns exec "$RTR" "$BIN/xroute-control" --config "$1" >>"$DIR/logs/control.log" 2>&1 &
    CONTROL_PID=$!
    for _ in $(seq 1 600); do
        [[ -S $SOCK ]] && return 0
        kill -0 "$CONTROL_PID" 2>/dev/null || die "xroute-control exited (logs in $OUT/logs/control.log)"
        sleep 0.05
    done
    die "xroute-control's socket never appeared"
}

start_engine() {  # $1: log file
    # shellcheck disable=SC2086 # ENGINE_ARGS is a list of words
    ip netns exec "$RTR" nice -n "$NICE" "$BIN/xroute-engine" run --instance bench --shm-dir "$DIR" \
        --run-dir "$DIR/run" --port rtr0 --port rtr1 --cores "$ROUTER_CPU" --xdp-mode auto ${ENGINE_ARGS:-} >"$1" 2>&1 &
    ENGINE_PID=$!
    for _ in $(seq 1 400); do
        grep -qs 'forwarding on' "$1" && break
        kill -0 "$ENGINE_PID" 2>/dev/null || die "xroute-engine exited: $(tail -n 3 "$1")"
        sleep 0.05
    done
    grep -q 'forwarding on' "$1" || die "xroute-engine did not start forwarding within 20 s: $(tail -n 3 "$1")"
    CTL fib wait --timeout 120 >/dev/null
}

stop_engine() {
    stop_pid "$ENGINE_PID"
    ENGINE_PID=
    # A clean stop detaches XDP; make sure, since the next run may be Linux forwarding.
    local l
    for l in rtr0 rtr1; do
        if ip -n "$RTR" link show "$l" | grep -q 'prog/xdp'; then
            log "warning: XDP still attached to $l after the engine stopped; detaching it"
            ip -n "$RTR" link set dev "$l" xdp off
        fi
    done
}

# Prints one JSON object: time, the three namespaces' interface counters, the sink's IPv4
# InReceives, the router tasks' CPU time (ns, every thread) and /proc/stat of both cores.
# It runs at a real-time priority above the NAPI threads (on the generator's core, so that the
# router is not disturbed): at normal priority, on a loaded core, it could take seconds.
snapshot() {  # $1: pids of the generator core's tasks (comma-separated), $2...: the router's tasks
    taskset -c "$GEN_CPU" chrt -f 3 python3 - "${ANCHORS[@]}" "$GEN_CPU" "$ROUTER_CPU" "$@" <<'EOF'
import json, os, sys, time
gen, rtr, sink, gen_cpu, rtr_cpu, gen_tasks, *tasks = sys.argv[1:]
t = time.monotonic_ns()
def netdev(pid):
    out = {}
    for line in open(f"/proc/{pid}/net/dev").readlines()[2:]:
        name, data = line.split(":", 1)
        f = [int(x) for x in data.split()]
        out[name.strip()] = {"rx": f[1], "rx_drop": f[3], "tx": f[9], "tx_drop": f[11]}
    return out
def ip_in_receives(pid):
    lines = [l.split() for l in open(f"/proc/{pid}/net/snmp") if l.startswith("Ip:")]
    return int(lines[1][lines[0].index("InReceives")])
def threads(pid):
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            comm = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
            out[f"{tid} {comm}"] = int(open(f"/proc/{pid}/task/{tid}/schedstat").read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return out
def stat(cpu):
    for line in open("/proc/stat"):
        if line.startswith(f"cpu{cpu} "):
            v = [int(x) for x in line.split()[1:]]
            return {"busy": sum(v) - v[3] - v[4], "softirq": v[6], "total": sum(v)}
print(json.dumps({"t": t, "gen": netdev(gen), "rtr": netdev(rtr), "sink": netdev(sink),
                  "sink_ip_in": ip_in_receives(sink), "router_threads": {k: v for p in tasks for k, v in threads(p).items()},
                  "gen_threads": {k: v for p in gen_tasks.split(",") if p for k, v in threads(p).items()},
                  "gen_cpu": stat(gen_cpu), "rtr_cpu": stat(rtr_cpu), "hz": os.sysconf("SC_CLK_TCK")}))
EOF
}

# The full table into the router namespace's kernel FIB, every route via the sink (ip -batch);
# sets ROUTES (count) and KERNEL_INSTALL (seconds).
bench_kernel_table() {
    ROUTES=${ROUTES:-$(zcat -f "$TABLE" | grep -c .)}
    log "installing $ROUTES routes into the router namespace's kernel FIB (ip -batch)"
    zcat -f "$TABLE" | tr -d '\r' |
        awk 'NF { if (index($1, ":")) print "route add " $1 " via 2001:db8:2::2"; else print "route add " $1 " via 198.51.100.2" }' \
            >"$DIR/kernel.batch"
    local t0
    t0=$(date +%s.%N)
    timeout 600 ip -n "$RTR" -batch "$DIR/kernel.batch"
    KERNEL_INSTALL=$(python3 -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.1f}')" "$t0")
    ip -n "$RTR" route replace 198.18.0.0/15 via 198.51.100.2
    ip -n "$RTR" route get 198.19.1.1 | grep -q 'via 198.51.100.2 dev rtr1' ||
        die "198.18.0.0/15 does not go to the sink with the full table: $(ip -n "$RTR" route get 198.19.1.1)"
    log "kernel FIB: $(ip -n "$RTR" -4 route show | wc -l) IPv4 and $(ip -n "$RTR" -6 route show | wc -l) IPv6 routes, installed in ${KERNEL_INSTALL}s"
}
