"""``python -m fststyle.train style=starry_night [key=value ...]``: train one style, export it."""

from __future__ import annotations

import logging
import shutil
import sys
import warnings
from pathlib import Path

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities.exceptions import SIGTERMException

import fststyle
from fststyle import CONF_DIR
from fststyle.training.callbacks import QualityCurve, SampleGrid, SaveOnInterrupt, StepProgressBar, StopOnNonFinite, Throughput, TrainingRecord
from fststyle.training.checkpoint_io import checkpoint_to_resume
from fststyle.cli import check_choices, run_cli
from fststyle.training.criterion import build_criterion, held_styles, load_style_image, painting_loss, painting_weight
from fststyle.training.dashboard import build_logger, is_online
from fststyle.training.data import StyleDataModule
from fststyle.training.distillation import TeacherLoss
from fststyle.errors import UserError
from fststyle.losses import PerceptualLoss
from fststyle.net import TransformerNet
from fststyle.model_file import load_network, save_model, style_metadata, training_record
from fststyle.training.module import StyleTransferModule
from fststyle.training.presets import apply_items, apply_packaged_presets, apply_preset, command_line_keys, override_keys, preset_machine
from fststyle.styles import SAFE_NAME, resolve_style_image, sha256_of, style_entries
from fststyle.training.surgery import style_starts, train_only_new_styles, warm_start
from fststyle.training.temporal import MOTIONS, TARGETS
from fststyle.vgg import CONFIGS, layer_names

log = logging.getLogger("fststyle.train")


def validate(cfg: DictConfig) -> None:
    """Refuse bad values before any work starts (each as a one-line error)."""
    loss = cfg.loss
    names = set(layer_names(loss.arch)) if loss.arch in CONFIGS else set()
    unknown = sorted((set(loss.content_layers) | set(loss.style_layers)) - names)
    checks = [
        (loss.arch in CONFIGS, f"loss.arch={loss.arch} is not one of {', '.join(CONFIGS)}"),
        (all(w >= 0 for w in (loss.content_weight, loss.style_weight, loss.tv_weight, loss.temporal_weight)), "loss weights must be >= 0"),
        (not loss.style_layer_weights or all(w >= 0 for w in loss.style_layer_weights), "loss.style_layer_weights must be >= 0"),
        (loss.get("temporal_motion", "affine") in MOTIONS, f"loss.temporal_motion must be one of {', '.join(MOTIONS)}"),
        (loss.get("temporal_target", "steady") in TARGETS, f"loss.temporal_target must be one of {', '.join(TARGETS)}"),
        (not unknown, f"unknown layer(s) {', '.join(unknown)} for {loss.arch}; names look like relu2_2"),
        (cfg.optim.lr > 0, f"optim.lr must be > 0, got {cfg.optim.lr}"),
        (cfg.trainer.max_steps > 0, f"trainer.max_steps must be > 0, got {cfg.trainer.max_steps}"),
        (cfg.sample_every >= 0 and cfg.checkpoint_every >= 1, "sample_every must be >= 0 and checkpoint_every >= 1"),
        (cfg.checkpoint_keep >= -1, f"checkpoint_keep must be -1 (all) or >= 0, got {cfg.checkpoint_keep}"),
        (cfg.quality_every == "log" or (isinstance(cfg.quality_every, int) and cfg.quality_every >= 0),
         f"quality_every must be a step count >= 0 or log, got {cfg.quality_every}"),
        (cfg.quality_reference_steps >= 1, "quality_reference_steps must be >= 1"),
        (cfg.style.size >= 32, f"style.size must be >= 32, got {cfg.style.size}"),
        (SAFE_NAME.fullmatch(str(cfg.style.name)) is not None,
         f"style.name={cfg.style.name} must be a plain name (letters, digits, '.', '_', '-'): it names the run folder and the model file"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    for entry in style_entries(cfg):  # each painting's own weight (its style config's weight, or style.weight)
        painting_weight(entry)
    if cfg.train not in ("all", "norms"):
        raise ValueError(f"train={cfg.train} is not one of all, norms")
    if cfg.get("teacher") and (cfg.train != "all" or cfg.quality_every):
        raise ValueError("teacher= trains the whole network (train=all) and has no quality curve (quality_every=0): judge the model "
                         "written with scripts/quality_benchmark.py --model MODEL --style NAME")
    if cfg.train == "norms" and not (cfg.get("init") and cfg.get("styles")):
        raise ValueError("train=norms adds styles to a trained model: give init=MODEL and styles=[NEW,...] (and style.name=NAME)")


def check_disk_space(run_dir: Path, needed_mb: int = 200) -> None:
    free = shutil.disk_usage(run_dir).free // 2**20
    if free < needed_mb:
        raise UserError(f"only {free} MB free in {run_dir}: checkpoints and samples need about {needed_mb} MB; free some space or set hydra.run.dir")


def build(cfg: DictConfig) -> tuple[StyleTransferModule, StyleDataModule, list[Path]]:
    """The LightningModule and DataModule a config describes, and the style images' files (none when
    the network learns from a teacher)."""
    datamodule: StyleDataModule = instantiate(cfg.data)
    if cfg.get("teacher"):
        net, held, criterion = distilled(cfg)
        train_styles, style_paths = None, []
    else:
        net, held, train_styles, criterion, style_paths = painted(cfg)
    module = StyleTransferModule(net, criterion, lr=cfg.optim.lr, lr_scaling=cfg.optim.lr_scaling, batch_size=cfg.data.batch_size,
                                 channels_last=cfg.channels_last, compile=cfg.compile, config=OmegaConf.to_container(cfg, resolve=True),
                                 schedule=cfg.optim.schedule, warmup_steps=cfg.optim.warmup_steps, final_lr=cfg.optim.final_lr,
                                 held_styles=held, train_styles=train_styles, temporal_weight=cfg.loss.temporal_weight,
                                 temporal_motion=cfg.loss.temporal_motion, temporal_target=cfg.loss.temporal_target, seed=cfg.seed)
    return module, datamodule, style_paths


def painted(cfg: DictConfig) -> tuple[TransformerNet, list[dict], list[int] | None, PerceptualLoss, list[Path]]:
    """The network, the styles it holds, those that train, the loss network's objective and the
    paintings' files, for training against the paintings (the usual run)."""
    entries = style_entries(cfg)
    style_paths = [resolve_style_image(e.image, e.name, e.get("sha256"), cfg.style_cache) for e in entries]
    new = [{"name": e.name, "image": str(e.image), "sha256": sha256_of(path), "size": e.size, "weight": painting_weight(e)}
           for e, path in zip(entries, style_paths)]
    held, train_styles = new, None
    if cfg.get("init"):
        source, source_meta = load_network(cfg.init)
        old = held_styles(source_meta) if cfg.train == "norms" else []
        net = instantiate(cfg.model, num_styles=len(old) + len(new))
        # The old styles keep theirs; a painting the source holds starts from its own scales and shifts.
        warm_start(net, source, cfg.init, list(range(len(old))) + style_starts(new, held_styles(source_meta)))
        if old:  # a new style on top of a trained model: only its scales and shifts train
            clash = {s["name"] for s in old} & {s["name"] for s in new}
            if clash:
                raise ValueError(f"init={cfg.init} already holds {', '.join(sorted(clash))}; give the new styles other names")
            train_only_new_styles(net, len(old))
            held, train_styles = old + new, list(range(len(old), len(old) + len(new)))
    else:
        net = instantiate(cfg.model, num_styles=len(new))
    images = [load_style_image(path, e.size) for path, e in zip(style_paths, entries)]
    criterion = build_criterion(cfg.loss, images[0] if len(images) == 1 else images, [entry["weight"] for entry in new])
    return net, held, train_styles, criterion, style_paths


def distilled(cfg: DictConfig) -> tuple[TransformerNet, list[dict], TeacherLoss]:
    """teacher=MODEL: the network (holding the teacher's styles, in its order; from init= when given)
    and the objective of giving the teacher's pictures."""
    teacher, teacher_meta = load_network(cfg.teacher)
    held = held_styles(teacher_meta)
    net = instantiate(cfg.model, num_styles=len(held))
    if cfg.get("init"):
        source, source_meta = load_network(cfg.init)
        warm_start(net, source, cfg.init, style_starts(held, held_styles(source_meta)))
    return net, held, TeacherLoss(teacher, teacher_meta)


def quality_curve(cfg: DictConfig, module: StyleTransferModule, datamodule: StyleDataModule, run_dir: Path,
                  record: TrainingRecord) -> QualityCurve:
    """quality_every=N|log: the quality curve on the held-out photos (centre squares at
    data.sample_size) against the optimization from each photo and from noise, its references cached
    in ``<style_cache>/references``, its measurements appended to ``<run>/quality.jsonl``."""
    from fststyle.evaluation.quality import STARTS, reference_key

    if module.net.num_styles > 1:
        raise ValueError("quality_every= judges a one-style model; for several styles use scripts/quality_benchmark.py --style NAME")
    style = module.hparams.held_styles[0]
    files = datamodule.held_out_files()
    loss = OmegaConf.to_container(painting_loss(cfg.loss, style.get("weight", 1.0)))
    keys = {start: [reference_key(f, style["sha256"], cfg.data.sample_size, loss, style["size"], cfg.quality_reference_steps,
                                  cut="centre-square", start=start) for f in files] for start in STARTS}
    log.info("quality_every=%s: %d held-out photos against %d L-BFGS iterations from each photo and from noise (computed once, "
             "cached in %s/references); written to %s", cfg.quality_every, len(files), cfg.quality_reference_steps, cfg.style_cache,
             run_dir / "quality.jsonl")
    return QualityCurve(datamodule.sample_batch(), [f.name for f in files], keys, cfg.quality_every, cfg.quality_reference_steps,
                        Path(cfg.style_cache) / "references", run_dir / "quality.jsonl", record)


def sweep_grouped(logger: DictConfig | None) -> DictConfig | None:
    """The logger config, with the W&B runs of a sweep (hydra -m) grouped under the sweep folder's name."""
    hydra_cfg = HydraConfig.get()
    if logger is None or hydra_cfg.mode != RunMode.MULTIRUN or logger.get("_target_") != "pytorch_lightning.loggers.WandbLogger":
        return logger
    return OmegaConf.merge(logger, {"group": Path(hydra_cfg.sweep.dir).name})


def train(cfg: DictConfig) -> Path:
    """Run one training as configured; returns the exported model's path (on rank zero)."""
    given = command_line_keys()
    if "style.image" in given and "style.name" not in given:
        raise ValueError("style.image=... needs style.name=NAME too: the model and its run folder are named after it")
    if cfg.get("styles") and "style.name" not in given:
        raise ValueError("styles=[...] needs style.name=NAME too: the multi-style model and its run folder are named after it")
    machine = preset_machine(cfg)
    preset = apply_preset(cfg, given)
    term, gentle = apply_packaged_presets(cfg, given, preset)
    replaced = override_keys(gentle)  # a CPU preset key the held preset sets again is announced once, with the value that holds
    preset = [item for item in preset if override_keys([item]).isdisjoint(replaced)]
    if preset and machine == "gpu":
        log.info("GPU fast path: %s (give any of these keys to change it; gpu_preset=[] turns it off)", " ".join(preset))
    elif preset:
        log.warning("no GPU found: CPU preset %s (give any of these keys to change it; trainer=gpu to insist on a GPU)", " ".join(preset))
    if term:
        log.info("init=packaged: %s (the grid term against the packaged model's hatching; give either key to change it, "
                 "loss.temporal_weight=0 turns it off)", " ".join(term))
    if gentle:
        log.info("init=packaged holds every painting trained: %s (each starts from its own trained picture; give any of these keys to change it). "
                 "The packaged model already paints them with no training: python -m fststyle.infer style=NAME (names: python -m fststyle.styles)",
                 " ".join(gentle))
    if cfg.train == "norms" and (norms := apply_items(cfg, cfg.norms_preset, given)):
        log.info("train=norms: %s (give any of these keys to change it)", " ".join(norms))
    validate(cfg)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    check_disk_space(run_dir)
    ckpt_path = checkpoint_to_resume(cfg, run_dir)
    pl.seed_everything(cfg.seed, workers=True)

    module, datamodule, _ = build(cfg)
    logger = build_logger(sweep_grouped(cfg.logger), run_dir)
    samples = SampleGrid(datamodule.sample_batch(), run_dir / "samples", cfg.sample_every)
    # "step" ranks the step=N checkpoints by age: the newest checkpoint_keep of them stay.
    checkpoints = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="step={step}", auto_insert_metric_name=False,
                                  every_n_train_steps=cfg.checkpoint_every, save_last=True, monitor="step", mode="max",
                                  save_top_k=cfg.checkpoint_keep)
    interrupt = SaveOnInterrupt(run_dir / "checkpoints" / "last.ckpt")
    record = TrainingRecord()
    callbacks = [StopOnNonFinite(cfg.trainer.log_every_n_steps), checkpoints, samples, interrupt, Throughput(), StepProgressBar(), record]
    if cfg.quality_every:
        callbacks.append(quality_curve(cfg, module, datamodule, run_dir, record))
    trainer: pl.Trainer = instantiate(cfg.trainer, logger=logger, default_root_dir=str(run_dir), callbacks=callbacks)
    log.info("training %s on %d photos from %s; run folder %s", cfg.style.name, len(datamodule.train_files),
             ", ".join(map(str, datamodule.folders)), run_dir)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except SIGTERMException:
        where = f"saved {interrupt.saved}; continue with ckpt_path=last hydra.run.dir={run_dir}" if interrupt.saved else "nothing to save yet"
        print(f"stopped by a signal at step {trainer.global_step}: {where}", flush=True)
        sys.exit(143)

    if not trainer.is_global_zero:
        return run_dir
    if not module.weights_are_finite():
        raise FloatingPointError("the trained weights are NaN/inf: nothing exported. Try a lower optim.lr or loss weights")
    teacher_meta = module.criterion.metadata if isinstance(module.criterion, TeacherLoss) else None
    metadata = {
        # A one-item styles=[...] list records its own painting, not the style group's default.
        **style_metadata(cfg.style.name, module.hparams.held_styles),
        # A distilled network is judged (and fine-tuned) by its teacher's objective.
        "loss": teacher_meta["loss"] if teacher_meta else OmegaConf.to_container(cfg.loss, resolve=True),
        "steps": trainer.global_step,
        "image_size": cfg.data.image_size,
        "init": str(cfg.init) if cfg.get("init") else None,
        # How much training this model saw, across every resume (the training photos' count and folders).
        "training": {**record.record(trainer), "photos": len(datamodule.train_files), "photo_folders": [f.name for f in datamodule.folders],
                     **({"init_training": init_training} if cfg.get("init") and (init_training := training_record(cfg.init)) else {}),
                     **({"teacher": str(cfg.teacher), "teacher_training": teacher_meta.get("training")} if teacher_meta else {})},
        "fststyle_version": fststyle.__version__,
    }
    model_cfg = {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k != "_target_"}
    if module.net.num_styles > 1:
        model_cfg["num_styles"] = module.net.num_styles
    exported = save_model(run_dir / "export" / f"{cfg.style.name}.pth", module.net, model_cfg, metadata)
    if isinstance(logger, WandbLogger):
        import wandb

        if is_online(logger):
            artifact = wandb.Artifact(f"{cfg.style.name}-model", type="model", metadata=metadata)
            artifact.add_file(str(exported))
            logger.experiment.log_artifact(artifact)
        wandb.finish()  # now, so that the export line below stays the last one printed
    print(f"exported: {exported}", flush=True)
    return exported


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> None:
    # The frozen loss network is in eval mode on purpose.
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
    run_cli(lambda: train(cfg))


def cli() -> None:
    """``python -m fststyle.train`` and the ``fststyle-train`` command."""
    check_choices(CONF_DIR)
    main()


if __name__ == "__main__":
    cli()
