# shellcheck shell=bash
# Makes a PostgreSQL server reachable on 127.0.0.1:5432 with a `relay` role that may create
# databases, installing and starting PostgreSQL from the distribution's packages if needed.
# Sourced by scripts/up.sh and scripts/test.sh. Honors an existing DATABASE_URL untouched.

RELAY_PG_HOST=${RELAY_PG_HOST:-127.0.0.1}
RELAY_PG_PORT=${RELAY_PG_PORT:-5432}

log() { printf '==> %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

pg_up() {
  pg_isready -q -h "$RELAY_PG_HOST" -p "$RELAY_PG_PORT" 2>/dev/null
}

install_postgres() {
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ] && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then
    return
  fi
  log "installing PostgreSQL from the distribution's packages"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-client >/dev/null
}

start_postgres() {
  local version
  for version in $(ls /etc/postgresql 2>/dev/null); do
    log "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null \
      || as_root pg_ctlcluster "$version" main start || true
  done
  for _ in $(seq 1 60); do
    pg_up && return 0
    sleep 0.5
  done
  log "PostgreSQL did not come up on $RELAY_PG_HOST:$RELAY_PG_PORT"
  return 1
}

# Runs SQL as a superuser: over the local socket as the postgres user, or over TCP where the
# server trusts local connections.
pg_admin() {
  as_postgres psql -v ON_ERROR_STOP=1 -qtA -c "$1" 2>/dev/null \
    || psql -v ON_ERROR_STOP=1 -qtA -h "$RELAY_PG_HOST" -p "$RELAY_PG_PORT" -U postgres -c "$1"
}

ensure_role_and_database() {
  local db=$1
  pg_admin "DO \$\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'relay') THEN
        CREATE ROLE relay LOGIN CREATEDB PASSWORD 'relay';
      END IF;
    END \$\$;" >/dev/null
  if [ "$(pg_admin "SELECT 1 FROM pg_database WHERE datname = '$db'")" != "1" ]; then
    pg_admin "CREATE DATABASE $db OWNER relay" >/dev/null
  else
    # A database made by hand (as postgres) would leave the relay role unable to use it.
    pg_admin "ALTER DATABASE $db OWNER TO relay" >/dev/null
  fi
}

# ensure_postgres DB: exports DATABASE_URL for database DB (created if missing).
ensure_postgres() {
  local db=$1
  if [ -n "${DATABASE_URL:-}" ]; then
    log "using DATABASE_URL from the environment"
    return 0
  fi
  if ! command -v pg_isready >/dev/null 2>&1 || ! pg_up; then
    pg_up 2>/dev/null || { install_postgres; start_postgres; }
  fi
  ensure_role_and_database "$db"
  export DATABASE_URL="postgres://relay:relay@$RELAY_PG_HOST:$RELAY_PG_PORT/$db"
  log "PostgreSQL ready: database $db on $RELAY_PG_HOST:$RELAY_PG_PORT"
}

# Build prerequisites beyond Rust: a C toolchain and pkg-config (libgit2 is built from source),
# and git itself (the mirror's network transport, and tests serve repositories through
# `git http-backend`).
ensure_build_packages() {
  local missing=()
  command -v cc >/dev/null 2>&1 || missing+=(build-essential)
  command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
  command -v git >/dev/null 2>&1 || missing+=(git)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# Headless Chromium and its WebDriver, for the console's browser test (which fails under CI
# without them). Both from the distribution's packages.
ensure_browser() {
  if { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; } \
    && command -v chromedriver >/dev/null 2>&1; then
    return 0
  fi
  log "installing chromium and chromium-driver"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
}
