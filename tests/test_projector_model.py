"""Metric Projector shapes, parameter counts (TinyEmo §III-B), losses against hand computation, spec."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from tinyemo_core.projector import (
    FullyContrastiveLoss,
    MetricProjector,
    SemiContrastiveLoss,
    TrainingSpec,
    build_loss,
    count_parameters,
)


@pytest.mark.parametrize(("in_dim", "out_dim", "expected"), [(768, 2048, 5_775_360), (768, 1280, 2_626_560)])
def test_parameter_counts_match_the_paper(in_dim: int, out_dim: int, expected: int) -> None:
    assert count_parameters(MetricProjector(in_dim, out_dim)) == expected


def test_layers_and_normalised_output() -> None:
    torch.manual_seed(0)
    model = MetricProjector(16, 24, hidden_dim=40, dropout=0.3)
    kinds = [type(m).__name__ for m in model.net]
    assert kinds == ["Linear", "BatchNorm1d", "GELU", "Dropout", "Linear"]
    assert model.net[0].out_features == 40 and model.net[4].out_features == 24 and model.net[3].p == 0.3
    out = model(torch.randn(5, 16) * 10)
    assert out.shape == (5, 24)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(5))
    assert MetricProjector(16, 24).hidden_dim == 24  # default H = label width (paper)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_semi_contrastive_is_one_minus_cosine_to_own_label() -> None:
    images = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, -2.0]])
    table = np.array([[1.0, 1.0], [0.0, 1.0]])
    ids = np.array([1, 0, 0])
    cos = [np.dot(_unit(images)[i], _unit(table)[ids[i]]) for i in range(3)]
    expected = np.mean([1 - c for c in cos])
    got = SemiContrastiveLoss(margin=0.5)(torch.tensor(images), torch.tensor(ids), torch.tensor(table))
    assert got.item() == pytest.approx(expected, abs=1e-9)


def _ntxent_by_hand(images: np.ndarray, ids: np.ndarray, table: np.ndarray, tau: float) -> float:
    """Eq. 2 with the batch's label rows as keys: mean over positive (anchor, key) pairs of
    −log(e^{s+/τ} / (e^{s+/τ} + Σ_negatives e^{s−/τ}))."""
    img, keys = _unit(images), _unit(table[ids])
    sims = img @ keys.T
    losses = []
    for i in range(len(ids)):
        negatives = [math.exp(sims[i, k] / tau) for k in range(len(ids)) if ids[k] != ids[i]]
        for j in range(len(ids)):
            if ids[j] == ids[i]:
                pos = math.exp(sims[i, j] / tau)
                losses.append(-math.log(pos / (pos + sum(negatives))))
    return float(np.mean(losses))


@pytest.mark.parametrize("tau", [0.07, 0.5])
def test_ntxent_matches_hand_computation(tau: float) -> None:
    images = np.array([[1.0, 0.2, 0.0], [0.1, 1.0, 0.3], [0.5, 0.5, -0.2]])
    table = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    ids = np.array([0, 1, 0])  # samples 0 and 2 share a label: 5 positive pairs, in-batch negatives
    got = FullyContrastiveLoss(temperature=tau)(torch.tensor(images), torch.tensor(ids), torch.tensor(table))
    assert got.item() == pytest.approx(_ntxent_by_hand(images, ids, table, tau), rel=1e-6)


def test_ntxent_two_samples_closed_form() -> None:
    tau = 0.1
    images, table, ids = np.eye(2), np.eye(2), np.array([0, 1])
    got = FullyContrastiveLoss(tau)(torch.tensor(images), torch.tensor(ids), torch.tensor(table)).item()
    assert got == pytest.approx(-math.log(math.exp(10) / (math.exp(10) + 1)), rel=1e-6)


def test_ntxent_without_negatives_is_zero() -> None:
    images = torch.randn(4, 3, dtype=torch.float64)
    got = FullyContrastiveLoss()(images, torch.zeros(4, dtype=torch.long), torch.eye(3, dtype=torch.float64))
    assert got.item() == 0.0


def test_build_loss_and_spec_validation() -> None:
    assert isinstance(build_loss("cosine"), SemiContrastiveLoss)
    assert isinstance(build_loss("ntxent", temperature=0.2), FullyContrastiveLoss)
    spec = TrainingSpec()
    assert (spec.loss, spec.epochs, spec.batch_size, spec.lr, spec.max_lr, spec.pct_start) == \
        ("cosine", 5, 32, 2e-5, 5e-4, 0.005)  # Table VIII: cosine unless stated otherwise
    with pytest.raises(ValidationError, match="epochs"):
        TrainingSpec(epochs=0)
    with pytest.raises(ValidationError, match="loss"):
        TrainingSpec(loss="triplet")
    with pytest.raises(ValidationError, match="learning_rate"):
        TrainingSpec(learning_rate=1.0)


def test_reference_call_loses_own_label_positive_and_ours_keeps_it() -> None:
    """pytorch-metric-learning drops the diagonal when ``ref_labels is labels`` (the reference's call): with
    all labels unique in the batch, no positive pair is left and the loss is 0, so nothing is learned."""
    from pytorch_metric_learning.losses import NTXentLoss

    images = torch.tensor([[1.0, 0.3], [0.2, 1.0]], dtype=torch.float64)
    table = torch.eye(2, dtype=torch.float64)
    ids = torch.tensor([0, 1])
    assert NTXentLoss()(images, ids, ref_emb=table[ids], ref_labels=ids).item() == 0.0
    ours = FullyContrastiveLoss()(images, ids, table).item()
    assert ours == pytest.approx(_ntxent_by_hand(images.numpy(), ids.numpy(), table.numpy(), 0.07), rel=1e-5)
    assert ours > 0
