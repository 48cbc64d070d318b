"""Weights & Biases that never costs a run: online when logged in and the server answers in time,
otherwise offline (``wandb sync`` uploads an offline run later), with one warning line."""

from __future__ import annotations

import logging
import netrc
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from hydra.utils import instantiate
from omegaconf import DictConfig
from fststyle.errors import first_line

if TYPE_CHECKING:  # Lightning costs two seconds to import; eval's W&B run does not need it
    from pytorch_lightning.loggers import Logger, WandbLogger

log = logging.getLogger(__name__)
T = TypeVar("T")

OFFLINE_MODES = ("offline", "dryrun", "disabled")


def wandb_logged_in() -> bool:
    """Whether W&B can go online without asking: an API key in the environment or in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wants_online() -> bool:
    return os.environ.get("WANDB_MODE") not in OFFLINE_MODES and wandb_logged_in()


def mode(offline: bool) -> str:
    """wandb.init's mode: WANDB_MODE when it turns W&B off or offline, else as asked. Given to
    wandb.init itself: a second run in one process does not read the environment again."""
    env = os.environ.get("WANDB_MODE")
    return env if env in OFFLINE_MODES else "offline" if offline else "online"


def online_or_offline(start: Callable[[bool], T], where: str | Path) -> T:
    """``start(offline)`` online first; when that fails (no route to the server, a timeout, a refused
    key), warn in one line and start offline instead."""
    try:
        return start(False)
    except Exception as err:  # any failure of the dashboard: the run goes on without it
        server = os.environ.get("WANDB_BASE_URL", "the W&B server")
        log.warning("W&B: %s did not take the run (%s): logging offline under %s; `wandb sync` uploads it later", server, first_line(err), where)
        return start(True)


def build_logger(cfg: DictConfig | None, run_dir: Path) -> Logger | bool:
    """The configured Lightning logger. ``logger=wandb`` with ``offline: auto`` goes online when
    logged in; its run starts here (not at the first step), waiting at most ``init_timeout`` seconds
    for the server, so that an unreachable one turns the run offline before training starts."""
    if cfg is None:
        return False
    if cfg.get("_target_") != "pytorch_lightning.loggers.WandbLogger":
        return instantiate(cfg, save_dir=str(run_dir))
    options = {k: v for k, v in cfg.items() if k not in ("offline", "init_timeout")}
    settings = {"init_timeout": float(cfg.get("init_timeout", 30))}

    def start(offline: bool) -> WandbLogger:
        # resume=None: each training is a new W&B run. Lightning's default ("allow") asks the server
        # for the run's state first, a request that init_timeout does not bound (about 90 s without a
        # server), and that offline runs make too.
        logger = instantiate(options, save_dir=str(run_dir), offline=offline, mode=mode(offline), settings=settings, resume=None,
                             _convert_="all")  # plain dicts: wandb.init ignores settings given as a DictConfig
        logger.experiment  # noqa: B018  (starts the W&B run now; a dummy on ranks other than zero)
        return logger

    if cfg.offline is True or (cfg.offline == "auto" and not wants_online()):
        return start(True)
    return online_or_offline(start, run_dir / "wandb")


def init_run(timeout: float = 30, **kwargs: Any) -> Any:
    """``wandb.init(**kwargs)``, online when logged in and reachable within ``timeout`` s, else offline."""
    import wandb

    def start(offline: bool) -> Any:
        return wandb.init(mode=mode(offline), settings={"init_timeout": timeout}, **kwargs)

    return online_or_offline(start, kwargs.get("dir", ".")) if wants_online() else start(True)


def is_online(logger: Logger | bool) -> bool:
    """Whether ``logger`` is a W&B logger whose run went online."""
    from pytorch_lightning.loggers import WandbLogger

    return isinstance(logger, WandbLogger) and not getattr(logger.experiment, "offline", True)
