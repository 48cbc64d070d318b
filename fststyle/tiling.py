"""Tiled inference for images too large for memory.

Instance norm normalizes by statistics of the whole image, so stylizing tiles independently would
give each tile its own colours. Here the statistics of every instance-norm layer are first measured
on the whole image (downscaled to ``stats_size`` on its long side when larger), then every tile is
normalized with those fixed statistics. Tiles start on multiples of the network's stride. Where tiles
overlap, each tile's outer ``margin`` pixels (the network's receptive radius, where its output depends
on the tile's border instead of the image) get no weight, and the rest of the overlap is blended with
linear ramps. So with the default overlap every output pixel comes from a tile that saw all of its
receptive field: the result equals an untiled run (up to float rounding) when the image fits into the
statistics pass, and otherwise differs only by the statistics of the downscaled image.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


@contextmanager
def global_instance_stats(net: nn.Module, image: torch.Tensor) -> Iterator[None]:
    """Inside the block, every InstanceNorm2d of ``net`` uses the statistics that ``image``
    (1, 3, H, W) produced, whatever its input."""
    norms = [m for m in net.modules() if isinstance(m, nn.InstanceNorm2d)]
    stats: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}

    def measure(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0].float()
        stats[module] = (x.mean((2, 3), keepdim=True), x.var((2, 3), keepdim=True, unbiased=False))

    handles = [m.register_forward_pre_hook(measure) for m in norms]
    try:
        net(image)
    finally:
        for h in handles:
            h.remove()

    def normalize(module: nn.InstanceNorm2d, args: tuple[torch.Tensor, ...], _: torch.Tensor) -> torch.Tensor:
        mean, var = stats[module]
        x = (args[0].float() - mean) / torch.sqrt(var + module.eps)
        if module.affine:
            x = x * module.weight.view(1, -1, 1, 1) + module.bias.view(1, -1, 1, 1)
        return x.to(args[0].dtype)

    handles = [m.register_forward_hook(normalize) for m in norms]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


# The network downsamples by 4: a tile must start on a multiple of 4 to see the same sampling grid as
# the whole image (otherwise its strided convolutions sample other pixels and its output shifts).
STRIDE = 4


def _spans(size: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """(start, end) of the tiles along one axis: starts on multiples of STRIDE, the last tile ends at
    ``size`` (it may be up to STRIDE - 1 px longer than ``tile``)."""
    if size <= tile:
        return [(0, size)]
    step = max(STRIDE, (tile - overlap) // STRIDE * STRIDE)
    last = (size - tile) // STRIDE * STRIDE
    return [(s, s + tile) for s in range(0, last, step)] + [(last, size)]


def _ramp(length: int, overlap: int, margin: int, fade_in: bool, fade_out: bool, device: torch.device) -> torch.Tensor:
    """A tile's weights along one axis: 0 over its first/last ``margin`` px where it overlaps a
    neighbour, then a linear ramp to 1 over the rest of the overlap."""
    w = torch.ones(length, device=device)
    ramp = torch.linspace(0, 1, overlap - 2 * margin + 2, device=device)[1:-1]  # strictly inside (0, 1)
    if fade_in and overlap:
        w[:margin] = 0
        w[margin : overlap - margin] = ramp
    if fade_out and overlap:
        w[length - overlap + margin : length - margin] = ramp.flip(0)
        w[length - margin :] = 0
    return w


def default_overlap(tile: int, radius: int) -> int:
    """Twice the receptive radius plus a 16 px blend where the tile allows (tile >= 4 x radius + 32:
    256 px for the default network), else as much as it allows (tile / 2)."""
    return min(tile // 2, max(tile // 3, 2 * radius + 16))


def stylize_tiled(
    net: nn.Module,
    image: torch.Tensor,
    tile: int,
    overlap: int | None = None,
    stats_size: int = 1024,
    run: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Stylize (1, 3, H, W) ``image`` in ``tile`` x ``tile`` pieces overlapping by ``overlap`` px
    (default: default_overlap). ``run`` calls the network (default ``net``), e.g. compiled or under
    autocast."""
    run = net if run is None else run
    radius = getattr(net, "receptive_radius", 0)
    overlap = default_overlap(tile, radius) if overlap is None else overlap
    if tile < 32 or not 0 <= overlap <= tile // 2:
        raise ValueError(f"tile must be >= 32 px and overlap at most tile/2, got tile={tile}, overlap={overlap}")
    margin = min(radius, max(0, overlap - 8) // 2)  # keep a blend of 8 px or more
    _, _, h, w = image.shape
    scale = min(1.0, stats_size / max(h, w))
    small = image if scale == 1.0 else F.interpolate(image, scale_factor=scale, mode="area")
    out = torch.zeros_like(image, dtype=torch.float32)
    weight = torch.zeros((1, 1, h, w), device=image.device)
    with global_instance_stats(net, small):
        for y0, y1 in _spans(h, tile, overlap):
            for x0, x1 in _spans(w, tile, overlap):
                piece = run(image[..., y0:y1, x0:x1]).float()
                wy = _ramp(y1 - y0, overlap, margin, y0 > 0, y1 < h, image.device)
                wx = _ramp(x1 - x0, overlap, margin, x0 > 0, x1 < w, image.device)
                mask = (wy[:, None] * wx[None, :])[None, None]
                out[..., y0:y1, x0:x1] += piece * mask
                weight[..., y0:y1, x0:x1] += mask
    return out / weight
