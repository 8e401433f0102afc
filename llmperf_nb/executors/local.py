"""Run the cells here, one after another, in this process's machine."""

from __future__ import annotations

from .. import pipeline
from ..notebook import default_cache_dir


class LocalExecutor:
    name = "local"

    def run_cells(self, cells, results_dir, cache_dir, runner, *, started, done) -> None:
        cache = cache_dir if cache_dir is not None else default_cache_dir().resolve()
        for cell in cells:
            started(cell)
            done(cell, pipeline.run_cell(cell, results_dir / cell.id, cache, runner))
