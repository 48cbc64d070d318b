"""Phone formats (fststyle.exporters.mobile): ExecuTorch and LiteRT files run by their own Linux runtimes and match
PyTorch; Core ML converts to the program it should be (running it needs macOS). Tiny networks, 64 px."""

import json
from pathlib import Path

import pytest
import torch
from conftest import PHOTOS, run_cli

from fststyle.model_file import load_model, save_model
from fststyle.net import TransformerNet

pytest.importorskip("executorch", reason="pip install 'fststyle[mobile]' (the test extra installs it)")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A small network with trained-like weights (random, then saved as an exported model would be)."""
    torch.manual_seed(0)
    net = TransformerNet(width=8, num_residual=1)
    for p in net.parameters():  # norms away from 1 and 0, so that every layer matters
        p.data.add_(0.1 * torch.randn_like(p))
    folder = tmp_path_factory.mktemp("tiny") / "models"
    return save_model(folder / "tiny.pth", net, {"width": 8, "num_residual": 1},
                      {"style_name": "tiny", "style_image": "/home/someone/paintings/tiny.jpg", "init": "/home/someone/init.pth"})


def exported(model: Path, fmt: str, *args: str, expect: int = 0, cwd: Path | None = None):
    return run_cli("fststyle.export", f"model={model}", f"format={fmt}", *args, expect=expect, cwd=cwd, timeout=600)


@pytest.mark.parametrize("fmt, suffix", [("executorch", ".pte"), ("tflite", ".tflite")])
def test_a_phone_file_runs_in_its_own_runtime_as_pytorch_does(tiny_model, fmt, suffix):
    """Run here with the file's own runtime (ExecuTorch's Python runtime, the LiteRT interpreter) on a
    real photo it was not checked on: within 2/255 of PyTorch on average; the size and metadata travel
    inside the file, with no local path."""
    from fststyle.exporters.mobile import fit_photo, read_metadata, run_mobile

    proc = exported(tiny_model, fmt, "size=64x48")
    out = tiny_model.with_suffix(suffix)
    assert proc.stdout.strip().splitlines()[-1] == f"exported: {out} (64x48)"
    assert f"checked: {fmt} differs from PyTorch by 0.00 8-bit steps on average on 4 photos at 64x48" in proc.stdout
    net, _ = load_model(tiny_model)
    photo = fit_photo(PHOTOS / "dog.jpg", 64, 48)
    with torch.inference_mode():
        difference = (run_mobile(out, fmt, photo) - net(photo)).abs()
    assert photo.shape == (1, 3, 48, 64) and difference.mean() < 2 / 255 and difference.max() < 1e-3
    meta = read_metadata(out, fmt)
    assert (meta["width"], meta["height"], meta["format"]) == (64, 48, fmt) and meta["style_name"] == "tiny"
    assert meta["style_image"] == "tiny.jpg" and meta["init"] == "init.pth" and "/" not in json.dumps({k: meta[k] for k in ("style_image", "init", "source")})
    if fmt == "tflite":  # a failed check (nothing is within 0 steps) keeps this good file
        good = out.read_bytes()
        proc = exported(tiny_model, fmt, "size=64x48", "mobile_tolerance=0", expect=2)
        assert "(> tolerance 0); nothing written (an earlier export there is kept)" in proc.stderr.strip().splitlines()[-1]
        assert out.read_bytes() == good and not [p for p in out.parent.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_an_int8_executorch_program_is_small_and_within_the_int8_tolerance(model_path, tmp_path):
    """A trained model (int8 needs the activations of a trained network to calibrate on)."""
    from fststyle.exporters.mobile import fit_photo, run_mobile

    out = tmp_path / "m.int8.pte"
    proc = exported(model_path, "executorch-int8", "size=64", f"output={out}")
    mean = float(proc.stdout.split("differs from PyTorch by ")[1].split(" 8-bit")[0])
    assert 0 < mean <= 4.0 and "(tolerance 4.0)" in proc.stdout
    net, _ = load_model(model_path)
    photo = fit_photo(PHOTOS / "horses.jpg", 64, 64)
    with torch.inference_mode():
        assert (run_mobile(out, "executorch-int8", photo) - net(photo)).abs().mean() * 255 < 6
    assert out.stat().st_size < 0.35 * model_path.stat().st_size  # int8 weights: a quarter of float32's


@pytest.mark.slow
def test_the_packaged_models_styles_and_blends_run_on_the_phone(tmp_path):
    """The six-style packaged model as ExecuTorch: the style weights are an input, so a blend works."""
    from fststyle.exporters.mobile import fit_photo, read_metadata, run_mobile
    from fststyle.inference.stylizer import Stylizer

    exported("packaged", "executorch", "size=48x32", cwd=tmp_path)
    out = tmp_path / "packaged.pte"
    stylizer = Stylizer.load("packaged", device="cpu", precision="fp32")
    photo = fit_photo(PHOTOS / "eagle.jpg", 48, 32)
    for blend in ("udnie", "starry_night:0.5,great_wave:0.5"):
        weights = stylizer.style_weights(blend)
        with torch.inference_mode():
            assert (run_mobile(out, "executorch", photo, weights) - stylizer.module(photo, weights)).abs().mean() < 2 / 255
    assert [s["name"] for s in read_metadata(out, "executorch")["styles"]] == stylizer.styles


def test_core_ml_converts_to_the_program_it_should_be(tiny_model, tmp_path):
    """Core ML needs macOS to run; here: the package converts, with the inputs, output and operations of
    the network (16-bit ML Program), and its metadata."""
    from fststyle.exporters.mobile import coreml_summary

    out = tmp_path / "tiny.mlpackage"
    proc = exported(tiny_model, "coreml", "size=64x48", f"output={out}")
    assert "(not run: Core ML runs on macOS and iOS only)" in proc.stdout and (out / "Manifest.json").is_file()
    summary = coreml_summary(out)
    assert summary["inputs"] == {"input": [1, 3, 48, 64]} and summary["outputs"] == {"output": [1, 3, 48, 64]}
    ops = summary["operations"]
    assert (ops["conv"], ops["instance_norm"], ops["upsample_nearest_neighbor"]) == (8, 7, 2) and ops["pad"] >= 8
    assert summary["metadata"]["width"] == 64 and summary["metadata"]["format"] == "coreml"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.mlpackage"]  # no staging folder left


@pytest.mark.parametrize("size", ["50", "0", "64x", "8192", "big"])
def test_a_bad_phone_size_is_one_line(tiny_model, tmp_path, size):
    proc = exported(tiny_model, "executorch", f"size={size}", f"output={tmp_path / 'm.pte'}", expect=2)
    assert proc.stderr.strip().splitlines() == [f"error: size must be N or WxH in pixels, multiples of 16 from 16 to 4096 "
                                                f"(e.g. 512 or 640x480), got {size}"]


def test_a_missing_runtime_names_the_extra(monkeypatch):
    import importlib

    from fststyle.errors import UserError
    from fststyle.exporters.mobile import need

    real = importlib.import_module
    monkeypatch.setattr(importlib, "import_module", lambda name: (_ for _ in ()).throw(ImportError(name)) if name.startswith("litert")
                        else real(name))
    with pytest.raises(UserError, match=r"format=tflite needs litert_torch, which is not installed: pip install 'fststyle\[mobile\]'"):
        need("litert_torch", "tflite")
