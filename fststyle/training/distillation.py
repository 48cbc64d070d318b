"""Distillation (``teacher=MODEL``): a network learns to give a trained model's pictures, e.g. a smaller
network of the same paintings. The objective is the distance to the teacher's picture of the same photo
in the same style, in pixels and in their local differences (the strokes' edges), both L1; no loss
network runs, so a step costs the two networks' passes only: several times the images per second of
training against the loss network on a CPU. The model written is judged, and can be fine-tuned, by the
teacher's own objective (its metadata records the teacher's paintings and loss)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fststyle.net import TransformerNet


def edges(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The differences between neighbouring pixels, across and down."""
    return image[..., :, 1:] - image[..., :, :-1], image[..., 1:, :] - image[..., :-1, :]


class TeacherLoss(nn.Module):
    """The distillation objective, called like PerceptualLoss (``criterion(stylized, photos, styles)``):
    the teacher's picture of ``photos`` (in each item's style) is the target. ``network`` is the teacher,
    frozen: checkpoints leave it out (StyleTransferModule.FROZEN_PREFIX) and a resumed run reloads it.
    ``metadata`` is the teacher file's (its paintings, loss and training), kept for the model written."""

    def __init__(self, teacher: TransformerNet, metadata: dict[str, Any] | None = None):
        super().__init__()
        self.network = teacher.eval().requires_grad_(False)
        self.metadata = metadata or {}

    def train(self, mode: bool = True) -> TeacherLoss:
        super().train(mode)
        self.network.eval()  # the teacher stays as it was trained, whatever mode the module is in
        return self

    def forward(self, stylized: torch.Tensor, photos: torch.Tensor, styles: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            if self.network.num_styles > 1:
                target = self.network(photos, F.one_hot(styles, self.network.num_styles).to(photos.dtype))
            else:
                target = self.network(photos)
        target = target.to(stylized.dtype)
        pixel = (stylized - target).abs().mean()
        edge = sum((a - b).abs().mean() for a, b in zip(edges(stylized), edges(target)))
        return {"loss": pixel + edge, "pixel": pixel, "edges": edge}
