"""``python -m fststyle.export``: an exported model (``.pth``, see fststyle.model_file) or a training
checkpoint as ONNX, int8 ONNX, TorchScript (fststyle.exporters.formats), a browser page (fststyle.exporters.web) or a phone
format (ExecuTorch, LiteRT, Core ML: fststyle.exporters.mobile), each checked against PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig

from fststyle import CONF_DIR, PACKAGED_MODELS
from fststyle.cli import run_cli
from fststyle.files import atomic_write
from fststyle.errors import UserError
from fststyle.exporters.formats import calibration_photos, check_export, check_int8, export_onnx, export_torchscript, public_metadata, quantize_onnx
from fststyle.exporters.mobile import MOBILE_FORMATS, parse_size
from fststyle.blend import style_names
from fststyle.model_file import load_network, model_path
from fststyle.net import TransformerNet

EXPORT_FORMATS = {"onnx": ".onnx", "onnx-int8": ".int8.onnx", "torchscript": ".pt", "web": "_web", **MOBILE_FORMATS}


def check_options(cfg: DictConfig) -> None:
    """Refuse bad values before any work, each in one line."""
    if cfg.format not in EXPORT_FORMATS:
        raise ValueError(f"format={cfg.format} is not one of {', '.join(EXPORT_FORMATS)}")
    if cfg.format in MOBILE_FORMATS:
        parse_size(cfg.size)
    for key in ("tolerance", "int8_tolerance", "mobile_tolerance"):
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
            raise ValueError(f"{key} must be a number >= 0, got {value}")


def export(cfg: DictConfig) -> Path:
    check_options(cfg)
    net, metadata = load_network(cfg.model)
    source = model_path(cfg.model)
    model = Path(source.name) if str(cfg.model) in PACKAGED_MODELS else source  # never write into the installed package
    output = Path(cfg.output) if cfg.output else model.with_name(model.stem + EXPORT_FORMATS[cfg.format]) if cfg.format == "web" \
        else model.with_suffix(EXPORT_FORMATS[cfg.format])
    if output.resolve() == source.resolve():
        raise ValueError(f"output={output} would overwrite the model; give another output=")
    # What a published file says names no local file: paths are cut to file names (one rule for every format).
    metadata = public_metadata({**metadata, "source": str(source.resolve())})
    if cfg.format == "web":
        return export_web(cfg, net, metadata, output)
    if cfg.format in MOBILE_FORMATS:
        return export_mobile(cfg, net, metadata, output)
    # Written beside the target and checked there: a failed check leaves an earlier export as it was.
    with atomic_write(output) as tmp:
        if cfg.format == "onnx":
            export_onnx(net, tmp, metadata, cfg.opset)
        elif cfg.format == "onnx-int8":
            quantize_onnx(net, tmp, metadata, calibration_photos(cfg.calibration), cfg.opset)
        else:
            export_torchscript(net, tmp, metadata)
        if cfg.check:
            verify(tmp, cfg, net)
    written = output.resolve()
    print(f"exported: {written}")
    return written


def verify(written: Path, cfg: DictConfig, net: TransformerNet) -> None:
    """Run the export on real photos and compare it with PyTorch; a UserError when it differs by more
    than the tolerance."""
    if cfg.format == "onnx-int8":
        check_int8(written, net, cfg.int8_tolerance)
        return
    from fststyle.training.data import sample_root
    from fststyle.images import load_tensor

    photo = load_tensor(sample_root() / "astronaut.png", 97)  # a real photo at an odd size
    batches = [photo[None], torch.stack([photo, photo.flip(-1)]), torch.rand(1, 3, 33, 150)]
    diff = check_export(written, "onnx" if cfg.format == "web" else cfg.format, net, batches)
    if diff > cfg.tolerance:
        raise UserError(f"the {cfg.format} export differs from PyTorch by {diff:.2e} (> tolerance {cfg.tolerance}); nothing written "
                        "(an earlier export there is kept)")
    print(f"checked: largest difference to PyTorch {diff:.2e} (tolerance {cfg.tolerance}) on 3 batches of different sizes")


def export_mobile(cfg: DictConfig, net: TransformerNet, metadata: dict[str, Any], output: Path) -> Path:
    """A phone file (fststyle.exporters.mobile) at the fixed size ``size``, written beside ``output`` and checked
    there: ExecuTorch and LiteRT files run by their own runtimes on real photos against PyTorch (mean
    difference in 8-bit steps within mobile_tolerance, int8 within int8_tolerance); a Core ML package,
    which needs macOS to run, by its inputs, output and operations."""
    from fststyle.files import atomic_folder
    from fststyle.exporters.mobile import (check_coreml, check_mobile, export_coreml, export_executorch, export_tflite, fit_photo)

    width, height = parse_size(cfg.size)
    fmt = cfg.format
    if fmt == "coreml":
        with atomic_folder(output) as folder:
            export_coreml(net, folder, metadata, width, height)
            if cfg.check:
                summary = check_coreml(folder, net, width, height)
                print(f"checked: Core ML inputs {summary['inputs']}, output {summary['outputs']}, "
                      f"{sum(summary['operations'].values())} operations (not run: Core ML runs on macOS and iOS only)")
        written = output.resolve()
        print(f"exported: {written}")
        return written
    with atomic_write(output) as tmp:
        if fmt == "tflite":
            export_tflite(net, tmp, metadata, width, height)
        else:
            calibration = [fit_photo(p, width, height) for p in calibration_photos(cfg.calibration)] if fmt == "executorch-int8" else None
            export_executorch(net, tmp, metadata, width, height, calibration)
        if cfg.check:
            from fststyle.training.data import SAMPLE_PHOTOS, sample_root

            photos = [fit_photo(sample_root() / name, width, height) for name in (*SAMPLE_PHOTOS[6:], "camera.png", "ihc.png")]
            tolerance = cfg.int8_tolerance if fmt == "executorch-int8" else cfg.mobile_tolerance
            mean = check_mobile(tmp, fmt, net, photos, tolerance)
            print(f"checked: {fmt} differs from PyTorch by {mean:.2f} 8-bit steps on average on 4 photos at {width}x{height} "
                  f"(tolerance {tolerance}), run by its own runtime")
    written = output.resolve()
    print(f"exported: {written} ({width}x{height})")
    return written


def export_web(cfg: DictConfig, net: TransformerNet, metadata: dict[str, Any], output: Path) -> Path:
    """The browser page's folder, built beside ``output`` and put in its place only when complete and
    checked."""
    from fststyle.files import atomic_folder
    from fststyle.exporters.web import PAGE_FILES, write_page

    if output.exists() and not output.is_dir():
        raise ValueError(f"format=web writes a folder, and output={output} is a file; give a folder")
    others = sorted(p.name for p in output.iterdir() if p.name not in PAGE_FILES) if output.is_dir() else []
    if others:
        raise ValueError(f"output={output} holds other files than a page ({', '.join(others[:3])}): give a new or empty folder")
    names = style_names(metadata)
    with atomic_folder(output) as folder:
        write_page(folder, names, f"{' / '.join(names)} (fststyle)", cfg.web_runtime)
        export_onnx(net, folder / "model.onnx", metadata, cfg.opset)
        if cfg.check:
            verify(folder / "model.onnx", cfg, net)
    print(f"page: {(output / 'index.html').resolve()} (serve the folder, e.g. python -m http.server -d {output}, and open http://localhost:8000)")
    written = (output / "model.onnx").resolve()
    print(f"exported: {written}")
    return written


@hydra.main(version_base="1.3", config_path=str(CONF_DIR / "cli"), config_name="export")
def main(cfg: DictConfig) -> None:
    run_cli(lambda: export(cfg))


def cli() -> None:
    """``python -m fststyle.export`` and the ``fststyle-export`` command."""
    main()


if __name__ == "__main__":
    cli()
