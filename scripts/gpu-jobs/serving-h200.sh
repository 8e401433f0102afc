#!/usr/bin/env bash
# How reports/serving-h200 is measured (issue 16): params/serving-h200.yaml on one H200 of the GPU machine,
# from the repo root with .gpu/ carried (wheels-base, and the trimmed llama-cpp-python sdist or a prebuilt
# llama.cpp build with llama-server) and the AIPerf and vLLM wheels received earlier through scripts/xfer.sh
# (/tmp/xfer). A device call has a time limit, so the report is measured in phases sent back to back to the
# same machine (its files stay while it is up); each call keeps the cells already "ok" and ends by tarring
# the report folder.
#   LLMPERF_NB_COMMIT=<sha> LLMPERF_NB_DIRTY=0 DEADLINE=540 scripts/gpu-jobs/serving-h200.sh 'PHASE ...' [OUT_TAR]
#   PHASE: vllm    vLLM installed from the received wheels, then its serve cells (vllm serve)
#          vsweep  vLLM's batch sweeps (int4, fp16), vLLM installed as for vllm
#          hf      the HF transformers sweeps (fp16, nf4)
#          llama   llama-server built in the llama.cpp build (gpu-run.sh server), then its serve cells;
#                  SAVE_BUILD=DIR writes that build (llama-server included) to DIR for the next machine
#          sweep   the llama.cpp batch sweeps (int4, fp16)
#          exsweep ExLlamaV2's batch sweep (its extension JIT-built by the first prepare on a machine)
#          rest    whatever cell is not ok yet on this machine (on a bare one: every cell, in params order)
#          hfdet   params/hf-determinism-h200.yaml: HF sweep points with deterministic algorithms off and on
# Phases run in the order given, each cell only with RUN_NEED seconds left (lib.sh). docs/gpu-machine.md has
# the calls in order and what each records.
set -uo pipefail
SITE_AIPERF=${SITE_AIPERF:-/tmp/site-aiperf}
SITE_VLLM=${SITE_VLLM:-/tmp/site-vllm}
PHASES=${1:?PHASE: vllm, vsweep, hf, llama, sweep, exsweep, rest or hfdet (several: quoted, in order)}

install_received() {  # NAME SITE: unpack the wheels received by scripts/xfer.sh and install them into SITE
    local name=$1 site=$2 start=$SECONDS
    [ -f "$site/.installed" ] && return 0
    scripts/xfer.sh unpack "$name" "/tmp/$name" || return 1
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" \
        /tmp/"$name"/"$name"/*.whl || return 1
    touch "$site/.installed"
    echo "gpu-job: $name installed in $site in $((SECONDS - start)) s"
}

# AIPerf runs from its own site folder, never on the engines' PYTHONPATH (docs/serving.md: it pins
# huggingface_hub<2 and pandas~=2.3): a wrapper that sets its path alone
aiperf_wrapper() {
    install_received wheels-aiperf "$SITE_AIPERF" || return 1
    mkdir -p /tmp/aiperf-bin
    printf '#!/bin/sh\nPYTHONPATH=%s exec python3 -m aiperf "$@"\n' "$SITE_AIPERF" >/tmp/aiperf-bin/aiperf
    chmod +x /tmp/aiperf-bin/aiperf
    export AIPERF=/tmp/aiperf-bin/aiperf
}

has() { [[ " $PHASES " == *" $1 "* ]]; }
for p in $PHASES; do
    case "$p" in vllm|vsweep|hf|llama|sweep|exsweep|rest|hfdet) ;; *) echo "unknown phase $p: vllm, vsweep, hf, llama, sweep, exsweep, rest or hfdet" >&2; exit 2 ;; esac
done
if has llama || has vllm || has rest; then
    aiperf_wrapper || { echo "gpu-job: AIPerf wheels missing (scripts/xfer.sh receive wheels-aiperf KK)"; exit 1; }
fi
if has vllm || has vsweep; then install_received wheels-vllm "$SITE_VLLM" || exit 1; fi
if has llama; then
    scripts/gpu-run.sh server
    [ -n "${SAVE_BUILD:-}" ] && scripts/gpu-jobs/save-llama-build.sh "$SAVE_BUILD"
fi
export DEADLINE=$(( ${DEADLINE:-540} - SECONDS ))  # the deadline counts from this script's start
source "$(dirname "$0")/lib.sh"
[ -f "$SITE_VLLM/.installed" ] && export PYTHONPATH=$SITE_VLLM:$PYTHONPATH  # vLLM cells need it in any phase
REPORT=${REPORT:-$OUTROOT/serving-h200}  # back here: its results/ become reports/serving-h200/results
PARAMS=params/serving-h200.yaml
DETERMINISM=$OUTROOT/hf-determinism-h200
nvidia-smi --query-gpu=name,uuid,memory.total,driver_version --format=csv,noheader
for p in $PHASES; do
    case "$p" in
        vllm)
            python3 -c "import vllm, torch; print('vllm', vllm.__version__, '| torch', torch.__version__)"
            RUN_NEED=200 run "$PARAMS" "$REPORT" --only '*__vllm__int4__serve'
            RUN_NEED=150 run "$PARAMS" "$REPORT" --only '*__vllm__fp16__serve'
            ;;
        vsweep)
            RUN_NEED=240 run "$PARAMS" "$REPORT" --only '*__vllm__int4__sweep'
            RUN_NEED=240 run "$PARAMS" "$REPORT" --only '*__vllm__fp16__sweep'
            ;;
        hf)
            # nf4 first: the fp16 sweep is published (a fresh machine has no results to reuse)
            RUN_NEED=240 run "$PARAMS" "$REPORT" --only '*__transformers-static__int4__sweep'
            RUN_NEED=180 run "$PARAMS" "$REPORT" --only '*__transformers-static__fp16__sweep'
            ;;
        llama)
            [ -n "${LLAMA_SERVER:-}" ] || { echo "gpu-job: llama-server was not built (.gpu-build/llama-server-build.log)"; continue; }
            # fp16 first: int4's serve cell is published ok (a fresh machine has no results to reuse)
            RUN_NEED=120 run "$PARAMS" "$REPORT" --only '*__llama_cpp__fp16__serve'
            RUN_NEED=120 run "$PARAMS" "$REPORT" --only '*__llama_cpp__int4__serve'
            ;;
        sweep)
            RUN_NEED=150 run "$PARAMS" "$REPORT" --only '*__llama_cpp__int4__sweep'
            RUN_NEED=150 run "$PARAMS" "$REPORT" --only '*__llama_cpp__fp16__sweep'
            ;;
        exsweep) RUN_NEED=150 run "$PARAMS" "$REPORT" --only '*__exllamav2__int4__sweep' ;;
        rest) run "$PARAMS" "$REPORT" ;;
        hfdet) RUN_NEED=270 run params/hf-determinism-h200.yaml "$DETERMINISM" ;;
    esac
done
[ -n "${2:-}" ] && tar -czf "$2" "$REPORT" $( [ -d "$DETERMINISM" ] && echo "$DETERMINISM" )
exit 0
