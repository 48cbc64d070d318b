"""The learning curve of a training run, as a picture: how good the model is after how much training.

    python scripts/learning_curve.py RUN_FOLDER [RUN_FOLDER ...] [--out docs/learning_curve.png] [--title TEXT]

Reads each run's ``quality.jsonl`` (written by ``quality_every=N`` or ``quality_every=log``: one line per
measurement, carried across resumes) and draws, against the training images seen (log scale):

1. the model's objective on the held-out photos as a ratio to 300 L-BFGS iterations of its
   optimization (total, content and style; 1.0 would be the optimization's picture);
2. the L-BFGS iterations the model matches, started from the photo and from white noise (Johnson et
   al.'s count);
3. each style layer's ratio, which says where the model falls short (fine texture: relu1_2; strokes:
   relu3_3; larger forms: relu4_3).

A step measured twice (a resumed run measures its last step again) keeps its last line. Prints the
figures as a table too, so the curve can be read without the picture. Needs matplotlib
(``pip install matplotlib``, in the ``test`` extra).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path


def read_curve(run: Path) -> list[dict]:
    """The run's measurements, one per step (the last line of each step), in step order."""
    path = run / "quality.jsonl"
    if not path.is_file():
        raise SystemExit(f"error: {path} not found: train with quality_every=log (or a step count) to write it")
    by_step = {}
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            by_step[record["step"]] = record
    if not by_step:
        raise SystemExit(f"error: {path} holds no measurement yet")
    return [by_step[s] for s in sorted(by_step)]


def table(name: str, curve: list[dict]) -> str:
    layers = sorted(k for k in curve[0] if k.startswith("style_ratio/"))
    header = f"{'step':>7}{'images':>9}{'hours':>7}{'total':>7}{'content':>8}{'style':>7}{'iter.':>7}{'noise':>7}" + \
        "".join(f"{k.split('/')[1]:>9}" for k in layers)
    rows = [f"{name}", header]
    for r in curve:
        iters = [r.get(k) for k in ("equivalent_iterations", "equivalent_iterations_noise")]
        rows.append(f"{r['step']:>7}{r.get('images', 0):>9}{r.get('hours', 0):>7.2f}{r['quality']:>7.2f}{r['quality_content']:>8.2f}"
                    f"{r['quality_style']:>7.2f}" + "".join(f"{v:>7.1f}" if v is not None else f"{'>300':>7}" for v in iters)
                    + "".join(f"{r[k]:>9.2f}" for k in layers))
    return "\n".join(rows)


def plot(curves: dict[str, list[dict]], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    for name, curve in curves.items():
        images = [r.get("images") or r["step"] for r in curve]
        label = f"{name}: " if len(curves) > 1 else ""
        ax = axes[0]
        ax.plot(images, [r["quality"] for r in curve], "o-", label=f"{label}total")
        ax.plot(images, [r["quality_content"] for r in curve], "s--", alpha=0.7, label=f"{label}content")
        ax.plot(images, [r["quality_style"] for r in curve], "^--", alpha=0.7, label=f"{label}style")
        ax = axes[1]
        for key, marker, what in (("equivalent_iterations", "o-", "from the photo"), ("equivalent_iterations_noise", "s-", "from noise")):
            points = [(i, r[key]) for i, r in zip(images, curve) if r.get(key) is not None]
            if points:
                ax.plot(*zip(*points), marker, label=f"{label}{what}")
        ax = axes[2]
        for key in sorted(k for k in curve[0] if k.startswith("style_ratio/")):
            ax.plot(images, [r[key] for r in curve], "o-", label=f"{label}{key.split('/')[1]}")
    axes[0].axhline(1.0, color="grey", lw=0.8)
    axes[0].set(title="objective / the optimization's (300 L-BFGS its.)", ylabel="ratio (lower is better)")
    axes[1].set(title="L-BFGS iterations matched", ylabel="iterations (higher is better)")
    axes[2].axhline(1.0, color="grey", lw=0.8)
    axes[2].set(title="style loss per layer / the optimization's", ylabel="ratio")
    for ax in axes:
        ax.set_xscale("log")
        # Ticks at the measured points, written out (matplotlib's log minor labels overlap here).
        ax.set_xticks(images, [f"{n:,}" for n in images])
        ax.minorticks_off()
        ax.set_xlabel("training images seen")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders holding quality.jsonl")
    parser.add_argument("--out", type=Path, default=Path("learning_curve.png"))
    parser.add_argument("--title", default="learning curve on held-out photos")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("matplotlib") is None:
        raise SystemExit("error: the plot needs matplotlib: pip install matplotlib")
    curves = {run.name: read_curve(run) for run in args.runs}
    for name, curve in curves.items():
        print(table(name, curve))
    plot(curves, args.out, args.title)
    print(f"wrote: {args.out}")


if __name__ == "__main__":
    sys.exit(main())
