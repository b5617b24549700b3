#!/usr/bin/env bash
# Runs every check and test of Pricecast against real services.
#
# Starts what the tests need and fails loudly when it cannot:
#   - PostgreSQL: uses the server on 127.0.0.1:5432 when it answers, else starts a throwaway
#     cluster (initdb + pg_ctl) in a temporary folder, stopped again on exit.
# Then: cargo fmt --check, cargo clippy -D warnings, cargo nextest run --workspace.
#
# Environment:
#   CARGO_TARGET_DIR        build cache (default: $HOME/.cache/pricecast-target)
#   PRICECAST_TEST_PG_URL   admin URL of a PostgreSQL server to use instead of probing
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pricecast-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

say() { printf '\n==> %s\n' "$*"; }
die() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }

cleanup_actions=()
cleanup() {
  for action in "${cleanup_actions[@]}"; do eval "$action" || true; done
}
trap cleanup EXIT

# --- PostgreSQL ---------------------------------------------------------------------------
pg_answers() { psql "$1" -Atqc 'SELECT 1' >/dev/null 2>&1; }

find_pg_bin() {
  local dir
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir; return
  fi
  for dir in /usr/lib/postgresql/*/bin /usr/local/pgsql/bin /usr/local/bin /usr/bin; do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then echo "$dir"; return; fi
  done
  return 1
}

start_throwaway_postgres() {
  local bin dir port runner=()
  bin=$(find_pg_bin) || die "no PostgreSQL server answers on 127.0.0.1:5432 and initdb/pg_ctl are not installed (apt-get install postgresql)"
  dir=$(mktemp -d /tmp/pricecast-pg.XXXXXX)
  port=55432
  if [ "$(id -u)" = 0 ]; then
    # initdb refuses to run as root: run the cluster as the postgres user.
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$dir"
    runner=(runuser -u postgres --)
  fi
  "${runner[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  "${runner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start \
    >/dev/null || { cat "$dir/server.log" >&2; die "could not start a throwaway PostgreSQL"; }
  cleanup_actions+=("${runner[*]} $bin/pg_ctl -D $dir/data -m immediate stop >/dev/null 2>&1; rm -rf $dir")
  export PRICECAST_TEST_PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

say "PostgreSQL"
if [ -n "${PRICECAST_TEST_PG_URL:-}" ]; then
  pg_answers "$PRICECAST_TEST_PG_URL" || die "PRICECAST_TEST_PG_URL=$PRICECAST_TEST_PG_URL does not answer"
elif pg_answers "postgres://postgres@127.0.0.1:5432/postgres"; then
  export PRICECAST_TEST_PG_URL="postgres://postgres@127.0.0.1:5432/postgres"
else
  start_throwaway_postgres
fi
pg_answers "$PRICECAST_TEST_PG_URL" || die "PostgreSQL at $PRICECAST_TEST_PG_URL does not answer"
echo "using $PRICECAST_TEST_PG_URL ($(psql "$PRICECAST_TEST_PG_URL" -Atqc 'SHOW server_version'))"
# Databases left behind by earlier test runs.
psql "$PRICECAST_TEST_PG_URL" -Atqc \
  "SELECT 'DROP DATABASE IF EXISTS ' || quote_ident(datname) || ' WITH (FORCE);' FROM pg_database WHERE datname LIKE 'pricecast\_test\_%'" \
  | psql "$PRICECAST_TEST_PG_URL" -q >/dev/null

# --- Checks and tests ----------------------------------------------------------------------
command -v cargo-nextest >/dev/null 2>&1 || die "cargo-nextest is not installed (cargo install cargo-nextest --locked)"

say "cargo fmt --check"
cargo fmt --all --check

say "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

say "cargo nextest"
cargo nextest run --workspace --locked --no-fail-fast "$@"
