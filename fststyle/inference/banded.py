"""Exact inference of a whole image in row bands: the untiled result in a fraction of its memory.

An untiled pass holds about ten full-size feature maps at once (``fststyle.inference.memory.forward_bytes``).
Here the network runs layer by layer over the whole image, each layer computed in horizontal bands
of rows: a band of a layer's output needs only the rows of its input within the kernel's reach (a
few rows of halo), and reflection padding at the image's top and bottom is the same reflection the
untiled pass makes. Instance-norm statistics are summed over the bands before the layer's output is
normalized, so every pixel gets exactly the whole image's statistics.

Feature maps at a quarter or half of the resolution are stored whole (three at most: about 3 x
``width`` bytes per pixel, 96 for the default network, a tenth of an untiled pass); the two
full-resolution layers are never stored: their bands are recomputed for the statistics pass and
the output pass. So memory is those maps plus one band, and the extra work is two recomputed
full-resolution convolutions (about 1.3 passes in all).

Works for the default architecture (instance norm, nearest-neighbour upsampling); other networks
use tiles (``fststyle.inference.tiling``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fststyle.inference.memory import FORWARD_COPIES, ChannelMoments
from fststyle.net import ConditionalInstanceNorm2d, ConvLayer, ResidualBlock, TransformerNet, normalizing_affine, pad_amount

Rows = tuple[int, int]


class _Source:
    """A feature map that yields any band of its rows: (1, C, b - a, W) for rows [a, b)."""

    height: int

    def rows(self, a: int, b: int) -> torch.Tensor:
        raise NotImplementedError


class _Stored(_Source):
    def __init__(self, tensor: torch.Tensor):
        self.tensor, self.height = tensor, tensor.shape[-2]

    def rows(self, a: int, b: int) -> torch.Tensor:
        return self.tensor[..., a:b, :]


class _Conv(_Source):
    """A ConvLayer (reflection padding + convolution) over ``source``, band by band."""

    def __init__(self, source: _Source, layer: ConvLayer):
        self.source, self.conv = source, layer[1]
        self.pad = layer[0].padding[0]
        k, s = self.conv.kernel_size[0], self.conv.stride[0]
        self.height = (source.height + 2 * self.pad - k) // s + 1

    def rows(self, a: int, b: int) -> torch.Tensor:
        k, s, p = self.conv.kernel_size[0], self.conv.stride[0], self.pad
        lo, hi = a * s - p, (b - 1) * s + k - p  # input rows needed, in unpadded coordinates
        x = self.source.rows(max(lo, 0), min(hi, self.source.height))
        x = F.pad(x, (p, p, max(0, -lo), max(0, hi - self.source.height)), mode="reflect")
        return F.conv2d(x, self.conv.weight, self.conv.bias, stride=s)


class _Up(_Source):
    """Nearest-neighbour 2x upsampling of ``source``."""

    def __init__(self, source: _Source):
        self.source, self.height = source, 2 * source.height

    def rows(self, a: int, b: int) -> torch.Tensor:
        x = self.source.rows(a // 2, (b - 1) // 2 + 1)
        x = x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
        start = a - 2 * (a // 2)
        return x[..., start : start + b - a, :]


class _Norm(_Source):
    """Instance norm of ``source`` with given statistics (scale and shift), then ReLU if asked."""

    def __init__(self, source: _Source, scale: torch.Tensor, shift: torch.Tensor, relu: bool):
        self.source, self.height, self.scale, self.shift, self.relu = source, source.height, scale, shift, relu

    def rows(self, a: int, b: int) -> torch.Tensor:
        y = self.source.rows(a, b) * self.scale + self.shift
        return y.clamp_min_(0) if self.relu else y


def _bands(height: int, band: int) -> list[Rows]:
    return [(a, min(a + band, height)) for a in range(0, height, band)]


def _statistics(source: _Source, band: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (biased) variance over all rows."""
    moments = ChannelMoments()
    for a, b in _bands(source.height, band):
        moments.add(source.rows(a, b))
    return moments.mean_and_variance()


def _materialize(source: _Source, band: int) -> torch.Tensor:
    first = source.rows(0, min(band, source.height))
    out = first.new_empty((*first.shape[:2], source.height, first.shape[-1]))
    out[..., : first.shape[-2], :] = first
    for a, b in _bands(source.height, band)[1:]:
        out[..., a:b, :] = source.rows(a, b)
    return out


def _affine(norm: nn.Module, mean: torch.Tensor, var: torch.Tensor, style: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The scale and shift, (1, C, 1, 1) each, that normalize with (mean, var) and apply ``norm``'s
    own (or, conditional, the style-weighted) scale and shift."""
    if isinstance(norm, ConditionalInstanceNorm2d):
        return normalizing_affine(mean, var, norm.norm.eps, *norm.mixed(style))
    return normalizing_affine(mean, var, norm.eps, *((norm.weight, norm.bias) if norm.affine else ()))


def _normalize(stored: torch.Tensor, norm: nn.Module, style: torch.Tensor | None, relu: bool, band: int) -> torch.Tensor:
    """Instance norm (+ ReLU) of a stored map, in place, band by band."""
    source = _Stored(stored)
    normalized = _Norm(source, *_affine(norm, *_statistics(source, band), style), relu)
    for a, b in _bands(stored.shape[-2], band):
        stored[..., a:b, :] = normalized.rows(a, b)
    return stored


def supports(net: nn.Module) -> bool:
    """Whether ``net`` has the layers this module knows: a TransformerNet with instance norms and
    nearest-neighbour upsampling."""
    if not isinstance(net, TransformerNet):
        return False
    return not any(isinstance(m, (nn.BatchNorm2d, nn.ConvTranspose2d)) for m in net.modules())


def stored_bytes(width: int, h: int, w: int) -> int:
    """The stored maps at their peak (three of 4 x ``width`` channels at a quarter of the resolution:
    3 x width bytes per pixel of float32) plus the padded input and the output (24 bytes per pixel)."""
    pixels = (h + pad_amount(h)) * (w + pad_amount(w))
    return (3 * width + 24) * pixels


def band_bytes(width: int, w: int, rows: int) -> int:
    """The working memory of a band of ``rows`` full-resolution rows (as much per pixel as a forward
    pass's: fststyle.inference.memory.FORWARD_COPIES maps of ``width`` channels)."""
    return FORWARD_COPIES * width * 4 * rows * (w + pad_amount(w))


@torch.no_grad()
def stylize_banded(net: TransformerNet, image: torch.Tensor, band: int, style: torch.Tensor | None = None) -> torch.Tensor:
    """``net(image)`` for one image (1, 3, H, W), computed layer by layer in bands of ``band``
    full-resolution rows (at least 16); ``style``: the style weights (1, styles) of a network of several."""
    if not supports(net) or image.shape[0] != 1:
        raise ValueError("banded inference takes one image and a network with instance norms and nearest upsampling")
    band = max(16, band)
    h, w = image.shape[-2:]
    x = F.pad(image.float(), (0, pad_amount(w), 0, pad_amount(h)), mode="replicate")

    def rows(scale: int) -> int:  # a band's rows at 1/scale of the resolution
        return max(4, band // scale)

    first, second, third = net.encoder
    conv1 = _Conv(_Stored(x), first[0])  # full resolution: streamed twice, never stored
    layer1 = _Norm(conv1, *_affine(first[1], *_statistics(conv1, band), style), relu=True)
    m = _normalize(_materialize(_Conv(layer1, second[0]), rows(2)), second[1], style, True, rows(2))
    del x, conv1, layer1  # the padded photo is no longer needed
    m = _normalize(_materialize(_Conv(_Stored(m), third[0]), rows(4)), third[1], style, True, rows(4))
    for block in net.residuals:
        assert isinstance(block, ResidualBlock)
        (conv_a, norm_a, _), conv_b, norm_b = block.body
        c = _normalize(_materialize(_Conv(_Stored(m), conv_a), rows(4)), norm_a, style, True, rows(4))
        c = _normalize(_materialize(_Conv(_Stored(c), conv_b), rows(4)), norm_b, style, False, rows(4))
        m += c
        del c
    up1, up2, last = net.decoder
    m = _normalize(_materialize(_Conv(_Up(_Stored(m)), up1[1]), rows(2)), up1[2], style, True, rows(2))
    conv2 = _Conv(_Up(_Stored(m)), up2[1])  # full resolution again: streamed twice
    layer2 = _Norm(conv2, *_affine(up2[2], *_statistics(conv2, band), style), relu=True)
    out = _materialize(_Conv(layer2, last), band)
    return torch.sigmoid(out[..., :h, :w])
