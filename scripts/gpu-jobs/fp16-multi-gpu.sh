#!/usr/bin/env bash
# How reports/fp16-multi-gpu was measured, on a 4-GPU host (2-GPU cells use two of its GPUs), from
# the repo root with .gpu/ carried (docs/gpu-machine.md). One model per call: a call has 10 minutes.
#   DEADLINE=540 scripts/gpu-jobs/fp16-multi-gpu.sh MODEL_GLOB [OUT_TAR] ['ENGINE_GLOB ...']
# Weights go to /dev/shm when it has room (70B F16 is 138 GB; the 4-GPU host's disk is 235 GB).
shm_free=$(df -B1G --output=avail /dev/shm 2>/dev/null | tail -1 | tr -d ' ')
if [ "${shm_free:-0}" -gt 160 ]; then export CACHE=/dev/shm/llmperf-cache; fi
source "$(dirname "$0")/lib.sh"
REPORT=${REPORT:-$OUTROOT/fp16-multi-gpu}  # back here: its results/ join reports/fp16-multi-gpu/results
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
df -h "$CACHE" /dev/shm /tmp 2>/dev/null
# only one model's F16 file at a time on this host
find "$CACHE/gguf" -name '*-F16-*' ! -name "${1%\*}*" -delete 2>/dev/null
set -f  # the engine globs are for --only, not for the shell
for engines in ${3:-*}; do
    run params/fp16-multi-gpu.yaml "$REPORT" --only "${1}__*__${engines}"
done
set +f
[ -n "${2:-}" ] && tar -czf "$2" "$REPORT"
exit 0
