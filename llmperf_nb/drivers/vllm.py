"""vLLM benchmark driver, through the offline ``vllm.LLM`` API, and the ``vllm bench latency`` cross-check.

One repetition is one ``LLM.generate`` of the prompt's token ids (``{"prompt_token_ids": ids}``, the
``TokensPrompt`` TypedDict) with ``SamplingParams(max_tokens=min_tokens=gen_len, temperature=0,
ignore_eos=True, detokenize=False)``: batch 1, greedy, exactly ``gen_len`` tokens, no detokenization
(the tokenizer is not even loaded: ``skip_tokenizer_init``), with vLLM's defaults otherwise (CUDA
graphs and torch.compile unless ``--enforce-eager``). Prefix caching is off: repetitions of one
prompt would otherwise skip the prefill.

vLLM has no per-token call that the common stepper could time, so each sample is built from the
timestamps vLLM records itself (``RequestOutput.metrics``, a ``RequestStateStats`` in vLLM V1:
``scheduled_ts``, ``first_token_ts``, ``last_token_ts`` from the engine core's monotonic clock,
``first_token_latency`` measured by the front end from arrival). vLLM fills them only when
statistics are on, so the engine is made with ``disable_log_stats=False`` (``LLM`` turns them off
by default; ``vllm serve`` keeps them on). Then:

* ``ttft_s`` = ``first_token_latency``; ``prefill_s`` = ``first_token_ts - scheduled_ts``;
* ``decode_s`` = ``last_token_ts - first_token_ts`` and ``decode_tok_s = (gen_tokens - 1) / decode_s``,
  the same definition as :mod:`llmperf_nb.drivers.common` (and vLLM's own ``decode_time``);
* ``token_latencies_s``: per-token times from the same engine-core clock. ``LLMEngine.step`` hands
  each engine step's new tokens with that step's timestamp (``EngineCoreOutputs.timestamp``, the
  value that becomes ``first_token_ts`` / ``last_token_ts``) to ``output_processor.process_outputs``;
  :class:`StepClock` wraps that method to note (timestamp, new tokens) per step. Latency of token i
  = its step's timestamp - the previous step's; they add up to ``decode_s``;
* ``e2e_s``: wall time of the ``generate`` call (what ``vllm bench latency`` times);
* ``token_ids``: every generated id, and ``token_ids_sha256`` (:func:`common.token_digest`), as in every
  driver's samples (greedy: identical in every repetition; :func:`llmperf_nb.results.work_check` compares
  the measured ones, and ``identical_tokens`` in the raw document says whether all, warm-up included, were).

Linux's ``time.monotonic`` and ``time.perf_counter`` are both CLOCK_MONOTONIC, shared by every
process, so the engine core's timestamps bound the NVML energy window directly. Where the metrics
are missing the sample keeps ``e2e_s`` only and says so (``timing_source``): no split is invented.

Cross-check (``--crosscheck``): vLLM's own latency benchmark on the same model folder, load format,
dtype and tensor parallelism, input 8 (the prompt's length), output ``gen_len``, batch 1, run FIRST
in a child process (so its engine and GPU memory are gone before ours starts). ``vllm bench
latency`` is ``vllm.entrypoints.cli.benchmark.latency.BenchmarkLatencySubcommand``, whose ``cmd`` is
``vllm.benchmarks.latency.main``; ``python -m llmperf_nb.drivers.vllm bench-latency ARGS`` runs
exactly that parser and ``main`` (the ``vllm`` console script itself imports the API server's
modules: uvicorn, prometheus-fastapi-instrumentator and more, which the GPU bundle leaves out).
It times ``LLM.generate`` of a batch of random prompts, prefill included, so the comparison is
like for like on that: ``output_len / latency`` per iteration against this harness's
``gen_tokens / e2e_s`` per repetition (both: one generate call, an 8-token prefill and
``gen_len`` tokens). It samples at temperature 1 (we: greedy), which costs next to nothing at
batch 1. The result is stored as ``crosscheck`` (the keys every driver's has, with ``basis``); a failure
of the tool, or of reading what it wrote, is recorded there by :func:`common.guarded_crosscheck` and the
measurement goes on.

Multi-GPU (tensor parallelism): NVLink multicast stays off (``NCCL_NVLS_ENABLE=0``,
``TORCH_SYMM_MEM_DISABLE_MULTICAST=1``, ``NVSHMEM_DISABLE_NVLS=1``) and so does vLLM's
symmetric-memory all-reduce (``VLLM_ALLREDUCE_USE_SYMM_MEM=0``), which can use it; vLLM's custom
all-reduce and NCCL stay. Each is a default: a variable already set wins.

Written against the Python sources of the vllm 0.25.0 wheel (vllm/entrypoints/llm.py,
entrypoints/offline_utils.py, outputs.py, sampling_params.py, v1/metrics/stats.py,
v1/engine/llm_engine.py, v1/engine/output_processor.py, benchmarks/latency.py,
entrypoints/cli/benchmark/latency.py).

    python -m llmperf_nb.drivers.vllm --model DIR --load-format dummy --tensor-parallel-size 1 \\
        --prompt-ids 1,1724,... --gen-len 256 --reps 5 --out raw.json [--options '{"crosscheck": true}']
    python -m llmperf_nb.drivers.vllm sweep --model DIR ... --batch-sizes 1,4,16,64 --prompt-lengths 8,512 ...
    python -m llmperf_nb.drivers.vllm bench-latency --model DIR --input-len 8 ...   (= vllm bench latency)

Sweep (``sweep``): one engine for the whole grid; a repetition of a point is one ``LLM.generate`` of B
copies of the prompt (prefix caching off: each is prefilled). The scheduler's token budget
(``max_num_batched_tokens``) is raised to the grid's largest B x P, and ``max_num_seqs`` to its largest B,
so that the B prompts are prefilled in one engine step, then decoded together, as the other engines'
sweeps do; the engine core runs in this process (:data:`SWEEP_ENV`), so that all B requests are queued
before its first step (:func:`batch_sample` counts the steps the prefill took, ``prefill_steps``; more
than one marks the point). The split comes from the same engine-core clock: the prefill ends at the step that gave
the last sequence its first token; decode tok/s (total) = tokens of the steps after it / time to the
last token; per-sequence = (gen_tokens - 1) / that sequence's own decode time; one step is one latency.
No cross-check in a sweep.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

from llmperf_nb import options
from llmperf_nb.drivers import common
from llmperf_nb.jsonfile import write_json
from llmperf_nb.options.vllm import Options

CROSSCHECK_TOOL = "vllm bench latency"
SPLIT = "vLLM RequestOutput.metrics (engine-core timestamps)"
NO_SPLIT = "wall clock of LLM.generate only: vLLM returned no request metrics, so no prefill/decode split"
#: printed before the measured engine starts: the log lines after it are that engine's
ENGINE_MARK = "llmperf-nb: starting the measured vLLM engine"
CROSSCHECK_BASIS = ("output tokens / wall time of one LLM.generate call (8-token prefill + gen_len tokens), "
                    "batch 1, per repetition; vllm bench latency samples at temperature 1, this harness greedily")

#: environment defaults, set before vllm is imported (a value already set wins)
ENV_DEFAULTS = {
    "NCCL_NVLS_ENABLE": "0",
    "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
    "NVSHMEM_DISABLE_NVLS": "1",
    "VLLM_ALLREDUCE_USE_SYMM_MEM": "0",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
}


def set_env_defaults(*more: dict) -> None:
    """:data:`ENV_DEFAULTS` (and ``more``, a sweep's :data:`SWEEP_ENV`) where the environment has no value."""
    for table in (ENV_DEFAULTS, *more):
        for key, value in table.items():
            os.environ.setdefault(key, value)


class StepClock:
    """(engine-core timestamp, new tokens) of every engine step, noted where ``LLMEngine.step``
    passes them to ``output_processor.process_outputs(outputs, engine_core_timestamp, ...)``."""

    def __init__(self, llm=None):
        self.steps: list[tuple[float, int]] = []
        self.installed = False
        proc = getattr(getattr(llm, "llm_engine", None), "output_processor", None)
        real = getattr(proc, "process_outputs", None)
        if real is None:
            return

        def process_outputs(engine_core_outputs, *args, **kwargs):
            ts = kwargs.get("engine_core_timestamp", args[0] if args else None)
            n = sum(len(getattr(o, "new_token_ids", None) or ()) for o in engine_core_outputs)
            if n and ts:
                self.steps.append((float(ts), n))
            return real(engine_core_outputs, *args, **kwargs)

        proc.process_outputs = process_outputs
        self.installed = True

    def reset(self) -> None:
        self.steps = []

    def token_latencies(self, gen_tokens: int) -> list[float] | None:
        """Per-token latencies of tokens 2..gen_tokens (a step of k tokens counts k equal shares),
        or None when the steps do not account for exactly ``gen_tokens`` tokens."""
        if not self.steps or sum(n for _, n in self.steps) != gen_tokens:
            return None
        out: list[float] = []
        (prev, first_n) = self.steps[0]
        out.extend([0.0] * (first_n - 1))  # several tokens in the prefill step: none waited
        for ts, n in self.steps[1:]:
            out.extend([(ts - prev) / n] * n)
            prev = ts
        return out


def sample_from_output(out, prompt_tokens: int, t_call: float, t_done: float, nvml=None,
                       latencies: list[float] | None = None) -> dict:
    """One sample from a ``RequestOutput`` and the wall-clock bounds of the ``generate`` call."""
    tokens = list(out.outputs[0].token_ids)
    s = {"prompt_tokens": prompt_tokens, "gen_tokens": len(tokens), "e2e_s": t_done - t_call,
         "token_ids": tokens, "token_ids_sha256": common.token_digest(tokens)}
    m = getattr(out, "metrics", None)
    first, last = getattr(m, "first_token_ts", 0.0) or 0.0, getattr(m, "last_token_ts", 0.0) or 0.0
    if m is None or first <= 0 or last <= 0:
        s["timing_source"] = NO_SPLIT
        return s
    scheduled = getattr(m, "scheduled_ts", 0.0) or 0.0
    ttft = getattr(m, "first_token_latency", 0.0) or 0.0
    decode_s = last - first
    prefill_s = first - scheduled if scheduled > 0 else None
    s.update(
        ttft_s=ttft if ttft > 0 else None,
        prefill_s=prefill_s,
        prefill_tok_s=prompt_tokens / prefill_s if prefill_s else None,
        decode_s=decode_s,
        decode_tok_s=(len(tokens) - 1) / decode_s if decode_s > 0 else None,
        timing_source=SPLIT,
    )
    return _with_decode_readings(s, latencies, nvml, first, last)


def _with_decode_readings(s: dict, latencies: list[float] | None, nvml, first: float, last: float) -> dict:
    """``s`` with its per-token latencies, where the step clock gave them, and the GPUs' energy over the
    decode (``first`` to ``last``: the engine-core clock, which NVML's sampling thread shares)."""
    if latencies is not None:
        s["token_latencies_s"] = latencies
    if nvml is not None:
        s["decode_energy_j"] = nvml.energy_joules(first, last)
        s["decode_mean_w"] = nvml.mean_watts(first, last)
    return s


def greedy(sampling_params, gen_len: int):
    """Greedy, exactly ``gen_len`` tokens (EOS ignored), no detokenization."""
    return sampling_params(n=1, temperature=0.0, top_p=1.0, max_tokens=gen_len, min_tokens=gen_len, ignore_eos=True,
                           detokenize=False)


def make_llm(args, **scheduler):
    """The engine; ``scheduler``: ``max_num_batched_tokens`` and ``max_num_seqs`` where a sweep sets them."""
    set_env_defaults()
    from vllm import LLM

    return LLM(
        model=args.model,
        load_format=args.load_format,
        tensor_parallel_size=args.tensor_parallel_size,
        dtype=args.dtype,
        quantization=args.quantization,
        gpu_memory_utilization=args.gpu_memory_utilization,
        enforce_eager=args.enforce_eager,
        seed=args.seed,
        max_model_len=args.max_model_len,
        skip_tokenizer_init=True,
        disable_log_stats=False,  # RequestOutput.metrics stays None without statistics
        enable_prefix_caching=False,
        **scheduler,
    )


# -- the cross-check: vllm bench latency ------------------------------------------------------------

def crosscheck_argv(args, input_len: int, json_path: str) -> list[str]:
    """``vllm bench latency`` arguments for the same model and engine settings as the measurement."""
    argv = ["--model", args.model, "--load-format", args.load_format,
            "--tensor-parallel-size", str(args.tensor_parallel_size), "--dtype", args.dtype,
            "--gpu-memory-utilization", str(args.gpu_memory_utilization), "--seed", str(args.seed),
            "--input-len", str(input_len), "--output-len", str(args.gen_len), "--batch-size", "1",
            "--num-iters-warmup", str(max(1, args.warmup)), "--num-iters", str(args.reps),
            "--output-json", json_path, "--skip-tokenizer-init", "--disable-detokenize"]
    if args.quantization:
        argv += ["--quantization", args.quantization]
    if args.enforce_eager:
        argv.append("--enforce-eager")
    if args.max_model_len:
        argv += ["--max-model-len", str(args.max_model_len)]
    return argv


def _bench_latency_json(args) -> str:
    return str(Path(args.out).with_name(Path(args.out).stem + ".bench-latency.json"))


def run_crosscheck(args, input_len: int) -> dict:
    """Run ``vllm bench latency`` in a child process and read what it wrote (raises if it fails:
    :func:`common.guarded_crosscheck` records why)."""
    from llmperf_nb import process

    json_path = _bench_latency_json(args)
    vllm_args = crosscheck_argv(args, input_len, json_path)
    print("llmperf-nb: cross-check first: vllm bench latency " + " ".join(vllm_args), flush=True)
    env = {k: os.environ[k] for k in ENV_DEFAULTS if k in os.environ}
    start = time.perf_counter()
    process.run([sys.executable, "-m", "llmperf_nb.drivers.vllm", "bench-latency", *vllm_args],
                timeout=args.crosscheck_timeout, extra_env=env,
                on_line=lambda line: print("[vllm bench latency] " + line, end="", flush=True))
    return {"argv": ["vllm", "bench", "latency", *vllm_args], "json_path": json_path,
            "doc": json.loads(Path(json_path).read_text()), "seconds": time.perf_counter() - start}


def crosscheck_summary(run: dict, samples: list[dict], gen_len: int, input_len: int) -> dict:
    """The cross-check as stored in the raw document: the keys every driver's has (tool, argv,
    decode_tok_s_samples, decode_tok_s_mean, harness_decode_tok_s_mean, difference), plus ``basis``;
    ``run`` is what :func:`run_crosscheck` returned, or the failure guarded_crosscheck recorded."""
    from llmperf_nb.importers.vllm import parse_latency_json

    check = {"tool": CROSSCHECK_TOOL, "basis": CROSSCHECK_BASIS}
    if "argv" in run:
        check["argv"] = [os.path.basename(a) if i == 0 else a for i, a in enumerate(run["argv"])]
    if "error" in run:
        return {**check, "error": run["error"]}
    theirs = [s["e2e_tok_s"] for s in parse_latency_json(json.dumps(run["doc"]), output_len=gen_len,
                                                         input_len=input_len, batch_size=1).samples]
    ours = [s["gen_tokens"] / s["e2e_s"] for s in samples]
    decode = [s["decode_tok_s"] for s in samples if s.get("decode_tok_s")]
    mean_theirs, mean_ours = sum(theirs) / len(theirs), sum(ours) / len(ours)
    return {**check, "latencies_s": run["doc"]["latencies"], "avg_latency_s": run["doc"].get("avg_latency"),
            "decode_tok_s_samples": theirs, "decode_tok_s_mean": mean_theirs,
            "harness_decode_tok_s_mean": mean_ours,
            "harness_engine_decode_tok_s_mean": sum(decode) / len(decode) if decode else None,
            "difference": mean_ours / mean_theirs - 1, "seconds": run["seconds"]}


def bench_latency(argv: list[str]) -> None:
    """What ``vllm bench latency ARGS`` runs: its parser, then ``vllm.benchmarks.latency.main``."""
    set_env_defaults()
    # the `vllm` CLI's entry point (cli_env_setup) does this before any subcommand
    os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
    from vllm import platforms

    if platforms.current_platform.is_unspecified():  # as vllm/entrypoints/cli/main.py does for `bench`
        from vllm.platforms.cpu import CpuPlatform

        platforms.current_platform = CpuPlatform()
    from vllm.entrypoints.cli.benchmark.latency import BenchmarkLatencySubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(prog="vllm bench latency")
    BenchmarkLatencySubcommand.add_cli_args(parser)
    BenchmarkLatencySubcommand.cmd(parser.parse_args(argv))


# -- the measurement ----------------------------------------------------------------------------------

def bench(args) -> None:
    set_env_defaults()  # before the cross-check's child and before vllm is imported here
    ids = common.parse_ids(args.prompt_ids)
    check_run = (common.guarded_crosscheck(CROSSCHECK_TOOL, run_crosscheck, args, len(ids))
                 if args.crosscheck else None)
    if check_run is not None and "error" in check_run:  # say what was run, as a successful one does
        check_run["argv"] = ["vllm", "bench", "latency", *crosscheck_argv(args, len(ids), _bench_latency_json(args))]

    from vllm import SamplingParams

    print(ENGINE_MARK, flush=True)
    llm = make_llm(args)
    clock = StepClock(llm)
    params = greedy(SamplingParams, args.gen_len)
    prompt = {"prompt_token_ids": ids}

    def one_run(nvml):
        clock.reset()
        t_call = time.perf_counter()
        out = llm.generate([prompt], params, use_tqdm=False)[0]
        t_done = time.perf_counter()
        return sample_from_output(out, len(ids), t_call, t_done, nvml,
                                  clock.token_latencies(len(out.outputs[0].token_ids)))

    doc = common.measure(one_run, args, continuous=True)  # metrics' clock: sample throughout
    doc.update(_facts(args, llm, clock, [doc["warmup_samples"] + doc["samples"]], ids))
    if check_run is not None:
        doc["crosscheck"] = common.guarded_crosscheck(CROSSCHECK_TOOL, crosscheck_summary, check_run,
                                                      doc["samples"], args.gen_len, len(ids))
    _write(doc, args.out)


def sweep_scheduler(batch_sizes: list[int], prompt_lengths: list[int]) -> dict:
    """The scheduler limits under which every point's B prompts are prefilled in one engine step: a token
    budget of the largest B x P (vLLM's own default, 8192 or more, where that is larger) and room for the
    largest B sequences at once (vLLM's default 256, where that is larger)."""
    return {"max_num_batched_tokens": max(8192, max(batch_sizes) * max(prompt_lengths)),
            "max_num_seqs": max(256, max(batch_sizes))}


def batch_sample(outs, prompt_tokens: int, t_call: float, t_done: float, steps: list[tuple[float, int]],
                 nvml=None) -> dict:
    """One repetition of a sweep point from the B ``RequestOutput``s of one ``generate`` call and the
    engine steps :class:`StepClock` noted (engine-core timestamps; the metrics' clock)."""
    seqs = [list(o.outputs[0].token_ids) for o in outs]
    s = {"prompt_tokens": prompt_tokens, "batch_size": len(seqs), "gen_tokens": min(map(len, seqs)),
         "e2e_s": t_done - t_call, "token_ids": seqs[0], **common.batch_digest(seqs)}
    metrics = [getattr(o, "metrics", None) for o in outs]
    firsts = [getattr(m, "first_token_ts", 0.0) or 0.0 for m in metrics]
    lasts = [getattr(m, "last_token_ts", 0.0) or 0.0 for m in metrics]
    if min(firsts) <= 0 or min(lasts) <= 0:
        sys.exit(f"vLLM returned no request metrics for a batch of {len(seqs)}: a sweep point's decode cannot "
                 "be told from its prefill (statistics are on: disable_log_stats=False)")
    scheduled = [getattr(m, "scheduled_ts", 0.0) or 0.0 for m in metrics]
    t_first, t_last = max(firsts), max(lasts)
    after = [(ts, n) for ts, n in steps if ts > t_first]
    if after:  # one step, one latency (every sequence's next token)
        stamps = [ts for ts, _ in after]
        decode_tokens = sum(n for _, n in after)
        latencies = [b - a for a, b in zip([t_first, *stamps[:-1]], stamps, strict=True)]
    else:  # no step clock: only a prefill in one step tells how many tokens came after it
        decode_tokens = sum(len(q) - 1 for q in seqs) if len(set(firsts)) == 1 else None
        latencies = None
    decode_s = t_last - t_first
    prefill_s = t_first - min(scheduled) if min(scheduled) > 0 else None
    ttfts = [getattr(m, "first_token_latency", 0.0) or 0.0 for m in metrics]
    s.update(
        prefill_steps=len(set(firsts)),
        ttft_s=max(ttfts) if min(ttfts) > 0 else None,
        prefill_s=prefill_s,
        prefill_tok_s=len(seqs) * prompt_tokens / prefill_s if prefill_s else None,
        decode_s=decode_s,
        decode_tok_s=decode_tokens / decode_s if decode_tokens and decode_s > 0 else None,
        per_seq_decode_tok_s=statistics.fmean((len(q) - 1) / (b - a) for q, a, b in zip(seqs, firsts, lasts, strict=True))
        if all(b > a for a, b in zip(firsts, lasts, strict=True)) else None,
        timing_source=SPLIT,
    )
    return _with_decode_readings(s, latencies, nvml, t_first, t_last)


#: the sweep's engine core runs in this process (vLLM's in-process client): ``LLM.generate`` then hands all B
#: requests to the scheduler before its first step. With the core in its own process (the default) the
#: requests reach it one by one over a socket while it already steps, so the first ones are prefilled before
#: the last arrive (``prefill_steps`` > 1). A value already set wins.
SWEEP_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}


def sweep(args) -> None:
    """Every batch size x prompt length on one engine (module docstring, Sweep)."""
    set_env_defaults(SWEEP_ENV)
    from vllm import SamplingParams

    ids = common.parse_ids(args.prompt_ids)
    scheduler = sweep_scheduler(common.parse_ids(args.batch_sizes), common.parse_ids(args.prompt_lengths))
    print(ENGINE_MARK, flush=True)
    llm = make_llm(args, **scheduler)
    clock = StepClock(llm)
    params = greedy(SamplingParams, args.gen_len)

    def run_point(p_ids, batch, nvml):
        clock.reset()
        t_call = time.perf_counter()
        outs = llm.generate([{"prompt_token_ids": p_ids}] * batch, params, use_tqdm=False)
        t_done = time.perf_counter()
        return batch_sample(outs, len(p_ids), t_call, t_done, list(clock.steps), nvml)

    doc = common.sweep(run_point, args, ids, continuous=True)  # metrics' clock: sample throughout
    groups = [p["warmup_samples"] + p["samples"] for p in doc["points"]]
    doc.update(_facts(args, llm, clock, groups, ids, **scheduler, **{k: os.environ.get(k) for k in SWEEP_ENV}))
    common.write(doc, args.out)


def _facts(args, llm, clock: StepClock, groups: list[list[dict]], ids: list[int], **settings) -> dict:
    """What the raw document says besides the samples: versions, settings, how the times were taken.
    ``groups``: the repetitions, warm-up included, that must decode the same tokens: one group for the
    decode workload, one per point for a sweep (points differ in prompt and batch, so in their tokens)."""
    import vllm

    sources = {s.get("timing_source") for runs in groups for s in runs}
    model_config = llm.llm_engine.model_config
    return dict(
        engine_version=f"vllm {vllm.__version__}",
        versions=_versions(vllm),
        prompt_token_ids=ids,
        settings={"load_format": args.load_format, "tensor_parallel_size": args.tensor_parallel_size,
                  "dtype": args.dtype, "gpu_memory_utilization": args.gpu_memory_utilization,
                  "enforce_eager": args.enforce_eager, "enable_prefix_caching": False,
                  "quantization_arg": args.quantization, "max_model_len": model_config.max_model_len,
                  **settings,
                  **{k: os.environ.get(k) for k in ENV_DEFAULTS if k.startswith(("NCCL", "TORCH", "NVSHMEM", "VLLM"))}},
        timing_source=sources.pop() if len(sources) == 1 else sorted(map(str, sources)),
        quantization_in_use=model_config.quantization,
        identical_tokens=all(s["token_ids"] == runs[0]["token_ids"] for runs in groups for s in runs),
        token_latency_source=("engine-core timestamps of each engine step (output_processor.process_outputs)"
                              if clock.installed else "none: vLLM's LLMEngine has no output_processor.process_outputs"),
    )


def _versions(vllm) -> dict:
    v = {"vllm": vllm.__version__}
    try:
        import torch
    except ImportError:  # vllm always brings torch; a stand-in in the tests may not
        return v
    return {**v, "torch": torch.__version__, "cuda": torch.version.cuda}


def _write(doc: dict, out: str) -> None:
    check = doc.get("crosscheck")
    if check:
        if "error" in check:
            print(f"cross-check failed: {check['error'][-300:]}", flush=True)
        else:
            print(f"cross-check: vllm bench latency {check['decode_tok_s_mean']:.2f} tok/s end to end, this harness "
                  f"{check['harness_decode_tok_s_mean']:.2f} ({check['difference']:+.1%})", flush=True)
    if doc["samples"][-1].get("decode_tok_s") is not None:
        common.write(doc, out)
        return
    # no split: common.write's summary line needs decode_tok_s, so write and say it here
    write_json(out, doc, indent=None)
    last = doc["samples"][-1]
    print(f"end-to-end {last['e2e_s']:.3f} s for {last['gen_tokens']} tokens ({NO_SPLIT})", flush=True)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench-latency"]:
        bench_latency(argv[1:])
        return
    is_sweep = argv[:1] == ["sweep"]
    argv = argv[1:] if is_sweep else argv
    ap = argparse.ArgumentParser(prog="python -m llmperf_nb.drivers.vllm" + (" sweep" if is_sweep else ""))
    ap.add_argument("--model", required=True, help="HF checkpoint folder (or config-only folder for dummy)")
    ap.add_argument("--load-format", default="auto", help="auto, or dummy for random weights made by vLLM")
    ap.add_argument("--tensor-parallel-size", type=int, default=1)
    ap.add_argument("--dtype", default="float16")
    ap.add_argument("--quantization", default=None, help="default: what config.json says (vLLM detects it)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-model-len", type=int, default=None)
    options.add_argument(ap)  # llmperf_nb/options/vllm.py: enforce_eager, gpu_memory_utilization, crosscheck
    ap.add_argument("--crosscheck-timeout", type=float, default=1500.0)
    common.add_workload_args(ap)
    if is_sweep:
        common.add_sweep_args(ap)
    args = ap.parse_args(argv)
    vars(args).update(dataclasses.asdict(options.read(args.options, Options)))  # args.enforce_eager, ...
    (sweep if is_sweep else bench)(args)


if __name__ == "__main__":
    main()
