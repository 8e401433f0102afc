"""Real weights: a Hugging Face repository at a pinned revision, or a local path.

Downloads go through huggingface_hub into its own cache. A token, where a gated repository needs
one, is read from the environment (``HF_TOKEN``) by huggingface_hub itself: it is never passed on
the command line, stored in a cell, or written to a result.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..exceptions import WeightsError
from .sources import source_for


def fetch(model: str, fmt: str) -> dict:
    """Download (or find in the HF cache) the real weights of ``model`` in format ``fmt``."""
    src = source_for(model, fmt)
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError:
        raise WeightsError("huggingface_hub is not installed: pip install huggingface_hub") from None
    try:
        path = snapshot_download(src.repo, revision=src.revision, allow_patterns=list(src.files))
    except LocalEntryNotFoundError:
        raise WeightsError(
            f"cannot download {src.repo}@{src.revision[:12]}: the Hugging Face Hub is not reachable "
            "and the files are not in the local cache; use weights: synthetic, or local_weights"
        ) from None
    except HfHubHTTPError as e:
        raise WeightsError(f"cannot download {src.repo}: {e}; gated repositories need HF_TOKEN set") from None
    return {"source": "hub", "synthetic": False, "repo": src.repo, "revision": src.revision, "path": path}


def local(path: str) -> dict:
    p = Path(path).expanduser()
    if not p.exists():
        raise WeightsError(f"local weights not found: {p}")
    digest = sha256_file(p) if p.is_file() else None
    return {"source": "local", "synthetic": False, "path": str(p.resolve()), "sha256": digest}


def sha256_file(path: Path, chunk: int = 1 << 24) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
