"""Training throughput end to end, and the final losses (`scripts/benchmark.py train`)."""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.callbacks import Callback
from torch.utils.data import DataLoader

from bench.common import device_name, training_config


class StepTimer(Callback):
    """Wall time of the steps after the warm-up: two device synchronisations in all."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.end = warmup, 0.0, 0.0

    def _sync(self, module: pl.LightningModule) -> None:
        if module.device.type == "cuda":
            torch.cuda.synchronize()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup:
            self._sync(module)
            self.start = time.perf_counter()

    def on_train_end(self, trainer, module) -> None:
        self._sync(module)
        self.end = time.perf_counter()


class StepProfiler(Callback):
    """torch.profiler over ``steps`` steps that end where the timing starts; prints the operators that
    took the most time (on the GPU when there is one) and keeps the table."""

    def __init__(self, first: int, steps: int):
        self.first, self.last, self.table, self.profiler = first, first + steps, "", None

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if trainer.global_step == self.first:
            from torch.profiler import ProfilerActivity, profile

            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if module.device.type == "cuda" else [])
            self.profiler = profile(activities=activities)
            self.profiler.start()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.profiler is not None and trainer.global_step == self.last:
            if module.device.type == "cuda":
                torch.cuda.synchronize()
            self.profiler.stop()
            key = "self_cuda_time_total" if module.device.type == "cuda" else "self_cpu_time_total"
            self.table = self.profiler.key_averages().table(sort_by=key, row_limit=25)
            self.profiler = None
            print(f"profile of steps {self.first}-{self.last - 1}:\n{self.table}", flush=True)


def final_losses(cfg: DictConfig, trained: torch.nn.Module, photos: torch.Tensor, style_path: Path) -> dict[str, float]:
    """Content and style loss of the trained network on held-out photos, measured the same way for
    every run: an uncompiled fp32 copy, the fixed evaluation network of `fststyle.eval`."""
    from fststyle.evaluation.metrics import EVAL_STYLE_SIZE, evaluation_loss
    from fststyle.training.criterion import load_style_image

    net = instantiate(cfg.model)
    net.load_state_dict(trained.state_dict())
    criterion = evaluation_loss(load_style_image(style_path, EVAL_STYLE_SIZE))
    with torch.no_grad():
        losses = criterion(net.eval()(photos), photos)
    return {"content": losses["content"].item(), "style": losses["style"].item()}


class SyntheticPhotos(pl.LightningDataModule):
    """Random images in place of decoded photos: the training step alone, without the data pipeline."""

    def __init__(self, size: int, batch_size: int):
        super().__init__()
        self.images, self.batch_size = torch.rand(64, 3, size, size), batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(list(self.images), batch_size=self.batch_size, shuffle=False, drop_last=True)


def train_once(overrides: list[str], steps: int, warmup: int, synthetic: bool, profile: int = 0) -> dict:
    from fststyle.train import build, validate

    cfg, applied = training_config(overrides)
    cfg.logger = None
    validate(cfg)
    pl.seed_everything(cfg.seed)
    module, datamodule, style_paths = build(cfg)
    held_out = datamodule.sample_batch()
    if synthetic:
        datamodule = SyntheticPhotos(cfg.data.image_size, cfg.data.batch_size)
    timer = StepTimer(warmup)
    # The profiled steps end one step before the timed ones start: building the profile's table takes
    # seconds, which must not fall inside the timing.
    profiler = StepProfiler(max(warmup - profile - 1, 1), profile) if profile else None
    trainer: pl.Trainer = instantiate(cfg.trainer, max_steps=warmup + steps, logger=False, enable_checkpointing=False,
                                      enable_progress_bar=False, enable_model_summary=False,
                                      callbacks=[timer] + ([profiler] if profiler else []))
    if trainer.device_ids and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(module, datamodule=datamodule)
    seconds = timer.end - timer.start
    global_batch = cfg.data.batch_size * trainer.world_size
    device = trainer.strategy.root_device  # not module.device: Lightning moves the module back to the CPU at the end
    on_gpu = device.type == "cuda"
    peak = torch.cuda.max_memory_allocated() / 2**20 if on_gpu else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    final = final_losses(cfg, module.net.cpu(), held_out, style_paths[0])
    return {"overrides": overrides, "preset": applied, "precision": str(cfg.trainer.precision), "channels_last": cfg.channels_last,
            "compile": cfg.compile, "image_size": cfg.data.image_size, "global_batch": global_batch, "steps": steps,
            "images_per_s": round(steps * global_batch / seconds, 2), "ms_per_step": round(seconds / steps * 1000, 2),
            "peak_memory_mb": round(peak), "peak_memory_kind": "CUDA allocated" if on_gpu else "process RSS",
            "final_content": final["content"], "final_style": final["style"], "held_out_photos": len(held_out),
            "device": device_name(device), **({"profile": profiler.table} if profiler else {})}


def run(args: argparse.Namespace) -> dict:
    if args.profile and args.profile >= args.warmup - 1:
        raise SystemExit(f"--profile {args.profile} needs --warmup of at least {args.profile + 2}: the profiled steps end before the timed ones")
    runs = [train_once(args.overrides, args.steps, args.warmup, args.synthetic, args.profile)]
    if args.compare:
        eager = ["trainer.precision=32-true", "channels_last=false", "compile=false"]
        runs.append(train_once([*args.overrides, *eager], args.steps, args.warmup, args.synthetic))
    print(f"{'run':<10} {'images/s':>9} {'ms/step':>9} {'peak MB':>9} {'content':>12} {'style':>12}  precision, channels_last, compile")
    for name, r in zip(("as given", "fp32 eager"), runs):
        print(f"{name:<10} {r['images_per_s']:>9.1f} {r['ms_per_step']:>9.1f} {r['peak_memory_mb']:>9} {r['final_content']:>12.5g} "
              f"{r['final_style']:>12.5g}  {r['precision']}, {r['channels_last']}, {r['compile']}")
    report = {"device": runs[0]["device"], "data": "synthetic" if args.synthetic else "photos", "runs": runs}
    if args.compare:
        report["loss_difference_percent"] = {k: round(100 * (runs[0][f"final_{k}"] / runs[1][f"final_{k}"] - 1), 3) for k in ("content", "style")}
        print(f"fast path vs fp32 eager, final losses: {report['loss_difference_percent']} (%)")
    return report
