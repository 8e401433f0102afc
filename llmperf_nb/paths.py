"""Where the project's notebooks and default folders are."""

from __future__ import annotations

from pathlib import Path

from .exceptions import LlmPerfError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
#: per-cell notebooks, in the order a cell runs them
CELL_NOTEBOOKS = {"setup": "01_setup.ipynb", "compile": "02_compile.ipynb", "benchmark": "03_benchmark.ipynb"}
ANALYSIS = "04_analysis.ipynb"


def notebook(step: str) -> Path:
    name = CELL_NOTEBOOKS.get(step, ANALYSIS if step == "analysis" else None)
    path = NOTEBOOKS / name if name else None
    if path is None or not path.exists():
        raise LlmPerfError(f"notebook for {step!r} not found in {NOTEBOOKS}: llmperf-nb runs from a checkout of the repository")
    return path
