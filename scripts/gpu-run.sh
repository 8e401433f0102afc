#!/usr/bin/env bash
# Run llmperf-nb on an air-gapped GPU machine, from what scripts/gpu-bundle.sh put in .gpu/.
#
#   scripts/gpu-run.sh prepare            install the wheels, build llama.cpp (CUDA) once, JIT-build ExLlamaV2
#   scripts/gpu-run.sh run PARAMS [ARGS]  prepare, then `llmperf-nb run PARAMS ARGS`
#   scripts/gpu-run.sh env                print the exports that make the prepared tools visible
#   scripts/gpu-run.sh server             prepare, then build llama-server in the same llama.cpp build
#   scripts/gpu-run.sh stage              unpack a carried prebuilt llama.cpp build (and the bindings' sdist),
#                                         and a carried ExLlamaV2 extension
#
# One CMake build of the llama.cpp vendored in llama-cpp-python gives both the shared library the
# Python bindings load (LLAMA_CPP_LIB_PATH) and llama-bench for the cross-check, so the harness and
# llama-bench run the same binary. Everything lands in $GPU_BUILD_DIR (default .gpu-build/, ignored
# by git), so a second call on the same machine rebuilds nothing.
# Environment: CUDA_ARCH (default 90: H100/H200), JOBS (default: all cores).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${GPU_BUILD_DIR:-$REPO/.gpu-build}
SITE=$BUILD/site
LCP_VERSION=0.3.36
LCP=$BUILD/llama_cpp_python-$LCP_VERSION
# the Python side of llama-cpp-python alone (a copy of its llama_cpp/ folder), when the sdist is not carried
[ -d "$REPO/.gpu/llama_cpp_py/llama_cpp" ] && [ ! -f "$REPO/.gpu/llama-cpp-python-$LCP_VERSION-trimmed.tar.gz" ] \
    && LCP=$REPO/.gpu/llama_cpp_py
PREBUILT=${LLAMA_PREBUILT:-$REPO/.gpu/llama-cuda-prebuilt}  # llama.cpp/bin of an earlier build (tar.xz split in parts)
# ExLlamaV2's extension as an earlier machine JIT-built it (scripts/gpu-jobs/save-exllamav2-build.sh): xz parts
# of exllamav2_ext.so, unpacked into $EXL_EXT, which goes on PYTHONPATH; exllamav2 imports a module of that
# name before it would JIT-build one (its ext.py), which saves ~4 min of device time
EXL_PREBUILT=${EXL_PREBUILT:-$REPO/.gpu/exllamav2-ext-prebuilt}
EXL_EXT=$BUILD/exllamav2-ext
LLAMA=$BUILD/llama.cpp
CUDA_ARCH=${CUDA_ARCH:-90}
JOBS=${JOBS:-$(nproc)}
log() { echo "gpu-run: $*" >&2; }

exports() {
    cat <<EOS
export PYTHONPATH=$LCP:$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}$([ -f "$EXL_EXT/exllamav2_ext.so" ] && echo ":$EXL_EXT")
export JUPYTER_PATH=$SITE/share/jupyter
export LLAMA_CPP_LIB_PATH=$LLAMA/bin
export LLAMA_BENCH=$LLAMA/bin/llama-bench
export TORCH_EXTENSIONS_DIR=$BUILD/torch_extensions
export TORCH_CUDA_ARCH_LIST=${CUDA_ARCH:0:1}.${CUDA_ARCH:1}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONUNBUFFERED=1
EOS
    # the serve workload's llama.cpp server, where `gpu-run.sh server` built it
    [ -x "$LLAMA/bin/llama-server" ] && echo "export LLAMA_SERVER=$LLAMA/bin/llama-server"
    # MLC LLM: mlc-llm's Python source, unpacked from .gpu/mlc-llm-src.tar.gz (docs/mlc.md)
    [ -d "$BUILD/mlc-llm-src/mlc_llm" ] && echo "export MLC_LLM_SOURCE=$BUILD/mlc-llm-src"
    return 0
}

install_wheels() {
    [ -f "$SITE/.installed" ] && return
    log "installing carried wheels into $SITE"
    local wheels=("$REPO"/.gpu/wheels-base/*.whl)
    for part in wheels-exllamav2 wheels-extra; do
        [ -d "$REPO/.gpu/$part" ] && wheels+=("$REPO"/.gpu/"$part"/*.whl)
    done
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "${wheels[@]}"
    touch "$SITE/.installed"
}
install_mlc() {
    # TVM 0.26 + its FFI + what `import mlc_llm` needs beyond the image (.gpu/wheels-mlc), and
    # mlc-llm's Python source (.gpu/mlc-llm-src.tar.gz); both only where carried. Nothing is built.
    if [ -d "$REPO/.gpu/wheels-mlc" ] && [ ! -f "$SITE/.installed-mlc" ]; then
        log "installing MLC wheels (apache-tvm, apache-tvm-ffi, ...) into $SITE"
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
            "$REPO"/.gpu/wheels-mlc/*.whl
        touch "$SITE/.installed-mlc"
    fi
    if [ -f "$REPO/.gpu/mlc-llm-src.tar.gz" ] && [ ! -d "$BUILD/mlc-llm-src/mlc_llm" ]; then
        tar -xzf "$REPO/.gpu/mlc-llm-src.tar.gz" -C "$BUILD"
        log "mlc-llm source $(head -1 "$BUILD/mlc-llm-src/MLC_LLM_COMMIT") in $BUILD/mlc-llm-src"
    fi
}

extract_bindings() {
    # the Python side of llama-cpp-python (its llama_cpp/ folder) from the carried sdist, once: it stays in
    # $BUILD, so a later call on the same machine need not carry the sdist again
    [ -d "$LCP" ] || [ ! -f "$REPO/.gpu/llama-cpp-python-$LCP_VERSION-trimmed.tar.gz" ] \
        || tar -xzf "$REPO/.gpu/llama-cpp-python-$LCP_VERSION-trimmed.tar.gz" -C "$BUILD"
}

unpack_prebuilt() {
    # same CUDA and path as the machine that built it: its RUNPATH points into $LLAMA/bin
    compgen -G "$PREBUILT/llama-cuda.txz.*" >/dev/null || return 1
    cat "$PREBUILT"/llama-cuda.txz.* | tar -xJf - -C "$BUILD"
    log "llama.cpp: using the carried build in $PREBUILT ($(ls "$LLAMA/bin" | grep -c '^llama-') programs:" \
        "$(cd "$LLAMA/bin" && ls llama-* | tr '\n' ' '))"
}

unpack_exllamav2_ext() {
    # same torch and CUDA as the machine that built it (the extension links against torch's libraries)
    [ -f "$EXL_EXT/exllamav2_ext.so" ] && return 0
    compgen -G "$EXL_PREBUILT/exllamav2_ext.so.xz.*" >/dev/null || return 1
    mkdir -p "$EXL_EXT"
    cat "$EXL_PREBUILT"/exllamav2_ext.so.xz.* | xz -dc >"$EXL_EXT/exllamav2_ext.so.tmp"
    mv "$EXL_EXT/exllamav2_ext.so.tmp" "$EXL_EXT/exllamav2_ext.so"
    log "ExLlamaV2: using the carried extension in $EXL_PREBUILT ($(du -h "$EXL_EXT/exllamav2_ext.so" | cut -f1))"
}

stage() {
    # a call of its own for the prebuilt build (44 MB with llama-server): with wheels beside it, a call
    # would carry more than the 64 MiB it may (and beside 25 MB of tracked files, even alone: then it
    # travels through scripts/xfer.sh and LLAMA_PREBUILT names where it was unpacked, docs/gpu-machine.md);
    # what it unpacks stays in $BUILD for the next calls
    mkdir -p "$BUILD"
    extract_bindings
    local staged=0
    unpack_prebuilt && staged=1
    unpack_exllamav2_ext && staged=1
    [ "$staged" = 1 ] || { log "nothing to stage: no $PREBUILT/llama-cuda.txz.*, no $EXL_PREBUILT/exllamav2_ext.so.xz.*"; return 1; }
}

build_llama_cpp() {
    extract_bindings
    [ -x "$LLAMA/bin/llama-bench" ] && return
    unpack_prebuilt && return
    if [ ! -d "$LCP/vendor/llama.cpp" ] && [ ! -f "$REPO/.gpu/llama-cpp-python-$LCP_VERSION-trimmed.tar.gz" ]; then
        log "llama.cpp: nothing carried (no prebuilt build, no sdist): not built"  # e.g. a vLLM-only job
        return 0
    fi
    log "building llama.cpp (CUDA sm_$CUDA_ARCH, shared libraries + llama-bench) with $JOBS jobs"
    local start=$SECONDS
    # GIT_DIR: the sources sit inside this repo, and llama.cpp's build-info would record this repo's
    # commit as llama.cpp's (seen on 2026-11-29); with no git the vendored commit that gpu-bundle.sh
    # wrote into build-info.cmake stays, and llama-bench reports it as build_commit
    GIT_DIR=/nonexistent cmake -S "$LCP/vendor/llama.cpp" -B "$LLAMA" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
        -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH" -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >"$BUILD/llama-cmake.log" 2>&1
    cmake --build "$LLAMA" --target llama llama-bench -j "$JOBS" >"$BUILD/llama-build.log" 2>&1 \
        || { tail -30 "$BUILD/llama-build.log" >&2; return 1; }
    log "llama.cpp built in $((SECONDS - start)) s"
}

build_llama_server() {
    # llama-server (serve workload, docs/serving.md) from the same tree and build folder as the library the
    # bindings load and llama-bench: the same llama.cpp. No web UI (nothing to fetch: no network here).
    [ -x "$LLAMA/bin/llama-server" ] && return
    extract_bindings
    log "building llama-server (CUDA sm_$CUDA_ARCH) with $JOBS jobs"
    local start=$SECONDS
    GIT_DIR=/nonexistent cmake -S "$LCP/vendor/llama.cpp" -B "$LLAMA" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
        -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH" -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF \
        -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_APP=OFF >"$BUILD/llama-server-cmake.log" 2>&1
    cmake --build "$LLAMA" --target llama-server -j "$JOBS" >"$BUILD/llama-server-build.log" 2>&1 \
        || { tail -30 "$BUILD/llama-server-build.log" >&2; return 1; }
    log "llama-server built in $((SECONDS - start)) s"
}

build_exllamav2() {
    # find_spec, not import: importing exllamav2 is what starts the build
    python3 -c "import importlib.util as u, sys; sys.exit(u.find_spec('exllamav2') is None)" || return 0
    local start=$SECONDS
    MAX_JOBS=$JOBS python3 -m llmperf_nb.drivers.exllamav2 check >"$BUILD/exllamav2-jit.log" 2>&1 \
        || { tail -30 "$BUILD/exllamav2-jit.log" >&2; return 1; }
    log "ExLlamaV2 extension ready in $((SECONDS - start)) s ($(tail -1 "$BUILD/exllamav2-jit.log"))"
    # later calls on this machine import that build from $EXL_EXT (the exports put it on PYTHONPATH): torch's
    # JIT loader rebuilt it in every call otherwise (123-136 s each, 2026-11-30, cause not looked into)
    local so=$BUILD/torch_extensions/exllamav2_ext/exllamav2_ext.so
    if [ -f "$so" ] && [ ! -f "$EXL_EXT/exllamav2_ext.so" ]; then mkdir -p "$EXL_EXT" && cp "$so" "$EXL_EXT/"; fi
}

prepare() {
    mkdir -p "$BUILD"
    install_wheels
    install_mlc
    unpack_exllamav2_ext || true  # before the exports: they put it on PYTHONPATH when it is there
    eval "$(exports)"
    # builds finish before anything is measured: a compile beside a benchmark slows the benchmark
    # (seen: llama.cpp 7B decode 11 % under llama-bench while ExLlamaV2's extension compiled). The two
    # builds run side by side, each with every core: one fills the other's serial stretches (configure,
    # link, the last big CUDA files), which saves device time against one after the other.
    if [ -n "${SKIP_BUILDS:-}" ]; then  # a job that runs neither llama.cpp nor ExLlamaV2 (mlc-int4.sh)
        log "SKIP_BUILDS set: llama.cpp and ExLlamaV2 are not built"
        return 0
    fi
    ( build_exllamav2 || log "ExLlamaV2 build failed: its cells will fail with the reason" ) &
    build_llama_cpp || log "llama.cpp build failed: its cells will fail with the reason"
    wait
}

case "${1:-}" in
    prepare) prepare ;;
    env) exports ;;
    run) shift; prepare; eval "$(exports)"; exec python3 -m llmperf_nb.cli run "$@" ;;
    server) prepare; build_llama_server ;;
    stage) stage ;;
    *) sed -n '2,10p' "$0" >&2; exit 2 ;;
esac
