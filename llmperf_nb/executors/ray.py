"""Run the cells as tasks of a Ray cluster, each on a node with the cell's GPU model and count (docs/ray.md).

This process is the Ray driver: it places each cell on a node itself (placement.py: the node must
declare the cell's ``llmperf-nb:<gpu>`` resource; at most ``per_host`` cells at once per host) and
submits one task pinned there. The task runs ``pipeline.run_cell`` on that node, into the results
folder, which must be a path every node reaches (a shared file system): before it runs anything the
task checks that it sees the mark this run left there. Each node runs its own checkout of llmperf-nb
and its own engines; the weights cache is each node's own unless ``--cache-dir`` names one.

What can go wrong, and what is left of it:
- no node has a cell's GPU: said at once, recorded as not run (``skipped``); the other cells run;
- the node or the worker process running a cell is lost: the cell is tried again, on another node
  where the node died, up to MAX_ATTEMPTS times in all, then recorded as failed; every other cell's
  result is a file of its own, written whole or not at all, and stays;
- Ctrl-C (or SIGTERM): each running task gets a KeyboardInterrupt (``pipeline.run_cell`` marks its
  cell as interrupted, as in a local run); a task still running CANCEL_GRACE_S later is killed and
  its cell marked here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections import Counter
from pathlib import Path

from .. import pipeline
from ..cells import Cell
from ..exceptions import ConfigError, LlmPerfError
from ..jsonfile import write_json
from ..layout import CellDir
from . import placement

#: left by the driver in the results folder; a task that does not see it is on a node without the share
MARK_FILE = ".llmperf-nb-ray-run.json"
MAX_ATTEMPTS = 2
CANCEL_GRACE_S = 30.0
WAIT_S = 1.0


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, per_host: int = 1):
        if isinstance(per_host, bool) or not isinstance(per_host, int) or per_host < 1:
            raise ConfigError(f"--per-host must be a whole number of at least 1, got {per_host!r}")
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.per_host = per_host
        if self.address:
            _reachable(self.address)  # Ray itself retries an unreachable head for minutes, printing as it goes

    def run_cells(self, cells, results_dir, cache_dir, runner, *, started, done) -> None:
        if not cells:
            return
        ray = connect(self.address)
        try:
            with _mark(Path(results_dir)) as mark:
                job = _Job(ray, Path(results_dir), cache_dir, runner, mark, self.per_host, started, done)
                job.run(list(cells))
        finally:
            ray.shutdown()


def connect(address: str | None):
    """The ``ray`` module, connected to the cluster at ``address`` (None: the one ``ray start`` started on
    this machine)."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install -e '.[ray]' (on every node)") from None
    try:
        ray.init(address=address or "auto", logging_level=logging.ERROR, log_to_driver=False)
    except (ConnectionError, TimeoutError, ValueError, RuntimeError) as e:
        if not address:
            raise LlmPerfError(
                "no Ray cluster runs on this machine (and no --address or RAY_ADDRESS): start one with "
                "`ray start --head` (docs/ray.md) or give --address HEAD_IP:6379"
            ) from None
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise LlmPerfError(f"no Ray cluster at {address}: {first}") from None
    return ray


def _reachable(address: str, timeout: float = 10.0) -> None:
    """A head's GCS answers at ``HOST:PORT``, or one line says it does not."""
    import socket

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address!r}: give the head as HOST:PORT, e.g. 10.0.0.1:6379")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise LlmPerfError(
            f"no Ray cluster at {address}: {e.strerror or e}; start the head with `ray start --head` (docs/ray.md)"
        ) from None


@contextlib.contextmanager
def _mark(results_dir: Path):
    """A token in the results folder for the length of the run: a task checks it sees the same folder."""
    token = uuid.uuid4().hex
    path = results_dir / MARK_FILE
    write_json(path, {"run": token, "what": "llmperf-nb --executor ray: removed when the run ends"})
    try:
        yield token
    finally:
        path.unlink(missing_ok=True)


def run_on_node(cell_doc: dict, results_dir: str, cache_dir: str | None, runner: str, mark: str, node: dict) -> dict:
    """The task: one cell on this node, through pipeline.run_cell. Returns ``{"status", "node"}``."""
    import json

    from ..notebook import default_cache_dir
    from ..paths import ROOT

    results = Path(results_dir)
    try:
        seen = json.loads((results / MARK_FILE).read_text())["run"]
    except (OSError, ValueError, KeyError, TypeError):
        seen = None
    if seen != mark:
        raise LlmPerfError(
            f"{node['hostname']} ({node['ip']}) does not see the results folder {results_dir} "
            "that this run writes: it must be a path every node reaches (a shared file system, docs/ray.md)"
        )
    node_environment()
    interruptible()
    os.chdir(ROOT)  # as a local run from the checkout: notebooks found, published paths relative to it
    cell = Cell.from_dict(cell_doc)
    cache = Path(cache_dir) if cache_dir else default_cache_dir().resolve()
    return {"status": pipeline.run_cell(cell, results / cell.id, cache, runner, node=node), "node": node}


def node_environment() -> None:
    """Give the cell the environment its node was started with, as a local run has its shell's: Ray sets
    OMP_NUM_THREADS in a worker where the node's environment has none (to the task's CPUs, 1 here), and a
    benchmark would then run torch and OpenMP on one thread. The worker's parent is its node's raylet."""
    if "OMP_NUM_THREADS" not in os.environ:
        return
    try:
        node_env = Path(f"/proc/{os.getppid()}/environ").read_bytes().split(b"\0")
    except OSError:
        return  # not Linux: leave it
    if not any(v.startswith(b"OMP_NUM_THREADS=") for v in node_env):
        del os.environ["OMP_NUM_THREADS"]


def interruptible() -> None:
    """Let Ctrl-C on the driver reach the cell: Ray cancels a running task by interrupting its worker's main
    thread as SIGINT would (``_thread.interrupt_main``), which does nothing where SIGINT is ignored, as in a
    node started by a script's background job (``ray start ... &`` without job control) and all it starts."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread() and not callable(signal.getsignal(signal.SIGINT)):
        signal.signal(signal.SIGINT, signal.default_int_handler)


class _Job:
    """One run of cells over the cluster: the queue, the running tasks, the lost nodes."""

    def __init__(self, ray, results_dir: Path, cache_dir, runner: str, mark: str, per_host: int, started, done):
        self.ray, self.results_dir, self.runner, self.mark = ray, results_dir, runner, mark
        self.cache_dir = str(cache_dir) if cache_dir is not None else None
        self.started, self.done = started, done
        self.slots = placement.Slots(per_host)
        self.running: dict = {}  # ObjectRef -> (cell, node)
        self.lost: set[str] = set()  # ids of nodes that died under a cell
        self.attempts: Counter[str] = Counter()
        self.task = ray.remote(num_cpus=0, max_calls=1, max_retries=0, retry_exceptions=False)(run_on_node)

    def run(self, cells: list[Cell]) -> None:
        nodes = self.live()
        if not nodes:
            raise LlmPerfError("the Ray cluster has no live node")
        queue = []
        for cell in cells:
            why = placement.unschedulable(cell, nodes)
            if why:
                say(f"unschedulable: {cell.id}: {why}")
                self.done(cell, pipeline.record(cell, self.results_dir / cell.id, "skipped", why))
            else:
                queue.append(cell)
        try:
            while queue or self.running:
                queue = self.place(queue)
                self.collect(queue)
        except KeyboardInterrupt:
            self.stop()
            raise

    def live(self) -> list[placement.Node]:
        return [placement.Node.from_ray(n) for n in self.ray.nodes() if n.get("Alive") and n["NodeID"] not in self.lost]

    def place(self, queue: list[Cell]) -> list[Cell]:
        """Start what fits now; record the cells that no live node can run any more. Returns the rest."""
        nodes, waiting = self.live(), []
        for cell in queue:
            node = self.slots.pick(cell, nodes)
            if node is not None:
                self.submit(cell, node)
            elif any(placement.fits(cell, n) for n in nodes):
                waiting.append(cell)
            else:
                why = f"no live node of the Ray cluster has {cell.gpu.label} any more (lost: {len(self.lost)} node(s))"
                say(f"failed: {cell.id}: {why}")
                self.done(cell, pipeline.record(cell, self.results_dir / cell.id, "failed", why))
        return waiting

    def submit(self, cell: Cell, node: placement.Node) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        want = placement.demand(cell)
        task = self.task.options(
            num_gpus=want.pop("GPU", 0),
            resources=want,
            name=f"llmperf-nb {cell.id}",
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node.id, soft=False),
        )
        ref = task.remote(cell.to_dict(), str(self.results_dir), self.cache_dir, self.runner, self.mark, node.record())
        self.running[ref] = (cell, node)
        self.slots.take(cell, node)
        self.attempts[cell.id] += 1
        self.started(cell)
        say(f"started: {cell.id} on {node}")

    def collect(self, queue: list[Cell]) -> None:
        """Wait up to WAIT_S for a task to end, and take in every one that has."""
        if not self.running:
            time.sleep(WAIT_S if queue else 0)  # nothing to wait for (a cell waits for a node to come back)
            return
        ready, _ = self.ray.wait(list(self.running), num_returns=1, timeout=WAIT_S)
        for ref in ready:
            cell, node = self.running.pop(ref)
            self.slots.give_back(cell, node)
            status = self.outcome(ref, cell, node, queue)
            if status is not None:
                why = f": {_reason(self.results_dir / cell.id)}" if status == "failed" else ""
                say(f"{status}: {cell.id} on {node}{why}")
                self.done(cell, status)

    def outcome(self, ref, cell: Cell, node: placement.Node, queue: list[Cell]) -> str | None:
        """The cell's status, or None when it goes back in the queue."""
        exc = self.ray.exceptions
        try:
            return self.ray.get(ref)["status"]
        except exc.RayTaskError as e:  # the task raised: a node without the share, or a bug
            cause = e.cause or e
            message = str(cause) if isinstance(cause, LlmPerfError) else f"{type(cause).__name__}: {cause}"
            return pipeline.record(
                cell, self.results_dir / cell.id, "failed", message.strip().splitlines()[0], node=node.record()
            )
        except exc.RayError as e:  # the worker process or its whole node went away under the cell
            return self.lost_under(cell, node, e, queue)

    def lost_under(self, cell: Cell, node: placement.Node, error, queue: list[Cell]) -> str | None:
        what = type(error).__name__
        # the node is gone (or pinned to a node already gone): try elsewhere, it may still be listed alive
        if isinstance(error, (self.ray.exceptions.NodeDiedError, self.ray.exceptions.TaskUnschedulableError)):
            self.lost.add(node.id)
        if self.attempts[cell.id] < MAX_ATTEMPTS and any(placement.fits(cell, n) for n in self.live()):
            say(f"lost: {cell.id} on {node} ({what}); trying it again")
            queue.insert(0, cell)
            return None
        why = (
            f"the Ray node running it, {node}, was lost ({what}) after {self.attempts[cell.id]} attempt(s); "
            "run again to measure it"
        )
        return pipeline.record(cell, self.results_dir / cell.id, "failed", why, node=node.record())

    def stop(self) -> None:
        """Ctrl-C: interrupt every running task, kill those that do not end in time, mark their cells."""
        refs = list(self.running)
        if not refs:
            return
        say(f"stopping: interrupting {len(refs)} running cell(s)")
        for ref in refs:
            self.ray.cancel(ref, force=False)
        _, left = self.ray.wait(refs, num_returns=len(refs), timeout=CANCEL_GRACE_S)
        for ref in left:
            self.ray.cancel(ref, force=True)
        for ref in refs:
            cell, node = self.running.pop(ref)
            cell_dir = self.results_dir / cell.id
            if ref in left or not CellDir(cell_dir).result.exists():
                pipeline.record(
                    cell,
                    cell_dir,
                    "failed",
                    "interrupted (the run was stopped); run again to measure it",
                    node=node.record(),
                )


def _reason(cell_dir: Path) -> str:
    """The first line of a failed cell's error, as its result says it: a CI log then shows why."""
    import json

    try:
        error = json.loads(CellDir(cell_dir).result.read_text()).get("error") or {}
    except (OSError, ValueError):
        return "no result written"
    return (str(error.get("message") or "").strip().splitlines() or ["no message"])[0][:300]


def say(line: str) -> None:
    print(line, flush=True)
