# shellcheck shell=bash disable=SC2034 # STOP_STATUS, QUIET_FOUND, QUIET_WAITED: read by the sourcing script
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
    STOP_STATUS=0
    wait "$pid" 2>/dev/null || STOP_STATUS=$?
}

# utime+stime of the given processes, in clock ticks (all threads)
proc_ticks() {
    local total=0 pid
    for pid in "$@"; do
        [ -r "/proc/$pid/stat" ] || continue
        total=$((total + $(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat")))
    done
    echo "$total"
}
# "busy total" ticks of one core from /proc/stat
core_ticks() {
    awk -v c="cpu$1" '$1 == c { t = 0; for (i = 2; i <= 9; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}

# wait_quiet: until neither core is busier than QUIET_PCT % over one second (our servers idle
# in between), for at most QUIET_WAIT seconds; sets QUIET_WAITED and QUIET_FOUND
wait_quiet() {
    local start a0 a1 b0 b1 busy=0
    start="$(date +%s)"
    QUIET_FOUND=0
    QUIET_WAITED=0
    [ "$QUIET_WAIT" -gt 0 ] || return 0
    while :; do
        a0="$(core_ticks "$SERVER_CORE")"
        b0="$(core_ticks "$LOAD_CORE")"
        sleep 1
        a1="$(core_ticks "$SERVER_CORE")"
        b1="$(core_ticks "$LOAD_CORE")"
        busy="$(python3 -c "
a0, a1, b0, b1 = ([int(x) for x in s.split()] for s in ('$a0', '$a1', '$b0', '$b1'))
pct = lambda x, y: 100 * (y[0] - x[0]) / max(1, y[1] - x[1])
print(int(max(pct(a0, a1), pct(b0, b1))))")"
        if [ "$busy" -le "$QUIET_PCT" ]; then QUIET_FOUND=1; break; fi
        if [ $(( $(date +%s) - start )) -ge "$QUIET_WAIT" ]; then break; fi
        sleep 2
    done
    QUIET_WAITED=$(( $(date +%s) - start ))
    [ "$QUIET_FOUND" = 1 ] || log "no quiet second within ${QUIET_WAIT}s (busiest core ${busy}%); measuring anyway"
}
