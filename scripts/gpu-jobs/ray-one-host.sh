#!/usr/bin/env bash
# `llmperf-nb run --executor ray` on one GPU host (issue 17, docs/ray.md): a Ray head and one worker node on this
# host, the worker declaring the host's GPUs by model ({"llmperf-nb:h200": N}), then
#   cell  params/ray-gpu-smoke.yaml: Llama-2-7b fp16 with HF transformers on one H200 (no build: torch is on the
#         image), and an a100-80gb cell that no node has (reported at once, recorded as not run). One GPU.
#   pair  params/ray-gpu-pair.yaml (7B and 13B, one GPU each) with --per-host 1 (one after the other) into
#         $REPORT-alone, then --per-host 2 (both at once) into $REPORT-together, and `llmperf-nb compare` of the
#         two: the interference docs/ray.md asks for. Two GPUs or more (nvidia-h200-x2).
# From the repo root, with .gpu/wheels-base carried in this call and the ray wheel received before, as the two
# parts of `scripts/gpu-bundle.sh fetch ray` (docs/gpu-machine.md, "Ray"):
#   LLMPERF_NB_COMMIT=<sha> LLMPERF_NB_DIRTY=0 DEADLINE=540 scripts/gpu-jobs/ray-one-host.sh cell|pair [OUT_TAR]
# LOCAL_TOO=1 (cell) then runs the H200 cell with the local executor into $REPORT-local, to compare the numbers.
# Results go under $OUTROOT (.gpu-build/reports/, lib.sh says why); OUT_TAR carries them back with the Ray logs.
set -uo pipefail
MODE=${1:-cell}
case $MODE in cell|pair) ;; *) echo "usage: $0 cell|pair [OUT_TAR]" >&2; exit 2 ;; esac
SITE_RAY=${SITE_RAY:-/tmp/site-ray}
if [ ! -f "$SITE_RAY/.installed" ]; then
    start=$SECONDS
    scripts/xfer.sh unpack wheels-ray /tmp/wheels-ray || exit 1
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE_RAY" \
        /tmp/wheels-ray/wheels-ray/*.whl || exit 1
    touch "$SITE_RAY/.installed"
    echo "gpu-job: ray wheel installed in $SITE_RAY in $((SECONDS - start)) s"
fi
export DEADLINE=$(( ${DEADLINE:-540} - SECONDS ))  # the deadline counts from this script's start
export SKIP_BUILDS=1  # HF transformers only: no llama.cpp / ExLlamaV2 build
source "$(dirname "$0")/lib.sh"
# before `ray start`: the nodes' worker processes inherit this environment (PYTHONPATH, JUPYTER_PATH, ...)
export PYTHONPATH=$SITE_RAY:$PYTHONPATH RAY_USAGE_STATS_ENABLED=0
REPORT=${REPORT:-$OUTROOT/ray-gpu-$MODE}
RAYTMP=/tmp/ray-llmperf  # short: Ray's socket paths must stay under 107 bytes
ray() { python3 -c 'import sys; from ray.scripts.scripts import main; sys.argv[0] = "ray"; sys.exit(main())' "$@"; }

nvidia-smi --query-gpu=name,uuid,memory.total,driver_version --format=csv,noheader
python3 -c "import ray, torch; print('ray', ray.__version__, '| torch', torch.__version__, torch.version.cuda)" || exit 1
read -r GPU COUNT < <(python3 -c "from llmperf_nb import hardware as h; g = h.detect()['gpu']; \
print(g['catalog_name'] or 'unknown', len(g['devices']))")
if [ "${GPU:-unknown}" = unknown ] || [ "${COUNT:-0}" -lt 1 ]; then
    echo "gpu-job: no GPU of the catalog here (${GPU:-?} x ${COUNT:-0})"; exit 1
fi
[ "$MODE" = pair ] && [ "$COUNT" -lt 2 ] && { echo "gpu-job: pair needs two GPUs, this host has $COUNT"; exit 1; }

trap 'ray stop --force >/dev/null 2>&1' EXIT
# the head runs no cell (no GPU, no llmperf-nb resource); the worker declares what hardware.detect found
ray start --head --port "${PORT:-6379}" --temp-dir "$RAYTMP" --num-cpus 1 --num-gpus 0 \
    --include-dashboard=false --disable-usage-stats >/tmp/ray-head.log 2>&1 || { tail -30 /tmp/ray-head.log; exit 1; }
ADDR=$(sed -n "s/.*ray start --address='\([^']*\)'.*/\1/p" /tmp/ray-head.log | head -1)
ray start --address "$ADDR" --num-gpus "$COUNT" --resources "{\"llmperf-nb:$GPU\": $COUNT}" \
    --disable-usage-stats >/tmp/ray-worker.log 2>&1 || { tail -30 /tmp/ray-worker.log; exit 1; }
echo "gpu-job: Ray cluster at $ADDR: a head, and a worker with $COUNT x llmperf-nb:$GPU"
ray status --address "$ADDR" 2>&1 | sed -n '/^Resources/,/^From request/p'

reports=()
if [ "$MODE" = cell ]; then
    run params/ray-gpu-smoke.yaml "$REPORT" --executor ray --address "$ADDR" 2>&1 | tee /tmp/ray-run.log
    reports+=("$REPORT")
    if [ -n "${LOCAL_TOO:-}" ]; then
        run params/ray-gpu-smoke.yaml "$REPORT-local" --only '*__h200__*' 2>&1 | tee /tmp/ray-run-local.log
        reports+=("$REPORT-local")
    fi
else
    run params/ray-gpu-pair.yaml "$REPORT-alone" --executor ray --address "$ADDR" 2>&1 | tee -a /tmp/ray-run-alone.log
    reports+=("$REPORT-alone")
    # both cells at once or not at all (--force: a later call must not finish one of them alone)
    NEED=${NEED:-300}
    if [ "$(grep -ls '"status": "ok"' "$REPORT-alone"/results/*/result.json | wc -l)" -lt 2 ]; then
        echo "gpu-job: the cells alone are not both ok yet: send the same call again"
    elif [ "$(left)" -lt "$NEED" ]; then
        echo "gpu-job: $(left) s left, under the $NEED s both cells at once need: send the same call again"
    else
        run params/ray-gpu-pair.yaml "$REPORT-together" --executor ray --address "$ADDR" --per-host 2 --force 2>&1 \
            | tee /tmp/ray-run-together.log
        reports+=("$REPORT-together")
        python3 -m llmperf_nb.cli compare "$REPORT-alone/results" "$REPORT-together/results" | tee /tmp/ray-compare.log
    fi
fi
python3 - "${reports[@]}" <<'EOF'
import sys
from llmperf_nb import results
for folder in sys.argv[1:]:
    for d in results.load_dir(folder + "/results"):
        node, dec = d.get("node") or {}, d.get("decode_tok_s") or {}
        rate = f"decode {dec['mean']:.2f} ± {dec['std']:.2f} tok/s" if dec.get("mean") else (d["error"] or {}).get("message")
        where = f"node {node['node_id'][:8]} {node['ip']}" if node else "no node"
        gpus = (d.get("provenance") or {}).get("gpu_uuids")
        print(f"gpu-job: {folder}: {d['cell_id']} {d['status']} ({where}; GPUs {gpus}; "
              f"{d['started_at']} to {d['finished_at']}): {rate}")
EOF
if [ -n "${2:-}" ]; then
    mkdir -p "${reports[0]}/logs-ray"
    cp /tmp/ray-run*.log /tmp/ray-compare.log /tmp/ray-head.log /tmp/ray-worker.log "${reports[0]}/logs-ray/" 2>/dev/null
    tar -czf "$2" "${reports[@]}"
fi
exit 0
