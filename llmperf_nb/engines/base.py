"""The interface every engine implements.

An engine is pure where it can be: it prepares weights in its format (the compile step), builds the
argv of its benchmark, and parses what that benchmark (or the engine's own tools) printed. Running
processes and containers is the runners' job; no engine starts a process itself except through
:func:`llmperf_nb.process.run`, handed to it by the step that calls it.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..exceptions import ConfigError, short
from ..measurement import Measurement

if TYPE_CHECKING:
    from ..cells import Cell


@dataclass(frozen=True)
class NoOptions:
    """Engines with nothing to configure."""


@dataclass
class Prepared:
    """What the compile step made: the artifact the benchmark loads, and where it came from."""

    artifact: str  # path of the model file or folder the benchmark loads
    format: str  # e.g. "GGUF Q4_0"
    weights: dict  # provenance: source, synthetic, revision, sha256, bytes, generator
    cached: bool = False
    extra: dict = field(default_factory=dict)


Parser = Callable[[str], Measurement]


class Engine(ABC):
    #: registry key, used in params files and result files
    name: str
    #: how reports name it
    label: str
    #: options a params file may set for this engine
    options_class: type = NoOptions
    #: quantization of a params file -> this engine's weight format
    formats: dict[str, str] = {}
    #: platform ("cpu", "cuda", "rocm") -> the Dockerfile under docker/ that --runner docker builds
    dockerfiles: dict[str, str] = {}
    #: named parsers for ``llmperf-nb import --engine NAME``; each takes the printed text
    parsers: dict[str, Parser] = {}
    #: Python packages the benchmark imports, and how a user gets them
    packages: tuple[str, ...] = ()
    install_hint: str = ""
    #: no CPU path at all
    needs_gpu: bool = False
    #: options that add a measurement but do not make a separate configuration in reports
    label_ignores: tuple[str, ...] = ()
    #: workload kinds (llmperf_nb.workloads) it runs: "sweep" through its driver's ``sweep`` command
    #: (its batched API), "serve" through its own OpenAI-compatible server (:meth:`server_argv`)
    workloads: tuple[str, ...] = ("single",)
    #: for a kind it does not run, what its row says
    workload_gaps: dict[str, str] = {}
    #: the server's Prometheus counters of prompt and generated tokens (``/metrics``), for the check of
    #: the server's token counts against the client's: {"prompt": name, "generation": name}
    server_counters: dict[str, str] = {}
    #: fields added to every request body of the serve workload (``aiperf --extra-inputs``): what makes the
    #: server say how many tokens each streamed event carries, where it can (llmperf_nb.loadgen counts so)
    server_request_extras: dict[str, str] = {}

    def lacks_workload(self, cell: Cell) -> str | None:
        """Why this engine does not run the cell's workload kind at all (its row says so), or None."""
        kind = cell.workload["kind"]
        if kind in self.workloads:
            return None
        default = {"sweep": "no batched API", "serve": "no OpenAI-compatible server"}[kind]
        return f"{self.label}: {self.workload_gaps.get(kind, default)} (workload {kind})"

    def unavailable(self, cell: Cell) -> str | None:
        """Why this engine cannot run the cell here (then the cell is reported as not run), or None."""
        import importlib.util

        if self.needs_gpu and cell.gpu.name == "cpu":
            return f"{self.label} needs a GPU; it has no CPU path"
        missing = [p for p in self.packages if importlib.util.find_spec(p) is None]
        if missing:
            return f"{self.label} is not installed here (no {', '.join(missing)}): {self.install_hint}"
        return None

    def options(self, **values):
        """Validated options; unknown keys and wrong types raise ConfigError."""
        fields = {f.name: f for f in dataclasses.fields(self.options_class)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            valid = ", ".join(fields) or "none"
            raise ConfigError(f"unknown option {short(unknown[0])}; valid options: {valid}")
        hints = typing.get_type_hints(self.options_class)
        for key, value in values.items():
            _check_type(key, value, hints[key])
        opts = self.options_class(**values)
        validate = getattr(opts, "validate", None)
        if validate:
            validate()
        return opts

    def configuration(self, options: dict) -> str:
        """How reports name this engine with ``options``: its label plus the options that make a separate
        configuration, e.g. 'llama.cpp (split_mode=row)'. Recorded in each result (``configuration``)."""
        shown = {k: v for k, v in options.items() if k not in self.label_ignores}
        if not shown:
            return self.label
        return f"{self.label} ({', '.join(f'{k}={v}' for k, v in sorted(shown.items()))})"

    def weight_format(self, quantization: str) -> str:
        try:
            return self.formats[quantization]
        except KeyError:
            valid = ", ".join(self.formats) or "none"
            raise ConfigError(
                f"{self.label} has no {quantization!r} path; its quantizations: {valid}"
            ) from None

    def source_format(self, quantization: str) -> str:
        """Format of the real weights the compile step starts from (see weights.sources)."""
        return "hf"

    @abstractmethod
    def compile(self, cell: Cell, weights: dict, cache_dir: Path, run) -> Prepared:
        """Make the artifact the benchmark loads (convert, quantize, write synthetic weights).

        ``weights`` is what the setup step resolved; ``run`` is :func:`llmperf_nb.process.run`.
        Must be cached by its inputs: a second call with the same inputs does no work.
        """

    @abstractmethod
    def benchmark_argv(self, cell: Cell, prepared: Prepared, raw_path: Path) -> list[str]:
        """The command that runs the benchmark and writes its raw output to ``raw_path``."""

    @abstractmethod
    def parse_benchmark(self, cell: Cell, output: str, raw_path: Path) -> Measurement:
        """Turn what the benchmark command printed and wrote into a Measurement."""

    def server_argv(self, cell: Cell, prepared: Prepared, port: int) -> list[str]:
        """The command that starts the engine's OpenAI-compatible server on 127.0.0.1:``port`` (serve
        workloads; :mod:`llmperf_nb.serving` runs it). Engines with a server override it."""
        from ..exceptions import EngineError

        raise EngineError(f"{self.label} has no OpenAI-compatible server in llmperf-nb")

    def served_model(self, cell: Cell, prepared: Prepared) -> str:
        """The ``model`` name requests give the server."""
        return cell.model

    def server_version(self, cell: Cell, prepared: Prepared, log: str) -> str:
        """The server's version, from what it printed (``log``) and how it was made."""
        return f"{self.label} server"

    def parse_log(self, text: str, fmt: str | None = None, **counts) -> Measurement:
        """Parse a log the engine printed; ``fmt`` picks a parser, else each is tried in turn.

        ``counts`` (``gen_tokens``, ``prompt_tokens``): what the command that printed the log was
        asked for, for logs that print rates only. A parser that takes such a keyword gets it; a
        log that prints its own count must agree with it, else :class:`ParseError`.
        """
        from ..exceptions import ParseError

        counts = {k: v for k, v in counts.items() if v is not None}
        if fmt is not None:
            if fmt not in self.parsers:
                raise ConfigError(f"unknown format {fmt!r} for {self.name}; valid: {', '.join(self.parsers)}")
            return _check_counts(_call_parser(self.parsers[fmt], text, counts), counts)
        errors = []
        for name, parser in self.parsers.items():
            try:
                return _check_counts(_call_parser(parser, text, counts), counts)
            except ParseError as e:
                errors.append(f"{name}: {e}")
        raise ParseError(
            f"no {self.label} output recognised (tried {', '.join(self.parsers)}): " + "; ".join(errors)
        )


def _call_parser(parser: Parser, text: str, counts: dict) -> Measurement:
    import inspect

    params = inspect.signature(parser).parameters
    return parser(text, **{k: v for k, v in counts.items() if k in params})


def _check_counts(m: Measurement, counts: dict) -> Measurement:
    from ..exceptions import ParseError

    for key, want in counts.items():
        seen = {s.get(key) for s in m.samples} - {None}
        if seen and seen != {want}:
            raise ParseError(f"the log's {key} ({', '.join(map(str, sorted(seen)))}) differs from the {want} given")
    return m


def cache_key(*parts) -> str:
    """A short, stable hash of a compile step's inputs: the name of its cached artifact."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def folder_bytes(path: Path) -> int:
    """Bytes of every file below ``path``."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def gpu_indices(cell: Cell) -> list[int]:
    """NVML / rocm-smi indices of the GPUs a cell uses (neither honours CUDA_VISIBLE_DEVICES or
    HIP_VISIBLE_DEVICES, so map through them)."""
    import os

    if cell.gpu.name == "cpu":
        return []
    mask = os.environ.get("CUDA_VISIBLE_DEVICES") or os.environ.get("HIP_VISIBLE_DEVICES", "")
    visible = [v for v in mask.split(",") if v.strip().isdigit()]
    return [int(v) for v in visible[: cell.gpu.count]] if visible else list(range(cell.gpu.count))


def gpu_env(cell: Cell) -> dict[str, str]:
    """Environment that limits a benchmark to the cell's GPUs: on a 4-GPU host a 2-GPU cell
    must not spread over all four (llama.cpp, for one, uses every GPU it sees)."""
    indices = gpu_indices(cell)
    if not indices:
        return {}
    # NVML numbers GPUs in PCI order; make CUDA agree so the sampled GPUs are the ones used
    return {"CUDA_VISIBLE_DEVICES": ",".join(map(str, indices)), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


def crosscheck_for(cell: Cell, opts) -> bool:
    """Whether the driver runs the engine's own tool beside the measurement (option ``crosscheck``): the
    tools time batch 1, so only a single cell runs one; a sweep's options keep the flag for its label."""
    return bool(opts.crosscheck) and cell.kind == "single"


def driver_command(cell: Cell) -> str:
    """The driver's subcommand for the cell's workload: ``bench`` (single) or ``sweep``."""
    return "sweep" if cell.workload["kind"] == "sweep" else "bench"


def workload_args(cell: Cell, raw_path: Path) -> list[str]:
    """The arguments of :func:`llmperf_nb.drivers.common.add_workload_args` (and, for a sweep, of
    ``add_sweep_args``) for this cell."""
    from ..tokenizer import prompt_ids

    ids, _ = prompt_ids(cell.prompt)
    w = cell.workload
    grid = ["--batch-sizes", ",".join(map(str, w["batch_sizes"])),
            "--prompt-lengths", ",".join(map(str, w["prompt_lengths"]))] if w["kind"] == "sweep" else []
    return [
        *grid,
        "--prompt-ids", ",".join(map(str, ids)),
        "--gen-len", str(w.get("gen_len", cell.gen_len)),
        "--reps", str(cell.repetitions),
        "--warmup", str(cell.warmup),
        "--min-time", str(cell.min_time_s),
        "--gpus", ",".join(map(str, gpu_indices(cell))),
        "--out", str(raw_path),
    ]




def measurement_from_raw(cell: Cell, raw_path: Path, build_keys: tuple[str, ...] = ()) -> Measurement:
    """Read what a driver of :mod:`llmperf_nb.drivers.common` wrote."""
    import json

    from ..exceptions import ParseError
    from ..telemetry import SOURCES
    from ..tokenizer import prompt_ids

    try:
        raw = json.loads(Path(raw_path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ParseError(f"the driver wrote no readable {Path(raw_path).name}: {e}") from None
    samples = raw["samples"]
    joules = [s.get("decode_energy_j") for s in samples]
    energy = None
    if samples and all(j is not None for j in joules):
        tokens = sum(s["gen_tokens"] - 1 for s in samples)
        energy = {"decode_j_per_token": sum(joules) / tokens,
                  "decode_mean_w": sum(s["decode_mean_w"] for s in samples) / len(samples),
                  "source": SOURCES.get(raw.get("energy_source"), SOURCES[None])}
    return Measurement(
        engine_version=raw["engine_version"],
        prompt_token_ids=raw["prompt_token_ids"],
        samples=samples,
        warmup_samples=raw["warmup_samples"],
        peak_mem_bytes=raw.get("peak_mem_bytes"),
        peak_mem_kind=raw.get("peak_mem_kind"),
        energy=energy,
        build={"settings": raw.get("settings", {}), **{k: raw.get(k) for k in build_keys},
               **{k: raw[k] for k in _SHARED_BUILD_KEYS if raw.get(k) is not None}},
        notes=[f"prompt tokenized with the {prompt_ids(cell.prompt)[1]}",
               *([crosscheck_note(raw["crosscheck"])] if raw.get("crosscheck") else [])],
        points=raw.get("points") or [],
    )


#: what any driver may add to its raw document, kept in the result's ``build``
_SHARED_BUILD_KEYS = ("crosscheck", "versions", "gc_policy")


def crosscheck_note(check: dict) -> str:
    """One line: the engine's own tool against this harness, on the same weights and GPU."""
    if check.get("error"):
        return f"cross-check: {check['tool']} failed, so there is none: {check['error'].splitlines()[0]}"
    line = (f"cross-check: {check['tool']} on the same weights gave {check['decode_tok_s_mean']:.2f} tok/s, "
            f"this harness {check['harness_decode_tok_s_mean']:.2f} ({check['difference']:+.1%})")
    if str(check.get("order", "")).startswith("alternating"):
        line += ", its runs alternating with the harness's"
    if check.get("token_latency_p50_s") and check.get("harness_token_latency_p50_s"):
        line += (f"; median per-token time {check['token_latency_p50_s'] * 1e3:.2f} ms there, "
                 f"{check['harness_token_latency_p50_s'] * 1e3:.2f} ms here ({check['difference_p50']:+.1%})")
    if check.get("same_tokens_as_harness") is False:
        line += "; its greedy tokens differ from the harness's"
    pick = check.get("host_sampling") or {}
    if pick.get("ms_per_token") and check.get("harness_decode_tok_s_mean"):
        # what the generator's host-side pick alone adds to each of the harness's tokens
        harness_ms = 1e3 / check["harness_decode_tok_s_mean"]
        line += (f"; the generator's host-side greedy pick alone takes {pick['ms_per_token']:.3f} ms a token, "
                 f"which accounts for {(harness_ms + pick['ms_per_token']) / harness_ms - 1:+.1%} of the difference")
    split = check.get("forward_split") or {}
    if split.get("harness") and split.get("generator"):
        h, g = split["harness"], split["generator"]
        line += (f"; per decoded token, the model's forward took {g['forward_ms']:.3f} ms in the generator and "
                 f"{h['forward_ms']:.3f} ms in the harness, the rest of the loop {g['outside_ms']:.3f} ms and "
                 f"{h['outside_ms']:.3f} ms (one more run of each, forwards synchronized)")
    return line


def _check_type(key, value, hint) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"option {short(key)}: must be a finite number, got {value}")
    if isinstance(value, int) and not -(2**31) <= value < 2**31:  # engines take options as C ints
        raise ConfigError(f"option {short(key)}: {short(value)} is out of range")
    origin = typing.get_origin(hint)
    allowed = typing.get_args(hint) if origin in (typing.Union, getattr(__import__("types"), "UnionType", ())) else (hint,)
    for typ in allowed:
        if typ is type(None) and value is None:
            return
        if typing.get_origin(typ) is typing.Literal:
            if value in typing.get_args(typ):
                return
            continue
        if isinstance(typ, type) and isinstance(value, typ) and not (isinstance(value, bool) and typ is not bool):
            return
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            return
    names = []
    for typ in allowed:
        if typing.get_origin(typ) is typing.Literal:
            names.extend(repr(v) for v in typing.get_args(typ))
        else:
            names.append(getattr(typ, "__name__", str(typ)))
    raise ConfigError(f"option {short(key)}: {short(value)} is not one of: {', '.join(names)}")
