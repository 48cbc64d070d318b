"""One photo through a model of several styles: each style and blends between them, side by side.

    python scripts/blend_strip.py --model multi.pth --photo P.jpg [--size 384] \
        --styles starry_night starry_night:0.5,great_wave:0.5 great_wave --out blend.jpg

Each --styles item is what `fststyle.infer style=` takes: a name or NAME:WEIGHT,NAME:WEIGHT.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # fststyle without installing it
from fststyle.images import load_tensor, to_pil  # noqa: E402
from fststyle.inference.stylizer import Stylizer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--photo", required=True)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--styles", nargs="+", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    stylizer = Stylizer.load(args.model, device="cpu", precision="fp32")
    photo = load_tensor(args.photo, args.size)[None]
    pictures = [("photo", to_pil(photo[0]))] + [(style, to_pil(stylizer.run(photo, style=style)[0])) for style in args.styles]
    w, h = pictures[0][1].size
    sheet = Image.new("RGB", (len(pictures) * (w + 4), h + 22), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, picture) in enumerate(pictures):
        sheet.paste(picture, (i * (w + 4), 0))
        draw.text((i * (w + 4) + 4, h + 5), label.replace(",", " + "), fill="black")
    sheet.save(args.out, quality=88)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
