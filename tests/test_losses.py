import pytest
import torch

from fststyle.losses import PerceptualLoss, gram, total_variation
from fststyle.vgg import LossNetwork


def test_gram_matches_a_hand_computation():
    f = torch.randn(2, 3, 4, 5)
    g = gram(f)
    expected = torch.zeros(2, 3, 3)
    for n in range(2):
        for i in range(3):
            for j in range(3):
                expected[n, i, j] = (f[n, i] * f[n, j]).sum() / (3 * 4 * 5)
    torch.testing.assert_close(g, expected)


def test_gram_is_float32_for_half_inputs():
    f = torch.randn(1, 4, 8, 8)
    g = gram(f.to(torch.bfloat16))
    assert g.dtype == torch.float32
    torch.testing.assert_close(g, gram(f), atol=0.05, rtol=0.05)


def test_total_variation():
    flat = torch.full((1, 3, 8, 8), 0.3)
    assert total_variation(flat) == 0
    stripes = torch.zeros(1, 1, 2, 2)
    stripes[..., :, 1] = 1.0  # vertical stripes: horizontal neighbours differ by 1
    # vertical neighbours are equal (0), every horizontal pair differs by 1 (mean 1)
    assert total_variation(stripes).item() == pytest.approx(1.0)


@pytest.fixture(scope="module")
def criterion():
    torch.manual_seed(0)
    net = LossNetwork("vgg19", ["relu1_2", "relu2_2", "relu3_3"], "random")
    return PerceptualLoss(net, torch.rand(1, 3, 48, 40), ["relu2_2"], ["relu1_2", "relu3_3"], [1.0, 2.0], 1.0, 3.0, 0.5)


def test_style_grams_are_buffers(criterion):
    buffers = dict(criterion.named_buffers())
    assert {"gram_relu1_2", "gram_relu3_3"} <= set(buffers)
    assert buffers["gram_relu1_2"].shape == (1, 64, 64)


def test_losses_combine_with_their_weights(criterion):
    photos, out = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    losses = criterion(out, photos)
    assert losses["style"].item() == pytest.approx(losses["style/relu1_2"].item() + 2 * losses["style/relu3_3"].item(), rel=1e-5)
    total = losses["content"] + 3 * losses["style"] + 0.5 * losses["tv"]
    assert losses["loss"].item() == pytest.approx(total.item(), rel=1e-5)
    with torch.no_grad():
        expected = torch.nn.functional.mse_loss(criterion.network(out)["relu2_2"], criterion.network(photos)["relu2_2"])
    assert losses["content"].item() == pytest.approx(expected.item(), rel=1e-5) and expected > 0


def test_losses_are_float32_under_autocast(criterion):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = criterion(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    assert all(v.dtype == torch.float32 for v in losses.values())


def test_invalid_weights_are_refused():
    net = LossNetwork("vgg19", ["relu1_2"], "random")
    with pytest.raises(ValueError, match=">= 0"):
        PerceptualLoss(net, torch.rand(1, 3, 16, 16), ["relu1_2"], ["relu1_2"], None, 1.0, -1.0)
    with pytest.raises(ValueError, match="style_layer_weights"):
        PerceptualLoss(net, torch.rand(1, 3, 16, 16), ["relu1_2"], ["relu1_2"], [1.0, 2.0])


def test_style_norm_gram_gives_every_painting_the_reference_magnitude(starry_night):
    """loss.style_norm=gram: each layer's weight is (reference Gram magnitude / the painting's), so the
    packaged Starry Night keeps weight 1 and a weaker painting's Grams count as much as Starry Night's."""
    from omegaconf import OmegaConf

    from conftest import STYLES
    from fststyle.images import load_tensor
    from fststyle.styles import PAINTINGS
    from fststyle.training.criterion import build_criterion, gram_magnitudes

    cfg = OmegaConf.load(PAINTINGS.parents[1] / "conf" / "loss" / "vgg19.yaml")
    cfg.style_layers = ["relu1_2", "relu3_3"]
    cfg.style_norm = "gram"
    reference = load_tensor(PAINTINGS / "starry_night.jpg", 512)[None]
    assert build_criterion(cfg, reference).style_layer_weights == pytest.approx([1.0, 1.0])
    scream = load_tensor(STYLES / "the_scream.jpg", 512)[None]
    criterion = build_criterion(cfg, scream)
    ours = gram_magnitudes(criterion.network, scream, cfg.style_layers)
    theirs = gram_magnitudes(criterion.network, reference, cfg.style_layers)
    assert [w * m for w, m in zip(criterion.style_layer_weights, ours)] == pytest.approx(theirs)
    assert min(criterion.style_layer_weights) > 2  # the Scream's Grams are several times smaller
    cfg.style_norm = "none"
    assert build_criterion(cfg, scream).style_layer_weights == [1.0, 1.0]
    cfg.style_norm = "max"
    with pytest.raises(ValueError, match="loss.style_norm=max"):
        build_criterion(cfg, scream)


def test_a_paintings_own_weight_scales_its_style_loss_alone(starry_night):
    """A painting's weight (its style config's ``weight``) multiplies loss.style_weight for that painting
    only: a one-style criterion is the loss with style_weight times it (painting_loss, what reference
    keys record), a criterion of several paintings scales that painting's row alone, and a model's
    recorded weight is in the objective it is judged by (models without one: 1)."""
    from omegaconf import OmegaConf

    from conftest import REPO, STYLES
    from fststyle.training.criterion import build_criterion, model_criterion, painting_loss, painting_weight
    from fststyle.images import load_tensor
    from fststyle.model_file import PACKAGED_MODEL, load_model

    cfg = OmegaConf.load(REPO / "conf" / "loss" / "vgg19.yaml")
    cfg.weights = "random"
    painting, other = load_tensor(starry_night, 64)[None], load_tensor(STYLES / "the_scream.jpg", 64)[None]
    image, photo = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(1)), torch.rand(1, 3, 48, 48)

    def criterion(*args):  # the same random loss network each time
        torch.manual_seed(0)
        return build_criterion(*args)

    plain, heavy = criterion(cfg, painting)(image, photo), criterion(cfg, painting, [2.5])(image, photo)
    assert heavy["style"].item() == pytest.approx(2.5 * plain["style"].item(), rel=1e-5) and heavy["content"] == plain["content"]
    same = criterion(painting_loss(cfg, 2.5), painting)(image, photo)
    assert same["loss"].item() == pytest.approx(heavy["loss"].item(), rel=1e-5) and cfg.style_weight == 1.0  # cfg itself unchanged
    assert build_criterion(cfg, [painting, other], [1.0, 3.0]).style_layer_weights == [[1.0] * 4, [3.0] * 4]

    _, metadata = load_model(PACKAGED_MODEL)
    assert model_criterion(metadata, "udnie").style_weight == 6.0  # the weight it was trained at (conf/style/udnie.yaml)
    metadata["styles"] = [{k: v for k, v in e.items() if k != "weight"} for e in metadata["styles"]]
    assert model_criterion(metadata, "udnie").style_weight == 1.0  # a model recorded before painting weights: 1
    metadata["styles"] = [{**e, "weight": 2.5} if e["name"] == "udnie" else e for e in metadata["styles"]]
    assert model_criterion(metadata, "udnie").style_weight == 2.5 and model_criterion(metadata, "great_wave").style_weight == 1.0
    for bad in (0, -1, float("inf"), float("nan"), "abc", True):
        with pytest.raises(ValueError, match="style x: weight must be a number > 0"):
            painting_weight({"name": "x", "weight": bad})
