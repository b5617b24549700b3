#!/usr/bin/env bash
# Runs every check and test of Pricecast against real services.
#
# Starts what the tests need and fails loudly when it cannot:
#   - PostgreSQL: uses the server on 127.0.0.1:5432 when it answers, else starts a throwaway
#     cluster (initdb + pg_ctl) in a temporary folder, stopped again on exit.
#   - An S3 server (moto's standalone server) on a free loopback port, with credential checks
#     on, a test user and the test bucket; stopped on exit. moto, pyarrow and polars (the
#     lake tests' independent readers) live in a cached virtualenv, reinstalled when the
#     requirement list below changes.
#   - Two MLflow tracking servers on free loopback ports (sqlite backends): one serving
#     artifacts through its proxy, one with artifacts in the S3 server; MLflow lives in its own
#     cached virtualenv (it pins an older pyarrow). Stopped on exit.
#   - the PostgreSQL ODBC driver (the sync tests' warehouse; the driver manager is built into
#     the binaries), registered in /etc/odbcinst.ini.
# What a fresh machine lacks is installed first: Debian/Ubuntu packages (PostgreSQL server and
# client, python3-venv, the PostgreSQL ODBC driver, kubectl) with apt-get, as root or through
# sudo, and cargo-nextest and cargo-deny with cargo install. Without either, it stops naming what
# to install. Then: cargo fmt --check, cargo clippy -D warnings, cargo deny check bans licenses
# sources (deny.toml; offline: the advisory check needs the RustSec database and is run apart,
# see docs/TESTING.md), cargo build of the binaries, and cargo nextest run --workspace.
#
# Environment:
#   CARGO_TARGET_DIR        build cache (default: $HOME/.cache/pricecast-target)
#   PRICECAST_TEST_PG_URL   admin URL of a PostgreSQL server to use instead of probing
#   PRICECAST_TEST_ODBC_DRIVER  ODBC driver of the warehouse tests (default: PostgreSQL Unicode)
#   PRICECAST_VENV          Python virtualenv for moto, pyarrow, polars (default: $HOME/.cache/pricecast-venv)
#   PRICECAST_MLFLOW_VENV   Python virtualenv for MLflow (default: $HOME/.cache/pricecast-venv-mlflow)
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pricecast-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

say() { printf '\n==> %s\n' "$*"; }
die() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }

# --- What a fresh machine lacks -----------------------------------------------------------
PG_ODBC_DRIVER="${PRICECAST_TEST_ODBC_DRIVER:-PostgreSQL Unicode}"
odbc_driver_registered() {
  if command -v odbcinst >/dev/null 2>&1; then
    odbcinst -q -d 2>/dev/null | grep -qxF "[$PG_ODBC_DRIVER]"
  else
    grep -qxF "[$PG_ODBC_DRIVER]" /etc/odbcinst.ini 2>/dev/null
  fi
}
have_initdb() {
  command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}
say "System packages"
need_apt=()
command -v psql >/dev/null 2>&1 || need_apt+=(postgresql-client)
# The server is only started when none answers on 127.0.0.1:5432; cheap to have.
have_initdb || need_apt+=(postgresql)
# The lake, registry and deployment tests' tools run in Python virtualenvs.
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
# The sync tests' warehouse: PostgreSQL reached through its ODBC driver.
odbc_driver_registered || need_apt+=(odbc-postgresql)
# The deployment tests render the kustomize manifests.
command -v kubectl >/dev/null 2>&1 || need_apt+=(kubernetes-client)
if [ "${#need_apt[@]}" -gt 0 ]; then
  apt_get=()
  if [ "$(id -u)" = 0 ]; then
    apt_get=(apt-get)
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    apt_get=(sudo -n apt-get)
  fi
  command -v apt-get >/dev/null 2>&1 && [ "${#apt_get[@]}" -gt 0 ] \
    || die "missing ${need_apt[*]}: install them (Debian/Ubuntu: sudo apt-get install ${need_apt[*]}) or run this as root"
  echo "installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${apt_get[@]}" update -qq || die "apt-get update failed"
  "${apt_get[@]}" install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null \
    || die "apt-get install ${need_apt[*]} failed"
else
  echo "all present"
fi
if ! command -v cargo-nextest >/dev/null 2>&1; then
  say "cargo install cargo-nextest"
  cargo install cargo-nextest --locked || die "cannot install cargo-nextest"
fi
# The supply-chain gate (deny.toml). Pinned: a version that builds with the pinned toolchain.
CARGO_DENY_VERSION=0.20.2
if ! command -v cargo-deny >/dev/null 2>&1; then
  say "cargo install cargo-deny $CARGO_DENY_VERSION"
  cargo install cargo-deny --version "$CARGO_DENY_VERSION" --locked || die "cannot install cargo-deny"
fi

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
# Databases left behind by earlier test runs: only those nobody is connected to, so a second
# test run on the same server (another checkout) keeps its databases.
psql "$PRICECAST_TEST_PG_URL" -Atqc \
  "SELECT quote_ident(datname) FROM pg_database d WHERE datname LIKE 'pricecast\_test\_%'
     AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datid = d.oid)" \
  | while read -r leftover; do
      psql "$PRICECAST_TEST_PG_URL" -qc "DROP DATABASE IF EXISTS $leftover" >/dev/null 2>&1 || true
    done

# --- S3 server (moto) and the Python readers ----------------------------------------------
PY_REQUIREMENTS="moto[server]==5.2.5 pyarrow==26.0.1 polars==2.1.0 pandas==3.1.1 scikit-learn==1.9.1 kubernetes-validate==1.37.0 PyYAML==6.0.3"
VENV="${PRICECAST_VENV:-$HOME/.cache/pricecast-venv}"
say "Python tools: $PY_REQUIREMENTS"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.pricecast-requirements" 2>/dev/null)" != "$PY_REQUIREMENTS" ]; then
  python3 -m venv "$VENV" || die "cannot create a Python virtualenv at $VENV (apt-get install python3-venv)"
  # shellcheck disable=SC2086 # the list is word-split on purpose
  "$VENV/bin/pip" install --quiet --disable-pip-version-check $PY_REQUIREMENTS \
    || die "cannot install $PY_REQUIREMENTS into $VENV"
  echo "$PY_REQUIREMENTS" >"$VENV/.pricecast-requirements"
fi
echo "using $VENV"

say "S3 server (moto)"
s3_port=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
s3_log=$(mktemp /tmp/pricecast-moto.XXXXXX)
# Credentials are checked after the first 3 calls (the setup's IAM calls); parts may be small so
# that tests exercise multipart uploads without writing 5 MiB parts.
INITIAL_NO_AUTH_ACTION_COUNT=3 S3_UPLOAD_PART_MIN_SIZE=16384 \
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$s3_port" >"$s3_log" 2>&1 &
s3_pid=$!
cleanup_actions+=("kill $s3_pid 2>/dev/null; rm -f $s3_log")
s3_up=false
for _ in $(seq 1 150); do
  kill -0 "$s3_pid" 2>/dev/null || { cat "$s3_log" >&2; die "moto_server exited at start"; }
  if "$VENV/bin/python" -c "import socket; socket.create_connection(('127.0.0.1', $s3_port), 0.2)" 2>/dev/null; then
    s3_up=true; break
  fi
  sleep 0.2
done
$s3_up || { cat "$s3_log" >&2; die "moto_server did not answer on 127.0.0.1:$s3_port within 30 s"; }
export PRICECAST_TEST_S3_ENDPOINT="http://127.0.0.1:$s3_port"
export PRICECAST_TEST_S3_BUCKET="pricecast-test"
s3_keys=$("$VENV/bin/python" tests/python/s3_setup.py "$PRICECAST_TEST_S3_ENDPOINT" "$PRICECAST_TEST_S3_BUCKET") \
  || { cat "$s3_log" >&2; die "could not create the test user and bucket in moto"; }
PRICECAST_TEST_S3_ACCESS_KEY_ID=$(printf '%s' "$s3_keys" | "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["access_key_id"])')
PRICECAST_TEST_S3_SECRET_ACCESS_KEY=$(printf '%s' "$s3_keys" | "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["secret_access_key"])')
export PRICECAST_TEST_S3_ACCESS_KEY_ID PRICECAST_TEST_S3_SECRET_ACCESS_KEY
export PRICECAST_TEST_PYTHON="$VENV/bin/python"
echo "using $PRICECAST_TEST_S3_ENDPOINT, bucket $PRICECAST_TEST_S3_BUCKET"

# --- MLflow tracking servers (the model registry tests) ------------------------------------
# MLflow pins pyarrow<26 while the lake readers need a newer one, so MLflow (and boto3 for its
# S3 artifacts) lives in a virtualenv of its own, reinstalled when this list changes.
MLFLOW_REQUIREMENTS="mlflow==3.17.2 boto3==1.44.5"
MLFLOW_VENV="${PRICECAST_MLFLOW_VENV:-$HOME/.cache/pricecast-venv-mlflow}"
say "MLflow tracking servers: $MLFLOW_REQUIREMENTS"
if [ ! -x "$MLFLOW_VENV/bin/mlflow" ] || [ "$(cat "$MLFLOW_VENV/.pricecast-requirements" 2>/dev/null)" != "$MLFLOW_REQUIREMENTS" ]; then
  python3 -m venv "$MLFLOW_VENV" || die "cannot create a Python virtualenv at $MLFLOW_VENV (apt-get install python3-venv)"
  # shellcheck disable=SC2086 # the list is word-split on purpose
  "$MLFLOW_VENV/bin/pip" install --quiet --disable-pip-version-check $MLFLOW_REQUIREMENTS \
    || die "cannot install $MLFLOW_REQUIREMENTS into $MLFLOW_VENV"
  echo "$MLFLOW_REQUIREMENTS" >"$MLFLOW_VENV/.pricecast-requirements"
fi
free_port() { "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
mlflow_dir=$(mktemp -d /tmp/pricecast-mlflow.XXXXXX)
# MLflow 3 starts background job workers (huey) per server; the tests need none of them.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
mlflow_port=$(free_port)
mlflow_s3_port=$(free_port)
# (a) artifacts through the server's proxy (run artifact URIs mlflow-artifacts:/…).
setsid "$MLFLOW_VENV/bin/mlflow" server --backend-store-uri "sqlite:///$mlflow_dir/a.db" \
  --serve-artifacts --artifacts-destination "$mlflow_dir/artifacts" \
  --host 127.0.0.1 --port "$mlflow_port" --workers 1 >"$mlflow_dir/a.log" 2>&1 &
mlflow_pid=$!
cleanup_actions+=("kill -- -$mlflow_pid 2>/dev/null")
# (b) artifacts straight in the S3 server, like the seed app's MinIO (run artifact URIs s3://…).
MLFLOW_S3_ENDPOINT_URL="$PRICECAST_TEST_S3_ENDPOINT" AWS_ACCESS_KEY_ID="$PRICECAST_TEST_S3_ACCESS_KEY_ID" \
  AWS_SECRET_ACCESS_KEY="$PRICECAST_TEST_S3_SECRET_ACCESS_KEY" AWS_DEFAULT_REGION=us-east-1 \
  setsid "$MLFLOW_VENV/bin/mlflow" server --backend-store-uri "sqlite:///$mlflow_dir/b.db" \
  --default-artifact-root "s3://$PRICECAST_TEST_S3_BUCKET/mlflow" --no-serve-artifacts \
  --host 127.0.0.1 --port "$mlflow_s3_port" --workers 1 >"$mlflow_dir/b.log" 2>&1 &
mlflow_s3_pid=$!
cleanup_actions+=("kill -- -$mlflow_s3_pid 2>/dev/null; sleep 0.5; rm -rf $mlflow_dir")
wait_for_mlflow() { # pid port log
  for _ in $(seq 1 240); do
    kill -0 "$1" 2>/dev/null || { cat "$3" >&2; die "mlflow server on port $2 exited at start"; }
    if "$VENV/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$2/health', timeout=1)" 2>/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  cat "$3" >&2; die "mlflow server did not answer http://127.0.0.1:$2/health within 120 s"
}
wait_for_mlflow "$mlflow_pid" "$mlflow_port" "$mlflow_dir/a.log"
wait_for_mlflow "$mlflow_s3_pid" "$mlflow_s3_port" "$mlflow_dir/b.log"
export PRICECAST_TEST_MLFLOW_URI="http://127.0.0.1:$mlflow_port"
export PRICECAST_TEST_MLFLOW_S3_URI="http://127.0.0.1:$mlflow_s3_port"
export PRICECAST_TEST_MLFLOW_PYTHON="$MLFLOW_VENV/bin/python"
echo "using $PRICECAST_TEST_MLFLOW_URI (artifact proxy) and $PRICECAST_TEST_MLFLOW_S3_URI (artifacts in S3)"

# --- Warehouse: unixODBC + the PostgreSQL ODBC driver (stand-in for Databricks) ------------
say "ODBC warehouse driver"
odbc_driver_registered \
  || die "ODBC driver '$PG_ODBC_DRIVER' is not registered in /etc/odbcinst.ini (apt-get install odbc-postgresql)"
export PRICECAST_TEST_ODBC_DRIVER="$PG_ODBC_DRIVER"
pg_major=$(psql "$PRICECAST_TEST_PG_URL" -Atqc 'SHOW server_version_num')
[ "$pg_major" -ge 150000 ] || die "the sync tests need PostgreSQL 15 or later (MERGE); the server is $pg_major"
echo "using ODBC driver '$PRICECAST_TEST_ODBC_DRIVER'; warehouse databases are created per test (pricecast_test_wh_*)"

# --- Checks and tests ----------------------------------------------------------------------
say "cargo fmt --check"
cargo fmt --all --check

say "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

say "cargo deny check bans licenses sources"
# Licenses, banned or duplicate crates, and sources (crates.io only), from Cargo.lock and the
# local registry: no network needed. Any violation fails the run.
cargo deny --locked check --hide-inclusion-graph --show-stats bans licenses sources \
  || die "cargo deny found a supply-chain violation (deny.toml): see the errors above"
echo "not checked here: security advisories, which need the RustSec advisory database from the"
echo "network. Run 'cargo deny check advisories' where it can be fetched (docs/TESTING.md)."

say "cargo build (the binaries the end-to-end tests run as child processes)"
cargo build --workspace --bins --locked

say "cargo nextest"
cargo nextest run --workspace --locked --no-fail-fast "$@"
