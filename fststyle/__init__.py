"""fststyle: train feed-forward neural style transfer models and run them in a single pass."""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

try:
    __version__ = version("fststyle")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["FlickerMeter", "Stabilizer", "Stylizer", "TransformerNet", "__version__"]

# The Hydra configs: the top-level conf/ of a checkout (an editable install reads those files), which a
# wheel installs inside the package as fststyle/conf/ (pyproject.toml's package-dir).
_INSTALLED_CONF = Path(__file__).resolve().parent / "conf"
CONF_DIR = _INSTALLED_CONF if _INSTALLED_CONF.is_dir() else Path(__file__).resolve().parent.parent / "conf"


# Models that ship inside the package (fststyle/models/, read by fststyle.model_file), by the name a command
# takes for them: ``model=packaged``, the six packaged paintings; ``model=packaged-small``, the same paintings
# in a network a twentieth of its size (distilled from it), which also ships as ONNX for the quick path
# (fststyle.inference.quick). Each file's stem is the style name its model was trained under.
PACKAGED_MODEL_NAME = "packaged"
PACKAGED_MODELS = {PACKAGED_MODEL_NAME: "packaged.pth", "packaged-small": "packaged_small.pth"}
MODELS_DIR = Path(__file__).resolve().parent / "models"


def packaged_model_file(model: str) -> Path | None:
    """The file of the model that ships with fststyle under the name ``model`` (None for any other name)."""
    return MODELS_DIR / PACKAGED_MODELS[model] if model in PACKAGED_MODELS else None


# The classes of the API page, importable from here wherever their module lives (docs/api.md).
PUBLIC = {"Stylizer": "fststyle.inference.stylizer", "Stabilizer": "fststyle.inference.stabilize",
          "FlickerMeter": "fststyle.evaluation.flicker", "TransformerNet": "fststyle.net"}


def __getattr__(name: str) -> Any:
    # Imported on first use: `import fststyle` stays free of PyTorch (the quick path never imports it),
    # and `python -m fststyle.export` does not import itself twice.
    if name in PUBLIC:
        return getattr(import_module(PUBLIC[name]), name)
    raise AttributeError(f"module 'fststyle' has no attribute {name!r}")
