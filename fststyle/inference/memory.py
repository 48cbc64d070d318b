"""How much memory a pass of the network needs, and how much there is: what decides whether a photo
runs whole, one by one, in row bands (fststyle.inference.banded) or in tiles (fststyle.inference.tiling). Also what both
of those share: per-channel statistics summed over the pieces of a feature map.

``memory_budget`` turns ``max_memory`` into bytes: by default half the memory the system has
available, or 80% of a GPU's free memory (``available_memory``).
"""

from __future__ import annotations

import re

import torch

from fststyle.malloc import held_free
from fststyle.net import MULTIPLE, pad_amount

# Peak working memory of a forward pass, in copies of the first layer's feature map (``width`` channels
# of 4-byte floats at the padded image size): measured 8.0 to 8.8 on the CPU in fp32 (256 to 1024 px,
# width 32: 1.0 to 1.1 KB per pixel); 10 leaves a margin.
FORWARD_COPIES = 10
# What a tiled pass holds for the whole image besides one tile: the photo, its padded copy, the output
# and weight sums and the result (13 floats per pixel).
WHOLE_IMAGE_FLOATS = 13
MIN_AUTO_TILE = 128
UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "m": 2**20, "mb": 2**20, "g": 2**30, "gb": 2**30}


def _padded_pixels(h: int, w: int) -> int:
    return (h + pad_amount(h)) * (w + pad_amount(w))


def forward_bytes(width: int, h: int, w: int) -> int:
    """Estimated peak working memory of one untiled pass of a network of ``width`` over an h x w image."""
    return FORWARD_COPIES * width * 4 * _padded_pixels(h, w)


def tiled_bytes(width: int, h: int, w: int, tile: int) -> int:
    """Estimated peak working memory of a pass in tiles of ``tile`` px over an h x w image."""
    return forward_bytes(width, min(tile, h), min(tile, w)) + WHOLE_IMAGE_FLOATS * 4 * _padded_pixels(h, w)


def tile_for_budget(width: int, h: int, w: int, budget: int) -> int | None:
    """None when an untiled pass fits in ``budget`` bytes, else the largest tile (a multiple of 16, at
    least MIN_AUTO_TILE, which is used even when nothing fits) whose pass does."""
    if forward_bytes(width, h, w) <= budget:
        return None
    tile = max(h, w) // MULTIPLE * MULTIPLE
    while tile > MIN_AUTO_TILE and tiled_bytes(width, h, w, tile) > budget:
        tile -= MULTIPLE
    return tile


def available_memory(device: torch.device) -> int | None:
    """Bytes free for new tensors; None where it cannot be told.

    A CUDA GPU: its free memory plus what PyTorch's caching allocator holds reserved but unused (after
    the first large photo that cache is most of the memory, and the next photos reuse it). Anything
    else (the CPU; Apple's GPUs, which share the system's memory): the system's available memory
    (psutil: Linux, macOS, Windows) plus what this process's malloc holds free (fststyle.malloc)."""
    if device.type == "cuda":
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return torch.cuda.mem_get_info(device)[0] + cached
    try:
        import psutil

        return int(psutil.virtual_memory().available) + held_free()
    except Exception:  # a platform psutil cannot read (it raises its own errors): no budget rather than a crash
        return None


def memory_budget(max_memory: str | int | float | None, device: torch.device) -> int | None:
    """``max_memory`` in bytes: a number of bytes, a size such as ``2GB`` or ``512MB``, ``auto`` (half the
    available system memory, 80% of a GPU's free memory) or None / ``none`` (no budget: never tile
    without being asked)."""
    if max_memory is None or str(max_memory).lower() == "none":
        return None
    if str(max_memory).lower() == "auto":
        free = available_memory(device)
        return None if free is None else int(free * (0.8 if device.type == "cuda" else 0.5))
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(max_memory))
    if not match or match.group(2).lower() not in UNITS or float(match.group(1)) <= 0:
        raise ValueError(f"max_memory must be auto, none or a size such as 2GB or 512MB, got {max_memory!r}")
    return int(float(match.group(1)) * UNITS[match.group(2).lower()])


class ChannelMoments:
    """Per-channel mean and (biased) variance of a feature map seen in pieces (bands, tiles), summed in
    float64: the sums over a large image lose too much in float32 for the result to equal one pass."""

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None
        self.squares: torch.Tensor | None = None
        self.count = 0

    def add(self, piece: torch.Tensor) -> None:
        x = piece.double()
        part, part_squares = x.sum((0, 2, 3)), x.square().sum((0, 2, 3))
        self.total = part if self.total is None else self.total + part
        self.squares = part_squares if self.squares is None else self.squares + part_squares
        self.count += x.shape[-2] * x.shape[-1]

    def mean_and_variance(self) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.total / self.count
        return mean, (self.squares / self.count - mean.square()).clamp_min(0)
