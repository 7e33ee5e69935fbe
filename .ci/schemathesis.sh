#!/usr/bin/env bash
# Checks openapi.yaml against a running tokend with schemathesis (FUZZING.md, "schemathesis"):
# no 5xx, and every answer's status, headers, content type and body as documented.
#
# A throwaway tokend (own temp dir, SQLite store, generated keys) listens on a TCP port for
# the API routes (TOKEND_LISTEN); the admin socket, Unix only, is reached through
# .ci/unix-forward.py. One schemathesis run covers the API operations, another the admin
# ones. Both processes are stopped by PID. Exit status: 0 when both runs pass.
#
# Environment: TOKEND_BIN (default .build/debug/tokend), SCHEMATHESIS (default
# .build/schemathesis-venv/bin/schemathesis), SCHEMATHESIS_MAX_EXAMPLES (default 50),
# SCHEMATHESIS_SEED (default 1; "random" for a new one), SCHEMATHESIS_REPORT_DIR
# (default .build/schemathesis).
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
TOKEND_BIN=${TOKEND_BIN:-$ROOT/.build/debug/tokend}
SCHEMATHESIS=${SCHEMATHESIS:-$ROOT/.build/schemathesis-venv/bin/schemathesis}
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-50}
SEED=${SCHEMATHESIS_SEED:-1}
REPORT_DIR=${SCHEMATHESIS_REPORT_DIR:-$ROOT/.build/schemathesis}

for tool in "$TOKEND_BIN" "$SCHEMATHESIS"; do
    [ -x "$tool" ] || { echo "schemathesis.sh: $tool is missing (make test-deps, swift build)" >&2; exit 2; }
done
command -v curl >/dev/null || { echo "schemathesis.sh: curl is missing (make test-deps)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/tokend-schemathesis.XXXXXX)
TOKEND_PID=
FORWARD_PID=
cleanup() {
    [ -n "$FORWARD_PID" ] && kill "$FORWARD_PID" 2>/dev/null && wait "$FORWARD_PID" 2>/dev/null
    [ -n "$TOKEND_PID" ] && kill -TERM "$TOKEND_PID" 2>/dev/null && wait "$TOKEND_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
API_PORT=$(free_port)
ADMIN_PORT=$(free_port)
while [ "$ADMIN_PORT" = "$API_PORT" ]; do ADMIN_PORT=$(free_port); done

mkdir -m 700 "$WORK/run" "$WORK/keys" "$WORK/var"
mkdir -p "$REPORT_DIR"
ADMIN_SOCKET=$WORK/run/admin.sock

# Generous limits (0 turns a limit off): fuzzing signs up and fails sign-ins far faster
# than any limit allows. The 429 answers are documented all the same.
env -i PATH="$PATH" HOME="$WORK" \
    TOKEND_SOCKET="$WORK/run/tokend.sock" TOKEND_ADMIN_SOCKET="$ADMIN_SOCKET" \
    TOKEND_LISTEN="127.0.0.1:$API_PORT" TOKEND_STORE="sqlite:$WORK/var/tokend.db" \
    TOKEND_KEYS_DIR="$WORK/keys" TOKEND_LOG_LEVEL=warning \
    USER_SIGNUP_RATE_LIMIT_EMAIL=0 USER_SIGNUP_RATE_LIMIT_IP=0 \
    TOKEND_SIGNIN_RATE_LIMIT_ACCOUNT=0 TOKEND_SIGNIN_RATE_LIMIT_IP=0 \
    "$TOKEND_BIN" </dev/null >"$REPORT_DIR/tokend.log" 2>&1 &
TOKEND_PID=$!

ready=
for _ in $(seq 1 100); do
    if curl -sf -o /dev/null "http://127.0.0.1:$API_PORT/healthz" \
        && curl -sf -o /dev/null --unix-socket "$ADMIN_SOCKET" http://localhost/admin/status; then
        ready=1
        break
    fi
    kill -0 "$TOKEND_PID" 2>/dev/null || break
    sleep 0.2
done
if [ -z "$ready" ]; then
    echo "schemathesis.sh: tokend did not become ready; its log:" >&2
    tail -20 "$REPORT_DIR/tokend.log" >&2
    exit 1
fi

# A user and a bearer token of that user with the `admin` scope: GET /user answers past 401,
# and sign-ups made with it bypass the sign-up limits. Neither is ever printed.
admin() { curl -sf --unix-socket "$ADMIN_SOCKET" -H 'Content-Type: application/json' -d "$2" "http://localhost$1"; }
json_member() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
USER_ID=$(admin /admin/users \
    "{\"username\":\"fuzz-owner\",\"email\":\"fuzz-owner@example.com\",\"password\":\"$PASSWORD\"}" \
    | json_member id) || { echo "schemathesis.sh: could not create the test user" >&2; exit 1; }
TOKEND_FUZZ_TOKEN=$(admin /admin/tokens "{\"sub\":\"$USER_ID\",\"scope\":\"user admin\",\"policy\":\"1h\"}" \
    | json_member access_token) || { echo "schemathesis.sh: could not issue the test token" >&2; exit 1; }
export TOKEND_FUZZ_TOKEN

python3 "$ROOT/.ci/unix-forward.py" "$ADMIN_PORT" "$ADMIN_SOCKET" </dev/null >>"$REPORT_DIR/forward.log" 2>&1 &
FORWARD_PID=$!
for _ in $(seq 1 50); do
    curl -sf -o /dev/null "http://127.0.0.1:$ADMIN_PORT/admin/status" && break
    sleep 0.1
done

VERSION=$("$SCHEMATHESIS" --version | awk '{print $NF}')
seed_args=()
[ "$SEED" = random ] || seed_args=(--seed "$SEED")
# schemathesis filters secrets out of the requests it prints (Authorization, token and password
# members), not out of the answers: the tokens a fuzzed sign-in got would show. Redact every
# JWT and every value of a member or parameter that names a token or password.
redact() {
    sed -E -u \
        -e 's/eyJ[A-Za-z0-9_-]*(\.[A-Za-z0-9_-]*){0,2}/[redacted JWT]/g' \
        -e 's/("[A-Za-z_]*([Tt]oken|[Pp]assword)"[[:space:]]*:[[:space:]]*")[^"]*/\1[redacted]/g' \
        -e 's/((^|[&?'"'"' ])[A-Za-z_]*(token|password)=)[^&'"'"' ]*/\1[redacted]/gI'
}
status=0
run() {
    local name=$1 port=$2
    shift 2
    echo "== schemathesis $VERSION: $name operations (max $MAX_EXAMPLES examples each, seed $SEED)"
    local started=$SECONDS
    "$SCHEMATHESIS" --config-file "$ROOT/.ci/schemathesis.toml" run "$ROOT/openapi.yaml" \
        --url "http://127.0.0.1:$port" --checks all --max-examples "$MAX_EXAMPLES" "${seed_args[@]}" \
        --generation-database none --no-color --output-sanitize true "$@" </dev/null 2>&1 \
        | redact | tee "$REPORT_DIR/$name.log"
    local result=${PIPESTATUS[0]}
    echo "== schemathesis $name: exit $result after $((SECONDS - started)) s"
    [ "$result" = 0 ] || status=1
}
# Stateful testing follows the document's links, and only admin operations have one.
run api "$API_PORT" --exclude-tag admin --phases examples,coverage,fuzzing
run admin "$ADMIN_PORT" --include-tag admin

if grep -q 'level=\(error\|critical\)' "$REPORT_DIR/tokend.log"; then
    echo "== tokend logged errors during the runs ($REPORT_DIR/tokend.log):"
    grep 'level=\(error\|critical\)' "$REPORT_DIR/tokend.log" | cut -c1-300 | head -20
fi
kill -0 "$TOKEND_PID" 2>/dev/null || { echo "== tokend is no longer running"; status=1; }
exit "$status"
