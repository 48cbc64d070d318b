"""fststyle: train feed-forward neural style transfer models and run them in a single pass."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fststyle")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from fststyle.stylizer import Stylizer  # noqa: E402

__all__ = ["Stylizer", "__version__"]
