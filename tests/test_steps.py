"""The three steps and pipeline.run_cell with a test engine (tests/fake_engine.py): the real steps, runner,
notebooks and timing loop in real processes, in seconds, with no engine installed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llmperf_nb import layout, pipeline, results, steps
from llmperf_nb.engines import registry
from llmperf_nb.exceptions import EngineError

from . import fake_engine


@pytest.fixture
def counter():
    fake_engine.register()
    yield registry["counter"]
    registry._engines.pop("counter", None)


@pytest.fixture
def cell_dir(tmp_path, make_cell, counter):
    cell = make_cell("tiny-llama", "cpu", "counter", gen_len=16, repetitions=2, warmup=1)
    folder = tmp_path / cell.id
    cell.save(folder)
    return folder


def test_the_steps_fill_the_cell_folder_as_layout_says(cell_dir, tmp_path, capsys):
    folder = layout.CellDir(cell_dir)
    setup = steps.setup(cell_dir, tmp_path / "cache")
    assert setup["skip"] is None and setup["format"] == "counter int4" and folder.output("setup").exists()
    made = steps.compile(cell_dir, tmp_path / "cache")
    assert made["cached"] is False and json.loads(folder.output("compile").read_text())["artifact"] == made["artifact"]
    assert steps.compile(cell_dir, tmp_path / "cache")["cached"] is True
    doc = steps.benchmark(cell_dir, tmp_path / "cache")
    assert folder.raw.exists() and results.load(folder.result) == doc
    assert doc["status"] == "ok" and doc["configuration"] == "Counter (test engine)"
    assert doc["gen_tokens"] == {"requested": 16, "actual": 16}
    assert doc["repetitions"] == {"requested": 2, "actual": 2, "warmup": 1}
    last = doc["prompt_token_ids"][-1]
    assert all(s["token_ids"] == list(range(last + 1, last + 17)) for s in doc["samples"])  # the counter's tokens
    assert results.problems(doc) == []  # identical work in every repetition
    assert "decode" in capsys.readouterr().out


def test_a_step_whose_input_is_missing_says_which_step_to_run(cell_dir, tmp_path):
    with pytest.raises(EngineError, match="setup.json is missing: run the setup step first"):
        steps.compile(cell_dir, tmp_path / "cache")


def test_steps_main_runs_a_step_by_its_name_and_refuses_others(cell_dir, tmp_path, capsys):
    assert steps.main(["setup", str(cell_dir), "--cache-dir", str(tmp_path / "cache")]) == 0
    with pytest.raises(SystemExit):
        steps.main(["prepare", str(cell_dir), "--cache-dir", str(tmp_path / "cache")])
    assert "invalid choice: 'prepare'" in capsys.readouterr().err
    assert steps.main(["benchmark", str(cell_dir), "--cache-dir", str(tmp_path / "cache")]) == 1  # no compile.json
    assert "error: compile.json is missing" in capsys.readouterr().err


def test_command_is_what_a_runner_runs():
    argv = steps.command("python3", "compile", "/r/c", "/cache")
    assert argv == ["python3", "-m", "llmperf_nb.steps", "compile", "/r/c", "--cache-dir", "/cache"]


def test_run_cell_runs_the_notebooks_and_leaves_a_result(tmp_path, make_cell, counter, monkeypatch):
    fake_engine.sitecustomize(tmp_path)  # the notebook kernels and the steps they start register it too
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    cell = make_cell("tiny-llama", "cpu", "counter", gen_len=8, repetitions=2, warmup=0)
    folder = layout.CellDir(tmp_path / "results" / cell.id)
    assert pipeline.run_cell(cell, folder.path, tmp_path / "cache", "local") == "ok"
    for step in layout.STEPS:
        assert folder.notebook(step.name).exists() and folder.log(step.name).exists() and folder.output(step.name).exists()
    doc = results.load(folder.result)
    assert doc["status"] == "ok" and doc["engine"] == "counter" and doc["cell_id"] == cell.id


def test_run_cell_records_a_cell_not_run_here(tmp_path, make_cell, counter, monkeypatch):
    fake_engine.sitecustomize(tmp_path)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    cell = make_cell("tiny-llama", "h200", "counter", gen_len=8)  # no H200 here: setup says so, not run
    folder = layout.CellDir(tmp_path / "results" / cell.id)
    assert pipeline.run_cell(cell, folder.path, tmp_path / "cache", "local") == "skipped"
    doc = results.load(folder.result)
    assert doc["status"] == "skipped" and doc["error"]["step"] == "setup"
    assert "asks for h200" in doc["error"]["message"]
    assert not folder.output("compile").exists()


def _files(folder) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow  # three runs of the notebooks: ~45 s on 2 cores
def test_force_keeps_the_good_result_until_a_new_one_is_complete(tmp_path, counter, monkeypatch):
    from llmperf_nb import params
    from llmperf_nb.executors.local import LocalExecutor

    fake_engine.sitecustomize(tmp_path)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    p = params.from_dict({"name": "f", "models": ["tiny-llama"], "gpus": ["cpu"], "engines": ["counter"],
                          "gen_len": 8, "repetitions": 2, "warmup": 0})
    out, good_cache, bad_cache = tmp_path / "out", tmp_path / "cache", tmp_path / "bad-cache"
    assert pipeline.run(p, out, good_cache, executor=LocalExecutor(), progress=False).ran == 1
    [cell_dir] = (out / "results").iterdir()
    before = _files(cell_dir)
    # the new run fails (its compile step cannot make the counter's folder) and leaves the old cell whole
    bad_cache.mkdir()
    (bad_cache / "counter").write_text("a file where a folder should be\n")
    s = pipeline.run(p, out, bad_cache, executor=LocalExecutor(), force=True, progress=False)
    assert (s.ran, s.failed, s.kept) == (1, 1, [cell_dir.name])
    assert _files(cell_dir) == before
    attempt = results.load(out / pipeline.ATTEMPTS / cell_dir.name / "result.json")
    assert attempt["status"] == "failed" and attempt["error"]["step"] == "compile"
    assert [d["status"] for d in results.load_dir(out / "results")] == ["ok"]  # the report shows the good one
    # a new run that finishes replaces it, whole, and leaves no attempt behind
    s = pipeline.run(p, out, good_cache, executor=LocalExecutor(), force=True, progress=False)
    assert (s.ran, s.failed, s.kept) == (1, 0, [])
    after = results.load(cell_dir / "result.json")
    assert after["status"] == "ok" and after["started_at"] != json.loads(before[Path("result.json")])["started_at"]
    assert list((out / pipeline.ATTEMPTS).iterdir()) == []


def test_a_notebook_kernel_talks_over_unix_sockets_not_tcp_ports(tmp_path):
    """jupyter_client picks a kernel's TCP ports by binding port 0 and letting go; the kernel binds them seconds
    later. Two cells starting at once on one machine (a Ray run with --per-host 2) once lost a kernel that way
    ("Address already in use", then "Kernel died before replying to kernel_info"): no port is chosen now."""
    import sys

    import nbformat

    from llmperf_nb.execute import execute

    code = ("import json\nfrom ipykernel.connect import get_connection_info\n"
            "info = json.loads(get_connection_info())\nprint(info['transport'], info['ip'])")
    source, out = tmp_path / "probe.ipynb", tmp_path / "ran" / "probe.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)]), source)
    out.parent.mkdir()
    execute(source, out, {}, cwd=out.parent, named=[])
    transport, ip = nbformat.read(out, as_version=4).cells[0].outputs[0]["text"].split()
    assert transport == "ipc"
    if sys.platform.startswith("linux"):  # the abstract namespace: no socket file, none left by a killed run
        assert ip.startswith("@llmperf-nb-kernel-")
    # no socket file beside the notebook; the kernel's own log may be (libzmq at times aborts a kernel as it shuts
    # down, after the notebook is saved: "Assertion failed: pfd.revents & POLLIN"), but never over a taken address
    left = sorted(p.name for p in out.parent.iterdir())
    assert [n for n in left if n != "probe.ipynb.kernel.log"] == ["probe.ipynb"], left
    log = out.parent / "probe.ipynb.kernel.log"
    assert not log.exists() or "Address already in use" not in log.read_text(), log.read_text()


def test_a_kernel_that_cannot_start_fails_its_notebook_and_says_why(tmp_path, monkeypatch):
    """A kernel that dies at start-up (here: its port taken, as happened over TCP) fails the cell with the reason its
    own log gives, instead of ending the run with jupyter_client's bare "Kernel died before replying to kernel_info"."""
    import contextlib
    import socket

    import nbformat
    from traitlets.config import Config

    from llmperf_nb import execute as ex

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)

    @contextlib.contextmanager
    def port_taken():
        yield Config({"KernelManager": {"transport": "tcp", "cache_ports": False, "shell_port": taken.getsockname()[1]}})

    monkeypatch.setattr(ex, "_kernel_sockets", port_taken)
    source, out = tmp_path / "probe.ipynb", tmp_path / "ran" / "probe.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), source)
    out.parent.mkdir()
    try:
        with pytest.raises(ex.NotebookFailed) as failed:
            ex.execute(source, out, {}, cwd=out.parent, named=[])
    finally:
        taken.close()
    assert failed.value.evalue.startswith("Kernel died before replying to kernel_info (")
    assert "Address already in use" in failed.value.evalue and "probe.ipynb.kernel.log)" in failed.value.evalue
