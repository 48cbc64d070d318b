"""scripts/quality_benchmark.py on a tiny config: it trains, scores against cached optimization results."""

import importlib.util
import json
import math
import subprocess
import sys

import pytest
import torch
from conftest import REPO, tiny_args
from PIL import Image


@pytest.mark.slow
def test_quality_benchmark_scores_a_recipe_against_cached_references(tmp_path, photos_dir, starry_night, monkeypatch, capsys):
    photos = [str(photos_dir / "horses.jpg"), str(photos_dir / "stata.jpg")]
    overrides = [a for a in tiny_args(tmp_path / "unused", photos_dir, starry_night, "trainer.max_steps=3", "sample_every=0")
                 if not a.startswith(("hydra.run.dir", "logger="))]
    spec = importlib.util.spec_from_file_location("quality_benchmark", REPO / "scripts" / "quality_benchmark.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)

    def run(out: str, *args: str) -> dict:
        """The script in this process (its training, when it trains, in a new one, as always)."""
        monkeypatch.setattr(sys, "argv", ["quality_benchmark.py", "--photos", *photos, "--size", "48", "--reference-steps", "3",
                                          "--out", str(tmp_path / out), "--cache", str(tmp_path / "refs"), *args])
        benchmark.main()
        printed, report = capsys.readouterr().out, json.loads((tmp_path / out / "quality.json").read_text())
        assert "(model / 3 L-BFGS iterations; the iteration count it matches from the photo and from noise)" in printed
        starts = 1 if "--starts" in args else 2  # two photos, a reference from each start
        assert f"; {report['references_cached']} of {2 * starts} references from the cache;" in printed
        return report

    first = run("a", *overrides)
    assert len(first["per_photo"]) == 2 and first["references_cached"] == 0 and first["minutes"] > 0
    # Two references per photo: from the photo and from white noise.
    assert len(list((tmp_path / "refs").glob("*.png"))) == 4 and len(list((tmp_path / "refs").glob("*.json"))) == 4
    # The figures again, here: the run's model on the photo, the optimization run again, each scored by
    # the run's own objective (as a saved picture).
    from omegaconf import OmegaConf

    from fststyle import Stylizer
    from fststyle.images import load_tensor
    from fststyle.evaluation.quality import optimize_image
    from fststyle.evaluation.quality import as_8bit
    from fststyle.training.criterion import build_criterion

    loss = OmegaConf.load(tmp_path / "a" / "run" / ".hydra" / "config.yaml").loss
    criterion = build_criterion(loss, load_tensor(starry_night, 128)[None])
    stylizer = Stylizer.load(tmp_path / "a" / "run" / "export" / "starry_night.pth", device="cpu", precision="fp32")
    for record, path in zip(first["per_photo"], photos):
        photo = load_tensor(path, 48)[None]
        with torch.no_grad():
            model = criterion(as_8bit(stylizer.run(photo)), photo)["loss"].item()
            best = criterion(as_8bit(optimize_image(photo, criterion, 3).image), photo)["loss"].item()
        assert record["model"]["total"] == pytest.approx(model, rel=1e-4) and record["reference"]["total"] == pytest.approx(best, rel=1e-3)
        assert record["ratio"]["total"] == pytest.approx(model / best, rel=2e-3)
        assert record["reference_curve"]["0"] == pytest.approx(criterion(photo, photo)["loss"].item(), rel=1e-4)
        # The iterations matched, read off each curve here by hand: its start (0) and its end (3), linear
        # in the logarithm of the objective between them.
        noise = torch.rand(photo.shape, generator=torch.Generator().manual_seed(0))
        noise_curve = {0: criterion(as_8bit(noise), photo)["loss"].item(), 3: record["reference_curve_noise"]["3"]}
        assert record["reference_curve_noise"]["0"] == pytest.approx(noise_curve[0], rel=1e-4)
        for name, curve in (("equivalent_iterations", {0: record["reference_curve"]["0"], 3: best}), ("equivalent_iterations_noise", noise_curve)):
            expected = 0.0 if model >= curve[0] else None if model < curve[3] else 3 * math.log(curve[0] / model) / math.log(curve[0] / curve[3])
            assert record[name] == (None if expected is None else pytest.approx(expected, rel=1e-3, abs=1e-3)), (name, curve, model)
    with Image.open(tmp_path / "a" / "contact_sheet.png") as sheet:
        assert sheet.size == (3 * 256, 18 + 3 * 256)  # labels, the painting, one row per photo: photo | model | optimization
    # The finished run scored again (no training); same photos, style, size and loss: the references
    # come from the cache, and both scores are the same.
    second = run("b", "--run", str(tmp_path / "a" / "run"))
    assert second["references_cached"] == 4 and second["minutes"] is None and second["overrides"] == first["overrides"]
    assert [(r["model"], r["reference"]) for r in second["per_photo"]] == [(r["model"], r["reference"]) for r in first["per_photo"]]
    # The exported model file alone (its loss and painting from its metadata): the same key, the same scores.
    third = run("c", "--model", str(tmp_path / "a" / "run" / "export" / "starry_night.pth"))
    assert third["references_cached"] == 4 and third["run"] is None and third["overrides"] is None
    assert [(r["model"], r["reference"]) for r in third["per_photo"]] == [(r["model"], r["reference"]) for r in first["per_photo"]]
    # From the photo only (--starts photo): the same ratios, from the cache; no count from noise.
    photo_only = run("d", "--model", str(tmp_path / "a" / "run" / "export" / "starry_night.pth"), "--starts", "photo")
    assert photo_only["references_cached"] == 2 and photo_only["median_equivalent_iterations_noise"] is None
    assert [r["ratio"] for r in photo_only["per_photo"]] == [r["ratio"] for r in first["per_photo"]]
    assert all("equivalent_iterations_noise" not in r and "reference_curve_noise" not in r for r in photo_only["per_photo"])


def test_quality_every_log_is_250_500_1000_and_on():
    from fststyle.training.callbacks import log_spaced

    assert [step for step in range(1, 70_000) if log_spaced(step)] == [250 * 2**k for k in range(9)]


def test_quality_every_logs_the_quality_curve_with_cached_references(tmp_path, photos_dir, starry_night):
    """quality_every=N: the quality curve every N steps and at the end, from the photo and from noise,
    per style layer, in the log and in quality.jsonl with the run's images; the references are
    computed once, at the first measurement, and cached in the style cache (a .json and .png per
    held-out photo and start; their reuse is tested with the benchmark above)."""
    from conftest import read_metric, run_cli

    cache, run_dir = tmp_path / "styles", tmp_path / "run"
    run_cli("fststyle.train", *tiny_args(run_dir, photos_dir, starry_night, "trainer.max_steps=5", "sample_every=0", "data.sample_size=32",
                                         "data.num_val=2", "quality_every=2", "quality_reference_steps=4", f"style_cache={cache}"))
    assert len(list((cache / "references").glob("*.json"))) == len(list((cache / "references").glob("*.png"))) == 4  # 2 photos x 2 starts
    lines = [json.loads(line) for line in (run_dir / "quality.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [2, 4, 5] and [line["images"] for line in lines] == [4, 8, 10]  # batches of 2
    quality = read_metric(run_dir, "val/quality")
    assert quality == pytest.approx([line["quality"] for line in lines]) and all(q > 1 for q in quality)
    # A model better than the whole noise-started reference run matches inf iterations: logged as inf, written
    # to the strict-JSON quality.jsonl as null (a 4-iteration reference from noise is easily beaten).
    from_noise = [math.inf if line["equivalent_iterations_noise"] is None else line["equivalent_iterations_noise"] for line in lines]
    assert read_metric(run_dir, "val/equivalent_iterations_noise") == pytest.approx(from_noise)
    for line in lines:
        photos = line["per_photo"]
        assert [p["photo"] for p in photos] == ["rocket.jpg", "stata.jpg"]  # the held-out photos, by name
        assert line["quality"] == pytest.approx(sum(p["ratio"]["total"] for p in photos) / 2)
        assert line["style_ratio/relu3_3"] == pytest.approx(sum(p["ratio"]["style/relu3_3"] for p in photos) / 2)
        for p in photos:  # a barely trained network: within the 4 iterations of the photo's reference (computed by hand
            # above); 4 iterations from noise it may beat outright on some CPUs (null: inf), but not on every photo and step
            assert 0 <= p["equivalent_iterations"] < 4
            assert p["equivalent_iterations_noise"] is None or 0 <= p["equivalent_iterations_noise"] < 4
    assert any(p["equivalent_iterations_noise"] is not None for line in lines for p in line["per_photo"])
    # scripts/learning_curve.py draws it; a step measured again (as after a resume) counts with its last line.
    with (run_dir / "quality.jsonl").open("a") as log:
        log.write(json.dumps({**lines[-1], "quality": 9.5}) + "\n")
    out = tmp_path / "curve.png"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "learning_curve.py"), str(run_dir), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line.split() and line.split()[0].isdigit()]
    assert [int(r[0]) for r in rows] == [2, 4, 5] and [float(r[3]) for r in rows] == pytest.approx([*(x["quality"] for x in lines[:2]), 9.5], abs=0.006)
    with Image.open(out) as picture:
        assert picture.size == (1650, 506)
