"""Where the project's notebooks and default folders are."""

from __future__ import annotations

from pathlib import Path

from . import layout
from .exceptions import LlmPerfError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def notebook(step: str) -> Path:
    """The notebook of a step of layout.STEPS, or of "analysis" (the report)."""
    name = layout.ANALYSIS_NOTEBOOK if step == "analysis" else layout.step(step).notebook
    path = NOTEBOOKS / name
    if not path.exists():
        raise LlmPerfError(f"notebook for {step!r} not found in {NOTEBOOKS}: llmperf-nb runs from a checkout of the repository")
    return path
