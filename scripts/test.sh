#!/usr/bin/env bash
# The whole test suite: formatting, lints, the committed sqlx offline data, unit and end-to-end
# tests against a real PostgreSQL (installed and started here if the machine has none),
# including the console's browser test in headless Chromium (chromium and chromium-driver,
# installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/setup.sh
. scripts/lib/setup.sh

ensure_build_packages
ensure_promtool
ensure_browser
ensure_postgres relay_test

log "promtool check rules deploy/monitoring/alerts.yaml"
promtool check rules deploy/monitoring/alerts.yaml
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# Builds compile the queries against the committed .sqlx/ (SQLX_OFFLINE), which therefore must
# be what the queries and migrations/ give today: a stale .sqlx/ fails here, not in production.
log "cargo sqlx prepare --check"
check_sqlx_offline_data
log "cargo test"
results=$(mktemp)
trap 'rm -f "$results"' EXIT
cargo test --workspace --locked 2>&1 | tee "$results"
# CI (and anyone who sets RELAY_FUZZ_SECONDS) also fuzzes both payload parsers and the
# signature path for a bounded time.
if [ -n "${CI:-}" ] || [ -n "${RELAY_FUZZ_SECONDS:-}" ]; then
  log "fuzzing, ${RELAY_FUZZ_SECONDS:-20}s per target"
  bash scripts/fuzz.sh "${RELAY_FUZZ_SECONDS:-20}"
fi

# One closing line for the whole suite (cargo prints one per test binary, the last of which
# is often a doc-test run with nothing in it).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$results"
