"""Evaluation metrics, the optimization baseline, and `python -m fststyle.eval` / `fststyle.optimize`."""

import json
import shutil

import pytest
import torch
from conftest import run_cli
from PIL import Image

from fststyle import Stylizer
from fststyle.images import load_tensor
from fststyle.metrics import evaluation_loss, image_metrics, ssim
from fststyle.optimize import optimize_image


@pytest.fixture(scope="module")
def criterion(starry_night):
    return evaluation_loss(load_tensor(starry_night, 128)[None])


def test_identical_images_score_perfectly(criterion, photos_dir):
    photo = load_tensor(photos_dir / "dog.jpg", 64)[None]
    m = image_metrics(criterion, photo, photo)
    assert m["content"] == 0 and m["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert ssim(photo, 1 - photo).item() < 0  # an inverted image anticorrelates


def test_style_image_has_zero_style_loss_against_itself(starry_night):
    style = load_tensor(starry_night, 96)[None]
    assert evaluation_loss(style)(style, style)["style"].item() == pytest.approx(0, abs=1e-3)


def test_stylized_image_is_closer_to_the_style_than_the_photo(criterion, model_path, photos_dir):
    photo = load_tensor(photos_dir / "eagle.jpg", 96)[None]
    stylized = Stylizer.load(model_path, device="cpu").run(photo)
    assert image_metrics(criterion, stylized, photo)["style"] < 0.7 * image_metrics(criterion, photo, photo)["style"]


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
@pytest.mark.parametrize("name", ["dog.jpg", "horses.jpg"])  # horses: L-BFGS once stalled on it
def test_optimization_lowers_the_loss(criterion, photos_dir, optimizer, name):
    photo = load_tensor(photos_dir / name, 40)[None]
    image, history = optimize_image(photo, criterion, steps=6, optimizer=optimizer)
    assert 6 <= len(history) <= 8 and min(history) < 0.8 * history[0]
    assert image.shape == photo.shape and 0 <= image.min() and image.max() <= 1
    assert criterion(image, photo)["loss"].item() < 0.8 * history[0]


@pytest.fixture(scope="module")
def eval_photos(tmp_path_factory, photos_dir):
    folder = tmp_path_factory.mktemp("held_out")
    for name in ("horses.jpg", "stata.jpg"):
        shutil.copy(photos_dir / name, folder / name)
    return folder


def test_eval_writes_metrics_and_a_contact_sheet(model_path, eval_photos, tmp_path):
    proc = run_cli("fststyle.eval", f"model={model_path}", f"content={eval_photos}", "size=64", "device=cpu", f"hydra.run.dir={tmp_path}")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert [p.split("/")[-1] for p in metrics["photos"]] == ["horses.jpg", "stata.jpg"]
    mean = metrics["mean"][str(model_path)]
    assert set(mean) == {"content", "style", "tv", "ssim", "ms"} and 0 < mean["ssim"] < 1 and mean["ms"] > 0
    assert len(metrics["per_image"]) == 2
    with Image.open(tmp_path / "contact_sheet.png") as sheet:  # label row, style row, one row per photo; photo + 1 model
        assert sheet.size == (2 * 256, 18 + 3 * 256)
    assert "starry_night.pth" in proc.stdout and "ssim" in proc.stdout  # the table


def test_eval_compares_models_side_by_side_and_against_optimization(trained, eval_photos, tmp_path):
    run_dir, _ = trained
    pth, ckpt = run_dir / "export" / "starry_night.pth", run_dir / "checkpoints" / "last.ckpt"
    run_cli("fststyle.eval", f"model={pth},{ckpt}", f"content={eval_photos}", "limit=1", "size=48", "device=cpu", "reference=true",
            "reference_steps=3", f"hydra.run.dir={tmp_path}")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["mean"]) == {str(pth), str(ckpt), "optimization"}
    assert metrics["mean"][str(pth)]["style_ratio"] > 0 and "content_ratio" in metrics["mean"][str(ckpt)]
    with Image.open(tmp_path / "contact_sheet.png") as sheet:
        assert sheet.size == (3 * 256, 18 + 2 * 256)


def test_optimize_cli(photos_dir, starry_night, tmp_path):
    out = tmp_path / "gatys.png"
    proc = run_cli("fststyle.optimize", f"content={photos_dir / 'dog.jpg'}", f"style.image={starry_night}", "style.name=starry_night",
                   "style.size=64", f"output={out}", "steps=4", "size=48", "device=cpu")
    with Image.open(out) as im, Image.open(photos_dir / "dog.jpg") as src:
        assert max(im.size) == 48 and abs(im.size[0] / im.size[1] - src.size[0] / src.size[1]) < 0.05
    before, after = proc.stdout.split("loss ")[-1].split(" in ")[0].split(" -> ")
    assert float(after) < float(before)
