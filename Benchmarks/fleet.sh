#!/usr/bin/env bash
# Fleet benchmarks (DESIGN §10, issue 12 item 7): three tokend nodes on one PostgreSQL database.
#
#   bash Benchmarks/fleet.sh        (make bench-fleet)
#
# 1. propagation: tokend-load propagation, $FLEET_COUNT revocations made one after the other on
#    node 1, each timed from its acknowledgement (the 200 of POST /oauth2/revoke) to the first
#    {"active":false} from node 2 and from node 3 (each polled every $FLEET_POLL_US µs from a
#    thread of its own; every token was introspected active on both first, so it sits in their
#    caches). Run twice, on fresh nodes each time: with NOTIFY (the fleet as it ships), and with
#    TOKEND_FLEET_NOTIFY=0 on nodes 2 and 3 (they learn of changes only from their read of the
#    event log every second). Before each revocation a random pause of up to $FLEET_JITTER_MS
#    (with NOTIFY) or 1000 ms (without) keeps revocations from falling into step with the
#    nodes' one-second reads.
# 2. throughput: introspection of one repeated token on node 2 (tokend-load run, 8
#    connections, $FLEET_SECONDS s), idle and while node 1 takes a stream of revocations
#    (tokend-load revocations, back to back: issue on the admin socket, revoke on the API
#    socket), which node 2 follows; interleaved, $FLEET_REPEATS times each.
#
# Pinning: node 2 (the measured node) on $FLEET_SERVER_CORE (0); PostgreSQL, nodes 1 and 3 and
# tokend-load on $FLEET_LOAD_CORE (1). PostgreSQL is a throwaway cluster of its own in the work
# directory (Unix socket only; fsync and synchronous_commit on, as it ships). Processes are
# stopped by PID only.
#
# Raw output: Benchmarks/results/fleet-<UTC time>/ (gitignored): machine.txt, load/*.txt,
# node logs, summary.md (printed at the end).
#
# Environment:
#   FLEET_COUNT=500  FLEET_POLL_US=500  FLEET_JITTER_MS=100
#   FLEET_SECONDS=10  FLEET_REPEATS=3  FLEET_CONNECTIONS=8
#   FLEET_SERVER_CORE=0  FLEET_LOAD_CORE=1
#   FLEET_PARTS="propagation throughput"
#   FLEET_VARIANTS="notify poll"   the propagation variants to run
#   FLEET_SKIP_BUILD=0        1 uses the release binaries of the last build
#   FLEET_QUIET_WAIT=180      before each measurement, wait up to this many seconds for both
#                             cores to be under FLEET_QUIET_PCT=10 % busy over 1 s (the machine
#                             is shared); 0 disables the wait
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

COUNT="${FLEET_COUNT:-500}"
POLL_US="${FLEET_POLL_US:-500}"
JITTER_MS="${FLEET_JITTER_MS:-100}"
SECS="${FLEET_SECONDS:-10}"
REPEATS="${FLEET_REPEATS:-3}"
CONNS="${FLEET_CONNECTIONS:-8}"
SERVER_CORE="${FLEET_SERVER_CORE:-0}"
LOAD_CORE="${FLEET_LOAD_CORE:-1}"
PARTS="${FLEET_PARTS:-propagation throughput}"
SKIP_BUILD="${FLEET_SKIP_BUILD:-0}"
QUIET_WAIT="${FLEET_QUIET_WAIT:-180}"
QUIET_PCT="${FLEET_QUIET_PCT:-10}"
has_part() { [[ " $PARTS " == *" $1 "* ]]; }

# shellcheck source=Benchmarks/common.sh
source "$ROOT/Benchmarks/common.sh"

export PATH="$PATH:/usr/sbin:/sbin"
need taskset util-linux
need curl curl
need python3 python3
if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
    log "installing postgresql (its own service kept from starting)"
    added=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && added=1
    fi
    apt_install postgresql
    [ -z "$added" ] || rm -f /usr/sbin/policy-rc.d
fi
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then PATH="/opt/swift/usr/bin:$PATH"; fi
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"

# --- build (release, in place) -------------------------------------------------------------

if [ "$SKIP_BUILD" != 1 ]; then
    log "building tokend (release)"
    swift build -c release --product tokend 2>&1 | tail -3 >&2
    log "building tokend-load (release)"
    swift build -c release --package-path Benchmarks/load --product tokend-load 2>&1 | tail -3 >&2
fi
TOKEND="$(swift build -c release --show-bin-path)/tokend"
LOAD="$(swift build -c release --package-path Benchmarks/load --show-bin-path)/tokend-load"
[ -x "$TOKEND" ] && [ -x "$LOAD" ] || { log "missing binaries: $TOKEND $LOAD"; exit 1; }

# --- run directory, processes, clean-up ------------------------------------------------------

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$ROOT/Benchmarks/results/fleet-$STAMP"
mkdir -p "$OUT/load"
RUNS="$OUT/runs.txt"
: >"$RUNS"
WORK="$(mktemp -d /tmp/tokend-fleet-bench.XXXXXX)"
chmod 755 "$WORK"
mkdir -p "$WORK/run" "$WORK/pg"
(umask 077 && head -c 32 /dev/urandom >"$WORK/kek")
log "results in $OUT (work dir $WORK)"

NODE_PIDS=()
BG_PIDS=()
PG_PID=""
stop_nodes() {
    local pid
    for pid in "${NODE_PIDS[@]}"; do stop_pid "$pid" TERM; done
    NODE_PIDS=()
}
cleanup() {
    local status=$? pid
    for pid in "${BG_PIDS[@]}"; do stop_pid "$pid" TERM; done
    stop_nodes
    if [ -n "$PG_PID" ]; then
        kill -INT "$PG_PID" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$PG_PID" 2>/dev/null || break; sleep 0.1; done
    fi
    cp "$WORK/"*.log "$WORK/pg/postgresql.log" "$OUT/" 2>/dev/null || true
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- PostgreSQL --------------------------------------------------------------------------------

PG_AS=()
if [ "$(id -u)" = 0 ]; then
    PG_AS=(runuser -u postgres --)
    chown postgres "$WORK/pg"
fi
"${PG_AS[@]}" "$PG_BIN/initdb" -D "$WORK/pg/data" -U tokend -A trust -E UTF8 >"$WORK/pg-initdb.log" 2>&1
taskset -c "$LOAD_CORE" "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/postgresql.log" -w \
    -o "-k $WORK/pg -c listen_addresses='' -c max_connections=100" start >/dev/null
PG_PID="$(head -1 "$WORK/pg/data/postmaster.pid")"

{
    echo "date_utc=$STAMP"
    echo "nproc=$(nproc)"
    echo "cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "kernel=$(uname -r)"
    echo "swift=$(swift --version 2>&1 | head -1)"
    echo "postgres=$("$PG_BIN/postgres" --version) fsync=on synchronous_commit=on"
    echo "git_head=$(git -C "$ROOT" rev-parse --short HEAD)"
    echo "git_uncommitted_paths=$(git -C "$ROOT" status --porcelain | wc -l)"
    echo "server_core=$SERVER_CORE load_core=$LOAD_CORE"
    echo "count=$COUNT poll_us=$POLL_US jitter_ms=$JITTER_MS seconds=$SECS repeats=$REPEATS connections=$CONNS"
    echo "loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/machine.txt"

# --- helpers -------------------------------------------------------------------------------------

wait_for_socket() { # path pid
    for _ in $(seq 300); do
        [ -S "$1" ] && curl -sf --unix-socket "$1" http://localhost/healthz >/dev/null 2>&1 && return 0
        [ -S "$1" ] && [[ "$1" == *admin* ]] && return 0
        kill -0 "$2" 2>/dev/null || { log "node (PID $2) exited before serving on $1"; exit 1; }
        sleep 0.1
    done
    log "nothing serves on $1 after 30 s"
    exit 1
}

# start_nodes DATABASE NOTIFY23: a fresh database, nodes 1-3 on it (node 2 on the server core,
# the others on the load core), TOKEND_FLEET_NOTIFY=NOTIFY23 on nodes 2 and 3
start_nodes() {
    local database="$1" notify="$2" n core notify_n
    "$PG_BIN/psql" -X -q -h "$WORK/pg" -U tokend -d postgres -c "CREATE DATABASE $database"
    for n in 1 2 3; do
        core="$LOAD_CORE"
        [ "$n" = 2 ] && core="$SERVER_CORE"
        notify_n=1
        [ "$n" = 1 ] || notify_n="$notify"
        env TOKEND_SOCKET="$WORK/run/node$n.sock" TOKEND_ADMIN_SOCKET="$WORK/run/node$n-admin.sock" \
            TOKEND_STORE="postgres://tokend@/$database?host=$WORK/pg" TOKEND_KEY_ENCRYPTION_KEY_FILE="$WORK/kek" \
            TOKEND_STORE_MAX_CONNECTIONS=8 TOKEND_FLEET_NOTIFY="$notify_n" TOKEND_LOG_LEVEL=notice \
            TOKEND_HASH_WORKERS=1 \
            taskset -c "$core" "$TOKEND" >"$WORK/$database-node$n.log" 2>&1 &
        NODE_PIDS+=("$!")
        wait_for_socket "$WORK/run/node$n.sock" "$!"
        wait_for_socket "$WORK/run/node$n-admin.sock" "$!"
    done
}

# --- 1. propagation ------------------------------------------------------------------------------

if has_part propagation; then
    for variant in ${FLEET_VARIANTS:-notify poll}; do
        notify=1
        jitter="$JITTER_MS"
        if [ "$variant" = poll ]; then notify=0 jitter=1000; fi
        start_nodes "prop_$variant" "$notify"
        wait_quiet
        log "propagation ($variant): $COUNT revocations on node 1, watched on nodes 2 and 3"
        rc=0
        taskset -c "$LOAD_CORE" "$LOAD" propagation --label "propagation-$variant" \
            --revoke-socket "$WORK/run/node1.sock" --admin-socket "$WORK/run/node1-admin.sock" \
            --watch-sockets "$WORK/run/node2.sock,$WORK/run/node3.sock" --count "$COUNT" \
            --poll-us "$POLL_US" --jitter-ms "$jitter" >"$OUT/load/propagation-$variant.txt" 2>&1 || rc=$?
        echo "name=propagation-$variant rc=$rc $(grep '^RESULT ' "$OUT/load/propagation-$variant.txt" | sed 's/^RESULT //')" >>"$RUNS"
        log "$(tail -1 "$OUT/load/propagation-$variant.txt")"
        stop_nodes
    done
fi

# --- 2. introspection throughput with and without a revocation stream ---------------------------

if has_part throughput; then
    start_nodes "throughput" 1
    token="$(curl -sSf --unix-socket "$WORK/run/node2-admin.sock" -H 'Content-Type: application/json' \
        -d '{"sub":"fleet-load","scope":"read write"}' http://localhost/admin/tokens |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')"
    node2="${NODE_PIDS[1]}"
    for rep in $(seq "$REPEATS"); do
        for stream in idle revoking; do
            name="intro-node2-$stream-r$rep"
            wait_quiet
            stream_pid=""
            if [ "$stream" = revoking ]; then
                taskset -c "$LOAD_CORE" "$LOAD" revocations --label "stream-r$rep" \
                    --socket "$WORK/run/node1.sock" --admin-socket "$WORK/run/node1-admin.sock" \
                    --seconds "$((SECS + 3))" >"$OUT/load/stream-r$rep.txt" 2>&1 &
                stream_pid="$!"
                BG_PIDS+=("$stream_pid")
                sleep 1
            fi
            s0="$(proc_ticks "$node2")"
            c0="$(core_ticks "$SERVER_CORE")"
            rc=0
            taskset -c "$LOAD_CORE" "$LOAD" run --label "$name" --socket "$WORK/run/node2.sock" \
                --connections "$CONNS" --seconds "$SECS" --warmup 1 --mode introspect-repeated --token "$token" \
                >"$OUT/load/$name.txt" 2>&1 || rc=$?
            s1="$(proc_ticks "$node2")"
            c1="$(core_ticks "$SERVER_CORE")"
            [ -z "$stream_pid" ] || wait "$stream_pid" || true
            BG_PIDS=()
            stream_result=""
            [ "$stream" = revoking ] && stream_result="stream_$(grep '^RESULT ' "$OUT/load/stream-r$rep.txt" |
                sed 's/^RESULT //; s/ / stream_/g')"
            echo "name=$name rc=$rc $(grep '^RESULT ' "$OUT/load/$name.txt" | sed 's/^RESULT //') node2_cpu_ticks=$((s1 - s0)) server_core=$c0/$c1 $stream_result" >>"$RUNS"
            log "$name: $(grep -o 'rps=[^ ]*' "$OUT/load/$name.txt" | tail -1) $stream_result"
        done
    done
    stop_nodes
fi

# --- summary --------------------------------------------------------------------------------------

python3 - "$RUNS" "$(getconf CLK_TCK)" "$SECS" >"$OUT/summary.md" <<'PY'
import re, statistics, sys
runs, tck, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
rows = [dict(re.findall(r'(\S+?)=(\S+)', line)) for line in open(runs)]
print("## Propagation: revocation acknowledged on node 1 → first {\"active\":false} on nodes 2 and 3\n")
print("| followers | revocations | samples | p50 | p90 | p99 | max | misses | verdict |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
for r in rows:
    if r["name"].startswith("propagation-"):
        kind = "NOTIFY + read every 1 s" if r["name"].endswith("notify") else "read every 1 s only (TOKEND_FLEET_NOTIFY=0)"
        print(f"| {kind} | {r.get('revocations')} | {r.get('samples')} | {r.get('p50_ms')} ms | {r.get('p90_ms')} ms "
              f"| {r.get('p99_ms')} ms | {r.get('max_ms')} ms | {r.get('misses')} | {r.get('verdict')} |")
intro = [r for r in rows if r["name"].startswith("intro-node2-")]
if intro:
    print("\n## Introspection on node 2 (repeated token), idle and while node 1 takes a revocation stream\n")
    print("| node 1 | introspections/s (median, range) | p99 (median) | node 2 CPU µs per introspection (median) | revocations/s on node 1 (median) |")
    print("|---|---:|---:|---:|---:|")
    for stream in ("idle", "revoking"):
        sel = [r for r in intro if f"-{stream}-" in r["name"]]
        if not sel:
            continue
        rps = [float(r.get("rps", 0)) for r in sel]
        p99 = [float(r.get("p99_us", 0)) for r in sel]
        cpu = [int(r["node2_cpu_ticks"]) / tck * 1e6 / max(1.0, float(r.get("rps", 0)) * secs) for r in sel]
        rev = [float(r["stream_rate"]) for r in sel if "stream_rate" in r]
        print(f"| {'revoking back to back' if stream == 'revoking' else 'idle'} | {statistics.median(rps):,.0f} "
              f"({min(rps):,.0f}–{max(rps):,.0f}) | {statistics.median(p99):,.0f} µs | {statistics.median(cpu):.1f} | "
              f"{statistics.median(rev):,.0f} |" if rev else
              f"| idle | {statistics.median(rps):,.0f} ({min(rps):,.0f}–{max(rps):,.0f}) | {statistics.median(p99):,.0f} µs | "
              f"{statistics.median(cpu):.1f} | – |")
PY
cat "$OUT/summary.md"
