import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Two test workers share two cores: one thread per process (the workers and every command they start)
# instead of two each, which oversubscribed the cores (the suite ran 17% longer).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402  (after the thread count, which torch reads when it loads)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "assets"
PHOTOS = SHARED / "photos"
STYLES = SHARED / "styles"


@pytest.fixture(autouse=True)
def _small_and_quiet(monkeypatch):
    torch.manual_seed(0)
    monkeypatch.setenv("WANDB_MODE", "disabled")


@pytest.fixture(scope="session")
def photos_dir() -> Path:
    assert PHOTOS.is_dir(), f"test photos missing: {PHOTOS} (../shared beside the checkout)"
    return PHOTOS


@pytest.fixture(scope="session")
def starry_night() -> Path:
    path = STYLES / "starry_night.jpg"
    assert path.is_file(), f"test painting missing: {path}"
    return path


def photo_folder(tmp_path: Path, photos_dir: Path, count: int = 4) -> Path:
    """A folder of the first ``count`` shared JPEG photos (tmp_path/photos)."""
    root = tmp_path / "photos"
    root.mkdir()
    for path in sorted(photos_dir.glob("*.jpg"))[:count]:
        (root / path.name).write_bytes(path.read_bytes())
    return root


STEPS = 30


def run_cli(module: str, *args: str, env: dict | None = None, timeout: int = 300, expect: int = 0, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m module args``; assert its exit status."""
    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=cwd)
    assert proc.returncode == expect, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def tiny_args(run_dir: Path, photos_dir: Path, painting: Path, *extra: str) -> list[str]:
    """A training run of STEPS steps on 64 px crops of the shared photos, on the CPU, at a constant
    learning rate (``extra`` may set any of these keys again)."""
    return with_defaults([
        "trainer=cpu", "logger=csv", "data=folder", f"data.root={photos_dir}", "data.image_size=64", "data.batch_size=2",
        "data.num_workers=0", "data.sample_size=48", f"style.image={painting}", "style.name=starry_night", "style.size=128",
        f"trainer.max_steps={STEPS}", "trainer.log_every_n_steps=1", "sample_every=10", "checkpoint_every=10",
        f"hydra.run.dir={run_dir}", *extra,
    ], *CONSTANT_LR)


def with_defaults(args: list[str], *defaults: str) -> list[str]:
    """``defaults`` for the keys ``args`` does not set (a key given twice is an error to Hydra)."""
    keys = {a.split("=", 1)[0] for a in args}
    return [*args, *(d for d in defaults if d.split("=", 1)[0] not in keys)]


def read_metric(run_dir: Path, name: str) -> list[float]:
    """Every value of ``name`` in a run's CSV log, in step order."""
    with open(run_dir / "csv" / "metrics.csv") as f:
        return [float(row[name]) for row in csv.DictReader(f) if row.get(name)]


# A constant learning rate from the first step in the tiny test runs (the CPU preset's warm-up lasts
# longer than they do).
# A fresh network (the CPU preset would start the default network from the packaged model).
CONSTANT_LR = ("optim.schedule=constant", "optim.warmup_steps=0", "init=null")


@pytest.fixture(scope="session")
def trained(tmp_path_factory, photos_dir, starry_night):
    """One short real training run shared by the tests: (run folder, finished process)."""
    run_dir = tmp_path_factory.mktemp("run")
    proc = run_cli("fststyle.train", *tiny_args(run_dir, photos_dir, starry_night))
    return run_dir, proc


@pytest.fixture(scope="session")
def model_path(trained) -> Path:
    return trained[0] / "export" / "starry_night.pth"
