"""Evaluation metrics, on a fixed evaluation network that does not depend on any training config.

The evaluation network is the bundled VGG19 (original ImageNet weights, Caffe input convention) with
content layer ``relu2_2`` and style layers ``relu1_2, relu2_2, relu3_3, relu4_3`` (equal weights); the
losses are the training losses' definitions (fststyle.losses). So numbers from different models, loss
configs and loss networks are comparable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fststyle.losses import PerceptualLoss
from fststyle.stylizer import to_ycbcr
from fststyle.vgg import LossNetwork

EVAL_CONTENT_LAYERS = ("relu2_2",)
EVAL_STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
EVAL_STYLE_SIZE = 512  # long side of the style image for its Grams


def evaluation_loss(style_image: torch.Tensor) -> PerceptualLoss:
    """The fixed evaluation criterion for one style image ((1, 3, H, W), long side EVAL_STYLE_SIZE)."""
    network = LossNetwork("vgg19", [*EVAL_CONTENT_LAYERS, *EVAL_STYLE_LAYERS], "bundled")
    return PerceptualLoss(network, style_image, EVAL_CONTENT_LAYERS, EVAL_STYLE_LAYERS, None, 1.0, 1.0, 0.0)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, range 1) of the
    luminance of two RGB batches in [0, 1], one value per image. Identical images give 1."""
    ya, yb = to_ycbcr(a.float())[:, :1], to_ycbcr(b.float())[:, :1]
    window = _gaussian_window().to(ya)
    pad = window.shape[-1] // 2
    blur = lambda x: F.conv2d(F.pad(x, (pad,) * 4, mode="reflect"), window)  # noqa: E731
    mu_a, mu_b = blur(ya), blur(yb)
    var_a = blur(ya * ya) - mu_a**2
    var_b = blur(yb * yb) - mu_b**2
    cov = blur(ya * yb) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.mean((1, 2, 3))


@torch.no_grad()
def image_metrics(criterion: PerceptualLoss, stylized: torch.Tensor, photo: torch.Tensor) -> dict[str, float]:
    """content, style and tv losses and luminance SSIM of one stylized image (1, 3, H, W) against its photo."""
    losses = criterion(stylized, photo)
    return {"content": losses["content"].item(), "style": losses["style"].item(), "tv": losses["tv"].item(),
            "ssim": ssim(stylized, photo).item()}
