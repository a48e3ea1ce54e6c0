"""Benchmark: closed-form single-neuron ablation vs the per-neuron forward-pass loop, and the neuron atlas
over 100k cached 768-d features.

1. Ablation (TinyEmo Appendix E-A) on a TinyLlama-shaped projector (768 -> 2048 -> 2048), 6 labels, N test
   features: ``ablate_all`` over all 2,048 neurons vs ``ablate_naive`` (a forward hook zeroes one neuron, one
   full model pass per neuron). The loop is timed on a sample of neurons, checked equal to the closed form on
   them, and extrapolated linearly to 2,048 (its cost per neuron is constant). Goal: speed-up >= 20x.
2. Atlas: a feature store of 100k float16 768-d vectors and a manifest (8 labels, a 20-value attribute) are
   written through the store APIs; timed: ``build_activations`` (store read -> layer-0 activations and
   projections into memory-mapped .npy) and the atlas (top-50 per neuron, detection rates, most selective
   table). Runs in a child process so its peak RSS is its own. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_ablation(n: int, sample: int, hidden: int = 2048, in_dim: int = 768, classes: int = 6) -> dict:
    from tinyemo_core.interpret.ablation import ablate_all, ablate_naive
    from tinyemo_core.projector.model import MetricProjector

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = MetricProjector(in_dim, hidden, hidden_dim=hidden).eval()
    x = rng.normal(size=(n, in_dim)).astype(np.float16)  # as read from a feature store
    lab = rng.normal(size=(classes, hidden)).astype(np.float32)
    y = rng.integers(0, classes, n)
    t0 = time.perf_counter()
    fast = ablate_all(model, x, y, lab)
    t_fast = time.perf_counter() - t0
    neurons = np.sort(rng.choice(hidden, sample, replace=False))
    t0 = time.perf_counter()
    slow = ablate_naive(model, x, y, lab, neurons=neurons)
    t_slow_sample = time.perf_counter() - t0
    same = bool(np.allclose(fast.accuracy[neurons], slow.accuracy) and
                np.array_equal(fast.flips[neurons], slow.flips))
    t_slow = t_slow_sample / sample * hidden
    return {"n": n, "neurons": hidden, "labels": classes, "vectorised_s": round(t_fast, 3),
            "naive_s_per_neuron": round(t_slow_sample / sample, 4), "naive_neurons_timed": sample,
            "naive_all_s_extrapolated": round(t_slow, 1), "speedup": round(t_slow / t_fast, 1),
            "equal_on_sample": same}


def _write_world(tmp: Path, n: int, in_dim: int, hidden: int) -> None:
    import pyarrow as pa

    from tinyemo_core.data.ingest import MANIFEST_SCHEMA
    from tinyemo_core.projector.io import save_weights
    from tinyemo_core.projector.model import MetricProjector
    from tinyemo_core.store.atomic import write_json
    from tinyemo_core.store.features import FeatureStore
    from tinyemo_core.store.manifests import write_manifest

    rng = np.random.default_rng(0)
    ids = [f"{i:08d}" for i in range(n)]
    labels = [f"emotion{i % 8}" for i in range(n)]
    store = FeatureStore(tmp / "features" / "enc" / "ds", "enc-fp")
    infos = []
    for start in range(0, n, 10_000):
        chunk = ids[start:start + 10_000]
        vec = rng.normal(size=(len(chunk), in_dim)).astype(np.float32)
        infos.append(store.write_shard(f"part-{start:08d}.parquet", chunk, vec, np.arange(len(chunk)), {}))
    store.commit(infos)
    rows = {"image_id": ids, "path": [f"x/{i}.jpg" for i in ids], "split": ["test"] * n, "label": labels,
            "labels": [[lab] for lab in labels], "taxonomy": ["open"] * n, "dataset": ["ds"] * n,
            "status": ["ok"] * n, "error": [None] * n, "width": [1] * n, "height": [1] * n,
            "attributes": [json.dumps({"object": f"thing{i % 20}"}) for i in range(n)], "aliases": [[]] * n}
    manifest = tmp / "manifests" / "ds" / "m.parquet"
    write_manifest(manifest, pa.table(rows, schema=MANIFEST_SCHEMA), {"dataset": "ds"})
    torch.manual_seed(0)
    model = MetricProjector(in_dim, hidden, hidden_dim=hidden).eval()
    run = tmp / "runs" / "enc__bb__000000000000"
    save_weights(model, run / "best.safetensors")
    write_json(run / "config.json", {"model": model.dims()})


def _sources(tmp: Path):
    from tinyemo_core.config import DatasetSpec
    from tinyemo_core.stages.interpret import DatasetSources
    from tinyemo_core.store.features import FeatureStore

    spec = DatasetSpec(layout="imagefolder", root=tmp / "images")
    store = FeatureStore(tmp / "features" / "enc" / "ds", "enc-fp")
    manifest = tmp / "manifests" / "ds" / "m.parquet"
    return tmp / "runs" / "enc__bb__000000000000", DatasetSources("ds", spec, manifest, store)


def bench_atlas(tmp: Path, in_dim: int = 768, hidden: int = 2048) -> dict:
    """Time the activation store and the atlas over the world ``--part world`` wrote into ``tmp``."""
    from tinyemo_core.interpret.atlas import class_matrices, detection_rates, most_selective, top_k
    from tinyemo_core.stages.interpret import build_activations, open_activations

    run, src = _sources(tmp)
    rss_before = peak_rss_mb()
    t0 = time.perf_counter()
    build_activations(run, src, tmp, batch_size=4096)
    t_store = time.perf_counter() - t0
    store = open_activations(run, src, tmp)
    t0 = time.perf_counter()
    rows = store.rows()
    idx, _ = top_k(store.activations(), 50)
    t_topk = time.perf_counter() - t0
    mats = class_matrices(rows["labels"].to_pylist(), rows["attributes"].to_pylist())
    selective = most_selective(detection_rates(idx, mats), 3)
    t_atlas = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in store.root.iterdir() if p.is_file())
    return {"n": rows.num_rows, "in_dim": in_dim, "neurons": hidden, "activation_store_s": round(t_store, 2),
            "topk_s": round(t_topk, 2), "atlas_s": round(t_atlas, 2), "selective_rows": len(selective),
            "store_mb": round(size / 2**20, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
            "rss_at_start_mb": round(rss_before, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-test", type=int, default=1000, help="test features for the ablation")
    ap.add_argument("--sample", type=int, default=8, help="neurons timed in the naive loop")
    ap.add_argument("--n-atlas", type=int, default=100_000)
    ap.add_argument("--part", choices=["all", "world", "atlas"], default="all")
    ap.add_argument("--dir", type=Path)
    args = ap.parse_args()
    if args.part == "world":
        _write_world(args.dir, args.n_atlas, 768, 2048)
        return
    if args.part == "atlas":
        print(json.dumps(bench_atlas(args.dir)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        for part in ("world", "atlas"):  # separate processes: the atlas's peak RSS is its own
            child = subprocess.run([sys.executable, __file__, "--part", part, "--dir", tmp, "--n-atlas",
                                    str(args.n_atlas)], capture_output=True, text=True)
            if child.returncode:
                sys.exit(f"bench part {part} failed:\n{child.stderr}")
        atlas = json.loads(child.stdout.strip().splitlines()[-1])
    ablation = bench_ablation(args.n_test, args.sample)
    print(json.dumps({"bench": "interpret", "ablation": ablation, "atlas": atlas,
                      "goal_speedup_20x": ablation["speedup"] >= 20}))


if __name__ == "__main__":
    main()
