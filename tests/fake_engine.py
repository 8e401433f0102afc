"""A tiny engine for fast tests of the steps and the pipeline: the real interface (engines.base.Engine), the
real timing loop (drivers.common) in a real process, and a "model" that counts instead of computing.

    python tests/fake_engine.py --prompt-ids 1,2 --gen-len 8 --reps 2 --warmup 1 --out raw.json

``register()`` adds it to the engine registry of this process; ``sitecustomize(folder)`` writes a
sitecustomize.py that does it in every Python started with ``folder`` first on PYTHONPATH (the notebook
kernels and the steps they run), so that ``pipeline.run_cell`` can run it end to end.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from llmperf_nb.drivers import common
from llmperf_nb.engines import registry
from llmperf_nb.engines.base import Engine, Prepared, cache_key, measurement_from_raw, workload_args

ROOT = Path(__file__).resolve().parent.parent


class Counter(Engine):
    name = "counter"
    label = "Counter (test engine)"
    formats = {"int4": "counter int4", "fp16": "counter fp16"}

    def compile(self, cell, weights, cache_dir, run) -> Prepared:
        out = Path(cache_dir) / "counter" / cache_key(cell.model, cell.quantization)
        cached = out.exists()
        if not cached:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(f"{cell.model} {cell.quantization}\n")
        return Prepared(str(out), self.weight_format(cell.quantization), {"bytes": out.stat().st_size}, cached)

    def benchmark_argv(self, cell, prepared, raw_path) -> list[str]:
        # as a script, so that it runs wherever the step runs (the cell's folder), with no PYTHONPATH
        return [sys.executable, __file__, *workload_args(cell, raw_path)]

    def parse_benchmark(self, cell, output, raw_path):
        return measurement_from_raw(cell, raw_path)


class _Stepper:
    """Greedy decoding of a model whose next token is the last one plus one; each pass takes 0.1 ms."""

    def reset(self) -> None:
        pass

    def prefill(self, ids: list[int]) -> int:
        time.sleep(1e-4)
        return ids[-1] + 1

    def decode(self, token: int) -> int:
        time.sleep(1e-4)
        return token + 1


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python tests/fake_engine.py")
    common.add_workload_args(ap)
    args = ap.parse_args(argv)
    ids = common.parse_ids(args.prompt_ids)
    doc = common.measure(lambda nvml: common.generate(_Stepper(), ids, args.gen_len, nvml), args)
    doc.update(engine_version="counter 1.0", prompt_token_ids=ids, settings={"sleep_s": 1e-4})
    common.write(doc, args.out)


def register() -> None:
    registry.register(Counter())


def sitecustomize(folder: Path) -> Path:
    path = Path(folder) / "sitecustomize.py"
    path.write_text(f"import sys\nsys.path.insert(0, {str(ROOT)!r})\nimport tests.fake_engine\n\n"
                    "tests.fake_engine.register()\n")
    return path


if __name__ == "__main__":
    main()
