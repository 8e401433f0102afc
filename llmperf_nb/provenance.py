"""Where a result came from: the project's own commit, and the content hash of the weights.

The commit is read with git from the checkout the package lives in, or, where the code runs from a
copy without ``.git`` (a GPU machine reached by file copy, a container), from
``LLMPERF_NB_COMMIT`` and ``LLMPERF_NB_DIRTY`` set by whoever made the copy. ``reports/`` is left
out of "dirty": a run writes its results there.

Weights are hashed once per artifact (sha256 over every file, names included) and the digest is
kept beside the artifact (``<artifact>.sha256.json``, keyed by the files' sizes and mtimes), so a
cached 13B GGUF is not read again on every run.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from . import process
from .exceptions import ProcessError

ROOT = Path(__file__).resolve().parent.parent
_CHUNK = 16 << 20


def project() -> dict:
    """``{"commit", "dirty", "source"}`` of the llmperf-nb code that is running."""
    commit = os.environ.get("LLMPERF_NB_COMMIT")
    if commit:
        dirty = os.environ.get("LLMPERF_NB_DIRTY")
        return {"commit": commit, "dirty": None if dirty is None else dirty == "1",
                "source": "LLMPERF_NB_COMMIT (set where the copy was made)"}
    if process.which("git") and (ROOT / ".git").exists():
        try:
            head = process.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], timeout=30).output.strip()
            status = process.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no",
                                  "--", ".", ":!reports"], timeout=60).output.strip()
            return {"commit": head, "dirty": bool(status), "source": "git"}
        except ProcessError:
            pass  # not a usable checkout: say so below
    return {"commit": None, "dirty": None, "source": "unknown: no git checkout here and LLMPERF_NB_COMMIT unset"}


def files_sha256(path: str | Path) -> dict:
    """sha256 over a file, or over every file below a folder (relative name, then content, in
    sorted order). Cached beside ``path``; returns ``{"sha256", "bytes", "files"}``."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file())
    stamp = [[f.name if f == path else str(f.relative_to(path)), f.stat().st_size, f.stat().st_mtime_ns]
             for f in files]
    sidecar = path.with_name(path.name + ".sha256.json")
    try:
        cached = json.loads(sidecar.read_text())
        if cached.get("stamp") == stamp:
            return cached["digest"]
    except (OSError, ValueError):
        pass  # no usable cache: hash below
    h = hashlib.sha256()
    for f, (name, _size, _mtime) in zip(files, stamp, strict=True):
        h.update(name.encode() + b"\0")
        with open(f, "rb") as fh:
            while block := fh.read(_CHUNK):
                h.update(block)
    digest = {"sha256": h.hexdigest(), "bytes": sum(s[1] for s in stamp), "files": len(files)}
    try:
        tmp = sidecar.with_name(sidecar.name + ".tmp")
        tmp.write_text(json.dumps({"stamp": stamp, "digest": digest}))
        os.replace(tmp, sidecar)
    except OSError:
        pass  # a read-only cache still gets its hash, just not kept
    return digest


def inputs_sha256(inputs: dict) -> str:
    """sha256 of a generator's inputs, for weights that exist on no file (made on the device)."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()
