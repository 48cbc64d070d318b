"""Style images: a local path, or an https address downloaded once into the style cache with its sha256
checked. ``conf/style/<name>.yaml`` names each bundled style's public-domain source."""

from __future__ import annotations

import hashlib
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from fststyle.files import atomic_write

URL_SCHEMES = ("http", "https", "file")


def is_url(value: str) -> bool:
    return urlparse(str(value)).scheme in URL_SCHEMES


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_path(url: str, name: str, cache_dir: str | Path) -> Path:
    """Where a downloaded style image lives: ``<cache_dir>/<name><extension of the URL>``."""
    suffix = Path(urlparse(url).path).suffix.lower() or ".jpg"
    return Path(cache_dir) / f"{name}{suffix}"


def resolve_style_image(image: str, name: str, sha256: str | None = None, cache_dir: str | Path = "data/styles") -> Path:
    """Return a local file for ``image`` (path or URL), downloading a URL on first use.

    A download (or a file already in the cache for that URL) must match ``sha256`` when one is given;
    a local path is taken as it is.
    """
    if not is_url(image):
        path = Path(image).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"style image not found: {path.resolve()} (check style.image)")
        return path
    target = cache_path(image, name, cache_dir)
    if target.is_file():
        if not sha256 or sha256_of(target) == sha256:
            return target
        raise ValueError(f"{target.resolve()} does not match the sha256 of style '{name}'; delete it to download {image} again")
    try:
        with atomic_write(target) as tmp:
            with open(tmp, "wb") as out, urllib.request.urlopen(image, timeout=60) as response:
                shutil.copyfileobj(response, out)
            got = sha256_of(tmp)
            if sha256 and got != sha256:
                raise ValueError(f"download of {image} has sha256 {got}, expected {sha256}")
    except (urllib.error.URLError, OSError) as err:
        raise FileNotFoundError(
            f"could not download style '{name}' from {image} ({getattr(err, 'reason', err)}); put the painting at {target.resolve()}"
        ) from err
    return target
