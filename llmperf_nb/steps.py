"""The three per-cell steps (layout.STEPS), run by a runner inside the engine's environment.

    python -m llmperf_nb.steps {setup,compile,benchmark} CELL_DIR --cache-dir DIR

Each step reads ``cell.json`` and what the step before it wrote in CELL_DIR, and writes its own
JSON file there (layout.STEPS says which). Steps hold no engine-specific code: they call the
engine's interface (setup: Engine.unavailable, compile: Engine.compile, benchmark:
Engine.benchmark_argv, then the driver it names, then Engine.parse_benchmark).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from . import hardware, layout, process, published, results
from .cells import Cell
from .engines import registry
from .engines.base import Prepared, gpu_env
from .exceptions import EngineError, LlmPerfError
from .jsonfile import write_json


def command(python: str, step: str, cell_dir, cache_dir) -> list[str]:
    """The argv that runs ``step`` for a cell, under ``python`` (a runner's own interpreter)."""
    return [python, "-m", "llmperf_nb.steps", layout.step(step).name, str(cell_dir), "--cache-dir", str(cache_dir)]


def _read_output(folder: layout.CellDir, step: str) -> dict:
    path = folder.output(step)
    if not path.exists():
        raise EngineError(f"{path.name} is missing: run the {step} step first")
    return json.loads(path.read_text())


def setup(cell_dir: Path, cache_dir: Path) -> dict:
    """Check the machine against the cell, and find or fetch the weights."""
    from .weights import hub

    cell = Cell.load(cell_dir)
    engine = registry[cell.engine.name]
    hw = hardware.detect()
    skip = engine.lacks_workload(cell) or hardware.check_gpu(cell.gpu, hw) or engine.unavailable(cell)
    weights = {"source": cell.weights, "synthetic": cell.weights == "synthetic"}
    if skip is None and cell.weights == "hub":
        weights = hub.fetch(cell.model, engine.source_format(cell.quantization))
    elif skip is None and cell.weights == "local":
        weights = hub.local(published.expand(cell.local_path, cache_dir))
    doc = {"hardware": hw, "weights": weights, "skip": skip, "format": engine.weight_format(cell.quantization)}
    doc = published.shorten(doc, published.roots(cache_dir))  # the weights' path from the cache or ~
    write_json(layout.CellDir(cell_dir).output("setup"), doc)
    gpu = ", ".join(hw["gpu"]["detected"]) or "none"
    print(f"machine: {hw['cpu']['model']} ({hw['cpu']['usable_cores']} cores), GPUs: {gpu}")
    print(f"weights: {weights['source']}" + (f" {weights.get('repo')}@{weights.get('revision')}" if weights.get("repo") else ""))
    if skip:
        print(f"skipped: {skip}")
    return doc


def compile(cell_dir: Path, cache_dir: Path) -> dict:
    """Make the engine's artifact (cached by its inputs)."""
    cell, folder = Cell.load(cell_dir), layout.CellDir(cell_dir)
    weights = published.expand_all(_read_output(folder, "setup")["weights"], cache_dir)
    engine = registry[cell.engine.name]
    prepared = engine.compile(cell, weights, cache_dir, process.run)
    prepared.weights.update(_weights_digest(prepared))
    doc = published.shorten(dataclasses.asdict(prepared), published.roots(cache_dir))  # the benchmark expands it
    write_json(folder.output("compile"), doc)
    state = "reused from cache" if prepared.cached else "made"
    print(f"{prepared.format}: {prepared.artifact} ({state})")
    return doc


def _weights_digest(prepared: Prepared) -> dict:
    """The sha256 of what the benchmark loads; where the weights are drawn on the device, of the
    files they are drawn from (config, tokenizer), the generator and seed being in ``generator``."""
    from . import provenance

    digest = provenance.files_sha256(prepared.artifact)
    what = ("config.json and tokenizer files the weights are drawn from on the device (see generator)"
            if prepared.extra.get("random_init") else "every file of the artifact")
    return {"sha256": digest["sha256"], "sha256_of": what}


def benchmark(cell_dir: Path, cache_dir: Path) -> dict:
    """Run the workload and write result.json."""
    cell, folder = Cell.load(cell_dir), layout.CellDir(cell_dir)
    setup_doc = _read_output(folder, "setup")
    prepared = Prepared(**published.expand_all(_read_output(folder, "compile"), cache_dir))
    engine = registry[cell.engine.name]
    started = results.now()
    measurement = MEASURE[cell.kind](cell, engine, prepared, folder, cache_dir)
    weights = {**setup_doc["weights"], **prepared.weights, "format": prepared.format}
    weights.pop("path", None)
    doc = results.build(
        cell=cell, status="ok", started_at=started, engine_label=engine.label,
        weights=weights, hardware=setup_doc["hardware"], measurement=measurement,
        extra={"configuration": engine.configuration(cell.engine.options),
               "provenance": _provenance(cell, setup_doc["hardware"])},
    )
    problem = results.check_counts(doc)
    if problem:
        raise EngineError(f"{engine.label}: {problem}")
    doc = published.shorten(doc, published.roots(cache_dir))  # build.* and notes may quote the model's path
    results.write(doc, folder.output("benchmark"))
    print(_summary_line(doc))
    return doc


def _driver(cell: Cell, engine, prepared: Prepared, folder: layout.CellDir, cache_dir: Path):
    """The single and sweep workloads: the engine's driver, in its own process, writes raw.json."""
    argv = engine.benchmark_argv(cell, prepared, folder.raw)
    out = process.run(argv, timeout=cell.timeout_s, cwd=folder.path, extra_env=gpu_env(cell),
                      on_line=lambda line: print(line, end=""))
    return engine.parse_benchmark(cell, out.output, folder.raw)


def _server(cell: Cell, engine, prepared: Prepared, folder: layout.CellDir, cache_dir: Path):
    """The serve workload: the engine's server and the load generator (llmperf_nb.serving)."""
    from . import serving

    return serving.measure(cell, engine, prepared, folder.path, cache_dir, gpu_env(cell))


#: how each workload kind (llmperf_nb.workloads) is measured
MEASURE = {"single": _driver, "sweep": _driver, "serve": _server}


def _summary_line(doc: dict) -> str:
    if results.kind(doc) == "single":
        d = doc["decode_tok_s"]
        return f"decode {d['mean']:.2f} ± {d['std']:.2f} tok/s over {d['n']} repetitions"
    return f"{len(doc['points'])} points measured; problems: {'; '.join(doc['work']['problems']) or 'none'}"


def _provenance(cell: Cell, hw: dict) -> dict:
    """The project's commit, and which GPUs (NVML indices and UUIDs) the cell ran on."""
    from . import provenance
    from .engines.base import gpu_indices

    indices = gpu_indices(cell)
    by_index = {str(d.get("index")): d for d in hw["gpu"]["devices"]}
    uuids = [by_index.get(str(i), {}).get("uuid") for i in indices]
    return {"project": provenance.project(), "gpu_indices": indices, "gpu_uuids": uuids}


#: what each step of layout.STEPS runs
FUNCTIONS = {"setup": setup, "compile": compile, "benchmark": benchmark}
assert tuple(FUNCTIONS) == layout.STEP_NAMES, "steps.FUNCTIONS and layout.STEPS name the same steps"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m llmperf_nb.steps")
    ap.add_argument("step", choices=layout.STEP_NAMES)
    ap.add_argument("cell_dir", type=Path)
    ap.add_argument("--cache-dir", type=Path, required=True)
    args = ap.parse_args(argv)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        FUNCTIONS[args.step](args.cell_dir, args.cache_dir)
    except LlmPerfError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
