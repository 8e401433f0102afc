"""The steps of a cell and the folder they fill: the one place that knows either.

A cell runs three steps, in this order; each is a notebook (papermill runs it in the cell's folder),
which runs ``python -m llmperf_nb.steps STEP`` through a runner, which writes the step's JSON file::

    results/<cell id>/              CellDir
        cell.json                   the cell (cells.Cell), written by pipeline.run_cell
        01_setup.ipynb  setup.log  setup.json          step "setup"
        02_compile.ipynb  compile.log  compile.json    step "compile" (Engine.compile)
        03_benchmark.ipynb  benchmark.log  raw.json  result.json   step "benchmark"
        NN_*.ipynb.kernel.log       the notebook kernel's own stderr, when it said anything

Standard library only: every layer (pipeline, notebook, steps, runners) reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Step:
    name: str  # on the command line, in logs and in a failed result's error.step
    notebook: str  # under notebooks/; its executed copy lands in the cell's folder
    output: str  # the JSON file the step writes in the cell's folder
    does: str


STEPS: tuple[Step, ...] = (
    Step("setup", "01_setup.ipynb", "setup.json",
         "check the machine against the cell (or say why it is not run here); find or fetch the weights"),
    Step("compile", "02_compile.ipynb", "compile.json",
         "Engine.compile: make the artifact the benchmark loads (GGUF, GPTQ, HF, MLC), cached by its inputs"),
    Step("benchmark", "03_benchmark.ipynb", "result.json",
         "run the engine's driver (warm-up, repetitions), read its raw.json, write the result"),
)
STEP_NAMES: tuple[str, ...] = tuple(s.name for s in STEPS)
#: the report's notebook: not a step of a cell, it reads every cell's result.json
ANALYSIS_NOTEBOOK = "04_analysis.ipynb"
CELL_FILE = "cell.json"
RAW_FILE = "raw.json"
RESULT_FILE = "result.json"


def step(name: str) -> Step:
    for s in STEPS:
        if s.name == name:
            return s
    from .exceptions import LlmPerfError

    raise LlmPerfError(f"unknown step {name!r}; the steps are: {', '.join(STEP_NAMES)}")


def steps_before(name: str) -> tuple[Step, ...]:
    return STEPS[: STEP_NAMES.index(step(name).name)]


class CellDir:
    """Paths in one cell's folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"CellDir({str(self.path)!r})"

    @property
    def cell(self) -> Path:
        return self.path / CELL_FILE

    @property
    def raw(self) -> Path:
        return self.path / RAW_FILE

    @property
    def result(self) -> Path:
        return self.path / RESULT_FILE

    def output(self, name: str) -> Path:
        """The JSON file step ``name`` writes."""
        return self.path / step(name).output

    def log(self, name: str) -> Path:
        """What step ``name`` printed (notebook.run_step writes it)."""
        return self.path / f"{step(name).name}.log"

    def notebook(self, name: str) -> Path:
        """The executed copy of step ``name``'s notebook."""
        return self.path / step(name).notebook

    def stale(self) -> list[Path]:
        """What a new run of the cell removes first: every step's output and the driver's raw samples."""
        return [*(self.output(s.name) for s in STEPS), self.raw]
