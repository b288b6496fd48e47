#!/usr/bin/env bash
# Runs each fuzz target (both payload parsers, the signature path) for a bounded time,
# seeded with the real webhook bodies in fixtures/. Usage: scripts/fuzz.sh [seconds]
# cargo fuzz on the stable toolchain runs without a sanitizer (-s none): it still finds
# panics, overflows and aborts, which is what these targets look for.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
mkdir -p "$corpus/parse_cloud" "$corpus/parse_server" "$corpus/signature"
cp fixtures/bitbucket-cloud/*.json "$corpus/parse_cloud/"
for f in fixtures/bitbucket-server/*.json; do
  { printf '\000'; cat "$f"; } > "$corpus/parse_server/$(basename "$f")"
done
cp fixtures/bitbucket-cloud/push.json "$corpus/signature/"
for target in parse_cloud parse_server signature; do
  echo "==> fuzzing $target for ${seconds}s"
  (cd fuzz && cargo fuzz run --sanitizer none "$target" "$corpus/$target" -- \
      -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 2>&1 | tail -n 3)
done
