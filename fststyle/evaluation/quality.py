"""How good a feed-forward model is: its own training objective on photos it never saw, against the
optimization of that objective over valid pictures (the reference; ``optimize_image``, Gatys et al.'s
method, which the ``fststyle.optimize`` command also runs), as a ratio and as the number of
L-BFGS iterations whose picture it matches (the figure Johnson et al. report: their networks match
50 to 100 iterations).

The reference runs once per photo, cut, painting, size, loss, start and method; its objective curve
(at the iteration counts of CHECKPOINTS) and its final picture are cached on disk.

Two starts: from the photo (our figure: the stricter one, the optimization starts where the content
loss is zero) and from white noise (Johnson et al.'s count: "a network matches 50-100 iterations" is
read off L-BFGS started from noise).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import torch

from fststyle.files import atomic_write
from fststyle.images import load_tensor, save_image
from fststyle.losses import PerceptualLoss

# The iteration counts of the reference curve; the last one is the reference itself.
CHECKPOINTS = (5, 10, 20, 50, 100, 300)
# Part of every cache key: references of another method (the one before this that optimized pixels
# outside [0, 1] and clamped once at the end reached objectives about 2x higher) are never reused.
REFERENCE_METHOD = "lbfgs-strong-wolfe-clamp-inside-v2"
# Where the optimization starts: the photo itself, or uniform white noise drawn from NOISE_SEED.
STARTS = ("photo", "noise")
NOISE_SEED = 0
# How the judged picture was cut from the file: the centre square (the training curve's held-out
# photos) or the whole photo (eval, the quality benchmark), each resized to the key's size.
CUTS = ("centre-square", "whole")


@contextlib.contextmanager
def exact_fp32() -> Iterator[None]:
    """float32 convolutions and matmuls computed in float32 on CUDA (TF32 off; training may turn it
    on), restored after: TF32 keeps 10 bits of mantissa, and a figure must not depend on the machine
    that computed it (references computed on a GPU are read from the cache on a CPU). A no-op on CPUs."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def as_8bit(image: torch.Tensor) -> torch.Tensor:
    """The image as it is saved (8 bits per channel): model and reference are scored as pictures."""
    return (image * 255).round().clamp(0, 255) / 255


@torch.no_grad()
@exact_fp32()
def objective(criterion: PerceptualLoss, image: torch.Tensor, photo: torch.Tensor) -> dict[str, float]:
    """content, style and each style layer's loss (unweighted: ``style/<layer>``) and the weighted total
    of the training objective, of ``image`` as a saved picture."""
    losses = criterion(as_8bit(image), photo)
    return {"content": losses["content"].item(), "style": losses["style"].item(), "total": losses["loss"].item(),
            **{k: v.item() for k, v in losses.items() if k.startswith("style/")}}


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


@exact_fp32()
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


class Reference(NamedTuple):
    image: torch.Tensor  # the optimization's picture after its last iteration, 8-bit
    curve: dict[int, dict[str, float]]  # iterations -> objective; 0 is the photo itself
    iterations: int  # those done (fewer than asked only when L-BFGS could no longer move)
    cached: bool

    @property
    def final(self) -> dict[str, float]:
        """The objective of the reference itself: after the run's last iteration."""
        return self.curve[max(self.curve)]


def reference_key(photo: Path, style_sha: str, size: int, loss: dict, style_size: int, steps: int, cut: str,
                  start: str = "photo") -> str:
    """The cache key of a reference: only what changes the optimized picture (the photo's file and
    how it was cut, the painting, the loss, the start), and the method."""
    if cut not in CUTS or start not in STARTS:
        raise ValueError(f"cut must be one of {', '.join(CUTS)} and start one of {', '.join(STARTS)}, got {cut}, {start}")
    # The temporal term exists only in training; style_norm's default is what configs without it meant.
    loss = {k: v for k, v in loss.items() if k not in ("temporal_weight", "temporal_motion", "temporal_target") and not (k == "style_norm" and v == "none")}
    start_seed = start if start == "photo" else f"{start}:{NOISE_SEED}"
    text = json.dumps([REFERENCE_METHOD, CHECKPOINTS, _file_sha(photo), style_sha, size, loss, style_size, steps, cut, start_seed],
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def start_picture(photo: torch.Tensor, start: str) -> torch.Tensor | None:
    """The optimization's first picture: None (the photo) or white noise of the photo's shape."""
    if start == "photo":
        return None
    generator = torch.Generator().manual_seed(NOISE_SEED)
    return torch.rand(photo.shape, generator=generator).to(photo.device, photo.dtype)


def _file_sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def reference(photo: torch.Tensor, criterion: PerceptualLoss, steps: int, cache: Path | None = None, key: str | None = None,
              start: str = "photo") -> Reference:
    """The optimization of ``criterion`` for ``photo``, started from the photo or from white noise
    (``start``), for ``steps`` iterations, with its objective at each of CHECKPOINTS below ``steps``
    (iteration 0: the start picture); read from ``cache`` (``<key>.json`` and ``<key>.png``) when it
    holds it, else computed and written there (each file atomically, the JSON last: a crash leaves no
    entry that later runs would read)."""
    if cache is not None and key is not None and (cache / f"{key}.json").is_file() and (cache / f"{key}.png").is_file():
        saved = json.loads((cache / f"{key}.json").read_text())
        curve = {int(k): v for k, v in saved["curve"].items()}
        return Reference(load_tensor(cache / f"{key}.png")[None].to(photo.device), curve, saved["iterations"], True)
    first = start_picture(photo, start)
    result = optimize_image(photo, criterion, steps, checkpoints=tuple(c for c in CHECKPOINTS if c < steps), start=first)
    curve = {0: objective(criterion, photo if first is None else first, photo),
             **{n: objective(criterion, image, photo) for n, image in result.snapshots.items()}}
    curve[steps] = objective(criterion, result.image, photo)
    image = as_8bit(result.image)
    if cache is not None and key is not None:
        save_image(image[0], cache / f"{key}.png")  # PNG, lossless: the cached picture is this one
        with atomic_write(cache / f"{key}.json") as tmp:
            tmp.write_text(json.dumps({"method": REFERENCE_METHOD, "start": start, "steps": steps, "iterations": result.iterations,
                                       "curve": curve}, indent=1))
    return Reference(image, curve, result.iterations, False)


def equivalent_iterations(total: float, curve: dict[int, dict[str, float]] | dict[int, float]) -> float:
    """The iteration count of the reference run whose picture has the objective ``total``: read off
    the curve (the best objective reached by each count), linear in iterations and in the logarithm of
    the objective between its points; 0 when the photo itself is as good, inf when better than the
    run's last picture."""
    points = sorted((n, v["total"] if isinstance(v, dict) else v) for n, v in curve.items())
    best = math.inf
    previous = None
    for n, value in points:
        best = min(best, value)
        if total >= best:
            if previous is None:
                return 0.0
            (n0, v0) = previous
            if v0 <= best:
                return float(n)
            share = (math.log(v0) - math.log(total)) / (math.log(v0) - math.log(best))
            return n0 + share * (n - n0)
        previous = (n, best)
    return math.inf


def judge(criterion: PerceptualLoss, stylized: torch.Tensor, photo: torch.Tensor, references: dict[str, Reference]) -> dict:
    """A model's picture of one photo against that photo's references (by start, ``photo`` required):
    its objective, the ratio of each part (total, content, style, ``style/<layer>``) to the photo-start
    reference's last picture, and the iteration count it matches from each start
    (``equivalent_iterations``, ``equivalent_iterations_noise``)."""
    model = objective(criterion, stylized, photo)
    final = references["photo"].final
    result = {"model": model, "ratio": {k: model[k] / final[k] for k in model if final.get(k, 0) > 0}}
    for start, ref in references.items():
        result["equivalent_iterations" if start == "photo" else f"equivalent_iterations_{start}"] = equivalent_iterations(model["total"], ref.curve)
    return result
