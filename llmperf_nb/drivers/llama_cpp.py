"""llama.cpp benchmark driver, through llama-cpp-python's low-level (C API) bindings.

The workload: tokenize the prompt with the model's own tokenizer (BOS added), one prefill pass,
then greedy decoding with llama.cpp's own greedy sampler until ``gen_len`` tokens exist, EOS
ignored. Token 1 comes from the prefill logits (time to first token); tokens 2..gen_len each cost
one single-token decode pass, so decode tok/s = (gen_len - 1) / decode time, and each of those
passes is one per-token latency. Sampling runs in C, so Python adds a few microseconds a token.

    python -m llmperf_nb.drivers.llama_cpp bench --model M.gguf --prompt P --gen-len 256 --out raw.json
    python -m llmperf_nb.drivers.llama_cpp quantize IN.gguf OUT.gguf Q4_0
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import time

from llmperf_nb import telemetry

SPLIT_MODES = {"none": 0, "layer": 1, "row": 2}
FLASH_ATTN = {"auto": -1, "off": 0, "on": 1}


_KEEP_LOG_LEVELS = (3, 4)  # ggml_log_level WARN, ERROR: load chatter (INFO, DEBUG) stays out
_last_level = [0]


def _quiet_logs(L):
    """Install a log callback that keeps warnings and errors; returns it (keep it referenced)."""

    @L.llama_log_callback
    def cb(level, text, user_data):
        if level != 5:  # 5 is CONT: a continuation of the previous message
            _last_level[0] = level
        if _last_level[0] in _KEEP_LOG_LEVELS:
            sys.stderr.write(text.decode(errors="replace"))

    L.llama_log_set(cb, ctypes.c_void_p(0))
    return cb


def load(L, args):
    L.llama_backend_init()
    load.log_cb = _quiet_logs(L)
    mp = L.llama_model_default_params()
    mp.n_gpu_layers = args.n_gpu_layers
    mp.split_mode = SPLIT_MODES[args.split_mode]
    model = L.llama_model_load_from_file(args.model.encode(), mp)
    if not model:
        sys.exit(f"llama.cpp could not load {args.model}")
    cp = L.llama_context_default_params()
    cp.n_ctx = args.n_ctx
    cp.n_batch = args.n_batch
    cp.n_ubatch = args.n_batch
    cp.n_threads = args.threads
    cp.n_threads_batch = args.threads
    cp.flash_attn_type = FLASH_ATTN[args.flash_attn]
    cp.no_perf = False
    ctx = L.llama_init_from_model(model, cp)
    if not ctx:
        sys.exit("llama.cpp could not create a context")
    return model, ctx


def tokenize(L, model, text: str) -> list[int]:
    vocab = L.llama_model_get_vocab(model)
    raw = text.encode()
    buf = (L.llama_token * (len(raw) + 16))()
    n = L.llama_tokenize(vocab, raw, len(raw), buf, len(buf), True, False)
    if n < 0:
        sys.exit(f"tokenizer needs {-n} tokens")
    return list(buf[:n])


def one_run(L, ctx, sampler, prompt_ids: list[int], gen_len: int, sampler_nvml) -> dict:
    L.llama_memory_clear(L.llama_get_memory(ctx), True)
    L.llama_sampler_reset(sampler)
    prompt = (L.llama_token * len(prompt_ids))(*prompt_ids)
    tok = (L.llama_token * 1)()
    t0 = time.perf_counter()
    if L.llama_decode(ctx, L.llama_batch_get_one(prompt, len(prompt_ids))) != 0:
        sys.exit("llama_decode failed on the prompt")
    tok[0] = L.llama_sampler_sample(sampler, ctx, -1)  # reads the logits: waits for the GPU
    t_first = time.perf_counter()
    generated = [tok[0]]
    latencies = []
    last = t_first
    for _ in range(gen_len - 1):
        if L.llama_decode(ctx, L.llama_batch_get_one(tok, 1)) != 0:
            break  # context full or a failure: the count below shows the run stopped early
        tok[0] = L.llama_sampler_sample(sampler, ctx, -1)
        now = time.perf_counter()
        latencies.append(now - last)
        last = now
        generated.append(tok[0])
    decode_s = last - t_first
    sample = {
        "prompt_tokens": len(prompt_ids),
        "gen_tokens": len(generated),
        "ttft_s": t_first - t0,
        "prefill_s": t_first - t0,
        "prefill_tok_s": len(prompt_ids) / (t_first - t0),
        "decode_s": decode_s,
        "decode_tok_s": (len(generated) - 1) / decode_s if decode_s > 0 else None,
        "token_latencies_s": latencies,
        "first_token_ids": generated[:8],
    }
    if sampler_nvml is not None:
        sample["decode_energy_j"] = sampler_nvml.energy_joules(t_first, last)
        sample["decode_mean_w"] = sampler_nvml.mean_watts(t_first, last)
    return sample


def version(L) -> str:
    info = L.llama_print_system_info().decode().strip()
    ver = getattr(__import__("llama_cpp"), "__version__", "?")
    return f"llama-cpp-python {ver}; {info}"


def bench(args) -> None:
    import llama_cpp as L

    nvml = telemetry.gpu_sampler() if args.n_gpu_layers > 0 else None
    model, ctx = load(L, args)
    sparams = L.llama_sampler_chain_default_params()
    sparams.no_perf = True
    sampler = L.llama_sampler_chain_init(sparams)
    L.llama_sampler_chain_add(sampler, L.llama_sampler_init_greedy())
    prompt_ids = tokenize(L, model, args.prompt)

    warm, samples = [], []
    started = time.perf_counter()
    with (nvml if nvml is not None else _Null()):
        for _ in range(args.warmup):
            warm.append(one_run(L, ctx, sampler, prompt_ids, args.gen_len, nvml))
        measured_from = time.perf_counter()
        while len(samples) < args.reps or (
            time.perf_counter() - measured_from < args.min_time and len(samples) < args.max_reps
        ):
            samples.append(one_run(L, ctx, sampler, prompt_ids, args.gen_len, nvml))
    raw = {
        "engine_version": version(L),
        "prompt_token_ids": prompt_ids,
        "warmup_samples": warm,
        "samples": samples,
        "wall_s": time.perf_counter() - started,
        "model_bytes": L.llama_model_size(model),
        "model_n_params": L.llama_model_n_params(model),
        "model_desc": _desc(L, model),
        "gpu_offload": bool(L.llama_supports_gpu_offload()),
        "settings": {
            "n_gpu_layers": args.n_gpu_layers, "threads": args.threads, "n_batch": args.n_batch,
            "n_ctx": args.n_ctx, "flash_attn": args.flash_attn, "split_mode": args.split_mode,
        },
    }
    if nvml is not None:
        raw["peak_mem_bytes"], raw["peak_mem_kind"] = nvml.peak_bytes, "gpu_device_used_nvml"
    else:
        raw["peak_mem_bytes"], raw["peak_mem_kind"] = telemetry.process_peak_rss_bytes(), "process_max_rss"
    L.llama_sampler_free(sampler)
    L.llama_free(ctx)
    L.llama_model_free(model)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(raw, f)
    os.replace(tmp, args.out)
    last = samples[-1]
    print(f"decode {last['decode_tok_s']:.2f} tok/s, prefill {last['prefill_tok_s']:.2f} tok/s, "
          f"{len(samples)} repetitions, {last['gen_tokens']} tokens each")


def _desc(L, model) -> str:
    buf = ctypes.create_string_buffer(256)
    L.llama_model_desc(model, buf, len(buf))
    return buf.value.decode(errors="replace")


class _Null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return None


def quantize(args) -> None:
    import llama_cpp as L

    qp = L.llama_model_quantize_default_params()
    qp.ftype = getattr(L, f"LLAMA_FTYPE_MOSTLY_{args.type}")
    qp.nthread = os.cpu_count() or 1
    tmp = args.out + ".tmp"
    if L.llama_model_quantize(args.inp.encode(), tmp.encode(), ctypes.byref(qp)) != 0:
        sys.exit(f"llama_model_quantize failed for {args.inp}")
    os.replace(tmp, args.out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m llmperf_nb.drivers.llama_cpp")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench")
    b.add_argument("--model", required=True)
    b.add_argument("--prompt", required=True)
    b.add_argument("--gen-len", type=int, default=256)
    b.add_argument("--reps", type=int, default=5)
    b.add_argument("--warmup", type=int, default=1)
    b.add_argument("--min-time", type=float, default=0.0)
    b.add_argument("--max-reps", type=int, default=1000)
    b.add_argument("--n-gpu-layers", type=int, default=0)
    b.add_argument("--split-mode", choices=SPLIT_MODES, default="layer")
    b.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    b.add_argument("--n-batch", type=int, default=512)
    b.add_argument("--n-ctx", type=int, default=0)
    b.add_argument("--flash-attn", choices=FLASH_ATTN, default="auto")
    b.add_argument("--out", required=True)
    q = sub.add_parser("quantize")
    q.add_argument("inp")
    q.add_argument("out")
    q.add_argument("type", choices=["Q4_0", "Q4_K_M", "Q8_0", "F16"])
    args = ap.parse_args(argv)
    if args.cmd == "bench":
        if args.n_ctx == 0:
            args.n_ctx = ((len(args.prompt) + args.gen_len + 64 + 255) // 256) * 256
        bench(args)
    else:
        quantize(args)


if __name__ == "__main__":
    main()
