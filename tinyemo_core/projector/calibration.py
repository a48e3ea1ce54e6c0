"""Generalized zero-shot scoring and calibrated stacking (numpy only).

GZSL (Xian et al., TPAMI 2018): images of seen AND unseen classes are scored over the union of their label
words; ``acc_S`` / ``acc_U`` are mean per-class top-1 accuracies over the seen / unseen classes and
``H = 2 acc_S acc_U / (acc_S + acc_U)``. Calibrated stacking (Chao et al., ECCV 2016): subtract a margin
``gamma`` from the score of every seen word before the argmax; ``gamma`` is chosen without unseen labels by
holding out some seen classes as pseudo-unseen (:func:`choose_margin`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


def harmonic_mean(a: float, b: float) -> float:
    return 0.0 if a + b <= 0 else 2 * a * b / (a + b)


@dataclass
class GzslResult:
    """One scoring of a GZSL test set: per-class-mean accuracies, H, and the sample counts."""

    seen_acc: float
    unseen_acc: float
    h: float
    n_seen: int
    n_unseen: int

    def to_dict(self) -> dict:
        return asdict(self)


def _per_class_mean(correct: np.ndarray, true: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """``correct`` (M, N) bool -> (M,) mean over ``classes`` (those with samples) of per-class accuracy."""
    present = [c for c in classes if np.any(true == c)]
    if not present:
        return np.full(correct.shape[0], np.nan)
    return np.mean([correct[:, true == c].mean(axis=1) for c in present], axis=0)


def margin_curve(scores: np.ndarray, true: np.ndarray, seen: Sequence[int], unseen: Sequence[int],
                 margins: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(acc_S, acc_U, H) for every margin at once.

    ``scores`` (N, C) cosine of each image to each candidate word; ``true`` (N,) the column of each image's
    own word; ``seen`` / ``unseen`` partition the columns. With margin g an image is given its best unseen
    word when that score beats its best seen score minus g (ties: the seen word)."""
    scores, true = np.asarray(scores, np.float64), np.asarray(true)
    seen_cols, unseen_cols = np.asarray(seen), np.asarray(unseen)
    best_seen = scores[:, seen_cols].max(axis=1)
    best_unseen = scores[:, unseen_cols].max(axis=1)
    seen_ok = seen_cols[scores[:, seen_cols].argmax(axis=1)] == true
    unseen_ok = unseen_cols[scores[:, unseen_cols].argmax(axis=1)] == true
    margins = np.asarray(margins, np.float64)[:, None]
    takes_unseen = best_unseen[None, :] > best_seen[None, :] - margins  # (M, N)
    correct = np.where(takes_unseen, unseen_ok[None, :], seen_ok[None, :])
    acc_s = _per_class_mean(correct, true, list(seen_cols))
    acc_u = _per_class_mean(correct, true, list(unseen_cols))
    h = np.where(acc_s + acc_u > 0, 2 * acc_s * acc_u / np.maximum(acc_s + acc_u, 1e-12), 0.0)
    return acc_s, acc_u, h


def gzsl_scores(scores: np.ndarray, true: np.ndarray, seen: Sequence[int], unseen: Sequence[int],
                margin: float = 0.0) -> GzslResult:
    """The GZSL result of one margin (0 = uncalibrated)."""
    acc_s, acc_u, h = margin_curve(scores, true, seen, unseen, np.array([margin]))
    true = np.asarray(true)
    return GzslResult(float(acc_s[0]), float(acc_u[0]), float(h[0]), int(np.isin(true, seen).sum()),
                      int(np.isin(true, unseen).sum()))


def zsl_accuracy(scores: np.ndarray, true: np.ndarray, unseen: Sequence[int]) -> float:
    """Conventional ZSL: unseen images only, scored over the unseen words only (mean per-class accuracy)."""
    true, cols = np.asarray(true), np.asarray(unseen)
    mask = np.isin(true, cols)
    pred = cols[np.asarray(scores)[mask][:, cols].argmax(axis=1)]
    return float(_per_class_mean((pred == true[mask])[None, :], true[mask], list(cols))[0])


def margin_grid(max_margin: float, step: float) -> np.ndarray:
    return np.round(np.arange(0.0, max_margin + step / 2, step), 6)


def choose_margin(h_curves: Sequence[np.ndarray], margins: np.ndarray) -> tuple[float, float]:
    """The margin of the best mean H over pseudo splits: the median of the margins that reach it (the best
    H is usually a plateau; its middle is the margin least sensitive to the change from the pseudo split
    to the real one). Returns (margin, best mean H)."""
    mean_h = np.mean(np.stack([np.asarray(c) for c in h_curves]), axis=0)
    best = float(mean_h.max())
    at_best = np.asarray(margins)[np.isclose(mean_h, best, rtol=0, atol=1e-12)]
    return float(at_best[(len(at_best) - 1) // 2]), best


def cyclic_derangements(k: int) -> list[np.ndarray]:
    """The k-1 cyclic shifts of ``range(k)`` other than the identity: each moves every element."""
    return [np.roll(np.arange(k), s) for s in range(1, k)]


def permuted_control(projected: np.ndarray, vectors: np.ndarray, true: np.ndarray, seen: Sequence[int],
                     unseen: Sequence[int], margin: float) -> GzslResult:
    """The scores with the unseen words' embeddings permuted among themselves (every cyclic derangement,
    averaged): the same margin pushes images onto unseen words, but their geometry no longer matches.
    If a gain came from the margin alone and not from word geometry, this control would keep it."""
    unseen = list(unseen)
    results = []
    for perm in cyclic_derangements(len(unseen)):
        shuffled = np.asarray(vectors, np.float64).copy()
        shuffled[unseen] = vectors[np.asarray(unseen)[perm]]
        results.append(gzsl_scores(projected @ shuffled.T, true, seen, unseen, margin))
    return GzslResult(float(np.mean([r.seen_acc for r in results])),
                      float(np.mean([r.unseen_acc for r in results])),
                      float(np.mean([r.h for r in results])), results[0].n_seen, results[0].n_unseen)


def stack(scores: np.ndarray, seen_columns: Sequence[int] | np.ndarray, margin: float) -> np.ndarray:
    """Calibrated stacking: ``scores`` with ``margin`` subtracted from the seen words' columns."""
    out = np.array(scores, dtype=np.float64, copy=True)
    out[:, np.asarray(seen_columns, dtype=np.int64)] -= margin
    return out
