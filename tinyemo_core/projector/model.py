"""The Metric Projector: a 2-layer MLP from vision-feature space into the LLM's label-embedding space."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class MetricProjector(nn.Module):
    """Linear(in→H) → BatchNorm1d(H) → GELU → Dropout → Linear(H→out), L2-normalised output.

    TinyEmo §III-B: the first layer up-scales to the text-embedding width, the last keeps it; H defaults to
    ``out_dim`` (the LLM embedding width), which gives the paper's parameter counts (768→2048: 5,775,360).
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int | None = None,
                 dropout: float = 0.2) -> None:
        super().__init__()
        hidden = out_dim if hidden_dim is None else hidden_dim
        self.in_dim, self.out_dim, self.hidden_dim, self.dropout_p = in_dim, out_dim, hidden, dropout
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.BatchNorm1d(hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, out_dim),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Project (B, in_dim) features to unit-norm (B, out_dim) embeddings."""
        return F.normalize(self.net(features), p=2, dim=1)

    def dims(self) -> dict[str, int | float]:
        """The constructor arguments (stored in a run's config.json)."""
        return {"in_dim": self.in_dim, "out_dim": self.out_dim, "hidden_dim": self.hidden_dim,
                "dropout": self.dropout_p}


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters; buffers such as BatchNorm running stats are not counted."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
