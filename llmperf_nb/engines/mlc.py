"""MLC LLM: weights converted to MLC's format (q4f16_1 for int4, q0f16 for fp16), a model library
compiled by TVM, benchmarked by :mod:`llmperf_nb.drivers.mlc` in TVM's Relax VM.

MLC's own wheels (mlc.ai's index) bundle a TVM fork; here mlc-llm runs from its Python *source*
(github.com/mlc-ai/mlc-llm python/, commit in :data:`llmperf_nb.drivers.mlc_compat.TESTED_COMMIT`,
packed by scripts/pack-mlc-source.sh and never committed) on PyPI's ``apache-tvm==0.26.0`` with
``apache-tvm-ffi==0.1.13.post2``, through the adaptations of :mod:`llmperf_nb.drivers.mlc_compat`.
``libmlc_llm`` (MLC's C++ serve engine) is not built, so the benchmark is the Relax VM driver,
not MLC's serve engine (``mlc_llm bench``); the result's settings say so.

Compile (``compile``), with the current ``mlc_llm`` command line run through the compat module
(``python -m llmperf_nb.drivers.mlc_compat SUBCOMMAND ...``), each step cached by its inputs:

1. ``convert_weight HF_DIR --quantization q4f16_1 --device cuda|rocm|cpu -o W`` (params_shard_*.bin,
   tensor-cache.json), in a folder keyed by the weights, quantization, TVM and mlc-llm versions
   only, so a change of compile options does not convert again;
2. ``gen_config HF_DIR --quantization q4f16_1 --conv-template llama-2 --context-window-size L
   --tensor-parallel-shards N -o M`` (mlc-chat-config.json, tokenizer files);
3. ``compile M/mlc-chat-config.json --device cuda|rocm|llvm --opt FLAGS --overrides
   "tensor_parallel_shards=N;context_window_size=L" -o M/lib.so``; W's files are linked into M.

``--opt`` names every flag (a flag string replaces MLC's preset; unnamed flags fall back to False):
``flashinfer=0;cublas_gemm=0;faster_transformer=0;cutlass=0;cudagraph=1`` on CUDA by default.
FlashInfer is MLC's default attention on CUDA (preset O2); it is off here because its kernels come
from the ``flashinfer-python`` package, JIT-compiled at model-compile time, which neither the GPU
image nor the carried wheels hold and which was not tried with TVM 0.26; attention then uses the
TIR kernels that TVM generates for the paged KV cache (what MLC uses on every non-CUDA target).
cuBLAS GEMM (BYOC) is off for the same reason (not verified in PyPI's TVM build); it only serves
prefill-sized matmuls, not batch-1 decode. CUTLASS and FasterTransformer are off as in O2 for
q4f16_1. Each is an option of the engine, and the flags used are recorded with the result.

CPU cells (``gpu: cpu``) compile for ``llvm``: that is how the tests run the whole path here.

Synthetic weights: MLC converts from an HF checkpoint, so :func:`llmperf_nb.weights.hf.write_synthetic_hf`
writes one (fp16 safetensors + tokenizer) and ``convert_weight`` quantizes it like a real one. An
index file is added so MLC does not load the whole safetensors file just to list its tensor names
(its ``_check_safetensor`` does that for a lone model.safetensors). ``convert_weight`` needs torch
(CPU is enough) to read safetensors (mlc_llm/loader/utils.py imports it).

Tensor parallelism: ``tensor_parallel_shards`` is the cell's shard count, written into the config
and compiled in; the Relax VM driver runs one shard (N > 1 needs MLC's disco loader in libmlc_llm).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .. import hardware
from ..drivers import mlc_compat
from ..exceptions import ConfigError
from ..importers import mlc as parsers
from ..models import get_model
from ..options import argv as options_argv
from ..options.mlc import Options
from ..process import python
from .base import Engine, Measurement, Prepared, cache_key, folder_bytes, measurement_from_raw, workload_args

if TYPE_CHECKING:
    from ..cells import Cell

#: bump when compile() makes different files for the same inputs
PREPARE_VERSION = 2
QUANT_CODES = {"int4": "q4f16_1", "fp16": "q0f16"}
CONV_TEMPLATE = "llama-2"  # no effect on speed: prompts go in as token ids, EOS is ignored
#: the weight files convert_weight writes (older releases: ndarray-cache.json)
WEIGHT_INDEX = ("tensor-cache.json", "ndarray-cache.json")
BUILD_INFO = "llmperf-mlc-build.json"
#: TVM target kind -> the device convert_weight quantizes on
CONVERT_DEVICE = {"cuda": "cuda", "rocm": "rocm", "llvm": "cpu"}
#: TVM target kind -> the device the driver runs on
RUN_DEVICE = {"cuda": "cuda", "rocm": "rocm", "llvm": "cpu"}


class Mlc(Engine):
    name = "mlc"
    label = "MLC LLM"
    packages = ("tvm", "tvm_ffi")
    install_hint = (f"pip install apache-tvm=={mlc_compat.TVM_VERSION} apache-tvm-ffi=={mlc_compat.TVM_FFI_VERSION}, "
                    f"and mlc-llm's Python source in ${mlc_compat.ENV_SOURCE} (docs/mlc.md)")
    options_class = Options
    formats = {"int4": "MLC q4f16_1", "fp16": "MLC q0f16"}
    workload_gaps = {"sweep": "the Relax VM driver has no batched API (MLC's serve engine, libmlc_llm, is not built)",
                     "serve": "mlc_llm serve needs libmlc_llm, which is not built here (docs/mlc.md)"}
    dockerfiles = {"cuda": "Dockerfile.cu130.mlc", "rocm": "Dockerfile.rocm62.mlc"}
    #: the target must fit the cell's GPU, so naming it never makes another configuration
    label_ignores = ("target",)
    parsers = {
        "verbose": parsers.parse_verbose,
        "metrics-json": parsers.parse_metrics_json,
        "metrics-text": parsers.parse_metrics_text,
        "stats": parsers.parse_stats,
    }

    def configuration(self, options: dict) -> str:
        """'MLC LLM (Relax VM driver, ...)': what runs is the compiled library in TVM's Relax VM, not MLC's
        serve engine (imported logs of MLC's own tools keep the plain label)."""
        shown = {k: v for k, v in options.items() if k not in self.label_ignores}
        return f"{self.label} (Relax VM driver{''.join(f', {k}={v}' for k, v in sorted(shown.items()))})"

    def unavailable(self, cell: Cell) -> str | None:
        missing = mlc_compat.missing()
        if missing:
            return f"{self.label} cannot run here: " + "; ".join(missing)
        return None

    # -- what gets built -------------------------------------------------------------------------

    def target(self, cell: Cell, opts: Options) -> str:
        """The TVM target kind for the cell: from its GPU's vendor (llvm for CPU cells) unless set."""
        vendor = hardware.gpu_vendor(cell.gpu.name)
        want = {"nvidia": "cuda", "amd": "rocm", "cpu": "llvm"}.get(vendor)
        if opts.target == "auto":
            if want is None:
                raise ConfigError(f"MLC LLM: no target for GPU vendor {vendor!r}; set option 'target'")
            return want
        if want is not None and opts.target != want:
            where = "CPU" if vendor == "cpu" else f"{vendor} GPU ({cell.gpu.name})"
            raise ConfigError(f"MLC LLM option target={opts.target!r} does not fit the cell's {where}; "
                              f"use {want!r} or 'auto'")
        return opts.target

    def build_settings(self, cell: Cell) -> dict:
        """Everything the compiled artifact depends on besides the weights."""
        opts = self.options(**cell.engine.options)
        target = self.target(cell, opts)
        cuda = target == "cuda"
        flags = {"flashinfer": int(opts.flashinfer and cuda), "cublas_gemm": int(opts.cublas_gemm and cuda),
                 "faster_transformer": 0, "cutlass": 0, "cudagraph": int(opts.use_cuda_graph and cuda)}
        return {
            "quantization": QUANT_CODES[self._quant(cell)],
            "target": target,
            "tensor_parallel_shards": cell.num_shards,
            "cuda_graph": bool(flags["cudagraph"]),
            "opt": ";".join(f"{k}={v}" for k, v in flags.items()),
            "context_window_size": opts.max_seq_len,
            "conv_template": CONV_TEMPLATE,
            **toolchain(),
        }

    def commands(self, hf_dir: Path, out: Path, settings: dict, weights_dir: Path | None = None) -> dict[str, list[str]]:
        """The three ``mlc_llm`` commands of the compile step, by name (run through the compat module)."""
        mlc = [python(), "-m", "llmperf_nb.drivers.mlc_compat"]
        q, tp, ctx = settings["quantization"], str(settings["tensor_parallel_shards"]), str(settings["context_window_size"])
        return {
            "convert_weight": [*mlc, "convert_weight", str(hf_dir), "--quantization", q,
                               "--device", CONVERT_DEVICE[settings["target"]], "-o", str(weights_dir or out)],
            "gen_config": [*mlc, "gen_config", str(hf_dir), "--quantization", q,
                           "--conv-template", settings["conv_template"], "--context-window-size", ctx,
                           "--tensor-parallel-shards", tp, "-o", str(out)],
            "compile": [*mlc, "compile", str(out / "mlc-chat-config.json"), "--device", settings["target"],
                        "--opt", settings["opt"], "--overrides", f"tensor_parallel_shards={tp};context_window_size={ctx}",
                        "-o", str(out / "lib-partial.so")],
        }

    # -- Engine interface --------------------------------------------------------------------------

    def compile(self, cell: Cell, weights: dict, cache_dir: Path, run) -> Prepared:
        spec = get_model(cell.model)
        settings = self.build_settings(cell)
        fmt = self.weight_format(cell.quantization)
        if weights["synthetic"]:
            from ..weights.hf import WRITER_VERSION

            source = {"synthetic": spec.__dict__, "seed": cell.seed, "writer": WRITER_VERSION}
            provenance = {"generator": f"llmperf_nb.weights.hf v{WRITER_VERSION}, seed {cell.seed}, "
                                       f"converted by mlc_llm convert_weight"}
        else:
            source = {"revision": weights.get("revision"), "path": weights.get("path"), "sha256": weights.get("sha256")}
            provenance = {}
        tag = f"{spec.name}-{settings['quantization']}"
        # the converted weights depend on the source, the quantization and the converting code only
        wkey = cache_key(source, settings["quantization"], settings["tvm"], settings["mlc_llm_commit"], PREPARE_VERSION)
        wdir = cache_dir / "mlc" / f"{tag}-weights-{wkey}"
        out = cache_dir / "mlc" / f"{tag}-{cache_key(source, settings, PREPARE_VERSION)}"
        lib = out / "lib.so"
        extra = {"model_lib": str(lib), "settings": settings, "weights_dir": str(wdir)}
        if lib.exists() and (out / BUILD_INFO).exists() and _converted(wdir):
            extra["build"] = json.loads((out / BUILD_INFO).read_text())
            return Prepared(str(out), fmt, {**provenance, "bytes": folder_bytes(wdir)}, cached=True, extra=extra)

        hf_dir = self._synthetic_hf(spec, cache_dir, cell.seed) if weights["synthetic"] else Path(weights["path"])
        cmds = self.commands(hf_dir, out, settings, wdir)
        echo = dict(on_line=lambda line: print(line, end=""))
        timings = {}
        if not _converted(wdir):
            partial = wdir.with_name(wdir.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            t = time.monotonic()
            run(self.commands(hf_dir, out, settings, partial)["convert_weight"], **echo)
            timings["convert_weight_s"] = round(time.monotonic() - t, 1)
            shutil.rmtree(wdir, ignore_errors=True)
            os.replace(partial, wdir)
        shutil.rmtree(out, ignore_errors=True)
        t = time.monotonic()
        run(cmds["gen_config"], **echo)
        timings["gen_config_s"] = round(time.monotonic() - t, 1)
        t = time.monotonic()
        run(cmds["compile"], **echo)
        timings["compile_s"] = round(time.monotonic() - t, 1)
        _link_weights(wdir, out)
        build = {**settings, "commands": {k: _portable(v) for k, v in cmds.items()}, "timings": timings,
                 "compat": "llmperf_nb.drivers.mlc_compat"}
        (out / BUILD_INFO).write_text(json.dumps(build, indent=1) + "\n")
        os.replace(out / "lib-partial.so", lib)
        extra["build"] = build
        return Prepared(str(out), fmt, {**provenance, "bytes": folder_bytes(wdir)}, extra=extra)

    def benchmark_argv(self, cell: Cell, prepared: Prepared, raw_path: Path) -> list[str]:
        settings = self.build_settings(cell)
        resolved = dataclasses.replace(self.options(**cell.engine.options), target=settings["target"])
        return [
            python(), "-m", "llmperf_nb.drivers.mlc",
            "--model", prepared.artifact,
            "--model-lib", prepared.extra.get("model_lib") or str(Path(prepared.artifact) / "lib.so"),
            "--device", RUN_DEVICE[settings["target"]],
            *options_argv(resolved),
            *workload_args(cell, raw_path),
        ]

    def parse_benchmark(self, cell: Cell, output: str, raw_path: Path) -> Measurement:
        return measurement_from_raw(cell, raw_path, ("tensor_parallel_shards",))

    # -- helpers -----------------------------------------------------------------------------------

    def _quant(self, cell: Cell) -> str:
        self.weight_format(cell.quantization)  # ConfigError for a quantization MLC has no path for
        return cell.quantization

    @staticmethod
    def _synthetic_hf(spec, cache_dir: Path, seed: int) -> Path:
        from ..weights.hf import WRITER_VERSION, tensor_shapes, write_synthetic_hf

        hf_dir = cache_dir / "hf" / f"{spec.name}-synthetic-{cache_key(spec.__dict__, seed, WRITER_VERSION)}"
        if not (hf_dir / "config.json").exists():
            write_synthetic_hf(spec, hf_dir, seed=seed, weights=True)
        index = hf_dir / "model.safetensors.index.json"
        if not index.exists():
            weight_map = {name: "model.safetensors" for name, _ in tensor_shapes(spec)}
            index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}, indent=1) + "\n")
        return hf_dir


def toolchain() -> dict:
    """The versions a compiled library depends on: TVM, its FFI, and the mlc-llm source commit."""
    return mlc_compat.versions()


def _converted(wdir: Path) -> bool:
    return any((wdir / name).exists() for name in WEIGHT_INDEX)


def _link_weights(wdir: Path, out: Path) -> None:
    """The converted weights beside the config and library, as MLC's loader expects one folder."""
    for f in wdir.iterdir():
        if f.name in WEIGHT_INDEX or f.name.startswith("params_shard_"):
            dest = out / f.name
            if dest.exists() or dest.is_symlink():
                dest.unlink()
            dest.symlink_to(os.path.relpath(f, out))


def _portable(argv: list[str]) -> list[str]:
    return ["python", *argv[1:]]
