"""Persisted split assignments: ``splits/<dataset>.json`` (image id -> split) for layouts that publish no
split, so adding images never moves an old one to another split (:mod:`tinyemo_core.data.adapters.splits`
writes it atomically)."""

from __future__ import annotations

from pathlib import Path

from tinyemo_core.store.kind import StoreKind, entry
from tinyemo_core.store.plan import StorePlan


class SplitStore(StoreKind):
    """One split file per dataset (complete once written: it is written atomically)."""

    kind = "splits"
    folder = "splits"

    def path(self, dataset: str) -> Path:
        return self.root / f"{dataset}.json"

    def plan(self, dataset: str) -> StorePlan:  # type: ignore[override]
        path = self.path(dataset)
        return StorePlan(dataset, path, path.is_file())

    def complete(self, path: Path) -> bool:
        return Path(path).is_file()

    def entries(self):
        if self.root.is_dir():
            for path in sorted(self.root.glob("*.json")):
                yield entry(self.kind, path.stem, path, None, None, complete=True)
