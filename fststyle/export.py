"""The exported model format: ``export/<style>.pth``.

A plain ``torch.save`` dict, loadable with ``torch.load(path, weights_only=True)`` and usable without
Lightning or Hydra::

    {"format": "fststyle", "format_version": 1,
     "model": {"width": 32, "num_residual": 5, "norm": "instance", "upsample": "nearest"},
     "state_dict": {...},            # TransformerNet's parameters and buffers
     "metadata": {"style_name", "style_sha256", "loss", "steps", "fststyle_version", ...}}
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from fststyle.net import TransformerNet

FORMAT = "fststyle"
FORMAT_VERSION = 1


def save_model(path: str | Path, net: TransformerNet, model_config: dict[str, Any], metadata: dict[str, Any]) -> Path:
    """Write the exported model atomically (temporary file + rename): a crash leaves no half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": dict(model_config),
        "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
        "metadata": dict(metadata),
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path.resolve()


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[TransformerNet, dict[str, Any]]:
    """Load an exported model (safely: no pickled code runs). Returns the network in eval mode and
    the metadata."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path.resolve()}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise ValueError(f"{path} is not a readable fststyle model ({type(err).__name__}); re-export it") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not an exported fststyle model (expected a .pth written by fststyle.train)")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path} was written by a newer fststyle (format {payload['format_version']}); upgrade fststyle")
    net = TransformerNet(**payload["model"])
    net.load_state_dict(payload["state_dict"])
    return net.eval(), payload.get("metadata", {})
