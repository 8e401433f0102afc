"""Which node of a cluster may run a cell, and which one takes it next. Pure: no Ray here.

A node says what it offers when it joins (docs/ray.md), one custom resource per GPU model, as many
units as it has GPUs of that model::

    ray start --address HEAD:6379 --num-gpus 2 --resources '{"llmperf-nb:h200": 2}'
    ray start --address HEAD:6379 --resources '{"llmperf-nb:cpu": 1}'

A GPU cell asks for ``num_gpus`` = its count and as many units of ``llmperf-nb:<gpu>``, so a multi-GPU
cell runs on one node that has them all. A CPU cell asks for one unit of ``llmperf-nb:cpu``: a CPU
number depends on the CPU, so a user picks the machines that run CPU cells, as for GPUs (and a
cluster's GPU hosts are not taken by CPU cells unless they say so).

One cell at a time per host by default (concurrent benchmarks disturb each other: CPU-bound engines,
power, PCIe); a host is a node's IP address, since one machine may run several Ray nodes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .. import gpus
from ..cells import Cell

PREFIX = "llmperf-nb:"


def resource(gpu_name: str) -> str:
    """The custom resource a node declares for each GPU of that catalog model (or ``cpu``)."""
    return PREFIX + gpu_name


def demand(cell: Cell) -> dict[str, float]:
    """What the cell's task asks of its node."""
    if cell.gpu.name == "cpu":
        return {resource("cpu"): 1}
    return {"GPU": cell.gpu.count, resource(cell.gpu.name): cell.gpu.count}


@dataclass(frozen=True)
class Node:
    id: str
    host: str  # the node's IP address: several nodes may share one machine
    hostname: str
    resources: dict

    @classmethod
    def from_ray(cls, entry: dict) -> Node:
        """From an entry of ``ray.nodes()``."""
        return cls(
            entry["NodeID"],
            entry["NodeManagerAddress"],
            entry.get("NodeManagerHostname", ""),
            dict(entry.get("Resources") or {}),
        )

    def record(self) -> dict:
        """What a result records of the node it ran on (the ``node`` field)."""
        return {"executor": "ray", "node_id": self.id, "ip": self.host, "hostname": self.hostname}

    def offers(self) -> list[str]:
        return sorted(f"{k[len(PREFIX) :]}×{v:g}" for k, v in self.resources.items() if k.startswith(PREFIX))

    def __str__(self) -> str:
        return f"{self.hostname or self.host} ({self.host}, node {self.id[:8]})"


def fits(cell: Cell, node: Node) -> bool:
    """The node has what the cell asks for, counting nothing else that runs there."""
    return all(node.resources.get(k, 0) >= v for k, v in demand(cell).items())


def unschedulable(cell: Cell, nodes: list[Node]) -> str | None:
    """Why no node of ``nodes`` can ever run the cell, or None."""
    if cell.gpu.name == gpus.AUTO:
        return (
            "gpus: auto means the GPU of the machine running llmperf-nb; on a Ray cluster name the GPU model "
            "(llmperf-nb list gpus)"
        )
    if any(fits(cell, n) for n in nodes):
        return None
    offered = sorted({o for n in nodes for o in n.offers()})
    have = ", ".join(offered) if offered else f"nothing: none declares a {PREFIX}* resource"
    return (
        f"no node of the Ray cluster has {cell.gpu.label}: start one with {start_hint(cell)} (the nodes offer {have})"
    )


def start_hint(cell: Cell) -> str:
    """The ``ray start`` options of a node that can run the cell."""
    if cell.gpu.name == "cpu":
        return f"""--resources '{{"{resource("cpu")}": 1}}'"""
    n = cell.gpu.count
    return f"""--num-gpus {n} --resources '{{"{resource(cell.gpu.name)}": {n}}}'"""


class Slots:
    """Who runs what: at most ``per_host`` cells at once on one host, and a node's GPUs given to one
    cell at a time."""

    def __init__(self, per_host: int = 1):
        self.per_host = per_host
        self.by_host: Counter[str] = Counter()
        self.used: dict[str, Counter] = {}

    def pick(self, cell: Cell, nodes: list[Node]) -> Node | None:
        """The first node of ``nodes`` that fits the cell and has room now, or None."""
        for node in nodes:
            if not fits(cell, node) or self.by_host[node.host] >= self.per_host:
                continue
            used = self.used.get(node.id, Counter())
            if all(node.resources.get(k, 0) - used[k] >= v for k, v in demand(cell).items()):
                return node
        return None

    def take(self, cell: Cell, node: Node) -> None:
        self.by_host[node.host] += 1
        self.used.setdefault(node.id, Counter()).update(demand(cell))

    def give_back(self, cell: Cell, node: Node) -> None:
        self.by_host[node.host] -= 1
        self.used[node.id].subtract(demand(cell))
