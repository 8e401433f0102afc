"""Executing a notebook with papermill: the one place that does it (pipeline cells, the report)."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TextIO

from . import published
from .exceptions import LlmPerfError


class NotebookFailed(LlmPerfError):
    def __init__(self, ename: str, evalue: str, path: Path):
        self.ename, self.evalue, self.path = ename, evalue, path
        super().__init__(f"{path.name} failed ({ename}: {evalue.strip().splitlines()[0] if evalue.strip() else ''})")


#: the executed copy of ``NAME.ipynb`` until it is complete: ``NAME.tmp.ipynb``
PARTIAL_SUFFIX = ".tmp.ipynb"



def execute(source: Path, out: Path, parameters: dict, cwd: Path, named: list[tuple[str, str]],
            timeout: float | None = None) -> None:
    """Run ``source`` with ``parameters`` injected, saving the executed copy at ``out``.

    The copy appears whole or not at all: papermill writes it beside ``out`` and it is renamed over
    ``out`` when the notebook has run (or failed: its traceback is worth keeping); a full disk or an
    interrupt leaves no half-written notebook. The kernel process's own stderr (start-up notices, its
    reaction to Ctrl-C) goes to ``out`` + ``.kernel.log`` rather than the terminal. Both are published,
    so the paths of the ``named`` roots in them are written from the roots' names (published.py).
    """
    import papermill

    out = Path(out)
    # papermill warns about a name that does not end in .ipynb
    partial, log = out.with_name(out.stem + PARTIAL_SUFFIX), Path(str(out) + ".kernel.log")
    done = False
    try:
        with _stderr_to(log), _kernel_sockets() as config:
            papermill.execute_notebook(
                str(source), str(partial), parameters=parameters, cwd=str(cwd), progress_bar=False,
                execution_timeout=timeout, kernel_name="python3", config=config,
            )
        done = True
    except papermill.PapermillExecutionError as e:
        done = True
        raise NotebookFailed(e.ename, e.evalue, out) from None
    except RuntimeError as e:  # jupyter_client: "Kernel died before replying to kernel_info", "Kernel didn't respond"
        if not str(e).startswith("Kernel"):
            raise
        raise NotebookFailed(type(e).__name__, f"{e}{_kernel_said(log)}", out) from None
    finally:
        _settle(partial, out, done, named)
        if log.exists() and log.stat().st_size == 0:
            log.unlink()
        published.scrub_file(log, named)


def _settle(partial: Path, out: Path, keep: bool, named) -> None:
    """Rename the executed copy over ``out`` (``keep``), or remove what is left of it."""
    try:
        if keep and partial.exists():
            # papermill recorded the name it wrote to (output_path): the name it is published under
            published.scrub_file(partial, [(str(partial), str(out)), *named])
            os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)


def _kernel_said(log: Path) -> str:
    """Why the kernel did not start, as its own log says it (its last exception line), and the log's name."""
    import re

    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    said = [line.strip() for line in lines if re.match(r"[\w.]+(Error|Exception): ", line)]
    return f" ({said[-1][:300]}; {log.name})" if said else f" ({log.name})"


@contextlib.contextmanager
def _kernel_sockets():
    """The kernel's configuration: it talks to papermill over Unix sockets, not TCP. jupyter_client picks a
    kernel's five TCP ports by binding port 0 and letting go, and the kernel binds them seconds later, once
    Python has started: a port taken in between by another process (the kernel of a cell starting beside
    it, a Ray node's agent binding port 0) kills the kernel at start-up ("ZMQError: Address already in
    use", then "Kernel died before replying to kernel_info"): it failed a cell of a Ray run of two cells
    on one machine (tests/test_ray.py). Unix socket names are ours, no port is chosen. On Linux they live
    in the abstract namespace (``@llmperf-nb-kernel-<random>-N``): no file, so a kernel of a killed run
    (a lost Ray node) leaves nothing behind; elsewhere in a temporary folder of their own."""
    import uuid

    from traitlets.config import Config

    if sys.platform.startswith("linux"):
        yield Config({"KernelManager": {"transport": "ipc", "ip": f"@llmperf-nb-kernel-{uuid.uuid4().hex}"}})
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="llmperf-nb-kernel-") as folder:
        yield Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(folder, "k")}})


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
