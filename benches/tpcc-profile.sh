#!/usr/bin/env bash
# Profiles `meridian demo` under TPC-C: loads the warehouses, runs the mix in
# throughput mode, and samples the demo process with `perf record` during
# the measured run; prints the run's report and the hottest functions (self
# time, then with callees), and keeps perf.data for `perf report -i`.
#
# Usage:  benches/tpcc-profile.sh [OUT_DIR]    (default: a new /tmp directory)
# Environment:
#   WAREHOUSES (default 2)   CONNECTIONS (default 8)
#   DURATION   seconds of the measured run (default 60); RAMP (default 10)
#   PARTITION  1 (default): load with --partition
#   MERIDIAN_BIN  use this binary (default: a release build, which keeps
#                 line tables for symbols)
#
# perf must be installed (Debian: linux-perf); it is apt-installed if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

WAREHOUSES="${WAREHOUSES:-2}"
CONNECTIONS="${CONNECTIONS:-8}"
DURATION="${DURATION:-60}"
RAMP="${RAMP:-10}"
PARTITION="${PARTITION:-1}"
OUT="${1:-$(mktemp -d /tmp/meridian-profile.XXXXXX)}"
mkdir -p "$OUT"

command -v perf >/dev/null || apt_install linux-perf
if [ -n "${MERIDIAN_BIN:-}" ]; then
    BIN="$MERIDIAN_BIN"
else
    ensure_build_deps
    log "building meridian (release)"
    cargo build --release --locked -p meridian
    BIN="$CARGO_TARGET_DIR/release/meridian"
fi

DEMO_PID=""
cleanup() {
    if [ -n "$DEMO_PID" ]; then
        kill -TERM "$DEMO_PID" 2>/dev/null || true
        wait "$DEMO_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
rm -rf "$OUT/demo"
"$BIN" demo --no-shell --data-dir "$OUT/demo" --sql-addr "127.0.0.1:$port" >"$OUT/demo.log" 2>&1 &
DEMO_PID=$!
URL="postgres://meridian@127.0.0.1:$port/meridian"
for _ in $(seq 1 300); do
    psql "$URL" -qtAc 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.2
done

partition=()
[ "$PARTITION" = 1 ] && partition=(--partition)
log "loading $WAREHOUSES warehouse(s)"
"$BIN" bench tpcc --url "$URL" --warehouses "$WAREHOUSES" --connections "$CONNECTIONS" \
    --load "${partition[@]}" 2>&1 | tail -n 2

log "running ${DURATION}s after ${RAMP}s of ramp-up, perf sampling the demo during the measured run"
"$BIN" bench tpcc --url "$URL" --warehouses "$WAREHOUSES" --connections "$CONNECTIONS" \
    --duration "$DURATION" --ramp-up "$RAMP" --run >"$OUT/run.out" 2>&1 &
DRIVER=$!
sleep "$RAMP"
perf record -F 499 -g -p "$DEMO_PID" -o "$OUT/perf.data" -- sleep "$DURATION" \
    >"$OUT/perf-record.log" 2>&1 || log "perf record failed: see $OUT/perf-record.log"
wait "$DRIVER" || log "the driver failed (exit status $?)"
cat "$OUT/run.out"

# perf pads its lines to the terminal's width: drop the padding.
table() {
    grep -v -e '^#' -e '^$' | sed -e 's/[[:space:]]*-[[:space:]]*-[[:space:]]*$//' \
        -e 's/[[:space:]]*$//' | sed -n '1,40p'
}
log "hottest functions, self time"
perf report -i "$OUT/perf.data" --no-children --sort symbol --percent-limit 0.4 --stdio \
    -g none 2>/dev/null | table
log "hottest functions, with callees"
perf report -i "$OUT/perf.data" --children --sort symbol --percent-limit 3 --stdio \
    -g none 2>/dev/null | table
log "profile kept in $OUT (perf report -i $OUT/perf.data)"
