"""Atomic file writes: a crash or an error never leaves a half-written file under the final name."""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
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
    when it fails it is removed and ``path`` is as it was. The temporary folder keeps ``path``'s
    extension (a tool that writes a package folder may insist on it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp, old = path.with_name(f".{path.stem}.{tag}.part{path.suffix}"), path.with_name(f".{path.name}.{tag}.old")
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def json_safe(value: object) -> object:
    """``value`` with every infinite or NaN float replaced by None: strict JSON has neither, and
    Python's ``json`` would otherwise write ``Infinity``, which strict parsers reject."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path: str | Path, value: object) -> Path:
    """Write ``value`` as strict JSON (json_safe), atomically."""
    path = Path(path)
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(json_safe(value), indent=2, allow_nan=False))
    return path


def check_not_an_input(output: str | Path, jobs: Iterable[tuple[Path, Path]]) -> None:
    """ValueError when one of the (source, destination) ``jobs`` would write over a source: that would
    destroy the user's file."""
    jobs = list(jobs)
    inputs = {source.resolve() for source, _ in jobs}
    clash = next((dest for _, dest in jobs if dest.resolve() in inputs), None)
    if clash is not None:
        raise ValueError(f"output={output} would overwrite the input {clash}: give another output file or folder")
