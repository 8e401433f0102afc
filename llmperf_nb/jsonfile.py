"""JSON files that appear whole or not at all: the one writer every layer uses.

Standard library only, so that a driver inside an engine's image may import it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_json(path: str | os.PathLike, doc, *, indent: int | None = 1, allow_nan: bool = True) -> Path:
    """Write ``doc`` to ``path`` through a temporary file beside it: a reader sees the old file or
    the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=indent, allow_nan=allow_nan) + "\n")
    os.replace(tmp, path)
    return path
