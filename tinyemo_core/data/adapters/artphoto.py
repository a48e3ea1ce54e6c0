"""ArtPhoto (Machajdik & Hanbury 2010): one flat folder, label = file-name prefix before the first ``_``
(``amusement_12.jpg``, ``sad_3.jpg``; short forms normalised). No official split."""

from __future__ import annotations

from pathlib import Path

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


ADAPTER = Adapter("artphoto", "mikels8", read_artphoto, "ArtPhoto: flat folder, <label>_<n>.jpg")
