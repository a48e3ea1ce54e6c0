"""Per-dataset accuracy against an independent loop, exact match, summaries, mAP and VAD error."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinyemo_core.evaluate import mean_average_precision, score_dataset, summarise, vad_error


def _case(n: int, seed: int = 0) -> tuple[np.ndarray, list[str], list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    cands = ["anger", "fear", "joy", "sadness", "surprise"]
    vecs = rng.normal(size=(5, 12))
    truth = [cands[i] for i in rng.integers(0, 5, n)]
    proj = vecs[[cands.index(t) for t in truth]] + rng.normal(size=(n, 12)) * 1.2
    return proj, truth, cands, vecs


def test_accuracy_matches_plain_loop_on_every_sample() -> None:
    proj, truth, cands, vecs = _case(101)  # odd N: nothing may be dropped
    score = score_dataset(proj, truth, cands, vecs)
    correct = 0
    for p, t in zip(proj, truth, strict=True):
        best, best_cos = None, -2.0
        for c, v in zip(cands, vecs, strict=True):
            cos = float(np.dot(p, v) / (np.linalg.norm(p) * np.linalg.norm(v)))
            if cos > best_cos:
                best, best_cos = c, cos
        correct += best == t
    assert score.n == 101 and len(score.predicted) == 101
    assert score.accuracy == correct / 101
    assert 0.2 < score.accuracy < 1.0  # the case is neither trivial nor hopeless
    assert score.confusion.sum() == 101
    assert score.confusion.sum(axis=1).tolist() == [truth.count(c) for c in cands]
    per_class = score.per_class_accuracy()
    for c in cands:
        rows = [k for k, t in enumerate(truth) if t == c]
        assert per_class[c] == pytest.approx(np.mean([score.predicted[k] == c for k in rows]))
    # ranked list: best first, scores are the cosines, top-1 = prediction
    assert (np.diff(score.ranking_scores, axis=1) <= 1e-7).all()
    assert [cands[r[0]] for r in score.ranking] == score.predicted
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    np.testing.assert_allclose(score.ranking_scores[0, 0],
                               unit[score.ranking[0, 0]] @ proj[0] / np.linalg.norm(proj[0]), rtol=1e-5)


def test_exact_match_not_substring() -> None:
    """The reference counted 'sad' as correct for 'sadness' (``gt in predicted``)."""
    vecs = np.array([[1.0, 0.0], [0.0, 1.0]])
    score = score_dataset(np.array([[0.0, 1.0], [0.0, 1.0]]), ["sad", "sadness"], ["sad", "sadness"], vecs)
    assert score.predicted == ["sadness", "sadness"]
    assert score.accuracy == 0.5
    assert score.per_class_accuracy() == {"sad": 0.0, "sadness": 1.0}


def test_labels_outside_candidates_and_shape_errors() -> None:
    vecs = np.eye(2)
    with pytest.raises(ValueError, match="not among the candidates"):
        score_dataset(np.eye(2), ["joy", "awe"], ["joy", "fear"], vecs)
    with pytest.raises(ValueError, match="labels"):
        score_dataset(np.eye(2), ["joy"], ["joy", "fear"], vecs)


def test_class_without_test_samples_is_none() -> None:
    score = score_dataset(np.array([[1.0, 0.0]]), ["joy"], ["joy", "fear"], np.eye(2), sample_ids=["img7"])
    assert score.per_class_accuracy() == {"joy": 1.0, "fear": None}
    assert score.sample_ids == ["img7"]


def test_summary_means_follow_the_paper() -> None:
    def acc_score(k: int, n: int = 4):  # k of n correct
        truth = ["a"] * n
        proj = np.array([[1.0, 0.0]] * k + [[0.0, 1.0]] * (n - k))
        return score_dataset(proj, truth, ["a", "b"], np.eye(2))

    scores = {"roi": acc_score(4), "emoset": acc_score(2), "e6": acc_score(1), "fi": acc_score(3)}
    roles = {"roi": "held_in", "emoset": "held_in", "e6": "zero_shot", "fi": "zero_shot"}
    s = summarise(scores, roles)
    assert s["held_in_mean"] == pytest.approx(0.75)
    assert s["zero_shot_mean"] == pytest.approx(0.5)
    assert s["total"] == pytest.approx((1 + 0.5 + 0.25 + 0.75) / 4)
    assert s["datasets"]["fi"] == {"role": "zero_shot", "n": 4, "accuracy": 0.75}
    only_held = summarise({"roi": scores["roi"]}, {"roi": "held_in"})
    assert only_held["zero_shot_mean"] is None and only_held["total"] == 1.0
    with pytest.raises(ValueError, match="no role"):
        summarise(scores, {"roi": "held_in"})
    with pytest.raises(ValueError, match="unknown roles"):
        summarise({"roi": scores["roi"]}, {"roi": "train"})


def test_mean_average_precision_hand_case() -> None:
    scores = np.array([[0.9, 0.1, 0.5], [0.8, 0.7, 0.4], [0.3, 0.2, 0.6], [0.1, 0.6, 0.3]])
    targets = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0]], dtype=bool)
    # category 0: ranking 0.9(+) 0.8(-) 0.3(+) 0.1(-): AP = (1/1 + 2/3) / 2
    # category 1: ranking 0.7(+) 0.6(+) 0.2 0.1: AP = 1
    # category 2: no positive: skipped
    result = mean_average_precision(scores, targets)
    assert result.per_category[0] == pytest.approx((1 + 2 / 3) / 2)
    assert result.per_category[1] == pytest.approx(1.0)
    assert math.isnan(result.per_category[2]) and result.skipped == 1
    assert result.map == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2)
    with pytest.raises(ValueError, match="no category"):
        mean_average_precision(scores, np.zeros_like(targets))


def test_vad_error() -> None:
    pred = np.array([[5.0, 5.0, 5.0], [7.0, 3.0, 6.0]])
    true = np.array([[6.0, 5.0, 3.0], [7.0, 4.0, 6.0]])
    err = vad_error(pred, true)
    assert err == {"valence": 0.5, "arousal": 0.5, "dominance": 1.0, "mean": pytest.approx(2 / 3)}
    with pytest.raises(ValueError):
        vad_error(pred[:, :2], true[:, :2])
