"""The LightningModule that trains a TransformerNet, and the callbacks that show its progress."""

from __future__ import annotations

import ast
import math
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, TQDMProgressBar
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger
from pytorch_lightning.utilities.exceptions import SIGTERMException
from pytorch_lightning.utilities.rank_zero import rank_zero_info
from torchvision.utils import make_grid

from fststyle.images import save_image, to_pil
from fststyle.losses import PerceptualLoss
from fststyle.net import TransformerNet


LR_SCALINGS = ("none", "linear", "sqrt")
REFERENCE_BATCH = 4  # Johnson et al.'s global batch, for which optim.lr is given
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile's


def logs_after(trainer: pl.Trainer, steps_done: int) -> bool:
    """Whether the step that brings training to ``steps_done`` steps is a logging step: every
    ``log_every_n_steps`` steps, and the last one."""
    return steps_done % trainer.log_every_n_steps == 0 or steps_done == trainer.max_steps


class StyleTransferModule(pl.LightningModule):
    """Adam on the transformer network against a PerceptualLoss. ``config`` (the resolved run
    config) is saved as hyperparameters, so checkpoints and loggers carry it."""

    # The loss network is frozen and rebuilt from its config: checkpoints leave it out.
    FROZEN_PREFIX = "criterion.network."

    def __init__(self, net: TransformerNet, criterion: PerceptualLoss, lr: float = 1e-3, lr_scaling: str = "none",
                 batch_size: int = 4, channels_last: bool = False, compile: bool | str = False, config: dict[str, Any] | None = None):
        super().__init__()
        if lr <= 0:
            raise ValueError(f"optim.lr must be > 0, got {lr}")
        if lr_scaling not in LR_SCALINGS:
            raise ValueError(f"optim.lr_scaling={lr_scaling} is not one of {', '.join(LR_SCALINGS)}")
        self.save_hyperparameters({"lr": lr, "lr_scaling": lr_scaling, "batch_size": batch_size, "channels_last": channels_last,
                                   "compile": compile, "config": config or {}})
        self.net = net
        self.criterion = criterion
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
            self.criterion.network.to(memory_format=torch.channels_last)
        if compile:
            mode = "default" if compile is True else str(compile)
            if mode not in COMPILE_MODES:
                raise ValueError(f"compile={compile} is not one of true, false, {', '.join(COMPILE_MODES)}")
            # In place (nn.Module.compile): parameter names, checkpoints and the export stay the same.
            self.net.compile(mode=mode)
            self.criterion.network.compile(mode=mode)

    def on_after_batch_transfer(self, batch: torch.Tensor, dataloader_idx: int) -> torch.Tensor:
        if batch.dtype == torch.uint8:  # prepared photos travel as bytes (fststyle.data.PreparedDataset)
            batch = batch.float().div_(255)
        return batch.contiguous(memory_format=self.memory_format)

    def forward(self, photos: torch.Tensor) -> torch.Tensor:
        return self.net(photos)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        if self.hparams.compile:
            # CUDA graphs (compile=reduce-overhead or max-autotune) reuse their output memory from one
            # step to the next; mark the step explicitly so that all three compiled calls of a step (the
            # transformer, the content target, the loss network) keep theirs until its backward is done.
            torch.compiler.cudagraph_mark_step_begin()
        losses = self.criterion(self.net(batch), batch)
        total = losses.pop("loss")
        if self.is_logging_step():
            # Under DDP the logged values are averaged over the processes: the loss of the global batch.
            # Not prog_bar=True: Lightning would read those values on the host after every step.
            self.log_dict({"train/loss": total, **{f"train/{k}": v for k, v in losses.items()}}, batch_size=batch.shape[0],
                          sync_dist=self.trainer.world_size > 1)
        return total

    def is_logging_step(self) -> bool:
        """Whether Lightning writes this step's metrics to the loggers. Other steps log nothing: no
        cross-process reduction, no host reads."""
        return logs_after(self.trainer, self.global_step + 1)

    def scaled_lr(self) -> float:
        """optim.lr scaled by the global batch relative to REFERENCE_BATCH (optim.lr_scaling)."""
        ratio = self.hparams.batch_size * self.trainer.world_size / REFERENCE_BATCH
        factor = {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[self.hparams.lr_scaling]
        return self.hparams.lr * factor

    def configure_optimizers(self) -> torch.optim.Optimizer:
        lr = self.scaled_lr()
        if lr != self.hparams.lr:
            rank_zero_info(f"learning rate {lr:.3g} ({self.hparams.lr_scaling} scaling of {self.hparams.lr:.3g} for a global batch of "
                           f"{self.hparams.batch_size * self.trainer.world_size})")
        # The fused CUDA kernel updates all parameters in one launch.
        return torch.optim.Adam(self.net.parameters(), lr=lr, fused=self.device.type == "cuda")

    def weights_are_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.net.parameters())

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if not self.weights_are_finite():  # a NaN between two loss checks: keep the last good checkpoint
            raise FloatingPointError(f"the weights became NaN/inf before step {self.global_step}; no checkpoint written. Try a lower optim.lr or loss weights")
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith(self.FROZEN_PREFIX)}
        # Training draws no global random numbers (crops are seeded per photo), but anything that
        # does resumes from the same state.
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        checkpoint["rng_states"] = {"torch": torch.get_rng_state(), "python": repr(random.getstate()),
                                    "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)]}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        frozen = {k: v for k, v in self.state_dict().items() if k.startswith(self.FROZEN_PREFIX)}
        checkpoint["state_dict"].update(frozen)
        if "rng_states" in checkpoint:
            states = checkpoint["rng_states"]
            torch.set_rng_state(states["torch"])
            kind, keys, pos, has_gauss, gauss = states["numpy"]
            np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
            random.setstate(ast.literal_eval(states["python"]))


class SaveOnInterrupt(Callback):
    """SIGTERM (schedulers, SLURM preemption) or Ctrl-C: finish the current step, write
    ``last.ckpt`` and stop; ``ckpt_path=last`` continues exactly from there.

    Lightning turns SIGTERM into an exception at the next step boundary (on every rank under DDP);
    Ctrl-C is routed the same way instead of interrupting a step halfway."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.saved: Path | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, lambda signum, frame: trainer._signal_connector._sigterm_notifier_fn(signum, frame))

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException) and trainer.global_step > 0:
            trainer.save_checkpoint(self.path)
            self.saved = self.path


class StopOnNonFinite(Callback):
    """Stops training with a clear message when the loss is NaN or inf. Checked every ``every`` steps
    (reading the loss waits for the device); checkpoints refuse non-finite weights in between."""

    def __init__(self, every: int = 50):
        self.every = every

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step % self.every:
            return
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if not bool(torch.isfinite(loss)):
            last = trainer.checkpoint_callback.last_model_path if trainer.checkpoint_callback else ""
            kept = f"the last good checkpoint is {last}" if last else "no checkpoint was written yet"
            raise FloatingPointError(f"the loss is {loss.item()} at step {trainer.global_step}: training stopped, {kept}. Try a lower optim.lr or loss weights")


class Throughput(Callback):
    """Logs ``train/images_per_sec`` (all ranks together) every ``log_every_n_steps`` steps; only
    wall-clock time is read, so it adds no device synchronisation."""

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
        if not bar.disable and self._should_update(step, bar.total or 0):
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
    (bottom row), written as ``<out_dir>/step_NNNNNN.jpg`` and sent to the loggers (rank zero only)."""

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
        with torch.no_grad():
            # forward, not __call__: under compile the call is the compiled one, which would compile
            # again for the sample size and, with CUDA graphs, record another graph.
            stylized = net.forward(self.photos.to(pl_module.device)).float().cpu()
        net.train(was_training)
        grid = make_grid(torch.cat([self.photos, stylized]), nrow=len(self.photos), padding=4, pad_value=1.0)
        self.written.append(save_image(grid, self.out_dir / f"step_{step:06d}.jpg"))
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="samples", images=[to_pil(grid)], step=step, caption=[f"step {step}: photos / stylized"])
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("samples", grid, step)
