"""``python -m fststyle.train style=starry_night [key=value ...]``: train one style, export it."""

from __future__ import annotations

import logging
import shutil
import sys
import warnings
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities.exceptions import SIGTERMException

import fststyle
from fststyle import CONF_DIR
from fststyle.callbacks import QualityCurve, SampleGrid, SaveOnInterrupt, StepProgressBar, StopOnNonFinite, Throughput
from fststyle.cli import check_choices, run_cli
from fststyle.dashboard import build_logger, is_online
from fststyle.data import StyleDataModule
from fststyle.errors import UserError
from fststyle.model_file import load_network, save_model, style_metadata
from fststyle.images import load_tensor
from fststyle.losses import PerceptualLoss, gram
from fststyle.module import StyleTransferModule
from fststyle.net import ConditionalInstanceNorm2d, TransformerNet
from fststyle.styles import PAINTINGS, SAFE_NAME, STYLE_CONFIGS, resolve_style_image, sha256_of, style_name
from fststyle.stylizer import pick_device
from fststyle.temporal import MOTIONS
from fststyle.vgg import CONFIGS, LossNetwork, layer_names

log = logging.getLogger("fststyle.train")


def override_keys(overrides: list[str]) -> set[str]:
    """The config keys that Hydra overrides set (``key=value``, ``+key=value``, ``~key``)."""
    return {o.split("=", 1)[0].lstrip("+~") for o in overrides}


def command_line_keys() -> set[str]:
    """The config keys the user set on the command line."""
    return override_keys(HydraConfig.get().overrides.task)


def native_bf16_cpu() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated
    and slower than float32."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def apply_preset(cfg: DictConfig, given: set[str]) -> list[str]:
    """``cpu_preset`` (and ``cpu_bf16_preset`` where the CPU has native bf16) on the CPU with
    trainer=default/cpu, ``gpu_preset`` on a CUDA GPU with trainer=default/gpu/ddp; keys set by hand
    are left alone. Returns what was applied."""
    choice = HydraConfig.get().runtime.choices.get("trainer")
    accelerator = cfg.trainer.accelerator
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available() and choice in ("default", "gpu", "ddp"):
        preset = cfg.gpu_preset
    elif (accelerator == "cpu" or (accelerator == "auto" and pick_device("auto").type == "cpu")) and choice in ("default", "cpu"):
        preset = [*cfg.cpu_preset, *(cfg.cpu_bf16_preset if native_bf16_cpu() else [])]
    else:
        return []
    return apply_items(cfg, preset, given)


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


STYLE_NORMS = ("none", "gram")
NORM_REFERENCE = ("starry_night.jpg", 512)  # loss.style_norm=gram: the painting (packaged) and size every style is scaled to


def gram_magnitudes(network: LossNetwork, image: torch.Tensor, layers: list[str]) -> list[float]:
    """The mean square of each layer's Gram matrix of ``image``: the scale of that layer's style loss."""
    with torch.no_grad():
        feats = network(image, layers)
    return [float(gram(feats[layer]).pow(2).mean()) for layer in layers]


def build_criterion(cfg: DictConfig, style_image: torch.Tensor | list[torch.Tensor]) -> PerceptualLoss:
    """The training loss of ``cfg`` (the loss group) against one style image or several."""
    layers = list(dict.fromkeys([*cfg.content_layers, *cfg.style_layers]))
    network = LossNetwork(cfg.arch, layers, str(cfg.weights), cfg.input_norm)
    style_layers = list(cfg.style_layers)
    images = [style_image] if isinstance(style_image, torch.Tensor) else style_image
    base = list(cfg.style_layer_weights) if cfg.style_layer_weights is not None else [1.0] * len(style_layers)
    rows = [base] * len(images)
    norm = cfg.get("style_norm", "none")
    if norm not in STYLE_NORMS:
        raise ValueError(f"loss.style_norm={norm} is not one of {', '.join(STYLE_NORMS)}")
    if norm == "gram" and len(base) == len(style_layers):
        # Paintings' Grams differ in magnitude by up to 10x per layer, so one style_weight means another
        # strength for each. Scaled per layer to the reference painting's magnitude, weight 1 means the
        # strength it has for the reference (Starry Night) for every painting.
        name, size = NORM_REFERENCE
        reference = gram_magnitudes(network, load_tensor(PAINTINGS / name, size)[None], style_layers)
        rows = [[w * r / max(t, 1e-12) for w, r, t in zip(base, reference, gram_magnitudes(network, image, style_layers))]
                for image in images]
    weights = rows[0] if isinstance(style_image, torch.Tensor) else rows
    return PerceptualLoss(
        network,
        style_image,
        content_layers=list(cfg.content_layers),
        style_layers=style_layers,
        style_layer_weights=weights,
        content_weight=cfg.content_weight,
        style_weight=cfg.style_weight,
        tv_weight=cfg.tv_weight,
    )


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
RESUME_MUST_MATCH = ("style.name", "style.image", "style.size", "styles", "train", "loss", "model")


def config_differences(saved: dict, current: dict, keys: tuple[str, ...] = RESUME_MUST_MATCH) -> list[str]:
    """``key: saved -> current`` for each of ``keys`` (dotted; whole sections compared leaf by leaf)
    where the two resolved configs differ."""

    def leaves(value: object, prefix: str) -> dict[str, object]:
        if isinstance(value, dict):
            return {k: v for key, sub in value.items() for k, v in leaves(sub, f"{prefix}.{key}").items()}
        return {prefix: value}

    def lookup(config: dict, key: str) -> object:
        for part in key.split("."):
            config = config.get(part) if isinstance(config, dict) else None
        return config

    differences = []
    for key in keys:
        old, new = leaves(lookup(saved, key), key), leaves(lookup(current, key), key)
        differences += [f"{k}: {old.get(k)} -> {new.get(k)}" for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
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
    if differences:
        raise ValueError(f"ckpt_path={path} was trained with another setup ({'; '.join(differences)}): resume with the same "
                         "style, loss and model, or start a new run")
    return str(path)


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
        (not unknown, f"unknown layer(s) {', '.join(unknown)} for {loss.arch}; names look like relu2_2"),
        (cfg.optim.lr > 0, f"optim.lr must be > 0, got {cfg.optim.lr}"),
        (cfg.trainer.max_steps > 0, f"trainer.max_steps must be > 0, got {cfg.trainer.max_steps}"),
        (cfg.sample_every >= 0 and cfg.checkpoint_every >= 1, "sample_every must be >= 0 and checkpoint_every >= 1"),
        (cfg.checkpoint_keep >= -1, f"checkpoint_keep must be -1 (all) or >= 0, got {cfg.checkpoint_keep}"),
        (cfg.quality_every >= 0 and cfg.quality_reference_steps >= 1, "quality_every must be >= 0 and quality_reference_steps >= 1"),
        (cfg.style.size >= 32, f"style.size must be >= 32, got {cfg.style.size}"),
        (SAFE_NAME.fullmatch(str(cfg.style.name)) is not None,
         f"style.name={cfg.style.name} must be a plain name (letters, digits, '.', '_', '-'): it names the run folder and the model file"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    if cfg.train not in ("all", "norms"):
        raise ValueError(f"train={cfg.train} is not one of all, norms")
    if cfg.train == "norms" and not (cfg.get("init") and cfg.get("styles")):
        raise ValueError("train=norms adds styles to a trained model: give init=MODEL and styles=[NEW,...] (and style.name=NAME)")


def check_disk_space(run_dir: Path, needed_mb: int = 200) -> None:
    free = shutil.disk_usage(run_dir).free // 2**20
    if free < needed_mb:
        raise UserError(f"only {free} MB free in {run_dir}: checkpoints and samples need about {needed_mb} MB; free some space or set hydra.run.dir")


def load_style_image(path: Path, size: int) -> torch.Tensor:
    try:
        return load_tensor(path, size)[None]
    except Exception as err:  # a corrupt download or a file that is no image
        raise ValueError(f"style image {path} cannot be read ({err}); check style.image") from err


def held_styles(metadata: dict) -> list[dict]:
    """The styles a model holds, as recorded in its metadata (name, image, sha256, size each)."""
    if metadata.get("styles"):
        return [dict(entry) for entry in metadata["styles"]]
    return [{"name": metadata.get("style_name"), "image": metadata.get("style_image"), "sha256": metadata.get("style_sha256"),
             "size": metadata.get("style_size")}]


def model_criterion(metadata: dict, style: str | None = None, style_cache: str | Path = "data/styles") -> PerceptualLoss:
    """The training objective a model was trained on (its recorded loss and painting): for ``style`` of a
    model of several styles, else its first. Raises ValueError for a style the model does not hold."""
    entries = held_styles(metadata)
    entry = next((e for e in entries if style is None or e["name"] == style), None)
    if entry is None:
        raise ValueError(f"style {style}: the model holds {', '.join(e['name'] for e in entries)}")
    painting = resolve_style_image(entry["image"], entry["name"], entry.get("sha256"), style_cache)
    return build_criterion(OmegaConf.create(metadata["loss"]), load_style_image(painting, entry.get("size") or 512))


def conditional_norm_params(net: TransformerNet) -> list[str]:
    """The state-dict names of the per-style scales and shifts."""
    return [f"{name}.{p}" for name, m in net.named_modules() if isinstance(m, ConditionalInstanceNorm2d) for p in ("weight", "bias")]


def warm_start(net: TransformerNet, source: TransformerNet, path: str | Path, add_styles: bool = False) -> None:
    """Load the weights of ``source`` (the model at ``path``) into ``net``, refusing, in one line, a
    model of another architecture. ``add_styles``: ``net`` holds more styles than ``source``; the
    source's styles keep their scales and shifts, the new ones start from their mean."""
    ours, theirs = net.state_dict(), source.state_dict()
    if add_styles:
        for key in conditional_norm_params(net):
            old = theirs.get(key)
            if old is not None and old.shape[-1] == ours[key].shape[-1]:
                old = old if old.dim() == 2 else old[None]
                theirs[key] = torch.cat([old, old.mean(0, keepdim=True).expand(ours[key].shape[0] - old.shape[0], -1)])
    misfits = sorted(k for k in ours.keys() | theirs.keys() if k not in ours or k not in theirs or ours[k].shape != theirs[k].shape)
    if misfits:
        first = misfits[0]
        shapes = " vs ".join("x".join(map(str, d[first].shape)) if first in d else "none" for d in (theirs, ours))
        raise ValueError(f"init={path} is a network of another architecture ({len(misfits)} tensors differ, e.g. {first}: {shapes}); "
                         "give the model.* settings it was trained with")
    net.load_state_dict(theirs)
    log.info("network initialised from %s", path)


def train_only_new_styles(net: TransformerNet, old: int) -> None:
    """Freeze everything but the scales and shifts of the styles after the first ``old``: gradients of
    the old styles' rows are zeroed, so Adam never moves them (its moments stay 0)."""
    trainable = set(conditional_norm_params(net))
    mask = (torch.arange(net.num_styles) >= old).float()[:, None]
    for name, param in net.named_parameters():
        param.requires_grad_(name in trainable)
        if name in trainable:
            param.register_hook(lambda grad: grad * mask.to(grad))


def style_entries(cfg: DictConfig) -> list[DictConfig]:
    """The styles a run trains: ``style`` alone, or each of ``styles`` (a conf/style/ name, or a path or
    address of a painting, named after its file, at style.size)."""
    if not cfg.get("styles"):
        return [cfg.style]
    entries = []
    for item in cfg.styles:
        config = STYLE_CONFIGS / f"{item}.yaml"
        if SAFE_NAME.fullmatch(str(item)) and config.is_file():
            entries.append(OmegaConf.load(config))
        else:
            entries.append(OmegaConf.create({"name": style_name(item), "image": str(item), "sha256": None, "size": cfg.style.size}))
    names = [e.name for e in entries]
    if len(set(names)) != len(names) or not all(SAFE_NAME.fullmatch(str(n)) for n in names):
        raise ValueError(f"styles={list(cfg.styles)}: each style needs its own plain name, got {names}")
    return entries


def build(cfg: DictConfig) -> tuple[StyleTransferModule, StyleDataModule, list[Path]]:
    """The LightningModule and DataModule a config describes, and the style images' files."""
    datamodule: StyleDataModule = instantiate(cfg.data)
    entries = style_entries(cfg)
    style_paths = [resolve_style_image(e.image, e.name, e.get("sha256"), cfg.style_cache) for e in entries]
    new = [{"name": e.name, "image": str(e.image), "sha256": sha256_of(path), "size": e.size} for e, path in zip(entries, style_paths)]
    held, train_styles = new, None
    if cfg.get("init"):
        source, source_meta = load_network(cfg.init)
        old = held_styles(source_meta) if cfg.train == "norms" else []
        net = instantiate(cfg.model, num_styles=len(old) + len(new))
        warm_start(net, source, cfg.init, add_styles=bool(old))
        if old:  # a new style on top of a trained model: only its scales and shifts train
            clash = {s["name"] for s in old} & {s["name"] for s in new}
            if clash:
                raise ValueError(f"init={cfg.init} already holds {', '.join(sorted(clash))}; give the new styles other names")
            train_only_new_styles(net, len(old))
            held, train_styles = old + new, list(range(len(old), len(old) + len(new)))
    else:
        net = instantiate(cfg.model, num_styles=len(new))
    images = [load_style_image(path, e.size) for path, e in zip(style_paths, entries)]
    criterion = build_criterion(cfg.loss, images[0] if len(images) == 1 else images)
    module = StyleTransferModule(net, criterion, lr=cfg.optim.lr, lr_scaling=cfg.optim.lr_scaling, batch_size=cfg.data.batch_size,
                                 channels_last=cfg.channels_last, compile=cfg.compile, config=OmegaConf.to_container(cfg, resolve=True),
                                 schedule=cfg.optim.schedule, warmup_steps=cfg.optim.warmup_steps, final_lr=cfg.optim.final_lr,
                                 held_styles=held, train_styles=train_styles, temporal_weight=cfg.loss.temporal_weight,
                                 temporal_motion=cfg.loss.temporal_motion, seed=cfg.seed)
    return module, datamodule, style_paths


def quality_curve(cfg: DictConfig, module: StyleTransferModule, datamodule: StyleDataModule) -> QualityCurve:
    """quality_every=N: the quality curve on the held-out photos at data.sample_size, its references
    cached in ``<style_cache>/references``."""
    from fststyle.quality import reference_key

    if module.net.num_styles > 1:
        raise ValueError("quality_every= judges a one-style model; for several styles use scripts/quality_benchmark.py --style NAME")
    style = module.hparams.held_styles[0]
    files = datamodule.held_out_files()
    keys = [reference_key(f, style["sha256"], cfg.data.sample_size, OmegaConf.to_container(cfg.loss, resolve=True), style["size"],
                          cfg.quality_reference_steps) for f in files]
    log.info("quality_every=%d: %d held-out photos against %d L-BFGS iterations (computed once, cached in %s/references)",
             cfg.quality_every, len(files), cfg.quality_reference_steps, cfg.style_cache)
    return QualityCurve(datamodule.sample_batch(), keys, cfg.quality_every, cfg.quality_reference_steps, Path(cfg.style_cache) / "references")


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
    preset = apply_preset(cfg, given)
    if preset and torch.cuda.is_available():
        log.info("GPU fast path: %s (give any of these keys to change it; gpu_preset=[] turns it off)", " ".join(preset))
    elif preset:
        log.warning("no GPU found: CPU preset %s (give any of these keys to change it; trainer=gpu to insist on a GPU)", " ".join(preset))
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
    callbacks = [StopOnNonFinite(cfg.trainer.log_every_n_steps), checkpoints, samples, interrupt, Throughput(), StepProgressBar()]
    if cfg.quality_every:
        callbacks.append(quality_curve(cfg, module, datamodule))
    trainer: pl.Trainer = instantiate(cfg.trainer, logger=logger, default_root_dir=str(run_dir), callbacks=callbacks)
    log.info("training %s on %d photos from %s; run folder %s", cfg.style.name, len(datamodule.train_files), datamodule.root, run_dir)
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
    metadata = {
        # A one-item styles=[...] list records its own painting, not the style group's default.
        **style_metadata(cfg.style.name, module.hparams.held_styles),
        "loss": OmegaConf.to_container(cfg.loss, resolve=True),
        "steps": trainer.global_step,
        "image_size": cfg.data.image_size,
        "init": str(cfg.init) if cfg.get("init") else None,
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
