#!/usr/bin/env bash
# xroute's main job, for now: build the FIB from the real full Internet table
# (../shared/data/fib/prefixes.txt.gz), verify it, and report build time, memory and lookup rate.
# Usage: scripts/demo.sh [extra xroute-engine load-table arguments, e.g. --groups 1 --json]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked -p xroute-engine --bin xroute-engine
exec ./target/release/xroute-engine load-table \
  --lookup 192.0.2.1 --lookup 1.1.1.1 --lookup 8.8.8.8 --lookup 2001:db8::1 --lookup 2a00:1450:4001::1 "$@"
