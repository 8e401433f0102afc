"""llama.cpp's own OpenAI-compatible server, ``llama-server``, built from the source the bindings load.

The Python bindings (llama-cpp-python) vendor llama.cpp in their sdist (``vendor/llama.cpp``, its commit
in ``.git/modules/vendor/llama.cpp/HEAD``); docker/llama_cpp/build-llama-cpp.sh builds llama-bench from
the same tree. ``llama-server`` comes from there too, so that the server and the offline driver run the
same llama.cpp. Found, in this order:

1. ``$LLAMA_SERVER``: a binary built elsewhere (the GPU machine's bundle, a Docker image);
2. the cache: ``<cache dir>/llama-server/<key>/llama-server``, key = the bindings' version, the sdist's
   sha256 and the CMake flags;
3. built: the sdist (``$LLAMA_CPP_SDIST``, else ``pip download`` of the installed bindings' version), then
   CMake: static, portable (GGML_NATIVE=OFF), no web UI, no HTTPS, only the ``llama-server`` target.
   About 15-25 min on 2 cores; once per cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
from pathlib import Path

from ..exceptions import EngineError, LlmPerfError
from ..process import python

#: bump when the build below makes a different binary from the same inputs
BUILD_VERSION = 1
#: CMake flags of every build; a GPU cell adds its backend's (BACKEND_FLAGS)
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_NATIVE=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_BUILD_NUMBER=0",
)
BACKEND_FLAGS = {"cpu": (), "cuda": ("-DGGML_CUDA=ON",)}
BUILD_TIMEOUT_S = 3 * 3600


def find_or_build(cache_dir: Path, backend: str, run) -> dict:
    """``{"path", "source", "version", ...provenance}`` of a llama-server for ``backend`` ("cpu" or "cuda");
    ``version`` is what the binary's ``--version`` prints (its llama.cpp build and commit)."""
    found = _find_or_build(cache_dir, backend, run)
    said = run([found["path"], "--version"], timeout=60).output
    return {
        **found,
        "version": "; ".join(line.strip() for line in said.splitlines() if line.startswith(("version", "built"))),
    }


def _find_or_build(cache_dir: Path, backend: str, run) -> dict:
    given = os.environ.get("LLAMA_SERVER")
    if given:
        if not os.access(given, os.X_OK):
            raise EngineError(f"LLAMA_SERVER={given} is not an executable file")
        source = ("LLAMA_SERVER, on the libllama the bindings load (one build)"
                  if _one_build(given, os.environ.get("LLAMA_CPP_LIB_PATH"), run) else "LLAMA_SERVER (built elsewhere)")
        return {"path": given, "source": source, "cached": True}
    version = bindings_version()
    sdist = _sdist(cache_dir / "llama-server" / "src", version, run)
    digest = _sha256(sdist)
    flags = (*CMAKE_FLAGS, *BACKEND_FLAGS[backend])
    key = hashlib.sha256(json.dumps([version, digest, flags, BUILD_VERSION]).encode()).hexdigest()[:12]
    out = cache_dir / "llama-server" / key
    info = {
        "path": str(out / "llama-server"),
        "source": f"built from llama-cpp-python {version} sdist",
        "sdist_sha256": digest,
        "cmake_flags": list(flags),
    }
    if (out / "BUILD_INFO.json").exists():
        return {**json.loads((out / "BUILD_INFO.json").read_text()), "path": info["path"], "cached": True}
    info["llama_cpp_commit"] = _build(sdist, out, flags, run)
    (out / "BUILD_INFO.json").write_text(json.dumps(info, indent=1))
    return {**info, "cached": False}


def _one_build(server: str, lib: str | None, run) -> bool:
    """Whether ``server`` runs on the libllama the bindings load (``lib``, their LLAMA_CPP_LIB_PATH): it lies in that
    folder (scripts/gpu-run.sh builds it in the CMake build folder of that library), or the dynamic loader resolves
    its libllama.so there (the Docker images: docker/llama_cpp/build-llama-cpp.sh)."""
    if not lib:
        return False
    folder = Path(lib).resolve()
    if Path(server).resolve().parent == folder:
        return True
    try:
        said = run(["ldd", server], timeout=60, check=False).output
    except (OSError, LlmPerfError):  # no ldd: a label, never a failed cell
        return False
    found = re.search(r"^\s*libllama\.so\S* => (/\S+)", said, re.M)
    return bool(found) and Path(found.group(1)).resolve().parent == folder


def bindings_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        raise EngineError(
            "llama-server is built from the llama-cpp-python sdist of the installed bindings, and "
            "llama-cpp-python is not installed; install it or set LLAMA_SERVER to a built binary"
        ) from None


def _sdist(folder: Path, version: str, run) -> Path:
    given = os.environ.get("LLAMA_CPP_SDIST")
    if given:
        if not Path(given).is_file():
            raise EngineError(f"LLAMA_CPP_SDIST={given} is not a file")
        return Path(given)
    path = folder / f"llama_cpp_python-{version}.tar.gz"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        run(
            [
                python(),
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                "llama-cpp-python",
                "-d",
                str(folder),
                f"llama-cpp-python=={version}",
            ],
            timeout=900,
            on_line=lambda line: print(line, end=""),
        )
    return path


def _build(sdist: Path, out: Path, flags: tuple[str, ...], run) -> str:
    """Extract the vendored llama.cpp, build ``llama-server`` into ``out``; the llama.cpp commit."""
    work = out.with_name(out.name + ".build")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with tarfile.open(sdist) as tar:
        members = [
            m
            for m in tar.getmembers()
            if "/vendor/llama.cpp/" in m.name or m.name.endswith("/.git/modules/vendor/llama.cpp/HEAD")
        ]
        tar.extractall(work, members=members, filter="data")
    root = next(work.iterdir())
    head = root / ".git" / "modules" / "vendor" / "llama.cpp" / "HEAD"
    commit = head.read_text().strip() if head.exists() else "unknown"
    src, build = root / "vendor" / "llama.cpp", work / "build"
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    say = {"timeout": BUILD_TIMEOUT_S, "on_line": lambda line: print(line, end="")}
    run(["cmake", "-S", str(src), "-B", str(build), *gen, *flags, f"-DLLAMA_BUILD_COMMIT={commit[:7]}"], **say)
    run(["cmake", "--build", str(build), "--target", "llama-server", "-j", str(len(os.sched_getaffinity(0)))], **say)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(build / "bin" / "llama-server", out / "llama-server")
    shutil.rmtree(work, ignore_errors=True)
    return commit


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main(argv=None) -> int:
    """``python -m llmperf_nb.engines.llama_server CACHE_DIR [cpu|cuda]``: find or build llama-server into a
    cache ahead of a run (``make setup-test`` does it for the test suite's cache, out of the tests' time)."""
    import sys
    import time

    from ..exceptions import LlmPerfError
    from ..process import run

    args = sys.argv[1:] if argv is None else argv
    if not 1 <= len(args) <= 2 or (args[1:] and args[1] not in BACKEND_FLAGS):
        print("usage: python -m llmperf_nb.engines.llama_server CACHE_DIR [cpu|cuda]", file=sys.stderr)
        return 2
    start = time.monotonic()
    try:
        found = find_or_build(Path(args[0]), args[1] if args[1:] else "cpu", run)
    except LlmPerfError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    state = "cached" if found["cached"] else f"built in {time.monotonic() - start:.0f} s"
    print(f"llama-server: {found['path']} ({state}; {found['version']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
