"""vLLM's options (engines/vllm.py, drivers/vllm.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ..exceptions import ConfigError


@dataclass(frozen=True)
class Options:
    enforce_eager: bool = False  # True: no CUDA graphs (vLLM's default is to capture them)
    gpu_memory_utilization: float = 0.9
    # also run vLLM's own `vllm bench latency` on the same weights and settings, in the same command
    crosscheck: bool = False

    def validate(self):
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError(f"option 'gpu_memory_utilization' must be in (0, 1], got {self.gpu_memory_utilization}")
