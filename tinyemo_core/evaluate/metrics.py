"""Per-dataset scoring against each dataset's own label set, paper summaries, multi-label mAP, VAD error."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, confusion_matrix

HELD_IN, ZERO_SHOT = "held_in", "zero_shot"


@dataclass
class DatasetScore:
    """One dataset's results. ``ranking[i]`` lists candidate indices best first, ``ranking_scores[i]`` their
    cosines (the paper's "rank of emotions", Fig. 2); ``confusion`` rows = true, columns = predicted, both in
    ``candidates`` order."""

    candidates: list[str]
    candidate_vectors: np.ndarray
    true_labels: list[str]
    predicted: list[str]
    sample_ids: list[str]
    ranking: np.ndarray
    ranking_scores: np.ndarray
    confusion: np.ndarray

    @property
    def n(self) -> int:
        """Number of scored samples (every sample is scored)."""
        return len(self.true_labels)

    @property
    def accuracy(self) -> float:
        """Exact-match accuracy over every sample."""
        return float(np.trace(self.confusion) / self.n) if self.n else float("nan")

    def per_class_accuracy(self) -> dict[str, float | None]:
        """Recall per candidate label; None for a label with no test sample."""
        support = self.confusion.sum(axis=1)
        return {c: (float(self.confusion[i, i] / support[i]) if support[i] else None)
                for i, c in enumerate(self.candidates)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (no per-sample rows)."""
        return {"n": self.n, "accuracy": self.accuracy, "candidates": self.candidates,
                "per_class_accuracy": self.per_class_accuracy(), "confusion": self.confusion.tolist()}


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def score_dataset(projected: np.ndarray, true_labels: Sequence[str], candidates: Sequence[str],
                  candidate_vectors: np.ndarray, *, sample_ids: Sequence[str] | None = None,
                  score_offsets: np.ndarray | None = None) -> DatasetScore:
    """Score every sample: prediction = the candidate with the highest cosine to the projected image.

    ``score_offsets`` (one per candidate) are added to the cosines before ranking (calibrated stacking:
    minus the run's margin for the words it trained on, docs/projector.md).

    Exact string equality decides correctness (the reference's substring test counted "sad" as right for
    "sadness"); every row is scored (no ``drop_last``). ``candidates`` are the dataset's own label set.
    """
    candidates, true_labels = [str(c) for c in candidates], [str(t) for t in true_labels]
    if len(set(candidates)) != len(candidates):
        raise ValueError(f"candidates contain duplicates: {candidates}")
    if len(projected) != len(true_labels):
        raise ValueError(f"{len(projected)} projected rows but {len(true_labels)} labels")
    if len(candidate_vectors) != len(candidates):
        raise ValueError(f"{len(candidates)} candidates but {len(candidate_vectors)} candidate vectors")
    unknown = sorted(set(true_labels) - set(candidates))
    if unknown:
        raise ValueError(f"true labels {unknown} are not among the candidates {candidates}; "
                         "a dataset must be scored against a label set that contains its labels")
    vectors = _normalise(candidate_vectors)
    cos = _normalise(projected) @ vectors.T if len(projected) else np.zeros((0, len(candidates)), np.float32)
    if score_offsets is not None:
        cos = cos + np.asarray(score_offsets, dtype=cos.dtype)[None, :]
    ranking = np.argsort(-cos, axis=1, kind="stable")
    ranking_scores = np.take_along_axis(cos, ranking, axis=1)
    predicted = [candidates[i] for i in ranking[:, 0]] if len(cos) else []
    conf = confusion_matrix(true_labels, predicted, labels=candidates) if predicted else \
        np.zeros((len(candidates),) * 2, dtype=np.int64)
    ids = [str(s) for s in (sample_ids if sample_ids is not None else range(len(true_labels)))]
    if len(ids) != len(true_labels):
        raise ValueError(f"{len(ids)} sample ids for {len(true_labels)} samples")
    return DatasetScore(candidates, vectors, true_labels, predicted, ids, ranking, ranking_scores, conf)


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def summarise(scores: dict[str, DatasetScore], roles: dict[str, str]) -> dict[str, Any]:
    """The paper's table (TinyEmo Table III): per-dataset accuracy, held-in mean, Zero-shot Accuracy (mean
    over zero-shot datasets) and Total Accuracy (mean over ALL evaluated datasets). Means are None when a
    group is empty. ``roles`` maps each dataset to "held_in" or "zero_shot"."""
    missing = sorted(set(scores) - set(roles))
    if missing:
        raise ValueError(f"no role given for datasets {missing}; mark each '{HELD_IN}' or '{ZERO_SHOT}'")
    bad = {k: v for k, v in roles.items() if v not in (HELD_IN, ZERO_SHOT)}
    if bad:
        raise ValueError(f"unknown roles {bad}; use '{HELD_IN}' or '{ZERO_SHOT}'")
    rows = {name: {"role": roles[name], "n": s.n, "accuracy": s.accuracy} for name, s in scores.items()}
    by_role = {r: [row["accuracy"] for row in rows.values() if row["role"] == r]
               for r in (HELD_IN, ZERO_SHOT)}
    return {"datasets": rows, "held_in_mean": _mean(by_role[HELD_IN]),
            "zero_shot_mean": _mean(by_role[ZERO_SHOT]),
            "total": _mean([row["accuracy"] for row in rows.values()])}


@dataclass
class MapResult:
    """Mean average precision over categories that have at least one positive."""

    map: float
    per_category: list[float]  # NaN where the category had no positive and was skipped
    skipped: int


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> MapResult:
    """Multi-label mAP (EMOTIC, as the LLaVA-on-EMOTIC poster reports): sklearn ``average_precision_score``
    per category (column); a category without any positive has no defined AP and is skipped (counted in
    ``skipped``)."""
    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets, dtype=bool)
    if scores.shape != targets.shape or scores.ndim != 2:
        raise ValueError(f"scores {scores.shape} and targets {targets.shape} must both be (N, C)")
    per_cat = [float(average_precision_score(targets[:, c], scores[:, c])) if targets[:, c].any()
               else math.nan for c in range(scores.shape[1])]
    valid = [ap for ap in per_cat if not math.isnan(ap)]
    if not valid:
        raise ValueError("no category has a positive sample; mAP is undefined")
    return MapResult(float(np.mean(valid)), per_cat, len(per_cat) - len(valid))


def vad_error(predicted: np.ndarray, target: np.ndarray,
              names: Sequence[str] = ("valence", "arousal", "dominance")) -> dict[str, float]:
    """Mean absolute error per continuous dimension (EMOTIC VAD, 1-10 scale) and their mean ("mean")."""
    predicted, target = np.asarray(predicted, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if predicted.shape != target.shape or predicted.ndim != 2 or predicted.shape[1] != len(names):
        raise ValueError(f"predicted {predicted.shape} and target {target.shape} must be (N, {len(names)})")
    mae = np.abs(predicted - target).mean(axis=0)
    return {**{n: float(v) for n, v in zip(names, mae, strict=True)}, "mean": float(mae.mean())}
