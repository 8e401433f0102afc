"""Executors decide where and when the cells of a matrix run; pipeline.run_cell says what running one is.

Every executor has one method::

    run_cells(cells, results_dir, cache_dir, runner, *, started, done)

It runs each cell through ``pipeline.run_cell`` into ``results_dir/<cell id>`` (or records why it
could not, through ``pipeline.record``), calls ``started(cell)`` when a cell starts and
``done(cell, status)`` once per cell, and on Ctrl-C marks the running cells and re-raises.
``cache_dir`` None: each machine's own default weights cache.

- ``local``: here, one after another (``local.py``).
- ``ray``: as tasks of a Ray cluster, each on a node with the cell's GPU model and count (``ray.py``;
  ``placement.py`` says which node; docs/ray.md).
"""

from __future__ import annotations

from ..exceptions import ConfigError
from .local import LocalExecutor

EXECUTORS = {"local": LocalExecutor}


def get_executor(name: str, **options):
    """The executor ``name`` with its options (ray: ``address``, ``per_host``)."""
    if name == "ray":
        from .ray import RayExecutor  # imports Ray only when asked for

        return RayExecutor(**options)
    if name not in EXECUTORS:
        raise ConfigError(f"unknown executor {name!r}; valid executors: {', '.join([*EXECUTORS, 'ray'])}")
    if options:
        raise ConfigError(f"--{next(iter(options)).replace('_', '-')} is an option of --executor ray")
    return EXECUTORS[name]()
