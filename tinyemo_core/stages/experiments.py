"""The paper's experiments as tables: dataset-combination ablation (TinyEmo Table III), encoder x backbone
grid (Table IV), and re-grounding a trained projector with other label texts (Table VII).

Everything here reads the stores; the flows in ``pipelines/flows/experiments.py`` bring them up to date.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from tinyemo_core.config import DatasetSpec
from tinyemo_core.encoders.specs import BackboneSpec
from tinyemo_core.stages.assemble import label_ids, load_split
from tinyemo_core.stages.predict import trained_status
from tinyemo_core.store.atomic import write_atomic, write_json, write_parquet
from tinyemo_core.store.experiments import (
    PREDICTIONS,
    REGROUNDING,
    REGROUNDING_MD,
    TABLE,
    TABLE_MD,
    read_regrounding,
)
from tinyemo_core.store.features import FeatureStore
from tinyemo_core.store.labels import read_label_table, render

ABLATION_NOTES = (
    "Rows: the held-in datasets the projector was trained on (✓). Every dataset's test split is scored "
    "against its own label set. A held-in dataset NOT selected in a row is not trained on, so for that row "
    "it is scored zero-shot. As in TinyEmo Table III, Zero-shot = mean over the profile's zero-shot "
    "datasets only (the same set in every row, so rows compare fairly), Total = mean over all evaluated "
    "datasets; Unseen = mean over every dataset the row did not train on."
)
GRID_NOTES = (
    "One projector per (vision encoder, language backbone), trained on the profile's held-in datasets "
    "(TinyEmo Table IV). Params = trainable projector parameters (the paper's Params column counts the whole "
    "model). Zero-shot = mean over the profile's zero-shot datasets, Total = mean over all datasets."
)


def check_names(names: Sequence[str], allowed: Sequence[str], what: str) -> list[str]:
    """``names`` in the order given, or a ValueError naming the unknown ones and the allowed choices."""
    names = list(dict.fromkeys(names))
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; choose from: {', '.join(allowed)}")
    if not names:
        raise ValueError(f"no {what} given; choose from: {', '.join(allowed)}")
    return names


def held_in_subsets(held_in: Sequence[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset, in Table III's order: singletons, then pairs, ..., then all of them."""
    return [c for k in range(1, len(held_in) + 1) for c in itertools.combinations(held_in, k)]


def train_column(dataset: str) -> str:
    """The ablation's key column marking (✓) that a row trained on ``dataset`` (Table III's left block)."""
    return f"train:{dataset}"


def role_overrides(subset: Sequence[str], datasets: Sequence[str]) -> list[str]:
    """``--set`` overrides: train on ``subset``, score every other dataset of ``datasets`` zero-shot."""
    rest = [d for d in datasets if d not in subset]
    return [f"held_in={json.dumps(list(subset))}", f"zero_shot={json.dumps(rest)}"]


def _mean(values: list[float]) -> float | None:
    return float(sum(values) / len(values)) if values else None


def experiment_row(
    keys: Mapping[str, Any],
    accuracies: Mapping[str, float],
    trained_on: Sequence[str],
    zero_shot: Sequence[str],
) -> dict[str, Any]:
    """One table row: ``keys`` (the row's identity), each dataset's accuracy, Total, Zero-shot, Unseen."""
    unseen = [a for n, a in accuracies.items() if n not in trained_on]
    return {
        **keys,
        **{n: float(a) for n, a in accuracies.items()},
        "Total": _mean(list(accuracies.values())),
        "Zero-shot": _mean([accuracies[n] for n in zero_shot if n in accuracies]),
        "Unseen": _mean(unseen),
    }


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{100 * value:.2f}"
    return str(value)


def experiment_markdown(
    title: str, key_columns: Sequence[str], datasets: Sequence[str], rows: Sequence[dict], notes: str
) -> str:
    """Markdown table: key columns, one accuracy (%) column per dataset, then Total, Zero-shot, Unseen."""
    cols = [*key_columns, *datasets, "Total", "Zero-shot", "Unseen"]
    lines = [f"# {title}", "", "| " + " | ".join(cols) + " |"]
    lines.append("|" + "|".join(":-:" if c in key_columns else "--:" for c in cols) + "|")
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join([*lines, "", "Accuracies in %. " + notes, ""])


def write_experiment(
    out_dir: Path,
    title: str,
    key_columns: Sequence[str],
    datasets: Sequence[str],
    rows: Sequence[dict],
    notes: str,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Write ``table.md`` and ``table.json`` (rows as fractions, plus ``extra``: runs, reports) atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = experiment_markdown(title, key_columns, datasets, rows, notes)
    md_path = write_atomic(out_dir / TABLE_MD, lambda p: p.write_text(md))
    payload = {"title": title, "key_columns": list(key_columns), "datasets": list(datasets),
               "rows": list(rows), "notes": notes, **(extra or {})}
    return {"markdown": str(md_path), "json": str(write_json(out_dir / TABLE, payload))}


class Grounding(BaseModel):
    """One re-grounding variant: class word -> replacement text, and/or a new template for the other
    classes (``{label}`` marks the word).

    TinyEmo Table VII: ``{"texts": {"joy": "cheerful and content"}}``.
    """

    model_config = ConfigDict(extra="forbid")

    texts: dict[str, str] = Field(default_factory=dict)
    template: str | None = Field(None, pattern=r"\{(label|emotion)\}")

    def text_for(self, word: str, default_template: str) -> str:
        return self.texts.get(word) or render(self.template or default_template, word)


def reground(
    run_dir: Path,
    which: str,
    datasets: Mapping[str, DatasetSpec],
    manifests: Mapping[str, str],
    stores: Mapping[str, FeatureStore],
    label_table: str,
    backbone: BackboneSpec,
    backbone_name: str,
    storage_root: Path,
    variants: Mapping[str, Grounding],
    out_dir: Path,
    calibrated: bool = False,
) -> dict[str, Any]:
    """Score a trained projector's test predictions with each variant's label texts; no training.

    The report names, per variant, the texts the run never trained on; ``calibrated`` applies the run's
    calibration (its stacking margin comes off the scores of the texts it trained on; docs/projector.md).

    Only texts not in the label store are embedded (with the run's backbone, stored as a label table). Writes
    ``regrounding.md`` / ``.json`` (per dataset: per-class accuracy, baseline vs each variant with the change,
    Table VII's layout) and ``predictions.parquet`` (per sample: baseline and variant predictions).
    """
    from tinyemo_core.evaluate.metrics import score_dataset
    from tinyemo_core.evaluate.regrounding import regrounding_table, score_with_labels
    from tinyemo_core.projector.io import load_projector, project
    from tinyemo_core.stages.label_lookup import label_vectors

    if (done := read_regrounding(out_dir)) is not None:
        return {"out_dir": str(out_dir), "computed": False, **done}
    if not variants:
        raise ValueError("no re-grounding variant given: map a class to a text (joy='cheerful and content') "
                         "or give a template")
    from tinyemo_core.evaluate.regrounding import untrained_texts

    trained, recorded, calibration = trained_status(run_dir, [], calibrated)  # recorded: None = unknown
    margin = calibration["margin"] if calibration else 0.0
    table = read_label_table(Path(label_table))
    model = load_projector(run_dir, which=which)
    splits = {n: load_split(n, Path(manifests[n]), stores[n], "test") for n in datasets}
    known = {w for s in splits.values() for w in s.candidates}
    for vname, v in variants.items():
        if stray := sorted(set(v.texts) - known):
            raise ValueError(f"variant {vname!r} re-grounds {stray}, which no evaluated dataset has as a "
                             f"label; known labels: {', '.join(sorted(known))}")
    texts = {(v, n): {c: g.text_for(c, datasets[n].template) for c in splits[n].candidates}
             for v, g in variants.items() for n in splits}
    run_texts = dict(zip(table.texts, table.vectors, strict=True))
    needed = {t for m in texts.values() for t in m.values() if t not in run_texts}
    lookup = label_vectors(backbone, backbone_name, storage_root, sorted(needed))
    vectors = {**run_texts, **lookup.vectors}
    report: dict[str, Any] = {"variants": {k: v.model_dump() for k, v in variants.items()}, "datasets": {},
                              "embedded": lookup.embedded, "cached": lookup.cached,
                              "calibration": None if calibration is None else
                              {"method": calibration["method"], "margin": margin},
                              "untrained": {v: untrained_texts([t for (vv, _), m in texts.items() if vv == v
                                                                for t in m.values()],
                                                               None if recorded is None else trained)
                                            for v in variants}}
    cols: dict[str, list] = {"dataset": [], "sample_id": [], "true_label": [], "baseline": []}
    cols.update({f"pred:{v}": [] for v in variants})
    md = ["# Re-grounding without retraining (TinyEmo Table VII)", ""]
    md += _training_notes(report["untrained"], report["calibration"])
    for name, split in splits.items():
        projected = project(model, split.features)
        base_vecs = table.vectors[label_ids(table, split.candidates, datasets[name].template)]
        base = score_dataset(projected, split.labels, split.candidates, base_vecs, sample_ids=split.image_ids)
        scored = {v: score_with_labels(projected, split.labels, split.candidates, texts[(v, name)], vectors,
                                       sample_ids=split.image_ids, trained_texts=trained, margin=margin)
                  for v in variants}
        rows = regrounding_table(base, scored)
        report["datasets"][name] = {"rows": rows, "texts": {v: texts[(v, name)] for v in variants}}
        cols["dataset"] += [name] * base.n
        cols["sample_id"] += base.sample_ids
        cols["true_label"] += base.true_labels
        cols["baseline"] += base.predicted
        for v, s in scored.items():
            cols[f"pred:{v}"] += s.predicted
        md += _regrounding_md(name, rows, list(variants))
    out_dir.mkdir(parents=True, exist_ok=True)
    preds = pa.table({k: pa.array(v, pa.string()) for k, v in cols.items()})
    write_parquet(out_dir / PREDICTIONS, preds)
    write_atomic(out_dir / REGROUNDING_MD, lambda p: p.write_text("\n".join(md)))
    write_json(out_dir / REGROUNDING, report)
    return {"out_dir": str(out_dir), "computed": True, **report}


def _training_notes(untrained: dict[str, list[str] | None], calibration: dict | None) -> list[str]:
    """Lines naming the texts the run never trained on (per variant) and the calibration applied."""
    out = []
    for variant, texts in untrained.items():
        if texts is None:
            out.append(f"- {variant}: the run does not record its trained texts (trained before they were)")
        elif texts:
            out.append(f"- {variant}: never trained on: {', '.join(texts)}")
    if calibration:
        out.append(f"- calibration: {calibration['method']}, margin {calibration['margin']:.3f} subtracted "
                   "from the scores of texts the run trained on")
    return [*out, ""] if out else []


def _regrounding_md(name: str, rows: list[dict], variants: list[str]) -> list[str]:
    head = ["class", "baseline", *variants]
    out = [f"## {name}", "", "| " + " | ".join(head) + " |", "|---|" + "--:|" * (len(head) - 1)]
    for r in rows:
        cells = [str(r["class"]), _cell(r["baseline"])]
        for v in variants:
            delta = r.get(f"{v} Δ")
            cells.append(_cell(r[v]) + (f" ({100 * delta:+.2f})" if delta else ""))
        out.append("| " + " | ".join(cells) + " |")
    return [*out, ""]
