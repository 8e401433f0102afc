"""llama.cpp: GGUF weights (Q4_0 for int4, F16 for fp16), benchmarked through llama-cpp-python.

Compile: synthetic weights are written straight to GGUF; real ones are converted from the HF
checkpoint with llama.cpp's convert_hf_to_gguf.py, then quantized with llama.cpp's quantizer.
Benchmark: :mod:`llmperf_nb.drivers.llama_cpp`. Import: llama-bench's md/csv/json/jsonl output and
the timing lines of llama.cpp's completion programs (:mod:`llmperf_nb.importers.llama_cpp`).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..exceptions import ConfigError, EngineError, WeightsError
from ..importers import llama_cpp as parsers
from ..models import get_model
from ..process import python
from .base import Engine, Measurement, Prepared, cache_key, measurement_from_raw, workload_args

GGUF_WRITER_VERSION = 2  # bump when weights/gguf.py writes different bytes for the same inputs

if TYPE_CHECKING:
    from ..cells import Cell


@dataclass(frozen=True)
class Options:
    n_gpu_layers: int = 999  # all layers on the GPU; ignored on the CPU
    # tensor: llama.cpp's tensor parallelism (meta device, needs flash attention); row: the older row split,
    # which the CUDA backend of the llama.cpp vendored in llama-cpp-python 0.3.36 no longer has
    split_mode: Literal["layer", "row", "tensor", "none"] = "layer"
    flash_attn: Literal["auto", "on", "off"] = "auto"
    threads: int | None = None  # None: every usable core on the CPU, 1 when fully offloaded
    n_batch: int = 512
    # also run llama.cpp's own llama-bench on the same file and settings ($LLAMA_BENCH or PATH)
    crosscheck: bool = False

    def validate(self):
        if self.threads is not None and self.threads < 1:
            raise ConfigError("option 'threads' must be at least 1")
        if self.n_batch < 1:
            raise ConfigError("option 'n_batch' must be at least 1")


class LlamaCpp(Engine):
    name = "llama_cpp"
    label = "llama.cpp"
    packages = ("llama_cpp",)
    install_hint = "pip install 'llmperf-nb[llama_cpp]' (CMAKE_ARGS=-DGGML_CUDA=ON for CUDA), or docker/Dockerfile.*.llama_cpp"
    options_class = Options
    label_ignores = ("crosscheck",)
    formats = {"int4": "GGUF Q4_0", "fp16": "GGUF F16"}
    dockerfiles = {"cpu": "Dockerfile.cpu.llama_cpp", "cuda": "Dockerfile.cu121.llama_cpp",
                   "rocm": "Dockerfile.rocm57.llama_cpp"}
    parsers = {
        "llama-bench-json": parsers.parse_bench_json,
        "llama-bench-jsonl": parsers.parse_bench_jsonl,
        "llama-bench-csv": parsers.parse_bench_csv,
        "llama-bench-md": parsers.parse_bench_md,
        "timings": parsers.parse_timings,
    }

    def _gguf_type(self, quantization: str) -> str:
        return self.weight_format(quantization).split()[-1]

    def compile(self, cell: Cell, weights: dict, cache_dir: Path, run) -> Prepared:
        spec = get_model(cell.model)
        qtype = self._gguf_type(cell.quantization)
        fmt = self.weight_format(cell.quantization)
        if weights["synthetic"]:
            key = cache_key(spec.__dict__, qtype, cell.seed, GGUF_WRITER_VERSION)
            path = cache_dir / "gguf" / f"{spec.name}-{qtype}-synthetic-{key}.gguf"
            provenance = {"generator": f"llmperf_nb.weights.gguf v{GGUF_WRITER_VERSION}, seed {cell.seed}",
                          "bytes": None}
            if path.exists():
                return Prepared(str(path), fmt, {**provenance, "bytes": path.stat().st_size}, cached=True)
            from ..weights.gguf import write_synthetic_gguf

            path.parent.mkdir(parents=True, exist_ok=True)
            write_synthetic_gguf(spec, path, quant=qtype, seed=cell.seed)
            return Prepared(str(path), fmt, {**provenance, "bytes": path.stat().st_size})
        return self._prepare_real(cell, weights, cache_dir, run, qtype, fmt)

    def _prepare_real(self, cell, weights, cache_dir, run, qtype, fmt) -> Prepared:
        src = Path(weights["path"])
        if src.is_file() and src.suffix == ".gguf":
            # a GGUF given as local weights is benchmarked as it is
            return Prepared(str(src), f"GGUF (as given): {src.name}", {"bytes": src.stat().st_size})
        key = cache_key(weights.get("revision") or weights.get("path"), qtype)
        out = cache_dir / "gguf" / f"{cell.model}-{qtype}-{key}.gguf"
        if out.exists():
            return Prepared(str(out), fmt, {"bytes": out.stat().st_size}, cached=True)
        convert = _converter()
        out.parent.mkdir(parents=True, exist_ok=True)
        f16 = out.with_name(out.stem + "-F16.gguf")
        if not f16.exists():
            run([python(), convert, str(src), "--outtype", "f16", "--outfile", str(f16) + ".tmp"],
                on_line=lambda line: print(line, end=""))
            os.replace(str(f16) + ".tmp", f16)
        if qtype == "F16":
            os.replace(f16, out)
        else:
            run([python(), "-m", "llmperf_nb.drivers.llama_cpp", "quantize", str(f16), str(out), qtype],
                on_line=lambda line: print(line, end=""))
        return Prepared(str(out), fmt, {"bytes": out.stat().st_size})

    def benchmark_argv(self, cell: Cell, prepared: Prepared, raw_path: Path) -> list[str]:
        opts = self.options(**cell.engine.options)
        on_gpu = cell.gpu.name != "cpu"
        threads = opts.threads or (1 if on_gpu else len(os.sched_getaffinity(0)))
        return [
            python(), "-m", "llmperf_nb.drivers.llama_cpp", "bench",
            "--model", prepared.artifact,
            *workload_args(cell, raw_path),
            "--n-gpu-layers", str(opts.n_gpu_layers if on_gpu else 0),
            "--split-mode", opts.split_mode,
            "--flash-attn", opts.flash_attn,
            "--threads", str(threads),
            "--n-batch", str(opts.n_batch),
            *(["--llama-bench", _llama_bench()] if opts.crosscheck else []),
        ]

    def parse_benchmark(self, cell: Cell, output: str, raw_path: Path) -> Measurement:
        return measurement_from_raw(cell, raw_path, ("model_desc", "model_bytes", "model_n_params", "gpu_offload"))


def _llama_bench() -> str:
    found = os.environ.get("LLAMA_BENCH") or shutil.which("llama-bench")
    if not found:
        raise EngineError("crosscheck needs llama.cpp's llama-bench: put it on PATH or set LLAMA_BENCH")
    return found



def _converter() -> str:
    """llama.cpp's convert_hf_to_gguf.py: from LLAMA_CPP_DIR, else not available."""
    root = os.environ.get("LLAMA_CPP_DIR")
    if root and (Path(root) / "convert_hf_to_gguf.py").exists():
        return str(Path(root) / "convert_hf_to_gguf.py")
    raise WeightsError(
        "converting real HF weights to GGUF needs llama.cpp's source tree: set LLAMA_CPP_DIR to a "
        "llama.cpp checkout (the Docker image has one at /opt/llama.cpp), or give a .gguf in local_weights"
    )
