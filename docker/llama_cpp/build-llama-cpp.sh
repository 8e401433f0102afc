#!/bin/sh
# Build step shared by docker/Dockerfile.{cpu,cu121,rocm57}.llama_cpp; runs inside `docker build`
# as root, after apt has installed python3, python3-venv, a C/C++ toolchain and cmake.
#
# 1. fetch the llama-cpp-python sdist from PyPI and check its sha256 and the vendored llama.cpp
#    commit (the sdist's vendor/llama.cpp IS the pinned llama.cpp);
# 2. build llama.cpp ONCE with CMake: shared libs + llama-bench, llama-completion, llama-quantize and
#    llama-server (the serve workload's server: no web UI, no HTTPS); install them to /usr/local/{bin,lib};
# 3. install into /opt/venv, in one pip resolution: llama-cpp-python with LLAMA_BUILD=OFF (no second
#    build; it loads $LLAMA_CPP_LIB_PATH/libllama.so, /usr/local/lib per the Dockerfile), gguf from
#    the same llama.cpp tree, and PY_PACKAGES; the package's own llama_cpp/lib also gets symlinks
#    to the libraries, for code that ignores the variable (llama_cpp._ggml loads lib/libggml.so);
# 4. keep the tokenizer-only GGUFs and a BUILD_INFO file in /opt/llama.cpp;
# 5. clean up, then a smoke test (in this same layer: with the vfs driver every layer is a copy).
#
# Environment (Dockerfile ARGs): LLAMA_CPP_PYTHON_VERSION, LLAMA_CPP_PYTHON_SHA256 ("" = skip),
# LLAMA_CPP_COMMIT ("" = skip), LLAMA_CPP_CMAKE_ARGS (backend flags), PY_PACKAGES, BUILD_JOBS.
set -eux

: "${LLAMA_CPP_PYTHON_VERSION:?}"
TARGETS="llama-bench llama-completion llama-quantize llama-server"
SRC_DIR=/tmp/llama-src
BUILD_DIR=/tmp/llama-build

python3 -m venv /opt/venv
export PATH="/opt/venv/bin:$PATH"

# --- 1. the pinned source ---
mkdir -p "$SRC_DIR"
cd "$SRC_DIR"
pip download --no-deps --no-binary llama-cpp-python -d . "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
sdist="llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz"
if [ -n "${LLAMA_CPP_PYTHON_SHA256:-}" ]; then
    echo "$LLAMA_CPP_PYTHON_SHA256  $sdist" | sha256sum -c -
fi
tar xzf "$sdist"
src="$SRC_DIR/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION"
commit=$(cat "$src/.git/modules/vendor/llama.cpp/HEAD")
if [ -n "${LLAMA_CPP_COMMIT:-}" ] && [ "$commit" != "$LLAMA_CPP_COMMIT" ]; then
    echo "vendored llama.cpp is $commit, expected $LLAMA_CPP_COMMIT" >&2
    exit 1
fi

# --- 2. llama.cpp, once ---
# No git in the image: the commit for `llama-bench -o json` (build_commit) is passed explicitly.
# LLAMA_CURL is deprecated/ignored in this llama.cpp; LLAMA_OPENSSL=OFF drops the HTTPS client.
# shellcheck disable=SC2086  # LLAMA_CPP_CMAKE_ARGS is a list of flags
cmake -S "$src/vendor/llama.cpp" -B "$BUILD_DIR" \
    -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
    -DGGML_NATIVE=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_BUILD_COMMIT="$(echo "$commit" | cut -c1-7)" -DLLAMA_BUILD_NUMBER=0 \
    -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON -DCMAKE_INSTALL_RPATH=/usr/local/lib \
    ${LLAMA_CPP_CMAKE_ARGS:-}
# shellcheck disable=SC2086
cmake --build "$BUILD_DIR" -j"${BUILD_JOBS:-$(nproc)}" --target $TARGETS
for t in $TARGETS; do install -m 755 "$BUILD_DIR/bin/$t" /usr/local/bin/; done
find "$BUILD_DIR" -name 'lib*.so*' -exec cp -a {} /usr/local/lib/ \;
ldconfig

# --- 3. llama-cpp-python without building llama.cpp again, gguf, PY_PACKAGES ---
# shellcheck disable=SC2086
CMAKE_ARGS="-DLLAMA_BUILD=OFF" pip install "$src" "$src/vendor/llama.cpp/gguf-py" ${PY_PACKAGES:-}
pkg_lib="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/llama_cpp/lib"
mkdir -p "$pkg_lib"
for f in /usr/local/lib/lib*.so; do ln -sf "$f" "$pkg_lib/"; done

# --- 4. tokenizer-only GGUFs (synthetic-weight models copy their tokenizer keys) and the pin ---
mkdir -p /opt/llama.cpp/models
cp "$src"/vendor/llama.cpp/models/ggml-vocab-llama-*.gguf /opt/llama.cpp/models/
printf 'llama_cpp_python=%s\nllama_cpp_commit=%s\ncmake_args=%s\n' \
    "$LLAMA_CPP_PYTHON_VERSION" "$commit" "${LLAMA_CPP_CMAKE_ARGS:-}" >/opt/llama.cpp/BUILD_INFO

# --- 5. clean up, smoke test ---
cd /
rm -rf "$SRC_DIR" "$BUILD_DIR" /root/.cache /tmp/pip-*

# CUDA builds have no driver at build time: let the libraries load against the driver stub.
stub=/usr/local/cuda/lib64/stubs/libcuda.so
if [ -e "$stub" ] && ! ldconfig -p | grep -q 'libcuda\.so\.1 '; then
    mkdir -p /tmp/cuda-stub && ln -s "$stub" /tmp/cuda-stub/libcuda.so.1
    export LD_LIBRARY_PATH="/tmp/cuda-stub${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
llama-bench --help >/dev/null
llama-completion --version
llama-server --version
python -c "import importlib.metadata as m, llama_cpp
print('llama-cpp-python', llama_cpp.__version__, '| gguf', m.version('gguf'), '| numpy', m.version('numpy'))
print(llama_cpp.llama_print_system_info().decode())"
rm -rf /tmp/cuda-stub
