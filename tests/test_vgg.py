import logging
import urllib.error

import pytest
import torch
from torchvision import models

from fststyle import vgg
from fststyle.errors import UserError
from fststyle.images import load_tensor
from fststyle.vgg import LossNetwork, layer_names


def test_layer_names_follow_the_vgg_papers():
    names = layer_names("vgg19")
    assert names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert names.index("relu4_4") == 26 and names[-1] == "pool5" and len(names) == 37
    assert layer_names("vgg16").index("relu4_3") == 22  # torchvision's features[22]


def test_only_the_needed_layers_are_built_and_returned():
    net = LossNetwork("vgg19", ["relu1_2", "relu2_2"], "random")
    assert len(net.features) == layer_names("vgg19").index("relu2_2") + 1
    out = net(torch.rand(1, 3, 32, 32))
    assert set(out) == {"relu1_2", "relu2_2"}
    assert out["relu1_2"].shape == (1, 64, 32, 32) and out["relu2_2"].shape == (1, 128, 16, 16)
    assert set(net(torch.rand(1, 3, 32, 32), ["relu1_2"])) == {"relu1_2"}


def test_frozen():
    net = LossNetwork("vgg16", ["relu1_2"], "random")
    net.train()
    assert not net.training
    assert not any(p.requires_grad for p in net.parameters())


def test_unknown_layer_is_refused():
    with pytest.raises(ValueError, match="relu9_9"):
        LossNetwork("vgg19", ["relu9_9"], "random")


def test_bundled_is_vgg19_only():
    with pytest.raises(ValueError, match="loss.weights=torchvision"):
        LossNetwork("vgg16", ["relu1_2"], "bundled")


def test_random_weights_warn_loudly(caplog):
    with caplog.at_level(logging.WARNING):
        LossNetwork("vgg19", ["relu1_1"], "random")
    assert "RANDOM WEIGHTS" in caplog.text


def test_bundled_weights_are_real_trained_filters(photos_dir):
    """Trained VGG differs from a random one in two measurable ways:
    1. conv1_1 filters are smooth (oriented edges, colour blobs): horizontally adjacent weights are
       strongly correlated (0.54 for the bundled file); i.i.d. random init gives about 0.
    2. Deep features respond to natural image structure: relu4_3 has clearly more energy for a real
       photo than for the same pixels shuffled (1.6x for the bundled file); random weights: about 1x.
    """
    photo = load_tensor(photos_dir / "chicago.jpg").unsqueeze(0)
    photo = torch.nn.functional.interpolate(photo, size=(128, 128), mode="bilinear", antialias=True)
    shuffled = photo.flatten(2)[..., torch.randperm(128 * 128)].view_as(photo)

    def fingerprint(net):
        k = net.features[0].weight
        corr = torch.corrcoef(torch.stack([k[..., :-1].flatten(), k[..., 1:].flatten()]))[0, 1].item()
        energy = net(photo)["relu4_3"].pow(2).mean() / net(shuffled)["relu4_3"].pow(2).mean()
        return corr, energy.item()

    corr, energy = fingerprint(LossNetwork("vgg19", ["relu4_3"], "bundled"))
    rand_corr, rand_energy = fingerprint(LossNetwork("vgg19", ["relu4_3"], "random"))
    assert corr > 0.4 and abs(rand_corr) < 0.15
    assert energy > 1.3 and rand_energy < 1.15


def test_bundled_load_is_deterministic():
    a = vgg.load_bundled_state_dict()
    b = vgg.load_bundled_state_dict()
    assert a.keys() == b.keys() and len(a) == 32
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["0.weight"].shape == (64, 3, 3, 3) and a["0.weight"].dtype == torch.float32


def test_caffe_normalization_of_the_bundled_source():
    net = LossNetwork("vgg19", ["relu1_1"], "bundled")
    rgb = torch.tensor([1.0, 0.5, 0.0]).view(1, 3, 1, 1)
    bgr = net.normalize(rgb).flatten().tolist()
    assert bgr == pytest.approx([0.0 - 103.939, 127.5 - 116.779, 255.0 - 123.68])


def test_torchvision_source_maps_its_state_dict(monkeypatch):
    """Everything up to the network: a (randomly initialised) torchvision VGG16 state dict stands in
    for the download and must land in the same layers."""
    reference = models.vgg16(weights=None).state_dict()
    monkeypatch.setattr(models.VGG16_Weights.IMAGENET1K_V1.__class__, "get_state_dict", lambda self, **kw: reference)
    net = LossNetwork("vgg16", ["relu2_2"], "torchvision")
    assert torch.equal(net.features[2].weight, reference["features.2.weight"])
    assert net.input_norm == "imagenet"


def test_torchvision_offline_names_the_bundled_weights(monkeypatch):
    def offline(self, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(models.VGG19_Weights.IMAGENET1K_V1.__class__, "get_state_dict", offline)
    with pytest.raises(UserError, match="loss.weights=bundled"):
        LossNetwork("vgg19", ["relu1_2"], "torchvision")


def test_state_dict_path_source(tmp_path):
    state = models.vgg19(weights=None).state_dict()
    torch.save(state, tmp_path / "vgg.pth")
    net = LossNetwork("vgg19", ["relu1_2"], str(tmp_path / "vgg.pth"))
    assert torch.equal(net.features[0].weight, state["features.0.weight"])
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        LossNetwork("vgg19", ["relu1_2"], str(tmp_path / "nope.pth"))
