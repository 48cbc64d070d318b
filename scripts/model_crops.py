"""Models side by side at full size: one crop of each model's picture of a photo, per painting.

    python scripts/model_crops.py --photo P.jpg --models packaged OLD.pth [--labels new old] [--strokes 1 auto]
        [--crop X Y SIDE] [--styles NAME ...] [--out crops.jpg]

Each model stylizes the whole photo at its own size (fststyle's Stylizer, fp32) with each ``--strokes``
setting, and the same square (``--crop``: left, top and side in the photo's pixels; default the centre
square of 320 px) is cut from every picture, unscaled, so that texture and strokes are seen as a viewer
would: rows are paintings (the styles the first model holds, or ``--styles``), columns the photo's crop,
then each model at each stroke setting.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # fststyle without installing it
from fststyle import Stylizer  # noqa: E402
from fststyle.images import load_tensor, to_pil  # noqa: E402


def stroke_value(text: str) -> float | str:
    return text if text == "auto" else float(text)


@torch.inference_mode()
def crops(photo: Path, models: list[Stylizer], labels: list[str], strokes: list[float | str], styles: list[str],
          box: tuple[int, int, int, int]) -> Image.Image:
    """The sheet: a header row of labels, then per painting the photo's crop and each model's, each stroke."""
    image = load_tensor(photo)[None]
    side, pad, header = box[2] - box[0], 6, 24
    columns = ["photo"] + [f"{label}, stroke={s}" for label in labels for s in strokes]
    sheet = Image.new("RGB", (len(columns) * (side + pad) + pad, header + len(styles) * (side + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for c, text in enumerate(columns):
        draw.text((pad + c * (side + pad), 6), text, fill="black")
    for r, style in enumerate(styles):
        pictures = [to_pil(image[0])] + [to_pil(m.run(image, stroke=s, style=style)[0]) for m in models for s in strokes]
        for c, picture in enumerate(pictures):
            sheet.paste(picture.crop(box), (pad + c * (side + pad), header + r * (side + pad)))
        draw.text((pad + 4, header + r * (side + pad) + 4), style, fill="white")
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", type=Path, required=True)
    parser.add_argument("--models", nargs="+", required=True, help=".pth files or packaged")
    parser.add_argument("--labels", nargs="+", help="a name per model (default: the model arguments)")
    parser.add_argument("--strokes", nargs="+", type=stroke_value, default=[1.0, "auto"])
    parser.add_argument("--crop", nargs=3, type=int, metavar=("X", "Y", "SIDE"))
    parser.add_argument("--styles", nargs="+")
    parser.add_argument("--out", type=Path, default=Path("crops.jpg"))
    args = parser.parse_args()
    labels = args.labels or args.models
    if len(labels) != len(args.models):
        parser.error("--labels: one per model")
    models = [Stylizer.load(m, device="cpu", precision="fp32") for m in args.models]
    styles = args.styles or models[0].styles
    width, height = Image.open(args.photo).size
    x, y, side = args.crop or ((width - 320) // 2, (height - 320) // 2, 320)
    if not (0 <= x and 0 <= y and x + side <= width and y + side <= height):
        parser.error(f"--crop {x} {y} {side} lies outside the {width}x{height} photo")
    sheet = crops(args.photo, models, labels, args.strokes, styles, (x, y, x + side, y + side))
    sheet.save(args.out, quality=88)
    print(f"wrote {args.out} ({sheet.width}x{sheet.height})")


if __name__ == "__main__":
    main()
