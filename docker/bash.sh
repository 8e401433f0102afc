#!/usr/bin/env bash
# Open a shell (or run CMD) in IMAGE with the repo mounted at /workspace, as the original
# llm-perf-bench did:
#   docker/bash.sh [--amd|--cpu] IMAGE [CMD...]
# NVIDIA (default): --gpus all --shm-size 16G
# --amd:            --device=/dev/kfd --device=/dev/dri --security-opt seccomp=unconfined --group-add video
#                   (plus --shm-size 16G, which RCCL/vLLM on AMD need as much as NCCL does)
# --cpu:            no GPU flags (dev/CI machine without a GPU)
# Extra `docker run` flags can be passed in DOCKER_RUN_ARGS (e.g. "--network none").
set -euo pipefail

gpu=nvidia
case "${1:-}" in
    --amd) gpu=amd; shift ;;
    --cpu) gpu=none; shift ;;
esac
if [ $# -lt 1 ] || [[ "$1" == -* ]]; then
    echo "usage: $0 [--amd|--cpu] IMAGE [CMD...]" >&2
    exit 2
fi
image=$1; shift
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

args=(--rm -v "$repo:/workspace" -w /workspace)
if [ -t 0 ] && [ -t 1 ]; then args+=(-it); fi
case $gpu in
    nvidia) args+=(--gpus all --shm-size 16G) ;;
    amd)    args+=(--device=/dev/kfd --device=/dev/dri --security-opt seccomp=unconfined
                   --group-add video --shm-size 16G) ;;
esac
# shellcheck disable=SC2206  # word splitting of DOCKER_RUN_ARGS is intended
args+=(${DOCKER_RUN_ARGS:-})

[ $# -eq 0 ] && set -- bash
exec docker run "${args[@]}" "$image" "$@"
