"""Phone formats of a trained network, each at a fixed input size chosen at export:

- ExecuTorch (``.pte``, Android and iOS): the XNNPACK delegate runs the convolutions; ``executorch-int8``
  quantizes them to int8 (PT2E with XNNPACK's quantizer, calibrated on photos).
- LiteRT (``.tflite``, Android; formerly TensorFlow Lite), through litert-torch.
- Core ML (``.mlpackage``, iOS and macOS): an fp16 ML Program through coremltools.

Every file takes the image as float32 RGB in [0, 1], (1, 3, H, W) (NCHW, as the ONNX export), and a
model of several styles a second input, the style weights (1, styles) (a one-hot row picks a style,
other rows blend). Its metadata (styles, size, layout, and the model's public metadata) travels inside
the file: a constant method ``fststyle_metadata`` of the ExecuTorch program, a ``fststyle`` metadata
entry of the LiteRT flatbuffer, Core ML's user-defined metadata.

Why a fixed size: ExecuTorch plans its memory for the largest input it is exported for (a program
dynamic up to 1024x1024 held 4 GB when run, measured), LiteRT's converter traces one shape, and a phone
app resizes its camera frames to the model's input anyway. The network's own padding to a multiple of
16 px becomes constants at a fixed size (``TransformerNet.forward``).

The converters' known pitfalls with this network, and what happens here:

- Instance norm: LiteRT has no instance-norm op; the converter decomposes it into mean, variance and
  arithmetic (exact in float32). XNNPACK does not delegate it; ExecuTorch runs it with its portable
  kernels between the delegated convolutions. Core ML has ``instance_norm`` natively.
- Reflection padding: LiteRT ``MIRROR_PAD``, Core ML ``pad`` in reflect mode; XNNPACK leaves it to the
  portable kernels. The replicate padding to a multiple of 16 disappears at sizes that are multiples of
  16 and becomes a constant pad otherwise.
- Nearest upsampling: ``RESIZE_NEAREST_NEIGHBOR`` (LiteRT) and ``upsample_nearest_neighbor`` (Core ML)
  with integer factors of 2, which every converter handles exactly (no half-pixel ambiguity at
  integer factors).
- Core ML's converter refuses the ``alias`` nodes that torch.export leaves for slices that keep the
  whole tensor; they are removed before conversion (they copy nothing).
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from fststyle.errors import UserError
from fststyle.files import atomic_folder, atomic_write
from fststyle.net import TransformerNet

# The format names of ``fststyle.export format=``, and the suffix of each file.
MOBILE_FORMATS = {"executorch": ".pte", "executorch-int8": ".int8.pte", "tflite": ".tflite", "coreml": ".mlpackage"}
METADATA_KEY = "fststyle_metadata"  # the ExecuTorch constant method, and (as "fststyle") the LiteRT entry


def need(module: str, fmt: str) -> ModuleType:
    """Import ``module`` for ``fmt``, or say in one line how to get it."""
    # LiteRT's native libraries log their start-up to stderr through absl unless told otherwise.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise UserError(f"format={fmt} needs {module.split('.')[0]}, which is not installed: pip install 'fststyle[mobile]'") from err


def parse_size(size: Any) -> tuple[int, int]:
    """``size=`` of a phone export as (width, height): N (a square) or WxH, each a multiple of 16 px
    between 16 and 4096 (the network works in blocks of 16; a camera frame is resized to it)."""
    text = str(size).lower().strip()
    parts = text.split("x") if "x" in text else [text, text]
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        width = height = 0
    if not (len(parts) == 2 and all(16 <= v <= 4096 and v % 16 == 0 for v in (width, height))):
        raise ValueError(f"size must be N or WxH in pixels, multiples of 16 from 16 to 4096 (e.g. 512 or 640x480), got {size}")
    return width, height


def prepared(net: TransformerNet) -> TransformerNet:
    """A copy of the network to convert: on the CPU, in eval mode, its weights in the default memory
    layout (XNNPACK's layout pass fails on channels_last weights; the caller's network stays as it is)."""
    return copy.deepcopy(net).cpu().eval().to(memory_format=torch.contiguous_format)


def example_inputs(net: TransformerNet, width: int, height: int) -> tuple[torch.Tensor, ...]:
    """An image of the export size, and style weights (an even blend) for a network of several styles."""
    image = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    return (image,) if net.num_styles == 1 else (image, torch.full((1, net.num_styles), 1 / net.num_styles))


def file_metadata(net: TransformerNet, metadata: dict[str, Any], width: int, height: int, fmt: str) -> dict[str, Any]:
    """What a phone file says about itself: its inputs, size and layout, beside the model's metadata."""
    inputs = ["input: float32 RGB in [0, 1], (1, 3, H, W)"]
    if net.num_styles > 1:
        inputs.append(f"style: float32 weights (1, {net.num_styles}), one per style, summing to 1")
    return {**metadata, "format": fmt, "width": width, "height": height, "inputs": inputs, "output": "float32 RGB in [0, 1], (1, 3, H, W)"}


def export_executorch(net: TransformerNet, path: str | Path, metadata: dict[str, Any], width: int, height: int,
                      calibration: list[torch.Tensor] | None = None) -> Path:
    """An ExecuTorch program with the XNNPACK delegate; ``calibration`` (images of the export size):
    int8 weights and activations, their ranges measured on those images."""
    fmt = "executorch-int8" if calibration else "executorch"
    exir = need("executorch.exir", fmt)
    partitioner = need("executorch.backends.xnnpack.partition.xnnpack_partitioner", fmt).XnnpackPartitioner
    net = prepared(net)
    inputs = example_inputs(net, width, height)
    program = torch.export.export(net, inputs)
    if calibration:
        quantizer_module = need("executorch.backends.xnnpack.quantizer.xnnpack_quantizer", fmt)
        pt2e = need("torchao.quantization.pt2e.quantize_pt2e", fmt)
        quantizer = quantizer_module.XNNPACKQuantizer().set_global(quantizer_module.get_symmetric_quantization_config(is_per_channel=True))
        module = pt2e.prepare_pt2e(program.module(), quantizer)
        with torch.no_grad():
            for image in calibration:
                module(image, *inputs[1:])
        program = torch.export.export(pt2e.convert_pt2e(module), inputs)
    described = json.dumps(file_metadata(net, metadata, width, height, fmt))
    lowered = exir.to_edge_transform_and_lower(program, partitioner=[partitioner()], constant_methods={METADATA_KEY: described})
    buffer = lowered.to_executorch().buffer
    with atomic_write(path) as tmp:
        tmp.write_bytes(buffer)
    return Path(path).resolve()


def export_tflite(net: TransformerNet, path: str | Path, metadata: dict[str, Any], width: int, height: int) -> Path:
    """A LiteRT flatbuffer through litert-torch, with the metadata as a ``fststyle`` metadata entry."""
    litert_torch = need("litert_torch", "tflite")
    schema = need("ai_edge_litert.schema_py_generated", "tflite")
    import flatbuffers

    net = prepared(net)
    inputs = example_inputs(net, width, height)
    with atomic_write(path) as tmp, contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        litert_torch.convert(net, inputs).export(str(tmp))  # quiet: the converter prints its progress
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(tmp.read_bytes(), 0))
        data = schema.BufferT()
        data.data = list(json.dumps(file_metadata(net, metadata, width, height, "tflite")).encode())
        model.buffers.append(data)
        entry = schema.MetadataT()
        entry.name, entry.buffer = "fststyle", len(model.buffers) - 1
        model.metadata = [*(model.metadata or []), entry]
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        tmp.write_bytes(bytes(builder.Output()))
    return Path(path).resolve()


def export_coreml(net: TransformerNet, path: str | Path, metadata: dict[str, Any], width: int, height: int) -> Path:
    """A Core ML ML Program (fp16 compute, iOS 16 / macOS 13 and later), inputs ``input`` (and
    ``style``), output ``output``, the metadata as user-defined metadata ``fststyle``."""
    ct = need("coremltools", "coreml")
    net = prepared(net)
    inputs = example_inputs(net, width, height)
    program = torch.export.export(net, inputs).run_decompositions({})
    graph = program.graph_module.graph
    for node in list(graph.nodes):  # slices that keep the whole tensor: no copy, and coremltools refuses them
        if node.op == "call_function" and node.target == torch.ops.aten.alias.default:
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
    program.graph_module.recompile()
    model = ct.convert(program, convert_to="mlprogram", compute_precision=ct.precision.FLOAT16, minimum_deployment_target=ct.target.iOS16)
    spec = model.get_spec()
    for old, new in zip([i.name for i in spec.description.input], ["input", "style"]):
        ct.utils.rename_feature(spec, old, new)
    ct.utils.rename_feature(spec, spec.description.output[0].name, "output")
    model = ct.models.MLModel(spec, weights_dir=model.weights_dir, skip_model_load=True)
    model.user_defined_metadata["fststyle"] = json.dumps(file_metadata(net, metadata, width, height, "coreml"))
    model.short_description = "fststyle style transfer: input/output RGB float32 in [0, 1], (1, 3, H, W)"
    with atomic_folder(path) as folder:
        model.save(str(folder))
    return Path(path).resolve()


def coreml_summary(path: str | Path) -> dict[str, Any]:
    """What a Core ML package holds, read from its spec (no macOS needed): its inputs and output with
    their shapes, the count of each operation, and its metadata."""
    ct = need("coremltools", "coreml")
    spec = ct.utils.load_spec(str(path))
    operations: dict[str, int] = {}
    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            for op in block.operations:
                operations[op.type] = operations.get(op.type, 0) + 1
    shapes = lambda features: {f.name: list(f.type.multiArrayType.shape) for f in features}  # noqa: E731
    return {"inputs": shapes(spec.description.input), "outputs": shapes(spec.description.output), "operations": operations,
            "metadata": json.loads(spec.description.metadata.userDefined["fststyle"])}


def fit_photo(path: str | Path, width: int, height: int) -> torch.Tensor:
    """A photo as a phone app would feed it: scaled to cover width x height, the centre cut out, (1, 3, H, W)."""
    from PIL import Image

    from fststyle.images import open_rgb, to_tensor

    image = open_rgb(path)
    scale = max(width / image.width, height / image.height)
    image = image.resize((max(width, round(image.width * scale)), max(height, round(image.height * scale))), Image.Resampling.BICUBIC)
    left, top = (image.width - width) // 2, (image.height - height) // 2
    return to_tensor(image.crop((left, top, left + width, top + height)))[None]


def check_mobile(path: str | Path, fmt: str, net: TransformerNet, photos: list[torch.Tensor], tolerance: float) -> float:
    """The file against PyTorch on ``photos`` (of its size; each with another style of a model of several,
    the first also with a blend), run by its own runtime: the mean difference in 8-bit steps, which must
    stay within ``tolerance``; returns it."""
    k = net.num_styles
    styles = [None] * len(photos) if k == 1 else [torch.eye(k)[i % k][None] for i in range(len(photos))]
    cases = list(zip(photos, styles))
    if k > 1:
        cases.append((photos[0], torch.full((1, k), 1 / k)))
    differences = []
    with torch.inference_mode():
        for photo, style in cases:
            expected = net.eval().cpu()(photo) if style is None else net.eval().cpu()(photo, style)
            differences.append((run_mobile(path, fmt, photo, style) - expected).abs().mean().item() * 255)
    mean = sum(differences) / len(differences)
    if not mean <= tolerance:
        raise UserError(f"the {fmt} export differs from PyTorch by {mean:.2f} 8-bit steps on average (> tolerance {tolerance}); "
                        "nothing written (an earlier export there is kept)")
    return mean


def check_coreml(path: str | Path, net: TransformerNet, width: int, height: int) -> dict[str, Any]:
    """What can be checked of a Core ML package without macOS: its inputs and output at the export
    size, and the operations a style network needs (convolutions, instance norms, padding, nearest
    upsampling)."""
    summary = coreml_summary(path)
    inputs = {"input": [1, 3, height, width], **({"style": [1, net.num_styles]} if net.num_styles > 1 else {})}
    count = lambda kind: sum(isinstance(m, kind) for m in net.modules())  # noqa: E731
    needed = {"conv": count(torch.nn.Conv2d), "instance_norm": count(torch.nn.InstanceNorm2d), "upsample_nearest_neighbor": count(torch.nn.Upsample)}
    ops = summary["operations"]
    if summary["inputs"] != inputs or summary["outputs"] != {"output": [1, 3, height, width]} or \
            any(ops.get(op, 0) != n for op, n in needed.items()) or "pad" not in ops:
        raise UserError(f"the Core ML package is not what it should be: inputs {summary['inputs']}, outputs {summary['outputs']}, "
                        f"operations {ops}; nothing written (an earlier export there is kept)")
    return summary


def run_mobile(path: str | Path, fmt: str, image: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
    """Run a phone file with its own Linux runtime (ExecuTorch's Python runtime, the LiteRT
    interpreter) on one image (1, 3, H, W) of its size."""
    inputs = [image.contiguous()] if style is None else [image.contiguous(), style.contiguous()]
    if fmt.startswith("executorch"):
        runtime = need("executorch.runtime", fmt).Runtime.get()
        return runtime.load_program(str(path)).load_method("forward").execute(inputs)[0].clone()
    if fmt == "tflite":
        interpreter = need("ai_edge_litert.interpreter", fmt).Interpreter(model_path=str(path))
        interpreter.allocate_tensors()
        for detail, value in zip(interpreter.get_input_details(), inputs):
            interpreter.set_tensor(detail["index"], value.numpy())
        interpreter.invoke()
        return torch.from_numpy(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy())
    raise ValueError(f"format={fmt} cannot be run on this machine (Core ML needs macOS)")


def read_metadata(path: str | Path, fmt: str) -> dict[str, Any]:
    """The metadata a phone file carries."""
    if fmt.startswith("executorch"):
        runtime = need("executorch.runtime", fmt).Runtime.get()
        return json.loads(runtime.load_program(str(path)).load_method(METADATA_KEY).execute([])[0])
    if fmt == "tflite":
        schema = need("ai_edge_litert.schema_py_generated", fmt)
        model = schema.Model.GetRootAs(Path(path).read_bytes(), 0)
        for i in range(model.MetadataLength()):
            if model.Metadata(i).Name() == b"fststyle":
                return json.loads(model.Buffers(model.Metadata(i).Buffer()).DataAsNumpy().tobytes())
        raise ValueError(f"{path} holds no fststyle metadata")
    return coreml_summary(path)["metadata"]
