"""Checkpoint folders that appear whole or not at all, and weights made by one process at a time."""

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


@contextlib.contextmanager
def one_maker(target: Path):
    """While the block runs, no other process makes ``target``: an exclusive lock on ``<target>.lock``
    beside it, which the kernel drops when its holder dies (a killed writer blocks nobody). Yields
    whether the block must still make ``target``: False when it was missing on the way in and another
    process made it while this one waited. Two cells that need the same weights at once (a Ray run with
    ``--per-host 2``, two runs sharing a cache) make them once; both wrote the same temporary name, and
    one failed ("No such file or directory: ….gguf.tmp -> ….gguf"). The holder removes the lock file on
    its way out, made or failed; a process that was waiting on it takes a new one."""
    import fcntl

    target = Path(target)
    lock = target.with_name(target.name + ".lock")
    existed = target.exists()
    while True:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise WeightsError(f"cannot write to {target.parent}: {err}") from err
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break  # the lock file is still the one at that name: ours
        except FileNotFoundError:
            pass  # its holder removed it while this process waited
        os.close(fd)
    try:
        yield existed or not target.exists()
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)
