"""Every run owns its process tree: Ctrl-C, SIGTERM, SIGKILL or a timeout end every process it
started (kernel, step, driver), the interrupted cell is marked, and a later run goes on cleanly."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import cli, needs_llama_cpp, start_cli

pytestmark = [pytest.mark.slow, needs_llama_cpp]

CELL = "tiny-llama__cpu__llama_cpp__int4"
LONG = "name: m\nmodels: [tiny-llama]\ngpus: [cpu]\nengines: [llama_cpp]\ngen_len: 512\nrepetitions: 50\n"
SHORT = "name: m\nmodels: [tiny-llama]\ngpus: [cpu]\nengines: [llama_cpp]\ngen_len: 16\nrepetitions: 2\n"


def _under(folder: Path) -> list[int]:
    """Processes working in ``folder`` (the kernel, step and driver of a cell all run in its folder)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
            with open(f"/proc/{entry}/stat") as f:
                zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            continue
        if not zombie and (cwd == str(folder) or cwd.startswith(str(folder) + "/")):
            found.append(int(entry))
    return found


def _driver_running(folder: Path) -> bool:
    for pid in _under(folder):
        try:
            if b"llmperf_nb.drivers" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return True
        except OSError:
            pass
    return False


def _start(tmp_path: Path, cache_dir: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    p = tmp_path / "m.yaml"
    p.write_text(LONG)
    out = (tmp_path / "out").resolve()
    proc = start_cli("run", p, "--out", out, "--cache-dir", cache_dir, "--no-progress", *extra)
    deadline = time.monotonic() + 300
    while not _driver_running(out) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    assert _driver_running(out), "the driver never started"
    return proc, out


def _nothing_left(out: Path, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while _under(out) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _under(out) == [], [Path(f"/proc/{p}/cmdline").read_bytes() for p in _under(out)]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_ends_every_process_and_marks_the_cell(tmp_path, cache_dir, sig):
    proc, out = _start(tmp_path, cache_dir)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    _nothing_left(out)
    cell = out / "results" / CELL
    doc = json.loads((cell / "result.json").read_text())
    assert doc["status"] == "failed" and doc["error"]["message"].startswith("interrupted (")
    assert doc["error"]["step"] == "benchmark"
    time.sleep(3)
    assert not (cell / "raw.json").exists() and not list(out.rglob("*.tmp"))
    if sig != signal.SIGINT:  # what the run left is the same for both signals (checked above): rerun once
        return
    # a later run measures the interrupted cell again, cleanly (its report is not what this checks)
    (tmp_path / "m.yaml").write_text(SHORT)
    again = cli("run", tmp_path / "m.yaml", "--out", out, "--cache-dir", cache_dir, "--no-progress", "--no-report")
    assert again.returncode == 0 and "1 measured, 0 reused, 0 failed" in again.stdout, again.stderr
    assert json.loads((cell / "result.json").read_text())["status"] == "ok"


def test_one_run_per_folder_and_sigkill_of_the_cli_ends_its_tree(tmp_path, cache_dir):
    proc, out = _start(tmp_path, cache_dir)
    (tmp_path / "short.yaml").write_text(SHORT)
    second = cli("run", tmp_path / "short.yaml", "--out", out, "--cache-dir", cache_dir, "--no-progress")
    assert second.returncode == 1 and f"already going (pid {proc.pid}," in second.stderr, second.stderr
    assert len(second.stderr.splitlines()) == 1
    proc.kill()
    proc.communicate(timeout=60)
    _nothing_left(out)
    time.sleep(3)
    assert not (out / "results" / CELL / "raw.json").exists()
    # the killed run's lock is not taken for a live one
    again = cli("run", tmp_path / "short.yaml", "--out", out, "--cache-dir", cache_dir, "--no-progress", "--no-report")
    assert again.returncode == 0 and "1 measured" in again.stdout, again.stderr


def test_an_interrupted_force_run_keeps_the_good_result_and_its_files(tmp_path, cache_dir):
    (tmp_path / "m.yaml").write_text(SHORT)
    out = (tmp_path / "out").resolve()
    first = cli("run", tmp_path / "m.yaml", "--out", out, "--cache-dir", cache_dir, "--no-progress", "--no-report")
    assert first.returncode == 0, first.stderr
    cell = out / "results" / CELL
    before = {p.name: p.read_bytes() for p in cell.iterdir()}
    proc, _ = _start(tmp_path, cache_dir, "--force")  # LONG: its driver is measuring when the signal comes
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and len(err.strip().splitlines()) == 1, err
    _nothing_left(out)
    assert {p.name: p.read_bytes() for p in cell.iterdir()} == before  # the good cell, whole
    attempt = json.loads((out / "attempts" / CELL / "result.json").read_text())
    assert attempt["status"] == "failed" and attempt["error"]["message"].startswith("interrupted (")
