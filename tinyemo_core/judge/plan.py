"""What an evaluation asks: items of a dataset split and one single-request chain per (item, instruction).

The chains run through the shared generation runner (:mod:`tinyemo_core.generate.runner`): batched,
per-request cached under ``storage/answers/``, resumable.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tinyemo_core.fingerprint import stable_hash
from tinyemo_core.generate.backends.base import Turn
from tinyemo_core.generate.chains import Chain, ManifestRow, Step
from tinyemo_core.judge.prompts import render_instruction
from tinyemo_core.store.manifests import read_manifest


@dataclass(frozen=True)
class EvalItem:
    """One scored sample: an image (or one person of it) and its ground truth."""

    dataset: str
    sample_id: str
    image_path: str
    label: str  # primary label (single-label datasets)
    labels: tuple[str, ...] = ()  # every label (multi-label datasets, EMOTIC)
    vad: tuple[float, float, float] | None = None
    references: tuple[str, ...] = ()  # the dataset's own human texts (affection: explanations), RefCLIPScore


def load_items(
    dataset: str, manifest: Path, root: Path, split: str | None, max_images: int | None = None
) -> tuple[list[EvalItem], list[str]]:
    """The ``split`` rows that decoded (every split when None; sorted by image id) and the dataset's label set
    over all splits."""
    table = read_manifest(Path(manifest), ok_only=True)
    rows = table.to_pylist()
    has_lists = "labels" in table.column_names
    candidates = sorted(
        {r["label"] for r in rows if r.get("label")}
        | {w for r in rows for w in ((r.get("labels") or []) if has_lists else [])}
    )
    items = []
    for r in sorted((r for r in rows if split is None or r["split"] == split), key=lambda r: r["image_id"]):
        path = Path(r["path"])
        path = path if path.is_absolute() else Path(root) / path
        labels = tuple(r.get("labels") or ([r["label"]] if r.get("label") else []))
        if not labels:
            raise ValueError(f"manifest {manifest}: image {r['image_id']} has no label to score against")
        attrs = r.get("attributes") or {}
        attrs = json.loads(attrs) if isinstance(attrs, str) else dict(attrs)
        vad = (
            tuple(float(attrs[k]) for k in ("valence", "arousal", "dominance"))
            if all(attrs.get(k) is not None for k in ("valence", "arousal", "dominance"))
            else None
        )
        refs = tuple(str(t) for t in attrs.get("explanations") or ())
        items.append(EvalItem(dataset, r["image_id"], str(path), r.get("label") or labels[0], labels, vad,
                              refs))
    if not items:
        raise ValueError(f"dataset {dataset!r} has no decodable {split or 'any'!r} rows in {manifest}")
    return items[:max_images] if max_images else items, candidates


def instruction_id(template: str) -> str:
    """Short stable id of an instruction template (part of the task name, hence of the request seed)."""
    return stable_hash(template, length=8)


def chains_for(items: Sequence[EvalItem], template: str, labels: Sequence[str], task: str) -> list[Chain]:
    """One single-step chain per item: the filled instruction with the item's image."""
    text = render_instruction(template, labels)
    return [
        Chain(
            task,
            ManifestRow(it.sample_id, it.image_path, it.label, it.dataset, "eval"),
            (Step("eval_answer", (Turn(role="user", text=text),)),),
        )
        for it in items
    ]
