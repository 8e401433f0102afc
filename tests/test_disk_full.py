"""A full disk during a run: the run stops with one line, leaves no partial file that a later step could
take for a result, and the earlier good report (its results, notebooks, pages) stays byte for byte.

A real small filesystem (tmpfs with a size limit) holds the report folder; the test fills it, leaving
more or less room, and runs the cell again (--force) through the CLI with the test engine
(tests/fake_engine.py), so that the disk fills at every stage: the lock, a notebook, a step's JSON,
the result, the report.
"""

import contextlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from . import fake_engine
from .conftest import cli

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small filesystem needs root")]

PARAMS = "name: d\nmodels: [tiny-llama]\ngpus: [cpu]\nengines: [counter]\ngen_len: 8\nrepetitions: 2\nwarmup: 0\n"


@pytest.fixture
def disk(tmp_path):
    folder = tmp_path / "disk"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(folder)], check=True)
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def _fill(disk: Path, leave: int) -> Path:
    """Fill the disk, then give back ``leave`` bytes."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def _snapshot(folder: Path) -> dict:
    return {
        p.relative_to(folder): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".llmperf-nb.lock"
    }


def _ok(out: Path) -> bool:
    [result] = (out / "results").glob("*/result.json")
    return json.loads(result.read_text())["status"] == "ok"


def test_a_full_disk_at_any_stage_is_one_line_and_loses_nothing(tmp_path, disk, cache_dir):
    fake_engine.sitecustomize(tmp_path)
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    params = tmp_path / "d.yaml"
    params.write_text(PARAMS)
    out = disk / "out"
    run = ("run", params, "--out", out, "--cache-dir", cache_dir, "--no-progress")
    first = cli(*run, env=env)
    assert first.returncode == 0, first.stderr
    before = _snapshot(out)
    report = {"index.html", "README.md", "analysis.ipynb"}
    assert report <= {p.name for p in before}
    said = set()
    for leave in (0, 8 << 10, 40 << 10, 200 << 10):  # KiB: the lock, a notebook, the result, the report
        filler = _fill(disk, leave)
        done = cli(*run, "--force", env=env)
        filler.unlink()
        said.add(f"{leave >> 10} KiB free: {done.stdout.strip()} | {done.stderr.strip()}")
        assert done.returncode == 1, (leave, done.stdout, done.stderr)
        assert "Traceback" not in done.stdout + done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "No space left on device" in done.stderr, (leave, done.stderr)
        assert str(disk) in done.stderr  # where
        now = _snapshot(out)
        for p in now:
            assert not p.name.endswith((".tmp", ".tmp.ipynb")), (leave, p)  # no partial file left
            if p.suffix in (".json", ".ipynb"):
                json.loads(now[p])  # whatever was written is whole
        # the earlier report stays whole; its cell is the earlier one, or a new one that finished ok
        assert {p: now[p] for p in before if p.name in report} == {p: b for p, b in before.items() if p.name in report}
        cell = {p: b for p, b in before.items() if p.parts[0] == "results"}
        new = {p: b for p, b in now.items() if p.parts[0] == "results"}
        # a kernel's own log (NN_*.ipynb.kernel.log) comes and goes with what the kernel said: libzmq at times
        # aborts a kernel as it shuts down ("Assertion failed: pfd.revents & POLLIN (src/signaler.cpp:238)",
        # seen on a loaded 2-core CI machine), after the notebook was saved; it is no part of the cell's result
        steps = {p for p in new.keys() ^ cell.keys() if not p.name.endswith(".kernel.log")}
        assert new == cell or (not steps and _ok(out)), (leave, sorted(new.keys() ^ cell.keys()))
        before = now
    print("what a user saw:", *sorted(said), sep="\n  ")
    # with room again, the cell is measured again and replaces the earlier one
    again = cli(*run, "--force", "--no-report", env=env)  # the cell, not the report (checked above), is the point
    assert again.returncode == 0 and "1 measured, 0 reused, 0 failed" in again.stdout, again.stderr
