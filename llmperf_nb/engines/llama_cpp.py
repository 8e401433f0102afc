"""llama.cpp: GGUF weights (Q4_0 for int4, F16 for fp16), benchmarked through llama-cpp-python.

Compile: synthetic weights are written straight to GGUF; real ones are converted from the HF
checkpoint with llama.cpp's convert_hf_to_gguf.py, then quantized with llama.cpp's quantizer.
Benchmark: :mod:`llmperf_nb.drivers.llama_cpp`. Import: llama-bench's md/csv/json/jsonl output and
the timing lines of llama.cpp's completion programs (:mod:`llmperf_nb.importers.llama_cpp`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from ..exceptions import EngineError, WeightsError
from ..importers import llama_cpp as parsers
from ..models import get_model
from ..options import argv as options_argv
from ..options.llama_cpp import Options
from ..process import python
from .base import Engine, Measurement, Prepared, cache_key, driver_command, measurement_from_raw, workload_args

GGUF_WRITER_VERSION = 2  # bump when weights/gguf.py writes different bytes for the same inputs

if TYPE_CHECKING:
    from ..cells import Cell


class LlamaCpp(Engine):
    name = "llama_cpp"
    label = "llama.cpp"
    packages = ("llama_cpp",)
    install_hint = "pip install 'llmperf-nb[llama_cpp]' (CMAKE_ARGS=-DGGML_CUDA=ON for CUDA), or docker/Dockerfile.*.llama_cpp"
    options_class = Options
    label_ignores = ("crosscheck",)
    formats = {"int4": "GGUF Q4_0", "fp16": "GGUF F16"}
    workloads = ("single", "sweep", "serve")
    server_counters = {"prompt": "llamacpp:prompt_tokens_total", "generation": "llamacpp:tokens_predicted_total"}
    # each streamed event says how many tokens the server has generated so far: it holds a token whose bytes end
    # inside a UTF-8 character back and sends it with the next, one event for two (docs/serving.md, "Counting
    # streamed tokens")
    server_request_extras = {"timings_per_token": "true"}
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
        prepared = self._weights(cell, weights, cache_dir, run)
        if cell.kind == "serve":
            from . import llama_server

            backend = "cpu" if cell.gpu.name == "cpu" else "cuda"
            prepared.extra["server"] = llama_server.find_or_build(cache_dir, backend, run)
        return prepared

    def _weights(self, cell: Cell, weights: dict, cache_dir: Path, run) -> Prepared:
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
        # what depends on the cell, resolved here; the driver reads the options back as they are
        resolved = dataclasses.replace(
            opts,
            n_gpu_layers=opts.n_gpu_layers if on_gpu else 0,
            threads=opts.threads or (1 if on_gpu else len(os.sched_getaffinity(0))),
        )
        return [
            python(), "-m", "llmperf_nb.drivers.llama_cpp", driver_command(cell),
            "--model", prepared.artifact,
            *workload_args(cell, raw_path),
            *options_argv(resolved),
            *(["--llama-bench", _llama_bench()] if opts.crosscheck and cell.kind == "single" else []),
        ]

    def parse_benchmark(self, cell: Cell, output: str, raw_path: Path) -> Measurement:
        return measurement_from_raw(cell, raw_path, ("model_desc", "model_bytes", "model_n_params", "gpu_offload"))

    def server_argv(self, cell: Cell, prepared: Prepared, port: int) -> list[str]:
        """llama-server with the offline driver's settings: one slot per request in flight at the highest
        concurrency (continuous batching over them), each slot the context of one request."""
        opts = self.options(**cell.engine.options)
        on_gpu = cell.gpu.name != "cpu"
        w = cell.workload
        slots = max(w["concurrency"])
        per_slot = (w["input_len"] + w["output_len"] + 16 + 255) // 256 * 256
        threads = opts.threads or (1 if on_gpu else len(os.sched_getaffinity(0)))
        return [prepared.extra["server"]["path"], "--model", prepared.artifact, "--host", "127.0.0.1",
                "--port", str(port), "--parallel", str(slots), "--ctx-size", str(per_slot * slots),
                "--n-gpu-layers", str(opts.n_gpu_layers if on_gpu else 0), "--split-mode", opts.split_mode,
                "--flash-attn", opts.flash_attn, "--threads", str(threads), "--threads-batch", str(threads),
                "--batch-size", str(max(opts.n_batch, slots)), "--metrics", "--seed", str(cell.seed),
                # every prompt prefilled: no reuse of a slot's cached prefix, no host prompt cache
                "--no-cache-prompt", "--cache-ram", "0", "--no-webui"]

    def server_version(self, cell: Cell, prepared: Prepared, log: str) -> str:
        made = prepared.extra.get("server", {})
        commit = made.get("llama_cpp_commit")
        return f"llama-server {made.get('version')}; {made.get('source')}" + (f", llama.cpp {commit}" if commit else "")


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
