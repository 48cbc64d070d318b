from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "assets"
PHOTOS = SHARED / "photos"
STYLES = SHARED / "styles"


@pytest.fixture(autouse=True)
def _small_and_quiet(monkeypatch):
    torch.manual_seed(0)
    monkeypatch.setenv("WANDB_MODE", "disabled")


@pytest.fixture(scope="session")
def photos_dir() -> Path:
    assert PHOTOS.is_dir(), f"test photos missing: {PHOTOS} (../shared beside the checkout)"
    return PHOTOS


@pytest.fixture(scope="session")
def starry_night() -> Path:
    path = STYLES / "starry_night.jpg"
    assert path.is_file(), f"test painting missing: {path}"
    return path
