"""Several styles in one network (conditional instance norm): the network, the loss, training,
inference with a style or a blend, and the exports."""

from pathlib import Path

import pytest
import torch
from conftest import STYLES, read_metric, run_cli, tiny_args
from PIL import Image

from fststyle import Stylizer
from fststyle.exporters.formats import check_export, export_onnx, run_export
from fststyle.images import load_tensor
from fststyle.losses import PerceptualLoss
from fststyle.net import ConditionalInstanceNorm2d, TransformerNet
from fststyle.vgg import LossNetwork


def test_a_blend_is_the_network_with_blended_scales_and_shifts():
    """Conditional norms mix the styles' scales and shifts linearly: the 0.7/0.3 blend equals a
    one-style network (same weights, same state-dict names) whose norms hold the mixed values."""
    torch.manual_seed(0)
    multi = TransformerNet(width=8, num_residual=1, num_styles=2)
    for module in multi.modules():
        if isinstance(module, ConditionalInstanceNorm2d):
            torch.nn.init.normal_(module.weight, 1.0, 0.3)
            torch.nn.init.normal_(module.bias, 0.0, 0.3)
    single = TransformerNet(width=8, num_residual=1)
    mix = torch.tensor([0.7, 0.3])
    state = {k: (mix @ v if k.endswith(("weight", "bias")) and v.dim() == 2 and v.shape[0] == 2 else v) for k, v in multi.state_dict().items()}
    single.load_state_dict(state)
    x = torch.rand(2, 3, 37, 45)
    with torch.no_grad():
        torch.testing.assert_close(multi(x, mix.expand(2, 2)), single(x), atol=1e-5, rtol=0)
        one_hot = multi(x, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        assert (one_hot[0] - multi(x[:1], torch.tensor([[0.0, 1.0]]))[0]).abs().max() > 1e-3  # the styles differ
    with pytest.raises(ValueError, match="give the style weights"):
        multi(x)


def test_each_item_is_judged_against_its_own_style():
    network = LossNetwork("vgg19", ["relu1_2", "relu2_2"], "random")
    g = torch.Generator().manual_seed(0)
    paintings = [torch.rand(1, 3, 40, 48, generator=g), torch.rand(1, 3, 56, 40, generator=g)]
    both = PerceptualLoss(network, paintings, ["relu2_2"], ["relu1_2", "relu2_2"], [[1.0, 2.0], [3.0, 0.5]])
    output, content = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    joint = both(output, content, torch.tensor([1, 0]))["style"]
    alone = [PerceptualLoss(network, paintings[k], ["relu2_2"], ["relu1_2", "relu2_2"], w)(output[i : i + 1], content[i : i + 1])["style"]
             for i, (k, w) in enumerate([(1, [3.0, 0.5]), (0, [1.0, 2.0])])]
    torch.testing.assert_close(joint, (alone[0] + alone[1]) / 2)
    with pytest.raises(ValueError, match="each item's style index"):
        both(output, content)


@pytest.fixture(scope="module")
def multi_run(tmp_path_factory, photos_dir, starry_night):
    run_dir = tmp_path_factory.mktemp("multi")
    args = [a for a in tiny_args(run_dir, photos_dir, starry_night, "trainer.max_steps=4", "sample_every=0") if not a.startswith("style.image")]
    styles = f"styles=[{STYLES / 'starry_night.jpg'},{STYLES / 'great_wave.jpg'},the_scream]"
    run_cli("fststyle.train", *args, styles, "style.name=three")
    return run_dir


def test_training_several_styles_writes_one_model_holding_them(multi_run):
    payload = torch.load(multi_run / "export" / "three.pth", weights_only=True)
    assert payload["model"]["num_styles"] == 3
    assert [s["name"] for s in payload["metadata"]["styles"]] == ["starry_night", "great_wave", "the_scream"]
    with Image.open(multi_run / "samples" / "step_000004.jpg") as grid:  # photos, then one row per style
        assert grid.size[1] == 4 + 4 * (48 + 4)
    ckpt = Stylizer.load(multi_run / "checkpoints" / "last.ckpt", device="cpu")
    assert ckpt.styles == ["starry_night", "great_wave", "the_scream"]


def test_inference_picks_or_blends_a_style(multi_run, photos_dir):
    stylizer = Stylizer.load(multi_run / "export" / "three.pth", device="cpu", precision="fp32")  # tiles: exact in float32
    photo = load_tensor(photos_dir / "dog.jpg", 64)[None]
    wave, night = stylizer.run(photo, style="great_wave"), stylizer.run(photo, style="starry_night")
    assert (wave - night).abs().mean() > 2e-4  # 4 steps: the styles have just begun to differ
    blend = stylizer.run(photo, style="starry_night:3,great_wave:1")  # normalized: 0.75 / 0.25
    torch.testing.assert_close(blend, stylizer.run(photo, style={"starry_night": 0.75, "great_wave": 0.25}))
    large = load_tensor(photos_dir / "dog.jpg", 300)[None]  # 2 x 2 tiles of 256 px: equal to untiled (README, tile=)
    torch.testing.assert_close(stylizer.run(large, style="great_wave", tile=256), stylizer.run(large, style="great_wave"), atol=1e-4, rtol=0)
    for bad, message in [(None, "holds 3 styles"), ("mosaic", "mosaic is not in this model"), ("great_wave:-1", "must be finite numbers >= 0")]:
        with pytest.raises(ValueError, match=message):
            stylizer.run(photo, style=bad)


def test_infer_cli_style_and_blend(multi_run, model_path, photos_dir, tmp_path):
    model = multi_run / "export" / "three.pth"
    out = tmp_path / "blend.png"
    proc = run_cli("fststyle.infer", f"model={model}", f"input={photos_dir / 'dog.jpg'}", f"output={out}", "size=64",
                   "style=starry_night:0.7,great_wave:0.3")
    assert Image.open(out).size == (64, 48)
    assert proc.stdout.strip().splitlines()[-1].endswith("; model three, style starry_night:0.7,great_wave:0.3)")
    proc = run_cli("fststyle.infer", f"model={model}", f"input={photos_dir / 'dog.jpg'}", f"output={out}", expect=2)
    assert proc.stderr.strip().splitlines() == ["error: this model holds 3 styles (starry_night, great_wave, the_scream): pick one with "
                                                "style=NAME or blend them, e.g. style=starry_night:0.5,great_wave:0.5"]
    proc = run_cli("fststyle.infer", f"model={model_path}", f"input={photos_dir / 'dog.jpg'}", f"output={out}", "style=great_wave", expect=2)
    assert "great_wave is not in this model, which holds: starry_night" in proc.stderr
    proc = run_cli("fststyle.infer", f"model={model_path}", f"input={photos_dir / 'dog.jpg'}", f"output={out}", "size=32", "style=starry_night")
    assert proc.stdout.strip().splitlines()[-1].endswith("; style starry_night)")


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exports_take_the_style_weights_as_a_second_input(multi_run, photos_dir, tmp_path, fmt):
    from fststyle.exporters.formats import export_torchscript
    from fststyle.model_file import load_network

    net, meta = load_network(multi_run / "export" / "three.pth")
    path = (export_onnx if fmt == "onnx" else export_torchscript)(net, tmp_path / f"three.{fmt}", meta)
    photo = load_tensor(photos_dir / "dog.jpg", 72)[None]
    assert check_export(path, fmt, net, [photo, torch.rand(2, 3, 33, 50)]) < 1e-3  # each style and a 0.7/0.3 blend
    blend = torch.tensor([[0.2, 0.5, 0.3]])
    with torch.no_grad():
        torch.testing.assert_close(run_export(path, fmt, photo, blend), net(photo, blend), atol=1e-3, rtol=0)
    if fmt == "onnx":
        onnx_stylizer = Stylizer.load(path, device="cpu")
        assert onnx_stylizer.styles == ["starry_night", "great_wave", "the_scream"]
        torch.testing.assert_close(onnx_stylizer.run(photo, style="great_wave:1"), net(photo, torch.tensor([[0.0, 1.0, 0.0]])), atol=1e-3, rtol=0)


def test_styles_need_a_model_name(tmp_path, photos_dir, starry_night):
    args = [a for a in tiny_args(tmp_path, photos_dir, starry_night) if not a.startswith(("style.image", "style.name"))]
    proc = run_cli("fststyle.train", *args, "styles=[starry_night,great_wave]", expect=2)
    assert proc.stderr.strip().splitlines()[-1] == "error: styles=[...] needs style.name=NAME too: the multi-style model and its run folder are named after it"


def test_a_path_style_is_named_after_its_file():
    from fststyle.styles import style_name

    assert [style_name(s) for s in ["great_wave", "/x/y/my_painting.jpg", "https://a.b/c/wave.png?x=1", "packaged:udnie.jpg"]] == \
        ["great_wave", "my_painting", "wave", "udnie"]


def test_eval_reports_each_style_against_its_own_painting(multi_run, photos_dir, tmp_path):
    import json

    out = tmp_path / "eval"
    run_cli("fststyle.eval", f"model={multi_run / 'export' / 'three.pth'}", f"content={photos_dir / 'dog.jpg'}", "size=48",
            "reference=true", "reference_steps=2", "device=cpu", f"hydra.run.dir={out}")
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["labels"].values()) == ["starry_night", "great_wave", "the_scream"]
    assert [Path(p).name for p in metrics["style_image"]] == ["starry_night.jpg", "great_wave.jpg", "the_scream.jpg"]
    assert {r["model"] for r in metrics["per_image"] if r["model"].startswith("optimization")} == \
        {"optimization:starry_night", "optimization:great_wave", "optimization:the_scream"}
    wave = next(r for r in metrics["per_image"] if r["label"] == "great_wave")
    reference = next(r for r in metrics["per_image"] if r["model"] == "optimization:great_wave")
    # Again, here: the model's Great Wave and the optimization against Great Wave, each scored by the
    # evaluation network with Great Wave's Grams (not Starry Night's).
    from fststyle import Stylizer
    from fststyle.images import load_tensor
    from fststyle.evaluation.metrics import EVAL_STYLE_SIZE, evaluation_loss, image_metrics
    from fststyle.evaluation.quality import optimize_image

    photo = load_tensor(photos_dir / "dog.jpg", 48)[None]
    judge = evaluation_loss(load_tensor(STYLES / "great_wave.jpg", EVAL_STYLE_SIZE)[None])
    mine = image_metrics(judge, Stylizer.load(multi_run / "export" / "three.pth", device="cpu").run(photo, style="great_wave"), photo)
    best = image_metrics(judge, optimize_image(photo, judge, 2).image, photo)
    assert wave["style"] == pytest.approx(mine["style"], rel=1e-4) and reference["style"] == pytest.approx(best["style"], rel=1e-3)
    assert wave["style_ratio"] == pytest.approx(mine["style"] / best["style"], rel=2e-3)
    with Image.open(out / "contact_sheet.png") as sheet:  # photo | a column per style
        assert sheet.size == (4 * 256, 18 + 2 * 256)


def test_a_new_style_trains_only_its_norms_on_top_of_a_trained_model(multi_run, tmp_path, photos_dir, starry_night):
    """train=norms: the model written holds the old styles and the new one; every weight but the new
    style's scales and shifts is exactly the init's."""
    init = multi_run / "export" / "three.pth"
    run_dir = tmp_path / "four"
    args = [a for a in tiny_args(run_dir, photos_dir, starry_night, "trainer.max_steps=3", "sample_every=0") if not a.startswith("style.")]
    run_cli("fststyle.train", *args, f"init={init}", "styles=[shipwreck]", "style.name=four", "train=norms")
    before, after = (torch.load(p, weights_only=True) for p in (init, run_dir / "export" / "four.pth"))
    assert [s["name"] for s in after["metadata"]["styles"]] == ["starry_night", "great_wave", "the_scream", "shipwreck"]
    assert after["model"]["num_styles"] == 4
    changed = []
    for key, old in before["state_dict"].items():
        new = after["state_dict"][key]
        if new.shape != old.shape:  # a conditional norm: three old rows, one new
            assert torch.equal(new[:3], old)
            changed.append(not torch.allclose(new[3], old.mean(0)))
        else:
            assert torch.equal(new, old), key
    assert len(changed) > 10 and any(changed)
    assert read_metric(run_dir, "train/lr") == pytest.approx([3e-2] * 3)  # norms_preset: not given, so applied
    proc = run_cli("fststyle.train", *args, "styles=[shipwreck]", "style.name=four", "train=norms", expect=2)
    assert "train=norms adds styles to a trained model: give init=MODEL and styles=" in proc.stderr
    proc = run_cli("fststyle.train", *args, f"init={init}", "styles=[great_wave]", "style.name=four", "train=norms", expect=2)
    assert "already holds great_wave" in proc.stderr
