#!/usr/bin/env bash
# Stop the daemon started by start-dockerd.sh (same LLMPERF_DOCKERD_DIR). Images stay in D/root.
set -euo pipefail

D=${LLMPERF_DOCKERD_DIR:-/tmp/llmperf-dockerd}
if ! [ -f "$D/pid" ] || ! kill -0 "$(cat "$D/pid")" 2>/dev/null; then
    echo "stop-dockerd: not running" >&2
    exit 0
fi
pid=$(cat "$D/pid")
kill "$pid"
for _ in $(seq 30); do
    kill -0 "$pid" 2>/dev/null || { echo "stop-dockerd: stopped (pid $pid)" >&2; exit 0; }
    sleep 1
done
echo "stop-dockerd: pid $pid still alive after 30 s (try: kill -9 $pid)" >&2
exit 1
