#!/usr/bin/env bash
# The vLLM rows of reports/int4-single-gpu (params/int4-single-gpu-vllm.yaml: 7B and 13B, GPTQ int4
# and fp16, each cell with `vllm bench latency` as its cross-check), on one GPU of the GPU machine,
# from the repo root. The vllm wheels come as .xfer parts received earlier in /tmp/xfer
# (scripts/xfer.sh receive wheels-vllm KK, one device call each); .gpu/wheels-base carried in this
# call (the notebooks' papermill). Send the same command again until it prints "all vLLM cells ok":
# finished cells are kept, a cell starts only when NEED seconds are left before the deadline.
#   DEADLINE=560 NEED=300 scripts/gpu-jobs/vllm-int4.sh [OUT_TAR]
# Results go to $OUTROOT/int4-single-gpu (.gpu-build/reports/..., lib.sh says why: a device call lays the
# tree anew); OUT_TAR carries the vLLM cells back, to be copied into reports/int4-single-gpu/results/.
# docs/gpu-machine.md has the whole sequence of device calls.
set -uo pipefail
SITE_VLLM=${SITE_VLLM:-/tmp/site-vllm}
if [ ! -f "$SITE_VLLM/.installed" ]; then
    start=$SECONDS
    scripts/xfer.sh unpack wheels-vllm /tmp/wheels-vllm || exit 1
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE_VLLM" \
        /tmp/wheels-vllm/wheels-vllm/*.whl || exit 1
    touch "$SITE_VLLM/.installed"
    echo "gpu-job: vllm wheels installed in $SITE_VLLM in $((SECONDS - start)) s"
fi
export DEADLINE=$(( ${DEADLINE:-540} - SECONDS ))  # the deadline counts from this script's start
source "$(dirname "$0")/lib.sh"
export PYTHONPATH=$SITE_VLLM:$PYTHONPATH
REPORT=${REPORT:-$OUTROOT/int4-single-gpu}  # back here: its vLLM results/ join reports/int4-single-gpu/results
# PARAMS/REPORT/CELLS pick other vLLM cells, e.g. the tensor-parallel ones on a 2-GPU host:
#   PARAMS=params/fp16-multi-gpu.yaml REPORT=.gpu-build/reports/fp16-multi-gpu CELLS=CodeLlama-34b-Instruct-hf__autox2__vllm__fp16
PARAMS=${PARAMS:-params/int4-single-gpu-vllm.yaml}
NEED=${NEED:-300}  # one cell: two vLLM engine starts (~160 s cold, < 50 s warm), GPTQ files, 2 x 6 runs
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 - <<'EOF'
import torch, vllm
print("vllm", vllm.__version__, "| torch", torch.__version__, "| cuda", torch.version.cuda, flush=True)
EOF
# int4 first (the table's point), then the fp16 references; CELLS='...' picks others
CELLS=${CELLS:-"Llama-2-7b-chat-hf__auto__vllm-True__int4 Llama-2-13b-chat-hf__auto__vllm-True__int4
       Llama-2-7b-chat-hf__auto__vllm-True__fp16 Llama-2-13b-chat-hf__auto__vllm-True__fp16"}
ok() { grep -qs '"status": "ok"' "$REPORT/results/$1/result.json"; }
for c in $CELLS; do
    ok "$c" && continue
    if [ "$(left)" -lt "$NEED" ]; then
        echo "gpu-job: $(left) s left, under the $NEED s a cell needs: $c waits for the next call"
        break
    fi
    run "$PARAMS" "$REPORT" --only "$c" 2>&1 | tee -a "/tmp/vllm-int4-$c.log"
done
todo=""
for c in $CELLS; do ok "$c" || todo="$todo $c"; done
[ -z "$todo" ] && echo "gpu-job: all vLLM cells ok" || echo "gpu-job: not yet ok:$todo"
if [ -n "${1:-}" ]; then
    # the vLLM cells only (the rest of the report is here already), and their logs
    mkdir -p "$REPORT/logs-vllm" && cp /tmp/vllm-int4-*.log "$REPORT/logs-vllm/" 2>/dev/null
    tar -czf "$1" $(compgen -G "$REPORT/results/*__vllm*") "$REPORT/logs-vllm"
fi
exit 0
