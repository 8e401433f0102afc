"""Run steps as local processes, under this interpreter."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from .. import process, steps


class LocalRunner:
    name = "local"

    def run_step(
        self,
        step: str,
        cell,
        cell_dir: Path,
        cache_dir: Path,
        *,
        timeout: float | None = None,
        on_line: Callable[[str], None] | None = None,
        extra_env: dict | None = None,
    ) -> process.Completed:
        argv = steps.command(sys.executable, step, cell_dir, cache_dir)
        return process.run(argv, timeout=timeout, on_line=on_line, extra_env=extra_env)
