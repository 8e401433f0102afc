"""``llmperf-nb import``: parse what an engine printed (with its parsers, ``Engine.parsers``) into a result
document, so a run made by hand joins the same report as runs of the pipeline."""

from __future__ import annotations

from .. import results
from ..cells import Cell, EngineChoice, GpuChoice
from ..engines import registry
from ..params import DEFAULT_PROMPT


def to_result(engine_name: str, text: str, *, fmt: str | None = None, model: str = "unknown",
              gpu: str = "unknown", quantization: str = "unknown", source: str = "-") -> dict:
    engine = registry[engine_name]
    m = engine.parse_log(text, fmt)
    gen = min((s["gen_tokens"] for s in m.samples), default=0)
    prompt = min((s["prompt_tokens"] or 0 for s in m.samples), default=0)
    cell = Cell(
        run="imported", model=model, gpu=GpuChoice(gpu, 1), engine=EngineChoice(engine_name, {}),
        quantization=quantization, weights="imported", local_path=None, num_shards=1,
        prompt=DEFAULT_PROMPT if prompt else "", gen_len=gen, repetitions=len(m.samples), warmup=0,
        min_time_s=0.0, timeout_s=0.0, seed=0,
    )
    started = results.now()
    doc = results.build(
        cell=cell, status="ok", started_at=started, engine_label=engine.label,
        weights={"source": "imported", "synthetic": False}, measurement=m,
        extra={"imported_from": source, "configuration": engine.label},
    )
    doc["prompt"] = "(not recorded in the log)"
    doc["prompt_tokens"]["requested"] = None
    results.validate(doc, source=source)
    return doc
