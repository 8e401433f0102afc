"""A/B on the GPU machine: what reading NVML, and how the greedy token is picked, cost the measured
decode speed; and HF transformers' per-token loop against its own ``generate()``.

Run after ``scripts/gpu-run.sh prepare`` with its environment (``eval "$(scripts/gpu-run.sh env)"``),
once the int4 cells have written their weights into CACHE:

    python3 scripts/gpu-jobs/ab_nvml.py --cache-dir /tmp/llmperf-cache --out ab.json

Each variant is one driver process on the same weights, as the pipeline runs it; only the flag under
test changes. The printed table and ab.json are what the int4 report's notes quote.
"""

from __future__ import annotations

import argparse
import functools
import glob
import json
import os
import statistics
import sys
import tempfile
import time

from llmperf_nb import process


@functools.cache
def prompt() -> str:
    """The benchmark's prompt as the drivers take it: comma-separated token ids."""
    from llmperf_nb.params import DEFAULT_PROMPT
    from llmperf_nb.tokenizer import prompt_ids

    return ",".join(map(str, prompt_ids(DEFAULT_PROMPT)[0]))

THREAD = ("import sys; from llmperf_nb.drivers import common; m = common.measure; "
          "common.measure = lambda f, a, continuous=False: m(f, a, True); "
          "import runpy; sys.argv = sys.argv[1:]; runpy.run_module(sys.argv[0], run_name='__main__')")


def driver(module: str, args: list[str], nvml: str, reps: int) -> dict:
    """nvml: 'marks' (the product), 'thread' (the old 20 ms polling thread), 'none'."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw.json")
        common = ["bench", *args, "--prompt-ids", prompt(), "--reps", str(reps), "--warmup", "1", "--out", raw]
        if nvml != "none":
            common += ["--gpus", "0"]
        argv = ([sys.executable, "-c", THREAD, module] if nvml == "thread" else [sys.executable, "-m", module]) + common
        process.run(argv, timeout=1800)
        doc = json.load(open(raw))
    speeds = [s["decode_tok_s"] for s in doc["samples"]]
    return {"decode_tok_s": speeds, "mean": statistics.mean(speeds),
            "energy_source": doc.get("energy_source"), "argv": argv}


def llama_bench(gguf: str, reps: int) -> dict:
    argv = [os.environ["LLAMA_BENCH"], "-m", gguf, "-p", "0", "-n", "256", "-r", str(reps), "-ngl", "999",
            "-sm", "layer", "-t", "1", "-fa", "auto", "-b", "512", "-o", "json"]
    out = process.run(argv, timeout=1800).output  # logs and JSON merged: the JSON starts at "["
    speeds = json.loads(out[out.find("["):])[0]["samples_ts"]
    return {"decode_tok_s": speeds, "mean": statistics.mean(speeds), "argv": argv}


def hf_generate(model_dir: str, reps: int) -> dict:
    """transformers' own generate(): 256 new tokens, greedy, EOS ignored; wall time includes prefill."""
    import torch

    from llmperf_nb.drivers import transformers as drv

    args = argparse.Namespace(model=model_dir, random_init=True, seed=0, device="cuda", num_gpus=1,
                              dtype="float16", attn="sdpa", quant="none")
    model, _ = drv.load(torch, args)
    ids = torch.tensor([[int(x) for x in prompt().split(",")]], device="cuda")
    speeds = []
    with torch.inference_mode():
        for i in range(reps + 1):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = model.generate(ids, max_new_tokens=256, min_new_tokens=256, do_sample=False)
            torch.cuda.synchronize()
            if i:  # the first is the warm-up
                speeds.append((out.shape[1] - ids.shape[1]) / (time.perf_counter() - t0))
    return {"tok_s_incl_prefill": speeds, "mean": statistics.mean(speeds)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--skip-hf", action="store_true")
    a = ap.parse_args()
    results = {}
    gguf = sorted(glob.glob(f"{a.cache_dir}/gguf/Llama-2-7b-chat-hf-Q4_0-synthetic-*.gguf"))[-1]
    lc = ["--model", gguf, "--n-gpu-layers", "999", "--split-mode", "layer", "--threads", "1"]
    mod = "llmperf_nb.drivers.llama_cpp"
    for name, fn in [
        ("llama-bench", lambda: llama_bench(gguf, a.reps)),
        ("llama.cpp harness, NVML marks, argmax (product)", lambda: driver(mod, lc, "marks", a.reps)),
        ("llama.cpp harness, no NVML, argmax", lambda: driver(mod, lc, "none", a.reps)),
        ("llama.cpp harness, NVML thread 20 ms, argmax", lambda: driver(mod, lc, "thread", a.reps)),
        ("llama.cpp harness, NVML marks, llama.cpp sampler", lambda: driver(mod, lc + ["--sampler", "llama"], "marks", a.reps)),
        ("llama.cpp harness, NVML thread 20 ms, llama.cpp sampler (previous version)",
         lambda: driver(mod, lc + ["--sampler", "llama"], "thread", a.reps)),
    ]:
        results[name] = fn()
        print(f"{results[name]['mean']:9.2f}  {name}", flush=True)
        save(a.out, gguf, a.reps, results)  # after each variant: a later crash keeps what was measured
    if not a.skip_hf:
        hf = sorted(glob.glob(f"{a.cache_dir}/hf/Llama-2-7b-chat-hf-*"))[-1]
        tf = ["--model", hf, "--random-init", "--device", "cuda", "--num-gpus", "1", "--dtype", "float16"]
        mod = "llmperf_nb.drivers.transformers"
        for name, fn in [
            ("HF fp16 dynamic, NVML marks (product)", lambda: driver(mod, tf, "marks", 2)),
            ("HF fp16 dynamic, NVML thread 20 ms (previous version)", lambda: driver(mod, tf, "thread", 2)),
            ("HF fp16 dynamic, no NVML", lambda: driver(mod, tf, "none", 2)),
            ("HF generate(), fp16 dynamic, tok/s incl. prefill", lambda: hf_generate(hf, 2)),
        ]:
            results[name] = fn()
            print(f"{results[name]['mean']:9.2f}  {name}", flush=True)
            save(a.out, gguf, a.reps, results)


def save(path: str, gguf: str, reps: int, results: dict) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump({"gguf": gguf, "reps": reps, "results": results}, f, indent=1)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
