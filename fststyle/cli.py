"""What the ``python -m fststyle.X`` entry points share: user errors as one line, not a traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TypeVar

from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")

# Errors that describe bad input (paths, values, files); anything else is a bug and keeps its traceback.
USER_ERRORS = (FileNotFoundError, NotADirectoryError, PermissionError, ValueError, RuntimeError, OmegaConfBaseException)


def run_cli(main: Callable[[], T]) -> T:
    """Run ``main``; a user error prints ``error: <message>`` and exits with status 2
    (``HYDRA_FULL_ERROR=1`` shows the traceback instead)."""
    try:
        return main()
    except USER_ERRORS as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"error: {message}", file=sys.stderr, flush=True)
        sys.exit(2)
