"""``tinyemo gc``: remove incomplete stores and the Prefect result files no store needs (dry run by default).

Prefect never deletes persisted task results by itself. A cached result here is a small descriptor of a store
(paths, shard names); once that store is gone the result is dead weight (the flows refresh the cache when the
store behind a key is missing), so it is collected. Incomplete stores (no completion marker) and stray
``*.tmp`` files are removed only when untouched for ``min_age_s`` (default one hour) so a running flow's
half-written store is left alone.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyemo_core.store.features import FeatureStoreKind
from tinyemo_core.store.inventory import inventory, tree_size


@dataclass
class Garbage:
    """One removable thing and why."""

    kind: str          # incomplete-store | temp-file | result
    path: Path
    size_bytes: int
    reason: str


def _newest_mtime(path: Path) -> float:
    if path.is_file():
        return path.stat().st_mtime
    return max([path.stat().st_mtime, *(p.stat().st_mtime for p in path.rglob("*"))])


def incomplete_stores(storage_root: Path, min_age_s: float = 3600.0) -> list[Garbage]:
    """Stores without their completion marker, untouched for ``min_age_s``, plus old ``*.tmp`` files."""
    now = time.time()
    out = []
    for entry in inventory(storage_root):
        if entry.complete or entry.path.name.startswith(".") or now - _newest_mtime(entry.path) < min_age_s:
            continue
        paths = [entry.path]
        if entry.kind == "labels":  # a label table's FAISS index and temporary siblings go with it
            paths += [p for p in entry.path.parent.glob(entry.path.stem + ".*") if p != entry.path]
        for p in paths:
            why = f"{entry.kind} {entry.name}: no completion marker"
            out.append(Garbage("incomplete-store", p, tree_size(p), why))
    seen = {g.path for g in out}
    for tmp in storage_root.rglob("*.tmp"):
        old = tmp.is_file() and now - tmp.stat().st_mtime >= min_age_s
        if old and tmp not in seen and not any(s in tmp.parents for s in seen):
            out.append(Garbage("temp-file", tmp, tmp.stat().st_size, "leftover temporary file"))
    return out


def _paths_in(value: Any) -> list[Path]:
    """Absolute filesystem paths mentioned anywhere in a cached task result."""
    if isinstance(value, Path):
        return [value] if value.is_absolute() else []
    if isinstance(value, str):
        return [Path(value)] if value.startswith("/") and "\n" not in value else []
    if isinstance(value, dict):
        return [p for v in value.values() for p in _paths_in(v)]
    if isinstance(value, list | tuple):
        return [p for v in value for p in _paths_in(v)]
    return []


def _shard_names(storage_roots: list[Path]) -> set[str]:
    return {name for root in storage_roots for name in FeatureStoreKind(root).shard_names()}


def unneeded_results(results_dir: Path, storage_roots: list[Path]) -> list[Garbage]:
    """Result files whose store is gone (or that cannot be read back at all).

    A result naming filesystem paths is needed while all of them exist; an ``extract-shard`` result (it names
    a shard, not a path) while a shard of that name exists under one of ``storage_roots``. Others are kept.
    """
    from prefect.filesystems import LocalFileSystem
    from prefect.results import ResultStore

    if not results_dir.is_dir():
        return []
    storage = LocalFileSystem(basepath=str(results_dir))
    store = ResultStore(result_storage=storage, cache_result_in_memory=False)
    shards: set[str] | None = None
    out = []
    for path in sorted(p for p in results_dir.iterdir() if p.is_file()):
        try:
            value = store.read(path.name).result
        except Exception as exc:  # noqa: BLE001 - any unreadable record is garbage, whatever the cause
            why = f"unreadable result ({type(exc).__name__})"
            out.append(Garbage("result", path, path.stat().st_size, why))
            continue
        missing = [p for p in _paths_in(value) if not p.exists()]
        if missing:
            out.append(Garbage("result", path, path.stat().st_size, f"store gone: {missing[0]}"))
        elif path.name.startswith("extract-shard:") and isinstance(value, dict) and "name" in value:
            shards = _shard_names(storage_roots) if shards is None else shards
            if value["name"] not in shards:
                out.append(Garbage("result", path, path.stat().st_size, f"shard {value['name']} gone"))
    return out


def results_dir() -> Path:
    """Where Prefect persists task results (``PREFECT_LOCAL_STORAGE_PATH``)."""
    from prefect.settings import get_current_settings

    return Path(get_current_settings().results.local_storage_path).expanduser()


def collect(storage_root: Path, results: Path | None = None, min_age_s: float = 3600.0) -> list[Garbage]:
    """Everything ``gc`` would remove for one store root."""
    results = results_dir() if results is None else results
    return incomplete_stores(storage_root, min_age_s) + unneeded_results(results, [storage_root])


def remove(garbage: list[Garbage]) -> int:
    """Delete the listed paths; return the bytes freed."""
    freed = 0
    for g in garbage:
        if g.path.is_dir():
            shutil.rmtree(g.path, ignore_errors=True)
        elif g.path.exists():
            g.path.unlink()
        else:
            continue
        freed += g.size_bytes
    return freed
