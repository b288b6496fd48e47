#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and end-to-end tests against a real PostgreSQL
# (installed and started here if the machine has none).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/postgres.sh
. scripts/lib/postgres.sh

ensure_postgres relay_test
command -v git >/dev/null 2>&1 || { as_root apt-get update -qq && as_root apt-get install -y -qq git >/dev/null; }

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "cargo test"
cargo test --workspace --locked
