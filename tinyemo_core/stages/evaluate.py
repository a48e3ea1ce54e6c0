"""Evaluation stage: each dataset scored against ITS OWN label set (TinyEmo §IV).

Held-in datasets are scored on their test split; zero-shot datasets on every image by default (they are
never trained on; ``zero_shot_split: test`` keeps a published/seeded test split, e.g. Emotion6 and FI).
Exact label match, every sample scored (the reference's substring match and drop_last are defects).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from tinyemo_core.config import DatasetSpec
from tinyemo_core.fingerprint import step_fingerprint
from tinyemo_core.stages.assemble import DatasetSplit, eval_splits, features_scratch, label_ids, load_split
from tinyemo_core.store.evaluations import plan_evaluation, read_report, staged_evaluation
from tinyemo_core.store.features import FeatureStore
from tinyemo_core.store.kind import write_provenance
from tinyemo_core.store.labels import read_label_table
from tinyemo_core.store.plan import StorePlan


def eval_fingerprint(
    run_dir: str,
    which: str,
    label_fingerprint: str,
    datasets: dict[str, DatasetSpec],
    roles: dict[str, str],
    manifest_hashes: dict[str, str],
    feature_hashes: dict[str, str],
) -> str:
    detail = {
        n: {
            "role": roles[n],
            "splits": list(eval_splits(s, roles[n])),
            "template": s.template,
            "manifest": manifest_hashes[n],
            "features": feature_hashes[n],
        }
        for n, s in datasets.items()
    }
    return step_fingerprint("evaluate", Path(run_dir).name, which, label_fingerprint, detail)


def plan(run_dir: Path, fingerprint: str) -> StorePlan:
    """Where the evaluation for ``fingerprint`` goes and whether it is complete."""
    return plan_evaluation(run_dir, fingerprint)


def evaluate(
    run_dir: Path,
    which: str,
    datasets: dict[str, DatasetSpec],
    roles: dict[str, str],
    manifests: dict[str, str],
    stores: dict[str, FeatureStore],
    label_table: str,
    out_dir: Path,
    *,
    tsne: bool = True,
    title: str = "TinyEmo evaluation",
    memory_cap_mb: int | None = None,
) -> dict[str, Any]:
    """Score every dataset (held-in: test split; zero-shot: :func:`eval_splits`) and write report.md /
    report.json / plots into ``out_dir``; each dataset's summary names the splits it was scored on."""
    if (done := read_report(out_dir)) is not None:
        return {"report_dir": str(out_dir), "computed": False, "summary": done.get("summary", {})}
    from tinyemo_core.evaluate.metrics import score_dataset, summarise
    from tinyemo_core.evaluate.report import write_report
    from tinyemo_core.projector.io import load_projector, project

    table = read_label_table(Path(label_table))
    model = load_projector(run_dir, which=which)
    scores, projected_by_ds, multi = {}, {}, {}
    for name, spec in datasets.items():
        # over the memory cap: features come from an np.memmap file (projected in batches), then deleted
        hidden = out_dir.with_name(f".{out_dir.name}.features")
        scratch = features_scratch(hidden, [stores[name]], memory_cap_mb)
        split = load_split(name, Path(manifests[name]), stores[name], eval_splits(spec, roles[name]), scratch)
        projected = project(model, split.features)
        if scratch is not None:
            shutil.rmtree(scratch.parent, ignore_errors=True)
        cand_vectors = table.vectors[label_ids(table, split.candidates, spec.template)]
        scores[name] = score_dataset(
            projected, split.labels, split.candidates, cand_vectors, sample_ids=split.image_ids
        )
        projected_by_ds[name] = projected
        if split.multi_label:
            multi[name] = multi_label_scores(projected, split, cand_vectors)
    summary = summarise(scores, roles)
    for name, extra in multi.items():
        summary["datasets"][name].update(extra)
    for name, spec in datasets.items():
        summary["datasets"][name]["splits"] = list(eval_splits(spec, roles[name]))
    with staged_evaluation(out_dir) as tmp_dir:  # renamed into place: report.json => complete
        written = write_report(summary, scores, tmp_dir, title=title,
                               projected=projected_by_ds if tsne else None)
        write_provenance(tmp_dir)
    paths = {k: out_dir / Path(v).relative_to(tmp_dir) for k, v in written.items()}
    return {
        "report_dir": str(out_dir),
        "computed": True,
        "summary": summary,
        "files": {k: str(v) for k, v in paths.items()},
    }


def multi_label_scores(
    projected: np.ndarray, split: DatasetSplit, cand_vectors: np.ndarray
) -> dict[str, Any]:
    """Multi-label datasets (EMOTIC, as in LLaVA on EMOTIC): mean average precision over categories, each
    image's cosine to every candidate label as its score (categories without a positive in the split are
    skipped)."""
    from tinyemo_core.evaluate.metrics import mean_average_precision

    index = {c: i for i, c in enumerate(split.candidates)}
    targets = np.zeros((len(split.image_ids), len(split.candidates)), dtype=bool)
    for row, words in enumerate(split.label_lists or []):
        targets[row, [index[w] for w in words]] = True
    result = mean_average_precision(projected @ np.asarray(cand_vectors, np.float32).T, targets)
    return {"mAP": result.map, "mAP_skipped_categories": result.skipped}
