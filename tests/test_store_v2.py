"""Store format 2: v1 stores still load, fingerprints do not move, migrate-stores (dry run, kill-safe),
memory-mapped gathers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tinyemo_core.store import migrate
from tinyemo_core.store.features import FeatureStore
from tinyemo_core.store.labels import LabelTable, read_label_table, write_label_table
from tinyemo_core.store.vectors import vector_array

ITEMS = [(f"{i:04d}", f"/img/{i}.jpg") for i in range(10)]


def _vectors(n: int, dim: int = 6) -> np.ndarray:
    return np.random.default_rng(n).standard_normal((n, dim)).astype(np.float16)


def _write(store: FeatureStore, legacy: bool) -> tuple[dict, dict[str, np.ndarray]]:
    """A committed store over ITEMS (one failed row per shard); ``legacy`` writes the v1 layout."""
    expect, infos = {}, []
    for p in store.plan(ITEMS, shard_size=4):
        n = len(p.image_ids)
        vec, ok = _vectors(n), np.arange(n - 1)
        expect.update({i: v for i, v in zip(p.image_ids[:-1], vec, strict=False)})
        if not legacy:
            infos.append(store.write_shard(p.name, p.image_ids, vec[: n - 1], ok, {n - 1: "truncated"}))
            continue
        mask = np.zeros(n, bool)
        mask[-1] = True
        vec[-1] = 0
        table = pa.table({"image_id": list(p.image_ids), "vector": vector_array(vec, "float16", mask=mask),
                          "error": [None] * (n - 1) + ["truncated"]})
        name = p.name.replace(".arrow", ".parquet")
        store.root.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, store.shard_path(name), compression=None)  # exactly what format 1 wrote
        infos.append({"name": name, "rows": n, "ok": n - 1, "failed": 1, "dim": 6})
    return store.commit(infos), expect


def _snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


def test_v1_store_loads_and_hashes_like_v2(tmp_path: Path) -> None:
    v1, v2 = FeatureStore(tmp_path / "v1", "enc"), FeatureStore(tmp_path / "v2", "enc")
    m1, expect = _write(v1, legacy=True)
    m2, _ = _write(v2, legacy=False)
    assert m1["format"] == 1 and m2["format"] == 2
    assert all(s["name"].endswith(".arrow") for s in m2["shards"])
    assert m1["content_hash"] == m2["content_hash"]  # train/eval fingerprints do not see the format
    for store in (v1, v2):
        ids, vecs = store.load()
        assert len(ids) == 7 and np.array_equal(vecs, np.stack([expect[i] for i in ids]))
        assert store.stored_ids() == {i for i, _ in ITEMS}  # failed rows count as stored (not retried)
        assert store.shard_info(store.manifest()["shards"][0]["name"])["failed"] == 1
    want = ["0005", "0000", "0005"]
    assert np.array_equal(v1.load(want)[1], v2.load(want)[1])
    # adding images to a v1 store writes v2 shards next to the v1 ones; both are read
    more = [(f"{i:04d}", "x") for i in range(10, 13)]
    (plan,) = v1.plan(ITEMS + more, shard_size=4)
    assert plan.name.endswith(".arrow")
    mixed = v1.commit([v1.write_shard(plan.name, plan.image_ids, _vectors(3), np.arange(3), {})])
    assert mixed["format"] == 1 and len(v1.load()[0]) == 10


def test_migrate_dry_run_then_in_place(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "features" / "enc" / "ds", "enc")
    before, expect = _write(store, legacy=True)
    table = LabelTable(["joy", "fear"], ["{label}"] * 2, ["joy", "fear"], np.eye(2, 4, dtype=np.float32))
    label_path = tmp_path / "labels" / "bb" / "fp.parquet"
    write_label_table(label_path, table, {"backbone": "bb"})
    legacy = pa.table({"label": table.labels, "template": table.templates, "text": table.texts,
                       "vector": vector_array(table.vectors, "float32")})
    pq.write_table(legacy, label_path)  # a format-1 label table
    marker = label_path.with_suffix(".json").read_text()
    snap = _snapshot(tmp_path)

    dry = migrate.migrate_stores(tmp_path, dry_run=True)
    assert [s["kind"] for s in dry["stores"]] == ["features", "labels"] and dry["migrated"] == 0
    assert len(dry["stores"][0]["shards"]) == 3 and _snapshot(tmp_path) == snap  # nothing touched

    events: list[dict] = []
    done = migrate.migrate_stores(tmp_path, on_progress=events.append)
    assert done["migrated"] == 2 and events[-1]["done"] == 2
    after = store.manifest()
    assert after["format"] == 2 and after["content_hash"] == before["content_hash"]
    assert sorted(p.name for p in store.root.iterdir()) == sorted(
        [s["name"] for s in after["shards"]] + ["_manifest.json"])
    ids, vecs = store.load()
    assert np.array_equal(vecs, np.stack([expect[i] for i in ids]))
    assert pa.types.is_fixed_size_binary(pq.read_schema(label_path).field("vector").type)
    assert np.array_equal(read_label_table(label_path).vectors, table.vectors)
    assert label_path.with_suffix(".json").read_text() == marker
    assert migrate.plan_migration(tmp_path) == []  # a second run has nothing to do


def test_migrate_killed_before_its_manifest_keeps_a_loadable_store(tmp_path: Path, monkeypatch) -> None:
    store = FeatureStore(tmp_path / "features" / "enc" / "ds", "enc")
    _, expect = _write(store, legacy=True)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed before the manifest")

    monkeypatch.setattr(migrate, "write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        migrate.migrate_stores(tmp_path)
    assert store.manifest()["format"] == 1  # the old manifest still rules; new shards are unlisted
    assert len(list(store.root.glob("*.arrow"))) == 3
    ids, vecs = store.load()
    assert np.array_equal(vecs, np.stack([expect[i] for i in ids]))
    monkeypatch.undo()
    migrate.migrate_stores(tmp_path)  # adopts the written shards, finishes
    assert store.manifest()["format"] == 2 and not list(store.root.glob("*.parquet"))
    # killed after the manifest, before the v1 files were deleted: the next run deletes the leftovers
    leftover = store.root / store.manifest()["shards"][0]["name"].replace(".arrow", ".parquet")
    leftover.write_bytes(b"old shard")
    assert migrate.plan_migration(tmp_path)[0]["leftovers"] == [leftover.name]
    migrate.migrate_stores(tmp_path)
    assert not leftover.exists()


def test_gather_into_a_memmap(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "s", "enc")
    _, expect = _write(store, legacy=False)
    want = ["0006", "0001", "0006", "0002"]
    ids, mm = store.load(want, memmap_to=tmp_path / "rows.npy")
    assert isinstance(mm, np.memmap) and ids == want
    assert np.array_equal(mm, np.stack([expect[i] for i in want]))
    assert np.array_equal(np.load(tmp_path / "rows.npy"), mm)  # a plain .npy file
    with pytest.raises(KeyError, match="0003"):  # "0003" failed to decode: never silently dropped
        store.load(["0001", "0003"])
    assert store.nbytes() == 7 * 6 * 2
