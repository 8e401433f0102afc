#!/usr/bin/env bash
# Start a private Docker Engine for llmperf-nb (local dev and CI). Idempotent; run as root.
#   D=${LLMPERF_DOCKERD_DIR:-/tmp/llmperf-dockerd}; the daemon keeps everything under D.
# Prints DOCKER_HOST=unix://D/docker.sock on stdout (use: export "$(docker/dev/start-dockerd.sh)").
set -euo pipefail

D=${LLMPERF_DOCKERD_DIR:-/tmp/llmperf-dockerd}
SOCK="$D/docker.sock"
TIMEOUT=${LLMPERF_DOCKERD_TIMEOUT:-60}
# Storage driver: overlay2 shares the image's layers (a container of the 1 GB llama.cpp image starts and
# is removed in 0.3 s on the 2-core CI machine); vfs copies the whole image for each container (10-29 s
# each way, docs/docker.md), which was most of the Docker tests' time. overlay2 where the kernel has
# overlayfs, else (or if the daemon cannot start with it) vfs; LLMPERF_DOCKERD_STORAGE forces one. Each
# driver keeps its own images in the data root: after a switch the base image and the engine images are
# made again (or carried over: docker save | docker load).
STORAGE=${LLMPERF_DOCKERD_STORAGE:-}
log() { echo "start-dockerd: $*" >&2; }

[ "$(id -u)" -eq 0 ] || { log "must run as root"; exit 1; }

# 1. Install what is missing (Debian/Ubuntu). Services are not started by apt here.
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# 2. Start the daemon unless ours is already running; 3. wait until it answers (any docker CLI: it
# negotiates the API version with the daemon). Returns 2 if dockerd exited (e.g. no overlay2 there).
export DOCKER_HOST="unix://$SOCK"
start() {  # start DRIVER
    local started=""
    if [ -f "$D/pid" ] && kill -0 "$(cat "$D/pid")" 2>/dev/null; then
        log "already running (pid $(cat "$D/pid"))"
    else
        rm -f "$D/pid" "$SOCK"
        log "starting dockerd ($1 storage), log in $D/dockerd.log"
        nohup dockerd \
            --data-root "$D/root" --exec-root "$D/exec" --pidfile "$D/pid" \
            -H "unix://$SOCK" --iptables=false --bridge=none --storage-driver="$1" \
            >>"$D/dockerd.log" 2>&1 </dev/null &
        started=$!
    fi
    for _ in $(seq "$TIMEOUT"); do
        if docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
            log "client $(docker version --format '{{.Client.Version}}'), server $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})'), storage $(docker info --format '{{.Driver}}')"
            return 0
        fi
        if [ -n "$started" ] && ! kill -0 "$started" 2>/dev/null; then
            log "dockerd exited; last log lines:"; tail -n 20 "$D/dockerd.log" >&2; return 2
        fi
        sleep 1
    done
    log "dockerd did not answer on $SOCK within ${TIMEOUT}s; last log lines:"
    tail -n 20 "$D/dockerd.log" >&2 || true
    return 1
}

mkdir -p "$D"
if [ -n "$STORAGE" ]; then
    start "$STORAGE"
elif grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null; then
    start overlay2 || { [ $? -eq 2 ] && log "trying vfs" && start vfs; }
else
    start vfs
fi
echo "DOCKER_HOST=$DOCKER_HOST"
