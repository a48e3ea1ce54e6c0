"""emotic-exports through Prefect: per-person red-box images and both LLaVA exports, cached on rerun."""

from __future__ import annotations

import json
from pathlib import Path

import data_fixtures as fx
import pytest
import yaml

pytestmark = pytest.mark.slow


def test_emotic_exports_flow(tmp_path: Path, prefect_harness) -> None:
    from conftest import write_small_config

    from pipelines.flows.emotic import emotic_exports

    config = write_small_config(tmp_path)
    fx.make_emotic(tmp_path / "EMOTIC")
    data = yaml.safe_load(config.read_text())
    data["datasets"]["emo"] = {"layout": "emotic", "root": str(tmp_path / "EMOTIC")}
    data["profiles"]["emotic"] = {"held_in": ["emo"], "encoder": "demo-tiny-clip", "backbone": "minilm"}
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    first = emotic_exports(config=str(config), profile="emotic")
    export = first["datasets"]["emo"]["export"]
    assert export["computed"]
    records = json.loads(Path(export["files"]["emotions_vad_train"]).read_text())
    # one record per annotated person (the image with two people gives two), not one per image
    assert sorted(r["id"].rsplit("-", 1)[1] for r in records) == ["p0", "p1"]
    assert len({r["image"] for r in records}) == 2  # each person gets its own red-box rendering
    assert all("red box" in r["conversations"][0]["value"] for r in records)
    boxes = sorted(Path(export["image_root"]).rglob("*.png"))
    assert len(boxes) >= 3 and all((Path(export["image_root"]) / r["image"]).exists() for r in records)
    mtimes = [p.stat().st_mtime_ns for p in boxes]
    again = emotic_exports(config=str(config), profile="emotic")
    assert not again["datasets"]["emo"]["export"]["computed"]
    assert [p.stat().st_mtime_ns for p in sorted(Path(export["image_root"]).rglob("*.png"))] == mtimes
    with pytest.raises(ValueError, match="layout: emotic"):
        emotic_exports(config=str(config), profile="demo")
