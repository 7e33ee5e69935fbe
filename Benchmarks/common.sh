# shellcheck shell=bash
# Shared by Benchmarks/run.sh, daemon.sh and fleet.sh (sourced, not run).

log() { printf '==> %s\n' "$*" >&2; }

# apt_install PACKAGE…: with apt-get, as root or through sudo; `apt-get update` once, only when
# the first install fails.
APT_UPDATED=0
apt_install() {
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { log "need root or sudo to install $*"; exit 1; }
        sudo="sudo"
    fi
    if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >&2; then
        if [ "$APT_UPDATED" -eq 0 ]; then
            $sudo apt-get update -qq >&2
            APT_UPDATED=1
        fi
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >&2
    fi
}

# need COMMAND PACKAGE: installs PACKAGE when COMMAND is missing.
need() { command -v "$1" >/dev/null 2>&1 || { log "installing $2"; apt_install "$2"; }; }

# stop_pid PID SIGNAL: signals one process this script started and waits for it (10 s, then
# SIGKILL); STOP_STATUS is its exit status ("not-running" when it had ended).
stop_pid() {
    local pid="$1" sig="$2"
    # shellcheck disable=SC2034 # read by daemon.sh
    STOP_STATUS="not-running"
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "PID $pid ignored SIG$sig for 10 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    # shellcheck disable=SC2034 # read by daemon.sh
    STOP_STATUS=0
    # shellcheck disable=SC2034
    wait "$pid" 2>/dev/null || STOP_STATUS=$?
}
