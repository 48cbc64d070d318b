"""What the flicker metric reads for a perfectly steady stylization: a check of the yardstick.

    python scripts/flicker_floor.py --model M --photos A.jpg B.jpg [--style NAME] [--width 480] \
        [--frames 12] [--motion 2.37 0.61] [--json flicker_floor.json] [--figure texture.jpg]

A camera pans over each photo by a fraction of a pixel per frame (--motion, px per frame in x and
y; bicubic resampling, so no frame is a plain crop). Three videos of that pan are judged by
fststyle.evaluation.flicker under both flows:
- the input itself: the metric's floor, what its flows and warps cannot explain;
- a perfectly steady stylization: the photo stylized once, and the same moving window cut from the
  stylized picture (every stroke moves exactly with the scene);
- the model on each frame, as inference does.
The steady one is as steady as a stylized video can be, so its ratio to the input is the lowest any
stylization with its strokes can read: the warps' interpolation and the flows' errors cost more on
sharp strokes than on the photo's own texture. Its ratio to the meter's consistent floor (the input's
error scaled by the texture, fststyle.evaluation.flicker) checks that floor: near 1 where the floor is right.
--figure draws why: the first photo's first frame and its steady stylization, each beside its gradient
(what a misplaced pixel costs), with their mean gradients. --style picks one painting of a model of several (the
packaged model: --model packaged --style great_wave), as style= does for fststyle.infer.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from fststyle.evaluation.flicker import FlickerMeter
from fststyle.images import open_rgb
from fststyle.inference.stylizer import Stylizer


def pan(picture: np.ndarray, width: int, frames: int, motion: tuple[float, float]) -> np.ndarray:
    """(frames, H, width, 3) uint8: a window of 16:9 moving by ``motion`` px per frame (bicubic)."""
    height, source = round(width * 9 / 16), picture.astype(np.float32)
    windows = [cv2.warpAffine(source, np.float32([[1, 0, 8 + motion[0] * i], [0, 1, 8 + motion[1] * i]]), (width, height),
                              flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP) for i in range(frames)]
    return np.stack(windows).round().clip(0, 255).astype(np.uint8)


def texture_figure(frame: np.ndarray, stylized: np.ndarray, out: str) -> None:
    """frame | its gradient | the steady stylization | its gradient, each gradient scaled alike, labelled."""
    from PIL import ImageDraw

    from fststyle.evaluation.flicker import texture

    everywhere = np.ones(frame.shape[:2], bool)
    cells = []
    for label, image in (("input frame", frame), ("steady stylization", stylized)):
        x = image.astype(np.float32)
        gradient = np.abs(np.diff(x, axis=1, append=x[:, -1:])) + np.abs(np.diff(x, axis=0, append=x[-1:]))
        shown = np.clip(gradient.mean(-1) * 4, 0, 255).astype(np.uint8)
        for cell, text in ((image, label), (np.stack([shown] * 3, -1), f"its gradient: mean {texture(image, everywhere):.1f} steps/px")):
            picture = Image.new("RGB", (cell.shape[1], cell.shape[0] + 16), "black")  # the label above the picture
            picture.paste(Image.fromarray(cell), (0, 16))
            ImageDraw.Draw(picture).text((4, 2), text, fill="white")
            cells.append(picture)
    sheet = Image.new("RGB", (sum(c.width for c in cells) + 4 * (len(cells) - 1), cells[0].height), "white")
    for i, cell in enumerate(cells):
        sheet.paste(cell, (i * (cell.width + 4), 0))
    sheet.save(out, quality=92)


def flicker(frames: np.ndarray, video: np.ndarray) -> dict:
    meter = FlickerMeter()
    meter.update(frames, video)
    return meter.result()


@torch.no_grad()  # a decorator, not set_grad_enabled(False): a caller's grad mode is back when main returns
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--photos", nargs="+", required=True)
    parser.add_argument("--style", default=None, help="a painting of a model of several styles")
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--motion", nargs=2, type=float, default=[2.37, 0.61])
    parser.add_argument("--json", default="flicker_floor.json")
    parser.add_argument("--figure", help="write the texture figure of the first photo here")
    args = parser.parse_args()
    stylizer = Stylizer.load(args.model, device="cpu", precision="fp32")
    try:
        stylizer.check_options(style=args.style)  # an unknown or missing style stops here, before any work
    except ValueError as error:
        parser.error(f"--style: {error}")
    picture_width = int(args.width + 16 + args.frames * max(map(abs, args.motion)))  # the window's whole path
    rows = []
    print(f"{'photo':<16}{'video':<24}{'DIS steps':>10}{'x input':>9}{'x floor':>9}{'Farneback':>11}{'x input':>9}{'x floor':>9}")
    for photo in args.photos:
        image = open_rgb(photo)
        picture = np.array(image.resize((picture_width, round(picture_width * image.height / image.width)), Image.LANCZOS))
        frames = pan(picture, args.width, args.frames, tuple(args.motion))
        videos = {"input": frames, "steady stylization": pan(stylizer(picture, style=args.style), args.width, args.frames, tuple(args.motion)),
                  "model on each frame": np.stack([stylizer(frame, style=args.style) for frame in frames])}
        if args.figure and photo == args.photos[0]:
            texture_figure(frames[0], videos["steady stylization"][0], args.figure)
        for label, video in videos.items():
            row = {"photo": photo, "video": label, **flicker(frames, video)}
            rows.append(row)
            print(f"{Path(photo).name[:15]:<16}{label:<24}{row['flicker']:>10.2f}{row['flicker_ratio']:>9.2f}{row['flicker_floor_ratio']:>9.2f}"
                  f"{row['flicker_farneback']:>11.2f}{row['flicker_ratio_farneback']:>9.2f}{row['flicker_floor_ratio_farneback']:>9.2f}", flush=True)
    Path(args.json).write_text(json.dumps({"model": args.model, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
                                           "args": vars(args), "rows": rows}, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
