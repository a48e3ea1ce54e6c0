"""Layer-0 activations of the Metric Projector, read at a chosen point of its first block.

The projector is ``net = Linear(in→H) → BatchNorm1d(H) → GELU → Dropout → Linear(H→out)`` (then L2
normalisation). TinyEmo §V-C and Appendix E name neurons of "Layer 0" (e.g. neuron 1381): the H outputs of
``net[0]``, the first Linear, which is what a forward hook on that module records. Points:

- ``linear`` (default, "as the paper logs them"): the raw first-Linear output, before BatchNorm and GELU;
- ``bn``: after BatchNorm in eval mode (running statistics: a per-neuron affine map of ``linear``);
- ``gelu``: after GELU, i.e. the hidden unit ``h`` the last Linear reads (Dropout is the identity in eval).

Everything after the point up to the last Linear acts per neuron, so "neuron j set to zero at the point" is
"``h_j`` replaced by a constant ``c_j``" (:func:`ablation_constants`), which makes ablation closed-form.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Literal

import numpy as np
import torch
from torch.nn import functional as F

from tinyemo_core.projector.model import MetricProjector

Point = Literal["linear", "bn", "gelu"]
POINTS: tuple[str, ...] = ("linear", "bn", "gelu")


def check_point(point: str) -> Point:
    if point not in POINTS:
        raise ValueError(f"unknown activation point {point!r}; choose one of {', '.join(POINTS)}")
    return point  # type: ignore[return-value]


def check_neurons(neurons: Iterable[int], hidden_dim: int) -> list[int]:
    """``neurons`` as ints, each in ``[0, hidden_dim)``; a clear error names the first bad one."""
    out = []
    for n in neurons:
        try:
            j = int(n)
        except (TypeError, ValueError):
            raise ValueError(f"neuron index {n!r} is not an integer") from None
        if not 0 <= j < hidden_dim:
            raise IndexError(f"neuron {j} does not exist: this projector's layer 0 has {hidden_dim} neurons "
                             f"(0..{hidden_dim - 1})")
        out.append(j)
    return out


def _batches(features: np.ndarray, batch_size: int) -> Iterator[tuple[int, torch.Tensor]]:
    for start in range(0, len(features), batch_size):
        rows = np.asarray(features[start:start + batch_size], dtype=np.float32)
        yield start, torch.from_numpy(rows)


def _check_features(model: MetricProjector, features: np.ndarray) -> None:
    if features.ndim != 2 or features.shape[1] != model.in_dim:
        raise ValueError(f"features must have shape (N, {model.in_dim}) for this projector, got "
                         f"{features.shape}; use the feature store of the encoder the run was trained on")


def _stages(model: MetricProjector, x: torch.Tensor) -> dict[str, torch.Tensor]:
    linear = model.net[0](x)
    bn = model.net[1](linear)
    return {"linear": linear, "bn": bn, "gelu": model.net[2](bn)}


@torch.no_grad()
def forward_with_activations(
    model: MetricProjector, features: np.ndarray, point: Point = "linear", *, batch_size: int = 4096,
    out_activations: np.ndarray | None = None, out_projected: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(activations (N, H) at ``point``, unit-norm projected embeddings (N, out)) in ONE eval-mode pass.

    ``out_*`` may be pre-allocated (e.g. ``np.lib.format.open_memmap``) so 100k+ rows never sit in memory.
    """
    _check_features(model, features)
    check_point(point)
    was_training = model.training
    model.eval()
    n = len(features)
    acts = out_activations if out_activations is not None else np.empty((n, model.hidden_dim), np.float32)
    proj = out_projected if out_projected is not None else np.empty((n, model.out_dim), np.float32)
    try:
        for start, x in _batches(features, batch_size):
            stages = _stages(model, x)
            acts[start:start + len(x)] = stages[point].numpy()
            out = model.net[4](model.net[3](stages["gelu"]))
            proj[start:start + len(x)] = F.normalize(out, p=2, dim=1).numpy()
    finally:
        model.train(was_training)
    return acts, proj


def activations(model: MetricProjector, features: np.ndarray, point: Point = "linear",
                batch_size: int = 4096) -> np.ndarray:
    """(N, H) float32 layer-0 activations at ``point``."""
    return forward_with_activations(model, features, point, batch_size=batch_size)[0]


@torch.no_grad()
def hidden_units(model: MetricProjector, features: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """(N, H) post-GELU hidden units ``h`` (the last Linear's input), eval mode."""
    return forward_with_activations(model, features, "gelu", batch_size=batch_size)[0]


@torch.no_grad()
def ablation_constants(model: MetricProjector, point: Point = "gelu") -> np.ndarray:
    """(H,) value each hidden unit ``h_j`` takes when neuron j is set to zero at ``point`` (eval mode).

    ``gelu``/``bn``: GELU(0) = 0. ``linear``: GELU(BatchNorm_j(0)) = GELU(beta_j - gamma_j mu_j / sigma_j),
    generally not zero (BatchNorm's running mean is subtracted).
    """
    check_point(point)
    h = model.hidden_dim
    if point in ("bn", "gelu"):
        return np.zeros(h, np.float32)
    was_training = model.training
    model.eval()
    try:
        zero = torch.zeros(1, h)
        return model.net[2](model.net[1](zero))[0].numpy().astype(np.float32)
    finally:
        model.train(was_training)


def last_linear(model: MetricProjector) -> tuple[np.ndarray, np.ndarray]:
    """(W2 (out, H), b2 (out,)) of the projector's last Linear, float32."""
    layer = model.net[4]
    return (layer.weight.detach().cpu().numpy().astype(np.float32),
            layer.bias.detach().cpu().numpy().astype(np.float32))
