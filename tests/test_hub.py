"""Real weights end to end: ``weights: hub`` through the real huggingface_hub client against a local
stand-in for the Hub (tests/hub_server.py, at HF_ENDPOINT) serving a small model repository in the
Hub's layout at the pinned revision; and ``local_weights``. The setup step runs as a real process."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmperf_nb import params
from llmperf_nb.weights.sources import source_for

from .conftest import ROOT, cli
from .hub_server import Hub, Repo

MODEL = "Llama-2-7b-chat-hf"  # its pinned source; the repository served holds tiny-llama's shapes
SOURCE = source_for(MODEL, "hf")
TOKEN = "hf_" + "localtesttoken" * 3  # built at run time: the source holds no token-like string


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from llmperf_nb.models import get_model
    from llmperf_nb.weights import hf

    return hf.write_synthetic_hf(get_model("tiny-llama"), tmp_path_factory.mktemp("repo") / "tiny")


@pytest.fixture
def hub(checkpoint):
    server = Hub({SOURCE.repo: Repo(checkpoint, SOURCE.revision, token=TOKEN)}).start()
    yield server
    server.stop()


def _cell_dir(tmp_path: Path, **extra) -> Path:
    raw = {
        "name": "h",
        "models": [MODEL],
        "gpus": ["cpu"],
        "engines": [{"name": "transformers", "quantization": "fp16"}],
        "gen_len": 8,
        "repetitions": 2,
        "weights": "hub",
        **extra,
    }
    cell = params.expand(params.from_dict(raw))[0]
    folder = tmp_path / "results" / cell.id
    cell.save(folder)
    return folder


def _setup(cell_dir: Path, tmp_path: Path, endpoint: str, token: str | None = TOKEN) -> subprocess.CompletedProcess:
    """The setup step as a runner starts it, with the environment the notebook gives it."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),
        "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT)),
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    if token:
        env["HF_TOKEN"] = token
    argv = [sys.executable, "-m", "llmperf_nb.steps", "setup", str(cell_dir), "--cache-dir", str(tmp_path / "cache")]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)


def _one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    # the step's one line (what the cell's result says); above it, what huggingface_hub logged (retries)
    [line] = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert done.stderr.strip().splitlines()[-1] == line
    return line


def test_download_at_the_pinned_revision_is_checked_and_an_interrupted_one_resumed(tmp_path, hub, checkpoint):
    hub.cut_once.add("model.safetensors")  # the first download of the weights drops half-way
    cell_dir = _cell_dir(tmp_path)
    done = _setup(cell_dir, tmp_path, hub.endpoint)
    assert done.returncode == 0, done.stderr
    weights = json.loads((cell_dir / "setup.json").read_text())["weights"]
    files = sorted(p.name for p in checkpoint.iterdir())
    assert weights["repo"] == SOURCE.repo and weights["revision"] == SOURCE.revision
    assert weights["files"] == len(files) and weights["bytes"] == sum(p.stat().st_size for p in checkpoint.iterdir())
    assert weights["checked"].startswith("sizes and sha256")
    got = Path(weights["path"].replace("~", str(tmp_path / "home"), 1))
    assert sorted(p.name for p in got.iterdir()) == files
    want = hashlib.sha256((checkpoint / "model.safetensors").read_bytes()).hexdigest()
    assert hashlib.sha256((got / "model.safetensors").read_bytes()).hexdigest() == want
    size = (checkpoint / "model.safetensors").stat().st_size
    gets = [r for r in hub.requests if r["method"] == "GET" and r["path"].endswith("/model.safetensors")]
    assert len(gets) == 2 and gets[0]["range"] is None  # resumed from what it had written (whole chunks)
    assert 0 < int(gets[1]["range"].removeprefix("bytes=").rstrip("-")) <= size // 2, gets[1]
    assert {r["path"].split("/resolve/")[-1].split("/")[0] for r in hub.requests if "/resolve/" in r["path"]} == {
        SOURCE.revision
    }
    assert all(r["authorization"] == f"Bearer {TOKEN}" for r in hub.requests)
    assert TOKEN not in (cell_dir / "setup.json").read_text()
    # run again: the cache answers, checked again against the listing
    before = len(hub.requests)
    assert _setup(cell_dir, tmp_path, hub.endpoint).returncode == 0
    assert not [r for r in hub.requests[before:] if r["method"] == "GET" and "/resolve/" in r["path"]]


def test_a_damaged_file_in_the_cache_is_refused_in_one_line(tmp_path, hub):
    cell_dir = _cell_dir(tmp_path)
    assert _setup(cell_dir, tmp_path, hub.endpoint).returncode == 0
    weights = json.loads((cell_dir / "setup.json").read_text())["weights"]
    blob = (Path(weights["path"].replace("~", str(tmp_path / "home"), 1)) / "config.json").resolve()
    blob.write_text(blob.read_text().replace("silu", "gelu"))
    line = _one_error_line(_setup(cell_dir, tmp_path, hub.endpoint))
    assert "config.json: content differs from the Hub's (git blob id" in line and "delete it from the HF cache" in line


@pytest.mark.parametrize("case", ["no token", "wrong token", "no such repository", "no such revision", "no network"])
def test_each_refusal_is_one_line(tmp_path, checkpoint, case):
    repos = {SOURCE.repo: Repo(checkpoint, SOURCE.revision, token=TOKEN)}
    if case == "no such repository":
        repos = {}
    if case == "no such revision":
        repos = {SOURCE.repo: Repo(checkpoint, "0" * 40, token=TOKEN)}
    server = Hub(repos).start()
    endpoint = "http://127.0.0.1:9" if case == "no network" else server.endpoint  # port 9: nothing listens
    token = {"no token": None, "wrong token": "hf_" + "wrong" * 8}.get(case, TOKEN)
    try:
        line = _one_error_line(_setup(_cell_dir(tmp_path), tmp_path, endpoint, token))
    finally:
        server.stop()
    said = {
        "no token": "the repository is gated (401): set HF_TOKEN",
        "wrong token": "the repository is gated and the account of HF_TOKEN has no access (403)",
        "no such repository": "no such repository on http://127.0.0.1:",
        "no such revision": "this revision is not in the repository (404)",
        "no network": "cannot reach http://127.0.0.1:9 and the files are not in the local cache",
    }[case]
    assert line.startswith(f"error: {SOURCE.repo}@{SOURCE.revision[:12]}: ") and said in line, line
    print(f"{case}: {line}")


def test_local_weights_that_are_not_there_are_one_line(tmp_path):
    cell_dir = _cell_dir(tmp_path, weights="synthetic", local_weights={MODEL: str(tmp_path / "nowhere")})
    line = _one_error_line(_setup(cell_dir, tmp_path, "http://127.0.0.1:9"))
    assert line == f"error: local weights not found: {tmp_path / 'nowhere'}"


def _run(tmp_path: Path, text: str, env: dict) -> tuple[Path, subprocess.CompletedProcess]:
    tmp_path.mkdir(exist_ok=True)
    p = tmp_path / "p.yaml"
    p.write_text(text)
    out = tmp_path / "out"
    return out, cli("run", p, "--out", out, "--cache-dir", tmp_path / "cache", "--no-progress", "--no-report", env=env)


PARAMS = (
    f"name: h\nmodels: [{MODEL}]\ngpus: [cpu]\nengines: [{{name: transformers, quantization: fp16}}]\n"
    "gen_len: 8\nrepetitions: 2\n"
)


@pytest.mark.slow
def test_hub_weights_end_to_end_through_the_cli(tmp_path, hub, checkpoint):
    pytest.importorskip("transformers", reason="HF transformers is not installed")
    env = {"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": TOKEN}
    out, done = _run(tmp_path, PARAMS + "weights: hub\n", env)
    assert done.returncode == 0, done.stdout + done.stderr
    [result] = (out / "results").glob("*/result.json")
    doc = json.loads(result.read_text())
    assert doc["status"] == "ok" and doc["weights"]["source"] == "hub" and doc["weights"]["synthetic"] is False
    assert doc["weights"]["repo"] == SOURCE.repo and doc["weights"]["revision"] == SOURCE.revision
    assert doc["weights"]["sha256_of"] == "every file of the artifact" and len(doc["weights"]["sha256"]) == 64
    for f in out.rglob("*"):
        if f.is_file():
            assert TOKEN not in f.read_text(errors="ignore"), f
    # local_weights: the same checkpoint from a folder
    out, done = _run(tmp_path / "local", PARAMS + f"local_weights: {{{MODEL}: {checkpoint}}}\n", {})
    assert done.returncode == 0, done.stdout + done.stderr
    [result] = (out / "results").glob("*/result.json")
    local = json.loads(result.read_text())
    assert local["status"] == "ok" and local["weights"]["source"] == "local"
    assert local["weights"]["sha256"] == doc["weights"]["sha256"]  # the same files, the same digest


def test_hf_token_is_given_to_the_setup_step_only(tmp_path, monkeypatch, make_cell):
    from llmperf_nb import layout, notebook, process, runners

    seen = {}

    class Recorder:  # a runner that records what each step would be given, and runs nothing
        name = "recorder"

        def run_step(self, step, cell, cell_dir, cache_dir, *, timeout=None, on_line=None, extra_env=None):
            seen[step] = dict(extra_env or {})

    monkeypatch.setitem(runners.RUNNERS, "recorder", Recorder)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    cell = make_cell(MODEL, "cpu", "transformers", quantization="fp16", weights="hub")
    for step in layout.STEP_NAMES:
        (tmp_path / layout.step(step).output).write_text("{}")
    for step in layout.STEP_NAMES:
        notebook.run_step(step, cell, tmp_path, tmp_path / "cache", "recorder")
    assert seen == {"setup": {"HF_TOKEN": TOKEN}, "compile": {}, "benchmark": {}}
    assert "HF_TOKEN" not in process.child_env()  # a step, a driver, a container get it from no other place
