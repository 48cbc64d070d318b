"""Evaluation metrics, the optimization baseline, and `python -m fststyle.eval` / `fststyle.optimize`."""

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from conftest import PHOTOS, STYLES, run_cli
from PIL import Image

from fststyle import Stylizer
from fststyle.images import load_tensor
from fststyle.evaluation.metrics import evaluation_loss, grid_peak, image_metrics, ssim
from fststyle.evaluation.quality import optimize_image


@pytest.fixture(scope="module")
def criterion(starry_night):
    return evaluation_loss(load_tensor(starry_night, 128)[None])


def test_ssim_is_the_reference_value(photos_dir):
    """The luminance SSIM equals scikit-image's (Wang et al.'s reference averaging) per image."""
    from skimage.metrics import structural_similarity

    photo = load_tensor(photos_dir / "dog.jpg", 96)[None]
    noisy = (photo + 0.1 * torch.randn(photo.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    batch_a, batch_b = torch.cat([photo, photo]), torch.cat([noisy, 1 - photo])
    ours = ssim(batch_a, batch_b)
    for i in range(2):
        ya, yb = ((0.299 * x[i, 0] + 0.587 * x[i, 1] + 0.114 * x[i, 2]).double().numpy() for x in (batch_a, batch_b))  # BT.601 luma
        reference = structural_similarity(ya, yb, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
        assert ours[i].item() == pytest.approx(reference, abs=1e-4)
    assert 0.3 < ours[0] < 0.9 and ours[1] < 0  # noise lowers it; an inverted image anticorrelates


@pytest.mark.parametrize("height, width", [(128, 160), (101, 77)])  # sizes that are and are not multiples of 4
def test_grid_peak_reads_a_hatching_on_the_4px_grid_and_nothing_else(photos_dir, height, width):
    """A faint diagonal hatching of period 4 px reads high over strong texture; the same hatching at 5 px,
    a 2-px checkerboard (what an optimization through VGG paints too) and a photo read low."""
    noise = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    y, x = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")

    def hatching(period: float) -> torch.Tensor:
        return torch.cos(2 * math.pi * (y + x) / period)
    assert grid_peak(noise) < 12 and grid_peak(load_tensor(photos_dir / "dog.jpg", 160)[None]) < 12
    assert grid_peak(noise + 0.05 * hatching(4)) > 40
    assert grid_peak(noise + 0.05 * torch.cos(math.pi * (y - x) / 2)) > 40  # the other diagonal
    assert grid_peak(noise + 0.1 * hatching(5)) < 12 and grid_peak(noise + 0.1 * hatching(2)) < 12
    with pytest.raises(ValueError, match="64x64"):
        grid_peak(noise[..., :50])


def test_losses_are_the_feature_and_gram_distances(criterion, photos_dir, starry_night):
    """content: MSE of relu2_2 features; style: the sum over the style layers of the MSE between the
    output's Grams and the style image's (both computed here from the loss network directly)."""
    import torch.nn.functional as F

    from fststyle.losses import gram

    photo, output = (load_tensor(photos_dir / name, 64)[None] for name in ("dog.jpg", "eagle.jpg"))
    output = torch.nn.functional.interpolate(output, size=photo.shape[-2:])
    network = criterion.network
    with torch.no_grad():
        out, target, style = network(output), network(photo), network(load_tensor(starry_night, 128)[None])
        losses = criterion(output, photo)
    assert losses["content"].item() == pytest.approx(F.mse_loss(out["relu2_2"], target["relu2_2"]).item(), rel=1e-5)
    layers = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
    expected = sum(F.mse_loss(gram(out[layer]), gram(style[layer])).item() for layer in layers)
    assert losses["style"].item() == pytest.approx(expected, rel=1e-4) and losses["content"].item() > 0


def test_stylized_image_is_closer_to_the_style_than_the_photo(criterion, model_path, photos_dir):
    photo = load_tensor(photos_dir / "eagle.jpg", 96)[None]
    stylized = Stylizer.load(model_path, device="cpu").run(photo)
    assert image_metrics(criterion, stylized, photo)["style"] < 0.7 * image_metrics(criterion, photo, photo)["style"]


@pytest.mark.parametrize("parametrization", ["clamp", "sigmoid"])
def test_the_reference_searches_only_valid_pictures_and_returns_the_one_it_scored(criterion, photos_dir, parametrization):
    """Every evaluation scores a valid picture, so the returned picture's objective is the loss the
    run reached (within 0.5%: the 8-bit picture and the line search's last trial point), and the
    snapshots are the run's pictures at the iteration counts asked for."""
    from fststyle.evaluation.quality import objective

    photo = load_tensor(photos_dir / "chicago.jpg", 48)[None]
    result = optimize_image(photo, criterion, steps=20, parametrization=parametrization, checkpoints=(5, 10))
    assert sorted(result.snapshots) == [5, 10, 20] and torch.equal(result.snapshots[20], result.image)
    assert 0 <= result.image.min() and result.image.max() <= 1
    final = objective(criterion, result.image, photo)["total"]
    assert final <= min(result.losses) * 1.005
    curve = [objective(criterion, result.snapshots[n], photo)["total"] for n in (5, 10, 20)]
    assert curve[0] > curve[1] > curve[2] and curve[0] < 0.8 * result.losses[0]


def test_equivalent_iterations_reads_the_reference_curve():
    from fststyle.evaluation.quality import equivalent_iterations

    curve = {0: 800.0, 5: 200.0, 10: 100.0, 20: 60.0, 300: 40.0}
    assert equivalent_iterations(100.0, curve) == 10 and equivalent_iterations(900.0, curve) == 0
    assert equivalent_iterations(30.0, curve) == float("inf")
    assert equivalent_iterations(200 / 2**0.5, curve) == pytest.approx(7.5)  # halfway in log(objective)
    assert equivalent_iterations(50.0, {0: 800.0, 10: 50.0, 20: 70.0, 30: 45.0}) == 10  # the best so far counts
    assert equivalent_iterations(60.0, {0: {"total": 100.0}, 10: {"total": 60.0}}) == 10


def test_references_and_judged_objectives_are_computed_without_tf32():
    """A GPU reference is read from the cache on the CPU: it must be float32 throughout, whatever
    training turned on, and the setting must be restored after."""
    from fststyle.evaluation.quality import objective

    seen = []

    def criterion(picture, photo):
        seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
        loss = ((picture - photo) ** 2).mean()
        return {"loss": loss, "content": loss, "style": loss * 0}

    photo = torch.rand(1, 3, 8, 8)
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        optimize_image(photo, criterion, steps=2, start=torch.rand(1, 3, 8, 8))
        objective(criterion, photo, photo)
        assert seen and set(seen) == {(False, False)}
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (True, True)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
@pytest.mark.parametrize("name", ["dog.jpg", "horses.jpg"])  # horses: L-BFGS once stalled on it
def test_optimization_runs_the_iterations_asked_and_lowers_the_loss(criterion, photos_dir, optimizer, name):
    photo = load_tensor(photos_dir / name, 40)[None]
    image, history, iterations, _ = optimize_image(photo, criterion, steps=12, optimizer=optimizer)
    assert iterations == 12 and len(history) >= 12 and min(history) < 0.8 * history[0]
    assert image.shape == photo.shape and 0 <= image.min() and image.max() <= 1
    assert criterion(image, photo)["loss"].item() < 0.8 * history[0]


@pytest.fixture(scope="module")
def eval_photos(tmp_path_factory, photos_dir):
    folder = tmp_path_factory.mktemp("held_out")
    for name in ("horses.jpg", "stata.jpg"):
        shutil.copy(photos_dir / name, folder / name)
    return folder


def test_eval_writes_metrics_and_a_contact_sheet(model_path, eval_photos, tmp_path):
    proc = run_cli("fststyle.eval", f"model={model_path}", f"content={eval_photos}", "size=128", "device=cpu", f"hydra.run.dir={tmp_path}")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert [p.split("/")[-1] for p in metrics["photos"]] == ["horses.jpg", "stata.jpg"]
    mean = metrics["mean"][str(model_path)]
    assert set(mean) == {"content", "style", "tv", "ssim", "grid", "ms"} and 0 < mean["ssim"] < 1
    assert len(metrics["per_image"]) == 2 and all(r["ms"] > 0 for r in metrics["per_image"])
    # The figures again, here: the model on each photo, scored by the evaluation loss; eval's mean is theirs.
    from fststyle.evaluation.metrics import EVAL_STYLE_SIZE

    judge = evaluation_loss(load_tensor(STYLES / "starry_night.jpg", EVAL_STYLE_SIZE)[None])
    stylizer = Stylizer.load(model_path, device="cpu")
    mine = [{**image_metrics(judge, out, photo), "grid": grid_peak(out)}
            for photo in (load_tensor(eval_photos / n, 128)[None] for n in ("horses.jpg", "stata.jpg")) for out in [stylizer.run(photo)]]
    for key in ("content", "style", "ssim", "grid"):
        assert mean[key] == pytest.approx(sum(m[key] for m in mine) / 2, rel=1e-3), key
    with Image.open(tmp_path / "contact_sheet.png") as sheet:  # label row, style row, one row per photo; photo + 1 model
        assert sheet.size == (2 * 256, 18 + 3 * 256)
    assert "starry_night " in proc.stdout and "ssim" in proc.stdout  # the table


def test_eval_compares_models_side_by_side_and_against_optimization(trained, eval_photos, tmp_path):
    run_dir, _ = trained
    pth, ckpt = run_dir / "export" / "starry_night.pth", run_dir / "checkpoints" / "last.ckpt"
    run_cli("fststyle.eval", f"model={pth},{ckpt}", f"content={eval_photos}", "limit=1", "size=48", "device=cpu", "reference=true",
            "reference_steps=3", f"hydra.run.dir={tmp_path}")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["mean"]) == {str(pth), str(ckpt), "optimization"}
    reference, model = metrics["mean"]["optimization"], metrics["mean"][str(pth)]
    assert reference["iterations"] == 3 and "content_ratio" in metrics["mean"][str(ckpt)]  # the L-BFGS iterations asked for were run
    assert "grid" not in reference and "grid" not in model  # no grid figure under 64 px a side
    # The same figures again, here: the model run on the photo, the optimization run again, each scored.
    from fststyle.evaluation.metrics import EVAL_STYLE_SIZE

    photo = load_tensor(sorted(eval_photos.iterdir())[0], 48)[None]
    judge = evaluation_loss(load_tensor(STYLES / "starry_night.jpg", EVAL_STYLE_SIZE)[None])
    mine = image_metrics(judge, Stylizer.load(pth, device="cpu").run(photo), photo)
    best = image_metrics(judge, optimize_image(photo, judge, 3).image, photo)
    assert model["style"] == pytest.approx(mine["style"], rel=1e-4) and reference["style"] == pytest.approx(best["style"], rel=1e-3)
    assert model["style_ratio"] == pytest.approx(mine["style"] / best["style"], rel=2e-3)
    # The iterations matched, read off the 3-iteration curve by hand (its start and its end, linear in
    # the logarithm of the objective); better than its end is null in the file (strict JSON).
    from fststyle.evaluation.quality import objective

    total = objective(judge, Stylizer.load(pth, device="cpu").run(photo), photo)["total"]
    start, end = objective(judge, photo, photo)["total"], objective(judge, optimize_image(photo, judge, 3).image, photo)["total"]
    expected = 0.0 if total >= start else None if total < end else 3 * math.log(start / total) / math.log(start / end)
    assert model["equivalent_iterations"] == (None if expected is None else pytest.approx(expected, rel=1e-3, abs=1e-3))
    assert "null where the model's picture is better" in metrics["notes"]["equivalent_iterations"]
    with Image.open(tmp_path / "contact_sheet.png") as sheet:
        assert sheet.size == (3 * 256, 18 + 2 * 256)


def test_optimize_cli(photos_dir, starry_night, tmp_path):
    out = tmp_path / "gatys.png"
    proc = run_cli("fststyle.optimize", f"content={photos_dir / 'dog.jpg'}", f"style.image={starry_night}", "style.name=starry_night",
                   "style.size=64", f"output={out}", "steps=4", "size=48", "device=cpu")
    with Image.open(out) as im, Image.open(photos_dir / "dog.jpg") as src:
        assert max(im.size) == 48 and abs(im.size[0] / im.size[1] - src.size[0] / src.size[1]) < 0.05
    before, after = proc.stdout.split("loss ")[-1].split(" in ")[0].split(" -> ")
    assert float(after) < float(before) and " in 4 iterations, " in proc.stdout


def test_eval_without_a_readable_photo_is_one_line(model_path, tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"not a jpeg")
    proc = run_cli("fststyle.eval", f"model={model_path}", f"content={tmp_path / 'photos'}", "size=48", "device=cpu",
                   f"hydra.run.dir={tmp_path / 'run'}", expect=2)
    assert proc.stderr.strip().splitlines()[-1] == f"error: none of the photos in {tmp_path / 'photos'} could be read"
    assert "Traceback" not in proc.stderr


def test_a_crafted_model_cannot_make_eval_fetch_or_read_what_it_names(model_path, tmp_path, starry_night):
    """Model metadata is untrusted (fststyle.styles.recorded_painting): an address fststyle does not
    know, a file:// address, a local file without its recorded content: one line each, no request
    made, no file written outside the run."""
    from fststyle.model_file import load_model, save_model

    net, _ = load_model(model_path)
    config = torch.load(model_path, weights_only=True)["model"]
    photo = tmp_path / "work" / "photo.jpg"
    photo.parent.mkdir()
    shutil.copy(PHOTOS / "dog.jpg", photo)
    cases = [({"style_name": "../../../escaped", "style_image": "http://127.0.0.1:9/starry_night.jpg", "style_sha256": "0" * 64},
              "the model records the painting address http://127.0.0.1:9/starry_night.jpg, which is none of fststyle's known paintings"),
             ({"style_name": "x", "style_image": f"file://{starry_night}"}, "only http(s) addresses are downloaded"),
             ({"style_name": "x", "style_image": str(photo), "style_sha256": "0" * 64},
              f"the model records the local painting {photo}, which is not here with the content it records")]
    for i, (metadata, message) in enumerate(cases):
        crafted = save_model(tmp_path / "work" / f"crafted{i}.pth", net, config, metadata)
        proc = run_cli("fststyle.eval", f"model={crafted}", f"content={photo}", "size=48", "device=cpu", f"style.cache={tmp_path / 'cache'}",
                       f"hydra.run.dir={tmp_path / f'run{i}'}", cwd=tmp_path / "work", expect=2)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and lines[0].endswith("give the painting yourself (style.image=PATH_OR_URL)")
        assert not (tmp_path / f"run{i}" / "metrics.json").exists()
    assert not (tmp_path / "cache").exists() and not list(tmp_path.rglob("escaped*"))


def test_a_sweep_trains_each_value_and_eval_compares_them(tmp_path, photos_dir, starry_night, eval_photos):
    """python -m fststyle.train -m key=a,b: one folder, a run and a model per value; eval sweep=DIR
    labels each column and table row with its value."""
    from conftest import tiny_args

    sweep = tmp_path / "sweep"
    args = [a for a in tiny_args(tmp_path / "unused", photos_dir, starry_night, "trainer.max_steps=2", "sample_every=0")
            if not a.startswith("hydra.run.dir")]
    run_cli("fststyle.train", "-m", *args, "loss.style_weight=0.5,2", f"hydra.sweep.dir={sweep}", timeout=600)
    assert sorted(p.relative_to(sweep).as_posix() for p in sweep.glob("*/export/*.pth")) == ["0/export/starry_night.pth", "1/export/starry_night.pth"]
    weights = [torch.load(sweep / n / "export" / "starry_night.pth", weights_only=True)["metadata"]["loss"]["style_weight"] for n in "01"]
    assert weights == [0.5, 2.0]
    out = tmp_path / "eval"
    proc = run_cli("fststyle.eval", f"sweep={sweep}", f"content={eval_photos}", "size=48", "device=cpu", f"hydra.run.dir={out}")
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["labels"].values()) == ["loss.style_weight=0.5", "loss.style_weight=2"]
    assert len(metrics["per_image"]) == 4 and "loss.style_weight=0.5" in proc.stdout
    with Image.open(out / "contact_sheet.png") as sheet:  # photo | one column per swept value
        assert sheet.size == (3 * 256, 18 + 3 * 256)
    proc = run_cli("fststyle.eval", f"content={eval_photos}", f"hydra.run.dir={out}", expect=2)
    assert proc.stderr.strip().splitlines() == ["error: give model=PATH[,PATH...] or sweep=DIR (a sweep folder of python -m fststyle.train -m)"]


def test_eval_keeps_videos_of_the_same_name_from_two_folders_apart(model_path, tmp_path):
    from media import make_video

    for folder in ("a", "b"):
        (tmp_path / "clips" / folder).mkdir(parents=True)
        make_video(tmp_path / "clips" / folder / "clip.mp4", frames=3 if folder == "a" else 4, size=(48, 32), audio=False)
    out = tmp_path / "eval"
    run_cli("fststyle.eval", f"model={model_path}", f"content={tmp_path / 'clips'}", "device=cpu", f"hydra.run.dir={out}")
    records = json.loads((out / "metrics.json").read_text())["videos"]
    assert sorted(Path(r["output"]).relative_to(out).as_posix() for r in records) == ["videos/a/clip.starry_night.mp4", "videos/b/clip.starry_night.mp4"]
    from media import probe

    assert [probe(out / "videos" / f / "clip.starry_night.mp4")["frames"] for f in "ab"] == [3, 4]
