"""Speed of fststyle: training throughput end to end, and inference per execution path.

    python scripts/benchmark.py train [--steps 50] [--warmup 10] [--synthetic] [--compare] [--profile N] [KEY=VALUE ...]
    python scripts/benchmark.py data [--batches 60] [KEY=VALUE ...]
    python scripts/benchmark.py infer [--model PATH] [--sizes 512x512 1920x1080 3840x2160] [--paths ...]

train: builds exactly what `python -m fststyle.train KEY=VALUE ...` builds (the GPU fast path or the
CPU preset included) and times `--steps` training steps after `--warmup` ones: images/s, ms per step,
peak memory, and the final content and style losses: those of the trained network on the held-out
photos, run uncompiled in fp32 on the fixed evaluation network of `fststyle.eval`, so that runs with
different precisions compare fairly. `--synthetic` feeds random tensors instead of decoding photos;
`--compare` repeats the run with the fast path off (fp32, no channels_last, no compile) on the same
data and reports the loss differences.

data: the training data pipeline alone (images/s), reading the photos and, when `fststyle.prepare`
has written its file for the folder, from that file; then torchvision's batched `decode_jpeg` (nvJPEG
on a GPU) with resize and crop on the device, the alternative to the prepared file.

infer: eager fp32 (the reference implementations' way), channels_last fp32, bf16 / fp16 autocast
(+ channels_last), `fststyle.infer compile=true` (torch.compile with dynamic shapes, in infer's
default precision: bf16 on GPUs, fp32 on the CPU), and onnxruntime on the CPU. Weights do not change
the speed: without --model a default TransformerNet is timed.
Prints a table and writes JSON with the device, torch version and date.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import itertools
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict
from pytorch_lightning.callbacks import Callback
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fststyle.export import export_onnx, load_network  # noqa: E402
from fststyle.net import TransformerNet  # noqa: E402
from fststyle.stylizer import Stylizer, pick_device  # noqa: E402

ALL_PATHS = ["eager", "channels_last", "bf16", "fp16", "compile", "onnx"]


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} threads"


def time_fn(fn, device: torch.device, warmup: int, repeats: int) -> list[float]:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1000)
    return times


def make_runner(path: str, net: TransformerNet, x: torch.Tensor, device: torch.device, onnx_file: Path | None):
    """A no-argument function that stylizes ``x`` one way; None where the path does not apply."""
    if path == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
        feed = {"input": x.cpu().numpy()}
        return lambda: session.run(None, feed)
    half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(path)
    if path == "fp16" and device.type == "cpu":
        return None  # fp16 convolutions on CPUs are slow emulation, never a recommendation
    if path == "compile":  # what `fststyle.infer compile=true` runs: dynamic shapes, the default precision
        stylizer = Stylizer(net, device=device, compile=True)
        inp = x.to(device)
        return lambda: stylizer.run(inp)
    channels_last = path != "eager"
    model = net.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    inp = x.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    ctx = (lambda: torch.autocast(device.type, dtype=half)) if half else contextlib.nullcontext

    def run():
        with torch.inference_mode(), ctx():
            return model(inp)

    return run


def bench_infer(args: argparse.Namespace) -> dict:
    device = pick_device(args.device)
    net = load_network(args.model)[0] if args.model else TransformerNet().eval()
    onnx_file = None
    if "onnx" in args.paths:
        onnx_file = Path(tempfile.mkdtemp()) / "model.onnx"
        export_onnx(net, onnx_file, {})
    results = []
    print(f"{'path':<14} {'size':>10} {'median ms':>10} {'min ms':>9} {'MPix/s':>8}")
    for size in args.sizes:
        w, h = map(int, size.lower().split("x"))
        x = torch.rand(args.batch, 3, h, w)
        for path in args.paths:
            runner = make_runner(path, net, x, device, onnx_file)
            if runner is None:
                continue
            times = time_fn(runner, device, args.warmup, args.repeats)
            med = statistics.median(times)
            row = {"path": path, "size": size, "batch": args.batch, "median_ms": round(med, 2), "min_ms": round(min(times), 2),
                   "mpix_per_s": round(args.batch * w * h / med / 1000, 2)}
            results.append(row)
            print(f"{path:<14} {size:>10} {med:>10.1f} {min(times):>9.1f} {row['mpix_per_s']:>8.2f}", flush=True)
    return {"device": device_name(device), "model": args.model or "default TransformerNet (untrained)", "warmup": args.warmup,
            "repeats": args.repeats, "results": results}


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
    from fststyle.metrics import EVAL_STYLE_SIZE, evaluation_loss
    from fststyle.train import load_style_image

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


def training_config(overrides: list[str]) -> tuple[DictConfig, list[str]]:
    """The config `python -m fststyle.train` would run with these overrides (presets applied)."""
    from fststyle.train import apply_preset, override_keys

    conf = Path(__file__).resolve().parents[1] / "conf"
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(conf), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]  # registered above; the run config itself is saved without it, as in training
    return cfg, apply_preset(cfg, override_keys(overrides))


def bench_data(args: argparse.Namespace) -> dict:
    """Images/s of the training data pipeline alone, reading the photos and (if prepared) the file."""
    from hydra.utils import instantiate

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


def train_once(overrides: list[str], steps: int, warmup: int, synthetic: bool, profile: int = 0) -> dict:
    from fststyle.train import build, validate

    cfg, applied = training_config(overrides)
    cfg.logger = None
    validate(cfg)
    pl.seed_everything(cfg.seed)
    module, datamodule, style_path = build(cfg)
    held_out = datamodule.sample_batch()
    if synthetic:
        datamodule = SyntheticPhotos(cfg.data.image_size, cfg.data.batch_size)
    timer = StepTimer(warmup)
    profiler = StepProfiler(max(warmup - profile, 1), profile) if profile else None
    trainer: pl.Trainer = instantiate(cfg.trainer, max_steps=warmup + steps, logger=False, enable_checkpointing=False,
                                      enable_progress_bar=False, enable_model_summary=False,
                                      callbacks=[timer] + ([profiler] if profiler else []))
    if trainer.device_ids and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(module, datamodule=datamodule)
    seconds = timer.end - timer.start
    global_batch = cfg.data.batch_size * trainer.world_size
    on_gpu = module.device.type == "cuda"
    peak = torch.cuda.max_memory_allocated() / 2**20 if on_gpu else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    final = final_losses(cfg, module.net.cpu(), held_out, style_path)
    return {"overrides": overrides, "preset": applied, "precision": str(cfg.trainer.precision), "channels_last": cfg.channels_last,
            "compile": cfg.compile, "image_size": cfg.data.image_size, "global_batch": global_batch, "steps": steps,
            "images_per_s": round(steps * global_batch / seconds, 2), "ms_per_step": round(seconds / steps * 1000, 2),
            "peak_memory_mb": round(peak), "peak_memory_kind": "CUDA allocated" if on_gpu else "process RSS",
            "final_content": final["content"], "final_style": final["style"], "held_out_photos": len(held_out),
            "device": device_name(module.device), **({"profile": profiler.table} if profiler else {})}


def bench_train(args: argparse.Namespace) -> dict:
    if args.profile >= args.warmup:
        raise SystemExit(f"--profile {args.profile} needs --warmup above it: the profiled steps come before the timed ones")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="training throughput, end to end")
    train.add_argument("--steps", type=int, default=50)
    train.add_argument("--warmup", type=int, default=10, help="untimed steps first (compilation, cuDNN autotuning)")
    train.add_argument("--synthetic", action="store_true", help="random tensors instead of decoded photos")
    train.add_argument("--compare", action="store_true", help="also run with the fast path off and compare the losses")
    train.add_argument("--profile", type=int, default=0, metavar="N", help="profile N steps just before the timed ones and print the top operators")
    train.add_argument("--json", default="benchmark_train.json")
    train.add_argument("overrides", nargs="*", help="Hydra overrides, as for python -m fststyle.train")
    data = sub.add_parser("data", help="the training data pipeline alone: photos vs the prepared file")
    data.add_argument("--batches", type=int, default=60)
    data.add_argument("--warmup", type=int, default=5)
    data.add_argument("--device", default="auto", help="where decode_jpeg runs (auto: the GPU if there is one)")
    data.add_argument("--json", default="benchmark_data.json")
    data.add_argument("overrides", nargs="*", help="Hydra overrides, as for python -m fststyle.train")
    infer = sub.add_parser("infer", help="inference per execution path and image size")
    infer.add_argument("--model", help="an exported .pth or a .ckpt (default: an untrained default network)")
    infer.add_argument("--device", default="auto")
    infer.add_argument("--sizes", nargs="+", default=["512x512", "1920x1080", "3840x2160"], help="WIDTHxHEIGHT")
    infer.add_argument("--paths", nargs="+", default=ALL_PATHS, choices=ALL_PATHS)
    infer.add_argument("--batch", type=int, default=1)
    infer.add_argument("--warmup", type=int, default=2)
    infer.add_argument("--repeats", type=int, default=5)
    infer.add_argument("--json", default="benchmark_infer.json")
    args = parser.parse_args()

    report = {"train": bench_train, "data": bench_data, "infer": bench_infer}[args.command](args)
    report.update(torch=torch.__version__, date=datetime.date.today().isoformat(), command=" ".join(sys.argv[1:]))
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json} ({report['device']}, torch {report['torch']}, {report['date']})")


if __name__ == "__main__":
    main()
