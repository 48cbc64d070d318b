import json
import logging

from pathlib import Path

import pytest
import torch
from PIL import Image

from fststyle.training.data import SAMPLE_PHOTOS, PhotoDataset, StyleDataModule
from fststyle.images import find_files
from fststyle.errors import UserError

from conftest import SHARED


def _photo(path, size=(40, 30), color=(200, 30, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def test_find_files_is_recursive_and_ignores_case(tmp_path):
    _photo(tmp_path / "a.JPG")
    _photo(tmp_path / "sub" / "deeper" / "b.png")
    _photo(tmp_path / "c.WebP")
    (tmp_path / "notes.txt").write_text("not an image")
    _photo(tmp_path / ".hidden" / "d.jpg")
    names = [p.name for p in find_files(tmp_path)]
    assert sorted(names) == ["a.JPG", "b.png", "c.WebP"]


def test_linked_folders_are_followed_once_and_a_cycle_ends(tmp_path):
    root = tmp_path / "photos"
    _photo(root / "a.jpg")
    _photo(tmp_path / "elsewhere" / "b.jpg")
    (root / "linked").symlink_to(tmp_path / "elsewhere")
    (root / "sub").mkdir()
    (root / "sub" / "up").symlink_to(root)  # a cycle: photos/sub/up/sub/up/...
    (root / "sub" / "again").symlink_to(tmp_path / "elsewhere")  # the same folder by a second link
    found = find_files(root)
    assert sorted(p.resolve().name for p in found) == ["a.jpg", "b.jpg"]


def test_crops_are_square_at_image_size(tmp_path):
    files = [_photo(tmp_path / "wide.png", (90, 30)), _photo(tmp_path / "tall.jpg", (20, 70))]
    for train in (True, False):
        ds = PhotoDataset(files, 32, train=train)
        assert [tuple(ds[i].shape) for i in range(2)] == [(3, 32, 32)] * 2
        assert 0 <= ds[0].min() and ds[0].max() <= 1


def test_crop_scale_takes_a_share_of_the_shorter_side_and_flip_mirrors_half(tmp_path):
    """A 200x100 image whose red channel is the column: a 0.5 share is a 50 px square, at size 50 not
    resized, so each row holds 50 consecutive columns (or reversed, when flipped)."""
    columns = torch.arange(200, dtype=torch.uint8).expand(100, 200)
    path = tmp_path / "ramp.png"
    Image.fromarray(torch.stack([columns, columns * 0, columns * 0], -1).numpy()).save(path)
    plain, flipped = PhotoDataset([path], 50, scale=(0.5, 0.5)), PhotoDataset([path], 50, scale=(0.5, 0.5), flip=True)
    mirrored = 0
    for seed in range(20):
        row = (plain[(0, seed)][0, 0] * 255).round()
        assert torch.equal(row, row[0] + torch.arange(50.0))
        other = flipped[(0, seed)]
        assert torch.equal(other, plain[(0, seed)]) or torch.equal(other, plain[(0, seed)].flip(-1))
        mirrored += not torch.equal(other, plain[(0, seed)])
    assert 3 < mirrored < 17
    sides = {int((PhotoDataset([path], 100, scale=(0.25, 1.0))[(0, seed)][0, 0] * 255).round().max()) for seed in range(10)}
    assert len(sides) > 5  # squares of many sizes and places
    assert torch.equal(PhotoDataset([path], 50, train=False, scale=(0.5, 0.5), flip=True)[0], PhotoDataset([path], 50, train=False)[0])


def test_unset_crop_scale_and_flip_follow_the_source(tmp_path):
    """Few sample photos: random-scale squares and flips; a photo folder: Johnson's whole squares;
    values given win; the fallback to the sample photos takes the sample recipe."""
    _photo(tmp_path / "a.jpg")
    folder, sample = StyleDataModule(root=str(tmp_path)), StyleDataModule(root=None, sample=True)
    assert (folder.crop_scale, folder.flip) == ((1.0, 1.0), False)
    assert (sample.crop_scale, sample.flip) == ((0.25, 1.0), True)
    given = StyleDataModule(root=None, sample=True, crop_scale=(0.5, 0.75), flip=False)
    assert (given.crop_scale, given.flip) == ((0.5, 0.75), False)
    fallback = StyleDataModule(root=str(tmp_path / "missing"), fallback_to_sample=True)
    assert (fallback.crop_scale, fallback.flip) == ((0.25, 1.0), True)


def test_crop_scale_is_checked(tmp_path):
    with pytest.raises(ValueError, match="data.crop_scale must be"):
        StyleDataModule(root=str(tmp_path), crop_scale=(0.8, 0.5))


def test_an_unreadable_file_is_skipped_with_a_warning(tmp_path, caplog):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 definitely not a jpeg")
    good = _photo(tmp_path / "good.png")
    ds = PhotoDataset([bad, good], 16)
    with caplog.at_level(logging.WARNING):
        x = ds[0]
    assert x.shape == (3, 16, 16) and "broken.jpg" in caplog.text
    bad2 = tmp_path / "broken2.png"
    bad2.write_bytes(b"nope")
    with pytest.raises(UserError, match="none of the 2 images"):
        PhotoDataset([bad, bad2], 16)[0]


def test_held_out_split(tmp_path):
    for i in range(6):
        _photo(tmp_path / f"p{i}.png")
    dm = StyleDataModule(str(tmp_path), image_size=32, num_val=2, num_workers=0)
    assert [p.name for p in dm.val_files] == ["p4.png", "p5.png"]
    assert len(dm.train_files) == 4 and not set(dm.train_files) & set(dm.val_files)
    named = StyleDataModule(str(tmp_path), image_size=32, val_files=["p0.png"], num_workers=0)
    assert [p.name for p in named.val_files] == ["p0.png"] and len(named.train_files) == 5
    other = tmp_path.parent / (tmp_path.name + "_val")
    _photo(other / "v.png")
    dm = StyleDataModule(str(tmp_path), image_size=32, val_root=str(other), num_workers=0)
    assert len(dm.train_files) == 6 and [p.name for p in dm.val_files] == ["v.png"]
    assert dm.sample_batch().shape == (1, 3, 256, 256)


def test_dataloader_batches(photos_dir):
    dm = StyleDataModule(str(photos_dir), image_size=32, batch_size=3, num_workers=0)
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (3, 3, 32, 32) and batch.dtype == torch.float32


def test_missing_coco_falls_back_to_sample_photos(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        dm = StyleDataModule(str(tmp_path / "coco" / "train2014"), image_size=32, num_workers=0, fallback_to_sample=True)
    assert "download_coco.sh" in caplog.text and "training on the 6 sample photos instead (2 more show the sample grid)" in caplog.text
    assert [p.name for p in dm.train_files] == sorted(SAMPLE_PHOTOS[:-2])
    assert [p.name for p in dm.val_files] == sorted(SAMPLE_PHOTOS[-2:])


def test_missing_or_empty_folder_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing_dir"):
        StyleDataModule(str(tmp_path / "missing_dir"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        StyleDataModule(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="batch_size"):
        StyleDataModule(str(tmp_path), batch_size=0)


COCO128 = SHARED / "coco128"


def _coco_copy(tmp_path, names: list[str], listed: list[str] | None = None) -> Path:
    """A small COCO dataset folder: train2017/ with links to ``names`` of coco128 and, when ``listed``
    is given, annotations/instances_train2017.json naming those files."""
    root = tmp_path / "coco"
    (root / "train2017").mkdir(parents=True)
    for name in names:
        (root / "train2017" / name).symlink_to(COCO128 / "train2017" / name)
    if listed is not None:
        (root / "annotations").mkdir()
        (root / "annotations" / "instances_train2017.json").write_text(
            json.dumps({"images": [{"id": i, "file_name": n} for i, n in enumerate(listed)], "annotations": []}))
    return root


def test_coco_layout_reads_the_photos_its_annotations_list():
    """data=coco on COCO's own layout (the shared coco128: train2017/ beside annotations/): the dataset
    folder and the image folder both give the 128 photos instances_train2017.json lists."""
    listed = sorted(e["file_name"] for e in json.loads((COCO128 / "annotations" / "instances_train2017.json").read_text())["images"])
    for root in (COCO128, COCO128 / "train2017"):
        dm = StyleDataModule(str(root), num_workers=0, num_val=2)
        assert [f.name for f in dm.train_files + dm.val_files] == listed and len(listed) == 128
        assert dm.root == COCO128 / "train2017"


def test_coco_annotations_decide_which_photos_train(tmp_path, caplog):
    """A photo in the folder that the JSON does not list is left out; one the JSON lists that is not
    there is reported once and left out; without the JSON every image in the folder trains."""
    names = sorted(p.name for p in (COCO128 / "train2017").glob("*.jpg"))[:6]
    root = _coco_copy(tmp_path, names, listed=names[:4] + ["000000999999.jpg"])
    with caplog.at_level("WARNING"):
        dm = StyleDataModule(str(root), num_workers=0, num_val=1)
    assert [f.name for f in dm.train_files + dm.val_files] == names[:4]
    assert "1 of the 5 photos instances_train2017.json lists are not in" in caplog.text
    plain = _coco_copy(tmp_path / "plain", names)
    assert len(StyleDataModule(str(plain), num_workers=0, num_val=1).train_files) == 5


def test_a_broken_coco_annotation_file_is_one_clear_error(tmp_path):
    root = _coco_copy(tmp_path, ["000000000009.jpg"], listed=[])
    (root / "annotations" / "instances_train2017.json").write_text('{"images": [{"name": 1}]}')
    with pytest.raises(UserError, match="is not COCO's annotation JSON .* move it away to train on every image"):
        StyleDataModule(str(root), num_workers=0)


def test_several_roots_train_together_and_hold_out_by_name(photos_dir):
    """data.root=[COCO, a photo folder]: every photo of both, the named ones held out (and never trained on)."""
    held = ["chicago.jpg", "dog.jpg", "000000000650.jpg"]
    dm = StyleDataModule([str(COCO128), str(photos_dir)], num_workers=0, val_files=held)
    assert sorted(f.name for f in dm.val_files) == sorted(held)
    assert len(dm.train_files) == 128 + len(list(photos_dir.iterdir())) - 3
    assert not {f.name for f in dm.train_files} & set(held) and dm.folders == [COCO128 / "train2017", photos_dir]
