"""vLLM: fp16 (HF format) or GPTQ 4-bit checkpoints, benchmarked through ``vllm.LLM`` offline.

Compile (``compile``): vLLM loads HF checkpoints as they are, so there is nothing to convert.
Synthetic weights:

* int4: the project's synthetic GPTQ checkpoint (:mod:`llmperf_nb.weights.gptq`: 4-bit, group size
  128, no act-order, symmetric, the layout of TheBloke's Llama-2 GPTQ repositories), the same
  folder ExLlamaV2 loads (same cache path). ``quantization`` is left to vLLM, which reads
  ``quantization_config`` from config.json and picks its GPTQ method and kernel (vLLM 0.25:
  ``auto_gptq`` with a mixed-precision kernel such as Marlin or Machete); the kernel it picked is
  read from its log (``Using <Kernel> for <Method>``) into ``build.linear_kernel``. A
  ``quantization_config`` added to a config-only folder with ``load_format="dummy"`` did not give a
  4-bit model (12.55 GiB loaded for 7B on the H200, 2026-11-29), so int4 needs real files.
* fp16: vLLM's ``load_format="dummy"`` (random values of the exact shapes, made by vLLM on the GPU)
  on a folder holding ``config.json``, ``generation_config.json`` and the tokenizer of the exact
  model, written by :func:`llmperf_nb.weights.hf.write_synthetic_hf` with ``weights=False``;
  labelled so in the weights' provenance.

Benchmark: :mod:`llmperf_nb.drivers.vllm` (batch 1, greedy, ignore_eos, vLLM's default CUDA graphs,
``tensor_parallel_size`` = the cell's GPU count), and with option ``crosscheck`` vLLM's own
``vllm bench latency`` on the same folder first. A sweep cell runs the driver's ``sweep`` (B copies of
the prompt in one ``LLM.generate``, prefilled in one engine step), without cross-check. Import: vLLM's latency benchmark output
(:mod:`llmperf_nb.importers.vllm`), which has whole-request latency only.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..exceptions import ConfigError
from ..importers import vllm as parsers
from ..models import get_model
from ..options import argv as options_argv
from ..options.vllm import Options
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

if TYPE_CHECKING:
    from ..cells import Cell

#: bump when compile() writes different files for the same inputs
PREPARE_VERSION = 2

#: what the log lines vLLM prints while it builds the engine say it chose
_KERNEL = re.compile(r"Using (\w+) for (\w*LinearMethod)")
_ATTENTION = re.compile(r"Using (\w+) attention backend")


class Vllm(Engine):
    name = "vllm"
    label = "vLLM"
    packages = ("vllm",)
    install_hint = "pip install vllm (CUDA), or docker/Dockerfile.cu130.vllm"
    needs_gpu = True
    options_class = Options
    label_ignores = ("crosscheck",)
    formats = {"fp16": "safetensors fp16", "int4": "GPTQ 4-bit g128"}
    workloads = ("single", "sweep", "serve")
    server_counters = {"prompt": "vllm:prompt_tokens_total", "generation": "vllm:generation_tokens_total"}
    # each streamed event lists its token ids: a token whose bytes end inside a UTF-8 character comes as an
    # event with empty text, which AIPerf does not count (docs/serving.md, "Counting streamed tokens")
    server_request_extras = {"return_token_ids": "true"}
    dockerfiles = {"cuda": "Dockerfile.cu130.vllm"}
    parsers = {
        "latency-json": parsers.parse_latency_json,
        "latency-text": parsers.parse_latency_text,
    }

    def source_format(self, quantization: str) -> str:
        return "gptq" if quantization == "int4" else "hf"

    def compile(self, cell: Cell, weights: dict, cache_dir: Path, run) -> Prepared:
        _require_gpu(cell)
        fmt = self.weight_format(cell.quantization)
        if not weights["synthetic"]:
            path = Path(weights["path"])
            # a real checkpoint says its own quantization in config.json; vLLM reads it there
            return Prepared(str(path), fmt, {}, extra={"load_format": "auto"})
        if cell.quantization == "int4":
            # the same folder (and cache path) as ExLlamaV2's synthetic GPTQ weights
            from .exllamav2 import _synthetic as synthetic_gptq

            prepared = synthetic_gptq(cell, cache_dir, fmt)
            prepared.extra = {"load_format": "auto"}
            return prepared
        from ..weights.hf import WRITER_VERSION, write_synthetic_hf

        spec = get_model(cell.model)
        key = cache_key(spec.__dict__, WRITER_VERSION, PREPARE_VERSION)
        out = cache_dir / "vllm" / f"{spec.name}-fp16-dummy-{key}"
        provenance = {"generator": "vLLM load_format=dummy: weights of the exact shapes with random values, made by "
                                   f"vLLM on the GPU; config.json and tokenizer from llmperf_nb.weights.hf v{WRITER_VERSION}",
                      "bytes": None}
        extra = {"load_format": "dummy"}
        if (out / "config.json").exists():
            return Prepared(str(out), fmt, provenance, cached=True, extra=extra)
        write_synthetic_hf(spec, out, seed=cell.seed, weights=False)
        return Prepared(str(out), fmt, provenance, extra=extra)

    def benchmark_argv(self, cell: Cell, prepared: Prepared, raw_path: Path) -> list[str]:
        opts = self.options(**cell.engine.options)
        _require_gpu(cell)
        sweep = [driver_command(cell)] if cell.kind == "sweep" else []
        opts = dataclasses.replace(opts, crosscheck=crosscheck_for(cell, opts))
        argv = [
            python(), "-m", "llmperf_nb.drivers.vllm", *sweep,
            "--model", prepared.artifact,
            "--load-format", prepared.extra.get("load_format", "auto"),
            "--tensor-parallel-size", str(cell.num_shards),
            "--dtype", "float16",
            "--seed", str(cell.seed),
            *options_argv(opts),
        ]
        return argv + workload_args(cell, raw_path)

    def server_argv(self, cell: Cell, prepared: Prepared, port: int) -> list[str]:
        """vLLM's OpenAI-compatible server (what ``vllm serve`` runs), with the settings of the offline
        driver: the same weights and load format, fp16, CUDA graphs unless enforce_eager, prefix caching off
        (every request of a level has the same length and would otherwise share cached prefixes)."""
        opts = self.options(**cell.engine.options)
        _require_gpu(cell)
        w = cell.workload
        argv = [python(), "-m", "vllm.entrypoints.openai.api_server", "--model", prepared.artifact,
                "--served-model-name", cell.model, "--host", "127.0.0.1", "--port", str(port),
                "--load-format", prepared.extra.get("load_format", "auto"),
                "--tensor-parallel-size", str(cell.num_shards), "--dtype", "float16",
                "--gpu-memory-utilization", str(opts.gpu_memory_utilization), "--seed", str(cell.seed),
                "--max-model-len", str(w["input_len"] + w["output_len"] + 16), "--no-enable-prefix-caching"]
        return argv + (["--enforce-eager"] if opts.enforce_eager else [])

    def server_version(self, cell: Cell, prepared: Prepared, log: str) -> str:
        # "vLLM API server version X" (older); 0.25's logo line ends "version X", or with the logo off
        # (VLLM_DISABLE_LOG_LOGO=1) "vLLM server version X, serving model ..."
        found = re.search(r"vLLM (?:API )?server version ([\w.+-]+?),?\s", log) or re.search(
            r"\[api_utils\.py:\d+\].*\bversion ([0-9][\w.+-]*)\s*$", log, re.M)
        return f"vLLM {found.group(1)} (OpenAI-compatible server)" if found else "vLLM (OpenAI-compatible server)"

    def parse_benchmark(self, cell: Cell, output: str, raw_path: Path) -> Measurement:
        # the cross-check, versions and GC policy go to the build (and the cross-check's note) in measurement_from_raw
        m = measurement_from_raw(cell, raw_path, ("timing_source", "quantization_in_use", "identical_tokens",
                                                  "token_latency_source"))
        m.build.update(engine_choices(output))
        if m.build.get("identical_tokens") is False:
            m.notes.append("the repetitions (warm-up included) did not all generate the same token ids "
                           "(greedy decoding should)")
        return m

def engine_choices(output: str) -> dict:
    """The GEMM kernel and attention backend vLLM says it chose, from the measured engine's log lines
    (those after the driver's ENGINE_MARK; the cross-check's engine prints the same lines before it)."""
    from ..drivers.vllm import ENGINE_MARK

    text = output.rsplit(ENGINE_MARK, 1)[-1]
    kernels = sorted({f"{k} ({method})" for k, method in _KERNEL.findall(text)})
    backends = sorted(set(_ATTENTION.findall(text)))
    return {"linear_kernel": ", ".join(kernels) or None, "attention_backend": ", ".join(backends) or None}


def _require_gpu(cell: Cell) -> None:
    if cell.gpu.name == "cpu":
        raise ConfigError("vLLM runs here on a GPU only (its CUDA build); the cell asks for the CPU. "
                          "Use the llama_cpp engine for CPU cells, or a GPU in the params file")

