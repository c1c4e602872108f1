#!/usr/bin/env bash
# End-to-end check of the Docker deployment: builds meridian:local, starts the
# 3-node compose cluster (docker-compose.yml) under a project name of its own, founds the cluster,
# writes rows, SIGKILLs the leader's container, keeps writing through a
# surviving node (and measures how long writes took to resume), restarts the
# killed node, waits for it to catch up, and checks that every acknowledged
# row is read back through every node. Always removes its containers, network
# and volumes on exit.
#
#   MERIDIAN_BIN=$HOME/.cache/meridian/target/debug/meridian deploy/test-compose.sh
#
# Environment:
#   MERIDIAN_BIN          binary for the image (unset: a cargo release build, see build-image.sh)
#   MERIDIAN_IMAGE        image tag (default meridian:local)
#   MERIDIAN_SKIP_BUILD=1 use the existing image as it is
#   MERIDIAN_NODES=5      test the 5-node file (docker-compose.5.yml) instead
#   MERIDIAN_SQL_PORT1..n host ports for the nodes' SQL (default 15433..)
#   RESUME_TIMEOUT        seconds writes may take to resume after the kill (default 60)
#
# Needs docker with `docker compose` or docker-compose, and psql.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
nodes="${MERIDIAN_NODES:-3}"
case "$nodes" in
    3) compose_file="$here/docker-compose.yml" ;;
    5) compose_file="$here/docker-compose.5.yml" ;;
    *) printf 'FAIL: MERIDIAN_NODES must be 3 or 5, not %s\n' "$nodes" >&2; exit 1 ;;
esac
rows_before=20
rows_after=20
resume_timeout="${RESUME_TIMEOUT:-60}"
export MERIDIAN_IMAGE="${MERIDIAN_IMAGE:-meridian:local}"
image="$MERIDIAN_IMAGE"
project="meridian-test-$(date +%s)-$$"
network="${project}_default"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }

# --- Preconditions -----------------------------------------------------------

command -v docker >/dev/null || die "docker is not installed"
command -v psql >/dev/null || die "psql is not installed (Debian: apt-get install postgresql-client)"
command -v timeout >/dev/null || die "timeout (coreutils) is not installed"
docker info >/dev/null 2>&1 || die "cannot talk to the Docker daemon (is it running? are you in the docker group?)"
if docker compose version >/dev/null 2>&1; then
    compose_cmd=(docker compose)
elif command -v docker-compose >/dev/null; then
    compose_cmd=(docker-compose)
else
    die "neither 'docker compose' nor docker-compose is available"
fi
compose() { "${compose_cmd[@]}" -f "$compose_file" -p "$project" "$@"; }

declare -a sql_port
for i in $(seq 1 "$nodes"); do
    var="MERIDIAN_SQL_PORT$i"
    sql_port[i]="${!var:-$((15432 + i))}"
    export "$var=${sql_port[i]}"
    # Something already answering there would get our psql connections.
    if timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/${sql_port[i]}" 2>/dev/null; then
        die "port 127.0.0.1:${sql_port[i]} (node$i's SQL) is already in use; stop what uses it or set $var"
    fi
done

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
before() { awk -v t="$1" -v now="$(now)" 'BEGIN { exit !(now < t) }'; }
deadline_in() { awk -v s="$1" -v now="$(now)" 'BEGIN { printf "%.3f", now + s }'; }

tmp="$(mktemp -d /tmp/meridian-test.XXXXXX)"
started=0
cleanup() {
    local rc=$?
    set +e
    if [ "$started" = 1 ]; then
        if [ "$rc" -ne 0 ]; then
            log "diagnostics (the test failed):"
            compose ps >&2
            for i in $(seq 1 "$nodes"); do
                printf -- '--- node%s: status\n' "$i" >&2
                node_status "$i" >&2
                printf -- '--- node%s: last log lines\n' "$i" >&2
                compose logs --no-color --tail=25 "node$i" >&2
            done
        fi
        log "cleaning up: ${compose_cmd[*]} -p $project down -v"
        compose down -v --remove-orphans --timeout 10 >"$tmp/down.log" 2>&1 \
            || { cat "$tmp/down.log" >&2; log "warning: compose down failed; leftovers are labelled com.docker.compose.project=$project"; }
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- Helpers -------------------------------------------------------------------

container_of() { compose ps -q "node$1"; }

# `meridian status` of node $1, from a throwaway container on the cluster's network.
node_status() {
    timeout 20 docker run --rm --network "$network" "$image" status --host "node$1:6433" 2>&1
}

# Field $2 (leader, commit, applied, role, serving) of group 1 in status text $1.
group_field() {
    awk -v f="$2" '$1 == "group" && $2 == "1" {
        for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == f) { print kv[2]; exit } }
    }' <<<"$1"
}

# Runs one SQL statement through node $1, for at most $3 seconds (default
# 20); sets sql_rc, sql_out, sql_err and sql_state (the SQLSTATE of an error,
# empty if none was reported).
sql() {
    sql_rc=0
    sql_out="$(PGCONNECT_TIMEOUT=5 timeout "${3:-20}" psql \
        "postgres://meridian@127.0.0.1:${sql_port[$1]}/meridian" \
        -X -q -A -t -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -c "$2" 2>"$tmp/psql.err")" || sql_rc=$?
    sql_err="$(cat "$tmp/psql.err")"
    sql_state="$(sed -nE 's/^(ERROR|FATAL): +([0-9A-Z]{5}):.*/\2/p' <<<"$sql_err" | head -n 1)"
}

# Is the last failure one to retry? Serialization failures (40001), "not
# serving here" (57P03), unknown commit outcome (40003), lost or refused
# connections and psql timeouts are.
retryable() {
    case "$sql_state" in
        40001 | 57P03 | 40003) return 0 ;;
        "") [ "$sql_rc" -ne 1 ] ;; # 2: connection trouble, 124: timeout (outcome unknown)
        *) return 1 ;;
    esac
}

declare -A acked=() maybe=() errors_seen=()
# Inserts key $2 through node $1, retrying retryable failures until the
# absolute deadline $3 (seconds since the epoch). 0 once acknowledged.
insert_row() {
    local node=$1 k=$2 until=$3 attempts=0
    while :; do
        attempts=$((attempts + 1))
        # One attempt may not outlast the deadline (but gets at least 2 s).
        sql "$node" "INSERT INTO kv VALUES ($k, 'v$k')" \
            "$(awk -v t="$until" -v now="$(now)" 'BEGIN { s = t - now; if (s > 20) s = 20; if (s < 2) s = 2; printf "%.1f", s }')"
        if [ "$sql_rc" -eq 0 ]; then
            acked[$k]=1
            return 0
        fi
        if [ "$sql_state" = 23505 ] && [ "$attempts" -gt 1 ]; then
            acked[$k]=1 # an earlier attempt committed after all
            return 0
        fi
        retryable || die "insert of $k through node$node failed (psql exit $sql_rc): $sql_err"
        maybe[$k]=1
        local what="${sql_state:-psql exit $sql_rc}"
        errors_seen[$what]=$((${errors_seen[$what]:-0} + 1))
        before "$until" || { log "insert of $k through node$node: last error: ${sql_err:-psql exit $sql_rc}"; return 1; }
        sleep 0.2
    done
}

# --- Image and cluster ---------------------------------------------------------------

if [ "${MERIDIAN_SKIP_BUILD:-0}" = 1 ]; then
    docker image inspect "$image" >/dev/null 2>&1 || die "MERIDIAN_SKIP_BUILD=1 but there is no image $image"
    log "using the existing image $image"
else
    log "building $image"
    "$here/build-image.sh" || die "building the image failed"
fi

log "starting $nodes nodes: ${compose_cmd[*]} -f $compose_file -p $project up -d"
started=1
compose up -d >"$tmp/up.log" 2>&1 || { cat "$tmp/up.log" >&2; die "compose up failed"; }
docker network inspect "$network" >/dev/null 2>&1 || die "compose did not create the network $network"

for i in $(seq 1 "$nodes"); do
    for _ in $(seq 1 60); do
        cid="$(container_of "$i")"
        if [ -n "$cid" ] && docker logs "$cid" 2>&1 | grep -q "serving gRPC"; then
            continue 2
        fi
        if [ -n "$cid" ] && [ "$(docker inspect -f '{{.State.Running}}' "$cid")" != true ]; then
            die "node$i exited: $(docker logs --tail 20 "$cid" 2>&1)"
        fi
        sleep 1
    done
    die "node$i did not print 'serving gRPC' within 60 s"
done
log "all nodes serve gRPC"

# A replica of every group on every node, as the checks below expect.
log "founding the cluster: meridian init --host node1:6433 --replicas $nodes"
inited=0
for attempt in $(seq 1 30); do
    if out="$(timeout 30 docker run --rm --network "$network" "$image" init --host node1:6433 --replicas "$nodes" 2>&1)"; then
        printf '%s\n' "$out" >&2
        inited=1
        break
    fi
    if [ "$attempt" -gt 1 ] && grep -q "already belongs" <<<"$out"; then
        log "init: an earlier attempt went through ($out)"
        inited=1
        break
    fi
    log "init attempt $attempt failed: $out"
    sleep 2
done
[ "$inited" = 1 ] || die "meridian init did not succeed in 30 attempts"

leader=""
for _ in $(seq 1 60); do
    st="$(node_status 1)" || true
    l="$(group_field "$st" leader)"
    if [ -n "$l" ] && [ "$l" != none ] \
        && [ "$(group_field "$(node_status "$l")" serving)" = true ]; then
        leader="$l"
        break
    fi
    sleep 1
done
[ -n "$leader" ] || die "no leader serving within 60 s of init; node1 says: $st"
log "group 1 has a serving leader: node$leader"

# --- Writes before the failure -------------------------------------------------------

created=0
until_t="$(deadline_in 30)"
while :; do
    sql 1 "CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)"
    if [ "$sql_rc" -eq 0 ] || { [ "$sql_state" = 42P07 ] && [ "$created" = retried ]; }; then
        break
    fi
    retryable || die "CREATE TABLE failed (psql exit $sql_rc): $sql_err"
    created=retried
    before "$until_t" || die "CREATE TABLE did not succeed within 30 s: $sql_err"
    sleep 0.5
done
log "created table kv through node1"

for k in $(seq 1 "$rows_before"); do
    insert_row 1 "$k" "$(deadline_in 30)" || die "insert of $k through node1 did not succeed within 30 s"
done
log "inserted $rows_before rows through node1"

# --- Kill the leader -----------------------------------------------------------------

st="$(node_status 1)"
leader="$(group_field "$st" leader)"
{ [ -n "$leader" ] && [ "$leader" != none ]; } || die "cannot find the leader; node1 says: $st"
role="$(group_field "$(node_status "$leader")" role)"
[ "$role" = leader ] || die "node1 names node$leader as leader but node$leader says role=$role"
survivor=1
[ "$leader" = 1 ] && survivor=2
victim="$(container_of "$leader")"
[ -n "$victim" ] || die "no container for node$leader"

log "killing the leader node$leader (docker kill, SIGKILL: container ${victim:0:12})"
docker kill "$victim" >/dev/null || die "docker kill $victim failed"
t_kill="$(now)"

k=$((rows_before + 1))
errors_seen=()
log "writing through node$survivor until writes resume (at most $resume_timeout s)"
if ! insert_row "$survivor" "$k" "$(deadline_in "$resume_timeout")"; then
    die "writes did not resume through node$survivor within $resume_timeout s of killing node$leader"
fi
t_resume="$(now)"
resume="$(elapsed "$t_kill" "$t_resume")"
summary=""
for what in "${!errors_seen[@]}"; do summary+=" $what x${errors_seen[$what]},"; done
log "writes resumed ${resume} s after the kill (retried errors:${summary:- none})"
for k in $(seq $((rows_before + 2)) $((rows_before + rows_after))); do
    insert_row "$survivor" "$k" "$(deadline_in 30)" || die "insert of $k through node$survivor did not succeed within 30 s"
done
log "inserted $rows_after rows through node$survivor with node$leader down"

new_leader="$(group_field "$(node_status "$survivor")" leader)"
log "the new leader is node$new_leader"

# --- Restart the killed node and let it catch up --------------------------------

log "restarting node$leader (docker start)"
docker start "$victim" >/dev/null || die "docker start $victim failed"
caught_up=0
for _ in $(seq 1 90); do
    lst="$(node_status "$new_leader")" || true
    commit="$(group_field "$lst" commit)"
    rst="$(node_status "$leader")" || true
    applied="$(group_field "$rst" applied)"
    if [[ "$commit" =~ ^[0-9]+$ && "$applied" =~ ^[0-9]+$ ]] && [ "$applied" -ge "$commit" ]; then
        caught_up=1
        break
    fi
    if [ "$(docker inspect -f '{{.State.Running}}' "$victim")" != true ]; then
        die "node$leader exited after its restart: $(docker logs --tail 20 "$victim" 2>&1)"
    fi
    sleep 1
done
[ "$caught_up" = 1 ] || die "node$leader did not catch up within 90 s (leader commit=${commit:-?}, its applied=${applied:-?})"
log "node$leader caught up: applied=$applied >= leader node$new_leader's commit=$commit"

# --- Every acknowledged row, through every node ----------------------------------

expected="$(printf '%s\n' "${!acked[@]}" | sort -n)"
for i in $(seq 1 "$nodes"); do
    until_t="$(deadline_in 30)"
    while :; do
        sql "$i" "SELECT k FROM kv ORDER BY k"
        [ "$sql_rc" -eq 0 ] && break
        retryable || die "reading kv through node$i failed (psql exit $sql_rc): $sql_err"
        before "$until_t" || die "reading kv through node$i did not succeed within 30 s: $sql_err"
        sleep 0.5
    done
    got="$(sed '/^$/d' <<<"$sql_out")"
    dups="$(sort -n <<<"$got" | uniq -d | tr '\n' ' ')"
    [ -z "$dups" ] || die "node$i returns duplicate keys: $dups"
    missing="$(comm -23 <(sort <<<"$expected") <(sort <<<"$got") | sort -n | tr '\n' ' ')"
    [ -z "$missing" ] || die "node$i lacks acknowledged rows: $missing"
    for k in $got; do
        [ -n "${acked[$k]:-}" ] || [ -n "${maybe[$k]:-}" ] || die "node$i returns key $k, which was never written"
    done
    log "node$i: all $(wc -l <<<"$expected") acknowledged rows present ($(wc -l <<<"$got") rows)"
done

printf '\nPASS: %s-node compose cluster; killed leader node%s; writes resumed through node%s after %s s; node%s caught up; all %s acknowledged rows on every node.\n' \
    "$nodes" "$leader" "$survivor" "$resume" "$leader" "${#acked[@]}"
echo "resume time: ${resume} s"
