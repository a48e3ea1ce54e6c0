"""Fine-tuned model stores: ``finetune/<recipe>/<stage>-<fingerprint>/`` (docs/reasoning.md).

Inside: ``checkpoints/`` (Trainer checkpoints, resumable), ``model/`` (``save_pretrained`` output: config,
safetensors, processor), ``loss_curve.png`` and ``train_result.json``, the completion marker written last.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinyemo_core.fingerprint import step_fingerprint
from tinyemo_core.store.atomic import read_json
from tinyemo_core.store.kind import StoreKind, entry, subdirs
from tinyemo_core.store.plan import StorePlan

RESULT = "train_result.json"
MODEL = "model"
CHECKPOINTS = "checkpoints"
LOSS_CURVE = "loss_curve.png"
EPOCHS = "epochs"  # <stage>/epochs/epoch-<k>/: a loadable model after every epoch (train.save_epoch_models)


def stage_dir(storage_root: Path, recipe: str, stage: str, fingerprint: str) -> Path:
    return Path(storage_root) / "finetune" / recipe / f"{stage}-{fingerprint}"


def stage_fingerprint(recipe: str, stage: str, inputs: dict[str, Any]) -> str:
    """Code version + recipe + stage + every input (export hashes, model identity, spec, parent stage)."""
    return step_fingerprint("finetune", recipe, stage, inputs)


def complete(path: Path) -> bool:
    """The marker parses and the saved model is there."""
    return bool(read_json(Path(path) / RESULT)) and (Path(path) / MODEL / "config.json").is_file()


def plan(storage_root: Path, recipe: str, stage: str, inputs: dict[str, Any]) -> StorePlan:
    """Fingerprint, folder and completion of one fine-tuning stage."""
    fp = stage_fingerprint(recipe, stage, inputs)
    path = stage_dir(storage_root, recipe, stage, fp)
    return StorePlan(fingerprint=fp, path=path, complete=complete(path))


def model_dir(path: Path) -> Path:
    return Path(path) / MODEL


def epoch_models(path: Path) -> list[Path]:
    """The per-epoch models a stage folder holds, in epoch order (empty when it saved none)."""
    root = Path(path) / EPOCHS
    done = [p for p in root.glob("epoch-*") if (p / "config.json").is_file()] if root.is_dir() else []
    return sorted(done, key=lambda p: int(p.name.split("-")[-1]))


def result(path: Path) -> dict | None:
    return read_json(Path(path) / RESULT)


def latest_model(storage_root: Path, recipe: str = "tinyemo", stage: str = "finetune") -> Path | None:
    """The newest complete ``model/`` of ``recipe``/``stage`` (``--reasoner latest``)."""
    root = Path(storage_root) / "finetune" / recipe
    done = [p for p in root.glob(f"{stage}-*") if complete(p)] if root.is_dir() else []
    return model_dir(max(done, key=lambda p: (p / RESULT).stat().st_mtime)) if done else None


class FinetuneStore(StoreKind):
    """Fine-tuned stages: ``finetune/<recipe>/<stage>-<fp>/`` with ``train_result.json`` written last."""

    kind = "finetune"
    folder = "finetune"
    markers = (RESULT,)

    def plan(self, recipe: str, stage: str, inputs: dict[str, Any]) -> StorePlan:  # type: ignore[override]
        return plan(self.storage_root, recipe, stage, inputs)

    def complete(self, path: Path) -> bool:
        return complete(path)

    def read(self, plan: StorePlan) -> dict | None:
        """The fine-tuning descriptor of a complete stage (what the stage returns)."""
        if not complete(plan.path):
            return None
        return describe(plan, Path(plan.path).name.split("-", 1)[0], computed=False)

    def entries(self):
        for recipe in subdirs(self.root):
            for path in subdirs(recipe):
                meta = result(path)
                yield entry(self.kind, f"{recipe.name}/{path.name}", path, meta, path.name.rsplit("-", 1)[-1],
                            complete=complete(path))


def describe(plan: StorePlan, stage: str, *, computed: bool) -> dict[str, Any]:
    """A stage folder's descriptor: where it is, its model, and the training result's headline numbers."""
    res = result(plan.path) or {}
    curve = Path(plan.path) / LOSS_CURVE
    return {
        "stage": stage,
        "fingerprint": plan.fingerprint,
        "path": str(plan.path),
        "model": str(model_dir(plan.path)),
        "complete": complete(plan.path),
        "computed": computed,
        "steps": res.get("steps"),
        "final_loss": res.get("final_loss"),
        "tokens_per_s": res.get("tokens_per_s"),
        "resumed_from_step": res.get("resumed_from_step"),
        "memory": res.get("memory"),
        "loss_curve": str(curve) if curve.exists() else None,
    }
