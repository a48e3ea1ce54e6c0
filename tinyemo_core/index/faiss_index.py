"""FAISS indexes chosen by size and memory, with the choice recorded next to the store.

- N <= exact_threshold: exact ``Flat`` (brute force; label tables, small feature sets).
- above: ``IVF{nlist},Flat`` with nlist ~ 4*sqrt(N), trained on a seeded sample (FAISS guidance: 30-256
  points per centroid), nprobe preset for ~95%+ recall;
- above, when the raw vectors do not fit ``memory_budget_mb``: ``IVF{nlist},SQ8`` (1 byte per dimension), or
  ``SQ4`` when SQ8 does not fit either (scalar quantisers: no k-means, fast to train, recall stays high; PQ
  trains 256-centroid k-means per sub-quantiser, which took minutes on 6k vectors here, so it is not offered);
- ``kind="hnsw"`` forces a graph index (``HNSW32``; no training, more memory, fast queries).
GPU: ``use_gpu=True`` moves the index to all visible GPUs when the installed faiss has GPU support (the
``gpu`` extra, faiss-gpu-cu12); otherwise it stays on CPU and the record says so. Saved indexes are CPU ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import faiss
import numpy as np

from tinyemo_core.store.atomic import write_atomic

ADD_CHUNK = 65_536  # rows converted to float32 and added at a time
Metric = Literal["ip", "l2"]
Kind = Literal["auto", "flat", "ivf", "ivfsq", "hnsw"]


def _metric(metric: Metric) -> int:
    return {"ip": faiss.METRIC_INNER_PRODUCT, "l2": faiss.METRIC_L2}[metric]


def build_index(
    vectors: np.ndarray,
    *,
    metric: Metric = "ip",
    exact_threshold: int = 50_000,
    memory_budget_mb: int | None = None,
    kind: Kind = "auto",
    use_gpu: bool = False,
    seed: int = 0,
) -> tuple[faiss.Index, dict]:
    """Build and fill an index over ``vectors`` (N, d); returns (index, record of the choice).

    ``vectors`` may be float16 or an ``np.memmap``: it is converted to float32 ``ADD_CHUNK`` rows at a time
    (training samples only what it needs), so a store larger than RAM is never materialised here."""
    x = vectors if isinstance(vectors, np.ndarray) else np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"build_index needs a non-empty (N, d) array, got shape {x.shape}")
    n, d = x.shape
    raw_bytes = n * d * 4
    if kind == "auto":
        if n <= exact_threshold:
            kind = "flat"
        elif memory_budget_mb is not None and raw_bytes > memory_budget_mb * 2**20:
            kind = "ivfsq"
        else:
            kind = "ivf"
    record: dict = {"kind": kind, "n": n, "dim": d, "metric": metric, "exact_threshold": exact_threshold,
                    "memory_budget_mb": memory_budget_mb}
    if kind == "flat":
        factory = "Flat"
    elif kind == "hnsw":
        factory = "HNSW32"
    else:
        nlist = max(1, min(int(round(4 * math.sqrt(n))), n // 39 or 1))
        factory = f"IVF{nlist},Flat"
        if kind == "ivfsq":
            budget = (memory_budget_mb or raw_bytes / 4 / 2**20) * 2**20
            bits = 8 if n * (d + 8) <= budget else 4  # code bytes + 8-byte id per vector
            factory = f"IVF{nlist},SQ{bits}"
            record["sq_bits"] = bits
            record["over_budget"] = n * (d * bits / 8 + 8) > budget
        record["nlist"] = nlist
    index = faiss.index_factory(d, factory, _metric(metric))
    if not index.is_trained:
        rng = np.random.default_rng(seed)
        n_train = min(n, 256 * record["nlist"])
        sample = x[np.sort(rng.choice(n, size=n_train, replace=False))] if n_train < n else x
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        record["train_size"] = int(n_train)
    for start in range(0, n, ADD_CHUNK):
        index.add(np.ascontiguousarray(x[start: start + ADD_CHUNK], dtype=np.float32))
    if "nlist" in record:
        index.nprobe = min(record["nlist"], max(8, record["nlist"] // 16))
        record["nprobe"] = int(index.nprobe)
    if kind == "hnsw":
        index.hnsw.efSearch = 64
        record["ef_search"] = 64
    record["factory"] = factory
    record["gpu"] = False
    if use_gpu:
        if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
            index = faiss.index_cpu_to_all_gpus(index)
            record["gpu"] = True
        else:
            record["gpu_unavailable"] = "faiss build without GPU support or no GPU visible (install .[gpu])"
    return index, record


def _to_cpu(index: faiss.Index) -> faiss.Index:
    if hasattr(faiss, "index_gpu_to_cpu") and "Gpu" in type(index).__name__:
        return faiss.index_gpu_to_cpu(index)
    return index


def save_index(index: faiss.Index, path: str | Path, tmp_dir: Path | None = None) -> Path:
    """Write atomically (``store.atomic``: a temporary file, in ``tmp_dir`` when given, then rename)."""
    return write_atomic(Path(path), lambda tmp: faiss.write_index(_to_cpu(index), str(tmp)), tmp_dir)


def load_index(path: str | Path) -> faiss.Index:
    """Read an index written by :func:`save_index` (search parameters such as nprobe are restored)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no FAISS index at {path}; rebuild it (the store is incomplete)")
    return faiss.read_index(str(path))


def cached_index(path: str | Path, vectors: Callable[[], np.ndarray], *, metric: Metric = "ip",
                 exact_threshold: int = 1_000_000) -> faiss.Index:
    """The index saved at ``path``; built from ``vectors()`` and saved there first when it is absent."""
    if Path(path).is_file():
        return load_index(path)
    index, _info = build_index(np.asarray(vectors(), dtype=np.float32), metric=metric,
                               exact_threshold=exact_threshold)
    save_index(index, path)
    return index


def search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` (scores, ids), each (Q, k); ids are -1 where fewer than k results exist."""
    q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    if q.shape[1] != index.d:
        raise ValueError(f"query dim {q.shape[1]} != index dim {index.d}")
    scores, ids = index.search(q, k)
    return scores, ids
