"""Engine options: each engine's dataclass, declared once, and the one document that carries it to the
engine's driver (as pyperf hands its options whole to its worker process).

``llmperf_nb/options/<engine>.py`` declares an engine's ``Options``. The engine (``Engine.options_class``)
validates a cell's options into it and resolves what depends on the cell (threads on the CPU, layers on
the GPU); its driver is started with ``--options DOCUMENT`` and reads the document back into the same
class (:func:`read`). So a new option is a new field, in one place. Standard library only: drivers import
these modules (drivers/__init__.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import TypeVar

T = TypeVar("T")


def argv(options) -> list[str]:
    """The driver's arguments that carry ``options`` (a dataclass instance)."""
    return ["--options", json.dumps(dataclasses.asdict(options), sort_keys=True)]


def add_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--options",
        default="{}",
        help="the engine's options, one JSON document (llmperf_nb/options); default: their defaults",
    )


def read(document: str, cls: type[T]) -> T:
    """``document`` (what :func:`argv` wrote) as an instance of ``cls``; a field it lacks keeps its default."""
    values = json.loads(document)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise SystemExit(
            f"unknown option {unknown[0]!r} for {cls.__module__}.{cls.__name__}; fields: {', '.join(sorted(fields))}"
        )
    return cls(**values)
