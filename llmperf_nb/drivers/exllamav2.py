"""ExLlamaV2 benchmark driver: the forward loop of ExLlamaV2's own speed test, in the shared timing loop.

``test_inference.py -s`` (the tool the original benchmark ran) measures decode as
``model.forward(last_token, cache)`` then ``argmax(logits)`` per token, and this driver makes the
same calls (:mod:`llmperf_nb.drivers.common` times them). ExLlamaV2's generators are not faster at
batch 1: ExLlamaV2BaseGenerator runs the same forward and adds a host-side sampler (the logits are
copied to the CPU as fp32 every token); the dynamic generator adds paging and job scheduling made
for batches. The KV cache is fp16 (ExLlamaV2Cache), as in test_inference.py.

Warm-up matters more than usual: on an H200 (torch 2.11, SDPA attention) the first pass over the
workload decoded at about 17 tok/s against about 240 after it, as exllamav2 autotunes its GEMMs
and SDPA meets each key length for the first time. The warm-up repetition runs the same positions.

    python -m llmperf_nb.drivers.exllamav2 bench --model DIR --prompt-ids 1,1724,... --out raw.json
        [--gpu-split 17,17 | --autosplit] [--max-seq-len 2048]
    python -m llmperf_nb.drivers.exllamav2 sweep --model DIR --prompt-ids ... --batch-sizes 1,4,16,64 \
        --prompt-lengths 8,512,2048 --out raw.json
    python -m llmperf_nb.drivers.exllamav2 check     # import exllamav2 (its first import JIT-builds
                                                     # the CUDA extension), print the versions

Sweep: the same forward on B rows, ``model.forward(ids[B, n], cache, last_id_only=True)`` against an
``ExLlamaV2Cache(batch_size=B)`` (a new one per batch size and prompt length), argmax per row: the batched
path of ExLlamaV2's base model, which its generators build on. The model is loaded with
``config.max_batch_size`` = the grid's largest B, so that its scratch buffers hold a whole batch's prefill
chunk (ExLlamaV2.forward splits a prefill into chunks of ``max_input_len * max_batch_size // B`` tokens
per sequence); the cache's ``max_seq_len`` is the point's prompt + gen_len. No cross-check in a sweep.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llmperf_nb import options
from llmperf_nb.drivers import common
from llmperf_nb.options.exllamav2 import Options


def _import():
    """(torch, exllamav2); the first import of exllamav2 compiles its CUDA extension (minutes)."""
    try:
        import torch
    except ImportError:
        sys.exit("torch is not installed; ExLlamaV2 needs a CUDA build of torch")
    if not torch.cuda.is_available():
        sys.exit("ExLlamaV2 needs a CUDA GPU, and torch sees none")
    try:
        import exllamav2
    except ImportError as e:
        sys.exit(f"cannot import exllamav2 ({e}); install it with: pip install exllamav2==0.3.2")
    return torch, exllamav2


def engine_version(torch, exllamav2) -> str:
    backend = f"CUDA {torch.version.cuda}" if torch.version.cuda else f"ROCm {torch.version.hip}"
    return f"exllamav2 {exllamav2.__version__}; torch {torch.__version__}; {backend}"


class Stepper:
    def __init__(self, torch, model, cache):
        self.torch, self.model, self.cache = torch, model, cache

    def reset(self) -> None:
        # what test_inference.py does between runs: the cache is overwritten from position 0
        self.cache.current_seq_len = 0

    def _next(self, ids: list[int]) -> int:
        # input ids stay on the CPU: ExLlamaV2 keeps the embedding table there and moves the hidden
        # state to the first layer's GPU; last_id_only sends only the last position through lm_head
        inp = self.torch.tensor([ids], dtype=self.torch.long)
        logits = self.model.forward(inp, self.cache, last_id_only=True)
        # .item() copies the id to the host, which waits for the pass to finish
        return int(self.torch.argmax(logits[0, -1]).item())

    def prefill(self, ids: list[int]) -> int:
        return self._next(ids)

    def decode(self, token: int) -> int:
        return self._next([token])


class BatchStepper:
    """B sequences in one forward per step against an ExLlamaV2Cache of batch B; argmax per row, one
    ``.tolist()`` per step that waits for the device."""

    def __init__(self, torch, model, batch: int, max_len: int):
        from exllamav2 import ExLlamaV2Cache

        self.torch, self.model = torch, model
        self.cache = ExLlamaV2Cache(model, batch_size=batch, max_seq_len=max_len)

    def reset(self) -> None:
        self.cache.current_seq_len = 0

    def _next(self, rows: list[list[int]]) -> list[int]:
        logits = self.model.forward(self.torch.tensor(rows, dtype=self.torch.long), self.cache, last_id_only=True)
        return self.torch.argmax(logits[:, -1], dim=-1).tolist()

    def prefill(self, prompts: list[list[int]]) -> list[int]:
        return self._next(prompts)

    def decode(self, tokens: list[int]) -> list[int]:
        return self._next([[t] for t in tokens])


def load(args, torch, max_batch_size: int = 1):
    """Config, model and fp16 cache, loaded the way test_inference.py loads them (model_init);
    ``max_batch_size``: the largest batch a forward will get (a sweep's), which sizes the scratch buffers."""
    from exllamav2 import ExLlamaV2, ExLlamaV2Cache, ExLlamaV2Config

    config = ExLlamaV2Config(args.model)  # reads config.json and indexes the *.safetensors
    config.max_seq_len = args.opts.max_seq_len
    config.max_batch_size = max_batch_size
    # load_autosplit() does this itself; doing it for every load mode keeps their buffers alike
    config.max_input_len = min(config.max_input_len, args.opts.max_seq_len)
    config.arch_compat_overrides()
    model = ExLlamaV2(config)
    if args.autosplit:
        # the cache is allocated layer by layer while the model fills one GPU after another
        cache = ExLlamaV2Cache(model, max_seq_len=args.opts.max_seq_len, lazy=True)
        model.load_autosplit(cache)
        return config, model, cache
    split = [float(x) for x in args.gpu_split.split(",")] if args.gpu_split else None
    if split and len(split) > torch.cuda.device_count():
        sys.exit(f"--gpu-split has {len(split)} entries but {torch.cuda.device_count()} CUDA devices are visible")
    model.load(split)  # GB of weights per GPU, in order; None puts everything on the first GPU
    return config, model, ExLlamaV2Cache(model, max_seq_len=args.opts.max_seq_len)


def attention_backend(config) -> str:
    """The attention function ExLlamaV2Attention picks, in its own order of preference."""
    from exllamav2 import attn

    if attn.has_flash_attn and not config.no_flash_attn:
        import flash_attn

        return f"flash-attn {flash_attn.__version__}"
    if attn.has_xformers and not config.no_xformers:
        return "xformers"
    if attn.has_lower_right_sdpa and not config.no_sdpa:
        return "torch SDPA"
    return "torch matmul"


def facts(torch, config, model) -> dict:
    devices = sorted({m.device_idx for m in model.modules if isinstance(m.device_idx, int) and m.device_idx >= 0})
    layers = {}
    for idx in model.cache_map.values():
        layers[idx] = layers.get(idx, 0) + 1
    files = [Path(f) for f in config.tensor_files]
    return {
        "model_bytes": sum(f.stat().st_size for f in files),
        "quantization_config": _quantization_config(Path(config.model_dir)),
        "gpu_names": [torch.cuda.get_device_name(i) for i in devices],
        "attention_layers_per_device": layers,
        "torch_max_allocated_bytes": [torch.cuda.max_memory_allocated(i) for i in devices],
    }


def _quantization_config(model_dir: Path) -> dict | None:
    import json

    return json.loads((model_dir / "config.json").read_text()).get("quantization_config")


def bench(args) -> None:
    torch, exllamav2 = _import()
    ids = common.parse_ids(args.prompt_ids)
    if len(ids) + args.gen_len > args.opts.max_seq_len:
        sys.exit(f"prompt ({len(ids)}) + gen_len ({args.gen_len}) tokens exceed max_seq_len {args.opts.max_seq_len}")
    config, model, cache = load(args, torch)
    torch.cuda.empty_cache()  # memory is what the engine holds while decoding (docs/engines.md, Memory)
    stepper = Stepper(torch, model, cache)
    doc = common.measure(lambda nvml: common.generate(stepper, ids, args.gen_len, nvml), args)
    doc.update(
        engine_version=engine_version(torch, exllamav2),
        prompt_token_ids=ids,
        settings={"gpu_split": args.gpu_split, "autosplit": args.autosplit, "max_seq_len": args.opts.max_seq_len,
                  "max_input_len": config.max_input_len, "cache": "fp16 (ExLlamaV2Cache)",
                  "attention": attention_backend(config), "cuda_graphs": not config.no_graphs,
                  "loop": "model.forward(ids, cache, last_id_only=True) + argmax, as test_inference.py -s"},
        **facts(torch, config, model),
    )
    doc["versions"] = {"exllamav2": exllamav2.__version__, "torch": torch.__version__, "cuda": torch.version.cuda}
    if args.opts.crosscheck:
        doc["crosscheck"] = common.guarded_crosscheck("ExLlamaV2 dynamic generator", crosscheck, torch, model,
                                                      cache, args, ids, doc)
    model.unload()
    common.write(doc, args.out)


def sweep(args) -> None:
    """Every batch size x prompt length on one loaded model (module docstring, Sweep)."""
    import dataclasses

    torch, exllamav2 = _import()
    ids = common.parse_ids(args.prompt_ids)
    batches, lengths = common.parse_ids(args.batch_sizes), common.parse_ids(args.prompt_lengths)
    # the model's own max_seq_len (its RoPE tables) covers the longest point
    args.opts = dataclasses.replace(args.opts, max_seq_len=max(args.opts.max_seq_len, max(lengths) + args.gen_len))
    config, model, cache = load(args, torch, max_batch_size=max(batches))
    del cache  # each point gets a cache of its own batch size
    # the last point's cache goes back to the device: each point's memory is its own
    steppers = common.PointSteppers(lambda batch, max_len: BatchStepper(torch, model, batch, max_len), args.gen_len,
                                    torch.cuda.empty_cache)
    doc = common.sweep(steppers, args, ids)
    doc.update(
        engine_version=engine_version(torch, exllamav2),
        prompt_token_ids=ids,
        settings={"gpu_split": args.gpu_split, "autosplit": args.autosplit, "max_seq_len": args.opts.max_seq_len,
                  "max_input_len": config.max_input_len, "max_batch_size": config.max_batch_size,
                  "cache": "fp16 (ExLlamaV2Cache of batch B)", "attention": attention_backend(config),
                  "cuda_graphs": not config.no_graphs,
                  "loop": "model.forward(ids[B, n], cache, last_id_only=True) + argmax per row"},
        **facts(torch, config, model),
    )
    doc["versions"] = {"exllamav2": exllamav2.__version__, "torch": torch.__version__, "cuda": torch.version.cuda}
    model.unload()
    common.write(doc, args.out)


def _drain(generator) -> tuple[list[int], dict]:
    """Run the generator's queued job to its end: (its token ids, its final result)."""
    tokens, end = [], None
    while generator.num_remaining_jobs():
        for r in generator.iterate():
            if r.get("stage") == "streaming" and "token_ids" in r:
                tokens.extend(r["token_ids"].flatten().tolist())
            if r.get("eos"):
                end = r
    return tokens, end


def crosscheck(torch, model, cache, args, ids: list[int], doc: dict) -> dict:
    """ExLlamaV2's own dynamic generator on the same model and cache: one job of the prompt's ids,
    greedy, ``max_new_tokens = gen_len`` and no stop conditions (EOS ignored), in its unpaged mode
    (batch 1; paged mode needs flash-attn). Decode tok/s from the generator's own clock: (new_tokens
    - 1) / (time_generate - time_prefill). One warm-up, then as many jobs as the harness measured,
    each under the harness's GC policy."""
    from exllamav2 import ExLlamaV2Tokenizer
    from exllamav2.generator import ExLlamaV2DynamicGenerator

    tokenizer = ExLlamaV2Tokenizer(model.config)  # the generator needs one; ids go in as ids
    generator = ExLlamaV2DynamicGenerator(model=model, cache=cache, tokenizer=tokenizer, max_batch_size=1,
                                          paged=False)
    runs = []
    for _ in range(1 + len(doc["samples"])):
        generator.enqueue(_greedy_job(torch, ids, args.gen_len))
        tokens, end = common.untouched_by_gc(lambda _: _drain(generator))
        runs.append({"gen_tokens": len(tokens), "new_tokens": end["new_tokens"], "eos_reason": end["eos_reason"],
                     "decode_tok_s": (end["new_tokens"] - 1) / (end["time_generate"] - end["time_prefill"]),
                     "token_ids_sha256": common.token_digest(tokens)})
    call = (f"ExLlamaV2DynamicGenerator(paged=False, max_batch_size=1) + ExLlamaV2DynamicJob(max_new_tokens="
            f"{args.gen_len}, greedy, stop_conditions=None)")
    out = common.compare_with_tool("ExLlamaV2 dynamic generator", [call], [r["decode_tok_s"] for r in runs[1:]],
                                   doc, [r["token_ids_sha256"] for r in runs],
                                   gen_tokens=[r["gen_tokens"] for r in runs],
                                   eos_reasons=sorted({r["eos_reason"] for r in runs}))
    out["host_sampling"] = common.guarded_crosscheck("host-side greedy pick", _host_sampling, torch, model, cache,
                                                     tokenizer, ids, args.gen_len)
    out["forward_split"] = common.guarded_crosscheck("forward split", _forward_split, torch, model, cache, generator,
                                                     ids, args)
    return out


def _greedy_job(torch, ids: list[int], gen_len: int):
    """One job of the prompt's ids: greedy, ``gen_len`` new tokens, no stop condition (EOS ignored)."""
    from exllamav2.generator import ExLlamaV2DynamicJob, ExLlamaV2Sampler

    return ExLlamaV2DynamicJob(input_ids=torch.tensor([ids], dtype=torch.long), max_new_tokens=gen_len,
                               gen_settings=ExLlamaV2Sampler.Settings.greedy(), stop_conditions=None)


def _forward_split(torch, model, cache, generator, ids: list[int], args) -> dict:
    """Where each decoded token's time goes, harness against generator, after the measured runs (one more of
    each, untimed for the tables): the model's forward, up to the GPU's end of it (a synchronize after each
    call: both sides wait for the logits right after it anyway, the harness in ``.item()``, the generator in
    its copy to the host), and everything outside it (the harness's argmax; the generator's host pick, job
    bookkeeping and text decoding). Equal forwards and a larger outside are a measured explanation of a gap."""
    stepper = Stepper(torch, model, cache)

    def generator_run(_):
        generator.enqueue(_greedy_job(torch, ids, args.gen_len))
        _drain(generator)

    return {"harness": _split(torch, model, "forward", lambda _: common.generate(stepper, ids, args.gen_len)),
            "generator": _split(torch, model, "forward_chunk", generator_run),
            "what": "ms per decoded token: the model's forward (synchronized at its end) and the rest of the loop"}


def _split(torch, model, method: str, run) -> dict:
    """Run ``run`` once with ``model.<method>`` timed: the decode steps are the calls after the first (the
    prefill); the window is from the prefill's end to the last call's end."""
    import time

    calls = []
    original = getattr(model, method)

    def timed(*a, **kw):
        t0 = time.perf_counter()
        out = original(*a, **kw)
        torch.cuda.synchronize()
        calls.append((t0, time.perf_counter()))
        return out

    setattr(model, method, timed)  # an instance attribute over the class's method, removed below
    try:
        common.untouched_by_gc(run)
    finally:
        delattr(model, method)
    steps = calls[1:]
    if not steps:
        raise RuntimeError(f"model.{method} was called {len(calls)} time(s): no decode step to time")
    window = steps[-1][1] - calls[0][1]
    inside = sum(end - start for start, end in steps)
    return {"forward_ms": inside * 1e3 / len(steps), "outside_ms": (window - inside) * 1e3 / len(steps),
            "steps": len(steps)}


def _host_sampling(torch, model, cache, tokenizer, ids: list[int], n: int) -> dict:
    """What the generator does per token beyond the harness's forward + argmax, timed alone: the
    logits copied into a pinned fp32 host buffer (as ExLlamaV2DynamicGenerator copies them), then
    ExLlamaV2Sampler.sample with greedy settings, ``n`` times. It measures the part of the
    harness-generator gap that the host-side pick explains (the rest is job scheduling)."""
    import random
    import time

    from exllamav2.generator import ExLlamaV2Sampler

    cache.current_seq_len = 0
    logits = model.forward(torch.tensor([ids], dtype=torch.long), cache, last_id_only=True)[:, -1:, :]
    host = torch.empty(logits.shape, dtype=torch.float, pin_memory=True)
    settings, seq = ExLlamaV2Sampler.Settings.greedy(), torch.tensor([ids], dtype=torch.long)

    def picks(_):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(n):
            host.copy_(logits, non_blocking=False)
            ExLlamaV2Sampler.sample(host, settings, seq, random.random(), tokenizer)
        return (time.perf_counter() - t0) * 1e3 / n

    return {"ms_per_token": common.untouched_by_gc(picks), "tokens": n,
            "what": "pinned fp32 host copy of the logits + ExLlamaV2Sampler.sample(greedy)"}


def check(args) -> None:
    torch, exllamav2 = _import()
    from exllamav2.ext import exllamav2_ext  # the compiled (or JIT-built) extension

    print(f"{engine_version(torch, exllamav2)}; extension {exllamav2_ext.__file__}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m llmperf_nb.drivers.exllamav2")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("bench", "sweep"):
        b = sub.add_parser(name)
        b.add_argument("--model", required=True, help="folder with config.json and *.safetensors (GPTQ or EXL2)")
        common.add_workload_args(b)
        options.add_argument(b)  # llmperf_nb/options/exllamav2.py: gpu_split, max_seq_len, crosscheck
        if name == "sweep":
            common.add_sweep_args(b)
    sub.add_parser("check")
    args = ap.parse_args(argv)
    if args.cmd == "check":
        return check(args)
    args.opts = options.read(args.options, Options)
    # gpu_split: None (the first GPU), "auto" (fill the GPUs in turn: -gs auto), or GB per GPU ("17,17": -gs)
    args.autosplit = args.opts.gpu_split == "auto"
    args.gpu_split = None if args.autosplit else args.opts.gpu_split
    (sweep if args.cmd == "sweep" else bench)(args)


if __name__ == "__main__":
    main()
