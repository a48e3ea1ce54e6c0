"""Sharded feature store: ``features/<encoder>/<dataset>/part-<hash>.parquet`` + ``_manifest.json``.

Keyed by (encoder fingerprint, image_id). A shard's name is the hash of the encoder fingerprint and its sorted
image ids, so a rerun after a kill plans the same shards, finds the ones already renamed into place and only
computes the rest; the final store is identical to an uninterrupted run. ``_manifest.json`` is written last
and
lists the complete shards; readers trust only the shards it lists. Adding images plans shards for the new ids
only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tinyemo_core.fingerprint import CODE_VERSIONS, stable_hash
from tinyemo_core.provenance import current
from tinyemo_core.store.atomic import read_json, write_json, write_parquet
from tinyemo_core.store.vectors import column_to_numpy, vector_array

MANIFEST = "_manifest.json"


@dataclass(frozen=True)
class ShardPlan:
    """One shard to compute: its file name and the (image_id, absolute path) pairs it covers."""

    name: str
    image_ids: tuple[str, ...]
    paths: tuple[str, ...]


@dataclass
class FeatureStore:
    """The feature store of one (encoder, dataset) pair."""

    root: Path
    encoder_fingerprint: str
    dim: int | None = None
    _manifest: dict | None = field(default=None, repr=False)

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    def manifest(self) -> dict | None:
        """The parsed ``_manifest.json`` if it belongs to this encoder fingerprint, else None."""
        data = read_json(self.manifest_path)
        if not data or data.get("encoder_fingerprint") != self.encoder_fingerprint:
            return None
        return data

    def shard_path(self, name: str) -> Path:
        return self.root / name

    def stored_ids(self) -> set[str]:
        """Image ids held by the shards the manifest lists (failed rows included: they are not retried)."""
        data = self.manifest()
        if not data:
            return set()
        ids: set[str] = set()
        for shard in data["shards"]:
            ids.update(
                pq.read_table(self.shard_path(shard["name"]), columns=["image_id"])["image_id"].to_pylist()
            )
        return ids

    def plan(self, items: Iterable[tuple[str, str]], shard_size: int) -> list[ShardPlan]:
        """Shards for the (image_id, path) items not yet stored, in image-id order, deterministic."""
        stored = self.stored_ids()
        todo: dict[str, str] = {}
        for image_id, path in items:
            if image_id not in stored and image_id not in todo:
                todo[image_id] = path
        ids = sorted(todo)
        plans = []
        for start in range(0, len(ids), shard_size):
            chunk = tuple(ids[start : start + shard_size])
            name = f"part-{stable_hash(self.encoder_fingerprint, chunk, length=20)}.parquet"
            plans.append(ShardPlan(name, chunk, tuple(todo[i] for i in chunk)))
        return plans

    def shard_done(self, name: str) -> bool:
        return self.shard_path(name).exists()

    def write_shard(
        self,
        name: str,
        image_ids: Sequence[str],
        vectors: np.ndarray,
        ok_index: np.ndarray,
        errors: dict[int, str],
        dtype: str = "float16",
    ) -> dict:
        """Write one shard atomically: a row per image id, ``vector`` null and ``error`` set for failures."""
        n = len(image_ids)
        dim = vectors.shape[1] if vectors.size else (self.dim or 0)
        full = np.zeros((n, dim), dtype=np.float32)
        valid = np.zeros(n, dtype=bool)
        if len(ok_index):
            full[ok_index] = vectors
            valid[ok_index] = True
        values = vector_array(full, dtype)
        vec = pa.FixedSizeListArray.from_arrays(values.values, dim, mask=pa.array(~valid))
        table = pa.table(
            {
                "image_id": pa.array(list(image_ids), pa.string()),
                "vector": vec,
                "error": pa.array([errors.get(i) for i in range(n)], pa.string()),
            }
        )
        write_parquet(self.shard_path(name), table, compression=None)
        return {"name": name, "rows": n, "ok": int(valid.sum()), "failed": n - int(valid.sum()), "dim": dim}

    def shard_info(self, name: str) -> dict:
        """Describe an existing shard file (used when a rerun finds a shard a killed run already wrote)."""
        table = pq.read_table(self.shard_path(name), columns=["image_id", "error"])
        ok = table["error"].null_count
        dim = pq.read_schema(self.shard_path(name)).field("vector").type.list_size
        return {"name": name, "rows": table.num_rows, "ok": ok, "failed": table.num_rows - ok, "dim": dim}

    def commit(self, new_shards: Sequence[dict], extra: dict | None = None) -> dict:
        """Write ``_manifest.json`` last: previous shards + ``new_shards``, row counts and a content hash."""
        previous = (self.manifest() or {}).get("shards", [])
        known = {s["name"] for s in previous}
        shards = previous + [s for s in new_shards if s["name"] not in known]
        shards.sort(key=lambda s: s["name"])
        payload = {
            "encoder_fingerprint": self.encoder_fingerprint,
            "code_version": CODE_VERSIONS["features"],
            "shards": shards,
            "rows": sum(s["rows"] for s in shards),
            "ok": sum(s["ok"] for s in shards),
            "failed": sum(s["failed"] for s in shards),
            "dim": next((s["dim"] for s in shards if s["dim"]), self.dim),
            "content_hash": stable_hash([(s["name"], s["rows"]) for s in shards]),
            "produced_by": current(),
            **(extra or {}),
        }
        write_json(self.manifest_path, payload)
        return payload

    def read_shards(self, names: Sequence[str], dim: int | None = None) -> tuple[list[str], np.ndarray]:
        """Ids and vectors of the successful rows of the named shards (memory-mapped, file order)."""
        ids: list[str] = []
        blocks: list[np.ndarray] = []
        for name in names:
            table = pq.read_table(self.shard_path(name), columns=["image_id", "vector"], memory_map=True)
            table = table.filter(pc.is_valid(table["vector"]))
            ids.extend(table["image_id"].to_pylist())
            blocks.append(column_to_numpy(table["vector"]))
        vectors = np.concatenate(blocks) if blocks else np.zeros((0, dim or self.dim or 0), np.float16)
        return ids, vectors

    def shard_names(self, new_shards: Sequence[dict] = ()) -> list[str]:
        """Names of the committed shards plus ``new_shards`` (what the next commit will list)."""
        names = {s["name"] for s in (self.manifest() or {}).get("shards", [])}
        return sorted(names | {s["name"] for s in new_shards})

    def load(self, image_ids: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
        """Ids and vectors of every successful row (memory-mapped), optionally restricted and ordered by
        ``image_ids``.

        Raises KeyError naming a missing id, so a caller never trains on a silently shortened set.
        """
        data = self.manifest()
        if not data:
            raise FileNotFoundError(
                f"feature store {self.root} is incomplete (no valid {MANIFEST}); run extract"
            )
        ids, vectors = self.read_shards([shard["name"] for shard in data["shards"]], data.get("dim"))
        if image_ids is None:
            return ids, vectors
        pos = {i: k for k, i in enumerate(ids)}
        missing = [i for i in image_ids if i not in pos]
        if missing:
            raise KeyError(f"{len(missing)} image ids have no feature in {self.root} (e.g. {missing[0]})")
        return list(image_ids), vectors[[pos[i] for i in image_ids]]


def feature_store_root(storage_root: Path, encoder_name: str, dataset: str, output: str = "pooled") -> Path:
    """``features/<encoder>/<dataset>``; patch tokens: their own store ``features/<encoder>.patches/``."""
    folder = encoder_name if output == "pooled" else f"{encoder_name}.{output}"
    return Path(storage_root) / "features" / folder / dataset
