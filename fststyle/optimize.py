"""``python -m fststyle.optimize content=IMAGE style=NAME output=IMAGE``: Gatys et al. style transfer by
image optimization, the quality reference for feed-forward models (same losses and weights)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import hydra
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from fststyle import CONF_DIR
from fststyle.cli import check_choices, run_cli
from fststyle.images import load_tensor, save_image
from fststyle.losses import PerceptualLoss
from fststyle.stylizer import pick_device


class Optimized(NamedTuple):
    image: torch.Tensor  # (1, 3, H, W) in [0, 1]
    losses: list[float]  # the loss of every evaluation
    iterations: int  # the iterations done: those asked for, unless L-BFGS could not make progress


def optimize_image(content: torch.Tensor, criterion: PerceptualLoss, steps: int = 300, optimizer: str = "lbfgs",
                   lr: float | None = None, on_step: Callable[[int, float], None] | None = None) -> Optimized:
    """Optimize the pixels of an image, starting from ``content`` (1, 3, H, W) in [0, 1], to minimize
    ``criterion(image, content)`` for ``steps`` iterations. Returns the image (clamped to [0, 1]), the
    loss of every evaluation (L-BFGS evaluates one or more times per iteration in its line search; Adam
    once per step) and the iterations done."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    image = content.detach().clone().requires_grad_(True)
    history: list[float] = []
    # The losses are in the 1e4..1e6 range: dividing by the starting loss (a constant: the same
    # minimum) keeps L-BFGS's first step and tolerances on a sane scale; the history has real values.
    with torch.no_grad():
        scale = 1.0 / max(float(criterion(image, content)["loss"]), 1e-12)

    # No clamping while optimizing: where pixels sit at 0 or 1 and the gradient points outward, a
    # clamp would cancel the step and stall the line search. The result is clamped once at the end.
    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = criterion(image, content)["loss"] * scale
        loss.backward()
        history.append(float(loss.detach()) / scale)
        if on_step:
            on_step(len(history), history[-1])
        return loss

    if optimizer == "lbfgs":
        # One call for all iterations: L-BFGS's line search keeps its state within a call (calling it
        # once per iteration stalls it on some images). The evaluations are not capped (torch's default
        # cap, 1.25 per iteration, ends the run early: the line search often needs 2 or more) and the
        # tolerances are 0, so that it runs the iterations asked for; it stops sooner only when its line
        # search can no longer move.
        opt = torch.optim.LBFGS([image], lr=lr or 1.0, max_iter=steps, max_eval=steps * 1000, tolerance_grad=0.0,
                                tolerance_change=0.0, history_size=50, line_search_fn="strong_wolfe")
        opt.step(closure)
        iterations = opt.state[image]["n_iter"]
    elif optimizer == "adam":
        opt = torch.optim.Adam([image], lr=lr or 0.02)
        for _ in range(steps):
            opt.step(closure)
        iterations = steps
    else:
        raise ValueError(f"optimizer={optimizer} is not one of lbfgs, adam")
    return Optimized(image.detach().clamp(0, 1), history, iterations)


def optimize(cfg: DictConfig) -> Path:
    from fststyle.styles import resolve_style_image
    from fststyle.train import build_criterion, load_style_image

    device = pick_device(cfg.device)
    content = load_tensor(cfg.content, cfg.size)[None].to(device)
    style_path = resolve_style_image(cfg.style.image, cfg.style.name, cfg.style.get("sha256"), cfg.style_cache)
    criterion = build_criterion(cfg.loss, load_style_image(style_path, cfg.style.size)).to(device)
    start = time.perf_counter()
    with tqdm(unit="evaluation") as bar:
        result = optimize_image(content, criterion, cfg.steps, cfg.optimizer, cfg.lr,
                                on_step=lambda n, loss: (bar.update(1), bar.set_postfix(loss=f"{loss:.3g}")))
    path = save_image(result.image[0], cfg.output)
    history = result.losses
    print(f"loss {history[0]:.4g} -> {min(history):.4g} in {result.iterations} iterations, {len(history)} evaluations "
          f"({time.perf_counter() - start:.1f} s)")
    print(f"wrote: {path.resolve()}")
    return path


@hydra.main(version_base="1.3", config_path="conf", config_name="optimize")
def main(cfg: DictConfig) -> None:
    run_cli(lambda: optimize(cfg))


def cli() -> None:
    """``python -m fststyle.optimize`` and the ``fststyle-optimize`` command."""
    check_choices(CONF_DIR)
    main()


if __name__ == "__main__":
    cli()
