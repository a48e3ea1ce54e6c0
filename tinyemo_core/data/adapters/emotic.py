"""EMOTIC (Kosti et al. 2019), in a simple JSON form of its public annotations (docs/datasets.md).

``annotations/{train,val,test}.json``: a list of images, each
``{"path": "<folder>/<file>" (or "folder" + "filename"), "people": [{"bbox": [x1, y1, x2, y2],
"categories": ["Engagement", ...], "vad": [valence, arousal, dominance], "gender": ..., "age": ...}]}``.
One record per image: ``labels`` = the union of the people's categories, most frequent first (ties
alphabetical), so ``labels[0]`` is the primary label; per-person boxes, categories and V/A/D (1-10, seed
003) are kept in ``attributes["people"]`` and the image-level mean V/A/D as ``valence/arousal/dominance``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from .base import Adapter, AdapterResult, DatasetLayoutError, SampleRecord, label_or_none, relative_path

VAD_KEYS = ("valence", "arousal", "dominance")
VAD_RANGE = (1.0, 10.0)


def _vad(raw: Any) -> dict[str, float] | None:
    values = [raw.get(k) for k in VAD_KEYS] if isinstance(raw, dict) else raw
    if not isinstance(values, list | tuple) or len(values) != 3:
        return None
    try:
        floats = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    if not all(VAD_RANGE[0] <= v <= VAD_RANGE[1] for v in floats):
        return None
    return dict(zip(VAD_KEYS, floats, strict=True))


def _person(raw: dict, result: AdapterResult) -> dict[str, Any]:
    person: dict[str, Any] = {k: raw[k] for k in ("gender", "age") if k in raw}
    bbox = raw.get("bbox")
    if isinstance(bbox, list) and len(bbox) == 4:
        person["bbox"] = [float(v) for v in bbox]
    else:
        result.note("person without bbox")
    person["categories"] = sorted({c for c in map(label_or_none, raw.get("categories") or []) if c})
    vad = _vad(raw.get("vad"))
    if vad is None and raw.get("vad") is not None:
        result.note("person V/A/D missing or outside 1-10")
    if vad:
        person.update(vad)
    return person


def read_emotic(root: Path) -> AdapterResult:
    folder = root / "annotations"
    files = {s: folder / f"{s}.json" for s in ("train", "val", "test") if (folder / f"{s}.json").exists()}
    if not files:
        raise DatasetLayoutError(f"emotic: expected annotations/{{train,val,test}}.json under {root}")
    result = AdapterResult([], root)
    for split, file in files.items():
        for entry in json.loads(file.read_text(encoding="utf-8")):
            parts = (entry.get("folder"), entry.get("filename"))
            raw_path = entry.get("path") or "/".join(p for p in parts if p)
            if not raw_path:
                result.drop("entry without path")
                continue
            people = [_person(p, result) for p in entry.get("people") or []]
            counts = Counter(c for p in people for c in p["categories"])
            if not counts:
                result.drop("no emotion categories")
                continue
            labels = sorted(counts, key=lambda c: (-counts[c], c))
            attributes: dict[str, Any] = {"people": people}
            for key in VAD_KEYS:
                vals = [p[key] for p in people if key in p]
                if vals:
                    attributes[key] = sum(vals) / len(vals)
            result.records.append(SampleRecord(relative_path(root, raw_path), split, labels, attributes))
    return result


ADAPTER = Adapter("emotic", "emotic26", read_emotic, "EMOTIC: annotations/{train,val,test}.json, multi-label")
