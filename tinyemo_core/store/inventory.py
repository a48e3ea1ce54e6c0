"""What is in a store root: every manifest, feature store, label table and run, complete or not."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tinyemo_core.store.atomic import read_json


@dataclass
class StoreEntry:
    kind: str
    name: str
    path: Path
    complete: bool
    rows: int | None
    size_bytes: int
    fingerprint: str | None


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def inventory(root: Path) -> list[StoreEntry]:
    """List the stores under ``root`` (a store without its completion marker is reported incomplete)."""
    out: list[StoreEntry] = []
    for pq_path in sorted((root / "manifests").glob("*/*.parquet")):
        meta = read_json(pq_path.with_suffix(".json"))
        out.append(
            StoreEntry(
                "manifest",
                pq_path.parent.name,
                pq_path,
                meta is not None,
                (meta or {}).get("rows"),
                _size(pq_path),
                pq_path.stem,
            )
        )
    for store in sorted((root / "features").glob("*/*")):
        if not store.is_dir():
            continue
        meta = read_json(store / "_manifest.json")
        out.append(
            StoreEntry(
                "features",
                f"{store.parent.name}/{store.name}",
                store,
                meta is not None,
                (meta or {}).get("rows"),
                _size(store),
                (meta or {}).get("encoder_fingerprint"),
            )
        )
    for table in sorted((root / "labels").glob("*/*.parquet")):
        meta = read_json(table.with_suffix(".json"))
        out.append(
            StoreEntry(
                "labels",
                table.parent.name,
                table,
                meta is not None,
                (meta or {}).get("rows"),
                _size(table),
                table.stem,
            )
        )
    for run in sorted(p for p in (root / "runs").glob("*") if p.is_dir() and not p.name.startswith(".")):
        meta = read_json(run / "metrics.json") or {}
        out.append(
            StoreEntry(
                "run", run.name, run, bool(meta.get("done")), None, _size(run), run.name.split("__")[-1]
            )
        )
        for ev in sorted(run.glob("eval-*")):
            out.append(
                StoreEntry(
                    "evaluation",
                    f"{run.name}/{ev.name}",
                    ev,
                    (ev / "report.json").exists(),
                    None,
                    _size(ev),
                    ev.name[5:],
                )
            )
    return out
