"""Models' pictures at a photo's full size, beside the optimization's: what the quality table cannot show.

    python scripts/full_size_crops.py --model M.pth [OLD.pth ...] --photo P.jpg [--labels new old]
        [--styles NAME ...] [--strokes 1 auto] [--crop X Y SIZE] [--zoom 2] [--iterations 100] [--cache DIR] --out crops.jpg

Each model stylizes the whole photo at its own size (fp32) with each ``--strokes`` setting; with
``--iterations`` above 0 the optimization of the first model's own training objective
(fststyle.evaluation.quality's reference, over valid pictures) runs at the same size too. The same
SIZE px square at (X, Y) is cut from every picture and shown ``--zoom`` times enlarged (nearest
neighbour, so that single strokes stay visible): a row per painting (``--styles``, default the first
model's: all the styles of a model of several), the photo first. Prints the objective of each full picture
and its grid figure (fststyle.evaluation.metrics.grid_peak: over 100 for a regular hatching on the
network's 4-px grid, under 10 without one).
With ``--cache`` each optimization is kept there as the quality references are (a PNG and a JSON, keyed
by the photo, the painting, its objective and the iterations), so that new models or crops are drawn
without it again.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # fststyle without installing it
from fststyle import Stylizer  # noqa: E402
from fststyle.images import load_tensor, save_image, to_pil  # noqa: E402
from fststyle.evaluation.metrics import grid_peak  # noqa: E402
from fststyle.evaluation.quality import as_8bit, equivalent_iterations, objective, reference, reference_key  # noqa: E402
from fststyle.styles import sha256_of  # noqa: E402
from fststyle.training.criterion import ModelObjective, model_objective  # noqa: E402


def stroke_value(text: str) -> float | str:
    return text if text == "auto" else float(text)


@torch.inference_mode()
def stylized(photo: torch.Tensor, models: dict[str, Stylizer], strokes: list, style: str | None) -> dict[str, torch.Tensor]:
    """Each model's picture of the whole photo at each stroke setting, labelled."""
    return {f"{label}, stroke={s}" if len(models) > 1 else f"stroke={s}": model.run(photo, stroke=s, style=style)
            for label, model in models.items() for s in strokes}


def optimization_key(photo_path: Path, photo: torch.Tensor, target: ModelObjective, iterations: int) -> str:
    """The optimization's cache key as the quality references have it (quality.reference_key): the photo's
    file and size (here its own), the painting, its objective (the model's loss at the painting's weight,
    its Gram size) and the iterations."""
    return reference_key(photo_path, sha256_of(target.painting), max(photo.shape[-2:]), OmegaConf.to_container(target.loss),
                         target.style_size, iterations, cut="whole")


def row_of(pictures: dict[str, torch.Tensor], box: tuple[int, int, int], zoom: int) -> list[Image.Image]:
    x, y, size = box
    cells = []
    for label, image in pictures.items():
        crop = to_pil(image[0]).crop((x, y, x + size, y + size)).resize((zoom * size, zoom * size), Image.NEAREST)
        ImageDraw.Draw(crop).text((4, 4), label, fill="white")
        cells.append(crop)
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "--models", dest="models", nargs="+", required=True, help=".pth files or packaged")
    parser.add_argument("--labels", nargs="+", help="a name per model (default: the model arguments)")
    parser.add_argument("--photo", required=True)
    parser.add_argument("--styles", nargs="+", help="the paintings to show (default: all the first model holds)")
    parser.add_argument("--strokes", nargs="+", type=stroke_value, default=[1.0, "auto"])
    parser.add_argument("--crop", type=int, nargs=3, metavar=("X", "Y", "SIZE"), default=(0, 0, 192))
    parser.add_argument("--zoom", type=int, default=2, help="how many times each crop is enlarged")
    parser.add_argument("--iterations", type=int, default=100, help="L-BFGS iterations of the optimization at full size (0: none)")
    parser.add_argument("--style-cache", default="data/styles")
    parser.add_argument("--cache", type=Path, help="a folder to keep each optimization in, and to read it from")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    labels = args.labels or args.models
    if len(labels) != len(args.models):
        parser.error("--labels: one per model")

    models = {label: Stylizer.load(m, device="cpu", precision="fp32") for label, m in zip(labels, args.models)}
    first = next(iter(models.values()))
    styles = args.styles or (first.styles if len(first.styles) > 1 else [None])
    photo = load_tensor(args.photo)[None]
    x, y, size = args.crop
    if x < 0 or y < 0 or x + size > photo.shape[-1] or y + size > photo.shape[-2]:
        parser.error(f"--crop {x} {y} {size} lies outside the {photo.shape[-1]}x{photo.shape[-2]} photo")
    rows = []
    for style in styles:
        target = model_objective(first.metadata, style, args.style_cache)  # the painting resolved once: criterion and key
        criterion = target.criterion()
        pictures = {"photo": photo, **stylized(photo, models, args.strokes, style)}
        optimized = None
        if args.iterations:  # 0: no optimization (slow at large sizes on a CPU)
            start = time.perf_counter()
            key = optimization_key(Path(args.photo), photo, target, args.iterations)
            optimized = reference(photo, criterion, args.iterations, args.cache, key)
            pictures[f"optimization ({args.iterations} it.)"] = optimized.image
            print(f"optimization at {photo.shape[-1]}x{photo.shape[-2]}: " + ("cached" if optimized.cached else f"{time.perf_counter() - start:.0f} s"))
        for label, image in pictures.items():
            total = objective(criterion, image, photo)["total"]
            # Beside the optimization: its multiple, and the iteration count of the optimization that is as good.
            versus = f" ({total / optimized.final['total']:.2f}x the optimization's, as good as {equivalent_iterations(total, optimized.curve):.1f} " \
                     "of its iterations)" if optimized is not None else ""
            # A regular hatching on the network's 4-px grid reads over 100 at 0.4 MP, texture without it under 10.
            print(f"{style or '':<16}{label:<36} total objective {total:.4g}{versus}, grid {grid_peak(as_8bit(image)):.0f}")
        cells = row_of(pictures, args.crop, args.zoom)
        if style:
            ImageDraw.Draw(cells[0]).text((4, 18), style, fill="white")
        rows.append(cells)
    cell, gap = rows[0][0].width, 4
    sheet = Image.new("RGB", (len(rows[0]) * (cell + gap) - gap, len(rows) * (cell + gap) - gap), "white")
    for r, cells in enumerate(rows):
        for c, image in enumerate(cells):
            sheet.paste(image, (c * (cell + gap), r * (cell + gap)))
    save_image(sheet, args.out)
    print(f"wrote: {args.out}")


if __name__ == "__main__":
    main()
