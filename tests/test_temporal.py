"""The temporal regularisation (fststyle.temporal): what it measures, and that training uses and logs it."""

import csv
import math

import pytest
import torch
from conftest import run_cli, tiny_args

from fststyle.images import load_tensor
from fststyle.temporal import NOISE, move, random_motion, temporal_loss


def test_motions_are_small_and_no_motion_changes_nothing(photos_dir):
    motion = random_motion(64, torch.Generator().manual_seed(0))
    angle = torch.atan2(motion[:, 1, 0], motion[:, 0, 0]).abs()
    assert angle.max() <= math.radians(1.0) + 1e-6 and motion[:, :, 2].abs().max() <= 0.02 and angle.std() > 0
    photo = load_tensor(photos_dir / "dog.jpg", 64)[None]
    identity = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    torch.testing.assert_close(move(photo, identity), photo, atol=1e-5, rtol=0)


def test_the_loss_is_the_noise_for_a_stable_network_and_more_for_an_unstable_one(photos_dir):
    torch.manual_seed(0)
    photos = load_tensor(photos_dir / "dog.jpg", 96)[None].repeat(4, 1, 1, 1)
    stable = temporal_loss(lambda x: x, photos, photos, torch.Generator().manual_seed(1))  # the identity moves with its input: only the noise remains
    assert stable.item() == pytest.approx(NOISE**2, rel=0.25)
    shaky = temporal_loss(lambda x: (x + 0.1 * torch.randn_like(x)), photos, photos, torch.Generator().manual_seed(1))
    assert shaky.item() > 10 * stable.item()


def test_fine_tuning_a_model_adds_and_logs_the_temporal_term(tmp_path, photos_dir, starry_night, model_path):
    """Fine-tuning a trained model for video (init= plus the term): every step's loss is content +
    style + weight x temporal, each logged."""
    run_dir = tmp_path / "run"
    run_cli("fststyle.train", *tiny_args(run_dir, photos_dir, starry_night, "trainer.max_steps=3", "sample_every=0",
                                          "loss.temporal_weight=1e6", f"init={model_path}"))
    assert torch.load(run_dir / "export" / "starry_night.pth", weights_only=True)["metadata"]["init"] == str(model_path)
    with open(run_dir / "csv" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/temporal")]
    assert len(rows) == 3
    for r in rows:
        parts = float(r["train/content"]) + float(r["train/style"]) + 1e6 * float(r["train/temporal"])
        assert float(r["train/loss"]) == pytest.approx(parts, rel=1e-4)
