"""What every store kind is: one class per kind of thing on disk under the storage root.

A store kind knows where its stores live (``folder`` under the storage root), which file marks a store
complete (``markers``: written last, the only names anything outside ``tinyemo_core/store`` must never
spell), and answers four questions:

- ``plan(...) -> StorePlan``: fingerprint, target path, complete or not (inputs differ per kind);
- ``staged(plan)``: a context that yields a temporary place to write into and commits it (rename into place,
  marker last) when the block succeeds;
- ``read(plan)``: the complete store's descriptor (its marker's content plus where it is), or None;
- ``entries()``: its stores for ``tinyemo status`` / ``tinyemo gc`` (complete or not).

Every subclass registers itself (:func:`store_kinds`), so a listing or a test can walk every kind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from tinyemo_core.provenance import current, describe
from tinyemo_core.store.atomic import read_json, staged_dir, write_json
from tinyemo_core.store.plan import StorePlan

_KINDS: list[type[StoreKind]] = []
PROVENANCE = "provenance.json"  # which Prefect run wrote a folder store (runs, evaluations)


@dataclass
class StoreEntry:
    """One store as ``tinyemo status`` lists it."""

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


def entry(kind: str, name: str, path: Path, meta: dict | None, fingerprint: str | None,
          complete: bool | None = None) -> StoreEntry:
    """An entry whose completion marker is ``meta`` (None: incomplete) unless ``complete`` says otherwise."""
    meta_d = meta or {}
    done = meta is not None if complete is None else complete
    by = describe(meta_d.get("produced_by"))
    return StoreEntry(kind, name, path, done, meta_d.get("rows"), tree_size(path), fingerprint, by)


def subdirs(folder: Path, pattern: str = "*") -> Iterator[Path]:
    """Visible sub-folders of ``folder`` matching ``pattern``, sorted (staging folders start with a dot)."""
    if folder.is_dir():
        yield from (p for p in sorted(folder.glob(pattern)) if p.is_dir() and not p.name.startswith("."))


class StoreKind(ABC):
    """Base of every store kind; ``storage_root`` is the profile's store root."""

    kind: ClassVar[str]              # the name ``tinyemo status`` shows
    folder: ClassVar[str]            # where its stores live, under the storage root
    markers: ClassVar[tuple[str, ...]] = ()  # completion markers (and other files only this kind names)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            _KINDS.append(cls)

    def __init__(self, storage_root: Path | str) -> None:
        self.storage_root = Path(storage_root)

    @property
    def root(self) -> Path:
        return self.storage_root / self.folder

    @abstractmethod
    def plan(self, *args: Any, **kwargs: Any) -> StorePlan:
        """Fingerprint, path and completion for the given inputs."""

    def complete(self, path: Path) -> bool:
        """True when the store at ``path`` carries its (first) completion marker."""
        return read_json(Path(path) / self.markers[0]) is not None

    def staged(self, plan: StorePlan) -> AbstractContextManager[Path]:
        """Write into a hidden sibling folder; renamed onto ``plan.path`` when the block succeeds (the caller
        writes the marker last inside the block)."""
        return staged_dir(plan.path)

    def read(self, plan: StorePlan) -> dict[str, Any] | None:
        """The complete store's marker plus its path and fingerprint, or None when incomplete."""
        if not self.complete(plan.path):
            return None
        data = read_json(Path(plan.path) / self.markers[0]) or {}
        return {**data, "path": str(plan.path), "fingerprint": plan.fingerprint, "computed": False}

    def entries(self) -> Iterator[StoreEntry]:
        """Every store of this kind under the storage root (folders holding the marker or not)."""
        for path in subdirs(self.root):
            meta = read_json(path / self.markers[0]) if self.markers else None
            yield entry(self.kind, path.name, path, meta, (meta or {}).get("fingerprint"))


def write_provenance(folder: Path) -> Path:
    """Record the current producer (:func:`tinyemo_core.provenance.current`) in ``folder``."""
    return write_json(Path(folder) / PROVENANCE, current())


def read_provenance(folder: Path) -> dict | None:
    return read_json(Path(folder) / PROVENANCE)


def store_kinds() -> list[type[StoreKind]]:
    """Every registered store kind (import :mod:`tinyemo_core.store.inventory` first to register them all)."""
    return list(_KINDS)


def all_markers() -> set[str]:
    """Every marker file name any store kind owns."""
    return {m for k in store_kinds() for m in k.markers}
