"""``python -m fststyle.prepare data=coco``: decode and resize the training photos once.

Each photo's centre square is resized to ``data.image_size`` and stored in one uint8 .npy file of
shape (N, S, S, 3) that training memory-maps (``data.prepared``): no JPEG decoding during training, so the
data pipeline keeps up with a GPU on few CPU cores. Like Johnson et al.'s fixed 256x256 training images,
every epoch then sees the same square of each photo; the folder pipeline draws a new random square
per epoch instead. Unreadable files are skipped and listed. The file is written atomically, with a
JSON description beside it (``<file>.json``: size, count, the photos in order, the skipped ones).
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig
from tqdm import tqdm

from fststyle.cli import check_choices, run_cli
from fststyle.data import find_images, square_crop
from fststyle.files import atomic_write
from fststyle.images import open_rgb

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
    """Write the prepared file; returns (stored photos, skipped photos)."""
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


def prepare(cfg: DictConfig) -> Path:
    root = Path(cfg.data.root)
    files = find_images(root)
    if not files:
        raise FileNotFoundError(f"no images found under {root.resolve()}")
    out = Path(cfg.output) if cfg.output else prepared_path(root, cfg.data.image_size)
    _, skipped = write_prepared(files, out, cfg.data.image_size, cfg.workers)
    for path in skipped:
        print(f"skipped unreadable photo: {path}")
    print(f"prepared: {out.resolve()}")
    return out


@hydra.main(version_base="1.3", config_path="../conf", config_name="prepare")
def main(cfg: DictConfig) -> None:
    run_cli(lambda: prepare(cfg))


if __name__ == "__main__":
    check_choices(Path(__file__).resolve().parents[1] / "conf")
    main()
