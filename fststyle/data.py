"""Training photos: any folder tree of images (COCO's train2014 is one), cropped to squares."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytorch_lightning as pl
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import functional as TF

from fststyle.images import is_image_file, open_rgb

log = logging.getLogger(__name__)

COCO_HELP = "get COCO with scripts/download_coco.sh (see data/README.md) or train on your own photos with data=folder data.root=DIR"

# Real colour photographs shipped inside scikit-image's wheel: `data=sample` needs no download.
SAMPLE_PHOTOS = ("astronaut.png", "hubble_deep_field.jpg", "motorcycle_left.png", "motorcycle_right.png", "retina.jpg", "rocket.jpg", "chelsea.png", "coffee.png")


def sample_root() -> Path:
    """scikit-image's data folder, which holds SAMPLE_PHOTOS."""
    import importlib.util

    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("data=sample needs scikit-image: pip install scikit-image")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def find_images(root: str | Path) -> list[Path]:
    """All image files below ``root`` (recursive, any letter case of the extension), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root.resolve()}")
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath) / f for f in filenames if is_image_file(f) and not f.startswith(".")]
    return sorted(found)


class PhotoDataset(Dataset):
    """Square crops of photos: a random (train) or centre square of the shorter side's length,
    resized to ``size`` (the same as resizing first and cropping, without ever enlarging a very
    long image; smaller images are upscaled).

    A file that cannot be read is reported once and replaced by the next readable one, so one bad
    JPEG does not end a long run.
    """

    def __init__(self, files: list[Path], size: int, train: bool = True):
        if not files:
            raise ValueError("no images to train on")
        self.files, self.size, self.train = files, size, train
        self._reported: set[Path] = set()

    def __len__(self) -> int:
        return len(self.files)

    def crop(self, image: Image.Image) -> torch.Tensor:
        w, h = image.size
        side = min(w, h)
        if self.train:
            x, y = (int(torch.randint(0, n - side + 1, ())) for n in (w, h))
        else:
            x, y = (w - side) // 2, (h - side) // 2
        square = image.crop((x, y, x + side, y + side)).resize((self.size, self.size), Image.Resampling.BILINEAR, reducing_gap=3.0)
        return TF.to_tensor(square)

    def __getitem__(self, index: int) -> torch.Tensor:
        for offset in range(len(self.files)):
            path = self.files[(index + offset) % len(self.files)]
            try:
                return self.crop(open_rgb(path))
            except Exception as err:  # any decoder error: skip the file, keep the run
                if path not in self._reported:
                    self._reported.add(path)
                    log.warning("skipping unreadable image %s: %s", path, err)
        raise RuntimeError(f"none of the {len(self.files)} images could be read (first: {self.files[0]})")


class StyleDataModule(pl.LightningDataModule):
    """Photos for training, plus a few held-out ones for the sample grid.

    Held out: the images under ``val_root`` if given, else the files named in ``val_files``, else the
    last ``num_val`` files in sorted order. ``include`` limits the training files to those names.
    ``sample``: train on the sample photos that ship with scikit-image instead of ``root``.
    ``fallback_to_sample``: when ``root`` is missing, train on the sample photos (with a warning).
    """

    def __init__(
        self,
        root: str | None,
        sample: bool = False,
        image_size: int = 256,
        batch_size: int = 4,
        num_workers: int = 4,
        val_root: str | None = None,
        val_files: list[str] | None = None,
        num_val: int = 4,
        include: list[str] | None = None,
        sample_size: int = 256,
        fallback_to_sample: bool = False,
    ):
        super().__init__()
        if image_size < 16 or batch_size < 1 or num_workers < 0 or num_val < 0:
            raise ValueError(f"need data.image_size >= 16, data.batch_size >= 1, data.num_workers >= 0, data.num_val >= 0; got {image_size}, {batch_size}, {num_workers}, {num_val}")
        if root is None and not sample:
            raise ValueError("data.root is not set: give the folder of photos as data.root=DIR")
        if sample or (fallback_to_sample and not Path(root).is_dir()):
            if not sample:
                log.warning("\n%s\n!! %s not found: training on the %d sample photos instead.\n!! For real models, %s.\n%s",
                            "!" * 78, Path(root).resolve(), len(SAMPLE_PHOTOS), COCO_HELP, "!" * 78)
            root, include, val_files = str(sample_root()), list(SAMPLE_PHOTOS[:-2]), list(SAMPLE_PHOTOS[-2:])
        self.root = Path(root)
        self.image_size, self.batch_size, self.num_workers, self.sample_size = image_size, batch_size, num_workers, sample_size
        self.train_files, self.val_files = self._split(find_images(self.root), val_root, val_files, num_val, include)
        if not self.train_files:
            raise FileNotFoundError(f"no images (jpg, png, webp, bmp, tif, gif) found under {self.root.resolve()}")
        self._check_some_readable(self.train_files)

    @staticmethod
    def _check_some_readable(files: list[Path], sample: int = 64) -> None:
        """Fail now, not in a data worker, when the images cannot be read at all (up to ``sample``
        files, spread over the list, have their headers checked)."""
        checked = files[:: max(1, len(files) // sample)][:sample]
        for path in checked:
            try:
                with Image.open(path):
                    return
            except Exception:  # any decoder error: try the next one
                continue
        raise ValueError(f"none of the {len(checked)} images checked under {Path(checked[0]).parent} can be read; are they images?")

    def _split(self, files, val_root, val_files, num_val, include):
        if val_root is not None:
            train, val = files, find_images(val_root)
        elif val_files is not None:
            held = set(val_files)
            train, val = [f for f in files if f.name not in held], [f for f in files if f.name in held]
        else:
            num_val = min(num_val, len(files) - 1)
            train, val = (files[:-num_val], files[-num_val:]) if num_val > 0 else (files, [])
        if include is not None:
            train = [f for f in train if f.name in set(include)]
        return train, val

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            PhotoDataset(self.train_files, self.image_size, train=True),
            batch_size=self.batch_size,
            shuffle=True,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )

    def sample_batch(self) -> torch.Tensor:
        """The held-out photos as one (N, 3, S, S) batch for the sample grid."""
        files = self.val_files or self.train_files[:4]
        dataset = PhotoDataset(files, self.sample_size, train=False)
        return torch.stack([dataset[i] for i in range(len(dataset))])
