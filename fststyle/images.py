"""Reading and writing images. Public convention: RGB float tensors in [0, 1], (3, H, W)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from PIL import Image, ImageOps
from torchvision.transforms import functional as TF

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


def to_pil(image: torch.Tensor) -> Image.Image:
    """(3, H, W) float in [0, 1] -> PIL RGB (rounded, clamped)."""
    return TF.to_pil_image(image.detach().float().clamp(0, 1).cpu())


def save_image(image: torch.Tensor | Image.Image, path: str | Path, quality: int = 95) -> Path:
    """Write atomically (temporary file + rename); the format follows the extension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pil = image if isinstance(image, Image.Image) else to_pil(image)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot tell the image format from {path}; use an extension such as .jpg or .png")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            pil.save(f, format=fmt, **({"quality": quality} if fmt in ("JPEG", "WEBP") else {}))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
