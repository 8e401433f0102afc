#!/usr/bin/env bash
# How reports/int4-single-gpu is measured: every cell of the int4 table on one GPU of the GPU machine,
# from the repo root with .gpu/ carried (docs/gpu-machine.md). A device call has a time limit, so the
# table is measured in phases sent back to back to the same machine (its files stay while it is up);
# each phase keeps the cells already "ok" and ends by tarring the report folder.
#   LLMPERF_NB_COMMIT=<sha> LLMPERF_NB_DIRTY=0 DEADLINE=540 scripts/gpu-jobs/int4-single-gpu.sh PHASE [OUT_TAR]
#   PHASE: fresh   drop the old results, then llama.cpp and ExLlamaV2 (each with its own tool's cross-check)
#          native  llama.cpp and ExLlamaV2 again, keeping their ok cells (what the deadline cut from fresh)
#          hf      HF transformers (fp16 cells cross-checked against generate())
#          rest    whatever cell of the table is not ok yet
#          exl     the ExLlamaV2 cells alone, measured again (with their generator cross-check and forward split)
#          hfdyn   the HF fp16 dynamic-cache cells alone, measured again (generate() alternating with them)
source "$(dirname "$0")/lib.sh"
REPORT=${REPORT:-$OUTROOT/int4-single-gpu}  # back here: its results/ replace reports/int4-single-gpu/results
nvidia-smi --query-gpu=name,uuid,memory.total,driver_version --format=csv,noheader
case "${1:?PHASE: fresh, native, hf, rest, exl or hfdyn}" in
    fresh)
        rm -rf "$REPORT/results"
        run params/int4-single-gpu.yaml "$REPORT" --only '*llama_cpp*'
        run params/int4-single-gpu.yaml "$REPORT" --only '*exllamav2*'
        ;;
    native)
        run params/int4-single-gpu.yaml "$REPORT" --only '*llama_cpp*'
        run params/int4-single-gpu.yaml "$REPORT" --only '*exllamav2*'
        ;;
    hf)
        run params/int4-single-gpu-hf.yaml "$REPORT" --only 'Llama-2-7b*'
        run params/int4-single-gpu-hf.yaml "$REPORT" --only 'Llama-2-13b*'
        ;;
    rest)
        run params/int4-single-gpu.yaml "$REPORT"
        run params/int4-single-gpu-hf.yaml "$REPORT"
        ;;
    exl) run params/int4-single-gpu.yaml "$REPORT" --only '*exllamav2*' ;;
    hfdyn)
        run params/int4-single-gpu-hf.yaml "$REPORT" --only 'Llama-2-7b*__transformers-True__fp16'
        run params/int4-single-gpu-hf.yaml "$REPORT" --only 'Llama-2-13b*__transformers-True__fp16'
        ;;
    *) echo "unknown phase $1: fresh, native, hf, rest, exl or hfdyn" >&2; exit 2 ;;
esac
[ -n "${2:-}" ] && tar -czf "$2" "$REPORT"
exit 0
