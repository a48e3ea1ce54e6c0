"""Single-neuron ablation (TinyEmo Appendix E-A, Fig. 17), all neurons at once in closed form.

With ``h`` the hidden units (N, H), the projector's output before normalisation is ``o = W2 h + b2``. Setting
neuron j to zero replaces ``h_j`` by a constant ``c_j`` (see ``activations.ablation_constants``), so with
``d = h_j - c_j``:

    o^(j) = o - d W2[:, j]
    o^(j) · l = o · l - d (W2[:, j] · l)                       for every label vector l
    |o^(j)|^2 = |o|^2 - 2 d (o · W2[:, j]) + d^2 |W2[:, j]|^2

so the cosine of every ablated output to every label is a few (N, H) and (H, C) products, never H forward
passes. The prediction is the label of highest cosine among the dataset's own candidates (as in evaluation);
the norm is positive and the same for every label, so it only matters for the reported cosines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from tinyemo_core.interpret.activations import (
    Point,
    ablation_constants,
    check_neurons,
    check_point,
    hidden_units,
    last_linear,
)
from tinyemo_core.projector.model import MetricProjector


@dataclass
class AblationResult:
    """Accuracy with every neuron active, and with each neuron in ``neurons`` ablated in turn."""

    neurons: np.ndarray  # (K,) neuron indices
    baseline_accuracy: float
    accuracy: np.ndarray  # (K,)
    flips: np.ndarray  # (K,) samples whose prediction changes
    true_cosine_change: np.ndarray  # (K,) mean change of the cosine to the true label
    n: int

    @property
    def delta(self) -> np.ndarray:
        return self.accuracy - self.baseline_accuracy

    def rows(self) -> list[dict]:
        return [{"neuron": int(j), "accuracy": float(a), "delta": float(a - self.baseline_accuracy),
                 "flips": int(f), "true_cosine_change": float(c)}
                for j, a, f, c in zip(self.neurons, self.accuracy, self.flips, self.true_cosine_change,
                                      strict=True)]


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _check(labels: np.ndarray, label_vectors: np.ndarray, out_dim: int, n: int) -> np.ndarray:
    y = np.asarray(labels, dtype=np.int64)
    if y.shape != (n,):
        raise ValueError(f"labels must be one candidate index per feature row ({n}), got shape {y.shape}")
    if label_vectors.ndim != 2 or label_vectors.shape[1] != out_dim:
        raise ValueError(f"label vectors must be (C, {out_dim}), got {label_vectors.shape}; use the run's "
                         "backbone")
    if len(y) and (y.min() < 0 or y.max() >= len(label_vectors)):
        raise ValueError(f"label index out of range 0..{len(label_vectors) - 1}")
    return y


def ablate_all(
    model: MetricProjector, features: np.ndarray, labels: np.ndarray, label_vectors: np.ndarray,
    point: Point = "gelu", *, neurons: np.ndarray | list[int] | None = None, max_block: int = 1 << 24,
) -> AblationResult:
    """Accuracy after ablating each neuron (default: all H), vectorised; ``labels`` index ``label_vectors``.

    Work is chunked over rows so that a block holds at most ``max_block`` (row, neuron, label) scores.
    """
    check_point(point)
    hid = model.hidden_dim
    js = np.arange(hid) if neurons is None else np.asarray(check_neurons(neurons, hid), dtype=np.int64)
    y = _check(labels, label_vectors, model.out_dim, len(features))
    lab = _unit(label_vectors)  # (C, D)
    w2_full, b2 = (a.astype(np.float64) for a in last_linear(model))
    w2 = w2_full[:, js]  # (D, K)
    const = ablation_constants(model, point).astype(np.float64)[js]
    a_jc = w2.T @ lab.T  # (K, C): W2[:, j] · l_c
    w_sq = (w2 * w2).sum(axis=0)  # (K,)
    n, k, c = len(features), len(js), len(lab)
    correct = np.zeros(k, np.int64)
    flips = np.zeros(k, np.int64)
    cos_change = np.zeros(k, np.float64)
    base_correct = 0
    rows_per_block = max(1, max_block // max(1, k * c))
    for start in range(0, n, rows_per_block):
        h = hidden_units(model, features[start:start + rows_per_block]).astype(np.float64)  # (B, H)
        out = h @ w2_full.T + b2  # (B, D)
        yb = y[start:start + len(h)]
        s = out @ lab.T  # (B, C)
        norm_sq = (out * out).sum(axis=1)  # (B,)
        base_pred = s.argmax(axis=1)
        base_correct += int((base_pred == yb).sum())
        d = h[:, js] - const  # (B, K)
        g = out @ w2  # (B, K): o · W2[:, j]
        dots = s[:, None, :] - d[:, :, None] * a_jc[None, :, :]  # (B, K, C)
        pred = dots.argmax(axis=2)  # (B, K)
        correct += (pred == yb[:, None]).sum(axis=0)
        flips += (pred != base_pred[:, None]).sum(axis=0)
        new_norm = np.sqrt(np.maximum(norm_sq[:, None] - 2 * d * g + d * d * w_sq, 1e-24))  # (B, K)
        rows = np.arange(len(h))
        true_new = dots[rows, :, yb] / new_norm  # (B, K)
        true_old = s[rows, yb] / np.sqrt(np.maximum(norm_sq, 1e-24))
        cos_change += (true_new - true_old[:, None]).sum(axis=0)
    denom = max(n, 1)
    return AblationResult(js, base_correct / denom, correct / denom, flips, cos_change / denom, n)


@torch.no_grad()
def ablate_naive(
    model: MetricProjector, features: np.ndarray, labels: np.ndarray, label_vectors: np.ndarray,
    point: Point = "gelu", *, neurons: np.ndarray | list[int] | None = None,
) -> AblationResult:
    """The reference: one full forward pass per neuron with a hook zeroing it at ``point`` (slow)."""
    check_point(point)
    hid = model.hidden_dim
    js = np.arange(hid) if neurons is None else np.asarray(check_neurons(neurons, hid), dtype=np.int64)
    y = _check(labels, label_vectors, model.out_dim, len(features))
    lab = torch.from_numpy(_unit(label_vectors).astype(np.float32))
    x = torch.from_numpy(np.asarray(features, np.float32))
    module = model.net[{"linear": 0, "bn": 1, "gelu": 2}[point]]
    was_training = model.training
    model.eval()
    target = {"j": -1}

    def zero(_mod, _inp, output):
        if target["j"] >= 0:
            output = output.clone()
            output[:, target["j"]] = 0
        return output

    handle = module.register_forward_hook(zero)
    try:
        base_scores = F.normalize(model.net(x), dim=1) @ lab.T
        base_pred = base_scores.argmax(dim=1).numpy()
        rows = np.arange(len(y))
        acc, flips, change = [], [], []
        for j in js:
            target["j"] = int(j)
            scores = F.normalize(model.net(x), dim=1) @ lab.T
            pred = scores.argmax(dim=1).numpy()
            acc.append(float((pred == y).mean()) if len(y) else 0.0)
            flips.append(int((pred != base_pred).sum()))
            change.append(float((scores.numpy()[rows, y] - base_scores.numpy()[rows, y]).mean())
                          if len(y) else 0.0)
    finally:
        handle.remove()
        model.train(was_training)
    base = float((base_pred == y).mean()) if len(y) else 0.0
    return AblationResult(js, base, np.array(acc), np.array(flips), np.array(change), len(y))
