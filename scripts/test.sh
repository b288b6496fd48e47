#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and end-to-end tests against a real PostgreSQL
# (installed and started here if the machine has none).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/setup.sh
. scripts/lib/setup.sh

ensure_build_packages
ensure_postgres relay_test

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "cargo test"
cargo test --workspace --locked
