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
    return write_text(path, json.dumps(doc, indent=indent, allow_nan=allow_nan) + "\n")


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` whole or not at all: through a temporary file beside ``path``, flushed to disk,
    then renamed over it. On failure (a full disk) the temporary file is removed and the old file,
    if any, is left as it was."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and not e.filename:  # a write or fsync on a full disk names no file
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise
    return path
