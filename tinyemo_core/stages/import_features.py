"""Import feature caches into a feature store, so training and evaluation run without extracting.

Sources (``tinyemo_core.data.feature_sources``): the authors' ``.pt`` tree, a ``.npy`` + rows table, or a
Parquet/Arrow table of (name, label, split, vector).

Two modes:

- **images present** (``manifest`` = the dataset's ingest manifest): rows are matched to the manifest by
  relative path (extension ignored): the whole path first, then its last two components (``<class>/<name>``,
  so ``train/anger/1.pt`` finds ``images/anger/1.jpg``), then the file name; a key that fits several manifest
  rows is reported as ambiguous, never guessed. Ids are the image-content ids (SHA-256 of the bytes).
- **features only** (no ``manifest``): ids are the source's names (``feature_sources.name_id``), the manifest
  comes from the source (``out_manifest``, or the features-only ingest stage), and the store records
  ``id_source: "name"``. :func:`rekey_store` later maps the names to image-content ids once the images arrive,
  without recomputing a vector.

The declared encoder (a flows.yaml encoder name) gives the store its fingerprint (the caller opens the store
with that encoder's fingerprint, as extraction would), so train-projector and evaluate for that encoder find
it complete; the import itself (source, kind, listing fingerprint, declared encoder) is recorded in the store
manifest.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tinyemo_core.data.feature_sources import (
    EXAMPLES,
    FeatureImportError,
    SourceRows,
    describe_duplicates,
    list_source,
    listing_fingerprint,
    manifest_from_source,
    max_copy_difference,
    read_vectors,
    strip_suffix,
)
from tinyemo_core.fingerprint import stable_hash
from tinyemo_core.store.atomic import write_parquet
from tinyemo_core.store.features import FeatureStore
from tinyemo_core.store.manifests import read_manifest, write_manifest

__all__ = ["FeatureImportError", "import_features", "match", "rekey_store", "source_fingerprint"]


def _tails(key: str) -> list[str]:
    """Match keys of a path, most specific first: the whole path, ``<class>/<name>``, ``<name>``."""
    parts = key.split("/")
    return list(dict.fromkeys(["/".join(parts), "/".join(parts[-2:]), parts[-1]]))


def _manifest_index(manifest: pa.Table) -> dict[str, str | None]:
    """Match key -> image id of the manifest's rows (aliases too); None marks an ambiguous key."""
    index: dict[str, str | None] = {}
    paths = manifest["path"].to_pylist()
    aliases = manifest["aliases"].to_pylist() if "aliases" in manifest.column_names else [[]] * len(paths)
    for image_id, path, alias in zip(manifest["image_id"].to_pylist(), paths, aliases, strict=True):
        for p in [path, *(alias or [])]:
            for k in _tails(strip_suffix(p)):
                index[k] = image_id if index.get(k, image_id) == image_id else None
    return index


def match(keys: list[str], manifest: pa.Table) -> tuple[list[str | None], dict[str, list[str]]]:
    """The image id of each source key (None when unmatched/ambiguous) and the problems by kind."""
    index = _manifest_index(manifest)
    ids: list[str | None] = []
    problems: dict[str, list[str]] = {"unmatched": [], "ambiguous": [], "duplicate": []}
    seen: set[str] = set()
    for key in keys:
        found, kind = None, "unmatched"
        for k in _tails(strip_suffix(key)):
            if k in index:
                found, kind = index[k], ("ambiguous" if index[k] is None else "ok")
                break
        if found is not None and found in seen:
            found, kind = None, "duplicate"
        if found is None:
            problems[kind].append(key)
        else:
            seen.add(found)
        ids.append(found)
    return ids, problems


def source_fingerprint(source: Path, table: Path | None = None, split_file: Path | None = None) -> str:
    """Identity of a source without reading a vector: its files' paths, sizes and mtimes."""
    return listing_fingerprint([Path(p) for p in (source, table, split_file) if p is not None])


def _write(store: FeatureStore, ids: list[str], vectors_of: Callable[[list[int]], np.ndarray],
           positions: list[int], tag: str, dtype: str, shard_size: int,
           on_progress: Callable[[dict], None] | None) -> list[dict]:
    """Shards of ``shard_size`` rows in id order; vectors are read one shard at a time."""
    order = sorted(range(len(ids)), key=ids.__getitem__)
    shards = []
    for start in range(0, len(order), shard_size):
        chunk = order[start:start + shard_size]
        chunk_ids = [ids[k] for k in chunk]
        name = f"part-{stable_hash('import', store.encoder_fingerprint, tag, chunk_ids, length=20)}.arrow"
        vectors = vectors_of([positions[k] for k in chunk])
        shards.append(store.write_shard(name, chunk_ids, vectors, np.arange(len(chunk)), {}, dtype=dtype))
        if on_progress is not None:
            on_progress({"stage": "write", "done": start + len(chunk), "total": len(order)})
    return shards


def import_features(
    dataset: str,
    source: Path,
    store: FeatureStore,
    *,
    encoder_name: str,
    manifest: Path | None = None,
    table: Path | None = None,
    split_file: Path | None = None,
    out_manifest: Path | None = None,
    features_manifest: Path | None = None,
    taxonomy: str = "open",
    dtype: str = "float16",
    shard_size: int = 10_000,
    replace: bool = False,
    on_progress: Callable[[dict], None] | None = None,
) -> dict[str, Any]:
    """Turn ``source`` into ``store``; idempotent (same source listing: nothing to do).

    ``manifest``: the dataset's ingest manifest (images present; ids from the image bytes). Without it the
    ids come from the source's names; ``features_manifest`` names the features-only manifest the ingest stage
    wrote for this source, or ``out_manifest`` is where to write one. ``replace``: a store holding an earlier
    import of another source state is rebuilt (declared features-only datasets) instead of refused.
    """
    source = Path(source)
    fp = source_fingerprint(source, table, split_file)
    existing = store.manifest()
    if existing is not None:
        imported = existing.get("imported") or {}
        if imported.get("source_fingerprint") == fp and imported.get("with_images") == (manifest is not None):
            return {"dataset": dataset, "store": str(store.root), "computed": False, **imported}
        if not (replace and imported):
            what = "another import" if imported else "extracted features"
            raise FeatureImportError(f"{store.root} already holds {what}; delete that folder to import into "
                                     "it, or import under another encoder name")
        shutil.rmtree(store.root)
    rows = list_source(source, table=table, split_file=split_file)
    keys = rows.refs if rows.kind == "pt-tree" else rows.names
    if manifest is not None:
        man = read_manifest(Path(manifest), ok_only=True)
        if rows.image_ids is not None:
            known = set(man["image_id"].to_pylist())
            ids = [i if i in known else None for i in rows.image_ids]
            problems = {"unmatched": [k for k, i in zip(keys, ids, strict=True) if i is None],
                        "ambiguous": [], "duplicate": []}
        else:
            ids, problems = match([str(k) for k in keys], man)
        missing = sorted(set(man["image_id"].to_pylist()) - {i for i in ids if i})
        manifest_out, id_source = str(manifest), "bytes"
    else:
        table_out = manifest_from_source(dataset, rows, taxonomy)
        if features_manifest is not None:
            wanted = set(read_manifest(Path(features_manifest))["image_id"].to_pylist())
            manifest_out = str(features_manifest)
        elif out_manifest is not None:
            write_manifest(Path(out_manifest), table_out, {
                "dataset": dataset, "fingerprint": fp, "layout": "features", "id_source": "name",
                "counts": {"rows": table_out.num_rows, "ok": table_out.num_rows}})
            wanted, manifest_out = set(table_out["image_id"].to_pylist()), str(out_manifest)
        else:
            raise FeatureImportError("no manifest: pass the dataset's manifest (images present), the "
                                     "features-only manifest, or out_manifest to write one from the source")
        ids = [i if i in wanted else None for i in table_out["image_id"].to_pylist()]
        problems = {"unmatched": [str(k) for k, i in zip(keys, ids, strict=True) if i is None],
                    "ambiguous": [], "duplicate": []}
        missing, id_source = [], "name"
    keep = [k for k, i in enumerate(ids) if i is not None]
    if not keep:
        raise FeatureImportError(f"{source}: no row matched the manifest {manifest_out} by relative path "
                                 f"(e.g. {[str(k) for k in keys[:3]]}); is it the right dataset?")

    def vectors_of(positions: list[int]) -> np.ndarray:
        return read_vectors(rows, positions)

    shards = _write(store, [ids[k] for k in keep], vectors_of, keep, fp, dtype, shard_size, on_progress)
    if "validation_duplicates_test" in rows.report:
        rows.report["validation_duplicates_test"]["max_abs_diff"] = max_copy_difference(rows)
    imported = {
        "format": rows.kind, "source": str(source), "table": str(table) if table is not None else None,
        "source_fingerprint": fp, "declared_encoder": encoder_name, "id_source": id_source,
        "with_images": manifest is not None, "dim": int(shards[0]["dim"]), "source_rows": len(rows),
        "imported": len(keep), "missing": len(missing), "missing_examples": missing[:EXAMPLES],
        **{k: len(v) for k, v in problems.items()},
        **{f"{k}_examples": v[:EXAMPLES] for k, v in problems.items() if v},
        "manifest": manifest_out, "notes": [n for n in [describe_duplicates(rows.report)] if n],
        "validation_duplicates_test": _dup_summary(rows),
    }
    store.commit(shards, extra={"imported": imported})
    return {"dataset": dataset, "store": str(store.root), "computed": True, **imported}


def _dup_summary(rows: SourceRows) -> dict | None:
    dup = rows.report.get("validation_duplicates_test")
    return None if not dup else {k: v for k, v in dup.items() if k != "pairs"}


def rekey_store(dataset: str, store: FeatureStore, image_manifest: Path, *, dtype: str = "float16",
                shard_size: int = 10_000) -> dict[str, Any]:
    """Re-key a features-only store (ids from names) to image-content ids, copying the vectors.

    The images arrived: ``image_manifest`` is their ingest manifest. Each stored name is matched to an image
    path like an import (``<class>/<name>`` tails); the mapping (name, name id, image id) is written as
    ``name_map.parquet`` next to the store, the store is rewritten with image ids and no vector is recomputed.
    Returns counts (mapped, unmatched names, images without a vector).
    """
    data = store.manifest()
    imported = (data or {}).get("imported") or {}
    if imported.get("id_source") != "name":
        raise FeatureImportError(f"{store.root}: not a features-only import (ids are not source names); "
                                 "nothing to re-key")
    names_table = read_manifest(Path(imported["manifest"]))
    names = names_table["path"].to_pylist()
    by_name = dict(zip(names, names_table["image_id"].to_pylist(), strict=True))
    image_ids, problems = match(names, read_manifest(Path(image_manifest), ok_only=True))
    _, vectors = store.load([by_name[n] for n in names])
    keep = [k for k, i in enumerate(image_ids) if i is not None]
    mapping = pa.table({"name": names, "name_id": [by_name[n] for n in names], "image_id": image_ids})
    mapping_path = store.root.parent / f"{store.root.name}.name_map.parquet"
    write_parquet(mapping_path, mapping)
    old_shards = [s["name"] for s in data["shards"]]
    store.manifest_path.unlink()
    shards = _write(store, [image_ids[k] for k in keep], lambda pos: np.asarray(vectors[pos], np.float32),
                    keep, imported["source_fingerprint"] + ":rekeyed", dtype, shard_size, None)
    images = set(read_manifest(Path(image_manifest), ok_only=True)["image_id"].to_pylist())
    rekeyed = {**imported, "id_source": "bytes", "with_images": True, "manifest": str(image_manifest),
               "rekeyed_from_names": len(keep), "unmatched": len(problems["unmatched"]),
               "missing": len(images - {image_ids[k] for k in keep})}
    store.commit(shards, extra={"imported": rekeyed})
    for name in old_shards:
        if name not in {s["name"] for s in shards}:
            store.shard_path(name).unlink(missing_ok=True)
    return {"dataset": dataset, "store": str(store.root), "mapped": len(keep),
            "unmatched": len(problems["unmatched"]), "ambiguous": len(problems["ambiguous"]),
            "missing": rekeyed["missing"], "name_map": str(mapping_path)}
