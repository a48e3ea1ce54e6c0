"""EMOTIC per-person stores (LLaVA on EMOTIC, docs/datasets.md "EMOTIC"):

- ``emotic/<dataset>/persons-<fp16>/persons.parquet``: one row per annotated person with its red-box image;
- ``emotic/<dataset>/export-<fp16>/<variant>_<split>.json``: the two LLaVA exports;
- ``emotic_boxes/<key[:2]>/<key>.png``: the red-box renderings, content-addressed (a file that exists is
  complete: written under a temporary name and renamed).

In both ``emotic/`` folders ``summary.json`` is written last and marks completion.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinyemo_core.store.atomic import read_json, write_json
from tinyemo_core.store.kind import StoreEntry, StoreKind, entry, subdirs
from tinyemo_core.store.plan import StorePlan

SUMMARY = "summary.json"
PERSONS = "persons.parquet"
BOXES_DIR = "emotic_boxes"


class EmoticStore(StoreKind):
    """Person tables and their exports, per dataset."""

    kind = "emotic"
    folder = "emotic"
    markers = (SUMMARY,)

    def plan(self, dataset: str, part: str, fingerprint: str) -> StorePlan:  # type: ignore[override]
        """``part``: ``persons`` or ``export``."""
        path = self.root / dataset / f"{part}-{fingerprint[:16]}"
        return StorePlan(fingerprint, path, self.complete(path))

    @staticmethod
    def persons_file(persons_dir: Path) -> Path:
        return Path(persons_dir) / PERSONS

    @staticmethod
    def summary(path: Path) -> dict[str, Any] | None:
        return read_json(Path(path) / SUMMARY)

    def commit(self, plan: StorePlan, summary: dict[str, Any]) -> dict[str, Any]:
        """Write ``summary.json`` last (the folder's files are in place)."""
        write_json(plan.path / SUMMARY, summary)
        return {**summary, "computed": True}

    def read(self, plan: StorePlan) -> dict[str, Any] | None:
        data = self.summary(plan.path)
        return None if data is None else {**data, "computed": False}

    def entries(self):
        for dataset in subdirs(self.root):
            for path in subdirs(dataset):
                meta = self.summary(path)
                fp = (meta or {}).get("fingerprint")
                yield entry(self.kind, f"{dataset.name}/{path.name}", path, meta, fp)


class EmoticBoxesStore(StoreKind):
    """Red-box renderings, content-addressed by their key."""

    kind = "emotic-boxes"
    folder = BOXES_DIR

    def path(self, key: str) -> Path:
        return self.root / self.relpath(key)

    @staticmethod
    def relpath(key: str) -> str:
        return f"{key[:2]}/{key}.png"

    def plan(self, key: str) -> StorePlan:  # type: ignore[override]
        path = self.path(key)
        return StorePlan(key, path, path.is_file())

    def complete(self, path: Path) -> bool:
        return Path(path).is_file()

    def entries(self):
        if self.root.is_dir():  # one entry for the whole content-addressed pool
            files = list(self.root.glob("*/*.png"))
            yield StoreEntry(self.kind, self.root.name, self.root, True, len(files),
                             sum(p.stat().st_size for p in files), None)
