#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, then formatting, lints, every
# test (unit, property, real-table, concurrency; as root also the control+engine process tests
# in network namespaces, which skip with a reason otherwise), a compile check of the benchmarks
# and checks of the benchmark kit (scripts, RFC 2544 search, TRex profile).
# Tests run in the `ci` profile: release speed with debug assertions and overflow checks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n== %s\n' "$*"; }
step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings
step "cargo bench --no-run"
cargo bench --locked --workspace --no-run
step "cargo test"
# The process tests in tests/ run the daemons' binaries: build them first (cargo test builds a
# package's binaries only for that package's own integration tests).
cargo build --locked --workspace --profile ci --bins
cargo test --locked --workspace --profile ci
step "loom model checks of the FIB's reclamation protocol"
CARGO_TARGET_DIR=target/loom RUSTFLAGS="--cfg loom" cargo test --locked --release -p xroute-engine --lib loom
step "benchmark kit: scripts parse, the RFC 2544 search, the TRex profile"
for f in scripts/*.sh scripts/lib/*.sh scripts/trex/*.sh; do bash -n "$f"; done
python3 scripts/lib/rfc2544.py selftest
# Installs TRex's client library from PyPI into target/trex-venv on first use; skips (with the
# reason) when that is not possible, fails when the profile is wrong.
bash scripts/trex/check-profile.sh
