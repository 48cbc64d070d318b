"""`python -m fststyle.export`: ONNX and TorchScript files that match PyTorch at any size."""

import json
from pathlib import Path

import onnxruntime as ort
import pytest
import torch
from conftest import REPO, photo_folder, run_cli

from fststyle import Stylizer
from fststyle.export import load_model, save_model
from fststyle.net import TransformerNet


def test_save_is_atomic_and_loads_safely(tmp_path):
    net = TransformerNet(width=4, num_residual=1)
    path = save_model(tmp_path / "m.pth", net, {"width": 4, "num_residual": 1}, {"style_name": "x"})
    assert [p.name for p in tmp_path.iterdir()] == ["m.pth"]
    loaded, meta = load_model(path)
    assert meta == {"style_name": "x"}
    x = torch.rand(1, 3, 20, 20)
    torch.testing.assert_close(loaded(x), net.eval()(x))


def test_foreign_files_are_refused(tmp_path):
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not an exported fststyle model"):
        load_model(tmp_path / "other.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.pth"):
        load_model(tmp_path / "junk.pth")


@pytest.mark.parametrize("fmt,suffix", [("onnx", ".onnx"), ("torchscript", ".pt")])
def test_export_matches_pytorch_at_other_sizes(model_path, tmp_path, fmt, suffix):
    out = tmp_path / f"model{suffix}"
    proc = run_cli("fststyle.export", f"model={model_path}", f"format={fmt}", f"output={out}")
    assert proc.stdout.strip().splitlines()[-1] == f"exported: {out}"
    assert "checked: largest difference" in proc.stdout
    net, meta = load_model(model_path)
    if fmt == "onnx":
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        run = lambda x: torch.from_numpy(session.run(None, {"input": x.numpy()})[0])  # noqa: E731
        stored = json.loads(session.get_modelmeta().custom_metadata_map["fststyle"])
    else:
        extra = {"fststyle.json": ""}
        run = torch.jit.load(str(out), _extra_files=extra)
        stored = json.loads(extra["fststyle.json"])
    assert stored["style_name"] == meta["style_name"] == "starry_night"
    # Neither the trace size nor the check sizes; below 16 px the size padding takes its other branch.
    for shape in [(2, 3, 41, 77), (1, 3, 5, 3), (1, 3, 1, 1)]:
        x = torch.rand(*shape)
        with torch.inference_mode():
            got, ref = run(x), net(x)
        assert got.shape == ref.shape and (got - ref).abs().max() < 1e-4, shape


def test_onnx_model_runs_in_the_stylizer(model_path, tmp_path):
    out = tmp_path / "m.onnx"
    run_cli("fststyle.export", f"model={model_path}", f"output={out}", "check=false")
    x = torch.rand(1, 3, 30, 50)
    torch.testing.assert_close(Stylizer.load(out, device="cpu").run(x), Stylizer.load(model_path, device="cpu").run(x), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="tile"):
        Stylizer.load(out, device="cpu").run(x, tile=64)


def test_export_above_tolerance_fails_and_writes_nothing(model_path, tmp_path):
    out = tmp_path / "m.onnx"
    proc = run_cli("fststyle.export", f"model={model_path}", f"output={out}", "tolerance=1e-12", expect=2)
    assert "tolerance" in proc.stderr and not out.exists()


def test_int8_export_is_checked_against_pytorch_and_runs(model_path, tmp_path, photos_dir):
    """format=onnx-int8: calibrated on photos, checked in 8-bit steps (mean within int8_tolerance, the
    largest printed), a quarter of the size of the float weights, and run by infer like any .onnx; a
    check above the tolerance removes the file."""
    from fststyle.errors import UserError
    from fststyle.export import check_int8, load_network
    from fststyle.images import load_tensor

    out = tmp_path / "m.int8.onnx"
    proc = run_cli("fststyle.export", f"model={model_path}", "format=onnx-int8", f"output={out}",
                   f"calibration={photo_folder(tmp_path, photos_dir, 3)}")
    checked = proc.stdout.splitlines()[-2]
    mean = float(checked.split("by ")[1].split(" 8-bit")[0])
    assert checked.startswith("checked: int8 differs from PyTorch by") and "at most, on 4 photos (int8_tolerance 4.0 on the mean)" in checked
    assert 0 < mean <= 4.0 and proc.stdout.splitlines()[-1] == f"exported: {out.resolve()}"
    assert out.stat().st_size < 0.35 * model_path.stat().st_size
    net, _ = load_network(model_path)
    photo = load_tensor(photos_dir / "dog.jpg", 96)[None]
    with torch.inference_mode():
        difference = (Stylizer.load(out, device="cpu").run(photo) - net(photo)).abs()
    assert difference.mean() < 4 / 255 and Stylizer.load(out, device="cpu").metadata["quantized"] == "int8"

    with pytest.raises(UserError, match="int8_tolerance 0.0"):
        check_int8(out, net, 0.0)
    assert not out.exists()


def test_the_web_page_stylizes_a_photo_as_onnxruntime_does(model_path, tmp_path, photos_dir):
    """format=web in headless Chromium, offline (onnxruntime-web from a local copy): the page
    stylizes a real photo, and the picture it produces equals onnxruntime's in Python to 1 8-bit step."""
    import io
    import os

    import sys

    import numpy as np
    from PIL import Image

    sys.path.insert(0, str(REPO / "scripts"))
    from bench.browser import find_chromium, open_page

    from fststyle.web import ORT_WEB_VERSION

    runtime = Path(os.environ.get("FSTSTYLE_ORT_WEB", REPO / ".cache" / f"onnxruntime-web-{ORT_WEB_VERSION}"))
    if not find_chromium():
        pytest.skip("no Chromium here (Debian: apt-get install chromium; CI: scripts/get_browser_test_deps.sh)")
    if not runtime.is_dir():
        pytest.skip(f"no onnxruntime-web at {runtime} (scripts/get_browser_test_deps.sh fetches it with npm)")
    site = tmp_path / "site"
    proc = run_cli("fststyle.export", f"model={model_path}", "format=web", f"output={site / 'page'}", f"web_runtime={runtime}")
    assert proc.stdout.splitlines()[-1] == f"exported: {(site / 'page' / 'model.onnx').resolve()}"
    photo = Image.open(photos_dir / "dog.jpg").convert("RGB").resize((120, 90))
    photo.save(site / "photo.png")  # PNG: the browser and PIL decode it to the same pixels
    headers, body = open_page(site, "page/index.html?photo=../photo.png&report={report}")
    assert body[:8] == b"\x89PNG\r\n\x1a\n", body[:200]
    page = np.asarray(Image.open(io.BytesIO(body)).convert("RGB")).astype(int)
    x = np.asarray(photo, dtype=np.float32).transpose(2, 0, 1)[None] / 255
    out = ort.InferenceSession(str(site / "page" / "model.onnx")).run(None, {"input": x})[0][0]
    python = np.round(np.clip(out, 0, 1) * 255).astype(int).transpose(1, 2, 0)
    assert headers.get("X-Backend") == "wasm" and page.shape == python.shape == (90, 120, 3)
    assert np.abs(page - python).max() <= 1 and (page != python).mean() < 0.01
