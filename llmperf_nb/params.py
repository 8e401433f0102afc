"""Params files: a matrix of models x GPUs x engines, validated before anything runs.

A params file is YAML. Every key is checked: unknown keys, unknown names, wrong types and
impossible values raise :class:`ConfigError` naming the file, the key and the valid choices.
Loading has no side effects (no network, no environment changes).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import engines, gpus, models
from .cells import Cell, EngineChoice, GpuChoice
from .exceptions import ConfigError

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


_SCALARS = {
    "name": str, "description": str, "quantization": str, "weights": str, "prompt": str,
    "gen_len": int, "repetitions": int, "warmup": int, "min_time_s": (int, float),
    "timeout_s": (int, float), "seed": int, "num_shards": int,
}
_LISTS = ("models", "gpus", "engines")
_KEYS = (*_SCALARS, *_LISTS, "local_weights")


def load(path: str | Path) -> Params:
    """Read and validate a params file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: params file not found") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read params file ({e.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise ConfigError(f"{path}: not valid YAML{line}: {getattr(e, 'problem', e)}") from None
    return from_dict(raw, source=str(path), default_name=path.stem)


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
            raise fail(key, f"expected {names}, got {type(value).__name__} {value!r}")
        kw[key] = value

    name = kw.setdefault("name", default_name)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise fail("name", f"{name!r} is not a valid run name (letters, digits, '.', '_', '-')")
    _check_choice(fail, "quantization", kw.get("quantization", "int4"), QUANTIZATIONS)
    _check_choice(fail, "weights", kw.get("weights", "synthetic"), WEIGHT_SOURCES)
    for key, low in (("gen_len", 1), ("repetitions", 1), ("warmup", 0), ("num_shards", 1),
                     ("min_time_s", 0), ("timeout_s", 1)):
        if key in kw and kw[key] < low:
            raise fail(key, f"must be at least {low}, got {kw[key]}")
    if "prompt" in kw and not kw["prompt"].strip():
        raise fail("prompt", "must not be empty")

    kw["models"] = [_model(fail, m) for m in _list(fail, raw, "models")]
    kw["gpus"] = [_gpu(fail, g) for g in _list(fail, raw, "gpus")]
    kw["engines"] = [_engine(fail, e) for e in _list(fail, raw, "engines")]
    _check_quantizations(fail, kw)
    kw["local_weights"] = _local_weights(fail, raw.get("local_weights", {}), kw["models"])
    for model in kw["models"]:
        spec = models.get_model(model)
        if kw.get("weights", "synthetic") == "hub" and model not in kw["local_weights"] and not spec.hf_repo:
            raise fail("weights", f"model {model!r} has no Hugging Face repository; use synthetic")
    return Params(**kw)


def _check_choice(fail, key, value, choices):
    if value not in choices:
        raise fail(key, f"{value!r} is not one of: {', '.join(choices)}")


def _list(fail, raw, key) -> list:
    value = raw[key]
    if not isinstance(value, list) or not value:
        raise fail(key, "expected a non-empty list")
    return value


def _model(fail, value) -> str:
    if not isinstance(value, str) or value not in models.MODELS:
        raise fail("models", f"unknown model {value!r}; valid models: {', '.join(models.MODELS)}")
    return value


def _gpu(fail, value) -> GpuChoice:
    valid = ", ".join([gpus.AUTO, *gpus.GPUS])
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict) or set(value) - {"name", "count"} or "name" not in value:
        raise fail("gpus", f"each entry is a GPU name or {{name, count}}; got {value!r}")
    name, count = value["name"], value.get("count", 1)
    if name != gpus.AUTO and name not in gpus.GPUS:
        raise fail("gpus", f"unknown GPU {name!r}; valid GPUs: {valid}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise fail("gpus", f"count of {name!r} must be a whole number >= 1, got {count!r}")
    if name == "cpu" and count != 1:
        raise fail("gpus", "cpu takes no count")
    return GpuChoice(name, count)


def _engine(fail, value) -> EngineChoice:
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict) or "name" not in value:
        raise fail("engines", f"each entry is an engine name or {{name, options...}}; got {value!r}")
    options = {k: v for k, v in value.items() if k not in ("name", "quantization")}
    name, quant = value["name"], value.get("quantization")
    if name not in engines.registry:
        raise fail("engines", f"unknown engine {name!r}; valid engines: {', '.join(engines.registry)}")
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


def _local_weights(fail, value, model_names) -> dict[str, str]:
    if not isinstance(value, dict):
        raise fail("local_weights", "expected a mapping of model name to a local path")
    for model, path in value.items():
        if model not in model_names:
            raise fail("local_weights", f"{model!r} is not among this file's models: {', '.join(model_names)}")
        if not isinstance(path, str):
            raise fail("local_weights", f"path for {model!r} must be a string")
    return dict(value)


def to_dict(params: Params) -> dict:
    return dataclasses.asdict(params)


def expand(params: Params) -> list[Cell]:
    """Every cell of the matrix, in the order models x GPUs x engines."""
    cells = []
    for model in params.models:
        local = params.local_weights.get(model)
        for gpu in params.gpus:
            for engine in params.engines:
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
                    )
                )
    return cells
