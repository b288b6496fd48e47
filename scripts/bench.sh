#!/usr/bin/env bash
# Ingest benchmark: relay vs the HTTP ceiling vs the database's single-row INSERT limit, in
# one run. Usage: scripts/bench.sh [concurrency] [seconds-per-phase] [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/setup.sh
. scripts/lib/setup.sh
ensure_build_packages
ensure_postgres relay_test
cargo build --release --locked -p relay-bench
exec "$(release_binary relay-bench)" "${1:-64}" "${2:-10}" "${3:-3}"
