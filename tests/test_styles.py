import socket

import pytest

from fststyle.styles import resolve_style_image, sha256_of

STARRY_SHA = "0592ab0f7b51b3ce72608a95e53880bd93971e5b48f93a0ce8dfd3cbccf3d098"


def test_shared_painting_has_the_configured_checksum(starry_night):
    assert sha256_of(starry_night) == STARRY_SHA


def test_local_path_is_used_as_is(starry_night):
    assert resolve_style_image(str(starry_night), "x") == starry_night


def test_missing_local_path_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.jpg"):
        resolve_style_image(str(tmp_path / "nowhere.jpg"), "x")


def test_url_is_downloaded_once_into_the_cache(starry_night, tmp_path):
    cache = tmp_path / "styles"
    url = starry_night.as_uri()
    path = resolve_style_image(url, "starry_night", STARRY_SHA, cache)
    assert path == cache / "starry_night.jpg" and sha256_of(path) == STARRY_SHA
    # the cached file is used without downloading again
    assert resolve_style_image("file:///nonexistent/starry_night.jpg", "starry_night", STARRY_SHA, cache) == path
    assert [p.name for p in cache.iterdir()] == ["starry_night.jpg"]


def test_checksum_mismatch_is_refused_and_leaves_nothing(starry_night, tmp_path):
    cache = tmp_path / "styles"
    with pytest.raises(ValueError, match="sha256"):
        resolve_style_image(starry_night.as_uri(), "bad", "0" * 64, cache)
    assert list(cache.iterdir()) == []


def test_offline_names_the_file_to_put_in_place(tmp_path):
    with socket.socket() as s:  # a closed local port: the download fails at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FileNotFoundError, match=r"put the painting at .*styles/great_wave\.jpg"):
        resolve_style_image(f"http://127.0.0.1:{port}/wave.jpg", "great_wave", None, tmp_path / "styles")
