"""Models built offline once: ``models/<name>/`` (the tiny demo VLM ``tiny-vlm``, random language models of
``random:`` backbones). A folder is complete when its ``config.json`` is there (each is built in a staged
folder and renamed into place)."""

from __future__ import annotations

from pathlib import Path

from tinyemo_core.store.kind import StoreKind, entry, subdirs
from tinyemo_core.store.plan import StorePlan

CONFIG = "config.json"


class ModelsStore(StoreKind):
    """Locally built model folders, by name."""

    kind = "models"
    folder = "models"

    def path(self, name: str) -> Path:
        return self.root / name

    def plan(self, name: str) -> StorePlan:  # type: ignore[override]
        path = self.path(name)
        return StorePlan(name, path, self.complete(path))

    def complete(self, path: Path) -> bool:
        return (Path(path) / CONFIG).is_file()

    def entries(self):
        for path in subdirs(self.root):
            yield entry(self.kind, path.name, path, None, None, complete=self.complete(path))
