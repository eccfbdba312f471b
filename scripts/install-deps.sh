#!/usr/bin/env bash
# Installs what building and testing xroute needs on Debian 12, idempotently: Debian packages
# that are missing, and a Rust toolchain (rustup, stable) if there is no recent enough cargo.
# Safe to run again; does nothing when everything is present.
#
#   bash scripts/install-deps.sh          # what building and testing need
#   bash scripts/install-deps.sh bench    # also the optional benchmark tools: dpdk-testpmd with
#                                         # its AF_XDP driver (scripts/bench-rfc2544.sh --generator testpmd)
set -euo pipefail

MIN_RUST="1.85"
APT_PACKAGES=(ca-certificates curl gcc libc6-dev pkg-config python3 gzip iproute2 procps iputils-ping traceroute ethtool
  clang llvm libelf-dev zlib1g-dev linux-libc-dev make)
# scripts/bench-forward.sh: trafgen (the traffic generator) and util-linux (flock, taskset, renice).
APT_PACKAGES+=(netsniff-ng util-linux)
# The BGP interop tests and benchmark run BIRD 2 and FRR's bgpd inside network namespaces.
APT_PACKAGES+=(bird2 frr)
# tests/tests/systemd_units.rs: strace (the system calls and socket families the daemons use),
# systemd-analyze (verify the units, expand their SystemCallFilter); setpriv and prlimit come
# with util-linux.
APT_PACKAGES+=(strace systemd)
# scripts/trex/check-profile.sh (run by test.sh) installs TRex's client library into a venv.
APT_PACKAGES+=(python3-venv)
# Optional groups, installed only when named on the command line.
for group in "$@"; do
  case $group in
    # dpdk-testpmd is in dpdk-dev; its AF_XDP driver (net_af_xdp) is a plugin of its own that
    # dpdk-dev does not pull in without recommends.
    bench) APT_PACKAGES+=(dpdk-dev librte-net-af-xdp23) ;;
    *) printf '[install-deps] unknown group %s (known: bench)\n' "$group" >&2; exit 2 ;;
  esac
done
# Packages whose system services must not start: the tests run their own instances, in their
# own namespaces, and the machine's routing is not ours to touch.
NO_SERVICE=(bird frr)

log() { printf '[install-deps] %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root for: $*"; exit 1; fi
}

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  # policy-rc.d 101 keeps invoke-rc.d from starting the daemons these packages ship (BIRD,
  # FRR) on the host; an existing policy is left as it is.
  policy_rc=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy_rc=/usr/sbin/policy-rc.d
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy_rc && chmod +x $policy_rc"
  fi
  status=0
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" || status=$?
  [ -z "$policy_rc" ] || as_root rm -f "$policy_rc"
  [ "$status" -eq 0 ] || exit "$status"
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    for s in "${NO_SERVICE[@]}"; do
      as_root systemctl disable --now "$s" >/dev/null 2>&1 || true
    done
  fi
fi

# Rust: prefer what is on PATH or in ~/.cargo; install rustup's stable toolchain otherwise.
export PATH="$HOME/.cargo/bin:$PATH"
version_ok() {
  command -v cargo >/dev/null || return 1
  local v; v=$(cargo --version | awk '{print $2}')
  [ "$(printf '%s\n%s\n' "$MIN_RUST" "$v" | sort -V | head -n1)" = "$MIN_RUST" ]
}
if ! version_ok; then
  if command -v rustup >/dev/null; then
    log "updating the Rust toolchain (need >= $MIN_RUST)"
    rustup toolchain install stable --profile minimal
    rustup default stable
  else
    log "installing Rust (rustup, stable, minimal profile)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  fi
fi
if command -v rustup >/dev/null; then
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
  done
fi
version_ok || { log "cargo >= $MIN_RUST is still missing"; exit 1; }
log "ready: $(cargo --version)"
