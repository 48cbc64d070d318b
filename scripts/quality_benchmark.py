"""How close a training recipe gets to the optimization result it imitates, on photos it never saw.

    python scripts/quality_benchmark.py --photos P1.jpg P2.jpg ... [--size 256] [--reference-steps 300]
        [--out benchmarks/quality/NAME] [KEY=VALUE ... | --run RUN_FOLDER]

Trains with `python -m fststyle.train KEY=VALUE ...` (any Hydra overrides: the budget is
`trainer.max_steps=`), then judges the exported model by its own training objective (its loss network,
layers and weights; the style image at its `style.size`) on the held-out photos at `--size`, against
L-BFGS image optimization of that same objective from each photo and from white noise
(`--reference-steps` iterations; the iterations matched are reported from both starts: from the photo,
our stricter count, and from noise, as Johnson et al. count).
`--run` scores the model of a finished training run instead (no training), `--model PATH` an exported
model file (or `packaged`; its loss and paintings from its metadata); `--style NAME` judges one style of
a model of several (e.g. one added with train=norms).
Prints a table (content, style, total, each as a ratio to the reference; training minutes; images/s)
and writes `quality.json` and `contact_sheet.png` (photo | model | optimization) into `--out`.

The references are cached in `--cache` (default benchmarks/quality/references), one file per photo,
style image, size, loss config and iteration count, so comparing recipes does not recompute them.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # fststyle without installing it
from fststyle.eval import contact_sheet  # noqa: E402
from fststyle.files import write_json  # noqa: E402
from fststyle.images import load_tensor, open_rgb, save_image, to_pil  # noqa: E402
from fststyle.evaluation.quality import STARTS, as_8bit, judge, objective, reference, reference_key  # noqa: E402
from fststyle.styles import resolve_style_image, sha256_of  # noqa: E402
from fststyle.inference.stylizer import Stylizer  # noqa: E402
from fststyle.training.criterion import build_criterion, held_styles, load_style_image, painting_loss, painting_weight  # noqa: E402


def train(overrides: list[str], run_dir: Path) -> float:
    """Run the training; returns its minutes."""
    start = time.perf_counter()
    command = [sys.executable, "-m", "fststyle.train", "logger=csv", *overrides, f"hydra.run.dir={run_dir}"]
    subprocess.run(command, check=True)
    return (time.perf_counter() - start) / 60


def images_per_s(run_dir: Path) -> float | None:
    """The mean of the images/s the run logged (None without a CSV log, e.g. a run logged to W&B)."""
    if not (run_dir / "csv" / "metrics.csv").is_file():
        return None
    with open(run_dir / "csv" / "metrics.csv") as f:
        rates = [float(row["train/images_per_sec"]) for row in csv.DictReader(f) if row.get("train/images_per_sec")]
    return statistics.fmean(rates) if rates else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", nargs="+", required=True, help="held-out photos (not in the training data)")
    parser.add_argument("--size", type=int, default=256, help="long side of the photos when judged")
    parser.add_argument("--reference-steps", type=int, default=300)
    parser.add_argument("--out", default=f"benchmarks/quality/{datetime.datetime.now():%Y-%m-%d_%H-%M-%S}")
    parser.add_argument("--cache", default="benchmarks/quality/references")
    parser.add_argument("--run", help="score the model of this finished training run (a run folder with csv logs) instead of training")
    parser.add_argument("--model", help="score this exported model (.pth, or packaged) instead of training: its loss and paintings from its metadata")
    parser.add_argument("--style", help="a model of several styles: the style to judge (against its own painting)")
    parser.add_argument("--starts", nargs="+", choices=STARTS, default=list(STARTS),
                        help="the references' starts (photo is required: the ratios are to it; noise gives Johnson et al.'s count)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for python -m fststyle.train")
    args = parser.parse_args()
    out, cache = Path(args.out), Path(args.cache)
    if "photo" not in args.starts:
        parser.error("--starts must include photo: the ratios are to the optimization started from the photo")
    if (args.run or args.model) and args.overrides:
        parser.error("--run and --model score a finished model: no overrides")

    out.mkdir(parents=True, exist_ok=True)
    run_dir = Path(args.run) if args.run else None if args.model else out / "run"
    minutes = train(args.overrides, run_dir) if not (args.run or args.model) else None
    rate = images_per_s(run_dir) if run_dir else None
    if run_dir:
        cfg = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
        stylizer = Stylizer.load(run_dir / "export" / f"{cfg['style']['name']}.pth", device="auto", precision="fp32")
        entry, loss, style_cache = cfg["style"], cfg["loss"], cfg["style_cache"]
    else:
        stylizer = Stylizer.load(args.model, device="auto", precision="fp32")
        entry, loss, style_cache = held_styles(stylizer.metadata)[0], stylizer.metadata["loss"], "data/styles"
    if args.style:
        entry = next((e for e in held_styles(stylizer.metadata) if e["name"] == args.style), None)
        if entry is None:
            parser.error(f"--style {args.style}: the model holds {', '.join(stylizer.styles)}")
    style_path = resolve_style_image(entry["image"], entry["name"], entry.get("sha256"), style_cache)
    loss = OmegaConf.to_container(painting_loss(loss, painting_weight(entry)))  # the painting's own weight in its objective
    criterion = build_criterion(OmegaConf.create(loss), load_style_image(style_path, entry["size"])).to(stylizer.device)

    rows, records, cached = [], [], 0
    for photo_path in map(Path, args.photos):
        photo = load_tensor(photo_path, args.size)[None].to(stylizer.device)
        references = {start: reference(photo, criterion, args.reference_steps, cache, start=start,
                                       key=reference_key(photo_path, sha256_of(style_path), args.size, loss, entry["size"],
                                                         args.reference_steps, cut="whole", start=start)) for start in args.starts}
        cached += sum(r.cached for r in references.values())
        best = references["photo"]
        stylized = as_8bit(stylizer.run(photo, style=args.style))
        records.append({"photo": str(photo_path), **judge(criterion, stylized, photo, references), "reference": objective(criterion, best.image, photo),
                        "reference_curve": {n: v["total"] for n, v in best.curve.items()},
                        **({"reference_curve_noise": {n: v["total"] for n, v in references["noise"].curve.items()}} if "noise" in references else {})})
        rows.append([to_pil(photo[0]), to_pil(stylized[0]), to_pil(best.image[0])])

    ratios = {k: statistics.fmean(r["ratio"][k] for r in records) for k in ("content", "style", "total")}
    # The median: one photo better than the whole reference run (inf) does not swamp the others.
    matched = statistics.median(r["equivalent_iterations"] for r in records)
    matched_noise = statistics.median(r["equivalent_iterations_noise"] for r in records) if "noise" in args.starts else None
    overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) if run_dir else None
    report = {"overrides": overrides, "run": str(run_dir) if run_dir else None, "model": args.model, "style": args.style, "photos": args.photos, "size": args.size, "reference_steps": args.reference_steps,
              "minutes": round(minutes, 2) if minutes is not None else None, "images_per_s": rate, "mean_ratio": ratios,
              "median_equivalent_iterations": matched, "median_equivalent_iterations_noise": matched_noise, "per_photo": records,
              "references_cached": cached, "torch": torch.__version__, "date": datetime.date.today().isoformat()}
    # Strict JSON: a photo better than the whole reference run matches "inf" iterations, written as null.
    write_json(out / "quality.json", report)
    save_image(contact_sheet(open_rgb(style_path), rows, ["photo", "model", "optimization"]), out / "contact_sheet.png")
    print(f"{'photo':<28}{'content':>10}{'style':>10}{'total':>10}{'iterations':>12}{'from noise':>12}   (model / {args.reference_steps} "
          "L-BFGS iterations; the iteration count it matches from the photo and from noise)")
    for r in records:
        print(f"{Path(r['photo']).name:<28}" + "".join(f"{r['ratio'][k]:>10.2f}" for k in ("content", "style", "total"))
              + f"{r['equivalent_iterations']:>12.1f}" + (f"{r['equivalent_iterations_noise']:>12.1f}" if matched_noise is not None else f"{'-':>12}"))
    print(f"{'mean (iterations: median)':<28}" + "".join(f"{ratios[k]:>10.2f}" for k in ("content", "style", "total"))
          + f"{matched:>12.1f}" + (f"{matched_noise:>12.1f}" if matched_noise is not None else f"{'-':>12}"))
    took = f"training {minutes:.1f} min, " if minutes is not None else f"run {run_dir or args.model}, "
    took += f"{rate:.1f} images/s" if rate else "images/s not logged"
    print(f"{took}; {cached} of {len(records) * len(args.starts)} references from the cache; wrote {out / 'quality.json'}")


if __name__ == "__main__":
    main()
