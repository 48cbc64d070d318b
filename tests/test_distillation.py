"""Distillation (``teacher=MODEL``): a network learns to give a trained model's pictures."""

import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import read_metric, run_cli, tiny_args

from fststyle.model_file import load_model
from fststyle.net import TransformerNet
from fststyle.training.distillation import TeacherLoss


def test_the_teacher_loss_is_the_l1_distance_of_pixels_and_edges_to_the_teachers_picture_in_each_style():
    torch.manual_seed(0)
    teacher = TransformerNet(width=8, num_residual=1, num_styles=2)
    with torch.no_grad():  # two styles that differ (a fresh network's are all alike)
        for p in teacher.parameters():
            p.add_(0.3 * torch.randn_like(p))
    loss = TeacherLoss(teacher)
    photos, styles = torch.rand(2, 3, 32, 32), torch.tensor([1, 0])
    with torch.no_grad():
        target = teacher(photos, F.one_hot(styles, 2).float())
    same = loss(target, photos, styles)
    assert same["loss"].item() == 0.0
    shifted = loss(target + 0.1, photos, styles)  # a constant offset: pixels off by 0.1, edges unchanged
    assert shifted["pixel"].item() == pytest.approx(0.1, abs=1e-6) and shifted["edges"].item() == pytest.approx(0.0, abs=1e-6)
    assert loss(target, photos, styles.flip(0))["loss"].item() > 0.01  # each item against its own style's picture
    student = copy.deepcopy(teacher).requires_grad_(True)
    with torch.no_grad():
        student.decoder[-1][-1].weight.mul_(1.5)
    loss(student(photos, F.one_hot(styles, 2).float()), photos, styles)["loss"].backward()
    assert all(p.grad is None for p in teacher.parameters()) and any(p.grad is not None for p in student.parameters())
    assert loss.train().network.training is False  # the teacher stays in eval mode


def test_a_distilled_network_holds_the_teachers_styles_and_is_judged_by_its_objective(tmp_path, photos_dir, starry_night):
    run = tmp_path / "run"
    args = tiny_args(run, photos_dir, starry_night, "teacher=packaged", "model=johnson_small", "style.name=packaged_small",
                     "trainer.max_steps=12", "data.batch_size=6", "data.image_size=48", "optim.lr=3e-3",
                     "loss.style_weight=7")  # not the teacher's: the model records the teacher's
    run_cli("fststyle.train", *args)
    student, meta = load_model(run / "export" / "packaged_small.pth")
    _, teacher_meta = load_model("packaged")
    assert (student.width, student.num_styles) == (16, 6)
    assert [s["name"] for s in meta["styles"]] == [s["name"] for s in teacher_meta["styles"]]
    assert meta["loss"] == teacher_meta["loss"] and meta["training"]["teacher"] == "packaged"
    assert meta["training"]["teacher_training"]["steps"] == teacher_meta["training"]["steps"]
    losses = read_metric(run, "train/loss")
    assert len(losses) == 12 and sum(losses[-3:]) < 0.8 * sum(losses[:3])  # it learns the teacher's pictures
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert saved and not any(k.startswith("criterion.") for k in saved)  # the teacher is not in the checkpoints


def test_a_teacher_with_train_norms_is_one_line(tmp_path, photos_dir, starry_night):
    proc = run_cli("fststyle.train", *tiny_args(tmp_path / "run", photos_dir, starry_night, "teacher=packaged", "train=norms",
                                                "init=packaged", "styles=[great_wave]"), expect=2)
    assert "teacher= trains the whole network" in proc.stderr
