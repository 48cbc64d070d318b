"""Pixel arithmetic on stylized pictures, shared by the PyTorch path (fststyle.inference.stylizer) and the path that
runs without PyTorch (fststyle.inference.quick): the functions take (N, 3, H, W) RGB in [0, 1] as a torch tensor or
a numpy array alike, using only indexing, arithmetic and ``clip``, which both have."""

from __future__ import annotations

from typing import TypeVar

from fststyle.errors import float_in

Pixels = TypeVar("Pixels")

# ITU-R BT.601 luma: Y carries the light and dark, Cb/Cr the colour.
LUMA = (0.299, 0.587, 0.114)


def luminance(rgb: Pixels) -> Pixels:
    """(N, 1, H, W): the BT.601 luma of (N, 3, H, W) RGB."""
    return LUMA[0] * rgb[:, 0:1] + LUMA[1] * rgb[:, 1:2] + LUMA[2] * rgb[:, 2:3]


def keep_colours(stylized: Pixels, photo: Pixels) -> Pixels:
    """Luminance-only transfer: the stylized picture's luma with the photo's chroma. In YCbCr the two
    differ in Y alone, and Y enters R, G and B with weight 1 (BT.601), so the result is the photo moved
    by the difference of the lumas."""
    return (photo + (luminance(stylized) - luminance(photo))).clip(0, 1)


def blend(stylized: Pixels, photo: Pixels, strength: float) -> Pixels:
    """``strength`` of the style: 0 the photo, 1 the stylized picture."""
    return stylized if strength >= 1.0 else strength * stylized + (1.0 - strength) * photo


def check_blend_options(strength: object, preserve_color: object) -> None:
    """ValueError in one line unless ``strength`` is in [0, 1] and ``preserve_color`` is a bool (the
    options ``blend`` and ``keep_colours`` serve, checked alike on both paths)."""
    float_in(strength, 0.0, 1.0, f"strength must be in [0, 1], got {strength}")
    if not isinstance(preserve_color, bool):
        raise ValueError(f"preserve_color must be true or false, got {preserve_color}")
