"""What vLLM's latency benchmark prints: ``benchmarks/benchmark_latency.py`` (to 2025) and
``vllm bench latency`` (since), as text or as its ``--output-json`` document.

Both time ``LLM.generate`` of one batch, start to finish: a latency covers the prefill of
``batch_size`` random prompts of ``input_len`` tokens and ``output_len`` generated tokens each
(sampled at temperature 1, EOS ignored). No prefill/decode split exists in this output, so:

* ``e2e_s`` is the whole-request latency and ``e2e_tok_s = output_len / e2e_s`` the tokens per
  second of one sequence including its prefill (what the original llm-perf-bench reported for
  vLLM as ``Speed``); ``decode_tok_s``, ``prefill_tok_s`` and ``ttft_s`` stay absent. A report
  must not compare ``e2e_tok_s`` with other engines' decode rates as if they were the same thing.
* ``output_len`` (and ``input_len``, ``batch_size``) come from the caller, else from the
  ``Namespace(...)`` line that ``benchmark_latency.py`` printed first (``print(args)``). Without
  ``output_len`` there is no token rate at all, so the parser raises :class:`ParseError` naming the
  missing value instead of guessing a default (the defaults changed: 128 now, other values in old
  releases and in the original benchmark's command, which passed ``--output-len 256``).
  ``vllm bench latency`` prints no Namespace line, so its logs need the caller's values.

Text: ``Avg latency: X seconds``, then (from vLLM PR #3889, 2024-04) ``P% percentile latency: X
seconds`` for P in 10, 25, 50, 75, 90, 99: a mean, not the repetitions, so one sample with the
mean and the percentiles kept in ``build``. JSON: ``{"avg_latency", "latencies": [...],
"percentiles": {"10": ...}}``: one sample per repetition.
"""

from __future__ import annotations

import json
import re

from ..exceptions import ParseError
from ..measurement import Measurement

ENGINE = "vLLM (version not in the log)"

_NUM = r"(\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
_AVG = re.compile(r"Avg latency:\s*" + _NUM + r"\s*seconds")
_PCT = re.compile(r"(\d+)% percentile latency:\s*" + _NUM + r"\s*seconds")
_NAMESPACE = re.compile(r"Namespace\((.*)\)")
_ARGS = ("input_len", "output_len", "batch_size", "n", "tensor_parallel_size", "num_iters", "num_iters_warmup")


def workload_from_namespace(text: str) -> dict:
    """Integer arguments of the last ``Namespace(...)`` line, plus ``model`` and ``dtype`` if present."""
    found = _NAMESPACE.findall(text)
    if not found:
        return {}
    args = found[-1]
    out: dict = {}
    for key in _ARGS:
        m = re.search(rf"(?<![\w]){key}=(\d+)", args)
        if m:
            out[key] = int(m.group(1))
    for key in ("model", "dtype", "quantization"):
        m = re.search(rf"(?<![\w]){key}='([^']*)'", args)
        if m:
            out[key] = m.group(1)
    return out


def _workload(text: str, given: dict, source: str) -> dict:
    work = {**workload_from_namespace(text), **{k: v for k, v in given.items() if v is not None}}
    if work.get("output_len") is None:
        raise ParseError(
            f"vLLM {source}: the log gives latencies but not how many tokens each request generated "
            "(--output-len), so no token rate can be computed; it has no 'Namespace(... output_len=...)' line. "
            "Parse it with output_len=N (and input_len, batch_size) from the command that ran"
        )
    return work


def _sample(latency: float, work: dict) -> dict:
    out_len = work["output_len"]
    return {"prompt_tokens": work.get("input_len"), "gen_tokens": out_len,
            "e2e_s": latency, "e2e_tok_s": out_len / latency if latency > 0 else None}


def _notes(work: dict) -> list[str]:
    notes = ["vLLM latency benchmark: whole-request latency only (prefill + decode of the batch); "
             "e2e_tok_s = output_len / latency, not a decode rate; decode_tok_s is not in this output"]
    batch = work.get("batch_size")
    if batch is None:
        notes.append("batch size not in the log (vLLM's default is 8)")
    elif batch != 1:
        notes.append(f"batch_size={batch}: each latency covers {batch} sequences, not the batch-1 workload")
    if work.get("n", 1) != 1:
        notes.append(f"n={work['n']} sequences per prompt")
    return notes


def _build(work: dict, tool: str, **extra) -> dict:
    return {"tool": tool, **{k: work[k] for k in (*_ARGS, "model", "dtype", "quantization") if k in work}, **extra}


def parse_latency_text(text: str, *, output_len: int | None = None, input_len: int | None = None,
                       batch_size: int | None = None) -> Measurement:
    """``Avg latency`` (+ percentile) lines; one sample per ``Avg latency`` line."""
    avgs = [float(x) for x in _AVG.findall(text)]
    if not avgs:
        raise ParseError("no vLLM 'Avg latency: X seconds' line found")
    work = _workload(text, {"output_len": output_len, "input_len": input_len, "batch_size": batch_size}, "latency text")
    percentiles = {f"p{p}": float(v) for p, v in _PCT.findall(text)}
    samples = [_sample(a, work) for a in avgs]
    notes = _notes(work) + ["the text output holds the mean latency of the repetitions, not each one "
                            "(--output-json keeps them)"]
    if len(avgs) > 1:
        notes.append(f"{len(avgs)} 'Avg latency' lines in the log; each is a sample")
    return Measurement(engine_version=ENGINE, prompt_token_ids=None, samples=samples,
                       build=_build(work, "vllm latency benchmark (text)", latency_percentiles_s=percentiles or None),
                       notes=notes)


def parse_latency_json(text: str, *, output_len: int | None = None, input_len: int | None = None,
                       batch_size: int | None = None) -> Measurement:
    """The ``--output-json`` document; one sample per entry of ``latencies``."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ParseError(f"vLLM latency json: not JSON ({e.msg})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("latencies"), list) or not doc["latencies"]:
        raise ParseError("vLLM latency json: expected an object with a non-empty 'latencies' list")
    work = _workload("", {"output_len": output_len, "input_len": input_len, "batch_size": batch_size}, "latency json")
    samples = [_sample(float(x), work) for x in doc["latencies"]]
    percentiles = {f"p{k}": float(v) for k, v in (doc.get("percentiles") or {}).items()}
    build = _build(work, "vllm latency benchmark (--output-json)", latency_percentiles_s=percentiles or None,
                   avg_latency_s=doc.get("avg_latency"))
    return Measurement(engine_version=ENGINE, prompt_token_ids=None, samples=samples, build=build,
                       notes=_notes(work))
