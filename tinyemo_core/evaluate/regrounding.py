"""Re-grounding: score a trained projector with other label texts or templates, no retraining (Table VII)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from tinyemo_core.evaluate.metrics import DatasetScore, score_dataset


def score_with_labels(projected: np.ndarray, true_labels: Sequence[str], candidates: Sequence[str],
                      label_texts: Mapping[str, str], text_vectors: Mapping[str, np.ndarray], *,
                      sample_ids: Sequence[str] | None = None, trained_texts: Collection[str] = (),
                      margin: float = 0.0) -> DatasetScore:
    """Score the classes ``candidates`` with class ``c`` represented by the embedding of ``label_texts[c]``
    (default: ``c`` itself), looked up in ``text_vectors`` (text → vector, e.g. from the cached label store).

    Predictions and the confusion matrix stay in class names, so TinyEmo Table VII ("joy" grounded as
    "cheerful and content") or a template such as "a scene evoking {c} to viewers" is one call each.
    ``margin`` (calibrated stacking): subtracted from the score of every class whose text is one of
    ``trained_texts`` (the run's), so texts the run never trained on are not out-ranked by the seen bias.
    """
    texts = [label_texts.get(c, c) for c in candidates]
    missing = [t for t in texts if t not in text_vectors]
    if missing:
        raise KeyError(f"no embedding for label texts {missing}; embed them first (tinyemo run embed-labels)")
    vectors = np.stack([np.asarray(text_vectors[t], dtype=np.float32) for t in texts])
    offsets = None
    if margin:
        trained = set(trained_texts)
        offsets = np.array([-margin if t in trained else 0.0 for t in texts], dtype=np.float32)
    return score_dataset(projected, true_labels, candidates, vectors, sample_ids=sample_ids,
                         score_offsets=offsets)


def untrained_texts(texts: Sequence[str], trained_texts: Collection[str] | None) -> list[str] | None:
    """The texts of ``texts`` a run never trained on, in order (None when the run does not record them)."""
    if trained_texts is None:
        return None
    trained = set(trained_texts)
    return [t for t in dict.fromkeys(texts) if t not in trained]


def regrounding_table(baseline: DatasetScore, variants: Mapping[str, DatasetScore]) -> list[dict[str, Any]]:
    """Per-class accuracy of each grounding variant next to the baseline, with the change (Table VII layout).
    Rows: one per class, then "overall"."""
    base_cls = baseline.per_class_accuracy()
    var_cls = {k: v.per_class_accuracy() for k, v in variants.items()}
    rows: list[dict[str, Any]] = []
    for c in baseline.candidates:
        row: dict[str, Any] = {"class": c, "baseline": base_cls[c]}
        for k, accs in var_cls.items():
            acc = accs.get(c)
            row[k] = acc
            row[f"{k} Δ"] = None if acc is None or base_cls[c] is None else acc - base_cls[c]
        rows.append(row)
    overall: dict[str, Any] = {"class": "overall", "baseline": baseline.accuracy}
    for k, v in variants.items():
        overall[k], overall[f"{k} Δ"] = v.accuracy, v.accuracy - baseline.accuracy
    rows.append(overall)
    return rows
