"""How far tiled inference (`fststyle.infer tile=N`) is from the untiled result on one photo.

    python scripts/tiling_error.py MODEL PHOTO [--size 2048] [--tiles 256 512 1024] [--stats-sizes 1024 2048]

Stylizes the photo (long side --size) once untiled and once per tile size and statistics size, and
prints the differences in 8-bit steps (|tiled - untiled| x 255): mean, 99th percentile, largest, and
the share of pixels that differ by more than one step. Writes JSON beside the command (--json).
Untiled needs the memory of the whole image: run it where that fits.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # fststyle without installing it
from fststyle.images import load_tensor  # noqa: E402
from fststyle.inference.stylizer import Stylizer  # noqa: E402
from fststyle.inference.tiling import stylize_tiled  # noqa: E402


def steps_8bit(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    diff = ((a - b).abs() * 255).flatten()
    sample = diff[torch.randperm(diff.numel(), generator=torch.Generator().manual_seed(0))[:2_000_000]]
    return {"mean": round(diff.mean().item(), 4), "p99": round(sample.quantile(0.99).item(), 4), "max": round(diff.max().item(), 4),
            "over_1_step_percent": round(100 * (diff > 1).float().mean().item(), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("photo")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--tiles", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--stats-sizes", type=int, nargs="+", default=[1024])
    parser.add_argument("--json", default="tiling_error.json")
    args = parser.parse_args()

    stylizer = Stylizer.load(args.model, device="cpu", precision="fp32")
    photo = load_tensor(args.photo, args.size)[None]
    with torch.inference_mode():
        start = time.perf_counter()
        full = stylizer.module(photo)
        untiled_s = time.perf_counter() - start
        rows = []
        print(f"{photo.shape[-1]}x{photo.shape[-2]} px, untiled {untiled_s:.1f} s; differences to untiled in 8-bit steps")
        print(f"{'tile':>6} {'stats':>6} {'mean':>8} {'p99':>8} {'max':>8} {'>1 step %':>10} {'s':>6}")
        for stats_size in args.stats_sizes:
            for tile in args.tiles:
                start = time.perf_counter()
                tiled = stylize_tiled(stylizer.module, photo, tile, stats_size=stats_size)
                row = {"tile": tile, "stats_size": stats_size, **steps_8bit(tiled, full), "seconds": round(time.perf_counter() - start, 1)}
                rows.append(row)
                print(f"{tile:>6} {stats_size:>6} {row['mean']:>8} {row['p99']:>8} {row['max']:>8} {row['over_1_step_percent']:>10} {row['seconds']:>6}",
                      flush=True)
    report = {"model": args.model, "photo": args.photo, "size": [photo.shape[-1], photo.shape[-2]], "untiled_seconds": round(untiled_s, 1),
              "rows": rows, "torch": torch.__version__, "date": datetime.date.today().isoformat()}
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
