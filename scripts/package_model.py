"""Build the model that ships with fststyle (``fststyle/models/packaged.pth``) from a finished training run.

    python scripts/package_model.py --run RUN_FOLDER --quality QUALITY_DIR ... --photos P1.jpg P2.jpg ...
        [--partial] [--output fststyle/models/packaged.pth]

The small packaged model: ``--output fststyle/models/packaged_small.pth``, then its ONNX copy for the quick
path, checked against PyTorch: ``python -m fststyle.export model=packaged-small format=onnx
output=fststyle/models/packaged_small.onnx`` (tests/test_packaged_small.py checks the two agree).

Stores the run's exported model with float16 weights (half the file) after measuring what that costs:
each style's training objective on the held-out ``--photos`` (at 256 px), float16 weights against
float32 (the network still runs in float32). Into the file's metadata go the training command, the
training data, steps and date (beside the run's own record: images, hours, photos, its warm start), each
style's quality as ``scripts/quality_benchmark.py --model MODEL --style NAME`` measured it (the
``quality.json`` of each ``--quality`` folder): the ratio of its objective to 300 L-BFGS iterations and
the iteration count it matches, on photos it never saw; and ``--compare``'s figures
(``scripts/compare_models.py NEW OLD --json``: each painting's objective against the previous model's).
A style without a ``quality.json`` is named as not yet measured (``--partial``; else an error).
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import statistics
import sys
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # fststyle without installing it
from fststyle.images import load_tensor  # noqa: E402
from fststyle.blend import style_names  # noqa: E402
from fststyle.model_file import PACKAGED_MODEL, load_model, save_model  # noqa: E402
from fststyle.evaluation.quality import objective  # noqa: E402
from fststyle.exporters.formats import public_metadata  # noqa: E402
from fststyle.training.criterion import model_criterion  # noqa: E402


LOCAL = ("hydra.", "ckpt_path", "data.root", "style_cache")  # overrides that name this machine's paths


def training_record(run: Path) -> dict:
    """What the run was: its command, the photos it trained on (from its log) and when it ended."""
    overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
    # A resumed or scripted run may set a key twice (the script's value, then the caller's): the last one holds.
    # Every file an override names (init=, teacher=, style.image=) by its name only.
    pairs = [o.split("=", 1) for o in overrides if not o.startswith(LOCAL)]
    last = {key: f"{key}={public_metadata(value)}" for key, value in pairs}
    command = "python -m fststyle.train " + " ".join(last.values())
    # "training NAME on N photos from FOLDER[, FOLDER]; run folder RUN": the count and each folder's last
    # two parts (no local path ships inside the package).
    line = next(line for line in (run / "train.log").read_text().splitlines() if " - training " in line)
    count, folders = re.search(r" on (\d+) photos from (.+?); run folder", line).groups()
    data = f"{count} photos from " + ", ".join(f"{Path(f).parent.name}/{Path(f).name}" for f in folders.split(", "))
    ended = datetime.date.fromtimestamp((run / "export").stat().st_mtime).isoformat()
    return {"command": command, "data": data, "date": ended}


def quality_of(folders: list[Path], styles: list[str], partial: bool = False) -> dict[str, dict | str]:
    """Each style's quality.json summary (scripts/quality_benchmark.py --style NAME), by style."""
    found = {}
    for folder in folders:
        report = json.loads((folder / "quality.json").read_text())
        found[report["style"]] = {"ratio": round(report["mean_ratio"]["total"], 3),
                                  "equivalent_iterations": round(report["median_equivalent_iterations"], 1),
                                  "equivalent_iterations_noise": (round(report["median_equivalent_iterations_noise"], 1)
                                                                  if report.get("median_equivalent_iterations_noise") is not None else "not measured"),
                                  "photos": [Path(p).name for p in report["photos"]], "size": report["size"],
                                  "reference_steps": report["reference_steps"], "date": report["date"]}
    missing = [s for s in styles if s not in found]
    if missing and not partial:
        raise SystemExit(f"no quality.json for {', '.join(missing)}: run scripts/quality_benchmark.py --model MODEL --style NAME "
                         "first (or --partial)")
    return {**found, **{s: "not measured yet" for s in missing}}


@torch.inference_mode()
def half_cost(model: Path, photos: list[Path]) -> dict[str, float]:
    """Per style: the relative change of its objective on ``photos`` when the weights are rounded to
    float16 (mean over the photos; positive: worse)."""
    net, metadata = load_model(model)
    rounded, _ = load_model(model)
    for param in rounded.parameters():
        param.copy_(param.half().float())
    costs = {}
    for index, style in enumerate(style_names(metadata)):
        criterion = model_criterion(metadata, style)
        weights = torch.nn.functional.one_hot(torch.tensor([index]), len(style_names(metadata))).float()
        changes = []
        for path in photos:
            photo = load_tensor(path, 256)[None]
            full, half = (objective(criterion, n(photo, weights), photo)["total"] for n in (net, rounded))
            changes.append(half / full - 1)
        costs[style] = statistics.fmean(changes)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="the finished training run folder")
    parser.add_argument("--quality", type=Path, nargs="*", default=[], help="quality_benchmark.py output folders, one per style")
    parser.add_argument("--photos", type=Path, nargs="+", required=True, help="held-out photos for the float16 check")
    parser.add_argument("--compare", type=Path, help="scripts/compare_models.py's JSON: this model against the previous one")
    parser.add_argument("--partial", action="store_true", help="package although some styles have no quality.json yet")
    parser.add_argument("--output", type=Path, default=PACKAGED_MODEL)
    args = parser.parse_args()

    config = yaml.safe_load((args.run / ".hydra" / "config.yaml").read_text())
    exported = args.run / "export" / f"{config['style']['name']}.pth"
    net, metadata = load_model(exported)
    styles = style_names(metadata)
    costs = half_cost(exported, args.photos)
    for style, cost in costs.items():
        print(f"{style:<16} float16 weights change the objective by {100 * cost:+.3f}% on {len(args.photos)} photos")
    metadata = {**metadata, "training": {**metadata.get("training", {}), **training_record(args.run)},
                "quality": quality_of(args.quality, styles, args.partial), "float16_cost": {s: round(c, 5) for s, c in costs.items()}}
    if args.compare:
        compared = json.loads(args.compare.read_text())
        metadata["compared_with_previous"] = {"photos": compared["photos"], "size": compared["size"], "date": compared["date"],
                                              "old_over_new": {s: round(r["old_over_new"], 3) for s, r in compared["paintings"].items()}}
    model_config = {**config["model"], "num_styles": len(styles)}
    model_config.pop("_target_", None)
    # The file it started from by its name only: no local path ships inside the package.
    metadata.update({k: public_metadata(metadata[k]) for k in ("init", "teacher") if isinstance(metadata.get(k), str)})
    written = save_model(args.output, net, model_config, metadata, half=True)
    print(f"wrote {written} ({written.stat().st_size / 2**20:.2f} MB)")


if __name__ == "__main__":
    main()
