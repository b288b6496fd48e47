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
# `git http-backend`, which Debian's git package carries but minimal builds may leave out).
ensure_build_packages() {
  local missing=()
  command -v cc >/dev/null 2>&1 || missing+=(build-essential)
  command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
  if ! command -v git >/dev/null 2>&1 || [ ! -x "$(git --exec-path)/git-http-backend" ]; then
    missing+=(git)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# The path of a release binary cargo built: CARGO_TARGET_DIR, when set, moves the build.
release_binary() {
  printf '%s/release/%s\n' "${CARGO_TARGET_DIR:-target}" "$1"
}

# promtool checks deploy/monitoring/ (the alert rules, and the dashboard's queries in the
# end-to-end tests). Debian ships it in the prometheus package; its service is not needed
# and not started here.
ensure_promtool() {
  command -v promtool >/dev/null 2>&1 && return 0
  log "installing promtool (the distribution's prometheus package)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    as_root systemctl stop prometheus || true
  fi
}

# The URL of database DB on the server DATABASE_URL points at, with the same credentials and
# options (sqlx::test needs a role that may create databases, so that role may make DB too).
sibling_database_url() {
  local db=$1 base=${DATABASE_URL%%\?*} rest
  local query=${DATABASE_URL#"$base"}
  rest=${base#*://}
  if [[ $rest == */* ]]; then base=${base%/*}; fi
  printf '%s/%s%s\n' "$base" "$db" "$query"
}

# sqlx-cli at the version of the sqlx crate in Cargo.lock, so the offline data it writes and
# checks is in the format the compile-time macros read.
ensure_sqlx_cli() {
  local want have
  want=$(awk '$0 == "name = \"sqlx\"" { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
  case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) export PATH="$HOME/.cargo/bin:$PATH" ;; esac
  have=$(sqlx --version 2>/dev/null | awk '{ print $2 }') || true
  if [ "$have" != "$want" ]; then
    log "installing sqlx-cli $want"
    cargo install sqlx-cli --version "$want" --no-default-features --features postgres,rustls --locked --quiet
  fi
}

# check_sqlx_offline_data: fails when the committed .sqlx/ does not match the queries and the
# schema of migrations/, checked against database relay_sqlx_check migrated from scratch.
check_sqlx_offline_data() {
  local url
  ensure_sqlx_cli
  url=$(sibling_database_url relay_sqlx_check)
  # A copy left by another role cannot be dropped; say so rather than stop without a word.
  if ! sqlx database drop -y --database-url "$url" >/dev/null; then
    log "cannot drop relay_sqlx_check (owned by another role?); drop it as its owner and rerun"
    return 1
  fi
  sqlx database create --database-url "$url"
  sqlx migrate run --source migrations --database-url "$url" >/dev/null
  DATABASE_URL=$url SQLX_OFFLINE=false cargo sqlx prepare --check --workspace -- --all-targets --locked
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
