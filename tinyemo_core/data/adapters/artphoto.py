"""ArtPhoto (Machajdik & Hanbury 2010): one flat folder, label = file-name prefix before the first ``_``
(``amusement_12.jpg``, ``sad_3.jpg``; short forms normalised). No official split."""

from __future__ import annotations

import os
from pathlib import Path

from ..images import IMAGE_EXTENSIONS
from .base import Adapter, AdapterResult, SampleRecord, iter_image_files, label_or_none


def read_artphoto(root: Path) -> AdapterResult:
    result = AdapterResult([], root)
    for image in iter_image_files(root):
        prefix, sep, _ = image.name.partition("_")
        label = label_or_none(prefix) if sep else None
        if label is None:
            result.drop("no label prefix in file name")
            continue
        result.records.append(SampleRecord(image.relative_to(root).as_posix(), None, [label]))
    return result


def check_artphoto(root: Path) -> list[str]:
    if not root.is_dir():
        return [f"expected a folder at {root}"]
    with os.scandir(root) as entries:
        if any(e.is_file() and "_" in e.name and Path(e.name).suffix.lower() in IMAGE_EXTENSIONS
               for e in entries):
            return []
    return [f"expected <label>_<n>.jpg images directly in {root}"]


ADAPTER = Adapter(
    "artphoto", "mikels8", read_artphoto, "ArtPhoto: flat folder, <label>_<n>.jpg", check_artphoto
)
