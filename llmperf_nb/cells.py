"""A cell is one (model, GPU, engine, workload) combination of a params matrix, fully resolved.

Cells travel as ``cell.json`` into whatever runs a step (a local process, a container), so they
hold only portable values: no paths of the host.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from .jsonfile import write_json
from .layout import CellDir


@dataclass(frozen=True)
class GpuChoice:
    name: str  # a key of gpus.GPUS, or "auto"
    count: int = 1

    @property
    def label(self) -> str:
        return self.name if self.count == 1 else f"{self.name}x{self.count}"


@dataclass(frozen=True)
class EngineChoice:
    name: str
    options: dict = field(default_factory=dict)
    quantization: str | None = None  # overrides the file's quantization for this engine

    @property
    def label(self) -> str:
        """Registry name plus the options that make this a separate configuration."""
        suffix = "-".join(f"{v}" for _, v in sorted(self.options.items()))
        return f"{self.name}-{suffix}" if suffix else self.name


@dataclass(frozen=True)
class Cell:
    run: str
    model: str
    gpu: GpuChoice
    engine: EngineChoice
    quantization: str
    weights: str  # "synthetic", "hub" or "local"
    local_path: str | None
    num_shards: int
    prompt: str
    gen_len: int
    repetitions: int
    warmup: int
    min_time_s: float
    timeout_s: float
    seed: int
    # what runs once the engine is loaded (llmperf_nb.workloads): cell.json files written before
    # workloads existed have none, and ran the single batch-1 workload
    workload: dict = field(default_factory=lambda: {"kind": "single"})

    @property
    def kind(self) -> str:
        return self.workload["kind"]

    @property
    def id(self) -> str:
        # a single cell keeps the id it had before workloads; the others name their kind
        suffix = "" if self.kind == "single" else f"__{self.kind}"
        return f"{self.model}__{self.gpu.label}__{self.engine.label}__{self.quantization}{suffix}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Cell:
        d = dict(d)
        d["gpu"] = GpuChoice(**d["gpu"])
        d["engine"] = EngineChoice(**d["engine"])
        return cls(**d)

    def save(self, cell_dir: Path) -> Path:
        Path(cell_dir).mkdir(parents=True, exist_ok=True)
        return write_json(CellDir(cell_dir).cell, self.to_dict(), indent=2)

    @classmethod
    def load(cls, cell_dir: Path) -> Cell:
        return cls.from_dict(json.loads(CellDir(cell_dir).cell.read_text()))
