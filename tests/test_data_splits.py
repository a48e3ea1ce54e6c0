"""Seeded, stratified, persisted splits: determinism, disjointness, stability when images are added."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import data_fixtures as fx
import pytest

from tinyemo_core.data.adapters import SampleRecord, assign_splits, list_samples
from tinyemo_core.data.adapters.splits import write_split_file


def _records(n_per_class: dict[str, int], prefix: str = "") -> list[SampleRecord]:
    return [
        SampleRecord(f"{prefix}{c}/{i:04d}.jpg", None, [c]) for c, n in n_per_class.items() for i in range(n)
    ]


def _splits(records: list[SampleRecord]) -> dict[str, str]:
    return {r.path: r.split for r in records}


def test_same_seed_same_split_different_seed_different_split() -> None:
    a, b, c = (_records({"joy": 50, "fear": 30}) for _ in range(3))
    assign_splits(a, seed=1)
    assign_splits(list(reversed(b)), seed=1)  # input order must not matter
    assign_splits(c, seed=2)
    assert _splits(a) == _splits(b)
    assert _splits(a) != _splits(c)


def test_stratified_fractions_per_label_and_disjoint() -> None:
    recs = _records({"joy": 50, "fear": 30, "rare": 1})
    assign_splits(recs, seed=0, val_fraction=0.1, test_fraction=0.2)
    counts = Counter((r.labels[0], r.split) for r in recs)
    assert (counts["joy", "train"], counts["joy", "val"], counts["joy", "test"]) == (35, 5, 10)
    assert (counts["fear", "train"], counts["fear", "val"], counts["fear", "test"]) == (21, 3, 6)
    assert counts["rare", "train"] == 1  # a singleton class stays in train
    val = {r.path for r in recs if r.split == "val"}
    test = {r.path for r in recs if r.split == "test"}
    assert val and test and not val & test


def test_bad_fractions_are_rejected() -> None:
    with pytest.raises(ValueError, match="sum below 1"):
        assign_splits(_records({"a": 3}), val_fraction=0.5, test_fraction=0.5)


def test_split_file_keeps_old_assignments_when_images_are_added(tmp_path: Path) -> None:
    split_file = tmp_path / "splits" / "emotion6.json"
    fx.make_emotion6(tmp_path / "ds", per_class=10)
    first = _splits(list_samples("emotion6", tmp_path / "ds", seed=3, split_file=split_file).records)
    stored = json.loads(split_file.read_text())
    assert stored["format"] == "tinyemo-splits/1" and stored["assignments"] == first

    for i in range(10, 25):  # add 15 images to one class
        fx.write_image(tmp_path / "ds" / "images" / "joy" / f"{i:03d}.jpg", seed=5000 + i)
    res = list_samples("emotion6", tmp_path / "ds", seed=3, split_file=split_file)
    second = _splits(res.records)
    assert {p: second[p] for p in first} == first  # no old path moved
    assert len(second) == 45 and res.notes == {"split assigned": 15, "split reused": 30}
    joy = Counter(s for p, s in second.items() if "/joy/" in p)
    assert joy == {"train": 17, "val": 3, "test": 5}  # new images topped each split up to its target
    assert json.loads(split_file.read_text())["assignments"] == second
    assert not list(split_file.parent.glob(".*.tmp"))  # atomic write left no temporary file

    # Without the split file a different seed would reshuffle; with it the stored split wins.
    again = _splits(list_samples("emotion6", tmp_path / "ds", seed=99, split_file=split_file).records)
    assert again == second
    assert json.loads(split_file.read_text())["seed"] == 3  # the creating run's parameters are kept


def test_official_split_is_never_carved_even_with_an_old_split_file(tmp_path: Path) -> None:
    """A split file written by an older version (which carved EmotionROI's val out of training) is ignored
    for published splits: the official training set stays whole."""
    fx.make_emotionroi(tmp_path / "roi", per_class=10)
    split_file = tmp_path / "roi.json"
    write_split_file(split_file, {"images/anger/0.jpg": "val", "images/joy/1.jpg": "val"}, {"seed": 0})
    res = list_samples("emotionroi", tmp_path / "roi", split_file=split_file, val_fraction=0.3)
    assert Counter(r.split for r in res.records) == {"train": 14, "test": 6}


def test_corrupt_split_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "s.json"
    bad.write_text('{"something": 1}')
    with pytest.raises(ValueError, match="not a tinyemo split file"):
        assign_splits(_records({"a": 2}), split_file=bad)
