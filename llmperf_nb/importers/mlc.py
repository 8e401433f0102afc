"""What MLC LLM prints about speed, in each of its eras.

* One line, ``prefill: X tok/s, decode: Y tok/s`` (C++ ``LLMChat::RuntimeStatsText``, 2023): bare
  after ``/stats`` in ``mlc_chat_cli`` and ``mlc_llm chat``, or after ``Statistics: `` in
  ``ChatModule.stats()`` scripts. It holds rates only, not how many tokens were counted.
* The verbose block (``VerboseRuntimeStatsText``): ``----------- prefill -----------``,
  ``throughput: X tok/s``, ``total tokens: N tok``, ``total time: T s``, then the same under
  ``------------ decode ------------``. ``mlc_chat.cli.benchmark`` prints it right after
  ``Statistics: `` on the same line. The block printed by PR #1007's branch had no spaces around the
  section names and no ``total time`` lines; both spellings are read.
* Engine metrics of the serving engine (``mlc_llm``, 2024 on): the JSON of ``EngineMetrics``
  (``decode_tokens_per_s``, ``last_finished_request``, ...), bare or wrapped in a usage document
  ``{"prompt_tokens": .., "extra": {...}}``, and the same keys as ``key<TAB>value`` lines
  (``EngineMetrics.prometheus_text()``, as ``/metrics`` shows them).

Counting rules, from MLC's source: the prefill step samples the first generated token, and each
decode step adds one to ``decode_total_tokens``, so one generation of G tokens shows
``total tokens: G - 1`` under decode and G = that + 1 here. The runtime stats accumulate over a
chat session until reset; a log of several rounds gives totals, which this module cannot split.

A count the log does not print is never guessed: the one-line stats need ``gen_tokens`` from the
caller, else :class:`ParseError` names it.
"""

from __future__ import annotations

import json
import re

from ..exceptions import ParseError
from ..measurement import Measurement

ENGINE = "MLC LLM (version not in the log)"

_NUM = r"(\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|nan|inf)"
_STATS = re.compile(r"prefill:\s*" + _NUM + r"\s*tok/s,\s*decode:\s*" + _NUM + r"\s*tok/s")
_SECTION = re.compile(r"-{5,}\s*(prefill|decode)\s*-{5,}")
_FIELD = re.compile(r"^\s*(throughput|total tokens|total time):\s*" + _NUM + r"\s*(tok/s|tok|s)\s*$")


def _float(text: str) -> float:
    return float(text)


def parse_stats(text: str, *, gen_tokens: int | None = None, prompt_tokens: int | None = None) -> Measurement:
    """The one-line stats; one sample per line found (each ``/stats`` or ``Statistics:`` line).

    The line has rates only: ``gen_tokens`` (tokens generated per run) must come from the caller.
    """
    found = _STATS.findall(text)
    if not found:
        raise ParseError("no MLC 'prefill: X tok/s, decode: Y tok/s' line found")
    if gen_tokens is None:
        raise ParseError(
            "MLC's one-line stats give rates but not how many tokens were generated, and a result needs that "
            "count; parse_stats(text, gen_tokens=N) takes it from the command that ran (e.g. --generate-length), "
            "or import MLC's verbose stats or engine metrics, which print it"
        )
    samples = [{"prompt_tokens": prompt_tokens, "gen_tokens": gen_tokens,
                "prefill_tok_s": _float(p), "decode_tok_s": _float(d)} for p, d in found]
    notes = ["one-line MLC runtime stats: rates rounded to 0.1 tok/s by MLC; token counts given by the importer"]
    if len(samples) > 1:
        notes.append(f"{len(samples)} stats lines in the log; each is a sample (stats accumulate until reset)")
    return Measurement(engine_version=ENGINE, prompt_token_ids=None, samples=samples,
                       build={"tool": "MLC runtime stats (one line)"}, notes=notes)


def parse_verbose(text: str) -> Measurement:
    """The verbose stats block(s); one sample per prefill+decode pair."""
    blocks: list[dict] = []
    current: dict | None = None
    section = None
    for line in text.splitlines():
        header = _SECTION.search(line)
        if header:
            section = header.group(1)
            if section == "prefill" or current is None:
                current = {}
                blocks.append(current)
            continue
        m = _FIELD.match(line)
        if m and section and current is not None:
            current[f"{section} {m.group(1)}"] = _float(m.group(2))
    blocks = [b for b in blocks if "decode throughput" in b]
    if not blocks:
        raise ParseError("no MLC verbose stats block ('------------ decode ------------' / 'throughput: X tok/s') found")
    samples, notes = [], ["MLC verbose runtime stats: rates rounded to 0.1 tok/s, times to 0.1 s by MLC"]
    for b in blocks:
        if "decode total tokens" not in b:
            raise ParseError("MLC verbose stats: a decode block has no 'total tokens: N tok' line")
        decode_tokens = int(b["decode total tokens"])
        s = {
            "prompt_tokens": int(b["prefill total tokens"]) if "prefill total tokens" in b else None,
            # the first token comes from the prefill step; decode steps add one each
            "gen_tokens": decode_tokens + 1,
            "prefill_tok_s": b.get("prefill throughput"),
            "decode_tok_s": b["decode throughput"],
        }
        for phase in ("prefill", "decode"):
            t = b.get(f"{phase} total time")
            if t:  # "0.0 s" is a time below MLC's print precision, not a measured zero
                s[f"{phase}_s"] = t
        samples.append(s)
    notes.append("gen_tokens = decode 'total tokens' + 1 (the prefill step yields the first token)")
    if len(samples) > 1:
        notes.append(f"{len(samples)} stats blocks in the log; each is a sample")
    return Measurement(engine_version=ENGINE, prompt_token_ids=None, samples=samples,
                       build={"tool": "MLC runtime stats (verbose)"}, notes=notes)


def _sample_from_metrics(flat: dict, source: str) -> Measurement:
    """Engine metrics (flattened keys) into one sample; per-request keys win over engine totals."""
    notes = []
    last = {k[len("last_finished_request_"):]: v for k, v in flat.items() if k.startswith("last_finished_request_")}
    if last.get("decode_tokens_per_s") is not None and last.get("completion_tokens") is not None:
        s = {"prompt_tokens": _int(last.get("prompt_tokens")), "gen_tokens": int(last["completion_tokens"]),
             "prefill_tok_s": last.get("prefill_tokens_per_s"), "decode_tok_s": last["decode_tokens_per_s"],
             "ttft_s": last.get("ttft_s"), "e2e_s": last.get("end_to_end_latency_s")}
        notes.append("MLC engine metrics of the last finished request")
    elif flat.get("decode_tokens_per_s") is not None:
        if flat.get("completion_tokens_sum") is not None:
            gen = int(flat["completion_tokens_sum"])
        elif flat.get("decode_tokens_sum") is not None:
            gen = int(flat["decode_tokens_sum"])
            notes.append("gen_tokens is decode_tokens_sum (tokens of decode steps): completion_tokens_sum is not "
                         "in the log")
        else:
            raise ParseError(f"MLC engine metrics ({source}): decode_tokens_per_s without a token count "
                             "(completion_tokens_sum or decode_tokens_sum)")
        s = {"prompt_tokens": _int(flat.get("prompt_tokens_sum")), "gen_tokens": gen,
             "prefill_tok_s": flat.get("prefill_tokens_per_s"), "decode_tok_s": flat["decode_tokens_per_s"]}
        notes.append("MLC engine-wide metrics: totals over every request since the engine started, not one run")
    else:
        raise ParseError(f"MLC engine metrics ({source}): no decode_tokens_per_s")
    s = {k: v for k, v in s.items() if v is not None or k in ("prompt_tokens", "gen_tokens")}
    return Measurement(engine_version=ENGINE, prompt_token_ids=None, samples=[s],
                       build={"tool": f"MLC engine metrics ({source})"}, notes=notes)


def parse_metrics_json(text: str) -> Measurement:
    """``EngineMetrics`` as JSON: the metrics dict itself, or a usage document with it under ``extra``."""
    doc = _first_json_object(text)
    if doc is None:
        raise ParseError("MLC engine metrics json: no JSON object found")
    if isinstance(doc.get("extra"), dict):
        doc = doc["extra"]
    return _sample_from_metrics(_flatten(doc), "json")


_METRIC_LINE = re.compile(r"^([A-Za-z_][\w{}=,]*)\s+" + _NUM + r"\s*$", re.MULTILINE)


def parse_metrics_text(text: str) -> Measurement:
    """``EngineMetrics.prometheus_text()`` (what ``/metrics`` shows): ``key<TAB>value`` lines."""
    flat = {k: _float(v) for k, v in _METRIC_LINE.findall(text)}
    if not flat:
        raise ParseError("MLC engine metrics text: no 'key<TAB>value' lines found")
    return _sample_from_metrics(flat, "text")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}_"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = v
    return out


def _first_json_object(text: str) -> dict | None:
    decoder = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch == "{":
            try:
                obj, _ = decoder.raw_decode(text, i)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                return obj
    return None


def _int(v) -> int | None:
    return None if v is None else int(v)
