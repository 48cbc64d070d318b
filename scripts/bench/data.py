"""The training data pipeline alone: the photos, the prepared file, torchvision's decode_jpeg
(`scripts/benchmark.py data`)."""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import torch
from hydra.utils import instantiate

from bench.common import device_name, time_fn, training_config
from fststyle.inference.stylizer import pick_device


def run(args: argparse.Namespace) -> dict:
    """Images/s of the training data pipeline alone, reading the photos and (if prepared) the file."""
    results = []
    for prepared in ("false", "auto"):
        cfg, _ = training_config([*args.overrides, f"data.prepared={prepared}"])
        datamodule = instantiate(cfg.data)
        if prepared == "auto" and datamodule.prepared is None:
            print("no prepared file for this folder and size (python -m fststyle.prepare ...): only the photos are timed")
            break
        loader = datamodule.train_dataloader()
        it, count = iter(loader), 0
        for _ in range(args.warmup):
            next(it)
        start = time.perf_counter()
        for _ in range(args.batches):
            try:
                count += len(next(it))
            except StopIteration:
                it = iter(loader)
                count += len(next(it))
        seconds = time.perf_counter() - start
        source = "prepared file" if prepared == "auto" else "JPEG/PNG photos"
        results.append({"source": source, "workers": cfg.data.num_workers, "image_size": cfg.data.image_size,
                        "images_per_s": round(count / seconds, 1)})
        print(f"{source:<16} {cfg.data.num_workers} workers, {cfg.data.image_size} px: {count / seconds:8.1f} images/s", flush=True)
    device = pick_device(args.device)
    rate = decode_jpeg_rate(datamodule.train_files, cfg.data.image_size, device, cfg.data.batch_size, args.batches)
    if rate:
        results.append({"source": f"decode_jpeg on {device.type}", "workers": 0, "image_size": cfg.data.image_size, "images_per_s": round(rate, 1)})
        print(f"decode_jpeg on {device.type} (batches of {cfg.data.batch_size}), {cfg.data.image_size} px: {rate:8.1f} images/s", flush=True)
    cpu = device_name(torch.device("cpu"))
    return {"device": cpu if device.type == "cpu" else f"{cpu}; {device_name(device)}", "results": results}


def decode_jpeg_rate(files: list[Path], size: int, device: torch.device, batch: int, batches: int) -> float | None:
    """Images/s of torchvision's batched JPEG decoding on ``device`` (nvJPEG on a GPU) plus resize and
    centre crop there: the alternative to the prepared file. None when the folder has no JPEGs."""
    from torchvision.io import ImageReadMode, decode_jpeg, read_file
    from torchvision.transforms.v2 import functional as TF2

    jpegs = [f for f in files if f.suffix.lower() in (".jpg", ".jpeg")]
    if not jpegs:
        return None

    def one_batch(i: int) -> torch.Tensor:
        chunk = [jpegs[(i * batch + j) % len(jpegs)] for j in range(batch)]
        images = decode_jpeg([read_file(str(f)) for f in chunk], mode=ImageReadMode.RGB, device=device)
        return torch.stack([TF2.center_crop(TF2.resize(im, size, antialias=True), size) for im in images])

    counter = itertools.count()
    times = time_fn(lambda: one_batch(next(counter)), device, warmup=2, repeats=batches)  # warm-up: nvJPEG's initialisation
    return batch * batches / (sum(times) / 1000)
