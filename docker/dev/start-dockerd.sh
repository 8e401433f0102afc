#!/usr/bin/env bash
# Start a private Docker Engine for llmperf-nb (local dev and CI). Idempotent; run as root.
#   D=${LLMPERF_DOCKERD_DIR:-/tmp/llmperf-dockerd}; the daemon keeps everything under D.
# Prints DOCKER_HOST=unix://D/docker.sock on stdout (use: export "$(docker/dev/start-dockerd.sh)").
set -euo pipefail

D=${LLMPERF_DOCKERD_DIR:-/tmp/llmperf-dockerd}
SOCK="$D/docker.sock"
TIMEOUT=${LLMPERF_DOCKERD_TIMEOUT:-60}
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

# 2. Start the daemon unless ours is already running.
mkdir -p "$D"
started=""
if [ -f "$D/pid" ] && kill -0 "$(cat "$D/pid")" 2>/dev/null; then
    log "already running (pid $(cat "$D/pid"))"
else
    rm -f "$D/pid" "$SOCK"
    log "starting dockerd, log in $D/dockerd.log"
    nohup dockerd \
        --data-root "$D/root" --exec-root "$D/exec" --pidfile "$D/pid" \
        -H "unix://$SOCK" --iptables=false --bridge=none --storage-driver=vfs \
        >>"$D/dockerd.log" 2>&1 </dev/null &
    started=$!
fi

# 3. Wait until it answers (any docker CLI: it negotiates the API version with the daemon).
export DOCKER_HOST="unix://$SOCK"
for _ in $(seq "$TIMEOUT"); do
    if docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
        log "client $(docker version --format '{{.Client.Version}}'), server $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"
        echo "DOCKER_HOST=$DOCKER_HOST"
        exit 0
    fi
    if [ -n "$started" ] && ! kill -0 "$started" 2>/dev/null; then
        log "dockerd exited; last log lines:"; tail -n 20 "$D/dockerd.log" >&2; exit 1
    fi
    sleep 1
done
log "dockerd did not answer on $SOCK within ${TIMEOUT}s; last log lines:"
tail -n 20 "$D/dockerd.log" >&2 || true
exit 1
