"""Scores of parsed answers: accuracy + confusion, held-in/held-out means, instruction sensitivity, mAP, VAD.

Every answer is scored: an answer that failed (request error, empty) or names no label counts wrong and is
counted in ``n_failed`` / ``n_none``; none is dropped (EmoVIT's public scorer drops them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from sklearn.metrics import confusion_matrix

from tinyemo_core.evaluate.metrics import mean_average_precision
from tinyemo_core.judge.parse import Parsed

NONE_COLUMN = "(no label)"


@dataclass
class SingleLabelScore:
    """One dataset under one instruction. ``confusion`` rows = true label, columns = candidates + "(no label)"
    (answers scored wrong because they name no label, several labels under policy "wrong", or failed)."""

    candidates: list[str]
    true_labels: list[str]
    predicted: list[str | None]  # what counted: None = no usable label
    first_mention: list[str | None]
    statuses: list[str]  # "ok", "several", "none", "failed"
    confusion: np.ndarray
    policy: str

    @property
    def n(self) -> int:
        return len(self.true_labels)

    @property
    def accuracy(self) -> float:
        return (
            float(np.mean([p == t for p, t in zip(self.predicted, self.true_labels, strict=True)]))
            if self.n
            else math.nan
        )

    @property
    def accuracy_first_mention(self) -> float:
        """Accuracy when an answer naming several labels is scored by its first mention."""
        return (
            float(np.mean([p == t for p, t in zip(self.first_mention, self.true_labels, strict=True)]))
            if self.n
            else math.nan
        )

    def counts(self) -> dict[str, int]:
        return {s: self.statuses.count(s) for s in ("ok", "several", "none", "failed")}

    def to_dict(self) -> dict[str, Any]:
        c = self.counts()
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            "accuracy_first_mention": self.accuracy_first_mention,
            "several_policy": self.policy,
            "n_ok": c["ok"],
            "n_several": c["several"],
            "n_none": c["none"],
            "n_failed": c["failed"],
            "candidates": self.candidates,
            "confusion_columns": [*self.candidates, NONE_COLUMN],
            "confusion": self.confusion.tolist(),
        }


def score_single_label(
    true_labels: Sequence[str],
    parsed: Sequence[Parsed | None],
    candidates: Sequence[str],
    *,
    several: Literal["wrong", "first"] = "wrong",
) -> SingleLabelScore:
    """Score parsed answers (``None`` = the request failed) against the true labels.

    ``several="wrong"`` (default, the issue's rule): an answer naming several labels counts wrong;
    ``"first"``: it counts as its first-mentioned label (EmoVIT's scorer). Both accuracies are reported.
    """
    candidates = [str(c) for c in candidates]
    if len(true_labels) != len(parsed):
        raise ValueError(f"{len(true_labels)} true labels but {len(parsed)} parsed answers")
    unknown = sorted(set(true_labels) - set(candidates))
    if unknown:
        raise ValueError(f"true labels {unknown} are not among the candidates {candidates}")
    statuses = ["failed" if p is None else p.status for p in parsed]
    first = [None if p is None else p.label for p in parsed]
    counted = [
        lb if st == "ok" or (st == "several" and several == "first") else None
        for lb, st in zip(first, statuses, strict=True)
    ]
    cols = [*candidates, NONE_COLUMN]
    conf = (
        confusion_matrix(
            list(true_labels), [c if c is not None else NONE_COLUMN for c in counted], labels=cols
        )[: len(candidates)]
        if len(true_labels)
        else np.zeros((len(candidates), len(cols)), dtype=np.int64)
    )
    return SingleLabelScore(candidates, list(true_labels), counted, first, statuses, conf, several)


def group_means(accuracies: dict[str, float], roles: dict[str, str]) -> dict[str, float | None]:
    """Held-in mean, held-out mean (datasets with role "zero_shot"/"held_out") and the mean over all."""

    def mean(xs: list[float]) -> float | None:
        return float(np.mean(xs)) if xs else None

    held_in = [a for d, a in accuracies.items() if roles.get(d) == "held_in"]
    held_out = [a for d, a in accuracies.items() if roles.get(d) in ("zero_shot", "held_out")]
    return {
        "held_in_mean": mean(held_in),
        "held_out_mean": mean(held_out),
        "total": mean(list(accuracies.values())),
    }


def instruction_sensitivity(acc: dict[str, dict[str, float]], *, ddof: int = 0) -> dict[str, Any]:
    """EmoVIT §4.3.2 / Supplementary eq. 3 (MultiInstruct's Sensitivity): per dataset (task) the standard
    deviation of accuracy across instructions divided by its mean, then the mean over datasets.

    ``acc[dataset][instruction_id]``. ``ddof=0`` = population std (numpy's default; the papers do not say
    which); the sample std (``ddof=1``) is reported alongside. Lower is better.
    """
    per: dict[str, dict[str, float]] = {}
    for ds, by_instr in acc.items():
        vals = np.array(list(by_instr.values()), dtype=np.float64)
        if len(vals) < 2:
            raise ValueError(f"instruction sensitivity needs >= 2 instructions; {ds!r} has {len(vals)}")
        mu = vals.mean()
        per[ds] = {
            "mean": float(mu),
            "std_population": float(vals.std(ddof=0)),
            "std_sample": float(vals.std(ddof=1)),
            # undefined (None) when every instruction scores 0: std/mean has no value
            "sensitivity": float(vals.std(ddof=ddof) / mu) if mu > 0 else None,
            "sensitivity_sample": float(vals.std(ddof=1) / mu) if mu > 0 else None,
        }

    def mean_of(key: str) -> float | None:
        vals = [v[key] for v in per.values() if v[key] is not None]
        return float(np.mean(vals)) if vals else None

    return {
        "std": "population" if ddof == 0 else "sample",
        "per_dataset": per,
        "sensitivity": mean_of("sensitivity"),
        "sensitivity_sample": mean_of("sensitivity_sample"),
    }


def multilabel_targets(label_lists: Sequence[Sequence[str]], categories: Sequence[str]) -> np.ndarray:
    """(N, C) boolean matrix of each sample's categories (an unknown category is an error)."""
    index = {c: i for i, c in enumerate(categories)}
    out = np.zeros((len(label_lists), len(categories)), dtype=bool)
    for r, words in enumerate(label_lists):
        for w in words:
            if w not in index:
                raise ValueError(f"sample {r}: category {w!r} is not one of the {len(categories)} categories")
            out[r, index[w]] = True
    return out


def map_scores(scores: np.ndarray, targets: np.ndarray, categories: Sequence[str]) -> dict[str, Any]:
    """mAP over categories with a positive (sklearn average precision per category, see
    :func:`tinyemo_core.evaluate.metrics.mean_average_precision`) plus the per-category APs by name."""
    res = mean_average_precision(scores, targets)
    return {
        "mAP": res.map,
        "skipped_categories": res.skipped,
        "per_category": {
            c: (None if math.isnan(ap) else ap) for c, ap in zip(categories, res.per_category, strict=True)
        },
    }


def vad_bin_mae(predicted: Sequence[Sequence[int | None]], target: Sequence[Sequence[int]]) -> dict[str, Any]:
    """Mean absolute error in bins (1-10) per V/A/D dimension over answers that gave that dimension; how many
    answers gave no value is reported per dimension (``missing``), never imputed."""
    names = ("valence", "arousal", "dominance")
    out: dict[str, Any] = {"missing": {}}
    errs_all = []
    for d, name in enumerate(names):
        pairs = [(p[d], t[d]) for p, t in zip(predicted, target, strict=True) if p[d] is not None]
        errs = [abs(int(p) - int(t)) for p, t in pairs]
        out[name] = float(np.mean(errs)) if errs else None
        out["missing"][name] = len(predicted) - len(pairs)
        errs_all += errs
    out["mean"] = float(np.mean(errs_all)) if errs_all else None
    return out
