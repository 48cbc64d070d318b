"""The quick path of ``python -m fststyle.infer``: one photo through an ONNX model, with onnxruntime, numpy
and PIL only. Importing PyTorch alone takes longer (1.4-1.9 s on this project's 2-core CPU) than a
small network needs for a 1024 px photo; Hydra's compose adds a few tenths more.

It takes a command only when it gives exactly the picture the full path (fststyle.inference.stylize_paths) gives:
``model=`` an .onnx file (or ``packaged-small``, which ships as ONNX too), one image file in and one out, and options it implements the same way
(``size``, ``strength``, ``preserve_color``, ``style``, through the same code: fststyle.images,
fststyle.pixels, fststyle.blend); anything else (a folder, a video, ``stroke``, ``tile``, ``stabilize``, a
Hydra override) goes to the full path, which also gives the errors of anything it cannot parse.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from fststyle import CONF_DIR, packaged_model_file
from fststyle.errors import UserError, first_line

# Options the quick path leaves at these values (anything else: the full path).
FULL_PATH_UNLESS = {"stroke": (1, 1.0, "1"), "tile": (None, 0), "stabilize": (False, None, 0, "false"), "flicker": (False,),
                    "compile": (False,), "device": ("auto", "cpu"), "precision": ("auto", "fp32")}


def options(argv: list[str]) -> dict[str, Any] | None:
    """The command's options (infer.yaml's defaults, then ``key=value`` from ``argv``), or None when an
    argument is anything else (a Hydra override, a flag, an unknown key: the full path parses those)."""
    defaults = yaml.safe_load((CONF_DIR / "cli" / "infer.yaml").read_text())
    chosen = {k: v for k, v in defaults.items() if k not in ("defaults", "hydra")}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key not in chosen:
            return None
        # Paths and style names stay text; other values as Hydra would read them (null, true, 512, 0.7).
        chosen[key] = value if key in ("model", "input", "output", "style") else yaml.safe_load(value) if value else None
    return chosen


def onnx_model(model: str) -> Path | None:
    """The ONNX file ``model=`` names: an .onnx path, or the ONNX copy of a model that ships with fststyle
    (None where it ships none: ``packaged`` is PyTorch only)."""
    packaged = packaged_model_file(model)
    if packaged is not None:
        path = packaged.with_suffix(".onnx")
        return path if path.is_file() else None
    return Path(model) if model.lower().endswith(".onnx") and Path(model).is_file() else None


def quick_model(chosen: dict[str, Any]) -> Path | None:
    """The ONNX file to run when the quick path gives this command's picture (an ONNX model, one image to
    one image), else None."""
    from fststyle.images import is_image_file

    model = onnx_model(str(chosen.get("model")))
    source, target = (str(chosen.get(k)) for k in ("input", "output"))
    applies = (model is not None and Path(source).is_file() and is_image_file(source) and is_image_file(target)
               and not Path(target).is_dir() and all(chosen.get(k) in allowed for k, allowed in FULL_PATH_UNLESS.items()))
    return model if applies else None


def checked(chosen: dict[str, Any], model: Path) -> tuple[Any, list[float] | None]:
    """Every option checked once, before any work (ValueError in one line, as the full path words it);
    returns the model's session and the style weights."""
    import onnxruntime as ort

    from fststyle.blend import style_blend, style_names
    from fststyle.files import check_not_an_input
    from fststyle.images import check_size
    from fststyle.pixels import check_blend_options

    check_size(chosen["size"])
    check_blend_options(chosen["strength"], chosen["preserve_color"])
    check_not_an_input(chosen["output"], [(Path(chosen["input"]), Path(chosen["output"]))])
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    metadata = json.loads(session.get_modelmeta().custom_metadata_map.get("fststyle", "{}"))
    return session, style_blend(chosen["style"] or None, style_names(metadata), metadata.get("style_name"))


def stylize(chosen: dict[str, Any], session: Any, weights: list[float] | None) -> Path:
    """Read the photo, run the network, write the picture."""
    import numpy as np
    from PIL import Image

    from fststyle.images import open_rgb, resize_long_side, save_image
    from fststyle.pixels import blend, keep_colours

    picture = resize_long_side(open_rgb(chosen["input"]), chosen["size"])
    photo = np.asarray(picture, dtype=np.float32).transpose(2, 0, 1)[None] / 255
    names = [i.name for i in session.get_inputs()]
    feed = {names[0]: photo, **({names[1]: np.asarray([weights], dtype=np.float32)} if weights is not None else {})}
    out = session.run(None, feed)[0]
    if chosen["preserve_color"]:
        out = keep_colours(out, photo)
    out = blend(out, photo, float(chosen["strength"]))
    pixels = (out[0].transpose(1, 2, 0) * 255).round().clip(0, 255).astype(np.uint8)
    return save_image(Image.fromarray(pixels, "RGB"), chosen["output"])


def quick_run(argv: list[str]) -> int | None:
    """Run the command on the quick path when it applies (the exit status), else None."""
    chosen = options(argv)
    model = None if chosen is None else quick_model(chosen)
    if model is None:
        return None
    start = time.perf_counter()
    try:
        session, weights = checked(chosen, model)
    except (UserError, ValueError, FileNotFoundError, PermissionError) as err:  # as fststyle.cli.run_cli: one line, status 2
        print(f"error: {first_line(err)}", file=sys.stderr)
        return 2
    try:
        written = stylize(chosen, session, weights)
    except Exception as err:  # a photo that cannot be read or written: as the full path reports a failed file
        print(f"error: {chosen['input']}: {first_line(err)}", file=sys.stderr)
        print(f"0 written, 1 failed in {time.perf_counter() - start:.1f} s")
        return 1
    elapsed = time.perf_counter() - start
    print(f"wrote: {written.resolve()}")
    print(f"1 written, 0 failed in {elapsed:.1f} s ({1 / elapsed:.2f} images/s; onnxruntime, quick path)")
    return 0
