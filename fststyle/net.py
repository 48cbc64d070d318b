"""The transformer network of Johnson et al. 2016: a residual encoder/decoder.

Images in and out are RGB floats in [0, 1]. The last convolution produces unbounded values that a
sigmoid maps into (0, 1): unlike clamping it keeps a gradient everywhere, and unlike Johnson's scaled
tanh it needs no knowledge of the loss network's pixel range.

With ``num_styles`` > 1 the network holds several styles (Dumoulin et al. 2017): every instance norm
is conditional, one scale and shift per style, all other weights shared. ``forward(x, style)`` then
takes the styles' weights, (N, num_styles) rows summing to 1: a one-hot row picks a style, other rows
blend the styles' scales and shifts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("instance", "batch")
UPSAMPLES = ("nearest", "transpose")

# Padding so that any input works: the encoder halves the size twice (a multiple of 4 comes back
# exactly) and reflection padding needs feature maps larger than the pad (9x9 conv: 4 px; at the
# residual blocks' 1/4 scale: 1 px), so at least 16 px. Rounding up to a multiple of 16 gives both
# with integer arithmetic alone: a separate minimum (a max()) made torch.compile's symbolic shape
# reasoning about 4x slower, and Python branches or modulo break traced, exported or compiled graphs.
MULTIPLE = 16

# The network's pixel grid: its two stride-2 stages place every output pixel at one of GRID x GRID places, and
# what it paints can repeat every GRID px (fststyle.evaluation.metrics.grid_peak, the grid training motion).
GRID = 4

# The receptive radius without residual blocks (each adds 8 px), by upsampling (TransformerNet.receptive_radius).
_RADIUS_BASE = {"nearest": 17, "transpose": 14}


def pad_amount(size: int | torch.SymInt | torch.Tensor) -> int | torch.SymInt | torch.Tensor:
    """Padding that rounds ``size`` up to a multiple of 16. ``size`` is an int (eager), a SymInt
    (torch.export, torch.compile) or a tensor (torch.jit.trace): the graphs stay dynamic in it."""
    return (size + MULTIPLE - 1) // MULTIPLE * MULTIPLE - size


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether ``x`` (N, C, H, W) is a CPU tensor stored channels last (and not also channels first, as for
    one channel). On GPUs, whose instance norm is one kernel for the whole batch, layouts stay as they were:
    this path is measured on CPUs only."""
    return x.is_cpu and x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def instance_norm_channels_last(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float) -> torch.Tensor:
    """Instance norm of a channels-last ``x`` that stays channels last, with a scale and shift per channel,
    (C,), or per image and channel, (N, C); None for none. The built-in instance norm returns channels
    first, so a channels-last network converted every feature map twice around each convolution: on the
    CPU, where oneDNN's bfloat16 convolutions want channels last, half of a 1024 px pass. For one image,
    instance norm is batch norm with the batch's own statistics, which the CPU computes in either layout
    and in one pass with the scale and shift."""
    n = len(x)
    weights = [None] * n if weight is None else weight.expand(n, -1)
    biases = [None] * n if bias is None else bias.expand(n, -1)
    out = [F.batch_norm(image, None, None, w, b, True, 0.0, eps) for image, w, b in zip(x.split(1), weights, biases)]
    return out[0] if n == 1 else torch.cat(out)


def normalizing_affine(mean: torch.Tensor, var: torch.Tensor, eps: float, scale: torch.Tensor | None = None,
                       shift: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The one multiply-add, (1 or N, C, 1, 1) float32 each, that normalizes with a given per-channel
    ``mean`` and ``var`` ((C,) or (1 or N, C, 1, 1)) and then applies ``scale`` and ``shift`` ((C,) or
    (N, C); None: 1 and 0): instance norm with statistics computed elsewhere (tiles', bands'). Folded in
    float64, so that a mean large against the spread loses nothing to the fold."""
    mean, var = (t.double() if t.dim() == 4 else t.double().reshape(1, -1, 1, 1) for t in (mean, var))
    folded = 1 / torch.sqrt(var + eps)
    if scale is not None:
        folded = _per_channel(scale).double() * folded
    offset = -mean * folded
    if shift is not None:
        offset = offset + _per_channel(shift).double()
    return folded.float(), offset.float()


class InstanceNorm2d(nn.InstanceNorm2d):
    """nn.InstanceNorm2d that also takes a scale and shift per image and channel, (N, C), in place of its
    own (the conditional norm's), and keeps a channels-last input channels last
    (instance_norm_channels_last). While ``fixed`` holds a mean and a variance per channel, it normalizes
    with them instead of its input's own: tiled inference's statistics of the whole picture
    (fststyle.inference.tiling)."""

    fixed: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor, scale: torch.Tensor | None = None, shift: torch.Tensor | None = None) -> torch.Tensor:
        own = scale is None
        if own and self.affine:
            scale, shift = self.weight, self.bias
        if self.fixed is not None:
            folded, offset = normalizing_affine(*self.fixed, self.eps, scale, shift)
            return (x.float() * folded + offset).to(x.dtype)
        if is_channels_last(x):
            return instance_norm_channels_last(x, *(None if t is None else t.to(x.dtype) for t in (scale, shift)), self.eps)
        if own:
            return super().forward(x)
        return super().forward(x) * _per_channel(scale).to(x.dtype) + _per_channel(shift).to(x.dtype)


def _per_channel(t: torch.Tensor) -> torch.Tensor:
    """A scale or shift, (C,) or (N, C), shaped to multiply feature maps: (1 or N, C, 1, 1)."""
    return t.reshape(-1, t.shape[-1], 1, 1)


class ConditionalInstanceNorm2d(nn.Module):
    """Instance norm with a scale and shift per style (``weight``, ``bias``: (num_styles, C)), mixed by
    the style weights given to ``forward``. The normalization itself is an inner InstanceNorm2d without
    affine parameters, given the mixed scale and shift."""

    def __init__(self, channels: int, num_styles: int):
        super().__init__()
        self.norm = InstanceNorm2d(channels, affine=False)
        self.weight = nn.Parameter(torch.ones(num_styles, channels))
        self.bias = nn.Parameter(torch.zeros(num_styles, channels))

    def forward(self, x: torch.Tensor, style: torch.Tensor | None) -> torch.Tensor:
        if style is None:
            raise ValueError("this network holds several styles: give the style weights, (N, num_styles)")
        return self.norm(x, *self.mixed(style))

    def mixed(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The scale and shift, (N, C) each, of the styles' weights ``style``, (N, num_styles)."""
        return style.to(self.weight) @ self.weight, style.to(self.bias) @ self.bias


def make_norm(kind: str, channels: int, num_styles: int = 1) -> nn.Module:
    """The one place where normalization layers are built."""
    if kind == "instance" and num_styles > 1:
        return ConditionalInstanceNorm2d(channels, num_styles)
    if num_styles > 1:
        raise ValueError(f"several styles need model.norm=instance (conditional instance norm), not {kind}")
    if kind == "instance":
        return InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"unknown model.norm={kind!r}; choose one of {', '.join(NORMS)}")


class Styled(nn.Sequential):
    """A sequence whose members that depend on the style (conditional norms, and sequences or blocks
    holding them) get the style weights; the others only the features."""

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        for module in self:
            x = module(x, style) if isinstance(module, (Styled, ResidualBlock, ConditionalInstanceNorm2d)) else module(x)
        return x


class ConvLayer(nn.Sequential):
    """Reflection padding + convolution, so that borders see image content, not zeros.

    Convolutions followed by a norm layer have no bias: the norm removes it, so its gradient is zero
    up to rounding, which Adam would amplify into random drift."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, bias: bool = True):
        super().__init__(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(cin, cout, kernel, stride, bias=bias))


class ConvNormReLU(Styled):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, norm: str, num_styles: int = 1):
        super().__init__(ConvLayer(cin, cout, kernel, stride, bias=False), make_norm(norm, cout, num_styles), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: str, num_styles: int = 1):
        super().__init__()
        self.body = Styled(
            ConvNormReLU(channels, channels, 3, 1, norm, num_styles),
            ConvLayer(channels, channels, 3, bias=False),
            make_norm(norm, channels, num_styles),
        )

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        return x + self.body(x, style)


class _NearestUp2x(torch.autograd.Function):
    """Nearest 2x upsampling whose gradient sums each 2x2 block with avg_pool2d (x 4). torch.compile
    turns the built-in gradient into a scatter with atomic adds: 0.56 ms a call at batch 4 on an H200,
    a tenth of the step's GPU time (profile of 2026-12-04, benchmarks/)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest")

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(grad, 2) * 4


class NearestUpsample2x(nn.Upsample):
    """nn.Upsample(scale_factor=2, mode="nearest") (exports and counts as one) with the faster
    gradient of _NearestUp2x while training; in eval mode (inference, every export, tracing) it is
    nn.Upsample itself."""

    def __init__(self):
        super().__init__(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _NearestUp2x.apply(x) if self.training and torch.is_grad_enabled() else super().forward(x)


class Upsample(Styled):
    """2x upsampling: nearest neighbour + conv (no checkerboard artifacts) or a transposed conv."""

    def __init__(self, cin: int, cout: int, mode: str, norm: str, num_styles: int = 1):
        if mode == "nearest":
            layers = [NearestUpsample2x(), ConvLayer(cin, cout, 3, bias=False)]
        elif mode == "transpose":
            layers = [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1, bias=False)]
        else:
            raise ValueError(f"unknown model.upsample={mode!r}; choose one of {', '.join(UPSAMPLES)}")
        super().__init__(*layers, make_norm(norm, cout, num_styles), nn.ReLU(inplace=True))


class TransformerNet(nn.Module):
    """Johnson et al. 2016 style network: 9x9 conv, two stride-2 convs, residual blocks, two 2x
    upsamplings and a 9x9 conv to RGB. ``width`` is the first layer's channel count (32 in the paper);
    the deeper stages use 2x and 4x that.

    ``forward`` takes RGB in [0, 1] of any size (N, 3, H, W) and returns RGB in (0, 1) of exactly the
    same size: the input is padded (replicating its border) to a multiple of 16 px, and the output is
    cropped back.
    """

    def __init__(self, width: int = 32, num_residual: int = 5, norm: str = "instance", upsample: str = "nearest", num_styles: int = 1):
        super().__init__()
        if width < 1 or num_residual < 0 or num_styles < 1:
            raise ValueError(f"model.width and num_styles must be >= 1 and model.num_residual >= 0, got {width}, {num_styles}, {num_residual}")
        self.num_styles, self.width, self.upsample = num_styles, width, upsample
        c1, c2, c3 = width, 2 * width, 4 * width
        self.encoder = Styled(
            ConvNormReLU(3, c1, 9, 1, norm, num_styles),
            ConvNormReLU(c1, c2, 3, 2, norm, num_styles),
            ConvNormReLU(c2, c3, 3, 2, norm, num_styles),
        )
        self.residuals = Styled(*(ResidualBlock(c3, norm, num_styles) for _ in range(num_residual)))
        self.decoder = Styled(
            Upsample(c3, c2, upsample, norm, num_styles),
            Upsample(c2, c1, upsample, norm, num_styles),
            ConvLayer(c1, 3, 9),
        )

    @property
    def receptive_radius(self) -> int:
        """How far (px) from an output pixel the input pixels that it depends on can lie, apart from
        instance norm's image-wide statistics: 8 per residual block plus 17 (nearest upsampling) or 14
        (transposed); 57 for the default. The reach depends on a pixel's place on the
        network's 4-px grid; this is the farthest over the four places (measured by perturbing one pixel,
        tests/test_net.py). Tiled inference discards this much at tile edges."""
        return _RADIUS_BASE[self.upsample] + 8 * len(self.residuals)

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        x = F.pad(x, (0, pad_amount(w), 0, pad_amount(h)), mode="replicate")
        y = self.decoder(self.residuals(self.encoder(x, style), style), style)
        return torch.sigmoid(y[..., :h, :w])
