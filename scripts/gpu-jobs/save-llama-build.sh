#!/usr/bin/env bash
# Bring the GPU machine's llama.cpp CUDA build back, so that the next machine unpacks it instead of
# building it (~5 min of device time): scripts/gpu-run.sh looks for .gpu/llama-cuda-prebuilt/llama-cuda.txz.*
# (docs/gpu-machine.md). Run it there after `scripts/gpu-run.sh prepare`, when nothing is measured.
#   scripts/gpu-jobs/save-llama-build.sh $OUT      writes $OUT/llama-cuda.txz.00, .01, ... (15 MiB each)
# Here: copy the parts into .gpu/llama-cuda-prebuilt/. Same CUDA and repo path needed: the libraries'
# RUNPATH points into .gpu-build/llama.cpp/bin.
set -euo pipefail
out=${1:?usage: save-llama-build.sh OUTDIR}
build=${GPU_BUILD_DIR:-.gpu-build}
[ -x "$build/llama.cpp/bin/llama-bench" ] || { echo "no llama.cpp build in $build/llama.cpp/bin" >&2; exit 1; }
mkdir -p "$out"
tar -C "$build" -cf - llama.cpp/bin | xz -T0 -6 | split -b 15M -d -a 2 - "$out/llama-cuda.txz."
ls -l "$out"/llama-cuda.txz.*
