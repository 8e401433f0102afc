"""vLLM: fp16 safetensors or 4-bit AWQ/GPTQ checkpoints, benchmarked through ``vllm.LLM`` offline.

Compile (``compile``): vLLM loads HF checkpoints as they are, so there is nothing to convert.
Synthetic weights use vLLM's own ``load_format="dummy"`` (random values of the right shapes, made
on the GPU by vLLM's DummyModelLoader): the folder holds only ``config.json``,
``generation_config.json`` and the tokenizer, written by
:func:`llmperf_nb.weights.hf.write_synthetic_hf` with ``weights=False``. For int4 a
``quantization_config`` is added to ``config.json`` (AWQ: bits, group_size, zero_point; GPTQ:
bits, group_size, desc_act, sym: the keys vLLM 0.33's AutoAWQConfig/AutoGPTQConfig.from_config
read), so vLLM builds its 4-bit layers; the dummy loader then fills float tensors (scales) with
small random values and leaves integer ones (qweight, qzeros) as allocated, which is what vLLM's
own dummy loading of a quantized model does, then runs the usual post-load repacking.

Benchmark: :mod:`llmperf_nb.drivers.vllm`. Import: vLLM's latency benchmark output
(:mod:`llmperf_nb.importers.vllm`), which has whole-request latency only.

NOT RUN HERE: vLLM needs a CUDA GPU and its wheel (0.33.0: 336 MB, plus torch 2.14 and CUDA 13
libraries) was not brought to a GPU machine; the API used was read in the vllm 0.33.0 wheel's
Python sources. Dummy loading with quantization="awq" is plausible from that source and untested.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..exceptions import ConfigError
from ..importers import vllm as parsers
from ..models import get_model
from ..process import python
from .base import Engine, Measurement, Prepared, cache_key, measurement_from_raw, workload_args

if TYPE_CHECKING:
    from ..cells import Cell

#: bump when compile() writes different files for the same inputs
PREPARE_VERSION = 1

QUANT_CONFIGS = {
    # group size 128 is what AutoAWQ and AutoGPTQ checkpoints of Llama-2 on the Hub use
    "awq": {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True, "version": "gemm"},
    "gptq": {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False, "sym": True},
}
FORMAT_NAMES = {"awq": "AWQ 4-bit", "gptq": "GPTQ 4-bit"}


@dataclass(frozen=True)
class Options:
    quant_method: Literal["awq", "gptq"] = "awq"  # int4 only
    enforce_eager: bool = False  # True: no CUDA graphs
    gpu_memory_utilization: float = 0.9

    def validate(self):
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError(f"option 'gpu_memory_utilization' must be in (0, 1], got {self.gpu_memory_utilization}")


class Vllm(Engine):
    name = "vllm"
    label = "vLLM"
    packages = ("vllm",)
    install_hint = "pip install vllm (CUDA), or docker/Dockerfile.cu130.vllm"
    needs_gpu = True
    options_class = Options
    formats = {"fp16": "safetensors fp16", "int4": "AWQ 4-bit"}
    dockerfiles = {"cuda": "Dockerfile.cu130.vllm"}
    parsers = {
        "latency-json": parsers.parse_latency_json,
        "latency-text": parsers.parse_latency_text,
    }

    def source_format(self, quantization: str) -> str:
        # real int4 weights would be an AWQ checkpoint; none is pinned yet (weights.sources)
        return "awq" if quantization == "int4" else "hf"

    def resolved_format(self, cell: Cell, opts: Options) -> str:
        fmt = self.weight_format(cell.quantization)
        return FORMAT_NAMES[opts.quant_method] if cell.quantization == "int4" else fmt

    def compile(self, cell: Cell, weights: dict, cache_dir: Path, run) -> Prepared:
        opts = self.options(**cell.engine.options)
        _require_gpu(cell)
        fmt = self.resolved_format(cell, opts)
        quant = opts.quant_method if cell.quantization == "int4" else None
        if not weights["synthetic"]:
            path = Path(weights["path"])
            # a real checkpoint says its own quantization in config.json; vLLM reads it there
            return Prepared(str(path), fmt, {}, extra={"load_format": "auto", "quantization": None})
        from ..weights.hf import WRITER_VERSION, write_synthetic_hf

        spec = get_model(cell.model)
        key = cache_key(spec.__dict__, quant, WRITER_VERSION, PREPARE_VERSION)
        out = cache_dir / "vllm" / f"{spec.name}-{quant or 'fp16'}-dummy-{key}"
        provenance = {"generator": "vLLM load_format=dummy (random values made by vLLM on the GPU); config and "
                                   f"tokenizer from llmperf_nb.weights.hf v{WRITER_VERSION}", "bytes": None}
        # the quantization method is read by vLLM from config.json, as for a real checkpoint
        extra = {"load_format": "dummy", "quantization": quant}
        if (out / "config.json").exists():
            return Prepared(str(out), fmt, provenance, cached=True, extra=extra)
        tmp = out.with_name(out.name + ".partial")
        shutil.rmtree(out, ignore_errors=True)
        write_synthetic_hf(spec, tmp, seed=cell.seed, weights=False)
        if quant:
            config = json.loads((tmp / "config.json").read_text())
            config["quantization_config"] = QUANT_CONFIGS[quant]
            (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        tmp.replace(out)
        return Prepared(str(out), fmt, provenance, extra=extra)

    def benchmark_argv(self, cell: Cell, prepared: Prepared, raw_path: Path) -> list[str]:
        opts = self.options(**cell.engine.options)
        _require_gpu(cell)
        argv = [
            python(), "-m", "llmperf_nb.drivers.vllm",
            "--model", prepared.artifact,
            "--load-format", prepared.extra.get("load_format", "auto"),
            "--tensor-parallel-size", str(cell.num_shards),
            "--dtype", "float16",
            "--gpu-memory-utilization", str(opts.gpu_memory_utilization),
            "--seed", str(cell.seed),
        ]
        if opts.enforce_eager:
            argv.append("--enforce-eager")
        return argv + workload_args(cell, raw_path)

    def parse_benchmark(self, cell: Cell, output: str, raw_path: Path) -> Measurement:
        return measurement_from_raw(cell, raw_path, ("timing_source", "quantization_in_use"))


def _require_gpu(cell: Cell) -> None:
    if cell.gpu.name == "cpu":
        raise ConfigError("vLLM runs here on a GPU only (its CUDA build); the cell asks for the CPU. "
                          "Use the llama_cpp engine for CPU cells, or a GPU in the params file")

