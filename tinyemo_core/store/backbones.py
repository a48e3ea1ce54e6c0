"""The registered-backbones file: ``backbones.yaml`` at the storage root, written by ``tinyemo backbone add``
(read and written by :mod:`tinyemo_core.registry`, atomically)."""

from __future__ import annotations

from pathlib import Path

from tinyemo_core.store.kind import StoreKind, entry
from tinyemo_core.store.plan import StorePlan

REGISTRY_FILE = "backbones.yaml"


class BackboneRegistryStore(StoreKind):
    """One YAML file next to the stores it describes."""

    kind = "backbones"
    folder = "."
    markers = (REGISTRY_FILE,)

    @property
    def path(self) -> Path:
        return self.storage_root / REGISTRY_FILE

    def plan(self) -> StorePlan:  # type: ignore[override]
        return StorePlan(REGISTRY_FILE, self.path, self.path.is_file())

    def complete(self, path: Path) -> bool:
        return Path(path).is_file()

    def entries(self):
        if self.path.is_file():
            yield entry(self.kind, REGISTRY_FILE, self.path, None, None, complete=True)


def registry_path(storage_root: Path) -> Path:
    return BackboneRegistryStore(storage_root).path
