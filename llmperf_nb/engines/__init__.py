"""The engine registry. Built-in engines are registered here, in plain sight.

Nothing outside an engine's own module branches on engine names: callers look an engine up here
and use its interface (:class:`llmperf_nb.engines.base.Engine`).
"""

from __future__ import annotations

from ..exceptions import ConfigError
from .base import Engine


class Registry:
    def __init__(self) -> None:
        self._engines: dict[str, Engine] = {}

    def register(self, engine: Engine) -> None:
        self._engines[engine.name] = engine

    def __getitem__(self, name: str) -> Engine:
        try:
            return self._engines[name]
        except KeyError:
            raise ConfigError(f"unknown engine {name!r}; valid engines: {', '.join(self)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._engines

    def __iter__(self):
        return iter(self._engines)

    def values(self):
        return self._engines.values()


registry = Registry()


def _register_builtins() -> None:
    from .exllamav2 import ExLlamaV2Engine
    from .llama_cpp import LlamaCpp
    from .mlc import Mlc
    from .transformers import Transformers
    from .vllm import Vllm

    registry.register(LlamaCpp())
    registry.register(ExLlamaV2Engine())
    registry.register(Transformers())
    registry.register(Mlc())
    registry.register(Vllm())


_register_builtins()
