"""The temporal regularisation (fststyle.training.temporal): what it measures, and that training uses and logs it."""

import csv
import math

import pytest
import torch
from conftest import REPO, run_cli, tiny_args

from fststyle.images import load_tensor
from fststyle.training.temporal import (LUMA, NOISE, SMOOTH_FLOW, SMOOTH_NOISE, SMOOTH_SHIFT, move, random_flow, random_grid_shift, random_motion,
                                       temporal_loss)


def test_motions_are_small_and_no_motion_changes_nothing(photos_dir):
    motion = random_motion(64, torch.Generator().manual_seed(0))
    angle = torch.atan2(motion[:, 1, 0], motion[:, 0, 0]).abs()
    assert angle.max() <= math.radians(1.0) + 1e-6 and motion[:, :, 2].abs().max() <= 0.02 and angle.std() > 0
    photo = load_tensor(photos_dir / "dog.jpg", 64)[None]
    identity = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    torch.testing.assert_close(move(photo, identity), photo, atol=1e-5, rtol=0)


def test_smooth_flows_shift_the_whole_picture_and_bend_it_smoothly():
    n, h, w = 32, 96, 128
    grid = random_flow(n, h, w, torch.Generator().manual_seed(0))
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    flow_x = (grid[..., 0] + 1) / 2 * w - 0.5 - xs  # back to pixels
    flow_y = (grid[..., 1] + 1) / 2 * h - 0.5 - ys
    shift = torch.stack([flow_x.mean((1, 2)), flow_y.mean((1, 2))], 1)
    assert shift.abs().max() <= SMOOTH_SHIFT + 2 * SMOOTH_FLOW and shift.std() > SMOOTH_SHIFT / 4  # global shifts of up to ~10 px
    local = flow_x - flow_x.mean((1, 2), keepdim=True)
    assert local.std() == pytest.approx(SMOOTH_FLOW, rel=0.3)  # a local field of about SMOOTH_FLOW px ...
    assert (local[:, :, 1:] - local[:, :, :-1]).abs().max() < 0.3  # ... that changes little from one pixel to the next


def test_grid_shifts_move_the_photo_by_whole_pixels_to_the_grids_other_places(photos_dir):
    """loss.temporal_motion=grid: each of the 15 other places on the 4-px grid, the photo moved exactly."""
    n, h, w = 64, 48, 64
    shifts = random_grid_shift(n, h, w, torch.Generator().manual_seed(0))[:, :, 2] * torch.tensor([w / 2, h / 2])
    places = {(round(dx), round(dy)) for dx, dy in shifts.tolist()}
    assert places == {(dx, dy) for dx in range(4) for dy in range(4)} - {(0, 0)}
    photo = load_tensor(photos_dir / "dog.jpg", 64)[None][..., :h, :w]
    moved = move(photo.expand(n, -1, -1, -1), random_grid_shift(n, h, w, torch.Generator().manual_seed(0)))
    for picture, (dx, dy) in zip(moved, shifts.round().int().tolist()):
        torch.testing.assert_close(picture[:, : h - dy, : w - dx], photo[0, :, dy:, dx:], atol=1e-5, rtol=0)


def test_the_grid_term_is_zero_for_a_shift_equivariant_network_and_sees_a_hatching(photos_dir):
    """No noise: the identity scores 0; a 4-px diagonal hatching added to every picture (tied to the
    grid, so it does not move with the photo) of amplitude A scores about 16/15 A^2: over the 15 places,
    3 moves along the hatching leave it in place, 8 by an odd step score A^2, 4 by 2 px 2 A^2."""
    photos = load_tensor(photos_dir / "dog.jpg", 96)[None][..., :64, :96].repeat(32, 1, 1, 1)
    assert temporal_loss(lambda x: x, photos, photos, torch.Generator().manual_seed(1), "grid").item() < 1e-10
    ys, xs = torch.meshgrid(torch.arange(64), torch.arange(96), indexing="ij")
    hatch = 0.05 * torch.cos(torch.pi / 2 * (xs - ys)).float()
    hatched = temporal_loss(lambda x: x + hatch, photos, photos + hatch, torch.Generator().manual_seed(1), "grid").item()
    assert hatched == pytest.approx(16 / 15 * 0.05**2, rel=0.25)


@pytest.mark.parametrize(("kind", "noise"), [("affine", NOISE), ("smooth", SMOOTH_NOISE)])
def test_the_loss_is_the_noise_for_a_stable_network_and_more_for_an_unstable_one(photos_dir, kind, noise):
    torch.manual_seed(0)
    photos = load_tensor(photos_dir / "dog.jpg", 96)[None].repeat(4, 1, 1, 1)
    # The identity moves with its input: only the noise remains.
    stable = temporal_loss(lambda x: x, photos, photos, torch.Generator().manual_seed(1), kind)
    assert stable.item() == pytest.approx(noise**2, rel=0.25)
    shaky = temporal_loss(lambda x: (x + 0.1 * torch.randn_like(x)), photos, photos, torch.Generator().manual_seed(1), kind)
    assert shaky.item() > 10 * stable.item()
    with pytest.raises(ValueError, match="unknown temporal motion"):
        temporal_loss(lambda x: x, photos, photos, torch.Generator(), "wobbly")


def test_the_difference_target_lets_the_output_follow_the_inputs_luminance_and_nothing_more(photos_dir):
    """loss.temporal_target=difference: a network whose output changes exactly as its input's luminance
    does (here: the luminance itself, in all three channels) pays nothing, where the steady target
    charges it the noise's luminance; a network that amplifies the input's changes pays for it."""
    photos = load_tensor(photos_dir / "dog.jpg", 96)[None].repeat(4, 1, 1, 1)
    luma = torch.tensor(LUMA).view(1, 3, 1, 1)

    def gray(x: torch.Tensor) -> torch.Tensor:
        return (x * luma).sum(1, keepdim=True).expand_as(x)

    def loss(net, target: str) -> float:
        return temporal_loss(net, photos, net(photos), torch.Generator().manual_seed(1), "affine", target).item()

    assert loss(gray, "difference") < 1e-10
    assert loss(gray, "steady") == pytest.approx(NOISE**2 * sum(c * c for c in LUMA), rel=0.25)
    assert loss(lambda x: 4 * gray(x), "difference") == pytest.approx(9 * loss(gray, "steady"), rel=0.1)  # (4 - 1)^2
    with pytest.raises(ValueError, match="unknown temporal target"):
        temporal_loss(gray, photos, photos, torch.Generator(), "affine", "still")


def test_the_training_step_adds_the_temporal_term_with_its_gradient(photos_dir, starry_night):
    """loss.temporal_weight=w: the step's loss is the perceptual loss plus w times the compound
    regularisation of this step's photos (computed here on its own, with the step's random numbers),
    and its gradient is the perceptual loss's plus w times the term's (the term is not detached)."""
    from omegaconf import OmegaConf

    from fststyle.training.module import StyleTransferModule
    from fststyle.net import TransformerNet
    from fststyle.training.criterion import build_criterion

    loss_cfg = OmegaConf.load(REPO / "conf" / "loss" / "vgg19.yaml")
    loss_cfg.weights = "random"
    criterion = build_criterion(loss_cfg, load_tensor(starry_night, 64)[None])
    weight, seed = 1e3, 7
    torch.manual_seed(0)
    module = StyleTransferModule(TransformerNet(width=8, num_residual=1), criterion, temporal_weight=weight, seed=seed)
    module.is_logging_step = lambda: False  # no trainer attached: nothing to log
    photos = load_tensor(photos_dir / "dog.jpg", 48)[None].repeat(2, 1, 1, 1)

    def gradient(loss: torch.Tensor) -> torch.Tensor:
        module.net.zero_grad()
        loss.backward()
        return torch.cat([p.grad.flatten() for p in module.net.parameters()])

    total = module.training_step(photos, 0)
    with_term = gradient(total)
    base = criterion(module.net(photos), photos)["loss"]
    base_grad = gradient(base)
    generator = torch.Generator().manual_seed(seed * 1_000_003 * 4099)  # step 0, rank 0, as the module seeds it
    term = temporal_loss(module.net, photos, module.net(photos), generator)
    term_grad = gradient(term)
    assert term.item() > 0 and total.item() == pytest.approx(base.item() + weight * term.item(), rel=1e-5)
    assert (weight * term_grad).norm() > 0.01 * base_grad.norm()  # the term moves the weights noticeably
    torch.testing.assert_close(with_term, base_grad + weight * term_grad, rtol=1e-3, atol=1e-6 * with_term.abs().max().item())


def test_fine_tuning_a_model_logs_the_temporal_term(tmp_path, photos_dir, starry_night, model_path):
    """Fine-tuning a trained model for video (init= plus the term, the frame-difference target) through
    the command: the term is logged every step, and the logged loss is content + style + weight x temporal."""
    run_dir = tmp_path / "run"
    run_cli("fststyle.train", *tiny_args(run_dir, photos_dir, starry_night, "trainer.max_steps=3", "sample_every=0",
                                          "loss.temporal_weight=1e6", "loss.temporal_target=difference",
                                          f"init={model_path}"))
    metadata = torch.load(run_dir / "export" / "starry_night.pth", weights_only=True)["metadata"]
    assert metadata["init"] == str(model_path) and metadata["loss"]["temporal_target"] == "difference"
    with open(run_dir / "csv" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/temporal")]
    assert len(rows) == 3 and all(float(r["train/temporal"]) > 0 for r in rows)
    for r in rows:
        parts = float(r["train/content"]) + float(r["train/style"]) + 1e6 * float(r["train/temporal"])
        assert float(r["train/loss"]) == pytest.approx(parts, rel=1e-4)
