"""A cell is one (model, GPU, engine) combination of a params matrix, fully resolved.

Cells travel as ``cell.json`` into whatever runs a step (a local process, a container), so they
hold only portable values: no paths of the host.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from .params import EngineChoice, GpuChoice, Params


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

    @property
    def id(self) -> str:
        return f"{self.model}__{self.gpu.label}__{self.engine.label}__{self.quantization}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Cell:
        d = dict(d)
        d["gpu"] = GpuChoice(**d["gpu"])
        d["engine"] = EngineChoice(**d["engine"])
        return cls(**d)

    def save(self, cell_dir: Path) -> Path:
        cell_dir.mkdir(parents=True, exist_ok=True)
        path = cell_dir / "cell.json"
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, cell_dir: Path) -> Cell:
        return cls.from_dict(json.loads((Path(cell_dir) / "cell.json").read_text()))


def expand(params: Params) -> list[Cell]:
    """Every cell of the matrix, in the order models x GPUs x engines."""
    cells = []
    for model in params.models:
        local = params.local_weights.get(model)
        for gpu in params.gpus:
            for engine in params.engines:
                cells.append(
                    Cell(
                        run=params.name,
                        model=model,
                        gpu=gpu,
                        engine=engine,
                        quantization=engine.quantization or params.quantization,
                        weights="local" if local else params.weights,
                        local_path=local,
                        num_shards=params.num_shards or gpu.count,
                        prompt=params.prompt,
                        gen_len=params.gen_len,
                        repetitions=params.repetitions,
                        warmup=params.warmup,
                        min_time_s=params.min_time_s,
                        timeout_s=params.timeout_s,
                        seed=params.seed,
                    )
                )
    return cells
