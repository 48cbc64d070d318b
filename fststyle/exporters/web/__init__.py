"""The browser page (``python -m fststyle.export model=... format=web output=DIR``): a static folder
whose page stylizes a photo the user picks, or the webcam, with onnxruntime-web (WebGPU where the
browser has it, else WebAssembly). Nothing leaves the user's machine.

The folder: ``index.html``, ``stylize.js`` (the page's program, fststyle/exporters/web/), ``model.onnx`` (the ONNX
export) and, when ``runtime`` names a local copy of onnxruntime-web, ``ort/`` with the files the page
loads, so that it works offline; otherwise the page loads the pinned public copy (ORT_CDN), every file
of it checked against its hash (ORT_HASHES): the loader by the browser's subresource integrity, and the
two files the loader would fetch by itself (its WebAssembly module and the script that starts it) are
fetched by the page with the same check and handed to the runtime, so a changed file on the CDN fails
to load instead of running.

A model's metadata (its style names) is untrusted input: names must be plain names, and the page is
filled in one pass with every value escaped for where it goes (HTML text, a script's JSON).
"""

from __future__ import annotations

import json
import shutil
from html import escape
from pathlib import Path
from string import Template
from typing import Any

from fststyle.errors import UserError
from fststyle.files import atomic_write
from fststyle.styles import SAFE_NAME

ORT_WEB_VERSION = "1.30.0"
ORT_CDN = f"https://cdn.jsdelivr.net/npm/onnxruntime-web@{ORT_WEB_VERSION}/dist/"
# The bundle with every backend, and the WebAssembly build that it loads (also what WebGPU runs on), with
# the sha384 of each in the npm package onnxruntime-web@ORT_WEB_VERSION (what the CDN serves).
ORT_HASHES = {
    "ort.all.min.js": "sha384-5URwgKAGS31PQX06sHDOIB6bk/2FTNB7z3n4trPAWV9sCv5xwV+qiGRxPkuHv6Gf",
    "ort-wasm-simd-threaded.jsep.mjs": "sha384-oE7XJ3WFQfuTdk0T1EGXViKSjtupvq5xVNx8ODzs7dq8qjGnN5P2tZBPr8XKceJ4",
    "ort-wasm-simd-threaded.jsep.wasm": "sha384-Ueht0ynFKexyaENvQBCXJQmjjdEzUgnesolNNQPAhnDeYvh1YA53nYHw1mrWvaM1",
}
ORT_FILES = tuple(ORT_HASHES)
LOADER, MODULE_SCRIPT, MODULE = ORT_FILES
PAGE = Path(__file__).parent  # the page's files, beside this module
# What a page folder holds (a folder holding only these may be replaced by a new export).
PAGE_FILES = ("index.html", "stylize.js", "automate.js", "model.onnx", "ort")


def runtime_folder(runtime: str | Path) -> Path:
    """The folder holding ORT_FILES: ``runtime`` itself or its ``dist/`` (the npm package's root)."""
    for folder in (Path(runtime), Path(runtime) / "dist"):
        if all((folder / name).is_file() for name in ORT_FILES):
            return folder
    raise UserError(f"web_runtime={runtime} holds no onnxruntime-web files ({', '.join(ORT_FILES)}): give the folder of the npm "
                    f"package onnxruntime-web@{ORT_WEB_VERSION} (npm pack onnxruntime-web@{ORT_WEB_VERSION}) or its dist/")


def script_json(value: Any) -> str:
    """``value`` as JSON that cannot end the <script> element it stands in, nor open a comment."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def write_page(folder: str | Path, styles: list[str], title: str, runtime: str | Path | None = None, automation: bool = False,
               cdn: str = ORT_CDN) -> Path:
    """The page's files in ``folder`` (which holds, or will hold, ``model.onnx``); returns index.html.

    ``automation``: also the hook that tests and benchmarks drive (``?photo=URL&report=URL``, same-origin
    addresses only). Never in what users publish: a crafted link could otherwise make a hosted page
    stylize that site's pictures. ``cdn``: where the page loads onnxruntime-web from without ``runtime``
    (tests serve a copy of their own)."""
    bad = [name for name in styles if not SAFE_NAME.fullmatch(str(name))]
    if bad:
        raise UserError(f"the model's style name {bad[0]!r} is not a plain name (letters, digits, '.', '_', '-'): re-export a model you trust")
    folder = Path(folder)
    source = runtime_folder(runtime) if runtime else None
    if source:
        for name in ORT_FILES:
            with atomic_write(folder / "ort" / name) as tmp:
                shutil.copyfile(source / name, tmp)
    checked = {"script": {"url": cdn + MODULE_SCRIPT, "integrity": ORT_HASHES[MODULE_SCRIPT]},
               "module": {"url": cdn + MODULE, "integrity": ORT_HASHES[MODULE]}}
    config = {"model": "model.onnx", "styles": list(styles), "wasmPaths": "ort/" if source else None, "checkedRuntime": None if source else checked}
    ort_script = f'<script src="ort/{LOADER}"></script>' if source else \
        f'<script src="{escape(cdn)}{LOADER}" integrity="{ORT_HASHES[LOADER]}" crossorigin="anonymous"></script>'
    html = Template((PAGE / "index.html").read_text()).substitute(
        title=escape(title), config=script_json(config), ort_script=ort_script,
        automation='<script src="automate.js"></script>' if automation else "")
    for name in ("stylize.js", *(("automate.js",) if automation else ())):
        with atomic_write(folder / name) as tmp:
            shutil.copyfile(PAGE / name, tmp)
    with atomic_write(folder / "index.html") as tmp:
        tmp.write_text(html)
    return (folder / "index.html").resolve()
