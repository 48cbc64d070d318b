"""`python -m fststyle.export`: ONNX and TorchScript files that match PyTorch at any size."""

import json
import re
from pathlib import Path

import onnxruntime as ort
import pytest
import torch
from conftest import REPO, photo_folder, run_cli
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from fststyle import Stylizer
from fststyle.model_file import load_model, save_model
from fststyle.net import TransformerNet


def test_save_is_atomic_and_loads_safely(tmp_path):
    net = TransformerNet(width=4, num_residual=1)
    path = save_model(tmp_path / "m.pth", net, {"width": 4, "num_residual": 1}, {"style_name": "x"})
    assert [p.name for p in tmp_path.iterdir()] == ["m.pth"]
    loaded, meta = load_model(path)
    assert meta == {"style_name": "x"}
    x = torch.rand(1, 3, 20, 20)
    torch.testing.assert_close(loaded(x), net.eval()(x))


def _crafted(tmp_path, name: str, change) -> Path:
    """A model file of a small network with one part of it changed by ``change(payload)``."""
    net = TransformerNet(width=4, num_residual=1)
    path = save_model(tmp_path / f"{name}.pth", net, {"width": 4, "num_residual": 1}, {"style_name": "x"})
    payload = torch.load(path, weights_only=True)
    change(payload)
    torch.save(payload, path)
    return path


MALFORMED = {
    "unknown_key": (lambda p: p["model"].update(depth=3), "unknown network keys depth"),
    "no_model": (lambda p: p.pop("model"), "no network description (its 'model' entry)"),
    "string_version": (lambda p: p.update(format_version="1"), "its format_version '1' is not a whole number"),
    "empty_weights": (lambda p: p.update(state_dict={}), "its weights ('state_dict') are missing or not tensors"),
    "list_metadata": (lambda p: p.update(metadata=["x"]), "its metadata is a list, not a dict"),
    "bad_styles": (lambda p: p["metadata"].update(styles="a,b"), "its styles entry is not a list of styles with names"),
    "huge_width": (lambda p: p["model"].update(width=100_000), "width=100000 is not a whole number in [1, 512]"),
    "huge_blocks": (lambda p: p["model"].update(num_residual=10**9), "num_residual=1000000000 is not a whole number in [0, 64]"),
    # Within the bounds, but not what the weights are: found on the meta device, before any allocation.
    "wider_than_its_weights": (lambda p: p["model"].update(width=512, num_residual=64), "its weights do not fit the network it describes"),
    "unknown_norm": (lambda p: p["model"].update(norm="group"), "unknown model.norm='group'"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_model_file_is_one_clear_line(tmp_path, name):
    change, message = MALFORMED[name]
    path = _crafted(tmp_path, name, change)
    with pytest.raises(ValueError, match=f"is not a usable fststyle model: {re.escape(message)}.*; re-export it"):
        load_model(path)


def test_infer_says_a_malformed_model_is_unusable_in_one_line(tmp_path, photos_dir):
    path = _crafted(tmp_path, "crafted", lambda p: p["model"].update(width=512, num_residual=64))
    proc = run_cli("fststyle.infer", f"model={path}", f"input={photos_dir / 'dog.jpg'}", f"output={tmp_path / 'o.jpg'}", expect=2)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path} is not a usable fststyle model: its weights do not fit")


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
    # One rule for every published file: no local path (the model's, the painting's), only file names.
    assert "/" not in json.dumps(stored) and stored["source"] == model_path.name and stored["style_image"] == "starry_night.jpg"
    # Nor in what the exporter writes of its own (ONNX: each operation's Python stack, with its source files' paths).
    assert str(REPO).encode() not in out.read_bytes() and str(Path.home()).encode() not in out.read_bytes()
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
    torch.testing.assert_close(Stylizer.load(out, device="cpu").run(x), Stylizer.load(model_path, device="cpu", precision="fp32").run(x), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="tile"):
        Stylizer.load(out, device="cpu").run(x, tile=64)


def test_export_above_tolerance_fails_and_keeps_an_earlier_export(model_path, tmp_path):
    """A failed check writes nothing (no file of its own left beside) and leaves the good export made
    before as it was."""
    out = tmp_path / "m.onnx"
    run_cli("fststyle.export", f"model={model_path}", f"output={out}")
    good = out.read_bytes()
    proc = run_cli("fststyle.export", f"model={model_path}", f"output={out}", "tolerance=1e-12", expect=2)
    assert "nothing written (an earlier export there is kept)" in proc.stderr
    assert out.read_bytes() == good and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


@pytest.mark.parametrize("option", ["tolerance=-1", "int8_tolerance=-0.5", "tolerance=inf", "tolerance=nan", "int8_tolerance=abc"])
def test_a_bad_tolerance_is_refused_before_any_work(model_path, tmp_path, option):
    proc = run_cli("fststyle.export", f"model={model_path}", f"output={tmp_path / 'm.onnx'}", option, expect=2)
    key = option.split("=")[0]
    assert proc.stderr.strip().splitlines() == [f"error: {key} must be a number >= 0, got {option.split('=')[1]}"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_int8_export_is_checked_against_pytorch_and_runs(model_path, tmp_path, photos_dir):
    """format=onnx-int8: calibrated on photos, checked in 8-bit steps (mean within int8_tolerance, the
    largest printed), a quarter of the size of the float weights, and run by infer like any .onnx; a
    check above the tolerance writes nothing and keeps the earlier file."""
    from fststyle.errors import UserError
    from fststyle.exporters.formats import check_int8
    from fststyle.model_file import load_network
    from fststyle.images import load_tensor

    out, calibration = tmp_path / "m.int8.onnx", f"calibration={photo_folder(tmp_path, photos_dir, 3)}"
    proc = run_cli("fststyle.export", f"model={model_path}", "format=onnx-int8", f"output={out}", calibration)
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
    # The command with that tolerance keeps the good int8 file made above.
    good = out.read_bytes()
    proc = run_cli("fststyle.export", f"model={model_path}", "format=onnx-int8", f"output={out}", calibration, "int8_tolerance=0",
                   expect=2, cwd=tmp_path)
    assert "nothing written (an earlier export there is kept)" in proc.stderr and out.read_bytes() == good


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

    from fststyle.exporters.web import ORT_WEB_VERSION, write_page

    runtime = Path(os.environ.get("FSTSTYLE_ORT_WEB", REPO / ".cache" / f"onnxruntime-web-{ORT_WEB_VERSION}"))
    if not find_chromium():
        pytest.skip("no Chromium here (Debian: apt-get install chromium; CI: scripts/get_browser_test_deps.sh)")
    if not runtime.is_dir():
        pytest.skip(f"no onnxruntime-web at {runtime} (scripts/get_browser_test_deps.sh fetches it with npm)")
    site = tmp_path / "site"
    proc = run_cli("fststyle.export", f"model={model_path}", "format=web", f"output={site / 'page'}", f"web_runtime={runtime}")
    assert proc.stdout.splitlines()[-1] == f"exported: {(site / 'page' / 'model.onnx').resolve()}"
    assert not (site / "page" / "automate.js").exists()
    write_page(site / "page", ["starry_night"], "test build", runtime, automation=True)  # the hook the test drives
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


def web_config(model: Path, **keys) -> DictConfig:
    """The export command's own config (conf/cli/export.yaml) for format=web, with ``keys`` set."""
    config = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "cli" / "export.yaml"))
    config = {k: v for k, v in config.items() if k not in ("defaults", "hydra")}
    return OmegaConf.create({**config, "model": str(model), "format": "web", **keys})


def test_a_published_page_has_no_automation_and_names_no_local_file(model_path, tmp_path):
    """format=web as users publish it: index.html, stylize.js, model.onnx; no automation hook (nothing
    that fetches or posts an address from the page's link), the public runtime pinned with its hash,
    and no local path (the model's, the painting's) in the published model."""
    from fststyle.export import export
    from fststyle.exporters.web import ORT_CDN, ORT_HASHES

    out = tmp_path / "site"
    export(web_config(model_path, output=str(out)))
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "model.onnx", "stylize.js"]
    page, program = (out / "index.html").read_text(), (out / "stylize.js").read_text()
    assert "automate.js" not in page and "report" not in program and "location.search" not in program
    # The runtime pinned with its hashes: the loader by the browser, the two files it loads by the page (its one fetch).
    assert f'ort.all.min.js" integrity="{ORT_HASHES["ort.all.min.js"]}" crossorigin="anonymous"' in page
    config = json.loads(page.split("window.FSTSTYLE = ")[1].split(";</script>")[0])
    assert config["checkedRuntime"] == {"script": {"url": ORT_CDN + "ort-wasm-simd-threaded.jsep.mjs", "integrity": ORT_HASHES["ort-wasm-simd-threaded.jsep.mjs"]},
                                        "module": {"url": ORT_CDN + "ort-wasm-simd-threaded.jsep.wasm", "integrity": ORT_HASHES["ort-wasm-simd-threaded.jsep.wasm"]}}
    assert program.count("fetch(") == 1 and "fetch(url, { integrity" in program
    stored = ort.InferenceSession(str(out / "model.onnx")).get_modelmeta().custom_metadata_map["fststyle"]
    meta = json.loads(stored)
    assert "/" not in stored and meta["source"] == model_path.name and meta["style_image"] == "starry_night.jpg"


def test_a_failed_web_export_leaves_nothing_and_an_old_page_stays(model_path, tmp_path):
    from fststyle.errors import UserError
    from fststyle.export import export

    out = tmp_path / "site"
    with pytest.raises(UserError, match="tolerance"):
        export(web_config(model_path, output=str(out), tolerance=1e-12))
    assert list(tmp_path.iterdir()) == []  # no half-written folder, no temporary one
    export(web_config(model_path, output=str(out), check=False))
    before = (out / "model.onnx").read_bytes()
    with pytest.raises(UserError, match="tolerance"):
        export(web_config(model_path, output=str(out), tolerance=1e-12))
    assert (out / "model.onnx").read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["site"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("a user's file")
    with pytest.raises(ValueError, match="holds other files than a page"):
        export(web_config(model_path, output=str(tmp_path / "mine")))
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_the_page_escapes_what_a_model_names(tmp_path):
    """Model metadata is untrusted: a style name that is no plain name is refused; the title and the
    config are escaped for where they stand, and the template is filled in one pass (a placeholder
    inside a value stays text)."""
    from fststyle.errors import UserError
    from fststyle.exporters.web import script_json, write_page

    with pytest.raises(UserError, match="not a plain name"):
        write_page(tmp_path / "a", ["<img src=x onerror=alert(1)>"], "t")
    page = Path(write_page(tmp_path / "b", ["starry_night"], "<img src=x onerror=alert(1)> $config {{CONFIG}}")).read_text()
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt; $config {{CONFIG}}" in page
    assert page.count('"styles": ["starry_night"]') == 1
    crafted = script_json({"styles": ["</script><script>alert(1)</script><!--"]})
    assert "<" not in crafted and ">" not in crafted and json.loads(crafted) == {"styles": ["</script><script>alert(1)</script><!--"]}


def test_the_pinned_runtimes_hashes_are_the_npm_packages(tmp_path):
    """ORT_HASHES are the sha384 of the three files the page loads, in onnxruntime-web@ORT_WEB_VERSION
    (the copy scripts/get_browser_test_deps.sh fetches from npm)."""
    import base64
    import hashlib
    import os

    from fststyle.exporters.web import ORT_HASHES, ORT_WEB_VERSION

    dist = Path(os.environ.get("FSTSTYLE_ORT_WEB", REPO / ".cache" / f"onnxruntime-web-{ORT_WEB_VERSION}")) / "dist"
    if not dist.is_dir():
        pytest.skip(f"no onnxruntime-web at {dist} (scripts/get_browser_test_deps.sh fetches it with npm)")
    assert len(ORT_HASHES) == 3
    for name, integrity in ORT_HASHES.items():
        assert integrity == "sha384-" + base64.b64encode(hashlib.sha384((dist / name).read_bytes()).digest()).decode(), name


def test_the_page_checks_every_runtime_file_it_loads(model_path, tmp_path):
    """A published page (no local runtime) against a copy of the CDN served here: with the npm package's
    files it stylizes; with its WebAssembly module changed by one byte it refuses to run it."""
    import os
    import shutil
    import sys

    sys.path.insert(0, str(REPO / "scripts"))
    from bench.browser import find_chromium, open_page

    from fststyle.export import export
    from fststyle.exporters.web import ORT_FILES, ORT_WEB_VERSION, write_page

    runtime = Path(os.environ.get("FSTSTYLE_ORT_WEB", REPO / ".cache" / f"onnxruntime-web-{ORT_WEB_VERSION}")) / "dist"
    if not find_chromium() or not runtime.is_dir():
        pytest.skip("needs Chromium and onnxruntime-web (scripts/get_browser_test_deps.sh)")
    site = tmp_path / "site"
    export(web_config(model_path, output=str(site / "page")))
    (site / "cdn").mkdir()
    for name in ORT_FILES:
        shutil.copy(runtime / name, site / "cdn" / name)
    Image.new("RGB", (40, 30), (200, 120, 40)).save(site / "photo.png")
    write_page(site / "page", ["starry_night"], "test build", automation=True, cdn="../cdn/")
    headers, body = open_page(site, "page/index.html?photo=../photo.png&report={report}")
    assert body[:8] == b"\x89PNG\r\n\x1a\n" and headers.get("X-Backend") == "wasm", body[:300]
    module = bytearray((site / "cdn" / ORT_FILES[2]).read_bytes())
    module[len(module) // 2] ^= 1
    (site / "cdn" / ORT_FILES[2]).write_bytes(bytes(module))
    _, body = open_page(site, "page/index.html?photo=../photo.png&report={report}")
    assert body.startswith(b"error:") and b"Failed to fetch" in body, body[:300]


def test_calibration_takes_a_bounded_spread_of_a_large_folder(tmp_path, capsys):
    from fststyle.exporters.formats import MAX_CALIBRATION_PHOTOS, calibration_photos

    for i in range(40):
        (tmp_path / f"{i:02d}.jpg").write_bytes(b"")  # only listed, never read here
    photos = calibration_photos(str(tmp_path))
    assert len(photos) == MAX_CALIBRATION_PHOTOS == 8 and [p.name for p in photos] == [f"{i:02d}.jpg" for i in range(0, 40, 5)]
    assert "8 of the 40 photos" in capsys.readouterr().out
