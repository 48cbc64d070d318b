"""Atomic file writes: a crash or an error never leaves a half-written file under the final name."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_write(path: str | Path, sync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same extension, so format detection works) for the
    caller to create; it is renamed to ``path`` when the block succeeds and removed when it fails.
    The caller creates the file, so it gets the usual permissions (umask), unlike mkstemp's 0600.

    ``sync``: flush the file to the disk before the rename, so that a power cut or a node crash
    (not only a killed process) leaves the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.part{path.suffix}")
    try:
        yield tmp
        if sync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path`` for the caller to fill; when the block succeeds it takes
    the place of ``path`` (a folder already there is replaced: the caller decides whether it may be),
    when it fails it is removed and ``path`` is as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp, old = path.with_name(f".{path.name}.{tag}.part"), path.with_name(f".{path.name}.{tag}.old")
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
