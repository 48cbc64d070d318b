"""``style=``: which of a model's styles to paint with, or a blend of them, as one weight per style.
Shared by the PyTorch path (Stylizer) and the path without it (fststyle.inference.quick); no PyTorch here."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fststyle import PACKAGED_MODELS


def style_names(metadata: dict[str, Any]) -> list[str]:
    """The names of the styles a model holds, from its metadata."""
    held = metadata.get("styles")
    return [s["name"] for s in held] if held else [str(metadata.get("style_name", "style"))]


def style_blend(style: str | dict[str, float] | None, names: list[str], model_name: str | None = None) -> list[float] | None:
    """Weights summing to 1, one per name of ``names`` (the model's styles), from a name (``great_wave``)
    or a blend (``starry_night:0.7,great_wave:0.3`` or a dict); None for a one-style model (whose own
    name is accepted, any other refused). ValueError in one line for anything else."""
    if style is None:
        if len(names) > 1:
            raise ValueError(f"this model holds {len(names)} styles ({', '.join(names)}): pick one with style=NAME or blend them, "
                             f"e.g. style={names[0]}:0.5,{names[1]}:0.5")
        return None
    if isinstance(style, str):
        parts = [p.split(":", 1) if ":" in p else (p, "1") for p in style.split(",") if p.strip()]
        try:
            style = {name.strip(): float(weight) for name, weight in parts}
        except ValueError as err:
            raise ValueError(f"style={style}: give NAME or NAME:WEIGHT,NAME:WEIGHT") from err
    unknown = [n for n in style if n not in names]
    if unknown:
        train = (f"; for another painting, train a model: python -m fststyle.train style={unknown[0]} (or style=custom "
                 "style.image=PATH)") if model_name in {Path(f).stem for f in PACKAGED_MODELS.values()} else ""
        raise ValueError(f"style {unknown[0]} is not in this model, which holds: {', '.join(names)}{train}")
    if len(names) == 1:
        return None
    given = [style.get(n, 0.0) for n in names]
    if not all(isinstance(w, (int, float)) and math.isfinite(w) and w >= 0 for w in given) or not sum(given) > 0:
        raise ValueError(f"style weights must be finite numbers >= 0, not all 0, got {style}")
    total = math.fsum(given)
    return [w / total for w in given]
