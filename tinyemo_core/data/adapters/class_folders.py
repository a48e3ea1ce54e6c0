"""Shared reader for ``<folder>/<class>/**/<image>`` trees (WEBEmo, Emotion6, FI, UnbiasedEmo, generic)."""

from __future__ import annotations

from pathlib import Path

from .base import AdapterResult, DatasetLayoutError, SampleRecord, iter_image_files, label_or_none


def read_class_folders(
    root: Path, folder: Path, result: AdapterResult, *, split: str | None, subject_level: bool = False
) -> None:
    """Append one record per image under ``folder/<class>/``; with ``subject_level`` the next folder level
    is kept as ``attributes["subject"]`` (UnbiasedEmo's ``<emotion>/<subject>/`` layout)."""
    if not folder.is_dir():
        raise DatasetLayoutError(f"expected a folder of class sub-folders at {folder}")
    for class_dir in sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")):
        label = label_or_none(class_dir.name)
        if label is None:
            result.drop("unusable class folder name")
            continue
        for image in iter_image_files(class_dir):
            rel = image.relative_to(class_dir).parts
            attributes = {"subject": rel[0]} if subject_level and len(rel) > 1 else {}
            result.records.append(
                SampleRecord(image.relative_to(root).as_posix(), split, [label], attributes)
            )
