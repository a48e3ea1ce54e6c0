"""Evaluation reports: Markdown table like the paper's, JSON, per-sample predictions Parquet, figures."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tinyemo_core.evaluate.metrics import HELD_IN, DatasetScore
from tinyemo_core.evaluate.plots import plot_confusion, plot_tsne
from tinyemo_core.store.atomic import write_atomic, write_json, write_parquet
from tinyemo_core.store.evaluations import REPORT, REPORT_MD


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def markdown_table(summary: dict[str, Any], title: str) -> str:
    """The paper's layout: one row per dataset (held-in first), then held-in mean, Zero-shot, Total."""
    rows = sorted(summary["datasets"].items(), key=lambda kv: (kv[1]["role"] != HELD_IN, kv[0]))
    lines = [f"# {title}", "", "| dataset | role | #test | accuracy (%) |", "|---|---|---:|---:|"]
    lines += [f"| {name} | {row['role'].replace('_', '-')} | {row['n']} | {_pct(row['accuracy'])} |"
              for name, row in rows]
    lines += [f"| **Held-in mean** | | | {_pct(summary['held_in_mean'])} |",
              f"| **Zero-shot Accuracy** | | | {_pct(summary['zero_shot_mean'])} |",
              f"| **Total Accuracy** | | | {_pct(summary['total'])} |", ""]
    return "\n".join(lines)


def predictions_table(scores: dict[str, DatasetScore]) -> pa.Table:
    """One row per scored sample: dataset, sample id, true and predicted label, ranked labels and cosines."""
    cols: dict[str, list[Any]] = {k: [] for k in
                                  ("dataset", "sample_id", "true_label", "predicted", "correct",
                                   "ranked_labels", "ranked_scores")}
    for name, s in scores.items():
        cols["dataset"] += [name] * s.n
        cols["sample_id"] += s.sample_ids
        cols["true_label"] += s.true_labels
        cols["predicted"] += s.predicted
        cols["correct"] += [t == p for t, p in zip(s.true_labels, s.predicted, strict=True)]
        cols["ranked_labels"] += [[s.candidates[j] for j in row] for row in s.ranking.tolist()]
        cols["ranked_scores"] += s.ranking_scores.astype(np.float32).tolist()
    schema = pa.schema([("dataset", pa.string()), ("sample_id", pa.string()), ("true_label", pa.string()),
                        ("predicted", pa.string()), ("correct", pa.bool_()),
                        ("ranked_labels", pa.list_(pa.string())), ("ranked_scores", pa.list_(pa.float32()))])
    return pa.table(cols, schema=schema)


def write_report(summary: dict[str, Any], scores: dict[str, DatasetScore], out_dir: Path, *, title: str,
                 projected: dict[str, np.ndarray] | None = None,
                 label_points: dict[str, tuple[list[str], np.ndarray]] | None = None) -> dict[str, Path]:
    """Write ``report.md``, ``report.json``, ``predictions.parquet``, ``confusion_<dataset>.png`` per dataset
    and, for each dataset in ``projected`` (its projected test embeddings), ``tsne_<dataset>.png`` with its
    label embeddings as stars (default: the dataset's candidates; ``label_points`` overrides). Returns the
    written paths by key ("report_md", "report_json", "predictions", "confusion:<ds>", "tsne:<ds>")."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    md = markdown_table(summary, title)
    paths["report_md"] = write_atomic(out_dir / REPORT_MD, lambda p: p.write_text(md))
    payload = {"title": title, "summary": summary, "datasets": {k: s.to_dict() for k, s in scores.items()}}
    paths["report_json"] = write_json(out_dir / REPORT, payload)
    paths["predictions"] = write_parquet(out_dir / "predictions.parquet", predictions_table(scores))
    for name, s in scores.items():
        paths[f"confusion:{name}"] = plot_confusion(s.confusion, s.candidates,
                                                    out_dir / f"confusion_{_slug(name)}.png",
                                                    f"{name}: accuracy {_pct(s.accuracy)}%")
    for name, points in (projected or {}).items():
        if name not in scores:
            raise ValueError(f"projected embeddings given for {name!r}, which has no score")
        s = scores[name]
        names, vectors = (label_points or {}).get(name, (s.candidates, s.candidate_vectors))
        tsne = plot_tsne(points, s.true_labels, names, vectors, out_dir / f"tsne_{_slug(name)}.png",
                         f"{name}: t-SNE of projected images (dots) and labels (stars)")
        if tsne is not None:
            paths[f"tsne:{name}"] = tsne
    return paths
