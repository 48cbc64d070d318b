"""Bad and unusual images, decompression bombs, bad configs: clear errors, no lost runs."""

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, read_metric, run_cli
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from fststyle import images
from fststyle.training.data import PhotoDataset
from fststyle.images import open_rgb
from fststyle.net import TransformerNet

BAD = ["empty.jpg", "truncated.jpg", "not_an_image.png", "random_bytes.webp"]


def make_unusual(folder, photos_dir):
    """Valid but unusual images: name -> expected (width, height) after opening."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = Image.open(photos_dir / "dog.jpg").convert("RGB").resize((60, 40))
    rgb.convert("CMYK").save(folder / "cmyk.jpg")
    ramp16 = (np.linspace(0, 65535, 60 * 40).reshape(40, 60)).astype(np.uint16)
    Image.fromarray(ramp16).save(folder / "gray16.png")
    Image.fromarray(ramp16).save(folder / "gray16.tif")
    la = rgb.convert("LA")
    la.putalpha(Image.new("L", la.size, 0))  # fully transparent: must come out white
    la.save(folder / "gray_alpha.png")
    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE)
    pal.save(folder / "palette.gif", transparency=0)
    rgba = rgb.convert("RGBA")
    rgba.save(folder / "rgba.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees on display
    rgb.save(folder / "exif_rotated.jpg", exif=exif)
    rgb.resize((10, 8)).save(folder / "tiny.png")
    Image.new("RGB", (3000, 12), (10, 200, 30)).save(folder / "extreme.png")
    rgb.save(folder / "UPPER.JPG")
    rgb.save(folder / "photo.webp")
    rgb.save(folder / "photo.tiff")
    rgb.save(folder / "photo.bmp")
    return {"cmyk.jpg": (60, 40), "gray16.png": (60, 40), "gray16.tif": (60, 40), "gray_alpha.png": (60, 40), "palette.gif": (60, 40),
            "rgba.png": (60, 40), "exif_rotated.jpg": (40, 60), "tiny.png": (10, 8), "extreme.png": (3000, 12), "UPPER.JPG": (60, 40),
            "photo.webp": (60, 40), "photo.tiff": (60, 40), "photo.bmp": (60, 40)}


def make_bad(folder, photos_dir):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.jpg").write_bytes(b"")
    data = (photos_dir / "dog.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (folder / "not_an_image.png").write_text("this is a text file with an image's name")
    (folder / "random_bytes.webp").write_bytes(np.random.default_rng(0).bytes(2000))


def test_unusual_images_open_as_rgb(tmp_path, photos_dir):
    for name, size in make_unusual(tmp_path, photos_dir).items():
        im = open_rgb(tmp_path / name)
        assert (im.mode, im.size) == ("RGB", size), name
    gray = np.asarray(open_rgb(tmp_path / "gray16.png"))
    assert gray[0, 0, 0] == 0 and gray[-1, -1, 0] == 255 and 100 < gray.mean() < 155  # scaled, not clipped
    assert np.asarray(open_rgb(tmp_path / "gray_alpha.png")).min() == 255  # transparent -> white


def test_bad_images_raise_the_decoders_error(tmp_path, photos_dir):
    from PIL import UnidentifiedImageError

    make_bad(tmp_path, photos_dir)
    for name in ("empty.jpg", "not_an_image.png", "random_bytes.webp"):
        with pytest.raises(UnidentifiedImageError, match="cannot identify image file"):
            open_rgb(tmp_path / name)
    with pytest.raises(OSError, match="truncated"):
        open_rgb(tmp_path / "truncated.jpg").load()


def test_decompression_bomb_is_refused_from_the_header(tmp_path, monkeypatch):
    Image.new("L", (2000, 1000)).save(tmp_path / "big.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 1_000_000)
    with pytest.raises(ValueError, match="FSTSTYLE_MAX_PIXELS"):
        open_rgb(tmp_path / "big.png")


@pytest.fixture(scope="module")
def zoo(tmp_path_factory, photos_dir):
    folder = tmp_path_factory.mktemp("zoo")
    for name in ("dog.jpg", "eagle.jpg", "chicago.jpg"):
        shutil.copy(photos_dir / name, folder / name)
    make_unusual(folder / "odd", photos_dir)
    make_bad(folder / "bad", photos_dir)
    Image.new("RGB", (1200, 1000), (50, 60, 70)).save(folder / "bomb.png")  # over the limit set below
    return folder


def test_training_skips_and_reports_bad_files(zoo, tmp_path, starry_night):
    files = 3 + 13 + 4 + 1 - 1  # all but the held-out dog.jpg
    proc = run_cli("fststyle.train", "trainer=cpu", "logger=none", "data=folder", f"data.root={zoo}", "data.val_files=[dog.jpg]",
                   "data.image_size=32", "data.batch_size=4", "data.num_workers=0", f"style.image={starry_night}", "style.name=zoo",
                   "style.size=64", f"trainer.max_steps={-(-files // 4)}", "sample_every=0", f"hydra.run.dir={tmp_path}",
                   env={"FSTSTYLE_MAX_PIXELS": "1000000"})
    warnings = [line.split("skipping unreadable image ", 1)[1] for line in (proc.stdout + proc.stderr).splitlines()
                if "skipping unreadable image " in line]
    skipped = sorted(Path(w.split(": ")[0]).relative_to(zoo).as_posix() for w in warnings)
    assert skipped == sorted([*(f"bad/{name}" for name in BAD), "bomb.png"])  # each bad file once, no good one
    assert (tmp_path / "export" / "zoo.pth").is_file()


def test_a_step_with_non_finite_gradients_is_skipped_not_fatal(zoo, tmp_path, starry_night):
    """Started from the packaged model, the zoo's flat crops (a constant image, a one-pixel-high one
    enlarged) give non-finite gradients in the first layers: those steps leave the weights and Adam's
    state as they were and are counted, and the run ends with a finite model instead of stopping at a
    NaN loss."""
    steps = 5
    run_cli("fststyle.train", "trainer=cpu", "logger=csv", "data=folder", f"data.root={zoo}", "data.val_files=[dog.jpg]",
            "data.image_size=32", "data.batch_size=4", "data.num_workers=0", f"style.image={starry_night}", "style.name=zoo",
            "style.size=64", f"trainer.max_steps={steps}", "trainer.log_every_n_steps=1", "sample_every=0", "init=packaged",
            f"hydra.run.dir={tmp_path}", env={"FSTSTYLE_MAX_PIXELS": "1000000"})
    skipped = read_metric(tmp_path, "train/skipped_steps")
    assert len(skipped) == steps and 1 <= skipped[-1] < steps and skipped == sorted(skipped)
    state = torch.load(tmp_path / "export" / "zoo.pth", weights_only=True)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    # Adam counted only the steps it took (its step count is in the last checkpoint).
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    adam_steps = {state["step"].item() for state in checkpoint["optimizer_states"][0]["state"].values()}
    assert adam_steps == {steps - skipped[-1]} and checkpoint["global_step"] == steps


@pytest.mark.parametrize("fused", [False, True])  # the CPU's Adam, and the fused one of GPUs (which also runs on the CPU)
def test_the_gradient_guard_skips_a_non_finite_step_and_leaves_a_finite_one_alone(starry_night, fused):
    """on_before_optimizer_step, then Adam's step as Lightning runs it: one NaN or inf anywhere leaves
    every weight, Adam's moments and its step count exactly as they were (and counts the step); a step
    of finite gradients updates the weights as Adam would without the guard."""
    from omegaconf import OmegaConf

    from fststyle.training.criterion import build_criterion
    from fststyle.images import load_tensor
    from fststyle.training.module import StyleTransferModule
    from fststyle.net import TransformerNet

    loss_cfg = OmegaConf.load(REPO / "conf" / "loss" / "vgg19.yaml")
    loss_cfg.weights = "random"
    module = StyleTransferModule(TransformerNet(width=8, num_residual=1), build_criterion(loss_cfg, load_tensor(starry_night, 32)[None]))
    module.is_logging_step = lambda: False  # no trainer attached: nothing to log
    params = list(module.net.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-3, fused=fused)
    reference = [p.detach().clone().requires_grad_() for p in params]
    plain = torch.optim.Adam(reference, lr=1e-3, fused=fused)  # Adam without the guard, for the finite steps
    for step, bad in enumerate((None, float("nan"), float("inf"), None, 1e38)):
        grads = [torch.randn_like(p) for p in params]
        if bad is not None:
            grads[3].view(-1)[0] = bad
        if bad == 1e38:  # finite, but the norm of all gradients overflows float32: not trusted either
            grads[5].view(-1)[0] = 1e38
        before = [p.detach().clone() for p in params], {id(p): {k: v.clone() for k, v in optimizer.state[p].items()} for p in params}
        for p, g in zip(params, grads):
            p.grad = g.clone()
        module.on_before_optimizer_step(optimizer)
        optimizer.step()
        if bad is None:
            for r, g in zip(reference, grads):
                r.grad = g.clone()
            plain.step()
            assert all(torch.allclose(p, r, rtol=0, atol=1e-6) for p, r in zip(params, reference)) and not all(
                torch.equal(p, b) for p, b in zip(params, before[0]))
        else:
            assert all(torch.equal(p, b) for p, b in zip(params, before[0])), step
            assert all(torch.equal(v, before[1][id(p)][k]) for p in params for k, v in optimizer.state[p].items()), step
    assert module.skipped_steps.item() == 3 and optimizer.state[params[0]]["step"].item() == 2


def test_inference_writes_the_good_and_reports_the_bad(zoo, model_path, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("fststyle.infer", f"model={model_path}", f"input={zoo}", f"output={out}", "size=48", "device=cpu", expect=1,
                   env={"FSTSTYLE_MAX_PIXELS": "1000000"})
    errors = sorted(line.split(": ")[1].split("/")[-1] for line in proc.stderr.splitlines() if line.startswith("error:"))
    assert errors == sorted([*BAD, "bomb.png"])
    assert "16 written, 5 failed" in proc.stdout
    assert len(list(out.rglob("*.*"))) == 16
    with Image.open(out / "odd" / "exif_rotated.jpg") as im:
        assert im.size == (32, 48)  # rotated as displayed, long side 48


def test_every_file_bad_is_a_clear_error(tmp_path, photos_dir, starry_night):
    make_bad(tmp_path / "bad", photos_dir)
    proc = run_cli("fststyle.train", "trainer=debug", "logger=none", "data=folder", f"data.root={tmp_path / 'bad'}", "data.num_val=0",
                   f"style.image={starry_night}", "style.name=x", f"hydra.run.dir={tmp_path / 'run'}", expect=2)
    assert "error: none of the 4 images" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("args,message", [
    (["style=nonexistent"], "error: unknown style 'nonexistent'; available: candy, composition_vii"),
    (["data=folder", "data.root=/no/such/folder"], "error: image folder not found: /no/such/folder"),
    (["data=folder"], "error: data.root is not set"),
    (["style.image=/no/such/painting.jpg", "style.name=x"], "error: style image not found: /no/such/painting.jpg"),
    (["loss.style_weight=-1"], "error: loss weights must be >= 0"),
    (["style=udnie", "style.weight=0"], "error: style udnie: weight must be a number > 0, got 0"),
    (["data.batch_size=0"], "error: data.batch_size must be >= 1, got 0"),
    (["loss.style_layers=[relu2_2,relu9_9]"], "error: unknown layer(s) relu9_9 for vgg19"),
    (["data.image_size=8"], "error: data.image_size must be >= 32"),
    (["ckpt_path=/no/such.ckpt"], "error: ckpt_path not found: /no/such.ckpt"),
    (["hydra.run.dir=/dev/null/run"], "error: cannot create the run folder /dev/null/run: /dev/null is a file"),
])
def test_config_errors_are_one_line(args, message, tmp_path, photos_dir, starry_night):
    base = ["trainer=debug", "logger=none"] + ([] if any(a.startswith("hydra.run.dir") for a in args) else [f"hydra.run.dir={tmp_path}"])
    if not any(a.startswith("data") for a in args):
        base += ["data=folder", f"data.root={photos_dir}"]
    if not any(a.startswith("style") for a in args):
        base += [f"style.image={starry_night}", "style.name=x"]
    proc = run_cli("fststyle.train", *base, *args, expect=2)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(message), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_truncated_checkpoint_and_model_files_name_the_file(tmp_path, model_path, photos_dir, starry_night):
    data = model_path.read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    proc = run_cli("fststyle.train", "trainer=debug", "logger=none", "data=folder", f"data.root={photos_dir}", f"style.image={starry_night}",
                   "style.name=x", f"ckpt_path={tmp_path / 'cut.ckpt'}", f"hydra.run.dir={tmp_path / 'run'}", expect=2)
    assert f"error: ckpt_path={tmp_path / 'cut.ckpt'} is not a readable training checkpoint" in proc.stderr
    proc = run_cli("fststyle.infer", f"model={tmp_path / 'cut.pth'}", f"input={photos_dir / 'dog.jpg'}", f"output={tmp_path / 'o.png'}", expect=2)
    assert proc.stderr.startswith(f"error: {tmp_path / 'cut.pth'} is not a readable fststyle model")


def test_nan_loss_stops_with_the_step_and_exports_nothing(tmp_path, photos_dir, starry_night):
    proc = run_cli("fststyle.train", "trainer=debug", "logger=none", "data=folder", f"data.root={photos_dir}", "data.image_size=32",
                   "data.num_workers=0", f"style.image={starry_night}", "style.name=x", "loss.style_weight=1e38", f"hydra.run.dir={tmp_path}",
                   expect=2)
    assert "error: the loss is inf at step 1: training stopped" in proc.stderr
    assert not (tmp_path / "export").exists()


@settings(max_examples=40, deadline=None, derandomize=True)
@given(w=st.integers(1, 300), h=st.integers(1, 300), mode=st.sampled_from(["RGB", "L", "RGBA", "P", "CMYK", "I;16", "LA"]),
       fmt=st.sampled_from(["PNG", "JPEG", "TIFF", "WEBP", "BMP", "GIF"]))
def test_loader_gives_square_crops_for_any_image(w, h, mode, fmt):
    im = Image.fromarray(np.random.default_rng(w * h).integers(0, 255, (h, w, 3), dtype=np.uint8)).convert(mode)
    buf = io.BytesIO()
    try:
        im.save(buf, format=fmt)
    except (OSError, ValueError, KeyError):
        assume(False)  # a mode this format cannot store
    buf.seek(0)
    x = PhotoDataset([buf], 24)[0]
    assert x.shape == (3, 24, 24) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1


_NET = TransformerNet(width=4, num_residual=1).eval()


@settings(max_examples=30, deadline=None, derandomize=True)
@given(h=st.integers(1, 70), w=st.integers(1, 70), n=st.integers(1, 2))
def test_network_keeps_any_size(h, w, n):
    with torch.inference_mode():
        assert _NET(torch.rand(n, 3, h, w)).shape == (n, 3, h, w)
