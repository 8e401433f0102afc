"""No place on the machine in a published file: absolute paths are written from named roots.

A report folder is published (committed, served as HTML), so what it holds must not tell where the
run's machine keeps its home, its clone or its temporary folders. Paths under these roots are
written from the root's name instead, the longest root first:

    <cache>/gguf/x.gguf       the weights cache (--cache-dir, $LLMPERF_NB_CACHE)
    <report>/results/...      the report folder (--out), where it is not inside the clone
    <repo>/notebooks/...      the clone of llmperf-nb
    <python>/lib/...          the interpreter's prefix (its site-packages name files in warnings)
    ~/models/...              the home folder

Files the steps hand on (setup.json, compile.json) name the weights and the artifact this way, and
:func:`expand` gives the path back on whichever machine or container reads them (``<cache>`` is that
step's own cache), so a resumed run and the cache lookups work as before. Standard library only.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

CACHE, REPORT, REPO, PYTHON, HOME = "<cache>", "<report>", "<repo>", "<python>", "~"
#: the clone this package runs from
REPO_ROOT = Path(__file__).resolve().parent.parent


def roots(
    cache_dir: str | os.PathLike | None = None, report_dir: str | os.PathLike | None = None
) -> list[tuple[str, str]]:
    """(absolute path, name) of the roots, longest path first (a cache under home is ``<cache>``)."""
    found = [(REPO_ROOT, REPO), (Path(sys.prefix), PYTHON), (Path.home(), HOME)]
    if cache_dir is not None:
        found.append((Path(cache_dir), CACHE))
    if report_dir is not None:
        found.append((Path(report_dir), REPORT))
    pairs: dict[str, str] = {}
    for path, name in found:
        for form in {str(path.absolute()), str(path.resolve())}:  # as given, and with links followed
            if form != os.sep:
                pairs.setdefault(form, name)
    return sorted(pairs.items(), key=lambda pair: len(pair[0]), reverse=True)


def shorten_text(text: str, named: list[tuple[str, str]]) -> str:
    """``text`` with every root's absolute path written from its name."""
    for path, name in named:
        # the root as a whole path: not the start of a longer name, nor the middle of another path
        # (but right after a terminal colour code, as tracebacks print it)
        text = re.sub(rf"(?:(?<![\w.\-/])|(?<=[\d;\[]m)){re.escape(path)}(?![\w.\-])", name, text)
    return text


def shorten(doc, named: list[tuple[str, str]]):
    """A copy of a JSON-like ``doc`` with every string shortened."""
    if isinstance(doc, str):
        return shorten_text(doc, named)
    if isinstance(doc, dict):
        return {k: shorten(v, named) for k, v in doc.items()}
    if isinstance(doc, list):
        return [shorten(v, named) for v in doc]
    return doc


def expand(path: str, cache_dir: str | os.PathLike) -> str:
    """A path as :func:`shorten` wrote it, back as a path of this machine: ``<cache>`` is ``cache_dir``,
    ``<repo>`` this clone, ``<python>`` this interpreter's prefix, ``~`` this home folder. (``<report>``
    is only ever published: no step reads a path under it.)"""
    here = {CACHE: Path(cache_dir).absolute(), REPO: REPO_ROOT, PYTHON: Path(sys.prefix), HOME: Path.home()}
    for name, root in here.items():
        if path == name or path.startswith(name + "/"):
            return str(root) + path[len(name) :]
    return path


def expand_all(doc, cache_dir: str | os.PathLike):
    """A copy of a JSON-like ``doc`` with :func:`expand` applied to every string."""
    if isinstance(doc, str):
        return expand(doc, cache_dir)
    if isinstance(doc, dict):
        return {k: expand_all(v, cache_dir) for k, v in doc.items()}
    if isinstance(doc, list):
        return [expand_all(v, cache_dir) for v in doc]
    return doc


def scrub_file(path: Path, named: list[tuple[str, str]]) -> None:
    """Shorten the paths in a published text file in place (atomically); other files are left alone."""
    from .jsonfile import write_text

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return
    scrubbed = shorten_text(text, named)
    if scrubbed != text:
        write_text(path, scrubbed)


#: the files of a cell's folder and a report folder that are text
TEXT_SUFFIXES = (".json", ".ipynb", ".log", ".md", ".html", ".txt")


def scrub_folder(folder: Path, named: list[tuple[str, str]]) -> None:
    """:func:`scrub_file` on every text file below ``folder``."""
    for f in sorted(Path(folder).rglob("*")):
        if f.suffix in TEXT_SUFFIXES and f.is_file() and not f.is_symlink():
            scrub_file(f, named)
