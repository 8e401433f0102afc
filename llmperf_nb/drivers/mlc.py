"""MLC LLM benchmark driver: the model library ``mlc_llm compile`` built, run in TVM's Relax VM.

This is NOT MLC's serve engine (``MLCEngine`` / ``mlc_llm bench``): that engine lives in
``libmlc_llm`` (C++, with tokenizers-cpp, which needs Rust), and this project runs mlc-llm from its
Python source on PyPI's Apache TVM (:mod:`llmperf_nb.drivers.mlc_compat`), without that library.
What runs is what MLC's engine runs on the device for a batch of one: the compiled ``embed``,
``prefill`` and ``decode`` functions of the model library, the converted weights loaded from
``tensor-cache.json`` (``tvm.contrib.tvmjs.load_tensor_cache``), and a paged KV cache made by the
library's own ``create_tir_paged_kv_cache`` (or ``create_flashinfer_paged_kv_cache`` when compiled
with FlashInfer), driven through the KV-state builtins (``vm.builtin.kv_state_*``) exactly as
mlc-llm's python/mlc_llm/testing/debug_chat.py does. What differs from MLC's engine: its
scheduler, its GPU sampler (greedy here: argmax of the logits on the host, which is also the one
host sync per token that makes a step done when timed) and its request bookkeeping.

The timing loop is :func:`llmperf_nb.drivers.common.generate`: prefill = embed(prompt) + prefill,
each decode step = embed(token) + decode + argmax on the host.

    python -m llmperf_nb.drivers.mlc --model DIR --model-lib DIR/lib.so --device cuda \\
        --prompt-ids 1,1724,... --gen-len 256 --reps 5 --out raw.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from llmperf_nb import options
from llmperf_nb.drivers import common
from llmperf_nb.options.mlc import Options

ENGINE_KIND = "Relax VM driver (mlc-llm's compiled model library in TVM's Relax VM), not MLC's serve engine"
PAGE_SIZE = 16  # MLC's engine and debug_chat.py use 16-token pages
FLASHINFER_OFF = ("off: MLC's default attention on CUDA, but its kernels come from the flashinfer-python package, "
                  "JIT-compiled at model-compile time, which the GPU machine does not have and which was not tried "
                  "with TVM 0.26; attention runs TVM's generated TIR kernels for the paged KV cache instead")


class Stepper:
    """The common Stepper protocol over the model library's embed/prefill/decode functions."""

    def __init__(self, model: str, model_lib: str, device: str, max_seq_len: int | None = None):
        from llmperf_nb.drivers import mlc_compat

        mlc_compat.activate()
        import numpy as np
        import tvm
        from tvm import relax
        from tvm.contrib import tvmjs
        from tvm_ffi import Shape

        self.np, self.tvm, self.Shape = np, tvm, Shape
        self.device = tvm.runtime.device(device, 0)
        self.config = json.loads((Path(model) / "mlc-chat-config.json").read_text())
        shards = self.config.get("tensor_parallel_shards", 1) or 1
        if shards != 1:
            raise RuntimeError(
                f"this model was compiled for {shards} tensor-parallel shards; the Relax VM driver runs one "
                "shard (N shards need MLC's disco workers and its sharded-weight loader, both in libmlc_llm)")
        ex = tvm.runtime.load_module(model_lib)
        self.metadata = json.loads(relax.VirtualMachine(ex, tvm.runtime.device("cpu"))["_metadata"]())
        vm = relax.VirtualMachine(ex, self.device)
        self.mod = vm.module
        params, meta = tvmjs.load_tensor_cache(model, self.device)
        names = [p["name"] for p in self.metadata["params"]]
        if len(names) != meta["ParamSize"]:
            raise RuntimeError(f"{model}: {meta['ParamSize']} tensors on disk, the library expects {len(names)}")
        self.params = [params[n] for n in names]
        self.embed, self.prefill_fn, self.decode_fn = self.mod["embed"], self.mod["prefill"], self.mod["decode"]
        if self.mod.implements_function("create_flashinfer_paged_kv_cache"):
            self.kv_kind, create = "flashinfer", self.mod["create_flashinfer_paged_kv_cache"]
        else:
            self.kv_kind, create = "tir", self.mod["create_tir_paged_kv_cache"]
        g = tvm.get_global_func
        self.add_seq, self.remove_seq = g("vm.builtin.kv_state_add_sequence"), g("vm.builtin.kv_state_remove_sequence")
        self.begin, self.end = g("vm.builtin.kv_state_begin_forward"), g("vm.builtin.kv_state_end_forward")
        self.reshape = g("vm.builtin.reshape")
        ctx = int(max_seq_len or self.config["context_window_size"])
        self.prefill_chunk = int(self.config.get("prefill_chunk_size") or ctx)
        sliding = int(self.config.get("sliding_window_size", -1) != -1)
        self.kv = create(Shape([1]), Shape([ctx]), Shape([self.prefill_chunk]), Shape([PAGE_SIZE]), Shape([sliding]))
        self.hidden = self.config["model_config"]["hidden_size"]
        self.has_seq = False

    def _embed(self, ids: list[int]):
        t = self.tvm.runtime.tensor(self.np.asarray(ids, dtype="int32"), device=self.device)
        e = self.embed(t, self.params)
        return self.reshape(e, self.Shape([1, len(ids), self.hidden]))

    def _argmax(self, logits) -> int:
        return int(self.np.argmax(logits.numpy().reshape(-1)))  # copies to the host: the step is done

    def reset(self) -> None:
        if self.has_seq:
            self.remove_seq(self.kv, 0)
        self.add_seq(self.kv, 0)
        self.has_seq = True

    def prefill(self, ids: list[int]) -> int:
        if len(ids) > self.prefill_chunk:
            raise RuntimeError(f"prompt of {len(ids)} tokens is longer than the prefill chunk ({self.prefill_chunk})")
        self.begin(self.kv, self.Shape([0]), self.Shape([len(ids)]))
        logits, self.kv = self.prefill_fn(self._embed(ids), self.kv, self.params)
        self.end(self.kv)
        return self._argmax(logits)

    def decode(self, token: int) -> int:
        self.begin(self.kv, self.Shape([0]), self.Shape([1]))
        logits, self.kv = self.decode_fn(self._embed([token]), self.kv, self.params)
        self.end(self.kv)
        return self._argmax(logits)


def library_settings(metadata: dict, lib: str) -> dict:
    """What the compiled library says about itself, beside what the compile step recorded."""
    build = {}
    info = Path(lib).with_name("llmperf-mlc-build.json")
    if info.exists():
        build = json.loads(info.read_text())
    return {"model_type": metadata.get("model_type"), "quantization": metadata.get("quantization"),
            "context_window_size": metadata.get("context_window_size"),
            "prefill_chunk_size": metadata.get("prefill_chunk_size"),
            "tensor_parallel_shards": metadata.get("tensor_parallel_shards"), "compile": build}


def bench(args) -> None:
    from llmperf_nb.drivers import mlc_compat

    ids = common.parse_ids(args.prompt_ids)
    stepper = Stepper(args.model, args.model_lib, args.device, args.opts.max_seq_len)
    doc = common.measure(lambda nvml: common.generate(stepper, ids, args.gen_len, nvml), args)
    runs = doc["warmup_samples"] + doc["samples"]
    digests = [s["token_ids_sha256"] for s in runs]
    lib = library_settings(stepper.metadata, args.model_lib)
    doc.update(
        engine_version=f"mlc-llm {(mlc_compat.source_commit() or 'unknown')[:12]} (source) on apache-tvm "
                       f"{stepper.tvm.__version__}, Relax VM driver",
        prompt_token_ids=ids,
        settings={
            "engine": ENGINE_KIND,
            "device": args.device, "model_lib": args.model_lib, "max_seq_len": args.opts.max_seq_len,
            "kv_cache": f"paged, {stepper.kv_kind} kernels (create_{stepper.kv_kind}_paged_kv_cache), "
                        f"page size {PAGE_SIZE}",
            "flashinfer": "on" if stepper.kv_kind == "flashinfer" else FLASHINFER_OFF,
            "cuda_graph": bool(lib["compile"].get("cuda_graph", False)),
            "sampling": "greedy: argmax of the logits on the host, one host sync per token",
            "library": lib,
            "compat": mlc_compat.applied(),
            "same_tokens_every_run": len(set(digests)) == 1,
        },
        tensor_parallel_shards=stepper.config.get("tensor_parallel_shards", 1),
        versions=mlc_compat.versions(),
    )
    common.write(doc, args.out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m llmperf_nb.drivers.mlc")
    ap.add_argument("--model", required=True, help="folder with mlc-chat-config.json and the converted weights")
    ap.add_argument("--model-lib", required=True, help="the compiled model library (.so)")
    ap.add_argument("--device", default="cuda", help="TVM device kind: cuda, rocm or cpu")
    options.add_argument(ap)  # llmperf_nb/options/mlc.py: max_seq_len (the KV cache length), and the build's
    common.add_workload_args(ap)
    args = ap.parse_args(argv)
    args.opts = options.read(args.options, Options)
    bench(args)


if __name__ == "__main__":
    main()
