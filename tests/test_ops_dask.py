"""Feature extraction on a local Dask cluster writes the same store as the thread pool."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.runtime.runners import task_runner_from

pytestmark = pytest.mark.slow


def _store(root: Path) -> tuple[dict, dict[str, bytes]]:
    """Each feature store's content hash, and its (image_id, vector) rows in a canonical order."""
    by_dataset = {}
    for store in sorted(p.parent for p in root.glob("features/*/*/_manifest.json")):
        parts = [pq.read_table(p) for p in sorted(store.glob("*.parquet"))]
        ids = [i for t in parts for i in t["image_id"].to_pylist()]
        vecs = [v for t in parts for v in t["vector"].to_pylist()]
        by_dataset[store.name] = json.dumps(sorted(zip(ids, vecs, strict=True)), default=str).encode()
    hashes = {p.parent.name: json.loads(p.read_text())["content_hash"]
              for p in root.glob("features/*/*/_manifest.json")}
    return hashes, by_dataset


def test_dask_extraction_equals_thread_pool(tmp_path: Path, prefect_harness) -> None:
    from conftest import write_small_config

    from pipelines.flows.extract_features import extract_features

    results = {}
    for kind in ("thread", "dask"):
        (tmp_path / kind).mkdir()
        config = write_small_config(tmp_path / kind)
        runner = task_runner_from({"kind": kind, "max_workers": 2})
        out = extract_features.with_options(task_runner=runner)(config=str(config), profile="demo")
        assert out["content_hashes"]
        results[kind] = _store(tmp_path / kind / "storage")
    thread_hashes, thread_rows = results["thread"]
    dask_hashes, dask_rows = results["dask"]
    assert set(thread_hashes) == {"demo_emoroi", "demo_emoset", "demo_webemo", "demo_synonyms"}
    assert dask_hashes == thread_hashes
    assert dask_rows == thread_rows
