import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
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


#: the runs start_cli started in the current test; no_process_left kills those still going after it
_started: list[subprocess.Popen] = []


def start_cli(*args, env=None, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE) -> subprocess.Popen:
    """Start the console script, to signal or kill it while it runs. It starts with SIGINT and SIGQUIT
    ignored, as a script's background job (``cmd &`` without job control) does, and as the whole suite may
    be when a CI job starts it that way: Ctrl-C must stop a run however it was started. Whatever the test
    does, a run still going when it ends is killed (no_process_left): a failed test leaves no run behind."""
    exe = Path(sys.executable).with_name("llmperf-nb")
    proc = subprocess.Popen([str(exe), *map(str, args)], stdout=stdout, stderr=stderr, text=True,
                            env={**os.environ, **(env or {})}, cwd=cwd, preexec_fn=as_a_background_job)
    _started.append(proc)
    return proc


def as_a_background_job() -> None:
    """A preexec_fn: the child starts as a script's background job does, with SIGINT and SIGQUIT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)


@pytest.fixture(autouse=True)
def no_process_left(request):
    """Every test ends with nothing it started still running, whatever it did: a run it started (start_cli)
    and still going is killed; so is a process still working in, or naming, its tmp_path after a grace
    period (a kernel, step, driver or server of a run, a container's lifeline at its work); a docker test's
    containers left on the daemon are removed. Any of them fails the test, and none reaches the next one."""
    # asked for here, the test's tmp_path outlives this fixture's check
    folder = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    docker, since = request.node.get_closest_marker("docker"), time.time()
    yield
    running = [p for p in _started if p.poll() is None]
    _started.clear()
    for proc in running:
        proc.kill()  # its kernel, step and driver end with it (process.own_tree), its containers too
        proc.communicate()
    left = _processes_naming(folder) if folder else {}
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    containers = _containers_left(request.getfixturevalue("docker_client"), since) if docker else []
    assert not running, f"still running when the test ended, killed: {[p.args for p in running]}"
    assert not left, f"left running, killed: {list(left.values())}"
    assert not containers, f"containers left on the daemon, removed: {containers}"


@pytest.fixture(autouse=True)
def environment_unchanged():
    """Every test leaves the variables that reach a run's processes (process.ALLOWED_ENV) as it found them
    (monkeypatch undoes its own changes first): one left set reaches every later test's runs, as
    HF_HUB_OFFLINE=1 once did. A change fails the test and is undone. (What libraries set for themselves on
    import, such as torch's TORCHINDUCTOR_CACHE_DIR, is theirs.)"""
    from llmperf_nb.process import ALLOWED_ENV

    before = {k: os.environ.get(k) for k in ALLOWED_ENV}
    yield
    changed = sorted(k for k in ALLOWED_ENV if os.environ.get(k) != before[k])
    for key in changed:
        if before[key] is None:
            del os.environ[key]
        else:
            os.environ[key] = before[key]
    assert not changed, f"the test changed variables that reach a run's processes: {changed}"


def _processes_naming(folder: Path, grace: float = 10.0) -> dict[int, str]:
    """The processes (pid: command line) still working below ``folder`` or naming it after ``grace`` s."""
    deadline = time.monotonic() + grace
    while True:
        found = {}
        for entry in filter(str.isdigit, os.listdir("/proc")):
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd")
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                zombie = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
            except (OSError, IndexError):
                continue
            mine = int(entry) == os.getpid()
            if not mine and not zombie and (cwd == str(folder) or cwd.startswith(f"{folder}/") or str(folder) in argv):
                found[int(entry)] = argv
        if not found or time.monotonic() > deadline:
            return {pid: f"{pid}: {argv[:300]}" for pid, argv in found.items()}
        time.sleep(0.2)


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


def _containers_left(client, since: float, grace: float = 120.0) -> list[str]:
    """The names of this runner's containers made since ``since`` (time.time()) and still on the daemon after
    ``grace`` s (a lifeline may be removing one: slower on a busy daemon), removed."""
    import docker
    from llmperf_nb.runners.containers import LABEL

    deadline = time.monotonic() + grace
    while True:
        left = [c for c in client.containers.list(all=True, filters={"label": f"{LABEL}=1"}, ignore_removed=True)
                if _created(c) >= since - 1]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    for container in left:
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)
    return [c.name for c in left]


def _created(container) -> float:
    """When the daemon made the container (its ``Created``, RFC 3339 with nanoseconds), as time.time()."""
    from datetime import datetime

    stamp = container.attrs["Created"].rstrip("Z")
    whole, _, fraction = stamp.partition(".")
    return datetime.fromisoformat(whole + "+00:00").timestamp() + float(f"0.{fraction or 0}")
