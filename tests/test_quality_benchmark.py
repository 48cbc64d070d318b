"""scripts/quality_benchmark.py on a tiny config: it trains, scores against cached optimization results."""

import json
import subprocess
import sys

import pytest
from conftest import REPO, tiny_args
from PIL import Image


def test_quality_benchmark_scores_a_recipe_against_cached_references(tmp_path, photos_dir, starry_night):
    photos = [str(photos_dir / "horses.jpg"), str(photos_dir / "stata.jpg")]
    overrides = [a for a in tiny_args(tmp_path / "unused", photos_dir, starry_night, "trainer.max_steps=3", "sample_every=0")
                 if not a.startswith(("hydra.run.dir", "logger="))]

    def run(out: str, *args: str) -> dict:
        command = [sys.executable, str(REPO / "scripts" / "quality_benchmark.py"), "--photos", *photos, "--size", "48",
                   "--reference-steps", "3", "--out", str(tmp_path / out), "--cache", str(tmp_path / "refs"), *args]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "(model / 3 L-BFGS iterations)" in proc.stdout
        return json.loads((tmp_path / out / "quality.json").read_text())

    first = run("a", *overrides)
    assert len(first["per_photo"]) == 2 and first["references_cached"] == 0 and first["minutes"] > 0
    for record in first["per_photo"]:
        for key in ("content", "style", "total"):
            assert record["ratio"][key] == pytest.approx(record["model"][key] / record["reference"][key])
    assert first["mean_ratio"]["total"] == pytest.approx(sum(r["ratio"]["total"] for r in first["per_photo"]) / 2)
    assert len(list((tmp_path / "refs").glob("*.png"))) == 2
    with Image.open(tmp_path / "a" / "contact_sheet.png") as sheet:
        assert sheet.size == (3 * 256, 18 + 3 * 256)  # labels, the painting, one row per photo: photo | model | optimization
    # The finished run scored again (no training); same photos, style, size and loss: the references
    # come from the cache, and both scores are the same.
    second = run("b", "--run", str(tmp_path / "a" / "run"))
    assert second["references_cached"] == 2 and second["minutes"] is None and second["overrides"] == first["overrides"]
    assert [(r["model"], r["reference"]) for r in second["per_photo"]] == [(r["model"], r["reference"]) for r in first["per_photo"]]
