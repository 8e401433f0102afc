import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / "tests" / "data" / "logs"


def has_llama_cpp() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def has_nvidia_gpu() -> bool:
    if not shutil.which("nvidia-smi"):
        return False
    return subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0


needs_llama_cpp = pytest.mark.skipif(not has_llama_cpp(), reason="llama-cpp-python is not installed")
needs_gpu = pytest.mark.skipif(not has_nvidia_gpu(), reason="no NVIDIA GPU here")


def new_cell(model: str = "tiny-llama", gpu: str = "cpu", engine: str = "llama_cpp", *, count: int = 1,
             options: dict | None = None, quantization: str = "int4", **fields):
    """A cell for a test: the fields that matter to it given, the rest as a small params file would have them."""
    from llmperf_nb.cells import Cell, EngineChoice, GpuChoice
    from llmperf_nb.params import DEFAULT_PROMPT

    defaults = {"run": "t", "weights": "synthetic", "local_path": None, "num_shards": count, "prompt": DEFAULT_PROMPT,
                "gen_len": 256, "repetitions": 3, "warmup": 1, "min_time_s": 0.0, "timeout_s": 60.0, "seed": 0}
    return Cell(model=model, gpu=GpuChoice(gpu, count), engine=EngineChoice(engine, dict(options or {})),
                quantization=quantization, **{**defaults, **fields})


def driver_options(argv: list[str]) -> dict:
    """The options document an engine hands its driver (llmperf_nb/options), as a dict."""
    import json

    return json.loads(argv[argv.index("--options") + 1])


@pytest.fixture
def make_cell():
    """``make_cell(model, gpu, engine, count=, options=, quantization=, **other Cell fields)``."""
    return new_cell


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One weights cache for the session: synthetic GGUF files are written once."""
    return tmp_path_factory.mktemp("cache")


def cli(*args, env=None, cwd=ROOT, timeout=900):
    """Run the installed console script as a user would."""
    exe = Path(sys.executable).with_name("llmperf-nb")
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, env=full_env, cwd=cwd,
                          timeout=timeout)


@pytest.fixture(scope="session")
def docker_client():
    """A client of the Docker daemon that DOCKER_HOST names; tests that use it skip when none answers."""
    pytest.importorskip("docker", reason="the docker SDK is not installed (pip install '.[docker]')")
    from llmperf_nb.exceptions import ContainerError
    from llmperf_nb.runners.containers import connect

    try:
        client = connect()
    except ContainerError as e:
        pytest.skip(str(e))
    yield client
    client.close()


@pytest.fixture(scope="session")
def docker_base_image(docker_client):
    """llmperf-nb/base:bookworm, made by docker/base/make-base-image.sh (.ci/run makes it)."""
    import docker

    try:
        return docker_client.images.get("llmperf-nb/base:bookworm")
    except docker.errors.ImageNotFound:
        pytest.skip("llmperf-nb/base:bookworm is missing: make it with docker/base/make-base-image.sh (as root)")


@pytest.fixture(scope="session")
def llama_cpp_cpu_image(docker_client):
    """(tag, image, build log lines, seconds) of the CPU llama.cpp image, built through the runner if missing.

    A build takes ~5 min on 2 idle cores (docker/README.md); its "Step" lines go to the terminal.
    """
    import time

    from llmperf_nb.exceptions import ContainerError
    from llmperf_nb.runners.docker import DockerRunner

    lines: list[str] = []

    def on_line(line: str) -> None:
        lines.append(line)
        if line.startswith(("Step ", "building ", "built ")):
            print(f"docker build: {line}", end="", file=sys.__stderr__, flush=True)

    start = time.monotonic()
    try:
        tag, image = DockerRunner(client=docker_client).image("llama_cpp", "cpu", on_line=on_line)
    except ContainerError as e:
        if "make-base-image.sh" in str(e):
            pytest.skip(str(e))
        raise
    return tag, image, lines, time.monotonic() - start
