"""Accuracy, sensitivity, mAP (cross-checked with scikit-learn) and CLIPScore on hand-computed cases."""

import json

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score

from tinyemo_core.judge.clipscore import clip_s, ref_clip_s
from tinyemo_core.judge.metrics import (
    instruction_sensitivity,
    map_scores,
    multilabel_targets,
    score_single_label,
    vad_bin_mae,
)
from tinyemo_core.judge.parse import parse_label
from tinyemo_core.judge.references import load_references

LABELS = ["anger", "fear", "joy"]


def test_accuracy_counts_none_several_failed_wrong_and_matches_sklearn():
    truth = ["anger", "fear", "joy", "joy", "fear", "anger"]
    answers = ["Predict emotion: anger.", "Mostly fear.", "joy, or maybe fear", None, "no idea", "ANGER!"]
    parsed = [None if a is None else parse_label(a, LABELS, recipe="emovit") for a in answers]
    s = score_single_label(truth, parsed, LABELS)
    assert s.counts() == {"ok": 3, "several": 1, "none": 1, "failed": 1}
    strict = [p if p is not None else "__none__" for p in s.predicted]
    assert s.accuracy == pytest.approx(accuracy_score(truth, strict)) == pytest.approx(3 / 6)
    assert s.accuracy_first_mention == pytest.approx(4 / 6)  # "joy, or maybe fear" -> joy
    assert s.confusion.shape == (3, 4) and s.confusion.sum() == 6
    assert s.confusion[:, 3].tolist() == [0, 1, 2]  # no label / several / failed column
    first = score_single_label(truth, parsed, LABELS, several="first")
    assert first.accuracy == pytest.approx(4 / 6)


def test_unknown_true_label_is_an_error():
    with pytest.raises(ValueError, match="not among the candidates"):
        score_single_label(["love"], [None], LABELS)


def test_instruction_sensitivity_population_and_sample():
    acc = {"a": {"i1": 0.5, "i2": 0.7}, "b": {"i1": 0.8, "i2": 0.8}}
    s = instruction_sensitivity(acc)
    assert s["per_dataset"]["a"]["sensitivity"] == pytest.approx(0.1 / 0.6)
    assert s["per_dataset"]["a"]["sensitivity_sample"] == pytest.approx(np.std([0.5, 0.7], ddof=1) / 0.6)
    assert s["sensitivity"] == pytest.approx((0.1 / 0.6 + 0.0) / 2)
    with pytest.raises(ValueError, match=">= 2 instructions"):
        instruction_sensitivity({"a": {"i1": 0.5}})


def test_map_matches_sklearn_and_hand_computed_ap():
    cats = ["a", "b", "c"]
    targets = multilabel_targets([["a"], ["a", "b"], ["b"], []], cats)
    scores = np.array([[0.9, 0.1, 0.2], [0.2, 0.8, 0.1], [0.6, 0.7, 0.3], [0.1, 0.2, 0.9]])
    res = map_scores(scores, targets, cats)
    # hand: a ranks rows (0: pos, 2: neg, 1: pos) -> AP = (1/1 + 2/3)/2 ; b ranks (1: pos, 2: pos) -> 1.0
    assert res["per_category"]["a"] == pytest.approx((1 + 2 / 3) / 2)
    assert res["per_category"]["b"] == pytest.approx(1.0)
    assert res["per_category"]["c"] is None and res["skipped_categories"] == 1
    sk = np.mean([average_precision_score(targets[:, c], scores[:, c]) for c in (0, 1)])
    assert res["mAP"] == pytest.approx(sk)
    binary = multilabel_targets([["a"], ["b"], ["a"], []], cats).astype(float)  # generated lists: 0/1
    assert map_scores(binary, targets, cats)["per_category"]["a"] == pytest.approx(
        average_precision_score(targets[:, 0], binary[:, 0])
    )
    with pytest.raises(ValueError, match="not one of the 3 categories"):
        multilabel_targets([["zzz"]], cats)


def test_vad_bin_mae_reports_missing():
    out = vad_bin_mae([(5, None, 3), (7, 2, None)], [(4, 2, 3), (9, 4, 1)])
    assert out["valence"] == pytest.approx(1.5) and out["arousal"] == pytest.approx(2.0)
    assert out["dominance"] == pytest.approx(0.0) and out["missing"] == {
        "valence": 0,
        "arousal": 1,
        "dominance": 1,
    }


def test_clipscore_hand_computed():
    img = np.array([[3.0, 4.0], [1.0, 0.0]])  # unnormalised, like stored encode_image outputs
    cand = np.array([[4.0, 3.0], [-1.0, 0.0]])
    per = clip_s(img, cand)
    assert per.tolist() == pytest.approx([2.5 * 24 / 25, 0.0])  # cos = 0.96; negative cosine clipped to 0
    refs = [np.array([[0.0, 1.0], [4.0, 3.0]]), np.array([[0.0, 1.0]])]
    ref = ref_clip_s(per, cand, refs)
    assert ref[0] == pytest.approx(2 * 2.4 * 1.0 / (2.4 + 1.0))  # best reference = identical text
    assert ref[1] == 0.0  # both parts 0 -> 0 (not NaN)
    with pytest.raises(ValueError, match="no reference"):
        ref_clip_s(per, cand, [refs[0], np.zeros((0, 2))])


def test_references_from_json_and_llava_export(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps({"a": "one", "b": ["x", "y"]}))
    assert load_references(tmp_path / "r.json") == {"a": ["one"], "b": ["x", "y"]}
    rec = [
        {
            "id": "a",
            "image": "a.jpg",
            "conversations": [
                {"from": "human", "value": "<image>\nq"},
                {"from": "gpt", "value": "Reasoning: Calm water.\nPredicted Label: contentment"},
            ],
        }
    ]
    (tmp_path / "e.json").write_text(json.dumps(rec))
    assert load_references(tmp_path / "e.json") == {"a": ["Calm water."]}
