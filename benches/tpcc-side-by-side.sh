#!/usr/bin/env bash
# TPC-C side by side: PostgreSQL 15 (fsync on), `meridian demo` (three
# replicas in one process) and a cluster of three `meridian start` processes,
# loaded with the same warehouses and run with the same connections and
# duration by the same driver (`meridian bench tpcc`). Prints one table:
# tpmC, New-Order p50/p99, retries, peak resident memory (Meridian's during
# the load and, separately, during the run; PostgreSQL's over both), and the
# ratio Meridian / PostgreSQL.
#
# Usage:  benches/tpcc-side-by-side.sh
# Environment:
#   WAREHOUSES   (default 1)     CONNECTIONS (default 4)
#   DURATION     seconds of the measured run (default 60)
#   RAMP         seconds of ramp-up before it, not measured (default 10)
#   MODE         throughput (default: no waits, CONNECTIONS terminals) or
#                spec (keying and think times, ten terminals per warehouse,
#                CONNECTIONS ignored; the table adds the efficiency)
#   SYSTEMS      which to run (default "postgres demo cluster")
#   PARTITION    1 (default): Meridian loads each warehouse into ranges of
#                its own, dealt round the groups (`--partition`), so
#                remote-warehouse transactions run two-phase commit; 0: each
#                table in a range of its own
#   KILL         1: SIGKILL cluster node 2 a third of the way into the run
#                and restart it 5 s later (the checks then run on the
#                survivors' and the restarted node's data); default 0
#   KEEP         1: keep the data directories and logs (default: removed)
#   MERIDIAN_BIN use this binary (default: a release build)
#
# PostgreSQL 15 must be installed (Debian: postgresql-15); it is started here
# on a temporary data directory and a free loopback port, as the postgres
# user, with fsync and synchronous_commit on, and stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

WAREHOUSES="${WAREHOUSES:-1}"
CONNECTIONS="${CONNECTIONS:-4}"
DURATION="${DURATION:-60}"
RAMP="${RAMP:-10}"
MODE="${MODE:-throughput}"
SYSTEMS="${SYSTEMS:-postgres demo cluster}"
PARTITION="${PARTITION:-1}"
KILL="${KILL:-0}"
KEEP="${KEEP:-0}"
PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"

if [ -n "${MERIDIAN_BIN:-}" ]; then
    BIN="$MERIDIAN_BIN"
else
    ensure_build_deps
    log "building meridian (release)"
    cargo build --release --locked -p meridian
    BIN="$CARGO_TARGET_DIR/release/meridian"
fi

TMP="$(mktemp -d /tmp/meridian-tpcc.XXXXXX)"
chmod 755 "$TMP"
PIDS=()
PG_STARTED=""
cleanup() {
    local pid
    adopt_node_2
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -n "$PG_STARTED" ]; then
        su postgres -s /bin/sh -c "$PGBIN/pg_ctl -D '$TMP/pg' -m fast stop" >/dev/null 2>&1 || true
    fi
    if [ "$KEEP" = 1 ]; then
        log "kept the data directories and logs in $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Peak resident memory (VmHWM) of a process, in MiB.
peak_mib() {
    awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"
}

# The peaks of the processes given, as "a/b/c".
peaks() {
    local pid
    for pid in "$@"; do peak_mib "$pid"; echo; done | paste -sd/
}

# Resets the peak of the processes given to their current resident memory
# (Linux clear_refs), so that the next peak_mib is the run's, not the load's.
reset_peaks() {
    local pid
    for pid in "$@"; do echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true; done
}

# Waits until the SQL endpoint at $1 answers.
wait_sql() {
    for _ in $(seq 1 300); do
        psql "$1" -qtAc 'SELECT 1' >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    log "no SQL at $1 within 60 s"
    return 1
}

# Runs the benchmark against URL $2, output in $TMP/$1.out; more arguments
# go to the loader (`--partition`). The peak memory of the processes in
# WATCH is taken after the load (LOAD_MEM) and reset, so that the one taken
# after the run is the run's own.
declare -A LOAD_MEM
WATCH=()
drive() {
    local name="$1" url="$2"
    shift 2
    log "$name: load $WAREHOUSES warehouse(s), run ${DURATION}s in $MODE mode after ${RAMP}s of ramp-up with $CONNECTIONS connections"
    # A failed run (or consistency check) is reported, and the others still run.
    "$BIN" bench tpcc --url "$url" --warehouses "$WAREHOUSES" \
        --connections "$CONNECTIONS" --load "$@" 2>&1 \
        | tee "$TMP/$name.out" || log "$name: the load failed (exit status ${PIPESTATUS[0]})"
    if [ "${#WATCH[@]}" -gt 0 ]; then
        LOAD_MEM[$name]="$(peaks "${WATCH[@]}")"
        reset_peaks "${WATCH[@]}"
    fi
    "$BIN" bench tpcc --url "$url" --warehouses "$WAREHOUSES" \
        --connections "$CONNECTIONS" --duration "$DURATION" --ramp-up "$RAMP" \
        --mode "$MODE" --run --check 2>&1 \
        | tee -a "$TMP/$name.out" || log "$name: the driver failed (exit status ${PIPESTATUS[0]})"
}

# What the Meridian loads add.
meridian_args() {
    [ "$PARTITION" = 1 ] && echo --partition || true
}

declare -A MEM
start_postgres() {
    local port; port="$(free_port)"
    # $TMP belongs to root: the server's log and socket go in a directory
    # of the postgres user's own.
    mkdir -p "$TMP/pg" "$TMP/pgrun" && chown postgres "$TMP/pg" "$TMP/pgrun"
    su postgres -s /bin/sh -c "$PGBIN/initdb -D '$TMP/pg' -A trust -U meridian" >/dev/null
    su postgres -s /bin/sh -c "$PGBIN/pg_ctl -D '$TMP/pg' -l '$TMP/pgrun/pg.log' -w start \
        -o '-p $port -k $TMP/pgrun -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on \
            -c max_connections=200 -c shared_buffers=256MB'" >/dev/null
    PG_STARTED=1
    psql "postgres://meridian@127.0.0.1:$port/postgres" -qc 'CREATE DATABASE meridian'
    URL="postgres://meridian@127.0.0.1:$port/meridian"
}
postgres_peak() {
    # The largest peak of any PostgreSQL process (shared buffers counted once).
    local max=0 pid mib
    for pid in $(pgrep -u postgres -f "$TMP/pg" || true) $(pgrep -u postgres postgres || true); do
        mib="$(peak_mib "$pid")"
        [ "$mib" != "?" ] && [ "$mib" -gt "$max" ] && max="$mib"
    done
    echo "$max"
}
# The backends exit with their connections, taking their peaks along: sample
# the largest peak every second while the driver runs, into $TMP/pg.peak.
sample_postgres_peak() {
    local max=0 now
    while :; do
        now="$(postgres_peak)"
        [ "$now" -gt "$max" ] && max="$now" && echo "$max" >"$TMP/pg.peak"
        sleep 1
    done
}
stop_postgres() {
    su postgres -s /bin/sh -c "$PGBIN/pg_ctl -D '$TMP/pg' -m fast -w stop" >/dev/null 2>&1 || true
    PG_STARTED=""
}

start_demo() {
    local port; port="$(free_port)"
    "$BIN" demo --no-shell --data-dir "$TMP/demo" --sql-addr "127.0.0.1:$port" \
        >"$TMP/demo.log" 2>&1 &
    PIDS+=($!)
    DEMO_PID=$!
    URL="postgres://meridian@127.0.0.1:$port/meridian"
    wait_sql "$URL"
}

GRPC=() SQL=() JOIN="" CLUSTER_PIDS=()
# Starts (or restarts) cluster node $1; its pid goes in CLUSTER_PIDS[$1].
start_node() {
    local i="$1"
    "$BIN" start --node-id "$i" --data-dir "$TMP/node-$i" --listen "${GRPC[$i]}" \
        --sql-addr "${SQL[$i]}" --join "$JOIN" >>"$TMP/node-$i.log" 2>&1 &
    PIDS+=($!); CLUSTER_PIDS[$i]=$!
}
start_cluster() {
    local i
    for i in 1 2 3; do
        GRPC[$i]="127.0.0.1:$(free_port)"; SQL[$i]="127.0.0.1:$(free_port)"
        JOIN="$JOIN${JOIN:+,}${GRPC[$i]}"
    done
    for i in 1 2 3; do start_node "$i"; done
    for _ in $(seq 1 100); do
        "$BIN" init --host "${GRPC[1]}" >/dev/null 2>&1 && break
        sleep 0.2
    done
    URL="postgres://meridian@${SQL[1]}/meridian"
    wait_sql "$URL"
}
# Once the load is done and the measured run a third through, SIGKILLs
# node 2 and restarts it 5 s later. It runs in the background (a subshell): the new
# pid goes to $TMP/node-2.pid for the main shell (adopt_node_2). Node 2's
# peak memory is then the restarted process's.
kill_and_restart_node_2() {
    for _ in $(seq 1 36000); do
        grep -q "^running the mix" "$TMP/cluster.out" 2>/dev/null && break
        sleep 0.1
    done
    sleep $((RAMP + DURATION / 3))
    log "cluster: SIGKILL node 2"
    kill -KILL "${CLUSTER_PIDS[2]}" 2>/dev/null || true
    wait "${CLUSTER_PIDS[2]}" 2>/dev/null || true
    sleep 5
    log "cluster: restarting node 2"
    start_node 2
    echo "${CLUSTER_PIDS[2]}" >"$TMP/node-2.pid"
}
adopt_node_2() {
    [ -f "$TMP/node-2.pid" ] || return 0
    CLUSTER_PIDS[2]="$(cat "$TMP/node-2.pid")"
    PIDS+=("${CLUSTER_PIDS[2]}")
}

# The first number on the report line matching $2 in $TMP/$1.out.
field() {
    [ -f "$TMP/$1.out" ] || return 0
    grep -i -m1 -E "$2" "$TMP/$1.out" | grep -oE '[0-9]+(\.[0-9]+)?' | head -n1 || true
}

# Stops the Meridian processes given (SIGTERM, then waits for them; one
# that is not this shell's child, for up to 30 s).
stop_pids() {
    local pid
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "$@"; do
        wait "$pid" 2>/dev/null || true
        for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    done
}

# Each system is stopped once measured, so the next one has the machine.
for system in $SYSTEMS; do
    case "$system" in
        postgres)
            start_postgres
            sample_postgres_peak & SAMPLER=$!
            WATCH=()
            drive postgres "$URL"
            kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true
            MEM[postgres]="$(cat "$TMP/pg.peak" 2>/dev/null || postgres_peak)"
            stop_postgres ;;
        demo)
            start_demo; WATCH=("$DEMO_PID")
            drive demo "$URL" $(meridian_args); MEM[demo]="$(peaks "$DEMO_PID")"
            stop_pids "$DEMO_PID" ;;
        cluster)
            start_cluster
            if [ "$KILL" = 1 ]; then kill_and_restart_node_2 & KILLER=$!; fi
            WATCH=("${CLUSTER_PIDS[@]}")
            drive cluster "$URL" $(meridian_args)
            if [ "$KILL" = 1 ]; then wait "$KILLER" || true; adopt_node_2; fi
            MEM[cluster]="$(peaks "${CLUSTER_PIDS[@]}")"
            stop_pids "${CLUSTER_PIDS[@]}" ;;
        *) log "unknown system $system"; exit 2 ;;
    esac
done

pg_tpmc="$(field postgres '^tpmC' || true)"
printf '\n%-10s %10s %11s %12s %12s %10s %12s %16s %16s %10s\n' system tpmC efficiency \
    "NO p50 ms" "NO p99 ms" retries "cross-group" "load peak MiB" "run peak MiB" "vs PG"
for system in $SYSTEMS; do
    tpmc="$(field "$system" '^tpmC')"
    efficiency="$(grep -m1 -oE 'efficiency: [0-9.]+%' "$TMP/$system.out" | cut -d' ' -f2 || true)"
    p50="$(grep -i -m1 -E '^ *new-order' "$TMP/$system.out" | awk '{print $3}')"
    p99="$(grep -i -m1 -E '^ *new-order' "$TMP/$system.out" | awk '{print $6}')"
    retries="$(field "$system" '^retries')"
    cross="$(field "$system" '^cross-group transactions')"
    ratio="-"
    if [ -n "$pg_tpmc" ] && [ -n "$tpmc" ] && [ "$system" != postgres ]; then
        ratio="$(awk -v a="$tpmc" -v b="$pg_tpmc" 'BEGIN { if (b > 0) printf "%.2f", a / b }')"
    fi
    printf '%-10s %10s %11s %12s %12s %10s %12s %16s %16s %10s\n' "$system" "${tpmc:-?}" \
        "${efficiency:--}" "${p50:-?}" \
        "${p99:-?}" "${retries:-?}" "${cross:--}" "${LOAD_MEM[$system]:--}" "${MEM[$system]:-?}" "$ratio"
done
