"""Peak memory and time of stylizing one image, untiled and under a memory budget, per image size.

    python scripts/memory_curve.py --model M.pth --photo P.jpg [--sizes 1024x576 1920x1080 3840x2160]
        [--budgets none 1.5GB] [--malloc reuse|default] [--out benchmarks/memory]

Each measurement runs in a new process (so that its peak resident memory is its own): it loads the
model, resizes the photo to the size, stylizes it once to warm up at a small size, then times
`Stylizer.run` on the full image. `none` is the untiled pass; a size is `max_memory=`, which tiles when
the pass would not fit. `--malloc reuse` (the default) keeps freed memory for reuse as the fststyle
commands do (`fststyle.malloc`); `default` leaves glibc's settings. Prints the table and writes memory.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

CHILD = """
import sys, time, torch
from fststyle.images import load_tensor
from fststyle.malloc import reuse_freed_memory
from fststyle.inference.stylizer import Stylizer
model, photo, w, h, budget, malloc = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
if malloc == "reuse":
    reuse_freed_memory()
image = torch.nn.functional.interpolate(load_tensor(photo)[None], size=(h, w), mode="bicubic").clamp(0, 1)
stylizer = Stylizer.load(model, device="cpu", precision="fp32", max_memory=budget)
stylizer.run(image[..., :64, :64])
plan = stylizer.memory_plan(1, h, w)
start = time.perf_counter()
stylizer.run(image)
print(time.perf_counter() - start, plan[0].replace(' ', '_'), plan[1] or 0)
"""


def measure(model: str, photo: str, w: int, h: int, budget: str, malloc: str) -> dict:
    child = subprocess.Popen([sys.executable, "-c", CHILD, model, photo, str(w), str(h), budget, malloc],
                             stdout=subprocess.PIPE, text=True)
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise SystemExit(f"{w}x{h} max_memory={budget} failed")
    seconds, how, size = out.split()
    return {"size": f"{w}x{h}", "megapixels": round(w * h / 1e6, 2), "max_memory": budget, "how": how.replace("_", " "), "rows_or_px": int(size) or None,
            "seconds": round(float(seconds), 2), "peak_gb": round(usage.ru_maxrss * 1024 / 2**30, 2)}  # Linux: ru_maxrss in KB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--photo", required=True)
    parser.add_argument("--sizes", nargs="+", default=["1024x576", "1920x1080", "2560x1440", "3840x2160"])
    parser.add_argument("--budgets", nargs="+", default=["none", "1.5GB"])
    parser.add_argument("--malloc", choices=["reuse", "default"], default="reuse")
    parser.add_argument("--out", default="benchmarks/memory")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    print(f"{'size':>10} {'max_memory':>10} {'how':>16} {'seconds':>8} {'peak GB':>8}")
    for size in args.sizes:
        w, h = map(int, size.lower().split("x"))
        for budget in args.budgets:
            row = measure(args.model, args.photo, w, h, budget, args.malloc)
            rows.append(row)
            how = f"{row['how']} {row['rows_or_px'] or ''}".strip()
            print(f"{row['size']:>10} {budget:>10} {how:>16} {row['seconds']:>8.2f} {row['peak_gb']:>8.2f}", flush=True)
    report = {"device": f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores", "torch": torch.__version__,
              "date": datetime.date.today().isoformat(), "model": args.model, "malloc": args.malloc, "rows": rows}
    (out / "memory.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {out / 'memory.json'}")


if __name__ == "__main__":
    main()
