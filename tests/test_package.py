"""fststyle as users install it: a wheel (what `pip install .` or `pip install git+URL` builds), not the
checkout. Its configs, paintings and page ship inside it, and an application that only stylizes
imports neither Hydra nor Lightning."""

import os
import shutil
import subprocess
import sys
import zipfile

import pytest
from conftest import REPO, tiny_args
from PIL import Image


def test_stylizer_imports_no_training_or_command_line_stack():
    """Nor torchvision, whose import costs a stylizing command about a second (it loads torch._dynamo)."""
    code = ("import sys; from fststyle import Stylizer; Stylizer; "
            "print(sorted(m for m in ('hydra', 'omegaconf', 'pytorch_lightning', 'lightning', 'torchvision') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert proc.stdout.strip() == "[]"


def test_a_checkout_reads_the_top_level_conf_folder(tmp_path):
    """One copy of the configs, conf/ at the top of the checkout: the package run from a source tree (as
    an editable install runs it) reads those files, so an edit there shows in the next command."""
    assert not (REPO / "fststyle" / "conf").exists()
    source = tmp_path / "source"
    shutil.copytree(REPO / "fststyle", source / "fststyle", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "conf", source / "conf")
    model = source / "conf" / "model" / "johnson.yaml"
    model.write_text(model.read_text().replace("num_residual: 5", "num_residual: 7"))
    proc = subprocess.run([sys.executable, "-m", "fststyle.train", "--cfg", "job"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(source)}, cwd=tmp_path, check=True)
    assert "num_residual: 7" in proc.stdout


@pytest.mark.slow
def test_a_wheel_installed_outside_the_checkout_trains_exports_and_stylizes(tmp_path, photos_dir, starry_night):
    """Build the wheel, install it into a folder of its own, and from a folder that is not the checkout:
    list the styles, train a few steps (the configs come from the wheel), and stylize a photo with the
    console script, with the trained model and with the packaged one."""
    # Built from a copy of the sources: setuptools writes build/ beside them.
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".*", "build", "dist", "outputs", "*.egg-info", "__pycache__", "docs"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)],
                   check=True, capture_output=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("fststyle-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    # Every config of the top-level conf/ is installed inside the package, as fststyle/conf/.
    assert {f"fststyle/conf/{p.relative_to(REPO / 'conf').as_posix()}" for p in (REPO / "conf").rglob("*.yaml")} <= set(names)
    assert {"fststyle/conf/train.yaml", "fststyle/conf/cli/infer.yaml", "fststyle/conf/style/great_wave.yaml",
            "fststyle/paintings/great_wave.jpg", "fststyle/exporters/web/stylize.js", "fststyle/exporters/web/automate.js", "fststyle/models/packaged.pth",
            "fststyle/models/packaged_small.pth", "fststyle/models/packaged_small.onnx"} <= set(names)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "WANDB_MODE": "disabled"}

    def run(*command: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=elsewhere)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return proc

    where = run(sys.executable, "-c", "import fststyle; print(fststyle.__file__)").stdout.strip()
    assert where == str(site / "fststyle" / "__init__.py")
    assert "great_wave       packaged" in run(str(site / "bin" / "fststyle-styles")).stdout
    run_dir = tmp_path / "run"
    args = [a for a in tiny_args(run_dir, photos_dir, starry_night, "trainer.max_steps=2", "sample_every=0") if not a.startswith("style.")]
    proc = run(sys.executable, "-m", "fststyle.train", *args, "style=great_wave")
    model = run_dir / "export" / "great_wave.pth"
    assert proc.stdout.strip().splitlines()[-1] == f"exported: {model}"
    out = tmp_path / "styled.png"
    run(str(site / "bin" / "fststyle-infer"), f"model={model}", f"input={photos_dir / 'dog.jpg'}", f"output={out}", "size=40")
    with Image.open(out) as image:
        assert max(image.size) == 40
    run(str(site / "bin" / "fststyle-infer"), "style=udnie", f"input={photos_dir / 'dog.jpg'}", f"output={out}", "size=40")  # packaged
    with Image.open(out) as image:
        assert max(image.size) == 40
    small = run(str(site / "bin" / "fststyle-infer"), "model=packaged-small", "style=udnie", f"input={photos_dir / 'dog.jpg'}", f"output={out}", "size=48")
    assert "quick path" in small.stdout  # its ONNX copy, installed with the wheel
    with Image.open(out) as image:
        assert max(image.size) == 48
    for command, arg, key in (("fststyle-export", "model=m.pth", "format: onnx"), ("fststyle-eval", "model=m.pth", "reference: false"),
                              ("fststyle-train", "model=johnson_small", "num_residual: 3")):
        assert key in run(str(site / "bin" / command), "--cfg", "job", arg).stdout  # each finds its config
    assert sorted(p.name for p in elsewhere.iterdir()) == []  # nothing written where it ran
