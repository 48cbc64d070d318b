"""Does each painting's objective ask for the painting? The optimization of that objective, looked at.

    python scripts/painting_check.py --photos P1.jpg P2.jpg [--model packaged] [--styles NAME ...]
        [--size 512] [--iterations 200] [--style-weight W] [--style-size S] [--style-norm none|gram]
        [--out benchmarks/paintings]

A feed-forward model can only learn what its training objective rewards. Before hours of training, this
optimizes each painting's own objective (the loss and painting the model records; ``--style-weight`` and
``--style-size`` try another weight or Gram size for it, ``--style-norm gram`` scales each painting's
layers to Starry Night's Gram magnitudes, fststyle.training.criterion) on a few photos at a real size, with the
reference's method (L-BFGS over valid pictures, fststyle.evaluation.quality), and writes one sheet per painting:
the painting | each photo | its optimization | the model's picture. A recolouring or a pale copy of the
painting there means the objective, not the training, is what falls short.

Prints per photo: the photo's own style loss (its distance from the painting's Grams: a small one means
the painting pulls little at that weight), and the optimization's content and style losses.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # fststyle without installing it
from fststyle import Stylizer  # noqa: E402
from fststyle.training.criterion import build_criterion, held_styles, load_style_image, painting_loss, painting_weight  # noqa: E402
from fststyle.images import load_tensor, open_rgb, resize_long_side, save_image, to_pil  # noqa: E402
from fststyle.evaluation.quality import optimize_image  # noqa: E402
from fststyle.evaluation.quality import objective  # noqa: E402
from fststyle.styles import recorded_painting  # noqa: E402


def labelled(image: Image.Image, text: str, height: int) -> Image.Image:
    cell = resize_long_side(image, height) if image.height > image.width else image.resize((round(image.width * height / image.height), height))
    ImageDraw.Draw(cell).text((4, 4), text, fill="white")
    return cell


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", nargs="+", required=True)
    parser.add_argument("--model", default="packaged", help="whose paintings and loss (its metadata), and whose pictures to show beside")
    parser.add_argument("--styles", nargs="*", help="the model's styles to check (default: all)")
    parser.add_argument("--size", type=int, default=512, help="long side of the photos")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--style-weight", type=float, help="another loss.style_weight to try")
    parser.add_argument("--style-size", type=int, help="another Gram size (the painting's long side) to try")
    parser.add_argument("--style-norm", choices=("none", "gram"), help="another loss.style_norm to try")
    parser.add_argument("--style-cache", default="data/styles")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/paintings"))
    args = parser.parse_args()

    stylizer = Stylizer.load(args.model, device="cpu", precision="fp32")
    loss = OmegaConf.create(stylizer.metadata["loss"])
    if args.style_weight is not None:
        loss.style_weight = args.style_weight
    if args.style_norm is not None:
        loss.style_norm = args.style_norm
    photos = [load_tensor(p, args.size)[None] for p in args.photos]
    for entry in held_styles(stylizer.metadata):
        if args.styles and entry["name"] not in args.styles:
            continue
        painting = recorded_painting(entry["image"], entry["name"], entry.get("sha256"), args.style_cache)
        style_size = args.style_size or entry.get("size") or 512
        criterion = build_criterion(painting_loss(loss, painting_weight(entry)), load_style_image(painting, style_size))
        height = photos[0].shape[-2]
        row = [labelled(open_rgb(painting), f"{entry['name']} (Grams at {style_size} px)", height)]
        for path, photo in zip(args.photos, photos):
            start = time.perf_counter()
            optimized = optimize_image(photo, criterion, args.iterations).image
            own, best = objective(criterion, photo, photo), objective(criterion, optimized, photo)
            picture = stylizer.run(photo, style=entry["name"] if len(stylizer.styles) > 1 else None)
            model = objective(criterion, picture, photo)
            print(f"{entry['name']:<16} {Path(path).name:<20} photo's own style {own['style']:>10.4g}   optimization: content "
                  f"{best['content']:>9.4g} style {best['style']:>9.4g} total {best['total']:>9.4g}   model total {model['total']:>9.4g} "
                  f"({model['total'] / best['total']:.2f}x)   {time.perf_counter() - start:.0f} s")
            pictures = {"photo": photo, f"optimization ({args.iterations} it.)": optimized,
                        "model": picture}
            row += [labelled(to_pil(image[0]), label, height) for label, image in pictures.items()]
        sheet = Image.new("RGB", (sum(c.width for c in row) + 4 * (len(row) - 1), height), "white")
        x = 0
        for cell in row:
            sheet.paste(cell, (x, 0))
            x += cell.width + 4
        tag = "".join(f"_{k}{v}" for k, v in (("w", args.style_weight), ("s", args.style_size), ("n", args.style_norm)) if v is not None)
        name = entry["name"]
        print(f"wrote: {save_image(sheet, args.out / f'{name}{tag}.jpg')}")


if __name__ == "__main__":
    main()
