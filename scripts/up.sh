#!/usr/bin/env bash
# Brings up a working relay on this machine: PostgreSQL (installed and started if needed), a
# database, a secret key kept in .relay/relay.env, a release build, migrations, then
# `relay serve` in the foreground. Run it again to restart; the key and data are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/setup.sh
. scripts/lib/setup.sh

ensure_build_packages
ensure_postgres relay

mkdir -p .relay/data
env_file=.relay/relay.env
log "building the relay (release)"
cargo build --release --locked -p relay
relay=$(release_binary relay)

if [ ! -f "$env_file" ]; then
  # Generated before the file is written: a key that failed to generate inside the heredoc
  # would leave a file with an empty key, which later runs would keep.
  key=$("$relay" secret-key:generate)
  umask 077
  cat > "$env_file.tmp" <<ENV
# Written by scripts/up.sh. Keep RELAY_SECRET_KEY: it decrypts the stored credentials.
DATABASE_URL=$DATABASE_URL
RELAY_SECRET_KEY=$key
RELAY_LISTEN=${RELAY_LISTEN:-0.0.0.0:8080}
RELAY_DATA_DIR=$PWD/.relay/data
ENV
  mv "$env_file.tmp" "$env_file"
  log "wrote $env_file (with a new RELAY_SECRET_KEY)"
fi
set -a
# shellcheck disable=SC1090
. "$env_file"
set +a

"$relay" migrate
if [ -z "${RELAY_PUBLIC_URL:-}" ]; then
  log "warning: RELAY_PUBLIC_URL is not set, so hook URLs use http://$RELAY_LISTEN, which Bitbucket"
  log "  cannot reach; set RELAY_PUBLIC_URL=https://your.public.host in $env_file (integration:add"
  log "  refuses to register such a hook on Bitbucket Cloud without --force)"
fi
log "relay serving on $RELAY_LISTEN; add an integration in another shell with:"
log "  set -a; . $env_file; set +a; $relay integration:add --type=bitbucket --repository=WORKSPACE/REPO --key=KEY --secret=SECRET"
exec "$relay" serve
