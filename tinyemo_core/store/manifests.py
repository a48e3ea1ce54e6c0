"""Dataset manifests: ``manifests/<dataset>/<fingerprint>.parquet`` (+ ``.json`` summary, written last).

The fingerprint is cheap to compute (no image is read): the ingest code version, the dataset's settings and
the
(path, size, mtime) listing of every file under the dataset root. An unchanged dataset therefore reuses its
manifest without hashing a single image; a touched file makes a new manifest.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tinyemo_core.fingerprint import stable_hash, step_fingerprint
from tinyemo_core.provenance import current
from tinyemo_core.store.atomic import read_json, write_json, write_parquet
from tinyemo_core.store.kind import StoreKind, entry
from tinyemo_core.store.plan import StorePlan

#: a function naming the scope (e.g. the current root flow-run id) within which a dataset tree is walked at
#: most once; asked on every listing, so the memo ends with its scope (it returns None outside one)
walk_scope: ContextVar[Callable[[], str | None] | None] = ContextVar("tinyemo_walk_scope", default=None)
_walks: dict[tuple[str, str], str] = {}
_MAX_WALKS = 4096


def listing_hash(root: Path) -> str:
    """Hash of the relative path, size and mtime of every file below ``root`` (sorted); memoised per
    :data:`walk_scope` (one flow run walks each dataset tree once)."""
    if not root.exists():
        raise FileNotFoundError(f"dataset root {root} does not exist; check `root` in flows.yaml")
    provider = walk_scope.get()
    scope = provider() if provider is not None else None
    key = (scope or "", str(Path(root).resolve()))
    if scope is not None and key in _walks:
        return _walks[key]
    digest = _walk(root)
    if scope is not None:
        if len(_walks) >= _MAX_WALKS:
            _walks.clear()
        _walks[key] = digest
    return digest


def _walk(root: Path) -> str:
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath) / name
            try:
                st = full.stat()
                entries.append((full.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
            except OSError as exc:  # unreadable entries still shape the manifest (they get quarantined)
                entries.append((full.relative_to(root).as_posix(), -1, str(exc.errno)))
    return stable_hash(entries, length=32)


def manifest_fingerprint(dataset: str, settings: dict[str, Any], root: Path) -> str:
    """Fingerprint of an ingest: dataset settings + file listing + ingest code version."""
    return step_fingerprint("ingest", dataset, settings, listing_hash(root))


def manifest_path(store_root: Path, dataset: str, fingerprint: str) -> Path:
    return store_root / "manifests" / dataset / f"{fingerprint}.parquet"


def manifest_complete(path: Path) -> bool:
    """A manifest is complete when its summary JSON (written after the Parquet file) exists."""
    return path.exists() and read_json(path.with_suffix(".json")) is not None


def write_manifest(path: Path, table: pa.Table, summary: dict[str, Any]) -> dict[str, Any]:
    """Write the manifest table, then its summary (row counts, content hash) as the completion marker."""
    write_parquet(path, table)
    summary = {
        **summary,
        "rows": table.num_rows,
        "content_hash": content_hash(table),
        "produced_by": current(),
    }
    write_json(path.with_suffix(".json"), summary)
    return summary


def content_hash(table: pa.Table) -> str:
    """Hash of the rows that matter downstream (image ids, splits, labels, status)."""
    cols = [c for c in ("image_id", "path", "split", "label", "status") if c in table.column_names]
    return stable_hash(table.select(cols).to_pydict(), length=32)


def read_manifest(path: Path, *, ok_only: bool = False) -> pa.Table:
    """The manifest table; ``ok_only`` keeps the rows that decoded (quarantined rows never reach a model)."""
    table = pq.read_table(path)
    return table.filter(pc.equal(table["status"], "ok")) if ok_only else table


def read_summary(path: Path) -> dict[str, Any]:
    data = read_json(path.with_suffix(".json"))
    if data is None:
        raise FileNotFoundError(f"manifest {path} is incomplete; rerun ingest")
    return data


class ManifestStore(StoreKind):
    """One manifest per (dataset, fingerprint); the summary JSON next to the table is the marker."""

    kind = "manifest"
    folder = "manifests"

    def plan(self, dataset: str, fingerprint: str) -> StorePlan:  # type: ignore[override]
        path = manifest_path(self.storage_root, dataset, fingerprint)
        return StorePlan(fingerprint, path, manifest_complete(path))

    def complete(self, path: Path) -> bool:
        return manifest_complete(path)

    def read(self, plan: StorePlan) -> dict[str, Any] | None:
        """The ingest descriptor of a complete manifest (what the ingest stage returns)."""
        summary = read_json(plan.path.with_suffix(".json")) if plan.path.exists() else None
        if summary is None:
            return None
        return {"dataset": plan.path.parent.name, "manifest": str(plan.path), "fingerprint": plan.fingerprint,
                "computed": False, **summary}

    def entries(self):
        for path in sorted(self.root.glob("*/*.parquet")):
            yield entry(self.kind, path.parent.name, path, read_json(path.with_suffix(".json")), path.stem)
