"""Each published layout, built as a tiny fake tree of real images, read back through list_samples."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import data_fixtures as fx
import pytest

from tinyemo_core.data.adapters import ADAPTERS, DatasetLayoutError, list_samples


def _by_path(result) -> dict:
    return {r.path: r for r in result.records}


def test_registry_has_every_layout() -> None:
    expected = {
        "emoset",
        "webemo",
        "emotionroi",
        "emotion6",
        "fi",
        "artphoto",
        "abstract",
        "unbiasedemo",
        "emotic",
        "affection",
        "imagefolder",
        "csv",
        "jsonl",
    }
    assert set(ADAPTERS) == expected
    with pytest.raises(ValueError, match="unknown dataset layout 'nope'"):
        list_samples("nope", Path("."))


def test_emoset_splits_and_attributes(tmp_path: Path) -> None:
    fx.make_emoset(tmp_path)
    res = list_samples("emoset", tmp_path)
    assert Counter(r.split for r in res.records) == {"train": 6, "val": 2, "test": 4}
    rec = _by_path(res)["image/awe/awe_train00.jpg"]
    assert rec.labels == ["awe"] and rec.split == "train"
    assert rec.attributes == {
        "brightness": 0.5,
        "colorfulness": 0.25,
        "scene": "beach",
        "object": ["dog"],
        "facial_expression": "happy",
        "human_action": "run",
    }
    assert _by_path(res)["image/awe/awe_test01.jpg"].attributes == {}
    assert res.notes["annotation missing"] == 1


def test_webemo_normalises_misspelled_folders(tmp_path: Path) -> None:
    fx.make_webemo(tmp_path)
    res = list_samples("webemo", tmp_path)
    assert {r.labels[0] for r in res.records} == {"cheerfulness", "irritability", "rage"}
    assert Counter(r.split for r in res.records) == {"train": 12, "test": 6, "val": 3}
    assert _by_path(res)["validation/cheerfullness/000.jpg"].split == "val"


def test_webemo_without_validation_keeps_train_whole(tmp_path: Path) -> None:
    fx.make_webemo(tmp_path, with_validation=False)
    res = list_samples("webemo", tmp_path, val_fraction=0.25)
    by_split = Counter((r.split, r.labels[0]) for r in res.records)
    assert all(by_split[("val", c)] == 0 and by_split[("train", c)] == 4 for c in ("rage", "cheerfulness"))
    assert all(r.path.startswith("test/") for r in res.records if r.split == "test")


def test_emotionroi_official_split_kept_whole(tmp_path: Path) -> None:
    """The official training set is not cut for validation (the paper trains on all of it)."""
    fx.make_emotionroi(tmp_path, per_class=10)
    res = list_samples("emotionroi", tmp_path, val_fraction=0.3)
    counts = Counter((r.split, r.labels[0]) for r in res.records)
    assert counts == {("train", "anger"): 7, ("test", "anger"): 3, ("train", "joy"): 7, ("test", "joy"): 3}
    test_paths = {f"images/{c}/{i}.jpg" for c in ("anger", "joy") for i in range(7, 10)}
    assert {r.path for r in res.records if r.split == "test"} == test_paths  # official test untouched
    assert res.dropped == {"not in official split": 1}


def test_emotion6_fi_unbiased_get_stratified_splits(tmp_path: Path) -> None:
    fx.make_emotion6(tmp_path / "e6", per_class=10)
    res = list_samples("emotion6", tmp_path / "e6", val_fraction=0.1, test_fraction=0.2)
    counts = Counter((r.split, r.labels[0]) for r in res.records)
    for cls in ("fear", "joy", "surprise"):
        assert (counts[("train", cls)], counts[("val", cls)], counts[("test", cls)]) == (7, 1, 2)

    fx.make_fi(tmp_path / "fi")
    fi = list_samples("fi", tmp_path / "fi")
    assert {r.labels[0] for r in fi.records} == {"amusement", "sadness"}  # capitalised folders
    assert all(r.path.split("/")[0] in ("Amusement", "Sadness") for r in fi.records)

    fx.make_unbiasedemo(tmp_path / "ub")
    ub = list_samples("unbiasedemo", tmp_path / "ub")
    assert len(ub.records) == 12 and {r.labels[0] for r in ub.records} == {"love", "anger"}
    assert Counter(r.attributes["subject"] for r in ub.records) == {"child": 6, "dog": 6}


def test_artphoto_prefix_labels(tmp_path: Path) -> None:
    fx.make_artphoto(tmp_path)
    res = list_samples("artphoto", tmp_path)
    assert Counter(r.labels[0] for r in res.records) == {"sadness": 4, "contentment": 4}
    assert res.dropped == {"no label prefix in file name": 1}


def test_abstract_argmax_and_ties_dropped_and_counted(tmp_path: Path) -> None:
    fx.make_abstract(tmp_path)
    res = list_samples("abstract", tmp_path)
    labels = {r.path: r.labels for r in res.records}
    assert labels == {"images/abstract_1.jpg": ["amusement"], "images/abstract_2.jpg": ["sadness"]}
    assert res.dropped == {"tied vote": 2, "no votes": 1}
    votes = _by_path(res)["images/abstract_2.jpg"].attributes["votes"]
    assert votes["sadness"] == 7 and votes["fear"] == 2 and set(votes) >= {"contentment", "awe"}


def test_emotic_multilabel_vad_and_boxes(tmp_path: Path) -> None:
    fx.make_emotic(tmp_path)
    res = list_samples("emotic", tmp_path)
    recs = _by_path(res)
    a = recs["mscoco/images/a.jpg"]
    assert a.split == "train"
    assert a.labels == ["happiness", "doubt/confusion", "engagement"]  # most frequent first, then A-Z
    assert a.attributes["valence"] == pytest.approx(6.0) and a.attributes["dominance"] == pytest.approx(7.0)
    assert a.attributes["people"][0]["bbox"] == [1.0, 2.0, 10.0, 11.0]
    assert a.attributes["people"][0]["arousal"] == 6.0 and a.attributes["people"][0]["gender"] == "Female"
    c = recs["mscoco/images/c.jpg"]
    assert c.split == "test" and c.labels == ["fatigue"] and "valence" not in c.attributes  # arousal 11
    assert res.dropped == {"no emotion categories": 1}
    assert res.notes["person V/A/D missing or outside 1-10"] == 1


def test_imagefolder_with_and_without_split_folders(tmp_path: Path) -> None:
    fx.write_image(tmp_path / "a" / "train" / "Happy Dog" / "1.jpg", seed=1)
    fx.write_image(tmp_path / "a" / "test" / "Happy Dog" / "2.jpg", seed=2)
    res = list_samples("imagefolder", tmp_path / "a")
    assert [(r.split, r.labels) for r in res.records] == [("test", ["happy dog"]), ("train", ["happy dog"])]
    for i in range(5):
        fx.write_image(tmp_path / "b" / "calm" / f"{i}.png", seed=10 + i)
    res = list_samples("imagefolder", tmp_path / "b", val_fraction=0.2, test_fraction=0.2)
    assert Counter(r.split for r in res.records) == {"train": 3, "val": 1, "test": 1}


def test_csv_and_jsonl_manifests(tmp_path: Path) -> None:
    fx.write_image(tmp_path / "img" / "1.jpg", seed=1)
    fx.write_image(tmp_path / "img" / "2.jpg", seed=2)
    (tmp_path / "labels.csv").write_text(
        "path,label,split,photographer\n"
        "img/1.jpg,Sad|Angry,training,ann\n"
        "img/2.jpg,joy,,bob\n"
        "../escape.jpg,fear,test,eve\n"
        "img/3.jpg,,test,x\n"
        "img/1.jpg,joy,test,again\n"
    )
    res = list_samples("csv", tmp_path)
    recs = _by_path(res)
    assert recs["img/1.jpg"].labels == ["sadness", "anger"] and recs["img/1.jpg"].split == "train"
    assert recs["img/1.jpg"].attributes == {"photographer": "ann"}
    assert recs["img/2.jpg"].split in {"train", "val", "test"}
    assert recs["../escape.jpg"].split == "test"  # kept: ingest quarantines it as outside the root
    assert res.dropped == {"row without label": 1, "path listed twice": 1}

    lines = [
        {"path": "img/1.jpg", "labels": ["Awe"], "split": "validation", "score": 3},
        {"path": str(tmp_path / "img" / "2.jpg"), "label": "joy", "split": "test"},
    ]
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    res = list_samples("jsonl", tmp_path / "data.jsonl")
    assert [(r.path, r.split, r.labels, r.attributes) for r in res.records] == [
        ("img/1.jpg", "val", ["awe"], {"score": 3}),
        ("img/2.jpg", "test", ["joy"], {}),
    ]


def test_bad_split_name_names_the_row(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("path,label,split\na.jpg,joy,holdout\n")
    with pytest.raises(DatasetLayoutError, match=r"labels.csv:2: unknown split name 'holdout'"):
        list_samples("csv", tmp_path)


@pytest.mark.parametrize("layout", ["emoset", "emotionroi", "emotion6", "abstract", "emotic", "unbiasedemo"])
def test_wrong_folder_gives_a_layout_error(tmp_path: Path, layout: str) -> None:
    with pytest.raises(DatasetLayoutError, match=layout):
        list_samples(layout, tmp_path)


def test_missing_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_samples("fi", tmp_path / "missing")
