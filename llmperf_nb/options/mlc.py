"""MLC LLM's options (engines/mlc.py, drivers/mlc.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..exceptions import ConfigError


@dataclass(frozen=True)
class Options:
    target: Literal["cuda", "rocm", "llvm", "auto"] = "auto"  # auto: cuda on NVIDIA, rocm on AMD, llvm on CPU
    use_cuda_graph: bool = True  # CUDA only; MLC turns it off for other targets
    flashinfer: bool = False  # MLC's default on CUDA; off: see the module's docstring
    cublas_gemm: bool = False
    max_seq_len: int = 2048  # context window compiled into the library

    def validate(self):
        if self.max_seq_len < 16:
            raise ConfigError("option 'max_seq_len' must be at least 16")
