from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ["style", "data", "model", "loss", "optim", "trainer", "logger", "experiment"]
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]


def test_every_group_has_options():
    assert {g for g, _ in OPTIONS} == set(GROUPS)
    assert {"starry_night", "great_wave", "the_scream", "composition_vii", "udnie", "mosaic", "candy"} <= {o for g, o in OPTIONS if g == "style"}
    assert {"default", "cpu", "gpu", "debug"} <= {o for g, o in OPTIONS if g == "trainer"}
    assert {"wandb", "tensorboard", "csv", "none"} <= {o for g, o in OPTIONS if g == "logger"}


@pytest.mark.parametrize("group,option", OPTIONS)
def test_every_config_composes(group, option):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        extra = ["style.name=mine", "style.image=mine.jpg"] if option == "custom" else []
        cfg = compose("train", overrides=[f"{group}={option}", *extra])
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    assert container["trainer"]["_target_"] == "pytorch_lightning.Trainer"
    assert container["model"]["_target_"] == "fststyle.net.TransformerNet"
    assert container["data"]["_target_"] == "fststyle.training.data.StyleDataModule"
    if group == "style" and option != "custom":
        assert container["style"]["name"] == option
        assert container["style"]["source"].startswith("https://") and len(container["style"]["sha256"]) == 64
        assert container["style"]["image"] in (f"packaged:{option}.jpg", container["style"]["source"])


def test_defaults_follow_johnson():
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train")
    assert (cfg.data.image_size, cfg.data.batch_size, cfg.optim.lr, cfg.trainer.max_steps) == (256, 4, 1e-3, 40000)
    assert (cfg.loss.arch, cfg.loss.weights, list(cfg.loss.content_layers)) == ("vgg19", "bundled", ["relu2_2"])
    assert list(cfg.loss.style_layers) == ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]


def test_johnson2016_experiment():
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=johnson2016"])
    assert (cfg.loss.arch, cfg.loss.weights) == ("vgg16", "torchvision")
    assert cfg.loss.tv_weight > 0 and cfg.trainer.max_steps == 40000 and cfg.data.batch_size == 4


def test_infer_takes_model_as_a_plain_value():
    with initialize_config_dir(str(CONF / "cli"), version_base="1.3"):
        cfg = compose("infer", overrides=["model=outputs/x/export/x.pth", "input=a.jpg", "output=b.jpg"])
    assert cfg.model == "outputs/x/export/x.pth"


def test_the_small_model_preset_is_narrower_and_shallower():
    from hydra.utils import instantiate

    with initialize_config_dir(str(CONF), version_base="1.3"):
        small, default = (instantiate(compose("train", overrides=[f"model={m}"]).model) for m in ("johnson_small", "johnson"))
    assert (small.width, len(small.residuals), default.width, len(default.residuals)) == (16, 3, 32, 5)
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert count(small) < count(default) / 6


def test_the_manuals_configuration_reference_holds_every_config_file_as_it_is():
    """docs/configuration.md is filled from conf/ when the manual is built (scripts/mkdocs_hooks.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mkdocs_hooks", CONF.parent / "scripts" / "mkdocs_hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    reference = hooks.config_reference(CONF)
    files = sorted(CONF.rglob("*.yaml"))
    assert len(files) > 30 and reference.count("```yaml\n") == len(files)
    for path in files:
        assert f"### `{path.relative_to(CONF).as_posix()}`\n\n```yaml\n{path.read_text().rstrip()}\n```" in reference
    page = type("Page", (), {"file": type("File", (), {"src_uri": "configuration.md"})()})()
    written = hooks.on_page_markdown((CONF.parent / "docs" / "configuration.md").read_text(), page)
    assert hooks.MARKER not in written and reference in written
