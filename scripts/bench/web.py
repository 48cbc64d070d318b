"""The browser page's speed (`scripts/benchmark.py web`): headless Chromium stylizes a photo at each
size through the exported page (onnxruntime-web, WebAssembly without a GPU), the fastest of a few runs.
Served as a plain static server serves it (no cross-origin isolation), so WebAssembly runs one thread."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from PIL import Image

from bench.browser import open_page
from fststyle.exporters.formats import export_onnx
from fststyle.images import open_rgb
from fststyle.blend import style_names
from fststyle.model_file import load_network
from fststyle.net import TransformerNet
from fststyle.exporters.web import write_page


def run(args: argparse.Namespace) -> dict:
    net, metadata = load_network(args.model) if args.model else (TransformerNet().eval(), {})
    results = []
    print(f"{'size':>10} {'ms':>9} backend")
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp)
        write_page(site / "page", style_names(metadata), "benchmark", args.runtime)
        export_onnx(net, site / "page" / "model.onnx", metadata)
        photo = open_rgb(args.photo)
        for size in args.sizes:
            w, h = map(int, size.lower().split("x"))
            photo.resize((w, h), Image.BICUBIC).save(site / f"{size}.png")
            headers, _ = open_page(site, f"page/index.html?photo=../{size}.png&repeat={args.repeats}&report={{report}}", timeout=600)
            row = {"size": size, "ms": float(headers["X-Milliseconds"]), "backend": headers["X-Backend"]}
            results.append(row)
            print(f"{size:>10} {row['ms']:>9.0f} {row['backend']}", flush=True)
    return {"device": "headless Chromium, onnxruntime-web " + Path(args.runtime).name, "model": args.model or "default TransformerNet (untrained)",
            "repeats": args.repeats, "results": results}
