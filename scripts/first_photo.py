"""Where the first photo's seconds go: ``python -m fststyle.infer`` for one photo, stage by stage.

    python scripts/first_photo.py [--photo P.jpg] [--size 1024] [--onnx M.onnx] [--rounds 3] [--json out.json]

Each stage is timed in a fresh Python (median of ``--rounds``), in the order the command runs it:

- the PyTorch path (the packaged model): the interpreter, importing PyTorch, importing the command's
  module (fststyle.inference.stylize_paths: Hydra, PIL, the Stylizer), Hydra's compose of the infer config, the
  model's load, reading and resizing the photo, the network, writing the JPEG;
- the quick path (``--onnx``: an ONNX model or ``packaged-small``, fststyle.inference.quick): the interpreter, importing onnxruntime,
  numpy and PIL, the session, reading, the network, writing;
- and each whole command, start to written file, for comparison with the sum.

Stop background work first: the figures are only comparable on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Each snippet prints one JSON object: stage -> seconds, measured from the interpreter's start.
TORCH_PATH = """
import json, sys, time
t = {"interpreter": time.perf_counter()}
import torch
t["import torch"] = time.perf_counter()
import fststyle.inference.stylize_paths
t["import the command (Hydra, PIL, Stylizer)"] = time.perf_counter()
from hydra import compose, initialize_config_dir
from fststyle import CONF_DIR
with initialize_config_dir(str(CONF_DIR / "cli"), version_base="1.3"):
    cfg = compose("infer", ["style=starry_night"])
t["compose the config"] = time.perf_counter()
from fststyle import Stylizer
from fststyle.malloc import reuse_freed_memory
reuse_freed_memory()
stylizer = Stylizer.load("packaged")
t["load the model"] = time.perf_counter()
from fststyle.images import load_tensor, save_image, to_pil
photo = load_tensor(sys.argv[1], int(sys.argv[2]))[None]
t["read and resize the photo"] = time.perf_counter()
out = stylizer.run(photo, style="starry_night")
t["the network"] = time.perf_counter()
save_image(to_pil(out[0]), sys.argv[3])
t["write the JPEG"] = time.perf_counter()
print(json.dumps(t))
"""

QUICK_PATH = """
import json, sys, time
t = {"interpreter": time.perf_counter()}
import numpy, onnxruntime, PIL.Image
t["import onnxruntime, numpy, PIL"] = time.perf_counter()
from fststyle.inference.quick import checked, options, quick_model, stylize
chosen = options([f"model={sys.argv[4]}", f"input={sys.argv[1]}", f"size={sys.argv[2]}", f"output={sys.argv[3]}",
                   "style=starry_night"])
session, weights = checked(chosen, quick_model(chosen))
t["options and the session"] = time.perf_counter()
stylize(chosen, session, weights)
t["read, the network, write"] = time.perf_counter()
print(json.dumps(t))
"""


def stages(snippet: str, args: list[str]) -> dict[str, float]:
    """Seconds of each stage (the first: the interpreter's own start, from before the process began);
    what a command spends beyond their sum is its own machinery (Hydra's run folder and logging, the
    option checks, the progress line)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", snippet, *args], capture_output=True, text=True, cwd=REPO)
    if proc.returncode:
        raise SystemExit(f"a stage failed:\n{proc.stderr[-2000:]}")
    marks = json.loads(proc.stdout.strip().splitlines()[-1])
    # perf_counter is one monotonic clock for every process on Linux, so the child's marks and ours compare.
    previous, result = start, {}
    for name, mark in marks.items():
        result[name], previous = mark - previous, mark
    return result


def whole(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, capture_output=True, check=True, cwd=REPO)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", default=str(REPO.parent / "shared" / "assets" / "photos" / "stata.jpg"))
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--onnx", help="an ONNX model for the quick path (python -m fststyle.export model=packaged), or packaged-small (its ONNX copy)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp()) / "out.jpg"
    paths = {"PyTorch path (packaged model)": (TORCH_PATH, [args.photo, str(args.size), str(out)],
                                              ["-m", "fststyle.infer", "style=starry_night", f"input={args.photo}", f"output={out}", f"size={args.size}"])}
    if args.onnx:
        paths["quick path (ONNX model)"] = (QUICK_PATH, [args.photo, str(args.size), str(out), args.onnx],
                                            ["-m", "fststyle.infer", f"model={args.onnx}", "style=starry_night", f"input={args.photo}", f"output={out}",
                                             f"size={args.size}"])
    report = {}
    for name, (snippet, snippet_args, command) in paths.items():
        runs = [stages(snippet, snippet_args) for _ in range(args.rounds)]
        table = {stage: statistics.median(r[stage] for r in runs) for stage in runs[0]}
        table["whole command"] = statistics.median(whole([sys.executable, *command]) for _ in range(args.rounds))
        report[name] = table
        print(f"\n{name}, {Path(args.photo).name} at {args.size} px (median of {args.rounds}):")
        for stage, seconds in table.items():
            print(f"  {stage:<44} {seconds:6.2f} s")
        print(f"  {'sum of the stages':<44} {sum(v for k, v in table.items() if k != 'whole command'):6.2f} s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
