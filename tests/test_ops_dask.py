"""Feature extraction on a local Dask cluster and on a local Ray instance writes the same store as the
thread pool (the task runner only decides where shard tasks run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.runtime.runners import task_runner_from
from tinyemo_core.store.atomic import read_json
from tinyemo_core.store.features import FeatureStore

pytestmark = pytest.mark.slow


def _store(root: Path) -> dict[str, tuple[str, list[str], np.ndarray]]:
    """Per dataset: the store's content hash and its rows (image ids, vectors) in id order."""
    out = {}
    for manifest in sorted(root.glob("features/*/*/_manifest.json")):
        data = read_json(manifest)
        ids, vectors = FeatureStore(manifest.parent, data["encoder_fingerprint"]).load()
        order = np.argsort(ids)
        rows = [ids[i] for i in order], np.asarray(vectors)[order]
        out[manifest.parent.name] = (data["content_hash"], *rows)
    return out


def _extract(tmp: Path, kind: str, **runner) -> dict:
    from conftest import write_small_config

    from pipelines.flows.extract_features import extract_features

    (tmp / kind).mkdir()
    config = write_small_config(tmp / kind)
    out = extract_features.with_options(task_runner=task_runner_from({"kind": kind, **runner}))(
        config=str(config), profile="demo")
    assert out["content_hashes"]
    return _store(tmp / kind / "storage")


@pytest.fixture(scope="module")
def thread_store(tmp_path_factory, prefect_harness) -> dict:
    return _extract(tmp_path_factory.mktemp("runners"), "thread", max_workers=2)


@pytest.mark.parametrize("kind", ["dask", "ray"])
def test_cluster_extraction_equals_thread_pool(kind: str, thread_store: dict, tmp_path: Path,
                                               prefect_harness) -> None:
    if kind == "ray":
        pytest.importorskip("prefect_ray", reason="the ray extra (prefect-ray) is not installed")
        import ray

        ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    try:
        store = _extract(tmp_path, kind, max_workers=2) if kind == "dask" else _extract(tmp_path, kind)
    finally:
        if kind == "ray":
            ray.shutdown()
    assert set(thread_store) == {"demo_emoroi", "demo_emoset", "demo_webemo", "demo_synonyms"}
    assert set(store) == set(thread_store)
    for name, (content_hash, ids, vectors) in thread_store.items():
        assert store[name][0] == content_hash and store[name][1] == ids
        np.testing.assert_array_equal(store[name][2], vectors)
