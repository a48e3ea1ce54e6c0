"""build_manifest: exact schema, sorted deterministic rows, quarantine with reasons, duplicate collapse."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import data_fixtures as fx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tinyemo_core.data.ingest import MANIFEST_SCHEMA, build_manifest, quarantine_summary
from tinyemo_core.data.taxonomy import UnknownLabelError

COLUMNS = [
    "image_id",
    "path",
    "split",
    "label",
    "labels",
    "taxonomy",
    "dataset",
    "status",
    "error",
    "width",
    "height",
    "attributes",
    "aliases",
]


def _messy_imagefolder(root: Path) -> None:
    """Good images plus every bad input the ingest must survive, in one ImageFolder tree."""
    for i in range(4):
        fx.write_image(root / "joy" / f"{i}.jpg", fx.COLOURS["yellow"], seed=i)
        fx.write_image(root / "sadness" / f"{i}.jpg", fx.COLOURS["blue"], seed=10 + i)
    shutil.copy(root / "joy" / "0.jpg", root / "joy" / "0_copy.jpg")  # same bytes, same label
    shutil.copy(root / "joy" / "1.jpg", root / "sadness" / "zz_dup.jpg")  # same bytes, other label
    (root / "joy" / "empty.jpg").write_bytes(b"")
    data = fx.image_bytes(size=(64, 64), seed=99)
    (root / "sadness" / "cut.jpg").write_bytes(data[: len(data) // 2])
    (root / "sadness" / "notes.jpg").write_text("not an image")
    (root / "sadness" / "bomb.png").write_bytes(fx.png_with_size(100_000, 100_000))
    fx.write_image(root / "joy" / "笑顔 ☺.png", seed=42)
    outside = fx.write_image(root.parent / "elsewhere.jpg", seed=77)
    (root / "joy" / "escape.jpg").symlink_to(outside)


def test_manifest_schema_counts_and_quarantine(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    _messy_imagefolder(root)
    res = build_manifest("messy", "imagefolder", root, progress=False)
    table = res.table
    assert table.column_names == COLUMNS and table.schema.equals(MANIFEST_SCHEMA)
    assert table.schema.field("width").type == pa.int32() and table.schema.field("labels").type == pa.list_(
        pa.string()
    )
    paths = table.column("path").to_pylist()
    assert paths == sorted(paths)
    rows = {r["path"]: r for r in table.to_pylist()}

    assert res.counts["quarantined"] == {
        "empty file": 1,
        "truncated or corrupt image": 1,
        "not an image": 1,
        "decompression bomb": 1,
        "outside dataset root": 1,
    }
    for path in (
        "joy/empty.jpg",
        "sadness/cut.jpg",
        "sadness/notes.jpg",
        "sadness/bomb.png",
        "joy/escape.jpg",
    ):
        row = rows[path]
        assert row["status"] == "quarantined" and row["error"] and row["image_id"] is None
        assert row["width"] is None and row["height"] is None
    assert rows["joy/笑顔 ☺.png"]["status"] == "ok" and rows["joy/笑顔 ☺.png"]["width"] == 16

    # Duplicates: one row per image_id, first path in sorted order, the others as aliases.
    assert "joy/0_copy.jpg" not in rows and rows["joy/0.jpg"]["aliases"] == ["joy/0_copy.jpg"]
    assert "sadness/zz_dup.jpg" not in rows and rows["joy/1.jpg"]["aliases"] == ["sadness/zz_dup.jpg"]
    assert rows["joy/1.jpg"]["label"] == "joy"  # first path's label kept; the conflict is counted
    conflicts = json.loads(rows["joy/1.jpg"]["attributes"])["alias_conflicts"]
    assert conflicts[0]["path"] == "sadness/zz_dup.jpg" and conflicts[0]["labels"] == ["sadness"]
    assert res.counts["duplicates"] == 2 and res.counts["duplicate_label_conflicts"] == 1
    ok_ids = [r["image_id"] for r in rows.values() if r["status"] == "ok"]
    assert len(ok_ids) == len(set(ok_ids)) == res.counts["ok"] == 9
    assert res.counts["rows"] == table.num_rows == 14
    assert set(table.column("split").to_pylist()) <= {"train", "val", "test"}
    assert set(table.column("taxonomy").to_pylist()) == {"open"} and set(
        table.column("dataset").to_pylist()
    ) == {"messy"}

    summary = quarantine_summary(table)
    assert sum(s["count"] for s in summary) == 5
    assert {s["reason"] for s in summary} == set(res.counts["quarantined"])
    assert next(s for s in summary if s["reason"] == "empty file")["examples"] == ["joy/empty.jpg"]


def test_manifest_is_deterministic_and_parallel_equals_serial(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    _messy_imagefolder(root)
    serial = build_manifest("m", "imagefolder", root, progress=False, seed=4)
    parallel = build_manifest("m", "imagefolder", root, progress=False, seed=4, workers=4)
    assert serial.table.equals(parallel.table) and serial.counts == parallel.counts
    pq.write_table(serial.table, tmp_path / "a.parquet")
    pq.write_table(parallel.table, tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_layout_taxonomy_attributes_and_missing_files(tmp_path: Path) -> None:
    fx.make_emotic(tmp_path)
    (tmp_path / "annotations" / "val.json").write_text(
        json.dumps([{"path": "mscoco/images/gone.jpg", "people": [{"categories": ["Peace"]}]}])
    )
    res = build_manifest("emotic", "emotic", tmp_path, progress=False)
    rows = {r["path"]: r for r in res.table.to_pylist()}
    a = rows["mscoco/images/a.jpg"]
    assert a["taxonomy"] == "emotic26" and a["label"] == "happiness"
    assert a["labels"] == ["happiness", "doubt/confusion", "engagement"]
    assert json.loads(a["attributes"])["valence"] == pytest.approx(6.0)
    assert rows["mscoco/images/gone.jpg"]["error"].startswith("missing file")
    assert rows["mscoco/images/gone.jpg"]["split"] == "val"
    assert res.counts["dropped"] == {"no emotion categories": 1}


def test_strict_taxonomy_rejects_unknown_label_before_reading_images(tmp_path: Path) -> None:
    fx.write_image(tmp_path / "happiness" / "1.jpg")
    with pytest.raises(UnknownLabelError, match="not in taxonomy 'ekman6'"):
        build_manifest("x", "imagefolder", tmp_path, taxonomy="ekman6", progress=False)
    assert build_manifest("x", "imagefolder", tmp_path, progress=False).table.num_rows == 1


def test_workers_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="workers must be >= 1"):
        build_manifest("x", "imagefolder", tmp_path, workers=0, progress=False)


@pytest.mark.parametrize("workers", [1, 3])
def test_progress_callback_reports_every_image_in_the_calling_thread(tmp_path: Path, workers: int) -> None:
    import threading

    root = tmp_path / "ds"
    _messy_imagefolder(root)
    calls: list[tuple[int, int, int]] = []
    result = build_manifest(
        "m", "imagefolder", root, progress=False, workers=workers,
        on_progress=lambda done, total: calls.append((done, total, threading.get_ident())),
    )  # fmt: skip
    total = calls[0][1]
    assert [c[0] for c in calls] == list(range(1, total + 1))
    assert total >= result.counts["rows"]  # every listed file is inspected (duplicates collapse afterwards)
    assert {c[2] for c in calls} == {threading.get_ident()}
