"""`llmperf-nb run --executor ray` on a real Ray cluster started on this machine (tests/raycluster.py): a head and
worker nodes that declare GPU models by resources, as real workers do (docs/ray.md). There is no GPU here, so a GPU
cell placed on its node finds none and is recorded as not run there, with that node; the CPU cells (tiny-llama,
llama.cpp) are measured for real. The tests run in file order: the last one kills a node."""

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmperf_nb import results
from llmperf_nb.executors.ray import MARK_FILE

from .conftest import cli, needs_llama_cpp, start_cli
from .raycluster import Cluster

pytestmark = [
    pytest.mark.slow,
    needs_llama_cpp,
    pytest.mark.skipif(
        importlib.util.find_spec("ray") is None, reason="Ray is not installed (pip install -e '.[ray]')"
    ),
]

ROUTED = """
name: ray-routed
models: [tiny-llama]
gpus: [cpu, rtx-4090, {name: h200, count: 2}, a100-80gb]
# n_batch 1 cannot take the 8-token prompt in one llama_decode: a real engine failure (tests/test_pipeline.py)
engines: [llama_cpp, {name: llama_cpp, n_batch: 1}]
gen_len: 16
repetitions: 2
warmup: 1
timeout_s: 300
"""

#: two CPU cells (llama.cpp with 1 and 2 threads), long enough to be caught mid-way
TWO_CPU_CELLS = """
name: ray-two
models: [tiny-llama]
gpus: [cpu]
engines: [{name: llama_cpp, threads: 1}, {name: llama_cpp, threads: 2}]
gen_len: 48
repetitions: 2
warmup: 1
timeout_s: 300
"""


@pytest.fixture(scope="module")
def cluster():
    c = Cluster()
    try:
        c.add_node("a", num_gpus=1, resources={"llmperf-nb:rtx-4090": 1, "llmperf-nb:cpu": 1})
        c.add_node("b", num_gpus=2, resources={"llmperf-nb:h200": 2})
        yield c
    finally:
        c.stop()


def params_file(folder: Path, text: str) -> Path:
    path = folder / "params.yaml"
    path.write_text(text)
    return path


def run_args(params: Path, out: Path, cache_dir: Path, cluster: Cluster, *more) -> list:
    return [
        "run",
        params,
        "--out",
        out,
        "--cache-dir",
        cache_dir,
        "--executor",
        "ray",
        "--address",
        cluster.address,
        "--no-progress",
        *more,
    ]


@pytest.fixture(scope="module")
def routed(cluster, tmp_path_factory, cache_dir):
    out = tmp_path_factory.mktemp("ray-routed")
    done = cli(*run_args(params_file(out, ROUTED), out / "report", cache_dir, cluster))
    return out / "report", done


def by_cell(out: Path) -> dict:
    """Results by GPU and engine label, e.g. ``cpu llama_cpp-1``."""
    return {" ".join(d["cell_id"].split("__")[1:3]): d for d in results.load_dir(out / "results")}


def test_cells_run_on_the_node_with_their_gpu_model(routed, cluster):
    out, done = routed
    assert done.returncode == 1, done.stdout + done.stderr  # one cell fails, on purpose
    assert "cells: 1 measured, 0 reused, 1 failed, 6 not run here" in done.stdout
    docs = by_cell(out)
    a, b = cluster.node_id("a"), cluster.node_id("b")
    ok = docs["cpu llama_cpp"]
    assert ok["status"] == "ok" and ok["node"]["node_id"] == a  # only a offers its CPU
    assert ok["decode_tok_s"]["n"] == 2 and ok["gen_tokens"]["actual"] == 16
    assert ok["node"] == {
        "executor": "ray",
        "node_id": a,
        "ip": cluster.address.split(":")[0],
        "hostname": os.uname().nodename,
    }
    # placed on the node that declares the model; that node's setup then finds no GPU here
    for gpu, node in (("rtx-4090", a), ("h200x2", b)):
        for engine in ("llama_cpp", "llama_cpp-1"):
            doc = docs[f"{gpu} {engine}"]
            assert doc["node"]["node_id"] == node and doc["status"] == "skipped"
            assert doc["error"]["message"] == f"the cell asks for {gpu} but this machine has no GPU"


def test_a_failing_cell_is_recorded_with_its_node_and_the_others_go_on(routed, cluster):
    out, done = routed
    bad = by_cell(out)["cpu llama_cpp-1"]
    assert bad["status"] == "failed" and bad["error"]["step"] == "benchmark"
    assert "GGML_ASSERT" in bad["error"]["message"] and bad["error"]["log_tail"]
    assert bad["node"]["node_id"] == cluster.node_id("a")
    said = next(line for line in done.stdout.splitlines() if line.startswith(f"failed: {bad['cell_id']} on "))
    assert "GGML_ASSERT" in said  # why, in the run's own output


def test_a_gpu_no_node_has_is_reported_at_once_and_recorded_as_not_run(routed):
    out, done = routed
    lines = done.stdout.splitlines()
    first = lines.index(next(line for line in lines if line.startswith("started: ")))
    said = [i for i, line in enumerate(lines) if line.startswith("unschedulable: tiny-llama__a100-80gb__")]
    assert len(said) == 2 and said[-1] < first, done.stdout  # before any cell started
    for engine in ("llama_cpp", "llama_cpp-1"):
        doc = by_cell(out)[f"a100-80gb {engine}"]
        assert doc["status"] == "skipped" and "node" not in doc
        assert doc["error"]["message"].startswith(
            "no node of the Ray cluster has a100-80gb: start one with --num-gpus 1"
        )
        assert "cpu×1, h200×2, rtx-4090×1" in doc["error"]["message"]


def test_one_report_from_the_results_of_every_node(routed, cluster):
    out, done = routed
    assert done.stdout.strip().splitlines()[-1] == f"report: {out / 'index.html'}"
    readme = (out / "README.md").read_text()
    a, b = cluster.node_id("a")[:8], cluster.node_id("b")[:8]
    node_line = next(line for line in readme.splitlines() if line.startswith("- Ray nodes: "))
    assert f"node {a}): 4 cells" in node_line and f"node {b}): 2 cells" in node_line
    assert "| tiny-llama | CPU | int4 | llama.cpp | synthetic |" in readme
    assert "not run: no node of the Ray cluster has a100-80gb" in readme
    assert "| tiny-llama | CPU | int4 | llama.cpp (n_batch=1) | synthetic | failed: " in readme
    assert "Ray nodes: " in (out / "index.html").read_text()
    assert not (out / "results" / MARK_FILE).exists()


def test_a_second_run_reuses_the_finished_cell(routed, cluster, cache_dir):
    out, _ = routed
    before = by_cell(out)["cpu llama_cpp"]
    again = cli(*run_args(out.parent / "params.yaml", out, cache_dir, cluster, "--no-report", "--only", "*__cpu__*"))
    assert again.returncode == 1, again.stdout + again.stderr
    assert "cells: 0 measured, 1 reused, 1 failed, 0 not run here" in again.stdout  # the failed cell is tried again
    assert "started: tiny-llama__cpu__llama_cpp__" not in again.stdout
    assert by_cell(out)["cpu llama_cpp"] == before


def stream(args: list, on_line) -> tuple[subprocess.Popen, list[str]]:
    """Run the CLI, handing each line it prints to ``on_line(line, proc)``; returns the process and its lines."""
    lines = []
    proc = start_cli(*args, stderr=subprocess.STDOUT)
    for line in proc.stdout:
        lines.append(line)
        on_line(line, proc)
    proc.wait(timeout=600)
    proc.stdout.close()
    return proc, lines


def wait_for(path: Path, timeout: float = 240) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < end, f"{path} did not appear"
        time.sleep(0.2)


def processes_in(folder: Path) -> list[str]:
    """Processes whose working directory is below ``folder`` (a cell's kernel, step or driver left running)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if cwd.startswith(str(folder)):
            found.append(f"{entry}: {Path(f'/proc/{entry}/cmdline').read_text().replace(chr(0), ' ')[:120]}")
    return found


STARTED = re.compile(r"started: (\S+) on .*node (\w{8})\)")


def test_ctrl_c_marks_the_running_cell_and_keeps_the_finished_one(cluster, tmp_path, cache_dir):
    out = tmp_path / "report"
    seen = []

    def on_line(line, proc):
        m = STARTED.match(line)
        if m:
            seen.append(m.group(1))
        if len(seen) == 2 and m:  # the second cell started: Ctrl-C once it is mid-way
            wait_for(out / "results" / seen[1] / "setup.json")
            proc.send_signal(signal.SIGINT)

    proc, lines = stream(run_args(params_file(tmp_path, TWO_CPU_CELLS), out, cache_dir, cluster), on_line)
    assert proc.returncode == 130, "".join(lines)
    assert lines[-1] == "llmperf-nb: interrupted; finished cells are kept, run again to go on\n"
    first, second = (results.load(out / "results" / c / "result.json") for c in seen)
    assert first["status"] == "ok"
    assert second["status"] == "failed" and second["error"]["message"].startswith("interrupted")
    assert second["node"]["node_id"] == cluster.node_id("a")
    time.sleep(2)
    assert processes_in(out) == []
    assert not (out / "results" / MARK_FILE).exists()


def test_a_cell_gets_its_nodes_environment_not_rays_thread_limit(cluster):
    """Ray sets OMP_NUM_THREADS in a worker (1 for a task of no CPUs) where the node's environment has none: a
    torch or OpenMP benchmark would run on one thread. The task (executors.ray.node_environment) undoes that."""
    probe = f"""
import os, ray
from llmperf_nb.executors.ray import node_environment
ray.init(address={cluster.address!r}, logging_level="ERROR", log_to_driver=False)

@ray.remote(num_cpus=0, resources={{"llmperf-nb:cpu": 1}})
def probe():
    before = os.environ.get("OMP_NUM_THREADS")
    node_environment()
    return before, os.environ.get("OMP_NUM_THREADS")

print(ray.get(probe.remote()))
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=180)
    ours = cluster.env.get("OMP_NUM_THREADS")  # what the nodes were started with
    want = (ours, ours) if ours else ("1", None)
    assert done.stdout.strip().splitlines()[-1] == repr(want), done.stdout + done.stderr


def test_a_node_lost_mid_cell_gives_a_retry_and_loses_no_other_result(cluster, tmp_path, cache_dir):
    """Two CPU nodes, a cell on each at once (--per-host 2: both nodes are this machine); one node is killed while
    its cell runs. That cell runs again on the other node; the other cell's result is whole."""
    cluster.add_node("c", resources={"llmperf-nb:cpu": 1})
    out = tmp_path / "report"
    started: dict[str, str] = {}
    killed = {}

    def on_line(line, proc):
        m = STARTED.match(line)
        if m:
            started.setdefault(m.group(1), m.group(2))
        if m and not killed:
            cell, short = m.groups()
            wait_for(out / "results" / cell / "setup.json")
            victim = next(n for n in ("a", "c") if cluster.node_id(n).startswith(short))
            killed.update(cell=cell, node=cluster.node_id(victim))
            cluster.kill(victim)

    args = run_args(params_file(tmp_path, TWO_CPU_CELLS), out, cache_dir, cluster, "--per-host", "2")
    proc, lines = stream(args, on_line)
    text = "".join(lines)
    assert proc.returncode == 0, text
    assert re.search(rf"lost: {killed['cell']} on .*\(NodeDiedError\); trying it again", text), text
    docs = {d["cell_id"]: d for d in results.load_dir(out / "results")}
    assert len(docs) == 2 and all(d["status"] == "ok" for d in docs.values()), text
    retried = docs.pop(killed["cell"])
    (other,) = docs.values()
    assert retried["node"]["node_id"] != killed["node"]
    assert other["node"]["node_id"].startswith(started[other["cell_id"]])  # ran where it started, once
    assert text.count(f"started: {other['cell_id']}") == 1
    time.sleep(2)
    assert processes_in(out) == []
