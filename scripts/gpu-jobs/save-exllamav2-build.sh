#!/usr/bin/env bash
# Bring the GPU machine's JIT-built ExLlamaV2 extension back, so that the next machine loads it instead of
# building it (~4 min of device time): scripts/gpu-run.sh unpacks .gpu/exllamav2-ext-prebuilt/exllamav2_ext.so.xz.*
# and puts it on PYTHONPATH, where exllamav2 imports it before it would build one (docs/gpu-machine.md).
# Run it there after `scripts/gpu-run.sh prepare` (lib.sh does, with SAVE_EXLLAMAV2=DIR), when nothing is measured.
#   scripts/gpu-jobs/save-exllamav2-build.sh $OUT   writes $OUT/exllamav2_ext.so.xz.00, .01, ... (15 MiB each)
# Here: copy the parts into .gpu/exllamav2-ext-prebuilt/. Same torch and CUDA needed: the extension links
# against torch's libraries (ExLlamaV2's own message on a mismatch: "undefined symbol").
set -euo pipefail
out=${1:?usage: save-exllamav2-build.sh OUTDIR}
build=${GPU_BUILD_DIR:-.gpu-build}
so=$build/torch_extensions/exllamav2_ext/exllamav2_ext.so  # torch.utils.cpp_extension.load's output
[ -f "$so" ] || { echo "no JIT-built ExLlamaV2 extension at $so (a carried one was used, or none was built)" >&2; exit 1; }
mkdir -p "$out"
xz -T0 -6 -c "$so" | split -b 15M -d -a 2 - "$out/exllamav2_ext.so.xz."
ls -l "$out"/exllamav2_ext.so.xz.*
