"""``python -m fststyle.train style=starry_night [key=value ...]``: train one style, export it."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import Logger, WandbLogger

import fststyle
from fststyle.cli import run_cli
from fststyle.data import StyleDataModule
from fststyle.export import save_model
from fststyle.images import load_tensor
from fststyle.losses import PerceptualLoss
from fststyle.module import SampleGrid, StepProgressBar, StyleTransferModule, Throughput
from fststyle.styles import resolve_style_image, sha256_of
from fststyle.vgg import LossNetwork

log = logging.getLogger("fststyle.train")


def has_accelerator() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return torch.cuda.is_available() or (mps is not None and mps.is_available())


def command_line_keys() -> set[str]:
    """The config keys the user set on the command line (``key=value``, ``+key=value``, ``~key``)."""
    return {o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task}


def apply_cpu_preset(cfg: DictConfig, given: set[str]) -> list[str]:
    """On the CPU with trainer=default/cpu, apply ``cfg.cpu_preset`` except keys set by hand."""
    choice = HydraConfig.get().runtime.choices.get("trainer")
    on_cpu = cfg.trainer.accelerator == "cpu" or (cfg.trainer.accelerator == "auto" and not has_accelerator())
    if choice not in ("default", "cpu") or not on_cpu:
        return []
    applied = []
    for item in cfg.cpu_preset:
        key, value = item.split("=", 1)
        if key not in given:
            OmegaConf.update(cfg, key, yaml.safe_load(value), merge=False)
            applied.append(item)
    return applied


def wandb_logged_in() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def build_logger(cfg: DictConfig | None, run_dir: Path) -> Logger | bool:
    if cfg is None:
        return False
    if cfg.get("offline") == "auto":
        cfg.offline = os.environ.get("WANDB_MODE") in ("offline", "dryrun", "disabled") or not wandb_logged_in()
    return instantiate(cfg, save_dir=str(run_dir))


def build_criterion(cfg: DictConfig, style_image: torch.Tensor) -> PerceptualLoss:
    layers = list(dict.fromkeys([*cfg.content_layers, *cfg.style_layers]))
    network = LossNetwork(cfg.arch, layers, str(cfg.weights), cfg.input_norm)
    return PerceptualLoss(
        network,
        style_image,
        content_layers=list(cfg.content_layers),
        style_layers=list(cfg.style_layers),
        style_layer_weights=None if cfg.style_layer_weights is None else list(cfg.style_layer_weights),
        content_weight=cfg.content_weight,
        style_weight=cfg.style_weight,
        tv_weight=cfg.tv_weight,
    )


def train(cfg: DictConfig) -> Path:
    """Run one training as configured; returns the exported model's path (on rank zero)."""
    given = command_line_keys()
    if "style.image" in given and "style.name" not in given:
        raise ValueError("style.image=... needs style.name=NAME too: the model and its run folder are named after it")
    preset = apply_cpu_preset(cfg, given)
    if preset:
        log.warning("no GPU found: CPU preset %s (give any of these keys to change it; trainer=gpu to insist on a GPU)", " ".join(preset))
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    pl.seed_everything(cfg.seed, workers=True)

    style_path = resolve_style_image(cfg.style.image, cfg.style.name, cfg.style.get("sha256"), cfg.style_cache)
    datamodule: StyleDataModule = instantiate(cfg.data)
    net = instantiate(cfg.model)
    criterion = build_criterion(cfg.loss, load_tensor(style_path, cfg.style.size)[None])
    module = StyleTransferModule(net, criterion, lr=cfg.optim.lr, config=OmegaConf.to_container(cfg, resolve=True))

    logger = build_logger(cfg.logger, run_dir)
    samples = SampleGrid(datamodule.sample_batch(), run_dir / "samples", cfg.sample_every)
    checkpoints = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="step={step}", auto_insert_metric_name=False,
                                  every_n_train_steps=cfg.checkpoint_every, save_last=True, save_top_k=1)
    trainer: pl.Trainer = instantiate(cfg.trainer, logger=logger, default_root_dir=str(run_dir),
                                      callbacks=[checkpoints, samples, Throughput(), StepProgressBar()])
    log.info("training %s on %d photos from %s; run folder %s", cfg.style.name, len(datamodule.train_files), datamodule.root, run_dir)
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)

    if not trainer.is_global_zero:
        return run_dir
    metadata = {
        "style_name": cfg.style.name,
        "style_image": str(cfg.style.image),
        "style_sha256": sha256_of(style_path),
        "loss": OmegaConf.to_container(cfg.loss, resolve=True),
        "steps": trainer.global_step,
        "image_size": cfg.data.image_size,
        "fststyle_version": fststyle.__version__,
    }
    model_cfg = {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k != "_target_"}
    exported = save_model(run_dir / "export" / f"{cfg.style.name}.pth", net, model_cfg, metadata)
    if isinstance(logger, WandbLogger):
        import wandb

        if not cfg.logger.offline:
            artifact = wandb.Artifact(f"{cfg.style.name}-model", type="model", metadata=metadata)
            artifact.add_file(str(exported))
            logger.experiment.log_artifact(artifact)
        wandb.finish()  # now, so that the export line below stays the last one printed
    print(f"exported: {exported}", flush=True)
    return exported


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    run_cli(lambda: train(cfg))


if __name__ == "__main__":
    main()
