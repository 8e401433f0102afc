"""What the per-cell notebooks call. Thin: the work happens in steps run by a runner.

With default parameters (an empty ``cell_dir``), a notebook runs a demo cell: tiny-llama with
llama.cpp on the CPU, synthetic weights, so that every notebook runs as it is when opened.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from . import cells, params, published
from .exceptions import EngineError
from .layout import CellDir, steps_before
from .runners import get_runner

DEMO_PARAMS = {
    "name": "demo", "models": ["tiny-llama"], "gpus": ["cpu"], "engines": ["llama_cpp"],
    "repetitions": 3, "warmup": 1,
}


def default_cache_dir() -> Path:
    env = os.environ.get("LLMPERF_NB_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "llmperf-nb"


def context(cell_dir: str = "", cache_dir: str = "") -> tuple[cells.Cell, Path, Path]:
    """The cell a notebook works on; the demo cell when ``cell_dir`` is empty. A published notebook
    names the cache ``<cache>`` (published.py): run again, it uses this machine's default cache."""
    cache = Path(published.expand(cache_dir, default_cache_dir())) if cache_dir else default_cache_dir()
    if cell_dir:
        path = Path(cell_dir)
        return cells.Cell.load(path), path, cache
    cell = params.expand(params.from_dict(DEMO_PARAMS, source="demo"))[0]
    path = cache / "demo" / cell.id
    cell.save(path)
    return cell, path, cache


def run_step(step: str, cell: cells.Cell, cell_dir: Path, cache_dir: Path, runner: str = "local") -> None:
    """Run one step through the runner, streaming its output here and into ``STEP.log``.

    Earlier steps whose output is missing run first (the demo cell, or a notebook opened alone).
    """
    from . import process

    # a kernel papermill started ends with the CLI, even one killed by SIGKILL (its steps end with it)
    parent = os.environ.get("JPY_PARENT_PID", "")
    process.die_with_parent(int(parent) if parent.isdigit() else None)
    folder = CellDir(cell_dir)
    for before in steps_before(step):
        if not folder.output(before.name).exists():
            run_step(before.name, cell, cell_dir, cache_dir, runner)
    extra_env = None
    if step == "setup" and os.environ.get("HF_TOKEN"):
        extra_env = {"HF_TOKEN": os.environ["HF_TOKEN"]}  # only the step that downloads sees it
    with open(folder.log(step), "w") as log:

        def on_line(line: str) -> None:
            log.write(line)
            log.flush()
            print(line, end="", flush=True)

        get_runner(runner).run_step(
            step, cell, cell_dir, cache_dir, timeout=cell.timeout_s + 60, on_line=on_line, extra_env=extra_env
        )


def read(cell_dir: Path, step: str) -> dict:
    """What ``step`` wrote in the cell's folder."""
    path = CellDir(cell_dir).output(step)
    if not path.exists():
        raise EngineError(f"{path} was not written")
    return json.loads(path.read_text())
