"""EMOTIC scored per person: the judge's item hook, answer parsing from real-looking text, mAP vs sklearn."""

from __future__ import annotations

from pathlib import Path

import data_fixtures as fx
import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import average_precision_score

from tinyemo_core.data.emotic_boxes import boxes_root
from tinyemo_core.data.ingest import build_manifest
from tinyemo_core.generate import emotic_export as X
from tinyemo_core.judge import emotic as E
from tinyemo_core.judge.metrics import map_scores, multilabel_targets, vad_bin_mae
from tinyemo_core.stages.emotic import read_persons, render_persons
from tinyemo_core.store.manifests import read_manifest, write_manifest


def _manifest(tmp_path: Path) -> tuple[Path, Path, Path]:
    root, store = fx.make_emotic_mat(tmp_path / "emotic"), tmp_path / "storage"
    res = build_manifest("emotic", "emotic", root, progress=False)
    manifest = store / "manifests" / "emotic" / "fp0.parquet"
    write_manifest(manifest, res.table, {})
    return root, store, manifest


def _person_items(manifest: Path, root: Path, store: Path, split: str, max_items: int | None = None):
    """What the evaluate-generated stage does for a per-person recipe: render (cached), then items."""
    persons = render_persons("emotic", manifest, root, store)
    rows = read_persons(Path(persons["dir"])).to_pylist()
    return E.person_items("emotic", rows, boxes_root(store), split=split, max_items=max_items)


def test_person_items_one_per_person_with_red_box_images(tmp_path: Path) -> None:
    root, store, manifest = _manifest(tmp_path)
    items, cats = _person_items(manifest, root, store, split="train")
    assert cats == list(X.CATEGORIES) and len(cats) == 26
    images = {r["image_id"]: r for r in read_manifest(manifest).to_pylist() if r["split"] == "train"}
    assert len(items) == 5 and len(images) == 2  # 2 + 3 people on the two train images
    ids = [it.sample_id for it in items]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert {i.rsplit("-p", 1)[0] for i in ids} == set(images)  # person id = <image_id>-p<index>
    b = [it for it in items if images[it.sample_id.rsplit("-p", 1)[0]]["path"].endswith("sun_b.jpg")]
    assert [it.labels for it in b] == [("peace",), ("fatigue", "sadness"), ("pain",)]
    assert [it.vad for it in b] == [(6, 2, 6), (3, 3, 4), (2, 7, 3)]
    source = np.asarray(Image.open(root / images[b[0].sample_id.rsplit("-p", 1)[0]]["path"]).convert("RGB"))
    drawn = [np.asarray(Image.open(it.image_path)) for it in b]
    assert all(d.shape == source.shape and (d != source).any() for d in drawn)  # each person's own box
    assert not np.array_equal(drawn[0], drawn[1])
    mtimes = [Path(it.image_path).stat().st_mtime_ns for it in items]
    again, _ = _person_items(manifest, root, store, split="train", max_items=2)
    assert [it.sample_id for it in again] == ids[:2]
    assert [Path(it.image_path).stat().st_mtime_ns for it in items] == mtimes  # cached, not redrawn
    with pytest.raises(ValueError, match="no 'val' persons"):
        _person_items(manifest, root, store, split="val")


@pytest.mark.parametrize(
    ("answer", "cats", "vad"),
    [
        ("I think the person in the red box feels Happiness and some engagement, maybe doubt/confusion. "
         "Valence: fairly high, arousal is slightly low, dominance very high.",
         ["happiness", "engagement", "doubt/confusion"], (8, 5, 10)),
        ("Emotions: Disquietment, Yearning. Valence: low. Arousal: very low.",
         ["disquietment", "yearning"], (2, 1, None)),  # no dominance word: missing, not imputed
        ("The woman looks tired (fatigue) rather than in pain.", ["fatigue", "pain"], (None, None, None)),
        ("No idea what she feels.", [], (None, None, None)),
    ],
)
def test_parse_real_looking_answers(answer: str, cats: list[str], vad: tuple) -> None:
    assert E.parse_answer(answer) == (cats, vad)


def test_exported_targets_parse_back_and_score_perfectly(tmp_path: Path) -> None:
    root, store, manifest = _manifest(tmp_path)
    items, cats = _person_items(manifest, root, store, split="train")
    gold = [X.answer(it.labels, it.vad, "emotions_vad") for it in items]
    parsed = [E.parse_answer(a) for a in gold]
    assert [sorted(p[0]) for p in parsed] == [sorted(it.labels) for it in items]
    assert [p[1] for p in parsed] == [tuple(X.vad_bin(v) for v in it.vad) for it in items]
    targets = multilabel_targets([it.labels for it in items], cats)
    assert map_scores(targets.astype(float), targets, cats)["mAP"] == pytest.approx(1.0)
    mae = vad_bin_mae([p[1] for p in parsed], [[X.vad_bin(v) for v in it.vad] for it in items])
    assert mae["mean"] == 0.0
    # one person answered wrongly: mAP over the categories with a positive == sklearn's per-category mean
    wrong = [p[0] for p in parsed]
    wrong[0] = ["anger"]
    scores = multilabel_targets(wrong, cats).astype(float)
    keep = targets.any(axis=0)
    expected = np.mean([average_precision_score(targets[:, c], scores[:, c]) for c in np.flatnonzero(keep)])
    assert map_scores(scores, targets, cats)["mAP"] == pytest.approx(expected)
    assert expected < 1.0
