# Shared by scripts/demo.sh and scripts/bench-control.sh (sourced, not run): a network namespace
# with one veth port, and the two xroute daemons inside it.
# The caller sets BIN (release binaries), DIR (scratch directory, removed on cleanup), NS (the
# namespace) and PORT (the router's interface name), optionally ENGINE_ARGS (extra arguments of
# `xroute-engine run`, e.g. its ports) and EXTRA_NS (more namespaces to delete), and traps
# router_cleanup.

ENGINE_PID=
CONTROL_PID=

router_ns_up() {
    ip netns add "$NS"
    ip -n "$NS" link set lo up
    ip -n "$NS" link add "$PORT" type veth peer name "${PORT}p"
    ip -n "$NS" link set "$PORT" up
    ip -n "$NS" link set "${PORT}p" up
    mkdir -p "$DIR/run"
}

# Stops both daemons by pid (SIGTERM, then SIGKILL), deletes the namespace and the files.
router_cleanup() {
    for pid in $CONTROL_PID $ENGINE_PID; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    sleep 0.3
    for pid in $CONTROL_PID $ENGINE_PID; do
        kill -9 "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    for ns in ${EXTRA_NS:-}; do
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$DIR"
}

wait_socket() {
    for _ in $(seq 1 600); do
        [[ -S $1 ]] && return 0
        sleep 0.05
    done
    echo "$(basename "$0"): $1 never appeared" >&2
    exit 1
}

start_engine() {
    rm -f "$DIR/run/default/engine.sock"
    # shellcheck disable=SC2086 # ENGINE_ARGS is a list of words
    ip netns exec "$NS" "$BIN/xroute-engine" run --shm-dir "$DIR" --run-dir "$DIR/run" ${ENGINE_ARGS:-} >>"$DIR/engine.log" 2>&1 &
    ENGINE_PID=$!
    wait_socket "$DIR/run/default/engine.sock"
}

# Starts xroute-control with $CONFIG (default $DIR/xroute.toml) and waits for its socket.
start_control() {
    rm -f "$DIR/run/default/control.sock"
    ip netns exec "$NS" "$BIN/xroute-control" --config "${CONFIG:-$DIR/xroute.toml}" >>"$DIR/control.log" 2>&1 &
    CONTROL_PID=$!
    wait_socket "$DIR/run/default/control.sock"
}
