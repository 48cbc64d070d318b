"""The browser page (``python -m fststyle.export model=... format=web output=DIR``): a static folder
whose page stylizes a photo the user picks, or the webcam, with onnxruntime-web (WebGPU where the
browser has it, else WebAssembly). Nothing leaves the user's machine.

The folder: ``index.html``, ``stylize.js`` (the page's program, fststyle/web/), ``model.onnx`` (the ONNX
export) and, when ``runtime`` names a local copy of onnxruntime-web, ``ort/`` with the files the page
loads, so that it works offline; otherwise the page loads the pinned public copy (ORT_CDN).
"""

from __future__ import annotations

import json
import shutil
from html import escape
from pathlib import Path
from typing import Any

from fststyle.errors import UserError
from fststyle.files import atomic_write

ORT_WEB_VERSION = "1.30.0"
ORT_CDN = f"https://cdn.jsdelivr.net/npm/onnxruntime-web@{ORT_WEB_VERSION}/dist/"
# The bundle with every backend, and the WebAssembly build that it loads (also what WebGPU runs on).
ORT_FILES = ("ort.all.min.js", "ort-wasm-simd-threaded.jsep.mjs", "ort-wasm-simd-threaded.jsep.wasm")
PAGE = Path(__file__).with_name("web")


def runtime_folder(runtime: str | Path) -> Path:
    """The folder holding ORT_FILES: ``runtime`` itself or its ``dist/`` (the npm package's root)."""
    for folder in (Path(runtime), Path(runtime) / "dist"):
        if all((folder / name).is_file() for name in ORT_FILES):
            return folder
    raise UserError(f"web_runtime={runtime} holds no onnxruntime-web files ({', '.join(ORT_FILES)}): give the folder of the npm "
                    f"package onnxruntime-web@{ORT_WEB_VERSION} (npm pack onnxruntime-web@{ORT_WEB_VERSION}) or its dist/")


def write_page(folder: str | Path, styles: list[str], title: str, runtime: str | Path | None = None) -> Path:
    """The page's files in ``folder`` (which holds, or will hold, ``model.onnx``); returns index.html."""
    folder = Path(folder)
    source = runtime_folder(runtime) if runtime else None
    if source:
        for name in ORT_FILES:
            with atomic_write(folder / "ort" / name) as tmp:
                shutil.copyfile(source / name, tmp)
    config: dict[str, Any] = {"model": "model.onnx", "styles": styles, "wasmPaths": "ort/" if source else None}
    html = (PAGE / "index.html").read_text()
    html = html.replace("{{TITLE}}", escape(title)).replace("{{CONFIG}}", json.dumps(config).replace("</", "<\\/"))
    html = html.replace("{{ORT_SCRIPT}}", "ort/ort.all.min.js" if source else ORT_CDN + "ort.all.min.js")
    with atomic_write(folder / "stylize.js") as tmp:
        shutil.copyfile(PAGE / "stylize.js", tmp)
    with atomic_write(folder / "index.html") as tmp:
        tmp.write_text(html)
    return (folder / "index.html").resolve()
