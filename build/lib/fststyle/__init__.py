"""fststyle: train feed-forward neural style transfer models and run them in a single pass."""

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

try:
    __version__ = version("fststyle")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["Stylizer", "__version__"]

# The Hydra configs ship inside the package, so that an installed wheel finds them as a checkout does.
CONF_DIR = Path(__file__).resolve().parent / "conf"


def __getattr__(name: str) -> Any:
    # Imported on first use, so that `python -m fststyle.export` does not import itself twice.
    if name == "Stylizer":
        from fststyle.stylizer import Stylizer

        return Stylizer
    raise AttributeError(f"module 'fststyle' has no attribute {name!r}")
