"""Fine-tuned model stores: ``finetune/<recipe>/<stage>-<fingerprint>/`` (docs/reasoning.md).

Inside: ``checkpoints/`` (Trainer checkpoints, resumable), ``model/`` (``save_pretrained`` output: config,
safetensors, processor), ``loss_curve.png`` and ``train_result.json``, the completion marker written last.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinyemo_core.fingerprint import step_fingerprint
from tinyemo_core.store.atomic import read_json
from tinyemo_core.store.plan import StorePlan

RESULT = "train_result.json"


def stage_dir(storage_root: Path, recipe: str, stage: str, fingerprint: str) -> Path:
    return Path(storage_root) / "finetune" / recipe / f"{stage}-{fingerprint}"


def stage_fingerprint(recipe: str, stage: str, inputs: dict[str, Any]) -> str:
    """Code version + recipe + stage + every input (export hashes, model identity, spec, parent stage)."""
    return step_fingerprint("finetune", recipe, stage, inputs)


def complete(path: Path) -> bool:
    """The marker parses and the saved model is there."""
    return bool(read_json(Path(path) / RESULT)) and (Path(path) / "model" / "config.json").is_file()


def plan(storage_root: Path, recipe: str, stage: str, inputs: dict[str, Any]) -> StorePlan:
    """Fingerprint, folder and completion of one fine-tuning stage."""
    fp = stage_fingerprint(recipe, stage, inputs)
    path = stage_dir(storage_root, recipe, stage, fp)
    return StorePlan(fingerprint=fp, path=path, complete=complete(path))


def model_dir(path: Path) -> Path:
    return Path(path) / "model"


def result(path: Path) -> dict | None:
    return read_json(Path(path) / RESULT)


def latest_model(storage_root: Path, recipe: str = "tinyemo", stage: str = "finetune") -> Path | None:
    """The newest complete ``model/`` of ``recipe``/``stage`` (``--reasoner latest``)."""
    root = Path(storage_root) / "finetune" / recipe
    done = [p for p in root.glob(f"{stage}-*") if complete(p)] if root.is_dir() else []
    return model_dir(max(done, key=lambda p: (p / RESULT).stat().st_mtime)) if done else None
