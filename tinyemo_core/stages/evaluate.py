"""Evaluation stage: each dataset's test split scored against ITS OWN label set (paper §IV, REFERENCE_NOTES).

Exact label match, every test sample scored (the reference's substring match and drop_last are defects).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from tinyemo_core.config import DatasetSpec
from tinyemo_core.fingerprint import step_fingerprint
from tinyemo_core.provenance import current
from tinyemo_core.stages.assemble import DatasetSplit, label_ids, load_split
from tinyemo_core.store.atomic import read_json, write_json
from tinyemo_core.store.features import FeatureStore
from tinyemo_core.store.labels import read_label_table


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
            "template": s.template,
            "manifest": manifest_hashes[n],
            "features": feature_hashes[n],
        }
        for n, s in datasets.items()
    }
    return step_fingerprint("evaluate", Path(run_dir).name, which, label_fingerprint, detail)


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
) -> dict[str, Any]:
    """Score every dataset's test split and write report.md / report.json / plots into ``out_dir``."""
    report_json = out_dir / "report.json"
    if (done := read_json(report_json)) is not None:
        return {"report_dir": str(out_dir), "computed": False, "summary": done.get("summary", {})}
    from tinyemo_core.evaluate.metrics import score_dataset, summarise
    from tinyemo_core.evaluate.report import write_report
    from tinyemo_core.projector.io import load_projector, project

    table = read_label_table(Path(label_table))
    model = load_projector(run_dir, which=which)
    scores, projected_by_ds, multi = {}, {}, {}
    for name, spec in datasets.items():
        split = load_split(name, Path(manifests[name]), stores[name], "test")
        projected = project(model, split.features)
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
    # the report folder is written under a temporary name and renamed into place: report.json => complete
    tmp_dir = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    written = write_report(summary, scores, tmp_dir, title=title, projected=projected_by_ds if tsne else None)
    write_json(tmp_dir / "provenance.json", current())
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp_dir, out_dir)
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
    """Multi-label datasets (EMOTIC, seed 003): mean average precision over categories, each image's cosine
    to every candidate label as its score (categories without a positive in the split are skipped)."""
    from tinyemo_core.evaluate.metrics import mean_average_precision

    index = {c: i for i, c in enumerate(split.candidates)}
    targets = np.zeros((len(split.image_ids), len(split.candidates)), dtype=bool)
    for row, words in enumerate(split.label_lists or []):
        targets[row, [index[w] for w in words]] = True
    result = mean_average_precision(projected @ np.asarray(cand_vectors, np.float32).T, targets)
    return {"mAP": result.map, "mAP_skipped_categories": result.skipped}
