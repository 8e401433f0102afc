# Shared by the GPU jobs: prepare the carried tools once, then pipeline runs against a deadline.
# A device call has a fixed limit; each run is interrupted (SIGINT: finished cells are kept) when
# the job's deadline comes, and no run starts in its last 30 s, so the job ends with its results.
set -uo pipefail
END=$((SECONDS + ${DEADLINE:-540}))
CACHE=${CACHE:-/tmp/llmperf-cache}
# Results go to a git-ignored folder: each device call lays the working tree anew, which puts back
# every tracked file (the published results) and deletes untracked ones, so results written under
# reports/ by one call are gone at the next. .gpu-build/ is ignored and stays while the machine is up.
OUTROOT=${OUTROOT:-.gpu-build/reports}
scripts/gpu-run.sh prepare
eval "$(scripts/gpu-run.sh env)"
# SAVE_EXLLAMAV2=DIR: bring the extension just JIT-built back for the next machine (save-exllamav2-build.sh)
[ -n "${SAVE_EXLLAMAV2:-}" ] && { scripts/gpu-jobs/save-exllamav2-build.sh "$SAVE_EXLLAMAV2" || true; }

left() { echo $((END - SECONDS)); }

run() {  # run PARAMS OUT [ARGS]: one `llmperf-nb run` into OUT, cells only (the report is built after)
    # RUN_NEED=S before it: start only with S seconds left (default 30), so a run that cannot end in time
    # is not started and cut (a cut cell is lost; the next call runs it)
    local params=$1 out=$2
    shift 2
    if [ "$(left)" -le "${RUN_NEED:-30}" ]; then
        echo "gpu-job: $(left) s left (needs ${RUN_NEED:-30}), not started: $params $*"
        return
    fi
    echo "gpu-job: $(date -u +%T) run $params $* ($(left) s left)"
    timeout -s INT -k 30 "$(left)" python3 -m llmperf_nb.cli run "$params" --out "$out" --cache-dir "$CACHE" \
        --no-progress --no-report "$@"
}
