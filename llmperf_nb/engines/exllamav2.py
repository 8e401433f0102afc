"""ExLlamaV2: GPTQ 4-bit (group size 128) weights, benchmarked with ExLlamaV2's plain forward loop.

ExLlamaV2 has no fp16 path (the original's multi-GPU fp16 table lists it as N/A), so int4 is its
only quantization. Its own format, EXL2, is made by its ``convert.py`` from calibration data: no
synthetic EXL2 is written, but an EXL2 folder given as local weights is benchmarked as it is.

Compile: synthetic weights are written as a GPTQ folder (:mod:`llmperf_nb.weights.gptq`); real
ones are a GPTQ or EXL2 folder (local weights; no GPTQ repository is pinned in weights.sources).
The compile step also imports exllamav2 once, so that the JIT build of its CUDA extension (minutes
on the first import) happens there rather than inside the benchmark's time limit.
Benchmark: :mod:`llmperf_nb.drivers.exllamav2`. Import: ``test_inference.py`` output and
Exllama v1's ``test_benchmark_inference.py -p`` (:mod:`llmperf_nb.importers.exllamav2`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

from .. import tokenizer
from ..exceptions import ConfigError, EngineError, WeightsError
from ..importers import exllamav2 as parsers
from ..models import get_model
from ..options import argv as options_argv
from ..options.exllamav2 import Options
from ..process import python
from .base import (
    Engine,
    Measurement,
    Prepared,
    cache_key,
    crosscheck_for,
    driver_command,
    measurement_from_raw,
    workload_args,
)

GPTQ_WRITER_VERSION = 1  # bump when weights/gptq.py writes different bytes for the same inputs

if TYPE_CHECKING:
    from ..cells import Cell


class ExLlamaV2Engine(Engine):
    name = "exllamav2"
    label = "ExLlamaV2"
    packages = ("torch", "exllamav2")
    install_hint = "pip install exllamav2==0.3.2 on a CUDA machine, or docker/Dockerfile.cu121.exllamav2"
    needs_gpu = True
    options_class = Options
    label_ignores = ("crosscheck",)
    formats = {"int4": "GPTQ 4-bit g128"}
    workloads = ("single", "sweep")
    workload_gaps = {"serve": "no OpenAI-compatible server of its own (TabbyAPI is a separate project)"}
    dockerfiles = {"cuda": "Dockerfile.cu121.exllamav2"}
    parsers = {
        "response": parsers.parse_response,
        "speed": parsers.parse_speed,
        "prompt-speed": parsers.parse_prompt_speed,
        "exllama-v1": parsers.parse_exllama_v1,
    }

    def source_format(self, quantization: str) -> str:
        return "gptq"

    def compile(self, cell: Cell, weights: dict, cache_dir: Path, run) -> Prepared:
        _need_gpu(cell)
        fmt = self.weight_format(cell.quantization)
        if weights["synthetic"]:
            prepared = _synthetic(cell, cache_dir, fmt)
        else:
            prepared = _real(Path(weights["path"]))
        run([python(), "-m", "llmperf_nb.drivers.exllamav2", "check"], on_line=lambda line: print(line, end=""))
        return prepared

    def benchmark_argv(self, cell: Cell, prepared: Prepared, raw_path: Path) -> list[str]:
        _need_gpu(cell)
        opts = self.options(**cell.engine.options)
        n_prompt = len(tokenizer.prompt_ids(cell.prompt)[0])
        # a sweep's driver makes the cache as long as each point needs (max_seq_len is then a floor)
        if cell.kind == "single" and n_prompt + cell.gen_len > opts.max_seq_len:
            raise ConfigError(f"{n_prompt} prompt + {cell.gen_len} generated tokens do not fit option "
                              f"'max_seq_len' ({opts.max_seq_len})")
        split = opts.gpu_split or ("auto" if cell.gpu.count > 1 else None)
        if split not in (None, "auto") and len(split.split(",")) > cell.gpu.count:
            raise ConfigError(f"option 'gpu_split' {split!r} names more GPUs than the cell's {cell.gpu.count}")
        return [
            python(), "-m", "llmperf_nb.drivers.exllamav2", driver_command(cell),
            "--model", prepared.artifact,
            *workload_args(cell, raw_path),
            *options_argv(dataclasses.replace(opts, gpu_split=split, crosscheck=crosscheck_for(cell, opts))),
        ]

    def parse_benchmark(self, cell: Cell, output: str, raw_path: Path) -> Measurement:
        return measurement_from_raw(cell, raw_path, ("model_bytes", "quantization_config", "gpu_names",
                                                     "attention_layers_per_device", "torch_max_allocated_bytes"))


def _need_gpu(cell: Cell) -> None:
    if cell.gpu.name == "cpu":
        raise EngineError("ExLlamaV2 needs a CUDA GPU: its kernels have no CPU path; pick a GPU for this cell")


def _synthetic(cell: Cell, cache_dir: Path, fmt: str) -> Prepared:
    from ..weights.gptq import write_synthetic_gptq

    spec = get_model(cell.model)
    key = cache_key(spec.__dict__, cell.seed, GPTQ_WRITER_VERSION)
    out = cache_dir / "gptq" / f"{spec.name}-GPTQ-4bit-g128-synthetic-{key}"
    provenance = {"generator": f"llmperf_nb.weights.gptq v{GPTQ_WRITER_VERSION}, seed {cell.seed}"}
    cached = out.is_dir()
    if not cached:
        write_synthetic_gptq(spec, out, seed=cell.seed)
    return Prepared(str(out), fmt, {**provenance, "bytes": _safetensors_bytes(out)}, cached=cached)


def _real(src: Path) -> Prepared:
    """A GPTQ or EXL2 folder is loaded as it is; anything else has no ExLlamaV2 path here."""
    if not (src.is_dir() and (src / "config.json").exists() and any(src.glob("*.safetensors"))):
        raise WeightsError(f"ExLlamaV2 loads a model folder with config.json and *.safetensors; {src} is not one")
    quant = json.loads((src / "config.json").read_text()).get("quantization_config") or {}
    method = quant.get("quant_method")
    if method == "gptq":
        fmt = f"GPTQ {quant.get('bits')}-bit g{quant.get('group_size')} (as given)"
    elif method == "exl2" or _has_exl2_tensors(src):
        fmt = f"EXL2 {quant.get('bits', '?')} bpw (as given)"
    else:
        raise WeightsError(
            f"{src} is not a GPTQ or EXL2 checkpoint (no quantization_config in config.json); ExLlamaV2 has no "
            "fp16 path here, and making EXL2 needs its convert.py with calibration data"
        )
    return Prepared(str(src), fmt, {"bytes": _safetensors_bytes(src), "quantization_config": quant or None})


def _has_exl2_tensors(folder: Path) -> bool:
    """EXL2 folders made before quantization_config existed are known by their q_weight tensors."""
    import struct

    first = sorted(folder.glob("*.safetensors"))[0]
    with open(first, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        return ".q_weight" in f.read(size).decode("utf-8", "replace")


def _safetensors_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("*.safetensors"))

