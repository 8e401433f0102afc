"""Run a params matrix: for every cell, papermill executes the setup, compile and benchmark
notebooks; then the analysis notebook becomes the report.

Where the cells run is the executor's business (``executors``: one after another in this process, or
as tasks of a Ray cluster); what running one cell means is :func:`run_cell`, the same everywhere.
A failing cell is recorded as failed (with the tail of its log) and the matrix goes on. Finished
cells are skipped on a re-run unless ``force``. Result files are written atomically, so an
interrupted run loses no finished cell.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from . import cells, process, published, results
from .engines import registry
from .exceptions import LlmPerfError, SchemaError
from .execute import PARTIAL_SUFFIX, NotebookFailed, execute, terminal
from .layout import STEPS, CellDir
from .params import Params, expand
from .paths import notebook


@dataclass
class Summary:
    #: cells that went through the executor, whatever their status (failed and skipped included)
    ran: int = 0
    reused: int = 0
    failed: int = 0
    skipped: int = 0
    #: cells run again (--force) whose new run did not finish ok: their earlier result is kept
    kept: list[str] = field(default_factory=list)

    @property
    def measured(self) -> int:
        """Cells run to an ok result."""
        return self.ran - self.failed - self.skipped


def run(params: Params, out_dir: Path, cache_dir: Path | None, *, executor, runner: str = "local",
        force: bool = False, progress: bool = True, only: str | None = None) -> Summary:
    """Run the cells of ``params`` (those matching ``only``) through ``executor`` (executors.get_executor).
    ``cache_dir`` None: each machine's own default weights cache (notebook.default_cache_dir)."""
    out_dir = Path(out_dir).resolve()
    cache_dir = Path(cache_dir).resolve() if cache_dir is not None else None
    results_dir = out_dir / "results"
    todo = expand(params)
    if only:
        import fnmatch

        todo = [c for c in todo if fnmatch.fnmatch(c.id, only)]
        if not todo:
            raise LlmPerfError(f"--only {only!r} matches no cell of {params.name}; cells are named like {expand(params)[0].id}")
    results_dir.mkdir(parents=True, exist_ok=True)
    with process.exclusive(out_dir / LOCK_FILE, what=f"a run into {out_dir.name}"):
        return _run_cells(todo, params, results_dir, cache_dir, runner, force, progress, executor)


#: held (flock) by the run writing into a report folder: one run per folder at a time
LOCK_FILE = ".llmperf-nb.lock"
#: beside results/: where a cell with a good result is run again (--force) until its new result is complete
ATTEMPTS = "attempts"


def _run_cells(todo, params, results_dir, cache_dir, runner, force, progress, executor) -> Summary:
    from tqdm.auto import tqdm

    summary = Summary()
    term = terminal()
    bar = tqdm(total=len(todo), unit="cell", desc=params.name, disable=not progress, file=term)
    good = {c.id for c in todo if finished(results_dir / c.id)}
    reused = [c for c in todo if not force and c.id in good]
    summary.reused = len(reused)
    bar.update(len(reused))

    def started(cell: cells.Cell) -> None:
        bar.set_postfix_str(cell.id, refresh=True)

    def done(cell: cells.Cell, status: str) -> None:
        summary.ran += 1
        summary.failed += status == "failed"
        summary.skipped += status == "skipped"
        if cell.id in good and status != "ok":  # run again (--force): run_cell kept the earlier result
            summary.kept.append(cell.id)
        bar.update(1)

    try:
        executor.run_cells([c for c in todo if c not in reused], results_dir, cache_dir, runner,
                           started=started, done=done)
    finally:
        bar.close()
        term.close()
    return summary


def finished(cell_dir: Path) -> bool:
    """Whether the cell's folder holds a good result (a re-run reuses it)."""
    path = CellDir(cell_dir).result
    if not path.exists():
        return False
    try:
        # failed and not-run cells are tried again: the cause may have gone (an engine installed)
        return results.load(path)["status"] == "ok"
    except SchemaError:
        return False  # unreadable or from an unknown version: measure again


def run_cell(cell: cells.Cell, cell_dir: Path, cache_dir: Path, runner: str, node: dict | None = None, *,
             report_dir: Path | None = None) -> str:
    """Execute the cell's notebooks, one per step of layout.STEPS; always leaves a result.json.
    Returns its status. ``node``: where it ran, recorded in the result (an executor of many machines
    says; results.py documents the field). A cell that has a good result (--force) runs again in
    ``attempts/<cell id>`` beside ``results/`` (:func:`run_again`). What the cell's folder holds names
    no place on this machine (published.py)."""
    report_dir = Path(report_dir) if report_dir else Path(cell_dir).parent.parent
    if finished(cell_dir):
        return run_again(cell, cell_dir, cache_dir, runner, node, report_dir=report_dir)
    return _run_fresh(cell, cell_dir, cache_dir, runner, node, report_dir=report_dir)


def run_again(cell: cells.Cell, cell_dir: Path, cache_dir: Path, runner: str, node: dict | None = None, *,
              report_dir: Path) -> str:
    """Run a cell that has a good result again (--force), in ``attempts/<cell id>`` beside ``results/``.
    Only a new ok result replaces the cell's folder; a new run that fails, is not run here or is
    interrupted leaves the earlier result as it was, and its own record in ``attempts/<cell id>``."""
    attempt = Path(report_dir) / ATTEMPTS / cell.id
    if attempt.exists():
        shutil.rmtree(attempt)
    status = _run_fresh(cell, attempt, cache_dir, runner, node, report_dir=report_dir)
    if status == "ok":
        old = attempt.with_name(attempt.name + ".old")
        os.replace(cell_dir, old)  # two renames on one filesystem: the new folder is whole when it lands
        os.replace(attempt, cell_dir)
        shutil.rmtree(old)
    return status


def _run_fresh(cell: cells.Cell, cell_dir: Path, cache_dir: Path, runner: str, node: dict | None, *,
               report_dir: Path) -> str:
    folder = CellDir(cell_dir)
    for stale in folder.stale():
        # the old result stays until a new one replaces it (atomically)
        if stale != folder.result:
            stale.unlink(missing_ok=True)
    for partial in [*folder.path.glob("*.tmp"), *folder.path.glob("*" + PARTIAL_SUFFIX)]:
        partial.unlink()
    cell.save(cell_dir)
    named = published.roots(cache_dir, report_dir)
    try:
        return _run_steps(cell, folder, cache_dir, runner, named, node)
    finally:
        published.scrub_folder(folder.path, named)


def _run_steps(cell: cells.Cell, folder: CellDir, cache_dir: Path, runner: str, named, node: dict | None) -> str:
    started = results.now()
    for step in STEPS:
        try:
            # the notebook runs in the cell's folder, so "." is the cell
            execute(notebook(step.name), folder.notebook(step.name),
                    {"cell_dir": ".", "cache_dir": str(cache_dir), "runner": runner}, cwd=folder.path, named=named)
        except NotebookFailed as e:
            return _write_failed(cell, folder, started, step.name, f"{e.ename}: {e.evalue}", node)
        except OSError as e:  # a full disk: the cell fails with one line (if that can still be written)
            where = f"{e.filename}: " if e.filename else ""
            return _write_failed(cell, folder, started, step.name, f"{where}{e.strerror or e}", node)
        except KeyboardInterrupt as e:
            how = str(e) if isinstance(e, process.Interrupted) else "SIGINT"
            record(cell, folder.path, "failed", f"interrupted ({how}) during the {step.name} step; run again to measure it",
                   step=step.name, node=node, started=started)
            raise
        if step.name == "setup":
            skip = json.loads(folder.output("setup").read_text()).get("skip")
            if skip:
                return _write_other(cell, folder, started, "skipped", {"message": skip, "step": "setup"}, node)
    if node is not None:  # the benchmark step wrote the result; add where it ran
        doc = results.load(folder.result)
        results.write({**doc, "node": node}, folder.result)
    return "ok"


def record(cell, cell_dir: Path, status: str, message: str, *, step: str | None = None, node: dict | None = None,
           started: str | None = None) -> str:
    """A result for a cell that did not run to its end (interrupted; no node could take it; the node
    running it was lost), unless a good result from an earlier run is there (--force): that one is
    kept until a new one is complete. ``status`` is ``failed`` (run again to measure it) or ``skipped``."""
    folder = CellDir(cell_dir)
    if not finished(folder.path):
        if not folder.cell.exists():
            cell.save(folder.path)
        _write_other(cell, folder, started or results.now(), status,
                     {"message": message, "step": step, "log_tail": None}, node)
    return status


def _write_failed(cell, folder: CellDir, started: str, step: str, message: str, node: dict | None) -> str:
    log = folder.log(step)
    text = log.read_text() if log.exists() else ""
    tail = process.tail(text) if text else None
    # the step's own "error: ..." line says what went wrong; the notebook's exception only wraps it
    said = [line[len("error: "):] for line in text.splitlines() if line.startswith("error: ")]
    first = said[-1] if said else (message.strip().splitlines() or ["failed"])[0]
    return _write_other(cell, folder, started, "failed", {"message": first, "step": step, "log_tail": tail}, node)


def _write_other(cell, folder: CellDir, started: str, status: str, error: dict, node: dict | None) -> str:
    hardware = None
    setup = folder.output("setup")
    if setup.exists():
        hardware = json.loads(setup.read_text()).get("hardware")
    engine = registry[cell.engine.name]
    extra = {"configuration": engine.configuration(cell.engine.options), **({"node": node} if node else {})}
    doc = results.build(cell=cell, status=status, started_at=started, engine_label=engine.label,
                        hardware=hardware, error=error, extra=extra)
    results.write(doc, folder.result)
    return status


def check_runner(runner: str) -> None:
    from .runners import get_runner

    try:
        get_runner(runner)
    except ImportError as e:
        raise LlmPerfError(f"runner {runner!r} needs a package that is missing: {e.name}") from None
