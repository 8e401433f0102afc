"""HF transformers: an fp16 HF checkpoint, run as it is (fp16) or quantized at load by bitsandbytes
(int4, nf4), on the default dynamic KV cache or a static one, optionally with torch.compile.

The static cache with a compiled decode step runs several times faster than the default dynamic
cache (docs/engines.md: 144 vs 39 tok/s for 7B on an H200), so each is its own configuration:
engine options ``cache`` and ``compile``.

Compile: synthetic weights are written as an HF checkpoint folder (weights/hf.py); above
:data:`RANDOM_INIT_ABOVE` parameters the folder holds config.json and the tokenizer only and the
driver fills the weights with random values on the device, as writing 13-140 GB that would be read
once is a waste. Real weights: the Hugging Face snapshot folder is the artifact, nothing to convert.
Benchmark: :mod:`llmperf_nb.drivers.transformers`. Import: the output of the original benchmark's
``scripts/benchmark_hf.py`` (:mod:`llmperf_nb.importers.transformers`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from ..exceptions import ConfigError, EngineError, WeightsError
from ..importers import transformers as parsers
from ..models import get_model
from ..options import argv as options_argv
from ..options.transformers import Options
from ..process import python
from .base import (
    Engine,
    Measurement,
    Prepared,
    cache_key,
    crosscheck_for,
    driver_command,
    folder_bytes,
    measurement_from_raw,
    workload_args,
)

if TYPE_CHECKING:
    from ..cells import Cell

#: synthetic models larger than this are initialised on the device instead of written to disk
RANDOM_INIT_ABOVE = 2_000_000_000


class Transformers(Engine):
    name = "transformers"
    label = "HF transformers"
    packages = ("torch", "transformers")
    install_hint = "pip install 'llmperf-nb[transformers]' (and bitsandbytes for int4 on a CUDA GPU)"
    options_class = Options
    label_ignores = ("crosscheck",)
    formats = {"int4": "bitsandbytes 4-bit (nf4)", "fp16": "safetensors fp16"}
    workloads = ("single", "sweep")
    workload_gaps = {"serve": "no server of its own (transformers serve is a development server, not run here)"}
    dockerfiles = {"cuda": "Dockerfile.cu126.transformers"}
    parsers = {"benchmark_hf": parsers.parse_benchmark_hf}

    def unavailable(self, cell: Cell) -> str | None:
        import importlib.util

        if cell.quantization == "int4" and cell.gpu.name == "cpu":
            return _INT4_CPU
        if cell.quantization == "int4" and importlib.util.find_spec("bitsandbytes") is None:
            return f"{self.label} int4 needs bitsandbytes, not installed here: pip install bitsandbytes"
        return super().unavailable(cell)

    def compile(self, cell: Cell, weights: dict, cache_dir: Path, run) -> Prepared:
        fmt = self.weight_format(cell.quantization)
        _check_device(cell)
        if not weights["synthetic"]:
            return _prepare_real(Path(weights["path"]), fmt)
        spec = get_model(cell.model)
        from ..weights import hf

        random_init = spec.n_params > RANDOM_INIT_ABOVE
        key = cache_key(spec.__dict__, cell.seed, hf.WRITER_VERSION, random_init)
        out = cache_dir / "hf" / f"{spec.name}-synthetic-{key}"
        generator = (f"random init on device from config (no file), seed {cell.seed}" if random_init
                     else f"llmperf_nb.weights.hf v{hf.WRITER_VERSION} seed {cell.seed}")
        extra = {"random_init": random_init}
        cached = out.exists()
        if not cached:
            out.parent.mkdir(parents=True, exist_ok=True)
            hf.write_synthetic_hf(spec, out, seed=cell.seed, weights=not random_init)
        # with random init nothing on disk holds the weights: no file size to report
        size = None if random_init else folder_bytes(out)
        return Prepared(str(out), fmt, {"generator": generator, "bytes": size, **_quantized(cell)},
                        cached=cached, extra=extra)

    def benchmark_argv(self, cell: Cell, prepared: Prepared, raw_path: Path) -> list[str]:
        _check_device(cell)
        opts = self.options(**cell.engine.options)
        if opts.compile and cell.warmup < 1:
            # the first run compiles (tens of seconds to minutes): it must not be a measured one
            raise ConfigError("option 'compile' needs warmup: 1 or more, as the first run compiles the model")
        on_gpu = cell.gpu.name != "cpu"
        # a sweep runs a static cache of batch B and has no cross-check
        resolved = dataclasses.replace(opts, dtype=opts.dtype or ("float16" if on_gpu else "float32"),
                                       cache="static" if cell.kind == "sweep" else opts.cache,
                                       crosscheck=crosscheck_for(cell, opts))
        argv = [
            python(), "-m", "llmperf_nb.drivers.transformers", driver_command(cell),
            "--model", prepared.artifact,
            *workload_args(cell, raw_path),
            *options_argv(resolved),
            "--device", "cuda" if on_gpu else "cpu",
            "--num-gpus", str(cell.gpu.count if on_gpu else 0),
            "--quant", "bnb4" if cell.quantization == "int4" else "none",
            "--seed", str(cell.seed),
        ]
        if prepared.extra.get("random_init"):
            argv.append("--random-init")
        return argv

    def parse_benchmark(self, cell: Cell, output: str, raw_path: Path) -> Measurement:
        return measurement_from_raw(cell, raw_path)


def _check_device(cell: Cell) -> None:
    if cell.quantization == "int4" and cell.gpu.name == "cpu":
        raise EngineError(_INT4_CPU)


_INT4_CPU = ("HF transformers' int4 path is bitsandbytes 4-bit, which runs on CUDA GPUs only: "
             "use quantization: fp16 for the CPU")


def _prepare_real(path: Path, fmt: str) -> Prepared:
    if not (path.is_dir() and (path / "config.json").exists()):
        raise WeightsError(f"HF transformers loads a checkpoint folder with a config.json; {path} is not one")
    return Prepared(str(path), fmt, {"bytes": folder_bytes(path)})


def _quantized(cell: Cell) -> dict:
    return {"quantized_at_load": "bitsandbytes nf4"} if cell.quantization == "int4" else {}


