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
    image: torch.Tensor  # (1, 3, H, W) in [0, 1]: the picture whose objective is the last one seen
    losses: list[float]  # the loss of every evaluation, each of a valid picture
    iterations: int  # the iterations done: those asked for, unless L-BFGS could not make progress
    snapshots: dict[int, torch.Tensor]  # the picture after each iteration count asked for in ``checkpoints``


# How the optimization keeps to valid pictures (pixels in [0, 1]); every evaluation scores one:
# clamp: the variables are clamped inside the objective (the gradient flows through the clamp);
# sigmoid: the picture is the sigmoid of the variables. An optimization of unclamped pixels that clamps
# only its result returns pictures about twice as far from the optimum as the loss it saw suggests.
PARAMETRIZATIONS = ("clamp", "sigmoid")
EPS = 1e-3  # sigmoid: how far inside (0, 1) the photo's pixels start


def optimize_image(content: torch.Tensor, criterion: PerceptualLoss, steps: int = 300, optimizer: str = "lbfgs",
                   lr: float | None = None, on_step: Callable[[int, float], None] | None = None, parametrization: str = "clamp",
                   checkpoints: tuple[int, ...] = (), start: torch.Tensor | None = None) -> Optimized:
    """Optimize a picture, starting from ``content`` (1, 3, H, W) in [0, 1] or from ``start`` (a
    picture of the same shape, e.g. white noise), to minimize ``criterion(picture, content)`` over
    valid pictures for ``steps`` iterations. Returns the picture,
    the loss of every evaluation (L-BFGS evaluates one or more times per iteration in its line search;
    Adam once per step), the iterations done, and the pictures after each of ``checkpoints`` iterations
    (for the quality curve: which iteration count a feed-forward model matches)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"parametrization={parametrization} is not one of {', '.join(PARAMETRIZATIONS)}")
    first = (content if start is None else start).detach()
    if first.shape != content.shape:
        raise ValueError(f"the start picture's shape {tuple(first.shape)} is not the photo's {tuple(content.shape)}")
    if parametrization == "clamp":
        variables, picture = first.clone(), lambda: variables.clamp(0, 1)
    else:
        variables, picture = torch.logit(first.clamp(EPS, 1 - EPS)), lambda: torch.sigmoid(variables)
    variables.requires_grad_(True)
    history: list[float] = []
    # The losses are in the 1e4..1e6 range: dividing by the starting loss (a constant: the same
    # minimum) keeps L-BFGS's first step and tolerances on a sane scale; the history has real values.
    with torch.no_grad():
        scale = 1.0 / max(float(criterion(picture(), content)["loss"]), 1e-12)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = criterion(picture(), content)["loss"] * scale
        loss.backward()
        history.append(float(loss.detach()) / scale)
        if on_step:
            on_step(len(history), history[-1])
        return loss

    # The run in segments that end at the checkpoints: L-BFGS keeps its history and step size in its
    # state from one call to the next, so the segments make one run (one evaluation more per segment).
    ends = [*sorted({c for c in checkpoints if 0 < c < steps}), steps]
    snapshots: dict[int, torch.Tensor] = {}
    done = 0
    if optimizer == "lbfgs":
        # The evaluations are not capped (torch's default cap, 1.25 per iteration, ends the run early:
        # the line search often needs 2 or more) and the tolerances are 0, so that it runs the
        # iterations asked for; it stops sooner only when its line search can no longer move.
        opt = torch.optim.LBFGS([variables], lr=lr or 1.0, max_iter=steps, max_eval=steps * 1000, tolerance_grad=0.0,
                                tolerance_change=0.0, history_size=50, line_search_fn="strong_wolfe")
        for end in ends:
            opt.param_groups[0].update(max_iter=end - done, max_eval=(end - done) * 1000)
            opt.step(closure)
            stalled = opt.state[variables]["n_iter"] < end
            done = opt.state[variables]["n_iter"]
            snapshots[end] = picture().detach().clone()
            if stalled:
                break
    elif optimizer == "adam":
        opt = torch.optim.Adam([variables], lr=lr or 0.02)
        for step in range(1, steps + 1):
            opt.step(closure)
            if step in ends:
                snapshots[step] = picture().detach().clone()
        done = steps
    else:
        raise ValueError(f"optimizer={optimizer} is not one of lbfgs, adam")
    return Optimized(picture().detach(), history, done, snapshots)


def optimize(cfg: DictConfig) -> Path:
    from fststyle.styles import resolve_style_image
    from fststyle.criterion import build_criterion, load_style_image, painting_loss, painting_weight

    device = pick_device(cfg.device)
    content = load_tensor(cfg.content, cfg.size)[None].to(device)
    style_path = resolve_style_image(cfg.style.image, cfg.style.name, cfg.style.get("sha256"), cfg.style_cache)
    loss = painting_loss(cfg.loss, painting_weight(cfg.style))
    criterion = build_criterion(loss, load_style_image(style_path, cfg.style.size)).to(device)
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


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="optimize")
def main(cfg: DictConfig) -> None:
    run_cli(lambda: optimize(cfg))


def cli() -> None:
    """``python -m fststyle.optimize``."""
    check_choices(CONF_DIR)
    main()


if __name__ == "__main__":
    cli()
