"""The export formats of a trained network: ONNX (dynamic batch, height and width; a style-weights input
for a model of several styles), int8 ONNX for CPUs, TorchScript, and running each of them to check it
against PyTorch. The command that writes them is fststyle.export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from fststyle.errors import UserError
from fststyle.files import atomic_write
from fststyle.net import TransformerNet


def _trace_inputs(net: TransformerNet) -> tuple[torch.Tensor, ...]:
    """An image, plus style weights (an even blend) for a network of several styles. Any size works:
    the network's size handling is arithmetic on the traced shape."""
    image = torch.rand(1, 3, 64, 80, generator=torch.Generator().manual_seed(0))
    return (image,) if net.num_styles == 1 else (image, torch.full((1, net.num_styles), 1 / net.num_styles))


def check_styles(net: TransformerNet, size: int) -> list[torch.Tensor | None]:
    """Style weights to check an export with, for ``size`` images: each item a different style or blend."""
    if net.num_styles == 1:
        return [None]
    k = net.num_styles
    rows = [*torch.eye(k), torch.tensor([0.7, 0.3] + [0.0] * (k - 2))]
    return [torch.stack([rows[(start + i) % len(rows)] for i in range(size)]) for start in range(len(rows))]


def export_onnx(net: TransformerNet, path: str | Path, metadata: dict[str, Any], opset: int = 18) -> Path:
    """ONNX with dynamic batch, height and width (torch.export-based exporter); fststyle metadata in
    the model's metadata_props. A network of several styles takes the style weights, (N, styles), as
    its second input ``style``."""
    import onnx

    path = Path(path)
    batch = torch.export.Dim("batch")
    shapes = {"x": {0: batch, 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}}
    names = ["input"]
    if net.num_styles > 1:
        shapes["style"], names = {0: batch}, ["input", "style"]
    with atomic_write(path) as tmp:
        program = torch.onnx.export(net.eval().cpu(), _trace_inputs(net), dynamo=True, opset_version=opset, verbose=False,
                                    input_names=names, output_names=["output"], dynamic_shapes=shapes)
        program.save(str(tmp))
        model = onnx.load(str(tmp))
        _drop_exporter_trace(model.graph)
        model.metadata_props.add(key="fststyle", value=json.dumps(metadata))
        model.doc_string = "fststyle model: input/output RGB float32 in [0, 1], (N, 3, H, W), any H and W"
        onnx.save(model, str(tmp))
    return path.resolve()


def _drop_exporter_trace(graph: Any) -> None:
    """Remove the exporter's debugging notes from every node and value: they hold the Python stack of
    each traced operation, with the absolute paths of this machine's source files (and the FX graph's
    names), which a published model must not carry; the runtimes never read them."""
    for item in (*graph.node, *graph.value_info, *graph.input, *graph.output):
        del item.metadata_props[:]
    del graph.metadata_props[:]


class _Calibration:
    """onnxruntime's calibration reader: the photos as centred squares of ``size`` px, one at a time."""

    def __init__(self, photos: list[Path], size: int = 256):
        self.photos, self.size = iter(photos), size

    def get_next(self) -> dict[str, Any] | None:
        from fststyle.images import open_rgb, square_crop, to_tensor

        path = next(self.photos, None)
        if path is None:
            return None
        return {"input": to_tensor(square_crop(open_rgb(path), self.size, centre=True))[None].numpy()}


def quantize_onnx(net: TransformerNet, path: str | Path, metadata: dict[str, Any], photos: list[Path], opset: int = 18) -> Path:
    """A statically quantized ONNX model for CPUs: int8 weights (per channel) and uint8 activations in
    QDQ form, the activation ranges calibrated on ``photos`` (the 99.999th percentile, so that a few
    extreme values do not waste the 256 levels). The last convolution stays float: the output's 8-bit
    steps would otherwise come from a second, coarser rounding."""
    import contextlib
    import io
    import logging
    import tempfile

    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if net.num_styles > 1:
        raise ValueError("format=onnx-int8 takes one-style models; export a model of several styles with format=onnx")
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        plain, prepared = Path(tmp) / "fp32.onnx", Path(tmp) / "prepared.onnx"
        export_onnx(net, plain, metadata, opset)
        quiet = logging.getLogger()  # the quantization tools print their progress and log shape-inference doubts
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                quant_pre_process(str(plain), str(prepared))
                last_conv = [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type == "Conv"][-1]
                quantized = Path(tmp) / "int8.onnx"
                # reduce_range: 7-bit weights. CPUs without VNNI (AVX2) multiply uint8 by int8 in int16 pairs that
                # saturate with 8-bit weights: there this network was 5.3 8-bit steps off PyTorch, with 7 bits within 4.
                quantize_static(str(prepared), str(quantized), _Calibration(photos), quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=[last_conv],
                                calibrate_method=CalibrationMethod.Percentile, extra_options={"CalibPercentile": 99.999})
        finally:
            quiet.setLevel(level)
        with atomic_write(path) as out:
            model = onnx.load(str(quantized))
            del model.metadata_props[:]
            model.metadata_props.add(key="fststyle", value=json.dumps({**metadata, "quantized": "int8"}))
            onnx.save(model, str(out))
    return path.resolve()


def export_torchscript(net: TransformerNet, path: str | Path, metadata: dict[str, Any]) -> Path:
    """A traced TorchScript module: ``torch.jit.load(path)`` in Python or C++ (libtorch), no fststyle
    needed. The metadata is in the archive's extra file ``fststyle.json``."""
    import warnings

    path = Path(path)
    with atomic_write(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net.eval().cpu(), _trace_inputs(net))
        torch.jit.save(traced, str(tmp), _extra_files={"fststyle.json": json.dumps(metadata)})
    return path.resolve()


def run_export(path: str | Path, fmt: str, batch: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
    """Run an exported file the way its users will: onnxruntime for ONNX, torch.jit for TorchScript."""
    inputs = (batch,) if style is None else (batch, style)
    if fmt.startswith("onnx"):
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed = dict(zip(["input", "style"], (x.numpy() for x in inputs)))
        return torch.from_numpy(session.run(None, feed)[0])
    import warnings

    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
        return torch.jit.load(str(path), map_location="cpu")(*inputs)


def check_export(path: str | Path, fmt: str, net: TransformerNet, batches: list[torch.Tensor]) -> float:
    """Largest absolute difference between the export and PyTorch over ``batches`` (for a network of
    several styles: with each style and a blend)."""
    with torch.inference_mode():
        return max((run_export(path, fmt, b, s) - net.eval().cpu()(b, s)).abs().max().item()
                   for b in batches for s in check_styles(net, len(b)))


def public_metadata(value: Any) -> Any:
    """``value`` (a model's metadata) with every local file path cut to its file name; addresses and
    packaged paintings stay."""
    from fststyle.styles import PACKAGED, is_url

    if isinstance(value, dict):
        return {k: public_metadata(v) for k, v in value.items()}
    if isinstance(value, list):
        return [public_metadata(v) for v in value]
    if isinstance(value, str) and not is_url(value) and not value.startswith(PACKAGED) and ("/" in value or "\\" in value):
        return Path(value.replace("\\", "/")).name
    return value


# onnxruntime's percentile calibrator keeps every intermediate tensor of every calibration photo in memory
# (measured: 0.28 GB more peak memory per 256 px photo for the default network; 3.3 GB in all with 8
# photos), so a large folder is sampled.
MAX_CALIBRATION_PHOTOS = 8


def calibration_photos(folder: str | None) -> list[Path]:
    """The photos that calibrate an int8 export: at most MAX_CALIBRATION_PHOTOS below ``folder``, spread
    evenly over its sorted list, else six of the sample photos (check_int8 checks on the other two and
    two more)."""
    from fststyle.training.data import SAMPLE_PHOTOS, sample_root
    from fststyle.images import find_files

    photos = find_files(folder) if folder else [sample_root() / name for name in SAMPLE_PHOTOS[:6]]
    if not photos:
        raise UserError(f"calibration={folder} holds no photos; give a folder of photos like the ones to stylize")
    if len(photos) > MAX_CALIBRATION_PHOTOS:
        print(f"calibration: {MAX_CALIBRATION_PHOTOS} of the {len(photos)} photos in {folder}, spread over the folder "
              "(the calibrator keeps every photo's activations in memory)")
        photos = [photos[i * len(photos) // MAX_CALIBRATION_PHOTOS] for i in range(MAX_CALIBRATION_PHOTOS)]
    return photos


def check_int8(path: Path, net: TransformerNet, tolerance: float) -> None:
    """The int8 model against PyTorch on real photos it was not calibrated on, in 8-bit steps: the
    mean difference must stay within ``tolerance`` (the largest is printed: a few pixels always differ
    by more)."""
    from fststyle.training.data import SAMPLE_PHOTOS, sample_root
    from fststyle.images import load_tensor

    photos = [load_tensor(sample_root() / name, 257)[None] for name in (*SAMPLE_PHOTOS[6:], "camera.png", "ihc.png")]
    with torch.inference_mode():
        steps = torch.cat([(run_export(path, "onnx", p) - net.eval().cpu()(p)).abs().flatten() * 255 for p in photos])
    largest, mean = steps.max().item(), steps.mean().item()
    if mean > tolerance:
        raise UserError(f"the int8 export differs from PyTorch by {mean:.2f} 8-bit steps on average (> int8_tolerance {tolerance}); "
                        "nothing written (an earlier export there is kept): calibrate on photos like yours (calibration=DIR) or export format=onnx")
    print(f"checked: int8 differs from PyTorch by {mean:.2f} 8-bit steps on average, {largest:.0f} at most, on 4 photos "
          f"(int8_tolerance {tolerance} on the mean)")
