"""EMOTIC (Kosti et al. 2019): the official ``Annotations.mat``, its common CSV conversions, or a JSON form.

Formats (docs/datasets.md, "EMOTIC annotation formats"), the first one found wins:

- ``Annotations/Annotations.mat`` (the official release; images under ``emotic/<folder>/<filename>``): struct
  arrays ``train``/``val``/``test``, one entry per image with a ``person`` struct array. Train persons carry
  one annotator (``annotations_categories.categories``, ``annotations_continuous``); val/test persons the
  consensus of several (``combined_categories``, ``combined_continuous``), which is what is scored.
- CSV conversions, one row per person, ``annotations/{train,val,test}.csv`` or ``annot_arrs_{split}.csv``:
  the ``mat2py`` columns ``Folder, Filename, BBox, Categorical_Labels, Continuous_Labels[, Gender, Age]``
  (Python list literals), or the one-hot layout ``Folder, Filename, X_min, Y_min, X_max, Y_max, Valence,
  Arousal, Dominance, <one 0/1 column per category>``.
- ``annotations/{train,val,test}.json``: ``[{"path" (or "folder" + "filename"), "people": [{"bbox",
  "categories", "vad", "gender", "age"}]}]``.

One record per image (``image_id`` = hash of its bytes, shared by all of its people): ``labels`` = the union
of the people's categories, most frequent first (ties alphabetical). EVERY person is kept, in annotation
order, in ``attributes["people"]`` as ``{"index", "bbox": [x1, y1, x2, y2], "categories", "valence",
"arousal", "dominance", "gender", "age"}``; a person's id is ``<image_id>-p<index>``
(:mod:`tinyemo_core.stages.emotic` makes the per-person table). ``attributes.valence/arousal/dominance`` are
image-level means over the people with valid V/A/D (1-10).
"""

from __future__ import annotations

import ast
import csv
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from ..taxonomy import EMOTIC26
from .base import Adapter, AdapterResult, DatasetLayoutError, SampleRecord, label_or_none, relative_path

VAD_KEYS = ("valence", "arousal", "dominance")
VAD_RANGE = (1.0, 10.0)
_SPLITS = ("train", "val", "test")
_MAT_NAMES = ("Annotations/Annotations.mat", "annotations/Annotations.mat", "Annotations.mat")


def _vad(raw: Any) -> dict[str, float] | None:
    values = [raw.get(k) for k in VAD_KEYS] if isinstance(raw, dict) else raw
    if not isinstance(values, list | tuple) or len(values) != 3:
        return None
    try:
        floats = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    if not all(VAD_RANGE[0] <= v <= VAD_RANGE[1] for v in floats):  # NaN fails too
        return None
    return dict(zip(VAD_KEYS, floats, strict=True))


def _bbox(raw: Any) -> list[float] | None:
    try:
        box = [float(v) for v in raw]
    except (TypeError, ValueError):
        return None
    if len(box) != 4 or not all(math.isfinite(v) for v in box) or box[2] <= box[0] or box[3] <= box[1]:
        return None
    return box


def _person(raw: dict, index: int, result: AdapterResult) -> dict[str, Any]:
    """One person in the common form; a bad box or V/A/D is counted in ``notes`` and left out."""
    person: dict[str, Any] = {"index": index}
    person.update({k: str(raw[k]) for k in ("gender", "age") if raw.get(k) not in (None, "")})
    box = _bbox(raw.get("bbox"))
    if box is not None:
        person["bbox"] = box
    else:
        result.note("person without a valid bbox")
    person["categories"] = sorted({c for c in map(label_or_none, raw.get("categories") or []) if c})
    if not person["categories"]:
        result.note("person without categories")
    vad = _vad(raw.get("vad"))
    if vad is None and raw.get("vad") is not None:
        result.note("person V/A/D missing or outside 1-10")
    if vad:
        person.update(vad)
    return person


def _records(images: list[tuple[str, str, list[dict]]], root: Path, result: AdapterResult) -> None:
    """``(split, path, raw people)`` -> one SampleRecord per image (people kept in order)."""
    for split, raw_path, raw_people in images:
        if not raw_path:
            result.drop("entry without path")
            continue
        people = [_person(p, i, result) for i, p in enumerate(raw_people)]
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


def _grouped(rows: list[tuple[str, str, dict]]) -> list[tuple[str, str, list[dict]]]:
    """Person rows ``(split, path, person)`` -> images in first-seen order, people in row order."""
    order: dict[tuple[str, str], list[dict]] = {}
    for split, path, person in rows:
        order.setdefault((split, path), []).append(person)
    return [(s, p, people) for (s, p), people in order.items()]


# --- JSON -------------------------------------------------------------------------------------------------
def _read_json(files: dict[str, Path]) -> list[tuple[str, str, list[dict]]]:
    images = []
    for split, file in files.items():
        for entry in json.loads(file.read_text(encoding="utf-8")):
            parts = (entry.get("folder"), entry.get("filename"))
            path = entry.get("path") or "/".join(p for p in parts if p)
            images.append((split, path, entry.get("people") or []))
    return images


# --- CSV --------------------------------------------------------------------------------------------------
def _literal(text: str, file: Path, line: int, column: str) -> Any:
    try:
        return ast.literal_eval(text) if text.strip() else None
    except (ValueError, SyntaxError):
        raise DatasetLayoutError(
            f"emotic: {file} line {line}, column {column!r}: {text!r} is not a Python list literal"
        ) from None


def _csv_person(row: dict[str, str], file: Path, line: int) -> dict:
    if "BBox" in row:  # mat2py columns
        return {
            "bbox": _literal(row["BBox"], file, line, "BBox"),
            "categories": _literal(row.get("Categorical_Labels", ""), file, line, "Categorical_Labels") or [],
            "vad": _literal(row.get("Continuous_Labels", ""), file, line, "Continuous_Labels"),
            "gender": row.get("Gender"),
            "age": row.get("Age"),
        }
    columns = {label_or_none(k): k for k in row if k}
    names = {c.lower(): c for c in row if c}
    return {
        "bbox": [row[names[k]] for k in ("x_min", "y_min", "x_max", "y_max")],
        "categories": [c for c in EMOTIC26 if c in columns and row[columns[c]].strip() in ("1", "1.0")],
        "vad": [row[names[k]] for k in VAD_KEYS],
        "gender": row.get("Gender"),
        "age": row.get("Age"),
    }


def _image_path(root: Path, folder: str, filename: str) -> str:
    """``<folder>/<filename>``, under ``emotic/`` when the images sit there (the official release)."""
    rel = "/".join(p.strip("/") for p in (folder, filename) if p and p.strip("/"))
    if rel and not (root / folder.strip("/")).is_dir() and (root / "emotic" / folder.strip("/")).is_dir():
        return f"emotic/{rel}"
    return rel


def _read_csv(files: dict[str, Path], root: Path) -> list[tuple[str, str, list[dict]]]:
    rows = []
    for split, file in files.items():
        with file.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            cols = set(reader.fieldnames or [])
            onehot = {"X_min", "Y_min", "X_max", "Y_max", "Valence", "Arousal", "Dominance"}
            if not {"Folder", "Filename"} <= cols or not ("BBox" in cols or onehot <= cols):
                raise DatasetLayoutError(
                    f"emotic: {file} needs columns Folder, Filename and either BBox, Categorical_Labels, "
                    f"Continuous_Labels (mat2py) or X_min..Y_max, Valence, Arousal, Dominance + one 0/1 "
                    f"column per category; found {sorted(cols)}"
                )
            for line, row in enumerate(reader, start=2):
                path = _image_path(root, row["Folder"], row["Filename"])
                rows.append((split, path, _csv_person(row, file, line)))
    return _grouped(rows)


# --- Annotations.mat --------------------------------------------------------------------------------------
def _items(x: Any) -> list:
    """A MATLAB value loaded with ``squeeze_me``: scalar struct/str or array -> list."""
    import numpy as np

    if isinstance(x, np.ndarray):
        return list(x.reshape(-1))
    return [] if x is None else [x]


def _strings(x: Any) -> list[str]:
    return [str(v) for v in _items(x) if str(v).strip()]


def _mat_vad(struct: Any) -> list[float] | None:
    if struct is None or isinstance(struct, list) or not hasattr(struct, "valence"):
        return None
    return [float(getattr(struct, k)) for k in VAD_KEYS]


def _mat_person(p: Any, split: str) -> dict:
    if split == "train":
        ann = _items(getattr(p, "annotations_categories", None))
        cats = _strings(ann[0].categories) if ann else []
        cont = _items(getattr(p, "annotations_continuous", None))
        vad = _mat_vad(cont[0]) if cont else None
    else:
        cats = _strings(getattr(p, "combined_categories", None))
        vad = _mat_vad(getattr(p, "combined_continuous", None))
    return {
        "bbox": [float(v) for v in _items(p.body_bbox)],
        "categories": cats,
        "vad": vad,
        "gender": getattr(p, "gender", None),
        "age": getattr(p, "age", None),
    }


def _read_mat(file: Path, root: Path) -> list[tuple[str, str, list[dict]]]:
    from scipy.io import loadmat

    try:
        mat = loadmat(file, squeeze_me=True, struct_as_record=False)
    except (ValueError, OSError, NotImplementedError) as exc:
        raise DatasetLayoutError(f"emotic: cannot read {file} as a MATLAB file ({exc})") from exc
    images = []
    for split in _SPLITS:
        if split not in mat:
            continue
        for entry in _items(mat[split]):
            path = _image_path(root, str(entry.folder), str(entry.filename))
            images.append((split, path, [_mat_person(p, split) for p in _items(entry.person)]))
    if not images:
        raise DatasetLayoutError(f"emotic: {file} has none of the variables {list(_SPLITS)}")
    return images


def _find(root: Path, names: list[str]) -> dict[str, Path]:
    for pattern in names:
        found = {s: root / pattern.format(s=s) for s in _SPLITS if (root / pattern.format(s=s)).is_file()}
        if found:
            return found
    return {}


_CSV_PATTERNS = ["annotations/{s}.csv", "annotations/annot_arrs_{s}.csv", "annot_arrs_{s}.csv",
                 "annots_arrs/annot_arrs_{s}.csv", "{s}.csv"]
_JSON_PATTERNS = ["annotations/{s}.json"]


def check_emotic(root: Path) -> list[str]:
    if not root.is_dir():
        return [f"expected a folder at {root}"]
    if any((root / n).is_file() for n in _MAT_NAMES) or _find(root, _CSV_PATTERNS + _JSON_PATTERNS):
        return []
    return [f"expected Annotations/Annotations.mat (the official release), annotations/{{train,val,test}}"
            f".csv or annotations/{{train,val,test}}.json under {root}"]


def read_emotic(root: Path) -> AdapterResult:
    result = AdapterResult([], root)
    mat = next((root / n for n in _MAT_NAMES if (root / n).is_file()), None)
    if mat is not None:
        images, fmt = _read_mat(mat, root), "Annotations.mat"
    elif files := _find(root, _CSV_PATTERNS):
        images, fmt = _read_csv(files, root), "csv"
    elif files := _find(root, _JSON_PATTERNS):
        images, fmt = _read_json(files), "json"
    else:
        raise DatasetLayoutError(
            f"emotic: expected Annotations/Annotations.mat, annotations/{{train,val,test}}.csv (or "
            f"annot_arrs_{{split}}.csv) or annotations/{{train,val,test}}.json under {root}"
        )
    result.note(f"format {fmt}")
    merged = _grouped([(split, path, p) for split, path, people in images for p in people])
    if empty := len({(s, p) for s, p, _ in images} - {(s, p) for s, p, _ in merged}):
        result.drop("entry without people", empty)
    _records(merged, root, result)  # an image listed twice in a split: its people are joined
    return result


ADAPTER = Adapter(
    "emotic", "emotic26", read_emotic,
    "EMOTIC: Annotations.mat, CSV conversion or annotations/*.json; multi-label, every person kept",
    check_emotic,
)
