"""Training checkpoints: Lightning's writer made atomic, and which checkpoint a run resumes from (a module
of its own, so that inference never imports Lightning)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf

from fststyle.files import atomic_write
from fststyle.styles import style_entries

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer with a temporary file beside the checkpoint.

    Lightning's own writes the checkpoint to the system temp folder and moves it into place. When that
    folder is another filesystem (a tmpfs /tmp, node-local $TMPDIR on clusters) the move is a copy:
    a job killed during it (a preemption's SIGKILL after the grace period) leaves a truncated
    ``last.ckpt`` that cannot be resumed, and the temporary file fills the temp folder."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):  # remote storage: Lightning's fsspec path
            return super().save_checkpoint(checkpoint, path, storage_options)
        with atomic_write(path, sync=True) as tmp:
            torch.save(checkpoint, tmp)


def checkpoint_step(path: Path) -> int | None:
    """The step a checkpoint was saved at, or None when it cannot be read (mapped, not read whole)."""
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["global_step"])
    except Exception:  # truncated, foreign or no checkpoint: not a candidate
        return None


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The run folder's checkpoint with the most steps: ``checkpoints/last.ckpt`` (written every
    ``checkpoint_every`` steps and on SIGTERM) or a ``hpc_ckpt_N.ckpt`` (written by Lightning on SLURM's
    requeue signal, up to ``checkpoint_every`` steps newer). On a tie the newer file."""
    candidates = [run_dir / "checkpoints" / "last.ckpt", *run_dir.glob("hpc_ckpt_*.ckpt")]
    steps = {path: checkpoint_step(path) for path in candidates if path.is_file()}
    readable = [path for path, step in steps.items() if step is not None]
    return max(readable, key=lambda p: (steps[p], p.stat().st_mtime_ns), default=None)


# What a resumed run must share with its checkpoint: the style Grams, the loss and the network come
# from the checkpoint, so a different painting or list of paintings, loss, architecture or set of
# trained parameters would train one thing and name another. (Data, schedule and speed settings may change.)
RESUME_MUST_MATCH = ("style.name", "style.image", "style.size", "style.weight", "styles", "train", "loss", "model")
# Keys added to those sections after the first release, with the value a checkpoint without them meant.
ADDED_KEYS = {"style.weight": 1.0, "loss.style_norm": "none", "loss.temporal_motion": "affine", "loss.temporal_target": "steady"}


def config_differences(saved: dict, current: dict, keys: tuple[str, ...] = RESUME_MUST_MATCH) -> list[str]:
    """``key: saved -> current`` for each of ``keys`` (dotted; whole sections compared leaf by leaf)
    where the two resolved configs differ."""

    absent = object()  # a key the config does not have: no leaf, so ADDED_KEYS can give its old meaning

    def leaves(value: object, prefix: str) -> dict[str, object]:
        if value is absent:
            return {}
        if isinstance(value, dict):
            return {k: v for key, sub in value.items() for k, v in leaves(sub, f"{prefix}.{key}").items()}
        return {prefix: value}

    def lookup(config: dict, key: str) -> object:
        for part in key.split("."):
            config = config.get(part, absent) if isinstance(config, dict) else absent
        return config

    differences = []
    for key in keys:
        old, new = leaves(lookup(saved, key), key), leaves(lookup(current, key), key)
        old = {k: v for k, v in ADDED_KEYS.items() if k in new and k not in old} | old
        differences += [f"{k}: {old.get(k)} -> {new.get(k)}" for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
    return differences


def painting_differences(saved_styles: list[dict] | None, cfg: DictConfig) -> list[str]:
    """``styles.NAME.weight: saved -> current`` (and ``.size``) for each painting of a run of several
    styles whose own weight or Gram size differs from what its checkpoint trained with. They come from
    conf/style/NAME.yaml, not from the run's config: an edited style config would otherwise change the
    objective of a resumed run without a word. (A one-style run compares style.weight and style.size.)"""
    if not cfg.get("styles") or not saved_styles:
        return []
    saved = {entry["name"]: entry for entry in saved_styles}
    differences = []
    for entry in style_entries(cfg):
        old = saved.get(entry.name, {})  # a painting the checkpoint lacks: the `styles` list differs already
        for key, meant in (("weight", 1.0), ("size", entry.get("size"))):  # checkpoints before weights: 1
            before, now = old.get(key, meant), entry.get(key, meant)
            if old and before != now:
                differences.append(f"styles.{entry.name}.{key}: {before} -> {now}")
    return differences


def checkpoint_to_resume(cfg: DictConfig, run_dir: Path) -> str | None:
    """The checkpoint ``ckpt_path`` names, checked to be readable and of this run's style, loss and
    network. ``last``: this run folder's newest checkpoint if there is one (a requeued or restarted job
    continues; a new one starts from scratch, or from ``init=``). A checkpoint found wins over ``init=``:
    a fine-tuning job that is restarted continues where it stopped."""
    if cfg.ckpt_path is None:
        return None
    if cfg.ckpt_path == "last":
        path = newest_checkpoint(run_dir)
        if path is None:
            log.info("ckpt_path=last: no checkpoint in %s yet, starting from scratch", run_dir)
            return None
        log.info("resuming from %s%s", path, " (init= is not used: the checkpoint holds the trained weights)" if cfg.get("init") else "")
    else:
        path = Path(cfg.ckpt_path)
        if not path.is_file():
            raise FileNotFoundError(f"ckpt_path not found: {path.resolve()}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True, mmap=True)  # mapped, not read: Lightning reads it
        if "state_dict" not in saved:
            raise KeyError("state_dict")
        saved_config = saved["hyper_parameters"]["config"]
    except Exception as err:
        raise ValueError(f"ckpt_path={path} is not a readable training checkpoint (truncated or foreign: {type(err).__name__})") from err
    differences = config_differences(saved_config, OmegaConf.to_container(cfg, resolve=True))
    differences += painting_differences(saved["hyper_parameters"].get("held_styles"), cfg)
    if differences:
        raise ValueError(f"ckpt_path={path} was trained with another setup ({'; '.join(differences)}): resume with the same "
                         "style, loss and model, or start a new run")
    return str(path)
