"""Run a params matrix: for every cell, papermill executes the setup, compile and benchmark
notebooks; then the analysis notebook becomes the report.

A failing cell is recorded as failed (with the tail of its log) and the matrix goes on. Finished
cells are skipped on a re-run unless ``force``. Result files are written atomically, so an
interrupted run loses no finished cell.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import cells, process, results
from .engines import registry
from .exceptions import LlmPerfError, SchemaError
from .execute import NotebookFailed, execute, terminal
from .layout import STEPS, CellDir
from .params import Params, expand
from .paths import notebook


@dataclass
class Summary:
    ran: int = 0
    reused: int = 0
    failed: int = 0
    skipped: int = 0


def run(params: Params, out_dir: Path, cache_dir: Path, *, runner: str = "local", force: bool = False,
        progress: bool = True, only: str | None = None) -> Summary:
    out_dir, cache_dir = Path(out_dir).resolve(), Path(cache_dir).resolve()
    results_dir = out_dir / "results"
    todo = expand(params)
    if only:
        import fnmatch

        todo = [c for c in todo if fnmatch.fnmatch(c.id, only)]
        if not todo:
            raise LlmPerfError(f"--only {only!r} matches no cell of {params.name}; cells are named like {expand(params)[0].id}")
    results_dir.mkdir(parents=True, exist_ok=True)
    with process.exclusive(out_dir / LOCK_FILE, what=f"a run into {out_dir.name}"):
        return _run_cells(todo, params, results_dir, cache_dir, runner, force, progress)


#: held (flock) by the run writing into a report folder: one run per folder at a time
LOCK_FILE = ".llmperf-nb.lock"


def _run_cells(todo, params, results_dir, cache_dir, runner, force, progress) -> Summary:
    from tqdm.auto import tqdm

    summary = Summary()
    term = terminal()
    bar = tqdm(total=len(todo), unit="cell", desc=params.name, disable=not progress, file=term)
    try:
        for cell in todo:
            bar.set_postfix_str(cell.id, refresh=True)
            cell_dir = results_dir / cell.id
            if not force and _finished(cell_dir):
                summary.reused += 1
            else:
                status = run_cell(cell, cell_dir, cache_dir, runner)
                summary.ran += 1
                summary.failed += status == "failed"
                summary.skipped += status == "skipped"
            bar.update(1)
    finally:
        bar.close()
        term.close()
    return summary


def _finished(cell_dir: Path) -> bool:
    path = CellDir(cell_dir).result
    if not path.exists():
        return False
    try:
        # failed and not-run cells are tried again: the cause may have gone (an engine installed)
        return results.load(path)["status"] == "ok"
    except SchemaError:
        return False  # unreadable or from an unknown version: measure again


def run_cell(cell: cells.Cell, cell_dir: Path, cache_dir: Path, runner: str) -> str:
    """Execute the cell's notebooks, one per step of layout.STEPS; always leaves a result.json.
    Returns its status."""
    folder = CellDir(cell_dir)
    for stale in folder.stale():
        # the old result stays until a new one replaces it (atomically): --force loses nothing
        if stale != folder.result:
            stale.unlink(missing_ok=True)
    for partial in folder.path.glob("*.tmp"):
        partial.unlink()
    cell.save(cell_dir)
    started = results.now()
    for step in STEPS:
        try:
            # the notebook runs in the cell's folder, so "." is the cell (and no machine path is published)
            execute(notebook(step.name), folder.notebook(step.name),
                    {"cell_dir": ".", "cache_dir": str(cache_dir), "runner": runner}, cwd=cell_dir)
        except NotebookFailed as e:
            return _write_failed(cell, folder, started, step.name, f"{e.ename}: {e.evalue}")
        except OSError as e:  # a full disk: the cell fails with one line (if that can still be written)
            return _write_failed(cell, folder, started, step.name, f"{e.strerror or e}: {e.filename or ''}")
        except KeyboardInterrupt as e:
            how = str(e) if isinstance(e, process.Interrupted) else "SIGINT"
            _write_interrupted(cell, folder, started, step.name, how)
            raise
        if step.name == "setup":
            skip = json.loads(folder.output("setup").read_text()).get("skip")
            if skip:
                return _write_other(cell, folder, started, "skipped", {"message": skip, "step": "setup"})
    return "ok"


def _write_failed(cell, folder: CellDir, started: str, step: str, message: str) -> str:
    log = folder.log(step)
    text = log.read_text() if log.exists() else ""
    tail = process.tail(text) if text else None
    # the step's own "error: ..." line says what went wrong; the notebook's exception only wraps it
    said = [line[len("error: "):] for line in text.splitlines() if line.startswith("error: ")]
    first = said[-1] if said else (message.strip().splitlines() or ["failed"])[0]
    return _write_other(cell, folder, started, "failed", {"message": first, "step": step, "log_tail": tail})


def _write_interrupted(cell, folder: CellDir, started: str, step: str, how: str) -> None:
    """Mark the cell as interrupted (a failure: the next run measures it again), unless a good
    result from an earlier run is there (--force): that one is kept until a new one is complete."""
    if _finished(folder.path):
        return
    message = f"interrupted ({how}) during the {step} step; run again to measure it"
    _write_other(cell, folder, started, "failed", {"message": message, "step": step, "log_tail": None})


def _write_other(cell, folder: CellDir, started: str, status: str, error: dict) -> str:
    hardware = None
    setup = folder.output("setup")
    if setup.exists():
        hardware = json.loads(setup.read_text()).get("hardware")
    engine = registry[cell.engine.name]
    doc = results.build(cell=cell, status=status, started_at=started, engine_label=engine.label,
                        hardware=hardware, error=error, extra={"configuration": engine.configuration(cell.engine.options)})
    results.write(doc, folder.result)
    return status


def check_runner(runner: str) -> None:
    from .runners import get_runner

    try:
        get_runner(runner)
    except ImportError as e:
        raise LlmPerfError(f"runner {runner!r} needs a package that is missing: {e.name}") from None
