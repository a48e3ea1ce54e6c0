"""Stage helpers: joint label-id space, per-dataset candidates, multi-label mAP."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score

from tinyemo_core.config import DatasetSpec
from tinyemo_core.stages.assemble import DatasetSplit, joint_arrays
from tinyemo_core.stages.evaluate import multi_label_scores
from tinyemo_core.store.labels import LabelTable


def test_joint_arrays_share_ids_across_taxonomies() -> None:
    table = LabelTable(
        ["anger", "joy", "awe"], ["{label}"] * 3, ["anger", "joy", "awe"], np.eye(3, dtype=np.float32)
    )
    a = DatasetSplit("a", ["1", "2"], np.zeros((2, 4)), ["anger", "joy"], ["anger", "joy"])
    b = DatasetSplit("b", ["3"], np.ones((1, 4)), ["anger"], ["anger", "awe"])
    specs = {"a": DatasetSpec(layout="fi", root="/x"), "b": DatasetSpec(layout="fi", root="/y")}
    feats, ids, groups, cands = joint_arrays([a, b], specs, table)
    assert feats.shape == (3, 4)
    assert ids.tolist() == [0, 1, 0]  # "anger" is one id in both datasets
    assert groups.tolist() == [0, 0, 1]
    assert [c.tolist() for c in cands] == [[0, 1], [0, 2]]


def test_multi_label_map_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    cands = ["anger", "joy", "peace"]
    lists = [["anger", "joy"], ["joy"], ["peace", "anger"], ["joy", "peace"], ["anger"]]
    split = DatasetSplit("emotic", list("abcde"), np.zeros((5, 2)), [x[0] for x in lists], cands, lists)
    assert split.multi_label
    projected = rng.standard_normal((5, 8)).astype(np.float32)
    vectors = rng.standard_normal((3, 8)).astype(np.float32)
    out = multi_label_scores(projected, split, vectors)
    scores = projected @ vectors.T
    targets = np.array([[c in x for c in cands] for x in lists])
    expected = np.mean([average_precision_score(targets[:, c], scores[:, c]) for c in range(3)])
    assert abs(out["mAP"] - expected) < 1e-9 and out["mAP_skipped_categories"] == 0
