"""EMOTIC as LLaVA on EMOTIC uses it: every person kept, red-box images, V/A/D words, the two exports."""

from __future__ import annotations

import json
from pathlib import Path

import data_fixtures as fx
import numpy as np
import pytest
from PIL import Image

from tinyemo_core.data.adapters import DatasetLayoutError
from tinyemo_core.data.adapters.emotic import read_emotic
from tinyemo_core.data.emotic_boxes import BoxStyle, boxes_root, draw_box, pixel_box, render_person
from tinyemo_core.data.ingest import build_manifest
from tinyemo_core.generate import emotic_export as X
from tinyemo_core.judge import emotic as E
from tinyemo_core.stages import emotic as S
from tinyemo_core.store.manifests import write_manifest


def _people(res):
    return {(r.split, r.path): r.attributes["people"] for r in res.records}


@pytest.mark.parametrize("make", [fx.make_emotic_mat, fx.make_emotic_csv], ids=["Annotations.mat", "csv"])
def test_adapter_reads_the_published_formats_keeping_every_person(tmp_path: Path, make) -> None:
    res = read_emotic(make(tmp_path))
    people = _people(res)
    assert sorted(people) == [("test", "emotic/framesdb/images/frame_c.jpg"),
                              ("train", "emotic/ade20k/images/sun_b.jpg"),
                              ("train", "emotic/mscoco/images/COCO_a.jpg")]
    b = people[("train", "emotic/ade20k/images/sun_b.jpg")]
    assert [p["index"] for p in b] == [0, 1, 2]
    assert [p["bbox"] for p in b] == [[1, 1, 12, 12], [14, 2, 30, 20], [30, 10, 39, 29]]
    assert [p["categories"] for p in b] == [["peace"], ["fatigue", "sadness"], ["pain"]]
    assert [(p["valence"], p["arousal"], p["dominance"]) for p in b] == [(6, 2, 6), (3, 3, 4), (2, 7, 3)]
    assert b[1]["gender"] == "Female"
    c = people[("test", "emotic/framesdb/images/frame_c.jpg")][0]  # val/test: the combined annotation
    assert c["categories"] == ["fear", "surprise"] and (c["valence"], c["arousal"]) == (2.4, 8.6)
    a = next(r for r in res.records if r.path.endswith("COCO_a.jpg"))
    assert a.labels == ["doubt/confusion", "engagement", "happiness"]  # union, frequency then alphabetical
    assert a.attributes["valence"] == pytest.approx(5.5)


def test_mat_and_csv_give_identical_records(tmp_path: Path) -> None:
    m = read_emotic(fx.make_emotic_mat(tmp_path / "m"))
    c = read_emotic(fx.make_emotic_csv(tmp_path / "c"))
    assert [(r.path, r.split, r.labels, r.attributes) for r in m.records] == [
        (r.path, r.split, r.labels, r.attributes) for r in c.records
    ]


def test_csv_errors_name_the_file_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "train.csv").write_text("Folder,Filename,Whatever\na,b.jpg,1\n")
    with pytest.raises(DatasetLayoutError, match=r"train\.csv needs columns Folder, Filename"):
        read_emotic(tmp_path)
    (tmp_path / "annotations" / "train.csv").write_text(
        "Folder,Filename,BBox,Categorical_Labels,Continuous_Labels\na,b.jpg,[1 2,['Peace'],[1,2,3]\n"
    )
    with pytest.raises(DatasetLayoutError, match=r"line 2, column 'BBox'"):
        read_emotic(tmp_path)


def test_red_box_changes_only_the_outline_pixels() -> None:
    rng = np.random.default_rng(0)
    src = Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    width = 2
    out = np.asarray(draw_box(src, [5.4, 3.6, 30.2, 50], BoxStyle(width=width)))  # y2 beyond the image
    before = np.asarray(src)
    x1, y1, x2, y2 = 5, 4, 30, 29  # rounded; y2 clipped to the last row
    assert pixel_box([5.4, 3.6, 30.2, 50], (40, 30)) == (x1, y1, x2, y2)
    ys, xs = np.mgrid[0:30, 0:40]
    outer = (xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2)
    inner = (xs >= x1 + width) & (xs <= x2 - width) & (ys >= y1 + width) & (ys <= y2 - width)
    band = outer & ~inner
    assert (out[~band] == before[~band]).all()  # nothing outside the outline moved
    assert (out[band] == (255, 0, 0)).all()  # the whole outline is red
    assert band.sum() == 2 * width * ((x2 - x1 + 1) + (y2 - y1 + 1)) - 4 * width * width


def test_rendering_is_cached_content_addressed_and_lossless(tmp_path: Path) -> None:
    src = fx.write_image(tmp_path / "a.png", size=(40, 30), seed=3)
    rel, computed = render_person(src, "img1", [2, 2, 20, 20], tmp_path / "store")
    assert computed and rel.endswith(".png") and rel.split("/")[0] == rel.split("/")[1][:2]
    dest = boxes_root(tmp_path / "store") / rel
    first = dest.read_bytes()
    assert render_person(src, "img1", [2, 2, 20, 20], tmp_path / "store") == (rel, False)
    assert dest.read_bytes() == first
    assert render_person(src, "img1", [3, 2, 20, 20], tmp_path / "store")[0] != rel  # other box, other file
    saved, expected = np.asarray(Image.open(dest)), np.asarray(draw_box(Image.open(src), [2, 2, 20, 20]))
    assert (saved == expected).all()
    assert not [p for p in dest.parent.iterdir() if p.suffix == ".tmp"]


def test_vad_bins_and_words() -> None:
    assert len(X.VAD_WORDS) == 10 and X.VAD_WORDS[0] == "very low" and X.VAD_WORDS[-1] == "very high"
    values = (1, 1.49, 1.5, 5.49, 5.5, 9.5, 10, 0.2, 12)
    assert [X.vad_bin(v) for v in values] == [1, 1, 2, 5, 6, 10, 10, 1, 10]
    for b in range(1, 11):  # every bin survives answer -> parse
        text = X.answer(["fear"], (b, 11 - b, b), "emotions_vad")
        assert E.parse_answer(text) == (["fear"], (b, 11 - b, b))


def _persons(tmp_path: Path) -> tuple[Path, Path, dict]:
    root = fx.make_emotic_mat(tmp_path / "emotic")
    store = tmp_path / "storage"
    res = build_manifest("emotic", "emotic", root, progress=False)
    manifest = store / "manifests" / "emotic" / "fp0.parquet"
    write_manifest(manifest, res.table, {})
    return root, store, S.render_persons("emotic", manifest, root, store, workers=2)


def test_person_table_one_row_per_person_with_shared_image_ids(tmp_path: Path) -> None:
    root, store, summary = _persons(tmp_path)
    assert summary["computed"] and summary["rows"] == 6 and summary["images"] == 3
    assert summary["by_split"] == {"test": 1, "train": 5} and summary["rendered_now"] == 6
    rows = S.read_persons(Path(summary["dir"])).to_pylist()
    b = [r for r in rows if r["path"].endswith("sun_b.jpg")]
    assert len({r["image_id"] for r in b}) == 1 and [r["person_index"] for r in b] == [0, 1, 2]
    assert [r["person_id"] for r in b] == [f"{b[0]['image_id']}-p{i}" for i in range(3)]
    assert all((boxes_root(store) / r["rendered"]).is_file() for r in rows)
    again = S.render_persons("emotic", Path(summary["manifest"]), root, store)
    assert not again["computed"] and again["fingerprint"] == summary["fingerprint"]


def test_both_export_variants(tmp_path: Path) -> None:
    _, store, summary = _persons(tmp_path)
    persons_dir = Path(summary["dir"])
    out = S.export_persons("emotic", persons_dir, store)
    assert out["records"] == {"emotions_test": 1, "emotions_train": 5, "emotions_vad_test": 1,
                              "emotions_vad_train": 5}
    vad = {r["id"]: r for r in json.loads(Path(out["files"]["emotions_vad_train"]).read_text())}
    emo = {r["id"]: r for r in json.loads(Path(out["dir"], "emotions_train.json").read_text())}
    assert vad.keys() == emo.keys()
    rec = next(r for r in vad.values() if r["id"].endswith("-p1"))
    human, gpt = rec["conversations"][0]["value"], rec["conversations"][1]["value"]
    assert human.startswith("<image>\n") and "the person in the red box" in human
    assert (boxes_root(store) / rec["image"]).is_file()
    cats, bins = E.parse_answer(gpt)
    assert cats and all(b is not None for b in bins)
    plain = emo[rec["id"]]["conversations"][1]["value"]
    assert E.parse_answer(plain) == (cats, (None, None, None)) and "alence" not in plain
    sad = next(r for r in vad.values() if "sadness" in r["conversations"][1]["value"])
    assert sad["conversations"][1]["value"] == "Emotions: fatigue, sadness. Valence: fairly low. Arousal: " \
        "fairly low. Dominance: somewhat low."
    assert not S.export_persons("emotic", persons_dir, store)["computed"]
    persons = S.read_persons(persons_dir).to_pylist()
    items, cats26 = E.person_items("emotic", persons, boxes_root(store), "test")
    assert cats26 == list(X.CATEGORIES) and len(cats26) == 26
    assert [(it.labels, it.vad) for it in items] == [(("fear", "surprise"), (2.4, 8.6, 3.5))]
    assert Path(items[0].image_path).is_file()


def test_people_without_vad_or_categories(tmp_path: Path) -> None:
    fx.make_emotic(tmp_path / "emotic")  # JSON form: one person without categories, one with V/A/D 11
    data = json.loads((tmp_path / "emotic" / "annotations" / "train.json").read_text())
    data[0]["people"].append({"bbox": [0, 0, 4, 4], "categories": []})
    (tmp_path / "emotic" / "annotations" / "train.json").write_text(json.dumps(data))
    res = build_manifest("emotic", "emotic", tmp_path / "emotic", progress=False)
    manifest = tmp_path / "storage" / "manifests" / "emotic" / "fp1.parquet"
    write_manifest(manifest, res.table, {})
    summary = S.render_persons("emotic", manifest, tmp_path / "emotic", tmp_path / "storage")
    assert summary["rows"] == 3 and summary["skipped"] == {"no categories": 1}
    out = S.export_persons("emotic", Path(summary["dir"]), tmp_path / "storage")
    assert out["without_vad"] == {"test": 1}
    (rec,) = json.loads(Path(out["files"]["emotions_vad_test"]).read_text())
    assert rec["conversations"][1]["value"] == "Emotions: fatigue."  # V/A/D outside 1-10: not invented
