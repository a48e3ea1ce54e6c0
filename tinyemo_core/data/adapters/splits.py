"""Seeded, stratified, persisted train/val/test assignment for datasets that publish no (or no val) split.

Fixes two defects of the reference code: its Emotion6 (70/30) and FI (80/20) splits are unseeded, and its
validation set is the test set. Here val and test are always disjoint, and with a ``split_file`` the
assignment of a path never changes once made. Published splits are never changed (EmotionROI's official
training set is kept whole: no validation is carved out of it).
"""

from __future__ import annotations

import json
import math
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np

from tinyemo_core.store.atomic import write_atomic

from .base import SampleRecord

__all__ = ["SPLIT_FILE_FORMAT", "assign_splits", "read_split_file", "write_split_file"]

SPLIT_FILE_FORMAT = "tinyemo-splits/1"


def read_split_file(path: Path) -> dict[str, str]:
    """Stored ``{relative path: split}`` assignments ({} when the file does not exist yet)."""
    if not path.exists():
        return {}
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        if payload.get("format") != SPLIT_FILE_FORMAT:
            raise ValueError(f"format is {payload.get('format')!r}, expected {SPLIT_FILE_FORMAT!r}")
        assignments = payload["assignments"]
    except (ValueError, KeyError, AttributeError) as exc:
        raise ValueError(f"split file {path} is not a tinyemo split file ({exc}); move it away") from exc
    return {str(k): str(v) for k, v in assignments.items()}


def write_split_file(path: Path, assignments: dict[str, str], meta: dict[str, object]) -> None:
    """Write assignments atomically (``store.atomic.write_atomic``); keys sorted so the file is stable."""
    payload = {"format": SPLIT_FILE_FORMAT, **meta, "assignments": dict(sorted(assignments.items()))}
    data = (json.dumps(payload, indent=1, ensure_ascii=False) + "\n").encode("utf-8")  # before any file
    write_atomic(path, lambda tmp: tmp.write_bytes(data))


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _round(x: float) -> int:
    return int(math.floor(x + 0.5))


def _fill(
    items: list[SampleRecord],
    stored: dict[str, str],
    allowed: tuple[str, ...],
    fractions: dict[str, float],
    rng: np.random.Generator,
) -> int:
    """Assign one stratum: keep valid stored splits, then top up each split to its target count from the
    new items in seeded random order; the rest go to train. Returns the number of new assignments."""
    kept = [r for r in items if stored.get(r.path) in allowed]
    new = [r for r in items if stored.get(r.path) not in allowed]
    for r in kept:
        r.split = stored[r.path]
    have = {s: sum(r.split == s for r in kept) for s in allowed}
    order = rng.permutation(len(new))
    queue = [new[i] for i in order]
    for split in ("test", "val"):
        if split not in fractions:
            continue
        need = max(0, _round(len(items) * fractions[split]) - have[split])
        for r in queue[:need]:
            r.split = split
        queue = queue[need:]
    for r in queue:
        r.split = "train"
    return len(new)


def assign_splits(
    records: list[SampleRecord],
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    split_file: Path | None = None,
) -> dict[str, int]:
    """Give every record a split, in place; returns counts ``{"assigned": n, "reused": m}``.

    - records with ``split=None`` get train/val/test with the given fractions, stratified by primary label;
    - published splits are kept as they are: an official training set without a validation part
      (EmotionROI) stays whole, so the paper's comparison keeps every training image; such a dataset
      simply has no val rows, and the best epoch is chosen on the other held-in datasets' validation
      splits (or, trained alone, is the last epoch, as in the authors' code; docs/datasets.md);
    - with ``split_file``, stored assignments are kept and only new paths are assigned, then the file is
      rewritten atomically. Randomness is a numpy Generator seeded by (seed, pool, label), so the result
      does not depend on file-system order or on other labels.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction} must be >= 0 with a sum below 1"
        )
    stored = read_split_file(split_file) if split_file is not None else {}
    pools: dict[str, list[SampleRecord]] = {"all": [r for r in records if r.split is None]}
    plans = {"all": (("train", "val", "test"), {"test": test_fraction, "val": val_fraction})}
    counts = {"assigned": 0, "reused": 0}
    decided: dict[str, str] = {}
    for pool, members in pools.items():
        allowed, fractions = plans[pool]
        strata: dict[str, list[SampleRecord]] = defaultdict(list)
        for r in members:
            strata[r.labels[0] if r.labels else ""].append(r)
        for label in sorted(strata):
            items = sorted(strata[label], key=lambda r: r.path)
            rng = np.random.default_rng([seed, zlib.crc32(pool.encode()), zlib.crc32(label.encode())])
            n_new = _fill(items, stored, allowed, fractions, rng)
            counts["assigned"] += n_new
            counts["reused"] += len(items) - n_new
            decided.update({r.path: r.split for r in items if r.split is not None})
    # a path that is not valid UTF-8 is quarantined by ingest and never persisted (JSON is UTF-8)
    decided = {p: s for p, s in decided.items() if _utf8(p)}
    if split_file is not None and (decided or not split_file.exists()):
        # The parameters of the run that created the file are kept: stored assignments follow them.
        meta = {"seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction}
        if split_file.exists():
            old = json.loads(split_file.read_text(encoding="utf-8"))
            meta = {k: old.get(k, v) for k, v in meta.items()}
        write_split_file(split_file, {**stored, **decided}, meta)
    return counts
