"""The points of a sweep or serving result: statistics from their raw records, and their checks.

A sweep result holds one point per (batch size, prompt length), each with its raw per-repetition
samples; a serving result one point per concurrency level, each with its raw per-request records.
Everything here is computed from those raw records, never from other statistics (docs/statistics.md,
Sweeps and serving).
"""

from __future__ import annotations

import statistics

from . import stats

#: the percentiles of a latency distribution a result keeps
LATENCY_QS = (50, 90, 99)


def summarize(kind: str, point: dict, workload: dict) -> dict:
    """``point`` with its statistics and its ``problems`` added (what keeps it from being a clean number)."""
    return (_sweep if kind == "sweep" else _serve)(dict(point), workload)


def key(kind: str, point: dict) -> str:
    """How a point is named in tables and in ``compare``."""
    if kind == "sweep":
        return f"B={point['batch_size']} P={point['prompt_tokens']}"
    return f"c={point['concurrency']}"


def _sweep(point: dict, workload: dict) -> dict:
    samples = point.get("samples") or []
    for metric in ("decode_tok_s", "per_seq_decode_tok_s", "prefill_tok_s", "ttft_s"):
        point[metric] = stats.summarize([s.get(metric) for s in samples])
    point["token_latency_s"] = stats.percentiles(
        [t for s in samples for t in s.get("token_latencies_s") or []], LATENCY_QS
    )
    problems = []
    gens = sorted({s.get("gen_tokens") for s in samples})
    if not samples:
        problems.append("no repetition was measured")
    elif gens != [workload["gen_len"]]:
        problems.append(f"sequences generated {', '.join(map(str, gens))} tokens, not exactly {workload['gen_len']}")
    split = sorted({s["prefill_steps"] for s in samples if (s.get("prefill_steps") or 1) > 1})
    if split:  # an engine that schedules the batch's prompts itself (vLLM) said it did not prefill them at once
        problems.append(f"the batch's prefill took {', '.join(map(str, split))} engine steps, so decode steps "
                        "overlapped it")
    digests = {s.get("token_ids_sha256") for s in samples}
    if len(digests) > 1:
        problems.append(f"the {len(samples)} repetitions decoded {len(digests)} different token sequences")
    point["problems"] = problems
    return point


def _serve(point: dict, workload: dict) -> dict:
    reqs = point.get("requests") or []
    ok = [r for r in reqs if not r.get("error")]
    duration = point.get("duration_s") or 0.0
    point["ttft_s"] = _latency([r["ttft_s"] for r in ok])
    point["tpot_s"] = _latency([tpot(r) for r in ok])
    point["itl_s"] = _latency([t for r in ok for t in r.get("itl_s") or []])
    point["e2e_s"] = _latency([r["e2e_s"] for r in ok])
    out_tokens = sum(r["output_tokens"] for r in ok)
    good = [r for r in ok if meets(r, workload.get("slo") or {})]
    rate = (lambda n: n / duration) if duration > 0 else (lambda n: None)
    point.update(
        completed=len(ok),
        errored=len(reqs) - len(ok),
        output_tokens=out_tokens,
        output_tok_s=rate(out_tokens),
        requests_per_s=rate(len(ok)),
        goodput_req_s=rate(len(good)),
        slo_attainment=len(good) / len(reqs) if reqs else None,
        tok_s_per_user=_median([decode_tok_s(r) for r in ok]),
    )
    point["token_check"] = token_check(point, ok)
    point["problems"] = _serve_problems(point, ok, reqs, workload)
    return point


def tpot(record: dict) -> float | None:
    """Time per output token of one request: (end - first token) / (output tokens - 1)."""
    n = record["output_tokens"]
    return (record["e2e_s"] - record["ttft_s"]) / (n - 1) if n > 1 else None


def decode_tok_s(record: dict) -> float | None:
    """A request's own decode speed, 1 / TPOT: the tok/s its user sees once the first token is there."""
    t = tpot(record)
    return 1 / t if t else None


def meets(record: dict, slo: dict) -> bool:
    """Does one request meet every service-level objective given (milliseconds)?"""
    values = {
        "ttft_ms": record["ttft_s"],
        "tpot_ms": tpot(record),
        "e2e_ms": record["e2e_s"],
        "itl_ms": max(record.get("itl_s") or [0.0]),
    }
    return all(values[k] is not None and values[k] * 1e3 <= limit for k, limit in slo.items())


def token_check(point: dict, ok: list[dict]) -> dict:
    """The tokens the client received (stream events) against what the server says it generated: each
    response's ``usage``, and the server's own counter (its /metrics, read before and after the level).
    ``equal``: every count the server gave matches the client's; None where the server gave none."""
    client = sum(r["output_tokens"] for r in ok)
    usages = [r.get("server_output_tokens") for r in ok]
    usage = sum(usages) if ok and None not in usages else None
    counter = (point.get("server_tokens") or {}).get("generation")
    same = [n == client for n in (usage, counter) if n is not None]
    return {
        "client_streamed": client,
        "server_usage": usage,
        "server_counter": counter,
        "equal": all(same) if same else None,
        "prompt": {
            "server_usage": sum(r.get("prompt_tokens") or 0 for r in ok),
            "server_counter": (point.get("server_tokens") or {}).get("prompt"),
            "cached": sum(r.get("cached_prompt_tokens") or 0 for r in ok),
        },
    }


def _serve_problems(point: dict, ok: list[dict], reqs: list[dict], workload: dict) -> list[str]:
    problems = []
    if not reqs:
        problems.append("no request was made")
    if len(ok) < len(reqs):
        errors = sorted({r.get("error") or "no error given" for r in reqs if r.get("error")})
        problems.append(f"{len(reqs) - len(ok)} of {len(reqs)} requests failed: {'; '.join(errors)[:300]}")
    counts = sorted({r["output_tokens"] for r in ok})
    if ok and counts != [workload["output_len"]]:
        problems.append(f"requests returned {', '.join(map(str, counts))} tokens, not exactly {workload['output_len']}")
    check = point["token_check"]
    if check["equal"] is False:
        problems.append(
            f"the client received {check['client_streamed']} tokens; the server's usage says "
            f"{check['server_usage']}, its counter {check['server_counter']}"
        )
    if check["prompt"]["cached"]:
        problems.append(f"{check['prompt']['cached']} prompt tokens came from the server's cache: prefill not measured")
    return problems


def _latency(values: list) -> dict | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {**stats.percentiles(values, LATENCY_QS), "mean": statistics.fmean(values)}


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None
