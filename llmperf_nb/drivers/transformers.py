"""HF transformers benchmark driver: LlamaForCausalLM's forward, called once per token.

No ``generate()``: its logits processors, stopping criteria and input bookkeeping would be timed
with the model. Prefill is one forward over the prompt; each decode step is one forward of the
last token against the KV cache, then a greedy argmax whose ``.item()`` waits for the device. EOS is
never checked, so every repetition has exactly ``--gen-len`` tokens. The timing loop is
:mod:`llmperf_nb.drivers.common`.

The cache is a DynamicCache (grows with each token; transformers' default) or a StaticCache sized
prompt + gen_len (fixed shapes, which is what lets ``--compile`` wrap the decode forward in
torch.compile with CUDA graphs, as ``generate(cache_implementation="static")`` does).

    python -m llmperf_nb.drivers.transformers bench --model DIR --device cuda \
        --options '{"cache": "static", "compile": true}' --prompt-ids 1,1724,... --out raw.json
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import os
import sys
import time

from llmperf_nb import options
from llmperf_nb.drivers import common
from llmperf_nb.options.transformers import Options


class Stepper:
    def __init__(self, torch, model, args, max_len: int):
        from transformers import DynamicCache, StaticCache

        self.torch, self.model, self.args = torch, model, args
        self.device = model.get_input_embeddings().weight.device
        params = inspect.signature(model.forward).parameters
        # transformers 5.24 renamed past_key_values to cache (the old name warns until 5.40)
        self.cache_kw = "cache" if "cache" in params else "past_key_values"
        self.static = args.opts.cache == "static"
        self.cache = StaticCache(config=model.config, max_cache_len=max_len) if self.static else None
        self.new_cache = lambda: DynamicCache(config=model.config)
        self.step_fn = model
        if args.opts.compile:
            # Decode only, as generate() does: the prefill's shape differs from every decode step's,
            # and CUDA graphs (mode reduce-overhead) replay fixed shapes and addresses only.
            mode = "reduce-overhead" if self.device.type == "cuda" else "default"
            self.step_fn = torch.compile(model.__call__, mode=mode, fullgraph=False)
        self.pos = self.next_ids = self.last = None

    def reset(self) -> None:
        if self.static:
            self.cache.reset()  # in place: a compiled graph keeps pointing at the same tensors
        else:
            # a new one: DynamicCache.reset() zeroes its tensors but keeps their length, so the next
            # repetition would attend over the last one's zeroed keys (different tokens, slower)
            self.cache = self.new_cache()

    def _forward(self, fn, ids, pos) -> int:
        out = fn(input_ids=ids, position_ids=pos, use_cache=True, logits_to_keep=1, **{self.cache_kw: self.cache})
        self.next_ids = out.logits[:, -1:].argmax(-1)  # [1, 1], stays on the device as the next input
        self.last = self.next_ids.item()  # waits for the device: the pass is done when this returns
        return self.last

    def prefill(self, ids: list[int]) -> int:
        t = self.torch
        self.pos = t.tensor([[len(ids) - 1]], device=self.device)
        ids_t = t.tensor([ids], device=self.device)
        return self._forward(self.model, ids_t, t.arange(len(ids), device=self.device)[None])

    def decode(self, token: int) -> int:
        # The token just returned is already on the device as next_ids: no host-to-device copy.
        ids = self.next_ids if token == self.last else self.torch.tensor([[token]], device=self.device)
        self.pos += 1  # in place, on the device
        return self._forward(self.step_fn, ids, self.pos)


class BatchStepper(Stepper):
    """B sequences in one forward per step: input [B, 1] against a StaticCache of batch B (a new one per
    batch size; shapes are fixed, so ``--compile`` works as at batch 1). Greedy: argmax per row, one
    ``.tolist()`` per step that waits for the device."""

    def _forward(self, fn, ids, pos) -> list[int]:
        out = fn(input_ids=ids, position_ids=pos, use_cache=True, logits_to_keep=1, **{self.cache_kw: self.cache})
        self.next_ids = out.logits[:, -1:].argmax(-1)  # [B, 1], the next input, on the device
        self.last = [row[0] for row in self.next_ids.tolist()]
        return self.last

    def prefill(self, prompts: list[list[int]]) -> list[int]:
        t = self.torch
        n = len(prompts[0])
        self.pos = t.full((len(prompts), 1), n - 1, device=self.device)
        ids = t.tensor(prompts, device=self.device)
        return self._forward(self.model, ids, t.arange(n, device=self.device)[None].expand(len(prompts), n))

    def decode(self, tokens: list[int]) -> list[int]:
        ids = self.next_ids if tokens == self.last else self.torch.tensor([[t] for t in tokens], device=self.device)
        self.pos += 1
        return self._forward(self.step_fn, ids, self.pos)


def sweep(args) -> None:
    """Every batch size x prompt length on one loaded model, with a StaticCache of that batch size."""
    import torch
    import transformers

    if args.opts.cache != "static":
        sys.exit("a sweep runs with --cache static (a cache of B rows, fixed shapes)")
    ids = common.parse_ids(args.prompt_ids)
    model, facts = load(torch, args)
    # the last point's cache goes back to the device: each point's memory is its own
    steppers = common.PointSteppers(lambda batch, max_len: BatchStepper(torch, model, args, max_len=max_len),
                                    args.gen_len, torch.cuda.empty_cache if args.device == "cuda" else None)
    with torch.inference_mode():
        doc = common.sweep(steppers, args, ids)
    doc.update(
        engine_version=f"transformers {transformers.__version__} / torch {torch.__version__} "
                       f"({args.device}, {args.opts.dtype}, static cache of batch B, {'compiled' if args.opts.compile else 'eager'})",
        prompt_token_ids=ids,
        settings={"device": args.device, "dtype": args.opts.dtype, "cache": "static", "compile": args.opts.compile,
                  "attn": args.opts.attn, "quant": args.quant, "threads": torch.get_num_threads(), **facts},
        versions=_versions(torch, transformers, args),
    )
    common.write(doc, args.out)


def _deterministic(torch, args) -> bool:
    """The ``deterministic`` option, before anything runs on the device: torch's deterministic algorithms
    (an op without one raises, naming itself) and cuBLAS's fixed workspace, which it reads when its handle
    is made (the first matmul)."""
    if not args.opts.deterministic:
        return False
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
    torch.use_deterministic_algorithms(True)
    return True


def load(torch, args):
    """The model on its device(s), and facts about how it was loaded."""
    from transformers import AutoConfig, AutoModelForCausalLM

    dtype = getattr(torch, args.opts.dtype)
    kw = {"dtype": dtype, "attn_implementation": args.opts.attn}
    devices = _devices(torch, args)
    facts = {"placement": _placement(args, devices), "deterministic": _deterministic(torch, args)}
    if args.random_init:
        config = AutoConfig.from_pretrained(args.model)
        model = _random_model(torch, config, kw, devices, args.seed)
        if args.quant == "bnb4":
            _quantize_bnb4(torch, model, dtype)
        facts["weights"] = "random init on device from config.json (normal * initializer_range, norms 1)"
    else:
        if args.quant == "bnb4":
            kw["quantization_config"] = _bnb_config(torch, dtype)
        if len(devices) > 1:
            kw.update(device_map="auto", max_memory=_max_memory(torch, devices))
        elif devices[0] != "cpu":
            kw["device_map"] = {"": devices[0]}
        model = AutoModelForCausalLM.from_pretrained(args.model, **kw)
        facts["weights"] = f"loaded from {args.model}"
    model.eval()
    facts["n_params"] = sum(p.numel() for p in model.parameters())
    facts["device_map"] = _summary(getattr(model, "hf_device_map", None))
    return model, facts


def _devices(torch, args) -> list[str]:
    if args.device == "cpu":
        return ["cpu"]
    if not torch.cuda.is_available():
        sys.exit("--device cuda: torch sees no CUDA device (is this a CPU build of torch?)")
    n = args.num_gpus or torch.cuda.device_count()
    if n > torch.cuda.device_count():
        sys.exit(f"--num-gpus {n}: torch sees only {torch.cuda.device_count()} CUDA devices")
    return [f"cuda:{i}" for i in range(n)]


def _placement(args, devices) -> str:
    if len(devices) == 1:
        return f"single device ({devices[0]})"
    return (f"layers split over {len(devices)} GPUs (accelerate device_map, pipeline: one GPU works at a time "
            "at batch 1); no tensor parallelism")


def _max_memory(torch, devices) -> dict:
    # Only the cell's GPUs; 90 % of each leaves room for the KV cache and activations.
    return {i: int(torch.cuda.get_device_properties(i).total_memory * 0.9) for i in range(len(devices))}


def _random_model(torch, config, kw, devices, seed):
    """Build on the meta device, give each module storage on its device, then initialise in place:
    the weights never exist on the host (like vLLM's load_format=dummy), so 70B starts in seconds."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, **kw)
    if len(devices) == 1:
        device_map = {"": devices[0]}
    else:
        from accelerate import infer_auto_device_map
        from accelerate.utils import get_balanced_memory

        no_split = model._no_split_modules
        budget = get_balanced_memory(model, max_memory=_max_memory(torch, devices),
                                     no_split_module_classes=no_split, dtype=kw["dtype"])
        device_map = infer_auto_device_map(model, max_memory=budget, no_split_module_classes=no_split,
                                           dtype=kw["dtype"])
    for name, device in device_map.items():
        (model.get_submodule(name) if name else model).to_empty(device=device)
    torch.manual_seed(seed)
    with torch.no_grad():
        # transformers' own initialiser: normal * initializer_range, norms 1, rotary tables recomputed
        model.initialize_weights()
    if len(set(device_map.values())) > 1:
        from accelerate import dispatch_model

        model = dispatch_model(model, device_map)  # hooks that move activations between GPUs
    return model


def _bnb_config(torch, dtype):
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)


def _quantize_bnb4(torch, model, dtype) -> None:
    """Swap every linear layer but lm_head for a bitsandbytes nf4 one, as from_pretrained's
    BitsAndBytesConfig(load_in_4bit=True) does; quantization happens on the layer's GPU."""
    import bitsandbytes as bnb

    for _name, parent in list(model.named_modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, torch.nn.Linear) or (parent is model and name == "lm_head"):
                continue
            q = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                  compute_dtype=dtype, quant_type="nf4", device="meta")
            weight = child.weight.data
            # no double quantization: what from_pretrained with BitsAndBytesConfig(load_in_4bit=True) does
            q.weight = bnb.nn.Params4bit(weight.to("cpu"), requires_grad=False, quant_type="nf4",
                                         compress_statistics=False).to(weight.device)
            if child.bias is not None:
                q.bias = torch.nn.Parameter(child.bias.data, requires_grad=False)
            setattr(parent, name, q)
            del child, weight
    model.is_loaded_in_4bit = True


def _summary(device_map) -> dict | None:
    if not device_map:
        return None
    counts: dict[str, int] = {}
    for device in device_map.values():
        counts[str(device)] = counts.get(str(device), 0) + 1
    return counts  # modules per device


def bench(args) -> None:
    import torch
    import transformers

    if args.quant == "bnb4" and args.device == "cpu":
        sys.exit("bitsandbytes 4-bit needs a CUDA GPU: use --quant none on the CPU")
    if args.opts.compile and args.opts.cache != "static":
        sys.exit("--compile needs --cache static (a dynamic cache changes shape every token)")
    ids = common.parse_ids(args.prompt_ids)
    model, facts = load(torch, args)
    on_cuda = args.device == "cuda"
    if on_cuda:
        # blocks freed while loading (bitsandbytes quantizes fp16 weights made on the GPU) go back to
        # the device: memory is what the engine holds while decoding (docs/engines.md, Memory)
        torch.cuda.empty_cache()
        for i in range(torch.cuda.device_count()):
            torch.cuda.reset_peak_memory_stats(i)  # the peak of the run: weights, cache, activations
    # The dynamic cache's cross-check alternates with the harness, one generate() after each
    # repetition: eager decoding is bound by the host's kernel launches, whose speed drifts by 10-20 %
    # over a minute on the GPU machine, and two blocks one after the other compared that drift.
    # The static, compiled cell keeps the two apart: generate() compiles its own CUDA graphs.
    alternate = Alternating(torch, model, args, ids) if args.opts.crosscheck and args.opts.cache == "dynamic" else None
    with torch.inference_mode():
        stepper = Stepper(torch, model, args, max_len=len(ids) + args.gen_len)
        doc = common.measure(lambda nvml: common.generate(stepper, ids, args.gen_len, nvml), args,
                             between=alternate)
    settings = {
        "device": args.device, "dtype": args.opts.dtype, "cache": args.opts.cache, "compile": args.opts.compile,
        "compile_mode": ("reduce-overhead" if on_cuda else "default") if args.opts.compile else None,
        "attn": args.opts.attn, "quant": args.quant, "threads": torch.get_num_threads(),
        "tensor_parallel": False, **facts,
    }
    if on_cuda:
        settings["torch_max_memory_allocated_bytes"] = sum(
            torch.cuda.max_memory_allocated(i) for i in range(torch.cuda.device_count()))
        settings["gpu_names"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    where = f"{args.device}, {args.opts.dtype}, {args.opts.cache} cache, {'compiled' if args.opts.compile else 'eager'}, {args.opts.attn}"
    if args.quant == "bnb4":
        import bitsandbytes

        where += f", bitsandbytes {bitsandbytes.__version__} nf4"
    doc.update(
        engine_version=f"transformers {transformers.__version__} / torch {torch.__version__} ({where})",
        prompt_token_ids=ids,
        settings=settings,
        versions=_versions(torch, transformers, args),
    )
    if alternate is not None:
        doc["crosscheck"] = alternate.record(doc)
    elif args.opts.crosscheck:
        with torch.inference_mode():
            doc["crosscheck"] = common.guarded_crosscheck("transformers generate()", crosscheck, torch, model,
                                                          args, ids, doc)
    common.write(doc, args.out)


def _versions(torch, transformers, args) -> dict:
    v = {"torch": torch.__version__, "transformers": transformers.__version__, "cuda": torch.version.cuda}
    if args.quant == "bnb4":
        import bitsandbytes

        v["bitsandbytes"] = bitsandbytes.__version__
    return v


class _Clock:
    """A generate() streamer that only notes the time of each put: generate() puts the prompt, then
    each new token as it copies it to the host (``.cpu()``, which waits for the pass)."""

    def __init__(self):
        self.times: list[float] = []

    def put(self, value) -> None:
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


class _Generate:
    """transformers' own ``generate()`` on the same model and cache kind, greedy, ``gen_len`` new
    tokens with EOS ignored (no eos_token_id), timed by a streamer: decode tok/s = (tokens - 1) /
    (last token's time - first token's time), the definition of drivers.common. Each run under the
    harness's GC policy."""

    def __init__(self, torch, model, args, ids: list[int]):
        from transformers import GenerationConfig

        model.generation_config.eos_token_id = None  # or generate() would fill it back in from the model's
        kw = {"max_new_tokens": args.gen_len, "do_sample": False, "eos_token_id": None, "pad_token_id": 0}
        if args.opts.cache == "static":
            kw["cache_implementation"] = "static"  # generate() then compiles the decode step itself
        self.model, self.config, self.n_prompt = model, GenerationConfig(**kw), len(ids)
        self.input_ids = torch.tensor([ids], device=model.get_input_embeddings().weight.device)
        self.mask = torch.ones_like(self.input_ids)
        self.call = (f"model.generate(max_new_tokens={args.gen_len}, do_sample=False, eos_token_id=None"
                     + (", cache_implementation='static'" if args.opts.cache == "static" else "") + ")")

    def once(self) -> dict:
        clock = _Clock()
        out = common.untouched_by_gc(
            lambda _: self.model.generate(self.input_ids, attention_mask=self.mask, generation_config=self.config,
                                          streamer=clock))
        tokens = out[0, self.n_prompt:].tolist()
        first, last = clock.times[1], clock.times[-1]
        return {"gen_tokens": len(tokens), "decode_tok_s": (len(tokens) - 1) / (last - first),
                "token_ids_sha256": common.token_digest(tokens),
                "token_latencies_s": [b - a for a, b in itertools.pairwise(clock.times[1:])]}


class Alternating:
    """The cross-check of the dynamic cache: one ``generate()`` after each harness repetition
    (warm-up ones included), under inference mode; its measured runs are those that followed a
    measured repetition. A failure is recorded once and ends the alternation, not the measurement."""

    def __init__(self, torch, model, args, ids: list[int]):
        self.torch, self.gen, self.runs, self.error = torch, _Generate(torch, model, args, ids), [], None

    def __call__(self, measured: bool) -> None:
        if self.error is not None:
            return
        with self.torch.inference_mode():
            run = common.guarded_crosscheck("transformers generate()", self.gen.once)
        if "error" in run:
            self.error = run["error"]
            return
        self.runs.append((measured, run))

    def record(self, doc: dict) -> dict:
        tool = "transformers generate()"
        if self.error is not None:
            return {"tool": tool, "error": self.error}
        measured = [r for m, r in self.runs if m]
        return common.compare_with_tool(
            tool, [self.gen.call], [r["decode_tok_s"] for r in measured], doc,
            [r["token_ids_sha256"] for _, r in self.runs], gen_tokens=[r["gen_tokens"] for _, r in self.runs],
            order="alternating: one generate() after each harness repetition, warm-up included",
            **common.median_token_latencies(doc, [r["token_latencies_s"] for r in measured]))


def crosscheck(torch, model, args, ids: list[int], doc: dict) -> dict:
    """:class:`_Generate` after the measurement (the static, compiled cache): one warm-up, then as
    many runs as the harness measured. Its tokens are compared with the harness's."""
    gen = _Generate(torch, model, args, ids)
    runs = [gen.once() for _ in range(1 + len(doc["samples"]))]
    return common.compare_with_tool("transformers generate()", [gen.call], [r["decode_tok_s"] for r in runs[1:]], doc,
                                    [r["token_ids_sha256"] for r in runs], gen_tokens=[r["gen_tokens"] for r in runs],
                                    order="after the measurement: one warm-up, then as many runs as the harness's")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m llmperf_nb.drivers.transformers")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench")
    _model_args(b)
    options.add_argument(b)  # llmperf_nb/options/transformers.py: cache, compile, attn, dtype, crosscheck
    common.add_workload_args(b)
    w = sub.add_parser("sweep", help="batch sizes x prompt lengths, with a StaticCache of batch B")
    _model_args(w)
    options.add_argument(w)  # the engine sends cache: static for a sweep
    common.add_workload_args(w)
    common.add_sweep_args(w)
    args = ap.parse_args(argv)
    args.opts = options.read(args.options, Options)
    {"bench": bench, "sweep": sweep}[args.cmd](args)


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="HF checkpoint folder (with --random-init: config.json only)")
    p.add_argument("--random-init", action="store_true", help="build from config.json with random weights on the device")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--num-gpus", type=int, default=0, help="GPUs to spread the layers over (0: every visible one)")
    p.add_argument("--quant", choices=["none", "bnb4"], default="none")


if __name__ == "__main__":
    main()
