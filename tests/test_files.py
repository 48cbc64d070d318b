"""Atomic writes: an error or a killed process leaves the old file or the whole new one, never half."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from fststyle.training.checkpoint_io import AtomicCheckpointIO
from fststyle.files import atomic_write

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.mark.parametrize("sync", [False, True])
def test_a_failed_write_keeps_the_old_file(tmp_path, sync):
    path = tmp_path / "model.pth"
    path.write_bytes(b"old")
    with pytest.raises(OSError, match="disk full"), atomic_write(path, sync=sync) as tmp:
        tmp.write_bytes(b"half")
        raise OSError("disk full")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.pth"]
    with atomic_write(path, sync=sync) as tmp:
        tmp.write_bytes(b"new")
    assert path.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["model.pth"]


WRITER = """
import sys, torch
from fststyle.training.checkpoint_io import AtomicCheckpointIO
io, path = AtomicCheckpointIO(), sys.argv[1]
io.save_checkpoint({"step": 0}, path)
print("first checkpoint written", flush=True)
while True:  # large checkpoints, until killed
    io.save_checkpoint({"step": 1, "weights": torch.ones(32 * 2**20)}, path)
"""


def other_filesystem_than(path: Path) -> Path:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(path).st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the test folder")
    return shm


def test_a_checkpoint_killed_while_being_written_keeps_the_last_good_one(tmp_path):
    """The system temp folder on another filesystem than the run folder (a tmpfs /tmp, a cluster's
    node-local $TMPDIR), and a SIGKILL in the middle of writing last.ckpt: the old checkpoint must
    still load; the half-written file is the temporary one beside it, never last.ckpt itself."""
    temp = other_filesystem_than(tmp_path) / f"fststyle-test-{os.getpid()}"
    temp.mkdir()
    folder, target = tmp_path / "checkpoints", tmp_path / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(temp)})
    try:
        assert proc.stdout.readline().strip() == "first checkpoint written"
        first_size, deadline = target.stat().st_size, time.time() + 60
        # Kill as soon as the second checkpoint is being written: any other file in the folder that
        # has data, or last.ckpt itself changing.
        while not any(p.stat().st_size > 2**20 for p in folder.iterdir() if p != target) and target.stat().st_size == first_size:
            assert time.time() < deadline and proc.poll() is None, "the second checkpoint was never written"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
        assert torch.load(target, weights_only=True)["step"] == 0
        partial = [p.name for p in folder.iterdir() if p != target]
        assert len(partial) == 1 and re.fullmatch(r"\.last\.[0-9a-f]{8}\.part\.ckpt", partial[0]), partial
    finally:
        proc.kill()
        for p in temp.iterdir():
            p.unlink()
        temp.rmdir()


@pytest.mark.parametrize("option", ["default", "cpu", "debug", "gpu", "ddp"])
def test_every_trainer_writes_checkpoints_atomically(option):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"trainer={option}"])
    assert [p._target_ for p in cfg.trainer.plugins] == ["fststyle.training.checkpoint_io.AtomicCheckpointIO"]
    if cfg.trainer.accelerator in ("cpu", "auto") and cfg.trainer.get("strategy", "auto") == "auto":
        trainer = instantiate(cfg.trainer, accelerator="cpu", logger=False, enable_checkpointing=False)
        assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)


def test_write_json_is_strict_json(tmp_path):
    """No Infinity or NaN (which strict parsers reject): they become null; the file is written atomically."""
    from fststyle.files import write_json

    def refuse(name):
        raise ValueError(name)

    path = write_json(tmp_path / "m.json", {"a": float("inf"), "b": [1.5, float("nan")], "c": {"d": -float("inf"), "e": 2}})
    assert json.loads(path.read_text(), parse_constant=refuse) == {"a": None, "b": [1.5, None], "c": {"d": None, "e": 2}}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
