"""The flicker metric (warping error with the input's optical flow) and its reports in eval and infer."""

import importlib.util
import json
import re
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, SHARED, run_cli
from media import panning

from fststyle.evaluation.flicker import FlickerMeter, warping_errors

VIDEO = SHARED / "videos" / "carphone.mp4"  # 176x144, 120 frames


def test_a_stable_stylization_has_the_floor_and_a_flickering_one_more(photos_dir):
    frames = panning(photos_dir / "stata.jpg")
    steady = 255 - frames  # a "style" that follows the content exactly: moves with it
    rng = np.random.default_rng(0)
    noisy = np.clip(steady + rng.normal(0, 12, frames.shape), 0, 255).astype(np.uint8)  # new noise every frame
    meters = {name: FlickerMeter() for name in ("steady", "noisy")}
    meters["steady"].update(frames, steady)
    meters["noisy"].update(frames, noisy)
    steady_r, noisy_r = meters["steady"].result(), meters["noisy"].result()
    assert steady_r["frame_pairs"] == 4 and steady_r["flicker_input"] < 3  # the flow explains a pan
    assert steady_r["flicker"] == pytest.approx(steady_r["flicker_input"], rel=0.02)  # inversion keeps |differences|
    assert noisy_r["flicker"] > steady_r["flicker"] + 8 and noisy_r["flicker_ratio"] > 3
    # The second, independent flow (Farneback) agrees on both.
    assert steady_r["flicker_input_farneback"] < 3 and steady_r["flicker_ratio_farneback"] == pytest.approx(1, abs=0.03)
    assert noisy_r["flicker_ratio_farneback"] > 3
    # The consistent floor (each stylized frame carried on by the other flow): a stylization that moves
    # with the content reads it; one with new noise every frame reads far more.
    assert steady_r["flicker_floor"] > 0 and steady_r["flicker_floor_ratio"] == pytest.approx(1, abs=0.25)
    assert steady_r["flicker_floor_ratio_farneback"] == pytest.approx(1, abs=0.25) and noisy_r["flicker_floor_ratio"] > 3
    # The meter's figure against one computed by hand: the pan moves exactly 3 px a frame, so the previous
    # noisy frame moved 3 px lies on the current one; the mean absolute difference there is the error.
    by_hand = np.abs(noisy[1, 4:-4, 4:-7].astype(np.float32) - noisy[0, 4:-4, 7:-4]).mean()
    assert warping_errors(frames[0], frames[1], [(noisy[0], noisy[1])])[0] == pytest.approx(by_hand, rel=0.05)


def test_eval_reports_the_flicker_of_a_video(model_path, tmp_path):
    """With stabilize: the stabilized video's figures (against the input, the floor and the plain model's
    frames), each measured again here from the files, and the plain model's from its own frames."""
    out = tmp_path / "eval"
    proc = run_cli("fststyle.eval", f"model={model_path}", f"content={VIDEO}", "size=96", "video_metric_every=40", "device=cpu",
                   "stabilize=true", f"hydra.run.dir={out}")
    record = json.loads((out / "metrics.json").read_text())["videos"][0]
    assert record["frames"] == 120 and record["frame_pairs"] >= 110 and record["style"] > 0
    # The figures again from the files: the input's exactly, the stylized video's through its lossy encoding.
    written = out / "videos" / "carphone.starry_night.mp4"
    frames = decoded(VIDEO, (96, 78))
    meter = FlickerMeter()
    meter.update(frames, decoded(written, (96, 78)))
    again = meter.result()
    assert record["frame_pairs"] == again["frame_pairs"] and record["flicker_input"] == pytest.approx(again["flicker_input"], abs=0.006)
    # The encoding (H.264, crf 18) adds flicker and texture of its own, relatively more to a steadied video.
    assert record["flicker"] == pytest.approx(again["flicker"], rel=0.2)
    assert record["flicker"] < again["flicker"]
    assert record["flicker_floor"] == pytest.approx(again["flicker_floor"], rel=0.2)
    # The plain model on the same frames, here: what eval compared the stabilized video with.
    from fststyle import Stylizer
    from fststyle.evaluation.flicker import frames_of

    stylizer = Stylizer.load(model_path, device="cpu")
    plain = FlickerMeter()
    plain.update(frames, frames_of(stylizer.run(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255)))
    assert record["plain"]["flicker"] == pytest.approx(plain.result()["flicker"], rel=0.01)
    assert record["flicker_vs_plain"] == pytest.approx(record["flicker"] / plain.result()["flicker"], rel=0.01)
    assert record["flicker_vs_plain"] < 0.9
    assert "carphone.mp4" in proc.stdout and "x plain" in proc.stdout


def decoded(path, size: tuple[int, int]) -> np.ndarray:
    """Every frame of a video at ``size`` (w, h), as (N, H, W, 3) uint8."""
    import av

    with av.open(str(path)) as container:
        return np.stack([f.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray() for f in container.decode(video=0)])


def test_infer_prints_the_flicker_when_asked(model_path, tmp_path):
    """The printed figures are those of the video written and of its input, measured here again from
    the files (the input exactly; the output through its lossy encoding, so within 10%)."""
    out = tmp_path / "out.mp4"
    proc = run_cli("fststyle.infer", f"model={model_path}", f"input={VIDEO}", f"output={out}", "size=64", "flicker=true")
    line = next(x for x in (proc.stdout + proc.stderr).splitlines() if x.startswith("out.mp4: flicker"))
    flicker, ratio, own, floor_ratio, floor = (float(x) for x in re.findall(r"\d+\.\d+", line)[:5])
    pairs = int(re.search(r"over (\d+) frame pairs", line).group(1))
    meter = FlickerMeter()
    meter.update(decoded(VIDEO, (64, 52)), decoded(out, (64, 52)))
    again = meter.result()
    assert pairs == again["frame_pairs"] >= 110 and own == pytest.approx(again["flicker_input"], abs=0.006)
    assert flicker == pytest.approx(again["flicker"], rel=0.1) and flicker > own and ratio == pytest.approx(flicker / own, abs=0.01)
    assert floor == pytest.approx(again["flicker_floor"], rel=0.1) and floor_ratio == pytest.approx(flicker / floor, abs=0.01)


def _flicker_floor(monkeypatch, *args: str) -> None:
    spec = importlib.util.spec_from_file_location("flicker_floor", REPO / "scripts" / "flicker_floor.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(sys, "argv", ["flicker_floor.py", *args])
    script.main()


def test_flicker_floor_reads_the_steady_stylization_between_input_and_model(monkeypatch, tmp_path, photos_dir, capsys):
    """scripts/flicker_floor.py with one painting of the packaged model (--style): the input is its own
    floor, a perfectly steady stylization reads more (sharp strokes) and the model on each frame more still."""
    out = tmp_path / "floor.json"
    _flicker_floor(monkeypatch, "--model", "packaged", "--style", "great_wave", "--photos", str(photos_dir / "rocket.jpg"),
                   "--width", "96", "--frames", "4", "--json", str(out))
    assert torch.is_grad_enabled()  # the script leaves the caller's grad mode (here: the next tests') alone
    rows = {row["video"]: row for row in json.loads(out.read_text())["rows"]}
    assert rows["input"]["flicker_ratio"] == pytest.approx(1) and rows["input"]["frame_pairs"] == 3
    assert 1 < rows["steady stylization"]["flicker_ratio"] < rows["model on each frame"]["flicker_ratio"]
    with pytest.raises(SystemExit) as stop:
        _flicker_floor(monkeypatch, "--model", "packaged", "--style", "nope", "--photos", str(photos_dir / "rocket.jpg"))
    assert stop.value.code == 2 and "style nope is not in this model" in capsys.readouterr().err
