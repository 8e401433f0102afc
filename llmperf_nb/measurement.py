"""What a benchmark measured, as engines and parsers hand it over."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Measurement:
    """What a benchmark run measured: raw per-repetition samples and run-level facts."""

    engine_version: str
    prompt_token_ids: list[int] | None
    samples: list[dict]
    warmup_samples: list[dict] = field(default_factory=list)
    peak_mem_bytes: int | None = None
    peak_mem_kind: str | None = None
    energy: dict | None = None
    build: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # sweep and serve workloads: one raw record per point (llmperf_nb.points); samples stay empty
    points: list[dict] = field(default_factory=list)
