"""The training objective as a training run builds it: from a config's loss group and the paintings,
or from the metadata a model file records (for judging a model by the objective it was trained on).
The losses themselves are in fststyle.losses."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from fststyle.images import load_tensor
from fststyle.losses import PerceptualLoss, gram
from fststyle.styles import PAINTINGS, recorded_painting
from fststyle.vgg import LossNetwork

STYLE_NORMS = ("none", "gram")


NORM_REFERENCE = ("starry_night.jpg", 512)  # loss.style_norm=gram: the painting (packaged) and size every style is scaled to


def gram_magnitudes(network: LossNetwork, image: torch.Tensor, layers: list[str]) -> list[float]:
    """The mean square of each layer's Gram matrix of ``image``: the scale of that layer's style loss."""
    with torch.no_grad():
        feats = network(image, layers)
    return [float(gram(feats[layer]).pow(2).mean()) for layer in layers]


def painting_weight(entry: dict | DictConfig) -> float:
    """A painting's own style weight (its style config's ``weight``; 1 when it has none), which multiplies
    loss.style_weight for that painting. ValueError unless it is a finite number > 0."""
    weight = entry.get("weight", 1.0)
    if weight is None:
        return 1.0
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
        raise ValueError(f"style {entry.get('name')}: weight must be a number > 0, got {weight}")
    return float(weight)


def painting_loss(loss: dict | DictConfig, weight: float) -> DictConfig:
    """The loss group for one painting of that ``weight``: loss.style_weight times it (the objective a
    one-style criterion of this painting optimizes, and what a reference's cache key records)."""
    loss = OmegaConf.create(OmegaConf.to_container(loss, resolve=True) if isinstance(loss, DictConfig) else dict(loss))
    loss.style_weight = float(loss.style_weight) * weight
    return loss


def build_criterion(cfg: DictConfig, style_image: torch.Tensor | list[torch.Tensor],
                    painting_weights: list[float] | None = None) -> PerceptualLoss:
    """The training loss of ``cfg`` (the loss group) against one style image or several, each painting's
    style layers scaled by its own weight (``painting_weights``, one per image; default 1 each)."""
    layers = list(dict.fromkeys([*cfg.content_layers, *cfg.style_layers]))
    network = LossNetwork(cfg.arch, layers, str(cfg.weights), cfg.input_norm)
    style_layers = list(cfg.style_layers)
    images = [style_image] if isinstance(style_image, torch.Tensor) else style_image
    base = list(cfg.style_layer_weights) if cfg.style_layer_weights is not None else [1.0] * len(style_layers)
    rows = [base] * len(images)
    norm = cfg.get("style_norm", "none")
    if norm not in STYLE_NORMS:
        raise ValueError(f"loss.style_norm={norm} is not one of {', '.join(STYLE_NORMS)}")
    if norm == "gram" and len(base) == len(style_layers):
        # Paintings' Grams differ in magnitude by up to 10x per layer, so one style_weight means another
        # strength for each. Scaled per layer to the reference painting's magnitude, weight 1 means the
        # strength it has for the reference (Starry Night) for every painting.
        name, size = NORM_REFERENCE
        reference = gram_magnitudes(network, load_tensor(PAINTINGS / name, size)[None], style_layers)
        rows = [[w * r / max(t, 1e-12) for w, r, t in zip(base, reference, gram_magnitudes(network, image, style_layers))]
                for image in images]
    rows = [[w * scale for w in row] for row, scale in zip(rows, painting_weights or [1.0] * len(images), strict=True)]
    weights = rows[0] if isinstance(style_image, torch.Tensor) else rows
    return PerceptualLoss(
        network,
        style_image,
        content_layers=list(cfg.content_layers),
        style_layers=style_layers,
        style_layer_weights=weights,
        content_weight=cfg.content_weight,
        style_weight=cfg.style_weight,
        tv_weight=cfg.tv_weight,
    )


def load_style_image(path: Path, size: int) -> torch.Tensor:
    try:
        return load_tensor(path, size)[None]
    except Exception as err:  # a corrupt download or a file that is no image
        raise ValueError(f"style image {path} cannot be read ({err}); check style.image") from err


def held_styles(metadata: dict) -> list[dict]:
    """The styles a model holds, as recorded in its metadata (name, image, sha256, size and the painting's
    own weight each; models from before painting weights have none: 1)."""
    if metadata.get("styles"):
        return [dict(entry) for entry in metadata["styles"]]
    return [{"name": metadata.get("style_name"), "image": metadata.get("style_image"), "sha256": metadata.get("style_sha256"),
             "size": metadata.get("style_size"), "weight": metadata.get("style_weight", 1.0)}]


@dataclass(frozen=True)
class ModelObjective:
    """What a model was trained against for one painting: its metadata entry, the painting's file, the loss
    group at the painting's own weight and the size its Grams are taken at."""

    entry: dict
    painting: Path
    loss: DictConfig
    style_size: int

    def criterion(self) -> PerceptualLoss:
        return build_criterion(self.loss, load_style_image(self.painting, self.style_size))


def model_objective(metadata: dict, style: str | None = None, style_cache: str | Path = "data/styles") -> ModelObjective:
    """The objective a model records for ``style`` (a model of several styles), else for its first painting.
    Raises ValueError for a style the model does not hold."""
    entries = held_styles(metadata)
    entry = next((e for e in entries if style is None or e["name"] == style), None)
    if entry is None:
        raise ValueError(f"style {style}: the model holds {', '.join(e['name'] for e in entries)}")
    painting = recorded_painting(entry["image"], entry["name"], entry.get("sha256"), style_cache)  # metadata: untrusted
    return ModelObjective(entry, painting, painting_loss(metadata["loss"], painting_weight(entry)), entry.get("size") or 512)


def model_criterion(metadata: dict, style: str | None = None, style_cache: str | Path = "data/styles") -> PerceptualLoss:
    """The training objective a model was trained on (model_objective) as a criterion."""
    return model_objective(metadata, style, style_cache).criterion()
