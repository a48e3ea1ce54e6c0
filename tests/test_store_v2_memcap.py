"""A held-in store larger than the configured memory cap trains from np.memmap files: anonymous memory
(RssAnon) grows by far less than the store, and the run equals one that loaded everything into RAM."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from tinyemo_core.config import DatasetSpec
from tinyemo_core.projector.spec import TrainingSpec
from tinyemo_core.stages.train import train
from tinyemo_core.store.features import FeatureStore
from tinyemo_core.store.labels import LabelTable, write_label_table
from tinyemo_core.store.manifests import write_manifest

N, DIM, LABELS = 24_000, 2048, ["joy", "fear", "anger"]


def _rss_anon_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise RuntimeError("no RssAnon in /proc/self/status")


class _Peak:
    """Samples RssAnon every 2 ms while the block runs; ``growth`` = peak - value at entry (bytes)."""

    def __enter__(self) -> _Peak:
        self.base = self.peak = _rss_anon_kb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_anon_kb())
            time.sleep(0.002)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.growth = (self.peak - self.base) * 1024


def _dataset(tmp_path: Path) -> tuple[dict, dict, dict, str]:
    rng = np.random.default_rng(0)
    ids = [f"{i:032x}" for i in range(N)]
    labels = rng.integers(0, len(LABELS), N)
    store = FeatureStore(tmp_path / "features" / "enc" / "ds", "enc")
    infos = []
    for p in store.plan(zip(ids, ids, strict=True), shard_size=6_000):  # written shard by shard
        k = np.array([int(i, 16) for i in p.image_ids])
        vec = rng.standard_normal((len(k), DIM)).astype(np.float16)
        vec[:, :3] += 8 * np.eye(3, dtype=np.float16)[labels[k]]  # learnable signal
        infos.append(store.write_shard(p.name, p.image_ids, vec, np.arange(len(k)), {}))
    store.commit(infos)
    split = np.where(np.arange(N) % 50 == 0, "val", "train")
    manifest = tmp_path / "manifests" / "ds" / "m.parquet"
    write_manifest(manifest, pa.table({"image_id": ids, "path": [f"{i}.jpg" for i in ids], "split": split,
                                       "label": [LABELS[j] for j in labels], "status": ["ok"] * N}), {})
    table = tmp_path / "labels" / "bb" / "t.parquet"
    write_label_table(table, LabelTable(LABELS, ["{label}"] * 3, LABELS, np.eye(3, 16, dtype=np.float32)), {})
    spec = DatasetSpec(layout="imagefolder", root=tmp_path)
    return {"ds": spec}, {"ds": str(manifest)}, {"ds": store}, str(table)


def test_training_over_the_memory_cap_reads_a_memmap(tmp_path: Path) -> None:
    held_in, manifests, stores, table = _dataset(tmp_path)
    size = stores["ds"].nbytes()
    assert size == N * DIM * 2
    spec = TrainingSpec(epochs=1, batch_size=512, hidden_dim=32)
    # warm-up: torch, matplotlib and their allocators take their one-off memory here, not in the measurement
    train(held_in, manifests, stores, table, spec, tmp_path / "warm", progress=False, memory_cap_mb=1)
    with _Peak() as capped:
        small = train(held_in, manifests, stores, table, spec, tmp_path / "capped", progress=False,
                      memory_cap_mb=1)
    assert small["features_memmap"] and not (tmp_path / "capped" / ".features").exists()
    with _Peak() as in_ram:
        full = train(held_in, manifests, stores, table, spec, tmp_path / "ram", progress=False)
    assert not full["features_memmap"]
    assert capped.growth < size / 3, f"memmap run grew anonymous memory by {capped.growth / 2**20:.1f} MiB"
    assert in_ram.growth > 0.8 * size  # the measurement sees a materialised store
    assert small["final_train_loss"] == full["final_train_loss"]
    assert small["best_val_acc"] == full["best_val_acc"] > 0.5
