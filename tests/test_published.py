"""No absolute path of the machine in a published file (llmperf_nb/published.py): the home folder, the
clone, the interpreter, the cache, the report folder and the folder the command runs in are written from
their names, and the files the steps hand on still lead to the weights."""

import os
import sys
from pathlib import Path

import pytest

from llmperf_nb import published

from .conftest import ROOT, cli, needs_llama_cpp


def test_paths_under_a_root_are_written_from_its_name_the_longest_root_first(tmp_path):
    cache, report = tmp_path / "home" / ".cache" / "x", tmp_path / "out"
    named = [(str(cache), "<cache>"), (str(report), "<report>"), (str(tmp_path / "home"), "~")]
    named.sort(key=lambda pair: len(pair[0]), reverse=True)
    text = (
        f'cache_dir = "{cache}"\n{cache}/gguf/a.gguf {report}/results/c {tmp_path}/home/m.gguf '
        f"{tmp_path}/homely {tmp_path}/x{tmp_path}/home \x1b[0;32m{tmp_path}/home/t.py"
    )
    assert published.shorten_text(text, named) == (
        'cache_dir = "<cache>"\n<cache>/gguf/a.gguf <report>/results/c ~/m.gguf '
        f"{tmp_path}/homely {tmp_path}/x{tmp_path}/home \x1b[0;32m~/t.py"
    )


def test_what_a_step_hands_on_comes_back_as_a_path_of_the_reader(tmp_path):
    named = published.roots(tmp_path / "cache")
    doc = {
        "artifact": str(tmp_path / "cache" / "gguf" / "a.gguf"),
        "extra": {"lib": str(Path.home() / "m" / "lib.so")},
        "python": sys.executable,
        "notebook": str(ROOT / "notebooks"),
        "n": 3,
    }
    short = published.shorten(doc, named)
    assert short["artifact"] == "<cache>/gguf/a.gguf" and short["extra"]["lib"] == "~/m/lib.so"
    assert short["notebook"] == "<repo>/notebooks" and short["python"].startswith("<python>/")
    assert published.expand_all(short, tmp_path / "cache") == doc
    # another machine's cache (a container's /cache)
    assert published.expand(short["artifact"], "/cache") == "/cache/gguf/a.gguf"


def _machine_paths(tmp_path: Path, home: Path) -> list[str]:
    paths = {str(Path.home()), str(home), str(ROOT), sys.prefix, str(tmp_path), str(Path(sys.executable).parent)}
    paths |= {os.path.realpath(p) for p in paths}
    return sorted(p for p in paths if p != "/")


@pytest.mark.slow
@needs_llama_cpp
def test_no_machine_path_in_any_file_of_a_report_run_from_outside_the_clone(tmp_path):
    """Two runs into one report folder, from a folder outside the clone, with the default cache under
    the home folder: a good cell, then a cell on local weights (a GGUF under the home folder) that runs
    past its time limit (the error quotes the command, with the interpreter and the model's path)."""
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    env = {"HOME": str(home), "LLMPERF_NB_CACHE": ""}  # the default cache: ~/.cache/llmperf-nb
    good = work / "good.yaml"
    good.write_text("name: m\nmodels: [tiny-llama]\ngpus: [cpu]\nengines: [llama_cpp]\ngen_len: 16\nrepetitions: 2\n")
    done = cli("run", "good.yaml", "--out", "out", "--no-progress", "--no-report", cwd=work, env=env)
    assert done.returncode == 0, done.stderr
    [gguf] = (home / ".cache" / "llmperf-nb" / "gguf").glob("*.gguf")
    local = home / "models" / "tiny.gguf"
    local.parent.mkdir()
    os.link(gguf, local)
    slow = work / "slow.yaml"
    slow.write_text(
        f"name: m\nmodels: [tiny-llama]\ngpus: [cpu]\nengines: [{{name: llama_cpp, threads: 1}}]\n"
        f"gen_len: 2000\nrepetitions: 2\ntimeout_s: 1\nlocal_weights: {{tiny-llama: {local}}}\n"
    )
    done = cli("run", "slow.yaml", "--out", "out", "--no-progress", cwd=work, env=env)
    assert done.returncode == 1 and "1 failed" in done.stdout, done.stdout + done.stderr
    out = work / "out"
    failed = (out / "results" / "tiny-llama__cpu__llama_cpp-1__int4" / "result.json").read_text()
    assert "stopped after 1 s (time limit)" in failed and "~/models/tiny.gguf" in failed
    compile_doc = (out / "results" / "tiny-llama__cpu__llama_cpp__int4" / "compile.json").read_text()
    assert '"artifact": "<cache>/gguf/' in compile_doc
    files = [f for f in out.rglob("*") if f.is_file()]
    assert len(files) > 20
    for f in files:
        data = f.read_bytes()
        for path in _machine_paths(tmp_path, home):
            assert path.encode() not in data, (f.relative_to(out), path)
