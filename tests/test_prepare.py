"""`python -m fststyle.prepare`: photos decoded once into a memory-mapped file that training uses."""

import json
import shutil

import numpy as np
import torch
from conftest import photo_folder, run_cli

from fststyle.training.data import PhotoDataset, StyleDataModule
from fststyle.training.prepared_file import PreparedDataset, prepared_path


def test_prepare_then_train_from_the_file(tmp_path, photos_dir, starry_night):
    root = tmp_path / "photos"
    root.mkdir()
    for name in ("dog.jpg", "eagle.jpg", "chicago.jpg", "stata.jpg", "horses.jpg", "camera.png"):
        shutil.copy(photos_dir / name, root / name)
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    proc = run_cli("fststyle.prepare", "data=folder", f"data.root={root}", "data.image_size=32", "workers=2")
    out = prepared_path(root, 32)
    assert proc.stdout.strip().splitlines()[-1] == f"prepared: {out}"
    assert "skipped unreadable photo" in proc.stdout and "broken.jpg" in proc.stdout
    meta = json.loads(out.with_suffix(".npy.json").read_text())
    array = np.load(out, mmap_mode="r")
    assert meta["size"] == 32 and meta["count"] == 6 and array.shape == (7, 32, 32, 3) and array.dtype == np.uint8
    # each row is the photo's centre square, the same as the folder pipeline's centre crop
    dog = meta["photos"].index(str(root / "dog.jpg"))
    reference = PhotoDataset([root / "dog.jpg"], 32, train=False)[0]
    stored = PreparedDataset(out, [dog])[0]
    assert stored.shape == (3, 32, 32) and stored.dtype == torch.uint8 and (stored / 255 - reference).abs().mean() < 0.02

    dm = StyleDataModule(str(root), image_size=32, batch_size=2, num_val=1, num_workers=0)
    assert dm.prepared == out and len(dm.prepared_rows) == len(dm.train_files)
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (2, 3, 32, 32) and batch.dtype == torch.uint8  # bytes until the device
    scaled = dm.on_after_batch_transfer(batch, 0)
    assert scaled.dtype == torch.float32 and torch.equal(scaled, batch.float() / 255)
    assert StyleDataModule(str(root), image_size=48, num_val=1, num_workers=0).prepared is None  # other size: photos
    assert StyleDataModule(str(root), image_size=32, num_val=1, num_workers=0, prepared="false").prepared is None

    run_dir = tmp_path / "run"
    proc = run_cli("fststyle.train", "trainer=cpu", "logger=none", "data=folder", f"data.root={root}", "data.image_size=32",
                   "data.batch_size=2", "data.num_workers=1", "data.num_val=1", f"style.image={starry_night}", "style.name=x",
                   "style.size=64", "trainer.max_steps=3", "sample_every=0", f"hydra.run.dir={run_dir}")
    assert "training photos from the prepared file" in proc.stdout + proc.stderr
    assert torch.load(run_dir / "export" / "x.pth", weights_only=True)["metadata"]["steps"] == 3


def test_build_writes_the_file_once_and_trains_from_it(tmp_path, photos_dir):
    root = photo_folder(tmp_path, photos_dir)
    out = prepared_path(root, 32)
    dm = StyleDataModule(str(root), image_size=32, batch_size=2, num_val=1, num_workers=0, prepared="build")
    assert dm.prepared is None and not out.exists()  # written in prepare_data, by one process of the job
    assert not dm.prepare_data_per_node  # the file lies beside the photos, which every node of a job shares
    dm.prepare_data()
    dm.setup("fit")
    # only the training photos are decoded, not the held-out one
    assert dm.prepared == out and np.load(out, mmap_mode="r").shape == (3, 32, 32, 3)
    assert json.loads(out.with_suffix(".npy.json").read_text())["photos"] == [str(f) for f in dm.train_files]
    assert isinstance(next(iter(dm.train_dataloader())), torch.Tensor) and isinstance(dm.train_dataloader().dataset, PreparedDataset)
    written = out.stat().st_mtime_ns
    again = StyleDataModule(str(root), image_size=32, batch_size=2, num_val=1, num_workers=0, prepared="build")
    again.prepare_data()
    assert again.prepared == out and out.stat().st_mtime_ns == written  # reused, not rebuilt


def test_build_falls_back_to_the_photos_without_space_or_write_access(tmp_path, photos_dir, monkeypatch, caplog):
    import fststyle.training.data

    root = photo_folder(tmp_path, photos_dir)
    dm = StyleDataModule(str(root), image_size=32, batch_size=2, num_val=1, num_workers=0, prepared="build")
    monkeypatch.setattr(fststyle.training.data.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 10**12, 0))
    dm.prepare_data()
    assert "would need" in caplog.text and not prepared_path(root, 32).exists()
    monkeypatch.undo()

    def read_only(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(fststyle.training.data, "write_prepared", read_only)
    dm.prepare_data()
    dm.setup("fit")
    assert "could not write" in caplog.text and dm.prepared is None
    assert isinstance(dm.train_dataloader().dataset, PhotoDataset)


def test_build_never_writes_into_the_sample_photos_package():
    dm = StyleDataModule(None, sample=True, image_size=32, num_workers=0, prepared="build")
    dm.prepare_data()
    assert dm.prepared_mode == "false" and not list(dm.root.parent.glob("*.fststyle*"))


def test_training_with_build_prepares_first(tmp_path, photos_dir, starry_night):
    root = photo_folder(tmp_path, photos_dir)
    proc = run_cli("fststyle.train", "trainer=cpu", "logger=none", "data=folder", f"data.root={root}", "data.image_size=32",
                   "data.batch_size=2", "data.num_workers=0", "data.num_val=1", "data.prepared=build", f"style.image={starry_night}",
                   "style.name=x", "style.size=64", "trainer.max_steps=2", "sample_every=0", f"hydra.run.dir={tmp_path / 'run'}")
    log = proc.stdout + proc.stderr
    assert "data.prepared=build: decoding the 3 training photos" in log and "training photos from the prepared file" in log
    assert prepared_path(root, 32).is_file()


def test_build_rewrites_a_file_that_lacks_new_photos(tmp_path, photos_dir, caplog):
    root = photo_folder(tmp_path, photos_dir, count=3)
    first = StyleDataModule(str(root), image_size=32, batch_size=1, num_val=0, num_workers=0, prepared="build")
    first.prepare_data()
    shutil.copy(sorted(photos_dir.glob("*.jpg"))[5], root / "new.jpg")
    dm = StyleDataModule(str(root), image_size=32, batch_size=1, num_val=0, num_workers=0, prepared="build")
    assert dm.prepared is None and "lacks 1 of the 4 training photos: not used" in caplog.text
    dm.prepare_data()
    dm.setup("fit")
    assert dm.prepared is not None and len(dm.prepared_rows) == 4 and np.load(dm.prepared, mmap_mode="r").shape[0] == 4
