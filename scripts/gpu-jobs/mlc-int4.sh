#!/usr/bin/env bash
# MLC LLM rows of reports/int4-single-gpu (q4f16_1, Llama-2 7B or 13B), one model per device call,
# from the repo root with .gpu/wheels-mlc and .gpu/mlc-llm-src.tar.gz carried (docs/gpu-machine.md,
# "MLC LLM"). The Relax VM driver, not MLC's serve engine (docs/mlc.md).
#   LLMPERF_NB_COMMIT=<sha> LLMPERF_NB_DIRTY=0 DEADLINE=570 scripts/gpu-jobs/mlc-int4.sh 7b|13b [OUT_TAR]
# Expected on one H200 (7B, from the issue's probe): synthetic fp16 checkpoint ~1-2 min (written
# on the CPU), convert_weight ~1 min, gen_config ~10 s, compile ~2 min, benchmark < 1 min.
export SKIP_BUILDS=1  # no llama.cpp / ExLlamaV2 build in this job
source "$(dirname "$0")/lib.sh"
REPORT=${REPORT:-$OUTROOT/int4-single-gpu}  # back here: its results/ go into reports/int4-single-gpu/results
case "${1:-}" in
    7b) MODEL=Llama-2-7b-chat-hf ;;
    13b) MODEL=Llama-2-13b-chat-hf ;;
    *) echo "usage: $0 7b|13b [OUT_TAR]" >&2; exit 2 ;;
esac
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import tvm, tvm_ffi; print('tvm', tvm.__version__, 'ffi', tvm_ffi.__version__, 'cuda', tvm.cuda(0).exist)"
if ! python3 -c "import sys, tvm; sys.exit(not tvm.cuda(0).exist)" 2>/dev/null; then
    # TVM's CUDA runtime links libcudart.so.13: take it from the image's nvidia-cuda-runtime wheel
    lib=$(python3 - <<'PY'
import glob, os, site
hits = [h for p in site.getsitepackages() for h in glob.glob(p + "/nvidia/**/libcudart.so.13*", recursive=True)]
print(os.path.dirname(hits[0]) if hits else "")
PY
)
    [ -n "$lib" ] && export LD_LIBRARY_PATH=$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} && echo "gpu-job: LD_LIBRARY_PATH += $lib"
fi
python3 -c "from llmperf_nb.drivers import mlc_compat as c; print('mlc-llm', c.source_commit(), c.missing() or 'ready')"
df -h "${CACHE%/*}" | tail -1
run params/int4-single-gpu.yaml "$REPORT" --force --only "${MODEL}__*__mlc__*"
# 13B's fp16 synthetic checkpoint is 26 GB: free the disk for the next call on the same machine
rm -rf "$CACHE"/hf/"$MODEL"-synthetic-* "$CACHE"/mlc/"$MODEL"-q4f16_1-weights-*
[ -n "${2:-}" ] && tar -czf "$2" "$REPORT"
exit 0
