"""The presets that adapt a training run to its machine and its start (``cpu_preset``, ``gpu_preset``,
``packaged_preset`` ... in conf/train.yaml): applied only to the keys the user did not set on the command line."""

from __future__ import annotations

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from fststyle.model_file import PACKAGED_MODEL_NAME, model_architecture, model_metadata
from fststyle.styles import resolve_style_image, sha256_of, style_entries
from fststyle.training.criterion import held_styles
from fststyle.training.surgery import style_starts
from fststyle.inference.stylizer import native_bf16_cpu, pick_device


def override_keys(overrides: list[str]) -> set[str]:
    """The config keys that Hydra overrides set (``key=value``, ``+key=value``, ``~key``)."""
    return {o.split("=", 1)[0].lstrip("+~") for o in overrides}


def command_line_keys() -> set[str]:
    """The config keys the user set on the command line."""
    return override_keys(HydraConfig.get().overrides.task)


def fits_packaged(cfg: DictConfig) -> bool:
    """Whether the packaged model can start this run: the whole network trains (train=all), against the
    paintings (not a teacher's pictures), and it has the packaged model's architecture."""
    packaged = model_architecture(PACKAGED_MODEL_NAME)
    return cfg.train == "all" and not cfg.get("teacher") and all(cfg.model.get(key) == value for key, value in packaged.items() if key != "num_styles")


def packaged_holds_every_painting(cfg: DictConfig) -> bool:
    """Whether the packaged model holds every painting the run trains (the same files, by sha256): then
    each starts from its own trained scales and shifts (fststyle.training.surgery.style_starts)."""
    paintings = [{"sha256": sha256_of(resolve_style_image(e.image, e.name, e.get("sha256"), cfg.style_cache))} for e in style_entries(cfg)]
    return None not in style_starts(paintings, held_styles(model_metadata(PACKAGED_MODEL_NAME)))


def preset_machine(cfg: DictConfig) -> str | None:
    """Which machine preset a run takes: "gpu" on a CUDA GPU with trainer=default/gpu/ddp, "cpu" when
    training falls on the CPU with trainer=default/cpu, None otherwise (another trainer config)."""
    choice = HydraConfig.get().runtime.choices.get("trainer")
    accelerator = cfg.trainer.accelerator
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available() and choice in ("default", "gpu", "ddp"):
        return "gpu"
    if (accelerator == "cpu" or (accelerator == "auto" and pick_device("auto").type == "cpu")) and choice in ("default", "cpu"):
        return "cpu"
    return None


def apply_preset(cfg: DictConfig, given: set[str]) -> list[str]:
    """``gpu_preset`` or ``cpu_preset`` (with ``cpu_bf16_preset`` where the CPU has native bf16 and
    ``cpu_init_preset`` where the packaged model fits the network), as ``preset_machine`` picks; keys set
    by hand are left alone. Returns what was applied."""
    machine = preset_machine(cfg)
    if machine == "gpu":
        preset = cfg.gpu_preset
    elif machine == "cpu":
        preset = [*cfg.cpu_preset, *(cfg.cpu_bf16_preset if native_bf16_cpu() else []), *(cfg.cpu_init_preset if fits_packaged(cfg) else [])]
    else:
        return []
    return apply_items(cfg, preset, given)


def apply_packaged_presets(cfg: DictConfig, given: set[str], preset: list[str]) -> tuple[list[str], list[str]]:
    """When the packaged model starts the whole network (init=packaged): ``packaged_preset`` (its grid
    term), and where it holds every painting trained ``packaged_held_preset`` (a gentle rate) with, where
    the machine's ``preset`` (as applied) set the steps, ``cpu_held_preset`` (fewer of them). Returns the
    two lists applied."""
    if cfg.get("init") != "packaged" or not fits_packaged(cfg):
        return [], []
    term = apply_items(cfg, cfg.packaged_preset, given)
    if not packaged_holds_every_painting(cfg):
        return term, []
    preset_steps = "trainer.max_steps" in override_keys(preset)
    return term, apply_items(cfg, [*cfg.packaged_held_preset, *(cfg.cpu_held_preset if preset_steps else [])], given)


def apply_items(cfg: DictConfig, items: list[str], given: set[str]) -> list[str]:
    """Set each ``key=value`` of ``items`` whose key was not given on the command line, its value read as
    the command line reads it (3e-2 is a number); returns those set."""
    parser, applied = OverridesParser.create(), []
    for item in items:
        override = parser.parse_override(item)
        if override.key_or_group not in given:
            OmegaConf.update(cfg, override.key_or_group, override.value(), merge=False)
            applied.append(item)
    return applied
