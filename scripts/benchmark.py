"""Inference speed of a style network, per execution path and image size.

    python scripts/benchmark.py [--model PATH] [--device auto] [--sizes 512x512 1920x1080 3840x2160]
                                [--paths eager channels_last bf16 fp16 compile onnx] [--json out.json]

Paths: eager fp32 (the reference implementations' way), channels_last fp32, bf16 / fp16 autocast
(+ channels_last), torch.compile (static shapes, bf16 on GPUs, fp32 on the CPU), and onnxruntime on
the CPU. Weights do not change the speed: without --model a default TransformerNet is timed.
Prints a table and writes JSON with the device, torch version and date.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fststyle.export import export_onnx, load_network  # noqa: E402
from fststyle.net import TransformerNet  # noqa: E402
from fststyle.stylizer import pick_device  # noqa: E402

ALL_PATHS = ["eager", "channels_last", "bf16", "fp16", "compile", "onnx"]


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} threads"


def time_fn(fn, device: torch.device, warmup: int, repeats: int) -> list[float]:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1000)
    return times


def make_runner(path: str, net: TransformerNet, x: torch.Tensor, device: torch.device, onnx_file: Path | None):
    """A no-argument function that stylizes ``x`` one way; None where the path does not apply."""
    if path == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
        feed = {"input": x.cpu().numpy()}
        return lambda: session.run(None, feed)
    half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(path)
    if path == "fp16" and device.type == "cpu":
        return None  # fp16 convolutions on CPUs are slow emulation, never a recommendation
    if path == "compile":
        half = torch.bfloat16 if device.type == "cuda" else None
    channels_last = path != "eager"
    model = net.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    inp = x.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    if path == "compile":
        model = torch.compile(model, dynamic=False)
    ctx = (lambda: torch.autocast(device.type, dtype=half)) if half else contextlib.nullcontext

    def run():
        with torch.inference_mode(), ctx():
            return model(inp)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="an exported .pth or a .ckpt (default: an untrained default network)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sizes", nargs="+", default=["512x512", "1920x1080", "3840x2160"], help="WIDTHxHEIGHT")
    parser.add_argument("--paths", nargs="+", default=ALL_PATHS, choices=ALL_PATHS)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default="benchmark_infer.json")
    args = parser.parse_args()

    device = pick_device(args.device)
    net = load_network(args.model)[0] if args.model else TransformerNet().eval()
    onnx_file = None
    if "onnx" in args.paths:
        onnx_file = Path(tempfile.mkdtemp()) / "model.onnx"
        export_onnx(net, onnx_file, {})
    results = []
    print(f"{'path':<14} {'size':>10} {'median ms':>10} {'min ms':>9} {'MPix/s':>8}")
    for size in args.sizes:
        w, h = map(int, size.lower().split("x"))
        x = torch.rand(args.batch, 3, h, w)
        for path in args.paths:
            runner = make_runner(path, net, x, device, onnx_file)
            if runner is None:
                continue
            times = time_fn(runner, device, args.warmup, args.repeats)
            med = statistics.median(times)
            row = {"path": path, "size": size, "batch": args.batch, "median_ms": round(med, 2), "min_ms": round(min(times), 2),
                   "mpix_per_s": round(args.batch * w * h / med / 1000, 2)}
            results.append(row)
            print(f"{path:<14} {size:>10} {med:>10.1f} {min(times):>9.1f} {row['mpix_per_s']:>8.2f}", flush=True)
    report = {"device": device_name(device), "torch": torch.__version__, "date": datetime.date.today().isoformat(),
              "model": args.model or "default TransformerNet (untrained)", "warmup": args.warmup, "repeats": args.repeats, "results": results}
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json} ({report['device']}, torch {report['torch']}, {report['date']})")


if __name__ == "__main__":
    main()
