#!/usr/bin/env bash
# gpu-import.sh - bring the cells a GPU job measured into the published reports, then rebuild them.
#
# A GPU job (scripts/gpu-jobs/*.sh) ends by tarring its report folders (.gpu-build/reports/NAME, each
# with results/<cell>/); the device tool brings the tarball back. Each call's tarball holds every cell
# of that machine's run so far, so the last one suffices; earlier ones are harmless.
#   scripts/gpu-import.sh TARBALL [REPORTS_DIR]      (REPORTS_DIR: default <repo>/reports)
# For every cell folder in the tarball, into REPORTS_DIR/NAME/results/<cell>/:
#   - a new cell is copied; a cell already published is replaced by the new one, except that a new
#     result that is not "ok" never replaces a published "ok" one (nothing measured is lost: the new
#     failed folder stays in the temporary extraction, whose path the output names);
#   - a serve cell's bulky AIPerf inputs (loadgen/*/inputs.json: the prompts, made again from the
#     seed; profile_export.jsonl and profile_export_raw.jsonl: the records and streamed events that
#     result.json already holds, the second tens of MB a cell) and AIPerf's marker
#     .aiperf_results_ready.json are left out;
# then `llmperf-nb report REPORTS_DIR/NAME/results` rebuilds each report touched.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARBALL=${1:?usage: gpu-import.sh TARBALL [REPORTS_DIR]}
REPORTS=${2:-$REPO/reports}
[ -f "$TARBALL" ] || { echo "gpu-import: error: no such tarball: $TARBALL" >&2; exit 2; }
LLMPERF_NB=${LLMPERF_NB:-$REPO/.venv/bin/llmperf-nb}
[ -x "$LLMPERF_NB" ] || LLMPERF_NB=llmperf-nb

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-import.XXXXXX")
set_aside=0  # a failed new cell not laid over an ok one stays in $WORK for a look
trap '[ "$set_aside" -eq 0 ] && rm -rf "$WORK"' EXIT
tar -xzf "$TARBALL" -C "$WORK" 2>/dev/null || { echo "gpu-import: error: $TARBALL is not a gzipped tar" >&2; exit 2; }

status() {  # the status of a cell folder's result.json, or "none"
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("status", "none"))' "$1/result.json" \
        2>/dev/null || echo none
}

touched=()
while IFS= read -r results; do
    name=$(basename "$(dirname "$results")")
    dest=$REPORTS/$name/results
    mkdir -p "$dest"
    for cell in "$results"/*/; do
        cell=${cell%/}
        id=$(basename "$cell")
        new=$(status "$cell")
        old=none
        [ -d "$dest/$id" ] && old=$(status "$dest/$id")
        if [ "$old" = ok ] && [ "$new" != ok ]; then
            echo "gpu-import: $name/$id: kept the published ok result; the new one is $new ($cell)"
            set_aside=1
            continue
        fi
        find "$cell" -path '*/loadgen/*' \( -name inputs.json -o -name profile_export.jsonl -o -name profile_export_raw.jsonl \
            -o -name .aiperf_results_ready.json \) -delete
        rm -rf "$dest/$id.importing"
        cp -r "$cell" "$dest/$id.importing"
        rm -rf "$dest/$id"
        mv "$dest/$id.importing" "$dest/$id"
        echo "gpu-import: $name/$id: $new$([ "$old" != none ] && echo " (replaced $old)")"
    done
    touched+=("$name")
done < <(find "$WORK" -type d -name results -path '*/reports/*/results' | sort)
[ ${#touched[@]} -gt 0 ] || { echo "gpu-import: error: no reports/NAME/results folder in $TARBALL" >&2; exit 2; }
for name in "${touched[@]}"; do
    "$LLMPERF_NB" report "$REPORTS/$name/results"
done
