"""``python -m fststyle.optimize content=IMAGE style=NAME output=IMAGE``: Gatys et al. style transfer by
image optimization, the quality reference for feed-forward models (same losses and weights)."""

from __future__ import annotations

import time
from pathlib import Path

import hydra
from omegaconf import DictConfig
from tqdm import tqdm

from fststyle import CONF_DIR
from fststyle.cli import check_choices, run_cli
from fststyle.images import load_tensor, save_image
from fststyle.evaluation.quality import optimize_image
from fststyle.inference.stylizer import pick_device


def optimize(cfg: DictConfig) -> Path:
    from fststyle.styles import resolve_style_image
    from fststyle.training.criterion import build_criterion, load_style_image, painting_loss, painting_weight

    device = pick_device(cfg.device)
    content = load_tensor(cfg.content, cfg.size)[None].to(device)
    style_path = resolve_style_image(cfg.style.image, cfg.style.name, cfg.style.get("sha256"), cfg.style_cache)
    loss = painting_loss(cfg.loss, painting_weight(cfg.style))
    criterion = build_criterion(loss, load_style_image(style_path, cfg.style.size)).to(device)
    start = time.perf_counter()
    with tqdm(unit="evaluation") as bar:
        result = optimize_image(content, criterion, cfg.steps, cfg.optimizer, cfg.lr,
                                on_step=lambda n, loss: (bar.update(1), bar.set_postfix(loss=f"{loss:.3g}")))
    path = save_image(result.image[0], cfg.output)
    history = result.losses
    print(f"loss {history[0]:.4g} -> {min(history):.4g} in {result.iterations} iterations, {len(history)} evaluations "
          f"({time.perf_counter() - start:.1f} s)")
    print(f"wrote: {path.resolve()}")
    return path


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="optimize")
def main(cfg: DictConfig) -> None:
    run_cli(lambda: optimize(cfg))


def cli() -> None:
    """``python -m fststyle.optimize``."""
    check_choices(CONF_DIR)
    main()


if __name__ == "__main__":
    cli()
