"""Lightning's checkpoint writer, made atomic (a module of its own so that inference never imports Lightning)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from fststyle.files import atomic_write


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
