"""A model's pictures at a photo's full size, beside the optimization's: what the quality table cannot show.

    python scripts/full_size_crops.py --model M.pth --photo P.jpg [--crop X Y SIZE] [--iterations 100] --out crops.jpg

Stylizes the photo at its own size with ``stroke=1`` and ``stroke=auto``, runs the optimization of the
model's own training objective (fststyle.evaluation.quality's reference, over valid pictures) at the same size, and
writes one row of crops (photo | stroke=1 | stroke=auto | optimization), each SIZE px at (X, Y),
shown at twice their size so that single strokes are visible. Prints the objective of each full picture.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # fststyle without installing it
from fststyle import Stylizer  # noqa: E402
from fststyle.images import load_tensor, save_image, to_pil  # noqa: E402
from fststyle.evaluation.quality import optimize_image  # noqa: E402
from fststyle.evaluation.quality import objective  # noqa: E402
from fststyle.training.criterion import model_criterion  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--photo", required=True)
    parser.add_argument("--crop", type=int, nargs=3, metavar=("X", "Y", "SIZE"), default=(0, 0, 192))
    parser.add_argument("--iterations", type=int, default=100, help="L-BFGS iterations of the optimization at full size (0: none)")
    parser.add_argument("--style-cache", default="data/styles")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    stylizer = Stylizer.load(args.model, device="cpu", precision="fp32")
    criterion = model_criterion(stylizer.metadata, style_cache=args.style_cache)
    photo = load_tensor(args.photo)[None]
    pictures = {"photo": photo, "stroke=1": stylizer.run(photo), "stroke=auto": stylizer.run(photo, stroke="auto")}
    if args.iterations:  # 0: no optimization (slow at large sizes on a CPU)
        start = time.perf_counter()
        pictures[f"optimization ({args.iterations} it.)"] = optimize_image(photo, criterion, args.iterations).image
        print(f"optimization at {photo.shape[-1]}x{photo.shape[-2]}: {time.perf_counter() - start:.0f} s")
    x, y, size = args.crop
    cells = []
    for label, image in pictures.items():
        print(f"{label:<28} total objective {objective(criterion, image, photo)['total']:.4g}")
        crop = to_pil(image[0]).crop((x, y, x + size, y + size)).resize((2 * size, 2 * size), Image.NEAREST)
        ImageDraw.Draw(crop).text((4, 4), label, fill="white")
        cells.append(crop)
    row = Image.new("RGB", (sum(c.width for c in cells) + 4 * (len(cells) - 1), cells[0].height), "white")
    for i, cell in enumerate(cells):
        row.paste(cell, (i * (cell.width + 4), 0))
    save_image(row, args.out)
    print(f"wrote: {args.out}")


if __name__ == "__main__":
    main()
