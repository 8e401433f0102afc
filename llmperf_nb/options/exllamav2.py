"""ExLlamaV2's options (engines/exllamav2.py, drivers/exllamav2.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ..exceptions import ConfigError


@dataclass(frozen=True)
class Options:
    # GB of weights per GPU as test_inference.py's -gs takes it ("17,17"), or "auto" to fill the
    # GPUs in turn; None: the first GPU for a one-GPU cell, "auto" for a multi-GPU one
    gpu_split: str | None = None
    max_seq_len: int = 2048  # cache length in tokens (ExLlamaV2Cache is allocated for all of it)
    # also time ExLlamaV2's own dynamic generator (greedy, gen_len tokens, no stop) in the same command
    crosscheck: bool = False

    def validate(self):
        if self.max_seq_len < 1:
            raise ConfigError("option 'max_seq_len' must be at least 1")
        if self.gpu_split not in (None, "auto"):
            try:
                split = [float(x) for x in self.gpu_split.split(",")]
            except ValueError:
                split = []
            if not split or any(x <= 0 for x in split):
                raise ConfigError(
                    f"option 'gpu_split': {self.gpu_split!r} is not 'auto' or a list of GB per GPU such as '17,17'"
                )
