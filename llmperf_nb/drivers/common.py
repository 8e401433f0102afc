"""The timing loop every driver shares, so that every engine is measured the same way.

An engine's driver supplies a *stepper*: ``reset()`` clears its cache, ``prefill(ids)`` runs the
prompt and returns the greedy next token, ``decode(token)`` feeds one token and returns the next.
Both return a token id on the host, which forces the device to finish: what is timed is done.
Drivers whose engine has no per-token API build samples with :func:`sample` directly.

Token 1 comes from the prefill (time to first token); tokens 2..gen_len each cost one decode
pass, so decode tok/s = (gen_len - 1) / decode time and each pass is one per-token latency.

Every sample keeps all the token ids it generated (``token_ids``) and their digest, so that a
reader can check that every repetition did the same work (:mod:`llmperf_nb.results` does).

Python's garbage collector, one policy for every in-process engine (:data:`GC_POLICY`): once the
engine is loaded, ``gc.collect()`` then ``gc.freeze()`` (what servers do after start-up: the
loaded model's objects are never scanned again); during each repetition the cyclic collector is
off, and it runs between repetitions, outside the timed span. Without this a collection of a
large heap lands inside some token's latency (0.5-0.9 s stalls were seen in HF transformers).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import statistics
import time
from typing import Protocol

from llmperf_nb import telemetry
from llmperf_nb.jsonfile import write_json


class Stepper(Protocol):
    def reset(self) -> None: ...
    def prefill(self, ids: list[int]) -> int: ...
    def decode(self, token: int) -> int: ...


def add_workload_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--prompt-ids", required=True, help="comma-separated prompt token ids (BOS included)")
    ap.add_argument("--gen-len", type=int, default=256)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--min-time", type=float, default=0.0, help="keep repeating until this many seconds are measured")
    ap.add_argument("--max-reps", type=int, default=1000)
    ap.add_argument("--gpus", default="", help="comma-separated GPU indices to sample with NVML (empty: none)")
    ap.add_argument("--out", required=True)


def add_sweep_args(ap: argparse.ArgumentParser) -> None:
    """A sweep's grid; ``--prompt-ids`` then seeds every prompt length (:func:`prompt_of_length`)."""
    ap.add_argument("--batch-sizes", required=True, help="comma-separated batch sizes")
    ap.add_argument("--prompt-lengths", required=True, help="comma-separated prompt lengths in tokens")


def parse_ids(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def sample(prompt_tokens: int, generated: list[int], t0: float, t_first: float, t_last: float,
           latencies: list[float], nvml=None, decode_start: float | None = None) -> dict:
    """``decode_start``: when the first decode pass began (``t_first`` unless a reading was taken
    between the prefill and the decode, outside the timed span)."""
    decode_start = t_first if decode_start is None else decode_start
    decode_s = t_last - decode_start
    s = {
        "prompt_tokens": prompt_tokens,
        "gen_tokens": len(generated),
        "ttft_s": t_first - t0,
        "prefill_s": t_first - t0,
        "prefill_tok_s": prompt_tokens / (t_first - t0),
        "decode_s": decode_s,
        "decode_tok_s": (len(generated) - 1) / decode_s if decode_s > 0 else None,
        "token_latencies_s": latencies,
        "token_ids": list(generated),
        "token_ids_sha256": token_digest(generated),
    }
    if nvml is not None:
        s["decode_energy_j"] = nvml.energy_joules(decode_start, t_last)
        s["decode_mean_w"] = nvml.mean_watts(decode_start, t_last)
    return s


def token_digest(ids) -> str:
    """sha256 of the ids written as decimal numbers joined by commas: equal digests, equal work."""
    return hashlib.sha256(",".join(str(int(i)) for i in ids).encode()).hexdigest()


GC_POLICY = ("gc.collect() + gc.freeze() after loading; cyclic collector off during each repetition, "
             "run between repetitions (untimed)")


def generate(stepper: Stepper, ids: list[int], gen_len: int, nvml=None) -> dict:
    """One repetition: prefill, then greedy decoding until ``gen_len`` tokens exist (EOS ignored).

    With ``nvml``, the GPUs' energy counters are read just before and just after the decode, outside
    the timed span.
    """
    stepper.reset()
    t0 = time.perf_counter()
    token = stepper.prefill(ids)
    t_first = time.perf_counter()
    if nvml is not None:
        nvml.mark()
    decode_start = last = time.perf_counter()
    generated, latencies = [token], []
    for _ in range(gen_len - 1):
        token = stepper.decode(token)
        now = time.perf_counter()
        latencies.append(now - last)
        last = now
        generated.append(token)
    if nvml is not None:
        nvml.mark()
    return sample(len(ids), generated, t0, t_first, last, latencies, nvml, decode_start)


class BatchStepper(Protocol):
    """A batched API: B sequences at once, each in its own slot of the engine's KV cache."""

    def reset(self) -> None: ...
    def prefill(self, prompts: list[list[int]]) -> list[int]: ...
    def decode(self, tokens: list[int]) -> list[int]: ...


def prompt_of_length(ids: list[int], n: int) -> list[int]:
    """A prompt of exactly ``n`` ids: the first (BOS), then the prompt's other ids over and over."""
    body = ids[1:] or ids
    return [ids[0], *(body[i % len(body)] for i in range(n - 1))][:n]


def generate_batch(stepper: BatchStepper, ids: list[int], batch: int, gen_len: int, nvml=None) -> dict:
    """One repetition of a sweep point: ``batch`` copies of the prompt prefilled together, then
    ``gen_len - 1`` decode steps of one token per sequence (EOS ignored). One step is one latency."""
    stepper.reset()
    t0 = time.perf_counter()
    tokens = stepper.prefill([list(ids)] * batch)
    t_first = time.perf_counter()
    if nvml is not None:
        nvml.mark()
    decode_start = last = time.perf_counter()
    seqs, latencies = [[t] for t in tokens], []
    for _ in range(gen_len - 1):
        tokens = stepper.decode(tokens)
        now = time.perf_counter()
        latencies.append(now - last)
        last = now
        for seq, t in zip(seqs, tokens, strict=True):
            seq.append(t)
    if nvml is not None:
        nvml.mark()
    s = sample(len(ids), seqs[0], t0, t_first, last, latencies, nvml, decode_start)
    s.update(batch_size=batch, gen_tokens=min(map(len, seqs)), prefill_tok_s=batch * len(ids) / (t_first - t0),
             per_seq_decode_tok_s=s["decode_tok_s"],
             decode_tok_s=batch * (len(seqs[0]) - 1) / s["decode_s"] if s["decode_s"] > 0 else None,
             **batch_digest(seqs))
    return s


def batch_digest(seqs: list[list[int]]) -> dict:
    """A batch's work in a sample: ``token_ids_sha256`` over every sequence's ids (equal digests in every
    repetition: the same work) and how many distinct sequences it decoded."""
    digests = [token_digest(q) for q in seqs]
    return {"token_ids_sha256": hashlib.sha256(";".join(digests).encode()).hexdigest(),
            "distinct_sequences": len(set(digests))}


class PointSteppers:
    """``run_point`` for :func:`sweep` from a driver's batched stepper: ``make(batch, max_len)`` makes one per
    (batch size, prompt length); the previous one is let go first, so that each point's memory is its own:
    a stepper with ``close()`` is closed, then ``after_release()`` runs with no reference to it left
    (``torch.cuda.empty_cache``, which can only give back what nothing holds)."""

    def __init__(self, make, gen_len: int, after_release=None):
        self.make, self.gen_len, self.after_release = make, gen_len, after_release
        self.key = self.stepper = None

    def __call__(self, ids: list[int], batch: int, nvml=None) -> dict:
        if (batch, len(ids)) != self.key:
            self.release()
            self.stepper = self.make(batch, len(ids) + self.gen_len)
            self.key = (batch, len(ids))
        return generate_batch(self.stepper, ids, batch, self.gen_len, nvml)

    def release(self) -> None:
        old, self.stepper, self.key = self.stepper, None, None
        if old is None:
            return
        if hasattr(old, "close"):
            old.close()
        del old
        if self.after_release is not None:
            self.after_release()


def sweep(run_point, args, ids: list[int], continuous: bool = False) -> dict:
    """Every point of the grid, each measured as :func:`measure` measures a cell (warm-up, repetitions).
    ``run_point(prompt_ids, batch, nvml)`` returns one sample (``continuous``: as in :func:`measure`).
    Returns the raw document's timing part."""
    points = []
    for batch in parse_ids(args.batch_sizes):
        for length in parse_ids(args.prompt_lengths):
            p_ids = prompt_of_length(ids, length)
            doc = measure(lambda nvml, p=p_ids, b=batch: run_point(p, b, nvml), args, continuous)
            points.append({"batch_size": batch, "prompt_tokens": length, "gen_tokens": args.gen_len, **doc})
            last = doc["samples"][-1]
            print(f"B={batch} P={length}: decode {last['decode_tok_s']:.2f} tok/s total, "
                  f"{last['per_seq_decode_tok_s']:.2f} per sequence; prefill {last['prefill_tok_s']:.2f} tok/s",
                  flush=True)
    return {"points": points, "samples": [], "warmup_samples": [], "gc_policy": GC_POLICY,
            "peak_mem_bytes": max((p["peak_mem_bytes"] or 0) for p in points) or None,
            "peak_mem_kind": points[0]["peak_mem_kind"] if points else None}


def measure(one_run, args, continuous: bool = False, between=None) -> dict:
    """Warm-up runs, then measured runs until both ``--reps`` and ``--min-time`` are met.

    ``one_run(nvml)`` returns a sample. Returns the raw document's timing part. ``continuous``:
    sample the GPUs on a thread, for engines whose timestamps come from inside the engine (vLLM),
    where readings at marks around the decode cannot be taken. ``between(measured)``: called after
    every repetition, outside its timing (``measured`` False after a warm-up one): an in-process
    cross-check run there alternates with the harness, so that a drift in the machine's speed
    reaches both sides alike.
    """
    indices = [int(i) for i in args.gpus.split(",") if i.strip()] if args.gpus else []
    nvml = telemetry.gpu_sampler(indices, continuous=continuous) if indices else None
    warm, samples = [], []
    started = time.perf_counter()
    gc.collect()
    gc.freeze()  # everything alive now is the loaded engine: never scanned again
    with nvml if nvml is not None else _Null():
        for _ in range(args.warmup):
            warm.append(untouched_by_gc(one_run, nvml))
            if between is not None:
                between(False)
        measured_from = time.perf_counter()
        while len(samples) < args.reps or (
            time.perf_counter() - measured_from < args.min_time and len(samples) < args.max_reps
        ):
            samples.append(untouched_by_gc(one_run, nvml))
            if between is not None:
                between(True)
    doc = {"warmup_samples": warm, "samples": samples, "wall_s": time.perf_counter() - started,
           "gc_policy": GC_POLICY}
    if nvml is not None:
        doc["peak_mem_bytes"], doc["peak_mem_kind"] = nvml.peak_bytes, nvml.memory_kind
        doc["energy_source"] = nvml.source
    else:
        doc["peak_mem_bytes"], doc["peak_mem_kind"] = telemetry.process_peak_rss_bytes(), "process_max_rss"
    return doc


def compare_with_tool(tool: str, argv: list[str], theirs: list[float], doc: dict,
                      digests: list[str] | None = None, **extra) -> dict:
    """The ``crosscheck`` record every driver writes: the engine's own tool's decode tok/s samples
    against the harness's measured ones; with ``digests`` (sha256 of each of the tool's token
    sequences) whether it decoded the same tokens. ``extra``: what the tool adds (build, stops)."""
    ours = [s["decode_tok_s"] for s in doc["samples"]]
    mean_theirs, mean_ours = sum(theirs) / len(theirs), sum(ours) / len(ours)
    out = {"tool": tool, "argv": argv, "decode_tok_s_samples": theirs, "decode_tok_s_mean": mean_theirs,
           "harness_decode_tok_s_mean": mean_ours, "difference": mean_ours / mean_theirs - 1, **extra}
    if digests is not None:
        out["same_tokens_as_harness"] = set(digests) == {s["token_ids_sha256"] for s in doc["samples"]}
    return out


def median_token_latencies(doc: dict, theirs: list[list[float]]) -> dict:
    """Median per-token decode latency of the tool's measured runs and of the harness's samples, each
    pooled over its runs, and their ratio: an eager decode bound by the host's kernel launches runs in a
    fast and a slow state that come and go within a run, which moves the means of a few runs by more than
    the bound; the medians show the speed of the common state (docs/engines.md, HF transformers)."""
    harness = statistics.median(t for s in doc["samples"] for t in s["token_latencies_s"])
    tool = statistics.median(t for run in theirs for t in run)
    return {"token_latency_p50_s": tool, "harness_token_latency_p50_s": harness, "difference_p50": tool / harness - 1}


def guarded_crosscheck(tool: str, fn, *args) -> dict:
    """Run an engine's own tool after the measurement; if it fails, say how, keeping the measurement
    (the cross-check is then missing from the result and the note says why)."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - any failure of the other tool; it is recorded, not hidden
        print(f"cross-check with {tool} failed: {type(e).__name__}: {e}", flush=True)
        return {"tool": tool, "error": f"{type(e).__name__}: {e}"[:2000]}


def untouched_by_gc(one_run, nvml=None):
    """One repetition with the cyclic collector off; it collects afterwards, outside the timing.
    The in-process cross-checks (HF ``generate()``, ExLlamaV2's generator) run each of their
    repetitions through it too, so both sides of a comparison are timed under one GC policy."""
    gc.disable()
    try:
        return one_run(nvml)
    finally:
        gc.enable()
        gc.collect()


def write(doc: dict, out: str) -> None:
    write_json(out, doc, indent=None)
    if not doc["samples"]:  # a sweep: each point said its line
        return
    last = doc["samples"][-1]
    print(f"decode {last['decode_tok_s']:.2f} tok/s, prefill {last['prefill_tok_s']:.2f} tok/s, "
          f"{len(doc['samples'])} repetitions, {last['gen_tokens']} tokens each", flush=True)


class _Null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return None
