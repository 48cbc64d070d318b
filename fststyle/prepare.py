"""``python -m fststyle.prepare data=coco``: decode and resize a folder's photos once into the
prepared file that training memory-maps (``data.prepared``; the format is in fststyle.training.prepared_file).
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from fststyle import CONF_DIR
from fststyle.cli import check_choices, run_cli
from fststyle.training.data import as_roots, photo_folders
from fststyle.training.prepared_file import prepared_path, write_prepared


def prepare(cfg: DictConfig) -> Path:
    folders, files = photo_folders(as_roots(cfg.data.root))
    if not files:
        raise FileNotFoundError(f"no images found under {', '.join(str(f.resolve()) for f in folders)}")
    out = Path(cfg.output) if cfg.output else prepared_path(folders[0], cfg.data.image_size)
    _, skipped = write_prepared(files, out, cfg.data.image_size, cfg.workers)
    for path in skipped:
        print(f"skipped unreadable photo: {path}")
    print(f"prepared: {out.resolve()}")
    return out


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="prepare")
def main(cfg: DictConfig) -> None:
    run_cli(lambda: prepare(cfg))


def cli() -> None:
    """``python -m fststyle.prepare``."""
    check_choices(CONF_DIR)
    main()


if __name__ == "__main__":
    cli()
