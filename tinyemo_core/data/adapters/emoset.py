"""EmoSet (Yang et al. 2023): ``{train,val,test}.json`` lists of ``[label, image path, annotation path]``.

The per-image annotation JSON (brightness, colorfulness, scene, object, facial_expression, human_action, ...)
is kept whole, minus the duplicated ``emotion`` key, as the record's attributes (used by EmoVIT prompts).
"""

from __future__ import annotations

import json
from pathlib import Path

from .base import (
    Adapter,
    AdapterResult,
    DatasetLayoutError,
    SampleRecord,
    label_or_none,
    missing,
    one_of,
    relative_path,
)

SPLIT_FILES = {"train": "train.json", "val": "val.json", "test": "test.json"}


def _annotation(root: Path, rel: str, result: AdapterResult) -> dict:
    path = root / rel
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        result.note("annotation missing")
        return {}
    except (OSError, ValueError):
        result.note("annotation unreadable")
        return {}
    if not isinstance(data, dict):
        result.note("annotation unreadable")
        return {}
    return {k: v for k, v in data.items() if k != "emotion"}


def read_emoset(root: Path) -> AdapterResult:
    """Read every split JSON present under ``root`` (at least one is required)."""
    result = AdapterResult([], root)
    present = {s: root / f for s, f in SPLIT_FILES.items() if (root / f).exists()}
    if not present:
        raise DatasetLayoutError(f"emoset: expected train.json/val.json/test.json in {root}")
    for split, file in present.items():
        try:
            entries = json.loads(file.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise DatasetLayoutError(f"emoset: {file} is not valid JSON ({exc})") from exc
        for entry in entries:
            if not (isinstance(entry, list | tuple) and len(entry) >= 2):
                result.drop("malformed split entry")
                continue
            label = label_or_none(str(entry[0]))
            if label is None:
                result.drop("empty label")
                continue
            attributes = _annotation(root, str(entry[2]), result) if len(entry) > 2 and entry[2] else {}
            result.records.append(SampleRecord(relative_path(root, entry[1]), split, [label], attributes))
    return result


def check_emoset(root: Path) -> list[str]:
    return one_of(root, *SPLIT_FILES.values()) or missing(root, "image/", "annotation/")


ADAPTER = Adapter(
    "emoset", "mikels8", read_emoset, "EmoSet: {train,val,test}.json + annotation/<cls>/*.json", check_emoset
)
