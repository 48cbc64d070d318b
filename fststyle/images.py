"""Reading and writing images. Public convention: RGB float tensors in [0, 1], (3, H, W).

PyTorch is imported only by the functions that make or read tensors: reading, resizing and writing
pictures also serve the path that stylizes without PyTorch (fststyle.inference.quick)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps

from fststyle.errors import whole_in
from fststyle.files import atomic_write

if TYPE_CHECKING:
    import torch

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")

# Larger images are refused from their header, before any pixel is decoded (decompression bombs).
# 16384 x 16384 by default; FSTSTYLE_MAX_PIXELS raises or lowers it. PIL's own guard follows it.
MAX_PIXELS = int(os.environ.get("FSTSTYLE_MAX_PIXELS", 16384 * 16384))
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


def is_image_file(path: str | Path) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def _to_8bit_gray(im: Image.Image) -> Image.Image:
    """16/32-bit integer grayscale -> 8-bit, scaled (PIL's convert would clip everything above 255)."""
    arr = np.asarray(im, dtype=np.float64)
    peak = 65535.0 if im.mode.startswith("I;16") or arr.max() <= 65535 else float(arr.max())
    return Image.fromarray(np.clip(arr / peak * 255 + 0.5, 0, 255).astype(np.uint8), "L")


def open_rgb(path: str | Path) -> Image.Image:
    """Open any image as 8-bit RGB: EXIF orientation applied; grayscale, palette, CMYK and 16-bit
    converted; alpha composited on white. Raises ValueError for images over MAX_PIXELS."""
    with Image.open(path) as im:
        w, h = im.size
        if w * h > MAX_PIXELS:
            raise ValueError(f"{path}: {w}x{h} pixels is over the limit of {MAX_PIXELS} (a decompression bomb?); set FSTSTYLE_MAX_PIXELS to allow it")
        im = ImageOps.exif_transpose(im)
        if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(background, rgba).convert("RGB")
        if im.mode.startswith("I"):
            im = _to_8bit_gray(im)
        return im.convert("RGB")


# The longest side a size= may ask for (a 64K picture already holds 4 gigapixels).
MAX_SIDE = 65536


def check_size(size: object, key: str = "size") -> int | None:
    """A ``size=`` option (the long side in pixels, or null for the picture's own), checked: a whole
    number in [1, MAX_SIDE]."""
    if size is None:
        return None
    return whole_in(size, 1, MAX_SIDE, f"{key} must be a whole number of pixels in [1, {MAX_SIDE}] (or null: the picture's own), got {size}")


def resize_long_side(image: Image.Image, size: int | None) -> Image.Image:
    """Resize so that the longer side is ``size`` pixels (no-op for None)."""
    if not size:
        return image
    w, h = image.size
    scale = size / max(w, h)
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC)


def square_crop(image: Image.Image, size: int, generator: torch.Generator | None = None, centre: bool = False,
                scale: tuple[float, float] = (1.0, 1.0), flip: bool = False) -> Image.Image:
    """A square resized to ``size`` x ``size``: the shorter side's length times a factor drawn from
    ``scale`` (default: the whole shorter side), centred or at a random place, mirrored left-right
    with probability 1/2 when ``flip``; the random numbers come from ``generator``.

    Smaller squares show the photo's objects larger: many distinct training images from few photos."""
    import torch

    w, h = image.size
    low, high = scale
    factor = low + (high - low) * float(torch.rand((), generator=generator)) if high > low else high
    side = max(1, min(w, h, round(min(w, h) * factor)))
    if centre:
        x, y = (w - side) // 2, (h - side) // 2
    else:
        x, y = (int(torch.randint(0, n - side + 1, (), generator=generator)) for n in (w, h))
    square = image.crop((x, y, x + side, y + side)).resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    if flip and bool(torch.rand((), generator=generator) < 0.5):
        square = square.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return square


def to_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB PIL image as a (3, H, W) float tensor in [0, 1] (as torchvision's to_tensor, whose import
    alone costs inference a second of torch._dynamo)."""
    import torch

    return torch.from_numpy(np.array(image.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1).contiguous().float().div_(255)


def load_tensor(path: str | Path, long_side: int | None = None) -> torch.Tensor:
    """An image file as a (3, H, W) float tensor in [0, 1]."""
    return to_tensor(resize_long_side(open_rgb(path), long_side))


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


def find_files(root: str | Path, accept: Callable[[str], bool] = is_image_file) -> list[Path]:
    """The files below ``root`` whose names ``accept`` takes (recursive; hidden files and folders
    left out), sorted. By default: images, any letter case of the extension."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root.resolve()}")
    found, seen = [], set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        # Linked folders are followed, each real folder once: a link back up the tree (a cycle) would
        # otherwise be walked until the path grows too long, listing every photo hundreds of times.
        stat = os.stat(dirpath)
        if (stat.st_dev, stat.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((stat.st_dev, stat.st_ino))
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath) / f for f in filenames if accept(f) and not f.startswith(".")]
    return sorted(found)
