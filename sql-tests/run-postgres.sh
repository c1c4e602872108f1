#!/usr/bin/env bash
# Validates the engine-agnostic sqllogictest suite (sql-tests/common/*.slt)
# against a throwaway PostgreSQL 15, so that every expected result in it is
# PostgreSQL's own answer.
#
# What it does:
#   1. installs the sqllogictest CLI (sqllogictest-bin 0.29.x) if it is missing;
#   2. initdb's a temporary cluster (C locale, UTF8, TimeZone=UTC, trust auth
#      on loopback only) and starts it on a free 127.0.0.1 port, as the
#      `postgres` user when run as root;
#   3. runs every file with `--engine postgres` (simple query protocol) and
#      `--engine postgres-extended` (extended protocol), each engine in its
#      own fresh database;
#   4. stops the server and removes the temporary directory (trap), whatever
#      happened.
#
# Usage:  sql-tests/run-postgres.sh [FILE.slt ...]     (default: common/*.slt)
# Environment:
#   PG_BIN       PostgreSQL 15 binaries   (default /usr/lib/postgresql/15/bin)
#   SLT_TIMEOUT  seconds allowed per engine run (default 600)
#   SLT_ENGINES  engines to run           (default "postgres postgres-extended")
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
SLT_VERSION="0.29.1"
SLT_TIMEOUT="${SLT_TIMEOUT:-600}"
SLT_ENGINES="${SLT_ENGINES:-postgres postgres-extended}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR_SLT:-/root/.cache/meridian/target-slt}"

log() { echo "run-postgres: $*" >&2; }

# --- 1. the sqllogictest CLI -------------------------------------------------
export PATH="$HOME/.cargo/bin:$PATH"
if ! sqllogictest --version 2>/dev/null | grep -q " 0\.29\."; then
    log "installing sqllogictest-bin $SLT_VERSION (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    timeout 1800 cargo install sqllogictest-bin --version "$SLT_VERSION" --locked
fi

# --- 2. a throwaway PostgreSQL 15 --------------------------------------------
if [ ! -x "$PG_BIN/postgres" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "installing postgresql-15"
        timeout 900 apt-get update -qq
        DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq postgresql-15 >/dev/null
    fi
    [ -x "$PG_BIN/postgres" ] || { log "no PostgreSQL binaries in $PG_BIN"; exit 1; }
fi

# Run PostgreSQL tools as `postgres` when we are root (initdb refuses root).
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

TMP="$(mktemp -d /tmp/meridian-slt-pg.XXXXXX)"
chmod 755 "$TMP"
[ "$(id -u)" = 0 ] && chown postgres: "$TMP"
DATA="$TMP/data"

cleanup() {
    if [ -f "$DATA/postmaster.pid" ]; then
        as_pg "$PG_BIN/pg_ctl" -D "$DATA" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

as_pg "$PG_BIN/initdb" -D "$DATA" -U postgres --auth=trust --no-locale -E UTF8 \
    --no-sync >"$TMP/initdb.log" 2>&1 || { cat "$TMP/initdb.log" >&2; exit 1; }

PORT=""
for _ in $(seq 1 20); do
    candidate=$((20000 + RANDOM % 20000))
    port_in_use "$candidate" && continue
    if as_pg "$PG_BIN/pg_ctl" -D "$DATA" -l "$TMP/server.log" -w -t 60 -o \
        "-c listen_addresses=127.0.0.1 -p $candidate -c unix_socket_directories=$TMP \
         -c TimeZone=UTC -c DateStyle=ISO,MDY -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=20 -c statement_timeout=60s" start >/dev/null; then
        PORT="$candidate"
        break
    fi
done
[ -n "$PORT" ] || { log "could not start PostgreSQL"; cat "$TMP/server.log" >&2; exit 1; }
log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT"

psql_admin() {
    as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres \
        -d postgres -c "$1"
}

# --- 3. run the suite --------------------------------------------------------
if [ "$#" -gt 0 ]; then
    FILES=("$@")
else
    FILES=("$HERE"/common/*.slt)
fi

status=0
for engine in $SLT_ENGINES; do
    db="slt_${engine//-/_}"
    psql_admin "CREATE DATABASE $db" >/dev/null
    log "engine $engine: ${#FILES[@]} file(s) in database $db"
    if ! RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0 timeout "$SLT_TIMEOUT" sqllogictest --engine "$engine" \
        --host 127.0.0.1 --port "$PORT" --db "$db" --user postgres --pass postgres \
        --shutdown-timeout 10 "${FILES[@]}"; then
        log "engine $engine: FAILED"
        status=1
    fi
done

if [ "$status" = 0 ]; then
    log "all files pass on both engines"
fi
exit "$status"
