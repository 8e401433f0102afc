"""Real weights: a Hugging Face repository at a pinned revision, or a local path.

Downloads go through huggingface_hub into its own cache (HF_HOME), from huggingface.co or the
mirror HF_ENDPOINT names, resuming what an interrupted download left. A token, where a gated
repository needs one, is read from the environment (``HF_TOKEN``) by huggingface_hub itself: only the
setup step is given it (notebook.run_step); it is never passed on the command line, stored in a
cell, or written to a result.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..exceptions import WeightsError
from .sources import source_for


def fetch(model: str, fmt: str) -> dict:
    """Download (or find in the HF cache) the real weights of ``model`` in format ``fmt``, at the
    pinned revision, and check every file against the Hub's listing (size; sha256 of LFS files, the
    git blob id of the others). The Hub is huggingface.co or the mirror ``HF_ENDPOINT`` names."""
    src = source_for(model, fmt)
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise WeightsError("huggingface_hub is not installed: pip install huggingface_hub") from None
    try:
        path = snapshot_download(src.repo, revision=src.revision, allow_patterns=list(src.files))
        listing = _listing(src.repo, src.revision)
    except Exception as e:  # huggingface_hub's errors, one line each
        raise WeightsError(_said(e, src.repo, src.revision)) from None
    found = check(Path(path), listing)
    return {
        "source": "hub",
        "synthetic": False,
        "repo": src.repo,
        "revision": src.revision,
        "path": path,
        "files": len(found),
        "bytes": sum(found.values()),
        "checked": "sizes and sha256 (git blob ids of small files) of every file, against the Hub's listing"
        if listing is not None
        else "not against the Hub (offline): the files of the local cache",
    }


def _listing(repo: str, revision: str) -> dict | None:
    """path -> (size, sha256 or None, git blob id) of every file of the repository at ``revision``;
    None when the Hub cannot be reached (the files came from the local cache)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        entries = list(HfApi().list_repo_tree(repo, revision=revision, recursive=True))
    except HfHubHTTPError:
        raise  # the Hub answered: refused, not found
    except Exception:  # no answer (huggingface_hub's HTTP client's connection errors, offline mode)
        return None
    return {f.path: (f.size, f.lfs.sha256 if f.lfs else None, f.blob_id) for f in entries if hasattr(f, "blob_id")}


def check(folder: Path, listing: dict | None) -> dict[str, int]:
    """Bytes of every file of a downloaded snapshot, each checked against ``listing`` (see _listing)."""
    found = {}
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = f.relative_to(folder).as_posix()
        size = f.stat().st_size
        found[name] = size
        if listing is None:
            continue
        if name not in listing:
            raise WeightsError(f"{name} is not in the Hub's listing of this revision")
        want, sha256, blob = listing[name]
        if size != want:
            raise WeightsError(
                f"{name}: {size} bytes here, {want} on the Hub: delete it from the HF cache and run again"
            )
        got = sha256_file(f) if sha256 else git_blob_id(f)
        if got != (sha256 or blob):
            raise WeightsError(
                f"{name}: content differs from the Hub's ({'sha256' if sha256 else 'git blob id'} "
                f"{got[:12]}…, expected {(sha256 or blob)[:12]}…): delete it from the HF cache and run again"
            )
    return found


def _said(error: Exception, repo: str, revision: str) -> str:
    """One line for the person at the terminal: what failed and what to do."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo}@{revision[:12]}"
    status = getattr(getattr(error, "response", None), "status_code", None)
    if isinstance(error, GatedRepoError):
        if status == 403:
            return (
                f"{where}: the repository is gated and the account of HF_TOKEN has no access (403): "
                "accept its terms on its page of the Hub with that account"
            )
        return f"{where}: the repository is gated (401): set HF_TOKEN to a token of an account that accepted its terms"
    if isinstance(error, RevisionNotFoundError):
        return (
            f"{where}: this revision is not in the repository (404): the pin in llmperf_nb/weights/sources.py is wrong"
        )
    if isinstance(error, RepositoryNotFoundError):
        return f"{where}: no such repository on {constants.ENDPOINT} ({status}), or it is private: check the name, or set HF_TOKEN"
    if isinstance(error, LocalEntryNotFoundError):
        return (
            f"{where}: cannot reach {constants.ENDPOINT} and the files are not in the local cache (HF_HOME): "
            "connect, or use weights: synthetic, or local_weights"
        )
    if isinstance(error, HfHubHTTPError):
        return f"{where}: the Hub answered {status}: {str(error).splitlines()[0]}"
    if isinstance(error, OSError):
        return f"{where}: {error.filename + ': ' if error.filename else ''}{error.strerror or error}"
    return f"{where}: download failed ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"


def local(path: str) -> dict:
    p = Path(path).expanduser()
    if not p.exists():
        raise WeightsError(f"local weights not found: {p}")
    digest = sha256_file(p) if p.is_file() else None
    return {"source": "local", "synthetic": False, "path": str(p.resolve()), "sha256": digest}


def git_blob_id(path: Path) -> str:
    """The git blob id (sha1 of ``blob <size>\\0`` and the content): the Hub's id of a file not in LFS."""
    h = hashlib.sha1()
    h.update(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            h.update(block)
    return h.hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 24) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
