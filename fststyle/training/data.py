"""Training photos: any folder tree of images, or COCO's own layout, cropped to squares."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from fststyle.errors import UserError
from fststyle.images import find_files, open_rgb, square_crop, to_tensor
from fststyle.training.prepared_file import PreparedDataset, prepared_path, prepared_rows, write_prepared

log = logging.getLogger(__name__)

COCO_HELP = "get COCO with scripts/download_coco.sh (see data/README.md) or train on your own photos with data=folder data.root=DIR"

# Real colour photographs shipped inside scikit-image's wheel: `data=sample` needs no download.
SAMPLE_CROP_SCALE = (0.25, 1.0)  # data.crop_scale for the sample photos when it is not set
SAMPLE_PHOTOS = ("astronaut.png", "hubble_deep_field.jpg", "motorcycle_left.png", "motorcycle_right.png", "retina.jpg", "rocket.jpg", "chelsea.png", "coffee.png")


# COCO's training image folders, in the order one is picked when a dataset folder holds both.
COCO_SPLITS = ("train2017", "train2014")


def coco_photos(root: Path) -> tuple[Path, list[Path]] | None:
    """COCO's own layout: ``root`` is the dataset folder (``train2017/`` or ``train2014/`` beside
    ``annotations/``) or one of those image folders. Returns the image folder and its photos, or None
    when ``root`` is neither. With ``annotations/instances_<split>.json`` the photos are the ones it
    lists (missing ones are reported and left out); without it, every image in the folder."""
    if root.name in COCO_SPLITS and root.is_dir():
        split, images, annotations = root.name, root, root.parent / "annotations"
    else:
        split = next((s for s in COCO_SPLITS if (root / s).is_dir()), None)
        if split is None:
            return None
        images, annotations = root / split, root / "annotations"
    listing = annotations / f"instances_{split}.json"
    if not listing.is_file():
        log.info("COCO %s: no %s, training on every image in %s", split, listing, images)
        return images, find_files(images)
    start = time.perf_counter()
    try:
        names = [entry["file_name"] for entry in json.loads(listing.read_bytes())["images"]]
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"{listing} is not COCO's annotation JSON (an 'images' list with file_name entries): "
                        f"{type(err).__name__}: {err}; move it away to train on every image in {images}") from err
    files = sorted(images / name for name in set(names) if (images / name).is_file())
    missing = len(set(names)) - len(files)
    if missing:
        log.warning("COCO %s: %d of the %d photos %s lists are not in %s; training on the %d there", split, missing,
                    len(set(names)), listing.name, images, len(files))
    log.info("COCO %s: %d photos listed by %s (read in %.1f s)", split, len(files), listing, time.perf_counter() - start)
    return images, files


def as_roots(root: str | Path | list | None) -> list[Path]:
    """``data.root`` as a list of folders: one folder or a list of them."""
    return [] if root is None else [Path(root)] if isinstance(root, (str, Path)) else [Path(r) for r in root]


def photo_folders(roots: list[Path]) -> tuple[list[Path], list[Path]]:
    """The image folders and every photo under ``roots`` (COCO's layout where a root has it, else
    the folder tree), in order, each file once."""
    folders, files = [], []
    for root in roots:
        folder, found = coco_photos(root) or (root, find_files(root))
        folders.append(folder)
        files += found
    return folders, list(dict.fromkeys(files))


def sample_root() -> Path:
    """scikit-image's data folder, which holds SAMPLE_PHOTOS."""
    import importlib.util

    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("data=sample needs scikit-image: pip install scikit-image")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


class EpochSampler(Sampler[tuple[int, int]]):
    """The training order, identical for any number of processes, and resumable mid-epoch.

    Each epoch is a permutation of the photos drawn from (seed, epoch), cut into global batches of
    ``batch_size * world_size``; rank r takes slice r of every global batch. So one process with
    batch 4 and two processes with batch 2 see the same images in the same steps. The incomplete last
    global batch is dropped. Each item comes with a crop seed derived from (seed, epoch, photo), so a
    photo's random crop depends neither on the rank nor on the data worker that loads it.
    ``skip(n)`` starts the current epoch at its n-th global batch (resuming a checkpoint).
    ``repeat``: an epoch lists every photo that many times (each time with its own crop seed): with
    few photos and fast steps, an epoch of a handful of batches would leave the GPU waiting for the
    data workers at every epoch's start.
    """

    def __init__(self, size: int, batch_size: int, rank: int = 0, world_size: int = 1, seed: int = 0, repeat: int = 1):
        if repeat < 1:
            raise ValueError(f"data.repeat must be >= 1, got {repeat}")
        if size * repeat < batch_size * world_size:
            raise ValueError(f"{size} training photos are fewer than one global batch ({batch_size} x {world_size} processes)")
        self.photos, self.size = size, size * repeat
        self.batch_size, self.rank, self.world_size, self.seed = batch_size, rank, world_size, seed
        self.batches_per_epoch = self.size // (batch_size * world_size)
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int) -> None:  # called by Lightning before every epoch
        self.epoch = epoch

    def skip(self, batches: int) -> None:
        self.start = min(max(batches, 0), self.batches_per_epoch)

    def __len__(self) -> int:
        # Always a whole epoch, also when resuming into one: Lightning counts batches per epoch once,
        # and continues its restored in-epoch counter where the skip continues the order.
        return self.batches_per_epoch * self.batch_size

    def __iter__(self):
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)).tolist()
        global_batch = self.batch_size * self.world_size
        start, self.start = self.start, 0  # a skip applies to one epoch only
        for b in range(start, self.batches_per_epoch):
            first = b * global_batch + self.rank * self.batch_size
            for index in order[first : first + self.batch_size]:
                yield index % self.photos, (self.seed * 1_000_003 + self.epoch) * self.size + index


class PhotoDataset(Dataset):
    """Square crops of photos: a random (train) or centre square of the shorter side's length,
    resized to ``size`` (the same as resizing first and cropping, without ever enlarging a very
    long image; smaller images are upscaled). For training, ``scale`` draws the square's side as a
    share of the shorter side and ``flip`` mirrors half of the squares (fststyle.images.square_crop).

    A file that cannot be read is reported once and replaced by the next readable one, so one bad
    JPEG does not end a long run.
    """

    def __init__(self, files: list[Path], size: int, train: bool = True, scale: tuple[float, float] = (1.0, 1.0), flip: bool = False):
        if not files:
            raise ValueError("no images to train on")
        self.files, self.size, self.train = files, size, train
        self.scale, self.flip = (tuple(scale), flip) if train else ((1.0, 1.0), False)
        self._reported: set[Path] = set()

    def __len__(self) -> int:
        return len(self.files)

    def crop(self, image: Image.Image, seed: int | None = None) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        return to_tensor(square_crop(image, self.size, generator, centre=not self.train, scale=self.scale, flip=self.flip))

    def __getitem__(self, item: int | tuple[int, int]) -> torch.Tensor:
        """``item``: an index, or (index, crop seed) from EpochSampler."""
        index, seed = item if isinstance(item, tuple) else (item, None)
        for offset in range(len(self.files)):
            path = self.files[(index + offset) % len(self.files)]
            try:
                return self.crop(open_rgb(path), seed)
            except Exception as err:  # any decoder error: skip the file, keep the run
                if path not in self._reported:
                    self._reported.add(path)
                    log.warning("skipping unreadable image %s: %s", path, err)
        raise UserError(f"none of the {len(self.files)} images could be read (first: {self.files[0]})")


def split_photos(files: list[Path], val_root: str | None, val_files: list[str] | None, num_val: int,
                 include: list[str] | None) -> tuple[list[Path], list[Path]]:
    """(training, held-out) photos. Held out: the images under ``val_root`` if given, else the files
    named in ``val_files``, else the last ``num_val`` files in sorted order. ``include`` limits the
    training photos to those names."""
    if val_root is not None:
        train, val = files, find_files(val_root)
    elif val_files is not None:
        held = set(val_files)
        train, val = [f for f in files if f.name not in held], [f for f in files if f.name in held]
    else:
        num_val = min(num_val, len(files) - 1)
        train, val = (files[:-num_val], files[-num_val:]) if num_val > 0 else (files, [])
    if include is not None:
        train = [f for f in train if f.name in set(include)]
    return train, val


def check_some_readable(files: list[Path], sample: int = 64) -> None:
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


class StyleDataModule(pl.LightningDataModule):
    """Photos for training, plus a few held-out ones for the sample grid.

    ``root``: a folder of photos (searched recursively), COCO's layout (coco_photos), or a list of
    those; held out and included: see split_photos.
    ``sample``: train on the sample photos that ship with scikit-image instead of ``root``.
    ``fallback_to_sample``: when ``root`` is missing, train on the sample photos (with a warning).
    ``prepared``: ``auto`` trains from the file ``python -m fststyle.prepare`` wrote for this folder and
    ``image_size`` when there is one (faster, no decoding), ``build`` writes that file first when there
    is none, ``false`` always reads the photos, or a path.

    The photos are found (and checked) on construction, so that a bad folder fails before training.
    """

    def __init__(
        self,
        root: str | list[str] | None,
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
        seed: int = 0,
        prepared: str | bool = "auto",
        crop_scale: tuple[float, float] | None = None,
        flip: bool | None = None,
        repeat: int = 1,
    ):
        super().__init__()
        # data.prepared=build writes the prepared file beside the photo folder, which the nodes of a job
        # share: one process of the whole job writes it, the others wait for it and read it.
        self.prepare_data_per_node = False
        checks = [
            (image_size >= 32, f"data.image_size must be >= 32 (the loss network looks 8x coarser), got {image_size}"),
            (batch_size >= 1, f"data.batch_size must be >= 1, got {batch_size}"),
            (num_workers >= 0 and num_val >= 0, f"data.num_workers and data.num_val must be >= 0, got {num_workers}, {num_val}"),
            (repeat >= 1, f"data.repeat must be >= 1, got {repeat}"),
            (root is not None or sample, "data.root is not set: give the folder of photos as data.root=DIR"),
            (crop_scale is None or (len(crop_scale) == 2 and 0 < crop_scale[0] <= crop_scale[1] <= 1),
             f"data.crop_scale must be [low, high] with 0 < low <= high <= 1, got {crop_scale and list(crop_scale)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        roots = as_roots(root)
        few_photos = sample or (fallback_to_sample and not all(r.is_dir() for r in roots))
        # Unset (null), the recipe measured for the source (README, "Quality"): a photo folder as Johnson
        # et al. (whole shorter side, no flips); the six sample photos as random squares of 25-100% of
        # the shorter side, mirrored half the time, which gives far more distinct training images.
        low, high = crop_scale if crop_scale is not None else (SAMPLE_CROP_SCALE if few_photos else (1.0, 1.0))
        self.crop_scale, self.flip = (float(low), float(high)), bool(few_photos if flip is None else flip)
        if few_photos:
            include, val_files = list(SAMPLE_PHOTOS[:-2]), list(SAMPLE_PHOTOS[-2:])
            if not sample:
                missing = ", ".join(str(r.resolve()) for r in roots if not r.is_dir())
                log.warning("\n%s\n!! %s not found: training on the %d sample photos instead (%d more show the sample grid).\n"
                            "!! For real models, %s.\n%s", "!" * 78, missing, len(include), len(val_files), COCO_HELP, "!" * 78)
            roots = [sample_root()]
        self.folders, files = photo_folders(roots)
        self.root = self.folders[0]  # names the prepared file
        self.image_size, self.batch_size, self.num_workers, self.sample_size, self.seed = image_size, batch_size, num_workers, sample_size, seed
        self.repeat = repeat
        self.train_files, self.val_files = split_photos(files, val_root, val_files, num_val, include)
        if not self.train_files:
            raise FileNotFoundError(f"no images (jpg, png, webp, bmp, tif, gif) found under {self.root.resolve()}")
        check_some_readable(self.train_files)
        self.prepared_mode = "false" if prepared in (False, None) or self.root == sample_root() else str(prepared)
        self.prepared: Path | None = None
        self.prepared_rows: list[int] = []
        if not self._use_prepared_file() and self.prepared_mode not in ("false", "auto", "build"):
            raise FileNotFoundError(f"data.prepared={prepared}: no usable prepared file there (python -m fststyle.prepare writes it)")

    def _prepared_file(self) -> Path | None:
        if self.prepared_mode == "false":
            return None
        return prepared_path(self.root, self.image_size) if self.prepared_mode in ("auto", "build") else Path(self.prepared_mode)

    def _use_prepared_file(self) -> bool:
        """Train from the prepared file when it holds the training photos at this size."""
        path = self._prepared_file()
        rows = prepared_rows(path, self.train_files, self.image_size) if path is not None else None
        if rows is None:
            return False
        self.prepared, self.train_files, self.prepared_rows = path, list(rows), list(rows.values())
        log.info("training photos from the prepared file %s", path)
        if self.crop_scale != (1.0, 1.0):
            log.warning("the prepared file %s holds each photo's centre square: data.crop_scale=%s is not applied "
                        "(data.prepared=false reads the photos and applies it)", path, list(self.crop_scale))
        return True

    def prepare_data(self) -> None:
        """``data.prepared=build`` (the GPU preset): write the prepared file of the training photos
        when there is no usable one. Lightning calls this on one process of the job, before training."""
        if self.prepared_mode != "build" or self.prepared is not None:
            return
        path = self._prepared_file()
        size_gb = len(self.train_files) * self.image_size**2 * 3 / 2**30
        free_gb = shutil.disk_usage(path.parent).free / 2**30
        if free_gb < size_gb + 1:
            log.warning("data.prepared=build: %s would need %.1f GB, %.1f GB free: reading the photos instead", path, size_gb, free_gb)
            return
        log.info("data.prepared=build: decoding the %d training photos of %s once into %s (%.1f GB); later runs reuse it, "
                 "data.prepared=false reads the photos instead", len(self.train_files), self.root, path, size_gb)
        try:
            _, skipped = write_prepared(self.train_files, path, self.image_size)
        except OSError as err:  # e.g. a read-only dataset folder: training still works from the photos
            log.warning("data.prepared=build: could not write %s (%s): reading the photos instead", path, err)
            return
        if skipped:
            log.warning("%d unreadable photos left out of %s (listed in its .json)", len(skipped), path)

    def setup(self, stage: str) -> None:
        if self.prepared is None and self.prepared_mode == "build":
            self._use_prepared_file()

    def sampler(self) -> EpochSampler:
        """The training order for this process; after a restored checkpoint the current epoch
        continues where it stopped (Lightning builds the loader after restoring)."""
        trainer = getattr(self, "trainer", None)
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        sampler = EpochSampler(len(self.train_files), self.batch_size, rank, world, self.seed, self.repeat)
        if trainer is not None:
            sampler.set_epoch(trainer.current_epoch)
            sampler.skip(trainer.global_step - trainer.current_epoch * sampler.batches_per_epoch)
        return sampler

    def train_dataloader(self) -> DataLoader:
        if self.prepared is not None:
            dataset: Dataset = PreparedDataset(self.prepared, self.prepared_rows, self.flip)
        else:
            dataset = PhotoDataset(self.train_files, self.image_size, train=True, scale=self.crop_scale, flip=self.flip)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=self.sampler(),
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )

    def on_after_batch_transfer(self, batch: torch.Tensor, dataloader_idx: int) -> torch.Tensor:
        """Prepared photos travel as bytes (PreparedDataset: a quarter of the transfer) and become floats
        in [0, 1] on the device. Here, not in the LightningModule: Lightning warns when a module that
        has this hook is given a DataModule."""
        return batch.float().div_(255) if batch.dtype == torch.uint8 else batch

    def held_out_files(self) -> list[Path]:
        """The photos of the sample grid and the quality curve: the held-out ones, else four training photos."""
        return list(self.val_files or self.train_files[:4])

    def sample_batch(self) -> torch.Tensor:
        """The held-out photos as one (N, 3, S, S) batch for the sample grid."""
        dataset = PhotoDataset(self.held_out_files(), self.sample_size, train=False)
        return torch.stack([dataset[i] for i in range(len(dataset))])
