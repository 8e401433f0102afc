"""Params files: a matrix of models x GPUs x engines, validated before anything runs.

A params file is YAML. Every key is checked: unknown keys, unknown names, wrong types and
impossible values raise :class:`ConfigError` naming the file, the key and the valid choices.
Loading has no side effects (no network, no environment changes).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import engines, gpus, models, workloads
from .cells import Cell, EngineChoice, GpuChoice
from .exceptions import ConfigError, short

DEFAULT_PROMPT = "What is the meaning of life?"
QUANTIZATIONS = ("int4", "fp16")
WEIGHT_SOURCES = ("synthetic", "hub")


@dataclass(frozen=True)
class Params:
    name: str
    models: list[str]
    gpus: list[GpuChoice]
    engines: list[EngineChoice]
    description: str = ""
    quantization: str = "int4"
    weights: str = "synthetic"
    local_weights: dict[str, str] = field(default_factory=dict)
    num_shards: int | None = None  # None: one shard per GPU of the cell
    prompt: str = DEFAULT_PROMPT
    gen_len: int = 256
    repetitions: int = 5
    warmup: int = 1
    min_time_s: float = 0.0
    timeout_s: float = 1800.0
    seed: int = 0
    workloads: list[dict] = field(default_factory=lambda: [dict(workloads.SINGLE)])


_SCALARS = {
    "name": str, "description": str, "quantization": str, "weights": str, "prompt": str,
    "gen_len": int, "repetitions": int, "warmup": int, "min_time_s": (int, float),
    "timeout_s": (int, float), "seed": int, "num_shards": int,
}
_LISTS = ("models", "gpus", "engines")
_KEYS = (*_SCALARS, *_LISTS, "local_weights", "workloads")


#: bounds a params file may ask for: beyond them a run cannot finish, or a typo wrapped a number
MAX_BYTES = 1 << 20
MAX_DEPTH = 20
MAX_REPETITIONS = 10_000
MAX_WARMUP = 1_000
MAX_TIMEOUT_S = 7 * 24 * 3600.0
MAX_PROMPT_BYTES = 64 * 1024
MAX_SEED = 2**32 - 1
MAX_SHARDS = 64


def load(path: str | Path) -> Params:
    """Read and validate a params file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: params file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a folder, not a params file") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read params file ({e.strerror})") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{path}: over {MAX_BYTES >> 20} MiB: not a params file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None
    return from_dict(parse_yaml(text, str(path)), source=str(path), default_name=path.stem)


def parse_yaml(text: str, source: str):
    """YAML as a params file may use it: no anchors or aliases (an alias bomb expands to gigabytes),
    no duplicate keys (the last would silently win), nesting at most MAX_DEPTH deep."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise ConfigError(f"{source}: not valid YAML{line}: {getattr(e, 'problem', None) or e}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply (at most {MAX_DEPTH} levels)") from None


class _StrictLoader(yaml.SafeLoader):
    _depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "anchors and aliases (*name) are not allowed",
                                              event.start_mark)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep",
                                              self.peek_event().start_mark)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {short(key)}",
                                                        key_node.start_mark)
            seen.add(key) if isinstance(key, str) else None
        return super().construct_mapping(node, deep=deep)


def from_dict(raw: Any, *, source: str = "<params>", default_name: str = "run") -> Params:
    def fail(key: str, msg: str) -> ConfigError:
        return ConfigError(f"{source}: {key}: {msg}")

    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of keys {', '.join(_KEYS)}")
    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        raise fail(unknown[0], f"unknown key; valid keys: {', '.join(_KEYS)}")
    for key in _LISTS:
        if key not in raw:
            raise fail(key, "missing; give a list")

    kw: dict[str, Any] = {}
    for key, typ in _SCALARS.items():
        if key not in raw:
            continue
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, typ):
            names = typ.__name__ if isinstance(typ, type) else "number"
            raise fail(key, f"expected {names}, got {type(value).__name__} {short(value)}")
        kw[key] = value

    name = kw.setdefault("name", default_name)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise fail("name", f"{name!r} is not a valid run name (letters, digits, '.', '_', '-')")
    _check_choice(fail, "quantization", kw.get("quantization", "int4"), QUANTIZATIONS)
    _check_choice(fail, "weights", kw.get("weights", "synthetic"), WEIGHT_SOURCES)
    _check_bounds(fail, kw)

    kw["models"] = [_model(fail, m) for m in _list(fail, raw, "models")]
    kw["gpus"] = [_gpu(fail, g) for g in _list(fail, raw, "gpus")]
    kw["engines"] = [_engine(fail, e) for e in _list(fail, raw, "engines")]
    _check_quantizations(fail, kw)
    _check_distinct_ids(fail, kw)
    kw["local_weights"] = _local_weights(fail, raw.get("local_weights", {}), kw["models"])
    kw["workloads"] = _workloads(fail, raw.get("workloads", [workloads.SINGLE]), kw.get("gen_len", 256))
    for model in kw["models"]:
        spec = models.get_model(model)
        if kw.get("weights", "synthetic") == "hub" and model not in kw["local_weights"] and not spec.hf_repo:
            raise fail("weights", f"model {model!r} has no Hugging Face repository; use synthetic")
    _check_context(fail, kw)
    return Params(**kw)


def _check_bounds(fail, kw) -> None:
    """Every number between what makes sense and what the machine can do; finite, and no huge prompt."""
    bounds = (("gen_len", 1, None), ("repetitions", 1, MAX_REPETITIONS), ("warmup", 0, MAX_WARMUP),
              ("num_shards", 1, MAX_SHARDS), ("min_time_s", 0, MAX_TIMEOUT_S), ("timeout_s", 1, MAX_TIMEOUT_S),
              ("seed", 0, MAX_SEED))
    for key, low, high in bounds:
        if key not in kw:
            continue
        value = kw[key]
        if isinstance(value, float) and not math.isfinite(value):
            raise fail(key, f"must be a finite number, got {value}")
        if value < low:
            raise fail(key, f"must be at least {low}, got {short(value)}")
        if high is not None and value > high:
            raise fail(key, f"must be at most {high:g}, got {short(value)}")
    prompt = kw.get("prompt")
    if prompt is not None and not prompt.strip():
        raise fail("prompt", "must not be empty")
    if prompt is not None and len(prompt.encode()) > MAX_PROMPT_BYTES:
        raise fail("prompt", f"over {MAX_PROMPT_BYTES // 1024} KiB")


def _check_context(fail, kw) -> None:
    """The prompt and the tokens to generate fit in every model's context, in every workload."""
    gen_len = kw.get("gen_len", 256)
    prompt_tokens = _prompt_tokens(kw.get("prompt", DEFAULT_PROMPT))
    for model in kw["models"]:
        context = models.get_model(model).max_position_embeddings
        for w in kw["workloads"]:
            need = workloads.max_context(w, prompt_tokens, gen_len)
            if need > context:
                key = "gen_len" if w["kind"] == "single" else f"workloads.{w['kind']}"
                raise fail(key, f"{need} tokens of prompt and generation exceed the {context}-token context of {model}")


def _workloads(fail, value, gen_len: int) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise fail("workloads", f"expected a non-empty list of workloads (kinds: {', '.join(workloads.KINDS)})")
    out = []
    for entry in value:
        try:
            out.append(workloads.validate(entry, gen_len))
        except ConfigError as e:
            raise fail("workloads", str(e)) from None
    kinds = [w["kind"] for w in out]
    twice = sorted({k for k in kinds if kinds.count(k) > 1})
    if twice:
        raise fail("workloads", f"{twice[0]} is listed twice: one workload of each kind per params file")
    return out


def _prompt_tokens(prompt: str) -> int:
    """The prompt's length in tokens; where no tokenizer is installed, a lower bound (no Llama
    token is longer than 16 bytes, and BOS comes first)."""
    from . import tokenizer
    from .exceptions import EngineError

    try:
        return len(tokenizer.prompt_ids(prompt)[0])
    except EngineError:
        return 1 + len(prompt.encode()) // 16


def _check_choice(fail, key, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise fail(key, f"{short(value)} is not one of: {', '.join(choices)}")


def _list(fail, raw, key) -> list:
    value = raw[key]
    if not isinstance(value, list) or not value:
        raise fail(key, "expected a non-empty list")
    return value


def _model(fail, value) -> str:
    if not isinstance(value, str) or value not in models.MODELS:
        raise fail("models", f"unknown model {short(value)}; valid models: {', '.join(models.MODELS)}")
    return value


def _gpu(fail, value) -> GpuChoice:
    valid = ", ".join([gpus.AUTO, *gpus.GPUS])
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict) or set(value) - {"name", "count"} or "name" not in value:
        raise fail("gpus", f"each entry is a GPU name or {{name, count}}; got {short(value)}")
    name, count = value["name"], value.get("count", 1)
    if not isinstance(name, str) or (name != gpus.AUTO and name not in gpus.GPUS):
        raise fail("gpus", f"unknown GPU {short(name)}; valid GPUs: {valid}")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_SHARDS:
        raise fail("gpus", f"count of {name!r} must be a whole number from 1 to {MAX_SHARDS}, got {short(count)}")
    if name == "cpu" and count != 1:
        raise fail("gpus", "cpu takes no count")
    return GpuChoice(name, count)


def _engine(fail, value) -> EngineChoice:
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict) or "name" not in value:
        raise fail("engines", f"each entry is an engine name or {{name, options...}}; got {short(value)}")
    options = {k: v for k, v in value.items() if k not in ("name", "quantization")}
    name, quant = value["name"], value.get("quantization")
    if not isinstance(name, str) or name not in engines.registry:
        raise fail("engines", f"unknown engine {short(name)}; valid engines: {', '.join(engines.registry)}")
    if quant is not None:
        _check_choice(fail, f"engines.{name}.quantization", quant, QUANTIZATIONS)
    try:
        engines.registry[name].options(**options)
    except ConfigError as e:
        raise fail(f"engines.{name}", str(e)) from None
    return EngineChoice(name, options, quant)


def _check_quantizations(fail, kw) -> None:
    """Every engine must have a path for the quantization it is asked to run."""
    for e in kw["engines"]:
        try:
            engines.registry[e.name].weight_format(e.quantization or kw.get("quantization", "int4"))
        except ConfigError as err:
            raise fail(f"engines.{e.name}", str(err)) from None


def _check_distinct_ids(fail, kw) -> None:
    """Two entries whose cells would share an id (the label is the options' values, in their keys' order)
    would write one folder; refused, naming both, rather than one result silently replacing the other."""
    seen: dict[tuple, EngineChoice] = {}
    for e in kw["engines"]:
        key = (e.label, e.quantization or kw.get("quantization", "int4"))
        if key in seen and seen[key] != e:
            first = seen[key]
            raise fail("engines", f"{e.name} with options {short(first.options)} and with {short(e.options)} would both "
                                  f"be cells '{e.label}__{key[1]}'; put one of them in a params file of its own")
        seen[key] = e


def _local_weights(fail, value, model_names) -> dict[str, str]:
    if not isinstance(value, dict):
        raise fail("local_weights", "expected a mapping of model name to a local path")
    for model, path in value.items():
        if model not in model_names:
            raise fail("local_weights", f"{short(model)} is not among this file's models: {', '.join(model_names)}")
        if not isinstance(path, str):
            raise fail("local_weights", f"path for {model!r} must be a string")
    return dict(value)


def to_dict(params: Params) -> dict:
    return dataclasses.asdict(params)


def expand(params: Params) -> list[Cell]:
    """Every cell of the matrix, in the order models x GPUs x engines x workloads."""
    cells = []
    for model in params.models:
        local = params.local_weights.get(model)
        for gpu, engine, workload in itertools.product(params.gpus, params.engines, params.workloads):
            cells.append(
                Cell(
                    run=params.name,
                    model=model,
                    gpu=gpu,
                    engine=engine,
                    quantization=engine.quantization or params.quantization,
                    weights="local" if local else params.weights,
                    local_path=local,
                    num_shards=params.num_shards or gpu.count,
                    prompt=params.prompt,
                    gen_len=params.gen_len,
                    repetitions=params.repetitions,
                    warmup=params.warmup,
                    min_time_s=params.min_time_s,
                    timeout_s=params.timeout_s,
                    seed=params.seed,
                    workload=dict(workload),
                )
            )
    return cells
