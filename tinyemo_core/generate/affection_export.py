"""LLaVA-format training pairs from Affective Explanations (TinyEmo §IV-D, Table VI).

TinyEmo fine-tunes LLaVA-1.5-7B with LoRA on Affective Explanations with the prompt "What does this image make
you feel?" (Table VI caption): one record per (image, human explanation) of the ingested ``affection``
dataset, written as ``affection_<split>.json`` under ``instructions/<dataset>/`` (where the fine-tuning stage
reads exports). Every annotation is a pair (an image has ~6); how many pairs train is
``reasoning.finetune.max_records`` (a seeded draw: the stage shuffles with ``train.seed`` and keeps the
first N). The paper says 45,000 pairs in §IV-D and 75k in the Table VI caption (docs/reasoning.md).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from tinyemo_core.store.manifests import read_manifest

from .export import _record, write_json

KIND = "affection"
#: TinyEmo Table VI's question (the LLaVA pairs ask it; CLIPScore judges the answers to it)
REASONING_PROMPT = "What does this image make you feel?"


def affection_records(manifest: Path, prompt: str = REASONING_PROMPT) -> dict[str, list[dict]]:
    """split -> records ``{"id": "<image_id>-<k>", "image": <path>, [prompt, explanation k]}``, by id."""
    rows = sorted(read_manifest(Path(manifest), ok_only=True).to_pylist(), key=lambda r: r["image_id"])
    out: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        attrs = r.get("attributes") or {}
        attrs = json.loads(attrs) if isinstance(attrs, str) else dict(attrs)
        for k, text in enumerate(attrs.get("explanations") or []):
            if text.strip():
                out[r["split"]].append(_record(f"{r['image_id']}-{k}", r["path"], [prompt, text]))
    return dict(out)


def write_affection_exports(manifest: Path, out_dir: Path, prompt: str = REASONING_PROMPT) -> dict[str, Any]:
    """Write ``affection_<split>.json`` files; returns their paths and record counts."""
    records = affection_records(manifest, prompt)
    if not records:
        raise ValueError(f"{manifest}: no decodable image with an explanation (is it the affection layout?)")
    files = {f"{KIND}_{split}": str(write_json(recs, Path(out_dir) / f"{KIND}_{split}.json"))
             for split, recs in sorted(records.items())}
    return {"files": files, "records": {s: len(r) for s, r in sorted(records.items())}}
