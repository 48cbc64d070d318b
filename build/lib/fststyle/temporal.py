"""Temporal stability without video data: the compound regularisation of Wang et al. (AAAI 2020).

A video's next frame is, locally, the previous one moved a little, plus noise. So a network that is
stable over time gives, for a slightly moved and noisier photo, the same picture moved the same way:
the loss is the mean squared difference between ``net(move(photo) + noise)`` and ``move(net(photo))``,
away from the borders (where a move brings in pixels the photo never had).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

MAX_SHIFT = 0.02  # of the image's half-width: about 1.3 px at 128 px, 2.6 px at 256 px
MAX_ROTATION = math.radians(1.0)
MAX_ZOOM = 0.02
NOISE = 0.02  # standard deviation of the added noise, in [0, 1] pixel units
BORDER = 0.05  # share of each side left out of the loss


def random_motion(n: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 2, 3) affine maps (affine_grid's convention) of a small random shift, rotation and zoom."""
    u = torch.rand(n, 4, generator=generator, device=generator.device) * 2 - 1
    angle, zoom = u[:, 0] * MAX_ROTATION, 1 + u[:, 1] * MAX_ZOOM
    cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
    shift = u[:, 2:] * MAX_SHIFT
    return torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)


def move(images: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(motion.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def temporal_loss(net: Callable[[torch.Tensor], torch.Tensor], photos: torch.Tensor, stylized: torch.Tensor,
                  generator: torch.Generator) -> torch.Tensor:
    """The compound regularisation of ``net`` at ``photos`` (whose stylization is ``stylized``), float32;
    the motions and the noise drawn from ``generator`` (on the photos' device)."""
    motion = random_motion(photos.shape[0], generator)
    noise = torch.randn(photos.shape, generator=generator, device=photos.device, dtype=photos.dtype)
    moved = (move(photos, motion) + NOISE * noise).clamp(0, 1)
    difference = (net(moved).float() - move(stylized.float(), motion)).square()
    h, w = photos.shape[-2:]
    dy, dx = math.ceil(h * BORDER), math.ceil(w * BORDER)
    return difference[..., dy : h - dy, dx : w - dx].mean()
