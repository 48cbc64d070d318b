"""Consecutive frames of several videos side by side, with what changed between frames: a picture of flicker.

    python scripts/frame_strip.py --videos IN.mp4 PLAIN.mp4 STABLE.mp4 --labels input plain stable \
        [--start 40] [--frames 4] [--width 320] [--gain 4] --out strip.jpg

Row pairs per video: the frames, then |frame - previous frame| times --gain (black where nothing
changed). The input's own differences are the motion; what a stylized video adds on top is flicker.
"""

from __future__ import annotations

import argparse

import av
import numpy as np
from PIL import Image, ImageDraw


def read_frames(path: str, start: int, count: int, width: int) -> list[np.ndarray]:
    """Frames start-1 .. start+count-1 (one before, for the first difference), resized to ``width``."""
    frames = []
    with av.open(path) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= start - 1:
                image = frame.to_image()
                height = round(image.height * width / image.width)
                frames.append(np.asarray(image.resize((width, height), Image.BICUBIC), dtype=np.int16))
            if len(frames) == count + 1:
                break
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", nargs="+", required=True)
    parser.add_argument("--labels", nargs="+", required=True)
    parser.add_argument("--start", type=int, default=40)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--gain", type=float, default=4.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rows = []
    for path, label in zip(args.videos, args.labels):
        frames = read_frames(path, args.start, args.frames, args.width)
        shown = [f.astype(np.uint8) for f in frames[1:]]
        changes = [np.clip(np.abs(b - a).mean(-1, keepdims=True).repeat(3, -1) * args.gain, 0, 255).astype(np.uint8)
                   for a, b in zip(frames, frames[1:])]
        rows += [(label, shown), (f"{label}: change x{args.gain:g}", changes)]
    h, w = rows[0][1][0].shape[:2]
    margin = 150
    sheet = Image.new("RGB", (margin + args.frames * (w + 4), len(rows) * (h + 4)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (label, images) in enumerate(rows):
        draw.text((6, r * (h + 4) + h // 2 - 6), label, fill="black")
        for c, image in enumerate(images):
            sheet.paste(Image.fromarray(image), (margin + c * (w + 4), r * (h + 4)))
    sheet.save(args.out, quality=88)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
