"""Reading a Dockerfile: which files and build arguments decide an image, and which images it starts from.

Pure text work on the Dockerfile and its build context (no Docker needed): the docker runner tags each
image by :func:`inputs_hash`, so an image is built once and rebuilt only when one of its inputs changes.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Mapping
from pathlib import Path


def image_tag(engine_name: str, platform: str, dockerfile: Path, context: Path,
              build_args: Mapping[str, str] | None = None) -> str:
    return f"llmperf-nb/{engine_name}:{platform}-{inputs_hash(dockerfile, context, build_args)[:12]}"


def inputs_hash(dockerfile: Path, context: Path, build_args: Mapping[str, str] | None = None) -> str:
    """sha256 of what decides the image: the Dockerfile, the files it COPYs or ADDs, the build arguments."""
    text = dockerfile.read_text()
    h = hashlib.sha256()
    h.update(b"dockerfile\0" + text.encode())
    for rel, path in copied_files(text, context):
        h.update(f"\0file\0{rel}\0".encode())
        h.update(hashlib.sha256(path.read_bytes()).digest() if path else b"missing")
    h.update(b"\0args\0" + json.dumps(dict(build_args or {}), sort_keys=True).encode())
    return h.hexdigest()


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined and comment lines dropped."""
    out, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # also inside a continued instruction, as Docker reads it
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        word, _, rest = current.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    if current.strip():
        word, _, rest = current.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def copied_files(text: str, context: Path) -> list[tuple[str, Path | None]]:
    """Files of the build context that COPY/ADD take in, sorted; (pattern, None) for one that matches nothing."""
    found: dict[str, Path | None] = {}
    for word, rest in instructions(text):
        if word not in ("COPY", "ADD"):
            continue
        args = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
        if any(a.startswith("--from") for a in args):
            continue  # from another stage or image, not from the context
        sources = [a for a in args if not a.startswith("--")][:-1]
        for src in sources:
            if re.match(r"^[a-z]+://", src):
                found[src] = None  # ADD of a URL: the URL itself is the input
                continue
            matches = sorted(context.glob(src.lstrip("/"))) if src.strip("./") else [context]
            if not matches:
                found[src] = None
            for m in matches:
                for f in (sorted(p for p in m.rglob("*") if p.is_file()) if m.is_dir() else [m]):
                    found[f.relative_to(context).as_posix()] = f
    return sorted(found.items())


def base_images(text: str, build_args: Mapping[str, str] | None = None) -> list[str]:
    """The images the FROM lines name, with global ARG defaults and build arguments filled in."""
    args: dict[str, str] = {}
    stages: set[str] = set()
    bases = []
    for word, rest in instructions(text):
        if word == "ARG" and not bases:
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                args[key] = value
        elif word == "FROM":
            parts = rest.split()
            flags = [p for p in parts if p.startswith("--")]
            parts = [p for p in parts if not p.startswith("--")]
            image = _expand(parts[0], {**args, **(build_args or {})})
            if len(parts) >= 3 and parts[1].lower() == "as":
                stages.add(parts[2])
            if image not in stages and image != "scratch" and not flags:
                bases.append(image)
    return bases


def _expand(word: str, values: Mapping[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m.group(1), ""), word)
