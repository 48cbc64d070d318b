"""Video through `fststyle.infer` (`scripts/benchmark.py video`): frames/s end to end (decoding, the
network, stabilization when asked, encoding, the audio copied) and the network's share of that time."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from bench.common import device_name
from fststyle.model_file import load_network
from fststyle.net import TransformerNet
from fststyle.inference.stabilize import Stabilizer
from fststyle.inference.stylizer import Stylizer, pick_device
from fststyle.inference.video import output_size, stylize_video


def run(args: argparse.Namespace) -> dict:
    device = pick_device(args.device)
    net, metadata = load_network(args.model) if args.model else (TransformerNet().eval(), {})
    results = []
    print(f"{'precision':<10} {'size':>9} {'stabilize':>10} {'frames':>7} {'frames/s':>9} {'network share':>14}")
    for precision in args.precisions:
        stylizer = Stylizer(net, metadata, device=device, precision=precision)
        try:
            stylizer.check_options(style=args.style)  # a model of several styles needs one: say so before any work
        except ValueError as err:
            raise SystemExit(f"error: {err} (--style)") from None
        for long_side, strength in ((s, k) for s in args.sizes for k in args.stabilize):
            network_s = 0.0
            stabilizer = Stabilizer(strength)

            def stylize(batch: torch.Tensor) -> torch.Tensor:
                nonlocal network_s
                start = time.perf_counter()
                out = stylizer.run(batch, style=args.style).cpu()  # .cpu() waits for the device, so the time is the network's
                network_s += time.perf_counter() - start
                return stabilizer.run(batch, out)

            with tempfile.TemporaryDirectory() as tmp:
                # One untimed pass over the first frames: thread pools, cuDNN autotuning, codec start-up.
                stylize(torch.rand(args.batch_size, 3, 64, 64))
                network_s = 0.0
                start = time.perf_counter()
                frames = stylize_video(args.video, Path(tmp) / "out.mp4", stylize, long_side, args.batch_size)
                total = time.perf_counter() - start
            size = "x".join(map(str, output_size(*_video_size(args.video), long_side)))
            row = {"precision": stylizer.dtype.__repr__().removeprefix("torch."), "long_side": long_side, "size": size,
                   "stabilize": strength, "frames": frames, "frames_per_s": round(frames / total, 2), "network_share": round(network_s / total, 3)}
            results.append(row)
            print(f"{row['precision']:<10} {size:>9} {strength:>10g} {frames:>7} {row['frames_per_s']:>9.2f} {row['network_share']:>14.0%}", flush=True)
    return {"device": device_name(device), "video": str(args.video), "model": args.model or "default TransformerNet (untrained)", "style": args.style,
            "batch_size": args.batch_size, "results": results}


def _video_size(path: str | Path) -> tuple[int, int]:
    import av

    with av.open(str(path)) as container:
        ctx = container.streams.video[0].codec_context
        return ctx.width, ctx.height
