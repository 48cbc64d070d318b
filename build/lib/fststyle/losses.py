"""Perceptual losses: content (features), style (Gram matrices) and total variation.

Grams and losses are computed in float32 even under mixed precision: a Gram sums H*W products, which
bf16/fp16 cannot hold accurately.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fststyle.vgg import LossNetwork


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix of (N, C, H, W) features, normalized by C*H*W: (N, C, C), float32."""
    n, c, h, w = features.shape
    f = features.float().reshape(n, c, h * w)
    with torch.autocast(device_type=f.device.type, enabled=False):
        return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels (both directions), float32."""
    x = images.float()
    return (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean() + (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()


class PerceptualLoss(nn.Module):
    """Johnson et al.'s training loss against one style image, or several (a list of images).

    The style images' Grams are computed once here and kept as buffers, (styles, C, C) per layer (moved
    with the module, saved in checkpoints). ``forward(output, content)`` returns a dict of float32
    scalars: ``loss`` (the weighted total), ``content``, ``style``, ``tv`` (unweighted) and
    ``style/<layer>`` per style layer. With several styles, ``forward(output, content, styles)`` takes
    each item's style index, (N,), and ``style_layer_weights`` may give one row of layer weights per
    style.
    """

    def __init__(
        self,
        network: LossNetwork,
        style_image: torch.Tensor | Sequence[torch.Tensor],
        content_layers: Sequence[str] = ("relu2_2",),
        style_layers: Sequence[str] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3"),
        style_layer_weights: Sequence[float] | Sequence[Sequence[float]] | None = None,
        content_weight: float = 1.0,
        style_weight: float = 1.0,
        tv_weight: float = 0.0,
    ):
        super().__init__()
        images = [style_image] if isinstance(style_image, torch.Tensor) else list(style_image)
        weights = list(style_layer_weights) if style_layer_weights is not None else [1.0] * len(style_layers)
        rows = [list(w) for w in weights] if weights and isinstance(weights[0], Sequence) else [weights] * len(images)
        if len(rows) != len(images) or any(len(row) != len(style_layers) for row in rows):
            raise ValueError(f"loss.style_layer_weights must have one value per style layer ({len(style_layers)}), per style ({len(images)})")
        if min([content_weight, style_weight, tv_weight, *(w for row in rows for w in row)]) < 0:
            raise ValueError("loss weights must be >= 0")
        if not content_layers or not style_layers:
            raise ValueError("loss.content_layers and loss.style_layers must each name at least one layer")
        self.network = network
        self.content_layers = list(content_layers)
        self.style_layers = list(style_layers)
        self.style_layer_weights = rows[0] if len(images) == 1 else rows
        self.num_styles = len(images)
        self.content_weight, self.style_weight, self.tv_weight = content_weight, style_weight, tv_weight
        with torch.no_grad():
            feats = [network(image, self.style_layers) for image in images]
        for layer in self.style_layers:
            self.register_buffer(f"gram_{layer}", torch.cat([gram(f[layer]) for f in feats]))
        # Per style, per layer: the layer weights (several styles only).
        self.register_buffer("layer_weights", torch.tensor(rows, dtype=torch.float32), persistent=False)

    def target_gram(self, layer: str) -> torch.Tensor:
        return getattr(self, f"gram_{layer}")

    def forward(self, output: torch.Tensor, content: torch.Tensor, styles: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if self.num_styles > 1 and styles is None:
            raise ValueError("this loss holds several styles: give each item's style index")
        with torch.no_grad():
            target = self.network(content, self.content_layers)  # runs only up to the content layers
        feats = self.network(output)
        losses: dict[str, torch.Tensor] = {}
        content_loss = sum(F.mse_loss(feats[l].float(), target[l].float()) for l in self.content_layers)
        style_loss = output.new_zeros((), dtype=torch.float32)
        for i, layer in enumerate(self.style_layers):
            g = gram(feats[layer])
            if self.num_styles == 1:
                layer_loss = F.mse_loss(g, self.target_gram(layer).expand_as(g))
                style_loss = style_loss + self.style_layer_weights[i] * layer_loss
            else:  # each item against its own style's Grams, with that style's layer weight
                per_item = (g - self.target_gram(layer)[styles]).pow(2).mean((1, 2))
                layer_loss = per_item.mean()
                style_loss = style_loss + (self.layer_weights[styles, i] * per_item).mean()
            losses[f"style/{layer}"] = layer_loss
        tv = total_variation(output)
        losses.update(content=content_loss, style=style_loss, tv=tv)
        losses["loss"] = self.content_weight * content_loss + self.style_weight * style_loss + self.tv_weight * tv
        return losses
