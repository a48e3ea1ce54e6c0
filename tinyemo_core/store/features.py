"""Sharded feature store: ``features/<encoder>/<dataset>/part-<hash>.arrow`` + ``_manifest.json``.

Keyed by (encoder fingerprint, image_id). A shard's name is the hash of the encoder fingerprint and its sorted
image ids, so a rerun after a kill plans the same shards, finds the ones already renamed into place and only
computes the rest; the final store is identical to an uninterrupted run. ``_manifest.json`` is written last
and lists the complete shards; readers trust only the shards it lists. Adding images plans shards for the new
ids only. Temporaries are staged in ``features/<encoder>/.tmp/<dataset>/`` (never inside the store) and any a
killed writer left behind are cleared at commit.

Format (docs/stores.md): v2 shards are Arrow IPC files (``.arrow``, read at memory speed); v1 shards
(``.parquet``) still load, and ``store.migrate`` rewrites them. The manifest records ``format``; the content
hash is computed over the v1 names, so it (and every fingerprint built on it) does not depend on the format.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tinyemo_core.fingerprint import CODE_VERSIONS, stable_hash
from tinyemo_core.provenance import current
from tinyemo_core.store.atomic import clear_stale_temporaries, read_json, write_arrow, write_json
from tinyemo_core.store.kind import StoreKind, entry, subdirs
from tinyemo_core.store.plan import StorePlan
from tinyemo_core.store.vectors import (
    ShardData,
    read_shard,
    read_table,
    shard_format,
    shard_schema,
    vector_array,
    vector_metadata,
)

MANIFEST = "_manifest.json"
FORMAT = 2
SUFFIX = {1: ".parquet", 2: ".arrow"}
GATHER_BYTES = 8 * 2**20  # load(image_ids) copies at most this many bytes of rows at a time


def canonical_name(name: str) -> str:
    """The shard's name as the v1 format spelled it (what content hashes are computed over)."""
    return str(Path(name).with_suffix(SUFFIX[1]))


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

    @property
    def staging(self) -> Path:
        """Where this store's temporaries are written (a hidden sibling: readers never look there)."""
        return self.root.parent / ".tmp" / self.root.name

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
            ids.update(read_table(self.shard_path(shard["name"]), ["image_id"])["image_id"].to_pylist())
        return ids

    def plan(self, items: Iterable[tuple[str, str]], shard_size: int) -> list[ShardPlan]:
        """Shards for the (image_id, path) items not yet stored, in image-id order, deterministic.

        A shard a killed run of the v1 format left in place keeps its ``.parquet`` name (adopted)."""
        stored = self.stored_ids()
        todo: dict[str, str] = {}
        for image_id, path in items:
            if image_id not in stored and image_id not in todo:
                todo[image_id] = path
        ids = sorted(todo)
        plans = []
        for start in range(0, len(ids), shard_size):
            chunk = tuple(ids[start : start + shard_size])
            stem = f"part-{stable_hash(self.encoder_fingerprint, chunk, length=20)}"
            old = stem + SUFFIX[1]
            name = old if self.shard_path(old).exists() else stem + SUFFIX[FORMAT]
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
        if shard_format(Path(name)) != FORMAT:
            name = str(Path(name).with_suffix(SUFFIX[FORMAT]))
        n = len(image_ids)
        dim = vectors.shape[1] if vectors.size else (self.dim or 0)
        full = np.zeros((n, dim), dtype=dtype)
        valid = np.zeros(n, dtype=bool)
        if len(ok_index):
            full[ok_index] = vectors
            valid[ok_index] = True
        table = pa.table(
            {
                "image_id": pa.array(list(image_ids), pa.string()),
                "vector": vector_array(full, dtype, mask=~valid),
                "error": pa.array([errors.get(i) for i in range(n)], pa.string()),
            }
        ).replace_schema_metadata(vector_metadata(dtype, dim, format=FORMAT))
        write_arrow(self.shard_path(name), table, tmp_dir=self.staging)
        return {"name": name, "rows": n, "ok": int(valid.sum()), "failed": n - int(valid.sum()), "dim": dim}

    def shard_info(self, name: str) -> dict:
        """Describe an existing shard file (used when a rerun finds a shard a killed run already wrote)."""
        path = self.shard_path(name)
        table = read_table(path, ["image_id", "error"])
        ok = table["error"].null_count
        dim = shard_schema(path).field("vector").type.list_size
        return {"name": name, "rows": table.num_rows, "ok": ok, "failed": table.num_rows - ok, "dim": dim}

    def commit(self, new_shards: Sequence[dict], extra: dict | None = None) -> dict:
        """Write ``_manifest.json`` last: previous shards + ``new_shards``, row counts and a content hash;
        then remove what it does not list: FAISS indexes of earlier commits and temporaries a killed writer
        left in the store or its staging folder."""
        previous = (self.manifest() or {}).get("shards", [])
        known = {canonical_name(s["name"]) for s in new_shards}
        shards = [s for s in previous if canonical_name(s["name"]) not in known] + list(
            {s["name"]: s for s in new_shards}.values())
        shards.sort(key=lambda s: canonical_name(s["name"]))
        formats = {shard_format(Path(s["name"])) for s in shards} or {FORMAT}
        payload = {
            "encoder_fingerprint": self.encoder_fingerprint,
            "code_version": CODE_VERSIONS["features"],
            "format": min(formats),
            "shards": shards,
            "rows": sum(s["rows"] for s in shards),
            "ok": sum(s["ok"] for s in shards),
            "failed": sum(s["failed"] for s in shards),
            "dim": next((s["dim"] for s in shards if s["dim"]), self.dim),
            "content_hash": stable_hash([(canonical_name(s["name"]), s["rows"]) for s in shards]),
            "produced_by": current(),
            **(extra or {}),
        }
        write_json(self.manifest_path, payload, tmp_dir=self.staging)
        keep = (payload.get("faiss") or {}).get("file")
        for stale in self.root.glob("index-*.faiss"):  # indexes of earlier commits: no manifest lists them
            if stale.name != keep:
                stale.unlink(missing_ok=True)
        self.clear_temporaries()
        return payload

    def clear_temporaries(self) -> list[Path]:
        """Remove temporaries of dead writers from the store and its staging folder (and that folder when
        empty)."""
        removed = clear_stale_temporaries(self.root) + clear_stale_temporaries(self.staging)
        for folder in (self.staging, self.staging.parent):
            try:
                folder.rmdir()
            except OSError:
                pass
        return removed

    def _blocks(self, names: Sequence[str]):
        for name in names:
            yield read_shard(self.shard_path(name))

    def read_shards(self, names: Sequence[str], dim: int | None = None) -> tuple[list[str], np.ndarray]:
        """Ids and vectors of the successful rows of the named shards, in file order (one copy out of the
        memory-mapped files into a new array)."""
        shards = list(self._blocks(names))
        ids: list[str] = []
        rows = sum(len(s.ids) if s.valid is None else int(s.valid.sum()) for s in shards)
        width = next((s.vectors.shape[1] for s in shards if s.vectors.size), dim or self.dim or 0)
        dtype = next((s.vectors.dtype for s in shards if s.vectors.size), np.dtype(np.float16))
        out = np.empty((rows, width), dtype=dtype)
        at = 0
        for s in shards:
            if s.valid is None:
                ids.extend(s.ids)
                block = s.vectors
            else:
                ids.extend(i for i, ok in zip(s.ids, s.valid, strict=True) if ok)
                block = s.vectors[s.valid]
            out[at: at + len(block)] = block
            at += len(block)
        return ids, out

    def load(self, image_ids: Sequence[str] | None = None, *, memmap_to: Path | None = None
             ) -> tuple[list[str], np.ndarray]:
        """Ids and vectors of every successful row, optionally restricted and ordered by ``image_ids``.

        ``memmap_to``: write the rows into an ``np.memmap`` at that path (``.npy`` layout) shard by shard
        and return it, so a dataset larger than RAM is never materialised in memory. Raises KeyError naming
        a missing id, so a caller never trains on a silently shortened set.
        """
        data = self.manifest()
        if not data:
            raise FileNotFoundError(
                f"feature store {self.root} is incomplete (no valid {MANIFEST}); run extract"
            )
        names = [shard["name"] for shard in data["shards"]]
        if image_ids is None and memmap_to is None:
            return self.read_shards(names, data.get("dim"))
        return _gather(self._blocks(names), image_ids, self.root, memmap_to)

    def nbytes(self) -> int:
        """Bytes the successful vectors take in memory (from the manifest; 0 when incomplete)."""
        data = self.manifest() or {}
        if not data.get("shards"):
            return 0
        info = read_shard(self.shard_path(data["shards"][0]["name"]))
        return int(data.get("ok", 0)) * int(data.get("dim") or 0) * info.vectors.dtype.itemsize

    def shard_names(self, new_shards: Sequence[dict] = ()) -> list[str]:
        """Names of the committed shards plus ``new_shards`` (what the next commit will list)."""
        names = {s["name"] for s in (self.manifest() or {}).get("shards", [])}
        new = {s["name"] for s in new_shards}
        return sorted(n for n in names | new if n in new or canonical_name(n) not in
                      {canonical_name(m) for m in new})


def _gather(shards: Iterable[ShardData], image_ids: Sequence[str] | None, root: Path,
            memmap_to: Path | None) -> tuple[list[str], np.ndarray]:
    """Copy the wanted rows shard by shard into one array (or ``np.memmap`` file), never holding more
    than one shard's view at a time; ids are matched by Arrow's hash join (``index_in``)."""
    if image_ids is None:
        raise ValueError("memmap_to needs image_ids (the rows and their order)")
    shards = iter(shards)
    first = next(shards, None)
    wanted = pa.array(list(image_ids), pa.string())
    width = first.vectors.shape[1] if first is not None else 0
    dtype = first.vectors.dtype if first is not None else np.dtype(np.float16)
    shape = (len(wanted), width)
    if memmap_to is not None:
        Path(memmap_to).parent.mkdir(parents=True, exist_ok=True)
        out = np.lib.format.open_memmap(memmap_to, mode="w+", dtype=dtype, shape=shape)
    else:
        out = np.empty(shape, dtype=dtype)
    # position of each id's first occurrence in image_ids (duplicates are copied from it at the end)
    unique = pc.count_distinct(wanted).as_py() == len(wanted)
    firsts = np.arange(len(wanted)) if unique else np.asarray(
        pc.index_in(wanted, value_set=wanted).to_numpy(zero_copy_only=False), np.int64)
    found = np.zeros(len(wanted), dtype=bool)
    opened = [] if first is None else [first, *shards]  # memory-mapped views: nothing is read yet
    if opened:
        every = pa.chunked_array([c for s in opened for c in s.id_array.chunks], pa.string())
        dest_all = pc.index_in(every, value_set=wanted).fill_null(-1).to_numpy(zero_copy_only=False)
    at = 0
    for shard in opened:
        dest = dest_all[at: at + len(shard)]
        at += len(shard)
        hit = dest >= 0 if shard.valid is None else (dest >= 0) & shard.valid
        rows = np.flatnonzero(hit)
        dest_rows = dest[rows].astype(np.int64)
        step = max(1, GATHER_BYTES // max(1, shard.vectors[:1].nbytes))
        for start in range(0, len(rows), step):  # bounded temporaries, whatever the shard size
            out[dest_rows[start: start + step]] = shard.vectors[rows[start: start + step]]
        found[dest_rows] = True
    if not found[firsts].all():
        lost = np.flatnonzero(~found[firsts])
        raise KeyError(f"{len(lost)} image ids have no feature in {root} (e.g. {image_ids[lost[0]]})")
    dup = np.flatnonzero(firsts != np.arange(len(firsts)))
    if len(dup):
        out[dup] = out[firsts[dup]]
    if isinstance(out, np.memmap):
        out.flush()
    return list(image_ids), out


def feature_store_root(storage_root: Path, encoder_name: str, dataset: str, output: str = "pooled") -> Path:
    """``features/<encoder>/<dataset>``; patch tokens: their own store ``features/<encoder>.patches/``."""
    folder = encoder_name if output == "pooled" else f"{encoder_name}.{output}"
    return Path(storage_root) / "features" / folder / dataset


class FeatureStoreKind(StoreKind):
    """Feature stores of every (encoder[.patches], dataset); ``_manifest.json`` is the marker."""

    kind = "features"
    folder = "features"
    markers = (MANIFEST,)

    def open(self, encoder_name: str, dataset: str, encoder_fingerprint: str, output: str = "pooled"
             ) -> FeatureStore:
        return FeatureStore(feature_store_root(self.storage_root, encoder_name, dataset, output),
                            encoder_fingerprint)

    def plan(self, encoder_name: str, dataset: str, encoder_fingerprint: str,  # type: ignore[override]
             output: str = "pooled") -> StorePlan:
        store = self.open(encoder_name, dataset, encoder_fingerprint, output)
        return StorePlan(encoder_fingerprint, store.root, store.manifest() is not None)

    def read(self, plan: StorePlan) -> dict[str, Any] | None:
        data = FeatureStore(plan.path, plan.fingerprint).manifest()
        return None if data is None else {**data, "path": str(plan.path), "computed": False}

    def shard_names(self) -> set[str]:
        """File names of every shard under ``features/`` (``tinyemo gc`` keeps the cached results naming
        one)."""
        return {p.name for p in self.root.glob("*/*/part-*")}

    def entries(self):
        for store in subdirs(self.root, "*/*"):
            meta = read_json(store / MANIFEST)
            fp = (meta or {}).get("encoder_fingerprint")
            yield entry(self.kind, f"{store.parent.name}/{store.name}", store, meta, fp)
