"""Activation store: ``activations/<run>/<dataset>/`` = a projector run's view of one dataset.

Files (all written atomically; ``_complete.json`` last, it marks completion and records the fingerprint):

- ``rows.parquet``: ``image_id``, ``path`` (relative to the dataset root), ``split``, ``label``, ``labels``,
  ``attributes`` (the manifest's JSON), in row order;
- ``layer0.npy``: (N, H) layer-0 activations at the recorded point (float16 by default; memory-mapped);
- ``projected.npy``: (N, out) unit-norm projected embeddings (float32);
- ``projected.faiss``: inner-product (= cosine) index over them, built on the first retrieval and cached
  (TinyEmo §V-C step 1); the atlas never needs it.

The fingerprint covers the run's weights (file hash), the manifest and feature-store content hashes, the
activation point, the splits and the code version; a store with another fingerprint is treated as absent and
rewritten (its derived analyses ``atlas-*/``, ``ablation-*/`` ... with it).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tinyemo_core.fingerprint import step_fingerprint
from tinyemo_core.identity import file_sha256
from tinyemo_core.provenance import current
from tinyemo_core.store.atomic import atomic_path, read_json, staged_dir, write_json, write_parquet
from tinyemo_core.store.kind import StoreKind, entry, subdirs
from tinyemo_core.store.plan import StorePlan

MARKER = "_complete.json"
ROWS, ACTS, PROJECTED, INDEX = "rows.parquet", "layer0.npy", "projected.npy", "projected.faiss"
SIMILAR, CONCEPTS, COUNTERFACTUAL = "similar.json", "concepts.json", "counterfactual.json"


def activation_store_root(storage_root: Path, run_name: str, dataset: str) -> Path:
    return Path(storage_root) / "activations" / run_name / dataset


def activation_fingerprint(weights: Path, manifest_hash: str, feature_hash: str, point: str,
                           splits: Sequence[str] | None) -> str:
    """Fingerprint of an activation store (the weights file's bytes, not the run's name, identify it)."""
    return step_fingerprint("interpret", file_sha256(Path(weights)), manifest_hash, feature_hash, point,
                            sorted(splits) if splits else None)


@dataclass(frozen=True)
class ActivationPlan:
    """The rows an activation store will hold: manifest rows (decodable, in ``splits``) that have features."""

    table: pa.Table
    skipped_no_feature: int


def plan_rows(manifest_table: pa.Table, feature_ids: set[str], splits: Sequence[str] | None = None
              ) -> ActivationPlan:
    table = manifest_table
    if splits:
        table = table.filter(pc.is_in(table["split"], pc.cast(list(splits), "string")))
    keep = pa.array([i in feature_ids for i in table["image_id"].to_pylist()], pa.bool_())
    kept = table.filter(keep)
    wanted = ("image_id", "path", "split", "label", "labels", "attributes")
    cols = [c for c in wanted if c in kept.column_names]
    return ActivationPlan(kept.select(cols), table.num_rows - kept.num_rows)


@dataclass
class ActivationStore:
    """The activation store of one (run, dataset)."""

    root: Path
    fingerprint: str

    def marker(self) -> dict | None:
        """The completion marker if it exists and belongs to this fingerprint, else None."""
        data = read_json(self.root / MARKER)
        if not data or data.get("fingerprint") != self.fingerprint:
            return None
        return data

    def complete(self) -> bool:
        return self.marker() is not None

    def require(self) -> dict:
        data = self.marker()
        if data is None:
            found = read_json(self.root / MARKER)
            why = "is missing" if found is None else "was written for other inputs (stale fingerprint)"
            raise FileNotFoundError(f"activation store {self.root} {why}; build it first "
                                    "(tinyemo run neuron-atlas)")
        return data

    def clear(self) -> None:
        """Remove a stale or partial store (and the analyses derived from it)."""
        if self.root.exists():
            shutil.rmtree(self.root)

    def write(self, rows: pa.Table, activations_writer, *, hidden_dim: int, out_dim: int,
              dtype: str = "float16", extra: dict | None = None) -> dict:
        """Write the store: ``activations_writer(acts_memmap, projected_memmap)`` fills the arrays in place
        (row order of ``rows``); the marker follows. Peak memory stays one batch."""
        self.clear()
        self.root.mkdir(parents=True, exist_ok=True)
        n = rows.num_rows
        if n == 0:
            raise ValueError(f"no rows to store in {self.root}: no manifest row of the chosen splits has a "
                             "feature; run extract-features")
        write_parquet(self.root / ROWS, rows)
        with atomic_path(self.root / ACTS) as acts_tmp, atomic_path(self.root / PROJECTED) as proj_tmp:
            kind = np.dtype(dtype)
            acts = np.lib.format.open_memmap(acts_tmp, mode="w+", dtype=kind, shape=(n, hidden_dim))
            # float32 always: retrieval ranks near-duplicates, where float16's 1e-3 steps create ties
            proj = np.lib.format.open_memmap(proj_tmp, mode="w+", dtype=np.float32, shape=(n, out_dim))
            activations_writer(acts, proj)
            acts.flush()
            proj.flush()
            del acts, proj
        payload = {"fingerprint": self.fingerprint, "rows": n, "hidden_dim": hidden_dim, "out_dim": out_dim,
                   "dtype": dtype, "produced_by": current(), **(extra or {})}
        write_json(self.root / MARKER, payload)
        return payload

    def rows(self) -> pa.Table:
        self.require()
        return pq.read_table(self.root / ROWS)

    def image_ids(self) -> list[str]:
        return self.rows()["image_id"].to_pylist()

    def activations(self) -> np.ndarray:
        """(N, H) memory-mapped, stored dtype."""
        self.require()
        return np.load(self.root / ACTS, mmap_mode="r")

    def projected(self) -> np.ndarray:
        self.require()
        return np.load(self.root / PROJECTED, mmap_mode="r")

    def index_path(self) -> Path:
        """Where the FAISS index over the projected embeddings is kept (built on first use by
        :func:`tinyemo_core.index.faiss_index.cached_index`)."""
        self.require()
        return self.root / INDEX

    def row_of(self, image_ids: Sequence[str]) -> list[int]:
        """Row numbers of ``image_ids``; a KeyError names the first id the store does not hold."""
        pos = {i: k for k, i in enumerate(self.image_ids())}
        missing = [i for i in image_ids if i not in pos]
        if missing:
            raise KeyError(f"image id {missing[0]!r} is not in {self.root} ({len(missing)} unknown); "
                           "check the dataset and the splits")
        return [pos[i] for i in image_ids]

    def describe(self) -> dict[str, Any]:
        data = self.require()
        return {"store": str(self.root), "fingerprint": self.fingerprint, "rows": data["rows"],
                "hidden_dim": data["hidden_dim"], "point": data.get("point")}


RESULT = "result.json"


def read_analysis(out: Path, marker: str = RESULT) -> dict | None:
    """A finished analysis folder's result (atlas, ablation, bias report, retrieval), or None."""
    return read_json(Path(out) / marker)


def publish_analysis(out: Path, write) -> dict:
    """Run ``write(tmp_dir) -> payload`` in a staged folder, write ``result.json`` (payload + provenance) last
    and rename the folder onto ``out``."""
    with staged_dir(out) as tmp:
        payload = write(tmp)
        write_json(tmp / RESULT, {**payload, "produced_by": current()})
    return payload



class ActivationStoreKind(StoreKind):
    """Activation stores of (run, dataset) and the analyses derived from each (``atlas-*``, ``ablation-*``,
    ``bias-*``, ``explore/*``: ``result.json`` written last in a staged folder)."""

    kind = "activations"
    folder = "activations"
    markers = (MARKER, RESULT, SIMILAR, CONCEPTS, COUNTERFACTUAL)

    def open(self, run_name: str, dataset: str, fingerprint: str) -> ActivationStore:
        return ActivationStore(activation_store_root(self.storage_root, run_name, dataset), fingerprint)

    def plan(self, run_name: str, dataset: str, fingerprint: str) -> StorePlan:  # type: ignore[override]
        store = self.open(run_name, dataset, fingerprint)
        return StorePlan(fingerprint, store.root, store.complete())

    def analysis(self, store: ActivationStore, what: str, key: str) -> StorePlan:
        """An analysis folder of a complete activation store: ``<store>/<what>-<key>/``."""
        path = store.root / f"{what}-{key}"
        return StorePlan(key, path, store.complete() and read_analysis(path) is not None)

    def read(self, plan: StorePlan) -> dict | None:
        """An analysis folder's result (``computed`` False), or None."""
        done = read_analysis(plan.path)
        return None if done is None else {**done, "computed": False}

    def entries(self):
        for run in subdirs(self.root):
            for path in subdirs(run):
                meta = read_json(path / MARKER)
                yield entry(self.kind, f"{run.name}/{path.name}", path, meta, (meta or {}).get("fingerprint"))
