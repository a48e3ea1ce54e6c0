"""Generic layouts: ImageFolder (``<root>/<split>/<class>/*`` or ``<root>/<class>/*``), CSV and JSONL.

CSV/JSONL: ``root`` is the annotation file or a folder holding exactly one such file (``manifest.*`` or
``labels.*`` preferred); paths are relative to the file's folder. Columns/keys: ``path``, ``label`` (CSV:
several labels joined by ``|``; JSONL: a string or a list, or ``labels``), optional ``split``; any other
column is kept in ``attributes``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .base import (
    Adapter,
    AdapterResult,
    DatasetLayoutError,
    SampleRecord,
    has_subfolders,
    label_or_none,
    normalise_split,
    relative_path,
)
from .class_folders import read_class_folders

_SPLIT_NAMES = {"train", "training", "val", "valid", "validation", "dev", "test", "testing"}


def read_imagefolder(root: Path) -> AdapterResult:
    result = AdapterResult([], root)
    dirs = [d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    if dirs and all(d.name.lower() in _SPLIT_NAMES for d in dirs):
        for d in dirs:
            read_class_folders(root, d, result, split=normalise_split(d.name))
    else:
        read_class_folders(root, root, result, split=None)
    return result


def _annotation_file(root: Path, suffix: str) -> Path:
    if root.is_file():
        return root
    candidates = sorted(p for p in root.glob(f"*{suffix}") if p.is_file())
    preferred = [p for p in candidates if p.stem in ("manifest", "labels")]
    if len(preferred) == 1 or len(candidates) == 1:
        return (preferred or candidates)[0]
    raise DatasetLayoutError(
        f"expected one *{suffix} annotation file in {root}, found {[p.name for p in candidates]}; "
        "pass the file itself as the root"
    )


def _record(row: dict[str, Any], root: Path, result: AdapterResult, where: str) -> None:
    path = row.pop("path", None)
    raw = row.pop("labels", None) or row.pop("label", None)
    split_raw = row.pop("split", None)
    if not path:
        result.drop("row without path")
        return
    words = raw.split("|") if isinstance(raw, str) else list(raw or [])
    labels = [w for w in (label_or_none(str(x)) for x in words) if w]
    if not labels:
        result.drop("row without label")
        return
    try:
        split = normalise_split(str(split_raw)) if split_raw not in (None, "") else None
    except DatasetLayoutError as exc:
        raise DatasetLayoutError(f"{where}: {exc}") from exc
    result.records.append(SampleRecord(relative_path(root, path), split, labels, row))


def read_csv(root: Path) -> AdapterResult:
    file = _annotation_file(root, ".csv")
    result = AdapterResult([], file.parent)
    with file.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "path" not in reader.fieldnames or "label" not in reader.fieldnames:
            raise DatasetLayoutError(f"csv: {file} needs a header with 'path' and 'label' columns")
        for i, row in enumerate(reader, start=2):
            _record({k: v for k, v in row.items() if k is not None}, file.parent, result, f"{file}:{i}")
    return result


def read_jsonl(root: Path) -> AdapterResult:
    file = _annotation_file(root, ".jsonl")
    result = AdapterResult([], file.parent)
    for i, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise DatasetLayoutError(f"jsonl: {file}:{i} is not valid JSON ({exc})") from exc
        if not isinstance(row, dict):
            raise DatasetLayoutError(f"jsonl: {file}:{i} must be an object with 'path' and 'label'")
        _record(row, file.parent, result, f"{file}:{i}")
    return result


def _check_annotation_file(suffix: str) -> Callable[[Path], list[str]]:
    def check(root: Path) -> list[str]:
        if root.is_file():
            return []
        if not root.is_dir():
            return [f"expected a *{suffix} file, or a folder holding one, at {root}"]
        try:
            _annotation_file(root, suffix)
        except DatasetLayoutError as exc:
            return [str(exc)]
        return []

    return check


def check_imagefolder(root: Path) -> list[str]:
    return has_subfolders(root, "a folder of [<split>/]<class>/ folders")


IMAGEFOLDER = Adapter(
    "imagefolder", "open", read_imagefolder, "ImageFolder: [<split>/]<class>/*", check_imagefolder
)
CSV = Adapter("csv", "open", read_csv, "CSV: path,label[,split] (+ attribute columns)",
              _check_annotation_file(".csv"))
JSONL = Adapter("jsonl", "open", read_jsonl, "JSONL: {path, label|labels, split?, ...}",
                _check_annotation_file(".jsonl"))
