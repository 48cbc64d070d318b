"""The training run's callbacks: sample grids, progress, throughput, the non-finite stop and the save
on interruption."""

from __future__ import annotations

import json
import os
import signal
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, TQDMProgressBar
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger
from pytorch_lightning.utilities.exceptions import SIGTERMException
from torchvision.utils import make_grid

from fststyle.files import json_safe
from fststyle.images import save_image, to_pil


def logs_after(trainer: pl.Trainer, steps_done: int) -> bool:
    """Whether the step that brings training to ``steps_done`` steps is a logging step: every
    ``log_every_n_steps`` steps, and the last one."""
    return steps_done % trainer.log_every_n_steps == 0 or steps_done == trainer.max_steps


class SaveOnInterrupt(Callback):
    """SIGTERM (schedulers, SLURM preemption) or Ctrl-C: finish the current step, write
    ``last.ckpt`` and stop; ``ckpt_path=last`` continues exactly from there.

    Lightning turns SIGTERM into an exception at the next step boundary, on every rank under DDP. Ctrl-C
    is sent on as SIGTERM, so it takes the same way instead of interrupting a step halfway.

    Not Lightning's OnExceptionCheckpoint: that one saves on any exception (a NaN's weights are no
    state to continue from), deletes its file when training ends, and its mere presence makes
    ``fit(ckpt_path=None)`` resume from the last checkpoint, so a new run in an old run folder would
    silently continue the old one."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.saved: Path | None = None
        self._previous_sigint: Any = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous_sigint = signal.signal(signal.SIGINT, lambda signum, frame: os.kill(os.getpid(), signal.SIGTERM))

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException) and trainer.global_step > 0:
            trainer.save_checkpoint(self.path, weights_only=False)  # the whole state to resume: optimizer, schedule, RNG
            self.saved = self.path

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None


class StopOnNonFinite(Callback):
    """Stops training with a clear message when the loss is NaN or inf. Checked every ``every`` steps
    (reading the loss waits for the device); checkpoints refuse non-finite weights in between.

    Under DDP the ranks decide together (one all-reduce on the checked steps): a rank that stopped
    alone would leave the others waiting forever in the next gradient all-reduce."""

    def __init__(self, every: int = 50):
        self.every = every

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step % self.every:
            return
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        finite = bool(torch.isfinite(loss))
        if trainer.strategy.reduce_boolean_decision(finite, all=True):
            return
        last = trainer.checkpoint_callback.last_model_path if trainer.checkpoint_callback else ""
        kept = f"the last good checkpoint is {last}" if last else "no checkpoint was written yet"
        where = f"the loss is {loss.item()}" if not finite else f"the loss of another process (of {trainer.world_size}) is NaN/inf"
        raise FloatingPointError(f"{where} at step {trainer.global_step}: training stopped, {kept}. Try a lower optim.lr or loss weights")


class Throughput(Callback):
    """Logs ``train/images_per_sec`` (all ranks together) every ``log_every_n_steps`` steps.

    Lightning's ThroughputMonitor would do it too, but it synchronises the GPU after every step
    (``torch.cuda.synchronize``) to time it; this reads only wall-clock time between logging steps,
    which over many steps measures the same without stalling the device."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start, self._images = time.perf_counter(), 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: torch.Tensor, batch_idx: int) -> None:
        self._images += batch.shape[0] * trainer.world_size
        if trainer.global_step % trainer.log_every_n_steps == 0:
            now = time.perf_counter()
            pl_module.log("train/images_per_sec", self._images / max(now - self._start, 1e-9), rank_zero_only=True)
            self._start, self._images = now, 0


class StepProgressBar(TQDMProgressBar):
    """One bar over the whole run (step / max_steps, with time left) instead of one per epoch: with a
    small photo folder an epoch is only a few steps. The losses beside it change every
    ``log_every_n_steps`` steps."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        bar = self.train_progress_bar
        bar.reset(total=trainer.max_steps if trainer.max_steps > 0 else None)
        bar.initial = trainer.global_step  # a resumed run counts its remaining steps only
        bar.n = trainer.global_step
        bar.set_description("Training")

    def on_train_epoch_start(self, trainer: pl.Trainer, *_: Any) -> None:
        pass  # keep the one bar

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        bar, step = self.train_progress_bar, trainer.global_step
        if bar.disable or not self.is_enabled or (step % self.refresh_rate and step != trainer.max_steps):
            return
        bar.n = step
        # The metrics are device tensors: reading them waits for the GPU, so only on logging steps.
        if logs_after(trainer, step):
            bar.set_postfix(self.losses(trainer), refresh=False)
        bar.refresh()

    @staticmethod
    def losses(trainer: pl.Trainer) -> dict[str, str]:
        metrics = trainer.callback_metrics
        shown = {"loss": "train/loss", "img/s": "train/images_per_sec"}
        return {label: f"{float(metrics[key]):.4g}" for label, key in shown.items() if key in metrics}

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pass


class SampleGrid(Callback):
    """Every ``every`` steps and at the end: the held-out photos (top row) and their stylized versions
    (a row per style), written as ``<out_dir>/step_NNNNNN.jpg`` and sent to the loggers (rank zero only)."""

    def __init__(self, photos: torch.Tensor, out_dir: str | Path, every: int = 500):
        self.photos, self.out_dir, self.every = photos, Path(out_dir), every
        self.written: list[Path] = []
        self._last_step = -1

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.every > 0 and trainer.global_step % self.every == 0:
            self.write(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.write(trainer, pl_module)

    def write(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        step = trainer.global_step
        if not trainer.is_global_zero or step == self._last_step:
            return
        self._last_step = step
        net = pl_module.net
        was_training = net.training
        net.eval()
        photos = self.photos.to(pl_module.device)
        # One row per style (a one-hot style row each for a network of several styles).
        styles = [None] if net.num_styles == 1 else list(torch.eye(net.num_styles, device=photos.device)[:, None].expand(-1, len(photos), -1))
        with torch.no_grad():
            # forward, not __call__: under compile the call is the compiled one, which would compile
            # again for the sample size and, with CUDA graphs, record another graph.
            stylized = [net.forward(photos, style).float().cpu() for style in styles]
        net.train(was_training)
        grid = make_grid(torch.cat([self.photos, *stylized]), nrow=len(self.photos), padding=4, pad_value=1.0)
        self.written.append(save_image(grid, self.out_dir / f"step_{step:06d}.jpg"))
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="samples", images=[to_pil(grid)], step=step, caption=[f"step {step}: photos / stylized"])
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("samples", grid, step)


def log_spaced(step: int, first: int = 250) -> bool:
    """Whether ``step`` is one of first, 2 x first, 4 x first, ... (``quality_every=log``)."""
    return step >= first and step % first == 0 and ((step // first) & (step // first - 1)) == 0


class TrainingRecord(Callback):
    """How much a run has trained, across every resume: steps (Lightning's global step), images (all
    processes together) and hours of wall time. Its state travels in the checkpoint (Lightning saves a
    callback's ``state_dict``), so a run stopped and resumed on another machine keeps counting; it is
    logged as ``train/images_seen`` and ``train/hours`` and written into the exported model's metadata.
    Counting adds no host read: a batch's size is known without waiting for the device."""

    def __init__(self) -> None:
        self.images, self.seconds = 0, 0.0
        self._since: float | None = None

    def hours(self) -> float:
        running = time.monotonic() - self._since if self._since is not None else 0.0
        return (self.seconds + running) / 3600

    def state_dict(self) -> dict[str, Any]:
        return {"images": self.images, "seconds": self.hours() * 3600}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.images, self.seconds = int(state_dict["images"]), float(state_dict["seconds"])

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._since = time.monotonic()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.seconds, self._since = self.hours() * 3600, None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: torch.Tensor, batch_idx: int) -> None:
        self.images += batch.shape[0] * trainer.world_size
        if logs_after(trainer, trainer.global_step):  # beside the step's losses, in the same row of the log
            pl_module.log_dict({"train/images_seen": float(self.images), "train/hours": self.hours()}, rank_zero_only=True)

    def record(self, trainer: pl.Trainer) -> dict[str, Any]:
        """What the exported model's metadata keeps: steps, images and hours so far."""
        return {"steps": trainer.global_step, "images": self.images, "hours": round(self.hours(), 4)}


class QualityCurve(Callback):
    """Every ``every`` steps (or at 250, 500, 1000, ... steps: ``every="log"``) and at the end (rank
    zero): the network's training objective on the held-out photos against the optimization of that
    objective (fststyle.evaluation.quality), started from each photo and from white noise. Logged as
    ``val/quality`` (mean total objective / the photo-start reference's), ``val/quality_content``,
    ``val/quality_style``, ``val/style_ratio/<layer>``, ``val/equivalent_iterations`` and
    ``val/equivalent_iterations_noise`` (the median iteration counts matched), and appended to
    ``log`` (JSON lines, with the run's images and hours: what scripts/learning_curve.py plots). The
    references are computed once, at the first evaluation, and cached under ``cache`` for later runs
    of the same photos, painting and loss."""

    def __init__(self, photos: torch.Tensor, names: list[str], keys: dict[str, list[str]], every: int | str, steps: int,
                 cache: str | Path, log: str | Path | None = None, record: TrainingRecord | None = None):
        self.photos, self.names, self.keys, self.every, self.steps, self.cache = photos, names, keys, every, steps, Path(cache)
        self.out, self.record = (Path(log) if log else None), record
        self.references: list[dict[str, Any]] | None = None
        self._last_step = -1

    def due(self, step: int) -> bool:
        return log_spaced(step) if self.every == "log" else step % int(self.every) == 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.due(trainer.global_step):
            self.measure(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.measure(trainer, pl_module)

    def measure(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from fststyle.evaluation.quality import judge, reference

        if not trainer.is_global_zero or trainer.global_step == self._last_step:
            return
        self._last_step = trainer.global_step
        criterion, photos = pl_module.criterion, self.photos.to(pl_module.device)
        with torch.autocast(pl_module.device.type, enabled=False):
            if self.references is None:
                self.references = [{start: reference(photo[None], criterion, self.steps, self.cache, keys[i], start=start)
                                    for start, keys in self.keys.items()} for i, photo in enumerate(photos)]
            net = pl_module.net
            was_training = net.training
            net.eval()
            with torch.no_grad():
                stylized = net.forward(photos).float()  # forward: see SampleGrid
            net.train(was_training)
            judged = [judge(criterion, out[None], photo[None], refs) for out, photo, refs in zip(stylized, photos, self.references)]
        ratios = {k: statistics.fmean(j["ratio"][k] for j in judged) for k in judged[0]["ratio"]}
        metrics = {"val/quality": ratios["total"], "val/quality_content": ratios["content"], "val/quality_style": ratios["style"],
                   **{f"val/style_ratio/{k[len('style/'):]}": v for k, v in ratios.items() if k.startswith("style/")}}
        for name in [k for k in judged[0] if k.startswith("equivalent_iterations")]:
            metrics[f"val/{name}"] = statistics.median(j[name] for j in judged)
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
        if self.out is not None:
            self.append(trainer, metrics, judged)

    def append(self, trainer: pl.Trainer, metrics: dict[str, float], judged: list[dict]) -> None:
        """One JSON line per measurement; a step measured again after a resume replaces nothing, the
        plot takes the last line of each step. Infinity (better than the reference's last picture) is
        written as null: strict JSON has no infinity."""
        line = {"step": trainer.global_step, **(self.record.record(trainer) if self.record else {}),
                **{k.removeprefix("val/"): v for k, v in metrics.items()}, "per_photo": [{"photo": n, **j} for n, j in zip(self.names, judged)]}
        self.out.parent.mkdir(parents=True, exist_ok=True)
        with self.out.open("a") as out:
            out.write(json.dumps(json_safe(line), allow_nan=False) + "\n")
