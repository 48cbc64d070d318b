"""The small packaged model (``model=packaged-small``): the six packaged paintings in a network a twentieth of
the packaged one's size, shipped as float16 PyTorch weights and as an ONNX copy that the quick path runs."""

import numpy as np
import pytest
import torch
from conftest import PHOTOS, infer_on_the_quick_path
from PIL import Image
from test_packaged import OBJECTIVE_128, SIX

from fststyle import MODELS_DIR
from fststyle.images import load_tensor, to_uint8
from fststyle.inference.stylizer import Stylizer
from fststyle.model_file import model_path

SMALL_ONNX = MODELS_DIR / "packaged_small.onnx"

# Its objective for each painting on dog.jpg at 128 px (a photo it never saw), fp32 on the CPU, measured when
# it was packaged (the packaged model's figures, for the same photo: test_packaged.OBJECTIVE_128).
OBJECTIVE_128_SMALL = {"starry_night": 224339.0, "great_wave": 526775.0, "the_scream": 448467.7,
                       "composition_vii": 202662.0, "shipwreck": 376254.5, "udnie": 337285.3}


@pytest.fixture(scope="module")
def small() -> Stylizer:
    return Stylizer.load("packaged-small", device="cpu", precision="fp32")


def test_the_small_model_is_the_one_measured(small):
    """The shipped file is scored, not read: each painting's objective on a photo it never saw is the figure
    recorded for it, below the photo's own; float16 weights, a width-8 network."""
    from fststyle.evaluation.quality import objective
    from fststyle.training.criterion import model_criterion

    path = model_path("packaged-small")
    assert path.stat().st_size <= 2**18 and SMALL_ONNX.stat().st_size <= 2**20  # a sixth of the packaged model's file at most
    payload = torch.load(path, weights_only=True)
    assert {v.dtype for v in payload["state_dict"].values() if v.is_floating_point()} == {torch.float16}
    assert payload["model"]["width"] == 8 and sum(p.numel() for p in small.module.parameters()) < 100_000
    assert small.styles == SIX
    photo = load_tensor(PHOTOS / "dog.jpg", 128)[None]
    got = {}
    for style in SIX:
        criterion = model_criterion(small.metadata, style)
        got[style] = objective(criterion, small.run(photo, style=style), photo)["total"]
    for style, value in OBJECTIVE_128_SMALL.items():
        assert got[style] == pytest.approx(value, rel=5e-3), got
        assert value < 0.9 * OBJECTIVE_128[style][1]  # below the photo's own objective (Composition VII: 0.87x at 128 px)


def test_its_onnx_copy_is_the_same_network(small):
    """The ONNX file the quick path runs holds the PyTorch file's weights: the same pictures, styles and blends."""
    import onnxruntime as ort

    from fststyle.blend import style_names
    from fststyle.inference.stylizer import OnnxNetwork

    onnx = OnnxNetwork(SMALL_ONNX, torch.device("cpu"))
    assert style_names(onnx.metadata) == SIX and isinstance(onnx.session, ort.InferenceSession)
    photo = load_tensor(PHOTOS / "chicago.jpg", 96)[None]
    for weights in (*torch.eye(6)[:, None], torch.tensor([[0.0, 0.6, 0.0, 0.0, 0.0, 0.4]])):
        with torch.inference_mode():
            expected = small.module(photo, weights)
        assert (onnx(photo, weights) - expected).abs().max().item() < 1e-4


def test_infer_packaged_small_takes_the_quick_path_without_pytorch(tmp_path, photos_dir, small):
    """``model=packaged-small`` for one photo runs its ONNX copy with onnxruntime, neither PyTorch nor Hydra
    imported, and writes the picture the PyTorch path makes in float32."""
    out = tmp_path / "small.png"
    infer_on_the_quick_path("model=packaged-small", "style=udnie", f"input={photos_dir / 'horses.jpg'}", f"output={out}", "size=96")
    expected = to_uint8(small.run(load_tensor(photos_dir / "horses.jpg", 96)[None], style="udnie")[0]).astype(np.int16)
    got = np.asarray(Image.open(out), dtype=np.int16)
    assert got.shape == expected.shape and np.abs(got - expected).max() <= 1
