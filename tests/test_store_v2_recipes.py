"""The reading recipes of docs/stores.md work on a real format-2 store (pyarrow, numpy, polars)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from tinyemo_core.store.features import FeatureStore


@pytest.fixture()
def shards(tmp_path: Path) -> tuple[list[str], np.ndarray]:
    store = FeatureStore(tmp_path / "features" / "enc" / "ds", "enc")
    items = [(f"{i:04d}", "x") for i in range(10)]
    x = np.random.default_rng(0).standard_normal((10, 8)).astype(np.float16)
    infos = []
    for p in store.plan(items, 4):
        rows = x[[int(i) for i in p.image_ids]]
        infos.append(store.write_shard(p.name, p.image_ids, rows, np.arange(len(rows)), {}))
    store.commit(infos)
    m = json.load(open(store.manifest_path))
    return [str(store.root / s["name"]) for s in m["shards"]], x


def test_pyarrow_and_numpy_recipes(shards) -> None:
    paths, x = shards
    table = pa.concat_tables(ipc.open_file(pa.memory_map(p)).read_all() for p in paths)
    assert table.num_rows == 10 and table["error"].null_count == 10
    t = ipc.open_file(pa.memory_map(paths[0])).read_all()
    first = t["vector"].combine_chunks().flatten().to_numpy().reshape(len(t), -1)
    assert first.dtype == np.float16 and np.array_equal(first, x[[int(i) for i in t["image_id"].to_pylist()]])


def test_polars_recipe(shards) -> None:
    pl = pytest.importorskip("polars")
    paths, x = shards
    df = pl.concat([pl.read_ipc(p) for p in paths])
    assert df.height == 10
    got = np.stack(df["vector"].to_numpy())
    assert np.array_equal(got, x[[int(i) for i in df["image_id"].to_list()]])
