"""MLC LLM: weights converted to MLC's format (q4f16_1 for int4, q0f16 for fp16), a model library
compiled by TVM for the GPU, benchmarked through MLC's Python engine.

Compile (``compile``), with the current ``mlc_llm`` command line (python/mlc_llm/cli/*.py of
mlc-ai/mlc-llm), each step cached by its inputs and skipped when its output exists:

1. ``mlc_llm convert_weight HF_DIR --quantization q4f16_1 -o OUT`` (params_shard_*.bin)
2. ``mlc_llm gen_config HF_DIR --quantization q4f16_1 --conv-template llama-2
   --context-window-size L --tensor-parallel-shards N -o OUT`` (mlc-chat-config.json, tokenizer):
   tensor parallelism is a field of the model's config, read by compile and by the runtime.
3. ``mlc_llm compile OUT/mlc-chat-config.json --device cuda|rocm --opt "...;cudagraph=1|0;..."
   --overrides "tensor_parallel_shards=N;context_window_size=L" -o OUT/lib.so``. ``--opt`` spells
   out MLC's O2 preset with only ``cudagraph`` changed, because a flag string replaces the preset
   (unnamed flags fall back to their own defaults, not to O2's). MLC ignores CUDA graphs on ROCm.

Synthetic weights: MLC converts from an HF checkpoint, so :func:`llmperf_nb.weights.hf.write_synthetic_hf`
writes one (fp16 safetensors + tokenizer) and ``convert_weight`` quantizes it like a real one. An
index file is added so MLC does not load the whole safetensors file just to list its tensor names
(its ``_check_safetensor`` does that for a lone model.safetensors). ``convert_weight`` needs torch
(CPU is enough) to read safetensors (mlc_llm/loader/utils.py imports it); the MLC images install it.

NOT RUN HERE: no MLC wheel could be installed on the machine that wrote this (MLC publishes its
wheels only on its own index) and no GPU was at hand, so these commands and the driver are written
against MLC's source and are untested end to end; only the argv building and parsing are tested.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .. import hardware
from ..exceptions import ConfigError
from ..importers import mlc as parsers
from ..models import get_model
from ..process import python
from .base import Engine, Measurement, Prepared, cache_key, folder_bytes, measurement_from_raw, workload_args

if TYPE_CHECKING:
    from ..cells import Cell

#: bump when compile() makes different files for the same inputs
PREPARE_VERSION = 1
QUANT_CODES = {"int4": "q4f16_1", "fp16": "q0f16"}
CONV_TEMPLATE = "llama-2"  # no effect on speed: prompts go in as token ids, EOS is ignored
#: MLC's "O2" preset (python/mlc_llm/interface/compiler_flags.py) with cudagraph left to the option
_O2 = {"flashinfer": 1, "cublas_gemm": 1, "faster_transformer": 0, "cutlass": 1}


@dataclass(frozen=True)
class Options:
    target: Literal["cuda", "rocm", "auto"] = "auto"  # auto: cuda on NVIDIA, rocm on AMD
    use_cuda_graph: bool = True  # CUDA only; MLC turns it off for other targets
    max_seq_len: int = 2048  # context window compiled into the library

    def validate(self):
        if self.max_seq_len < 16:
            raise ConfigError("option 'max_seq_len' must be at least 16")


class Mlc(Engine):
    name = "mlc"
    label = "MLC LLM"
    packages = ("mlc_llm",)
    install_hint = ("MLC LLM's wheels are not on PyPI: use --runner docker with docker/Dockerfile.cu124.mlc, "
                    "or install them from https://mlc.ai/wheels")
    needs_gpu = True
    options_class = Options
    formats = {"int4": "MLC q4f16_1", "fp16": "MLC q0f16"}
    dockerfiles = {"cuda": "Dockerfile.cu124.mlc", "rocm": "Dockerfile.rocm62.mlc"}
    parsers = {
        "verbose": parsers.parse_verbose,
        "metrics-json": parsers.parse_metrics_json,
        "metrics-text": parsers.parse_metrics_text,
        "stats": parsers.parse_stats,
    }

    # -- what gets built -------------------------------------------------------------------------

    def target(self, cell: Cell, opts: Options) -> str:
        """The TVM device kind for the cell: from its GPU's vendor unless the option names one."""
        vendor = hardware.gpu_vendor(cell.gpu.name)
        if vendor == "cpu":
            asked = "this machine has no GPU (gpu: auto)" if cell.gpu.name == "auto" else "the cell asks for the CPU"
            raise ConfigError(
                f"MLC LLM runs here on a GPU only (CUDA or ROCm); {asked}. "
                "Use the llama_cpp engine for CPU cells, or a GPU in the params file"
            )
        want = {"nvidia": "cuda", "amd": "rocm"}.get(vendor)
        if opts.target == "auto":
            if want is None:
                raise ConfigError(f"MLC LLM: no target for GPU vendor {vendor!r}; set option 'target'")
            return want
        if want is not None and opts.target != want:
            raise ConfigError(f"MLC LLM option target={opts.target!r} does not fit the cell's {vendor} GPU "
                              f"({cell.gpu.name}); use {want!r} or 'auto'")
        return opts.target

    def build_settings(self, cell: Cell) -> dict:
        """Everything the compiled artifact depends on besides the weights."""
        opts = self.options(**cell.engine.options)
        target = self.target(cell, opts)
        return {
            "quantization": QUANT_CODES[self._quant(cell)],
            "target": target,
            "tensor_parallel_shards": cell.num_shards,
            "cuda_graph": bool(opts.use_cuda_graph and target == "cuda"),
            "context_window_size": opts.max_seq_len,
            "conv_template": CONV_TEMPLATE,
        }

    def commands(self, hf_dir: Path, out: Path, settings: dict) -> dict[str, list[str]]:
        """The three ``mlc_llm`` commands of the compile step, by name."""
        mlc = [python(), "-m", "mlc_llm"]
        q, tp, ctx = settings["quantization"], str(settings["tensor_parallel_shards"]), str(settings["context_window_size"])
        opt = ";".join([f"{k}={v}" for k, v in _O2.items()] + [f"cudagraph={int(settings['cuda_graph'])}"])
        return {
            "convert_weight": [*mlc, "convert_weight", str(hf_dir), "--quantization", q, "-o", str(out)],
            "gen_config": [*mlc, "gen_config", str(hf_dir), "--quantization", q,
                           "--conv-template", settings["conv_template"], "--context-window-size", ctx,
                           "--tensor-parallel-shards", tp, "-o", str(out)],
            "compile": [*mlc, "compile", str(out / "mlc-chat-config.json"), "--device", settings["target"],
                        "--opt", opt, "--overrides", f"tensor_parallel_shards={tp};context_window_size={ctx}",
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
        out = cache_dir / "mlc" / f"{spec.name}-{settings['quantization']}-{cache_key(source, settings, PREPARE_VERSION)}"
        lib = out / "lib.so"
        extra = {"model_lib": str(lib), "settings": settings}
        if lib.exists() and (out / "mlc-chat-config.json").exists():
            return Prepared(str(out), fmt, {**provenance, "bytes": folder_bytes(out)}, cached=True, extra=extra)

        if weights["synthetic"]:
            hf_dir = self._synthetic_hf(spec, cache_dir, cell.seed)
        else:
            hf_dir = Path(weights["path"])
        cmds = self.commands(hf_dir, out, settings)
        echo = dict(on_line=lambda line: print(line, end=""))
        if not _converted(out):
            partial = out.with_name(out.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            convert = self.commands(hf_dir, partial, settings)["convert_weight"]
            run(convert, **echo)
            shutil.rmtree(out, ignore_errors=True)
            os.replace(partial, out)
        if not (out / "mlc-chat-config.json").exists():
            run(cmds["gen_config"], **echo)
        run(cmds["compile"], **echo)
        os.replace(out / "lib-partial.so", lib)
        return Prepared(str(out), fmt, {**provenance, "bytes": folder_bytes(out)}, extra=extra)

    def benchmark_argv(self, cell: Cell, prepared: Prepared, raw_path: Path) -> list[str]:
        settings = self.build_settings(cell)
        return [
            python(), "-m", "llmperf_nb.drivers.mlc",
            "--model", prepared.artifact,
            "--model-lib", prepared.extra.get("model_lib") or str(Path(prepared.artifact) / "lib.so"),
            "--device", settings["target"],
            "--max-seq-len", str(settings["context_window_size"]),
            *workload_args(cell, raw_path),
        ]

    def parse_benchmark(self, cell: Cell, output: str, raw_path: Path) -> Measurement:
        return measurement_from_raw(cell, raw_path, ("engine_reported", "tensor_parallel_shards"))

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


def _converted(out: Path) -> bool:
    # convert_weight writes tensor-cache.json (older releases: ndarray-cache.json) next to the shards
    return (out / "tensor-cache.json").exists() or (out / "ndarray-cache.json").exists()


