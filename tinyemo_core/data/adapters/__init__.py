"""Dataset adapters: one per published layout, plus generic ImageFolder/CSV/JSONL, and :func:`list_samples`.

Every adapter returns :class:`SampleRecord` s with normalised labels; :func:`list_samples` then gives each
record a split (published, carved, or seeded-stratified and persisted; see ``splits.py``).
"""

from __future__ import annotations

from pathlib import Path

from . import (
    abstract,
    affection,
    artphoto,
    emoset,
    emotic,
    emotion6,
    emotionroi,
    fi,
    generic,
    unbiasedemo,
    webemo,
)
from .base import SPLITS, Adapter, AdapterResult, DatasetLayoutError, SampleRecord
from .splits import assign_splits

__all__ = [
    "ADAPTERS",
    "SPLITS",
    "Adapter",
    "AdapterResult",
    "DatasetLayoutError",
    "SampleRecord",
    "assign_splits",
    "get_adapter",
    "list_samples",
]

ADAPTERS: dict[str, Adapter] = {
    a.name: a
    for a in (
        emoset.ADAPTER,
        webemo.ADAPTER,
        emotionroi.ADAPTER,
        emotion6.ADAPTER,
        fi.ADAPTER,
        artphoto.ADAPTER,
        abstract.ADAPTER,
        unbiasedemo.ADAPTER,
        emotic.ADAPTER,
        affection.ADAPTER,
        generic.IMAGEFOLDER,
        generic.CSV,
        generic.JSONL,
    )
}


def get_adapter(layout: str) -> Adapter:
    """The adapter registered as ``layout``, or a ValueError listing the known layouts."""
    try:
        return ADAPTERS[layout]
    except KeyError:
        raise ValueError(f"unknown dataset layout {layout!r}; known: {sorted(ADAPTERS)}") from None


def list_samples(
    layout: str,
    root: Path,
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    split_file: Path | None = None,
) -> AdapterResult:
    """Read the dataset at ``root`` in ``layout`` and give every record a train/val/test split.

    Published splits are kept; missing ones are made seeded and stratified (``val_fraction`` and
    ``test_fraction`` of each label), persisted in ``split_file`` when given. Records come back sorted by
    path; ``dropped`` counts samples the layout could not use (e.g. Abstract's tied votes).
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"dataset root {root} does not exist; check the dataset path in flows.yaml")
    result = get_adapter(layout).read(root)
    seen: set[str] = set()
    unique = []
    for rec in result.records:  # a path listed twice (e.g. a CSV row repeated): the first listing wins
        if rec.path in seen:
            result.drop("path listed twice")
        else:
            seen.add(rec.path)
            unique.append(rec)
    result.records = unique
    counts = assign_splits(
        result.records,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        split_file=Path(split_file) if split_file is not None else None,
    )
    for key, n in counts.items():
        if n:
            result.note(f"split {key}", n)
    result.records.sort(key=lambda r: r.path)
    return result
