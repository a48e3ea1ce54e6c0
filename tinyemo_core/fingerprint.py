"""Content fingerprints: a hash of everything that determines a step's output (docs/architecture.md).

Each step has a code version below; bump it when the step's output would change for the same inputs, so every
store derived from it is recomputed instead of silently reused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

CODE_VERSIONS: dict[str, str] = {
    "ingest": "2",  # 2: official training sets kept whole (no carved val); non-UTF-8 names, FIFOs quarantined
    "features": "1",
    "labels": "1",
    "train": "3",  # 2: validation ties go to the later epoch; 3: synonyms only for synonyms: true datasets,
    #              text swapped, class id kept; default loss cosine (Table VIII)
    "evaluate": "2",  # 2: zero-shot datasets scored on every image by default (zero_shot_split)
    "interpret": "1",  # activation stores and the analyses derived from them (tinyemo_core/interpret)
    "evaluate_generated": "1",  # generated-answer evaluation (tinyemo_core/judge, docs/judging.md)
    "finetune": "1",  # reasoning fine-tuning stages (tinyemo_core/finetune, docs/reasoning.md)
    "reason": "1",  # conditional-reasoning outputs (tinyemo_core/stages/reason.py)
    "label_transfer": "1",  # generalized zero-shot runs, calibration, report (stages/label_transfer.py)
    "instructions": "1",  # generate-qa exports under instructions/<dataset>/ (stages/instructions.py)
}


def _canonical(obj: Any) -> Any:
    """Turn pydantic models, paths and sets into plain JSON-able values with a stable order."""
    if hasattr(obj, "model_dump"):
        return _canonical(obj.model_dump(mode="json"))
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted(_canonical(v) for v in obj)
    if isinstance(obj, Path):
        return obj.as_posix()
    return obj


def stable_hash(*parts: Any, length: int = 16) -> str:
    """Hex digest of a canonical JSON encoding of ``parts`` (order of dict keys does not matter)."""
    payload = json.dumps(_canonical(list(parts)), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:length]


def step_fingerprint(step: str, *inputs: Any) -> str:
    """Fingerprint of one pipeline step: its code version plus every input that shapes its output."""
    return stable_hash(step, CODE_VERSIONS[step], *inputs)
