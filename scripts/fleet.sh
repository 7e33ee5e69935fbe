#!/usr/bin/env bash
# A local fleet for trying tokend's fleet mode (DESIGN §10, README "A fleet of tokends"):
#
#   bash scripts/fleet.sh start   (make fleet: builds tokend and tokenctl first)
#   bash scripts/fleet.sh stop    (make fleet-stop)
#
# start: a PostgreSQL cluster in ./var/pg (initdb on first use; as the `postgres` user when
# run as root, since PostgreSQL refuses root), listening on its Unix socket in that directory
# only, no TCP; a key-encryption key ./var/fleet-kek (32 random bytes, 0600); and three tokend
# nodes on ./run/node1.sock … ./run/node3.sock (admin sockets ./run/node1-admin.sock …), logs
# in ./var/node1.log …, PIDs in ./run/node1.pid …. What already runs is reused. Then prints
# commands that show a revocation on node 1 in force on nodes 2 and 3.
# stop: the nodes (SIGTERM) and PostgreSQL (SIGINT, a fast shutdown), each by its recorded PID.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TOKEND="$ROOT/.build/debug/tokend"
PGDIR="$ROOT/var/pg"
DATABASE=tokend
NODES="1 2 3"

log() { printf '==> %s\n' "$*" >&2; }

# running PIDFILE: the PID recorded in PIDFILE when that process still runs, else nothing.
running() {
    local pid
    [ -f "$1" ] || return 1
    pid="$(head -1 "$1")"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# stop_pid PID SIGNAL WHAT: signals one process and waits for it (20 s).
stop_pid() {
    local pid="$1"
    kill "-$2" "$pid" 2>/dev/null || return 0
    for _ in $(seq 200); do
        kill -0 "$pid" 2>/dev/null || { log "stopped $3 (PID $pid)"; return 0; }
        sleep 0.1
    done
    log "$3 (PID $pid) is still running 20 s after SIG$2"
    return 1
}

stop() {
    local n pid status=0
    for n in $NODES; do
        if pid="$(running "run/node$n.pid")"; then stop_pid "$pid" TERM "node $n" || status=1; fi
        rm -f "run/node$n.pid"
    done
    if pid="$(running "$PGDIR/data/postmaster.pid")"; then stop_pid "$pid" INT PostgreSQL || status=1; fi
    return "$status"
}

start() {
    local bin
    bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
    [ -n "$bin" ] && [ -x "$bin/pg_ctl" ] || { log "PostgreSQL is not installed: make fleet installs it"; exit 1; }
    [ -x "$TOKEND" ] || { log "$TOKEND is missing: make fleet builds it"; exit 1; }

    mkdir -p run var
    chmod go-w run
    local as=()
    if [ "$(id -u)" = 0 ]; then
        # The server runs as postgres: it must reach ./var/pg through ./var (search only).
        id postgres >/dev/null 2>&1 || { log "no postgres user (Debian's postgresql package creates it)"; exit 1; }
        chmod 711 var
        as=(runuser -u postgres --)
    else
        chmod 700 var
    fi
    if [ ! -f var/fleet-kek ]; then
        (umask 077 && head -c 32 /dev/urandom >var/fleet-kek)
        log "made the key-encryption key ./var/fleet-kek (0600)"
    fi

    local pid
    if pid="$(running "$PGDIR/data/postmaster.pid")"; then
        log "PostgreSQL already runs (PID $pid, socket in ./var/pg)"
    else
        if [ ! -f "$PGDIR/data/PG_VERSION" ]; then
            mkdir -p "$PGDIR"
            chmod 700 "$PGDIR"
            [ "$(id -u)" = 0 ] && chown postgres: "$PGDIR"
            log "initdb in ./var/pg"
            "${as[@]}" "$bin/initdb" -D "$PGDIR/data" -U tokend -A trust -E UTF8 >var/pg-initdb.log 2>&1 ||
                { log "initdb failed: see ./var/pg-initdb.log"; exit 1; }
        fi
        "${as[@]}" "$bin/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w -t 60 \
            -o "-k $PGDIR -c listen_addresses='' -c unix_socket_permissions=0700" start >/dev/null ||
            { log "PostgreSQL did not start: see ./var/pg/server.log"; exit 1; }
        log "PostgreSQL runs (PID $(head -1 "$PGDIR/data/postmaster.pid"), socket in ./var/pg, no TCP)"
    fi
    local psql=("$bin/psql" -X -q -A -t -h "$PGDIR" -U tokend -d postgres)
    if [ "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" != 1 ]; then
        "${psql[@]}" -c "CREATE DATABASE $DATABASE"
    fi

    local n
    for n in $NODES; do
        if pid="$(running "run/node$n.pid")"; then
            log "node $n already runs (PID $pid)"
            continue
        fi
        rm -f "run/node$n.sock" "run/node$n-admin.sock"
        # A session of its own (setsid execs tokend: the PID recorded is tokend's): the node
        # outlives make and the terminal.
        TOKEND_SOCKET="./run/node$n.sock" TOKEND_ADMIN_SOCKET="./run/node$n-admin.sock" \
            TOKEND_STORE="postgres://tokend@/$DATABASE?host=$PGDIR" \
            TOKEND_KEY_ENCRYPTION_KEY_FILE="$ROOT/var/fleet-kek" TOKEND_STORE_MAX_CONNECTIONS=4 \
            setsid "$TOKEND" </dev/null >"var/node$n.log" 2>&1 &
        echo "$!" >"run/node$n.pid"
        for _ in $(seq 300); do
            if ! kill -0 "$(head -1 "run/node$n.pid")" 2>/dev/null; then
                log "node $n exited; the end of ./var/node$n.log:"
                tail -20 "var/node$n.log" >&2
                exit 1
            fi
            [ -S "run/node$n-admin.sock" ] && curl -sf --unix-socket "run/node$n.sock" http://localhost/healthz \
                >/dev/null 2>&1 && break
            sleep 0.1
        done
        log "node $n serves on ./run/node$n.sock (PID $(head -1 "run/node$n.pid"), log ./var/node$n.log)"
    done

    cat <<'EOF'

Three tokend nodes share the PostgreSQL database in ./var/pg. Try, in this directory:

  # an access token issued on node 1 (its admin socket)
  TOKEN=$(.build/debug/tokenctl token issue --socket ./run/node1-admin.sock --sub alice --scope read)
  # node 2 vouches for it
  curl -s --unix-socket ./run/node2.sock -d "token=$TOKEN" http://localhost/oauth2/introspect; echo
  # revoked on node 1 (200 once committed)
  curl -s -w '%{http_code}\n' --unix-socket ./run/node1.sock -d "token=$TOKEN" http://localhost/oauth2/revoke
  # in force on nodes 2 and 3 within milliseconds (NOTIFY wakes them; the sleep covers that)
  sleep 0.5
  curl -s --unix-socket ./run/node2.sock -d "token=$TOKEN" http://localhost/oauth2/introspect; echo
  curl -s --unix-socket ./run/node3.sock -d "token=$TOKEN" http://localhost/oauth2/introspect; echo
  # each node's view of the fleet
  for n in 1 2 3; do curl -s --unix-socket ./run/node$n.sock http://localhost/healthz; echo; done
  # the fleet as the database sees it: every node, its lag and its clock offset
  .build/debug/tokenctl fleet --socket ./run/node1-admin.sock
  # a revocation that returns only once every live node has applied it
  TOKEN2=$(.build/debug/tokenctl token issue --socket ./run/node1-admin.sock --sub bob --scope read)
  .build/debug/tokenctl token revoke --wait --socket ./run/node2-admin.sock "$TOKEN2"
  curl -s --unix-socket ./run/node3.sock -d "token=$TOKEN2" http://localhost/oauth2/introspect; echo

Stop everything (by the recorded PIDs): make fleet-stop, or
  kill $(cat ./run/node1.pid ./run/node2.pid ./run/node3.pid)
  kill -INT $(head -1 ./var/pg/data/postmaster.pid)

EOF
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    *) log "usage: $0 start|stop"; exit 2 ;;
esac
