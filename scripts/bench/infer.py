"""Inference per execution path and image size (`scripts/benchmark.py infer`)."""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import tempfile
from pathlib import Path

import torch

from bench.common import device_name, time_fn
from fststyle.exporters.formats import calibration_photos, export_onnx, quantize_onnx
from fststyle.model_file import load_network
from fststyle.net import TransformerNet
from fststyle.inference.stylizer import Stylizer, pick_device

DEFAULT_PATHS = ["eager", "channels_last", "bf16", "fp16", "default", "compile", "onnx", "onnx-int8"]
# Variants of the bf16 path, to find what limits it on a GPU: autocast without channels_last, and the
# network's weights themselves in bf16 (no casts at all), channels first.
LAYOUT_PATHS = ["bf16-nchw", "bf16-weights"]
# The phone formats (fststyle.exporters.mobile), run here by their own Linux runtimes on this CPU; each is exported
# for each size (they take a fixed size). Not by default: exporting takes a minute or more per size.
MOBILE_PATHS = ["executorch", "executorch-int8", "tflite"]
ALL_PATHS = DEFAULT_PATHS + LAYOUT_PATHS + MOBILE_PATHS


def mobile_runner(path: str, net: TransformerNet, x: torch.Tensor, folder: Path) -> tuple:
    """A no-argument function running ``x`` through ``path``'s file of x's size, and the file's size in bytes."""
    from fststyle.exporters.mobile import MOBILE_FORMATS, export_executorch, export_tflite, fit_photo
    from fststyle.exporters.formats import calibration_photos

    h, w = x.shape[-2:]
    out = folder / f"model_{w}x{h}{MOBILE_FORMATS[path]}"
    if path == "tflite":
        export_tflite(net, out, {}, w, h)
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(out))
        interpreter.allocate_tensors()
        index, feed = interpreter.get_input_details()[0]["index"], x.numpy()

        def run():
            interpreter.set_tensor(index, feed)
            interpreter.invoke()

        return run, out.stat().st_size
    calibration = [fit_photo(p, w, h) for p in calibration_photos(None)] if path == "executorch-int8" else None
    export_executorch(net, out, {}, w, h, calibration)
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(str(out)).load_method("forward")
    return (lambda: method.execute([x])), out.stat().st_size


def make_runner(path: str, net: TransformerNet, x: torch.Tensor, device: torch.device, onnx_files: dict[str, Path]):
    """A no-argument function that stylizes ``x`` one way; None where the path does not apply."""
    if path in onnx_files:
        import onnxruntime as ort

        session = ort.InferenceSession(str(onnx_files[path]), providers=["CPUExecutionProvider"])
        feed = {"input": x.cpu().numpy()}
        return lambda: session.run(None, feed)
    half = {"bf16": torch.bfloat16, "bf16-nchw": torch.bfloat16, "fp16": torch.float16}.get(path)
    if path == "fp16" and device.type == "cpu":
        return None  # fp16 convolutions on CPUs are slow emulation, never a recommendation
    if path in ("default", "compile"):  # what `fststyle.infer` runs (on the CPU: channels last in the precision's
        # own weights), and with compile=true (dynamic shapes); the default precision
        stylizer = Stylizer(net, device=device, compile=path == "compile")
        inp = x.to(device)
        return lambda: stylizer.run(inp)
    layout = torch.contiguous_format if path in ("eager", "bf16-nchw", "bf16-weights") else torch.channels_last
    model, inp = net.to(device, memory_format=layout), x.to(device, memory_format=layout)
    if path == "bf16-weights":  # a bf16 copy: the other paths keep timing the float32 network
        model, inp = copy.deepcopy(model).to(torch.bfloat16), inp.to(torch.bfloat16)
    ctx = (lambda: torch.autocast(device.type, dtype=half)) if half else contextlib.nullcontext

    def run():
        with torch.inference_mode(), ctx():
            return model(inp)

    return run


def profile_table(runner, device: torch.device, runs: int = 3) -> str:
    """The operators that took the most time over ``runs`` calls (on the GPU when there is one)."""
    from torch.profiler import ProfilerActivity, profile

    on_gpu = device.type == "cuda"
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])) as prof:
        for _ in range(runs):
            runner()
        if on_gpu:
            torch.cuda.synchronize()
    table = prof.key_averages().table(sort_by="self_cuda_time_total" if on_gpu else "self_cpu_time_total", row_limit=20)
    print(table, flush=True)
    return table


def run(args: argparse.Namespace) -> dict:
    device = pick_device(args.device)
    net = load_network(args.model)[0] if args.model else TransformerNet().eval()
    onnx_files, folder = {}, Path(tempfile.mkdtemp())
    if "onnx" in args.paths:
        onnx_files["onnx"] = export_onnx(net, folder / "model.onnx", {})
    if "onnx-int8" in args.paths:  # as `fststyle.export format=onnx-int8` writes it (calibrated on the sample photos)
        onnx_files["onnx-int8"] = quantize_onnx(net, folder / "model.int8.onnx", {}, calibration_photos(None))
    results, profiles = [], {}
    print(f"{'path':<16} {'size':>10} {'median ms':>10} {'min ms':>9} {'MPix/s':>8} {'file MB':>8}")
    for size in args.sizes:
        w, h = map(int, size.lower().split("x"))
        x = torch.rand(args.batch, 3, h, w)
        for path in args.paths:
            file_bytes = onnx_files[path].stat().st_size if path in onnx_files else None
            if path in MOBILE_PATHS:
                runner, file_bytes = mobile_runner(path, net, x[:1], folder)
            else:
                runner = make_runner(path, net, x, device, onnx_files)
            if runner is None:
                continue
            times = time_fn(runner, device, args.warmup, args.repeats)
            if args.profile and (path, size) == (args.paths[0], args.sizes[0]):
                profiles[f"{path} {size}"] = profile_table(runner, device)
            med = statistics.median(times)
            row = {"path": path, "size": size, "batch": args.batch, "median_ms": round(med, 2), "min_ms": round(min(times), 2),
                   "mpix_per_s": round(args.batch * w * h / med / 1000, 2), "file_mb": round(file_bytes / 2**20, 2) if file_bytes else None}
            results.append(row)
            shown = f"{row['file_mb']:>8.2f}" if file_bytes else f"{'':>8}"
            print(f"{path:<16} {size:>10} {med:>10.1f} {min(times):>9.1f} {row['mpix_per_s']:>8.2f} {shown}", flush=True)
    return {"device": device_name(device), "model": args.model or "default TransformerNet (untrained)", "warmup": args.warmup,
            "repeats": args.repeats, "results": results,
            **({"profiles": profiles} if profiles else {})}
