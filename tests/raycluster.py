"""A real Ray cluster on this machine, for the tests: a head and worker nodes started as a user starts them
(`ray start`, docs/ray.md), each node in a process group of its own, so that a test can kill one node whole,
as when a machine is lost."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .conftest import as_a_background_job

#: the `ray` command of this interpreter's Ray (the console script may not be on PATH)
RAY = [sys.executable, "-c", "import sys; from ray.scripts.scripts import main; sys.argv[0] = 'ray'; sys.exit(main())"]


#: small nodes: one CPU each, 80 MiB of object store (the cells pass nothing through it)
NODE_OPTIONS = ["--num-cpus", "1", "--object-store-memory", str(80 << 20), "--disable-usage-stats"]
HEAD_OPTIONS = [*NODE_OPTIONS, "--include-dashboard=false"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


class Cluster:
    """``Cluster()`` starts the head (no cell resources); ``add_node(name, num_gpus, resources)`` a worker."""

    def __init__(self):
        # Ray's socket paths must stay under 107 bytes: a short folder, not pytest's tmp_path
        self.temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        self.groups: dict[str, int] = {}
        port = str(free_port())
        said = self._start("head", "--head", "--port", port, "--temp-dir", str(self.temp), *HEAD_OPTIONS)
        # what `ray start --head` tells the user to type on the other machines
        self.address = re.search(r"ray start --address='([^']+)'", said).group(1)

    def add_node(self, name: str, num_gpus: int = 0, resources: dict | None = None) -> str:
        """Start a worker node; returns its Ray node id."""
        gpus = ["--num-gpus", str(num_gpus), "--resources", json.dumps(resources or {})]
        self._start(name, "--address", self.address, *gpus, *NODE_OPTIONS)
        return self.node_id(name)

    def _start(self, name: str, *args: str) -> str:
        # no --block: `ray start` returns once the node is up; what it started keeps its process group. It
        # starts as from a script's background job, ignoring SIGINT: Ctrl-C on the driver must still stop a cell
        proc = subprocess.Popen(
            [*RAY, "start", *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            preexec_fn=as_a_background_job,
        )
        out = proc.communicate(timeout=180)[0]
        self.groups[name] = proc.pid
        if proc.returncode != 0:
            raise RuntimeError(f"ray start ({name}) failed:\n{out[-3000:]}")
        return out

    def node_id(self, name: str) -> str:
        """The Ray node id of a node, read off its raylet's command line."""
        for pid in _group(self.groups[name]):
            args = _cmdline(pid)
            if args and args[0].endswith("raylet"):
                return next(a.split("=", 1)[1] for a in args if a.startswith("--node_id="))
        raise RuntimeError(f"no raylet in the process group of {name}")

    def name_of(self, node_id: str) -> str:
        return next(n for n in self.groups if n != "head" and self.node_id(n) == node_id)

    def kill(self, name: str) -> None:
        """SIGKILL every process of one node at once: the machine is gone."""
        os.killpg(self.groups[name], signal.SIGKILL)

    def stop(self) -> None:
        workers = self.worker_processes()
        for pgid in self.groups.values():
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in workers:  # Ray's worker processes have groups of their own
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.5)
        shutil.rmtree(self.temp, ignore_errors=True)

    def worker_processes(self) -> list[int]:
        """Pids of the processes that run with this cluster's session (Ray's workers)."""
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    env = Path(f"/proc/{entry}/environ").read_bytes()
                except OSError:
                    continue
                if str(self.temp).encode() in env:
                    found.append(int(entry))
        return found


def _group(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    pids.append(int(entry))
            except ProcessLookupError:
                continue
    return pids


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []
