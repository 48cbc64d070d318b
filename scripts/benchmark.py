"""Speed of fststyle: training throughput end to end, and inference per execution path.

    python scripts/benchmark.py train [--steps 50] [--warmup 10] [--synthetic] [--compare] [--profile N] [KEY=VALUE ...]
    python scripts/benchmark.py data [--batches 60] [KEY=VALUE ...]
    python scripts/benchmark.py anchor --photos DIR [--batch 4] [--size 256] [--steps 50]
    python scripts/benchmark.py infer [--model PATH] [--sizes 512x512 1920x1080 3840x2160] [--paths ...]
    python scripts/benchmark.py video --video CLIP [--model PATH] [--sizes 640 native] [--precisions auto bf16] [--stabilize 0 0.8]
    python scripts/benchmark.py web --photo P.jpg [--model PATH] [--sizes 512x512 1024x1024] [--runtime DIR]

train: builds exactly what `python -m fststyle.train KEY=VALUE ...` builds (the GPU fast path or the
CPU preset included) and times `--steps` training steps after `--warmup` ones: images/s, ms per step,
peak memory, and the final content and style losses: those of the trained network on the held-out
photos, run uncompiled in fp32 on the fixed evaluation network of `fststyle.eval`, so that runs with
different precisions compare fairly. `--synthetic` feeds random tensors instead of decoding photos;
`--compare` repeats the run with the fast path off (fp32, no channels_last, no compile) on the same
data and reports the loss differences.

data: the training data pipeline alone (images/s), reading the photos and, when `fststyle.prepare`
has written its file for the folder, from that file; then torchvision's batched `decode_jpeg` (nvJPEG
on a GPU) with resize and crop on the device, the alternative to the prepared file.

anchor: Johnson et al.'s training loop as pytorch/examples' fast_neural_style runs it (scripts/bench/
anchor.py), images/s end to end and for the step alone: the figure fststyle's training is compared with.

infer: eager fp32 (the reference implementations' way), channels_last fp32, bf16 / fp16 autocast
(+ channels_last), `fststyle.infer` as it runs by default (in infer's default precision: fp32 on CUDA
GPUs, bf16 on CPUs with native bf16, fp32 on other CPUs; on the CPU channels last in that precision's
own weights) and with compile=true (torch.compile with dynamic shapes), and onnxruntime on the CPU, float32 and int8
(`fststyle.export format=onnx-int8`); when named in --paths, the phone formats (ExecuTorch, its int8
variant, LiteRT) exported for each size and run by their own runtimes, with their file sizes. Weights
do not change the speed: without --model a default TransformerNet is timed.

video: a clip through the path `fststyle.infer` takes (decoding, the network in batches, encoding with
the audio copied): frames/s end to end and the share of the time spent in the network, per output
size (`native`: the clip's own), precision and `--stabilize` strength (0: off; the stabilizer's optical
flow runs on the CPU, so its cost is the ratio of the frames/s with and without).

web: the page of `fststyle.export format=web` in headless Chromium (onnxruntime-web), ms per photo per
size; needs Chromium and onnxruntime-web (scripts/get_browser_test_deps.sh).
Prints a table and writes JSON with the device, torch version and date. `--malloc default` (before
the subcommand) measures with glibc's own malloc settings instead of the commands' (`fststyle.malloc`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # fststyle without installing it
from bench import anchor, data, infer, train, video, web  # noqa: E402  (scripts/bench/: one module per benchmark)
from fststyle.malloc import reuse_freed_memory  # noqa: E402
from fststyle.exporters.web import ORT_WEB_VERSION  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--malloc", choices=["reuse", "default"], default="reuse",
                        help="reuse: keep freed memory for the next tensor, as the fststyle commands do (fststyle.malloc); "
                             "default: glibc's own settings, to measure what that is worth")
    sub = parser.add_subparsers(dest="command", required=True)
    train_args = sub.add_parser("train", help="training throughput, end to end")
    train_args.add_argument("--steps", type=int, default=50)
    train_args.add_argument("--warmup", type=int, default=10, help="untimed steps first (compilation, cuDNN autotuning)")
    train_args.add_argument("--synthetic", action="store_true", help="random tensors instead of decoded photos")
    train_args.add_argument("--compare", action="store_true", help="also run with the fast path off and compare the losses")
    train_args.add_argument("--profile", type=int, default=0, metavar="N", help="profile N steps just before the timed ones and print the top operators")
    train_args.add_argument("--json", default="benchmark_train.json")
    train_args.add_argument("overrides", nargs="*", help="Hydra overrides, as for python -m fststyle.train")
    data_args = sub.add_parser("data", help="the training data pipeline alone: photos vs the prepared file")
    data_args.add_argument("--batches", type=int, default=60)
    data_args.add_argument("--warmup", type=int, default=5)
    data_args.add_argument("--device", default="auto", help="where decode_jpeg runs (auto: the GPU if there is one)")
    data_args.add_argument("--json", default="benchmark_data.json")
    data_args.add_argument("overrides", nargs="*", help="Hydra overrides, as for python -m fststyle.train")
    anchor_args = sub.add_parser("anchor", help="the pytorch/examples training loop's images/s, for comparison")
    anchor_args.add_argument("--photos", required=True, help="a folder of photos (JPEG/PNG)")
    anchor_args.add_argument("--batch", type=int, default=4)
    anchor_args.add_argument("--size", type=int, default=256)
    anchor_args.add_argument("--steps", type=int, default=50)
    anchor_args.add_argument("--warmup", type=int, default=10)
    anchor_args.add_argument("--device", default="auto")
    anchor_args.add_argument("--json", default="benchmark_anchor.json")
    infer_args = sub.add_parser("infer", help="inference per execution path and image size")
    infer_args.add_argument("--model", help="an exported .pth or a .ckpt (default: an untrained default network)")
    infer_args.add_argument("--device", default="auto")
    infer_args.add_argument("--sizes", nargs="+", default=["512x512", "1920x1080", "3840x2160"], help="WIDTHxHEIGHT")
    infer_args.add_argument("--paths", nargs="+", default=infer.DEFAULT_PATHS, choices=infer.ALL_PATHS,
                            help="the phone formats (executorch, executorch-int8, tflite) only when named: each is exported per size")
    infer_args.add_argument("--batch", type=int, default=1)
    infer_args.add_argument("--warmup", type=int, default=2)
    infer_args.add_argument("--repeats", type=int, default=5)
    infer_args.add_argument("--profile", action="store_true", help="profile the first path at the first size and print the top operators")
    infer_args.add_argument("--json", default="benchmark_infer.json")
    video_args = sub.add_parser("video", help="video frames/s, end to end, as fststyle.infer runs it")
    video_args.add_argument("--video", required=True, help="a video file (e.g. ../shared/assets/videos/bigbuckbunny.mp4)")
    video_args.add_argument("--model", help="an exported .pth, a .ckpt or packaged (default: an untrained default network)")
    video_args.add_argument("--style", help="the style of a model that holds several (the packaged model: e.g. starry_night)")
    video_args.add_argument("--device", default="auto")
    video_args.add_argument("--sizes", nargs="+", type=long_side, default=[640, None], help="output long sides in px, or native")
    video_args.add_argument("--precisions", nargs="+", default=["auto"], help="auto, fp32, bf16, fp16 (as fststyle.infer precision=)")
    video_args.add_argument("--stabilize", nargs="+", type=float, default=[0.0], help="stabilize strengths (0: off), as fststyle.infer stabilize=")
    video_args.add_argument("--batch-size", type=int, default=4, help="frames per network call, as fststyle.infer batch_size=")
    video_args.add_argument("--json", default="benchmark_video.json")
    web_args = sub.add_parser("web", help="the browser page's speed in headless Chromium")
    web_args.add_argument("--photo", required=True, help="a photo, resized to each size")
    web_args.add_argument("--model", help="an exported .pth or a .ckpt (default: an untrained default network)")
    web_args.add_argument("--sizes", nargs="+", default=["512x512", "1024x1024"], help="WIDTHxHEIGHT")
    web_args.add_argument("--repeats", type=int, default=3)
    web_args.add_argument("--runtime", default=f".cache/onnxruntime-web-{ORT_WEB_VERSION}", help="onnxruntime-web's folder")
    web_args.add_argument("--json", default="benchmark_web.json")
    args = parser.parse_args()
    malloc = "reuse" if args.malloc == "reuse" and reuse_freed_memory() else "default"

    report = {"train": train.run, "anchor": anchor.run, "data": data.run, "infer": infer.run, "video": video.run, "web": web.run}[args.command](args)
    report.update(malloc=malloc, torch=torch.__version__, date=datetime.date.today().isoformat(), command=" ".join(sys.argv[1:]))
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json} ({report['device']}, torch {report['torch']}, {report['date']}, malloc {malloc})")


def long_side(text: str) -> int | None:
    return None if text == "native" else int(text)


if __name__ == "__main__":
    main()
