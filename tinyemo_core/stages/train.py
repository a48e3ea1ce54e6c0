"""Projector training stage: cached features + label table -> ``runs/<run id>/`` (never touches an image)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinyemo_core.config import DatasetSpec
from tinyemo_core.fingerprint import step_fingerprint
from tinyemo_core.projector.spec import TrainingSpec
from tinyemo_core.stages.assemble import features_scratch, joint_arrays, load_split, synonym_map, synonym_rows
from tinyemo_core.store.features import FeatureStore
from tinyemo_core.store.kind import write_provenance
from tinyemo_core.store.labels import read_label_table
from tinyemo_core.store.plan import StorePlan
from tinyemo_core.store.runs import plan_run, read_metrics, run_complete, run_summary


def train_fingerprint(
    held_in: dict[str, DatasetSpec],
    manifest_hashes: dict[str, str],
    feature_hashes: dict[str, str],
    label_fingerprint: str,
    spec: TrainingSpec,
) -> str:
    """Everything that determines the trained weights (device excluded: CPU and GPU runs share a cache
    key)."""
    datasets = {
        n: {
            "template": s.template,
            "synonyms": s.synonyms,
            "manifest": manifest_hashes[n],
            "features": feature_hashes[n],
        }
        for n, s in held_in.items()
    }
    return step_fingerprint(
        "train", datasets, label_fingerprint, spec.model_dump(mode="json", exclude={"device"})
    )


def plan(storage_root: Path, encoder_name: str, backbone_name: str, fingerprint: str) -> StorePlan:
    """Where the run for ``fingerprint`` goes and whether it has finished (see ``store.runs``)."""
    return plan_run(storage_root, encoder_name, backbone_name, fingerprint)


def train(
    held_in: dict[str, DatasetSpec],
    manifests: dict[str, str],
    stores: dict[str, FeatureStore],
    label_table: str,
    spec: TrainingSpec,
    out_dir: Path,
    *,
    progress: bool = True,
    on_epoch: Callable[[dict], None] | None = None,
    memory_cap_mb: int | None = None,
) -> dict[str, Any]:
    """Train on the train splits, choose the best epoch on the val splits (never the test split).

    ``memory_cap_mb``: when the held-in feature stores are larger, training reads its features from
    ``np.memmap`` files (``<run>/.features/``, removed afterwards) instead of RAM; the result is the same.
    """
    from tinyemo_core.projector.train import TrainData, train_projector

    if run_complete(out_dir):
        return {"run_dir": str(out_dir), "computed": False, **run_summary(read_metrics(out_dir))}
    table = read_label_table(Path(label_table))
    names = list(held_in)
    scratch = features_scratch(out_dir, [stores[n] for n in names], memory_cap_mb)
    try:
        train_parts = [load_split(n, Path(manifests[n]), stores[n], "train", scratch) for n in names]
        val_parts = [load_split(n, Path(manifests[n]), stores[n], "val", scratch) for n in names]
        feats, ids, groups, cands = joint_arrays(train_parts, held_in, table, _joint(scratch, "train"))
        train_data = TrainData(feats, ids, groups, cands, group_names=names,
                               synonym_rows=synonym_rows(train_parts, held_in))
        val_data = None
        if sum(len(p.labels) for p in val_parts):
            vf, vi, vg, vc = joint_arrays(val_parts, held_in, table, _joint(scratch, "val"))
            val_data = TrainData(vf, vi, vg, vc, group_names=names)
        train_projector(
            train_data,
            val_data,
            table.vectors,
            spec,
            out_dir,
            synonyms=synonym_map(table, held_in) or None,
            progress=progress,
            on_epoch=on_epoch,
            label_texts=table.texts,  # trained_labels.json: tinyemo predict flags words never trained on
        )
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    from tinyemo_core.evaluate.plots import plot_training_curves

    history = (read_metrics(out_dir) or {}).get("epochs") or []
    if history:
        plot_training_curves(history, out_dir / "training_curves.png")
    write_provenance(out_dir)
    return {
        "run_dir": str(out_dir),
        "computed": True,
        "train_rows": len(ids),
        "features_memmap": scratch is not None,
        **run_summary(read_metrics(out_dir)),
    }


def _joint(scratch: Path | None, split: str) -> Path | None:
    return None if scratch is None else scratch / f"joint-{split}.npy"
