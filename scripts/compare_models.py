"""Two models of the same paintings, each painting judged by one objective: is the new model better?

    python scripts/compare_models.py NEW.pth OLD.pth --photos P1.jpg P2.jpg ... [--size 256] [--json OUT.json]

For every painting both models hold, both pictures of each held-out photo are scored by the painting's
objective as NEW was trained on it (its loss, the painting's weight and Gram size, from NEW's
metadata; ``packaged`` names the model that ships). Prints, per painting, the mean objective of each
model and OLD's over NEW's (above 1: NEW is better). Needs no optimization, so it takes seconds where
``scripts/quality_benchmark.py`` (the ratio to 300 L-BFGS iterations) takes minutes per photo on a CPU.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # fststyle without installing it
from fststyle.evaluation.quality import objective  # noqa: E402
from fststyle.files import write_json  # noqa: E402
from fststyle.images import load_tensor  # noqa: E402
from fststyle.inference.stylizer import Stylizer  # noqa: E402
from fststyle.training.criterion import model_criterion  # noqa: E402


@torch.inference_mode()
def compare(new: Stylizer, old: Stylizer, photos: list[Path], size: int) -> dict[str, dict]:
    """Per painting of both models: each model's mean objective over ``photos`` and OLD / NEW."""
    loaded = [load_tensor(p, size)[None] for p in photos]
    results = {}
    for style in (s for s in new.styles if s in old.styles):
        criterion = model_criterion(new.metadata, style)
        totals = {name: [objective(criterion, model.run(photo, style=style), photo)["total"] for photo in loaded]
                  for name, model in (("new", new), ("old", old))}
        results[style] = {"new": statistics.fmean(totals["new"]), "old": statistics.fmean(totals["old"]),
                          "old_over_new": statistics.fmean(o / n for o, n in zip(totals["old"], totals["new"])),
                          "photos_new_better": sum(n < o for n, o in zip(totals["new"], totals["old"]))}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("new", help="the model whose objectives judge both (.pth or packaged)")
    parser.add_argument("old", help="the model compared with it (.pth or packaged)")
    parser.add_argument("--photos", type=Path, nargs="+", required=True, help="held-out photos (in neither model's training)")
    parser.add_argument("--size", type=int, default=256, help="long side of the photos when judged")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    new, old = (Stylizer.load(m, device="cpu", precision="fp32") for m in (args.new, args.old))
    results = compare(new, old, args.photos, args.size)
    if not results:
        raise SystemExit(f"the two models hold no painting in common ({', '.join(new.styles)} / {', '.join(old.styles)})")
    print(f"{'painting':<18}{'new':>12}{'old':>12}{'old / new':>11}  photos where new is better (of {len(args.photos)})")
    for style, r in results.items():
        print(f"{style:<18}{r['new']:>12.4g}{r['old']:>12.4g}{r['old_over_new']:>11.2f}  {r['photos_new_better']}")
    if args.json:
        write_json(args.json, {"new": args.new, "old": args.old, "photos": [p.name for p in args.photos], "size": args.size,
                               "date": datetime.date.today().isoformat(), "torch": torch.__version__, "paintings": results})


if __name__ == "__main__":
    main()
