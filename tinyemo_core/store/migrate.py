"""``tinyemo migrate-stores``: rewrite format-1 stores in place as format 2 (docs/stores.md).

Feature stores: each v1 shard (``part-<hash>.parquet``) is rewritten as ``part-<hash>.arrow`` (same rows,
same ids, same errors, same stem), then ``_manifest.json`` is rewritten listing the new names (written last,
atomically), then the v1 files are deleted. A kill at any point leaves a loadable store: before the manifest
the old shards are still the listed ones (new files are unlisted and get adopted by the next migration);
after it, only unlisted v1 leftovers remain, which the next migration deletes. The content hash is computed
over the v1 names, so no fingerprint changes and nothing is re-extracted or retrained. Label tables are
rewritten under the same path (atomic replace); their summary (completion marker) is untouched.

Run it while no flow writes to the stores. ``dry_run=True`` lists what would change and touches nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tinyemo_core.store.atomic import read_json, write_json
from tinyemo_core.store.features import FORMAT, MANIFEST, SUFFIX, FeatureStore, canonical_name
from tinyemo_core.store.labels import label_table_complete, read_label_table, write_label_table
from tinyemo_core.store.vectors import read_shard, shard_format


def _feature_plan(manifest_path: Path) -> dict[str, Any] | None:
    data = read_json(manifest_path)
    if not data or "shards" not in data:
        return None
    root = manifest_path.parent
    old = [s["name"] for s in data["shards"] if shard_format(Path(s["name"])) == 1]
    listed = {canonical_name(s["name"]) for s in data["shards"]}
    leftovers = sorted(p.name for p in root.glob("part-*" + SUFFIX[1])
                       if p.name not in {s["name"] for s in data["shards"]} and p.name in listed)
    if not old and not leftovers:
        return None
    size = sum((root / n).stat().st_size for n in old + leftovers if (root / n).exists())
    return {"kind": "features", "path": str(root), "shards": old, "leftovers": leftovers, "bytes": size}


def _label_plan(path: Path) -> dict[str, Any] | None:
    if not label_table_complete(path):
        return None
    vector = pq.read_schema(path).field("vector").type
    if pa.types.is_fixed_size_binary(vector):
        return None
    return {"kind": "labels", "path": str(path), "bytes": path.stat().st_size}


def plan_migration(storage_root: Path) -> list[dict[str, Any]]:
    """Every store under ``storage_root`` still (partly) in format 1, with what would be rewritten."""
    root = Path(storage_root)
    plans = [p for m in sorted(root.glob(f"features/*/*/{MANIFEST}")) if (p := _feature_plan(m))]
    return plans + [p for t in sorted(root.glob("labels/*/*.parquet")) if (p := _label_plan(t))]


def _migrate_features(item: dict[str, Any]) -> None:
    root = Path(item["path"])
    data = read_json(root / MANIFEST)
    store = FeatureStore(root, data["encoder_fingerprint"], data.get("dim"))
    renamed: dict[str, dict] = {}
    for name in item["shards"]:
        new = str(Path(name).with_suffix(SUFFIX[FORMAT]))
        entry = next(s for s in data["shards"] if s["name"] == name)
        if not store.shard_done(new):  # a killed migration may have written it already
            shard = read_shard(root / name, errors=True)
            ok = np.flatnonzero(shard.valid) if shard.valid is not None else np.arange(len(shard))
            errors = {i: e for i, e in enumerate(shard.errors or []) if e is not None}
            dtype = "float16" if shard.vectors.dtype == np.float16 else "float32"
            store.write_shard(new, shard.ids, np.asarray(shard.vectors[ok]), ok, errors, dtype=dtype)
        renamed[name] = {**entry, "name": new}
    shards = [renamed.get(s["name"], s) for s in data["shards"]]
    write_json(root / MANIFEST, {**data, "shards": shards, "format": FORMAT}, tmp_dir=store.staging)
    for name in [*item["shards"], *item["leftovers"]]:
        (root / name).unlink(missing_ok=True)
    store.clear_temporaries()


def _migrate_labels(item: dict[str, Any]) -> None:
    path = Path(item["path"])
    summary = read_json(path.with_suffix(".json"))
    table = read_label_table(path)
    write_label_table(path, table, {k: v for k, v in summary.items() if k not in ("rows", "dim")})
    write_json(path.with_suffix(".json"), summary)  # the marker stays exactly what it was


def migrate_stores(storage_root: Path, *, dry_run: bool = False,
                   on_progress: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Rewrite every format-1 store under ``storage_root`` as format 2 (see the module docstring).

    Returns ``{"storage_root", "dry_run", "stores": [plan...], "migrated": n, "bytes": total}``; each plan
    says ``kind`` (features | labels), ``path`` and what is rewritten.
    """
    plans = plan_migration(storage_root)
    for k, item in enumerate(plans):
        if not dry_run:
            (_migrate_features if item["kind"] == "features" else _migrate_labels)(item)
            item["migrated"] = True
        if on_progress is not None:
            on_progress({"done": k + 1, "total": len(plans), "path": item["path"], "dry_run": dry_run})
    return {"storage_root": str(storage_root), "dry_run": dry_run, "stores": plans,
            "migrated": 0 if dry_run else len(plans), "bytes": sum(p["bytes"] for p in plans)}
