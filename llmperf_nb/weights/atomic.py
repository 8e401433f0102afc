"""Checkpoint folders that appear whole or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from ..exceptions import WeightsError


@contextlib.contextmanager
def atomic_dir(out_dir: Path, what: str):
    """Yield a fresh folder beside ``out_dir``; on success it replaces ``out_dir``, on any error it
    is removed (an OSError becomes a WeightsError naming ``what``)."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        yield tmp
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError):
            raise WeightsError(f"cannot write {what} to {out_dir}: {err}") from err
        raise
