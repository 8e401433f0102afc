#!/usr/bin/env bash
# gpu-bundle.sh - fill .gpu/ with what an air-gapped GPU machine needs to run llmperf-nb.
#
# Run `fetch` on a machine WITH network (it downloads); copy .gpu/ over; run `install` on the
# GPU machine (no network needed). See docs/gpu-machine.md.
#
# Usage: scripts/gpu-bundle.sh [COMMAND] [PART...]
#   fetch [base|exllamav2|bnb|llama|vllm|ray|aiperf ...]
#                                      download/build what is missing (default: base exllamav2 bnb
#                                      llama; vllm only when named: 280 MiB; ray only when named: 76 MiB)
#   sizes                              print the size of each part and the total
#   install [base|exllamav2 ...] [--target DIR]
#                                      offline: pip install the carried wheels into DIR
#                                      (default /tmp/site; default part: base), then pip check
#   list                               print the pinned wheels
#
# Parts (all under $GPU_BUNDLE_DIR, default <repo>/.gpu):
#   wheels-base/       papermill + ipykernel + nbconvert (HTML) closure, gguf, diskcache:
#                      cp312 manylinux x86_64 wheels of what the GPU image (Python 3.12,
#                      torch 2.11 cu130, see the device notes) does NOT already have.
#   wheels-exllamav2/  exllamav2 0.3.2 (JIT-builds its extension) + its deps missing there.
#   llama-cpp-python-<ver>-trimmed.tar.gz
#                      the llama-cpp-python sdist, without the git history, docs, tests,
#                      model vocab files (except ggml-vocab-llama-spm.gguf), web UI sources and
#                      ggml backends other than CPU/CUDA/BLAS. Builds the Python package and the
#                      llama.cpp tools (llama-bench, llama-completion, llama-cli).
#   wheels-vllm/       vllm 0.25.0 and what it needs that the image lacks (VLLM_PINS below), then
#                      packed by scripts/xfer.sh into .xfer/wheels-vllm/KK/ (parts of <= 50 MiB:
#                      the whole is too big for one device call; never carry .gpu/ whole).
#   wheels-ray/        ray 2.60.0 (the --executor ray of docs/ray.md; 79.3 MB, one wheel: its other
#                      requirements are on the image or in wheels-base), packed by scripts/xfer.sh into
#                      .xfer/wheels-ray/00 and 01.
#   wheels-aiperf/     aiperf 0.13.0 (the serve workload's load generator) and its whole dependency
#                      closure for CPython 3.12 (pip's resolver: it runs from a site folder of its own,
#                      so the image's packages are not reused), packed into .xfer/wheels-aiperf/KK/.
#
# Environment: PYTHON (interpreter whose pip downloads; default python3), GPU_BUNDLE_DIR.
# Idempotent: files already present are kept; wheels no longer pinned are deleted.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
DEST=${GPU_BUNDLE_DIR:-$REPO/.gpu}
PY=${PYTHON:-python3}

LCP_VERSION=0.3.36
LCP_TARBALL="llama-cpp-python-$LCP_VERSION-trimmed.tar.gz"

# What the GPU image already provides (and must not be installed twice), for the record:
# numpy pyyaml pygments jinja2 markupsafe packaging psutil attrs python-dateutil six
# typing-extensions click requests (+ urllib3 idna certifi charset-normalizer) tqdm aiohttp
# (+ multidict yarl frozenlist aiosignal aiohappyeyeballs propcache) pandas fsspec ninja regex
# rich pillow safetensors sentencepiece tokenizers torch. Lower bounds our wheels put on them:
# psutil>=7 (ipython), typing-extensions>=4.13 (jupyter_client), attrs>=22.2 (jsonschema),
# pygments>=2.14 (ipython), packaging>=22 (ipykernel), python-dateutil>=2.8.2, aiohttp>=3.9.
# `install` runs pip check to catch a too-old one.

# Closure of papermill 2.7.0 + nbconvert 7.17.2 + nbclient 0.11.0 + ipykernel 7.4.0 + gguf for
# CPython 3.12 on Linux x86_64 (pip's resolver), minus the image's packages above.
# debugpy is left out on purpose: ipykernel 7 lists it, but imports it inside try/except and
# only needs it for interactive debugging (saves 4 MB). tzdata is only needed by
# python-dateutil 4, which the image does not have.
BASE_PINS=(
  papermill==2.7.0
  nbclient==0.11.0
  nbconvert==7.17.2
  nbformat==5.11.1
  ipykernel==7.4.0
  ipython==9.18.1
  ipython_pygments_lexers==1.1.1
  jupyter_client==8.10.0
  jupyter_core==5.9.1
  traitlets==5.16.1
  tornado==6.6.1
  pyzmq==27.3.0
  comm==0.2.3
  matplotlib-inline==0.2.2
  nest-asyncio2==1.7.4
  jedi==0.20.1
  parso==0.8.7
  prompt_toolkit==3.0.53
  wcwidth==0.9.4
  pexpect==4.9.0
  ptyprocess==0.7.0
  stack_data==0.6.3
  executing==2.3.0
  asttokens==3.0.2
  pure_eval==0.2.4
  platformdirs==4.14.8
  fastjsonschema==2.22.3
  jsonschema==4.26.0
  jsonschema-specifications==2025.9.1
  referencing==0.37.0
  rpds-py==2026.9.1
  entrypoints==0.4.2
  tenacity==9.2.1
  bleach==6.4.0
  tinycss2==1.5.1
  webencodings==0.6.1
  defusedxml==0.7.1
  mistune==3.4.0
  pandocfilters==1.5.1
  jupyterlab_pygments==0.3.0
  beautifulsoup4==4.15.0
  soupsieve==4.1.3
  gguf==0.19.0
  diskcache==5.6.3
)

# exllamav2 0.3.2 requires pandas ninja fastparquet torch safetensors pygments websockets regex
# numpy rich pillow; of these (and fastparquet's pandas numpy cramjam fsspec packaging) the image
# lacks fastparquet, cramjam and websockets.
EXLLAMAV2_PINS=(
  exllamav2==0.3.2
  fastparquet==2026.9.0
  cramjam==2.14.0
  websockets==17.4
)

# vLLM 0.25.0 for the GPU image (Python 3.12, torch 2.11.0+cu130: exactly what vllm 0.25.0 pins).
# Requires-Dist closure of vllm 0.25.0 (pip's resolver, 2026-11-29) minus the image's packages
# (docs/gpu-machine.md), installed there with --no-deps. Kept to what the offline LLM, its engine-core
# and worker processes, and vllm.benchmarks.latency import. Module-level imports on that path:
# fastapi + starlette + openai-harmony (vllm.entrypoints.llm imports entrypoints.serve.utils.api_utils
# and chat_utils), pybase64 + partial-json-parser (entrypoints.pooling), pydantic, msgspec, pyzmq,
# cbor2, cachetools, compressed-tensors, flashinfer. Imported later or by the structured-output and
# tokenizer paths: xgrammar, llguidance, outlines_core, lark, mistral_common, depyf, blake3,
# setproctitle, diskcache. Pins that differ from the resolver's pick, on purpose:
#   xgrammar 0.2.5.post1: 0.2.9 needs a newer apache-tvm-ffi than vllm's ==0.1.9 and fails at import
#     (seen on the H200, 2026-11-29); 0.2.5.post1 declares transformers<5, the image has 5.17: it ran.
#   openai 2.54.0 (last 2.x; vllm asks >=2.0): 3.x needs httpx2/httpcore2/truststore, 2.x the
#     image's httpx.
#   typing_extensions 4.16.0: pydantic 2.14 needs >=4.16; the image's version is not known here.
# mistral_common declares numpy<2.4 on Python 3.12; the image has numpy 2.5.2 (it ran).
# Left out on purpose (optional kernels, server-only or not on this path): flashinfer-cubin (458 MB;
# FlashInfer JIT-compiles or vLLM uses FlashAttention), cuda-tile, nvidia-cutlass-dsl, quack-kernels,
# tilelang, tokenspeed-mla, humming-kernels, nvidia-cudnn-frontend, fastsafetensors, torchcodec,
# PyNvVideoCodec, nvtx, lm-format-enforcer, prometheus-fastapi-instrumentator, anthropic, mcp,
# model-hosting-container-standards, opentelemetry-*, watchfiles, ijson, python-json-logger,
# uvicorn (fastapi[standard]); numba, protobuf, setuptools and the rest come from the image.
VLLM_PINS=(
  vllm==0.25.0
  flashinfer-python==0.6.13
  apache-tvm-ffi==0.1.9
  xgrammar==0.2.5.post1
  pydantic==2.14.4
  pydantic_core==2.50.5
  annotated-types==0.8.0
  typing-inspection==0.4.5
  typing_extensions==4.16.0
  msgspec==0.23.0
  pyzmq==27.3.0
  openai==2.54.0
  jiter==0.19.0
  distro==1.9.0
  sniffio==1.3.1
  fastapi==0.136.3
  starlette==1.10.0
  openai-harmony==0.0.8
  pybase64==1.5.1
  partial-json-parser==0.2.1.1.post7
  mistral_common==1.13.1
  pydantic-extra-types==2.11.1
  pycountry==26.2.16
  jsonschema==4.26.0
  jsonschema-specifications==2025.9.1
  referencing==0.37.0
  rpds-py==2026.9.1
  compressed-tensors==0.17.0
  loguru==0.7.3
  outlines_core==0.2.14
  llguidance==1.7.6
  lark==1.2.2
  depyf==0.20.0
  astor==0.8.1
  dill==0.4.1
  cbor2==6.3.0
  blake3==1.0.11
  cachetools==8.0.2
  setproctitle==1.3.8
  diskcache==5.6.3
  # the OpenAI server's (`python -m vllm.entrypoints.openai.api_server`, the serve workload): on 2026-11-30
  # it died without uvicorn; these five make its import, app build, /health and /metrics work (checked on
  # a CPython 3.12 stand-in of the image): uvicorn (launcher), watchfiles (serve/utils/ssl.py),
  # model-hosting-container-standards + jmespath (the SageMaker router api_server imports),
  # prometheus-fastapi-instrumentator (/metrics, loaded only when the app is built, after the engine)
  uvicorn==0.54.0
  watchfiles==1.3.0
  model-hosting-container-standards==0.1.16
  jmespath==1.1.0
  prometheus-fastapi-instrumentator==8.1.0
)

# Ray 2.60.0 for `llmperf-nb run --executor ray` (docs/ray.md, scripts/gpu-jobs/ray-one-cell.sh): the
# minimal install (no dashboard). Its Requires-Dist: click, filelock, jsonschema, msgpack<2 (>=1),
# packaging>=24.2, protobuf>=3.20.3, pyyaml, requests: all on the image (click, filelock, msgpack,
# packaging, protobuf, pyyaml, requests) or in wheels-base (jsonschema and its deps). Measured with
# `pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64`
# on 2026-11-29: ray-2.60.0-cp312-cp312-manylinux2014_x86_64.whl, 79,321,593 bytes (75.6 MiB).
RAY_PINS=(
  ray==2.60.0
)

# pip matches manylinux_2_N tags exactly, so every tag a pinned wheel carries must be listed
# (torch cu130 on the image needs glibc >= 2.28, so nothing newer than 2_28 is asked for).
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_26_x86_64
           manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64
           manylinux_2_12_x86_64 manylinux2010_x86_64 manylinux_2_5_x86_64 manylinux1_x86_64)
# The vllm part also takes newer tags: llguidance 1.7 has only a manylinux_2_31 wheel, and it ran on
# the image (Python 3.12.3 of Ubuntu 24.04: glibc 2.39).
VLLM_PLATFORMS=(manylinux_2_39_x86_64 manylinux_2_35_x86_64 manylinux_2_34_x86_64 manylinux_2_31_x86_64
                "${PLATFORMS[@]}")

log() { printf '[gpu-bundle] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# PEP 503 name normalization, with _ (as in wheel file names); no forks: this runs per file
norm() {
  local s=${1,,}
  s=${s//[-.]/_}
  while [[ $s == *__* ]]; do s=${s//__/_}; done
  printf '%s' "$s"
}

# "name version" of a wheel file name, both normalized
wheel_key() {
  local f=${1##*/}
  f=${f%.whl}
  local name=${f%%-*} rest=${f#*-}
  printf '%s %s' "$(norm "$name")" "${rest%%-*}"
}

pins_of() {
  case $1 in
    base) printf '%s\n' "${BASE_PINS[@]}" ;;
    exllamav2) printf '%s\n' "${EXLLAMAV2_PINS[@]}" ;;
    vllm) printf '%s\n' "${VLLM_PINS[@]}" ;;
    ray) printf '%s\n' "${RAY_PINS[@]}" ;;
    *) die "unknown wheel part: $1" ;;
  esac
}

fetch_wheels() {  # part
  local part=$1 dir="$DEST/wheels-$1" pin f key missing=()
  local -A wanted=() have=()
  mkdir -p "$dir"
  while read -r pin; do
    wanted["$(norm "${pin%%==*}") ${pin#*==}"]=$pin
  done < <(pins_of "$part")
  for f in "$dir"/*.whl; do
    [ -e "$f" ] || continue
    key=$(wheel_key "$f")
    if [ -n "${wanted[$key]:-}" ]; then
      have[$key]=$f
    else  # no longer pinned: two versions of one package break an install
      log "removing unpinned ${f##*/}"
      rm -f "$f"
    fi
  done
  while read -r pin; do
    key="$(norm "${pin%%==*}") ${pin#*==}"
    [ -n "${have[$key]:-}" ] || missing+=("$pin")
  done < <(pins_of "$part")
  if [ ${#missing[@]} = 0 ]; then
    log "wheels-$part: all ${#wanted[@]} wheels present"
    return
  fi
  log "wheels-$part: downloading ${#missing[@]}: ${missing[*]}"
  local plat=() tags=("${PLATFORMS[@]}")
  [ "$part" = vllm ] && tags=("${VLLM_PLATFORMS[@]}")
  for f in "${tags[@]}"; do plat+=(--platform "$f"); done
  "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${plat[@]}" -d "$dir" "${missing[@]}"
}

# bitsandbytes (HF transformers int4) ships one library per CUDA/ROCm release (129 MB unpacked);
# the GPU image has CUDA 13.0, so the wheel is repacked with only that one and the CPU one (3.6 MB).
BNB_VERSION=0.50.2
BNB_CUDA=${BNB_CUDA:-cuda130}

fetch_bnb() {
  local dir="$DEST/wheels-extra" name="bitsandbytes-$BNB_VERSION-py3-none-manylinux_2_24_x86_64.whl"
  mkdir -p "$dir"
  if [ -s "$dir/$name" ]; then log "$name present"; return; fi
  local tmp; tmp=$(mktemp -d "${TMPDIR:-/tmp}/gpu-bundle.XXXXXX")
  "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_24_x86_64 -d "$tmp" "bitsandbytes==$BNB_VERSION" >&2
  mkdir "$tmp/w" && ( cd "$tmp/w" && unzip -q "$tmp/$name" \
    && find bitsandbytes -maxdepth 1 -name 'libbitsandbytes_*.so' ! -name "*_$BNB_CUDA.so" ! -name '*_cpu.so' -delete \
    && "$PY" - <<'PYEOF'
import csv, glob, os
rec = glob.glob("*.dist-info/RECORD")[0]
rows = [r for r in csv.reader(open(rec)) if not r[0].endswith(".so") or os.path.exists(r[0])]
with open(rec, "w", newline="") as f:
    csv.writer(f).writerows(rows)
PYEOF
  ) && ( cd "$tmp/w" && zip -q -r "$dir/$name" . )
  rm -rf "$tmp"
  log "wrote $dir/$name ($(du -h "$dir/$name" | cut -f1))"
}

# the vllm wheels are too big for one device call: pack them into parts for scripts/xfer.sh
pack_vllm() {
  [ -d "$DEST/wheels-vllm" ] || die "$DEST/wheels-vllm missing: run fetch vllm"
  ( cd "$DEST" && XFER_DIR="$REPO/.xfer" "$REPO/scripts/xfer.sh" pack wheels-vllm wheels-vllm )
  XFER_DIR="$REPO/.xfer" "$REPO/scripts/xfer.sh" plan wheels-vllm >&2
}

# the ray wheel is over the ~50 MiB a device call carries besides the repo: two parts for scripts/xfer.sh
pack_ray() {
  [ -d "$DEST/wheels-ray" ] || die "$DEST/wheels-ray missing: run fetch ray"
  ( cd "$DEST" && XFER_DIR="$REPO/.xfer" "$REPO/scripts/xfer.sh" pack wheels-ray wheels-ray )
  XFER_DIR="$REPO/.xfer" "$REPO/scripts/xfer.sh" plan wheels-ray >&2
}

AIPERF_VERSION=0.13.0  # pyproject.toml's `serve` extra and the Makefile's AIPERF_SPEC name the same

fetch_aiperf() {  # the closure, resolved by pip for the GPU image's Python (no pin list: nothing is shared)
  local dir="$DEST/wheels-aiperf" plat=() f
  if [ -f "$dir/.complete-$AIPERF_VERSION" ]; then log "wheels-aiperf present"; return; fi
  rm -rf "$dir" && mkdir -p "$dir"
  for f in "${VLLM_PLATFORMS[@]}"; do plat+=(--platform "$f"); done
  "$PY" -m pip download --only-binary=:all: --python-version 3.12 --implementation cp "${plat[@]}" \
    -d "$dir" "aiperf==$AIPERF_VERSION" >&2
  touch "$dir/.complete-$AIPERF_VERSION"
  ( cd "$DEST" && XFER_DIR="$REPO/.xfer" "$REPO/scripts/xfer.sh" pack wheels-aiperf wheels-aiperf )
  XFER_DIR="$REPO/.xfer" "$REPO/scripts/xfer.sh" plan wheels-aiperf >&2
}

fetch_llama() {
  local out="$DEST/$LCP_TARBALL"
  if [ -s "$out" ]; then
    log "$LCP_TARBALL present"
    return
  fi
  local tmp
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/gpu-bundle.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT
  log "downloading llama-cpp-python==$LCP_VERSION sdist (~77 MB)"
  "$PY" -m pip download --no-deps --no-binary :all: -d "$tmp/dl" \
    "llama-cpp-python==$LCP_VERSION" >&2
  local sdist
  sdist=$(ls "$tmp"/dl/llama_cpp_python-"$LCP_VERSION".tar.gz 2>/dev/null) || die "sdist not found in $tmp/dl"
  mkdir -p "$tmp/src"
  tar -xzf "$sdist" -C "$tmp/src"
  local top="llama_cpp_python-$LCP_VERSION"
  local root="$tmp/src/$top" lc="$tmp/src/$top/vendor/llama.cpp"
  [ -f "$lc/CMakeLists.txt" ] || die "unexpected sdist layout"

  # keep the llama.cpp commit for build_commit (llama-bench reports it) before dropping .git
  local commit
  commit=$(git -C "$lc" rev-parse --short HEAD 2>/dev/null || true)
  if [[ $commit =~ ^[0-9a-f]{7,}$ ]]; then
    local bi="$lc/cmake/build-info.cmake"
    sed -i.orig "s/^set(BUILD_COMMIT \"unknown\")/set(BUILD_COMMIT \"$commit\")/" "$bi"
    touch -r "$bi.orig" "$bi"; rm -f "$bi.orig"
    log "llama.cpp commit $commit recorded as the default BUILD_COMMIT"
  fi

  # the sdist's own extras: git history (39 MB), CI, docs, Python examples and tests
  rm -rf "$root/.git" "$root/.github" "$root/docs" "$root/examples" "$root/tests" "$root/docker"
  ( cd "$lc"
    rm -rf .git .github .devops .gemini .pi docs benches media gguf-py
    # tests/ and examples/ are add_subdirectory()'d by a standalone configure: keep a stub
    for d in tests examples; do
      rm -rf "$d"; mkdir "$d"
      printf '# %s/ removed by scripts/gpu-bundle.sh (llmperf-nb) to save space\n' "$d" > "$d/CMakeLists.txt"
    done
    # vocab-only models: keep the Llama SPM one (tokenizer for synthetic Llama GGUFs)
    find models -mindepth 1 -maxdepth 1 ! -name ggml-vocab-llama-spm.gguf -exec rm -rf {} +
    # web UI: keep what CMake reads (the server then builds with no embedded UI)
    find tools/ui -mindepth 1 -maxdepth 1 ! -name CMakeLists.txt ! -name ui.h.in \
      ! -name ui.cpp.in ! -name sources.cmake -exec rm -rf {} +
    rm -rf tools/server/tests tools/server/bench tools/mtmd/tests \
      tools/mtmd/test-1.jpeg tools/mtmd/test-2.mp3 tools/mtmd/test-3.mp4
    # ggml backends: only the enabled ones are add_subdirectory()'d; keep CPU, CUDA, BLAS
    find ggml/src -mindepth 1 -maxdepth 1 -type d -name 'ggml-*' ! -name ggml-cpu \
      ! -name ggml-cuda ! -name ggml-blas -exec rm -rf {} +
  )
  mkdir -p "$DEST"
  ( cd "$tmp/src" && tar --sort=name --owner=0 --group=0 --numeric-owner -cf - "$top" ) \
    | gzip -9n > "$out.part"
  mv "$out.part" "$out"
  rm -rf "$tmp"; trap - EXIT
  log "wrote $out ($(du -h "$out" | cut -f1))"
}

mib() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1048576 }'; }

sizes() {
  local p total=0 b
  for p in wheels-base wheels-exllamav2 wheels-extra "$LCP_TARBALL"; do
    if [ -e "$DEST/$p" ]; then
      b=$(du -sb "$DEST/$p" | cut -f1)
      total=$((total + b))
      printf '%8.2f MiB  %s\n' "$(mib "$b")" "$p"
    else
      printf '%8s      %s\n' "-" "$p (missing)"
    fi
  done
  printf '%8.2f MiB  total (the device tool carries at most 64 MiB a call, repo included)\n' \
    "$(mib "$total")"
  local big
  for big in vllm ray; do
    [ -d "$DEST/wheels-$big" ] || continue
    b=$(du -sb "$DEST/wheels-$big" | cut -f1)
    printf '%8.2f MiB  wheels-%s (%s wheels; travels as .xfer/wheels-%s parts, not carried whole)\n' \
      "$(mib "$b")" "$big" "$(find "$DEST/wheels-$big" -name '*.whl' | wc -l)" "$big"
  done
}

install_wheels() {  # offline; [parts...] [--target DIR]
  local target=/tmp/site parts=() a
  while [ $# -gt 0 ]; do
    case $1 in
      --target) target=$2; shift 2 ;;
      --target=*) target=${1#*=}; shift ;;
      *) parts+=("$1"); shift ;;
    esac
  done
  [ ${#parts[@]} -gt 0 ] || parts=(base)
  local whls=()
  for a in "${parts[@]}"; do
    [ -d "$DEST/wheels-$a" ] || die "$DEST/wheels-$a missing: run fetch on a networked machine"
    whls+=("$DEST/wheels-$a"/*.whl)
  done
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$target" "${whls[@]}"
  log "installed ${#whls[@]} wheels into $target; then:"
  log "  export PYTHONPATH=$target\${PYTHONPATH:+:\$PYTHONPATH} JUPYTER_PATH=$target/share/jupyter"
  log "pip check (debugpy is left out on purpose; look for lines naming the packages just installed):"
  PYTHONPATH="$target${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m pip check >&2 || true
}

cmd=${1:-fetch}
[ $# -gt 0 ] && shift
case $cmd in
  fetch)
    parts=("$@"); [ ${#parts[@]} -gt 0 ] || parts=(base exllamav2 bnb llama)
    for p in "${parts[@]}"; do
      case $p in
        base|exllamav2) fetch_wheels "$p" ;;
        vllm) fetch_wheels vllm; pack_vllm ;;
        ray) fetch_wheels ray; pack_ray ;;
        llama) fetch_llama ;;
        bnb) fetch_bnb ;;
        aiperf) fetch_aiperf ;;
        *) die "unknown part: $p (base, exllamav2, bnb, llama, vllm, ray, aiperf)" ;;
      esac
    done
    sizes ;;
  sizes) sizes ;;
  install) install_wheels "$@" ;;
  list) printf 'wheels-base:\n'; pins_of base | sed 's/^/  /'
        printf 'wheels-exllamav2:\n'; pins_of exllamav2 | sed 's/^/  /'
        printf 'wheels-vllm:\n'; pins_of vllm | sed 's/^/  /'
        printf 'wheels-ray:\n'; pins_of ray | sed 's/^/  /'
        printf '%s\n' "$LCP_TARBALL" ;;
  -h|--help|help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command: $cmd (try --help)" ;;
esac
