# Shared by Benchmarks/run.sh and Benchmarks/daemon.sh (sourced, not run).

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
