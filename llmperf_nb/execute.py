"""Executing a notebook with papermill: the one place that does it (pipeline cells, the report)."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TextIO

from .exceptions import LlmPerfError
from .jsonfile import write_text


class NotebookFailed(LlmPerfError):
    def __init__(self, ename: str, evalue: str, path: Path):
        self.ename, self.evalue, self.path = ename, evalue, path
        super().__init__(f"{path.name} failed ({ename}: {evalue.strip().splitlines()[0] if evalue.strip() else ''})")


def execute(source: Path, out: Path, parameters: dict, cwd: Path, timeout: float | None = None) -> None:
    """Run ``source`` with ``parameters`` injected, saving the executed copy at ``out``.

    The kernel process's own stderr (start-up notices, its reaction to Ctrl-C) goes to
    ``out`` + ``.kernel.log`` rather than the terminal; what the notebook prints is in ``out``.
    """
    import papermill

    # paths relative to where the command runs: executed notebooks are published, and an absolute
    # path would publish the layout of the machine that ran them
    source, out = _relative(source), _relative(out)
    log = Path(str(out) + ".kernel.log")
    try:
        with _stderr_to(log):
            papermill.execute_notebook(
                str(source), str(out), parameters=parameters, cwd=str(cwd), progress_bar=False,
                execution_timeout=timeout, kernel_name="python3",
            )
    except papermill.PapermillExecutionError as e:
        raise NotebookFailed(e.ename, e.evalue, Path(out)) from None
    finally:
        if log.exists() and log.stat().st_size == 0:
            log.unlink()
        for published in (out, log):
            scrub_paths(published)


def scrub_paths(path: Path, root: Path | None = None) -> None:
    """Make ``root``'s absolute path (default: where the command runs, the repo) relative in a
    published text file: tracebacks and warnings name source files by absolute path."""
    prefix = str(Path(root or Path.cwd()).resolve()) + os.sep
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError):
        return
    # the interpreter's prefix (site-packages in warnings) and the home folder (the weights cache)
    scrubbed = text.replace(prefix, "").replace(sys.prefix + os.sep, "<python>/")
    scrubbed = scrubbed.replace(str(Path.home()) + os.sep, "~/")
    if scrubbed != text:
        write_text(path, scrubbed)


def _relative(path: Path) -> Path:
    path = Path(path).resolve()
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


@contextlib.contextmanager
def _stderr_to(path: Path):
    """Point file descriptor 2 at ``path`` while the kernel is started (it inherits it)."""
    sys.stderr.flush()
    saved = os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.dup2(fd, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(fd)


def terminal() -> TextIO:
    """A stream on the terminal's stderr that stays there while kernels run (for progress bars)."""
    return os.fdopen(os.dup(2), "w", buffering=1)
