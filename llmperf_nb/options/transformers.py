"""HF transformers' options (engines/transformers.py, drivers/transformers.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..exceptions import ConfigError


@dataclass(frozen=True)
class Options:
    cache: Literal["dynamic", "static"] = "dynamic"
    compile: bool = False  # torch.compile of the decode step (CUDA graphs on GPU); needs the static cache
    attn: Literal["sdpa", "eager"] = "sdpa"
    # None: float16 on a GPU, float32 on the CPU (CPU fp16 matmuls are slow or missing)
    dtype: Literal["float16", "bfloat16", "float32"] | None = None
    # also time transformers' own generate() on the same model and cache kind, in the same command
    crosscheck: bool = False
    # torch.use_deterministic_algorithms(True) and cuBLAS's fixed workspace (CUBLAS_WORKSPACE_CONFIG=:4096:8):
    # tells a non-deterministic kernel from state carried between repetitions when tokens differ
    deterministic: bool = False

    def validate(self):
        if self.compile and self.cache != "static":
            raise ConfigError(
                "option 'compile' needs cache: static (a dynamic cache changes shape every "
                "token, so a compiled graph could not be replayed)"
            )
