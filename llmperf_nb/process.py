"""The one function through which every external process runs.

argv (never a shell string), a timeout, a working directory and an allow-listed environment go
in; on failure the error carries the command, its exit code and the tail of its output.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .exceptions import ProcessError, StepTimeout

#: Variables a benchmark process may see. Anything else (tokens, keys, cloud credentials) stays
#: out unless a caller names it in ``extra_env``.
ALLOWED_ENV = (
    "PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR", "TERM",
    "PYTHONPATH", "VIRTUAL_ENV", "LD_LIBRARY_PATH",
    "CUDA_VISIBLE_DEVICES", "CUDA_HOME", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES",
    "NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "NVSHMEM_DISABLE_NVLS",
    "OMP_NUM_THREADS", "LLAMA_CPP_LIB_PATH", "HF_HOME", "HF_HUB_OFFLINE", "HF_HUB_CACHE",
    "TORCH_CUDA_ARCH_LIST", "MAX_JOBS", "LLMPERF_NB_CACHE", "LLAMA_BENCH", "LLAMA_CPP_DIR", "TORCH_EXTENSIONS_DIR", "JUPYTER_PATH",
    "LLMPERF_NB_COMMIT", "LLMPERF_NB_DIRTY",
)

TAIL_LINES = 40


@dataclass
class Completed:
    argv: list[str]
    returncode: int
    output: str
    seconds: float


def child_env(extra_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The allow-listed part of this process's environment, plus ``extra_env``."""
    env = {k: v for k, v in os.environ.items() if k in ALLOWED_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra_env or {})
    return env


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def run(
    argv: Sequence[str | os.PathLike],
    *,
    timeout: float | None = None,
    cwd: str | os.PathLike | None = None,
    extra_env: Mapping[str, str] | None = None,
    on_line: Callable[[str], None] | None = None,
    check: bool = True,
) -> Completed:
    """Run ``argv``, streaming its merged stdout/stderr to ``on_line``; return all of it.

    The child gets its own process group so that a timeout or Ctrl-C stops it and everything it
    started.
    """
    argv = [os.fspath(a) for a in argv]
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=child_env(extra_env), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, errors="replace",
            start_new_session=True,
        )
    except FileNotFoundError:
        raise ProcessError(argv, 127, f"{argv[0]}: program not found") from None
    lines: list[str] = []
    recent: deque[str] = deque(maxlen=TAIL_LINES)
    deadline = None if timeout is None else start + timeout
    try:
        _pump(proc, lines, recent, on_line, deadline)
    except Deadline:
        _kill(proc)
        raise StepTimeout(
            f"stopped after {timeout:.0f} s (time limit): {' '.join(argv)[:200]}\n" + "\n".join(recent)
        ) from None
    except BaseException:
        _kill(proc)
        raise
    finally:
        proc.stdout.close()
    output = "".join(lines)
    done = Completed(argv, proc.returncode, output, time.monotonic() - start)
    if check and proc.returncode != 0:
        raise ProcessError(argv, proc.returncode, tail(output), first_error(output))
    return done


_ERROR_LINE = re.compile(r"error|assert|exception|fatal|abort|out of memory|not found|no such", re.IGNORECASE)


def first_error(output: str) -> str | None:
    """The first line that reads like the cause, so a failure says more than its exit code."""
    for line in output.splitlines():
        if _ERROR_LINE.search(line) and not line.startswith(("Traceback", "  File ")):
            return line.strip()[:300]
    return None


class Deadline(Exception):
    """The deadline passed before the source ended (callers stop the process or container)."""


def pump(source, lines: list, recent, on_line, deadline: float | None) -> None:
    """Collect the lines of ``source`` (an iterator) on a thread, so that a source that prints
    nothing still meets ``deadline`` (time.monotonic). An error in the reader is raised here."""
    import queue
    import threading

    q: queue.Queue = queue.Queue()

    def reader():
        try:
            for line in source:
                q.put(line)
            q.put(None)
        except BaseException as e:  # handed to the caller's thread, which raises it
            q.put(e)

    threading.Thread(target=reader, daemon=True).start()
    while True:
        wait = None if deadline is None else deadline - time.monotonic()
        if wait is not None and wait <= 0:
            raise Deadline
        try:
            item = q.get(timeout=wait)
        except queue.Empty:
            raise Deadline from None
        if item is None:
            return
        if isinstance(item, BaseException):
            raise item
        lines.append(item)
        recent.append(item.rstrip("\n"))
        if on_line:
            on_line(item)


def _pump(proc, lines, recent, on_line, deadline):
    pump(proc.stdout, lines, recent, on_line, deadline)
    remaining = None if deadline is None else max(0.1, deadline - time.monotonic())
    try:
        proc.wait(timeout=remaining)
    except subprocess.TimeoutExpired:
        raise Deadline from None


def _kill(proc: subprocess.Popen) -> None:
    """Stop the whole process group: TERM, then KILL after a grace period."""
    if proc.poll() is not None:
        return
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def python() -> str:
    """The interpreter that runs this package; drivers run under the same one."""
    return sys.executable


def which(name: str) -> Path | None:
    import shutil

    found = shutil.which(name)
    return Path(found) if found else None
