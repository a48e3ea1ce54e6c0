"""Evaluation stage: each dataset's test split scored against ITS OWN label set (paper §IV, REFERENCE_NOTES).

Exact label match, every test sample scored (the reference's substring match and drop_last are defects).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinyemo_core.config import DatasetSpec
from tinyemo_core.fingerprint import step_fingerprint
from tinyemo_core.stages.assemble import label_ids, load_split
from tinyemo_core.store.atomic import read_json
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
    scores, projected_by_ds = {}, {}
    for name, spec in datasets.items():
        split = load_split(name, Path(manifests[name]), stores[name], "test")
        projected = project(model, split.features)
        cand_vectors = table.vectors[label_ids(table, split.candidates, spec.template)]
        scores[name] = score_dataset(
            projected, split.labels, split.candidates, cand_vectors, sample_ids=split.image_ids
        )
        projected_by_ds[name] = projected
    summary = summarise(scores, roles)
    paths = write_report(summary, scores, out_dir, title=title, projected=projected_by_ds if tsne else None)
    return {
        "report_dir": str(out_dir),
        "computed": True,
        "summary": summary,
        "files": {k: str(v) for k, v in paths.items()},
    }
