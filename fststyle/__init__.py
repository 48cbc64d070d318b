"""fststyle: train feed-forward neural style transfer models and run them in a single pass."""

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

try:
    __version__ = version("fststyle")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["Stylizer", "__version__"]

# The Hydra configs: the top-level conf/ of a checkout (an editable install reads those files), which a
# wheel installs inside the package as fststyle/conf/ (pyproject.toml's package-dir).
_INSTALLED_CONF = Path(__file__).resolve().parent / "conf"
CONF_DIR = _INSTALLED_CONF if _INSTALLED_CONF.is_dir() else Path(__file__).resolve().parent.parent / "conf"


# ``model=packaged``: the model of the six packaged paintings that ships inside the package (fststyle.model_file).
PACKAGED_MODEL_NAME = "packaged"


def __getattr__(name: str) -> Any:
    # Imported on first use, so that `python -m fststyle.export` does not import itself twice.
    if name == "Stylizer":
        from fststyle.stylizer import Stylizer

        return Stylizer
    raise AttributeError(f"module 'fststyle' has no attribute {name!r}")
