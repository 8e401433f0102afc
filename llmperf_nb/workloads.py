"""Workload kinds: what a cell runs once its engine is loaded.

A params file's ``workloads`` lists them; each multiplies the matrix (models x GPUs x engines x
workloads). A cell carries its workload as a plain dict (``Cell.workload``), validated here:

- ``single``: the original workload, one prompt, ``gen_len`` greedy tokens, batch 1 (the default).
- ``sweep``: offline, through the engine's batched API: every batch size x prompt length, each
  sequence ``gen_len`` tokens, EOS ignored. An engine with no batched API says so in its row.
- ``serve``: the engine's own OpenAI-compatible server on 127.0.0.1, driven by a load generator at
  each concurrency level with fixed input and output lengths, EOS ignored; goodput under ``slo``. A level
  of concurrency c sends ``rounds`` x c requests.

Standard library only: params, cells and the drivers' engines read it.
"""

from __future__ import annotations

from .exceptions import ConfigError, short

KINDS = ("single", "sweep", "serve")
SINGLE = {"kind": "single"}
#: bounds of a sweep or serving workload: beyond them a typo, not a benchmark
MAX_BATCH = 4096
MAX_LEVELS = 32
MAX_TOKENS = 1 << 20
MAX_CONCURRENCY = 4096
MAX_REQUESTS = 100_000

_KEYS = {
    "single": {"kind": None},
    "sweep": {"kind": None, "batch_sizes": list, "prompt_lengths": list, "gen_len": int},
    "serve": {"kind": None, "concurrency": list, "input_len": int, "output_len": int, "rounds": int, "slo": dict},
}
_SLO_KEYS = ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms")


def validate(raw, gen_len: int) -> dict:
    """A workload entry of a params file as a complete, checked dict (defaults filled in)."""
    if isinstance(raw, str):
        raw = {"kind": raw}
    if not isinstance(raw, dict) or raw.get("kind") not in KINDS:
        got = raw.get("kind") if isinstance(raw, dict) else raw
        raise ConfigError(f"each entry needs a kind, one of: {', '.join(KINDS)}; got {short(got)}")
    kind = raw["kind"]
    unknown = sorted(set(raw) - set(_KEYS[kind]))
    if unknown:
        raise ConfigError(f"{kind}: unknown key {short(unknown[0])}; valid keys: {', '.join(_KEYS[kind])}")
    if kind == "single":
        return dict(SINGLE)
    return _sweep(raw, gen_len) if kind == "sweep" else _serve(raw)


def _sweep(raw: dict, gen_len: int) -> dict:
    for key in ("batch_sizes", "prompt_lengths"):
        if key not in raw:
            raise ConfigError(f"sweep: {key} is missing; give a list, e.g. [1, 4, 16]")
    out = {
        "kind": "sweep",
        "batch_sizes": _levels("sweep", "batch_sizes", raw["batch_sizes"], MAX_BATCH),
        "prompt_lengths": _levels("sweep", "prompt_lengths", raw["prompt_lengths"], MAX_TOKENS),
        "gen_len": _count("sweep", "gen_len", raw.get("gen_len", gen_len), 2, MAX_TOKENS),
    }
    return out


def _serve(raw: dict) -> dict:
    for key in ("concurrency", "input_len", "output_len"):
        if key not in raw:
            raise ConfigError(f"serve: {key} is missing")
    levels = _levels("serve", "concurrency", raw["concurrency"], MAX_CONCURRENCY)
    rounds = _count("serve", "rounds", raw.get("rounds", 4), 1, MAX_REQUESTS // max(levels))
    return {
        "kind": "serve",
        "concurrency": levels,
        "input_len": _count("serve", "input_len", raw["input_len"], 1, MAX_TOKENS),
        "output_len": _count("serve", "output_len", raw["output_len"], 2, MAX_TOKENS),
        "rounds": rounds,
        "slo": _slo(raw.get("slo", {})),
    }


def requests_at(workload: dict, concurrency: int) -> int:
    """Requests a serving level sends: ``rounds`` for each of its ``concurrency`` streams, so that every
    level keeps that many requests in flight for about the same time."""
    return workload["rounds"] * concurrency


def _levels(kind: str, key: str, value, high: int) -> list[int]:
    if not isinstance(value, list) or not value or len(value) > MAX_LEVELS:
        raise ConfigError(f"{kind}: {key} must be a list of 1 to {MAX_LEVELS} whole numbers, got {short(value)}")
    out = [_count(kind, key, v, 1, high) for v in value]
    if len(set(out)) != len(out):
        raise ConfigError(f"{kind}: {key} lists a value twice: {short(value)}")
    return sorted(out)


def _count(kind: str, key: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{kind}: {key} must be a whole number from {low} to {high}, got {short(value)}")
    return value


def _slo(value) -> dict:
    """Service-level objectives in ms: a request is good when it meets every one given."""
    if not isinstance(value, dict):
        raise ConfigError(f"serve: slo must be a mapping of {', '.join(_SLO_KEYS)} to milliseconds")
    for key, ms in value.items():
        if key not in _SLO_KEYS:
            raise ConfigError(f"serve: slo: unknown key {short(key)}; valid keys: {', '.join(_SLO_KEYS)}")
        if isinstance(ms, bool) or not isinstance(ms, int | float) or not 0 < ms < 1e9:
            raise ConfigError(f"serve: slo: {key} must be a positive number of milliseconds, got {short(ms)}")
    return {k: float(v) for k, v in value.items()}


def kind(workload: dict | None) -> str:
    """The kind of a cell's (or result's) workload; cells and results written before workloads are single."""
    return (workload or SINGLE)["kind"]


def max_context(workload: dict, prompt_tokens: int, gen_len: int) -> int:
    """The longest sequence a cell of this workload puts in the model's context."""
    k = kind(workload)
    if k == "sweep":
        return max(workload["prompt_lengths"]) + workload["gen_len"]
    if k == "serve":
        return workload["input_len"] + workload["output_len"]
    return prompt_tokens + gen_len
