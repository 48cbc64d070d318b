"""What the benchmarks share: the device's name, timing with device synchronisation, and the training
config of a command line."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} threads"


def time_fn(fn, device: torch.device, warmup: int, repeats: int) -> list[float]:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1000)
    return times


def training_config(overrides: list[str]) -> tuple[DictConfig, list[str]]:
    """The config `python -m fststyle.train` would run with these overrides (presets applied, those of a
    packaged start too: its grid term runs the network twice a step)."""
    from fststyle.training.presets import apply_packaged_presets, apply_preset, override_keys

    conf = Path(__file__).resolve().parents[2] / "conf"
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(conf), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]  # registered above; the run config itself is saved without it, as in training
    given = override_keys(overrides)
    applied = apply_preset(cfg, given)
    term, gentle = apply_packaged_presets(cfg, given, applied)
    return cfg, [*applied, *term, *gentle]
