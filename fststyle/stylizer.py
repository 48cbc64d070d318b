"""Stylizer: run an exported model on PIL images, uint8 arrays or float tensors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import functional as TF

from fststyle.export import load_model
from fststyle.net import TransformerNet

ImageLike = TypeVar("ImageLike", Image.Image, np.ndarray, torch.Tensor)


def pick_device(device: str = "auto") -> torch.device:
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class Stylizer:
    """One style model, ready to run. Each call returns the same kind of image it was given:
    PIL -> PIL (RGB), uint8 (H, W, 3) array -> uint8 array, float tensor in [0, 1] ((3, H, W) or
    (N, 3, H, W)) -> float tensor on the input's device. Output size == input size."""

    def __init__(self, net: TransformerNet, metadata: dict[str, Any] | None = None, device: str | torch.device = "auto"):
        self.device = pick_device(device) if isinstance(device, str) else device
        self.net = net.to(self.device).eval()
        self.metadata = metadata or {}

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "auto") -> "Stylizer":
        net, metadata = load_model(path)
        return cls(net, metadata, device)

    @torch.inference_mode()
    def run(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float in [0, 1] -> same shape, on this Stylizer's device."""
        return self.net(batch.to(self.device, torch.float32))

    def __call__(self, image: ImageLike) -> ImageLike:
        if isinstance(image, Image.Image):
            return TF.to_pil_image(self.run(TF.to_tensor(image.convert("RGB"))[None])[0].cpu())
        if isinstance(image, np.ndarray):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"expected a uint8 (H, W, 3) array, got {image.dtype} {image.shape}")
            out = self.run(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255)[0]
            return (out.permute(1, 2, 0) * 255).round().clamp(0, 255).byte().cpu().numpy()
        if isinstance(image, torch.Tensor):
            batched = image if image.dim() == 4 else image[None]
            out = self.run(batched).to(image.device)
            return out if image.dim() == 4 else out[0]
        raise TypeError(f"cannot stylize a {type(image).__name__}; pass a PIL image, a uint8 array or a tensor")
