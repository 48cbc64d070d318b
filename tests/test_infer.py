"""Inference: the Stylizer API and `python -m fststyle.infer` on images, folders, globs and videos."""

import shutil

import numpy as np
import pytest
import torch
from conftest import run_cli
from media import make_video, probe
from PIL import Image

from fststyle import Stylizer
from fststyle.images import load_tensor
from fststyle.stylizer import to_ycbcr
from fststyle.tiling import stylize_tiled


@pytest.fixture(scope="module")
def stylizer(model_path):
    return Stylizer.load(model_path, device="cpu")


@pytest.fixture(scope="module")
def photo(photos_dir):
    return load_tensor(photos_dir / "chicago.jpg", 160)[None]  # (1, 3, 106, 160)


def test_each_image_kind_comes_back_as_itself(stylizer, photos_dir):
    pil = Image.open(photos_dir / "dog.jpg").convert("RGB").resize((45, 31))
    out = stylizer(pil)
    assert isinstance(out, Image.Image) and out.size == (45, 31)
    arr = np.asarray(pil).copy()
    out = stylizer(arr)
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == arr.shape
    t = torch.rand(3, 17, 29)
    assert stylizer(t).shape == (3, 17, 29)
    assert stylizer(t[None].repeat(2, 1, 1, 1)).shape == (2, 3, 17, 29)
    with pytest.raises(TypeError):
        stylizer("dog.jpg")


def test_strength_zero_gives_back_the_photo(stylizer, photos_dir):
    arr = np.asarray(Image.open(photos_dir / "dog.jpg").convert("RGB").resize((64, 48))).copy()
    assert np.array_equal(stylizer(arr, strength=0.0), arr)
    full, half = stylizer(arr).astype(int), stylizer(arr, strength=0.5).astype(int)
    assert np.abs(half - (full + arr) / 2).max() <= 1
    with pytest.raises(ValueError, match="strength"):
        stylizer(arr, strength=1.5)


def test_preserve_color_keeps_the_photos_chroma(stylizer, photo):
    kept = stylizer.run(photo, preserve_color=True)
    styled = stylizer.run(photo)
    chroma = lambda x: to_ycbcr(x)[:, 1:]  # noqa: E731
    assert (chroma(kept) - chroma(photo)).abs().mean() < 2e-3  # only gamut clipping differs
    assert (chroma(styled) - chroma(photo)).abs().mean() > 0.02  # the style alone does change colours
    torch.testing.assert_close(to_ycbcr(kept)[:, :1], to_ycbcr(styled)[:, :1], atol=0.05, rtol=0)


def test_tiling_matches_untiled_away_from_seams(stylizer, photos_dir):
    photo = load_tensor(photos_dir / "chicago.jpg", 256)[None]  # 170 x 256: 2 x 2 tiles of 160, one not at 0
    full = stylizer.run(photo)
    tiled = stylizer.run(photo, tile=160)
    err = (full - tiled).abs()
    assert tiled.shape == full.shape
    assert err.mean() < 0.005 and err.flatten().quantile(0.99) < 0.04
    # Tiles normalized with their own statistics (a 16 px statistics image) instead are clearly off:
    with torch.inference_mode():
        naive = stylize_tiled(stylizer.module, photo, 160, stats_size=16)
    assert (full - naive).abs().mean() > 3 * err.mean()


def test_bf16_is_close_to_fp32(model_path, photo):
    fp32 = Stylizer.load(model_path, device="cpu", precision="fp32").run(photo)
    bf16 = Stylizer.load(model_path, device="cpu", precision="bf16").run(photo)
    assert bf16.dtype == torch.float32 and (bf16 - fp32).abs().mean() < 0.02


def test_compiled_stylizer_matches_eager_at_several_sizes(tmp_path):
    """compile=true (dynamic shapes) on photos of different sizes: the size padding must compile
    (a symbolic modulo there made inductor fail on the first image)."""
    from fststyle.export import save_model
    from fststyle.net import TransformerNet

    config = {"width": 4, "num_residual": 1}  # small: compiles quickly
    path = save_model(tmp_path / "tiny.pth", TransformerNet(**config), config, {"style_name": "tiny"})
    compiled, eager = Stylizer.load(path, device="cpu", compile=True), Stylizer.load(path, device="cpu")
    assert isinstance(compiled.net, torch._dynamo.eval_frame.OptimizedModule) and compiled.module is not compiled.net
    for shape in [(2, 3, 150, 203), (2, 3, 161, 190)]:
        x = torch.rand(*shape)
        torch.testing.assert_close(compiled.run(x), eager.run(x), atol=1e-5, rtol=0)


def test_checkpoint_and_exported_model_agree(trained, photo):
    run_dir, _ = trained
    a = Stylizer.load(run_dir / "export" / "starry_night.pth", device="cpu").run(photo)
    b = Stylizer.load(run_dir / "checkpoints" / "last.ckpt", device="cpu").run(photo)
    torch.testing.assert_close(a, b)


def test_folder_with_a_bad_file(model_path, photos_dir, tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    shutil.copy(photos_dir / "dog.jpg", src / "dog.jpg")
    shutil.copy(photos_dir / "camera.png", src / "sub" / "camera.png")  # grayscale
    (src / "sub" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    proc = run_cli("fststyle.infer", f"model={model_path}", f"input={src}", f"output={tmp_path / 'out'}", "size=50", "device=cpu", expect=1)
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.*")) == ["dog.jpg", "sub/camera.png"]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken.jpg" in errors[0]
    assert "2 written, 1 failed" in proc.stdout and "images/s" in proc.stdout
    with Image.open(tmp_path / "out" / "sub" / "camera.png") as im:
        assert im.size == (50, 50) and im.mode == "RGB"


def test_glob_input_mirrors_below_its_fixed_part(model_path, photos_dir, tmp_path):
    src = tmp_path / "in"
    (src / "a").mkdir(parents=True)
    shutil.copy(photos_dir / "dog.jpg", src / "a" / "dog.jpg")
    shutil.copy(photos_dir / "eagle.jpg", src / "eagle.jpg")
    shutil.copy(photos_dir / "chelsea.png", src / "a" / "cat.png")
    run_cli("fststyle.infer", f"model={model_path}", f"input={src}/**/*.jpg", f"output={tmp_path / 'out'}", "size=40", "device=cpu", "batch_size=2")
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.*")) == ["a/dog.jpg", "eagle.jpg"]


@pytest.mark.parametrize("container", [".mp4", ".mkv"])
def test_video_round_trip_keeps_frames_rate_and_sound(model_path, tmp_path, container):
    src = make_video(tmp_path / "clip.mp4", frames=7, size=(64, 48), fps=12)
    out = tmp_path / f"styled{container}"
    proc = run_cli("fststyle.infer", f"model={model_path}", f"input={src}", f"output={out}", "device=cpu", "batch_size=3")
    assert probe(out) == {"frames": 7, "size": (64, 48), "fps": 12.0, "audio": "aac"}
    assert "frames/s" in proc.stdout


def test_video_resized_and_sound_dropped_where_the_container_cannot_hold_it(model_path, tmp_path):
    src = make_video(tmp_path / "clip.mp4", frames=4, size=(64, 48), fps=10)
    out = tmp_path / "styled.webm"
    run_cli("fststyle.infer", f"model={model_path}", f"input={src}", f"output={out}", "device=cpu", "size=33")
    assert probe(out) == {"frames": 4, "size": (32, 24), "fps": 10.0, "audio": None}  # even sizes for 4:2:0


def test_missing_input_is_one_line(model_path, tmp_path):
    proc = run_cli("fststyle.infer", f"model={model_path}", f"input={tmp_path / 'none.jpg'}", f"output={tmp_path / 'o.jpg'}", expect=2)
    assert proc.stderr.strip().splitlines() == [f"error: input not found: {tmp_path / 'none.jpg'}"]
