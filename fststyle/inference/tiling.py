"""Tiled inference for images too large for memory, equal to the untiled result.

Two things make a tile's output differ from the same region of an untiled run, and both are undone:

- Instance norm normalizes by statistics of the whole image. Every tile is normalized with the whole
  image's statistics instead of its own: measured in one pass when the image is small enough
  (``stats_size``), else in tiled passes, one per instance-norm layer, each accumulating that layer's
  input over the tiles' non-overlapping cores with the layers before it already fixed. That costs
  several forward passes (about 7) but never holds more than a tile.
- Near a tile's border the network sees the tile's edge instead of the image. An output pixel depends
  on input pixels up to the network's receptive radius away (57 px for the default network), so where
  tiles overlap, each tile's outer ``margin`` pixels get no weight and the rest of the overlap is
  blended with linear ramps.

The image is padded once to a multiple of 16 (as the network pads it) and tiles are multiples of 16
long and start on multiples of 16, so every tile sees the untiled run's sampling grid and padding.

When to tile, and with which tile: ``fststyle.inference.memory`` (the working memory of a pass against a budget).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from fststyle.inference.memory import ChannelMoments
from fststyle.net import MULTIPLE, InstanceNorm2d, pad_amount

Stats = dict[nn.Module, tuple[torch.Tensor, torch.Tensor]]

# The network pads its input to a multiple of 16 and downsamples by 4: tiles that are multiples of 16
# and start on one see exactly what the whole padded image shows it.
ALIGN = MULTIPLE
MIN_TILE = 32  # px: a tile holds at least two aligned blocks

def instance_norms(net: nn.Module) -> list[InstanceNorm2d]:
    """The instance-norm layers in the order the forward pass meets them (their registration order)."""
    return [m for m in net.modules() if isinstance(m, InstanceNorm2d)]


def measure_instance_stats(net: nn.Module, image: torch.Tensor, style: torch.Tensor | None = None) -> Stats:
    """Mean and variance of every instance-norm layer's input, per channel, in one pass over ``image``
    (with ``style``, the style weights, for a network of several styles)."""
    stats: Stats = {}

    def measure(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0].float()
        stats[module] = (x.mean((2, 3), keepdim=True), x.var((2, 3), keepdim=True, unbiased=False))

    handles = [m.register_forward_pre_hook(measure) for m in instance_norms(net)]
    try:
        net(image) if style is None else net(image, style)
    finally:
        for h in handles:
            h.remove()
    return stats


@contextmanager
def fixed_instance_stats(net: nn.Module, stats: Stats) -> Iterator[None]:
    """Inside the block, every instance-norm layer of ``net`` that ``stats`` holds normalizes with
    those statistics, whatever its input (InstanceNorm2d.fixed)."""
    norms = [m for m in instance_norms(net) if m in stats]
    before = [m.fixed for m in norms]
    for m in norms:
        m.fixed = stats[m]
    try:
        yield
    finally:
        for m, fixed in zip(norms, before):
            m.fixed = fixed


def _spans(size: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """(start, end) of the tiles along one axis of a ``size`` that is a multiple of ALIGN: starts on
    multiples of ALIGN, each tile ``tile`` long (a multiple of ALIGN), the last one ending at ``size``."""
    if size <= tile:
        return [(0, size)]
    step = max(ALIGN, (tile - overlap) // ALIGN * ALIGN)
    return [(s, s + tile) for s in range(0, size - tile, step)] + [(size - tile, size)]


def _cores(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """A partition of the axis into one core per tile: the tiles meet in the middle of each overlap
    (on a multiple of 4, so that the cores map onto the 1/2 and 1/4 resolution feature maps)."""
    bounds = [0] + [(start + end) // 2 // 4 * 4 for (_, end), (start, _) in zip(spans, spans[1:])] + [spans[-1][1]]
    return list(zip(bounds, bounds[1:]))


class _Reached(Exception):
    """Ends a forward pass at the layer whose input is wanted."""

    def __init__(self, features: torch.Tensor):
        self.features = features


def tiled_instance_stats(net: nn.Module, padded: torch.Tensor, tile: int, overlap: int, style: torch.Tensor | None = None) -> Stats:
    """The statistics an untiled pass over ``padded`` (H and W multiples of ALIGN) would give, from
    tiled passes: layer by layer, each layer's input summed over the tiles' cores (which the default
    overlap keeps a receptive radius away from every tile edge), the earlier layers' statistics fixed."""
    _, _, h, w = padded.shape
    rows, cols = _spans(h, tile, overlap), _spans(w, tile, overlap)
    stats: Stats = {}
    for norm in instance_norms(net):
        moments = ChannelMoments()

        def reach(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            raise _Reached(args[0])

        handle = norm.register_forward_pre_hook(reach)
        try:
            with fixed_instance_stats(net, stats):
                for (y0, y1), (cy0, cy1) in zip(rows, _cores(rows)):
                    for (x0, x1), (cx0, cx1) in zip(cols, _cores(cols)):
                        try:
                            piece = padded[..., y0:y1, x0:x1]
                            net(piece) if style is None else net(piece, style)
                            raise RuntimeError(f"{norm} was not reached")  # an instance norm outside the forward pass
                        except _Reached as reached:
                            features = reached.features
                        scale = (y1 - y0) // features.shape[-2]
                        moments.add(features[..., (cy0 - y0) // scale : (cy1 - y0) // scale, (cx0 - x0) // scale : (cx1 - x0) // scale])
        finally:
            handle.remove()
        mean, variance = moments.mean_and_variance()
        stats[norm] = (mean.float().view(1, -1, 1, 1), variance.float().view(1, -1, 1, 1))
    return stats


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
    272 px for the default network), else as much as it allows (tile / 2)."""
    return min(tile // 2, max(tile // 3, 2 * radius + 16))


def stylize_tiled(
    net: nn.Module,
    image: torch.Tensor,
    tile: int,
    overlap: int | None = None,
    stats_size: int = 1024,
    run: Callable[..., torch.Tensor] | None = None,
    style: torch.Tensor | None = None,
) -> torch.Tensor:
    """Stylize (1, 3, H, W) ``image`` in pieces of ``tile`` x ``tile`` px (rounded down to a multiple
    of 16) overlapping by ``overlap`` px (default: default_overlap). Images whose long side is at most
    ``stats_size`` get their instance-norm statistics in one untiled pass, larger ones in tiled passes.
    ``run`` calls the network for the tiles (default ``net``), e.g. compiled; the statistics passes
    use ``net`` itself. ``style``: the style weights (1, styles) for a network of several styles."""
    run = net if run is None else run
    radius = getattr(net, "receptive_radius", 0)
    tile = tile // ALIGN * ALIGN
    overlap = default_overlap(tile, radius) if overlap is None else overlap
    if tile < MIN_TILE or not 0 <= overlap <= tile // 2:
        raise ValueError(f"tile must be >= {MIN_TILE} px and overlap at most tile/2, got tile={tile}, overlap={overlap}")
    margin = min(radius, max(0, overlap - 8) // 2)  # keep a blend of 8 px or more
    _, _, h, w = image.shape
    padded = F.pad(image, (0, pad_amount(w), 0, pad_amount(h)), mode="replicate")
    ph, pw = padded.shape[-2:]
    if max(h, w) <= stats_size:
        stats = measure_instance_stats(net, padded, style)
    else:
        stats = tiled_instance_stats(net, padded, tile, overlap, style)
    out = torch.zeros((1, 3, ph, pw), dtype=torch.float32, device=image.device)
    weight = torch.zeros((1, 1, ph, pw), device=image.device)
    with fixed_instance_stats(net, stats):
        for y0, y1 in _spans(ph, tile, overlap):
            for x0, x1 in _spans(pw, tile, overlap):
                piece = padded[..., y0:y1, x0:x1]
                piece = (run(piece) if style is None else run(piece, style)).float()
                wy = _ramp(y1 - y0, overlap, margin, y0 > 0, y1 < ph, image.device)
                wx = _ramp(x1 - x0, overlap, margin, x0 > 0, x1 < pw, image.device)
                mask = (wy[:, None] * wx[None, :])[None, None]
                out[..., y0:y1, x0:x1] += piece * mask
                weight[..., y0:y1, x0:x1] += mask
    return (out / weight)[..., :h, :w]
