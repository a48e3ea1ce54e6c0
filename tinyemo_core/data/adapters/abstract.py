"""Abstract (Machajdik & Hanbury 2010): ``ABSTRACT_groundTruth.csv`` of per-class vote counts.

Label = the class with the most votes; ties for first place and images without votes are dropped and
counted (as the reference does, but counted). Header and file names may carry single quotes, which are
stripped. Images are looked up by file name anywhere under the root. Votes are kept in attributes.
"""

from __future__ import annotations

import csv
from pathlib import Path

from .base import Adapter, AdapterResult, DatasetLayoutError, SampleRecord, iter_image_files, label_or_none

CSV_NAME = "ABSTRACT_groundTruth.csv"


def _unquote(s: str) -> str:
    return s.strip().strip("'\"").strip()


def read_abstract(root: Path) -> AdapterResult:
    found = sorted(root.rglob(CSV_NAME))
    if not found:
        raise DatasetLayoutError(f"abstract: expected {CSV_NAME} under {root}")
    result = AdapterResult([], root)
    by_name = {}
    for image in iter_image_files(root):
        by_name.setdefault(image.name, image.relative_to(root).as_posix())
    with found[0].open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise DatasetLayoutError(f"abstract: {found[0]} is empty")
    header = [_unquote(h) for h in rows[0]]
    classes = [label_or_none(h) for h in header[1:]]
    if any(c is None for c in classes):
        raise DatasetLayoutError(f"abstract: unusable class column in header {header}")
    for row in rows[1:]:
        if not row or not _unquote(row[0]):
            continue
        name = _unquote(row[0])
        try:
            votes = {c: int(float(_unquote(v) or 0)) for c, v in zip(classes, row[1:], strict=True)}
        except ValueError:
            result.drop("malformed vote row")
            continue
        top = max(votes.values(), default=0)
        winners = [c for c, v in votes.items() if v == top]
        if top <= 0:
            result.drop("no votes")
            continue
        if len(winners) > 1:
            result.drop("tied vote")
            continue
        path = by_name.get(Path(name).name, name)
        result.records.append(SampleRecord(path, None, [str(winners[0])], {"votes": votes}))
    return result


def check_abstract(root: Path) -> list[str]:
    """The vote CSV in the root or one folder down (the reader searches the whole tree; this stays cheap)."""
    if not root.is_dir():
        return [f"expected a folder at {root}"]
    if (root / CSV_NAME).is_file() or any((d / CSV_NAME).is_file() for d in root.iterdir() if d.is_dir()):
        return []
    return [f"expected {CSV_NAME} (per-class vote counts) under {root}"]


ADAPTER = Adapter(
    "abstract", "mikels8", read_abstract, f"Abstract: {CSV_NAME} vote counts, argmax label", check_abstract
)
