#!/usr/bin/env bash
# How reports/int4-single-gpu was measured, on one GPU of the GPU machine, from the repo root with
# .gpu/ carried (docs/gpu-machine.md). Cells already "ok" in the report folder stay unless forced.
#   DEADLINE=540 scripts/gpu-jobs/int4-single-gpu.sh [OUT_TAR]
source "$(dirname "$0")/lib.sh"
REPORT=${REPORT:-reports/int4-single-gpu}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_telemetry.py -s 2>&1 | tail -8
run params/int4-single-gpu.yaml "$REPORT" --force --only '*llama_cpp*'
run params/int4-single-gpu-hf.yaml "$REPORT" --force --only 'Llama-2-7b-chat-hf__auto__transformers__fp16'
[ "$(left)" -gt 200 ] && python3 scripts/gpu-jobs/ab_nvml.py --cache-dir "$CACHE" --out "$REPORT/ab_nvml.json"
run params/int4-single-gpu-hf.yaml "$REPORT" --only 'Llama-2-13b*'
run params/int4-single-gpu-hf.yaml "$REPORT" --force --only 'Llama-2-7b*transformers-static*'
run params/int4-single-gpu-hf.yaml "$REPORT" --force --only 'Llama-2-7b*transformers__int4'
[ -n "${1:-}" ] && tar -czf "$1" "$REPORT"
exit 0
