"""Style images: a painting that ships with the package (``packaged:NAME.jpg``, fststyle/paintings/),
a local path, or an http(s) address downloaded once into the style cache with its sha256 checked.
``conf/style/<name>.yaml`` names each style's source; ``python -m fststyle.styles`` lists them (and
which ones the packaged model holds).

Names and addresses can also come from a model file's metadata, which is untrusted input; one rule
for every reader of it (``recorded_painting``: eval, the training objective of a model, the scripts):
a packaged painting; a local file only when its content is the sha256 the model records; an address
only with a recorded sha256, from the cache when it holds that content, else fetched only when it is
the address of a painting fststyle knows (conf/style/). Every download is http(s) only (also after
redirects), at most MAX_DOWNLOAD bytes, and its cached file's name is a plain file name inside the
cache folder."""

from __future__ import annotations

import hashlib
import re
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import yaml
from omegaconf import DictConfig, OmegaConf

from fststyle import CONF_DIR
from fststyle.files import atomic_write

URL_SCHEMES = ("http", "https")
# The largest painting downloaded (the biggest of conf/style/ is under 1 MB; a 16K x 16K JPEG is ~60 MB).
MAX_DOWNLOAD = 64 * 2**20
# A style's name: it names run folders, model files and the browser page's menu entries.
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
PACKAGED = "packaged:"  # style.image=packaged:NAME.jpg: a file of fststyle/paintings/
PAINTINGS = Path(__file__).resolve().parent / "paintings"
STYLE_CONFIGS = CONF_DIR / "style"


def is_url(value: str) -> bool:
    return urlparse(str(value)).scheme in URL_SCHEMES


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201 (urllib's signature)
        if not is_url(newurl):
            raise urllib.error.URLError(f"redirected to {newurl}, which is no http(s) address")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


# Only http and https, also after redirects (urllib's default opener also reads file: and ftp: addresses).
_OPENER = urllib.request.OpenerDirector()
for _handler in (urllib.request.ProxyHandler(), urllib.request.UnknownHandler(), urllib.request.HTTPHandler(),
                 urllib.request.HTTPSHandler(), urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPErrorProcessor(),
                 _HttpOnlyRedirects()):
    _OPENER.add_handler(_handler)


def safe_file_name(name: str) -> str:
    """``name`` as a plain file name: letters, digits, '.', '_' and '-' only, not starting with a dot
    (so no folder, no parent, no hidden file); 'style' when nothing is left."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(name)).lstrip(".")[:100] or "style"


def style_name(item: str) -> str:
    """The name of a style given as a conf/style/ name or as a painting's path or address: its file stem."""
    return Path(urlparse(str(item)).path).stem


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_path(url: str, name: str, cache_dir: str | Path, sha256: str | None = None) -> Path:
    """Where a downloaded style image lives: ``<cache_dir>/<name>-<key><extension>``, a plain file name
    (never outside ``cache_dir``). The key is the expected content's sha256 when known, else a hash of
    the address: never the name alone, so another painting under the same name is another file and no
    run is handed a painting it did not ask for."""
    suffix = Path(urlparse(url).path).suffix.lower()
    suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ".jpg"
    key = (sha256 or hashlib.sha256(url.encode()).hexdigest())[:16]
    return Path(cache_dir) / f"{safe_file_name(name)[:80]}-{key}{suffix}"


def packaged_painting(image: str) -> Path:
    """The file of ``packaged:NAME.jpg`` inside the package (a plain file name: never outside it)."""
    name = safe_file_name(str(image)[len(PACKAGED):])
    path = PAINTINGS / name
    if not path.is_file():
        shipped = ", ".join(sorted(p.name for p in PAINTINGS.glob("*.jpg")))
        raise FileNotFoundError(f"style image {image}: no such painting ships with fststyle (it has: {shipped})")
    return path


def resolve_style_image(image: str, name: str, sha256: str | None = None, cache_dir: str | Path = "data/styles") -> Path:
    """Return a local file for ``image`` (packaged:NAME.jpg, a path or an http(s) URL), downloading a
    URL on first use.

    A download (or a file already in the cache for that URL) must match ``sha256`` when one is given;
    a packaged painting or a local path is taken as it is.
    """
    if str(image).startswith(PACKAGED):
        return packaged_painting(image)
    scheme = urlparse(str(image)).scheme
    if scheme and len(scheme) > 1 and not is_url(image):  # one letter: a Windows drive, a path
        raise ValueError(f"style image {image}: only http(s) addresses are downloaded; give a local path for other files")
    if not is_url(image):
        path = Path(image).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"style image not found: {path.resolve()} (check style.image)")
        return path
    target = cache_path(image, name, cache_dir, sha256)
    if target.is_file():
        if not sha256 or sha256_of(target) == sha256:
            return target
        raise ValueError(f"{target.resolve()} does not match the sha256 of style '{name}'; delete it to download {image} again")
    try:
        with atomic_write(target) as tmp:
            with open(tmp, "wb") as out, _OPENER.open(image, timeout=60) as response:
                copy_at_most(response, out, MAX_DOWNLOAD, image)
            got = sha256_of(tmp)
            if sha256 and got != sha256:
                raise ValueError(f"download of {image} has sha256 {got}, expected {sha256}")
    except (urllib.error.URLError, OSError) as err:
        raise FileNotFoundError(
            f"could not download style '{name}' from {image} ({getattr(err, 'reason', err)}); put the painting at {target.resolve()}"
        ) from err
    return target


def copy_at_most(source, out, limit: int, what: str) -> None:  # noqa: ANN001 (file objects)
    """Copy ``source`` to ``out``; ValueError as soon as more than ``limit`` bytes came."""
    copied = 0
    for block in iter(lambda: source.read(1 << 20), b""):
        copied += len(block)
        if copied > limit:
            raise ValueError(f"{what} is larger than {limit // 2**20} MB, more than any painting needs; nothing kept")
        out.write(block)


def known_addresses() -> set[str]:
    """The painting addresses fststyle's own style configs name (each with its sha256)."""
    return {str(c["image"]) for c in style_configs() if is_url(str(c["image"]))}


def recorded_painting(image: str, name: str, sha256: str | None, cache: str | Path) -> Path:
    """The painting a model's metadata names, under the one rule for untrusted metadata (module
    docstring): no model makes fststyle read another local file, or fetch an address it does not know."""
    image = str(image)
    if image.startswith(PACKAGED):
        return packaged_painting(image)
    hint = "give the painting yourself (style.image=PATH_OR_URL)"
    if is_url(image):
        if not sha256:
            raise ValueError(f"the model records the painting address {image} without its sha256: {hint}")
        cached = cache_path(image, name, cache, sha256)
        if not (cached.is_file() and sha256_of(cached) == sha256) and image not in known_addresses():
            raise ValueError(f"the model records the painting address {image}, which is none of fststyle's known paintings "
                             f"and not in the cache: {hint}")
        return resolve_style_image(image, name, sha256, cache)
    if len(urlparse(image).scheme) > 1:  # file:, ftp:, ... (one letter: a Windows drive, a path)
        raise ValueError(f"the model records the painting {image}: only http(s) addresses are downloaded; {hint}")
    path = Path(image).expanduser()
    if not (sha256 and path.is_file() and sha256_of(path) == sha256):
        raise ValueError(f"the model records the local painting {image}, which is not here with the content it records: {hint}")
    return path


def style_configs(folder: Path = STYLE_CONFIGS) -> list[dict]:
    """The named styles (conf/style/*.yaml, but the `custom` template), sorted by name."""
    configs = (yaml.safe_load(path.read_text()) for path in sorted(folder.glob("*.yaml")))
    return [c for c in configs if c.get("name") != "???"]


def packaged_model_styles() -> list[str]:
    """The styles the packaged model holds (none when the package ships no model)."""
    from fststyle.blend import style_names
    from fststyle.model_file import PACKAGED_MODEL, load_model

    return style_names(load_model(PACKAGED_MODEL)[1]) if PACKAGED_MODEL.is_file() else []


def style_entries(cfg: DictConfig) -> list[DictConfig]:
    """The styles a run trains: ``style`` alone, or each of ``styles`` (a conf/style/ name, or a path or
    address of a painting, named after its file, at style.size and style.weight)."""
    if not cfg.get("styles"):
        return [cfg.style]
    entries = []
    for item in cfg.styles:
        config = STYLE_CONFIGS / f"{item}.yaml"
        if SAFE_NAME.fullmatch(str(item)) and config.is_file():
            entries.append(OmegaConf.load(config))
        else:
            entries.append(OmegaConf.create({"name": style_name(item), "image": str(item), "sha256": None, "size": cfg.style.size,
                                             "weight": cfg.style.get("weight", 1.0)}))
    names = [e.name for e in entries]
    if len(set(names)) != len(names) or not all(SAFE_NAME.fullmatch(str(n)) for n in names):
        raise ValueError(f"styles={list(cfg.styles)}: each style needs its own plain name, got {names}")
    return entries


def main() -> None:
    """``python -m fststyle.styles``: the styles that ``style=NAME`` names, where each painting comes
    from, and which ones the packaged model holds."""
    trained = packaged_model_styles()
    for style in style_configs():
        where = "packaged" if str(style["image"]).startswith(PACKAGED) else "download"
        model = "model" if style["name"] in trained else ""
        print(f"{style['name']:<16} {where:<9} {model:<6} {style.get('title') or ''}")
        print(f"{'':<33} source: {style.get('source') or style['image']}")
    print(f"packaged: the painting ships with fststyle, no download ({PAINTINGS / 'SOURCES.md'}); download: fetched once into style_cache.\n"
          "model: the packaged model holds it, ready to stylize: python -m fststyle.infer style=NAME input=PHOTO output=OUT.jpg\n"
          "(model=packaged-small: the same paintings in a small network, several times faster, weaker)\n"
          "Train a model for any style: python -m fststyle.train style=NAME; any other painting: style=custom style.image=PATH_OR_URL style.name=NAME")


if __name__ == "__main__":
    main()
