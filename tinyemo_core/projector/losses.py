"""The paper's two projector losses (TinyEmo §III-B, Eq. 2 and 3)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from pytorch_metric_learning.losses import NTXentLoss
from torch import nn

ProjectorLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class SemiContrastiveLoss(nn.Module):
    """Eq. 3: ``CosineEmbeddingLoss(margin)`` with every target +1, i.e. mean(1 − cos(image, own label)).

    Only positives are pulled together; nothing is pushed apart, so the margin never takes effect.
    """

    def __init__(self, margin: float = 0.5) -> None:
        super().__init__()
        self.inner = nn.CosineEmbeddingLoss(margin=margin)

    def forward(self, images: torch.Tensor, target_ids: torch.Tensor,
                label_table: torch.Tensor) -> torch.Tensor:
        """``images`` (B, D), ``target_ids`` (B,) ids into ``label_table`` (V, D)."""
        ones = torch.ones(images.shape[0], device=images.device, dtype=images.dtype)
        return self.inner(images, label_table[target_ids], ones)


class FullyContrastiveLoss(nn.Module):
    """Eq. 2: pytorch-metric-learning ``NTXentLoss`` with label-text embeddings as the reference set.

    Called as the reference does, ``loss(images, ids, ref_emb=label_table[ids], ref_labels=ids)``: each
    image's keys are the batch's label embeddings (one row per sample); rows with the same id are positives,
    every other row an in-batch negative, so negatives span the taxonomies mixed in a batch.

    Reference defect fixed: the reference passes the *same* tensor as ``labels`` and ``ref_labels``;
    pytorch-metric-learning then takes the call for self-comparison (``ref_labels is labels``) and drops the
    diagonal, so an image's own label row is never its positive and a sample whose label is unique in the
    batch contributes no loss at all. Eq. 2 makes the image's own label ``P_t^+``, so we pass a copy.
    """

    def __init__(self, temperature: float = 0.07) -> None:
        super().__init__()
        self.inner = NTXentLoss(temperature=temperature)

    def forward(self, images: torch.Tensor, target_ids: torch.Tensor,
                label_table: torch.Tensor) -> torch.Tensor:
        """``images`` (B, D), ``target_ids`` (B,) ids into ``label_table`` (V, D)."""
        # a distinct tensor: keeps each image's own label row as a positive (see the docstring)
        return self.inner(images, target_ids, ref_emb=label_table[target_ids], ref_labels=target_ids.clone())


def build_loss(kind: Literal["cosine", "ntxent"], *, temperature: float = 0.07,
               margin: float = 0.5) -> nn.Module:
    """The loss named by ``TrainingSpec.loss``."""
    if kind == "cosine":
        return SemiContrastiveLoss(margin=margin)
    if kind == "ntxent":
        return FullyContrastiveLoss(temperature=temperature)
    raise ValueError(f"unknown loss {kind!r}: use 'cosine' (semi-contrastive) or 'ntxent' (contrastive)")
