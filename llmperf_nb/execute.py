"""Executing a notebook with papermill: the one place that does it (pipeline cells, the report)."""

from __future__ import annotations

from pathlib import Path

from .exceptions import LlmPerfError


class NotebookFailed(LlmPerfError):
    def __init__(self, ename: str, evalue: str, path: Path):
        self.ename, self.evalue, self.path = ename, evalue, path
        super().__init__(f"{path.name} failed ({ename}: {evalue.strip().splitlines()[0] if evalue.strip() else ''})")


def execute(source: Path, out: Path, parameters: dict, cwd: Path, timeout: float | None = None) -> None:
    """Run ``source`` with ``parameters`` injected, saving the executed copy at ``out``."""
    import papermill

    try:
        papermill.execute_notebook(
            str(source), str(out), parameters=parameters, cwd=str(cwd), progress_bar=False,
            execution_timeout=timeout, kernel_name="python3",
            # the kernel's own start-up chatter (e.g. its TCP transport notice) is not ours to show
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
        )
    except papermill.PapermillExecutionError as e:
        raise NotebookFailed(e.ename, e.evalue, Path(out)) from None
