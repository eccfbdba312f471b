#!/usr/bin/env bash
# FIB benchmarks on the real full table, xroute beside prefix-trie on the same addresses, then a
# Markdown table of medians with spread (the README's figures come from this).
# Usage: scripts/bench-fib.sh [criterion filter, e.g. lookup_v4]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo bench --locked -p xroute-benches --bench fib -- "$@"
python3 scripts/fib-bench-report.py
