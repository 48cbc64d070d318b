"""Inference: the Stylizer API and `python -m fststyle.infer` on images, folders, globs and videos."""

import shutil

import numpy as np
import pytest
import torch
from conftest import infer_on_the_quick_path, photo_folder, run_cli
from media import make_video, probe
from PIL import Image

from fststyle import Stylizer
from fststyle.images import load_tensor
from fststyle.inference.stylizer import pick_precision


@pytest.fixture(scope="module")
def stylizer(model_path):
    return Stylizer.load(model_path, device="cpu")


@pytest.fixture(scope="module")
def net(model_path):
    """The stylizer's network as saved (float32, channels first), for exact comparisons."""
    from fststyle.model_file import load_network

    return load_network(model_path)[0].eval()


@pytest.fixture(scope="module")
def photo(photos_dir):
    return load_tensor(photos_dir / "chicago.jpg", 160)[None]  # (1, 3, 106, 160)


def test_each_image_kind_comes_back_as_itself(stylizer, photos_dir):
    pil = Image.open(photos_dir / "dog.jpg").convert("RGB").resize((45, 31))
    out = stylizer(pil)
    assert isinstance(out, Image.Image) and out.size == (45, 31)
    arr = np.asarray(pil).copy()
    out = stylizer(arr)
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == arr.shape
    t = torch.rand(3, 17, 29)
    assert stylizer(t).shape == (3, 17, 29)
    assert stylizer(t[None].repeat(2, 1, 1, 1)).shape == (2, 3, 17, 29)
    with pytest.raises(TypeError):
        stylizer("dog.jpg")


def test_strength_zero_gives_back_the_photo(stylizer, photos_dir):
    arr = np.asarray(Image.open(photos_dir / "dog.jpg").convert("RGB").resize((64, 48))).copy()
    assert np.array_equal(stylizer(arr, strength=0.0), arr)
    full, half = stylizer(arr).astype(int), stylizer(arr, strength=0.5).astype(int)
    assert np.abs(half - (full + arr) / 2).max() <= 1
    with pytest.raises(ValueError, match="strength"):
        stylizer(arr, strength=1.5)


def test_preserve_color_keeps_the_photos_chroma(stylizer, photo):
    kept = stylizer.run(photo, preserve_color=True)
    styled = stylizer.run(photo)
    # BT.601 YCbCr (full range), written out here: Y, then the two chroma channels.
    ycbcr = lambda x: torch.einsum("ij,njhw->nihw", torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5],  # noqa: E731
                                                                  [0.5, -0.418688, -0.081312]]), x)
    chroma = lambda x: ycbcr(x)[:, 1:]  # noqa: E731
    assert (chroma(kept) - chroma(photo)).abs().mean() < 2e-3  # only gamut clipping differs
    assert (chroma(styled) - chroma(photo)).abs().mean() > 0.02  # the style alone does change colours
    torch.testing.assert_close(ycbcr(kept)[:, :1], ycbcr(styled)[:, :1], atol=0.05, rtol=0)


def test_stroke_runs_the_network_smaller_and_keeps_the_photos_detail(stylizer, photo):
    """stroke=2: the network sees the photo at half size; the result has the photo's size, its strokes
    enlarged, and the photo's fine luminance detail back (sharper than a plain enlargement)."""
    from fststyle.inference.stylizer import resample, restore_detail

    seen = []
    hook = stylizer.module.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape[-2:])))
    try:
        out = stylizer.run(photo, stroke=2)
    finally:
        hook.remove()
    h, w = photo.shape[-2:]
    half = (round(h / 2), round(w / 2))
    assert seen == [half] and out.shape == photo.shape
    plain = resample(stylizer.run(resample(photo, half)), (h, w))
    torch.testing.assert_close(out, restore_detail(plain, photo, half))
    edges = lambda x: (x[..., 1:, :] - x[..., :-1, :]).abs().mean()  # noqa: E731
    assert edges(out) > 1.1 * edges(plain)
    assert stylizer.run(photo, stroke=0.5).shape == photo.shape


def test_stroke_auto_paints_every_photo_like_its_1024_px_version(stylizer, photo):
    assert stylizer.metadata["style_size"] == 128  # recorded (the tiny training run's)
    assert stylizer.stroke_factor("auto", (100, 120)) == 1.0  # small photos are not enlarged
    assert stylizer.stroke_factor("auto", (2160, 3840)) == 3.75
    assert stylizer.stroke_factor("auto", (2048, 1536)) == 2.0
    torch.testing.assert_close(stylizer.run(photo[..., :64, :96], stroke="auto"), stylizer.run(photo[..., :64, :96]))
    for bad in ("big", 0, 100):
        with pytest.raises(ValueError, match="stroke must be auto or a factor"):
            stylizer.stroke_factor(bad, (10, 10))


def test_infer_stroke_cli(model_path, photos_dir, tmp_path):
    out = tmp_path / "auto.png"
    run_cli("fststyle.infer", f"model={model_path}", f"input={photos_dir / 'dog.jpg'}", f"output={out}", "size=300", "stroke=auto")
    with Image.open(out) as image:
        assert image.size == (300, 225)
    proc = run_cli("fststyle.infer", f"model={model_path}", f"input={photos_dir / 'dog.jpg'}", f"output={out}", "stroke=huge", expect=2)
    assert proc.stderr.strip().splitlines() == ["error: stroke must be auto or a factor in [0.125, 64], got huge"]


def test_tiling_matches_untiled_away_from_seams(stylizer, net, photos_dir):
    photo = load_tensor(photos_dir / "chicago.jpg", 256)[None]  # 170 x 256: 2 x 2 tiles of 160, one not at 0
    full = stylizer.run(photo)
    tiled = stylizer.run(photo, tile=160)
    err = (full - tiled).abs()
    assert tiled.shape == full.shape
    assert err.mean() < 0.005 and err.flatten().quantile(0.99) < 0.04
    # Tiles normalized with their own statistics instead (each quarter stylized alone) are clearly off:
    h, w = photo.shape[-2] // 2, photo.shape[-1] // 2
    with torch.inference_mode():
        quarters = [[net(photo[..., y : y + h, x : x + w]) for x in (0, w)] for y in (0, h)]
    naive = torch.cat([torch.cat(row, -1) for row in quarters], -2)
    assert (full[..., : 2 * h, : 2 * w] - naive).abs().mean() > 3 * err.mean()


@pytest.mark.parametrize("stats_size", [1024, 128])
def test_tiles_of_256_px_equal_the_untiled_result(net, photos_dir, stats_size):
    """Tiles of 256 px or more discard their outer receptive radius where they overlap, so every pixel
    comes from a tile that saw all it depends on; the instance-norm statistics are the whole image's,
    from one pass (an image up to stats_size) or from tiled passes layer by layer (a larger one). So
    tiled and untiled agree to float rounding, borders included."""
    from fststyle.inference.tiling import stylize_tiled

    photo = load_tensor(photos_dir / "stata.jpg", 420)[None]  # 279 x 420 (not multiples of 16): 2 x 3 tiles of 256
    with torch.inference_mode():
        full, tiled = net(photo), stylize_tiled(net, photo, 256, stats_size=stats_size)
    assert tiled.shape == full.shape and (full - tiled).abs().max() < 1e-4


def test_tiles_discard_the_whole_receptive_radius(photos_dir):
    """The margin tiles discard is the farthest reach over a pixel's places on the 4-px grid: with the
    reach of the grid's first place alone (3 px short) tiles of 256 px were off by about 1e-4 from the
    untiled pass."""
    from fststyle.inference.tiling import stylize_tiled
    from fststyle.net import TransformerNet

    torch.manual_seed(0)
    net = TransformerNet(width=8, num_residual=2).eval()
    photo = load_tensor(photos_dir / "stata.jpg", 420)[None]
    with torch.inference_mode():
        assert (stylize_tiled(net, photo, 256) - net(photo)).abs().max() < 1e-5


def test_an_image_over_the_memory_budget_runs_in_bands_or_tiles(photos_dir, caplog):
    """max_memory: a photo whose pass would not fit runs in row bands (exact: the untiled result to
    float rounding), or, where even bands do not fit, in tiles (within a quarter of an 8-bit step),
    with one warning naming which; a batch that does not fit but whose images do runs one image at a
    time, unchanged; a photo that fits runs whole. (A narrow network with one residual block: its
    receptive radius, 22 px, makes tiles of 128 px exact.)"""
    from fststyle.net import TransformerNet
    from fststyle.inference.memory import forward_bytes

    net = TransformerNet(width=8, num_residual=1).eval()
    for norm in net.modules():
        if isinstance(norm, torch.nn.InstanceNorm2d):  # not the identity a new network starts with
            torch.nn.init.uniform_(norm.weight, 0.5, 1.5), torch.nn.init.uniform_(norm.bias, -0.2, 0.2)
    photo = load_tensor(photos_dir / "stata.jpg", 300)[None]  # 199 x 300
    need = forward_bytes(8, 199, 300)
    untiled = Stylizer(net, device="cpu", precision="fp32", max_memory="none").run(photo)  # exactness is float32's
    for budget, how, tolerance in ((need // 2, "bands of", 1e-5), (need // 6, "tiles of", 0.25 / 255)):
        caplog.clear()
        with caplog.at_level("WARNING", logger="fststyle.inference.stylizer"):
            out = Stylizer(net, device="cpu", precision="fp32", max_memory=budget).run(photo)
        [warning] = [r.getMessage() for r in caplog.records]
        assert warning.startswith("300x199 px would need about") and f"stylized in {how} " in warning, warning
        assert (out - untiled).abs().max() < tolerance

    caplog.clear()
    one_by_one = Stylizer(net, device="cpu", precision="fp32", max_memory=f"{need * 1.5 / 2**20:.2f}MB")
    assert one_by_one.memory_plan(2, 199, 300) == ("one by one", None) and one_by_one.memory_plan(1, 199, 300) == ("whole", None)
    with caplog.at_level("WARNING", logger="fststyle.inference.stylizer"):
        out = one_by_one.run(torch.cat([photo, photo.flip(-1)]))
    assert not caplog.records and (out[:1] - untiled).abs().max() < 1e-5


def test_banded_inference_equals_the_untiled_pass(photos_dir):
    """Layer by layer in bands of rows, with several styles blended, at a size that is no multiple of 16."""
    from fststyle.inference.banded import stylize_banded
    from fststyle.net import TransformerNet

    net = TransformerNet(width=8, num_residual=2, num_styles=3).eval()
    with torch.no_grad():
        for param in net.parameters():
            param += 0.05 * torch.randn_like(param)
    photo, style = load_tensor(photos_dir / "dog.jpg", 150)[None], torch.tensor([[0.2, 0.5, 0.3]])
    with torch.inference_mode():
        assert (stylize_banded(net, photo, 16, style) - net(photo, style)).abs().max() < 1e-5


def test_infer_says_when_it_runs_in_bands_and_refuses_a_bad_budget(model_path, photos_dir, tmp_path):
    """The banded picture is the one a pass over the whole photo gives (PNG: no lossy step between; float32, where
    both paths compute alike: in bf16 the whole pass normalizes in bf16, the bands in float32)."""
    proc = run_cli("fststyle.infer", f"model={model_path}", f"input={photos_dir / 'dog.jpg'}", f"output={tmp_path / 'b.png'}",
                   "size=300", "max_memory=60MB", "precision=fp32")
    assert [line for line in proc.stderr.splitlines() if "over the memory budget of 60 MB (max_memory=60MB): stylized in bands of" in line]
    proc = run_cli("fststyle.infer", f"model={model_path}", f"input={photos_dir / 'dog.jpg'}", f"output={tmp_path / 'whole.png'}",
                   "size=300", "max_memory=none", "precision=fp32")
    assert "bands" not in proc.stderr
    banded, whole = (np.asarray(Image.open(tmp_path / name)).astype(int) for name in ("b.png", "whole.png"))
    assert banded.shape == whole.shape and max(banded.shape[:2]) == 300 and np.abs(banded - whole).max() <= 1
    proc = run_cli("fststyle.infer", f"model={model_path}", f"input={photos_dir / 'dog.jpg'}", f"output={tmp_path / 'o.jpg'}",
                   "max_memory=lots", expect=2)
    assert proc.stderr.strip().splitlines()[-1] == "error: max_memory must be auto, none or a size such as 2GB or 512MB, got 'lots'"
    assert not (tmp_path / "o.jpg").exists()


def test_bf16_is_close_to_fp32(model_path, photo):
    fp32 = Stylizer.load(model_path, device="cpu", precision="fp32").run(photo)
    bf16 = Stylizer.load(model_path, device="cpu", precision="bf16").run(photo)
    assert bf16.dtype == torch.float32 and (bf16 - fp32).abs().mean() < 0.02


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_cpu_runs_a_channels_last_copy_in_the_precisions_own_weights(net, photo, precision):
    """On the CPU a whole-image pass runs a copy of the network in the precision's own weights (no autocast),
    channels last: every convolution sees channels last. The caller's network stays as it was."""
    stylizer = Stylizer(net, device="cpu", precision=precision)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
    convs = [m for m in stylizer.module.modules() if isinstance(m, torch.nn.Conv2d)]
    seen = []
    hooks = [c.register_forward_pre_hook(lambda m, args: seen.append((args[0].dtype, args[0].is_contiguous(memory_format=torch.channels_last))))
             for c in convs]
    out = stylizer.run(photo)
    for h in hooks:
        h.remove()
    assert seen == [(dtype, True)] * len(convs) and out.dtype == torch.float32
    assert all(p.dtype == torch.float32 and p.is_contiguous() for p in net.parameters())
    assert stylizer.module is not net and all(p.dtype == dtype for p in stylizer.module.parameters())


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_on_the_cpu_is_bf16_only_where_it_is_native(monkeypatch, native):
    import fststyle.inference.stylizer

    monkeypatch.setattr(fststyle.inference.stylizer, "native_bf16_cpu", lambda: native)
    cpu = torch.device("cpu")
    assert pick_precision("auto", cpu) == (torch.bfloat16 if native else torch.float32)
    assert pick_precision("fp32", cpu) == torch.float32 and pick_precision("bf16", cpu) == torch.bfloat16


def test_auto_precision_on_a_cuda_gpu_is_fp32():
    """Measured on an H200: fp32 frames 1.8x faster than bf16 (benchmarks/2026-12-04_h200/infer.json)."""
    assert pick_precision("auto", torch.device("cuda")) == torch.float32
    assert pick_precision("bf16", torch.device("cuda")) == torch.bfloat16


@pytest.mark.slow
def test_compiled_stylizer_matches_eager_at_several_sizes(tmp_path):
    """compile=true (dynamic shapes) on photos of different sizes: the size padding must compile
    (a symbolic modulo there made inductor fail on the first image). Tiled too, on two images: each
    tile must be normalized with its own image's statistics (installed by hooks the compiled module
    does not guard on), and the compiled module must be usable there at all (it once crashed)."""
    from fststyle.model_file import save_model
    from fststyle.net import TransformerNet

    config = {"width": 4, "num_residual": 1}  # small: compiles quickly
    torch._dynamo.utils.counters.clear()
    path = save_model(tmp_path / "tiny.pth", TransformerNet(**config), config, {"style_name": "tiny"})
    compiled, eager = Stylizer.load(path, device="cpu", precision="fp32", compile=True), Stylizer.load(path, device="cpu", precision="fp32")
    assert isinstance(compiled.net, torch._dynamo.eval_frame.OptimizedModule) and compiled.module is not compiled.net
    for shape in [(1, 3, 150, 203), (1, 3, 161, 190)]:
        x = torch.rand(*shape)  # channels last: inductor sums the norms' statistics in another order than oneDNN
        torch.testing.assert_close(compiled.run(x), eager.run(x), atol=3e-5, rtol=0)
    for image in (torch.rand(1, 3, 192, 288), torch.rand(1, 3, 192, 288) ** 4):  # other statistics
        torch.testing.assert_close(compiled.run(image, tile=160), eager.run(image, tile=160), atol=1e-5, rtol=0)
    # Two graphs: one for photos of any size, one for tiles (multiples of 16 px, so the final crop is a
    # no-op). Each further compile costs about 20 s here: a batch of two beside batches of one, or
    # tiles too small for the convolutions' size heuristics, each made one.
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 2


def test_checkpoint_and_exported_model_agree(trained, photo):
    run_dir, _ = trained
    a = Stylizer.load(run_dir / "export" / "starry_night.pth", device="cpu").run(photo)
    b = Stylizer.load(run_dir / "checkpoints" / "last.ckpt", device="cpu").run(photo)
    torch.testing.assert_close(a, b)


def test_folder_with_a_bad_file(model_path, photos_dir, tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    shutil.copy(photos_dir / "dog.jpg", src / "dog.jpg")
    shutil.copy(photos_dir / "camera.png", src / "sub" / "camera.png")  # grayscale
    (src / "sub" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    proc = run_cli("fststyle.infer", f"model={model_path}", f"input={src}", f"output={tmp_path / 'out'}", "size=50", "device=cpu", expect=1)
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.*")) == ["dog.jpg", "sub/camera.png"]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken.jpg" in errors[0]
    assert "2 written, 1 failed" in proc.stdout and "images/s" in proc.stdout
    with Image.open(tmp_path / "out" / "sub" / "camera.png") as im:
        assert im.size == (50, 50) and im.mode == "RGB"


def test_glob_input_mirrors_below_its_fixed_part(model_path, photos_dir, tmp_path):
    src = tmp_path / "in"
    (src / "a").mkdir(parents=True)
    shutil.copy(photos_dir / "dog.jpg", src / "a" / "dog.jpg")
    shutil.copy(photos_dir / "eagle.jpg", src / "eagle.jpg")
    shutil.copy(photos_dir / "chelsea.png", src / "a" / "cat.png")
    run_cli("fststyle.infer", f"model={model_path}", f"input={src}/**/*.jpg", f"output={tmp_path / 'out'}", "size=40", "device=cpu", "batch_size=2")
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.*")) == ["a/dog.jpg", "eagle.jpg"]


@pytest.mark.parametrize("container", [".mp4", ".mkv"])
def test_video_round_trip_keeps_frames_rate_and_sound(model_path, tmp_path, container):
    src = make_video(tmp_path / "clip.mp4", frames=7, size=(64, 48), fps=12)
    out = tmp_path / f"styled{container}"
    proc = run_cli("fststyle.infer", f"model={model_path}", f"input={src}", f"output={out}", "device=cpu", "batch_size=3")
    assert probe(out) == {"frames": 7, "size": (64, 48), "fps": 12.0, "audio": "aac"}
    assert "frames/s" in proc.stdout


def test_video_resized_and_sound_dropped_where_the_container_cannot_hold_it(model_path, tmp_path):
    src = make_video(tmp_path / "clip.mp4", frames=4, size=(64, 48), fps=10)
    out = tmp_path / "styled.webm"
    run_cli("fststyle.infer", f"model={model_path}", f"input={src}", f"output={out}", "device=cpu", "size=33")
    assert probe(out) == {"frames": 4, "size": (33, 25), "fps": 10.0, "audio": None}  # the long side asked for, odd or not
    run_cli("fststyle.infer", f"model={model_path}", f"input={src}", f"output={tmp_path / 'styled.mp4'}", "device=cpu", "size=33")
    assert probe(tmp_path / "styled.mp4")["size"] == (33, 24)  # H.264: the short side to the nearest even size (24.75 -> 24)


@pytest.mark.parametrize("size", [(1, 1), (9, 9), (9, 7), (20, 11)])
def test_tiny_and_odd_videos_keep_their_size_and_stabilize(model_path, tmp_path, size):
    """Frames of any size keep it (odd H.264 sizes as 4:4:4); stabilization and the flicker meter take
    frames too small for an optical flow (OpenCV's DIS refuses under 12 px) without failing."""
    src = make_video(tmp_path / "tiny.mp4", frames=4, size=size, audio=False)
    out = tmp_path / "out.mp4"
    proc = run_cli("fststyle.infer", f"model={model_path}", f"input={src}", f"output={out}", "device=cpu", "stabilize=true", "flicker=true")
    assert probe(out)["size"] == size and probe(out)["frames"] == 4 and "1 written, 0 failed" in proc.stdout
    flicker = next(x for x in (proc.stdout + proc.stderr).splitlines() if x.startswith("out.mp4: flicker"))
    if min(size) < 16:
        assert "flicker not measured: no pair of frames could be matched (frames under 16 px" in flicker
    else:
        assert "over 3 frame pairs" in flicker


def test_a_video_without_motion_reports_its_flicker_without_a_ratio(model_path, tmp_path):
    """A still shot: the input's own warping error is 0, so the figures are absolute and the line says why."""
    src = make_video(tmp_path / "still.mp4", frames=4, size=(48, 32), motion=0, audio=False)
    proc = run_cli("fststyle.infer", f"model={model_path}", f"input={src}", f"output={tmp_path / 'out.mp4'}", "device=cpu", "flicker=true")
    line = next(x for x in (proc.stdout + proc.stderr).splitlines() if x.startswith("out.mp4: flicker"))
    assert "(no motion in the input: its own warping error is 0, so there is no ratio" in line and "1 written, 0 failed" in proc.stdout


@pytest.mark.parametrize("container, reason", [(".mkv", "no video frame could be decoded"), (".mp4", "holds no video stream (sound only?)")])
def test_a_video_stream_without_frames_fails_in_one_line_and_writes_nothing(model_path, tmp_path, container, reason):
    """An empty video stream beside a sound track (MP4's muxer drops the empty stream, Matroska keeps
    it): no sound-only file, one error line, exit 1."""
    src = make_video(tmp_path / f"empty{container}", frames=0, seconds_of_sound=0.5)
    out = tmp_path / "out" / "styled.mp4"
    proc = run_cli("fststyle.infer", f"model={model_path}", f"input={src}", f"output={out}", "device=cpu", expect=1)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {src}: {reason}; nothing written"]
    assert "0 written, 1 failed" in proc.stdout and not out.exists() and list(out.parent.iterdir()) == []


def test_missing_input_is_one_line(model_path, tmp_path):
    proc = run_cli("fststyle.infer", f"model={model_path}", f"input={tmp_path / 'none.jpg'}", f"output={tmp_path / 'o.jpg'}", expect=2)
    assert proc.stderr.strip().splitlines() == [f"error: input not found: {tmp_path / 'none.jpg'}"]


def test_an_unreadable_video_between_good_ones_is_reported_and_the_rest_written(model_path, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    make_video(src / "a.mp4", frames=3, size=(32, 24), audio=False)
    (src / "b.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    make_video(src / "c.mp4", frames=3, size=(32, 24), audio=False)
    proc = run_cli("fststyle.infer", f"model={model_path}", f"input={src}", f"output={tmp_path / 'out'}", "device=cpu", expect=1)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.mp4", "c.mp4"]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {src / 'b.mp4'}: ")
    assert "2 written, 1 failed" in proc.stdout


def frame_times(path) -> tuple[list[float], float | None]:
    """Each video frame's time in seconds, and the first audio packet's."""
    import av

    with av.open(str(path)) as c:
        times = [round(float(f.time), 4) for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        audio = next((float(p.pts * p.time_base) for p in c.demux(audio=0) if p.pts is not None), None) if c.streams.audio else None
    return times, audio


@pytest.mark.parametrize("container", [".mp4", ".mkv"])
def test_video_keeps_a_variable_frame_rate_and_a_late_start(model_path, tmp_path, container):
    """Frames 40 to 110 ms apart, the first at 0.5 s: each output frame keeps its time, so the copied
    sound stays in sync (numbering the frames 0, 1, 2, ... at the average rate drifts from it)."""
    src = make_video(tmp_path / "vfr.mp4", frames=6, size=(32, 24), times_ms=[500, 540, 620, 650, 760, 800])
    out = tmp_path / f"styled{container}"
    run_cli("fststyle.infer", f"model={model_path}", f"input={src}", f"output={out}", "device=cpu", "batch_size=4")
    times, audio = frame_times(out)
    assert times == [0.5, 0.54, 0.62, 0.65, 0.76, 0.8] and (times, audio) == frame_times(src)


def test_infer_refuses_to_overwrite_its_input_in_one_line(model_path, photos_dir, tmp_path):
    """output=the input photo (or the input folder, or a link to it): one line, nothing written, the
    photo's bytes unchanged."""
    import hashlib

    photo = tmp_path / "photo.jpg"
    shutil.copy(photos_dir / "dog.jpg", photo)
    before = hashlib.sha256(photo.read_bytes()).hexdigest()
    proc = run_cli("fststyle.infer", f"model={model_path}", f"input={photo}", f"output={photo}", "size=32", "device=cpu", expect=2)
    assert proc.stderr.strip().splitlines() == [f"error: output={photo} would overwrite the input {photo}: give another output file or folder"]
    assert hashlib.sha256(photo.read_bytes()).hexdigest() == before and sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg"]


def test_plan_never_maps_an_input_onto_itself_and_skips_its_own_outputs(tmp_path, photos_dir):
    from fststyle.inference.stylize_paths import plan

    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    shutil.copy(photos_dir / "dog.jpg", photos / "dog.jpg")
    shutil.copy(photos_dir / "eagle.jpg", photos / "sub" / "eagle.jpg")
    (tmp_path / "link").symlink_to(photos)
    for input, output in [(photos, photos), (photos, tmp_path / "link"), (photos / "dog.jpg", photos), (f"{photos}/**/*.jpg", photos)]:
        with pytest.raises(ValueError, match="would overwrite the input"):
            plan(str(input), str(output))
    # An output folder inside the input folder: the earlier run's outputs there are no inputs (written
    # again, not stylized again), and are named; a photo of the user's there is an input.
    styled = photos / "styled"
    (styled / "sub").mkdir(parents=True)
    shutil.copy(photos / "sub" / "eagle.jpg", styled / "sub" / "eagle.jpg")
    shutil.copy(photos / "dog.jpg", styled / "mine.jpg")
    for input in (str(photos), f"{photos}/**/*.jpg"):
        assert plan(input, str(styled)) == ([(photos / "dog.jpg", styled / "dog.jpg"), (styled / "mine.jpg", styled / "styled" / "mine.jpg"),
                                             (photos / "sub" / "eagle.jpg", styled / "sub" / "eagle.jpg")], [styled / "sub" / "eagle.jpg"])
    # The output folder holds the input folder (output=. or output=its parent): every photo is an input.
    for output in (tmp_path, photos.parent / "."):
        assert plan(str(photos / "sub"), str(output)) == ([(photos / "sub" / "eagle.jpg", output / "eagle.jpg")], [])
    jobs, earlier = plan(str(photos), str(tmp_path))
    assert len(jobs) == 4 and earlier == [] and jobs[0] == (photos / "dog.jpg", tmp_path / "dog.jpg")


def test_infer_into_the_folder_that_holds_the_input(tmp_path, model_path, photos_dir):
    """input=photos/vacation output=. (the output folder holds the input): the photos are stylized."""
    vacation = tmp_path / "photos" / "vacation"
    vacation.mkdir(parents=True)
    shutil.copy(photos_dir / "dog.jpg", vacation / "dog.jpg")
    proc = run_cli("fststyle.infer", f"model={model_path}", "input=photos/vacation", "output=.", "size=32", "device=cpu", cwd=tmp_path)
    assert "1 written, 0 failed" in proc.stdout and (tmp_path / "dog.jpg").is_file()


BAD_OPTIONS = [
    ("size=-5", "size must be a whole number of pixels in [1, 65536] (or null: the picture's own), got -5"),
    ("size=1.5", "size must be a whole number of pixels in [1, 65536] (or null: the picture's own), got 1.5"),
    ("style=udnie:inf", "style weights must be finite numbers >= 0, not all 0, got {'udnie': inf}"),
    ("style=udnie:1e309", "style weights must be finite numbers >= 0, not all 0, got {'udnie': inf}"),
    ("style=udnie:nan,great_wave:1", "style weights must be finite numbers >= 0, not all 0, got {'udnie': nan, 'great_wave': 1.0}"),
    ("tile=8", "tile must be a whole number of pixels >= 32 (or null), got 8"),
    ("tile=big", "tile must be a whole number of pixels >= 32 (or null), got big"),
    ("strength=2", "strength must be in [0, 1], got 2"),
    ("preserve_color=maybe", "preserve_color must be true or false, got maybe"),
    ("batch_size=0", "batch_size must be a whole number >= 1, got 0"),
]


@pytest.mark.parametrize("option, message", BAD_OPTIONS)
def test_a_bad_option_is_one_line_before_any_work(tmp_path, photos_dir, option, message):
    """A folder of two photos with the packaged model: the bad value is reported once (not once per
    photo), nothing is written, no output folder is made."""
    folder = photo_folder(tmp_path, photos_dir, 2)
    out = tmp_path / "out"
    proc = run_cli("fststyle.infer", f"input={folder}", f"output={out}", option, *([] if option.startswith("style=") else ["style=udnie"]),
                   expect=2)
    assert proc.stderr.strip().splitlines() == [f"error: {message}"] and not out.exists()


def test_the_pixel_arithmetic_is_the_same_on_numpy_and_torch(photo):
    """fststyle.pixels serves the PyTorch path and the path without it: the same numbers from both."""
    from fststyle.pixels import blend, keep_colours

    other = photo.flip(-1).clamp(0.1, 0.9)
    for result in (lambda a, b: keep_colours(a, b), lambda a, b: blend(a, b, 0.3)):
        torch.testing.assert_close(torch.from_numpy(result(other.numpy(), photo.numpy())), result(other, photo), atol=1e-6, rtol=0)


def test_the_quick_path_gives_the_full_paths_picture_without_pytorch(model_path, photos_dir, tmp_path):
    """One photo and an ONNX model: fststyle.inference.quick (onnxruntime, numpy, PIL: neither PyTorch nor Hydra is
    imported) writes the picture the PyTorch path makes of it, with size, strength and colours."""
    onnx = tmp_path / "m.onnx"
    run_cli("fststyle.export", f"model={model_path}", f"output={onnx}", "check=false")
    options = ["size=80", "strength=0.8", "preserve_color=true"]
    out = tmp_path / "quick.png"
    infer_on_the_quick_path(f"model={onnx}", f"input={photos_dir / 'dog.jpg'}", f"output={out}", *options)
    full = Stylizer.load(onnx, device="cpu").run(load_tensor(photos_dir / "dog.jpg", 80)[None], strength=0.8, preserve_color=True)
    from fststyle.images import to_uint8

    quick = np.asarray(Image.open(out), dtype=np.int16)
    assert quick.shape == (*full.shape[-2:], 3) and max(quick.shape) == 80 and np.abs(quick - to_uint8(full[0]).astype(np.int16)).max() <= 1
    # A value it cannot take: the same one line as the full path, before any work.
    bad = run_cli("fststyle.infer", f"model={onnx}", f"input={photos_dir / 'dog.jpg'}", f"output={tmp_path / 'b.png'}", "strength=2", expect=2)
    assert bad.stderr.strip().splitlines() == ["error: strength must be in [0, 1], got 2"] and not (tmp_path / "b.png").exists()
