"""Reading and writing images. Public convention: RGB float tensors in [0, 1], (3, H, W)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.transforms import functional as TF

from fststyle.files import atomic_write

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


def is_image_file(path: str | Path) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def open_rgb(path: str | Path) -> Image.Image:
    """Open an image as 8-bit RGB with its EXIF orientation applied; alpha is dropped (on white)."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(background, rgba).convert("RGB")
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            # 16-bit grayscale: scale to 8 bit instead of clipping at 255.
            im = im.point(lambda v: v / 256).convert("L")
        return im.convert("RGB")


def resize_long_side(image: Image.Image, size: int | None) -> Image.Image:
    """Resize so that the longer side is ``size`` pixels (no-op for None)."""
    if not size:
        return image
    w, h = image.size
    scale = size / max(w, h)
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC)


def load_tensor(path: str | Path, long_side: int | None = None) -> torch.Tensor:
    """An image file as a (3, H, W) float tensor in [0, 1]."""
    return TF.to_tensor(resize_long_side(open_rgb(path), long_side))


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8, rounded (not truncated) and clamped."""
    return (image.detach().float() * 255).round().clamp(0, 255).byte().permute(1, 2, 0).cpu().numpy()


def to_pil(image: torch.Tensor) -> Image.Image:
    """(3, H, W) float in [0, 1] -> PIL RGB."""
    return Image.fromarray(to_uint8(image), "RGB")


def save_image(image: torch.Tensor | Image.Image, path: str | Path, quality: int = 95) -> Path:
    """Write atomically (temporary file + rename); the format follows the extension."""
    path = Path(path)
    pil = image if isinstance(image, Image.Image) else to_pil(image)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot tell the image format from {path}; use an extension such as .jpg or .png")
    with atomic_write(path) as tmp:
        pil.save(tmp, format=fmt, **({"quality": quality} if fmt in ("JPEG", "WEBP") else {}))
    return path
