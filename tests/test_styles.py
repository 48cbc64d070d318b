import functools
import http.server
import socket
import threading
from pathlib import Path

import pytest
import yaml

from conftest import STYLES

from fststyle.styles import resolve_style_image, safe_file_name, sha256_of

CONF_STYLES = Path(__file__).resolve().parents[1] / "conf" / "style"


@pytest.fixture(scope="module")
def server(starry_night):
    """A local http server for the folder of the shared paintings: the download path, without the internet."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(starry_night.parent))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def configured_sha(name: str) -> str:
    return yaml.safe_load((CONF_STYLES / f"{name}.yaml").read_text())["sha256"]


def test_shared_paintings_match_their_configs_checksums():
    """Each configured painting that the shared test assets hold is the file its config pins."""
    from conftest import STYLES

    checked = 0
    for config in sorted(CONF_STYLES.glob("*.yaml")):
        sha = yaml.safe_load(config.read_text()).get("sha256")
        shared = STYLES / f"{config.stem}.jpg"
        if sha and shared.is_file():
            assert sha256_of(shared) == sha, config.name
            checked += 1
    assert checked >= 1


def test_local_path_is_used_as_is(starry_night):
    assert resolve_style_image(str(starry_night), "x") == starry_night


def test_missing_local_path_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.jpg"):
        resolve_style_image(str(tmp_path / "nowhere.jpg"), "x")


def test_url_is_downloaded_once_into_the_cache(server, tmp_path):
    cache, sha = tmp_path / "styles", configured_sha("starry_night")
    path = resolve_style_image(f"{server}/starry_night.jpg", "starry_night", sha, cache)
    assert path == cache / f"starry_night-{sha[:16]}.jpg" and sha256_of(path) == sha
    # the cached file (its content checked) is used without downloading again, from any address
    assert resolve_style_image("http://127.0.0.1:9/gone/starry_night.jpg", "starry_night", sha, cache) == path
    assert [p.name for p in cache.iterdir()] == [path.name]


def test_the_cache_is_keyed_by_address_not_by_name(server, tmp_path):
    """The same name for two addresses (no sha256 known): each run gets the painting it asked for,
    never the file another address left under that name."""
    cache = tmp_path / "styles"
    first = resolve_style_image(f"{server}/starry_night.jpg", "mine", None, cache)
    second = resolve_style_image(f"{server}/great_wave.jpg", "mine", None, cache)
    assert first != second and sha256_of(second) == sha256_of(STYLES / "great_wave.jpg") != sha256_of(first)
    assert resolve_style_image(f"{server}/starry_night.jpg", "mine", None, cache) == first


def test_checksum_mismatch_is_refused_and_leaves_nothing(server, tmp_path):
    cache = tmp_path / "styles"
    with pytest.raises(ValueError, match="sha256"):
        resolve_style_image(f"{server}/starry_night.jpg", "bad", "0" * 64, cache)
    assert list(cache.iterdir()) == []


@pytest.mark.parametrize("name", ["../../escaped", "/etc/cron.d/x", "..", ".hidden", "a/b\\c", ""])
def test_a_name_never_leaves_the_cache_folder(server, tmp_path, name):
    cache = tmp_path / "deep" / "styles"
    path = resolve_style_image(f"{server}/starry_night.jpg", name, None, cache)
    assert path.parent == cache and path.is_file() and not path.name.startswith(".")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [f"deep/styles/{path.name}"]
    assert path.stem.rsplit("-", 1)[0] == safe_file_name(name)


@pytest.mark.parametrize("address", ["file:///etc/hostname", "ftp://127.0.0.1/x.jpg", "data:image/jpeg;base64,AAAA"])
def test_only_http_addresses_are_fetched(tmp_path, address):
    with pytest.raises(ValueError, match="only http"):
        resolve_style_image(address, "x", None, tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("target", ["file://{tmp}/secret.jpg", "ftp://127.0.0.1:9/secret.jpg"])
def test_a_redirect_to_another_scheme_is_refused(tmp_path, target):
    """An http address that redirects to file:// or ftp:// is not followed."""

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(302)
            self.send_header("Location", target.format(tmp=tmp_path))
            self.end_headers()

        def log_message(self, *args):
            pass

    (tmp_path / "secret.jpg").write_bytes(b"secret")
    httpd = http.server.HTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=httpd.handle_request, daemon=True).start()
    with pytest.raises(FileNotFoundError, match="(is not allowed|no http)"):
        resolve_style_image(f"http://127.0.0.1:{httpd.server_address[1]}/x.jpg", "x", None, tmp_path / "cache")
    httpd.server_close()
    assert not (tmp_path / "cache").exists() or list((tmp_path / "cache").iterdir()) == []


def test_offline_names_the_file_to_put_in_place(tmp_path):
    with socket.socket() as s:  # a closed local port: the download fails at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FileNotFoundError, match=r"put the painting at .*styles/great_wave-[0-9a-f]{16}\.jpg"):
        resolve_style_image(f"http://127.0.0.1:{port}/wave.jpg", "great_wave", None, tmp_path / "styles")


PACKAGED_STYLES = ["starry_night", "great_wave", "the_scream", "composition_vii", "shipwreck", "udnie"]


def test_packaged_paintings_resolve_without_the_network(monkeypatch, tmp_path):
    """style=NAME for each painting that ships: a file inside the package, readable, no download tried;
    each has its source and licence recorded, and is our own encoding (not the public copy's bytes)."""
    from PIL import Image

    from conftest import STYLES
    from fststyle import styles

    monkeypatch.setattr(styles._OPENER, "open", lambda *a, **k: pytest.fail("the network was used"))
    sources = (styles.PAINTINGS / "SOURCES.md").read_text()
    for name in PACKAGED_STYLES:
        config = yaml.safe_load((CONF_STYLES / f"{name}.yaml").read_text())
        path = resolve_style_image(config["image"], name, config["sha256"], tmp_path / "cache")
        assert path.parent == styles.PAINTINGS and path.name == f"{name}.jpg"
        with Image.open(path) as image:
            assert image.format == "JPEG" and 300 <= max(image.size) <= 1024
        assert f"| {name}.jpg |" in sources and config["sha256"] in sources and "public domain" in sources
        assert sha256_of(path) != sha256_of(STYLES / f"{name}.jpg")
    assert not (tmp_path / "cache").exists()
    with pytest.raises(FileNotFoundError, match="no such painting ships with fststyle .*starry_night.jpg"):
        resolve_style_image("packaged:../../mosaic.jpg", "mosaic")


def test_styles_listing_names_each_style_and_where_it_comes_from():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "fststyle.styles"], capture_output=True, text=True, check=True).stdout
    rows = {w[0]: w[1] for w in map(str.split, out.splitlines()) if len(w) > 1 and w[1] in ("packaged", "download")}
    assert rows == {**{name: "packaged" for name in PACKAGED_STYLES}, "mosaic": "download", "candy": "download"}
    assert "Vincent van Gogh, The Starry Night (1889)" in out and "jcjohnson/neural-style" in out


def test_a_download_is_capped_in_size(server, tmp_path, monkeypatch):
    """An address that serves more than MAX_DOWNLOAD bytes: refused while downloading, nothing kept."""
    import fststyle.styles

    monkeypatch.setattr(fststyle.styles, "MAX_DOWNLOAD", 100_000)  # the painting is larger than this
    with pytest.raises(ValueError, match=r"starry_night.jpg is larger than 0 MB, more than any painting needs; nothing kept"):
        resolve_style_image(f"{server}/starry_night.jpg", "starry_night", None, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


class _Counting(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        _Counting.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


def test_a_models_metadata_names_only_paintings_fststyle_knows(tmp_path, starry_night):
    """The one rule for untrusted metadata (recorded_painting): an unknown address is not fetched (the
    server sees no request: no probing of a local network from a model file), nor one without a sha256;
    one whose content the cache already holds is used; a known address is; a local file only with its
    recorded content; no other scheme."""
    from fststyle.styles import cache_path, recorded_painting

    _Counting.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Counting, directory=str(starry_night.parent)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/starry_night.jpg"
    sha, cache = sha256_of(starry_night), tmp_path / "cache"
    try:
        with pytest.raises(ValueError, match="which is none of fststyle's known paintings and not in the cache: give the painting yourself"):
            recorded_painting(url, "x", sha, cache)
        with pytest.raises(ValueError, match="without its sha256"):
            recorded_painting(url, "x", None, cache)
        assert _Counting.requests == []
        cached = cache_path(url, "x", cache, sha)
        cached.parent.mkdir(parents=True)
        cached.write_bytes(starry_night.read_bytes())
        assert recorded_painting(url, "x", sha, cache) == cached and _Counting.requests == []
    finally:
        httpd.shutdown()
    mosaic = yaml.safe_load((CONF_STYLES / "mosaic.yaml").read_text())  # a known address: fetched (here from a cache copy)
    known = cache_path(mosaic["image"], "mosaic", tmp_path / "known", mosaic["sha256"])
    known.parent.mkdir()
    known.write_bytes((STYLES / "mosaic.jpg").read_bytes())
    assert recorded_painting(mosaic["image"], "mosaic", mosaic["sha256"], tmp_path / "known") == known
    assert recorded_painting(str(starry_night), "x", sha, cache) == starry_night
    for image, recorded, message in ((str(starry_night), "0" * 64, "not here with the content it records"),
                                     (f"file://{starry_night}", sha, "only http")):
        with pytest.raises(ValueError, match=message):
            recorded_painting(image, "x", recorded, cache)
