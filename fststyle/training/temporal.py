"""Temporal stability without video data: the compound regularisation of Wang et al. (AAAI 2020).

A video's next frame is, locally, the previous one moved a little, plus noise. So a network that is
stable over time gives, for a slightly moved and noisier photo, the same picture moved the same way:
the loss is the mean squared difference between ``net(move(photo) + noise)`` and ``move(net(photo))``,
away from the borders (where a move brings in pixels the photo never had).

Three kinds of motion (``loss.temporal_motion``): ``affine``, a small random shift, rotation and zoom of
the whole photo; ``smooth``, the motions of the authors' released code: a random flow field smoothed
at low resolution (things moving differently in one picture) plus a global shift of up to SMOOTH_SHIFT
px, with far less noise; ``grid``, a shift by whole pixels to another place on the network's 4-px grid
(0-3 px each way, not both 0) without noise: the moved photo is the same photo, so the term is zero
for a network that paints the same strokes wherever the grid lies, and it measures only what the
network ties to its grid (a regular hatching, fststyle.evaluation.metrics.grid_peak).

Two targets (``loss.temporal_target``): ``steady``, the moved photo's output must be the output moved
(Wang et al.); ``difference``, the frame-difference loss of ReCoNet (Gao et al. 2018, "luminance-wise"):
the output may change between the two frames exactly as the input's luminance does. A steady target
asks the network to suppress the input's noise; the difference target lets it pass the noise through,
but not amplify it, which is how a plain network flickers.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from fststyle.net import GRID

MAX_SHIFT = 0.02  # of the image's half-width: about 1.3 px at 128 px, 2.6 px at 256 px
MAX_ROTATION = math.radians(1.0)
MAX_ZOOM = 0.02
NOISE = 0.02  # standard deviation of the added noise, in [0, 1] pixel units
BORDER = 0.05  # share of each side left out of the loss
MOTIONS = ("affine", "smooth", "grid")
TARGETS = ("steady", "difference")
LUMA = (0.299, 0.587, 0.114)  # Rec. 601 luminance weights of R, G, B
SMOOTH_SHIFT = 10.0  # px, the largest global shift of a smooth motion
SMOOTH_FLOW = 2.0  # px, the standard deviation of its local flow (after smoothing)
SMOOTH_GRID = 4  # the local flow is drawn on a grid of this many cells per side, then smoothed and enlarged
SMOOTH_NOISE = 0.0015


def random_motion(n: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 2, 3) affine maps (affine_grid's convention) of a small random shift, rotation and zoom."""
    u = torch.rand(n, 4, generator=generator, device=generator.device) * 2 - 1
    angle, zoom = u[:, 0] * MAX_ROTATION, 1 + u[:, 1] * MAX_ZOOM
    cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
    shift = u[:, 2:] * MAX_SHIFT
    return torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)


def random_grid_shift(n: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 2, 3) affine maps of whole-pixel shifts of 0 to GRID - 1 px each way, not both 0."""
    phase = torch.randint(1, GRID * GRID, (n,), generator=generator, device=generator.device)  # 0 would be no move
    dx, dy = (phase % GRID).float(), (phase // GRID).float()
    eye = torch.eye(2, device=generator.device).expand(n, 2, 2)
    return torch.cat([eye, torch.stack([2 * dx / width, 2 * dy / height], 1)[..., None]], 2)


def random_flow(n: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """(n, height, width, 2) sampling grids (grid_sample's convention) of smooth random flows: a
    Gaussian-smoothed random field of SMOOTH_FLOW px plus a global shift of up to SMOOTH_SHIFT px."""
    device = generator.device
    field = torch.randn(n, 2, SMOOTH_GRID, SMOOTH_GRID, generator=generator, device=device)
    kernel = torch.tensor([0.25, 0.5, 0.25], device=device)
    kernel = (kernel[:, None] * kernel[None, :]).expand(2, 1, 3, 3)
    field = F.conv2d(F.pad(field, (1, 1, 1, 1), mode="replicate"), kernel, groups=2)
    field = field / field.flatten(1).std(1).clamp_min(1e-6).view(n, 1, 1, 1) * SMOOTH_FLOW
    flow = F.interpolate(field, size=(height, width), mode="bicubic", align_corners=False)
    flow = flow + (torch.rand(n, 2, 1, 1, generator=generator, device=device) * 2 - 1) * SMOOTH_SHIFT
    ys, xs = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    x = (xs + flow[:, 0] + 0.5) / width * 2 - 1  # pixel centres, align_corners=False
    y = (ys + flow[:, 1] + 0.5) / height * 2 - 1
    return torch.stack([x, y], -1)


def move(images: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
    """``images`` moved by (n, 2, 3) affine maps or resampled on (n, H, W, 2) grids."""
    grid = F.affine_grid(motion.to(images.dtype), list(images.shape), align_corners=False) if motion.dim() == 3 else motion.to(images.dtype)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def temporal_loss(net: Callable[[torch.Tensor], torch.Tensor], photos: torch.Tensor, stylized: torch.Tensor,
                  generator: torch.Generator, motion_kind: str = "affine", target: str = "steady") -> torch.Tensor:
    """The compound regularisation of ``net`` at ``photos`` (whose stylization is ``stylized``), float32;
    the motions (``affine``, ``smooth`` or ``grid``) and the noise drawn from ``generator`` (on the photos' device);
    ``target`` ``steady`` or ``difference`` (module docstring)."""
    if motion_kind not in MOTIONS:
        raise ValueError(f"unknown temporal motion {motion_kind!r}; choose {', '.join(MOTIONS)}")
    if target not in TARGETS:
        raise ValueError(f"unknown temporal target {target!r}; choose {', '.join(TARGETS)}")
    n, _, h, w = photos.shape
    # The motion, the noise added to the moved photo, and how far a move can bring in pixels from beyond the
    # border (an affine one: within BORDER).
    if motion_kind == "grid":
        motion, noise_level, reach = random_grid_shift(n, h, w, generator), 0.0, GRID - 1
    elif motion_kind == "affine":
        motion, noise_level, reach = random_motion(n, generator), NOISE, 0
    else:
        motion, noise_level, reach = random_flow(n, h, w, generator), SMOOTH_NOISE, math.ceil(SMOOTH_SHIFT + 3 * SMOOTH_FLOW)
    moved_photos = move(photos, motion)
    moved = moved_photos
    if noise_level:
        moved = (moved + noise_level * torch.randn(photos.shape, generator=generator, device=photos.device, dtype=photos.dtype)).clamp(0, 1)
    change = net(moved).float() - move(stylized.float(), motion)
    if target == "difference":  # the input's own change between the frames, in luminance, is allowed
        luma = torch.tensor(LUMA, device=photos.device).view(1, 3, 1, 1)
        change = change - ((moved - moved_photos).float() * luma).sum(1, keepdim=True)
    dy, dx = max(reach, math.ceil(h * BORDER)), max(reach, math.ceil(w * BORDER))
    return change[..., dy : h - dy, dx : w - dx].square().mean()
