"""How strongly each model stylizes: the style loss of its output relative to that of the photo itself.

    python scripts/style_strength.py --models A.pth B.pth ... --photos P1.jpg P2.jpg ... [--size 256] [--out FILE]

For each model, on each photo (long side `--size`): the style loss of the photo and of the model's
output against the model's own painting, both under fststyle.eval's fixed evaluation network (so that
paintings and loss settings are compared on one scale), and their ratio (the style reduction: 1 = no
change, smaller = more of the painting's style). Prints the mean reduction per model and the spread
(largest / smallest) across models; writes a JSON report with `--out`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # fststyle without installing it
from fststyle.images import load_tensor  # noqa: E402
from fststyle.evaluation.metrics import EVAL_STYLE_SIZE, evaluation_loss  # noqa: E402
from fststyle.styles import resolve_style_image  # noqa: E402
from fststyle.inference.stylizer import Stylizer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--photos", nargs="+", required=True)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--style-cache", default="data/styles")
    parser.add_argument("--out")
    args = parser.parse_args()
    photos = [load_tensor(p, args.size)[None] for p in args.photos]
    rows = []
    for path in args.models:
        stylizer = Stylizer.load(path, device="cpu", precision="fp32")
        meta = stylizer.metadata
        painting = resolve_style_image(meta["style_image"], meta["style_name"], meta.get("style_sha256"), args.style_cache)
        criterion = evaluation_loss(load_tensor(painting, EVAL_STYLE_SIZE)[None])
        reductions = []
        with torch.no_grad():
            for photo in photos:
                before = float(criterion(photo, photo)["style"])
                after = float(criterion(stylizer.run(photo), photo)["style"])
                reductions.append(after / before)
        rows.append({"model": path, "style": meta["style_name"], "style_norm": (meta.get("loss") or {}).get("style_norm", "none"),
                     "reduction": statistics.fmean(reductions), "per_photo": reductions})
        print(f"{meta['style_name']:<18}{rows[-1]['style_norm']:<8}{rows[-1]['reduction']:>10.3f}   {path}")
    values = [r["reduction"] for r in rows]
    spread = max(values) / min(values)
    print(f"spread (largest / smallest mean reduction): {spread:.2f}")
    if args.out:
        report = {"photos": args.photos, "size": args.size, "models": rows, "spread": spread, "torch": torch.__version__,
                  "date": datetime.date.today().isoformat()}
        Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
