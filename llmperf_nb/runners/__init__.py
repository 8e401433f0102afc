"""Runners run a step's command somewhere: a local process, or a container of the engine's image.

A runner takes the argv of ``python -m llmperf_nb.steps STEP CELL_DIR --cache-dir DIR`` (steps.command) and
streams its output; what the step writes lands in CELL_DIR either way.
"""

from __future__ import annotations

from ..exceptions import ConfigError
from .local import LocalRunner

RUNNERS = {"local": LocalRunner}


def get_runner(name: str, **kwargs):
    if name == "docker":
        from .docker import DockerRunner  # imports the docker SDK only when asked for

        return DockerRunner(**kwargs)
    try:
        return RUNNERS[name](**kwargs)
    except KeyError:
        raise ConfigError(f"unknown runner {name!r}; valid runners: {', '.join([*RUNNERS, 'docker'])}") from None
