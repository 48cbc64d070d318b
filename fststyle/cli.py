"""What the ``python -m fststyle.X`` entry points share: user errors as one line, not a traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from hydra.errors import InstantiationException
from omegaconf.errors import OmegaConfBaseException

from fststyle.errors import UserError, first_line
from fststyle.malloc import reuse_freed_memory

T = TypeVar("T")

# Errors that describe bad input (paths, values, files, a diverging run). Anything else, RuntimeError
# included (a CUDA or NCCL failure, a crashed data worker, a state dict that does not fit), is not the
# user's input and keeps its traceback.
USER_ERRORS = (UserError, FileNotFoundError, NotADirectoryError, PermissionError, ValueError, FloatingPointError, OmegaConfBaseException)
OUT_OF_MEMORY_HINT = ("out of memory: training needs a smaller data.batch_size or data.image_size; "
                      "inference a smaller size= or tile=, or device=cpu")


def one_value(args: list[str], key: str, brackets: str) -> list[str]:
    """``key=a,b`` is a sweep to Hydra; where the command means one value, the value is wrapped in
    ``brackets`` ("''": one quoted string, "[]": a list), unless it is quoted or a list already."""
    prefix = f"{key}="
    return [f"{prefix}{brackets[0]}{a[len(prefix):]}{brackets[1]}" if a.startswith(prefix) and "," in a and a[len(prefix):][:1] not in "'\"["
            else a for a in args]


def unknown_choice(conf_dir: Path, args: list[str]) -> str | None:
    """A one-line message for the first ``group=option`` argument whose option does not exist
    (Hydra would say it in many lines), else None."""
    for arg in args:
        key, sep, value = arg.lstrip("+").partition("=")
        group = conf_dir / key
        if not sep or "." in key or not group.is_dir():
            continue
        available = sorted(p.stem for p in group.glob("*.yaml"))
        for option in value.split(","):
            if option not in available and option != "null":
                return f"unknown {key} '{option}'; available: {', '.join(available)}"
    return None


def unwritable_run_dir(args: list[str], default: str = "outputs") -> str | None:
    """A one-line message when the run folder (``hydra.run.dir=`` or ``default``) cannot be created
    (Hydra would fail with a traceback before any of our code runs), else None."""
    value = next((a.split("=", 1)[1] for a in args if a.startswith("hydra.run.dir=")), default)
    folder = Path(value.strip("'\"")).expanduser().absolute()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        return f"cannot create the run folder {folder}: {existing} is a file"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot create the run folder {folder}: {existing} is not writable"
    return None


def check_choices(conf_dir: Path) -> None:
    """Exit with a one-line error when the command line names a config option that does not exist,
    or a run folder that cannot be created."""
    message = unknown_choice(conf_dir, sys.argv[1:]) or unwritable_run_dir(sys.argv[1:])
    if message:
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def is_compiler_failure(err: BaseException) -> bool:
    """Whether ``err`` comes from torch.compile's machinery (TorchDynamo, Inductor)."""
    return type(err).__module__.startswith(("torch._dynamo", "torch._inductor"))


def run_cli(main: Callable[[], T]) -> T:
    """Run ``main``; a user error prints ``error: <message>`` and exits with status 2
    (``HYDRA_FULL_ERROR=1`` shows the traceback instead). Out of memory and torch.compile failures
    print a one-line hint and keep their traceback, like every other error. The command owns its
    process, so freed memory is kept for reuse (``fststyle.malloc``)."""
    reuse_freed_memory()
    try:
        try:
            return main()
        except InstantiationException as err:  # a config's _target_ refused its arguments: say why
            raise err.__cause__ if isinstance(err.__cause__, USER_ERRORS) else err
    except Exception as err:
        if isinstance(err, torch.OutOfMemoryError):
            print(f"error: {OUT_OF_MEMORY_HINT} (traceback below)", file=sys.stderr, flush=True)
        elif is_compiler_failure(err):  # a failure inside torch.compile is no input error
            print("error: torch.compile failed (traceback below); compile=false runs without it", file=sys.stderr, flush=True)
        elif isinstance(err, USER_ERRORS) and os.environ.get("HYDRA_FULL_ERROR") != "1":
            print(f"error: {first_line(err)}", file=sys.stderr, flush=True)
            sys.exit(2)
        raise
