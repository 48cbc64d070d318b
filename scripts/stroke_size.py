"""What `stroke=` does to a large photo, measured: style loss after downscaling, and sharpness at full size.

    python scripts/stroke_size.py --model M.pth --photo P.jpg [--size 3840] [--judge 1024] [--out DIR]

The photo is brought to `--size` (long side) and stylized four ways: at `--judge` (the reference: the
size the strokes look right at), and at full size with stroke=1, with stroke=auto but a plain
enlargement of the small result, and with stroke=auto as fststyle.infer does it (the photo's fine
luminance detail restored). Each full-size result is downscaled to `--judge` and scored by the model's
own style loss (its painting at its style size); sharpness is the mean absolute difference (8-bit
steps) between the full-size result and its 3x3 box blur. Writes stroke.json and crops.png (a
full-resolution crop of each) into `--out`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # fststyle without installing it
from fststyle.images import load_tensor, save_image  # noqa: E402
from fststyle.inference.stylizer import Stylizer, resample  # noqa: E402
from fststyle.training.criterion import model_criterion  # noqa: E402


def sharpness(image: torch.Tensor) -> float:
    return float((image - F.avg_pool2d(F.pad(image, (1, 1, 1, 1), mode="replicate"), 3, 1)).abs().mean() * 255)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--photo", required=True)
    parser.add_argument("--size", type=int, default=3840)
    parser.add_argument("--judge", type=int, default=1024)
    parser.add_argument("--tile", type=int, default=1024, help="tile (px) for the full-size stroke=1 run, to bound memory")
    parser.add_argument("--out", default="benchmarks/stroke")
    parser.add_argument("--style-cache", default="data/styles", help="where a painting given as an address is (or is downloaded to)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    stylizer = Stylizer.load(args.model, device="cpu", precision="fp32")
    criterion = model_criterion(stylizer.metadata, style_cache=args.style_cache)

    photo = load_tensor(args.photo)[None]
    scale = args.size / max(photo.shape[-2:])
    full = resample(photo, (round(photo.shape[-2] * scale), round(photo.shape[-1] * scale))).clamp(0, 1)
    judge_size = (round(full.shape[-2] * args.judge / args.size), round(full.shape[-1] * args.judge / args.size))
    small_photo = resample(full, judge_size)
    factor = stylizer.stroke_factor("auto", tuple(full.shape[-2:]))
    small = (round(full.shape[-2] / factor), round(full.shape[-1] / factor))
    results = {
        f"stylized at {args.judge} px (reference)": stylizer.run(small_photo),
        "full size, stroke=1": stylizer.run(full, tile=args.tile),
        "full size, stroke=auto, plain enlargement": resample(stylizer.run(resample(full, small)), tuple(full.shape[-2:])).clamp(0, 1),
        "full size, stroke=auto (infer)": stylizer.run(full, stroke="auto"),
    }
    report = {"model": args.model, "photo": args.photo, "size": list(full.shape[-2:]), "judge": list(judge_size), "auto_factor": factor,
              "torch": torch.__version__, "date": datetime.date.today().isoformat(), "results": {}}
    crops = []
    y, x = full.shape[-2] // 2 - 256, full.shape[-1] // 2 - 256
    for name, image in results.items():
        image = (image * 255).round() / 255  # as saved
        judged = image if image.shape[-2:] == small_photo.shape[-2:] else resample(image, judge_size)
        with torch.no_grad():
            style = float(criterion(judged, small_photo)["style"])
        report["results"][name] = {"style_loss_at_judge": style,
                                   "sharpness_full": sharpness(image) if image.shape[-2:] == full.shape[-2:] else None}
        print(f"{name:<45} style loss at {args.judge} px {style:>12.4g}   sharpness {report['results'][name]['sharpness_full'] or float('nan'):6.2f}")
        if image.shape[-2:] == full.shape[-2:]:
            crops.append(image[0, :, y:y + 512, x:x + 512])
    crops.insert(0, full[0, :, y:y + 512, x:x + 512])
    save_image(torch.cat(crops, -1), out / "crops.png")
    report["results"]["photo"] = {"sharpness_full": sharpness(full)}
    (out / "stroke.json").write_text(json.dumps(report, indent=2))
    print(f"photo sharpness {sharpness(full):.2f}; auto factor {factor:.2f}; wrote {out / 'stroke.json'} and crops.png "
          "(photo | stroke=1 | auto plain | auto)")


if __name__ == "__main__":
    main()
