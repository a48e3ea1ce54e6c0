"""Import existing feature caches into a feature store, so training and evaluation run without extracting.

Two sources:
- the authors' cache tree: one ``.pt`` tensor per image under ``<split>/<class>/<name>.pt``;
- a plain ``.npy`` matrix (N, d) plus a CSV/Parquet table with one row per matrix row: a ``path`` column
  (relative image path) and/or an ``image_id`` column.

Rows are matched to the dataset's manifest by relative path (file extension ignored): the whole path first,
then its last two components (``<class>/<name>``, so ``train/anger/1.pt`` finds ``images/anger/1.jpg``), then
the file name; a key that fits several manifest rows is reported as ambiguous, never guessed. Image ids are
the manifest's (SHA-256 of the image bytes). Without a manifest (no images at hand), labels and splits come
from the tree (or the table's ``label``/``split`` columns), ids are derived from the relative path, and the
written manifest and store say so (``id_source: "path"``).

The declared encoder identity (a flows.yaml encoder name) gives the store its fingerprint (the caller opens
the store with that encoder's fingerprint, as extraction would), so train-projector and evaluate for that
encoder find it complete; the import itself (source, format, digest, declared encoder) is recorded in the
store manifest and the shard names. Pickles are never executed: ``.pt`` files are read with
``torch.load(weights_only=True)`` and must hold a tensor; ``.npy`` with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa

from tinyemo_core.fingerprint import stable_hash
from tinyemo_core.store.features import FeatureStore

FORMATS = ("pt-tree", "npy")
EXAMPLES = 5


class FeatureImportError(ValueError):
    """A source that cannot be imported; the message names the file or row and what to do."""


def _key(rel: str) -> str:
    """A relative path without its extension, POSIX."""
    p = PurePosixPath(rel)
    return str(p.with_suffix("")) if p.suffix else str(p)


def _tails(key: str) -> list[str]:
    """Match keys of a path, most specific first: the whole path, ``<class>/<name>``, ``<name>``."""
    parts = key.split("/")
    return list(dict.fromkeys(["/".join(parts), "/".join(parts[-2:]), parts[-1]]))


def load_tensor(path: Path) -> np.ndarray:
    """One feature vector from a ``.pt`` file: only a tensor of shape (d,) or (1, d) is accepted."""
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for anything but plain tensors/containers, or a broken file
        raise FeatureImportError(
            f"{path}: refused, not a plain tensor file (torch.load(weights_only=True) says: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); pickled objects are never run"
        ) from None
    if not isinstance(obj, torch.Tensor):
        raise FeatureImportError(f"{path}: holds a {type(obj).__name__}, not a tensor; save one tensor per "
                                 "image (torch.save(features, path))")
    if obj.ndim == 2 and obj.shape[0] == 1:
        obj = obj[0]
    if obj.ndim != 1 or not obj.is_floating_point():
        raise FeatureImportError(f"{path}: expected a float vector of shape (d,) or (1, d), got "
                                 f"{tuple(obj.shape)} {obj.dtype}")
    return obj.float().numpy()


def read_pt_tree(root: Path, on_progress: Callable[[dict], None] | None = None
                 ) -> tuple[list[str], np.ndarray]:
    """Relative paths (POSIX, with ``.pt``) and the (N, d) float32 matrix of a cache tree, sorted by path."""
    files = sorted(p for p in Path(root).rglob("*.pt") if p.is_file())
    if not files:
        raise FeatureImportError(f"{root}: no .pt files found; expected <split>/<class>/<name>.pt")
    rels, rows = [], []
    for i, f in enumerate(files):
        rows.append(load_tensor(f))
        rels.append(f.relative_to(root).as_posix())
        if rows[-1].shape != rows[0].shape:
            raise FeatureImportError(f"{f}: a {rows[-1].shape[0]}-d vector, but {rels[0]} is "
                                     f"{rows[0].shape[0]}-d; one encoder per import")
        if on_progress is not None and (i % 1000 == 0 or i == len(files) - 1):
            on_progress({"stage": "read", "done": i + 1, "total": len(files)})
    return rels, np.stack(rows)


def read_npy_table(npy: Path, table: Path) -> tuple[pa.Table, np.ndarray]:
    """The (N, d) matrix of ``npy`` (no pickles) and its N-row ids/paths table (CSV or Parquet)."""
    try:
        matrix = np.load(npy, allow_pickle=False)
    except ValueError as exc:
        raise FeatureImportError(f"{npy}: refused ({exc}); save a plain float array: np.save(path, x)") \
            from None
    if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.floating):
        raise FeatureImportError(f"{npy}: expected a 2-D float array (N, d), got {matrix.shape} "
                                 f"{matrix.dtype}")
    if Path(table).suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(table)
    else:
        import pyarrow.csv as pacsv

        types = {"path": pa.string(), "image_id": pa.string(), "label": pa.string(), "split": pa.string()}
        rows = pacsv.read_csv(table, convert_options=pacsv.ConvertOptions(column_types=types))
    if not {"path", "image_id"} & set(rows.column_names):
        raise FeatureImportError(f"{table}: needs a 'path' and/or an 'image_id' column (has "
                                 f"{rows.column_names})")
    if rows.num_rows != len(matrix):
        raise FeatureImportError(f"{table} has {rows.num_rows} rows but {npy} has {len(matrix)}: one table "
                                 "row per matrix row, in the same order")
    return rows, matrix


def source_digest(paths: list[Path]) -> str:
    """SHA-256 over the source files' bytes (what was imported; recorded and part of the shard names)."""
    h = hashlib.sha256()
    for p in paths:
        for f in sorted(p.rglob("*.pt")) if p.is_dir() else [p]:
            h.update(str(f.relative_to(p) if p.is_dir() else f.name).encode("utf-8", "surrogateescape"))
            h.update(f.read_bytes())
    return h.hexdigest()[:32]


def _manifest_index(manifest: pa.Table) -> tuple[dict[str, str | None], int]:
    """Match key -> image id of the manifest's decodable rows (aliases too); None marks an ambiguous key."""
    index: dict[str, str | None] = {}
    paths = manifest["path"].to_pylist()
    aliases = manifest["aliases"].to_pylist() if "aliases" in manifest.column_names else [[]] * len(paths)
    for image_id, path, alias in zip(manifest["image_id"].to_pylist(), paths, aliases, strict=True):
        for p in [path, *(alias or [])]:
            for k in _tails(_key(p)):
                index[k] = image_id if index.get(k, image_id) == image_id else None
    return index, len(paths)


def match(rels: list[str], manifest: pa.Table) -> tuple[list[str | None], dict[str, list[str]]]:
    """The image id of each source path (None when unmatched/ambiguous) and the problems by kind."""
    index, _ = _manifest_index(manifest)
    ids: list[str | None] = []
    problems: dict[str, list[str]] = {"unmatched": [], "ambiguous": [], "duplicate": []}
    seen: set[str] = set()
    for rel in rels:
        found, kind = None, "unmatched"
        for k in _tails(_key(rel)):
            if k in index:
                found, kind = index[k], ("ambiguous" if index[k] is None else "ok")
                break
        if found is not None and found in seen:
            found, kind = None, "duplicate"
        if found is None:
            problems[kind].append(rel)
        else:
            seen.add(found)
        ids.append(found)
    return ids, problems


def path_id(dataset: str, rel: str) -> str:
    """An image id derived from the relative path (no image bytes at hand); 32 hex characters."""
    return stable_hash("path-derived", dataset, _key(rel), length=32)


def manifest_from_paths(dataset: str, rels: list[str], table: pa.Table | None = None) -> pa.Table:
    """A manifest for sources without images: ``<split>/<class>/<name>`` gives split and label (or the
    table's ``split`` / ``label`` columns); ids derived from the path; rows marked ``id_source: path``."""
    import json

    from tinyemo_core.data.adapters.base import DatasetLayoutError, normalise_split
    from tinyemo_core.data.ingest import MANIFEST_SCHEMA
    from tinyemo_core.data.taxonomy import UnknownLabelError, normalise_label

    cols = table.column_names if table is not None else []
    rows = []
    for i, rel in enumerate(rels):
        parts = _key(rel).split("/")
        try:
            split = table["split"][i].as_py() if "split" in cols else parts[-3] if len(parts) >= 3 else None
            label = table["label"][i].as_py() if "label" in cols else parts[-2] if len(parts) >= 2 else None
            if split is None or label is None:
                raise DatasetLayoutError("no <split>/<class>/ folders")
            split, label = normalise_split(split), normalise_label(label)
        except (DatasetLayoutError, UnknownLabelError) as exc:
            raise FeatureImportError(f"{rel}: cannot read split and label without a manifest ({exc}); "
                                     "lay the files out as <split>/<class>/<name>.pt, give the table "
                                     "'split' and 'label' columns, or ingest the images first") from None
        rows.append({"image_id": path_id(dataset, rel), "path": rel, "split": split, "label": label,
                     "labels": [label], "taxonomy": "open", "dataset": dataset, "status": "ok", "error": None,
                     "width": None, "height": None, "aliases": [],
                     "attributes": json.dumps({"id_source": "path"})})
    return pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)


def import_features(
    dataset: str,
    source: Path,
    store: FeatureStore,
    *,
    encoder_name: str,
    manifest: Path | None = None,
    table: Path | None = None,
    out_manifest: Path | None = None,
    dtype: str = "float16",
    shard_size: int = 10_000,
    on_progress: Callable[[dict], None] | None = None,
) -> dict[str, Any]:
    """Turn ``source`` (a ``.pt`` tree, or a ``.npy`` with ``table``) into ``store``; idempotent.

    ``store`` is the store extraction would write for (``encoder_name``, ``dataset``), opened with that
    encoder's fingerprint. With ``manifest`` (the dataset's ingest manifest: images present) ids come from
    the image bytes; without, ``out_manifest`` is written from the source's paths (ids from the paths).
    Manifest rows without a source row are reported as ``missing`` and not written (a later extraction
    fills exactly those in). Returns a descriptor: counts, problems (examples), store manifest.
    """
    source = Path(source)
    fmt = "npy" if source.suffix.lower() == ".npy" else "pt-tree"
    if fmt == "npy" and table is None:
        raise FeatureImportError(f"{source}: a .npy source needs its ids/paths table (CSV or Parquet)")
    if fmt == "pt-tree" and not source.is_dir():
        raise FeatureImportError(f"{source}: expected a folder of <split>/<class>/<name>.pt files or a .npy")
    if manifest is None and out_manifest is None:
        raise FeatureImportError("no manifest: pass the dataset's manifest (ingest the images first) or "
                                 "out_manifest to write one from the source's paths")
    digest = source_digest([source] + ([Path(table)] if table is not None else []))
    existing = store.manifest()
    if existing is not None:
        if (existing.get("imported") or {}).get("source_digest") == digest:
            return {"dataset": dataset, "store": str(store.root), "computed": False, **existing["imported"]}
        what = "another import" if existing.get("imported") else "extracted features"
        raise FeatureImportError(f"{store.root} already holds {what}; delete that folder to import into it, "
                                 "or import under another encoder name")
    if fmt == "pt-tree":
        rels, matrix = read_pt_tree(source, on_progress)
        rows = None
    else:
        rows, matrix = read_npy_table(source, Path(table))
        rels = rows["path"].to_pylist() if "path" in rows.column_names else rows["image_id"].to_pylist()

    if manifest is not None:
        from tinyemo_core.store.manifests import read_manifest

        man = read_manifest(Path(manifest), ok_only=True)
        id_source = "bytes"
        if rows is not None and "image_id" in rows.column_names:
            known = set(man["image_id"].to_pylist())
            ids = [i if i in known else None for i in rows["image_id"].to_pylist()]
            problems = {"unmatched": [r for r, i in zip(rels, ids, strict=True) if i is None],
                        "ambiguous": [], "duplicate": []}
        else:
            ids, problems = match(rels, man)
        missing = sorted(set(man["image_id"].to_pylist()) - {i for i in ids if i})
        manifest_out = str(manifest)
    else:
        from tinyemo_core.store.manifests import write_manifest

        man = manifest_from_paths(dataset, rels, rows)
        id_source, missing = "path", []
        ids = man["image_id"].to_pylist()
        problems = {"unmatched": [], "ambiguous": [], "duplicate": []}
        summary = {"dataset": dataset, "fingerprint": digest, "layout": "imported", "id_source": "path",
                   "counts": {"rows": man.num_rows, "ok": man.num_rows}}
        write_manifest(Path(out_manifest), man, summary)
        manifest_out = str(out_manifest)

    keep = sorted((i, k) for k, i in enumerate(ids) if i is not None)
    if not keep:
        raise FeatureImportError(f"{source}: no row matched the manifest {manifest_out} by relative path "
                                 f"(e.g. {rels[:3]}); is it the right dataset?")
    shards = []
    for start in range(0, len(keep), shard_size):
        chunk = keep[start:start + shard_size]
        chunk_ids = [i for i, _ in chunk]
        tag = stable_hash("import", store.encoder_fingerprint, digest, chunk_ids, length=20)
        name = f"part-{tag}.parquet"
        vectors = matrix[[k for _, k in chunk]]
        shards.append(store.write_shard(name, chunk_ids, vectors, np.arange(len(chunk)), {}, dtype=dtype))
        if on_progress is not None:
            on_progress({"stage": "write", "done": start + len(chunk), "total": len(keep)})
    imported = {
        "format": fmt, "source": str(source), "table": str(table) if table is not None else None,
        "source_digest": digest, "declared_encoder": encoder_name, "id_source": id_source,
        "dim": int(matrix.shape[1]), "source_rows": len(rels), "imported": len(keep),
        "missing": len(missing), "missing_examples": missing[:EXAMPLES],
        **{k: len(v) for k, v in problems.items()},
        **{f"{k}_examples": v[:EXAMPLES] for k, v in problems.items() if v},
        "manifest": manifest_out,
    }
    store.commit(shards, extra={"imported": imported})
    return {"dataset": dataset, "store": str(store.root), "computed": True, **imported}
