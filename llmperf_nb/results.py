"""Result files: one versioned JSON document per (model, GPU, engine) cell.

The schema is ``llmperf_nb/schema/result.schema.json`` (documented in docs/results.md). Files are
written atomically; the loader refuses schema versions it does not know.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

from . import points as points_mod
from . import stats
from .exceptions import SchemaError
from .jsonfile import write_json
from .layout import RESULT_FILE as RESULT_NAME

# History of the result format:
# 1 (2026-11): first version.
# 2 (2026-11): workloads: ``workload`` (kind single, sweep or serve, with its parameters) and, for sweep and
#    serve, ``points``: per (batch size, prompt length) raw repetition samples, or per concurrency level raw
#    per-request records, each with its statistics. A version-1 file reads as a single workload.
SCHEMA_VERSION = 2
KNOWN_VERSIONS = (1, 2)

#: Per-sample metrics summarized at the top level of a result.
METRICS = ("prefill_tok_s", "decode_tok_s", "ttft_s")


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def build(
    *,
    cell,
    status: str,
    started_at: str,
    engine_label: str,
    engine_version: str | None = None,
    weights: dict | None = None,
    hardware: dict | None = None,
    measurement=None,
    error: dict | None = None,
    extra: dict | None = None,
) -> dict:
    """A result document. ``measurement`` (engines.base.Measurement) is None for failed cells."""
    samples = measurement.samples if measurement else []
    warm = measurement.warmup_samples if measurement else []
    prompt_actual = [s["prompt_tokens"] for s in samples if s.get("prompt_tokens") is not None]
    gen_actual = [s["gen_tokens"] for s in samples if s.get("gen_tokens") is not None]
    doc = {
        "schema_version": SCHEMA_VERSION,
        "run": cell.run,
        "cell_id": cell.id,
        "status": status,
        "error": error,
        "engine": cell.engine.name,
        "engine_label": engine_label,
        "engine_config": dict(cell.engine.options),
        "engine_version": engine_version or (measurement.engine_version if measurement else None),
        "model": cell.model,
        "quantization": cell.quantization,
        "weights": weights or {"source": cell.weights, "synthetic": cell.weights == "synthetic"},
        "gpu": {"name": cell.gpu.name, "count": cell.gpu.count, **((hardware or {}).get("gpu") or {})},
        "hardware": hardware or {},
        "prompt": cell.prompt,
        "prompt_token_ids": measurement.prompt_token_ids if measurement else None,
        "prompt_tokens": {
            "requested": len(measurement.prompt_token_ids) if measurement and measurement.prompt_token_ids else None,
            "actual": min(prompt_actual) if prompt_actual else None,
        },
        "gen_tokens": {"requested": cell.gen_len, "actual": min(gen_actual) if gen_actual else None},
        "repetitions": {"requested": cell.repetitions, "actual": len(samples), "warmup": len(warm)},
        "samples": samples,
        "warmup_samples": warm,
        **{m: stats.summarize([s.get(m) for s in samples]) for m in METRICS},
        "token_latency_s": stats.percentiles([t for s in samples for t in s.get("token_latencies_s") or []]),
        "peak_mem_bytes": measurement.peak_mem_bytes if measurement else None,
        "peak_mem_kind": measurement.peak_mem_kind if measurement else None,
        "energy": measurement.energy if measurement else None,
        "build": measurement.build if measurement else {},
        "notes": measurement.notes if measurement else [],
        "params": cell.to_dict(),
        "started_at": started_at,
        "finished_at": now(),
    }
    doc.update(_workload(cell, measurement))
    doc.update(extra or {})
    doc["work"] = work_check(doc)
    return doc


SINGLE = {"kind": "single"}


def _workload(cell, measurement) -> dict:
    """The cell's workload and, for a sweep or serving cell, its points with their statistics."""
    workload = dict(getattr(cell, "workload", None) or SINGLE)
    if workload["kind"] == "single":
        return {"workload": workload}
    raw = (measurement.points if measurement else None) or []
    return {"workload": workload, "points": [points_mod.summarize(workload["kind"], p, workload) for p in raw]}


def kind(doc: dict) -> str:
    """A result's workload kind; files written before workloads (version 1) ran the single one."""
    return (doc.get("workload") or SINGLE)["kind"]


def work_check(doc: dict) -> dict:
    """Did every measured repetition do the same work? Same prompt ids, exactly gen_len tokens, and
    the same generated token ids (compared by digest; results written before ids were kept compare
    their first 8 ids). ``problems`` lists what keeps the cell from being a clean number;
    ``identical_tokens`` is None where no ids were recorded (nothing to compare). A sweep or serving
    result: the problems of its points, each named by its point."""
    if kind(doc) != "single":
        found = [f"{points_mod.key(kind(doc), p)}: {q}" for p in doc.get("points") or [] for q in p.get("problems", [])]
        return {"identical_tokens": None, "token_ids_sha256": None, "compared": None, "problems": found}
    samples = doc.get("samples") or []
    want_gen = doc["gen_tokens"]["requested"]
    prompt = doc.get("prompt_token_ids")
    problems = []
    gens = sorted({s.get("gen_tokens") for s in samples})
    if samples and gens != [want_gen]:
        problems.append(f"repetitions generated {', '.join(map(str, gens))} tokens, not exactly {want_gen}")
    if prompt and any(s.get("prompt_tokens") not in (None, len(prompt)) for s in samples):
        problems.append(f"repetitions ran a prompt of other than its {len(prompt)} token ids")
    keys = [_tokens_key(s) for s in samples]
    identical, digest, compared = None, None, None
    if samples and all(k is not None for k in keys):
        compared = "token_ids_sha256" if all(k[0] == "sha256" for k in keys) else "first 8 token ids"
        identical = len(set(keys)) == 1
        digest = keys[0][1] if identical and keys[0][0] == "sha256" else None
        if not identical:
            problems.append(f"the {len(samples)} measured repetitions decoded {len(set(keys))} different token "
                            f"sequences{_divergence(samples)}")
    return {"identical_tokens": identical, "token_ids_sha256": digest, "compared": compared,
            "problems": problems}


def _divergence(samples: list[dict]) -> str:
    """Where the sequences part: from the first token (the prefill saw other state: leaked state or
    other work) or later (the same work until then, as non-deterministic kernels on near-tied logits would
    give; the check cannot tell which kernel, nor rule out state that matters only later: the notes do)."""
    seqs = [s.get("token_ids") for s in samples]
    if not all(seqs):
        return ""
    first = min((next((i for i, (a, b) in enumerate(zip(seqs[0], q, strict=False)) if a != b), len(q)) for q in seqs[1:]),
                default=0)
    if first == 0:
        return ", differing from the first token on (state leaked between repetitions, or other work)"
    return (f", all alike for the first {first} tokens and parting after (the same work until then; consistent "
            "with non-deterministic kernels flipping a near tie between logits, a cause this check does not measure)")


def _tokens_key(sample: dict) -> tuple[str, str] | None:
    if sample.get("token_ids_sha256"):
        return ("sha256", sample["token_ids_sha256"])
    if sample.get("first_token_ids"):
        return ("first8", ",".join(map(str, sample["first_token_ids"][:8])))
    return None


def problems(doc: dict) -> list[str]:
    """Why an ok result is not a clean number (it is then marked and left out of comparisons)."""
    if doc.get("status") != "ok":
        return []
    return work_check(doc)["problems"]


def check_counts(doc: dict) -> str | None:
    """Why an ok-looking result is not a result (ran fewer tokens than asked), or None."""
    if kind(doc) != "single":
        return _check_points(doc)
    want, got = doc["gen_tokens"]["requested"], doc["gen_tokens"]["actual"]
    if got is None:
        return "no samples were measured"
    if got < want:
        return f"generated {got} tokens of the {want} requested: the run stopped early"
    reps = doc["repetitions"]
    if reps["actual"] < reps["requested"]:
        return f"measured {reps['actual']} repetitions of the {reps['requested']} requested"
    return None


def _check_points(doc: dict) -> str | None:
    """A sweep or serving result measured every point its workload asked for."""
    w, pts = doc["workload"], doc.get("points") or []
    if w["kind"] == "sweep":
        want = [(b, p) for b in w["batch_sizes"] for p in w["prompt_lengths"]]
        got = [(p["batch_size"], p["prompt_tokens"]) for p in pts]
    else:
        want, got = list(w["concurrency"]), [p["concurrency"] for p in pts]
    missing = [x for x in want if x not in got]
    if missing:
        return f"measured {len(got)} of the {len(want)} points asked for (missing {missing[0]})"
    if w["kind"] == "sweep" and any(len(p["samples"]) < doc["repetitions"]["requested"] for p in pts):
        return "a point has fewer repetitions than requested"
    return None


def write(doc: dict, path: Path) -> Path:
    """Validate, then write atomically: a reader sees the old file or the new, never half of one."""
    validate(doc, source=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_json(path, doc, allow_nan=False)


def load(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except IsADirectoryError:
        raise SchemaError(f"{path}: a folder where a result file should be") from None
    except UnicodeDecodeError:
        raise SchemaError(f"{path}: not a result file (not UTF-8 text)") from None
    except OSError as e:
        raise SchemaError(f"{path}: cannot be read ({e.strerror or e})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise SchemaError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except RecursionError:
        raise SchemaError(f"{path}: not a result file (nested too deeply)") from None
    validate(doc, source=str(path))
    return doc


def load_dir(results_dir: str | Path) -> list[dict]:
    """Every result file below ``results_dir``, sorted by cell id. A name that is there but cannot
    be read (a folder, a dangling link, a link loop) is an error, never a cell silently left out."""
    paths = []
    for folder, _dirs, names in os.walk(results_dir):
        if RESULT_NAME in names or os.path.lexists(os.path.join(folder, RESULT_NAME)):
            paths.append(Path(folder) / RESULT_NAME)
    return sorted((load(p) for p in sorted(paths)), key=lambda d: d["cell_id"])


def validate(doc: dict, source: str = "<result>") -> None:
    import jsonschema

    version = doc.get("schema_version") if isinstance(doc, dict) else None
    if version not in KNOWN_VERSIONS:
        known = ", ".join(map(str, KNOWN_VERSIONS))
        raise SchemaError(
            f"{source}: schema_version {version!r} is not one this llmperf-nb knows ({known}); "
            "upgrade llmperf-nb to read it"
        )
    try:
        jsonschema.validate(doc, _schema())
    except jsonschema.ValidationError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        raise SchemaError(f"{source}: invalid result at {where}: {e.message[:200]}") from None
    problem = _bad_value(doc)
    if problem:
        raise SchemaError(f"{source}: invalid result at {problem}")


#: times, rates, counts and energies, which a measurement never makes negative
_NON_NEGATIVE = {
    "prefill_s", "prefill_tok_s", "ttft_s", "decode_s", "decode_tok_s", "token_latencies_s", "decode_energy_j",
    "decode_mean_w", "prompt_tokens", "gen_tokens", "mean", "median", "std", "min", "max", "p50", "p90", "p99",
    "n", "requested", "actual", "warmup", "peak_mem_bytes", "per_seq_decode_tok_s", "e2e_s", "itl_s", "tpot_s",
    "output_tok_s", "requests_per_s", "goodput_req_s", "output_tokens", "duration_s",
}
_MEASURED = {"samples", "warmup_samples", "token_latency_s", "repetitions", "points", *METRICS}


def _bad_value(value, where: str = "", key: str = "", measured: bool = False) -> str | None:
    """Where the document holds a number that is not finite, or a negative time, rate or count."""
    if isinstance(value, dict):
        for k, v in value.items():
            found = _bad_value(v, f"{where}/{k}" if where else str(k), k, measured or k in _MEASURED)
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _bad_value(v, f"{where}/{i}", key, measured)
            if found:
                return found
    elif isinstance(value, float) and not math.isfinite(value):
        return f"{where}: {value} is not a number a result may hold"
    elif measured and key in _NON_NEGATIVE and isinstance(value, int | float) and value < 0:
        return f"{where}: {value} is negative (a time, rate or count)"
    return None


@lru_cache(maxsize=1)
def _schema() -> dict:
    text = resources.files("llmperf_nb").joinpath("schema/result.schema.json").read_text()
    return json.loads(text)
