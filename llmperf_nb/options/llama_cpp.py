"""llama.cpp's options (engines/llama_cpp.py, drivers/llama_cpp.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..exceptions import ConfigError


@dataclass(frozen=True)
class Options:
    n_gpu_layers: int = 999  # all layers on the GPU; ignored on the CPU
    # tensor: llama.cpp's tensor parallelism (meta device, needs flash attention); row: the older row split,
    # which the CUDA backend of the llama.cpp vendored in llama-cpp-python 0.3.36 no longer has
    split_mode: Literal["layer", "row", "tensor", "none"] = "layer"
    flash_attn: Literal["auto", "on", "off"] = "auto"
    threads: int | None = None  # None: every usable core on the CPU, 1 when fully offloaded
    n_batch: int = 512
    # also run llama.cpp's own llama-bench on the same file and settings ($LLAMA_BENCH or PATH)
    crosscheck: bool = False

    def validate(self):
        if self.threads is not None and self.threads < 1:
            raise ConfigError("option 'threads' must be at least 1")
        if self.n_batch < 1:
            raise ConfigError("option 'n_batch' must be at least 1")
