"""FAISS index choice by size/memory, recorded; recall against exact search; atomic save/load."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from tinyemo_core.index import build_index, load_index, save_index, search


def _clustered(n: int, d: int = 32, k: int = 50, seed: int = 0) -> np.ndarray:
    """Unit vectors around k centres: the shape real embedding sets have (classes, near-duplicates)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, d))
    x = centres[rng.integers(0, k, n)] + 0.3 * rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_small_sets_get_exact_search() -> None:
    x = _clustered(500)
    index, rec = build_index(x)
    assert rec["kind"] == "flat" and rec["factory"] == "Flat" and rec["n"] == 500 and rec["dim"] == 32
    assert isinstance(index, faiss.IndexFlat) and index.metric_type == faiss.METRIC_INNER_PRODUCT
    scores, ids = search(index, x[:5], 1)
    assert ids[:, 0].tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)  # inner product of unit vectors = cosine


def test_large_sets_get_ivf_with_good_recall() -> None:
    x = _clustered(12_000)
    exact, _ = build_index(x)
    ivf, rec = build_index(x, exact_threshold=5_000)
    assert rec["kind"] == "ivf" and rec["factory"] == f"IVF{rec['nlist']},Flat"
    # nlist ~ 4*sqrt(N), capped so each centroid has >= 39 training points (FAISS's minimum)
    assert rec["nlist"] == min(round(4 * np.sqrt(12_000)), 12_000 // 39) and rec["nprobe"] >= 8
    q = x[:300] + 0.02 * np.random.default_rng(1).standard_normal((300, 32)).astype(np.float32)
    _, truth = search(exact, q, 10)
    _, got = search(ivf, q, 10)
    recall10 = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, got, strict=True)])
    assert recall10 > 0.85
    assert np.mean(got[:, 0] == np.arange(300)) > 0.95  # the near-duplicate is found


@pytest.mark.parametrize(("budget_mb", "bits", "over"), [(0.3, 8, False), (0.18, 4, False), (0.01, 4, True)])
def test_memory_budget_switches_to_scalar_quantiser(budget_mb: float, bits: int, over: bool) -> None:
    x = _clustered(6_000)  # raw float32 vectors: 0.73 MB
    index, rec = build_index(x, exact_threshold=1_000, memory_budget_mb=budget_mb)
    assert rec["kind"] == "ivfsq" and rec["factory"].endswith(f"SQ{bits}") and rec["over_budget"] is over
    _, ids = search(index, x[:200], 1)
    assert np.mean(ids[:, 0] == np.arange(200)) > 0.85  # lossy codes, still finds itself


def test_hnsw_on_request_and_l2() -> None:
    x = _clustered(3_000)
    index, rec = build_index(x, kind="hnsw", metric="l2")
    assert rec["factory"] == "HNSW32" and rec["metric"] == "l2"
    _, ids = search(index, x[:100], 1)
    assert np.mean(ids[:, 0] == np.arange(100)) > 0.95


def test_save_load_roundtrip_is_atomic(tmp_path: Path) -> None:
    x = _clustered(8_000)
    index, rec = build_index(x, exact_threshold=1_000)
    path = save_index(index, tmp_path / "feat" / "index.faiss")
    assert [p.name for p in path.parent.iterdir()] == ["index.faiss"]  # no temp file left behind
    loaded = load_index(path)
    assert loaded.ntotal == 8_000 and faiss.extract_index_ivf(loaded).nprobe == rec["nprobe"]
    np.testing.assert_array_equal(search(loaded, x[:20], 5)[1], search(index, x[:20], 5)[1])
    with pytest.raises(FileNotFoundError, match="rebuild"):
        load_index(tmp_path / "absent.faiss")


def test_gpu_flag_falls_back_and_says_so() -> None:
    _, rec = build_index(_clustered(100), use_gpu=True)
    if faiss.get_num_gpus() == 0:
        assert rec["gpu"] is False and "gpu_unavailable" in rec
    else:
        assert rec["gpu"] is True


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        build_index(np.zeros((0, 8), np.float32))
    index, _ = build_index(_clustered(10))
    with pytest.raises(ValueError, match="query dim"):
        search(index, np.zeros((1, 7), np.float32), 1)
