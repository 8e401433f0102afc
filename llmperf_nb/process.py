"""The one function through which every external process runs.

argv (never a shell string), a timeout, a working directory and an allow-listed environment go
in; on failure the error carries the command, its exit code and the tail of its output.
"""

from __future__ import annotations

import contextlib
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

from .exceptions import LlmPerfError, ProcessError, StepTimeout

#: Variables a benchmark process may see. Anything else (tokens, keys, cloud credentials) stays
#: out unless a caller names it in ``extra_env``.
ALLOWED_ENV = (
    "PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR", "TERM",
    "PYTHONPATH", "VIRTUAL_ENV", "LD_LIBRARY_PATH",
    "CUDA_VISIBLE_DEVICES", "CUDA_HOME", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES",
    "NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "NVSHMEM_DISABLE_NVLS",
    "OMP_NUM_THREADS", "LLAMA_CPP_LIB_PATH", "HF_HOME", "HF_HUB_OFFLINE", "HF_HUB_CACHE", "HF_ENDPOINT",
    "TORCH_CUDA_ARCH_LIST", "MAX_JOBS", "LLMPERF_NB_CACHE", "LLAMA_BENCH", "LLAMA_CPP_DIR", "TORCH_EXTENSIONS_DIR", "JUPYTER_PATH",
    "LLMPERF_NB_COMMIT", "LLMPERF_NB_DIRTY", "LLAMA_SERVER", "LLAMA_CPP_SDIST", "AIPERF",
    "MLC_LLM_SOURCE",  # where mlc-llm's Python source is (drivers/mlc_compat.py)
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
    proc = _popen(argv, cwd, extra_env, subprocess.PIPE)
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


def _popen(argv: list[str], cwd, extra_env, stdout) -> subprocess.Popen:
    """Start a child the way every one starts: its own session (a timeout or Ctrl-C stops it and all
    it started), the allow-listed environment, killed when this process dies."""
    try:
        return subprocess.Popen(
            argv, cwd=cwd, env=child_env(extra_env), stdout=stdout,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, errors="replace",
            start_new_session=True, preexec_fn=_die_with_parent_hook(),
        )
    except FileNotFoundError:
        raise ProcessError(argv, 127, f"{argv[0]}: program not found") from None


@contextlib.contextmanager
def background(argv: Sequence[str | os.PathLike], log: Path, *, cwd=None, extra_env=None):
    """Run ``argv`` while the block runs (a server), its merged output going to ``log``. On the way out,
    whatever ended the block (its end, an error, a timeout, Ctrl-C), the process and everything it started
    are stopped: TERM, then KILL. Yields the Popen (``poll()`` says whether it died early)."""
    argv = [os.fspath(a) for a in argv]
    with open(log, "w") as out:
        proc = _popen(argv, cwd, extra_env, out)
        try:
            yield proc
        finally:
            _kill(proc)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=1)


_ERROR_LINE = re.compile(r"error|assert|exception|fatal|abort|out of memory|not found|no such", re.IGNORECASE)


#: in a companion's environment: the sweep of a process tree (end_descendants) leaves it alone
COMPANION = "LLMPERF_NB_COMPANION"


def companion(argv: Sequence[str | os.PathLike], *, extra_env: Mapping[str, str] | None = None) -> subprocess.Popen:
    """Start a helper that must outlive this process, to clean up after it (runners/lifeline.py):
    the allow-listed environment, its own session, standard input a pipe this process holds, its
    output discarded, and no parent-death signal. The one process not run through :func:`run`."""
    env = {**child_env(extra_env), COMPANION: "1"}  # end_descendants leaves it to finish its work
    return subprocess.Popen(
        [os.fspath(a) for a in argv], env=env, stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )


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
    """Stop the whole process group: TERM, then KILL after a grace period. The group is signalled
    even when its leader has already exited: what it started may still run."""
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        if not _group_alive(proc.pid):
            break
        time.sleep(0.1)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


# Every run owns its process tree. Each child runs in its own session (so a timeout stops its
# whole group), and is told by the kernel to die when its parent dies (PR_SET_PDEATHSIG): the
# kernel, step, driver chain then ends link by link when the CLI is killed, even by SIGKILL,
# which no handler sees. The CLI is also a subreaper (own_tree), so that whatever a process
# orphans is reparented to it, and swept when it exits.
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def _prctl():
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _die_with_parent_hook():
    """A preexec_fn setting the child's parent-death signal, or None where that cannot work: off
    Linux, or off the main thread (the signal fires when the *thread* that started the child
    ends, and a helper thread ends early)."""
    import threading

    prctl = _prctl()
    if prctl is None or threading.current_thread() is not threading.main_thread():
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the line above: nobody would tell us
            os._exit(1)

    return hook


def die_with_parent(parent: int | None) -> None:
    """Have this process killed when ``parent`` (its parent's pid) dies; for a process that was
    not started by :func:`run`, such as a notebook kernel (its launcher names the parent)."""
    prctl = _prctl()
    if prctl is None or parent is None or os.getppid() != parent:
        return
    prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP reached the CLI: handled as Ctrl-C is (the cell is marked, the tree ended)."""


@contextlib.contextmanager
def own_tree():
    """While the block runs, this process is the subreaper of everything it starts, SIGINT (Ctrl-C),
    SIGTERM and SIGHUP interrupt it, and on the way out every descendant still running is ended.

    SIGINT interrupts even when this process started with it ignored, as a background job of a
    script (``cmd &`` without job control) and everything that job starts do: SIGINT is how a run
    is stopped (Ctrl-C, ``timeout -s INT`` in scripts/gpu-jobs, the tests), and an ignored one left
    the run going with all its processes. A SIGHUP ignored at the start (nohup) stays ignored."""
    prctl = _prctl()
    if prctl is not None:
        prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

    def interrupt(signum, frame):
        raise Interrupted(signal.Signals(signum).name)

    handlers = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: interrupt}
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        handlers[signal.SIGHUP] = interrupt
    old = {s: signal.signal(s, handler) for s, handler in handlers.items()}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        end_descendants()


@contextlib.contextmanager
def exclusive(path: Path, what: str):
    """Hold an advisory lock on ``path`` while the block runs, or say which process holds it. The
    kernel drops the lock when its holder dies, so a killed run leaves no stale lock behind."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise LlmPerfError(f"{what} is already going ({holder}); wait for it or stop it first") from None
        try:
            os.ftruncate(fd, 0)
            # no argv: it holds machine paths, and the lock lies in a folder that may be published
            os.pwrite(fd, f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        except OSError as e:  # a full disk: say where
            raise OSError(e.errno, e.strerror, str(path)) from None
        yield
    finally:
        os.close(fd)


def end_descendants(grace: float = 3.0) -> None:
    """TERM every process below this one, then KILL what is left after ``grace`` seconds. Companions
    are left to end by themselves: they clean up after the processes ended here (a container's lifeline)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = [p for p in descendants() if not _is_companion(p)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline:
            _reap()
            if not [p for p in descendants() if p in pids]:
                return
            time.sleep(0.05)


def _is_companion(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f"{COMPANION}=1".encode() in f.read().split(b"\0")
    except OSError:
        return False


def _reap() -> None:
    """Collect exited children (orphans reparented here are ours to wait for)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def descendants(pid: int | None = None) -> list[int]:
    """The pids below ``pid`` (default: this process), from /proc, parents before children."""
    pid = os.getpid() if pid is None else pid
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                state, ppid = f.read().rsplit(")", 1)[1].split()[:2]
        except (OSError, ValueError):
            continue
        if state == "Z":  # exited already; its parent collects it
            continue
        ppid = int(ppid)
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop(0)
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def python() -> str:
    """The interpreter that runs this package; drivers run under the same one."""
    return sys.executable


def which(name: str) -> Path | None:
    import shutil

    found = shutil.which(name)
    return Path(found) if found else None
