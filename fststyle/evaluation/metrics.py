"""Evaluation metrics, on a fixed evaluation network that does not depend on any training config.

The evaluation network is the bundled VGG19 (original ImageNet weights, Caffe input convention) with
content layer ``relu2_2`` and style layers ``relu1_2, relu2_2, relu3_3, relu4_3`` (equal weights); the
losses are the training losses' definitions (fststyle.losses). So numbers from different models, loss
configs and loss networks are comparable. ``grid_peak`` needs no network: how strongly a picture repeats
on the transformer network's 4-px pixel grid (the regular hatching a network can paint at full size).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fststyle.losses import PerceptualLoss
from fststyle.net import GRID
from fststyle.pixels import luminance
from fststyle.vgg import LossNetwork

EVAL_CONTENT_LAYERS = ("relu2_2",)
EVAL_STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
EVAL_STYLE_SIZE = 512  # long side of the style image for its Grams


def evaluation_loss(style_image: torch.Tensor) -> PerceptualLoss:
    """The fixed evaluation criterion for one style image ((1, 3, H, W), long side EVAL_STYLE_SIZE)."""
    network = LossNetwork("vgg19", [*EVAL_CONTENT_LAYERS, *EVAL_STYLE_LAYERS], "bundled")
    return PerceptualLoss(network, style_image, EVAL_CONTENT_LAYERS, EVAL_STYLE_LAYERS, None, 1.0, 1.0, 0.0)


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM of the luminance of two RGB batches in [0, 1], one value per image; identical images give 1.

    Wang et al. 2004 (11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, range 1), averaged like the
    reference implementation and scikit-image over the windows that lie inside the image (no padding).
    Written here rather than taken from torchmetrics, whose import costs a command seconds."""
    ya, yb = luminance(a.float()), luminance(b.float())
    offsets = torch.arange(11, dtype=torch.float32, device=ya.device) - 5
    window = torch.exp(-offsets**2 / (2 * 1.5**2))
    window = window / window.sum()

    def local_mean(x: torch.Tensor) -> torch.Tensor:  # the Gaussian window is separable
        return F.conv2d(F.conv2d(x, window.view(1, 1, 1, 11)), window.view(1, 1, 11, 1))

    mean_a, mean_b = local_mean(ya), local_mean(yb)
    var_a, var_b = local_mean(ya * ya) - mean_a**2, local_mean(yb * yb) - mean_b**2
    covariance = local_mean(ya * yb) - mean_a * mean_b
    c1, c2 = 0.01**2, 0.03**2
    index = (2 * mean_a * mean_b + c1) * (2 * covariance + c2) / ((mean_a**2 + mean_b**2 + c1) * (var_a + var_b + c2))
    return index.mean((1, 2, 3))


@torch.no_grad()
def image_metrics(criterion: PerceptualLoss, stylized: torch.Tensor, photo: torch.Tensor) -> dict[str, float]:
    """content, style and tv losses and luminance SSIM of one stylized image (1, 3, H, W) against its photo."""
    losses = criterion(stylized, photo)
    return {"content": losses["content"].item(), "style": losses["style"].item(), "tv": losses["tv"].item(),
            "ssim": ssim(stylized, photo).item()}


GRID_MIN_SIZE = 64  # px a side: below it the grid's frequencies have too few neighbours to compare with


def grid_figure(image: torch.Tensor) -> float | None:
    """grid_peak of a picture, or None for one under GRID_MIN_SIZE px a side (no figure to read)."""
    return grid_peak(image) if min(image.shape[-2:]) >= GRID_MIN_SIZE else None


def grid_peak(image: torch.Tensor, period: int = GRID) -> float:
    """How strongly a picture ((1, 3, H, W) or (3, H, W), at least 64 px a side) repeats on a ``period``-px
    pixel grid: the spectral power of its luminance at the grid's own off-axis frequencies over the median
    power around each, the largest. Those frequencies are (k/period, l/period) cycles per pixel with k and l
    not 0 (on-axis power comes from a picture's borders too) and not both multiples of a divisor of the
    period: a 2-px checkerboard is left to the 2-px grid, which an optimization through VGG also paints.
    Texture without a pattern on the grid reads under about 10 whatever its strength; a regular diagonal
    hatching of 4 px reads over 100 at 0.4 MP. A detection figure: for a pattern of the same strength it
    grows with the pixel count (the peak's power with its square, the surroundings' with the count), so
    compare pictures of one size."""
    gray = luminance(image.reshape(-1, *image.shape[-3:])[:1].detach().cpu().double())[0, 0]  # the FFT in float64 on the CPU, from any device
    height, width = gray.shape
    if min(height, width) < GRID_MIN_SIZE:
        raise ValueError(f"grid_peak needs at least {GRID_MIN_SIZE}x{GRID_MIN_SIZE} px, got {width}x{height}")
    window = torch.outer(torch.hann_window(height, periodic=False, dtype=torch.float64),
                         torch.hann_window(width, periodic=False, dtype=torch.float64))
    power = torch.fft.fft2((gray - gray.mean()) * window).abs().square()
    around = torch.ones(21, 21, dtype=torch.bool)
    around[8:13, 8:13] = False  # the peak may spread over the bins next to it (H, W not multiples of the period)
    peaks = []
    for k in range(1, period):
        for l in range(1, period):
            if math.gcd(k, l, period) > 1:
                continue
            rows = torch.arange(-10, 11) + round(k * height / period)  # the frequency's bin; indices wrap around
            cols = torch.arange(-10, 11) + round(l * width / period)
            patch = power[rows % height][:, cols % width]
            peaks.append(float(patch[9:12, 9:12].max() / patch[around].median()))
    return max(peaks)
