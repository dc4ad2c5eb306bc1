# shellcheck shell=bash disable=SC2034  # DEE_ROOT, DEE_REDIS_PORT are for the sourcing script
# Shared by scripts/test and scripts/run: dependency install and a private redis-server.
# The sourcing script sets DEE_SCRIPT (its name, for log lines) before sourcing.

DEE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEE_REDIS_PID=""
DEE_WATCHDOG_PID=""

dee_say() { printf '%s: %s\n' "${DEE_SCRIPT:-scripts}" "$*" >&2; }

# Installs libhiredis-dev and redis-server when missing: with apt-get as root, else says what to run and exits 1.
dee_install_deps() {
    local missing=()
    if ! command -v pkg-config >/dev/null 2>&1; then
        missing+=(pkg-config libhiredis-dev)
    elif ! pkg-config --exists hiredis; then
        missing+=(libhiredis-dev)
    fi
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        dee_say "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        apt-get install -y -q "${missing[@]}"
        return 0
    fi
    dee_say "missing: ${missing[*]}. Install them, then run this again:"
    if command -v apt-get >/dev/null 2>&1; then
        echo "    sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    elif command -v brew >/dev/null 2>&1; then
        echo "    brew install hiredis redis pkg-config" >&2
    else
        echo "    (your package manager) install: hiredis development files, redis-server, redis-cli, pkg-config" >&2
    fi
    exit 1
}

# True when something listens on 127.0.0.1:$1.
dee_port_in_use() {
    redis-cli -h 127.0.0.1 -p "$1" ping >/dev/null 2>&1 && return 0
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# dee_start_redis FIRST_PORT DIR OUTPUT [redis-server options...]
# Starts redis-server on 127.0.0.1, on FIRST_PORT or the next free port, in the background; its output goes to
# OUTPUT. Sets DEE_REDIS_PORT and DEE_REDIS_PID. A watchdog stops it if this script dies without its EXIT trap.
dee_start_redis() {
    local port=$1 dir=$2 output=$3 attempt waited
    shift 3
    for attempt in 1 2 3 4 5; do
        while dee_port_in_use "$port"; do port=$((port + 1)); done
        redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --daemonize no "$@" >>"$output" 2>&1 &
        DEE_REDIS_PID=$!
        for waited in $(seq 1 100); do
            kill -0 "$DEE_REDIS_PID" 2>/dev/null || break
            # Ask for the dir, not just PING, so that a Redis someone else started on this port is not taken for ours.
            if [ "$(redis-cli -h 127.0.0.1 -p "$port" config get dir 2>/dev/null | tail -n 1)" = "$(cd "$dir" && pwd -P)" ]
            then
                DEE_REDIS_PORT=$port
                local parent=$$
                (
                    while kill -0 "$parent" 2>/dev/null && kill -0 "$DEE_REDIS_PID" 2>/dev/null; do sleep 1; done
                    kill "$DEE_REDIS_PID" 2>/dev/null
                ) >/dev/null 2>&1 </dev/null &
                DEE_WATCHDOG_PID=$!
                return 0
            fi
            sleep 0.1
        done
        kill "$DEE_REDIS_PID" 2>/dev/null || true
        wait "$DEE_REDIS_PID" 2>/dev/null || true
        DEE_REDIS_PID=""
        dee_say "redis-server on port $port did not start (attempt $attempt, waited ${waited}x0.1 s); its output:"
        tail -n 20 "$output" >&2
        port=$((port + 1))
    done
    dee_say "could not start redis-server; set REDIS_URL to use a Redis you started yourself"
    exit 1
}

# Stops what dee_start_redis started and waits for it (so AOF is flushed before we return).
dee_stop_redis() {
    if [ -n "$DEE_WATCHDOG_PID" ]; then
        kill "$DEE_WATCHDOG_PID" 2>/dev/null || true
        wait "$DEE_WATCHDOG_PID" 2>/dev/null || true
        DEE_WATCHDOG_PID=""
    fi
    if [ -n "$DEE_REDIS_PID" ]; then
        kill "$DEE_REDIS_PID" 2>/dev/null || true
        wait "$DEE_REDIS_PID" 2>/dev/null || true
        DEE_REDIS_PID=""
    fi
    return 0
}
