"""``python -m fststyle.eval model=PATH[,PATH...] content=DIR``: how good is a style model?
``sweep=DIR`` instead of ``model=`` compares every model of a training sweep (``fststyle.train -m``).

Per photo and on average, with the fixed evaluation network of fststyle.evaluation.metrics: content loss, style
loss, total variation, luminance SSIM to the photo, and inference milliseconds. Optionally relative to
the optimization baseline (Gatys et al.) on the same photos. Writes ``metrics.json`` and
``contact_sheet.png`` into the run folder and prints a table.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import hydra
import numpy as np
import torch
import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from PIL import Image, ImageDraw

from fststyle import CONF_DIR
from fststyle.cli import check_choices, one_value, run_cli
from fststyle.training.dashboard import init_run
from fststyle.errors import first_line
from fststyle.evaluation.flicker import FlickerMeter, against_plain, frames_of
from fststyle.inference.stabilize import Stabilizer, strength_of
from fststyle.files import write_json
from fststyle.images import check_size, load_tensor, open_rgb, resize_long_side, save_image, to_pil
from fststyle.evaluation.metrics import EVAL_STYLE_SIZE, evaluation_loss, grid_figure, image_metrics
from fststyle.evaluation.quality import equivalent_iterations, objective, reference
from fststyle.styles import recorded_painting, resolve_style_image, safe_file_name
from fststyle.inference.stylizer import Stylizer
from fststyle.inference.video import find_media, is_video, stylize_video

METRICS = ("content", "style", "tv", "ssim", "grid", "ms")
CELL = 256  # contact sheet cell size in pixels
LABEL = 18  # height of the label row


def model_paths(value: Any) -> list[Path]:
    items = list(value) if OmegaConf.is_list(value) or isinstance(value, list) else str(value).split(",")
    return [Path(str(p).strip()) for p in items if str(p).strip()]


def plain_labels(paths: list[Path]) -> list[str]:
    """Each model's file stem, with its run folder where two stems are the same."""
    stems = [p.stem for p in paths]
    return [p.stem if stems.count(p.stem) == 1 else f"{p.parent.parent.name}/{p.stem}" for p in paths]


def sweep_models(sweep: Path) -> tuple[list[Path], list[str]]:
    """The exported models of a sweep folder's runs (in job order), each labelled with the values that
    differ between the runs (from each run's .hydra/overrides.yaml). Runs without a model (a failed
    job) are left out with a warning."""
    runs = sorted((d for d in sweep.iterdir() if (d / ".hydra" / "overrides.yaml").is_file()),
                  key=lambda d: (not d.name.isdigit(), int(d.name) if d.name.isdigit() else 0, d.name)) if sweep.is_dir() else []
    found = []
    for run in runs:
        models = sorted((run / "export").glob("*.pth"))
        if models:
            overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text()) or []
            found.append((models[0], dict(o.split("=", 1) if "=" in o else (o, "") for o in overrides)))
        else:
            print(f"warning: {run} has no exported model (did the job fail?): left out", file=sys.stderr)
    if not found:
        raise FileNotFoundError(f"no exported models in the runs of {sweep} (a sweep folder of python -m fststyle.train -m)")
    keys = list(dict.fromkeys(k for _, values in found for k in values))
    swept = [k for k in keys if len({values.get(k) for _, values in found}) > 1]
    labels = [", ".join(f"{k}={values.get(k)}" for k in swept) or path.parent.parent.name for path, values in found]
    return [path for path, _ in found], labels


def style_image_for(cfg: DictConfig, stylizers: list[Stylizer]) -> Path:
    """style.image, else the style image the first model records."""
    if cfg.style.image:
        return resolve_style_image(str(cfg.style.image), "style", None, cfg.style.cache)  # the user's own: trusted
    meta = stylizers[0].metadata
    if not meta.get("style_image"):
        raise ValueError("the model does not record its style image: give style.image=PATH")
    return recorded_painting(str(meta["style_image"]), str(meta.get("style_name", "style")), meta.get("style_sha256"), cfg.style.cache)


def _cell(image: Image.Image) -> Image.Image:
    """The image fitted into a CELL x CELL white square."""
    fitted = resize_long_side(image, CELL)
    cell = Image.new("RGB", (CELL, CELL), "white")
    cell.paste(fitted, ((CELL - fitted.width) // 2, (CELL - fitted.height) // 2))
    return cell


def contact_sheet(style: Image.Image | list[Image.Image], rows: list[list[Image.Image]], labels: list[str]) -> Image.Image:
    """A label row, then the style image (one centred, or a list: one above each model column), then one
    row per photo: photo | stylized per model."""
    columns = len(labels)
    sheet = Image.new("RGB", (columns * CELL, LABEL + CELL * (1 + len(rows))), "white")
    draw = ImageDraw.Draw(sheet)
    for c, label in enumerate(labels):
        draw.text((c * CELL + 4, 3), label[:40], fill="black")
    if isinstance(style, list):
        for c, painting in enumerate(style, start=1):
            sheet.paste(_cell(painting), (c * CELL, LABEL))
    else:
        sheet.paste(_cell(style), ((columns - 1) * CELL // 2, LABEL))
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            sheet.paste(_cell(image), (c * CELL, LABEL + CELL * (r + 1)))
    return sheet


class Column(NamedTuple):
    """One column of the evaluation: a model, or one style of a model that holds several."""
    key: str  # in metrics.json
    label: str
    stylizer: Stylizer
    style: str | None  # the style of a model of several, else None
    painting: Path


def columns_for(cfg: DictConfig, paths: list[Path], labels: list[str]) -> list[Column]:
    """Each model a column judged against the (first) model's painting; a model of several styles one
    column per style, each judged against its own painting."""
    stylizers = [Stylizer.load(p, device=cfg.device) for p in paths]
    columns = []
    for path, label, stylizer in zip(paths, labels, stylizers):
        held = stylizer.metadata.get("styles")
        if not held:
            columns.append(Column(str(path), label, stylizer, None, style_image_for(cfg, stylizers)))
            continue
        for entry in held:
            if cfg.style.image is not None:
                painting = resolve_style_image(str(cfg.style.image), "style", None, cfg.style.cache)
            elif "image" in entry:
                painting = recorded_painting(str(entry["image"]), str(entry["name"]), entry.get("sha256"), cfg.style.cache)
            else:
                raise ValueError(f"{path} does not record its paintings: evaluate its exported .pth, or give style.image=")
            columns.append(Column(f"{path}:{entry['name']}", entry["name"] if len(paths) == 1 else f"{label}:{entry['name']}",
                                  stylizer, entry["name"], painting))
    return columns


def photos_and_videos(content: Any, limit: int | None) -> tuple[list[Path], list[Path]]:
    """The photos and the videos ``content`` names (a list, a file or a folder, searched recursively)."""
    if OmegaConf.is_list(content) or isinstance(content, list):
        media = [Path(p) for p in content]
    elif Path(content).is_file():
        media = [Path(content)]
    else:
        media = find_media(content)
    photos, videos = [p for p in media if not is_video(p)], [p for p in media if is_video(p)]
    if not photos and not videos:
        raise FileNotFoundError(f"no photos or videos found in {content}")
    return (photos[:limit], videos[:limit]) if limit else (photos, videos)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    check_size(cfg.size)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if (cfg.model is None) == (cfg.sweep is None):
        raise ValueError("give model=PATH[,PATH...] or sweep=DIR (a sweep folder of python -m fststyle.train -m)")
    if cfg.sweep is not None:
        paths, labels = sweep_models(Path(cfg.sweep))
    else:
        paths = model_paths(cfg.model)
        labels = plain_labels(paths)
    strength_of(cfg.stabilize)  # a bad value fails before any work
    columns = columns_for(cfg, paths, labels)
    photos, videos = photos_and_videos(cfg.content, cfg.limit)
    device = columns[0].stylizer.device
    paintings = list(dict.fromkeys(c.painting for c in columns))
    criteria = {p: evaluation_loss(load_tensor(p, EVAL_STYLE_SIZE)[None]).to(device) for p in paintings}
    result: dict[str, Any] = {"style_image": str(paintings[0]) if len(paintings) == 1 else [str(p) for p in paintings], "size": cfg.size,
                              "labels": {c.key: c.label for c in columns},
                              "evaluation_network": "bundled VGG19; content relu2_2; style relu1_2, relu2_2, relu3_3, relu4_3"}
    if photos:
        result.update(evaluate_photos(cfg, columns, photos, criteria, run_dir))
    if videos:
        result["videos"] = evaluate_videos(cfg, columns, videos, criteria, run_dir)
    if cfg.reference and photos:
        result["notes"] = {"equivalent_iterations": "null where the model's picture is better than the reference's last one "
                                                    "(it matches more iterations than the reference ran); strict JSON has no infinity"}
    write_json(run_dir / "metrics.json", result)
    print(f"wrote: {run_dir.resolve() / 'metrics.json'}" + (" and contact_sheet.png" if photos else ""))
    return result


def evaluate_photos(cfg: DictConfig, columns: list[Column], photos: list[Path], criteria: dict[Path, torch.nn.Module],
                    run_dir: Path) -> dict[str, Any]:
    """Per photo and column: the metrics (and with ``reference``, the optimization baseline per
    painting: "optimization", or "optimization:<style>" for several); the contact sheet."""
    device = columns[0].stylizer.device
    paintings = list(criteria)
    baselines = {p: "optimization" if len(paintings) == 1 else f"optimization:{next(c.style for c in columns if c.painting == p)}"
                 for p in paintings}
    per_image: list[dict[str, Any]] = []
    rows: list[list[Image.Image]] = []  # per photo: the photo, then each column's result
    evaluated = []
    for photo_path in photos:
        try:
            photo = load_tensor(photo_path, cfg.size)[None].to(device)
        except Exception as err:  # one bad photo does not spoil the evaluation
            print(f"warning: skipping unreadable photo {photo_path}: {err}", file=sys.stderr)
            continue
        evaluated.append(photo_path)
        row = [to_pil(photo[0])]
        references = {}
        optimizations = {}
        if cfg.reference:
            for painting, criterion in criteria.items():
                optimized = reference(photo, criterion, cfg.reference_steps)
                references[painting] = {**image_metrics(criterion, optimized.image, photo), "grid": grid_figure(optimized.image)}
                optimizations[painting] = optimized
                per_image.append({"photo": str(photo_path), "model": baselines[painting], "label": baselines[painting], **references[painting],
                                  "ms": None, "iterations": optimized.iterations})
        for column in columns:
            column.stylizer.run(photo[..., :64, :64], style=column.style)  # warm-up, so that ms is the steady state
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = column.stylizer.run(photo, style=column.style)
            if device.type == "cuda":
                torch.cuda.synchronize()
            ms = (time.perf_counter() - start) * 1000
            record = {"photo": str(photo_path), "model": column.key, "label": column.label,
                      **image_metrics(criteria[column.painting], out, photo), "grid": grid_figure(out), "ms": ms}
            baseline = references.get(column.painting)
            if baseline:
                record.update({f"{k}_ratio": record[k] / baseline[k] for k in ("content", "style") if baseline[k] > 0})
                total = objective(criteria[column.painting], out, photo)["total"]
                best = optimizations[column.painting]
                record.update(total_ratio=total / best.final["total"], equivalent_iterations=equivalent_iterations(total, best.curve))
            per_image.append(record)
            row.append(to_pil(out[0]))
        rows.append(row)

    if not evaluated:
        raise ValueError(f"none of the photos in {cfg.content} could be read")
    names = [c.key for c in columns] + ([baselines[p] for p in paintings] if cfg.reference else [])
    summary = {}
    for name in names:
        records = [r for r in per_image if r["model"] == name]
        keys = [k for k in records[0] if k not in ("photo", "model", "label") and any(r[k] is not None for r in records)]
        # The iterations matched: the median (a photo better than the whole reference run counts as inf). Over the
        # photos that have the figure (grid: those of 64 px a side or more).
        summary[name] = {k: (statistics.median if k == "equivalent_iterations" else statistics.fmean)(r[k] for r in records if r[k] is not None)
                         for k in keys}
    style = open_rgb(paintings[0]) if len(paintings) == 1 else [open_rgb(c.painting) for c in columns]
    sheet = contact_sheet(style, rows, ["photo", *(c.label for c in columns)])
    save_image(sheet, run_dir / "contact_sheet.png")
    print_table(summary, {**{c.key: c.label for c in columns}, **{b: b for b in baselines.values()}})
    if cfg.logger == "wandb":
        log_to_wandb(cfg, per_image, rows, sheet)
    return {"photos": [str(p) for p in evaluated], "mean": summary, "per_image": per_image}


def evaluate_videos(cfg: DictConfig, columns: list[Column], videos: list[Path], criteria: dict[Path, torch.nn.Module],
                    run_dir: Path) -> list[dict[str, Any]]:
    """Per video and column: the flicker of the stylized video, of the input and the clip's consistent
    floor (fststyle.evaluation.flicker), with ``stabilize`` also the plain model's on the same frames (and the
    ratio to it), and the image metrics of every ``video_metric_every``-th frame; the stylized videos
    are written to ``<run folder>/videos/``."""
    records = []
    root = Path(os.path.commonpath([v.resolve().parent for v in videos]))
    for video in videos:
        where = run_dir / "videos" / video.resolve().parent.relative_to(root)  # two videos of one name in two folders: two files
        for column in columns:
            meter, losses, seen = FlickerMeter(), [], [0]
            stabilizer = Stabilizer(cfg.stabilize)
            plain = FlickerMeter() if stabilizer.strength > 0 else None  # the model's own frames, before stabilization
            criterion = criteria[column.painting]

            def run(batch: torch.Tensor, column: Column = column, stabilizer: Stabilizer = stabilizer, plain: FlickerMeter | None = plain) -> torch.Tensor:
                styled = column.stylizer.run(batch, style=column.style)
                if plain is not None:
                    plain.update(frames_of(batch), frames_of(styled))
                return stabilizer.run(batch, styled)

            def observe(frames: np.ndarray, styled: np.ndarray, meter: FlickerMeter = meter, losses: list = losses, seen: list = seen,
                        criterion: torch.nn.Module = criterion) -> None:
                meter.update(frames, styled)
                for frame, out in zip(frames, styled):
                    if seen[0] % cfg.video_metric_every == 0:
                        as_tensor = [torch.from_numpy(x).permute(2, 0, 1)[None].float().div(255).to(column.stylizer.device) for x in (out, frame)]
                        losses.append(image_metrics(criterion, *as_tensor))
                    seen[0] += 1

            dst = where / f"{video.stem}.{safe_file_name(column.label)}.mp4"
            try:
                stylize_video(video, dst, run, cfg.size, observe=observe)
            except Exception as err:  # one unreadable video does not spoil the evaluation
                print(f"warning: skipping video {video}: {first_line(err)}", file=sys.stderr)
                break
            means = {k: statistics.fmean(m[k] for m in losses) for k in ("content", "style", "tv", "ssim")} if losses else {}
            flicker = meter.result() | ({**against_plain(meter.result(), plain.result()), "plain": plain.result()} if plain else {})
            records.append({"video": str(video), "model": column.key, "label": column.label, **flicker, **means,
                            "frames": seen[0], "output": str(dst)})
    if not records:
        raise ValueError(f"none of the videos in {cfg.content} could be read")
    headers = ("flicker", "x input", "x floor", "x plain", "Farneback", "x input", "x floor", "x plain", "content", "style")
    print(f"{'video':<24}{'model':<28}" + "".join(f"{k:>11}" for k in headers))
    for r in records:
        cells = [r[f"flicker{s}"] if k == "flicker" else r.get(f"flicker_{k}{s}") for s in ("", "_farneback")
                 for k in ("flicker", "ratio", "floor_ratio", "vs_plain")] + [r.get("content"), r.get("style")]
        print(f"{Path(r['video']).name[:23]:<24}{r['label'][:27]:<28}" + "".join(f"{v:>11.4g}" if v is not None else f"{'-':>11}" for v in cells))
    return records


def print_table(summary: dict[str, dict[str, float]], labels: dict[str, str]) -> None:
    keys = [k for k in ("content", "style", "tv", "ssim", "grid", "ms", "content_ratio", "style_ratio", "total_ratio", "equivalent_iterations", "iterations")
            if any(k in s for s in summary.values())]
    print(f"{'model':<40}" + "".join(f"{k:>14}" for k in keys))
    for name, values in summary.items():
        print(f"{labels[name][:39]:<40}" + "".join(f"{values[k]:>14.4g}" if k in values else f"{'':>14}" for k in keys))


def log_to_wandb(cfg: DictConfig, per_image: list[dict[str, Any]], rows: list[list[Image.Image]], sheet: Image.Image) -> None:
    """A W&B table: one row per photo and model with the stylized image and its metrics."""
    import wandb

    run = init_run(project="fststyle", job_type="eval", dir=HydraConfig.get().runtime.output_dir,
                   config=OmegaConf.to_container(cfg, resolve=True))
    table = wandb.Table(columns=["photo", "model", "image", *METRICS])
    models = [r for r in per_image if not r["model"].startswith("optimization")]
    results = [image for row in rows for image in row[1:]]  # same order as `models`
    for record, image in zip(models, results):
        table.add_data(Path(record["photo"]).name, record["label"], wandb.Image(image), *(record[k] for k in METRICS))
    run.log({"eval/table": table, "eval/contact_sheet": wandb.Image(sheet)})
    run.finish()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR / "cli"), config_name="eval")
def main(cfg: DictConfig) -> None:
    run_cli(lambda: evaluate(cfg))


def cli() -> None:
    """``python -m fststyle.eval`` and the ``fststyle-eval`` command."""
    sys.argv = one_value(sys.argv, "model", "[]")  # model=a.pth,b.pth: one run comparing both models
    check_choices(CONF_DIR / "cli")
    main()


if __name__ == "__main__":
    cli()
