"""``python -m fststyle.infer model=PATH input=IMAGE output=IMAGE``: stylize an image."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from fststyle.images import open_rgb, resize_long_side, save_image
from fststyle.stylizer import Stylizer


def infer(cfg: DictConfig) -> None:
    stylizer = Stylizer.load(cfg.model, device=cfg.device)
    image = resize_long_side(open_rgb(cfg.input), cfg.size)
    path = save_image(stylizer(image), cfg.output)
    print(f"wrote: {path.resolve()} ({image.width}x{image.height}, style {stylizer.metadata.get('style_name', '?')})")


# The config lives in conf/cli/, away from the training config groups, so that `model=PATH` is a
# plain value and not a choice of the conf/model/ group.
@hydra.main(version_base="1.3", config_path="../conf/cli", config_name="infer")
def main(cfg: DictConfig) -> None:
    infer(cfg)


if __name__ == "__main__":
    main()
