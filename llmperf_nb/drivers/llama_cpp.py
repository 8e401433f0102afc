"""llama.cpp benchmark driver, through llama-cpp-python's low-level (C API) bindings.

Greedy sampling is numpy's argmax over the logits llama.cpp returns (``--sampler argmax``, about
10 us a token for a 32000 vocabulary), or llama.cpp's own greedy sampler (``--sampler llama``,
which first copies the whole vocabulary into a candidate array each token). The timing loop is
:mod:`llmperf_nb.drivers.common`.

    python -m llmperf_nb.drivers.llama_cpp bench --model M.gguf --prompt-ids 1,1724,... --out raw.json
    python -m llmperf_nb.drivers.llama_cpp sweep --model M.gguf --prompt-ids 1,1724,... --batch-sizes 1,4 \
        --prompt-lengths 8,64 --gen-len 32 --out raw.json
    python -m llmperf_nb.drivers.llama_cpp quantize IN.gguf OUT.gguf Q4_0
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys

from llmperf_nb import options
from llmperf_nb.drivers import common
from llmperf_nb.options.llama_cpp import Options

SPLIT_MODES = {"none": 0, "layer": 1, "row": 2, "tensor": 3}  # llama_split_mode
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


def load_model(L, args):
    L.llama_backend_init()
    mp = L.llama_model_default_params()
    mp.n_gpu_layers = args.opts.n_gpu_layers
    mp.split_mode = SPLIT_MODES[args.opts.split_mode]
    model = L.llama_model_load_from_file(args.model.encode(), mp)
    if not model:
        sys.exit(f"llama.cpp could not load {args.model}")
    return model


def new_context(L, model, args, n_ctx: int, n_batch: int, n_seq: int = 1):
    cp = L.llama_context_default_params()
    cp.n_ctx = n_ctx
    cp.n_batch = cp.n_ubatch = n_batch
    cp.n_seq_max = n_seq
    cp.kv_unified = False  # each sequence its own n_ctx / n_seq cells, as llama-batched-bench by default
    cp.n_threads = cp.n_threads_batch = args.opts.threads
    cp.flash_attn_type = FLASH_ATTN[args.opts.flash_attn]
    cp.no_perf = True
    ctx = L.llama_init_from_model(model, cp)
    if not ctx:
        sys.exit(f"llama.cpp could not create a context of {n_ctx} tokens for {n_seq} sequences")
    return ctx


class Stepper:
    def __init__(self, L, args):
        self.L = L
        self.log_cb = _quiet_logs(L)
        self.model = load_model(L, args)
        self.ctx = new_context(L, self.model, args, args.n_ctx, args.opts.n_batch)
        sp = L.llama_sampler_chain_default_params()
        sp.no_perf = True
        self.sampler = L.llama_sampler_chain_init(sp)
        L.llama_sampler_chain_add(self.sampler, L.llama_sampler_init_greedy())
        self.use_argmax = args.sampler == "argmax"
        self.n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(self.model))
        self._logits = (None, None)  # (address, numpy view) of llama.cpp's logits buffer
        self.tok = (L.llama_token * 1)()
        # built once: the batch points at self.tok, so each decode only changes the token
        self.one = L.llama_batch_get_one(self.tok, 1)

    def reset(self) -> None:
        self.L.llama_memory_clear(self.L.llama_get_memory(self.ctx), True)
        self.L.llama_sampler_reset(self.sampler)

    def _step(self, batch) -> int:
        if self.L.llama_decode(self.ctx, batch) != 0:
            sys.exit("llama_decode failed (context full?)")
        # reading the logits (or the sampled id) waits for the device to finish the pass
        if not self.use_argmax:
            return self.L.llama_sampler_sample(self.sampler, self.ctx, -1)
        ptr = self.L.llama_get_logits_ith(self.ctx, -1)
        address = ctypes.cast(ptr, ctypes.c_void_p).value
        if address != self._logits[0]:  # the buffer moves only when llama.cpp reallocates it
            import numpy as np

            self._logits = (address, np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)))
        return int(self._logits[1].argmax())

    def prefill(self, ids: list[int]) -> int:
        self.prompt = (self.L.llama_token * len(ids))(*ids)  # kept alive while the batch points at it
        return self._step(self.L.llama_batch_get_one(self.prompt, len(ids)))

    def decode(self, token: int) -> int:
        self.tok[0] = token
        return self._step(self.one)

    def facts(self) -> dict:
        L = self.L
        buf = ctypes.create_string_buffer(256)
        L.llama_model_desc(self.model, buf, len(buf))
        return {"model_desc": buf.value.decode(errors="replace"), "model_bytes": L.llama_model_size(self.model),
                "model_n_params": L.llama_model_n_params(self.model),
                "gpu_offload": bool(L.llama_supports_gpu_offload())}

    def close(self) -> None:
        self.L.llama_sampler_free(self.sampler)
        self.L.llama_free(self.ctx)
        self.L.llama_model_free(self.model)


class BatchStepper:
    """llama.cpp's batched decode: B sequences, one KV slot each (seq_id i), in one ``llama_decode``
    per step; the prompt in chunks of at most n_batch tokens. Greedy pick: numpy argmax over the
    B rows of logits llama.cpp returns."""

    def __init__(self, L, model, args, batch: int, max_len: int):
        self.L, self.batch = L, batch
        self.n_batch = max(args.opts.n_batch, batch)
        self.ctx = new_context(L, model, args, batch * ((max_len + 255) // 256 * 256), self.n_batch, batch)
        self.n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
        self.b = L.llama_batch_init(self.n_batch, 0, 1)
        self.pos = 0

    def reset(self) -> None:
        self.L.llama_memory_clear(self.L.llama_get_memory(self.ctx), True)

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> list[int]:
        """Decode (token, pos, seq, wants logits) entries; the argmax of each entry that wants logits."""
        import numpy as np

        b = self.b
        for i, (tok, pos, seq, out) in enumerate(entries):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = tok, pos, 1, out
            b.seq_id[i][0] = seq
        b.n_tokens = len(entries)
        if self.L.llama_decode(self.ctx, b) != 0:
            sys.exit("llama_decode failed (context full?)")
        n_out = sum(e[3] for e in entries)
        logits = np.ctypeslib.as_array(self.L.llama_get_logits(self.ctx), shape=(n_out, self.n_vocab))
        return [int(i) for i in logits.argmax(axis=1)]  # reading them waits for the device

    def prefill(self, prompts: list[list[int]]) -> list[int]:
        flat = [(t, p, s, p == len(q) - 1) for s, q in enumerate(prompts) for p, t in enumerate(q)]
        firsts = []
        for start in range(0, len(flat), self.n_batch):
            firsts.extend(self._decode(flat[start:start + self.n_batch]))
        self.pos = len(prompts[0])
        return firsts

    def decode(self, tokens: list[int]) -> list[int]:
        out = self._decode([(t, self.pos, s, True) for s, t in enumerate(tokens)])
        self.pos += 1
        return out

    def close(self) -> None:
        self.L.llama_batch_free(self.b)
        self.L.llama_free(self.ctx)


def sweep(args) -> None:
    """Every batch size x prompt length of ``--batch-sizes`` and ``--prompt-lengths`` on one loaded model."""
    import llama_cpp as L

    ids = common.parse_ids(args.prompt_ids)
    log_cb = _quiet_logs(L)  # noqa: F841 (llama.cpp keeps the pointer: it must stay alive)
    model = load_model(L, args)
    steppers = common.PointSteppers(lambda batch, max_len: BatchStepper(L, model, args, batch, max_len), args.gen_len)
    doc = common.sweep(steppers, args, ids)
    steppers.release()
    info = L.llama_print_system_info().decode().strip()
    doc.update(engine_version=f"llama-cpp-python {L.__version__} (llama.cpp vendored in it); {info}",
               prompt_token_ids=ids,
               settings={"n_gpu_layers": args.opts.n_gpu_layers, "threads": args.opts.threads, "n_batch": args.opts.n_batch,
                         "flash_attn": args.opts.flash_attn, "split_mode": args.opts.split_mode, "kv_unified": False,
                         "api": "llama_batch_init + llama_decode, one seq_id per sequence"})
    L.llama_model_free(model)
    common.write(doc, args.out)


def bench(args) -> None:
    import llama_cpp as L

    ids = common.parse_ids(args.prompt_ids)
    if args.n_ctx == 0:
        args.n_ctx = len(ids) + args.gen_len  # what llama-bench makes for -d prompt -n gen_len
    stepper = Stepper(L, args)
    doc = common.measure(lambda nvml: common.generate(stepper, ids, args.gen_len, nvml), args)
    info = L.llama_print_system_info().decode().strip()
    doc.update(
        engine_version=f"llama-cpp-python {L.__version__} (llama.cpp vendored in it); {info}",
        prompt_token_ids=ids,
        settings={"n_gpu_layers": args.opts.n_gpu_layers, "threads": args.opts.threads, "n_batch": args.opts.n_batch,
                  "n_ctx": args.n_ctx, "flash_attn": args.opts.flash_attn, "split_mode": args.opts.split_mode,
                  "sampler": args.sampler},
        **stepper.facts(),
    )
    stepper.close()
    if args.llama_bench:
        doc["crosscheck"] = crosscheck(args, doc)
    common.write(doc, args.out)


def crosscheck(args, doc: dict) -> dict:
    """llama.cpp's own llama-bench on the same file and settings: decode only (``-p 0 -n gen_len``)
    after the prompt's length of context (``-d``, untimed), in a context of prompt + gen_len
    positions: the harness's workload, less the sampling."""
    from llmperf_nb import process
    from llmperf_nb.importers.llama_cpp import parse_bench_json

    argv = [args.llama_bench, "-m", args.model, "-p", "0", "-n", str(args.gen_len),
            "-d", str(len(doc["prompt_token_ids"])), "-r", str(args.reps),
            "-ngl", str(args.opts.n_gpu_layers), "-sm", args.opts.split_mode, "-t", str(args.opts.threads),
            "-fa", args.opts.flash_attn, "-b", str(args.opts.n_batch), "-o", "json"]
    out = process.run(argv, timeout=3600)
    start = out.output.find("[")  # llama-bench logs to stderr, merged here: the JSON starts at "["
    bench = parse_bench_json(out.output[start:])
    theirs = [s["decode_tok_s"] for s in bench.samples]
    # the binary by name: its folder is the layout of the machine that ran it
    return common.compare_with_tool("llama-bench", [os.path.basename(argv[0]), *argv[1:]], theirs, doc,
                                    build_commit=bench.build.get("build_commit"))


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
    common.add_workload_args(b)
    options.add_argument(b)  # llmperf_nb/options/llama_cpp.py: n_gpu_layers, split_mode, threads, n_batch, ...
    b.add_argument("--n-ctx", type=int, default=0, help="0: the prompt and gen_len, rounded up to 256")
    b.add_argument("--sampler", choices=["argmax", "llama"], default="argmax",
                   help="greedy pick: numpy argmax over the logits, or llama.cpp's greedy sampler")
    b.add_argument("--llama-bench", help="also run this llama-bench on the same file and settings (cross-check)")
    w = sub.add_parser("sweep")
    w.add_argument("--model", required=True)
    common.add_workload_args(w)
    common.add_sweep_args(w)
    options.add_argument(w)
    q = sub.add_parser("quantize")
    q.add_argument("inp")
    q.add_argument("out")
    q.add_argument("type", choices=["Q4_0", "Q4_K_M", "Q8_0", "F16"])
    args = ap.parse_args(argv)
    if args.cmd in ("bench", "sweep"):
        args.opts = options.read(args.options, Options)
    {"bench": bench, "sweep": sweep, "quantize": quantize}[args.cmd](args)


if __name__ == "__main__":
    main()
