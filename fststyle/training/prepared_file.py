"""The prepared file: training photos decoded once, for a data pipeline that keeps up with a GPU.

Each photo's centre square, resized to ``data.image_size``, is stored in one uint8 .npy file of shape
(N, S, S, 3) that training memory-maps: no JPEG decoding during training. Like Johnson et al.'s fixed
256x256 training images, every epoch then sees the same square of each photo; the folder pipeline
draws a new random square per epoch instead. Unreadable files are skipped and listed. The file is
written atomically, with a JSON description beside it (``<file>.json``: size, count, the photos in
order, the skipped ones). ``python -m fststyle.prepare`` writes it for a whole folder;
``data.prepared=build`` for the training photos of a run.
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from fststyle.files import atomic_write
from fststyle.images import open_rgb, square_crop

log = logging.getLogger(__name__)


def prepared_path(root: str | Path, size: int) -> Path:
    """Where the prepared file of a photo folder lives: beside the folder, named after it and the size."""
    root = Path(root)
    return root.parent / f"{root.name}.fststyle{size}.npy"


def centre_square(path: Path, size: int) -> np.ndarray | None:
    """The photo's centre square, resized to size x size, as (S, S, 3) uint8; None if unreadable."""
    try:
        image = open_rgb(path)
    except Exception:  # reported by the caller
        return None
    return np.asarray(square_crop(image, size, centre=True), dtype=np.uint8)


def write_prepared(files: list[Path], out: Path, size: int, workers: int = 0) -> tuple[list[Path], list[Path]]:
    """Write the prepared file of ``files``; returns (stored photos, skipped photos)."""
    stored, skipped = [], []
    workers = workers or os.cpu_count() or 1
    start = time.perf_counter()
    with atomic_write(out) as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(files), size, size, 3))
        with ProcessPoolExecutor(workers) as pool, tqdm(total=len(files), unit="photo") as bar:
            for path, square in zip(files, pool.map(centre_square, files, [size] * len(files), chunksize=16)):
                if square is None:
                    skipped.append(path)
                else:
                    array[len(stored)] = square
                    stored.append(path)
                bar.update(1)
        array.flush()
        del array  # rows after `count` (one per skipped photo) stay zero and are never read
    with atomic_write(out.with_suffix(out.suffix + ".json")) as tmp:
        tmp.write_text(json.dumps({"size": size, "count": len(stored), "photos": [str(p) for p in stored],
                                   "skipped": [str(p) for p in skipped]}))
    seconds = time.perf_counter() - start
    log.info("%d photos stored, %d skipped, %.2f GiB in %.0f s (%.0f photos/s)", len(stored), len(skipped),
             out.stat().st_size / 2**30, seconds, len(files) / seconds)
    return stored, skipped


class PreparedDataset(Dataset):
    """Photos from a file written by ``python -m fststyle.prepare``: uint8 squares, memory-mapped (each
    data worker maps the file itself), no decoding. ``rows`` are the photos' rows in the file.

    Items stay uint8 (3, S, S): a quarter of the bytes to pass from the workers and to copy to the
    GPU; the LightningModule scales them to [0, 1] on the device. ``flip`` mirrors half of them,
    decided by the item's crop seed (as for decoded photos)."""

    def __init__(self, path: Path, rows: list[int], flip: bool = False):
        self.path, self.rows, self.flip = path, rows, flip
        self._array: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, item: int | tuple[int, int]) -> torch.Tensor:
        index, seed = item if isinstance(item, tuple) else (item, None)
        if self._array is None:
            self._array = np.load(self.path, mmap_mode="r")
        square = torch.from_numpy(np.array(self._array[self.rows[index]])).permute(2, 0, 1)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        if self.flip and bool(torch.rand((), generator=generator) < 0.5):
            square = square.flip(-1)
        return square


def prepared_rows(path: Path, files: list[Path], size: int) -> dict[Path, int] | None:
    """Row in a prepared file of each of ``files`` (those it skipped as unreadable left out), or None
    when the file does not hold them all at ``size``."""
    meta_path = path.with_suffix(path.suffix + ".json")
    if not path.is_file() or not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    if meta["size"] != size:
        log.warning("%s holds %d px photos, not data.image_size=%d: not used (run fststyle.prepare again, or train with data.prepared=build)", path, meta["size"], size)
        return None
    row_of = {Path(p).resolve(): i for i, p in enumerate(meta["photos"][: meta["count"]])}
    skipped = {Path(p).resolve() for p in meta.get("skipped", [])}
    missing = [f for f in files if f.resolve() not in row_of and f.resolve() not in skipped]
    if missing:
        log.warning("%s lacks %d of the %d training photos: not used (run fststyle.prepare again, or train with data.prepared=build)", path, len(missing), len(files))
        return None
    return {f: row_of[f.resolve()] for f in files if f.resolve() in row_of}


