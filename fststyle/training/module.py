"""The LightningModule that trains a TransformerNet (its callbacks are in fststyle.training.callbacks)."""

from __future__ import annotations

import ast
import math
import random
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.utilities.rank_zero import rank_zero_info

from fststyle.training.callbacks import logs_after
from fststyle.losses import PerceptualLoss
from fststyle.net import TransformerNet
from fststyle.training.temporal import temporal_loss


LR_SCALINGS = ("none", "linear", "sqrt")
SCHEDULES = ("constant", "cosine")
REFERENCE_BATCH = 4  # Johnson et al.'s global batch, for which optim.lr is given
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile's


class StyleTransferModule(pl.LightningModule):
    """Adam on the transformer network against a PerceptualLoss. ``config`` (the resolved run
    config) is saved as hyperparameters, so checkpoints and loggers carry it."""

    # The loss network is frozen and rebuilt from its config: checkpoints leave it out.
    FROZEN_PREFIX = "criterion.network."

    def __init__(self, net: TransformerNet, criterion: PerceptualLoss, lr: float = 1e-3, lr_scaling: str = "none",
                 batch_size: int = 4, channels_last: bool = False, compile: bool | str = False, config: dict[str, Any] | None = None,
                 schedule: str = "constant", warmup_steps: int = 0, final_lr: float = 0.0, held_styles: list[dict] | None = None,
                 train_styles: list[int] | None = None, temporal_weight: float = 0.0, temporal_motion: str = "affine", temporal_target: str = "steady",
                 seed: int = 0):
        super().__init__()
        if lr <= 0:
            raise ValueError(f"optim.lr must be > 0, got {lr}")
        if lr_scaling not in LR_SCALINGS:
            raise ValueError(f"optim.lr_scaling={lr_scaling} is not one of {', '.join(LR_SCALINGS)}")
        if schedule not in SCHEDULES:
            raise ValueError(f"optim.schedule={schedule} is not one of {', '.join(SCHEDULES)}")
        if warmup_steps < 0 or not 0 <= final_lr <= 1:
            raise ValueError(f"optim.warmup_steps must be >= 0 and optim.final_lr in [0, 1], got {warmup_steps}, {final_lr}")
        self.save_hyperparameters({"lr": lr, "lr_scaling": lr_scaling, "batch_size": batch_size, "channels_last": channels_last,
                                   "compile": compile, "config": config or {}, "schedule": schedule, "warmup_steps": warmup_steps,
                                   "final_lr": final_lr, "held_styles": held_styles or [], "temporal_weight": temporal_weight,
                                   "temporal_motion": temporal_motion, "temporal_target": temporal_target})
        # The network's styles that train, in the loss's order (all of them, or the ones train=norms adds).
        self.seed = seed
        # A buffer (not saved): it moves to the device with the module, no copy per step.
        self.register_buffer("train_styles", torch.tensor(train_styles if train_styles is not None else range(net.num_styles)),
                             persistent=False)
        # Steps whose non-finite gradients were dropped (on_before_optimizer_step); counted on the device.
        self.register_buffer("skipped_steps", torch.zeros((), dtype=torch.int64), persistent=False)
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

    def prepare_batch(self, batch: torch.Tensor) -> torch.Tensor:
        """The photos in the memory format the networks use (a no-op unless channels_last)."""
        return batch.contiguous(memory_format=self.memory_format)

    def forward(self, photos: torch.Tensor) -> torch.Tensor:
        return self.net(photos)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        if self.hparams.compile:
            # CUDA graphs (compile=reduce-overhead or max-autotune) reuse their output memory from one
            # step to the next; mark the step explicitly so that all three compiled calls of a step (the
            # transformer, the content target, the loss network) keep theirs until its backward is done.
            torch.compiler.cudagraph_mark_step_begin()
        batch = self.prepare_batch(batch)
        styles = weights = None
        if self.net.num_styles > 1:
            styles = self.batch_styles(batch.shape[0], batch.device)
            weights = F.one_hot(self.train_styles[styles], self.net.num_styles).float()
        stylized = self.net(batch) if weights is None else self.net(batch, weights)
        losses = self.criterion(stylized, batch) if styles is None else self.criterion(stylized, batch, styles)
        total = losses.pop("loss")
        if self.hparams.temporal_weight > 0:  # loss.temporal_weight: stable over time (fststyle.training.temporal)
            # Its random numbers depend only on the seed, the step and the process: exact on resume.
            generator = torch.Generator(batch.device).manual_seed((self.seed * 1_000_003 + self.global_step) * 4099 + self.global_rank)
            losses["temporal"] = temporal_loss(lambda x: self.net(x) if weights is None else self.net(x, weights), batch, stylized, generator,
                                               self.hparams.temporal_motion, self.hparams.temporal_target)
            total = total + self.hparams.temporal_weight * losses["temporal"]
        if self.is_logging_step():
            # Under DDP the logged values are averaged over the processes: the loss of the global batch.
            # Not prog_bar=True: Lightning would read those values on the host after every step.
            self.log_dict({"train/loss": total, **{f"train/{k}": v for k, v in losses.items()}}, batch_size=batch.shape[0],
                          sync_dist=self.trainer.world_size > 1)
            self.log("train/lr", self.lr_schedulers().get_last_lr()[0])  # a Python float: no host read
        return total

    def on_fit_start(self) -> None:
        """Under mixed precision on a GPU the Grams' inputs are the loss network's bf16/fp16 features,
        which TF32 holds exactly: TF32 matrix products then give float32's Grams (up to the order of the
        sums) on the tensor cores. In float32 they took a third of the GPU time of a step at batch 4
        on an H200 (profile of 2026-12-04, benchmarks/). A float32 run keeps float32 products; the
        process's setting comes back at the end (on_fit_end)."""
        self._tf32_before = torch.backends.cuda.matmul.allow_tf32
        if self.device.type == "cuda" and str(self.trainer.precision) in ("bf16-mixed", "16-mixed"):
            torch.backends.cuda.matmul.allow_tf32 = True

    def on_fit_end(self) -> None:
        torch.backends.cuda.matmul.allow_tf32 = self._tf32_before

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """A step whose gradients are not all finite is skipped: Adam leaves the weights, its moments and
        its step count as they were. A flat crop (a constant image) does this to a trained network, e.g.
        one started from the packaged model: every feature map is then constant, so each of the 15
        instance norms sees zero variance and multiplies the gradient by about scale / sqrt(eps)
        (300-1000x); measured on the packaged model, 7e-5 at the last norm becomes 3e32 at the first
        and the loss's weights take it past float32. A fresh network is spared only because its norm
        shifts start at zero and ReLU(0) passes no gradient.

        With the fused Adam of a GPU the skip happens on the device, with no host read: the kernel takes
        a ``found_inf`` flag (the mechanism PyTorch's GradScaler uses) and does nothing when it is set.
        Elsewhere (the CPU, where reading a flag waits for nothing) the gradients of such a step are
        dropped, and Adam leaves every parameter without a gradient untouched. The test is one fused norm
        of all the gradients (a gradient so large that the norm overflows float32 counts as non-finite
        too). ``train/skipped_steps`` counts such steps. The learning-rate schedule follows the run's
        step count, skipped steps included, so that it ends where max_steps says."""
        params = [p for p in self.net.parameters() if p.grad is not None]
        if not params:
            return
        non_finite = ~torch.isfinite(torch.nn.utils.get_total_norm([p.grad for p in params]))
        optimizer = getattr(optimizer, "optimizer", optimizer)  # Lightning's wrapper, or the optimizer itself
        if optimizer.defaults.get("fused"):
            optimizer.found_inf = non_finite.float()  # read by Adam(fused=True).step
        elif non_finite:
            for p in params:
                p.grad = None
        self.skipped_steps += non_finite
        if self.is_logging_step():
            self.log("train/skipped_steps", self.skipped_steps.float(), sync_dist=self.trainer.world_size > 1, reduce_fx="max")

    def batch_styles(self, size: int, device: torch.device) -> torch.Tensor:
        """Each item's style (several styles): round robin over the global batch, so every step trains
        every style (batch permitting) in equal shares, the same on every process count and on resume."""
        first = (self.global_step * self.trainer.world_size + self.global_rank) * size
        return (torch.arange(size, device=device) + first) % len(self.train_styles)

    def is_logging_step(self) -> bool:
        """Whether Lightning writes this step's metrics to the loggers. Other steps log nothing: no
        cross-process reduction, no host reads."""
        return logs_after(self.trainer, self.global_step + 1)

    def scaled_lr(self) -> float:
        """optim.lr scaled by the global batch relative to REFERENCE_BATCH (optim.lr_scaling)."""
        ratio = self.hparams.batch_size * self.trainer.world_size / REFERENCE_BATCH
        factor = {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[self.hparams.lr_scaling]
        return self.hparams.lr * factor

    def lr_factor(self, step: int) -> float:
        """The learning rate at ``step`` as a share of the peak: a linear warm-up over warmup_steps, then
        constant, or a cosine decay to final_lr (a share of the peak) at the last step."""
        warmup = self.hparams.warmup_steps
        if step < warmup:
            return (step + 1) / warmup
        if self.hparams.schedule == "constant":
            return 1.0
        total = self.trainer.max_steps
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        final = self.hparams.final_lr
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))

    def configure_optimizers(self) -> dict[str, Any]:
        lr = self.scaled_lr()
        if lr != self.hparams.lr:
            rank_zero_info(f"learning rate {lr:.3g} ({self.hparams.lr_scaling} scaling of {self.hparams.lr:.3g} for a global batch of "
                           f"{self.hparams.batch_size * self.trainer.world_size})")
        # On a GPU the fused kernel updates all parameters in one launch, and can skip a step on the device
        # (on_before_optimizer_step). Not on the CPU: there it made two processes and one (DDP against a
        # single process, the same global batch) end 6e-4 apart after 3 steps, where foreach Adam keeps
        # them within 1e-6 (tests/test_scale.py).
        optimizer = torch.optim.Adam(self.net.parameters(), lr=lr, fused=self.device.type == "cuda")
        # Stepped after every optimizer step; its state is in the checkpoint, so a resume continues it.
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self.lr_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

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
