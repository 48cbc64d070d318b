"""Changing a network before it trains: a warm start from another model (``init=``), styles added to a
trained model, everything but the new styles' scales and shifts frozen (``train=norms``)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from fststyle.net import ConditionalInstanceNorm2d, TransformerNet

log = logging.getLogger(__name__)


def conditional_norm_params(net: TransformerNet) -> list[str]:
    """The state-dict names of the per-style scales and shifts."""
    return [f"{name}.{p}" for name, m in net.named_modules() if isinstance(m, ConditionalInstanceNorm2d) for p in ("weight", "bias")]


def style_starts(styles: list[dict], source_styles: list[dict]) -> list[int | None]:
    """For each style the network will hold, the source model's style of the same painting (the same file,
    by sha256) whose scales and shifts it starts from; None where the source holds no such painting."""
    index = {entry.get("sha256"): i for i, entry in enumerate(source_styles) if entry.get("sha256")}
    return [index.get(entry.get("sha256")) for entry in styles]


def warm_start(net: TransformerNet, source: TransformerNet, path: str | Path, starts: list[int | None]) -> None:
    """Load the weights of ``source`` (the model at ``path``) into ``net``, refusing, in one line, a
    model of another architecture. Each of ``net``'s styles takes its scales and shifts from the source's
    style ``starts[i]``, or from the mean of the source's styles where that is None (a painting the
    source does not hold: e.g. a new painting from the packaged model of six, whose own Starry Night
    starts the main command's Starry Night)."""
    if len(starts) != net.num_styles:
        raise ValueError(f"{len(starts)} style starts for a network of {net.num_styles} styles")
    ours, theirs = net.state_dict(), source.state_dict()
    for key in set(conditional_norm_params(net)) | set(conditional_norm_params(source)):
        old, new = theirs.get(key), ours.get(key)
        if old is None or new is None or old.shape[-1] != new.shape[-1]:
            continue  # another width is a misfit, refused below
        rows = old if old.dim() == 2 else old[None]
        mean = rows.mean(0)
        picked = torch.stack([mean if i is None else rows[i] for i in starts])
        theirs[key] = picked.reshape(new.shape)
    misfits = sorted(k for k in ours.keys() | theirs.keys() if k not in ours or k not in theirs or ours[k].shape != theirs[k].shape)
    if misfits:
        first = misfits[0]
        shapes = " vs ".join("x".join(map(str, d[first].shape)) if first in d else "none" for d in (theirs, ours))
        raise ValueError(f"init={path} is a network of another architecture ({len(misfits)} tensors differ, e.g. {first}: {shapes}); "
                         "give the model.* settings it was trained with")
    net.load_state_dict(theirs)
    own = sum(i is not None for i in starts)
    log.info("network initialised from %s; scales and shifts: %d style(s) from the same painting's own, %d from the mean of its styles",
             path, own, len(starts) - own)


def train_only_new_styles(net: TransformerNet, old: int) -> None:
    """Freeze everything but the scales and shifts of the styles after the first ``old``: gradients of
    the old styles' rows are zeroed, so Adam never moves them (its moments stay 0)."""
    trainable = set(conditional_norm_params(net))
    mask = (torch.arange(net.num_styles) >= old).float()[:, None]
    for name, param in net.named_parameters():
        param.requires_grad_(name in trainable)
        if name in trainable:
            param.register_hook(lambda grad: grad * mask.to(grad))
