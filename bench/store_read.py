"""Benchmark: reading a feature store into numpy, format v2 (Arrow IPC) vs v1 (Parquet) vs a raw byte copy.

One run, page cache warm: N x D float16 vectors in S shards written as a real ``FeatureStore`` (v2), the same
shards in the v1 layout (Parquet fixed-size-list, what stores written before format 2 hold), the label-table
layout (Parquet fixed_size_binary) and the bare bytes as ``.bin`` files. Timed, best of ``--repeats``:

- ``raw_copy``: ``np.empty`` + ``np.copyto`` of the same bytes already in RAM (what any reader must pay);
- ``raw_read``: ``readinto`` of the ``.bin`` files (page cache -> a new array);
- ``v2_load`` / ``v1_load``: ``FeatureStore.load()`` (ids as Python strings + the (N, D) array);
- ``v2_load_ids``: ``FeatureStore.load(image_ids)`` in a shuffled order (the training/evaluation call);
- ``parquet_fsb``: vectors only, from Parquet fixed_size_binary files.

ratio_v2_raw = v2_load vectors/s / raw_copy vectors/s (goal >= 0.5; and v2 >= 2,000,000 vectors/s). The
machine is shared: the 1-minute load average before and after is printed. The last stdout line is JSON.

    python bench/store_read.py [--rows 200000] [--dim 768] [--shards 10] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tinyemo_core.store.features import FeatureStore
from tinyemo_core.store.vectors import binary_vector_array, column_to_numpy, vector_array, vector_metadata


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def build(root: Path, x: np.ndarray, ids: list[str], shards: int) -> tuple[FeatureStore, FeatureStore]:
    """The same rows as a v2 store and as a v1 store (legacy Parquet shards, same names and manifest)."""
    v2, v1 = FeatureStore(root / "v2", "bench"), FeatureStore(root / "v1", "bench")
    plans = v2.plan(zip(ids, ids, strict=True), shard_size=-(-len(ids) // shards))
    pos = {i: k for k, i in enumerate(ids)}
    infos, legacy = [], []
    for p in plans:
        rows = x[[pos[i] for i in p.image_ids]]
        infos.append(v2.write_shard(p.name, p.image_ids, rows, np.arange(len(rows)), {}))
        table = pa.table({"image_id": list(p.image_ids), "vector": vector_array(rows, "float16"),
                          "error": pa.nulls(len(rows), pa.string())})
        name = p.name.replace(".arrow", ".parquet")
        v1.root.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, v1.shard_path(name), compression=None)
        legacy.append({**infos[-1], "name": name})
        fsb = pa.table({"image_id": list(p.image_ids), "vector": binary_vector_array(rows, "float16")})
        pq.write_table(fsb.replace_schema_metadata(vector_metadata("float16", x.shape[1])),
                       root / f"fsb-{len(legacy)}.parquet", compression=None, use_dictionary=["image_id"])
        rows.tofile(root / f"raw-{len(legacy)}.bin")
    v2.commit(infos)
    v1.commit(legacy)
    return v2, v1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--shards", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.rows, args.dim)).astype(np.float16)
    ids = [f"{i:032x}" for i in rng.permutation(args.rows)]
    n, report = args.rows, {}
    with tempfile.TemporaryDirectory(prefix="tinyemo-store-bench-") as tmp:
        root = Path(tmp)
        v2, v1 = build(root, x, ids, args.shards)
        ids_v2, got = v2.load()
        assert got.shape == x.shape and np.array_equal(v1.load()[1], got), "v1 and v2 disagree"
        raws, fsbs = sorted(root.glob("raw-*.bin")), sorted(root.glob("fsb-*.parquet"))
        order = list(rng.permutation(ids_v2))

        def raw_copy() -> None:
            np.copyto(np.empty_like(x), x)

        def raw_read() -> None:
            out = np.empty_like(x)
            view, at = memoryview(out).cast("B"), 0
            for p in raws:
                with open(p, "rb", buffering=0) as f:
                    at += f.readinto(view[at:])

        def parquet_fsb() -> None:
            out, at = np.empty_like(x), 0
            for p in fsbs:
                t = pq.read_table(p, columns=["vector"], memory_map=True)
                block = column_to_numpy(t["vector"], t.schema.metadata)
                out[at: at + len(block)] = block
                at += len(block)

        cases = {"raw_copy": raw_copy, "raw_read": raw_read, "v2_load": v2.load, "v2_load_ids":
                 lambda: v2.load(order), "v1_load": v1.load, "parquet_fsb": parquet_fsb}
        for name, fn in cases.items():
            seconds = best(fn, 1 if name == "v1_load" else args.repeats)
            report[name] = {"seconds": round(seconds, 4), "vectors_per_s": round(n / seconds)}
            print(f"{name:12s} {n / seconds:>14,.0f} vectors/s  ({seconds * 1e3:.1f} ms)", flush=True)
    v2s, raw = report["v2_load"]["vectors_per_s"], report["raw_copy"]["vectors_per_s"]
    report.update({
        "rows": n, "dim": args.dim, "dtype": "float16", "shards": args.shards, "repeats": args.repeats,
        "bytes": int(x.nbytes), "ratio_v2_raw": round(v2s / raw, 3),
        "ratio_v2_raw_read": round(v2s / report["raw_read"]["vectors_per_s"], 3),
        "speedup_v2_over_v1": round(v2s / report["v1_load"]["vectors_per_s"], 1),
        "goal_met": v2s >= 2_000_000 and v2s / raw >= 0.5,
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)], "cpus": os.cpu_count(),
    })
    print(f"v2/raw copy = {report['ratio_v2_raw']:.2f}, v2/v1 = {report['speedup_v2_over_v1']:.0f}x")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
