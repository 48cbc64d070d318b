"""Many processes give the same model as one; interrupted runs continue exactly.

How the order of images is made identical: fststyle.training.data.EpochSampler draws each epoch's permutation
from (seed, epoch) alone and cuts it into global batches of batch_size x processes; rank r takes slice
r of each global batch, and each photo's random crop is seeded by (seed, epoch, photo). So 2 processes
x batch 2 see exactly the images, crops and steps of 1 process x batch 4, and DDP's gradient average
over the ranks equals the single process's batch mean.
"""

import csv
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
import conftest
from conftest import CONSTANT_LR, REPO, read_metric, with_defaults

from fststyle import Stylizer
from fststyle.training.data import EpochSampler
from fststyle.images import load_tensor


@pytest.fixture(autouse=True)
def _threads_as_users_run(monkeypatch):
    """These runs use torch's default thread count (one per core), not the suite's one per process: the
    comparison of 2 processes with 1 holds to 1e-5 on the weights there, but with one thread each a
    different summation order in the convolutions gives near-zero gradients other rounding, which Adam
    turns into weight differences of up to 6.5e-4 on 3.6% of the weights."""
    monkeypatch.setenv("OMP_NUM_THREADS", str(os.cpu_count() or 1))


def run_cli(*args, **kwargs):
    """A process of its own: DDP's launcher starts its ranks as new processes of the command, and the
    thread count above is read when a process starts (the single-process resume tests, which compare
    runs of one thread count, call conftest.run_cli)."""
    return conftest.run_cli(*args, **kwargs, fresh_process=True)


def steps_of(sampler: EpochSampler) -> list[list[tuple[int, int]]]:
    items = list(sampler)
    return [items[i : i + sampler.batch_size] for i in range(0, len(items), sampler.batch_size)]


def test_global_batches_do_not_depend_on_the_number_of_processes():
    single = steps_of(EpochSampler(21, 4, 0, 1, seed=3))
    ranks = [steps_of(EpochSampler(21, 2, r, 2, seed=3)) for r in range(2)]
    assert len(single) == 5 and all(len(r) == 5 for r in ranks)  # 21 // 4 global batches, the rest dropped
    for step in range(5):
        assert ranks[0][step] + ranks[1][step] == single[step]  # same images and crop seeds, in order


def test_epochs_differ_and_skip_resumes_mid_epoch():
    s = EpochSampler(20, 4, seed=0)
    first = list(s)
    s.set_epoch(1)
    second = list(s)
    assert sorted(i for i, _ in first) == sorted(i for i, _ in second) and first != second
    s.set_epoch(1)
    s.skip(3)
    assert len(s) == 5 * 4 and list(s) == second[12:]  # the length is always a whole epoch
    assert list(s) == second  # a skip holds for one epoch


def test_repeat_lists_each_photo_that_many_times_with_its_own_crops():
    s = EpochSampler(5, 3, seed=0, repeat=3)
    items = list(s)
    assert len(items) == len(s) == 15 and s.batches_per_epoch == 5  # one epoch: 15 items, not 5 // 3 batches
    assert sorted(i for i, _ in items) == sorted(list(range(5)) * 3)  # every photo three times
    assert len({seed for _, seed in items}) == 15  # each time its own random square
    with pytest.raises(ValueError, match="data.repeat must be >= 1"):
        EpochSampler(5, 3, repeat=0)


def args_for(run_dir, photos_dir, painting, batch, steps, *extra):
    # The layout pinned: trainer=cpu's preset trains channels last, trainer=ddp's runs have no preset, and the
    # two layouts sum in other orders (0.1% apart in the loss after 3 steps), which is not what these tests compare.
    return with_defaults(["trainer.accelerator=cpu", "trainer.precision=32-true", "channels_last=false", "logger=csv", "data=folder", f"data.root={photos_dir}",
            "data.image_size=32", f"data.batch_size={batch}", "data.num_workers=0", "data.sample_size=32", f"style.image={painting}",
            "style.name=sn", "style.size=64", f"trainer.max_steps={steps}", "trainer.log_every_n_steps=1", "sample_every=0",
            "checkpoint_every=3", f"hydra.run.dir={run_dir}", *extra], *CONSTANT_LR)


def losses(run_dir) -> list[float]:
    return read_metric(run_dir, "train/loss")


def weights(run_dir) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "export" / "sn.pth", weights_only=True)["state_dict"]


# The shift of each residual block's last instance norm adds a per-channel constant to the residual
# stream, which the next instance norm removes again: the output does not depend on it, its gradient is
# zero up to rounding, and Adam turns that rounding noise into steps of +-lr. Across different
# process counts (different summation order) these parameters drift apart without changing the model.
FUNCTIONALLY_INERT = re.compile(r"residuals\.\d+\.body\.2\.bias")


def adam_means(run_dir) -> dict[str, torch.Tensor]:
    """Adam's running mean of each parameter's gradient (exp_avg) in the run's last checkpoint, by parameter
    name, the functionally inert ones left out."""
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    state = checkpoint["optimizer_states"][0]["state"]
    names = [k.removeprefix("net.") for k in checkpoint["state_dict"] if k.startswith("net.")]  # the optimizer's order
    assert len(names) == len(state)
    return {n: state[i]["exp_avg"] for i, n in enumerate(names) if not FUNCTIONALLY_INERT.fullmatch(n)}


def assert_same_weights(a, b, atol, skip_inert=False):
    assert a.keys() == b.keys()
    keys = [k for k in a if not (skip_inert and FUNCTIONALLY_INERT.fullmatch(k))]
    assert len(keys) > 0.8 * len(a)
    worst, key = max(((a[k].float() - b[k].float()).abs().max().item(), k) for k in keys)
    assert worst <= atol, f"largest weight difference {worst} ({key})"


def assert_same_model(run_a, run_b, photos_dir):
    """The same weights (but the inert ones) and the same pictures, up to rounding as Adam amplifies it:
    its first steps are about lr x sign(gradient), so a weight whose gradient is near zero moves by up to
    2 lr more or less when the sums' rounding differs. On an AVX2 CPU (2026-12-05) 5% of the weights
    were more than 1e-5 apart after 3 steps (none beyond 3 lr) and the pictures 2.4e-3 apart at most; a
    run on other data or with unaveraged gradients is apart almost everywhere."""
    a, b = weights(run_a), weights(run_b)
    assert_same_weights(a, b, 3e-3, skip_inert=True)
    diffs = torch.cat([(a[k].float() - b[k].float()).abs().flatten() for k in a if not FUNCTIONALLY_INERT.fullmatch(k)])
    assert (diffs <= 1e-5).float().mean() >= 0.9, f"{(diffs > 1e-5).sum().item()} of {diffs.numel()} weights apart"
    photo = load_tensor(photos_dir / "stata.jpg", 96)[None]
    a, b = (Stylizer.load(r / "export" / "sn.pth", device="cpu", precision="fp32").run(photo) for r in (run_a, run_b))
    assert (a - b).abs().max() < 1 / 255  # under one 8-bit step


@pytest.mark.slow
def test_two_processes_match_one(tmp_path, photos_dir, starry_night):
    """gloo on the CPU: 2 processes x batch 2 == 1 process x batch 4 over the first 3 steps.
    Tolerance: float32 sums in another order differ by ~1e-7 relative; 1e-4 relative on the losses, the
    weights and pixels as assert_same_model allows. (Over many steps such rounding differences grow, as
    in any two runs that sum in different orders.)"""
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    run_cli("fststyle.train", "trainer=cpu", *args_for(single, photos_dir, starry_night, 4, 3))
    run_cli("fststyle.train", "trainer=ddp", "trainer.devices=2", *args_for(ddp, photos_dir, starry_night, 2, 3))
    assert losses(ddp) == pytest.approx(losses(single), rel=1e-4) and len(losses(single)) == 3
    assert_same_model(ddp, single, photos_dir)
    # Adam's steps do not depend on the gradients' scale, so the weights cannot tell averaged gradients from
    # summed ones; its running mean of the gradients can (2x apart when summed). Measured 1e-4-7e-3 apart.
    ours, theirs = adam_means(ddp), adam_means(single)
    assert ours.keys() == theirs.keys() and len(ours) > 40
    for name, mean in theirs.items():
        assert (ours[name] - mean).norm() <= 2e-2 * mean.norm(), name


@pytest.mark.slow
def test_resume_is_exact_under_ddp(tmp_path, photos_dir, starry_night):
    """2 processes training two styles: resumed from the checkpoint written at step 3 (mid-epoch: 17
    photos / (2 x 2) = 4 steps an epoch) to 6 == 6 steps in one go, to the last bit. (A preempted run
    resumes from such a periodic checkpoint; stopping at max_steps and resuming is test_resume_is_exact's.)"""
    whole, split = tmp_path / "whole", tmp_path / "split"
    ddp = ["trainer=ddp", "trainer.devices=2", f"styles=[{starry_night},{starry_night.with_name('the_scream.jpg')}]"]
    run_cli("fststyle.train", *ddp, *args_for(whole, photos_dir, starry_night, 2, 6))
    at_3 = whole / "checkpoints" / "step=3.ckpt"
    assert torch.load(at_3, weights_only=True)["global_step"] == 3
    run_cli("fststyle.train", *ddp, *args_for(split, photos_dir, starry_night, 2, 6, f"ckpt_path='{at_3}'"))
    held = torch.load(split / "export" / "sn.pth", weights_only=True)["metadata"]["styles"]
    assert [s["name"] for s in held] == ["starry_night", "the_scream"]
    assert_same_weights(weights(split), weights(whole), 0.0)
    assert len(losses(whole)) == 6 and losses(split) == losses(whole)[3:]  # steps 4-6 only: resumed, not restarted


def test_resume_is_exact(tmp_path, photos_dir, starry_night):
    """Interrupted after 5 steps (mid-epoch: 17 photos / batch 4 = 4 steps an epoch; mid-warm-up of the
    learning rate; random-scale crops and flips; the temporal term's random motions) and resumed to 10 == 10 steps in one go, to the last bit."""
    whole, split = tmp_path / "whole", tmp_path / "split"
    recipe = ["data.crop_scale=[0.4,1.0]", "data.flip=true", "optim.warmup_steps=8", "loss.temporal_weight=1e5"]
    conftest.run_cli("fststyle.train", "trainer=cpu", *args_for(whole, photos_dir, starry_night, 4, 10, *recipe))
    conftest.run_cli("fststyle.train", "trainer=cpu", *args_for(split, photos_dir, starry_night, 4, 5, "checkpoint_every=5", *recipe))
    ckpt = torch.load(split / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 5 and "rng_states" in ckpt and ckpt["optimizer_states"]
    assert ckpt["lr_schedulers"][0]["last_epoch"] == 5
    conftest.run_cli("fststyle.train", "trainer=cpu", *args_for(split, photos_dir, starry_night, 4, 10, "ckpt_path=last", *recipe))
    assert_same_weights(weights(split), weights(whole), 0.0)
    assert losses(split)[-5:] == losses(whole)[-5:]


def test_sigterm_saves_a_checkpoint_that_resumes(tmp_path, photos_dir, starry_night):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "fststyle.train", "trainer=cpu",
           *args_for(run_dir, photos_dir, starry_night, 2, 10_000, "sample_every=2", "checkpoint_every=10000")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while not (run_dir / "samples" / "step_000002.jpg").exists():
        assert proc.poll() is None and time.time() < deadline, "training did not get going"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert "stopped by a signal at step" in out and "ckpt_path=last" in out
    assert "weights_only" not in out + err  # the whole training state is saved, and asked for, not defaulted to
    step = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert step >= 2 and not (run_dir / "export").exists()
    run_cli("fststyle.train", "trainer=cpu", *args_for(run_dir, photos_dir, starry_night, 2, step + 2, "ckpt_path=last"))
    assert torch.load(run_dir / "export" / "sn.pth", weights_only=True)["metadata"]["steps"] == step + 2


def test_a_requeued_slurm_job_continues_from_the_newest_checkpoint(tmp_path, photos_dir, starry_night):
    """SLURM's requeue signal (SIGUSR1) makes Lightning write hpc_ckpt_1.ckpt into the run folder and
    call `scontrol requeue`; the node then goes (SIGKILL). The requeued job (same run folder,
    ckpt_path=last, as scripts/slurm_train.sh runs it) must continue from that checkpoint, not from
    checkpoints/last.ckpt, which is up to checkpoint_every steps older."""
    run_dir, bin_dir = tmp_path / "run", tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path / 'scontrol.args'}\n")
    (bin_dir / "scontrol").chmod(0o755)
    slurm = {"SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1", "SLURM_JOB_NAME": "fststyle", "SLURM_JOB_ID": "4242",
             "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NODELIST": "127.0.0.1",
             "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    args = ["trainer=cpu", *args_for(run_dir, photos_dir, starry_night, 2, 10_000, "sample_every=1", "checkpoint_every=6", "ckpt_path=last")]
    proc = subprocess.Popen([sys.executable, "-m", "fststyle.train", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, **slurm})
    deadline = time.time() + 180
    while not (run_dir / "samples" / "step_000007.jpg").exists():  # past the checkpoint at step 6, 5 steps before the next
        assert proc.poll() is None and time.time() < deadline, "training did not get going"
        time.sleep(0.1)
    proc.send_signal(signal.SIGUSR1)
    while not (tmp_path / "scontrol.args").exists():
        assert proc.poll() is None and time.time() < deadline, "no requeue"
        time.sleep(0.1)
    proc.kill()
    proc.wait(30)
    assert (tmp_path / "scontrol.args").read_text().split() == ["requeue", "4242"]
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    hpc = torch.load(run_dir / "hpc_ckpt_1.ckpt", weights_only=True)["global_step"]
    assert hpc > last

    # The same command line (scripts/slurm_train.sh reruns it), with a nearer end.
    requeued = subprocess.run([sys.executable, "-m", "fststyle.train", *args, f"trainer.max_steps={hpc + 2}"],
                              capture_output=True, text=True, timeout=180, env={**os.environ, **slurm})
    assert requeued.returncode == 0, requeued.stderr[-2000:]
    assert f"resuming from {run_dir / 'hpc_ckpt_1.ckpt'}" in requeued.stdout + requeued.stderr
    assert torch.load(run_dir / "export" / "sn.pth", weights_only=True)["metadata"]["steps"] == hpc + 2
    with open(run_dir / "csv" / "metrics.csv") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f) if r.get("train/loss")]
    assert len(steps) == 2  # the resumed run's log: its two steps; from last.ckpt it would train steps last+1..hpc again


NAN_ON_ONE_RANK = """
import runpy
from fststyle.training.module import StyleTransferModule

original = StyleTransferModule.training_step


def training_step(self, batch, batch_idx):  # rank 1 alone sees an infinite loss, in the step checked at step 4
    loss = original(self, batch, batch_idx)
    return loss * float("inf") if self.global_rank == 1 and self.global_step == 3 else loss


StyleTransferModule.training_step = training_step
# As `python -m fststyle.train` (Hydra finds conf/ from its file); this script stays sys.argv[0], so
# the DDP processes that Lightning starts run it too, patched.
runpy.run_module("fststyle.train", run_name="__main__", alter_sys=False)
"""


def test_a_non_finite_loss_on_one_rank_stops_every_rank(tmp_path, photos_dir, starry_night):
    """DDP, 2 gloo processes, the loss infinite on rank 1 only: both ranks stop at the same checked
    step with the one-line error, instead of rank 0 waiting forever in the next all-reduce."""
    script = tmp_path / "train_nan.py"
    script.write_text(NAN_ON_ONE_RANK)
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(script), "trainer=ddp", "trainer.devices=2",
                           *args_for(run_dir, photos_dir, starry_night, 2, 50, "trainer.log_every_n_steps=2", "checkpoint_every=100")],
                          capture_output=True, text=True, timeout=240, cwd=REPO)
    # Rank 0 (this process) never sees inf itself: its exit status 2 is the one-line stop both ranks
    # agreed on (stopping alone, rank 1 would leave it in the next all-reduce: a hang or a gloo error).
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    expected = ("error: the loss is inf at step 4: training stopped", "error: the loss of another process (of 2) is NaN/inf at step 4: training stopped")
    assert errors and all(line.startswith(expected) for line in errors), proc.stderr[-3000:]  # which rank prints first varies
    assert "Traceback" not in proc.stderr and not (run_dir / "export").exists()


def test_ddp_does_not_broadcast_buffers_every_step():
    """The buffers (style Grams, input constants) are the same on every rank and never change, so
    trainer=ddp asks DistributedDataParallel not to send them from rank 0 before each step."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from pytorch_lightning.strategies import DDPStrategy

    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["trainer=ddp"])
    trainer = instantiate(cfg.trainer, accelerator="cpu", devices=2, logger=False, enable_checkpointing=False)
    assert isinstance(trainer.strategy, DDPStrategy) and trainer.strategy._ddp_kwargs == {"broadcast_buffers": False}
