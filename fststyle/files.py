"""Atomic file writes: a crash or an error never leaves a half-written file under the final name."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO


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


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer with a temporary file beside the checkpoint.

    Lightning's own writes the checkpoint to the system temp folder and moves it into place. When that
    folder is another filesystem (a tmpfs /tmp, node-local $TMPDIR on clusters) the move is a copy:
    a job killed during it (a preemption's SIGKILL after the grace period) leaves a truncated
    ``last.ckpt`` that cannot be resumed, and the temporary file fills the temp folder."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):  # remote storage: Lightning's fsspec path
            return super().save_checkpoint(checkpoint, path, storage_options)
        with atomic_write(path, sync=True) as tmp:
            torch.save(checkpoint, tmp)
