"""scripts/benchmark.py runs and reports what it promises (no timing is asserted)."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO
from media import make_video


def benchmark(*args: str) -> dict:
    out = Path(args[args.index("--json") + 1])
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "benchmark.py"), *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["torch"] and report["date"] and report["device"]
    return report


def test_train_compares_the_fast_path_with_eager_fp32(tmp_path, photos_dir, starry_night):
    """Both runs timed over the steps asked (their time is a real part of the command's, never zero),
    their final losses close (bf16 against fp32 after the same 2 steps)."""
    start = time.perf_counter()
    report = benchmark("train", "--steps", "2", "--warmup", "1", "--compare", "--json", str(tmp_path / "t.json"),
                       "trainer=cpu", "logger=none", "data=folder", f"data.root={photos_dir}", "data.image_size=32",
                       "data.batch_size=2", "data.num_workers=0", "data.sample_size=32", f"style.image={starry_night}",
                       "style.name=x", "style.size=64", "trainer.precision=bf16-mixed")
    fast, eager = report["runs"]
    assert (fast["precision"], eager["precision"]) == ("bf16-mixed", "32-true") and fast["steps"] == eager["steps"] == 2
    assert {"init=packaged", "loss.temporal_weight=2e6"} <= set(fast["preset"])  # as the train command runs: the packaged start's grid term too
    wall = time.perf_counter() - start
    for run in (fast, eager):
        assert run["global_batch"] == 2 and run["peak_memory_mb"] > 100  # the loss network alone is ~80 MB
        assert run["final_content"] > 0 and run["final_style"] > 0
    # A VGG19 forward and backward takes milliseconds even at 32 px; all timed steps fit in the command.
    assert min(fast["ms_per_step"], eager["ms_per_step"]) > 5 and (fast["ms_per_step"] + eager["ms_per_step"]) * 2 / 1000 < wall
    for key in ("content", "style"):
        assert fast[f"final_{key}"] == pytest.approx(eager[f"final_{key}"], rel=0.05)


def test_infer_times_every_path_asked(tmp_path):
    report = benchmark("infer", "--sizes", "40x24", "--paths", "eager", "bf16", "onnx", "--warmup", "0", "--repeats", "1",
                       "--json", str(tmp_path / "i.json"))
    assert [(r["path"], r["size"]) for r in report["results"]] == [("eager", "40x24"), ("bf16", "40x24"), ("onnx", "40x24")]
    for r in report["results"]:  # one timed run: its median is its minimum; megapixels/s follow from the time
        assert r["median_ms"] == r["min_ms"] and r["mpix_per_s"] == pytest.approx(40 * 24 / r["median_ms"] / 1000, abs=0.006)


def test_anchor_times_its_loop_end_to_end_and_the_step_alone(tmp_path, photos_dir):
    """pytorch/examples' loop, written out: both rates real (each step reads its losses back, so the
    command's wall time holds every timed step) and the step alone no slower than with the photos."""
    start = time.perf_counter()
    report = benchmark("anchor", "--photos", str(photos_dir), "--batch", "2", "--size", "32", "--steps", "3", "--warmup", "1",
                       "--json", str(tmp_path / "a.json"))
    wall = time.perf_counter() - start
    assert (report["batch"], report["image_size"], report["steps"]) == (2, 32, 3)
    end_to_end, alone = report["images_per_s_end_to_end"], report["images_per_s_step_alone"]
    assert 0 < end_to_end and 0 < alone and 2 * 3 / end_to_end + 2 * 3 / alone < wall


def test_infer_profiles_the_first_path_and_times_the_bf16_variants(tmp_path):
    report = benchmark("infer", "--sizes", "40x24", "--paths", "bf16-nchw", "bf16-weights", "--warmup", "0", "--repeats", "1",
                       "--profile", "--json", str(tmp_path / "i.json"))
    assert [r["path"] for r in report["results"]] == ["bf16-nchw", "bf16-weights"]
    assert list(report["profiles"]) == ["bf16-nchw 40x24"] and "aten::" in report["profiles"]["bf16-nchw 40x24"]


def test_video_reports_frames_per_second_per_size_and_precision(tmp_path):
    # 6 frames with sound: bf16 without the CPU's native support runs about 5 frames/s even at 48 px.
    clip = make_video(tmp_path / "clip.mp4", frames=6, size=(176, 144))
    report = benchmark("video", "--video", str(clip), "--sizes", "48", "--precisions", "fp32", "bf16",
                       "--json", str(tmp_path / "v.json"))
    rows = [(r["precision"], r["size"], r["frames"]) for r in report["results"]]
    assert rows == [("float32", "48x40", 6), ("bfloat16", "48x40", 6)]  # 176x144 at long side 48: 39.3 -> the nearest even 40
    for r in report["results"]:  # the network is part of the time, never all of it (decoding and encoding too)
        assert r["frames_per_s"] > 0 and 0 < r["network_share"] < 1
    # The packaged model, plain and stabilized, in one of its styles; without one, one line before any work.
    report = benchmark("video", "--video", str(clip), "--model", "packaged", "--style", "udnie", "--sizes", "48", "--precisions", "fp32",
                       "--stabilize", "0", "0.45", "--json", str(tmp_path / "p.json"))
    assert [(r["stabilize"], r["frames"]) for r in report["results"]] == [(0.0, 6), (0.45, 6)] and report["style"] == "udnie"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "benchmark.py"), "video", "--video", str(clip), "--model", "packaged",
                           "--json", str(tmp_path / "none.json")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1].startswith("error: this model holds 6 styles")
    assert not (tmp_path / "none.json").exists()


def test_first_photo_times_each_stage_of_both_paths(tmp_path, photos_dir):
    """scripts/first_photo.py: each stage of the PyTorch path and of the quick path (packaged-small's ONNX
    copy, as the command finds it) timed in a fresh Python, and each whole command."""
    out = tmp_path / "first.json"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "first_photo.py"), "--photo", str(photos_dir / "dog.jpg"), "--size", "64",
                           "--onnx", "packaged-small", "--rounds", "1", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(out.read_text())
    torch_path, quick_path = report["PyTorch path (packaged model)"], report["quick path (ONNX model)"]
    assert list(torch_path)[1:3] == ["import torch", "import the command (Hydra, PIL, Stylizer)"] and "the network" in torch_path
    assert list(quick_path)[1:] == ["import onnxruntime, numpy, PIL", "options and the session", "read, the network, write", "whole command"]
    for table in (torch_path, quick_path):
        assert all(seconds > 0 for seconds in table.values())
        assert table["whole command"] > sum(v for k, v in table.items() if k not in ("whole command", "interpreter")) * 0.5
