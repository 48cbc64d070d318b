"""Flicker against picture for stabilized inference: the README's Video table.

    python scripts/video_table.py --models plain.pth [temporal.pth] --videos A.mp4 B.mp4 \
        [--style NAME] [--size 640] [--strengths 0 0.5 0.8 1] [--every 10] [--json video_table.json]

Each model stylizes each clip once (frames at --size px long side, fp32); every strength then
stabilizes those same frames (fststyle.inference.stabilize) and is judged by
- flicker: the warping error under DIS and under Farneback (fststyle.evaluation.flicker), as a multiple of the
  input video's own, of the clip's consistent floor and of the unstabilized frames';
- the per-frame image objective: the model's training objective (content + style against its
  painting, as in "Quality") of every --every-th frame, as 8-bit pictures, relative to the
  unstabilized frames of the same model.
Frames are not written to disk, so the frames judged are exactly what the stabilizer returned.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench.common import device_name  # noqa: E402
from fststyle.evaluation.flicker import FlickerMeter, against_plain  # noqa: E402
from fststyle.evaluation.quality import objective  # noqa: E402
from fststyle.inference.stabilize import Stabilizer  # noqa: E402
from fststyle.inference.stylizer import Stylizer  # noqa: E402
from fststyle.training.criterion import model_criterion  # noqa: E402
from fststyle.inference.video import output_size  # noqa: E402


def frames_of(path: str, long_side: int) -> np.ndarray:
    """Every frame at ``long_side`` px, (N, H, W, 3) uint8, as fststyle.inference.video decodes them."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        width, height = output_size(stream.codec_context.width, stream.codec_context.height, long_side)
        return np.stack([f.reformat(width=width, height=height, format="rgb24").to_ndarray() for f in container.decode(stream)])


def stylize(stylizer: Stylizer, frames: np.ndarray, style: str | None, batch_size: int = 4) -> tuple[np.ndarray, float]:
    """The model's float output for every frame, and the network's seconds per frame."""
    out, start = [], time.perf_counter()
    for i in range(0, len(frames), batch_size):
        batch = torch.from_numpy(frames[i : i + batch_size]).permute(0, 3, 1, 2).float() / 255
        out.append(stylizer.run(batch, style=style).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out), (time.perf_counter() - start) / len(frames)


def judge(frames: np.ndarray, styled: np.ndarray, criterion: torch.nn.Module, every: int) -> dict:
    meter = FlickerMeter()
    as_8bit = (styled * 255).round().clip(0, 255).astype(np.uint8)
    meter.update(frames, as_8bit)
    parts = []
    for i in range(0, len(frames), every):
        photo = torch.from_numpy(frames[i]).permute(2, 0, 1)[None].float() / 255
        parts.append(objective(criterion, torch.from_numpy(as_8bit[i]).permute(2, 0, 1)[None].float() / 255, photo))
    return {**meter.result(), "objective": statistics.fmean(p["total"] for p in parts), "style": statistics.fmean(p["style"] for p in parts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--videos", nargs="+", required=True)
    parser.add_argument("--style", help="the style of a model that holds several (e.g. the packaged model's starry_night)")
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--strengths", nargs="+", type=float, default=[0.0, 0.5, 0.8, 1.0])
    parser.add_argument("--every", type=int, default=10, help="judge the image objective on every N-th frame")
    parser.add_argument("--json", default="video_table.json")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    rows = []
    print(f"{'model':<22}{'video':<18}{'stabilize':>10}{'DIS: x input':>13}{'x floor':>9}{'x plain':>9}{'Farneback':>11}{'x floor':>9}"
          f"{'x plain':>9}{'objective':>12}{'vs plain':>9}{'style':>8}{'ms/frame':>10}")
    for model in args.models:
        stylizer = Stylizer.load(model, device="cpu", precision="fp32")
        criterion = model_criterion(stylizer.metadata, args.style)
        for video in args.videos:
            frames = frames_of(video, args.size)
            styled, network_s = stylize(stylizer, frames, args.style)
            plain = None
            for strength in args.strengths:
                stabilizer, start = Stabilizer(strength), time.perf_counter()
                steady = np.stack([stabilizer(f, s) for f, s in zip(frames, styled)]) if strength else styled
                cost = (time.perf_counter() - start) / len(frames)
                row = {"model": model, "video": video, "size": args.size, "stabilize": strength, "frames": len(frames),
                       "cuts": stabilizer.cuts, "network_ms": 1000 * network_s, "stabilize_ms": 1000 * cost,
                       **judge(frames, steady, criterion, args.every)}
                plain = plain or row
                row |= {"objective_vs_plain": row["objective"] / plain["objective"], "style_vs_plain": row["style"] / plain["style"],
                        **against_plain(row, plain)}
                rows.append(row)
                print(f"{Path(model).stem[:21]:<22}{Path(video).name[:17]:<18}{strength:>10g}"
                      + "".join(f"{row[f'flicker_ratio{s}']:>{w}.2f}{row[f'flicker_floor_ratio{s}']:>9.2f}{row[f'flicker_vs_plain{s}']:>9.2f}"
                                for s, w in (("", 13), ("_farneback", 11)))
                      + f"{row['objective']:>12.4g}{row['objective_vs_plain']:>9.3f}{row['style_vs_plain']:>8.3f}{row['stabilize_ms']:>10.0f}", flush=True)
    Path(args.json).write_text(json.dumps({"device": device_name(torch.device("cpu")), "torch": torch.__version__,
                                           "date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
