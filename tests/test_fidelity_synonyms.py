"""TinyEmo Appendix C synonyms: only datasets with ``synonyms: true`` are swapped, only the label TEXT
changes, and under NTXent a synonym row counts as its sample's class (never a negative of it)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

from tinyemo_core.config import DatasetSpec
from tinyemo_core.projector import TrainData, TrainingSpec, train_projector
from tinyemo_core.projector import train as train_module
from tinyemo_core.projector.data import draw_synonyms
from tinyemo_core.projector.losses import FullyContrastiveLoss, build_loss
from tinyemo_core.stages.assemble import DatasetSplit, joint_arrays, synonym_map, synonym_rows
from tinyemo_core.store.labels import LabelTable

WORDS = ["joy", "sadness", "sorrow", "grief", "despair"]  # sadness's Appendix C synonyms are in the table


def _table(dim: int = 8) -> LabelTable:
    vectors = np.random.default_rng(0).normal(size=(len(WORDS), dim)).astype(np.float32)
    return LabelTable(WORDS, ["{label}"] * len(WORDS), WORDS, vectors)


def _specs() -> dict[str, DatasetSpec]:
    return {"emoset": DatasetSpec(layout="emoset", root=Path("/x")),
            "webemo": DatasetSpec(layout="webemo", root=Path("/y"), synonyms=True)}


def _parts(n: int = 40) -> list[DatasetSplit]:
    feats = np.random.default_rng(1).normal(size=(n, 4)).astype(np.float32)
    labels = ["sadness", "joy"] * (n // 2)
    return [DatasetSplit("emoset", [f"e{i}" for i in range(n)], feats, labels, ["joy", "sadness"]),
            DatasetSplit("webemo", [f"w{i}" for i in range(n)], feats + 3, labels, ["joy", "sadness"])]


def test_only_rows_of_synonym_datasets_take_a_synonym_text() -> None:
    table, specs, parts = _table(), _specs(), _parts()
    feats, ids, groups, _ = joint_arrays(parts, specs, table)
    rows = synonym_rows(parts, specs)
    assert rows.tolist() == [False] * 40 + [True] * 40
    syn = synonym_map(table, specs)
    sad = table.index()[("sadness", "{label}")]
    assert sorted(syn[sad]) == sorted(table.index()[(w, "{label}")] for w in ("sorrow", "grief", "despair"))
    for seed in range(5):
        text = draw_synonyms(ids, syn, 1.0, np.random.default_rng(seed), eligible=rows)
        assert (text[:40] == ids[:40]).all()  # EmoSet's "sadness" is never swapped
        assert (text[40:][ids[40:] == sad] != sad).all()  # every WEBEmo "sadness" row is (prob 1)


class _Recording(FullyContrastiveLoss):
    calls: list[tuple[np.ndarray, np.ndarray]] = []

    def forward(self, images, class_ids, label_table, text_ids=None):
        self.calls.append((class_ids.numpy().copy(), text_ids.numpy().copy()))
        return super().forward(images, class_ids, label_table, text_ids)


def test_training_swaps_only_the_synonym_dataset_and_keeps_class_ids(tmp_path: Path, monkeypatch) -> None:
    """Through train_projector: per epoch exactly the WEBEmo rows are swapped (the old code swapped EmoSet's
    "sadness" too), and the loss always gets the rows' own class ids."""
    table, specs, parts = _table(), _specs(), _parts()
    feats, ids, groups, cands = joint_arrays(parts, specs, table)
    rows = synonym_rows(parts, specs)
    train = TrainData(feats, ids, groups, cands, ["emoset", "webemo"], synonym_rows=rows)
    _Recording.calls = []
    monkeypatch.setattr(train_module, "build_loss", lambda *a, **k: _Recording())
    spec = TrainingSpec(loss="ntxent", epochs=2, batch_size=16, synonym_prob=1.0, max_lr=1e-3)
    train_projector(train, None, table.vectors, spec, tmp_path, synonyms=synonym_map(table, specs),
                    progress=False)
    sad = table.index()[("sadness", "{label}")]
    n_webemo_sad = int(((groups == 1) & (ids == sad)).sum())
    per_epoch = len(_Recording.calls) // 2
    for epoch in (0, 1):
        calls = _Recording.calls[epoch * per_epoch:(epoch + 1) * per_epoch]
        classes = np.concatenate([c for c, _ in calls])
        texts = np.concatenate([t for _, t in calls])
        assert sorted(classes.tolist()) == sorted(ids.tolist())  # class ids never replaced
        assert int((texts != classes).sum()) == n_webemo_sad
        assert set(classes[texts != classes].tolist()) == {sad}


def test_synonyms_for_several_datasets_need_a_row_mask(tmp_path: Path) -> None:
    table, specs, parts = _table(), _specs(), _parts()
    feats, ids, groups, cands = joint_arrays(parts, specs, table)
    train = TrainData(feats, ids, groups, cands, ["emoset", "webemo"])
    with pytest.raises(ValueError, match="synonym_rows"):
        train_projector(train, None, table.vectors, TrainingSpec(epochs=1), tmp_path,
                        synonyms=synonym_map(table, specs), progress=False)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_ntxent_never_makes_a_synonym_row_a_negative_of_its_class() -> None:
    table = torch.tensor(_table(3).vectors, dtype=torch.float64)
    sad, sorrow, joy = 1, 2, 0
    classes = torch.tensor([sad, sad, joy])  # image 1 drew "sorrow" for its "sadness" label
    texts = torch.tensor([sad, sorrow, joy])
    ref_emb, ref_labels = FullyContrastiveLoss.references(classes, table, texts)
    assert torch.equal(ref_emb[1], table[sorrow]) and ref_labels.tolist() == classes.tolist()
    assert ref_labels is not classes  # pml would drop the diagonal otherwise
    a1, p, a2, n = lmu.get_all_pairs_indices(classes, ref_labels)
    negatives = set(zip(a2.tolist(), n.tolist(), strict=True))
    positives = set(zip(a1.tolist(), p.tolist(), strict=True))
    assert (0, 1) in positives and (1, 1) in positives  # the sorrow row is a positive of both sad images
    assert all(classes[i] != classes[j] for i, j in negatives)

    # and the value is Eq. 2 with those keys, positives by class (not by text row)
    images = torch.tensor([[1.0, 0.2, 0.0], [0.1, 1.0, 0.3], [0.5, 0.5, -0.2]], dtype=torch.float64)
    tau = 0.5
    got = FullyContrastiveLoss(tau)(images, classes, table, texts).item()
    sims = _unit(images.numpy()) @ _unit(table[texts].numpy()).T
    c = classes.numpy()
    terms = []
    for i in range(3):
        neg = sum(math.exp(sims[i, k] / tau) for k in range(3) if c[k] != c[i])
        terms += [-math.log(math.exp(sims[i, j] / tau) / (math.exp(sims[i, j] / tau) + neg))
                  for j in range(3) if c[j] == c[i]]
    assert got == pytest.approx(float(np.mean(terms)), rel=1e-6)
    # the old call (labels = text rows) makes "sorrow" a negative of image 0: a different loss
    old = FullyContrastiveLoss(tau)(images, texts, table).item()
    assert old != pytest.approx(got, rel=1e-3)


def test_cosine_loss_pulls_towards_the_drawn_text() -> None:
    table = torch.eye(3, dtype=torch.float64)
    images = table[[2]]  # the image sits on the "sorrow" row
    loss = build_loss("cosine")
    assert loss(images, torch.tensor([1]), table, torch.tensor([2])).item() == pytest.approx(0.0, abs=1e-9)
    assert loss(images, torch.tensor([1]), table).item() == pytest.approx(1.0)
