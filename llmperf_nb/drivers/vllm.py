"""vLLM benchmark driver, through the offline ``vllm.LLM`` API.

One repetition is one ``LLM.generate`` of the prompt's token ids (``{"prompt_token_ids": ids}``, the
``TokensPrompt`` TypedDict) with ``SamplingParams(max_tokens=min_tokens=gen_len, temperature=0,
ignore_eos=True, detokenize=False)``: greedy, exactly ``gen_len`` tokens, no detokenization (the
tokenizer is not even loaded: ``skip_tokenizer_init``), as the other drivers run.

vLLM has no per-token call that the common stepper could time, so each sample is built with the
timestamps vLLM records itself (``RequestOutput.metrics``, a ``RequestStateStats`` in vLLM V1:
``scheduled_ts``, ``first_token_ts``, ``last_token_ts`` from the engine core's monotonic clock,
``first_token_latency`` measured by the front end from arrival). vLLM fills them only when
statistics are on, so the engine is made with ``disable_log_stats=False`` (``LLM`` turns them off
by default; ``vllm serve`` keeps them on): a little host work per engine step, and a periodic
throughput line in the log. Then:

* ``ttft_s`` = ``first_token_latency``; ``prefill_s`` = ``first_token_ts - scheduled_ts``;
* ``decode_s`` = ``last_token_ts - first_token_ts`` and ``decode_tok_s = (gen_tokens - 1) / decode_s``,
  the same definition as :mod:`llmperf_nb.drivers.common` (and vLLM's ``decode_time``);
* ``e2e_s``: wall time of the ``generate`` call.

Linux's ``time.monotonic`` and ``time.perf_counter`` are both CLOCK_MONOTONIC, shared by every
process, so the engine core's timestamps bound the NVML energy window directly. Where the metrics
are missing the sample keeps ``e2e_s`` only and says so (``timing_source``): no split is invented.
Token counts are those of ``outputs[0].token_ids``. Prefix caching is off: repetitions of one prompt
would otherwise skip the prefill. ``NCCL_NVLS_ENABLE`` defaults to 0 (no NVLink multicast).

NOT RUN HERE: written against the Python sources of the vllm 0.33.0 wheel
(vllm/entrypoints/llm.py, outputs.py, sampling_params.py, v1/metrics/stats.py,
v1/engine/output_processor.py); no GPU was available to the author.

    python -m llmperf_nb.drivers.vllm --model DIR --load-format dummy --tensor-parallel-size 1 \\
        --prompt-ids 1,1724,... --gen-len 256 --reps 5 --out raw.json
"""

from __future__ import annotations

import argparse
import os
import time

from llmperf_nb.drivers import common
from llmperf_nb.jsonfile import write_json

SPLIT = "vLLM RequestOutput.metrics (engine-core timestamps)"
NO_SPLIT = "wall clock of LLM.generate only: vLLM returned no request metrics, so no prefill/decode split"


def sample_from_output(out, prompt_tokens: int, t_call: float, t_done: float, nvml=None) -> dict:
    """One sample from a ``RequestOutput`` and the wall-clock bounds of the ``generate`` call."""
    tokens = list(out.outputs[0].token_ids)
    s = {"prompt_tokens": prompt_tokens, "gen_tokens": len(tokens), "e2e_s": t_done - t_call,
         "first_token_ids": tokens[:8]}
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
    if nvml is not None:
        s["decode_energy_j"] = nvml.energy_joules(first, last)
        s["decode_mean_w"] = nvml.mean_watts(first, last)
    return s


def make_llm(args):
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
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
    )


def bench(args) -> None:
    import vllm
    from vllm import SamplingParams

    ids = common.parse_ids(args.prompt_ids)
    llm = make_llm(args)
    params = SamplingParams(n=1, temperature=0.0, top_p=1.0, max_tokens=args.gen_len, min_tokens=args.gen_len,
                            ignore_eos=True, detokenize=False)
    prompt = {"prompt_token_ids": ids}

    def one_run(nvml):
        t_call = time.perf_counter()
        out = llm.generate([prompt], params, use_tqdm=False)[0]
        return sample_from_output(out, len(ids), t_call, time.perf_counter(), nvml)

    doc = common.measure(one_run, args, continuous=True)  # metrics' clock: sample throughout
    sources = {s.get("timing_source") for s in doc["samples"]}
    model_config = llm.llm_engine.model_config
    doc.update(
        engine_version=f"vllm {vllm.__version__}",
        prompt_token_ids=ids,
        settings={"load_format": args.load_format, "tensor_parallel_size": args.tensor_parallel_size,
                  "dtype": args.dtype, "gpu_memory_utilization": args.gpu_memory_utilization,
                  "enforce_eager": args.enforce_eager, "enable_prefix_caching": False,
                  "max_model_len": model_config.max_model_len,
                  "NCCL_NVLS_ENABLE": os.environ.get("NCCL_NVLS_ENABLE")},
        timing_source=sources.pop() if len(sources) == 1 else sorted(map(str, sources)),
        quantization_in_use=model_config.quantization,
    )
    _write(doc, args.out)


def _write(doc: dict, out: str) -> None:
    if doc["samples"][-1].get("decode_tok_s") is not None:
        common.write(doc, out)
        return
    # no split: common.write's summary line needs decode_tok_s, so write and say it here
    write_json(out, doc, indent=None)
    last = doc["samples"][-1]
    print(f"end-to-end {last['e2e_s']:.3f} s for {last['gen_tokens']} tokens ({NO_SPLIT})", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m llmperf_nb.drivers.vllm")
    ap.add_argument("--model", required=True, help="HF checkpoint folder (or config-only folder for dummy)")
    ap.add_argument("--load-format", default="auto", help="auto, or dummy for random weights made by vLLM")
    ap.add_argument("--tensor-parallel-size", type=int, default=1)
    ap.add_argument("--dtype", default="float16")
    ap.add_argument("--quantization", default=None, help="default: what config.json says")
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    ap.add_argument("--enforce-eager", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-model-len", type=int, default=None)
    common.add_workload_args(ap)
    bench(ap.parse_args(argv))


if __name__ == "__main__":
    main()
