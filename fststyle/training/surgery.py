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


def warm_start(net: TransformerNet, source: TransformerNet, path: str | Path, add_styles: bool = False) -> None:
    """Load the weights of ``source`` (the model at ``path``) into ``net``, refusing, in one line, a
    model of another architecture. Where ``net`` holds another number of styles than ``source`` (e.g.
    one new painting from the packaged model of six), its styles' scales and shifts start from the mean
    of the source's; ``add_styles``: ``net`` holds the source's styles first, which keep theirs."""
    ours, theirs = net.state_dict(), source.state_dict()
    for key in set(conditional_norm_params(net)) | set(conditional_norm_params(source)):
        old, new = theirs.get(key), ours.get(key)
        if old is None or new is None or old.shape == new.shape or old.shape[-1] != new.shape[-1]:
            continue  # the same shape loads as it is; another width is a misfit, refused below
        rows = old if old.dim() == 2 else old[None]
        mean = rows.mean(0, keepdim=True)
        kept = rows if add_styles else rows[:0]
        theirs[key] = mean[0] if new.dim() == 1 else torch.cat([kept, mean.expand(new.shape[0] - len(kept), -1)])
    misfits = sorted(k for k in ours.keys() | theirs.keys() if k not in ours or k not in theirs or ours[k].shape != theirs[k].shape)
    if misfits:
        first = misfits[0]
        shapes = " vs ".join("x".join(map(str, d[first].shape)) if first in d else "none" for d in (theirs, ours))
        raise ValueError(f"init={path} is a network of another architecture ({len(misfits)} tensors differ, e.g. {first}: {shapes}); "
                         "give the model.* settings it was trained with")
    net.load_state_dict(theirs)
    log.info("network initialised from %s", path)


def train_only_new_styles(net: TransformerNet, old: int) -> None:
    """Freeze everything but the scales and shifts of the styles after the first ``old``: gradients of
    the old styles' rows are zeroed, so Adam never moves them (its moments stay 0)."""
    trainable = set(conditional_norm_params(net))
    mask = (torch.arange(net.num_styles) >= old).float()[:, None]
    for name, param in net.named_parameters():
        param.requires_grad_(name in trainable)
        if name in trainable:
            param.register_hook(lambda grad: grad * mask.to(grad))
