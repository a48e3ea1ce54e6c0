"""Ingest: a dataset folder -> one deterministic manifest table (pyarrow), bad files quarantined, duplicates
collapsed to one ``image_id``.

Duplicate rule: files with identical bytes become ONE row, the first path in sorted order; the other paths go
to its ``aliases`` column. That row keeps its own label(s) and split; an alias with a different label set or
split is counted in ``counts["duplicate_label_conflicts"]`` / ``["duplicate_split_conflicts"]`` and listed in
the row's attributes under ``"alias_conflicts"``. Collapsing also removes the train/test leakage such pairs
would cause (for generated splits, copies are split independently before hashing, so split conflicts
between them are expected and harmless). Quarantined files have no ``image_id`` and are never collapsed.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from tqdm.auto import tqdm

from .adapters import AdapterResult, get_adapter, list_samples
from .images import DEFAULT_MAX_PIXELS, ImageCheck, inspect_image
from .taxonomy import get_taxonomy, normalise_label

__all__ = ["MANIFEST_SCHEMA", "NOT_UTF8", "IngestResult", "build_manifest", "quarantine_summary", "reason_of",
           "utf8_name"]

NOT_UTF8 = "file name not UTF-8"  # a quarantine reason (images.py holds the decode reasons)

MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("image_id", pa.string()),
        pa.field("path", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("labels", pa.list_(pa.string()), nullable=False),
        pa.field("taxonomy", pa.string(), nullable=False),
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("attributes", pa.string(), nullable=False),
        pa.field("aliases", pa.list_(pa.string()), nullable=False),
    ]
)


@dataclass
class IngestResult:
    """The manifest ``table`` (schema :data:`MANIFEST_SCHEMA`) and its counts.

    ``counts``: ``rows``, ``ok``, ``quarantined`` (reason -> n), ``duplicates`` (alias paths folded into
    another row), ``duplicate_label_conflicts``, ``duplicate_split_conflicts``, ``dropped`` (adapter
    reason -> n), ``notes`` (adapter notes).
    """

    table: pa.Table
    counts: dict[str, Any] = field(default_factory=dict)


def reason_of(error: str | None) -> str:
    """The stable reason key of an error string (``"<reason>: <detail>"``)."""
    return (error or "").split(":", 1)[0]


def utf8_name(name: str) -> tuple[str, bool]:
    """``(name, True)`` when ``name`` is valid UTF-8 text; otherwise a displayable escaped form and False.

    File names are bytes on POSIX; Python decodes undecodable bytes (latin-1 names from old zip archives) to
    lone surrogates, which UTF-8 (Parquet, JSON) cannot store. Such a file is quarantined under its escaped
    name (``caf\\xe9.jpg``): the manifest could not name it in a way that opens the same file again."""
    try:
        name.encode("utf-8")
        return name, True
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"), False


def _check_labels(result: AdapterResult, taxonomy: str) -> None:
    tax = get_taxonomy(taxonomy)
    if not tax.strict:
        return
    for word in sorted({w for r in result.records for w in r.labels}):
        normalise_label(word, taxonomy)  # raises UnknownLabelError naming the word and the fix


def _inspect_all(
    paths: list[Path], root: Path, workers: int, progress: bool, max_pixels: int,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[ImageCheck]:
    """Check every image (threads when ``workers > 1``). The bar and ``on_progress(done, total)`` advance in
    the calling thread as results arrive, so a callback may use thread-bound context (an orchestrator's)."""

    def checked() -> Iterator[ImageCheck]:
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:  # hashing/decoding release the GIL
                yield from pool.map(lambda p: inspect_image(p, root, max_pixels), paths)
        else:
            yield from (inspect_image(p, root, max_pixels) for p in paths)

    checks: list[ImageCheck] = []
    with tqdm(total=len(paths), desc=f"ingest {root.name}", unit="img", disable=not progress) as bar:
        for check in checked():
            checks.append(check)
            bar.update(1)
            if on_progress is not None:
                on_progress(len(checks), len(paths))
    return checks


def build_manifest(
    dataset: str,
    layout: str,
    root: Path,
    *,
    taxonomy: str | None = None,
    seed: int = 0,
    split_file: Path | None = None,
    workers: int = 1,
    progress: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
) -> IngestResult:
    """List, split, hash and decode every image of a dataset into a manifest table sorted by path.

    ``taxonomy`` defaults to the layout's own (e.g. ``mikels8`` for ``emoset``); with a strict taxonomy an
    unknown label word raises :class:`~tinyemo_core.data.taxonomy.UnknownLabelError` before any image is read.
    ``val_fraction``/``test_fraction``/``seed``/``split_file`` only shape splits the layout does not publish
    (see :func:`~tinyemo_core.data.adapters.list_samples`).
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    taxonomy = taxonomy or get_adapter(layout).taxonomy
    result = list_samples(
        layout,
        Path(root),
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        split_file=split_file,
    )
    _check_labels(result, taxonomy)
    base = result.root
    bad_names: dict[int, ImageCheck] = {}
    for i, rec in enumerate(result.records):
        shown, ok = utf8_name(rec.path)
        labels = [utf8_name(w) for w in rec.labels]
        if not ok or not all(good for _, good in labels):
            bad_names[i] = ImageCheck(None, "quarantined", f"{NOT_UTF8}: {shown} (rename it to UTF-8, e.g. "
                                      "convmv -f latin1 -t utf8 -r --notest <root>)", None, None)
            rec.path, rec.labels = shown, [w for w, _ in labels]
    todo = [i for i in range(len(result.records)) if i not in bad_names]
    inspected = iter(_inspect_all([base / result.records[i].path for i in todo], base, workers, progress,
                                  max_pixels, on_progress))
    checks = [bad_names[i] if i in bad_names else next(inspected) for i in range(len(result.records))]

    rows: list[dict[str, Any]] = []
    first_by_id: dict[str, dict[str, Any]] = {}
    duplicates = label_conflicts = split_conflicts = 0
    for rec, check in zip(result.records, checks, strict=True):  # records are sorted by path
        first = first_by_id.get(check.image_id) if check.image_id else None
        if first is not None:
            duplicates += 1
            first["aliases"].append(rec.path)
            label_conflicts += rec.labels != first["labels"]
            split_conflicts += rec.split != first["split"]
            if rec.labels != first["labels"] or rec.split != first["split"]:
                first["_conflicts"].append({"path": rec.path, "split": rec.split, "labels": rec.labels})
            continue
        row = {
            "image_id": check.image_id,
            "path": rec.path,
            "split": rec.split,
            "label": rec.labels[0],
            "labels": list(rec.labels),
            "taxonomy": taxonomy,
            "dataset": dataset,
            "status": check.status,
            "error": check.error,
            "width": check.width,
            "height": check.height,
            "_attributes": rec.attributes,
            "aliases": [],
            "_conflicts": [],
        }
        rows.append(row)
        if check.image_id:
            first_by_id[check.image_id] = row
    for row in rows:
        attributes = dict(row.pop("_attributes"))
        if row["_conflicts"]:
            attributes["alias_conflicts"] = row["_conflicts"]
        del row["_conflicts"]
        row["attributes"] = json.dumps(attributes, sort_keys=True, ensure_ascii=False)
    table = pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)
    quarantined = Counter(reason_of(r["error"]) for r in rows if r["status"] == "quarantined")
    counts = {
        "rows": len(rows),
        "ok": sum(r["status"] == "ok" for r in rows),
        "quarantined": dict(sorted(quarantined.items())),
        "duplicates": duplicates,
        "duplicate_label_conflicts": label_conflicts,
        "duplicate_split_conflicts": split_conflicts,
        "dropped": dict(sorted(result.dropped.items())),
        "notes": dict(sorted(result.notes.items())),
    }
    return IngestResult(table, counts)


def quarantine_summary(table: pa.Table, examples: int = 3) -> list[dict[str, Any]]:
    """One entry per quarantine reason: ``{"reason", "count", "examples": [paths]}``, most frequent first."""
    by_reason: dict[str, list[str]] = defaultdict(list)
    statuses: Iterable[str] = table.column("status").to_pylist()
    for status, error, path in zip(
        statuses, table.column("error").to_pylist(), table.column("path").to_pylist(), strict=True
    ):
        if status == "quarantined":
            by_reason[reason_of(error)].append(path)
    return [
        {"reason": reason, "count": len(paths), "examples": paths[:examples]}
        for reason, paths in sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    ]
