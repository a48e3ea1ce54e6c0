"""Shared types and helpers for dataset adapters (one module per published on-disk layout)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..images import IMAGE_EXTENSIONS
from ..taxonomy import UnknownLabelError, normalise_label

__all__ = [
    "SPLITS",
    "Adapter",
    "AdapterResult",
    "DatasetLayoutError",
    "SampleRecord",
    "has_subfolders",
    "iter_image_files",
    "label_or_none",
    "missing",
    "one_of",
    "normalise_split",
    "relative_path",
]

SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test",
}  # fmt: skip


class DatasetLayoutError(ValueError):
    """The folder does not look like the layout the adapter reads; the message says what was expected."""


@dataclass
class SampleRecord:
    """One image of a dataset as its layout describes it.

    ``path`` is POSIX and relative to the dataset root (a path escaping the root is kept as written so
    ingest can quarantine it). ``split`` is None only inside an adapter, before :func:`list_samples` assigns
    one. ``labels[0]`` is the primary label.
    """

    path: str
    split: str | None
    labels: list[str]
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class AdapterResult:
    """Records of a dataset plus what was dropped (``dropped``: reason -> count) and other counted oddities
    that kept the record (``notes``). ``root`` is the folder that record paths are relative to."""

    records: list[SampleRecord]
    root: Path
    dropped: dict[str, int] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + n

    def note(self, reason: str, n: int = 1) -> None:
        self.notes[reason] = self.notes.get(reason, 0) + n


def root_is_folder(root: Path) -> list[str]:
    """The default layout check: the root is a folder."""
    return [] if root.is_dir() else [f"expected a folder at {root}"]


@dataclass(frozen=True)
class Adapter:
    """A dataset layout: ``read(root)`` lists its samples; ``taxonomy`` is the default label set;
    ``check(root)`` says cheaply (no walk over the images) what the layout needs that ``root`` lacks, one
    message per missing file or folder (empty when it looks right; ``tinyemo check`` prints them)."""

    name: str
    taxonomy: str
    read: Callable[[Path], AdapterResult]
    description: str
    check: Callable[[Path], list[str]] = root_is_folder


def normalise_split(name: str) -> str:
    """Map published split names (training, validation, testing, ...) onto train/val/test."""
    key = name.strip().lower()
    if key not in _SPLIT_ALIASES:
        raise DatasetLayoutError(f"unknown split name {name!r}; expected one of {sorted(_SPLIT_ALIASES)}")
    return _SPLIT_ALIASES[key]


def label_or_none(word: str) -> str | None:
    """Normalised label, or None for an empty/unusable word (the caller drops and counts the sample)."""
    try:
        return normalise_label(word)
    except UnknownLabelError:
        return None


def iter_image_files(folder: Path) -> Iterator[Path]:
    """Image files under ``folder`` (recursive, by extension, hidden skipped), sorted for determinism."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                found.append(Path(dirpath) / name)
    # Symlinked files are listed (ingest decides whether they stay inside the root).
    return iter(sorted(found))


def relative_path(root: Path, raw: str | Path) -> str:
    """POSIX path of ``raw`` relative to ``root``; an absolute path outside ``root`` is returned as-is."""
    p = Path(str(raw).replace("\\", "/"))
    if p.is_absolute():
        try:
            return p.relative_to(root).as_posix()
        except ValueError:
            try:
                return p.relative_to(root.resolve()).as_posix()
            except ValueError:
                return p.as_posix()
    return p.as_posix()


def missing(root: Path, *required: str) -> list[str]:
    """One message per path in ``required`` (relative to ``root``; a trailing ``/`` means a folder) that is
    not there; checks the root itself first."""
    if not root.is_dir():
        return [f"expected a folder at {root}"]
    out = []
    for rel in required:
        path = root / rel.rstrip("/")
        ok = path.is_dir() if rel.endswith("/") else path.is_file()
        if not ok:
            out.append(f"expected {'folder' if rel.endswith('/') else 'file'} {rel} under {root}")
    return out


def one_of(root: Path, *alternatives: str) -> list[str]:
    """Empty when at least one of ``alternatives`` (files relative to ``root``) exists, else one message."""
    if not root.is_dir():
        return [f"expected a folder at {root}"]
    if any((root / rel).is_file() for rel in alternatives):
        return []
    return [f"expected one of {', '.join(alternatives)} under {root}"]


def has_subfolders(folder: Path, what: str) -> list[str]:
    """Empty when ``folder`` holds at least one visible sub-folder (e.g. a class folder)."""
    if not folder.is_dir():
        return [f"expected {what} at {folder}"]
    with os.scandir(folder) as entries:
        if any(e.is_dir() and not e.name.startswith(".") for e in entries):
            return []
    return [f"expected {what} at {folder}, found no sub-folders"]


def require(path: Path, what: str, layout: str) -> Path:
    """``path`` must exist, else a DatasetLayoutError that says what the ``layout`` expects there."""
    if not path.exists():
        raise DatasetLayoutError(f"{layout}: expected {what} at {path}; is the root folder right?")
    return path
