"""What is in a store root: every manifest, feature store, label table and run, complete or not."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tinyemo_core.provenance import describe
from tinyemo_core.store.atomic import read_json
from tinyemo_core.store.evaluations import PREFIX, evaluation_complete, list_evaluations
from tinyemo_core.store.runs import list_runs, parse_run_name, run_complete


@dataclass
class StoreEntry:
    kind: str
    name: str
    path: Path
    complete: bool
    rows: int | None
    size_bytes: int
    fingerprint: str | None
    produced_by: str = ""


def tree_size(path: Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _entry(kind: str, name: str, path: Path, meta: dict | None, fingerprint: str | None, complete=None):
    """An entry whose completion marker is ``meta`` (None: incomplete) unless ``complete`` says otherwise."""
    meta_d = meta or {}
    done = meta is not None if complete is None else complete
    by = describe(meta_d.get("produced_by"))
    return StoreEntry(kind, name, path, done, meta_d.get("rows"), tree_size(path), fingerprint, by)


def _dirs(folder: Path, pattern: str) -> Iterator[Path]:
    return (p for p in sorted(folder.glob(pattern)) if p.is_dir() and not p.name.startswith("."))


def inventory(root: Path) -> list[StoreEntry]:
    """List the stores under ``root`` (a store without its completion marker is reported incomplete)."""
    out: list[StoreEntry] = []
    for path in sorted((root / "manifests").glob("*/*.parquet")):
        meta = read_json(path.with_suffix(".json"))
        out.append(_entry("manifest", path.parent.name, path, meta, path.stem))
    for store in _dirs(root / "features", "*/*"):
        meta = read_json(store / "_manifest.json")
        fp = (meta or {}).get("encoder_fingerprint")
        out.append(_entry("features", f"{store.parent.name}/{store.name}", store, meta, fp))
    for path in sorted((root / "labels").glob("*/*.parquet")):
        out.append(_entry("labels", path.parent.name, path, read_json(path.with_suffix(".json")), path.stem))
    for run in list_runs(root):
        meta = {"produced_by": read_json(run / "provenance.json")}
        fingerprint = parse_run_name(run).fingerprint
        out.append(_entry("run", run.name, run, meta, fingerprint, complete=run_complete(run)))
        for ev in list_evaluations(run):
            meta = {"produced_by": read_json(ev / "provenance.json")}
            out.append(_entry("evaluation", f"{run.name}/{ev.name}", ev, meta, ev.name.removeprefix(PREFIX),
                              complete=evaluation_complete(ev)))
    return out
