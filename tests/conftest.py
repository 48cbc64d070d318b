import contextlib
import csv
import gc
import importlib
import io
import logging
import os
import signal
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

import pytest

# Two test workers share two cores: one thread per process (the workers and every command they start)
# instead of two each, which oversubscribed the cores (the suite ran 17% longer).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402  (after the thread count, which torch reads when it loads)
from omegaconf import DictConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "assets"
PHOTOS = SHARED / "photos"
STYLES = SHARED / "styles"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked slow first, each group in its own order: started early, a long test overlaps
    the short ones on the other worker instead of being the last thing the suite waits for."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


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


def run_cli(module: str, *args: str, env: dict | None = None, timeout: int = 300, expect: int = 0, cwd: Path | None = None,
            fresh_process: bool = False) -> subprocess.CompletedProcess:
    """Run ``python -m module args``; assert its exit status.

    The command runs inside this test process (``in_process``), which has imported torch, Lightning
    and Hydra already: a new Python spends 3-8 s importing them, most of the suite's time. A command
    given ``env`` (read when a process starts, as FSTSTYLE_MAX_PIXELS and the thread count are) runs in
    a new Python, as do those of ``fresh_process=True`` (DDP's launcher, process-wide state such as
    wandb's); FSTSTYLE_TEST_FRESH_PROCESS=1 runs every command so."""
    if env or fresh_process or os.environ.get("FSTSTYLE_TEST_FRESH_PROCESS") == "1":
        proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})}, cwd=cwd)
    else:
        proc = in_process(module, list(args), cwd)
    assert proc.returncode == expect, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def infer_on_the_quick_path(*args: str) -> subprocess.CompletedProcess:
    """``python -m fststyle.infer ARGS`` in a new Python that records its imports; asserts it took the
    quick path: it succeeded on onnxruntime, and imported neither PyTorch nor Hydra."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "fststyle.infer", *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "; onnxruntime, quick path)" in proc.stdout, proc.stderr[-2000:]
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "onnxruntime" in imported and not imported & {"torch", "hydra", "omegaconf", "pytorch_lightning"}
    return proc


def fresh_warnings() -> None:
    """A new Python's warning filters (not pytest's), its warnings printed on (captured) stderr."""
    warnings.resetwarnings()
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter("ignore", category)
    warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: sys.stderr.write(
        warnings.formatwarning(message, category, filename, lineno, line))


def in_process(module: str, args: list[str], cwd: Path | None) -> subprocess.CompletedProcess:
    """``python -m module args`` run here, as its console script runs it (``cli()``): its output captured, its exit status
    taken from SystemExit (an uncaught exception: its traceback and status 1, as Python does), and what
    a command may change in the process it owns put back afterwards (environment, working folder,
    logging, warnings filters, signal handlers, torch's thread count, grad mode and matmul precision)."""
    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd, saved_argv = dict(os.environ), os.getcwd(), sys.argv[:]
    saved_signals = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)}
    root = logging.getLogger()
    saved_logging = root.handlers[:], root.level, {name: (lg.handlers[:], lg.level, lg.propagate, lg.disabled)
                                                   for name, lg in logging.Logger.manager.loggerDict.items() if isinstance(lg, logging.Logger)}
    saved_torch = torch.get_num_threads(), torch.is_grad_enabled(), torch.get_float32_matmul_precision()
    if cwd is not None:
        os.chdir(cwd)
    sys.argv = [module, *args]
    code = 0
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            fresh_warnings()
            try:
                entry = importlib.import_module(module)
                (getattr(entry, "cli", None) or entry.main)()  # what its `if __name__ == "__main__"` calls
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
                if not isinstance(exit_.code, int | None):
                    print(exit_.code, file=sys.stderr)
            except Exception:  # noqa: BLE001  (what Python does with it: the traceback, status 1)
                traceback.print_exc()
                code = 1
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        for sig, handler in saved_signals.items():
            signal.signal(sig, handler)
        root.handlers[:], level, loggers = saved_logging[0], saved_logging[1], saved_logging[2]
        root.setLevel(level)
        for name, (handlers, lvl, propagate, disabled) in loggers.items():
            lg = logging.getLogger(name)
            lg.handlers[:], lg.level, lg.propagate, lg.disabled = handlers, lvl, propagate, disabled
        torch.set_num_threads(saved_torch[0])
        torch.set_grad_enabled(saved_torch[1])
        torch.set_float32_matmul_precision(saved_torch[2])
        gc.collect()
    return subprocess.CompletedProcess([sys.executable, "-m", module, *args], code, out.getvalue(), err.getvalue())


def tiny_args(run_dir: Path, photos_dir: Path, painting: Path, *extra: str) -> list[str]:
    """A training run of STEPS steps on 64 px crops of the shared photos, on the CPU, at a constant
    learning rate (``extra`` may set any of these keys again)."""
    return with_defaults([
        "trainer=cpu", "logger=csv", "data=folder", f"data.root={photos_dir}", "data.image_size=64", "data.batch_size=2",
        "data.num_workers=0", "data.sample_size=48", f"style.image={painting}", "style.name=starry_night", "style.size=128",
        f"trainer.max_steps={STEPS}", "trainer.log_every_n_steps=1", "sample_every=10", "checkpoint_every=10",
        f"hydra.run.dir={run_dir}", *extra,
    ], *CONSTANT_LR)


def train_config(*overrides: str) -> DictConfig:
    """conf/train.yaml composed with ``overrides`` and set as Hydra's config, as the train command sees it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from fststyle import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


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
